//! The storage traits' contract, checked through `dyn Backend` / `dyn LedgerStore` only, so
//! that every backend (SQLite files, SQLite in memory; later PostgreSQL) runs the same
//! checks: scans in insertion order across pages, index lookups by canonical key, OCC
//! refusals, proofs that fold to the digest, durability across a reopen, removal.

use std::collections::BTreeMap;
use std::sync::Arc;

use qldb_local::ion::{Data, Value};
use qldb_local::journal::hash::dot;
use qldb_local::names::LedgerName;
use qldb_local::storage::sqlite::SqliteBackend;
use qldb_local::storage::{
    index_key, Backend, CommitError, CommitRequest, DocWrite, LedgerRecord, LedgerStore, ReadCheck,
    SCAN_START,
};

const T: &str = "TableT0000000000000001";
const I: &str = "IndexI0000000000000001";

fn doc(i: u64) -> String {
    format!("Doc{i:019}")
}

fn write(i: u64, version: u64, data: Option<Value>) -> DocWrite {
    DocWrite {
        doc_id: doc(i),
        table_id: T.into(),
        table_name: "T".into(),
        version,
        data,
        statements: vec![0],
    }
}

fn body(i: u64, tag: &str) -> Value {
    Value::structure([("n", Value::int(i)), ("tag", Value::string(tag))])
}

fn commit(db: &dyn LedgerStore, n: u64, req: CommitRequest) -> u64 {
    let req = CommitRequest {
        transaction_id: format!("tx{n:020}"),
        commit_ms: 1_704_067_200_000 + n as i64,
        ..req
    };
    db.commit(req).unwrap().sequence_no
}

/// The table's document ids, scanned 500 at a time.
fn ids(db: &dyn LedgerStore) -> Vec<String> {
    let (mut after, mut out) = (SCAN_START, Vec::new());
    loop {
        let page = db.scan_page(T, after, 500, None).unwrap();
        out.extend(page.docs.into_iter().map(|d| d.doc_id));
        after = page.last;
        if page.read < 500 {
            return out;
        }
    }
}

fn record(name: &str) -> LedgerRecord {
    LedgerRecord {
        ord: 0,
        name: name.into(),
        arn: format!("arn:aws:qldb:us-east-1:123456789012:ledger/{name}"),
        permissions_mode: "ALLOW_ALL".into(),
        deletion_protection: false,
        kms_key_arn: None,
        created_ms: 1,
        active_at_ms: 1,
        kms_updated_ms: None,
        deleting_since_ms: None,
        gone_at_ms: None,
    }
}

