"""The local stack's moto writes Step Functions' context-object times as AWS does."""

import datetime
import re
import unittest

from egress_local import moto_launcher

AWS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


class MotoLauncherTest(unittest.TestCase):
    def test_when_a_time_has_microseconds_then_it_is_written_with_milliseconds_and_z(self):
        t = moto_launcher.AwsTimestamp(2026, 12, 1, 20, 7, 43, 123456, tzinfo=datetime.timezone.utc)
        self.assertEqual(t.isoformat(), "2026-12-01T20:07:43.123Z")

    def test_when_a_time_is_in_another_zone_then_it_is_written_in_utc(self):
        plus_one = datetime.timezone(datetime.timedelta(hours=1))
        t = moto_launcher.AwsTimestamp(2026, 12, 1, 21, 0, 0, 0, tzinfo=plus_one)
        self.assertEqual(t.isoformat(), "2026-12-01T20:00:00.000Z")

    def test_when_patched_then_the_interpreters_entered_time_has_the_aws_format(self):
        try:
            from moto.stepfunctions.parser.asl.component.state import state
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        moto_launcher.patch_entered_time()
        now = state.datetime.datetime.now(tz=state.datetime.timezone.utc).isoformat()
        self.assertRegex(now, AWS_FORMAT)


if __name__ == "__main__":
    unittest.main()
