//! ClientToken idempotency for every operation that has a token member.
//!
//! The first request with a token reserves it together with a fingerprint of the request (all
//! members but the token), runs, and stores its response. A retry with the same token and the
//! same input gets the stored response and creates nothing; the same token with other input is
//! `IdempotentParameterMismatch`. A request that fails releases its reservation.

use crate::{Service, store_error};
use serde_json::Value;
use ssmd_model::{ApiError, Caller, ErrorCode, Operation};
use ssmd_store::StoreError;
use std::future::Future;

/// Operations whose `ClientToken` the model does not mark as an idempotency token but SSM
/// still treats as one.
const EXTRA_TOKEN_OPS: &[Operation] = &[Operation::StartAutomationExecution, Operation::StartChangeRequestExecution];

fn token_member(op: Operation) -> Option<&'static str> {
    op.info().idempotency_token.or_else(|| EXTRA_TOKEN_OPS.contains(&op).then_some("ClientToken"))
}

fn mismatch() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotentParameterMismatch,
        "The request uses the same client token as a previous, but non-identical request. Don't reuse a client token for a different request.",
    )
}

/// Runs `f` under the idempotency rules of `op`.
pub(crate) async fn run<F, Fut>(
    svc: &Service,
    caller: &Caller,
    op: Operation,
    input: Value,
    f: F,
) -> Result<Vec<u8>, ApiError>
where
    F: FnOnce(Value) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, ApiError>>,
{
    let Some(member) = token_member(op) else {
        return f(input).await;
    };
    let Some(token) = input.get(member).and_then(Value::as_str).map(str::to_string) else {
        return f(input).await;
    };
    // Automation tokens are UUIDs and compare case-insensitively.
    let token = if EXTRA_TOKEN_OPS.contains(&op) { token.to_ascii_lowercase() } else { token };
    let (account, region, name) = (&caller.account, &caller.region, op.info().name);
    let fingerprint = ssmd_core::fingerprint::of_request(&input, member);
    match svc.store.reserve_token(account, region, name, &token, &fingerprint, svc.now_ms()).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            let record = svc.store.token_record(account, region, name, &token).await.map_err(store_error)?;
            return match record {
                Some(r) if r.fingerprint != fingerprint => Err(mismatch()),
                Some(r) => match r.response {
                    Some(resp) => Ok(resp.into_bytes()),
                    None => Err(ApiError::new(
                        ErrorCode::TooManyUpdates,
                        "A request with this client token is still in progress; retry shortly.",
                    )),
                },
                None => Err(ApiError::new(ErrorCode::TooManyUpdates, "Retry the request.")),
            };
        }
        Err(e) => return Err(store_error(e)),
    }
    match f(input).await {
        Ok(resp) => {
            let text = String::from_utf8_lossy(&resp).into_owned();
            svc.store.complete_token(account, region, name, &token, &text).await.map_err(store_error)?;
            Ok(resp)
        }
        Err(e) => {
            svc.store.release_token(account, region, name, &token).await.map_err(store_error)?;
            Err(e)
        }
    }
}
