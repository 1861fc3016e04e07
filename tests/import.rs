//! `qldb-local import` makes a ledger from a journal export hash for hash: the same blocks,
//! revisions, digest-tree and digest, every derived table replayed; it accepts what real
//! QLDB blocks hold that qldb-local's do not (internal entries, opaque system revisions);
//! it refuses an export it cannot import exactly, naming the block; and an interrupted
//! import continues where it stopped.

mod common;
mod export_fixture;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use export_fixture::{blocks_of, synthetic, write_export, Format};
use qldb_local::import::{import, ImportOptions};
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{Data, Value};
use qldb_local::journal::block::{hash_field, hash_list};
use qldb_local::journal::hash::{dot, merkle, Hash};
use qldb_local::verify::verify_ledger;

fn options(data_dir: &Path, from: &Path) -> ImportOptions {
    ImportOptions {
        permissions_mode: "ALLOW_ALL".into(),
        ..ImportOptions::new(data_dir, "imported", from.display().to_string())
    }
}

fn rows(file: &Path, sql: &str) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let out = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, rusqlite::types::Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap()
        .map(|r| format!("{:?}", r.unwrap()))
        .collect();
    out
}

#[test]
fn a_ledger_exported_and_imported_is_the_same_ledger() {
    let source = common::rich_ledger();
    let source_file = common::ledger_file(source.path(), "j");
    let expected = verify_ledger(source.path(), "j").unwrap();
    let blocks = blocks_of(&source_file);
    // Two exports of overlapping windows under one prefix, objects of three blocks.
    let export = tempfile::tempdir().unwrap();
    let mid = blocks.len() / 2;
    write_export(
        export.path(),
        "exports/",
        "first",
        &blocks[..mid + 2],
        3,
        Format::IonText,
    );
    write_export(
        export.path(),
        "exports/",
        "second",
        &blocks[mid..],
        3,
        Format::IonText,
    );

    let target = tempfile::tempdir().unwrap();
    let r = import(&options(target.path(), export.path())).unwrap();
    assert_eq!(r.verified.digest, expected.digest);
    assert_eq!(r.verified.tip, expected.tip);
    assert_eq!(r.resumed_after, None);
    assert_eq!(
        verify_ledger(target.path(), "imported").unwrap().digest,
        expected.digest
    );
    // The table that was never written has its id only in its creation's hash: a new id.
    assert_eq!(r.new_table_ids.len(), 1);
    let file = common::ledger_file(target.path(), "imported");

    // The journal and everything derived from it, as the commits wrote it; ids the journal
    // does not hold (the empty table's, indexes') aside.
    for sql in [
        "SELECT * FROM blocks",
        "SELECT * FROM merkle",
        "SELECT * FROM revisions",
        "SELECT * FROM documents",
        "SELECT key, doc_id FROM index_entries",
        "SELECT table_id, field, status, created_seq FROM indexes",
        "SELECT name, status, version, created_seq, modified_seq FROM tables",
        "SELECT * FROM tables WHERE name <> 'Empty'",
    ] {
        assert_eq!(rows(&file, sql), rows(&source_file, sql), "{sql}");
    }
    // No OCC rows of index keys on either side: the server's writer keeps them in memory.
    let sql = "SELECT key, seq FROM index_key_seq";
    assert!(rows(&file, sql).is_empty() && rows(&source_file, sql).is_empty());

    // The server serves it, and new transactions extend the same chain.
    let l = common::serve(target.path());
    let control = l.control.clone();
    let digest = control.get_digest("imported").unwrap();
    let token = l.sessions.start_session("imported").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    let found = tx.run("SELECT * FROM A AS a WHERE a.k = 6", &[]).unwrap();
    assert_eq!(
        found.len(),
        1,
        "the indexed lookup finds the imported document"
    );
    tx.run("INSERT INTO A VALUE {'k': 100}", &[]).unwrap();
    tx.commit().unwrap();
    let after = control.get_digest("imported").unwrap();
    assert_ne!(after.digest, digest.digest);
    drop(l);
    drop(control);
    let v = verify_ledger(target.path(), "imported").unwrap();
    assert_eq!(v.tip, expected.tip + 1);

    // A digest saved at the old tip still checks against the grown journal.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&expected.digest);
    let strand = export_fixture::strand_of(&blocks[0]);
    let address = format!("{{strandId:\"{strand}\",sequenceNo:{}}}", expected.tip);
    let verify = |digest: &str| {
        Command::new(env!("CARGO_BIN_EXE_qldb-local"))
            .args(["verify", "--data-dir"])
            .arg(target.path())
            .args(["--ledger", "imported", "--digest", digest])
            .args(["--digest-tip-address", &address])
            .output()
            .unwrap()
    };
    let ok = verify(&b64);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!(
        "the saved digest {b64} is the journal's digest at sequenceNo {}",
        expected.tip
    )));
    let wrong = verify(&base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("differs"));
}

