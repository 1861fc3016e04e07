//! The ledger file's stored forms (`src/storage/sqlite/stored.rs`): blocks are stored
//! compressed and revision rows keep no copy of the data their block holds. A file written
//! before (plain Ion blocks, revision rows holding their data and its hash) reads, verifies,
//! takes new commits and redactions, and shows the same history as the new form.

mod common;

use qldb_local::ion::binary::encode_one;
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{Data, Value};
use qldb_local::storage::sqlite::stored;
use qldb_local::verify::verify_ledger;
use rusqlite::Connection;

/// What a user sees of table A: its history, its committed view, and every block.
fn views(dir: &std::path::Path) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let l = common::serve(dir);
    let token = l.sessions.start_session("j").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    let history = tx.run("SELECT * FROM history(A)", &[]).unwrap();
    let committed = tx.run("SELECT * FROM _ql_committed_A", &[]).unwrap();
    tx.commit().unwrap();
    let blocks = l.control.active_ledger("j").unwrap().blocks().unwrap();
    (history, committed, blocks.into_values().collect())
}

/// Rewrites the file in the form qldb-local wrote before: every block as plain Ion binary,
/// every revision row holding its data and its data hash.
fn to_old_form(file: &std::path::Path) {
    let conn = Connection::open(file).unwrap();
    let blocks: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT seq, ion FROM blocks ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (seq, packed) in blocks {
        let ion = stored::unpack_block(&packed).unwrap().into_owned();
        assert_ne!(ion, packed, "block {seq} is stored compressed");
        conn.execute(
            "UPDATE blocks SET ion = ?2 WHERE seq = ?1",
            rusqlite::params![seq, ion],
        )
        .unwrap();
        let block = stored::decode_block(&ion).unwrap();
        let Some(Data::List(revs)) = block.field("revisions").map(|v| &v.data) else {
            continue;
        };
        let rows: Vec<(String, i64, i64)> = conn
            .prepare(
                "SELECT doc_id, version, position FROM revisions WHERE seq = ?1 AND data = X''",
            )
            .unwrap()
            .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (doc, version, position) in rows {
            let data = revs[position as usize].field("data").unwrap();
            conn.execute(
                "UPDATE revisions SET data = ?3, data_hash = ?4 WHERE doc_id = ?1 AND version = ?2",
                rusqlite::params![doc, version, encode_one(data), ion_hash(data).to_vec()],
            )
            .unwrap();
        }
    }
}

