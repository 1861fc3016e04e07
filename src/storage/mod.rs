//! SQLite storage: the catalog of ledgers and tags, and one SQLite file per ledger.
//!
//! Owns every byte on disk. Knows nothing of HTTP, sessions or PartiQL; the control plane
//! decides *what* to store, this layer decides *how*, durably (WAL, `synchronous=FULL`).
//! Every blocking call here must run off the async executor (callers use
//! `tokio::task::spawn_blocking`).

pub mod catalog;
pub mod jobs;
pub mod journal;
pub mod ledger_db;
pub mod schema;

use std::path::PathBuf;

pub use catalog::{Catalog, LedgerRecord};
pub use jobs::{ExportRecord, StreamRecord};
pub use ledger_db::{LedgerDb, LedgerLocation};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    /// A group commit whose SQLite transaction failed: none of its transactions is written.
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

/// Applies the connection settings every file-backed database uses.
pub(crate) fn configure_durable(conn: &rusqlite::Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}
