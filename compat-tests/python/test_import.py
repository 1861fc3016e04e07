"""`qldb-local import`: a ledger made from a journal export (the ExportJournalToS3 layout),
hash for hash, with boto3 1.40.60, pyqldb 3.2.4 and a real S3 endpoint (moto in server mode).

The exports are written by a source qldb-local server (A) into moto, imported into a fresh
data dir, and what a server (B) then serves is compared with what A served.

- `test_import_round_trip_from_s3`: a ledger written with pyqldb (tables with inserts, updates
  and deletes, an index, rich Ion values, a REDACT_REVISION of an old revision, a table filled
  and dropped, a table created and never written) is exported whole as ION_TEXT and imported
  from `s3://bucket/prefix` with `--s3-endpoint`. The summary line gives A's block count,
  digest and tip; `verify` passes, also with `--digest`/`--digest-tip-address` of A's digest.
  B serves the same GetDigest, the same block and revision (and proof) for every GetBlock and
  GetRevision against that tip, every proof folds to the digest (`journal_verifier`), the
  tables, committed views, history() and catalog are the same (table ids kept), an indexed
  lookup still reads one document, and a new transaction extends the same chain (tip + 1),
  after which `verify` still passes with the old saved digest.
- `test_import_from_local_copy_and_binary`: an ION_BINARY export copied to a local directory
  (as `aws s3 sync` would) imports with `--from DIR`; two exports of adjacent time windows
  (split at a second between two transactions) under one prefix import from S3 (endpoint from
  AWS_ENDPOINT_URL_S3) as one journal. Both ledgers have A's digest, blocks and documents.
- `test_import_refusals`: one byte changed inside a string of a middle block (the Ion stays
  valid), a data object the completed manifest lists deleted, a JSON export, an export of a
  later window only, a name that already exists, and an import while a server runs on the
  data dir all exit 1 with one line on stderr saying why (naming the block, the missing key,
  JSON, block 0, "already exists", "in use"); none of them enters a ledger in the catalog or
  leaves a ledger file. `verify --digest` passes with a digest saved at an older tip and
  fails ("differs") with a wrong one.
"""

import base64
import os
import pathlib
import re
import subprocess
import time

from amazon.ion import simpleion

from export_stream_helpers import (  # noqa: F401  (moto is a fixture)
    AWS_ENV,
    check_chain,
    job_server,
    journal_blocks,
    moto,
    new_bucket,
    qldb_client,
    s3_client,
    s3_get,
    s3_keys,
    wait_export,
    wait_past_second,
    write_history,
)
from journal_verifier import H, check_block, fold, merkle
from qldb_harness import Server
from qldb_session_helpers import create_ledger, ion_hash, make_driver, run
from qldb_test_utils import new_name
from test_export_s3 import Export, export
from test_rebuild import by_hash, cli, ledger_path, read_cursor, small_ledger
from test_verification import digest_of, get_block, get_revision, user_revisions

IMPORTED_RE = re.compile(
    r'^imported (?P<name>\S+): (?P<blocks>\d+) blocks from (?P<objects>\d+) objects, '
    r'digest (?P<digest>[A-Za-z0-9+/]+={0,2}) at '
    r'(?P<address>\{strandId:"(?P<strand>[A-Za-z0-9]+)",sequenceNo:(?P<tip>\d+)\}); '
    r'(?P<documents>\d+) documents, (?P<tables>\d+) tables, (?P<indexes>\d+) indexes$')
VERIFIED_RE = re.compile(
    r"^ok (?P<name>\S+): (?P<blocks>\d+) blocks, digest (?P<digest>[A-Za-z0-9+/]+={0,2}) "
    r"at sequenceNo (?P<tip>\d+)$")
NEW_TABLE_ID_RE = re.compile(r"^note: table (\S+) got a new id")

UNWRITTEN = "Unwritten"  # created, never written: its id is only in an opaque system hash


# ---------------------------------------------------------------- helpers

def b64(data) -> str:
    return base64.b64encode(bytes(data)).decode()