fn count(file: &std::path::Path, sql: &str) -> i64 {
    Connection::open(file)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_file_in_the_earlier_form_reads_and_verifies_as_the_new_one() {
    let dir = common::rich_ledger();
    let file = common::ledger_file(dir.path(), "j");
    // The new form: no revision row holds a copy of its data.
    assert_eq!(
        count(
            &file,
            "SELECT count(*) FROM revisions WHERE length(data) > 0"
        ),
        0
    );
    assert!(count(&file, "SELECT count(*) FROM revisions WHERE data = X''") > 0);
    verify_ledger(dir.path(), "j").unwrap();
    let new_form = views(dir.path());
    assert!(new_form.0.iter().any(|r| r.field("dataHash").is_some()));

    to_old_form(&file);
    assert_eq!(
        count(&file, "SELECT count(*) FROM revisions WHERE data = X''"),
        0
    );
    verify_ledger(dir.path(), "j").unwrap();
    assert_eq!(views(dir.path()), new_form);

    // New commits on the old file are written in the new form beside the old rows, and a
    // redaction of an old-form revision removes its data from its row and its block.
    let l = common::serve(dir.path());
    let token = l.sessions.start_session("j").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("INSERT INTO A VALUE {'k': 11, 'v': 'new'}", &[])
        .unwrap();
    tx.run("UPDATE A AS a SET a.v = 'twice' WHERE a.k = 9", &[])
        .unwrap();
    tx.commit().unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    let old = tx
        .run(
            "SELECT h.blockAddress, h.metadata.id, h.data FROM history(A) AS h WHERE h.data.v = 3 AND h.data.k = 9",
            &[],
        )
        .unwrap();
    assert_eq!(old.len(), 1, "{old:?}");
    let a = common::text(
        &tx.run(
            "SELECT tableId FROM information_schema.user_tables WHERE name = 'A'",
            &[],
        )
        .unwrap()[0],
        "tableId",
    );
    let params = [
        qldb_local::ion::text::to_text_one(old[0].field("blockAddress").unwrap()),
        format!("\"{a}\""),
        format!("\"{}\"", common::text(&old[0], "id")),
    ];
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    tx.run("EXEC REDACT_REVISION ?, ?, ?", &params).unwrap();
    tx.commit().unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    let history = tx.run("SELECT * FROM history(A)", &[]).unwrap();
    tx.commit().unwrap();
    drop(l);
    let redacted: Vec<&Value> = history
        .iter()
        .filter(|r| {
            r.field("metadata").and_then(|m| m.field("id")) == old[0].field("id")
                && r.field("dataHash").is_some()
        })
        .collect();
    assert_eq!(redacted.len(), 1, "{history:?}");
    assert!(history
        .iter()
        .any(|r| r.field("data").and_then(|d| d.field("v")) == Some(&Value::string("twice"))));
    assert!(history
        .iter()
        .any(|r| r.field("data").and_then(|d| d.field("v")) == Some(&Value::string("new"))));
    assert_eq!(
        count(&file, "SELECT count(*) FROM revisions WHERE redacted_seq IS NOT NULL AND data IS NULL AND length(data_hash) = 32"),
        2
    );
    verify_ledger(dir.path(), "j").unwrap();
}

/// Rewrites the file in schema v7's form: rows name their table and index by id, and every
/// revision row holds its transaction's id and time.
fn to_v7(file: &std::path::Path) {
    Connection::open(file)
        .unwrap()
        .execute_batch(
            "CREATE TABLE documents_v7 (
                 doc_id TEXT PRIMARY KEY, table_id TEXT NOT NULL,
                 version INTEGER NOT NULL, data BLOB NOT NULL);
             INSERT INTO documents_v7 (rowid, doc_id, table_id, version, data)
                 SELECT d.rowid, d.doc_id, t.table_id, d.version, d.data
                 FROM documents d JOIN tables t USING (table_no);
             DROP TABLE documents;
             ALTER TABLE documents_v7 RENAME TO documents;
             CREATE INDEX documents_by_table ON documents (table_id);
             CREATE TABLE revisions_v7 (
                 doc_id TEXT NOT NULL, version INTEGER NOT NULL, table_id TEXT NOT NULL,
                 seq INTEGER NOT NULL, position INTEGER NOT NULL,
                 tx_time_ms INTEGER NOT NULL, tx_id TEXT NOT NULL, hash BLOB NOT NULL,
                 data BLOB, data_hash BLOB, redacted_seq INTEGER,
                 PRIMARY KEY (doc_id, version)) WITHOUT ROWID;
             INSERT INTO revisions_v7
                 SELECT r.doc_id, r.version, t.table_id, r.seq, r.position,
                        coalesce(r.tx_time_ms, b.ts_ms), coalesce(r.tx_id, b.tx_id),
                        r.hash, r.data, r.data_hash, r.redacted_seq
                 FROM revisions r JOIN tables t USING (table_no) JOIN blocks b ON b.seq = r.seq;
             DROP TABLE revisions;
             ALTER TABLE revisions_v7 RENAME TO revisions;
             CREATE TABLE index_entries_v7 (
                 index_id TEXT NOT NULL, key BLOB NOT NULL, doc_id TEXT NOT NULL,
                 PRIMARY KEY (index_id, key, doc_id)) WITHOUT ROWID;
             INSERT INTO index_entries_v7
                 SELECT i.index_id, e.key, e.doc_id FROM index_entries e JOIN indexes i USING (index_no);
             DROP TABLE index_entries;
             ALTER TABLE index_entries_v7 RENAME TO index_entries;
             DROP INDEX tables_by_no;
             ALTER TABLE tables DROP COLUMN table_no;
             DROP INDEX indexes_by_no;
             ALTER TABLE indexes DROP COLUMN index_no;
             PRAGMA user_version = 7;",
        )
        .unwrap();
    old_digest_tree(file);
}

