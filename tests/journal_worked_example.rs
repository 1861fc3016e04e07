//! journal-and-verification.md §4.5 rebuilt byte for byte: three blocks, their hashes, the
//! digests at every tip, and GetBlock/GetRevision proofs that fold to the digest.

use num_bigint::BigInt;
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{Data, Decimal, Timestamp, Value};
use qldb_local::journal::block::*;
use qldb_local::journal::hash::{dot, statement_digest, Hash};
use qldb_local::journal::merkle::{append, audit_path, list_path, root};

const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00.000Z
const STRAND: &str = "EmuStrand0000000000001";
const TABLE: &str = "EmuTableVehicle0000001";
const DOC1: &str = "EmuDocVehicle000000001";
const DOC2: &str = "EmuDocVehicle000000002";

fn tx(n: u32) -> String {
    format!("EmuTx{n:017}")
}

fn dec(c: i64, e: i64) -> Value {
    Data::Decimal(Decimal::new(BigInt::from(c), e)).into()
}

fn vehicle1(price: Value) -> Value {
    Value::structure([
        ("VIN", Value::string("1N4AL11D75C109151")),
        ("Make", Value::string("Volkswagen")),
        ("Year", Value::int(2011)),
        ("Price", price),
        (
            "Registered",
            Data::Timestamp(Timestamp::from_millis_utc(T0 - 12 * 3_600_000)).into(),
        ),
    ])
}

fn vehicle2() -> Value {
    Value::structure([
        ("VIN", Value::string("KM8SRDHF6EU074761")),
        ("Make", Value::string("Hyundai")),
        ("Year", Value::int(2014)),
        ("Price", dec(900000, -2)),
        (
            "Tags",
            Value::list(vec![Value::string("suv"), Value::string("awd")]),
        ),
        ("Photo", Value::blob(vec![0xde, 0xad, 0xbe, 0xef])),
    ])
}

fn stmt(text: &str, at: i64, params: &[Value]) -> StatementInfo {
    StatementInfo {
        statement: text.into(),
        start_time_ms: T0 + at,
        statement_digest: statement_digest(text, params),
    }
}

fn doc(id: &str, statements: Vec<u32>) -> DocumentInfo {
    DocumentInfo {
        document_id: id.into(),
        table_name: "Vehicle".into(),
        table_id: TABLE.into(),
        statements,
    }
}

fn user(id: &str, version: u64, at: i64, txn: u32, data: Value) -> BlockRevision {
    BlockRevision::User(Revision {
        metadata: RevisionMetadata {
            id: id.into(),
            version,
            tx_time_ms: T0 + at,
            tx_id: tx(txn),
        },
        body: RevisionBody::Data(data),
    })
}

fn blocks() -> Vec<Block> {
    let system = Revision {
        metadata: RevisionMetadata {
            id: TABLE.into(),
            version: 0,
            tx_time_ms: T0 + 140,
            tx_id: tx(0),
        },
        body: RevisionBody::Data(Value::structure([
            ("name", Value::string("Vehicle")),
            ("status", Value::string("ACTIVE")),
        ])),
    };
    let vin = Value::string("1N4AL11D75C109151");
    let specs = vec![
        (
            vec![stmt("CREATE TABLE Vehicle", 100, &[])],
            vec![],
            vec![BlockRevision::System(system.hash())],
            150,
        ),
        (
            vec![stmt(
                "INSERT INTO Vehicle ?",
                1200,
                &[vehicle1(dec(1250050, -2))],
            )],
            vec![doc(DOC1, vec![0])],
            vec![user(DOC1, 0, 1240, 1, vehicle1(dec(1250050, -2)))],
            1250,
        ),
        (
            vec![
                stmt(
                    "SELECT * FROM Vehicle AS v WHERE v.VIN = ?",
                    2300,
                    std::slice::from_ref(&vin),
                ),
                stmt(
                    "UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?",
                    2320,
                    &[dec(1199999, -2), vin.clone()],
                ),
                stmt("INSERT INTO Vehicle ?", 2350, &[vehicle2()]),
            ],
            vec![doc(DOC1, vec![1]), doc(DOC2, vec![2])],
            vec![
                user(DOC1, 1, 2380, 2, vehicle1(dec(1199999, -2))),
                user(DOC2, 0, 2380, 2, vehicle2()),
            ],
            2390,
        ),
    ];
    let mut prev = vec![0u8; 32];
    let mut out = Vec::new();
    for (seq, (statements, documents, revisions, at)) in specs.into_iter().enumerate() {
        let b = Block {
            address: BlockAddress {
                strand_id: STRAND.into(),
                sequence_no: seq as u64,
            },
            transaction_id: tx(seq as u32),
            timestamp_ms: T0 + at,
            previous_block_hash: prev.clone(),
            transaction_info: Some(TransactionInfo {
                statements,
                documents,
            }),
            redaction_info: None,
            revisions,
            system_entry: None,
        };
        prev = b.block_hash();
        out.push(b);
    }
    out
}

