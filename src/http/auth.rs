//! Server-side SigV4: re-sign the received request with the caller's secret and compare.
//!
//! The common shape — a path of plain characters without a query (every session request is
//! `POST /`), single-valued signed headers — is verified by [`fast_signature`]: the
//! canonical request built here, HMAC'd with a signing key derived once per access key and
//! scope and then cached. Anything else, and any request that does not match that way, is
//! re-signed by `aws-sigv4` (the same code the Rust SDK signs with) from exactly what the
//! client signed: the raw, still percent-encoded path and query (double encoding applied by
//! the crate), only the headers named in `SignedHeaders`, and the body bytes. Both
//! services are signed with the scope service `qldb`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::config::{AuthMode, Config};
use crate::iam::Principal;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SCOPE_SERVICE: &str = "qldb";
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Why a request was refused; each maps to one AWS error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// 403 MissingAuthenticationTokenException
    Missing,
    /// 400 IncompleteSignatureException
    Incomplete(String),
    /// 403 InvalidSignatureException
    InvalidSignature(String),
    /// 403 UnrecognizedClientException
    UnrecognizedClient,
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you \
provided. Check your AWS Secret Access Key and signing method. Consult the service documentation \
for details.";

/// Verifies SigV4 signatures against the configured credentials.
pub struct Authenticator {
    mode: AuthMode,
    principals: HashMap<String, Arc<Principal>>,
    /// Signing keys by credential (`key id/date/region/service/aws4_request`): deriving one
    /// takes four HMACs, and a client signs every request of a day with the same one.
    signing_keys: std::sync::RwLock<HashMap<String, ring::hmac::Key>>,
}

/// Cached signing keys at most (more distinct credentials empty the cache).
const SIGNING_KEYS: usize = 256;

/// Who sent a request: `None` when authentication is off (everything is allowed).
pub type Caller = Option<Arc<Principal>>;

struct AuthHeader<'a> {
    /// The whole `Credential` value.
    credential: &'a str,
    signed_headers_raw: &'a str,
    access_key_id: &'a str,
    scope_date: &'a str,
    scope_region: &'a str,
    scope_service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl Authenticator {
    /// The `--credentials` pairs (full access) and the principals of `--credentials-file`.
    pub fn new(cfg: &Config) -> Result<Self, String> {
        let mut principals: HashMap<String, Arc<Principal>> = cfg
            .credentials
            .iter()
            .map(|c| {
                let p = Principal {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: c.secret_access_key.clone(),
                    session_token: None,
                    arn: format!("arn:aws:iam::{}:user/{}", cfg.account_id, c.access_key_id),
                    policies: None,
                };
                (c.access_key_id.clone(), Arc::new(p))
            })
            .collect();
        if let Some(path) = &cfg.credentials_file {
            for p in crate::iam::load_credentials_file(path, &cfg.account_id)? {
                principals.insert(p.access_key_id.clone(), Arc::new(p));
            }
        }
        Ok(Authenticator {
            mode: cfg.auth,
            principals,
            signing_keys: Default::default(),
        })
    }

    pub fn is_off(&self) -> bool {
        self.mode == AuthMode::Off
    }

    /// Checks one request and says who sent it. `target` is the raw request target (path
    /// and query as received).
    pub fn verify(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, AuthError> {
        if self.is_off() {
            return Ok(None);
        }
        let Some(authorization) = headers.get("authorization") else {
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            if query.contains("X-Amz-Signature=") || query.contains("X-Amz-Algorithm=") {
                return Err(AuthError::Incomplete(
                    "qldb-local does not accept query-string (presigned) authentication; \
                     sign the request with an Authorization header"
                        .into(),
                ));
            }
            return Err(AuthError::Missing);
        };
        let authorization = authorization
            .to_str()
            .map_err(|_| AuthError::Incomplete("Authorization header is not valid ASCII".into()))?;
        let auth = parse_authorization(authorization)?;

        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AuthError::Incomplete(format!(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header. Authorization={authorization}"
                ))
            })?;
        let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
            ))
        })?;
        check_skew(signed_at, now)?;
        if auth.scope_date != &amz_date[..8] {
            return Err(AuthError::InvalidSignature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.scope_date,
                &amz_date[..8]
            )));
        }
        if auth.scope_service != SCOPE_SERVICE {
            return Err(AuthError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{SCOPE_SERVICE}'. "
            )));
        }
        if !auth.signed_headers.contains(&"host") {
            return Err(AuthError::Incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            ));
        }
        let principal = self
            .principals
            .get(auth.access_key_id)
            .ok_or(AuthError::UnrecognizedClient)?;
        // Temporary credentials: the session token must be the configured one. A principal
        // configured without one (the --credentials form) accepts any token, as before.
        if let Some(want) = &principal.session_token {
            let got = headers
                .get("x-amz-security-token")
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !constant_time_eq(got, want.as_bytes()) {
                return Err(AuthError::UnrecognizedClient);
            }
        }
        let secret = &principal.secret_access_key;
        let mut derived = None;
        if let Some(fast) = fast_signature(&auth, method, target, headers, body, amz_date, || {
            self.signing_key(&auth, secret, &mut derived)
        }) {
            if constant_time_eq(fast.as_bytes(), auth.signature.as_bytes()) {
                // Only a key that verified a signature is kept.
                if let Some(key) = derived {
                    self.keep_signing_key(&auth, key);
                }
                return Ok(Some(principal.clone()));
            }
        }
        let expected = expected_signature(&auth, secret, method, target, headers, body, signed_at)
            .ok_or_else(|| AuthError::InvalidSignature(MISMATCH.into()))?;
        if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
            Ok(Some(principal.clone()))
        } else {
            Err(AuthError::InvalidSignature(MISMATCH.into()))
        }
    }
}

