"""Journal verification through the official clients: GetDigest, GetBlock and GetRevision with
boto3's `qldb` client (and the AWS CLI), data written with pyqldb 3.2.4
(journal-and-verification.md §1–§4).

Every proof is checked with `journal_verifier`, a verifier written from the spec's rules alone
(dot §3.2, merkle §3.3, fold §4.2, Ion Hash §3.1 via PyPI ionhash) and self-checked against the
spec's vectors at import; nothing is taken from the server. Block hashes are recomputed from each
block's own Ion text (§3.5–§3.9), and every error of §4.4 is checked with its exact message.
"""

import base64
import json
import re
import time

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, TimestampPrecision
from botocore.config import Config

from conftest import make_client
from journal_verifier import (
    H,
    ZERO_HASH,
    audit_path,
    check_block,
    dot,
    fold,
    ion,
    merkle,
    revision_proof,
    statement_digest,
)
from qldb_session_helpers import create_ledger, make_driver, run
from qldb_test_utils import dedicated_server, expect_error, new_name

ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")

MSG_PARSE = "The provided Ion value is not valid and cannot be parsed."
MSG_ADDRESS = "The provided block address is not valid."
MSG_TIP_BEYOND = ("The sequence number of the provided digest tip address is beyond the strand's "
                  "latest committed record.")
MSG_STRAND = "The Strand ID of the provided block address is not valid."
MSG_BLOCK_BEYOND = ("The sequence number of the provided block address is beyond the strand's "
                    "latest committed record.")
MSG_STRAND_MISMATCH = ("The Strand ID of the provided block address must match the Strand ID of the "
                       "provided digest tip address.")
MSG_AFTER_TIP = ("The sequence number of the provided block address must not be greater than that "
                 "of the provided digest tip address.")
MSG_DOC = "The provided document ID was not found in the block at the specified block address."

# §2.1 field order of a block and of a revision.
BLOCK_FIELDS = ["blockAddress", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
                "previousBlockHash", "entriesHashList", "transactionInfo", "redactionInfo", "revisions"]
METADATA_FIELDS = ["id", "version", "txTime", "txId"]


# ---------------------------------------------------------------- helpers

def address_text(strand, seq):
    return f'{{strandId:"{strand}",sequenceNo:{seq}}}'


def holder(strand, seq):
    return {"IonText": address_text(strand, seq)}


def payload(resp):
    return {k: v for k, v in resp.items() if k != "ResponseMetadata"}


def parse_address(text):
    """A DigestTipAddress / blockAddress IonText: exactly {strandId: string(22), sequenceNo: int}."""
    v = ion(text)
    assert v.ion_type == IonType.STRUCT, text
    assert sorted(v.keys()) == ["sequenceNo", "strandId"], text
    assert v["strandId"].ion_type == IonType.STRING and ID_RE.match(v["strandId"]), text
    assert v["sequenceNo"].ion_type == IonType.INT and v["sequenceNo"] >= 0, text
    return str(v["strandId"]), int(v["sequenceNo"])


def parse_proof(holder_):
    """A Proof ValueHolder: an Ion list of 32-byte blobs (§4.1). Returns the hashes."""
    assert set(holder_) == {"IonText"}, holder_
    v = ion(holder_["IonText"])
    assert v.ion_type == IonType.LIST, holder_
    for h in v:
        assert h.ion_type == IonType.BLOB and len(h) == 32, holder_
    return [bytes(h) for h in v]


def one_line(text):
    assert "\n" not in text, f"IonText must be compact, one line: {text[:200]!r}"
    return text


def assert_ms_utc(ts, what):
    """§1: journal timestamps are UTC with exactly millisecond precision."""
    assert ts.ion_type == IonType.TIMESTAMP, what
    assert ts.precision == TimestampPrecision.SECOND and ts.fractional_precision == 3, (what, ts)
    assert ts.utcoffset() is not None and ts.utcoffset().total_seconds() == 0, (what, ts)


def digest_of(q, name):
    r = q.get_digest(Name=name)
    assert set(payload(r)) == {"Digest", "DigestTipAddress"}, r
    assert isinstance(r["Digest"], bytes) and len(r["Digest"]) == 32, r
    strand, tip = parse_address(one_line(r["DigestTipAddress"]["IonText"]))
    return bytes(r["Digest"]), strand, tip, r["DigestTipAddress"]


def get_block(q, name, strand, seq, tip=None):
    """GetBlock; returns (parsed block, proof or None). Asserts the response members (§4.1)."""
    kw = {"DigestTipAddress": holder(strand, tip)} if tip is not None else {}
    r = q.get_block(Name=name, BlockAddress=holder(strand, seq), **kw)
    assert set(payload(r)) == ({"Block", "Proof"} if tip is not None else {"Block"}), r
    block = ion(one_line(r["Block"]["IonText"]))
    proof = parse_proof(r["Proof"]) if tip is not None else None
    return block, proof


def get_revision(q, name, strand, seq, doc_id, tip=None):
    kw = {"DigestTipAddress": holder(strand, tip)} if tip is not None else {}
    r = q.get_revision(Name=name, BlockAddress=holder(strand, seq), DocumentId=doc_id, **kw)
    assert set(payload(r)) == ({"Revision", "Proof"} if tip is not None else {"Revision"}), r
    revision = ion(one_line(r["Revision"]["IonText"]))
    proof = parse_proof(r["Proof"]) if tip is not None else None
    return revision, proof


def user_revisions(block):
    """(position, revision) of the user revisions of a block (system revisions are {hash} only)."""
    return [(k, r) for k, r in enumerate(block.get("revisions", [])) if "metadata" in r]


def unvalidated_client(server):
    """A boto3 qldb client without client-side parameter validation (to send what the model forbids)."""
    return make_client(server.endpoint, config=Config(parameter_validation=False,
                                                      retries={"max_attempts": 1, "mode": "standard"}))


# ---------------------------------------------------------------- the workload

