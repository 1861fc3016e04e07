"""StreamJournalToKinesis, DescribeJournalKinesisStream, ListJournalKinesisStreamsForLedger and
CancelJournalKinesisStream against a real Kinesis endpoint (moto in server mode), with boto3
1.40.60 (journal-and-verification.md §6; control-plane-and-sigv4.md "Journal streams").

Records are read back with boto3 (TRIM_HORIZON, get_records) and de-aggregated with PyPI
aws-kinesis-agg as AWS's stream consumers do, then compared with the journal as GetBlock and
`history()` show it. Delivery is at least once (§6.4): duplicates are tolerated (they must be
identical), missing records are not.
"""

import re
import signal
import time

import pytest
from botocore.exceptions import ClientError

from export_stream_helpers import (  # noqa: F401  (moto is a fixture)
    IVM,
    KPL_MAGIC,
    ROLE_ARN,
    KinesisReader,
    closed_port,
    committed_revisions,
    control_types,
    details_by_revision,
    epoch_ms,
    full_log,
    job_server,
    journal_blocks,
    kinesis_client,
    moto,
    new_kinesis_stream,
    qldb_client,
    running_job_server,
    start_stream,
    stream_status,
    summaries_by_seq,
    user_records,
    wait_stream,
    wait_past_second,
    wait_until,
    write_history,
)
from journal_verifier import H, check_block, merkle
from qldb_session_helpers import create_ledger, fill, make_driver, run
from qldb_test_utils import ACCOUNT, REGION, expect_error

ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
RECORD_TYPES = {"CONTROL", "BLOCK_SUMMARY", "REVISION_DETAILS"}
# The pure-Python Ion text parser takes seconds per 100 KB: GetBlock text larger than this is not
# parsed, and such blocks are checked from the stream's own summary (rebuilt and re-hashed,
# chained to its neighbours, and against the ledger digest).
TEXT_LIMIT = 200_000


@pytest.fixture(scope="module")
def ssrv(moto):
    """A qldb-local streaming to the module's moto."""
    s = job_server(moto)
    yield s
    s.close()


def stream_arn(ledger, stream_id):
    return f"arn:aws:qldb:{REGION}:{ACCOUNT}:stream/{ledger}/{stream_id}"


class Expected:
    """What a stream over [start, end) of a ledger must deliver, from GetBlock and history()."""

    def __init__(self, q, server, ledger, tables, start_ms=None, end_ms=None):
        self.strand, self.blocks = journal_blocks(q, ledger, max_text=TEXT_LIMIT)
        self.tables = tables
        assert start_ms is None and end_ms is None or all(self.blocks), "windows need every block parsed"
        # Blocks with revisions in [start, end); a block too large to parse (None) has revisions.
        self.seqs = {i for i, b in enumerate(self.blocks)
                     if b is None or ("revisions" in b
                                      and (end_ms is None or epoch_ms(b["blockTimestamp"]) < end_ms)
                                      and (start_ms is None or epoch_ms(b["blockTimestamp"]) >= start_ms))}
        history = committed_revisions(server, ledger, tables)
        self.revisions = {k: v for k, v in history.items() if int(v[1]["blockAddress"]["sequenceNo"]) in self.seqs}
        self.outside = set(history) - set(self.revisions)

    def arrived(self, recs):
        return set(summaries_by_seq(recs)) >= self.seqs and set(details_by_revision(recs)) >= set(self.revisions)


