"""The edge router: the one AWS endpoint of the local stack.

moto's Step Functions interpreter makes its service calls with its own client at
`http://localhost:$MOTO_PORT`; moto runs with `MOTO_PORT` pointing here. So this router sees
every call, from the interpreter, the functions, the tests and the demo alike, and:

- sends Lambda `Invoke` (`POST /2015-03-31/functions/<name|ARN|name:qualifier>/invocations`)
  to `cargo lambda watch`, which runs the workspace's real function binaries, fixing where it
  differs from Lambda: a function error comes back as HTTP 200 with
  `X-Amz-Function-Error: Unhandled` and the error JSON (which is how Step Functions learns the
  `errorType` its `Retry`/`Catch` match on); ARNs and qualifiers map to the binary name;
  `X-Amz-Invocation-Type: Event` is answered 202 and run in the background, and retried
  when it fails as Lambda retries it (the function's `EventInvokeConfig`, 2 by default);
- turns SNS `http` deliveries to `/_sns/<profile>/<function>` into SNS Lambda events and
  invokes the function asynchronously, as Lambda's SNS trigger does;
- enforces what moto's Cognito does not: a user's own `UpdateUserAttributes` (access token)
  may write only the attributes its app client's `WriteAttributes` name, as Cognito checks
  (issue 8, defect 7: a reviewer must not be able to rename themself); `InitiateAuth` and
  `AdminInitiateAuth` are refused for an auth flow the app client's `ExplicitAuthFlows` do
  not allow; `SignUp` is refused when the pool allows only administrators to create users;
- lets a browser call Cognito here (the web app's Amplify `Auth.endpoint` override): it
  answers the CORS preflight of a Cognito call as AWS does and adds
  `Access-Control-Allow-Origin: *` to every Cognito answer;
- proxies everything else to moto unchanged.

`GET /_local/health` returns the stack id, so clients can check they talk to the stack they
started; `GET /_local/invocations` lists the asynchronous invocations and their outcomes;
`GET /_local/emails` lists the e-mails SES accepted (a mail catcher: moto keeps sent mail
only in its internal state, whose dump breaks once S3 holds multipart uploads).

`/_local/faults` drives the fault injector (`faults.py`, `make chaos`): `POST` its settings
as JSON, `GET` them with what it injected, `DELETE` to turn it off. Off unless configured
(also by `EGRESS_FAULT_*` variables at start).
"""

from __future__ import annotations

import base64
import email
import email.policy
import http.client
import json
import logging
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from . import faults, malware

LOG = logging.getLogger("edge-router")

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
}

INVOKE_PREFIX = "/2015-03-31/functions/"
INVOKE_SUFFIX = "/invocations"

# How long one invocation may run before the router gives up on `cargo lambda watch`. The
# first invocation of a function may have to wait for cargo (shared target/ dir).
INVOKE_TIMEOUT_SECONDS = 900
#: Seconds before the first retry of a failed asynchronous invocation (twice that before the
#: second); Lambda waits a minute or more, which would only slow the local tests down.
ASYNC_RETRY_DELAY = 1.0

COGNITO_TARGET = "AWSCognitoIdentityProviderService."
UPDATE_USER_ATTRIBUTES = COGNITO_TARGET + "UpdateUserAttributes"
INITIATE_AUTH = COGNITO_TARGET + "InitiateAuth"
ADMIN_INITIATE_AUTH = COGNITO_TARGET + "AdminInitiateAuth"
SIGN_UP = COGNITO_TARGET + "SignUp"

