"""Ledger operations through boto3: CreateLedger, DescribeLedger, ListLedgers, UpdateLedger,
UpdateLedgerPermissionsMode, DeleteLedger (spec §3, §6.1, §6.2, §6.3, §6.5)."""

import datetime
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_client
from qldb_test_utils import (
    ACCOUNT,
    REGION,
    all_ledgers,
    create,
    dedicated_server,
    destroy,
    expect_error,
    ledger_arn,
    ledger_db_stems,
    ledger_files,
    new_name,
    strip_meta,
    utcnow,
)

CREATE_KEYS = {"Name", "Arn", "State", "CreationDateTime", "PermissionsMode", "DeletionProtection"}


def assert_recent(ts):
    assert isinstance(ts, datetime.datetime), ts
    assert ts.tzinfo is not None
    assert abs((utcnow() - ts).total_seconds()) < 10, ts


# ---------------------------------------------------------------- CreateLedger

def test_create_ledger_response_shape(qldb, ledger_name):
    r = qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    out = strip_meta(r)
    assert set(out) == CREATE_KEYS, out  # no KmsKeyArn for the AWS-owned key
    assert out["Name"] == ledger_name
    assert out["Arn"] == f"arn:aws:qldb:us-east-1:000000000000:ledger/{ledger_name}"
    assert out["State"] == "CREATING"
    assert out["PermissionsMode"] == "ALLOW_ALL"
    assert out["DeletionProtection"] is True  # default when omitted
    assert_recent(out["CreationDateTime"])


def test_create_ledger_standard_unprotected(qldb, ledger_name):
    r = qldb.create_ledger(Name=ledger_name, PermissionsMode="STANDARD", DeletionProtection=False)
    assert r["PermissionsMode"] == "STANDARD"
    assert r["DeletionProtection"] is False
    d = qldb.describe_ledger(Name=ledger_name)
    assert d["PermissionsMode"] == "STANDARD"
    assert d["DeletionProtection"] is False


@pytest.mark.parametrize(
    "kms_key, expected_arn",
    [
        ("1234abcd-12ab-34cd-56ef-1234567890ab",
         "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("alias/x", "arn:aws:kms:us-east-1:000000000000:alias/x"),
        ("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
         "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("arn:aws:kms:us-east-1:111122223333:alias/my-alias",
         "arn:aws:kms:us-east-1:111122223333:alias/my-alias"),
    ],
    ids=["key-id", "alias", "key-arn", "alias-arn"],
)
def test_create_ledger_customer_kms_key(qldb, ledger_name, kms_key, expected_arn):
    r = qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", KmsKey=kms_key)
    assert r["KmsKeyArn"] == expected_arn
    d = qldb.describe_ledger(Name=ledger_name)
    assert d["EncryptionDescription"] == {"KmsKeyArn": expected_arn, "EncryptionStatus": "ENABLED"}


def test_create_ledger_explicit_aws_owned_key(qldb, ledger_name):
    r = qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", KmsKey="AWS_OWNED_KMS_KEY")
    assert "KmsKeyArn" not in r
    assert "EncryptionDescription" not in qldb.describe_ledger(Name=ledger_name)


@pytest.mark.parametrize("name", ["a", "A1-b2", "1a", "x" * 32, "My-Ledger-9"])
def test_create_ledger_valid_name_edges(server, qldb, name):
    # Names are global on the shared server: use a suffix-free name only if free.
    if any(l["Name"] == name for l in all_ledgers(qldb)):
        destroy(qldb, name)
    r = qldb.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    try:
        assert r["Name"] == name
        assert r["Arn"] == server.ledger_arn(name)
    finally:
        qldb.delete_ledger(Name=name)


def test_ledger_names_are_case_sensitive(qldb):
    base = new_name("cs")
    upper = base.upper()
    create(qldb, base, DeletionProtection=False)
    create(qldb, upper, DeletionProtection=False)
    assert qldb.describe_ledger(Name=base)["Name"] == base
    assert qldb.describe_ledger(Name=upper)["Name"] == upper
    qldb.delete_ledger(Name=base)
    assert qldb.describe_ledger(Name=upper)["State"] == "ACTIVE"
    qldb.delete_ledger(Name=upper)


def test_create_duplicate_is_resource_already_exists(qldb, ledger_name):
    create(qldb, ledger_name)
    r = expect_error(qldb.create_ledger, "ResourceAlreadyExistsException", 409,
                     Name=ledger_name, PermissionsMode="STANDARD")
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == ledger_name
    # The original is untouched.
    assert qldb.describe_ledger(Name=ledger_name)["PermissionsMode"] == "ALLOW_ALL"


# ---------------------------------------------------------------- DescribeLedger

def test_describe_ledger_active_right_after_create(qldb, ledger_name):
    c = create(qldb, ledger_name)
    d = qldb.describe_ledger(Name=ledger_name)
    out = strip_meta(d)
    assert set(out) == CREATE_KEYS, out  # no EncryptionDescription for the AWS-owned key
    assert out["State"] == "ACTIVE"
    assert out["Name"] == ledger_name
    assert out["Arn"] == ledger_arn(ledger_name)
    assert out["CreationDateTime"] == c["CreationDateTime"]
    assert out["PermissionsMode"] == "ALLOW_ALL"
    assert out["DeletionProtection"] is True


def test_describe_unknown_ledger(qldb):
    name = new_name("nope")
    r = expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=name)
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == name
    assert name in r["Error"]["Message"]


