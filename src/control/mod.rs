//! Control-plane semantics: ledgers, their states, tags and ARNs.
//!
//! [`ControlPlane`] owns the catalog and the open ledger databases. Its methods are
//! synchronous and may block on SQLite: the HTTP edge calls them through
//! `spawn_blocking`. It never sees HTTP; it takes and returns the shapes of [`crate::api`].
//!
//! Ledger states are derived from stored timestamps (see [`LedgerState::of`]): a ledger is
//! CREATING until `active_at`, DELETING from DeleteLedger until `gone_at`, when it is purged.

mod error;
mod jobs;
mod ledgers;
mod tags;
mod verification;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::{ControlError, Result};
pub use jobs::{parse_kinesis_arn, JobLeased, KinesisStreamArn, StreamTransition};

use crate::names::LedgerName;
use crate::storage::{Backend, CatalogStore, LedgerRecord, LedgerStore, StorageError};

/// A ledger name from a request, validated (the `Name` member or label).
fn parse_ledger_name(name: Option<&str>) -> Result<LedgerName> {
    let name = name.ok_or_else(|| ControlError::missing("name", "Name"))?;
    LedgerName::parse(name).map_err(|v| ControlError::invalid(v, name, "name", "Name"))
}

/// A ledger's lifecycle state as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerState {
    Creating,
    Active,
    Deleting,
}

impl LedgerState {
    pub fn of(rec: &LedgerRecord, now_ms: i64) -> Self {
        if rec.deleting_since_ms.is_some() {
            LedgerState::Deleting
        } else if now_ms < rec.active_at_ms {
            LedgerState::Creating
        } else {
            LedgerState::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::Creating => "CREATING",
            LedgerState::Active => "ACTIVE",
            LedgerState::Deleting => "DELETING",
        }
    }
}

/// The settings the control plane needs.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    pub region: String,
    pub account_id: String,
    pub max_ledgers: u32,
    pub create_delay_ms: i64,
    pub delete_delay_ms: i64,
    /// `None` keeps ledgers in memory.
    pub data_dir: Option<PathBuf>,
    /// `--storage`: a PostgreSQL URL; `None` keeps ledgers in SQLite (`data_dir`).
    pub storage_url: Option<String>,
    /// `--durability relaxed`.
    pub relaxed_durability: bool,
    /// How long ended exports and streams stay visible.
    pub job_retention_ms: i64,
}

/// Milliseconds since the epoch, from a clock the tests can replace.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

struct Inner {
    catalog: Box<dyn CatalogStore>,
    /// Open ledgers by name, with the creation order (`LedgerRecord::ord`) of the ledger
    /// each handle is of: another server on the same database may have deleted the ledger
    /// and created a new one of the same name.
    open: HashMap<String, (i64, Arc<dyn LedgerStore>)>,
}

/// The control plane of one qldb-local server.
pub struct ControlPlane {
    cfg: ControlConfig,
    backend: Arc<dyn Backend>,
    clock: Clock,
    inner: Mutex<Inner>,
    /// The leases of jobs this server accepted, taken before their rows were visible and
    /// kept until this server's task for the job asks for them ([`Self::job_lease`]).
    new_leases: Mutex<HashMap<String, Box<dyn crate::storage::JobLease>>>,
}

