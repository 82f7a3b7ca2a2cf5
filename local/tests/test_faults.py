"""Unit tests of the fault injector (local/egress_local/faults.py) and of the router serving
its faults in front of a fake moto, parsed by botocore as an AWS SDK parses them."""

import http.client
import json
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.exceptions
from botocore.config import Config

from egress_local import faults
from egress_local.faults import Call, Injector, Settings, classify, error_response
from egress_local.router import Handler, Router

RUST_AGENT = {"User-Agent": "aws-sdk-rust/1.3 os/linux lang/rust/1.88"}
HARNESS_AGENT = {"x-amz-user-agent": "aws-sdk-rust/1.3 api/s3 app/egress-harness"}


def signed(service: str, key: str = "local-stack-not-a-real-key") -> dict:
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261201/eu-west-2/{service}/aws4_request, SignedHeaders=host, Signature=0"
    }


class ClassifyTest(unittest.TestCase):
    def test_when_a_function_calls_s3_then_the_rest_operation_is_named(self):
        headers = {**signed("s3"), **RUST_AGENT}
        cases = [
            ("GET", "/bucket/a/b.csv?versionId=v1", {}, "GetObject"),
            ("PUT", "/bucket/a/b.csv", {}, "PutObject"),
            ("PUT", "/bucket/a/b.csv", {"x-amz-copy-source": "/src/k"}, "CopyObject"),
            ("PUT", "/bucket/k?partNumber=2&uploadId=u", {"x-amz-copy-source": "/src/k"}, "UploadPartCopy"),
            ("PUT", "/bucket/k?partNumber=2&uploadId=u", {}, "UploadPart"),
            ("POST", "/bucket/k?uploads", {}, "CreateMultipartUpload"),
            ("POST", "/bucket/k?uploadId=u", {}, "CompleteMultipartUpload"),
            ("DELETE", "/bucket/k?uploadId=u", {}, "AbortMultipartUpload"),
            ("POST", "/bucket?delete", {}, "DeleteObjects"),
            ("GET", "/bucket?versions&prefix=a", {}, "ListObjectVersions"),
            ("GET", "/bucket?list-type=2", {}, "ListObjectsV2"),
            ("HEAD", "/bucket/k", {}, "HeadObject"),
        ]
        for method, path, extra, operation in cases:
            call = classify(method, path, {**headers, **extra}, b"")
            self.assertEqual(call, Call("s3", operation, "functions"), (method, path))

    def test_when_the_interpreter_calls_json_and_query_services_then_they_are_named(self):
        ddb = classify("POST", "/", {**signed("dynamodb", "ak"), "X-Amz-Target": "DynamoDB_20120810.PutItem"}, b"{}")
        self.assertEqual(ddb, Call("dynamodb", "PutItem", "interpreter"))
        sns = classify("POST", "/", signed("sns", "ak"), b"Action=Publish&TopicArn=arn")
        self.assertEqual(sns, Call("sns", "Publish", "interpreter"))
        invoke = classify("POST", "/2015-03-31/functions/copy-to-staging/invocations", signed("lambda", "ak"), b"{}")
        self.assertEqual(invoke, Call("lambda", "Invoke", "interpreter"))

    def test_when_a_function_calls_back_step_functions_or_ses_then_they_are_named(self):
        sfn = classify(
            "POST", "/", {**signed("states"), **RUST_AGENT, "X-Amz-Target": "AWSStepFunctions.SendTaskSuccess"}, b"{}"
        )
        self.assertEqual(sfn, Call("states", "SendTaskSuccess", "functions"))
        ses = classify("POST", "/", {**signed("ses"), **RUST_AGENT}, b"Action=SendEmail&Source=a")
        self.assertEqual(ses, Call("ses", "SendEmail", "functions"))
        sesv2 = classify("POST", "/v2/email/outbound-emails", {**signed("ses"), **RUST_AGENT}, b"{}")
        self.assertEqual(sesv2, Call("ses", "SendEmail", "functions", rest_json=True))

    def test_when_the_harness_cognito_or_an_unsigned_caller_calls_then_nothing_is_faultable(self):
        harness = classify("GET", "/bucket/k", {**signed("s3"), **HARNESS_AGENT}, b"")
        self.assertEqual(harness.caller, "harness")
        boto = classify("GET", "/bucket/k", {**signed("s3"), "User-Agent": "Boto3/1.35 Python/3.11"}, b"")
        self.assertEqual(boto.caller, "harness", "the SWB simulator and the provisioner")
        cognito = {**signed("cognito-idp"), "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth"}
        self.assertIsNone(classify("POST", "/", cognito, b"{}"))
        self.assertIsNone(classify("GET", "/bucket/k", {}, b""), "an unsigned call")
        self.assertIsNone(classify("GET", "/_local/health", signed("s3"), b""))


