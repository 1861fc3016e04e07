"""The session API (qldb-session SendCommand) through the real Python driver, pyqldb 3.2.4:
execute_lambda flows, Ion fidelity, the driver's commit-digest check, paging, OCC retries,
transaction expiry, session expiry and durability (session-api.md §1–§4, partiql-dialect.md §1).

Every `execute_lambda` that returns proves the server's CommitDigest matched pyqldb's own
computation (pyqldb raises IllegalStateError otherwise)."""

import datetime
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from amazon.ion.core import IonType, TimestampPrecision
from amazon.ion.simple_types import IonPyNull
from botocore.exceptions import ClientError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.errors import LambdaAbortedError

from qldb_harness import Server
from qldb_session_helpers import (
    ID_RE,
    LIST_TABLES,
    TX_EXPIRED_RE,
    CommandLog,
    RawSession,
    create_ledger,
    fill,
    ion,
    ion_hash,
    make_driver,
    run,
    session_client,
)
from qldb_test_utils import dedicated_server


def hashes(values):
    return sorted(ion_hash(v) for v in values)


def only_key(row, key):
    """Asserts `row` is exactly {key: <22-char id>} and returns the id."""
    assert list(row.keys()) == [key], row
    value = row[key]
    assert isinstance(value, str) and ID_RE.match(value), row
    assert value.ion_type == IonType.STRING, row
    return str(value)


# A document that uses every Ion type a QLDB document can hold, with the precision details that
# a lossy value model would drop (decimal scale and negative zero, timestamp precision, fraction
# digits and offsets, big ints, blob vs clob, symbol vs string, sexp, typed nulls).
VEHICLE_TEXT = """{
  VIN: "1N4AL11D75C109151",
  Make: "Mercedes",
  Year: 2019,
  Price: 130.750,
  Rate: 5.00d-2,
  NegZero: -0.0,
  Mileage: 1180591620717411303424,
  Delta: -42,
  Ratio: 1.5e0,
  Registered: 2019-06-05T,
  PurchasedAt: 2019-06-05T20:53:32.123-08:00,
  Updated: 2020-01-01T00:00:00.000000Z,
  Built: 2018T,
  Photo: {{aGVsbG8gd29ybGQ=}},
  Notes: {{"clob text"}},
  Kind: sedan,
  Shape: (a b 1),
  Insured: true,
  Recalled: null,
  Color: null.string,
  Extras: null.list,
  Owners: {
    PrimaryOwner: { PersonId: "294jJ3YUoH1IEEm8GSabOs", Shares: [0.5, 0.50, 1] },
    SecondaryOwners: []
  },
  History: [ { at: 2018-03T, km: 0 }, { at: 2019-01-02T03:04Z, km: 12000.5 } ],
  Unicode: "Grüße, 東京 \U0001F697"
}"""
VEHICLE = ion(VEHICLE_TEXT)
VIN = "1N4AL11D75C109151"


