"""A Service Workbench (SWB) simulator: submits an egress request exactly as SWB does.

1. writes the researcher's files into SWB's versioned egress store bucket under
   `<workspace_id>/`: nested folders, the same file name in two folders, a file without an
   extension, binary content and the folder marker;
2. writes the snapshot file (`{"objects": [...]}`: S3 listing entries plus `VersionId` and
   `Owner`, DESIGN.md §2.2) for the versions submitted;
3. changes one file *after* the snapshot, so its latest version is not the submitted one;
4. creates the SWB egress store item (status `PENDING`);
5. publishes the SWB message (DESIGN.md §2.1) to the SWB topic.

Ids and keys follow real SWB: the egress store id is the workspace id, the store prefix is
`<workspace_id>/` and the snapshot is `<egress_store_id>/<egress_store_name>-ver<N>.json` in the
notification bucket (start-workflow refuses a message whose locations are not its own).

Scenario `missing-version` deletes one submitted version after the snapshot, so staging must
fail. Scenario `name-clash` adds `results/Data.csv` and `results/data.csv`, one file once
extracted on a case-insensitive file system, so staging must refuse the request. Prints a JSON description of what it did (ids, the submitted versions with their sizes
and SHA-256) for the e2e tests and the demo.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import datetime, timezone

from .provision import client

SUBMITTER = {"id": "u-researcher-7f3a", "email": "researcher@tre.example.org"}
OWNER = {"id": "u-owner-21c9", "email": "store-owner@tre.example.org"}
CHANGED_FILE = "results/model/coefficients.json"
MISSING_FILE = "results/tables/table2.csv"
CLASHING_FILES = ("results/Data.csv", "results/data.csv")
SCENARIOS = ("standard", "missing-version", "name-clash", "output-checks")


def synthetic_nhs_numbers(count: int) -> list[str]:
    """Checksum-valid (modulus 11) NHS-shaped numbers from a fixed generator: synthetic, no
    real person's number."""
    out, seed = [], 12345
    while len(out) < count:
        seed = (seed * 6364136223846793005 + 1442695040888963407) % 2**64
        digits = [9] + [(seed >> (8 + 4 * i)) % 10 for i in range(8)]
        remainder = sum(d * (10 - i) for i, d in enumerate(digits)) % 11
        check = 11 - remainder
        if check == 10:
            continue
        out.append("".join(map(str, digits + [0 if check == 11 else check])))
    return out


#: Rows of the output-checks scenario's large table before its one small count: 9 MiB in
#: all, above the 8 MiB from which check-outputs reads a file in ranges and parses its table
#: on a thread of its own.
LARGE_TABLE_ROWS = 943_719


def output_checks_files() -> dict[str, bytes]:
    """The output-checks scenario (issue 12): a small-count table, a file of (synthetic) NHS
    numbers, the EICAR anti-virus test file, a clean file, and a 9 MiB table whose only small
    count is on its last line (line `LARGE_TABLE_ROWS + 2`)."""
    eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    nhs = synthetic_nhs_numbers(3)
    return {
        "checks/small_counts.csv": b"region,count\nnorth,4\nsouth,120\neast,7\n",
        "checks/patients.txt": "".join(f"patient {n} seen\n" for n in nhs).encode(),
        "checks/eicar.txt": eicar,
        "checks/clean.txt": b"Mean follow-up 4.2 years (SD 1.1).\n",
        "checks/large_table.csv": b"region,count\n" + b"north,120\n" * LARGE_TABLE_ROWS + b"west,3\n",
    }


def iso_millis(dt: datetime) -> str:
    """SWB's timestamps: ISO-8601 with milliseconds and `Z`."""
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def research_files(seed: str) -> dict[str, bytes]:
    """The researcher's outputs, deterministic per request so a failure can be replayed."""
    rng = random.Random(seed)
    rows = "\n".join(f"{i},{rng.randint(0, 999)},{rng.random():.6f}" for i in range(200))
    png = b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(48 * 1024))
    return {
        "results/summary.csv": f"id,count,score\n{rows}\n".encode(),
        "results/tables/table1.csv": b"group,n,mean\nA,120,3.41\nB,98,3.77\n",
        MISSING_FILE: b"group,n,median\nA,120,3.2\nB,98,3.9\n",
        "results/readme.txt": b"Aggregated results, small cells suppressed (n < 10).\n",
        "notes/readme.txt": "Method notes: cohort defined as … (UTF-8 content)\n".encode("utf-8"),
        "figures/survival curve.png": png,
        "notes/LICENSE": b"CC-BY-4.0\n",
        CHANGED_FILE: json.dumps({"intercept": 0.12, "age": 0.031, "seed": seed}).encode(),
    }