def tool_env(**extra):
    """The environment of an import: the standard AWS credentials and region, and no endpoint
    or qldb-local setting inherited from the test runner (only what `extra` gives)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QLDB_LOCAL_"))}
    env.update(AWS_ENV)
    env.update(extra)
    return env


def run_import(target, ledger, source, *extra, env=None):
    """`qldb-local import --data-dir <target's data dir> --ledger <ledger> --from <source> ...`."""
    return subprocess.run(
        [target.binary, "import", "--data-dir", target.data_dir, "--ledger", ledger, "--from", source, *extra],
        capture_output=True, text=True, env=env if env is not None else tool_env(), timeout=60)


def imported(p, ledger):
    """A successful import: exit 0, the summary line, then only `note:` lines. Returns the
    summary's match and the notes."""
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    m = IMPORTED_RE.match(lines[0]) if lines else None
    assert m, p.stdout
    assert m["name"] == ledger, p.stdout
    notes = lines[1:]
    assert all(n.startswith("note: ") for n in notes), p.stdout
    return m, notes


def refused(p, ledger):
    """A refused import: exit 1, nothing on stdout, one line on stderr; returns that line."""
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stdout == "", p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"qldb-local import: ledger {ledger}: "), p.stderr
    return lines[0]


def verified(target, ledger, *extra):
    """`verify --ledger <ledger> ...` passes; returns the match of its `ok` line and the lines after."""
    p = cli(target, "verify", "--ledger", ledger, *extra)
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    m = VERIFIED_RE.match(lines[0]) if lines else None
    assert m and m["name"] == ledger, p.stdout
    return m, lines[1:]


def no_ledger(target, ledger):
    """The data dir's catalog has no ledger `ledger`, and no file of it was moved into place."""
    p = cli(target, "verify", "--ledger", ledger)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert f"no ledger named {ledger}" in p.stderr, p.stderr
    assert not ledger_path(target, ledger).exists()


def exported(q, server, ledger, bucket, prefix, start, end, fmt):
    """Runs one ExportJournalToS3 to the end; returns its id."""
    eid = export(q, ledger, bucket, prefix, start, end, fmt)
    desc = wait_export(q, ledger, eid, server)
    assert desc["Status"] == "COMPLETED", (desc, server.log())
    return eid


def created_second(q, ledger):
    return int(q.describe_ledger(Name=ledger)["CreationDateTime"].timestamp())


def download(s3, bucket, prefix, into):
    """A local copy of every object under s3://bucket/prefix, named by its key relative to the
    prefix (what `aws s3 sync s3://bucket/prefix DIR` makes). Returns the keys."""
    keys = s3_keys(s3, bucket, prefix)
    assert keys
    for key in keys:
        path = into / key[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3_get(s3, bucket, key))
    return keys


def manifest_ranges(s3, bucket, prefix, export_id, strand):
    """The (first, last) block ranges of the data objects an export's completed manifest lists."""
    manifest = simpleion.loads(s3_get(s3, bucket, f"{prefix}{export_id}.{strand}.completed.manifest"))
    out = []
    for key in manifest["keys"]:
        m = re.search(r"\.(\d+)-(\d+)\.ion$", str(key))
        assert m, key
        out.append((int(m[1]), int(m[2])))
    return sorted(out)


def table_summary(catalog):
    """information_schema.user_tables rows as {name: (tableId, status, index expressions)}."""
    return {str(r["name"]): (str(r["tableId"]), str(r["status"]),
                             sorted(str(i["expr"]) for i in (r.get("indexes") or [])))
            for r in catalog}


