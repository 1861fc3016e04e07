//! A ledger schema's rows for `qldb-local migrate` ([`crate::storage::migrate`]): read from
//! an existing schema in one REPEATABLE READ transaction, or written into a new schema in one
//! transaction (nothing is left behind if it fails).

use ::postgres::types::ToSql;

use super::schema::{migrate, LEDGER_MIGRATIONS};
use super::{PgBackend, PgConn};
use crate::names::LedgerName;
use crate::storage::migrate::{Cell, Kind, LedgerRows, RowTable, LEDGER_TABLES};
use crate::storage::{Result, StorageError};

/// A column read as its cell kind (every integer column as bigint).
fn select_expr(column: &str, kind: Kind) -> String {
    match kind {
        Kind::Int => format!("{column}::bigint"),
        _ => column.to_string(),
    }
}

impl PgBackend {
    /// Every row of ledger `name`'s schema.
    pub fn read_ledger(&self, name: &LedgerName) -> Result<LedgerRows> {
        let schema = self.schema_named(name)?;
        let mut conn = self.pool.get()?;
        conn.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let mut out = Vec::new();
        for t in LEDGER_TABLES {
            let mut rows = Vec::new();
            stream_rows(&mut conn, &schema, t, &mut |row| {
                rows.push(row);
                Ok(())
            })?;
            out.push(rows);
        }
        Ok(out)
    }

    /// Writes ledger `name` holding `rows` into a new schema; refuses if the database has
    /// data of that name.
    pub fn write_ledger(&self, name: &LedgerName, rows: &LedgerRows) -> Result<()> {
        let mut conn = self.pool.get()?;
        conn.begin("")?;
        if conn
            .query_opt(
                "SELECT 1 FROM qldb_catalog.ledger_data WHERE name = $1",
                &[&name.as_str()],
            )?
            .is_some()
        {
            return Err(StorageError::Corrupt(format!(
                "the database holds data of a ledger {} already",
                name.as_str()
            )));
        }
        let schema = write_schema(&mut conn, rows)?;
        conn.execute(
            "INSERT INTO qldb_catalog.ledger_data (name, schema_name) VALUES ($1, $2)",
            &[&name.as_str(), &schema],
        )?;
        conn.commit()
    }

    /// Writes `rows` into a new schema that no ledger names yet (committed); returns its name.
    pub(crate) fn write_unnamed_schema(&self, rows: &LedgerRows) -> Result<String> {
        let mut conn = self.pool.get()?;
        conn.begin("")?;
        let schema = write_schema(&mut conn, rows)?;
        conn.commit()?;
        Ok(schema)
    }

    /// Makes `schema` ledger `name`'s data in place of `old` (which is kept, unnamed);
    /// refuses if the ledger's data is no longer `old`.
    pub(crate) fn swap_schema(&self, name: &LedgerName, old: &str, schema: &str) -> Result<()> {
        let mut conn = self.pool.get()?;
        let n = conn.execute(
            "UPDATE qldb_catalog.ledger_data SET schema_name = $3 WHERE name = $1 AND schema_name = $2",
            &[&name.as_str(), &old, &schema],
        )?;
        if n != 1 {
            return Err(StorageError::Corrupt(format!(
                "ledger {}'s data changed meanwhile",
                name.as_str()
            )));
        }
        Ok(())
    }

    /// Drops `schema` if no ledger names it.
    pub(crate) fn drop_unnamed_schema(&self, schema: &str) -> Result<()> {
        let mut conn = self.pool.get()?;
        conn.begin("")?;
        let named = conn
            .query_opt(
                "SELECT 1 FROM qldb_catalog.ledger_data WHERE schema_name = $1 FOR UPDATE",
                &[&schema],
            )?
            .is_some();
        if !named {
            conn.batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
        }
        conn.commit()
    }
}

/// Hands `sink` every row of table `t` of `schema`, in the order the rows were made (SQLite's
/// rowids follow it), as they arrive.
pub(crate) fn stream_rows(
    conn: &mut PgConn,
    schema: &str,
    t: &RowTable,
    sink: &mut dyn FnMut(Vec<Cell>) -> Result<()>,
) -> Result<()> {
    let cols: Vec<String> = t.columns.iter().map(|(c, k)| select_expr(c, *k)).collect();
    let order = match t.name {
        "tables" => " ORDER BY table_no",
        "indexes" => " ORDER BY index_no",
        "documents" => " ORDER BY pos",
        "blocks" => " ORDER BY seq",
        "revisions" => " ORDER BY seq, position",
        _ => "",
    };
    conn.for_each_row(
        &format!("SELECT {} FROM {schema}.{}{order}", cols.join(", "), t.name),
        &mut |r| {
            let cells = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match kind {
                    Kind::Int => r.get::<_, Option<i64>>(i).map(Cell::Int),
                    Kind::Text => r.get::<_, Option<String>>(i).map(Cell::Text),
                    Kind::Blob => r.get::<_, Option<Vec<u8>>>(i).map(Cell::Blob),
                })
                .map(|c| c.unwrap_or(Cell::Null))
                .collect();
            sink(cells)
        },
    )
}

/// Writes `rows` into a new ledger schema (inside the caller's transaction); returns its name.
fn write_schema(conn: &mut PgConn, rows: &LedgerRows) -> Result<String> {
    let n: i64 = conn
        .query_one("SELECT nextval('qldb_catalog.ledger_schema_no')", &[])?
        .get(0);
    let schema = format!("qldb_l{n}");
    migrate(conn, &schema, LEDGER_MIGRATIONS)?;
    for (t, rows) in LEDGER_TABLES.iter().zip(rows) {
        let cols: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
        // Typed parameters, assigned to the column's own type (integer or bigint).
        let marks: Vec<String> = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, k))| {
                let ty = match k {
                    Kind::Int => "bigint",
                    Kind::Text => "text",
                    Kind::Blob => "bytea",
                };
                format!("${}::{ty}", i + 1)
            })
            .collect();
        let sql = format!(
            "INSERT INTO {schema}.{} ({}) VALUES ({})",
            t.name,
            cols.join(", "),
            marks.join(", ")
        );
        for row in rows {
            let values: Vec<Box<dyn ToSql + Sync>> = row
                .iter()
                .zip(t.columns)
                .map(|(c, (_, k))| -> Box<dyn ToSql + Sync> {
                    match (c, k) {
                        (Cell::Int(n), _) => Box::new(*n),
                        (Cell::Text(s), _) => Box::new(s.clone()),
                        (Cell::Blob(b), _) => Box::new(b.clone()),
                        (Cell::Null, Kind::Int) => Box::new(None::<i64>),
                        (Cell::Null, Kind::Text) => Box::new(None::<String>),
                        (Cell::Null, Kind::Blob) => Box::new(None::<Vec<u8>>),
                    }
                })
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
            conn.execute(&sql, &params)?;
        }
    }
    // New documents go after the copied ones.
    conn.batch(&format!(
        "SELECT setval('{schema}.doc_pos', coalesce((SELECT max(pos) FROM {schema}.documents), 0) + 1, false)"
    ))?;
    Ok(schema)
}
