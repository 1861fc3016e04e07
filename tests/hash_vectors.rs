//! The Ion Hash, dot, merkle and commit-digest vectors of the shared specs
//! (session-api.md §3.2–3.3, journal-and-verification.md §3.1–3.3), byte for byte.

use num_bigint::{BigInt, BigUint};
use qldb_local::ion::hash::{ion_hash, serialize};
use qldb_local::ion::{Data, Decimal, IonType, Precision, Timestamp, Value};
use qldb_local::journal::hash::{dot, merkle, statement_digest, CommitDigest};
use sha2::{Digest, Sha256};

fn h(v: &Value) -> String {
    hex::encode(ion_hash(v))
}

fn s(v: &Value) -> String {
    let mut out = Vec::new();
    serialize(v, &mut out);
    hex::encode(out)
}

fn dec(coefficient: i64, exponent: i64) -> Value {
    Data::Decimal(Decimal::new(BigInt::from(coefficient), exponent)).into()
}

fn neg_zero_dec(exponent: i64) -> Value {
    Data::Decimal(Decimal {
        negative: true,
        magnitude: BigUint::from(0u8),
        exponent,
    })
    .into()
}

#[allow(clippy::too_many_arguments)]
fn ts(
    precision: Precision,
    ymd: (u16, u8, u8),
    hms: (u8, u8, u8),
    fraction: Option<(u64, i64)>,
    offset: Option<i16>,
) -> Value {
    Data::Timestamp(Timestamp {
        year: ymd.0,
        month: ymd.1,
        day: ymd.2,
        hour: hms.0,
        minute: hms.1,
        second: hms.2,
        fraction: fraction.map(|(c, e)| (BigUint::from(c), e)),
        offset_minutes: offset,
        precision,
    })
    .into()
}

