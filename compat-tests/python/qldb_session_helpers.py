"""Helpers of the session-API compat tests (`test_session_*.py`); not a test module.

- `create_ledger` / `make_driver`: a fresh ACTIVE ledger and a pyqldb 3.2.4 `QldbDriver` on it.
- `ion`, `ion_hash`, `to_ion`: Ion values (amazon.ion simpleion) and their Ion Hash (ionhash),
  which is Ion data-model equality: precision-sensitive (130.750 != 130.75, 2020T != 2020-01-01T),
  type-sensitive (blob != clob, symbol != string) and independent of struct field order.
- `commit_digest` / `fold_statement`: the commit digest of session-api.md §3.1, computed here
  independently of pyqldb (checked against the spec's vectors at import time).
- `RawSession`: one session driven command by command with boto3's `qldb-session` client.
- `CommandLog`: records the SendCommand members a boto3 client sends (e.g. to count FetchPage).
"""

import base64
import hashlib
import os
import re
import time
from array import array

from amazon.ion import simpleion
import ionhash  # noqa: F401  (adds .ion_hash() to the simpleion value types)
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import make_client
from qldb_test_utils import ACCESS_KEY, REGION, SECRET_KEY, new_name

ID_RE = re.compile(r"^[A-Za-z0-9]{22}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9+/=-]{4,1024}$")
TX_EXPIRED_RE = re.compile("Transaction .* has expired")
IVM = b"\xe0\x01\x00\xea"
LIST_TABLES = "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'"


# ---------------------------------------------------------------- ledgers and drivers

def create_ledger(server, name=None, timeout=30.0, mode="ALLOW_ALL"):
    """Creates a ledger through the control plane and waits until it is ACTIVE."""
    name = name or new_name("s")
    c = make_client(server.endpoint)
    c.create_ledger(Name=name, PermissionsMode=mode, DeletionProtection=False)
    deadline = time.monotonic() + timeout
    while c.describe_ledger(Name=name)["State"] != "ACTIVE":
        assert time.monotonic() < deadline, f"ledger {name} never became ACTIVE"
        time.sleep(0.05)
    return name


def make_driver(server, ledger, **kwargs):
    return QldbDriver(
        ledger_name=ledger,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        **kwargs,
    )


def session_client(server):
    """A boto3 `qldb-session` client (no SDK retries) pointed at `server`."""
    return make_client(server.endpoint, service="qldb-session")


def run(driver, statement, *params):
    """Runs one statement in its own transaction; returns the result rows as a list."""
    return driver.execute_lambda(lambda txn: list(txn.execute_statement(statement, *params)))


def fill(driver, table, count, start=0, batch=40, extra=None):
    """Inserts documents {n: i, ...extra} for i in [start, start+count), at most `batch` per
    transaction (the 40-documents-per-transaction limit) with `INSERT INTO t ?` and an Ion list.
    Returns the document ids, in insertion order."""
    ids = []
    for lo in range(start, start + count, batch):
        docs = [dict(n=i, **(extra or {})) for i in range(lo, min(lo + batch, start + count))]
        rows = run(driver, f"INSERT INTO {table} ?", docs)
        assert len(rows) == len(docs), rows
        ids.extend(r["documentId"] for r in rows)
    return ids


class CommandLog:
    """Records the command member of every SendCommand a boto3 qldb-session client sends."""

    def __init__(self, client):
        self.commands = []
        client.meta.events.register("provide-client-params.qldb-session.SendCommand", self._hook)

    def _hook(self, params, **kwargs):
        self.commands.extend(k for k in params if k != "SessionToken")

    def count(self, name):
        return self.commands.count(name)


# ---------------------------------------------------------------- Ion helpers

def ion(text):
    """One Ion value from Ion text."""
    return simpleion.loads(text)


def to_ion(obj):
    """An Ion (simpleion) value: Ion values pass through, Python values are converted like pyqldb does."""
    if hasattr(obj, "ion_annotations"):
        return obj
    return simpleion.loads(simpleion.dumps(obj))


def ion_hash(value) -> bytes:
    return bytes(to_ion(value).ion_hash("SHA256"))


def ion_binary(value) -> bytes:
    """A standalone Ion binary stream (IVM + symbol table + the value), as the drivers send."""
    return simpleion.dumps(to_ion(value), binary=True)


def ion_text(value) -> str:
    return simpleion.dumps(to_ion(value), binary=False)


def decode_holder(holder):
    """Decodes a result ValueHolder, asserting the wire rules of session-api.md §1.3."""
    assert set(holder) == {"IonBinary"}, f"result ValueHolder must carry IonBinary only: {holder!r}"
    data = holder["IonBinary"]
    assert data.startswith(IVM), f"result IonBinary must start with the Ion 1.0 IVM: {data[:16]!r}"
    return simpleion.loads(data)


