//! A ledger's journal and current state in its SQLite file: the table catalog, live
//! documents, every revision, secondary indexes, blocks and the digest tree.
//!
//! Commits go through the ledger's one write connection (its mutex is the single writer).
//! Commits that arrive while it is busy are committed together (group commit): each
//! validates its read set and applies its writes in one SQLite transaction (a request whose
//! writes fail has the batch applied again without it), and all are durable (one fsync)
//! before any [`LedgerDb::commit`] returns.
//! Reads use pooled read-only connections; the tip and the table catalog come from memory,
//! replaced by the writer after each commit.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};

use super::stored::{decode_block, pack_block, DATA_IN_BLOCK};
use super::LedgerDb;
use crate::ion::binary::encode_one;
use crate::ion::{Data, Value};
use crate::journal::block::*;
use crate::journal::hash::Hash;
use crate::journal::merkle;
use crate::storage::forms::{
    redact_in_block, redaction_conflict, BlockBuilder, LastBlock, PreparedBlock, RevisionRow,
};
use crate::storage::{
    index_key, CommitError, CommitRequest, Committed, IndexInfo, ReadCheck, Result, RevisionRef,
    ScanPage, StorageError, StoredDoc, TableInfo, Tip,
};

impl From<rusqlite::Error> for CommitError {
    fn from(e: rusqlite::Error) -> Self {
        CommitError::Storage(e.into())
    }
}

