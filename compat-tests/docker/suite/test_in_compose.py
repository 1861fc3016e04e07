"""An end-to-end suite that runs INSIDE the test container of the docker-compose setup, beside a
qldb-local service, exactly as a user's CI job would use it.

Nothing here starts a server or imports a test harness: the clients are made the way application
code makes them, `boto3.client("qldb")` and `QldbDriver(ledger_name=...)` with no endpoint
argument, and the SDK finds the server through AWS_ENDPOINT_URL_QLDB and
AWS_ENDPOINT_URL_QLDB_SESSION (credentials test/test, region us-east-1, from the environment).
The only file it needs beside it is `journal_verifier.py`, a journal verifier written from the
spec alone (Ion Hash, dot, merkle, fold), so no proof is ever checked with the server's own code.

What it proves, with the pinned clients (boto3/botocore 1.40.60, pyqldb 3.2.4):
1. the control plane: CreateLedger (ALLOW_ALL and STANDARD), DescribeLedger until ACTIVE,
   ListLedgers, UpdateLedger / UpdateLedgerPermissionsMode, deletion protection, tags,
   DeleteLedger and ResourceNotFoundException afterwards;
2. transactions through pyqldb: DDL, an index, INSERT / SELECT by the indexed field / UPDATE /
   DELETE / history() with Ion decimals and timestamps kept exactly (pyqldb also checks every
   CommitDigest itself, so each committed transaction proves the server's digest is right);
3. OCC: a conflict forced deterministically is retried by the driver (and counted), and two
   drivers incrementing one counter concurrently lose no update;
4. verification: GetDigest / GetRevision / GetBlock proofs fold to the digest, and the digest is
   the Merkle root of every block hash recomputed from the blocks' own Ion text.

Every ledger has a unique name (reruns against the same data volume never collide) and is
deleted at the end, deletion protection switched off first.
"""

import datetime
import os
import random
import threading
import time
import uuid
from decimal import Decimal

import boto3
import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, TimestampPrecision
from botocore.exceptions import ClientError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from journal_verifier import H, ZERO_HASH, check_block, dot, fold, ion, merkle

PREFIX = "compose-"
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_QLDB", "AWS_ENDPOINT_URL_QLDB_SESSION")
LIST_TABLES = "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'"


# ---------------------------------------------------------------- helpers

def new_name():
    """A unique, valid ledger name (at most 32 characters)."""
    return PREFIX + uuid.uuid4().hex[:16]


def error_code(exc):
    return exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__


