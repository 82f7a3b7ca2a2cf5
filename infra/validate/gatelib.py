"""Shared helpers of the offline validation gate.

Everything here runs without AWS: `offline_environment()` points every AWS client at a closed
local port with fake credentials, and the SAM transform is given a managed-policy loader that
refuses to be used, so nothing can silently call IAM.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

# Where the packaged artefacts would live; the bucket never exists, it only makes the transform
# accept local paths the way `sam deploy` would after uploading them.
OFFLINE_ARTIFACT_BUCKET = "egress-offline-validation-artifacts"

# The region the offline transform pretends to run in. Any region works; this one matches the
# example project in samconfig.toml.
OFFLINE_REGION = "eu-west-2"
OFFLINE_ACCOUNT = "123456789012"


class GateError(Exception):
    """A check of the gate failed; the message says which and why."""


def offline_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment in which AWS SDKs and the SAM CLI cannot reach AWS."""
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "offline-validation",
            "AWS_SECRET_ACCESS_KEY": "offline-validation",
            "AWS_DEFAULT_REGION": OFFLINE_REGION,
            "AWS_REGION": OFFLINE_REGION,
            # Port 9 (discard) on loopback: any accidental call fails at once, locally.
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "SAM_CLI_TELEMETRY": "0",
            "SAM_CLI_CONTACT_INFO": "0",
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            "BC_SKIP_MAPPING": "TRUE",
        }
    )
    return env


def load_template(path: Path) -> dict[str, Any]:
    """Parses a SAM/CloudFormation YAML template, short-form tags included."""
    from samcli.yamlhelper import yaml_parse  # imported lazily: only the SAM venv has it

    return yaml_parse(path.read_text(encoding="utf-8"))


def resources_of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template.get("Resources", {}).items()
        if isinstance(res, dict) and res.get("Type") == type_name
    }


def _local_file(template_dir: Path, value: Any, what: str) -> Path | None:
    """The local file a packageable property points at, or None if it is already remote."""
    if not isinstance(value, str) or value.startswith("s3://"):
        return None
    path = (template_dir / value).resolve()
    if not path.exists():
        raise GateError(f"{what} points at {value!r}, which does not exist ({path})")
    return path


SCHEMA_PLACEHOLDERS = ("ReviewerGroups", "DownloadGroups", "ApiGroups", "AdminGroups")


def parameter_value(template: dict[str, Any], values: dict[str, str], name: str) -> str:
    """The value a stack deployed with `values` has for parameter `name`."""
    if name in values:
        return values[name]
    spec = template.get("Parameters", {}).get(name)
    if spec is None or "Default" not in spec:
        raise GateError(f"parameter {name} has no value and no default")
    return str(spec["Default"])


# The reviewer-group rule (infra/fixtures/group-lists.json, shared::domain::review::group_name):
# a letter, then up to 63 letters, digits, '_' or '-'; at most 10 download groups.
GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_DOWNLOAD_GROUPS = 10
# The admin group when the template names none (AdminGroupName's default; the fixture's too).
DEFAULT_ADMIN_GROUP = "EgressAdmin"


def group_lists(ig: str, rit: str, download: str, admin: str = DEFAULT_ADMIN_GROUP) -> dict[str, list[str]]:
    """The schema's three group lists from the group settings, by the rule the functions apply.

    Errors name the setting at fault (the function's variable, then the template parameter).
    """
    def name(var: str, param: str, raw: str) -> str:
        if not GROUP_NAME.fullmatch(raw):
            raise GateError(
                f"{var} ({param}) has an invalid group name {raw!r}: a letter, then up to 63 "
                "letters, digits, '_' or '-'"
            )
        return raw

    reviewer = [
        name("IG_REVIEWER_GROUP", "IgReviewerGroupName", ig),
        name("RIT_REVIEWER_GROUP", "RitReviewerGroupName", rit),
    ]
    if reviewer[0] == reviewer[1]:
        raise GateError(
            f"RIT_REVIEWER_GROUP (RitReviewerGroupName) must differ from IG_REVIEWER_GROUP "
            f"(both are {ig!r}): one group cannot hold both approval stages"
        )
    if download == "":
        downloads = list(reviewer)
    else:
        entries = [name("DOWNLOAD_GROUPS", "DownloadGroups", g) for g in download.split(",")]
        if len(entries) > MAX_DOWNLOAD_GROUPS:
            raise GateError(f"DOWNLOAD_GROUPS (DownloadGroups) lists more than {MAX_DOWNLOAD_GROUPS} groups")
        downloads = list(dict.fromkeys(entries))
    admin_group = name("ADMIN_GROUP", "AdminGroupName", admin)
    if admin_group in reviewer:
        raise GateError(
            f"ADMIN_GROUP (AdminGroupName) must differ from the reviewer groups (it is {admin!r}): "
            "revoking a release is not a review stage's power"
        )
    return {
        "ReviewerGroups": reviewer,
        "DownloadGroups": downloads,
        "ApiGroups": list(dict.fromkeys(reviewer + downloads)),
        "AdminGroups": [admin_group],
    }