/// Recomputes every index entry with [`index_key`] when the schema migration asked for it
/// (keys written by an older version), in one transaction. Runs at open, before any
/// transaction can have read a key, so the per-key OCC sequence numbers start afresh.
pub(crate) fn rebuild_index_keys(conn: &mut rusqlite::Connection) -> Result<()> {
    let tx = conn.transaction()?;
    let needed: i64 = tx
        .prepare_cached("SELECT count(*) FROM index_rebuild")?
        .query_row([], |r| r.get(0))?;
    if needed == 0 {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM index_entries")?
        .execute([])?;
    tx.prepare_cached("DELETE FROM index_key_seq")?
        .execute([])?;
    let indexes: Vec<(String, String, String)> = {
        let mut stmt = tx.prepare("SELECT index_id, table_id, field FROM indexes")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut entries = 0u64;
    for (index_id, table_id, field) in &indexes {
        entries += index_documents(&tx, index_id, table_id, field)?;
    }
    tx.prepare_cached("DELETE FROM index_rebuild")?
        .execute([])?;
    tx.commit()?;
    tracing::info!(indexes = indexes.len(), entries, "rebuilt index keys");
    Ok(())
}

/// Adds the entries of every live document of a table to an index; returns how many.
pub(crate) fn index_documents(
    conn: &rusqlite::Connection,
    index_id: &str,
    table_id: &str,
    field: &str,
) -> Result<u64> {
    let docs: Vec<(String, Vec<u8>)> = {
        let mut stmt = conn.prepare(
            "SELECT doc_id, data FROM documents WHERE table_no = (SELECT table_no FROM tables WHERE table_id = ?1)",
        )?;
        let rows = stmt.query_map([table_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let index_no = index_no(conn, index_id)?;
    let mut entries = 0;
    for (doc_id, data) in docs {
        if let Some(v) = decode_doc(&data)?.field(field) {
            conn.execute(
                "INSERT OR IGNORE INTO index_entries (index_no, key, doc_id) VALUES (?1, ?2, ?3)",
                params![index_no, index_key(v), doc_id],
            )?;
            entries += 1;
        }
    }
    Ok(entries)
}

/// The number that rows name index `index_id` by.
pub(crate) fn index_no(conn: &Connection, index_id: &str) -> Result<i64> {
    conn.prepare_cached("SELECT index_no FROM indexes WHERE index_id = ?1")?
        .query_row([index_id], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .ok_or_else(|| StorageError::Corrupt(format!("index {index_id} has no number")))
}

/// The SQL that numbers a new table: one more than the highest so far.
pub(crate) const NEXT_TABLE_NO: &str = "(SELECT coalesce(max(table_no), 0) + 1 FROM tables)";
/// The SQL that numbers a new index (a dropped index's number may be given again: its entries
/// went with it).
pub(crate) const NEXT_INDEX_NO: &str = "(SELECT coalesce(max(index_no), 0) + 1 FROM indexes)";

use crate::storage::forms::decode_doc;

/// The checks a ledger file must pass before the server serves it: the schema is exactly
/// what this version's migrations make, the file names its ledger, and the journal's tip is
/// whole (blocks 0..=tip without a gap, the tip block's address and hash agree with its
/// row, and the digest tree reaches it). Cheap (a few indexed reads); the whole proof is
/// `qldb-local verify`. Returns what is wrong, in words.
pub(crate) fn open_check(conn: &Connection, ledger_name: &str) -> std::result::Result<(), String> {
    let sql = |e: rusqlite::Error| format!("cannot read it: {e}");
    // Schema: the same tables, indexes and columns as a fresh database of this version.
    // Made once per process: a freshly migrated database's schema.
    static REFERENCE: std::sync::OnceLock<std::result::Result<Schema, String>> =
        std::sync::OnceLock::new();
    let reference = REFERENCE
        .get_or_init(|| {
            let mut c = Connection::open_in_memory().map_err(|e| e.to_string())?;
            crate::storage::sqlite::schema::migrate(
                &mut c,
                crate::storage::sqlite::schema::LEDGER_MIGRATIONS,
                "reference",
            )
            .map_err(|e| e.to_string())?;
            schema_of(&c).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| format!("cannot make the reference schema: {e}"))?;
    not_older(conn)?;
    let found = schema_of(conn).map_err(sql)?;
    if found != *reference {
        let missing: Vec<&str> = reference
            .iter()
            .filter(|r| !found.contains(r))
            .map(|(_, n, _)| n.as_str())
            .collect();
        let extra: Vec<&str> = found
            .iter()
            .filter(|f| !reference.contains(f))
            .map(|(_, n, _)| n.as_str())
            .collect();
        return Err(format!(
            "its schema is not this version's (differs in: {})",
            missing
                .iter()
                .chain(extra.iter())
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let meta: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT key, value FROM meta ORDER BY key")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)?
    };
    // A ledger imported from a QLDB export also records the last imported block.
    let (imported_through, meta) = match meta.split_first() {
        Some(((k, v), rest)) if k == "imported_through" => match v.parse::<u64>() {
            Ok(t) => (Some(t), rest),
            Err(_) => return Err("its meta table's imported_through is not a block".into()),
        },
        _ => (None, meta.as_slice()),
    };
    let strand = match meta {
        [(k1, name), (k2, strand)]
            if k1 == "ledger_name" && k2 == "strand_id" && name == ledger_name =>
        {
            strand.clone()
        }
        _ => return Err("its meta table does not name this ledger and its strand".into()),
    };
    let (count, min, max): (i64, Option<i64>, Option<i64>) = conn
        .query_row("SELECT count(*), min(seq), max(seq) FROM blocks", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(sql)?;
    let (Some(0), Some(tip)) = (min, max) else {
        return Err("its journal has no genesis block".into());
    };
    if imported_through.is_some_and(|t| t > tip as u64) {
        return Err(format!(
            "its meta table says blocks were imported up to a block after its tip {tip}"
        ));
    }
    if count != tip + 1 {
        return Err(format!(
            "its journal has {count} blocks but its tip is block {tip}: blocks are missing"
        ));
    }
    let (ion, block_hash): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT ion, block_hash FROM blocks WHERE seq = ?1",
            [tip],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql)?;
    let block = decode_block(&ion).map_err(|_| format!("its tip block {tip} is not valid Ion"))?;
    let address = block.field("blockAddress");
    let hash_of = |v: Option<&Value>| match v.map(|v| &v.data) {
        Some(Data::Blob(b)) => Some(b.clone()),
        _ => None,
    };
    if address.and_then(|a| a.field("strandId")).map(|v| &v.data) != Some(&Data::String(strand))
        || address.and_then(|a| a.field("sequenceNo")).map(|v| &v.data)
            != Some(&Data::Int(tip.into()))
        || hash_of(block.field("blockHash")).as_ref() != Some(&block_hash)
    {
        return Err(format!(
            "its tip block {tip} does not match its row (address or block hash)"
        ));
    }
    let leaves: i64 = conn
        .query_row("SELECT count(*) FROM merkle WHERE level = 0", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let leaf = node(conn, 0, tip as u64).ok();
    if leaves != count || leaf.as_ref() != Some(&block_hash) {
        return Err(format!(
            "its digest tree does not end at the tip block {tip}"
        ));
    }
    merkle::root(tip as u64 + 1, |level, idx| node(conn, level, idx))
        .map_err(|_| "its digest tree is incomplete".to_string())?;
    Ok(())
}

/// A file an earlier version wrote is not damaged (opening it upgrades it): says so instead
/// of reporting how its schema differs.
pub(crate) fn not_older(conn: &Connection) -> std::result::Result<(), String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| format!("cannot read it: {e}"))?;
    let current = crate::storage::sqlite::schema::LEDGER_MIGRATIONS.len() as i64;
    if version < current {
        return Err(format!(
            "it was written by an earlier qldb-local (schema v{version}; this version's is \
             v{current}); the server upgrades it when it next opens it"
        ));
    }
    Ok(())
}

/// (type, name, SQL) of every table and index of a database.
type Schema = Vec<(String, String, String)>;

fn schema_of(conn: &Connection) -> rusqlite::Result<Schema> {
    let mut stmt = conn.prepare(
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

impl LedgerDb {
    /// Writes the genesis block (sequence 0) if the journal is empty.
    pub(crate) fn ensure_genesis(
        conn: &mut Connection,
        strand_id: &str,
        ledger_name: &str,
        now_ms: i64,
    ) -> Result<()> {
        let exists: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM blocks)", [], |r| r.get(0))?;
        if exists {
            return Ok(());
        }
        let block = crate::storage::forms::genesis_block(strand_id, ledger_name, now_ms);
        let tx = conn.transaction()?;
        append_block(&tx, &block, Vec::new())?;
        tx.commit()?;
        Ok(())
    }

    /// The current tip of the journal (from memory: see [`LedgerDb::refresh_cache`]).
    pub fn tip(&self) -> Result<Tip> {
        if self.cache_is_stale() {
            return tip(&*self.reader()?);
        }
        Ok(self.cached().tip.clone())
    }

    /// The table catalog with each table's indexes (from memory).
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        if self.cache_is_stale() {
            return tables(&*self.reader()?);
        }
        Ok(self.cached().tables.as_ref().clone())
    }

    pub fn document(&self, doc_id: &str) -> Result<Option<StoredDoc>> {
        document_on(&*self.reader()?, doc_id)
    }

    /// Up to `limit` live documents of a table after rowid `after`, in one read; those
    /// `keep` rejects are not decoded.
    pub fn scan_page(
        &self,
        table_id: &str,
        after: i64,
        limit: usize,
        keep: Option<crate::storage::KeepDoc<'_>>,
    ) -> Result<ScanPage> {
        scan_page_on(&*self.reader()?, table_id, after, limit, keep)
    }

    pub fn index_lookup(&self, index_id: &str, key: &[u8], limit: usize) -> Result<Vec<StoredDoc>> {
        index_lookup_on(&*self.reader()?, index_id, key, limit)
    }

    /// The live documents of a table, counted up to `cap` (on the index by table).
    pub fn count_docs(&self, table_id: &str, cap: u64) -> Result<u64> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM documents
             WHERE table_no = (SELECT table_no FROM tables WHERE table_id = ?1) LIMIT ?2)",
        )?;
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let n: i64 = stmt.query_row(params![table_id, cap], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Validates the reads of a read-only transaction (no block is written) against the
    /// latest committed state, read in one read transaction: the transaction is
    /// serializable at that point, and it never waits for a commit.
    pub fn validate(&self, reads: &[ReadCheck]) -> std::result::Result<(), CommitError> {
        let conn = self.reader()?;
        let req = CommitRequest {
            reads: reads.to_vec(),
            ..Default::default()
        };
        // The key record is locked per check, never across this validation's SQL (the
        // writer consults it too); a commit's keys are recorded before it is visible.
        validate(&conn, &req, &|e: &[u8], as_of| {
            lock(&self.key_seqs).changed_after(e, as_of)
        })
    }

    /// Validates `req.reads` against the current state and, if nothing moved, appends one
    /// block with the transaction's revisions and applies its writes — durably.
    ///
    /// Group commit: the request joins the ledger's queue ([`LedgerDb::queue_commit`]). If no
    /// leader is committing, this thread leads ([`LedgerDb::lead_commits`]) until the queue
    /// is empty; otherwise it waits for the batch that commits it.
    pub fn commit(&self, req: CommitRequest) -> std::result::Result<Committed, CommitError> {
        <Self as crate::storage::LedgerStore>::commit(self, req)
    }

    /// Queues a commit; true as the second value when the caller must lead
    /// ([`LedgerDb::lead_commits`]).
    ///
    /// The block is prepared here first ([`PreparedBlock`]), before the request joins the
    /// queue: its encoding and hashing run on the committing thread, beside the batch being
    /// committed, and the writer only places it.
    pub fn queue_commit(&self, req: CommitRequest) -> (CommitTicket, bool) {
        let block = {
            let cached = self.cached();
            PreparedBlock::prepare(&req, &cached.tip.strand_id, cached.tip.last_seq + 1)
        };
        self.group.queue(Queued { req, block })
    }

    /// Commits the queue as its leader: the write connection commits every queued request,
    /// in arrival order, in one SQLite transaction per batch (a conflict or error refuses
    /// only that request: [`apply_batch`]) with one fsync, and answers
    /// each only after that commit. See [`crate::storage::group::GroupCommit::lead`] for `until` and the result.
    pub fn lead_commits(&self, until: Option<&CommitTicket>) -> bool {
        // A batch gathers before it takes the writer.
        let gathers = self.gathers();
        self.group.lead(
            |batch| {
                if gathers {
                    batch.gather(MAX_BATCH, GATHER_FOR);
                }
                let mut conn = self.lock_writer();
                commit_batch(self, &mut conn, batch);
            },
            until,
        )
    }

    /// Whether batches gather ([`crate::storage::group::Batch::gather`]) and transactions
    /// announce their commits for it: a file ledger's. An in-memory ledger's reads share the
    /// writer's lock, which a gathering batch would hold them from, and it has no fsync to save.
    pub(crate) fn gathers(&self) -> bool {
        matches!(self.location(), super::ledger_db::LedgerLocation::File(_))
    }

    /// (transactions committed, SQLite commits made for them) since the ledger was opened.
    pub fn commit_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commit_stats.transactions.load(Relaxed),
            self.commit_stats.fsyncs.load(Relaxed),
        )
    }
}

/// The most commits one SQLite transaction holds.
const MAX_BATCH: usize = 64;

/// How long a batch waits for the commits of transactions that wrote and have not committed
/// yet ([`crate::storage::group::Batch::gather`]): at 16 clients, 0.41 -> 0.22 fsyncs per
/// transaction (docs/performance.md, the eighth step).
const GATHER_FOR: std::time::Duration = std::time::Duration::from_micros(300);

/// A commit waiting for a batch to take it.
type Pending = crate::storage::group::Pending<Queued>;

/// A commit request and its block as prepared by the committing thread, if it could be.
pub(crate) struct Queued {
    req: CommitRequest,
    block: Option<PreparedBlock>,
}

/// Counters of group commit.
#[derive(Default)]
pub(crate) struct CommitStats {
    transactions: std::sync::atomic::AtomicU64,
    fsyncs: std::sync::atomic::AtomicU64,
}

use crate::storage::group::{lock, Batch, CommitTicket, Outcome};

/// Commits `batch` in one SQLite transaction, refreshes the cached tip (and catalog, if a
/// transaction changed it), and answers each request.
///
/// Requests queued while the batch is applied join it, up to [`MAX_BATCH`]: the leader takes
/// the queue again before it commits.
fn commit_batch(db: &LedgerDb, conn: &mut Connection, queue: Batch<'_, Queued>) {
    use std::sync::atomic::Ordering::Relaxed;
    // A batch that panics (after its COMMIT, say) leaves the cached tip to be read again:
    // the next batch starts from the cached tip.
    let _stale_on_panic = StaleOnPanic(db);
    let stats = &db.commit_stats;
    let first = queue.take_up_to(MAX_BATCH);
    if first.is_empty() {
        return;
    }
    let mut applied = Applied {
        taken: first.into_iter(),
        batch: Vec::new(),
        answers: Vec::new(),
    };
    // A pass in which a request failed after changing rows was rolled back: the batch is
    // applied again without that request. Each such pass fails one more request, so this
    // ends.
    let outcome = loop {
        match apply_batch(db, conn, &queue, &mut applied) {
            Ok(Pass::Committed(tip)) => break Ok(tip),
            Ok(Pass::Again) => continue,
            Err(failure) => break Err(failure),
        }
    };
    let Applied {
        taken,
        mut batch,
        answers,
    } = applied;
    let mut answers: Vec<Outcome> = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(not_committed_with_batch())))
        .collect();
    // Requests taken and not applied (the batch failed before them) are answered with the
    // batch: the failure below answers every request of `batch`.
    for p in taken {
        answers.push(Err(not_committed_with_batch()));
        batch.push(p);
    }
    match outcome {
        Ok(tip) => {
            let committed = answers.iter().filter(|a| a.is_ok()).count() as u64;
            stats.transactions.fetch_add(committed, Relaxed);
            if committed > 0 {
                let catalog = batch
                    .iter()
                    .zip(&answers)
                    .any(|(p, a)| a.is_ok() && p.req.req.changes_catalog());
                db.publish_tip(conn, tip, catalog);
            }
            for (p, a) in batch.iter().zip(answers) {
                p.answer(a);
            }
        }
        // The batch's SQLite transaction did not commit (it was rolled back when `tx` was
        // dropped): the server goes on from the state before it, and the cached tip holds.
        Err(failure) => {
            let why = match &failure {
                BatchFailure::Before(e) => format!(
                    "The transaction was not committed: the ledger's storage failed while \
                     committing it ({e}); nothing of it was written"
                ),
                // The commit record may have reached the WAL before the failure (an fsync
                // that failed), and a restart could then recover it: say so.
                BatchFailure::AtCommit(e) => format!(
                    "The ledger's storage failed while making the transaction durable ({e}); \
                     it is not committed now, but it may reappear after a restart if the \
                     storage kept part of it"
                ),
            };
            tracing::error!(error = %why, transactions = batch.len(), "a group commit failed");
            for p in &batch {
                p.answer(Err(CommitError::Storage(StorageError::CommitFailed(
                    why.clone(),
                ))));
            }
        }
    }
}

/// What a commit answers that was taken into a batch that failed before it was applied.
fn not_committed_with_batch() -> CommitError {
    CommitError::Conflict(
        "the transaction was not committed: the commit it was grouped with failed".into(),
    )
}

/// A batch's requests as its passes leave them.
struct Applied {
    /// Taken from the queue, not in `batch` yet.
    taken: std::vec::IntoIter<Pending>,
    /// In arrival order.
    batch: Vec<Pending>,
    /// `batch`'s answers so far: `None` until a pass applies the request. A failure stays
    /// through later passes; a success is found again by each pass.
    answers: Vec<Option<Outcome>>,
}

/// How a pass over a batch ended.
enum Pass {
    /// Its SQLite transaction committed, leaving this tip.
    Committed(Tip),
    /// A request failed after it changed rows, and the pass was rolled back; the request's
    /// answer is that failure.
    Again,
}

/// One pass over the batch, in one SQLite transaction: each request not failed in an earlier
/// pass is validated (seeing the batch's earlier commits) and applied, with no savepoint. A
/// request that fails before it changed a row (its validation, say) is left out; one that
/// fails after ends the pass, rolled back ([`Pass::Again`]). Requests queued meanwhile join
/// the batch, up to [`MAX_BATCH`]: the leader takes the queue again before it commits.
fn apply_batch(
    db: &LedgerDb,
    conn: &mut Connection,
    queue: &Batch<'_, Queued>,
    applied: &mut Applied,
) -> std::result::Result<Pass, BatchFailure> {
    let tx = conn
        .transaction()
        .map_err(|e| BatchFailure::Before(e.to_string()))?;
    // The tip as each request of the batch finds it, and the index catalog (read again
    // after a request that changes it).
    // The writer keeps the cached tip (this leader, or a `WriteConn` when let go).
    let mut tip = if db.cache_is_stale() {
        tip(&tx).map_err(|e| BatchFailure::Before(e.to_string()))?
    } else {
        db.cached().tip.clone()
    };
    let mut indexes = None;
    // Index keys changed by the batch's transactions so far: later ones of the batch see
    // them before the ledger's record of key changes does.
    let mut batch_keys: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut i = 0;
    loop {
        if i == applied.batch.len() {
            if applied.taken.len() == 0 && applied.batch.len() < MAX_BATCH {
                applied.taken = queue
                    .take_up_to(MAX_BATCH - applied.batch.len())
                    .into_iter();
            }
            let Some(p) = applied.taken.next() else {
                break;
            };
            applied.batch.push(p);
            applied.answers.push(None);
        }
        if matches!(applied.answers[i], Some(Err(_))) {
            i += 1;
            continue;
        }
        let changed = |e: &[u8], as_of: u64| {
            batch_keys.get(e).is_some_and(|&seq| seq > as_of)
                || lock(&db.key_seqs).changed_after(e, as_of)
        };
        let q = &applied.batch[i].req;
        let at = Place {
            tip: &tip,
            indexes: &mut indexes,
        };
        // Whether a failed request wrote anything: SQLite undoes a failed statement itself,
        // and counts the rows of every statement that completed.
        let (answer, wrote) = match validate(&tx, &q.req, &changed) {
            Err(e) => (Err(e), false),
            Ok(()) => {
                let before = tx.total_changes();
                let answer = apply_commit(&tx, q, at);
                (answer, tx.total_changes() != before)
            }
        };
        // A full disk or an I/O error may have rolled the whole SQLite transaction back
        // already: nothing after it may run outside the batch, so the batch ends here and
        // every transaction of it fails.
        if let Err(CommitError::Storage(e)) = &answer {
            if tx.is_autocommit() || is_storage_failure(e) {
                return Err(BatchFailure::Before(e.to_string()));
            }
        }
        match answer {
            Ok((committed, keys, block_hash)) => {
                for k in keys {
                    batch_keys.insert(k, committed.sequence_no);
                }
                tip.last_seq = committed.sequence_no;
                tip.last_hash = block_hash;
                applied.answers[i] = Some(Ok(committed));
            }
            Err(e) => {
                applied.answers[i] = Some(Err(e));
                if wrote {
                    // Part of its writes are in the transaction: undo the pass. A connection
                    // that cannot roll back fails the batch, visibly.
                    tx.rollback()
                        .map_err(|e| BatchFailure::Before(e.to_string()))?;
                    return Ok(Pass::Again);
                }
            }
        }
        i += 1;
    }
    if applied.answers.iter().any(|a| matches!(a, Some(Ok(_)))) {
        // Key changes are recorded before the commit (a reader whose snapshot has the
        // commit must find them) and before the new tip is published; taken back if the
        // commit fails.
        let mut by_seq: Vec<(u64, Vec<u8>)> =
            batch_keys.into_iter().map(|(k, seq)| (seq, k)).collect();
        by_seq.sort_unstable_by_key(|(seq, _)| *seq);
        let recorded = lock(&db.key_seqs).record(by_seq);
        if let Err(e) = tx.commit() {
            lock(&db.key_seqs).take_back(recorded);
            return Err(BatchFailure::AtCommit(e.to_string()));
        }
        lock(&db.key_seqs).forget_oldest();
        db.commit_stats
            .fsyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        db.committed_to_disk();
    }
    Ok(Pass::Committed(tip))
}

/// Marks the ledger's cache stale when dropped while its thread panics.
struct StaleOnPanic<'a>(&'a LedgerDb);

impl Drop for StaleOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.mark_cache_stale();
        }
    }
}

