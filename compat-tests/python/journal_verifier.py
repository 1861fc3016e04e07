"""A QLDB journal verifier written from journal-and-verification.md alone (not a test module).

Nothing here comes from the server: `dot` is §3.2 (signed bytes compared from the last byte, an
empty operand is the identity), `merkle` / `audit_path` are §3.3 / §4.3 (adjacent pairs left to
right, an odd last node promoted unchanged), `fold` is the client check of §4.2, `H` is the Ion
Hash of §3.1 as computed by PyPI `ionhash` 1.2.1, and `check_block` recomputes §3.5–§3.9 from a
block's own Ion text. Everything is checked against the spec's own vectors (§3.1, §3.2, §4.5) at
import time, so a bug here can never pass for a server bug.
"""

import base64
import hashlib

from amazon.ion import simpleion
import ionhash  # noqa: F401  (adds .ion_hash() to the simpleion value types)

ZERO_HASH = bytes(32)


# ---------------------------------------------------------------- Ion values and their hash

def ion(text):
    """One Ion value from Ion text (amazon.ion simpleion, full fidelity)."""
    return simpleion.loads(text)


def ion_values(text):
    """Every top-level value of an Ion text stream."""
    return simpleion.loads(text, single_value=False)


def to_ion(obj):
    if hasattr(obj, "ion_annotations"):
        return obj
    return simpleion.loads(simpleion.dumps(obj))


def H(value) -> bytes:
    """Ion Hash (SHA-256) of an Ion value (§3.1). A Python str is hashed as an Ion *string*."""
    return bytes(to_ion(value).ion_hash("SHA256"))


# ---------------------------------------------------------------- dot, merkle, fold

