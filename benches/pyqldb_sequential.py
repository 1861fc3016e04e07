#!/usr/bin/env python3
"""Sequential single-document inserts through the pinned pyqldb driver, as a test suite
makes them: one driver, one thread, one transaction after another.

    compat-tests/run-all.sh   # once: builds target/release/qldb-local and the venvs
    compat-tests/.venv/bin/python benches/pyqldb_sequential.py [--seconds 10] [--durability full]

Prints transactions/s and p50/p99 latency, and the server process's CPU time per
transaction (from /proc), so the client's own share of the time shows. Results go to
docs/performance.md.
"""

import argparse
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat-tests"))
from qldb_harness import ACCESS_KEY, REGION, SECRET_KEY, Server  # noqa: E402
from pyqldb.driver.qldb_driver import QldbDriver  # noqa: E402
import boto3  # noqa: E402

KW = dict(region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--durability", default="full", choices=["full", "relaxed"])
    args = ap.parse_args()

    server = Server(extra_args=["--durability", args.durability]).start()
    try:
        qldb = boto3.client("qldb", endpoint_url=server.endpoint, **KW)
        qldb.create_ledger(Name="seq", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        while qldb.describe_ledger(Name="seq")["State"] != "ACTIVE":
            time.sleep(0.05)
        driver = QldbDriver("seq", endpoint_url=server.endpoint, **KW)
        driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Items"))
        driver.execute_lambda(lambda t: t.execute_statement("CREATE INDEX ON Items (n)"))
        latencies = []
        cpu0 = cpu_seconds(server.proc.pid)
        client0 = time.process_time()
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < args.seconds:
            s = time.perf_counter()
            driver.execute_lambda(
                lambda t: t.execute_statement("INSERT INTO Items ?", {"n": i, "pad": "x" * 64}))
            latencies.append(time.perf_counter() - s)
            i += 1
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server.proc.pid) - cpu0
        client = time.process_time() - client0
        latencies.sort()
        n = len(latencies)
        print(f"pyqldb sequential single-document INSERT, durability {args.durability}: "
              f"{n / elapsed:.0f} tx/s   p50 {latencies[n // 2] * 1000:.2f} ms   "
              f"p99 {latencies[min(n - 1, int(n * 0.99))] * 1000:.2f} ms   ({n} tx)")
        print(f"server CPU per transaction: {cpu * 1e6 / n:.0f} µs "
              f"({cpu:.2f} s of {elapsed:.1f} s)")
        # The driver's own CPU time (botocore signing and parsing, Ion, the commit digest)
        # bounds a sequential client whatever the server does: at most 1 / that tx/s.
        print(f"client (pyqldb) CPU per transaction: {client * 1e6 / n:.0f} µs "
              f"({client:.2f} s; alone it allows at most {n / client:.0f} tx/s)")
        driver.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