fn hx(h: &[u8]) -> String {
    hex::encode(h)
}

/// An in-memory digest tree built with `append`, as the storage layer will keep it.
struct Tree(std::collections::HashMap<(u32, u64), Hash>);

impl Tree {
    fn new(leaves: &[Hash]) -> Self {
        let mut t = Tree(Default::default());
        for (i, leaf) in leaves.iter().enumerate() {
            let nodes = append(i as u64, leaf.clone(), |l, i| {
                Ok::<_, ()>(t.0[&(l, i)].clone())
            })
            .unwrap();
            t.0.extend(nodes.into_iter().map(|(l, i, h)| ((l, i), h)));
        }
        t
    }
    fn node(&self) -> impl FnMut(u32, u64) -> Result<Hash, ()> + '_ {
        |l, i| Ok(self.0[&(l, i)].clone())
    }
}

fn fold(leaf: &[u8], proof: &[Hash]) -> Hash {
    proof.iter().fold(leaf.to_vec(), |acc, p| dot(&acc, p))
}

#[test]
fn blocks_match_the_worked_example() {
    let b = blocks();
    let t0 = b[0].transaction_info.as_ref().unwrap();
    assert_eq!(
        hx(&t0.statements[0].statement_digest),
        "76dd67de2d766338b3c073196d6062039062da940b3bfc663c66345862fb3551"
    );
    assert_eq!(
        hx(&b[0].revisions[0].hash()),
        "403e0266686a376cd1fc799c4f9bcbae40523211ca8713b111ac6882fc7b8049"
    );
    assert_eq!(
        hx(&ion_hash(&t0.to_ion())),
        "0851a3042707e86055acd271ed3919aa05a2f47c2713112ea787db05c4f788ff"
    );
    assert_eq!(
        hx(&b[0].entries_hash()),
        "0f4f5778c0975c816805b383220abc2925a8493f63721585faf29e41eea61c52"
    );
    assert_eq!(
        hx(&b[0].block_hash()),
        "ba616785ce0d83eae2d948496de8211799cdbfec01886eba5064fe6d4225c1d8"
    );

    let t1 = b[1].transaction_info.as_ref().unwrap();
    assert_eq!(
        hx(&t1.statements[0].statement_digest),
        "4a6a386064ebb70eedcb19d46e470a4b8bc399cef12127db4976d1c3cc7ea65b"
    );
    assert_eq!(
        hx(&b[1].revisions[0].hash()),
        "33c6dd947023cdf31fe725993875265a3db8442dda027dd2abd54410c5c69008"
    );
    assert_eq!(
        hx(&ion_hash(&t1.to_ion())),
        "4213ecc853e8572d7bb8f2d88518cdaffe8bb9b0c750cb8ad97fb9ab68c5f9c6"
    );
    assert_eq!(
        hx(&b[1].entries_hash()),
        "d57750c0c3c6f9bce6691eb88bd612bfee8831bf7508107986c57b3eaf59428b"
    );
    assert_eq!(
        hx(&b[1].block_hash()),
        "4a66c4873e8a2e118d02ae983066ca744e0d3953a28f8e169bb2059494231f5b"
    );

    let t2 = b[2].transaction_info.as_ref().unwrap();
    let digests: Vec<_> = t2
        .statements
        .iter()
        .map(|s| hx(&s.statement_digest))
        .collect();
    assert_eq!(
        digests,
        [
            "3f08f15796fa15593308a5434c7497c5e6c92c1a6cdd7d16e7d1c4b6c1a6f5ed",
            "4597096edcf79ca211ce85e59deda5b4009158525f3377d00ee7b917db92ed8c",
            "3cbef421cd9a5424dd6fa6f77501d313234269e9cf3b6537052e0c8112239cbe",
        ]
    );
    assert_eq!(
        hx(&b[2].revisions[0].hash()),
        "bb99d26354c24d8699a470af7976f997a88ef42fb6236176bf509eb6a0e64313"
    );
    assert_eq!(
        hx(&b[2].revisions[1].hash()),
        "d0ae304017a06644f3a81a93b0c72927e0704ea634d41763d2fcbb593af9f5ae"
    );
    assert_eq!(
        hx(&b[2].revisions_hash().unwrap()),
        "acb3ac547848cedd7e1fb9bae71bd109f0d5b539f35e42f767a6f3ff06583c19"
    );
    assert_eq!(
        hx(&ion_hash(&t2.to_ion())),
        "070b5c93b1d7d4795ca2dfe634ee4f7955aac23edabe6bfdfd1549757c66e230"
    );
    assert_eq!(
        hx(&b[2].entries_hash()),
        "0464c38cba195ff222217b2599e560f77548e3e86cebf708a11d103dc7a991fc"
    );
    assert_eq!(
        hx(&b[2].block_hash()),
        "e4e040906518bf981b2a4fe02b368a818c4f8e925032943ab269b90e39990afe"
    );

    let ion = b[2].to_ion();
    let Data::Struct(fields) = &ion.data else {
        panic!()
    };
    let names: Vec<_> = fields.iter().map(|(k, _)| k.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "blockAddress",
            "transactionId",
            "blockTimestamp",
            "blockHash",
            "entriesHash",
            "previousBlockHash",
            "entriesHashList",
            "transactionInfo",
            "revisions",
        ]
    );
}

