"""Server-side validation and modeled errors, sent through boto3 (spec §2 client-side
validation, §4 constraints, §5 errors, §6.1 quota, §6.5 pagination)."""

import base64

import pytest
from botocore.exceptions import ParamValidationError

from conftest import make_client
from qldb_test_utils import (
    LEDGER_NAME_PATTERN,
    create,
    dedicated_server,
    expect_error,
    ledger_db_stems,
    ledger_files,
    new_name,
)

BAD_NAMES = [
    pytest.param("bad_name!", "pattern", id="bad-chars"),
    pytest.param("x" * 33, "length less than or equal to 32", id="33-chars"),
    pytest.param("1234567", "pattern", id="all-digits"),
    pytest.param("-leading", "pattern", id="leading-dash"),
    pytest.param("trailing-", "pattern", id="trailing-dash"),
    pytest.param("double--dash", "pattern", id="double-dash"),
    pytest.param("a b", "pattern", id="space"),
    pytest.param("../evil", "pattern", id="dot-dot-slash"),
    pytest.param("ünïcode", "pattern", id="non-ascii"),
    pytest.param("a\x00b", "pattern", id="nul"),
]


def _check_name_error(r, name, what):
    assert r["ParameterName"] == "Name"
    msg = r["Error"]["Message"]
    assert msg.startswith("1 validation error detected: Value '"), msg
    if what == "pattern":
        assert msg.endswith("Member must satisfy regular expression pattern: " + LEDGER_NAME_PATTERN), msg
    else:
        assert what in msg, msg


@pytest.mark.parametrize("name, what", BAD_NAMES)
def test_create_ledger_bad_name(server, qldb, name, what):
    before = ledger_files(server.data_dir)
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=name, PermissionsMode="ALLOW_ALL")
    _check_name_error(r, name, what)
    assert ledger_files(server.data_dir) <= before


@pytest.mark.parametrize("name, what", BAD_NAMES)
@pytest.mark.parametrize("op", ["describe", "update", "delete", "permissions"])
def test_label_bad_name(qldb, name, what, op):
    fn, kw = {
        "describe": (qldb.describe_ledger, {}),
        "update": (qldb.update_ledger, {"DeletionProtection": False}),
        "delete": (qldb.delete_ledger, {}),
        "permissions": (qldb.update_ledger_permissions_mode, {"PermissionsMode": "STANDARD"}),
    }[op]
    r = expect_error(fn, "InvalidParameterException", 400, Name=name, **kw)
    _check_name_error(r, name, what)


def test_name_validation_precedes_existence(qldb):
    # An invalid name is an IPE even though no such ledger exists (not RNF).
    expect_error(qldb.describe_ledger, "InvalidParameterException", 400, Name="no_such!")


@pytest.mark.parametrize("mode", ["BOGUS", "allow_all", "Standard", ""])
def test_bad_permissions_mode_at_create(qldb, ledger_name, mode):
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode=mode)
    assert r["ParameterName"] == "PermissionsMode"
    assert "Member must satisfy enum value set: [ALLOW_ALL, STANDARD]" in r["Error"]["Message"]
    expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=ledger_name)


def test_bad_permissions_mode_at_update(qldb, ledger_name):
    create(qldb, ledger_name, PermissionsMode="STANDARD")
    r = expect_error(qldb.update_ledger_permissions_mode, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode="BOGUS")
    assert r["ParameterName"] == "PermissionsMode"
    assert qldb.describe_ledger(Name=ledger_name)["PermissionsMode"] == "STANDARD"


def test_bad_permissions_mode_checked_before_existence(qldb):
    r = expect_error(qldb.update_ledger_permissions_mode, "InvalidParameterException", 400,
                     Name=new_name("nope"), PermissionsMode="BOGUS")
    assert r["ParameterName"] == "PermissionsMode"


def test_kms_key_too_long(qldb, ledger_name):
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode="ALLOW_ALL", KmsKey="k" * 1601)
    assert r["ParameterName"] == "KmsKey"
    create(qldb, ledger_name)
    r = expect_error(qldb.update_ledger, "InvalidParameterException", 400, Name=ledger_name, KmsKey="k" * 1601)
    assert r["ParameterName"] == "KmsKey"
    assert "EncryptionDescription" not in qldb.describe_ledger(Name=ledger_name)


def test_empty_kms_key_is_refused(qldb, ledger_name):
    # KmsKey has no minimum length in the model, so boto3 sends "", which names no key.
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode="ALLOW_ALL", KmsKey="")
    assert r["ParameterName"] == "KmsKey"


# ---------------------------------------------------------------- ListLedgers paging


@pytest.mark.parametrize("n", [101, 1000, 2 ** 31 - 1])
def test_max_results_above_100(qldb, n):
    r = expect_error(qldb.list_ledgers, "InvalidParameterException", 400, MaxResults=n)
    assert r["ParameterName"] == "MaxResults"
    assert "Member must have value less than or equal to 100" in r["Error"]["Message"]


