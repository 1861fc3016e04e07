"""Durability across restarts, clean shutdown on SIGTERM/SIGINT, and the files on disk
(`<data_dir>/catalog.sqlite`, `<data_dir>/ledgers/<name>.sqlite`)."""

import os
import pathlib
import signal
import time

import pytest

from conftest import make_client
from qldb_harness import Server
from qldb_test_utils import (
    all_ledgers,
    create,
    dedicated_server,
    expect_error,
    ledger_arn,
    ledger_db_stems,
    ledger_files,
    strip_meta,
)


def snapshot(c):
    """Everything the API says about every ledger."""
    ledgers = all_ledgers(c)
    return {
        "list": ledgers,
        "describe": {l["Name"]: strip_meta(c.describe_ledger(Name=l["Name"])) for l in ledgers},
        "tags": {l["Name"]: c.list_tags_for_resource(ResourceArn=ledger_arn(l["Name"]))["Tags"] for l in ledgers},
    }


def test_state_survives_sigterm_restart():
    s = Server().start()
    try:
        c = make_client(s.endpoint)
        c.create_ledger(Name="kms-ledger", PermissionsMode="STANDARD", DeletionProtection=False,
                        KmsKey="1234abcd-12ab-34cd-56ef-1234567890ab",
                        Tags={"env": "prod", "a b": "x/y", "k=v+": ""})
        c.create_ledger(Name="plain-ledger", PermissionsMode="ALLOW_ALL")
        c.create_ledger(Name="doomed-ledger", PermissionsMode="ALLOW_ALL", DeletionProtection=False,
                        Tags={"gone": "soon"})
        c.create_ledger(Name="updated-ledger", PermissionsMode="ALLOW_ALL")
        c.update_ledger(Name="updated-ledger", KmsKey="alias/later", DeletionProtection=False)
        c.update_ledger_permissions_mode(Name="updated-ledger", PermissionsMode="STANDARD")
        c.tag_resource(ResourceArn=ledger_arn("updated-ledger"), Tags={"added": "later", "tmp": "1"})
        c.untag_resource(ResourceArn=ledger_arn("updated-ledger"), TagKeys=["tmp"])
        c.delete_ledger(Name="doomed-ledger")
        before = snapshot(c)
        assert [l["Name"] for l in before["list"]] == ["kms-ledger", "plain-ledger", "updated-ledger"]
        assert before["describe"]["kms-ledger"]["EncryptionDescription"] == {
            "KmsKeyArn": "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "EncryptionStatus": "ENABLED"}
        assert s.health()["ledgers"] == 3

        assert s.stop(signal.SIGTERM) == 0
        s.start()

        c = make_client(s.endpoint)
        after = snapshot(c)
        assert after == before
        d = after["describe"]
        assert d["kms-ledger"]["PermissionsMode"] == "STANDARD"
        assert d["kms-ledger"]["DeletionProtection"] is False
        assert d["plain-ledger"]["DeletionProtection"] is True
        assert "EncryptionDescription" not in d["plain-ledger"]
        assert d["updated-ledger"]["PermissionsMode"] == "STANDARD"
        assert d["updated-ledger"]["EncryptionDescription"]["KmsKeyArn"] == \
            "arn:aws:kms:us-east-1:000000000000:alias/later"
        assert after["tags"]["kms-ledger"] == {"env": "prod", "a b": "x/y", "k=v+": ""}
        assert after["tags"]["updated-ledger"] == {"added": "later"}
        expect_error(c.describe_ledger, "ResourceNotFoundException", 404, Name="doomed-ledger")
        assert s.health()["ledgers"] == 3
        assert ledger_db_stems(s.data_dir) == {"kms-ledger", "plain-ledger", "updated-ledger"}

        # The restarted server keeps working: the deleted name is reusable, without old tags,
        # and the protected ledger is still protected.
        c.create_ledger(Name="doomed-ledger", PermissionsMode="ALLOW_ALL")
        assert c.list_tags_for_resource(ResourceArn=ledger_arn("doomed-ledger"))["Tags"] == {}
        expect_error(c.delete_ledger, "ResourcePreconditionNotMetException", 412, Name="plain-ledger")
        # Paging continues in creation order after a restart.
        assert [l["Name"] for l in all_ledgers(c)] == ["kms-ledger", "plain-ledger", "updated-ledger",
                                                        "doomed-ledger"]
        assert s.health()["ledgers"] == 4

        # A second restart (this time with SIGINT) keeps the new ledger too.
        assert s.stop(signal.SIGINT) == 0
        s.start()
        assert [l["Name"] for l in all_ledgers(make_client(s.endpoint))] == [
            "kms-ledger", "plain-ledger", "updated-ledger", "doomed-ledger"]
    finally:
        s.close()


def test_sigint_shutdown_exit_code():
    s = Server().start()
    try:
        make_client(s.endpoint).list_ledgers()
        assert s.stop(signal.SIGINT) == 0
    finally:
        s.close()


def test_sigterm_shutdown_exit_code():
    s = Server().start()
    try:
        assert s.stop(signal.SIGTERM) == 0
    finally:
        s.close()


@pytest.mark.sqlite_files
def test_second_server_on_same_data_dir_is_refused():
    with dedicated_server() as s:
        other = Server(data_dir=s.data_dir)
        with pytest.raises(RuntimeError, match="exited with 1"):
            other.start(timeout=10)
        assert "in use" in other.log()
        other.stop()
        assert other.proc is None
        # The first server is unharmed.
        assert make_client(s.endpoint).list_ledgers()["Ledgers"] == []


def test_in_memory_writes_nothing_and_forgets_on_restart():
    with dedicated_server(["--in-memory"]) as s:
        c = make_client(s.endpoint)
        c.create_ledger(Name="volatile", PermissionsMode="ALLOW_ALL")
        assert c.describe_ledger(Name="volatile")["State"] == "ACTIVE"
        assert s.health()["ledgers"] == 1
        assert not (pathlib.Path(s.data_dir) / "catalog.sqlite").exists()
        assert ledger_files(s.data_dir) == set()
        assert s.stop() == 0
        s.start()
        assert make_client(s.endpoint).list_ledgers()["Ledgers"] == []


# ---------------------------------------------------------------- files on disk


@pytest.mark.sqlite_files
def test_files_follow_create_and_delete(server, qldb, ledger_name):
    data = pathlib.Path(server.data_dir)
    assert (data / "catalog.sqlite").is_file()
    path = data / "ledgers" / f"{ledger_name}.sqlite"
    assert not path.exists()
    create(qldb, ledger_name, DeletionProtection=False)
    assert path.is_file()
    assert path.stat().st_size > 0
    with open(path, "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"
    qldb.delete_ledger(Name=ledger_name)
    leftovers = [f for f in os.listdir(data / "ledgers") if f.startswith(ledger_name + ".")]
    assert leftovers == []


def test_failed_creates_leave_no_files(server, qldb, ledger_name):
    create(qldb, ledger_name)
    before = ledger_files(server.data_dir)
    expect_error(qldb.create_ledger, "ResourceAlreadyExistsException", 409,
                 Name=ledger_name, PermissionsMode="ALLOW_ALL")
    expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                 Name=ledger_name + "x", PermissionsMode="BOGUS")
    expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                 Name=ledger_name + "y", PermissionsMode="ALLOW_ALL", Tags={"aws:x": "1"})
    after = ledger_files(server.data_dir)
    assert after == before
    assert not any(".tmp-" in f for f in after)