/// Everything the layers above rely on, for one fresh ledger of `backend`.
fn contract(backend: &dyn Backend) -> Arc<dyn LedgerStore> {
    let mut catalog = backend.open_catalog().unwrap();
    catalog
        .insert_ledger(&record("c"), &BTreeMap::new())
        .unwrap();
    let name = LedgerName::parse("c").unwrap();
    let db = backend
        .create_ledger(&name, "ContractStrand00000001", 1_704_067_200_000)
        .unwrap();
    let genesis = db.tip().unwrap();
    assert_eq!(
        (genesis.strand_id.as_str(), genesis.last_seq),
        ("ContractStrand00000001", 0)
    );
    assert!(db.tables().unwrap().is_empty());

    // A table with more documents than one scan page holds, and an index.
    let many = 1_300;
    commit(
        db.as_ref(),
        1,
        CommitRequest {
            new_tables: vec![(T.into(), "T".into())],
            new_indexes: vec![(I.into(), T.into(), "tag".into())],
            writes: (0..many).map(|i| write(i, 0, Some(body(i, "a")))).collect(),
            ..Default::default()
        },
    );
    let tables = db.tables().unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!((tables[0].name.as_str(), tables[0].active), ("T", true));
    assert_eq!(tables[0].indexes[0].field, "tag");
    let want: Vec<String> = (0..many).map(doc).collect();
    assert_eq!(ids(db.as_ref()), want, "insertion order across scan pages");

    // Updates keep a document's place, deletes remove it, new documents come last.
    let seq = commit(
        db.as_ref(),
        2,
        CommitRequest {
            writes: vec![
                write(700, 1, Some(body(700, "b"))),
                write(3, 1, None),
                write(1_299, 1, None),
                write(many, 0, Some(body(many, "b"))),
            ],
            ..Default::default()
        },
    );
    assert_eq!(seq, 2);
    let mut want: Vec<String> = (0..many)
        .filter(|i| ![3, 1_299].contains(i))
        .map(doc)
        .collect();
    want.push(doc(many));
    assert_eq!(ids(db.as_ref()), want);
    let d = db.document(&doc(700)).unwrap().unwrap();
    assert_eq!((d.version, d.data.clone()), (1, body(700, "b")));
    assert!(db.document(&doc(3)).unwrap().is_none());

    // Index lookups by canonical key (a string tag; a number keyed by value).
    let mut found: Vec<String> = db
        .index_lookup(I, &index_key(&Value::string("b")), usize::MAX)
        .unwrap()
        .into_iter()
        .map(|d| d.doc_id)
        .collect();
    found.sort();
    assert_eq!(found, vec![doc(700), doc(many)]);
    // A limited lookup returns no more than asked for, of the same documents.
    let one = db
        .index_lookup(I, &index_key(&Value::string("b")), 1)
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(found.contains(&one[0].doc_id));
    assert!(db
        .index_lookup(I, &index_key(&Value::string("zzz")), usize::MAX)
        .unwrap()
        .is_empty());

    // OCC: a read of version 0 of a document now at version 1 is refused, in a commit and
    // in a read-only validation; a current read passes.
    let stale = vec![ReadCheck::Doc {
        doc_id: doc(700),
        version: Some(0),
    }];
    let refused = db.commit(CommitRequest {
        transaction_id: "txStale0000000000000001".into(),
        commit_ms: 1_704_067_300_000,
        reads: stale.clone(),
        writes: vec![write(700, 2, Some(body(700, "c")))],
        ..Default::default()
    });
    assert!(
        matches!(refused, Err(CommitError::Conflict(_))),
        "{refused:?}"
    );
    assert!(matches!(db.validate(&stale), Err(CommitError::Conflict(_))));
    let table_read = vec![ReadCheck::Table {
        table_id: T.into(),
        as_of: 1,
    }];
    assert!(matches!(
        db.validate(&table_read),
        Err(CommitError::Conflict(_))
    ));
    db.validate(&[ReadCheck::Doc {
        doc_id: doc(700),
        version: Some(1),
    }])
    .unwrap();
    assert_eq!(
        db.tip().unwrap().last_seq,
        2,
        "a refused commit writes no block"
    );

    // The journal: blocks, windows, and proofs that fold each block's hash to the digest.
    let (tip, digest) = db.digest().unwrap();
    assert_eq!(tip, 2);
    assert_eq!(db.digest_at(tip).unwrap(), digest);
    assert_eq!(db.blocks().unwrap().len(), 3);
    assert_eq!(db.count_in_window(0, 0, i64::MAX).unwrap(), 3);
    let window = db.blocks_in_window(1, 0, None, 10).unwrap();
    assert_eq!(window.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 2]);
    for seq in 0..=tip {
        let block = db.block(seq).unwrap().unwrap();
        let Some(Data::Blob(hash)) = block.field("blockHash").map(|v| &v.data) else {
            panic!("block {seq} has no blockHash: {block:?}");
        };
        let folded = db
            .block_proof(seq, tip)
            .unwrap()
            .iter()
            .fold(hash.clone(), |acc, h| dot(&acc, h).to_vec());
        assert_eq!(folded, digest.to_vec(), "proof of block {seq}");
    }
    assert!(db.block(tip + 1).unwrap().is_none());
    let (committed, fsyncs) = db.commit_counts();
    assert_eq!(committed, 2);
    assert!(fsyncs >= 1 && fsyncs <= committed);

    // Paged scans: the same order, page by page; `keep` leaves documents out (still read).
    let (mut after, mut paged, mut kept, mut read) = (SCAN_START, Vec::new(), Vec::new(), 0);
    loop {
        let page = db.scan_page(T, after, 500, None).unwrap();
        paged.extend(page.docs.iter().map(|d| d.doc_id.clone()));
        let keep = |id: &str, _: &[u8]| id.ends_with('7');
        let filtered = db.scan_page(T, after, 500, Some(&keep)).unwrap();
        assert_eq!((filtered.read, filtered.last), (page.read, page.last));
        kept.extend(filtered.docs.iter().map(|d| d.doc_id.clone()));
        read += page.read;
        after = page.last;
        if page.read < 500 {
            break;
        }
    }
    assert_eq!(paged, want, "paged scan order");
    assert_eq!(read, want.len());
    let sevens: Vec<String> = want.iter().filter(|d| d.ends_with('7')).cloned().collect();
    assert_eq!(kept, sevens);

    // Counting stops at the cap.
    let n = want.len() as u64;
    assert_eq!(db.count_docs(T, u64::MAX).unwrap(), n);
    assert_eq!(db.count_docs(T, n).unwrap(), n);
    assert_eq!(db.count_docs(T, 10).unwrap(), 10);
    assert_eq!(db.count_docs("no-such-table", 100).unwrap(), 0);

    // A snapshot, where the backend holds one, keeps showing the state it first read.
    if let Some(snap) = db.snapshot().unwrap() {
        assert_eq!(snap.document(&doc(700)).unwrap().unwrap().version, 1);
        commit(
            db.as_ref(),
            3,
            CommitRequest {
                writes: vec![write(700, 2, Some(body(700, "c")))],
                ..Default::default()
            },
        );
        assert_eq!(snap.document(&doc(700)).unwrap().unwrap().version, 1);
        assert_eq!(
            snap.index_lookup(I, &index_key(&Value::string("c")), usize::MAX)
                .unwrap()
                .len(),
            0
        );
        drop(snap);
        assert_eq!(db.document(&doc(700)).unwrap().unwrap().version, 2);
    }
    db
}