def check_records(recs, arn, exp, completed=False):
    """Asserts the §6.2 record shapes and that `recs` hold exactly the expected blocks and revisions."""
    assert recs, "no records"
    for r in recs:
        assert list(r.value) == ["qldbStreamArn", "recordType", "payload"], r.value
        assert r.value["qldbStreamArn"] == arn
        assert r.type in RECORD_TYPES, r.type
    # CONTROL CREATED first; COMPLETED (only when the window ended) last.
    assert recs[0].type == "CONTROL" and dict(recs[0].payload) == {"controlRecordType": "CREATED"}, recs[0].value
    controls = control_types(recs)
    assert set(controls) <= {"CREATED", "COMPLETED"}, controls
    if completed:
        first_done = next(i for i, r in enumerate(recs) if r.type == "CONTROL" and r.payload["controlRecordType"] == "COMPLETED")
        assert all(r.type == "CONTROL" and r.payload["controlRecordType"] == "COMPLETED" for r in recs[first_done:]), \
            recs[first_done:]
    else:
        assert "COMPLETED" not in controls

    summaries = summaries_by_seq(recs)
    assert set(summaries) == exp.seqs, ("BLOCK_SUMMARY for blocks", sorted(summaries), sorted(exp.seqs))
    details = details_by_revision(recs)
    assert set(details) == set(exp.revisions), ("missing", set(exp.revisions) - set(details),
                                                "unexpected", set(details) - set(exp.revisions))
    for seq, rs in summaries.items():
        block = exp.blocks[seq]
        assert all(H(r.payload) == H(rs[0].payload) for r in rs), f"duplicates of block {seq} differ"
        p = rs[0].payload
        if block is None:  # too large to parse: the committed revisions the summary names
            block = {"revisions": [_summary_revision(exp, x) for x in p["revisionSummaries"]],
                     "blockHash": p["blockHash"]}
        else:
            assert list(p) == [k for k in block if k != "revisions"] + ["revisionSummaries"], (list(p), list(block))
            for k in block:
                if k != "revisions":
                    assert H(p[k]) == H(block[k]), (seq, k)
        revs = block["revisions"]
        assert len(p["revisionSummaries"]) == len(revs), seq
        rebuilt_revisions = []
        for s, rev in zip(p["revisionSummaries"], revs):
            assert bytes(s["hash"]) == bytes(rev["hash"])
            if "metadata" in rev:
                assert list(s) == ["hash", "documentId"] and s["documentId"] == rev["metadata"]["id"], s
                key = (str(rev["metadata"]["id"]), int(rev["metadata"]["version"]))
                rebuilt_revisions.append(details[key][0].payload["revision"])
            else:
                assert list(s) == ["hash"], s  # a system revision
                rebuilt_revisions.append({"hash": s["hash"]})
        for r in rs:
            assert HEX64_RE.match(r.partition_key) and r.partition_key == bytes(block["blockHash"]).hex(), r
        # A consumer can rebuild and verify the block from the summary and the details (§6.2).
        rebuilt = {k: v for k, v in p.items() if k != "revisionSummaries"}
        rebuilt["revisions"] = rebuilt_revisions
        prev = exp.blocks[seq - 1] if seq else None
        if seq and prev is None:
            prev = summaries[seq - 1][0].payload
        check_block(rebuilt, bytes(prev["blockHash"]) if seq else None)

    order = {}
    for i, r in enumerate(recs):
        if r.type == "REVISION_DETAILS":
            m = r.payload["revision"]["metadata"]
            order.setdefault(str(m["id"]), [])
            if int(m["version"]) not in order[str(m["id"])]:
                order[str(m["id"])].append(int(m["version"]))
    for doc, versions in order.items():
        assert versions == sorted(versions), f"document {doc}: versions arrived as {versions}"
    for key, rs in details.items():
        table, hist = exp.revisions[key]
        assert all(H(r.payload) == H(rs[0].payload) for r in rs), f"duplicates of revision {key} differ"
        p = rs[0].payload
        assert list(p) == ["tableInfo", "revision"], list(p)  # tableInfo first (§6.2)
        assert list(p["tableInfo"]) == ["tableName", "tableId"]
        assert dict(p["tableInfo"]) == {"tableName": table, "tableId": exp.tables[table]}, (key, p["tableInfo"])
        assert H(p["revision"]) == H(hist), f"revision {key} differs from history()"
        if "data" not in hist and "dataHash" not in hist:
            assert "data" not in p["revision"] and "dataHash" not in p["revision"]  # a delete
        for r in rs:
            assert HEX64_RE.match(r.partition_key) and r.partition_key == bytes(hist["hash"]).hex(), r


