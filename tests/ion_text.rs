//! Ion text: the hash vectors parsed from their text form, round trips through text and
//! binary, the worked example's block text equal to what the journal builds, and errors
//! (not panics) on hostile text.

use qldb_local::ion::binary::{decode, encode_one};
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::text::{from_text, from_text_one, to_text_one};
use qldb_local::ion::{Data, Value};

fn h(text: &str) -> String {
    hex::encode(ion_hash(
        &from_text_one(text).unwrap_or_else(|e| panic!("{text}: {e}")),
    ))
}

#[test]
fn hash_vectors_from_text() {
    for (text, hash) in [
        (
            "null",
            "0fb06b6183c21379529fdd45d6af4aba731ac6f081ef9e6c1c94b1fb26177304",
        ),
        (
            "null.string",
            "a54abfe9fc39f5ab44ae80412ad4b9d700f99205dc2008153a1d289ef6d730fc",
        ),
        (
            "null.struct",
            "87451a2e7d09b504b2d83223928095d8fc15dbf053f16bfaf30fa0579c374155",
        ),
        (
            "true",
            "cee54499d5f362b272fbd8ee6480ff547a6dc4e2d9e12733459f820e70305017",
        ),
        (
            "-1",
            "e5f754c77b09f62697922db7f602c5754b021b9160caf8db7f58a0f3e5c6ba78",
        ),
        (
            "0x100",
            "d38ea0ff87af07752710ce1f27ddda202e00f972848358e04a7b89a6f5afc9a9",
        ),
        (
            "18446744073709551616",
            "48ce2cc677c523f31ccc347ec247e995665c2c566f04f52375e1d6b1a27f3d48",
        ),
        (
            "0e0",
            "de70695f4fed6bafe58eedc3857bdf670e08647067a1cbc03d2cd7a73c0bd661",
        ),
        (
            "-0e0",
            "56325d7bb2990767480cc452993058d2b40ce5537fea1a54f932ae0b4a04f503",
        ),
        (
            "1.5e0",
            "565a79d80d56bc336800a2e528680cf0c98547f1f8ca88ff228473727a7c417d",
        ),
        (
            "nan",
            "ed865017dd3f6d06e57babc02ee8c2d01538adb6316cd47163f4d813da2b989d",
        ),
        (
            "+inf",
            "9985ead983f1939d381b22e30678e09c74369b7707dc3f17c2fd5e6ce424d463",
        ),
        (
            "0d0",
            "2c5827b6d77a3117a155eb699e265685492e191b71be6ff93694ff7fc9ddb646",
        ),
        (
            "-0d0",
            "e595862b245122ca6aabd69dbe6e522bbb615b11521f962ca774a5e827e387ad",
        ),
        (
            "1.50",
            "5724f2063f37109ccfe9dac886f250f4863291ec56f7991e2518316fc1ade658",
        ),
        (
            "12500.50",
            "e8a0f8b8ff627ecc46aab88c17ed085eb749b87f3cefdc938d59ebf59c194980",
        ),
        (
            "2020-01-01T",
            "06f7c436be5c1770afcc46141d7c64a38a2094749ab392ca14dd823fe7301f6e",
        ),
        (
            "2020-01-01T00:00:00Z",
            "b1c78fb1974cc52d09cdfd2d9b0b22afb22b9eaad5b6d62137b4ac670f9e8ab9",
        ),
        (
            "2020-01-01T00:00:00.000Z",
            "8585caa9191363627b0f100488da2d78365f3cfe322bbc8a87299f2fe413ccd0",
        ),
        (
            "1963-08-19T",
            "100a4a5e32f24910c7965aeedd9421d245d2d007789bf7686d9e240492e2ed52",
        ),
        (
            "'sym'",
            "ef28c27cf58b1cd9c6a1793a7157fcf5d037f162bbb797b39cc45e3729670e6a",
        ),
        (
            "{{aGVsbG8=}}",
            "da20f4be16236f28f09fb736dac5ef9b1c5bb403f2bcb6850d191a46926d0729",
        ),
        (
            "{{\"clob\"}}",
            "7ee47ca7b174cf03a00d51ccd081fe02d4ccb6b1e4f215336e9b661e3a05b22c",
        ),
        (
            "[1,2]",
            "694ff15928653dadac73597bef40f8af664a5aa1d0331e7218f4f2562ea445a6",
        ),
        (
            "(a b)",
            "c580490f58253f865b3a200a1b1f7bd0f311040dd6bc1c187a9ad3be3c5aa055",
        ),
        (
            "{a:1}",
            "f5d2d95c18463b4e3b9e5cf7d8e167299e31627c82c15b5e0b822b83ddadc4eb",
        ),
        (
            "{b:\"x\",a:1}",
            "3c2fad67883c746973506cc34811b97e44314e0213b19a76b886c65b32d31605",
        ),
        (
            "{a:{b:[1,2]}}",
            "9ce9b61c834a454fb211fa23f78e406635f2f89c8afe3baf4021fe7b2b21db8d",
        ),
        (
            "ann::{a:1}",
            "dcc85667a9863cf38eae002e37e15806984ca597c690f6d15bdfb1108c51b1b0",
        ),
        (
            "a::b::\"x\"",
            "7b46ae89019198adc09d91e22a2b8945c4424f5a4a1789981dd5ad26b749e3c3",
        ),
        (
            "\"\\x0b\\x0e\\x0c\"",
            "8a37bb07fd3df3eee7d62fae77d97131d92afc415ca7c51a84f44b65fa6d8081",
        ),
        (
            "{{CwwO}}",
            "5c004b36a30e165bddc118e9298b0b6284c82d127ddda657eee81870b2074505",
        ),
        (
            "2024-01-01T00:00:01.240Z",
            "f31a460b8b3454b4bd0452fd03241910b56b8134b9b732e92012886ffe43fb2e",
        ),
        (
            "2020-01-01T00:00:00-08:00",
            "cb419d7483d0654a63840936790b24f94bd9ab203198bd5c151f9eafd6d502f9",
        ),
    ] {
        assert_eq!(h(text), hash, "{text}");
    }
}

