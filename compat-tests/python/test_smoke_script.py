"""compat-tests/smoke.py (a smoke test for any running qldb-local) passes against a server."""

import pathlib
import subprocess
import sys

from qldb_harness import client_env

SMOKE = pathlib.Path(__file__).resolve().parent.parent / "smoke.py"


def test_smoke_script_passes_via_endpoint_env_var(server):
    env = client_env(server)
    env["AWS_ENDPOINT_URL_QLDB"] = server.endpoint
    p = subprocess.run([sys.executable, str(SMOKE)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "smoke test passed" in p.stdout
