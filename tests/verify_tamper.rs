//! `qldb-local verify` names the damaged block for every kind of tampering with a ledger
//! file, accepts an untouched one, and `serve --verify-on-start` refuses a damaged ledger.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::ion::{binary, text, Data, Value};
use qldb_local::journal::hash::CommitDigest;
use qldb_local::session::{Param, Sessions};
use qldb_local::storage::sqlite::stored;
use qldb_local::verify::{verify_ledger, Damage};
use rusqlite::Connection;

/// Builds a ledger `t` with five blocks: genesis, CREATE TABLE and INDEX, two inserts,
/// update+delete.
fn build(dir: &Path) {
    let cfg = Config::for_tests(dir.to_path_buf());
    let control = Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    control
        .create_ledger(qldb_local::api::qldb::CreateLedgerRequest {
            name: Some("t".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            ..Default::default()
        })
        .unwrap();
    let sessions = Sessions::new(qldb_local::server::session_config(&cfg), control.clone());
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
    run(&[
        ("CREATE TABLE Cars", &[]),
        ("CREATE INDEX ON Cars (vin)", &[]),
    ]);
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
    tampered_or_none(original, sql).expect("the mutation changed no row")
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

    // A revisions row that keeps its data in the block given other data (the Ion int 1).
    let r = tampered(
        dir.path(),
        "UPDATE revisions SET data = X'E00100EA2101' WHERE seq = 3 AND version = 0 AND data IS NOT NULL",
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
    // A field of a block: one byte of its Ion (the field name price becomes prize), stored
    // compressed again as the server stores blocks.
    let r = tampered_by(dir.path(), |conn| {
        let stored: Vec<u8> = conn
            .query_row("SELECT ion FROM blocks WHERE seq = 3", [], |r| r.get(0))
            .unwrap();
        let ion = stored::unpack_block(&stored).unwrap().into_owned();
        let at = ion.windows(5).position(|w| w == b"price").unwrap();
        let mut changed = ion.clone();
        changed[at + 3] = b'z';
        conn.execute(
            "UPDATE blocks SET ion = ?1 WHERE seq = 3",
            [stored::pack_block(&changed)],
        )
        .unwrap();
        true
    })
    .unwrap();
    assert_eq!(damaged_block(r), Some(3));
    // A block whose revision's data became its data hash with no redaction (every hash still
    // holds; only the revision row, which keeps its data in the block, tells).
    let r = tampered_by(dir.path(), |conn| {
        let stored: Vec<u8> = conn
            .query_row("SELECT ion FROM blocks WHERE seq = 3", [], |r| r.get(0))
            .unwrap();
        let mut block = stored::decode_block(&stored).unwrap();
        let Data::Struct(fields) = &mut block.data else {
            panic!("a block is a struct")
        };
        let (_, revs) = fields
            .iter_mut()
            .find(|(k, _)| k.as_deref() == Some("revisions"))
            .unwrap();
        let Data::List(revs) = &mut revs.data else {
            panic!("revisions is a list")
        };
        let Data::Struct(rev) = &mut revs[0].data else {
            panic!("a revision is a struct")
        };
        let (k, v) = rev
            .iter_mut()
            .find(|(k, _)| k.as_deref() == Some("data"))
            .unwrap();
        *v = Value::blob(qldb_local::ion::hash::ion_hash(v).to_vec());
        *k = Some("dataHash".into());
        conn.execute(
            "UPDATE blocks SET ion = ?1 WHERE seq = 3",
            [stored::pack_block(&binary::encode_one(&block))],
        )
        .unwrap();
        true
    })
    .unwrap();
    assert_eq!(damaged_block(r), Some(3));
    // Bytes of a block's compressed frame: it no longer decodes (or its checksum fails).
    let r = tampered(
        dir.path(),
        "UPDATE blocks SET ion = CAST(substr(ion, 1, 20) || CASE WHEN substr(ion, 21, 1) = X'00' THEN X'01' ELSE X'00' END || substr(ion, 22) AS BLOB) WHERE seq = 3",
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
    // A node stored under another block than the one that completes it: proofs would not
    // find it.
    let r = tampered(
        dir.path(),
        "UPDATE merkle SET done = done + 100 WHERE level = 1 AND idx = 0",
    );
    match r {
        Err(d) => assert!(
            d.message.contains("stored under the wrong block"),
            "{}",
            d.message
        ),
        Ok(()) => panic!("a misplaced node was not detected"),
    }
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

/// State derived from the journal (documents, revision and block side columns, the table
/// and index catalog, index entries) is re-derived and compared (issue 11).
#[test]
fn derived_state_must_be_what_the_journal_implies() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    verify_ledger(dir.path(), "t").unwrap();
    let cases = [
        // A document's current data (what every SELECT returns).
        "UPDATE documents SET data = CAST(replace(CAST(data AS TEXT), 'vin', 'vim') AS BLOB) WHERE rowid = (SELECT min(rowid) FROM documents)",
        "UPDATE documents SET data = substr(data, 1, length(data) - 1) || x'01' WHERE rowid = (SELECT min(rowid) FROM documents)",
        // A document's version or table, a missing and an extra document.
        "UPDATE documents SET version = version + 1 WHERE rowid = (SELECT min(rowid) FROM documents)",
        "UPDATE documents SET table_no = 99 WHERE rowid = (SELECT min(rowid) FROM documents)",
        "UPDATE documents SET table_no = table_no + 1 WHERE rowid = (SELECT min(rowid) FROM documents)",
        "DELETE FROM documents WHERE rowid = (SELECT min(rowid) FROM documents)",
        "INSERT INTO documents SELECT 'ZZZZZZZZZZZZZZZZZZZZZZ', table_no, 0, data FROM documents LIMIT 1",
        // Side columns of a revision row.
        "UPDATE revisions SET tx_id = 'XXXXXXXXXXXXXXXXXXXXXX' WHERE seq = 2",
        "UPDATE revisions SET tx_time_ms = 1 WHERE seq = 2",
        "UPDATE revisions SET tx_id = (SELECT tx_id FROM blocks WHERE seq = 1) WHERE seq = 2",
        // ...or restating its block's (a commit leaves them NULL).
        "UPDATE revisions SET tx_id = (SELECT b.tx_id FROM blocks b WHERE b.seq = revisions.seq) WHERE seq = 2",
        "UPDATE revisions SET tx_time_ms = (SELECT b.ts_ms FROM blocks b WHERE b.seq = revisions.seq) WHERE seq = 2",
        "UPDATE revisions SET position = position + 1 WHERE seq = 2",
        "UPDATE revisions SET table_no = 99 WHERE seq = 2",
        "UPDATE revisions SET table_no = table_no + 1 WHERE seq = 2",
        "UPDATE revisions SET seq = 3 WHERE seq = 2",
        // A revision's data dropped as if redacted, and a redaction marker without one.
        "UPDATE revisions SET data = NULL WHERE seq = 2",
        "UPDATE revisions SET redacted_seq = 4 WHERE seq = 2",
        // Side columns of a block.
        "UPDATE blocks SET tx_id = 'XXXXXXXXXXXXXXXXXXXXXX' WHERE seq = 2",
        "UPDATE blocks SET ts_ms = ts_ms + 1 WHERE seq = 2",
        // The table catalog.
        "UPDATE tables SET name = 'Boats'",
        "UPDATE tables SET status = 'INACTIVE'",
        "UPDATE tables SET version = 1",
        "UPDATE tables SET created_seq = 2",
        "UPDATE tables SET modified_seq = 1",
        "UPDATE tables SET table_no = NULL",
        "UPDATE tables SET table_no = table_no + 10",
        // The index catalog and its entries.
        "UPDATE indexes SET field = 'price'",
        "UPDATE indexes SET created_seq = 2",
        "UPDATE indexes SET index_no = index_no + 10",
        "DELETE FROM index_entries WHERE doc_id IN (SELECT doc_id FROM index_entries LIMIT 1)",
        "UPDATE index_entries SET key = x'00' WHERE doc_id IN (SELECT doc_id FROM index_entries LIMIT 1)",
        "INSERT INTO index_entries SELECT index_no, x'01', doc_id FROM index_entries LIMIT 1",
        "UPDATE index_entries SET index_no = index_no + 10",
        // Per-key OCC rows (kept in memory since schema v7; a row found must still be right).
        "INSERT INTO index_key_seq SELECT i.index_id, e.key, 99 FROM index_entries e JOIN indexes i USING (index_no) LIMIT 1",
        "INSERT INTO index_key_seq SELECT i.index_id, e.key, 1 FROM index_entries e JOIN indexes i USING (index_no) LIMIT 1",
        "INSERT INTO index_key_seq VALUES ('XXXXXXXXXXXXXXXXXXXXXX', x'00', 2)",
    ];
    for sql in cases {
        match tampered_or_none(dir.path(), sql) {
            Some(Err(_)) => {}
            Some(Ok(())) => panic!("not detected: {sql}"),
            None => panic!("the mutation changed no row: {sql}"),
        }
    }
}

/// The tamper campaign: many copies of a ledger file, each with one random bit flipped in
/// one value, or one random row deleted, in every table and column the file has; `verify`
/// must fail every time. Prints the detection rate. Columns that hold only bookkeeping the
/// journal does not determine are listed (and counted) separately.
#[test]
fn tamper_campaign() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let trials: usize = std::env::var("QLDB_TAMPER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let conn = Connection::open(dir.path().join("ledgers/t.sqlite")).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut rng: u64 = 0x9E3779B97F4A7C15;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    // Bookkeeping the journal does not fix: a missing per-key OCC row (the schema-v5 index
    // rebuild clears them all), the index-rebuild flag, a table's modified_seq (which also
    // moves on index changes, and only orders OCC checks) and an index's status.
    let unconstrained = |table: &str, column: &str| {
        matches!(
            (table, column),
            ("index_key_seq", "(row)")
                | ("index_rebuild", _)
                | ("tables", "modified_seq")
                | ("indexes", "status")
                // A live index's id is in no block (rebuild gives a lost one a new id); since
                // schema v8 entries name their index by number, so the id is stored once.
                | ("indexes", "index_id")
        )
    };
    let (mut detected, mut total, mut skipped) = (0usize, 0usize, 0usize);
    let mut missed: Vec<String> = Vec::new();
    for table in &tables {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        if rows == 0 {
            continue;
        }
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut mutations: Vec<(String, String)> = Vec::new();
        for column in &columns {
            for _ in 0..trials {
                let row = next(rows as u64);
                let value: rusqlite::types::Value = conn
                    .query_row(
                        &format!("SELECT \"{column}\" FROM \"{table}\" LIMIT 1 OFFSET {row}"),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                use rusqlite::types::Value as V;
                let flipped = match value {
                    V::Integer(i) => V::Integer(i ^ (1 << next(12))),
                    V::Text(t) => {
                        let mut b = t.into_bytes();
                        if b.is_empty() {
                            continue;
                        }
                        let i = next(b.len() as u64) as usize;
                        b[i] ^= 1 << next(7);
                        V::Blob(b)
                    }
                    V::Blob(mut b) => {
                        if b.is_empty() {
                            continue;
                        }
                        let i = next(b.len() as u64) as usize;
                        b[i] ^= 1 << next(8);
                        V::Blob(b)
                    }
                    V::Null | V::Real(_) => continue,
                };
                let text = conn
                    .query_row(
                        &format!(
                            "SELECT typeof(\"{column}\") FROM \"{table}\" LIMIT 1 OFFSET {row}"
                        ),
                        [],
                        |r| r.get::<_, String>(0),
                    )
                    .unwrap()
                    == "text";
                let literal = match flipped {
                    V::Integer(i) => i.to_string(),
                    V::Blob(b) if text => format!("CAST(x'{}' AS TEXT)", hex(&b)),
                    V::Blob(b) => format!("x'{}'", hex(&b)),
                    _ => unreachable!(),
                };
                let filter = row_filter(&conn, table, &columns, row);
                mutations.push((
                    column.clone(),
                    format!("UPDATE \"{table}\" SET \"{column}\" = {literal} WHERE {filter}"),
                ));
            }
        }
        for _ in 0..trials {
            let row = next(rows as u64);
            let filter = row_filter(&conn, table, &columns, row);
            mutations.push((
                "(row)".into(),
                format!("DELETE FROM \"{table}\" WHERE {filter}"),
            ));
        }
        for (column, sql) in mutations {
            if unconstrained(table, &column) {
                skipped += 1;
                continue;
            }
            total += 1;
            // A flip that changes nothing (a bit that round-trips to the same value) or
            // violates a constraint (a duplicate key) leaves nothing to detect.
            let copy_ok = tampered_or_none(dir.path(), &sql);
            match copy_ok {
                None => total -= 1,
                Some(Err(_)) => detected += 1,
                Some(Ok(())) => missed.push(format!("{table}.{column}: {sql}")),
            }
        }
    }
    println!(
        "tamper campaign: {detected} of {total} mutations detected ({:.1} %), {skipped} on unconstrained bookkeeping",
        100.0 * detected as f64 / total.max(1) as f64
    );
    assert!(total > 0);
    assert!(missed.is_empty(), "undetected: {missed:#?}");
}

/// A WHERE clause matching exactly the row at `offset` by all its values (WITHOUT ROWID
/// tables have no rowid to name it by).
fn row_filter(conn: &Connection, table: &str, columns: &[String], offset: u64) -> String {
    use rusqlite::types::Value as V;
    columns
        .iter()
        .map(|c| {
            let v: V = conn
                .query_row(
                    &format!("SELECT \"{c}\" FROM \"{table}\" LIMIT 1 OFFSET {offset}"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let lit = match v {
                V::Null => "NULL".to_string(),
                V::Integer(i) => i.to_string(),
                V::Real(f) => format!("{f:?}"),
                V::Text(t) => format!("CAST(x'{}' AS TEXT)", hex(t.as_bytes())),
                V::Blob(b) => format!("x'{}'", hex(&b)),
            };
            format!("\"{c}\" IS {lit}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Like [`tampered`], but `None` when the mutation cannot be applied or changes nothing.
fn tampered_or_none(original: &Path, sql: &str) -> Option<Result<(), Damage>> {
    tampered_by(
        original,
        |conn| matches!(conn.execute(sql, []), Ok(n) if n > 0),
    )
}

/// Verifies a copy of the data dir after `mutate` changed its ledger file (None if it
/// changed nothing).
fn tampered_by(
    original: &Path,
    mutate: impl FnOnce(&Connection) -> bool,
) -> Option<Result<(), Damage>> {
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
    if !mutate(&conn) {
        return None;
    }
    drop(conn);
    Some(verify_ledger(copy.path(), "t").map(|_| ()))
}

/// No false alarm: a ledger that went through every kind of statement (updates of indexed
/// fields, whole-document SET, deletes, FROM … SET, DROP/UNDROP TABLE, DROP INDEX) verifies.
#[test]
fn a_ledger_that_used_every_statement_kind_verifies() {
    let l = common::ledger();
    let token = l.sessions.start_session("j").unwrap();
    let one = |stmt: &str| {
        let mut tx = common::Tx::begin(&l, &token);
        let rows = tx.run(stmt, &[]).unwrap();
        tx.commit().unwrap();
        rows
    };
    let text = |v: &qldb_local::ion::Value, f: &str| match v.field(f).map(|x| &x.data) {
        Some(qldb_local::ion::Data::String(s)) => s.clone(),
        other => panic!("{f}: {other:?}"),
    };
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("CREATE TABLE A", &[]).unwrap();
    tx.run("CREATE INDEX ON A (k)", &[]).unwrap();
    tx.run(
        "INSERT INTO A << {'k': 1, 'v': 'x'}, {'k': 2}, {'v': 3} >>",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    one("UPDATE A AS a SET a.k = 5 WHERE a.k = 1");
    one("UPDATE A AS a SET a = {'k': 7} WHERE a.k = 2");
    one("DELETE FROM A AS a WHERE a.k = 7");
    one("FROM A AS a WHERE a.v = 3 SET a.k = 9");
    let b = text(&one("CREATE TABLE B")[0], "tableId");
    one("INSERT INTO B VALUE {'z': 1}");
    one("DROP TABLE B");
    one(&format!("UNDROP TABLE \"{b}\""));
    one("CREATE INDEX ON A (v)");
    let indexes = one(
        "SELECT VALUE i FROM information_schema.user_tables AS t, t.indexes AS i WHERE t.name = 'A'",
    );
    let v_index = indexes
        .iter()
        .find(|i| text(i, "expr").contains('v'))
        .map(|i| text(i, "indexId"))
        .expect("the index on v");
    one(&format!(
        "DROP INDEX \"{v_index}\" ON A WITH (purge = true)"
    ));
    one("INSERT INTO A VALUE {'v': 4, 'k': 5}");
    let ok = verify_ledger(l.data_dir(), "j").unwrap();
    assert_eq!(ok.blocks, 13, "{ok:?}");
}