#[test]
fn digests_and_proofs_match_the_worked_example() {
    let b = blocks();
    let leaves: Vec<Hash> = b.iter().map(Block::block_hash).collect();
    let tree = Tree::new(&leaves);
    let digest = |tip: u64| root(tip + 1, tree.node()).unwrap();
    assert_eq!(digest(0), leaves[0]);
    assert_eq!(
        hx(&digest(1)),
        "caba36563b0c89d64393ba0520fabbe60e05aa6333e9f884454124ae56925edf"
    );
    assert_eq!(
        hx(&digest(2)),
        "c6ce260401be066e857bb40af86e3d3c47096485ef65470595cfe354d81f714e"
    );

    let block_proof = |seq: u64, tip: u64| audit_path(seq, tip + 1, tree.node()).unwrap();
    assert!(block_proof(0, 0).is_empty());
    assert_eq!(block_proof(0, 1), vec![leaves[1].clone()]);
    assert_eq!(
        block_proof(0, 2),
        vec![leaves[1].clone(), leaves[2].clone()]
    );
    assert_eq!(
        block_proof(1, 2),
        vec![leaves[0].clone(), leaves[2].clone()]
    );
    assert_eq!(block_proof(2, 2), vec![digest(1)]);
    for tip in 0..3u64 {
        for seq in 0..=tip {
            assert_eq!(
                fold(&leaves[seq as usize], &block_proof(seq, tip)),
                digest(tip)
            );
        }
    }

    let revision_proof = |seq: usize, k: usize, tip: u64| {
        let blk = &b[seq];
        let hashes: Vec<Hash> = blk.revisions.iter().map(BlockRevision::hash).collect();
        let mut p = list_path(&hashes, k);
        p.extend(list_path(&blk.entries_hash_list(), 0));
        p.push(blk.previous_block_hash.clone());
        p.extend(block_proof(seq as u64, tip));
        p
    };
    let t = |seq: usize| ion_hash(&b[seq].transaction_info.as_ref().unwrap().to_ion()).to_vec();
    assert_eq!(
        revision_proof(1, 0, 2),
        vec![
            t(1),
            leaves[0].clone(),
            leaves[0].clone(),
            leaves[2].clone()
        ]
    );
    assert_eq!(
        revision_proof(1, 0, 1),
        vec![t(1), leaves[0].clone(), leaves[0].clone()]
    );
    let r2a = b[2].revisions[0].hash();
    let r2b = b[2].revisions[1].hash();
    assert_eq!(
        revision_proof(2, 1, 2),
        vec![r2a.clone(), t(2), leaves[1].clone(), digest(1)]
    );
    assert_eq!(
        revision_proof(2, 0, 2),
        vec![r2b.clone(), t(2), leaves[1].clone(), digest(1)]
    );
    assert_eq!(
        fold(&b[1].revisions[0].hash(), &revision_proof(1, 0, 2)),
        digest(2)
    );
    assert_eq!(fold(&r2b, &revision_proof(2, 1, 2)), digest(2));
}