/// Why a group commit's SQLite transaction did not commit.
enum BatchFailure {
    /// Before COMMIT: nothing of the batch is written.
    Before(String),
    /// COMMIT itself failed.
    AtCommit(String),
}

/// A storage error after which SQLite may have rolled the whole transaction back.
fn is_storage_failure(e: &StorageError) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        StorageError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            DiskFull | SystemIoFailure | OutOfMemory | DatabaseCorrupt | NotADatabase | CannotOpen
        ),
        StorageError::Io { .. } => true,
        _ => false,
    }
}

/// Applies one request, validated, inside the batch's transaction (seeing the batch's
/// earlier commits). Returns the block written, the index keys it changed (see
/// [`super::key_seqs`]) and the block's hash.
fn apply_commit(
    tx: &Connection,
    queued: &Queued,
    at: Place<'_>,
) -> std::result::Result<(Committed, Vec<Vec<u8>>, Hash), CommitError> {
    let (req, tip) = (&queued.req, at.tip);
    let mut changed_keys = Vec::new();
    let mut block = BlockBuilder::new(req, tip);
    let seq = block.seq();
    let prepared = queued
        .block
        .as_ref()
        .filter(|b| b.fits(seq, &tip.last_hash));
    // A request that changes the index catalog reads it after its changes, and the next
    // request reads it again.
    let index_ddl = !(req.new_indexes.is_empty() && req.dropped_indexes.is_empty());
    if index_ddl {
        *at.indexes = None;
    }
    // System revisions for new tables (as the worked example's CREATE TABLE).
    for (table_id, name) in &req.new_tables {
        tx.prepare_cached(&format!("INSERT INTO tables (table_id, name, status, created_seq, modified_seq, table_no) VALUES (?1, ?2, 'ACTIVE', ?3, ?3, {NEXT_TABLE_NO})"))?.execute(params![table_id, name, seq as i64],
            )?;
        block.table(table_id, 0, name, "ACTIVE");
    }
    for (table_id, active) in &req.table_status {
        let status = if *active { "ACTIVE" } else { "INACTIVE" };
        let (name, version): (String, i64) = tx
            .prepare_cached(
                "UPDATE tables SET status = ?2, modified_seq = ?3, version = version + 1
                 WHERE table_id = ?1 RETURNING name, version",
            )?
            .query_row(params![table_id, status, seq as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        block.table(table_id, version as u64, &name, status);
    }
    for (index_id, table_id) in &req.dropped_indexes {
        tx.prepare_cached("DELETE FROM index_entries WHERE index_no = ?1")?
            .execute([index_no(tx, index_id)?])?;
        tx.prepare_cached("DELETE FROM indexes WHERE index_id = ?1")?
            .execute([index_id])?;
        tx.prepare_cached("UPDATE tables SET modified_seq = ?2 WHERE table_id = ?1")?
            .execute(params![table_id, seq as i64])?;
    }
    for (index_id, table_id, field) in &req.new_indexes {
        tx.prepare_cached(&format!("INSERT INTO indexes (index_id, table_id, field, status, created_seq, index_no) VALUES (?1, ?2, ?3, 'ONLINE', ?4, {NEXT_INDEX_NO})"))?.execute(params![index_id, table_id, field, seq as i64],
            )?;
        // Build the index over the documents that already exist.
        index_documents(tx, index_id, table_id, field)?;
    }

    // The catalog as this request left it: kept for the batch's next requests unless this
    // request changed it (its writes may still fail and the pass be rolled back).
    let read_here;
    let indexes = match at.indexes {
        _ if index_ddl => {
            read_here = table_indexes(tx)?;
            &read_here
        }
        Some(i) => &*i,
        None => &*at.indexes.insert(table_indexes(tx)?),
    };
    for (i, w) in req.writes.iter().enumerate() {
        let table_indexes = indexes.get(&w.table_id).map_or(&[][..], |v| &v[..]);
        // The replaced revision's index keys; an inserted document (version 0) has none.
        let old = if table_indexes.is_empty() || w.version == 0 {
            None
        } else {
            tx.prepare_cached("SELECT data FROM documents WHERE doc_id = ?1")?
                .query_row([&w.doc_id], |r| r.get::<_, Vec<u8>>(0))
                .optional()?
                .map(|b| decode_doc(&b))
                .transpose()?
        };
        for (index_id, index_no, field) in table_indexes {
            let old_key = old.as_ref().and_then(|d| d.field(field)).map(index_key);
            let new_key = w.data.as_ref().and_then(|d| d.field(field)).map(index_key);
            if old_key == new_key {
                continue;
            }
            if let Some(k) = &old_key {
                tx.prepare_cached(
                    "DELETE FROM index_entries WHERE index_no = ?1 AND key = ?2 AND doc_id = ?3",
                )?
                .execute(params![index_no, k, w.doc_id])?;
            }
            if let Some(k) = &new_key {
                tx.prepare_cached("INSERT OR IGNORE INTO index_entries (index_no, key, doc_id) VALUES (?1, ?2, ?3)")?.execute(params![index_no, k, w.doc_id])?;
            }
            for k in [old_key, new_key].into_iter().flatten() {
                changed_keys.push(super::key_seqs::entry(index_id, &k));
            }
        }
        let built;
        let rev = match prepared {
            Some(p) => &p.revisions[i],
            None => {
                built = block.document(w);
                &built
            }
        };
        let table_no: i64 = tx
            .prepare_cached(
                "UPDATE tables SET modified_seq = ?2 WHERE table_id = ?1 RETURNING table_no",
            )?
            .query_row(params![w.table_id, seq as i64], |r| r.get(0))
            .optional()?
            .ok_or_else(|| CommitError::Conflict(format!("table {} does not exist", w.table_id)))?;
        match &rev.encoded {
            Some(data) => {
                tx.prepare_cached("INSERT INTO documents (doc_id, table_no, version, data) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (doc_id) DO UPDATE SET version = excluded.version, data = excluded.data")?.execute(params![w.doc_id, table_no, w.version as i64, data],
                    )?;
            }
            None => {
                tx.prepare_cached("DELETE FROM documents WHERE doc_id = ?1")?
                    .execute([&w.doc_id])?;
            }
        }
        // The transaction's id and time are the block's: NULL (see the schema, v8).
        tx.prepare_cached("INSERT INTO revisions (doc_id, version, table_no, seq, position, hash, data, data_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![
                    w.doc_id,
                    w.version as i64,
                    table_no,
                    seq as i64,
                    rev.position,
                    rev.hash,
                    // The block holds the data; `documents` holds the current state.
                    rev.encoded.as_ref().map(|_| DATA_IN_BLOCK),
                    Option::<&[u8]>::None,
                ],
            )?;
    }
    if let Some(r) = &req.redaction {
        apply_redaction(tx, r, seq)?;
    }
    let (ion, block_hash) = match prepared {
        Some(p) => p.place(seq, &tip.last_hash),
        None => {
            let (block, revision_hashes) = block.finish();
            let (value, hash) = block.to_ion_and_hash_with(revision_hashes);
            (encode_one(&value), hash)
        }
    };
    store_block(
        tx,
        seq,
        &req.transaction_id,
        req.commit_ms,
        &block_hash,
        &ion,
    )?;
    Ok((Committed { sequence_no: seq }, changed_keys, block_hash))
}

/// Where a request of a batch commits: the tip after the batch's earlier requests, and the
/// index catalog as the batch last read it (`None`: to be read).
struct Place<'a> {
    tip: &'a Tip,
    indexes: &'a mut Option<TableIndexes>,
}