class Served:
    """What a server serves of a ledger: its digest, every block and every document revision
    (with their proofs against the digest's tip), and the results of queries on every table."""

    def __init__(self, server, ledger):
        q = qldb_client(server)
        self.digest, self.strand, self.tip, self.tip_holder = digest_of(q, ledger)
        self.blocks = []  # [(block, proof)] by sequence number
        self.revisions = {}  # (seq, document id) -> (revision, proof)
        for seq in range(self.tip + 1):
            block, proof = get_block(q, ledger, self.strand, seq, tip=self.tip)
            self.blocks.append((block, proof))
            for _, rev in user_revisions(block):
                doc = str(rev["metadata"]["id"])
                self.revisions[(seq, doc)] = get_revision(q, ledger, self.strand, seq, doc, tip=self.tip)
        d = make_driver(server, ledger)
        try:
            self.catalog = run(d, "SELECT * FROM information_schema.user_tables")
            self.active = sorted(str(r["name"]) for r in self.catalog if r["status"] == "ACTIVE")
            self.queries = {}
            for t in self.active:
                for text in (f"SELECT * FROM {t}", f"SELECT * FROM _ql_committed_{t}",
                             f"SELECT * FROM history({t})"):
                    self.queries[text] = by_hash(run(d, text))
            rows, ios = read_cursor(d, "SELECT * FROM Cars WHERE vin = ?", "V0")
            self.lookup = ([ion_hash(r) for r in rows], ios)
            self.v0_version = run(d, "SELECT VALUE r.metadata.version FROM _ql_committed_Cars AS r "
                                     "WHERE r.data.vin = 'V0'")
        finally:
            d.close()

    @property
    def block_hashes(self):
        return [bytes(b["blockHash"]) for b, _ in self.blocks]


def extend_history(server, ledger):
    """After `write_history` (Cars, People and Logs with inserts, updates, deletes and a
    redaction): an index on Cars, twenty more cars some of them updated or deleted, a table
    filled and dropped, and a table created and never written. Returns how many documents the
    dropped table holds."""
    d = make_driver(server, ledger)
    try:
        run(d, "CREATE INDEX ON Cars (vin)")
        rows = run(d, "INSERT INTO Cars ?", [{"vin": f"W{i}", "price": i * 10} for i in range(20)])
        assert len(rows) == 20
        for i in (3, 7, 11):
            assert len(run(d, "UPDATE Cars AS c SET c.price = ? WHERE c.vin = ?", i, f"W{i}")) == 1
        assert len(run(d, "UPDATE Cars AS c SET c.sold = true WHERE c.vin = 'W7'")) == 1
        for i in (5, 11):
            assert len(run(d, "DELETE FROM Cars AS c WHERE c.vin = ?", f"W{i}")) == 1
        run(d, "CREATE TABLE Scratch")
        assert len(run(d, "INSERT INTO Scratch ?", [{"s": 1}, {"s": 2}, {"s": 3}])) == 3
        run(d, "DROP TABLE Scratch")
        run(d, f"CREATE TABLE {UNWRITTEN}")
    finally:
        d.close()
    return 3


def assert_same_journal(server, ledger, want):
    """`server` serves `want`'s digest, and exactly its blocks and revisions with their proofs;
    every block verifies from its own Ion and every proof folds to the digest."""
    q = qldb_client(server)
    digest, strand, tip, _ = digest_of(q, ledger)
    assert (digest, strand, tip) == (want.digest, want.strand, want.tip)
    blocks = []
    for seq, (block, proof) in enumerate(want.blocks):
        got, got_proof = get_block(q, ledger, strand, seq, tip=tip)
        assert H(got) == H(block), f"GetBlock {seq} differs from the source's"
        assert got_proof == proof, f"GetBlock {seq}: the proof differs from the source's"
        assert fold(got["blockHash"], got_proof) == digest, f"block {seq} does not verify"
        blocks.append(got)
    check_chain(blocks)
    assert merkle([bytes(b["blockHash"]) for b in blocks]) == digest
    assert want.revisions
    for (seq, doc), (revision, proof) in want.revisions.items():
        got, got_proof = get_revision(q, ledger, strand, seq, doc, tip=tip)
        assert H(got) == H(revision), f"GetRevision {doc}@{seq} differs from the source's"
        assert got_proof == proof, f"GetRevision {doc}@{seq}: the proof differs from the source's"
        assert fold(got["hash"], got_proof) == digest, f"revision {doc}@{seq} does not verify"


# ---------------------------------------------------------------- 1. round trip through S3

