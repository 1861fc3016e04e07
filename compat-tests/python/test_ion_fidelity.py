"""Ion fidelity end to end through the pinned clients (pyqldb 3.2.4, boto3 `qldb-session` and
`qldb`): a document holding every Ion type with awkward values, sent as a parameter, is stored
and read back exactly — types, decimal and timestamp precision, offsets (unknown -00:00 too),
symbols vs strings, typed nulls, blob vs clob, s-expressions, annotations, repeated field names,
nan / ±inf / -0e0 — from the user view, the committed view, history() and GetRevision
(journal-and-verification.md §1 "stored and hashed exactly as the client sent it";
partiql-dialect.md §1.1, §3.5 item 7, §3.6). tests/golden/ion/fidelity.golden covers the same
ground for literals; this file covers what the golden format cannot (nan, the hash, the drivers).

Values are compared twice: with `amazon.ion.equivalence.ion_equals` (Ion data-model equality,
which tells 1.0 from 1.00, 2007T from 2007-01-01T, symbols from strings and keeps annotations —
checked by `test_the_comparison_catches_precision_loss`) and on a canonical Ion text encoding
(struct fields sorted, since field order carries no meaning), so a loss either misses is caught.
"""

import datetime
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.equivalence import ion_equals
from amazon.ion.simple_types import (
    IonPyBytes,
    IonPyDecimal,
    IonPyDict,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPySymbol,
    IonPyText,
    IonPyTimestamp,
)

from conftest import make_client
from journal_verifier import H, dot, fold
from qldb_session_helpers import RawSession, create_ledger, ion, ion_text, make_driver, run, session_client
from test_verification import digest_of, get_revision

TABLE = "Fidelity"


# ---------------------------------------------------------------- the awkward document

def _tz(hours, minutes=0):
    return datetime.timezone(datetime.timedelta(hours=hours, minutes=minutes))


def _ts(*args, precision, tz=None, frac=None, annotations=()):
    args = tuple(args) + (1,) * (3 - len(args))  # datetime needs a month and a day
    t = Timestamp(*args, tzinfo=tz, precision=precision, fractional_seconds=frac)
    return IonPyTimestamp.from_value(IonType.TIMESTAMP, t, annotations)


def _dec(text, annotations=()):
    return IonPyDecimal.from_value(IonType.DECIMAL, Decimal(text), annotations)


def _sym(text, annotations=()):
    return IonPySymbol.from_value(IonType.SYMBOL, text, annotations)


def _sexp(items, annotations=()):
    return IonPyList.from_value(IonType.SEXP, items, annotations)


def payload():
    """One value of every Ion type, built from amazon.ion's Python types as an app would."""
    P = TimestampPrecision
    nested = IonPyDict.from_value(IonType.STRUCT, {
        "make": IonPyText.from_value(IonType.STRING, "VW", ("brand",)),
        "year": IonPyInt.from_value(IonType.INT, 2011, ("y",)),
        "parts": IonPyList.from_value(IonType.LIST, [
            _sexp([_sym("a"), 1, "s", _dec("1.10")]),
            IonPyDict.from_value(IonType.STRUCT, {}, ("empty",)),
            [[[]]],
        ], ("list_ann",)),
    }, ("vehicle", "v2"))
    return {
        "ints": [0, -1, 2 ** 63, 2 ** 64 + 1, -(2 ** 70), 123456789012345678901234567890,
                 IonPyInt.from_value(IonType.INT, 7, ("a", "b"))],
        "decimals": [_dec("130.750"), _dec("-0.0"), _dec("-0"), _dec("1.00"), _dec("0E-5"),
                     _dec("1E+100"), _dec("12345678901234567890123456789012345.5000"),
                     _dec("-7E-999"), _dec("5.00E-2", ("rate",))],
        "floats": [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1.5, 5e-324,
                   IonPyFloat.from_value(IonType.FLOAT, 2.5, ("f",))],
        "timestamps": [
            _ts(2007, precision=P.YEAR),
            _ts(2007, 2, precision=P.MONTH),
            _ts(2007, 2, 23, precision=P.DAY),
            _ts(2007, 2, 23, 12, 14, precision=P.MINUTE, tz=_tz(5, 30)),
            _ts(2007, 2, 23, 12, 14, precision=P.MINUTE),  # unknown offset -00:00
            _ts(2007, 2, 23, 12, 14, 33, precision=P.SECOND, tz=_tz(0)),
            _ts(2007, 2, 23, 12, 14, 33, precision=P.SECOND, tz=_tz(-8), frac=Decimal("0.079")),
            _ts(2007, 2, 23, 12, 14, 33, precision=P.SECOND, tz=_tz(0), frac=Decimal("0.100000")),
            _ts(2007, 2, 23, 12, 14, 33, precision=P.SECOND, frac=Decimal("0.000")),  # -00:00
            _ts(2007, 2, 23, 12, 14, 33, precision=P.SECOND, tz=_tz(-23, -59), frac=Decimal("0.123456789")),
            _ts(2007, 2, 23, 0, 30, precision=P.MINUTE, tz=_tz(5, 30), annotations=("when",)),
        ],
        "text": [_sym("sym"), "sym", _sym("null"), _sym(""), "", _sym("with space"), "\u00e9\t\0\U0001F600",
                 IonPyText.from_value(IonType.STRING, "s", ("a::b",))],
        "nulls": [IonPyNull.from_value(t, None) for t in (
            IonType.NULL, IonType.BOOL, IonType.INT, IonType.FLOAT, IonType.DECIMAL, IonType.TIMESTAMP,
            IonType.SYMBOL, IonType.STRING, IonType.CLOB, IonType.BLOB, IonType.LIST, IonType.SEXP,
            IonType.STRUCT)] + [IonPyNull.from_value(IonType.INT, None, ("n",))],
        "lobs": [b"", b"\x00\xffhello", IonPyBytes.from_value(IonType.CLOB, b"clob\x00\x7f"),
                 IonPyBytes.from_value(IonType.CLOB, b""),
                 IonPyBytes.from_value(IonType.BLOB, b"\x01", ("x",))],
        "sexps": [_sexp([]), _sexp([_sym("+"), 1, _sexp([_sym("nested"), "x"]), [1]]), _sexp([_sym("a")], ("s",))],
        "bools": [True, False],
        "nested": nested,
        "top": IonPyInt.from_value(IonType.INT, 1, ("top",)),
    }


