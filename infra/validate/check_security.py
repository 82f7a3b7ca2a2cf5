"""Security checks of the gate that cfn-guard cannot express.

They compare the template with the code, or need the template's names resolved:
- The reviewer API accepts tokens of this stack's web client only (`AppIdClientRegex` is an
  exact, anchored pattern of the template's app client ids, never a wildcard).
- A KMS key that CloudWatch Logs may use names exactly this stack's log groups in its
  `kms:EncryptionContext:aws:logs:arn` condition: every log group using the key matches, and a
  log group of another stack, project or service does not.
- The requests table's list index projects every attribute of `shared::model::EgressRequest`
  except the server-only ones (the workflow's task token, and a claimed decision's until it is
  delivered), so listRequests cannot return them.
- api-handler's `UpdateItem` on the requests table is limited (IAM `dynamodb:Attributes`) to
  exactly the attributes its adapter's expressions name, and `dynamodb:ReturnValues` to the
  values the adapter asks for.
- Every function's audit `PutItem` is limited to the attributes of `shared::ports::AuditEvent`
  and the table's keys, with nothing read back.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any

import gatelib

# Attributes of a request that no reviewer-facing read may return (DESIGN.md: the task token
# lets its holder resume the workflow).
SERVER_ONLY_REQUEST_ATTRIBUTES = {"sfn_task_token", "pending_task_token"}

REQUEST_MODEL = Path("shared/src/model/request.rs")
AUDIT_MODEL = Path("shared/src/ports/audit.rs")
# The hash-chain link each audit event carries (shared/src/adapters/dynamodb_audit.rs).
AUDIT_CHAIN_ATTRIBUTES = {"seq", "prev_hash", "hash"}
# Actions that rewrite or remove existing items: no role may have any of them on the audit
# table (the trail is append-only; the hash chain shows what an admin does outside IAM).
AUDIT_REWRITE_ACTIONS = {
    "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable",
    "dynamodb:UpdateTable", "dynamodb:RestoreTableFromBackup", "dynamodb:ImportTable",
}
REVIEW_ADAPTER = Path("shared/src/adapters/dynamodb_review.rs")

# What the resolver substitutes for the pseudo parameters of the stack being checked, and the
# stack id of "another stack" used to show that a pattern does not reach beyond this one.
STACK_UUID = "11111111-2222-3333-4444-555555555555"
OTHER_STACK_UUID = "99999999-8888-7777-6666-555555555555"


class Resolver:
    """Evaluates the intrinsic functions these checks meet, for every branch of `Fn::If`."""

    def __init__(self, template: dict[str, Any], values: dict[str, str], stack_uuid: str = STACK_UUID):
        self.template = template
        # Physical ids differ between stacks (an API id, a client id).
        self.tag = "id" if stack_uuid == STACK_UUID else "other"
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": gatelib.OFFLINE_REGION,
            "AWS::AccountId": gatelib.OFFLINE_ACCOUNT,
            "AWS::StackName": "egress-stack",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{gatelib.OFFLINE_REGION}:{gatelib.OFFLINE_ACCOUNT}"
                f":stack/egress-stack/{stack_uuid}"
            ),
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.values = values

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.template.get("Parameters", {}):
            return gatelib.parameter_value(self.template, self.values, name)
        if name in self.template.get("Resources", {}):
            return self.resource_id(name)
        raise gatelib.GateError(f"cannot resolve Ref {name}")

    def all(self, node: Any) -> list[str]:
        """Every value `node` can take (one per combination of `Fn::If` branches)."""
        if isinstance(node, str):
            return [node]
        if isinstance(node, (int, float, bool)):
            return [str(node)]
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return [self.ref(arg)]
            if fn == "Fn::GetAtt":
                res, att = arg if isinstance(arg, list) else arg.split(".", 1)
                return [f"{self.resource_id(res)}.{att}"]
            if fn == "Fn::If":
                return self.all(arg[1]) + self.all(arg[2])
            if fn == "Fn::Select":
                index = int(self.all(arg[0])[0])
                return [v for lst in self._lists(arg[1]) for v in [lst[index]]]
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                names = sorted(set(re.findall(r"\$\{([^}!]+)\}", text)))
                choices = [self._sub_var(n, variables) for n in names]
                out = []
                for combo in itertools.product(*choices):
                    value = text
                    for n, v in zip(names, combo):
                        value = value.replace("${" + n + "}", v)
                    out.append(value)
                return out
            if fn == "Fn::Join":
                sep, parts = arg
                return ["".join(p) if not sep else sep.join(p) for p in itertools.product(*(self.all(x) for x in parts))]
        raise gatelib.GateError(f"cannot resolve {node!r}")

    def _lists(self, node: Any) -> list[list[str]]:
        if isinstance(node, dict) and set(node) == {"Fn::Split"}:
            sep, source = node["Fn::Split"]
            return [v.split(sep) for v in self.all(source)]
        if isinstance(node, list):
            return [list(c) for c in itertools.product(*(self.all(x) for x in node))]
        raise gatelib.GateError(f"cannot resolve the list {node!r}")

    def _sub_var(self, name: str, variables: dict[str, Any]) -> list[str]:
        if name in variables:
            return self.all(variables[name])
        if "." in name:
            res, att = name.split(".", 1)
            return [f"{self.resource_id(res)}.{att}"]
        return [self.ref(name)]

    def resource_id(self, logical: str) -> str:
        """A stand-in for the physical id of a resource: alphanumeric, like an app client id."""
        return f"{logical}0{self.tag}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def rust_struct_fields(path: Path, name: str) -> list[str]:
    """The serialised field names of `pub struct <name>` in a Rust file."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^pub struct {name} \{{\n(.*?)^\}}", text, re.MULTILINE | re.DOTALL)
    if not match:
        raise gatelib.GateError(f"{path}: no `pub struct {name}`")
    fields, rename = [], None
    for line in match.group(1).splitlines():
        line = line.strip()
        if line.startswith("#[serde("):
            if "flatten" in line:
                raise gatelib.GateError(f"{path}: {name} has a flattened field; list its attributes by hand")
            if m := re.search(r'rename\s*=\s*"([^"]+)"', line):
                rename = m.group(1)
            if re.search(r"\bskip\b(?!_)", line):
                rename = "\0skip"
            continue
        if m := re.match(r"pub (\w+)\s*:", line):
            if rename != "\0skip":
                fields.append(rename or m.group(1))
            rename = None
    return fields


