//! `qldb-local verify --storage postgres://…`: proves that nobody edited a ledger's rows in
//! PostgreSQL, with the same verifier as a data dir's ([`crate::verify`]), so both backends
//! are held to every rule it checks. Inside one REPEATABLE READ transaction (servers may keep
//! committing), a ledger's schema version is checked and its rows are streamed, as they are,
//! into a scratch SQLite file under the system's temporary directory (the same tables and
//! columns; never fsynced, removed after), with its indexes' per-key OCC records; the
//! verifier then checks that file completely: every block's hashes, the chain, the digest
//! tree, and every row the journal determines.

use super::migrate::stream_rows;
use super::schema::LEDGER_MIGRATIONS;
use super::{PgBackend, PgConn};
use crate::storage::migrate::{Cell, KEY_SEQS, LEDGER_TABLES};
use crate::storage::sqlite::migrate::ScratchFile;
use crate::storage::sqlite::verify::{check_saved_digest_with, verify_file_reporting, Scope};
use crate::verify::{Damage, Verified};

impl PgBackend {
    /// Every ledger (or the one named), in creation order: their names and schemas.
    fn verify_targets(&self, only: Option<&str>) -> Result<Vec<(String, String)>, Damage> {
        let fail = |message: String| Damage {
            ledger: only.unwrap_or("*").into(),
            block: None,
            message,
        };
        let mut conn = self.pool.get().map_err(|e| fail(e.to_string()))?;
        let rows = conn
            .query(
                "SELECT l.name, d.schema_name FROM qldb_catalog.ledgers l
                 LEFT JOIN qldb_catalog.ledger_data d ON d.name = l.name
                 WHERE $1::text IS NULL OR l.name = $1 ORDER BY l.ord",
                &[&only],
            )
            .map_err(|e| fail(format!("cannot read the catalog: {e}")))?;
        if rows.is_empty() {
            if let Some(name) = only {
                return Err(fail(format!("there is no ledger {name}")));
            }
        }
        rows.iter()
            .map(|r| {
                let name: String = r.get(0);
                match r.get::<_, Option<String>>(1) {
                    Some(schema) => Ok((name, schema)),
                    None => Err(Damage {
                        ledger: name,
                        block: None,
                        message: "the catalog names it but PostgreSQL holds no data for it".into(),
                    }),
                }
            })
            .collect()
    }

