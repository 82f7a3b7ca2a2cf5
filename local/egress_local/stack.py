"""Starting, stopping and inspecting the local stack.

The stack is four processes, each started in its own session so it and everything it spawns
can be stopped together: moto server, the edge router, and two Lambda services
(`egress_local.runtime`, one per approval mode: only `start-workflow` reads `APPROVAL_MODE`,
and both modes are tested). Each runs the function binaries `make build-debug` built, up to
`EGRESS_LAMBDA_CONCURRENCY` instances of every function (default 4), so concurrent requests
run side by side as on Lambda instead of queueing, each function with exactly the
environment the template gives it.

Rules: `up` is idempotent; every port must be free (a port in use is an error that names it,
never a server to reuse); `down` and `status` only touch processes whose pid file this stack
wrote and whose identity (command line, start time) still matches.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import provision, template
from .settings import (
    ROOT,
    STATE_DIR,
    Ports,
    endpoint,
    fake_aws_env,
    lambda_concurrency,
    load_resources,
    scrubbed_environ,
    state_path,
)

SERVICES = ("moto", "router", "lambda-single", "lambda-dual")
# The functions the workflow and the SWB topics invoke; warmed up at start so the first
# request does not wait for a process to start.
WARM_UP = (
    ("single", "start-workflow"),
    ("dual", "start-workflow"),
    ("single", "copy-to-staging"),
    ("single", "record-task-token"),
    ("single", "handle-rejection"),
    ("single", "copy-to-datalake"),
    ("single", "notify-requester"),
)


# The first start of a binary: well under a second, unless the machine is very busy.
WARM_UP_TIMEOUT_SECONDS = 300


class StackError(Exception):
    """A failure the user can act on; printed without a traceback."""


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


# -- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    pid: int
    start_time: str
    cmdline: list[str]

    @classmethod
    def load(cls, name: str) -> "Proc | None":
        path = state_path("pids", f"{name}.json")
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(name=name, pid=data["pid"], start_time=data["start_time"], cmdline=data["cmdline"])

    def save(self) -> None:
        state_path("pids").mkdir(parents=True, exist_ok=True)
        state_path("pids", f"{self.name}.json").write_text(
            json.dumps({"pid": self.pid, "start_time": self.start_time, "cmdline": self.cmdline}),
            encoding="utf-8",
        )

    def forget(self) -> None:
        state_path("pids", f"{self.name}.json").unlink(missing_ok=True)

    def alive(self) -> bool:
        """Alive *and* still the process this stack started (pids get reused)."""
        return proc_start_time(self.pid) == self.start_time


def proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def session_members(sid: int) -> list[int]:
    """Every process in session `sid`: the leader we started and all it spawned."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def start(name: str, cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> Proc:
    state_path("logs").mkdir(parents=True, exist_ok=True)
    log = state_path("logs", f"{name}.log").open("ab")
    process = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    started = proc_start_time(process.pid)
    if started is None:
        raise StackError(f"{name} exited immediately; see {state_path('logs', name + '.log')}")
    proc = Proc(name=name, pid=process.pid, start_time=started, cmdline=cmd)
    proc.save()
    return proc