VINS = ["1N4AL11D75C109151", "KM8SRDHF6EU074761", "3HGGK5G53FM761765", "1C4RJFAG0FC625797",
        "1HVBBAANXWH544237"]
# Documents with the Ion details a lossy journal would change (decimal scale, timestamp precision
# and offsets, blob vs clob, symbol vs string, sexp, typed nulls, big ints, escaped bytes).
VEHICLES = [
    r'{VIN:"1N4AL11D75C109151",Make:"Volkswagen",Model:"Jetta",Year:2011,Price:12500.50,'
    r'Registered:2023-12-31T12:00:00.000Z}',
    r'{VIN:"KM8SRDHF6EU074761",Make:"Hyundai",Year:2014,Price:9000.00,Tags:["suv","awd"],Photo:{{3q2+7w==}}}',
    r'{VIN:"3HGGK5G53FM761765",Make:"Honda",Year:2015,Price:1.50e3,Kind:hatchback,Built:2015T,'
    r'Bought:2016-02-29T23:59:59.999-08:00,Mileage:1180591620717411303424,Delta:-42,Notes:{{"clob text"}},'
    r'Shape:(a b 1),Recalled:null,Color:null.string}',
    r'{VIN:"1C4RJFAG0FC625797",Make:"Jeep",Year:2015,Price:0d0,Owners:{Primary:{PersonId:"p1",'
    r'Shares:[0.5,0.50,1]}},History:[{at:2018-03T,km:0},{at:2019-01-02T03:04Z,km:12000.5}]}',
    r'{VIN:"1HVBBAANXWH544237",Make:"International",Year:1998,Price:-0.0,'
    r'Note:"vt\x0b ff\x0c so\x0e",Unicode:"Gr\u00fc\u00dfe, \u6771\u4eac \U0001F697"}',
]
PERSON1 = '{PersonId:"p1",FirstName:"Raul",LastName:"Lewis",DOB:1963-08-19T,Age:51}'
PERSON2 = '{PersonId:"p2",FirstName:"Brent",LastName:"Logan",DOB:1967-07-03T,Age:40}'
REGISTRATION = ('{VIN:"1N4AL11D75C109151",LicensePlateNumber:"LEWISR261LL",State:"WA",'
                'PendingPenaltyTicketAmount:90.25,ValidFromDate:2017-08-21T,ValidToDate:2020-05-11T}')


class Journal:
    """A ledger with several tables, documents and blocks, and what the test wrote to it."""

    def __init__(self, name):
        self.name = name
        self.transactions = []   # write transactions in commit order: [(statement, [params])]
        self.written = []        # per write transaction: {doc_id: tableName}
        self.history = {}        # doc_id -> [(version, expected data or None, write tx index)]
        self.pending = {}        # docs written by the transaction being recorded

    # expected state, maintained from what we send
    def _record(self, doc_id, table, data):
        tx = len(self.transactions)  # index of the transaction being recorded
        versions = self.history.setdefault(doc_id, [])
        if versions and versions[-1][2] == tx:  # same transaction: one revision, the final state
            versions[-1] = (versions[-1][0], data, tx)
        else:
            versions.append((versions[-1][0] + 1 if versions else 0, data, tx))
        self.pending[doc_id] = table

    def inserted(self, doc_id, table, data):
        assert doc_id not in self.history
        self._record(doc_id, table, data)

    def updated(self, doc_id, table, **fields):
        data = _copy(self.current(doc_id))
        for k, v in fields.items():
            data[k] = v
        self._record(doc_id, table, _copy(data))

    def deleted(self, doc_id, table):
        self._record(doc_id, table, None)

    def current(self, doc_id):
        return self.history[doc_id][-1][1]

    def begin(self):
        self.pending = {}

    def commit(self, statements):
        self.transactions.append([(s[0], list(s[1:])) for s in statements])
        self.written.append(dict(self.pending))


def _copy(value):
    """A deep copy of an Ion value (Ion types preserved)."""
    return simpleion.loads(simpleion.dumps(value))


def ids_of(rows):
    out = []
    for r in rows:
        assert list(r.keys()) == ["documentId"], r
        out.append(str(r["documentId"]))
    return out


