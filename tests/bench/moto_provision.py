"""Provision a bare moto server for `make bench-e2e-moto` (tests/tests/bench_e2e.rs, bare-moto
mode): the buckets, tables (with listRequests' two indexes) and KMS key the benchmark names.
Prints the KMS key ARN."""

import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="eu-west-2", aws_access_key_id="bench", aws_secret_access_key="bench")
s3 = boto3.client("s3", **kw)
ddb = boto3.client("dynamodb", **kw)
kms = boto3.client("kms", **kw)
for bucket, versioned in [("bench-egress", True), ("bench-notify", False), ("bench-staging", True)]:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def index(name, partition):
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": "requested_dt", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


ddb.create_table(
    TableName="bench-requests",
    BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "egress_request_id", "KeyType": "HASH"}],
    AttributeDefinitions=[
        {"AttributeName": n, "AttributeType": "S"}
        for n in ("egress_request_id", "record_type", "requested_dt", "egress_status")
    ],
    GlobalSecondaryIndexes=[index("by-requested-dt", "record_type"), index("by-status", "egress_status")],
)
ddb.create_table(
    TableName="bench-audit",
    BillingMode="PAY_PER_REQUEST",
    KeySchema=[
        {"AttributeName": "egress_request_id", "KeyType": "HASH"},
        {"AttributeName": "event_key", "KeyType": "RANGE"},
    ],
    AttributeDefinitions=[
        {"AttributeName": "egress_request_id", "AttributeType": "S"},
        {"AttributeName": "event_key", "AttributeType": "S"},
    ],
)
print(kms.create_key()["KeyMetadata"]["Arn"])
