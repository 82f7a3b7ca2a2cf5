#!/usr/bin/env python3
"""Checks what ties the template to the rest of the repository, where drift would be silent.

- The ASL's `${...}` placeholders equal the state machine's DefinitionSubstitutions keys.
- Every crate in functions/ is deployed by exactly one function of the template (CodeUri), and
  every deployed function has a crate.
- Every function sets exactly the environment variables docs/contracts.md lists for it, and
  its config (`VARIABLES` in functions/<crate>/src/config.rs) reads exactly those.
- Every service integration the ASL uses is granted to the workflow role on that exact resource,
  and the role grants nothing the ASL does not use (least privilege both ways).
- The SWB table is only ever updated on `status` (and the request lock `egress_request_lock`), as
  the role's dynamodb:Attributes condition requires.
- Every resolver of the API has its VTL templates in infra/resolvers/, every template there is
  used, and the schema file exists; groups its @aws_auth directives name are configured ones.
- Every environment of samconfig.toml satisfies the template's parameter constraints.
- The security checks of check_security.py (API client, logs keys, list index projection,
  api-handler and audit write attributes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_security  # noqa: E402
import gatelib  # noqa: E402

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

# ASL integration -> IAM actions the workflow role needs for it.
INTEGRATION_ACTIONS = {
    "arn:aws:states:::lambda:invoke": {"lambda:InvokeFunction"},
    "arn:aws:states:::lambda:invoke.waitForTaskToken": {"lambda:InvokeFunction"},
    "arn:aws:states:::dynamodb:putItem": {"dynamodb:PutItem"},
    "arn:aws:states:::dynamodb:updateItem": {"dynamodb:UpdateItem"},
    "arn:aws:states:::dynamodb:getItem": {"dynamodb:GetItem"},
    "arn:aws:states:::dynamodb:deleteItem": {"dynamodb:DeleteItem"},
    "arn:aws:states:::sns:publish": {"sns:Publish"},
}
# The parameter of each integration that names its target.
TARGET_PARAMETER = {"lambda": "FunctionName", "dynamodb": "TableName", "sns": "TopicArn"}
# Role actions that are not service integrations: encryption with our keys and log delivery.
NON_INTEGRATION_PREFIXES = ("kms:", "logs:")


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.passed: list[str] = []

    def check(self, name: str, errors: list[str]) -> None:
        if errors:
            self.errors.extend(f"{name}: {e}" for e in errors)
        else:
            self.passed.append(name)


def contract_env(contracts: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Function -> (required variables, optional variables) from the contracts table."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for line in contracts.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            continue
        required, optional = set(), set()
        for match in re.finditer(r"`([A-Z][A-Z0-9_]+)`(\?|\s*\(opt)?", cells[3]):
            (optional if match.group(2) else required).add(match.group(1))
        out[cells[0].strip("`")] = (required, optional)
    return out


DECLARED = re.compile(r"const VARIABLES: &\[&str\] = &\[(.*?)\];", re.S)


def declared_env(config_rs: Path) -> set[str] | None:
    """The variables a function's config declares it reads, or None when it declares none."""
    match = DECLARED.search(config_rs.read_text(encoding="utf-8")) if config_rs.is_file() else None
    return set(re.findall(r'"([A-Z][A-Z0-9_]*)"', match.group(1))) if match else None


