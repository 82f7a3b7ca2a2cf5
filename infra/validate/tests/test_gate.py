"""The gate must fail, for the right reason, when the template is broken.

Each breakage test mutates a copy of infra/template.yaml the way a careless edit would, runs the
same offline transform and cfn-guard rules as `make validate`, and asserts that the run fails
and names the rule that caught it. The unmutated template is checked the same way first, so a
failure can only come from the mutation.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

VALIDATE_DIR = Path(__file__).resolve().parents[1]
INFRA_DIR = VALIDATE_DIR.parent
ROOT = INFRA_DIR.parent
GUARD_RULES = INFRA_DIR / "guard" / "rules"
# The Makefile passes the pinned binary; the default is where it installs it.
CFN_GUARD = Path(os.environ.get("CFN_GUARD", ROOT / ".venv" / "infra" / "bin" / "cfn-guard"))

sys.path.insert(0, str(VALIDATE_DIR))

import check_security  # noqa: E402
import check_wiring  # noqa: E402
import gatelib  # noqa: E402


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return gatelib.load_template(INFRA_DIR / "template.yaml")


@pytest.fixture(scope="module")
def parameters() -> dict[str, str]:
    return gatelib.samconfig_parameters(INFRA_DIR / "samconfig.toml")[1]


def guard(template: dict[str, Any], parameters: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    """Transforms `template` offline and runs every guard rule on it, as `make validate` does."""
    packaged = gatelib.package_offline(template, INFRA_DIR, parameters)
    view = gatelib.guard_view(gatelib.sam_transform(packaged, parameters))
    data = tmp_path / "template.guard.json"
    data.write_text(json.dumps(view, indent=1), encoding="utf-8")
    run = subprocess.run(
        [str(CFN_GUARD), "validate", "-d", str(data), "-r", str(GUARD_RULES),
         "--show-summary", "fail", "-o", "single-line-summary"],
        capture_output=True, text=True, check=False,
    )
    return run.returncode, run.stdout + run.stderr


def failed_rules(output: str) -> set[str]:
    return set(re.findall(r"^\S+\.guard/([A-Z0-9_]+)\s+FAIL\s*$", output, re.MULTILINE))


def statements(template: dict[str, Any], role: str) -> list[Any]:
    return template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def test_when_the_template_is_unchanged_then_every_guard_rule_passes(template, parameters, tmp_path):
    code, output = guard(template, parameters, tmp_path)
    assert code == 0, output
    assert failed_rules(output) == set()


def _no_bucket_encryption(t):
    del t["Resources"]["StagingBucket"]["Properties"]["BucketEncryption"]


def _aws_managed_bucket_key(t):
    sse = t["Resources"]["StagingBucket"]["Properties"]["BucketEncryption"]
    sse["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] = "alias/aws/s3"


def _wildcard_action(t):
    statements(t, "ApiHandlerRole")[1]["Action"] = "dynamodb:*"


def _wildcard_action_in_conditional_statement(t):
    conditional = next(s for s in statements(t, "CopyToStagingRole") if "Fn::If" in s)
    conditional["Fn::If"][1]["Action"] = "kms:*"


def _statement_on_every_resource(t):
    statements(t, "CopyToDatalakeRole")[1]["Resource"] = "*"


def _no_pitr(t):
    del t["Resources"]["AuditTable"]["Properties"]["PointInTimeRecoverySpecification"]


def _table_not_retained(t):
    t["Resources"]["RequestsTable"]["DeletionPolicy"] = "Delete"


def _no_log_retention(t):
    del t["Resources"]["ApiHandlerLogGroup"]["Properties"]["RetentionInDays"]


def _intake_without_dlq(t):
    del t["Resources"]["StartWorkflowFunction"]["Properties"]["DeadLetterQueue"]


def _subscription_without_redrive(t):
    events = t["Resources"]["StartWorkflowFunction"]["Properties"]["Events"]
    del events["SwbEgressRequest"]["Properties"]["RedrivePolicy"]


def _topic_without_tls_policy(t):
    del t["Resources"]["AdminAlertTopicPolicy"]


def _unencrypted_topic(t):
    del t["Resources"]["RitNotificationTopic"]["Properties"]["KmsMasterKeyId"]


def _queue_with_aws_managed_key(t):
    t["Resources"]["IntakeDeadLetterQueue"]["Properties"]["KmsMasterKeyId"] = "alias/aws/sqs"


def _public_bucket(t):
    t["Resources"]["StagingBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = False


def _token_in_workflow_logs(t):
    t["Resources"]["EgressWorkflow"]["Properties"]["Logging"]["IncludeExecutionData"] = True


def _optional_mfa(t):
    t["Resources"]["ReviewerUserPool"]["Properties"]["MfaConfiguration"] = "OPTIONAL"


def _group_attribute_writable(t):
    t["Resources"]["ReviewerUserPoolClient"]["Properties"]["WriteAttributes"] = ["locale", "custom:idp_groups"]


def _reviewers_can_rename_themselves(t):
    # The web client as it was: a reviewer renamed themself "Ivy Governance (IG lead)".
    t["Resources"]["ReviewerUserPoolClient"]["Properties"]["WriteAttributes"] = ["name"]


def _federated_client_with_the_admin_scope(t):
    client = t["Resources"]["FederatedReviewerUserPoolClient"]["Properties"]
    client["AllowedOAuthScopes"] = ["openid", "email", "profile", "aws.cognito.signin.user.admin"]


def _staging_policy_denies_uploads_without_the_kms_header(t):
    # The staging policy as it was: UploadPartCopy cannot carry the header, so no file over
    # 5 GiB could be staged.
    statements = t["Resources"]["StagingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    statements[1] = {
        "Sid": "DenyObjectsNotEncryptedWithTheStagingKey",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": {"Fn::Sub": "${StagingBucket.Arn}/*"},
        "Condition": {
            "StringNotEqualsIfExists": {
                "s3:x-amz-server-side-encryption-aws-kms-key-id": {"Fn::GetAtt": ["StagingKey", "Arn"]}
            }
        },
    }


def _staging_policy_denies_uploads_without_the_sse_header(t):
    statements = t["Resources"]["StagingBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    statements[2]["Condition"] = {"Null": {"s3:x-amz-server-side-encryption": "true"}}


def _api_accepts_any_client(t):
    del t["Resources"]["GraphQLApi"]["Properties"]["UserPoolConfig"]["AppIdClientRegex"]


BREAKAGES: list[tuple[str, Callable[[dict[str, Any]], None], set[str]]] = [
    ("bucket without encryption", _no_bucket_encryption, {"S3_BUCKET_ENCRYPTED", "S3_BUCKET_ENCRYPTED_WITH_CMK"}),
    ("bucket with the AWS-managed key", _aws_managed_bucket_key, {"S3_BUCKET_ENCRYPTED_WITH_CMK"}),
    ("IAM wildcard action", _wildcard_action, {"IAM_NO_WILDCARD_ACTIONS"}),
    ("IAM wildcard in a conditional statement", _wildcard_action_in_conditional_statement, {"IAM_NO_WILDCARD_ACTIONS"}),
    ("role statement on every resource", _statement_on_every_resource, {"IAM_ROLE_RESOURCES_SCOPED"}),
    ("table without PITR", _no_pitr, {"DYNAMODB_TABLE_PITR_ENABLED"}),
    ("table deleted with the stack", _table_not_retained, {"DYNAMODB_TABLE_RETAINED"}),
    ("log group without retention", _no_log_retention, {"LOG_GROUP_RETENTION_SET"}),
    ("SNS-triggered function without DLQ", _intake_without_dlq, {"SNS_TRIGGERED_FUNCTION_HAS_DLQ"}),
    ("SNS subscription without redrive", _subscription_without_redrive, {"SNS_LAMBDA_SUBSCRIPTION_HAS_DLQ"}),
    ("topic without TLS-only policy", _topic_without_tls_policy, {"SNS_TOPIC_TLS_ONLY"}),
    ("unencrypted topic", _unencrypted_topic, {"SNS_TOPIC_ENCRYPTED_WITH_CMK"}),
    ("queue with the AWS-managed key", _queue_with_aws_managed_key, {"SQS_QUEUE_ENCRYPTED_WITH_CMK"}),
    ("bucket not fully private", _public_bucket, {"S3_BUCKET_PUBLIC_ACCESS_BLOCKED"}),
    ("execution data in workflow logs", _token_in_workflow_logs, {"STATE_MACHINE_LOGGING_WITHOUT_EXECUTION_DATA"}),
    ("optional MFA", _optional_mfa, {"COGNITO_REVIEWERS_MFA_REQUIRED"}),
    ("group attribute writable by users", _group_attribute_writable,
     {"COGNITO_CLIENT_CANNOT_WRITE_GROUP_ATTRIBUTE", "COGNITO_CLIENT_CANNOT_WRITE_SHOWN_ATTRIBUTES"}),
    ("reviewers can rename themselves", _reviewers_can_rename_themselves, {"COGNITO_CLIENT_CANNOT_WRITE_SHOWN_ATTRIBUTES"}),
    ("federated client with the admin scope", _federated_client_with_the_admin_scope,
     {"COGNITO_CLIENT_CANNOT_WRITE_GROUP_ATTRIBUTE", "COGNITO_CLIENT_CANNOT_WRITE_SHOWN_ATTRIBUTES"}),
    ("staging policy refuses uploads without the KMS header", _staging_policy_denies_uploads_without_the_kms_header,
     {"S3_SSE_DENY_ONLY_NAMES_ANOTHER_KEY"}),
    ("staging policy refuses uploads without the SSE header", _staging_policy_denies_uploads_without_the_sse_header,
     {"S3_SSE_DENY_ONLY_NAMES_ANOTHER_KEY"}),
    ("API accepting any app client", _api_accepts_any_client, {"APPSYNC_ACCEPTS_ONLY_THIS_STACKS_CLIENTS"}),
]


@pytest.mark.parametrize("mutate,expected", [(m, e) for _, m, e in BREAKAGES], ids=[n for n, _, _ in BREAKAGES])
def test_when_the_template_is_broken_then_guard_fails_naming_the_rule(template, parameters, tmp_path, mutate, expected):
    broken = copy.deepcopy(template)
    mutate(broken)
    code, output = guard(broken, parameters, tmp_path)
    assert code != 0, f"cfn-guard passed a template with this breakage:\n{output}"
    assert failed_rules(output) == expected, output


def test_when_a_managed_policy_is_named_then_the_offline_transform_refuses_instead_of_calling_iam(template, parameters):
    broken = copy.deepcopy(template)
    fn = broken["Resources"]["StartWorkflowFunction"]["Properties"]
    del fn["Role"]
    fn["Policies"] = ["EgressTeamSharedPolicy"]  # not in the translator's bundled list
    with pytest.raises(gatelib.GateError, match="managed policy"):
        gatelib.sam_transform(gatelib.package_offline(broken, INFRA_DIR, parameters), parameters)


def test_every_guard_rule_has_a_passing_and_a_failing_rule_test():
    for rules_file in sorted(GUARD_RULES.glob("*.guard")):
        rules = set(re.findall(r"^rule\s+([A-Z0-9_]+)", rules_file.read_text(encoding="utf-8"), re.MULTILINE))
        tests_file = GUARD_RULES / "tests" / f"{rules_file.stem}_tests.yaml"
        assert tests_file.is_file(), f"{rules_file.name} has no rule tests ({tests_file.name})"
        text = tests_file.read_text(encoding="utf-8")
        for rule in rules:
            outcomes = set(re.findall(rf"^\s+{rule}:\s+(PASS|FAIL|SKIP)\s*$", text, re.MULTILINE))
            assert {"PASS", "FAIL"} <= outcomes, f"{rule} needs a PASS and a FAIL test, has {sorted(outcomes)}"


# --- wiring checks -------------------------------------------------------------------------


def wiring(template: dict[str, Any], root: Path = ROOT, samconfig: Path | None = None) -> list[str]:
    samconfig = samconfig or INFRA_DIR / "samconfig.toml"
    report = check_wiring.Report()
    check_wiring.check_state_machine(template, INFRA_DIR, report)
    check_wiring.check_functions(template, root, ROOT / "docs" / "contracts.md", report)
    check_wiring.check_api(template, INFRA_DIR, report)
    check_wiring.check_schema_groups(template, INFRA_DIR, samconfig, report)
    check_wiring.check_samconfig(template, samconfig, report)
    check_security.check_security(template, root, gatelib.samconfig_parameters(samconfig)[1], report)
    return report.errors


def test_when_the_template_is_unchanged_then_the_wiring_checks_pass(template):
    assert wiring(template) == []


def test_when_a_substitution_is_missing_then_the_placeholder_is_named(template):
    broken = copy.deepcopy(template)
    del broken["Resources"]["EgressWorkflow"]["Properties"]["DefinitionSubstitutions"]["AuditTable"]
    errors = wiring(broken)
    assert any("without a substitution: AuditTable" in e for e in errors), errors


def test_when_a_substitution_is_unused_then_it_is_named(template):
    broken = copy.deepcopy(template)
    broken["Resources"]["EgressWorkflow"]["Properties"]["DefinitionSubstitutions"]["Leftover"] = "x"
    errors = wiring(broken)
    assert any("does not use: Leftover" in e for e in errors), errors


def test_when_the_workflow_role_lacks_an_integration_then_the_action_and_resource_are_named(template):
    broken = copy.deepcopy(template)
    stmt = next(s for s in statements(broken, "EgressWorkflowRole") if s.get("Sid") == "NotifyReviewersAndAdmin")
    stmt["Resource"] = [r for r in stmt["Resource"] if r != {"Ref": "AdminAlertTopic"}]
    errors = wiring(broken)
    assert any("needs sns:Publish on AdminAlertTopic" in e for e in errors), errors


def test_when_the_workflow_role_grants_more_than_the_asl_uses_then_it_is_named(template):
    broken = copy.deepcopy(template)
    stmt = next(s for s in statements(broken, "EgressWorkflowRole") if s.get("Sid") == "AppendAuditEvents")
    stmt["Action"] = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
    errors = wiring(broken)
    assert any("grants dynamodb:DeleteItem on AuditTable" in e for e in errors), errors


def test_when_a_crate_is_not_deployed_then_it_is_named(template, tmp_path):
    for crate in (ROOT / "functions").glob("*/Cargo.toml"):
        (tmp_path / "functions" / crate.parent.name).mkdir(parents=True)
        (tmp_path / "functions" / crate.parent.name / "Cargo.toml").write_text("", encoding="utf-8")
    (tmp_path / "functions" / "new-function").mkdir()
    (tmp_path / "functions" / "new-function" / "Cargo.toml").write_text("", encoding="utf-8")
    errors = wiring(template, root=tmp_path)
    assert any("functions/new-function is not deployed" in e for e in errors), errors


def test_when_a_function_lacks_a_contract_variable_then_it_is_named(template):
    broken = copy.deepcopy(template)
    del broken["Resources"]["CopyToDatalakeFunction"]["Properties"]["Environment"]["Variables"]["DATALAKE_KMS_KEY_ARN"]
    errors = wiring(broken)
    assert any("CopyToDatalakeFunction lacks DATALAKE_KMS_KEY_ARN" in e for e in errors), errors


def test_when_a_functions_config_and_its_contract_row_differ_then_the_variable_is_named(template, tmp_path):
    for crate in (ROOT / "functions").glob("*/Cargo.toml"):
        (tmp_path / "functions" / crate.parent.name / "src").mkdir(parents=True)
        (tmp_path / "functions" / crate.parent.name / "Cargo.toml").write_text("", encoding="utf-8")
        config = (crate.parent / "src" / "config.rs").read_text(encoding="utf-8")
        if crate.parent.name == "record-task-token":
            config = config.replace('&["REQUESTS_TABLE"]', '&["AUDIT_TABLE", "REQUESTS_TABLE"]')
        if crate.parent.name == "notify-requester":
            config = config.replace(', "SENDER_EMAIL"]', "]")
        (tmp_path / "functions" / crate.parent.name / "src" / "config.rs").write_text(config, encoding="utf-8")
    errors = wiring(template, root=tmp_path)
    assert any("record-task-token reads AUDIT_TABLE, which its contracts.md row lacks" in e for e in errors), errors
    assert any("notify-requester does not read SENDER_EMAIL, which its contracts.md row lists" in e for e in errors), errors


def test_when_a_samconfig_value_breaks_a_constraint_then_the_parameter_is_named(template, tmp_path):
    text = (INFRA_DIR / "samconfig.toml").read_text(encoding="utf-8")
    bad = tmp_path / "samconfig.toml"
    bad.write_text(text.replace('"ApprovalMode=dual"', '"ApprovalMode=double"'), encoding="utf-8")
    errors = wiring(template, samconfig=bad)
    assert any("ApprovalMode='double'" in e for e in errors), errors


def test_when_the_schema_names_a_group_no_environment_configures_then_it_is_named(template, tmp_path):
    (tmp_path / "schema.graphql").write_text(
        'type Query { listRequests: [String] @aws_auth(cognito_groups: ["InformationGovernance", "Auditors"]) }\n',
        encoding="utf-8",
    )
    report = check_wiring.Report()
    check_wiring.check_schema_groups(template, tmp_path, INFRA_DIR / "samconfig.toml", report)
    assert len(report.errors) == 1 and "names Auditors" in report.errors[0], report.errors


def test_when_the_schema_is_rendered_then_each_placeholder_lists_its_groups_without_duplicates(template):
    text = "a: [${ReviewerGroups}] b: [${DownloadGroups}] c: [${ApiGroups}]"
    default = gatelib.render_schema(text, template, {})
    assert default == (
        'a: ["InformationGovernance", "ResearchIT"] b: ["InformationGovernance", "ResearchIT"] '
        'c: ["InformationGovernance", "ResearchIT"]'
    )
    custom = gatelib.render_schema(
        text, template,
        {"IgReviewerGroupName": "IG", "RitReviewerGroupName": "RIT", "DownloadGroups": "IG,Auditors"},
    )
    assert custom == 'a: ["IG", "RIT"] b: ["IG", "Auditors"] c: ["IG", "RIT", "Auditors"]'


def test_when_the_schema_uses_an_unknown_placeholder_then_rendering_names_it(template):
    with pytest.raises(gatelib.GateError, match="unknown placeholders OwnerGroups"):
        gatelib.render_schema("x: [${OwnerGroups}]", template, {})


def test_when_the_admin_placeholder_is_rendered_then_it_names_the_admin_group(template):
    assert gatelib.render_schema("x: [${AdminGroups}]", template, {}) == 'x: ["EgressAdmin"]'
    assert gatelib.render_schema("x: [${AdminGroups}]", template, {"AdminGroupName": "TreAdmins"}) == 'x: ["TreAdmins"]'
    with pytest.raises(gatelib.GateError, match="^ADMIN_GROUP .*must differ"):
        gatelib.render_schema("x: [${AdminGroups}]", template, {"AdminGroupName": "ResearchIT"})


def test_when_deployed_then_the_admin_group_exists_and_revoke_release_is_resolved_by_api_handler(template):
    resources = template["Resources"]
    group = resources["AdminGroup"]
    assert group["Type"] == "AWS::Cognito::UserPoolGroup"
    assert group["Properties"]["GroupName"] == {"Ref": "AdminGroupName"}
    resolver = resources["RevokeReleaseResolver"]["Properties"]
    assert (resolver["TypeName"], resolver["FieldName"]) == ("Mutation", "revokeRelease")
    assert resolver["DataSourceName"] == {"Fn::GetAtt": ["ApiHandlerDataSource", "Name"]}
    env = resources["ApiHandlerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ADMIN_GROUP"] == {"Ref": "AdminGroupName"}


def test_when_api_handler_moves_a_revoked_archive_then_it_may_touch_only_the_archive_and_revoked(template):
    statements = {
        s["Sid"]: s
        for p in template["Resources"]["ApiHandlerRole"]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and "Sid" in s
    }
    deletes = [s for s in statements.values() if any("Delete" in a for a in gatelib_list(s["Action"]))]
    assert [s["Sid"] for s in deletes] == ["DeleteRevokedArchive"]
    assert deletes[0]["Resource"]["Fn::Sub"].endswith("/approved_egress/*/egress_data.zip")
    puts = [s for s in statements.values() if "s3:PutObject" in gatelib_list(s["Action"])]
    assert [s["Resource"]["Fn::Sub"].rsplit(":::", 1)[1] for s in puts] == ["${DatalakeBucketName}/revoked/approved_egress/*"]


def gatelib_list(value):
    return value if isinstance(value, list) else [value]


def test_when_packaged_for_deploy_then_paths_are_absolute_and_the_schema_is_rendered(template, parameters, tmp_path):
    target = gatelib.package_for_deploy(template, INFRA_DIR, parameters, tmp_path)
    packaged = json.loads(target.read_text(encoding="utf-8"))
    schema = packaged["Resources"]["GraphQLSchema"]["Properties"]["DefinitionS3Location"]
    assert schema == str(tmp_path / "schema.graphql")
    assert "${" not in Path(schema).read_text(encoding="utf-8")
    code = packaged["Resources"]["ApiHandlerFunction"]["Properties"]["CodeUri"]
    assert code == str(ROOT / "target" / "lambda" / "api-handler") + "/", code
    for resolver in gatelib.resources_of_type(packaged, "AWS::AppSync::Resolver").values():
        assert Path(resolver["Properties"]["RequestMappingTemplateS3Location"]).is_file()
    asl = packaged["Resources"]["EgressWorkflow"]["Properties"]["DefinitionUri"]
    assert Path(asl).is_file() and Path(asl).is_absolute()


# --- security checks (check_security.py) --------------------------------------------------


def security_errors(template: dict[str, Any], root: Path = ROOT) -> list[str]:
    report = check_wiring.Report()
    check_security.check_security(template, root, gatelib.samconfig_parameters(INFRA_DIR / "samconfig.toml")[1], report)
    return report.errors


def policy_statement(template: dict[str, Any], resource: str, sid: str) -> dict[str, Any]:
    props = template["Resources"][resource]["Properties"]
    document = props["KeyPolicy"] if "KeyPolicy" in props else props["Policies"][0]["PolicyDocument"]
    return next(s for s in document["Statement"] if isinstance(s, dict) and s.get("Sid") == sid)


def repo_copy(tmp_path: Path, *paths: Path) -> Path:
    """A root holding copies of the repository files the security checks read."""
    for rel in (check_security.REQUEST_MODEL, check_security.AUDIT_MODEL, check_security.REVIEW_ADAPTER, *paths):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def test_when_the_template_is_unchanged_then_the_security_checks_pass(template):
    assert security_errors(template) == []


@pytest.mark.parametrize("pattern", [".*", "^.+$", {"Fn::Sub": "${ReviewerUserPoolClient}"}])
def test_when_the_api_client_pattern_is_not_exact_then_it_is_named(template, pattern):
    broken = copy.deepcopy(template)
    broken["Resources"]["GraphQLApi"]["Properties"]["UserPoolConfig"]["AppIdClientRegex"] = pattern
    errors = security_errors(broken)
    assert any("AppIdClientRegex" in e and "also accepts" in e for e in errors), errors


def test_when_the_api_client_pattern_misses_the_federated_client_then_it_is_named(template):
    broken = copy.deepcopy(template)
    broken["Resources"]["GraphQLApi"]["Properties"]["UserPoolConfig"]["AppIdClientRegex"] = {
        "Fn::Sub": "^${ReviewerUserPoolClient}$"
    }
    errors = security_errors(broken)
    assert any("never accepts FederatedReviewerUserPoolClient" in e for e in errors), errors


def test_when_the_logs_key_serves_every_log_group_then_it_is_named(template):
    # The key policy as it was: any log group of the account could use the key.
    broken = copy.deepcopy(template)
    stmt = policy_statement(broken, "LogsKey", "CloudWatchLogsEncryptsThisStacksLogGroups")
    stmt["Condition"] = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}}}
    errors = security_errors(broken)
    assert any("LogsKey" in e and "also matches" in e and "another-function" in e for e in errors), errors


def test_when_the_logs_key_names_the_project_but_not_the_stack_then_another_stacks_groups_are_named(template):
    broken = copy.deepcopy(template)
    stmt = policy_statement(broken, "LogsKey", "CloudWatchLogsEncryptsThisStacksLogGroups")
    arns = stmt["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    arns[0] = {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/egress/${ProjectName}/*"}
    errors = security_errors(broken)
    assert any("also matches" in e and check_security.OTHER_STACK_UUID in e for e in errors), errors


def test_when_the_logs_key_has_no_log_group_condition_then_it_is_named(template):
    broken = copy.deepcopy(template)
    del policy_statement(broken, "ApiLogsKey", "CloudWatchLogsEncryptsTheApiLogGroup")["Condition"]
    errors = security_errors(broken)
    assert any("ApiLogsKey" in e and "any log group" in e for e in errors), errors


def test_when_a_log_group_has_a_generated_name_then_it_is_named(template):
    broken = copy.deepcopy(template)
    del broken["Resources"]["ApiHandlerLogGroup"]["Properties"]["LogGroupName"]
    errors = security_errors(broken)
    assert any("ApiHandlerLogGroup: a log group encrypted with LogsKey needs a LogGroupName" in e for e in errors), errors


def test_when_a_log_group_is_outside_the_keys_prefix_then_it_is_named(template):
    broken = copy.deepcopy(template)
    broken["Resources"]["ApiHandlerLogGroup"]["Properties"]["LogGroupName"] = "/aws/lambda/api-handler"
    errors = security_errors(broken)
    assert any("ApiHandlerLogGroup" in e and "does not name it" in e for e in errors), errors


def _list_index(t: dict[str, Any]) -> dict[str, Any]:
    return t["Resources"]["RequestsTable"]["Properties"]["GlobalSecondaryIndexes"][0]


def test_when_the_list_index_projects_all_attributes_then_the_task_token_is_named(template):
    # The index as it was: listRequests read items carrying the workflow's task token.
    broken = copy.deepcopy(template)
    _list_index(broken)["Projection"] = {"ProjectionType": "ALL"}
    errors = security_errors(broken)
    assert any("projection ALL copies pending_task_token, sfn_task_token" in e for e in errors), errors


def test_when_the_list_index_includes_the_task_token_then_it_is_named(template):
    broken = copy.deepcopy(template)
    _list_index(broken)["Projection"]["NonKeyAttributes"].append("sfn_task_token")
    errors = security_errors(broken)
    assert any("projects sfn_task_token" in e for e in errors), errors


def test_when_egress_request_gains_a_field_the_index_lacks_then_it_is_named(template, tmp_path):
    root = repo_copy(tmp_path)
    model = root / check_security.REQUEST_MODEL
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("    pub failure_cause: Option<String>,\n",
                                  "    pub failure_cause: Option<String>,\n    pub submitter_note: Option<String>,\n"),
                     encoding="utf-8")
    errors = security_errors(template, root)
    assert any("does not project submitter_note" in e for e in errors), errors


def test_when_api_handler_may_update_any_attribute_then_it_is_named(template):
    # The role as it was: UpdateItem on the requests table without an attribute condition.
    broken = copy.deepcopy(template)
    del policy_statement(broken, "ApiHandlerRole", "DecideAndCountDownloadsOnly")["Condition"]
    errors = security_errors(broken)
    assert any("without a ForAllValues:StringEquals dynamodb:Attributes condition" in e for e in errors), errors


def test_when_api_handler_may_update_an_attribute_it_does_not_own_then_it_is_named(template):
    broken = copy.deepcopy(template)
    stmt = policy_statement(broken, "ApiHandlerRole", "DecideAndCountDownloadsOnly")
    stmt["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"].append("s3_egress_store_bucket_path")
    stmt["Condition"]["StringEqualsIfExists"]["dynamodb:ReturnValues"].append("ALL_NEW")
    errors = security_errors(broken)
    assert any("allows s3_egress_store_bucket_path, which" in e for e in errors), errors
    assert any("dynamodb:ReturnValues allows" in e and "ALL_NEW" in e for e in errors), errors


def test_when_the_adapter_writes_a_new_attribute_then_the_missing_grant_is_named(template, tmp_path):
    root = repo_copy(tmp_path)
    adapter = root / check_security.REVIEW_ADAPTER
    text = adapter.read_text(encoding="utf-8")
    assert '"SET download_count = if_not_exists(download_count, :zero) + :one"' in text
    adapter.write_text(text.replace(
        '"SET download_count = if_not_exists(download_count, :zero) + :one"',
        '"SET download_count = if_not_exists(download_count, :zero) + :one, #last = :one"',
    ).replace('.expression_attribute_values(":zero"', '.expression_attribute_names("#last", "last_download_dt")\n            .expression_attribute_values(":zero"', 1), encoding="utf-8")
    names, _ = check_security.adapter_update_attributes(adapter)
    assert "last_download_dt" in names and "#last" not in names and "last" not in names
    errors = security_errors(template, root)
    assert any("names last_download_dt, which dynamodb:Attributes does not allow" in e for e in errors), errors


def test_when_an_audit_put_may_write_any_attribute_then_it_is_named(template):
    broken = copy.deepcopy(template)
    del policy_statement(broken, "ApiHandlerRole", "AppendAuditEvents")["Condition"]
    errors = security_errors(broken)
    assert any("ApiHandlerRole AppendAuditEvents: audit PutItem must be limited" in e for e in errors), errors


def test_when_a_role_may_update_or_delete_audit_events_then_it_is_named(template):
    assert check_security.check_audit_append_only(template) == []
    broken = copy.deepcopy(template)
    policy_statement(broken, "ApiHandlerRole", "ReadAuditChain")["Action"] = ["dynamodb:Query", "dynamodb:UpdateItem"]
    errors = check_security.check_audit_append_only(broken)
    assert any("ApiHandlerRole ReadAuditChain" in e and "dynamodb:UpdateItem" in e for e in errors), errors
    broken = copy.deepcopy(template)
    policy_statement(broken, "CopyToDatalakeRole", "ReadAuditChain")["Action"] = "dynamodb:*"
    errors = check_security.check_audit_append_only(broken)
    assert any("dynamodb:DeleteItem" in e for e in errors), errors


def test_when_the_release_key_is_wrong_or_others_may_sign_then_it_is_named(template):
    assert check_security.check_release_signing_key(template) == []
    broken = copy.deepcopy(template)
    broken["Resources"]["ReleaseSigningKey"]["Properties"]["KeySpec"] = "RSA_2048"
    assert any("KeySpec" in e for e in check_security.check_release_signing_key(broken))
    broken = copy.deepcopy(template)
    policy_statement(broken, "ReleaseSigningKey", "OnlyCopyToDatalakeSigns")["Principal"] = {"AWS": {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}}
    assert any("only CopyToDatalakeRole may sign" in e for e in check_security.check_release_signing_key(broken))
    broken = copy.deepcopy(template)
    statements = broken["Resources"]["ReleaseSigningKey"]["Properties"]["KeyPolicy"]["Statement"]
    statements[:] = [s for s in statements if s.get("Effect") != "Deny"]
    assert any("no Deny of kms:Sign" in e for e in check_security.check_release_signing_key(broken))


# --- pre-deploy build check ----------------------------------------------------------------

import check_build  # noqa: E402


def _fake_elf(path: Path, machine: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))


def _built(tmp_path: Path, machine: int) -> Path:
    template = gatelib.load_template(INFRA_DIR / "template.yaml")
    for res in gatelib.resources_of_type(template, "AWS::Serverless::Function").values():
        name = res["Properties"]["CodeUri"].rstrip("/").rsplit("/", 1)[1]
        _fake_elf(tmp_path / "lambda" / name / "bootstrap", machine)
    return tmp_path / "lambda"


def test_when_every_function_is_built_for_the_stack_architecture_then_deploy_may_go_on(tmp_path):
    lambda_dir = _built(tmp_path, check_build.ELF_MACHINE["arm64"])
    assert check_build.check(INFRA_DIR / "template.yaml", INFRA_DIR / "samconfig.toml", "example-project", lambda_dir) == []


def test_when_binaries_are_x86_64_but_the_stack_is_arm64_then_the_fix_is_named(tmp_path):
    lambda_dir = _built(tmp_path, check_build.ELF_MACHINE["x86_64"])
    errors = check_build.check(INFRA_DIR / "template.yaml", INFRA_DIR / "samconfig.toml", "example-project", lambda_dir)
    assert errors and all("built for x86_64" in e and "LAMBDA_BUILD_FLAGS=--arm64" in e for e in errors), errors


def test_when_a_function_is_not_built_then_it_is_named(tmp_path):
    lambda_dir = _built(tmp_path, check_build.ELF_MACHINE["arm64"])
    (lambda_dir / "api-handler" / "bootstrap").unlink()
    errors = check_build.check(INFRA_DIR / "template.yaml", INFRA_DIR / "samconfig.toml", "example-project", lambda_dir)
    assert len(errors) == 1 and "api-handler/bootstrap is missing" in errors[0], errors
