"""The local stack's moto writes Step Functions' context-object times as AWS does."""

import datetime
import re
import unittest

from egress_local import moto_launcher

AWS_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def mocked_client(case: unittest.TestCase, patch, service: str):
    """`patch` applied, moto's in-process AWS started for `case`, and a client of `service`;
    the test is skipped where moto is not installed."""
    try:
        import boto3
        from moto import mock_aws
    except ImportError:
        case.skipTest("moto is not installed in this interpreter (run with the stack's python)")
    patch()
    mock = mock_aws()
    mock.start()
    case.addCleanup(mock.stop)
    return boto3.client(service, region_name="eu-west-2")


class MotoLauncherTest(unittest.TestCase):
    def test_when_a_time_has_microseconds_then_it_is_written_with_milliseconds_and_z(self):
        t = moto_launcher.AwsTimestamp(2026, 12, 1, 20, 7, 43, 123456, tzinfo=datetime.timezone.utc)
        self.assertEqual(t.isoformat(), "2026-12-01T20:07:43.123Z")

    def test_when_a_time_is_in_another_zone_then_it_is_written_in_utc(self):
        plus_one = datetime.timezone(datetime.timedelta(hours=1))
        t = moto_launcher.AwsTimestamp(2026, 12, 1, 21, 0, 0, 0, tzinfo=plus_one)
        self.assertEqual(t.isoformat(), "2026-12-01T20:00:00.000Z")

    def test_when_patched_then_the_interpreters_entered_time_has_the_aws_format(self):
        try:
            from moto.stepfunctions.parser.asl.component.state import state
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        moto_launcher.patch_entered_time()
        now = state.datetime.datetime.now(tz=state.datetime.timezone.utc).isoformat()
        self.assertRegex(now, AWS_FORMAT)


