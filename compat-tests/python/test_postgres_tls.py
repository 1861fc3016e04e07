"""TLS to PostgreSQL (issue 14: managed PostgreSQL services require it), with libpq's sslmode
meanings, against the test server run-all.sh starts with TLS on (compat-tests/postgres/start.sh:
a test CA signs a certificate that names `localhost` only):

- `test_server_over_verified_tls`: a server on `sslmode=verify-full&sslrootcert=CA` to
  `localhost` serves pyqldb, and PostgreSQL reports every one of its connections encrypted.
- `test_sslmodes_check_what_libpq_checks`: `require` encrypts without checking the
  certificate; `verify-ca` checks the chain but not the name; `verify-full` checks both
  (127.0.0.1 is not a name the certificate has); without a CA the system's roots do not know
  the test CA; a missing sslrootcert file is named; a server refused by TLS exits with one
  line saying why; a Unix-socket connection string still connects.

Runs in the SQLite pass (each server is given --storage itself).
"""

import os
import subprocess

import pytest

from qldb_harness import Server, fresh_postgres_database, psql, storage_is_postgres
from qldb_session_helpers import create_ledger, make_driver, run

CA = os.environ.get("QLDB_TEST_POSTGRES_CA", "")

pytestmark = pytest.mark.skipif(
    "QLDB_TEST_POSTGRES_PORT" not in os.environ or storage_is_postgres() or not os.path.isfile(CA),
    reason="needs the test PostgreSQL server with TLS (run-all.sh); runs in the SQLite pass")


def variant(base, host, query):
    return base.replace("@127.0.0.1:", f"@{host}:") + "?" + query


def verify(url):
    env = {k: v for k, v in os.environ.items() if k != "PGSSLROOTCERT"}
    return subprocess.run([os.environ["QLDB_LOCAL_BIN"], "verify", "--storage", url],
                          capture_output=True, text=True, timeout=60, env=env)


def test_server_over_verified_tls():
    base = fresh_postgres_database()
    s = Server(extra_args=["--storage",
                           variant(base, "localhost", f"sslmode=verify-full&sslrootcert={CA}")]).start()
    try:
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        try:
            run(d, "CREATE TABLE T")
            run(d, "INSERT INTO T ?", [{"n": i} for i in range(5)])
            assert sorted(r["n"] for r in run(d, "SELECT n FROM T")) == list(range(5))
        finally:
            d.close()
        out = psql(base, "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s "
                         "JOIN pg_stat_activity a USING (pid) "
                         "WHERE a.application_name = 'qldb-local serve' "
                         "AND a.datname = current_database()").strip()
        count, encrypted = out.split("|")
        assert int(count) >= 2 and encrypted == "t", out  # the pool and the in-service lock
    finally:
        s.close()


def test_sslmodes_check_what_libpq_checks():
    base = fresh_postgres_database()
    for query in ("sslmode=require", f"sslmode=verify-ca&sslrootcert={CA}"):
        p = verify(variant(base, "127.0.0.1", query))
        assert p.returncode == 0, (query, p.stdout, p.stderr)
    p = verify(variant(base, "localhost", f"sslmode=verify-full&sslrootcert={CA}"))
    assert p.returncode == 0, (p.stdout, p.stderr)
    # A Unix socket (no host name, no TLS) still connects with the TLS connector in place.
    port, db = base.rsplit(":", 1)[1].split("/")
    socket_dir = os.path.dirname(CA)  # start.sh puts the socket beside ca.pem
    p = verify(f"host={socket_dir} port={port} user=qldb password=qldb dbname={db}")
    assert p.returncode == 0, (p.stdout, p.stderr)

    refused = {
        f"sslmode=verify-full&sslrootcert={CA}": 'certificate not valid for name "127.0.0.1"',
        "sslmode=verify-full": "UnknownIssuer",
        "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem": "cannot read sslrootcert /nonexistent/ca.pem",
    }
    for query, said in refused.items():
        p = verify(variant(base, "127.0.0.1", query))
        assert p.returncode == 1, (query, p.stdout, p.stderr)
        assert said in p.stderr, (query, p.stderr)
        assert "qldb:qldb@" not in p.stderr  # never the password

    url = variant(base, "127.0.0.1", f"sslmode=verify-full&sslrootcert={CA}")
    p = subprocess.run([os.environ["QLDB_LOCAL_BIN"], "serve", "--listen", "127.0.0.1:0",
                        "--storage", url], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    lines = [l for l in (p.stdout + p.stderr).splitlines() if "cannot connect to PostgreSQL" in l]
    assert len(lines) == 1 and "TLS handshake" in lines[0], (p.stdout, p.stderr)
