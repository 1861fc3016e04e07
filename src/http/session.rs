//! The `qldb-session` endpoint: `POST /` with `X-Amz-Target: QLDBSession.SendCommand`
//! (awsJson1_0). Until the session API lands, SendCommand answers a clear error.

use axum::extract::Request;
use axum::http::StatusCode;

use super::{ApiError, Protocol};

pub const SEND_COMMAND_TARGET: &str = "QLDBSession.SendCommand";

pub(super) async fn dispatch(req: Request) -> ApiError {
    let target = req
        .headers()
        .get("x-amz-target")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match target.as_deref() {
        None => ApiError::unknown_operation(
            "POST / needs an X-Amz-Target header naming a QLDBSession operation",
        ),
        Some(SEND_COMMAND_TARGET) => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplementedException",
            "SendCommand (the QLDB session API) is not implemented yet by qldb-local",
        )
        .in_protocol(Protocol::AwsJson),
        Some(other) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation '{other}'; qldb-session has one operation, {SEND_COMMAND_TARGET}"),
        )
        .in_protocol(Protocol::AwsJson),
    }
}