def build_journal(server):
    name = create_ledger(server)
    j = Journal(name)
    q = make_client(server.endpoint)
    driver = make_driver(server, name)

    def tx(*statements, effects=lambda results: None):
        """Runs `statements` ((text, *params)) in one pyqldb transaction and records them."""
        j.begin()
        results = driver.execute_lambda(
            lambda txn: [list(txn.execute_statement(s[0], *s[1:])) for s in statements])
        effects(results)
        j.commit(statements)
        return results

    try:
        tx(("CREATE TABLE Vehicle",))
        tx(("CREATE TABLE Person",), ("CREATE TABLE Registration",), ("CREATE INDEX ON Vehicle (VIN)",))
        vehicles = [ion(v) for v in VEHICLES]
        vids = []

        def inserted_vehicles(results):
            vids.extend(ids_of(results[0]))
            assert len(vids) == 5
            for doc_id, v in zip(vids, vehicles):
                j.inserted(doc_id, "Vehicle", v)
        tx(("INSERT INTO Vehicle ?", ion("[" + ",".join(VEHICLES) + "]")), effects=inserted_vehicles)

        people, regs = [], []

        def inserted_p1_r1(results):
            people.extend(ids_of(results[0]))
            regs.extend(ids_of(results[1]))
            assert len(results[2]) == 1  # the SELECT saw the vehicle
            j.inserted(people[0], "Person", ion(PERSON1))
            j.inserted(regs[0], "Registration", ion(REGISTRATION))
        tx(("INSERT INTO Person ?", ion(PERSON1)), ("INSERT INTO Registration ?", ion(REGISTRATION)),
           ("SELECT * FROM Vehicle AS v WHERE v.VIN = ?", ion(f'"{VINS[0]}"')), effects=inserted_p1_r1)

        tx(("UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?", ion("11999.99"), ion(f'"{VINS[0]}"')),
           effects=lambda r: j.updated(vids[0], "Vehicle", Price=ion("11999.99")))

        def inserted_p2(results):
            people.extend(ids_of(results[0]))
            j.inserted(people[1], "Person", ion(PERSON2))
            j.updated(people[1], "Person", Age=ion("41"))
        tx(("INSERT INTO Person ?", ion(PERSON2)),
           ("UPDATE Person AS p SET p.Age = ? WHERE p.PersonId = ?", ion("41"), ion('"p2"')),
           effects=inserted_p2)

        # A read-only transaction appends no block.
        j.before_read = digest_of(q, name)[:3]
        assert len(run(driver, "SELECT * FROM Person")) == 2
        j.after_read = digest_of(q, name)[:3]

        tx(("DELETE FROM Vehicle AS v WHERE v.VIN = ?", ion(f'"{VINS[1]}"')),
           effects=lambda r: j.deleted(vids[1], "Vehicle"))

        def checked_all(results):
            for k in (0, 2, 3, 4):
                j.updated(vids[k], "Vehicle", Checked=ion("true"))
        tx(("UPDATE Vehicle AS v SET v.Checked = true",), effects=checked_all)

        def last(results):
            j.updated(people[0], "Person", Age=ion("52"))
            j.deleted(regs[0], "Registration")
        tx(("UPDATE Person AS p SET p.Age = ? WHERE p.PersonId = ?", ion("52"), ion('"p1"')),
           ("DELETE FROM Registration AS r WHERE r.VIN = ?", ion(f'"{VINS[0]}"')), effects=last)
    finally:
        driver.close()

    j.vehicle_ids, j.person_ids, j.registration_ids = vids, people, regs
    j.digest, j.strand, j.tip, j.tip_holder = digest_of(q, name)
    j.blocks = [get_block(q, name, j.strand, seq)[0] for seq in range(j.tip + 1)]
    j.block_hashes = [bytes(b["blockHash"]) for b in j.blocks]
    # The probe used by the error tests: vehicle 0 updated in block 5.
    j.probe_seq, j.probe_doc = 5, vids[0]
    return j


@pytest.fixture(scope="module")
def journal(server):
    return build_journal(server)


# ---------------------------------------------------------------- 1. verification of everything

def test_journal_has_one_block_per_write_transaction(journal):
    """Genesis block 0, then one block per committed write transaction; reads append none."""
    assert journal.tip == len(journal.transactions) == 9
    assert len(journal.blocks) == journal.tip + 1
    assert journal.before_read == journal.after_read, "a read-only transaction moved the digest"
    for seq, block in enumerate(journal.blocks):
        assert block["blockAddress"]["sequenceNo"] == seq
        assert str(block["blockAddress"]["strandId"]) == journal.strand


def test_digest_is_the_merkle_root_of_all_block_hashes(journal):
    """§3.11: Digest(tip) = merkle([blockHash_0 … blockHash_tip])."""
    assert merkle(journal.block_hashes) == journal.digest


def test_block_hashes_recompute_from_their_own_ion_text(journal):
    """§3.5–§3.10 for every block: entriesHash, blockHash, chain links, entries membership,
    revision hashes; genesis previousBlockHash is 32 zero bytes."""
    previous = ZERO_HASH
    for block in journal.blocks:
        assert check_block(block, previous_block_hash=previous) == bytes(block["blockHash"])
        previous = bytes(block["blockHash"])


def test_every_block_proof_folds_to_the_digest(qldb, journal):
    """§4.2: fold(blockHash, Proof) == Digest for every block 0..tip against the tip; and the
    proof is the §4.3 journal path."""
    for seq in range(journal.tip + 1):
        block, proof = get_block(qldb, journal.name, journal.strand, seq, tip=journal.tip)
        assert H(block) == H(journal.blocks[seq]), f"block {seq} differs with a tip"
        assert fold(block["blockHash"], proof) == journal.digest, f"block {seq} does not verify"
        assert proof == audit_path(journal.block_hashes, seq), f"block {seq}: proof is not the §4.3 path"


def test_every_revision_proof_folds_to_the_digest(qldb, journal):
    """§4.2: fold(Revision.hash, Proof) == Digest for every user revision of the journal; the
    revision is the one in its block, and the proof has the §4.3 layout."""
    count = 0
    for block in journal.blocks:
        seq = block["blockAddress"]["sequenceNo"]
        for k, rev in user_revisions(block):
            doc_id = str(rev["metadata"]["id"])
            revision, proof = get_revision(qldb, journal.name, journal.strand, seq, doc_id, tip=journal.tip)
            assert H(revision) == H(rev), f"GetRevision {doc_id}@{seq} differs from the block's revision"
            assert fold(revision["hash"], proof) == journal.digest, f"revision {doc_id}@{seq} does not verify"
            assert proof == revision_proof(block, k, journal.block_hashes, journal.tip), \
                f"revision {doc_id}@{seq}: proof is not the §4.3 layout"
            count += 1
    assert count == sum(len(v) for v in journal.history.values()) == 16


def test_every_block_and_revision_verifies_against_every_older_tip(qldb, journal):
    """§4.3: digests of past tips stay reproducible; each (seq ≤ tip) folds to merkle(L[:tip+1])."""
    for tip in range(journal.tip + 1):
        expected = merkle(journal.block_hashes[:tip + 1])
        for seq in range(tip + 1):
            block, proof = get_block(qldb, journal.name, journal.strand, seq, tip=tip)
            assert fold(block["blockHash"], proof) == expected, f"block {seq} against tip {tip}"
            for _, rev in user_revisions(journal.blocks[seq]):
                revision, proof = get_revision(qldb, journal.name, journal.strand, seq,
                                               str(rev["metadata"]["id"]), tip=tip)
                assert fold(revision["hash"], proof) == expected, \
                    f"revision {rev['metadata']['id']}@{seq} against tip {tip}"