#[test]
fn sqlite_files_keep_the_contract_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(Some(dir.path().to_path_buf()), false);
    let db = contract(&backend);
    let (tip, digest) = db.digest().unwrap();
    let docs = ids(db.as_ref());
    drop(db);

    // Everything acknowledged is there after a reopen.
    let name = LedgerName::parse("c").unwrap();
    let db = backend.open_ledger(&name).unwrap();
    assert_eq!(db.digest().unwrap(), (tip, digest));
    assert_eq!(ids(db.as_ref()), docs);

    // Removed: closed for its holders, its data gone, not openable.
    db.remove().unwrap();
    assert!(db.is_closed());
    drop(db);
    assert!(backend.open_ledger(&name).is_err());
}

#[test]
fn sqlite_memory_keeps_the_contract() {
    let backend = SqliteBackend::new(None, false);
    let db = contract(&backend);
    db.mark_closed();
    assert!(db.is_closed());
}

#[test]
fn orphaned_ledger_data_is_removed_and_cataloged_data_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(Some(dir.path().to_path_buf()), false);
    let mut catalog = backend.open_catalog().unwrap();
    catalog
        .insert_ledger(&record("kept"), &BTreeMap::new())
        .unwrap();
    let kept = LedgerName::parse("kept").unwrap();
    let orphan = LedgerName::parse("orphan").unwrap();
    drop(
        backend
            .create_ledger(&kept, "KeptStrand000000000001", 1)
            .unwrap(),
    );
    drop(
        backend
            .create_ledger(&orphan, "OrphanStrand0000000001", 1)
            .unwrap(),
    );
    backend.remove_orphans(catalog.as_ref()).unwrap();
    assert!(backend.open_ledger(&kept).is_ok());
    assert!(backend.open_ledger(&orphan).is_err());
}

