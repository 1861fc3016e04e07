//! Whole requests through the router (authentication off): the first byte picks a
//! SendCommand body or a control-plane route, the rest is the body (and path). Every answer
//! is a well-formed HTTP response: 2xx, or 4xx with an AWS error code; never a 5xx, a panic
//! or a hang.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use qldb_local::config::{AuthMode, Config, Durability};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::for_tests(dir.path().to_path_buf());
        cfg.auth = AuthMode::Off;
        cfg.max_ledgers = 20;
        // Nothing here outlives the process: skip the fsync of every commit.
        cfg.durability = Durability::Relaxed;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = rt.block_on(async {
            qldb_local::http::router(qldb_local::server::build_state(&cfg).unwrap())
        });
        Fixture { rt, app, _dir: dir }
    })
}

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/ledgers"),
    ("GET", "/ledgers"),
    ("PATCH", "/ledgers/fuzz"),
    ("POST", "/ledgers/fuzz/digest"),
    ("POST", "/ledgers/fuzz/block"),
    ("POST", "/ledgers/fuzz/revision"),
    ("POST", "/ledgers/fuzz/journal-s3-exports"),
    ("POST", "/ledgers/fuzz/journal-kinesis-streams"),
    ("POST", "/tags/arn%3Aaws%3Aqldb%3Aus-east-1%3A000000000000%3Aledger%2Ffuzz"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let req = if pick % 2 == 0 {
        Request::post("/")
            .header("x-amz-target", "QLDBSession.SendCommand")
            .header("content-type", "application/x-amz-json-1.0")
            .body(Body::from(body.to_vec()))
    } else {
        let (method, path) = ROUTES[(pick as usize / 2) % ROUTES.len()];
        Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
    }
    .unwrap();
    let resp = f.rt.block_on(f.app.clone().oneshot(req)).unwrap();
    let status = resp.status();
    assert!(!status.is_server_error(), "{status} for {body:?}");
    if !status.is_success() {
        assert!(resp.headers().contains_key("x-amzn-errortype"));
    }
});
