//! The Ion binary codec: every type round-trips with full fidelity, symbol tables from
//! other writers are honoured, and hostile bytes produce errors, never panics.

use num_bigint::{BigInt, BigUint};
use qldb_local::ion::binary::{decode, encode, encode_one, IVM};
use qldb_local::ion::{Data, Decimal, IonType, Precision, Timestamp, Value};
use rand::{Rng, SeedableRng};

fn everything() -> Value {
    let big: BigInt = "123456789012345678901234567890123456789012345678901234567890"
        .parse()
        .unwrap();
    Value::structure([
        ("null", Value::null()),
        (
            "nulls",
            Value::list(vec![
                Data::Null(IonType::Int).into(),
                Data::Null(IonType::Struct).into(),
                Data::Null(IonType::Timestamp).into(),
            ]),
        ),
        (
            "bools",
            Value::list(vec![Data::Bool(true).into(), Data::Bool(false).into()]),
        ),
        (
            "ints",
            Value::list(vec![
                Value::int(0),
                Value::int(-1),
                Value::int(i64::MAX),
                Value::int(big.clone()),
                Value::int(-big),
            ]),
        ),
        (
            "floats",
            Value::list(vec![
                Data::Float(0.0).into(),
                Data::Float(-0.0).into(),
                Data::Float(1.5).into(),
                Data::Float(f64::INFINITY).into(),
                Data::Float(f64::NEG_INFINITY).into(),
            ]),
        ),
        (
            "decimals",
            Value::list(vec![
                Data::Decimal(Decimal::new(BigInt::from(130750), -3)).into(),
                Data::Decimal(Decimal {
                    negative: true,
                    magnitude: BigUint::from(0u8),
                    exponent: -2,
                })
                .into(),
                Data::Decimal(Decimal::new(BigInt::from(0), 0)).into(),
                Data::Decimal(Decimal::new(BigInt::from(-5), 300)).into(),
            ]),
        ),
        (
            "timestamps",
            Value::list(vec![
                Data::Timestamp(Timestamp {
                    year: 2024,
                    month: 1,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 1,
                    fraction: Some((BigUint::from(240u32), -3)),
                    offset_minutes: Some(0),
                    precision: Precision::Second,
                })
                .into(),
                Data::Timestamp(Timestamp {
                    year: 1963,
                    month: 8,
                    day: 19,
                    hour: 0,
                    minute: 0,
                    second: 0,
                    fraction: None,
                    offset_minutes: None,
                    precision: Precision::Day,
                })
                .into(),
                Data::Timestamp(Timestamp {
                    year: 2001,
                    month: 2,
                    day: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                    fraction: None,
                    offset_minutes: None,
                    precision: Precision::Month,
                })
                .into(),
                Data::Timestamp(Timestamp {
                    year: 2020,
                    month: 5,
                    day: 6,
                    hour: 7,
                    minute: 8,
                    second: 0,
                    fraction: None,
                    offset_minutes: Some(-480),
                    precision: Precision::Minute,
                })
                .into(),
            ]),
        ),
        (
            "symbols",
            Data::SExp(vec![
                Value::symbol("a"),
                Value::symbol("name"),
                Data::Symbol(None).into(),
            ])
            .into(),
        ),
        ("text", Value::string("héllo \u{1F600}")),
        (
            "lobs",
            Value::list(vec![
                Data::Clob(b"c".to_vec()).into(),
                Value::blob(vec![0, 1, 255]),
            ]),
        ),
        ("annotated", Value::int(1).annotated(&["a", "b"])),
        ("dup", Value::int(1)),
        ("dup", Value::int(2)),
        ("long", Value::string("x".repeat(300))),
    ])
}

#[test]
fn every_type_round_trips() {
    let v = everything();
    let bytes = encode_one(&v);
    assert!(bytes.starts_with(&IVM));
    let back = decode(&bytes).unwrap();
    assert_eq!(back.len(), 1);
    // NaN != NaN, so compare everything without NaN by equality and its hash too.
    assert_eq!(back[0], v);
    assert_eq!(
        qldb_local::ion::hash::ion_hash(&back[0]),
        qldb_local::ion::hash::ion_hash(&v)
    );
    let many = decode(&encode(&[Value::int(1), Value::string("two"), v.clone()])).unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(many[2], v);
}

#[test]
fn reads_symbol_tables_nop_pads_and_sorted_structs() {
    // $ion_symbol_table::{symbols:["a","b"]} then {a: b} with a NOP pad inside the struct
    // and a second IVM that resets the table.
    let mut bytes = IVM.to_vec();
    bytes.extend([0xE9, 0x81, 0x83, 0xD6, 0x87, 0xB4, 0x81, b'a', 0x81, b'b']);
    bytes.extend([0xD5, 0x8A, 0x71, 0x0B, 0x80, 0x00]); // {a: 'b'} then a $0 field holding a NOP pad
    let v = decode(&bytes);
    // A NOP pad as a struct field value must be skipped with its field name.
    let v = v.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0], Value::structure([("a", Value::symbol("b"))]));
    let mut reset = bytes.clone();
    reset.extend(IVM);
    reset.extend([0x71, 0x0A]);
    assert!(decode(&reset).is_err(), "$10 is unknown after a new IVM");
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let seed = encode_one(&everything());
    for _ in 0..20_000 {
        let mut b = seed.clone();
        for _ in 0..rng.gen_range(1..6) {
            if b.len() <= 5 {
                break;
            }
            let i = rng.gen_range(4..b.len());
            match rng.gen_range(0..3) {
                0 => b[i] = rng.gen(),
                1 => b.truncate(i),
                _ => b.insert(i, rng.gen()),
            }
        }
        let _ = decode(&b);
        // The scans' field probe reads the same bytes without panicking.
        let _ = qldb_local::ion::binary::field_may_equal_string(&b, "name", "x");
    }
    for junk in [
        &[][..],
        &[0xE0, 0x01, 0x00],
        &[0xE0, 0x01, 0x00, 0xEA, 0x2E],
        &[
            0xE0, 0x01, 0x00, 0xEA, 0x2E, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0x8F,
        ],
        &[0xE0, 0x01, 0x00, 0xEA, 0x30],
        &[0xE0, 0x01, 0x00, 0xEA, 0xF0],
        &[0xE0, 0x01, 0x00, 0xEA, 0x81, 0xFF],
    ] {
        assert!(decode(junk).is_err(), "{junk:x?}");
    }
    let mut deep = IVM.to_vec();
    for _ in 0..10_000 {
        deep.extend([0xBE, 0x8F]);
    }
    assert!(decode(&deep).is_err());
}