/// Whether an index key (a [`super::key_seqs::entry`]) may have changed after a block.
type KeyChanged<'a> = dyn Fn(&[u8], u64) -> bool + 'a;

pub(super) fn tip(conn: &Connection) -> Result<Tip> {
    let strand_id: String = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'strand_id'")?
        .query_row([], |r| r.get(0))?;
    let (seq, hash): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT seq, block_hash FROM blocks ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Tip {
        strand_id,
        last_seq: seq as u64,
        last_hash: hash,
    })
}

pub(super) fn tables(conn: &Connection) -> Result<Vec<TableInfo>> {
    let mut stmt = conn
        .prepare_cached("SELECT table_id, name, status FROM tables ORDER BY created_seq, rowid")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out: Vec<TableInfo> = Vec::new();
    for row in rows {
        let (table_id, name, status) = row?;
        out.push(TableInfo {
            table_id,
            name,
            active: status == "ACTIVE",
            indexes: Vec::new(),
        });
    }
    let mut stmt = conn.prepare_cached(
        "SELECT index_id, table_id, field FROM indexes ORDER BY created_seq, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (index_id, table_id, field) = row?;
        if let Some(t) = out.iter_mut().find(|t| t.table_id == table_id) {
            t.indexes.push(IndexInfo { index_id, field });
        }
    }
    Ok(out)
}

/// Each table's indexes: (index id, index number, field).
type TableIndexes = HashMap<String, Vec<(String, i64, String)>>;