# The `ExplicitAuthFlows` value that lets a client use each `AuthFlow` (with the legacy names
# Cognito still accepts), and what a client that sets none allows.
AUTH_FLOW_ALLOWED_BY = {
    "USER_SRP_AUTH": ("ALLOW_USER_SRP_AUTH",),
    "USER_PASSWORD_AUTH": ("ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"),
    "REFRESH_TOKEN_AUTH": ("ALLOW_REFRESH_TOKEN_AUTH",),
    "REFRESH_TOKEN": ("ALLOW_REFRESH_TOKEN_AUTH",),
    "CUSTOM_AUTH": ("ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"),
    "ADMIN_USER_PASSWORD_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"),
    "ADMIN_NO_SRP_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"),
    "USER_AUTH": ("ALLOW_USER_AUTH",),
}
DEFAULT_AUTH_FLOWS = ("ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH")

# What Cognito's endpoint answers a browser (its CORS preflight and the header on answers).
COGNITO_CORS_PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "content-type,x-amz-target,x-amz-user-agent,cache-control",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Max-Age": "86400",
}
COGNITO_CORS_ANSWER = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date",
}
# The scope Cognito requires of an access token that calls the user's own APIs.
USER_ADMIN_SCOPE = "aws.cognito.signin.user.admin"


def function_name_from_path(path: str) -> str | None:
    """The function named by an Invoke path, whatever form the caller used:
    `name`, `name:qualifier`, `arn:aws:lambda:<region>:<account>:function:name[:qualifier]`
    or `<account>:function:name` (partial ARN). None when the path is not an Invoke."""
    path = urlsplit(path).path
    if not (path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX)):
        return None
    raw = unquote(path[len(INVOKE_PREFIX) : -len(INVOKE_SUFFIX)])
    if not raw or "/" in raw:
        return None
    parts = raw.split(":")
    if "function" in parts:
        after = parts[parts.index("function") + 1 :]
        return after[0] if after and after[0] else None
    return parts[0]


def lambda_error_response(status: int, error_type: str, message: str) -> tuple[int, dict, bytes]:
    """A Lambda service error as the AWS SDKs parse it (`x-amzn-ErrorType`)."""
    body = json.dumps({"Type": "Service" if status >= 500 else "User", "Message": message}).encode()
    return status, {"x-amzn-ErrorType": error_type, "Content-Type": "application/json"}, body


def translate_watch_response(status: int, body: bytes) -> tuple[int, dict, bytes]:
    """Maps what `cargo lambda watch` answered to what Lambda's Invoke API answers.

    watch answers a function error with HTTP 500 and the runtime's error JSON; Lambda answers
    200 with `X-Amz-Function-Error: Unhandled`. Anything that is not a function's answer (an
    unknown function, watch itself failing) becomes a Lambda service error."""
    headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
    if 200 <= status < 300:
        return 200, headers, body
    if status == 500:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "errorType" in payload:
            headers["X-Amz-Function-Error"] = "Unhandled"
            return 200, headers, body
    if status == 404:
        return lambda_error_response(404, "ResourceNotFoundException", body.decode("utf-8", "replace")[:500])
    return lambda_error_response(502, "ServiceException", f"cargo lambda watch answered {status}: {body.decode('utf-8', 'replace')[:500]}")


def sns_lambda_event(notification: dict, subscription_arn: str) -> dict:
    """Wraps an SNS `http` delivery body into the event Lambda's SNS trigger sends."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": notification.get("Type", "Notification"),
                    "MessageId": notification["MessageId"],
                    "TopicArn": notification["TopicArn"],
                    "Subject": notification.get("Subject"),
                    "Message": notification["Message"],
                    "Timestamp": notification.get("Timestamp") or iso_now(),
                    "SignatureVersion": notification.get("SignatureVersion", "1"),
                    "Signature": notification.get("Signature", ""),
                    "SigningCertUrl": notification.get("SigningCertURL") or notification.get("SigningCertUrl", ""),
                    "UnsubscribeUrl": notification.get("UnsubscribeURL") or notification.get("UnsubscribeUrl", ""),
                    "MessageAttributes": notification.get("MessageAttributes") or {},
                },
            }
        ]
    }


def jwt_claims(token) -> dict | None:
    """The claims of a JWT, not verified (moto verifies the token when the call reaches it;
    the router only needs to know which pool and client it claims). None if not a JWT."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def cognito_write_refusal(claims: dict, requested: list[str], write_attributes: list[str] | None) -> str | None:
    """Cognito's `NotAuthorizedException` message for a user's own `UpdateUserAttributes`
    with an access token carrying `claims` through a client whose `WriteAttributes` are
    `write_attributes`; None when Cognito lets the write through.

    As in Cognito, a client with no (or an empty) `WriteAttributes` may write every mutable
    attribute: only a non-empty list restricts it."""
    if USER_ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        return "Access Token does not have required scopes"
    if write_attributes and any(name not in write_attributes for name in requested):
        return "A client attempted to write unauthorized attribute"
    return None


