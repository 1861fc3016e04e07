//! Every setting of `qldb-local serve`: its flag, its environment variable, its default.
//!
//! This is the only place where settings are declared. `main.rs` parses them with clap and
//! hands the resulting [`Config`] to [`crate::server::run`]; nothing else reads the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The default listen address: loopback and one fixed port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8901";

/// How requests are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Verify every SigV4 signature against the configured credentials.
    Strict,
    /// Accept any request, signed or not.
    Off,
}

/// When a commit is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// After the commit is synced to disk (SQLite WAL with synchronous=FULL).
    Full,
    /// After the commit is in the WAL but before it is synced (synchronous=NORMAL): faster;
    /// a power loss or OS crash may lose the most recent commits (never corrupts).
    Relaxed,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the `serve` command.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address and port to listen on (HTTP/1.1). Use 0.0.0.0:8901 inside containers.
    #[arg(long, env = "QLDB_LOCAL_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Directory holding the catalog and one SQLite file per ledger. Created if missing.
    #[arg(long, env = "QLDB_LOCAL_DATA_DIR", default_value = "./qldb-data")]
    pub data_dir: PathBuf,

    /// Keep everything in memory; nothing is written to disk and all is lost at exit.
    #[arg(
        long,
        env = "QLDB_LOCAL_IN_MEMORY",
        default_value_t = false,
        conflicts_with = "storage"
    )]
    pub in_memory: bool,

    /// Where ledgers live instead of SQLite files under --data-dir: a PostgreSQL database,
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (the user needs the CREATE privilege on
    /// the database; several servers may share it).
    #[arg(long, env = "QLDB_LOCAL_STORAGE", value_name = "URL")]
    pub storage: Option<String>,

    /// AWS region used in ARNs and KMS key ARNs.
    #[arg(long, env = "QLDB_LOCAL_REGION", default_value = "us-east-1")]
    pub region: String,

    /// AWS account id used in ARNs (12 digits).
    #[arg(long, env = "QLDB_LOCAL_ACCOUNT_ID", default_value = "000000000000", value_parser = parse_account_id)]
    pub account_id: String,

    /// `strict` verifies SigV4 signatures against --credentials; `off` accepts any request.
    #[arg(long, env = "QLDB_LOCAL_AUTH", value_enum, default_value_t = AuthMode::Strict)]
    pub auth: AuthMode,

    /// Accepted credentials as ACCESS_KEY_ID:SECRET pairs, comma separated.
    #[arg(
        long,
        env = "QLDB_LOCAL_CREDENTIALS",
        hide_env_values = true,
        default_value = "test:test",
        value_parser = parse_credential,
        value_delimiter = ','
    )]
    pub credentials: Vec<Credential>,

    /// A JSON or TOML file of access keys (with optional session tokens), each with the
    /// principal it stands for and the IAM policies attached to it; STANDARD-mode ledgers
    /// and the control plane enforce those policies. Adds to --credentials (a key in both is
    /// the file's).
    #[arg(long, env = "QLDB_LOCAL_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Serve HTTPS as well as HTTP on the listen port (a TLS client hello is told apart
    /// from plain HTTP by its first byte). Without --tls-cert/--tls-key a self-signed
    /// certificate for localhost, 127.0.0.1 and ::1 is made on first start and kept in
    /// the data dir (tls/cert.pem, tls/key.pem).
    #[arg(long, env = "QLDB_LOCAL_TLS", default_value_t = false)]
    pub tls: bool,

    /// PEM certificate chain for --tls (with --tls-key).
    #[arg(long, env = "QLDB_LOCAL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls (with --tls-cert).
    #[arg(long, env = "QLDB_LOCAL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra host names and IP addresses for the generated certificate, comma separated.
    #[arg(long, env = "QLDB_LOCAL_TLS_NAMES", value_delimiter = ',')]
    pub tls_names: Vec<String>,

    /// Simulated service latency: every API response waits this long (0 = off). Some
    /// client test suites assume a networked service.
    #[arg(long, env = "QLDB_LOCAL_LATENCY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub latency_ms: u64,

    /// Threads that serve HTTP requests. 0 (the default): the machine's cores less one,
    /// at least one; the ledgers' commit and checkpoint threads run beside them. Tokio's
    /// TOKIO_WORKER_THREADS is honoured when this is 0.
    #[arg(long, env = "QLDB_LOCAL_WORKER_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub worker_threads: u64,

    /// Log line format on stderr. The level is set with RUST_LOG (default `info`).
    #[arg(long, env = "QLDB_LOCAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How many ledgers may exist at once (QLDB's default quota is 5).
    #[arg(long, env = "QLDB_LOCAL_MAX_LEDGERS", default_value_t = 5)]
    pub max_ledgers: u32,

    /// How long a new ledger stays CREATING before it is ACTIVE, in milliseconds.
    #[arg(long, env = "QLDB_LOCAL_LEDGER_CREATE_DELAY_MS", default_value_t = 0)]
    pub ledger_create_delay_ms: u64,

    /// How long a deleted ledger stays DELETING before it is gone, in milliseconds.
    #[arg(long, env = "QLDB_LOCAL_LEDGER_DELETE_DELAY_MS", default_value_t = 0)]
    pub ledger_delete_delay_ms: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "QLDB_LOCAL_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// `full`: a commit is acknowledged only once it is on disk. `relaxed`: faster, may lose
    /// the last commits on power loss.
    #[arg(long, env = "QLDB_LOCAL_DURABILITY", value_enum, default_value_t = Durability::Full)]
    pub durability: Durability,

    /// Before serving, verify every hash of every ledger (as `qldb-local verify` does) and
    /// refuse to start if any ledger is damaged.
    #[arg(long, env = "QLDB_LOCAL_VERIFY_ON_START", default_value_t = false)]
    pub verify_on_start: bool,

    /// A transaction expires this long after StartTransaction (QLDB: 30 s).
    #[arg(
        long,
        env = "QLDB_LOCAL_TRANSACTION_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub transaction_timeout_ms: u64,

    /// A session expires this long after StartSession (QLDB: 13-17 min).
    #[arg(
        long,
        env = "QLDB_LOCAL_SESSION_LIFETIME_MS",
        default_value_t = 900_000
    )]
    pub session_lifetime_ms: u64,

    /// Result values per page of ExecuteStatement / FetchPage.
    #[arg(long, env = "QLDB_LOCAL_PAGE_SIZE", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub page_size: u64,

    /// Concurrent sessions allowed per ledger (QLDB: 1500).
    #[arg(
        long,
        env = "QLDB_LOCAL_MAX_SESSIONS_PER_LEDGER",
        default_value_t = 1500
    )]
    pub max_sessions_per_ledger: usize,

    /// S3 endpoint for journal exports. Overrides AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL,
    /// which the exporter's AWS SDK client reads otherwise (with the standard credential
    /// chain and region).
    #[arg(long, env = "QLDB_LOCAL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Kinesis endpoint for journal streams. Overrides AWS_ENDPOINT_URL_KINESIS and
    /// AWS_ENDPOINT_URL.
    #[arg(long, env = "QLDB_LOCAL_KINESIS_ENDPOINT")]
    pub kinesis_endpoint: Option<String>,

    /// Address S3 buckets as https://host/bucket (path style, what S3-compatible servers
    /// expect). Set false for virtual-hosted style (https://bucket.host).
    #[arg(long, env = "QLDB_LOCAL_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub s3_path_style: bool,

    /// Most journal blocks in one exported S3 object (objects also never span an hour).
    #[arg(long, env = "QLDB_LOCAL_EXPORT_BLOCKS_PER_OBJECT", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub export_blocks_per_object: u64,

    /// How often a journal stream looks for new blocks, in milliseconds.
    #[arg(long, env = "QLDB_LOCAL_STREAM_POLL_MS", default_value_t = 200)]
    pub stream_poll_ms: u64,

    /// How long an IMPAIRED journal stream waits before retrying Kinesis, in milliseconds;
    /// with --storage, also how often a server looks for jobs a stopped server left.
    #[arg(long, env = "QLDB_LOCAL_STREAM_RETRY_MS", default_value_t = 5_000)]
    pub stream_retry_ms: u64,

    /// A journal stream IMPAIRED for this long without a break becomes FAILED, in seconds.
    #[arg(
        long,
        env = "QLDB_LOCAL_STREAM_FAIL_AFTER_SECS",
        default_value_t = 86_400
    )]
    pub stream_fail_after_secs: u64,

    /// How long ended exports and streams stay visible to Describe and List, in hours
    /// (QLDB: 7 days).
    #[arg(long, env = "QLDB_LOCAL_JOB_RETENTION_HOURS", default_value_t = 168)]
    pub job_retention_hours: u64,
}

