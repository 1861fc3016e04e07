//! One ledger in PostgreSQL: its schema's journal, digest tree, table catalog, documents,
//! revisions and indexes (the SQLite ledger file's tables), read through pooled connections
//! and written by group commits that hold the ledger's row lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::schema::{migrate, LEDGER_MIGRATIONS};
use super::{PgConn, Pool};
use crate::ion::binary::encode_one;
use crate::ion::Value;
use crate::journal::block::Block;
use crate::journal::hash::Hash;
use crate::journal::merkle;
use crate::names::LedgerName;
use crate::storage::forms::{
    decode_doc, genesis_block, redact_in_block, redaction_conflict, revision_view, BlockBuilder,
    RevisionRow,
};
use crate::storage::group::{CommitTicket, GroupCommit, Pending};
use crate::storage::stored::{decode_block, pack_block, DATA_IN_BLOCK};
use crate::storage::{
    index_key, CommitError, CommitRequest, Committed, IndexInfo, KeepDoc, LedgerStore, ReadCheck,
    Result, RevisionRef, ScanPage, Snapshot, StorageError, StoredDoc, TableInfo, Tip,
};

impl From<::postgres::Error> for CommitError {
    fn from(e: ::postgres::Error) -> Self {
        CommitError::Storage(e.into())
    }
}

/// How old ledger data without a catalog row must be before it counts as the remains of a
/// create that failed: younger, it may be another server's create in progress (its data is
/// written before its catalog row).
pub(crate) const ORPHAN_AGE: &str = "1 minute";

/// The most commits one PostgreSQL transaction holds.
const MAX_BATCH: usize = 32;

pub struct PgLedger {
    pool: Arc<Pool>,
    name: String,
    /// The schema holding the ledger's tables (`qldb_l<n>`, never reused).
    schema: String,
    strand: String,
    closed: AtomicBool,
    group: GroupCommit<CommitRequest>,
    transactions: AtomicU64,
    commits: AtomicU64,
}

/// Removes a ledger's schema and its `ledger_data` row, in one transaction.
pub(crate) fn drop_data(pool: &Pool, name: &str, schema: &str) -> Result<()> {
    let mut conn = pool.get()?;
    conn.begin("")?;
    // Only while it is the ledger's data: a schema a rebuild replaced is kept.
    let named = conn.execute(
        "DELETE FROM qldb_catalog.ledger_data WHERE name = $1 AND schema_name = $2",
        &[&name, &schema],
    )?;
    if named > 0 {
        conn.batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
    }
    conn.commit()
}

/// Why a handle whose schema is no longer its ledger's data fails.
const REPLACED: &str = "the ledger's data was replaced (by `qldb-local rebuild`) or removed \
                        meanwhile: start a new session";

impl PgLedger {
    fn new(pool: Arc<Pool>, name: &LedgerName, schema: String, strand: String) -> Self {
        PgLedger {
            pool,
            name: name.as_str().to_string(),
            schema,
            strand,
            closed: Default::default(),
            group: Default::default(),
            transactions: Default::default(),
            commits: Default::default(),
        }
    }

    /// Creates the ledger's schema with its identity and genesis block, in one transaction
    /// (nothing is left behind if it fails). Data of an earlier ledger of that name that no
    /// catalog row names (a remove that did not finish) is dropped first.
    pub fn create(
        pool: Arc<Pool>,
        name: &LedgerName,
        strand_id: &str,
        now_ms: i64,
    ) -> Result<Self> {
        let mut conn = pool.get()?;
        conn.begin("")?;
        // One create of a name at a time, across servers.
        conn.execute(
            "SELECT pg_advisory_xact_lock(7243011, hashtext($1))",
            &[&name.as_str()],
        )?;
        let old = conn.query_opt(
            &format!(
                "SELECT d.schema_name,
                        EXISTS (SELECT 1 FROM qldb_catalog.ledgers l WHERE l.name = d.name)
                        OR d.created_at > now() - interval '{ORPHAN_AGE}'
                 FROM qldb_catalog.ledger_data d WHERE d.name = $1"
            ),
            &[&name.as_str()],
        )?;
        if let Some(old) = old {
            let (old, in_use): (String, bool) = (old.get(0), old.get(1));
            if in_use {
                return Err(StorageError::Unavailable(format!(
                    "ledger {} is being created by another server",
                    name.as_str()
                )));
            }
            conn.batch(&format!("DROP SCHEMA IF EXISTS {old} CASCADE"))?;
            conn.execute(
                "DELETE FROM qldb_catalog.ledger_data WHERE name = $1",
                &[&name.as_str()],
            )?;
        }
        let n: i64 = conn
            .query_one("SELECT nextval('qldb_catalog.ledger_schema_no')", &[])?
            .get(0);
        let schema = format!("qldb_l{n}");
        migrate(&mut conn, &schema, LEDGER_MIGRATIONS)?;
        for (k, v) in [("ledger_name", name.as_str()), ("strand_id", strand_id)] {
            conn.execute(
                &format!("INSERT INTO {schema}.meta (key, value) VALUES ($1, $2)"),
                &[&k, &v],
            )?;
        }
        let db = PgLedger::new(pool.clone(), name, schema, strand_id.to_string());
        db.append_block(
            &mut conn,
            &genesis_block(strand_id, name.as_str(), now_ms),
            Vec::new(),
        )?;
        conn.execute(
            "INSERT INTO qldb_catalog.ledger_data (name, schema_name) VALUES ($1, $2)",
            &[&name.as_str(), &db.schema],
        )?;
        conn.commit()?;
        drop(conn);
        Ok(db)
    }