def stop(proc: Proc, grace_seconds: float = 10.0) -> None:
    if not proc.alive():
        proc.forget()
        return
    members = session_members(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (grace_seconds if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            members = [pid for pid in session_members(proc.pid) if proc_start_time(pid) is not None]
            if not members:
                break
            time.sleep(0.2)
        if not members:
            break
    proc.forget()


# -- ports and health -----------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(proc: Proc, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StackError(f"{proc.name} exited during start; see {state_path('logs', proc.name + '.log')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise StackError(f"{proc.name} did not open port {port} within {timeout:.0f}s; see {state_path('logs', proc.name + '.log')}")


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 10) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def router_stack_id(ports: Ports) -> str | None:
    try:
        return http_json("GET", f"{endpoint(ports)}/_local/health", timeout=2).get("stack_id")
    except (OSError, ValueError, urllib.error.URLError):
        return None


# -- commands -------------------------------------------------------------------------------


def read_outputs() -> dict | None:
    path = state_path("outputs.json")
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def running_procs() -> dict[str, Proc | None]:
    return {name: Proc.load(name) for name in SERVICES}


def is_up(ports: Ports) -> bool:
    procs = running_procs()
    outputs = read_outputs()
    return (
        outputs is not None
        and all(p is not None and p.alive() for p in procs.values())
        and router_stack_id(ports) == outputs.get("stack_id")
    )


def moto_server() -> str:
    """The stack's Python, which runs moto through `egress_local.moto_launcher`."""
    if importlib.util.find_spec("moto") is None:
        raise StackError(f"moto is not installed for {sys.executable}: run `make setup`")
    return sys.executable


def moto_command(ports: Ports) -> tuple[list[str], dict[str, str]]:
    """How moto is started: through `egress_local.moto_launcher` (AWS-shaped
    `$$.State.EnteredTime`), its service calls sent to the router (`MOTO_PORT`)."""
    cmd = [moto_server(), "-m", "egress_local.moto_launcher", "-H", "127.0.0.1", "-p", str(ports.moto)]
    return cmd, {"MOTO_PORT": str(ports.edge), "PYTHONPATH": str(ROOT / "local")}


def up() -> int:
    ports = Ports.from_env()
    if is_up(ports):
        say(f"already running (stack {read_outputs()['stack_id']}) at {endpoint(ports)}")
        return 0
    leftovers = [p for p in running_procs().values() if p is not None]
    if leftovers:
        say("a previous stack is partly running: stopping what is left of it")
        down(quiet=True)

    taken = [f"{name} ({port})" for name, port in ports.named().items() if not port_free(port)]
    if taken:
        raise StackError(
            f"port(s) already in use by another process: {', '.join(taken)}. This stack never "
            "reuses a server it did not start: stop that process, or choose other ports with "
            "EGRESS_STACK_PORT_BASE=<port> (the stack uses that port and the next three)."
        )

    started_at = time.monotonic()
    resources = load_resources()
    region = resources["region"]
    stack_id = str(uuid.uuid4())
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    for stale in ("outputs.json", "router.json"):
        state_path(stale).unlink(missing_ok=True)
    base_env = {**scrubbed_environ(), **fake_aws_env(ports, region)}

    try:
        say(f"starting moto on 127.0.0.1:{ports.moto} (its service calls go to the router on {ports.edge})")
        # moto's Step Functions interpreter calls `localhost:$MOTO_PORT`: the router.
        # Through the launcher, so the state machine's `$$.State.EnteredTime` (stored as
        # `updated_dt`, shown by the web app) has AWS's shape: milliseconds and `Z`.
        moto_cmd, moto_env = moto_command(ports)
        moto = start("moto", moto_cmd, {**base_env, **moto_env})
        wait_for_port(moto, ports.moto, 30)
        http_json("POST", f"http://127.0.0.1:{ports.moto}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

        router_config = {
            "stack_id": stack_id,
            "edge_port": ports.edge,
            "moto_port": ports.moto,
            "functions": resources["functions"],
            "profiles": {"single": ports.watch_single, "dual": ports.watch_dual},
            "default_profile": "single",
            "region": region,
            "async_retries": function_async_retries(template.load()),
        }
        state_path("router.json").write_text(json.dumps(router_config, indent=2), encoding="utf-8")
        say(f"starting the edge router on 127.0.0.1:{ports.edge}")
        router = start(
            "router",
            [sys.executable, "-m", "egress_local", "router", "--config", str(state_path("router.json"))],
            {**base_env, "PYTHONPATH": str(ROOT / "local")},
        )
        wait_for_port(router, ports.edge, 30)
        if router_stack_id(ports) != stack_id:
            raise StackError("the process on the router port is not this stack's router")

        say("provisioning tables, buckets, KMS keys, topics, SES identity and the state machine")
        outputs = provision.provision(endpoint(ports), resources)

        concurrency = lambda_concurrency()
        template_resources = template.load()
        for mode, port in (("single", ports.watch_single), ("dual", ports.watch_dual)):
            # The union env file is for running one function by hand (`cargo lambda watch
            # --env-file`, README); the stack gives each function exactly its own variables.
            env_file = state_path(f"functions-{mode}.env")
            function_env = {**provision.function_environment(resources, outputs, mode), **fake_aws_env(ports, region)}
            provision.write_env_file(env_file, function_env)
            config_file = state_path(f"lambda-{mode}.json")
            config_file.write_text(
                json.dumps(lambda_config(resources, outputs, mode, template_resources, ports, region, port, concurrency), indent=2),
                encoding="utf-8",
            )
            say(f"starting the Lambda service ({mode} approval) on 127.0.0.1:{port}: the built binaries, up to {concurrency} instances per function")
            service = start(
                f"lambda-{mode}",
                [sys.executable, "-m", "egress_local.runtime", "--config", str(config_file)],
                {**base_env, "PYTHONPATH": str(ROOT / "local")},
            )
            wait_for_port(service, port, 30)

        out = {
            "stack_id": stack_id,
            "endpoint": endpoint(ports),
            "region": region,
            "account_id": resources["account_id"],
            "ports": ports.named(),
            "lambda_concurrency": concurrency,
            "aws_env": fake_aws_env(ports, region),
            "python": sys.executable,
            "pythonpath": str(ROOT / "local"),
            "state_dir": str(STATE_DIR),
            "logs": {name: str(state_path("logs", f"{name}.log")) for name in SERVICES},
            "project": resources["project"],
            **outputs,
        }
        state_path("outputs.json").write_text(json.dumps(out, indent=2), encoding="utf-8")

        say("warming up the functions (first start of each binary)")
        warm_up(ports)
    except Exception:
        say("start failed: stopping what was started")
        down(quiet=True)
        raise

    say(f"up in {time.monotonic() - started_at:.1f}s: endpoint {endpoint(ports)}, outputs in {state_path('outputs.json')}")
    return 0


def binary_dir() -> Path:
    """Where `make build-debug` put the function binaries."""
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug"


def function_timeouts(template_resources: dict) -> dict[str, float]:
    """Function crate -> its `Timeout` in the template (the Globals' when it sets none)."""
    default = float(template.load_globals().get("Function", {}).get("Timeout", 3))
    return {
        res["Properties"]["CodeUri"].rstrip("/").rsplit("/", 1)[-1]: float(res["Properties"].get("Timeout", default))
        for res in template_resources.values()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def function_async_retries(template_resources: dict) -> dict[str, int]:
    """Function crate -> how often Lambda retries a failed asynchronous invocation: the
    template's `EventInvokeConfig.MaximumRetryAttempts`, else Lambda's default, 2."""
    return {
        res["Properties"]["CodeUri"].rstrip("/").rsplit("/", 1)[-1]: int(
            res["Properties"].get("EventInvokeConfig", {}).get("MaximumRetryAttempts", 2)
        )
        for res in template_resources.values()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def lambda_config(resources: dict, outputs: dict, mode: str, template_resources: dict, ports: Ports, region: str, port: int, concurrency: int) -> dict:
    """What `egress_local.runtime` serves for one approval mode: every function's binary,
    exactly the environment the template gives it, and its timeout."""
    envs = provision.function_environments(resources, outputs, mode, template_resources)
    timeouts = function_timeouts(template_resources)
    common = {"RUST_LOG": "info", **fake_aws_env(ports, region)}
    return {
        "port": port,
        "concurrency": concurrency,
        "functions": {
            name: {
                "binary": str(binary_dir() / name),
                "env": {**common, **envs.get(name, {})},
                "timeout": timeouts.get(name, 900.0),
            }
            for name in resources["functions"]
        },
    }


def warm_up(ports: Ports) -> None:
    """Invokes each function once with an empty event (it answers with a validation error),
    so every binary has started (and read its configuration) before the first real request."""

    def one(profile_function: tuple[str, str]) -> tuple[str, str, float, str]:
        profile, function = profile_function
        port = ports.watch_single if profile == "single" else ports.watch_dual
        started = time.monotonic()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=WARM_UP_TIMEOUT_SECONDS) as resp:
                outcome = f"HTTP {resp.status}"
        except TimeoutError as exc:
            log = state_path("logs", f"lambda-{profile}.log")
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
            raise StackError(
                f"{function} ({profile}) did not answer within {WARM_UP_TIMEOUT_SECONDS}s; the end of {log}:\n{tail}"
            ) from exc
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            outcome = f"HTTP {exc.code}"
            # A function error is the expected answer to `{}`; a function that cannot start
            # (its configuration, a missing binary) answers Runtime.ExitError.
            if exc.code != 500 or "Runtime.ExitError" in body:
                log = state_path("logs", f"lambda-{profile}.log")
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
                raise StackError(f"warm-up of {function} ({profile}) failed: {outcome} {body[:300]}; the end of {log}:\n{tail}")
        return profile, function, time.monotonic() - started, outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(WARM_UP)) as pool:
        for profile, function, seconds, outcome in pool.map(one, WARM_UP):
            say(f"  {function:<18} ({profile}) ready in {seconds:5.1f}s")


def down(quiet: bool = False) -> int:
    procs = [p for p in running_procs().values() if p is not None]
    if not procs and not quiet:
        say("not running")
    for proc in reversed(procs):
        if not quiet:
            say(f"stopping {proc.name} (pid {proc.pid})")
        stop(proc)
    for stale in ("outputs.json", "router.json"):
        state_path(stale).unlink(missing_ok=True)
    return 0


def status() -> int:
    ports = Ports.from_env()
    procs = running_procs()
    outputs = read_outputs()
    alive = {name: (p is not None and p.alive()) for name, p in procs.items()}
    for name in SERVICES:
        p = procs[name]
        state = "running" if alive[name] else ("dead (stale pid file)" if p else "stopped")
        say(f"{name:<13} {state}{f' (pid {p.pid})' if p and alive[name] else ''}")
    if all(alive.values()) and outputs and router_stack_id(ports) == outputs.get("stack_id"):
        say(f"up: stack {outputs['stack_id']} at {outputs['endpoint']}")
        return 0
    if not any(alive.values()):
        say("down")
        return 3
    say("partly running: run `make stack-down` then `make stack-up`")
    return 1


def clean_state() -> None:
    """Removes logs and state of a stopped stack."""
    if any(p is not None and p.alive() for p in running_procs().values()):
        raise StackError("the stack is running: stop it first")
    shutil.rmtree(STATE_DIR, ignore_errors=True)