    /// Verifies every ledger (or the one named); `report(ledger, blocks checked, blocks)`.
    pub fn verify(
        &self,
        only: Option<&str>,
        report: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<Vec<Verified>, Damage> {
        let mut out = Vec::new();
        for (name, schema) in self.verify_targets(only)? {
            out.push(self.verify_schema(&name, &schema, &mut |d, t| report(&name, d, t))?);
        }
        Ok(out)
    }

    /// Verifies ledger `name`'s rows in `schema` (its data, or a rebuild's schema not yet
    /// named as its data), at one snapshot.
    pub(crate) fn verify_schema(
        &self,
        name: &str,
        schema: &str,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<Verified, Damage> {
        let damage = |e: crate::storage::StorageError| Damage {
            ledger: name.to_string(),
            block: None,
            message: e.to_string(),
        };
        let private = crate::storage::PrivateDir::new("verify").map_err(|e| Damage {
            ledger: name.to_string(),
            block: None,
            message: format!("cannot make a temporary directory: {e}"),
        })?;
        let path = private.path().join("ledger.sqlite");
        {
            let mut conn = self.pool.get().map_err(damage)?;
            conn.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(damage)?;
            copy_rows(&mut conn, name, schema, &path)?;
            // The snapshot ends once copied, not after the (longer) check of the copy.
            conn.rollback().map_err(damage)?;
        }
        verify_file_reporting(&path, name, Scope::Everything, report)
    }
}

/// Checks the version of ledger `name`'s `schema` and copies its rows, with its OCC records,
/// into a new scratch SQLite file at `path`.
fn copy_rows(
    conn: &mut PgConn,
    name: &str,
    schema: &str,
    path: &std::path::Path,
) -> Result<(), Damage> {
    let damage = |message: String| Damage {
        ledger: name.to_string(),
        block: None,
        message,
    };
    let read = |e: crate::storage::StorageError| damage(format!("cannot read: {e}"));
    let version: Option<i32> = conn
        .query_one(
            &format!("SELECT max(version) FROM {schema}.schema_version"),
            &[],
        )
        .map_err(read)?
        .get(0);
    if version != Some(LEDGER_MIGRATIONS.len() as i32) {
        return Err(damage(format!(
            "its schema {schema} is at version {}, not this qldb-local's {}",
            version.map_or("none".into(), |v| v.to_string()),
            LEDGER_MIGRATIONS.len()
        )));
    }
    let copied = (|| -> Result<Option<i64>, crate::storage::StorageError> {
        let mut file = ScratchFile::create(path)?;
        for t in LEDGER_TABLES {
            stream_rows(conn, schema, t, &mut |row| file.insert(t, row))?;
        }
        // The per-key OCC records, by index id as SQLite keeps them; one of no index is
        // damage (a dropped index's records go with it here).
        let mut stray = None;
        conn.for_each_row(
            &format!(
                "SELECT i.index_id, k.key, k.seq, k.index_no::bigint FROM {schema}.index_key_seq k
                 LEFT JOIN {schema}.indexes i ON i.index_no = k.index_no"
            ),
            &mut |r| match r.get::<_, Option<String>>(0) {
                Some(id) => file.insert(
                    &KEY_SEQS,
                    vec![Cell::Text(id), Cell::Blob(r.get(1)), Cell::Int(r.get(2))],
                ),
                None => {
                    stray = Some(r.get(3));
                    Ok(())
                }
            },
        )?;
        file.finish()?;
        Ok(stray)
    })();
    match copied {
        Ok(Some(index_no)) => Err(damage(format!(
            "an index_key_seq row names index number {index_no}, which no index has"
        ))),
        Ok(None) => Ok(()),
        Err(e) => Err(read(e)),
    }
}

/// `qldb-local verify --storage URL [--ledger NAME]`: verifies and prints one `ok` line per
/// ledger, as the SQLite verify does.
pub fn run(url: &str, only: Option<&str>, saved: Option<(String, String)>) -> Result<(), Damage> {
    use base64::Engine as _;
    let backend = PgBackend::connect(url, false).map_err(|e| Damage {
        ledger: only.unwrap_or("*").into(),
        block: None,
        message: e.to_string(),
    })?;
    let mut progress = crate::progress::Progress::stderr();
    let verified = backend.verify(only, &mut |name, done, total| {
        progress.update(&format!("verify {name}"), done, total, "blocks")
    });
    progress.clear();
    for v in verified? {
        println!(
            "ok {}: {} blocks, digest {} at sequenceNo {}",
            v.ledger,
            v.blocks,
            base64::engine::general_purpose::STANDARD.encode(&v.digest),
            v.tip
        );
        if let Some((digest, address)) = &saved {
            let seq = backend.check_saved_digest(&v, digest, address)?;
            println!(
                "ok {}: the saved digest {digest} is the journal's digest at sequenceNo {seq}",
                v.ledger
            );
        }
    }
    Ok(())
}

impl PgBackend {
    /// `verify --digest`: a digest saved from GetDigest is the journal's digest at its tip.
    fn check_saved_digest(&self, v: &Verified, digest: &str, address: &str) -> Result<u64, Damage> {
        let fail = |message: String| Damage {
            ledger: v.ledger.clone(),
            block: None,
            message,
        };
        let (_, schema) = self
            .verify_targets(Some(&v.ledger))?
            .pop()
            .ok_or_else(|| fail("the ledger is gone".into()))?;
        let mut conn = self.pool.get().map_err(|e| fail(e.to_string()))?;
        let own: String = conn
            .query_one(
                &format!("SELECT value FROM {schema}.meta WHERE key = 'strand_id'"),
                &[],
            )
            .map_err(|e| fail(format!("cannot read: {e}")))?
            .get(0);
        check_saved_digest_with(v, digest, address, &own, &mut |seq| {
            Ok(conn
                .query(
                    &format!("SELECT block_hash FROM {schema}.blocks WHERE seq <= $1 ORDER BY seq"),
                    &[&(seq as i64)],
                )
                .map_err(|e| format!("cannot read: {e}"))?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }
}