def wait_active(q, name, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        described = q.describe_ledger(Name=name)
        if described["State"] == "ACTIVE":
            return described
        assert described["State"] == "CREATING", described
        assert time.monotonic() < deadline, f"ledger {name} never became ACTIVE"
        time.sleep(0.05)


def wait_gone(q, name, timeout=30.0):
    """Polls DescribeLedger until ResourceNotFoundException (DELETING is allowed meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            described = q.describe_ledger(Name=name)
        except q.exceptions.ResourceNotFoundException as e:
            return e
        assert described["State"] == "DELETING", described
        assert time.monotonic() < deadline, f"ledger {name} was never deleted"
        time.sleep(0.05)


def delete_quietly(q, name):
    """Teardown: switch deletion protection off and delete; a ledger already gone is fine."""
    try:
        q.update_ledger(Name=name, DeletionProtection=False)
        q.delete_ledger(Name=name)
    except q.exceptions.ResourceNotFoundException:
        pass


def sweep_stale_ledgers(q, older_than=datetime.timedelta(hours=1)):
    """Deletes this suite's own ledgers left over by an aborted earlier run on the same data
    volume (only names with this suite's prefix, only if over an hour old), so leftovers never
    exhaust the server's ledger quota."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for l in all_ledgers(q):
        if l["Name"].startswith(PREFIX) and l["State"] == "ACTIVE" and now - l["CreationDateTime"] > older_than:
            delete_quietly(q, l["Name"])


def all_ledgers(q):
    """ListLedgers, every page (botocore has no paginator for it: follow NextToken)."""
    out, kwargs = [], {}
    while True:
        page = q.list_ledgers(**kwargs)
        out.extend(page["Ledgers"])
        if not page.get("NextToken"):
            return out
        kwargs = {"NextToken": page["NextToken"]}


def run(driver, statement, *params):
    """One statement in its own transaction; the result rows as a list."""
    return driver.execute_lambda(lambda txn: list(txn.execute_statement(statement, *params)))


def doc_ids(rows):
    out = []
    for r in rows:
        assert list(r.keys()) == ["documentId"], r
        assert len(r["documentId"]) == 22, r
        out.append(str(r["documentId"]))
    return out


def ion_text(value):
    """Compact Ion text of a value, as a user would pass a blockAddress back to GetRevision."""
    return simpleion.dumps(value, binary=False, omit_version_marker=True)


def holder(strand, seq):
    return {"IonText": f'{{strandId:"{strand}",sequenceNo:{seq}}}'}


def parse_address(text):
    """A DigestTipAddress / blockAddress IonText: {strandId, sequenceNo}."""
    assert "\n" not in text, text
    v = ion(text)
    assert v.ion_type == IonType.STRUCT and sorted(v.keys()) == ["sequenceNo", "strandId"], text
    assert v["strandId"].ion_type == IonType.STRING and len(v["strandId"]) == 22, text
    assert v["sequenceNo"].ion_type == IonType.INT and v["sequenceNo"] >= 0, text
    return str(v["strandId"]), int(v["sequenceNo"])


def parse_proof(proof_holder):
    """A Proof ValueHolder: an Ion list of 32-byte blobs. Returns the hashes."""
    assert set(proof_holder) == {"IonText"}, proof_holder
    v = ion(proof_holder["IonText"])
    assert v.ion_type == IonType.LIST, proof_holder
    for h in v:
        assert h.ion_type == IonType.BLOB and len(h) == 32, proof_holder
    return [bytes(h) for h in v]


def retry_recorder(limit, jitter_ms=0):
    """A pyqldb RetryConfig whose backoff records the error code of every retry."""
    seen = []
    lock = threading.Lock()

    def backoff(attempt, error, transaction_id):
        with lock:
            seen.append(error_code(error))
        return random.uniform(0, jitter_ms * min(attempt, 8)) if jitter_ms else 0

    return RetryConfig(retry_limit=limit, custom_backoff=backoff), seen


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def qldb():
    missing = [v for v in ENDPOINT_VARS if not os.environ.get(v)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: this suite runs inside the compose test "
                    "container, against the qldb-local service", pytrace=False)
    q = boto3.client("qldb")
    # The SDK took the endpoint from the environment (never the real AWS endpoint).
    assert q.meta.endpoint_url == os.environ["AWS_ENDPOINT_URL_QLDB"].rstrip("/")
    assert boto3.client("qldb-session").meta.endpoint_url == \
        os.environ["AWS_ENDPOINT_URL_QLDB_SESSION"].rstrip("/")
    return q


@pytest.fixture(scope="module")
def data_ledger(qldb):
    """One ALLOW_ALL ledger for the data-plane tests (each test uses its own tables)."""
    sweep_stale_ledgers(qldb)
    name = new_name()
    qldb.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    wait_active(qldb, name)
    yield name
    delete_quietly(qldb, name)


@pytest.fixture
def driver(data_ledger):
    d = QldbDriver(ledger_name=data_ledger)
    yield d
    d.close()


# ---------------------------------------------------------------- 1. ledger lifecycle (boto3)

def test_ledger_lifecycle(qldb):
    created = {}
    try:
        for mode in ("ALLOW_ALL", "STANDARD"):
            name = new_name()
            created[name] = mode
            r = qldb.create_ledger(Name=name, PermissionsMode=mode, DeletionProtection=True,
                                   Tags={"suite": "compose", "mode": mode})
            assert r["Name"] == name and r["State"] in ("CREATING", "ACTIVE"), r
            assert r["PermissionsMode"] == mode and r["DeletionProtection"] is True, r
            assert r["Arn"].startswith("arn:aws:qldb:us-east-1:") and r["Arn"].endswith(f":ledger/{name}"), r

        for name, mode in created.items():
            d = wait_active(qldb, name)
            assert d["Name"] == name and d["PermissionsMode"] == mode, d
            assert d["DeletionProtection"] is True, d
            assert isinstance(d["CreationDateTime"], datetime.datetime), d

        listed = {l["Name"]: l for l in all_ledgers(qldb)}
        for name in created:
            assert listed[name]["State"] == "ACTIVE", listed[name]
            assert isinstance(listed[name]["CreationDateTime"], datetime.datetime)

        name = next(n for n, m in created.items() if m == "ALLOW_ALL")
        arn = qldb.describe_ledger(Name=name)["Arn"]

        # Tags: given at creation, added, replaced, removed.
        assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"suite": "compose", "mode": "ALLOW_ALL"}
        qldb.tag_resource(ResourceArn=arn, Tags={"team": "ledger", "mode": "changed"})
        assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {
            "suite": "compose", "mode": "changed", "team": "ledger"}
        qldb.untag_resource(ResourceArn=arn, TagKeys=["suite", "mode"])
        assert qldb.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "ledger"}

        # Deletion protection refuses DeleteLedger.
        with pytest.raises(qldb.exceptions.ResourcePreconditionNotMetException):
            qldb.delete_ledger(Name=name)
        assert qldb.describe_ledger(Name=name)["State"] == "ACTIVE"

        # UpdateLedger and UpdateLedgerPermissionsMode.
        u = qldb.update_ledger(Name=name, DeletionProtection=False)
        assert u["Name"] == name and u["Arn"] == arn and u["DeletionProtection"] is False, u
        assert qldb.describe_ledger(Name=name)["DeletionProtection"] is False
        p = qldb.update_ledger_permissions_mode(Name=name, PermissionsMode="STANDARD")
        assert p["Name"] == name and p["PermissionsMode"] == "STANDARD", p
        assert qldb.describe_ledger(Name=name)["PermissionsMode"] == "STANDARD"

        # Delete both; afterwards the ledgers are gone everywhere.
        for n in created:
            if n != name:
                qldb.update_ledger(Name=n, DeletionProtection=False)
            qldb.delete_ledger(Name=n)
        for n in created:
            err = wait_gone(qldb, n)
            assert err.response["Error"]["Code"] == "ResourceNotFoundException"
            assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        remaining = {l["Name"] for l in all_ledgers(qldb)}
        assert not remaining & set(created), remaining
        with pytest.raises(qldb.exceptions.ResourceNotFoundException):
            qldb.delete_ledger(Name=name)
    finally:
        for n in created:
            delete_quietly(qldb, n)


