"""Creates the project's resources in moto, as the SAM template does in AWS.

What to create comes from `local/resources.json` (keyed by the template's logical ids), with
the requests table's index projection read from the template itself (`template.py`: what a
reviewer-facing read of the index can return must be the same here as deployed); the
state machine definition is `statemachine/egress_workflow.asl.json` with its `${...}`
placeholders substituted exactly as `DefinitionSubstitutions` does. Returns everything the
tests and the demo need (names, ARNs, key ids), which the stack writes to `outputs.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
from botocore.config import Config

from . import template
from .settings import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, ROOT

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def client(service: str, endpoint: str, region: str):
    """A boto3 client for the local stack only: explicit fake credentials, explicit endpoint."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
        config=Config(retries={"max_attempts": 2}, s3={"addressing_style": "path"}),
    )


def function_arn(resources: dict, name: str) -> str:
    return f"arn:aws:lambda:{resources['region']}:{resources['account_id']}:function:{name}"


def substitute(definition: str, substitutions: dict[str, str]) -> str:
    """`DefinitionSubstitutions`: every placeholder must have a value and every value must be
    used, so a drift between the ASL and the stack fails loudly at start."""
    used = set(PLACEHOLDER.findall(definition))
    missing = used - substitutions.keys()
    unused = substitutions.keys() - used
    if missing or unused:
        raise SystemExit(
            "state machine substitutions do not match the ASL placeholders: "
            f"missing values for {sorted(missing)}, values nobody uses {sorted(unused)}"
        )
    return PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], definition)


def table_arguments(spec: dict, projections: dict[str, dict]) -> dict:
    """`CreateTable` arguments of one table of `resources.json`. Each index gets the
    projection the template gives it (`projections`, by index name); an index the template
    does not declare is a drift between the two files and stops the start."""
    key_schema = [
        {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"}
        for i, (name, _) in enumerate(spec["key"])
    ]
    attributes = {name: typ for name, typ in spec["key"]}
    indexes = []
    for index_name, index_key in spec.get("indexes", {}).items():
        if index_name not in projections:
            raise SystemExit(f"local/resources.json declares index {index_name} of {spec['name']}, which the template does not")
        attributes.update({name: typ for name, typ in index_key})
        indexes.append(
            {
                "IndexName": index_name,
                "KeySchema": [
                    {"AttributeName": name, "KeyType": "HASH" if i == 0 else "RANGE"}
                    for i, (name, _) in enumerate(index_key)
                ],
                "Projection": projections[index_name],
            }
        )
    args = {
        "TableName": spec["name"],
        "KeySchema": key_schema,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        args["GlobalSecondaryIndexes"] = indexes
    return args


def create_tables(ddb, resources: dict, template_resources: dict) -> dict[str, str]:
    names = {}
    for logical_id, spec in resources["tables"].items():
        # SWB's table is not in the template; it has no indexes here either.
        projections = template.index_projections(template_resources, logical_id) if spec.get("indexes") else {}
        ddb.create_table(**table_arguments(spec, projections))
        names[logical_id] = spec["name"]
    return names


def create_keys(kms, resources: dict) -> dict[str, dict]:
    keys = {}
    for logical_id, spec in resources["keys"].items():
        # The release signing key is asymmetric (moto's KMS signs ECDSA P-256 like KMS).
        extra = {"KeySpec": spec["key_spec"], "KeyUsage": spec["key_usage"]} if spec.get("key_spec") else {}
        key = kms.create_key(Description=f"local {logical_id}", **extra)["KeyMetadata"]
        kms.create_alias(AliasName=spec["alias"], TargetKeyId=key["KeyId"])
        keys[logical_id] = {"key_id": key["KeyId"], "arn": key["Arn"], "alias": spec["alias"]}
    return keys


def create_buckets(s3, resources: dict, keys: dict) -> dict[str, str]:
    names = {}
    for logical_id, spec in resources["buckets"].items():
        name = spec["name"]
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": resources["region"]})
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        if spec.get("versioned"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if spec.get("kms_key"):
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": keys[spec["kms_key"]]["arn"],
                            },
                            "BucketKeyEnabled": True,
                        }
                    ]
                },
            )
        names[logical_id] = name
    return names


def create_topics(sns, sqs, resources: dict, edge_endpoint: str) -> tuple[dict, dict, dict]:
    """Topics; an SQS inbox on each reviewer/admin topic so tests can read what was
    published; SWB topics delivered over `http` to the router, which invokes start-workflow."""
    topics, inboxes, subscriptions = {}, {}, {}
    for logical_id, spec in resources["topics"].items():
        arn = sns.create_topic(Name=spec["name"])["TopicArn"]
        topics[logical_id] = arn
        if spec.get("inbox"):
            url = sqs.create_queue(QueueName=spec["inbox"])["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
            inboxes[logical_id] = {"queue_url": url, "queue_arn": queue_arn}
        if spec.get("deliver_to"):
            endpoint = f"{edge_endpoint}/_sns/{spec['deliver_to']}/start-workflow"
            sub = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint, ReturnSubscriptionArn=True)
            subscriptions[arn] = sub["SubscriptionArn"]
    return topics, inboxes, subscriptions


