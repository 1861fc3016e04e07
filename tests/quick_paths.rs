//! The session commands the HTTP layer runs on its own thread (no hop to a blocking thread):
//! a statement that reads a few documents, and a commit queued for the ledger's group
//! commit. A statement past its budget runs again on the waiting path and leaves no trace
//! (the driver's digest still matches); a session whose queued commit is not answered yet
//! serves its next command only after the answer.

mod common;

use std::sync::Arc;

use common::*;
use qldb_local::ion::{binary, text, Value};
use qldb_local::journal::block::StatementInfo;
use qldb_local::session::{
    Commit, Param, QueuedCommit, SessionError, Usage, QUICK_STATEMENT_READS,
};
use qldb_local::storage::CommitRequest;

/// A driver-like transaction that tries the quick path first, as the HTTP layer does.
struct Quick<'a> {
    tx: Tx<'a>,
}

impl<'a> Quick<'a> {
    fn begin(l: &'a Ledger, token: &str) -> Self {
        Quick {
            tx: Tx::begin(l, token),
        }
    }

    /// Runs `stmt` quickly if it can: `None` when it was deferred (it then runs on the
    /// waiting path, as the HTTP layer does).
    fn run_quick(&mut self, stmt: &str, params: &[&str]) -> (bool, Vec<Value>) {
        let values: Vec<Value> = params
            .iter()
            .map(|p| text::from_text_one(p).unwrap())
            .collect();
        let wire: Vec<Param> = values
            .iter()
            .map(|v| Param::Binary(binary::encode_one(v)))
            .collect();
        let l = self.tx.l;
        match l
            .sessions
            .try_execute_statement_as(&self.tx.token, &self.tx.id, stmt, &wire, None)
        {
            Some(done) => {
                self.tx.digest.add_statement(stmt, &values);
                let (page, _) = done.unwrap();
                assert!(page.next_page_token.is_none(), "one page in these tests");
                let rows = page
                    .values
                    .iter()
                    .map(|b| binary::decode(b).unwrap().remove(0))
                    .collect();
                (true, rows)
            }
            None => (false, self.tx.run(stmt, params).unwrap()),
        }
    }
}

/// A queued commit's answer, awaited as the HTTP layer does.
fn outcome(queued: QueuedCommit) -> Result<Usage, SessionError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(queued.outcome())
}

/// Creates table `T`, with an index on `k` if `indexed`.
fn create_t(l: &Ledger, token: &str, indexed: bool) {
    let mut t = Tx::begin(l, token);
    t.run("CREATE TABLE T", &[]).unwrap();
    if indexed {
        t.run("CREATE INDEX ON T (k)", &[]).unwrap();
    }
    t.commit().unwrap();
}

fn insert_docs(l: &Ledger, token: &str, from: u32, to: u32) {
    let mut n = from;
    while n < to {
        let mut t = Tx::begin(l, token);
        let end = (n + 40).min(to);
        for k in n..end {
            t.run(&format!("INSERT INTO T VALUE {{'k': {k}}}"), &[])
                .unwrap();
        }
        t.commit().unwrap();
        n = end;
    }
}

#[test]
fn statements_past_the_quick_budget_run_again_and_leave_no_trace() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    create_t(&l, &s, true);
    let docs = QUICK_STATEMENT_READS as u32 + 36;
    insert_docs(&l, &s, 0, docs);

    let file = std::env::var("QLDB_TEST_STORAGE").as_deref() != Ok("postgres");
    let mut q = Quick::begin(&l, &s);
    // A point read by index and an insert: quick on a file ledger.
    let (quick, rows) = q.run_quick("SELECT VALUE t.k FROM T AS t WHERE t.k = ?", &["7"]);
    assert_eq!(
        quick, file,
        "an indexed point read runs quickly on file ledgers only"
    );
    assert_eq!(rows.len(), 1);
    let (quick, _) = q.run_quick("INSERT INTO T VALUE {'k': -1}", &[]);
    assert_eq!(quick, file);
    // A whole table past the budget, and a table's history: deferred, then run in full.
    let (quick, rows) = q.run_quick("SELECT VALUE t.k FROM T AS t", &[]);
    assert!(!quick, "a scan of {} documents is not quick", docs);
    assert_eq!(
        rows.len(),
        docs as usize + 1,
        "with the transaction's own insert"
    );
    let (quick, rows) = q.run_quick("SELECT VALUE h.data.k FROM history(T) AS h", &[]);
    assert!(!quick, "history reads a table at once");
    assert_eq!(rows.len(), docs as usize);
    // The deferred statements were folded into the digest once: the driver's digest matches.
    q.tx.commit().unwrap();

    // The write is there once.
    let mut t = Tx::begin(&l, &s);
    let rows = t
        .run("SELECT VALUE t.k FROM T AS t WHERE t.k = -1", &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    t.commit().unwrap();
}

#[test]
fn a_write_after_an_unfinished_result_is_not_quick() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    create_t(&l, &s, false);
    // More than a scan page (512 documents) and a result page (200): the SELECT pauses
    // after its first scan page.
    insert_docs(&l, &s, 0, 600);
    let mut q = Quick::begin(&l, &s);
    let values: Vec<Value> = Vec::new();
    q.tx.digest.add_statement("SELECT * FROM T", &values);
    let (page, _) = l
        .sessions
        .execute_statement(&s, &q.tx.id, "SELECT * FROM T", Vec::new())
        .unwrap();
    let next = page.next_page_token.expect("a second page");
    // Finishing the paused SELECT reads without a bound: the write is not quick.
    let (quick, _) = q.run_quick("INSERT INTO T VALUE {'k': 'late'}", &[]);
    assert!(!quick);
    // The paused result shows the transaction as it was before the insert.
    let (rest, _) = l.sessions.fetch_page(&s, &q.tx.id, &next).unwrap();
    let mut seen = page.values.len() + rest.values.len();
    let mut next = rest.next_page_token;
    while let Some(token) = next {
        let (more, _) = l.sessions.fetch_page(&s, &q.tx.id, &token).unwrap();
        seen += more.values.len();
        next = more.next_page_token;
    }
    assert_eq!(seen, 600);
    q.tx.commit().unwrap();
}

