"""Behaviour the official drivers' own test suites and samples rely on (pyqldb 3.2.4 here):

- `UPDATE t AS p SET p = ?` replaces a whole document (keeps its id, version + 1);
- `SELECT *` includes BY and AT variables;
- DML result rows: one {documentId} per assignment of an UPDATE (as AWS's Node.js DMV sample
  test asserts), one per document for INSERT / DELETE / REMOVE;
- ConsumedIOs of a six-way self join (the Node.js driver's integration test) and
  TimingInformation;
- error bodies carry `__type` and `Message` only (no lowercase `message`);
- `--latency-ms`: every API response (not /health) waits N ms, which pyqldb's session-pool
  timeout test needs."""

import datetime
import threading
import time

import pytest
from botocore.exceptions import ClientError
from pyqldb.errors import SessionPoolEmptyError

from conftest import make_client
from qldb_session_helpers import (
    ID_RE,
    RawSession,
    create_ledger,
    ion,
    ion_hash,
    make_driver,
    random_token,
    run,
    session_client,
)
from qldb_test_utils import dedicated_server, raw

SESSION_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "QLDBSession.SendCommand"}


def only_document_id(row) -> str:
    assert list(row.keys()) == ["documentId"], row
    assert ID_RE.match(str(row["documentId"])), row
    return str(row["documentId"])


def bad_request(driver, statement, *params) -> str:
    """Runs a statement expected to fail with BadRequestException; returns the message."""
    with pytest.raises(ClientError) as ei:
        run(driver, statement, *params)
    err = ei.value.response["Error"]
    assert err["Code"] == "BadRequestException", ei.value.response
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err["Message"]


# ---------------------------------------------------------------- 1. SET p = ? (whole document)


def test_update_set_alias_replaces_the_document(driver):
    run(driver, "CREATE TABLE Person")
    ann_id, bob_id = (only_document_id(r) for r in run(
        driver, "INSERT INTO Person ?", [{"name": "Ann", "age": 30, "city": "Oslo"}, {"name": "Bob", "age": 41}]))

    def version(doc_id):
        rows = run(driver, "SELECT VALUE r.metadata.version FROM _ql_committed_Person AS r WHERE r.metadata.id = ?",
                   doc_id)
        assert len(rows) == 1, rows
        return int(rows[0])

    assert version(ann_id) == 0
    replacement = ion('{name: "Ann", age: 31, tags: ["x"], since: 2020-01-02T}')
    out = run(driver, "UPDATE Person AS p SET p = ? WHERE p.name = 'Ann'", replacement)
    assert len(out) == 1, out
    assert only_document_id(out[0]) == ann_id

    # The data is exactly the parameter (the old `city` is gone), under the same id.
    rows = run(driver, "SELECT * FROM Person AS p WHERE p.name = 'Ann'")
    assert [ion_hash(r) for r in rows] == [ion_hash(replacement)], rows
    ids = run(driver, "SELECT id FROM Person AS p BY id WHERE p.name = 'Ann'")
    assert [str(r["id"]) for r in ids] == [ann_id]
    assert version(ann_id) == 1
    committed = run(driver, "SELECT VALUE r.data FROM _ql_committed_Person AS r WHERE r.metadata.id = ?", ann_id)
    assert [ion_hash(d) for d in committed] == [ion_hash(replacement)]
    # The other document is untouched.
    assert version(bob_id) == 0
    assert run(driver, "SELECT VALUE p.age FROM Person AS p WHERE p.name = 'Bob'") == [41]


@pytest.mark.parametrize("value", [5, "x", None], ids=["int", "string", "null"])
def test_update_set_alias_to_a_non_struct_is_a_bad_request(driver, value):
    run(driver, "CREATE TABLE Person")
    run(driver, "INSERT INTO Person VALUE {'name': 'Ann', 'age': 30}")
    message = bad_request(driver, "UPDATE Person AS p SET p = ? WHERE p.name = 'Ann'", value)
    assert "needs a struct" in message, message
    rows = run(driver, "SELECT * FROM Person")
    assert [ion_hash(r) for r in rows] == [ion_hash(ion('{name: "Ann", age: 30}'))]


