//! The catalog: which ledgers exist, their settings, the tags of every resource, and the
//! journal exports and streams (see [`super::jobs`]).
//!
//! On disk it is `<data-dir>/catalog.sqlite`; with `--in-memory` a private in-memory
//! database. It stores timestamps, not states: the control plane derives CREATING, ACTIVE
//! and DELETING from them, so no timer has to flip a state.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::configure_durable;
use super::schema::{migrate, CATALOG_MIGRATIONS};
use crate::storage::{LedgerRecord, Result, StorageError};

impl LedgerRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(LedgerRecord {
            ord: r.get("ord")?,
            name: r.get("name")?,
            arn: r.get("arn")?,
            permissions_mode: r.get("permissions_mode")?,
            deletion_protection: r.get("deletion_protection")?,
            kms_key_arn: r.get("kms_key_arn")?,
            created_ms: r.get("created_ms")?,
            active_at_ms: r.get("active_at_ms")?,
            kms_updated_ms: r.get("kms_updated_ms")?,
            deleting_since_ms: r.get("deleting_since_ms")?,
            gone_at_ms: r.get("gone_at_ms")?,
        })
    }
}

/// The catalog database, plus the lock that keeps a second server off the same data dir.
pub struct Catalog {
    pub(super) conn: Connection,
    _lock: Option<File>,
}