def test_max_results_100_is_accepted(qldb):
    assert qldb.list_ledgers(MaxResults=100)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_max_results_zero_is_refused_by_boto3_itself(qldb):
    with pytest.raises(ParamValidationError):
        qldb.list_ledgers(MaxResults=0)


@pytest.mark.parametrize("token", [
    "abcd",  # well-formed base64, wrong content
    base64.b64encode(b"qldb-local:v1:not-a-number").decode(),
    base64.b64encode(b"somebody-else:v1:3").decode(),
    "!!!!",  # outside ^[A-Za-z-0-9+/=]+$
    "a" * 1025,  # too long
    "abcde",  # not valid base64
], ids=["garbage", "bad-cursor", "foreign-prefix", "bad-chars", "too-long", "bad-base64"])
def test_bad_next_token(qldb, token):
    r = expect_error(qldb.list_ledgers, "InvalidParameterException", 400, NextToken=token)
    assert r["ParameterName"] == "NextToken"


# ---------------------------------------------------------------- export and stream operations

JOB_OPERATIONS = [
    ("ExportJournalToS3", "export_journal_to_s3", {
        "Name": "some-ledger", "InclusiveStartTime": 1700000000, "ExclusiveEndTime": 1700000100,
        "S3ExportConfiguration": {"Bucket": "bucket", "Prefix": "p/",
                                  "EncryptionConfiguration": {"ObjectEncryptionType": "SSE_S3"}},
        "RoleArn": "arn:aws:iam::000000000000:role/export"}),
    ("DescribeJournalS3Export", "describe_journal_s3_export", {"Name": "some-ledger", "ExportId": "E" * 22}),
    ("ListJournalS3Exports", "list_journal_s3_exports", {}),
    ("ListJournalS3ExportsForLedger", "list_journal_s3_exports_for_ledger", {"Name": "some-ledger"}),
    ("StreamJournalToKinesis", "stream_journal_to_kinesis", {
        "LedgerName": "some-ledger", "RoleArn": "arn:aws:iam::000000000000:role/stream",
        "InclusiveStartTime": 1700000000,
        "KinesisConfiguration": {"StreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/s"},
        "StreamName": "my-stream"}),
    ("DescribeJournalKinesisStream", "describe_journal_kinesis_stream",
     {"LedgerName": "some-ledger", "StreamId": "S" * 22}),
    ("ListJournalKinesisStreamsForLedger", "list_journal_kinesis_streams_for_ledger",
     {"LedgerName": "some-ledger"}),
    ("CancelJournalKinesisStream", "cancel_journal_kinesis_stream",
     {"LedgerName": "some-ledger", "StreamId": "S" * 22}),
]


@pytest.mark.parametrize("op, method, kwargs", [o for o in JOB_OPERATIONS if o[0] != "ListJournalS3Exports"],
                         ids=[o[0] for o in JOB_OPERATIONS if o[0] != "ListJournalS3Exports"])
def test_job_operations_on_an_unknown_ledger(qldb, op, method, kwargs):
    """Valid requests naming a ledger that does not exist: ResourceNotFoundException."""
    r = expect_error(getattr(qldb, method), "ResourceNotFoundException", 404, **kwargs)
    assert "some-ledger" in r["Error"]["Message"], r["Error"]["Message"]


def test_send_command_without_a_command_is_a_bad_request(server):
    session = make_client(server.endpoint, service="qldb-session")
    r = expect_error(session.send_command, "BadRequestException", 400, SessionToken="x" * 10)
    assert "exactly one command" in r["Error"]["Message"]
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.0"


# ---------------------------------------------------------------- ledger quota (§6.1)


def test_default_quota_of_five_ledgers():
    with dedicated_server() as s:  # no --max-ledgers: the default quota of 5
        c = make_client(s.endpoint)
        names = [f"quota-{i}" for i in range(5)]
        for n in names:
            c.create_ledger(Name=n, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        files = ledger_files(s.data_dir)
        assert ledger_db_stems(s.data_dir) == set(names)
        r = expect_error(c.create_ledger, "LimitExceededException", 400,
                         Name="quota-5", PermissionsMode="ALLOW_ALL")
        assert r["ResourceType"] == "LEDGER"
        assert "5" in r["Error"]["Message"]
        expect_error(c.describe_ledger, "ResourceNotFoundException", 404, Name="quota-5")
        assert ledger_files(s.data_dir) == files  # the refused create left no file
        assert len(c.list_ledgers()["Ledgers"]) == 5
        # At the quota, an existing name is still reported as a duplicate (checked first).
        expect_error(c.create_ledger, "ResourceAlreadyExistsException", 409,
                     Name="quota-1", PermissionsMode="ALLOW_ALL")
        assert ledger_files(s.data_dir) == files
        c.delete_ledger(Name="quota-0")
        c.create_ledger(Name="quota-5", PermissionsMode="ALLOW_ALL")
        assert ledger_db_stems(s.data_dir) == set(names[1:]) | {"quota-5"}
        expect_error(c.create_ledger, "LimitExceededException", 400, Name="quota-6", PermissionsMode="ALLOW_ALL")
        assert s.health()["ledgers"] == 5