def _summary_revision(exp, summary):
    """The history() revision a revisionSummaries entry names (by documentId and hash)."""
    if "documentId" not in summary:
        return {"hash": summary["hash"]}
    for (doc, _), (_, rev) in exp.revisions.items():
        if doc == str(summary["documentId"]) and bytes(rev["hash"]) == bytes(summary["hash"]):
            return rev
    raise AssertionError(f"no committed revision matches {summary}")


def check_aggregated(raw):
    """Every Kinesis record is one KPL aggregate whose outer key is its first user record's key."""
    for r in raw:
        assert r["Data"].startswith(KPL_MAGIC), r["Data"][:8]
        inner = user_records([r])
        assert inner and all(u.data.startswith(IVM) for u in inner)
        assert r["PartitionKey"] == inner[0].partition_key


# ---------------------------------------------------------------- delivery

def test_stream_replays_history_then_live_writes(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    h = write_history(ssrv, ledger)  # history first, with a redacted revision
    before = time.time()
    sid = start_stream(q, ledger, karn, name="live-stream", start=int(time.time()) - 3600)
    after = time.time()
    assert ID_RE.match(sid)
    # Live writes while the stream runs.
    d = make_driver(ssrv, ledger)
    new_cars = fill(d, "Cars", 6)
    run(d, "UPDATE Cars AS c SET c.price = 7 WHERE c.n = 1")
    run(d, "UPDATE Cars AS c SET c.price = 8 WHERE c.n = 1")
    run(d, "DELETE FROM Cars AS c WHERE c.n = 2")
    run(d, "CREATE TABLE Late")
    fill(d, "Late", 3)
    run(d, "UPDATE People AS p SET p.ssn = 'live' WHERE p.name = 'cyd'")
    d.close()
    tables = dict(h.tables, Late=None)
    d = make_driver(ssrv, ledger)
    tables["Late"] = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Late'")[0]
    d.close()
    exp = Expected(q, ssrv, ledger, tables)
    assert len(exp.revisions) >= 20 and any(k[0] == new_cars[1] and k[1] == 2 for k in exp.revisions)

    reader = KinesisReader(kin, kname)
    recs = reader.wait_for(exp.arrived, 30, lambda: f"all records; log: {ssrv.log()}")
    arn = stream_arn(ledger, sid)
    check_records(recs, arn, exp)
    check_aggregated(reader.raw)
    redacted = details_by_revision(recs)[h.redacted[:2]][0].payload["revision"]
    assert "data" not in redacted and len(bytes(redacted["dataHash"])) == 32
    for key in h.deleted:
        assert "data" not in details_by_revision(recs)[key][0].payload["revision"]

    desc = stream_status(q, ledger, sid)
    assert desc["Status"] == "ACTIVE" and "ErrorCause" not in desc, desc
    assert desc["LedgerName"] == ledger and desc["StreamId"] == sid and desc["StreamName"] == "live-stream"
    assert desc["Arn"] == arn and desc["RoleArn"] == ROLE_ARN
    assert desc["KinesisConfiguration"] == {"StreamArn": karn, "AggregationEnabled": True}
    assert before - 1 <= desc["CreationTime"].timestamp() <= after + 1
    # A start before the ledger existed is clamped to its creation.
    assert desc["InclusiveStartTime"] == q.describe_ledger(Name=ledger)["CreationDateTime"]
    assert "ExclusiveEndTime" not in desc
    assert q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)["StreamId"] == sid


