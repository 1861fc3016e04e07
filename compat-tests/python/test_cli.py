"""The pinned AWS CLI v1 (awscli 1.42.60) against qldb-local (spec §10, §5.2).

Each CLI call costs ~0.5 s, so the calls are grouped into a few scenario tests. A private
server keeps `list-ledgers` output limited to this module's ledgers."""

import json
import re
import subprocess
import sys

import pytest

from conftest import Cli
from qldb_harness import client_env
from qldb_test_utils import dedicated_server, ledger_arn


class EnvCli(Cli):
    """The conftest Cli, plus extra environment variables for the subprocess."""

    def __call__(self, *args, endpoint=True, env=None):
        if env is None:
            return super().__call__(*args, endpoint=endpoint)
        cmd = [sys.executable, "-m", "awscli", *args]
        if endpoint:
            cmd += ["--endpoint-url", self.server.endpoint]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**client_env(self.server), **env}, timeout=60)
        out = None
        if p.stdout.strip():
            try:
                out = json.loads(p.stdout)
            except ValueError:
                out = p.stdout
        return p.returncode, out, p.stderr


@pytest.fixture(scope="module")
def cli_server():
    with dedicated_server(["--max-ledgers", "20"]) as s:
        yield s


@pytest.fixture
def cli(cli_server):
    return EnvCli(cli_server)


def error_line(code, op):
    return f"An error occurred ({code}) when calling the {op} operation"


def test_cli_ledger_lifecycle(cli, cli_server):
    name = "cli-ledger"
    rc, out, err = cli("qldb", "create-ledger", "--name", name, "--permissions-mode", "STANDARD",
                       "--tags", "team=core,env=dev")
    assert rc == 0, err
    assert out["Name"] == name
    assert out["Arn"] == ledger_arn(name)
    assert out["State"] == "CREATING"
    assert out["PermissionsMode"] == "STANDARD"
    assert out["DeletionProtection"] is True
    assert isinstance(out["CreationDateTime"], float)  # printed as received (epoch seconds)
    assert "KmsKeyArn" not in out

    rc, out, err = cli("qldb", "describe-ledger", "--name", name)
    assert rc == 0, err
    assert out["State"] == "ACTIVE"
    assert out["PermissionsMode"] == "STANDARD"
    assert out["DeletionProtection"] is True
    assert "EncryptionDescription" not in out

    rc, out, err = cli("qldb", "list-ledgers")
    assert rc == 0, err
    assert [(l["Name"], l["State"]) for l in out["Ledgers"]] == [(name, "ACTIVE")]
    assert "NextToken" not in out

    # Deletion protection blocks delete-ledger: exit 255 and the AWS error line.
    rc, out, err = cli("qldb", "delete-ledger", "--name", name)
    assert rc == 255
    assert error_line("ResourcePreconditionNotMetException", "DeleteLedger") in err, err
    assert out is None

    rc, out, err = cli("qldb", "update-ledger", "--name", name, "--no-deletion-protection")
    assert rc == 0, err
    assert out["DeletionProtection"] is False
    assert "PermissionsMode" not in out

    rc, out, err = cli("qldb", "update-ledger-permissions-mode", "--name", name, "--permissions-mode", "ALLOW_ALL")
    assert rc == 0, err
    assert out == {"Name": name, "Arn": ledger_arn(name), "PermissionsMode": "ALLOW_ALL"}

    rc, out, err = cli("qldb", "delete-ledger", "--name", name)
    assert rc == 0, err
    assert out is None  # no output at all

    rc, out, err = cli("qldb", "describe-ledger", "--name", name)
    assert rc == 255
    assert error_line("ResourceNotFoundException", "DescribeLedger") in err, err


