"""moto's server, with Step Functions' context-object times as AWS writes them and DynamoDB
transactions that cannot erase other writes.

    python -m egress_local.moto_launcher -H 127.0.0.1 -p 4566

AWS gives `$$.State.EnteredTime` as ISO-8601 in UTC with milliseconds and `Z`
(`2026-12-01T20:07:43.123Z`); moto's interpreter writes Python's `isoformat()` with
microseconds and `+00:00`. The state machine stores that value as `updated_dt`, which the web
app shows, so without this the local stack would show dates that AWS never produces.

moto runs a `TransactWriteItems` by deep-copying every table it touches and, if any of its
conditions fails, putting those copies back. moto's server serves requests on many threads, so
a write another thread made in between (a `PutItem`, an `UpdateItem`, another transaction) is
silently undone by the restore, something DynamoDB never does. `make chaos` found an audit
event lost that way: written, acknowledged, then erased by a concurrent transaction refused
on its once-marker. Here every DynamoDB write of the backend takes one lock, so a transaction
and its restore are atomic with respect to the other writes, as DynamoDB's are. And the
backup is of the transaction's own items, not of whole tables (`patch_item_rollback`).

moto's `ListMultipartUploads` says every upload was initiated on 2010-11-10, so the sweep,
which aborts uploads open longer than a threshold, aborted uploads the archive had opened a
moment before (the CI failure of 2026-12-02). And an `UploadPart` to an aborted upload is a
500 from a `KeyError` in moto where S3 answers 404 `NoSuchUpload`. Here each upload lists the
time it was created, and parts sent to an upload that is gone get `NoSuchUpload`.

moto's server finds the service of every request anew, under one lock for all its threads:
it lists its own package directory (a `stat` per entry, about 160) and then matches the host
against several hundred URL patterns, twice when the host is its own address, as it always
is here. That cost a few milliseconds per request, serialised, which the benchmarks and the
load suite then measured as S3's and DynamoDB's time. Here the directory is listed once and
each host's service is remembered (`patch_backend_lookup`): what the lookup answers does not
change while the server runs. Its answers go out with TCP_NODELAY, as the router's do, and
only the calls it refused or failed are logged (`patch_request_log`).

Two of moto's costs grew with the data and were measured by the benchmarks as AWS's: a
`ListObjectVersions` deep-copied every version in the bucket with its bytes
(`patch_version_listing`), and a `Query` sorted the whole table twice by comparisons that
recompute every value (`patch_query_speed`). Both now answer exactly as before (the tests run
them against plain moto too) at a cost that follows what they return. And a ranged
`GetObject` read the whole object for each range: the object read last is kept, so its
ranges read it once (`patch_repeated_reads`). Nothing else of moto changes.
"""

from __future__ import annotations

import copy
import datetime
import functools
import sys
import threading
import types


class AwsTimestamp(datetime.datetime):
    """A datetime whose default `isoformat()` is the one Step Functions uses."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        if timespec != "auto" or self.tzinfo is None:
            return super().isoformat(sep, timespec)
        utc = self.astimezone(datetime.timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def aws_isoformat(value: datetime.datetime) -> str:
    """`value` as Step Functions writes a context-object time."""
    return AwsTimestamp.fromtimestamp(value.timestamp(), tz=datetime.timezone.utc).isoformat()


def patch_entered_time() -> None:
    """Makes the interpreter's `EnteredTime` (its only `isoformat()` call) AWS-shaped."""
    from moto.stepfunctions.parser.asl.component.state import state

    state.datetime = types.SimpleNamespace(datetime=AwsTimestamp, timezone=datetime.timezone)


#: The DynamoDB backend's writes; a transaction calls some of them itself (a reentrant lock).
SERIALISED_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def transaction_keys(backend, transact_items) -> list[tuple[str, dict]]:
    """The (table, key) of every item a `TransactWriteItems` names, in order."""
    keys = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            try:
                if op_type == "Put":
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
            except (KeyError, TypeError):
                continue  # moto's own validation names what is wrong
            keys.append((table.name, key))
    return keys