/// A block as real QLDB wrote it: four entries (two of them internal hashes nobody can
/// recompute) and an internal system revision beside the document revisions.
fn qldb_shaped(block: &Value, prev: &[u8], salt: u8) -> Value {
    let mut fields = match &block.data {
        Data::Struct(f) => f.clone(),
        _ => unreachable!(),
    };
    let opaque =
        |n: u8| -> Hash { ion_hash(&Value::int(1000 + n as u64 + salt as u64 * 7)).to_vec() };
    let mut revision_hashes: Vec<Hash> = Vec::new();
    for (name, v) in fields.iter_mut() {
        if name.as_deref() == Some("revisions") {
            if let Data::List(items) = &mut v.data {
                // QLDB's system revisions hash what only QLDB knows.
                for (k, r) in items.iter_mut().enumerate() {
                    if r.field("metadata").is_none() {
                        *r = Value::structure([("hash", Value::blob(opaque(10 + k as u8)))]);
                    }
                }
                items.push(Value::structure([("hash", Value::blob(opaque(3)))]));
                revision_hashes = items
                    .iter()
                    .map(|r| hash_field(r, "hash").unwrap())
                    .collect();
            }
        }
    }
    let ti = block.field("transactionInfo").map(ion_hash);
    let mut list = vec![opaque(1)];
    if !revision_hashes.is_empty() {
        list.push(merkle(&revision_hashes));
    }
    list.push(opaque(2));
    list.extend(ti.map(|h| h.to_vec()));
    let entries = merkle(&list);
    let hash = dot(&entries, prev);
    for (name, v) in fields.iter_mut() {
        match name.as_deref().unwrap_or_default() {
            "entriesHashList" => *v = Value::list(list.iter().cloned().map(Value::blob).collect()),
            "entriesHash" => *v = Value::blob(entries.clone()),
            "blockHash" => *v = Value::blob(hash.clone()),
            "previousBlockHash" => *v = Value::blob(prev.to_vec()),
            _ => {}
        }
    }
    Value {
        data: Data::Struct(fields),
        ..block.clone()
    }
}

