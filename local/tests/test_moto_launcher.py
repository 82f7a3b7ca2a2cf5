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


class StackStartsMotoThroughTheLauncherTest(unittest.TestCase):
    def test_when_the_stack_starts_moto_then_it_runs_the_launcher_with_local_on_the_path(self):
        import os
        import subprocess

        from egress_local import stack
        from egress_local.settings import Ports

        try:
            import moto  # noqa: F401
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        ports = Ports(edge=4700, moto=4701, watch_single=4702, watch_dual=4703)
        cmd, env = stack.moto_command(ports)
        self.assertEqual(cmd[1:3], ["-m", "egress_local.moto_launcher"])
        self.assertEqual(cmd[3:], ["-H", "127.0.0.1", "-p", "4701"])
        self.assertEqual(env["MOTO_PORT"], "4700", "the interpreter's service calls go to the router")
        # The command as the stack runs it finds the launcher and moto's server behind it.
        out = subprocess.run(
            [*cmd[:3], "--help"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("usage", out.stdout.lower())


if __name__ == "__main__":
    unittest.main()
