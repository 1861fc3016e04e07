//! What the storage layer stores and returns, independent of any backend: the table
//! catalog, documents, read sets and commits of a ledger, and the catalog's records of
//! ledgers, exports and streams.

use crate::ion::binary::encode_one;
use crate::ion::{Data, Value};
use crate::journal::block::StatementInfo;
use crate::journal::hash::Hash;

use super::StorageError;

/// A table of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub table_id: String,
    pub name: String,
    pub active: bool,
    pub indexes: Vec<IndexInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexInfo {
    pub index_id: String,
    pub field: String,
}

/// A live document.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDoc {
    pub doc_id: String,
    pub table_id: String,
    pub version: u64,
    pub data: Value,
}

/// A page of a table scan ([`super::LedgerStore::scan_page`]).
#[derive(Clone, Debug, Default)]
pub struct ScanPage {
    /// The documents read and kept.
    pub docs: Vec<StoredDoc>,
    /// How many documents were read, kept or not: fewer than asked for ends the scan.
    pub read: usize,
    /// The position of the last document read (the next page starts after it).
    pub last: i64,
}

/// Something a transaction read, re-checked at commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReadCheck {
    /// A document by id, with the version seen (`None`: it did not exist).
    Doc {
        doc_id: String,
        version: Option<u64>,
    },
    /// A full scan of a table, as of the last block at the time.
    Table { table_id: String, as_of: u64 },
    /// An index lookup of one key, as of the last block at the time.
    IndexKey {
        index_id: String,
        key: Vec<u8>,
        as_of: u64,
    },
    /// The catalog (table names, indexes), as of the last block at the time.
    Catalog { as_of: u64 },
}

/// One document written by a transaction (its final state).
#[derive(Clone, Debug, PartialEq)]
pub struct DocWrite {
    pub doc_id: String,
    pub table_id: String,
    pub table_name: String,
    pub version: u64,
    /// `None` deletes the document.
    pub data: Option<Value>,
    pub statements: Vec<u32>,
}

/// Everything a transaction commits.
#[derive(Clone, Debug, Default)]
pub struct CommitRequest {
    pub transaction_id: String,
    pub commit_ms: i64,
    pub statements: Vec<StatementInfo>,
    pub reads: Vec<ReadCheck>,
    pub new_tables: Vec<(String, String)>,
    pub new_indexes: Vec<(String, String, String)>,
    /// DROP TABLE (false) and UNDROP TABLE (true): (table id, active).
    pub table_status: Vec<(String, bool)>,
    /// DROP INDEX: (index id, table id).
    pub dropped_indexes: Vec<(String, String)>,
    pub writes: Vec<DocWrite>,
    /// A REDACT_REVISION of this transaction.
    pub redaction: Option<RevisionRef>,
}

impl CommitRequest {
    /// Whether the commit creates, drops or undrops a table or index.
    pub fn changes_catalog(&self) -> bool {
        !(self.new_tables.is_empty()
            && self.new_indexes.is_empty()
            && self.table_status.is_empty()
            && self.dropped_indexes.is_empty())
    }

    /// Whether the commit writes nothing: no document, catalog change or redaction (no block
    /// is written; only its reads are checked).
    pub fn writes_nothing(&self) -> bool {
        self.writes.is_empty() && !self.changes_catalog() && self.redaction.is_none()
    }
}

/// Why a commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
/// The committed block's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub sequence_no: u64,
}

/// The canonical index key of a value: values that PartiQL `=` finds equal have one key —
/// ints, decimals and floats by numeric value (`1`, `1.0`, `1.00`, `1e0`), strings and symbols
/// by text, timestamps by instant, containers element by element (struct fields in any
/// order), annotations ignored — so an indexed lookup finds what a scan finds.
pub fn index_key(v: &Value) -> Vec<u8> {
    encode_one(&canonical(v))
}

