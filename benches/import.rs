//! `qldb-local import` of a large journal export.
//!
//!     cargo bench --bench import -- [--blocks 100000]
//!
//! Writes a synthetic journal of `--blocks` blocks (a genesis block, a CREATE TABLE, then one
//! single-document INSERT per block, ~100-byte documents) as an export on local disk, 1,000
//! blocks per data object, in ION_BINARY and ION_TEXT, and imports each into a fresh data dir
//! with the library's import (what the command runs): both passes (check every block, then
//! write and replay), the final full verification and the move into place. Figures go to
//! docs/performance.md.

#[path = "support/mod.rs"]
mod support;
use support::arg;

#[path = "../tests/export_fixture/mod.rs"]
mod export_fixture;

use std::time::Instant;

use export_fixture::{synthetic, write_export, Format};
use qldb_local::import::{import, ImportOptions};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn main() {
    let n = arg("--blocks", 100_000);
    let t = Instant::now();
    let blocks = synthetic(n);
    println!(
        "made a synthetic journal of {n} blocks in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    for format in [Format::IonBinary, Format::IonText] {
        let export = tempfile::tempdir().unwrap();
        write_export(export.path(), "bench/", "e", &blocks, 1000, format);
        let data = tempfile::tempdir().unwrap();
        let opts = ImportOptions::new(data.path(), "bench", export.path().display().to_string());
        let t = Instant::now();
        let r = import(&opts).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.verified.blocks, n);
        println!(
            "import {format:?}: {n} blocks ({:.1} MB export) in {secs:.2} s = {:.0} blocks/s; ledger file {:.1} MB",
            dir_bytes(export.path()) as f64 / 1e6,
            n as f64 / secs,
            dir_bytes(&data.path().join("ledgers")) as f64 / 1e6,
        );
    }
}
