//! restJson1 routes of the `qldb` control plane: decode labels, query and body; call one
//! [`ControlPlane`] method off the executor; encode the output as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{blocking, ApiError, AppState};
use crate::api::qldb::*;
use crate::control::{ControlError, ControlPlane};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ledgers", post(create_ledger).get(list_ledgers))
        .route(
            "/ledgers/{name}",
            get(describe_ledger)
                .patch(update_ledger)
                .delete(delete_ledger),
        )
        .route(
            "/ledgers/{name}/permissions-mode",
            axum::routing::patch(update_permissions_mode),
        )
        .route("/ledgers/{name}/digest", post(get_digest))
        .route("/ledgers/{name}/block", post(get_block))
        .route("/ledgers/{name}/revision", post(get_revision))
        .route(
            "/ledgers/{name}/journal-s3-exports",
            post(export_journal_to_s3).get(list_exports_for_ledger),
        )
        .route(
            "/ledgers/{name}/journal-s3-exports/{export_id}",
            get(describe_export),
        )
        .route("/journal-s3-exports", get(list_exports))
        .route(
            "/ledgers/{name}/journal-kinesis-streams",
            post(stream_journal_to_kinesis).get(list_streams),
        )
        .route(
            "/ledgers/{name}/journal-kinesis-streams/{stream_id}",
            get(describe_stream).delete(cancel_stream),
        )
        .route(
            "/tags/{resource_arn}",
            post(tag_resource).get(list_tags).delete(untag_resource),
        )
}

/// The model's member name of a route's path label.
fn label_member(key: &str) -> &'static str {
    match key {
        "resource_arn" => "ResourceArn",
        "export_id" => "ExportId",
        "stream_id" => "StreamId",
        _ => "Name",
    }
}

/// The first path label, percent-decoded by axum; a label that is not UTF-8 is a modeled
/// error naming that label's member.
pub(super) struct Label(String);

impl<S: Send + Sync> FromRequestParts<S> for Label {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                let member = match &e {
                    PathRejection::FailedToDeserializePathParams(d) => match d.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key } => label_member(key),
                        _ => "Name",
                    },
                    _ => "Name",
                };
                ApiError::from(ControlError::invalid_param(
                    format!(
                        "The {member} in the request path is not valid UTF-8 once percent-decoded"
                    ),
                    member,
                ))
            })?;
        Ok(Label(
            params
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default(),
        ))
    }
}

/// Reads a JSON body. An empty body is `{}`; JSON content types (or none) are accepted.
fn parse_body<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let media = ct.split(';').next().unwrap_or("").trim();
        if !(media == "application/json" || media.starts_with("application/x-amz-json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaTypeException",
                format!("Unsupported Content-Type '{media}'; send application/json"),
            ));
        }
    }
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::serialization(format!(
            "The request body is not a valid JSON object of this operation's input: {e}"
        ))
    };
    // Parse to a JSON value first: serde would otherwise read a JSON array positionally
    // into the input struct.
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| invalid(&e))?;
    if !value.is_object() {
        return Err(invalid(&"the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| invalid(&e))
}

/// Query parameters, decoded; repeated names keep every value.
fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| {
                ApiError::serialization("A query parameter is not valid UTF-8 once decoded")
            })
    };
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn page_request(raw: Option<&str>) -> Result<PageRequest, ApiError> {
    let mut page = PageRequest::default();
    for (k, v) in parse_query(raw)? {
        match k.as_str() {
            "max_results" => page.max_results = Some(v),
            "next_token" => page.next_token = Some(v),
            _ => {}
        }
    }
    Ok(page)
}

/// Runs one control-plane call off the executor and answers its output as JSON.
async fn call<T: Serialize + Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&ControlPlane) -> Result<T, ControlError> + Send + 'static,
) -> Result<Response, ApiError> {
    let control = state.control.clone();
    let out = blocking(move || f(&control)).await?;
    Ok(Json(out).into_response())
}

async fn create_ledger(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateLedgerRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| cp.create_ledger(req)).await
}

async fn list_ledgers(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let page = page_request(q.as_deref())?;
    call(&s, move |cp| cp.list_ledgers(page)).await
}

async fn describe_ledger(
    State(s): State<AppState>,
    Label(name): Label,
) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.describe_ledger(&name)).await
}

