"""`make webapp-env`: the web app's build configuration for the local and deployed stacks."""

import json
import os
import tempfile
import unittest
from pathlib import Path

from egress_local import webapp_env

# The shape of the TREEHOOSE web app's src/aws-config.js: which variables it reads, and how.
AWS_CONFIG_JS = """
const awsconfig = {
    aws_appsync_graphqlEndpoint: `${process.env.REACT_APP_APPSYNC_API}`,
    aws_appsync_region: `${process.env.REACT_APP_REGION}`,
    egress_ig_role: `${process.env.REACT_APP_EGRESS_IG_ROLE}`,
    egress_rit_role: `${process.env.REACT_APP_EGRESS_RIT_ROLE}`,
    max_downloads_allowed: `${process.env.REACT_APP_MAX_DOWNLOADS_ALLOWED}`,
    federated_login_enabled: `${process.env.REACT_APP_FEDERATED_LOGIN_ENABLED}`,
    federated_button_login_value: `${process.env.REACT_APP_FEDERATED_LOGIN_BUTTON_VALUE}`,
    federated_identity_provider_name: `${process.env.REACT_APP_FEDERATED_IDENTITY_PROVIDER_NAME}`,
    Auth: {
        region: `${process.env.REACT_APP_REGION}`,
        userPoolId: `${process.env.REACT_APP_USER_POOL_ID}`,
        userPoolWebClientId: `${process.env.REACT_APP_USER_POOL_CLIENT_ID}`,
    },
};
if (awsconfig.federated_login_enabled.toLowerCase() === 'true') {
    awsconfig.Auth.oauth = {
        domain: `${process.env.REACT_APP_USER_POOL_DOMAIN}`,
        redirectSignIn: `${process.env.REACT_APP_REDIRECT_SIGNIN_URL}`,
        redirectSignOut: `${process.env.REACT_APP_REDIRECT_SIGNOUT_URL}`,
    };
}
"""

OUTPUTS = {
    "region": "eu-west-2",
    "project": {
        "ig_reviewer_group": "ig-reviewers",
        "rit_reviewer_group": "rit-reviewers",
        "app_url": "http://localhost:3000",
        "max_downloads": 3,
    },
}
API = {
    "graphql_url": "http://127.0.0.1:4576/graphql",
    "user_pool_id": "eu-west-2_abc",
    "client_id": "client123",
    "cognito_endpoint": "http://127.0.0.1:4566",
}


def fake_app(root: Path, config: str = AWS_CONFIG_JS) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "aws-config.js").write_text(config, encoding="utf-8")
    (root / ".env.local").write_text("REACT_APP_REGION=<<AWS REGION>>\n", encoding="utf-8")
    return root


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return dict(pairs)


class WebAppEnvTest(unittest.TestCase):
    def test_when_written_for_the_local_stack_then_every_variable_the_app_reads_is_set(self):
        with tempfile.TemporaryDirectory() as tmp:
            app = fake_app(Path(tmp))
            written = webapp_env.write(app, webapp_env.local_values(OUTPUTS, API))
            self.assertEqual([p.name for p in written], list(webapp_env.ENV_FILES))
            env = env_file(app / ".env.development.local")
            for name in webapp_env.variables_read(app):
                self.assertIn(name, env)
            self.assertEqual(env["REACT_APP_MAX_DOWNLOADS_ALLOWED"], "3")
            self.assertEqual(env["REACT_APP_APPSYNC_API"], API["graphql_url"])
            self.assertEqual(env["REACT_APP_USER_POOL_CLIENT_ID"], "client123")
            self.assertEqual(env["REACT_APP_EGRESS_IG_ROLE"], "ig-reviewers")
            self.assertEqual(env["REACT_APP_FEDERATED_LOGIN_ENABLED"], "false")
            self.assertEqual(env["REACT_APP_COGNITO_ENDPOINT"], API["cognito_endpoint"])
            # The app's own placeholder file is left alone.
            self.assertIn("<<AWS REGION>>", (app / ".env.local").read_text())

    def test_when_the_app_reads_a_variable_we_do_not_provide_then_it_is_named(self):
        with tempfile.TemporaryDirectory() as tmp:
            app = fake_app(Path(tmp), AWS_CONFIG_JS + "x = process.env.REACT_APP_NEW_SETTING;\n")
            with self.assertRaisesRegex(webapp_env.WebAppEnvError, "REACT_APP_NEW_SETTING"):
                webapp_env.write(app, webapp_env.local_values(OUTPUTS, API))
            self.assertFalse((app / ".env.development.local").exists())

    def test_when_the_folder_is_not_the_app_then_the_error_says_so(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(webapp_env.WebAppEnvError, "aws-config.js is missing"):
                webapp_env.write(Path(tmp), webapp_env.local_values(OUTPUTS, API))

    def test_when_written_for_a_deployed_stack_then_values_come_from_its_outputs(self):
        outputs = {
            "GraphQLApiUrl": "https://x.appsync-api.eu-west-2.amazonaws.com/graphql",
            "Region": "eu-west-2",
            "UserPoolId": "eu-west-2_pool",
            "UserPoolClientId": "webclient",
            "CognitoDomain": "tre-x.auth.eu-west-2.amazoncognito.com",
            "IgReviewerGroupName": "InformationGovernance",
            "RitReviewerGroupName": "ResearchIT",
            "MaxDownloads": "5",
            "WebAppUrl": "https://egress.tre.example.org",
            "FederatedLogin": "true",
            "IdentityProviderName": "Entra",
        }
        with tempfile.TemporaryDirectory() as tmp:
            app = fake_app(Path(tmp))
            cfn = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
            webapp_env.write(app, webapp_env.deployed_values(cfn))
            env = env_file(app / ".env.production.local")
            self.assertEqual(env["REACT_APP_FEDERATED_LOGIN_ENABLED"], "true")
            self.assertEqual(env["REACT_APP_FEDERATED_IDENTITY_PROVIDER_NAME"], "Entra")
            self.assertEqual(env["REACT_APP_USER_POOL_DOMAIN"], outputs["CognitoDomain"])
            self.assertEqual(env["REACT_APP_REDIRECT_SIGNIN_URL"], outputs["WebAppUrl"])
            self.assertNotIn("REACT_APP_COGNITO_ENDPOINT", env)
            del outputs["MaxDownloads"]
            cfn = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
            with self.assertRaisesRegex(webapp_env.WebAppEnvError, "MaxDownloads"):
                webapp_env.deployed_values(cfn)


class LiveStackTest(unittest.TestCase):
    """Against the running stack (run by make test-e2e while the stack and API are up)."""

    def test_when_the_stack_is_up_then_make_webapp_env_writes_its_endpoints(self):
        outputs_path = webapp_env.state_path("outputs.json")
        api_path = webapp_env.state_path("api.json")
        if not (outputs_path.is_file() and api_path.is_file()):
            if os.environ.get("EGRESS_REQUIRE_STACK"):
                self.fail("the local stack and API should be up (EGRESS_REQUIRE_STACK is set)")
            self.skipTest("the local stack and API are not up")
        with tempfile.TemporaryDirectory() as tmp:
            app = fake_app(Path(tmp))
            self.assertEqual(webapp_env.main(["--app", str(app)]), 0)
            env = env_file(app / ".env.development.local")
            api = json.loads(api_path.read_text())
            self.assertEqual(env["REACT_APP_APPSYNC_API"], api["graphql_url"])
            self.assertEqual(env["REACT_APP_USER_POOL_ID"], api["user_pool_id"])


if __name__ == "__main__":
    unittest.main()
