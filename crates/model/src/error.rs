//! `ApiError`: the one error type every operation returns, carrying a modeled error code,
//! a message and any extra members the error shape has (e.g. `ReasonCode`).

use crate::ErrorCode;
use serde_json::{Map, Value};

/// An error as the client will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone, PartialEq)]
struct Inner {
    code: ErrorCode,
    message: String,
    extra: Map<String, Value>,
    /// Detail for the log only (never sent): set for internal errors.
    internal: Option<String>,
    /// The `__type` sent instead of the code's name (errors of private operations that the
    /// public model does not have).
    type_name: Option<&'static str>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner { code, message: message.into(), extra: Map::new(), internal: None, type_name: None }))
    }

    /// An opaque `InternalServerError`; `detail` goes to the log, never to the client.
    pub fn internal(detail: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::InternalServerError, "An internal error occurred.");
        e.0.internal = Some(detail.into());
        e
    }

    /// An `InternalServerError` with a message of its own for the client (which must say
    /// nothing of ssmd's internals) and `detail` for the log.
    pub fn internal_with(message: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::InternalServerError, message);
        e.0.internal = Some(detail.into());
        e
    }

    /// The answer for a modeled operation that ssmd does not implement yet.
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            ErrorCode::UnsupportedOperationException,
            format!("ssmd does not implement the SSM operation {operation} yet."),
        )
    }

    /// Sends `type_name` as the `__type` instead of the code's name, keeping the code's HTTP
    /// status: for errors of the agent's private operations that the public model lacks (e.g.
    /// `MachineFingerprintDoesNotMatch`).
    pub fn with_type(mut self, type_name: &'static str) -> Self {
        self.0.type_name = Some(type_name);
        self
    }

    /// The `__type` the client sees.
    pub fn type_name(&self) -> &str {
        self.0.type_name.unwrap_or(self.0.code.name())
    }

    /// Adds an extra member to the error body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extra.insert(key.to_string(), value.into());
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Detail meant for the log, for internal errors.
    pub fn internal_detail(&self) -> Option<&str> {
        self.0.internal.as_deref()
    }

    /// The JSON error body: `{"__type": ..., "<Message|message>": ..., extras}`.
    pub fn body(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert("__type".into(), Value::String(self.type_name().into()));
        let key = self.0.code.message_key().unwrap_or("message");
        map.insert(key.into(), Value::String(self.0.message.clone()));
        for (k, v) in &self.0.extra {
            map.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.type_name(), self.0.message)
    }
}

impl std::error::Error for ApiError {}