async fn update_ledger(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: UpdateLedgerRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| cp.update_ledger(&name, req)).await
}

async fn update_permissions_mode(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: UpdateLedgerPermissionsModeRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| cp.update_ledger_permissions_mode(&name, req)).await
}

async fn delete_ledger(
    State(s): State<AppState>,
    Label(name): Label,
) -> Result<Response, ApiError> {
    call(&s, move |cp| {
        cp.delete_ledger(&name).map(|()| serde_json::json!({}))
    })
    .await
}

async fn tag_resource(
    State(s): State<AppState>,
    Label(arn): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TagResourceRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| {
        cp.tag_resource(&arn, req.tags)
            .map(|()| serde_json::json!({}))
    })
    .await
}

async fn untag_resource(
    State(s): State<AppState>,
    Label(arn): Label,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let keys: Vec<String> = parse_query(q.as_deref())?
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    call(&s, move |cp| {
        cp.untag_resource(&arn, keys)
            .map(|()| serde_json::json!({}))
    })
    .await
}

async fn get_digest(State(s): State<AppState>, Label(name): Label) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.get_digest(&name)).await
}

async fn get_block(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: GetBlockRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| cp.get_block(&name, req)).await
}

async fn get_revision(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: GetRevisionRequest = parse_body(&headers, &body)?;
    call(&s, move |cp| cp.get_revision(&name, req)).await
}

async fn list_tags(State(s): State<AppState>, Label(arn): Label) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.list_tags_for_resource(&arn)).await
}

/// Both labels of a job route: the ledger name and the export or stream id.
struct Labels(String, String);

impl<S: Send + Sync> FromRequestParts<S> for Labels {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Label(name) = Label::from_request_parts(parts, state).await?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::from(ControlError::invalid_param("Invalid path", "Name")))?;
        Ok(Labels(
            name,
            params
                .into_iter()
                .nth(1)
                .map(|(_, v)| v)
                .unwrap_or_default(),
        ))
    }
}

async fn export_journal_to_s3(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: ExportJournalToS3Request = parse_body(&headers, &body)?;
    let (control, jobs) = (s.control.clone(), s.jobs.clone());
    // The task starts with the accept, even if this request's client goes away meanwhile.
    let out = blocking(move || {
        let out = control.export_journal_to_s3(&name, req)?;
        jobs.start_export(out.export_id.clone());
        Ok::<_, crate::control::ControlError>(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

async fn describe_export(
    State(s): State<AppState>,
    Labels(name, id): Labels,
) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.describe_journal_s3_export(&name, &id)).await
}

async fn list_exports(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let page = page_request(q.as_deref())?;
    call(&s, move |cp| cp.list_journal_s3_exports(None, page)).await
}

async fn list_exports_for_ledger(
    State(s): State<AppState>,
    Label(name): Label,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let page = page_request(q.as_deref())?;
    call(&s, move |cp| cp.list_journal_s3_exports(Some(&name), page)).await
}

async fn stream_journal_to_kinesis(
    State(s): State<AppState>,
    Label(name): Label,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: StreamJournalToKinesisRequest = parse_body(&headers, &body)?;
    let (control, jobs) = (s.control.clone(), s.jobs.clone());
    // The task starts with the accept, even if this request's client goes away meanwhile.
    let out = blocking(move || {
        let out = control.stream_journal_to_kinesis(&name, req)?;
        jobs.start_stream(out.stream_id.clone());
        Ok::<_, crate::control::ControlError>(out)
    })
    .await?;
    Ok(Json(out).into_response())
}

async fn describe_stream(
    State(s): State<AppState>,
    Labels(name, id): Labels,
) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.describe_journal_kinesis_stream(&name, &id)).await
}

async fn list_streams(
    State(s): State<AppState>,
    Label(name): Label,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let page = page_request(q.as_deref())?;
    call(&s, move |cp| {
        cp.list_journal_kinesis_streams_for_ledger(&name, page)
    })
    .await
}

async fn cancel_stream(
    State(s): State<AppState>,
    Labels(name, id): Labels,
) -> Result<Response, ApiError> {
    call(&s, move |cp| cp.cancel_journal_kinesis_stream(&name, &id)).await
}