def render_schema(text: str, template: dict[str, Any], values: dict[str, str]) -> str:
    """Fills the schema's group placeholders from the stack's parameters.

    The schema names groups in `@aws_auth` directives, and CloudFormation does not substitute
    into a schema file, so the group lists are rendered before packaging (docs/contracts.md,
    "GraphQL schema placeholders"):
      ${ReviewerGroups}: the IG and RIT groups;
      ${DownloadGroups}: DownloadGroups, or the two reviewer groups when it is empty;
      ${ApiGroups}: the reviewer groups then the download groups, without duplicates;
      ${AdminGroups}: AdminGroupName, the group that may revoke a release.
    """
    lists = group_lists(
        parameter_value(template, values, "IgReviewerGroupName"),
        parameter_value(template, values, "RitReviewerGroupName"),
        parameter_value(template, values, "DownloadGroups"),
        parameter_value(template, values, "AdminGroupName"),
    )
    unknown = sorted(set(re.findall(r"\$\{([^}]*)\}", text)) - set(SCHEMA_PLACEHOLDERS))
    if unknown:
        raise GateError(
            f"the schema uses unknown placeholders {', '.join(unknown)} "
            f"(known: {', '.join(SCHEMA_PLACEHOLDERS)})"
        )
    for name, groups in lists.items():
        text = text.replace("${" + name + "}", ", ".join(json.dumps(g) for g in groups))
    return text


def package_offline(
    template: dict[str, Any], template_dir: Path, parameter_values: dict[str, str]
) -> dict[str, Any]:
    """Does what `sam deploy` does to local paths before the transform, without uploading.

    Function code is replaced by an S3 location (the code itself is not needed to check the
    template); the state machine definition, the GraphQL schema (rendered for
    `parameter_values`, as `package_for_deploy` renders it) and the resolver templates are
    inlined, so the checks that follow also see their content.
    """
    out = copy.deepcopy(template)
    for name, res in resources_of_type(out, "AWS::Serverless::Function").items():
        props = res.setdefault("Properties", {})
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            raise GateError(f"{name}: CodeUri must be a local path to target/lambda/<name>/")
        match = re.fullmatch(r"\.\./target/lambda/([a-z0-9-]+)/?", code_uri)
        if not match:
            raise GateError(
                f"{name}: CodeUri {code_uri!r} must be ../target/lambda/<function>/ "
                "(the output of `make build`)"
            )
        props["CodeUri"] = f"s3://{OFFLINE_ARTIFACT_BUCKET}/{match.group(1)}.zip"

    for name, res in resources_of_type(out, "AWS::Serverless::StateMachine").items():
        props = res.setdefault("Properties", {})
        path = _local_file(template_dir, props.get("DefinitionUri"), f"{name}.DefinitionUri")
        if path is not None:
            try:
                props["Definition"] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise GateError(f"{name}: {path} is not valid JSON: {e}") from e
            del props["DefinitionUri"]

    for name, res in resources_of_type(out, "AWS::AppSync::GraphQLSchema").items():
        props = res.setdefault("Properties", {})
        path = _local_file(template_dir, props.get("DefinitionS3Location"), f"{name}.DefinitionS3Location")
        if path is not None:
            text = path.read_text(encoding="utf-8")
            props["Definition"] = render_schema(text, template, parameter_values)
            del props["DefinitionS3Location"]

    for name, res in resources_of_type(out, "AWS::AppSync::Resolver").items():
        props = res.setdefault("Properties", {})
        for prop, inline in (
            ("RequestMappingTemplateS3Location", "RequestMappingTemplate"),
            ("ResponseMappingTemplateS3Location", "ResponseMappingTemplate"),
        ):
            path = _local_file(template_dir, props.get(prop), f"{name}.{prop}")
            if path is not None:
                props[inline] = path.read_text(encoding="utf-8")
                del props[prop]
    return out


# Properties `sam deploy` uploads when they name a local path.
LOCAL_PATH_PROPERTIES = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
    "AWS::AppSync::GraphQLSchema": ("DefinitionS3Location",),
    "AWS::AppSync::Resolver": ("RequestMappingTemplateS3Location", "ResponseMappingTemplateS3Location"),
}


def package_for_deploy(
    template: dict[str, Any], template_dir: Path, parameter_values: dict[str, str], out_dir: Path
) -> Path:
    """Writes the template `sam deploy` gets: the schema rendered, every local path absolute.

    Returns the path of the deploy template (JSON) in `out_dir`.
    """
    out = copy.deepcopy(template)
    out_dir.mkdir(parents=True, exist_ok=True)
    for type_name, props_names in LOCAL_PATH_PROPERTIES.items():
        for name, res in resources_of_type(out, type_name).items():
            props = res.setdefault("Properties", {})
            for prop in props_names:
                value = props.get(prop)
                if type_name == "AWS::Serverless::Function" and isinstance(value, str):
                    # Built by `make build`; check_build.py checks it before deploying.
                    props[prop] = str((template_dir / value).resolve()) + "/"
                    continue
                path = _local_file(template_dir, value, f"{name}.{prop}")
                if path is None:
                    continue
                if type_name == "AWS::AppSync::GraphQLSchema":
                    rendered = out_dir / "schema.graphql"
                    text = render_schema(path.read_text(encoding="utf-8"), template, parameter_values)
                    rendered.write_text(text, encoding="utf-8")
                    path = rendered
                props[prop] = str(path)
    target = out_dir / "template.json"
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return target