# ---------------------------------------------------------------- 2. transactions (pyqldb)

UTC = datetime.timezone.utc
VEHICLES = [
    {"VIN": "1N4AL11D75C109151", "Make": "Volkswagen", "Year": 2011, "Price": Decimal("12500.50"),
     "Registered": datetime.datetime(2023, 12, 31, 12, 0, 0, 123000, tzinfo=UTC)},
    {"VIN": "KM8SRDHF6EU074761", "Make": "Hyundai", "Year": 2014, "Price": Decimal("9000.00"),
     "Registered": ion("2019-06-05T"), "Tags": ["suv", "awd"]},
    {"VIN": "3HGGK5G53FM761765", "Make": "Honda", "Year": 2015, "Price": ion("1.50e3"),
     "Registered": ion("2016-02-29T23:59:59.999-08:00")},
]


def test_transactions(driver):
    def ddl(txn):
        return (list(txn.execute_statement("CREATE TABLE Vehicle")),
                list(txn.execute_statement("CREATE INDEX ON Vehicle (VIN)")))

    created, indexed = driver.execute_lambda(ddl)
    assert len(created) == 1 and list(created[0].keys()) == ["tableId"], created
    assert indexed == created, (created, indexed)  # CREATE INDEX answers the table's id
    assert "Vehicle" in list(driver.list_tables())
    assert run(driver, "SELECT VALUE i.expr FROM information_schema.user_tables AS t, t.indexes AS i "
                       "WHERE t.name = 'Vehicle'") == ["[VIN]"]

    # INSERT several documents in one statement (an Ion list parameter).
    ids = doc_ids(run(driver, "INSERT INTO Vehicle ?", VEHICLES))
    assert len(ids) == 3 and len(set(ids)) == 3

    # SELECT by the indexed field: the values come back exactly (decimal scale, timestamp precision).
    rows = run(driver, "SELECT * FROM Vehicle AS v WHERE v.VIN = ?", VEHICLES[0]["VIN"])
    assert len(rows) == 1
    doc = rows[0]
    assert doc["Price"].ion_type == IonType.DECIMAL
    assert doc["Price"].as_tuple() == Decimal("12500.50").as_tuple(), doc["Price"]
    assert doc["Registered"].ion_type == IonType.TIMESTAMP
    assert doc["Registered"] == VEHICLES[0]["Registered"]
    assert H(doc) == H(VEHICLES[0])
    hyundai = run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VEHICLES[1]["VIN"])
    assert len(hyundai) == 1 and H(hyundai[0]) == H(VEHICLES[1])
    assert hyundai[0]["Registered"].precision == TimestampPrecision.DAY
    assert list(hyundai[0]["Tags"]) == ["suv", "awd"]
    honda = run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VEHICLES[2]["VIN"])
    assert honda[0]["Price"].ion_type == IonType.FLOAT and float(honda[0]["Price"]) == 1500.0
    assert honda[0]["Registered"].utcoffset() == datetime.timedelta(hours=-8)
    assert run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", "no-such-vin") == []
    assert sorted(run(driver, "SELECT VALUE v.Year FROM Vehicle AS v WHERE v.Year > ?", 2012)) == [2014, 2015]
    by_id = run(driver, "SELECT v.Make FROM Vehicle AS v BY vid WHERE vid = ?", ids[1])
    assert [r["Make"] for r in by_id] == ["Hyundai"]

    # UPDATE: one {documentId}; the new value reads back, the rest intact.
    updated = run(driver, "UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?",
                  Decimal("11999.990"), VEHICLES[0]["VIN"])
    assert doc_ids(updated) == [ids[0]]
    after = run(driver, "SELECT * FROM Vehicle AS v WHERE v.VIN = ?", VEHICLES[0]["VIN"])
    assert after[0]["Price"].as_tuple() == Decimal("11999.990").as_tuple()
    assert after[0]["Registered"] == VEHICLES[0]["Registered"] and after[0]["Make"] == "Volkswagen"

    # DELETE: one {documentId}; the document is gone.
    assert doc_ids(run(driver, "DELETE FROM Vehicle AS v WHERE v.VIN = ?", VEHICLES[1]["VIN"])) == [ids[1]]
    assert run(driver, "SELECT * FROM Vehicle WHERE VIN = ?", VEHICLES[1]["VIN"]) == []
    assert sorted(run(driver, "SELECT VALUE v.VIN FROM Vehicle AS v")) == sorted(
        [VEHICLES[0]["VIN"], VEHICLES[2]["VIN"]])

    # A multi-statement transaction: both writes commit together.
    def two(txn):
        a = list(txn.execute_statement("UPDATE Vehicle AS v SET v.Checked = true WHERE v.VIN = ?",
                                       VEHICLES[2]["VIN"]))
        b = list(txn.execute_statement("INSERT INTO Vehicle VALUE {'VIN': 'X1', 'Year': 2020}"))
        return a, b

    a, b = driver.execute_lambda(two)
    assert doc_ids(a) == [ids[2]] and len(doc_ids(b)) == 1
    assert run(driver, "SELECT VALUE v.Checked FROM Vehicle AS v WHERE v.VIN = ?", VEHICLES[2]["VIN"]) == [True]

    # history(): every revision, with its version; a deleted document ends with a data-less revision.
    hist = run(driver, "SELECT h.metadata.version AS version, h.data.Price AS price "
                       "FROM history(Vehicle) AS h WHERE h.metadata.id = ?", ids[0])
    hist.sort(key=lambda r: r["version"])
    assert [r["version"] for r in hist] == [0, 1], hist
    assert [r["price"].as_tuple() for r in hist] == [Decimal("12500.50").as_tuple(),
                                                      Decimal("11999.990").as_tuple()]
    deleted = run(driver, "SELECT * FROM history(Vehicle) AS h WHERE h.metadata.id = ?", ids[1])
    deleted.sort(key=lambda r: r["metadata"]["version"])
    assert [r["metadata"]["version"] for r in deleted] == [0, 1], deleted
    assert H(deleted[0]["data"]) == H(VEHICLES[1])
    assert "data" not in deleted[1], deleted[1]
    for r in deleted:
        assert str(r["metadata"]["id"]) == ids[1] and len(r["metadata"]["txId"]) == 22
        assert r["metadata"]["txTime"].ion_type == IonType.TIMESTAMP
        assert len(r["hash"]) == 32 and r["blockAddress"]["sequenceNo"] > 0


