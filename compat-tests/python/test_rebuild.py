"""`qldb-local rebuild` and the start-up consistency check, through pyqldb 3.2.4 and boto3.

- `test_rebuild_regenerates_derived_tables`: a ledger written with pyqldb (a table with an
  index, ~50 documents, updates, deletes, a dropped table) loses its `documents` and
  `index_entries` rows; `verify` fails, `rebuild` regenerates them, `verify` passes, and a
  restarted server returns the same documents, committed view, history, catalog and GetDigest
  as before the damage, answers an indexed lookup from the index, and takes new transactions.
- `test_rebuild_refused_while_server_runs`: rebuild exits 1 ("in use by a qldb-local server
  ... stop it first"), changes nothing, and the server keeps serving.
- `test_server_refuses_inconsistent_ledger`: a cut journal tip or a dropped SQLite index makes
  the server exit non-zero at start-up with "cannot be served" naming the ledger (no hang);
  rebuild refuses the lost block (the file remembers it) and repairs the schema damage.
- `test_rebuild_refuses_damaged_journal`: one byte of a middle block's Ion changed → verify and
  rebuild exit 1 ("journal itself is damaged"), and the ledger file's content is unchanged.

The damage is done with Python's sqlite3 on `<data_dir>/ledgers/<name>.sqlite` while no server
runs.
"""

import base64
import contextlib
import datetime
import decimal
import os
import pathlib
import re
import signal
import sqlite3
import subprocess

import pytest
from amazon.ion import simpleion

from conftest import make_client
from qldb_harness import Server
from qldb_session_helpers import create_ledger, ion_hash, make_driver, run

REBUILT_RE = re.compile(
    r"^rebuilt (?P<name>\S+): (?P<blocks>\d+) blocks, digest (?P<digest>[A-Za-z0-9+/=]+) at "
    r"sequenceNo (?P<tip>\d+); (?P<documents>\d+) documents, (?P<tables>\d+) tables, "
    r"(?P<indexes>\d+) indexes; the previous file is kept as (?P<backup>.+)$")

# Derived tables whose rows a rebuild must reproduce exactly (key columns first).
DERIVED = {
    "blocks": "seq",
    "merkle": "level, idx",
    "tables": "table_id",
    "indexes": "index_id",
    "documents": "doc_id",
    "revisions": "doc_id, version",
    "index_entries": "index_no, key, doc_id",
    "index_key_seq": "index_id, key",
}


# ---------------------------------------------------------------- helpers

def cli(server, command, *extra, timeout=60):
    """`qldb-local <command> --data-dir <dir> ...`; returns the CompletedProcess."""
    return subprocess.run([server.binary, command, "--data-dir", server.data_dir, *extra],
                          capture_output=True, text=True, timeout=timeout)


def ledger_path(server, ledger) -> pathlib.Path:
    return pathlib.Path(server.data_dir) / "ledgers" / f"{ledger}.sqlite"


@contextlib.contextmanager
def ledger_sql(server, ledger):
    """A sqlite3 connection on the ledger file (autocommit; closed, and so checkpointed, after)."""
    path = ledger_path(server, ledger)
    assert path.is_file(), path
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def table_rows(conn, table, order):
    return conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()


def file_content(server, ledger):
    """The logical content of a ledger file: its schema and every row of every table."""
    with ledger_sql(server, ledger) as conn:
        return sorted(conn.iterdump())


def other_files(server):
    """Every file under the data dir except the lock and the ledger files' -wal/-shm."""
    root = pathlib.Path(server.data_dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != ".lock" and not p.name.endswith(("-wal", "-shm")))


def by_hash(values):
    """Ion values as a sorted list of their Ion Hashes (Ion data-model equality, as a multiset)."""
    return sorted(ion_hash(v) for v in values)


def digest_of(qldb, ledger):
    r = qldb.get_digest(Name=ledger)
    return r["Digest"], r["DigestTipAddress"]


def tip_of(tip_address):
    return simpleion.loads(tip_address["IonText"])["sequenceNo"]


def read_cursor(driver, statement, *params):
    """Runs one statement; returns (rows, consumed IOs) as pyqldb's StreamCursor reports them."""
    def body(txn):
        cursor = txn.execute_statement(statement, *params)
        rows = list(cursor)
        return rows, cursor.get_consumed_ios()
    return driver.execute_lambda(body)


