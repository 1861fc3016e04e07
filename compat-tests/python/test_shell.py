"""`qldb-local shell` (issue 15): piped scripts and an interactive terminal (a pty).

The shell is a client of the session API through the official Rust SDK; these tests check
what it prints and what it commits, reading the ledger back with pyqldb 3.2.4.
"""

import os
import pty
import re
import select
import subprocess
import time

import pytest

from qldb_session_helpers import create_ledger, make_driver


def shell_cmd(server, ledger, *extra):
    return [server.binary, "shell", "--ledger", ledger, "--endpoint", server.endpoint, *extra]


def shell_env(tmp_path):
    env = dict(os.environ)
    for k in ("AWS_ENDPOINT_URL_QLDB_SESSION", "AWS_REGION", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               QLDB_LOCAL_SHELL_HISTORY=str(tmp_path / "history"))
    return env


def run_script(server, ledger, script, tmp_path, *extra):
    return subprocess.run(shell_cmd(server, ledger, *extra), input=script, text=True,
                          capture_output=True, timeout=60, env=shell_env(tmp_path))


def vins(server, ledger):
    d = make_driver(server, ledger)
    try:
        return sorted(d.execute_lambda(
            lambda t: [r["vin"] for r in t.execute_statement("SELECT vin FROM Car")]))
    finally:
        d.close()


def test_a_script_runs_statements_and_transactions_and_prints_ion(server, tmp_path):
    ledger = create_ledger(server)
    r = run_script(server, ledger, """
CREATE TABLE Car;
-- two documents; the ';' inside the string does not end the statement
INSERT INTO Car << {'vin': 'A;1', 'n': 1}, {'vin': 'B2', 'n': 2, 'o': {'x': [1, {'y': 2}]}} >>;
start transaction
UPDATE Car SET n = 5
  WHERE vin = 'A;1';
INSERT INTO Car {'vin': 'C3'};
commit
SELECT * FROM Car WHERE vin = 'B2'
""", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = r.stdout
    assert "transaction started" in out and "transaction committed" in out
    # The SELECT's one document, spread over lines, then the statistics line.
    assert '{\n  vin: "B2",\n  n: 2,\n  o: {\n    x: [\n      1,\n      {y:2}\n    ]\n  }\n}\n' in out
    # The QLDB shell's statistics line, word for word.
    assert re.search(r"^2 documents in bag \(read-ios: 0, server-time: \d+ms, total-time: \d+ms\)$",
                     out, re.M), out
    assert re.search(r"^1 document in bag \(read-ios: \d+, server-time", out, re.M)
    assert vins(server, ledger) == ["A;1", "B2", "C3"]
    d = make_driver(server, ledger)
    try:
        n = d.execute_lambda(lambda t: list(t.execute_statement(
            "SELECT VALUE n FROM Car WHERE vin = 'A;1'")))
    finally:
        d.close()
    assert n == [5]


def test_table_format_has_a_column_per_field(server, tmp_path):
    ledger = create_ledger(server)
    r = run_script(server, ledger, """CREATE TABLE Car;
INSERT INTO Car << {'vin': 'A1', 'n': 1}, {'vin': 'B2', 'o': [1]} >>;
SELECT * FROM Car;
\\format ion
SELECT VALUE vin FROM Car WHERE vin = 'A1';
""", tmp_path, "--format", "table")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith(" vin "))
    assert [l.rstrip() for l in lines[header:header + 4]] == [
        " vin  | n | o",
        "------+---+-----",
        ' "A1" | 1 |',
        ' "B2" |   | [1]',
    ] or [l.rstrip() for l in lines[header:header + 4]] == [
        " vin  | n | o",
        "------+---+-----",
        ' "B2" |   | [1]',
        ' "A1" | 1 |',
    ]
    assert '\n"A1"\n1 document' in r.stdout


