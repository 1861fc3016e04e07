"""SigV4 verification (spec §8.2, §8.5, §8.6): boto3 clients with bad settings, plus raw
requests for the malformed-header cases no SDK produces."""

import datetime
import hashlib
import re
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.compat import HTTPHeaders
from botocore.config import Config

from conftest import make_client
from qldb_test_utils import (
    assert_json_error,
    dedicated_server,
    expect_error,
    ledger_arn,
    raw,
    sign_headers,
)

MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation "
            "for details.")
AMZ_DATE = r"\d{8}T\d{6}Z"


def test_valid_signature_accepted(qldb):
    assert qldb.list_ledgers()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_wrong_secret(server):
    c = make_client(server.endpoint, aws_secret_access_key="not-the-secret")
    r = expect_error(c.list_ledgers, "InvalidSignatureException", 403)
    assert r["Error"]["Message"] == MISMATCH


def test_wrong_secret_on_a_write_changes_nothing(server, qldb, ledger_name):
    c = make_client(server.endpoint, aws_secret_access_key="not-the-secret")
    expect_error(c.create_ledger, "InvalidSignatureException", 403, Name=ledger_name, PermissionsMode="ALLOW_ALL")
    expect_error(qldb.describe_ledger, "ResourceNotFoundException", 404, Name=ledger_name)


def test_unknown_access_key(server):
    c = make_client(server.endpoint, aws_access_key_id="AKIDUNKNOWN")
    r = expect_error(c.list_ledgers, "UnrecognizedClientException", 403)
    assert r["Error"]["Message"] == "The security token included in the request is invalid."


def test_unsigned_request(server):
    c = make_client(server.endpoint, config=Config(signature_version=UNSIGNED,
                                                   retries={"max_attempts": 1, "mode": "standard"}))
    r = expect_error(c.list_ledgers, "MissingAuthenticationTokenException", 403)
    assert r["Error"]["Message"] == "Missing Authentication Token"


def test_unsigned_session_request_is_framed_as_aws_json(server):
    c = make_client(server.endpoint, service="qldb-session",
                    config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1, "mode": "standard"}))
    r = expect_error(c.send_command, "MissingAuthenticationTokenException", 403, SessionToken="x" * 10)
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.0"


@pytest.fixture
def skewed_clock(monkeypatch):
    """Makes botocore sign with a clock shifted by the given minutes."""
    real = botocore.auth.get_current_datetime

    def shift(minutes):
        monkeypatch.setattr(
            botocore.auth, "get_current_datetime",
            lambda *a, **k: real(*a, **k) + datetime.timedelta(minutes=minutes))
    return shift


def test_signature_expired(server, skewed_clock):
    skewed_clock(-20)
    c = make_client(server.endpoint)
    r = expect_error(c.list_ledgers, "InvalidSignatureException", 403)
    msg = r["Error"]["Message"]
    assert re.fullmatch(
        rf"Signature expired: {AMZ_DATE} is now earlier than {AMZ_DATE} \({AMZ_DATE} - 15 min\.\)", msg), msg


def test_signature_not_yet_current(server, skewed_clock):
    skewed_clock(+20)
    c = make_client(server.endpoint)
    r = expect_error(c.list_ledgers, "InvalidSignatureException", 403)
    msg = r["Error"]["Message"]
    assert re.fullmatch(
        rf"Signature not yet current: {AMZ_DATE} is still later than {AMZ_DATE} \({AMZ_DATE} \+ 15 min\.\)",
        msg), msg


@pytest.mark.parametrize("minutes", [-10, +10])
def test_small_skew_accepted(server, skewed_clock, minutes):
    skewed_clock(minutes)
    c = make_client(server.endpoint)
    assert c.list_ledgers()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_session_token_accepted(server, ledger_name):
    c = make_client(server.endpoint, aws_session_token="anything")
    c.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", Tags={"a b": "c"})
    assert c.describe_ledger(Name=ledger_name)["State"] == "ACTIVE"
    assert c.list_tags_for_resource(ResourceArn=ledger_arn(ledger_name))["Tags"] == {"a b": "c"}


def test_other_region_in_scope_accepted(server, ledger_name):
    c = make_client(server.endpoint, region_name="eu-west-1")
    r = c.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    # The scope region is only part of the signature; ARNs use the server's region.
    assert r["Arn"] == ledger_arn(ledger_name)
    c.untag_resource(ResourceArn=ledger_arn(ledger_name), TagKeys=["x/y", "k=v+"])
    assert c.describe_ledger(Name=ledger_name)["Name"] == ledger_name


