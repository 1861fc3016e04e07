//! The catalog in PostgreSQL (schema `qldb_catalog`): ledgers, tags, exports and streams,
//! with the same rows and semantics as the SQLite catalog. Every change is one PostgreSQL
//! transaction; several servers may share it.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::postgres::Row;

use super::{Pool, Pooled};
use crate::storage::{CatalogStore, ExportRecord, LedgerRecord, Result, StreamRecord};

pub struct PgCatalog {
    pool: Arc<Pool>,
}

impl PgCatalog {
    pub fn new(pool: Arc<Pool>) -> Self {
        PgCatalog { pool }
    }

    /// Runs `f` in one transaction.
    fn transaction<T>(&self, f: impl FnOnce(&mut Pooled<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.pool.get()?;
        conn.begin("")?;
        let out = f(&mut conn)?;
        conn.commit()?;
        Ok(out)
    }
}

fn ledger(r: &Row) -> LedgerRecord {
    LedgerRecord {
        ord: r.get("ord"),
        name: r.get("name"),
        arn: r.get("arn"),
        permissions_mode: r.get("permissions_mode"),
        deletion_protection: r.get("deletion_protection"),
        kms_key_arn: r.get("kms_key_arn"),
        created_ms: r.get("created_ms"),
        active_at_ms: r.get("active_at_ms"),
        kms_updated_ms: r.get("kms_updated_ms"),
        deleting_since_ms: r.get("deleting_since_ms"),
        gone_at_ms: r.get("gone_at_ms"),
    }
}

fn export(r: &Row) -> ExportRecord {
    ExportRecord {
        ord: r.get("ord"),
        export_id: r.get("export_id"),
        ledger_name: r.get("ledger_name"),
        created_ms: r.get("created_ms"),
        status: r.get("status"),
        start_ms: r.get("start_ms"),
        end_ms: r.get("end_ms"),
        bucket: r.get("bucket"),
        prefix: r.get("prefix"),
        encryption_type: r.get("encryption_type"),
        kms_key_arn: r.get("kms_key_arn"),
        role_arn: r.get("role_arn"),
        output_format: r.get("output_format"),
        status_reason: r.get("status_reason"),
        next_seq: r.get::<_, i64>("next_seq") as u64,
        finished_ms: r.get("finished_ms"),
    }
}

fn stream(r: &Row) -> StreamRecord {
    StreamRecord {
        ord: r.get("ord"),
        stream_id: r.get("stream_id"),
        ledger_name: r.get("ledger_name"),
        stream_name: r.get("stream_name"),
        arn: r.get("arn"),
        created_ms: r.get("created_ms"),
        status: r.get("status"),
        start_ms: r.get("start_ms"),
        end_ms: r.get("end_ms"),
        role_arn: r.get("role_arn"),
        kinesis_arn: r.get("kinesis_arn"),
        aggregation: r.get("aggregation"),
        error_cause: r.get("error_cause"),
        impaired_ms: r.get("impaired_ms"),
        next_seq: r.get::<_, i64>("next_seq") as u64,
        created_sent: r.get("created_sent"),
        finished_ms: r.get("finished_ms"),
    }
}

/// A row limit as PostgreSQL takes it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn insert_tags(conn: &mut Pooled<'_>, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        conn.execute(
            "INSERT INTO qldb_catalog.tags (resource_arn, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (resource_arn, key) DO UPDATE SET value = excluded.value",
            &[&arn, k, v],
        )?;
    }
    Ok(())
}

impl CatalogStore for PgCatalog {
    fn ledger(&self, name: &str) -> Result<Option<LedgerRecord>> {
        Ok(self
            .pool
            .get()?
            .query_opt(
                "SELECT * FROM qldb_catalog.ledgers WHERE name = $1",
                &[&name],
            )?
            .as_ref()
            .map(ledger))
    }

    fn ledgers_after(&self, after_ord: i64, n: usize) -> Result<Vec<LedgerRecord>> {
        let rows = self.pool.get()?.query(
            "SELECT * FROM qldb_catalog.ledgers WHERE ord > $1 ORDER BY ord LIMIT $2",
            &[&after_ord, &limit(n)],
        )?;
        Ok(rows.iter().map(ledger).collect())
    }

    fn all_ledgers(&self) -> Result<Vec<LedgerRecord>> {
        self.ledgers_after(i64::MIN, usize::MAX)
    }

