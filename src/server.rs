//! Starting and stopping the server: open the storage, bind, serve until SIGINT/SIGTERM,
//! then finish in-flight requests and close every database cleanly.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Config, LogFormat};
use crate::control::{system_clock, ControlConfig, ControlPlane};
use crate::http::auth::Authenticator;
use crate::http::{router, AppState};

/// Installs the log subscriber on stderr (level from RUST_LOG, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The control plane's settings.
pub fn control_config(c: &Config) -> ControlConfig {
    ControlConfig {
        region: c.region.clone(),
        account_id: c.account_id.clone(),
        max_ledgers: c.max_ledgers,
        create_delay_ms: c.create_delay().as_millis() as i64,
        delete_delay_ms: c.delete_delay().as_millis() as i64,
        data_dir: (!c.in_memory).then(|| c.data_dir.clone()),
        storage_url: c.storage.clone(),
        relaxed_durability: c.durability == crate::config::Durability::Relaxed,
        job_retention_ms: c.job_retention().as_millis() as i64,
    }
}

/// The export and stream jobs' settings.
pub fn jobs_config(c: &Config) -> crate::jobs::JobsConfig {
    use std::time::Duration;
    crate::jobs::JobsConfig {
        s3_endpoint: c.s3_endpoint.clone(),
        kinesis_endpoint: c.kinesis_endpoint.clone(),
        s3_path_style: c.s3_path_style,
        blocks_per_object: c.export_blocks_per_object as usize,
        stream_poll: Duration::from_millis(c.stream_poll_ms.max(1)),
        stream_retry: Duration::from_millis(c.stream_retry_ms.max(1)),
        stream_fail_after: Duration::from_secs(c.stream_fail_after_secs),
        region: c.region.clone(),
    }
}

/// The session API's settings.
pub fn session_config(cfg: &Config) -> crate::session::SessionConfig {
    crate::session::SessionConfig {
        transaction_timeout_ms: cfg.transaction_timeout_ms as i64,
        session_lifetime_ms: cfg.session_lifetime_ms as i64,
        page_size: cfg.page_size as usize,
        max_sessions_per_ledger: cfg.max_sessions_per_ledger,
        ..Default::default()
    }
}

/// Opens the control plane on the backend `cfg` names (PostgreSQL with `--storage`, else
/// SQLite files under the data directory, or memory): the composition root is the one place
/// that picks a backend.
pub fn open_control(
    cfg: ControlConfig,
    clock: crate::control::Clock,
) -> Result<ControlPlane, crate::storage::StorageError> {
    let backend: Arc<dyn crate::storage::Backend> = match &cfg.storage_url {
        Some(url) => Arc::new(crate::storage::pg::PgBackend::serve(
            url,
            cfg.relaxed_durability,
        )?),
        None => Arc::new(crate::storage::sqlite::SqliteBackend::new(
            cfg.data_dir.clone(),
            cfg.relaxed_durability,
        )),
    };
    ControlPlane::with_backend(cfg, clock, backend)
}

/// Builds the application state (opening the catalog and every ledger).
pub fn build_state(cfg: &Config) -> anyhow_like::Result<AppState> {
    let control = Arc::new(open_control(control_config(cfg), system_clock())?);
    Ok(AppState::new(crate::http::AppParts {
        sessions: Arc::new(crate::session::Sessions::new(
            session_config(cfg),
            control.clone(),
        )),
        jobs: crate::jobs::Jobs::new(control.clone(), jobs_config(cfg)),
        control,
        auth: Arc::new(Authenticator::new(cfg).map_err(anyhow_like::Error)?),
        max_body_bytes: cfg.max_body_bytes,
        latency: std::time::Duration::from_millis(cfg.latency_ms),
    }))
}

/// Runs the server until a shutdown signal arrives.
pub async fn run(cfg: Config) -> anyhow_like::Result<()> {
    if let (true, Some(url)) = (cfg.verify_on_start, cfg.storage.clone()) {
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let backend =
                crate::storage::pg::PgBackend::connect(&url, false).map_err(|e| e.to_string())?;
            for v in backend
                .verify(None, &mut |_, _, _| {})
                .map_err(|e| e.to_string())?
            {
                tracing::info!(ledger = %v.ledger, blocks = v.blocks, "journal verified");
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow_like::Error(e.to_string()))?
        .map_err(|e| anyhow_like::Error(format!("refusing to start: {e}")))?;
    } else if cfg.verify_on_start && !cfg.in_memory {
        let dir = cfg.data_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), crate::verify::Damage> {
            for v in crate::verify::verify_data_dir(&dir)? {
                tracing::info!(ledger = %v.ledger, blocks = v.blocks, "journal verified");
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow_like::Error(e.to_string()))?
        .map_err(|e| anyhow_like::Error(format!("refusing to start: {e}")))?;
    }
    let state = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || build_state(&cfg))
            .await
            .map_err(|e| anyhow_like::Error(e.to_string()))??
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow_like::Error(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| anyhow_like::Error(e.to_string()))?;
    tracing::info!(
        %addr,
        storage = %match &cfg.storage {
            Some(url) => crate::storage::pg::shown_url(url),
            None if cfg.in_memory => "(in memory)".into(),
            None => cfg.data_dir.display().to_string(),
        },
        auth = ?cfg.auth,
        region = %cfg.region,
        account_id = %cfg.account_id,
        request_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "qldb-local {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let tls = if cfg.tls {
        let files = crate::tls::prepare(&cfg).map_err(anyhow_like::Error)?;
        let acceptor = crate::tls::acceptor(&files).map_err(anyhow_like::Error)?;
        tracing::info!(
            cert = %files.cert.display(),
            ca = %files.ca.as_ref().map(|c| c.display().to_string()).unwrap_or_default(),
            "HTTPS on https://{addr} as well (trust the ca file: AWS_CA_BUNDLE, NODE_EXTRA_CA_CERTS)"
        );
        Some(acceptor)
    } else {
        None
    };
    let control = state.control.clone();
    // Exports in progress and running streams continue where they were acknowledged.
    state.jobs.resume().await;
    state.jobs.adopt_left_jobs();
    match tls {
        Some(acceptor) => {
            crate::tls::serve_both(listener, router(state), acceptor, shutdown_signal()).await
        }
        None => axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| anyhow_like::Error(e.to_string()))?,
    }
    // Every acknowledged change is already durable (synchronous=FULL); dropping the last
    // handle closes the databases and checkpoints their WAL.
    drop(control);
    tracing::info!("qldb-local stopped");
    Ok(())
}

/// GETs `/health` from a server listening on `addr` and returns the body if it is 200.
pub fn probe_health(mut addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.take(64 * 1024).read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if head.starts_with("HTTP/1.1 200") {
        Ok(body.trim().to_string())
    } else {
        Err(std::io::Error::other(format!(
            "unexpected answer: {}",
            head.lines().next().unwrap_or("")
        )))
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// A small boxed error for the binary's top level, without another dependency.
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);

    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Error {}

    impl From<crate::storage::StorageError> for Error {
        fn from(e: crate::storage::StorageError) -> Self {
            Error(e.to_string())
        }
    }

    pub type Result<T> = std::result::Result<T, Error>;
}