class InjectorTest(unittest.TestCase):
    CALL = Call("dynamodb", "UpdateItem", "functions")

    def test_when_nothing_is_configured_then_no_call_is_faulted(self):
        injector = Injector()
        self.assertFalse(injector.report()["active"])
        self.assertTrue(all(injector.decide(self.CALL) is None for _ in range(1000)))

    def test_when_the_same_seed_runs_the_same_calls_then_the_same_calls_are_faulted(self):
        def run(seed: int) -> list:
            injector = Injector(Settings(rate=0.2, seed=seed))
            out = []
            for i in range(300):
                call = Call("s3" if i % 3 else "lambda", "CopyObject" if i % 3 else "Invoke", "interpreter")
                out.append(injector.decide(call))
            return out

        self.assertEqual(run(7), run(7))
        self.assertNotEqual(run(7), run(8))

    def test_when_the_rate_is_a_fifth_then_about_a_fifth_of_calls_fail_with_every_kind(self):
        injector = Injector(Settings(rate=0.2, seed=1))
        decided = [injector.decide(self.CALL) for _ in range(5000)]
        failed = [d for d in decided if d is not None]
        self.assertAlmostEqual(len(failed) / 5000, 0.2, delta=0.02)
        self.assertEqual({d.kind for d in failed}, set(faults.KINDS))
        report = injector.report()
        self.assertEqual(report["calls"]["dynamodb:UpdateItem"], 5000)
        self.assertEqual(report["faults_total"], len(failed))

    def test_when_services_operations_or_callers_are_chosen_then_only_they_are_faulted(self):
        injector = Injector(Settings(rate=1.0, services=["s3"], operations=["CopyObject"], callers=["functions"]))
        self.assertIsNotNone(injector.decide(Call("s3", "CopyObject", "functions")))
        self.assertIsNone(injector.decide(Call("s3", "GetObject", "functions")))
        self.assertIsNone(injector.decide(Call("s3", "CopyObject", "interpreter")))
        self.assertIsNone(injector.decide(Call("dynamodb", "CopyObject", "functions")))
        self.assertIsNone(injector.decide(Call("s3", "CopyObject", "harness")))

    def test_when_a_callback_is_faulted_then_its_answer_is_never_lost_after_serving(self):
        injector = Injector(Settings(rate=1.0, kinds=["timeout"]))
        self.assertIsNone(injector.decide(Call("states", "SendTaskSuccess", "functions")))
        self.assertEqual(injector.decide(Call("s3", "PutObject", "functions")).kind, "timeout")

    def test_when_latency_is_set_for_an_operation_then_only_it_is_slowed_and_counted(self):
        injector = Injector(Settings(latency_ms=3000, operations=["s3:CopyObject"]))
        self.assertEqual(injector.latency_ms(Call("s3", "CopyObject", "functions")), 3000)
        self.assertEqual(injector.latency_ms(Call("s3", "GetObject", "functions")), 0)
        self.assertEqual(injector.latency_ms(Call("s3", "CopyObject", "harness")), 0)
        self.assertIsNone(injector.decide(Call("s3", "CopyObject", "functions")), "rate 0 faults nothing")
        self.assertEqual(injector.report()["calls"], {"s3:CopyObject": 1})

    def test_when_the_interpreter_calls_then_only_service_errors_are_injected(self):
        injector = Injector(Settings(rate=1.0, seed=2))
        kinds = {injector.decide(Call("dynamodb", "PutItem", "interpreter")).kind for _ in range(200)}
        self.assertEqual(kinds, {"throttle", "internal"})

    def test_when_turned_off_then_faults_stop_and_counts_stay(self):
        injector = Injector(Settings(rate=1.0, kinds=["internal"], latency_ms=5))
        injector.decide(self.CALL)
        injector.off()
        self.assertIsNone(injector.decide(self.CALL))
        self.assertEqual(injector.latency_ms(self.CALL), 0)
        self.assertEqual(injector.report()["faults_total"], 1)

    def test_when_settings_are_invalid_then_they_are_refused_by_name(self):
        for bad, word in [
            ({"rate": 2}, "rate"),
            ({"rate": "x"}, "rate"),
            ({"kinds": ["meteor"]}, "kinds"),
            ({"services": ["ec2"]}, "services"),
            ({"latency": 5}, "unknown"),
            ({"latency_ms": -1}, "latency_ms"),
        ]:
            with self.assertRaises(faults.FaultConfigError) as ctx:
                Settings.from_json(bad)
            self.assertIn(word, str(ctx.exception))

    def test_when_the_environment_sets_faults_then_the_router_starts_with_them(self):
        settings = Settings.from_env(
            {"EGRESS_FAULT_RATE": "0.2", "EGRESS_FAULT_SEED": "42", "EGRESS_FAULT_SERVICES": "s3, lambda"}
        )
        self.assertEqual((settings.rate, settings.seed, settings.services), (0.2, 42, ["s3", "lambda"]))
        self.assertFalse(Settings.from_env({}).active)


