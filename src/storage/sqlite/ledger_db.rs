//! One ledger's database: `<data-dir>/ledgers/<name>.sqlite` (or a private in-memory
//! database). Created whole or not at all: the file is built under a temporary name,
//! migrated, synced, and only then renamed into place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, OpenFlags};

use super::configure_durable;
use super::schema::{migrate, LEDGER_MIGRATIONS};
use crate::names::LedgerName;
use crate::storage::{Result, StorageError};

/// Where a ledger's database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerLocation {
    File(PathBuf),
    /// A shared-cache in-memory database, alive while its [`LedgerDb`] is.
    Memory(String),
}

impl LedgerLocation {
    /// The file of `name` inside `ledgers_dir`. Only a validated [`LedgerName`] is accepted,
    /// so the path cannot leave the directory.
    pub fn file(ledgers_dir: &Path, name: &LedgerName) -> Self {
        LedgerLocation::File(ledgers_dir.join(format!("{}.sqlite", name.as_str())))
    }

    pub fn memory() -> Self {
        LedgerLocation::Memory(format!(
            "file:qldb-local-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

/// An open ledger database.
pub struct LedgerDb {
    location: LedgerLocation,
    /// A file ledger's WAL checkpoints, off the writer's path; dropped (its thread ended and
    /// its connection closed) before the other connections.
    checkpointer: Option<super::checkpoint::Checkpointer>,
    conn: Mutex<Connection>,
    /// Set when the ledger is being deleted: sessions on it stop working.
    closed: std::sync::atomic::AtomicBool,
    /// Set once its files are removed: no read connection is opened by that path again
    /// (it may name a new ledger's file by then).
    removed: std::sync::atomic::AtomicBool,
    /// Commits waiting for a batch; the next batch's leader commits them all in one SQLite
    /// transaction (group commit, [`LedgerDb::commit`]).
    pub(super) group: crate::storage::group::GroupCommit<super::journal::Queued>,
    /// Transactions committed and SQLite commits (fsyncs) made for them.
    pub(super) commit_stats: super::journal::CommitStats,
    /// Idle read-only connections of a file ledger (WAL lets them read beside the writer).
    readers: Mutex<Vec<Connection>>,
    /// The journal tip and the table catalog as last committed, replaced by whoever holds
    /// the write connection after changing them: statements read them from memory.
    pub(super) cache: RwLock<Arc<Cached>>,
    /// Which block last changed each index key (OCC of index lookups), kept by the writer.
    pub(super) key_seqs: Mutex<super::key_seqs::KeySeqs>,
    /// Set when the cache could not be read again after a write: until a refresh succeeds,
    /// the tip and the catalog are read from the file.
    stale: std::sync::atomic::AtomicBool,
}

/// What every statement needs and only a commit changes (see [`LedgerDb::tip`],
/// [`LedgerDb::tables`]).
pub(crate) struct Cached {
    pub(crate) tip: crate::storage::Tip,
    pub(crate) tables: Arc<Vec<crate::storage::TableInfo>>,
}

impl Cached {
    fn load(conn: &Connection) -> Result<Self> {
        Ok(Cached {
            tip: super::journal::tip(conn)?,
            tables: Arc::new(super::journal::tables(conn)?),
        })
    }
}

/// The write connection, held: when it is let go, the cached tip and catalog are read
/// again from it, so that nothing written through it is missed.
pub struct WriteConn<'a> {
    db: &'a LedgerDb,
    guard: MutexGuard<'a, Connection>,
}

impl std::ops::Deref for WriteConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl std::ops::DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

impl Drop for WriteConn<'_> {
    fn drop(&mut self) {
        // A transaction left open is not published; it is rolled back or committed later
        // through this connection, and the next refresh sees its outcome.
        if self.guard.is_autocommit() {
            self.db.refresh_cache(&self.guard, true);
        } else {
            self.db.mark_cache_stale();
        }
    }
}

/// Prepared statements kept per connection: a commit alone uses about 30 distinct ones.
const STATEMENT_CACHE: usize = 64;

/// Idle read connections kept per ledger; more are opened while needed and closed after.
const IDLE_READERS: usize = 16;

/// A connection for reads, inside one read transaction: every query of it sees the same
/// committed state. A file ledger's reads use a pooled read-only connection and so never
/// wait for a commit; an in-memory ledger's use its one connection.
pub enum ReadConn<'a> {
    Pooled {
        db: &'a LedgerDb,
        conn: Option<Connection>,
    },
    Main(MutexGuard<'a, Connection>),
}

impl std::ops::Deref for ReadConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            ReadConn::Pooled { conn, .. } => conn.as_ref().expect("held until drop"),
            ReadConn::Main(guard) => guard,
        }
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        if let ReadConn::Pooled { db, conn } = self {
            if let Some(conn) = conn.take() {
                // A connection whose read transaction cannot end is not reused.
                // Prepared once per connection, as BEGIN is: a read is often one query.
                let ended = conn
                    .prepare_cached("ROLLBACK")
                    .and_then(|mut end| end.execute([]));
                if ended.is_ok() {
                    let mut idle = db.readers.lock().unwrap_or_else(|p| p.into_inner());
                    if idle.len() < IDLE_READERS {
                        idle.push(conn);
                    }
                }
            }
        }
    }
}

