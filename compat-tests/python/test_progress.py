"""Progress of `qldb-local verify` and `rebuild` (issue 15): a bar on a terminal, plain lines
on a pipe (every QLDB_LOCAL_PROGRESS_EVERY_MS, 5 s by default, so short work prints none).

A ledger of a few dozen blocks is written with pyqldb 3.2.4; the commands run on its data dir.
"""

import os
import pty
import re
import select
import subprocess

import pytest

from qldb_harness import Server
from qldb_session_helpers import create_ledger, make_driver

TRANSACTIONS = 30


@pytest.fixture(scope="module")
def stopped_ledger():
    """(server, ledger): a ledger of TRANSACTIONS + its genesis and DDL blocks, server stopped."""
    s = Server().start()
    ledger = create_ledger(s)
    d = make_driver(s, ledger)
    d.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Car"))
    for i in range(TRANSACTIONS):
        d.execute_lambda(lambda t, i=i: t.execute_statement("INSERT INTO Car ?", {"n": i}))
    d.close()
    s.stop()
    yield s, ledger
    s.close()


def blocks_of(stdout, ledger):
    m = re.search(rf"{ledger}: (\d+) blocks", stdout)
    assert m, stdout
    return int(m.group(1))


def run(server, *args, every=None):
    env = dict(os.environ)
    env.pop("QLDB_LOCAL_PROGRESS_EVERY_MS", None)
    if every is not None:
        env["QLDB_LOCAL_PROGRESS_EVERY_MS"] = str(every)
    return subprocess.run([server.binary, *args, "--data-dir", server.data_dir],
                          capture_output=True, text=True, timeout=120, env=env)


def test_verify_prints_plain_progress_lines_on_a_pipe(stopped_ledger):
    server, ledger = stopped_ledger
    r = run(server, "verify", "--ledger", ledger, every=0)
    assert r.returncode == 0, r.stderr
    blocks = blocks_of(r.stdout, ledger)
    assert blocks >= TRANSACTIONS + 2
    lines = r.stderr.splitlines()
    assert f"verify {ledger}: 1 of {blocks} blocks (" in lines[0]
    assert lines[-1] == f"verify {ledger}: {blocks} of {blocks} blocks (100%)"
    assert "\r" not in r.stderr and "\x1b" not in r.stderr
    # The default interval: short work prints no progress at all.
    quiet = run(server, "verify", "--ledger", ledger)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_rebuild_reports_each_pass(stopped_ledger):
    server, ledger = stopped_ledger
    r = run(server, "rebuild", "--ledger", ledger, every=0)
    assert r.returncode == 0, r.stderr
    blocks = blocks_of(r.stdout, ledger)
    for step in ("checking the journal", "replaying the journal", "verifying the result"):
        assert f"rebuild {ledger}: {step}: {blocks} of {blocks} blocks (100%)" in r.stderr, r.stderr


def test_verify_draws_a_bar_on_a_terminal_and_erases_it(stopped_ledger):
    server, ledger = stopped_ledger
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.pop("QLDB_LOCAL_PROGRESS_EVERY_MS", None)
    p = subprocess.Popen([server.binary, "verify", "--ledger", ledger, "--data-dir",
                          server.data_dir], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            assert ready, out
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the pty's other side closed
                break
            if not chunk:
                break
            out += chunk
        assert p.wait(timeout=60) == 0
    finally:
        os.close(master)
    text = out.decode()
    blocks = blocks_of(text, ledger)
    # The bar is drawn in place, reaches 100 %, and is erased before the result line.
    assert re.search(rf"\r\x1b\[Kverify {ledger} \[#+\] 100% {blocks}/{blocks} blocks", text), \
        repr(text)
    assert f"\r\x1b[Kok {ledger}: {blocks} blocks" in text, repr(text)


# Every test here works on SQLite files (skipped when the suite runs on PostgreSQL).
pytestmark = pytest.mark.sqlite_files