fn table() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    use Precision::*;
    vec![
        (
            "null",
            Value::null(),
            "0b0f0e",
            "0fb06b6183c21379529fdd45d6af4aba731ac6f081ef9e6c1c94b1fb26177304",
        ),
        (
            "null.string",
            Data::Null(IonType::String).into(),
            "0b8f0e",
            "a54abfe9fc39f5ab44ae80412ad4b9d700f99205dc2008153a1d289ef6d730fc",
        ),
        (
            "null.struct",
            Data::Null(IonType::Struct).into(),
            "0bdf0e",
            "87451a2e7d09b504b2d83223928095d8fc15dbf053f16bfaf30fa0579c374155",
        ),
        (
            "true",
            Data::Bool(true).into(),
            "0b110e",
            "cee54499d5f362b272fbd8ee6480ff547a6dc4e2d9e12733459f820e70305017",
        ),
        (
            "false",
            Data::Bool(false).into(),
            "0b100e",
            "85ed3ab0dcf003e32c9871c0220ff79fe2a1d5f0c95101670772d7dea946a267",
        ),
        (
            "0",
            Value::int(0),
            "0b200e",
            "a3c7def97b35b3fb34db4682fff002d3da3937011bd3722947f52aa94b8d5931",
        ),
        (
            "1",
            Value::int(1),
            "0b20010e",
            "f089f64ca73b9b160d33f19b07f8d0c97d4e8e4215c0b6b8b836dedcfb65929a",
        ),
        (
            "-1",
            Value::int(-1),
            "0b30010e",
            "e5f754c77b09f62697922db7f602c5754b021b9160caf8db7f58a0f3e5c6ba78",
        ),
        (
            "255",
            Value::int(255),
            "0b20ff0e",
            "325e23e08b5bc76e9ccfaafad9ebfaf402c086e66f6be929f98441eeaed6e253",
        ),
        (
            "256",
            Value::int(256),
            "0b2001000e",
            "d38ea0ff87af07752710ce1f27ddda202e00f972848358e04a7b89a6f5afc9a9",
        ),
        (
            "2^64",
            Value::int(BigInt::from(1u128 << 64)),
            "0b200100000000000000000e",
            "48ce2cc677c523f31ccc347ec247e995665c2c566f04f52375e1d6b1a27f3d48",
        ),
        (
            "0e0",
            Data::Float(0.0).into(),
            "0b400e",
            "de70695f4fed6bafe58eedc3857bdf670e08647067a1cbc03d2cd7a73c0bd661",
        ),
        (
            "-0e0",
            Data::Float(-0.0).into(),
            "0b4080000000000000000e",
            "56325d7bb2990767480cc452993058d2b40ce5537fea1a54f932ae0b4a04f503",
        ),
        (
            "1.5e0",
            Data::Float(1.5).into(),
            "0b403ff80000000000000e",
            "565a79d80d56bc336800a2e528680cf0c98547f1f8ca88ff228473727a7c417d",
        ),
        (
            "nan",
            Data::Float(f64::NAN).into(),
            "0b407ff80000000000000e",
            "ed865017dd3f6d06e57babc02ee8c2d01538adb6316cd47163f4d813da2b989d",
        ),
        (
            "+inf",
            Data::Float(f64::INFINITY).into(),
            "0b407ff00000000000000e",
            "9985ead983f1939d381b22e30678e09c74369b7707dc3f17c2fd5e6ce424d463",
        ),
        (
            "0d0",
            dec(0, 0),
            "0b500e",
            "2c5827b6d77a3117a155eb699e265685492e191b71be6ff93694ff7fc9ddb646",
        ),
        (
            "-0d0",
            neg_zero_dec(0),
            "0b5080800e",
            "e595862b245122ca6aabd69dbe6e522bbb615b11521f962ca774a5e827e387ad",
        ),
        (
            "1.5",
            dec(15, -1),
            "0b50c10f0e",
            "0df8d34e9d22ae221a4b80648dfc49f3a0c89ff82174e45b5cd0f617f467629b",
        ),
        (
            "1.50",
            dec(150, -2),
            "0b50c200960e",
            "5724f2063f37109ccfe9dac886f250f4863291ec56f7991e2518316fc1ade658",
        ),
        (
            "127.5",
            dec(1275, -1),
            "0b50c104fb0e",
            "408ae93bb08ff9d6a1d71b39905d029b22deebb846d7fed1630ced7c69c9ea1d",
        ),
        (
            "12500.50",
            dec(1250050, -2),
            "0b50c21313020e",
            "e8a0f8b8ff627ecc46aab88c17ed085eb749b87f3cefdc938d59ebf59c194980",
        ),
        (
            "2020-01-01T",
            ts(Day, (2020, 1, 1), (0, 0, 0), None, None),
            "0b60c00fe481810e",
            "06f7c436be5c1770afcc46141d7c64a38a2094749ab392ca14dd823fe7301f6e",
        ),
        (
            "2020-01-01T00:00:00Z",
            ts(Second, (2020, 1, 1), (0, 0, 0), None, Some(0)),
            "0b60800fe481818080800e",
            "b1c78fb1974cc52d09cdfd2d9b0b22afb22b9eaad5b6d62137b4ac670f9e8ab9",
        ),
        (
            "2020-01-01T00:00:00.000Z",
            ts(Second, (2020, 1, 1), (0, 0, 0), Some((0, -3)), Some(0)),
            "0b60800fe48181808080c30e",
            "8585caa9191363627b0f100488da2d78365f3cfe322bbc8a87299f2fe413ccd0",
        ),
        // Fields are stored in local time: 00:00 at -08:00 is 08:00 UTC.
        (
            "2020-01-01T00:00:00-08:00",
            ts(Second, (2020, 1, 1), (8, 0, 0), None, Some(-480)),
            "0b6043e00fe481818880800e",
            "cb419d7483d0654a63840936790b24f94bd9ab203198bd5c151f9eafd6d502f9",
        ),
        (
            "2024-01-01T00:00:01.240Z",
            ts(Second, (2024, 1, 1), (0, 0, 1), Some((240, -3)), Some(0)),
            "0b60800fe88181808081c300f00e",
            "f31a460b8b3454b4bd0452fd03241910b56b8134b9b732e92012886ffe43fb2e",
        ),
        (
            "2019-12-11T07:20:51.245Z",
            ts(
                Second,
                (2019, 12, 11),
                (7, 20, 51),
                Some((245, -3)),
                Some(0),
            ),
            "0b60800fe38c8b8794b3c300f50e",
            "02f39409e675382d6c9fcda4187f29c8a3c1259397978bb2340716838b6330f8",
        ),
        (
            "1963-08-19T",
            ts(Day, (1963, 8, 19), (0, 0, 0), None, None),
            "0b60c00fab88930e",
            "100a4a5e32f24910c7965aeedd9421d245d2d007789bf7686d9e240492e2ed52",
        ),
        (
            "\"x\"",
            Value::string("x"),
            "0b80780e",
            "52fcb708306dac99324c4b5e4f326cb5fece61b9a110f9cca86891a2fd84737f",
        ),
        (
            "\"hello\"",
            Value::string("hello"),
            "0b8068656c6c6f0e",
            "2b04b4828341281978fe1e2e82915b797a664ff00b8df7ebf557cdf495c2bfa8",
        ),
        (
            "'sym'",
            Value::symbol("sym"),
            "0b7073796d0e",
            "ef28c27cf58b1cd9c6a1793a7157fcf5d037f162bbb797b39cc45e3729670e6a",
        ),
        (
            "abc",
            Value::symbol("abc"),
            "0b706162630e",
            "c690af405818e2d876a4c2692f1210dbdd14ff6b238ff0a92222f3d71707ee1d",
        ),
        (
            "blob hello",
            Value::blob(b"hello".to_vec()),
            "0ba068656c6c6f0e",
            "da20f4be16236f28f09fb736dac5ef9b1c5bb403f2bcb6850d191a46926d0729",
        ),
        (
            "blob deadbeef",
            Value::blob(vec![0xde, 0xad, 0xbe, 0xef]),
            "0ba0deadbeef0e",
            "4b5ee0d4fb270f06a3071c86c7c5e5698a9933750891c27ffb06e379a1b5df2a",
        ),
        (
            "clob",
            Data::Clob(b"clob".to_vec()).into(),
            "0b90636c6f620e",
            "7ee47ca7b174cf03a00d51ccd081fe02d4ccb6b1e4f215336e9b661e3a05b22c",
        ),
        (
            "[]",
            Value::list(vec![]),
            "0bb00e",
            "1166d9e681e0664f6c6e150388d4c68174abc81629724afb8ba0381969b946c6",
        ),
        (
            "[1,2]",
            Value::list(vec![Value::int(1), Value::int(2)]),
            "0bb00b20010e0b20020e0e",
            "694ff15928653dadac73597bef40f8af664a5aa1d0331e7218f4f2562ea445a6",
        ),
        (
            "[\"suv\",\"awd\"]",
            Value::list(vec![Value::string("suv"), Value::string("awd")]),
            "0bb00b807375760e0b806177640e0e",
            "4841adafb45a98647e4cec7e089abaed8ea1efc968b4971deea72b712832dbdf",
        ),
        (
            "(a b)",
            Data::SExp(vec![Value::symbol("a"), Value::symbol("b")]).into(),
            "0bc00b70610e0b70620e0e",
            "c580490f58253f865b3a200a1b1f7bd0f311040dd6bc1c187a9ad3be3c5aa055",
        ),
        (
            "{}",
            Value::structure(Vec::<(String, Value)>::new()),
            "0bd00e",
            "dc3ff8e550c833236bbee92d163762698b7b0b7b68a1af1b060243580741b7a6",
        ),
        (
            "{a:1}",
            Value::structure([("a", Value::int(1))]),
            "0bd0db0f505fdd2ec4b9ff1ca019e2c40c0b7f33ff2c3e03e760f8947f4027cad4f3e00e",
            "f5d2d95c18463b4e3b9e5cf7d8e167299e31627c82c15b5e0b822b83ddadc4eb",
        ),
        (
            "ann::1",
            Value::int(1).annotated(&["ann"]),
            "0be00b70616e6e0e0b20010e0e",
            "1e9fa8fb60861cd08d1851c8baa6d58bfff703642e54505b01e4eb4b728402bc",
        ),
        (
            "a::b::\"x\"",
            Value::string("x").annotated(&["a", "b"]),
            "0be00b70610e0b70620e0b80780e0e",
            "7b46ae89019198adc09d91e22a2b8945c4424f5a4a1789981dd5ad26b749e3c3",
        ),
        (
            "escapes",
            Value::string("\x0b\x0e\x0c"),
            "0b800c0b0c0e0c0c0e",
            "8a37bb07fd3df3eee7d62fae77d97131d92afc415ca7c51a84f44b65fa6d8081",
        ),
        (
            "\"\\x0b\"",
            Value::string("\x0b"),
            "0b800c0b0e",
            "46d3931e9ff83ac5a18860943de3ce09bb9751d50a164c1d5c00331b34f02d72",
        ),
        (
            "blob escapes",
            Value::blob(vec![0x0b, 0x0c, 0x0e]),
            "0ba00c0b0c0c0c0e0e",
            "5c004b36a30e165bddc118e9298b0b6284c82d127ddda657eee81870b2074505",
        ),
    ]
}

