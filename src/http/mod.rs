//! The AWS wire face: one axum router serves the `qldb` restJson1 routes and the
//! `qldb-session` awsJson1_0 endpoint (`POST /` with `X-Amz-Target`).
//!
//! Every request passes, outermost first: `request_context` (request id, access log),
//! `buffer_and_authenticate` (body size limit, SigV4), then a route. Knows JSON and HTTP,
//! nothing of SQL or hashes; handlers decode, call one service function, encode.

pub mod auth;
mod authz;
mod console;
mod control;
pub mod errors;
mod session;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub use errors::{ApiError, Protocol};

use crate::control::ControlPlane;
use auth::Authenticator;

/// What every handler can reach: one `Arc`, so that the clone each extractor and middleware
/// takes per request is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub control: Arc<ControlPlane>,
    pub sessions: Arc<crate::session::Sessions>,
    pub jobs: Arc<crate::jobs::Jobs>,
    pub auth: Arc<Authenticator>,
    pub max_body_bytes: usize,
    /// `--latency-ms`: added to every API response.
    pub latency: std::time::Duration,
}

/// Builds the router of both services.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route("/", post(session::dispatch))
        .merge(
            control::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                authz::control,
            )),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            buffer_and_authenticate,
        ))
        .layer(middleware::from_fn(request_context))
        .with_state(state)
}

/// `GET /health`: unauthenticated readiness probe for containers and test harnesses.
async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    let control = state.control.clone();
    let ledgers = blocking(move || control.ledger_count()).await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "service": "qldb-local",
        "version": env!("CARGO_PKG_VERSION"),
        "ledgers": ledgers,
    }))
    .into_response())
}

async fn unknown_route(req: Request) -> ApiError {
    ApiError::unknown_operation(format!(
        "No QLDB operation matches {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "UnknownOperationException",
        format!(
            "No QLDB operation matches {} {}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// The protocol a request speaks: awsJson1_0 when it names an `X-Amz-Target`.
fn protocol_of(req: &Request) -> Protocol {
    if req.headers().contains_key("x-amz-target") {
        Protocol::AwsJson
    } else {
        Protocol::RestJson
    }
}

/// Adds `x-amzn-RequestId` (unless the handler set one) and writes the access log line.
async fn request_context(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    if !headers.contains_key("x-amzn-requestid") {
        let id = uuid::Uuid::new_v4().to_string();
        headers.insert(
            "x-amzn-RequestId",
            HeaderValue::from_str(&id).expect("uuid is ascii"),
        );
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (request_id, error) = (header("x-amzn-requestid"), header("x-amzn-errortype"));
    tracing::info!(
        %method,
        path,
        target = target.as_deref().unwrap_or(""),
        status = resp.status().as_u16(),
        error,
        request_id,
        us = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// Reads the whole body (refusing more than the limit), verifies SigV4 over it, and hands
/// the request on with the buffered body.
async fn buffer_and_authenticate(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let protocol = protocol_of(&req);
    let too_large = || {
        ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "Request body is larger than the limit of {} bytes",
                state.max_body_bytes
            ),
        )
        .in_protocol(protocol)
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return too_large();
    }
    let (mut parts, body) = req.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            // A body that breaks off or has malformed chunked framing.
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "SerializationException",
                format!("The request body could not be read: {e}"),
            )
            .in_protocol(protocol)
            .into_response();
        }
    };
    let exempt = (parts.method == Method::GET && parts.uri.path() == "/health")
        || console::is_console(&parts.method, parts.uri.path());
    if !exempt {
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let caller = match state.auth.verify(
            parts.method.as_str(),
            target,
            &parts.headers,
            &bytes,
            SystemTime::now(),
        ) {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).in_protocol(protocol).into_response(),
        };
        parts.extensions.insert(CallerExt(caller));
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !exempt && !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    resp
}

/// The authenticated caller of a request, put there by [`buffer_and_authenticate`].
#[derive(Clone)]
pub(crate) struct CallerExt(pub auth::Caller);

/// Runs blocking control-plane work off the async executor.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => {
            tracing::error!(error = %e, "a blocking task failed");
            Err(ApiError::internal("The request could not be completed"))
        }
    }
}
