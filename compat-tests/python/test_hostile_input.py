"""Hostile requests a probe found (issue 11): each gets a clear 4xx, the server stays up, and
nothing committed is lost. Through the pinned boto3/pyqldb and raw sockets."""

import socket
import threading

import pytest
from botocore.exceptions import ClientError

from qldb_session_helpers import RawSession, create_ledger, make_driver, run, session_client


def raw_http(server, request: bytes) -> bytes:
    """Sends `request` and returns what the server answered. The answer is read while the
    request is still being sent: a server that answers early (413) and closes may reset the
    connection when more of the body arrives, and a reset can discard an answer not yet
    read."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        chunks = []

        def read():
            while True:
                try:
                    b = s.recv(65536)
                except OSError:
                    break
                if not b:
                    break
                chunks.append(b)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            # Closed (or reset) by the server before the whole body was sent; its answer
            # is what the reader has.
            pass
        reader.join(timeout=15)
    return b"".join(chunks)


def chunked_post(server, body: bytes) -> bytes:
    head = (f"POST /ledgers HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    return raw_http(server, head + body)


@pytest.mark.parametrize("body", [
    b"ZZ\r\n{}\r\n0\r\n\r\n",           # chunk size that is not hex
    b"5\r\n{}\r\n0\r\n\r\n",            # size larger than the data before the CRLF
    b"2\r\n{}XX0\r\n\r\n",              # missing CRLF after the data
], ids=["bad-size", "short-chunk", "missing-crlf"])
def test_malformed_chunked_framing_is_a_400(server, body):
    resp = chunked_post(server, body)
    status_line = resp.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line, resp[:300]
    assert b"SerializationException" in resp, resp[:500]
    assert server.health()["status"] == "ok"


def test_oversized_chunked_body_is_still_413(server):
    # 9 MiB in 1 MiB chunks, beyond the 8 MiB default limit.
    chunk = b"x" * (1 << 20)
    body = b"".join(b"100000\r\n" + chunk + b"\r\n" for _ in range(9)) + b"0\r\n\r\n"
    resp = chunked_post(server, body)
    assert b" 413 " in resp.split(b"\r\n", 1)[0], resp[:300]
    assert b"RequestEntityTooLargeException" in resp
    assert server.health()["status"] == "ok"


@pytest.fixture(scope="module")
def ledger(server):
    return create_ledger(server)


def ion_text_error(server, ledger, text):
    s = RawSession(session_client(server), ledger)
    s.start()
    with pytest.raises(ClientError) as ei:
        s.execute("SELECT VALUE x FROM << ? >> AS x", holders=[{"IonText": text}], fold=False)
    s.abort()
    return ei.value.response


@pytest.mark.parametrize("text", ['{{"é"}}', "{{'''caf\u00e9'''}}", '{{"\u4e2d"}}'])
def test_ion_text_clobs_are_ascii(server, ledger, text):
    err = ion_text_error(server, ledger, text)
    assert err["Error"]["Code"] == "BadRequestException"
    assert "clob" in err["Error"]["Message"]


def test_ion_text_clob_escapes_above_0x7f_are_bytes(server, ledger):
    s = RawSession(session_client(server), ledger)
    s.start()
    r = s.execute("SELECT VALUE x FROM << ? >> AS x", holders=[{"IonText": '{{"caf\\xe9"}}'}],
                  fold=False)
    values = r["ExecuteStatement"]["FirstPage"]["Values"]
    assert len(values) == 1
    s.abort()


def test_symbol_table_imports_cannot_exhaust_memory(server, ledger):
    """The probe's 8 KB parameter: 400 shared-table imports of max_id 2^31-1 each (6 GB
    before the total was capped). It parses within the cap; a symbol id beyond the table is
    refused; the server stays up."""
    imports = ", ".join(['{name: "t", version: 1, max_id: 2147483647}'] * 400)
    text = f"$ion_symbol_table::{{imports: [{imports}], symbols: [\"x\"]}} {{a: 1}}"
    s = RawSession(session_client(server), ledger)
    s.start()
    r = s.execute("SELECT VALUE x.a FROM << ? >> AS x", holders=[{"IonText": text}], fold=False)
    assert len(r["ExecuteStatement"]["FirstPage"]["Values"]) == 1
    s.abort()
    far = f"$ion_symbol_table::{{imports: [{imports}]}} $3000000000"
    err = ion_text_error(server, ledger, far)
    assert err["Error"]["Code"] == "BadRequestException"
    assert server.health()["status"] == "ok"


def test_runaway_join_is_refused_and_the_server_stays_up(server):
    ledger = create_ledger(server)
    driver = make_driver(server, ledger)
    try:
        run(driver, "CREATE TABLE Base")
        run(driver, "INSERT INTO Base ?", [{"n": i} for i in range(30)])
        with pytest.raises(ClientError) as ei:
            run(driver, "SELECT VALUE 1 FROM Base a, Base b, Base c, Base d, Base e")
        assert ei.value.response["Error"]["Code"] == "BadRequestException"
        assert "limit" in ei.value.response["Error"]["Message"]
        assert server.health()["status"] == "ok"
        # Committed data is intact and the ledger keeps working.
        assert len(run(driver, "SELECT * FROM Base")) == 30
        assert len(run(driver, "INSERT INTO Base VALUE {'n': 30}")) == 1
    finally:
        driver.close()