def test_stream_without_aggregation_sends_the_same_records(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    agg_name, agg_arn = new_kinesis_stream(kin)
    plain_name, plain_arn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    h = write_history(ssrv, ledger, redact=False)
    start = int(time.time()) - 60
    agg = start_stream(q, ledger, agg_arn, name="agg", start=start)
    plain = start_stream(q, ledger, plain_arn, name="plain", start=start, aggregation=False)
    exp = Expected(q, ssrv, ledger, h.tables)
    agg_reader, plain_reader = KinesisReader(kin, agg_name), KinesisReader(kin, plain_name)
    agg_recs = agg_reader.wait_for(exp.arrived, 30, lambda: f"aggregated records; {ssrv.log()}")
    plain_recs = plain_reader.wait_for(exp.arrived, 30, lambda: f"plain records; {ssrv.log()}")
    check_aggregated(agg_reader.raw)
    for r in plain_reader.raw:
        # One Kinesis record per user record: the Ion binary itself, with its own partition key.
        assert r["Data"].startswith(IVM) and not r["Data"].startswith(KPL_MAGIC), r["Data"][:8]
    assert len(plain_reader.raw) == len(plain_recs)
    check_records(plain_recs, stream_arn(ledger, plain), exp)
    check_records(agg_recs, stream_arn(ledger, agg), exp)

    def content(recs):
        return {(r.type, r.partition_key if r.type != "CONTROL" else "", H(r.payload)) for r in recs}
    assert content(plain_recs) == content(agg_recs)
    assert stream_status(q, ledger, plain)["KinesisConfiguration"]["AggregationEnabled"] is False
    for sid in (agg, plain):
        q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)


def test_large_blocks_are_split_within_kinesis_limits(ssrv, moto):
    """Blocks of ~1.2 MB each: aggregation must split them into Kinesis records of at most 1 MiB
    (data + partition key), and batches into PutRecords requests of at most 5 MiB (§6.3)."""
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    d = make_driver(ssrv, ledger)
    run(d, "CREATE TABLE Big")
    for t in range(5):
        def big(txn, t=t):
            for i in range(12):
                txn.execute_statement("INSERT INTO Big ?", {"t": t, "i": i, "pad": chr(97 + i) * 100_000})
        d.execute_lambda(big)
    table_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'Big'")[0]
    d.close()
    sid = start_stream(q, ledger, karn, name="big")
    exp = Expected(q, ssrv, ledger, {"Big": table_id})
    assert len(exp.revisions) == 60
    reader = KinesisReader(kin, kname)
    recs = reader.wait_for(exp.arrived, 30, lambda: f"the large blocks; {ssrv.log()}")
    check_records(recs, stream_arn(ledger, sid), exp)
    check_aggregated(reader.raw)
    for r in reader.raw:
        assert len(r["Data"]) + len(r["PartitionKey"].encode()) <= 1024 * 1024, len(r["Data"])
    # The streamed block hashes are the journal's: their Merkle root is the ledger digest.
    summaries = summaries_by_seq(recs)
    hashes = [bytes(b["blockHash"]) if b is not None else bytes(summaries[i][0].payload["blockHash"])
              for i, b in enumerate(exp.blocks)]
    assert merkle(hashes) == q.get_digest(Name=ledger)["Digest"]
    assert len(reader.raw) >= 10, len(reader.raw)
    q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)


def test_ended_streams_expire_after_the_retention(moto):
    with running_job_server(moto, ["--job-retention-hours", "0"]) as s:
        q = qldb_client(s)
        _, karn = new_kinesis_stream(kinesis_client(moto))
        ledger = create_ledger(s)
        keep = start_stream(q, ledger, karn, name="keep")
        gone = start_stream(q, ledger, karn, name="gone", tags={"k": "v"})
        arn = stream_arn(ledger, gone)
        q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=gone)

        def expired():
            try:
                stream_status(q, ledger, gone)
                return False
            except q.exceptions.ResourceNotFoundException:
                return True
        wait_until(expired, 10, "the cancelled stream to expire")
        assert [x["StreamId"] for x in q.list_journal_kinesis_streams_for_ledger(LedgerName=ledger)["Streams"]] == [keep]
        expect_error(q.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=arn)
        # A running stream never expires.
        assert stream_status(q, ledger, keep)["Status"] == "ACTIVE"