#[test]
fn a_queued_commit_is_answered_before_its_session_runs_another_command() {
    let l = Arc::new(ledger());
    let s = l.sessions.start_session("j").unwrap();
    create_t(&l, &s, false);

    // Another commit queued first, whose leadership this test holds: nothing is committed
    // until it leads.
    let db = l.control.active_ledger("j").unwrap();
    let (held, lead) = db.queue_commit(CommitRequest {
        transaction_id: qldb_local::names::new_unique_id(),
        commit_ms: 1,
        statements: vec![StatementInfo {
            statement: "CREATE TABLE Held".into(),
            start_time_ms: 1,
            statement_digest: vec![0; 32],
        }],
        ..Default::default()
    });
    assert!(lead);

    let mut t = Tx::begin(&l, &s);
    t.run("INSERT INTO T VALUE {'k': 1}", &[]).unwrap();
    let (id, digest) = (t.id.clone(), t.digest.bytes().to_vec());
    let Some(Ok(Commit::Queued(queued))) = l.sessions.try_commit(&s, &id, &digest) else {
        panic!("a write commit is queued");
    };
    // Not committed yet: the session's next command waits for the answer.
    assert!(l.sessions.try_start_transaction(&s).is_none());
    let next = {
        let (l, s) = (l.clone(), s.clone());
        std::thread::spawn(move || l.sessions.start_transaction(&s))
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !next.is_finished(),
        "StartTransaction waits for the queued commit"
    );
    assert!(db.lead_commits(None));
    held.wait().unwrap();
    let usage = outcome(queued).unwrap();
    assert_eq!(usage.write_ios, 1);
    let next_id = next.join().unwrap().unwrap();

    // The next transaction sees the commit; a read-only commit of it is done at once.
    let mut t = Tx {
        l: &l,
        token: s.clone(),
        digest: qldb_local::journal::hash::CommitDigest::new(&next_id),
        id: next_id,
    };
    let rows = t.run("SELECT VALUE t.k FROM T AS t", &[]).unwrap();
    assert_eq!(text::to_text_one(&rows[0]), "1");
    let file = std::env::var("QLDB_TEST_STORAGE").as_deref() != Ok("postgres");
    match l.sessions.try_commit(&s, &t.id, t.digest.bytes()) {
        Some(Ok(Commit::Done(_))) => assert!(file),
        None => {
            assert!(!file, "a read-only commit of a file ledger is done at once");
            t.commit().unwrap();
        }
        Some(Ok(Commit::Queued(_))) => panic!("a read-only commit is not queued"),
        Some(Err(e)) => panic!("{e}"),
    }
}

#[test]
fn a_write_deferred_partway_leaves_no_write_and_no_read() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    create_t(&l, &s, true);
    insert_docs(&l, &s, 0, 40);
    let mut q = Quick::begin(&l, &s);
    let (_, rows) = q.run_quick("SELECT VALUE t.k FROM T AS t WHERE t.k = 1000", &[]);
    assert!(rows.is_empty());
    let reads_before = l.sessions.read_set(&s, &q.tx.id).unwrap();
    // 35 keys that exist and 35 that do not: 70 lookups, past the budget of 64.
    let keys: Vec<String> = (0..35).chain(1000..1035).map(|k| k.to_string()).collect();
    let update = format!(
        "UPDATE T AS t SET t.n = 1 WHERE t.k IN ({})",
        keys.join(", ")
    );
    let (quick, rows) = q.run_quick(&update, &[]);
    assert!(!quick, "70 index lookups are not quick");
    assert_eq!(rows.len(), 35, "run in full on the waiting path");
    let reads = l.sessions.read_set(&s, &q.tx.id).unwrap();
    assert!(reads.len() > reads_before.len());
    // The driver's digest holds the update once.
    q.tx.commit().unwrap();
    let mut t = Tx::begin(&l, &s);
    let history = t
        .run(
            "SELECT VALUE h.metadata.version FROM history(T) AS h WHERE h.metadata.version > 0",
            &[],
        )
        .unwrap();
    assert_eq!(history.len(), 35, "one update of each, not two");
    t.commit().unwrap();
}

#[test]
fn a_queued_commit_that_conflicts_answers_occ() {
    let l = ledger();
    let s1 = l.sessions.start_session("j").unwrap();
    let s2 = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s1);
    t.run("CREATE TABLE T", &[]).unwrap();
    t.run("INSERT INTO T VALUE {'k': 1, 'n': 0}", &[]).unwrap();
    t.commit().unwrap();
    let mut a = Tx::begin(&l, &s1);
    let mut b = Tx::begin(&l, &s2);
    let bump = "UPDATE T AS t SET t.n = t.n + 1 WHERE t.k = 1";
    a.run(bump, &[]).unwrap();
    b.run(bump, &[]).unwrap();
    a.commit().unwrap();
    let Some(Ok(Commit::Queued(queued))) = l.sessions.try_commit(&s2, &b.id, b.digest.bytes())
    else {
        panic!("a write commit is queued");
    };
    assert!(matches!(outcome(queued), Err(SessionError::OccConflict(_))));
    // The loser's session goes on.
    let c = Tx::begin(&l, &s2);
    c.commit().unwrap();
}
