//! Journal exports and streams as the catalog stores them, with the progress that lets a
//! restarted server resume them: an export's next block and the objects already written,
//! a stream's first block not yet acknowledged by Kinesis.

use rusqlite::{params, OptionalExtension, Row};

use super::catalog::Catalog;
use crate::storage::{ExportRecord, Result, StreamRecord};

impl ExportRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ExportRecord {
            ord: r.get("ord")?,
            export_id: r.get("export_id")?,
            ledger_name: r.get("ledger_name")?,
            created_ms: r.get("created_ms")?,
            status: r.get("status")?,
            start_ms: r.get("start_ms")?,
            end_ms: r.get("end_ms")?,
            bucket: r.get("bucket")?,
            prefix: r.get("prefix")?,
            encryption_type: r.get("encryption_type")?,
            kms_key_arn: r.get("kms_key_arn")?,
            role_arn: r.get("role_arn")?,
            output_format: r.get("output_format")?,
            status_reason: r.get("status_reason")?,
            next_seq: r.get::<_, i64>("next_seq")? as u64,
            finished_ms: r.get("finished_ms")?,
        })
    }
}

impl StreamRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(StreamRecord {
            ord: r.get("ord")?,
            stream_id: r.get("stream_id")?,
            ledger_name: r.get("ledger_name")?,
            stream_name: r.get("stream_name")?,
            arn: r.get("arn")?,
            created_ms: r.get("created_ms")?,
            status: r.get("status")?,
            start_ms: r.get("start_ms")?,
            end_ms: r.get("end_ms")?,
            role_arn: r.get("role_arn")?,
            kinesis_arn: r.get("kinesis_arn")?,
            aggregation: r.get("aggregation")?,
            error_cause: r.get("error_cause")?,
            impaired_ms: r.get("impaired_ms")?,
            next_seq: r.get::<_, i64>("next_seq")? as u64,
            created_sent: r.get("created_sent")?,
            finished_ms: r.get("finished_ms")?,
        })
    }
}

impl Catalog {
    pub fn insert_export(&mut self, rec: &ExportRecord) -> Result<()> {
        self.conn.execute(
            "INSERT INTO exports (export_id, ledger_name, created_ms, status, start_ms, end_ms,
                 bucket, prefix, encryption_type, kms_key_arn, role_arn, output_format,
                 status_reason, next_seq, finished_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                rec.export_id,
                rec.ledger_name,
                rec.created_ms,
                rec.status,
                rec.start_ms,
                rec.end_ms,
                rec.bucket,
                rec.prefix,
                rec.encryption_type,
                rec.kms_key_arn,
                rec.role_arn,
                rec.output_format,
                rec.status_reason,
                rec.next_seq as i64,
                rec.finished_ms
            ],
        )?;
        Ok(())
    }

    pub fn export(&self, export_id: &str) -> Result<Option<ExportRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM exports WHERE export_id = ?1",
                [export_id],
                ExportRecord::from_row,
            )
            .optional()?)
    }

    /// Up to `limit` exports of a ledger after `after_ord`, oldest first; `None` = every
    /// ledger.
    pub fn exports_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<ExportRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM exports WHERE ord > ?1 AND (?2 IS NULL OR ledger_name = ?2)
             ORDER BY ord LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![after_ord, ledger, limit as i64],
            ExportRecord::from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records that the blocks before `next_seq` are in S3, and the object that holds the
    /// last of them, in one transaction.
    pub fn export_progress(&mut self, export_id: &str, next_seq: u64, key: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO export_objects (export_id, idx, key)
             VALUES (?1, (SELECT COUNT(*) FROM export_objects WHERE export_id = ?1), ?2)",
            params![export_id, key],
        )?;
        tx.execute(
            "UPDATE exports SET next_seq = ?2 WHERE export_id = ?1",
            params![export_id, next_seq as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The keys of the data objects written so far, in block order.
    pub fn export_objects(&self, export_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key FROM export_objects WHERE export_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([export_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ends an IN_PROGRESS export; false if it had already ended.
    pub fn finish_export(
        &mut self,
        export_id: &str,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE exports SET status = ?2, status_reason = ?3, finished_ms = ?4
             WHERE export_id = ?1 AND status = 'IN_PROGRESS'",
            params![export_id, status, reason, now_ms],
        )?;
        tx.execute(
            "DELETE FROM export_objects WHERE export_id = ?1",
            [export_id],
        )?;
        tx.commit()?;
        Ok(changed == 1)
    }

    pub fn insert_stream(
        &mut self,
        rec: &StreamRecord,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO streams (stream_id, ledger_name, stream_name, arn, created_ms, status,
                 start_ms, end_ms, role_arn, kinesis_arn, aggregation, error_cause, impaired_ms,
                 next_seq, created_sent, finished_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                rec.stream_id,
                rec.ledger_name,
                rec.stream_name,
                rec.arn,
                rec.created_ms,
                rec.status,
                rec.start_ms,
                rec.end_ms,
                rec.role_arn,
                rec.kinesis_arn,
                rec.aggregation,
                rec.error_cause,
                rec.impaired_ms,
                rec.next_seq as i64,
                rec.created_sent,
                rec.finished_ms
            ],
        )?;
        super::catalog::insert_tags(&tx, &rec.arn, tags)?;
        tx.commit()?;
        Ok(())
    }

    pub fn stream(&self, stream_id: &str) -> Result<Option<StreamRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM streams WHERE stream_id = ?1",
                [stream_id],
                StreamRecord::from_row,
            )
            .optional()?)
    }

    /// Up to `limit` streams of a ledger after `after_ord`, oldest first; `None` = every
    /// ledger.
    pub fn streams_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM streams WHERE ord > ?1 AND (?2 IS NULL OR ledger_name = ?2)
             ORDER BY ord LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![after_ord, ledger, limit as i64],
            StreamRecord::from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records what Kinesis acknowledged, if the stream still runs; false otherwise.
    pub fn stream_progress(
        &mut self,
        stream_id: &str,
        next_seq: u64,
        created_sent: bool,
    ) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE streams SET next_seq = ?2, created_sent = ?3
             WHERE stream_id = ?1 AND status IN ('ACTIVE', 'IMPAIRED')",
            params![stream_id, next_seq as i64, created_sent],
        )? == 1)
    }

    /// Moves a running stream to `status` (with its error cause and, when it ends, the end
    /// time); false if the stream no longer runs.
    pub fn set_stream_status(
        &mut self,
        stream_id: &str,
        status: &str,
        error_cause: Option<&str>,
        impaired_ms: Option<i64>,
        finished_ms: Option<i64>,
    ) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE streams SET status = ?2, error_cause = ?3, impaired_ms = ?4, finished_ms = ?5
             WHERE stream_id = ?1 AND status IN ('ACTIVE', 'IMPAIRED')",
            params![stream_id, status, error_cause, impaired_ms, finished_ms],
        )? == 1)
    }

    /// Forgets terminal exports and streams that ended before `cutoff_ms`.
    pub fn expire_jobs(&mut self, cutoff_ms: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM exports WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
            [cutoff_ms],
        )?;
        tx.execute(
            "DELETE FROM tags WHERE resource_arn IN
                 (SELECT arn FROM streams WHERE finished_ms IS NOT NULL AND finished_ms < ?1)",
            [cutoff_ms],
        )?;
        tx.execute(
            "DELETE FROM streams WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
            [cutoff_ms],
        )?;
        tx.commit()?;
        Ok(())
    }
}
