"""`qldb-local rebuild --storage URL` on a PostgreSQL-backed ledger (issue 14), through pyqldb
3.2.4 and boto3:

- `test_rebuild_regenerates_derived_tables_in_postgres`: a ledger written with pyqldb (an
  indexed table, updates, deletes, a dropped table) loses its `documents`, `index_entries` and
  upper digest-tree rows; `verify --storage` fails, `rebuild --storage` regenerates them into a
  new schema (the damaged one kept, unnamed, and reported), `verify --storage` passes, and a
  restarted server returns the same documents, history, catalog and GetDigest, answers an
  indexed lookup from the index, and takes new transactions.
- `test_rebuild_and_server_exclude_each_other`: rebuild exits 1 while a server runs on the
  database and changes nothing; a server refuses to start while a rebuild holds the database.
- `test_a_server_whose_connections_were_cut_follows_a_rebuild`: a rebuild that runs beside a
  server whose connections a PostgreSQL restart cut leaves that server committing into the
  rebuilt schema (its stale handle closes itself), never into the kept one.
- `test_rebuild_refuses_damaged_journal_in_postgres`: one byte of a middle block changed →
  verify and rebuild exit 1 ("journal itself is damaged") and the ledger's rows are unchanged.

Runs in the PostgreSQL pass (each Server gets a database of its own).
"""

import base64
import glob
import os
import re
import subprocess
import tempfile
import time

import pytest
from amazon.ion import simpleion

from conftest import make_client
from qldb_harness import Server, psql, storage_is_postgres
from qldb_session_helpers import create_ledger, ion_hash, make_driver, run
from test_rebuild import small_ledger

pytestmark = pytest.mark.skipif(not storage_is_postgres(),
                                reason="rebuilds PostgreSQL-backed ledgers; runs in the PostgreSQL pass")

REBUILT_RE = re.compile(
    r"^rebuilt (?P<name>\S+): (?P<blocks>\d+) blocks, digest (?P<digest>[A-Za-z0-9+/=]+) at "
    r"sequenceNo (?P<tip>\d+); (?P<documents>\d+) documents, (?P<tables>\d+) tables, "
    r"(?P<indexes>\d+) indexes; the previous data is kept in schema (?P<kept>qldb_l\d+) ")

# Derived tables a rebuild must reproduce exactly, with their key order. A document's `pos`
# is its place in scan order: renumbered by the replay, its order kept.
DERIVED = {
    "blocks": "seq",
    "merkle": "level, idx",
    "tables": "table_id",
    "indexes": "index_id",
    "documents": "pos",
    "revisions": "doc_id, version",
    "index_entries": "index_no, key, doc_id",
}
COLUMNS = {"documents": "doc_id, table_no, version, data"}


def cli(server, command, *extra, timeout=120):
    return subprocess.run([server.binary, command, *server.storage_args(), *extra],
                          capture_output=True, text=True, timeout=timeout)


def schema_of(server, ledger):
    out = psql(server.storage_url,
               f"SELECT schema_name FROM qldb_catalog.ledger_data WHERE name = '{ledger}'").strip()
    assert re.fullmatch(r"qldb_l\d+", out), out
    return out


def rows_of(server, schema, table, order):
    columns = COLUMNS.get(table, "*")
    return psql(server.storage_url, f"SELECT {columns} FROM {schema}.{table} ORDER BY {order}")


def leftovers():
    """The temporary directories of rebuilds and verifies that exist now."""
    return sorted(glob.glob(os.path.join(tempfile.gettempdir(), "qldb-local-rebuild-*")) +
                  glob.glob(os.path.join(tempfile.gettempdir(), "qldb-local-verify-*")))


def content(server, schema):
    return {t: rows_of(server, schema, t, o) for t, o in DERIVED.items()}


def by_hash(values):
    return sorted(ion_hash(v) for v in values)


def digest_of(qldb, ledger):
    r = qldb.get_digest(Name=ledger)
    return r["Digest"], r["DigestTipAddress"]