def submit(outputs: dict, mode: str = "single", scenario: str = "standard", publish_times: int = 1) -> dict:
    """Runs one submission against the local stack described by `outputs`."""
    if mode not in ("single", "dual"):
        raise SystemExit(f"mode must be single or dual, got {mode!r}")
    if scenario not in SCENARIOS:
        raise SystemExit(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    endpoint, region = outputs["endpoint"], outputs["region"]
    s3 = client("s3", endpoint, region)
    ddb = client("dynamodb", endpoint, region)
    sns = client("sns", endpoint, region)

    request_id = str(uuid.uuid4())
    workspace_id = str(uuid.uuid4())
    # Real SWB keys the egress store by its workspace and names it after the workspace.
    store_id = workspace_id
    # The output-checks scenario in dual mode is a project whose checks policy enforces.
    project_id = "proj-checks-enforced" if (scenario, mode) == ("output-checks", "dual") else "proj-covid-outcomes"
    store_name = f"covid-outcomes-{workspace_id[:8]}-egress-store"
    bucket = outputs["buckets"]["SwbEgressStoreBucket"]
    notify_bucket = outputs["buckets"]["SwbNotificationBucket"]
    prefix = f"{workspace_id}/"
    created_at = datetime.now(timezone.utc)

    # 1. The store: folder marker first, as SWB creates it with the store.
    marker = s3.put_object(Bucket=bucket, Key=prefix, Body=b"")
    files = research_files(request_id)
    if scenario == "output-checks":
        files.update(output_checks_files())
    if scenario == "name-clash":
        for i, path in enumerate(CLASHING_FILES):
            files[path] = f"id,value\n{i},{i * 10}\n".encode()
    written = {}
    for path, body in files.items():
        put = s3.put_object(Bucket=bucket, Key=prefix + path, Body=body)
        written[path] = put["VersionId"]

    # 2. The snapshot, from the listing of the latest versions at submission time.
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    owner = {"DisplayName": "swb-egress", "ID": "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"}
    objects = []
    for v in listing.get("Versions", []):
        if not v["IsLatest"]:
            continue
        objects.append(
            {
                "Key": v["Key"],
                "LastModified": iso_millis(v["LastModified"]),
                "ETag": v["ETag"],
                "Size": v["Size"],
                "StorageClass": v.get("StorageClass", "STANDARD"),
                "VersionId": v["VersionId"],
                "Owner": owner,
            }
        )
    objects.sort(key=lambda o: o["Key"])
    ver = 1
    snapshot_key = f"{store_id}/{store_name}-ver{ver}.json"
    s3.put_object(
        Bucket=notify_bucket,
        Key=snapshot_key,
        Body=json.dumps({"objects": objects}).encode(),
        ContentType="application/json",
    )

    # 3. After the snapshot: the researcher keeps working on one file...
    changed = {}
    newer = json.dumps({"intercept": 0.5, "age": 9.9, "note": "changed after submission"}).encode()
    put = s3.put_object(Bucket=bucket, Key=prefix + CHANGED_FILE, Body=newer)
    changed[prefix + CHANGED_FILE] = {"submitted_version": written[CHANGED_FILE], "latest_version": put["VersionId"]}
    # ...and in the failure scenario a submitted version disappears.
    missing = []
    if scenario == "missing-version":
        s3.delete_object(Bucket=bucket, Key=prefix + MISSING_FILE, VersionId=written[MISSING_FILE])
        missing.append({"key": prefix + MISSING_FILE, "version_id": written[MISSING_FILE]})

    # 4. The SWB egress store item.
    updated_at = datetime.now(timezone.utc)
    ddb.put_item(
        TableName=outputs["tables"]["SwbEgressStoreTable"],
        Item={
            "id": {"S": store_id},
            "status": {"S": "PENDING"},
            "egressStoreName": {"S": store_name},
            "workspaceId": {"S": workspace_id},
            "projectId": {"S": project_id},
            "s3BucketName": {"S": bucket},
            "s3BucketPath": {"S": prefix},
            "createdBy": {"S": OWNER["id"]},
            "createdAt": {"S": iso_millis(created_at)},
            "updatedBy": {"S": SUBMITTER["id"]},
            "updatedAt": {"S": iso_millis(updated_at)},
            "ver": {"N": str(ver)},
        },
    )

    # 5. The message, field names as SWB sends them.
    message = {
        "id": request_id,
        "egress_store_id": store_id,
        "egress_store_name": store_name,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "s3_bucketname": bucket,
        "s3_bucketpath": prefix,
        "egress_store_object_list_location": f"arn:aws:s3:::{notify_bucket}/{snapshot_key}",
        "created_at": iso_millis(created_at),
        "updated_at": iso_millis(updated_at),
        "created_by": OWNER["id"],
        "updated_by": SUBMITTER["id"],
        "created_by_email": OWNER["email"],
        "updated_by_email": SUBMITTER["email"],
        "status": "PENDING",
        "ver": ver,
    }
    topic = outputs["topics"]["SwbEgressTopic" if mode == "single" else "SwbEgressTopicDual"]
    message_ids = [
        sns.publish(TopicArn=topic, Message=json.dumps(message))["MessageId"] for _ in range(publish_times)
    ]

    submitted = [
        {
            "key": prefix + path,
            "path": path,
            "version_id": written[path],
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
        for path, body in sorted(files.items())
    ]
    return {
        "egress_request_id": request_id,
        "egress_store_id": store_id,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "mode": mode,
        "scenario": scenario,
        "bucket": bucket,
        "prefix": prefix,
        "folder_markers": [{"key": prefix, "version_id": marker["VersionId"]}],
        "snapshot_location": message["egress_store_object_list_location"],
        "snapshot_objects": len(objects),
        "topic_arn": topic,
        "published_message_ids": message_ids,
        "message": message,
        "files": submitted,
        "changed_after_snapshot": [{"key": k, **v} for k, v in changed.items()],
        "missing_versions": missing,
        "clashing_keys": [prefix + p for p in CLASHING_FILES] if scenario == "name-clash" else [],
        "submitter": SUBMITTER,
        "owner": OWNER,
    }