def key_attributes(resource: dict[str, Any]) -> set[str]:
    """Key attributes of a table and of its secondary indexes."""
    props = resource["Properties"]
    keys = {k["AttributeName"] for k in props.get("KeySchema", [])}
    for index in props.get("GlobalSecondaryIndexes", []) + props.get("LocalSecondaryIndexes", []):
        keys |= {k["AttributeName"] for k in index["KeySchema"]}
    return keys


# --- the reviewer API's app clients -----------------------------------------------------------


def check_api_client_pattern(template: dict[str, Any], values: dict[str, str]) -> list[str]:
    errors = []
    resolver = Resolver(template, values)
    clients = {resolver.resource_id(n): n for n in gatelib.resources_of_type(template, "AWS::Cognito::UserPoolClient")}
    for name, api in gatelib.resources_of_type(template, "AWS::AppSync::GraphQLApi").items():
        pattern = api["Properties"].get("UserPoolConfig", {}).get("AppIdClientRegex")
        if pattern is None:
            errors.append(f"{name}: UserPoolConfig.AppIdClientRegex is not set, so any app client of the pool is accepted")
            continue
        accepted: set[str] = set()
        for variant in resolver.all(pattern):
            try:
                regex = re.compile(variant)
            except re.error as e:
                errors.append(f"{name}: AppIdClientRegex {variant!r} is not a regular expression: {e}")
                continue
            matched = {client for client in clients if regex.search(client)}
            if not matched:
                errors.append(f"{name}: AppIdClientRegex {variant!r} accepts none of this stack's app clients")
            for client in matched:
                for other in (f"x{client}", f"{client}x", "7abcdefghij0klmnopqrstuvwx"):
                    if regex.search(other):
                        errors.append(
                            f"{name}: AppIdClientRegex {variant!r} also accepts the client id {other!r}; "
                            "it must be exactly this stack's client id, anchored (^...$)"
                        )
                        break
            accepted |= matched
        if missing := sorted(clients[c] for c in set(clients) - accepted):
            errors.append(f"{name}: AppIdClientRegex never accepts {', '.join(missing)}")
    return errors


# --- the logs keys ----------------------------------------------------------------------------