def test_stream_with_end_time_completes(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    d = make_driver(ssrv, ledger)
    run(d, "CREATE TABLE T")
    before = fill(d, "T", 3)  # before InclusiveStartTime: never streamed
    start = wait_past_second(time.time())
    end = start + 3
    sid = start_stream(q, ledger, karn, name="bounded", start=start, end=end)
    inside = fill(d, "T", 2, start=3)
    run(d, "UPDATE T AS t SET t.x = 1 WHERE t.n = 0")  # a new revision of an old document
    assert time.time() < end - 0.5, "test setup: writes meant for the window ran late"
    wait_until(lambda: time.time() >= end + 0.05, 10, "ExclusiveEndTime to pass", interval=0.02)
    late = fill(d, "T", 2, start=100)  # after ExclusiveEndTime: never streamed
    d.close()
    desc = wait_stream(q, ledger, sid, lambda s: s["Status"] != "ACTIVE", ssrv, timeout=20)
    assert desc["Status"] == "COMPLETED" and "ErrorCause" not in desc, (desc, ssrv.log())
    assert epoch_ms(desc["ExclusiveEndTime"]) == end * 1000

    assert epoch_ms(desc["InclusiveStartTime"]) == start * 1000
    exp = Expected(q, ssrv, ledger, {"T": None}, start_ms=start * 1000, end_ms=end * 1000)
    d = make_driver(ssrv, ledger)
    exp.tables = {"T": run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'T'")[0]}
    d.close()
    assert {(i, 0) for i in inside} <= set(exp.revisions)
    assert {(i, 0) for i in late} <= exp.outside and {(i, 0) for i in before} <= exp.outside
    assert (before[0], 1) in exp.revisions
    reader = KinesisReader(kin, kname)
    recs = reader.wait_for(lambda rs: "COMPLETED" in control_types(rs), 10, "the COMPLETED record")
    assert recs[-1].type == "CONTROL" and dict(recs[-1].payload) == {"controlRecordType": "COMPLETED"}
    check_records(recs, stream_arn(ledger, sid), exp, completed=True)
    assert not {(i, 0) for i in late + before} & set(details_by_revision(recs))
    # Only an ACTIVE stream can be cancelled.
    expect_error(q.cancel_journal_kinesis_stream, "ResourcePreconditionNotMetException", 412,
                 LedgerName=ledger, StreamId=sid)


def test_stream_window_entirely_before_ledger_creation(ssrv, moto):
    """As for exports: a start clamped to the ledger's creation must still be before the end; either
    the request is refused or the stream keeps a consistent window (and, being over, completes)."""
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    now = int(time.time())
    try:
        sid = start_stream(q, ledger, karn, name="before", start=now - 7200, end=now - 3600)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidParameterException", e.response
        return
    desc = wait_stream(q, ledger, sid, lambda d: d["Status"] != "ACTIVE", ssrv, timeout=15)
    assert desc["Status"] == "COMPLETED", desc
    assert desc["InclusiveStartTime"] < desc["ExclusiveEndTime"], \
        (f"InclusiveStartTime {desc['InclusiveStartTime']} is after ExclusiveEndTime {desc['ExclusiveEndTime']}")


def test_stream_over_a_past_window_replays_and_completes(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    d = make_driver(ssrv, ledger)
    run(d, "CREATE TABLE T")
    fill(d, "T", 3)
    end = wait_past_second(time.time())
    later = fill(d, "T", 2, start=10)  # after the window
    table_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'T'")[0]
    d.close()
    sid = start_stream(q, ledger, karn, name="past", start=end - 60, end=end, aggregation=False)
    desc = wait_stream(q, ledger, sid, lambda x: x["Status"] != "ACTIVE", ssrv, timeout=15)
    assert desc["Status"] == "COMPLETED", desc
    exp = Expected(q, ssrv, ledger, {"T": table_id}, end_ms=end * 1000)
    assert {(i, 0) for i in later} <= exp.outside and len(exp.revisions) == 3
    reader = KinesisReader(kin, kname)
    recs = reader.wait_for(lambda rs: "COMPLETED" in control_types(rs), 10, "the COMPLETED record")
    check_records(recs, stream_arn(ledger, sid), exp, completed=True)
    assert all(r["Data"].startswith(IVM) for r in reader.raw)


def test_cancel_stream(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(ssrv)
    d = make_driver(ssrv, ledger)
    run(d, "CREATE TABLE T")
    first = fill(d, "T", 3)
    sid = start_stream(q, ledger, karn, name="to-cancel")
    reader = KinesisReader(kin, kname)
    reader.wait_for(lambda rs: {(i, 0) for i in first} <= set(details_by_revision(rs)), 20, "the first records")
    assert q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)["StreamId"] == sid
    desc = stream_status(q, ledger, sid)
    assert desc["Status"] == "CANCELED" and "ErrorCause" not in desc, desc
    expect_error(q.cancel_journal_kinesis_stream, "ResourcePreconditionNotMetException", 412,
                 LedgerName=ledger, StreamId=sid)
    after = fill(d, "T", 2, start=10)
    d.close()
    # For a while (the server polls every 50 ms): nothing of the writes after the cancel, no COMPLETED.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        reader.poll()
        recs = reader.records()
        assert not {(i, 0) for i in after} & set(details_by_revision(recs)), "a cancelled stream kept sending"
        assert "COMPLETED" not in control_types(recs)
        time.sleep(0.1)
    assert stream_status(q, ledger, sid)["Status"] == "CANCELED"
    # The name is free again: only running streams must have unique names.
    again = start_stream(q, ledger, karn, name="to-cancel")
    q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=again)


def test_missing_kinesis_stream_impairs_then_recovers(ssrv, moto):
    q = qldb_client(ssrv)
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin, create=False)
    ledger = create_ledger(ssrv)
    d = make_driver(ssrv, ledger)
    run(d, "CREATE TABLE T")
    fill(d, "T", 4)
    sid = start_stream(q, ledger, karn, name="impaired")
    desc = wait_stream(q, ledger, sid, lambda s: s["Status"] == "IMPAIRED", ssrv, timeout=20)
    assert desc["ErrorCause"] == "KINESIS_STREAM_NOT_FOUND", desc
    expect_error(q.cancel_journal_kinesis_stream, "ResourcePreconditionNotMetException", 412,
                 LedgerName=ledger, StreamId=sid)
    fill(d, "T", 2, start=4)  # written while impaired
    table_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'T'")[0]
    d.close()
    new_kinesis_stream(kin, name=kname)
    desc = wait_stream(q, ledger, sid, lambda s: s["Status"] == "ACTIVE", ssrv, timeout=20)
    assert "ErrorCause" not in desc, desc
    exp = Expected(q, ssrv, ledger, {"T": table_id})
    reader = KinesisReader(kin, kname)
    recs = reader.wait_for(exp.arrived, 20, lambda: f"records after recovery; {ssrv.log()}")
    check_records(recs, stream_arn(ledger, sid), exp)
    q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)


