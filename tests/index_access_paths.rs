//! Which documents a statement reads decides its OCC conflicts (spec §3.2): an equality on an
//! indexed field — in WHERE, in a join's ON, or against an outer row in a subquery — reads
//! only the matching index keys, so an unrelated concurrent insert does not conflict, while
//! one under a key the statement looked up does. Without an index the table is scanned and
//! any concurrent change conflicts.

mod common;

use common::*;
use qldb_local::ion::text;
use qldb_local::session::SessionError;

fn setup(l: &Ledger, s: &str) {
    for stmt in [
        "CREATE TABLE A",
        "CREATE TABLE B",
        "CREATE TABLE C",
        "CREATE INDEX ON B (id)",
        "INSERT INTO A << {'ref': 'x'}, {'ref': 'y'} >>",
        "INSERT INTO B << {'id': 'x', 'v': 1}, {'id': 'y', 'v': 2}, {'id': 'z', 'v': 3} >>",
        "INSERT INTO C << {'id': 'x', 'v': 1}, {'id': 'y', 'v': 2}, {'id': 'z', 'v': 3} >>",
    ] {
        let mut t = Tx::begin(l, s);
        t.run(stmt, &[]).unwrap();
        t.commit().unwrap();
    }
}

fn texts(rows: &[qldb_local::ion::Value]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(text::to_text_one).collect();
    v.sort();
    v
}

/// Runs `query` in one transaction, commits `write` in another meanwhile, and returns the
/// query's rows and how its commit ended.
fn race(query: &str, write: &str) -> (Vec<String>, Result<(), SessionError>) {
    let l = ledger();
    let s1 = l.sessions.start_session("j").unwrap();
    let s2 = l.sessions.start_session("j").unwrap();
    setup(&l, &s1);
    let mut reader = Tx::begin(&l, &s1);
    let rows = texts(&reader.run(query, &[]).unwrap());
    let mut writer = Tx::begin(&l, &s2);
    writer.run(write, &[]).unwrap();
    writer.commit().unwrap();
    (rows, reader.commit())
}

const JOIN_ON: &str = "SELECT a.ref, b.v FROM A AS a JOIN B AS b ON b.id = a.ref";
const JOIN_WHERE: &str = "SELECT a.ref, b.v FROM A AS a, B AS b WHERE a.ref = b.id";
const SUBQUERY: &str =
    "SELECT a.ref, (SELECT VALUE b.v FROM B AS b WHERE b.id = a.ref) AS v FROM A AS a";

#[test]
fn joins_on_an_indexed_field_read_only_the_looked_up_keys() {
    for query in [JOIN_ON, JOIN_WHERE] {
        let (rows, commit) = race(query, "INSERT INTO B VALUE {'id': 'w', 'v': 9}");
        assert_eq!(rows, ["{ref:\"x\",v:1}", "{ref:\"y\",v:2}"], "{query}");
        assert!(
            commit.is_ok(),
            "{query}: an unrelated key must not conflict: {commit:?}"
        );

        let (_, commit) = race(query, "INSERT INTO B VALUE {'id': 'y', 'v': 9}");
        assert!(
            matches!(commit, Err(SessionError::OccConflict(_))),
            "{query}: a new document under a looked-up key conflicts: {commit:?}"
        );
    }
}

#[test]
fn a_correlated_subquery_uses_the_index_per_outer_row() {
    let (rows, commit) = race(SUBQUERY, "INSERT INTO B VALUE {'id': 'w', 'v': 9}");
    assert_eq!(rows, ["{ref:\"x\",v:[1]}", "{ref:\"y\",v:[2]}"]);
    assert!(commit.is_ok(), "{commit:?}");
    let (_, commit) = race(SUBQUERY, "UPDATE B AS b SET b.v = 5 WHERE b.id = 'x'");
    assert!(
        matches!(commit, Err(SessionError::OccConflict(_))),
        "{commit:?}"
    );
}

#[test]
fn without_an_index_a_join_scans_and_any_change_conflicts() {
    let query = "SELECT a.ref, c.v FROM A AS a JOIN C AS c ON c.id = a.ref";
    let (rows, commit) = race(query, "INSERT INTO C VALUE {'id': 'w', 'v': 9}");
    assert_eq!(rows, ["{ref:\"x\",v:1}", "{ref:\"y\",v:2}"]);
    assert!(
        matches!(commit, Err(SessionError::OccConflict(_))),
        "{commit:?}"
    );
}

#[test]
fn join_results_are_the_same_with_and_without_the_index() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let mut t = Tx::begin(&l, &s);
    // Keys of every kind PartiQL `=` matches: a number against an int/decimal/float index key.
    t.run(
        "INSERT INTO A << {'ref': 1}, {'ref': 2.0}, {'ref': MISSING}, {'ref': NULL} >>",
        &[],
    )
    .unwrap();
    t.run(
        "INSERT INTO B << {'id': 1.00, 'v': 10}, {'id': `2e0`, 'v': 20} >>",
        &[],
    )
    .unwrap();
    t.run(
        "INSERT INTO C << {'id': 1.00, 'v': 10}, {'id': `2e0`, 'v': 20} >>",
        &[],
    )
    .unwrap();
    let indexed = texts(
        &t.run(
            "SELECT a.ref, b.v FROM A AS a JOIN B AS b ON b.id = a.ref",
            &[],
        )
        .unwrap(),
    );
    let scanned = texts(
        &t.run(
            "SELECT a.ref, c.v FROM A AS a JOIN C AS c ON c.id = a.ref",
            &[],
        )
        .unwrap(),
    );
    assert_eq!(indexed, scanned);
    assert_eq!(indexed.len(), 4);
    t.commit().unwrap();
}
