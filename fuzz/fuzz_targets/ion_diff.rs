//! Differential check of qldb-local's Ion codec against ion-rs, the Ion library the design
//! names (docs/compatibility.md, "Ion: ion-rs is the oracle"). For every input ion-rs
//! accepts as Ion 1.0 (binary, or UTF-8 text), our reader must accept it too and agree on
//! what it means:
//! - the same values: what we read, written by our binary writer and read by ion-rs, is
//!   Ion-equal to what ion-rs read; and what ion-rs writes (binary and text), we read back to
//!   the same values as from the original;
//! - the same Ion hash (SHA-256) of every top-level value.
//! Inputs ion-rs refuses are outside its range and are left to the `ion_binary` and
//! `ion_text` targets (never a panic, bounded work).
#![no_main]

use ion_rs::ion_hash::sha256;
use ion_rs::{Element, IonData};
use libfuzzer_sys::fuzz_target;
use qldb_local::ion::binary::{decode, encode};
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::text::from_text;
use qldb_local::ion::Value;

const IVM: [u8; 4] = [0xE0, 0x01, 0x00, 0xEA];

fn ours(data: &[u8]) -> Option<Result<Vec<Value>, String>> {
    if data.starts_with(&IVM) {
        Some(decode(data).map_err(|e| e.0))
    } else {
        let text = std::str::from_utf8(data).ok()?;
        if known_ion_rs_divergence(text) || bracket_depth(text) > 16 {
            return None;
        }
        Some(from_text(text).map_err(|e| e.0))
    }
}

fn zero_fraction(v: &Value) -> bool {
    use qldb_local::ion::Data;
    match &v.data {
        Data::Timestamp(t) => t
            .fraction
            .as_ref()
            .is_some_and(|(c, e)| *e < 0 && c == &Default::default()),
        Data::List(items) | Data::SExp(items) => items.iter().any(zero_fraction),
        Data::Struct(fields) => fields.iter().any(|(_, v)| zero_fraction(v)),
        _ => false,
    }
}

/// How deep brackets nest, counted naively: ion-rs takes seconds (growing exponentially)
/// on text with many unclosed nested s-expressions, so deep text is left to `ion_text`.
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in text.bytes() {
        match c {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Text where ion-rs departs from the Ion 1.0 grammar, so it is no oracle there
/// (docs/compatibility.md lists them): `$0x` and `$ion_1_0E` are one identifier symbol each
/// by the grammar (`[$_a-zA-Z][$_a-zA-Z0-9]*`); ion-rs reads symbol id `$0` then `x`, and a
/// version marker then `E`.
fn known_ion_rs_divergence(text: &str) -> bool {
    let b = text.as_bytes();
    let ivm_prefix = text.match_indices("$ion_").any(|(i, _)| {
        let rest = &text[i + 5..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let major = digits(rest);
        major > 0
            && rest[major..].starts_with('_')
            && digits(&rest[major + 1..]) > 0
            && rest[major + 1 + digits(&rest[major + 1..])..]
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$')
    });
    ivm_prefix
        || b.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'$'
            && w[1].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && b[i + 1..]
                .iter()
                .find(|c| !c.is_ascii_digit())
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'$')
        })
}

/// Our values as bytes of our own binary writer (compared as bytes: NaN is not equal to
/// itself as a value).
fn canonical(values: &[Value]) -> Vec<u8> {
    encode(values)
}

/// What ion-rs reads, or `None` where it refuses the input or panics on it (a release
/// candidate: a few inputs reach a panic inside it, which is its bug, not ours).
fn oracle_read(data: &[u8]) -> Option<Vec<Element>> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let read = std::panic::catch_unwind(|| Element::read_all(data));
    std::panic::set_hook(hook);
    Some(read.ok()?.ok()?.into_iter().collect())
}

fuzz_target!(|data: &[u8]| {
    // Only Ion 1.0 streams; ion-rs reads text that is not UTF-8 as an error anyway.
    let Some(our_read) = ours(data) else {
        return;
    };
    let Some(theirs) = oracle_read(data) else {
        return;
    };
    let values = match our_read {
        Ok(v) => v,
        Err(e) => {
            // Refused on purpose (docs/compatibility.md): our limits (nesting deeper than
            // 1,000, symbol tables reserving more than 2^20 ids) and what the Ion spec
            // forbids but ion-rs lets through (a timestamp offset of a day or more).
            // An unclosed `/*` inside an s-expression we refuse as an unterminated comment;
            // ion-rs reads an operator symbol.
            if ["nest", "symbol ids", "offset out of range", "unterminated block comment"]
                .iter()
                .any(|w| e.contains(w))
            {
                return;
            }
            panic!("ion-rs reads {theirs:?} but we refuse it: {e}");
        }
    };
    assert_eq!(values.len(), theirs.len(), "a different number of top-level values");
    // ion-rs drops a zero fraction of seconds with a negative exponent, written in binary
    // (`00:00:05.000` keeps its precision in the Ion data model and in ion-java, QLDB's
    // reader).
    if values.iter().any(zero_fraction) {
        return;
    }

    // Ours, written by us, read by ion-rs: the same values.
    let ours_bytes = canonical(&values);
    let back: Vec<Element> = Element::read_all(&ours_bytes)
        .expect("ion-rs reads our binary encoding")
        .into_iter()
        .collect();
    for (a, b) in back.iter().zip(&theirs) {
        assert!(
            IonData::from(a) == IonData::from(b),
            "we read {a:?}, ion-rs read {b:?}"
        );
    }

    // Theirs, written by ion-rs in both encodings, read by us: the same values as ours.
    for (v, e) in values.iter().zip(&theirs) {
        let bin = e.encode_as(ion_rs::v1_0::Binary).expect("ion-rs writes binary");
        let from_bin = decode(&bin).expect("we read ion-rs's binary");
        assert_eq!(canonical(&from_bin), canonical(std::slice::from_ref(v)));
        let text = e.encode_as(ion_rs::v1_0::Text).expect("ion-rs writes text");
        // Only text ion-rs itself reads back as what it wrote (it writes the symbol value
        // `$ion_1_0` as the bare identifier, which is the version marker).
        let round_trips = oracle_read(text.as_bytes())
            .is_some_and(|t| t.len() == 1 && IonData::from(&t[0]) == IonData::from(e));
        if round_trips {
            let from_text_ = from_text(&text).expect("we read ion-rs's text");
            assert_eq!(canonical(&from_text_), canonical(std::slice::from_ref(v)));
        }

        // The same Ion hash.
        if let Ok(h) = sha256(e) {
            assert_eq!(h.as_slice(), ion_hash(v).as_slice(), "Ion hash of {e:?}");
        }
    }
});