def assert_vehicle_fidelity(doc):
    """The document came back with full Ion fidelity (explicit checks first, for readable failures)."""
    assert doc["Price"].ion_type == IonType.DECIMAL
    assert doc["Price"].as_tuple() == Decimal("130.750").as_tuple(), doc["Price"]
    assert doc["Rate"].as_tuple() == Decimal("5.00E-2").as_tuple(), doc["Rate"]
    assert doc["NegZero"].ion_type == IonType.DECIMAL and doc["NegZero"].as_tuple() == Decimal("-0.0").as_tuple()
    assert doc["Mileage"].ion_type == IonType.INT and int(doc["Mileage"]) == 2 ** 70
    assert int(doc["Delta"]) == -42
    assert doc["Ratio"].ion_type == IonType.FLOAT and float(doc["Ratio"]) == 1.5
    reg = doc["Registered"]
    assert reg.ion_type == IonType.TIMESTAMP and reg.precision == TimestampPrecision.DAY
    assert (reg.year, reg.month, reg.day) == (2019, 6, 5)
    bought = doc["PurchasedAt"]
    assert bought.precision == TimestampPrecision.SECOND and bought.fractional_precision == 3
    assert bought.microsecond == 123000
    assert bought.utcoffset() == datetime.timedelta(hours=-8)
    assert doc["Updated"].fractional_precision == 6 and doc["Updated"].utcoffset() == datetime.timedelta(0)
    assert doc["Built"].precision == TimestampPrecision.YEAR
    assert doc["History"][0]["at"].precision == TimestampPrecision.MONTH
    assert doc["History"][1]["at"].precision == TimestampPrecision.MINUTE
    assert doc["History"][1]["km"].as_tuple() == Decimal("12000.5").as_tuple()
    assert doc["Photo"].ion_type == IonType.BLOB and bytes(doc["Photo"]) == b"hello world"
    assert doc["Notes"].ion_type == IonType.CLOB and bytes(doc["Notes"]) == b"clob text"
    assert doc["Kind"].ion_type == IonType.SYMBOL and doc["Kind"].text == "sedan"
    assert doc["Shape"].ion_type == IonType.SEXP and len(doc["Shape"]) == 3
    assert doc["Insured"] is True or (doc["Insured"].ion_type == IonType.BOOL and doc["Insured"])
    assert doc["Recalled"].ion_type == IonType.NULL
    assert isinstance(doc["Color"], IonPyNull) and doc["Color"].ion_type == IonType.STRING  # null.string
    assert isinstance(doc["Extras"], IonPyNull) and doc["Extras"].ion_type == IonType.LIST  # null.list
    shares = doc["Owners"]["PrimaryOwner"]["Shares"]
    assert [s.as_tuple() if isinstance(s, Decimal) else s for s in shares] == [
        Decimal("0.5").as_tuple(), Decimal("0.50").as_tuple(), 1]
    assert list(doc["Owners"]["SecondaryOwners"]) == []
    assert doc["Unicode"] == "Grüße, 東京 \U0001F697"
    # Ion data-model equality of the whole document (field order does not matter).
    assert ion_hash(doc) == ion_hash(VEHICLE), doc


# ---------------------------------------------------------------- 1. the execute_lambda flow

