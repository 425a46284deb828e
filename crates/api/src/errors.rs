//! The one place where domain and store errors become SSM error codes.

use ssmd_core::document::DocError;
use ssmd_model::{ApiError, ErrorCode, UnknownEnumValue};
use ssmd_store::StoreError;

/// A store failure the operation did not expect: an `InternalServerError` (the detail is logged
/// by the protocol layer, never sent). A lock timeout or a lost database connection says the
/// request is worth repeating: `InternalServerError` is the one error every SSM operation may
/// return, and its HTTP 500 is retried by every AWS SDK's default retry policy (`TooManyUpdates`,
/// which some operations model, is a 400 the SDKs do not retry).
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::LockTimeout => ApiError::internal_with(
            "The resource is being changed by another request that has not finished. Retry the request.",
            format!("store: {e}"),
        ),
        StoreError::Disconnected(_) => ApiError::internal_with(
            "The request could not be completed because the database connection was lost. Retry the request.",
            format!("store: {e}"),
        ),
        e => ApiError::internal(format!("store: {e}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_store_failures_are_internal_errors_that_say_retry_and_keep_sql_out() {
        let sql_text = "canceling statement due to lock timeout: UPDATE tags SET ...";
        for e in [StoreError::LockTimeout, StoreError::Disconnected(sql_text.into())] {
            let api = store_error(e);
            assert_eq!(api.code(), ErrorCode::InternalServerError);
            assert_eq!(api.code().status(), 500);
            assert!(api.message().contains("Retry the request"), "{}", api.message());
            assert!(!api.message().contains("UPDATE") && !api.message().contains("lock timeout"));
            assert!(api.internal_detail().is_some());
        }
        let opaque = store_error(StoreError::Db(sql_text.into()));
        assert_eq!(opaque.message(), "An internal error occurred.");
    }
}