# ---------------------------------------------------------------- commit digest (spec §3.1)

def _signed_compare(a: bytes, b: bytes) -> int:
    sa, sb = array("b", a), array("b", b)
    for i in range(len(sa) - 1, -1, -1):
        if sa[i] != sb[i]:
            return sa[i] - sb[i]
    return 0


def dot(a: bytes, b: bytes) -> bytes:
    if not a:
        return b
    if not b:
        return a
    joined = a + b if _signed_compare(a, b) < 0 else b + a
    return hashlib.sha256(joined).digest()


def fold_statement(digest: bytes, statement: str, params) -> bytes:
    s = ion_hash(statement)
    for p in params:
        s = dot(s, ion_hash(p))
    return dot(digest, s)


def commit_digest(txid: str, statements) -> bytes:
    """statements: [(text, [params...]), ...] in send order."""
    d = ion_hash(txid)
    for text, params in statements:
        d = fold_statement(d, text, params)
    return d


# Self-check against session-api.md §3.2 (vectors D0, D2, D3, D4), so a wrong helper can never be
# mistaken for a server bug.
assert commit_digest("txid1", []).hex() == "15ec2d98f5453c038a5f3a3d550453a0fb3bd8a28f254fbd7fe2cefe52e238a6"
assert commit_digest("txid1", [("SELECT * FROM t", [1])]).hex() == \
    "7d15309ee497d27b8306b22ad2063d93e20e13eb6f8bb1a4187b10c570ef5c83"
assert commit_digest("txid1", [("SELECT * FROM t WHERE a = ? AND b = ?", [1, "x"])]).hex() == \
    "7806d536bee73969c1516c988adbae60b48d6dd24b66820475b7e4ae342708d1"
assert commit_digest("txid1", [("CREATE TABLE t", []), ("INSERT INTO t ?", [ion("{a:1}")])]).hex() == \
    "408e5a2f0ed82d7f9f38a08041c35f197c8d626ab64a665e630f32c661776f8f"


# ---------------------------------------------------------------- raw session

def random_token(nbytes=258):
    """A syntactically valid (standard, padded base64; 344 chars by default) token no server issued."""
    return base64.b64encode(os.urandom(nbytes)).decode()


class RawSession:
    """A qldb-session session driven by hand. Tracks the open transaction and its commit digest
    exactly like the drivers do (statements folded before they are sent)."""

    def __init__(self, client, ledger):
        self.client = client
        self.start_response = client.send_command(StartSession={"LedgerName": ledger})
        self.token = self.start_response["StartSession"]["SessionToken"]
        self.txid = None
        self.digest = None

    def send(self, **command):
        return self.client.send_command(SessionToken=self.token, **command)

    def start(self):
        r = self.send(StartTransaction={})
        self.txid = r["StartTransaction"]["TransactionId"]
        self.digest = ion_hash(self.txid)
        return r

    def execute(self, statement, *params, holders=None, fold=True, txid=None):
        """ExecuteStatement. `params` are Ion/Python values sent as IonBinary; `holders` replaces
        them with hand-made ValueHolders (then `params` are only used for the digest)."""
        if holders is None:
            holders = [{"IonBinary": ion_binary(p)} for p in params]
        if fold:
            self.digest = fold_statement(self.digest, statement, params)
        return self.send(ExecuteStatement={
            "TransactionId": txid or self.txid, "Statement": statement, "Parameters": holders})

    def fetch(self, token, txid=None):
        return self.send(FetchPage={"TransactionId": txid or self.txid, "NextPageToken": token})

    def values(self, statement, *params):
        """Executes and reads every page; returns the decoded values."""
        r = self.execute(statement, *params)
        page = r["ExecuteStatement"]["FirstPage"]
        out = [decode_holder(v) for v in page["Values"]]
        while page.get("NextPageToken"):
            page = self.fetch(page["NextPageToken"])["FetchPage"]["Page"]
            out.extend(decode_holder(v) for v in page["Values"])
        return out

    def commit(self, digest=None, txid=None):
        r = self.send(CommitTransaction={
            "TransactionId": txid or self.txid,
            "CommitDigest": self.digest if digest is None else digest})
        return r

    def abort(self):
        return self.send(AbortTransaction={})

    def end(self):
        return self.send(EndSession={})

    def transact(self, statement, *params):
        """StartTransaction, one statement (all pages), CommitTransaction; returns the values."""
        self.start()
        out = self.values(statement, *params)
        self.commit()
        return out