#[test]
fn text_forms_round_trip_through_text_and_binary() {
    let doc = r#"
        // comments are skipped
        $ion_1_0
        { /* block */ 'quoted field': 1_000, "string field": '''long ''' '''string''',
          dec: 130.750, neg0: -0.00, big: 123456789012345678901234567890123456789,
          e: 5d300, f: -1.25e-3, ts: [2007T, 2007-02T, 2007-02-23, 2007-02-23T12:14Z,
          2007-02-23T12:14:33.079-08:00, 2007-02-23T20:14:33-00:00],
          sx: (+ 1 (a.b c) '<=' ), nulls: [null, null.int, null.sexp], bin: 0b1010, hex: -0xFF,
          sym: $0, ann: a::'b c'::[], clob: {{ '''ab''' '''c''' }}, blob: {{ 3q2+ 7w== }},
          esc: "\u00e9\U0001F600\t\"" }
    "#;
    let v = from_text_one(doc).unwrap();
    let text = to_text_one(&v);
    let again = from_text_one(&text).unwrap();
    assert_eq!(again, v, "text round trip of {text}");
    assert_eq!(decode(&encode_one(&v)).unwrap()[0], v);
    assert_eq!(ion_hash(&again), ion_hash(&v));
    assert_eq!(to_text_one(v.field("dec").unwrap()), "130.750");
    assert_eq!(to_text_one(v.field("neg0").unwrap()), "-0.00");
    assert_eq!(to_text_one(v.field("e").unwrap()), "5d300");
    assert_eq!(
        to_text_one(v.field("ts").unwrap()),
        "[2007T,2007-02T,2007-02-23T,2007-02-23T12:14Z,2007-02-23T12:14:33.079-08:00,2007-02-23T20:14:33-00:00]"
    );
    assert_eq!(v.field("string field"), Some(&Value::string("long string")));
    assert_eq!(
        v.field("clob").map(|c| &c.data),
        Some(&Data::Clob(b"abc".to_vec()))
    );
    assert_eq!(to_text_one(v.field("sx").unwrap()), "(+ 1 (a . b c) <=)");
    assert_eq!(from_text("1 2 3").unwrap().len(), 3);
}

