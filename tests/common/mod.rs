//! An in-process ledger and a driver-like transaction helper for the session-layer tests.
#![allow(dead_code)]

use std::sync::Arc;

use qldb_local::config::Config;
use qldb_local::control::{system_clock, ControlPlane};
use qldb_local::ion::{binary, text, Data, Value};
use qldb_local::journal::hash::CommitDigest;
use qldb_local::session::{Param, SessionError, Sessions};

pub struct Ledger {
    pub sessions: Sessions,
    pub control: Arc<ControlPlane>,
    _dir: Option<tempfile::TempDir>,
    dir: std::path::PathBuf,
}

impl Ledger {
    /// Ends the server side (sessions, control plane, the data-dir lock) and keeps the data
    /// dir, for offline tools.
    pub fn close(self) -> tempfile::TempDir {
        let Ledger {
            sessions,
            control,
            _dir,
            ..
        } = self;
        drop(sessions);
        drop(control);
        _dir.expect("a ledger made by ledger()")
    }

    /// A ledger served by `sessions` and `control` made by the caller.
    pub fn from_parts(sessions: Sessions, control: Arc<ControlPlane>) -> Ledger {
        Ledger {
            sessions,
            control,
            _dir: None,
            dir: std::path::PathBuf::new(),
        }
    }

    /// The data dir holding the catalog and `ledgers/j.sqlite`.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// Serves the ledgers of an existing data dir (which the caller keeps).
pub fn serve(dir: &std::path::Path) -> Ledger {
    let cfg = Config::for_tests(dir.to_path_buf());
    let control = Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    Ledger {
        sessions: Sessions::new(qldb_local::server::session_config(&cfg), control.clone()),
        control,
        _dir: None,
        dir: dir.to_path_buf(),
    }
}

#[path = "../pg/mod.rs"]
pub mod pg;

/// A ledger `j` in a fresh data dir, or — with `QLDB_TEST_STORAGE=postgres` (run-all.sh runs
/// the session-layer suites so a second time) — in a fresh database of the test PostgreSQL
/// server.
pub fn ledger() -> Ledger {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_tests(dir.path().to_path_buf());
    if std::env::var("QLDB_TEST_STORAGE").as_deref() == Ok("postgres") {
        assert!(
            std::env::var("QLDB_TEST_POSTGRES_PORT").is_ok(),
            "QLDB_TEST_STORAGE=postgres needs the test server's QLDB_TEST_POSTGRES_PORT"
        );
        cfg.storage = Some(pg::fresh_database().url);
    }
    let control = Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    control
        .create_ledger(qldb_local::api::qldb::CreateLedgerRequest {
            name: Some("j".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            deletion_protection: Some(false),
            ..Default::default()
        })
        .unwrap();
    Ledger {
        sessions: Sessions::new(qldb_local::server::session_config(&cfg), control.clone()),
        control,
        dir: dir.path().to_path_buf(),
        _dir: Some(dir),
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
        let (mut page, _) = self
            .l
            .sessions
            .execute_statement(&self.token, &self.id, stmt, wire)?;
        // Every page of the result, as a driver reads them.
        let mut values = std::mem::take(&mut page.values);
        while let Some(next) = page.next_page_token.take() {
            (page, _) = self.l.sessions.fetch_page(&self.token, &self.id, &next)?;
            values.append(&mut page.values);
        }
        Ok(values
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
pub fn text(v: &Value, f: &str) -> String {
    match v.field(f).map(|x| &x.data) {
        Some(Data::String(s)) => s.clone(),
        other => panic!("{f}: {other:?}"),
    }
}

/// A ledger `j` that used every statement kind, a redaction of an indexed document's earlier
/// revision, and documents in a dropped table; returns its data dir (server closed).
pub fn rich_ledger() -> tempfile::TempDir {
    let l = ledger();
    let token = l.sessions.start_session("j").unwrap();
    let one = |stmt: &str, params: &[&str]| {
        let mut tx = Tx::begin(&l, &token);
        let rows = tx.run(stmt, params).unwrap();
        tx.commit().unwrap();
        rows
    };
    let mut tx = Tx::begin(&l, &token);
    let a = text(&tx.run("CREATE TABLE A", &[]).unwrap()[0], "tableId");
    tx.run("CREATE INDEX ON A (k)", &[]).unwrap();
    tx.run(
        "INSERT INTO A << {'k': 1, 'v': 'x'}, {'k': 2}, {'v': 3} >>",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    one("UPDATE A AS a SET a.k = 5, a.w = 1 WHERE a.k = 1", &[]);
    one("UPDATE A AS a SET a = {'k': 7} WHERE a.k = 2", &[]);
    one("DELETE FROM A AS a WHERE a.k = 7", &[]);
    one("FROM A AS a WHERE a.v = 3 SET a.k = 9", &[]);
    // An empty table, never written: its id is only in its creation's hash and the catalog.
    one("CREATE TABLE Empty", &[]);
    let b = text(&one("CREATE TABLE B", &[])[0], "tableId");
    one("INSERT INTO B VALUE {'z': 1}", &[]);
    one("DROP TABLE B", &[]);
    one(&format!("UNDROP TABLE \"{b}\""), &[]);
    one("DROP TABLE B", &[]);
    one("CREATE INDEX ON A (v)", &[]);
    let indexes = one(
        "SELECT VALUE i FROM information_schema.user_tables AS t, t.indexes AS i WHERE t.name = 'A'",
        &[],
    );
    let v_index = indexes
        .iter()
        .find(|i| text(i, "expr").contains('v'))
        .map(|i| text(i, "indexId"))
        .expect("the index on v");
    one(
        &format!("DROP INDEX \"{v_index}\" ON A WITH (purge = true)"),
        &[],
    );
    one("INSERT INTO A VALUE {'v': 4, 'k': 5}", &[]);
    // Redact the first revision of the document now keyed 5 (it was keyed 1).
    let history = one(
        "SELECT h.blockAddress, h.metadata.id FROM history(A) AS h WHERE h.metadata.version = 0 AND h.data.k = 1",
        &[],
    );
    let address = history[0].field("blockAddress").unwrap().clone();
    let doc = text(&history[0], "id");
    let mut tx = Tx::begin(&l, &token);
    let params = [
        qldb_local::ion::text::to_text_one(&address),
        format!("\"{a}\""),
        format!("\"{doc}\""),
    ];
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    tx.run("EXEC REDACT_REVISION ?, ?, ?", &params).unwrap();
    tx.commit().unwrap();
    one("UPDATE A AS a SET a.k = 6 WHERE a.k = 5 AND a.w = 1", &[]);
    l.close()
}

/// The file of ledger `name` in a data dir.
pub fn ledger_file(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join("ledgers").join(format!("{name}.sqlite"))
}

/// Every row of every table of the file, by table, in a stable order.
pub fn dump(file: &std::path::Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let conn = rusqlite::Connection::open(file).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<Vec<rusqlite::types::Value>> = stmt
                .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            (t, rows)
        })
        .collect()
}
