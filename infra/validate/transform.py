#!/usr/bin/env python3
"""Transforms the SAM template to plain CloudFormation, offline.

Local paths are packaged the way `sam deploy` would (without uploading), parameter values come
from an environment of samconfig.toml and are checked against the template's own constraints,
and the SAM transform runs locally with no AWS access. The result is what the linters, checkov
and cfn-guard check.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gatelib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--samconfig", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="transformed template (JSON)")
    parser.add_argument("--guard-out", type=Path, help="the cfn-guard view of it (JSON)")
    parser.add_argument("--env", help="samconfig environment (default: the first one)")
    args = parser.parse_args()

    try:
        template = gatelib.load_template(args.template)
        env_name, values = gatelib.samconfig_parameters(args.samconfig, args.env)
        gatelib.check_parameter_values(template, values, f"{args.samconfig} [{env_name}]")
        packaged = gatelib.package_offline(template, args.template.resolve().parent, values)
        transformed = gatelib.sam_transform(packaged, values)
    except gatelib.GateError as e:
        print(f"transform: FAILED: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(transformed, indent=1) + "\n", encoding="utf-8")
    if args.guard_out:
        view = gatelib.guard_view(transformed)
        args.guard_out.write_text(json.dumps(view, indent=1) + "\n", encoding="utf-8")
    print(f"transform: {args.template} -> {args.out} ({len(transformed['Resources'])} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
