//! `qldb-local verify --storage`: a ledger in PostgreSQL verifies, and an edit of any row the
//! journal determines — a block's Ion, a stored block hash, a digest-tree node, a document's
//! data, version or table, a revision row or its side columns and redaction marker, a block
//! row, the table catalog, an index entry or OCC record, the schema's version — is found and
//! named.

#[path = "pg/mod.rs"]
mod pg;

use qldb_local::ion::Value;
use qldb_local::journal::block::StatementInfo;
use qldb_local::names::LedgerName;
use qldb_local::storage::pg::PgBackend;
use qldb_local::storage::{Backend, CommitRequest, DocWrite, LedgerRecord};

const T: &str = "TableT0000000000000001";

fn write(i: u64, version: u64, data: Option<Value>, statement: u32) -> DocWrite {
    DocWrite {
        doc_id: format!("Doc{i:019}"),
        table_id: T.into(),
        table_name: "T".into(),
        version,
        data,
        statements: vec![statement],
    }
}

/// The statements of a transaction, as the session layer records them (the verifier checks
/// that each table and index was made by one).
fn statements(texts: &[&str]) -> Vec<StatementInfo> {
    texts
        .iter()
        .map(|t| StatementInfo {
            statement: t.to_string(),
            start_time_ms: 1_704_067_200_000,
            statement_digest: vec![0; 32],
        })
        .collect()
}

fn body(i: u64, tag: &str) -> Value {
    Value::structure([("n", Value::int(i)), ("tag", Value::string(tag))])
}

/// A ledger `v` with a table, an index, inserts, an update and a delete; its schema name.
fn ledger(url: &str) -> (PgBackend, String) {
    let backend = PgBackend::connect(url, false).unwrap();
    let mut catalog = backend.open_catalog().unwrap();
    catalog
        .insert_ledger(
            &LedgerRecord {
                ord: 0,
                name: "v".into(),
                arn: "arn:aws:qldb:us-east-1:123456789012:ledger/v".into(),
                permissions_mode: "ALLOW_ALL".into(),
                deletion_protection: false,
                kms_key_arn: None,
                created_ms: 1,
                active_at_ms: 1,
                kms_updated_ms: None,
                deleting_since_ms: None,
                gone_at_ms: None,
            },
            &Default::default(),
        )
        .unwrap();
    let db = backend
        .create_ledger(
            &LedgerName::parse("v").unwrap(),
            "VerifyStrand0000000001",
            1,
        )
        .unwrap();
    let reqs = [
        CommitRequest {
            statements: statements(&[
                "CREATE TABLE T",
                "CREATE INDEX ON T (tag)",
                "INSERT INTO T ?",
            ]),
            new_tables: vec![(T.into(), "T".into())],
            new_indexes: vec![("IndexI0000000000000001".into(), T.into(), "tag".into())],
            writes: (0..20)
                .map(|i| write(i, 0, Some(body(i, "a")), 2))
                .collect(),
            ..Default::default()
        },
        CommitRequest {
            statements: statements(&[
                "UPDATE T SET tag = 'b' WHERE n = 3",
                "DELETE FROM T WHERE n = 4",
            ]),
            writes: vec![write(3, 1, Some(body(3, "b")), 0), write(4, 1, None, 1)],
            ..Default::default()
        },
    ];
    for (n, req) in reqs.into_iter().enumerate() {
        db.commit(CommitRequest {
            transaction_id: format!("tx{n:020}"),
            commit_ms: 1_704_067_200_000 + n as i64,
            ..req
        })
        .unwrap();
    }
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let schema: String = c
        .query_one(
            "SELECT schema_name FROM qldb_catalog.ledger_data WHERE name = 'v'",
            &[],
        )
        .unwrap()
        .get(0);
    (backend, schema)
}

