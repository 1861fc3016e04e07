//! The `qldb-session` endpoint: `POST /` with `X-Amz-Target: QLDBSession.SendCommand`
//! (awsJson1_0). Decodes the one command of the request, runs it on the session table off
//! the executor, and encodes the one result member (with TimingInformation, ConsumedIOs).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use std::sync::Arc;

use axum::Extension;

use super::{blocking, ApiError, AppState, CallerExt, Protocol};
use crate::iam::Principal;
use crate::names::new_unique_id;
use crate::session::{Commit, Page, Param, SessionError, Usage};

pub const SEND_COMMAND_TARGET: &str = "QLDBSession.SendCommand";

const COMMANDS: [&str; 7] = [
    "StartSession",
    "StartTransaction",
    "ExecuteStatement",
    "FetchPage",
    "CommitTransaction",
    "AbortTransaction",
    "EndSession",
];

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        // Every failure is a 400 but an internal one (AccessDenied too, as QLDB answered a
        // missing qldb:SendCommand: aws-sdk-js#3081).
        let status = match &e {
            SessionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string()).in_protocol(Protocol::AwsJson)
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    SessionError::BadRequest(msg.into()).into()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn with_request_id(mut resp: Response) -> Response {
    let id = new_unique_id();
    resp.headers_mut().insert(
        "x-amzn-RequestId",
        HeaderValue::from_str(&id).expect("base62 is ascii"),
    );
    resp
}

pub(super) async fn dispatch(
    State(state): State<AppState>,
    caller: Option<Extension<CallerExt>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller.and_then(|Extension(CallerExt(c))| c);
    let target = headers
        .get("x-amz-target")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let result = match target.as_deref() {
        None => Err(ApiError::unknown_operation(
            "POST / needs an X-Amz-Target header naming a QLDBSession operation",
        )),
        Some(SEND_COMMAND_TARGET) => send_command(&state, caller, &body).await,
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation '{other}'; qldb-session has one operation, {SEND_COMMAND_TARGET}"),
        )
        .in_protocol(Protocol::AwsJson)),
    };
    with_request_id(match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    })
}

