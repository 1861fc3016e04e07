"""The container image and docker-compose in a real Docker engine (run by compat-tests/docker/run.sh,
which builds the image first and names it in QLDB_DOCKER_IMAGE).

- the image runs as a non-root user, answers /health, turns healthy by its HEALTHCHECK, and
  serves boto3 and pyqldb through a published port;
- its data lives in a volume that survives stopping and starting the container; SIGTERM
  (docker stop) ends it gracefully, well within the stop timeout;
- what qldb-local adds to its base image is under 15 MB (the sizes are printed);
- a read-only volume, a data dir it may not write and a port already taken each end the
  container with a non-zero status and one clear log line, not a silent restart loop;
- `docker compose up` of docker/docker-compose.yml runs the test container's suite against
  the service by name, and the compose exit code is the suite's.
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config
from pyqldb.driver.qldb_driver import QldbDriver

IMAGE = os.environ.get("QLDB_DOCKER_IMAGE", "qldb-local:test")
RUNTIME_BASE = os.environ.get("QLDB_RUNTIME_IMAGE", "qldb-local-base/debian:bookworm")
REPO = pathlib.Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:8]


def docker(*args, check=True, timeout=300, **kw):
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stdout}{p.stderr}")
    return p


def inspect(obj, fmt):
    return docker("inspect", "--format", fmt, obj).stdout.strip()


def wait_for(what, predicate, timeout=60.0, every=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def logs(container):
    p = docker("logs", container, check=False)
    return (p.stdout + p.stderr).strip().splitlines()


@pytest.fixture
def volume():
    name = f"qldb-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


class Container:
    def __init__(self, volume, *extra, name=None):
        self.name = name or f"qldb-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        docker("run", "-d", "--name", self.name, "-p", "127.0.0.1::8901",
               "-e", "QLDB_LOCAL_CREDENTIALS=test:test", "-v", f"{volume}:/data", *extra, IMAGE)

    @property
    def endpoint(self):
        port = docker("port", self.name, "8901/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        return f"http://127.0.0.1:{port}"

    def health(self):
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 (not up yet)
            return None

    def wait_ready(self):
        return wait_for("/health", self.health)

    def remove(self):
        docker("rm", "-f", self.name, check=False)


def clients(endpoint, ledger):
    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
              aws_secret_access_key="test")
    qldb = boto3.client("qldb", config=Config(retries={"max_attempts": 2}), **kw)
    driver = QldbDriver(ledger_name=ledger, **kw)
    return qldb, driver


def test_image_user_health_volume_restart_and_graceful_stop(volume):
    assert inspect(IMAGE, "{{.Config.User}}") == "qldb"
    c = Container(volume)
    try:
        c.wait_ready()
        assert docker("exec", c.name, "id", "-u").stdout.strip() == "10001"
        status = wait_for("a healthy HEALTHCHECK",
                          lambda: inspect(c.name, "{{.State.Health.Status}}") == "healthy" or None)
        assert status
        qldb, driver = clients(c.endpoint, "vehicles")
        qldb.create_ledger(Name="vehicles", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        driver.execute_lambda(lambda t: t.execute_statement("CREATE TABLE Car"))
        driver.execute_lambda(lambda t: t.execute_statement("INSERT INTO Car ?", {"vin": "V1", "n": 1}))
        digest = qldb.get_digest(Name="vehicles")
        driver.close()

        # docker stop sends SIGTERM: the server ends by itself, long before the 30 s timeout.
        began = time.monotonic()
        docker("stop", "-t", "30", c.name)
        took = time.monotonic() - began
        assert inspect(c.name, "{{.State.ExitCode}}") == "0"
        assert took < 10, f"docker stop took {took:.1f}s"
        print(f"graceful stop in {took:.2f}s")

        docker("start", c.name)
        c.wait_ready()
        qldb, driver = clients(c.endpoint, "vehicles")
        assert qldb.get_digest(Name="vehicles")["Digest"] == digest["Digest"]
        rows = driver.execute_lambda(lambda t: list(t.execute_statement("SELECT VALUE c.vin FROM Car AS c")))
        assert rows == ["V1"]
        driver.close()
    finally:
        c.remove()

    # The volume outlives the container: a new container serves the same ledger.
    c = Container(volume)
    try:
        c.wait_ready()
        qldb, _ = clients(c.endpoint, "vehicles")
        assert qldb.describe_ledger(Name="vehicles")["State"] == "ACTIVE"
        assert c.health()["ledgers"] == 1
    finally:
        c.remove()


def test_what_the_image_adds_to_its_base_is_small():
    image = int(inspect(IMAGE, "{{.Size}}"))
    base = int(inspect(RUNTIME_BASE, "{{.Size}}"))
    added = image - base
    print(f"image {IMAGE}: {image / 1e6:.1f} MB; base {RUNTIME_BASE}: {base / 1e6:.1f} MB; "
          f"qldb-local adds {added / 1e6:.2f} MB")
    assert 0 < added < 15 * 1000 * 1000


def exits_with_one_clear_line(container, *words):
    status = wait_for("the container to exit",
                      lambda: inspect(container, "{{.State.Status}}") == "exited" or None, timeout=30)
    assert status
    assert inspect(container, "{{.State.ExitCode}}") != "0"
    assert inspect(container, "{{.RestartCount}}") == "0"
    lines = logs(container)
    errors = [l for l in lines if "ERROR" in l or '"level":"ERROR"' in l]
    assert len(errors) == 1, lines
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


def test_unwritable_data_and_taken_port_end_the_container_clearly(volume):
    # A read-only volume.
    name = f"qldb-test-{RUN_ID}-ro"
    docker("run", "-d", "--name", name, "-v", f"{volume}:/data:ro", IMAGE)
    try:
        line = exits_with_one_clear_line(name, "/data", "Read-only")
        print("read-only volume:", line)
    finally:
        docker("rm", "-f", name, check=False)

    # A data dir the container's user may not write (a root-owned 0700 host directory).
    host_dir = tempfile.mkdtemp(prefix="qldb-perm-")
    os.chmod(host_dir, 0o700)
    name = f"qldb-test-{RUN_ID}-perm"
    docker("run", "-d", "--name", name, "-v", f"{host_dir}:/data", IMAGE)
    try:
        line = exits_with_one_clear_line(name, "/data", "ermission denied")
        print("unwritable data dir:", line)
    finally:
        docker("rm", "-f", name, check=False)
        shutil.rmtree(host_dir, ignore_errors=True)

    # A port already taken: a second server in the first one's network namespace.
    first = Container(volume)
    name = f"qldb-test-{RUN_ID}-port"
    try:
        first.wait_ready()
        docker("run", "-d", "--name", name, "--network", f"container:{first.name}",
               "-e", "QLDB_LOCAL_DATA_DIR=/tmp/other", IMAGE)
        line = exits_with_one_clear_line(name, "8901")
        print("port taken:", line)
        assert first.health()["status"] == "ok"
    finally:
        docker("rm", "-f", name, check=False)
        first.remove()


def compose_command():
    if docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed")


def test_compose_runs_the_suite_against_the_service_by_name():
    project = f"qldbci{RUN_ID}"
    cmd = compose_command() + ["-f", str(REPO / "docker/docker-compose.yml"), "-p", project]
    env = dict(os.environ, QLDB_IMAGE=IMAGE)
    began = time.monotonic()
    try:
        p = subprocess.run(cmd + ["up", "--build", "--exit-code-from", "tests", "--abort-on-container-exit"],
                           capture_output=True, text=True, env=env, timeout=1800)
        took = time.monotonic() - began
        out = p.stdout + p.stderr
        print(out[-3000:])
        print(f"compose up → tests exit {p.returncode} in {took:.1f}s")
        assert p.returncode == 0, out[-3000:]
        assert " passed" in out, out[-3000:]
        # The volume holds what the suite wrote: a second run against it passes too.
        p = subprocess.run(cmd + ["up", "--exit-code-from", "tests", "--abort-on-container-exit"],
                           capture_output=True, text=True, env=env, timeout=900)
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    finally:
        subprocess.run(cmd + ["down", "-v", "--remove-orphans"], capture_output=True, env=env, timeout=300)
