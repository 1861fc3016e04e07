"""Two qldb-local processes on one PostgreSQL database (issue 14), through pyqldb 3.2.4:

- `test_bank_transfers_through_two_servers`: K clients on each server move money between N
  accounts of one ledger at once; afterwards the total is conserved, the balances are what the
  committed transfers give when replayed serially, every account's history is a contiguous
  version chain, both servers report the same digest, and `qldb-local verify --storage` passes.
- `test_each_server_sees_the_others_ledgers`: a ledger created through one server is served
  by the other; deleted and created again through one, the other serves the new ledger.

Needs the PostgreSQL server run-all.sh starts (QLDB_TEST_POSTGRES_PORT); runs in the SQLite
pass only (each server is given --storage itself).
"""

import collections
import os
import random
import subprocess
import threading
import time

import pytest
from pyqldb.config.retry_config import RetryConfig

from qldb_harness import Server, fresh_postgres_database, psql, storage_is_postgres
from qldb_session_helpers import create_ledger, make_driver, run
from conftest import make_client

pytestmark = pytest.mark.skipif(
    "QLDB_TEST_POSTGRES_PORT" not in os.environ or storage_is_postgres(),
    reason="needs the test PostgreSQL server (run-all.sh); runs once, in the SQLite pass")


def two_servers():
    url = fresh_postgres_database()
    args = ["--storage", url, "--max-ledgers", "20"]
    return url, Server(extra_args=args).start(), Server(extra_args=args).start()