def test_import_round_trip_from_s3(moto, tmp_path):
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    a = job_server(moto, kinesis=False)
    try:
        q = qldb_client(a)
        ledger = create_ledger(a)
        start = created_second(q, ledger) - 60
        history = write_history(a, ledger)
        dropped_documents = extend_history(a, ledger)
        end = wait_past_second(time.time())
        eid = exported(q, a, ledger, bucket, "journal/", start, end, "ION_TEXT")
        want = Served(a, ledger)
        e = Export(s3, bucket, "journal/", eid, "ION_TEXT", want.strand)
        assert e.seqs == list(range(want.tip + 1)), "test setup: the export holds the whole journal"
    finally:
        a.close()
    redacted = [r for r, _ in want.revisions.values() if "dataHash" in r]
    assert [(str(r["metadata"]["id"]), int(r["metadata"]["version"])) for r in redacted] == [history.redacted[:2]]
    assert {"Cars", "People", "Logs", UNWRITTEN} == set(want.active)
    assert table_summary(want.catalog)["Scratch"][1] != "ACTIVE"
    assert want.lookup[0] and want.v0_version == [0]

    target = Server(data_dir=tmp_path / "imported")
    p = run_import(target, ledger, f"s3://{bucket}/journal/", "--s3-endpoint", moto.endpoint)
    m, notes = imported(p, ledger)
    assert int(m["blocks"]) == want.tip + 1 and int(m["tip"]) == want.tip, p.stdout
    assert m["strand"] == want.strand, p.stdout
    assert base64.b64decode(m["digest"]) == want.digest, p.stdout
    assert H(simpleion.loads(m["address"])) == H(simpleion.loads(want.tip_holder["IonText"])), p.stdout
    assert int(m["objects"]) == len(e.keys), p.stdout
    live = sum(len(want.queries[f"SELECT * FROM {t}"]) for t in want.active)
    assert int(m["documents"]) == live + dropped_documents, p.stdout
    assert int(m["tables"]) == len(want.catalog), p.stdout
    assert int(m["indexes"]) == 1, p.stdout
    assert p.stderr.strip(), "without --quiet the import reports its progress on stderr"
    new_table_ids = {NEW_TABLE_ID_RE.match(n)[1] for n in notes if NEW_TABLE_ID_RE.match(n)}

    ok, more = verified(target, ledger)
    assert base64.b64decode(ok["digest"]) == want.digest and int(ok["tip"]) == want.tip, ok.string
    assert int(ok["blocks"]) == want.tip + 1 and more == []
    saved = ("--digest", b64(want.digest), "--digest-tip-address", want.tip_holder["IonText"])
    ok, more = verified(target, ledger, *saved)
    assert len(more) == 1, more
    assert more[0].startswith(f"ok {ledger}: the saved digest "), more
    assert more[0].endswith(f"is the journal's digest at sequenceNo {want.tip}"), more

    target.start()
    try:
        qb = qldb_client(target)
        assert qb.describe_ledger(Name=ledger)["State"] == "ACTIVE"
        assert_same_journal(target, ledger, want)
        got = Served(target, ledger)
        assert got.active == want.active
        for text, rows in want.queries.items():
            assert got.queries[text] == rows, f"{text} differs from the source's"
        assert got.lookup == want.lookup, "the indexed lookup differs (rows or read IOs)"
        # The catalog: the same tables, status and indexes; the ids are kept, except that of the
        # table never written, which the export holds only inside a system revision's hash.
        before, after = table_summary(want.catalog), table_summary(got.catalog)
        assert set(after) == set(before)
        for name, (table_id, status, exprs) in before.items():
            assert after[name][1:] == (status, exprs), (name, before[name], after[name])
            if name == UNWRITTEN:
                assert after[name][0] == table_id or after[name][0] in new_table_ids, (after[name], notes)
            else:
                assert after[name][0] == table_id, f"table {name} lost its id {table_id}: {after[name]}"
        assert new_table_ids <= {after[UNWRITTEN][0]}, notes

        # New transactions extend the imported chain.
        d = make_driver(target, ledger)
        try:
            def write(txn):
                txn.execute_statement("INSERT INTO Cars ?", {"vin": "NEW", "price": 1})
                txn.execute_statement(f"INSERT INTO {UNWRITTEN} ?", {"u": 1})
                return list(txn.execute_statement("UPDATE Cars AS c SET c.price = 2 WHERE c.vin = 'V0'"))
            assert len(d.execute_lambda(write)) == 1
            assert run(d, "SELECT VALUE r.metadata.version FROM _ql_committed_Cars AS r "
                          "WHERE r.data.vin = 'V0'") == [want.v0_version[0] + 1]
            assert [r["price"] for r in run(d, "SELECT * FROM Cars WHERE vin = 'NEW'")] == [1]
            assert [r["u"] for r in run(d, f"SELECT * FROM {UNWRITTEN}")] == [1]
        finally:
            d.close()
        digest, strand, tip, _ = digest_of(qb, ledger)
        assert (strand, tip) == (want.strand, want.tip + 1)
        block, proof = get_block(qb, ledger, strand, tip, tip=tip)
        assert check_block(block, previous_block_hash=want.block_hashes[-1]) == bytes(block["blockHash"])
        assert digest == merkle(want.block_hashes + [bytes(block["blockHash"])])
        assert fold(block["blockHash"], proof) == digest
    finally:
        assert target.stop() == 0
    ok, _ = verified(target, ledger)
    assert int(ok["tip"]) == want.tip + 1 and base64.b64decode(ok["digest"]) == digest
    ok, more = verified(target, ledger, *saved)  # the old digest, now at an older tip
    assert len(more) == 1 and more[0].endswith(f"at sequenceNo {want.tip}"), more