def as_sent(value):
    """The value exactly as the driver puts it on the wire (IonBinary), decoded again."""
    return simpleion.loads(simpleion.dumps(value, binary=True))


def canon(v) -> str:
    """A canonical Ion text: struct fields sorted (field order is not data), everything else as
    amazon.ion writes it — exact for precision, offsets, types, annotations and nan / -0e0."""
    ann = "".join(f"{simpleion.dumps(_sym(a), binary=False).split(' ', 1)[1]}::"
                  for a in getattr(v, "ion_annotations", ()))
    t = getattr(v, "ion_type", None)
    if isinstance(v, IonPyNull) or v is None:
        return simpleion.dumps(v, binary=False).split(" ", 1)[1]
    if t in (IonType.LIST, IonType.SEXP):
        inner = [canon(x) for x in v]
        return ann + ("[" + ",".join(inner) + "]" if t == IonType.LIST else "(" + " ".join(inner) + ")")
    if t == IonType.STRUCT:
        fields = sorted(f"{simpleion.dumps(_sym(k), binary=False).split(' ', 1)[1]}:{canon(x)}"
                        for k, x in v.iteritems())
        return ann + "{" + ",".join(fields) + "}"
    return simpleion.dumps(v, binary=False).split(" ", 1)[1]


def assert_same(got, want, where=""):
    assert ion_equals(got, want), f"{where}: not Ion-equal\n got  {canon(got)}\n want {canon(want)}"
    assert canon(got) == canon(want), f"{where}\n got  {canon(got)}\n want {canon(want)}"


def _without(struct, *names):
    out = IonPyDict.from_value(IonType.STRUCT, {}, struct.ion_annotations)
    for k, x in struct.iteritems():
        if k not in names:
            out.add_item(k, x)
    return out


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def fx(server):
    """A ledger with table Fidelity and the payload inserted once through pyqldb (IonBinary)."""
    ledger = create_ledger(server)
    driver = make_driver(server, ledger)
    run(driver, f"CREATE TABLE {TABLE}")
    doc = {"id": "bin", "v": payload()}
    rows = run(driver, f"INSERT INTO {TABLE} ?", doc)
    assert len(rows) == 1, rows

    class Fx:
        pass
    f = Fx()
    f.server, f.ledger, f.driver = server, ledger, driver
    f.doc_id = str(rows[0]["documentId"])
    f.sent = as_sent(doc)
    yield f
    driver.close()


# ---------------------------------------------------------------- tests