LOGS_CONTEXT_KEY = "kms:EncryptionContext:aws:logs:arn"


def _logs_service_statements(key: dict[str, Any], resolver: Resolver) -> list[dict[str, Any]]:
    found = []
    for stmt in key["Properties"].get("KeyPolicy", {}).get("Statement", []):
        if stmt.get("Effect") != "Allow":
            continue
        services = _list((stmt.get("Principal") or {}).get("Service", [])) if isinstance(stmt.get("Principal"), dict) else []
        if any(v.startswith("logs.") for s in services for v in resolver.all(s)):
            found.append(stmt)
    return found


def check_logs_keys(template: dict[str, Any], values: dict[str, str]) -> list[str]:
    errors = []
    resolver = Resolver(template, values)
    other = Resolver(template, values, stack_uuid=OTHER_STACK_UUID)
    region, account = gatelib.OFFLINE_REGION, gatelib.OFFLINE_ACCOUNT
    arn_prefix = f"arn:aws:logs:{region}:{account}:log-group:"
    groups = gatelib.resources_of_type(template, "AWS::Logs::LogGroup")
    keys = gatelib.resources_of_type(template, "AWS::KMS::Key")

    # The groups of each key, by their ARN in this stack and in another stack of the template.
    by_key: dict[str, list[tuple[str, list[str], list[str]]]] = {}
    for name, group in groups.items():
        props = group["Properties"]
        key = props.get("KmsKeyId")
        key_name = key["Fn::GetAtt"][0] if isinstance(key, dict) and "Fn::GetAtt" in key else None
        if key_name is None:
            continue  # LOG_GROUP_ENCRYPTED_WITH_CMK reports it
        if "LogGroupName" not in props:
            errors.append(
                f"{name}: a log group encrypted with {key_name} needs a LogGroupName, so that the key's "
                "policy can name it (a generated name cannot be matched)"
            )
            continue
        mine = [arn_prefix + n for n in resolver.all(props["LogGroupName"])]
        theirs = [arn_prefix + n for n in other.all(props["LogGroupName"])]
        by_key.setdefault(key_name, []).append((name, mine, theirs))

    foreign = [
        f"{arn_prefix}/aws/lambda/another-function",
        f"{arn_prefix}/aws/appsync/apis/anotherapiid0",
        f"{arn_prefix}/aws/vendedlogs/states/another-workflow",
        f"{arn_prefix}another-group",
        f"arn:aws:logs:{region}:210987654321:log-group:/egress/x",
    ]
    for key_name, key in keys.items():
        statements = _logs_service_statements(key, resolver)
        if not statements:
            if key_name in by_key:
                errors.append(f"{key_name}: encrypts log groups but its policy does not let CloudWatch Logs use it")
            continue
        patterns: list[str] = []
        for stmt in statements:
            condition = stmt.get("Condition", {})
            values_ = [
                v
                for op in ("ArnLike", "ArnEquals", "StringLike", "StringEquals")
                for v in _list(condition.get(op, {}).get(LOGS_CONTEXT_KEY, []))
            ]
            if not values_:
                errors.append(
                    f"{key_name} {stmt.get('Sid')}: CloudWatch Logs may use the key for any log group; "
                    f"condition it on {LOGS_CONTEXT_KEY} (ArnLike) naming this stack's log groups"
                )
                continue
            patterns += [p for v in values_ for p in resolver.all(v)]
        if not patterns:
            continue
        others = [arn for _, _, theirs in by_key.get(key_name, []) for arn in theirs]
        for pattern in patterns:
            if not pattern.startswith(arn_prefix):
                errors.append(f"{key_name}: {pattern!r} is not a log group ARN of this account and region")
            for arn in foreign + others:
                if fnmatch.fnmatchcase(arn, pattern):
                    errors.append(
                        f"{key_name}: {LOGS_CONTEXT_KEY} pattern {pattern!r} also matches {arn}, which is not "
                        "a log group of this stack"
                    )
                    break
        for group_name, mine, _ in by_key.get(key_name, []):
            for arn in mine:
                if not any(fnmatch.fnmatchcase(arn, p) for p in patterns):
                    errors.append(f"{group_name} ({arn}) is encrypted with {key_name}, whose policy does not name it")
    return errors


# --- the list index ---------------------------------------------------------------------------