    /// Opens the ledger in `schema`, bringing its tables up to date; refuses one whose
    /// identity or journal tip is missing.
    pub fn open(pool: Arc<Pool>, name: &LedgerName, schema: String) -> Result<Self> {
        let mut conn = pool.get()?;
        conn.begin("")?;
        migrate(&mut conn, &schema, LEDGER_MIGRATIONS)?;
        let meta = |conn: &mut PgConn, key: &str| -> Result<Option<String>> {
            Ok(conn
                .query_opt(
                    &format!("SELECT value FROM {schema}.meta WHERE key = $1"),
                    &[&key],
                )?
                .map(|r| r.get(0)))
        };
        let (stored_name, strand) = (
            meta(&mut conn, "ledger_name")?,
            meta(&mut conn, "strand_id")?,
        );
        let strand = match (stored_name, strand) {
            (Some(n), Some(s)) if n == name.as_str() => s,
            _ => {
                return Err(StorageError::Corrupt(format!(
                    "ledger {} (PostgreSQL schema {schema}) cannot be served: its meta table \
                     does not name this ledger and its strand",
                    name.as_str()
                )))
            }
        };
        conn.commit()?;
        drop(conn);
        let db = PgLedger::new(pool.clone(), name, schema, strand);
        let mut conn = pool.get()?;
        let any: bool = conn
            .query_one(&db.q("SELECT EXISTS (SELECT 1 FROM {s}.blocks)"), &[])?
            .get(0);
        if !any {
            return Err(StorageError::Corrupt(format!(
                "ledger {} (PostgreSQL schema {}) cannot be served: its journal has no blocks",
                name.as_str(),
                db.schema
            )));
        }
        drop(conn);
        Ok(db)
    }

    /// Fails, and closes this handle (its sessions end; the control plane opens the ledger
    /// again), unless `named` (the ledger's data as the catalog says) is this handle's schema.
    fn still_named(&self, named: Option<&str>) -> Result<()> {
        if named == Some(self.schema.as_str()) {
            return Ok(());
        }
        self.closed.store(true, Ordering::SeqCst);
        Err(StorageError::Unavailable(REPLACED.into()))
    }

    /// `sql` with `{s}` naming this ledger's schema.
    fn q(&self, sql: &str) -> String {
        sql.replace("{s}", &self.schema)
    }

