//! TLS to PostgreSQL, through rustls (as `serve --tls`), with libpq's `sslmode` meanings:
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default) and `require`: encrypted when the server offers it (`require`:
//!   only then), the server's certificate not checked, as libpq does;
//! - `verify-ca`: the certificate must chain to a trusted root;
//! - `verify-full`: and name the host connected to.
//!
//! The trusted roots are `sslrootcert=FILE` (PEM) from the connection string, else the file
//! `PGSSLROOTCERT` names, else the system's. tokio-postgres knows only the first three
//! modes and no `sslrootcert`, so [`split_options`] takes those out of the string first.
//! Client certificates (`sslcert`, `sslkey`) are not supported.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use ::postgres::Socket;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Nothing (`prefer`, `require`).
    Nothing,
    /// That it chains to a trusted root (`verify-ca`).
    Chain,
    /// That, and that it names the host (`verify-full`).
    Full,
}

/// A connection string without the options tokio-postgres does not know, and what they
/// asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub url: String,
    pub verify: Verify,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode=verify-ca|verify-full` (passed on as `require`) and `sslrootcert=…` out
/// of a URL's query or a key=value string.
pub fn split_options(url: &str) -> Options {
    /// What becomes of one option.
    enum Fate {
        Keep,
        Require,
        Drop,
    }
    let mut verify = Verify::Nothing;
    let mut root_cert = None;
    let mut fate = |key: &str, value: &str| match (key, value) {
        ("sslmode", "verify-ca") => {
            verify = Verify::Chain;
            Fate::Require
        }
        ("sslmode", "verify-full") => {
            verify = Verify::Full;
            Fate::Require
        }
        ("sslrootcert", v) => {
            root_cert = Some(PathBuf::from(v));
            Fate::Drop
        }
        _ => Fate::Keep,
    };
    let mut kept = |pair: &str, key: &str, value: &str| match fate(key, value) {
        Fate::Keep => Some(pair.to_string()),
        Fate::Require => Some("sslmode=require".to_string()),
        Fate::Drop => None,
    };
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let url = match url.split_once('?') {
        Some((base, query)) if is_url => {
            let pairs: Vec<String> = query
                .split('&')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    kept(pair, k, &percent_decode(v))
                })
                .collect();
            if pairs.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", pairs.join("&"))
            }
        }
        _ if is_url || url.contains("://") => url.to_string(),
        _ => url
            .split_whitespace()
            .filter_map(|pair| match pair.split_once('=') {
                Some((k, v)) => kept(pair, k, v.trim_matches('\'')),
                None => Some(pair.to_string()),
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    Options {
        url,
        verify,
        root_cert,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for `verify` with the roots of `root_cert` (else `PGSSLROOTCERT`'s
/// file, else the system's).
pub fn connector(verify: Verify, root_cert: Option<&Path>) -> Result<RustlsConnect, String> {
    // As libpq: `require` with a root certificate file given checks the chain.
    let verify = match verify {
        Verify::Nothing if root_cert.is_some() || std::env::var_os("PGSSLROOTCERT").is_some() => {
            Verify::Chain
        }
        v => v,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(Unchecked(provider.clone())),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("cannot check PostgreSQL's certificate: {e}"))?;
            if verify == Verify::Full {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(RustlsConnect(Arc::new(config)))
}

fn roots(root_cert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let file = root_cert
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PGSSLROOTCERT").map(PathBuf::from));
    match file {
        Some(file) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&file)
                .and_then(|certs| certs.collect())
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", file.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no certificate",
                    file.display()
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "sslmode verify-ca/verify-full needs sslrootcert=FILE: the system has no \
                     trusted roots"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// `prefer` / `require`: the certificate is not checked (libpq's meaning); the handshake's
/// signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook, made of a rustls client configuration.
#[derive(Clone)]
pub struct RustlsConnect(Arc<rustls::ClientConfig>);

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnector, Self::Error> {
        // No host name (a Unix socket, `hostaddr` alone): tokio-postgres asks for a
        // connector anyway, and uses it only if the server offers TLS.
        Ok(RustlsConnector {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string()).ok(),
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: Option<ServerName<'static>>,
}

impl TlsConnect<Socket> for RustlsConnector {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS needs the server's host name",
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// An encrypted connection.
pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_are_taken_out() {
        let o = split_options(
            "postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(
            o,
            Options {
                url: "postgres://u:p@h:5432/db?sslmode=require&application_name=x".into(),
                verify: Verify::Full,
                root_cert: Some("/etc/ca.pem".into()),
            }
        );
        let o = split_options("host=h dbname=d sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(o.url, "host=h dbname=d sslmode=require");
        assert_eq!(
            (o.verify, o.root_cert),
            (Verify::Chain, Some("/ca.pem".into()))
        );
        let o = split_options("postgres://u@h/db?sslmode=require");
        assert_eq!(o.url, "postgres://u@h/db?sslmode=require");
        assert_eq!((o.verify, o.root_cert), (Verify::Nothing, None));
        let o = split_options("postgres://u@h/db?sslrootcert=/ca.pem");
        assert_eq!(o.url, "postgres://u@h/db");
    }
}
