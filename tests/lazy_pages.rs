//! A SELECT that scans one table makes its result a page at a time, as the client fetches
//! the pages (`exec::execute_page`): the server holds one page and one scan page of it, never
//! the whole result. The pages still show the transaction as it was when the statement ran,
//! their read IOs add up to the scan's, and an error the rows meet late fails that fetch.

mod common;

use common::*;
use qldb_local::ion::{binary, text};
use qldb_local::session::{Page, Param, SessionError};

const DOCS: usize = 2_000;

fn setup(l: &Ledger, s: &str) {
    let mut t = Tx::begin(l, s);
    t.run("CREATE TABLE T", &[]).unwrap();
    t.commit().unwrap();
    for start in (0..DOCS).step_by(40) {
        let docs: Vec<String> = (start..start + 40)
            .map(|i| format!("{{n: {i}, d: {}}}", if i == 1_500 { 0 } else { 1 }))
            .collect();
        let mut t = Tx::begin(l, s);
        t.run("INSERT INTO T ?", &[&format!("[{}]", docs.join(", "))])
            .unwrap();
        t.commit().unwrap();
    }
}

fn values(page: &Page) -> Vec<String> {
    page.values
        .iter()
        .map(|b| text::to_text_one(&binary::decode(b).unwrap().remove(0)))
        .collect()
}

fn exec(l: &Ledger, s: &str, txid: &str, stmt: &str) -> Result<(Page, u64), SessionError> {
    l.sessions
        .execute_statement(s, txid, stmt, Vec::<Param>::new())
        .map(|(p, u)| (p, u.read_ios))
}

fn fetch(l: &Ledger, s: &str, txid: &str, page: &Page) -> Result<(Page, u64), SessionError> {
    let token = page.next_page_token.as_deref().expect("a next page");
    l.sessions
        .fetch_page(s, txid, token)
        .map(|(p, u)| (p, u.read_ios))
}

/// Every row of a result from its first page on, and the read IOs of all its pages.
fn drain(l: &Ledger, s: &str, txid: &str, first: (Page, u64)) -> (Vec<String>, u64, usize) {
    let (mut page, mut ios) = first;
    let mut rows = values(&page);
    let mut pages = 1;
    while page.next_page_token.is_some() {
        let (next, more) = fetch(l, s, txid, &page).unwrap();
        rows.extend(values(&next));
        ios += more;
        pages += 1;
        page = next;
    }
    (rows, ios, pages)
}

#[test]
fn a_scan_result_is_made_as_its_pages_are_fetched() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let txid = l.sessions.start_transaction(&s).unwrap();
    let first = exec(&l, &s, &txid, "SELECT VALUE t.n FROM T AS t").unwrap();
    // The first page read one scan page of 512 documents, not the table.
    assert_eq!(first.0.values.len(), 200);
    assert_eq!(first.1, 512);
    let (rows, ios, pages) = drain(&l, &s, &txid, first);
    let mut got: Vec<usize> = rows.iter().map(|r| r.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, (0..DOCS).collect::<Vec<_>>());
    assert_eq!(ios, DOCS as u64, "every document read once over the pages");
    assert_eq!(pages, 10);

    // A filter that keeps few rows reads on until a page is full or the table ends.
    let first = exec(
        &l,
        &s,
        &txid,
        "SELECT VALUE t.n FROM T AS t WHERE t.n >= 1990",
    )
    .unwrap();
    assert_eq!(first.0.next_page_token, None);
    assert_eq!(first.0.values.len(), 10);
    assert_eq!(first.1, DOCS as u64);
    l.sessions.abort(&s).unwrap();
}

