//! `qldb-local rebuild` regenerates every derived table of a ledger file from its verified
//! journal, exactly as the commits made them; refuses a damaged journal, a journal that
//! lost blocks the file remembers, and a data dir a server holds; and the server refuses to
//! open a ledger whose schema or journal tip is inconsistent.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::rebuild::rebuild;
use qldb_local::verify::verify_ledger;
use rusqlite::Connection;

fn file(dir: &Path) -> PathBuf {
    common::ledger_file(dir, "j")
}

fn sql(dir: &Path, statement: &str) {
    Connection::open(file(dir))
        .unwrap()
        .execute_batch(statement)
        .unwrap();
}

#[test]
fn rebuild_regenerates_exactly_what_the_commits_wrote() {
    let dir = common::rich_ledger();
    let before = common::dump(&file(dir.path()));
    let digest = verify_ledger(dir.path(), "j").unwrap();

    // Damage every derived table at once; verify sees it.
    sql(
        dir.path(),
        "DELETE FROM documents WHERE rowid IN (SELECT rowid FROM documents LIMIT 1);
         UPDATE documents SET version = version + 1;
         INSERT INTO index_key_seq SELECT i.index_id, e.key, 1 FROM index_entries e JOIN indexes i USING (index_no) LIMIT 1;
         DELETE FROM index_entries;
         DELETE FROM merkle WHERE level > 0;
         UPDATE revisions SET tx_time_ms = 1;
         UPDATE tables SET name = 'X' WHERE name = 'Empty';
         UPDATE blocks SET ts_ms = 0 WHERE seq = 1;",
    );
    assert!(verify_ledger(dir.path(), "j").is_err());

    let r = rebuild(dir.path(), "j").unwrap();
    assert_eq!(r.verified, digest);
    assert_eq!((r.tables, r.indexes), (3, 1));
    assert!(r.new_index_ids.is_empty(), "{:?}", r.new_index_ids);
    assert!(matches!(&r.backup, qldb_local::rebuild::Kept::File(p) if p.exists()));
    assert_eq!(verify_ledger(dir.path(), "j").unwrap(), digest);

    // Byte for byte what the commits wrote (no per-key OCC rows: the writer keeps those in
    // memory, and rebuild writes none).
    let after = common::dump(&file(dir.path()));
    assert_eq!(before, after);
    // An index id lives only in the catalog: lost there, the index gets a new one.
    sql(
        dir.path(),
        "DELETE FROM index_entries; DELETE FROM indexes;",
    );
    let r = rebuild(dir.path(), "j").unwrap();
    assert_eq!(r.new_index_ids.len(), 1);
    assert_eq!(verify_ledger(dir.path(), "j").unwrap(), digest);

    // The rebuilt file serves: a server opens it and reads the documents.
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let control = std::sync::Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    assert_eq!(control.ledger_count().unwrap(), 1);
}

#[test]
fn rebuild_refuses_a_damaged_journal_and_leaves_the_file() {
    let dir = common::rich_ledger();
    // A flipped byte inside block 3's Ion.
    sql(
        dir.path(),
        "UPDATE blocks SET ion = CAST(substr(ion, 1, 40) || CASE WHEN substr(ion, 41, 1) = X'00' THEN X'01' ELSE X'00' END || substr(ion, 42) AS BLOB) WHERE seq = 3",
    );
    let before = common::dump(&file(dir.path()));
    let e = rebuild(dir.path(), "j").unwrap_err();
    assert!(e.message.contains("journal itself is damaged"), "{e}");
    assert_eq!(e.block, Some(3), "{e}");
    assert!(
        common::dump(&file(dir.path())) == before,
        "the file changed"
    );
    assert!(!dir.path().join("rebuild-backups").exists());
}

#[test]
fn rebuild_refuses_a_journal_that_lost_its_last_blocks() {
    let dir = common::rich_ledger();
    let tip: i64 = Connection::open(file(dir.path()))
        .unwrap()
        .query_row("SELECT max(seq) FROM blocks", [], |r| r.get(0))
        .unwrap();
    sql(dir.path(), &format!("DELETE FROM blocks WHERE seq = {tip}"));
    let e = rebuild(dir.path(), "j").unwrap_err();
    assert!(e.message.contains("blocks were lost"), "{e}");
}

