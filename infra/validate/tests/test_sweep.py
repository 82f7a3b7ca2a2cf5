"""The sweep in the template (issue 14): its schedule, the role that runs it, its timings.

Each check returns the errors it finds; the real template must have none, and a broken copy
must be named for the right reason (so none of these checks can pass by checking nothing).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

VALIDATE_DIR = Path(__file__).resolve().parents[1]
INFRA_DIR = VALIDATE_DIR.parent

sys.path.insert(0, str(VALIDATE_DIR))

import gatelib  # noqa: E402

# `shared::model::SweepRequest`: the fields the function accepts (it refuses any other).
SWEEP_REQUEST_FIELDS = {"dry_run", "repair", "egress_request_ids"}
TIMINGS = {
    "REMIND_AFTER_SECONDS": "RemindAfterSeconds",
    "REMIND_EVERY_SECONDS": "RemindEverySeconds",
    "ESCALATE_AFTER_SECONDS": "EscalateAfterSeconds",
    "EXPIRY_WARNING_SECONDS": "ExpiryWarningSeconds",
}
TOPICS = {"IgNotificationTopic", "RitNotificationTopic", "AdminAlertTopic"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return gatelib.load_template(INFRA_DIR / "template.yaml")


def getatt(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        return att[0] if isinstance(att, list) else att.split(".")[0]
    return None


def ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def schedule_errors(template: dict[str, Any]) -> list[str]:
    """One EventBridge Scheduler schedule runs the sweep, with a valid repair input, through
    a role of its own that may invoke the sweep and nothing else."""
    errors = []
    resources = template["Resources"]
    schedules = gatelib.resources_of_type(template, "AWS::Scheduler::Schedule")
    sweeps = {n: r for n, r in schedules.items() if getatt(r["Properties"].get("Target", {}).get("Arn")) == "SweepFunction"}
    if len(sweeps) != 1:
        return [f"expected one schedule targeting SweepFunction, found {sorted(sweeps)}"]
    props = next(iter(sweeps.values()))["Properties"]
    target = props["Target"]
    if props.get("State", "ENABLED") != "ENABLED":
        errors.append("the sweep's schedule is not ENABLED")
    expression = props.get("ScheduleExpression")
    text = expression.get("Fn::Sub") if isinstance(expression, dict) else expression
    if not isinstance(text, str) or not text.startswith("rate(") or "${SweepIntervalMinutes}" not in text:
        errors.append(f"the schedule's expression {expression!r} is not rate(${{SweepIntervalMinutes}} minutes)")
    try:
        given = json.loads(target.get("Input", ""))
    except json.JSONDecodeError as exc:
        given = None
        errors.append(f"the schedule's input is not JSON: {exc}")
    if isinstance(given, dict):
        if unknown := sorted(set(given) - SWEEP_REQUEST_FIELDS):
            errors.append(f"the schedule's input has fields the sweep refuses: {unknown}")
        if given.get("repair") is not True or given.get("dry_run"):
            errors.append("the scheduled sweep must repair ({\"repair\": true}, no dry run)")
    if target.get("RetryPolicy", {}).get("MaximumRetryAttempts") != 0:
        errors.append("a missed sweep must not be retried (the next one makes up for it)")
    role_name = getatt(target.get("RoleArn"))
    role = resources.get(role_name or "", {})
    if role.get("Type") != "AWS::IAM::Role":
        return errors + [f"the schedule's role {role_name!r} is not a role of this template"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    principals = {s.get("Principal", {}).get("Service") for s in trust}
    if principals != {"scheduler.amazonaws.com"}:
        errors.append(f"the schedule's role trusts {principals}, not only scheduler.amazonaws.com")
    if not all("aws:SourceAccount" in json.dumps(s.get("Condition", {})) for s in trust):
        errors.append("the schedule's role must be assumable only for this account (aws:SourceAccount)")
    for policy in role["Properties"].get("Policies", []):
        for s in policy["PolicyDocument"]["Statement"]:
            if as_list(s["Action"]) != ["lambda:InvokeFunction"] or [getatt(r) for r in as_list(s["Resource"])] != ["SweepFunction"]:
                errors.append(f"the schedule's role may do more than invoke the sweep: {s.get('Sid')}")
    return errors


def function_errors(template: dict[str, Any]) -> list[str]:
    """The timings come from positive Number parameters; the review timeout is the workflow's."""
    errors = []
    resources = template["Resources"]
    env = resources["SweepFunction"]["Properties"]["Environment"]["Variables"]
    for variable, parameter in TIMINGS.items():
        if ref(env.get(variable)) != parameter:
            errors.append(f"{variable} is not the parameter {parameter}")
            continue
        p = template["Parameters"].get(parameter, {})
        if p.get("Type") != "Number" or int(p.get("MinValue", 0)) < 60:
            errors.append(f"{parameter} must be a Number of at least 60 seconds")
    start = resources["StartWorkflowFunction"]["Properties"]["Environment"]["Variables"]
    if env.get("REVIEW_TIMEOUT_SECONDS") != start.get("REVIEW_TIMEOUT_SECONDS"):
        errors.append("the sweep's REVIEW_TIMEOUT_SECONDS differs from the workflow's")
    if resources["SweepFunction"]["Properties"].get("ReservedConcurrentExecutions") != 1:
        errors.append("the sweep must run one at a time (ReservedConcurrentExecutions: 1)")
    return errors


