//! Versioned schemas. Each database records its version in `PRAGMA user_version`; opening
//! it applies, in one transaction, every migration it has not seen yet. Later features add
//! a migration at the end of a list — never edit one that has shipped.

use rusqlite::Connection;

use crate::storage::{Result, StorageError};

/// Migrations of the catalog database (`catalog.sqlite`). Index i upgrades version i → i+1.
pub const CATALOG_MIGRATIONS: &[&str] = &[
    // v1: ledgers and tags.
    "CREATE TABLE ledgers (
        ord                 INTEGER PRIMARY KEY AUTOINCREMENT,
        name                TEXT NOT NULL UNIQUE,
        arn                 TEXT NOT NULL,
        permissions_mode    TEXT NOT NULL,
        deletion_protection INTEGER NOT NULL,
        kms_key_arn         TEXT,
        created_ms          INTEGER NOT NULL,
        active_at_ms        INTEGER NOT NULL,
        kms_updated_ms      INTEGER,
        deleting_since_ms   INTEGER,
        gone_at_ms          INTEGER
    );
    CREATE TABLE tags (
        resource_arn TEXT NOT NULL,
        key          TEXT NOT NULL,
        value        TEXT NOT NULL,
        PRIMARY KEY (resource_arn, key)
    );",
    // v2: journal exports to S3 and streams to Kinesis, with their progress, so that a
    // restart resumes them.
    "CREATE TABLE exports (
        ord             INTEGER PRIMARY KEY AUTOINCREMENT,
        export_id       TEXT NOT NULL UNIQUE,
        ledger_name     TEXT NOT NULL,
        created_ms      INTEGER NOT NULL,
        status          TEXT NOT NULL,
        start_ms        INTEGER NOT NULL,
        end_ms          INTEGER NOT NULL,
        bucket          TEXT NOT NULL,
        prefix          TEXT NOT NULL,
        encryption_type TEXT NOT NULL,
        kms_key_arn     TEXT,
        role_arn        TEXT NOT NULL,
        output_format   TEXT,
        status_reason   TEXT,
        next_seq        INTEGER NOT NULL DEFAULT 0,
        finished_ms     INTEGER
    );
    CREATE TABLE export_objects (
        export_id TEXT NOT NULL,
        idx       INTEGER NOT NULL,
        key       TEXT NOT NULL,
        PRIMARY KEY (export_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE streams (
        ord          INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id    TEXT NOT NULL UNIQUE,
        ledger_name  TEXT NOT NULL,
        stream_name  TEXT NOT NULL,
        arn          TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        status       TEXT NOT NULL,
        start_ms     INTEGER NOT NULL,
        end_ms       INTEGER,
        role_arn     TEXT NOT NULL,
        kinesis_arn  TEXT NOT NULL,
        aggregation  INTEGER NOT NULL,
        error_cause  TEXT,
        impaired_ms  INTEGER,
        next_seq     INTEGER NOT NULL DEFAULT 0,
        created_sent INTEGER NOT NULL DEFAULT 0,
        finished_ms  INTEGER
    );",
];

/// Migrations of each ledger's database. Index i upgrades version i → i+1.
/// v1 holds the ledger's identity; the session and journal features add their tables here.
pub const LEDGER_MIGRATIONS: &[&str] = &[
    // v1: identity of the ledger.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // v2: the journal (blocks, digest tree), the table catalog, documents, revisions, indexes.
    "CREATE TABLE blocks (
        seq        INTEGER PRIMARY KEY,
        tx_id      TEXT NOT NULL,
        ts_ms      INTEGER NOT NULL,
        block_hash BLOB NOT NULL,
        ion        BLOB NOT NULL
    );
    CREATE TABLE merkle (
        level INTEGER NOT NULL,
        idx   INTEGER NOT NULL,
        hash  BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE tables (
        table_id     TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        status       TEXT NOT NULL,
        created_seq  INTEGER NOT NULL,
        modified_seq INTEGER NOT NULL
    );
    CREATE TABLE indexes (
        index_id    TEXT PRIMARY KEY,
        table_id    TEXT NOT NULL REFERENCES tables(table_id),
        field       TEXT NOT NULL,
        status      TEXT NOT NULL,
        created_seq INTEGER NOT NULL
    );
    CREATE TABLE documents (
        doc_id   TEXT PRIMARY KEY,
        table_id TEXT NOT NULL,
        version  INTEGER NOT NULL,
        data     BLOB NOT NULL
    );
    CREATE INDEX documents_by_table ON documents (table_id);
    CREATE TABLE revisions (
        doc_id     TEXT NOT NULL,
        version    INTEGER NOT NULL,
        table_id   TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        position   INTEGER NOT NULL,
        tx_time_ms INTEGER NOT NULL,
        tx_id      TEXT NOT NULL,
        hash       BLOB NOT NULL,
        data       BLOB,
        data_hash  BLOB,
        PRIMARY KEY (doc_id, version)
    ) WITHOUT ROWID;
    CREATE INDEX revisions_by_block ON revisions (seq, position);
    CREATE TABLE index_entries (
        index_id TEXT NOT NULL,
        key      BLOB NOT NULL,
        doc_id   TEXT NOT NULL,
        PRIMARY KEY (index_id, key, doc_id)
    ) WITHOUT ROWID;
    CREATE TABLE index_key_seq (
        index_id TEXT NOT NULL,
        key      BLOB NOT NULL,
        seq      INTEGER NOT NULL,
        PRIMARY KEY (index_id, key)
    ) WITHOUT ROWID;",
    // v3: redaction (the block that redacted a revision).
    "ALTER TABLE revisions ADD COLUMN redacted_seq INTEGER;",
    // v4: DROP TABLE / UNDROP TABLE (the version of a table's system revisions).
    "ALTER TABLE tables ADD COLUMN version INTEGER NOT NULL DEFAULT 0;",
    // v5: index keys follow PartiQL `=` for floats, timestamps and containers too; a ledger
    // that has index entries is marked for [`crate::storage::sqlite::journal::rebuild_index_keys`].
    "CREATE TABLE index_rebuild (needed INTEGER NOT NULL);
    INSERT INTO index_rebuild SELECT 1 WHERE EXISTS (SELECT 1 FROM index_entries);",
    // v6: blocks stored as zstd frames and revision rows without a copy of their block's data
    // (`storage::sqlite::stored`). No table changes: files of earlier versions read as they
    // are; the version makes an older qldb-local refuse a file it could not read.
    "-- storage forms of stored.rs",
    // v7: no index of revisions by block (history sorts a table's revisions; verify counts
    // them per block in one pass), and index keys' OCC sequences kept in memory by the writer
    // (`storage::sqlite::key_seqs`) instead of `index_key_seq`, which stays empty: ~100 bytes
    // per document and two WAL pages per commit less.
    "DROP INDEX revisions_by_block;
    DELETE FROM index_key_seq;",
    // v8: rows name their table and index by a small number instead of its 22-character
    // id, and a revision row leaves its transaction's id and time NULL when they are its
    // block's (always, except in some imported journals): ~110 bytes per document. A row
    // whose table or index is missing fails the migration (NOT NULL) instead of vanishing.
    "ALTER TABLE tables ADD COLUMN table_no INTEGER;
    UPDATE tables SET table_no = rowid;
    CREATE UNIQUE INDEX tables_by_no ON tables (table_no);
    ALTER TABLE indexes ADD COLUMN index_no INTEGER;
    UPDATE indexes SET index_no = rowid;
    CREATE UNIQUE INDEX indexes_by_no ON indexes (index_no);
    CREATE TABLE documents_v8 (
        doc_id   TEXT PRIMARY KEY,
        table_no INTEGER NOT NULL,
        version  INTEGER NOT NULL,
        data     BLOB NOT NULL
    );
    INSERT INTO documents_v8 (rowid, doc_id, table_no, version, data)
        SELECT d.rowid, d.doc_id, t.table_no, d.version, d.data
        FROM documents d LEFT JOIN tables t ON t.table_id = d.table_id ORDER BY d.rowid;
    DROP TABLE documents;
    ALTER TABLE documents_v8 RENAME TO documents;
    CREATE INDEX documents_by_table ON documents (table_no);
    CREATE TABLE revisions_v8 (
        doc_id       TEXT NOT NULL,
        version      INTEGER NOT NULL,
        table_no     INTEGER NOT NULL,
        seq          INTEGER NOT NULL,
        position     INTEGER NOT NULL,
        tx_time_ms   INTEGER,
        tx_id        TEXT,
        hash         BLOB NOT NULL,
        data         BLOB,
        data_hash    BLOB,
        redacted_seq INTEGER,
        PRIMARY KEY (doc_id, version)
    ) WITHOUT ROWID;
    INSERT INTO revisions_v8
        SELECT r.doc_id, r.version, t.table_no, r.seq, r.position,
               NULLIF(r.tx_time_ms, b.ts_ms), NULLIF(r.tx_id, b.tx_id),
               r.hash, r.data, r.data_hash, r.redacted_seq
        FROM revisions r LEFT JOIN tables t ON t.table_id = r.table_id
                         LEFT JOIN blocks b ON b.seq = r.seq;
    DROP TABLE revisions;
    ALTER TABLE revisions_v8 RENAME TO revisions;
    CREATE TABLE index_entries_v8 (
        index_no INTEGER NOT NULL,
        key      BLOB NOT NULL,
        doc_id   TEXT NOT NULL,
        PRIMARY KEY (index_no, key, doc_id)
    ) WITHOUT ROWID;
    INSERT INTO index_entries_v8
        SELECT i.index_no, e.key, e.doc_id
        FROM index_entries e LEFT JOIN indexes i ON i.index_id = e.index_id;
    DROP TABLE index_entries;
    ALTER TABLE index_entries_v8 RENAME TO index_entries;",
    // v9: digest-tree nodes keyed by the block that completes them (`done`, the last leaf a
    // node covers) instead of by level: the nodes a commit adds share one page at the end of
    // the table instead of one page per level (2.5 WAL pages per single-block commit less).
    // `idx` stays for readers; `done` = ((idx + 1) << level) - 1.
    "CREATE TABLE merkle_v9 (
        done  INTEGER NOT NULL,
        level INTEGER NOT NULL,
        idx   INTEGER NOT NULL,
        hash  BLOB NOT NULL,
        PRIMARY KEY (done, level)
    ) WITHOUT ROWID;
    INSERT INTO merkle_v9 SELECT ((idx + 1) << level) - 1, level, idx, hash FROM merkle
        ORDER BY ((idx + 1) << level) - 1, level;
    DROP TABLE merkle;
    ALTER TABLE merkle_v9 RENAME TO merkle;",
];

/// Brings `conn` up to the newest version in `migrations`.
pub fn migrate(conn: &mut Connection, migrations: &[&str], what: &str) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = migrations.len() as i64;
    if found > supported {
        return Err(StorageError::SchemaTooNew {
            path: what.to_string(),
            found,
            supported,
        });
    }
    if found == supported {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tracing::debug!(database = what, version = i + 1, "applied migration");
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, CATALOG_MIGRATIONS, "catalog").unwrap();
        migrate(&mut conn, CATALOG_MIGRATIONS, "catalog").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, CATALOG_MIGRATIONS.len() as i64);
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn, CATALOG_MIGRATIONS, "catalog").unwrap_err();
        assert!(matches!(err, StorageError::SchemaTooNew { found: 99, .. }));
    }
}
