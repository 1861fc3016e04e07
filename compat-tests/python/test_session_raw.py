"""The session API command by command with boto3's raw `qldb-session` client (botocore 1.40.60):
response shapes (session-api.md §1.3), the error catalogue (§2), the commit digest computed
independently of any driver (§3) and the server-side state machine (§4.5), including commands
sent out of order, bad tokens and ids, malformed parameters, OCC conflicts and timers."""

import hashlib
import time

import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from qldb_session_helpers import (
    ID_RE,
    IVM,
    LIST_TABLES,
    TOKEN_RE,
    TX_EXPIRED_RE,
    RawSession,
    commit_digest,
    create_ledger,
    decode_holder,
    fill,
    fold_statement,
    ion,
    ion_hash,
    make_driver,
    random_token,
    run,
    session_client,
)
from qldb_test_utils import dedicated_server, expect_error, strip_meta

FAKE_TXID = "AAAAAAAAAAAAAAAAAAAAAA"  # 22 chars, valid shape, never issued


@pytest.fixture
def qs(server):
    return session_client(server)


@pytest.fixture
def ledger(server):
    """A fresh ledger with an empty table T."""
    name = create_ledger(server)
    with make_driver(server, name) as d:
        run(d, "CREATE TABLE T")
    return name


@pytest.fixture(scope="module")
def paged_ledger(server):
    """A ledger whose table Paged holds 205 documents: one full page of 200 plus 5."""
    name = create_ledger(server)
    with make_driver(server, name) as d:
        run(d, "CREATE TABLE Paged")
        fill(d, "Paged", 205)
    return name


