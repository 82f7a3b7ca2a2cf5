"""The service's own metrics in the template: the dashboard and the alarms read what the code emits.

shared/src/metrics.rs names every metric (`pub mod names`) and the variables that say where the
metrics go (`VARIABLES`). A dashboard widget or an alarm naming a metric the code never emits
would stay empty or silent forever, so each check below returns the errors it finds; the real
template must have none, and a broken copy must be named for the right reason.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

VALIDATE_DIR = Path(__file__).resolve().parents[1]
INFRA_DIR = VALIDATE_DIR.parent
ROOT = INFRA_DIR.parent
METRICS_RS = ROOT / "shared" / "src" / "metrics.rs"
CONTRACTS = ROOT / "docs" / "contracts.md"

sys.path.insert(0, str(VALIDATE_DIR))

import gatelib  # noqa: E402

# What the dashboard must show (issue 14: the review queue and its oldest age, turnaround,
# failures, throughput; plus what the sweep reports).
DASHBOARD_MUST_SHOW = {
    "WaitingRequests", "OldestWaitingAge", "TimeToDecision", "Turnaround", "Failures",
    "BytesStaged", "BytesArchived", "ArchiveThroughput", "Downloads", "RequestsSubmitted",
    "RemindersSent", "DriftFound",
}
# Values given to the dashboard's `${...}` placeholders to read it as JSON.
SAMPLE = {"MetricsNamespace": "TreEgress", "ProjectName": "proj-a", "AWS::Region": "eu-west-2",
          "ReviewTimeoutSeconds": "1209600"}


def metric_names() -> set[str]:
    text = METRICS_RS.read_text(encoding="utf-8")
    block = re.search(r"pub mod names \{(.*?)\n\}", text, re.S)
    assert block, "shared/src/metrics.rs has no `pub mod names`"
    return set(re.findall(r'pub const [A-Z_]+: &str = "([A-Za-z]+)";', block.group(1)))


def metrics_variables() -> set[str]:
    match = re.search(r"pub const VARIABLES: &\[&str\] = &\[(.*?)\];", METRICS_RS.read_text(encoding="utf-8"), re.S)
    assert match, "shared/src/metrics.rs declares no VARIABLES"
    return set(re.findall(r'"([A-Z_]+)"', match.group(1)))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return gatelib.load_template(INFRA_DIR / "template.yaml")


def of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


def dashboard_errors(template: dict[str, Any]) -> list[str]:
    """The dashboard's body is JSON once substituted, and every metric it reads is ours."""
    dashboards = of_type(template, "AWS::CloudWatch::Dashboard")
    if len(dashboards) != 1:
        return [f"expected one AWS::CloudWatch::Dashboard, found {len(dashboards)}"]
    name, dashboard = next(iter(dashboards.items()))
    sub = dashboard["Properties"].get("DashboardBody", {}).get("Fn::Sub")
    body, variables = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
    if not isinstance(body, str):
        return [f"{name}.DashboardBody must be a !Sub of the JSON body"]
    errors = []
    known = set(template.get("Parameters", {})) | set(variables) | {"AWS::Region"}
    for placeholder in sorted(set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", body))):
        if placeholder not in known or placeholder not in SAMPLE:
            errors.append(f"{name}: placeholder ${{{placeholder}}} is neither a parameter nor a substitution this test knows")
    text = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: SAMPLE.get(m.group(1), "x"), body)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        return errors + [f"{name}: the body is not JSON: {e}"]
    names = metric_names()
    shown: set[str] = set()
    for widget in parsed.get("widgets", []):
        title = widget.get("properties", {}).get("title", "?")
        for row in widget.get("properties", {}).get("metrics", []):
            if row and isinstance(row[0], dict):
                expression = row[0].get("expression", "")
                for metric in re.findall(r'MetricName="([^"]+)"', expression):
                    shown.add(metric)
                    if metric not in names:
                        errors.append(f"{title}: the expression reads {metric}, which shared::metrics does not emit")
                if f'Project="{SAMPLE["ProjectName"]}"' not in expression:
                    errors.append(f"{title}: the expression is not limited to this project")
                continue
            fields = [f for f in row if isinstance(f, str)]
            if len(fields) < 2:
                errors.append(f"{title}: a metric row without namespace and name: {row}")
                continue
            namespace, metric, dims = fields[0], fields[1], dict(zip(fields[2::2], fields[3::2]))
            shown.add(metric)
            if namespace != SAMPLE["MetricsNamespace"]:
                errors.append(f"{title}: {metric} is read from namespace {namespace}, not ${{MetricsNamespace}}")
            if metric not in names:
                errors.append(f"{title}: {metric} is not a metric shared::metrics emits")
            if dims.get("Project") != SAMPLE["ProjectName"]:
                errors.append(f"{title}: {metric} is not read for Project = ${{ProjectName}}")
    if missing := sorted(DASHBOARD_MUST_SHOW - shown):
        errors.append(f"the dashboard does not show {', '.join(missing)}")
    return errors


def alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    props = alarm["Properties"]
    if "MetricName" in props:
        return [{"Namespace": props.get("Namespace"), "MetricName": props["MetricName"],
                 "Dimensions": props.get("Dimensions", [])}]
    return [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]