# ---------------------------------------------------------------- 2. SELECT * with BY / AT


def test_select_star_includes_by_and_at_variables(driver):
    run(driver, "CREATE TABLE Person")
    ann_id = only_document_id(run(driver, "INSERT INTO Person VALUE {'name': 'Ann', 'age': 30}")[0])
    run(driver, "INSERT INTO Person VALUE {'name': 'Bob', 'age': 41}")
    rows = run(driver, "SELECT * FROM Person AS p BY pid WHERE p.name = 'Ann'")
    assert len(rows) == 1, rows
    assert dict(rows[0]) == {"name": "Ann", "age": 30, "pid": ann_id}
    assert ion_hash(rows[0]) == ion_hash({"name": "Ann", "age": 30, "pid": ann_id})
    by_id = run(driver, "SELECT * FROM Person AS p BY pid WHERE pid = ?", ann_id)
    assert [str(r["pid"]) for r in by_id] == [ann_id]

    run(driver, "CREATE TABLE T")
    run(driver, "INSERT INTO T VALUE {'name': 'a', 'list': [{'v': 10}, {'v': 20}, {'v': 30}]}")
    rows = run(driver, "SELECT * FROM T AS t, t.list AS x AT i")
    assert len(rows) == 3, rows
    got = sorted((int(r["i"]), int(r["v"])) for r in rows)
    assert got == [(0, 10), (1, 20), (2, 30)], rows
    assert all(str(r["name"]) == "a" for r in rows), rows


# ---------------------------------------------------------------- 3. DML result rows


def test_update_returns_one_document_id_per_assignment(driver):
    run(driver, "CREATE TABLE DriversLicense")
    license_id = only_document_id(run(driver, "INSERT INTO DriversLicense ?", {
        "LicenseNumber": "LEWISR261LL", "LicenseType": "Learner",
        "ValidFromDate": datetime.datetime(2016, 12, 20), "ValidToDate": datetime.datetime(2020, 11, 15)})[0])

    # AWS's Node.js DMV sample test: two assignments on one document give two equal rows.
    out = run(driver, "UPDATE DriversLicense AS d SET d.ValidFromDate = ?, d.ValidToDate = ? "
                      "WHERE d.LicenseNumber = ?",
              datetime.datetime(2019, 12, 20), datetime.datetime(2023, 11, 15), "LEWISR261LL")
    assert len(out) == 2, out
    assert [only_document_id(r) for r in out] == [license_id, license_id]
    assert ion_hash(out[0]) == ion_hash(out[1])
    dates = run(driver, "SELECT d.ValidFromDate, d.ValidToDate FROM DriversLicense AS d")
    assert (dates[0]["ValidFromDate"].year, dates[0]["ValidToDate"].year) == (2019, 2023)

    out = run(driver, "UPDATE DriversLicense AS d SET d.a = 1, d.b = 2, d.LicenseType = 'Full' "
                      "WHERE d.LicenseNumber = 'LEWISR261LL'")
    assert [only_document_id(r) for r in out] == [license_id] * 3

    out = run(driver, "UPDATE DriversLicense AS d REMOVE d.a WHERE d.LicenseNumber = 'LEWISR261LL'")
    assert [only_document_id(r) for r in out] == [license_id]

    out = run(driver, "INSERT INTO DriversLicense VALUE {'LicenseNumber': 'X1'}")
    assert len(out) == 1
    other_id = only_document_id(out[0])
    out = run(driver, "INSERT INTO DriversLicense << {'LicenseNumber': 'X2'}, {'LicenseNumber': 'X3'} >>")
    assert len({only_document_id(r) for r in out}) == 2

    out = run(driver, "DELETE FROM DriversLicense AS d WHERE d.LicenseNumber = 'X1'")
    assert [only_document_id(r) for r in out] == [other_id]
    rows = run(driver, "SELECT * FROM DriversLicense AS d WHERE d.LicenseNumber = 'LEWISR261LL'")
    assert len(rows) == 1 and "a" not in rows[0] and rows[0]["b"] == 2 and rows[0]["LicenseType"] == "Full"


