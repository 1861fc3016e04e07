//! `qldb-local verify`: proves offline that nobody edited a ledger file.
//!
//! For every block, in order, it recomputes from the stored data: each revision's hash
//! (from the block's own revision and from the `revisions` table row, which must agree),
//! the revisions' Merkle root and H(transactionInfo) (both must be entries), the entries
//! hash, the block hash, the link to the previous block, and the digest-tree leaf; then the
//! digest at the tip from the stored tree against the recomputed chain. It reads inside one
//! SQLite read transaction on a read-only connection, so it works on a live data dir
//! without blocking the writer. The first mismatch is reported with its block.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::ion::binary::decode;
use crate::ion::hash::ion_hash;
use crate::ion::{Data, Value};
use crate::journal::block::{hash_field, hash_list};
use crate::journal::hash::{dot, merkle, Hash};
use crate::storage::sqlite::stored::{decode_block, DATA_IN_BLOCK};

/// A verified ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub ledger: String,
    pub blocks: u64,
    pub tip: u64,
    pub digest: Hash,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger {ledger}: {}{message}", block.map(|b| format!("block {b}: ")).unwrap_or_default())]
pub struct Damage {
    pub ledger: String,
    pub block: Option<u64>,
    pub message: String,
}

fn open_ro(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

/// The ledgers of a data dir (all of them, or the one named).
pub fn ledger_names(data_dir: &Path, only: Option<&str>) -> Result<Vec<String>, Damage> {
    let fail = |message: String| Damage {
        ledger: only.unwrap_or("*").into(),
        block: None,
        message,
    };
    let catalog = open_ro(&data_dir.join("catalog.sqlite"))
        .map_err(|e| fail(format!("cannot open the catalog: {e}")))?;
    let mut stmt = catalog
        .prepare("SELECT name FROM ledgers ORDER BY ord")
        .map_err(|e| fail(e.to_string()))?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| fail(e.to_string()))?;
    match only {
        None => Ok(names),
        Some(n) if names.iter().any(|x| x == n) => Ok(vec![n.to_string()]),
        Some(n) => Err(fail(format!(
            "no ledger named {n} in {}",
            data_dir.display()
        ))),
    }
}

/// Verifies every ledger of a data directory (none if it holds no catalog yet).
pub fn verify_data_dir(data_dir: &Path) -> Result<Vec<Verified>, Damage> {
    if !data_dir.join("catalog.sqlite").exists() {
        return Ok(Vec::new());
    }
    ledger_names(data_dir, None)?
        .iter()
        .map(|name| verify_ledger(data_dir, name))
        .collect()
}

/// Verifies one ledger file: its journal and every table derived from it.
pub fn verify_ledger(data_dir: &Path, name: &str) -> Result<Verified, Damage> {
    verify_ledger_reporting(data_dir, name, &mut |_, _| {})
}

/// [`verify_ledger`], calling `report(blocks checked, blocks)` as the journal is read.
pub fn verify_ledger_reporting(
    data_dir: &Path,
    name: &str,
    report: &mut dyn FnMut(u64, u64),
) -> Result<Verified, Damage> {
    let path =
        crate::storage::sqlite::catalog::ledgers_dir(data_dir).join(format!("{name}.sqlite"));
    verify_file_reporting(&path, name, Scope::Everything, report)
}

/// What [`verify_file`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The hash-chained journal only (the blocks table): what `rebuild` starts from.
    Journal,
    /// The journal and every table derived from it.
    Everything,
}

/// Verifies the ledger file at `path`, which must belong to ledger `name`.
pub fn verify_file(path: &Path, name: &str, scope: Scope) -> Result<Verified, Damage> {
    verify_file_reporting(path, name, scope, &mut |_, _| {})
}