def expect_start_refused(server, ledger):
    """The server exits non-zero at start-up (no hang) and says why; returns what it logged."""
    log_path = pathlib.Path(server.log_path)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with pytest.raises(RuntimeError, match=r"exited with [1-9]"):
        server.start(timeout=20)
    log = log_path.read_bytes()[offset:].decode(errors="replace")
    server.stop()
    assert server.proc is None
    assert "cannot be served" in log, log
    assert f"ledger {ledger}" in log, log
    return log


def small_ledger(server):
    """A ledger with a table, an index and a few documents in several blocks; returns its name."""
    ledger = create_ledger(server)
    d = make_driver(server, ledger)
    try:
        run(d, "CREATE TABLE P")
        run(d, "CREATE INDEX ON P (k)")
        for i in range(4):
            run(d, "INSERT INTO P ?", {"k": i, "v": f"v{i}"})
        run(d, "UPDATE P SET v = 'changed' WHERE k = 1")
    finally:
        d.close()
    return ledger


def car(i):
    """A document with Ion types whose fidelity matters (decimal precision, timestamps, blobs)."""
    return {
        "k": i,
        "name": f"car-{i}",
        "price": decimal.Decimal(f"{1000 + i}.250"),
        "made": datetime.datetime(2020, 1, 1 + i % 28, 12, 30, i % 60, tzinfo=datetime.timezone.utc),
        "plate": bytes([i, 255 - i, 7]),
        "tags": ["a", i, None, {"nested": [i]}],
    }


# ---------------------------------------------------------------- 1. end to end

