"""Where the local stack lives: paths, ports, the fake AWS environment every process gets.

Everything the stack writes goes under `.local-stack/` at the repository root (git-ignored):
pid files, logs, the router's configuration, the functions' environment files and
`outputs.json`, which the Rust e2e tests and the demo read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("EGRESS_STACK_DIR", ROOT / ".local-stack"))
RESOURCES_FILE = ROOT / "local" / "resources.json"

# The local stack never reaches real AWS: every process gets these credentials and the
# edge router as its only endpoint. The values are deliberately not key-shaped.
FAKE_ACCESS_KEY = "local-stack-not-a-real-key"
FAKE_SECRET_KEY = "local-stack-not-a-real-secret"


DEFAULT_PORT_BASE = 27100


@dataclass(frozen=True)
class Ports:
    """The ports of one stack. All on 127.0.0.1; the base is configurable so two checkouts
    can run side by side (`EGRESS_STACK_PORT_BASE`). The default is below Linux's ephemeral
    range (32768-60999): a port from that range can be the client end of one of the stack's
    own connections, and one left in TIME-WAIT for a minute refused the next stack its port
    (a benchmark's thousands of moto connections made that likely)."""

    edge: int
    moto: int
    watch_single: int
    watch_dual: int

    @classmethod
    def from_env(cls) -> "Ports":
        raw = os.environ.get("EGRESS_STACK_PORT_BASE", str(DEFAULT_PORT_BASE))
        try:
            base = int(raw)
        except ValueError as exc:
            raise SystemExit(f"EGRESS_STACK_PORT_BASE must be a port number, got {raw!r}") from exc
        if not 1024 <= base <= 65500:
            raise SystemExit(f"EGRESS_STACK_PORT_BASE must be between 1024 and 65500, got {base}")
        return cls(edge=base, moto=base + 1, watch_single=base + 2, watch_dual=base + 3)

    def named(self) -> dict[str, int]:
        return {
            "edge": self.edge,
            "moto": self.moto,
            "watch_single": self.watch_single,
            "watch_dual": self.watch_dual,
        }


# How many instances of each function `cargo lambda watch` may run at once (its
# `--concurrency`). Lambda runs one instance per concurrent request; one instance per
# function would queue every request behind the one before it, so races between requests
# (duplicate deliveries, concurrent decisions) could never happen locally. 4 keeps the e2e
# suite's parallel tests apart on 2 cores; `make load` asks for more.
DEFAULT_LAMBDA_CONCURRENCY = 4
MAX_LAMBDA_CONCURRENCY = 64


def lambda_concurrency() -> int:
    """`EGRESS_LAMBDA_CONCURRENCY`, or the default: instances per function and profile."""
    raw = os.environ.get("EGRESS_LAMBDA_CONCURRENCY", "").strip()
    if not raw:
        return DEFAULT_LAMBDA_CONCURRENCY
    try:
        value = int(raw)
    except ValueError as exc:
        raise SystemExit(f"EGRESS_LAMBDA_CONCURRENCY must be a number of instances, got {raw!r}") from exc
    if not 1 <= value <= MAX_LAMBDA_CONCURRENCY:
        raise SystemExit(f"EGRESS_LAMBDA_CONCURRENCY must be between 1 and {MAX_LAMBDA_CONCURRENCY}, got {value}")
    return value


def load_resources() -> dict:
    """The declaration of what the stack provisions (`local/resources.json`)."""
    with RESOURCES_FILE.open(encoding="utf-8") as f:
        return json.load(f)


def endpoint(ports: Ports) -> str:
    """The one AWS endpoint of the stack: the edge router."""
    return f"http://127.0.0.1:{ports.edge}"


def fake_aws_env(ports: Ports, region: str) -> dict[str, str]:
    """The AWS variables of every local process. Shared config files are pointed at
    /dev/null so a developer's real profile can never be picked up; every other `AWS_*`
    variable is dropped from the parent environment (see `scrubbed_environ`)."""
    return {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": endpoint(ports),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def scrubbed_environ() -> dict[str, str]:
    """The parent environment minus anything that could point a child at real AWS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("AWS_") or k.startswith("AMAZON_"))
    }
    return env


def state_path(*parts: str) -> Path:
    return STATE_DIR.joinpath(*parts)