#[test]
fn the_incremental_tree_agrees_with_a_full_merkle_for_many_sizes() {
    use sha2::{Digest, Sha256};
    let leaves: Vec<Hash> = (0..300u32)
        .map(|i| Sha256::digest(i.to_le_bytes()).to_vec())
        .collect();
    let tree = Tree::new(&leaves);
    for n in 1..=leaves.len() {
        let want = qldb_local::journal::hash::merkle(&leaves[..n]);
        assert_eq!(root(n as u64, tree.node()).unwrap(), want, "n = {n}");
        for m in [0, n / 3, n / 2, n - 1] {
            let p = audit_path(m as u64, n as u64, tree.node()).unwrap();
            assert!(p.len() <= 64 - (n as u64).leading_zeros() as usize);
            assert_eq!(fold(&leaves[m], &p), want, "m = {m}, n = {n}");
        }
    }
}

#[test]
fn block_ion_equals_the_spec_text() {
    let spec = r#"{blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},transactionId:"EmuTx00000000000000002",
 blockTimestamp:2024-01-01T00:00:02.390Z,blockHash:{{5OBAkGUYv5gbKk/gKzaKgYxPjpJQMpQ6smm5DjmZCv4=}},
 entriesHash:{{BGTDjLoZX/IiIXslmeVg93VI4+hs6/cIoR0QPcepkfw=}},previousBlockHash:{{SmbEhz6KLhGNAq6YMGbKdE4NOVOij44Wm7IFlJQjH1s=}},
 entriesHashList:[{{rLOsVHhIzt1+H7m65xvRCfDVtTnzXkL3Z6bz/wZYPBk=}},{{Bwtck7HX1Hlcot/mNO5PeVWqwj7avmv9/RVJdXxm4jA=}}],
 transactionInfo:{statements:[
   {statement:"SELECT * FROM Vehicle AS v WHERE v.VIN = ?",startTime:2024-01-01T00:00:02.300Z,statementDigest:{{PwjxV5b6FVkzCKVDTHSXxebJLBps3X0W59HEtsGm9e0=}}},
   {statement:"UPDATE Vehicle AS v SET v.Price = ? WHERE v.VIN = ?",startTime:2024-01-01T00:00:02.320Z,statementDigest:{{RZcJbtz3nKIRzoXlne2ltACRWFJfM3fQDue5F9uS7Yw=}}},
   {statement:"INSERT INTO Vehicle ?",startTime:2024-01-01T00:00:02.350Z,statementDigest:{{PL70Ic2aVCTdb6b3dQHTEyNCaenPO2U3BS4MgRIjnL4=}}}],
  documents:{EmuDocVehicle000000001:{tableName:"Vehicle",tableId:"EmuTableVehicle0000001",statements:[1]},
             EmuDocVehicle000000002:{tableName:"Vehicle",tableId:"EmuTableVehicle0000001",statements:[2]}}},
 revisions:[
  {blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},hash:{{u5nSY1TCTYaZpHCveXb5l6iO9C+2I2F2v1CetqDmQxM=}},
   data:{VIN:"1N4AL11D75C109151",Make:"Volkswagen",Year:2011,Price:11999.99,Registered:2023-12-31T12:00:00.000Z},
   metadata:{id:"EmuDocVehicle000000001",version:1,txTime:2024-01-01T00:00:02.380Z,txId:"EmuTx00000000000000002"}},
  {blockAddress:{strandId:"EmuStrand0000000000001",sequenceNo:2},hash:{{0K4wQBegZkTzqBqTsMcpJ+BwTqY01Bdj0vy7WTr59a4=}},
   data:{VIN:"KM8SRDHF6EU074761",Make:"Hyundai",Year:2014,Price:9000.00,Tags:["suv","awd"],Photo:{{3q2+7w==}}},
   metadata:{id:"EmuDocVehicle000000002",version:0,txTime:2024-01-01T00:00:02.380Z,txId:"EmuTx00000000000000002"}}]}"#;
    let ours = blocks()[2].to_ion();
    assert_eq!(qldb_local::ion::text::from_text_one(spec).unwrap(), ours);
    let printed = qldb_local::ion::text::to_text_one(&ours);
    let compact: String = spec.lines().map(str::trim).collect();
    assert_eq!(printed, compact, "printed form");
}