def test_execute_lambda_full_flow(driver):
    # DDL: one {tableId} row each.
    def ddl(txn):
        created = list(txn.execute_statement("CREATE TABLE Vehicle"))
        indexed = list(txn.execute_statement("CREATE INDEX ON Vehicle (VIN)"))
        return created, indexed

    created, indexed = driver.execute_lambda(ddl)
    assert len(created) == 1 and len(indexed) == 1, (created, indexed)
    table_id = only_key(created[0], "tableId")
    assert only_key(indexed[0], "tableId") == table_id

    # INSERT one document (a parameter): one {documentId}.
    inserted = run(driver, "INSERT INTO Vehicle ?", VEHICLE)
    assert len(inserted) == 1
    doc_id = only_key(inserted[0], "documentId")

    # SELECT by the indexed field with a parameter: the document with full fidelity.
    rows = run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VIN)
    assert len(rows) == 1
    assert_vehicle_fidelity(rows[0])
    assert run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", "no-such-vin") == []

    price = run(driver, "SELECT VALUE v.Price FROM Vehicle AS v WHERE v.VIN = ?", VIN)
    assert len(price) == 1 and price[0].as_tuple() == Decimal("130.750").as_tuple()
    ids = run(driver, "SELECT id FROM Vehicle AS v BY id WHERE v.VIN = ?", VIN)
    assert [str(r["id"]) for r in ids] == [doc_id]

    # UPDATE: one {documentId} of the same document per assignment (as QLDB answered); the new
    # values read back, the rest intact.
    new_price = ion("99.990")
    updated = run(driver,
                  "UPDATE Vehicle AS v SET v.Price = ?, v.Owners.PrimaryOwner.PersonId = ? WHERE v.VIN = ?",
                  new_price, "IN63jYJ1V4CQ7wcYBpD4yU", VIN)
    assert len(updated) == 2 and only_key(updated[0], "documentId") == doc_id
    assert updated[0] == updated[1]
    after = run(driver, "SELECT * FROM Vehicle AS v WHERE v.VIN = ?", VIN)
    assert len(after) == 1
    assert after[0]["Price"].as_tuple() == Decimal("99.990").as_tuple()
    assert after[0]["Owners"]["PrimaryOwner"]["PersonId"] == "IN63jYJ1V4CQ7wcYBpD4yU"
    assert after[0]["PurchasedAt"].fractional_precision == 3
    assert ion_hash(after[0]["Photo"]) == ion_hash(VEHICLE["Photo"])
    assert ion_hash(after[0]["History"]) == ion_hash(VEHICLE["History"])

    # UPDATE / DELETE matching nothing: no rows.
    assert run(driver, "UPDATE Vehicle AS v SET v.Price = 1 WHERE v.VIN = ?", "nope") == []
    assert run(driver, "DELETE FROM Vehicle AS v WHERE v.VIN = ?", "nope") == []

    # DELETE: one {documentId}; the document is gone.
    deleted = run(driver, "DELETE FROM Vehicle AS v WHERE v.VIN = ?", VIN)
    assert len(deleted) == 1 and only_key(deleted[0], "documentId") == doc_id
    assert run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VIN) == []
    assert run(driver, "SELECT * FROM Vehicle") == []

    # list_tables(): pyqldb's own statement (SELECT VALUE name FROM information_schema.user_tables ...).
    tables = list(driver.list_tables())
    assert tables == ["Vehicle"]
    assert tables[0].ion_type == IonType.STRING


def test_insert_forms_return_one_document_id_per_document(driver):
    run(driver, "CREATE TABLE T")

    def inserts(txn):
        out = {}
        out["value"] = list(txn.execute_statement("INSERT INTO T VALUE {'a': 1, 'b': 'x'}"))
        out["bag"] = list(txn.execute_statement("INSERT INTO T << {'a': 2}, {'a': 3} >>"))
        out["list"] = list(txn.execute_statement("INSERT INTO T ?", [{"a": 4}, {"a": 5}, {"a": 6}]))
        out["value?"] = list(txn.execute_statement("INSERT INTO T VALUE ?", {"a": 7}))
        out["members?"] = list(txn.execute_statement("INSERT INTO T VALUE {'a': ?, 'n': {'m': ?}}", 8, "deep"))
        return out

    out = driver.execute_lambda(inserts)
    assert {k: len(v) for k, v in out.items()} == {"value": 1, "bag": 2, "list": 3, "value?": 1, "members?": 1}
    ids = [only_key(r, "documentId") for rows in out.values() for r in rows]
    assert len(set(ids)) == 8

    assert sorted(int(a) for a in run(driver, "SELECT VALUE t.a FROM T AS t")) == list(range(1, 9))
    assert sorted(str(i) for i in run(driver, "SELECT VALUE id FROM T BY id")) == sorted(ids)
    # The list form keeps its element order in the returned ids (insertion order).
    by_a = {int(r["a"]): str(r["id"]) for r in run(driver, "SELECT t.a, id FROM T AS t BY id")}
    assert [by_a[4], by_a[5], by_a[6]] == [str(r["documentId"]) for r in out["list"]]
    deep = run(driver, "SELECT VALUE t.n.m FROM T AS t WHERE t.a = 8")
    assert deep == ["deep"]


