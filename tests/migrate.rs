//! `qldb-local migrate`: a ledger that used every statement kind (drops, undrop, indexes, a
//! redaction) copied from a data dir to PostgreSQL and back keeps every row, hash, digest
//! and proof; the copy serves new transactions; a destination that has the ledger is refused.

mod common;
mod export_fixture;

use common::pg;

use std::collections::BTreeMap;
use std::sync::Arc;

use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::names::LedgerName;
use qldb_local::session::Sessions;
use qldb_local::storage::migrate::{run, Place};
use qldb_local::storage::pg::PgBackend;
use qldb_local::storage::sqlite::SqliteBackend;
use qldb_local::storage::{Backend, LedgerStore};

fn proofs(db: &dyn LedgerStore) -> Vec<Vec<Vec<u8>>> {
    let (tip, _) = db.digest().unwrap();
    (0..=tip).map(|s| db.block_proof(s, tip).unwrap()).collect()
}

#[test]
fn a_ledger_copied_to_postgres_and_back_is_the_same_row_for_row() {
    let dir = common::rich_ledger();
    let name = LedgerName::parse("j").unwrap();
    let arn = "arn:aws:qldb:us-east-1:000000000000:ledger/j";
    let original_rows = common::dump(&common::ledger_file(dir.path(), "j"));
    let (digest, original_proofs, history, record) = {
        let sqlite = SqliteBackend::new(Some(dir.path().to_path_buf()), false);
        let mut catalog = sqlite.open_catalog().unwrap();
        let tags = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        catalog.add_tags(arn, &tags).unwrap();
        let db = sqlite.open_ledger(&name).unwrap();
        let table = db.tables().unwrap()[0].table_id.clone();
        catalog
            .add_tags(&format!("{arn}/table/{table}"), &tags)
            .unwrap();
        (
            db.digest().unwrap(),
            proofs(db.as_ref()),
            db.history(&table).unwrap(),
            catalog.ledger("j").unwrap().unwrap(),
        )
    };

    let server = pg::fresh_database();
    let copied = run(
        &Place::Dir(dir.path().to_path_buf()),
        &Place::Postgres(server.url.clone()),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(copied.len(), 1);
    assert_eq!(
        (copied[0].blocks, &copied[0].digest),
        (digest.0 + 1, &digest.1)
    );

    // On PostgreSQL: the same digest, proofs, history, catalog record and tags; it verifies.
    let postgres = PgBackend::connect(&server.url, false).unwrap();
    let db = postgres.open_ledger(&name).unwrap();
    assert_eq!(db.digest().unwrap(), digest);
    assert_eq!(proofs(db.as_ref()), original_proofs);
    let table = db.tables().unwrap()[0].table_id.clone();
    assert_eq!(db.history(&table).unwrap(), history);
    let catalog = postgres.open_catalog().unwrap();
    let copied_record = catalog.ledger("j").unwrap().unwrap();
    assert_eq!(
        (
            copied_record.name.as_str(),
            copied_record.created_ms,
            &copied_record.permissions_mode
        ),
        (
            record.name.as_str(),
            record.created_ms,
            &record.permissions_mode
        )
    );
    assert_eq!(catalog.tags(arn).unwrap().len(), 1);
    assert_eq!(
        catalog.tags(&format!("{arn}/table/{table}")).unwrap().len(),
        1
    );
    postgres.verify(None, &mut |_, _, _| {}).unwrap();
    drop(db);

    // Copied again to a data dir: every row of the file is the original's.
    let back = tempfile::tempdir().unwrap();
    run(
        &Place::Postgres(server.url.clone()),
        &Place::Dir(back.path().to_path_buf()),
        Some("j"),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        common::dump(&common::ledger_file(back.path(), "j")),
        original_rows
    );
    qldb_local::verify::verify_data_dir(back.path()).unwrap();

    // A destination that has the ledger is refused, and nothing is written.
    let refused = run(
        &Place::Dir(dir.path().to_path_buf()),
        &Place::Postgres(server.url.clone()),
        None,
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(refused.contains("already has a ledger j"), "{refused}");

    // The copy on PostgreSQL takes new transactions, which extend the same chain.
    let mut cfg = Config::for_tests(dir.path().to_path_buf());
    cfg.storage = Some(server.url.clone());
    let control = Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    let sessions = Sessions::new(qldb_local::server::session_config(&cfg), control.clone());
    let l = common::Ledger::from_parts(sessions, control);
    let token = l.sessions.start_session("j").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("INSERT INTO A VALUE {'k': 100}", &[]).unwrap();
    tx.commit().unwrap();
    let db = postgres.open_ledger(&name).unwrap();
    let (tip, _) = db.digest().unwrap();
    assert_eq!(tip, digest.0 + 1);
    assert_eq!(db.digest_at(digest.0).unwrap(), digest.1);
    postgres.verify(Some("j"), &mut |_, _, _| {}).unwrap();
}

#[test]
fn an_export_imports_into_postgres() {
    use qldb_local::import::ImportOptions;
    // An export of the rich ledger, written by the journal export format's fixture.
    let source = common::rich_ledger();
    let expected = qldb_local::verify::verify_ledger(source.path(), "j").unwrap();
    let export = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let blocks = export_fixture::blocks_of(&common::ledger_file(source.path(), "j"));
    export_fixture::write_export(
        export.path(),
        "exports/",
        "all",
        &blocks,
        4,
        export_fixture::Format::IonText,
    );
    let server = pg::fresh_database();
    let opts = ImportOptions {
        permissions_mode: "ALLOW_ALL".into(),
        ..ImportOptions::new(copy.path(), "imported", export.path().display().to_string())
    };
    let r = qldb_local::storage::migrate::import_into_postgres(&server.url, &opts).unwrap();
    assert_eq!(r.verified.digest, expected.digest);
    let postgres = PgBackend::connect(&server.url, false).unwrap();
    let db = postgres
        .open_ledger(&LedgerName::parse("imported").unwrap())
        .unwrap();
    assert_eq!(db.digest().unwrap(), (expected.tip, expected.digest));
    postgres
        .verify(Some("imported"), &mut |_, _, _| {})
        .unwrap();
    // Nothing is left in the given data dir, and a second import of the name is refused.
    assert!(!copy.path().join("ledgers").exists());
    let again = qldb_local::storage::migrate::import_into_postgres(&server.url, &opts)
        .err()
        .unwrap();
    assert!(again.contains("already has a ledger imported"), "{again}");
}
