//! `GET /console/`: the web console (issue 15), a page of static files embedded in the
//! binary. It is a client like any other: the page signs its API requests with SigV4 in the
//! browser from the credentials the user enters, so these files are the only thing served
//! without a signature, and they hold no data.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

/// The console's files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "aws.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/aws.js"),
    ),
    (
        "ion.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/ion.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
];

/// Whether a request is for the console's files (served without a signature).
pub(crate) fn is_console(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::GET && (path == "/console" || path.starts_with("/console/"))
}

pub(crate) async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

pub(crate) async fn index() -> Response {
    file("index.html")
}

pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

fn file(name: &str) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                // Nothing but these files and the server's own APIs.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such console file",
        )
            .into_response(),
    }
}
