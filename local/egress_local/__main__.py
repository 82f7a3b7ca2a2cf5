"""Command line of the local stack; `make stack-up`, `make stack-down`, `make stack-status`
and the e2e harness call it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m egress_local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack (idempotent) and provision it")
    sub.add_parser("down", help="stop the processes this stack started")
    sub.add_parser("status", help="exit 0 when up, 3 when down, 1 when partly running")
    sub.add_parser("outputs", help="print outputs.json of the running stack")
    sub.add_parser("env", help="print `export` lines pointing AWS tools at the running stack")
    sub.add_parser("clean", help="remove .local-stack/ of a stopped stack")
    submit = sub.add_parser("swb-submit", help="submit an egress request as SWB does; prints JSON")
    submit.add_argument("--mode", choices=["single", "dual"], default="single", help="which project's SWB topic")
    submit.add_argument("--scenario", choices=["standard", "missing-version", "name-clash", "output-checks"], default="standard")
    submit.add_argument(
        "--publish-times", type=int, default=1, help="0 prepares everything without publishing; 2 simulates a duplicate SNS delivery"
    )
    router = sub.add_parser("router", help="(internal) run the edge router")
    router.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            return stack.up()
        if args.command == "down":
            return stack.down()
        if args.command == "status":
            return stack.status()
        if args.command == "clean":
            stack.clean_state()
            return 0
        if args.command == "router":
            from .router import serve

            serve(args.config)
            return 0
        outputs = stack.read_outputs()
        if outputs is None:
            raise stack.StackError("the stack is not running: run `make stack-up`")
        if args.command == "outputs":
            print(json.dumps(outputs, indent=2))
            return 0
        if args.command == "env":
            for name, value in sorted(outputs["aws_env"].items()):
                print(f"export {name}={shlex.quote(value)}")
            print(f"export EGRESS_STATE_MACHINE_ARN={shlex.quote(outputs['state_machine_arn'])}")
            return 0
        if args.command == "swb-submit":
            from .swb import submit as swb_submit

            result = swb_submit(outputs, mode=args.mode, scenario=args.scenario, publish_times=args.publish_times)
            print(json.dumps(result, indent=2))
            return 0
    except stack.StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
