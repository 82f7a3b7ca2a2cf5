"""The Lambda service of the local stack: the Invoke API in front of the Lambda runtime API,
run on the function binaries `make build-debug` built.

Each profile (single or dual approval) is one process of this module. It answers Lambda's
`Invoke` (`POST /2015-03-31/functions/<name>/invocations`, what the edge router sends) and
serves the runtime API (`/.rt/<name>/<slot>/2018-06-01/runtime/...`) that the function
processes poll, as the Lambda service does:

- an instance is a process of the function's binary, started when an invocation finds no
  idle instance, up to `--concurrency` per function, and kept for the next ones;
- an instance runs one invocation at a time;
- an instance that exits mid-invocation (it crashed, or a chaos test killed it) fails that
  invocation at once with `Runtime.ExitError`, as Lambda does, and the next invocation
  starts a new instance;
- an invocation that gets no answer within the function's timeout (counted from when an
  instance takes it, as on Lambda, not while it waits for a free instance) fails with
  `Sandbox.Timedout` and its instance is stopped.

Why not `cargo lambda watch`: it starts each instance with `cargo run`, which compiles the
working tree when it changed since the build (a stack started while the code is edited runs
whatever compiles, or nothing), takes seconds per instance when many start at once, and
leaves an invocation waiting forever when its instance dies. `cargo lambda watch` is still
the way to run one function by hand (README).

The error answers have the shape the router translates (`router.translate_watch_response`):
HTTP 500 with the runtime's `{"errorType", "errorMessage"}` for a function error.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"
RUNTIME_PREFIX = "/.rt/"
API_VERSION = "2018-06-01"
# How long an idle instance's `next` poll is held before it is answered "nothing yet" and
# asked to poll again: the poll must not outlive a stopped instance's socket for ever.
POLL_SECONDS = 30.0
# The longest any invocation may run (Lambda's maximum timeout).
DEFAULT_TIMEOUT_SECONDS = 900.0
# How long an invocation may wait for a free instance before it is refused as throttled.
QUEUE_SECONDS = 900.0


#: What a held `next` poll gets when its instance has died.
GONE = object()


def log(msg: str) -> None:
    print(f"[lambda] {msg}", flush=True)


@dataclass
class Invocation:
    request_id: str
    function: str
    payload: bytes
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    # Set when an instance takes it: its timeout runs from then, as on Lambda.
    taken: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    body: bytes = b""

    def finish(self, status: int, body: bytes) -> bool:
        """Records the outcome once; later outcomes (a late answer) are ignored."""
        if self.done.is_set():
            return False
        self.status, self.body = status, body
        self.done.set()
        self.taken.set()  # whoever waits for an instance to take it stops waiting too
        return True


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


@dataclass
class Instance:
    function: str
    slot: int
    process: subprocess.Popen
    current: Invocation | None = None
    # Invocations taken; an instance that exits before its first one failed to start.
    taken: int = 0


class Service:
    """Invocation queues, instances and their processes, for one profile."""

    def __init__(
        self,
        port: int,
        functions: dict[str, Path],
        env: dict[str, dict[str, str]],
        concurrency: int,
        timeouts: dict[str, float],
        log_file,
    ):
        self.port = port
        self.functions = functions
        self.env = env
        self.concurrency = max(1, concurrency)
        self.timeouts = timeouts
        self.log_file = log_file
        self.lock = threading.Lock()
        self.queues: dict[str, queue.Queue[Invocation]] = {name: queue.Queue() for name in functions}
        self.instances: dict[str, dict[int, Instance]] = {name: {} for name in functions}
        self.invocations: dict[str, Invocation] = {}
        self.idle: dict[str, int] = {name: 0 for name in functions}
        self.stopping = False

    # -- instances --------------------------------------------------------------------------

    def runtime_api(self, function: str, slot: int) -> str:
        return f"http://127.0.0.1:{self.port}{RUNTIME_PREFIX}{function}/{slot}"

    def start_instance(self, function: str) -> None:
        """Starts one more instance of `function` if below the concurrency (lock held)."""
        running = self.instances[function]
        if len(running) >= self.concurrency:
            return
        slot = next(i for i in range(self.concurrency + 1) if i not in running)
        env = {
            **self.env.get(function, {}),
            "AWS_LAMBDA_FUNCTION_NAME": function,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_RUNTIME_API": self.runtime_api(function, slot),
            "AWS_LAMBDA_INSTANCE_ID": f"{function}-{slot}",
        }
        process = subprocess.Popen(
            [str(self.functions[function])],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        running[slot] = Instance(function, slot, process)
        log(f"started {function} instance {slot} (pid {process.pid})")
        threading.Thread(target=self.reap, args=(running[slot],), daemon=True).start()

    def reap(self, instance: Instance) -> None:
        """Waits for an instance's process to exit; fails its invocation if it had one."""
        code = instance.process.wait()
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        with self.lock:
            if self.instances[instance.function].get(instance.slot) is instance:
                self.instances[instance.function].pop(instance.slot)
            current, instance.current = instance.current, None
            if self.stopping:
                return
            if instance.taken == 0:
                # It never took an invocation: it cannot start (its configuration, say). Fail
                # one waiting invocation with the init error rather than restart in a loop.
                try:
                    current = self.queues[instance.function].get_nowait()
                except queue.Empty:
                    current = None
            elif not self.queues[instance.function].empty():
                self.start_instance(instance.function)
        log(f"{instance.function} instance {instance.slot} (pid {instance.process.pid}) exited: {how}")
        if current is not None and current.finish(
            500,
            error_body(
                "Runtime.ExitError",
                f"RequestId: {current.request_id} Error: Runtime exited with error: {how}",
            ),
        ):
            log(f"{current.function} invocation {current.request_id} failed: its instance exited ({how})")

    # -- the Invoke API ----------------------------------------------------------------------

    def invoke(self, function: str, payload: bytes) -> tuple[int, bytes]:
        if function not in self.functions:
            return 404, f"Function not found: {function} (known: {sorted(self.functions)})".encode()
        timeout = self.timeouts.get(function, DEFAULT_TIMEOUT_SECONDS)
        inv = Invocation(str(uuid.uuid4()), function, payload, time.time() + timeout)
        with self.lock:
            self.invocations[inv.request_id] = inv
            self.queues[function].put(inv)
            if self.idle[function] == 0:
                self.start_instance(function)
        try:
            # Queued while every instance is busy (Lambda would add instances or throttle);
            # the function's timeout counts from when an instance takes the invocation.
            if not inv.taken.wait(QUEUE_SECONDS):
                inv.finish(429, error_body("TooManyRequestsException", f"no instance of {function} free for {QUEUE_SECONDS:.0f} s"))
                return inv.status, inv.body
            if not inv.done.wait(max(0.0, inv.deadline - time.time())):
                inv.finish(500, error_body("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"))
                log(f"{function} invocation {inv.request_id} timed out after {timeout:.0f} s: stopping its instance")
                self.stop_instance_running(inv)
            return inv.status, inv.body
        finally:
            with self.lock:
                self.invocations.pop(inv.request_id, None)

    def stop_instance_running(self, inv: Invocation) -> None:
        with self.lock:
            for instance in self.instances[inv.function].values():
                if instance.current is inv:
                    instance.process.kill()

    # -- the runtime API ---------------------------------------------------------------------

    def instance(self, function: str, slot: int) -> Instance | None:
        """The live instance in `slot`, if any."""
        with self.lock:
            return self.instances[function].get(slot)

    def alive(self, function: str, slot: int, instance: Instance) -> bool:
        """`instance` still holds its slot and its process runs (lock held)."""
        return self.instances[function].get(slot) is instance and instance.process.poll() is None

    def next_invocation(self, function: str, slot: int, instance: Instance) -> Invocation | None | object:
        """The next invocation for `instance`, `None` when none came within a poll, or `GONE`
        when the instance died (its held poll must stop: the slot may serve a new instance)."""
        with self.lock:
            if not self.alive(function, slot, instance):
                return GONE
            self.idle[function] += 1
        try:
            inv = self.queues[function].get(timeout=POLL_SECONDS)
        except queue.Empty:
            return None
        finally:
            with self.lock:
                self.idle[function] -= 1
        if inv.done.is_set():
            # Refused while queued: take the next one on the next poll.
            return None
        with self.lock:
            if not self.alive(function, slot, instance):
                # The instance died while its poll was held (killed while idle): its poll
                # still counted as idle, so no instance was started for this invocation, and
                # handing it to a dead connection would lose it until its timeout. Queue it
                # again for a live instance.
                self.queues[function].put(inv)
                if self.idle[function] == 0:
                    self.start_instance(function)
                return GONE
            instance.current = inv
            instance.taken += 1
            inv.deadline = time.time() + self.timeouts.get(function, DEFAULT_TIMEOUT_SECONDS)
            inv.taken.set()
        return inv

    def answered(self, function: str, slot: int, request_id: str, status: int, body: bytes) -> bool:
        with self.lock:
            instance = self.instances[function].get(slot)
            if instance is not None and instance.current is not None and instance.current.request_id == request_id:
                instance.current = None
            inv = self.invocations.get(request_id)
        return inv is not None and inv.finish(status, body)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            processes = [i.process for pool in self.instances.values() for i in pool.values()]
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def handler_for(service: Service):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without TCP_NODELAY the body waits up to 40 ms for
        # the function's delayed acknowledgement (see the router's `Handler`).
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):  # the function logs are what matters
            pass

        def body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            try:
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The caller went away (an instance stopped after its timeout): nothing to tell.
                self.close_connection = True

        def runtime_target(self) -> tuple[str, int, list[str]] | None:
            """`/.rt/<function>/<slot>/2018-06-01/runtime/<rest...>`."""
            if not self.path.startswith(RUNTIME_PREFIX):
                return None
            parts = self.path[len(RUNTIME_PREFIX) :].split("/")
            if len(parts) < 4 or parts[2] != API_VERSION or parts[3] != "runtime":
                return None
            function, slot = unquote(parts[0]), parts[1]
            if function not in service.functions or not slot.isdigit():
                return None
            return function, int(slot), parts[4:]

        def do_GET(self):
            target = self.runtime_target()
            if target is None or target[2] != ["invocation", "next"]:
                return self.reply(404, b'{"message":"not found"}')
            function, slot, _ = target
            instance = service.instance(function, slot)
            if instance is None:
                return self.reply(410, b'{"message":"no such instance"}')
            while True:
                inv = service.next_invocation(function, slot, instance)
                if inv is GONE:
                    return self.reply(410, b'{"message":"instance stopped"}')
                if inv is not None:
                    break
                if service.stopping:
                    return self.reply(503, b"{}")
            self.reply(
                200,
                inv.payload,
                {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(inv.deadline * 1000)),
                    "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:local:000000000000:function:{function}",
                    "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}",
                },
            )

        def do_POST(self):
            payload = self.body()
            if self.path.startswith(INVOKE_PREFIX) and self.path.endswith(INVOKE_SUFFIX):
                function = unquote(self.path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)])
                status, body = service.invoke(function, payload)
                return self.reply(status, body)
            target = self.runtime_target()
            if target is None:
                return self.reply(404, b'{"message":"not found"}')
            function, slot, rest = target
            if rest == ["init", "error"]:
                log(f"{function} instance {slot} failed to start: {payload[:500].decode('utf-8', 'replace')}")
                return self.reply(202, b'{"status":"OK"}')
            if len(rest) == 3 and rest[0] == "invocation" and rest[2] in ("response", "error"):
                request_id = rest[1]
                if rest[2] == "response":
                    known = service.answered(function, slot, request_id, 200, payload)
                else:
                    known = service.answered(function, slot, request_id, 500, payload or error_body("Unknown", "no error body"))
                return self.reply(202 if known else 400, b'{"status":"OK"}')
            return self.reply(404, b'{"message":"not found"}')

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m egress_local.runtime", description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        help='JSON: {"port": P, "concurrency": N, "functions": {name: {"binary", "env", "timeout"}}}',
    )
    args = p.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8"))
    specs = config["functions"]
    functions = {name: Path(spec["binary"]) for name, spec in specs.items()}
    missing = [str(path) for path in functions.values() if not path.is_file()]
    if missing:
        log(f"function binaries missing (run `make build-debug`): {', '.join(missing)}")
        return 2
    service = Service(
        int(config["port"]),
        functions,
        {name: {str(k): str(v) for k, v in spec.get("env", {}).items()} for name, spec in specs.items()},
        int(config.get("concurrency", 1)),
        {name: float(spec["timeout"]) for name, spec in specs.items() if spec.get("timeout")},
        sys.stdout,
    )
    server = ThreadingHTTPServer(("127.0.0.1", service.port), handler_for(service))
    server.daemon_threads = True

    def shutdown(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log(f"serving {len(functions)} functions on 127.0.0.1:{service.port}, up to {service.concurrency} instances each")
    try:
        server.serve_forever()
    finally:
        service.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
