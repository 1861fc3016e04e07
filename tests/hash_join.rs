//! A join whose right side is an index lookup per left row (`FROM P AS p, Q AS q WHERE
//! q.VIN = p.VIN`, Q indexed on VIN) reads Q whole once, into a hash table by key, when it
//! makes at least 1,024 lookups into a table of at most eight documents per lookup (and the
//! transaction has not written that table). The
//! rows and the ConsumedIOs are those of the lookups; the read set holds the table read
//! instead of a key and a document per lookup. Smaller joins keep their lookups
//! (tests/index_access_paths.rs).

mod common;

use std::collections::BTreeMap;

use common::*;
use qldb_local::ion::{binary, text, Value};
use qldb_local::session::Param;

const LEFT: usize = 1_200;

/// Loads `docs` (Ion text, as a parameter) into `table`, 40 documents per transaction.
fn load(l: &Ledger, s: &str, table: &str, docs: &[String]) {
    for batch in docs.chunks(40) {
        let mut t = Tx::begin(l, s);
        let list = format!("[{}]", batch.join(", "));
        t.run(&format!("INSERT INTO {table} ?"), &[&list]).unwrap();
        t.commit().unwrap();
    }
}

/// P has VINs V0…V1199; Q has V<i> for i not a multiple of 3, twice when i ends in 1, and
/// documents whose VIN is null, missing or a number.
fn setup(l: &Ledger, s: &str) {
    for stmt in [
        "CREATE TABLE P",
        "CREATE TABLE Q",
        "CREATE INDEX ON Q (VIN)",
    ] {
        let mut t = Tx::begin(l, s);
        t.run(stmt, &[]).unwrap();
        t.commit().unwrap();
    }
    let p: Vec<String> = (0..LEFT)
        .map(|i| format!("{{VIN: \"V{i}\", Plate: \"P{i}\"}}"))
        .collect();
    load(l, s, "P", &p);
    let mut q: Vec<String> = Vec::new();
    for i in (0..LEFT).filter(|i| i % 3 != 0) {
        q.push(format!("{{VIN: \"V{i}\", Year: {i}}}"));
        if i % 10 == 1 {
            q.push(format!("{{VIN: \"V{i}\", Year: {}}}", i + 10_000));
        }
    }
    q.push("{VIN: null, Year: -1}".into());
    q.push("{Year: -2}".into());
    q.push("{VIN: 5, Year: -3}".into());
    load(l, s, "Q", &q);
}

/// What the join should give: (plate, year) for each P and Q document with equal VINs.
fn expected(q: &BTreeMap<String, Vec<i64>>, left: impl Iterator<Item = usize>) -> Vec<String> {
    let mut rows = Vec::new();
    for i in left {
        for year in q.get(&format!("V{i}")).into_iter().flatten() {
            rows.push(format!("{{Plate:\"P{i}\",Year:{year}}}"));
        }
    }
    rows.sort();
    rows
}

fn q_as_loaded() -> BTreeMap<String, Vec<i64>> {
    let mut q: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for i in (0..LEFT).filter(|i| i % 3 != 0) {
        q.entry(format!("V{i}")).or_default().push(i as i64);
        if i % 10 == 1 {
            q.entry(format!("V{i}"))
                .or_default()
                .push(i as i64 + 10_000);
        }
    }
    q
}

/// Runs `stmt` in the open transaction `txid`: its rows (every page, sorted, as text) and
/// the read IOs of all its pages.
fn run(l: &Ledger, s: &str, txid: &str, stmt: &str) -> (Vec<String>, u64) {
    let (mut page, usage) = l
        .sessions
        .execute_statement(s, txid, stmt, Vec::<Param>::new())
        .unwrap();
    let mut ios = usage.read_ios;
    let mut values = std::mem::take(&mut page.values);
    while let Some(next) = page.next_page_token.take() {
        let (next_page, usage) = l.sessions.fetch_page(s, txid, &next).unwrap();
        page = next_page;
        ios += usage.read_ios;
        values.append(&mut page.values);
    }
    let mut rows: Vec<String> = values
        .iter()
        .map(|b| text::to_text_one(&binary::decode(b).unwrap().remove(0)))
        .collect();
    rows.sort();
    (rows, ios)
}