# ---------------------------------------------------------------- 4. ConsumedIOs and TimingInformation


def test_read_ios_of_a_six_way_join_and_timing(driver):
    run(driver, "CREATE TABLE T")
    run(driver, "INSERT INTO T << {'col': 1}, {'col': 2}, {'col': 3} >>")
    join = "SELECT * FROM T as a, T as b, T as c, T as d, T as e, T as f"

    # execute_lambda buffers a returned cursor, reading every page (729 rows, several pages).
    buffered = driver.execute_lambda(lambda txn: txn.execute_statement(join))
    assert len(list(buffered)) == 729
    assert buffered.get_consumed_ios() is not None
    assert buffered.get_consumed_ios()["ReadIOs"] == 1092  # 3 + 9 + 27 + 81 + 243 + 729
    assert buffered.get_timing_information()["ProcessingTimeMilliseconds"] > 0

    # The same through a StreamCursor read page by page inside the transaction.
    def streamed(txn):
        cursor = txn.execute_statement(join)
        count = sum(1 for _ in cursor)
        return count, cursor.get_consumed_ios(), cursor.get_timing_information()

    count, ios, timing = driver.execute_lambda(streamed)
    assert count == 729
    assert ios["ReadIOs"] == 1092
    assert timing["ProcessingTimeMilliseconds"] > 0

    point = driver.execute_lambda(lambda txn: txn.execute_statement("SELECT * FROM T WHERE col = 1"))
    assert [int(r["col"]) for r in point] == [1]
    assert point.get_timing_information() is not None
    assert point.get_timing_information()["ProcessingTimeMilliseconds"] > 0
    insert = driver.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO T VALUE {'col': 4}"))
    assert len(list(insert)) == 1
    assert insert.get_timing_information() is not None
    assert insert.get_timing_information()["ProcessingTimeMilliseconds"] > 0


def test_read_ios_are_per_statement_totals_over_pages(server, ledger):
    """The raw wire view: ReadIOs of the first page plus every FetchPage add up to 1092."""
    driver = make_driver(server, ledger)
    try:
        run(driver, "CREATE TABLE T")
        run(driver, "INSERT INTO T << {'col': 1}, {'col': 2}, {'col': 3} >>")
    finally:
        driver.close()
    s = RawSession(session_client(server), ledger)
    s.start()
    r = s.execute("SELECT * FROM T as a, T as b, T as c, T as d, T as e, T as f")["ExecuteStatement"]
    total = r.get("ConsumedIOs", {}).get("ReadIOs", 0)
    rows = len(r["FirstPage"]["Values"])
    token = r["FirstPage"].get("NextPageToken")
    pages = 1
    while token:
        f = s.fetch(token)["FetchPage"]
        total += f.get("ConsumedIOs", {}).get("ReadIOs", 0)
        rows += len(f["Page"]["Values"])
        token = f["Page"].get("NextPageToken")
        pages += 1
    assert rows == 729
    assert pages > 1
    assert total == 1092
    s.commit()
    s.end()


# ---------------------------------------------------------------- 5. error bodies


def assert_error_body(resp, status, code):
    assert resp.status == status, resp
    body = resp.json()
    assert body.get("__type", "").split("#")[-1] == code, resp
    assert isinstance(body.get("Message"), str) and body["Message"], resp
    assert "message" not in body, resp
    return body


