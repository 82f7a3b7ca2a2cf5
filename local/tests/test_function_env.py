"""Unit tests of the environment the local stack gives the functions (no stack needed): built
from infra/template.yaml, so a variable the template does not give a function is not given
locally either, and one the local stack cannot fill stops the start."""

import unittest

from egress_local import template
from egress_local.provision import function_environment, function_environments, template_environment
from egress_local.settings import load_resources

OUTPUTS = {
    "state_machine_arn": "arn:aws:states:eu-west-2:000000000000:stateMachine:egress",
    "buckets": {n: n.lower() for n in ("SwbNotificationBucket", "SwbEgressStoreBucket", "StagingBucket", "DatalakeBucket")},
    "tables": {"RequestsTable": "requests", "AuditTable": "audit"},
    "keys": {
        "StagingKey": {"arn": "arn:staging"},
        "DatalakeKey": {"arn": "arn:datalake"},
        "ReleaseSigningKey": {"arn": "arn:release-signing"},
    },
}


class FunctionEnvironmentTest(unittest.TestCase):
    def test_when_built_from_the_real_template_then_each_function_gets_only_its_template_variables(self):
        real = template.load()
        per_function = function_environments(load_resources(), OUTPUTS, "dual", real)
        given = template_environment(real)
        self.assertEqual(set(per_function), set(load_resources()["functions"]))
        for crate, env in per_function.items():
            self.assertLessEqual(set(env), set(given[crate]), crate)
        self.assertNotIn("STATE_MACHINE_ARN", per_function["api-handler"])
        # The reviewer API serves the release key's public half and reads the checks reports.
        self.assertEqual(per_function["api-handler"]["RELEASE_SIGNING_KEY_ID"], "arn:release-signing")
        self.assertEqual(per_function["api-handler"]["STAGING_BUCKET"], "stagingbucket")
        self.assertEqual(per_function["start-workflow"]["APPROVAL_MODE"], "dual")
        union = function_environment(load_resources(), OUTPUTS, "single")
        self.assertEqual(set(union) - {"RUST_LOG"}, set().union(*(set(e) for e in per_function.values())))

    def test_when_the_template_gives_a_variable_the_local_stack_cannot_fill_then_the_start_stops(self):
        real = template.load()
        real["RecordTaskTokenFunction"]["Properties"]["Environment"]["Variables"]["NEW_SETTING"] = "x"
        with self.assertRaises(SystemExit) as raised:
            function_environments(load_resources(), OUTPUTS, "dual", real)
        self.assertIn("NEW_SETTING", str(raised.exception))


if __name__ == "__main__":
    unittest.main()
