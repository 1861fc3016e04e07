"""Starts and stops a real qldb-local binary for the compat suites.

The binary is QLDB_LOCAL_BIN (default: <repo>/target/release/qldb-local, built by
compat-tests/run-all.sh with the same profile as `cargo test --release`). Each server gets
a free loopback port and its own data directory, and is stopped with SIGTERM.
"""

import json
import os
import resource
import pathlib
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO / "target" / "release" / "qldb-local"

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"
ACCOUNT = "000000000000"


# Every server of the suites runs under an address-space cap (QLDB_LOCAL_TEST_MEMORY_LIMIT
# bytes, default 4 GiB, 0 = none), so an unbounded allocation fails the test that caused it
# instead of exhausting the machine.
MEMORY_LIMIT = int(os.environ.get("QLDB_LOCAL_TEST_MEMORY_LIMIT", str(4 << 30)))


def _cap_memory():
    if MEMORY_LIMIT > 0:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# data dir -> the PostgreSQL database of the servers started on it (QLDB_TEST_STORAGE=postgres).
POSTGRES_URL_OF = {}


def storage_is_postgres() -> bool:
    return os.environ.get("QLDB_TEST_STORAGE") == "postgres"


def psql(url_or_port, sql: str) -> str:
    """Runs `sql` with psql (a database URL, or a port for the superuser's `postgres`
    database); returns its unaligned output."""
    exe = os.path.join(os.environ.get("QLDB_TEST_POSTGRES_BIN", "/usr/bin"), "psql")
    target = (["-d", url_or_port] if isinstance(url_or_port, str) else
              ["-h", "127.0.0.1", "-p", str(url_or_port), "-U", "postgres", "-d", "postgres"])
    return subprocess.run([exe, "-q", "-At", "-v", "ON_ERROR_STOP=1", *target, "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def fresh_postgres_database() -> str:
    """A new database on the test PostgreSQL server (QLDB_TEST_POSTGRES_PORT, its binaries
    in QLDB_TEST_POSTGRES_BIN): its URL for the user qldb."""
    port = int(os.environ["QLDB_TEST_POSTGRES_PORT"])
    name = "qt_" + uuid.uuid4().hex
    psql(port, f"CREATE DATABASE {name} OWNER qldb")
    return f"postgres://qldb:qldb@127.0.0.1:{port}/{name}"


class Server:
    """One qldb-local process. `restart()` keeps the data dir and port."""

    def __init__(self, data_dir=None, extra_args=(), env=None):
        self.binary = os.environ.get("QLDB_LOCAL_BIN", str(DEFAULT_BIN))
        if not os.path.exists(self.binary):
            raise RuntimeError(f"{self.binary} not found; build it with cargo build --release")
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="qldb-local-test-")
            data_dir = self._tmp.name
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.extra_args = list(extra_args)
        # QLDB_TEST_STORAGE=postgres: every server keeps its ledgers in a fresh database of
        # the PostgreSQL server run-all.sh started (its restarts keep that database).
        # A later Server on the same data dir (a restart, a second server) gets the same
        # database.
        self.storage_url = None
        if os.environ.get("QLDB_TEST_STORAGE") == "postgres" and not (
            {"--storage", "--in-memory"} & set(self.extra_args)
        ):
            self.storage_url = POSTGRES_URL_OF.get(self.data_dir) or fresh_postgres_database()
            POSTGRES_URL_OF[self.data_dir] = self.storage_url
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log_path = os.path.abspath(os.path.join(tempfile.gettempdir(), f"qldb-local-{self.port}.log"))

    def storage_args(self) -> list:
        """Where this server's ledgers are, as the offline commands take it."""
        if self.storage_url is not None:
            return ["--storage", self.storage_url]
        return ["--data-dir", self.data_dir]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def account(self) -> str:
        return ACCOUNT

    def ledger_arn(self, name: str) -> str:
        return f"arn:aws:qldb:{REGION}:{ACCOUNT}:ledger/{name}"

    def start(self, timeout=30.0):
        args = [
            self.binary, "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", self.data_dir,
            *self.extra_args,
            *(["--storage", self.storage_url] if self.storage_url else []),
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     preexec_fn=_cap_memory)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qldb-local exited with {self.proc.returncode}; log: {self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"qldb-local did not become ready; log: {self.log()}")

    def health(self) -> dict:
        with urllib.request.urlopen(self.endpoint + "/health", timeout=5) as r:
            return json.loads(r.read())

    def stop(self, sig=signal.SIGTERM, timeout=20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        self._log.close()
        return code

    def restart(self):
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def close(self):
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def client_env(server: Server) -> dict:
    """Environment for an AWS CLI / SDK subprocess pointed at `server`."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env
