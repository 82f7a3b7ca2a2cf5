"""The edge router's fault injector (issue 10, `make chaos`).

For a chosen fraction of the AWS calls the functions and moto's Step Functions interpreter
make, the router answers with an error AWS really returns for that service and protocol
instead of serving the call:

- `throttle`: S3 `503 SlowDown` (REST-XML); DynamoDB `400 ThrottlingException` or
  `ProvisionedThroughputExceededException` (JSON 1.0); Step Functions `400
  ThrottlingException`; SNS (query) `429 Throttled`; SES (query) `400 Throttling`; SESv2 `429
  TooManyRequestsException`; Lambda `429 TooManyRequestsException`;
- `internal`: `500 InternalError` (S3, SNS), `InternalServerError` (DynamoDB),
  `InternalFailure` (Step Functions, SES), `500 ServiceException` (Lambda);
- `reset`: the connection is reset before the call is served;
- `timeout`: the call IS served, then its answer is held back for `timeout_ms` and the
  connection dropped: to the caller, a response that never came within its timeout, while
  the side effect happened (what retries must be idempotent against).

Only calls of the chosen callers are faulted: `functions` (the AWS SDK for Rust without the
harness's `app/egress-harness` mark) and `interpreter` (moto's Step Functions interpreter,
recognised by the access key `ak` it signs with). The test harness, the SWB simulator, the
provisioner, Cognito and the reviewer API's simulator are never faulted, so a suite reads the
state as it really is. The same chosen calls can be slowed by a fixed `latency_ms` each
(benchmarks; `make chaos` also uses it to hold a step mid-copy while it kills the function).
`GET` counts every chosen call per operation, faulted or not.

Replay: whether the n-th call of a service operation is faulted, and how, is a pure function of
(seed, service, operation, n), so a run with the same seed and the same calls per operation
faults the same calls, whatever the interleaving of other operations.

Configured at router start by environment (`EGRESS_FAULT_RATE`, `EGRESS_FAULT_SEED`,
`EGRESS_FAULT_SERVICES`, `EGRESS_FAULT_OPERATIONS`, `EGRESS_FAULT_KINDS`,
`EGRESS_FAULT_CALLERS`, `EGRESS_FAULT_LATENCY_MS`, `EGRESS_FAULT_TIMEOUT_MS`), or at run time
by `POST /_local/faults` (the same settings as JSON), `GET /_local/faults` (settings and counts),
`DELETE /_local/faults` (off). Off by default.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import uuid
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qs, urlsplit

SERVICES = ("s3", "dynamodb", "sns", "ses", "states", "lambda")
KINDS = ("throttle", "internal", "reset", "timeout")
CALLERS = ("functions", "interpreter")
# moto's Step Functions interpreter signs its service calls with this access key
# (moto/stepfunctions/parser/asl/utils/boto_client.py).
INTERPRETER_ACCESS_KEY = "ak"
HARNESS_MARK = "app/egress-harness"
DEFAULT_TIMEOUT_MS = 2000
MAX_LATENCY_MS = 60_000


class FaultConfigError(ValueError):
    """A fault setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class Call:
    """One AWS call as the injector sees it."""

    service: str
    operation: str
    caller: str  # "functions", "interpreter" or "harness"
    # SESv2 speaks REST-JSON, SES v1 the query protocol: their errors differ.
    rest_json: bool = False