class ErrorShapeTest(unittest.TestCase):
    def test_when_s3_is_throttled_then_it_answers_503_slowdown_xml(self):
        status, headers, body = error_response(Call("s3", "CopyObject", "functions"), "throttle", "PUT")
        self.assertEqual(status, 503)
        self.assertIn(b"<Code>SlowDown</Code>", body)
        self.assertEqual(error_response(Call("s3", "HeadObject", "functions"), "internal", "HEAD")[2], b"")

    def test_when_dynamodb_is_throttled_then_it_answers_400_with_either_throttling_error(self):
        names = {
            json.loads(error_response(Call("dynamodb", "PutItem", "interpreter"), "throttle", "POST", v)[2])["__type"]
            for v in (0, 1)
        }
        self.assertEqual(
            names,
            {
                "com.amazon.coral.availability#ThrottlingException",
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            },
        )

    def test_when_sns_or_ses_is_throttled_then_it_answers_query_xml_throttling(self):
        status, _, body = error_response(Call("sns", "Publish", "functions"), "throttle", "POST")
        self.assertEqual(status, 429)
        self.assertIn(b"<Code>Throttled</Code>", body)
        status, _, body = error_response(Call("ses", "SendEmail", "functions"), "throttle", "POST")
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>Throttling</Code>", body)


class FakeMoto(BaseHTTPRequestHandler):
    """Answers every call `{}` and counts what reached it."""

    protocol_version = "HTTP/1.1"
    served = 0

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeMoto.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


class RouterFaultTest(unittest.TestCase):
    """The router serving injected faults to a real AWS SDK (botocore, as the interpreter)."""

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
        cls.url = f"http://127.0.0.1:{cls.edge.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        for server in (cls.edge, cls.moto):
            server.shutdown()
            server.server_close()

    def setUp(self):
        FakeMoto.served = 0

    def tearDown(self):
        self.faults("DELETE")

    def faults(self, method: str, settings: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.edge.server_address[1], timeout=10)
        conn.request(method, "/_local/faults", body=json.dumps(settings) if settings is not None else None)
        resp = conn.getresponse()
        out = resp.status, json.loads(resp.read())
        conn.close()
        return out

    def dynamodb(self):
        # Calling as a function does (the Rust SDK's user agent), without SDK retries so each
        # test sees the one answer the router gave.
        return boto3.client(
            "dynamodb",
            endpoint_url=self.url,
            region_name="eu-west-2",
            aws_access_key_id="local",
            aws_secret_access_key="sk",
            config=Config(
                retries={"total_max_attempts": 1},
                read_timeout=1,
                connect_timeout=1,
                user_agent="aws-sdk-rust/1.3 os/linux lang/rust/1.88",
            ),
        )

    def test_when_throttling_is_injected_then_the_sdk_sees_a_throttling_error_and_moto_nothing(self):
        status, _ = self.faults("POST", {"rate": 1.0, "seed": 3, "kinds": ["throttle"]})
        self.assertEqual(status, 200)
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            self.dynamodb().get_item(TableName="t", Key={"id": {"S": "x"}})
        self.assertIn(ctx.exception.response["Error"]["Code"], ("ThrottlingException", "ProvisionedThroughputExceededException"))
        self.assertEqual(FakeMoto.served, 0)
        _, report = self.faults("GET")
        self.assertEqual(report["faults"], {"dynamodb:GetItem:throttle": 1})

    def test_when_a_reset_is_injected_then_the_sdk_sees_the_connection_drop(self):
        self.faults("POST", {"rate": 1.0, "kinds": ["reset"]})
        with self.assertRaises((botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)):
            self.dynamodb().get_item(TableName="t", Key={"id": {"S": "x"}})
        self.assertEqual(FakeMoto.served, 0)

    def test_when_an_answer_is_lost_then_the_call_was_served_and_the_sdk_times_out(self):
        self.faults("POST", {"rate": 1.0, "kinds": ["timeout"], "timeout_ms": 1500})
        with self.assertRaises((botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError)):
            self.dynamodb().get_item(TableName="t", Key={"id": {"S": "x"}})
        self.assertEqual(FakeMoto.served, 1)

    def test_when_faults_are_off_then_calls_reach_moto(self):
        self.faults("POST", {"rate": 1.0})
        self.faults("DELETE")
        self.dynamodb().get_item(TableName="t", Key={"id": {"S": "x"}})
        self.assertEqual(FakeMoto.served, 1)

    def test_when_the_settings_are_bad_then_the_endpoint_answers_400(self):
        status, answer = self.faults("POST", {"rate": 5})
        self.assertEqual(status, 400)
        self.assertIn("rate", answer["message"])


if __name__ == "__main__":
    unittest.main()
