//! AWS error framing: every failure leaves the server as an `x-amzn-ErrorType` header plus
//! a JSON body with `__type`, `Message` and the error's modeled members.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::auth::AuthError;
use crate::control::ControlError;

/// Which protocol's content type an error is framed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The `qldb` control plane: `application/json`.
    RestJson,
    /// `qldb-session`: `application/x-amz-json-1.0`.
    AwsJson,
}

impl Protocol {
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::RestJson => "application/json",
            Protocol::AwsJson => "application/x-amz-json-1.0",
        }
    }
}

/// An error on its way to the wire.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub members: Vec<(&'static str, String)>,
    pub protocol: Protocol,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            members: Vec::new(),
            protocol: Protocol::RestJson,
        }
    }

    pub fn with(mut self, member: &'static str, value: impl Into<String>) -> Self {
        self.members.push((member, value.into()));
        self
    }

    pub fn in_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub fn unknown_operation(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "UnknownOperationException", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("__type".into(), Value::String(self.code.into()));
        // Only `Message`, the modeled member: a body with both spellings makes clients that
        // accept either (rusoto's `#[serde(alias)]`) fail on a duplicate field.
        body.insert("Message".into(), Value::String(self.message));
        for (k, v) in self.members {
            body.insert(k.into(), Value::String(v));
        }
        let mut resp = (self.status, Value::Object(body).to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.protocol.content_type()),
        );
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        resp
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        use ControlError::*;
        let message = e.to_string();
        match e {
            InvalidParameter { parameter_name, .. } => {
                let err = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterException",
                    message,
                );
                match parameter_name {
                    Some(p) => err.with("ParameterName", p),
                    None => err,
                }
            }
            ResourceNotFound {
                resource_type,
                resource_name,
                ..
            } => ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
                .with("ResourceType", resource_type)
                .with("ResourceName", resource_name),
            ResourceAlreadyExists {
                resource_type,
                resource_name,
                ..
            } => ApiError::new(
                StatusCode::CONFLICT,
                "ResourceAlreadyExistsException",
                message,
            )
            .with("ResourceType", resource_type)
            .with("ResourceName", resource_name),
            ResourceInUse {
                resource_type,
                resource_name,
                ..
            } => ApiError::new(StatusCode::CONFLICT, "ResourceInUseException", message)
                .with("ResourceType", resource_type)
                .with("ResourceName", resource_name),
            ResourcePreconditionNotMet {
                resource_type,
                resource_name,
                ..
            } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "ResourcePreconditionNotMetException",
                message,
            )
            .with("ResourceType", resource_type)
            .with("ResourceName", resource_name),
            LimitExceeded { resource_type, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "LimitExceededException", message)
                    .with("ResourceType", resource_type)
            }
            Internal(_) => ApiError::internal(message),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            AuthError::Incomplete(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "IncompleteSignatureException", m)
            }
            AuthError::InvalidSignature(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "InvalidSignatureException", m)
            }
            AuthError::UnrecognizedClient => ApiError::new(
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
        }
    }
}
