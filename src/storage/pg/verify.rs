//! `qldb-local verify --storage postgres://…`: proves that nobody edited a ledger's rows in
//! PostgreSQL. Inside one REPEATABLE READ transaction (the server keeps committing), for
//! each ledger: its identity; every block's hashes as AWS's verifiers recompute them
//! ([`crate::storage::sqlite::verify::check_block`]), its stored block hash and its link to
//! the block before; every stored digest-tree node against the recomputed chain; and what
//! the schema holds beside the journal, re-derived from the verified blocks — the revision
//! rows (their block, position and hash), the live documents (version, table and data hash
//! of their latest revision) and every index entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{PgBackend, PgConn};
use crate::ion::hash::ion_hash;
use crate::ion::{Data, Value};
use crate::journal::hash::{merkle, Hash};
use crate::storage::forms::decode_doc;
use crate::storage::index_key;
use crate::storage::sqlite::verify::{
    check_block, check_saved_digest_with, check_tree, Damage, Verified,
};
use crate::storage::stored::decode_block;

/// Blocks read per query.
const PAGE: i64 = 500;

/// The latest revision of a document, as the journal says.
struct Latest {
    version: u64,
    table_id: String,
    /// `None`: a deletion.
    data_hash: Option<Hash>,
}

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
            let damage = |block: Option<u64>, message: String| Damage {
                ledger: name.clone(),
                block,
                message,
            };
            let mut conn = self.pool.get().map_err(|e| damage(None, e.to_string()))?;
            conn.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .map_err(|e| damage(None, e.to_string()))?;
            out.push(verify_schema(&mut conn, &name, &schema, &mut |d, t| {
                report(&name, d, t)
            })?);
        }
        Ok(out)
    }
}

