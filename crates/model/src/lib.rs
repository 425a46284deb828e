//! The SSM wire model: shapes, operations, error codes and input validation.
//!
//! Almost everything here is generated from botocore's SSM model (`model/` at the repository
//! root) by `cargo xtask codegen`; the hand-written parts are the small runtime pieces the
//! generated code leans on: the error type, the schema types and the validator. No logic
//! about what SSM *does* lives here.

pub mod error;
pub mod generated;
pub mod schema;
pub mod validate;
pub mod wire_enum;

pub use error::ApiError;
pub use generated::enums;
pub use generated::errors::ErrorCode;
pub use generated::operations::{Operation, Ssm, dispatch};
pub use generated::shapes;
pub use wire_enum::UnknownEnumValue;

/// Who is calling: the verified identity behind a request and the region it addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The 12-digit account the access key belongs to.
    pub account: String,
    /// The region from the signature's credential scope.
    pub region: String,
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// The caller's ARN (for `ExecutedBy`, approvers and owners).
    pub arn: String,
}

impl Caller {
    /// The ARN partition; ssmd always reports `aws`.
    pub fn partition(&self) -> &'static str {
        "aws"
    }
}

/// Deserializes a validated input value into its typed shape.
pub fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::SerializationException, format!("Could not read the request: {e}")))
}

/// Serializes an output shape to JSON bytes.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal(format!("encoding the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_meets_an_unknown_enum_value_cleanly() {
        // Validation runs first on the normal path; a caller that skipped it still gets a clean
        // error naming the enum and the value, never a panic.
        let err = decode::<shapes::CommandFilter>(json!({"key": "Colour", "value": "x"})).unwrap_err();
        assert_eq!(err.code(), ErrorCode::SerializationException);
        assert!(err.message().contains("'Colour' is not a valid CommandFilterKey value"), "{}", err.message());
        let ok = decode::<shapes::CommandFilter>(json!({"key": "Status", "value": "x"})).unwrap();
        assert_eq!(ok.key, enums::CommandFilterKey::Status);
    }
}