# ---------------------------------------------------------------- ListLedgers

def test_list_ledgers_contains_new_ledger(qldb, ledger_name):
    c = create(qldb, ledger_name)
    mine = [l for l in all_ledgers(qldb) if l["Name"] == ledger_name]
    assert len(mine) == 1
    assert mine[0] == {"Name": ledger_name, "State": "ACTIVE", "CreationDateTime": c["CreationDateTime"]}


@pytest.fixture(scope="module")
def list_server():
    """A private server so that the ledger list holds only this module's ledgers."""
    with dedicated_server(["--max-ledgers", "50"]) as s:
        yield s


def test_list_ledgers_pagination_in_creation_order(list_server):
    c = make_client(list_server.endpoint)
    assert c.list_ledgers()["Ledgers"] == []
    assert "NextToken" not in c.list_ledgers()
    # Deliberately not alphabetical, so creation order differs from name order.
    names = ["zeta-ledger", "alpha-ledger", "mid-ledger", "Beta-ledger", "omega-ledger"]
    created = {}
    for n in names:
        created[n] = c.create_ledger(Name=n, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        time.sleep(0.003)
    try:
        unpaged = c.list_ledgers()
        assert [l["Name"] for l in unpaged["Ledgers"]] == names
        assert "NextToken" not in unpaged
        for l in unpaged["Ledgers"]:
            assert set(l) == {"Name", "State", "CreationDateTime"}
            assert l["State"] == "ACTIVE"
            assert l["CreationDateTime"] == created[l["Name"]]["CreationDateTime"]

        for size in (1, 2, 3, 5):
            seen, token, pages = [], None, 0
            while True:
                kw = {"NextToken": token} if token else {}
                page = c.list_ledgers(MaxResults=size, **kw)
                pages += 1
                assert len(page["Ledgers"]) <= size
                seen.extend(l["Name"] for l in page["Ledgers"])
                token = page.get("NextToken")
                if token is None:
                    break
                assert isinstance(token, str) and len(token) >= 4
                assert pages < 10, "pagination does not terminate"
            assert seen == names, size
            assert pages == -(-len(names) // size), (size, pages)

        # A token stays valid when the ledger it points after is deleted.
        first = c.list_ledgers(MaxResults=2)
        assert [l["Name"] for l in first["Ledgers"]] == names[:2]
        c.delete_ledger(Name=names[1])
        rest = c.list_ledgers(MaxResults=100, NextToken=first["NextToken"])
        assert [l["Name"] for l in rest["Ledgers"]] == names[2:]
        assert "NextToken" not in rest
    finally:
        for n in names:
            try:
                c.delete_ledger(Name=n)
            except c.exceptions.ResourceNotFoundException:
                pass
    assert c.list_ledgers()["Ledgers"] == []


# ---------------------------------------------------------------- UpdateLedger

def test_update_ledger_deletion_protection_toggle(qldb, ledger_name):
    c = create(qldb, ledger_name)
    r = qldb.update_ledger(Name=ledger_name, DeletionProtection=False)
    out = strip_meta(r)
    assert set(out) == {"Name", "Arn", "State", "CreationDateTime", "DeletionProtection"}, out
    assert "PermissionsMode" not in out
    assert out["Name"] == ledger_name
    assert out["Arn"] == ledger_arn(ledger_name)
    assert out["State"] == "ACTIVE"
    assert out["CreationDateTime"] == c["CreationDateTime"]
    assert out["DeletionProtection"] is False
    assert qldb.describe_ledger(Name=ledger_name)["DeletionProtection"] is False
    r = qldb.update_ledger(Name=ledger_name, DeletionProtection=True)
    assert r["DeletionProtection"] is True
    assert qldb.describe_ledger(Name=ledger_name)["DeletionProtection"] is True


def test_update_ledger_without_changes_keeps_everything(qldb, ledger_name):
    create(qldb, ledger_name, PermissionsMode="STANDARD", DeletionProtection=False, KmsKey="k1")
    r = qldb.update_ledger(Name=ledger_name)
    assert r["DeletionProtection"] is False
    # Unchanged key: still ENABLED, not UPDATING.
    assert r["EncryptionDescription"] == {
        "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1", "EncryptionStatus": "ENABLED"}
    d = qldb.describe_ledger(Name=ledger_name)
    assert d["PermissionsMode"] == "STANDARD"
    assert d["DeletionProtection"] is False


def test_update_ledger_kms_key_changes(qldb, ledger_name):
    create(qldb, ledger_name)
    # AWS-owned → customer key: UPDATING in the UpdateLedger response.
    r = qldb.update_ledger(Name=ledger_name, KmsKey="alias/new")
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/new"
    assert r["EncryptionDescription"] == {"KmsKeyArn": key_arn, "EncryptionStatus": "UPDATING"}
    assert "PermissionsMode" not in r
    assert r["DeletionProtection"] is True  # untouched by a key-only update
    d = qldb.describe_ledger(Name=ledger_name)
    assert d["EncryptionDescription"]["KmsKeyArn"] == key_arn
    assert d["EncryptionDescription"]["EncryptionStatus"] in ("UPDATING", "ENABLED")

    # customer key → another customer key (key id form)
    r = qldb.update_ledger(Name=ledger_name, KmsKey="0987dcba-09fe-87dc-65ba-ab0987654321")
    assert r["EncryptionDescription"] == {
        "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321",
        "EncryptionStatus": "UPDATING",
    }

    # customer key → AWS-owned: the literal AWS_OWNED_KMS_KEY, UPDATING.
    r = qldb.update_ledger(Name=ledger_name, KmsKey="AWS_OWNED_KMS_KEY")
    assert r["EncryptionDescription"] == {"KmsKeyArn": "AWS_OWNED_KMS_KEY", "EncryptionStatus": "UPDATING"}
    d = qldb.describe_ledger(Name=ledger_name)
    assert "EncryptionDescription" not in d, d

    # AWS-owned → AWS-owned: nothing changes, no EncryptionDescription.
    r = qldb.update_ledger(Name=ledger_name, KmsKey="AWS_OWNED_KMS_KEY")
    assert "EncryptionDescription" not in r, r


def test_update_unknown_ledger(qldb):
    name = new_name("nope")
    r = expect_error(qldb.update_ledger, "ResourceNotFoundException", 404, Name=name, DeletionProtection=False)
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == name


# ---------------------------------------------------------------- UpdateLedgerPermissionsMode

def test_update_permissions_mode(qldb, ledger_name):
    create(qldb, ledger_name)
    r = qldb.update_ledger_permissions_mode(Name=ledger_name, PermissionsMode="STANDARD")
    assert strip_meta(r) == {"Name": ledger_name, "Arn": ledger_arn(ledger_name), "PermissionsMode": "STANDARD"}
    assert qldb.describe_ledger(Name=ledger_name)["PermissionsMode"] == "STANDARD"
    r = qldb.update_ledger_permissions_mode(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    assert r["PermissionsMode"] == "ALLOW_ALL"
    assert qldb.describe_ledger(Name=ledger_name)["PermissionsMode"] == "ALLOW_ALL"


def test_update_permissions_mode_unknown_ledger(qldb):
    name = new_name("nope")
    r = expect_error(qldb.update_ledger_permissions_mode, "ResourceNotFoundException", 404,
                     Name=name, PermissionsMode="STANDARD")
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == name


# ---------------------------------------------------------------- DeleteLedger

def test_delete_ledger_lifecycle(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"k": "v"})
    r = expect_error(qldb.delete_ledger, "ResourcePreconditionNotMetException", 412, Name=ledger_name)
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == ledger_name
    assert qldb.describe_ledger(Name=ledger_name)["State"] == "ACTIVE"  # still there

    qldb.update_ledger(Name=ledger_name, DeletionProtection=False)
    r = qldb.delete_ledger(Name=ledger_name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert strip_meta(r) == {}
    r = expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=ledger_name)
    assert r["ResourceName"] == ledger_name
    assert ledger_name not in [l["Name"] for l in all_ledgers(qldb)]
    expect_error(qldb.delete_ledger, "ResourceNotFoundException", 404, Name=ledger_name)

    # The name is reusable, and the new ledger starts fresh (no old tags, new settings).
    c = qldb.create_ledger(Name=ledger_name, PermissionsMode="STANDARD")
    assert c["State"] == "CREATING"
    d = qldb.describe_ledger(Name=ledger_name)
    assert d["PermissionsMode"] == "STANDARD"
    assert d["DeletionProtection"] is True
    assert qldb.list_tags_for_resource(ResourceArn=ledger_arn(ledger_name))["Tags"] == {}


def test_delete_unknown_ledger(qldb):
    name = new_name("nope")
    r = expect_error(qldb.delete_ledger, "ResourceNotFoundException", 404, Name=name)
    assert r["ResourceType"] == "LEDGER"
    assert r["ResourceName"] == name


# ---------------------------------------------------------------- lifecycle delays (§6.1)

def test_creating_and_deleting_states_with_delays():
    """With --ledger-create-delay-ms / --ledger-delete-delay-ms the transient states show."""
    with dedicated_server(["--ledger-create-delay-ms", "1000", "--ledger-delete-delay-ms", "1000"]) as s:
        c = make_client(s.endpoint)
        name = "slow-ledger"
        c.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        assert c.describe_ledger(Name=name)["State"] == "CREATING"
        assert c.list_ledgers()["Ledgers"][0]["State"] == "CREATING"
        # A same-named create while CREATING is a duplicate (§6.1).
        r = expect_error(c.create_ledger, "ResourceAlreadyExistsException", 409, Name=name, PermissionsMode="ALLOW_ALL")
        assert r["ResourceName"] == name
        # Deleting while CREATING → ResourceInUseException 409 (§6.1).
        r = expect_error(c.delete_ledger, "ResourceInUseException", 409, Name=name)
        assert r["ResourceType"] == "LEDGER" and r["ResourceName"] == name
        deadline = time.monotonic() + 5
        while c.describe_ledger(Name=name)["State"] != "ACTIVE":
            assert time.monotonic() < deadline, "ledger never became ACTIVE"
            time.sleep(0.05)

        c.delete_ledger(Name=name)
        assert c.describe_ledger(Name=name)["State"] == "DELETING"
        assert [(l["Name"], l["State"]) for l in c.list_ledgers()["Ledgers"]] == [(name, "DELETING")]
        # Creating the same name while it is DELETING → ResourceInUseException 409 (§6.1).
        r = expect_error(c.create_ledger, "ResourceInUseException", 409, Name=name, PermissionsMode="ALLOW_ALL")
        assert r["ResourceType"] == "LEDGER" and r["ResourceName"] == name
        expect_error(c.delete_ledger, "ResourceInUseException", 409, Name=name)
        deadline = time.monotonic() + 5
        while True:
            try:
                c.describe_ledger(Name=name)
            except c.exceptions.ResourceNotFoundException:
                break
            assert time.monotonic() < deadline, "ledger never went away"
            time.sleep(0.05)
        assert c.list_ledgers()["Ledgers"] == []
        c.create_ledger(Name=name, PermissionsMode="ALLOW_ALL")


# ---------------------------------------------------------------- concurrency


def test_concurrent_creates_of_one_name():
    with dedicated_server(["--max-ledgers", "50"]) as s:
        clients = [make_client(s.endpoint) for _ in range(8)]

        def attempt(c):
            try:
                c.create_ledger(Name="contended", PermissionsMode="ALLOW_ALL")
                return "ok"
            except c.exceptions.ResourceAlreadyExistsException:
                return "exists"

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(attempt, clients))
        assert sorted(results) == ["exists"] * 7 + ["ok"], results
        assert ledger_db_stems(s.data_dir) == {"contended"}
        assert not any(".tmp-" in f for f in ledger_files(s.data_dir))


def test_concurrent_creates_respect_the_quota():
    with dedicated_server() as s:  # default quota: 5
        clients = [make_client(s.endpoint) for _ in range(10)]

        def attempt(i):
            c = clients[i]
            try:
                c.create_ledger(Name=f"race-{i}", PermissionsMode="ALLOW_ALL")
                return "ok"
            except c.exceptions.LimitExceededException:
                return "limit"

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(attempt, range(10)))
        assert results.count("ok") == 5, results
        assert results.count("limit") == 5, results
        assert len(clients[0].list_ledgers()["Ledgers"]) == 5
        assert len(ledger_db_stems(s.data_dir)) == 5
        assert not any(".tmp-" in f for f in ledger_files(s.data_dir))


