"""Hand-made HTTP requests for input no official client sends (spec §2 wire rules, §5.1 error
framing, §7 session framing). Requests to the strict shared server are signed with botocore's
SigV4Auth, so what is tested is the server's handling of the input, not its auth."""

import email.utils
import json
import os
import pathlib

import pytest

from qldb_test_utils import (
    all_ledgers,
    assert_json_error,
    dedicated_server,
    ledger_arn,
    ledger_db_stems,
    ledger_files,
    new_name,
    raw,
    utcnow,
)

JSON = {"Content-Type": "application/json"}


def create_body(name, **extra):
    return json.dumps({"Name": name, "PermissionsMode": "ALLOW_ALL", **extra}).encode()


# ---------------------------------------------------------------- success framing


def test_success_framing(server, ledger_name):
    resp = raw(server, "POST", "/ledgers", create_body(ledger_name), JSON)
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("x-amzn-requestid")
    served = email.utils.parsedate_to_datetime(resp.headers["date"])
    assert abs((served - utcnow()).total_seconds()) < 5, resp.headers["date"]  # clients correct skew from it
    body = resp.json()
    # Timestamps are JSON numbers of epoch seconds (§2), never strings.
    assert isinstance(body["CreationDateTime"], (int, float)) and not isinstance(body["CreationDateTime"], bool)
    assert body["DeletionProtection"] is True
    resp = raw(server, "GET", f"/ledgers/{ledger_name}")
    assert resp.status == 200
    assert isinstance(resp.json()["CreationDateTime"], (int, float))


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json; charset=utf-8"},
    {"Content-Type": "Application/JSON"},
    {},  # no Content-Type at all
], ids=["charset", "case", "none"])
def test_json_content_type_variants_accepted(server, headers):
    name = new_name("ct")
    resp = raw(server, "POST", "/ledgers", create_body(name), headers)
    assert resp.status == 200, resp
    assert resp.json()["Name"] == name


def test_unknown_members_ignored_and_null_is_absent(server, qldb):
    name = new_name("nul")
    body = create_body(name, Bogus=1, Nested={"x": [1, 2]}, DeletionProtection=None, KmsKey=None,
                       Tags={"n": None, "v": "1"})
    resp = raw(server, "POST", "/ledgers", body, JSON)
    assert resp.status == 200, resp
    out = resp.json()
    assert out["DeletionProtection"] is True  # null → default
    assert "KmsKeyArn" not in out
    assert qldb.list_tags_for_resource(ResourceArn=ledger_arn(name))["Tags"] == {"n": "", "v": "1"}


def test_empty_output_operations_answer_200(server, ledger_name):
    raw(server, "POST", "/ledgers", create_body(ledger_name, DeletionProtection=False), JSON)
    arn = ledger_arn(ledger_name).replace(":", "%3A").replace("/", "%2F")
    resp = raw(server, "POST", f"/tags/{arn}", json.dumps({"Tags": {"k": "v"}}), JSON)
    assert resp.status == 200, resp
    assert resp.body.strip() in (b"", b"{}")
    resp = raw(server, "DELETE", f"/tags/{arn}?tagKeys=k&tagKeys=absent")
    assert resp.status == 200, resp
    assert resp.body.strip() in (b"", b"{}")
    resp = raw(server, "DELETE", f"/ledgers/{ledger_name}")
    assert resp.status == 200, resp
    assert resp.body.strip() in (b"", b"{}")


def test_patch_with_empty_body_is_empty_input(server, ledger_name):
    raw(server, "POST", "/ledgers", create_body(ledger_name), JSON)
    resp = raw(server, "PATCH", f"/ledgers/{ledger_name}", b"")
    assert resp.status == 200, resp
    assert resp.json()["DeletionProtection"] is True


# ---------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("body", [
    b'{"Name": "x", ',
    b"not json",
    b'{"Name": "x"} trailing',
    b'{"Name": 5, "PermissionsMode": "ALLOW_ALL"}',
    b'{"Name": "x", "PermissionsMode": "ALLOW_ALL", "DeletionProtection": "yes"}',
], ids=["truncated", "not-json", "trailing", "name-number", "bool-as-string"])
def test_malformed_json_body(server, body):
    before = ledger_files(server.data_dir)
    resp = raw(server, "POST", "/ledgers", body, JSON)
    assert_json_error(resp, 400, "SerializationException")
    assert ledger_files(server.data_dir) == before