def test_select_forms(driver):
    run(driver, "CREATE TABLE P")
    run(driver, "CREATE INDEX ON P (name)")
    docs = [
        ion("{name: \"a\", n: 1, tags: [\"x\"], addr: {city: \"Oslo\", zip: \"0150\"}}"),
        ion("{name: \"b\", n: 2, addr: {city: \"Rome\"}, opt: null}"),
        ion("{name: \"c\", n: 3, addr: {city: \"Oslo\"}}"),
        ion("{name: \"d\", n: 4}"),
    ]
    ids = [str(r["documentId"]) for r in run(driver, "INSERT INTO P ?", docs)]

    def names(where, *params):
        return sorted(str(v) for v in run(driver, f"SELECT VALUE p.name FROM P AS p WHERE {where}", *params))

    assert hashes(run(driver, "SELECT * FROM P")) == hashes(docs)
    assert hashes(run(driver, "SELECT * FROM P AS p")) == hashes(docs)
    projected = run(driver, "SELECT p.name, p.addr.city AS city FROM P AS p WHERE p.n = 1")
    assert [ion_hash(r) for r in projected] == [ion_hash(ion("{name: \"a\", city: \"Oslo\"}"))]
    assert names("p.addr.city = ?", "Oslo") == ["a", "c"]
    assert names("p.name = ?", "b") == ["b"]
    assert names("p.n > 1 AND p.n <= 3") == ["b", "c"]
    assert names("p.n >= 3") == ["c", "d"]
    assert names("p.n < 2") == ["a"]
    assert names("p.n <> 2") == ["a", "c", "d"]
    assert names("p.n = 1 OR p.name = 'd'") == ["a", "d"]
    assert names("NOT p.n = 1") == ["b", "c", "d"]
    assert names("p.n IN (1, 3, ?)", 4) == ["a", "c", "d"]
    assert names("p.name IN ('b')") == ["b"]
    assert names("p.n = ? AND (p.addr.city = ? OR p.name = ?)", 3, "Rome", "c") == ["c"]
    # PartiQL: MISSING IS NULL is true; IS MISSING only for absent fields.
    assert names("p.opt IS NULL") == ["a", "b", "c", "d"]
    assert names("p.opt IS NOT NULL") == []
    assert names("p.opt IS MISSING") == ["a", "c", "d"]
    assert names("p.opt IS NOT MISSING") == ["b"]
    assert names("p.addr IS MISSING") == ["d"]
    # BY binds the document id.
    assert run(driver, "SELECT VALUE p.name FROM P AS p BY pid WHERE pid = ?", ids[2]) == ["c"]
    # SELECT VALUE of a nested struct / a list.
    assert [ion_hash(v) for v in run(driver, "SELECT VALUE p.addr FROM P AS p WHERE p.name = 'a'")] == \
        [ion_hash(docs[0]["addr"])]
    assert [ion_hash(v) for v in run(driver, "SELECT VALUE p.tags FROM P AS p WHERE p.name = 'a'")] == \
        [ion_hash(ion("[\"x\"]"))]
    # Both catalog statements the drivers send (pyqldb/Java/.NET and Node/Go).
    assert run(driver, LIST_TABLES) == ["P"]
    node_style = run(driver, "SELECT name FROM information_schema.user_tables WHERE status = 'ACTIVE'")
    assert [ion_hash(r) for r in node_style] == [ion_hash(ion("{name: \"P\"}"))]


def test_statement_error_surfaces_as_bad_request_and_nothing_is_committed(driver):
    run(driver, "CREATE TABLE T")
    calls = []

    def bad(txn):
        calls.append(txn.transaction_id)
        list(txn.execute_statement("INSERT INTO T VALUE {'a': 1}"))
        list(txn.execute_statement("SELECT * FROM NoSuchTable"))

    with pytest.raises(ClientError) as ei:
        driver.execute_lambda(bad)
    assert ei.value.response["Error"]["Code"] == "BadRequestException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(calls) == 1  # BadRequest is not retried
    # pyqldb aborted the transaction: the insert is not visible, and the driver keeps working.
    assert run(driver, "SELECT * FROM T") == []
    assert len(run(driver, "INSERT INTO T VALUE {'a': 2}")) == 1