def test_signed_query_and_encoded_arn_paths(server, qldb, ledger_name):
    """The three ARN-in-path operations and query strings need double encoding (§8.4.1)."""
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", Tags={"a b": "1", "x/y": "2", "k=v+": "3"})
    arn = ledger_arn(ledger_name)
    qldb.untag_resource(ResourceArn=arn, TagKeys=["a b", "k=v+"])
    assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"x/y": "2"}
    page = qldb.list_ledgers(MaxResults=1)
    if "NextToken" in page:
        qldb.list_ledgers(MaxResults=1, NextToken=page["NextToken"])  # token with + / =


def test_auth_off_accepts_unsigned_and_any_credentials():
    with dedicated_server(["--auth", "off"]) as s:
        unsigned = make_client(s.endpoint, config=Config(signature_version=UNSIGNED,
                                                         retries={"max_attempts": 1, "mode": "standard"}))
        unsigned.create_ledger(Name="open-ledger", PermissionsMode="ALLOW_ALL")
        assert unsigned.describe_ledger(Name="open-ledger")["State"] == "ACTIVE"
        stranger = make_client(s.endpoint, aws_access_key_id="whoever", aws_secret_access_key="whatever")
        assert [l["Name"] for l in stranger.list_ledgers()["Ledgers"]] == ["open-ledger"]
        # Garbage auth headers are ignored too.
        resp = raw(s, "GET", "/ledgers", sign=False, headers={"Authorization": "garbage"})
        assert resp.status == 200, resp


def test_custom_credentials():
    with dedicated_server(["--credentials", "AKID1:S1,AKID2:S2"]) as s:
        one = make_client(s.endpoint, aws_access_key_id="AKID1", aws_secret_access_key="S1")
        two = make_client(s.endpoint, aws_access_key_id="AKID2", aws_secret_access_key="S2")
        one.create_ledger(Name="by-one", PermissionsMode="ALLOW_ALL")
        assert two.describe_ledger(Name="by-one")["Name"] == "by-one"
        # The default test:test is no longer accepted.
        expect_error(make_client(s.endpoint).list_ledgers, "UnrecognizedClientException", 403)
        # A valid key with the other key's secret.
        crossed = make_client(s.endpoint, aws_access_key_id="AKID1", aws_secret_access_key="S2")
        r = expect_error(crossed.list_ledgers, "InvalidSignatureException", 403)
        assert r["Error"]["Message"] == MISMATCH


def test_health_needs_no_signature(server):
    resp = raw(server, "GET", "/health", sign=False)
    assert resp.status == 200
    assert resp.json()["status"] == "ok"


# ---------------------------------------------------------------- raw: malformed auth (§8.5)


def _auth_parts(server, method="GET", path="/ledgers", **kw):
    h = sign_headers(server, method, path, b"", **kw)
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
                     h["Authorization"])
    assert m, h["Authorization"]
    return h, m.group(1), m.group(2), m.group(3)


@pytest.mark.parametrize("drop", ["Credential", "SignedHeaders", "Signature"])
def test_authorization_missing_a_part(server, drop):
    h, cred, signed, sig = _auth_parts(server)
    parts = {"Credential": cred, "SignedHeaders": signed, "Signature": sig}
    del parts[drop]
    h["Authorization"] = "AWS4-HMAC-SHA256 " + ", ".join(f"{k}={v}" for k, v in parts.items())
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    body = assert_json_error(resp, 400, "IncompleteSignatureException")
    assert f"Authorization header requires '{drop}' parameter." in body["Message"]
    for present in parts:
        assert f"requires '{present}'" not in body["Message"]
    assert "Authorization=AWS4-HMAC-SHA256" in body["Message"]


