//! `qldb-local migrate --from A --to B`: copies ledgers between backends (a data dir or a
//! PostgreSQL URL, either way) row for row, so that every block, hash, digest and proof is
//! unchanged. Both backends store a ledger in the same tables with the same columns (but
//! for what a backend derives from them, as SQLite's `merkle.done`); this
//! module names them, moves their rows, copies the catalog record and the tags, and checks
//! that the copy's digest is the original's. Stop the servers first (a SQLite data dir's lock
//! enforces it on that side).

use std::collections::BTreeMap;

use super::{Backend, StorageError};
use crate::names::LedgerName;

/// One cell of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Blob,
}

/// A ledger table and its columns, in the order rows carry them.
pub struct RowTable {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::*;

/// Every table of a ledger that a copy carries, parents first. `documents.pos` is a
/// document's place in insertion order (SQLite: its rowid). Index keys' OCC records are not
/// copied: no transaction is open across a migration.
pub const LEDGER_TABLES: &[RowTable] = &[
    RowTable {
        name: "meta",
        columns: &[("key", Text), ("value", Text)],
    },
    RowTable {
        name: "blocks",
        columns: &[
            ("seq", Int),
            ("tx_id", Text),
            ("ts_ms", Int),
            ("block_hash", Blob),
            ("ion", Blob),
        ],
    },
    RowTable {
        name: "merkle",
        columns: &[("level", Int), ("idx", Int), ("hash", Blob)],
    },
    RowTable {
        name: "tables",
        columns: &[
            ("table_no", Int),
            ("table_id", Text),
            ("name", Text),
            ("status", Text),
            ("created_seq", Int),
            ("modified_seq", Int),
            ("version", Int),
        ],
    },
    RowTable {
        name: "indexes",
        columns: &[
            ("index_no", Int),
            ("index_id", Text),
            ("table_id", Text),
            ("field", Text),
            ("status", Text),
            ("created_seq", Int),
        ],
    },
    RowTable {
        name: "documents",
        columns: &[
            ("pos", Int),
            ("doc_id", Text),
            ("table_no", Int),
            ("version", Int),
            ("data", Blob),
        ],
    },
    RowTable {
        name: "revisions",
        columns: &[
            ("doc_id", Text),
            ("version", Int),
            ("table_no", Int),
            ("seq", Int),
            ("position", Int),
            ("tx_time_ms", Int),
            ("tx_id", Text),
            ("hash", Blob),
            ("data", Blob),
            ("data_hash", Blob),
            ("redacted_seq", Int),
        ],
    },
    RowTable {
        name: "index_entries",
        columns: &[("index_no", Int), ("key", Blob), ("doc_id", Text)],
    },
];

/// The per-key OCC records of the indexes (not copied between backends, see above; read by
/// the verifier). SQLite names a record's index by id, PostgreSQL by number.
pub const KEY_SEQS: RowTable = RowTable {
    name: "index_key_seq",
    columns: &[("index_id", Text), ("key", Blob), ("seq", Int)],
};

/// A ledger's rows, table by table in [`LEDGER_TABLES`] order.
pub type LedgerRows = Vec<Vec<Vec<Cell>>>;

/// Where ledgers are: a data dir, or a PostgreSQL URL.
pub enum Place {
    Dir(std::path::PathBuf),
    Postgres(String),
}

impl Place {
    pub fn parse(s: &str) -> Place {
        // A URL, or a key=value connection string (`host=… dbname=…`).
        let key_value = s.split_whitespace().all(|w| w.contains('='))
            && s.split_whitespace().any(|w| {
                ["host=", "hostaddr=", "dbname=", "user=", "port="]
                    .iter()
                    .any(|k| w.starts_with(k))
            });
        if s.starts_with("postgres://") || s.starts_with("postgresql://") || key_value {
            Place::Postgres(s.to_string())
        } else {
            Place::Dir(s.into())
        }
    }

    fn shown(&self) -> String {
        match self {
            Place::Dir(d) => d.display().to_string(),
            Place::Postgres(url) => super::pg::shown_url(url),
        }
    }

    fn open(&self) -> Result<Opened, StorageError> {
        Ok(match self {
            Place::Dir(d) => Opened::Dir(
                d.clone(),
                super::sqlite::SqliteBackend::new(Some(d.clone()), false),
            ),
            Place::Postgres(url) => Opened::Postgres(super::pg::PgBackend::connect(url, false)?),
        })
    }
}

/// A place's backend, opened.
enum Opened {
    Dir(std::path::PathBuf, super::sqlite::SqliteBackend),
    Postgres(super::pg::PgBackend),
}

impl Opened {
    fn backend(&self) -> &dyn Backend {
        match self {
            Opened::Dir(_, b) => b,
            Opened::Postgres(b) => b,
        }
    }

    fn read(&self, name: &LedgerName) -> Result<LedgerRows, StorageError> {
        match self {
            Opened::Dir(d, _) => super::sqlite::migrate::read_ledger(d, name),
            Opened::Postgres(b) => b.read_ledger(name),
        }
    }