/// A handle to a removed ledger that outlives a new ledger of the same name (a session
/// still holding the old one) must not take the new ledger's write-ahead log with it when
/// it closes: SQLite sees that the old file has moved and neither checkpoints nor deletes.
#[test]
fn a_late_handle_of_a_removed_ledger_leaves_its_successor_whole() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::new(Some(dir.path().to_path_buf()), false);
    let name = LedgerName::parse("again").unwrap();
    let table = |n: u64| CommitRequest {
        new_tables: vec![(T.into(), "T".into())],
        writes: (0..n).map(|i| write(i, 0, Some(body(i, "old")))).collect(),
        ..Default::default()
    };
    let old = backend
        .create_ledger(&name, "OldStrand0000000000001", 1)
        .unwrap();
    commit(old.as_ref(), 1, table(3));
    old.remove().unwrap();

    let new = backend
        .create_ledger(&name, "NewStrand0000000000001", 2)
        .unwrap();
    commit(new.as_ref(), 1, table(5));
    let digest = new.digest().unwrap();
    // The late handle closes now, after the successor committed.
    drop(old);
    // A connection opened now finds the successor's log by its path: every commit is there.
    let fresh = backend.open_ledger(&name).unwrap();
    assert_eq!(fresh.digest().unwrap(), digest);
    assert_eq!(ids(fresh.as_ref()).len(), 5);
    drop(fresh);
    drop(new);
    let reopened = backend.open_ledger(&name).unwrap();
    assert_eq!(reopened.digest().unwrap(), digest);
    assert_eq!(reopened.tip().unwrap().strand_id, "NewStrand0000000000001");
    assert_eq!(ids(reopened.as_ref()).len(), 5);
}

#[path = "pg/mod.rs"]
mod pg;

#[test]
fn postgres_keeps_the_contract_and_survives_a_new_process() {
    use qldb_local::storage::pg::PgBackend;
    let db_server = pg::fresh_database();
    let backend = PgBackend::connect(&db_server.url, false).unwrap();
    let db = contract(&backend);
    let (tip, digest) = db.digest().unwrap();
    let docs = ids(db.as_ref());
    drop(db);
    drop(backend);

    // Another backend on the same database (as a second process would): everything
    // acknowledged is there, and the catalog row made by the contract too.
    let backend = PgBackend::connect(&db_server.url, false).unwrap();
    let catalog = backend.open_catalog().unwrap();
    assert_eq!(catalog.ledger("c").unwrap().unwrap().name, "c");
    let name = LedgerName::parse("c").unwrap();
    let db = backend.open_ledger(&name).unwrap();
    assert_eq!(db.digest().unwrap(), (tip, digest));
    assert_eq!(ids(db.as_ref()), docs);

    // Removed: closed for its holders, its data gone, not openable.
    db.remove().unwrap();
    assert!(db.is_closed());
    drop(db);
    assert!(backend.open_ledger(&name).is_err());
}