#[test]
fn ion_hash_vectors() {
    for (name, value, ser, hash) in table() {
        assert_eq!(s(&value), ser, "s({name})");
        assert_eq!(h(&value), hash, "IH({name})");
    }
}

#[test]
fn struct_hashes_ignore_field_order_and_nest() {
    let ab = Value::structure([("a", Value::int(1)), ("b", Value::string("x"))]);
    let ba = Value::structure([("b", Value::string("x")), ("a", Value::int(1))]);
    let want = "3c2fad67883c746973506cc34811b97e44314e0213b19a76b886c65b32d31605";
    assert_eq!(h(&ab), want);
    assert_eq!(h(&ba), want);
    let nested = Value::structure([(
        "a",
        Value::structure([("b", Value::list(vec![Value::int(1), Value::int(2)]))]),
    )]);
    assert_eq!(
        h(&nested),
        "9ce9b61c834a454fb211fa23f78e406635f2f89c8afe3baf4021fe7b2b21db8d"
    );
    let ann = Value::structure([("a", Value::int(1))]).annotated(&["ann"]);
    assert_eq!(
        h(&ann),
        "dcc85667a9863cf38eae002e37e15806984ca597c690f6d15bdfb1108c51b1b0"
    );
}

#[test]
fn a_four_byte_float_hashes_as_its_eight_byte_widening() {
    let bytes = [0xE0, 0x01, 0x00, 0xEA, 0x44, 0x3F, 0xC0, 0x00, 0x00]; // 1.5 as binary32
    let v = qldb_local::ion::binary::decode(&bytes).unwrap();
    assert_eq!(
        h(&v[0]),
        "565a79d80d56bc336800a2e528680cf0c98547f1f8ca88ff228473727a7c417d"
    );
}

