//! `qldb-local verify` names the damaged block for every kind of tampering with a ledger
//! file, accepts an untouched one, and `serve --verify-on-start` refuses a damaged ledger.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use qldb_local::config::Config;
use qldb_local::control::{system_clock, ControlPlane};
use qldb_local::ion::{binary, text};
use qldb_local::journal::hash::CommitDigest;
use qldb_local::session::{Param, Sessions};
use qldb_local::verify::{verify_ledger, Damage};
use rusqlite::Connection;

/// Builds a ledger `t` with five blocks: genesis, CREATE TABLE, two inserts, update+delete.
fn build(dir: &Path) {
    let cfg = Config::for_tests(dir.to_path_buf());
    let control = Arc::new(ControlPlane::open((&cfg).into(), system_clock()).unwrap());
    control
        .create_ledger(qldb_local::api::qldb::CreateLedgerRequest {
            name: Some("t".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            ..Default::default()
        })
        .unwrap();
    let sessions = Sessions::new(cfg.session_config(), control.clone());
    let s = sessions.start_session("t").unwrap();
    let run = |stmts: &[(&str, &[&str])]| {
        let id = sessions.start_transaction(&s).unwrap();
        let mut d = CommitDigest::new(&id);
        for (stmt, params) in stmts {
            let values: Vec<_> = params
                .iter()
                .map(|p| text::from_text_one(p).unwrap())
                .collect();
            d.add_statement(stmt, &values);
            let wire = values
                .iter()
                .map(|v| Param::Binary(binary::encode_one(v)))
                .collect();
            sessions.execute_statement(&s, &id, stmt, wire).unwrap();
        }
        sessions.commit(&s, &id, d.bytes()).unwrap();
    };
    run(&[("CREATE TABLE Cars", &[])]);
    run(&[("INSERT INTO Cars ?", &["{vin:\"A\",price:1.50}"])]);
    run(&[
        ("INSERT INTO Cars ?", &["{vin:\"B\",price:2}"]),
        ("INSERT INTO Cars ?", &["{vin:\"C\"}"]),
    ]);
    run(&[
        ("UPDATE Cars AS c SET c.price = 3 WHERE c.vin = 'A'", &[]),
        ("DELETE FROM Cars AS c WHERE c.vin = 'C'", &[]),
    ]);
}

fn tampered(original: &Path, sql: &str) -> Result<(), Damage> {
    let copy = tempfile::tempdir().unwrap();
    for sub in ["", "ledgers"] {
        std::fs::create_dir_all(copy.path().join(sub)).unwrap();
        for e in std::fs::read_dir(original.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), copy.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let conn = Connection::open(copy.path().join("ledgers/t.sqlite")).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    verify_ledger(copy.path(), "t").map(|_| ())
}

fn damaged_block(r: Result<(), Damage>) -> Option<u64> {
    match r {
        Ok(()) => panic!("tampering was not detected"),
        Err(d) => d.block,
    }
}

#[test]
fn every_kind_of_tampering_names_the_damaged_block() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let ok = verify_ledger(dir.path(), "t").unwrap();
    assert_eq!(ok.blocks, 5);

    // One byte of a stored revision's data (the revisions table).
    let r = tampered(
        dir.path(),
        "UPDATE revisions SET data = CAST(replace(CAST(data AS TEXT), 'B', 'X') AS BLOB) WHERE seq = 3 AND version = 0 AND data IS NOT NULL",
    );
    assert_eq!(damaged_block(r), Some(3));
    // A revision's stored hash.
    let r = tampered(
        dir.path(),
        "UPDATE revisions SET hash = zeroblob(32) WHERE seq = 2",
    );
    assert_eq!(damaged_block(r), Some(2));
    // A deleted revision row.
    let r = tampered(dir.path(), "DELETE FROM revisions WHERE (doc_id, version) IN (SELECT doc_id, version FROM revisions WHERE seq = 4 LIMIT 1)");
    assert_eq!(damaged_block(r), Some(4));
    // A field of a block: one byte of its stored Ion (the price 2 of block 3 becomes 3).
    let r = tampered(
        dir.path(),
        "UPDATE blocks SET ion = CAST(replace(CAST(ion AS TEXT), 'price', 'prize') AS BLOB) WHERE seq = 3",
    );
    assert_eq!(damaged_block(r), Some(3));
    // A block's stored hash column.
    let r = tampered(
        dir.path(),
        "UPDATE blocks SET block_hash = zeroblob(32) WHERE seq = 1",
    );
    assert_eq!(damaged_block(r), Some(1));
    // A deleted block.
    let r = tampered(dir.path(), "DELETE FROM blocks WHERE seq = 2");
    assert_eq!(damaged_block(r), Some(2));
    // A digest-tree leaf.
    let r = tampered(
        dir.path(),
        "UPDATE merkle SET hash = zeroblob(32) WHERE level = 0 AND idx = 4",
    );
    assert_eq!(damaged_block(r), Some(4));
    // An inner digest-tree node: the digest no longer matches (no single block to blame).
    let r = tampered(
        dir.path(),
        "UPDATE merkle SET hash = zeroblob(32) WHERE level = 1 AND idx = 0",
    );
    assert!(r.is_err());
}

#[test]
fn the_command_line_reports_and_exits_accordingly() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let bin = env!("CARGO_BIN_EXE_qldb-local");
    let out = Command::new(bin)
        .args(["verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("ok t: 5 blocks, digest "), "{stdout}");

    let conn = Connection::open(dir.path().join("ledgers/t.sqlite")).unwrap();
    conn.execute(
        "UPDATE blocks SET block_hash = zeroblob(32) WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let out = Command::new(bin)
        .args(["verify", "--ledger", "t", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("ledger t: block 3: "), "{stderr}");

    let out = Command::new(bin)
        .args([
            "serve",
            "--verify-on-start",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a damaged ledger must keep the server from starting"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("block 3"));
}