def check_requests_index(template: dict[str, Any], root: Path) -> list[str]:
    errors = []
    table = template["Resources"].get("RequestsTable")
    if table is None:
        return ["RequestsTable is missing"]
    fields = set(rust_struct_fields(root / REQUEST_MODEL, "EgressRequest"))
    all_keys = key_attributes(table)
    table_keys = {k["AttributeName"] for k in table["Properties"].get("KeySchema", [])}
    for index in table["Properties"].get("GlobalSecondaryIndexes", []):
        name = index["IndexName"]
        # An index always carries its own and the table's keys; another index's key (with a
        # serde default, or projected here as a plain attribute) is optional.
        own_keys = table_keys | {k["AttributeName"] for k in index["KeySchema"]}
        expected = fields - all_keys - SERVER_ONLY_REQUEST_ATTRIBUTES
        allowed = fields - own_keys - SERVER_ONLY_REQUEST_ATTRIBUTES
        projection = index.get("Projection", {})
        kind = projection.get("ProjectionType")
        if kind != "INCLUDE":
            errors.append(
                f"RequestsTable index {name}: projection {kind} copies "
                f"{', '.join(sorted(SERVER_ONLY_REQUEST_ATTRIBUTES))} into what listRequests reads; "
                "use INCLUDE with every EgressRequest attribute but those"
            )
            continue
        projected = set(projection.get("NonKeyAttributes", []))
        if leaked := sorted(projected & SERVER_ONLY_REQUEST_ATTRIBUTES):
            errors.append(f"RequestsTable index {name} projects {', '.join(leaked)}, which no reviewer-facing read may return")
        if missing := sorted(expected - projected):
            errors.append(f"RequestsTable index {name} does not project {', '.join(missing)} (fields of EgressRequest)")
        if extra := sorted(projected - allowed - SERVER_ONLY_REQUEST_ATTRIBUTES):
            errors.append(f"RequestsTable index {name} projects {', '.join(extra)}, which EgressRequest does not have (or are keys)")
    return errors


# --- what api-handler may write ---------------------------------------------------------------

EXPRESSION_WORDS = {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "BETWEEN", "IN"}


def _call_arguments(text: str, start: int) -> str:
    """The text between the parenthesis before `start` and its matching one."""
    depth, i, in_string = 1, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    raise gatelib.GateError("unbalanced parentheses")


def _string_literals(text: str) -> list[str]:
    if 'r#"' in text or 'r"' in text:
        raise gatelib.GateError("raw string literals are not understood by the gate")
    return [m.group(1) for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text, re.DOTALL)]


def adapter_update_attributes(path: Path) -> tuple[set[str], set[str]]:
    """(attribute names, ReturnValues) of the UpdateItem calls of the review adapter."""
    text = path.read_text(encoding="utf-8")
    code = text.split("#[cfg(test)]", 1)[0]
    prefix_body = re.search(r"fn prefix\(.*?\n\}", code, re.DOTALL)
    suffixes = re.search(r"const REVIEWER_SUFFIXES\s*:[^=]*=\s*\[([^\]]*)\]", code)
    if not prefix_body or not suffixes:
        raise gatelib.GateError(f"{path}: `fn prefix` or `REVIEWER_SUFFIXES` not found")
    prefixes = re.findall(r'"(\w+)"', prefix_body.group(0))
    reviewer = [f"{p}_{s}" for p in prefixes for s in re.findall(r'"(\w+)"', suffixes.group(1))]
    # Variables built from REVIEWER_SUFFIXES stand for every reviewer attribute of a stage.
    lists = set(re.findall(r"let (\w+) = REVIEWER_SUFFIXES", code))

    names: set[str] = set(re.findall(r'\.key\(\s*"([^"]+)"', code))
    aliases = dict(re.findall(r'\.expression_attribute_names\(\s*"(#\w+)"\s*,\s*"([^"]+)"', code))
    names |= set(aliases.values())
    for call in re.finditer(r"\.(update_expression|condition_expression)\(", code):
        for literal in _string_literals(_call_arguments(code, call.end())):
            for placeholder in set(re.findall(r"\{(\w*)\}", literal)):
                if placeholder in lists:
                    names |= set(reviewer)
                elif placeholder != "p":
                    raise gatelib.GateError(f"{path}: cannot tell which attributes {{{placeholder}}} names in {literal!r}")
            variants = [literal.replace("{p}", p) for p in prefixes] if "{p}" in literal else [literal]
            for variant in variants:
                variant = re.sub(r"\{\w*\}", " ", variant)
                for token in re.findall(r"(?<![\w:#])([A-Za-z_][A-Za-z0-9_]*)(?!\w)(?!\s*\()", variant):
                    if token.upper() not in EXPRESSION_WORDS:
                        names.add(token)
    returns = {"NONE"} | {
        re.sub(r"(?<!^)([A-Z])", r"_\1", v).upper() for v in re.findall(r"ReturnValue::(\w+)", code)
    }
    return names, returns


