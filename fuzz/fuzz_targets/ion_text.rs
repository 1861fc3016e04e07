//! The Ion text reader on arbitrary text, as an IonText parameter reaches it: any input is
//! values or an IonError, never a panic, a hang or an unbounded allocation; what it reads
//! survives the binary codec unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qldb_local::ion::binary::{decode, encode};
use qldb_local::ion::text::from_text;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(values) = from_text(text) {
            let bytes = encode(&values);
            let again = decode(&bytes).expect("our own encoding reads back");
            // Compared as bytes: NaN is not equal to itself as a value.
            assert_eq!(encode(&again), bytes);
        }
    }
});
