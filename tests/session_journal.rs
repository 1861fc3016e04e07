//! The session layer in-process: every committed write transaction appends exactly one
//! block whose hashes recompute from its own contents and chain to the previous block;
//! read-only transactions append none; OCC conflicts, failed statements and digest
//! mismatches behave as the drivers expect.

mod common;

use std::sync::Arc;

use common::*;
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{text, Data, Value};
use qldb_local::journal::hash::{dot, merkle, Hash};
use qldb_local::session::SessionError;

fn blob(v: &Value, f: &str) -> Hash {
    match &v.field(f).unwrap().data {
        Data::Blob(b) => b.clone(),
        other => panic!("{f}: {other:?}"),
    }
}

/// Recomputes every hash of every stored block from its own Ion, as an auditor would.
fn verify_chain(l: &Ledger) -> Vec<Value> {
    let db = l.control.active_ledger("j").unwrap();
    let blocks: Vec<Value> = db.blocks().unwrap().into_values().collect();
    let mut prev = vec![0u8; 32];
    let mut leaves = Vec::new();
    for (seq, b) in blocks.iter().enumerate() {
        assert_eq!(
            blob(b, "previousBlockHash"),
            prev,
            "block {seq} links to its predecessor"
        );
        let list: Vec<Hash> = match &b.field("entriesHashList").unwrap().data {
            Data::List(items) => items
                .iter()
                .map(|i| match &i.data {
                    Data::Blob(x) => x.clone(),
                    _ => panic!(),
                })
                .collect(),
            _ => panic!(),
        };
        if let Some(ti) = b.field("transactionInfo") {
            assert!(
                list.contains(&ion_hash(ti).to_vec()),
                "H(transactionInfo) is an entry"
            );
        }
        if let Some(Value {
            data: Data::List(revs),
            ..
        }) = b.field("revisions")
        {
            let mut hashes = Vec::new();
            for r in revs {
                let h = blob(r, "hash");
                if let (Some(meta), Some(data)) = (r.field("metadata"), r.field("data")) {
                    assert_eq!(dot(&ion_hash(meta), &ion_hash(data)), h, "revision hash");
                }
                hashes.push(h);
            }
            assert!(
                list.contains(&merkle(&hashes)),
                "the revisions' Merkle root is an entry"
            );
        }
        assert_eq!(merkle(&list), blob(b, "entriesHash"));
        let bh = dot(&blob(b, "entriesHash"), &prev);
        assert_eq!(bh, blob(b, "blockHash"), "block {seq} hash");
        prev = bh;
        leaves.push(prev.clone());
    }
    let (tip, digest) = db.digest().unwrap();
    assert_eq!(tip as usize, blocks.len() - 1);
    assert_eq!(digest, merkle(&leaves));
    blocks
}

#[test]
fn write_transactions_append_one_verifiable_block_each() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s);
    let created = t.run("CREATE TABLE Vehicle", &[]).unwrap();
    assert_eq!(
        created[0]
            .field("tableId")
            .map(|v| text::to_text_one(v).len()),
        Some(24)
    );
    t.run("CREATE INDEX ON Vehicle (VIN)", &[]).unwrap();
    t.commit().unwrap();

    let mut t = Tx::begin(&l, &s);
    let doc = r#"{VIN:"1N4AL11D75C109151",Price:12500.50,Registered:2023-12-31T12:00:00.000Z,Tags:["a"],Photo:{{3q2+7w==}}}"#;
    let ids = t.run("INSERT INTO Vehicle ?", &[doc]).unwrap();
    assert_eq!(ids.len(), 1);
    t.run("INSERT INTO Vehicle VALUE {'VIN': 'B', 'Price': 1}", &[])
        .unwrap();
    t.commit().unwrap();

    // Read-only: no block.
    let before = verify_chain(&l).len();
    let mut t = Tx::begin(&l, &s);
    let rows = t
        .run(
            "SELECT * FROM Vehicle AS v WHERE v.VIN = ?",
            &["\"1N4AL11D75C109151\""],
        )
        .unwrap();
    assert_eq!(
        rows,
        vec![text::from_text_one(doc).unwrap()],
        "full Ion fidelity"
    );
    t.commit().unwrap();
    assert_eq!(verify_chain(&l).len(), before);

    let mut t = Tx::begin(&l, &s);
    t.run(
        "UPDATE Vehicle AS v SET v.Price = v.Price + 1 WHERE v.VIN = 'B'",
        &[],
    )
    .unwrap();
    t.run(
        "DELETE FROM Vehicle AS v WHERE v.VIN = ?",
        &["\"1N4AL11D75C109151\""],
    )
    .unwrap();
    t.commit().unwrap();

    let blocks = verify_chain(&l);
    assert_eq!(blocks.len(), 4, "genesis + 3 write transactions");
    let last = &blocks[3];
    let Data::List(revs) = &last.field("revisions").unwrap().data else {
        panic!()
    };
    assert_eq!(revs.len(), 2);
    let versions: Vec<String> = revs
        .iter()
        .map(|r| text::to_text_one(r.field("metadata").unwrap().field("version").unwrap()))
        .collect();
    assert_eq!(versions, ["1", "1"]);
    assert!(
        revs[1].field("data").is_none(),
        "a delete revision has no data"
    );
    let ti = last.field("transactionInfo").unwrap();
    let Data::List(stmts) = &ti.field("statements").unwrap().data else {
        panic!()
    };
    assert_eq!(stmts.len(), 2);

    let mut t = Tx::begin(&l, &s);
    let rows = t
        .run("SELECT VALUE v.Price FROM Vehicle AS v", &[])
        .unwrap();
    assert_eq!(text::to_text_one(&rows[0]), "2");
    t.commit().unwrap();
}

