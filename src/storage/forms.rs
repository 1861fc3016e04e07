//! What every backend builds and reads the same way, with no storage in it: a commit's block
//! (system and document revisions, their hashes, the redaction entry), the genesis block,
//! a revision as history and the committed view show it, and a redaction inside a block.
//! Backends store the results; they never assemble blocks themselves.

use std::ops::Range;

use crate::ion::binary::{encode_one, encode_one_marked, with_u64_body};
use crate::ion::hash::ion_hash;
use crate::ion::{Data, Value};
use crate::journal::block::*;
use crate::journal::hash::{dot, Hash};

use super::{CommitRequest, DocWrite, Result, RevisionRef, StorageError, Tip};

/// The block a commit appends, built revision by revision in block order.
pub struct BlockBuilder<'a> {
    req: &'a CommitRequest,
    tip: &'a Tip,
    revisions: Vec<BlockRevision>,
    /// Each revision's hash, computed once, in block order.
    hashes: Vec<Hash>,
    documents: Vec<DocumentInfo>,
}

/// A document revision added to a block: what its rows store.
pub struct WrittenRevision {
    /// The data's Ion binary (`None`: a delete).
    pub encoded: Option<Vec<u8>>,
    pub hash: Hash,
    /// Its position in the block's revisions.
    pub position: i64,
}

impl<'a> BlockBuilder<'a> {
    /// The block after `tip` for `req`.
    pub fn new(req: &'a CommitRequest, tip: &'a Tip) -> Self {
        BlockBuilder {
            req,
            tip,
            revisions: Vec::new(),
            hashes: Vec::new(),
            documents: Vec::new(),
        }
    }

    pub fn seq(&self) -> u64 {
        self.tip.last_seq + 1
    }

    /// A table's system revision (CREATE, DROP or UNDROP TABLE): `{name, status}`.
    pub fn table(&mut self, table_id: &str, version: u64, name: &str, status: &str) {
        let rev = Revision {
            metadata: self.metadata(table_id, version),
            body: RevisionBody::Data(Value::structure([
                ("name", Value::string(name)),
                ("status", Value::string(status)),
            ])),
        };
        let hash = rev.hash();
        self.hashes.push(hash.clone());
        self.revisions.push(BlockRevision::System(hash));
    }

    /// A document's revision; its data's Ion encoding and Ion hash are computed once.
    pub fn document(&mut self, w: &DocWrite) -> WrittenRevision {
        let encoded = w.data.as_ref().map(encode_one);
        let rev = Revision {
            metadata: self.metadata(&w.doc_id, w.version),
            body: match &w.data {
                Some(d) => RevisionBody::Data(d.clone()),
                None => RevisionBody::Deleted,
            },
        };
        let hash = match &w.data {
            Some(d) => rev.hash_with_data_hash(&ion_hash(d)),
            None => rev.hash(),
        };
        let position = self.revisions.len() as i64;
        self.hashes.push(hash.clone());
        self.revisions.push(BlockRevision::User(rev));
        self.documents.push(DocumentInfo {
            document_id: w.doc_id.clone(),
            table_name: w.table_name.clone(),
            table_id: w.table_id.clone(),
            statements: w.statements.clone(),
        });
        WrittenRevision {
            encoded,
            hash,
            position,
        }
    }

    fn metadata(&self, id: &str, version: u64) -> RevisionMetadata {
        RevisionMetadata {
            id: id.to_string(),
            version,
            tx_time_ms: self.req.commit_ms,
            tx_id: self.req.transaction_id.clone(),
        }
    }

    /// The block, with its revisions' hashes (for [`Block::to_ion_and_hash_with`]).
    pub fn finish(self) -> (Block, Vec<Hash>) {
        let strand = &self.tip.strand_id;
        let redaction_info = self.req.redaction.as_ref().map(|r| {
            Value::structure([(
                "revisions",
                Value::list(vec![Value::structure([
                    (
                        "blockAddress",
                        BlockAddress {
                            strand_id: strand.clone(),
                            sequence_no: r.seq,
                        }
                        .to_ion(),
                    ),
                    ("tableId", Value::string(r.table_id.clone())),
                    ("documentId", Value::string(r.doc_id.clone())),
                    ("version", Value::int(r.version)),
                ])]),
            )])
        });
        let block = Block {
            address: BlockAddress {
                strand_id: strand.clone(),
                sequence_no: self.tip.last_seq + 1,
            },
            transaction_id: self.req.transaction_id.clone(),
            timestamp_ms: self.req.commit_ms,
            previous_block_hash: self.tip.last_hash.clone(),
            transaction_info: Some(TransactionInfo {
                statements: self.req.statements.clone(),
                documents: self.documents,
            }),
            redaction_info,
            revisions: self.revisions,
            system_entry: None,
        };
        (block, self.hashes)
    }
}

