"""CREATE TABLE … WITH (aws_tags = `{…}`) through pyqldb 3.2.4, and the table's ARN in the
tagging API through boto3 1.40.60 and the AWS CLI (partiql-dialect spec §1.2; tables are
taggable only in STANDARD-mode ledgers)."""

import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from qldb_session_helpers import commit_digest, create_ledger, decode_holder, make_driver, run
from qldb_test_utils import expect_error, ledger_arn, strip_meta


@pytest.fixture
def standard(server):
    name = create_ledger(server, mode="STANDARD")
    driver = make_driver(server, name)
    yield name, driver
    driver.close()


def table_arn(ledger, table_id):
    return f"{ledger_arn(ledger)}/table/{table_id}"


def test_create_table_with_tags_then_tag_and_untag(server, qldb, standard):
    name, driver = standard
    rows = run(driver, "CREATE TABLE Vehicle WITH (aws_tags = `{'environment': 'production', 'team': 'fleet'}`)")
    assert len(rows) == 1
    table_id = rows[0]["tableId"]
    assert len(table_id) == 22
    arn = table_arn(name, table_id)
    assert strip_meta(qldb.list_tags_for_resource(ResourceArn=arn)) == {
        "Tags": {"environment": "production", "team": "fleet"}
    }
    qldb.tag_resource(ResourceArn=arn, Tags={"cost-center": "42"})
    qldb.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "environment": "production",
        "cost-center": "42",
    }
    # The table's tags are its own: the ledger has none.
    assert qldb.list_tags_for_resource(ResourceArn=ledger_arn(name))["Tags"] == {}
    # A dropped table keeps its ARN and its tags.
    run(driver, "DROP TABLE Vehicle")
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
        "environment": "production",
        "cost-center": "42",
    }


def test_untagged_table_is_taggable(qldb, standard):
    name, driver = standard
    table_id = run(driver, "CREATE TABLE Plain")[0]["tableId"]
    arn = table_arn(name, table_id)
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
    qldb.tag_resource(ResourceArn=arn, Tags={"k": "v"})
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"k": "v"}


def test_cli_lists_table_tags(aws, standard):
    name, driver = standard
    table_id = run(driver, "CREATE TABLE Cli WITH (aws_tags = `{'owner': 'cli'}`)")[0]["tableId"]
    rc, out, err = aws("qldb", "list-tags-for-resource", "--resource-arn", table_arn(name, table_id))
    assert rc == 0, err
    assert out == {"Tags": {"owner": "cli"}}


@pytest.mark.parametrize(
    "tags, message",
    [
        ("`{'aws:reserved': 'x'}`", "reserved prefix"),
        ("`{'k': 1}`", "must be a string"),
        ("`{}`", "at least one tag"),
        ("`['k', 'v']`", "Ion struct"),
        ("`{'k': 'a', 'k': 'b'}`", "Duplicate tag key"),
        ("`{'" + "k" * 129 + "': 'v'}`", "Map keys must satisfy constraint"),
    ],
)
def test_bad_tags_are_refused_and_create_nothing(server, standard, tags, message):
    name, driver = standard
    with pytest.raises(ClientError) as ei:
        run(driver, f"CREATE TABLE Bad WITH (aws_tags = {tags})")
    err = ei.value.response["Error"]
    assert err["Code"] == "BadRequestException"
    assert message in err["Message"]
    assert run(driver, "SELECT VALUE name FROM information_schema.user_tables") == []


def test_too_many_tags(standard):
    name, driver = standard
    tags = ", ".join(f"'k{i}': 'v'" for i in range(51))
    with pytest.raises(ClientError) as ei:
        run(driver, f"CREATE TABLE Many WITH (aws_tags = `{{{tags}}}`)")
    assert ei.value.response["Error"]["Code"] == "BadRequestException"
    assert "at most 50 tags" in ei.value.response["Error"]["Message"]


def test_allow_all_ledger_refuses_table_tags(server, qldb):
    name = create_ledger(server)  # ALLOW_ALL
    driver = make_driver(server, name)
    try:
        with pytest.raises(ClientError) as ei:
            run(driver, "CREATE TABLE T WITH (aws_tags = `{'k': 'v'}`)")
        assert ei.value.response["Error"]["Code"] == "BadRequestException"
        assert "STANDARD" in ei.value.response["Error"]["Message"]
        # An untagged table has an ARN, but tagging it needs STANDARD mode.
        table_id = run(driver, "CREATE TABLE T")[0]["tableId"]
        arn = table_arn(name, table_id)
        assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {}
        r = expect_error(qldb.tag_resource, "InvalidParameterException", 400, ResourceArn=arn, Tags={"k": "v"})
        assert "STANDARD" in r["Error"]["Message"]
    finally:
        driver.close()


def test_aborted_create_leaves_no_tags(server, qldb, standard):
    name, driver = standard
    seen = {}

    def create_then_abort(txn):
        cursor = txn.execute_statement("CREATE TABLE Gone WITH (aws_tags = `{'k': 'v'}`)")
        seen["id"] = next(iter(cursor))["tableId"]
        txn.abort()

    with pytest.raises(Exception):
        driver.execute_lambda(create_then_abort)
    expect_error(
        qldb.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=table_arn(name, seen["id"])
    )


def test_unknown_table_arn(qldb, standard):
    name, _ = standard
    arn = table_arn(name, "0" * 22)
    expect_error(qldb.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=arn)
    expect_error(qldb.tag_resource, "ResourceNotFoundException", 404, ResourceArn=arn, Tags={"k": "v"})


def test_occ_loser_leaves_no_tags(server, qldb, standard):
    """Two transactions create the same table name; the loser's table id never gets tags."""
    name, _ = standard
    client = make_client(server.endpoint, service="qldb-session")

    ids = []
    for tag in ("first", "second"):
        token = client.send_command(StartSession={"LedgerName": name})["StartSession"]["SessionToken"]
        txid = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
        stmt = f"CREATE TABLE Race WITH (aws_tags = `{{'who': '{tag}'}}`)"
        r = client.send_command(
            SessionToken=token, ExecuteStatement={"TransactionId": txid, "Statement": stmt}
        )
        table_id = decode_holder(r["ExecuteStatement"]["FirstPage"]["Values"][0])["tableId"]
        ids.append((token, txid, stmt, table_id))
    outcomes = []
    for token, txid, stmt, _ in ids:
        try:
            client.send_command(
                SessionToken=token,
                CommitTransaction={"TransactionId": txid, "CommitDigest": commit_digest(txid, [(stmt, [])])},
            )
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(e.response["Error"]["Code"])
    assert outcomes == ["ok", "OccConflictException"]
    assert qldb.list_tags_for_resource(ResourceArn=table_arn(name, ids[0][3]))["Tags"] == {"who": "first"}
    expect_error(
        qldb.list_tags_for_resource, "ResourceNotFoundException", 404, ResourceArn=table_arn(name, ids[1][3])
    )
