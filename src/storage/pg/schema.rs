//! Versioned schemas of the PostgreSQL backend. The catalog lives in the schema
//! `qldb_catalog`; each ledger in a schema of its own (`qldb_l<n>`), named in the catalog's
//! `ledger_data`. Each schema records its version in its `schema_version` table; opening it
//! applies, in one transaction and under an advisory lock (several servers may start at
//! once), every migration it has not seen yet. Later features add a migration at the end of
//! a list — never edit one that has shipped. `{s}` stands for the schema's name.

use super::PgConn;
use crate::storage::{Result, StorageError};

/// The catalog's schema.
pub const CATALOG: &str = "qldb_catalog";

/// The advisory lock every migration holds (one at a time per database).
const MIGRATION_LOCK: i64 = 0x0071_6c64_626d_6967; // "qldbmig"

/// Migrations of the catalog schema. Index i upgrades version i → i+1.
pub const CATALOG_MIGRATIONS: &[&str] = &[
    // v1: ledgers, tags, exports, streams (as the SQLite catalog's v2), and where each
    // ledger's data lives.
    "CREATE TABLE {s}.ledgers (
        ord                 bigserial PRIMARY KEY,
        name                text NOT NULL UNIQUE,
        arn                 text NOT NULL,
        permissions_mode    text NOT NULL,
        deletion_protection boolean NOT NULL,
        kms_key_arn         text,
        created_ms          bigint NOT NULL,
        active_at_ms        bigint NOT NULL,
        kms_updated_ms      bigint,
        deleting_since_ms   bigint,
        gone_at_ms          bigint
    );
    CREATE TABLE {s}.tags (
        resource_arn text NOT NULL,
        key          text NOT NULL,
        value        text NOT NULL,
        PRIMARY KEY (resource_arn, key)
    );
    CREATE TABLE {s}.exports (
        ord             bigserial PRIMARY KEY,
        export_id       text NOT NULL UNIQUE,
        ledger_name     text NOT NULL,
        created_ms      bigint NOT NULL,
        status          text NOT NULL,
        start_ms        bigint NOT NULL,
        end_ms          bigint NOT NULL,
        bucket          text NOT NULL,
        prefix          text NOT NULL,
        encryption_type text NOT NULL,
        kms_key_arn     text,
        role_arn        text NOT NULL,
        output_format   text,
        status_reason   text,
        next_seq        bigint NOT NULL DEFAULT 0,
        finished_ms     bigint
    );
    CREATE TABLE {s}.export_objects (
        export_id text NOT NULL,
        idx       bigint NOT NULL,
        key       text NOT NULL,
        PRIMARY KEY (export_id, idx)
    );
    CREATE TABLE {s}.streams (
        ord          bigserial PRIMARY KEY,
        stream_id    text NOT NULL UNIQUE,
        ledger_name  text NOT NULL,
        stream_name  text NOT NULL,
        arn          text NOT NULL,
        created_ms   bigint NOT NULL,
        status       text NOT NULL,
        start_ms     bigint NOT NULL,
        end_ms       bigint,
        role_arn     text NOT NULL,
        kinesis_arn  text NOT NULL,
        aggregation  boolean NOT NULL,
        error_cause  text,
        impaired_ms  bigint,
        next_seq     bigint NOT NULL DEFAULT 0,
        created_sent boolean NOT NULL DEFAULT false,
        finished_ms  bigint
    );
    CREATE SEQUENCE {s}.ledger_schema_no;
    CREATE TABLE {s}.ledger_data (
        name        text PRIMARY KEY,
        schema_name text NOT NULL UNIQUE
    );",
    // v2: when each ledger's data was made (orphans are removed only once they are old
    // enough not to be another server's create in progress).
    "ALTER TABLE {s}.ledger_data ADD COLUMN created_at timestamptz NOT NULL DEFAULT clock_timestamp();",
];