impl Authenticator {
    /// The SigV4 signing key of `auth`'s credential scope, from the cache or derived (then
    /// also left in `derived`, for [`Authenticator::keep_signing_key`]).
    fn signing_key(
        &self,
        auth: &AuthHeader<'_>,
        secret: &str,
        derived: &mut Option<ring::hmac::Key>,
    ) -> ring::hmac::Key {
        let cached = self
            .signing_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(auth.credential)
            .cloned();
        if let Some(key) = cached {
            return key;
        }
        let key = derive_signing_key(
            secret,
            auth.scope_date,
            auth.scope_region,
            auth.scope_service,
        );
        *derived = Some(key.clone());
        key
    }

    /// Caches a signing key that verified a request.
    fn keep_signing_key(&self, auth: &AuthHeader<'_>, key: ring::hmac::Key) {
        let mut keys = self.signing_keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= SIGNING_KEYS {
            keys.clear();
        }
        keys.insert(auth.credential.to_string(), key);
    }
}

fn hmac(key: &[u8], data: &[u8]) -> ring::hmac::Tag {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data)
}

/// `kSigning` of SigV4: HMAC("AWS4" + secret, date) → region → service → "aws4_request".
fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> ring::hmac::Key {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(k_date.as_ref(), region.as_bytes());
    let k_service = hmac(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac(k_service.as_ref(), b"aws4_request");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k_signing.as_ref())
}

/// The signature of a request of the common shape, computed here; `None` for any other
/// shape (the caller then re-signs with `aws-sigv4`). The shape: no query string; a path of
/// letters, digits, `-`, `_`, `~` and single `/` (its canonical form is itself, whatever
/// the encoding mode); every signed header present once with a printable ASCII value
/// without runs of spaces (its canonical value is the value without leading and trailing
/// spaces); signed header names lowercase, strictly ascending, `x-amz-date` among them.
fn fast_signature(
    auth: &AuthHeader<'_>,
    method: &str,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    amz_date: &str,
    signing_key: impl FnOnce() -> ring::hmac::Key,
) -> Option<String> {
    let plain_path = target.starts_with('/')
        && !target.contains("//")
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'/'));
    // Names lowercase and strictly ascending, x-amz-date among them (aws-sigv4 always signs
    // it): otherwise the canonical request here could differ from aws-sigv4's.
    let names_canonical = auth
        .signed_headers
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase()))
        && auth.signed_headers.windows(2).all(|w| w[0] < w[1])
        && auth.signed_headers.contains(&"x-amz-date");
    if !plain_path || !names_canonical {
        return None;
    }
    let mut canonical = String::with_capacity(512);
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(target);
    canonical.push_str("\n\n");
    for name in &auth.signed_headers {
        let mut values = headers.get_all(*name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        let value = value.to_str().ok()?.trim_matches(' ');
        if value.contains("  ") || value.bytes().any(|b| b.is_ascii_control()) {
            return None;
        }
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(auth.signed_headers_raw);
    canonical.push('\n');
    let unsigned_payload = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
    if unsigned_payload {
        canonical.push_str("UNSIGNED-PAYLOAD");
    } else {
        push_hex(
            &mut canonical,
            ring::digest::digest(&ring::digest::SHA256, body).as_ref(),
        );
    }
    let mut string_to_sign = String::with_capacity(160);
    for part in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        auth.scope_date,
        "/",
        auth.scope_region,
        "/",
        auth.scope_service,
        "/aws4_request\n",
    ] {
        string_to_sign.push_str(part);
    }
    push_hex(
        &mut string_to_sign,
        ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref(),
    );
    let mut signature = String::with_capacity(64);
    push_hex(
        &mut signature,
        ring::hmac::sign(&signing_key(), string_to_sign.as_bytes()).as_ref(),
    );
    Some(signature)
}