def test_the_comparison_catches_precision_loss():
    """The comparison helpers must tell apart what a lossy server would merge."""
    for a, b in [("1.0", "1.00"), ("2007T", "2007-01-01T"), ("2007-01-01T00:00Z", "2007-01-01T00:00-00:00"),
                 ("2007-01-01T00:00:00.000Z", "2007-01-01T00:00:00Z"), ("sym", '"sym"'), ("a::1", "1"),
                 ("{{aGk=}}", '{{"hi"}}'), ("null.int", "null"), ("(a)", "[a]"), ("-0e0", "0e0"),
                 ("-0.0", "0.0"), ("{a:1,a:1}", "{a:1}"), ("1e0", "1.0")]:
        with pytest.raises(AssertionError):
            assert_same(ion(a), ion(b), a)
    assert_same(ion("{a:1,b:[nan,-0e0]}"), ion("{b:[nan,-0e0],a:1}"))


def test_user_view_returns_the_document_exactly(fx):
    star = run(fx.driver, f"SELECT * FROM {TABLE} AS t WHERE t.id = 'bin'")
    value = run(fx.driver, f"SELECT VALUE t.v FROM {TABLE} AS t WHERE t.id = ?", "bin")
    assert len(star) == 1 and len(value) == 1
    assert_same(star[0], fx.sent, "SELECT *")
    assert_same(value[0], fx.sent["v"], "SELECT VALUE t.v")


def test_nan_infinities_and_negative_zero_survive(fx):
    """What the golden format cannot check (it compares floats with ==)."""
    floats = run(fx.driver, f"SELECT VALUE t.v.floats FROM {TABLE} AS t WHERE t.id = 'bin'")[0]
    assert floats[0] != floats[0], floats[0]                         # nan
    assert floats[1] == float("inf") and floats[2] == float("-inf")
    assert str(floats[3]) == "-0.0" and str(floats[4]) == "0.0"       # the sign of zero
    assert all(x.ion_type == IonType.FLOAT for x in floats)
    assert floats[7] == 2.5 and floats[7].ion_annotations[0].text == "f"


def test_committed_view_and_history_hold_the_document_exactly(fx):
    committed = run(fx.driver, f"SELECT VALUE c.data FROM _ql_committed_{TABLE} AS c WHERE c.metadata.id = ?",
                    fx.doc_id)
    history = run(fx.driver, f"SELECT VALUE h.data FROM history({TABLE}) AS h WHERE h.metadata.id = ?", fx.doc_id)
    assert len(committed) == 1 and len(history) == 1
    assert_same(committed[0], fx.sent, "committed view")
    assert_same(history[0], fx.sent, "history()")


def test_committed_hash_is_the_ion_hash_of_metadata_and_data(fx):
    """journal-and-verification.md §3: revision hash = dot(H(metadata), H(data)), H = Ion Hash
    (PyPI ionhash) — of the data *as the client sent it*, so any change of precision, type or
    annotation would break it."""
    row = run(fx.driver, f"SELECT * FROM _ql_committed_{TABLE} AS c WHERE c.metadata.id = ?", fx.doc_id)[0]
    h = bytes(row["hash"])
    assert len(h) == 32
    assert h == dot(H(row["metadata"]), H(row["data"]))
    assert h == dot(H(row["metadata"]), H(fx.sent))


def test_get_revision_returns_what_the_committed_view_shows(fx):
    row = run(fx.driver, f"SELECT * FROM _ql_committed_{TABLE} AS c WHERE c.metadata.id = ?", fx.doc_id)[0]
    q = make_client(fx.server.endpoint)
    digest, strand, tip, _ = digest_of(q, fx.ledger)
    assert strand == str(row["blockAddress"]["strandId"])
    revision, proof = get_revision(q, fx.ledger, strand, int(row["blockAddress"]["sequenceNo"]), fx.doc_id, tip=tip)
    assert fold(bytes(revision["hash"]), proof) == digest
    assert bytes(revision["hash"]) == bytes(row["hash"])
    assert_same(revision["data"], row["data"], "GetRevision data")
    assert_same(revision["data"], fx.sent, "GetRevision data vs sent")
    assert_same(revision["metadata"], row["metadata"], "GetRevision metadata")
    assert_same(revision["blockAddress"], row["blockAddress"], "GetRevision blockAddress")