#[test]
fn postgres_orphans_and_late_handles() {
    use qldb_local::storage::pg::PgBackend;
    let db_server = pg::fresh_database();
    let backend = PgBackend::connect(&db_server.url, false).unwrap();
    let mut catalog = backend.open_catalog().unwrap();
    catalog
        .insert_ledger(&record("kept"), &BTreeMap::new())
        .unwrap();
    let kept = LedgerName::parse("kept").unwrap();
    let orphan = LedgerName::parse("orphan").unwrap();
    drop(
        backend
            .create_ledger(&kept, "KeptStrand000000000001", 1)
            .unwrap(),
    );
    drop(
        backend
            .create_ledger(&orphan, "OrphanStrand0000000001", 1)
            .unwrap(),
    );
    // Young data without a catalog row may be another server's create in progress (its data
    // is written before its catalog row): kept, and a create of that name is refused.
    backend.remove_orphans(catalog.as_ref()).unwrap();
    assert!(backend.open_ledger(&orphan).is_ok());
    let refused = backend
        .create_ledger(&orphan, "OrphanStrand0000000002", 1)
        .err()
        .unwrap();
    assert!(refused
        .to_string()
        .contains("being created by another server"));
    // Once it is older than a create takes, it is the remains of one that failed: removed.
    let mut admin = postgres::Client::connect(&db_server.url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "UPDATE qldb_catalog.ledger_data SET created_at = now() - interval '2 minutes'",
        )
        .unwrap();
    backend.remove_orphans(catalog.as_ref()).unwrap();
    assert!(backend.open_ledger(&kept).is_ok());
    assert!(backend.open_ledger(&orphan).is_err());

    // A late handle of a removed ledger never touches its successor of the same name.
    let name = LedgerName::parse("again").unwrap();
    let table = |n: u64| CommitRequest {
        new_tables: vec![(T.into(), "T".into())],
        writes: (0..n).map(|i| write(i, 0, Some(body(i, "old")))).collect(),
        ..Default::default()
    };
    let old = backend
        .create_ledger(&name, "OldStrand0000000000001", 1)
        .unwrap();
    commit(old.as_ref(), 1, table(3));
    old.remove().unwrap();
    let new = backend
        .create_ledger(&name, "NewStrand0000000000001", 2)
        .unwrap();
    commit(new.as_ref(), 1, table(5));
    assert!(
        old.commit(table(1)).is_err(),
        "the late handle cannot commit"
    );
    drop(old);
    let reopened = backend.open_ledger(&name).unwrap();
    assert_eq!(reopened.tip().unwrap().strand_id, "NewStrand0000000000001");
    assert_eq!(ids(reopened.as_ref()).len(), 5);
}

#[test]
fn postgres_refuses_to_start_with_one_clear_line() {
    use qldb_local::storage::pg::PgBackend;
    let db_server = pg::fresh_database();
    let err = |url: &str| match PgBackend::connect(url, false) {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => e.to_string(),
    };
    let port = db_server.port;
    // Nothing listens on port 1.
    let unreachable = err("postgres://qldb:qldb@127.0.0.1:1/qldb");
    assert!(
        unreachable.starts_with("cannot connect to PostgreSQL at qldb@127.0.0.1:1/qldb:"),
        "{unreachable}"
    );
    let wrong = err(&format!(
        "postgres://qldb:wrong@127.0.0.1:{port}/{}",
        db_server.name
    ));
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    assert!(
        !wrong.contains("wrong"),
        "the password is never shown: {wrong}"
    );
    assert!(err("mysql://nope").contains("not a PostgreSQL URL"));
    // A user without the privilege to create schemas.
    // (Roles belong to the whole server: one of this test's own.)
    let reader = format!("r{}", &db_server.name[3..]);
    pg::admin(
        port,
        &format!(
            "CREATE ROLE {reader} LOGIN PASSWORD 'reader';
             REVOKE CREATE ON DATABASE {0} FROM PUBLIC;",
            db_server.name
        ),
    );
    let denied = err(&format!(
        "postgres://{reader}:reader@127.0.0.1:{port}/{}",
        db_server.name
    ));
    assert!(denied.contains("CREATE privilege"), "{denied}");
    // A catalog of a newer version.
    drop(PgBackend::connect(&db_server.url, false).unwrap());
    let mut c = postgres::Client::connect(&db_server.url, postgres::NoTls).unwrap();
    c.batch_execute("UPDATE qldb_catalog.schema_version SET version = 99")
        .unwrap();
    let newer = err(&db_server.url);
    assert!(newer.contains("newer"), "{newer}");
}