/// A commit's block built before its place in the journal is known — by the committing
/// thread, while the ledger's writer commits others — so that the writer only places it:
/// it writes the block's sequence number and its two chained hashes into the prepared Ion
/// binary and computes one `dot`. Encoding and hashing the data, the revisions and the
/// transaction info, none of which depend on the block's place, is done here.
pub struct PreparedBlock {
    /// Each document write's revision, in `req.writes` order.
    pub revisions: Vec<WrittenRevision>,
    entries_hash: Hash,
    /// The block's Ion binary as if it were at sequence number `seq` with zero hashes.
    ion: Vec<u8>,
    /// Where `seq`'s body is (the block's address, then each revision's).
    seq_at: Vec<Range<usize>>,
    block_hash_at: Range<usize>,
    previous_hash_at: Range<usize>,
}

/// A hash's length: every block hash is a SHA-256.
const HASH_LEN: usize = 32;

impl PreparedBlock {
    /// Prepares `req`'s block for a sequence number whose Ion encoding is as long as
    /// `seq`'s. `None` for a commit that changes the catalog or redacts: its block holds the
    /// catalog's state at the commit (a table's version), which only the writer knows.
    pub fn prepare(req: &CommitRequest, strand_id: &str, seq: u64) -> Option<Self> {
        if req.changes_catalog() || req.redaction.is_some() || seq == 0 {
            return None;
        }
        let tip = Tip {
            strand_id: strand_id.to_string(),
            last_seq: seq - 1,
            last_hash: vec![0; HASH_LEN],
        };
        let mut builder = BlockBuilder::new(req, &tip);
        let revisions = req.writes.iter().map(|w| builder.document(w)).collect();
        let (block, hashes) = builder.finish();
        let (value, _) = block.to_ion_and_hash_with(hashes);
        let field = |v: &Value, name: &str| v.field(name).map(|f| f as *const Value);
        let seq_of = |v: &Value| v.field("blockAddress").and_then(|a| field(a, "sequenceNo"));
        let mut marked = vec![
            field(&value, "blockHash")?,
            field(&value, "previousBlockHash")?,
        ];
        marked.push(seq_of(&value)?);
        if let Some(Data::List(revs)) = value.field("revisions").map(|r| &r.data) {
            for r in revs {
                marked.push(seq_of(r)?);
            }
        }
        let (ion, at) = encode_one_marked(&value, &marked);
        let mut at = at.into_iter().collect::<Option<Vec<_>>>()?.into_iter();
        let (block_hash_at, previous_hash_at) = (at.next()?, at.next()?);
        let entries_hash = match value.field("entriesHash").map(|h| &h.data) {
            Some(Data::Blob(h)) => h.clone(),
            _ => return None,
        };
        Some(PreparedBlock {
            revisions,
            entries_hash,
            ion,
            seq_at: at.collect(),
            block_hash_at,
            previous_hash_at,
        })
    }

    /// Whether the block can be placed at `seq` after a block hashed `previous`: the
    /// encoding of `seq` is as long as the prepared one's (else the writer builds it).
    pub fn fits(&self, seq: u64, previous: &[u8]) -> bool {
        let len = with_u64_body(seq, <[u8]>::len);
        previous.len() == HASH_LEN && self.seq_at.iter().all(|r| r.len() == len)
    }

    /// The block's Ion binary and its hash at `seq` after the block hashed `previous`
    /// (which [`PreparedBlock::fits`]): the same bytes as encoding the block built there.
    pub fn place(&self, seq: u64, previous: &[u8]) -> (Vec<u8>, Hash) {
        debug_assert!(self.fits(seq, previous));
        let block_hash = dot(&self.entries_hash, previous);
        let mut ion = self.ion.clone();
        with_u64_body(seq, |body| {
            for r in &self.seq_at {
                ion[r.clone()].copy_from_slice(body);
            }
        });
        ion[self.previous_hash_at.clone()].copy_from_slice(previous);
        ion[self.block_hash_at.clone()].copy_from_slice(&block_hash);
        (ion, block_hash)
    }
}

/// A ledger's first block (sequence 0), naming the ledger and its strand.
pub fn genesis_block(strand_id: &str, ledger_name: &str, now_ms: i64) -> Block {
    let system = ion_hash(&Value::structure([
        ("ledgerName", Value::string(ledger_name)),
        ("strandId", Value::string(strand_id)),
    ]))
    .to_vec();
    Block {
        address: BlockAddress {
            strand_id: strand_id.to_string(),
            sequence_no: 0,
        },
        transaction_id: strand_id.to_string(),
        timestamp_ms: now_ms,
        previous_block_hash: vec![0; 32],
        transaction_info: None,
        redaction_info: None,
        revisions: Vec::new(),
        system_entry: Some(system),
    }
}