def test_blocks_hold_what_was_written(journal):
    """§2.1–§2.3, §3.4: block fields and order, transactionInfo (statements with digests, written
    documents), one revision per written document with the expected version and data."""
    genesis = journal.blocks[0]
    assert "transactionInfo" not in genesis and "revisions" not in genesis
    assert bytes(genesis["previousBlockHash"]) == ZERO_HASH
    table_ids = {}
    last_time = None
    for seq, block in enumerate(journal.blocks):
        where = f"block {seq}"
        names = list(block.keys())
        assert names == [f for f in BLOCK_FIELDS if f in names], f"{where}: field order {names}"
        assert {"blockAddress", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
                "previousBlockHash", "entriesHashList"} <= set(names), where
        assert block["transactionId"].ion_type == IonType.STRING and ID_RE.match(block["transactionId"]), where
        assert_ms_utc(block["blockTimestamp"], where)
        assert last_time is None or block["blockTimestamp"] >= last_time, f"{where}: time went backwards"
        last_time = block["blockTimestamp"]
        for field in ("blockHash", "entriesHash", "previousBlockHash"):
            assert block[field].ion_type == IonType.BLOB and len(block[field]) == 32, (where, field)
        if seq == 0:
            continue

        statements = journal.transactions[seq - 1]
        written = journal.written[seq - 1]
        info = block["transactionInfo"]
        assert [s for s in info.keys()] == (["statements", "documents"] if written else ["statements"]), \
            f"{where}: transactionInfo fields {list(info.keys())}"
        assert [str(s["statement"]) for s in info["statements"]] == [s for s, _ in statements], where
        for s, (text, params) in zip(info["statements"], statements):
            assert list(s.keys()) == ["statement", "startTime", "statementDigest"], where
            assert s["statement"].ion_type == IonType.STRING, where
            assert_ms_utc(s["startTime"], where)
            assert bytes(s["statementDigest"]) == statement_digest(text, params), \
                f"{where}: statementDigest of {text!r} (§3.4)"
        documents = info.get("documents", {})
        assert sorted(documents.keys()) == sorted(written), f"{where}: transactionInfo.documents"
        for doc_id, entry in documents.items():
            assert list(entry.keys()) == ["tableName", "tableId", "statements"], where
            assert str(entry["tableName"]) == written[doc_id], where
            assert ID_RE.match(entry["tableId"]), where
            assert table_ids.setdefault(written[doc_id], str(entry["tableId"])) == str(entry["tableId"]), \
                f"{where}: tableId of {written[doc_id]} changed"
            assert entry["statements"] and all(0 <= int(i) < len(statements) for i in entry["statements"]), where

        revisions = block["revisions"]
        users = user_revisions(block)
        if not written:  # DDL: system revisions only, {hash} alone
            assert revisions and all(list(r.keys()) == ["hash"] for r in revisions), where
        assert sorted(str(r["metadata"]["id"]) for _, r in users) == sorted(written), f"{where}: revisions"
        for _, r in users:
            doc_id = str(r["metadata"]["id"])
            version, data, tx = next(v for v in journal.history[doc_id] if v[2] == seq - 1)
            expected_fields = ["blockAddress", "hash", "data", "metadata"] if data is not None \
                else ["blockAddress", "hash", "metadata"]
            assert list(r.keys()) == expected_fields, f"{where}: revision {doc_id} fields {list(r.keys())}"
            assert H(r["blockAddress"]) == H(block["blockAddress"]), where
            assert list(r["metadata"].keys()) == METADATA_FIELDS, where
            assert int(r["metadata"]["version"]) == version, f"{where}: {doc_id} version"
            assert str(r["metadata"]["txId"]) == str(block["transactionId"]), where
            assert r["metadata"]["id"].ion_type == IonType.STRING and r["metadata"]["txId"].ion_type == IonType.STRING
            assert_ms_utc(r["metadata"]["txTime"], where)
            if data is not None:
                assert H(r["data"]) == H(data), f"{where}: data of {doc_id} v{version} is not what was written"


def test_deleted_revision_hash_is_the_metadata_hash(journal):
    """§3.5 [EMU] default: a delete revision (no data) has hash = H(metadata) (dot with an empty operand)."""
    deletes = [r for b in journal.blocks for _, r in user_revisions(b) if "data" not in r]
    assert len(deletes) == 2
    for r in deletes:
        assert bytes(r["hash"]) == dot(H(r["metadata"]), b"") == H(r["metadata"])


def test_revision_without_tip_has_no_proof(qldb, journal):
    """§4.1: Proof only when DigestTipAddress is given; the Revision is the committed view shape."""
    for block in journal.blocks:
        seq = block["blockAddress"]["sequenceNo"]
        for _, rev in user_revisions(block):
            revision, proof = get_revision(qldb, journal.name, journal.strand, seq, str(rev["metadata"]["id"]))
            assert proof is None
            assert H(revision) == H(rev)


# ---------------------------------------------------------------- 2. an older digest tip