def test_rebuild_regenerates_derived_tables():
    s = Server().start()
    try:
        ledger = create_ledger(s)
        qldb = make_client(s.endpoint)
        d = make_driver(s, ledger)
        try:
            run(d, "CREATE TABLE Cars")
            run(d, "CREATE INDEX ON Cars (k)")
            run(d, "CREATE TABLE Scratch")
            ids = {}
            for lo in (0, 25):
                rows = run(d, "INSERT INTO Cars ?", [car(i) for i in range(lo, lo + 25)])
                assert len(rows) == 25
                ids.update({lo + n: r["documentId"] for n, r in enumerate(rows)})
            for i in range(0, 50, 7):  # 8 documents updated, k=0 and k=14 twice
                # One {documentId} per SET assignment, as QLDB (docs/compatibility.md).
                rows = run(d, "UPDATE Cars SET price = ?, seen = true WHERE k = ?",
                           decimal.Decimal("1.50"), i)
                assert [r["documentId"] for r in rows] == [ids[i]] * 2
            for i in (0, 14):
                assert len(run(d, "UPDATE Cars AS c SET c.tags = ['again'] WHERE c.k = ?", i)) == 1
            for i in (3, 20, 41, 49):
                assert len(run(d, "DELETE FROM Cars WHERE k = ?", i)) == 1
            run(d, "INSERT INTO Scratch ?", [{"s": 1}, {"s": 2}])
            scratch_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables "
                                "WHERE name = 'Scratch'")[0]
            run(d, "DROP TABLE Scratch")

            before = {
                "select": by_hash(run(d, "SELECT * FROM Cars")),
                "committed": by_hash(run(d, "SELECT * FROM _ql_committed_Cars")),
                "history": by_hash(run(d, "SELECT * FROM history(Cars)")),
                "catalog": by_hash(run(d, "SELECT * FROM information_schema.user_tables")),
            }
            assert len(before["select"]) == 46
            assert len(before["history"]) == 50 + 10 + 4
        finally:
            d.close()
        digest_before = digest_of(qldb, ledger)
        tip = tip_of(digest_before[1])

        assert s.stop(signal.SIGTERM) == 0
        with ledger_sql(s, ledger) as conn:
            derived_before = {t: table_rows(conn, t, o) for t, o in DERIVED.items()}
            # 46 live Cars and the 2 of the dropped Scratch table; Cars, Scratch; the one index.
            assert len(derived_before["documents"]) == 48
            assert len(derived_before["tables"]) == 2
            assert len(derived_before["indexes"]) == 1
            assert len(derived_before["index_entries"]) == 46
            conn.executescript("DELETE FROM documents; DELETE FROM index_entries;")

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)

        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.startswith(f"rebuilt {ledger}:"), p.stdout
        lines = p.stdout.splitlines()
        assert len(lines) == 1, p.stdout  # no "got a new id" note: the index id was kept
        m = REBUILT_RE.match(lines[0])
        assert m, p.stdout
        assert m["name"] == ledger
        assert int(m["documents"]) == 48
        assert int(m["tables"]) == 2
        assert int(m["indexes"]) == 1
        assert int(m["tip"]) == tip
        assert int(m["blocks"]) == tip + 1
        assert base64.b64decode(m["digest"]) == digest_before[0]
        backup = pathlib.Path(m["backup"])
        assert backup.is_file(), backup
        assert backup.parent == pathlib.Path(s.data_dir) / "rebuild-backups"
        with contextlib.closing(sqlite3.connect(backup)) as old:  # the damaged file, as it was
            assert old.execute("SELECT count(*) FROM documents").fetchone() == (0,)
            assert old.execute("SELECT count(*) FROM blocks").fetchone() == (tip + 1,)
        assert not [f for f in os.listdir(ledger_path(s, ledger).parent) if ".tmp-" in f]

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.startswith(f"ok {ledger}:"), p.stdout

        # Every derived table holds exactly the rows the server itself had written.
        with ledger_sql(s, ledger) as conn:
            derived_after = {t: table_rows(conn, t, o) for t, o in DERIVED.items()}
        for t in DERIVED:
            assert derived_after[t] == derived_before[t], f"table {t} differs after rebuild"

        s.start()
        qldb = make_client(s.endpoint)
        assert digest_of(qldb, ledger) == digest_before
        d = make_driver(s, ledger)
        try:
            assert by_hash(run(d, "SELECT * FROM Cars")) == before["select"]
            assert by_hash(run(d, "SELECT * FROM _ql_committed_Cars")) == before["committed"]
            assert by_hash(run(d, "SELECT * FROM history(Cars)")) == before["history"]
            assert by_hash(run(d, "SELECT * FROM information_schema.user_tables")) == before["catalog"]

            # The lookup is answered from the rebuilt index: one document read, not a scan.
            rows, ios = read_cursor(d, "SELECT * FROM Cars WHERE k = ?", 17)
            assert [ion_hash(r) for r in rows] == [ion_hash(car(17))]
            assert ios == {"ReadIOs": 1}, ios
            rows, ios = read_cursor(d, "SELECT * FROM Cars WHERE k = ?", 20)  # deleted
            assert rows == [] and ios is None, (rows, ios)  # pyqldb reports 0 ReadIOs as None
            rows = run(d, "SELECT r.data.k, r.metadata.version FROM _ql_committed_Cars AS r "
                          "WHERE r.metadata.id = ?", ids[14])
            assert [(r["k"], r["version"]) for r in rows] == [(14, 2)]

            # New transactions commit: an insert and an update of a pre-rebuild document.
            def write(txn):
                txn.execute_statement("INSERT INTO Cars ?", car(100))
                return list(txn.execute_statement("UPDATE Cars SET name = 'renamed' WHERE k = ?", 14))
            assert len(d.execute_lambda(write)) == 1
            assert [r["name"] for r in run(d, "SELECT name FROM Cars WHERE k = ?", 14)] == ["renamed"]
            assert len(run(d, "SELECT * FROM Cars WHERE k = ?", 100)) == 1
            rows = run(d, "SELECT VALUE r.metadata.version FROM _ql_committed_Cars AS r "
                          "WHERE r.metadata.id = ?", ids[14])
            assert rows == [3]
            assert len(run(d, "SELECT * FROM Cars")) == 47

            # The dropped table kept its id and documents through the rebuild.
            run(d, f'UNDROP TABLE "{scratch_id}"')
            assert sorted(r["s"] for r in run(d, "SELECT * FROM Scratch")) == [1, 2]
        finally:
            d.close()
        digest, tip_address = digest_of(qldb, ledger)
        assert tip_of(tip_address) == tip + 2
        assert digest != digest_before[0]
        assert s.stop() == 0
        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
    finally:
        s.close()


# ---------------------------------------------------------------- 2. refused while serving

def test_rebuild_refused_while_server_runs():
    s = Server().start()
    try:
        ledger = small_ledger(s)
        files = other_files(s)
        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith(f"qldb-local rebuild: ledger {ledger}"), p.stderr
        assert "in use by a qldb-local server" in p.stderr, p.stderr
        assert "stop it first" in p.stderr, p.stderr
        assert other_files(s) == files  # no backup, no temporary file

        # The server keeps serving reads and writes.
        d = make_driver(s, ledger)
        try:
            run(d, "INSERT INTO P ?", {"k": 9})
            assert sorted(r["k"] for r in run(d, "SELECT * FROM P")) == [0, 1, 2, 3, 9]
        finally:
            d.close()
        assert s.health()["ledgers"] == 1
        assert s.stop() == 0
        assert cli(s, "verify", "--ledger", ledger).returncode == 0
    finally:
        s.close()