#[test]
fn postgres_runs_each_job_on_one_server() {
    use qldb_local::storage::pg::PgBackend;
    let db_server = pg::fresh_database();
    let (a, b) = (
        PgBackend::connect(&db_server.url, false).unwrap(),
        PgBackend::connect(&db_server.url, false).unwrap(),
    );
    let lease = a
        .job_lease("export-1")
        .unwrap()
        .expect("the first server runs it");
    assert!(b.job_lease("export-1").unwrap().is_none(), "held by a");
    assert!(
        b.job_lease("stream-2").unwrap().is_some(),
        "another job is free"
    );
    drop(lease);
    // The lease's connection closes on a thread of its own: the lock is free soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.job_lease("export-1").unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A stream one server accepts on shared storage is that server's from the start: its lease
/// is taken before the stream's row is visible, so another server looking for left jobs
/// finds it held, and the accepting server's own task gets the lease taken for it.
#[test]
fn postgres_a_new_job_is_held_by_the_server_that_accepted_it() {
    use qldb_local::api::qldb::*;
    use qldb_local::control::{ControlConfig, ControlPlane};
    let db_server = pg::fresh_database();
    let open = || -> ControlPlane {
        let cfg = ControlConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            max_ledgers: 5,
            create_delay_ms: 0,
            delete_delay_ms: 0,
            data_dir: None,
            storage_url: Some(db_server.url.clone()),
            relaxed_durability: false,
            job_retention_ms: 3_600_000,
        };
        qldb_local::server::open_control(cfg, qldb_local::control::system_clock()).unwrap()
    };
    let (a, b) = (open(), open());
    a.create_ledger(CreateLedgerRequest {
        name: Some("jobs".into()),
        permissions_mode: Some("STANDARD".into()),
        deletion_protection: Some(false),
        ..Default::default()
    })
    .unwrap();
    let stream = |name: &str| StreamJournalToKinesisRequest {
        role_arn: Some("arn:aws:iam::000000000000:role/streamer".into()),
        inclusive_start_time: Some(serde_json::json!(1_600_000_000)),
        kinesis_configuration: Some(KinesisConfiguration {
            stream_arn: Some("arn:aws:kinesis:us-east-1:000000000000:stream/s".into()),
            aggregation_enabled: None,
        }),
        stream_name: Some(name.into()),
        ..Default::default()
    };
    let id = a
        .stream_journal_to_kinesis("jobs", stream("first"))
        .unwrap()
        .stream_id;
    assert!(b
        .running_jobs()
        .unwrap()
        .1
        .iter()
        .any(|s| s.stream_id == id));
    use qldb_local::control::JobLeased;
    let held_elsewhere =
        |cp: &ControlPlane, id: &str| matches!(cp.job_lease(id).unwrap(), JobLeased::HeldElsewhere);
    // Waits until `id`'s lease is free, taking it for `b` (the lease's connection closes on
    // a thread of its own).
    let b_takes = |id: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match b.job_lease(id).unwrap() {
                JobLeased::Taken(lease) => return lease,
                JobLeased::HeldElsewhere => {}
                JobLeased::Accepted(_) => panic!("b accepted no job"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lease was never released"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    assert!(held_elsewhere(&b, &id), "held by a from the start");
    let lease = match a.job_lease(&id).unwrap() {
        JobLeased::Accepted(lease) => lease,
        _ => panic!("a's task gets the lease a took"),
    };
    assert!(
        held_elsewhere(&a, &id),
        "handed out once; held until dropped"
    );
    drop(lease);
    drop(b_takes(&id));

    // A job that ends before its task asked for its lease (cancelled here) does not keep it:
    // the next look at the running jobs gives it up.
    let second = a
        .stream_journal_to_kinesis("jobs", stream("second"))
        .unwrap()
        .stream_id;
    a.cancel_journal_kinesis_stream("jobs", &second).unwrap();
    assert!(held_elsewhere(&b, &second), "still a's until it looks");
    assert!(!a
        .running_jobs()
        .unwrap()
        .1
        .iter()
        .any(|s| s.stream_id == second));
    drop(b_takes(&second));
}
