//! NextToken and MaxResults handling shared by every list operation.

use crate::Service;
use serde_json::Value;
use ssmd_core::token::Scope;
use ssmd_model::{ApiError, Caller, ErrorCode};

impl Service {
    /// The position a NextToken resumes after, or `None` for the first page. A forged,
    /// altered or foreign token is `InvalidNextToken`.
    pub(crate) fn open_token(&self, caller: &Caller, op: &str, token: Option<&str>) -> Result<Option<Value>, ApiError> {
        let Some(token) = token else { return Ok(None) };
        let scope = Scope { account: &caller.account, region: &caller.region, operation: op };
        self.tokens
            .open(&scope, token)
            .map(Some)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidNextToken, "The specified token isn't valid."))
    }

    /// A NextToken that resumes after `position`.
    pub(crate) fn issue_token(&self, caller: &Caller, op: &str, position: Value) -> String {
        let scope = Scope { account: &caller.account, region: &caller.region, operation: op };
        self.tokens.issue(&scope, position)
    }
}

/// The page size: `MaxResults` if given, else `default`.
pub(crate) fn page_size(max_results: Option<i32>, default: i64) -> i64 {
    max_results.map(i64::from).unwrap_or(default).max(1)
}