def test_rebuild_regenerates_derived_tables_in_postgres():
    s = Server().start()
    try:
        ledger = create_ledger(s)
        qldb = make_client(s.endpoint)
        d = make_driver(s, ledger)
        try:
            run(d, "CREATE TABLE Cars")
            run(d, "CREATE INDEX ON Cars (k)")
            run(d, "CREATE TABLE Scratch")
            rows = run(d, "INSERT INTO Cars ?", [{"k": i, "name": f"car-{i}"} for i in range(30)])
            ids = {i: r["documentId"] for i, r in enumerate(rows)}
            for i in range(0, 30, 7):
                assert len(run(d, "UPDATE Cars SET seen = true WHERE k = ?", i)) == 1
            for i in (3, 20):
                assert len(run(d, "DELETE FROM Cars WHERE k = ?", i)) == 1
            run(d, "INSERT INTO Scratch ?", [{"s": 1}, {"s": 2}])
            scratch_id = run(d, "SELECT VALUE tableId FROM information_schema.user_tables "
                                "WHERE name = 'Scratch'")[0]
            run(d, "DROP TABLE Scratch")
            before = {
                "select": by_hash(run(d, "SELECT * FROM Cars")),
                "history": by_hash(run(d, "SELECT * FROM history(Cars)")),
                "catalog": by_hash(run(d, "SELECT * FROM information_schema.user_tables")),
            }
            assert len(before["select"]) == 28
        finally:
            d.close()
        digest_before = digest_of(qldb, ledger)
        tip = simpleion.loads(digest_before[1]["IonText"])["sequenceNo"]
        assert s.stop() == 0

        old = schema_of(s, ledger)
        derived_before = content(s, old)
        psql(s.storage_url, f"DELETE FROM {old}.documents; DELETE FROM {old}.index_entries; "
                            f"DELETE FROM {old}.merkle WHERE level > 0;")

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)

        temps = leftovers()
        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert leftovers() == temps  # the private copy is gone
        lines = p.stdout.splitlines()
        assert len(lines) == 1, p.stdout  # no new index id: the old rows still named it
        m = REBUILT_RE.match(lines[0])
        assert m, p.stdout
        assert m["name"] == ledger
        assert (int(m["documents"]), int(m["tables"]), int(m["indexes"])) == (30, 2, 1)
        assert int(m["tip"]) == tip and int(m["blocks"]) == tip + 1
        assert base64.b64decode(m["digest"]) == digest_before[0]
        assert m["kept"] == old
        new = schema_of(s, ledger)
        assert new != old
        # The damaged schema is kept as it was.
        assert psql(s.storage_url, f"SELECT count(*) FROM {old}.documents").strip() == "0"
        assert content(s, new) == derived_before

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert p.stdout.startswith(f"ok {ledger}:"), p.stdout

        s.start()
        qldb = make_client(s.endpoint)
        assert digest_of(qldb, ledger) == digest_before
        d = make_driver(s, ledger)
        try:
            assert by_hash(run(d, "SELECT * FROM Cars")) == before["select"]
            assert by_hash(run(d, "SELECT * FROM history(Cars)")) == before["history"]
            assert by_hash(run(d, "SELECT * FROM information_schema.user_tables")) == before["catalog"]

            def lookup(txn):
                cursor = txn.execute_statement("SELECT * FROM Cars WHERE k = ?", 17)
                return list(cursor), cursor.get_consumed_ios()
            rows, ios = d.execute_lambda(lookup)
            assert [r["name"] for r in rows] == ["car-17"]
            assert ios == {"ReadIOs": 1}, ios  # answered from the rebuilt index

            def write(txn):
                txn.execute_statement("INSERT INTO Cars ?", {"k": 100})
                return list(txn.execute_statement("UPDATE Cars SET name = 'renamed' WHERE k = ?", 14))
            assert len(d.execute_lambda(write)) == 1
            assert run(d, "SELECT VALUE r.metadata.version FROM _ql_committed_Cars AS r "
                          "WHERE r.metadata.id = ?", ids[14]) == [2]
            run(d, f'UNDROP TABLE "{scratch_id}"')
            assert sorted(r["s"] for r in run(d, "SELECT * FROM Scratch")) == [1, 2]
        finally:
            d.close()
        assert s.stop() == 0
        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
    finally:
        s.close()


