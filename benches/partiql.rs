//! The PartiQL executor on a large ledger, in process through the session layer (no HTTP):
//!
//!     cargo bench --bench partiql -- [--docs 1000000] [--join 100000] [--lookups 2000]
//!
//! Loads `--docs` ~100-byte documents into a table with an index on VIN (40-document INSERT
//! transactions, durable), then measures
//! - indexed point SELECTs (`WHERE v.VIN = ?`, random keys): the statement's time in the
//!   session layer (what the server spends on it), p50 and p99;
//! - a full scan with a filter on a field without an index: documents scanned per second,
//!   and the process's peak resident memory during the scan (Linux's VmHWM, reset before);
//!   once with `field = 'string'` (tested on the stored bytes before decoding), once with
//!   a filter that needs every document decoded, and once returning every document (its
//!   pages made as they are fetched);
//! - an indexed join of two `--join`-document tables (`WHERE q.VIN = p.VIN`, Q indexed on
//!   VIN): joined rows per second, and the peak resident memory during the join. From 1,024
//!   left rows on, the executor reads Q once into a hash table instead of looking each key
//!   up (`--join 1000` measures the lookups).
//!
//! Figures go to docs/performance.md.

#[path = "support/mod.rs"]
mod support;
use support::{arg, vehicle};

#[path = "../tests/common/mod.rs"]
mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use qldb_local::session::Param;

/// Linux's resident-memory figures of this process, in MiB: (current, peak since reset).
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Resets the peak resident memory (VmHWM) to the current figure.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn load(l: &common::Ledger, token: &str, table: &str, docs: u64, make: impl Fn(u64) -> String) {
    let per_tx = 40;
    let mut i = 0;
    while i < docs {
        let batch: Vec<String> = (i..(i + per_tx).min(docs)).map(&make).collect();
        let list = format!("[{}]", batch.join(", "));
        let mut tx = common::Tx::begin(l, token);
        tx.run(&format!("INSERT INTO {table} ?"), &[&list]).unwrap();
        tx.commit().unwrap();
        i += per_tx;
    }
}

/// Runs a statement in its own transaction; returns the rows (every page) and the time the
/// session layer took for the statement (its first page and the rest).
fn timed(l: &common::Ledger, token: &str, stmt: &str, params: &[&str]) -> (usize, f64) {
    let txid = l.sessions.start_transaction(token).unwrap();
    let wire: Vec<Param> = params.iter().map(|p| Param::Text(p.to_string())).collect();
    let t = Instant::now();
    let (mut page, _) = l
        .sessions
        .execute_statement(token, &txid, stmt, wire)
        .unwrap();
    let mut rows = page.values.len();
    while let Some(next) = page.next_page_token.take() {
        (page, _) = l.sessions.fetch_page(token, &txid, &next).unwrap();
        rows += page.values.len();
    }
    let took = t.elapsed().as_secs_f64();
    l.sessions.abort(token).unwrap();
    (rows, took)
}

/// A statement's fastest of several runs, and the process's memory around them.
struct Measured {
    rows: usize,
    seconds: f64,
    rss_before: f64,
    rss_peak: f64,
}

impl Measured {
    fn memory(&self) -> String {
        format!(
            "RSS {:.1} MiB before, peak {:.1} MiB",
            self.rss_before, self.rss_peak
        )
    }
}

/// Runs `run` (rows, seconds) `n` times; keeps the fastest, and the peak resident memory
/// over all of them.
fn measure(n: u64, mut run: impl FnMut() -> (usize, f64)) -> Measured {
    reset_peak();
    let rss_before = rss().0;
    let (rows, seconds) = (0..n)
        .map(|_| run())
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one run");
    Measured {
        rows,
        seconds,
        rss_before,
        rss_peak: rss().1,
    }
}

fn main() {
    let docs = arg("--docs", 1_000_000);
    let join = arg("--join", 100_000);
    let lookups = arg("--lookups", 2_000);
    // Runs the scan and the join this many times (the best run is reported): for profiling.
    let repeat = arg("--repeat", 1).max(1);
    println!("partiql benchmark: {docs} documents, join of two {join}-document tables");
    let l = common::ledger();
    let token = l.sessions.start_session("j").unwrap();
    {
        let mut tx = common::Tx::begin(&l, &token);
        for s in [
            "CREATE TABLE Vehicle",
            "CREATE INDEX ON Vehicle (VIN)",
            "CREATE TABLE P",
            "CREATE TABLE Q",
            "CREATE INDEX ON Q (VIN)",
        ] {
            tx.run(s, &[]).unwrap();
        }
        tx.commit().unwrap();
    }
    let t = Instant::now();
    load(&l, &token, "Vehicle", docs, vehicle);
    println!(
        "load: {docs} documents in {:.1} s ({:.0} docs/s); RSS now {:.1} MiB",
        t.elapsed().as_secs_f64(),
        docs as f64 / t.elapsed().as_secs_f64(),
        rss().0
    );

    // Indexed point SELECTs, random keys.
    let mut times = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..lookups {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let vin = format!("\"1N4AL11D75C{:07}\"", x % docs.max(1));
        let (rows, took) = timed(
            &l,
            &token,
            "SELECT * FROM Vehicle AS v WHERE v.VIN = ?",
            &[&vin],
        );
        assert_eq!(rows, 1);
        times.push(took);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)] * 1e6;
    println!(
        "indexed point SELECT: p50 {:.0} µs, p99 {:.0} µs ({lookups} statements)",
        pct(0.5),
        pct(0.99)
    );

    // A full scan with a filter on a field without an index (docs / 100,000 rows match),
    // then one the byte probe cannot test (a comparison on an int): every document decoded.
    println!("phase: scan");
    for (what, stmt) in [
        (
            "full scan with a non-indexed filter",
            "SELECT VALUE v.VIN FROM Vehicle AS v WHERE v.Owner = 'owner-000042'",
        ),
        (
            "full scan, every document decoded",
            "SELECT VALUE v.VIN FROM Vehicle AS v WHERE v.Year > 2030",
        ),
        (
            "every document returned, page by page",
            "SELECT * FROM Vehicle AS v",
        ),
    ] {
        let m = measure(repeat, || timed(&l, &token, stmt, &[]));
        println!(
            "{what}: {docs} documents in {:.2} s = {:.0} documents/s ({} rows); {}",
            m.seconds,
            docs as f64 / m.seconds,
            m.rows,
            m.memory()
        );
    }

    // An indexed join of two tables.
    println!("phase: join");
    let t = Instant::now();
    load(&l, &token, "P", join, |k| {
        format!("{{VIN: \"1N4AL11D75C{k:07}\", Plate: \"P-{k:07}\"}}")
    });
    load(&l, &token, "Q", join, |k| {
        format!(
            "{{VIN: \"1N4AL11D75C{k:07}\", Model: \"Camry\", Year: {}}}",
            1990 + k % 30
        )
    });
    println!(
        "load: two tables of {join} documents in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let m = measure(repeat, || {
        timed(
            &l,
            &token,
            "SELECT p.Plate, q.Year FROM P AS p, Q AS q WHERE q.VIN = p.VIN",
            &[],
        )
    });
    println!(
        "indexed join: {} joined rows in {:.2} s = {:.0} rows/s; {}",
        m.rows,
        m.seconds,
        m.rows as f64 / m.seconds,
        m.memory()
    );
}
