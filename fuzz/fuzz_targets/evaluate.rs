//! Expression evaluation on arbitrary input: the input is an expression, evaluated as
//! `SELECT VALUE (<expr>) FROM << … >>` over a few documents, through the same executor
//! the session API uses, against an in-memory ledger. Any result or error is fine; a panic
//! or a stack overflow is a bug.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::session::Sessions;

struct Ledger {
    sessions: Sessions,
    token: String,
}

fn ledger() -> &'static Ledger {
    static L: OnceLock<Ledger> = OnceLock::new();
    L.get_or_init(|| {
        let mut cfg = Config::for_tests(std::env::temp_dir());
        cfg.in_memory = true;
        let control = Arc::new(
            qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
                .unwrap(),
        );
        control
            .create_ledger(qldb_local::api::qldb::CreateLedgerRequest {
                name: Some("fuzz".into()),
                permissions_mode: Some("ALLOW_ALL".into()),
                deletion_protection: Some(false),
                ..Default::default()
            })
            .unwrap();
        let sessions = Sessions::new(qldb_local::server::session_config(&cfg), control);
        let token = sessions.start_session("fuzz").unwrap();
        Ledger { sessions, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let l = ledger();
    let statement = format!(
        "SELECT VALUE ({expr}) FROM << {{'a': 1, 'b': [1, 2.5, `2e0`], 'c': {{'d': 'x'}}, 't': `2020-01-01T00:00Z`}}, {{'a': null}} >> AS r"
    );
    let Ok(txid) = l.sessions.start_transaction(&l.token) else {
        return;
    };
    let _ = l
        .sessions
        .execute_statement(&l.token, &txid, &statement, Vec::new());
    let _ = l.sessions.abort(&l.token);
});
