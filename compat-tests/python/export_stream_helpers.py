"""Shared fixtures and helpers of the journal export (S3) and stream (Kinesis) compat tests
(`test_export_s3.py`, `test_stream_kinesis.py`); not a test module.

- `moto`: one moto server (S3 + Kinesis) per test module; `job_server`: a private qldb-local
  pointed at it, with the AWS SDK environment the server's S3/Kinesis clients need.
- `s3_client` / `kinesis_client`: boto3 clients on moto; `new_bucket` / `new_kinesis_stream`.
- `wait_until`: every wait in these tests is a poll with a deadline.
- `write_history`: a mixed journal (several tables, inserts, updates, deletes, a multi-table
  transaction, rich Ion types, REDACT_REVISION), returning what was written.
- `journal_blocks`, `committed_revisions`: the journal as GetBlock and `history()` show it,
  the reference the exported / streamed copies are compared with.
- `KinesisReader` / `user_records`: reads a Kinesis stream from TRIM_HORIZON and de-aggregates
  with PyPI aws-kinesis-agg, as AWS's own stream consumers do.
- `check_chain`: the hash-chain validation of exported blocks (journal_verifier.check_block per
  block plus prev.blockHash == cur.previousBlockHash).
"""

import base64
import contextlib
import math
import os
import pathlib
import socket
import sys
import threading
import time
import uuid

import pytest
from amazon.ion import simpleion
from aws_kinesis_agg.deaggregator import deaggregate_records
from botocore.config import Config

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from moto_harness import MotoServer  # noqa: E402
from qldb_harness import REGION, Server, free_port  # noqa: E402

from conftest import make_client  # noqa: E402
from journal_verifier import H, check_block, dot  # noqa: E402
from qldb_session_helpers import make_driver, run  # noqa: E402

# What the server's AWS SDK clients need (the standard credential chain and region; no IMDS).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Endpoint variables the test runner's own environment might carry; the servers get exactly
# what each test gives them.
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KINESIS", "AWS_PROFILE")

ROLE_ARN = "arn:aws:iam::123456789012:role/QLDBJournalWriter"
MOTO_ACCOUNT = "123456789012"
KPL_MAGIC = b"\xf3\x89\x9a\xc2"
IVM = b"\xe0\x01\x00\xea"
NO_ENCRYPTION = {"ObjectEncryptionType": "NO_ENCRYPTION"}


# ---------------------------------------------------------------- servers

@pytest.fixture(scope="module")
def moto():
    """One moto server (S3 and Kinesis) for the whole test module."""
    m = MotoServer().start()
    yield m
    m.stop()




def job_server(moto=None, extra_args=(), env=None, s3=True, kinesis=True, data_dir=None):
    """A started qldb-local (not yet closed) with --s3-endpoint / --kinesis-endpoint on `moto`
    and short stream timers. The caller closes it (use `running_job_server` for a `with`)."""
    args = ["--max-ledgers", "100", "--stream-retry-ms", "200", "--stream-poll-ms", "50"]
    if moto is not None and s3:
        args += ["--s3-endpoint", moto.endpoint]
    if moto is not None and kinesis:
        args += ["--kinesis-endpoint", moto.endpoint]
    args += list(extra_args)
    s = Server(data_dir=data_dir, extra_args=args, env={**AWS_ENV, **(env or {})})
    for k in _ENDPOINT_VARS:
        if k not in (env or {}):
            s.env.pop(k, None)
    return s.start()


@contextlib.contextmanager
def running_job_server(moto=None, extra_args=(), env=None, s3=True, kinesis=True):
    s = job_server(moto, extra_args, env, s3, kinesis)
    try:
        yield s
    finally:
        s.close()


def full_log(server):
    """The whole log of a server (Server.log() keeps only the tail)."""
    return pathlib.Path(server.log_path).read_text(errors="replace")


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


