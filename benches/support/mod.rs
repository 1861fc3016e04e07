//! What the benchmarks share: their command-line numbers and the ~100-byte document they
//! load. Included by path (`#[path = "support/mod.rs"]`); not a benchmark of its own.
#![allow(dead_code)]

/// The number after `name` on the command line, else `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A ~100-byte document (109 bytes of Ion text) with a unique VIN.
pub fn vehicle(k: u64) -> String {
    format!(
        "{{VIN: \"1N4AL11D75C{k:07}\", Make: \"Toyota\", Model: \"Camry\", Year: {}, \
         Color: \"Blue\", Owner: \"owner-{:06}\"}}",
        1990 + k % 30,
        k % 100_000
    )
}