def create_state_machine(sfn, resources: dict, substitutions: dict[str, str]) -> str:
    spec = resources["state_machine"]
    definition = substitute((ROOT / spec["definition"]).read_text(encoding="utf-8"), substitutions)
    json.loads(definition)  # fail here, not in moto, if a substitution broke the JSON
    return sfn.create_state_machine(
        name=spec["name"], definition=definition, roleArn=spec["role"], type="STANDARD"
    )["stateMachineArn"]


def workflow_substitutions(resources: dict, tables: dict, topics: dict) -> dict[str, str]:
    values = {}
    for placeholder, source in resources["workflow_substitutions"].items():
        if "table" in source:
            values[placeholder] = tables[source["table"]]
        elif "function" in source:
            values[placeholder] = function_arn(resources, source["function"])
        elif "topic" in source:
            values[placeholder] = topics[source["topic"]]
        else:
            raise SystemExit(f"resources.json: substitution {placeholder} has an unknown source {source}")
    return values


def provision(endpoint: str, resources: dict) -> dict:
    """Creates everything; returns the outputs (names and ARNs)."""
    region = resources["region"]
    ddb = client("dynamodb", endpoint, region)
    kms = client("kms", endpoint, region)
    s3 = client("s3", endpoint, region)
    sns = client("sns", endpoint, region)
    sqs = client("sqs", endpoint, region)
    ses = client("ses", endpoint, region)
    sfn = client("stepfunctions", endpoint, region)

    try:
        tables = create_tables(ddb, resources, template.load())
    except template.TemplateError as exc:
        raise SystemExit(f"infra/template.yaml: {exc}") from exc
    keys = create_keys(kms, resources)
    buckets = create_buckets(s3, resources, keys)
    topics, inboxes, subscriptions = create_topics(sns, sqs, resources, endpoint)
    ses.verify_email_identity(EmailAddress=resources["email"]["sender"])
    substitutions = workflow_substitutions(resources, tables, topics)
    state_machine_arn = create_state_machine(sfn, resources, substitutions)
    return {
        "tables": tables,
        "keys": keys,
        "buckets": buckets,
        "topics": topics,
        "inboxes": inboxes,
        "sns_http_subscriptions": subscriptions,
        "state_machine_arn": state_machine_arn,
        "substitutions": substitutions,
        "functions": {name: function_arn(resources, name) for name in resources["functions"]},
        "email": resources["email"],
    }