impl PgBackend {
    /// Verifies `schema`, written for ledger `name` but not (yet) named as its data.
    pub(crate) fn verify_unnamed(
        &self,
        name: &str,
        schema: &str,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<Verified, Damage> {
        let mut conn = self.pool.get().map_err(|e| Damage {
            ledger: name.to_string(),
            block: None,
            message: e.to_string(),
        })?;
        verify_schema(&mut conn, name, schema, report)
    }

    /// Drops `schema` if no ledger names it.
    pub(crate) fn drop_unnamed_schema(&self, schema: &str) -> crate::storage::Result<()> {
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

fn verify_schema(
    conn: &mut PgConn,
    name: &str,
    s: &str,
    report: &mut dyn FnMut(u64, u64),
) -> Result<Verified, Damage> {
    let damage = |block: Option<u64>, message: String| Damage {
        ledger: name.to_string(),
        block,
        message,
    };
    let sql = |e: crate::storage::StorageError| damage(None, format!("cannot read: {e}"));
    let meta: BTreeMap<String, String> = conn
        .query(&format!("SELECT key, value FROM {s}.meta"), &[])
        .map_err(sql)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // A ledger imported from a QLDB export (and migrated here) also records its last
    // imported block.
    let rows = 2 + usize::from(meta.contains_key("imported_through"));
    let strand =
        match (meta.get("ledger_name"), meta.get("strand_id")) {
            (Some(n), Some(strand)) if n == name && meta.len() == rows => strand.clone(),
            _ => return Err(damage(
                None,
                "the meta table does not name this ledger and its strand (ledger_name, strand_id)"
                    .into(),
            )),
        };
    let total: i64 = conn
        .query_one(&format!("SELECT count(*) FROM {s}.blocks"), &[])
        .map_err(sql)?
        .get(0);

    // The journal, block by block; what each document's latest revision is, and where each
    // revision is.
    let mut prev: Hash = vec![0; 32];
    let mut leaves: Vec<Hash> = Vec::new();
    let mut latest: HashMap<String, Latest> = HashMap::new();
    let mut revisions: HashMap<(String, u64), (u64, usize, Hash)> = HashMap::new();
    loop {
        let rows = conn
            .query(
                &format!(
                    "SELECT seq, block_hash, ion FROM {s}.blocks WHERE seq >= $1 ORDER BY seq LIMIT $2"
                ),
                &[&(leaves.len() as i64), &PAGE],
            )
            .map_err(sql)?;
        for r in &rows {
            let seq = r.get::<_, i64>(0) as u64;
            let expected = leaves.len() as u64;
            if seq != expected {
                return Err(damage(
                    Some(expected),
                    format!("is missing (the next stored block is {seq})"),
                ));
            }
            let at = |m: &str| damage(Some(seq), m.to_string());
            let block =
                decode_block(r.get(2)).map_err(|_| at("its stored Ion cannot be decoded"))?;
            let checked = check_block(&block, seq, &strand, &prev).map_err(|m| at(&m))?;
            if r.get::<_, Vec<u8>>(1) != checked.hash {
                return Err(at("its blockHash does not match its contents"));
            }
            if let Some(Data::List(revs)) = block.field("revisions").map(|v| &v.data) {
                for (position, (rev, c)) in revs.iter().zip(&checked.revisions).enumerate() {
                    let (Some(meta), Some(data_hash)) = (rev.field("metadata"), &c.user) else {
                        continue;
                    };
                    let (Some(Data::String(id)), Some(Data::Int(v))) = (
                        meta.field("id").map(|v| &v.data),
                        meta.field("version").map(|v| &v.data),
                    ) else {
                        return Err(at("a revision's metadata has no id and version"));
                    };
                    let version = u64::try_from(v.clone())
                        .map_err(|_| at("a revision's version is not a count"))?;
                    let table_id = document_table(&block, id)
                        .ok_or_else(|| at("a revision's document is not in its transactionInfo"))?;
                    revisions.insert((id.clone(), version), (seq, position, c.hash.clone()));
                    latest.insert(
                        id.clone(),
                        Latest {
                            version,
                            table_id,
                            data_hash: data_hash.clone(),
                        },
                    );
                }
            }
            prev = checked.hash.clone();
            leaves.push(checked.hash);
        }
        report(leaves.len() as u64, total as u64);
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    if leaves.is_empty() {
        return Err(damage(None, "the journal has no blocks".into()));
    }
    let tip = leaves.len() as u64 - 1;
    let digest = merkle(&leaves);

    // Every stored node of the digest tree is the hash of the blocks it covers, and no
    // other node is stored.
    let stored: HashMap<(i64, i64), Hash> = conn
        .query(
            &format!("SELECT level::bigint, idx, hash FROM {s}.merkle"),
            &[],
        )
        .map_err(sql)?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    check_tree(leaves, &stored).map_err(|(block, m)| damage(block, m))?;

    // Revision rows: one per document revision of the journal, at its block and position,
    // with its hash.
    let rows = conn
        .query(
            &format!("SELECT doc_id, version, seq, position, hash FROM {s}.revisions"),
            &[],
        )
        .map_err(sql)?;
    for r in &rows {
        let key: (String, u64) = (r.get(0), r.get::<_, i64>(1) as u64);
        let found = (
            r.get::<_, i64>(2) as u64,
            r.get::<_, i32>(3) as usize,
            r.get::<_, Vec<u8>>(4),
        );
        if revisions.get(&key) != Some(&found) {
            return Err(damage(
                Some(found.0),
                format!(
                    "the revisions row of {} version {} does not match the journal",
                    key.0, key.1
                ),
            ));
        }
    }
    if rows.len() != revisions.len() {
        return Err(damage(
            None,
            format!(
                "the journal has {} document revisions but the revisions table holds {}",
                revisions.len(),
                rows.len()
            ),
        ));
    }

    // Live documents: exactly those whose latest revision has data, at that version, in
    // that table, with that data.
    let tables: HashMap<i32, String> = conn
        .query(&format!("SELECT table_no, table_id FROM {s}.tables"), &[])
        .map_err(sql)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let docs = conn
        .query(
            &format!("SELECT doc_id, table_no, version, data FROM {s}.documents"),
            &[],
        )
        .map_err(sql)?;
    let mut live: HashMap<String, (String, Value)> = HashMap::new();
    for r in &docs {
        let doc_id: String = r.get(0);
        let wrong = |what: &str| damage(None, format!("document {doc_id}: {what}"));
        let data = decode_doc(r.get(3)).map_err(|_| wrong("its data is not valid Ion"))?;
        let Some(l) = latest.get(&doc_id) else {
            return Err(wrong("the journal has no revision of it"));
        };
        let table = tables.get(&r.get::<_, i32>(1));
        if l.version != r.get::<_, i64>(2) as u64
            || table != Some(&l.table_id)
            || l.data_hash.as_deref() != Some(&ion_hash(&data)[..])
        {
            return Err(wrong(
                "its version, table or data is not its latest revision's",
            ));
        }
        live.insert(doc_id, (l.table_id.clone(), data));
    }
    let journal_live = latest.values().filter(|l| l.data_hash.is_some()).count();
    if journal_live != live.len() {
        return Err(damage(
            None,
            format!(
                "the journal leaves {journal_live} live documents but the documents table holds {}",
                live.len()
            ),
        ));
    }

    // Index entries: every live document's key under each index of its table, and no other.
    let indexes = conn
        .query(
            &format!("SELECT index_no, table_id, field FROM {s}.indexes"),
            &[],
        )
        .map_err(sql)?;
    let mut want: BTreeSet<(i32, Vec<u8>, String)> = BTreeSet::new();
    for ix in &indexes {
        let (no, table_id, field): (i32, String, String) = (ix.get(0), ix.get(1), ix.get(2));
        for (doc_id, (t, data)) in &live {
            if *t == table_id {
                if let Some(v) = data.field(&field) {
                    want.insert((no, index_key(v), doc_id.clone()));
                }
            }
        }
    }
    let found: BTreeSet<(i32, Vec<u8>, String)> = conn
        .query(
            &format!("SELECT index_no, key, doc_id FROM {s}.index_entries"),
            &[],
        )
        .map_err(sql)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    if let Some((no, _, doc)) = want.symmetric_difference(&found).next() {
        return Err(damage(
            None,
            format!("index {no}'s entry for document {doc} does not match the document"),
        ));
    }
    Ok(Verified {
        ledger: name.to_string(),
        blocks: tip + 1,
        tip,
        digest,
    })
}

/// The table of document `id`, from its block's transactionInfo.
fn document_table(block: &Value, id: &str) -> Option<String> {
    let docs = block.field("transactionInfo")?.field("documents")?;
    match docs
        .field(id)
        .and_then(|d| d.field("tableId"))
        .map(|v| &v.data)
    {
        Some(Data::String(t)) => Some(t.clone()),
        _ => None,
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