#[test]
fn rebuild_and_a_server_exclude_each_other() {
    let l = common::ledger();
    // A server holds the data dir: rebuild refuses and names it.
    let e = rebuild(l.data_dir(), "j").unwrap_err();
    assert!(e.message.contains("in use by a qldb-local server"), "{e}");
    let dir = l.close();
    // A rebuild holds it: the server refuses to start and names the ledger.
    let _held = qldb_local::storage::sqlite::catalog::lock_data_dir(
        dir.path(),
        "qldb-local rebuild of ledger j",
    )
    .unwrap();
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let e =
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .err()
            .unwrap();
    assert!(e.to_string().contains("rebuild of ledger j"), "{e}");
    // Names that are not ledgers never reach the filesystem.
    drop(_held);
    let e = rebuild(dir.path(), "../j").unwrap_err();
    assert!(e.message.contains("not a ledger name"), "{e}");
    let e = rebuild(dir.path(), "nope").unwrap_err();
    assert!(e.message.contains("no ledger named nope"), "{e}");
}

#[test]
fn the_server_refuses_a_ledger_whose_schema_or_tip_is_inconsistent() {
    let cases = [
        ("DROP INDEX documents_by_table", "schema"),
        ("ALTER TABLE documents ADD COLUMN extra TEXT", "schema"),
        (
            "DELETE FROM blocks WHERE seq = (SELECT max(seq) FROM blocks)",
            "digest tree",
        ),
        ("DELETE FROM blocks WHERE seq = 2", "blocks are missing"),
        (
            "UPDATE blocks SET block_hash = zeroblob(32) WHERE seq = (SELECT max(seq) FROM blocks)",
            "tip block",
        ),
        (
            "DELETE FROM merkle WHERE level = (SELECT max(level) FROM merkle)",
            "digest tree",
        ),
        (
            "UPDATE meta SET value = 'other' WHERE key = 'ledger_name'",
            "meta",
        ),
        ("DELETE FROM blocks", "no genesis"),
    ];
    for (damage, why) in cases {
        let dir = common::rich_ledger();
        sql(dir.path(), damage);
        let cfg = Config::for_tests(dir.path().to_path_buf());
        let e = qldb_local::server::open_control(
            qldb_local::server::control_config(&cfg),
            system_clock(),
        )
        .err()
        .unwrap_or_else(|| panic!("{damage}: opened"))
        .to_string();
        assert!(
            e.contains("ledger j") && e.contains("cannot be served") && e.contains(why),
            "{damage}: {e}"
        );
    }
}

#[test]
fn the_command_line_rebuilds_and_reports() {
    let dir = common::rich_ledger();
    sql(dir.path(), "DELETE FROM documents");
    let out = Command::new(env!("CARGO_BIN_EXE_qldb-local"))
        .args(["rebuild", "--ledger", "j", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("rebuilt j: "), "{stdout}");
    assert!(
        stdout.contains("4 documents, 3 tables, 1 indexes"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_qldb-local"))
        .args(["verify", "--ledger", "j", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
}

/// An index created and dropped in one transaction leaves both statements in its block and
/// nothing in the catalog; a rebuild replays the block to the same state.
#[test]
fn an_index_created_and_dropped_in_one_transaction_rebuilds() {
    let l = common::ledger();
    let token = l.sessions.start_session("j").unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("CREATE TABLE T", &[]).unwrap();
    tx.run("INSERT INTO T VALUE {'x': 1}", &[]).unwrap();
    tx.commit().unwrap();
    let mut tx = common::Tx::begin(&l, &token);
    tx.run("CREATE INDEX ON T (x)", &[]).unwrap();
    let ids = tx
        .run(
            "SELECT VALUE i.indexId FROM information_schema.user_tables AS t, t.indexes AS i WHERE t.name = 'T'",
            &[],
        )
        .unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = qldb_local::ion::text::to_text_one(&ids[0]);
    tx.run(&format!("DROP INDEX {id} ON T WITH (purge = true)"), &[])
        .unwrap();
    tx.commit().unwrap();
    let dir = l.close();
    let digest = verify_ledger(dir.path(), "j").unwrap();
    let before = common::dump(&file(dir.path()));
    let r = rebuild(dir.path(), "j").unwrap();
    assert_eq!(r.verified, digest);
    assert_eq!(common::dump(&file(dir.path())), before);
}