/// The digest at every tip, and every block's proof to the last tip and to the one halfway.
fn proofs(dir: &std::path::Path) -> Vec<(u64, Vec<Vec<u8>>)> {
    let l = common::serve(dir);
    let ledger = l.control.active_ledger("j").unwrap();
    let (tip, digest) = ledger.digest().unwrap();
    let mut out = vec![(tip, vec![digest])];
    for at in 0..=tip {
        out.push((at, vec![ledger.digest_at(at).unwrap()]));
        for to in [tip, tip / 2].into_iter().filter(|&to| to >= at) {
            out.push((at, ledger.block_proof(at, to).unwrap()));
        }
    }
    out
}

/// Rewrites the digest tree in its form before schema v9: nodes keyed by level and index.
fn old_digest_tree(file: &std::path::Path) {
    Connection::open(file)
        .unwrap()
        .execute_batch(
            "CREATE TABLE merkle_v8 (
                 level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
                 PRIMARY KEY (level, idx)) WITHOUT ROWID;
             INSERT INTO merkle_v8 SELECT level, idx, hash FROM merkle;
             DROP TABLE merkle;
             ALTER TABLE merkle_v8 RENAME TO merkle;",
        )
        .unwrap();
}

#[test]
fn a_v8_file_migrates_to_nodes_keyed_by_their_block_with_nothing_lost() {
    let dir = common::rich_ledger();
    let file = common::ledger_file(dir.path(), "j");
    let before = common::dump(&file);
    let views_before = views(dir.path());
    let proofs_before = proofs(dir.path());
    old_digest_tree(&file);
    Connection::open(&file)
        .unwrap()
        .execute_batch("PRAGMA user_version = 8;")
        .unwrap();
    let err = verify_ledger(dir.path(), "j").unwrap_err();
    assert!(
        err.message
            .contains("written by an earlier qldb-local (schema v8"),
        "{}",
        err.message
    );
    // Opening it migrates it: the same rows, views and proofs, and it verifies.
    assert_eq!(views(dir.path()), views_before);
    assert_eq!(proofs(dir.path()), proofs_before);
    assert_eq!(common::dump(&file), before);
    assert_eq!(
        count(
            &file,
            "SELECT count(*) FROM merkle WHERE done != ((idx + 1) << level) - 1"
        ),
        0
    );
    verify_ledger(dir.path(), "j").unwrap();
}

#[test]
fn a_v7_file_migrates_to_numbered_rows_with_nothing_lost() {
    let dir = common::rich_ledger();
    let file = common::ledger_file(dir.path(), "j");
    let before = common::dump(&file);
    let views_before = views(dir.path());
    // Commits leave the transaction's id and time to the block.
    assert_eq!(
        count(
            &file,
            "SELECT count(*) FROM revisions WHERE tx_id IS NOT NULL OR tx_time_ms IS NOT NULL"
        ),
        0
    );
    to_v7(&file);
    // Not damage: verify says an earlier version wrote it and the server upgrades it.
    let err = verify_ledger(dir.path(), "j").unwrap_err();
    assert!(
        err.message
            .contains("written by an earlier qldb-local (schema v7"),
        "{}",
        err.message
    );
    assert!(
        count(
            &file,
            "SELECT count(*) FROM index_entries WHERE index_id IS NOT NULL"
        ) > 0
    );
    assert!(
        count(
            &file,
            "SELECT count(*) FROM revisions WHERE tx_id IS NOT NULL"
        ) > 0
    );
    // Opening it migrates it: the same rows as a file written by this version, the same
    // views, and it verifies.
    assert_eq!(views(dir.path()), views_before);
    assert_eq!(common::dump(&file), before);
    verify_ledger(dir.path(), "j").unwrap();
}

/// `qldb-local rebuild` (what a failed upgrade's error recommends) reads a v7 file's journal
/// and writes the file this version would have written.
#[test]
fn a_v7_file_rebuilds_into_the_current_form() {
    let dir = common::rich_ledger();
    let file = common::ledger_file(dir.path(), "j");
    let before = common::dump(&file);
    to_v7(&file);
    qldb_local::rebuild::rebuild(dir.path(), "j").unwrap();
    assert_eq!(common::dump(&file), before);
    verify_ledger(dir.path(), "j").unwrap();
}
