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
pub use jobs::{parse_kinesis_arn, KinesisStreamArn, StreamTransition};

use crate::config::Config;
use crate::names::LedgerName;
use crate::storage::catalog::ledgers_dir;
use crate::storage::{Catalog, LedgerDb, LedgerLocation, LedgerRecord, StorageError};

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
    /// `--durability relaxed`.
    pub relaxed_durability: bool,
    /// How long ended exports and streams stay visible.
    pub job_retention_ms: i64,
}

impl From<&Config> for ControlConfig {
    fn from(c: &Config) -> Self {
        ControlConfig {
            region: c.region.clone(),
            account_id: c.account_id.clone(),
            max_ledgers: c.max_ledgers,
            create_delay_ms: c.create_delay().as_millis() as i64,
            delete_delay_ms: c.delete_delay().as_millis() as i64,
            data_dir: (!c.in_memory).then(|| c.data_dir.clone()),
            relaxed_durability: c.durability == crate::config::Durability::Relaxed,
            job_retention_ms: c.job_retention().as_millis() as i64,
        }
    }
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
    catalog: Catalog,
    open: HashMap<String, Arc<LedgerDb>>,
}

/// The control plane of one qldb-local server.
pub struct ControlPlane {
    cfg: ControlConfig,
    clock: Clock,
    inner: Mutex<Inner>,
}

impl ControlPlane {
    /// Opens the catalog and every ledger database in it (migrating each), and removes the
    /// remains of creates and deletes that a crash interrupted.
    pub fn open(cfg: ControlConfig, clock: Clock) -> std::result::Result<Self, StorageError> {
        let catalog = match &cfg.data_dir {
            Some(dir) => Catalog::open(dir)?,
            None => Catalog::open_in_memory()?,
        };
        let cp = ControlPlane {
            cfg,
            clock,
            inner: Mutex::new(Inner {
                catalog,
                open: HashMap::new(),
            }),
        };
        {
            let mut inner = cp.lock();
            if let Some(dir) = cp.ledgers_dir() {
                remove_orphans(&dir, &inner.catalog)?;
            }
            for rec in inner.catalog.all_ledgers()? {
                let name = LedgerName::parse(&rec.name).map_err(|v| {
                    StorageError::io(
                        format!("catalog holds an invalid ledger name '{}'", rec.name),
                        std::io::Error::other(v.0),
                    )
                })?;
                let db = match cp.location(&name) {
                    loc @ LedgerLocation::File(_) => LedgerDb::open(loc)?,
                    LedgerLocation::Memory(_) => unreachable!("memory catalogs start empty"),
                };
                db.set_relaxed_durability(cp.cfg.relaxed_durability)?;
                inner.open.insert(rec.name.clone(), Arc::new(db));
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

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn ledgers_dir(&self) -> Option<PathBuf> {
        self.cfg.data_dir.as_deref().map(ledgers_dir)
    }

    fn location(&self, name: &LedgerName) -> LedgerLocation {
        match self.ledgers_dir() {
            Some(dir) => LedgerLocation::file(&dir, name),
            None => LedgerLocation::memory(),
        }
    }

    /// How many ledgers exist (in any state), for /health.
    pub fn ledger_count(&self) -> Result<usize> {
        let mut inner = self.lock();
        self.purge(&mut inner, self.now())?;
        Ok(inner.open.len())
    }

    /// The open database of an ACTIVE ledger (for the session API).
    pub fn active_ledger(&self, name: &str) -> Result<Arc<LedgerDb>> {
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        match inner.catalog.ledger(name)? {
            Some(rec) if LedgerState::of(&rec, now) == LedgerState::Active => inner
                .open
                .get(name)
                .cloned()
                .ok_or_else(|| ControlError::Internal(format!("ledger {name} is not open"))),
            _ => Err(ControlError::ledger_not_found(name)),
        }
    }

    /// Removes the ledgers whose deletion has completed.
    fn purge(&self, inner: &mut Inner, now: i64) -> Result<()> {
        let gone: Vec<LedgerRecord> = inner
            .catalog
            .all_ledgers()?
            .into_iter()
            .filter(|r| r.gone_at_ms.is_some_and(|t| t <= now))
            .collect();
        for rec in gone {
            self.remove_now(inner, &rec)?;
        }
        Ok(())
    }

    /// Drops a ledger from the catalog, then removes its files.
    fn remove_now(&self, inner: &mut Inner, rec: &LedgerRecord) -> Result<()> {
        inner.catalog.remove_ledger(rec)?;
        if let Some(db) = inner.open.remove(&rec.name) {
            db.mark_closed();
            let location = db.location().clone();
            drop(db);
            if let LedgerLocation::File(path) = location {
                // The catalog row is gone, so a failure here only leaves an orphan file,
                // which the next start removes.
                if let Err(e) = crate::storage::ledger_db::remove_files(&path) {
                    tracing::warn!(error = %e, "could not remove a deleted ledger's files");
                }
            }
        }
        tracing::info!(ledger = %rec.name, "ledger deleted");
        Ok(())
    }
}

/// Deletes ledger files that have no catalog row: temporaries of an interrupted create,
/// and files of a ledger whose deletion was committed but whose files were not removed.
fn remove_orphans(
    dir: &std::path::Path,
    catalog: &Catalog,
) -> std::result::Result<(), StorageError> {
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
            crate::storage::ledger_db::remove_files(&entry.path())?;
        }
    }
    Ok(())
}