def patch_item_rollback() -> None:
    """Rolls a failed transaction back item by item instead of table by table.

    moto backs up every table a transaction touches with `copy.deepcopy` before it starts, so
    each transaction costs time and memory in proportion to the whole table: under `make load`
    the audit table's thousands of items were copied for every audit event, moto's memory grew
    by half a GiB a minute until the kernel killed it, and every call queued behind the copies.
    Here moto's table backup is skipped and the items the transaction names are saved instead
    (as DynamoDB JSON) and put back, or deleted if they did not exist, when it fails. Writes are
    serialised (below), so nothing else can change those items in between.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items
    models.copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo)
    )

    def transact_write_items(self, transact_items):
        saved = []
        for table_name, key in transaction_keys(self, transact_items):
            try:
                current = self.get_item(table_name, key)
            except Exception:  # an invalid key: the transaction itself reports it
                continue
            saved.append((table_name, key, None if current is None else current.to_json()["Attributes"]))
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(saved):
                if attributes is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise

    models.DynamoDBBackend.transact_write_items = functools.wraps(original)(transact_write_items)


def patch_transaction_isolation() -> None:
    """Makes moto's DynamoDB writes mutually exclusive (see the module's documentation), and
    rolls failed transactions back by item (`patch_item_rollback`)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "_egress_serialised", False):
        return
    patch_item_rollback()
    lock = threading.RLock()
    for name in SERIALISED_WRITES:
        original = getattr(DynamoDBBackend, name)

        def serialised(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(serialised))
    DynamoDBBackend._egress_serialised = True


def patch_multipart_uploads() -> None:
    """Gives uploads their real `Initiated` time and S3's `NoSuchUpload` (see above)."""
    from moto.s3.exceptions import NoSuchUpload
    from moto.s3.models import FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    if getattr(FakeMultipart, "_egress_initiated", False):
        return
    create = FakeMultipart.__init__

    def created(self, *args, **kwargs):
        create(self, *args, **kwargs)
        self.egress_initiated = aws_isoformat(datetime.datetime.now(datetime.timezone.utc))

    FakeMultipart.__init__ = functools.wraps(create)(created)

    for name in ("upload_part", "upload_part_copy"):
        original = getattr(S3Backend, name)

        def to_open_upload(self, bucket_name, multipart_id, *args, _original=original, **kwargs):
            if multipart_id not in self.get_bucket(bucket_name).multiparts:
                raise NoSuchUpload(upload_id=multipart_id)
            return _original(self, bucket_name, multipart_id, *args, **kwargs)

        setattr(S3Backend, name, functools.wraps(original)(to_open_upload))

    list_uploads = S3Response.list_multipart_uploads

    def listed(self):
        serialize = self.serialized

        def with_initiated(action_result):
            open_uploads = self.backend.list_multipart_uploads(self.bucket_name)
            for upload in action_result.result.get("Uploads", []):
                found = open_uploads.get(upload["UploadId"])
                if found is not None:
                    upload["Initiated"] = getattr(found, "egress_initiated", upload["Initiated"])
            return serialize(action_result)

        self.serialized = with_initiated
        try:
            return list_uploads(self)
        finally:
            del self.serialized

    S3Response.list_multipart_uploads = functools.wraps(list_uploads)(listed)
    FakeMultipart._egress_initiated = True