def template_environment(resources_of_template: dict) -> dict[str, list[str]]:
    """Function crate -> the variables infra/template.yaml gives it (its `Environment`)."""
    return {
        res["Properties"]["CodeUri"].rstrip("/").rsplit("/", 1)[-1]: sorted(res["Properties"].get("Environment", {}).get("Variables", {}))
        for res in resources_of_template.values()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def function_environments(resources: dict, outputs: dict, approval_mode: str, resources_of_template: dict) -> dict[str, dict[str, str]]:
    """Function crate -> exactly the variables the template gives it, with local values. A
    variable the template names and this table cannot fill stops the stack, as the deploy would."""
    p = resources["project"]
    values = {
        "STATE_MACHINE_ARN": outputs["state_machine_arn"],
        "SWB_NOTIFICATION_BUCKET": outputs["buckets"]["SwbNotificationBucket"],
        "SWB_EGRESS_STORE_BUCKET": outputs["buckets"]["SwbEgressStoreBucket"],
        "APPROVAL_MODE": approval_mode,
        "IG_REVIEWER_GROUP": p["ig_reviewer_group"],
        "RIT_REVIEWER_GROUP": p["rit_reviewer_group"],
        # revokeRelease's group (AdminGroupName); local/appsync seeds its admin user in it.
        "ADMIN_GROUP": p.get("admin_group", "EgressAdmin"),
        "REVIEW_TIMEOUT_SECONDS": str(p["review_timeout_seconds"]),
        "APP_URL": p["app_url"],
        "ADMIN_EMAIL": resources["email"]["admin"],
        "SENDER_EMAIL": resources["email"]["sender"],
        "REQUESTS_TABLE": outputs["tables"]["RequestsTable"],
        "AUDIT_TABLE": outputs["tables"]["AuditTable"],
        "STAGING_BUCKET": outputs["buckets"]["StagingBucket"],
        "STAGING_KMS_KEY_ARN": outputs["keys"]["StagingKey"]["arn"],
        "DATALAKE_BUCKET": outputs["buckets"]["DatalakeBucket"],
        "DATALAKE_KMS_KEY_ARN": outputs["keys"]["DatalakeKey"]["arn"],
        "RELEASE_SIGNING_KEY_ID": outputs["keys"]["ReleaseSigningKey"]["arn"],
        # The output checks' policies: projects advise by default; the SWB simulator's
        # `output-checks` scenario submits dual-mode requests as a project that enforces (a
        # blocking finding rejects automatically), so the e2e tests see both.
        "CHECKS_POLICY": json.dumps(
            {"default": {"version": "local-1", "mode": "advise"}, "projects": {"proj-checks-enforced": {"version": "local-1", "mode": "enforce"}}},
            separators=(",", ":"),
        ),
        # The router's malware scanner simulation (malware.py) tags staged objects within
        # moments; the bound only matters when it does not.
        "MALWARE_SCAN_WAIT_SECONDS": "60",
        "ARCHIVE_UPLOAD_CONCURRENCY": "4",
        # Locally every archive invocation writes one part and hands over, so any archive of
        # more than one part exercises the continuations (issue 11).
        "ARCHIVE_SLICE_SECONDS": "0",
        "DOWNLOAD_GROUPS": p["download_groups"],
        "MAX_DOWNLOADS": str(p["max_downloads"]),
        "DOWNLOAD_URL_EXPIRY_SECONDS": str(p["download_url_expiry_seconds"]),
        "LIST_MAX_AGE_DAYS": str(p["list_max_age_days"]),
        # Not set locally: the local pool is moto's, and the claim's default is the template's.
        "USER_POOL_ID": "",
        "IDP_GROUP_CLAIM": "",
        # IdP group -> reviewer group (pre-token-generation, and api-handler at every decision).
        "IDP_GROUP_MAP": f"tre-ig={p['ig_reviewer_group']},tre-rit={p['rit_reviewer_group']}",
        # The sweep (issue 14): the topics the workflow notifies, SWB's table, and timings in
        # seconds so the e2e tests see a reminder (4 s), an escalation (8 s) and an expiry
        # warning (12 s after the stage parks, whatever the review timeout) by invoking it.
        "SWB_EGRESS_STORE_TABLE": outputs["tables"].get("SwbEgressStoreTable", ""),
        "IG_NOTIFICATION_TOPIC_ARN": outputs.get("topics", {}).get("IgNotificationTopic", ""),
        "RIT_NOTIFICATION_TOPIC_ARN": outputs.get("topics", {}).get("RitNotificationTopic", ""),
        "ADMIN_ALERT_TOPIC_ARN": outputs.get("topics", {}).get("AdminAlertTopic", ""),
        "REMIND_AFTER_SECONDS": "4",
        "REMIND_EVERY_SECONDS": "30",
        "ESCALATE_AFTER_SECONDS": "8",
        "EXPIRY_WARNING_SECONDS": str(max(int(p["review_timeout_seconds"]) - 12, 1)),
        "STALE_UPLOAD_SECONDS": "5",
    }
    out = {}
    for crate, names in template_environment(resources_of_template).items():
        if missing := [n for n in names if n not in values]:
            raise SystemExit(f"infra/template.yaml gives {crate} {', '.join(missing)}, which the local stack has no value for")
        out[crate] = {n: values[n] for n in names if values[n]}
    return out


def function_environment(resources: dict, outputs: dict, approval_mode: str) -> dict[str, str]:
    """The env file of one `cargo lambda watch` (one per approval mode). One watch process serves
    every function and takes one env file for all, so this is the union of the per-function
    tables built from the template; each function reads only its own (its config's `VARIABLES`,
    which the template gate checks against the same template)."""
    union = {"RUST_LOG": "info"}
    for env in function_environments(resources, outputs, approval_mode, template.load()).values():
        union.update(env)
    return union


# Values cargo lambda's `--env-file` parser reads unquoted; anything else (an `=` in a
# value, such as IDP_GROUP_MAP's pairs, fails the whole file) is single-quoted.
ENV_PLAIN = re.compile(r"[A-Za-z0-9_./:,@+-]*")


def env_line(name: str, value: str) -> str:
    """One `NAME=value` line of an env file, quoted when the value needs it."""
    if ENV_PLAIN.fullmatch(value):
        return f"{name}={value}"
    if "'" in value or "\n" in value:
        raise SystemExit(f"{name}: a value with a quote or a newline cannot go into an env file: {value!r}")
    return f"{name}='{value}'"


def write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = [env_line(k, v) for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
