"""moto's server, with Step Functions' context-object times as AWS writes them.

    python -m egress_local.moto_launcher -H 127.0.0.1 -p 4566

AWS gives `$$.State.EnteredTime` as ISO-8601 in UTC with milliseconds and `Z`
(`2026-12-01T20:07:43.123Z`); moto's interpreter writes Python's `isoformat()` with
microseconds and `+00:00`. The state machine stores that value as `updated_dt`, which the web
app shows, so without this the local stack would show dates that AWS never produces. Nothing
else of moto changes.
"""

from __future__ import annotations

import datetime
import sys
import types


class AwsTimestamp(datetime.datetime):
    """A datetime whose default `isoformat()` is the one Step Functions uses."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        if timespec != "auto" or self.tzinfo is None:
            return super().isoformat(sep, timespec)
        utc = self.astimezone(datetime.timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def aws_isoformat(value: datetime.datetime) -> str:
    """`value` as Step Functions writes a context-object time."""
    return AwsTimestamp.fromtimestamp(value.timestamp(), tz=datetime.timezone.utc).isoformat()


def patch_entered_time() -> None:
    """Makes the interpreter's `EnteredTime` (its only `isoformat()` call) AWS-shaped."""
    from moto.stepfunctions.parser.asl.component.state import state

    state.datetime = types.SimpleNamespace(datetime=AwsTimestamp, timezone=datetime.timezone)


def main() -> None:
    patch_entered_time()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
