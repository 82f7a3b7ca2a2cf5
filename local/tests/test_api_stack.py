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
      ReadAttributes: [email, email_verified, name]
      WriteAttributes: [locale]
"""


def template(text: str) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8")
    f.write(text)
    f.close()
    return Path(f.name)


class TemplateWebClientTest(unittest.TestCase):
    def test_when_the_template_names_the_clients_attributes_then_the_local_client_gets_the_same(self):
        self.assertEqual(
            api_stack.template_web_client(template(TEMPLATE)),
            {"ReadAttributes": ["email", "email_verified", "name"], "WriteAttributes": ["locale"]},
        )

    def test_when_the_template_leaves_write_attributes_out_then_so_does_the_local_client(self):
        text = TEMPLATE.replace("      WriteAttributes: [locale]\n", "")
        self.assertEqual(api_stack.template_web_client(template(text)), {"ReadAttributes": ["email", "email_verified", "name"]})

    def test_when_the_attributes_are_not_a_literal_list_or_the_client_is_missing_then_seeding_stops(self):
        conditional = TEMPLATE.replace("WriteAttributes: [locale]", "WriteAttributes: !If [IsX, [name], [locale]]")
        with self.assertRaises(StackError):
            api_stack.template_web_client(template(conditional))
        with self.assertRaises(StackError):
            api_stack.template_web_client(template(TEMPLATE.replace("ReviewerUserPoolClient:", "OtherClient:")))


if __name__ == "__main__":
    unittest.main()
