"""Unit tests of the edge router's translations and the provisioner's substitution rule
(no stack needed): `make test-e2e` runs them before starting the stack."""

import base64
import http.client
import json
import threading
import time
import unittest
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

from egress_local.provision import env_line, substitute
from egress_local.router import (
    Handler,
    Router,
    cognito_write_refusal,
    function_name_from_path,
    jwt_claims,
    sent_email,
    sns_lambda_event,
    translate_watch_response,
)


class FunctionNameTest(unittest.TestCase):
    def test_when_invoked_by_name_arn_or_qualifier_then_the_binary_name_is_used(self):
        cases = {
            "/2015-03-31/functions/copy-to-staging/invocations": "copy-to-staging",
            "/2015-03-31/functions/copy-to-staging:live/invocations": "copy-to-staging",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-2%3A123456789012%3Afunction%3Anotify-requester/invocations": "notify-requester",
            "/2015-03-31/functions/arn:aws:lambda:eu-west-2:123456789012:function:notify-requester:$LATEST/invocations": "notify-requester",
            "/2015-03-31/functions/123456789012:function:record-task-token/invocations": "record-task-token",
        }
        for path, name in cases.items():
            self.assertEqual(function_name_from_path(path), name, path)

    def test_when_the_path_is_not_an_invoke_then_there_is_no_function(self):
        for path in ["/", "/2015-03-31/functions/x", "/2015-03-31/functions//invocations", "/bucket/key"]:
            self.assertIsNone(function_name_from_path(path), path)


class WatchResponseTest(unittest.TestCase):
    def test_when_the_function_fails_then_lambda_answers_200_with_the_function_error(self):
        body = json.dumps({"errorType": "NotFound", "errorMessage": "version v1 is missing"}).encode()
        status, headers, out = translate_watch_response(500, body)
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Amz-Function-Error"], "Unhandled")
        self.assertEqual(json.loads(out)["errorType"], "NotFound")

    def test_when_the_function_succeeds_then_its_answer_passes_unchanged(self):
        status, headers, out = translate_watch_response(200, b'{"deleted_objects": 3}')
        self.assertEqual((status, out), (200, b'{"deleted_objects": 3}'))
        self.assertNotIn("X-Amz-Function-Error", headers)

    def test_when_watch_itself_fails_then_it_is_a_lambda_service_error(self):
        status, headers, _ = translate_watch_response(500, b"internal error, not a function answer")
        self.assertEqual((status, headers["x-amzn-ErrorType"]), (502, "ServiceException"))
        status, headers, _ = translate_watch_response(404, b"no such binary")
        self.assertEqual((status, headers["x-amzn-ErrorType"]), (404, "ResourceNotFoundException"))


class SnsEventTest(unittest.TestCase):
    def test_when_sns_posts_a_notification_then_the_function_gets_an_sns_lambda_event(self):
        event = sns_lambda_event(
            {
                "Type": "Notification",
                "MessageId": "m-1",
                "TopicArn": "arn:aws:sns:eu-west-2:123456789012:swb-egress-topic",
                "Message": '{"id": "r-1"}',
                "Timestamp": "2024-03-02T08:00:01.123Z",
                "SigningCertURL": "https://example/cert.pem",
                "UnsubscribeURL": "https://example/unsubscribe",
            },
            "arn:aws:sns:eu-west-2:123456789012:swb-egress-topic:sub",
        )
        record = event["Records"][0]
        self.assertEqual(record["EventSource"], "aws:sns")
        self.assertEqual(record["Sns"]["Message"], '{"id": "r-1"}')
        self.assertEqual(record["Sns"]["MessageId"], "m-1")
        self.assertEqual(record["Sns"]["SigningCertUrl"], "https://example/cert.pem")
        self.assertEqual(record["Sns"]["MessageAttributes"], {})
        self.assertIsNone(record["Sns"]["Subject"])