# ---------------------------------------------------------------- 3. start-up check

CUT_TIP = "DELETE FROM blocks WHERE seq = (SELECT max(seq) FROM blocks)"
DROP_SQLITE_INDEX = "DROP INDEX documents_by_table"


@pytest.mark.parametrize("damage", [CUT_TIP, DROP_SQLITE_INDEX], ids=["cut-tip", "dropped-index"])
def test_server_refuses_inconsistent_ledger(damage):
    s = Server().start()
    try:
        ledger = small_ledger(s)
        assert s.stop() == 0
        with ledger_sql(s, ledger) as conn:
            tip = conn.execute("SELECT max(seq) FROM blocks").fetchone()[0]
            conn.execute(damage)

        log = expect_start_refused(s, ledger)
        if damage == CUT_TIP:
            assert cli(s, "verify", "--ledger", ledger).returncode == 1
        else:
            assert "documents_by_table" in log, log
            # verify makes the server's opening checks too: it names the same damage.
            p = cli(s, "verify", "--ledger", ledger)
            assert p.returncode == 1 and "documents_by_table" in p.stderr, (p.stdout, p.stderr)

        p = cli(s, "rebuild", "--ledger", ledger)
        if damage == CUT_TIP:
            # The file still remembers the lost block: a rebuild would drop a committed
            # transaction, so it is refused and the server still refuses the ledger.
            assert p.returncode == 1, (p.stdout, p.stderr)
            assert p.stderr.startswith(f"qldb-local rebuild: ledger {ledger}"), p.stderr
            assert "blocks were lost" in p.stderr, p.stderr
            assert f"ends at block {tip - 1}" in p.stderr, p.stderr
            assert not (pathlib.Path(s.data_dir) / "rebuild-backups").exists()
            expect_start_refused(s, ledger)
            return

        # The schema damage is repaired by a rebuild; the server then serves the ledger.
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.startswith(f"rebuilt {ledger}: "), p.stdout
        assert "; 4 documents, 1 tables, 1 indexes;" in p.stdout, p.stdout
        assert cli(s, "verify", "--ledger", ledger).returncode == 0
        s.start()
        d = make_driver(s, ledger)
        try:
            rows, ios = read_cursor(d, "SELECT * FROM P WHERE k = ?", 1)
            assert [(r["k"], r["v"]) for r in rows] == [(1, "changed")]
            assert ios == {"ReadIOs": 1}, ios
            run(d, "INSERT INTO P ?", {"k": 4})
            assert len(run(d, "SELECT * FROM P")) == 5
        finally:
            d.close()
    finally:
        s.close()


# ---------------------------------------------------------------- 4. damaged journal

def test_rebuild_refuses_damaged_journal():
    s = Server().start()
    try:
        ledger = small_ledger(s)
        assert s.stop() == 0
        with ledger_sql(s, ledger) as conn:
            tip = conn.execute("SELECT max(seq) FROM blocks").fetchone()[0]
            middle = tip // 2
            assert 0 < middle < tip
            (data,) = conn.execute("SELECT ion FROM blocks WHERE seq = ?", (middle,)).fetchone()
            # Change one letter of the block's statement text: the block stays valid Ion, so
            # only its hashes can tell.
            at = data.find(b"INSERT INTO P")
            assert at > 0, data
            damaged = bytearray(data)
            damaged[at + 1] ^= 0x20  # 'N' -> 'n'
            conn.execute("UPDATE blocks SET ion = ? WHERE seq = ?", (bytes(damaged), middle))
            assert conn.execute("SELECT typeof(ion), length(ion) FROM blocks WHERE seq = ?",
                                (middle,)).fetchone() == ("blob", len(data))
        content = file_content(s, ledger)
        files = other_files(s)

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)

        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith(f"qldb-local rebuild: ledger {ledger}"), p.stderr
        assert "journal itself is damaged" in p.stderr, p.stderr

        assert file_content(s, ledger) == content
        assert other_files(s) == files  # no backup, no temporary file left
    finally:
        s.close()


# Every test here works on SQLite files (skipped when the suite runs on PostgreSQL).
pytestmark = pytest.mark.sqlite_files