impl LedgerDb {
    /// Creates a new ledger database holding its name and strand id, its genesis block
    /// stamped with the system clock. If anything fails, nothing is left behind.
    pub fn create(location: LedgerLocation, name: &LedgerName, strand_id: &str) -> Result<Self> {
        Self::create_at(location, name, strand_id, now_ms())
    }

    /// [`LedgerDb::create`] with the genesis block stamped `now_ms`.
    pub fn create_at(
        location: LedgerLocation,
        name: &LedgerName,
        strand_id: &str,
        now_ms: i64,
    ) -> Result<Self> {
        match &location {
            LedgerLocation::Memory(uri) => {
                let mut conn = open_memory(uri)?;
                init(&mut conn, name, strand_id, now_ms)?;
                Self::with_connection(location, conn)
            }
            LedgerLocation::File(path) => {
                let dir = path.parent().expect("ledger files live in a directory");
                std::fs::create_dir_all(dir)
                    .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
                // A file at the final path has no catalog row (the caller checked): it is
                // the remains of a create that crashed. Replace it.
                remove_files(path)?;
                let tmp =
                    path.with_extension(format!("sqlite.tmp-{}", uuid::Uuid::new_v4().simple()));
                let built = (|| {
                    // Built in rollback-journal mode so that the single file holds
                    // everything when it is renamed; WAL is switched on at open.
                    let mut conn = Connection::open(&tmp)?;
                    conn.pragma_update(None, "synchronous", "FULL")?;
                    init(&mut conn, name, strand_id, now_ms)?;
                    drop(conn);
                    std::fs::rename(&tmp, path)
                        .map_err(|e| StorageError::io(format!("renaming {}", tmp.display()), e))?;
                    sync_dir(dir)?;
                    Self::open(location.clone())
                })();
                if built.is_err() {
                    let _ = remove_files(&tmp);
                    let _ = remove_files(path);
                }
                built
            }
        }
    }

