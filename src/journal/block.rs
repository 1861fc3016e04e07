//! Journal blocks and revisions, and every hash rule that binds them
//! (journal-and-verification.md §2–3): revision hash = dot(H(metadata), H(data)),
//! entriesHashList = [revisionsHash?, H(transactionInfo)?, H(redactionInfo)?],
//! entriesHash = merkle(entriesHashList), blockHash = dot(entriesHash, previousBlockHash).

use crate::ion::hash::ion_hash;
use crate::ion::{Data, Timestamp, Value};

use super::hash::{dot, merkle, Hash};

/// `{strandId, sequenceNo}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAddress {
    pub strand_id: String,
    pub sequence_no: u64,
}

impl BlockAddress {
    pub fn to_ion(&self) -> Value {
        Value::structure([
            ("strandId", Value::string(self.strand_id.clone())),
            ("sequenceNo", Value::int(self.sequence_no)),
        ])
    }
}

/// `metadata` of a revision: exactly `{id, version, txTime, txId}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionMetadata {
    pub id: String,
    pub version: u64,
    pub tx_time_ms: i64,
    pub tx_id: String,
}

impl RevisionMetadata {
    pub fn to_ion(&self) -> Value {
        Value::structure([
            ("id", Value::string(self.id.clone())),
            ("version", Value::int(self.version)),
            ("txTime", ts(self.tx_time_ms)),
            ("txId", Value::string(self.tx_id.clone())),
        ])
    }
}

pub(crate) fn ts(ms: i64) -> Value {
    Data::Timestamp(Timestamp::from_millis_utc(ms)).into()
}

/// What a revision holds besides its metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum RevisionBody {
    Data(Value),
    /// Redacted: the data is gone, its Ion hash stays.
    Redacted {
        data_hash: Hash,
    },
    /// A delete: no data.
    Deleted,
}

/// A document revision as committed in a block.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    pub metadata: RevisionMetadata,
    pub body: RevisionBody,
}

impl Revision {
    /// `dot(H(metadata), H(data))`; a redacted revision uses its stored data hash; a deleted
    /// one is `H(metadata)` alone (the emulator's choice, spec §3.5).
    pub fn hash(&self) -> Hash {
        let meta = ion_hash(&self.metadata.to_ion());
        match &self.body {
            RevisionBody::Data(d) => dot(&meta, &ion_hash(d)),
            RevisionBody::Redacted { data_hash } => dot(&meta, data_hash),
            RevisionBody::Deleted => meta.to_vec(),
        }
    }

    /// [`Revision::hash`] of a revision with data whose Ion hash is `data_hash`.
    pub fn hash_with_data_hash(&self, data_hash: &[u8]) -> Hash {
        dot(&ion_hash(&self.metadata.to_ion()), data_hash)
    }

    /// The committed-view shape `{blockAddress, hash, data|dataHash, metadata}`.
    pub fn to_ion(&self, address: &BlockAddress) -> Value {
        self.to_ion_hashed(address, self.hash())
    }

    /// [`Revision::to_ion`] with the revision's hash already computed.
    fn to_ion_hashed(&self, address: &BlockAddress, hash: Hash) -> Value {
        let mut fields = vec![
            ("blockAddress", address.to_ion()),
            ("hash", Value::blob(hash)),
        ];
        match &self.body {
            RevisionBody::Data(d) => fields.push(("data", d.clone())),
            RevisionBody::Redacted { data_hash } => {
                fields.push(("dataHash", Value::blob(data_hash.clone())))
            }
            RevisionBody::Deleted => {}
        }
        fields.push(("metadata", self.metadata.to_ion()));
        Value::structure(fields)
    }
}

/// An entry of a block's `revisions` list.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockRevision {
    User(Revision),
    /// An internal revision: only its hash appears in the block.
    System(Hash),
}

impl BlockRevision {
    pub fn hash(&self) -> Hash {
        match self {
            BlockRevision::User(r) => r.hash(),
            BlockRevision::System(h) => h.clone(),
        }
    }
}

/// One statement of `transactionInfo.statements`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementInfo {
    pub statement: String,
    pub start_time_ms: i64,
    pub statement_digest: Hash,
}

/// One entry of `transactionInfo.documents`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentInfo {
    pub document_id: String,
    pub table_name: String,
    pub table_id: String,
    pub statements: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionInfo {
    pub statements: Vec<StatementInfo>,
    /// Documents written, in the order they appear in the block.
    pub documents: Vec<DocumentInfo>,
}

impl TransactionInfo {
    pub fn to_ion(&self) -> Value {
        let statements = self
            .statements
            .iter()
            .map(|s| {
                Value::structure([
                    ("statement", Value::string(s.statement.clone())),
                    ("startTime", ts(s.start_time_ms)),
                    ("statementDigest", Value::blob(s.statement_digest.clone())),
                ])
            })
            .collect();
        let mut fields = vec![("statements".to_string(), Value::list(statements))];
        if !self.documents.is_empty() {
            let docs = self.documents.iter().map(|d| {
                (
                    d.document_id.clone(),
                    Value::structure([
                        ("tableName", Value::string(d.table_name.clone())),
                        ("tableId", Value::string(d.table_id.clone())),
                        (
                            "statements",
                            Value::list(d.statements.iter().map(|i| Value::int(*i)).collect()),
                        ),
                    ]),
                )
            });
            fields.push(("documents".to_string(), Value::structure(docs)));
        }
        Value::structure(fields)
    }
}

