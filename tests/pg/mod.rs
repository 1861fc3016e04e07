//! A real PostgreSQL server for the tests of the PostgreSQL backend, never a mock: the one
//! `compat-tests/run-all.sh` started (its port in `QLDB_TEST_POSTGRES_PORT`), or else one
//! started here with `compat-tests/postgres/start.sh` for as long as the returned guard
//! lives. Each test gets a database of its own.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A private server started by a test (stopped and removed when dropped).
pub struct Server {
    dir: PathBuf,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(root().join("compat-tests/postgres/stop.sh"))
            .arg(&self.dir)
            .status();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh database on the test server: its URL (user `qldb`, password `qldb`), and the
/// server if this test started it.
pub struct TestDb {
    pub url: String,
    pub port: u16,
    pub name: String,
    _server: Option<Server>,
}

pub fn fresh_database() -> TestDb {
    let (port, server) = match std::env::var("QLDB_TEST_POSTGRES_PORT") {
        Ok(p) => (p.parse().expect("QLDB_TEST_POSTGRES_PORT is a port"), None),
        Err(_) => {
            let dir = std::env::temp_dir()
                .join(format!("qldb-test-pg-{}", uuid::Uuid::new_v4().simple()));
            let out = Command::new(root().join("compat-tests/postgres/start.sh"))
                .arg(&dir)
                .output()
                .expect("compat-tests/postgres/start.sh runs");
            assert!(
                out.status.success(),
                "starting PostgreSQL failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let port: u16 = std::fs::read_to_string(dir.join("port"))
                .expect("start.sh wrote the port")
                .trim()
                .parse()
                .expect("a port");
            (port, Some(Server { dir, port }))
        }
    };
    let name = format!("qt_{}", uuid::Uuid::new_v4().simple());
    admin(port, &format!("CREATE DATABASE {name} OWNER qldb"));
    TestDb {
        url: format!("postgres://qldb:qldb@127.0.0.1:{port}/{name}"),
        port,
        name,
        _server: server,
    }
}

/// Runs `sql` as the superuser on the server's `postgres` database.
pub fn admin(port: u16, sql: &str) {
    let mut c = postgres::Client::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        postgres::NoTls,
    )
    .expect("the superuser connects over loopback without a password");
    c.batch_execute(sql).expect("admin SQL runs");
}