#[test]
fn a_join_over_a_scanned_table_reads_the_indexed_table_once() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let txid = l.sessions.start_transaction(&s).unwrap();
    let (rows, ios) = run(
        &l,
        &s,
        &txid,
        "SELECT p.Plate, q.Year FROM P AS p, Q AS q WHERE q.VIN = p.VIN",
    );
    let want = expected(&q_as_loaded(), 0..LEFT);
    assert_eq!(rows.len(), 880);
    assert_eq!(rows, want);
    // As the lookups would: each P document read, and each Q document under a looked-up key.
    assert_eq!(ios, (LEFT + want.len()) as u64);
    let reads = l.sessions.read_set(&s, &txid).unwrap();
    assert_eq!(reads, ["table P", "table Q"]);

    // The same join by ON, and with the key on the other side of `=`.
    for stmt in [
        "SELECT p.Plate, q.Year FROM P AS p JOIN Q AS q ON p.VIN = q.VIN",
        "SELECT p.Plate, q.Year FROM P AS p INNER JOIN Q AS q ON q.VIN = p.VIN WHERE q.Year >= 0",
    ] {
        assert_eq!(run(&l, &s, &txid, stmt).0, want, "{stmt}");
    }
    l.sessions.abort(&s).unwrap();
}

#[test]
fn a_join_switches_to_reading_the_table_after_enough_lookups() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    // The left side is a list in one document: its length is known only as it is read.
    let vins: Vec<String> = (0..LEFT).map(|i| format!("\"V{i}\"")).collect();
    let mut t = Tx::begin(&l, &s);
    t.run("CREATE TABLE L", &[]).unwrap();
    t.commit().unwrap();
    load(
        &l,
        &s,
        "L",
        &[format!("{{Kind: \"list\", vins: [{}]}}", vins.join(", "))],
    );
    let txid = l.sessions.start_transaction(&s).unwrap();
    let (rows, ios) = run(
        &l,
        &s,
        &txid,
        "SELECT q.Year FROM L AS l, l.vins AS v, Q AS q WHERE l.Kind = 'list' AND q.VIN = v",
    );
    let mut want: Vec<String> = expected(&q_as_loaded(), 0..LEFT)
        .iter()
        .map(|r| format!("{{{}", &r[r.find("Year").unwrap()..]))
        .collect();
    want.sort();
    assert_eq!(rows, want);
    // L's document, then each Q document under a looked-up key.
    assert_eq!(ios, (1 + want.len()) as u64);
    let reads = l.sessions.read_set(&s, &txid).unwrap();
    // The first 1,023 lookups read their keys (and documents); then the table.
    assert!(reads.contains(&"table Q".to_string()), "{reads:?}");
    let keys = reads.iter().filter(|r| r.starts_with("key Q.VIN")).count();
    assert_eq!(keys, 1023, "{reads:?}");
    l.sessions.abort(&s).unwrap();
}

#[test]
fn a_join_over_a_table_the_transaction_wrote_keeps_its_lookups() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let mut t = Tx::begin(&l, &s);
    // Moves one document to another key, deletes one, inserts one.
    t.run("UPDATE Q AS q SET q.VIN = 'V3' WHERE q.Year = 2", &[])
        .unwrap();
    t.run("DELETE FROM Q AS q WHERE q.Year = 4", &[]).unwrap();
    t.run("INSERT INTO Q VALUE {'VIN': 'V6', 'Year': 6006}", &[])
        .unwrap();
    let rows: Vec<Value> = t
        .run(
            "SELECT p.Plate, q.Year FROM P AS p, Q AS q WHERE q.VIN = p.VIN",
            &[],
        )
        .unwrap();
    let mut rows: Vec<String> = rows.iter().map(text::to_text_one).collect();
    rows.sort();
    let mut q = q_as_loaded();
    q.remove("V2");
    q.insert("V3".into(), vec![2]);
    q.remove("V4");
    q.insert("V6".into(), vec![6006]);
    assert_eq!(rows, expected(&q, 0..LEFT));
    // A lookup also returns the transaction's own writes: the table is not hashed, every
    // lookup reads its key.
    let reads = l.sessions.read_set(&s, &t.id).unwrap();
    let keys = reads.iter().filter(|r| r.starts_with("key Q.VIN")).count();
    assert_eq!(keys, LEFT);
    t.commit().unwrap();
}
