//! The SQLite backend: `<data-dir>/catalog.sqlite` and one `<data-dir>/ledgers/<name>.sqlite`
//! per ledger (or private in-memory databases with `--in-memory`), WAL with
//! `synchronous=FULL`. The only code that issues SQL or knows file names; also home of the
//! offline tools that work on those files ([`verify`], [`rebuild`], [`import`]).

pub mod catalog;
mod checkpoint;
pub mod import;
pub mod jobs;
pub mod journal;
pub(crate) mod key_seqs;
pub mod ledger_db;
pub mod migrate;
pub mod rebuild;
pub mod schema;
pub use crate::storage::stored;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use catalog::Catalog;
pub use ledger_db::{LedgerDb, LedgerLocation};

use super::group::CommitTicket;
use super::{
    Backend, CatalogStore, CommitError, CommitRequest, ExportRecord, LedgerRecord, LedgerStore,
    ReadCheck, Result, RevisionRef, ScanPage, Snapshot, StoredDoc, StreamRecord, TableInfo, Tip,
};
use crate::ion::Value;
use crate::journal::hash::Hash;
use crate::names::LedgerName;

/// Applies the connection settings every file-backed database uses.
pub(crate) fn configure_durable(conn: &rusqlite::Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// SQLite files under a data directory, or in-memory databases.
pub struct SqliteBackend {
    /// `None` keeps everything in memory.
    data_dir: Option<PathBuf>,
    /// `--durability relaxed`: commits are acknowledged before the WAL is synced.
    relaxed_durability: bool,
}

impl SqliteBackend {
    pub fn new(data_dir: Option<PathBuf>, relaxed_durability: bool) -> Self {
        SqliteBackend {
            data_dir,
            relaxed_durability,
        }
    }

    fn location(&self, name: &LedgerName) -> LedgerLocation {
        match &self.data_dir {
            Some(dir) => LedgerLocation::file(&catalog::ledgers_dir(dir), name),
            None => LedgerLocation::memory(),
        }
    }

    fn ready(&self, db: LedgerDb) -> Result<Arc<dyn LedgerStore>> {
        db.set_relaxed_durability(self.relaxed_durability)?;
        Ok(Arc::new(db))
    }
}

impl Backend for SqliteBackend {
    fn open_catalog(&self) -> Result<Box<dyn CatalogStore>> {
        Ok(Box::new(match &self.data_dir {
            Some(dir) => Catalog::open(dir)?,
            None => Catalog::open_in_memory()?,
        }))
    }

    fn create_ledger(
        &self,
        name: &LedgerName,
        strand_id: &str,
        now_ms: i64,
    ) -> Result<Arc<dyn LedgerStore>> {
        let db = LedgerDb::create_at(self.location(name), name, strand_id, now_ms)?;
        if let Err(e) = db.set_relaxed_durability(self.relaxed_durability) {
            // Nothing is left behind.
            let _ = db.remove();
            return Err(e);
        }
        Ok(Arc::new(db))
    }

    fn open_ledger(&self, name: &LedgerName) -> Result<Arc<dyn LedgerStore>> {
        match self.location(name) {
            loc @ LedgerLocation::File(_) => self.ready(LedgerDb::open(loc)?),
            // An in-memory ledger lives only as long as its handle: nothing to reopen.
            LedgerLocation::Memory(_) => Err(super::StorageError::Corrupt(format!(
                "in-memory ledger {} cannot be reopened",
                name.as_str()
            ))),
        }
    }

    fn remove_orphans(&self, catalog: &dyn CatalogStore) -> Result<()> {
        match &self.data_dir {
            Some(dir) => ledger_db::remove_orphans(&catalog::ledgers_dir(dir), catalog),
            None => Ok(()),
        }
    }
}

impl CatalogStore for Catalog {
    fn ledger(&self, name: &str) -> Result<Option<LedgerRecord>> {
        Catalog::ledger(self, name)
    }
    fn ledgers_after(&self, after_ord: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        Catalog::ledgers_after(self, after_ord, limit)
    }
    fn all_ledgers(&self) -> Result<Vec<LedgerRecord>> {
        Catalog::all_ledgers(self)
    }
    fn insert_ledger(
        &mut self,
        rec: &LedgerRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<LedgerRecord> {
        Catalog::insert_ledger(self, rec, tags)
    }
    fn update_ledger(&self, rec: &LedgerRecord) -> Result<()> {
        Catalog::update_ledger(self, rec)
    }
    fn remove_ledger(&mut self, rec: &LedgerRecord) -> Result<()> {
        Catalog::remove_ledger(self, rec)
    }
    fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        Catalog::tags(self, arn)
    }
    fn add_tags(&mut self, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        Catalog::add_tags(self, arn, tags)
    }
    fn remove_tags(&mut self, arn: &str, keys: &[String]) -> Result<()> {
        Catalog::remove_tags(self, arn, keys)
    }
    fn insert_export(&mut self, rec: &ExportRecord) -> Result<()> {
        Catalog::insert_export(self, rec)
    }
    fn export(&self, export_id: &str) -> Result<Option<ExportRecord>> {
        Catalog::export(self, export_id)
    }
    fn exports_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<ExportRecord>> {
        Catalog::exports_after(self, ledger, after_ord, limit)
    }
    fn export_progress(&mut self, export_id: &str, next_seq: u64, key: &str) -> Result<()> {
        Catalog::export_progress(self, export_id, next_seq, key)
    }
    fn export_objects(&self, export_id: &str) -> Result<Vec<String>> {
        Catalog::export_objects(self, export_id)
    }
    fn finish_export(
        &mut self,
        export_id: &str,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        Catalog::finish_export(self, export_id, status, reason, now_ms)
    }
    fn insert_stream(&mut self, rec: &StreamRecord, tags: &BTreeMap<String, String>) -> Result<()> {
        Catalog::insert_stream(self, rec, tags)
    }
    fn stream(&self, stream_id: &str) -> Result<Option<StreamRecord>> {
        Catalog::stream(self, stream_id)
    }
    fn streams_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>> {
        Catalog::streams_after(self, ledger, after_ord, limit)
    }
    fn stream_progress(
        &mut self,
        stream_id: &str,
        next_seq: u64,
        created_sent: bool,
    ) -> Result<bool> {
        Catalog::stream_progress(self, stream_id, next_seq, created_sent)
    }
    fn set_stream_status(
        &mut self,
        stream_id: &str,
        status: &str,
        error_cause: Option<&str>,
        impaired_ms: Option<i64>,
        finished_ms: Option<i64>,
    ) -> Result<bool> {
        Catalog::set_stream_status(
            self,
            stream_id,
            status,
            error_cause,
            impaired_ms,
            finished_ms,
        )
    }
    fn expire_jobs(&mut self, cutoff_ms: i64) -> Result<()> {
        Catalog::expire_jobs(self, cutoff_ms)
    }
}

/// One read transaction of a file ledger ([`LedgerStore::snapshot`]).
struct SqliteSnapshot<'a>(ledger_db::ReadConn<'a>);