def test_ion_text_parameter_round_trips_like_ion_binary(fx):
    """The same document as an IonText ValueHolder through the raw qldb-session client."""
    doc = {"id": "text", "v": payload()}
    s = RawSession(session_client(fx.server), fx.ledger)
    s.start()
    text = ion_text(doc)
    assert "nan" in text and "-00:00" in text and "null.clob" in text and "{{" in text, text
    r = s.execute(f"INSERT INTO {TABLE} ?", doc, holders=[{"IonText": text}])
    assert len(r["ExecuteStatement"]["FirstPage"]["Values"]) == 1, r
    s.commit()
    s.end()
    by_text = run(fx.driver, f"SELECT * FROM {TABLE} AS t WHERE t.id = 'text'")
    by_binary = run(fx.driver, f"SELECT * FROM {TABLE} AS t WHERE t.id = 'bin'")
    assert len(by_text) == 1
    assert_same(by_text[0]["v"], by_binary[0]["v"], "IonText vs IonBinary")
    assert_same(by_text[0], as_sent(doc), "IonText vs sent")
    committed = run(fx.driver, f"SELECT * FROM _ql_committed_{TABLE} AS c WHERE c.data.id = 'text'")[0]
    assert bytes(committed["hash"]) == dot(H(committed["metadata"]), H(as_sent(doc)))


def test_update_set_keeps_an_annotated_precise_value(fx):
    run(fx.driver, f"INSERT INTO {TABLE} ?", {"id": "upd", "rate": 1})
    rate = _dec("5.00E-2", ("ann",))
    when = _ts(2007, 2, 23, 12, 14, 33, precision=TimestampPrecision.SECOND, frac=Decimal("0.100"),
               annotations=("t1", "t2"))
    rows = run(fx.driver, f"UPDATE {TABLE} AS t SET t.rate = ?, t.when = ? WHERE t.id = 'upd'", rate, when)
    assert len(rows) == 2  # one {documentId} per assignment
    got = run(fx.driver, f"SELECT t.rate, t.\"when\" FROM {TABLE} AS t WHERE t.id = 'upd'")
    assert len(got) == 1
    assert canon(got[0]["rate"]) == "ann::0.0500"
    assert canon(got[0]["when"]) == "t1::t2::2007-02-23T12:14:33.100-00:00"
    assert_same(got[0]["rate"], as_sent(rate), "rate")
    assert_same(got[0]["when"], as_sent(when), "when")
    hist = run(fx.driver, f"SELECT VALUE h.data FROM history({TABLE}) AS h WHERE h.data.id = 'upd'")
    assert sorted(canon(h.get("rate")) for h in hist) == ["1", "ann::0.0500"]
    committed = run(fx.driver, f"SELECT * FROM _ql_committed_{TABLE} AS c WHERE c.data.id = 'upd'")[0]
    assert_same(committed["data"]["rate"], as_sent(rate), "committed rate")
    assert bytes(committed["hash"]) == dot(H(committed["metadata"]), H(committed["data"]))


def test_repeated_field_names_round_trip(fx):
    doc = ion('{id: "dup", a: 1, a: 2.0, b: 3, a: x::"a", c: {d: 1, d: 1}}')
    run(fx.driver, f"INSERT INTO {TABLE} ?", doc)
    got = run(fx.driver, f"SELECT * FROM {TABLE} AS t WHERE t.id = 'dup'")
    assert len(got) == 1
    assert_same(got[0], doc, "repeated fields")
    assert [canon(x) for k, x in got[0].iteritems() if k == "a"] == ["1", "2.0", 'x::"a"']
    assert [canon(x) for x in got[0]["c"].get_all_values("d")] == ["1", "1"]
    committed = run(fx.driver, f"SELECT * FROM _ql_committed_{TABLE} AS c WHERE c.data.id = 'dup'")[0]
    assert_same(committed["data"], doc, "committed repeated fields")
    assert bytes(committed["hash"]) == dot(H(committed["metadata"]), H(doc))


def test_each_awkward_scalar_is_returned_unchanged_as_a_parameter(fx):
    """Every member of the payload, one parameter at a time, selected back without storage, and
    found again in WHERE by a parameter of the exact same value."""
    sent = fx.sent["v"]
    values = [x for k in ("ints", "decimals", "floats", "timestamps", "text", "nulls", "lobs", "sexps", "bools")
              for x in sent[k]]
    for v in values:
        got = run(fx.driver, "SELECT VALUE ? FROM << 0 >>", v)
        assert len(got) == 1, canon(v)
        assert_same(got[0], v, canon(v))


def test_ion_text_parameter_with_a_local_symbol_table(fx):
    text = '$ion_symbol_table::{symbols:["foo"]} {id:"lst", v:$10}'
    doc = ion(text)
    assert canon(doc["v"]) == "foo"
    s = RawSession(session_client(fx.server), fx.ledger)
    s.start()
    s.execute(f"INSERT INTO {TABLE} ?", doc, holders=[{"IonText": text}])
    s.commit()
    got = run(fx.driver, f"SELECT * FROM {TABLE} AS t WHERE t.id = 'lst'")
    assert len(got) == 1
    assert_same(got[0], doc, "local symbol table")