def _function_role(template: dict[str, Any], function: str) -> tuple[str, dict[str, Any]]:
    role = template["Resources"][function]["Properties"].get("Role")
    name = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None
    if name is None or name not in template["Resources"]:
        raise gatelib.GateError(f"{function}.Role must be !GetAtt <an AWS::IAM::Role of this template>.Arn")
    return name, template["Resources"][name]


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        stmt
        for policy in role["Properties"].get("Policies", [])
        for stmt in gatelib.guard_view(policy["PolicyDocument"]["Statement"])
        if stmt.get("Effect") == "Allow"
    ]


def _targets(stmt: dict[str, Any], action: str, table: str) -> bool:
    actions = _list(stmt.get("Action", []))
    resources = _list(stmt.get("Resource", []))
    on_table = any(isinstance(r, dict) and r.get("Fn::GetAtt", [None])[0] == table for r in resources)
    return action in actions and on_table


def _condition_set(stmt: dict[str, Any], operators: tuple[str, ...], key: str) -> set[str] | None:
    for op in operators:
        value = stmt.get("Condition", {}).get(op, {}).get(key)
        if value is not None:
            return set(_list(value))
    return None


def check_api_handler_writes(template: dict[str, Any], root: Path) -> list[str]:
    errors = []
    expected, returns = adapter_update_attributes(root / REVIEW_ADAPTER)
    role_name, role = _function_role(template, "ApiHandlerFunction")
    updates = [s for s in _statements(role) if _targets(s, "dynamodb:UpdateItem", "RequestsTable")]
    if not updates:
        errors.append(f"{role_name} cannot UpdateItem the requests table, which {REVIEW_ADAPTER} does")
    for stmt in updates:
        sid = stmt.get("Sid")
        granted = _condition_set(stmt, ("ForAllValues:StringEquals",), "dynamodb:Attributes")
        if granted is None:
            errors.append(
                f"{role_name} {sid}: UpdateItem on the requests table without a ForAllValues:StringEquals "
                "dynamodb:Attributes condition lets api-handler rewrite any attribute"
            )
            continue
        if missing := sorted(expected - granted):
            errors.append(f"{role_name} {sid}: {REVIEW_ADAPTER} names {', '.join(missing)}, which dynamodb:Attributes does not allow")
        if extra := sorted(granted - expected):
            errors.append(f"{role_name} {sid}: dynamodb:Attributes allows {', '.join(extra)}, which {REVIEW_ADAPTER} never names")
        allowed = _condition_set(stmt, ("StringEqualsIfExists", "StringEquals"), "dynamodb:ReturnValues")
        if allowed is None:
            errors.append(f"{role_name} {sid}: UpdateItem without a dynamodb:ReturnValues condition")
        elif allowed != returns:
            errors.append(
                f"{role_name} {sid}: dynamodb:ReturnValues allows {sorted(allowed)}, "
                f"{REVIEW_ADAPTER} uses {sorted(returns)}"
            )
    return errors


def check_audit_writes(template: dict[str, Any], root: Path) -> list[str]:
    errors = []
    audit = template["Resources"].get("AuditTable")
    if audit is None:
        return ["AuditTable is missing"]
    expected = set(rust_struct_fields(root / AUDIT_MODEL, "AuditEvent")) | key_attributes(audit) | AUDIT_CHAIN_ATTRIBUTES
    for function in gatelib.resources_of_type(template, "AWS::Serverless::Function"):
        role_name, role = _function_role(template, function)
        for stmt in _statements(role):
            if not _targets(stmt, "dynamodb:PutItem", "AuditTable"):
                continue
            sid = stmt.get("Sid")
            granted = _condition_set(stmt, ("ForAllValues:StringEquals",), "dynamodb:Attributes")
            if granted != expected:
                errors.append(
                    f"{role_name} {sid}: audit PutItem must be limited (ForAllValues:StringEquals "
                    f"dynamodb:Attributes) to {sorted(expected)}, got {sorted(granted) if granted else None}"
                )
            if _condition_set(stmt, ("StringEqualsIfExists", "StringEquals"), "dynamodb:ReturnValues") != {"NONE"}:
                errors.append(f"{role_name} {sid}: audit PutItem must read nothing back (dynamodb:ReturnValues NONE)")
    return errors