class StackStartsMotoThroughTheLauncherTest(unittest.TestCase):
    def test_when_the_stack_starts_moto_then_it_runs_the_launcher_with_local_on_the_path(self):
        import os
        import subprocess

        from egress_local import stack
        from egress_local.settings import Ports

        try:
            import moto  # noqa: F401
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        ports = Ports(edge=4700, moto=4701, watch_single=4702, watch_dual=4703)
        cmd, env = stack.moto_command(ports)
        self.assertEqual(cmd[1:3], ["-m", "egress_local.moto_launcher"])
        self.assertEqual(cmd[3:], ["-H", "127.0.0.1", "-p", "4701"])
        self.assertEqual(env["MOTO_PORT"], "4700", "the interpreter's service calls go to the router")
        # The command as the stack runs it finds the launcher and moto's server behind it.
        out = subprocess.run(
            [*cmd[:3], "--help"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("usage", out.stdout.lower())


if __name__ == "__main__":
    unittest.main()


def create_table(backend, name: str, key: dict[str, str]) -> None:
    """An on-demand table in moto's backend keyed by `key` (hash, then range: name -> type)."""
    names = list(key)
    backend.create_table(
        name,
        schema=[{"AttributeName": n, "KeyType": t} for n, t in zip(names, ("HASH", "RANGE"))],
        throughput=None,
        attr=[{"AttributeName": n, "AttributeType": key[n]} for n in names],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )


class TransactionIsolationTest(unittest.TestCase):
    def test_when_a_transaction_fails_while_another_thread_writes_then_that_write_survives(self):
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb import models
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        import copy
        import threading
        import types
        from unittest import mock

        moto_launcher.patch_transaction_isolation()
        backend = models.dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-west-2"]
        backend.reset()
        create_table(backend, "t", {"id": "S"})
        backend.put_item("t", {"id": {"S": "taken"}})
        writer = threading.Thread(target=lambda: backend.put_item("t", {"id": {"S": "concurrent"}}))

        def backup(value, *args):
            # Just after the transaction took its backup, another thread writes; moto
            # restores the backup when the transaction fails.
            taken = copy.deepcopy(value, *args)
            if isinstance(value, models.Table) and writer.ident is None:
                writer.start()
                writer.join(timeout=0.5)
            return taken

        with mock.patch.object(models, "copy", types.SimpleNamespace(deepcopy=backup)):
            with self.assertRaises(Exception) as refused:
                backend.transact_write_items(
                    [
                        {
                            "Put": {
                                "TableName": "t",
                                "Item": {"id": {"S": "taken"}},
                                "ConditionExpression": "attribute_not_exists(id)",
                            }
                        }
                    ]
                )
        self.assertEqual(type(refused.exception).__name__, "TransactionCanceledException")
        writer.join(timeout=5)
        self.assertFalse(writer.is_alive())
        self.assertIsNotNone(
            backend.get_item("t", {"id": {"S": "concurrent"}}),
            "the concurrent write was undone by the failed transaction",
        )


class ItemRollbackTest(unittest.TestCase):
    """A failed transaction undoes its own items, without copying the table."""

    def setUp(self):
        try:
            from moto.core import DEFAULT_ACCOUNT_ID
            from moto.dynamodb import models
        except ImportError:
            self.skipTest("moto is not installed in this interpreter (run with the stack's python)")
        moto_launcher.patch_transaction_isolation()
        self.backend = models.dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
        self.backend.reset()
        create_table(self.backend, "audit", {"id": "S", "seq": "N"})
        for n in range(50):
            self.backend.put_item("audit", {"id": {"S": "other"}, "seq": {"N": str(n)}})
        self.backend.put_item("audit", {"id": {"S": "r"}, "seq": {"N": "1"}, "v": {"S": "before"}})

    def item(self, seq):
        found = self.backend.get_item("audit", {"id": {"S": "r"}, "seq": {"N": str(seq)}})
        return None if found is None else found.to_json()["Attributes"]

    def test_when_a_transaction_fails_then_its_items_are_as_before_and_the_table_is_not_copied(self):
        table = self.backend.tables["audit"]
        before = self.item(1)
        with self.assertRaises(Exception) as refused:
            self.backend.transact_write_items(
                [
                    {"Put": {"TableName": "audit", "Item": {"id": {"S": "r"}, "seq": {"N": "2"}}}},
                    {
                        "Update": {
                            "TableName": "audit",
                            "Key": {"id": {"S": "r"}, "seq": {"N": "1"}},
                            "UpdateExpression": "SET v = :v",
                            "ExpressionAttributeValues": {":v": {"S": "after"}},
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": "audit",
                            "Key": {"id": {"S": "other"}, "seq": {"N": "0"}},
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                ]
            )
        self.assertEqual(type(refused.exception).__name__, "TransactionCanceledException")
        self.assertIsNone(self.item(2), "the put of a new item is undone")
        self.assertEqual(self.item(1), before, "the update is undone")
        self.assertIs(self.backend.tables["audit"], table, "the table itself was kept, not a copy")
        self.assertEqual(len(list(self.backend.tables["audit"].all_items())), 51)

    def test_when_a_transaction_succeeds_then_every_item_is_written(self):
        self.backend.transact_write_items(
            [
                {"Put": {"TableName": "audit", "Item": {"id": {"S": "r"}, "seq": {"N": "2"}}}},
                {
                    "Update": {
                        "TableName": "audit",
                        "Key": {"id": {"S": "r"}, "seq": {"N": "1"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "after"}},
                    }
                },
            ]
        )
        self.assertIsNotNone(self.item(2))
        self.assertEqual(self.item(1)["v"], {"S": "after"})


class MultipartUploadsTest(unittest.TestCase):
    """Uploads list when they were created, and a part sent to an aborted one is a 404."""

    def setUp(self):
        self.s3 = mocked_client(self, moto_launcher.patch_multipart_uploads, "s3")
        self.s3.create_bucket(Bucket="uploads", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})

    def test_when_an_upload_was_just_opened_then_it_lists_as_initiated_now(self):
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        upload_id = self.s3.create_multipart_upload(Bucket="uploads", Key="k")["UploadId"]
        uploads = self.s3.list_multipart_uploads(Bucket="uploads")["Uploads"]
        self.assertEqual([u["UploadId"] for u in uploads], [upload_id])
        initiated = uploads[0]["Initiated"]
        self.assertGreaterEqual(initiated, before)
        self.assertLess(initiated - before, datetime.timedelta(seconds=30))

    def test_when_a_part_goes_to_an_aborted_upload_then_s3_answers_no_such_upload(self):
        from botocore.exceptions import ClientError

        upload_id = self.s3.create_multipart_upload(Bucket="uploads", Key="k")["UploadId"]
        self.s3.abort_multipart_upload(Bucket="uploads", Key="k", UploadId=upload_id)
        with self.assertRaises(ClientError) as raised:
            self.s3.upload_part(Bucket="uploads", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")
        self.assertEqual(raised.exception.response["Error"]["Code"], "NoSuchUpload")
        self.assertEqual(raised.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)


class RepeatedReadsTest(unittest.TestCase):
    """An object's ranges read it out of moto's buffer once; a write is never hidden."""

    def setUp(self):
        self.s3 = mocked_client(self, moto_launcher.patch_repeated_reads, "s3")
        self.s3.create_bucket(Bucket="reads", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})

    def stored(self, key: str):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets["reads"].keys[key]

    def test_when_an_object_is_read_in_ranges_then_each_range_is_right_and_its_buffer_read_once(self):
        from unittest import mock

        body = bytes(range(256)) * 4096
        self.s3.put_object(Bucket="reads", Key="k", Body=body)
        key = self.stored("k")
        with mock.patch.object(key._value_buffer, "read", wraps=key._value_buffer.read) as buffer_read:
            for start in range(0, len(body), 256 * 1024):
                end = start + 256 * 1024 - 1
                got = self.s3.get_object(Bucket="reads", Key="k", Range=f"bytes={start}-{end}")["Body"].read()
                self.assertEqual(got, body[start : end + 1])
        self.assertEqual(buffer_read.call_count, 1)

    def test_when_its_ranges_are_asked_at_once_then_the_object_is_still_read_once(self):
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor
        from unittest import mock

        body = bytes(range(256)) * 8192
        self.s3.put_object(Bucket="reads", Key="k", Body=body)
        key = self.stored("k")
        real_read = key._value_buffer.read
        start = threading.Barrier(8)

        def slow_read(*args):
            time.sleep(0.05)  # a large object's read: the other requests arrive meanwhile
            return real_read(*args)

        def value(_):
            start.wait()
            return key.value

        with mock.patch.object(key._value_buffer, "read", side_effect=slow_read) as buffer_read:
            with ThreadPoolExecutor(8) as pool:
                got = list(pool.map(value, range(8)))
        self.assertEqual(got, [body] * 8)
        self.assertEqual(buffer_read.call_count, 1)

    def test_when_an_object_is_written_after_a_read_then_the_next_read_has_the_new_bytes(self):
        self.s3.put_object(Bucket="reads", Key="k", Body=b"first")
        self.assertEqual(self.s3.get_object(Bucket="reads", Key="k")["Body"].read(), b"first")
        # moto's own setter (it leaves the stored checksum as it was, so read the model here).
        self.stored("k").value = b"second"
        self.assertEqual(self.stored("k").value, b"second")
        self.s3.put_object(Bucket="reads", Key="k", Body=b"third")
        self.assertEqual(self.s3.get_object(Bucket="reads", Key="k")["Body"].read(), b"third")
        # Another object read in between is not confused with it.
        self.s3.put_object(Bucket="reads", Key="other", Body=b"other")
        self.assertEqual(self.s3.get_object(Bucket="reads", Key="other")["Body"].read(), b"other")
        self.assertEqual(self.s3.get_object(Bucket="reads", Key="k")["Body"].read(), b"third")


class BackendLookupTest(unittest.TestCase):
    """moto's server finds a request's service once per host, not per request."""

    @staticmethod
    def environ(service: str) -> dict:
        scope = f"AKIDEXAMPLE/20261203/eu-west-2/{service}/aws4_request"
        return {
            "PATH_INFO": "/",
            "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem" if service == "dynamodb" else "",
            "HTTP_HOST": "127.0.0.1:27101",
            "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
        }

    def test_when_requests_repeat_then_each_goes_to_its_service_without_listing_moto_again(self):
        from unittest import mock

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        moto_launcher.patch_backend_lookup()
        app = DomainDispatcherApplication(create_backend_app)
        s3 = app.get_application(self.environ("s3"))
        dynamodb = app.get_application(self.environ("dynamodb"))
        self.assertNotEqual(s3, dynamodb)
        self.assertIs(app.app_instances["s3"], s3)
        self.assertIs(app.app_instances["dynamodb"], dynamodb)
        with mock.patch("os.listdir", side_effect=AssertionError("moto's package listed again")) as listed:
            for _ in range(3):
                self.assertIs(app.get_application(self.environ("s3")), s3)
                self.assertIs(app.get_application(self.environ("dynamodb")), dynamodb)
        listed.assert_not_called()


class RequestLogTest(unittest.TestCase):
    def test_when_moto_answers_then_only_refusals_and_failures_are_logged(self):
        from unittest import mock

        from werkzeug.serving import WSGIRequestHandler

        moto_launcher.patch_request_log()
        handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
        handler.path, handler.command, handler.request_version = "/b/k", "GET", "HTTP/1.1"
        handler.client_address = ("127.0.0.1", 1)
        with mock.patch.object(WSGIRequestHandler, "log") as log:
            for code in (200, 204, 206, 304):
                handler.log_request(code, 10)
            log.assert_not_called()
            handler.log_request(404, 10)
            handler.log_request(500, 10)
        self.assertEqual([c.args[3] for c in log.call_args_list], ["404", "500"])


class QuerySpeedTest(unittest.TestCase):
    """moto's queries answer as before the launcher sped them up: a GSI query's items in the
    index's order (its sort key's values, numbers as numbers, then the table's key) forward
    and backward, an `INCLUDE` index with exactly its attributes, a scan in key order."""

    def setUp(self):
        self.db = mocked_client(self, moto_launcher.patch_query_speed, "dynamodb")
        index = lambda name, sort_key, projection: {  # noqa: E731
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": "kind", "KeyType": "HASH"},
                {"AttributeName": sort_key, "KeyType": "RANGE"},
            ],
            "Projection": projection,
        }
        self.db.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "kind", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "S"},
                {"AttributeName": "n", "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[
                index("by-at", "at", {"ProjectionType": "ALL"}),
                index("by-n", "n", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["at", "tags"]}),
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        import random

        rng = random.Random(7)
        self.rows = []
        for i in range(300):
            row = (f"id-{rng.randrange(10**6):06d}-{i}", f"2026-12-0{rng.randrange(1, 4)}", rng.choice([9, 10, 100, 2.5, -1]))
            self.rows.append(row)
            self.db.put_item(
                TableName="t",
                Item={
                    "id": {"S": row[0]},
                    "kind": {"S": "r"},
                    "at": {"S": row[1]},
                    "n": {"N": str(row[2])},
                    "tags": {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}]}}},
                    "extra": {"S": "not projected"},
                },
            )
        self.db.put_item(TableName="t", Item={"id": {"S": "other"}, "kind": {"S": "x"}, "at": {"S": "2026-12-02"}, "n": {"N": "1"}})

    def ids(self, index, forward):
        found, start = [], None
        while True:
            kwargs = {"ExclusiveStartKey": start} if start else {}
            page = self.db.query(
                TableName="t",
                IndexName=index,
                KeyConditionExpression="kind = :k",
                ExpressionAttributeValues={":k": {"S": "r"}},
                ScanIndexForward=forward,
                Limit=40,
                **kwargs,
            )
            found += [item["id"]["S"] for item in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def test_when_an_index_is_queried_then_items_come_in_its_order_both_ways(self):
        by_at = [r[0] for r in sorted(self.rows, key=lambda r: (r[1], r[0]))]
        by_n = [r[0] for r in sorted(self.rows, key=lambda r: (r[2], r[0]))]
        self.assertEqual(self.ids("by-at", True), by_at)
        self.assertEqual(self.ids("by-at", False), by_at[::-1])
        self.assertEqual(self.ids("by-n", True), by_n)
        self.assertEqual(self.ids("by-n", False), by_n[::-1])

    def test_when_an_index_is_queried_then_no_value_is_compared_through_dynamo_types(self):
        # The cost removed: a sort of the whole partition by `DynamoType.__lt__`, which
        # recomputes both values at every comparison.
        from unittest import mock

        from moto.dynamodb.models.dynamo_type import DynamoType

        with mock.patch.object(DynamoType, "__lt__", side_effect=AssertionError("compared as DynamoType")):
            page = self.db.query(
                TableName="t",
                IndexName="by-at",
                KeyConditionExpression="kind = :k",
                ExpressionAttributeValues={":k": {"S": "r"}},
                Limit=40,
            )
        self.assertEqual([i["id"]["S"] for i in page["Items"]], self.ids("by-at", True)[:40])

    def test_when_an_include_index_is_queried_then_items_have_exactly_its_attributes(self):
        page = self.db.query(
            TableName="t",
            IndexName="by-n",
            KeyConditionExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "r"}},
            Limit=5,
        )
        for item in page["Items"]:
            self.assertEqual(set(item), {"id", "kind", "n", "at", "tags"})
            self.assertEqual(item["tags"], {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}]}}})

    def test_when_the_table_is_scanned_then_items_come_in_key_order(self):
        ids = [i["id"]["S"] for i in self.db.scan(TableName="t")["Items"]]
        self.assertEqual(ids, sorted([r[0] for r in self.rows] + ["other"]))