impl ControlPlane {
    /// Opens the catalog and every ledger in it (migrating each), and removes the remains
    /// of creates and deletes that a crash interrupted.
    pub fn with_backend(
        cfg: ControlConfig,
        clock: Clock,
        backend: Arc<dyn Backend>,
    ) -> std::result::Result<Self, StorageError> {
        let catalog = backend.open_catalog()?;
        let cp = ControlPlane {
            cfg,
            clock,
            backend,
            inner: Mutex::new(Inner {
                catalog,
                open: HashMap::new(),
            }),
            new_leases: Mutex::new(HashMap::new()),
        };
        {
            let mut inner = cp.lock();
            cp.backend.remove_orphans(inner.catalog.as_ref())?;
            for rec in inner.catalog.all_ledgers()? {
                let name = LedgerName::parse(&rec.name).map_err(|v| {
                    StorageError::io(
                        format!("catalog holds an invalid ledger name '{}'", rec.name),
                        std::io::Error::other(v.0),
                    )
                })?;
                let db = match cp.backend.open_ledger(&name) {
                    Ok(db) => db,
                    // Deleted meanwhile by another server on the same database.
                    Err(_) if inner.catalog.ledger(&rec.name)?.is_none() => continue,
                    Err(e) => return Err(e),
                };
                inner.open.insert(rec.name.clone(), (rec.ord, db));
            }
            let now = cp.now();
            cp.purge(&mut inner, now).map_err(|e| {
                StorageError::io(
                    "removing deleted ledgers",
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
        Ok(cp)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds since the epoch, from the clock the control plane was opened with.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// How many ledgers exist (in any state), for /health.
    pub fn ledger_count(&self) -> Result<usize> {
        let mut inner = self.lock();
        self.purge(&mut inner, self.now())?;
        Ok(inner.catalog.all_ledgers()?.len())
    }

    /// The open database of an ACTIVE ledger (for the session API).
    pub fn active_ledger(&self, name: &str) -> Result<Arc<dyn LedgerStore>> {
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        match inner.catalog.ledger(name)? {
            Some(rec) if LedgerState::of(&rec, now) == LedgerState::Active => {
                self.open_db(&mut inner, &rec)
            }
            _ => Err(ControlError::ledger_not_found(name)),
        }
    }

    /// The open database of the ledger `rec` records: the handle opened before, or, when
    /// there is none or it is of an earlier ledger of that name (created and deleted by
    /// another server on the same database), opened now.
    fn open_db(&self, inner: &mut Inner, rec: &LedgerRecord) -> Result<Arc<dyn LedgerStore>> {
        if let Some((ord, db)) = inner.open.get(&rec.name) {
            if *ord == rec.ord {
                // The same ledger. A handle that closed itself while the ledger stays (its
                // data was replaced by a rebuild on a shared database) is opened again.
                if !db.is_closed() || rec.deleting_since_ms.is_some() {
                    return Ok(db.clone());
                }
            } else if let Err(e) = db.remove() {
                // An earlier ledger of that name, deleted by another server: its own data goes.
                tracing::warn!(error = %e, ledger = %rec.name, "could not remove a deleted ledger's data");
            }
        }
        let name = LedgerName::parse(&rec.name).map_err(|v| {
            ControlError::Internal(format!("the catalog holds an invalid ledger name: {}", v.0))
        })?;
        let db = self.backend.open_ledger(&name)?;
        inner.open.insert(rec.name.clone(), (rec.ord, db.clone()));
        Ok(db)
    }

    /// Removes the ledgers whose deletion has completed.
    fn purge(&self, inner: &mut Inner, now: i64) -> Result<()> {
        // One read of the catalog serves both steps.
        let mut records: HashMap<String, LedgerRecord> = inner
            .catalog
            .all_ledgers()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let gone: Vec<String> = records
            .values()
            .filter(|r| r.gone_at_ms.is_some_and(|t| t <= now))
            .map(|r| r.name.clone())
            .collect();
        for name in gone {
            if let Some(rec) = records.remove(&name) {
                self.remove_now(inner, &rec)?;
            }
        }
        // Handles of ledgers another server (on the same database) deleted or is deleting:
        // closed, so that their sessions end; a ledger gone from the catalog or replaced by
        // a new one of the same name is forgotten.
        inner
            .open
            .retain(|name, (ord, db)| match records.get(name) {
                Some(r) if r.ord == *ord => {
                    if r.deleting_since_ms.is_some() {
                        db.mark_closed();
                    }
                    true
                }
                // Its catalog row is gone: its data is removed (a handle's data is its own,
                // never a successor's of the same name).
                _ => {
                    if let Err(e) = db.remove() {
                        tracing::warn!(error = %e, ledger = %name, "could not remove a deleted ledger's data");
                    }
                    false
                }
            });
        Ok(())
    }

    /// Drops a ledger from the catalog, then removes its files.
    fn remove_now(&self, inner: &mut Inner, rec: &LedgerRecord) -> Result<()> {
        inner.catalog.remove_ledger(rec)?;
        // The catalog row is gone, so a failure here only leaves orphaned data, which the
        // next start removes.
        let ours = matches!(inner.open.get(&rec.name), Some((ord, _)) if *ord == rec.ord);
        let removed = match ours.then(|| inner.open.remove(&rec.name)).flatten() {
            Some((_, db)) => db.remove(),
            // Opened by another server only: its data has no catalog row now (that server
            // removes it when it notices, or the next start does).
            None => self.backend.remove_orphans(inner.catalog.as_ref()),
        };
        if let Err(e) = removed {
            tracing::warn!(error = %e, "could not remove a deleted ledger's data");
        }
        tracing::info!(ledger = %rec.name, "ledger deleted");
        Ok(())
    }
}