fn table_indexes(tx: &Connection) -> Result<TableIndexes> {
    let mut stmt = tx.prepare_cached("SELECT index_id, index_no, table_id, field FROM indexes")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out: TableIndexes = HashMap::new();
    for row in rows {
        let (index_id, index_no, table_id, field) = row?;
        out.entry(table_id)
            .or_default()
            .push((index_id, index_no, field));
    }
    Ok(out)
}

fn validate(
    tx: &Connection,
    req: &CommitRequest,
    changed: &KeyChanged<'_>,
) -> std::result::Result<(), CommitError> {
    let conflict = |what: String| Err(CommitError::Conflict(what));
    for read in &req.reads {
        match read {
            ReadCheck::Doc { doc_id, version } => {
                let now: Option<i64> = tx
                    .prepare_cached("SELECT version FROM documents WHERE doc_id = ?1")?
                    .query_row([doc_id], |r| r.get(0))
                    .optional()?;
                if now.map(|v| v as u64) != *version {
                    return conflict(format!("document {doc_id} changed"));
                }
            }
            ReadCheck::Table { table_id, as_of } => {
                let modified: Option<i64> = tx
                    .prepare_cached("SELECT modified_seq FROM tables WHERE table_id = ?1")?
                    .query_row([table_id], |r| r.get(0))
                    .optional()?;
                if modified.is_some_and(|m| m as u64 > *as_of) {
                    return conflict(format!("table {table_id} changed"));
                }
            }
            ReadCheck::IndexKey {
                index_id,
                key,
                as_of,
            } => {
                // A dropped index's entries are gone: a lookup that raced with the drop
                // may have found nothing, so the drop is a change too.
                let exists: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM indexes WHERE index_id = ?1)")?
                    .query_row([index_id], |r| r.get(0))?;
                if !exists {
                    return conflict(format!("index {index_id} was dropped"));
                }
                if changed(&super::key_seqs::entry(index_id, key), *as_of) {
                    return conflict(format!("index {index_id} changed"));
                }
            }
            ReadCheck::Catalog { as_of } => {
                let changed: bool = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM tables WHERE modified_seq > ?1) OR EXISTS (SELECT 1 FROM indexes WHERE created_seq > ?1)")?.query_row([*as_of as i64],
                    |r| r.get(0),
                )?;
                if changed {
                    return conflict("the table catalog changed".into());
                }
            }
        }
    }
    for (_, name) in &req.new_tables {
        let taken: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tables WHERE name = ?1 AND status = 'ACTIVE')",
            )?
            .query_row([name], |r| r.get(0))?;
        if taken {
            return conflict(format!("table {name} was created concurrently"));
        }
    }
    for (table_id, active) in &req.table_status {
        let row: Option<(String, String)> = tx
            .prepare_cached("SELECT name, status FROM tables WHERE table_id = ?1")?
            .query_row([table_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let new_table = req.new_tables.iter().any(|(id, _)| id == table_id);
        match row {
            Some((_, status)) if (status == "ACTIVE") == *active => {
                return conflict(format!(
                    "table {table_id} was dropped or undropped concurrently"
                ))
            }
            Some((name, _)) if *active => {
                let taken: bool = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM tables WHERE name = ?1 AND status = 'ACTIVE')")?.query_row([&name],
                    |r| r.get(0),
                )?;
                if taken {
                    return conflict(format!("an active table {name} was created concurrently"));
                }
            }
            None if !new_table => {
                return conflict(format!("table {table_id} does not exist"));
            }
            _ => {}
        }
    }
    for (index_id, _) in &req.dropped_indexes {
        let exists: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM indexes WHERE index_id = ?1)")?
            .query_row([index_id], |r| r.get(0))?;
        if !exists && !req.new_indexes.iter().any(|(id, _, _)| id == index_id) {
            return conflict(format!("index {index_id} was dropped concurrently"));
        }
    }
    for (_, table_id, field) in &req.new_indexes {
        let taken: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM indexes WHERE table_id = ?1 AND field = ?2)",
            )?
            .query_row([table_id, field], |r| r.get(0))?;
        if taken {
            return conflict(format!("an index on {field} was created concurrently"));
        }
    }
    Ok(())
}

/// Appends a block: its row and the digest-tree nodes it completes.
/// Stores a block and its digest-tree nodes; `revision_hashes` are its revisions' hashes.
fn append_block(tx: &Connection, block: &Block, revision_hashes: Vec<Hash>) -> Result<()> {
    let (ion, block_hash) = block.to_ion_and_hash_with(revision_hashes);
    store_block(
        tx,
        block.address.sequence_no,
        &block.transaction_id,
        block.timestamp_ms,
        &block_hash,
        &encode_one(&ion),
    )
}

/// Stores a block's row (its Ion binary `ion`) and the digest-tree nodes it completes.
fn store_block(
    tx: &Connection,
    seq: u64,
    transaction_id: &str,
    timestamp_ms: i64,
    block_hash: &[u8],
    ion: &[u8],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO blocks (seq, tx_id, ts_ms, block_hash, ion) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        seq as i64,
        transaction_id,
        timestamp_ms,
        block_hash,
        pack_block(ion)
    ])?;
    let nodes = merkle::append(seq, block_hash.to_vec(), |level, idx| node(tx, level, idx))?;
    let mut stmt = tx.prepare_cached(INSERT_NODE)?;
    for (level, idx, hash) in nodes {
        stmt.execute(params![level, idx as i64, hash])?;
    }
    Ok(())
}

/// Stores digest-tree node (?1 level, ?2 index, ?3 hash) under the block that completes it
/// (schema v9).
pub(crate) const INSERT_NODE: &str =
    "INSERT INTO merkle (done, level, idx, hash) VALUES (((?2 + 1) << ?1) - 1, ?1, ?2, ?3)";

pub(crate) fn node(conn: &Connection, level: u32, idx: u64) -> Result<Hash> {
    Ok(conn
        .prepare_cached("SELECT hash FROM merkle WHERE done = ((?2 + 1) << ?1) - 1 AND level = ?1")?
        .query_row(params![level, idx as i64], |r| r.get(0))?)
}

impl LedgerDb {
    /// The journal digest at the tip: (tip sequence number, digest).
    pub fn digest(&self) -> Result<(u64, Hash)> {
        let conn = self.reader()?;
        let t = tip(&conn)?;
        let d = merkle::root(t.last_seq + 1, |l, i| node(&conn, l, i))?;
        Ok((t.last_seq, d))
    }

    /// All blocks, oldest first, as stored (for verification and tests).
    pub fn blocks(&self) -> Result<BTreeMap<u64, Value>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare("SELECT seq, ion FROM blocks ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (seq, ion) = row?;
            out.insert(seq as u64, decode_block(&ion)?);
        }
        Ok(out)
    }
}

impl LedgerDb {
    /// The journal digest with the block `tip` as the last leaf.
    pub fn digest_at(&self, tip: u64) -> Result<Hash> {
        let conn = self.reader()?;
        merkle::root(tip + 1, |l, i| node(&conn, l, i))
    }

    /// The stored block at `seq`, as GetBlock and exports show it.
    pub fn block(&self, seq: u64) -> Result<Option<Value>> {
        let conn = self.reader()?;
        let ion: Option<Vec<u8>> = conn
            .query_row("SELECT ion FROM blocks WHERE seq = ?1", [seq as i64], |r| {
                r.get(0)
            })
            .optional()?;
        ion.map(|b| decode_block(&b)).transpose()
    }

    /// Up to `limit` blocks from `from_seq` on whose timestamp lies in `[start_ms, end_ms)`
    /// (`end_ms` None = no end), oldest first, as `(seq, timestamp ms, block)`: what
    /// exports and streams read.
    pub fn blocks_in_window(
        &self,
        from_seq: u64,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(u64, i64, Value)>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, ts_ms, ion FROM blocks
             WHERE seq >= ?1 AND ts_ms >= ?2 AND (?3 IS NULL OR ts_ms < ?3)
             ORDER BY seq LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![from_seq as i64, start_ms, end_ms, limit as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, ts, ion) = row?;
            out.push((seq, ts, decode_block(&ion)?));
        }
        Ok(out)
    }

    /// How many blocks from `from_seq` on lie in `[start_ms, end_ms)`.
    pub fn count_in_window(&self, from_seq: u64, start_ms: i64, end_ms: i64) -> Result<u64> {
        let conn = self.reader()?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM blocks WHERE seq >= ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            params![from_seq as i64, start_ms, end_ms],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The audit path of block `seq` in the digest tree whose last leaf is block `tip`.
    pub fn block_proof(&self, seq: u64, tip: u64) -> Result<Vec<Hash>> {
        let conn = self.reader()?;
        merkle::audit_path(seq, tip + 1, |l, i| node(&conn, l, i))
    }
}

