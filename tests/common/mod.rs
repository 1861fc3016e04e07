//! An in-process ledger and a driver-like transaction helper for the session-layer tests.
#![allow(dead_code)]

use std::sync::Arc;

use qldb_local::config::Config;
use qldb_local::control::{system_clock, ControlPlane};
use qldb_local::ion::{binary, text, Value};
use qldb_local::journal::hash::CommitDigest;
use qldb_local::session::{Param, SessionError, Sessions};

pub struct Ledger {
    pub sessions: Sessions,
    pub control: Arc<ControlPlane>,
    _dir: tempfile::TempDir,
}

impl Ledger {
    /// Ends the server side (sessions, control plane, the data-dir lock) and keeps the data
    /// dir, for offline tools.
    pub fn close(self) -> tempfile::TempDir {
        let Ledger {
            sessions,
            control,
            _dir,
        } = self;
        drop(sessions);
        drop(control);
        _dir
    }

    /// The data dir holding the catalog and `ledgers/j.sqlite`.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

pub fn ledger() -> Ledger {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let control = Arc::new(ControlPlane::open((&cfg).into(), system_clock()).unwrap());
    control
        .create_ledger(qldb_local::api::qldb::CreateLedgerRequest {
            name: Some("j".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            deletion_protection: Some(false),
            ..Default::default()
        })
        .unwrap();
    Ledger {
        sessions: Sessions::new(cfg.session_config(), control.clone()),
        control,
        _dir: dir,
    }
}

/// A client-side transaction that keeps its own commit digest, like a driver.
pub struct Tx<'a> {
    pub l: &'a Ledger,
    pub token: String,
    pub id: String,
    pub digest: CommitDigest,
}

impl<'a> Tx<'a> {
    pub fn begin(l: &'a Ledger, token: &str) -> Self {
        let id = l.sessions.start_transaction(token).unwrap();
        Tx {
            l,
            token: token.into(),
            digest: CommitDigest::new(&id),
            id,
        }
    }
    pub fn run(&mut self, stmt: &str, params: &[&str]) -> Result<Vec<Value>, SessionError> {
        let values: Vec<Value> = params
            .iter()
            .map(|p| text::from_text_one(p).unwrap())
            .collect();
        self.digest.add_statement(stmt, &values);
        let wire = values
            .iter()
            .map(|v| Param::Binary(binary::encode_one(v)))
            .collect();
        let (page, _) = self
            .l
            .sessions
            .execute_statement(&self.token, &self.id, stmt, wire)?;
        assert!(page.next_page_token.is_none());
        Ok(page
            .values
            .iter()
            .map(|b| binary::decode(b).unwrap().remove(0))
            .collect())
    }
    pub fn commit(self) -> Result<(), SessionError> {
        self.l
            .sessions
            .commit(&self.token, &self.id, self.digest.bytes())
            .map(|_| ())
    }
}