def test_older_digest_verifies_older_blocks_and_revisions(server, qldb):
    name = create_ledger(server)
    with make_driver(server, name) as driver:
        run(driver, "CREATE TABLE Car")
        a = ids_of(run(driver, "INSERT INTO Car ?", ion('{n:1,tag:"a"}')))[0]
        run(driver, "UPDATE Car AS c SET c.n = 2 WHERE c.tag = 'a'")
        old_digest, strand, old_tip, old_holder = digest_of(qldb, name)
        assert old_tip == 3

        b = ids_of(run(driver, "INSERT INTO Car ?", ion('{n:10,tag:"b"}')))[0]
        run(driver, "UPDATE Car AS c SET c.n = 3 WHERE c.tag = 'a'")
        run(driver, "DELETE FROM Car AS c WHERE c.tag = 'a'")
    new_digest, new_strand, new_tip, _ = digest_of(qldb, name)
    assert new_strand == strand and new_tip == old_tip + 3 and new_digest != old_digest

    hashes = [bytes(get_block(qldb, name, strand, s)[0]["blockHash"]) for s in range(new_tip + 1)]
    assert merkle(hashes[:old_tip + 1]) == old_digest, "the old digest is not reproducible"
    assert merkle(hashes) == new_digest

    # Every block up to the old tip folds to the OLD digest against the OLD tip (the tip itself included),
    # and to the new digest against the new tip.
    for seq in range(old_tip + 1):
        r = qldb.get_block(Name=name, BlockAddress=holder(strand, seq), DigestTipAddress=old_holder)
        block = ion(r["Block"]["IonText"])
        assert fold(block["blockHash"], parse_proof(r["Proof"])) == old_digest, f"block {seq} vs old tip"
        block, proof = get_block(qldb, name, strand, seq, tip=new_tip)
        assert fold(block["blockHash"], proof) == new_digest, f"block {seq} vs new tip"
    # The old revisions of document a (inserted in block 2, updated in block 3).
    for seq, version in ((2, 0), (3, 1)):
        r = qldb.get_revision(Name=name, BlockAddress=holder(strand, seq), DocumentId=a,
                              DigestTipAddress=old_holder)
        revision = ion(r["Revision"]["IonText"])
        assert int(revision["metadata"]["version"]) == version
        assert fold(revision["hash"], parse_proof(r["Proof"])) == old_digest, f"revision a@{seq} vs old tip"
        revision, proof = get_revision(qldb, name, strand, seq, a, tip=new_tip)
        assert fold(revision["hash"], proof) == new_digest, f"revision a@{seq} vs new tip"

    # Anything committed after the old tip is refused against it (§4.4 check 7).
    later = [(old_tip + 1, b), (old_tip + 2, a), (old_tip + 3, a)]
    for seq, doc in later:
        r = expect_error(qldb.get_block, "InvalidParameterException", 400, Name=name,
                         BlockAddress=holder(strand, seq), DigestTipAddress=old_holder)
        assert r["Error"]["Message"] == MSG_AFTER_TIP
        assert r.get("ParameterName") in ("BlockAddress", "DigestTipAddress"), r
        r = expect_error(qldb.get_revision, "InvalidParameterException", 400, Name=name,
                         BlockAddress=holder(strand, seq), DocumentId=doc, DigestTipAddress=old_holder)
        assert r["Error"]["Message"] == MSG_AFTER_TIP
        assert r.get("ParameterName") in ("BlockAddress", "DigestTipAddress"), r
        # ... while the same requests verify against the new tip.
        revision, proof = get_revision(qldb, name, strand, seq, doc, tip=new_tip)
        assert fold(revision["hash"], proof) == new_digest


# ---------------------------------------------------------------- 3. errors (§4.4)

# IonText that no Ion parser accepts (checked against amazon.ion below).
NOT_ION = [
    '{strandId:"%S",sequenceNo:1',
    '{strandId:"%S" sequenceNo:1}',
    '{strandId:"%S",,sequenceNo:1}',
    '{strandId:"%S",sequenceNo:1}}',
    '{strandId:"%S",sequenceNo:01}',
    'strandId:"%S"',
    '{{{',
    '[1,',
    '"unterminated',
    '{a:b:c}',
]
# Valid Ion that is not a {strandId: string, sequenceNo: non-negative int} struct.
NOT_AN_ADDRESS = [
    "{}",
    '{strandId:"%S"}',
    "{sequenceNo:1}",
    "{strandId:1,sequenceNo:1}",
    "{strandId:'%S',sequenceNo:1}",          # a symbol, not a string
    "{strandId:null.string,sequenceNo:1}",
    '{strandId:"%S",sequenceNo:"1"}',
    '{strandId:"%S",sequenceNo:1.0}',         # decimal
    '{strandId:"%S",sequenceNo:1e0}',         # float
    '{strandId:"%S",sequenceNo:-1}',
    '{strandId:"%S",sequenceNo:null.int}',
    '["%S",1]',
    '[{strandId:"%S",sequenceNo:1}]',
    '("%S" 1)',
    '"%S"',
    "1",
    "null",
    "{{aGVsbG8=}}",
]


def test_bad_texts_are_what_they_claim():
    """Guards the tables above with the reference Ion implementation."""
    for text in NOT_ION:
        with pytest.raises(Exception):
            simpleion.loads(text.replace("%S", "A" * 22), single_value=False)
    for text in NOT_AN_ADDRESS:
        assert len(simpleion.loads(text.replace("%S", "A" * 22), single_value=False)) == 1


def call(qldb, op, journal, doc_id=None, **kwargs):
    kwargs.setdefault("Name", journal.name)
    if op == "GetRevision":
        kwargs.setdefault("DocumentId", doc_id or journal.probe_doc)
        return qldb.get_revision, kwargs
    return qldb.get_block, kwargs


def expect_invalid(qldb, op, journal, message, parameter, **kwargs):
    fn, kwargs = call(qldb, op, journal, **kwargs)
    r = expect_error(fn, "InvalidParameterException", 400, **kwargs)
    assert r["Error"]["Message"] == message, r["Error"]
    if isinstance(parameter, tuple):
        assert r.get("ParameterName") in parameter, r
    else:
        assert r.get("ParameterName") == parameter, r
    return r


OPS = ["GetBlock", "GetRevision"]


@pytest.mark.parametrize("op", OPS)
def test_probe_requests_succeed(qldb, journal, op):
    """The valid requests the error tests start from (so each error has exactly one cause)."""
    fn, kwargs = call(qldb, op, journal, BlockAddress=holder(journal.strand, journal.probe_seq),
                      DigestTipAddress=journal.tip_holder)
    r = fn(**kwargs)
    leaf = ion(r["Block" if op == "GetBlock" else "Revision"]["IonText"])
    leaf_hash = leaf["blockHash"] if op == "GetBlock" else leaf["hash"]
    assert fold(leaf_hash, parse_proof(r["Proof"])) == journal.digest


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("member", ["BlockAddress", "DigestTipAddress"])
@pytest.mark.parametrize("text, message",
                         [(t, MSG_PARSE) for t in NOT_ION] + [(t, MSG_ADDRESS) for t in NOT_AN_ADDRESS],
                         ids=[f"not-ion-{i}" for i in range(len(NOT_ION))]
                         + [f"not-address-{i}" for i in range(len(NOT_AN_ADDRESS))])
