//! HTTPS on the listen port (`--tls`): each accepted connection is plain HTTP or TLS, told
//! apart by its first byte (a TLS record starts with 0x16, an HTTP request with a letter),
//! so one endpoint serves both schemes and the health probe keeps working over HTTP.
//!
//! Without `--tls-cert`/`--tls-key` the server keeps its own small PKI in `<data-dir>/tls/`:
//! `ca.pem` (a local certificate authority, made once), and `cert.pem`/`key.pem` (the
//! server's certificate, signed by that CA, for localhost, 127.0.0.1, ::1 and any
//! `--tls-names`). Clients trust `ca.pem` (AWS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, SSL_CERT_FILE).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// How long a new connection may take to show its first byte and finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the certificate and key come from.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA clients should trust, when the server made its own.
    pub ca: Option<PathBuf>,
}

/// The names a generated certificate is valid for.
fn cert_names(cfg: &Config) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in &cfg.tls_names {
        let n = n.trim();
        if !n.is_empty() && !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    names
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The certificate files to serve: the configured ones, or the server's own (made on first
/// start, and again when `--tls-names` asks for a name the kept certificate lacks).
pub fn prepare(cfg: &Config) -> Result<TlsFiles, String> {
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        return Ok(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
        });
    }
    let dir = cfg.data_dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: Some(dir.join("ca.pem")),
    };
    let names = cert_names(cfg);
    let names_file = dir.join("names.txt");
    let kept = std::fs::read_to_string(&names_file).unwrap_or_default();
    let covered = names.iter().all(|n| kept.lines().any(|k| k == n));
    if covered && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    generate(&dir, &names).map_err(|e| format!("cannot make a TLS certificate: {e}"))?;
    std::fs::write(&names_file, names.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", names_file.display()))?;
    Ok(files)
}

/// Makes (or reuses) the local CA in `dir` and a server certificate for `names` signed by it.
fn generate(dir: &Path, names: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key_path = dir.join("ca-key.pem");
    let ca_path = dir.join("ca.pem");
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "qldb-local local CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    // The CA is kept across restarts (clients trust it once); only the leaf is remade.
    let (ca_key, ca_cert, ca_pem) = match (
        std::fs::read_to_string(&ca_key_path),
        std::fs::read_to_string(&ca_path),
    ) {
        (Ok(key_pem), Ok(ca_pem)) => {
            let key = KeyPair::from_pem(&key_pem)?;
            // The same subject and key as the kept ca.pem: what clients trust still signs.
            let cert = ca_params.self_signed(&key)?;
            (key, cert, ca_pem)
        }
        _ => {
            let key = KeyPair::generate()?;
            let cert = ca_params.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            std::fs::write(&ca_path, cert.pem())?;
            let pem = cert.pem();
            (key, cert, pem)
        }
    };
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "qldb-local");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    write_private(&dir.join("key.pem"), &key.serialize_pem())?;
    // The chain: the server certificate, then the CA.
    std::fs::write(dir.join("cert.pem"), cert.pem() + &ca_pem)?;
    Ok(())
}

/// The rustls server configuration for `files` (HTTP/1.1, like the plain listener).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect())
        .map_err(|e| {
            format!(
                "cannot read certificates from {}: {e}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // No ALPN: a client that offers only "h2" (rusoto's hyper-rustls) would otherwise be
    // refused; without a negotiated protocol every client speaks HTTP/1.1.
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the TLS certificate and key do not fit: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener`, over TLS or plain HTTP per connection, until `shutdown`
/// completes; then waits for the connections' in-flight requests.
pub async fn serve_both(
    listener: TcpListener,
    app: Router,
    tls: TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new());
                b
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, classify(stream, &tls)).await {
                Ok(Ok(Conn::Tls(s))) => {
                    let conn = builder.serve_connection(TokioIo::new(*s), service);
                    let _ = watcher.watch(conn).await;
                }
                Ok(Ok(Conn::Plain(s))) => {
                    let conn = builder.serve_connection(TokioIo::new(s), service);
                    let _ = watcher.watch(conn).await;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection closed before a request")
                }
                Err(_) => tracing::debug!(%peer, "connection timed out before a request"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 30 s after shutdown; closing them");
    }
}

enum Conn {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
}

async fn classify(stream: TcpStream, tls: &TlsAcceptor) -> std::io::Result<Conn> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    if n == 1 && first[0] == 0x16 {
        Ok(Conn::Tls(Box::new(tls.accept(stream).await?)))
    } else {
        Ok(Conn::Plain(stream))
    }
}
