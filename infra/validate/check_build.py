#!/usr/bin/env python3
"""Before `sam deploy`: every function of the template is built, for the stack's architecture.

`make build` writes target/lambda/<name>/bootstrap; deploying a missing binary fails late, and
deploying an x86_64 binary to an arm64 function fails only at its first invocation. The
architecture is read from the environment's `Architecture` parameter (or the template default)
and compared with the ELF header of each bootstrap.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gatelib  # noqa: E402

# ELF e_machine values of the two Lambda architectures.
ELF_MACHINE = {"arm64": 183, "x86_64": 62}


def elf_machine(path: Path) -> int | None:
    """The e_machine field of a 64-bit little-endian ELF file, or None if it is not one."""
    with path.open("rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return struct.unpack_from("<H", header, 18)[0]


def check(template_path: Path, samconfig: Path, env: str, lambda_dir: Path) -> list[str]:
    template = gatelib.load_template(template_path)
    _, values = gatelib.samconfig_parameters(samconfig, env)
    arch = values.get("Architecture") or str(template["Parameters"]["Architecture"]["Default"])
    expected = ELF_MACHINE[arch]
    build_flag = "--arm64" if arch == "arm64" else "--x86-64"
    errors = []
    for logical, res in gatelib.resources_of_type(template, "AWS::Serverless::Function").items():
        match = re.fullmatch(r"\.\./target/lambda/([a-z0-9-]+)/?", str(res["Properties"].get("CodeUri")))
        if not match:
            errors.append(f"{logical}: CodeUri is not ../target/lambda/<name>/")
            continue
        bootstrap = lambda_dir / match.group(1) / "bootstrap"
        if not bootstrap.is_file():
            errors.append(f"{bootstrap} is missing: run `make build LAMBDA_BUILD_FLAGS={build_flag}`")
            continue
        machine = elf_machine(bootstrap)
        if machine != expected:
            found = {v: k for k, v in ELF_MACHINE.items()}.get(machine, "not a Linux binary")
            errors.append(
                f"{bootstrap} is built for {found}, but [{env}] deploys Architecture={arch}: "
                f"rebuild with `make build LAMBDA_BUILD_FLAGS={build_flag}`"
            )
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--samconfig", type=Path, required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--lambda-dir", type=Path, required=True, help="target/lambda")
    args = parser.parse_args()
    try:
        errors = check(args.template, args.samconfig, args.env, args.lambda_dir)
    except gatelib.GateError as e:
        errors = [str(e)]
    for error in errors:
        print(f"build: FAIL {error}", file=sys.stderr)
    if not errors:
        print(f"build: every function is built for the architecture of [{args.env}]")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