def test_malformed_address(qldb, journal, op, member, text, message):
    """§4.4 checks 1–2, for both address members, with ParameterName naming the member."""
    bad = {"IonText": text.replace("%S", journal.strand)}
    good = holder(journal.strand, journal.probe_seq)
    kwargs = {"BlockAddress": bad} if member == "BlockAddress" else \
        {"BlockAddress": good, "DigestTipAddress": bad}
    expect_invalid(qldb, op, journal, message, member, **kwargs)


@pytest.mark.parametrize("op", OPS)
def test_block_address_beyond_the_tip(qldb, journal, op):
    """§4.4 check 5, without a digest tip, and with one (check 5 precedes check 7)."""
    for seq in (journal.tip + 1, journal.tip + 1000, 2 ** 63 - 1):
        expect_invalid(qldb, op, journal, MSG_BLOCK_BEYOND, "BlockAddress",
                       BlockAddress=holder(journal.strand, seq))
    expect_invalid(qldb, op, journal, MSG_BLOCK_BEYOND, "BlockAddress",
                   BlockAddress=holder(journal.strand, journal.tip + 1), DigestTipAddress=journal.tip_holder)


@pytest.mark.parametrize("op", OPS)
def test_digest_tip_beyond_the_tip(qldb, journal, op):
    """§4.4 check 3; it comes before the block address checks 4 and 5."""
    for seq in (journal.tip + 1, 2 ** 63 - 1):
        beyond = holder(journal.strand, seq)
        expect_invalid(qldb, op, journal, MSG_TIP_BEYOND, "DigestTipAddress",
                       BlockAddress=holder(journal.strand, 0), DigestTipAddress=beyond)
        expect_invalid(qldb, op, journal, MSG_TIP_BEYOND, "DigestTipAddress",
                       BlockAddress=holder(journal.strand, journal.tip + 5), DigestTipAddress=beyond)
        expect_invalid(qldb, op, journal, MSG_TIP_BEYOND, "DigestTipAddress",
                       BlockAddress=holder("A" * 22, 0), DigestTipAddress=beyond)


def other_strand(journal):
    s = "Zz0" + journal.strand[3:]
    assert s != journal.strand and ID_RE.match(s)
    return s


@pytest.mark.parametrize("op", OPS)
def test_unknown_strand_id(qldb, journal, op):
    """§4.4 check 4: a well-formed strandId that is not this ledger's strand (no digest tip)."""
    for strand in (other_strand(journal), "A" * 22):
        expect_invalid(qldb, op, journal, MSG_STRAND, "BlockAddress", BlockAddress=holder(strand, 1))


@pytest.mark.parametrize("op", OPS)
def test_unknown_block_strand_with_a_valid_tip(qldb, journal, op):
    """§4.4 in order: check 4 (block strandId unknown) comes before check 6 (mismatch with the tip)."""
    expect_invalid(qldb, op, journal, MSG_STRAND, "BlockAddress",
                   BlockAddress=holder(other_strand(journal), journal.probe_seq),
                   DigestTipAddress=journal.tip_holder)


@pytest.mark.parametrize("op", OPS)
def test_strand_mismatch_between_block_and_tip(qldb, journal, op):
    """§4.4 check 6: a valid block address whose strandId differs from the digest tip's strandId.
    The spec lists no separate "digest tip strand is not valid" error; the mismatch message applies."""
    expect_invalid(qldb, op, journal, MSG_STRAND_MISMATCH, ("BlockAddress", "DigestTipAddress"),
                   BlockAddress=holder(journal.strand, journal.probe_seq),
                   DigestTipAddress=holder(other_strand(journal), journal.tip))


@pytest.mark.parametrize("op", OPS)
def test_block_after_the_digest_tip(qldb, journal, op):
    """§4.4 check 7 (equality is allowed: see the proof tests)."""
    for seq, tip in ((journal.probe_seq, journal.probe_seq - 1), (journal.probe_seq, 0)):
        expect_invalid(qldb, op, journal, MSG_AFTER_TIP, ("BlockAddress", "DigestTipAddress"),
                       BlockAddress=holder(journal.strand, seq), DigestTipAddress=holder(journal.strand, tip))


def test_document_not_in_the_block(qldb, journal):
    """§4.4 check 8, with and without a digest tip."""
    j = journal
    vehicle_table_id = str(next(iter(j.blocks[3]["transactionInfo"]["documents"].values()))["tableId"])
    cases = [
        (j.probe_seq, j.vehicle_ids[1]),      # exists, but written in another block
        (j.probe_seq, j.person_ids[0]),       # another table
        (j.probe_seq, "A" * 22),              # never existed
        (j.probe_seq, "A" * 21 + "-"),        # '-' is in the UniqueId alphabet
        (0, j.probe_doc),                     # the genesis block has no revisions
        (1, vehicle_table_id),                # CREATE TABLE: a system revision, not a document
        (1, j.probe_doc),
    ]
    for seq, doc_id in cases:
        for tip in ({}, {"DigestTipAddress": j.tip_holder}):
            expect_invalid(qldb, "GetRevision", j, MSG_DOC, "DocumentId", doc_id=doc_id,
                           BlockAddress=holder(j.strand, seq), **tip)
    # The address checks come first (§4.4 order: check 8 is last).
    expect_invalid(qldb, "GetRevision", j, MSG_BLOCK_BEYOND, "BlockAddress", doc_id="A" * 22,
                   BlockAddress=holder(j.strand, j.tip + 1))
    expect_invalid(qldb, "GetRevision", j, MSG_AFTER_TIP, ("BlockAddress", "DigestTipAddress"),
                   doc_id="A" * 22, BlockAddress=holder(j.strand, j.probe_seq), DigestTipAddress=holder(j.strand, 1))