/// A journal block before or after commit.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub address: BlockAddress,
    pub transaction_id: String,
    pub timestamp_ms: i64,
    pub previous_block_hash: Hash,
    pub transaction_info: Option<TransactionInfo>,
    /// `redactionInfo`, already in its Ion form.
    pub redaction_info: Option<Value>,
    pub revisions: Vec<BlockRevision>,
    /// Used when a block has nothing else to hash (a genesis block).
    pub system_entry: Option<Hash>,
}

impl Block {
    pub fn revisions_hash(&self) -> Option<Hash> {
        let hashes: Vec<Hash> = self.revisions.iter().map(BlockRevision::hash).collect();
        (!hashes.is_empty()).then(|| merkle(&hashes))
    }

    /// `[revisionsHash?, H(transactionInfo)?, H(redactionInfo)?]`, or the system entry alone.
    pub fn entries_hash_list(&self) -> Vec<Hash> {
        let hashes: Vec<Hash> = self.revisions.iter().map(BlockRevision::hash).collect();
        self.entries_from(&hashes)
    }

    /// The entries hash list, given each revision's hash (each is computed once).
    fn entries_from(&self, revision_hashes: &[Hash]) -> Vec<Hash> {
        let mut list = Vec::new();
        if !revision_hashes.is_empty() {
            list.push(merkle(revision_hashes));
        }
        if let Some(ti) = &self.transaction_info {
            list.push(ion_hash(&ti.to_ion()).to_vec());
        }
        if let Some(ri) = &self.redaction_info {
            list.push(ion_hash(ri).to_vec());
        }
        if list.is_empty() {
            list.extend(self.system_entry.clone());
        }
        list
    }

    pub fn entries_hash(&self) -> Hash {
        merkle(&self.entries_hash_list())
    }

    pub fn block_hash(&self) -> Hash {
        dot(&self.entries_hash(), &self.previous_block_hash)
    }

    /// The block as GetBlock and exports show it (field order as in real blocks).
    pub fn to_ion(&self) -> Value {
        self.to_ion_and_hash().0
    }

    /// [`Block::to_ion`] and [`Block::block_hash`] together, every hash computed once.
    pub fn to_ion_and_hash(&self) -> (Value, Hash) {
        let revision_hashes: Vec<Hash> = self.revisions.iter().map(BlockRevision::hash).collect();
        self.to_ion_and_hash_with(revision_hashes)
    }

    /// [`Block::to_ion_and_hash`] with each revision's hash already known (in order; the
    /// writer computes them as it stores the revisions).
    pub fn to_ion_and_hash_with(&self, revision_hashes: Vec<Hash>) -> (Value, Hash) {
        assert_eq!(
            revision_hashes.len(),
            self.revisions.len(),
            "one hash per revision"
        );
        let list = self.entries_from(&revision_hashes);
        let entries_hash = merkle(&list);
        let block_hash = dot(&entries_hash, &self.previous_block_hash);
        let mut fields = vec![
            ("blockAddress", self.address.to_ion()),
            ("transactionId", Value::string(self.transaction_id.clone())),
            ("blockTimestamp", ts(self.timestamp_ms)),
            ("blockHash", Value::blob(block_hash.clone())),
            ("entriesHash", Value::blob(entries_hash)),
            (
                "previousBlockHash",
                Value::blob(self.previous_block_hash.clone()),
            ),
            (
                "entriesHashList",
                Value::list(list.into_iter().map(Value::blob).collect()),
            ),
        ];
        if let Some(ti) = &self.transaction_info {
            fields.push(("transactionInfo", ti.to_ion()));
        }
        if let Some(ri) = &self.redaction_info {
            fields.push(("redactionInfo", ri.clone()));
        }
        if !self.revisions.is_empty() {
            let revs = self
                .revisions
                .iter()
                .zip(revision_hashes)
                .map(|(r, hash)| match r {
                    BlockRevision::User(r) => r.to_ion_hashed(&self.address, hash),
                    BlockRevision::System(_) => Value::structure([("hash", Value::blob(hash))]),
                })
                .collect();
            fields.push(("revisions", Value::list(revs)));
        }
        (Value::structure(fields), block_hash)
    }
}

/// A hash stored as a blob field of a struct (`blockHash`, `hash`, `previousBlockHash`).
pub fn hash_field(v: &Value, name: &str) -> Option<Hash> {
    match &v.field(name)?.data {
        Data::Blob(b) => Some(b.clone()),
        _ => None,
    }
}

/// A list of hashes stored as blobs (`entriesHashList`); `None` if any element is not one.
pub fn hash_list(v: &Value, name: &str) -> Option<Vec<Hash>> {
    match &v.field(name)?.data {
        Data::List(items) => items
            .iter()
            .map(|i| match &i.data {
                Data::Blob(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}
