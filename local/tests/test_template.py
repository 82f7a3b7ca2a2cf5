"""Unit tests of what the local stack mirrors from infra/template.yaml (no stack needed): the
requests table's index projection, so a reviewer-facing read of the index returns the same
attributes locally as deployed."""

import tempfile
import unittest
from pathlib import Path

from egress_local import template
from egress_local.provision import table_arguments
from egress_local.settings import load_resources

TEMPLATE = """
Resources:
  RequestsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      SSESpecification:
        KMSMasterKeyId: !GetAtt DataKey.Arn
      GlobalSecondaryIndexes:
        - IndexName: by-requested-dt
          KeySchema:
            - { AttributeName: record_type, KeyType: HASH }
          Projection:
            ProjectionType: INCLUDE
            NonKeyAttributes: [egress_status, review_handle]
"""


def resources_of(text: str) -> dict:
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8")
    f.write(text)
    f.close()
    return template.load(Path(f.name))


SPEC = {"name": "egress-requests", "key": [["egress_request_id", "S"]], "indexes": {"by-requested-dt": [["record_type", "S"], ["requested_dt", "S"]]}}


class IndexProjectionTest(unittest.TestCase):
    def test_when_the_template_projects_some_attributes_then_the_local_index_projects_the_same(self):
        projections = template.index_projections(resources_of(TEMPLATE), "RequestsTable")
        args = table_arguments(SPEC, projections)
        self.assertEqual(
            args["GlobalSecondaryIndexes"][0]["Projection"],
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["egress_status", "review_handle"]},
        )

    def test_when_resources_json_declares_an_index_the_template_lacks_then_the_start_stops(self):
        with self.assertRaises(SystemExit):
            table_arguments(SPEC, {})

    def test_when_the_projection_is_not_literal_then_it_cannot_be_mirrored(self):
        conditional = TEMPLATE.replace("ProjectionType: INCLUDE", "ProjectionType: !If [X, ALL, INCLUDE]")
        with self.assertRaises(template.TemplateError):
            template.index_projections(resources_of(conditional), "RequestsTable")

    def test_when_the_real_template_is_read_then_every_local_index_has_its_projection(self):
        real = template.load()
        for logical_id, spec in load_resources()["tables"].items():
            if spec.get("indexes"):
                projections = template.index_projections(real, logical_id)
                args = table_arguments(spec, projections)
                for index in args["GlobalSecondaryIndexes"]:
                    self.assertEqual(index["Projection"], projections[index["IndexName"]])


class ClientAttributesTest(unittest.TestCase):
    def test_when_the_real_template_is_read_then_the_web_client_restricts_writes(self):
        # Cognito lets a client with no or an empty WriteAttributes write every attribute
        # (a reviewer could rename themself: issue 8, defect 7).
        attributes = template.client_attributes(template.load(), "ReviewerUserPoolClient")
        self.assertTrue(attributes.get("WriteAttributes"), attributes)


if __name__ == "__main__":
    unittest.main()


class AsyncRetriesTest(unittest.TestCase):
    def test_when_the_stack_starts_then_the_router_retries_as_each_function_is_configured(self):
        from egress_local import stack, template

        retries = stack.function_async_retries(template.load())
        self.assertEqual(retries["start-workflow"], 2, "the template's EventInvokeConfig")
        self.assertEqual(retries["copy-to-staging"], 2, "Lambda's default where the template sets none")