    /// Opens an existing ledger database and applies any pending migrations.
    pub fn open(location: LedgerLocation) -> Result<Self> {
        let conn = match &location {
            LedgerLocation::Memory(uri) => open_memory(uri)?,
            LedgerLocation::File(path) => {
                let mut conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure_durable(&conn)?;
                // Checkpoints run on their own thread ([`super::checkpoint`]); the writer's
                // own, rarer, let the WAL start over.
                conn.pragma_update(
                    None,
                    "wal_autocheckpoint",
                    super::checkpoint::WRITER_CHECKPOINT_PAGES,
                )?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                // Statement journals and temporary b-trees stay in memory, not in files.
                conn.pragma_update(None, "temp_store", "MEMORY")?;
                migrate(&mut conn, LEDGER_MIGRATIONS, &path.display().to_string()).map_err(
                    |e| match e {
                        StorageError::SchemaTooNew { .. } => e,
                        e => {
                            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                            StorageError::Corrupt(format!(
                                "ledger {stem} ({}) cannot be upgraded to this version's schema \
                                 ({e}); `qldb-local rebuild --ledger {stem}` regenerates it from \
                                 its journal",
                                path.display()
                            ))
                        }
                    },
                )?;
                super::journal::rebuild_index_keys(&mut conn)?;
                // Ledgers created before the journal existed get their genesis block now.
                let meta = |key: &str| -> Result<String> {
                    Ok(conn
                        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))?)
                };
                let (strand, name) = (meta("strand_id")?, meta("ledger_name")?);
                // Only a ledger that never had a journal gets a genesis block; a journal
                // that lost its blocks is damage, not a new ledger.
                let derived: bool = conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM tables) OR EXISTS (SELECT 1 FROM revisions)",
                    [],
                    |r| r.get(0),
                )?;
                if !derived {
                    LedgerDb::ensure_genesis(&mut conn, &strand, &name, now_ms())?;
                }
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                super::journal::open_check(&conn, stem).map_err(|why| {
                    StorageError::Corrupt(format!(
                        "ledger {stem} ({}) cannot be served: {why}; `qldb-local verify --ledger {stem}` \
                         finds the first damage, `qldb-local rebuild --ledger {stem}` regenerates \
                         what the journal implies",
                        path.display()
                    ))
                })?;
                conn
            }
        };
        Self::with_connection(location, conn)
    }

    fn with_connection(location: LedgerLocation, conn: Connection) -> Result<Self> {
        let cached = Cached::load(&conn)?;
        let key_seqs = Mutex::new(super::key_seqs::KeySeqs::new(cached.tip.last_seq));
        let cache = RwLock::new(Arc::new(cached));
        let checkpointer = match &location {
            LedgerLocation::File(path) => Some(super::checkpoint::Checkpointer::new(path.clone())),
            LedgerLocation::Memory(_) => None,
        };
        Ok(LedgerDb {
            key_seqs,
            checkpointer,
            location,
            conn: Mutex::new(conn),
            closed: Default::default(),
            removed: Default::default(),
            group: Default::default(),
            commit_stats: Default::default(),
            readers: Default::default(),
            cache,
            stale: Default::default(),
        })
    }

    /// Reads the tip (and, if `catalog`, the table catalog) again from `conn`, which the
    /// caller holds as the writer. Should that read fail, the cache is marked stale and
    /// [`LedgerDb::tip`] and [`LedgerDb::tables`] read the file until a refresh succeeds
    /// (which then reads the catalog too).
    pub(super) fn refresh_cache(&self, conn: &Connection, catalog: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        let catalog = catalog || self.stale.load(SeqCst);
        let tip = match super::journal::tip(conn) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the journal tip after a write");
                return self.mark_cache_stale();
            }
        };
        let tables = if catalog {
            match super::journal::tables(conn) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the table catalog after a write");
                    return self.mark_cache_stale();
                }
            }
        } else {
            self.cached().tables.clone()
        };
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Cached { tip, tables });
        self.stale.store(false, SeqCst);
    }

    /// Publishes `tip`, which the writer just committed on `conn`; with `catalog` (or a
    /// stale cache), reads the tip and the catalog again instead ([`LedgerDb::refresh_cache`]).
    pub(super) fn publish_tip(&self, conn: &Connection, tip: crate::storage::Tip, catalog: bool) {
        if catalog || self.cache_is_stale() {
            return self.refresh_cache(conn, catalog);
        }
        let tables = self.cached().tables.clone();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Cached { tip, tables });
    }

    pub(super) fn mark_cache_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn cache_is_stale(&self) -> bool {
        self.stale.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The cached tip and catalog.
    pub(crate) fn cached(&self) -> Arc<Cached> {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Ends the WAL checkpoints of the ledger's own thread (before a caller changes the
    /// file's journal mode, which needs every other connection closed).
    pub fn stop_checkpoints(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
    }

    /// Counts a SQLite commit of the writer, for the WAL's checkpoints.
    pub(super) fn committed_to_disk(&self) {
        if let Some(c) = &self.checkpointer {
            c.committed();
        }
    }

    /// `--durability relaxed`: commits are acknowledged once written to the WAL, before the
    /// WAL is synced (SQLite `synchronous=NORMAL`); a power loss may drop the last commits.
    pub fn set_relaxed_durability(&self, relaxed: bool) -> Result<()> {
        let mode = if relaxed { "NORMAL" } else { "FULL" };
        self.lock_writer()
            .pragma_update(None, "synchronous", mode)?;
        Ok(())
    }

    pub fn mark_closed(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_removed(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn location(&self) -> &LedgerLocation {
        &self.location
    }

    /// The write connection (see [`WriteConn`]).
    pub fn conn(&self) -> WriteConn<'_> {
        WriteConn {
            db: self,
            guard: self.lock_writer(),
        }
    }

    /// The write connection without refreshing the cache when it is let go: for code that
    /// keeps the cache itself ([`LedgerDb::commit`]) or only reads.
    pub(super) fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for reads (see [`ReadConn`]).
    /// A read transaction to hold for several reads (one statement's), for a file ledger;
    /// `None` for an in-memory ledger, whose one connection is the writer's.
    pub fn snapshot_conn(&self) -> Result<Option<ReadConn<'_>>> {
        match &self.location {
            LedgerLocation::Memory(_) => Ok(None),
            LedgerLocation::File(_) => self.reader().map(Some),
        }
    }

    pub fn reader(&self) -> Result<ReadConn<'_>> {
        match &self.location {
            LedgerLocation::Memory(_) => Ok(ReadConn::Main(self.lock_writer())),
            LedgerLocation::File(_) if self.is_removed() => Err(StorageError::LedgerRemoved),
            LedgerLocation::File(path) => {
                let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let conn = match idle {
                    Some(c) => c,
                    None => {
                        let c = Connection::open_with_flags(
                            path,
                            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )?;
                        c.busy_timeout(std::time::Duration::from_secs(5))?;
                        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                        c
                    }
                };
                // Removed while the file was being opened: the path may name another
                // ledger's file by now.
                if self.is_removed() {
                    return Err(StorageError::LedgerRemoved);
                }
                conn.prepare_cached("BEGIN")?.execute([])?;
                Ok(ReadConn::Pooled {
                    db: self,
                    conn: Some(conn),
                })
            }
        }
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .reader()?
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Marks the ledger closed and removes its files (idle read connections are closed
    /// first; the write connection closes when the last handle is let go).
    pub fn remove(&self) -> Result<()> {
        self.mark_closed();
        self.removed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.stop_checkpoints();
        match &self.location {
            LedgerLocation::Memory(_) => Ok(()),
            LedgerLocation::File(path) => remove_files(path),
        }
    }
}

/// Deletes ledger files that have no catalog row: temporaries of an interrupted create,
/// and files of a ledger whose deletion was committed but whose files were not removed.
pub(super) fn remove_orphans(dir: &Path, catalog: &dyn crate::storage::CatalogStore) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(format!("reading {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(format!("reading {}", dir.display()), e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some((stem, rest)) = file_name.split_once(".sqlite") else {
            continue;
        };
        let orphan =
            rest.starts_with(".tmp-") || (rest.is_empty() && catalog.ledger(stem)?.is_none());
        if orphan {
            tracing::warn!(file = %entry.path().display(), "removing orphaned ledger file");
            remove_files(&entry.path())?;
        }
    }
    Ok(())
}

fn open_memory(uri: &str) -> Result<Connection> {
    let mut conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn, LEDGER_MIGRATIONS, uri)?;
    Ok(conn)
}