@pytest.mark.parametrize("doc_id, constraint", [
    ("A" * 21, "Member must have length greater than or equal to 22"),
    ("A" * 23, "Member must have length less than or equal to 22"),
    ("", "Member must have length greater than or equal to 22"),
    ("A" * 21 + "!", "Member must satisfy regular expression pattern: ^[A-Za-z-0-9]+$"),
    ("A" * 21 + "_", "Member must satisfy regular expression pattern: ^[A-Za-z-0-9]+$"),
    ("\u00c4" + "A" * 21, "Member must satisfy regular expression pattern: ^[A-Za-z-0-9]+$"),
], ids=["21-chars", "23-chars", "empty", "bang", "underscore", "non-ascii"])
def test_malformed_document_id(server, journal, doc_id, constraint):
    """§1/§4.4: DocumentId is a UniqueId (22 chars of ^[A-Za-z-0-9]+$); a malformed one is a
    validation error (sent without boto3's client-side validation, which checks the length)."""
    q = unvalidated_client(server)
    r = expect_error(q.get_revision, "InvalidParameterException", 400, Name=journal.name,
                     BlockAddress=holder(journal.strand, journal.probe_seq), DocumentId=doc_id)
    msg = r["Error"]["Message"]
    assert msg.startswith("1 validation error detected: Value '"), msg
    assert f"at 'documentId' failed to satisfy constraint: {constraint}" in msg, msg
    assert r.get("ParameterName") == "DocumentId", r


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("block_address", [None, {}], ids=["absent", "no-IonText"])
def test_missing_block_address(server, journal, op, block_address):
    """BlockAddress is required (boto3 would refuse to send this; validation is switched off)."""
    q = unvalidated_client(server)
    kwargs = {"Name": journal.name}
    if block_address is not None:
        kwargs["BlockAddress"] = block_address
    if op == "GetRevision":
        kwargs["DocumentId"] = journal.probe_doc
    fn = q.get_block if op == "GetBlock" else q.get_revision
    r = expect_error(fn, "InvalidParameterException", 400, **kwargs)
    assert r.get("ParameterName") == "BlockAddress", r
    if block_address is None:
        assert r["Error"]["Message"] == ("1 validation error detected: Value null at 'blockAddress' "
                                         "failed to satisfy constraint: Member must not be null"), r


def test_missing_document_id(server, journal):
    q = unvalidated_client(server)
    r = expect_error(q.get_revision, "InvalidParameterException", 400, Name=journal.name,
                     BlockAddress=holder(journal.strand, journal.probe_seq))
    assert r.get("ParameterName") == "DocumentId", r
    assert r["Error"]["Message"] == ("1 validation error detected: Value null at 'documentId' "
                                     "failed to satisfy constraint: Member must not be null"), r


def ledger_calls(q, name, strand="A" * 22):
    return [
        ("GetDigest", q.get_digest, {"Name": name}),
        ("GetBlock", q.get_block, {"Name": name, "BlockAddress": holder(strand, 0)}),
        ("GetBlock+tip", q.get_block, {"Name": name, "BlockAddress": holder(strand, 0),
                                       "DigestTipAddress": holder(strand, 0)}),
        ("GetRevision", q.get_revision, {"Name": name, "BlockAddress": holder(strand, 0),
                                         "DocumentId": "A" * 22}),
    ]


def test_unknown_ledger(qldb):
    name = new_name("nope")
    for op, fn, kwargs in ledger_calls(qldb, name):
        r = expect_error(fn, "ResourceNotFoundException", 404, **kwargs)
        assert r.get("ResourceType") == "LEDGER" and r.get("ResourceName") == name, (op, r)


def test_bad_ledger_name(qldb):
    for op, fn, kwargs in ledger_calls(qldb, "bad_name!"):
        r = expect_error(fn, "InvalidParameterException", 400, **kwargs)
        assert r.get("ParameterName") == "Name", (op, r)


def test_ledger_still_creating():
    """§4.4: a CREATING ledger → ResourcePreconditionNotMetException (412)."""
    with dedicated_server(["--ledger-create-delay-ms", "60000"]) as s:
        q = make_client(s.endpoint)
        name = new_name("slow")
        q.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
        assert q.describe_ledger(Name=name)["State"] == "CREATING"
        for op, fn, kwargs in ledger_calls(q, name):
            expect_error(fn, "ResourcePreconditionNotMetException", 412, **kwargs)


def test_ledger_being_deleted():
    """§4.4: a DELETING ledger → ResourceNotFoundException (404)."""
    with dedicated_server(["--ledger-delete-delay-ms", "60000"]) as s:
        q = make_client(s.endpoint)
        name = create_ledger(s)
        digest, strand, tip, _ = digest_of(q, name)
        q.delete_ledger(Name=name)
        assert q.describe_ledger(Name=name)["State"] == "DELETING"
        for op, fn, kwargs in ledger_calls(q, name, strand):
            r = expect_error(fn, "ResourceNotFoundException", 404, **kwargs)
            assert r.get("ResourceName") == name, (op, r)


def address_variants(strand, seq):
    return [
        f'{{ sequenceNo: {seq}, strandId: "{strand}" }}',
        f'{{strandId: "{strand}", sequenceNo:{seq}}}',           # the DMV samples' format
        f'\n  {{\n    strandId : "{strand}" ,\n    sequenceNo : {seq}\n  }}\n',
        f'{{"strandId":"{strand}","sequenceNo":{seq}}}',       # JSON-style quoted field names
        f"{{'sequenceNo':{seq},'strandId':\"{strand}\"}}",     # quoted-symbol field names
        f'/* copied */ {{strandId:"{strand}", sequenceNo:{hex(seq)}}} // hex int',
        f'$ion_1_0 {{strandId:"{strand}",sequenceNo:{seq}}}',  # simpleion.dumps(..., binary=False)
    ]