/// Appends `bytes` in lowercase hex (the form SigV4 hashes and signatures take).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, AuthError> {
    let (algorithm, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported Authorization algorithm '{algorithm}'; only {ALGORITHM} is accepted. \
             Authorization={value}"
        )));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.trim()),
            Some(("SignedHeaders", v)) => signed_headers = Some(v.trim()),
            Some(("Signature", v)) => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, v) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if v.is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "{missing}Authorization={value}"
        )));
    }
    let credential = credential.unwrap_or_default();
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, scope_region, scope_service, terminator] = scope[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != "aws4_request" {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
        )));
    }
    if scope_date.len() != 8 || !scope_date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Incomplete(format!(
            "Credential scope date must be YYYYMMDD, got '{scope_date}'"
        )));
    }
    Ok(AuthHeader {
        credential,
        signed_headers_raw: signed_headers.unwrap_or_default(),
        access_key_id,
        scope_date,
        scope_region,
        scope_service,
        signed_headers: signed_headers.unwrap_or_default().split(';').collect(),
        signature: signature.unwrap_or_default(),
    })
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    if s.len() != 16 {
        return None;
    }
    PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(|t| SystemTime::from(t.assume_utc()))
}

fn format_amz_date(t: SystemTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from(t).format(fmt).unwrap_or_default()
}

fn check_skew(signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let d = format_amz_date;
    if signed_at + MAX_SKEW < now {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            d(signed_at),
            d(now - MAX_SKEW),
            d(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            d(signed_at),
            d(now + MAX_SKEW),
            d(now)
        )));
    }
    Ok(())
}