/// [`verify_file`], calling `report(blocks checked, blocks)` as the journal is read.
pub fn verify_file_reporting(
    path: &Path,
    name: &str,
    scope: Scope,
    report: &mut dyn FnMut(u64, u64),
) -> Result<Verified, Damage> {
    let full = scope == Scope::Everything;
    let damage = |block: Option<u64>, message: String| Damage {
        ledger: name.to_string(),
        block,
        message,
    };
    let mut conn =
        open_ro(path).map_err(|e| damage(None, format!("cannot open {}: {e}", path.display())))?;
    let tx = conn
        .transaction()
        .map_err(|e| damage(None, e.to_string()))?;
    // The derived tables are read in this version's schema; the journal alone (what rebuild
    // reads, also from a file an upgrade could not migrate) is read in any.
    if full {
        crate::storage::sqlite::journal::not_older(&tx).map_err(|why| damage(None, why))?;
    }
    let sql = |e: rusqlite::Error| damage(None, format!("cannot read: {e}"));
    let strand: String = tx
        .query_row("SELECT value FROM meta WHERE key = 'strand_id'", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    // The file's identity: exactly its ledger's name and strand.
    let meta_rows: i64 = tx
        .query_row("SELECT count(*) FROM meta", [], |r| r.get(0))
        .map_err(sql)?;
    let own_name: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'ledger_name'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let imported_through: Option<u64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'imported_through'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(sql)?
        .and_then(|t| t.parse().ok());
    let expected_rows = if imported_through.is_some() { 3 } else { 2 };
    if meta_rows != expected_rows || own_name.as_deref() != Some(name) {
        return Err(damage(
            None,
            "the meta table does not name this ledger and its strand (ledger_name, strand_id)"
                .into(),
        ));
    }

    // Revision rows per block, counted in one pass (no index orders revisions by block).
    let mut rows_per_block: HashMap<i64, i64> = HashMap::new();
    if full {
        let mut stmt = tx
            .prepare("SELECT seq, COUNT(*) FROM revisions GROUP BY seq")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            rows_per_block.insert(r.get(0).map_err(sql)?, r.get(1).map_err(sql)?);
        }
    }
    let total: i64 = tx
        .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
        .map_err(sql)?;
    let mut stmt = tx
        .prepare("SELECT seq, block_hash, ion FROM blocks ORDER BY seq")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut prev: Hash = vec![0; 32];
    let mut leaves: Vec<Hash> = Vec::new();
    let mut expected_seq = 0u64;
    let mut replay = Replay {
        imported_through,
        ..Replay::default()
    };
    while let Some(row) = rows.next().map_err(sql)? {
        let seq: i64 = row.get(0).map_err(sql)?;
        let seq = seq as u64;
        if seq != expected_seq {
            return Err(damage(
                Some(expected_seq),
                format!("is missing (the next stored block is {seq})"),
            ));
        }
        let stored_hash: Hash = row.get(1).map_err(sql)?;
        let ion: Vec<u8> = row.get(2).map_err(sql)?;
        let at = |m: &str| damage(Some(seq), m.to_string());
        let block = decode_block(&ion).map_err(|_| at("its stored Ion cannot be decoded"))?;
        let checked = check_block(&block, seq, &strand, &prev).map_err(|m| at(&m))?;
        if let Some(ri) = block.field("redactionInfo") {
            replay.redactions(ri, seq).map_err(|m| at(&m))?;
        }
        let tx_id = match block.field("transactionId").map(|v| &v.data) {
            Some(Data::String(t)) => t.clone(),
            _ => String::new(),
        };
        let statements = replay.statements_of(&block);
        if let Some(Data::List(revs)) = block.field("revisions").map(|r| &r.data) {
            let mut user = 0i64;
            for (position, (r, c)) in revs.iter().zip(&checked.revisions).enumerate() {
                let (Some(meta), Some(data_hash)) = (r.field("metadata"), &c.user) else {
                    replay
                        .system_revisions
                        .push((c.hash.clone(), seq, tx_id.clone()));
                    continue;
                };
                user += 1;
                if full {
                    check_revision_row(&tx, r, meta, &c.hash, data_hash.as_deref())
                        .map_err(|m| at(&m))?;
                }
                let table_id = document_table(&block, meta);
                replay
                    .user_revision(
                        full.then_some(&tx),
                        seq,
                        position,
                        meta,
                        table_id,
                        data_hash.clone(),
                    )
                    .map_err(|m| at(&m))?;
            }
            let stored_rows = rows_per_block.get(&(seq as i64)).copied().unwrap_or(0);
            if full && stored_rows != user {
                return Err(at(&format!("the block has {user} document revisions but the revisions table holds {stored_rows}")));
            }
        }
        // The blocks table's block_hash column is the chain itself (the digest tree and
        // rebuild read it), so it is checked at every scope.
        if stored_hash != checked.hash {
            return Err(at("its blockHash does not match its contents"));
        }
        let block_hash = checked.hash;
        prev = block_hash.clone();
        leaves.push(block_hash);
        replay.blocks.push(BlockFacts { tx_id, statements });
        expected_seq += 1;
        report(expected_seq, total as u64);
    }
    if leaves.is_empty() {
        return Err(damage(None, "the journal has no blocks".into()));
    }
    let tip = leaves.len() as u64 - 1;
    let digest = merkle(&leaves);
    if !full {
        return Ok(Verified {
            ledger: name.to_string(),
            blocks: tip + 1,
            tip,
            digest,
        });
    }
    // Every stored node of the digest tree must be the hash of the blocks it covers.
    let mut stored: HashMap<(i64, i64), Hash> = HashMap::new();
    {
        // A node is found by the block that completes it (schema v9).
        let misplaced: Option<(i64, i64)> = tx
            .query_row(
                "SELECT level, idx FROM merkle WHERE done IS NOT ((idx + 1) << level) - 1 LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        if let Some((level, idx)) = misplaced {
            return Err(damage(
                None,
                format!(
                    "digest tree node (level {level}, index {idx}) is stored under the wrong block"
                ),
            ));
        }
        let mut stmt = tx
            .prepare("SELECT level, idx, hash FROM merkle")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
            .map_err(sql)?;
        for row in rows {
            let (k, v) = row.map_err(sql)?;
            stored.insert(k, v);
        }
    }
    check_tree(leaves.clone(), &stored).map_err(|(block, m)| damage(block, m))?;
    let from_tree = crate::journal::merkle::root(tip + 1, |level, idx| {
        stored.get(&(level as i64, idx as i64)).cloned().ok_or(())
    })
    .map_err(|()| damage(None, "the digest tree is incomplete".into()))?;
    if from_tree != digest {
        return Err(damage(
            None,
            "the stored digest tree does not match the chain of block hashes".into(),
        ));
    }
    drop(rows);
    drop(stmt);
    // The checks the server makes before it serves the file (schema, identity, tip), after
    // the chain so that a damaged block is named.
    crate::storage::sqlite::journal::open_check(&tx, name).map_err(|why| damage(None, why))?;
    replay
        .check_derived_state(&tx, tip)
        .map_err(|(block, m)| damage(block, m))?;
    Ok(Verified {
        ledger: name.to_string(),
        blocks: tip + 1,
        tip,
        digest,
    })
}