def test_lambda_abort_rolls_back(driver):
    run(driver, "CREATE TABLE T")

    def aborting(txn):
        list(txn.execute_statement("INSERT INTO T VALUE {'a': 1}"))
        txn.abort()

    with pytest.raises(LambdaAbortedError):
        driver.execute_lambda(aborting)
    assert run(driver, "SELECT * FROM T") == []


# ---------------------------------------------------------------- 2. commit digest, every Ion type

ALL_TYPES = [
    "null", "null.bool", "null.int", "null.float", "null.decimal", "null.timestamp", "null.symbol",
    "null.string", "null.clob", "null.blob", "null.list", "null.sexp", "null.struct",
    "true", "false",
    "0", "1", "-1", "256", "18446744073709551616", "-18446744073709551617",
    "0e0", "-0e0", "1.5e0", "-2.25e-3", "nan", "+inf", "-inf",
    "0d0", "-0d0", "1.5", "1.50", "130.750", "-0.001", "12345678901234567890.123456789",
    "2020T", "2020-01T", "2020-01-01T", "2020-01-01T00:00Z", "2020-01-01T00:00:00Z",
    "2020-01-01T00:00:00.000Z", "2020-01-01T00:00:00-08:00", "2007-02-23T12:14:33.079-08:00",
    "2020-01-01T00:00:00.123456789+05:30", "2020-01-01T00:00:00-00:00",
    "\"x\"", "\"\"", "\"\\x0b\\x0e\\x0c\"", "\"Grüße 東京\"",
    "sym", "'quoted sym'",
    "{{aGVsbG8=}}", "{{}}", "{{CwwO}}", "{{\"clob\"}}", "{{\"\"}}",
    "[]", "[1, [2, \"x\"], {a: null}]", "()", "(a b 1)", "{}", "{a: 1, b: {c: [1.5e0, null]}}",
]
ANNOTATED = ["ann::1", "a::b::\"x\"", "ann::{a: 1}"]


def test_multi_statement_transactions_with_parameters_of_every_ion_type(driver):
    values = [ion(t) for t in ALL_TYPES]
    annotated = [ion(t) for t in ANNOTATED]
    placeholders = ", ".join("?" for _ in values)

    def insert_each(txn, indexes):
        """One INSERT per value (two parameters each), with parameterised reads interleaved."""
        for i in indexes:
            rows = list(txn.execute_statement("INSERT INTO Types VALUE {'i': ?, 'v': ?}", i, values[i]))
            assert len(rows) == 1
            if i % 7 == 0:
                got = list(txn.execute_statement("SELECT VALUE t.i FROM Types AS t WHERE t.i IN (?, ?, ?)", i, -1, i))
                assert [int(g) for g in got] == [i]

    # Transaction 1 carries every Ion type as a parameter: all of them in one statement (each one
    # folded into the digest in order), then the first half again one statement per value.
    half = len(values) // 2
    assert half + 1 <= 40  # the documents-per-transaction limit

    def first(txn):
        assert len(list(txn.execute_statement("CREATE TABLE Types"))) == 1
        rows = list(txn.execute_statement(f"INSERT INTO Types VALUE {{'i': 1000, 'all': [{placeholders}]}}", *values))
        assert len(rows) == 1
        insert_each(txn, range(half))
        # Annotated parameters are hashed with their annotations (nothing matches them here).
        got = list(txn.execute_statement("SELECT VALUE t.i FROM Types AS t WHERE t.i = -999 AND t.v IN (?, ?, ?)",
                                         *annotated))
        assert got == []

    def second(txn):
        insert_each(txn, range(half, len(values)))
        # Every value once more as a lookup parameter, in a read-only statement each.
        for v in values:
            list(txn.execute_statement("SELECT VALUE t.i FROM Types AS t WHERE t.i = -1 AND t.v = ?", v))

    driver.execute_lambda(first)  # returning at all = pyqldb's digest check passed
    driver.execute_lambda(second)

    stored = {int(r["i"]): r for r in run(driver, "SELECT * FROM Types")}
    assert sorted(stored) == list(range(len(values))) + [1000]
    for i, v in enumerate(values):
        assert "v" in stored[i], (ALL_TYPES[i], stored[i])
        assert ion_hash(stored[i]["v"]) == ion_hash(v), (ALL_TYPES[i], stored[i]["v"])
    assert ion_hash(stored[1000]["all"]) == ion_hash(ion("[" + ", ".join(ALL_TYPES) + "]"))

    # Equality lookups on precise values find exactly their document.
    for text in ["130.750", "2007-02-23T12:14:33.079-08:00", "{{aGVsbG8=}}", "\"Grüße 東京\"", "18446744073709551616"]:
        got = run(driver, "SELECT VALUE t.i FROM Types AS t WHERE t.v = ?", ion(text))
        assert [int(g) for g in got] == [ALL_TYPES.index(text)], text