def test_a_script_stops_at_the_first_error_with_a_nonzero_status(server, tmp_path):
    ledger = create_ledger(server)
    r = run_script(server, ledger, """CREATE TABLE Car;
INSERT INTO Car {'vin': 'A1'};
SELECT * FROM Car WHERE;
INSERT INTO Car {'vin': 'NOT RUN'};
""", tmp_path)
    assert r.returncode == 1
    # QLDB's message, with the place of the error.
    assert re.search(r"^Error: BadRequestException: .*line 1, column \d+", r.stderr, re.M), r.stderr
    assert vins(server, ledger) == ["A1"]


def test_an_error_inside_a_transaction_aborts_it_in_a_script(server, tmp_path):
    ledger = create_ledger(server)
    assert run_script(server, ledger, "CREATE TABLE Car;", tmp_path).returncode == 0
    r = run_script(server, ledger, """start transaction;
INSERT INTO Car {'vin': 'A1'};
INSERT INTO NoSuchTable {'vin': 'B2'};
commit;
""", tmp_path)
    assert r.returncode == 1
    assert "NoSuchTable" in r.stderr
    assert "the open transaction was aborted" in r.stderr
    assert vins(server, ledger) == []


def test_a_script_that_ends_inside_a_transaction_commits_nothing(server, tmp_path):
    ledger = create_ledger(server)
    assert run_script(server, ledger, "CREATE TABLE Car;", tmp_path).returncode == 0
    r = run_script(server, ledger, "begin\nINSERT INTO Car {'vin': 'A1'};\n", tmp_path)
    assert r.returncode == 1
    assert "ended inside a transaction" in r.stderr
    assert vins(server, ledger) == []


def test_commands_out_of_place_and_unknown_ledgers_are_errors(server, tmp_path):
    ledger = create_ledger(server)
    r = run_script(server, ledger, "commit\n", tmp_path)
    assert r.returncode == 1 and "no transaction is open" in r.stderr
    r = run_script(server, "NoSuchLedger", "SELECT * FROM Car;", tmp_path)
    assert r.returncode == 1
    assert "Error: BadRequestException" in r.stderr and "NoSuchLedger" in r.stderr
    r = subprocess.run(
        [server.binary, "shell", "--ledger", ledger, "--endpoint", "http://127.0.0.1:9"],
        input="SELECT 1 FROM Car;", text=True, capture_output=True, timeout=60,
        env=shell_env(tmp_path))
    assert r.returncode == 1 and "the request got no answer" in r.stderr


def test_wrong_credentials_show_the_signature_error(server, tmp_path):
    ledger = create_ledger(server)
    env = shell_env(tmp_path)
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    r = subprocess.run(shell_cmd(server, ledger), input="SELECT 1 FROM Car;", text=True,
                       capture_output=True, timeout=60, env=env)
    assert r.returncode == 1
    assert "InvalidSignatureException" in r.stderr or "UnrecognizedClient" in r.stderr, r.stderr