fn init(conn: &mut Connection, name: &LedgerName, strand_id: &str, now_ms: i64) -> Result<()> {
    migrate(conn, LEDGER_MIGRATIONS, name.as_str())?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('ledger_name', ?1), ('strand_id', ?2)",
        [name.as_str(), strand_id],
    )?;
    tx.commit()?;
    LedgerDb::ensure_genesis(conn, strand_id, name.as_str(), now_ms)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Removes a database file and its WAL and shared-memory companions, if present.
pub fn remove_files(path: &Path) -> Result<()> {
    remove_suffixed(path, &["", "-wal", "-shm", "-journal"])
}

/// Removes only the WAL, shared-memory and rollback-journal companions of a database file.
pub fn remove_files_except_main(path: &Path) -> Result<()> {
    remove_suffixed(path, &["-wal", "-shm", "-journal"])
}

fn remove_suffixed(path: &Path, suffixes: &[&str]) -> Result<()> {
    for suffix in suffixes {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(PathBuf::from(p)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(format!("removing {}", path.display()), e)),
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_remove_file_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let name = LedgerName::parse("demo").unwrap();
        let loc = LedgerLocation::file(dir.path(), &name);
        let db = LedgerDb::create(loc.clone(), &name, "strand0000000000000000").unwrap();
        assert_eq!(db.meta("ledger_name").unwrap().as_deref(), Some("demo"));
        let mode: String = db
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        let db = LedgerDb::open(loc.clone()).unwrap();
        assert_eq!(
            db.meta("strand_id").unwrap().as_deref(),
            Some("strand0000000000000000")
        );
        db.remove().unwrap();
        drop(db);
        let LedgerLocation::File(path) = loc else {
            unreachable!()
        };
        assert!(!path.exists());
        // Only the ledger file was ever in the directory; no temporary file is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn memory_ledger_lives_with_its_handle() {
        let name = LedgerName::parse("mem").unwrap();
        let db = LedgerDb::create(LedgerLocation::memory(), &name, "s").unwrap();
        assert_eq!(db.meta("ledger_name").unwrap().as_deref(), Some("mem"));
    }

    /// A write connection let go inside an open transaction publishes nothing: the tip and
    /// the catalog are read from the file (its committed state) until a refresh succeeds.
    #[test]
    fn a_write_connection_let_go_mid_transaction_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let name = LedgerName::parse("open").unwrap();
        let db = LedgerDb::create(
            LedgerLocation::file(dir.path(), &name),
            &name,
            "OpenStrand000000000001",
        )
        .unwrap();
        let before = db.tip().unwrap();
        db.conn()
            .execute_batch(
                "BEGIN; INSERT INTO tables (table_id, name, status, created_seq, modified_seq) \
                 VALUES ('T1', 'Uncommitted', 'ACTIVE', 0, 0);",
            )
            .unwrap();
        assert!(db.cache_is_stale());
        assert!(db.tables().unwrap().is_empty());
        assert_eq!(db.tip().unwrap(), before);
        db.conn().execute_batch("ROLLBACK").unwrap();
        assert!(!db.cache_is_stale());
        assert!(db.tables().unwrap().is_empty());
    }
}