def test_empty_transaction_and_read_only_transaction_commit(driver):
    # Zero statements: the digest is IH(txid) alone.
    assert driver.execute_lambda(lambda txn: txn.transaction_id) is not None
    run(driver, "CREATE TABLE T")
    # A statement whose result is never read still counts for the digest.
    def unread(txn):
        txn.execute_statement("SELECT * FROM T WHERE a = ?", 1)

    driver.execute_lambda(unread)
    # A returned live cursor is buffered by pyqldb before the commit.
    cursor = driver.execute_lambda(lambda txn: txn.execute_statement("SELECT * FROM T"))
    assert list(cursor) == []


# ---------------------------------------------------------------- 3. paging

def count_rows(driver, statement, *params):
    """Streams the result inside the transaction (pyqldb fetches pages lazily)."""
    def body(txn):
        seen = []
        for v in txn.execute_statement(statement, *params):
            seen.append(int(v))
        return seen
    return driver.execute_lambda(body)


def test_paging_over_more_than_1000_results_default_page_size(server, ledger):
    total = 1050
    with make_driver(server, ledger) as driver:
        run(driver, "CREATE TABLE Big")
        ids = fill(driver, "Big", total, extra={"pad": "x" * 50})
        assert len(set(ids)) == total

        log = CommandLog(driver._client)
        ns = count_rows(driver, "SELECT VALUE b.n FROM Big AS b")
        assert sorted(ns) == list(range(total))
        # 200 values per page by default: 6 pages = the first one plus 5 FetchPage calls.
        assert log.count("FetchPage") == math.ceil(total / 200) - 1, log.commands

        rows = driver.execute_lambda(lambda txn: txn.execute_statement("SELECT * FROM Big"))  # buffered
        assert sorted(int(r["n"]) for r in rows) == list(range(total))
        assert all(r["pad"] == "x" * 50 for r in rows)

    # Raw: exactly 200 values on every page but the last, NextPageToken only where more follow.
    s = RawSession(session_client(server), ledger)
    s.start()
    r = s.execute("SELECT VALUE b.n FROM Big AS b")
    page = r["ExecuteStatement"]["FirstPage"]
    sizes = [len(page["Values"])]
    while "NextPageToken" in page:
        page = s.fetch(page["NextPageToken"])["FetchPage"]["Page"]
        sizes.append(len(page["Values"]))
    s.commit()
    assert sizes == [200] * 5 + [50], sizes


