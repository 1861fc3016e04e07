//! Sessions and transactions follow the server's one clock (the control plane's), so their
//! time limits are tested by moving a fake clock, without sleeping: a transaction expires
//! after the transaction timeout, a session after its lifetime, and statements see the
//! clock's time in their block.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use qldb_local::api::qldb::CreateLedgerRequest;
use qldb_local::control::{ControlConfig, ControlPlane};
use qldb_local::journal::hash::CommitDigest;
use qldb_local::session::{SessionConfig, SessionError, Sessions};

const T0: i64 = 1_700_000_000_000;

struct Setup {
    clock: Arc<AtomicI64>,
    sessions: Sessions,
    control: Arc<ControlPlane>,
}

fn setup() -> Setup {
    let clock = Arc::new(AtomicI64::new(T0));
    let c = clock.clone();
    let cfg = ControlConfig {
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
        max_ledgers: 5,
        create_delay_ms: 0,
        delete_delay_ms: 0,
        data_dir: None,
        storage_url: None,
        relaxed_durability: false,
        job_retention_ms: 1,
    };
    let control = Arc::new(
        qldb_local::server::open_control(cfg, Arc::new(move || c.load(Ordering::SeqCst))).unwrap(),
    );
    control
        .create_ledger(CreateLedgerRequest {
            name: Some("clock".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            deletion_protection: Some(false),
            ..Default::default()
        })
        .unwrap();
    let sessions = Sessions::new(
        SessionConfig {
            transaction_timeout_ms: 30_000,
            session_lifetime_ms: 15 * 60_000,
            ..Default::default()
        },
        control.clone(),
    );
    Setup {
        clock,
        sessions,
        control,
    }
}

impl Setup {
    fn advance(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Runs one statement in a new transaction and commits it.
    fn run(&self, token: &str, statement: &str) -> Result<(), SessionError> {
        let tx = self.sessions.start_transaction(token)?;
        let mut digest = CommitDigest::new(&tx);
        digest.add_statement(statement, &[]);
        self.sessions
            .execute_statement(token, &tx, statement, Vec::new())?;
        self.sessions.commit(token, &tx, digest.bytes())?;
        Ok(())
    }
}

#[test]
fn a_transaction_expires_after_the_timeout_on_the_servers_clock() {
    let s = setup();
    let token = s.sessions.start_session("clock").unwrap();
    s.run(&token, "CREATE TABLE T").unwrap();

    let tx = s.sessions.start_transaction(&token).unwrap();
    s.advance(30_000);
    // Exactly the timeout is still in time.
    s.sessions
        .execute_statement(&token, &tx, "SELECT * FROM T", Vec::new())
        .unwrap();
    s.advance(1);
    match s
        .sessions
        .execute_statement(&token, &tx, "SELECT * FROM T", Vec::new())
    {
        Err(SessionError::InvalidSession(m)) => {
            assert_eq!(m, format!("Transaction {tx} has expired"))
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("the transaction outlived its timeout"),
    }
}

#[test]
fn a_session_expires_after_its_lifetime_and_blocks_carry_the_clocks_time() {
    let s = setup();
    let token = s.sessions.start_session("clock").unwrap();
    s.advance(1_000);
    s.run(&token, "CREATE TABLE T").unwrap();
    s.advance(1_000);
    s.run(&token, "INSERT INTO T {'a': 1}").unwrap();

    // The block of the INSERT (sequence 2) was committed at T0 + 2 s by the fake clock.
    let db = s.control.active_ledger("clock").unwrap();
    let block = db.block(2).unwrap().unwrap();
    let stamp = qldb_local::ion::text::to_text_one(block.field("blockTimestamp").unwrap());
    assert_eq!(stamp, "2023-11-14T22:13:22.000Z", "{block:?}");
    // The genesis block was stamped when the ledger was created, at T0.
    let genesis = db.block(0).unwrap().unwrap();
    let stamp = qldb_local::ion::text::to_text_one(genesis.field("blockTimestamp").unwrap());
    assert_eq!(stamp, "2023-11-14T22:13:20.000Z");

    s.advance(15 * 60_000 - 2_000 - 1);
    s.run(&token, "SELECT * FROM T").unwrap();
    s.advance(1);
    match s.sessions.start_transaction(&token) {
        Err(SessionError::InvalidSession(m)) => {
            assert!(
                m.starts_with("Session ") && m.ends_with(" has expired"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}
