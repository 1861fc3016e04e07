//! Journal exports on disk, laid out as ExportJournalToS3 writes them (journal-and-verification
//! §5.2): data objects `{prefix}{yyyy}/{mm}/{dd}/{hh}/{strandId}.{first}-{last}.ion` and a
//! completed manifest listing their full keys. Also a synthetic journal of any length, made
//! with the library's block code. Shared by tests/import.rs and benches/import.rs.
#![allow(dead_code)]

use std::path::Path;

use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{binary, json, text, Data, Value};
use qldb_local::journal::block::*;
use qldb_local::journal::hash::Hash;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    IonText,
    IonBinary,
    Json,
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.field(name).unwrap_or_else(|| panic!("no {name}"))
}

pub fn seq_of(block: &Value) -> u64 {
    match &field(field(block, "blockAddress"), "sequenceNo").data {
        Data::Int(i) => u64::try_from(i.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

pub fn strand_of(block: &Value) -> String {
    match &field(field(block, "blockAddress"), "strandId").data {
        Data::String(s) => s.clone(),
        other => panic!("{other:?}"),
    }
}

/// Every block of a ledger file, in order.
pub fn blocks_of(file: &Path) -> Vec<Value> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut stmt = conn.prepare("SELECT ion FROM blocks ORDER BY seq").unwrap();
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|b| qldb_local::storage::sqlite::stored::decode_block(&b.unwrap()).unwrap());
    rows.collect()
}

/// Writes `blocks` as one completed export `export_id` under `dir/prefix`, at most
/// `per_object` blocks per data object; returns the data objects' keys.
pub fn write_export(
    dir: &Path,
    prefix: &str,
    export_id: &str,
    blocks: &[Value],
    per_object: usize,
    format: Format,
) -> Vec<String> {
    let strand = strand_of(&blocks[0]);
    let mut keys = Vec::new();
    for chunk in blocks.chunks(per_object) {
        let (first, last) = (seq_of(&chunk[0]), seq_of(chunk.last().unwrap()));
        let ext = if format == Format::Json {
            "json"
        } else {
            "ion"
        };
        let key = format!("{prefix}2024/01/01/00/{strand}.{first}-{last}.{ext}");
        let bytes = match format {
            Format::IonBinary => binary::encode(chunk),
            Format::IonText => chunk
                .iter()
                .map(|b| text::to_text_one(b) + "\n")
                .collect::<String>()
                .into_bytes(),
            Format::Json => chunk
                .iter()
                .map(|b| json::to_json(b) + "\n")
                .collect::<String>()
                .into_bytes(),
        };
        let path = dir.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        keys.push(key);
    }
    let manifest = Value::structure([(
        "keys",
        Value::list(keys.iter().map(|k| Value::string(k.clone())).collect()),
    )]);
    std::fs::write(
        dir.join(format!("{prefix}{export_id}.{strand}.completed.manifest")),
        text::to_text_one(&manifest),
    )
    .unwrap();
    keys
}

/// A journal of `n` blocks: a genesis block, a CREATE TABLE, then one single-document
/// INSERT per block (documents of ~100 bytes), one block a millisecond apart.
pub fn synthetic(n: u64) -> Vec<Value> {
    let strand = "SynthStrand00000000001".to_string();
    let table_id = "SynthTable000000000001".to_string();
    let t0 = 1_704_067_200_000i64; // 2024-01-01T00:00:00Z
    let mut prev: Hash = vec![0; 32];
    let mut out = Vec::with_capacity(n as usize);
    for seq in 0..n {
        let ms = t0 + seq as i64;
        let tx_id = format!("Tx{seq:020}");
        let address = BlockAddress {
            strand_id: strand.clone(),
            sequence_no: seq,
        };
        let statement = |s: &str| StatementInfo {
            statement: s.to_string(),
            start_time_ms: ms,
            statement_digest: ion_hash(&Value::string(s)).to_vec(),
        };
        let mut block = Block {
            address: address.clone(),
            transaction_id: tx_id.clone(),
            timestamp_ms: ms,
            previous_block_hash: prev.clone(),
            transaction_info: None,
            redaction_info: None,
            revisions: Vec::new(),
            system_entry: None,
        };
        match seq {
            0 => {
                block.transaction_id = strand.clone();
                block.system_entry = Some(
                    ion_hash(&Value::structure([
                        ("ledgerName", Value::string("synthetic")),
                        ("strandId", Value::string(strand.clone())),
                    ]))
                    .to_vec(),
                );
            }
            1 => {
                let rev = Revision {
                    metadata: RevisionMetadata {
                        id: table_id.clone(),
                        version: 0,
                        tx_time_ms: ms,
                        tx_id: tx_id.clone(),
                    },
                    body: RevisionBody::Data(Value::structure([
                        ("name", Value::string("T")),
                        ("status", Value::string("ACTIVE")),
                    ])),
                };
                block.revisions.push(BlockRevision::System(rev.hash()));
                block.transaction_info = Some(TransactionInfo {
                    statements: vec![statement("CREATE TABLE T")],
                    documents: Vec::new(),
                });
            }
            _ => {
                let doc_id = format!("Doc{seq:019}");
                let data = Value::structure([
                    ("k", Value::int(seq)),
                    ("name", Value::string(format!("document number {seq}"))),
                    ("payload", Value::string("x".repeat(48))),
                ]);
                block.revisions.push(BlockRevision::User(Revision {
                    metadata: RevisionMetadata {
                        id: doc_id.clone(),
                        version: 0,
                        tx_time_ms: ms,
                        tx_id: tx_id.clone(),
                    },
                    body: RevisionBody::Data(data),
                }));
                block.transaction_info = Some(TransactionInfo {
                    statements: vec![statement("INSERT INTO T ?")],
                    documents: vec![DocumentInfo {
                        document_id: doc_id,
                        table_name: "T".into(),
                        table_id: table_id.clone(),
                        statements: vec![0],
                    }],
                });
            }
        }
        prev = block.block_hash();
        out.push(block.to_ion());
    }
    out
}