def test_cli_tags(cli, cli_server):
    name = "cli-tags"
    arn = ledger_arn(name)
    rc, out, err = cli("qldb", "create-ledger", "--name", name, "--permissions-mode", "ALLOW_ALL",
                       "--kms-key", "alias/cli", "--tags", "k=v")
    assert rc == 0, err
    assert out["KmsKeyArn"] == "arn:aws:kms:us-east-1:000000000000:alias/cli"

    rc, out, err = cli("qldb", "tag-resource", "--resource-arn", arn, "--tags", '{"a b": "1", "x/y": "2"}')
    assert rc == 0, err
    assert out is None

    rc, out, err = cli("qldb", "list-tags-for-resource", "--resource-arn", arn)
    assert rc == 0, err
    assert out == {"Tags": {"k": "v", "a b": "1", "x/y": "2"}}

    rc, out, err = cli("qldb", "untag-resource", "--resource-arn", arn, "--tag-keys", "k", "a b")
    assert rc == 0, err
    assert out is None

    rc, out, err = cli("qldb", "list-tags-for-resource", "--resource-arn", arn)
    assert rc == 0, err
    assert out == {"Tags": {"x/y": "2"}}

    # An existing key takes the new value (as AWS's samples and Terraform expect).
    rc, out, err = cli("qldb", "tag-resource", "--resource-arn", arn, "--tags", "x/y=again")
    assert rc == 0, err
    rc, out, err = cli("qldb", "list-tags-for-resource", "--resource-arn", arn)
    assert out == {"Tags": {"x/y": "again"}}


def test_cli_errors(aws):
    """Through the conftest `aws` fixture (the shared server)."""
    cli = aws
    rc, out, err = cli("qldb", "describe-ledger", "--name", "no-such-ledger")
    assert rc == 255
    assert out is None
    assert error_line("ResourceNotFoundException", "DescribeLedger") in err, err
    assert "no-such-ledger" in err

    rc, out, err = cli("qldb", "create-ledger", "--name", "bad_name!", "--permissions-mode", "ALLOW_ALL")
    assert rc == 255
    assert error_line("InvalidParameterException", "CreateLedger") in err, err

    rc, out, err = cli("qldb", "get-digest", "--name", "no-such-ledger")
    assert rc == 255
    assert error_line("ResourceNotFoundException", "GetDigest") in err, err

    rc, out, err = cli("qldb", "list-journal-s3-exports")
    assert rc == 0, err
    assert isinstance(out["JournalS3Exports"], list)


def test_cli_endpoint_from_environment_and_text_output(cli, cli_server):
    name = "cli-env"
    rc, out, err = cli("qldb", "create-ledger", "--name", name, "--permissions-mode", "ALLOW_ALL",
                       "--no-deletion-protection", endpoint=False,
                       env={"AWS_ENDPOINT_URL_QLDB": cli_server.endpoint})
    assert rc == 0, err
    assert out["Name"] == name
    assert out["DeletionProtection"] is False

    rc, out, err = cli("qldb", "describe-ledger", "--name", name, "--output", "text", endpoint=False,
                       env={"AWS_ENDPOINT_URL_QLDB": cli_server.endpoint})
    assert rc == 0, err
    # Text output: the top-level scalars on one line, keys in alphabetical order (§10).
    line = out.strip().splitlines()[0].split("\t")
    assert line[0] == ledger_arn(name)
    assert re.fullmatch(r"\d+\.\d+", line[1]), line
    assert line[2:] == ["False", name, "ALLOW_ALL", "ACTIVE"], line

    rc, out, err = cli("qldb", "delete-ledger", "--name", name, endpoint=False,
                       env={"AWS_ENDPOINT_URL_QLDB": cli_server.endpoint})
    assert rc == 0, err


def test_cli_pagination_options(cli, cli_server):
    rc, out, err = cli("qldb", "list-ledgers", "--max-results", "1")
    assert rc == 0, err
    # This module's server holds exactly one ledger (cli-tags) by now.
    assert len(out["Ledgers"]) == 1
    assert "NextToken" not in out
    rc, out, err = cli("qldb", "list-ledgers", "--max-results", "101")
    assert rc == 255
    assert error_line("InvalidParameterException", "ListLedgers") in err, err