class VersionListingTest(unittest.TestCase):
    """Versions list as before, without copying any object's bytes."""

    def setUp(self):
        self.s3 = mocked_client(self, moto_launcher.patch_version_listing, "s3")
        self.s3.create_bucket(Bucket="listing", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        self.s3.put_bucket_versioning(Bucket="listing", VersioningConfiguration={"Status": "Enabled"})
        self.first = self.s3.put_object(Bucket="listing", Key="ws/r/a", Body=b"one")["VersionId"]
        self.second = self.s3.put_object(Bucket="listing", Key="ws/r/a", Body=b"second")["VersionId"]
        self.s3.put_object(Bucket="listing", Key="ws/r/b", Body=b"bee")
        self.s3.delete_object(Bucket="listing", Key="ws/r/b")
        self.s3.put_object(Bucket="listing", Key="other/c", Body=b"c")

    def listing(self):
        out = self.s3.list_object_versions(Bucket="listing", Prefix="ws/r/")
        versions = [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"], v["ETag"]) for v in out["Versions"]]
        markers = [(m["Key"], m["IsLatest"]) for m in out["DeleteMarkers"]]
        return versions, markers

    def test_when_versions_are_listed_then_each_is_named_and_no_bytes_are_copied(self):
        import hashlib
        from unittest import mock

        from moto.s3.models import FakeKey

        with mock.patch.object(FakeKey, "__getstate__", side_effect=AssertionError("bytes copied")):
            versions, markers = self.listing()
        md5 = lambda b: f'"{hashlib.md5(b).hexdigest()}"'  # noqa: E731
        self.assertIn(("ws/r/a", self.second, True, 6, md5(b"second")), versions)
        self.assertIn(("ws/r/a", self.first, False, 3, md5(b"one")), versions)
        self.assertEqual([v[0] for v in versions].count("ws/r/b"), 1)
        self.assertEqual(markers, [("ws/r/b", True)])
        self.assertNotIn("other/c", [v[0] for v in versions])
        # The objects themselves are untouched.
        self.assertEqual(self.s3.get_object(Bucket="listing", Key="ws/r/a")["Body"].read(), b"second")
        old = self.s3.get_object(Bucket="listing", Key="ws/r/a", VersionId=self.first)
        self.assertEqual(old["Body"].read(), b"one")
        self.assertEqual(self.listing(), (versions, markers))

    def test_when_anything_else_is_deep_copied_then_it_is_a_real_copy(self):
        from moto.s3 import models

        original = {"k": [1, 2]}
        copied = models.copy.deepcopy(original)
        self.assertEqual(copied, original)
        self.assertIsNot(copied["k"], original["k"])
