//! Storage: the catalog of ledgers, tags and jobs, and each ledger's journal and current
//! state — behind the traits of this module.
//!
//! Knows nothing of HTTP, sessions or PartiQL; the control plane decides *what* to store,
//! a backend decides *how*, durably. The layers above (control, session, partiql, jobs)
//! see only [`Backend`], [`CatalogStore`] and [`LedgerStore`] and the plain types of
//! [`model`]; the SQLite backend ([`sqlite`]) is the only code that issues SQL or knows
//! file names. Every call here may block: callers run it off the async executor
//! (`tokio::task::spawn_blocking`) or accept a short wait.
//!
//! The traits promise orders and guarantees, never a mechanism:
//! - a table scan yields documents in the order they were first inserted;
//! - [`LedgerStore::commit`] returns only after the commit is durable (unless the backend
//!   was opened with relaxed durability) and never writes a transaction whose read set
//!   moved since it was read;
//! - [`LedgerStore::tip`] and [`LedgerStore::tables`] may lag a concurrent commit, never
//!   run ahead of the data a later read returns (so OCC `as_of` values stay conservative).

pub mod forms;
pub mod group;
pub mod migrate;
pub mod model;
pub mod pg;
pub mod sqlite;
pub mod stored;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::ion::Value;
use crate::journal::hash::Hash;
use crate::names::LedgerName;

pub use model::{
    index_key, CommitError, CommitRequest, Committed, DocWrite, ExportRecord, IndexInfo,
    LedgerRecord, ReadCheck, RevisionRef, ScanPage, StoredDoc, StreamRecord, TableInfo, Tip,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: schema version {found} is newer than this qldb-local supports ({supported})")]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("data directory {} is in use by {holder}", dir.display())]
    DataDirLocked { dir: PathBuf, holder: String },
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    /// A read through the handle of a ledger whose data was removed (deleted).
    #[error("the ledger was deleted")]
    LedgerRemoved,
    /// The storage cannot be used (a database that cannot be reached or set up); the text
    /// says why, in one line.
    #[error("{0}")]
    Unavailable(String),
    /// A group commit whose transaction failed: none of its transactions is written.
    #[error("{0}")]
    CommitFailed(String),
}

impl StorageError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// Reads from one snapshot of a ledger's committed state: every read through it sees the
/// same commits, whatever commits meanwhile. Held for one statement at most (it keeps the
/// journal's older state readable while it lives).
pub trait Snapshot {
    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>>;
    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>>;
    /// [`LedgerStore::scan_page`] within the snapshot.
    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<KeepDoc<'_>>,
    ) -> Result<ScanPage>;
}

/// Decides from a stored document (its id and Ion binary) whether a scan keeps it
/// ([`LedgerStore::scan_page`]).
pub type KeepDoc<'a> = &'a dyn Fn(&str, &[u8]) -> bool;

/// The position before a table's first document, for [`LedgerStore::scan_page`].
pub const SCAN_START: i64 = i64::MIN;

/// Where ledgers and the catalog live: opens and creates them.
pub trait Backend: Send + Sync {
    /// Opens the catalog (once per server: it may hold a lock that keeps a second server
    /// off the same data).
    fn open_catalog(&self) -> Result<Box<dyn CatalogStore>>;

    /// Creates a new, empty ledger holding its name, strand id and genesis block (stamped
    /// `now_ms`); if anything fails, nothing is left behind. Its data must not exist yet,
    /// or be the remains of a create that crashed (no catalog row names it).
    fn create_ledger(
        &self,
        name: &LedgerName,
        strand_id: &str,
        now_ms: i64,
    ) -> Result<Arc<dyn LedgerStore>>;

    /// Opens an existing ledger, bringing its stored layout up to date and refusing one
    /// that cannot be served.
    fn open_ledger(&self, name: &LedgerName) -> Result<Arc<dyn LedgerStore>>;

    /// Removes ledger data that no catalog row names (the remains of an interrupted create
    /// or of a delete whose catalog row was removed first).
    fn remove_orphans(&self, catalog: &dyn CatalogStore) -> Result<()>;

    /// The right to run export or stream `job_id`, held while the returned value lives;
    /// `None` while another server on the same storage holds it. A backend that only one
    /// server can open grants it always.
    fn job_lease(&self, _job_id: &str) -> Result<Option<Box<dyn JobLease>>> {
        Ok(Some(Box::new(())))
    }
}

