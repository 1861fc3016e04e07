//! SigV4 verification on arbitrary requests: the input is split into a method, a target,
//! header lines and a body; any input is accepted or refused with an AWS error, never a
//! panic.
#![no_main]

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use qldb_local::config::Config;
use qldb_local::http::auth::Authenticator;

fuzz_target!(|data: &[u8]| {
    static AUTH: std::sync::OnceLock<Authenticator> = std::sync::OnceLock::new();
    let auth = AUTH.get_or_init(|| Authenticator::new(&Config::for_tests(".".into())).unwrap());
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, "\n\n");
    let method = parts.next().unwrap_or("POST");
    let target = parts.next().unwrap_or("/");
    let mut headers = HeaderMap::new();
    for line in parts.next().unwrap_or("").lines() {
        if let Some((k, v)) = line.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let body = parts.next().unwrap_or("").as_bytes();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let _ = auth.verify(method, target, &headers, body, now);
});