class BlackHole:
    """A loopback TCP server that accepts connections and never answers: requests to it hang."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def close(self):
        self._stop.set()
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


# ---------------------------------------------------------------- AWS clients on moto

def s3_client(moto):
    return make_client(moto.endpoint, service="s3",
                       config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))


def kinesis_client(moto):
    return make_client(moto.endpoint, service="kinesis", config=Config(retries={"max_attempts": 2}))


def qldb_client(server, validate=True):
    """boto3 `qldb` on a server; validate=False turns off botocore's client-side checks so that
    out-of-model input reaches the server."""
    return make_client(server.endpoint, config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                                      parameter_validation=validate))


def new_bucket(s3):
    name = "qldb-export-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    return name


def kinesis_arn(name):
    return f"arn:aws:kinesis:{REGION}:{MOTO_ACCOUNT}:stream/{name}"


def new_kinesis_stream(kin, name=None, create=True):
    """A fresh Kinesis stream (1 shard) in moto; returns (name, arn). create=False only names one."""
    name = name or "qldb-stream-" + uuid.uuid4().hex[:12]
    if create:
        kin.create_stream(StreamName=name, ShardCount=1)
        wait_until(lambda: kin.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE",
                   10, f"Kinesis stream {name} ACTIVE")
        arn = kin.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
        assert arn == kinesis_arn(name), arn
    return name, kinesis_arn(name)


def s3_keys(s3, bucket, prefix=""):
    keys, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **kw)
        keys += [o["Key"] for o in r.get("Contents", [])]
        token = r.get("NextContinuationToken")
        if not token:
            return keys


def s3_get(s3, bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


# ---------------------------------------------------------------- waiting

def wait_until(fn, timeout, what, interval=0.05):
    """Polls fn() until it returns something truthy; returns it. Fails after `timeout` seconds
    with `what` (a string or a callable giving one, e.g. with the last state and the server log)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what() if callable(what) else what}")
        time.sleep(interval)


def wait_past_second(t):
    """Waits (until a wall-clock deadline) for the first whole second strictly after `t` and
    returns it: botocore sends rest-json timestamps as whole epoch seconds, so this is the
    earliest ExclusiveEndTime that covers everything up to `t`."""
    target = math.floor(t) + 1
    while time.time() < target:
        time.sleep(min(0.05, max(0.0, target - time.time())))
    return target


def export_status(q, ledger, export_id):
    return q.describe_journal_s3_export(Name=ledger, ExportId=export_id)["ExportDescription"]


def wait_export(q, ledger, export_id, server=None, timeout=30):
    """Polls DescribeJournalS3Export until the export leaves IN_PROGRESS; returns its description."""
    last = {}

    def done():
        last["d"] = export_status(q, ledger, export_id)
        return last["d"]["Status"] != "IN_PROGRESS"

    wait_until(done, timeout, lambda: f"export {export_id} to finish; last {last.get('d')}; "
                                      f"log: {server.log() if server else ''}")
    return last["d"]


def stream_status(q, ledger, stream_id):
    return q.describe_journal_kinesis_stream(LedgerName=ledger, StreamId=stream_id)["Stream"]


def wait_stream(q, ledger, stream_id, want, server=None, timeout=30):
    """Polls DescribeJournalKinesisStream until `want(description)` holds; returns it."""
    last = {}

    def ok():
        last["d"] = stream_status(q, ledger, stream_id)
        return want(last["d"])

    wait_until(ok, timeout, lambda: f"stream {stream_id}: last {last.get('d')}; "
                                    f"log: {server.log() if server else ''}")
    return last["d"]


# ---------------------------------------------------------------- the journal written

def ion(text):
    return simpleion.loads(text)


RICH_DOC = ('{name:"rich", price:12.50, at:2020-01-02T03:04:05.678Z, photo:{{3q2+7w==}}, kind:sym, '
            'tags:["a","b"], nested:{x:1, y:null}}')

# Values whose JSON down-conversion the spec fixes (§5.2): nan/inf -> null, sexp -> array,
# annotations dropped, symbols -> strings, decimals and big ints -> numbers, typed nulls -> null.
# A string with a newline must not break the one-block-per-line text formats; user timestamps keep
# their Ion text form (precision and offset) in JSON.
EDGE_DOC = ('{f:nan, g:+inf, h:-inf, s:(a 1 "b"), an:ann::5, dec:1.5d-3, n:null.int, '
            'big:123456789012345678901234567890, e:[], st:{}, '
            r'txt:"line1\nline2 \"q\" \u00e9", ts1:2020T, ts2:2020-01-02T03:04:05.678+05:30}')


class History:
    """What `write_history` wrote: tables {name: tableId}, document ids by role, the deleted and
    redacted revisions, and the number of revisions written per document."""

    def __init__(self):
        self.tables = {}
        self.versions = {}  # doc id -> number of revisions written
        self.deleted = set()  # (doc id, version) of deletes
        self.redacted = None  # (doc id, version, tableId)
        self.rich = None  # id of the RICH_DOC document
        self.edge = None  # id of the EDGE_DOC document
        self.last_write = 0.0


def _insert(d, h, table, docs):
    rows = run(d, f"INSERT INTO {table} ?", docs)
    ids = [r["documentId"] for r in rows]
    for i in ids:
        h.versions[i] = 1
    return ids