# ---------------------------------------------------------------- 3. OCC retries

def counter_table(driver, table):
    run(driver, f"CREATE TABLE {table}")
    return doc_ids(run(driver, f"INSERT INTO {table} ?", {"k": "c", "total": 0}))[0]


def read_counter(driver, table):
    rows = run(driver, f"SELECT r.data.total AS v, r.metadata.version AS version "
                       f"FROM _ql_committed_{table} AS r WHERE r.data.k = 'c'")
    assert len(rows) == 1, rows
    return int(rows[0]["v"]), int(rows[0]["version"])


def test_occ_conflict_is_retried_by_the_driver(data_ledger, driver):
    """A conflict forced deterministically: on its first attempt, the lambda reads the counter,
    then another driver (another session) commits a change to the same document, then the lambda
    writes. The commit must fail with OccConflictException; pyqldb retries the whole lambda, which
    then sees the other write."""
    counter_table(driver, "Occ")
    config, retries = retry_recorder(limit=3)
    attempts = []

    with QldbDriver(ledger_name=data_ledger) as other:
        def increment(txn):
            attempts.append(1)
            v = list(txn.execute_statement("SELECT VALUE total FROM Occ WHERE k = 'c'"))[0]
            if len(attempts) == 1:
                run(other, "UPDATE Occ SET total = total + 100 WHERE k = 'c'")
            txn.execute_statement("UPDATE Occ SET total = ? WHERE k = 'c'", v + 1)
            return int(v)

        seen = driver.execute_lambda(increment, retry_config=config)

    assert len(attempts) == 2, attempts
    assert retries == ["OccConflictException"], retries
    assert seen == 100  # the retried lambda read the other transaction's committed write
    assert read_counter(driver, "Occ") == (101, 2)