    fn insert_ledger(
        &mut self,
        rec: &LedgerRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<LedgerRecord> {
        self.transaction(|conn| {
            let ord: i64 = conn
                .query_one(
                    "INSERT INTO qldb_catalog.ledgers (name, arn, permissions_mode,
                         deletion_protection, kms_key_arn, created_ms, active_at_ms,
                         kms_updated_ms, deleting_since_ms, gone_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ord",
                    &[
                        &rec.name,
                        &rec.arn,
                        &rec.permissions_mode,
                        &rec.deletion_protection,
                        &rec.kms_key_arn,
                        &rec.created_ms,
                        &rec.active_at_ms,
                        &rec.kms_updated_ms,
                        &rec.deleting_since_ms,
                        &rec.gone_at_ms,
                    ],
                )?
                .get(0);
            insert_tags(conn, &rec.arn, tags)?;
            Ok(LedgerRecord { ord, ..rec.clone() })
        })
    }

    fn update_ledger(&self, rec: &LedgerRecord) -> Result<()> {
        self.pool.get()?.execute(
            // Another server may have begun the ledger's deletion since `rec` was read: a
            // deletion is never undone.
            "UPDATE qldb_catalog.ledgers SET permissions_mode = $2, deletion_protection = $3,
                 kms_key_arn = $4, kms_updated_ms = $5,
                 deleting_since_ms = coalesce(deleting_since_ms, $6),
                 gone_at_ms = coalesce(gone_at_ms, $7)
             WHERE name = $1 AND ord = $8",
            &[
                &rec.name,
                &rec.permissions_mode,
                &rec.deletion_protection,
                &rec.kms_key_arn,
                &rec.kms_updated_ms,
                &rec.deleting_since_ms,
                &rec.gone_at_ms,
                &rec.ord,
            ],
        )?;
        Ok(())
    }

    fn remove_ledger(&mut self, rec: &LedgerRecord) -> Result<()> {
        self.transaction(|conn| {
            // Only this ledger: not a successor of the same name another server made.
            if conn.execute(
                "DELETE FROM qldb_catalog.ledgers WHERE name = $1 AND ord = $2",
                &[&rec.name, &rec.ord],
            )? == 0
            {
                return Ok(());
            }
            conn.execute(
                "DELETE FROM qldb_catalog.export_objects WHERE export_id IN
                     (SELECT export_id FROM qldb_catalog.exports WHERE ledger_name = $1)",
                &[&rec.name],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.exports WHERE ledger_name = $1",
                &[&rec.name],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.streams WHERE ledger_name = $1",
                &[&rec.name],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.tags
                 WHERE resource_arn = $1 OR left(resource_arn, length($1) + 1) = $1 || '/'",
                &[&rec.arn],
            )?;
            Ok(())
        })
    }

    fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let rows = self.pool.get()?.query(
            "SELECT key, value FROM qldb_catalog.tags WHERE resource_arn = $1",
            &[&arn],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn add_tags(&mut self, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        self.transaction(|conn| insert_tags(conn, arn, tags))
    }

    fn remove_tags(&mut self, arn: &str, keys: &[String]) -> Result<()> {
        self.transaction(|conn| {
            for key in keys {
                conn.execute(
                    "DELETE FROM qldb_catalog.tags WHERE resource_arn = $1 AND key = $2",
                    &[&arn, key],
                )?;
            }
            Ok(())
        })
    }

    fn insert_export(&mut self, rec: &ExportRecord) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO qldb_catalog.exports (export_id, ledger_name, created_ms, status,
                 start_ms, end_ms, bucket, prefix, encryption_type, kms_key_arn, role_arn,
                 output_format, status_reason, next_seq, finished_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            &[
                &rec.export_id,
                &rec.ledger_name,
                &rec.created_ms,
                &rec.status,
                &rec.start_ms,
                &rec.end_ms,
                &rec.bucket,
                &rec.prefix,
                &rec.encryption_type,
                &rec.kms_key_arn,
                &rec.role_arn,
                &rec.output_format,
                &rec.status_reason,
                &(rec.next_seq as i64),
                &rec.finished_ms,
            ],
        )?;
        Ok(())
    }

    fn export(&self, export_id: &str) -> Result<Option<ExportRecord>> {
        Ok(self
            .pool
            .get()?
            .query_opt(
                "SELECT * FROM qldb_catalog.exports WHERE export_id = $1",
                &[&export_id],
            )?
            .as_ref()
            .map(export))
    }

    fn exports_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        n: usize,
    ) -> Result<Vec<ExportRecord>> {
        let rows = self.pool.get()?.query(
            "SELECT * FROM qldb_catalog.exports
             WHERE ord > $1 AND ($2::text IS NULL OR ledger_name = $2)
             ORDER BY ord LIMIT $3",
            &[&after_ord, &ledger, &limit(n)],
        )?;
        Ok(rows.iter().map(export).collect())
    }

