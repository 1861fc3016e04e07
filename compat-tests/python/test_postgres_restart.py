"""PostgreSQL restarted under load (issue 14): writers keep inserting through pyqldb 3.2.4
while the database server is restarted (fast shutdown: every connection is cut). Requests in
flight fail with a retryable error (the driver retries them), service resumes on the same
qldb-local process without a restart of it, every acknowledged insert is in the ledger, and
`qldb-local verify --storage` passes.

Starts a PostgreSQL server of its own (compat-tests/postgres/start.sh), so that the shared
test server of the other suites is never restarted. Runs in the SQLite pass only.
"""

import collections
import os
import pathlib
import subprocess
import tempfile
import threading
import time

import pytest
from pyqldb.config.retry_config import RetryConfig

from qldb_harness import Server, storage_is_postgres
from qldb_session_helpers import create_ledger, make_driver, run

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "compat-tests" / "postgres"

pytestmark = pytest.mark.skipif(
    storage_is_postgres(), reason="starts a PostgreSQL server of its own; runs in the SQLite pass")


def error_code(e):
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):
        return resp.get("Error", {}).get("Code", type(e).__name__)
    return type(e).__name__


def test_writes_resume_after_postgres_restarts():
    pg_dir = tempfile.mkdtemp(prefix="qldb-pg-restart-")
    url = subprocess.run([SCRIPTS / "start.sh", pg_dir], check=True, capture_output=True,
                         text=True).stdout.strip()
    server = None
    try:
        server = Server(extra_args=["--storage", url]).start()
        ledger = create_ledger(server)
        setup = make_driver(server, ledger)
        try:
            run(setup, "CREATE TABLE Writes")
        finally:
            setup.close()

        lock = threading.Lock()
        acked = []
        retried = collections.Counter()
        stop = threading.Event()
        failures = []

        def backoff(attempt, error, transaction_id):
            with lock:
                retried[error_code(error)] += 1
            return min(20 * (1 << attempt), 500)

        def writer(w):
            driver = make_driver(server, ledger,
                                 retry_config=RetryConfig(retry_limit=10, custom_backoff=backoff))
            try:
                n = 0
                while not stop.is_set():
                    driver.execute_lambda(
                        lambda txn: txn.execute_statement("INSERT INTO Writes ?", {"w": w, "n": n}))
                    with lock:
                        acked.append((w, n))
                    n += 1
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)
            finally:
                driver.close()

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = len(acked)
        subprocess.run([SCRIPTS / "restart.sh", pg_dir], check=True)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(120)
        assert not failures, failures
        after = len(acked)
        assert before > 0 and after > before, (before, after)
        # The requests the restart cut were retryable, and were retried.
        assert set(retried) <= {"InternalFailure", "OccConflictException"}, retried

        check = make_driver(server, ledger)
        try:
            rows = run(check, "SELECT w.w, w.n FROM Writes AS w")
        finally:
            check.close()
        stored = collections.Counter((r["w"], r["n"]) for r in rows)
        missing = [a for a in acked if a not in stored]
        assert not missing, f"acknowledged inserts missing after the restart: {missing[:5]}"
        print(f"\n[pg restart] {before} inserts before the restart, {after} in all; "
              f"retries {dict(retried)}; rows {len(rows)}")
        p = subprocess.run([server.binary, "verify", "--storage", url], capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        if server is not None:
            server.close()
        subprocess.run([SCRIPTS / "stop.sh", pg_dir], check=False)
        assert not os.path.exists(pg_dir)
