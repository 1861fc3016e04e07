"""Fixtures of the pinned-client compat suite (boto3 1.40.60, AWS CLI 1.42.60, pyqldb 3.2.4)."""

import json
import os
import pathlib
import subprocess
import sys
import uuid

import boto3
import pytest
from botocore.config import Config

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from qldb_harness import ACCESS_KEY, REGION, SECRET_KEY, Server, client_env  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sqlite_files: reads, damages or rebuilds SQLite ledger files (or a data dir's layout): "
        "skipped when QLDB_TEST_STORAGE=postgres puts every server on PostgreSQL")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("QLDB_TEST_STORAGE") != "postgres":
        return
    skip = pytest.mark.skip(reason="about SQLite files; this pass keeps ledgers in PostgreSQL")
    for item in items:
        if item.get_closest_marker("sqlite_files"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def server():
    """A qldb-local shared by the whole session (strict SigV4, ledger quota raised to 1000)."""
    s = Server(extra_args=["--max-ledgers", "1000"]).start()
    yield s
    s.close()


def make_client(endpoint, service="qldb", **kwargs):
    params = dict(
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    params.update(kwargs)
    return boto3.client(service, **params)


@pytest.fixture
def qldb(server):
    """A boto3 `qldb` client pointed at the shared server."""
    return make_client(server.endpoint)


@pytest.fixture
def ledger(server):
    """A fresh ALLOW_ALL ledger on the shared server."""
    from qldb_session_helpers import create_ledger

    return create_ledger(server)


@pytest.fixture
def driver(server, ledger):
    """A pyqldb driver on `ledger`, closed after the test."""
    from qldb_session_helpers import make_driver

    d = make_driver(server, ledger)
    yield d
    d.close()


@pytest.fixture
def ledger_name():
    """A fresh, valid ledger name."""
    return "t-" + uuid.uuid4().hex[:20]


class Cli:
    """Runs the pinned AWS CLI v1 (`python -m awscli`) against a server."""

    def __init__(self, server):
        self.server = server

    def __call__(self, *args, endpoint=True):
        cmd = [sys.executable, "-m", "awscli", *args]
        if endpoint:
            cmd += ["--endpoint-url", self.server.endpoint]
        p = subprocess.run(cmd, capture_output=True, text=True, env=client_env(self.server), timeout=60)
        out = None
        if p.stdout.strip():
            try:
                out = json.loads(p.stdout)
            except ValueError:
                out = p.stdout
        return p.returncode, out, p.stderr


@pytest.fixture
def aws(server):
    return Cli(server)