/// The field probe that lets a scan skip documents a filter rejects says "no" only when a
/// full decode agrees: the document's first field of that name is absent, a null, or a
/// string of other text.
#[test]
fn the_field_probe_rejects_only_what_a_full_decode_rejects() {
    use qldb_local::ion::binary::{decode, encode_one, field_may_equal_string};
    use qldb_local::ion::text::from_text_one;
    let docs = [
        "{Owner: \"owner-1\", VIN: \"V1\", Year: 2001}",
        "{VIN: \"V2\", Owner: \"owner-2\"}",
        "{VIN: \"V3\"}",
        "{Owner: null, VIN: \"V4\"}",
        "{Owner: null.string}",
        "{Owner: 'owner-1'}",
        "{Owner: a::\"owner-1\"}",
        "{Owner: [\"owner-1\"], Other: {Owner: \"owner-1\"}}",
        "{Owner: \"owner-2\", Owner: \"owner-1\"}",
        "{name: \"owner-1\", symbols: \"x\"}",
        "{Owner: \"\", VIN: true, Year: 1.5e0, Note: {a: [1, 2, {b: null}]}}",
        "{Owner: \"ówner-1\", Long: \"a string longer than thirteen bytes, to use a VarUInt length\"}",
        "{}",
        "null.struct",
    ];
    for text in docs {
        let v = from_text_one(text).unwrap();
        let bytes = encode_one(&v);
        let decoded = decode(&bytes).unwrap().remove(0);
        for field in ["Owner", "VIN", "name", "symbols", "Missing", "Long"] {
            for want in ["owner-1", "owner-2", "V1", "", "x", "ówner-1"] {
                let equal = matches!(
                    decoded.field(field).map(|f| (&f.annotations, &f.data)),
                    Some((a, Data::String(s))) if a.is_empty() && s == want
                );
                let maybe = field_may_equal_string(&bytes, field, want);
                assert!(
                    maybe || !equal,
                    "{text}: the probe rejected {field} = {want:?}, which holds"
                );
                // Plain strings and absent fields are decided exactly.
                let plain = match decoded.field(field) {
                    None => true,
                    Some(f) => {
                        f.annotations.is_empty()
                            && matches!(f.data, Data::String(_) | Data::Null(_))
                    }
                };
                if plain {
                    assert_eq!(maybe, equal, "{text}: {field} = {want:?}");
                }
            }
        }
    }
    // Streams it does not read plainly answer "maybe".
    assert!(field_may_equal_string(b"not ion", "Owner", "x"));
    assert!(field_may_equal_string(
        &[0xE0, 0x01, 0x00, 0xEA, 0xD3],
        "Owner",
        "x"
    ));
}

/// Symbol tables other writers might produce, which the probe does not read itself: a pad
/// or an annotated string in `symbols`, two `symbols` fields. It must not answer "no" where
/// the full reader finds the field.
#[test]
fn the_field_probe_leaves_unusual_symbol_tables_to_the_reader() {
    use qldb_local::ion::binary::{decode, field_may_equal_string};
    let doc = [0xD3, 0x8A, 0x81, b'x']; // {$10: "x"}
    let lst = |body: &[u8]| {
        // $ion_symbol_table::{ <body> }
        let mut st = vec![0xD0 | body.len() as u8];
        st.extend_from_slice(body);
        let mut w = vec![0xE0 | (st.len() + 2) as u8, 0x81, 0x83];
        w.extend(st);
        w
    };
    let cases: [Vec<u8>; 3] = [
        // symbols: [<pad>, "name"]: the reader skips the pad, so $10 is name.
        lst(&[0x87, 0xB6, 0x00, 0x84, b'n', b'a', b'm', b'e']),
        // symbols: [a::"name"] with `a` unknown is not plain; leave it to the reader.
        lst(&[0x87, 0xB7, 0xE6, 0x81, 0x84, 0x84, b'n', b'a', b'm', b'e']),
        // symbols: ["q"], symbols: ["name"]: the reader appends, $11 is name.
        lst(&[
            0x87, 0xB2, 0x81, b'q', 0x87, 0xB5, 0x84, b'n', b'a', b'm', b'e',
        ]),
    ];
    for (i, table) in cases.iter().enumerate() {
        let mut bytes = IVM.to_vec();
        bytes.extend(table);
        bytes.extend(doc);
        let decoded = decode(&bytes);
        assert!(
            field_may_equal_string(&bytes, "name", "x"),
            "case {i}: the probe said no; the reader read {decoded:?}"
        );
    }
}