@pytest.mark.parametrize("body", [b"[]", b'[{"Name": "x", "PermissionsMode": "ALLOW_ALL"}]', b'"str"', b"42",
                                  b"null"],
                         ids=["empty-array", "array", "string", "number", "null"])
def test_non_object_json_body(server, body):
    resp = raw(server, "POST", "/ledgers", body, JSON)
    assert_json_error(resp, 400)
    assert resp.headers["x-amzn-errortype"] in ("SerializationException", "InvalidParameterException"), resp


def test_positional_array_body_is_not_a_create_input(server, qldb):
    """A JSON array whose elements line up with the input members is still not a JSON object
    (§2: bodies are JSON objects); it must not create a ledger."""
    name = new_name("arr")
    before = ledger_files(server.data_dir)
    resp = raw(server, "POST", "/ledgers", json.dumps([name, "ALLOW_ALL", None, False, None]), JSON)
    assert_json_error(resp, 400)
    assert resp.headers["x-amzn-errortype"] == "SerializationException", resp
    assert name not in {l["Name"] for l in all_ledgers(qldb)}
    assert ledger_files(server.data_dir) == before


@pytest.mark.parametrize("suffix, body", [
    ("", [False, None]),
    ("/permissions-mode", ["STANDARD"]),
], ids=["UpdateLedger", "UpdateLedgerPermissionsMode"])
def test_positional_array_body_is_not_an_update_input(server, qldb, ledger_name, suffix, body):
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    resp = raw(server, "PATCH", f"/ledgers/{ledger_name}{suffix}", json.dumps(body), JSON)
    assert_json_error(resp, 400)
    assert resp.headers["x-amzn-errortype"] == "SerializationException", resp
    d = qldb.describe_ledger(Name=ledger_name)
    assert (d["PermissionsMode"], d["DeletionProtection"]) == ("ALLOW_ALL", True)


def test_positional_array_body_is_not_a_tag_input(server, qldb, ledger_name):
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    arn = ledger_arn(ledger_name).replace(":", "%3A").replace("/", "%2F")
    resp = raw(server, "POST", f"/tags/{arn}", json.dumps([{"k": "v"}]), JSON)
    assert_json_error(resp, 400)
    assert qldb.list_tags_for_resource(ResourceArn=ledger_arn(ledger_name))["Tags"] == {}


def test_wrong_content_type(server):
    resp = raw(server, "POST", "/ledgers", create_body(new_name("tp")), {"Content-Type": "text/plain"})
    assert_json_error(resp, 415, "UnsupportedMediaTypeException")


def test_invalid_utf8_body(server):
    before = ledger_files(server.data_dir)
    resp = raw(server, "POST", "/ledgers", b'{"Name":"ab\xff\xfe","PermissionsMode":"ALLOW_ALL"}', JSON)
    assert_json_error(resp, 400)
    assert ledger_files(server.data_dir) == before


@pytest.mark.parametrize("body, param", [
    (b"{}", "Name"),
    (b'{"PermissionsMode": "ALLOW_ALL"}', "Name"),
    (b'{"Name": "missing-mode"}', "PermissionsMode"),
], ids=["empty-object", "no-name", "no-mode"])
def test_missing_required_members(server, body, param):
    resp = raw(server, "POST", "/ledgers", body, JSON)
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == param
    assert "Member must not be null" in out["Message"]


def test_tag_resource_without_tags_member(server, ledger_name):
    raw(server, "POST", "/ledgers", create_body(ledger_name), JSON)
    arn = ledger_arn(ledger_name).replace(":", "%3A").replace("/", "%2F")
    resp = raw(server, "POST", f"/tags/{arn}", b"{}", JSON)
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "Tags"


@pytest.mark.parametrize("query", ["max_results=abc", "max_results=0", "max_results=-1", "max_results=1.5"])
def test_bad_max_results_query(server, query):
    resp = raw(server, "GET", f"/ledgers?{query}")
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "MaxResults"


def test_oversized_body():
    with dedicated_server(["--max-body-bytes", "1024"]) as s:
        body = b'{"Name":"big","PermissionsMode":"ALLOW_ALL","Tags":{"k":"' + b"x" * 1950 + b'"}}'
        assert len(body) > 2000
        resp = raw(s, "POST", "/ledgers", body, JSON)
        assert_json_error(resp, 413, "RequestEntityTooLargeException")
        # Without Content-Length (chunked), the limit holds too.
        resp = raw(s, "POST", "/ledgers", body, JSON, chunked=True)
        assert_json_error(resp, 413, "RequestEntityTooLargeException")
        # A body under the limit still works.
        resp = raw(s, "POST", "/ledgers", create_body("small"), JSON)
        assert resp.status == 200, resp
        assert ledger_db_stems(s.data_dir) == {"small"}