/// Replaces revision `doc_id` version `version`'s data in `block` by its data hash
/// (`{… dataHash}` instead of `{… data}`); returns that hash, `None` if the block holds no
/// such revision with data.
pub fn redact_in_block(block: &mut Value, doc_id: &str, version: u64) -> Option<Vec<u8>> {
    let mut data_hash = None;
    let Data::Struct(fields) = &mut block.data else {
        return None;
    };
    for (name, value) in fields.iter_mut() {
        if name.as_deref() != Some("revisions") {
            continue;
        }
        let Data::List(revs) = &mut value.data else {
            continue;
        };
        for rev in revs.iter_mut() {
            let is_target = rev.field("metadata").is_some_and(|m| {
                m.field("id").map(|v| &v.data) == Some(&Data::String(doc_id.to_string()))
                    && m.field("version").map(|v| &v.data) == Some(&Data::Int(version.into()))
            });
            if !is_target {
                continue;
            }
            if let Data::Struct(rf) = &mut rev.data {
                for (k, v) in rf.iter_mut() {
                    if k.as_deref() == Some("data") {
                        let h = ion_hash(v).to_vec();
                        *v = Value::blob(h.clone());
                        *k = Some("dataHash".into());
                        data_hash = Some(h);
                    }
                }
            }
        }
    }
    data_hash
}

/// The revision `doc_id` version `version` at `position` of block `seq` (decoded), which
/// must be that revision: never another document's data.
pub fn revision_in_block(
    block: &Value,
    seq: i64,
    (doc_id, version): (&str, i64),
    position: i64,
) -> Result<Value> {
    let rev = match block.field("revisions").map(|v| &v.data) {
        Some(Data::List(revs)) => revs.get(position as usize),
        _ => None,
    };
    let meta = rev.and_then(|r| r.field("metadata"));
    let id = meta.and_then(|m| m.field("id")).map(|v| &v.data);
    let ver = meta.and_then(|m| m.field("version")).map(|v| &v.data);
    match rev {
        Some(rev)
            if id == Some(&Data::String(doc_id.into()))
                && ver == Some(&Data::Int(version.into())) =>
        {
            Ok(rev.clone())
        }
        _ => Err(StorageError::Corrupt(format!(
            "block {seq} holds no revision {doc_id} version {version} at position {position}"
        ))),
    }
}

/// A revision row as the history and the committed view read it.
pub struct RevisionRow {
    pub doc_id: String,
    pub version: i64,
    pub seq: i64,
    pub position: i64,
    pub tx_time_ms: i64,
    pub tx_id: String,
    pub hash: Vec<u8>,
    /// The data: Ion binary, [`super::stored::DATA_IN_BLOCK`], or `None` (a delete or a
    /// redaction).
    pub data: Option<Vec<u8>>,
    pub data_hash: Option<Vec<u8>>,
    pub redacted: bool,
}

/// The last block a revision view read, decoded (history reads revisions in block order, so
/// one entry serves a block's revisions together).
pub type LastBlock = Option<(i64, Value)>;

/// A revision as `history()` and the committed view show it: `{blockAddress, hash, data |
/// dataHash, metadata}` (a delete has neither data field). A row that does not carry its
/// data ([`super::stored::DATA_IN_BLOCK`], or a redaction without its data hash) takes it
/// from its block, which `read_block` reads (stored form) by sequence number.
pub fn revision_view(
    strand: &str,
    r: RevisionRow,
    last: &mut LastBlock,
    read_block: &mut dyn FnMut(i64) -> Result<Vec<u8>>,
) -> Result<Value> {
    let mut fields = vec![
        (
            "blockAddress",
            BlockAddress {
                strand_id: strand.to_string(),
                sequence_no: r.seq as u64,
            }
            .to_ion(),
        ),
        ("hash", Value::blob(r.hash)),
    ];
    let from_block = match (r.data, r.data_hash) {
        (Some(d), _) if d.as_slice() != super::stored::DATA_IN_BLOCK => {
            fields.push(("data", decode_doc(&d)?));
            false
        }
        (Some(_), _) => true,
        (None, Some(h)) if r.redacted => {
            fields.push(("dataHash", Value::blob(h)));
            false
        }
        // A redaction of a row that kept no data hash: the block holds it. Otherwise a delete.
        (None, _) => r.redacted,
    };
    if from_block {
        if last.as_ref().map(|(s, _)| *s) != Some(r.seq) {
            let stored = read_block(r.seq)?;
            *last = Some((r.seq, super::stored::decode_block(&stored)?));
        }
        let block = &last.as_ref().expect("just read").1;
        let rev = revision_in_block(block, r.seq, (&r.doc_id, r.version), r.position)?;
        for name in ["data", "dataHash"] {
            if let Some(v) = rev.field(name) {
                fields.push((name, v.clone()));
            }
        }
    }
    fields.push((
        "metadata",
        RevisionMetadata {
            id: r.doc_id,
            version: r.version as u64,
            tx_time_ms: r.tx_time_ms,
            tx_id: r.tx_id,
        }
        .to_ion(),
    ));
    Ok(Value::structure(fields))
}