def test_health_counts_ledgers():
    with dedicated_server() as s:
        c = make_client(s.endpoint)
        assert s.health()["ledgers"] == 0
        c.create_ledger(Name="h1", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        c.create_ledger(Name="h2", PermissionsMode="ALLOW_ALL")
        assert s.health()["ledgers"] == 2
        c.delete_ledger(Name="h1")
        assert s.health()["ledgers"] == 1
        assert ledger_db_stems(s.data_dir) == {"h2"}


def test_deleting_state_survives_restart_and_completes():
    with dedicated_server(["--ledger-delete-delay-ms", "1500"]) as s:
        c = make_client(s.endpoint)
        c.create_ledger(Name="slow-delete", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        c.create_ledger(Name="stays", PermissionsMode="ALLOW_ALL")
        c.delete_ledger(Name="slow-delete")
        assert c.describe_ledger(Name="slow-delete")["State"] == "DELETING"
        assert s.stop() == 0
        s.start()
        c = make_client(s.endpoint)
        # Still within the delay: still DELETING after the restart.
        assert c.describe_ledger(Name="slow-delete")["State"] == "DELETING"
        assert s.stop() == 0
        time.sleep(1.6)
        s.start()
        c = make_client(s.endpoint)
        expect_error(c.describe_ledger, "ResourceNotFoundException", 404, Name="slow-delete")
        assert [l["Name"] for l in c.list_ledgers()["Ledgers"]] == ["stays"]
        assert ledger_db_stems(s.data_dir) == {"stays"}
        assert s.health()["ledgers"] == 1


@pytest.mark.sqlite_files
def test_stray_file_in_ledgers_dir_is_not_a_ledger():
    with dedicated_server() as s:
        c = make_client(s.endpoint)
        c.create_ledger(Name="real", PermissionsMode="ALLOW_ALL")
        assert s.stop() == 0
        stray = pathlib.Path(s.data_dir) / "ledgers" / "ghost.sqlite"
        stray.write_bytes(b"not a database")
        s.start()
        c = make_client(s.endpoint)
        assert [l["Name"] for l in c.list_ledgers()["Ledgers"]] == ["real"]
        expect_error(c.describe_ledger, "ResourceNotFoundException", 404, Name="ghost")
        # The name is free: creating it works and yields a real database.
        c.create_ledger(Name="ghost", PermissionsMode="ALLOW_ALL")
        assert c.describe_ledger(Name="ghost")["State"] == "ACTIVE"
        with open(stray, "rb") as f:
            assert f.read(16) == b"SQLite format 3\x00"
