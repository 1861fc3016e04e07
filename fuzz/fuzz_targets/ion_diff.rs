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
use ion_rs::{Element, IonEq};
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
        Some(from_text(text).map_err(|e| e.0))
    }
}

/// Our values as bytes of our own binary writer (compared as bytes: NaN is not equal to
/// itself as a value).
fn canonical(values: &[Value]) -> Vec<u8> {
    encode(values)
}

fuzz_target!(|data: &[u8]| {
    // Only Ion 1.0 streams; ion-rs reads text that is not UTF-8 as an error anyway.
    let Some(our_read) = ours(data) else {
        return;
    };
    let Ok(theirs) = Element::read_all(data) else {
        return;
    };
    let theirs: Vec<Element> = theirs.into_iter().collect();
    let values = match our_read {
        Ok(v) => v,
        Err(e) => {
            // Our documented limits (docs/compatibility.md): nesting deeper than 1,000 and
            // symbol tables reserving more than 2^20 ids are refused on purpose.
            if e.contains("nest") || e.contains("symbol ids") {
                return;
            }
            panic!("ion-rs reads {theirs:?} but we refuse it: {e}");
        }
    };
    assert_eq!(values.len(), theirs.len(), "a different number of top-level values");

    // Ours, written by us, read by ion-rs: the same values.
    let ours_bytes = canonical(&values);
    let back: Vec<Element> = Element::read_all(&ours_bytes)
        .expect("ion-rs reads our binary encoding")
        .into_iter()
        .collect();
    for (a, b) in back.iter().zip(&theirs) {
        assert!(a.ion_eq(b), "we read {a:?}, ion-rs read {b:?}");
    }

    // Theirs, written by ion-rs in both encodings, read by us: the same values as ours.
    for (v, e) in values.iter().zip(&theirs) {
        let bin = e.encode_as(ion_rs::v1_0::Binary).expect("ion-rs writes binary");
        let from_bin = decode(&bin).expect("we read ion-rs's binary");
        assert_eq!(canonical(&from_bin), canonical(std::slice::from_ref(v)));
        let text = e.encode_as(ion_rs::v1_0::Text).expect("ion-rs writes text");
        let from_text_ = from_text(&text).expect("we read ion-rs's text");
        assert_eq!(canonical(&from_text_), canonical(std::slice::from_ref(v)));

        // The same Ion hash.
        if let Ok(h) = sha256(e) {
            assert_eq!(h.as_slice(), ion_hash(v).as_slice(), "Ion hash of {e:?}");
        }
    }
});