class Terminal:
    """The shell on a pseudo-terminal: type a line, read the screen's text."""

    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True)
        os.close(slave)
        self.text = ""

    def read_until(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} on the screen:\n{self.text}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    assert re.search(pattern, self.text), f"no {pattern!r}:\n{self.text}"
                    break
                self.text += chunk.decode("utf-8", "replace")
        return self.text

    def type(self, line, expect):
        """Types `line` and Enter; returns what the screen showed until `expect` appeared."""
        start = len(self.text)
        os.write(self.master, line.encode() + b"\r")
        deadline = time.monotonic() + 20
        while not re.search(expect, self.text[start + len(line):], re.S):
            left = deadline - time.monotonic()
            assert left > 0, f"no {expect!r} after {line!r}:\n{self.text[start:]}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                chunk = os.read(self.master, 4096)
                assert chunk, f"the shell ended; no {expect!r}:\n{self.text[start:]}"
                self.text += chunk.decode("utf-8", "replace")
        return self.text[start:]

    def close(self):
        """Ends the shell (killed if a failed test left it waiting for input)."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self.master)


def test_interactive_prompt_transactions_errors_and_history(server, tmp_path):
    ledger = create_ledger(server)
    t = Terminal(shell_cmd(server, ledger), shell_env(tmp_path))
    try:
        t.read_until(r"qldb> ")
        t.type("CREATE TABLE Car;", r"1 document in bag \(read-ios.*\n.*qldb> ")
        t.type("start transaction", r"transaction started.*\n.*qldb \*> ")
        # A statement over two lines: the continuation prompt, then the result.
        t.type("INSERT INTO Car", r"-> ")
        t.type("{'vin': 'A1'};", r"documentId.*1 document.*qldb \*> ")
        # An error keeps the transaction, and the prompt says so.
        tail = t.type("SELEC oops;", r"qldb \*> ")
        assert "Error: BadRequestException" in tail and "line 1, column 1" in tail
        t.type("commit", r"transaction committed.*\n.*qldb> ")
        t.type("\\format table", r"printed as a table")
        t.type("SELECT vin FROM Car;", r'"A1".*1 document.*qldb> ')
        t.type("help", r"start transaction.*qldb> ")
        tail = t.type("\\show tables", r"qldb> ")
        assert "- Car" in tail, tail
        os.write(t.master, b"quit\r")
        assert t.proc.wait(timeout=20) == 0
    finally:
        t.close()
    assert vins(server, ledger) == ["A1"]
    history = (tmp_path / "history").read_text()
    assert "start transaction" in history and "SELECT vin FROM Car;" in history


def test_interactive_exit_aborts_an_open_transaction(server, tmp_path):
    ledger = create_ledger(server)
    assert run_script(server, ledger, "CREATE TABLE Car;", tmp_path).returncode == 0
    t = Terminal(shell_cmd(server, ledger), shell_env(tmp_path))
    try:
        t.read_until(r"qldb> ")
        t.type("begin", r"qldb \*> ")
        t.type("INSERT INTO Car {'vin': 'A1'};", r"1 document.*qldb \*> ")
        os.write(t.master, b"\x04")  # Ctrl-D
        t.read_until(r"the open transaction was aborted")
        assert t.proc.wait(timeout=20) == 0
    finally:
        t.close()
    assert vins(server, ledger) == []


def test_an_expired_session_is_replaced_between_statements_but_not_inside_a_transaction(tmp_path):
    """A server whose sessions live 1.5 s: an auto-committed statement after that starts a new
    session unnoticed; an open transaction that outlived its session is reported as lost."""
    from qldb_harness import Server

    s = Server(extra_args=["--session-lifetime-ms", "1500"]).start()
    try:
        ledger = create_ledger(s)
        assert run_script(s, ledger, "CREATE TABLE Car;", tmp_path).returncode == 0
        t = Terminal(shell_cmd(s, ledger), shell_env(tmp_path))
        try:
            t.read_until(r"qldb> ")
            t.type("INSERT INTO Car {'vin': 'A1'};", r"1 document.*qldb> ")
            time.sleep(2)  # the session expires (not a timing assertion: any wait > 1.5 s)
            tail = t.type("INSERT INTO Car {'vin': 'B2'};", r"qldb> ")
            assert "1 document" in tail and "Error" not in tail, tail
            t.type("begin", r"qldb \*> ")
            time.sleep(2)
            tail = t.type("INSERT INTO Car {'vin': 'C3'};", r"qldb> ")
            assert "InvalidSessionException" in tail, tail
            assert "the open transaction is gone" in tail, tail
            # The prompt no longer claims a transaction, and the next statement works.
            tail = t.type("INSERT INTO Car {'vin': 'D4'};", r"qldb> ")
            assert "1 document" in tail and "Error" not in tail, tail
            os.write(t.master, b"quit\r")
            assert t.proc.wait(timeout=20) == 0
        finally:
            t.close()
        assert vins(s, ledger) == ["A1", "B2", "D4"]
    finally:
        s.close()