impl Snapshot for SqliteSnapshot<'_> {
    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>> {
        journal::document_on(&self.0, doc_id)
    }
    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>> {
        journal::index_lookup_on(&self.0, index_id, key, limit)
    }
    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<crate::storage::KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        journal::scan_page_on(&self.0, table_id, after, limit, keep)
    }
}

impl LedgerStore for LedgerDb {
    /// A file ledger's reads take a pooled read connection of their own (WAL); an in-memory
    /// ledger's would take the writer's connection.
    fn reads_without_waiting(&self) -> bool {
        matches!(self.location(), LedgerLocation::File(_))
    }

    fn tip(&self) -> Result<Tip> {
        LedgerDb::tip(self)
    }
    fn tables(&self) -> Result<Vec<TableInfo>> {
        LedgerDb::tables(self)
    }
    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>> {
        LedgerDb::document(self, doc_id)
    }
    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<crate::storage::KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        LedgerDb::scan_page(self, table_id, after, limit, keep)
    }
    fn snapshot(&self) -> Result<Option<Box<dyn Snapshot + '_>>> {
        Ok(self
            .snapshot_conn()?
            .map(|conn| Box::new(SqliteSnapshot(conn)) as Box<dyn Snapshot>))
    }
    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>> {
        LedgerDb::index_lookup(self, index_id, key, limit)
    }
    fn count_docs(&self, table_id: &str, cap: u64) -> Result<u64> {
        LedgerDb::count_docs(self, table_id, cap)
    }
    fn committed_view(&self, table_id: &str) -> Result<Vec<Value>> {
        LedgerDb::committed_view(self, table_id)
    }
    fn history(&self, table_id: &str) -> Result<Vec<Value>> {
        LedgerDb::history(self, table_id)
    }
    fn revision_at(&self, seq: u64, doc_id: &str) -> Result<Option<RevisionRef>> {
        LedgerDb::revision_at(self, seq, doc_id)
    }
    fn validate(&self, reads: &[ReadCheck]) -> std::result::Result<(), CommitError> {
        LedgerDb::validate(self, reads)
    }
    fn queue_commit(&self, req: CommitRequest) -> (CommitTicket, bool) {
        LedgerDb::queue_commit(self, req)
    }
    fn lead_commits(&self, until: Option<&CommitTicket>) -> bool {
        LedgerDb::lead_commits(self, until)
    }
    fn commit_intent(&self) -> crate::storage::group::CommitIntent {
        if !self.gathers() {
            return Default::default();
        }
        self.group.intent()
    }
    fn commit_counts(&self) -> (u64, u64) {
        LedgerDb::commit_counts(self)
    }
    fn digest(&self) -> Result<(u64, Hash)> {
        LedgerDb::digest(self)
    }
    fn digest_at(&self, tip: u64) -> Result<Hash> {
        LedgerDb::digest_at(self, tip)
    }
    fn blocks(&self) -> Result<BTreeMap<u64, Value>> {
        LedgerDb::blocks(self)
    }
    fn block(&self, seq: u64) -> Result<Option<Value>> {
        LedgerDb::block(self, seq)
    }
    fn blocks_in_window(
        &self,
        from_seq: u64,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(u64, i64, Value)>> {
        LedgerDb::blocks_in_window(self, from_seq, start_ms, end_ms, limit)
    }
    fn count_in_window(&self, from_seq: u64, start_ms: i64, end_ms: i64) -> Result<u64> {
        LedgerDb::count_in_window(self, from_seq, start_ms, end_ms)
    }
    fn block_proof(&self, seq: u64, tip: u64) -> Result<Vec<Hash>> {
        LedgerDb::block_proof(self, seq, tip)
    }
    fn mark_closed(&self) {
        LedgerDb::mark_closed(self)
    }
    fn is_closed(&self) -> bool {
        LedgerDb::is_closed(self)
    }
    fn remove(&self) -> Result<()> {
        LedgerDb::remove(self)
    }
}
