"""QLDB quotas enforced through the session API (session-api.md §6, partiql-dialect.md §3.3):
40 documents written per transaction, 128 KB per document, 128 KB per IonBinary parameter,
100,000-character statements, 20 active tables per ledger, 5 indexes per table. Every breach is a
BadRequestException; nothing of the failed transaction is committed."""

import pytest
from botocore.exceptions import ClientError

from qldb_session_helpers import (
    LIST_TABLES,
    RawSession,
    ion_binary,
    make_driver,
    run,
    session_client,
)
from qldb_test_utils import expect_error


@pytest.fixture
def driver(server, ledger):
    d = make_driver(server, ledger)
    run(d, "CREATE TABLE T")
    yield d
    d.close()


def expect_bad_request(driver, fn):
    """execute_lambda(fn) fails with BadRequestException (not retried: fn runs once)."""
    calls = []

    def body(txn):
        calls.append(txn.transaction_id)
        return fn(txn)

    with pytest.raises(ClientError) as ei:
        driver.execute_lambda(body)
    r = ei.value.response
    assert r["Error"]["Code"] == "BadRequestException", r
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
    assert r["Error"].get("Message"), r
    assert len(calls) == 1
    return r


def count(driver, table="T"):
    return len(run(driver, f"SELECT * FROM {table}"))


# ---------------------------------------------------------------- 40 documents per transaction

def test_forty_documents_in_one_transaction_are_allowed(driver):
    rows = run(driver, "INSERT INTO T ?", [{"n": i} for i in range(40)])
    assert len(rows) == 40 and len({str(r["documentId"]) for r in rows}) == 40
    # 40 more, written by several statements of one transaction.
    def many(txn):
        n = 0
        for lo in range(40, 80, 10):
            n += len(list(txn.execute_statement("INSERT INTO T ?", [{"n": i} for i in range(lo, lo + 10)])))
        return n

    assert driver.execute_lambda(many) == 40
    assert count(driver) == 80


def test_forty_one_documents_in_one_statement_are_rejected(driver):
    expect_bad_request(driver, lambda txn: list(
        txn.execute_statement("INSERT INTO T ?", [{"n": i} for i in range(41)])))
    assert count(driver) == 0


def test_forty_first_document_of_a_transaction_is_rejected(driver):
    def over(txn):
        assert len(list(txn.execute_statement("INSERT INTO T ?", [{"n": i} for i in range(40)]))) == 40
        list(txn.execute_statement("INSERT INTO T VALUE {'n': 40}"))

    expect_bad_request(driver, over)
    assert count(driver) == 0


def test_forty_one_documents_in_a_bag_literal_are_rejected(driver):
    bag = ", ".join(f"{{'n': {i}}}" for i in range(41))
    expect_bad_request(driver, lambda txn: list(txn.execute_statement(f"INSERT INTO T << {bag} >>")))
    assert count(driver) == 0


# ---------------------------------------------------------------- document and parameter size

def test_document_just_under_128_kb_round_trips(driver):
    big = "x" * 120_000
    assert len(run(driver, "INSERT INTO T VALUE {'k': 'big', 's': ?}", big)) == 1
    assert run(driver, "SELECT VALUE t.s FROM T AS t WHERE t.k = 'big'") == [big]


def test_document_over_128_kb_is_rejected(driver):
    half = "y" * 70_000  # each parameter is under the 128 KB parameter limit; the document is not
    assert len(ion_binary(half)) < 128 * 1024
    expect_bad_request(driver, lambda txn: list(
        txn.execute_statement("INSERT INTO T VALUE {'k': 'big', 'a': ?, 'b': ?}", half, half)))
    assert count(driver) == 0


def test_update_growing_a_document_over_128_kb_is_rejected(driver):
    half = "z" * 70_000
    assert len(run(driver, "INSERT INTO T VALUE {'k': 'grow', 'a': ?}", half)) == 1
    expect_bad_request(driver, lambda txn: list(
        txn.execute_statement("UPDATE T AS t SET t.b = ? WHERE t.k = 'grow'", half)))
    docs = run(driver, "SELECT * FROM T")
    assert len(docs) == 1 and "b" not in docs[0] and docs[0]["a"] == half


def test_parameter_over_128_kb_is_rejected(server, ledger, driver):
    huge = "p" * 140_000
    assert len(ion_binary(huge)) > 128 * 1024
    s = RawSession(session_client(server), ledger)
    s.start()
    expect_error(lambda: s.execute("SELECT * FROM T WHERE a = ?", huge), "BadRequestException", 400)
    s.abort()


# ---------------------------------------------------------------- statement length

def padded_statement(length):
    head, tail = "SELECT VALUE t.n FROM T AS t WHERE t.s = '", "'"
    stmt = head + "q" * (length - len(head) - len(tail)) + tail
    assert len(stmt) == length
    return stmt


def test_statement_of_100000_characters_is_accepted(driver):
    assert run(driver, padded_statement(100_000)) == []


def test_statement_over_100000_characters_is_rejected(server, ledger, driver):
    s = RawSession(session_client(server), ledger)
    s.start()
    expect_error(lambda: s.execute(padded_statement(100_001)), "BadRequestException", 400)
    s.abort()
    expect_bad_request(driver, lambda txn: list(txn.execute_statement(padded_statement(100_001))))


# ---------------------------------------------------------------- tables and indexes

def test_twenty_first_active_table_is_rejected(server, ledger):
    with make_driver(server, ledger) as driver:
        for i in range(20):
            rows = run(driver, f"CREATE TABLE Table{i}")
            assert len(rows) == 1
        expect_bad_request(driver, lambda txn: list(txn.execute_statement("CREATE TABLE Table20")))
        tables = sorted(str(t) for t in driver.list_tables())
        assert tables == sorted(f"Table{i}" for i in range(20))
        assert sorted(str(t) for t in run(driver, LIST_TABLES)) == tables


def test_sixth_index_on_a_table_is_rejected(driver):
    for i in range(5):
        assert len(run(driver, f"CREATE INDEX ON T (f{i})")) == 1
    expect_bad_request(driver, lambda txn: list(txn.execute_statement("CREATE INDEX ON T (f5)")))
    idx = run(driver, "SELECT VALUE t.indexes FROM information_schema.user_tables AS t WHERE t.name = 'T'")
    assert len(idx) == 1
    assert sorted(str(i["expr"]) for i in idx[0]) == [f"[f{i}]" for i in range(5)]
    # Indexes are per table: another table still gets its own five.
    run(driver, "CREATE TABLE U")
    assert len(run(driver, "CREATE INDEX ON U (f0)")) == 1
