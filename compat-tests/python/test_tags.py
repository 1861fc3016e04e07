"""TagResource, UntagResource, ListTagsForResource through boto3 (spec §3 Tagging, §4, §6.6)."""

import pytest

from qldb_test_utils import (
    ACCOUNT,
    REGION,
    create,
    expect_error,
    ledger_arn,
    new_name,
    strip_meta,
)

SPECIAL = {"a b": "space value", "x/y": "slash", "k=v+": "a+b=c&d", "ü-ключ": "unicode ✓", "empty": ""}


def tags_of(qldb, name):
    return qldb.list_tags_for_resource(ResourceArn=ledger_arn(name))["Tags"]


def test_tags_at_create_and_list(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"env": "test", "team": "core"})
    r = qldb.list_tags_for_resource(ResourceArn=ledger_arn(ledger_name))
    assert strip_meta(r) == {"Tags": {"env": "test", "team": "core"}}


def test_untagged_ledger_lists_empty_map(qldb, ledger_name):
    create(qldb, ledger_name)
    assert tags_of(qldb, ledger_name) == {}


def test_tag_untag_round_trip_with_special_keys(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"base": "1"})
    r = qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags=SPECIAL)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert strip_meta(r) == {}
    assert tags_of(qldb, ledger_name) == {"base": "1", **SPECIAL}

    r = qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=["a b", "x/y", "k=v+"])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert strip_meta(r) == {}
    assert tags_of(qldb, ledger_name) == {"base": "1", "ü-ключ": "unicode ✓", "empty": ""}

    qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=["ü-ключ", "empty", "base"])
    assert tags_of(qldb, ledger_name) == {}


def test_untag_absent_keys_is_a_noop(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"keep": "me"})
    qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=["absent", "also absent"])
    assert tags_of(qldb, ledger_name) == {"keep": "me"}


def test_untag_empty_list(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"keep": "me"})
    r = qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=[])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tags_of(qldb, ledger_name) == {"keep": "me"}


def test_tag_keys_are_case_sensitive(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"Key": "upper"})
    qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags={"key": "lower"})
    assert tags_of(qldb, ledger_name) == {"Key": "upper", "key": "lower"}
    qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=["KEY"])
    assert tags_of(qldb, ledger_name) == {"Key": "upper", "key": "lower"}


def test_tag_with_empty_map_is_accepted(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"a": "1"})
    qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags={})
    assert tags_of(qldb, ledger_name) == {"a": "1"}


def test_size_limits_accepted_at_the_edge(qldb, ledger_name):
    tags = {f"k{i:02d}": "v" for i in range(49)}
    tags["K" * 128] = "V" * 256
    create(qldb, ledger_name, Tags=tags)  # exactly 50 tags, longest key and value
    assert tags_of(qldb, ledger_name) == tags


# ---------------------------------------------------------------- errors


def test_create_with_51_tags(qldb, ledger_name):
    tags = {f"k{i}": "v" for i in range(51)}
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode="ALLOW_ALL", Tags=tags)
    assert r["ParameterName"] == "Tags"
    expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=ledger_name)


def test_tag_resource_beyond_50(qldb, ledger_name):
    create(qldb, ledger_name, Tags={f"k{i}": "v" for i in range(48)})
    r = expect_error(qldb.tag_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name), Tags={"n1": "v", "n2": "v", "n3": "v"})
    assert r["ParameterName"] == "Tags"
    assert len(tags_of(qldb, ledger_name)) == 48  # nothing added
    qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags={"n1": "v", "n2": "v"})
    assert len(tags_of(qldb, ledger_name)) == 50


BAD_TAGS = [
    pytest.param({"k" * 129: "v"}, id="key-129-chars"),
    pytest.param({"k": "v" * 257}, id="value-257-chars"),
    pytest.param({"aws:reserved": "v"}, id="aws-prefix"),
    # The server also refuses the prefix in other cases (AWS treats aws: case-insensitively).
    pytest.param({"AWS:Reserved": "v"}, id="aws-prefix-upper"),
    pytest.param({"ok": "v", "aws:x": "v"}, id="aws-prefix-among-good"),
]


@pytest.mark.parametrize("tags", BAD_TAGS)
def test_bad_tags_at_create(qldb, ledger_name, tags):
    r = expect_error(qldb.create_ledger, "InvalidParameterException", 400,
                     Name=ledger_name, PermissionsMode="ALLOW_ALL", Tags=tags)
    assert r["ParameterName"] == "Tags"
    expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=ledger_name)


@pytest.mark.parametrize("tags", BAD_TAGS)
def test_bad_tags_at_tag_resource(qldb, ledger_name, tags):
    create(qldb, ledger_name, Tags={"keep": "me"})
    r = expect_error(qldb.tag_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name), Tags=tags)
    assert r["ParameterName"] == "Tags"
    assert tags_of(qldb, ledger_name) == {"keep": "me"}  # all or nothing


@pytest.mark.parametrize("value", ["v", "other"], ids=["same-value", "new-value"])
def test_tagging_an_existing_key_overwrites_it(qldb, ledger_name, value):
    # AWS's DMV samples tag Domain=Prod over Domain=Test and expect success; Terraform
    # updates QLDB tag values through TagResource too.
    create(qldb, ledger_name, Tags={"k": "v", "keep": "me"})
    qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags={"k": value, "new": "x"})
    assert tags_of(qldb, ledger_name) == {"k": value, "keep": "me", "new": "x"}