def test_paging_with_small_pages_and_read_ahead():
    total = 1001
    with dedicated_server(["--page-size", "7"]) as server:
        ledger = create_ledger(server)
        with make_driver(server, ledger) as driver:
            run(driver, "CREATE TABLE Big")
            fill(driver, "Big", total)
            log = CommandLog(driver._client)
            assert sorted(count_rows(driver, "SELECT VALUE b.n FROM Big AS b")) == list(range(total))
            assert log.count("FetchPage") == math.ceil(total / 7) - 1

            # Small results fit in the first page: no FetchPage.
            before = log.count("FetchPage")
            assert sorted(count_rows(driver, "SELECT VALUE b.n FROM Big AS b WHERE b.n < 7")) == list(range(7))
            assert log.count("FetchPage") == before

            # Two cursors of one transaction read alternately: page tokens belong to their statement.
            def interleaved(txn):
                low = txn.execute_statement("SELECT VALUE b.n FROM Big AS b WHERE b.n < 500")
                high = txn.execute_statement("SELECT VALUE b.n FROM Big AS b WHERE b.n >= 500")
                a, b = [], []
                for x, y in zip(low, high):
                    a.append(int(x))
                    b.append(int(y))
                b.extend(int(y) for y in high)
                return a, b

            a, b = driver.execute_lambda(interleaved)
            assert sorted(a) == list(range(500)) and sorted(b) == list(range(500, total))

        # pyqldb's read-ahead cursor fetches pages from a background thread.
        with make_driver(server, ledger, read_ahead=4) as driver:
            assert sorted(count_rows(driver, "SELECT VALUE b.n FROM Big AS b")) == list(range(total))
            rows = driver.execute_lambda(lambda txn: txn.execute_statement("SELECT * FROM Big"))
            assert sorted(int(r["n"]) for r in rows) == list(range(total))


# ---------------------------------------------------------------- 4. OCC retries

def test_concurrent_increments_resolve_to_exact_total(server, ledger):
    per_thread = 25
    retry = RetryConfig(retry_limit=10_000, custom_backoff=lambda attempt, error, txid: random.uniform(0, 5))
    with make_driver(server, ledger, retry_config=retry) as driver:
        run(driver, "CREATE TABLE Counter")
        run(driver, "CREATE INDEX ON Counter (name)")
        run(driver, "INSERT INTO Counter VALUE {'name': 'c', 'n': 0}")
        attempts = {"expr": 0, "param": 0}
        lock = threading.Lock()
        start = threading.Barrier(2)

        def by_expression(txn):
            with lock:
                attempts["expr"] += 1
            current = list(txn.execute_statement("SELECT VALUE c.n FROM Counter AS c WHERE c.name = ?", "c"))
            assert len(current) == 1
            rows = list(txn.execute_statement("UPDATE Counter AS c SET c.n = c.n + 1 WHERE c.name = ?", "c"))
            assert len(rows) == 1

        def by_parameter(txn):
            with lock:
                attempts["param"] += 1
            current = list(txn.execute_statement("SELECT VALUE c.n FROM Counter AS c WHERE c.name = ?", "c"))
            assert len(current) == 1
            rows = list(txn.execute_statement("UPDATE Counter AS c SET c.n = ? WHERE c.name = ?",
                                              int(current[0]) + 1, "c"))
            assert len(rows) == 1

        def worker(fn):
            start.wait()
            for _ in range(per_thread):
                driver.execute_lambda(fn)

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(worker, by_expression), pool.submit(worker, by_parameter)]
            for f in futures:
                f.result(timeout=300)

        assert run(driver, "SELECT VALUE c.n FROM Counter AS c WHERE c.name = 'c'") == [2 * per_thread]
        assert attempts["expr"] >= per_thread and attempts["param"] >= per_thread
        print(f"lambda attempts: {attempts} for {2 * per_thread} increments")


# ---------------------------------------------------------------- 5. transaction and session expiry