/// `-0` and `-0x0` are int 0 in text, as ion-rs (the differential oracle) and ion-java read
/// them; only the binary encoding forbids a negative zero int.
#[test]
fn negative_zero_int_text_is_zero() {
    for text in ["-0", "-0x0", "-0b0"] {
        assert_eq!(from_text(text).unwrap(), from_text("0").unwrap(), "{text}");
    }
}

/// What the differential fuzz target (fuzz/fuzz_targets/ion_diff.rs) found where we and
/// ion-rs read the same input differently; each now reads as ion-rs reads it.
#[test]
fn differential_findings_read_as_ion_rs_reads_them() {
    // A decimal whose exponent is negative is not a timestamp.
    let v = from_text("4.7d-327722").unwrap();
    assert!(
        matches!(v[0].data, qldb_local::ion::Data::Decimal(_)),
        "{v:?}"
    );
    // `$2` and `'$ion_1_0'` are symbol values; only the bare identifier is a version marker.
    assert_eq!(from_text("$2").unwrap().len(), 1);
    assert_eq!(from_text("'$ion_1_0'").unwrap().len(), 1);
    assert_eq!(from_text("$ion_1_0 1").unwrap().len(), 1);
    // `$ion_symbol_table::x` is a user value: only a struct is a symbol table.
    assert_eq!(from_text("$ion_symbol_table::x").unwrap().len(), 1);
    // A line comment ends at CR as well as at LF.
    assert_eq!(
        from_text("{a: 1 // c\r}").unwrap(),
        from_text("{a: 1}").unwrap()
    );
    // A raw CR or CR LF in a long string reads as LF.
    assert_eq!(
        from_text("'''a\r\nb\rc'''").unwrap(),
        from_text(r#""a\nb\nc""#).unwrap()
    );
    // An import without a name is ignored: `$10` is the table's first own symbol.
    let t = r#"$ion_symbol_table::{imports: [{max_id: 5}], symbols: ["x"]} $10"#;
    assert_eq!(from_text(t).unwrap(), from_text("x").unwrap());
    // Binary: a NOP pad's field name is not resolved; a date has no offset; a zero
    // fraction with a non-negative exponent is no fraction.
    let bin = |body: &[u8]| {
        let mut v = vec![0xE0, 0x01, 0x00, 0xEA];
        v.extend_from_slice(body);
        qldb_local::ion::binary::decode(&v).unwrap()
    };
    // {$999999: NOP pad} → {}
    assert_eq!(bin(&[0xD4, 0x3D, 0x08, 0xBF, 0x00]).len(), 1);
    // 2000T with offset +5 minutes, written as 2000T.
    assert_eq!(bin(&[0x63, 0x85, 0x0F, 0xD0]), from_text("2000T").unwrap());
}

#[test]
fn hostile_text_is_an_error_not_a_panic() {
    for bad in [
        "{",
        "[1,",
        "{a 1}",
        "\"unterminated",
        "'''x",
        "{{%%%}}",
        "2007-13-01",
        "2007-02-30",
        "1__0",
        "0x",
        "01",
        "1.2.3",
        "null.bogus",
        "$99",
        "a::",
        "{a::1}",
        "/* x",
        "[1 2]",
        "2007-02-23T25:00Z",
        "{{\"\u{1F600}\"}}",
        "\"\\q\"",
        "\"\\u12\"",
        "1e",
        "--1",
    ] {
        assert!(from_text(bad).is_err(), "{bad} should be rejected");
    }
    let deep = "[".repeat(100_000);
    assert!(from_text(&deep).is_err());
    // Every prefix of a rich document either parses or errors.
    let doc = r#"{a:[1,2.5,3e0,"x",'y',{{AA==}},2020-01-01T00:00Z,(+ a)],b:c::null.int}"#;
    for i in 0..doc.len() {
        if doc.is_char_boundary(i) {
            let _ = from_text(&doc[..i]);
        }
    }
}