/// The right to run a job ([`Backend::job_lease`]), given up when dropped.
pub trait JobLease: Send + Sync {
    /// Whether the lease may have been lost (its database connection was cut, say): another
    /// server may then take the job, so its task must stop. May block (a round trip).
    fn lost(&self) -> bool {
        false
    }
}

/// The lease of a backend that only one server opens: never lost.
impl JobLease for () {}

/// The catalog: ledgers, the tags of every resource, journal exports and streams.
pub trait CatalogStore: Send {
    fn ledger(&self, name: &str) -> Result<Option<LedgerRecord>>;
    /// Up to `limit` ledgers created after `after_ord`, in creation order.
    fn ledgers_after(&self, after_ord: i64, limit: usize) -> Result<Vec<LedgerRecord>>;
    fn all_ledgers(&self) -> Result<Vec<LedgerRecord>>;
    /// Stores a new ledger with its tags; returns it with its creation order.
    fn insert_ledger(
        &mut self,
        rec: &LedgerRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<LedgerRecord>;
    fn update_ledger(&self, rec: &LedgerRecord) -> Result<()>;
    /// Removes a ledger with its tags, exports and streams.
    fn remove_ledger(&mut self, rec: &LedgerRecord) -> Result<()>;

    fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>>;
    /// Adds tags, overwriting the values of existing keys.
    fn add_tags(&mut self, arn: &str, tags: &BTreeMap<String, String>) -> Result<()>;
    fn remove_tags(&mut self, arn: &str, keys: &[String]) -> Result<()>;

    fn insert_export(&mut self, rec: &ExportRecord) -> Result<()>;
    fn export(&self, export_id: &str) -> Result<Option<ExportRecord>>;
    fn exports_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<ExportRecord>>;
    /// Records an object written to S3 and the next block to export, together.
    fn export_progress(&mut self, export_id: &str, next_seq: u64, key: &str) -> Result<()>;
    /// The keys of the objects written so far, in order.
    fn export_objects(&self, export_id: &str) -> Result<Vec<String>>;
    /// Ends a running export; false if it had already ended.
    fn finish_export(
        &mut self,
        export_id: &str,
        status: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool>;

    fn insert_stream(&mut self, rec: &StreamRecord, tags: &BTreeMap<String, String>) -> Result<()>;
    fn stream(&self, stream_id: &str) -> Result<Option<StreamRecord>>;
    fn streams_after(
        &self,
        ledger: Option<&str>,
        after_ord: i64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>>;
    /// Records the first block not yet acknowledged; false if the stream has ended.
    fn stream_progress(
        &mut self,
        stream_id: &str,
        next_seq: u64,
        created_sent: bool,
    ) -> Result<bool>;
    /// false if the stream had already ended.
    fn set_stream_status(
        &mut self,
        stream_id: &str,
        status: &str,
        error_cause: Option<&str>,
        impaired_ms: Option<i64>,
        finished_ms: Option<i64>,
    ) -> Result<bool>;
    /// Forgets exports and streams that ended before `cutoff_ms`.
    fn expire_jobs(&mut self, cutoff_ms: i64) -> Result<()>;
}

/// One open ledger: its current state, its commits, and its journal with proofs.
pub trait LedgerStore: Send + Sync {
    /// The journal's last block.
    fn tip(&self) -> Result<Tip>;
    /// Every table, dropped ones included, with its indexes.
    fn tables(&self) -> Result<Vec<TableInfo>>;
    /// A live document by id.
    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>>;
    /// Reads up to `limit` live documents of a table that come after position `after` in
    /// the order they were first inserted ([`SCAN_START`]: from the first). Each page is a
    /// read of its own, so a caller may read anything between pages; a commit between two
    /// pages may show in the later one (a transaction's table read, as of the tip before
    /// its first page, then fails its commit). `keep` (document id, the document's Ion
    /// binary) may leave documents out of the page before they are decoded.
    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<KeepDoc<'_>>,
    ) -> Result<ScanPage>;
    /// A snapshot for a statement's reads, when the backend can hold one beside its
    /// writer (`None`: each read is a snapshot of its own). Read the tip first: a snapshot
    /// shows that tip's state or a later one.
    fn snapshot(&self) -> Result<Option<Box<dyn Snapshot + '_>>>;
    /// The live documents whose indexed field has the canonical key `key` ([`index_key`]),
    /// `limit` of them at most.
    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>>;
    /// How many live documents a table has, counting no further than `cap` (cheap for a
    /// small cap): a planner's estimate, read outside any snapshot.
    fn count_docs(&self, table_id: &str, cap: u64) -> Result<u64>;
    /// The committed view of a table: the latest revision of every live document.
    fn committed_view(&self, table_id: &str) -> Result<Vec<Value>>;
    /// Every revision of a table's documents, in journal order.
    fn history(&self, table_id: &str) -> Result<Vec<Value>>;
    /// The revision of `doc_id` in block `seq`, for REDACT_REVISION.
    fn revision_at(&self, seq: u64, doc_id: &str) -> Result<Option<RevisionRef>>;

    /// Checks a read-only transaction's reads against the latest committed state.
    fn validate(&self, reads: &[ReadCheck]) -> std::result::Result<(), CommitError>;
    /// Whether a few reads — [`LedgerStore::validate`] of a few reads, a statement's few
    /// document reads — are quick and never wait (for a commit, a lock or the network), so
    /// that they may run on the HTTP layer's own thread.
    fn reads_without_waiting(&self) -> bool {
        false
    }
    /// Validates `req.reads` and, if nothing moved, appends one block with the
    /// transaction's revisions and applies its writes; returns once that is durable.
    /// (Leads the ledger's group commit until its queue is empty if no one else does.)
    fn commit(&self, req: CommitRequest) -> std::result::Result<Committed, CommitError> {
        let (ticket, lead) = self.queue_commit(req);
        if lead {
            self.lead_commits(None);
        }
        ticket.wait()
    }
    /// Queues a commit ([`LedgerStore::commit`]) without waiting for it: the ticket answers
    /// once the commit is durable (or failed). True as the second value: no one leads the
    /// ledger's group commit, and the caller must call [`LedgerStore::lead_commits`] on a
    /// thread that may block, or the commit is never made.
    fn queue_commit(&self, req: CommitRequest) -> (group::CommitTicket, bool);
    /// Leads the group commit: commits what is queued, batch after batch, until the queue is
    /// empty (true). With `until`, returns false as soon as that ticket is answered while
    /// commits remain queued: the caller still leads and must call this again, without
    /// `until`, elsewhere (see [`group::GroupCommit::lead`]).
    fn lead_commits(&self, until: Option<&group::CommitTicket>) -> bool;
    /// Announces a transaction that wrote and will probably commit soon, until the intent
    /// is dropped: the group commit may wait a little to take its commit into the same
    /// batch ([`group::CommitIntent`]). Backends without that wait hand out an empty one.
    fn commit_intent(&self) -> group::CommitIntent {
        group::CommitIntent::default()
    }
    /// (transactions committed, durable writes made for them) since the ledger was opened.
    fn commit_counts(&self) -> (u64, u64);

    /// The tip and the digest (the digest tree's root) there.
    fn digest(&self) -> Result<(u64, Hash)>;
    /// The digest at an earlier tip.
    fn digest_at(&self, tip: u64) -> Result<Hash>;
    /// Every block, as Ion, by sequence number.
    fn blocks(&self) -> Result<BTreeMap<u64, Value>>;
    fn block(&self, seq: u64) -> Result<Option<Value>>;
    /// Up to `limit` blocks from `from_seq` on whose timestamps lie in
    /// `[start_ms, end_ms)`: (sequence number, timestamp, block).
    fn blocks_in_window(
        &self,
        from_seq: u64,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(u64, i64, Value)>>;
    fn count_in_window(&self, from_seq: u64, start_ms: i64, end_ms: i64) -> Result<u64>;
    /// The hashes that fold block `seq`'s hash up to the digest at `tip`.
    fn block_proof(&self, seq: u64, tip: u64) -> Result<Vec<Hash>>;

    /// Marks the ledger as being deleted: sessions on it stop working.
    fn mark_closed(&self);
    /// Whether [`LedgerStore::mark_closed`] was called.
    fn is_closed(&self) -> bool;
    /// Marks the ledger closed and removes its data. Holders of this handle see
    /// [`LedgerStore::is_closed`]; what they read afterwards is undefined.
    fn remove(&self) -> Result<()>;
}

/// A directory of this process's own under the system's temporary directory (mode 0700: it
/// holds copies of ledger data), removed with everything in it when dropped.
pub struct PrivateDir(std::path::PathBuf);

impl PrivateDir {
    pub fn new(what: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "qldb-local-{what}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(PrivateDir(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
