"""Unit tests of the local reviewer API's Cognito seeding (no stack needed): the local web
client mirrors the template's, so the edge router enforces the deployed write permissions."""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "appsync"))

import api_stack  # noqa: E402
from egress_local.stack import StackError  # noqa: E402

TEMPLATE = """
Conditions:
  IsNotFederated: !Equals [!Ref IdentityProviderType, NONE]
Resources:
  ReviewerUserPoolClient:
    Type: AWS::Cognito::UserPoolClient
    Condition: IsNotFederated
    Properties:
      UserPoolId: !Ref ReviewerUserPool
      ClientName: !Sub egress-${ProjectName}-web
      ExplicitAuthFlows: [ALLOW_USER_SRP_AUTH, ALLOW_REFRESH_TOKEN_AUTH]
      ReadAttributes: [email, email_verified, name]
      WriteAttributes: [locale]
      AccessTokenValidity: 60
      IdTokenValidity: 60
      RefreshTokenValidity: 12
      TokenValidityUnits: { AccessToken: minutes, IdToken: minutes, RefreshToken: hours }
"""

SETTINGS = {
    "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    "ReadAttributes": ["email", "email_verified", "name"],
    "WriteAttributes": ["locale"],
    "AccessTokenValidity": 60,
    "IdTokenValidity": 60,
    "RefreshTokenValidity": 12,
    "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "hours"},
}


def template(text: str) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8")
    f.write(text)
    f.close()
    return Path(f.name)


class TemplateWebClientTest(unittest.TestCase):
    def test_when_the_template_sets_the_clients_flows_validity_and_attributes_then_the_local_client_gets_the_same(self):
        self.assertEqual(api_stack.template_web_client(template(TEMPLATE)), SETTINGS)

    def test_when_the_template_leaves_write_attributes_out_then_so_does_the_local_client(self):
        text = TEMPLATE.replace("      WriteAttributes: [locale]\n", "")
        expected = {k: v for k, v in SETTINGS.items() if k != "WriteAttributes"}
        self.assertEqual(api_stack.template_web_client(template(text)), expected)

    def test_when_a_validity_is_not_a_literal_number_then_seeding_stops(self):
        with self.assertRaises(StackError):
            api_stack.template_web_client(template(TEMPLATE.replace("IdTokenValidity: 60", "IdTokenValidity: !Ref Minutes")))

    def test_when_the_attributes_are_not_a_literal_list_or_the_client_is_missing_then_seeding_stops(self):
        conditional = TEMPLATE.replace("WriteAttributes: [locale]", "WriteAttributes: !If [IsX, [name], [locale]]")
        with self.assertRaises(StackError):
            api_stack.template_web_client(template(conditional))
        with self.assertRaises(StackError):
            api_stack.template_web_client(template(TEMPLATE.replace("ReviewerUserPoolClient:", "OtherClient:")))


class LocalWebClientMirrorsTemplateTest(unittest.TestCase):
    """The gate against drift: the client the local stack really creates (in moto, as
    `make api-up` does) has every setting of the deployed template's web client."""

    def test_when_the_local_web_client_is_created_then_cognito_describes_the_templates_settings(self):
        import boto3
        from moto import mock_aws

        from egress_local import template as tpl

        expected = tpl.client_settings(tpl.load(), api_stack.TEMPLATE_WEB_CLIENT)
        # The settings that matter must be in the template, so that mirroring them means something.
        self.assertEqual(expected["ExplicitAuthFlows"], ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        for key in tpl.CLIENT_SETTINGS:
            self.assertIn(key, expected)
        with mock_aws():
            idp = boto3.client("cognito-idp", region_name="eu-west-2")
            pool_id = idp.create_user_pool(PoolName="p")["UserPool"]["Id"]
            created = api_stack.create_web_client(idp, pool_id)
            described = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=created["ClientId"])["UserPoolClient"]
        self.assertEqual({k: described.get(k) for k in expected}, expected)
        self.assertNotIn("ALLOW_USER_PASSWORD_AUTH", described["ExplicitAuthFlows"])


if __name__ == "__main__":
    unittest.main()