def test_rebuild_and_server_exclude_each_other():
    s = Server().start()
    try:
        ledger = small_ledger(s)
        schema = schema_of(s, ledger)
        before = content(s, schema)
        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "in use by a qldb-local server; stop it first" in p.stderr, p.stderr
        assert schema_of(s, ledger) == schema and content(s, schema) == before
        # Its lock's connection cut (as a restart of PostgreSQL would): its other connections
        # still show it serving.
        psql(s.storage_url, "SELECT pg_terminate_backend(pid) FROM pg_locks "
                            "WHERE locktype = 'advisory' AND classid = 7243013")
        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "in use by a qldb-local server; stop it first" in p.stderr, p.stderr
        d = make_driver(s, ledger)  # still serving
        try:
            assert len(run(d, "SELECT * FROM P")) == 4
        finally:
            d.close()
        assert s.stop() == 0

        # A session holding the in-service lock exclusively stands for a rebuild at work.
        exe = os.path.join(os.environ.get("QLDB_TEST_POSTGRES_BIN", "/usr/bin"), "psql")
        holder = subprocess.Popen([exe, "-q", "-d", s.storage_url], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, text=True)
        try:
            holder.stdin.write("SELECT pg_advisory_lock(7243013, 0);\n")
            holder.stdin.flush()
            deadline = time.time() + 10
            while psql(s.storage_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                      "AND classid = 7243013 AND granted").strip() != "1":
                assert time.time() < deadline, "the lock was not taken"
                time.sleep(0.05)
            p = subprocess.run([s.binary, "serve", "--listen", "127.0.0.1:0",
                                "--data-dir", s.data_dir, *s.storage_args()],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode != 0
            assert "a qldb-local rebuild is running on PostgreSQL at" in p.stderr + p.stdout, \
                (p.stdout, p.stderr)
        finally:
            holder.stdin.close()
            holder.wait(10)
        s.start()
        assert make_client(s.endpoint).describe_ledger(Name=ledger)["State"] == "ACTIVE"
    finally:
        s.close()


def test_rebuild_refuses_damaged_journal_in_postgres():
    s = Server().start()
    try:
        ledger = small_ledger(s)
        assert s.stop() == 0
        schema = schema_of(s, ledger)
        tip = int(psql(s.storage_url, f"SELECT max(seq) FROM {schema}.blocks"))
        middle = tip // 2
        assert 0 < middle < tip
        # Flip the case of one letter of the block's statement text: still valid Ion, so only
        # its hashes can tell.
        changed = psql(s.storage_url, f"""
            UPDATE {schema}.blocks
               SET ion = set_byte(ion, position('\\x494e5345525420494e544f2050'::bytea IN ion),
                                  get_byte(ion, position('\\x494e5345525420494e544f2050'::bytea IN ion)) # 32)
             WHERE seq = {middle} AND position('\\x494e5345525420494e544f2050'::bytea IN ion) > 0
            RETURNING seq""").strip()
        assert changed == str(middle), changed
        before = content(s, schema)

        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        p = cli(s, "rebuild", "--ledger", ledger)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith(f"qldb-local rebuild: ledger {ledger}"), p.stderr
        assert "journal itself is damaged" in p.stderr, p.stderr
        assert schema_of(s, ledger) == schema and content(s, schema) == before
        schemas = psql(s.storage_url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'qldb_l%'")
        assert schemas.strip() == "1", schemas  # the ledger's own, and nothing else
    finally:
        s.close()


def test_a_server_whose_connections_were_cut_follows_a_rebuild():
    """A restart of PostgreSQL cuts every connection of a running server, its in-service lock
    with them, so a rebuild may proceed beside it. Its handle of the ledger then names a
    schema that is no longer the ledger's data: its next statement finds that out, the
    session ends (the driver starts another), and the transaction commits into the rebuilt
    schema, never into the kept one."""
    s = Server().start()
    try:
        ledger = small_ledger(s)
        d = make_driver(s, ledger)
        try:
            assert len(run(d, "SELECT * FROM P")) == 4
            old = schema_of(s, ledger)
            psql(s.storage_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = 'qldb-local serve' "
                                "AND datname = current_database()")
            p = cli(s, "rebuild", "--ledger", ledger)
            assert p.returncode == 0, (p.stdout, p.stderr)
            new = schema_of(s, ledger)
            assert new != old
            run(d, "INSERT INTO P ?", {"k": 99, "v": "after"})
            assert sorted(r["k"] for r in run(d, "SELECT k FROM P")) == [0, 1, 2, 3, 99]
        finally:
            d.close()
        count = "SELECT count(*) FROM {}.documents"
        assert psql(s.storage_url, count.format(new)).strip() == "5"
        assert psql(s.storage_url, count.format(old)).strip() == "4"  # the kept schema, untouched
        assert s.stop() == 0
        p = cli(s, "verify", "--ledger", ledger)
        assert p.returncode == 0, (p.stdout, p.stderr)
    finally:
        s.close()