def alarm_errors(template: dict[str, Any]) -> list[str]:
    """Alarms on our metrics read emitted metrics of this project and alert the admin topic;
    one watches the overdue queue, one the drift."""
    names = metric_names()
    errors = []
    watched: dict[str, str] = {}
    for name, alarm in of_type(template, "AWS::CloudWatch::Alarm").items():
        ours = [m for m in alarm_metrics(alarm) if m.get("Namespace") == {"Ref": "MetricsNamespace"}]
        if not ours:
            continue
        for m in ours:
            watched[m["MetricName"]] = name
            if m["MetricName"] not in names:
                errors.append(f"{name}: {m['MetricName']} is not a metric shared::metrics emits")
            if m.get("Dimensions") != [{"Name": "Project", "Value": {"Ref": "ProjectName"}}]:
                errors.append(f"{name}: must read {m['MetricName']} for Project = ProjectName only")
        props = alarm["Properties"]
        if props.get("AlarmActions") != [{"Ref": "AdminAlertTopic"}]:
            errors.append(f"{name}: AlarmActions must be [!Ref AdminAlertTopic], got {props.get('AlarmActions')}")
        if props.get("TreatMissingData") != "notBreaching":
            errors.append(f"{name}: a quiet period (no sweep, no drift) must not alarm: TreatMissingData notBreaching")
    for metric in ("OldestWaitingAge", "DriftFound"):
        if metric not in watched:
            errors.append(f"no alarm watches {metric}")
    overdue = template["Resources"].get(watched.get("OldestWaitingAge", ""), {}).get("Properties", {})
    expressions = [m for m in overdue.get("Metrics", []) if "Expression" in m]
    ratio = json.dumps(expressions)
    if watched.get("OldestWaitingAge") and not ("ReviewTimeout" in ratio and 0 < float(overdue.get("Threshold", 0)) < 1):
        errors.append("the overdue alarm must compare the oldest age with a fraction (0..1) of the review timeout")
    return errors


def environment_errors(template: dict[str, Any]) -> list[str]:
    """Every function is told where its metrics go, and the contracts say so."""
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    errors = []
    expected = {"METRICS_NAMESPACE": {"Ref": "MetricsNamespace"}, "PROJECT_NAME": {"Ref": "ProjectName"}}
    if set(expected) != metrics_variables():
        errors.append(f"shared::metrics::VARIABLES is {sorted(metrics_variables())}, this test expects {sorted(expected)}")
    for key, value in expected.items():
        if variables.get(key) != value:
            errors.append(f"Globals.Function.Environment.Variables.{key} must be {value}, got {variables.get(key)}")
    contracts = CONTRACTS.read_text(encoding="utf-8")
    for key in expected:
        if f"`{key}`" not in contracts:
            errors.append(f"docs/contracts.md does not mention `{key}`")
    return errors


def test_when_the_template_is_unchanged_then_dashboard_alarms_and_environment_agree_with_the_code(template):
    assert dashboard_errors(template) == []
    assert alarm_errors(template) == []
    assert environment_errors(template) == []


def test_when_the_dashboard_names_a_metric_the_code_does_not_emit_then_it_is_named(template):
    broken = copy.deepcopy(template)
    props = next(iter(of_type(broken, "AWS::CloudWatch::Dashboard").values()))["Properties"]
    props["DashboardBody"]["Fn::Sub"][0] = props["DashboardBody"]["Fn::Sub"][0].replace('"OldestWaitingAge"', '"OldestWaitAge"')
    errors = dashboard_errors(broken)
    assert any("OldestWaitAge is not a metric" in e for e in errors), errors
    assert any("does not show OldestWaitingAge" in e for e in errors), errors


def test_when_the_dashboard_body_is_not_json_then_it_is_named(template):
    broken = copy.deepcopy(template)
    props = next(iter(of_type(broken, "AWS::CloudWatch::Dashboard").values()))["Properties"]
    props["DashboardBody"]["Fn::Sub"][0] = props["DashboardBody"]["Fn::Sub"][0].rstrip().rstrip("}")
    assert any("not JSON" in e for e in dashboard_errors(broken))


def test_when_an_alarm_does_not_alert_the_admin_or_reads_another_metric_then_it_is_named(template):
    broken = copy.deepcopy(template)
    alarms = of_type(broken, "AWS::CloudWatch::Alarm")
    drift = next(n for n, a in alarms.items() if a["Properties"].get("MetricName") == "DriftFound")
    alarms[drift]["Properties"]["AlarmActions"] = []
    errors = alarm_errors(broken)
    assert any(e.startswith(f"{drift}: AlarmActions") for e in errors), errors
    alarms[drift]["Properties"]["MetricName"] = "Drift"
    errors = alarm_errors(broken)
    assert any("Drift is not a metric" in e for e in errors), errors
    assert "no alarm watches DriftFound" in errors


def test_when_the_functions_are_not_told_the_project_then_it_is_named(template):
    broken = copy.deepcopy(template)
    del broken["Globals"]["Function"]["Environment"]["Variables"]["PROJECT_NAME"]
    assert any("PROJECT_NAME" in e for e in environment_errors(broken))
