"""The newest boto3 and AWS CLI v1 dropped QLDB; AWS_DATA_PATH=<repo>/api-models brings it back.

Runs in its own venv (compat-tests/.venv-latest) with the newest releases from PyPI.
"""

import json
import os
import pathlib
import subprocess
import sys
import uuid

import boto3
import botocore
import botocore.session
import pytest
from botocore.config import Config

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from qldb_harness import ACCESS_KEY, REGION, SECRET_KEY, REPO, Server, client_env  # noqa: E402

API_MODELS = str(REPO / "api-models")
LAST_WITH_QLDB = (1, 40, 60)


def version_tuple(v):
    return tuple(int(p) for p in v.split(".")[:3])


@pytest.fixture(scope="module")
def server():
    s = Server().start()
    yield s
    s.close()


def session(data_path):
    env_before = os.environ.get("AWS_DATA_PATH")
    if data_path:
        os.environ["AWS_DATA_PATH"] = data_path
    else:
        os.environ.pop("AWS_DATA_PATH", None)
    try:
        return boto3.session.Session(
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
        ), botocore.session.get_session().get_available_services()
    finally:
        if env_before is None:
            os.environ.pop("AWS_DATA_PATH", None)
        else:
            os.environ["AWS_DATA_PATH"] = env_before


def test_this_botocore_has_no_qldb_of_its_own():
    assert version_tuple(botocore.__version__) > LAST_WITH_QLDB, botocore.__version__
    _, services = session(None)
    assert "qldb" not in services and "qldb-session" not in services


def test_newest_boto3_drives_qldb_local_with_api_models(server):
    sess, services = session(API_MODELS)
    assert "qldb" in services and "qldb-session" in services
    qldb = sess.client("qldb", endpoint_url=server.endpoint, config=Config(retries={"max_attempts": 1}))
    name = "latest-" + uuid.uuid4().hex[:12]
    created = qldb.create_ledger(Name=name, PermissionsMode="STANDARD", Tags={"sdk": "latest"})
    assert created["State"] == "CREATING"
    assert qldb.describe_ledger(Name=name)["State"] == "ACTIVE"
    arn = created["Arn"]
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"sdk": "latest"}
    assert name in [l["Name"] for l in qldb.list_ledgers()["Ledgers"]]
    with pytest.raises(qldb.exceptions.ResourcePreconditionNotMetException):
        qldb.delete_ledger(Name=name)
    qldb.update_ledger(Name=name, DeletionProtection=False)
    qldb.delete_ledger(Name=name)
    with pytest.raises(qldb.exceptions.ResourceNotFoundException):
        qldb.describe_ledger(Name=name)

    session_client = sess.client("qldb-session", endpoint_url=server.endpoint)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        session_client.send_command(StartSession={"LedgerName": name})
    assert e.value.response["Error"]["Code"] != "UnknownOperationException"


def test_newest_aws_cli_v1_with_api_models(server):
    env = client_env(server)
    env["AWS_DATA_PATH"] = API_MODELS
    name = "cli-" + uuid.uuid4().hex[:12]

    def aws(*args):
        p = subprocess.run(
            [sys.executable, "-m", "awscli", "qldb", *args, "--endpoint-url", server.endpoint],
            capture_output=True, text=True, env=env, timeout=60,
        )
        return p.returncode, p.stdout, p.stderr

    rc, out, err = aws("create-ledger", "--name", name, "--permissions-mode", "ALLOW_ALL")
    assert rc == 0, err
    assert json.loads(out)["Name"] == name
    rc, out, err = aws("describe-ledger", "--name", name)
    assert rc == 0, err
    assert json.loads(out)["State"] == "ACTIVE"
    rc, _, err = aws("describe-ledger", "--name", "no-such-ledger")
    assert rc == 255
    assert "An error occurred (ResourceNotFoundException) when calling the DescribeLedger operation" in err

    env.pop("AWS_DATA_PATH")
    rc, _, err = aws("list-ledgers")
    assert rc != 0, "without api-models this CLI must not know qldb"