fn canonical(v: &Value) -> Value {
    use crate::ion::Decimal;
    let data = match &v.data {
        Data::Int(i) => Data::Decimal(normalize_decimal(Decimal::new(i.clone(), 0))),
        Data::Decimal(d) => Data::Decimal(normalize_decimal(d.clone())),
        Data::Float(f) if f.is_finite() => match Decimal::from_f64_shortest(*f) {
            Some(d) => Data::Decimal(normalize_decimal(d)),
            None => Data::Float(*f),
        },
        Data::Symbol(Some(s)) => Data::String(s.clone()),
        Data::Clob(b) => Data::Blob(b.clone()),
        // Typed nulls are all `null` to `=` inside containers.
        Data::Null(_) => Data::Null(crate::ion::IonType::Null),
        Data::Timestamp(t) => {
            let (m, e) = t.epoch_seconds();
            // A marked s-expression: a timestamp never shares a key with a number.
            Data::SExp(vec![
                Value::symbol("timestamp"),
                Data::Decimal(normalize_decimal(Decimal::new(m, e))).into(),
            ])
        }
        Data::List(items) => Data::List(items.iter().map(canonical).collect()),
        Data::SExp(items) => Data::SExp(items.iter().map(canonical).collect()),
        Data::Struct(fields) => {
            let mut fields: Vec<(Option<String>, Value)> = fields
                .iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect();
            fields.sort_by_cached_key(|(k, v)| (k.clone(), encode_one(v)));
            Data::Struct(fields)
        }
        other => other.clone(),
    };
    Value {
        annotations: Vec::new(),
        data,
    }
}

fn normalize_decimal(mut d: crate::ion::Decimal) -> crate::ion::Decimal {
    use num_traits::Zero;
    let ten = num_bigint::BigUint::from(10u8);
    if d.magnitude.is_zero() {
        return crate::ion::Decimal {
            negative: false,
            magnitude: d.magnitude,
            exponent: 0,
        };
    }
    while (&d.magnitude % &ten).is_zero() {
        d.magnitude /= &ten;
        d.exponent += 1;
    }
    d
}

/// The ledger's tip, kept in memory next to the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    pub strand_id: String,
    pub last_seq: u64,
    pub last_hash: Hash,
}

/// A revision located for REDACT_REVISION.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionRef {
    pub seq: u64,
    pub table_id: String,
    pub doc_id: String,
    pub version: u64,
    pub has_data: bool,
    pub redacted: bool,
    pub is_latest: bool,
}

/// One ledger as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Creation order; ListLedgers pages by it.
    pub ord: i64,
    pub name: String,
    pub arn: String,
    pub permissions_mode: String,
    pub deletion_protection: bool,
    /// `None` for the AWS-owned key.
    pub kms_key_arn: Option<String>,
    pub created_ms: i64,
    pub active_at_ms: i64,
    /// When the KMS key was last changed (the ledger reports UPDATING in that response).
    pub kms_updated_ms: Option<i64>,
    pub deleting_since_ms: Option<i64>,
    pub gone_at_ms: Option<i64>,
}

/// One ExportJournalToS3 job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    pub ord: i64,
    pub export_id: String,
    pub ledger_name: String,
    pub created_ms: i64,
    /// IN_PROGRESS, COMPLETED or CANCELLED.
    pub status: String,
    /// The window actually exported (the start clamped to the ledger's creation).
    pub start_ms: i64,
    pub end_ms: i64,
    pub bucket: String,
    pub prefix: String,
    pub encryption_type: String,
    pub kms_key_arn: Option<String>,
    pub role_arn: String,
    /// As requested; `None` exports ION_TEXT and leaves the member out of answers.
    pub output_format: Option<String>,
    /// Why the export was cancelled.
    pub status_reason: Option<String>,
    /// The first block not yet written to S3.
    pub next_seq: u64,
    pub finished_ms: Option<i64>,
}

/// One StreamJournalToKinesis job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub ord: i64,
    pub stream_id: String,
    pub ledger_name: String,
    pub stream_name: String,
    pub arn: String,
    pub created_ms: i64,
    /// ACTIVE, IMPAIRED, COMPLETED, CANCELED or FAILED.
    pub status: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub role_arn: String,
    pub kinesis_arn: String,
    pub aggregation: bool,
    pub error_cause: Option<String>,
    /// Since when the stream has been IMPAIRED without a break.
    pub impaired_ms: Option<i64>,
    /// The first block not yet acknowledged by Kinesis.
    pub next_seq: u64,
    /// Whether the CREATED control record was acknowledged.
    pub created_sent: bool,
    pub finished_ms: Option<i64>,
}

impl StreamRecord {
    /// ACTIVE and IMPAIRED streams still run.
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "ACTIVE" | "IMPAIRED")
    }
}
