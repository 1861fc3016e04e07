//! A ledger file's rows for `qldb-local migrate` ([`crate::storage::migrate`]): read from an
//! existing file, or written into a new one (built under a temporary name in this version's
//! schema, synced, then renamed into place, as a created ledger is).

use std::path::Path;

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags};

use super::catalog::ledgers_dir;
use super::ledger_db::{remove_files, sync_dir};
use super::schema::{migrate, LEDGER_MIGRATIONS};
use crate::names::LedgerName;
use crate::storage::migrate::{Cell, LedgerRows, RowTable, LEDGER_TABLES};
use crate::storage::{Result, StorageError};

fn path_of(data_dir: &Path, name: &LedgerName) -> std::path::PathBuf {
    ledgers_dir(data_dir).join(format!("{}.sqlite", name.as_str()))
}

/// A table's columns as this backend names them (`documents.pos` is the rowid).
fn columns(t: &RowTable) -> Vec<&'static str> {
    t.columns
        .iter()
        .map(|(c, _)| match (t.name, *c) {
            ("documents", "pos") => "rowid",
            _ => c,
        })
        .collect()
}

/// A row's INSERT into table `t`.
fn insert_sql(t: &RowTable) -> String {
    if t.name == "merkle" {
        // Keyed by the block that completes a node, which the row does not carry.
        debug_assert_eq!(columns(t), ["level", "idx", "hash"]);
        return super::journal::INSERT_NODE.to_string();
    }
    let cols = columns(t);
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.name,
        cols.join(", "),
        marks.join(", ")
    )
}

fn sql_of(c: Cell) -> Sql {
    match c {
        Cell::Null => Sql::Null,
        Cell::Int(n) => Sql::Integer(n),
        Cell::Text(s) => Sql::Text(s),
        Cell::Blob(b) => Sql::Blob(b),
    }
}

/// Every row of ledger `name`'s file, read in one read transaction.
pub fn read_ledger(data_dir: &Path, name: &LedgerName) -> Result<LedgerRows> {
    let mut conn = Connection::open_with_flags(
        path_of(data_dir, name),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let tx = conn.transaction()?;
    let mut out = Vec::new();
    for t in LEDGER_TABLES {
        let cols = columns(t);
        let mut stmt = tx.prepare(&format!("SELECT {} FROM {}", cols.join(", "), t.name))?;
        let rows = stmt.query_map([], |r| {
            (0..cols.len())
                .map(|i| {
                    Ok(match r.get::<_, Sql>(i)? {
                        Sql::Null => Cell::Null,
                        Sql::Integer(n) => Cell::Int(n),
                        Sql::Text(s) => Cell::Text(s),
                        Sql::Blob(b) => Cell::Blob(b),
                        Sql::Real(_) => Cell::Null,
                    })
                })
                .collect::<rusqlite::Result<Vec<Cell>>>()
        })?;
        out.push(rows.collect::<rusqlite::Result<Vec<_>>>()?);
    }
    Ok(out)
}

/// Writes a new ledger file for `name` holding `rows`; refuses if one exists.
pub fn write_ledger(data_dir: &Path, name: &LedgerName, rows: &LedgerRows) -> Result<()> {
    let path = path_of(data_dir, name);
    if path.exists() {
        return Err(StorageError::Corrupt(format!(
            "{} exists already",
            path.display()
        )));
    }
    let dir = ledgers_dir(data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
    let tmp = path.with_extension(format!("sqlite.tmp-{}", uuid::Uuid::new_v4().simple()));
    let built = (|| -> Result<()> {
        let mut conn = Connection::open(&tmp)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn, LEDGER_MIGRATIONS, &tmp.display().to_string())?;
        let tx = conn.transaction()?;
        for (t, rows) in LEDGER_TABLES.iter().zip(rows) {
            let mut stmt = tx.prepare(&insert_sql(t))?;
            for row in rows {
                stmt.execute(rusqlite::params_from_iter(row.iter().cloned().map(sql_of)))?;
            }
        }
        tx.commit()?;
        drop(conn);
        std::fs::rename(&tmp, &path)
            .map_err(|e| StorageError::io(format!("renaming {}", tmp.display()), e))?;
        sync_dir(&dir)
    })();
    if built.is_err() {
        let _ = remove_files(&tmp);
    }
    built
}

/// A ledger file written row by row to be checked, not kept (no fsync; its owner removes
/// it): how another backend's rows meet the one verifier ([`crate::verify`]).
pub struct ScratchFile {
    conn: Connection,
}

impl ScratchFile {
    /// A new file at `path` in this version's schema, inside one open transaction.
    pub fn create(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        migrate(&mut conn, LEDGER_MIGRATIONS, &path.display().to_string())?;
        conn.execute_batch("BEGIN")?;
        Ok(ScratchFile { conn })
    }

    /// Adds one row of table `t` ([`LEDGER_TABLES`] or [`crate::storage::migrate::KEY_SEQS`]).
    pub fn insert(&mut self, t: &RowTable, row: Vec<Cell>) -> Result<()> {
        self.conn
            .prepare_cached(&insert_sql(t))?
            .execute(rusqlite::params_from_iter(row.into_iter().map(sql_of)))?;
        Ok(())
    }

    /// Commits the rows (the file is then complete for a reader).
    pub fn finish(self) -> Result<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }
}