@pytest.mark.parametrize("where", ["statement", "commit"])
def test_transaction_outliving_the_timeout_fails_with_transaction_expired(where):
    with dedicated_server(["--transaction-timeout-ms", "1000"]) as server:
        ledger = create_ledger(server)
        with make_driver(server, ledger) as driver:
            run(driver, "CREATE TABLE T")
            txids = []

            def slow(txn):
                txids.append(txn.transaction_id)
                list(txn.execute_statement("INSERT INTO T VALUE {'a': 1}"))
                time.sleep(1.5)
                if where == "statement":
                    list(txn.execute_statement("SELECT * FROM T"))

            with pytest.raises(ClientError) as ei:
                driver.execute_lambda(slow)
            err = ei.value.response["Error"]
            assert err["Code"] == "InvalidSessionException", err
            assert TX_EXPIRED_RE.search(err["Message"]), err
            assert txids[0] in err["Message"], err
            assert len(txids) == 1, "an expired transaction must not be retried by pyqldb"

            # The driver stays usable; the expired transaction's insert was never applied.
            assert run(driver, "SELECT * FROM T") == []
            assert len(run(driver, "INSERT INTO T VALUE {'a': 2}")) == 1
            # A transaction that stays under the timeout is unaffected.
            driver.execute_lambda(lambda txn: (time.sleep(0.3), list(txn.execute_statement("SELECT * FROM T"))))
            assert [int(a) for a in run(driver, "SELECT VALUE t.a FROM T AS t")] == [2]


def test_driver_recovers_transparently_from_an_expired_session():
    with dedicated_server(["--session-lifetime-ms", "1000"]) as server:
        ledger = create_ledger(server)
        with make_driver(server, ledger) as driver:
            log = CommandLog(driver._client)
            run(driver, "CREATE TABLE T")
            assert log.count("StartSession") == 1
            time.sleep(1.5)
            # The pooled session is dead: pyqldb retries on a new session at once.
            assert len(run(driver, "INSERT INTO T VALUE {'a': 1}")) == 1
            assert log.count("StartSession") == 2, log.commands
            assert run(driver, "SELECT VALUE t.a FROM T AS t") == [1]


# ---------------------------------------------------------------- 8. durability

def test_committed_data_survives_restart_and_uncommitted_does_not():
    server = Server()
    server.start()
    try:
        ledger = create_ledger(server)
        driver = make_driver(server, ledger)
        run(driver, "CREATE TABLE Vehicle")
        run(driver, "CREATE INDEX ON Vehicle (VIN)")
        doc_id = str(run(driver, "INSERT INTO Vehicle ?", VEHICLE)[0]["documentId"])
        run(driver, "CREATE TABLE Many")
        fill(driver, "Many", 100)
        run(driver, "UPDATE Many AS m SET m.n = m.n + 1000 WHERE m.n < 10")
        run(driver, "DELETE FROM Many AS m WHERE m.n >= 90 AND m.n < 100")

        # An open, uncommitted transaction at shutdown.
        raw = RawSession(session_client(server), ledger)
        raw.start()
        raw.values("INSERT INTO Many VALUE {'n': -1}")

        assert server.stop() == 0
        server.start()

        # The old driver recovers (its pooled session no longer exists).
        rows = run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VIN)
        assert len(rows) == 1
        assert_vehicle_fidelity(rows[0])
        driver.close()

        with make_driver(server, ledger) as fresh:
            assert sorted(fresh.list_tables()) == ["Many", "Vehicle"]
            assert [str(i) for i in run(fresh, "SELECT VALUE id FROM Vehicle BY id")] == [doc_id]
            ns = sorted(int(n) for n in run(fresh, "SELECT VALUE m.n FROM Many AS m"))
            assert ns == list(range(10, 90)) + list(range(1000, 1010))
            # The index survived too.
            idx = run(fresh, "SELECT VALUE t.indexes FROM information_schema.user_tables AS t WHERE t.name = 'Vehicle'")
            assert len(idx) == 1 and [str(i["expr"]) for i in idx[0]] == ["[VIN]"]
            # And writing continues.
            assert len(run(fresh, "INSERT INTO Many VALUE {'n': 5000}")) == 1

        # The pre-restart session token is unknown now.
        with pytest.raises(ClientError) as ei:
            raw.start()
        assert ei.value.response["Error"]["Code"] == "InvalidSessionException"
        assert not TX_EXPIRED_RE.search(ei.value.response["Error"]["Message"])
    finally:
        server.close()
