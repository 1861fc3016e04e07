#!/usr/bin/env python3
"""Measures qldb-local's time from process start to a ready /health, its resident memory
once started and idle (VmRSS, Linux), and its binary size.

    cargo build --release && python3 benches/startup.py [--runs 20] [--ledgers 0]

With --ledgers N the data dir first holds N ledgers (created through the API), so the
figure includes opening and migrating each ledger file. Results go to docs/performance.md.
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_rss_kib(pid):
    """The process's resident set size in KiB (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def start(binary, data_dir, port, extra=()):
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir, "--auth", "off", *extra],
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return p, (time.perf_counter() - t0) * 1000
        except OSError:
            if p.poll() is not None:
                raise SystemExit("qldb-local exited during start-up")
            time.sleep(0.0005)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--ledgers", type=int, default=0)
    ap.add_argument("--binary", default=str(REPO / "target/release/qldb-local"))
    args = ap.parse_args()
    data_dir = tempfile.mkdtemp(prefix="qldb-bench-")
    port = free_port()
    if args.ledgers:
        p, _ = start(args.binary, data_dir, port, ["--max-ledgers", str(args.ledgers)])
        for i in range(args.ledgers):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/ledgers",
                data=json.dumps({"Name": f"bench-{i}", "PermissionsMode": "ALLOW_ALL"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req).read()
        p.terminate()
        p.wait()
    times = []
    rss = []
    for _ in range(args.runs):
        p, ms = start(args.binary, data_dir, port, ["--max-ledgers", str(max(args.ledgers, 5))])
        times.append(ms)
        # Idle: served one /health, then left alone for a moment.
        time.sleep(0.2)
        rss.append(vm_rss_kib(p.pid))
        p.terminate()
        p.wait()
    size = os.path.getsize(args.binary)
    print(f"ledgers in data dir: {args.ledgers}")
    print(f"start -> ready /health over {args.runs} runs: median {statistics.median(times):.1f} ms, "
          f"min {min(times):.1f} ms, max {max(times):.1f} ms")
    if all(r is not None for r in rss):
        print(f"idle resident memory (VmRSS) over {args.runs} runs: median "
              f"{statistics.median(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")
    print(f"binary size: {size} bytes ({size / 1048576:.1f} MiB)")


if __name__ == "__main__":
    main()
