//! Every operation of the service models in api-models/ is routed: none answers
//! UnknownOperationException, an HTML page, or a bodiless error. Runs the router
//! in-process with authentication off.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use qldb_local::config::{AuthMode, Config};
use qldb_local::http::router;
use serde_json::Value;
use tower::ServiceExt;

fn app(dir: &std::path::Path) -> axum::Router {
    let mut cfg = Config::for_tests(dir.to_path_buf());
    cfg.auth = AuthMode::Off;
    router(qldb_local::server::build_state(&cfg).unwrap())
}

fn model(service: &str, version: &str) -> Value {
    let path = format!(
        "{}/api-models/{service}/{version}/service-2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, body)
}

#[tokio::test]
async fn every_control_plane_operation_in_the_model_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let m = model("qldb", "2019-01-02");
    let ops = m["operations"].as_object().unwrap();
    assert_eq!(ops.len(), 20, "the qldb model has 20 operations");
    for (name, op) in ops {
        let method = op["http"]["method"].as_str().unwrap();
        let uri = op["http"]["requestUri"]
            .as_str()
            .unwrap()
            .replace("{name}", "demo")
            .replace("{exportId}", "aaaaaaaaaaaaaaaaaaaaaa")
            .replace("{streamId}", "aaaaaaaaaaaaaaaaaaaaaa")
            .replace(
                "{resourceArn}",
                "arn%3Aaws%3Aqldb%3Aus-east-1%3A000000000000%3Aledger%2Fdemo",
            );
        let req = Request::builder()
            .method(method)
            .uri(&uri)
            .header("host", "127.0.0.1:8901")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(&app, req).await;
        let code = headers
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_string());
        assert_ne!(
            code.as_deref(),
            Some("UnknownOperationException"),
            "{name}: {method} {uri} is not routed"
        );
        assert!(
            headers.contains_key("x-amzn-requestid"),
            "{name}: no request id"
        );
        if !status.is_success() {
            assert!(code.is_some(), "{name}: error without a code");
            assert!(
                body["Message"].is_string(),
                "{name}: error without a Message"
            );
        }
    }
}

#[tokio::test]
async fn every_session_operation_in_the_model_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let m = model("qldb-session", "2019-07-11");
    let prefix = m["metadata"]["targetPrefix"].as_str().unwrap();
    for name in m["operations"].as_object().unwrap().keys() {
        let req = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "127.0.0.1:8901")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("{prefix}.{name}"))
            .body(Body::from("{}"))
            .unwrap();
        let (_, headers, body) = send(&app, req).await;
        assert_ne!(
            headers.get("x-amzn-errortype").map(|v| v.to_str().unwrap()),
            Some("UnknownOperationException"),
            "{prefix}.{name} is not routed"
        );
        assert_eq!(headers["content-type"], "application/x-amz-json-1.0");
        assert!(body.is_object());
    }
}

#[tokio::test]
async fn unknown_routes_methods_and_targets_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    let cases = [
        ("GET", "/nope", None, StatusCode::NOT_FOUND),
        ("PUT", "/ledgers", None, StatusCode::METHOD_NOT_ALLOWED),
        ("POST", "/", None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/",
            Some("QLDBSession.Bogus"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/",
            Some("DynamoDB_20120810.GetItem"),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, target, expected) in cases {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "x");
        if let Some(t) = target {
            b = b.header("x-amz-target", t);
        }
        let (status, headers, body) = send(&app, b.body(Body::empty()).unwrap()).await;
        assert_eq!(status, expected, "{method} {uri} {target:?}");
        assert_eq!(headers["x-amzn-errortype"], "UnknownOperationException");
        assert_eq!(body["__type"], "UnknownOperationException");
    }
}

#[tokio::test]
async fn hostile_labels_never_touch_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for label in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "a%00b",
        "a%2Fb",
        "%FF%FE",
        "demo.sqlite",
        "x%20y",
    ] {
        for (method, uri, body) in [
            ("GET", format!("/ledgers/{label}"), ""),
            ("DELETE", format!("/ledgers/{label}"), ""),
            (
                "PATCH",
                format!("/ledgers/{label}"),
                r#"{"DeletionProtection":false}"#,
            ),
        ] {
            let req = Request::builder()
                .method(method)
                .uri(&uri)
                .header("host", "x")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            let (status, headers, _) = send(&app, req).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}");
            assert_eq!(headers["x-amzn-errortype"], "InvalidParameterException");
        }
        let req = Request::builder()
            .method("POST")
            .uri("/ledgers")
            .header("host", "x")
            .header("content-type", "application/json")
            .body(Body::from(format!(
                r#"{{"Name":"{}","PermissionsMode":"ALLOW_ALL"}}"#,
                label.replace("%2F", "/").replace("%2e", ".")
            )))
            .unwrap();
        let (status, _, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "create {label}");
    }
    let ledgers_dir = dir.path().join("ledgers");
    let count = std::fs::read_dir(&ledgers_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(count, 0, "no file was created");
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("catalog.sqlite") && n != ".lock" && n != "ledgers")
        .collect();
    assert!(entries.is_empty(), "unexpected files: {entries:?}");
}
