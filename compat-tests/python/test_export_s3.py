"""ExportJournalToS3, DescribeJournalS3Export, ListJournalS3Exports(ForLedger) against a real
S3 endpoint (moto in server mode), with boto3 1.40.60 and the pinned AWS CLI
(journal-and-verification.md §5; control-plane-and-sigv4.md "Journal export to S3").

What is exported is read back from S3 with boto3 and checked against the spec's layout
(started manifest, `{prefix}{yyyy}/{mm}/{dd}/{hh}/{strandId}.{first}-{last}.{ext}` data objects,
completed manifest), against the journal as GetBlock shows it, and with `journal_verifier`
(every block's hashes recomputed from its own Ion, and the hash chain across objects).
"""

import base64
import datetime
import json
import re
import signal
import time
import uuid

import pytest
from amazon.ion import simpleion
from botocore.exceptions import ClientError

from conftest import Cli
from export_stream_helpers import (  # noqa: F401  (moto is a fixture)
    EDGE_DOC,
    IVM,
    NO_ENCRYPTION,
    RICH_DOC,
    ROLE_ARN,
    BlackHole,
    check_chain,
    closed_port,
    committed_revisions,
    epoch_ms,
    export_status,
    full_log,
    job_server,
    journal_blocks,
    moto,
    new_bucket,
    qldb_client,
    running_job_server,
    s3_client,
    s3_get,
    s3_keys,
    wait_export,
    wait_past_second,
    wait_until,
    write_history,
)
from journal_verifier import H
from qldb_session_helpers import create_ledger, fill, make_driver, run
from qldb_test_utils import expect_error, raw

ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")
JSON_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
B64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
# The export processor's check on a data object key, and its multi-export manifest name rule.
PROCESSOR_KEY_RE = re.compile(r"^.*\.[0-9]*-[0-9]*\.[a-zA-Z0-9]*$")
COMPLETED_NAME_RE = re.compile(r"^\w+\.\w+\.completed\.manifest$")


@pytest.fixture(scope="module")
def xsrv(moto):
    """A qldb-local writing exports to the module's moto."""
    s = job_server(moto)
    yield s
    s.close()


def export(q, ledger, bucket, prefix, start, end, fmt=None, encryption=None):
    kw = {"OutputFormat": fmt} if fmt else {}
    return q.export_journal_to_s3(
        Name=ledger, InclusiveStartTime=start, ExclusiveEndTime=end, RoleArn=ROLE_ARN,
        S3ExportConfiguration={"Bucket": bucket, "Prefix": prefix,
                               "EncryptionConfiguration": encryption or NO_ENCRYPTION}, **kw)["ExportId"]