    fn export_progress(&mut self, export_id: &str, next_seq: u64, key: &str) -> Result<()> {
        self.transaction(|conn| {
            // Once per key: a server taking an export over may write its last object again.
            conn.execute(
                "INSERT INTO qldb_catalog.export_objects (export_id, idx, key)
                 SELECT $1, count(*), $2 FROM qldb_catalog.export_objects WHERE export_id = $1
                 HAVING NOT bool_or(key = $2) OR count(*) = 0
                 ON CONFLICT DO NOTHING",
                &[&export_id, &key],
            )?;
            conn.execute(
                "UPDATE qldb_catalog.exports SET next_seq = greatest(next_seq, $2)
                 WHERE export_id = $1",
                &[&export_id, &(next_seq as i64)],
            )?;
            Ok(())
        })
    }

    fn export_objects(&self, export_id: &str) -> Result<Vec<String>> {
        let rows = self.pool.get()?.query(
            "SELECT key FROM qldb_catalog.export_objects WHERE export_id = $1 ORDER BY idx",
            &[&export_id],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn finish_export(
        &mut self,
        export_id: &str,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        self.transaction(|conn| {
            let changed = conn.execute(
                "UPDATE qldb_catalog.exports SET status = $2, status_reason = $3, finished_ms = $4
                 WHERE export_id = $1 AND status = 'IN_PROGRESS'",
                &[&export_id, &status, &reason, &now_ms],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.export_objects WHERE export_id = $1",
                &[&export_id],
            )?;
            Ok(changed == 1)
        })
    }

    fn insert_stream(&mut self, rec: &StreamRecord, tags: &BTreeMap<String, String>) -> Result<()> {
        self.transaction(|conn| {
            conn.execute(
                "INSERT INTO qldb_catalog.streams (stream_id, ledger_name, stream_name, arn,
                     created_ms, status, start_ms, end_ms, role_arn, kinesis_arn, aggregation,
                     error_cause, impaired_ms, next_seq, created_sent, finished_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                &[
                    &rec.stream_id,
                    &rec.ledger_name,
                    &rec.stream_name,
                    &rec.arn,
                    &rec.created_ms,
                    &rec.status,
                    &rec.start_ms,
                    &rec.end_ms,
                    &rec.role_arn,
                    &rec.kinesis_arn,
                    &rec.aggregation,
                    &rec.error_cause,
                    &rec.impaired_ms,
                    &(rec.next_seq as i64),
                    &rec.created_sent,
                    &rec.finished_ms,
                ],
            )?;
            insert_tags(conn, &rec.arn, tags)
        })
    }

    fn stream(&self, stream_id: &str) -> Result<Option<StreamRecord>> {
        Ok(self
            .pool
            .get()?
            .query_opt(
                "SELECT * FROM qldb_catalog.streams WHERE stream_id = $1",
                &[&stream_id],
            )?
            .as_ref()
            .map(stream))
    }

    fn streams_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        n: usize,
    ) -> Result<Vec<StreamRecord>> {
        let rows = self.pool.get()?.query(
            "SELECT * FROM qldb_catalog.streams
             WHERE ord > $1 AND ($2::text IS NULL OR ledger_name = $2)
             ORDER BY ord LIMIT $3",
            &[&after_ord, &ledger, &limit(n)],
        )?;
        Ok(rows.iter().map(stream).collect())
    }

    fn stream_progress(
        &mut self,
        stream_id: &str,
        next_seq: u64,
        created_sent: bool,
    ) -> Result<bool> {
        Ok(self.pool.get()?.execute(
            "UPDATE qldb_catalog.streams SET next_seq = $2, created_sent = $3
             WHERE stream_id = $1 AND status IN ('ACTIVE', 'IMPAIRED')",
            &[&stream_id, &(next_seq as i64), &created_sent],
        )? == 1)
    }

    fn set_stream_status(
        &mut self,
        stream_id: &str,
        status: &str,
        error_cause: Option<&str>,
        impaired_ms: Option<i64>,
        finished_ms: Option<i64>,
    ) -> Result<bool> {
        Ok(self.pool.get()?.execute(
            "UPDATE qldb_catalog.streams SET status = $2, error_cause = $3, impaired_ms = $4,
                 finished_ms = $5
             WHERE stream_id = $1 AND status IN ('ACTIVE', 'IMPAIRED')",
            &[
                &stream_id,
                &status,
                &error_cause,
                &impaired_ms,
                &finished_ms,
            ],
        )? == 1)
    }

    fn expire_jobs(&mut self, cutoff_ms: i64) -> Result<()> {
        self.transaction(|conn| {
            conn.execute(
                "DELETE FROM qldb_catalog.exports
                 WHERE finished_ms IS NOT NULL AND finished_ms < $1",
                &[&cutoff_ms],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.tags WHERE resource_arn IN
                     (SELECT arn FROM qldb_catalog.streams
                      WHERE finished_ms IS NOT NULL AND finished_ms < $1)",
                &[&cutoff_ms],
            )?;
            conn.execute(
                "DELETE FROM qldb_catalog.streams
                 WHERE finished_ms IS NOT NULL AND finished_ms < $1",
                &[&cutoff_ms],
            )?;
            Ok(())
        })
    }
}