@pytest.mark.parametrize("method, path, body, status, code", [
    ("GET", "/ledgers/no-such-ledger-here", None, 404, "ResourceNotFoundException"),
    ("POST", "/ledgers", b'{"Name": "bad--name", "PermissionsMode": "ALLOW_ALL"}', 400, "InvalidParameterException"),
    ("DELETE", "/ledgers/no-such-ledger-here", None, 404, "ResourceNotFoundException"),
], ids=["describe-missing", "create-invalid", "delete-missing"])
def test_control_plane_error_body_has_no_lowercase_message(server, method, path, body, status, code):
    resp = raw(server, method, path, body, {"Content-Type": "application/json"})
    assert_error_body(resp, status, code)


def test_session_error_body_has_no_lowercase_message(server, ledger):
    body = f'{{"SessionToken": "{random_token()}", "StartTransaction": {{}}}}'.encode()
    resp = raw(server, "POST", "/", body, SESSION_HEADERS)
    assert_error_body(resp, 400, "InvalidSessionException")
    resp = raw(server, "POST", "/", b'{"StartSession": {"LedgerName": "no-such-ledger-here"}}', SESSION_HEADERS)
    assert_error_body(resp, 400, "BadRequestException")


# ---------------------------------------------------------------- --latency-ms


def min_seconds(fn, n=3) -> float:
    best = None
    for _ in range(n):
        t0 = time.monotonic()
        fn()
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    return best


def test_latency_flag_delays_every_api_response():
    with dedicated_server(["--latency-ms", "300"]) as s:
        c = make_client(s.endpoint)
        took = min_seconds(c.list_ledgers)
        assert 0.29 <= took < 10, took
        ledger = create_ledger(s)

        def missing():
            with pytest.raises(ClientError):
                c.describe_ledger(Name="no-such-ledger-here")

        assert 0.29 <= min_seconds(missing) < 10  # errors wait too
        sc = session_client(s)
        took = min_seconds(lambda: sc.send_command(StartSession={"LedgerName": ledger}))
        assert 0.29 <= took < 10, took


def test_no_latency_flag_serves_normally(server, qldb):
    assert isinstance(qldb.list_ledgers()["Ledgers"], list)
    assert server.health()["status"] == "ok"


def test_session_pool_timeout_with_latency():
    """pyqldb's suite: with one permit, a second execute_lambda while the first transaction holds
    the only session fails with SessionPoolEmptyError after the driver's 1 ms pool timeout. Made
    deterministic by holding the session with an event instead of relying on timing."""
    with dedicated_server(["--latency-ms", "50"]) as s:
        ledger = create_ledger(s)
        driver = make_driver(s, ledger, max_concurrent_transactions=1)
        try:
            run(driver, "CREATE TABLE T")
            entered, release = threading.Event(), threading.Event()
            result = {}

            def holder(txn):
                rows = list(txn.execute_statement("INSERT INTO T VALUE {'a': 1}"))
                entered.set()
                assert release.wait(30)
                return rows

            def first():
                try:
                    result["rows"] = driver.execute_lambda(holder)
                except Exception as e:  # noqa: BLE001  (reported by the assertion below)
                    result["error"] = e
                    entered.set()

            t = threading.Thread(target=first)
            t.start()
            try:
                assert entered.wait(30)
                assert "error" not in result, result
                t0 = time.monotonic()
                with pytest.raises(SessionPoolEmptyError):
                    driver.execute_lambda(lambda txn: list(txn.execute_statement("SELECT * FROM T")))
                assert time.monotonic() - t0 < 10
            finally:
                release.set()
                t.join(30)
            assert "error" not in result, result
            assert len(result["rows"]) == 1
            # The permit is back: the driver works again, and every call paid the latency.
            t0 = time.monotonic()
            assert [int(v) for v in run(driver, "SELECT VALUE t.a FROM T AS t")] == [1]
            assert time.monotonic() - t0 >= 0.05 * 3  # StartTransaction, ExecuteStatement, Commit
        finally:
            driver.close()
