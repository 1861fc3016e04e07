//! The engine alone (no HTTP): concurrent single-document transactions through the session
//! layer, against raw rusqlite single-row transactions in the same run.
//!
//!     cargo bench --bench engine -- [--clients 16] [--seconds 5] [--docs 200000]
//!
//! A durable (WAL, synchronous=FULL) file ledger; each client thread has its own session and
//! runs StartTransaction, one `INSERT INTO T ?`, CommitTransaction (with the driver's commit
//! digest) in a loop. Raw SQLite: one connection per thread, WAL, synchronous=FULL,
//! `BEGIN IMMEDIATE; INSERT; COMMIT`. Prints transactions/s for both, their ratio, and the
//! SQLite commits (fsyncs) per committed transaction that group commit made.
//!
//! Then the storage footprint: `--docs` ~100-byte documents (0 skips it) in 40-document
//! INSERT transactions into a table with one index, the ledger closed (its WAL checkpointed),
//! and the ledger file's bytes per document, with each SQLite table's and index's share
//! (SQLite's `dbstat`). Figures go to docs/performance.md.

#[path = "support/mod.rs"]
mod support;
use support::{arg, vehicle};

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/support/mod.rs"]
mod server_support;
use server_support::process_cpu_time;

/// The allocator the server runs with (src/main.rs), so that the engine is measured as it
/// serves; raw SQLite in the same process gets it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `work` on `clients` threads for `seconds`; returns the operations done.
fn run(clients: u64, seconds: u64, work: impl Fn(u64, u64) + Send + Sync + 'static) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, done, work) = (stop.clone(), done.clone(), work.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    work(c, i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed)
}

fn main() {
    let clients = arg("--clients", 16);
    let seconds = arg("--seconds", 5);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("engine benchmark: {clients} clients, {seconds} s per phase, durability full, {cores} cores");

    let l = Arc::new(common::ledger());
    {
        let token = l.sessions.start_session("j").unwrap();
        let mut tx = common::Tx::begin(&l, &token);
        tx.run("CREATE TABLE T", &[]).unwrap();
        tx.commit().unwrap();
    }
    let db = l.control.active_ledger("j").unwrap();
    let before = db.commit_counts();
    let tokens: Vec<String> = (0..clients)
        .map(|_| l.sessions.start_session("j").unwrap())
        .collect();
    let tokens = Arc::new(tokens);
    let ledger = l.clone();
    let t = Instant::now();
    let cpu = process_cpu_time(std::process::id());
    let n = run(clients, seconds, move |c, i| {
        let mut tx = common::Tx::begin(&ledger, &tokens[c as usize]);
        let doc = format!(
            "{{k: {}, client: {c}, payload: \"{}\"}}",
            c * 1_000_000_000 + i,
            "x".repeat(64)
        );
        tx.run("INSERT INTO T ?", &[&doc]).unwrap();
        tx.commit().unwrap();
    });
    let engine = n as f64 / t.elapsed().as_secs_f64();

    let engine_cpu = cpu_use(cpu, t, n);
    // The WAL starts over once a checkpoint has copied all of it (src/storage/sqlite/checkpoint.rs):
    // its size stays bounded however long the load runs.
    let wal = std::fs::metadata(l.data_dir().join("ledgers/j.sqlite-wal")).map_or(0, |m| m.len());
    let after = db.commit_counts();
    let (txs, fsyncs) = (after.0 - before.0, after.1 - before.1);
    println!(
        "qldb-local session layer, single-document INSERT transaction {engine:>8.0} tx/s   ({n} tx; {:.3} SQLite commits per committed transaction)",
        fsyncs as f64 / txs.max(1) as f64
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
    }
    let conns: Vec<std::sync::Mutex<rusqlite::Connection>> = (0..clients)
        .map(|_| {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.pragma_update(None, "synchronous", "FULL").unwrap();
            c.busy_timeout(Duration::from_secs(30)).unwrap();
            std::sync::Mutex::new(c)
        })
        .collect();
    let conns = Arc::new(conns);
    let t = Instant::now();
    let cpu = process_cpu_time(std::process::id());
    let n = run(clients, seconds, move |c, i| {
        let conn = conns[c as usize].lock().unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute(
            "INSERT INTO t (k, v) VALUES (?1, ?2)",
            rusqlite::params![(c * 1_000_000_000 + i) as i64, vec![7u8; 100]],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    });
    let raw = n as f64 / t.elapsed().as_secs_f64();
    let raw_cpu = cpu_use(cpu, t, n);
    println!("raw rusqlite single-row INSERT transaction (WAL, FULL)   {raw:>8.0} tx/s   ({n} tx)");
    println!("ratio engine / raw SQLite: {:.2}", engine / raw);
    println!(
        "ledger WAL file after the engine phase: {:.1} MB",
        wal as f64 / 1e6
    );
    println!("CPU per transaction (this process, user + system): engine {engine_cpu}; raw SQLite {raw_cpu}");
    drop(l);

    let docs = arg("--docs", 200_000);
    if docs > 0 {
        footprint(docs);
    }
}

/// This process's CPU time per operation since `cpu` was read at `since`, and how many
/// cores it kept busy on average.
fn cpu_use(cpu: Duration, since: Instant, ops: u64) -> String {
    let used = process_cpu_time(std::process::id()) - cpu;
    format!(
        "{:.0} µs ({:.2} cores busy)",
        used.as_secs_f64() * 1e6 / ops.max(1) as f64,
        used.as_secs_f64() / since.elapsed().as_secs_f64()
    )
}

/// Loads `docs` ~100-byte documents with one index and prints the ledger file's bytes per
/// document, and each table's and index's share of it.
fn footprint(docs: u64) {
    let l = common::ledger();
    let token = l.sessions.start_session("j").unwrap();
    {
        let mut tx = common::Tx::begin(&l, &token);
        tx.run("CREATE TABLE Vehicle", &[]).unwrap();
        tx.run("CREATE INDEX ON Vehicle (VIN)", &[]).unwrap();
        tx.commit().unwrap();
    }
    let t = Instant::now();
    let per_tx = 40;
    let mut i = 0;
    while i < docs {
        let batch: Vec<String> = (i..(i + per_tx).min(docs)).map(vehicle).collect();
        let list = format!("[{}]", batch.join(", "));
        let mut tx = common::Tx::begin(&l, &token);
        tx.run("INSERT INTO Vehicle ?", &[&list]).unwrap();
        tx.commit().unwrap();
        i += per_tx;
    }
    let load = t.elapsed().as_secs_f64();
    let dir = l.close();
    let file = common::ledger_file(dir.path(), "j");
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "footprint: {docs} documents (~{} bytes of Ion text each) in {:.1} s ({:.0} docs/s): ledger file {:.1} MB = {:.0} bytes per document",
        vehicle(0).len(),
        load,
        docs as f64 / load,
        bytes as f64 / 1e6,
        bytes as f64 / docs as f64
    );
    let conn = rusqlite::Connection::open(&file).unwrap();
    let shares: rusqlite::Result<Vec<(String, i64)>> = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name HAVING SUM(pgsize) > 4096 ORDER BY 2 DESC")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        });
    match shares {
        Ok(shares) => {
            for (name, size) in shares {
                println!(
                    "  {name:<32} {:>7.0} bytes per document",
                    size as f64 / docs as f64
                );
            }
        }
        Err(e) => println!("  (no per-table figures: {e})"),
    }
}
