"""The edge router in front of a real moto (in-process): what Cognito enforces and moto does
not (auth flows of the app client, admin-only sign-up), and a browser's CORS for Cognito."""

import http.client
import json
import threading
import unittest
from http.server import ThreadingHTTPServer

import boto3
from moto.server import ThreadedMotoServer

from egress_local.router import Handler, Router

REGION = "eu-west-2"
TARGET = "AWSCognitoIdentityProviderService."
ORIGIN = "http://localhost:3000"


class RouterCognitoFlowsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        cls.moto.start()
        moto_port = cls.moto._server.server_address[1]
        cls.idp = boto3.client(
            "cognito-idp",
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        cls.admin_only_pool = cls.pool(True)
        cls.open_pool = cls.pool(False)
        cls.srp_client = cls.client(cls.admin_only_pool, ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        cls.password_client = cls.client(cls.admin_only_pool, ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        cls.open_client = cls.client(cls.open_pool, ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        cls.idp.admin_create_user(
            UserPoolId=cls.admin_only_pool,
            Username="ivy@tre.example.org",
            UserAttributes=[{"Name": "email", "Value": "ivy@tre.example.org"}],
            MessageAction="SUPPRESS",
        )
        cls.idp.admin_set_user_password(
            UserPoolId=cls.admin_only_pool, Username="ivy@tre.example.org", Password="Lc-Secret-9aZ!", Permanent=True
        )
        Handler.router = Router(
            {
                "stack_id": "test",
                "moto_port": moto_port,
                "functions": [],
                "profiles": {"single": 9},
                "default_profile": "single",
                "region": REGION,
            }
        )
        cls.edge = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=cls.edge.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.edge.shutdown()
        cls.edge.server_close()
        cls.moto.stop()

    @classmethod
    def pool(cls, admin_only: bool) -> str:
        return cls.idp.create_user_pool(
            PoolName=f"pool-{admin_only}",
            UsernameAttributes=["email"],
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": admin_only},
        )["UserPool"]["Id"]

    @classmethod
    def client(cls, pool_id: str, flows: list[str]) -> str:
        return cls.idp.create_user_pool_client(UserPoolId=pool_id, ClientName="web", ExplicitAuthFlows=flows)[
            "UserPoolClient"
        ]["ClientId"]

    def request(self, method: str, headers: dict, body: bytes = b"") -> tuple[int, dict, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.edge.server_address[1], timeout=30)
        conn.request(method, "/", body=body or None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"raw": raw.decode(errors="replace")}
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, answer

    def browser_call(self, action: str, body: dict) -> tuple[int, dict, dict]:
        """A Cognito call as Amplify sends it from a browser: unsigned, with an Origin."""
        return self.request(
            "POST",
            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + action, "Origin": ORIGIN},
            json.dumps(body).encode(),
        )

    def test_when_the_client_does_not_allow_password_auth_then_initiate_auth_is_refused_as_cognito_does(self):
        status, headers, answer = self.browser_call(
            "InitiateAuth",
            {
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": self.srp_client,
                "AuthParameters": {"USERNAME": "ivy@tre.example.org", "PASSWORD": "Lc-Secret-9aZ!"},
            },
        )
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["__type"], "InvalidParameterException")
        self.assertEqual(answer["message"], "USER_PASSWORD_AUTH flow not enabled for this client")
        self.assertEqual(headers.get("access-control-allow-origin"), "*")

    def test_when_the_client_does_not_allow_srp_then_srp_is_refused_and_an_allowed_flow_signs_in(self):
        status, _, answer = self.browser_call(
            "InitiateAuth",
            {"AuthFlow": "USER_SRP_AUTH", "ClientId": self.password_client, "AuthParameters": {"USERNAME": "ivy@tre.example.org", "SRP_A": "ab" * 64}},
        )
        self.assertEqual((status, answer.get("__type")), (400, "InvalidParameterException"), answer)
        status, _, answer = self.browser_call(
            "InitiateAuth",
            {
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": self.password_client,
                "AuthParameters": {"USERNAME": "ivy@tre.example.org", "PASSWORD": "Lc-Secret-9aZ!"},
            },
        )
        self.assertEqual(status, 200, answer)
        self.assertIn("AccessToken", answer["AuthenticationResult"])

    def test_when_a_browser_signs_in_with_srp_unsigned_then_the_stacks_region_answers_with_a_challenge(self):
        status, headers, answer = self.browser_call(
            "InitiateAuth",
            {"AuthFlow": "USER_SRP_AUTH", "ClientId": self.srp_client, "AuthParameters": {"USERNAME": "ivy@tre.example.org", "SRP_A": "ab" * 64}},
        )
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["ChallengeName"], "PASSWORD_VERIFIER")
        self.assertEqual(headers.get("access-control-allow-origin"), "*")

    def test_when_the_pool_allows_only_admins_to_create_users_then_sign_up_is_refused(self):
        status, headers, answer = self.browser_call(
            "SignUp", {"ClientId": self.srp_client, "Username": "mallory@evil.example", "Password": "Lc-Secret-9aZ!"}
        )
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["__type"], "NotAuthorizedException")
        self.assertEqual(answer["message"], "SignUp is not permitted for this user pool")
        self.assertEqual(headers.get("access-control-allow-origin"), "*")
        emails = [
            a["Value"]
            for u in self.idp.list_users(UserPoolId=self.admin_only_pool)["Users"]
            for a in u["Attributes"]
            if a["Name"] == "email"
        ]
        self.assertNotIn("mallory@evil.example", emails)

    def test_when_the_pool_allows_self_sign_up_then_sign_up_reaches_moto(self):
        status, _, answer = self.browser_call(
            "SignUp",
            {
                "ClientId": self.open_client,
                "Username": "new@tre.example.org",
                "Password": "Lc-Secret-9aZ!",
                "UserAttributes": [{"Name": "email", "Value": "new@tre.example.org"}],
            },
        )
        self.assertEqual(status, 200, answer)
        self.assertIn("UserSub", answer)

    def test_when_a_browser_preflights_a_cognito_call_then_the_router_answers_as_aws(self):
        status, headers, _ = self.request(
            "OPTIONS",
            {
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
            },
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("access-control-allow-origin"), "*")
        allowed = {h.strip() for h in headers.get("access-control-allow-headers", "").split(",")}
        self.assertLessEqual({"content-type", "x-amz-target", "x-amz-user-agent", "cache-control"}, allowed)
        methods = {m.strip() for m in headers.get("access-control-allow-methods", "").split(",")}
        self.assertEqual(methods, {"POST", "OPTIONS"})

    def test_when_an_options_request_is_not_a_cognito_preflight_then_moto_answers_it(self):
        _, headers, _ = self.request("OPTIONS", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        self.assertNotEqual(headers.get("access-control-allow-methods"), "POST, OPTIONS")

    def test_when_a_cognito_call_is_not_an_auth_then_its_answer_still_carries_allow_origin(self):
        status, headers, answer = self.browser_call("GetUser", {"AccessToken": "not-a-token"})
        self.assertEqual(status, 400, answer)
        self.assertEqual(headers.get("access-control-allow-origin"), "*")


if __name__ == "__main__":
    unittest.main()