class SentEmailTest(unittest.TestCase):
    def test_when_ses_v1_sends_an_email_then_it_is_caught(self):
        body = urlencode(
            {
                "Action": "SendEmail",
                "Source": "noreply@tre.example.org",
                "Destination.ToAddresses.member.1": "researcher@tre.example.org",
                "Destination.CcAddresses.member.1": "owner@tre.example.org",
                "Message.Subject.Data": "Egress request approved",
                "Message.Body.Text.Data": "Hello",
            }
        ).encode()
        caught = sent_email("POST", "/", {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}, body)
        self.assertEqual(caught["recipients"], ["owner@tre.example.org", "researcher@tre.example.org"])
        self.assertEqual((caught["subject"], caught["text"]), ("Egress request approved", "Hello"))

    def test_when_ses_v2_sends_raw_mime_then_subject_and_text_are_read(self):
        mime = EmailMessage()
        mime["From"], mime["To"], mime["Subject"] = "a@x.org", "b@x.org", "Rejected"
        mime.set_content("Reason: identifiable")
        body = json.dumps(
            {
                "FromEmailAddress": "a@x.org",
                "Destination": {"ToAddresses": ["b@x.org"]},
                "Content": {"Raw": {"Data": base64.b64encode(mime.as_bytes()).decode()}},
            }
        ).encode()
        caught = sent_email("POST", "/v2/email/outbound-emails", {}, body)
        self.assertEqual((caught["subject"], caught["recipients"]), ("Rejected", ["b@x.org"]))
        self.assertIn("identifiable", caught["text"])

    def test_when_the_request_is_not_an_email_then_nothing_is_caught(self):
        self.assertIsNone(sent_email("POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, b"Action=Publish"))
        self.assertIsNone(sent_email("GET", "/v2/email/outbound-emails", {}, b""))


def fake_jwt(claims: dict) -> str:
    """A JWT with `claims` (unsigned: the router only reads claims, moto checks the token)."""
    part = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'RS256', 'kid': 'dummy'})}.{part(claims)}.c2ln"


POOL = "eu-west-2_LocalPool"
ACCESS = {
    "iss": f"https://cognito-idp.eu-west-2.amazonaws.com/{POOL}",
    "client_id": "web-client",
    "token_use": "access",
    "scope": "aws.cognito.signin.user.admin",
    "username": "u-1",
}


class CognitoWriteRefusalTest(unittest.TestCase):
    def test_when_an_attribute_is_not_in_the_clients_write_attributes_then_cognito_refuses(self):
        for requested in (["name"], ["email"], ["custom:idp_groups"], ["locale", "name"]):
            self.assertEqual(
                cognito_write_refusal(ACCESS, requested, ["locale"]),
                "A client attempted to write unauthorized attribute",
                requested,
            )

    def test_when_every_attribute_is_in_the_write_attributes_then_the_write_is_allowed(self):
        self.assertIsNone(cognito_write_refusal(ACCESS, ["locale"], ["locale", "zoneinfo"]))

    def test_when_the_client_names_no_write_attributes_then_every_attribute_is_writable_as_in_cognito(self):
        # Cognito treats an unset or empty WriteAttributes as "all writable": a template that
        # means "nothing writable" must name some harmless attribute instead.
        self.assertIsNone(cognito_write_refusal(ACCESS, ["name"], None))
        self.assertIsNone(cognito_write_refusal(ACCESS, ["name"], []))

    def test_when_the_access_token_lacks_the_user_admin_scope_then_cognito_refuses(self):
        hosted_ui = {**ACCESS, "scope": "openid email profile"}
        self.assertEqual(
            cognito_write_refusal(hosted_ui, ["locale"], ["locale"]),
            "Access Token does not have required scopes",
        )

    def test_when_a_token_is_not_a_jwt_then_it_has_no_claims(self):
        self.assertEqual(jwt_claims(fake_jwt(ACCESS)), ACCESS)
        for bad in ("", "abc", "a.b.c", "a.!!!.c", 42):
            self.assertIsNone(jwt_claims(bad), bad)