def test_bank_transfers_through_two_servers():
    n_accounts, per_server, transfers, initial = 8, 3, 120, 1000
    url, a, b = two_servers()
    try:
        ledger = create_ledger(a)
        assert make_client(b.endpoint).describe_ledger(Name=ledger)["State"] == "ACTIVE"
        setup = make_driver(a, ledger)
        try:
            run(setup, "CREATE TABLE Accounts")
            run(setup, "CREATE INDEX ON Accounts (id)")
            run(setup, "INSERT INTO Accounts ?",
                [{"id": i, "balance": initial} for i in range(n_accounts)])
        finally:
            setup.close()

        lock = threading.Lock()
        committed = []
        failures = []

        def client(server, count, seed):
            rng = random.Random(seed)
            driver = make_driver(server, ledger, retry_config=RetryConfig(retry_limit=20))
            try:
                for _ in range(count):
                    src, dst = rng.sample(range(n_accounts), 2)
                    amount = rng.randint(1, 300)

                    def transfer(txn):
                        q = "SELECT a.balance FROM Accounts AS a WHERE a.id = ?"
                        x = list(txn.execute_statement(q, src))[0]["balance"]
                        y = list(txn.execute_statement(q, dst))[0]["balance"]
                        if x < amount:
                            return False
                        u = "UPDATE Accounts AS a SET a.balance = ? WHERE a.id = ?"
                        txn.execute_statement(u, x - amount, src)
                        txn.execute_statement(u, y + amount, dst)
                        return True

                    if driver.execute_lambda(transfer):
                        with lock:
                            committed.append((src, dst, amount))
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)
            finally:
                driver.close()

        seeds = random.Random(7)
        threads = [threading.Thread(target=client, args=(s, transfers // (2 * per_server),
                                                         seeds.randrange(1 << 30)))
                   for s in (a, b) for _ in range(per_server)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads)
        assert not failures, failures
        assert committed

        expected = {i: initial for i in range(n_accounts)}
        updates = collections.Counter()
        for src, dst, amount in committed:
            expected[src] -= amount
            expected[dst] += amount
            updates[src] += 1
            updates[dst] += 1
        for server in (a, b):
            check = make_driver(server, ledger)
            try:
                rows = run(check, "SELECT a.id, a.balance FROM Accounts AS a")
                assert {r["id"]: r["balance"] for r in rows} == expected
                hist = run(check, "SELECT h.metadata.version AS v, h.data.id AS acct "
                                  "FROM history(Accounts) AS h")
            finally:
                check.close()
            versions = collections.defaultdict(list)
            for h in hist:
                versions[h["acct"]].append(h["v"])
            for acct, vs in versions.items():
                assert sorted(vs) == list(range(updates[acct] + 1)), (acct, sorted(vs))
        digests = [make_client(s.endpoint).get_digest(Name=ledger) for s in (a, b)]
        assert digests[0]["Digest"] == digests[1]["Digest"]
        assert digests[0]["DigestTipAddress"] == digests[1]["DigestTipAddress"]
        print(f"\n[two servers] {len(committed)} transfers in {time.monotonic() - t0:.1f}s")
    finally:
        a.close()
        b.close()
    p = subprocess.run([a.binary, "verify", "--storage", url], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"ok {ledger}:" in p.stdout


def test_each_server_sees_the_others_ledgers():
    _, a, b = two_servers()
    try:
        ledger = create_ledger(a)
        d = make_driver(b, ledger)
        try:
            run(d, "CREATE TABLE Old")
            run(d, "INSERT INTO Old ?", {"n": 1})
        finally:
            d.close()
        ca, cb = make_client(a.endpoint), make_client(b.endpoint)
        assert [x["Name"] for x in cb.list_ledgers()["Ledgers"]] == [ledger]

        cb.delete_ledger(Name=ledger)
        with pytest.raises(ca.exceptions.ResourceNotFoundException):
            ca.describe_ledger(Name=ledger)
        create_ledger(b, name=ledger)
        d = make_driver(a, ledger)
        try:
            assert run(d, "SELECT name FROM information_schema.user_tables") == []
            run(d, "CREATE TABLE New")
        finally:
            d.close()
        d = make_driver(b, ledger)
        try:
            names = run(d, "SELECT name FROM information_schema.user_tables")
            assert [n["name"] for n in names] == ["New"]
        finally:
            d.close()
        assert a.health()["ledgers"] == b.health()["ledgers"] == 1
    finally:
        a.close()
        b.close()


def test_verify_on_start_checks_the_database():
    _, a, b = two_servers()
    url = a.extra_args[a.extra_args.index("--storage") + 1]
    try:
        ledger = create_ledger(a)
        d = make_driver(a, ledger)
        try:
            run(d, "CREATE TABLE T")
            run(d, "INSERT INTO T ?", {"n": 1})
        finally:
            d.close()
    finally:
        a.close()
        b.close()
    checked = Server(extra_args=["--storage", url, "--verify-on-start"]).start()
    checked.close()
    schema = psql(url, f"SELECT schema_name FROM qldb_catalog.ledger_data WHERE name = '{ledger}'")
    psql(url, f"UPDATE {schema.strip()}.documents SET version = 5")
    refused = Server(extra_args=["--storage", url, "--verify-on-start"])
    with pytest.raises(RuntimeError, match="refusing to start"):
        refused.start(timeout=15)
    assert f"ledger {ledger}: the documents table's row for" in refused.log()
    refused.close()


def test_verify_checks_a_saved_digest_on_the_database():
    import base64

    url, a, b = two_servers()
    try:
        ledger = create_ledger(a)
        d = make_driver(b, ledger)
        try:
            run(d, "CREATE TABLE T")
            saved = make_client(a.endpoint).get_digest(Name=ledger)
            run(d, "INSERT INTO T ?", {"n": 2})
        finally:
            d.close()
    finally:
        a.close()
        b.close()
    digest = base64.b64encode(saved["Digest"]).decode()
    tip = saved["DigestTipAddress"]["IonText"]

    def verify(d):
        return subprocess.run([a.binary, "verify", "--storage", url, "--ledger", ledger,
                               "--digest", d, "--digest-tip-address", tip],
                              capture_output=True, text=True, timeout=120)

    ok = verify(digest)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"the saved digest {digest} is the journal's digest" in ok.stdout
    wrong = base64.b64encode(bytes(32)).decode()
    refused = verify(wrong)
    assert refused.returncode == 1
    assert "differs from the journal's digest" in refused.stderr