#[test]
fn blocks_shaped_as_qldb_wrote_them_import_and_verify() {
    let mut prev: Hash = vec![0; 32];
    let blocks: Vec<Value> = synthetic(6)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let shaped = qldb_shaped(b, &prev, i as u8);
            prev = hash_field(&shaped, "blockHash").unwrap();
            shaped
        })
        .collect();
    assert_eq!(hash_list(&blocks[3], "entriesHashList").unwrap().len(), 4);
    let export = tempfile::tempdir().unwrap();
    write_export(export.path(), "", "e", &blocks, 4, Format::IonBinary);
    let target = tempfile::tempdir().unwrap();
    let r = import(&options(target.path(), export.path())).unwrap();
    assert_eq!(
        r.verified.digest,
        merkle(
            &blocks
                .iter()
                .map(|b| hash_field(b, "blockHash").unwrap())
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(r.documents, 4);
    assert_eq!(r.tables, 1);
    // The table's id comes from its documents, although its creation's hash is QLDB's own.
    assert!(r.new_table_ids.is_empty());
    verify_ledger(target.path(), "imported").unwrap();
    // The server opens it and commits after it.
    let l = common::serve(target.path());
    let token = l.sessions.start_session("imported").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    assert_eq!(tx.run("SELECT * FROM T", &[]).unwrap().len(), 4);
    tx.run("CREATE TABLE U", &[]).unwrap();
    tx.run("INSERT INTO T VALUE {'k': -1}", &[]).unwrap();
    tx.commit().unwrap();
    drop(l);
    assert_eq!(verify_ledger(target.path(), "imported").unwrap().tip, 6);
    // And rebuild keeps it the same ledger.
    let rebuilt = qldb_local::rebuild::rebuild(target.path(), "imported").unwrap();
    assert_eq!(rebuilt.verified.tip, 6);
}

fn refused(export: &Path) -> String {
    let target = tempfile::tempdir().unwrap();
    let e = import(&options(target.path(), export))
        .unwrap_err()
        .to_string();
    // Nothing was made: no ledger in the catalog, no ledger file.
    assert!(
        !common::ledger_file(target.path(), "imported").exists(),
        "{e}"
    );
    let names = qldb_local::verify::ledger_names(target.path(), None).unwrap();
    assert!(names.is_empty(), "{e}");
    e
}

#[test]
fn an_export_that_cannot_be_imported_exactly_is_refused_naming_the_block() {
    let blocks = synthetic(12);
    let fresh = || {
        let d = tempfile::tempdir().unwrap();
        let keys = write_export(d.path(), "p/", "e", &blocks, 4, Format::IonText);
        (d, keys)
    };

    // One byte of a document in block 6 changed (the Ion stays valid).
    let (d, keys) = fresh();
    let path = d.path().join(&keys[1]);
    let text = std::fs::read_to_string(&path).unwrap();
    let damaged = text.replacen("document number 6", "document number 7", 1);
    assert_ne!(damaged, text);
    std::fs::write(&path, damaged).unwrap();
    let e = refused(d.path());
    assert!(
        e.contains("block 6: a revision's hash does not match"),
        "{e}"
    );

    // A data object the manifest lists is missing.
    let (d, keys) = fresh();
    std::fs::remove_file(d.path().join(&keys[1])).unwrap();
    let e = refused(d.path());
    assert!(
        e.contains("block 4:") && e.contains("missing") && e.contains(&keys[1]),
        "{e}"
    );

    // A block missing inside an object.
    let (d, keys) = fresh();
    let path = d.path().join(&keys[2]);
    let text = std::fs::read_to_string(&path).unwrap();
    let cut: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();
    let e = refused(d.path());
    assert!(e.contains("block 8:"), "{e}");

    // An export that does not start at block 0.
    let d = tempfile::tempdir().unwrap();
    write_export(d.path(), "p/", "e", &blocks[4..], 4, Format::IonText);
    let e = refused(d.path());
    assert!(
        e.contains("block 0:") && e.contains("starts at block 4"),
        "{e}"
    );

    // A gap between two exports.
    let d = tempfile::tempdir().unwrap();
    write_export(d.path(), "p/", "a", &blocks[..4], 4, Format::IonText);
    write_export(d.path(), "p/", "b", &blocks[8..], 4, Format::IonText);
    let e = refused(d.path());
    assert!(e.contains("block 4: is missing"), "{e}");

    // A JSON export: its hashes cannot be recomputed.
    let d = tempfile::tempdir().unwrap();
    write_export(d.path(), "p/", "e", &blocks, 4, Format::Json);
    let e = refused(d.path());
    assert!(e.contains("JSON"), "{e}");

    // No completed manifest: an export QLDB did not finish.
    let (d, _) = fresh();
    for entry in std::fs::read_dir(d.path().join("p")).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().ends_with(".completed.manifest") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let e = refused(d.path());
    assert!(e.contains("no completed export"), "{e}");

    // A block whose chain link is broken: it follows another block than the one before it.
    let d = tempfile::tempdir().unwrap();
    let mut mixed = blocks.clone();
    mixed[5] = qldb_shaped(&blocks[5], &[9; 32], 0);
    write_export(d.path(), "p/", "e", &mixed, 4, Format::IonText);
    let e = refused(d.path());
    assert!(e.contains("block 5: its previousBlockHash"), "{e}");

    // An existing ledger name.
    let (d, _) = fresh();
    let target = tempfile::tempdir().unwrap();
    import(&options(target.path(), d.path())).unwrap();
    let e = import(&options(target.path(), d.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn an_interrupted_import_continues_where_it_stopped() {
    let blocks = synthetic(30_000);
    let export = tempfile::tempdir().unwrap();
    write_export(export.path(), "x/", "e", &blocks, 1000, Format::IonBinary);
    let target = tempfile::tempdir().unwrap();
    let work = target
        .path()
        .join("import-work")
        .join("imported")
        .join("ledger.sqlite");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_qldb-local"))
            .args(["import", "--quiet", "--ledger", "imported", "--data-dir"])
            .arg(target.path())
            .arg("--from")
            .arg(export.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Killed once the work file holds a committed batch of blocks.
    let mut child = run();
    let written = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import ended ({status}) before it could be interrupted");
        }
        let n: Option<i64> = rusqlite::Connection::open_with_flags(
            &work,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT max(seq) FROM blocks", [], |r| r.get(0)))
        .unwrap_or(None);
        if let Some(n) = n {
            child.kill().unwrap();
            child.wait().unwrap();
            break n as u64;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(written < 29_999);
    let out = run().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("continued an interrupted import after block "))
        .expect("the second run continues")
        .parse()
        .unwrap();
    assert!(resumed >= written, "{resumed} < {written}");
    assert!(
        stdout.contains("imported imported: 30000 blocks from 30 objects"),
        "{stdout}"
    );
    let digest = merkle(
        &blocks
            .iter()
            .map(|b| hash_field(b, "blockHash").unwrap())
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        verify_ledger(target.path(), "imported").unwrap().digest,
        digest
    );
    assert!(!target.path().join("import-work").join("imported").exists());
}

#[test]
fn a_json_export_imports_with_rehash_into_a_new_chain() {
    let source = common::rich_ledger();
    let source_file = common::ledger_file(source.path(), "j");
    let blocks = blocks_of(&source_file);
    let export = tempfile::tempdir().unwrap();
    write_export(export.path(), "json/", "e", &blocks, 4, Format::Json);
    let target = tempfile::tempdir().unwrap();
    let mut opts = options(target.path(), export.path());
    let e = import(&opts).unwrap_err().to_string();
    assert!(e.contains("JSON") && e.contains("--rehash"), "{e}");
    opts.rehash = true;
    let r = import(&opts).unwrap();
    assert!(r.rehashed);
    assert_ne!(r.strand, export_fixture::strand_of(&blocks[0]));
    assert_ne!(
        r.verified.digest,
        verify_ledger(source.path(), "j").unwrap().digest
    );
    // The redacted revision's data is not in the export: said, and held as an empty struct.
    assert!(
        r.notes.iter().any(|n| n.contains("was redacted")),
        "{:?}",
        r.notes
    );
    verify_ledger(target.path(), "imported").unwrap();
    let file = common::ledger_file(target.path(), "imported");
    for sql in [
        "SELECT d.doc_id, t.table_id, d.version, d.data FROM documents d JOIN tables t USING (table_no)",
        "SELECT r.doc_id, r.version, t.table_id FROM revisions r JOIN tables t USING (table_no)",
        "SELECT doc_id, version FROM revisions WHERE redacted_seq IS NOT NULL",
        "SELECT name, status, version FROM tables",
        "SELECT field, status FROM indexes",
        "SELECT key, doc_id FROM index_entries",
    ] {
        assert_eq!(rows(&file, sql), rows(&source_file, sql), "{sql}");
    }
    let l = common::serve(target.path());
    let token = l.sessions.start_session("imported").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    assert_eq!(
        tx.run("SELECT * FROM A AS a WHERE a.k = 6", &[])
            .unwrap()
            .len(),
        1
    );
    tx.commit().unwrap();
}

/// A rehash commits each exported transaction through the ledger's writer, whose WAL
/// checkpoint thread starts after 32 SQLite commits: the import then folds the WAL into the
/// file (leaving WAL mode needs every other connection closed) and must still succeed.
#[test]
fn a_rehash_longer_than_the_checkpoint_interval_imports() {
    let l = common::ledger();
    let token = l.sessions.start_session("j").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("CREATE TABLE T", &[]).unwrap();
    tx.commit().unwrap();
    for k in 0..100 {
        let mut tx = common::Tx::begin(&l, &token);
        tx.run("INSERT INTO T ?", &[&format!("{{k: {k}}}")])
            .unwrap();
        tx.commit().unwrap();
    }
    let source = l.close();
    let blocks = blocks_of(&common::ledger_file(source.path(), "j"));
    assert!(blocks.len() > 100);
    let export = tempfile::tempdir().unwrap();
    write_export(export.path(), "json/", "e", &blocks, 16, Format::Json);
    let target = tempfile::tempdir().unwrap();
    let mut opts = options(target.path(), export.path());
    opts.rehash = true;
    let r = import(&opts).unwrap();
    assert!(r.rehashed);
    verify_ledger(target.path(), "imported").unwrap();
    let file = common::ledger_file(target.path(), "imported");
    let conn = rusqlite::Connection::open(&file).unwrap();
    let docs: i64 = conn
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(docs, 100);
}