def test_overwriting_keys_does_not_count_toward_the_limit(qldb, ledger_name):
    full = {f"k{i}": "a" for i in range(50)}
    create(qldb, ledger_name, Tags=full)
    qldb.tag_resource(ResourceArn=ledger_arn(ledger_name), Tags={f"k{i}": "b" for i in range(50)})
    assert tags_of(qldb, ledger_name) == {f"k{i}": "b" for i in range(50)}
    r = expect_error(qldb.tag_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name), Tags={"k0": "c", "one-more": "x"})
    assert r["ParameterName"] == "Tags"
    assert tags_of(qldb, ledger_name) == {f"k{i}": "b" for i in range(50)}


def test_untag_key_of_129_chars(qldb, ledger_name):
    create(qldb, ledger_name)
    r = expect_error(qldb.untag_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name), TagKeys=["k" * 129])
    assert r["ParameterName"] == "TagKeys"


NOT_FOUND_ARNS = [
    pytest.param(lambda n: ledger_arn(n, account="123456789012"), "LEDGER", id="other-account"),
    pytest.param(lambda n: ledger_arn(n, region="eu-west-1"), "LEDGER", id="other-region"),
    pytest.param(lambda n: ledger_arn("unknown-" + n[-8:]), "LEDGER", id="unknown-ledger"),
    pytest.param(lambda n: ledger_arn(n) + "/table/" + "A" * 22, "TABLE", id="unknown-table"),
    pytest.param(lambda n: f"arn:aws:qldb:{REGION}:{ACCOUNT}:stream/{n}/" + "B" * 22, "STREAM",
                 id="unknown-stream"),
]


@pytest.mark.parametrize("make_arn, resource_type", NOT_FOUND_ARNS)
@pytest.mark.parametrize("op", ["tag", "untag", "list"])
def test_tags_on_missing_resource(qldb, ledger_name, make_arn, resource_type, op):
    create(qldb, ledger_name)  # exists in this account/region, but the ARN points elsewhere
    arn = make_arn(ledger_name)
    fn, kw = {
        "tag": (qldb.tag_resource, {"Tags": {"k": "v"}}),
        "untag": (qldb.untag_resource, {"TagKeys": ["k"]}),
        "list": (qldb.list_tags_for_resource, {}),
    }[op]
    r = expect_error(fn, "ResourceNotFoundException", 404, ResourceArn=arn, **kw)
    assert r["ResourceType"] == resource_type
    assert r.get("ResourceName")
    assert tags_of(qldb, ledger_name) == {}


@pytest.mark.parametrize("arn", [
    "arn:aws:s3:::my-example-bucket-name",
    "arn:aws:dynamodb:us-east-1:000000000000:table/ledger",
    "arn:aws:qldb:us-east-1:000000000000:notaledger/x",
    "arn:aws:qldb:us-east-1:000000000000:ledger/bad_name!",
    "not-an-arn-at-all-but-long-enough",
], ids=["s3", "dynamodb", "qldb-bad-type", "qldb-bad-name", "not-an-arn"])
@pytest.mark.parametrize("op", ["tag", "untag", "list"])
def test_tags_on_non_qldb_arn(qldb, arn, op):
    fn, kw = {
        "tag": (qldb.tag_resource, {"Tags": {"k": "v"}}),
        "untag": (qldb.untag_resource, {"TagKeys": ["k"]}),
        "list": (qldb.list_tags_for_resource, {}),
    }[op]
    r = expect_error(fn, "InvalidParameterException", 400, ResourceArn=arn, **kw)
    assert r["ParameterName"] == "ResourceArn"


def test_tags_of_deleted_ledger(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"k": "v"}, DeletionProtection=False)
    qldb.delete_ledger(Name=ledger_name)
    expect_error(qldb.list_tags_for_resource, "ResourceNotFoundException", 404,
                 ResourceArn=ledger_arn(ledger_name))
    expect_error(qldb.tag_resource, "ResourceNotFoundException", 404,
                 ResourceArn=ledger_arn(ledger_name), Tags={"a": "b"})


def test_tags_do_not_leak_between_ledgers(qldb):
    a, b = new_name("ta"), new_name("tb")
    create(qldb, a, Tags={"owner": "a"})
    create(qldb, b)
    qldb.tag_resource(ResourceArn=ledger_arn(b), Tags={"owner": "b"})
    assert tags_of(qldb, a) == {"owner": "a"}
    assert tags_of(qldb, b) == {"owner": "b"}
    qldb.untag_resource(ResourceArn=ledger_arn(a), TagKeys=["owner"])
    assert tags_of(qldb, a) == {}
    assert tags_of(qldb, b) == {"owner": "b"}


def test_untag_more_than_200_keys(qldb, ledger_name):
    create(qldb, ledger_name, Tags={"k": "v"})
    r = expect_error(qldb.untag_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name), TagKeys=[f"k{i}" for i in range(201)])
    assert r["ParameterName"] == "TagKeys"
    assert tags_of(qldb, ledger_name) == {"k": "v"}
    qldb.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=[f"x{i}" for i in range(199)] + ["k"])
    assert tags_of(qldb, ledger_name) == {}


def test_arn_longer_than_1600(qldb, ledger_name):
    create(qldb, ledger_name)
    r = expect_error(qldb.list_tags_for_resource, "InvalidParameterException", 400,
                     ResourceArn=ledger_arn(ledger_name) + "x" * 1600)
    assert r["ParameterName"] == "ResourceArn"