def assert_ok(resp, member):
    """A successful SendCommand: HTTP 200, the JSON content type, x-amzn-RequestId, exactly the one
    result member, and TimingInformation with an integer ProcessingTimeMilliseconds."""
    meta = resp["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200, resp
    headers = meta["HTTPHeaders"]
    assert headers.get("x-amzn-requestid"), headers
    assert meta.get("RequestId") == headers["x-amzn-requestid"]
    assert headers.get("content-type", "").startswith("application/x-amz-json-1.0"), headers
    assert set(strip_meta(resp)) == {member}, resp
    out = resp[member]
    timing = out["TimingInformation"]["ProcessingTimeMilliseconds"]
    assert isinstance(timing, int) and timing >= 0, out
    return out


def assert_ios(out):
    ios = out["ConsumedIOs"]
    assert isinstance(ios["ReadIOs"], int) and ios["ReadIOs"] >= 0, ios
    assert isinstance(ios["WriteIOs"], int) and ios["WriteIOs"] >= 0, ios


def visible(server, ledger, statement="SELECT VALUE t.a FROM T AS t"):
    """What a brand-new session sees (committed state only)."""
    s = RawSession(session_client(server), ledger)
    try:
        return sorted(int(v) for v in s.transact(statement))
    finally:
        s.end()


def assert_not_tx_expired(resp):
    assert not TX_EXPIRED_RE.search(resp["Error"]["Message"]), (
        "only an expired *transaction* may say 'Transaction ... has expired'", resp["Error"])


# ---------------------------------------------------------------- response shapes

def test_start_session_response_shape(qs, ledger):
    r1 = qs.send_command(StartSession={"LedgerName": ledger})
    out = assert_ok(r1, "StartSession")
    assert set(out) <= {"SessionToken", "TimingInformation"}, out
    assert TOKEN_RE.match(out["SessionToken"]), out
    r2 = qs.send_command(StartSession={"LedgerName": ledger})
    assert r2["StartSession"]["SessionToken"] != out["SessionToken"]
    assert r2["ResponseMetadata"]["RequestId"] != r1["ResponseMetadata"]["RequestId"]


def test_transaction_response_shapes(server, qs, ledger):
    s = RawSession(qs, ledger)
    out = assert_ok(s.start(), "StartTransaction")
    assert ID_RE.match(out["TransactionId"]), out

    # Empty result: FirstPage.Values is present and empty, no NextPageToken.
    es = assert_ok(s.execute("SELECT * FROM T"), "ExecuteStatement")
    assert es["FirstPage"] == {"Values": []}, es
    assert_ios(es)

    # One-row results: IonBinary only, IVM-prefixed, each holder decodable on its own.
    es = assert_ok(s.execute("INSERT INTO T ?", ion("{a: 1, b: \"x\"}")), "ExecuteStatement")
    assert "NextPageToken" not in es["FirstPage"]
    assert_ios(es)
    rows = [decode_holder(v) for v in es["FirstPage"]["Values"]]
    assert len(rows) == 1 and list(rows[0].keys()) == ["documentId"] and ID_RE.match(rows[0]["documentId"])

    es = assert_ok(s.execute("CREATE TABLE U"), "ExecuteStatement")
    rows = [decode_holder(v) for v in es["FirstPage"]["Values"]]
    assert len(rows) == 1 and list(rows[0].keys()) == ["tableId"] and ID_RE.match(rows[0]["tableId"])

    es = assert_ok(s.execute("INSERT INTO T << {'a': 2}, {'a': 3} >>"), "ExecuteStatement")
    ids = [str(decode_holder(v)["documentId"]) for v in es["FirstPage"]["Values"]]
    assert len(ids) == 2 and len(set(ids)) == 2

    # Structs with symbols in several holders of one page: each holder carries its own symbol table.
    es = assert_ok(s.execute("SELECT t.a, t.b FROM T AS t"), "ExecuteStatement")
    got = sorted((int(r["a"]), r.get("b")) for r in map(decode_holder, es["FirstPage"]["Values"]))
    assert got == [(1, "x"), (2, None), (3, None)]

    # Commit echoes the transaction id and our digest byte for byte.
    out = assert_ok(s.commit(), "CommitTransaction")
    assert out["TransactionId"] == s.txid
    assert out["CommitDigest"] == s.digest and len(out["CommitDigest"]) == 32
    assert_ios(out)

    assert_ok(s.abort(), "AbortTransaction")  # idle: succeeds
    assert_ok(s.end(), "EndSession")
    assert visible(server, ledger) == [1, 2, 3]


def test_multi_page_shapes(qs, paged_ledger):
    s = RawSession(qs, paged_ledger)
    s.start()
    first = assert_ok(s.execute("SELECT VALUE p.n FROM Paged AS p"), "ExecuteStatement")["FirstPage"]
    assert len(first["Values"]) == 200
    assert TOKEN_RE.match(first["NextPageToken"]), first.get("NextPageToken")
    page = assert_ok(s.fetch(first["NextPageToken"]), "FetchPage")
    assert_ios(page)
    assert set(page) <= {"Page", "TimingInformation", "ConsumedIOs"}
    assert len(page["Page"]["Values"]) == 5
    assert "NextPageToken" not in page["Page"], "the last page must not carry a NextPageToken"
    ns = [int(decode_holder(v)) for v in first["Values"] + page["Page"]["Values"]]
    assert sorted(ns) == list(range(205))
    assert_ok(s.commit(), "CommitTransaction")


def test_read_your_own_writes_inside_a_transaction(server, qs, ledger):
    s = RawSession(qs, ledger)
    s.start()
    s.values("INSERT INTO T VALUE {'a': 7}")
    assert [int(v) for v in s.values("SELECT VALUE t.a FROM T AS t")] == [7]
    assert visible(server, ledger) == []  # not committed yet: invisible to others
    s.commit()
    assert visible(server, ledger) == [7]


# ---------------------------------------------------------------- commands out of order

def test_commit_without_start_transaction(qs, ledger):
    s = RawSession(qs, ledger)
    r = expect_error(s.commit, "BadRequestException", 400, digest=b"\x01" * 32, txid=FAKE_TXID)
    assert "No open transaction" in r["Error"]["Message"], r["Error"]


@pytest.mark.parametrize("command", ["ExecuteStatement", "FetchPage"])
def test_statement_and_fetch_without_transaction(qs, ledger, command):
    s = RawSession(qs, ledger)
    body = {"ExecuteStatement": {"TransactionId": FAKE_TXID, "Statement": "SELECT * FROM T", "Parameters": []},
            "FetchPage": {"TransactionId": FAKE_TXID, "NextPageToken": "cGFnZS0x"}}[command]
    expect_error(s.send, "BadRequestException", 400, **{command: body})
    # The session itself is fine.
    assert s.transact("SELECT * FROM T") == []


def test_commands_after_commit_have_no_open_transaction(qs, ledger):
    s = RawSession(qs, ledger)
    s.start()
    s.values("SELECT * FROM T")
    s.commit()
    r = expect_error(lambda: s.execute("SELECT * FROM T", fold=False), "BadRequestException", 400)
    assert "No open transaction" in r["Error"]["Message"], r["Error"]
    r = expect_error(s.commit, "BadRequestException", 400)
    assert "No open transaction" in r["Error"]["Message"], r["Error"]


def test_start_transaction_twice(server, qs, ledger):
    s = RawSession(qs, ledger)
    s.start()
    first = s.txid
    s.values("INSERT INTO T VALUE {'a': 1}")
    r = expect_error(s.send, "BadRequestException", 400, StartTransaction={})
    assert "Transaction already open" in r["Error"]["Message"], r["Error"]
    # The first transaction stays open and commits with its own digest.
    s.values("INSERT INTO T VALUE {'a': 2}")
    assert s.commit()["CommitTransaction"]["TransactionId"] == first
    assert visible(server, ledger) == [1, 2]


def test_execute_statement_with_a_wrong_transaction_id(server, qs, ledger):
    s = RawSession(qs, ledger)
    other = RawSession(qs, ledger)
    other.start()
    s.start()
    s.values("INSERT INTO T VALUE {'a': 1}")
    # An id that was never issued, and the id of another session's open transaction.
    for wrong in (FAKE_TXID, other.txid):
        expect_error(lambda: s.execute("INSERT INTO T VALUE {'a': 99}", fold=False, txid=wrong),
                     "BadRequestException", 400)
    # Rejected requests are not part of the transaction: not executed, not folded into the digest.
    s.commit()
    assert visible(server, ledger) == [1]
    # ... and the other session's transaction was not touched either.
    assert other.values("SELECT VALUE t.a FROM T AS t") == [1]
    other.commit()


def test_fetch_page_with_bad_tokens(qs, paged_ledger):
    s = RawSession(qs, paged_ledger)
    s.start()
    token = s.execute("SELECT * FROM Paged")["ExecuteStatement"]["FirstPage"]["NextPageToken"]
    for garbage in ("Zm9vYmFy", "AAAA", random_token(24), random_token()):
        expect_error(s.fetch, "BadRequestException", 400, token=garbage)
    expect_error(s.fetch, "BadRequestException", 400, token=token, txid=FAKE_TXID)
    # The transaction survived the bad FetchPages: the real token still works and it commits.
    page = s.fetch(token)["FetchPage"]["Page"]
    assert len(page["Values"]) == 5 and "NextPageToken" not in page
    old_txid = s.txid
    s.commit()

    # A token of a finished transaction is dead, whichever transaction id comes with it.
    s.start()
    expect_error(s.fetch, "BadRequestException", 400, token=token)
    expect_error(s.fetch, "BadRequestException", 400, token=token, txid=old_txid)

    # A token of another session's open transaction is foreign here, but still valid there.
    other = RawSession(qs, paged_ledger)
    other.start()
    foreign = other.execute("SELECT * FROM Paged")["ExecuteStatement"]["FirstPage"]["NextPageToken"]
    expect_error(s.fetch, "BadRequestException", 400, token=foreign)
    expect_error(s.fetch, "BadRequestException", 400, token=foreign, txid=other.txid)
    assert len(other.fetch(foreign)["FetchPage"]["Page"]["Values"]) == 5
    other.commit()
    s.commit()


COMMAND_BODIES = {
    "StartTransaction": {},
    "ExecuteStatement": {"TransactionId": FAKE_TXID, "Statement": "SELECT * FROM T", "Parameters": []},
    "FetchPage": {"TransactionId": FAKE_TXID, "NextPageToken": "cGFnZS0x"},
    "CommitTransaction": {"TransactionId": FAKE_TXID, "CommitDigest": b"\x00" * 32},
    "AbortTransaction": {},
    "EndSession": {},
}


@pytest.mark.parametrize("command", sorted(COMMAND_BODIES))
def test_unknown_session_token_is_invalid_session(qs, ledger, command):
    r = expect_error(qs.send_command, "InvalidSessionException", 400,
                     SessionToken=random_token(), **{command: COMMAND_BODIES[command]})
    assert_not_tx_expired(r)


@pytest.mark.parametrize("command", sorted(COMMAND_BODIES))
def test_commands_after_end_session_are_invalid_session(server, qs, ledger, command):
    s = RawSession(qs, ledger)
    s.start()
    s.values("INSERT INTO T VALUE {'a': 1}")
    assert "EndSession" in s.end()  # ends the session and rolls back its open transaction
    body = dict(COMMAND_BODIES[command])
    if "TransactionId" in body:
        body["TransactionId"] = s.txid
    r = expect_error(s.send, "InvalidSessionException", 400, **{command: body})
    assert_not_tx_expired(r)
    assert visible(server, ledger) == []


@pytest.mark.parametrize("how", ["flipped-byte", "no-statements", "statement-twice", "unsigned-order"])
def test_commit_with_a_wrong_digest(server, qs, ledger, how):
    s = RawSession(qs, ledger)
    s.start()
    statements = [("INSERT INTO T VALUE {'a': ?}", [1]), ("SELECT * FROM T WHERE a = ?", [1])]
    for text, params in statements:
        s.values(text, *params)
    assert commit_digest(s.txid, statements) == s.digest
    if how == "flipped-byte":
        wrong = s.digest[:-1] + bytes([s.digest[-1] ^ 1])
    elif how == "no-statements":
        wrong = ion_hash(s.txid)
    elif how == "statement-twice":
        wrong = fold_statement(s.digest, "SELECT * FROM T WHERE a = ?", [1])
    else:  # the digest of a client that compares the bytes as unsigned
        def udot(a, b):
            return hashlib.sha256(a + b if a[::-1] < b[::-1] else b + a).digest()

        def unsigned_digest():
            d = ion_hash(s.txid)
            for text, params in statements:
                h = ion_hash(text)
                for p in params:
                    h = udot(h, ion_hash(p))
                d = udot(d, h)
            return d

        # Signed and unsigned orders agree on about half of the dots (the transaction id is random):
        # add statements until the two digests differ.
        k = 2
        while unsigned_digest() == s.digest:
            assert k < 40
            statements.append(("SELECT * FROM T WHERE a = ?", [k]))
            s.values("SELECT * FROM T WHERE a = ?", k)
            k += 1
        wrong = unsigned_digest()
    assert wrong != s.digest
    r = expect_error(s.commit, "BadRequestException", 400, digest=wrong)
    assert "Digests don't match" in r["Error"]["Message"], r["Error"]
    assert visible(server, ledger) == []


def test_statement_errors_keep_the_transaction_usable(server, qs, ledger):
    s = RawSession(qs, ledger)
    s.start()
    s.values("INSERT INTO T VALUE {'a': 1}")
    for bad in ("SELECT * FROM NoSuchTable",
                "INSERT INTO NoSuchTable VALUE {'a': 5}",
                "SELEC * FRM T",
                "CREATE TABLE T"):  # an ACTIVE table of that name exists
        # Folded into the digest before sending, exactly like the drivers and the shell do.
        expect_error(lambda: s.execute(bad), "BadRequestException", 400)
    s.values("INSERT INTO T VALUE {'a': ?}", 2)
    out = s.commit()["CommitTransaction"]
    assert out["CommitDigest"] == s.digest
    assert visible(server, ledger) == [1, 2]


def test_abort_transaction(server, qs, ledger):
    s = RawSession(qs, ledger)
    assert "AbortTransaction" in s.abort()  # idle: a no-op that succeeds
    assert "AbortTransaction" in s.abort()
    s.start()
    s.values("INSERT INTO T VALUE {'a': 1}")
    assert "AbortTransaction" in s.abort()  # rolls back
    assert visible(server, ledger) == []
    r = expect_error(lambda: s.execute("SELECT * FROM T", fold=False), "BadRequestException", 400)
    assert "No open transaction" in r["Error"]["Message"]
    # The session is reusable after an abort.
    s.start()
    s.values("INSERT INTO T VALUE {'a': 2}")
    s.commit()
    assert visible(server, ledger) == [2]


def test_start_session_on_unknown_or_deleted_ledger(server, qs):
    expect_error(qs.send_command, "BadRequestException", 400, StartSession={"LedgerName": "no-such-ledger-xyz"})
    name = create_ledger(server)
    make_client(server.endpoint).delete_ledger(Name=name)
    expect_error(qs.send_command, "BadRequestException", 400, StartSession={"LedgerName": name})


@pytest.mark.parametrize("holder", [
    {"IonBinary": b"not ion at all"},
    {"IonBinary": b"\xde\xad\xbe\xef"},
    {"IonBinary": IVM + b"\x8aab"},  # string of length 10 truncated after 2 bytes
    {"IonBinary": IVM + b"\xd6\x8c\x21"},  # struct body cut short
    {"IonText": "{a: "},
    {"IonText": "[1, 2"},
], ids=["text-bytes", "junk", "truncated-string", "truncated-struct", "text-unterminated-struct",
        "text-unterminated-list"])
def test_malformed_parameters_are_bad_request(qs, ledger, holder):
    s = RawSession(qs, ledger)
    s.start()
    expect_error(lambda: s.execute("SELECT * FROM T WHERE a = ?", holders=[holder], fold=False),
                 "BadRequestException", 400)
    s.abort()


def test_parameters_are_hashed_by_value_not_by_bytes(server, qs, ledger):
    """IonText parameters, a hand-made local symbol table, a padded int and a 4-byte float all
    hash like their data-model value (what pyqldb computes from the value)."""
    lst_struct = bytes.fromhex("e00100ea" "ec8183d987b7827a7a81628161" "d68c21018b2102")  # {a:1,b:2}, symbols zz,b,a
    cases = [  # (the value the digest is computed from, the ValueHolder actually sent)
        (ion("{a: 130.750, t: 2020-01-01T, s: sym}"), {"IonText": "{a: 130.750, t: 2020-01-01T, s: sym}"}),
        (ion("{a: 1, b: 2}"), {"IonText": "$ion_symbol_table::{symbols:[\"zz\"]} {b: 2, a: 1}"}),
        (ion("{a: 1, b: 2}"), {"IonBinary": lst_struct}),
    ]
    s = RawSession(qs, ledger)
    s.start()
    for value, holder in cases:
        r = s.execute("INSERT INTO T VALUE ?", value, holders=[holder])
        assert len(r["ExecuteStatement"]["FirstPage"]["Values"]) == 1, holder
    assert len(s.values("INSERT INTO T VALUE ?", ion("{a: 1}"))) == 1  # ordinary IonBinary, for contrast
    padded_one = {"IonBinary": IVM + b"\x22\x00\x01"}
    float32 = {"IonBinary": IVM + b"\x44\x3f\xc0\x00\x00"}
    r = s.execute("INSERT INTO T VALUE {'a': ?, 'f': ?}", 1, ion("1.5e0"), holders=[padded_one, float32])
    assert len(r["ExecuteStatement"]["FirstPage"]["Values"]) == 1
    # ExecuteStatement with the Parameters member absent altogether (Rust driver, shell).
    s.digest = fold_statement(s.digest, "SELECT * FROM T", [])
    s.send(ExecuteStatement={"TransactionId": s.txid, "Statement": "SELECT * FROM T"})
    assert s.commit()["CommitTransaction"]["CommitDigest"] == s.digest

    t = RawSession(qs, ledger)
    docs = t.transact("SELECT * FROM T")
    expected = [ion("{a: 130.750, t: 2020-01-01T, s: sym}"), ion("{a: 1, b: 2}"), ion("{a: 1, b: 2}"),
                ion("{a: 1}"), ion("{a: 1, f: 1.5e0}")]
    assert sorted(ion_hash(d) for d in docs) == sorted(ion_hash(e) for e in expected)


@pytest.mark.parametrize("members", [
    {},
    {"StartTransaction": {}, "AbortTransaction": {}},
    {"StartTransaction": {}, "ExecuteStatement": {"TransactionId": FAKE_TXID, "Statement": "SELECT * FROM T"}},
], ids=["none", "two", "two-with-statement"])
def test_zero_or_several_command_members_are_bad_request(qs, ledger, members):
    s = RawSession(qs, ledger)
    expect_error(qs.send_command, "BadRequestException", 400, SessionToken=s.token, **members)
    assert s.transact("SELECT * FROM T") == []


# ---------------------------------------------------------------- OCC

def test_occ_conflict_on_a_document_read_by_both(server, qs, ledger):
    with make_driver(server, ledger) as d:
        run(d, "CREATE INDEX ON T (k)")
        run(d, "INSERT INTO T VALUE {'k': 'x', 'a': 0}")
    a, b = RawSession(qs, ledger), RawSession(qs, ledger)
    a.start()
    assert [int(v) for v in a.values("SELECT VALUE t.a FROM T AS t WHERE t.k = 'x'")] == [0]
    assert len(a.values("UPDATE T AS t SET t.a = 1 WHERE t.k = 'x'")) == 1
    b.start()
    assert [int(v) for v in b.values("SELECT VALUE t.a FROM T AS t WHERE t.k = 'x'")] == [0]  # no dirty read
    assert len(b.values("UPDATE T AS t SET t.a = 2 WHERE t.k = 'x'")) == 1
    b.commit()
    r = expect_error(a.commit, "OccConflictException", 400)
    assert_not_tx_expired(r)
    # The server closed A's transaction; the session stays usable (drivers retry without an abort).
    a.start()
    assert [int(v) for v in a.values("SELECT VALUE t.a FROM T AS t WHERE t.k = 'x'")] == [2]
    a.commit()


def test_occ_conflict_on_insert_if_absent(server, qs, ledger):
    with make_driver(server, ledger) as d:
        run(d, "CREATE INDEX ON T (k)")
    a, b = RawSession(qs, ledger), RawSession(qs, ledger)
    for s in (a, b):
        s.start()
        assert s.values("SELECT * FROM T WHERE k = ?", "new") == []
    a.values("INSERT INTO T VALUE {'k': 'new', 'a': 1}")
    b.values("INSERT INTO T VALUE {'k': 'new', 'a': 2}")
    a.commit()
    expect_error(b.commit, "OccConflictException", 400)
    assert visible(server, ledger) == [1]


# ---------------------------------------------------------------- timers and session limits

@pytest.fixture(scope="module")
def short_tx_server():
    with dedicated_server(["--transaction-timeout-ms", "1000"]) as s:
        yield s


@pytest.mark.parametrize("command", ["ExecuteStatement", "CommitTransaction"])
def test_expired_transaction_raw(short_tx_server, command):
    server = short_tx_server
    ledger = create_ledger(server)
    qs = session_client(server)
    s = RawSession(qs, ledger)
    s.start()
    s.values("CREATE TABLE T")
    time.sleep(1.5)
    if command == "ExecuteStatement":
        r = expect_error(lambda: s.execute("SELECT * FROM T"), "InvalidSessionException", 400)
    else:
        r = expect_error(s.commit, "InvalidSessionException", 400)
    msg = r["Error"]["Message"]
    assert TX_EXPIRED_RE.search(msg) and s.txid in msg, msg
    assert msg.startswith("Transaction"), msg  # Java matches the whole message against "Transaction.*has expired.*"
    # The session was discarded with the transaction; the follow-up abort and any new transaction
    # get an InvalidSessionException that does not claim an expired transaction.
    for fn in (s.abort, s.start):
        r = expect_error(fn, "InvalidSessionException", 400)
        assert_not_tx_expired(r)
    # Nothing of the expired transaction was applied; a new session works.
    fresh = RawSession(qs, ledger)
    assert fresh.transact(LIST_TABLES) == []


def test_start_transaction_after_an_abandoned_transaction_expired(short_tx_server):
    ledger = create_ledger(short_tx_server)
    qs = session_client(short_tx_server)
    s = RawSession(qs, ledger)
    s.start()
    time.sleep(1.5)
    # Not "Transaction ... has expired": the drivers would then refuse to retry a brand-new transaction.
    r = expect_error(s.send, "InvalidSessionException", 400, StartTransaction={})
    assert_not_tx_expired(r)


def test_transaction_within_the_timeout_is_fine(short_tx_server):
    ledger = create_ledger(short_tx_server)
    s = RawSession(session_client(short_tx_server), ledger)
    s.start()
    time.sleep(0.3)
    s.values("CREATE TABLE T")
    time.sleep(0.3)
    s.commit()
    s.start()  # a new transaction gets a fresh clock
    time.sleep(0.6)
    assert [str(v) for v in s.values(LIST_TABLES)] == ["T"]
    s.commit()


def test_expired_session_raw():
    with dedicated_server(["--session-lifetime-ms", "1000"]) as server:
        ledger = create_ledger(server)
        qs = session_client(server)
        s = RawSession(qs, ledger)
        assert s.transact(LIST_TABLES) == []
        time.sleep(1.5)
        for command in ("StartTransaction", "EndSession"):
            r = expect_error(s.send, "InvalidSessionException", 400, **{command: {}})
            assert_not_tx_expired(r)
        assert RawSession(qs, ledger).transact(LIST_TABLES) == []


def test_max_sessions_per_ledger():
    with dedicated_server(["--max-sessions-per-ledger", "2"]) as server:
        ledger, other_ledger = create_ledger(server), create_ledger(server)
        qs = session_client(server)
        a, b = RawSession(qs, ledger), RawSession(qs, ledger)
        a.start()
        b.start()
        # A third active session on the same ledger is refused, either at StartSession or at
        # StartTransaction (session-api.md §6: LimitExceededException).
        with pytest.raises(ClientError) as ei:
            c = RawSession(qs, ledger)
            c.start()
        assert ei.value.response["Error"]["Code"] == "LimitExceededException", ei.value.response
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        # The limit is per ledger.
        assert RawSession(qs, other_ledger).transact(LIST_TABLES) == []
        # Ending a session frees its slot.
        a.abort()
        a.end()
        d = RawSession(qs, ledger)
        assert d.transact(LIST_TABLES) == []
        b.commit()