impl Config {
    /// A configuration with every default, for tests and embedding.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            data_dir,
            in_memory: false,
            storage: None,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            auth: AuthMode::Strict,
            credentials: vec![Credential {
                access_key_id: "test".into(),
                secret_access_key: "test".into(),
            }],
            credentials_file: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            latency_ms: 0,
            worker_threads: 0,
            log_format: LogFormat::Text,
            max_ledgers: 5,
            ledger_create_delay_ms: 0,
            ledger_delete_delay_ms: 0,
            max_body_bytes: 8 * 1024 * 1024,
            durability: Durability::Full,
            verify_on_start: false,
            transaction_timeout_ms: 30_000,
            session_lifetime_ms: 900_000,
            page_size: 200,
            max_sessions_per_ledger: 1500,
            s3_endpoint: None,
            kinesis_endpoint: None,
            s3_path_style: true,
            export_blocks_per_object: 1000,
            stream_poll_ms: 200,
            stream_retry_ms: 5_000,
            stream_fail_after_secs: 86_400,
            job_retention_hours: 168,
        }
    }

    /// How many threads serve requests on a machine of `cores`: --worker-threads if set;
    /// else `None` when TOKIO_WORKER_THREADS is set (`tokio_env`: tokio reads it); else
    /// the cores less one, at least one. The ledgers' group-commit leaders (which write
    /// and fsync every batch) and checkpoint threads are threads of their own: a worker
    /// per core would have them and the workers take turns on every core, and each turn
    /// is a hand-off (on 2 cores, one worker serves the same load with 10–15 % less CPU
    /// per INSERT transaction and 20–30 % less per SELECT; docs/performance.md).
    pub fn request_threads(&self, cores: usize, tokio_env: bool) -> Option<usize> {
        match self.worker_threads {
            0 if tokio_env => None,
            0 => Some(cores.saturating_sub(1).max(1)),
            n => Some(n as usize),
        }
    }

    pub fn job_retention(&self) -> Duration {
        Duration::from_secs(self.job_retention_hours.saturating_mul(3600))
    }

    pub fn create_delay(&self) -> Duration {
        Duration::from_millis(self.ledger_create_delay_ms)
    }

    pub fn delete_delay(&self) -> Duration {
        Duration::from_millis(self.ledger_delete_delay_ms)
    }
}