def test_region_and_account_flags_shape_arns():
    with dedicated_server(["--region", "eu-central-1", "--account-id", "123456789012"]) as s:
        c = make_client(s.endpoint)
        r = c.create_ledger(Name="regional", PermissionsMode="ALLOW_ALL", KmsKey="key-1", Tags={"a": "1"})
        arn = "arn:aws:qldb:eu-central-1:123456789012:ledger/regional"
        assert r["Arn"] == arn
        assert r["KmsKeyArn"] == "arn:aws:kms:eu-central-1:123456789012:key/key-1"
        assert c.update_ledger(Name="regional", KmsKey="alias/b")["EncryptionDescription"]["KmsKeyArn"] == \
            "arn:aws:kms:eu-central-1:123456789012:alias/b"
        assert c.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"a": "1"}
        # The default region/account ARN names nothing on this server.
        expect_error(c.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=ledger_arn("regional"))


def test_default_page_size_is_100():
    """§6.5: without MaxResults a page holds at most 100 ledgers (in-memory server for speed)."""
    with dedicated_server(["--max-ledgers", "200", "--in-memory"]) as s:
        c = make_client(s.endpoint)
        names = [f"p{i:03d}" for i in range(101)]
        for n in names:
            c.create_ledger(Name=n, PermissionsMode="ALLOW_ALL")
        first = c.list_ledgers()
        assert [l["Name"] for l in first["Ledgers"]] == names[:100]
        assert first.get("NextToken")
        second = c.list_ledgers(NextToken=first["NextToken"])
        assert [l["Name"] for l in second["Ledgers"]] == names[100:]
        assert "NextToken" not in second
