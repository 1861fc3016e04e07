"""Shared helpers of the Python compat tests (imported by the test modules, not a test file).

- `expect_error`: call a boto3 operation and assert the AWS error code and HTTP status.
- `raw`: send one hand-made HTTP request (optionally SigV4-signed by botocore's own signer)
  for input that no official client can produce.
- `dedicated_server`: a private qldb-local for tests that restart, exhaust quotas or need
  other flags; always closed afterwards.
"""

import contextlib
import datetime
import http.client
import json
import os
import pathlib
import sys
import uuid

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from qldb_harness import (ACCESS_KEY, ACCOUNT, POSTGRES_URL_OF, REGION, SECRET_KEY, Server,  # noqa: E402,F401
                          psql, storage_is_postgres)

LEDGER_NAME_PATTERN = "(?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$"


def new_name(prefix: str = "t") -> str:
    """A fresh, valid ledger name (at most 32 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def ledger_arn(name: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:qldb:{region}:{account}:ledger/{name}"


def expect_error(fn, code: str, status: int, **kwargs) -> dict:
    """Calls `fn(**kwargs)`, asserts a ClientError with `code` and `status`; returns e.response."""
    with pytest.raises(ClientError) as ei:
        fn(**kwargs)
    r = ei.value.response
    assert r["Error"]["Code"] == code, r
    assert r["ResponseMetadata"]["HTTPStatusCode"] == status, r
    assert r["ResponseMetadata"].get("RequestId"), "error without x-amzn-RequestId"
    assert r["Error"].get("Message"), "error without a message"
    return r


def strip_meta(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def all_ledgers(client) -> list:
    """Every ledger summary, following NextToken."""
    out, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = client.list_ledgers(MaxResults=100, **kw)
        out.extend(page["Ledgers"])
        token = page.get("NextToken")
        if not token:
            return out


def create(client, name, **kwargs):
    kwargs.setdefault("PermissionsMode", "ALLOW_ALL")
    return client.create_ledger(Name=name, **kwargs)


def destroy(client, name):
    """Deletes a ledger whatever its protection (test cleanup)."""
    client.update_ledger(Name=name, DeletionProtection=False)
    client.delete_ledger(Name=name)


class RawResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"RawResponse({self.status}, {self.headers}, {self.body[:500]!r})"


def sign_headers(server, method, path, body=b"", headers=None, access_key=ACCESS_KEY,
                 secret_key=SECRET_KEY, token=None, region=REGION, service="qldb", signer=SigV4Auth):
    """Headers of a request signed by botocore's SigV4Auth (or a subclass), as an SDK signs."""
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=dict(headers or {}))
    signer(Credentials(access_key, secret_key, token), service, region).add_auth(req)
    return dict(req.headers.items())


def raw(server, method, path, body=None, headers=None, sign=True, chunked=False, **sign_kwargs):
    """Sends one request with http.client, the path verbatim. Returns a RawResponse."""
    headers = dict(headers or {})
    data = body if body is not None else b""
    if isinstance(data, str):
        data = data.encode()
    if sign:
        headers = sign_headers(server, method, path, data, headers, **sign_kwargs)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        try:
            if chunked:
                conn.request(method, path, body=iter([data[i:i + 500] for i in range(0, len(data), 500)]),
                             headers=headers, encode_chunked=True)
            else:
                send = data if (body is not None or method in ("POST", "PUT", "PATCH")) else None
                conn.request(method, path, body=send, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (e.g. 413) and close before reading the whole body;
            # its response is still in the socket buffer.
            pass
        resp = conn.getresponse()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def assert_json_error(resp: RawResponse, status: int, code: str = None) -> dict:
    """Every error: the status, x-amzn-RequestId, x-amzn-ErrorType, a JSON body with Message."""
    assert resp.status == status, resp
    assert resp.headers.get("x-amzn-requestid"), resp
    assert resp.headers.get("content-type", "").startswith("application/"), resp
    body = resp.json()
    assert isinstance(body, dict), resp
    assert isinstance(body.get("Message"), str) and body["Message"], resp
    if code is not None:
        assert resp.headers.get("x-amzn-errortype", "").split(":")[0] == code, resp
    return body


def ledger_files(data_dir) -> set:
    """Names of the files in <data_dir>/ledgers."""
    d = pathlib.Path(data_dir) / "ledgers"
    return set(os.listdir(d)) if d.exists() else set()


def ledger_db_stems(data_dir) -> set:
    """Ledger names that have data: a database file (`<name>.sqlite`, ignoring -wal/-shm), or
    on PostgreSQL (QLDB_TEST_STORAGE=postgres) a schema named in `qldb_catalog.ledger_data`."""
    url = POSTGRES_URL_OF.get(str(data_dir))
    if url is not None:
        return set(psql(url, "SELECT name FROM qldb_catalog.ledger_data").split())
    return {f[: -len(".sqlite")] for f in ledger_files(data_dir) if f.endswith(".sqlite")}


@contextlib.contextmanager
def dedicated_server(extra_args=(), **kwargs):
    s = Server(extra_args=list(extra_args), **kwargs).start()
    try:
        yield s
    finally:
        s.close()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)