# ---------------------------------------------------------------- 2. local copy, Ion binary, two windows

def test_import_from_local_copy_and_binary(moto, tmp_path):
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    a = job_server(moto, kinesis=False)
    try:
        q = qldb_client(a)
        ledger = small_ledger(a)  # P with an index, 4 inserts, an update
        start = created_second(q, ledger) - 60
        first_tip = digest_of(q, ledger)[2]
        split = wait_past_second(time.time())
        d = make_driver(a, ledger)
        try:
            run(d, "INSERT INTO P ?", [{"k": 10 + i, "v": f"w{i}"} for i in range(6)])
            assert len(run(d, "DELETE FROM P WHERE k = 0")) == 1
            doc = run(d, "SELECT VALUE r.metadata.id FROM _ql_committed_P AS r WHERE r.data.k = 1")[0]
            table_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'P'")[0]
            v0 = run(d, "SELECT * FROM history(P) AS h WHERE h.metadata.id = ? AND h.metadata.version = 0", doc)[0]
            out = run(d, "EXEC REDACT_REVISION ?, ?, ?", v0["blockAddress"], table_id, doc)
            assert out[0]["documentId"] == doc and out[0]["version"] == 0, out
            documents = by_hash(run(d, "SELECT * FROM P"))
            history = by_hash(run(d, "SELECT * FROM history(P)"))
        finally:
            d.close()
        digest, strand, tip, _ = digest_of(q, ledger)
        end = wait_past_second(time.time())
        _, journal = journal_blocks(q, ledger)
        assert any("redactionInfo" in b for b in journal)

        whole = exported(q, a, ledger, bucket, "binary/", start, end, "ION_BINARY")
        e = Export(s3, bucket, "binary/", whole, "ION_BINARY", strand)
        assert e.seqs == list(range(tip + 1)), "test setup: the export holds the whole journal"
        early = exported(q, a, ledger, bucket, "halves/", start, split, "ION_BINARY")
        late = exported(q, a, ledger, bucket, "halves/", split, end, "ION_BINARY")
    finally:
        a.close()
    early_ranges = manifest_ranges(s3, bucket, "halves/", early, strand)
    late_ranges = manifest_ranges(s3, bucket, "halves/", late, strand)
    # Test setup: the windows are adjacent and split the journal after block first_tip.
    assert early_ranges[0][0] == 0 and early_ranges[-1][1] == first_tip, early_ranges
    assert late_ranges[0][0] == first_tip + 1 and late_ranges[-1][1] == tip, late_ranges

    target = Server(data_dir=tmp_path / "imported")
    copy = tmp_path / "copy"
    download(s3, bucket, "binary/", copy)
    from_copy = new_name("copy")
    p = run_import(target, from_copy, str(copy), "--quiet")
    m, _ = imported(p, from_copy)
    assert p.stderr == "", "--quiet: nothing on stderr"
    assert base64.b64decode(m["digest"]) == digest, p.stdout
    assert (m["strand"], int(m["tip"]), int(m["blocks"])) == (strand, tip, tip + 1), p.stdout
    assert int(m["objects"]) == len(e.keys), p.stdout

    # Both windows' exports under one prefix; the endpoint from the SDK's own variable.
    from_halves = new_name("halves")
    p = run_import(target, from_halves, f"s3://{bucket}/halves/", "--quiet",
                   env=tool_env(AWS_ENDPOINT_URL_S3=moto.endpoint))
    m, _ = imported(p, from_halves)
    assert base64.b64decode(m["digest"]) == digest, p.stdout
    assert (m["strand"], int(m["tip"]), int(m["blocks"])) == (strand, tip, tip + 1), p.stdout
    assert int(m["objects"]) == len(early_ranges) + len(late_ranges), p.stdout

    p = cli(target, "verify")
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert sorted(VERIFIED_RE.match(line)["name"] for line in lines) == sorted([from_copy, from_halves]), p.stdout
    assert all(VERIFIED_RE.match(line)["digest"] == b64(digest) for line in lines), p.stdout

    target.start()
    try:
        qb = qldb_client(target)
        for name in (from_copy, from_halves):
            assert digest_of(qb, name)[:3] == (digest, strand, tip), name
            got_strand, got = journal_blocks(qb, name)
            assert got_strand == strand
            assert [H(b) for b in got] == [H(b) for b in journal], f"{name}: blocks differ from the source's"
            d = make_driver(target, name)
            try:
                assert by_hash(run(d, "SELECT * FROM P")) == documents, name
                assert by_hash(run(d, "SELECT * FROM history(P)")) == history, name
            finally:
                d.close()
    finally:
        assert target.stop() == 0