#[test]
fn string_hash_vectors_of_the_session_spec() {
    for (text, hash) in [
        (
            "txid1",
            "15ec2d98f5453c038a5f3a3d550453a0fb3bd8a28f254fbd7fe2cefe52e238a6",
        ),
        (
            "SELECT * FROM t",
            "8c44dfeaf8e897314d619de778406691e5e1d2ddf7dc8e9b8ad6ad084c4cd91f",
        ),
        (
            "hello world",
            "82c4010bfc9cace7f645c0a951243b9b122cb5ba21b60b3f71ea79c513c39342",
        ),
        (
            "",
            "37b6e5aef22429d44339e2786f9ccdab715bf4fac80f6e860d4e79b964621dd4",
        ),
        (
            "05K97LfBBVa60AK0qMbc6R",
            "d7777a9917ad1a90836d90b0078ea18aad2515e2c3f21508c26bac800f9e7ff6",
        ),
        (
            "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
            "afbdae00bfb86473b3f4a1d3744c9fe8523d12e2c52abc777898b1a337281ccb",
        ),
    ] {
        assert_eq!(h(&Value::string(text)), hash, "{text}");
    }
}

#[test]
fn dot_vectors() {
    let mut a = vec![0u8; 32];
    a[31] = 0x7f;
    let mut b = vec![0u8; 32];
    b[31] = 0x80;
    let want = "7035948d9d59da9d6ad20d11b3bc4a1e4c386dbe686fcadb095afb6bb462e6e3";
    assert_eq!(hex::encode(dot(&a, &b)), want);
    assert_eq!(hex::encode(dot(&b, &a)), want, "commutative");
    let mut c = vec![0u8; 32];
    c[0] = 0x01;
    c[31] = 0xff;
    let mut d = vec![0u8; 32];
    d[0] = 0xff;
    d[31] = 0x01;
    assert_eq!(
        hex::encode(dot(&c, &d)),
        "33b151870aa26ecc033567bb7bf0afde2fe65a48fdfce208f44f0ec09bc4ba01"
    );
    let one = Sha256::digest(b"1").to_vec();
    let two = Sha256::digest(b"2").to_vec();
    assert_eq!(
        hex::encode(dot(&one, &two)),
        "940ed9abddfb5ef28004408546bc5043cda391232b6afe07267f9f8ed2b500c9"
    );
    assert_eq!(dot(&[], &one), one);
    assert_eq!(dot(&one, &[]), one);
}