/// A stored document's Ion binary, decoded.
pub fn decode_doc(bytes: &[u8]) -> Result<Value> {
    crate::ion::binary::decode(bytes)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| StorageError::Corrupt("a stored document is not valid Ion".into()))
}

/// Whether a redaction target is still what REDACT_REVISION located (used by backends
/// before rewriting the block).
pub fn redaction_conflict(r: &RevisionRef) -> String {
    format!(
        "revision {} version {} was redacted concurrently",
        r.doc_id, r.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion::text;

    fn request(docs: &[&str]) -> CommitRequest {
        CommitRequest {
            transaction_id: "Dy8vhI2xBG5Ai2kjBDHNbm".into(),
            commit_ms: 1_700_000_123_456,
            statements: vec![StatementInfo {
                statement: "INSERT INTO T ?".into(),
                start_time_ms: 1_700_000_123_400,
                statement_digest: vec![7; 32],
            }],
            writes: docs
                .iter()
                .enumerate()
                .map(|(i, d)| DocWrite {
                    doc_id: format!("Doc{i:019}"),
                    table_id: "TableId000000000000001".into(),
                    table_name: "T".into(),
                    version: i as u64,
                    data: (!d.is_empty()).then(|| text::from_text_one(d).unwrap()),
                    statements: vec![0],
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The block the writer would build at `seq` after `previous`: its Ion binary and hash.
    fn built(req: &CommitRequest, seq: u64, previous: &[u8]) -> (Vec<u8>, Hash) {
        let tip = Tip {
            strand_id: "Strand0000000000000001".into(),
            last_seq: seq - 1,
            last_hash: previous.to_vec(),
        };
        let mut b = BlockBuilder::new(req, &tip);
        for w in &req.writes {
            b.document(w);
        }
        let (block, hashes) = b.finish();
        let (value, hash) = block.to_ion_and_hash_with(hashes);
        (encode_one(&value), hash)
    }

    #[test]
    fn a_prepared_block_placed_is_the_block_built_there() {
        let docs = [
            r#"{VIN: "1N4AL11D75C109151", Year: 2011, tags: [a, "b", {c: 1.5e0}]}"#,
            "",
            r#"{sequenceNo: 5, blockHash: {{ AAAA }}, s: 'sym'::"annotated"}"#,
        ];
        for n in [0, 1, 3] {
            let req = request(&docs[..n]);
            // Sequence numbers of each encoded length, and a previous hash of any bytes.
            for (guess, seq) in [
                (3, 200),
                (300, 65_535),
                (70_000, 16_000_000),
                (1 << 40, 1 << 41),
            ] {
                let prepared = PreparedBlock::prepare(&req, "Strand0000000000000001", guess)
                    .expect("a plain commit is prepared");
                let previous: Vec<u8> = (0..32u64).map(|i| (i * 37 + seq) as u8).collect();
                assert!(prepared.fits(seq, &previous));
                assert_eq!(prepared.place(seq, &previous), built(&req, seq, &previous));
                for (i, w) in req.writes.iter().enumerate() {
                    assert_eq!(
                        prepared.revisions[i].encoded,
                        w.data.as_ref().map(encode_one)
                    );
                }
            }
        }
    }

    #[test]
    fn a_prepared_block_does_not_fit_a_longer_sequence_number_or_hash() {
        let req = request(&["{a: 1}"]);
        let prepared = PreparedBlock::prepare(&req, "Strand0000000000000001", 255).unwrap();
        assert!(prepared.fits(1, &[0; 32]));
        assert!(!prepared.fits(256, &[0; 32]));
        assert!(!prepared.fits(2, &[0; 31]));
        let mut ddl = request(&[]);
        ddl.new_tables
            .push(("TableId000000000000002".into(), "U".into()));
        assert!(PreparedBlock::prepare(&ddl, "Strand0000000000000001", 9).is_none());
    }
}
