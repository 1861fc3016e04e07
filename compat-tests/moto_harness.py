"""Starts moto in server mode on loopback: a real S3- and Kinesis-compatible HTTP endpoint
for the journal export and stream tests.

The executable is MOTO_SERVER_BIN (compat-tests/run-all.sh installs it into
compat-tests/.venv-moto from compat-tests/moto/requirements.txt); without it the default is
<repo>/compat-tests/.venv-moto/bin/moto_server.
"""

import os
import pathlib
import subprocess
import tempfile
import time
import urllib.request

from qldb_harness import REPO, free_port

DEFAULT_BIN = REPO / "compat-tests" / ".venv-moto" / "bin" / "moto_server"


class MotoServer:
    def __init__(self):
        self.binary = os.environ.get("MOTO_SERVER_BIN", str(DEFAULT_BIN))
        if not os.path.exists(self.binary):
            raise RuntimeError(
                f"{self.binary} not found; compat-tests/run-all.sh installs it "
                "(python -m venv compat-tests/.venv-moto && "
                "compat-tests/.venv-moto/bin/pip install -r compat-tests/moto/requirements.txt)")
        self.port = None
        self.proc = None
        self.log_path = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=None, timeout=30.0):
        self.port = port or self.port or free_port()
        self.log_path = os.path.join(tempfile.gettempdir(), f"moto-{self.port}.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not become ready: {self.log()}")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self._log.close()

    def log(self) -> str:
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")[-4000:]
        except (OSError, TypeError):
            return ""