@dataclass
class Settings:
    """What to fault, how often, and the added latency."""

    rate: float = 0.0
    seed: int = 0
    services: list[str] = field(default_factory=lambda: list(SERVICES))
    # `service:Operation` or `Operation`; empty: every operation of the chosen services.
    operations: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    callers: list[str] = field(default_factory=lambda: list(CALLERS))
    latency_ms: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    @classmethod
    def from_json(cls, value: dict) -> "Settings":
        if not isinstance(value, dict):
            raise FaultConfigError("the fault settings must be a JSON object")
        known = set(asdict(cls()))
        unknown = sorted(set(value) - known)
        if unknown:
            raise FaultConfigError(f"unknown fault setting(s) {unknown}; known: {sorted(known)}")
        settings = cls()
        if "rate" in value:
            settings.rate = _number(value["rate"], "rate")
        if "seed" in value:
            settings.seed = int(_number(value["seed"], "seed"))
        for name, allowed in (("services", SERVICES), ("kinds", KINDS), ("callers", CALLERS)):
            if name in value:
                setattr(settings, name, _names(value[name], name, allowed))
        if "operations" in value:
            settings.operations = _names(value["operations"], "operations", None)
        if "latency_ms" in value:
            settings.latency_ms = int(_number(value["latency_ms"], "latency_ms"))
        if "timeout_ms" in value:
            settings.timeout_ms = int(_number(value["timeout_ms"], "timeout_ms"))
        settings.check()
        return settings

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        value: dict = {}
        for name in ("rate", "seed", "latency_ms", "timeout_ms"):
            raw = env.get(f"EGRESS_FAULT_{name.upper()}", "").strip()
            if raw:
                try:
                    value[name] = float(raw)
                except ValueError as exc:
                    raise FaultConfigError(f"EGRESS_FAULT_{name.upper()} must be a number, got {raw!r}") from exc
        for name in ("services", "operations", "kinds", "callers"):
            raw = env.get(f"EGRESS_FAULT_{name.upper()}", "").strip()
            if raw:
                value[name] = [part.strip() for part in raw.split(",") if part.strip()]
        return cls.from_json(value)

    def check(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise FaultConfigError(f"rate must be between 0 and 1, got {self.rate}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise FaultConfigError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}, got {self.latency_ms}")
        if not 0 <= self.timeout_ms <= MAX_LATENCY_MS:
            raise FaultConfigError(f"timeout_ms must be between 0 and {MAX_LATENCY_MS}, got {self.timeout_ms}")
        if self.rate > 0 and not self.kinds:
            raise FaultConfigError("a fault rate needs at least one kind")

    @property
    def active(self) -> bool:
        return self.rate > 0 or self.latency_ms > 0


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _names(value, name: str, allowed: tuple[str, ...] | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FaultConfigError(f"{name} must be a list of names, got {value!r}")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise FaultConfigError(f"{name}: unknown {bad}; known: {list(allowed)}")
    return list(value)


# -- recognising a call ---------------------------------------------------------------------


def _credential(authorization: str, query: dict) -> tuple[str, str] | None:
    """(access key, service) of a SigV4 signature, from the header or a presigned query."""
    scope = None
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].strip()
    elif query.get("X-Amz-Credential"):
        scope = query["X-Amz-Credential"][0]
    if not scope:
        return None
    parts = scope.split("/")
    if len(parts) < 5:
        return None
    return parts[0], parts[3]


def caller_of(headers: dict, authorization: str, access_key: str | None) -> str:
    """Who made a call: the harness (marked), moto's interpreter (its key) or a function."""
    agent = " ".join(v for k, v in headers.items() if k.lower() in ("user-agent", "x-amz-user-agent"))
    if HARNESS_MARK in agent:
        return "harness"
    if access_key == INTERPRETER_ACCESS_KEY:
        return "interpreter"
    if "aws-sdk-rust" in agent:
        return "functions"
    return "harness"


def s3_operation(method: str, path: str, query: dict, headers: dict) -> str:
    """The S3 operation of a path-style REST call."""
    lower = {k.lower(): v for k, v in headers.items()}
    has_key = len([p for p in path.split("/") if p]) >= 2
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if "x-amz-copy-source" in lower else "UploadPart"
        if not has_key:
            return "PutBucket"
        return "CopyObject" if "x-amz-copy-source" in lower else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "delete" in query:
            return "DeleteObjects"
        return "PostObject"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if not has_key:
        if "versions" in query:
            return "ListObjectVersions"
        if "uploads" in query:
            return "ListMultipartUploads"
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if "uploadId" in query:
        return "ListParts"
    if "tagging" in query:
        return "GetObjectTagging"
    return "GetObject"


def classify(method: str, raw_path: str, headers: dict, body: bytes) -> Call | None:
    """The service, operation and caller of an AWS call; None when the request is not one the
    injector can fault (the router's own endpoints, Cognito, an unsigned request)."""
    parts = urlsplit(raw_path)
    path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
    if path.startswith("/_local/") or path.startswith("/_sns/"):
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    authorization = lower.get("authorization", "")
    credential = _credential(authorization, query)
    if credential is None:
        return None
    access_key, service = credential
    caller = caller_of(headers, authorization, access_key)
    target = lower.get("x-amz-target", "")
    if path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
        return Call("lambda", "Invoke", caller)
    if target:
        prefix, _, operation = target.partition(".")
        if prefix.startswith("DynamoDB"):
            return Call("dynamodb", operation, caller)
        if prefix == "AWSStepFunctions":
            return Call("states", operation, caller)
        return None  # Cognito, KMS, ...: not faulted
    if service in ("sns", "ses", "email"):
        if path.startswith("/v2/email/"):
            operation = "SendEmail" if path.endswith("/outbound-emails") else path.rsplit("/", 1)[-1]
            return Call("ses", operation, caller, rest_json=True)
        form = parse_qs(body.decode("utf-8", "replace")) if body else {}
        action = (form.get("Action") or query.get("Action") or [""])[0]
        return Call("ses" if service in ("ses", "email") else "sns", action or "Unknown", caller)
    if service == "s3":
        return Call("s3", s3_operation(method, path, query, headers), caller)
    return None


# -- the errors AWS answers -----------------------------------------------------------------

QUERY_NAMESPACE = {
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "ses": "http://ses.amazonaws.com/doc/2010-12-01/",
}


def error_response(call: Call, kind: str, method: str, variant: int = 0) -> tuple[int, dict, bytes]:
    """The answer AWS gives `call` for a `throttle` or `internal` fault: status, headers, body.
    `variant` picks between equivalent errors (DynamoDB has two throttling errors)."""
    request_id = str(uuid.uuid4())
    throttle = kind == "throttle"
    if call.service == "s3":
        code, message, status = (
            ("SlowDown", "Please reduce your request rate.", 503)
            if throttle
            else ("InternalError", "We encountered an internal error. Please try again.", 500)
        )
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{request_id}</RequestId><HostId>egress-local-faults</HostId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        return status, headers, (b"" if method == "HEAD" else body)
    if call.service in ("dynamodb", "states"):
        if call.service == "dynamodb":
            if throttle:
                error_type = (
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
                    if variant % 2
                    else "com.amazon.coral.availability#ThrottlingException"
                )
                message = (
                    "The level of configured provisioned throughput for the table was exceeded."
                    if variant % 2
                    else "Rate of requests exceeds the allowed throughput."
                )
            else:
                error_type, message = "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"
            content_type = "application/x-amz-json-1.0"
        else:
            error_type, message = (
                ("ThrottlingException", "Rate exceeded") if throttle else ("InternalFailure", "Internal failure")
            )
            content_type = "application/x-amz-json-1.0"
        body = json.dumps({"__type": error_type, "message": message}).encode()
        headers = {"Content-Type": content_type, "x-amzn-RequestId": request_id}
        return (400 if throttle else 500), headers, body
    if call.service == "lambda":
        error_type, status, body_value = (
            (
                "TooManyRequestsException",
                429,
                {"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
            )
            if throttle
            else ("ServiceException", 500, {"Type": "Service", "Message": "Internal error"})
        )
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id}
        return status, headers, json.dumps(body_value).encode()
    if call.rest_json:
        return sesv2_error_response(kind)
    # SNS models its own errors (ThrottledException 429, InternalErrorException 500); SES v1
    # answers the query protocol's common ones.
    if call.service == "sns":
        code, error_type_kind, status, message = (
            ("Throttled", "Sender", 429, "Rate exceeded")
            if throttle
            else ("InternalError", "Receiver", 500, "Internal error")
        )
    else:
        code, error_type_kind, status, message = (
            ("Throttling", "Sender", 400, "Maximum sending rate exceeded.")
            if throttle
            else ("InternalFailure", "Receiver", 500, "Internal failure")
        )
    body = (
        f'<ErrorResponse xmlns="{QUERY_NAMESPACE.get(call.service, QUERY_NAMESPACE["sns"])}">'
        f"<Error><Type>{error_type_kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body


def sesv2_error_response(kind: str) -> tuple[int, dict, bytes]:
    """SESv2 (REST-JSON) answers: `429 TooManyRequestsException` or a 500."""
    error_type, status = ("TooManyRequestsException", 429) if kind == "throttle" else ("InternalFailure", 500)
    body = json.dumps({"message": "Too many requests" if status == 429 else "Internal failure"}).encode()
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}, body


# -- the injector ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A decision to fault one call."""

    kind: str
    variant: int
    timeout_ms: int


class Injector:
    """The injector's settings and what it did. Thread-safe: the router serves calls on many
    threads."""

    def __init__(self, settings: Settings | None = None):
        self._lock = threading.Lock()
        self._settings = settings or Settings()
        self._calls: dict[str, int] = {}
        self._faults: dict[str, int] = {}

    def configure(self, settings: Settings) -> None:
        """New settings; the counts and the replay sequence start again."""
        with self._lock:
            self._settings = settings
            self._calls, self._faults = {}, {}

    def off(self) -> None:
        """No more faults or latency; the counts stay readable until the next `configure`."""
        with self._lock:
            self._settings = Settings(seed=self._settings.seed)

    def latency_ms(self, call: Call | None) -> int:
        """The latency to add to this call (the chosen callers, services and operations)."""
        with self._lock:
            settings = self._settings
        return settings.latency_ms if call is not None and _chosen(settings, call) else 0

    def decide(self, call: Call | None) -> Fault | None:
        """Whether to fault this call, and how; a chosen call is counted either way (so a
        suite can also watch a step's progress by its calls)."""
        if call is None:
            return None
        with self._lock:
            settings = self._settings
            if not _chosen(settings, call):
                return None
            name = f"{call.service}:{call.operation}"
            n = self._calls.get(name, 0)
            self._calls[name] = n + 1
            if settings.rate <= 0:
                return None
            draw = random.Random(_seed_of(settings.seed, name, n))
            if draw.random() >= settings.rate:
                return None
            kinds = [k for k in settings.kinds if applicable(call, k)]
            if not kinds:
                return None
            kind = draw.choice(kinds)
            fault_name = f"{name}:{kind}"
            self._faults[fault_name] = self._faults.get(fault_name, 0) + 1
            return Fault(kind=kind, variant=draw.randrange(2), timeout_ms=settings.timeout_ms)

    def report(self) -> dict:
        """The settings, calls seen per operation and faults injected per operation and kind."""
        with self._lock:
            return {
                "settings": asdict(self._settings),
                "active": self._settings.active,
                "calls": dict(sorted(self._calls.items())),
                "faults": dict(sorted(self._faults.items())),
                "faults_total": sum(self._faults.values()),
                "calls_total": sum(self._calls.values()),
            }


def _chosen(settings: Settings, call: Call) -> bool:
    """The call is one of the chosen callers, services and operations."""
    if call.caller not in settings.callers or call.service not in settings.services:
        return False
    return not settings.operations or (
        call.operation in settings.operations or f"{call.service}:{call.operation}" in settings.operations
    )


def applicable(call: Call, kind: str) -> bool:
    """Which kinds apply to a call. Connection-level faults (`reset`, `timeout`) hit only the
    functions' calls: Step Functions makes its service integrations' calls inside AWS and
    retries their connection errors itself, while moto's interpreter, which has no such retry,
    turns one into `States.Runtime`, an error real Step Functions never raises for it (and no
    `Retry` may match). The interpreter gets the service errors (throttling, 500s).

    And a Step Functions callback is not answered late. A `SendTaskSuccess` that was served closes the task, so its retry gets
    `TaskTimedOut`; telling that apart from a decision that never arrived needs the
    execution's history, which the reviewer API does not read (a known gap, README "Chaos").
    Throttling, internal errors and resets (nothing served) do apply to callbacks."""
    if kind in ("reset", "timeout") and call.caller == "interpreter":
        return False
    return not (call.service == "states" and kind == "timeout")


def _seed_of(seed: int, name: str, n: int) -> int:
    digest = hashlib.sha256(f"{seed}:{name}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