def test_stream_survives_sigkill_restart(moto):
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    s = job_server(moto)
    try:
        q = qldb_client(s)
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        run(d, "CREATE TABLE T")
        first = fill(d, "T", 5)
        sid = start_stream(q, ledger, karn, name="durable")
        reader = KinesisReader(kin, kname)
        reader.wait_for(lambda rs: {(i, 0) for i in first} <= set(details_by_revision(rs)), 20, "the first records")
        for i in range(5):  # committed just before the kill: probably not sent yet
            run(d, "UPDATE T AS t SET t.v = ? WHERE t.n = ?", i, i)
        d.close()
        s.stop(signal.SIGKILL)
        s.start()
        d = make_driver(s, ledger)
        fill(d, "T", 3, start=50)
        run(d, "DELETE FROM T AS t WHERE t.n = 0")
        table_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'T'")[0]
        d.close()
        assert re.search(f"resuming journal stream stream_id={sid}", full_log(s)), s.log()
        exp = Expected(q, s, ledger, {"T": table_id})
        recs = reader.wait_for(exp.arrived, 30, lambda: f"records after the restart; {s.log()}")
        check_records(recs, stream_arn(ledger, sid), exp)
        assert stream_status(q, ledger, sid)["Status"] == "ACTIVE"
    finally:
        s.close()