def _bump(h, doc_id, delete=False):
    if delete:
        h.deleted.add((doc_id, h.versions[doc_id]))
    h.versions[doc_id] += 1


def table_ids(d):
    rows = run(d, "SELECT name, tableId FROM information_schema.user_tables")
    return {r["name"]: r["tableId"] for r in rows}


def write_history(server, ledger, redact=True):
    """A mixed journal on `ledger`: three tables, inserts, updates, deletes, a transaction over
    two tables, an insert+update of one document in one transaction, a document with rich Ion
    types, and (redact=True) a REDACT_REVISION of an old revision. Returns a History."""
    h = History()
    d = make_driver(server, ledger)
    try:
        run(d, "CREATE TABLE Cars")
        d.execute_lambda(lambda t: (t.execute_statement("CREATE TABLE People"),
                                    t.execute_statement("CREATE TABLE Logs")))
        cars = _insert(d, h, "Cars", [{"vin": f"V{i}", "price": i * 1000} for i in range(3)])
        people = _insert(d, h, "People", [{"name": "ann", "ssn": "111"}, {"name": "bob", "ssn": "222"}])
        h.rich = _insert(d, h, "Logs", ion(RICH_DOC))[0]
        h.edge = _insert(d, h, "Logs", ion(EDGE_DOC))[0]
        # One transaction writing two tables.

        def two_tables(t):
            t.execute_statement("UPDATE Cars AS c SET c.price = 1500 WHERE c.vin = 'V1'")
            return list(t.execute_statement("INSERT INTO People ?", {"name": "cyd", "ssn": "333"}))
        cyd = d.execute_lambda(two_tables)[0]["documentId"]
        h.versions[cyd] = 1
        _bump(h, cars[1])
        run(d, "UPDATE People AS p SET p.ssn = 'xxx' WHERE p.name = 'ann'")
        _bump(h, people[0])
        run(d, "DELETE FROM Cars AS c WHERE c.vin = 'V2'")
        _bump(h, cars[2], delete=True)
        run(d, "DELETE FROM People AS p WHERE p.name = 'bob'")
        _bump(h, people[1], delete=True)

        # Insert and update of one document in one transaction: a single revision (version 0).
        def insert_update(t):
            r = list(t.execute_statement("INSERT INTO Logs ?", {"name": "once", "n": 1}))
            t.execute_statement("UPDATE Logs AS l SET l.n = 2 WHERE l.name = 'once'")
            return r
        once = d.execute_lambda(insert_update)[0]["documentId"]
        h.versions[once] = 1
        h.tables = table_ids(d)
        if redact:
            # Redact ann's version 0 (version 1 exists, so it is not the live revision).
            v0 = run(d, "SELECT * FROM history(People) AS h WHERE h.metadata.id = ? AND h.metadata.version = 0",
                     people[0])[0]
            out = run(d, "EXEC REDACT_REVISION ?, ?, ?", v0["blockAddress"], h.tables["People"], people[0])
            assert out[0]["documentId"] == people[0] and out[0]["version"] == 0, out
            h.redacted = (people[0], 0, h.tables["People"])
        h.last_write = time.time()
    finally:
        d.close()
    return h


def committed_revisions(server, ledger, tables):
    """Every committed revision of `tables` as `history()` shows it: {(id, version): (table, rev)}."""
    d = make_driver(server, ledger)
    try:
        out = {}
        for t in tables:
            for r in run(d, f"SELECT * FROM history({t})"):
                out[(r["metadata"]["id"], r["metadata"]["version"])] = (t, r)
        return out
    finally:
        d.close()


def address(strand, seq):
    return {"IonText": '{strandId:"%s",sequenceNo:%d}' % (strand, seq)}


def journal_blocks(q, ledger, max_text=None):
    """Every block of the ledger via GetDigest + GetBlock, as parsed Ion: (strandId, [blocks]).
    With max_text, a block whose Ion text is longer is None (not parsed)."""
    tip = simpleion.loads(q.get_digest(Name=ledger)["DigestTipAddress"]["IonText"])
    strand = tip["strandId"]
    blocks = []
    for s in range(tip["sequenceNo"] + 1):
        text = q.get_block(Name=ledger, BlockAddress=address(strand, s))["Block"]["IonText"]
        blocks.append(None if max_text is not None and len(text) > max_text else simpleion.loads(text))
    return strand, blocks


def epoch_ms(ts):
    """An Ion timestamp (a datetime) or a botocore datetime -> epoch milliseconds."""
    return round(ts.timestamp() * 1000)