/// Re-signs the request as the client did. `None` when it cannot be reproduced (a signed
/// header that is absent or not ASCII, an unparsable target): that is a mismatch.
fn expected_signature(
    auth: &AuthHeader<'_>,
    secret: &str,
    method: &str,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    signed_at: SystemTime,
) -> Option<String> {
    let token_signed = auth.signed_headers.contains(&"x-amz-security-token");
    let token = if token_signed {
        Some(
            headers
                .get("x-amz-security-token")?
                .to_str()
                .ok()?
                .to_string(),
        )
    } else {
        None
    };
    let identity = Credentials::new(auth.access_key_id, secret, token, None, "qldb-local").into();
    let mut settings = SigningSettings::default();
    // Sign exactly the headers the client signed, including any the crate would skip.
    settings.excluded_headers = Some(Vec::<Cow<'static, str>>::new());
    settings.percent_encoding_mode = PercentEncodingMode::Double;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.scope_region)
        .name(auth.scope_service)
        .time(signed_at)
        .settings(settings)
        .build()
        .ok()?
        .into();

    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        // The crate adds these two itself (from `time` and the identity).
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let mut values = headers.get_all(*name).iter().peekable();
        values.peek()?;
        for v in values {
            signed.push((name, v.to_str().ok()?));
        }
    }
    let unsigned_payload = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD");
    let body = if unsigned_payload {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(body)
    };
    let request = SignableRequest::new(method, target, signed.into_iter(), body).ok()?;
    // The crate documents panics for inputs we have ruled out above (no host); keep a
    // malformed request from ever taking a connection down all the same.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sign(request, &params)))
        .ok()?
        .ok()
        .map(|out| out.into_parts().1)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Authenticator {
        Authenticator::new(&Config::for_tests(".".into())).unwrap()
    }

    /// Signs a request the way an SDK does, with aws-sigv4 as a client.
    fn client_sign(
        secret: &str,
        method: &str,
        target: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        at: SystemTime,
    ) -> HeaderMap {
        let identity = Credentials::new("test", secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("qldb")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut hdrs = vec![("host", "127.0.0.1:8901")];
        hdrs.extend_from_slice(extra);
        let req = SignableRequest::new(
            method,
            target,
            hdrs.clone().into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in hdrs.into_iter().chain(instructions.headers()) {
            let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            map.insert(name, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// The fast path computes the SDK's signature itself for the common shapes (so those
    /// never reach aws-sigv4) and declines the others.
    #[test]
    fn the_fast_path_matches_the_sdk_signature_and_declines_other_shapes() {
        let now = SystemTime::now();
        let a = auth();
        let body = br#"{"StartSession":{"LedgerName":"demo"}}"#;
        let session = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "QLDBSession.SendCommand"),
            ("x-amz-security-token", "tok"),
        ];
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);
        let cases: [Case<'_>; 3] = [
            ("POST", "/", &session, body),
            ("GET", "/ledgers", &[], b""),
            ("DELETE", "/ledgers/my-ledger_1", &[], b""),
        ];
        for (method, target, extra, body) in cases {
            let h = client_sign("test", method, target, extra, body, now);
            let parsed = parse_authorization(h["authorization"].to_str().unwrap()).unwrap();
            let date = h["x-amz-date"].to_str().unwrap();
            let fast = fast_signature(&parsed, method, target, &h, body, date, || {
                a.signing_key(&parsed, "test", &mut None)
            });
            assert_eq!(fast.as_deref(), Some(parsed.signature), "{method} {target}");
            assert!(a.verify(method, target, &h, body, now).is_ok());
            // Tampering is still refused (the fast path misses, and so does the crate).
            let wrong = fast_signature(&parsed, method, target, &h, b"x", date, || {
                a.signing_key(&parsed, "test", &mut None)
            });
            assert_ne!(wrong.as_deref(), Some(parsed.signature));
            assert!(a.verify(method, target, &h, b"x", now).is_err());
        }
        // A cached key is the derived key: a second request of the day verifies the same.
        let h = client_sign("test", "GET", "/ledgers", &[], b"", now);
        assert!(a.verify("GET", "/ledgers", &h, b"", now).is_ok());
        assert_eq!(a.signing_keys.read().unwrap().len(), 1);
        // Signed header lists aws-sigv4 would never verify are left to it: without
        // x-amz-date, with uppercase or repeated names.
        let h = client_sign("test", "GET", "/ledgers", &[], b"", now);
        let date = h["x-amz-date"].to_str().unwrap();
        let original = h["authorization"].to_str().unwrap();
        assert!(
            original.contains("SignedHeaders=host;x-amz-date,"),
            "{original}"
        );
        for list in [
            "host",
            "Host;x-amz-date",
            "host;host;x-amz-date",
            "x-amz-date;host",
        ] {
            let changed = original.replace(
                "SignedHeaders=host;x-amz-date,",
                &format!("SignedHeaders={list},"),
            );
            let parsed = parse_authorization(&changed).unwrap();
            let fast = fast_signature(&parsed, "GET", "/ledgers", &h, b"", date, || {
                a.signing_key(&parsed, "test", &mut None)
            });
            assert_eq!(fast, None, "{list}");
        }
        for target in ["/ledgers?max_results=1", "/tags/arn%3Aaws", "/a/./b", "//x"] {
            let h = client_sign("test", "GET", target, &[], b"", now);
            let parsed = parse_authorization(h["authorization"].to_str().unwrap()).unwrap();
            let date = h["x-amz-date"].to_str().unwrap();
            let fast = fast_signature(&parsed, "GET", target, &h, b"", date, || {
                a.signing_key(&parsed, "test", &mut None)
            });
            assert_eq!(fast, None, "{target}");
        }
    }

    #[test]
    fn accepts_a_client_signature_with_an_encoded_arn_path() {
        let now = SystemTime::now();
        let target = "/tags/arn%3Aaws%3Aqldb%3Aus-east-1%3A000000000000%3Aledger%2Fdemo?tagKeys=a%20b&tagKeys=x";
        let h = client_sign("test", "DELETE", target, &[], b"", now);
        assert!(auth().verify("DELETE", target, &h, b"", now).is_ok());
    }

    #[test]
    fn refuses_wrong_secret_tampered_body_unknown_key_and_skew() {
        let now = SystemTime::now();
        let body = br#"{"Name":"demo"}"#;
        let ct = [("content-type", "application/json")];
        let h = client_sign("wrong", "POST", "/ledgers", &ct, body, now);
        assert!(matches!(
            auth().verify("POST", "/ledgers", &h, body, now),
            Err(AuthError::InvalidSignature(_))
        ));
        let h = client_sign("test", "POST", "/ledgers", &ct, body, now);
        assert!(auth().verify("POST", "/ledgers", &h, body, now).is_ok());
        assert!(matches!(
            auth().verify("POST", "/ledgers", &h, br#"{"Name":"evil"}"#, now),
            Err(AuthError::InvalidSignature(_))
        ));
        let mut unknown = h.clone();
        let a = unknown["authorization"]
            .to_str()
            .unwrap()
            .replace("Credential=test/", "Credential=nobody/");
        unknown.insert("authorization", HeaderValue::from_str(&a).unwrap());
        assert_eq!(
            auth().verify("POST", "/ledgers", &unknown, body, now),
            Err(AuthError::UnrecognizedClient)
        );
        let late = now + Duration::from_secs(20 * 60);
        match auth().verify("POST", "/ledgers", &h, body, late) {
            Err(AuthError::InvalidSignature(m)) => {
                assert!(m.starts_with("Signature expired: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let early = now - Duration::from_secs(20 * 60);
        match auth().verify("POST", "/ledgers", &h, body, early) {
            Err(AuthError::InvalidSignature(m)) => {
                assert!(m.starts_with("Signature not yet current: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_headers_are_incomplete_not_panics() {
        let now = SystemTime::now();
        let a = auth();
        assert_eq!(
            a.verify("GET", "/ledgers", &HeaderMap::new(), b"", now),
            Err(AuthError::Missing)
        );
        for value in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/qldb/aws4_request",
            "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00",
            "Basic dXNlcjpwYXNz",
            "",
        ] {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(value).unwrap());
            h.insert("x-amz-date", HeaderValue::from_static("20261122T000000Z"));
            assert!(
                matches!(
                    a.verify("GET", "/ledgers", &h, b"", now),
                    Err(AuthError::Incomplete(_))
                ),
                "{value}"
            );
        }
        // Signed headers that are missing from the request, and no host: never a panic.
        let mut h = HeaderMap::new();
        let date = format_amz_date(now);
        h.insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
        let cred = format!("AWS4-HMAC-SHA256 Credential=test/{}/us-east-1/qldb/aws4_request, SignedHeaders=host;x-custom, Signature=00", &date[..8]);
        h.insert("authorization", HeaderValue::from_str(&cred).unwrap());
        assert!(matches!(
            a.verify("GET", "/ledgers", &h, b"", now),
            Err(AuthError::InvalidSignature(_))
        ));
        let no_host = cred.replace("host;", "");
        h.insert("authorization", HeaderValue::from_str(&no_host).unwrap());
        assert!(matches!(
            a.verify("GET", "/ledgers", &h, b"", now),
            Err(AuthError::Incomplete(_))
        ));
    }

    #[test]
    fn wrong_service_and_scope_date_are_refused() {
        let now = SystemTime::now();
        let h = client_sign("test", "GET", "/ledgers", &[], b"", now);
        let a = h["authorization"].to_str().unwrap();
        let mut other = h.clone();
        other.insert(
            "authorization",
            HeaderValue::from_str(&a.replace("/qldb/", "/s3/")).unwrap(),
        );
        assert_eq!(
            auth().verify("GET", "/ledgers", &other, b"", now),
            Err(AuthError::InvalidSignature(
                "Credential should be scoped to correct service: 'qldb'. ".into()
            ))
        );
        let date = &h["x-amz-date"].to_str().unwrap()[..8];
        let mut other = h.clone();
        other.insert(
            "authorization",
            HeaderValue::from_str(&a.replace(date, "20000101")).unwrap(),
        );
        assert!(
            matches!(auth().verify("GET", "/ledgers", &other, b"", now), Err(AuthError::InvalidSignature(m)) if m.starts_with("Date in Credential scope"))
        );
    }
}