    /// The journal's tip; fails, closing this handle, once its schema is no longer the
    /// ledger's data (a rebuild on the shared database replaced it).
    fn tip_on(&self, conn: &mut PgConn) -> Result<Tip> {
        let row = conn.query_one(
            &self.q(
                "SELECT seq, block_hash, (SELECT schema_name FROM qldb_catalog.ledger_data
                                          WHERE name = $1)
                 FROM {s}.blocks ORDER BY seq DESC LIMIT 1",
            ),
            &[&self.name],
        )?;
        self.still_named(row.get(2))?;
        Ok(Tip {
            strand_id: self.strand.clone(),
            last_seq: row.get::<_, i64>(0) as u64,
            last_hash: row.get(1),
        })
    }

    /// The table catalog with each table's indexes, in creation order (one round trip).
    fn tables_on(&self, conn: &mut PgConn) -> Result<Vec<TableInfo>> {
        let rows = conn.query(
            &self.q(
                "SELECT false AS is_index, table_id, name, status, created_seq, table_no
                 FROM {s}.tables
                 UNION ALL
                 SELECT true, index_id, table_id, field, created_seq, index_no FROM {s}.indexes
                 ORDER BY 1, 5, 6",
            ),
            &[],
        )?;
        let mut out: Vec<TableInfo> = Vec::new();
        for r in &rows {
            if !r.get::<_, bool>(0) {
                out.push(TableInfo {
                    table_id: r.get(1),
                    name: r.get(2),
                    active: r.get::<_, &str>(3) == "ACTIVE",
                    indexes: Vec::new(),
                });
            } else {
                let table_id: &str = r.get(2);
                if let Some(t) = out.iter_mut().find(|t| t.table_id == table_id) {
                    t.indexes.push(IndexInfo {
                        index_id: r.get(1),
                        field: r.get(3),
                    });
                }
            }
        }
        Ok(out)
    }

    fn document_on(&self, conn: &mut PgConn, doc_id: &str) -> Result<Option<StoredDoc>> {
        conn.query_opt(
            &self.q("SELECT t.table_id, d.version, d.data FROM {s}.documents d
                 JOIN {s}.tables t ON t.table_no = d.table_no WHERE d.doc_id = $1"),
            &[&doc_id],
        )?
        .map(|r| {
            Ok(StoredDoc {
                doc_id: doc_id.to_string(),
                table_id: r.get(0),
                version: r.get::<_, i64>(1) as u64,
                data: decode_doc(r.get(2))?,
            })
        })
        .transpose()
    }

    fn scan_page_on(
        &self,
        conn: &mut PgConn,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        let rows = conn.query(
            &self.q("SELECT pos, doc_id, version, data FROM {s}.documents
                 WHERE table_no = (SELECT table_no FROM {s}.tables WHERE table_id = $1)
                   AND pos > $2
                 ORDER BY pos LIMIT $3"),
            &[&table_id, &after, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        let mut page = ScanPage {
            last: after,
            ..ScanPage::default()
        };
        for r in &rows {
            page.read += 1;
            page.last = r.get(0);
            let doc_id: &str = r.get(1);
            let data: &[u8] = r.get(3);
            if keep.is_some_and(|keep| !keep(doc_id, data)) {
                continue;
            }
            page.docs.push(StoredDoc {
                doc_id: doc_id.to_string(),
                table_id: table_id.to_string(),
                version: r.get::<_, i64>(2) as u64,
                data: decode_doc(data)?,
            });
        }
        Ok(page)
    }

    fn index_lookup_on(
        &self,
        conn: &mut PgConn,
        index_id: &str,
        key: &[u8],
        limit: usize,
    ) -> Result<Vec<StoredDoc>> {
        const LOOKUP: &str =
            "SELECT d.doc_id, t.table_id, d.version, d.data FROM {s}.index_entries e
                 JOIN {s}.documents d ON d.doc_id = e.doc_id
                 JOIN {s}.tables t ON t.table_no = d.table_no
                 WHERE e.index_no = (SELECT index_no FROM {s}.indexes WHERE index_id = $1)
                   AND e.key = $2";
        // A LIMIT only when one is asked for: a generic plan assumes a parameter LIMIT
        // fetches a tenth of the rows, which would tilt the planner for every lookup.
        let rows = match i64::try_from(limit) {
            Ok(limit) if limit < i64::MAX => conn.query(
                &self.q(&format!("{LOOKUP} LIMIT $3")),
                &[&index_id, &key, &limit],
            )?,
            _ => conn.query(&self.q(LOOKUP), &[&index_id, &key])?,
        };
        rows.iter()
            .map(|r| {
                Ok(StoredDoc {
                    doc_id: r.get(0),
                    table_id: r.get(1),
                    version: r.get::<_, i64>(2) as u64,
                    data: decode_doc(r.get(3))?,
                })
            })
            .collect()
    }

    fn node(&self, conn: &mut PgConn, level: u32, idx: u64) -> Result<Hash> {
        Ok(conn
            .query_one(
                &self.q("SELECT hash FROM {s}.merkle WHERE level = $1 AND idx = $2"),
                &[&(level as i32), &(idx as i64)],
            )?
            .get(0))
    }

    /// Stores a block and the digest-tree nodes it completes.
    fn append_block(&self, conn: &mut PgConn, block: &Block, hashes: Vec<Hash>) -> Result<()> {
        let seq = block.address.sequence_no;
        let (ion, block_hash) = block.to_ion_and_hash_with(hashes);
        conn.execute(
            &self.q("INSERT INTO {s}.blocks (seq, tx_id, ts_ms, block_hash, ion) VALUES ($1, $2, $3, $4, $5)"),
            &[
                &(seq as i64),
                &block.transaction_id,
                &block.timestamp_ms,
                &block_hash,
                &pack_block(&encode_one(&ion)),
            ],
        )?;
        let nodes = merkle::append(seq, block_hash, |l, i| self.node(conn, l, i))?;
        for (level, idx, hash) in nodes {
            conn.execute(
                &self.q("INSERT INTO {s}.merkle (level, idx, hash) VALUES ($1, $2, $3)"),
                &[&(level as i32), &(idx as i64), &hash],
            )?;
        }
        Ok(())
    }

    fn index_no(&self, conn: &mut PgConn, index_id: &str) -> Result<Option<i32>> {
        Ok(conn
            .query_opt(
                &self.q("SELECT index_no FROM {s}.indexes WHERE index_id = $1"),
                &[&index_id],
            )?
            .map(|r| r.get(0)))
    }

    fn exists(
        &self,
        conn: &mut PgConn,
        sql: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Result<bool> {
        Ok(conn
            .query_one(&self.q(&format!("SELECT EXISTS ({sql})")), params)?
            .get(0))
    }

    /// Checks `req`'s reads and catalog changes against the state `conn` sees.
    /// The first of `reads` that a later commit changed, in words: every check in one
    /// statement (one round trip, one snapshot).
    fn reads_conflict(&self, conn: &mut PgConn, reads: &[ReadCheck]) -> Result<Option<String>> {
        if reads.is_empty() {
            return Ok(None);
        }
        let (mut doc_ids, mut versions) = (Vec::new(), Vec::new());
        let (mut table_ids, mut table_as_of) = (Vec::new(), Vec::new());
        let (mut index_ids, mut keys, mut key_as_of) = (Vec::new(), Vec::new(), Vec::new());
        let mut catalog_as_of: Option<i64> = None;
        for read in reads {
            match read {
                ReadCheck::Doc { doc_id, version } => {
                    doc_ids.push(doc_id.as_str());
                    versions.push(version.map(|v| v as i64));
                }
                ReadCheck::Table { table_id, as_of } => {
                    table_ids.push(table_id.as_str());
                    table_as_of.push(*as_of as i64);
                }
                ReadCheck::IndexKey {
                    index_id,
                    key,
                    as_of,
                } => {
                    index_ids.push(index_id.as_str());
                    keys.push(key.as_slice());
                    key_as_of.push(*as_of as i64);
                }
                ReadCheck::Catalog { as_of } => {
                    let as_of = *as_of as i64;
                    catalog_as_of = Some(catalog_as_of.map_or(as_of, |c| c.min(as_of)));
                }
            }
        }
        // A document's version is not the one seen (or it came or went); a scanned table
        // was written since; an index lookup's key changed since, or its index was dropped
        // (its entries are gone: a lookup that raced with the drop may have found nothing);
        // the catalog changed since. Only the kinds of check present are in the statement.
        // (A key's record is a subquery: as a join, PostgreSQL's plan found the key by
        // scanning every record of its index.)
        use ::postgres::types::ToSql;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        /// `p` as the statement's next parameter; its `$n`.
        fn mark<'p>(params: &mut Vec<&'p (dyn ToSql + Sync)>, p: &'p (dyn ToSql + Sync)) -> String {
            params.push(p);
            format!("${}", params.len())
        }
        let mut branches = Vec::new();
        if !doc_ids.is_empty() {
            let (ids, vs) = (mark(&mut params, &doc_ids), mark(&mut params, &versions));
            branches.push(format!(
                "SELECT 'document ' || x.id || ' changed'
                 FROM unnest({ids}::text[], {vs}::bigint[]) AS x(id, v)
                 LEFT JOIN {{s}}.documents d ON d.doc_id = x.id
                 WHERE d.version IS DISTINCT FROM x.v"
            ));
        }
        if !table_ids.is_empty() {
            let (ids, as_of) = (
                mark(&mut params, &table_ids),
                mark(&mut params, &table_as_of),
            );
            branches.push(format!(
                "SELECT 'table ' || x.id || ' changed'
                 FROM unnest({ids}::text[], {as_of}::bigint[]) AS x(id, as_of)
                 JOIN {{s}}.tables t ON t.table_id = x.id
                 WHERE t.modified_seq > x.as_of"
            ));
        }
        if !index_ids.is_empty() {
            let (ids, ks, as_of) = (
                mark(&mut params, &index_ids),
                mark(&mut params, &keys),
                mark(&mut params, &key_as_of),
            );
            branches.push(format!(
                "SELECT 'index ' || x.id || CASE WHEN i.index_no IS NULL THEN ' was dropped'
                                                  ELSE ' changed' END
                 FROM unnest({ids}::text[], {ks}::bytea[], {as_of}::bigint[]) AS x(id, key, as_of)
                 LEFT JOIN {{s}}.indexes i ON i.index_id = x.id
                 WHERE i.index_no IS NULL
                    OR (SELECT k.seq FROM {{s}}.index_key_seq k
                        WHERE k.index_no = i.index_no AND k.key = x.key) > x.as_of"
            ));
        }
        if let Some(as_of) = &catalog_as_of {
            let as_of = mark(&mut params, as_of);
            branches.push(format!(
                "SELECT 'the table catalog changed'
                 WHERE EXISTS (SELECT 1 FROM {{s}}.tables WHERE modified_seq > {as_of}::bigint
                               UNION ALL
                               SELECT 1 FROM {{s}}.indexes WHERE created_seq > {as_of}::bigint)"
            ));
        }
        let sql = format!("{} LIMIT 1", branches.join(" UNION ALL "));
        let row = conn.query_opt(&self.q(&sql), &params)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn validate_on(
        &self,
        conn: &mut PgConn,
        req: &CommitRequest,
    ) -> std::result::Result<(), CommitError> {
        let conflict = |what: String| Err(CommitError::Conflict(what));
        if let Some(what) = self.reads_conflict(conn, &req.reads)? {
            return conflict(what);
        }
        let active_named = "SELECT 1 FROM {s}.tables WHERE name = $1 AND status = 'ACTIVE'";
        for (_, name) in &req.new_tables {
            if self.exists(conn, active_named, &[name])? {
                return conflict(format!("table {name} was created concurrently"));
            }
        }
        for (table_id, active) in &req.table_status {
            let row = conn.query_opt(
                &self.q("SELECT name, status FROM {s}.tables WHERE table_id = $1"),
                &[table_id],
            )?;
            let new_table = req.new_tables.iter().any(|(id, _)| id == table_id);
            match row.map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))) {
                Some((_, status)) if (status == "ACTIVE") == *active => {
                    return conflict(format!(
                        "table {table_id} was dropped or undropped concurrently"
                    ))
                }
                Some((name, _)) if *active && self.exists(conn, active_named, &[&name])? => {
                    return conflict(format!("an active table {name} was created concurrently"));
                }
                None if !new_table => {
                    return conflict(format!("table {table_id} does not exist"));
                }
                _ => {}
            }
        }
        for (index_id, _) in &req.dropped_indexes {
            let exists = self.index_no(conn, index_id)?.is_some();
            if !exists && !req.new_indexes.iter().any(|(id, _, _)| id == index_id) {
                return conflict(format!("index {index_id} was dropped concurrently"));
            }
        }
        for (_, table_id, field) in &req.new_indexes {
            if self.exists(
                conn,
                "SELECT 1 FROM {s}.indexes WHERE table_id = $1 AND field = $2",
                &[table_id, field],
            )? {
                return conflict(format!("an index on {field} was created concurrently"));
            }
        }
        Ok(())
    }

    /// Adds the entries of every live document of a table to an index.
    fn index_documents(
        &self,
        conn: &mut PgConn,
        index_no: i32,
        table_id: &str,
        field: &str,
    ) -> Result<()> {
        let docs = conn.query(
            &self.q("SELECT doc_id, data FROM {s}.documents
                 WHERE table_no = (SELECT table_no FROM {s}.tables WHERE table_id = $1)"),
            &[&table_id],
        )?;
        for r in &docs {
            let doc_id: &str = r.get(0);
            if let Some(v) = decode_doc(r.get(1))?.field(field) {
                conn.execute(
                    &self.q("INSERT INTO {s}.index_entries (index_no, key, doc_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
                    &[&index_no, &index_key(v), &doc_id],
                )?;
            }
        }
        Ok(())
    }

    /// Validates one request inside the batch's transaction (seeing the batch's earlier
    /// commits) and applies it.
    fn apply(
        &self,
        conn: &mut PgConn,
        req: &CommitRequest,
    ) -> std::result::Result<Committed, CommitError> {
        let tip = self.tip_on(conn)?;
        self.validate_on(conn, req)?;
        let mut block = BlockBuilder::new(req, &tip);
        let seq = block.seq() as i64;
        for (table_id, name) in &req.new_tables {
            conn.execute(
                &self.q(
                    "INSERT INTO {s}.tables (table_no, table_id, name, status, created_seq, modified_seq)
                     VALUES ((SELECT coalesce(max(table_no), 0) + 1 FROM {s}.tables), $1, $2, 'ACTIVE', $3, $3)",
                ),
                &[table_id, name, &seq],
            )?;
            block.table(table_id, 0, name, "ACTIVE");
        }
        for (table_id, active) in &req.table_status {
            let status = if *active { "ACTIVE" } else { "INACTIVE" };
            let r = conn.query_one(
                &self.q(
                    "UPDATE {s}.tables SET status = $2, modified_seq = $3, version = version + 1
                     WHERE table_id = $1 RETURNING name, version",
                ),
                &[table_id, &status, &seq],
            )?;
            block.table(table_id, r.get::<_, i64>(1) as u64, r.get(0), status);
        }
        for (index_id, table_id) in &req.dropped_indexes {
            if let Some(no) = self.index_no(conn, index_id)? {
                for table in ["index_entries", "index_key_seq"] {
                    conn.execute(
                        &self.q(&format!("DELETE FROM {{s}}.{table} WHERE index_no = $1")),
                        &[&no],
                    )?;
                }
            }
            conn.execute(
                &self.q("DELETE FROM {s}.indexes WHERE index_id = $1"),
                &[index_id],
            )?;
            conn.execute(
                &self.q("UPDATE {s}.tables SET modified_seq = $2 WHERE table_id = $1"),
                &[table_id, &seq],
            )?;
        }
        for (index_id, table_id, field) in &req.new_indexes {
            let no: i32 = conn
                .query_one(
                    &self.q(
                        "INSERT INTO {s}.indexes (index_no, index_id, table_id, field, status, created_seq)
                         VALUES ((SELECT coalesce(max(index_no), 0) + 1 FROM {s}.indexes), $1, $2, $3, 'ONLINE', $4)
                         RETURNING index_no",
                    ),
                    &[index_id, table_id, field, &seq],
                )?
                .get(0);
            self.index_documents(conn, no, table_id, field)?;
        }

        // Each table's indexes: (index number, field).
        let mut indexes: HashMap<String, Vec<(i32, String)>> = HashMap::new();
        for r in conn.query(
            &self.q("SELECT index_no, table_id, field FROM {s}.indexes"),
            &[],
        )? {
            indexes
                .entry(r.get(1))
                .or_default()
                .push((r.get(0), r.get(2)));
        }
        for w in &req.writes {
            let old = conn
                .query_opt(
                    &self.q("SELECT data FROM {s}.documents WHERE doc_id = $1"),
                    &[&w.doc_id],
                )?
                .map(|r| decode_doc(r.get(0)))
                .transpose()?;
            for (no, field) in indexes.get(&w.table_id).into_iter().flatten() {
                let old_key = old.as_ref().and_then(|d| d.field(field)).map(index_key);
                let new_key = w.data.as_ref().and_then(|d| d.field(field)).map(index_key);
                if old_key == new_key {
                    continue;
                }
                if let Some(k) = &old_key {
                    conn.execute(
                        &self.q("DELETE FROM {s}.index_entries WHERE index_no = $1 AND key = $2 AND doc_id = $3"),
                        &[no, k, &w.doc_id],
                    )?;
                }
                if let Some(k) = &new_key {
                    conn.execute(
                        &self.q("INSERT INTO {s}.index_entries (index_no, key, doc_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"),
                        &[no, k, &w.doc_id],
                    )?;
                }
                // Which block last changed each key: the OCC check of index lookups.
                for k in [old_key, new_key].iter().flatten() {
                    conn.execute(
                        &self.q(
                            "INSERT INTO {s}.index_key_seq (index_no, key, seq) VALUES ($1, $2, $3)
                             ON CONFLICT (index_no, key) DO UPDATE SET seq = excluded.seq",
                        ),
                        &[no, k, &seq],
                    )?;
                }
            }
            let rev = block.document(w);
            let table_no: i32 = conn
                .query_opt(
                    &self.q("UPDATE {s}.tables SET modified_seq = $2 WHERE table_id = $1 RETURNING table_no"),
                    &[&w.table_id, &seq],
                )?
                .map(|r| r.get(0))
                .ok_or_else(|| {
                    CommitError::Conflict(format!("table {} does not exist", w.table_id))
                })?;
            match &rev.encoded {
                Some(data) => {
                    conn.execute(
                        &self.q(
                            "INSERT INTO {s}.documents (doc_id, pos, table_no, version, data)
                             VALUES ($1, nextval('{s}.doc_pos'), $2, $3, $4)
                             ON CONFLICT (doc_id) DO UPDATE SET version = excluded.version, data = excluded.data",
                        ),
                        &[&w.doc_id, &table_no, &(w.version as i64), data],
                    )?;
                }
                None => {
                    conn.execute(
                        &self.q("DELETE FROM {s}.documents WHERE doc_id = $1"),
                        &[&w.doc_id],
                    )?;
                }
            }
            // The block holds the data; `documents` holds the current state. The
            // transaction's id and time are the block's: NULL.
            conn.execute(
                &self.q(
                    "INSERT INTO {s}.revisions (doc_id, version, table_no, seq, position, hash, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ),
                &[
                    &w.doc_id,
                    &(w.version as i64),
                    &table_no,
                    &seq,
                    &(rev.position as i32),
                    &rev.hash,
                    &rev.encoded.as_ref().map(|_| DATA_IN_BLOCK),
                ],
            )?;
        }
        if let Some(r) = &req.redaction {
            self.apply_redaction(conn, r, seq)?;
        }
        let (block, hashes) = block.finish();
        self.append_block(conn, &block, hashes)?;
        Ok(Committed {
            sequence_no: seq as u64,
        })
    }

    /// Removes a revision's data everywhere it is stored (its row and its block's Ion),
    /// keeping its data hash so that every hash and proof still verifies.
    fn apply_redaction(
        &self,
        conn: &mut PgConn,
        r: &RevisionRef,
        redacting_seq: i64,
    ) -> std::result::Result<(), CommitError> {
        let changed = conn.execute(
            &self.q("UPDATE {s}.revisions SET data = NULL, redacted_seq = $3
                 WHERE doc_id = $1 AND version = $2 AND data IS NOT NULL AND redacted_seq IS NULL"),
            &[&r.doc_id, &(r.version as i64), &redacting_seq],
        )?;
        if changed != 1 {
            return Err(CommitError::Conflict(redaction_conflict(r)));
        }
        let stored: Vec<u8> = conn
            .query_one(
                &self.q("SELECT ion FROM {s}.blocks WHERE seq = $1"),
                &[&(r.seq as i64)],
            )?
            .get(0);
        let mut block = decode_block(&stored)?;
        let data_hash = redact_in_block(&mut block, &r.doc_id, r.version);
        conn.execute(
            &self.q("UPDATE {s}.blocks SET ion = $2 WHERE seq = $1"),
            &[&(r.seq as i64), &pack_block(&encode_one(&block))],
        )?;
        if let Some(h) = data_hash {
            conn.execute(
                &self.q(
                    "UPDATE {s}.revisions SET data_hash = $3 WHERE doc_id = $1 AND version = $2",
                ),
                &[&r.doc_id, &(r.version as i64), &h],
            )?;
        }
        Ok(())
    }

    /// Commits `batch` in one PostgreSQL transaction holding the ledger's row lock, each
    /// request in a savepoint of its own when there are several (a conflict or error undoes
    /// only that one), and answers each once COMMIT has returned.
    fn commit_batch(&self, batch: Vec<Pending<CommitRequest>>) {
        let mut answers = Vec::with_capacity(batch.len());
        let outcome = (|| -> std::result::Result<(), BatchFailure> {
            let before = |e: StorageError| BatchFailure::Before(super::describe(&e));
            let mut conn = self.pool.get().map_err(before)?;
            // A server that stalls while it holds the ledger's lock is ended by PostgreSQL,
            // which releases the lock for the other servers (set with BEGIN: one round trip).
            conn.begin("; SET LOCAL idle_in_transaction_session_timeout = '60s'")
                .map_err(before)?;
            // The ledger's writer lock, across every process serving the database; the
            // database's in-service lock shared (none while a rebuild works: its commits
            // would be lost); and the ledger's data as the catalog names it now.
            let row = conn
                .query_one(
                    &self.q(&format!(
                        "SELECT pg_try_advisory_xact_lock_shared({}),
                                (SELECT schema_name FROM qldb_catalog.ledger_data WHERE name = $1)
                         FROM {{s}}.meta WHERE key = 'strand_id' FOR UPDATE",
                        super::IN_SERVICE
                    )),
                    &[&self.name],
                )
                .map_err(before)?;
            if !row.get::<_, bool>(0) {
                return Err(BatchFailure::Before(
                    "a qldb-local rebuild is running on the database".into(),
                ));
            }
            self.still_named(row.get(1))
                .map_err(|e| BatchFailure::Before(e.to_string()))?;
            // A request alone needs no savepoint: if it fails, the transaction is rolled back.
            let alone = batch.len() == 1;
            for p in &batch {
                if !alone {
                    conn.batch("SAVEPOINT one").map_err(before)?;
                }
                let answer = self.apply(&mut conn, &p.req);
                let end = if answer.is_ok() {
                    "RELEASE SAVEPOINT one"
                } else {
                    "ROLLBACK TO SAVEPOINT one"
                };
                // A connection that cannot end the savepoint ends the batch: nothing of it
                // is committed.
                if !alone {
                    conn.batch(end).map_err(before)?;
                }
                answers.push(answer);
            }
            if answers.iter().any(|a| a.is_ok()) {
                conn.commit()
                    .map_err(|e| BatchFailure::AtCommit(super::describe(&e)))?;
                self.commits.fetch_add(1, Ordering::Relaxed);
            } else {
                conn.rollback().map_err(before)?;
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => {
                let committed = answers.iter().filter(|a| a.is_ok()).count() as u64;
                self.transactions.fetch_add(committed, Ordering::Relaxed);
                for (p, a) in batch.iter().zip(answers) {
                    p.answer(a);
                }
            }
            Err(failure) => {
                let why = match &failure {
                    BatchFailure::Before(e) => format!(
                        "The transaction was not committed: the ledger's storage failed while \
                         committing it ({e}); nothing of it was written"
                    ),
                    // The connection may have been lost after PostgreSQL committed.
                    BatchFailure::AtCommit(e) => format!(
                        "The ledger's storage failed while making the transaction durable ({e}); \
                         it may or may not have been committed"
                    ),
                };
                tracing::error!(error = %why, transactions = batch.len(), ledger = %self.name, "a group commit failed");
                for p in &batch {
                    p.answer(Err(CommitError::Storage(StorageError::CommitFailed(
                        why.clone(),
                    ))));
                }
            }
        }
    }

    fn revision_views(&self, sql: &str, table_id: &str) -> Result<Vec<Value>> {
        let mut conn = self.pool.get()?;
        let rows = conn.query(&self.q(sql), &[&table_id])?;
        let mut last = None;
        let mut read_block = |seq: i64| -> Result<Vec<u8>> {
            Ok(conn
                .query_one(
                    &self.q("SELECT ion FROM {s}.blocks WHERE seq = $1"),
                    &[&seq],
                )?
                .get(0))
        };
        rows.iter()
            .map(|r| {
                let row = RevisionRow {
                    doc_id: r.get("doc_id"),
                    version: r.get("version"),
                    seq: r.get("seq"),
                    position: r.get::<_, i32>("position") as i64,
                    tx_time_ms: r.get("tx_time_ms"),
                    tx_id: r.get("tx_id"),
                    hash: r.get("hash"),
                    data: r.get("data"),
                    data_hash: r.get("data_hash"),
                    redacted: r.get("redacted"),
                };
                revision_view(&self.strand, row, &mut last, &mut read_block)
            })
            .collect()
    }
}

/// Why a group commit's transaction did not commit.
enum BatchFailure {
    /// Before COMMIT: nothing of the batch is written.
    Before(String),
    /// COMMIT itself failed.
    AtCommit(String),
}

/// Reads of one REPEATABLE READ transaction.
struct PgSnapshot<'a> {
    db: &'a PgLedger,
    conn: std::cell::RefCell<super::Pooled<'a>>,
}

impl Snapshot for PgSnapshot<'_> {
    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>> {
        self.db.document_on(&mut self.conn.borrow_mut(), doc_id)
    }

    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>> {
        self.db
            .index_lookup_on(&mut self.conn.borrow_mut(), index_id, key, limit)
    }

    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        self.db
            .scan_page_on(&mut self.conn.borrow_mut(), table_id, after, limit, keep)
    }
}

impl LedgerStore for PgLedger {
    fn tip(&self) -> Result<Tip> {
        self.tip_on(&mut *self.pool.get()?)
    }

    fn tables(&self) -> Result<Vec<TableInfo>> {
        self.tables_on(&mut *self.pool.get()?)
    }

    fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>> {
        self.document_on(&mut *self.pool.get()?, doc_id)
    }

    fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        self.scan_page_on(&mut *self.pool.get()?, table_id, after, limit, keep)
    }

    fn snapshot(&self) -> Result<Option<Box<dyn Snapshot + '_>>> {
        let mut conn = self.pool.get()?;
        conn.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        Ok(Some(Box::new(PgSnapshot {
            db: self,
            conn: std::cell::RefCell::new(conn),
        })))
    }

    fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>> {
        self.index_lookup_on(&mut *self.pool.get()?, index_id, key, limit)
    }

    fn count_docs(&self, table_id: &str, cap: u64) -> Result<u64> {
        let n: i64 = self
            .pool
            .get()?
            .query_one(
                &self.q("SELECT count(*) FROM (SELECT 1 FROM {s}.documents
                     WHERE table_no = (SELECT table_no FROM {s}.tables WHERE table_id = $1)
                     LIMIT $2) AS capped"),
                &[&table_id, &i64::try_from(cap).unwrap_or(i64::MAX)],
            )?
            .get(0);
        Ok(n as u64)
    }

    fn committed_view(&self, table_id: &str) -> Result<Vec<Value>> {
        // The current state is the latest revision's data: read from `documents`.
        self.revision_views(
            "SELECT r.doc_id, r.version, r.seq, r.position,
                    coalesce(r.tx_time_ms, b.ts_ms) AS tx_time_ms,
                    coalesce(r.tx_id, b.tx_id) AS tx_id, r.hash,
                    d.data, r.data_hash, r.redacted_seq IS NOT NULL AS redacted
             FROM {s}.documents d
             JOIN {s}.revisions r ON r.doc_id = d.doc_id AND r.version = d.version
             LEFT JOIN {s}.blocks b ON b.seq = r.seq
             WHERE d.table_no = (SELECT table_no FROM {s}.tables WHERE table_id = $1)
             ORDER BY d.pos",
            table_id,
        )
    }

    fn history(&self, table_id: &str) -> Result<Vec<Value>> {
        self.revision_views(
            "SELECT r.doc_id, r.version, r.seq, r.position,
                    coalesce(r.tx_time_ms, b.ts_ms) AS tx_time_ms,
                    coalesce(r.tx_id, b.tx_id) AS tx_id, r.hash,
                    r.data, r.data_hash, r.redacted_seq IS NOT NULL AS redacted
             FROM {s}.revisions r LEFT JOIN {s}.blocks b ON b.seq = r.seq
             WHERE r.table_no = (SELECT table_no FROM {s}.tables WHERE table_id = $1)
             ORDER BY r.seq, r.position",
            table_id,
        )
    }

    fn revision_at(&self, seq: u64, doc_id: &str) -> Result<Option<RevisionRef>> {
        let row = self.pool.get()?.query_opt(
            &self.q(
                "SELECT t.table_id, r.version, r.data IS NOT NULL, r.redacted_seq IS NOT NULL,
                        NOT EXISTS (SELECT 1 FROM {s}.revisions n
                                    WHERE n.doc_id = r.doc_id AND n.version > r.version)
                 FROM {s}.revisions r JOIN {s}.tables t ON t.table_no = r.table_no
                 WHERE r.doc_id = $1 AND r.seq = $2",
            ),
            &[&doc_id, &(seq as i64)],
        )?;
        Ok(row.map(|r| RevisionRef {
            seq,
            table_id: r.get(0),
            doc_id: doc_id.to_string(),
            version: r.get::<_, i64>(1) as u64,
            has_data: r.get(2),
            redacted: r.get(3),
            is_latest: r.get(4),
        }))
    }

    fn validate(&self, reads: &[ReadCheck]) -> std::result::Result<(), CommitError> {
        // One statement: its own snapshot.
        match self.reads_conflict(&mut *self.pool.get()?, reads)? {
            Some(what) => Err(CommitError::Conflict(what)),
            None => Ok(()),
        }
    }

    fn queue_commit(&self, req: CommitRequest) -> (CommitTicket, bool) {
        self.group.queue(req)
    }

    fn lead_commits(&self, until: Option<&CommitTicket>) -> bool {
        self.group.lead(
            |batch| {
                // Each request is a savepoint (a subtransaction): PostgreSQL keeps 64 per
                // transaction in its snapshots' fast path.
                let batch = batch.take_up_to(MAX_BATCH);
                if !batch.is_empty() {
                    self.commit_batch(batch);
                }
            },
            until,
        )
    }

    fn commit_counts(&self) -> (u64, u64) {
        (
            self.transactions.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }

    fn digest(&self) -> Result<(u64, Hash)> {
        let mut conn = self.pool.get()?;
        conn.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let tip = self.tip_on(&mut conn)?;
        let d = merkle::root(tip.last_seq + 1, |l, i| self.node(&mut conn, l, i))?;
        Ok((tip.last_seq, d))
    }

    fn digest_at(&self, tip: u64) -> Result<Hash> {
        let mut conn = self.pool.get()?;
        merkle::root(tip + 1, |l, i| self.node(&mut conn, l, i))
    }

    fn blocks(&self) -> Result<BTreeMap<u64, Value>> {
        let rows = self
            .pool
            .get()?
            .query(&self.q("SELECT seq, ion FROM {s}.blocks ORDER BY seq"), &[])?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i64>(0) as u64, decode_block(r.get(1))?)))
            .collect()
    }

    fn block(&self, seq: u64) -> Result<Option<Value>> {
        self.pool
            .get()?
            .query_opt(
                &self.q("SELECT ion FROM {s}.blocks WHERE seq = $1"),
                &[&(seq as i64)],
            )?
            .map(|r| decode_block(r.get(0)))
            .transpose()
    }

    fn blocks_in_window(
        &self,
        from_seq: u64,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(u64, i64, Value)>> {
        let rows = self.pool.get()?.query(
            &self.q("SELECT seq, ts_ms, ion FROM {s}.blocks
                 WHERE seq >= $1 AND ts_ms >= $2 AND ($3::bigint IS NULL OR ts_ms < $3)
                 ORDER BY seq LIMIT $4"),
            &[
                &(from_seq as i64),
                &start_ms,
                &end_ms,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )?;
        rows.iter()
            .map(|r| Ok((r.get::<_, i64>(0) as u64, r.get(1), decode_block(r.get(2))?)))
            .collect()
    }

    fn count_in_window(&self, from_seq: u64, start_ms: i64, end_ms: i64) -> Result<u64> {
        let n: i64 = self
            .pool
            .get()?
            .query_one(
                &self.q(
                    "SELECT count(*) FROM {s}.blocks WHERE seq >= $1 AND ts_ms >= $2 AND ts_ms < $3",
                ),
                &[&(from_seq as i64), &start_ms, &end_ms],
            )?
            .get(0);
        Ok(n as u64)
    }

    fn block_proof(&self, seq: u64, tip: u64) -> Result<Vec<Hash>> {
        let mut conn = self.pool.get()?;
        merkle::audit_path(seq, tip + 1, |l, i| self.node(&mut conn, l, i))
    }

    fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn remove(&self) -> Result<()> {
        self.mark_closed();
        drop_data(&self.pool, &self.name, &self.schema)
    }
}