def patch_backend_lookup() -> None:
    """Lists moto's services once and remembers each host's (see the module's documentation)."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(DomainDispatcherApplication, "_egress_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = functools.wraps(backends.list_of_moto_modules)(
        lambda: modules
    )
    lookup = DomainDispatcherApplication.get_backend_for_host

    def remembered(self, host):
        known = self.__dict__.setdefault("_egress_backend_by_host", {})
        if host not in known:
            known[host] = lookup(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = functools.wraps(lookup)(remembered)
    DomainDispatcherApplication._egress_cached = True
    # A client kept alive (the benchmarks' bare-moto mode) would wait up to 40 ms for each
    # answer's body behind Nagle's algorithm (see the router's `Handler`).
    from werkzeug.serving import WSGIRequestHandler

    WSGIRequestHandler.disable_nagle_algorithm = True


def while_flagged(method, flag: threading.local):
    """`method`, with `flag.now` true on the calling thread while it runs."""

    @functools.wraps(method)
    def flagged(self, *args, **kwargs):
        flag.now = True
        try:
            return method(self, *args, **kwargs)
        finally:
            flag.now = False

    return flagged


def patch_query_speed() -> None:
    """The costs of moto's `Query` on a large table, each removed without changing an answer.

    - It sorts a GSI query's matches with a key of `DynamoType`s, whose every comparison
      recomputes both values (a `Decimal` for a number) for `==` and then `<`; and every query
      first lists all items sorted the same way. `listRequests`' default page at 100,000
      requests sorted all 100,000 twice (`by-requested-dt` has one partition). Here each
      item's key values are computed once per sort. The order is the same: a key attribute
      has one type, and its values compare as moto's `cast_value`s do.
    - Every query then lists all items sorted by key, which a query never needs (it filters
      them, then sorts its matches by a key that is unique per item); here a query's listing
      is not sorted, a scan's still is. And an equality of two strings (the hash-key test
      on every item of the table) went through that recomputation too; it compares them.
    - It projects an index's `INCLUDE` attributes by converting the whole item to plain JSON
      once per attribute. Here once per item, when every attribute is a top-level name (as
      an index's are): such a projection only copies references, so sharing the conversion
      changes nothing.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_egress_fast_query", False):
        return

    def sorted_items(self, hash_key_attrs, range_key_attrs, items):
        attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda item: tuple(item.attrs[a].cast_value for a in attrs))
        return items

    querying = threading.local()

    def all_items(self):
        items = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        if getattr(querying, "now", False):
            return items
        return sorted(
            items,
            key=lambda x: (x.hash_key.cast_value, x.range_key.cast_value)
            if x.range_key
            else x.hash_key.cast_value,
        )

    eq, ne = DynamoType.__eq__, DynamoType.__ne__

    def string_eq(self, other):
        if self.type == "S" and getattr(other, "type", None) == "S":
            return self.value == other.value
        return eq(self, other)

    def string_ne(self, other):
        if self.type == "S" and getattr(other, "type", None) == "S":
            return self.value != other.value
        return ne(self, other)

    project = Item.project

    def project_once(self, projection_expressions):
        if not all(
            len(expr) == 1 and "[" not in expr[0] and "." not in expr[0]
            for expr in projection_expressions
        ):
            return project(self, projection_expressions)
        from botocore.utils import merge_dicts
        from moto.dynamodb.models.dynamo_type import serializer
        from moto.dynamodb.models.utilities import find_nested_key

        plain = self.to_regular_json()
        result = {}
        for expr in projection_expressions:
            merge_dicts(result, find_nested_key(expr, plain))
        return Item(
            hash_key=self.hash_key,
            range_key=self.range_key,
            attrs=serializer.serialize(result)["M"],
        )

    Table.sorted_items = functools.wraps(Table.sorted_items)(sorted_items)
    Table.all_items = functools.wraps(Table.all_items)(all_items)
    Table.query = while_flagged(Table.query, querying)
    DynamoType.__eq__ = functools.wraps(eq)(string_eq)
    DynamoType.__ne__ = functools.wraps(ne)(string_ne)
    Item.project = functools.wraps(project)(project_once)
    Table._egress_fast_query = True