/// A `revisions` row (with a `redacted` column) as `history()` and the committed view show
/// it ([`crate::storage::forms::revision_view`]), its block read on `conn` when needed.
fn revision_view(
    conn: &Connection,
    strand: &str,
    r: &rusqlite::Row<'_>,
    last: &mut LastBlock,
) -> rusqlite::Result<Value> {
    let row = RevisionRow {
        doc_id: r.get("doc_id")?,
        version: r.get("version")?,
        seq: r.get("seq")?,
        position: r.get("position")?,
        tx_time_ms: r.get("tx_time_ms")?,
        tx_id: r.get("tx_id")?,
        hash: r.get("hash")?,
        data: r.get("data")?,
        data_hash: r.get("data_hash")?,
        redacted: r.get("redacted")?,
    };
    let mut read_block = |seq: i64| -> Result<Vec<u8>> {
        Ok(conn
            .prepare_cached("SELECT ion FROM blocks WHERE seq = ?1")?
            .query_row([seq], |r| r.get(0))?)
    };
    crate::storage::forms::revision_view(strand, row, last, &mut read_block)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl LedgerDb {
    /// The committed view of a table: the latest revision of every live document.
    pub fn committed_view(&self, table_id: &str) -> Result<Vec<Value>> {
        let conn = self.reader()?;
        let strand = tip(&conn)?.strand_id;
        // The current state is the latest revision's data: read from `documents`.
        let mut stmt = conn.prepare_cached(
            "SELECT r.doc_id, r.version, r.seq, r.position,
                    coalesce(r.tx_time_ms, b.ts_ms) AS tx_time_ms,
                    coalesce(r.tx_id, b.tx_id) AS tx_id, r.hash,
                    d.data, r.data_hash, r.redacted_seq IS NOT NULL AS redacted
             FROM documents d
             JOIN revisions r ON r.doc_id = d.doc_id AND r.version = d.version
             LEFT JOIN blocks b ON b.seq = r.seq
             WHERE d.table_no = (SELECT table_no FROM tables WHERE table_id = ?1)
             ORDER BY d.rowid",
        )?;
        let mut last = None;
        let rows = stmt.query_map([table_id], |r| revision_view(&conn, &strand, r, &mut last))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every revision of every document of a table, in commit order.
    pub fn history(&self, table_id: &str) -> Result<Vec<Value>> {
        let conn = self.reader()?;
        let strand = tip(&conn)?.strand_id;
        let mut stmt = conn.prepare_cached(
            "SELECT r.doc_id, r.version, r.seq, r.position,
                    coalesce(r.tx_time_ms, b.ts_ms) AS tx_time_ms,
                    coalesce(r.tx_id, b.tx_id) AS tx_id, r.hash,
                    r.data, r.data_hash, r.redacted_seq IS NOT NULL AS redacted
             FROM revisions r LEFT JOIN blocks b ON b.seq = r.seq
             WHERE r.table_no = (SELECT table_no FROM tables WHERE table_id = ?1)
             ORDER BY r.seq, r.position",
        )?;
        let mut last = None;
        let rows = stmt.query_map([table_id], |r| revision_view(&conn, &strand, r, &mut last))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The revision of `doc_id` committed in block `seq`, if any.
    pub fn revision_at(&self, seq: u64, doc_id: &str) -> Result<Option<RevisionRef>> {
        let conn = self.reader()?;
        let found = conn
            .prepare_cached(
                "SELECT t.table_id, r.version, r.data IS NOT NULL, r.redacted_seq IS NOT NULL,
                        NOT EXISTS (SELECT 1 FROM revisions n WHERE n.doc_id = r.doc_id AND n.version > r.version)
                 FROM revisions r JOIN tables t ON t.table_no = r.table_no
                 WHERE r.doc_id = ?1 AND r.seq = ?2",
            )?
            .query_row(params![doc_id, seq as i64], |r| {
                Ok(RevisionRef {
                    seq,
                    table_id: r.get(0)?,
                    doc_id: doc_id.to_string(),
                    version: r.get::<_, i64>(1)? as u64,
                    has_data: r.get(2)?,
                    redacted: r.get(3)?,
                    is_latest: r.get(4)?,
                })
            })
            .optional()?;
        Ok(found)
    }
}

/// Removes a revision's data everywhere it is stored (the revisions row and its block's
/// Ion), keeping its data hash so that every hash and proof still verifies.
fn apply_redaction(
    tx: &Connection,
    r: &RevisionRef,
    redacting_seq: u64,
) -> std::result::Result<(), CommitError> {
    let changed = tx.prepare_cached("UPDATE revisions SET data = NULL, redacted_seq = ?3 WHERE doc_id = ?1 AND version = ?2 AND data IS NOT NULL AND redacted_seq IS NULL")?.execute(params![r.doc_id, r.version as i64, redacting_seq as i64],
    )?;
    if changed != 1 {
        return Err(CommitError::Conflict(redaction_conflict(r)));
    }
    let ion: Vec<u8> = tx
        .prepare_cached("SELECT ion FROM blocks WHERE seq = ?1")?
        .query_row([r.seq as i64], |row| row.get(0))?;
    let mut block = decode_block(&ion)?;
    let data_hash = redact_in_block(&mut block, &r.doc_id, r.version);
    tx.prepare_cached("UPDATE blocks SET ion = ?2 WHERE seq = ?1")?
        .execute(params![r.seq as i64, pack_block(&encode_one(&block))])?;
    // The revisions row keeps the data hash (its data was in the block).
    if let Some(h) = data_hash {
        tx.prepare_cached(
            "UPDATE revisions SET data_hash = ?3 WHERE doc_id = ?1 AND version = ?2",
        )?
        .execute(params![r.doc_id, r.version as i64, h])?;
    }
    Ok(())
}

/// A live document by id, read on `conn`.
pub(super) fn document_on(conn: &Connection, doc_id: &str) -> Result<Option<StoredDoc>> {
    let row = conn
        .prepare_cached(
            "SELECT t.table_id, d.version, d.data FROM documents d
             JOIN tables t ON t.table_no = d.table_no WHERE d.doc_id = ?1",
        )?
        .query_row([doc_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    row.map(|(table_id, version, data)| {
        Ok(StoredDoc {
            doc_id: doc_id.to_string(),
            table_id,
            version: version as u64,
            data: decode_doc(&data)?,
        })
    })
    .transpose()
}

/// Up to `limit` live documents of a table after rowid `after`, read on `conn`; those
/// `keep` rejects are not decoded.
pub(super) fn scan_page_on(
    conn: &Connection,
    table_id: &str,
    after: i64,
    limit: usize,
    keep: Option<crate::storage::KeepDoc<'_>>,
) -> Result<ScanPage> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, doc_id, version, data FROM documents
         WHERE table_no = (SELECT table_no FROM tables WHERE table_id = ?1) AND rowid > ?2
         ORDER BY rowid LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![table_id, after, limit])?;
    let mut page = ScanPage {
        last: after,
        ..ScanPage::default()
    };
    while let Some(r) = rows.next()? {
        page.read += 1;
        page.last = r.get(0)?;
        let corrupt = |e: rusqlite::types::FromSqlError| {
            StorageError::Corrupt(format!("a documents row of table {table_id}: {e}"))
        };
        let doc_id = r.get_ref(1)?.as_str().map_err(corrupt)?;
        let data = r.get_ref(3)?.as_blob().map_err(corrupt)?;
        if keep.is_some_and(|keep| !keep(doc_id, data)) {
            continue;
        }
        page.docs.push(StoredDoc {
            doc_id: doc_id.to_string(),
            table_id: table_id.to_string(),
            version: r.get::<_, i64>(2)? as u64,
            data: decode_doc(data)?,
        });
    }
    Ok(page)
}

/// The live documents under one key of an index, read on `conn`.
pub(super) fn index_lookup_on(
    conn: &Connection,
    index_id: &str,
    key: &[u8],
    limit: usize,
) -> Result<Vec<StoredDoc>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.doc_id, t.table_id, d.version, d.data FROM index_entries e
         JOIN documents d ON d.doc_id = e.doc_id
         JOIN tables t ON t.table_no = d.table_no
         WHERE e.index_no = (SELECT index_no FROM indexes WHERE index_id = ?1) AND e.key = ?2
         LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![index_id, key, limit], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (doc_id, table_id, version, data) = row?;
        out.push(StoredDoc {
            doc_id,
            table_id,
            version: version as u64,
            data: decode_doc(&data)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion::text::from_text;
    use crate::storage::sqlite::schema::{migrate, LEDGER_MIGRATIONS};

    fn ion(t: &str) -> Value {
        from_text(t).unwrap().pop().unwrap()
    }

    #[test]
    fn equal_values_share_an_index_key() {
        let same = [
            &["1", "1.0", "1.00", "1e0", "10d-1"][..],
            &["'a'", "\"a\""],
            &[
                "2017T",
                "2017-01-01T00:00Z",
                "2017-01-01T01:00+01:00",
                "2017-01-01T00:00:00.000Z",
            ],
            &[
                "[1, {a: 2.0, b: x}]",
                "[1.0, {b: \"x\", a: 2}]",
                "ann::[1e0, {a: 2, b: x}]",
            ],
            &["0.1e0", "0.1"],
            &["-0e0", "0", "-0.0"],
        ];
        for group in same {
            let keys: Vec<Vec<u8>> = group.iter().map(|t| index_key(&ion(t))).collect();
            assert!(keys.windows(2).all(|w| w[0] == w[1]), "{group:?}");
        }
        let different = [
            "1", "2", "\"1\"", "2017T", "2018T", "[1, 2]", "[2, 1]", "true",
        ];
        let keys: std::collections::HashSet<Vec<u8>> =
            different.iter().map(|t| index_key(&ion(t))).collect();
        assert_eq!(keys.len(), different.len());
    }

    #[test]
    fn old_index_keys_are_rebuilt_once() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        // A ledger at schema v4 whose index holds a key in the old form.
        migrate(&mut conn, &LEDGER_MIGRATIONS[..4], "test").unwrap();
        conn.execute_batch(
            "INSERT INTO tables (table_id, name, status, created_seq, modified_seq)
                 VALUES ('t1', 'T', 'ACTIVE', 1, 1);
             INSERT INTO indexes (index_id, table_id, field, status, created_seq)
                 VALUES ('i1', 't1', 'k', 'ONLINE', 1);
             INSERT INTO index_entries (index_id, key, doc_id) VALUES ('i1', x'00', 'd1');
             INSERT INTO index_key_seq (index_id, key, seq) VALUES ('i1', x'00', 1);",
        )
        .unwrap();
        for (doc, k) in [("d1", "1e0"), ("d2", "2017T"), ("d3", "{a: 1}")] {
            conn.execute(
                "INSERT INTO documents (doc_id, table_id, version, data) VALUES (?1, 't1', 0, ?2)",
                params![doc, encode_one(&ion(&format!("{{k: {k}}}")))],
            )
            .unwrap();
        }
        migrate(&mut conn, LEDGER_MIGRATIONS, "test").unwrap();
        rebuild_index_keys(&mut conn).unwrap();
        let entries = |conn: &rusqlite::Connection| -> Vec<(Vec<u8>, String)> {
            let mut stmt = conn
                .prepare("SELECT key, doc_id FROM index_entries ORDER BY doc_id")
                .unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.collect::<rusqlite::Result<_>>().unwrap()
        };
        let want = vec![
            (index_key(&ion("1")), "d1".to_string()),
            (index_key(&ion("2017-01-01T00:00Z")), "d2".to_string()),
            (index_key(&ion("{a: 1.0}")), "d3".to_string()),
        ];
        assert_eq!(entries(&conn), want);
        let seqs: i64 = conn
            .query_row("SELECT count(*) FROM index_key_seq", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seqs, 0);
        // Done once: a second open changes nothing.
        conn.execute("DELETE FROM index_entries WHERE doc_id = 'd3'", [])
            .unwrap();
        rebuild_index_keys(&mut conn).unwrap();
        assert_eq!(entries(&conn).len(), 2);
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::sync::Arc;

    use super::*;
    use crate::names::LedgerName;
    use crate::storage::sqlite::LedgerLocation;
    use crate::storage::DocWrite;

    fn write(doc: &str, version: u64, reads: Vec<ReadCheck>) -> CommitRequest {
        CommitRequest {
            transaction_id: format!("tx-{doc}-{version}"),
            commit_ms: 1_704_067_200_000,
            reads,
            writes: vec![DocWrite {
                doc_id: doc.into(),
                table_id: "TableT".into(),
                table_name: "T".into(),
                version,
                data: Some(Value::structure([("v", Value::int(version))])),
                statements: vec![0],
            }],
            ..Default::default()
        }
    }

    /// Creates table T (id TableT) and its document D, version 0.
    fn create_table_and_d(db: &LedgerDb) {
        db.commit(CommitRequest {
            transaction_id: "tx-create".into(),
            commit_ms: 1_704_067_200_000,
            new_tables: vec![("TableT".into(), "T".into())],
            ..Default::default()
        })
        .unwrap();
        db.commit(write("D", 0, Vec::new())).unwrap();
    }

    /// Creates index IdxV on T's field v.
    fn create_index_on_v(db: &LedgerDb) {
        db.commit(CommitRequest {
            transaction_id: "tx-index".into(),
            commit_ms: 1_704_067_200_000,
            new_indexes: vec![("IdxV".into(), "TableT".into(), "v".into())],
            ..Default::default()
        })
        .unwrap();
    }

    /// Starts one thread per request, each committing it, and returns once all of them
    /// wait in the queue in the given order (the caller holds the connection).
    fn queue_commits(
        db: &Arc<LedgerDb>,
        reqs: Vec<CommitRequest>,
    ) -> Vec<std::thread::JoinHandle<std::result::Result<Committed, CommitError>>> {
        let mut threads = Vec::new();
        for (i, req) in reqs.into_iter().enumerate() {
            let shared = db.clone();
            threads.push(std::thread::spawn(move || shared.commit(req)));
            while db.group.queued() < i + 1 {
                std::thread::yield_now();
            }
        }
        threads
    }

    /// Commits that wait together are committed in one SQLite transaction, in arrival
    /// order, each seeing the ones before it: a conflict with an earlier member of the
    /// batch refuses only that transaction.
    #[test]
    fn waiting_commits_share_one_sqlite_commit_and_conflict_within_it() {
        let name = LedgerName::parse("g").unwrap();
        let db = Arc::new(
            LedgerDb::create(LedgerLocation::memory(), &name, "GroupStrand00000000001").unwrap(),
        );
        create_table_and_d(&db);
        let before = db.commit_counts();
        let read_d = || {
            vec![ReadCheck::Doc {
                doc_id: "D".into(),
                version: Some(0),
            }]
        };

        // Hold the connection while three commits queue up, in a known order.
        let held = db.conn();
        let threads = queue_commits(
            &db,
            vec![
                write("D", 1, read_d()),
                write("D", 1, read_d()),
                write("E", 0, Vec::new()),
            ],
        );
        drop(held);
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers[0].as_ref().unwrap().sequence_no, 3);
        assert!(
            matches!(answers[1], Err(CommitError::Conflict(_))),
            "{:?}",
            answers[1]
        );
        assert_eq!(answers[2].as_ref().unwrap().sequence_no, 4);
        let after = db.commit_counts();
        assert_eq!((after.0 - before.0, after.1 - before.1), (2, 1));
        // The journal is whole: blocks 0..=4 chained, the conflicting one left no trace.
        assert_eq!(db.tip().unwrap().last_seq, 4);
        assert_eq!(db.document("D").unwrap().unwrap().version, 1);
        assert_eq!(db.document("E").unwrap().unwrap().version, 0);
    }

    /// A request whose writes fail after some of them are in the batch's transaction (here:
    /// its second document is in a table that does not exist) is refused alone and leaves
    /// no trace: the batch is applied again without it, and the requests before and after
    /// it commit, chained, with the sequence numbers they would have had without it.
    #[test]
    fn a_request_whose_writes_fail_midway_is_left_out_of_its_batch() {
        let name = LedgerName::parse("midway").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let location = LedgerLocation::file(dir.path(), &name);
        let db = Arc::new(LedgerDb::create(location, &name, "MidwayStrand0000000001").unwrap());
        create_table_and_d(&db);
        // An index made by its statement, as the verifier wants it.
        db.commit(CommitRequest {
            transaction_id: "tx-index".into(),
            commit_ms: 1_704_067_200_000,
            statements: vec![crate::journal::block::StatementInfo {
                statement: "CREATE INDEX ON T (v)".into(),
                start_time_ms: 1_704_067_200_000,
                statement_digest: vec![7; 32],
            }],
            new_indexes: vec![("IdxV".into(), "TableT".into(), "v".into())],
            ..Default::default()
        })
        .unwrap();
        let before = db.commit_counts();
        let mut half = write("H", 0, Vec::new());
        let mut stray = write("S", 0, Vec::new()).writes.remove(0);
        stray.table_id = "NoSuchTable".into();
        half.writes.push(stray);
        // One that fails before it writes anything: left out with no retry.
        let mut nowhere = write("N", 0, Vec::new());
        nowhere.writes[0].table_id = "NoSuchTable".into();
        for reqs in [
            vec![
                write("I", 0, Vec::new()),
                nowhere,
                write("J", 0, Vec::new()),
            ],
            // In the middle of a batch, and first (where the retry has no request before it).
            vec![
                write("E", 0, Vec::new()),
                half.clone(),
                write("F", 0, Vec::new()),
            ],
            vec![half, write("G", 0, Vec::new())],
        ] {
            let seq = db.tip().unwrap().last_seq;
            let n = reqs.len();
            let held = db.conn();
            let threads = queue_commits(&db, reqs);
            drop(held);
            let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let mut next = seq;
            for (i, a) in answers.iter().enumerate() {
                if i == n - 2 {
                    assert!(
                        matches!(a, Err(CommitError::Conflict(why)) if why.contains("NoSuchTable")),
                        "{a:?}"
                    );
                } else {
                    next += 1;
                    assert_eq!(a.as_ref().unwrap().sequence_no, next, "{answers:?}");
                }
            }
            assert_eq!(db.tip().unwrap().last_seq, next);
        }
        // One SQLite commit per batch; H's first document, its index entry and its block
        // were rolled back with the pass that failed.
        let after = db.commit_counts();
        assert_eq!((after.0 - before.0, after.1 - before.1), (5, 3));
        assert!(db.document("H").unwrap().is_none());
        assert!(db.document("N").unwrap().is_none());
        for doc in ["E", "F", "G", "I", "J"] {
            assert_eq!(db.document(doc).unwrap().unwrap().version, 0, "{doc}");
        }
        let conn = db.conn();
        let entries: i64 = conn
            .query_row(
                "SELECT count(*) FROM index_entries WHERE doc_id = 'H'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(entries, 0);
        drop(conn);
        let tip = db.tip().unwrap().last_seq;
        assert_eq!(db.blocks().unwrap().len() as u64, tip + 1);
        let LedgerLocation::File(path) = db.location().clone() else {
            unreachable!()
        };
        let verified =
            crate::verify::verify_file(&path, "midway", crate::verify::Scope::Everything)
                .unwrap_or_else(|d| panic!("{}", d.message));
        assert_eq!(verified.tip, tip);
    }

    /// A full disk during a group commit (simulated by SQLite's page limit) fails every
    /// transaction of the batch with a clear error, writes nothing, and leaves the ledger
    /// verifiable and serving: the next commit succeeds.
    #[test]
    fn a_full_disk_fails_the_whole_batch_and_the_writer_keeps_serving() {
        let dir = tempfile::tempdir().unwrap();
        let name = LedgerName::parse("full").unwrap();
        let location = crate::storage::sqlite::LedgerLocation::file(dir.path(), &name);
        let db = Arc::new(LedgerDb::create(location, &name, "FullStrand000000000001").unwrap());
        create_table_and_d(&db);
        let tip_before = db.tip().unwrap();
        let big = |doc: &str| {
            let mut req = write(doc, 0, Vec::new());
            req.writes[0].data = Some(Value::structure([(
                "pad",
                Value::string("x".repeat(64 * 1024)),
            )]));
            req
        };

        // The disk is full from now on: the file may not grow by a single page.
        let held = db.conn();
        let pages: i64 = held
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        held.pragma_update(None, "max_page_count", pages).unwrap();
        let threads = queue_commits(
            &db,
            vec![
                write("E", 0, Vec::new()),
                big("F"),
                write("G", 0, Vec::new()),
            ],
        );
        drop(held);
        for t in threads {
            match t.join().unwrap() {
                Err(CommitError::Storage(StorageError::CommitFailed(why))) => {
                    assert!(why.contains("full"), "{why}");
                    assert!(why.contains("not committed"), "{why}");
                }
                other => panic!("expected the batch to fail, got {other:?}"),
            }
        }
        assert_eq!(db.tip().unwrap(), tip_before);
        for doc in ["E", "F", "G"] {
            assert!(db.document(doc).unwrap().is_none(), "{doc} was written");
        }

        // Space comes back: the writer serves the next commit, and the file verifies.
        db.conn()
            .pragma_update(None, "max_page_count", 1_000_000_000i64)
            .unwrap();
        let done = db.commit(write("E", 0, Vec::new())).unwrap();
        assert_eq!(done.sequence_no, tip_before.last_seq + 1);
        let crate::storage::sqlite::LedgerLocation::File(path) = db.location().clone() else {
            unreachable!()
        };
        let verified = crate::verify::verify_file(&path, "full", crate::verify::Scope::Everything)
            .unwrap_or_else(|d| panic!("{}", d.message));
        assert_eq!(verified.tip, done.sequence_no);
    }

    /// A lookup through an index that a concurrent transaction dropped may have found
    /// nothing (the drop deleted the entries): the drop is a conflict for it.
    #[test]
    fn a_dropped_index_conflicts_with_a_lookup_through_it() {
        let name = LedgerName::parse("drop").unwrap();
        let db =
            LedgerDb::create(LedgerLocation::memory(), &name, "DropStrand000000000001").unwrap();
        create_table_and_d(&db);
        create_index_on_v(&db);
        let as_of = db.tip().unwrap().last_seq;
        db.commit(CommitRequest {
            transaction_id: "tx-drop".into(),
            commit_ms: 1_704_067_200_000,
            dropped_indexes: vec![("IdxV".into(), "TableT".into())],
            ..Default::default()
        })
        .unwrap();
        let looked_up = vec![ReadCheck::IndexKey {
            index_id: "IdxV".into(),
            key: index_key(&Value::int(0)),
            as_of,
        }];
        match db.commit(write("E", 0, looked_up.clone())) {
            Err(CommitError::Conflict(why)) => assert!(why.contains("dropped"), "{why}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(
            db.validate(&looked_up),
            Err(CommitError::Conflict(_))
        ));
    }

    /// An index key changed after a lookup conflicts with it: within one group commit (the
    /// later member sees the earlier one's change) and after it (commit and read-only
    /// validation), while a lookup as of the change passes. Nothing is written to the file
    /// for it (the writer keeps key changes in memory).
    #[test]
    fn a_key_changed_after_a_lookup_conflicts_within_and_after_a_batch() {
        let name = LedgerName::parse("keys").unwrap();
        let db = Arc::new(
            LedgerDb::create(LedgerLocation::memory(), &name, "KeysStrand000000000001").unwrap(),
        );
        create_table_and_d(&db);
        create_index_on_v(&db);
        let as_of = db.tip().unwrap().last_seq;
        // E gets v = 0, the key the lookups below found empty of E.
        let lookup = |as_of| {
            vec![ReadCheck::IndexKey {
                index_id: "IdxV".into(),
                key: index_key(&Value::int(0)),
                as_of,
            }]
        };
        let held = db.conn();
        let threads = queue_commits(
            &db,
            vec![write("E", 0, Vec::new()), write("F", 5, lookup(as_of))],
        );
        drop(held);
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let e_seq = answers[0].as_ref().unwrap().sequence_no;
        assert!(
            matches!(answers[1], Err(CommitError::Conflict(_))),
            "{:?}",
            answers[1]
        );
        assert!(matches!(
            db.commit(write("G", 5, lookup(as_of))),
            Err(CommitError::Conflict(_))
        ));
        assert!(matches!(
            db.validate(&lookup(as_of)),
            Err(CommitError::Conflict(_))
        ));
        db.validate(&lookup(e_seq)).unwrap();
        db.commit(write("G", 5, lookup(e_seq))).unwrap();
        let rows: i64 = db
            .conn()
            .query_row("SELECT count(*) FROM index_key_seq", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