def role_errors(template: dict[str, Any]) -> list[str]:
    """Least privilege: no wildcard; publishes only to the service's topics; describes only its
    own workflow's executions; never deletes or overwrites an archive (those are reported)."""
    errors = []
    statements = template["Resources"]["SweepRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for s in statements:
        actions = as_list(s["Action"])
        resources = as_list(s["Resource"])
        if any(a == "*" or a.endswith(":*") for a in actions) or "*" in resources:
            errors.append(f"{s.get('Sid')}: a wildcard action or resource")
        if "sns:Publish" in actions and {ref(r) for r in resources} - TOPICS:
            errors.append(f"{s.get('Sid')}: publishes to a topic that is not the reviewers' or the admin's")
        if "states:DescribeExecution" in actions and not all(
            "execution:${EgressWorkflow.Name}:" in json.dumps(r) for r in resources
        ):
            errors.append(f"{s.get('Sid')}: describes executions of another state machine")
        datalake = any("DatalakeBucketName" in json.dumps(r) for r in resources)
        if datalake and {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject"} & set(actions):
            errors.append(f"{s.get('Sid')}: may delete or overwrite an archive")
    return errors


def test_when_the_real_template_is_checked_then_the_sweep_is_scheduled_least_privileged_and_configured(template):
    assert schedule_errors(template) == []
    assert function_errors(template) == []
    assert role_errors(template) == []


def test_when_the_schedule_input_is_mistyped_then_the_gate_names_the_field(template):
    broken = copy.deepcopy(template)
    broken["Resources"]["SweepSchedule"]["Properties"]["Target"]["Input"] = '{"repair": true, "dryrun": true}'
    assert any("dryrun" in e for e in schedule_errors(broken))


def test_when_the_scheduled_sweep_is_a_dry_run_then_the_gate_refuses_it(template):
    broken = copy.deepcopy(template)
    broken["Resources"]["SweepSchedule"]["Properties"]["Target"]["Input"] = '{"dry_run": true}'
    assert any("must repair" in e for e in schedule_errors(broken))


def test_when_the_schedule_role_may_do_more_then_the_gate_names_it(template):
    broken = copy.deepcopy(template)
    role = broken["Resources"]["SweepScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    role.append({"Sid": "AlsoStart", "Effect": "Allow", "Action": "states:StartExecution", "Resource": "*"})
    assert any("AlsoStart" in e for e in schedule_errors(broken))


def test_when_the_sweep_has_no_schedule_then_the_gate_says_so(template):
    broken = copy.deepcopy(template)
    del broken["Resources"]["SweepSchedule"]
    assert schedule_errors(broken) == ["expected one schedule targeting SweepFunction, found []"]


def test_when_a_timing_is_hard_coded_or_the_timeout_differs_then_the_gate_names_it(template):
    broken = copy.deepcopy(template)
    env = broken["Resources"]["SweepFunction"]["Properties"]["Environment"]["Variables"]
    env["REMIND_AFTER_SECONDS"] = "10"
    env["REVIEW_TIMEOUT_SECONDS"] = "60"
    errors = function_errors(broken)
    assert any("REMIND_AFTER_SECONDS" in e for e in errors)
    assert any("REVIEW_TIMEOUT_SECONDS" in e for e in errors)


def test_when_the_role_may_delete_archives_or_publish_elsewhere_then_the_gate_names_it(template):
    broken = copy.deepcopy(template)
    statements = broken["Resources"]["SweepRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({
        "Sid": "DeleteArchives", "Effect": "Allow", "Action": ["s3:DeleteObject"],
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DatalakeBucketName}/approved_egress/*"},
    })
    statements.append({"Sid": "PublishAnywhere", "Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "SwbEgressTopicArn"}})
    errors = role_errors(broken)
    assert any("DeleteArchives" in e for e in errors)
    assert any("PublishAnywhere" in e for e in errors)
