//! The control plane's error type: one variant per modeled QLDB exception, plus internal
//! failures. The HTTP edge turns each into the AWS wire error (code, status, modeled
//! members) in one place.

use crate::names::Violation;
use crate::storage::StorageError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("{message}")]
    InvalidParameter {
        message: String,
        parameter_name: Option<String>,
    },
    #[error("{message}")]
    ResourceNotFound {
        message: String,
        resource_type: String,
        resource_name: String,
    },
    #[error("{message}")]
    ResourceAlreadyExists {
        message: String,
        resource_type: String,
        resource_name: String,
    },
    #[error("{message}")]
    ResourceInUse {
        message: String,
        resource_type: String,
        resource_name: String,
    },
    #[error("{message}")]
    ResourcePreconditionNotMet {
        message: String,
        resource_type: String,
        resource_name: String,
    },
    #[error("{message}")]
    LimitExceeded {
        message: String,
        resource_type: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ControlError>;

impl ControlError {
    /// A model-constraint violation of `value` at `member` (wire name `param`).
    pub fn invalid(violation: Violation, value: &str, member: &str, param: &str) -> Self {
        ControlError::InvalidParameter {
            message: violation.message(value, member),
            parameter_name: Some(param.to_string()),
        }
    }

    /// A required member that is missing.
    pub fn missing(member: &str, param: &str) -> Self {
        ControlError::InvalidParameter {
            message: format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy \
                 constraint: Member must not be null"
            ),
            parameter_name: Some(param.to_string()),
        }
    }

    pub fn invalid_param(message: impl Into<String>, param: &str) -> Self {
        ControlError::InvalidParameter {
            message: message.into(),
            parameter_name: Some(param.to_string()),
        }
    }

    pub fn ledger_not_found(name: &str) -> Self {
        ControlError::ResourceNotFound {
            message: format!("Ledger '{name}' does not exist"),
            resource_type: "LEDGER".into(),
            resource_name: name.into(),
        }
    }
}

impl From<StorageError> for ControlError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ControlError::Internal(e.to_string())
    }
}