def auth_flow_refusal(auth_flow: str, explicit_auth_flows: list[str] | None) -> str | None:
    """Cognito's `InvalidParameterException` message for an `InitiateAuth` with `auth_flow`
    through a client whose `ExplicitAuthFlows` are `explicit_auth_flows`; None when allowed.
    A client that sets no flows allows Cognito's defaults (SRP, custom, refresh)."""
    allowed = explicit_auth_flows or DEFAULT_AUTH_FLOWS
    if any(flow in allowed for flow in AUTH_FLOW_ALLOWED_BY.get(auth_flow, ())):
        return None
    return f"{auth_flow} flow not enabled for this client"


def sign_up_refusal(user_pool: dict) -> str | None:
    """Cognito's `NotAuthorizedException` message for a `SignUp` to `user_pool` (as
    DescribeUserPool gives it); None when self sign-up is allowed."""
    if (user_pool.get("AdminCreateUserConfig") or {}).get("AllowAdminCreateUserOnly"):
        return "SignUp is not permitted for this user pool"
    return None


def is_cognito_preflight(method: str, headers) -> bool:
    """A browser's CORS preflight of a Cognito (JSON 1.1, `X-Amz-Target`) call."""
    if method != "OPTIONS" or not headers.get("Origin"):
        return False
    requested = [h.strip().lower() for h in (headers.get("Access-Control-Request-Headers") or "").split(",")]
    return (headers.get("Access-Control-Request-Method") or "").upper() == "POST" and "x-amz-target" in requested


def cognito_error_response(error_type: str, message: str) -> tuple[int, dict, bytes]:
    """A Cognito (JSON 1.1 protocol) client error as the AWS SDKs parse it."""
    body = json.dumps({"__type": error_type, "message": message}).encode()
    return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": f"{error_type}:"}, body


def sent_email(method: str, path: str, headers: dict, body: bytes) -> dict | None:
    """The e-mail in an SES `SendEmail` / `SendRawEmail` (v1, query protocol) or SESv2
    `SendEmail` request; None for any other request."""
    if method != "POST":
        return None
    path = urlsplit(path).path
    if path == "/v2/email/outbound-emails":
        request = json.loads(body or b"{}")
        destination = request.get("Destination", {})
        recipients = sum((destination.get(k, []) for k in ("ToAddresses", "CcAddresses", "BccAddresses")), [])
        content = request.get("Content", {})
        if "Raw" in content:
            return parsed_mime(request.get("FromEmailAddress", ""), recipients, base64.b64decode(content["Raw"]["Data"]))
        simple = content.get("Simple", {})
        body_part = simple.get("Body", {})
        return {
            "source": request.get("FromEmailAddress", ""),
            "recipients": recipients,
            "subject": simple.get("Subject", {}).get("Data", ""),
            "text": body_part.get("Text", {}).get("Data", ""),
            "html": body_part.get("Html", {}).get("Data", ""),
        }
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    action = form.get("Action")
    if action == "SendEmail":
        recipients = [v for k, v in sorted(form.items()) if k.startswith("Destination.") and ".member." in k]
        return {
            "source": form.get("Source", ""),
            "recipients": recipients,
            "subject": form.get("Message.Subject.Data", ""),
            "text": form.get("Message.Body.Text.Data", ""),
            "html": form.get("Message.Body.Html.Data", ""),
        }
    if action == "SendRawEmail":
        recipients = [v for k, v in sorted(form.items()) if k.startswith("Destinations.member.")]
        return parsed_mime(form.get("Source", ""), recipients, base64.b64decode(form.get("RawMessage.Data", "")))
    return None