#[test]
fn merkle_promotes_the_odd_leaf_and_matches_the_rfc6962_split() {
    assert!(merkle(&[]).is_empty());
    let leaves: Vec<Vec<u8>> = (0..130u32)
        .map(|i| Sha256::digest(i.to_be_bytes()).to_vec())
        .collect();
    assert_eq!(merkle(&leaves[..1]), leaves[0]);
    assert_eq!(
        merkle(&leaves[..3]),
        dot(&dot(&leaves[0], &leaves[1]), &leaves[2])
    );
    fn rfc6962(l: &[Vec<u8>]) -> Vec<u8> {
        if l.len() == 1 {
            return l[0].clone();
        }
        let k = l.len().next_power_of_two() / 2;
        let k = if k == l.len() { k / 2 } else { k };
        dot(&rfc6962(&l[..k]), &rfc6962(&l[k..]))
    }
    for n in 1..=130 {
        assert_eq!(merkle(&leaves[..n]), rfc6962(&leaves[..n]), "n = {n}");
    }
}

#[test]
fn commit_digest_vectors() {
    let b64 = |d: &CommitDigest| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(d.bytes())
    };
    let d0 = CommitDigest::new("txid1");
    assert_eq!(b64(&d0), "FewtmPVFPAOKXzo9VQRToPs72KKPJU+9f+LO/lLiOKY=");

    let mut d1 = CommitDigest::new("txid1");
    d1.add_statement("SELECT * FROM t", &[]);
    assert_eq!(b64(&d1), "P4xoH1/jkBP3v0O2sm3E66yTAQc4pTAEwHXnZtpNcFE=");

    let mut d2 = CommitDigest::new("txid1");
    d2.add_statement("SELECT * FROM t", &[Value::int(1)]);
    assert_eq!(b64(&d2), "fRUwnuSX0nuDBrIq0gY9k+IOE+tvi7GkGHsQxXDvXIM=");
    assert_eq!(
        hex::encode(statement_digest("SELECT * FROM t", &[Value::int(1)])),
        "9c92615944d54ef729837cde3a67e883ef6492c52d6c9f1e8d58b70a231f1f85"
    );

    let mut d3 = CommitDigest::new("txid1");
    d3.add_statement(
        "SELECT * FROM t WHERE a = ? AND b = ?",
        &[Value::int(1), Value::string("x")],
    );
    assert_eq!(b64(&d3), "eAbVNr7nOWnBUWyYituuYLSNbdJLZoIEdbfkrjQnCNE=");

    let doc = Value::structure([("a", Value::int(1))]);
    let mut d4 = CommitDigest::new("txid1");
    d4.add_statement("CREATE TABLE t", &[]);
    assert_eq!(
        hex::encode(d4.bytes()),
        "2be0c463dee8259fec9c630efb863b88917041e4bd54a34c27fda9df705a4667"
    );
    d4.add_statement("INSERT INTO t ?", std::slice::from_ref(&doc));
    assert_eq!(b64(&d4), "QI5aLw7YLX+fOKCAQcNfGXyNYmq2SmZeYw8yxmF3b48=");

    let mut d4r = CommitDigest::new("txid1");
    d4r.add_statement("INSERT INTO t ?", &[doc]);
    d4r.add_statement("CREATE TABLE t", &[]);
    assert_eq!(
        hex::encode(d4r.bytes()),
        "b502fc47b4bae72aac211cde41b503d828f77af290118946accdb0306edf8da3"
    );

    let mut d5 = CommitDigest::new("05K97LfBBVa60AK0qMbc6R");
    d5.add_statement(
        "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
        &[],
    );
    assert_eq!(b64(&d5), "gjWQGeWPCniU2/P9ndm/8ZgrCT0FoPUeZBhdbOtf7O4=");
}