def test_concurrent_increments_lose_nothing(data_ledger, driver):
    """Two drivers × 10 increments (SELECT then UPDATE in one execute_lambda) on one document."""
    counter_table(driver, "Counter")
    threads_n, per_thread = 2, 10
    config, retries = retry_recorder(limit=50, jitter_ms=5)
    errors = []
    start = threading.Barrier(threads_n)

    def increment(txn):
        v = list(txn.execute_statement("SELECT VALUE total FROM Counter WHERE k = 'c'"))[0]
        txn.execute_statement("UPDATE Counter SET total = ? WHERE k = 'c'", v + 1)

    def worker():
        try:
            with QldbDriver(ledger_name=data_ledger, retry_config=config) as d:
                start.wait(timeout=10)
                for _ in range(per_thread):
                    d.execute_lambda(increment)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not errors, errors
    # Every increment survived: value == total and exactly one revision per increment.
    assert read_counter(driver, "Counter") == (threads_n * per_thread, threads_n * per_thread)
    # Whatever was retried was an OCC conflict (how many depends on scheduling).
    assert set(retries) <= {"OccConflictException"}, retries


# ---------------------------------------------------------------- 4. proofs

def test_revision_and_block_proofs_fold_to_the_digest(qldb, data_ledger, driver):
    run(driver, "CREATE TABLE Account")
    ids = doc_ids(run(driver, "INSERT INTO Account ?", [
        {"owner": "alice", "balance": Decimal("100.00"), "opened": ion("2024-01-01T00:00:01.240Z")},
        {"owner": "bob", "balance": Decimal("5.5"), "opened": ion("2023-12T")},
    ]))
    run(driver, "UPDATE Account AS a SET a.balance = ? WHERE a.owner = ?", Decimal("75.25"), "alice")
    run(driver, "INSERT INTO Account VALUE {'owner': 'carol', 'balance': 0}")

    d = qldb.get_digest(Name=data_ledger)
    digest = d["Digest"]
    assert isinstance(digest, bytes) and len(digest) == 32, d
    tip_holder = d["DigestTipAddress"]
    strand, tip = parse_address(tip_holder["IonText"])

    # alice's latest revision, from the committed view.
    rows = run(driver, "SELECT * FROM _ql_committed_Account AS r WHERE r.data.owner = ?", "alice")
    assert len(rows) == 1
    committed = rows[0]
    doc_id = str(committed["metadata"]["id"])
    assert doc_id == ids[0] and committed["metadata"]["version"] == 1
    address = committed["blockAddress"]
    assert str(address["strandId"]) == strand and 0 < address["sequenceNo"] <= tip

    r = qldb.get_revision(Name=data_ledger, BlockAddress={"IonText": ion_text(address)},
                          DocumentId=doc_id, DigestTipAddress=tip_holder)
    assert set(r) - {"ResponseMetadata"} == {"Revision", "Proof"}, r
    assert "\n" not in r["Revision"]["IonText"]
    revision = ion(r["Revision"]["IonText"])
    proof = parse_proof(r["Proof"])
    assert bytes(revision["hash"]) == bytes(committed["hash"])
    assert H(revision["data"]) == H(committed["data"]) == H(
        {"owner": "alice", "balance": Decimal("75.25"), "opened": ion("2024-01-01T00:00:01.240Z")})
    assert H(revision["metadata"]) == H(committed["metadata"])
    # The revision hash recomputes from its own contents, and its proof folds to the digest.
    assert bytes(revision["hash"]) == dot(H(revision["metadata"]), H(revision["data"]))
    assert proof, "a revision proof is never empty"
    assert fold(revision["hash"], proof) == digest
    tampered = bytearray(revision["hash"])
    tampered[0] ^= 1
    assert fold(bytes(tampered), proof) != digest

    # The same revision without a tip: no proof, same revision.
    plain = qldb.get_revision(Name=data_ledger, BlockAddress={"IonText": ion_text(address)}, DocumentId=doc_id)
    assert "Proof" not in plain and H(ion(plain["Revision"]["IonText"])) == H(revision)

    # A document that is not in that block is refused.
    with pytest.raises(qldb.exceptions.InvalidParameterException):
        qldb.get_revision(Name=data_ledger, BlockAddress={"IonText": ion_text(address)},
                          DocumentId=ids[1], DigestTipAddress=tip_holder)

    # The block holding the revision, with a proof against the same tip.
    b = qldb.get_block(Name=data_ledger, BlockAddress=holder(strand, address["sequenceNo"]),
                       DigestTipAddress=tip_holder)
    block = ion(b["Block"]["IonText"])
    assert block["blockAddress"]["sequenceNo"] == address["sequenceNo"]
    assert fold(block["blockHash"], parse_proof(b["Proof"])) == digest
    check_block(block)
    assert bytes(revision["hash"]) in [bytes(x["hash"]) for x in block["revisions"]]
    assert any(str(x["metadata"]["id"]) == doc_id for x in block["revisions"] if "metadata" in x)

    # The tip block itself.
    b = qldb.get_block(Name=data_ledger, BlockAddress=tip_holder, DigestTipAddress=tip_holder)
    tip_block = ion(b["Block"]["IonText"])
    assert tip_block["blockAddress"]["sequenceNo"] == tip
    assert fold(tip_block["blockHash"], parse_proof(b["Proof"])) == digest

    # The whole journal: every block recomputes from its own Ion text, the chain links, and the
    # digest is the Merkle root of all block hashes 0..tip.
    previous, block_hashes = ZERO_HASH, []
    for seq in range(tip + 1):
        blk = ion(qldb.get_block(Name=data_ledger, BlockAddress=holder(strand, seq))["Block"]["IonText"])
        block_hashes.append(check_block(blk, previous_block_hash=previous))
        previous = block_hashes[-1]
    assert merkle(block_hashes) == digest

    # A later write moves the digest; the old tip still verifies against the old digest.
    run(driver, "DELETE FROM Account AS a WHERE a.owner = ?", "carol")
    later = qldb.get_digest(Name=data_ledger)
    assert parse_address(later["DigestTipAddress"]["IonText"]) == (strand, tip + 1)
    assert later["Digest"] != digest
    again = qldb.get_revision(Name=data_ledger, BlockAddress={"IonText": ion_text(address)},
                              DocumentId=doc_id, DigestTipAddress=tip_holder)
    assert fold(revision["hash"], parse_proof(again["Proof"])) == digest
    again = qldb.get_revision(Name=data_ledger, BlockAddress={"IonText": ion_text(address)},
                              DocumentId=doc_id, DigestTipAddress=later["DigestTipAddress"])
    assert fold(revision["hash"], parse_proof(again["Proof"])) == later["Digest"]