def parsed_mime(source: str, recipients: list[str], raw: bytes) -> dict:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "source": source or str(message.get("From", "")),
        "recipients": recipients or [str(message.get("To", ""))],
        "subject": str(message.get("Subject", "")),
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
    }


def local_authorization(region: str) -> str:
    """A credential scope for moto: the region picks moto's backend; nothing checks the rest."""
    return f"AWS4-HMAC-SHA256 Credential=local/20240101/{region}/cognito-idp/aws4_request, SignedHeaders=host, Signature=0"


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Router:
    """The router's state: where things are and what the async invocations did."""

    def __init__(self, config: dict):
        self.config = config
        self.stack_id: str = config["stack_id"]
        self.moto_port: int = config["moto_port"]
        self.functions: set[str] = set(config["functions"])
        self.profiles: dict[str, int] = {k: int(v) for k, v in config["profiles"].items()}
        self.default_profile: str = config["default_profile"]
        # The stack's region: the one of its Cognito pool, for unsigned (browser) calls.
        self.region: str = config.get("region") or "us-east-1"
        self._lock = threading.Lock()
        self._invocations: list[dict] = []
        # Lambda retries a failed asynchronous invocation (an error, a timeout, a crash) as
        # often as the function's EventInvokeConfig says (2 by default), after a delay: a
        # minute or more in AWS, `async_retry_delay` seconds (then twice that) here.
        self.async_retries: dict[str, int] = {k: int(v) for k, v in config.get("async_retries", {}).items()}
        self.async_retry_delay: float = float(config.get("async_retry_delay", ASYNC_RETRY_DELAY))
        self._emails: list[dict] = []
        # Off unless EGRESS_FAULT_* says otherwise (the stack passes its environment on).
        self.faults = faults.Injector(faults.Settings.from_env())
        self.malware = malware.for_stack(self.moto_port, self.region)  # GuardDuty's stand-in (issue 12)

    # -- Lambda ---------------------------------------------------------------------------
    def invoke(self, profile: str, function: str, payload: bytes) -> tuple[int, dict, bytes]:
        """One synchronous invocation through `cargo lambda watch`."""
        if function not in self.functions:
            return lambda_error_response(
                404, "ResourceNotFoundException", f"Function not found: {function} (known: {sorted(self.functions)})"
            )
        port = self.profiles[profile]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=INVOKE_TIMEOUT_SECONDS)
        try:
            conn.request(
                "POST",
                f"{INVOKE_PREFIX}{function}{INVOKE_SUFFIX}",
                body=payload,
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        except OSError as exc:
            return lambda_error_response(502, "ServiceException", f"cargo lambda watch ({profile}) unreachable: {exc}")
        finally:
            conn.close()
        return translate_watch_response(status, body)

    def invoke_async(self, profile: str, function: str, payload: bytes, source: str) -> str:
        """Lambda's `Event` invocation: accepted now, run in the background, outcome recorded."""
        request_id = str(uuid.uuid4())
        record = {
            "request_id": request_id,
            "function": function,
            "profile": profile,
            "source": source,
            "accepted_at": iso_now(),
            "state": "running",
        }
        with self._lock:
            self._invocations.append(record)

        def run() -> None:
            retries = self.async_retries.get(function, 2)
            for attempt in range(1, retries + 2):
                started = time.monotonic()
                status, headers, body = self.invoke(profile, function, payload)
                outcome = {
                    "state": "done",
                    "seconds": round(time.monotonic() - started, 3),
                    "status": status,
                    "attempts": attempt,
                }
                if "X-Amz-Function-Error" in headers or status >= 300:
                    try:
                        outcome["error"] = json.loads(body)
                    except ValueError:
                        outcome["error"] = body.decode("utf-8", "replace")
                    outcome["state"] = "retrying" if attempt <= retries else "error"
                with self._lock:
                    if outcome["state"] == "retrying":
                        record.setdefault("retried_errors", []).append(outcome["error"])
                    record.update(outcome)
                LOG.info("async %s (%s) for %s, attempt %d: %s", function, profile, source, attempt, outcome)
                if outcome["state"] != "retrying":
                    return
                time.sleep(self.async_retry_delay * attempt)

        threading.Thread(target=run, name=f"async-{function}", daemon=True).start()
        return request_id

    # -- Cognito --------------------------------------------------------------------------
    def cognito_call(self, action: str, request: dict, authorization: str) -> tuple[int, dict]:
        """One Cognito call to moto, as the router's own (moto checks no signature: the
        credential scope of `authorization` only picks the region's backend)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.moto_port, timeout=30)
        try:
            conn.request(
                "POST",
                "/",
                body=json.dumps(request),
                headers={
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": COGNITO_TARGET + action,
                    "Authorization": authorization,
                },
            )
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        finally:
            conn.close()
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}

    def describe_client(self, pool_id: str, client_id: str, authorization: str) -> dict:
        """The app client as moto stores it (DescribeUserPoolClient). Raises LookupError when
        moto knows no such client (then no token of it is valid)."""
        if not authorization:
            authorization = local_authorization(pool_id.split("_")[0])
        status, answer = self.cognito_call(
            "DescribeUserPoolClient", {"UserPoolId": pool_id, "ClientId": client_id}, authorization
        )
        if status != 200:
            raise LookupError(f"moto has no client {client_id} in {pool_id} ({status}: {answer})")
        return answer.get("UserPoolClient", {})

    def client_write_attributes(self, pool_id: str, client_id: str, authorization: str) -> list[str] | None:
        """The app client's `WriteAttributes` (see `describe_client`)."""
        return self.describe_client(pool_id, client_id, authorization).get("WriteAttributes")

    def find_client(self, client_id: str, authorization: str) -> tuple[dict, dict]:
        """The pool (DescribeUserPool) and the app client with id `client_id`, in the region
        of `authorization`. Raises LookupError when moto knows no such client."""
        status, answer = self.cognito_call("ListUserPools", {"MaxResults": 60}, authorization)
        if status != 200:
            raise LookupError(f"moto could not list the user pools ({status}: {answer})")
        for pool in answer.get("UserPools") or []:
            pool_id = str(pool.get("Id", ""))
            try:
                app_client = self.describe_client(pool_id, client_id, authorization)
            except LookupError:
                continue
            status, described = self.cognito_call("DescribeUserPool", {"UserPoolId": pool_id}, authorization)
            if status == 200:
                return described.get("UserPool", {}), app_client
        raise LookupError(f"moto has no client {client_id}")

    def invocations(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._invocations]

    def record_email(self, message: dict) -> None:
        with self._lock:
            self._emails.append({**message, "at": iso_now()})

    def emails(self) -> list[dict]:
        with self._lock:
            return [dict(m) for m in self._emails]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "egress-edge-router"
    router: Router  # set on the class by `serve`
    # An answer goes out as two writes (the headers, then the body). With Nagle's algorithm on,
    # the body waits for the client to acknowledge the headers, and a client on a kept-alive
    # connection delays that acknowledgement by up to 40 ms: every answer with a body took
    # 40 ms more than it needed. TCP_NODELAY sends both at once, as AWS's endpoints do.
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args) -> None:  # noqa: D401 - BaseHTTPRequestHandler API
        LOG.debug("%s %s", self.address_string(), fmt % args)

    # Every verb goes through one dispatcher.
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for k, v in {**getattr(self, "extra_headers", {}), **headers}.items():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, value) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(value, indent=2).encode())

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        target = self.headers.get("X-Amz-Target") or ""
        # Set per request by the fault injector (a keep-alive connection serves many).
        self.lost_answer_ms = None
        # Headers added to whatever this request is answered with (a browser's Cognito call).
        self.extra_headers = COGNITO_CORS_ANSWER if target.startswith(COGNITO_TARGET) else {}
        # A browser's Cognito calls are unsigned, and moto takes the region from the signature
        # (else us-east-1): name the stack's region for them, as the regional endpoint does.
        self.upstream_headers = {}
        if target.startswith(COGNITO_TARGET) and not self.headers.get("Authorization"):
            self.upstream_headers = {"Authorization": local_authorization(self.router.region)}
        try:
            body = self._read_body()
            if path == "/_local/health" and self.command == "GET":
                self._send_json(200, {"stack_id": self.router.stack_id, "service": "egress-edge-router"})
            elif path == "/_local/invocations" and self.command == "GET":
                self._send_json(200, self.router.invocations())
            elif path == "/_local/emails" and self.command == "GET":
                self._send_json(200, self.router.emails())
            elif path == "/_local/faults":
                self._faults_endpoint(body)
            elif path.startswith("/_sns/") and self.command == "POST":
                self._sns_delivery(path, body)
            elif self._fault_injected(body):
                pass  # answered with the injected fault
            elif self.command == "POST" and function_name_from_path(self.path) is not None:
                self._lambda_invoke(body)
            elif is_cognito_preflight(self.command, self.headers):
                self._send(200, COGNITO_CORS_PREFLIGHT, b"")
            elif self.command == "POST" and target == UPDATE_USER_ATTRIBUTES:
                self._cognito_update_user_attributes(body)
            elif self.command == "POST" and target in (INITIATE_AUTH, ADMIN_INITIATE_AUTH, SIGN_UP):
                self._cognito_sign_in_or_up(target, body)
            else:
                self._proxy(body)
        except (BrokenPipeError, ConnectionResetError):
            LOG.debug("client went away during %s %s", self.command, self.path)
        except Exception as exc:  # the router must never die on one bad request
            LOG.exception("error handling %s %s", self.command, self.path)
            try:
                self._send_json(502, {"message": f"edge router error: {exc}"})
            except OSError:
                pass

    def _faults_endpoint(self, body: bytes) -> None:
        """`GET` the injector's settings and counts, `POST` new settings, `DELETE` to stop."""
        injector = self.router.faults
        if self.command == "POST":
            try:
                settings = faults.Settings.from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                self._send_json(400, {"message": str(exc)})
                return
            injector.configure(settings)
            LOG.info("fault injection set: %s", injector.report()["settings"])
        elif self.command == "DELETE":
            injector.off()
            LOG.info("fault injection off")
        elif self.command != "GET":
            self._send_json(405, {"message": f"{self.command} /_local/faults is not supported"})
            return
        self._send_json(200, injector.report())

    def _fault_injected(self, body: bytes) -> bool:
        """Applies the injector to this call: the added latency, then either an error answer or
        a reset (True: the call is answered), or an answer to lose once served (False)."""
        self.lost_answer_ms = None
        call = faults.classify(self.command, self.path, dict(self.headers.items()), body)
        delay = self.router.faults.latency_ms(call)
        if delay:
            time.sleep(delay / 1000)
        fault = self.router.faults.decide(call)
        if fault is None or call is None:
            return False
        LOG.info("fault %s on %s:%s (%s)", fault.kind, call.service, call.operation, call.caller)
        if fault.kind == "timeout":
            self.lost_answer_ms = fault.timeout_ms
            return False
        if fault.kind == "reset":
            self._reset_connection()
            return True
        self._send(*faults.error_response(call, fault.kind, self.command, fault.variant))
        return True

    def _answer_lost(self) -> bool:
        """For a `timeout` fault: the call was served; hold its answer, then drop the
        connection without one."""
        delay = getattr(self, "lost_answer_ms", None)
        if delay is None:
            return False
        time.sleep(delay / 1000)
        self._reset_connection()
        return True

    def _reset_connection(self) -> None:
        """Closes the connection with a TCP reset (SO_LINGER 0), as a dropped connection looks."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _lambda_invoke(self, body: bytes) -> None:
        function = function_name_from_path(self.path) or ""
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        profile = self.router.default_profile
        if invocation_type == "DryRun":
            if function in self.router.functions:
                self._send(204, {}, b"")
            else:
                self._send(*lambda_error_response(404, "ResourceNotFoundException", f"Function not found: {function}"))
            return
        if invocation_type == "Event":
            if function not in self.router.functions:
                self._send(*lambda_error_response(404, "ResourceNotFoundException", f"Function not found: {function}"))
                return
            request_id = self.router.invoke_async(profile, function, body, source="Invoke(Event)")
            if self._answer_lost():
                return
            self._send(202, {"x-amzn-RequestId": request_id}, b"")
            return
        started = time.monotonic()
        status, headers, payload = self.router.invoke(profile, function, body)
        if self._answer_lost():
            return
        LOG.info(
            "invoke %s -> %s%s in %.2fs",
            function,
            status,
            " (function error)" if "X-Amz-Function-Error" in headers else "",
            time.monotonic() - started,
        )
        self._send(status, headers, payload)

    def _cognito_update_user_attributes(self, body: bytes) -> None:
        """Cognito checks the app client's `WriteAttributes` before a user's own write; moto
        does not, so the check is made here and only an allowed write reaches moto."""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        claims = jwt_claims(request.get("AccessToken")) if isinstance(request, dict) else None
        if claims is None or claims.get("token_use") != "access":
            # Not an access token: moto answers it as Cognito does (NotAuthorizedException).
            self._proxy(body)
            return
        issuer = str(claims.get("iss", ""))
        pool_id = issuer.rsplit("/", 1)[-1]
        requested = [str(a.get("Name")) for a in request.get("UserAttributes") or [] if isinstance(a, dict)]
        try:
            write_attributes = self.router.client_write_attributes(
                pool_id, str(claims.get("client_id", "")), self.headers.get("Authorization", "")
            )
        except LookupError as exc:
            LOG.warning("UpdateUserAttributes refused: %s", exc)
            self._send(*cognito_error_response("NotAuthorizedException", "Invalid Access Token"))
            return
        refusal = cognito_write_refusal(claims, requested, write_attributes)
        if refusal is not None:
            LOG.info("UpdateUserAttributes of %s refused: %s (%s)", claims.get("username"), refusal, requested)
            self._send(*cognito_error_response("NotAuthorizedException", refusal))
            return
        self._proxy(body)

    def _cognito_sign_in_or_up(self, target: str, body: bytes) -> None:
        """Cognito refuses an auth flow the app client does not allow and a self sign-up to a
        pool that allows only administrators to create users; moto does neither, so the
        checks are made here and only an allowed call reaches moto."""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        client_id = request.get("ClientId") if isinstance(request, dict) else None
        if not isinstance(client_id, str) or not client_id:
            self._proxy(body)  # moto answers a malformed call
            return
        authorization = self.headers.get("Authorization") or local_authorization(self.router.region)
        try:
            if target == ADMIN_INITIATE_AUTH and isinstance(request.get("UserPoolId"), str):
                pool = {"Id": request["UserPoolId"]}
                app_client = self.router.describe_client(request["UserPoolId"], client_id, authorization)
            else:
                pool, app_client = self.router.find_client(client_id, authorization)
        except LookupError:
            self._proxy(body)  # moto answers an unknown client as Cognito does
            return
        if target == SIGN_UP:
            refusal = sign_up_refusal(pool)
            error = "NotAuthorizedException"
        else:
            refusal = auth_flow_refusal(str(request.get("AuthFlow", "")), app_client.get("ExplicitAuthFlows"))
            error = "InvalidParameterException"
        if refusal is not None:
            LOG.info("%s through client %s refused: %s", target.split(".")[-1], client_id, refusal)
            self._send(*cognito_error_response(error, refusal))
            return
        self._proxy(body)

    def _sns_delivery(self, path: str, body: bytes) -> None:
        # /_sns/<profile>/<function>
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[1] not in self.router.profiles or parts[2] not in self.router.functions:
            self._send_json(404, {"message": f"no SNS delivery route {path}"})
            return
        _, profile, function = parts
        notification = json.loads(body or b"{}")
        kind = notification.get("Type") or self.headers.get("x-amz-sns-message-type")
        if kind == "SubscriptionConfirmation":
            # moto confirms http subscriptions itself; a real SNS would need the SubscribeURL
            # visited. Only a local URL is ever followed.
            url = notification.get("SubscribeURL", "")
            if url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"):
                parsed = urlsplit(url)
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
                conn.request("GET", parsed.path + (f"?{parsed.query}" if parsed.query else ""))
                conn.getresponse().read()
                conn.close()
            LOG.info("SNS subscription confirmation for %s handled", notification.get("TopicArn"))
            self._send_json(200, {"confirmed": True})
            return
        if kind != "Notification":
            self._send_json(400, {"message": f"unsupported SNS message type {kind!r}"})
            return
        topic = notification.get("TopicArn", "")
        # moto's http delivery does not name the subscription; the id only needs to be stable.
        subscription = f"{topic}:local-http-subscription"
        event = json.dumps(sns_lambda_event(notification, subscription)).encode()
        request_id = self.router.invoke_async(
            profile, function, event, source=f"SNS {topic} message {notification.get('MessageId')}"
        )
        # SNS only needs a 2xx; the function runs after this answer, as with Lambda's trigger.
        self._send_json(200, {"accepted": request_id})

    def _proxy(self, body: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.router.moto_port, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(getattr(self, "upstream_headers", {}))
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        else:
            headers.pop("Content-Length", None)
        try:
            conn.request(self.command, self.path, body=body if body else None, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            status = resp.status
        finally:
            conn.close()
        self.router.malware.on_s3_write(self.command, self.path, dict(self.headers.items()), status)
        if 200 <= status < 300:
            try:
                message = sent_email(self.command, self.path, dict(self.headers.items()), body)
            except (ValueError, KeyError) as exc:
                LOG.warning("could not read an e-mail SES accepted: %s", exc)
                message = None
            if message is not None:
                self.router.record_email(message)
        if self._answer_lost():
            return
        self.send_response(status)
        content_length = None
        # The router's CORS headers are AWS's; they replace moto's (which echo the origin).
        extra = getattr(self, "extra_headers", {})
        overridden = {k.lower() for k in extra}
        out_headers = [(k, v) for k, v in out_headers if k.lower() not in overridden] + list(extra.items())
        for k, v in out_headers:
            if k.lower() == "content-length":
                content_length = v
                continue
            self.send_header(k, v)
        # HEAD answers carry the object's length without a body; keep moto's value then.
        if self.command == "HEAD" and content_length is not None:
            self.send_header("Content-Length", content_length)
        else:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload and status not in (204, 304):
            self.wfile.write(payload)


def serve(config_path: Path) -> None:
    """Runs the router until killed."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    Handler.router = Router(config)
    if Handler.router.faults.report()["active"]:
        LOG.info("fault injection on from the environment: %s", Handler.router.faults.report()["settings"])
    server = ThreadingHTTPServer(("127.0.0.1", config["edge_port"]), Handler)
    server.daemon_threads = True
    LOG.info(
        "edge router %s on 127.0.0.1:%s -> moto :%s, watch %s",
        config["stack_id"],
        config["edge_port"],
        config["moto_port"],
        config["profiles"],
    )
    server.serve_forever()