#[test]
fn occ_conflicts_close_the_loser_and_failed_statements_leave_no_trace() {
    let l = ledger();
    let s1 = l.sessions.start_session("j").unwrap();
    let s2 = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s1);
    t.run("CREATE TABLE T", &[]).unwrap();
    t.commit().unwrap();
    let mut t = Tx::begin(&l, &s1);
    t.run("INSERT INTO T VALUE {'k': 1, 'n': 0}", &[]).unwrap();
    t.commit().unwrap();

    let mut a = Tx::begin(&l, &s1);
    let mut b = Tx::begin(&l, &s2);
    a.run("UPDATE T AS t SET t.n = t.n + 1 WHERE t.k = 1", &[])
        .unwrap();
    b.run("UPDATE T AS t SET t.n = t.n + 1 WHERE t.k = 1", &[])
        .unwrap();
    a.commit().unwrap();
    let b_id = b.id.clone();
    assert!(matches!(b.commit(), Err(SessionError::OccConflict(_))));
    // The loser's transaction is closed: a new one can start on the same session.
    let mut c = Tx::begin(&l, &s2);
    assert_ne!(c.id, b_id);
    assert!(c.run("SELECT * FROM Nope", &[]).is_err(), "statement error");
    assert!(c.run("INSERT INTO T VALUE 5", &[]).is_err(), "not a struct");
    c.run("INSERT INTO T VALUE {'k': 2}", &[]).unwrap();
    c.commit().unwrap(); // the failed statements were folded into the digest too

    let mut d = Tx::begin(&l, &s1);
    let rows = d
        .run("SELECT VALUE t.n FROM T AS t WHERE t.k = 1", &[])
        .unwrap();
    assert_eq!(text::to_text_one(&rows[0]), "1");
    let count = d.run("SELECT COUNT(*) FROM T", &[]).unwrap();
    assert_eq!(text::to_text_one(&count[0]), "{_1:2}");
    d.commit().unwrap();
    verify_chain(&l);
}

#[test]
fn digest_mismatch_and_state_machine_errors() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    assert!(
        matches!(l.sessions.commit(&s, "aaaaaaaaaaaaaaaaaaaaaa", &[0; 32]), Err(SessionError::BadRequest(m)) if m == "No open transaction")
    );
    let t = Tx::begin(&l, &s);
    assert!(
        matches!(l.sessions.start_transaction(&s), Err(SessionError::BadRequest(m)) if m == "Transaction already open")
    );
    assert!(
        matches!(l.sessions.commit(&s, &t.id, &[1; 32]), Err(SessionError::BadRequest(m)) if m == "Digests don't match")
    );
    assert!(
        matches!(l.sessions.commit(&s, &t.id, t.digest.bytes()), Err(SessionError::BadRequest(m)) if m == "No open transaction")
    );
    l.sessions.abort(&s).unwrap();
    l.sessions.end_session(&s).unwrap();
    assert!(matches!(
        l.sessions.start_transaction(&s),
        Err(SessionError::InvalidSession(_))
    ));
    assert!(matches!(
        l.sessions.start_session("nope"),
        Err(SessionError::BadRequest(_))
    ));
}

#[test]
fn deleting_the_ledger_ends_its_sessions() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    l.control.delete_ledger("j").unwrap();
    assert!(
        matches!(l.sessions.start_transaction(&s), Err(SessionError::InvalidSession(m)) if m == "No such session")
    );
    assert!(matches!(
        l.sessions.start_session("j"),
        Err(SessionError::BadRequest(_))
    ));
}

#[test]
fn starting_sessions_while_others_run_commands_never_deadlocks() {
    let l = Arc::new(ledger());
    {
        let s = l.sessions.start_session("j").unwrap();
        let mut t = Tx::begin(&l, &s);
        t.run("CREATE TABLE C", &[]).unwrap();
        t.commit().unwrap();
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for worker in 0..6 {
        let l = l.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            for i in 0..40 {
                let s = l.sessions.start_session("j").unwrap();
                // Scans conflict with concurrent inserts: retry like a driver does.
                loop {
                    let mut t = Tx::begin(&l, &s);
                    t.run("INSERT INTO C ?", &[&format!("{{w:{worker},i:{i}}}")])
                        .unwrap();
                    t.run("SELECT * FROM C AS c WHERE c.w = ?", &[&worker.to_string()])
                        .unwrap();
                    match t.commit() {
                        Ok(()) => break,
                        Err(SessionError::OccConflict(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
                l.sessions.end_session(&s).unwrap();
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..6 {
        done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a worker is stuck: sessions deadlocked");
    }
    let s = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s);
    let n = t.run("SELECT COUNT(*) FROM C", &[]).unwrap();
    assert_eq!(text::to_text_one(&n[0]), "{_1:240}");
    t.commit().unwrap();
    verify_chain(&l);
}