#[test]
fn later_pages_show_the_transaction_as_the_statement_saw_it() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let txid = l.sessions.start_transaction(&s).unwrap();
    let first = exec(&l, &s, &txid, "SELECT VALUE t.n FROM T AS t").unwrap();
    // Writes of the same transaction after the statement are not in its later pages…
    exec(&l, &s, &txid, "INSERT INTO T VALUE {'n': 5000}").unwrap();
    exec(&l, &s, &txid, "DELETE FROM T AS t WHERE t.n = 1999").unwrap();
    let (rows, ios, _) = drain(&l, &s, &txid, first);
    assert_eq!(rows.len(), DOCS);
    assert!(rows.contains(&"1999".to_string()) && !rows.contains(&"5000".to_string()));
    assert_eq!(ios, DOCS as u64);
    // …and a new statement sees them.
    let (rows, _, _) = drain(
        &l,
        &s,
        &txid,
        exec(&l, &s, &txid, "SELECT VALUE t.n FROM T AS t").unwrap(),
    );
    assert_eq!(rows.len(), DOCS);
    assert!(!rows.contains(&"1999".to_string()) && rows.contains(&"5000".to_string()));
    l.sessions.abort(&s).unwrap();
}

#[test]
fn a_commit_between_pages_fails_the_readers_commit() {
    let l = ledger();
    let s1 = l.sessions.start_session("j").unwrap();
    let s2 = l.sessions.start_session("j").unwrap();
    setup(&l, &s1);
    let mut reader = Tx::begin(&l, &s1);
    let first = exec(&l, &s1, &reader.id, "SELECT VALUE t.n FROM T AS t").unwrap();
    reader
        .digest
        .add_statement("SELECT VALUE t.n FROM T AS t", &[]);
    let mut writer = Tx::begin(&l, &s2);
    writer.run("INSERT INTO T VALUE {'n': 7000}", &[]).unwrap();
    writer.commit().unwrap();
    let id = reader.id.clone();
    let (rows, _, _) = drain(&l, &s1, &id, first);
    assert!(rows.len() >= DOCS);
    match reader.commit() {
        Err(SessionError::OccConflict(_)) => {}
        other => panic!("expected an OCC conflict, got {other:?}"),
    }
}

#[test]
fn an_error_a_later_page_meets_fails_that_fetch() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    let txid = l.sessions.start_transaction(&s).unwrap();
    // Document 1,500 divides by zero: on the fourth scan page.
    let (mut page, _) = exec(&l, &s, &txid, "SELECT VALUE t.n / t.d FROM T AS t").unwrap();
    let mut rows = page.values.len();
    let failure = loop {
        match fetch(&l, &s, &txid, &page) {
            Ok((next, _)) => {
                rows += next.values.len();
                page = next;
            }
            Err(e) => break e,
        }
    };
    assert!((1_000..DOCS).contains(&rows), "{rows}");
    assert!(
        matches!(&failure, SessionError::BadRequest(m) if m.contains("zero")),
        "{failure:?}"
    );
    // The same failure when a later statement of the transaction makes the rest early.
    let (page, _) = exec(&l, &s, &txid, "SELECT VALUE t.n / t.d FROM T AS t").unwrap();
    exec(&l, &s, &txid, "INSERT INTO T VALUE {'n': 1}").unwrap();
    let Err(failure) = fetch(&l, &s, &txid, &page) else {
        panic!("the fetch should fail");
    };
    assert!(
        matches!(&failure, SessionError::BadRequest(m) if m.contains("zero")),
        "{failure:?}"
    );
    l.sessions.abort(&s).unwrap();
}

