//! The lexer and parser on arbitrary text: any input is a statement or a SyntaxError,
//! never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = qldb_local::partiql::parse_statement(text);
    }
});