def test_unreachable_kinesis_fails_after_the_limit(moto):
    with running_job_server(extra_args=["--kinesis-endpoint", f"http://127.0.0.1:{closed_port()}",
                                        "--stream-fail-after-secs", "1"]) as s:
        q = qldb_client(s)
        ledger = create_ledger(s)
        _, karn = new_kinesis_stream(kinesis_client(moto), create=False)
        sid = start_stream(q, ledger, karn, name="doomed")
        seen = []

        def failed(d):
            seen.append(d["Status"])
            return d["Status"] == "FAILED"
        desc = wait_stream(q, ledger, sid, failed, s, timeout=30)
        assert desc["ErrorCause"] == "KINESIS_STREAM_NOT_FOUND", desc
        assert "IMPAIRED" in seen and set(seen) <= {"ACTIVE", "IMPAIRED", "FAILED"}, seen
        expect_error(q.cancel_journal_kinesis_stream, "ResourcePreconditionNotMetException", 412,
                     LedgerName=ledger, StreamId=sid)
        # FAILED is terminal: the name can be used again.
        assert ID_RE.match(start_stream(q, ledger, karn, name="doomed"))


# ---------------------------------------------------------------- ARNs, tags, listing, errors

def test_stream_arn_and_tags(ssrv, moto):
    q = qldb_client(ssrv)
    _, karn = new_kinesis_stream(kinesis_client(moto))
    ledger = create_ledger(ssrv)
    sid = start_stream(q, ledger, karn, name="tagged", tags={"team": "ledger", "env": "test"})
    arn = stream_status(q, ledger, sid)["Arn"]
    assert arn == f"arn:aws:qldb:us-east-1:000000000000:stream/{ledger}/{sid}"
    assert q.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "ledger", "env": "test"}
    q.tag_resource(ResourceArn=arn, Tags={"new": "1"})
    q.untag_resource(ResourceArn=arn, TagKeys=["env"])
    assert q.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "ledger", "new": "1"}
    # An existing key takes the new value (control-plane-and-sigv4.md §6.6).
    q.tag_resource(ResourceArn=arn, Tags={"team": "core"})
    assert q.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "core", "new": "1"}
    missing = f"arn:aws:qldb:us-east-1:000000000000:stream/{ledger}/{'A' * 22}"
    expect_error(q.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=missing)
    expect_error(q.tag_resource, "ResourceNotFoundException", 404, ResourceArn=missing, Tags={"a": "b"})
    # The tags of the stream are its own: the ledger has none.
    assert q.list_tags_for_resource(ResourceArn=f"arn:aws:qldb:us-east-1:000000000000:ledger/{ledger}")["Tags"] == {}
    q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=sid)


