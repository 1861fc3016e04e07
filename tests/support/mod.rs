//! Shared by the Rust SDK tests and the session benchmark: start a real qldb-local, build
//! an SDK client for it, create a ledger with a signed control-plane request, and run
//! driver-style transactions that keep their own commit digest.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_qldbsession::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_qldbsession::operation::send_command::SendCommandError;
use aws_sdk_qldbsession::primitives::Blob;
use aws_sdk_qldbsession::types::*;
use aws_sdk_qldbsession::Client;
use qldb_local::ion::{binary, text, Value};
use qldb_local::journal::hash::CommitDigest;

pub struct Server {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The server's CPU time so far (user + system), from /proc (Linux; zero elsewhere).
    #[allow(dead_code)] // used by benches/session.rs, not by every test that includes this
    pub fn cpu_time(&self) -> std::time::Duration {
        process_cpu_time(self.child.id())
    }
}

/// A process's CPU time so far (user + system), from /proc (Linux; zero elsewhere).
#[allow(dead_code)] // used by benches/session.rs, not by every test that includes this
pub fn process_cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th
    // field of the line, stime the 15th, in clock ticks.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on every Linux architecture this runs on.
    std::time::Duration::from_millis(ticks * 10)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_qldb-local"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while qldb_local::server::probe_health(addr).is_err() {
        assert!(Instant::now() < deadline, "qldb-local did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

pub fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_qldbsession::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

/// Creates a ledger through the control plane with a signed request from the same SDK
/// family (the session SDK cannot), using raw HTTP signed by aws-sigv4.
pub fn create_ledger(endpoint: &str, name: &str) {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let body = format!(r#"{{"Name":"{name}","PermissionsMode":"ALLOW_ALL"}}"#);
    let host = endpoint.trim_start_matches("http://");
    let identity = aws_credential_types::Credentials::new("test", "test", None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("qldb")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("host", host), ("content-type", "application/json")];
    let req = SignableRequest::new(
        "POST",
        "/ledgers",
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut raw = format!("POST /ledgers HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    for (k, v) in instructions.headers() {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(&body);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

pub fn ion(v: &str) -> ValueHolder {
    ValueHolder::builder()
        .ion_binary(Blob::new(binary::encode_one(
            &text::from_text_one(v).unwrap(),
        )))
        .build()
}

pub fn values(page: &Page) -> Vec<Value> {
    page.values()
        .iter()
        .map(|h| {
            binary::decode(h.ion_binary().unwrap().as_ref())
                .unwrap()
                .remove(0)
        })
        .collect()
}

pub struct Session<'a> {
    pub c: &'a Client,
    pub token: String,
}

impl Session<'_> {
    pub async fn start_tx(&self) -> (String, CommitDigest) {
        let r = self
            .c
            .send_command()
            .session_token(&self.token)
            .start_transaction(StartTransactionRequest::builder().build())
            .send()
            .await
            .unwrap();
        let id = r
            .start_transaction()
            .unwrap()
            .transaction_id()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 22);
        let d = CommitDigest::new(&id);
        (id, d)
    }

    pub async fn exec(
        &self,
        tx: &str,
        d: &mut CommitDigest,
        stmt: &str,
        params: &[&str],
    ) -> Result<ExecuteStatementResult, SendCommandError> {
        let vals: Vec<Value> = params
            .iter()
            .map(|p| text::from_text_one(p).unwrap())
            .collect();
        d.add_statement(stmt, &vals);
        let mut b = ExecuteStatementRequest::builder()
            .transaction_id(tx)
            .statement(stmt);
        for p in params {
            b = b.parameters(ion(p));
        }
        self.c
            .send_command()
            .session_token(&self.token)
            .execute_statement(b.build().unwrap())
            .send()
            .await
            .map(|r| r.execute_statement().unwrap().clone())
            .map_err(|e| e.into_service_error())
    }

    pub async fn commit(
        &self,
        tx: &str,
        digest: &[u8],
    ) -> Result<CommitTransactionResult, SendCommandError> {
        self.c
            .send_command()
            .session_token(&self.token)
            .commit_transaction(
                CommitTransactionRequest::builder()
                    .transaction_id(tx)
                    .commit_digest(Blob::new(digest.to_vec()))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .map(|r| r.commit_transaction().unwrap().clone())
            .map_err(|e| e.into_service_error())
    }
}

pub async fn session<'a>(c: &'a Client, ledger: &str) -> Session<'a> {
    let r = c
        .send_command()
        .start_session(
            StartSessionRequest::builder()
                .ledger_name(ledger)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    Session {
        c,
        token: r
            .start_session()
            .unwrap()
            .session_token()
            .unwrap()
            .to_string(),
    }
}