#[path = "export_fixture/mod.rs"]
mod export_fixture;

/// The worked example's journal, exported and imported with `qldb-local import`, is served
/// with the example's digest and proofs: hashes reproduced byte for byte from stored blocks
/// whose revisions' txTime is not their block's timestamp.
#[test]
fn the_worked_example_imported_serves_its_digest_and_proofs() {
    use qldb_local::api::qldb::{GetRevisionRequest, ValueHolder};
    use qldb_local::ion::text::from_text_one;
    let export = tempfile::tempdir().unwrap();
    let ion: Vec<Value> = blocks().iter().map(Block::to_ion).collect();
    export_fixture::write_export(
        export.path(),
        "journalExport/",
        "x",
        &ion,
        2,
        export_fixture::Format::IonText,
    );
    let data = tempfile::tempdir().unwrap();
    let imported = qldb_local::import::import(&qldb_local::import::ImportOptions::new(
        data.path(),
        "vehicles",
        export.path().display().to_string(),
    ))
    .unwrap();
    assert_eq!(
        hx(&imported.verified.digest),
        "c6ce260401be066e857bb40af86e3d3c47096485ef65470595cfe354d81f714e"
    );
    assert!(imported.new_table_ids.is_empty());
    let cfg = qldb_local::config::Config::for_tests(data.path().to_path_buf());
    let control = qldb_local::server::open_control(
        qldb_local::server::control_config(&cfg),
        qldb_local::control::system_clock(),
    )
    .unwrap();
    let digest = control.get_digest("vehicles").unwrap();
    use base64::Engine as _;
    assert_eq!(
        digest.digest,
        "xs4mBAG+Bm6Fe7QK+G49PEcJZIXvZUcFlc/jVNgfcU4="
    );
    let holder = |t: &str| ValueHolder {
        ion_text: Some(t.to_string()),
    };
    let r = control
        .get_revision(
            "vehicles",
            GetRevisionRequest {
                block_address: Some(holder(&format!("{{strandId:\"{STRAND}\",sequenceNo:1}}"))),
                document_id: Some(DOC1.into()),
                digest_tip_address: Some(holder(&format!(
                    "{{strandId:\"{STRAND}\",sequenceNo:2}}"
                ))),
            },
        )
        .unwrap();
    let proof = from_text_one(r.proof.unwrap().ion_text.as_deref().unwrap()).unwrap();
    let Data::List(items) = proof.data else {
        panic!("{proof:?}")
    };
    let b64: Vec<String> = items
        .iter()
        .map(|v| match &v.data {
            Data::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(b64.len(), 4);
    assert!(b64[0].starts_with("QhPsyFPo") && b64[0].ends_with("+cY="));
    assert!(b64[1].starts_with("umFnhc4N") && b64[1].ends_with("wdg="));
    assert_eq!(b64[1], b64[2]);
    assert_eq!(b64[3], "5OBAkGUYv5gbKk/gKzaKgYxPjpJQMpQ6smm5DjmZCv4=");
    // verify compares the revisions table's txTime with each revision's own (.380), which
    // is not its block's timestamp (.390).
    drop(control);
    qldb_local::verify::verify_ledger(data.path(), "vehicles").unwrap();
}