fn str_member<'a>(
    obj: &'a Map<String, Json>,
    name: &str,
    command: &str,
) -> Result<&'a str, ApiError> {
    match obj.get(name) {
        Some(Json::String(s)) => Ok(s),
        Some(Json::Null) | None => Err(bad(format!(
            "1 validation error detected: Value null at '{}.{}' failed to satisfy constraint: Member must not be null",
            lower_first(command),
            lower_first(name)
        ))),
        Some(_) => Err(bad(format!("{command}.{name} must be a string"))),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn page_json(page: Page) -> Json {
    let values: Vec<Json> = page
        .values
        .iter()
        .map(|v| json!({ "IonBinary": b64(v) }))
        .collect();
    let mut p = json!({ "Values": values });
    if let Some(t) = page.next_page_token {
        p["NextPageToken"] = Json::String(t);
    }
    p
}

fn usage_json(u: Usage) -> Json {
    json!({ "ReadIOs": u.read_ios, "WriteIOs": u.write_ios })
}

async fn send_command(
    state: &AppState,
    caller: Option<Arc<Principal>>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let parsed: Json = serde_json::from_slice(body)
        .map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?;
    let Json::Object(mut req) = parsed else {
        return Err(bad("The request body must be a JSON object"));
    };
    let present: Vec<&str> = COMMANDS
        .iter()
        .copied()
        .filter(|c| req.get(*c).is_some_and(|v| !v.is_null()))
        .collect();
    let [command] = present[..] else {
        return Err(bad(format!(
            "A SendCommand request must hold exactly one command, it holds {}",
            present.len()
        )));
    };
    let Some(Json::Object(args)) = req.remove(command) else {
        return Err(bad(format!("{command} must be a JSON object")));
    };
    let token = match command {
        "StartSession" => String::new(),
        _ => match req.get("SessionToken") {
            Some(Json::String(t)) => t.clone(),
            _ => return Err(SessionError::InvalidSession("No such session".into()).into()),
        },
    };
    // qldb:SendCommand on the session's ledger, checked from the first command after
    // StartSession (where QLDB refused it: aws-sdk-js#3081 saw StartSession succeed and
    // StartTransaction fail).
    let enforced = caller
        .as_ref()
        .filter(|p| p.policies.is_some() && command != "StartSession");
    if let Some(p) = enforced {
        if let Some(ledger) = state.sessions.ledger_of(&token) {
            let arn = state.control.ledger_arn(&ledger);
            if let Some(denied) = super::authz::denial(p, "SendCommand", &arn) {
                return Err(SessionError::AccessDenied(denied).into());
            }
        }
    }
    let decoded = Command::decode(command, &args)?;
    // Commands that touch only memory, or read a little from a file ledger, run here without
    // a hop to a blocking thread, unless their session is busy with another request.
    let quick = match command {
        "StartTransaction" => state
            .sessions
            .try_start_transaction(&token)
            .map(|r| r.map(|id| json!({ "TransactionId": id }))),
        "AbortTransaction" => state
            .sessions
            .try_abort(&token)
            .map(|r| r.map(|()| json!({}))),
        "EndSession" => state
            .sessions
            .try_end_session(&token)
            .map(|r| r.map(|()| json!({}))),
        // A statement that reads a few documents at most.
        "ExecuteStatement" => match &decoded {
            Command::ExecuteStatement {
                transaction_id,
                statement,
                parameters,
            } => state
                .sessions
                .try_execute_statement_as(
                    &token,
                    transaction_id,
                    statement,
                    parameters,
                    caller.as_deref(),
                )
                .map(|r| {
                    r.map(|(page, usage)| {
                        json!({ "FirstPage": page_json(page), "ConsumedIOs": usage_json(usage) })
                    })
                }),
            _ => None,
        },
        _ => None,
    };
    let result = match quick {
        Some(r) => r?,
        None => match decoded {
            // A read-only commit of a few reads checks them on a read connection of its own;
            // a write commit waits for its group commit without holding a thread.
            Command::CommitTransaction {
                transaction_id,
                commit_digest_b64,
                commit_digest,
            } => match state
                .sessions
                .try_commit(&token, &transaction_id, &commit_digest)
            {
                Some(done) => {
                    let usage = match done? {
                        Commit::Done(usage) => usage,
                        Commit::Queued(queued) => queued.outcome().await?,
                    };
                    committed(transaction_id, commit_digest_b64, usage)
                }
                None => {
                    let decoded = Command::CommitTransaction {
                        transaction_id,
                        commit_digest_b64,
                        commit_digest,
                    };
                    run_blocking(state, caller, decoded, token).await?
                }
            },
            decoded => run_blocking(state, caller, decoded, token).await?,
        },
    };
    finish(command, result, started)
}

/// One SendCommand command, its members decoded and validated at the wire edge.
enum Command {
    StartSession {
        ledger_name: String,
    },
    StartTransaction,
    ExecuteStatement {
        transaction_id: String,
        statement: String,
        parameters: Vec<Param>,
    },
    FetchPage {
        transaction_id: String,
        next_page_token: String,
    },
    CommitTransaction {
        transaction_id: String,
        /// As sent (echoed in the answer) and decoded.
        commit_digest_b64: String,
        commit_digest: Vec<u8>,
    },
    AbortTransaction,
    EndSession,
}

impl Command {
    /// Decodes the members of `command` (one of [`COMMANDS`]).
    fn decode(command: &str, args: &Map<String, Json>) -> Result<Command, ApiError> {
        let member = |name: &str| str_member(args, name, command).map(str::to_string);
        Ok(match command {
            "StartSession" => Command::StartSession {
                ledger_name: member("LedgerName")?,
            },
            "StartTransaction" => Command::StartTransaction,
            "ExecuteStatement" => {
                let transaction_id = member("TransactionId")?;
                let statement = member("Statement")?;
                let parameters = match args.get("Parameters") {
                    None | Some(Json::Null) => Vec::new(),
                    Some(Json::Array(items)) => items
                        .iter()
                        .enumerate()
                        .map(parse_param)
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(bad("ExecuteStatement.Parameters must be a list")),
                };
                Command::ExecuteStatement {
                    transaction_id,
                    statement,
                    parameters,
                }
            }
            "FetchPage" => Command::FetchPage {
                transaction_id: member("TransactionId")?,
                next_page_token: member("NextPageToken")?,
            },
            "CommitTransaction" => {
                let transaction_id = member("TransactionId")?;
                let commit_digest_b64 = member("CommitDigest")?;
                let commit_digest = base64::engine::general_purpose::STANDARD
                    .decode(&commit_digest_b64)
                    .map_err(|_| bad("CommitTransaction.CommitDigest is not valid base64"))?;
                Command::CommitTransaction {
                    transaction_id,
                    commit_digest_b64,
                    commit_digest,
                }
            }
            "AbortTransaction" => Command::AbortTransaction,
            _ => Command::EndSession,
        })
    }
}

/// Runs a command that may wait (for SQLite, or for its session) on a blocking thread.
async fn run_blocking(
    state: &AppState,
    caller: Option<Arc<Principal>>,
    command: Command,
    token: String,
) -> Result<Json, ApiError> {
    let sessions = state.sessions.clone();
    blocking(move || -> Result<Json, ApiError> {
        let s = &sessions;
        Ok(match command {
            Command::StartSession { ledger_name } => {
                json!({ "SessionToken": s.start_session(&ledger_name)? })
            }
            Command::StartTransaction => json!({ "TransactionId": s.start_transaction(&token)? }),
            Command::ExecuteStatement {
                transaction_id,
                statement,
                parameters,
            } => {
                let (page, usage) = s.execute_statement_as(
                    &token,
                    &transaction_id,
                    &statement,
                    parameters,
                    caller.as_deref(),
                )?;
                json!({ "FirstPage": page_json(page), "ConsumedIOs": usage_json(usage) })
            }
            Command::FetchPage {
                transaction_id,
                next_page_token,
            } => {
                let (page, usage) = s.fetch_page(&token, &transaction_id, &next_page_token)?;
                json!({ "Page": page_json(page), "ConsumedIOs": usage_json(usage) })
            }
            Command::CommitTransaction {
                transaction_id,
                commit_digest_b64,
                commit_digest,
            } => {
                let usage = s.commit(&token, &transaction_id, &commit_digest)?;
                committed(transaction_id, commit_digest_b64, usage)
            }
            Command::AbortTransaction => {
                s.abort(&token)?;
                json!({})
            }
            Command::EndSession => {
                s.end_session(&token)?;
                json!({})
            }
        })
    })
    .await
}

/// CommitTransaction's result.
fn committed(transaction_id: String, commit_digest_b64: String, usage: Usage) -> Json {
    json!({
        "TransactionId": transaction_id,
        "CommitDigest": commit_digest_b64,
        "ConsumedIOs": usage_json(usage)
    })
}

/// The response: the command's result with its TimingInformation.
fn finish(command: &str, mut result: Json, started: Instant) -> Result<Response, ApiError> {
    // Rounded up: a statement that took any time reports at least 1 ms (the Node.js
    // driver's suite checks `> 0`).
    let micros = started.elapsed().as_micros().max(1) as u64;
    result["TimingInformation"] = json!({ "ProcessingTimeMilliseconds": micros.div_ceil(1000) });
    // `{"<command>": result}`: command names need no escaping.
    let mut body = Vec::with_capacity(256);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(command.as_bytes());
    body.extend_from_slice(b"\":");
    serde_json::to_writer(&mut body, &result)
        .map_err(|e| ApiError::internal(format!("The response could not be encoded: {e}")))?;
    body.push(b'}');
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Protocol::AwsJson.content_type()),
    );
    Ok(resp)
}

fn parse_param((i, holder): (usize, &Json)) -> Result<Param, ApiError> {
    let Json::Object(h) = holder else {
        return Err(bad(format!(
            "Parameter {} must be a ValueHolder object",
            i + 1
        )));
    };
    match (h.get("IonBinary"), h.get("IonText")) {
        (Some(Json::String(b)), None) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Param::Binary)
            .map_err(|_| bad(format!("Parameter {} IonBinary is not valid base64", i + 1))),
        (None, Some(Json::String(t))) => Ok(Param::Text(t.clone())),
        _ => Err(bad(format!(
            "Parameter {} must hold exactly one of IonBinary or IonText",
            i + 1
        ))),
    }
}