@pytest.mark.parametrize("variant", range(7))
def test_address_text_variants_are_accepted(qldb, journal, variant):
    """§4.1: IonText is parsed as Ion: any field order, whitespace, comments, quoting, int notation."""
    j = journal
    block_text = address_variants(j.strand, j.probe_seq)[variant]
    tip_text = address_variants(j.strand, j.tip)[variant]
    r = qldb.get_block(Name=j.name, BlockAddress={"IonText": block_text}, DigestTipAddress={"IonText": tip_text})
    block = ion(r["Block"]["IonText"])
    assert H(block) == H(j.blocks[j.probe_seq])
    assert fold(block["blockHash"], parse_proof(r["Proof"])) == j.digest
    r = qldb.get_revision(Name=j.name, BlockAddress={"IonText": block_text}, DocumentId=j.probe_doc,
                          DigestTipAddress={"IonText": tip_text})
    revision = ion(r["Revision"]["IonText"])
    assert str(revision["metadata"]["id"]) == j.probe_doc
    assert fold(revision["hash"], parse_proof(r["Proof"])) == j.digest
    # The tip address exactly as GetDigest returned it works too.
    r = qldb.get_block(Name=j.name, BlockAddress={"IonText": block_text}, DigestTipAddress=j.tip_holder)
    assert fold(ion(r["Block"]["IonText"])["blockHash"], parse_proof(r["Proof"])) == j.digest


# ---------------------------------------------------------------- 4. wire shape

def test_wire_shape(qldb, journal):
    """§4.1: Digest is 32 bytes; DigestTipAddress is {strandId(22), sequenceNo}; Proof only with a
    tip, as an Ion list of 32-byte blobs; IonText compact."""
    r = qldb.get_digest(Name=journal.name)
    assert set(payload(r)) == {"Digest", "DigestTipAddress"}
    assert isinstance(r["Digest"], bytes) and len(r["Digest"]) == 32
    assert set(r["DigestTipAddress"]) == {"IonText"}
    assert parse_address(r["DigestTipAddress"]["IonText"]) == (journal.strand, journal.tip)
    assert r["Digest"] == journal.digest

    r = qldb.get_block(Name=journal.name, BlockAddress=holder(journal.strand, 2))
    assert set(payload(r)) == {"Block"} and set(r["Block"]) == {"IonText"}
    r = qldb.get_revision(Name=journal.name, BlockAddress=holder(journal.strand, journal.probe_seq),
                          DocumentId=journal.probe_doc)
    assert set(payload(r)) == {"Revision"} and set(r["Revision"]) == {"IonText"}
    r = qldb.get_block(Name=journal.name, BlockAddress=holder(journal.strand, 2),
                       DigestTipAddress=journal.tip_holder)
    assert set(payload(r)) == {"Block", "Proof"}
    proof = parse_proof(r["Proof"])
    assert proof and one_line(r["Proof"]["IonText"]).startswith("[")


def test_fresh_ledger_genesis_block_and_empty_proof(server, qldb):
    """§3.10/§4.1: a new ledger's tip is the genesis block 0; GetBlock seq == tip == 0 gives the
    proof [] whose fold is the genesis blockHash == Digest."""
    name = create_ledger(server)
    digest, strand, tip, tip_holder = digest_of(qldb, name)
    assert tip == 0
    r = qldb.get_block(Name=name, BlockAddress=holder(strand, 0), DigestTipAddress=tip_holder)
    assert r["Proof"]["IonText"].strip() == "[]"
    assert parse_proof(r["Proof"]) == []
    block = ion(r["Block"]["IonText"])
    assert check_block(block, previous_block_hash=ZERO_HASH) == bytes(block["blockHash"])
    assert bytes(block["blockHash"]) == fold(block["blockHash"], []) == digest == merkle([digest])
    assert "revisions" not in block and "transactionInfo" not in block
    assert str(block["blockAddress"]["strandId"]) == strand
    # No revisions to look up.
    r = expect_error(qldb.get_revision, "InvalidParameterException", 400, Name=name,
                     BlockAddress=holder(strand, 0), DocumentId="A" * 22, DigestTipAddress=tip_holder)
    assert r["Error"]["Message"] == MSG_DOC and r.get("ParameterName") == "DocumentId", r
    # The digest does not move without writes.
    assert digest_of(qldb, name)[:3] == (digest, strand, 0)


# ---------------------------------------------------------------- 5. AWS CLI

def test_cli_get_digest_and_get_block(server, qldb, aws):
    name = create_ledger(server)
    with make_driver(server, name) as driver:
        run(driver, "CREATE TABLE T")
        run(driver, "INSERT INTO T ?", ion("{a:1}"))
    code, out, err = aws("qldb", "get-digest", "--name", name)
    assert code == 0, err
    assert isinstance(out, dict) and set(out) == {"Digest", "DigestTipAddress"}, out
    digest = base64.b64decode(out["Digest"], validate=True)
    assert len(digest) == 32
    strand, tip = parse_address(out["DigestTipAddress"]["IonText"])
    assert tip == 2
    assert digest == qldb.get_digest(Name=name)["Digest"]

    code, out, err = aws("qldb", "get-block", "--name", name,
                         "--block-address", json.dumps(holder(strand, 1)),
                         "--digest-tip-address", json.dumps(out["DigestTipAddress"]))
    assert code == 0, err
    assert set(out) == {"Block", "Proof"}, out
    block = ion(out["Block"]["IonText"])
    assert fold(block["blockHash"], parse_proof(out["Proof"])) == digest


# ---------------------------------------------------------------- idempotence

def test_digest_is_stable_while_idle(qldb, journal):
    """GetDigest is a pure read: repeated calls give the same digest and tip."""
    first = digest_of(qldb, journal.name)[:3]
    time.sleep(0.2)
    assert digest_of(qldb, journal.name)[:3] == first == (journal.digest, journal.strand, journal.tip)