/// Migrations of each ledger's schema. Index i upgrades version i → i+1. The tables are the
/// SQLite ledger file's (schema v8) in PostgreSQL's types: the same rows, so that `migrate`
/// copies them unchanged; documents keep their first insertion's place in `pos`; the index
/// keys' OCC record (`index_key_seq`) is a table, since several servers commit.
pub const LEDGER_MIGRATIONS: &[&str] = &["CREATE TABLE {s}.meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE TABLE {s}.blocks (
        seq        bigint PRIMARY KEY,
        tx_id      text NOT NULL,
        ts_ms      bigint NOT NULL,
        block_hash bytea NOT NULL,
        ion        bytea NOT NULL
    );
    CREATE TABLE {s}.merkle (
        level integer NOT NULL,
        idx   bigint NOT NULL,
        hash  bytea NOT NULL,
        PRIMARY KEY (level, idx)
    );
    CREATE TABLE {s}.tables (
        table_no     integer PRIMARY KEY,
        table_id     text NOT NULL UNIQUE,
        name         text NOT NULL,
        status       text NOT NULL,
        created_seq  bigint NOT NULL,
        modified_seq bigint NOT NULL,
        version      bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE {s}.indexes (
        index_no    integer PRIMARY KEY,
        index_id    text NOT NULL UNIQUE,
        table_id    text NOT NULL REFERENCES {s}.tables (table_id),
        field       text NOT NULL,
        status      text NOT NULL,
        created_seq bigint NOT NULL
    );
    CREATE SEQUENCE {s}.doc_pos;
    CREATE TABLE {s}.documents (
        doc_id   text PRIMARY KEY,
        pos      bigint NOT NULL,
        table_no integer NOT NULL,
        version  bigint NOT NULL,
        data     bytea NOT NULL
    );
    CREATE INDEX documents_by_table ON {s}.documents (table_no, pos);
    CREATE TABLE {s}.revisions (
        doc_id       text NOT NULL,
        version      bigint NOT NULL,
        table_no     integer NOT NULL,
        seq          bigint NOT NULL,
        position     integer NOT NULL,
        tx_time_ms   bigint,
        tx_id        text,
        hash         bytea NOT NULL,
        data         bytea,
        data_hash    bytea,
        redacted_seq bigint,
        PRIMARY KEY (doc_id, version)
    );
    CREATE INDEX revisions_by_table ON {s}.revisions (table_no, seq, position);
    CREATE TABLE {s}.index_entries (
        index_no integer NOT NULL,
        key      bytea NOT NULL,
        doc_id   text NOT NULL,
        PRIMARY KEY (index_no, key, doc_id)
    );
    CREATE TABLE {s}.index_key_seq (
        index_no integer NOT NULL,
        key      bytea NOT NULL,
        seq      bigint NOT NULL,
        PRIMARY KEY (index_no, key)
    );"];

/// Brings schema `schema` up to the newest version of `migrations`, creating it if needed,
/// inside the caller's open transaction on `conn`. A schema of a newer version is refused.
pub fn migrate(conn: &mut PgConn, schema: &str, migrations: &[&str]) -> Result<()> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    conn.batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (version integer NOT NULL);"
    ))?;
    let found: Option<i32> = conn
        .query_opt(&format!("SELECT version FROM {schema}.schema_version"), &[])?
        .map(|r| r.get(0));
    let found = found.unwrap_or(0) as usize;
    if found > migrations.len() {
        return Err(StorageError::SchemaTooNew {
            path: format!("PostgreSQL schema {schema}"),
            found: found as i64,
            supported: migrations.len() as i64,
        });
    }
    for m in &migrations[found..] {
        conn.batch(&m.replace("{s}", schema))?;
    }
    if found < migrations.len() {
        conn.batch(&format!("DELETE FROM {schema}.schema_version"))?;
        conn.execute(
            &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
            &[&(migrations.len() as i32)],
        )?;
    }
    Ok(())
}