class _RefusingPolicyLoader:
    """The transform asks for this only to resolve AWS managed policies by name (an IAM call)."""

    def load(self) -> dict[str, str]:
        raise GateError(
            "the template refers to an AWS managed policy by name, which needs IAM to resolve; "
            "use explicit least-privilege statements instead"
        )


def sam_transform(packaged: dict[str, Any], parameter_values: dict[str, Any]) -> dict[str, Any]:
    """The SAM transform, offline, as CloudFormation would run it at deploy time."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    # The translator reads the region from a fresh boto3 session, i.e. from the environment:
    # make this process offline whoever called us.
    offline = offline_environment()
    os.environ.clear()
    os.environ.update(offline)
    values = dict(parameter_values)
    values.setdefault("AWS::Region", OFFLINE_REGION)
    values.setdefault("AWS::AccountId", OFFLINE_ACCOUNT)
    values.setdefault("AWS::Partition", "aws")
    # The translator reads the region from a boto3 session; give it one that has no way out.
    boto3.setup_default_session(region_name=OFFLINE_REGION)
    try:
        transformed = transform(copy.deepcopy(packaged), values, _RefusingPolicyLoader())
    except InvalidDocumentException as e:
        causes = "; ".join(str(c) for c in e.causes)
        raise GateError(f"SAM transform failed: {causes}") from e
    return _collapse_static_joins(transformed)


def _collapse_static_joins(node: Any) -> Any:
    """Replaces an `Fn::Join` of plain strings by the joined string.

    SAM renders an inline state machine definition as a join of one string per line; the
    result is the same string, and cfn-lint's recursive join validation cannot cope with
    thousands of elements.
    """
    if isinstance(node, dict):
        if set(node) == {"Fn::Join"}:
            sep, parts = node["Fn::Join"]
            if isinstance(sep, str) and isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                return sep.join(parts)
        return {k: _collapse_static_joins(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_collapse_static_joins(v) for v in node]
    return node


def guard_view(node: Any) -> Any:
    """The template as cfn-guard sees it: a conditional list element is replaced by both branches.

    `Fn::If` inside a list (e.g. a policy statement that exists only when a parameter is set)
    hides its content from rules that iterate the list; listing both branches (and dropping
    `AWS::NoValue`) lets every rule check every statement the stack can ever contain.
    """
    if isinstance(node, dict):
        return {k: guard_view(v) for k, v in node.items()}
    if isinstance(node, list):
        out = []
        for item in node:
            if isinstance(item, dict) and set(item) == {"Fn::If"} and len(item["Fn::If"]) == 3:
                branches = item["Fn::If"][1:]
            else:
                branches = [item]
            for branch in branches:
                if branch == {"Ref": "AWS::NoValue"}:
                    continue
                out.append(guard_view(branch))
        return out
    return node


def samconfig_parameters(samconfig: Path, env: str | None = None) -> tuple[str, dict[str, str]]:
    """The parameter overrides of one environment of samconfig.toml (the first if not given)."""
    data = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    envs = [k for k, v in data.items() if isinstance(v, dict) and k != "version"]
    if not envs:
        raise GateError(f"{samconfig} defines no environment")
    name = env or envs[0]
    if name not in data:
        raise GateError(f"{samconfig} has no environment {name!r} (have: {', '.join(envs)})")
    deploy = data[name].get("deploy", {}).get("parameters", {})
    raw = deploy.get("parameter_overrides", [])
    if isinstance(raw, str):
        raw = re.findall(r'(\S+?=(?:"[^"]*"|\S*))', raw)
    params: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise GateError(f"{samconfig} [{name}]: parameter override {item!r} is not Key=Value")
        params[key] = value.strip('"')
    return name, params


def check_parameter_values(template: dict[str, Any], values: dict[str, str], origin: str) -> None:
    """Applies the template's own parameter constraints, as CloudFormation would at deploy."""
    declared = template.get("Parameters", {})
    errors = []
    for key in values:
        if key not in declared:
            errors.append(f"{key} is not a parameter of the template")
    for key, spec in declared.items():
        if key in values:
            value = values[key]
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            errors.append(f"{key} has no default and no value")
            continue
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            errors.append(f"{key}={value!r} does not match {pattern}")
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(a) for a in allowed]:
            errors.append(f"{key}={value!r} is not one of {allowed}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                errors.append(f"{key}={value!r} is not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                errors.append(f"{key}={value} is below {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                errors.append(f"{key}={value} is above {spec['MaxValue']}")
    if errors:
        raise GateError(f"{origin}: " + "; ".join(errors))