/// One accepted access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<secret>", self.access_key_id)
    }
}

fn parse_credential(s: &str) -> Result<Credential, String> {
    match s.trim().split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Credential {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
        }),
        _ => Err(format!("expected ACCESS_KEY_ID:SECRET, got '{s}'")),
    }
}

pub fn parse_account_id(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("an account id is 12 digits, got '{s}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse() {
        let c = parse_credential("AKID:se:cret").unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.secret_access_key, "se:cret");
        assert!(parse_credential("nocolon").is_err());
        assert!(parse_credential(":x").is_err());
    }

    #[test]
    fn account_id_is_twelve_digits() {
        assert!(parse_account_id("123456789012").is_ok());
        assert!(parse_account_id("12345678901").is_err());
        assert!(parse_account_id("12345678901a").is_err());
    }

    #[test]
    fn request_threads_leave_a_core_unless_told() {
        let mut c = Config::for_tests(PathBuf::from("unused"));
        assert_eq!(c.request_threads(1, false), Some(1));
        assert_eq!(c.request_threads(2, false), Some(1));
        assert_eq!(c.request_threads(8, false), Some(7));
        // TOKIO_WORKER_THREADS is left to tokio, unless the flag is given.
        assert_eq!(c.request_threads(8, true), None);
        c.worker_threads = 3;
        assert_eq!(c.request_threads(8, true), Some(3));
        assert_eq!(c.request_threads(1, false), Some(3));
    }
}
