//! The Ion binary reader on arbitrary bytes, as an IonBinary parameter reaches it: any input
//! is values or an IonError, never a panic, a hang or an unbounded allocation; what it
//! reads re-encodes to bytes that read back as the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qldb_local::ion::binary::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = decode(data) {
        let bytes = encode(&values);
        let again = decode(&bytes).expect("our own encoding reads back");
        // Compared as bytes: NaN is not equal to itself as a value.
        assert_eq!(encode(&again), bytes);
    }
});
