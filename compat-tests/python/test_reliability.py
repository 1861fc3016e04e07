"""Reliability under concurrency and crashes, through pyqldb 3.2.4 and `qldb-local verify`.

- `test_bank_transfers_conserve_money_under_occ`: K clients (one QldbDriver each, the default
  retry limit and backoff) move money between N accounts; afterwards the total is conserved, no
  balance (current or historical) is negative, every account's history is a contiguous version
  chain whose length and final balance match what the clients saw committed, the number of
  UPDATE revisions is exactly 2 x the committed transfers, and `verify` passes after SIGTERM.
- `test_kill9_during_concurrent_writers_loses_no_acknowledged_commit`: W writers insert
  {writer, seq} one per transaction while the server is SIGKILLed, several cycles; after each
  kill `verify` passes on the data dir and, after a restart, every acknowledged commit is there
  exactly once, nothing is duplicated, and nothing appears that no writer sent.

Sizes (defaults keep the module under a minute on a busy 2-core machine); `pytest -s` prints
the figures:
  QLDB_BANK_ACCOUNTS (10)  QLDB_BANK_CLIENTS (6)  QLDB_BANK_TRANSFERS (150, in total)
  QLDB_RELIABILITY_CYCLES (3)  QLDB_RELIABILITY_WRITERS (3)  QLDB_RELIABILITY_SEED (random)
A longer run, e.g.:
  QLDB_BANK_TRANSFERS=3000 QLDB_BANK_CLIENTS=12 QLDB_RELIABILITY_CYCLES=30 \
    compat-tests/.venv/bin/python -m pytest -q -s compat-tests/python/test_reliability.py
"""

import collections
import os
import random
import signal
import subprocess
import threading
import time

from botocore.config import Config
from pyqldb.config.retry_config import RetryConfig

from qldb_harness import Server
from qldb_session_helpers import create_ledger, make_driver, run


def env_int(name, default):
    return int(os.environ.get(name, default))


SEED = env_int("QLDB_RELIABILITY_SEED", random.SystemRandom().randrange(1 << 30))


def verify_cli(server, *extra):
    """`qldb-local verify` on the server's data dir or database; returns the CompletedProcess."""
    return subprocess.run([server.binary, "verify", *server.storage_args(), *extra],
                          capture_output=True, text=True, timeout=300)


def assert_verifies(server, when):
    p = verify_cli(server)
    assert p.returncode == 0, (
        f"qldb-local verify failed {when} (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")


def error_code(e):
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return resp.get("Error", {}).get("Code", type(e).__name__)
    return type(e).__name__


def run_threads(targets):
    """Runs each callable in its own thread; re-raises the first exception a thread raised."""
    failures = []

    def wrap(fn):
        def body():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported in the main thread
                failures.append(e)
        return body

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    return threads, failures


# ---------------------------------------------------------------- 1. bank transfers under OCC