class FakeMoto(BaseHTTPRequestHandler):
    """moto's Cognito as far as the router uses it: DescribeUserPoolClient answers the
    client's WriteAttributes; every other call is recorded and answered `{}`."""

    protocol_version = "HTTP/1.1"
    write_attributes: list[str] | None = ["locale"]
    received: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        FakeMoto.received.append(target)
        if target.endswith(".DescribeUserPoolClient"):
            if body.get("ClientId") != "web-client" or body.get("UserPoolId") != POOL:
                status, answer = 400, {"__type": "ResourceNotFoundException", "message": "no such client"}
            else:
                client = {"ClientId": "web-client", "UserPoolId": POOL}
                if FakeMoto.write_attributes is not None:
                    client["WriteAttributes"] = FakeMoto.write_attributes
                status, answer = 200, {"UserPoolClient": client}
        else:
            status, answer = 200, {}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class RouterCognitoTest(unittest.TestCase):
    """The router in front of a fake moto: UpdateUserAttributes is checked against the app
    client's WriteAttributes, as Cognito does, before moto (which does not check) sees it."""

    @classmethod
    def setUpClass(cls):
        cls.moto = ThreadingHTTPServer(("127.0.0.1", 0), FakeMoto)
        Handler.router = Router(
            {
                "stack_id": "test",
                "moto_port": cls.moto.server_address[1],
                "functions": [],
                "profiles": {"single": 9},
                "default_profile": "single",
            }
        )
        cls.edge = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        for server in (cls.moto, cls.edge):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        for server in (cls.edge, cls.moto):
            server.shutdown()
            server.server_close()

    def setUp(self):
        FakeMoto.received = []
        FakeMoto.write_attributes = ["locale"]

    def update(self, attributes: dict, claims: dict = ACCESS) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.edge.server_address[1], timeout=10)
        body = json.dumps(
            {"AccessToken": fake_jwt(claims), "UserAttributes": [{"Name": k, "Value": v} for k, v in attributes.items()]}
        )
        conn.request(
            "POST",
            "/",
            body=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSCognitoIdentityProviderService.UpdateUserAttributes",
            },
        )
        resp = conn.getresponse()
        status, answer = resp.status, json.loads(resp.read() or b"{}")
        conn.close()
        return status, answer

    def test_when_a_user_renames_themself_through_a_client_that_may_not_write_name_then_it_is_refused(self):
        status, answer = self.update({"name": "Ivy Governance (IG lead)"})
        self.assertEqual(status, 400)
        self.assertEqual(answer["__type"], "NotAuthorizedException")
        self.assertEqual(answer["message"], "A client attempted to write unauthorized attribute")
        self.assertNotIn("AWSCognitoIdentityProviderService.UpdateUserAttributes", FakeMoto.received)

    def test_when_the_attribute_is_writable_then_moto_gets_the_update(self):
        status, _ = self.update({"locale": "en-GB"})
        self.assertEqual(status, 200)
        self.assertIn("AWSCognitoIdentityProviderService.UpdateUserAttributes", FakeMoto.received)

    def test_when_the_tokens_client_is_unknown_then_the_update_is_refused(self):
        status, answer = self.update({"locale": "en-GB"}, {**ACCESS, "client_id": "gone"})
        self.assertEqual((status, answer["__type"]), (400, "NotAuthorizedException"))
        self.assertNotIn("AWSCognitoIdentityProviderService.UpdateUserAttributes", FakeMoto.received)


class EnvLineTest(unittest.TestCase):
    def test_when_a_value_holds_an_equals_sign_then_it_is_quoted_for_cargo_lambda(self):
        # cargo lambda's env-file parser refuses the whole file over an unquoted `=`.
        self.assertEqual(env_line("IDP_GROUP_MAP", "tre-ig=ig,tre-rit=rit"), "IDP_GROUP_MAP='tre-ig=ig,tre-rit=rit'")
        self.assertEqual(env_line("ARN", "arn:aws:kms:eu-west-2:1:key/k-1"), "ARN=arn:aws:kms:eu-west-2:1:key/k-1")

    def test_when_a_value_cannot_be_quoted_then_the_start_stops(self):
        with self.assertRaises(SystemExit):
            env_line("X", "it's")

