//! Amazon Ion values with full fidelity: arbitrary-precision ints and decimals (negative
//! zero and trailing zeros kept), timestamps at their precision and offset, symbols distinct
//! from strings, typed nulls, annotations, duplicate struct fields in order.
//!
//! Owns: the value model ([`Value`]), the Ion 1.0 binary codec ([`binary`]) and the Ion
//! Hash of a value ([`hash`]). Knows nothing of ledgers, SQL or HTTP.

pub mod binary;
pub mod hash;
pub mod json;
pub mod text;
mod value;

pub use value::{Data, Decimal, IonType, Precision, Timestamp, Value};

/// Errors decoding Ion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Ion: {0}")]
pub struct IonError(pub String);

impl IonError {
    pub fn new(msg: impl Into<String>) -> Self {
        IonError(msg.into())
    }
}