def check_revision_hashes(block):
    """Beyond check_block: a redacted revision's hash is dot(H(metadata), dataHash)."""
    for r in block.get("revisions", []):
        if "dataHash" in r:
            assert "data" not in r
            assert bytes(r["hash"]) == dot(H(r["metadata"]), bytes(r["dataHash"])), \
                f"block {block['blockAddress']['sequenceNo']}: redacted revision hash does not verify"


def check_chain(blocks):
    """Validates exported blocks as AWS's ValidateQldbHashChain (and the Java verifyBlockHash)
    does: each block's own hashes, and prev.blockHash == cur.previousBlockHash,
    dot(cur.entriesHash, prev.blockHash) == cur.blockHash across consecutive blocks."""
    prev = None
    for b in blocks:
        check_block(b, prev)
        check_revision_hashes(b)
        if prev is not None:
            assert bytes(b["previousBlockHash"]) == prev
            assert dot(bytes(b["entriesHash"]), prev) == bytes(b["blockHash"])
        prev = bytes(b["blockHash"])


# ---------------------------------------------------------------- Kinesis

class KinesisReader:
    """Reads every shard of a Kinesis stream from TRIM_HORIZON, keeping its place between polls."""

    def __init__(self, kin, stream_name):
        self.kin = kin
        self.name = stream_name
        self.iterators = {}
        self.raw = []  # every raw Kinesis record read so far, in shard order
        for shard in kin.list_shards(StreamName=stream_name)["Shards"]:
            self.iterators[shard["ShardId"]] = kin.get_shard_iterator(
                StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def poll(self):
        new = []
        for shard, it in list(self.iterators.items()):
            while it:
                r = self.kin.get_records(ShardIterator=it, Limit=10000)
                new += r["Records"]
                it = r.get("NextShardIterator")
                if not r["Records"]:
                    break
            self.iterators[shard] = it
        self.raw += new
        return new

    def records(self):
        return user_records(self.raw)

    def wait_for(self, pred, timeout, what):
        """Polls until pred(user records so far) is truthy; returns the user records."""
        def ok():
            self.poll()
            recs = self.records()
            return recs if pred(recs) else None
        return wait_until(ok, timeout, what, interval=0.1)


class UserRecord:
    def __init__(self, partition_key, data):
        self.partition_key = partition_key
        self.data = data
        assert data.startswith(IVM), f"a stream user record must be one Ion binary value: {data[:16]!r}"
        self.value = simpleion.loads(data)
        self.type = self.value["recordType"]
        self.payload = self.value["payload"]

    def __repr__(self):
        return f"UserRecord({self.type}, {self.partition_key})"


def user_records(raw):
    """De-aggregates raw boto3 Kinesis records with aws_kinesis_agg (Lambda-event shape)."""
    events = [{"kinesis": {"data": base64.b64encode(r["Data"]).decode(), "partitionKey": r["PartitionKey"],
                           "sequenceNumber": r["SequenceNumber"], "kinesisSchemaVersion": "1.0",
                           "approximateArrivalTimestamp": 1.0}} for r in raw]
    out = []
    for e in deaggregate_records(events):
        out.append(UserRecord(e["kinesis"]["partitionKey"], base64.b64decode(e["kinesis"]["data"])))
    return out


def control_types(recs):
    return [str(r.payload["controlRecordType"]) for r in recs if r.type == "CONTROL"]


def summaries_by_seq(recs):
    """{sequenceNo: [BLOCK_SUMMARY payloads]} (duplicates kept: delivery is at least once)."""
    out = {}
    for r in recs:
        if r.type == "BLOCK_SUMMARY":
            out.setdefault(r.payload["blockAddress"]["sequenceNo"], []).append(r)
    return out


def details_by_revision(recs):
    """{(documentId, version): [REVISION_DETAILS records]}."""
    out = {}
    for r in recs:
        if r.type == "REVISION_DETAILS":
            m = r.payload["revision"]["metadata"]
            out.setdefault((str(m["id"]), int(m["version"])), []).append(r)
    return out


def start_stream(q, ledger, kinesis_stream_arn, name=None, start=None, end=None, aggregation=None, tags=None):
    kw = {}
    if end is not None:
        kw["ExclusiveEndTime"] = end
    if tags is not None:
        kw["Tags"] = tags
    conf = {"StreamArn": kinesis_stream_arn}
    if aggregation is not None:
        conf["AggregationEnabled"] = aggregation
    return q.stream_journal_to_kinesis(
        LedgerName=ledger, RoleArn=ROLE_ARN, InclusiveStartTime=start if start is not None else time.time() - 3600,
        KinesisConfiguration=conf, StreamName=name or "s" + uuid.uuid4().hex[:12], **kw)["StreamId"]
