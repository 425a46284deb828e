//! The one place where domain and store errors become SSM error codes.

use ssmd_core::document::DocError;
use ssmd_model::{ApiError, ErrorCode, UnknownEnumValue};
use ssmd_store::StoreError;

/// A store failure the operation did not expect: an opaque `InternalServerError` (the detail is
/// logged by the protocol layer, never sent).
pub fn store_error(e: StoreError) -> ApiError {
    ApiError::internal(format!("store: {e}"))
}

/// Reads a model enum back from the text the store holds it as (the store is string-based; the
/// api writes `as_str()` and reads with this). A value the model does not know means the row was
/// written by something else: an opaque `InternalServerError` (the detail is logged), never a
/// panic.
pub fn stored<T: std::str::FromStr<Err = UnknownEnumValue>>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(|e| ApiError::internal(format!("store holds an unknown value: {e}")))
}

/// A document content failure.
pub fn doc_error(e: DocError) -> ApiError {
    match e {
        DocError::InvalidContent(m) => ApiError::new(ErrorCode::InvalidDocumentContent, m),
        DocError::InvalidSchemaVersion(m) => ApiError::new(ErrorCode::InvalidDocumentSchemaVersion, m),
    }
}

/// A single-violation `ValidationException` in AWS's message form.
pub fn validation(value: &str, path: &str, rule: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ValidationException,
        format!("1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: {rule}"),
    )
}