def _action_matches(granted: Any, action: str) -> bool:
    return isinstance(granted, str) and re.fullmatch(re.escape(granted).replace(r"\*", ".*"), action) is not None


def check_audit_append_only(template: dict[str, Any]) -> list[str]:
    """No role of the stack may rewrite or delete audit items (wildcards included)."""
    errors = []
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        for stmt in _statements(res):
            if not any("AuditTable" in json.dumps(r) for r in _list(stmt.get("Resource", []))):
                continue
            for granted in _list(stmt.get("Action", [])):
                if hits := sorted(a for a in AUDIT_REWRITE_ACTIONS if _action_matches(granted, a)):
                    errors.append(
                        f"{name} {stmt.get('Sid')}: {granted} on the audit table allows "
                        f"{', '.join(hits)}; the audit trail is append-only"
                    )
    return errors


def check_release_signing_key(template: dict[str, Any]) -> list[str]:
    """The release key signs with ECDSA P-256, and only copy-to-datalake's role may Sign."""
    key = template["Resources"].get("ReleaseSigningKey")
    if key is None:
        return ["ReleaseSigningKey is missing: release manifests cannot be signed"]
    props = key.get("Properties", {})
    errors = []
    if props.get("KeySpec") != "ECC_NIST_P256":
        errors.append(f"ReleaseSigningKey KeySpec must be ECC_NIST_P256, got {props.get('KeySpec')!r}")
    if props.get("KeyUsage") != "SIGN_VERIFY":
        errors.append(f"ReleaseSigningKey KeyUsage must be SIGN_VERIFY, got {props.get('KeyUsage')!r}")
    statements = gatelib.guard_view(props.get("KeyPolicy", {}).get("Statement", []))

    def signs(stmt: dict[str, Any]) -> bool:
        return any(_action_matches(a, "kms:Sign") for a in _list(stmt.get("Action", [])))

    for stmt in statements:
        if stmt.get("Effect") != "Allow" or not signs(stmt):
            continue
        principal = stmt.get("Principal", {})
        aws = principal.get("AWS") if isinstance(principal, dict) else principal
        if aws != {"Fn::GetAtt": ["CopyToDatalakeRole", "Arn"]}:
            errors.append(f"ReleaseSigningKey {stmt.get('Sid')}: kms:Sign is allowed to {aws!r}; only CopyToDatalakeRole may sign")
    denies = [
        s for s in statements
        if s.get("Effect") == "Deny" and signs(s) and "CopyToDatalakeRole" in json.dumps(s.get("Condition", {}))
    ]
    if not denies:
        errors.append("ReleaseSigningKey: no Deny of kms:Sign to every principal but CopyToDatalakeRole (IAM policies could grant it)")
    return errors


def check_security(template: dict[str, Any], root: Path, values: dict[str, str], report: Any) -> None:
    """Runs every check of this module into `report` (check_wiring.Report)."""
    checks = [
        ("reviewer API accepts only this stack's app client", lambda: check_api_client_pattern(template, values)),
        ("logs keys serve only this stack's log groups", lambda: check_logs_keys(template, values)),
        ("list index projects no server-only attribute", lambda: check_requests_index(template, root)),
        ("api-handler UpdateItem = the adapter's attributes", lambda: check_api_handler_writes(template, root)),
        ("audit PutItem = AuditEvent attributes", lambda: check_audit_writes(template, root)),
        ("no role can rewrite or delete audit events", lambda: check_audit_append_only(template)),
        ("release key: ECDSA P-256, Sign only by copy-to-datalake", lambda: check_release_signing_key(template)),
    ]
    for name, check in checks:
        try:
            errors = check()
        except (gatelib.GateError, OSError, KeyError, IndexError, ValueError) as e:
            errors = [f"the check could not run: {type(e).__name__}: {e}"]
        report.check(name, errors)