def patch_version_listing() -> None:
    """Lists object versions without copying their bytes.

    moto's `ListObjectVersions` deep-copies every version of every key in the bucket (to mark
    the latest on the copy), whatever the prefix, and a key's deep copy reads and rewrites all
    its data. The archive step's clean-up lists a request's staged files: at 1 GiB staged,
    each listing copied the whole GiB (4.5 s for the two). Here the copies made during a
    listing share the version's data, which the listing only reads; everything else is
    copied as before."""
    from moto.s3 import models

    if getattr(models.S3Backend, "_egress_light_listing", False):
        return
    real_copy = models.copy
    listing = threading.local()

    class ListedKey(models.FakeKey):
        """A listed version sharing its key's data: dropping it must not close that data."""

        __module__ = "moto.s3.models"  # moto files its model classes by service

        def dispose(self, garbage: bool = False) -> None:
            self.disposed = True

        def __del__(self) -> None:
            pass

    def light(version):
        kind = ListedKey if isinstance(version, models.FakeKey) else type(version)
        twin = object.__new__(kind)
        twin.__dict__.update(version.__dict__)
        return twin

    class CopyDuringListing(types.ModuleType):
        def __getattr__(self, name):
            return getattr(real_copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            versions = (models.FakeKey, models.FakeDeleteMarker)
            if (
                getattr(listing, "now", False)
                and isinstance(value, list)
                and all(isinstance(v, versions) for v in value)
            ):
                return [light(v) for v in value]
            return real_copy.deepcopy(value, memo)

    models.copy = CopyDuringListing("copy")
    models.S3Backend.list_object_versions = while_flagged(
        models.S3Backend.list_object_versions, listing
    )
    models.S3Backend._egress_light_listing = True


#: Largest object whose bytes are kept after a read (`patch_repeated_reads`).
KEPT_READ_BYTES = 512 * 1024 * 1024


def patch_repeated_reads() -> None:
    """Keeps the bytes of the object read last, so its ranges do not each read it whole.

    moto answers a ranged `GetObject` by reading the whole object out of its buffer and then
    slicing the range: the output checks read a 256 MiB file in 32 ranges of 8 MiB, which
    cost moto 32 reads of 256 MiB (8 GiB of copying) where S3 reads 256 MiB. Here the bytes of
    the last object read (up to `KEPT_READ_BYTES`) are kept with the object's write count, and
    a read of the same object, not written since, gets them again: the same bytes, read once.
    A write (moto replaces an object's bytes only through its `value` setter) counts up first,
    so a read that raced it is never kept as current."""
    import weakref

    from moto.s3.models import FakeKey

    if getattr(FakeKey, "_egress_kept_reads", False):
        return
    read_whole = FakeKey.value.fget
    write_whole = FakeKey.value.fset
    lock = threading.Lock()
    kept: dict = {"key": None, "writes": -1, "bytes": b""}

    loading: dict = {}  # id of an object being read -> set once its bytes are kept

    def read(self):
        # One read per object at a time: the ranges of one file arrive together, and each
        # would otherwise miss and read the whole object before the first is kept.
        while True:
            with lock:
                writes = self.__dict__.get("_egress_writes", 0)
                holder = kept["key"]
                if holder is not None and holder() is self and kept["writes"] == writes:
                    return kept["bytes"]
                other = loading.get(id(self))
                if other is None:
                    mine = loading[id(self)] = threading.Event()
                    break
            other.wait()
        try:
            value = read_whole(self)
            if len(value) <= KEPT_READ_BYTES:
                with lock:
                    kept.update(key=weakref.ref(self), writes=writes, bytes=value)
            return value
        finally:
            with lock:
                del loading[id(self)]
            mine.set()

    def write(self, new_value):
        with lock:
            self.__dict__["_egress_writes"] = self.__dict__.get("_egress_writes", 0) + 1
            holder = kept["key"]
            if holder is not None and holder() is self:
                kept.update(key=None, writes=-1, bytes=b"")
        write_whole(self, new_value)

    FakeKey.value = property(read, write)
    FakeKey._egress_kept_reads = True


def patch_request_log() -> None:
    """Logs the calls moto refused or failed (4xx, 5xx), not every call: a line per call went
    through one logging lock shared by all of moto's threads, a third of its time while the
    staging benchmark copied 1,000 objects. `make test-e2e` greps the 5xx lines on failure."""
    from werkzeug.serving import WSGIRequestHandler

    if getattr(WSGIRequestHandler, "_egress_quiet", False):
        return
    log_request = WSGIRequestHandler.log_request

    def refused_only(self, code="-", size="-"):
        if str(code)[:1] in ("4", "5"):
            log_request(self, code, size)

    WSGIRequestHandler.log_request = functools.wraps(log_request)(refused_only)
    WSGIRequestHandler._egress_quiet = True


def main() -> None:
    patch_entered_time()
    patch_backend_lookup()
    patch_request_log()
    patch_query_speed()
    patch_version_listing()
    patch_repeated_reads()
    patch_transaction_isolation()
    patch_multipart_uploads()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
