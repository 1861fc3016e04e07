//! `qldb-local rebuild --storage URL --ledger NAME`: regenerates a PostgreSQL-backed
//! ledger's derived tables from its verified journal, with the same replay as a data dir's
//! rebuild ([`crate::storage::sqlite::rebuild`]).
//!
//! The ledger's rows are copied as they are (damage included) into a ledger file in a
//! private temporary data dir; the file is rebuilt there (the journal verified first, the
//! replay verified completely after, the old rows consulted for table and index ids); the
//! rebuilt rows go into a new schema, which is verified again in PostgreSQL and only then
//! named as the ledger's data, in one UPDATE. The previous schema is kept, unnamed, and
//! reported. The database's in-service lock is held exclusively throughout: rebuild refuses
//! while a server runs on the database, and a server refuses to start while it works.

use super::PgBackend;
use crate::names::LedgerName;
use crate::storage::sqlite::rebuild::{rebuild_reporting as rebuild_file, Kept, Rebuilt};
use crate::storage::sqlite::SqliteBackend;
use crate::storage::Backend;
use crate::verify::Damage;

/// Rebuilds ledger `name` of the database at `url`; `report(step, blocks done, blocks)` as
/// the data dir's rebuild reports, plus "verifying in PostgreSQL".
pub fn rebuild_reporting(
    url: &str,
    name: &str,
    report: &mut dyn FnMut(&str, u64, u64),
) -> Result<Rebuilt, Damage> {
    let err = |m: String| Damage {
        ledger: name.to_string(),
        block: None,
        message: m,
    };
    let ledger = LedgerName::parse(name).map_err(|v| err(format!("not a ledger name: {}", v.0)))?;
    let backend = PgBackend::connect(url, false).map_err(|e| err(e.to_string()))?;
    let _exclusive = backend
        .hold_exclusive()
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| {
            err(format!(
                "PostgreSQL at {} is in use by a qldb-local server; stop it first",
                backend.shown
            ))
        })?;
    let record = backend
        .open_catalog()
        .and_then(|c| c.ledger(name))
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err(format!("no ledger named {name} in {}", backend.shown)))?;
    let old = backend
        .schema_named(&ledger)
        .map_err(|e| err(e.to_string()))?;
    let rows = backend
        .read_ledger(&ledger)
        .map_err(|e| err(format!("cannot read it: {e}")))?;

    let private = crate::storage::PrivateDir::new("rebuild")
        .map_err(|e| err(format!("cannot make a temporary directory: {e}")))?;
    let dir = private.path().to_path_buf();
    let replayed = (|| {
        crate::storage::sqlite::migrate::write_ledger(&dir, &ledger, &rows)
            .and_then(|()| SqliteBackend::new(Some(dir.clone()), true).open_catalog())
            .and_then(|mut c| c.insert_ledger(&record, &Default::default()))
            .map_err(|e| err(format!("cannot copy it to {}: {e}", dir.display())))?;
        let rebuilt = rebuild_file(&dir, name, report)?;
        let rows = crate::storage::sqlite::migrate::read_ledger(&dir, &ledger)
            .map_err(|e| err(format!("cannot read the rebuilt file: {e}")))?;
        Ok::<_, Damage>((rebuilt, rows))
    })();
    drop(private);
    let (rebuilt, rows) = replayed?;

    let schema = backend
        .write_unnamed_schema(&rows)
        .map_err(|e| err(format!("cannot write the rebuilt rows: {e}")))?;
    let checked = backend
        .verify_schema(name, &schema, &mut |d, t| {
            report("verifying in PostgreSQL", d, t)
        })
        .and_then(|v| {
            if (v.tip, &v.digest) == (rebuilt.verified.tip, &rebuilt.verified.digest) {
                Ok(v)
            } else {
                Err(err(
                    "the rebuilt schema's digest differs from the journal's".into(),
                ))
            }
        });
    let verified = match checked {
        Ok(v) => v,
        Err(d) => {
            let _ = backend.drop_unnamed_schema(&schema);
            return Err(Damage {
                message: format!("the rebuilt schema {schema} does not verify: {}", d.message),
                ..d
            });
        }
    };
    if let Err(e) = backend.swap_schema(&ledger, &old, &schema) {
        let _ = backend.drop_unnamed_schema(&schema);
        return Err(err(format!("cannot swap in the rebuilt schema: {e}")));
    }
    Ok(Rebuilt {
        verified,
        backup: Kept::Schema(old),
        ..rebuilt
    })
}