def _signed(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def hash_compare(a: bytes, b: bytes) -> int:
    """§3.2: compare from the last byte down, each byte as a signed 8-bit integer."""
    assert len(a) == 32 and len(b) == 32, (len(a), len(b))
    for i in range(31, -1, -1):
        x, y = _signed(a[i]), _signed(b[i])
        if x != y:
            return x - y
    return 0


def dot(a: bytes, b: bytes) -> bytes:
    """§3.2: an empty operand is the identity; otherwise SHA-256 of smaller ‖ larger."""
    a, b = bytes(a), bytes(b)
    if not a:
        return b
    if not b:
        return a
    return hashlib.sha256(a + b if hash_compare(a, b) < 0 else b + a).digest()


def merkle_levels(leaves):
    """Every level of the §3.3 tree, leaves first: pairs joined left to right, odd last promoted."""
    levels = [[bytes(x) for x in leaves]]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        levels.append([dot(cur[i], cur[i + 1]) if i + 1 < len(cur) else cur[i]
                       for i in range(0, len(cur), 2)])
    return levels


def merkle(leaves) -> bytes:
    """§3.3: root of the list; empty list -> empty bytes; one element -> that element."""
    return merkle_levels(leaves)[-1][0] if leaves else b""


def audit_path(leaves, index):
    """§4.3 journal_path / list path: bottom-up siblings of leaf `index` (none for a promoted node)."""
    assert 0 <= index < len(leaves), (index, len(leaves))
    path = []
    for level in merkle_levels(leaves)[:-1]:
        if index ^ 1 < len(level):
            path.append(level[index ^ 1])
        index //= 2
    return path


def fold(leaf, proof) -> bytes:
    """§4.2: candidate = fold(dot, proof, start = leaf)."""
    acc = bytes(leaf)
    for p in proof:
        acc = dot(acc, bytes(p))
    return acc


def statement_digest(text, params) -> bytes:
    """§3.4: H(statement as an Ion string), then dot with H(param) for each parameter."""
    d = H(text)
    for p in params:
        d = dot(d, H(p))
    return d


# ---------------------------------------------------------------- a block checked from its own text

def check_block(block, previous_block_hash=None):
    """Asserts §3.5–§3.9 on one parsed block; returns its blockHash.

    - entriesHash == merkle(entriesHashList); blockHash == dot(entriesHash, previousBlockHash)
    - previousBlockHash == `previous_block_hash` (the chain), when given
    - H(transactionInfo) ∈ entriesHashList (if present); H(redactionInfo) likewise
    - merkle(revision hashes) ∈ entriesHashList (if revisions present; never an empty list)
    - every revision with data: hash == dot(H(metadata), H(data))
    """
    where = f"block {block['blockAddress']['sequenceNo']}"
    ehl = [bytes(h) for h in block["entriesHashList"]]
    assert ehl, f"{where}: empty entriesHashList"
    assert all(len(h) == 32 for h in ehl), f"{where}: entriesHashList holds non-32-byte hashes"
    entries_hash = bytes(block["entriesHash"])
    assert merkle(ehl) == entries_hash, f"{where}: entriesHash != merkle(entriesHashList)"
    prev = bytes(block["previousBlockHash"])
    assert len(prev) == 32, f"{where}: previousBlockHash is {len(prev)} bytes"
    if previous_block_hash is not None:
        assert prev == bytes(previous_block_hash), f"{where}: previousBlockHash breaks the chain"
    block_hash = bytes(block["blockHash"])
    assert dot(entries_hash, prev) == block_hash, f"{where}: blockHash != dot(entriesHash, previousBlockHash)"
    if "transactionInfo" in block:
        assert H(block["transactionInfo"]) in ehl, f"{where}: H(transactionInfo) not in entriesHashList"
    if "redactionInfo" in block:
        assert H(block["redactionInfo"]) in ehl, f"{where}: H(redactionInfo) not in entriesHashList"
    if "revisions" in block:
        revisions = block["revisions"]
        assert len(revisions) > 0, f"{where}: revisions must be omitted when empty, not []"
        assert merkle([bytes(r["hash"]) for r in revisions]) in ehl, \
            f"{where}: merkle(revision hashes) not in entriesHashList"
        for k, r in enumerate(revisions):
            if "data" in r:
                assert bytes(r["hash"]) == dot(H(r["metadata"]), H(r["data"])), \
                    f"{where}: revision {k} hash != dot(H(metadata), H(data))"
    return block_hash


def revision_proof(block, k, journal_hashes, tip):
    """§4.3: the GetRevision proof of revision k of `block` against `tip`."""
    seq = block["blockAddress"]["sequenceNo"]
    hashes = [bytes(r["hash"]) for r in block["revisions"]]
    ehl = [bytes(h) for h in block["entriesHashList"]]
    return (audit_path(hashes, k) + audit_path(ehl, ehl.index(merkle(hashes)))
            + [bytes(block["previousBlockHash"])] + audit_path(journal_hashes[:tip + 1], seq))


# ---------------------------------------------------------------- self-checks (spec vectors)

def _b64(s):
    return base64.b64decode(s)


def _self_check():
    # §3.1 Ion Hash vectors (ionhash must agree with the spec's table).
    for text, digest in [
        ('"hello"', "2b04b4828341281978fe1e2e82915b797a664ff00b8df7ebf557cdf495c2bfa8"),
        ("-1", "e5f754c77b09f62697922db7f602c5754b021b9160caf8db7f58a0f3e5c6ba78"),
        ("12500.50", "e8a0f8b8ff627ecc46aab88c17ed085eb749b87f3cefdc938d59ebf59c194980"),
        ("2024-01-01T00:00:01.240Z", "f31a460b8b3454b4bd0452fd03241910b56b8134b9b732e92012886ffe43fb2e"),
        ("1963-08-19T", "100a4a5e32f24910c7965aeedd9421d245d2d007789bf7686d9e240492e2ed52"),
        ("{{3q2+7w==}}", "4b5ee0d4fb270f06a3071c86c7c5e5698a9933750891c27ffb06e379a1b5df2a"),
        ("abc", "c690af405818e2d876a4c2692f1210dbdd14ff6b238ff0a92222f3d71707ee1d"),
        ('{a:1,b:"x"}', "3c2fad67883c746973506cc34811b97e44314e0213b19a76b886c65b32d31605"),
        ('"\\x0b"', "46d3931e9ff83ac5a18860943de3ce09bb9751d50a164c1d5c00331b34f02d72"),
    ]:
        assert H(ion(text)).hex() == digest, text
    assert H("hello").hex() == "2b04b4828341281978fe1e2e82915b797a664ff00b8df7ebf557cdf495c2bfa8"

    # §3.2 dot vectors: signed comparison from the last byte; empty operand is the identity.
    a, b = bytes(31) + b"\x7f", bytes(31) + b"\x80"
    assert dot(a, b).hex() == "7035948d9d59da9d6ad20d11b3bc4a1e4c386dbe686fcadb095afb6bb462e6e3"
    assert dot(b, a) == dot(a, b)
    c, d = b"\x01" + bytes(30) + b"\xff", b"\xff" + bytes(30) + b"\x01"
    assert dot(c, d).hex() == "33b151870aa26ecc033567bb7bf0afde2fe65a48fdfce208f44f0ec09bc4ba01"
    assert dot(b"", a) == a and dot(a, b"") == a

    # §3.3 merkle: promotion of the odd last element, empty and single lists.
    x = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    assert merkle([]) == b"" and merkle(x[:1]) == x[0]
    assert merkle(x[:3]) == dot(dot(x[0], x[1]), x[2])
    assert merkle(x) == dot(dot(dot(x[0], x[1]), dot(x[2], x[3])), x[4])
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(12)]
    for n in range(1, 13):
        for i in range(n):
            assert fold(leaves[i], audit_path(leaves[:n], i)) == merkle(leaves[:n]), (n, i)

    # §4.5 worked example: revision hash, block hashes, digests and proofs.
    meta1 = ion('{id:"EmuDocVehicle000000001",version:0,txTime:2024-01-01T00:00:01.240Z,'
                'txId:"EmuTx00000000000000001"}')
    data1 = ion('{VIN:"1N4AL11D75C109151",Make:"Volkswagen",Year:2011,Price:12500.50,'
                'Registered:2023-12-31T12:00:00.000Z}')
    assert dot(H(meta1), H(data1)) == _b64("M8bdlHAjzfMf5yWZOHUmWj24RC3aAn3Sq9VEEMXGkAg=")
    b0 = _b64("umFnhc4Ng+ri2UhJbeghF5nNv+wBiG66UGT+bUIlwdg=")
    b1 = _b64("SmbEhz6KLhGNAq6YMGbKdE4NOVOij44Wm7IFlJQjH1s=")
    b2 = _b64("5OBAkGUYv5gbKk/gKzaKgYxPjpJQMpQ6smm5DjmZCv4=")
    h01 = _b64("yro2VjsMidZDk7oFIPq75g4FqmMz6fiERUEkrlaSXt8=")
    assert merkle([b0]) == b0 and merkle([b0, b1]) == h01
    assert merkle([b0, b1, b2]).hex() == "c6ce260401be066e857bb40af86e3d3c47096485ef65470595cfe354d81f714e"
    assert audit_path([b0], 0) == []
    assert audit_path([b0, b1, b2], 1) == [b0, b2] and audit_path([b0, b1, b2], 2) == [h01]
    block2 = ion(_BLOCK2)
    assert check_block(block2, previous_block_hash=b1) == b2
    assert statement_digest("UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?",
                            [ion("11999.99"), ion('"1N4AL11D75C109151"')]) \
        == bytes(block2["transactionInfo"]["statements"][1]["statementDigest"])
    proof = revision_proof(block2, 1, [b0, b1, b2], 2)
    assert proof == [_b64("u5nSY1TCTYaZpHCveXb5l6iO9C+2I2F2v1CetqDmQxM="),
                     _b64("Bwtck7HX1Hlcot/mNO5PeVWqwj7avmv9/RVJdXxm4jA="), b1, h01]
    assert fold(block2["revisions"][1]["hash"], proof) == merkle([b0, b1, b2])