class SubstitutionTest(unittest.TestCase):
    def test_when_every_placeholder_has_a_value_then_all_are_replaced(self):
        self.assertEqual(substitute('{"T": "${A}", "U": "${B}"}', {"A": "1", "B": "2"}), '{"T": "1", "U": "2"}')

    def test_when_a_placeholder_or_a_value_is_left_over_then_start_fails(self):
        with self.assertRaises(SystemExit):
            substitute('{"T": "${A}"}', {})
        with self.assertRaises(SystemExit):
            substitute('{"T": "${A}"}', {"A": "1", "Unused": "2"})


if __name__ == "__main__":
    unittest.main()


class AsyncRetryTest(unittest.TestCase):
    """A failed asynchronous invocation is retried as the function's EventInvokeConfig says."""

    def router(self, retries: dict, answers: list) -> Router:
        router = Router(
            {
                "stack_id": "test",
                "moto_port": 9,
                "functions": ["start-workflow"],
                "profiles": {"single": 9},
                "default_profile": "single",
                "async_retries": retries,
                "async_retry_delay": 0.01,
            }
        )
        calls = iter(answers)
        router.invoke = lambda profile, function, payload: next(calls)
        return router

    def finished(self, router: Router) -> dict:
        for _ in range(500):
            record = router.invocations()[0]
            if record["state"] in ("done", "error"):
                return record
            time.sleep(0.01)
        self.fail(f"still {router.invocations()[0]['state']}")

    def test_when_the_first_attempt_times_out_then_the_retry_runs_it_and_it_is_done(self):
        timed_out = (200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorType":"Sandbox.Timedout"}')
        router = self.router({"start-workflow": 2}, [timed_out, (200, {}, b"null")])
        router.invoke_async("single", "start-workflow", b"{}", source="SNS")
        record = self.finished(router)
        self.assertEqual((record["state"], record["attempts"]), ("done", 2))
        self.assertEqual(record["retried_errors"], [{"errorType": "Sandbox.Timedout"}])

    def test_when_every_attempt_fails_then_it_ends_in_error_after_the_last_retry(self):
        refused = (200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorType":"ValidationError"}')
        router = self.router({"start-workflow": 2}, [refused] * 3)
        router.invoke_async("single", "start-workflow", b"{}", source="SNS")
        record = self.finished(router)
        self.assertEqual((record["state"], record["attempts"]), ("error", 3))
        self.assertEqual(record["error"], {"errorType": "ValidationError"})

    def test_when_the_function_allows_no_retry_then_the_first_failure_is_final(self):
        refused = (200, {"X-Amz-Function-Error": "Unhandled"}, b'{"errorType":"ValidationError"}')
        router = self.router({"start-workflow": 0}, [refused])
        router.invoke_async("single", "start-workflow", b"{}", source="SNS")
        record = self.finished(router)
        self.assertEqual((record["state"], record["attempts"]), ("error", 1))
        self.assertNotIn("retried_errors", record)


class NoDelayTest(unittest.TestCase):
    """The router answers without Nagle's delay: a kept-alive client got every answer with a
    body up to 40 ms late (headers and body are two writes)."""

    def test_when_a_client_connects_then_its_connection_sends_without_delay(self):
        import socket

        seen = []

        class Probe(Handler):
            def do_GET(self):
                seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                self._send(200, {"Content-Type": "text/plain"}, b"ok")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Probe)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        for _ in range(2):
            conn.request("GET", "/")
            self.assertEqual(conn.getresponse().read(), b"ok")
        conn.close()
        self.assertEqual(len(seen), 2)
        self.assertTrue(all(seen), seen)
