"""Exports and streams on a PostgreSQL database two qldb-local servers share (issue 14), with
boto3 and pyqldb 3.2.4 against a real Kinesis endpoint (moto in server mode):

- `test_a_stream_moves_to_the_other_server_when_its_server_dies`: a stream started through
  server A runs there (B, polling every --stream-retry-ms, finds its lease taken and leaves
  it); A is killed with SIGKILL; B takes the stream over without a restart of its own, and the
  revisions committed through B afterwards reach Kinesis; the stream stays ACTIVE.
- `test_a_stream_whose_lease_is_cut_stops_and_is_taken_over`: the connection holding the
  stream's lease is terminated while A runs; A stops the stream's task ("lost the job's
  lease") instead of running it beside another server; exactly one server takes it over and
  later revisions reach Kinesis.

Needs the PostgreSQL server run-all.sh starts; runs in the SQLite pass only (each server is
given --storage itself).
"""

import os
import signal

import pytest

from export_stream_helpers import (  # noqa: F401  (moto is a fixture)
    KinesisReader,
    details_by_revision,
    full_log,
    job_server,
    kinesis_client,
    moto,
    new_kinesis_stream,
    qldb_client,
    start_stream,
    stream_status,
)
from qldb_harness import fresh_postgres_database, psql, storage_is_postgres
from qldb_session_helpers import create_ledger, make_driver, run

pytestmark = pytest.mark.skipif(
    "QLDB_TEST_POSTGRES_PORT" not in os.environ or storage_is_postgres(),
    reason="needs the test PostgreSQL server (run-all.sh); runs once, in the SQLite pass")


def insert(server, ledger, numbers):
    d = make_driver(server, ledger)
    try:
        return [run(d, "INSERT INTO T ?", {"n": n})[0]["documentId"] for n in numbers]
    finally:
        d.close()


def streaming_pair(moto):
    """Servers A and B on a new database; a ledger with table T and three documents; a stream
    started through A whose records of them have arrived. Returns (a, b, ledger, stream id,
    reader); the caller closes a and b."""
    url = fresh_postgres_database()
    a = job_server(moto, ["--storage", url])
    b = job_server(moto, ["--storage", url])
    kin = kinesis_client(moto)
    kname, karn = new_kinesis_stream(kin)
    ledger = create_ledger(a)
    d = make_driver(a, ledger)
    try:
        run(d, "CREATE TABLE T")
    finally:
        d.close()
    first = insert(a, ledger, range(3))
    sid = start_stream(qldb_client(a), ledger, karn)
    reader = KinesisReader(kin, kname)
    reader.wait_for(lambda rs: {(i, 0) for i in first} <= set(details_by_revision(rs)), 20,
                    "the first records")
    return a, b, ledger, sid, reader


def test_a_stream_moves_to_the_other_server_when_its_server_dies(moto):
    a, b, ledger, sid, reader = streaming_pair(moto)
    try:
        assert "taking over a job" not in full_log(b)  # A holds it
        a.stop(signal.SIGKILL)
        later = insert(b, ledger, range(10, 13))
        reader.wait_for(lambda rs: {(i, 0) for i in later} <= set(details_by_revision(rs)), 30,
                        lambda: f"the records committed after A died; B's log: {b.log()}")
        assert f"taking over a job no running server holds job={sid}" in full_log(b), b.log()
        assert stream_status(qldb_client(b), ledger, sid)["Status"] == "ACTIVE"
    finally:
        a.close()
        b.close()


def test_a_stream_whose_lease_is_cut_stops_and_is_taken_over(moto):
    a, b, ledger, sid, reader = streaming_pair(moto)
    try:
        # A took the stream's lease before the stream was visible to B's look for left jobs.
        assert "taking over a job" not in full_log(b), b.log()
        # The lease's connection cut (as a restart of PostgreSQL or a network fault would): A
        # stops the stream's task rather than run it beside another server.
        psql(a.extra_args[a.extra_args.index("--storage") + 1],
             "SELECT pg_terminate_backend(pid) FROM pg_locks "
             "WHERE locktype = 'advisory' AND classid = 7243012")
        later = insert(a, ledger, range(10, 13))
        reader.wait_for(lambda rs: {(i, 0) for i in later} <= set(details_by_revision(rs)), 30,
                        lambda: f"the records after the cut; logs: {a.log()} {b.log()}")
        assert "lost the job's lease" in full_log(a), a.log()
        takeovers = [full_log(s).count(f"taking over a job no running server holds job={sid}")
                     for s in (a, b)]
        assert sum(takeovers) == 1, takeovers
        assert stream_status(qldb_client(a), ledger, sid)["Status"] == "ACTIVE"
    finally:
        a.close()
        b.close()