# ---------------------------------------------------------------- routing


def test_unknown_route(server):
    resp = raw(server, "GET", "/nope")
    assert_json_error(resp, 404, "UnknownOperationException")


def test_wrong_method(server):
    resp = raw(server, "PUT", "/ledgers", b"{}", JSON)
    assert_json_error(resp, 405, "UnknownOperationException")


@pytest.mark.parametrize("method, path", [("DELETE", "/ledgers"), ("POST", "/ledgers/some-ledger"),
                                          ("GET", "/ledgers/some-ledger/permissions-mode")])
def test_other_wrong_methods(server, method, path):
    resp = raw(server, method, path, b"" if method == "POST" else None)
    assert_json_error(resp, 405)


def test_session_unknown_target(server):
    resp = raw(server, "POST", "/", b"{}", {"Content-Type": "application/x-amz-json-1.0",
                                             "X-Amz-Target": "QLDBSession.Bogus"})
    assert_json_error(resp, 400, "UnknownOperationException")
    assert resp.headers["content-type"] == "application/x-amz-json-1.0"
    assert resp.json()["__type"] == "UnknownOperationException"


def test_session_send_command_for_an_unknown_ledger(server):
    resp = raw(server, "POST", "/", b'{"StartSession":{"LedgerName":"no-such-ledger"}}',
               {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "QLDBSession.SendCommand"})
    assert_json_error(resp, 400, "BadRequestException")
    assert resp.headers["content-type"] == "application/x-amz-json-1.0"
    assert resp.json()["__type"] == "BadRequestException"
    assert len(resp.headers["x-amzn-requestid"]) == 22


@pytest.mark.parametrize("body", [b"[]", b"not json", b"{}", b'{"StartSession":{},"EndSession":{}}',
                                  b'{"StartSession":"x"}', "{\"StartSession\":{\"LedgerName\":\"\xff\"}}".encode("latin-1")])
def test_session_malformed_bodies_are_bad_requests(server, body):
    resp = raw(server, "POST", "/", body,
               {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "QLDBSession.SendCommand"})
    assert_json_error(resp, 400, "BadRequestException")


def test_post_root_without_target(server):
    resp = raw(server, "POST", "/", b"{}", JSON)
    assert_json_error(resp, 404, "UnknownOperationException")


# ---------------------------------------------------------------- path escapes (names → files)

ESCAPES = [
    "/ledgers/..%2F..%2Fetc",
    "/ledgers/%2e%2e",
    "/ledgers/%2E%2E%2Fcatalog",
    "/ledgers/a%00b",
    "/ledgers/%00",
    "/ledgers/a%2Fb",
    "/ledgers/..%5C..%5Cetc",
    "/ledgers/catalog.sqlite",
    "/ledgers/%20",
]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_escaping_names_in_labels(server, method, path):
    body = b'{"DeletionProtection": false}' if method == "PATCH" else None
    resp = raw(server, method, path, body, JSON if body else None)
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "Name"


@pytest.mark.parametrize("path", ESCAPES)
def test_escaping_names_in_permissions_mode_label(server, path):
    resp = raw(server, "PATCH", path + "/permissions-mode", b'{"PermissionsMode":"STANDARD"}', JSON)
    assert_json_error(resp, 400, "InvalidParameterException")


@pytest.mark.parametrize("name", ["../../etc", "..", "a/b", "a\x00b", "..\\..\\x", "catalog.sqlite", "ledgers/x"])
def test_escaping_names_in_create_body(server, name):
    resp = raw(server, "POST", "/ledgers", create_body(name), JSON)
    assert_json_error(resp, 400, "InvalidParameterException")


def test_invalid_utf8_in_label(server):
    for path in ("/ledgers/%FF", "/ledgers/%C3%28", "/tags/%FF%FE"):
        resp = raw(server, "GET", path)
        assert 400 <= resp.status < 500, resp
        assert_json_error(resp, resp.status)


