//! Server time of GetDigest, GetBlock and GetRevision with proofs on a large journal.
//!
//!     cargo bench --bench proofs -- [--blocks 100000] [--samples 2000] [--postgres URL]
//!
//! Builds a ledger of `--blocks` blocks (one single-document transaction each, written
//! through the storage commit path with relaxed durability to keep set-up short), then
//! times the three operations through the control plane — the server's work without HTTP.
//! With `--postgres URL` (an empty database), the ledger is also copied there and
//! `verify --storage` of it is timed. Figures go to docs/performance.md.

#[path = "support/mod.rs"]
mod support;
use support::arg;

use std::time::{Duration, Instant};

use qldb_local::api::qldb::{
    CreateLedgerRequest, GetBlockRequest, GetRevisionRequest, ValueHolder,
};
use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::ion::Value;
use qldb_local::journal::block::StatementInfo;
use qldb_local::journal::hash::statement_digest;
use qldb_local::names::new_unique_id;
use qldb_local::storage::{CommitRequest, DocWrite};
use rand::Rng;

fn report(name: &str, mut t: Vec<Duration>) {
    t.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = t.iter().map(|d| us(*d)).sum::<f64>() / t.len() as f64;
    println!(
        "{name:<36} mean {mean:>8.1} µs   p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs   ({} samples)",
        us(t[t.len() / 2]),
        us(t[(t.len() * 99 / 100).min(t.len() - 1)]),
        us(t[t.len() - 1]),
        t.len()
    );
}

fn main() {
    let blocks = arg("--blocks", 100_000);
    let samples = arg("--samples", 2000) as usize;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = qldb_local::server::control_config(&Config::for_tests(dir.path().to_path_buf()));
    cfg.relaxed_durability = true;
    let cp = qldb_local::server::open_control(cfg, system_clock()).unwrap();
    cp.create_ledger(CreateLedgerRequest {
        name: Some("big".into()),
        permissions_mode: Some("ALLOW_ALL".into()),
        ..Default::default()
    })
    .unwrap();
    let db = cp.active_ledger("big").unwrap();
    let table_id = new_unique_id();
    let started = Instant::now();
    db.commit(CommitRequest {
        transaction_id: new_unique_id(),
        commit_ms: 1_700_000_000_000,
        new_tables: vec![(table_id.clone(), "T".into())],
        ..Default::default()
    })
    .unwrap();
    let mut docs = Vec::new();
    for i in 1..blocks.saturating_sub(1) {
        let doc_id = new_unique_id();
        let data = Value::structure([("n", Value::int(i)), ("pad", Value::string("x".repeat(40)))]);
        db.commit(CommitRequest {
            transaction_id: new_unique_id(),
            commit_ms: 1_700_000_000_000 + i as i64,
            statements: vec![StatementInfo {
                statement: "INSERT INTO T ?".into(),
                start_time_ms: 1_700_000_000_000 + i as i64,
                statement_digest: statement_digest("INSERT INTO T ?", std::slice::from_ref(&data)),
            }],
            writes: vec![DocWrite {
                doc_id: doc_id.clone(),
                table_id: table_id.clone(),
                table_name: "T".into(),
                version: 0,
                data: Some(data),
                statements: vec![0],
            }],
            ..Default::default()
        })
        .unwrap();
        docs.push((i + 1, doc_id));
    }
    let tip = db.tip().unwrap();
    println!(
        "journal of {} blocks built in {:.1} s",
        tip.last_seq + 1,
        started.elapsed().as_secs_f64()
    );
    // `qldb-local verify` of the whole file: hashes, then the derived state.
    let t = Instant::now();
    let v = qldb_local::verify::verify_ledger(dir.path(), "big").unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "verify: {} blocks ({} revisions) in {secs:.2} s = {:.0} revisions/s",
        v.blocks,
        docs.len(),
        docs.len() as f64 / secs
    );
    let tip_text = format!(
        "{{strandId:\"{}\",sequenceNo:{}}}",
        tip.strand_id, tip.last_seq
    );
    let holder = |seq: u64| ValueHolder {
        ion_text: Some(format!(
            "{{strandId:\"{}\",sequenceNo:{seq}}}",
            tip.strand_id
        )),
    };
    let mut rng = rand::thread_rng();

    let mut t = Vec::new();
    for _ in 0..samples {
        let s = Instant::now();
        cp.get_digest("big").unwrap();
        t.push(s.elapsed());
    }
    report("GetDigest", t);

    let mut t = Vec::new();
    for _ in 0..samples {
        let seq = rng.gen_range(0..=tip.last_seq);
        let s = Instant::now();
        let r = cp
            .get_block(
                "big",
                GetBlockRequest {
                    block_address: Some(holder(seq)),
                    digest_tip_address: Some(ValueHolder {
                        ion_text: Some(tip_text.clone()),
                    }),
                },
            )
            .unwrap();
        t.push(s.elapsed());
        assert!(r.proof.is_some());
    }
    report("GetBlock with proof", t);

    let mut t = Vec::new();
    for _ in 0..samples {
        let (seq, doc) = &docs[rng.gen_range(0..docs.len())];
        let s = Instant::now();
        let r = cp
            .get_revision(
                "big",
                GetRevisionRequest {
                    block_address: Some(holder(*seq)),
                    document_id: Some(doc.clone()),
                    digest_tip_address: Some(ValueHolder {
                        ion_text: Some(tip_text.clone()),
                    }),
                },
            )
            .unwrap();
        t.push(s.elapsed());
        assert!(r.proof.is_some());
    }
    report("GetRevision with proof", t);

    // With `--postgres URL`: the same ledger copied into that database (`migrate`), and
    // `verify --storage` of it (the rows streamed into a scratch file, then the same checks).
    drop((db, cp)); // the data dir's lock
    let mut args = std::env::args();
    if let Some(url) = args.find(|a| a == "--postgres").and_then(|_| args.next()) {
        use qldb_local::storage::migrate::{run, Place};
        let t = Instant::now();
        run(
            &Place::Dir(dir.path().to_path_buf()),
            &Place::Postgres(url.clone()),
            Some("big"),
            &mut |_| {},
        )
        .unwrap();
        println!("migrate to PostgreSQL: {:.2} s", t.elapsed().as_secs_f64());
        let backend = qldb_local::storage::pg::PgBackend::connect(&url, false).unwrap();
        let t = Instant::now();
        let v = backend.verify(Some("big"), &mut |_, _, _| {}).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "verify --storage: {} blocks ({} revisions) in {secs:.2} s = {:.0} revisions/s",
            v[0].blocks,
            docs.len(),
            docs.len() as f64 / secs
        );
    }
}