# ---------------------------------------------------------------- 3. refusals

def test_import_refusals(moto, tmp_path):
    s3 = s3_client(moto)
    bucket = new_bucket(s3)
    a = job_server(moto, ["--export-blocks-per-object", "3"], kinesis=False)
    try:
        q = qldb_client(a)
        ledger = small_ledger(a)  # blocks 0-7
        start = created_second(q, ledger) - 60
        old_digest, strand, old_tip, old_holder = digest_of(q, ledger)
        split = wait_past_second(time.time())
        d = make_driver(a, ledger)
        try:
            for k in (20, 21):
                run(d, "INSERT INTO P ?", {"k": k, "v": f"late{k}"})
        finally:
            d.close()
        digest, _, tip, tip_holder = digest_of(q, ledger)
        end = wait_past_second(time.time())
        exports = {}
        for prefix, fmt, window in [("good/", "ION_TEXT", (start, end)), ("damaged/", "ION_TEXT", (start, end)),
                                    ("deleted/", "ION_BINARY", (start, end)), ("json/", "JSON", (start, end)),
                                    ("late/", "ION_TEXT", (split, end))]:
            eid = exported(q, a, ledger, bucket, prefix, *window, fmt)
            exports[prefix] = Export(s3, bucket, prefix, eid, fmt, strand)
    finally:
        a.close()
    for prefix in ("good/", "damaged/", "deleted/", "json/"):
        assert exports[prefix].seqs == list(range(tip + 1)), prefix
    assert len(exports["good/"].objects) >= 3
    assert exports["late/"].seqs == list(range(old_tip + 1, tip + 1))

    target = Server(data_dir=tmp_path / "refusals")
    good = new_name("good")
    p = run_import(target, good, f"s3://{bucket}/good/", "--quiet",
                   env=tool_env(QLDB_LOCAL_S3_ENDPOINT=moto.endpoint))
    m, _ = imported(p, good)
    assert base64.b64decode(m["digest"]) == digest and int(m["tip"]) == tip, p.stdout

    def attempt(prefix):
        name = new_name("bad")
        line = refused(run_import(target, name, f"s3://{bucket}/{prefix}", "--quiet",
                                  "--s3-endpoint", moto.endpoint), name)
        no_ledger(target, name)
        return name, line

    middle = tip // 2
    # (a) One byte of a string in the middle block changed: still valid Ion, the hashes tell.
    key, first, last, _, _ = next(o for o in exports["damaged/"].objects if o[1] <= middle <= o[2])
    assert first > 0, "test setup: the middle block is not in the first object"
    body = s3_get(s3, bucket, key)
    lines = body.decode().split("\n")
    n = next(i for i, line in enumerate(lines)
             if line.strip() and simpleion.loads(line)["blockAddress"]["sequenceNo"] == middle)
    at = lines[n].find('"INSERT INTO P')
    assert at >= 0, lines[n]
    lines[n] = lines[n][:at + 2] + "n" + lines[n][at + 3:]  # "INSERT" -> "InSERT"
    damaged = "\n".join(lines).encode()
    assert len(damaged) == len(body) and sum(x != y for x, y in zip(damaged, body)) == 1
    assert len(simpleion.loads(damaged.decode(), single_value=False)) == last - first + 1
    s3.put_object(Bucket=bucket, Key=key, Body=damaged)
    name, line = attempt("damaged/")
    assert line.startswith(f"qldb-local import: ledger {name}: block {middle}: "), line

    # (b) A data object the completed manifest lists is gone.
    key = next(o[0] for o in exports["deleted/"].objects if o[1] <= middle <= o[2])
    s3.delete_object(Bucket=bucket, Key=key)
    _, line = attempt("deleted/")
    assert "missing" in line and key in line, line

    # (c) A JSON export: its hashes cannot be recomputed.
    _, line = attempt("json/")
    assert "JSON" in line, line

    # (d) An export of a later window only: block 0 is not there.
    _, line = attempt("late/")
    assert "block 0" in line, line

    # (e) A name that exists: refused, and that ledger is unchanged.
    line = refused(run_import(target, good, f"s3://{bucket}/good/", "--quiet", "--s3-endpoint", moto.endpoint),
                   good)
    assert "already exists" in line, line
    ok, _ = verified(target, good)
    assert base64.b64decode(ok["digest"]) == digest and int(ok["tip"]) == tip

    # (f) verify --digest: a digest saved at an older tip holds; a wrong one is refused.
    ok, more = verified(target, good, "--digest", b64(old_digest), "--digest-tip-address", old_holder["IonText"])
    assert len(more) == 1 and more[0].startswith(f"ok {good}: the saved digest "), more
    assert more[0].endswith(f"is the journal's digest at sequenceNo {old_tip}"), more
    for wrong, address in [(digest, old_holder["IonText"]), (old_digest, tip_holder["IonText"]),
                           (bytes(range(32)), tip_holder["IonText"])]:
        p = cli(target, "verify", "--ledger", good, "--digest", b64(wrong), "--digest-tip-address", address)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "differs" in p.stderr, p.stderr

    # A server running on the data dir: refused, nothing entered.
    target.start()
    try:
        busy = new_name("busy")
        line = refused(run_import(target, busy, f"s3://{bucket}/good/", "--quiet", "--s3-endpoint", moto.endpoint),
                       busy)
        assert "in use by" in line and "stop it first" in line, line
        # The catalog holds the one ledger imported, whatever was refused.
        assert [lg["Name"] for lg in qldb_client(target).list_ledgers()["Ledgers"]] == [good]
    finally:
        assert target.stop() == 0
    no_ledger(target, busy)
    files = sorted(f.name for f in (pathlib.Path(target.data_dir) / "ledgers").glob("*.sqlite"))
    assert files == [f"{good}.sqlite"], files


# Every test here works on SQLite files (skipped when the suite runs on PostgreSQL).
import pytest  # noqa: E402

pytestmark = pytest.mark.sqlite_files