def test_stream_listing_validation_and_limits(ssrv, moto):
    q = qldb_client(ssrv, validate=False)
    _, karn = new_kinesis_stream(kinesis_client(moto))
    ledger, other = create_ledger(ssrv), create_ledger(ssrv)
    now = int(time.time())

    def ipe(param, **kw):
        args = dict(LedgerName=ledger, RoleArn=ROLE_ARN, InclusiveStartTime=now - 60,
                    KinesisConfiguration={"StreamArn": karn}, StreamName="bad")
        args.update(kw)
        r = expect_error(q.stream_journal_to_kinesis, "InvalidParameterException", 400, **args)
        assert r.get("ParameterName") == param, r

    # s1 writes to a Kinesis stream that does not exist: IMPAIRED, which is still running.
    _, missing_arn = new_kinesis_stream(kinesis_client(moto), create=False)
    ids = [start_stream(q, ledger, missing_arn, name="s1", start=now - 60)]
    wait_stream(q, ledger, ids[0], lambda d: d["Status"] == "IMPAIRED", ssrv, timeout=15)
    ipe("StreamName", StreamName="s1")  # duplicate among running streams
    ipe("StreamName", StreamName="bad_name!")
    ipe("StreamName", StreamName="x" * 33)
    ipe("StreamName", StreamName="12345")
    ipe("StreamName", StreamName="-lead")
    ipe("StreamArn", KinesisConfiguration={"StreamArn": "arn:aws:sqs:us-east-1:123456789012:queue-one"})
    ipe("StreamArn", KinesisConfiguration={"StreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/"})
    ipe("RoleArn", RoleArn="arn:aws:iam::123456789012:user/NotARole")
    ipe("InclusiveStartTime", InclusiveStartTime=now + 3600)
    ipe("InclusiveStartTime", InclusiveStartTime=now - 10, ExclusiveEndTime=now - 20)
    expect_error(q.stream_journal_to_kinesis, "ResourceNotFoundException", 404, LedgerName="no-such-ledger-x",
                 RoleArn=ROLE_ARN, InclusiveStartTime=now - 60, KinesisConfiguration={"StreamArn": karn},
                 StreamName="s9")

    for i in range(2, 6):
        ids.append(start_stream(q, ledger, karn, name=f"s{i}", start=now - 60))
    r = expect_error(start_stream, "LimitExceededException", 400, q=q, ledger=ledger, kinesis_stream_arn=karn,
                     name="s6", start=now - 60)
    assert "5" in r["Error"]["Message"], r
    # The limit is per ledger.
    other_id = start_stream(q, other, karn, name="s1", start=now - 60)

    full = q.list_journal_kinesis_streams_for_ledger(LedgerName=ledger)
    assert "NextToken" not in full
    listed = full["Streams"]
    assert sorted(s["StreamId"] for s in listed) == sorted(ids)
    for s in listed:
        assert s == stream_status(q, ledger, s["StreamId"])
    pages, token = [], None
    while True:
        page = q.list_journal_kinesis_streams_for_ledger(LedgerName=ledger, MaxResults=1,
                                                         **({"NextToken": token} if token else {}))
        pages.append(page["Streams"])
        token = page.get("NextToken")
        if not token:
            break
        assert len(pages) < 20
    assert [len(p) for p in pages] == [1] * 5
    assert [p[0]["StreamId"] for p in pages] == [s["StreamId"] for s in listed]

    expect_error(q.describe_journal_kinesis_stream, "ResourceNotFoundException", 404,
                 LedgerName=ledger, StreamId="A" * 22)
    expect_error(q.describe_journal_kinesis_stream, "ResourceNotFoundException", 404,
                 LedgerName=ledger, StreamId=other_id)  # a stream of another ledger
    r = expect_error(q.describe_journal_kinesis_stream, "InvalidParameterException", 400,
                     LedgerName=ledger, StreamId="short")
    assert r.get("ParameterName") == "StreamId", r
    expect_error(q.describe_journal_kinesis_stream, "ResourceNotFoundException", 404,
                 LedgerName="no-such-ledger-x", StreamId=ids[0])
    expect_error(q.list_journal_kinesis_streams_for_ledger, "ResourceNotFoundException", 404,
                 LedgerName="no-such-ledger-x")
    expect_error(q.cancel_journal_kinesis_stream, "ResourceNotFoundException", 404,
                 LedgerName=ledger, StreamId="A" * 22)
    expect_error(q.cancel_journal_kinesis_stream, "ResourceNotFoundException", 404,
                 LedgerName=ledger, StreamId=other_id)
    for bad in (0, 101):
        r = expect_error(q.list_journal_kinesis_streams_for_ledger, "InvalidParameterException", 400,
                         LedgerName=ledger, MaxResults=bad)
        assert r.get("ParameterName") == "MaxResults", r
    r = expect_error(q.list_journal_kinesis_streams_for_ledger, "InvalidParameterException", 400,
                     LedgerName=ledger, NextToken="not-a-token!")
    assert r.get("ParameterName") == "NextToken", r

    # A cancelled stream frees its slot.
    assert stream_status(q, ledger, ids[0])["Status"] == "IMPAIRED"  # counted in the 5
    q.cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=ids[1])
    ids.append(start_stream(q, ledger, karn, name="s6", start=now - 60))
    for sid in ids[2:] + [other_id]:
        q.cancel_journal_kinesis_stream(LedgerName=ledger if sid != other_id else other, StreamId=sid)