#[test]
fn a_table_dropped_by_another_commit_fails_the_fetch_as_a_conflict() {
    for change in [
        vec!["CREATE INDEX ON T (d)"],
        vec!["DROP TABLE T"],
        vec!["DROP TABLE T", "CREATE TABLE T"],
    ] {
        let l = ledger();
        let s1 = l.sessions.start_session("j").unwrap();
        let s2 = l.sessions.start_session("j").unwrap();
        setup(&l, &s1);
        let txid = l.sessions.start_transaction(&s1).unwrap();
        let (page, _) = exec(&l, &s1, &txid, "SELECT VALUE t.n FROM T AS t WHERE t.d = 1").unwrap();
        for stmt in &change {
            let mut writer = Tx::begin(&l, &s2);
            writer.run(stmt, &[]).unwrap();
            writer.commit().unwrap();
        }
        let first = values(&page);
        if change == ["CREATE INDEX ON T (d)"] {
            // A new index changes nothing for a scan under way.
            let (rows, _, _) = drain(&l, &s1, &txid, (page, 0));
            assert_eq!(rows.len(), DOCS - 1, "{:?}", &first[..3]);
            continue;
        }
        // The rows made ahead with the first page come first; then the next scan page.
        let mut page = page;
        let failure = loop {
            match fetch(&l, &s1, &txid, &page) {
                Ok((next, _)) if next.next_page_token.is_some() => page = next,
                Ok(_) => panic!("{change:?}: the result ended without a conflict"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(failure, SessionError::OccConflict(_)),
            "{change:?}: {failure:?}"
        );
    }
}

#[test]
fn an_uncorrelated_subquery_gives_every_page_the_same_rows() {
    let l = ledger();
    let s1 = l.sessions.start_session("j").unwrap();
    let s2 = l.sessions.start_session("j").unwrap();
    setup(&l, &s1);
    let mut t = Tx::begin(&l, &s1);
    t.run("CREATE TABLE U", &[]).unwrap();
    t.commit().unwrap();
    let evens: Vec<usize> = (0..DOCS).step_by(2).collect();
    for batch in evens.chunks(40) {
        let docs: Vec<String> = batch.iter().map(|i| format!("{{m: {i}}}")).collect();
        let mut t = Tx::begin(&l, &s1);
        t.run("INSERT INTO U ?", &[&format!("[{}]", docs.join(", "))])
            .unwrap();
        t.commit().unwrap();
    }
    let txid = l.sessions.start_transaction(&s1).unwrap();
    let first = exec(
        &l,
        &s1,
        &txid,
        "SELECT VALUE t.n FROM T AS t WHERE t.n IN (SELECT VALUE u.m FROM U AS u)",
    )
    .unwrap();
    // Another transaction deletes one of the subquery's rows meanwhile: later pages still
    // use the subquery's rows of the first page (the reader's commit then fails).
    let mut writer = Tx::begin(&l, &s2);
    writer
        .run("DELETE FROM U AS u WHERE u.m = 1998", &[])
        .unwrap();
    writer.commit().unwrap();
    let (rows, _, pages) = drain(&l, &s1, &txid, first);
    assert!(pages > 1);
    let mut got: Vec<usize> = rows.iter().map(|r| r.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, evens);
    l.sessions.abort(&s1).unwrap();
}

#[test]
fn a_join_is_paged_by_its_first_table() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    setup(&l, &s);
    for stmt in ["CREATE TABLE U", "CREATE INDEX ON U (m)"] {
        let mut t = Tx::begin(&l, &s);
        t.run(stmt, &[]).unwrap();
        t.commit().unwrap();
    }
    let evens: Vec<usize> = (0..DOCS).step_by(2).collect();
    for batch in evens.chunks(40) {
        let docs: Vec<String> = batch.iter().map(|i| format!("{{m: {i}}}")).collect();
        let mut t = Tx::begin(&l, &s);
        t.run("INSERT INTO U ?", &[&format!("[{}]", docs.join(", "))])
            .unwrap();
        t.commit().unwrap();
    }
    let txid = l.sessions.start_transaction(&s).unwrap();
    let first = exec(
        &l,
        &s,
        &txid,
        "SELECT VALUE u.m FROM T AS t, U AS u WHERE u.m = t.n",
    )
    .unwrap();
    // The first page read one scan page of T (512 documents) and the U documents it
    // joined (256), not the whole join.
    assert_eq!(first.1, 512 + 256);
    let (rows, ios, pages) = drain(&l, &s, &txid, first);
    let mut got: Vec<usize> = rows.iter().map(|r| r.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, evens);
    assert_eq!(pages, 5);
    assert_eq!(ios, (DOCS + evens.len()) as u64);
    // U was read whole once, into a hash table kept for every page.
    let reads = l.sessions.read_set(&s, &txid).unwrap();
    assert_eq!(reads, ["table T", "table U"]);
    l.sessions.abort(&s).unwrap();
}