/// Every stored node of a digest tree ((level, index) → hash) is the hash of the blocks it
/// covers (`leaves`, the recomputed block hashes), and no other node is stored; else the
/// first block the damage touches (for a leaf) and what is wrong.
fn check_tree(
    leaves: Vec<Hash>,
    stored: &HashMap<(i64, i64), Hash>,
) -> Result<(), (Option<u64>, String)> {
    let (mut level, mut height, mut expected_nodes) = (leaves, 0i64, 0usize);
    while !level.is_empty() {
        for (i, h) in level.iter().enumerate() {
            expected_nodes += 1;
            if stored.get(&(height, i as i64)) != Some(h) {
                let span = 1u64 << height;
                let first = i as u64 * span;
                return Err((
                    (height == 0).then_some(first),
                    format!(
                        "the digest-tree node covering blocks {first}..{} does not match those blocks",
                        first + span - 1
                    ),
                ));
            }
        }
        level = level.chunks_exact(2).map(|p| dot(&p[0], &p[1])).collect();
        height += 1;
    }
    if stored.len() != expected_nodes {
        return Err((
            None,
            "the digest tree holds nodes for blocks that do not exist".into(),
        ));
    }
    Ok(())
}

/// One revision of a checked block.
pub struct CheckedRevision {
    pub hash: Hash,
    /// A document revision's data hash (`Some(None)`: a deletion, no data); `None` for a
    /// system revision (`{hash}` alone, not recomputable).
    pub user: Option<Option<Hash>>,
}

/// A block whose hashes were recomputed.
pub struct CheckedBlock {
    pub hash: Hash,
    pub revisions: Vec<CheckedRevision>,
}

/// Recomputes one block's hashes as AWS's verifiers do (journal-and-verification.md
/// §3.5–3.9): its address is `strand`/`seq`, it links to `prev`, H(transactionInfo),
/// H(redactionInfo) and the revisions' Merkle root are entries, every document revision's
/// hash is its metadata's and data's, the entries hash is the entries' root and the block
/// hash joins it to `prev`. Entries besides those (QLDB wrote internal ones) are accepted.
pub fn check_block(
    block: &Value,
    seq: u64,
    strand: &str,
    prev: &[u8],
) -> Result<CheckedBlock, String> {
    let address = block.field("blockAddress").ok_or("has no blockAddress")?;
    if address.field("strandId").map(|v| &v.data) != Some(&Data::String(strand.to_string()))
        || address.field("sequenceNo").map(|v| &v.data) != Some(&Data::Int(seq.into()))
    {
        return Err("its blockAddress does not match its position in the journal".into());
    }
    let previous = hash_field(block, "previousBlockHash").ok_or("has no previousBlockHash")?;
    if previous != prev {
        return Err("its previousBlockHash is not the hash of the block before it".into());
    }
    let list = hash_list(block, "entriesHashList").ok_or("has no entriesHashList of hashes")?;
    if let Some(ti) = block.field("transactionInfo") {
        if !list.contains(&ion_hash(ti).to_vec()) {
            return Err("its transactionInfo does not hash to an entry of entriesHashList".into());
        }
    }
    if let Some(ri) = block.field("redactionInfo") {
        if !list.contains(&ion_hash(ri).to_vec()) {
            return Err("its redactionInfo does not hash to an entry of entriesHashList".into());
        }
    }
    let mut revisions = Vec::new();
    if let Some(revs) = block.field("revisions") {
        let Data::List(revs) = &revs.data else {
            return Err("its revisions are not a list".into());
        };
        for r in revs {
            let hash = hash_field(r, "hash").ok_or("a revision has no hash")?;
            let user = match r.field("metadata") {
                None => None,
                Some(meta) => {
                    let meta_hash = ion_hash(meta);
                    let data_hash = match (r.field("data"), hash_field(r, "dataHash")) {
                        (Some(d), _) => Some(ion_hash(d).to_vec()),
                        (None, Some(dh)) => Some(dh),
                        (None, None) => None,
                    };
                    let want = match &data_hash {
                        Some(d) => dot(&meta_hash, d),
                        None => meta_hash.to_vec(),
                    };
                    if want != hash {
                        return Err("a revision's hash does not match its metadata and data".into());
                    }
                    Some(data_hash)
                }
            };
            revisions.push(CheckedRevision { hash, user });
        }
        let hashes: Vec<Hash> = revisions.iter().map(|r| r.hash.clone()).collect();
        if !list.contains(&merkle(&hashes)) {
            return Err("its revisions do not hash to an entry of entriesHashList".into());
        }
    }
    let entries_hash = merkle(&list);
    if hash_field(block, "entriesHash") != Some(entries_hash.clone()) {
        return Err("its entriesHash is not the Merkle root of its entriesHashList".into());
    }
    let block_hash = dot(&entries_hash, prev);
    if hash_field(block, "blockHash") != Some(block_hash.clone()) {
        return Err("its blockHash does not match its contents".into());
    }
    Ok(CheckedBlock {
        hash: block_hash,
        revisions,
    })
}

/// What one block says that the derived tables must agree with.
struct BlockFacts {
    tx_id: String,
    statements: Vec<String>,
}

/// The state the journal implies, collected block by block from verified blocks: what
/// every table derived from the journal (documents, revisions' side columns, the table
/// and index catalog, index entries) must hold.
#[derive(Default)]
struct Replay {
    blocks: Vec<BlockFacts>,
    /// Table system revisions: (hash, block).
    system_revisions: Vec<(Hash, u64, String)>,
    /// Document id → (table id, version, data hash; `None` after a delete).
    latest: HashMap<String, (String, i64, Option<Hash>)>,
    /// (document id, version) → the block whose redactionInfo names it.
    redacted: HashMap<(String, i64), u64>,
    /// Table id → the last block that wrote one of its documents.
    table_writes: HashMap<String, u64>,
    user_revisions: i64,
    /// Blocks up to here were imported from QLDB, whose system revisions are opaque.
    imported_through: Option<u64>,
}