#[test]
fn every_edit_of_a_journal_determined_row_is_found() {
    let server = pg::fresh_database();
    let (backend, s) = ledger(&server.url);
    let verified = backend.verify(None, &mut |_, _, _| {}).unwrap();
    assert_eq!((verified.len(), verified[0].tip), (1, 2));
    let mut c = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    // The same ledger again (same strand, transactions and times: the same rows), to undo
    // each edit from.
    let pristine = pg::fresh_database();
    let (_, pristine_schema) = ledger(&pristine.url);

    // Each edit: (the edit, what the damage report must say).
    let edits = [
        (
            format!("UPDATE {s}.blocks SET ion = (SELECT ion FROM {s}.blocks WHERE seq = 1) WHERE seq = 2"),
            "block 2: ",
        ),
        (
            format!("UPDATE {s}.blocks SET block_hash = sha256(block_hash) WHERE seq = 1"),
            "block 1: its blockHash does not match",
        ),
        (
            format!("UPDATE {s}.merkle SET hash = sha256(hash) WHERE level = 1"),
            "digest-tree node",
        ),
        (
            format!("DELETE FROM {s}.blocks WHERE seq = 1"),
            "block 1: is missing",
        ),
        (
            format!("UPDATE {s}.documents SET data = (SELECT data FROM {s}.documents WHERE doc_id = 'Doc0000000000000000005') WHERE doc_id = 'Doc0000000000000000006'"),
            "row for Doc0000000000000000006",
        ),
        (
            format!("UPDATE {s}.documents SET version = 7 WHERE doc_id = 'Doc0000000000000000003'"),
            "row for Doc0000000000000000003",
        ),
        (
            format!("DELETE FROM {s}.documents WHERE doc_id = 'Doc0000000000000000009'"),
            "document Doc0000000000000000009 is missing",
        ),
        (
            format!("UPDATE {s}.revisions SET hash = sha256(hash) WHERE doc_id = 'Doc0000000000000000001'"),
            "revision Doc0000000000000000001 version 0",
        ),
        (
            format!("DELETE FROM {s}.revisions WHERE doc_id = 'Doc0000000000000000004' AND version = 1"),
            "revision Doc0000000000000000004 version 1 is missing",
        ),
        (
            format!("DELETE FROM {s}.index_entries WHERE doc_id = 'Doc0000000000000000002'"),
            "the index entries miss 1 keys",
        ),
        (
            format!("UPDATE {s}.index_entries SET key = '\\x00'::bytea WHERE doc_id = 'Doc0000000000000000003'"),
            "entry for document Doc0000000000000000003",
        ),
        (
            format!("UPDATE {s}.meta SET value = 'other' WHERE key = 'ledger_name'"),
            "meta table",
        ),
        // Beside the hashes: each revision row's side columns and redaction marker, each
        // block row's columns, the table catalog, the OCC records, the schema's version.
        (
            format!("UPDATE {s}.revisions SET tx_time_ms = 5 WHERE doc_id = 'Doc0000000000000000001'"),
            "Doc0000000000000000001",
        ),
        (
            format!("UPDATE {s}.revisions SET redacted_seq = 2 WHERE doc_id = 'Doc0000000000000000005'"),
            "Doc0000000000000000005",
        ),
        (
            format!("UPDATE {s}.blocks SET tx_id = 'other' WHERE seq = 1"),
            "block 1",
        ),
        (
            format!("UPDATE {s}.tables SET name = 'X'"),
            "TableT0000000000000001",
        ),
        (
            format!("INSERT INTO {s}.index_key_seq VALUES (99, '\\x00'::bytea, 1)"),
            "index number 99",
        ),
        (
            format!("UPDATE {s}.schema_version SET version = 3"),
            "at version 3",
        ),
    ];
    let mut missed = Vec::new();
    for (edit, said) in edits {
        c.batch_execute(&edit).unwrap();
        let damage = backend
            .verify(Some("v"), &mut |_, _, _| {})
            .expect_err(&edit)
            .to_string();
        if !damage.contains(said) {
            missed.push(format!("{edit}\n  reported: {damage}"));
        }
        // Undone: the pristine rows copied back.
        restore(&pristine.url, &pristine_schema, &server.url, &s);
        backend.verify(Some("v"), &mut |_, _, _| {}).unwrap();
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// Replaces every table of schema `to_s` in `to` with the rows of schema `from_s` in `from`.
fn restore(from: &str, from_s: &str, to: &str, to_s: &str) {
    let mut src = postgres::Client::connect(from, postgres::NoTls).unwrap();
    let mut dst = postgres::Client::connect(to, postgres::NoTls).unwrap();
    let mut tx = dst.transaction().unwrap();
    for table in [
        "schema_version",
        "index_entries",
        "index_key_seq",
        "revisions",
        "documents",
        "indexes",
        "tables",
        "merkle",
        "blocks",
        "meta",
    ] {
        tx.batch_execute(&format!("DELETE FROM {to_s}.{table}"))
            .unwrap();
    }
    for table in [
        "schema_version",
        "meta",
        "blocks",
        "merkle",
        "tables",
        "indexes",
        "documents",
        "revisions",
        "index_entries",
        "index_key_seq",
    ] {
        let mut out = Vec::new();
        let mut r = src
            .copy_out(&format!("COPY {from_s}.{table} TO STDOUT"))
            .unwrap();
        std::io::Read::read_to_end(&mut r, &mut out).unwrap();
        drop(r);
        let mut w = tx
            .copy_in(&format!("COPY {to_s}.{table} FROM STDIN"))
            .unwrap();
        std::io::Write::write_all(&mut w, &out).unwrap();
        w.finish().unwrap();
    }
    tx.commit().unwrap();
}