def ion_ts_text(ts):
    """An Ion millisecond UTC timestamp as the JSON down-conversion writes it."""
    ts = ts.astimezone(datetime.timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_json_ts(s):
    assert JSON_TS_RE.match(s), s
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def b64(s):
    """A base64 string (the JSON form of an Ion blob) -> bytes."""
    assert isinstance(s, str) and B64_RE.match(s), s
    return base64.b64decode(s)


def decode(body, fmt):
    """The top-level values of an exported object in `fmt` (None = ION_TEXT)."""
    if fmt == "JSON":
        text = body.decode()
        assert text.endswith("\n"), text[-50:]
        lines = text[:-1].split("\n")
        return [json.loads(line) for line in lines]
    if fmt == "ION_BINARY":
        assert body.startswith(IVM), f"ION_BINARY objects start with the Ion 1.0 IVM: {body[:8]!r}"
        return simpleion.loads(body, single_value=False)
    text = body.decode()
    assert not text.startswith("\xe0"), "ION_TEXT object is not text"
    lines = [line for line in text.split("\n") if line.strip()]
    values = simpleion.loads(text, single_value=False)
    # One top-level value per line.
    assert len(values) == len(lines), (len(values), len(lines))
    for line, v in zip(lines, values):
        assert H(simpleion.loads(line)) == H(v)
    return values


class Export:
    """An export read back from S3."""

    def __init__(self, s3, bucket, prefix, export_id, fmt, strand):
        self.fmt = fmt
        keys = set(s3_keys(s3, bucket, prefix))
        started_key = f"{prefix}{export_id}.started.manifest"
        completed_key = f"{prefix}{export_id}.{strand}.completed.manifest"
        assert started_key in keys, sorted(keys)
        assert completed_key in keys, sorted(keys)
        assert COMPLETED_NAME_RE.match(completed_key[len(prefix):]), completed_key
        [self.started] = decode(s3_get(s3, bucket, started_key), fmt)
        [completed] = decode(s3_get(s3, bucket, completed_key), fmt)
        assert set(completed) == {"keys"}, completed
        self.keys = [str(k) for k in completed["keys"]]
        # The completed manifest lists exactly the data objects, each once, as full keys.
        assert len(set(self.keys)) == len(self.keys), self.keys
        assert set(self.keys) == keys - {started_key, completed_key}, (self.keys, sorted(keys))
        ext = "json" if fmt == "JSON" else "ion"
        key_re = re.compile(re.escape(prefix) + r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/([A-Za-z0-9]{22})\.(\d+)-(\d+)\."
                            + ext + "$")
        self.objects = []  # (key, first, last, hour datetime, [blocks])
        self.blocks = []
        for key in self.keys:
            m = key_re.match(key)
            assert m, f"data object key {key!r} does not follow {{Prefix}}yyyy/mm/dd/hh/strand.first-last.{ext}"
            yyyy, mm, dd, hh, key_strand, first, last = m.groups()
            assert key_strand == strand
            # Consumers parse the range as a dot-separated piece (DMV readers: piece [1]).
            assert PROCESSOR_KEY_RE.match(key) and key.split(".")[1] == f"{first}-{last}", key
            blocks = decode(s3_get(s3, bucket, key), fmt)
            assert blocks, f"{key} is empty"
            seqs = [int(b["blockAddress"]["sequenceNo"]) for b in blocks]
            assert seqs[0] == int(first) and seqs[-1] == int(last), (key, seqs)
            assert seqs == list(range(int(first), int(last) + 1)), (key, seqs)
            hour = datetime.datetime(int(yyyy), int(mm), int(dd), int(hh), tzinfo=datetime.timezone.utc)
            for b in blocks:
                ts = parse_json_ts(b["blockTimestamp"]) if fmt == "JSON" else b["blockTimestamp"]
                # The hour directory is the blocks' UTC hour: an object never spans an hour.
                assert ts.astimezone(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0) == hour, \
                    (key, ts)
            self.objects.append((key, int(first), int(last), hour, blocks))
            self.blocks += blocks
        self.seqs = [int(b["blockAddress"]["sequenceNo"]) for b in self.blocks]


def check_description(desc, ledger, export_id, bucket, prefix, start_ms, end, fmt, before, after):
    assert desc["LedgerName"] == ledger
    assert desc["ExportId"] == export_id
    assert before - 1 <= desc["ExportCreationTime"].timestamp() <= after + 1
    assert epoch_ms(desc["InclusiveStartTime"]) == start_ms
    assert epoch_ms(desc["ExclusiveEndTime"]) == end * 1000
    assert desc["S3ExportConfiguration"] == {"Bucket": bucket, "Prefix": prefix,
                                             "EncryptionConfiguration": NO_ENCRYPTION}
    assert desc["RoleArn"] == ROLE_ARN
    if fmt is None:
        assert "OutputFormat" not in desc, desc
    else:
        assert desc["OutputFormat"] == fmt


def check_started_manifest(m, ledger, export_id, bucket, prefix, start_ms, end, fmt):
    expected = {"ledgerName", "exportId", "inclusiveStartTime", "exclusiveEndTime", "bucket", "prefix",
                "objectEncryptionType"} | ({"outputFormat"} if fmt else set())
    assert set(m) == expected, dict(m)
    assert m["ledgerName"] == ledger and m["exportId"] == export_id
    assert m["bucket"] == bucket and m["prefix"] == prefix
    assert m["objectEncryptionType"] == "NO_ENCRYPTION"
    if fmt:
        assert m["outputFormat"] == fmt
    if fmt == "JSON":
        assert epoch_ms(parse_json_ts(m["inclusiveStartTime"])) == start_ms
        assert epoch_ms(parse_json_ts(m["exclusiveEndTime"])) == end * 1000
    else:
        assert epoch_ms(m["inclusiveStartTime"]) == start_ms
        assert epoch_ms(m["exclusiveEndTime"]) == end * 1000


# ---------------------------------------------------------------- content and layout

def test_export_formats_layout_content_and_hash_chain(xsrv, moto):
    q = qldb_client(xsrv)
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    start = int(time.time()) - 120  # before the ledger exists: clamped to its creation
    ledger = create_ledger(xsrv)
    created_ms = epoch_ms(q.describe_ledger(Name=ledger)["CreationDateTime"])
    h = write_history(xsrv, ledger)
    history = committed_revisions(xsrv, ledger, h.tables)
    end = wait_past_second(time.time())
    # A block committed after ExclusiveEndTime: outside the window.
    d = make_driver(xsrv, ledger)
    run(d, "INSERT INTO Logs ?", {"name": "after-window"})
    d.close()

    strand, journal = journal_blocks(q, ledger)
    window = [b for b in journal if created_ms <= epoch_ms(b["blockTimestamp"]) < end * 1000]
    assert [b["blockAddress"]["sequenceNo"] for b in window] == list(range(len(journal) - 1)), \
        "test setup: every block but the last one is in the window"

    exports = {}
    for fmt, prefix in [("ION_TEXT", "ion-text/"), ("ION_BINARY", "ion/binary/"), ("JSON", "JournalJson/"),
                        (None, "NoSlashPrefix")]:
        before = time.time()
        eid = export(q, ledger, bucket, prefix, start, end, fmt)
        after = time.time()
        assert ID_RE.match(eid), eid
        desc = wait_export(q, ledger, eid, xsrv)
        assert desc["Status"] == "COMPLETED", (desc, xsrv.log())
        check_description(desc, ledger, eid, bucket, prefix, created_ms, end, fmt, before, after)
        e = Export(s3, bucket, prefix, eid, fmt, strand)
        check_started_manifest(e.started, ledger, eid, bucket, prefix, created_ms, end, fmt)
        # The blocks cover the window exactly: genesis (0) to the last block before ExclusiveEndTime.
        assert e.seqs == [b["blockAddress"]["sequenceNo"] for b in window], (fmt, e.seqs)
        exports[fmt] = e

    for fmt in ("ION_TEXT", "ION_BINARY", None):
        blocks = exports[fmt].blocks
        # Byte-for-byte the journal's blocks (Ion data-model equality), in their redacted form.
        for got, want in zip(blocks, window):
            assert H(got) == H(want), f"{fmt}: block {want['blockAddress']['sequenceNo']} differs from GetBlock"
        check_chain(blocks)
        revisions = {(str(r["metadata"]["id"]), int(r["metadata"]["version"])): r
                     for b in blocks for r in b.get("revisions", []) if "metadata" in r}
        assert set(revisions) == set(history), (fmt, set(history) ^ set(revisions))
        for key, (_, hrev) in history.items():
            assert H(revisions[key]) == H(hrev), f"{fmt}: revision {key} differs from history()"
        red = revisions[h.redacted[:2]]
        assert "data" not in red and len(bytes(red["dataHash"])) == 32, red
        for key in h.deleted:
            assert "data" not in revisions[key] and "dataHash" not in revisions[key], revisions[key]
        assert any("redactionInfo" in b for b in blocks)
        assert H(revisions[(h.rich, 0)]["data"]) == H(simpleion.loads(RICH_DOC))
        assert H(revisions[(h.edge, 0)]["data"]) == H(simpleion.loads(EDGE_DOC))

    # JSON: the same blocks, down-converted (timestamps and blobs as strings).
    jblocks, iblocks = exports["JSON"].blocks, exports["ION_TEXT"].blocks
    for jb, ib in zip(jblocks, iblocks):
        seq = ib["blockAddress"]["sequenceNo"]
        assert set(jb) == set(ib), (seq, set(jb) ^ set(ib))
        assert jb["blockAddress"] == {"strandId": strand, "sequenceNo": seq}
        assert jb["blockTimestamp"] == ion_ts_text(ib["blockTimestamp"]), seq
        for f in ("blockHash", "entriesHash", "previousBlockHash"):
            assert b64(jb[f]) == bytes(ib[f]), (seq, f)
        assert [b64(x) for x in jb["entriesHashList"]] == [bytes(x) for x in ib["entriesHashList"]]
        assert jb["transactionId"] == ib["transactionId"]
        if "transactionInfo" in ib:
            for js, st in zip(jb["transactionInfo"]["statements"], ib["transactionInfo"]["statements"]):
                assert js["statement"] == st["statement"]
                assert js["startTime"] == ion_ts_text(st["startTime"])
                assert b64(js["statementDigest"]) == bytes(st["statementDigest"])
        for jr, ir in zip(jb.get("revisions", []), ib.get("revisions", [])):
            assert set(jr) == set(ir), (seq, jr, ir)
            assert b64(jr["hash"]) == bytes(ir["hash"])
            if "metadata" in ir:
                assert jr["metadata"]["txTime"] == ion_ts_text(ir["metadata"]["txTime"])
                assert jr["metadata"]["id"] == ir["metadata"]["id"]
                assert jr["metadata"]["version"] == ir["metadata"]["version"]
            if "dataHash" in ir:
                assert b64(jr["dataHash"]) == bytes(ir["dataHash"])
        assert len(jb.get("revisions", [])) == len(ib.get("revisions", []))
    jrevs = {(r["metadata"]["id"], r["metadata"]["version"]): r
             for b in jblocks for r in b.get("revisions", []) if "metadata" in r}
    assert jrevs[(h.rich, 0)]["data"] == {
        "name": "rich", "price": 12.5, "at": "2020-01-02T03:04:05.678Z", "photo": "3q2+7w==", "kind": "sym",
        "tags": ["a", "b"], "nested": {"x": 1, "y": None}}
    edge = jrevs[(h.edge, 0)]["data"]
    assert edge == {"f": None, "g": None, "h": None, "s": ["a", 1, "b"], "an": 5, "dec": 0.0015, "n": None,
                    "big": 123456789012345678901234567890, "e": [], "st": {},
                    "txt": "line1\nline2 \"q\" \u00e9", "ts1": "2020T", "ts2": "2020-01-02T03:04:05.678+05:30"}, edge
    assert "data" not in jrevs[h.redacted[:2]] and isinstance(jrevs[h.redacted[:2]]["dataHash"], str)
    for key in h.deleted:
        assert "data" not in jrevs[key]


def test_export_blocks_per_object_splits_objects(moto):
    with running_job_server(moto, ["--export-blocks-per-object", "3"]) as s:
        q = qldb_client(s)
        s3 = s3_client(moto)
        bucket = new_bucket(s3)
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        run(d, "CREATE TABLE T")
        for i in range(18):
            run(d, "INSERT INTO T ?", {"n": i})
        d.close()
        end = wait_past_second(time.time())
        eid = export(q, ledger, bucket, "split/", end - 300, end, "ION_BINARY")
        assert wait_export(q, ledger, eid, s)["Status"] == "COMPLETED", s.log()
        strand, journal = journal_blocks(q, ledger)
        assert len(journal) == 20
        e = Export(s3, bucket, "split/", eid, "ION_BINARY", strand)
        assert e.seqs == list(range(20))
        assert len(e.objects) >= 7, [o[0] for o in e.objects]
        for i, (key, first, last, hour, blocks) in enumerate(e.objects):
            assert 1 <= len(blocks) <= 3, key
            if i + 1 < len(e.objects) and len(blocks) < 3:
                # A short object only where the next one starts a new UTC hour.
                assert e.objects[i + 1][3] != hour, [o[0] for o in e.objects]
        # The manifest lists the objects in block order.
        assert [o[1] for o in e.objects] == sorted(o[1] for o in e.objects)
        check_chain(e.blocks)


def test_export_window_selects_blocks_by_timestamp(xsrv, moto):
    q = qldb_client(xsrv)
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    ledger = create_ledger(xsrv)
    d = make_driver(xsrv, ledger)
    run(d, "CREATE TABLE T")
    fill(d, "T", 2)
    start = wait_past_second(time.time())
    inside = [run(d, "INSERT INTO T ?", {"n": 10 + i})[0]["documentId"] for i in range(3)]
    end = wait_past_second(time.time())
    run(d, "INSERT INTO T ?", {"n": 99})
    d.close()
    strand, journal = journal_blocks(q, ledger)
    want = [b for b in journal if start * 1000 <= epoch_ms(b["blockTimestamp"]) < end * 1000]
    assert len(want) == 3 and len(journal) == len(want) + 4
    eid = export(q, ledger, bucket, "window/", start, end, "ION_TEXT")
    desc = wait_export(q, ledger, eid, xsrv)
    assert desc["Status"] == "COMPLETED", xsrv.log()
    assert epoch_ms(desc["InclusiveStartTime"]) == start * 1000  # after creation: not clamped
    e = Export(s3, bucket, "window/", eid, "ION_TEXT", strand)
    check_started_manifest(e.started, ledger, eid, bucket, "window/", start * 1000, end, "ION_TEXT")
    assert e.seqs == [b["blockAddress"]["sequenceNo"] for b in want]
    assert [str(b["revisions"][0]["metadata"]["id"]) for b in e.blocks] == inside
    # The chain of the exported range continues the journal's.
    prev = bytes(journal[e.seqs[0] - 1]["blockHash"])
    assert bytes(e.blocks[0]["previousBlockHash"]) == prev
    check_chain(e.blocks)

    # An empty window: an export with no data objects and `keys:[]`.
    eid = export(q, ledger, bucket, "empty/", start - 7200, start - 3600, "JSON")
    assert wait_export(q, ledger, eid, xsrv)["Status"] == "COMPLETED", xsrv.log()
    e = Export(s3, bucket, "empty/", eid, "JSON", strand)
    assert e.keys == [] and e.blocks == []


def test_export_window_entirely_before_ledger_creation(xsrv, moto):
    """A window that ends before the ledger existed. The start is clamped to the ledger's creation
    (§5.1), and start must be before end: the server must either refuse the request or keep a
    consistent window; an export whose InclusiveStartTime is after its ExclusiveEndTime is neither."""
    q = qldb_client(xsrv)
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    ledger = create_ledger(xsrv)
    now = int(time.time())
    try:
        eid = export(q, ledger, bucket, "before/", now - 7200, now - 3600)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidParameterException", e.response
        return
    desc = wait_export(q, ledger, eid, xsrv)
    assert desc["Status"] == "COMPLETED", desc
    assert desc["InclusiveStartTime"] < desc["ExclusiveEndTime"], \
        (f"InclusiveStartTime {desc['InclusiveStartTime']} is after ExclusiveEndTime {desc['ExclusiveEndTime']}")


def test_ended_exports_expire_after_the_retention(moto):
    with running_job_server(moto, ["--job-retention-hours", "0"]) as s:
        q = qldb_client(s)
        s3 = s3_client(moto)
        bucket = new_bucket(s3)
        ledger = create_ledger(s)
        end = int(time.time())
        eid = export(q, ledger, bucket, "gone/", end - 60, end)

        def expired():
            try:
                export_status(q, ledger, eid)
                return False
            except q.exceptions.ResourceNotFoundException:
                return True
        wait_until(expired, 20, lambda: f"export {eid} to end and expire; log: {s.log()}")
        # It ran to completion before it expired.
        assert f"{eid}.{journal_blocks(q, ledger)[0]}.completed.manifest" in "\n".join(s3_keys(s3, bucket, "gone/"))
        assert q.list_journal_s3_exports_for_ledger(Name=ledger)["JournalS3Exports"] == []
        assert eid not in [e["ExportId"] for e in q.list_journal_s3_exports()["JournalS3Exports"]]


# ---------------------------------------------------------------- list APIs

def collect_pages(call, **kw):
    pages, token = [], None
    while True:
        r = call(**kw, **({"NextToken": token} if token else {}))
        pages.append(r["JournalS3Exports"])
        token = r.get("NextToken")
        if not token:
            return pages
        assert len(pages) < 1000


def test_list_exports_for_ledger_and_account_with_paging(xsrv, moto):
    q = qldb_client(xsrv)
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    ledger, other = create_ledger(xsrv), create_ledger(xsrv)
    d = make_driver(xsrv, ledger)
    run(d, "CREATE TABLE T")
    d.close()
    end = int(time.time())
    start = end - 300
    ids = []
    kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for prefix, fmt, enc in [("a/", None, None), ("", "JSON", {"ObjectEncryptionType": "SSE_S3"}),  # empty prefix
                             ("c/", "ION_BINARY", {"ObjectEncryptionType": "SSE_KMS", "KmsKeyArn": kms})]:
        ids.append(export(q, ledger, bucket, prefix, start, end, fmt, enc))
        desc = wait_export(q, ledger, ids[-1], xsrv)
        assert desc["Status"] == "COMPLETED", xsrv.log()
        assert desc["S3ExportConfiguration"]["EncryptionConfiguration"] == (enc or NO_ENCRYPTION)
        started = s3.head_object(Bucket=bucket, Key=f"{prefix}{ids[-1]}.started.manifest")
        if enc is None:
            assert "ServerSideEncryption" not in started, started
        elif enc["ObjectEncryptionType"] == "SSE_S3":
            assert started["ServerSideEncryption"] == "AES256", started
        else:
            assert started["ServerSideEncryption"] == "aws:kms" and started["SSEKMSKeyId"] == kms, started
        m = decode(s3_get(s3, bucket, f"{prefix}{ids[-1]}.started.manifest"), fmt)[0]
        assert m["objectEncryptionType"] == (enc or NO_ENCRYPTION)["ObjectEncryptionType"]
    other_id = export(q, other, bucket, "other/", start, end)
    assert wait_export(q, other, other_id, xsrv)["Status"] == "COMPLETED"

    full = q.list_journal_s3_exports_for_ledger(Name=ledger)
    assert "NextToken" not in full
    listed = full["JournalS3Exports"]
    assert sorted(e["ExportId"] for e in listed) == sorted(ids)
    for e in listed:
        assert e == export_status(q, ledger, e["ExportId"])

    pages = collect_pages(q.list_journal_s3_exports_for_ledger, Name=ledger, MaxResults=1)
    assert [len(p) for p in pages] == [1, 1, 1]
    assert [p[0] for p in pages] == listed

    everything = [e for p in collect_pages(q.list_journal_s3_exports, MaxResults=100) for e in p]
    paged = [e for p in collect_pages(q.list_journal_s3_exports, MaxResults=1) for e in p]
    assert all(len(p) <= 1 for p in collect_pages(q.list_journal_s3_exports, MaxResults=1))
    assert [e["ExportId"] for e in paged] == [e["ExportId"] for e in everything]
    all_ids = [e["ExportId"] for e in everything]
    assert len(set(all_ids)) == len(all_ids)
    assert set(ids) | {other_id} <= set(all_ids)
    assert {e["LedgerName"] for e in everything if e["ExportId"] in ids} == {ledger}
    two = q.list_journal_s3_exports(MaxResults=2)
    assert len(two["JournalS3Exports"]) == 2 and two["NextToken"]

    expect_error(q.list_journal_s3_exports_for_ledger, "ResourceNotFoundException", 404, Name="no-such-ledger-x")
    raw_q = qldb_client(xsrv, validate=False)
    for call, kw in [(raw_q.list_journal_s3_exports, {}), (raw_q.list_journal_s3_exports_for_ledger, {"Name": ledger})]:
        for bad in (0, 101):
            r = expect_error(call, "InvalidParameterException", 400, MaxResults=bad, **kw)
            assert r.get("ParameterName") == "MaxResults", r
        r = expect_error(call, "InvalidParameterException", 400, NextToken="not-a-token!", **kw)
        assert r.get("ParameterName") == "NextToken", r


# ---------------------------------------------------------------- failures

def status_reason(server, ledger, export_id):
    """The unmodeled StatusReason member (boto3 drops it), read with a raw signed GET."""
    r = raw(server, "GET", f"/ledgers/{ledger}/journal-s3-exports/{export_id}")
    assert r.status == 200, r
    return r.json()["ExportDescription"]


def test_export_to_missing_bucket_is_cancelled(xsrv, moto):
    q = qldb_client(xsrv)
    ledger = create_ledger(xsrv)
    end = int(time.time())
    missing = "qldb-missing-" + uuid.uuid4().hex[:12]
    ids = []
    for _ in range(3):  # CANCELLED exports do not count against the 2-in-progress quota
        ids.append(export(q, ledger, missing, "x/", end - 60, end))
        desc = wait_export(q, ledger, ids[-1], xsrv)
        assert desc["Status"] == "CANCELLED", (desc, xsrv.log())
    body = status_reason(xsrv, ledger, ids[0])
    assert body["Status"] == "CANCELLED"
    assert "NoSuchBucket" in body["StatusReason"] and missing in body["StatusReason"], body
    # The exporter does not create buckets.
    assert missing not in [b["Name"] for b in s3_client(moto).list_buckets()["Buckets"]]


def test_export_to_unreachable_endpoint_is_cancelled(moto):
    with running_job_server(extra_args=["--s3-endpoint", f"http://127.0.0.1:{closed_port()}"]) as s:
        q = qldb_client(s)
        ledger = create_ledger(s)
        end = int(time.time())
        eid = export(q, ledger, "any-bucket", "x/", end - 60, end, "JSON")
        desc = wait_export(q, ledger, eid, s, timeout=60)
        assert desc["Status"] == "CANCELLED", (desc, s.log())
        assert status_reason(s, ledger, eid)["StatusReason"], s.log()


def test_export_resumes_after_sigkill_restart(moto):
    s = job_server(moto, ["--export-blocks-per-object", "1"])
    try:
        q = qldb_client(s)
        s3 = s3_client(moto)
        bucket = new_bucket(s3)
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        run(d, "CREATE TABLE T")
        for i in range(148):
            run(d, "INSERT INTO T ?", {"n": i})
        d.close()
        end = wait_past_second(time.time())
        total = 150
        eid = export(q, ledger, bucket, "resume/", end - 600, end, "ION_TEXT")
        wait_until(lambda: len([k for k in s3_keys(s3, bucket, "resume/") if k.endswith(".ion")]) >= 3, 30,
                   lambda: f"first data objects; log: {s.log()}", interval=0.01)
        s.stop(signal.SIGKILL)
        written = [k for k in s3_keys(s3, bucket, "resume/") if k.endswith(".ion")]
        assert len(written) < total, "test setup: the export finished before the kill"
        assert not any(k.endswith(".completed.manifest") for k in s3_keys(s3, bucket, "resume/"))
        s.start()
        desc = wait_export(q, ledger, eid, s, timeout=60)
        assert desc["Status"] == "COMPLETED", (desc, s.log())
        # It resumed from its recorded progress: past what was acknowledged before the kill
        # (at least 2 of the >= 3 objects seen), never past what S3 holds.
        m = re.search(f"resuming journal export export_id={eid} .*next_block=([0-9]+)", full_log(s))
        assert m, s.log()
        assert 2 <= int(m.group(1)) <= len(written), (m.group(0), len(written))
        strand, _ = journal_blocks(q, ledger)
        e = Export(s3, bucket, "resume/", eid, "ION_TEXT", strand)
        # Every block exactly once across the manifest's keys, each object one block.
        assert e.seqs == list(range(total)), e.seqs
        assert all(first == last for _, first, last, _, _ in e.objects)
        check_chain(e.blocks)
    finally:
        s.close()


def test_third_concurrent_export_exceeds_limit():
    hole = BlackHole()
    try:
        with running_job_server(extra_args=["--s3-endpoint", hole.endpoint]) as s:
            q = qldb_client(s)
            ledger, other = create_ledger(s), create_ledger(s)
            end = int(time.time())
            first = export(q, ledger, "stuck-bucket", "a/", end - 60, end)
            second = export(q, ledger, "stuck-bucket", "b/", end - 60, end)
            wait_until(lambda: len(hole.accepted) >= 1, 10, "the exporter to connect to S3")
            for eid in (first, second):
                assert export_status(q, ledger, eid)["Status"] == "IN_PROGRESS"
            r = expect_error(export, "LimitExceededException", 400, q=q, ledger=ledger, bucket="stuck-bucket",
                             prefix="c/", start=end - 60, end=end)
            assert "2" in r["Error"]["Message"], r
            # The quota is per ledger.
            assert ID_RE.match(export(q, other, "stuck-bucket", "d/", end - 60, end))
            # The refused export was not recorded.
            assert sorted(e["ExportId"] for e in
                          q.list_journal_s3_exports_for_ledger(Name=ledger)["JournalS3Exports"]) == sorted([first, second])
    finally:
        hole.close()


def test_export_bad_input(xsrv):
    q = qldb_client(xsrv, validate=False)
    ledger = create_ledger(xsrv)
    now = int(time.time())
    good = {"Bucket": "good-bucket", "Prefix": "p/", "EncryptionConfiguration": NO_ENCRYPTION}

    def call(s3conf=None, start=now - 60, end=now, role=ROLE_ARN, name=ledger, **kw):
        return q.export_journal_to_s3(Name=name, InclusiveStartTime=start, ExclusiveEndTime=end, RoleArn=role,
                                      S3ExportConfiguration=s3conf or good, **kw)

    def ipe(param, **kw):
        r = expect_error(call, "InvalidParameterException", 400, **kw)
        assert r.get("ParameterName") == param, r
        return r

    ipe("Bucket", s3conf={**good, "Bucket": "bad/bucket!"})
    ipe("Bucket", s3conf={**good, "Bucket": "ab"})
    ipe("Bucket", s3conf={**good, "Bucket": "b" * 256})
    ipe("Prefix", s3conf={**good, "Prefix": "p" * 129})
    ipe("KmsKeyArn", s3conf={**good, "EncryptionConfiguration": {"ObjectEncryptionType": "SSE_KMS"}})
    ipe("ObjectEncryptionType", s3conf={**good, "EncryptionConfiguration": {"ObjectEncryptionType": "AES"}})
    ipe("RoleArn", role="arn:aws:iam::123456789012:user/NotARole")
    ipe("RoleArn", role="this-is-not-an-arn-at-all")
    ipe("OutputFormat", OutputFormat="XML")
    ipe("InclusiveStartTime", start=now - 10, end=now - 20)
    ipe("InclusiveStartTime", start=now - 10, end=now - 10)
    ipe("ExclusiveEndTime", end=now + 3600)
    expect_error(call, "ResourceNotFoundException", 404, name="no-such-ledger-x")
    # Nothing was accepted.
    assert q.list_journal_s3_exports_for_ledger(Name=ledger)["JournalS3Exports"] == []

    r = expect_error(q.describe_journal_s3_export, "ResourceNotFoundException", 404,
                     Name=ledger, ExportId="A" * 22)
    assert r["Error"]["Code"] == "ResourceNotFoundException"
    r = expect_error(q.describe_journal_s3_export, "InvalidParameterException", 400, Name=ledger, ExportId="short")
    assert r.get("ParameterName") == "ExportId", r
    expect_error(q.describe_journal_s3_export, "ResourceNotFoundException", 404,
                 Name="no-such-ledger-x", ExportId="A" * 22)


def test_export_endpoint_from_environment(moto):
    """No --s3-endpoint: the server's SDK client takes AWS_ENDPOINT_URL_S3 from its environment."""
    with running_job_server(moto, kinesis=False, s3=False, env={"AWS_ENDPOINT_URL_S3": moto.endpoint}) as s:
        assert "--s3-endpoint" not in s.extra_args
        q = qldb_client(s)
        s3 = s3_client(moto)
        bucket = new_bucket(s3)
        ledger = create_ledger(s)
        end = wait_past_second(time.time())
        eid = export(q, ledger, bucket, "env/", end - 60, end)
        assert wait_export(q, ledger, eid, s)["Status"] == "COMPLETED", s.log()
        strand, _ = journal_blocks(q, ledger)
        e = Export(s3, bucket, "env/", eid, None, strand)
        assert e.seqs == [0]


def test_export_with_aws_cli(moto):
    with running_job_server(moto) as s:
        aws = Cli(s)
        q = qldb_client(s)
        s3 = s3_client(moto)
        bucket = new_bucket(s3)
        ledger = create_ledger(s)
        end = wait_past_second(time.time())
        conf = json.dumps({"Bucket": bucket, "Prefix": "cli/", "EncryptionConfiguration": NO_ENCRYPTION})
        rc, out, err = aws("qldb", "export-journal-to-s3", "--name", ledger,
                           "--inclusive-start-time", str(end - 60), "--exclusive-end-time", str(end),
                           "--role-arn", ROLE_ARN, "--s3-export-configuration", conf, "--output-format", "JSON")
        assert rc == 0, err
        eid = out["ExportId"]
        assert ID_RE.match(eid), out
        assert wait_export(q, ledger, eid, s)["Status"] == "COMPLETED", s.log()
        rc, out, err = aws("qldb", "describe-journal-s3-export", "--name", ledger, "--export-id", eid)
        assert rc == 0, err
        desc = out["ExportDescription"]
        assert desc["ExportId"] == eid and desc["LedgerName"] == ledger
        assert desc["Status"] == "COMPLETED"
        assert desc["OutputFormat"] == "JSON"
        assert desc["ExclusiveEndTime"] == end
        assert desc["S3ExportConfiguration"]["Bucket"] == bucket
        assert json.loads(s3_get(s3, bucket, f"cli/{eid}.started.manifest"))["outputFormat"] == "JSON"