type Found = Result<(), (Option<u64>, String)>;

pub(crate) fn text_field(v: &Value, name: &str) -> Option<String> {
    match v.field(name).map(|f| &f.data) {
        Some(Data::String(s)) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn int_field(v: &Value, name: &str) -> Option<i64> {
    match v.field(name).map(|f| &f.data) {
        Some(Data::Int(i)) => i64::try_from(i.clone()).ok(),
        _ => None,
    }
}

/// The table id `transactionInfo.documents` gives a revision's document.
fn document_table(block: &Value, meta: &Value) -> Option<String> {
    let id = text_field(meta, "id")?;
    let doc = block
        .field("transactionInfo")?
        .field("documents")?
        .field(&id)?;
    text_field(doc, "tableId")
}

impl Replay {
    fn statements_of(&self, block: &Value) -> Vec<String> {
        match block
            .field("transactionInfo")
            .and_then(|t| t.field("statements"))
            .map(|s| &s.data)
        {
            Some(Data::List(items)) => items
                .iter()
                .filter_map(|i| text_field(i, "statement"))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn redactions(&mut self, info: &Value, seq: u64) -> Result<(), String> {
        let Some(Data::List(items)) = info.field("revisions").map(|r| &r.data) else {
            return Err("its redactionInfo has no list of revisions".into());
        };
        for r in items {
            match (text_field(r, "documentId"), int_field(r, "version")) {
                (Some(doc), Some(version)) => {
                    self.redacted.insert((doc, version), seq);
                }
                _ => return Err("its redactionInfo names a revision without id and version".into()),
            }
        }
        Ok(())
    }

    /// One verified user revision: its `revisions` row's side columns must be what the
    /// block says, and it advances its document's derived state.
    fn user_revision(
        &mut self,
        tx: Option<&rusqlite::Transaction<'_>>,
        seq: u64,
        position: usize,
        meta: &Value,
        table_id: Option<String>,
        data_hash: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let (Some(id), Some(version)) = (text_field(meta, "id"), int_field(meta, "version")) else {
            return Err("a revision's metadata has no id or version".into());
        };
        let Some(table_id) = table_id else {
            return Err(format!(
                "revision {id} version {version} is not listed in transactionInfo.documents"
            ));
        };
        if let Some(tx) = tx {
            check_revision_side_columns(tx, seq, position, meta, &id, version, &table_id)?;
        }
        let expected_version = self.latest.get(&id).map_or(0, |(_, v, _)| v + 1);
        if version != expected_version {
            return Err(format!(
                "revision {id} version {version} follows version {}",
                expected_version - 1
            ));
        }
        self.table_writes.insert(table_id.clone(), seq);
        self.latest.insert(id, (table_id, version, data_hash));
        self.user_revisions += 1;
        Ok(())
    }

    /// Compares every derived table with what the journal implies; the first difference is
    /// reported with the block it should have come from, when there is one.
    fn check_derived_state(&self, tx: &rusqlite::Transaction<'_>, tip: u64) -> Found {
        let sql = |e: rusqlite::Error| (None, format!("cannot read: {e}"));
        // Block side columns: the transaction id and timestamp stored next to each block.
        {
            let mut stmt = tx
                .prepare("SELECT seq, tx_id, ts_ms, ion FROM blocks")
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(r) = rows.next().map_err(sql)? {
                let (seq, tx_id, ts_ms, ion): (i64, String, i64, Vec<u8>) = (
                    r.get(0).map_err(sql)?,
                    r.get(1).map_err(sql)?,
                    r.get(2).map_err(sql)?,
                    r.get(3).map_err(sql)?,
                );
                let block = decode_block(&ion).ok();
                let block = block.as_ref();
                if block.and_then(|b| text_field(b, "transactionId")) != Some(tx_id) {
                    return Err((
                        Some(seq as u64),
                        "the blocks table's tx_id differs from the block".into(),
                    ));
                }
                if block.and_then(|b| b.field("blockTimestamp"))
                    != Some(&crate::journal::block::ts(ts_ms))
                {
                    return Err((
                        Some(seq as u64),
                        "the blocks table's ts_ms differs from the block".into(),
                    ));
                }
            }
        }
        // Revisions: exactly the journal's, redacted exactly where a block redacted them.
        let rows: i64 = tx
            .query_row("SELECT COUNT(*) FROM revisions", [], |r| r.get(0))
            .map_err(sql)?;
        if rows != self.user_revisions {
            return Err((
                None,
                format!(
                    "the revisions table holds {rows} rows; the journal has {} document revisions",
                    self.user_revisions
                ),
            ));
        }
        {
            let mut stmt = tx
                .prepare(
                    "SELECT doc_id, version, redacted_seq, data IS NULL, data_hash IS NULL FROM revisions
                     WHERE redacted_seq IS NOT NULL OR data IS NULL",
                )
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            let mut redacted_rows = 0usize;
            while let Some(r) = rows.next().map_err(sql)? {
                let (doc, version): (String, i64) =
                    (r.get(0).map_err(sql)?, r.get(1).map_err(sql)?);
                let (redacted_seq, no_data, no_hash): (Option<i64>, bool, bool) = (
                    r.get(2).map_err(sql)?,
                    r.get(3).map_err(sql)?,
                    r.get(4).map_err(sql)?,
                );
                let by = self.redacted.get(&(doc.clone(), version)).copied();
                match (redacted_seq, by) {
                    (None, None) if no_hash => continue, // a delete
                    (Some(s), Some(b)) if s as u64 == b && no_data => redacted_rows += 1,
                    _ => {
                        return Err((by, format!(
                            "revision {doc} version {version} is marked redacted or lost its data, \
                             but the journal {}",
                            if by.is_some() { "redacted it differently" } else { "never redacted it" }
                        )))
                    }
                }
            }
            if redacted_rows != self.redacted.len() {
                return Err((
                    None,
                    format!(
                    "the journal redacted {} revisions; the revisions table shows {redacted_rows}",
                    self.redacted.len()
                ),
                ));
            }
        }
        // Every table and index has the number that rows name it by.
        let unnumbered: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM tables WHERE table_no IS NULL)
                     OR EXISTS (SELECT 1 FROM indexes WHERE index_no IS NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if unnumbered {
            return Err((None, "a table or index has no number".into()));
        }
        // Documents: the latest revision of every live document, nothing else.
        let mut docs: HashMap<String, (String, Value)> = HashMap::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT d.doc_id, coalesce(t.table_id, ''), d.version, d.data
                     FROM documents d LEFT JOIN tables t ON t.table_no = d.table_no",
                )
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(r) = rows.next().map_err(sql)? {
                let (doc, table, version, data): (String, String, i64, Vec<u8>) = (
                    r.get(0).map_err(sql)?,
                    r.get(1).map_err(sql)?,
                    r.get(2).map_err(sql)?,
                    r.get(3).map_err(sql)?,
                );
                let value = decode(&data).ok().and_then(|mut v| v.pop());
                let ok = match (self.latest.get(&doc), &value) {
                    (Some((t, v, Some(h))), Some(value)) => {
                        *t == table && *v == version && ion_hash(value).as_slice() == h.as_slice()
                    }
                    _ => false,
                };
                if !ok {
                    return Err((None, format!(
                        "the documents table's row for {doc} is not the latest revision of that document"
                    )));
                }
                docs.insert(doc, (table, value.expect("checked above")));
            }
        }
        for (doc, (_, _, data)) in &self.latest {
            if data.is_some() && !docs.contains_key(doc) {
                return Err((
                    None,
                    format!("document {doc} is missing from the documents table"),
                ));
            }
        }
        // Tables: each row's current version is a system revision of the journal, and the
        // journal holds exactly the system revisions of all tables' versions.
        let mut tables: HashMap<String, String> = HashMap::new();
        let mut versions_total = 0usize;
        {
            let mut stmt = tx
                .prepare(
                    "SELECT table_id, name, status, version, created_seq, modified_seq FROM tables",
                )
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(r) = rows.next().map_err(sql)? {
                let (id, name, status): (String, String, String) = (
                    r.get(0).map_err(sql)?,
                    r.get(1).map_err(sql)?,
                    r.get(2).map_err(sql)?,
                );
                let (version, created, modified): (i64, i64, i64) = (
                    r.get(3).map_err(sql)?,
                    r.get(4).map_err(sql)?,
                    r.get(5).map_err(sql)?,
                );
                versions_total += version as usize + 1;
                let revision_hash = |version: i64, status: &str, seq: u64| -> Option<Hash> {
                    let ts_ms: i64 = tx
                        .query_row(
                            "SELECT ts_ms FROM blocks WHERE seq = ?1",
                            [seq as i64],
                            |r| r.get(0),
                        )
                        .ok()?;
                    let rev = crate::journal::block::Revision {
                        metadata: crate::journal::block::RevisionMetadata {
                            id: id.clone(),
                            version: version as u64,
                            tx_time_ms: ts_ms,
                            tx_id: self.blocks.get(seq as usize)?.tx_id.clone(),
                        },
                        body: crate::journal::block::RevisionBody::Data(Value::structure([
                            ("name", Value::string(name.clone())),
                            ("status", Value::string(status)),
                        ])),
                    };
                    Some(rev.hash())
                };
                let is_system = |h: &Option<Hash>, seq: u64| {
                    h.as_ref().is_some_and(|h| {
                        self.system_revisions
                            .iter()
                            .any(|(x, s, _)| x == h && *s == seq)
                    })
                };
                let created = created as u64;
                // A table created in a block imported from QLDB may have an id its
                // creation's (opaque) system revision does not show: its CREATE TABLE
                // statement must be in that block.
                let opaque = self.imported_through.is_some_and(|t| created <= t)
                    && !is_system(&revision_hash(0, "ACTIVE", created), created);
                if opaque {
                    let creates = self.blocks.get(created as usize).is_some_and(|b| {
                        b.statements.iter().any(|st| {
                            matches!(
                                crate::partiql::parse_statement(st),
                                Ok(crate::partiql::ast::Statement::CreateTable { name: ref n, .. }) if *n == name
                            )
                        })
                    });
                    if !creates || !matches!(status.as_str(), "ACTIVE" | "INACTIVE") {
                        return Err((
                            Some(created),
                            format!("table {id} ({name}) was not created in the block its created_seq names"),
                        ));
                    }
                    versions_total -= version as usize + 1;
                } else if !is_system(&revision_hash(0, "ACTIVE", created), created) {
                    return Err((
                        Some(created),
                        format!(
                        "table {id} ({name}) was not created in the block its created_seq names"
                    ),
                    ));
                }
                let current = opaque
                    || self
                        .system_revisions
                        .iter()
                        .map(|(_, s, _)| *s)
                        .any(|s| is_system(&revision_hash(version, &status, s), s));
                if !current || !matches!(status.as_str(), "ACTIVE" | "INACTIVE") {
                    return Err((None, format!(
                        "table {id}: its name, status and version ({name}, {status}, {version}) are not a revision of the journal"
                    )));
                }
                let last_write = self.table_writes.get(&id).copied().unwrap_or(created);
                if (modified as u64) < last_write.max(created) || modified as u64 > tip {
                    return Err((
                        None,
                        format!("table {id}: modified_seq {modified} is not its last change"),
                    ));
                }
                tables.insert(id, name);
            }
        }
        // Imported blocks may hold system revisions of QLDB's own, which match nothing.
        let unmatched_allowed = self.imported_through.is_some();
        if versions_total > self.system_revisions.len()
            || (!unmatched_allowed && versions_total != self.system_revisions.len())
        {
            return Err((None, format!(
                "the journal has {} table revisions; the tables table accounts for {versions_total}",
                self.system_revisions.len()
            )));
        }
        for (doc, (table, _)) in &docs {
            if !tables.contains_key(table) {
                return Err((
                    None,
                    format!("document {doc} belongs to table {table}, which does not exist"),
                ));
            }
        }
        // Indexes: created by a CREATE INDEX statement of their block; their entries are
        // exactly the keys of the live documents of their table.
        let mut expected: std::collections::BTreeSet<(String, Vec<u8>, String)> =
            Default::default();
        let mut index_ids = std::collections::HashSet::new();
        let mut index_defs: Vec<(String, String, String, u64)> = Vec::new();
        {
            let mut stmt = tx
                .prepare("SELECT index_id, table_id, field, created_seq FROM indexes")
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            while let Some(r) = rows.next().map_err(sql)? {
                let (index_id, table_id, field, created): (String, String, String, i64) = (
                    r.get(0).map_err(sql)?,
                    r.get(1).map_err(sql)?,
                    r.get(2).map_err(sql)?,
                    r.get(3).map_err(sql)?,
                );
                let created = created as u64;
                let name = tables.get(&table_id);
                let made_there = self.blocks.get(created as usize).is_some_and(|b| {
                    b.statements.iter().any(|text| {
                        matches!(crate::partiql::parse_statement(text),
                            Ok(crate::partiql::ast::Statement::CreateIndex { table, field: f })
                                if Some(&table) == name && f == field)
                    })
                });
                if !made_there {
                    return Err((Some(created), format!(
                        "index {index_id} on {table_id} ({field}) was not created by a statement of the block its created_seq names"
                    )));
                }
                for (doc, (table, data)) in &docs {
                    if *table == table_id {
                        if let Some(v) = data.field(&field) {
                            expected.insert((
                                index_id.clone(),
                                crate::storage::index_key(v),
                                doc.clone(),
                            ));
                        }
                    }
                }
                index_defs.push((index_id.clone(), table_id, field, created));
                index_ids.insert(index_id);
            }
        }
        {
            let mut stmt = tx
                .prepare(
                    "SELECT coalesce(i.index_id, ''), e.key, e.doc_id
                     FROM index_entries e LEFT JOIN indexes i ON i.index_no = e.index_no",
                )
                .map_err(sql)?;
            let mut rows = stmt.query([]).map_err(sql)?;
            let mut found = 0usize;
            while let Some(r) = rows.next().map_err(sql)? {
                let entry: (String, Vec<u8>, String) = (
                    r.get(0).map_err(sql)?,
                    r.get(1).map_err(sql)?,
                    r.get(2).map_err(sql)?,
                );
                if !expected.contains(&entry) {
                    return Err((
                        None,
                        format!(
                            "index {} has an entry for document {} that its data does not imply",
                            entry.0, entry.2
                        ),
                    ));
                }
                found += 1;
            }
            if found != expected.len() {
                return Err((
                    None,
                    format!(
                        "the index entries miss {} keys of live documents",
                        expected.len() - found
                    ),
                ));
            }
        }
        // OCC bookkeeping: each per-key sequence number is the last block that changed that
        // key of that index, as a replay of the journal finds it. (A missing row is not
        // damage: the schema-v5 rebuild cleared them; a dropped index keeps its rows.)
        let dropped: std::collections::HashSet<String> = self
            .blocks
            .iter()
            .flat_map(|b| &b.statements)
            .filter_map(|text| match crate::partiql::parse_statement(text) {
                Ok(crate::partiql::ast::Statement::DropIndex { index_id, .. }) => Some(index_id),
                _ => None,
            })
            .collect();
        let (last_change, hidden) = self.index_key_changes(tx, &index_defs).map_err(sql)?;
        let mut stmt = tx
            .prepare("SELECT index_id, key, seq FROM index_key_seq")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let (index_id, key, seq): (String, Vec<u8>, i64) = (
                r.get(0).map_err(sql)?,
                r.get(1).map_err(sql)?,
                r.get(2).map_err(sql)?,
            );
            let known = index_ids.contains(&index_id) || dropped.contains(&index_id);
            let consistent = match last_change.get(&(index_id.clone(), key)) {
                Some(Some(s)) => *s == seq as u64,
                // The replay could not know (a redacted revision hides the key).
                Some(None) => true,
                // A key only a redacted revision held is not in the replay at all.
                None => dropped.contains(&index_id) || hidden.contains(&index_id),
            };
            if !known || seq < 1 || seq as u64 > tip || !consistent {
                return Err((None, format!(
                    "index_key_seq row of index {index_id} (block {seq}) is not the last change of that key"
                )));
            }
        }
        Ok(())
    }

    /// Replays the journal's document revisions against the current indexes: the last
    /// block that changed each (index, key); `None` where a redacted revision hides it.
    /// Also the indexes where a redacted revision hid a key entirely.
    #[allow(clippy::type_complexity)]
    fn index_key_changes(
        &self,
        tx: &rusqlite::Transaction<'_>,
        indexes: &[(String, String, String, u64)],
    ) -> rusqlite::Result<(
        HashMap<(String, Vec<u8>), Option<u64>>,
        std::collections::HashSet<String>,
    )> {
        let mut out: HashMap<(String, Vec<u8>), Option<u64>> = HashMap::new();
        let mut hidden = std::collections::HashSet::new();
        if indexes.is_empty() {
            return Ok((out, hidden));
        }
        // Document id → its latest data (`Some(None)`: redacted, its data unknown).
        let mut current: HashMap<String, Option<Value>> = HashMap::new();
        let mut stmt = tx.prepare("SELECT seq, ion FROM blocks ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (seq, ion): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
            let Ok(block) = decode_block(&ion) else {
                continue;
            };
            let Some(Data::List(revs)) = block.field("revisions").map(|v| &v.data) else {
                continue;
            };
            for rev in revs {
                let Some(meta) = rev.field("metadata") else {
                    continue;
                };
                let (Some(id), Some(table)) =
                    (text_field(meta, "id"), document_table(&block, meta))
                else {
                    continue;
                };
                let old: Option<Option<Value>> = current.get(&id).cloned();
                let new: Option<Option<Value>> = match (rev.field("data"), rev.field("dataHash")) {
                    (Some(d), _) => Some(Some(d.clone())),
                    (None, Some(_)) => Some(None),
                    (None, None) => None,
                };
                for (index_id, table_id, field, created) in indexes {
                    if *table_id != table || (seq as u64) < *created {
                        continue;
                    }
                    let key_of = |v: &Option<Option<Value>>| -> Result<Option<Vec<u8>>, ()> {
                        match v {
                            None => Ok(None),
                            Some(None) => Err(()),
                            Some(Some(d)) => Ok(d.field(field).map(crate::storage::index_key)),
                        }
                    };
                    let (a, b) = (key_of(&old), key_of(&new));
                    let when = match (&a, &b) {
                        (Ok(x), Ok(y)) if x == y => continue,
                        (Ok(_), Ok(_)) => Some(seq as u64),
                        _ => {
                            hidden.insert(index_id.clone());
                            None
                        }
                    };
                    for k in [a.ok().flatten(), b.ok().flatten()].into_iter().flatten() {
                        out.insert((index_id.clone(), k), when);
                    }
                }
                match new {
                    Some(v) => current.insert(id, v),
                    None => current.remove(&id),
                };
            }
        }
        Ok((out, hidden))
    }
}

/// A user revision's `revisions` row: its side columns must be what the block says.
fn check_revision_side_columns(
    tx: &rusqlite::Transaction<'_>,
    seq: u64,
    position: usize,
    meta: &Value,
    id: &str,
    version: i64,
    table_id: &str,
) -> Result<(), String> {
    #[allow(clippy::type_complexity)]
    let (row_table, row_seq, row_pos, row_ms, row_tx, restated): (
        String,
        i64,
        i64,
        i64,
        String,
        bool,
    ) = tx
        .query_row(
            "SELECT coalesce(t.table_id, ''), r.seq, r.position,
                    coalesce(r.tx_time_ms, b.ts_ms), coalesce(r.tx_id, b.tx_id),
                    r.tx_time_ms IS b.ts_ms OR r.tx_id IS b.tx_id
             FROM revisions r LEFT JOIN tables t ON t.table_no = r.table_no
                              LEFT JOIN blocks b ON b.seq = r.seq
             WHERE r.doc_id = ?1 AND r.version = ?2",
            rusqlite::params![id, version],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .map_err(|e| format!("revision {id} version {version}: {e}"))?;
    let wrong = |what: &str| {
        format!("the revisions table's {what} of revision {id} version {version} differs from the block")
    };
    // A commit leaves the block's transaction id and time out of the row (NULL): a row that
    // states them is not what a commit or a rebuild writes.
    if restated {
        return Err(format!(
            "the revisions row of revision {id} version {version} restates its block's transaction id or time"
        ));
    }
    if row_table != table_id {
        return Err(wrong("table_id"));
    }
    if row_seq != seq as i64 {
        return Err(wrong("seq"));
    }
    if row_pos != position as i64 {
        return Err(wrong("position"));
    }
    if Some(&crate::journal::block::ts(row_ms)) != meta.field("txTime") {
        return Err(wrong("tx_time_ms"));
    }
    if Some(row_tx) != text_field(meta, "txId") {
        return Err(wrong("tx_id"));
    }
    Ok(())
}

/// The `revisions` table row of a block revision must agree with it.
fn check_revision_row(
    tx: &rusqlite::Transaction<'_>,
    rev: &Value,
    meta: &Value,
    hash: &[u8],
    data_hash: Option<&[u8]>,
) -> Result<(), String> {
    let id = match meta.field("id").map(|v| &v.data) {
        Some(Data::String(s)) => s.clone(),
        _ => return Err("a revision's metadata has no id".into()),
    };
    let version: i64 = match meta.field("version").map(|v| &v.data) {
        Some(Data::Int(i)) => i64::try_from(i.clone()).map_err(|_| "bad version".to_string())?,
        _ => return Err("a revision's metadata has no version".into()),
    };
    let row: Option<(Hash, Option<Vec<u8>>, Option<Hash>)> = tx
        .query_row(
            "SELECT hash, data, data_hash FROM revisions WHERE doc_id = ?1 AND version = ?2",
            rusqlite::params![id, version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    let Some((row_hash, row_data, row_data_hash)) = row else {
        return Err(format!(
            "revision {id} version {version} is missing from the revisions table"
        ));
    };
    if row_hash != hash {
        return Err(format!(
            "the stored hash of revision {id} version {version} differs from the block"
        ));
    }
    let stored_data_hash = match &row_data {
        // The row keeps no copy: the block's data is the revision's (its hash is checked).
        Some(bytes) if bytes.as_slice() == DATA_IN_BLOCK => {
            // The block must still hold it: a block whose data became a data hash without a
            // redaction (or a delete) would otherwise pass.
            if rev.field("data").is_none() {
                return Err(format!(
                    "revision {id} version {version} keeps its data in its block, which holds none"
                ));
            }
            data_hash.map(<[u8]>::to_vec)
        }
        Some(bytes) => Some(
            decode(bytes)
                .ok()
                .and_then(|mut v| v.pop())
                .map(|d| ion_hash(&d).to_vec())
                .ok_or_else(|| {
                    format!("the stored data of revision {id} version {version} cannot be decoded")
                })?,
        ),
        None => row_data_hash.clone(),
    };
    if stored_data_hash.as_deref() != data_hash {
        return Err(format!(
            "the stored data of revision {id} version {version} does not match its hash"
        ));
    }
    // The data hash kept beside the data (what a redaction leaves) must be the data's.
    if row_data.is_some() && row_data_hash.is_some() && row_data_hash != stored_data_hash {
        return Err(format!(
            "the stored data hash of revision {id} version {version} is not its data's"
        ));
    }
    Ok(())
}

/// Verifies the ledgers of a data dir, printing one `ok` line per ledger; with `saved`
/// (a digest in base64 and its tip address in Ion text), also checks that digest against
/// the verified journal at that tip.
pub fn run(
    data_dir: &Path,
    only: Option<&str>,
    saved: Option<(String, String)>,
) -> Result<(), Damage> {
    use base64::Engine as _;
    let mut progress = crate::progress::Progress::stderr();
    for name in ledger_names(data_dir, only)? {
        let what = format!("verify {name}");
        let v = verify_ledger_reporting(data_dir, &name, &mut |done, total| {
            progress.update(&what, done, total, "blocks")
        });
        progress.clear();
        let v = v?;
        println!(
            "ok {}: {} blocks, digest {} at sequenceNo {}",
            v.ledger,
            v.blocks,
            base64::engine::general_purpose::STANDARD.encode(&v.digest),
            v.tip
        );
        if let Some((digest, address)) = &saved {
            let seq = check_saved_digest(data_dir, &v, digest, address)?;
            println!(
                "ok {}: the saved digest {digest} is the journal's digest at sequenceNo {seq}",
                v.ledger
            );
        }
    }
    Ok(())
}

/// Checks a digest saved from GetDigest (here or on QLDB) against a verified ledger's
/// journal at the digest's tip; returns that tip.
fn check_saved_digest(
    data_dir: &Path,
    v: &Verified,
    digest: &str,
    address: &str,
) -> Result<u64, Damage> {
    let path =
        crate::storage::sqlite::catalog::ledgers_dir(data_dir).join(format!("{}.sqlite", v.ledger));
    let fail = |message: String| Damage {
        ledger: v.ledger.clone(),
        block: None,
        message,
    };
    let conn = open_ro(&path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let read = |e: rusqlite::Error| format!("cannot read: {e}");
    let own: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'strand_id'", [], |r| {
            r.get(0)
        })
        .map_err(|e| fail(read(e)))?;
    check_saved_digest_with(v, digest, address, &own, &mut |seq| {
        let mut stmt = conn
            .prepare("SELECT block_hash FROM blocks WHERE seq <= ?1 ORDER BY seq")
            .map_err(read)?;
        let leaves: Vec<Hash> = stmt
            .query_map([seq as i64], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(read)?;
        Ok(leaves)
    })
}

/// [`check_saved_digest`] on any storage: `own` is the ledger's strand, `leaves(seq)` its
/// block hashes up to block `seq`.
pub fn check_saved_digest_with(
    v: &Verified,
    digest: &str,
    address: &str,
    own: &str,
    leaves: &mut dyn FnMut(u64) -> Result<Vec<Hash>, String>,
) -> Result<u64, Damage> {
    use base64::Engine as _;
    let fail = |block: Option<u64>, message: String| Damage {
        ledger: v.ledger.clone(),
        block,
        message,
    };
    let saved = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .ok()
        .filter(|d| d.len() == 32)
        .ok_or_else(|| fail(None, "--digest is not a base64 SHA-256 digest".into()))?;
    let tip_address = crate::ion::text::from_text_one(address).map_err(|e| {
        fail(
            None,
            format!(
                "--digest-tip-address is not Ion text like {{strandId:\"...\",sequenceNo:N}}: {e}"
            ),
        )
    })?;
    let (Some(strand), Some(seq)) = (
        text_field(&tip_address, "strandId"),
        int_field(&tip_address, "sequenceNo").and_then(|s| u64::try_from(s).ok()),
    ) else {
        return Err(fail(
            None,
            "--digest-tip-address needs strandId (a string) and sequenceNo (an integer)".into(),
        ));
    };
    if strand != own {
        return Err(fail(
            None,
            format!("the saved digest is of strand {strand}; this journal is strand {own}"),
        ));
    }
    if seq > v.tip {
        return Err(fail(
            None,
            format!(
                "the saved digest's tip is block {seq}, after this journal's tip {}: blocks are missing",
                v.tip
            ),
        ));
    }
    let ours = merkle(&leaves(seq).map_err(|m| fail(None, m))?);
    if ours != saved {
        return Err(fail(
            Some(seq),
            format!(
                "the saved digest differs from the journal's digest at this tip, {}: the journal \
                 is not the one the digest was taken of",
                base64::engine::general_purpose::STANDARD.encode(&ours)
            ),
        ));
    }
    Ok(seq)
}