def ref_target(value: Any) -> str | None:
    """The logical id a Ref / GetAtt / Sub-of-one-resource points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else att.split(".")[0]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            names = re.findall(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z]+)?\}", value["Fn::Sub"])
            names = [n for n in names if not n.startswith("AWS")]
            return names[0] if len(names) == 1 else None
    return None


def asl_tasks(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, state in states.items():
        if state.get("Type") == "Task":
            found.append((name, state))
        for branch in state.get("Branches", []):
            found.extend(asl_tasks(branch.get("States", {})))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found.extend(asl_tasks(state[key].get("States", {})))
    return found


def check_state_machine(template: dict[str, Any], template_dir: Path, report: Report) -> None:
    machines = gatelib.resources_of_type(template, "AWS::Serverless::StateMachine")
    if len(machines) != 1:
        report.check("state machine", [f"expected one AWS::Serverless::StateMachine, found {len(machines)}"])
        return
    name, machine = next(iter(machines.items()))
    props = machine["Properties"]
    uri = props.get("DefinitionUri")
    if not isinstance(uri, str):
        report.check("state machine", [f"{name}.DefinitionUri must be the local ASL file"])
        return
    asl_path = (template_dir / uri).resolve()
    if not asl_path.is_file():
        report.check("ASL placeholders", [f"{asl_path} does not exist"])
        return
    text = asl_path.read_text(encoding="utf-8")
    try:
        asl = json.loads(text)
    except json.JSONDecodeError as e:
        report.check("ASL placeholders", [f"{asl_path} is not valid JSON: {e}"])
        return
    placeholders = set(PLACEHOLDER.findall(text))
    substitutions = props.get("DefinitionSubstitutions", {})
    errors = []
    if missing := sorted(placeholders - set(substitutions)):
        errors.append(f"ASL placeholders without a substitution: {', '.join(missing)}")
    if unused := sorted(set(substitutions) - placeholders):
        errors.append(f"substitutions the ASL does not use: {', '.join(unused)}")
    report.check("ASL placeholders = DefinitionSubstitutions", errors)

    role_id = ref_target(props.get("Role"))
    role = template["Resources"].get(role_id or "", {})
    if role.get("Type") != "AWS::IAM::Role":
        report.check("workflow role", [f"{name}.Role must be !GetAtt <an AWS::IAM::Role of this template>.Arn"])
        return

    # What the ASL needs: (action, logical id of the target).
    needed: set[tuple[str, str]] = set()
    errors = []
    for state_name, state in asl_tasks(asl.get("States", {})):
        resource = state.get("Resource", "")
        actions = INTEGRATION_ACTIONS.get(resource)
        if actions is None:
            errors.append(f"state {state_name} uses {resource!r}, which the gate does not know how to authorise")
            continue
        service = resource.split(":::")[1].split(":")[0]
        params = state.get("Parameters") or state.get("Arguments") or {}
        target = params.get(TARGET_PARAMETER[service])
        match = PLACEHOLDER.fullmatch(target) if isinstance(target, str) else None
        if not match:
            errors.append(f"state {state_name}: {TARGET_PARAMETER[service]} must be one ${{Placeholder}}, got {target!r}")
            continue
        logical = ref_target(substitutions.get(match.group(1)))
        if logical is None:
            errors.append(f"state {state_name}: substitution {match.group(1)} is not a reference to one resource or parameter")
            continue
        for action in actions:
            needed.add((action, logical))
    # What the role grants: (action, logical id of the resource).
    granted: set[tuple[str, str]] = set()
    for policy in role["Properties"].get("Policies", []):
        for stmt in policy["PolicyDocument"]["Statement"]:
            if stmt.get("Effect") != "Allow":
                continue
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            for action in actions:
                if action.startswith(NON_INTEGRATION_PREFIXES):
                    continue
                for res in resources:
                    target = ref_target(res) if not isinstance(res, str) else None
                    if isinstance(res, dict) and "Fn::Sub" in res and "SwbEgressStoreTableName" in res["Fn::Sub"]:
                        target = "SwbEgressStoreTableName"
                    if target is None:
                        errors.append(f"role statement {stmt.get('Sid')}: resource {res!r} is not one resource of this stack")
                        continue
                    granted.add((action, target))
    for action, target in sorted(needed - granted):
        errors.append(f"the ASL needs {action} on {target}, which {role_id} does not grant")
    for action, target in sorted(granted - needed):
        errors.append(f"{role_id} grants {action} on {target}, which the ASL never uses")
    report.check("workflow role = ASL integrations", errors)

    # SWB's table: only `status` of an item that exists, nothing read back.
    errors = []
    for state_name, state in asl_tasks(asl.get("States", {})):
        params = state.get("Parameters") or state.get("Arguments") or {}
        if params.get("TableName") != "${SwbEgressStoreTable}":
            continue
        if state.get("Resource") != "arn:aws:states:::dynamodb:updateItem":
            errors.append(f"state {state_name}: only dynamodb:updateItem is allowed on the SWB table")
            continue
        names = set(params.get("ExpressionAttributeNames", {}).values())
        # `egress_request_lock`: the id of the request that holds the store (docs/contracts.md).
        allowed = {"status", "egress_request_lock"}
        if names - allowed:
            errors.append(f"state {state_name}: updates {sorted(names - allowed)} on the SWB table; only `status` and `egress_request_lock` are allowed")
        if "status" not in names:
            errors.append(f"state {state_name}: must update `status` through ExpressionAttributeNames (#status)")
        if params.get("ReturnValues", "NONE") != "NONE":
            errors.append(f"state {state_name}: ReturnValues must be NONE on the SWB table")
        if "attribute_exists(id)" not in params.get("ConditionExpression", ""):
            errors.append(f"state {state_name}: must be conditional on attribute_exists(id)")
    report.check("SWB table updates = status only", errors)


def check_functions(template: dict[str, Any], root: Path, contracts: Path, report: Report) -> None:
    functions = gatelib.resources_of_type(template, "AWS::Serverless::Function")
    deployed: dict[str, str] = {}
    errors = []
    for logical, res in functions.items():
        uri = res["Properties"].get("CodeUri", "")
        match = re.fullmatch(r"\.\./target/lambda/([a-z0-9-]+)/?", uri if isinstance(uri, str) else "")
        if not match:
            errors.append(f"{logical}: CodeUri {uri!r} is not ../target/lambda/<crate>/")
            continue
        if match.group(1) in deployed:
            errors.append(f"{match.group(1)} is deployed twice ({deployed[match.group(1)]}, {logical})")
        deployed[match.group(1)] = logical
    crates = sorted(p.parent.name for p in (root / "functions").glob("*/Cargo.toml"))
    if not crates:
        errors.append(f"no crates found in {root / 'functions'}")
    for crate in crates:
        if crate not in deployed:
            errors.append(f"functions/{crate} is not deployed by the template")
    for crate, logical in deployed.items():
        if crate not in crates:
            errors.append(f"{logical} deploys {crate}, which has no crate in functions/")
    report.check("functions/ = deployed functions", errors)

    env_contract = contract_env(contracts)
    errors = []
    for crate, logical in deployed.items():
        if crate not in env_contract:
            errors.append(f"{crate} has no row in {contracts.name}")
            continue
        required, optional = env_contract[crate]
        variables = set(functions[logical]["Properties"].get("Environment", {}).get("Variables", {}))
        if missing := sorted(required - variables):
            errors.append(f"{logical} lacks {', '.join(missing)}")
        if extra := sorted(variables - required - optional):
            errors.append(f"{logical} sets {', '.join(extra)}, which {contracts.name} does not list")
        declared = declared_env(root / "functions" / crate / "src" / "config.rs")
        if declared is None:
            errors.append(f"functions/{crate}/src/config.rs declares no VARIABLES")
        else:
            listed = required | optional
            if unlisted := sorted(declared - listed):
                errors.append(f"functions/{crate} reads {', '.join(unlisted)}, which its {contracts.name} row lacks")
            if unread := sorted(listed - declared):
                errors.append(f"functions/{crate} does not read {', '.join(unread)}, which its {contracts.name} row lists")
    report.check("function environment = contracts = config", errors)


def check_api(template: dict[str, Any], template_dir: Path, report: Report) -> None:
    errors = []
    for name, res in gatelib.resources_of_type(template, "AWS::AppSync::GraphQLSchema").items():
        loc = res["Properties"].get("DefinitionS3Location")
        if not isinstance(loc, str) or not (template_dir / loc).is_file():
            errors.append(f"{name}: schema file {loc!r} does not exist")
    used: set[Path] = set()
    for name, res in gatelib.resources_of_type(template, "AWS::AppSync::Resolver").items():
        for prop in ("RequestMappingTemplateS3Location", "ResponseMappingTemplateS3Location"):
            loc = res["Properties"].get(prop)
            if not isinstance(loc, str):
                errors.append(f"{name}.{prop} must be a file in infra/resolvers/")
                continue
            path = (template_dir / loc).resolve()
            used.add(path)
            if not path.is_file():
                errors.append(f"{name}.{prop}: {loc} does not exist")
    resolver_dir = template_dir / "resolvers"
    for path in sorted(resolver_dir.glob("**/*.vtl")) if resolver_dir.is_dir() else []:
        if path.resolve() not in used:
            errors.append(f"{path.relative_to(template_dir)} is not used by any resolver")
    report.check("API schema and resolver templates", errors)


def check_schema_groups(template: dict[str, Any], template_dir: Path, samconfig: Path, report: Report) -> None:
    """The schema renders for every environment, and literal @aws_auth groups are configured ones.

    Only the group placeholders are rendered (gatelib.render_schema); a group name written
    literally in the schema must be a reviewer group every environment configures.
    """
    errors = []
    for res in gatelib.resources_of_type(template, "AWS::AppSync::GraphQLSchema").values():
        loc = res["Properties"].get("DefinitionS3Location")
        path = template_dir / loc if isinstance(loc, str) else None
        if path is None or not path.is_file():
            continue  # reported by check_api
        text = path.read_text(encoding="utf-8")
        import tomllib

        for env in [k for k, v in tomllib.loads(samconfig.read_text(encoding="utf-8")).items() if isinstance(v, dict)]:
            try:
                gatelib.render_schema(text, template, gatelib.samconfig_parameters(samconfig, env)[1])
            except gatelib.GateError as e:
                errors.append(f"[{env}] {e}")
        named = set()
        for groups in re.findall(r"cognito_groups\s*:\s*\[([^\]]*)\]", text):
            named.update(re.findall(r'"([^"]+)"', groups))
        if not named:
            continue
        envs = [k for k, v in tomllib.loads(samconfig.read_text(encoding="utf-8")).items() if isinstance(v, dict)]
        declared = template.get("Parameters", {})
        for env in envs:
            _, values = gatelib.samconfig_parameters(samconfig, env)
            configured = {
                values.get(p, str(declared.get(p, {}).get("Default", "")))
                for p in ("IgReviewerGroupName", "RitReviewerGroupName")
            }
            if unknown := sorted(named - configured):
                errors.append(
                    f"[{env}] the schema's @aws_auth names {', '.join(unknown)}, "
                    f"but the environment's reviewer groups are {', '.join(sorted(configured))}"
                )
    report.check("schema placeholders render, @aws_auth groups = configured groups", errors)


def check_samconfig(template: dict[str, Any], samconfig: Path, report: Report) -> None:
    import tomllib

    errors = []
    data = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    envs = [k for k, v in data.items() if isinstance(v, dict)]
    if not envs:
        errors.append("no environment defined")
    for env in envs:
        try:
            _, values = gatelib.samconfig_parameters(samconfig, env)
            gatelib.check_parameter_values(template, values, f"[{env}]")
        except gatelib.GateError as e:
            errors.append(str(e))
        deploy = data[env].get("deploy", {}).get("parameters", {})
        caps = deploy.get("capabilities", "")
        if "CAPABILITY_IAM" not in (caps if isinstance(caps, str) else " ".join(caps)):
            errors.append(f"[{env}] capabilities must include CAPABILITY_IAM")
    report.check("samconfig.toml environments", errors)


CHECKS_POLICY_GROUPS = {
    "size": {"max_file_bytes", "max_request_bytes", "severity"},
    "types": {"allow_extensions", "review_extensions", "block_extensions", "executables", "scripts",
              "encrypted_archives", "hidden_files", "git_folders", "extension_mismatch"},
    "tables": {"small_count_threshold", "flag_zeros", "small_counts", "record_level_min_rows", "record_level",
               "max_spreadsheet_bytes"},
    "identifiers": {"nhs_numbers", "postcodes", "emails", "phone_numbers", "ni_numbers", "dates_of_birth", "ip_addresses"},
    "archives": {"max_depth", "max_entries", "max_expansion_ratio", "max_expanded_bytes"},
    "images": {"gps", "identifying_metadata"},
    "acro": {"checksum_mismatch", "file_missing", "unverified", "output_not_passed"},
    "malware": {"threats_found", "scan_not_finished"},
}


def checks_policy_errors(raw: str, where: str) -> list[str]:
    """The deploy-time check of the output checks' policy (shared::checks::ProjectPolicies):
    JSON, known members only, a known mode and severities, thresholds in range. check-outputs
    validates it again at cold start with the same rules."""
    if not raw.strip():
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        return [f"{where}: ChecksPolicy is not JSON: {e}"]
    if not isinstance(value, dict):
        return [f"{where}: ChecksPolicy must be a JSON object"]
    policies = [("", value)]
    if "default" in value or "projects" in value:
        extra = set(value) - {"default", "projects"}
        if extra:
            return [f"{where}: ChecksPolicy has unknown members {sorted(extra)}"]
        policies = [("default", value.get("default", {}))] + [(f"projects.{k}", v) for k, v in value.get("projects", {}).items()]
    errors = []
    for name, p in policies:
        at = f"{where}: ChecksPolicy{'.' + name if name else ''}"
        if not isinstance(p, dict):
            errors.append(f"{at} must be an object")
            continue
        unknown = set(p) - {"version", "mode"} - set(CHECKS_POLICY_GROUPS)
        if unknown:
            errors.append(f"{at} has unknown members {sorted(unknown)}")
        if p.get("mode", "advise") not in ("advise", "enforce"):
            errors.append(f"{at}.mode must be advise or enforce")
        if not 1 <= len(str(p.get("version", "default-1")).strip()) <= 64:
            errors.append(f"{at}.version must be 1 to 64 characters")
        for group, members in CHECKS_POLICY_GROUPS.items():
            g = p.get(group, {})
            if not isinstance(g, dict):
                errors.append(f"{at}.{group} must be an object")
                continue
            if set(g) - members:
                errors.append(f"{at}.{group} has unknown members {sorted(set(g) - members)}")
            for k, v in g.items():
                if isinstance(v, str) and v not in ("pass", "review", "block"):
                    errors.append(f"{at}.{group}.{k} must be pass, review or block")
        t = p.get("tables", {}).get("small_count_threshold", 10) if isinstance(p.get("tables", {}), dict) else 10
        if not isinstance(t, int) or not 1 <= t <= 1000:
            errors.append(f"{at}.tables.small_count_threshold must be 1 to 1000")
    return errors


def check_checks_policy(template: dict[str, Any], samconfig: Path, report: Report) -> None:
    errors = checks_policy_errors(template.get("Parameters", {}).get("ChecksPolicy", {}).get("Default", ""), "template default")
    import tomllib

    for env, v in tomllib.loads(samconfig.read_text(encoding="utf-8")).items():
        if isinstance(v, dict):
            try:
                _, values = gatelib.samconfig_parameters(samconfig, env)
            except gatelib.GateError:
                continue
            errors += checks_policy_errors(values.get("ChecksPolicy", ""), f"[{env}]")
    report.check("output checks policy (ChecksPolicy) is valid", errors)


MALWARE_PLAN_PRINCIPAL = "malware-protection-plan.guardduty.amazonaws.com"


def check_malware_scan(template: dict[str, Any], report: Report) -> None:
    """GuardDuty Malware Protection for S3 on the staging bucket (issue 12): one plan, tagging
    on, under a condition of the EnableMalwareScan parameter (so a deployment where GuardDuty
    cannot be used turns it off), its role trusted by the plan's service principal and under
    the same condition, check-outputs allowed to read the tags and told to wait only when on."""
    errors: list[str] = []
    resources = template.get("Resources", {})
    plans = {k: v for k, v in resources.items() if v.get("Type") == "AWS::GuardDuty::MalwareProtectionPlan"}
    if len(plans) != 1:
        report.check("malware scan (GuardDuty Malware Protection for S3)", [f"expected one AWS::GuardDuty::MalwareProtectionPlan, found {len(plans)}"])
        return
    name, plan = next(iter(plans.items()))
    props = plan.get("Properties", {})
    condition = plan.get("Condition")
    expected_condition = {"Fn::Equals": [{"Ref": "EnableMalwareScan"}, "true"]}
    if "EnableMalwareScan" not in template.get("Parameters", {}):
        errors.append("parameter EnableMalwareScan is missing")
    elif template["Parameters"]["EnableMalwareScan"].get("AllowedValues") != ["true", "false"]:
        errors.append("EnableMalwareScan must allow exactly true and false")
    if not condition or template.get("Conditions", {}).get(condition) != expected_condition:
        errors.append(f"{name} must have a Condition that is EnableMalwareScan = true")
    if props.get("ProtectedResource", {}).get("S3Bucket", {}).get("BucketName") != {"Ref": "StagingBucket"}:
        errors.append(f"{name} must protect the StagingBucket")
    if props.get("Actions", {}).get("Tagging", {}).get("Status") != "ENABLED":
        errors.append(f"{name} must tag scanned objects (Actions.Tagging.Status ENABLED)")
    role = props.get("Role", {})
    role_name = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
    role_res = resources.get(role_name or "", {})
    if role_res.get("Type") != "AWS::IAM::Role":
        errors.append(f"{name}.Role must be !GetAtt <an AWS::IAM::Role of this template>.Arn")
    else:
        if role_res.get("Condition") != condition:
            errors.append(f"{role_name} must have the plan's Condition {condition}")
        trust = json.dumps(role_res.get("Properties", {}).get("AssumeRolePolicyDocument", {}))
        if MALWARE_PLAN_PRINCIPAL not in trust:
            errors.append(f"{role_name} must be assumable by {MALWARE_PLAN_PRINCIPAL}")
        actions = set()
        for policy in role_res.get("Properties", {}).get("Policies", []):
            for stmt in policy.get("PolicyDocument", {}).get("Statement", []):
                a = stmt.get("Action", [])
                actions.update([a] if isinstance(a, str) else a)
        for needed in ("s3:GetObject", "s3:PutObjectTagging", "s3:PutBucketNotification", "events:PutRule", "kms:Decrypt"):
            if needed not in actions:
                errors.append(f"{role_name} lacks {needed} (AWS's documented plan role)")
    fn = resources.get("CheckOutputsFunction", {}).get("Properties", {})
    wait = fn.get("Environment", {}).get("Variables", {}).get("MALWARE_SCAN_WAIT_SECONDS")
    if not (isinstance(wait, dict) and wait.get("Fn::If", [None])[0] == condition and wait["Fn::If"][2] == "0"):
        errors.append(f"CheckOutputsFunction MALWARE_SCAN_WAIT_SECONDS must be !If [{condition}, <seconds>, \"0\"]")
    check_role = json.dumps(resources.get("CheckOutputsRole", {}).get("Properties", {}).get("Policies", []))
    if "s3:GetObjectTagging" not in check_role:
        errors.append("CheckOutputsRole must allow s3:GetObjectTagging on the staged objects")
    report.check("malware scan (GuardDuty Malware Protection for S3)", errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="repository root")
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--samconfig", type=Path, required=True)
    parser.add_argument("--contracts", type=Path, required=True)
    args = parser.parse_args()

    template = gatelib.load_template(args.template)
    template_dir = args.template.resolve().parent
    report = Report()
    check_state_machine(template, template_dir, report)
    check_functions(template, args.root, args.contracts, report)
    check_api(template, template_dir, report)
    check_schema_groups(template, template_dir, args.samconfig, report)
    check_samconfig(template, args.samconfig, report)
    check_checks_policy(template, args.samconfig, report)
    check_malware_scan(template, report)
    check_security.check_security(template, args.root, gatelib.samconfig_parameters(args.samconfig)[1], report)
    for name in report.passed:
        print(f"wiring: ok   {name}")
    for error in report.errors:
        print(f"wiring: FAIL {error}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