    fn write(&self, name: &LedgerName, rows: &LedgerRows) -> Result<(), StorageError> {
        match self {
            Opened::Dir(d, _) => super::sqlite::migrate::write_ledger(d, name, rows),
            Opened::Postgres(b) => b.write_ledger(name, rows),
        }
    }
}

/// `qldb-local import --storage URL`: imports into a private data dir (under the system's
/// temporary directory, removed afterwards), then copies the ledger into the database. A
/// database that already has the ledger is refused before anything is imported; an
/// interrupted import starts over.
pub fn import_into_postgres(
    url: &str,
    opts: &super::sqlite::import::ImportOptions,
) -> Result<super::sqlite::import::Imported, String> {
    let shown = super::pg::shown_url(url);
    let backend = super::pg::PgBackend::connect(url, false)
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    if backend
        .open_catalog()
        .and_then(|c| c.ledger(&opts.ledger))
        .map_err(|e| format!("{shown}: {e}"))?
        .is_some()
    {
        return Err(format!(
            "{shown} already has a ledger {}: nothing was imported",
            opts.ledger
        ));
    }
    drop(backend);
    let private = super::PrivateDir::new("import")
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let dir = private.path().to_path_buf();
    (|| {
        let imported = super::sqlite::import::import(&super::sqlite::import::ImportOptions {
            data_dir: dir.clone(),
            ..opts.clone()
        })
        .map_err(|e| e.to_string())?;
        run(
            &Place::Dir(dir.clone()),
            &Place::Postgres(url.to_string()),
            Some(&opts.ledger),
            &mut |_| {},
        )?;
        Ok(imported)
    })()
}

/// One ledger copied.
pub struct Copied {
    pub ledger: String,
    pub blocks: u64,
    pub digest: crate::journal::hash::Hash,
}

/// Copies every ledger of `from` (or the one named) to `to`; a ledger that `to` already has
/// is refused before anything is written. Each copy's digest is checked against the
/// original's; `report` is told of each ledger done.
pub fn run(
    from: &Place,
    to: &Place,
    only: Option<&str>,
    report: &mut dyn FnMut(&Copied),
) -> Result<Vec<Copied>, String> {
    let fail = |what: &str, e: StorageError| format!("{what}: {e}");
    let src = from
        .open()
        .map_err(|e| fail(&format!("cannot open {}", from.shown()), e))?;
    let dst = to
        .open()
        .map_err(|e| fail(&format!("cannot open {}", to.shown()), e))?;
    let src_catalog = src
        .backend()
        .open_catalog()
        .map_err(|e| fail("the source catalog", e))?;
    let mut dst_catalog = dst
        .backend()
        .open_catalog()
        .map_err(|e| fail("the destination catalog", e))?;
    let records = match only {
        Some(name) => vec![src_catalog
            .ledger(name)
            .map_err(|e| fail("the source catalog", e))?
            .ok_or_else(|| format!("{} has no ledger {name}", from.shown()))?],
        None => src_catalog
            .all_ledgers()
            .map_err(|e| fail("the source catalog", e))?,
    };
    for rec in &records {
        if dst_catalog
            .ledger(&rec.name)
            .map_err(|e| fail("the destination catalog", e))?
            .is_some()
        {
            return Err(format!(
                "{} already has a ledger {}: nothing was copied",
                to.shown(),
                rec.name
            ));
        }
    }
    let mut out = Vec::new();
    for rec in records {
        let what = |step: &str| format!("ledger {}: {step}", rec.name);
        let name = LedgerName::parse(&rec.name).map_err(|v| what(&v.0))?;
        let original = src
            .backend()
            .open_ledger(&name)
            .and_then(|db| db.digest())
            .map_err(|e| fail(&what("cannot open it"), e))?;
        let rows = src
            .read(&name)
            .map_err(|e| fail(&what("cannot read it"), e))?;
        // The ledger's tags and its tables' (a table's ARN is the ledger's + /table/<id>).
        let mut table_tags = BTreeMap::new();
        let tables = LEDGER_TABLES.iter().position(|t| t.name == "tables");
        for row in tables.map(|i| &rows[i]).into_iter().flatten() {
            if let Some(Cell::Text(table_id)) = row.get(1) {
                let arn = format!("{}/table/{table_id}", rec.arn);
                let tags = src_catalog
                    .tags(&arn)
                    .map_err(|e| fail("the source catalog", e))?;
                if !tags.is_empty() {
                    table_tags.insert(arn, tags);
                }
            }
        }
        let tags = src_catalog
            .tags(&rec.arn)
            .map_err(|e| fail("the source catalog", e))?;
        // Data first, then its catalog row: an interrupted copy leaves data no catalog row
        // names, which the destination's server removes when it starts.
        dst.write(&name, &rows)
            .map_err(|e| fail(&what("cannot write it"), e))?;
        let copy = dst
            .backend()
            .open_ledger(&name)
            .and_then(|db| db.digest())
            .map_err(|e| fail(&what("cannot open the copy"), e))?;
        if copy != original {
            return Err(what("the copy's digest differs from the original's"));
        }
        dst_catalog
            .insert_ledger(&rec, &tags)
            .map_err(|e| fail("the destination catalog", e))?;
        for (arn, tags) in &table_tags {
            dst_catalog
                .add_tags(arn, tags)
                .map_err(|e| fail("the destination catalog", e))?;
        }
        let done = Copied {
            ledger: rec.name.clone(),
            blocks: original.0 + 1,
            digest: original.1,
        };
        report(&done);
        out.push(done);
    }
    Ok(out)
}