def test_no_amz_date(server):
    h, *_ = _auth_parts(server)
    del h["X-Amz-Date"]
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    body = assert_json_error(resp, 400, "IncompleteSignatureException")
    assert body["Message"].startswith(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."), body


def test_scope_service_must_be_qldb(server):
    resp = raw(server, "GET", "/ledgers", service="dynamodb")
    body = assert_json_error(resp, 403, "InvalidSignatureException")
    assert body["Message"].startswith("Credential should be scoped to correct service: 'qldb'."), body


def test_scope_date_must_match_amz_date(server):
    h, cred, signed, sig = _auth_parts(server)
    akid, date, rest = cred.split("/", 2)
    other = "20000101" if date != "20000101" else "20000102"
    h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={akid}/{other}/{rest}, "
                          f"SignedHeaders={signed}, Signature={sig}")
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    body = assert_json_error(resp, 403, "InvalidSignatureException")
    assert body["Message"].startswith(
        f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'{other}' != '{date}'"), body


def test_tampered_body_is_refused(server, ledger_name):
    body = f'{{"Name":"{ledger_name}","PermissionsMode":"ALLOW_ALL"}}'.encode()
    h = sign_headers(server, "POST", "/ledgers", body, {"Content-Type": "application/json"})
    evil = body.replace(b"ALLOW_ALL", b"STANDARD")
    resp = raw(server, "POST", "/ledgers", body=evil, headers=h, sign=False)
    assert_json_error(resp, 403, "InvalidSignatureException")
    # The untampered request goes through.
    resp = raw(server, "POST", "/ledgers", body=body, headers=h, sign=False)
    assert resp.status == 200, resp


def test_tampered_path_is_refused(server):
    h = sign_headers(server, "GET", "/ledgers/aaaa")
    resp = raw(server, "GET", "/ledgers/bbbb", headers=h, sign=False)
    assert_json_error(resp, 403, "InvalidSignatureException")


def test_unsupported_algorithm(server):
    h, cred, signed, sig = _auth_parts(server)
    h["Authorization"] = f"AWS4-HMAC-SHA512 Credential={cred}, SignedHeaders={signed}, Signature={sig}"
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    assert_json_error(resp, 400, "IncompleteSignatureException")


def test_presigned_query_auth_is_refused(server):
    resp = raw(server, "GET", "/ledgers?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00", sign=False)
    assert resp.status in (400, 403), resp
    assert_json_error(resp, resp.status)


# ---------------------------------------------------------------- raw: what other SDKs sign (§8.1, §8.4)


class SignEveryHeader(SigV4Auth):
    """Signs every header, including the ones botocore skips (user-agent, x-amzn-trace-id),
    as some SDKs do; the server must then include them too (§8.4 pitfall 3)."""

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in request.headers.items():
            hm[name.lower()] = value
        if "host" not in hm:
            hm["host"] = f"127.0.0.1:{urlsplit(request.url).port}"
        return hm


class UnsignedPayload(SigV4Auth):
    def payload(self, request):
        return "UNSIGNED-PAYLOAD"


class NoHost(SigV4Auth):
    def headers_to_sign(self, request):
        hm = super().headers_to_sign(request)
        del hm["host"]
        return hm


def test_client_that_signs_user_agent_and_trace_id(server, ledger_name):
    body = f'{{"Name":"{ledger_name}","PermissionsMode":"ALLOW_ALL"}}'.encode()
    hdrs = {"Content-Type": "application/json", "User-Agent": "custom-sdk/1.0",
            "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793", "Amz-Sdk-Request": "attempt=1; max=3"}
    resp = raw(server, "POST", "/ledgers", body, hdrs, signer=SignEveryHeader)
    assert resp.status == 200, resp
    h = sign_headers(server, "POST", "/ledgers", body, hdrs, signer=SignEveryHeader)
    assert "user-agent" in h["Authorization"] and "x-amzn-trace-id" in h["Authorization"]


def test_x_amz_content_sha256_header_is_checked_against_body(server, ledger_name):
    """JS v3 sends and signs x-amz-content-sha256 (§8.1)."""
    body = f'{{"Name":"{ledger_name}","PermissionsMode":"ALLOW_ALL"}}'.encode()
    hdrs = {"Content-Type": "application/json", "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    h = sign_headers(server, "POST", "/ledgers", body, hdrs)
    evil = body.replace(b"ALLOW_ALL", b"STANDARD")
    resp = raw(server, "POST", "/ledgers", evil, h, sign=False)
    assert_json_error(resp, 403, "InvalidSignatureException")
    resp = raw(server, "POST", "/ledgers", body, h, sign=False)
    assert resp.status == 200, resp


def test_unsigned_payload_literal_accepted(server, ledger_name):
    body = f'{{"Name":"{ledger_name}","PermissionsMode":"ALLOW_ALL"}}'.encode()
    hdrs = {"Content-Type": "application/json", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    resp = raw(server, "POST", "/ledgers", body, hdrs, signer=UnsignedPayload)
    assert resp.status == 200, resp


def test_signed_header_whitespace_is_canonicalised(server):
    resp = raw(server, "GET", "/ledgers", headers={"X-Custom-Header": "a    b   c"})
    assert resp.status == 200, resp


def test_host_must_be_signed(server):
    resp = raw(server, "GET", "/ledgers", signer=NoHost)
    assert_json_error(resp, 400, "IncompleteSignatureException")


def test_unparsable_amz_date(server):
    h, *_ = _auth_parts(server)
    h["X-Amz-Date"] = "yesterday"
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    assert_json_error(resp, 400, "IncompleteSignatureException")


def test_scope_terminator(server):
    h, cred, signed, sig = _auth_parts(server)
    cred = cred.replace("/aws4_request", "/aws5_request")
    h["Authorization"] = f"AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={sig}"
    resp = raw(server, "GET", "/ledgers", sign=False, headers=h)
    assert_json_error(resp, 403, "InvalidSignatureException")


def test_signed_query_with_reserved_characters(qldb):
    # If the query were canonicalised wrongly this would be a 403, not the token's IPE.
    r = expect_error(qldb.list_ledgers, "InvalidParameterException", 400, NextToken="ab+/cd==")
    assert r["ParameterName"] == "NextToken"