def test_bank_transfers_conserve_money_under_occ():
    n_accounts = env_int("QLDB_BANK_ACCOUNTS", 10)
    n_clients = env_int("QLDB_BANK_CLIENTS", 6)
    n_transfers = env_int("QLDB_BANK_TRANSFERS", 150)
    initial = 1000
    assert n_accounts >= 2 and n_clients >= 1
    rng = random.Random(SEED)

    server = Server().start()
    try:
        ledger = create_ledger(server)
        setup = make_driver(server, ledger)
        try:
            run(setup, "CREATE TABLE Accounts")
            run(setup, "CREATE INDEX ON Accounts (id)")
            for lo in range(0, n_accounts, 40):
                docs = [{"id": i, "balance": initial} for i in range(lo, min(lo + 40, n_accounts))]
                assert len(run(setup, "INSERT INTO Accounts ?", docs)) == len(docs)
        finally:
            setup.close()

        lock = threading.Lock()
        stats = collections.Counter()
        retry_codes = collections.Counter()
        committed = []  # (src, dst, amount) of every transfer whose execute_lambda returned True

        def backoff(retry_attempt, error, transaction_id):
            # pyqldb 3.2.4 has no retry_indicator: count retries here, and back off exactly like
            # the default (equal jitter, base 10 ms, capped at 5 s).
            with lock:
                retry_codes[error_code(error)] += 1
            seed = min(10 * (1 << retry_attempt), 5000)
            return seed / 2 + random.randint(0, int(seed / 2))

        def client(k, count, seed):
            crng = random.Random(seed)
            driver = make_driver(server, ledger, retry_config=RetryConfig(custom_backoff=backoff))
            try:
                for _ in range(count):
                    src, dst = crng.sample(range(n_accounts), 2)
                    amount = crng.randint(1, 300)
                    calls = [0]

                    def transfer(txn):
                        calls[0] += 1
                        q = "SELECT a.balance FROM Accounts AS a WHERE a.id = ?"
                        a = list(txn.execute_statement(q, src))
                        b = list(txn.execute_statement(q, dst))
                        assert len(a) == 1 and len(b) == 1, (src, a, dst, b)
                        if a[0]["balance"] < amount:
                            return False
                        u = "UPDATE Accounts AS a SET a.balance = ? WHERE a.id = ?"
                        ra = list(txn.execute_statement(u, a[0]["balance"] - amount, src))
                        rb = list(txn.execute_statement(u, b[0]["balance"] + amount, dst))
                        assert len(ra) == 1 and len(rb) == 1, (ra, rb)
                        return True

                    try:
                        ok = driver.execute_lambda(transfer)
                    except Exception as e:  # noqa: BLE001
                        code = error_code(e)
                        with lock:
                            stats["gave up: " + code] += 1
                        # Only an OCC conflict past the retry limit is acceptable: it is known not
                        # to have committed. Anything else is ambiguous and is a failure here.
                        assert code == "OccConflictException", f"client {k}: unexpected {e!r}"
                        continue
                    with lock:
                        stats["lambda calls"] += calls[0]
                        if ok:
                            stats["committed"] += 1
                            committed.append((src, dst, amount))
                        else:
                            stats["skipped (insufficient)"] += 1
            finally:
                driver.close()

        per = [n_transfers // n_clients + (1 if i < n_transfers % n_clients else 0) for i in range(n_clients)]
        t0 = time.monotonic()
        threads, failures = run_threads(
            [lambda k=k, c=c, s=rng.randrange(1 << 30): client(k, c, s) for k, c in enumerate(per)])
        for t in threads:
            t.join(600)
        elapsed = time.monotonic() - t0
        assert not any(t.is_alive() for t in threads), "a client thread never finished"
        assert not failures, failures
        assert stats["committed"] > 0, stats

        # What the clients saw committed, replayed serially.
        expected = {i: initial for i in range(n_accounts)}
        updates = collections.Counter()
        for src, dst, amount in committed:
            expected[src] -= amount
            expected[dst] += amount
            updates[src] += 1
            updates[dst] += 1

        check = make_driver(server, ledger)
        try:
            rows = run(check, "SELECT a.id, a.balance FROM Accounts AS a")
            current = {r["id"]: r["balance"] for r in rows}
            assert len(rows) == n_accounts and sorted(current) == list(range(n_accounts)), rows
            assert sum(current.values()) == n_accounts * initial, current
            assert all(b >= 0 for b in current.values()), current
            assert current == expected, (
                f"final balances differ from the committed transfers replayed serially: "
                f"{current} != {expected}")

            hist = run(check, "SELECT h.metadata.id AS doc, h.metadata.version AS v, "
                              "h.data.id AS acct, h.data.balance AS bal FROM history(Accounts) AS h")
        finally:
            check.close()

        versions = collections.defaultdict(list)
        for h in hist:
            versions[h["acct"]].append((h["v"], h["doc"], h["bal"]))
            assert h["bal"] >= 0, f"negative balance in history: {h}"
        assert sorted(versions) == list(range(n_accounts)), sorted(versions)
        for acct, revs in versions.items():
            revs.sort()
            vs = [v for v, _, _ in revs]
            assert vs == list(range(len(vs))), f"account {acct}: versions not contiguous: {vs}"
            assert len({doc for _, doc, _ in revs}) == 1, f"account {acct}: several document ids"
            assert vs[-1] == updates[acct], (
                f"account {acct}: latest version {vs[-1]} but {updates[acct]} committed updates")
            assert revs[-1][2] == current[acct], (acct, revs[-1], current[acct])
        update_revisions = sum(1 for h in hist if h["v"] > 0)
        assert update_revisions == 2 * stats["committed"], (update_revisions, stats)

        retries = sum(retry_codes.values())
        print(f"\n[bank] seed={SEED} accounts={n_accounts} clients={n_clients} transfers={n_transfers} "
              f"in {elapsed:.1f}s: {dict(stats)}; retries={retries} {dict(retry_codes)}; "
              f"update revisions={update_revisions}")
        assert set(retry_codes) <= {"OccConflictException"}, retry_codes
        if not retry_codes.get("OccConflictException"):
            print("[bank] note: no OCC conflict happened (the clients were serialized)")

        code = server.stop(signal.SIGTERM)
        assert code == 0, f"SIGTERM exit code {code}; log: {server.log()}"
        assert_verifies(server, "after the bank run")
    finally:
        server.close()


# ---------------------------------------------------------------- 2. kill -9 during writers

def test_kill9_during_concurrent_writers_loses_no_acknowledged_commit():
    cycles = env_int("QLDB_RELIABILITY_CYCLES", 3)
    n_writers = env_int("QLDB_RELIABILITY_WRITERS", 3)
    rng = random.Random(SEED + 1)

    server = Server().start()
    try:
        ledger = create_ledger(server)
        setup = make_driver(server, ledger)
        try:
            run(setup, "CREATE TABLE Log")
        finally:
            setup.close()

        acked = set()       # (writer, seq) whose execute_lambda returned
        attempted = set()   # (writer, seq) ever sent
        next_seq = [0] * n_writers
        lock = threading.Lock()
        totals = collections.Counter()

        def writer(w, stop, first_ack):
            driver = make_driver(
                server, ledger, retry_config=RetryConfig(retry_limit=0),
                config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 0}))
            try:
                while not stop.is_set():
                    seq = next_seq[w]
                    next_seq[w] += 1
                    with lock:
                        attempted.add((w, seq))
                    try:
                        rows = driver.execute_lambda(
                            lambda txn: list(txn.execute_statement("INSERT INTO Log ?", {"writer": w, "seq": seq})))
                    except Exception as e:  # noqa: BLE001 - the server is being killed
                        with lock:
                            phase = "stop flag set" if stop.is_set() else "stop flag not yet set"
                            totals[f"errors ({phase})"] += 1
                            totals["error " + error_code(e)] += 1
                        time.sleep(0.02)
                        continue
                    assert len(rows) == 1, rows
                    with lock:
                        acked.add((w, seq))
                    first_ack.set()
            finally:
                try:
                    driver.close()
                except Exception:  # noqa: BLE001 - ending sessions on a dead server
                    pass

        def check(when):
            d = make_driver(server, ledger)
            try:
                rows = run(d, "SELECT l.writer, l.seq FROM Log AS l")
            finally:
                d.close()
            seen = collections.Counter((r["writer"], r["seq"]) for r in rows)
            dups = {k: n for k, n in seen.items() if n > 1}
            assert not dups, f"{when}: duplicated documents {dups}"
            lost = sorted(acked - set(seen))
            assert not lost, f"{when}: {len(lost)} acknowledged commits lost: {lost[:20]}"
            phantom = sorted(set(seen) - attempted)
            assert not phantom, f"{when}: documents no writer sent: {phantom[:20]}"
            return len(rows), len(set(seen) - acked)

        t0 = time.monotonic()
        for cycle in range(cycles):
            if server.proc is None:
                server.start()
            stop, first_ack = threading.Event(), threading.Event()
            threads, failures = run_threads(
                [lambda w=w: writer(w, stop, first_ack) for w in range(n_writers)])
            assert first_ack.wait(60), f"cycle {cycle}: no commit acknowledged; log: {server.log()}"
            time.sleep(rng.uniform(0.3, 1.0))
            code = server.stop(sig=signal.SIGKILL)
            stop.set()
            assert code == -signal.SIGKILL, f"cycle {cycle}: server exit code {code}"
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads), f"cycle {cycle}: a writer never stopped"
            assert not failures, failures

            assert_verifies(server, f"after SIGKILL in cycle {cycle}")
            server.start()
            rows, unacked_present = check(f"after SIGKILL in cycle {cycle}")
            totals["unacknowledged but committed (cumulative)"] = unacked_present
            print(f"\n[kill9] cycle {cycle}: acknowledged={len(acked)} attempted={len(attempted)} "
                  f"rows={rows} unacknowledged-present={unacked_present}")

        code = server.stop(signal.SIGTERM)
        assert code == 0, f"SIGTERM exit code {code}; log: {server.log()}"
        assert_verifies(server, "after the last cycle")
        print(f"[kill9] seed={SEED + 1} cycles={cycles} writers={n_writers} in {time.monotonic() - t0:.1f}s: "
              f"acknowledged={len(acked)} attempted={len(attempted)} {dict(totals)}")
        assert len(acked) >= cycles, acked
    finally:
        server.close()
