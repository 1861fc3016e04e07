//! `qldb-local verify`: proves offline that nobody edited a ledger file.
//!
//! For every block, in order, it recomputes from the stored data: each revision's hash
//! (from the block's own revision and from the `revisions` table row, which must agree),
//! the revisions' Merkle root and H(transactionInfo) (both must be entries), the entries
//! hash, the block hash, the link to the previous block, and the digest-tree leaf; then the
//! digest at the tip from the stored tree against the recomputed chain. It reads inside one
//! SQLite read transaction on a read-only connection, so it works on a live data dir
//! without blocking the writer. The first mismatch is reported with its block.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::ion::binary::decode;
use crate::ion::hash::ion_hash;
use crate::ion::{Data, Value};
use crate::journal::block::{hash_field, hash_list};
use crate::journal::hash::{dot, merkle, Hash};

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

/// Verifies one ledger file.
pub fn verify_ledger(data_dir: &Path, name: &str) -> Result<Verified, Damage> {
    let path = data_dir.join("ledgers").join(format!("{name}.sqlite"));
    let damage = |block: Option<u64>, message: String| Damage {
        ledger: name.to_string(),
        block,
        message,
    };
    let mut conn =
        open_ro(&path).map_err(|e| damage(None, format!("cannot open {}: {e}", path.display())))?;
    let tx = conn
        .transaction()
        .map_err(|e| damage(None, e.to_string()))?;
    let sql = |e: rusqlite::Error| damage(None, format!("cannot read: {e}"));
    let strand: String = tx
        .query_row("SELECT value FROM meta WHERE key = 'strand_id'", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;

    let mut stmt = tx
        .prepare("SELECT seq, block_hash, ion FROM blocks ORDER BY seq")
        .map_err(sql)?;
    let mut rows = stmt.query([]).map_err(sql)?;
    let mut prev: Hash = vec![0; 32];
    let mut leaves: Vec<Hash> = Vec::new();
    let mut expected_seq = 0u64;
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
        let block = decode(&ion)
            .ok()
            .and_then(|mut v| v.pop())
            .ok_or_else(|| at("its stored Ion cannot be decoded"))?;
        let address = block
            .field("blockAddress")
            .ok_or_else(|| at("has no blockAddress"))?;
        if address.field("strandId").map(|v| &v.data) != Some(&Data::String(strand.clone()))
            || address.field("sequenceNo").map(|v| &v.data) != Some(&Data::Int(seq.into()))
        {
            return Err(at(
                "its blockAddress does not match its position in the journal",
            ));
        }

        let previous = hash_field(&block, "previousBlockHash")
            .ok_or_else(|| at("has no previousBlockHash"))?;
        if previous != prev {
            return Err(at(
                "its previousBlockHash is not the hash of the block before it",
            ));
        }
        let list = hash_list(&block, "entriesHashList")
            .ok_or_else(|| at("has no entriesHashList of hashes"))?;
        if let Some(ti) = block.field("transactionInfo") {
            if !list.contains(&ion_hash(ti).to_vec()) {
                return Err(at(
                    "its transactionInfo does not hash to an entry of entriesHashList",
                ));
            }
        }
        if let Some(ri) = block.field("redactionInfo") {
            if !list.contains(&ion_hash(ri).to_vec()) {
                return Err(at(
                    "its redactionInfo does not hash to an entry of entriesHashList",
                ));
            }
        }
        if let Some(revs) = block.field("revisions") {
            let Data::List(revs) = &revs.data else {
                return Err(at("its revisions are not a list"));
            };
            let mut hashes = Vec::new();
            let mut user = 0i64;
            for r in revs {
                let h = hash_field(r, "hash").ok_or_else(|| at("a revision has no hash"))?;
                if let Some(meta) = r.field("metadata") {
                    user += 1;
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
                    if want != h {
                        return Err(at("a revision's hash does not match its metadata and data"));
                    }
                    check_revision_row(&tx, r, meta, &h, data_hash.as_deref())
                        .map_err(|m| at(&m))?;
                }
                hashes.push(h);
            }
            let stored_rows: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM revisions WHERE seq = ?1",
                    [seq as i64],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if stored_rows != user {
                return Err(at(&format!("the block has {user} document revisions but the revisions table holds {stored_rows}")));
            }
            if !list.contains(&merkle(&hashes)) {
                return Err(at(
                    "its revisions do not hash to an entry of entriesHashList",
                ));
            }
        }
        let entries_hash = merkle(&list);
        if hash_field(&block, "entriesHash") != Some(entries_hash.clone()) {
            return Err(at(
                "its entriesHash is not the Merkle root of its entriesHashList",
            ));
        }
        let block_hash = dot(&entries_hash, &prev);
        if hash_field(&block, "blockHash") != Some(block_hash.clone()) || stored_hash != block_hash
        {
            return Err(at("its blockHash does not match its contents"));
        }
        prev = block_hash.clone();
        leaves.push(block_hash);
        expected_seq += 1;
    }
    if leaves.is_empty() {
        return Err(damage(None, "the journal has no blocks".into()));
    }
    let tip = leaves.len() as u64 - 1;
    // Every stored node of the digest tree must be the hash of the blocks it covers.
    let mut stored: std::collections::HashMap<(i64, i64), Hash> = std::collections::HashMap::new();
    {
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
    let mut level: Vec<Hash> = leaves.clone();
    let mut height = 0i64;
    let mut expected_nodes = 0usize;
    while !level.is_empty() {
        for (i, h) in level.iter().enumerate() {
            expected_nodes += 1;
            if stored.get(&(height, i as i64)) != Some(h) {
                let span = 1u64 << height;
                let first = i as u64 * span;
                return Err(damage(
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
        return Err(damage(
            None,
            "the digest tree holds nodes for blocks that do not exist".into(),
        ));
    }
    let from_tree = crate::journal::merkle::root(tip + 1, |level, idx| {
        stored.get(&(level as i64, idx as i64)).cloned().ok_or(())
    })
    .map_err(|()| damage(None, "the digest tree is incomplete".into()))?;
    let digest = merkle(&leaves);
    if from_tree != digest {
        return Err(damage(
            None,
            "the stored digest tree does not match the chain of block hashes".into(),
        ));
    }
    Ok(Verified {
        ledger: name.to_string(),
        blocks: tip + 1,
        tip,
        digest,
    })
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
    let _ = rev;
    Ok(())
}

/// Verifies the ledgers of a data dir, printing one `ok` line per ledger.
pub fn run(data_dir: &Path, only: Option<&str>) -> Result<(), Damage> {
    use base64::Engine as _;
    for name in ledger_names(data_dir, only)? {
        let v = verify_ledger(data_dir, &name)?;
        println!(
            "ok {}: {} blocks, digest {} at sequenceNo {}",
            v.ledger,
            v.blocks,
            base64::engine::general_purpose::STANDARD.encode(&v.digest),
            v.tip
        );
    }
    Ok(())
}
