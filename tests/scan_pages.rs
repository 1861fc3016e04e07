//! A table scan reads a page of documents at a time: a SELECT over a table larger than a
//! page sees every document once, with the transaction's own updates, deletes and inserts
//! laid over them wherever they fall, and its aggregates fold row by row.

mod common;

use common::*;
use qldb_local::ion::{text, Data, Value};

const DOCS: i64 = 1_300; // more than two pages of 512

fn ints(rows: &[Value]) -> Vec<i64> {
    let mut v: Vec<i64> = rows
        .iter()
        .map(|r| match &r.data {
            Data::Int(i) => i64::try_from(i.clone()).unwrap(),
            other => panic!("not an int: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_scan_across_pages_sees_each_document_once_with_the_transactions_writes() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s);
    t.run("CREATE TABLE T", &[]).unwrap();
    t.commit().unwrap();
    for chunk in (0..DOCS).collect::<Vec<_>>().chunks(40) {
        let docs: Vec<String> = chunk
            .iter()
            .map(|n| format!("{{'n': {n}, 'g': {}}}", n % 7))
            .collect();
        let mut t = Tx::begin(&l, &s);
        t.run(&format!("INSERT INTO T << {} >>", docs.join(", ")), &[])
            .unwrap();
        t.commit().unwrap();
    }

    let mut t = Tx::begin(&l, &s);
    let all = ints(&t.run("SELECT VALUE t.n FROM T AS t", &[]).unwrap());
    assert_eq!(all, (0..DOCS).collect::<Vec<_>>());
    // Writes on the first, second and third pages, and an insert, in the same transaction.
    t.run("UPDATE T AS t SET t.n = 10005 WHERE t.n = 5", &[])
        .unwrap();
    t.run("DELETE FROM T AS t WHERE t.n = 600", &[]).unwrap();
    t.run("UPDATE T AS t SET t.n = 11100 WHERE t.n = 1100", &[])
        .unwrap();
    t.run("INSERT INTO T VALUE {'n': 5000, 'g': 0}", &[])
        .unwrap();
    let seen = ints(&t.run("SELECT VALUE t.n FROM T AS t", &[]).unwrap());
    let mut want: Vec<i64> = (0..DOCS)
        .filter(|n| ![5, 600, 1100].contains(n))
        .chain([10005, 11100, 5000])
        .collect();
    want.sort();
    assert_eq!(seen, want);

    // Aggregates over the same pages, with a filter.
    let agg = t
        .run(
            "SELECT COUNT(*) AS c, SUM(t.n) AS s, MIN(t.n) AS lo, MAX(t.n) AS hi, AVG(t.g) AS a \
             FROM T AS t WHERE t.g = 0",
            &[],
        )
        .unwrap();
    // g = n % 7 at insert; the updated documents (5, 1100) and the deleted one (600) have
    // g 5, 1 and 5; the inserted 5000 has g 0.
    let zeros: Vec<i64> = (0..DOCS).filter(|n| n % 7 == 0).chain([5000]).collect();
    let got = text::to_text_one(&agg[0]);
    let want_text = format!(
        "{{c:{},s:{},lo:{},hi:{},a:0.}}",
        zeros.len(),
        zeros.iter().sum::<i64>(),
        zeros.iter().min().unwrap(),
        zeros.iter().max().unwrap()
    );
    assert_eq!(got, want_text);
    t.commit().unwrap();

    // The writes committed: a fresh transaction sees them through the pages too.
    let mut t = Tx::begin(&l, &s);
    assert_eq!(
        ints(&t.run("SELECT VALUE t.n FROM T AS t", &[]).unwrap()),
        want
    );
    t.commit().unwrap();
}

/// A filter on a string field is tested on the stored bytes before a document is decoded;
/// the transaction's own writes are judged by what they wrote.
#[test]
fn a_filtered_scan_sees_the_transactions_writes_and_every_kind_of_value() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s);
    t.run("CREATE TABLE S", &[]).unwrap();
    t.commit().unwrap();
    for chunk in (0..1_100).collect::<Vec<i64>>().chunks(40) {
        let docs: Vec<String> = chunk
            .iter()
            .map(|n| {
                format!(
                    "{{'n': {n}, 'k': '{}'}}",
                    if n % 2 == 0 { "a" } else { "b" }
                )
            })
            .collect();
        let mut t = Tx::begin(&l, &s);
        t.run(&format!("INSERT INTO S << {} >>", docs.join(", ")), &[])
            .unwrap();
        t.commit().unwrap();
    }
    // Values a byte comparison cannot decide: a symbol, an annotated string, a list.
    let mut t = Tx::begin(&l, &s);
    t.run("INSERT INTO S ?", &["{n: 2000, k: a}"]).unwrap();
    t.run("INSERT INTO S ?", &["{n: 2001, k: x::\"a\"}"])
        .unwrap();
    t.run("INSERT INTO S ?", &["{n: 2002, k: [\"a\"]}"])
        .unwrap();
    t.commit().unwrap();

    let count = |t: &mut Tx, q: &str| {
        let rows = t.run(q, &[]).unwrap();
        text::to_text_one(rows[0].field("c").unwrap())
    };
    let mut t = Tx::begin(&l, &s);
    let a_before = count(&mut t, "SELECT COUNT(*) AS c FROM S AS s WHERE s.k = 'a'");
    let full_a = count(
        &mut t,
        "SELECT COUNT(*) AS c FROM S AS s WHERE s.k = 'a' OR s.n < 0",
    );
    assert_eq!(a_before, full_a, "the probe agrees with a full evaluation");
    // Pending writes: one 'a' becomes 'z', one 'b' becomes 'z', and a new 'z'.
    t.run("UPDATE S AS s SET s.k = 'z' WHERE s.n = 4", &[])
        .unwrap();
    t.run("UPDATE S AS s SET s.k = 'z' WHERE s.n = 1001", &[])
        .unwrap();
    t.run("INSERT INTO S VALUE {'n': 5000, 'k': 'z'}", &[])
        .unwrap();
    let zs = t
        .run("SELECT VALUE s.n FROM S AS s WHERE s.k = 'z'", &[])
        .unwrap();
    let mut zs: Vec<String> = zs.iter().map(text::to_text_one).collect();
    zs.sort();
    assert_eq!(zs, ["1001", "4", "5000"]);
    let a_after = count(&mut t, "SELECT COUNT(*) AS c FROM S AS s WHERE s.k = 'a'");
    assert_eq!(
        a_after.parse::<i64>().unwrap(),
        a_before.parse::<i64>().unwrap() - 1
    );
    t.commit().unwrap();
}
