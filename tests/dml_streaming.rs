//! DML reads its table as SELECT does (a page at a time, with the byte probe) and works out
//! each document's write as it reads: it holds the writes, never the table, and a statement
//! that would write more documents than a transaction may stops reading there and fails on
//! the limit, writing nothing.

mod common;

use common::*;
use qldb_local::session::SessionError;

const DOCS: usize = 2_000;

fn setup(l: &Ledger, s: &str) {
    let mut t = Tx::begin(l, s);
    t.run("CREATE TABLE T", &[]).unwrap();
    t.commit().unwrap();
    for start in (0..DOCS).step_by(40) {
        let docs: Vec<String> = (start..start + 40)
            .map(|i| {
                format!(
                    "{{n: {i}, tag: \"{}\", items: [{{k: 1}}, {{k: {}}}]}}",
                    if i % 700 == 3 { "x" } else { "y" },
                    i % 50
                )
            })
            .collect();
        let mut t = Tx::begin(l, s);
        t.run("INSERT INTO T ?", &[&format!("[{}]", docs.join(", "))])
            .unwrap();
        t.commit().unwrap();
    }
}

fn count(l: &Ledger, s: &str, stmt: &str) -> i64 {
    let mut t = Tx::begin(l, s);
    let rows = t.run(stmt, &[]).unwrap();
    t.commit().unwrap();
    match rows[0].field("_1").map(|v| &v.data) {
        Some(qldb_local::ion::Data::Int(i)) => i.try_into().unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dml_over_a_large_table_writes_only_what_matches() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let mut t = Tx::begin(&l, &s);
    let rows = t
        .run("UPDATE T AS t SET t.hit = true WHERE t.tag = 'x'", &[])
        .unwrap();
    assert_eq!(rows.len(), 3, "documents 3, 703 and 1403");
    // A statement does not read its own writes: each document is raised once.
    let rows = t
        .run("UPDATE T AS t SET t.n = t.n + 10000 WHERE t.n < 5", &[])
        .unwrap();
    assert_eq!(rows.len(), 5);
    t.commit().unwrap();
    assert_eq!(
        count(&l, &s, "SELECT COUNT(*) FROM T AS t WHERE t.hit = true"),
        3
    );
    assert_eq!(
        count(&l, &s, "SELECT COUNT(*) FROM T AS t WHERE t.n >= 10000"),
        5
    );
    assert_eq!(
        count(&l, &s, "SELECT COUNT(*) FROM T AS t WHERE t.n >= 20000"),
        0
    );
    // Nested FROM items: only documents with a matching element are written.
    let mut t = Tx::begin(&l, &s);
    let rows = t
        .run(
            "FROM T AS t, t.items AS i WHERE t.tag = 'x' AND i.k = 3 REMOVE i",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 3, "documents 3, 703 and 1403 have k: 3");
    t.commit().unwrap();
}

#[test]
fn dml_that_would_write_too_many_documents_fails_and_writes_nothing() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    for stmt in [
        "DELETE FROM T",
        "UPDATE T AS t SET t.z = 1 WHERE t.n >= 1000",
        "FROM T AS t, t.items AS i WHERE i.k = 1 REMOVE i",
    ] {
        let mut t = Tx::begin(&l, &s);
        match t.run(stmt, &[]) {
            Err(SessionError::BadRequest(m)) => {
                assert!(m.contains("limit of 40 documents written"), "{stmt}: {m}")
            }
            other => panic!("{stmt}: {other:?}"),
        }
        // The failed statement left nothing behind; the transaction goes on.
        assert_eq!(
            t.run("DELETE FROM T AS t WHERE t.n = 7", &[])
                .unwrap()
                .len(),
            1
        );
        l.sessions.abort(&s).unwrap();
    }
    assert_eq!(count(&l, &s, "SELECT COUNT(*) FROM T"), DOCS as i64);
}

#[test]
fn deleting_the_transactions_own_inserts_frees_room_for_more_writes() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    for stmt in ["CREATE TABLE K", "CREATE INDEX ON K (k)"] {
        let mut t = Tx::begin(&l, &s);
        t.run(stmt, &[]).unwrap();
        t.commit().unwrap();
    }
    let old: Vec<String> = (0..12).map(|i| format!("{{k: \"old\", i: {i}}}")).collect();
    let mut t = Tx::begin(&l, &s);
    t.run("INSERT INTO K ?", &[&format!("[{}]", old.join(", "))])
        .unwrap();
    t.commit().unwrap();
    let new: Vec<String> = (0..30).map(|i| format!("{{k: \"new\", i: {i}}}")).collect();
    let mut t = Tx::begin(&l, &s);
    t.run("INSERT INTO K ?", &[&format!("[{}]", new.join(", "))])
        .unwrap();
    // 42 documents, 30 of them this transaction's own: their deletes leave 12 writes.
    let rows = t
        .run("DELETE FROM K AS x WHERE x.k IN ['new', 'old']", &[])
        .unwrap();
    assert_eq!(rows.len(), 42);
    t.commit().unwrap();
    assert_eq!(count(&l, &s, "SELECT COUNT(*) FROM K"), 0);
}