def test_invalid_utf8_in_arn_label_names_the_arn(server):
    # The label of the tag operations is ResourceArn, so that is the parameter at fault.
    resp = raw(server, "GET", "/tags/%FF%FE")
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out.get("ParameterName") == "ResourceArn", out


def test_invalid_utf8_in_query(server):
    resp = raw(server, "GET", "/ledgers?next_token=%FF%FF%FF%FF")
    assert 400 <= resp.status < 500, resp
    assert_json_error(resp, resp.status)


@pytest.mark.sqlite_files
def test_nothing_escaped_the_data_dir(server, qldb):
    """Runs after the escape tests in this module: only real ledgers have files."""
    data = pathlib.Path(server.data_dir)
    for p in ["etc.sqlite", "../etc.sqlite", "../../etc.sqlite", "..sqlite", "a/b.sqlite"]:
        assert not (data / "ledgers" / p).exists(), p
    assert not (data.parent / "etc.sqlite").exists()
    allowed = {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm", "ledgers", ".lock"}
    assert set(os.listdir(data)) <= allowed, os.listdir(data)
    assert {"catalog.sqlite", "ledgers"} <= set(os.listdir(data))
    names = {l["Name"] for l in all_ledgers(qldb)}
    files = ledger_files(server.data_dir)
    for f in files:
        stem, sep, suffix = f.partition(".sqlite")
        assert sep and suffix in ("", "-wal", "-shm"), f"unexpected file {f}"
        assert stem in names, f"{f} belongs to no ledger"
    assert ledger_db_stems(server.data_dir) == names


def test_untag_with_repeated_and_encoded_query(server, qldb, ledger_name):
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", Tags={"a b": "1", "x": "2", "k=v+": "3"})
    arn = ledger_arn(ledger_name).replace(":", "%3A").replace("/", "%2F")
    resp = raw(server, "DELETE", f"/tags/{arn}?tagKeys=a%20b&tagKeys=k%3Dv%2B&other=1")
    assert resp.status == 200, resp
    assert qldb.list_tags_for_resource(ResourceArn=ledger_arn(ledger_name))["Tags"] == {"x": "2"}


def test_every_error_has_request_id_and_json(server):
    """A sample of every kind of failure, checked for the common framing (§5.1)."""
    cases = [
        raw(server, "GET", "/ledgers/does-not-exist-xyz"),
        raw(server, "GET", "/nope"),
        raw(server, "PUT", "/ledgers", b"{}", JSON),
        raw(server, "POST", "/ledgers", b"[", JSON),
        raw(server, "GET", "/ledgers", sign=False),
        raw(server, "POST", "/ledgers/x/digest", b""),
    ]
    ids = set()
    for resp in cases:
        assert_json_error(resp, resp.status)
        assert resp.status >= 400
        body = resp.json()
        assert body.get("__type") == resp.headers["x-amzn-errortype"], resp
        # Exactly the modeled `Message`: with `message` too, rusoto's error structs (the
        # Rust `qldb` driver) fail on a duplicate field and every error becomes Unknown.
        assert "Message" in body and "message" not in body, body
        ids.add(resp.headers["x-amzn-requestid"])
    assert len(ids) == len(cases), "request ids are not unique"


# ---------------------------------------------------------------- minimum lengths boto3 refuses locally


def test_empty_name_in_body(server):
    resp = raw(server, "POST", "/ledgers", create_body(""), JSON)
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "Name"
    assert "Member must have length greater than or equal to 1" in out["Message"]


def test_empty_tag_key(server, ledger_name):
    resp = raw(server, "POST", "/ledgers", create_body(ledger_name, Tags={"": "v"}), JSON)
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "Tags"
    raw(server, "POST", "/ledgers", create_body(ledger_name, Tags={"k": "v"}), JSON)
    arn = ledger_arn(ledger_name).replace(":", "%3A").replace("/", "%2F")
    resp = raw(server, "POST", f"/tags/{arn}", json.dumps({"Tags": {"": "x"}}), JSON)
    assert_json_error(resp, 400, "InvalidParameterException")
    resp = raw(server, "DELETE", f"/tags/{arn}?tagKeys=")
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "TagKeys"


def test_short_arn(server):
    resp = raw(server, "GET", "/tags/arn%3Aaws%3Aqldb")
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "ResourceArn"


def test_short_next_token(server):
    resp = raw(server, "GET", "/ledgers?next_token=ab")
    out = assert_json_error(resp, 400, "InvalidParameterException")
    assert out["ParameterName"] == "NextToken"
