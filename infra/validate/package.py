#!/usr/bin/env python3
"""Writes the template `make deploy` hands to `sam deploy`, for one samconfig environment.

The GraphQL schema's group placeholders are rendered from the environment's parameters (the
same rendering the gate checks), and every local path becomes absolute so the generated
template can live under build/. `sam deploy` then uploads the code, the ASL, the schema and
the resolver templates as usual.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gatelib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--samconfig", type=Path, required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    try:
        template = gatelib.load_template(args.template)
        env_name, values = gatelib.samconfig_parameters(args.samconfig, args.env)
        gatelib.check_parameter_values(template, values, f"{args.samconfig} [{env_name}]")
        target = gatelib.package_for_deploy(template, args.template.resolve().parent, values, args.out_dir)
    except gatelib.GateError as e:
        print(f"package: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"package: [{env_name}] -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
