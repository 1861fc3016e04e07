//! IAM authorization of control-plane operations for callers of `--credentials-file` with
//! policies: each route names its `qldb:` action and the ARN it acts on. Denials are
//! `403 AccessDeniedException` with IAM's wording.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::{ApiError, AppState, CallerExt};
use crate::iam::{Decision, Principal};

/// IAM's message when `principal` may not do `qldb:<action>` on `resource`, or `None`.
pub(super) fn denial(principal: &Principal, action: &str, resource: &str) -> Option<String> {
    let action = format!("qldb:{action}");
    let reason = match principal.decide(&action, resource) {
        Decision::Allow => return None,
        Decision::ImplicitDeny => {
            format!("because no identity-based policy allows the {action} action")
        }
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
    };
    Some(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {reason}",
        principal.arn
    ))
}

/// The action a control-plane route performs.
fn action_of(method: &Method, route: &str) -> Option<&'static str> {
    let m = method.as_str();
    Some(match (m, route) {
        ("POST", "/ledgers") => "CreateLedger",
        ("GET", "/ledgers") => "ListLedgers",
        ("GET", "/ledgers/{name}") => "DescribeLedger",
        ("PATCH", "/ledgers/{name}") => "UpdateLedger",
        ("DELETE", "/ledgers/{name}") => "DeleteLedger",
        ("PATCH", "/ledgers/{name}/permissions-mode") => "UpdateLedgerPermissionsMode",
        ("POST", "/ledgers/{name}/digest") => "GetDigest",
        ("POST", "/ledgers/{name}/block") => "GetBlock",
        ("POST", "/ledgers/{name}/revision") => "GetRevision",
        ("POST", "/ledgers/{name}/journal-s3-exports") => "ExportJournalToS3",
        ("GET", "/ledgers/{name}/journal-s3-exports") => "ListJournalS3ExportsForLedger",
        ("GET", "/ledgers/{name}/journal-s3-exports/{export_id}") => "DescribeJournalS3Export",
        ("GET", "/journal-s3-exports") => "ListJournalS3Exports",
        ("POST", "/ledgers/{name}/journal-kinesis-streams") => "StreamJournalToKinesis",
        ("GET", "/ledgers/{name}/journal-kinesis-streams") => "ListJournalKinesisStreamsForLedger",
        ("GET", "/ledgers/{name}/journal-kinesis-streams/{stream_id}") => {
            "DescribeJournalKinesisStream"
        }
        ("DELETE", "/ledgers/{name}/journal-kinesis-streams/{stream_id}") => {
            "CancelJournalKinesisStream"
        }
        ("POST", "/tags/{resource_arn}") => "TagResource",
        ("GET", "/tags/{resource_arn}") => "ListTagsForResource",
        ("DELETE", "/tags/{resource_arn}") => "UntagResource",
        _ => return None,
    })
}

/// Route-layer middleware of the control routes.
pub(super) async fn control(
    State(state): State<AppState>,
    matched: MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    let caller = req
        .extensions()
        .get::<CallerExt>()
        .and_then(|c| c.0.clone())
        .filter(|p| p.policies.is_some());
    let (Some(principal), Some(action)) = (caller, action_of(req.method(), matched.as_str()))
    else {
        return next.run(req).await;
    };
    let segments: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let control = &state.control;
    let (req, resource) = match (action, segments.as_slice()) {
        ("CreateLedger", _) => {
            // The new ledger's ARN, from the (already buffered) body.
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let name = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("Name").and_then(|n| n.as_str()).map(str::to_string))
                .unwrap_or_default();
            (
                Request::from_parts(parts, Body::from(bytes)),
                control.ledger_arn(&name),
            )
        }
        ("ListLedgers" | "ListJournalS3Exports", _) => (req, "*".to_string()),
        (_, [tags, arn]) if tags == "tags" => {
            let arn = arn.clone();
            (req, arn)
        }
        (_, [_, name, streams, id]) if streams == "journal-kinesis-streams" => {
            let arn = control.stream_arn(name, id);
            (req, arn)
        }
        (_, [_, name, ..]) => {
            let arn = control.ledger_arn(name);
            (req, arn)
        }
        _ => (req, "*".to_string()),
    };
    match denial(&principal, action, &resource) {
        None => next.run(req).await,
        Some(message) => {
            ApiError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message).into_response()
        }
    }
}