impl Catalog {
    /// Opens (creating if needed) `<data_dir>/catalog.sqlite` and takes the data-dir lock.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_as(data_dir, "a qldb-local server")
    }

    /// [`Catalog::open`] for a process other than the server (`holder` names it in the lock).
    pub fn open_as(data_dir: &Path, holder: &str) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StorageError::io(format!("creating {}", data_dir.display()), e))?;
        let lock = lock_data_dir(data_dir, holder)?;
        let path = data_dir.join("catalog.sqlite");
        let mut conn = Connection::open(&path)?;
        configure_durable(&conn)?;
        migrate(&mut conn, CATALOG_MIGRATIONS, &path.display().to_string())?;
        Ok(Catalog {
            conn,
            _lock: Some(lock),
        })
    }

    /// A catalog that lives only in memory.
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn, CATALOG_MIGRATIONS, "in-memory catalog")?;
        Ok(Catalog { conn, _lock: None })
    }

    pub fn ledger(&self, name: &str) -> Result<Option<LedgerRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM ledgers WHERE name = ?1",
                [name],
                LedgerRecord::from_row,
            )
            .optional()?)
    }

    /// Up to `limit` ledgers created after `after_ord`, in creation order.
    pub fn ledgers_after(&self, after_ord: i64, limit: usize) -> Result<Vec<LedgerRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM ledgers WHERE ord > ?1 ORDER BY ord LIMIT ?2")?;
        let rows = stmt.query_map(params![after_ord, limit as i64], LedgerRecord::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn all_ledgers(&self) -> Result<Vec<LedgerRecord>> {
        self.ledgers_after(i64::MIN, usize::MAX >> 1)
    }

    /// Inserts a ledger and its tags in one transaction; returns the record with its order.
    pub fn insert_ledger(
        &mut self,
        rec: &LedgerRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<LedgerRecord> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO ledgers (name, arn, permissions_mode, deletion_protection, kms_key_arn,
                 created_ms, active_at_ms, kms_updated_ms, deleting_since_ms, gone_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                rec.name,
                rec.arn,
                rec.permissions_mode,
                rec.deletion_protection,
                rec.kms_key_arn,
                rec.created_ms,
                rec.active_at_ms,
                rec.kms_updated_ms,
                rec.deleting_since_ms,
                rec.gone_at_ms
            ],
        )?;
        let ord = tx.last_insert_rowid();
        insert_tags(&tx, &rec.arn, tags)?;
        tx.commit()?;
        Ok(LedgerRecord { ord, ..rec.clone() })
    }

    /// Rewrites the mutable settings of a ledger.
    pub fn update_ledger(&self, rec: &LedgerRecord) -> Result<()> {
        self.conn.execute(
            "UPDATE ledgers SET permissions_mode = ?2, deletion_protection = ?3, kms_key_arn = ?4,
                 kms_updated_ms = ?5, deleting_since_ms = ?6, gone_at_ms = ?7
             WHERE name = ?1",
            params![
                rec.name,
                rec.permissions_mode,
                rec.deletion_protection,
                rec.kms_key_arn,
                rec.kms_updated_ms,
                rec.deleting_since_ms,
                rec.gone_at_ms
            ],
        )?;
        Ok(())
    }

    /// Removes a ledger and the tags of it and of everything under its ARN.
    pub fn remove_ledger(&mut self, rec: &LedgerRecord) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM ledgers WHERE name = ?1", [&rec.name])?;
        remove_ledger_jobs(&tx, &rec.name)?;
        tx.execute(
            "DELETE FROM tags WHERE resource_arn = ?1 OR substr(resource_arn, 1, length(?1) + 1) = ?1 || '/'",
            [&rec.arn],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM tags WHERE resource_arn = ?1")?;
        let rows = stmt.query_map([arn], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn add_tags(&mut self, arn: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_tags(&tx, arn, tags)?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_tags(&mut self, arn: &str, keys: &[String]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for key in keys {
            tx.execute(
                "DELETE FROM tags WHERE resource_arn = ?1 AND key = ?2",
                params![arn, key],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Removes the exports and streams of a ledger being purged (its tags go with the ledger's).
fn remove_ledger_jobs(tx: &rusqlite::Transaction<'_>, ledger: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM export_objects WHERE export_id IN
             (SELECT export_id FROM exports WHERE ledger_name = ?1)",
        [ledger],
    )?;
    tx.execute("DELETE FROM exports WHERE ledger_name = ?1", [ledger])?;
    tx.execute("DELETE FROM streams WHERE ledger_name = ?1", [ledger])?;
    Ok(())
}

pub(super) fn insert_tags(
    tx: &rusqlite::Transaction<'_>,
    arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO tags (resource_arn, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in tags {
        stmt.execute(params![arn, k, v])?;
    }
    Ok(())
}

/// Takes the data dir's exclusive lock (`<data_dir>/.lock`), held by a server for its
/// lifetime and by `qldb-local rebuild` while it works, and records `holder` (with the
/// process id) in the file so that the next process to try can say who has it. The lock
/// ends with the returned file, or with the process however it ends.
pub fn lock_data_dir(data_dir: &Path, holder: &str) -> Result<File> {
    use std::io::{Read, Seek, Write};
    let lock_path = data_dir.join(".lock");
    let mut lock = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StorageError::io(format!("opening {}", lock_path.display()), e))?;
    if lock.try_lock().is_err() {
        let mut by = String::new();
        let _ = lock.read_to_string(&mut by);
        let by = by.trim();
        return Err(StorageError::DataDirLocked {
            dir: data_dir.to_path_buf(),
            holder: if by.is_empty() {
                "another qldb-local process".into()
            } else {
                by.to_string()
            },
        });
    }
    let _ = lock.set_len(0).and_then(|()| {
        lock.rewind()?;
        writeln!(lock, "{holder} (pid {})", std::process::id())
    });
    Ok(lock)
}

/// Where ledger files live inside a data dir.
pub fn ledgers_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ledgers")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> LedgerRecord {
        LedgerRecord {
            ord: 0,
            name: name.into(),
            arn: format!("arn:aws:qldb:us-east-1:000000000000:ledger/{name}"),
            permissions_mode: "STANDARD".into(),
            deletion_protection: true,
            kms_key_arn: None,
            created_ms: 1,
            active_at_ms: 1,
            kms_updated_ms: None,
            deleting_since_ms: None,
            gone_at_ms: None,
        }
    }

    #[test]
    fn ledgers_and_tags_round_trip_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let tags: BTreeMap<_, _> = [("k".to_string(), "v".to_string())].into();
        {
            let mut cat = Catalog::open(dir.path()).unwrap();
            let a = cat.insert_ledger(&record("a"), &tags).unwrap();
            let b = cat.insert_ledger(&record("b"), &BTreeMap::new()).unwrap();
            assert!(b.ord > a.ord);
            cat.add_tags(&format!("{}/table/t1", a.arn), &tags).unwrap();
            assert!(
                cat.insert_ledger(&record("a"), &tags).is_err(),
                "unique name"
            );
        }
        let mut cat = Catalog::open(dir.path()).unwrap();
        let names: Vec<_> = cat
            .all_ledgers()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let a = cat.ledger("a").unwrap().unwrap();
        assert_eq!(cat.tags(&a.arn).unwrap(), tags);
        assert_eq!(cat.ledgers_after(a.ord, 10).unwrap().len(), 1);
        cat.remove_ledger(&a).unwrap();
        assert!(cat.ledger("a").unwrap().is_none());
        assert!(cat.tags(&a.arn).unwrap().is_empty());
        assert!(cat.tags(&format!("{}/table/t1", a.arn)).unwrap().is_empty());
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Catalog::open(dir.path()).unwrap();
        assert!(matches!(
            Catalog::open(dir.path()),
            Err(StorageError::DataDirLocked { .. })
        ));
    }
}