# Block 2 of the spec's §4.5 worked example, verbatim.
_BLOCK2 = """
{blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},transactionId:"EmuTx00000000000000002",
 blockTimestamp:2024-01-01T00:00:02.390Z,blockHash:{{5OBAkGUYv5gbKk/gKzaKgYxPjpJQMpQ6smm5DjmZCv4=}},
 entriesHash:{{BGTDjLoZX/IiIXslmeVg93VI4+hs6/cIoR0QPcepkfw=}},previousBlockHash:{{SmbEhz6KLhGNAq6YMGbKdE4NOVOij44Wm7IFlJQjH1s=}},
 entriesHashList:[{{rLOsVHhIzt1+H7m65xvRCfDVtTnzXkL3Z6bz/wZYPBk=}},{{Bwtck7HX1Hlcot/mNO5PeVWqwj7avmv9/RVJdXxm4jA=}}],
 transactionInfo:{statements:[
   {statement:"SELECT * FROM Vehicle AS v WHERE v.VIN = ?",startTime:2024-01-01T00:00:02.300Z,statementDigest:{{PwjxV5b6FVkzCKVDTHSXxebJLBps3X0W59HEtsGm9e0=}}},
   {statement:"UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?",startTime:2024-01-01T00:00:02.320Z,statementDigest:{{RZcJbtz3nKIRzoXlne2ltACRWFJfM3fQDue5F9uS7Yw=}}},
   {statement:"INSERT INTO Vehicle ?",startTime:2024-01-01T00:00:02.350Z,statementDigest:{{PL70Ic2aVCTdb6b3dQHTEyNCaenPO2U3BS4MgRIjnL4=}}}],
  documents:{EmuDocVehicle000000001:{tableName:"Vehicle",tableId:"EmuTableVehicle0000001",statements:[1]},
             EmuDocVehicle000000002:{tableName:"Vehicle",tableId:"EmuTableVehicle0000001",statements:[2]}}},
 revisions:[
  {blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},hash:{{u5nSY1TCTYaZpHCveXb5l6iO9C+2I2F2v1CetqDmQxM=}},
   data:{VIN:"1N4AL11D75C109151",Make:"Volkswagen",Year:2011,Price:11999.99,Registered:2023-12-31T12:00:00.000Z},
   metadata:{id:"EmuDocVehicle000000001",version:1,txTime:2024-01-01T00:00:02.380Z,txId:"EmuTx00000000000000002"}},
  {blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},hash:{{0K4wQBegZkTzqBqTsMcpJ+BwTqY01Bdj0vy7WTr59a4=}},
   data:{VIN:"KM8SRDHF6EU074761",Make:"Hyundai",Year:2014,Price:9000.00,Tags:["suv","awd"],Photo:{{3q2+7w==}}},
   metadata:{id:"EmuDocVehicle000000002",version:0,txTime:2024-01-01T00:00:02.380Z,txId:"EmuTx00000000000000002"}}]}
"""

_self_check()
