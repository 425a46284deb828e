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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ssmd_core::ManualClock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn service() -> Service {
        let dir = std::env::temp_dir().join(format!("ssmd-idem-{}", ssmd_core::ids::uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = ssmd_store::Store::open(&format!("sqlite://{}", dir.join("t.db").display())).await.unwrap();
        Service::new(store, Arc::new(ManualClock::at(1_000))).await.unwrap()
    }

    fn caller(account: &str) -> Caller {
        Caller { account: account.into(), region: "us-east-1".into(), access_key_id: "AK".into(), arn: String::new() }
    }

    #[tokio::test]
    async fn retries_replay_and_mismatches_are_refused() {
        let svc = service().await;
        let calls = AtomicUsize::new(0);
        let run = |_input: Value| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, ApiError>(format!(r#"{{"WindowId":"mw-{n}"}}"#).into_bytes()) }
        };
        let op = Operation::CreateMaintenanceWindow;
        assert_eq!(op.info().idempotency_token, Some("ClientToken"));
        let input = json!({"Name": "w", "Schedule": "rate(1 day)", "ClientToken": "tok", "Duration": 2});
        let first = run_op(&svc, "111111111111", op, input.clone(), &run).await.unwrap();
        // Same token and input (keys in another order): the first result, nothing new runs.
        let again = json!({"Duration": 2, "ClientToken": "tok", "Schedule": "rate(1 day)", "Name": "w"});
        assert_eq!(run_op(&svc, "111111111111", op, again, &run).await.unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Same token, other input.
        let other = json!({"Name": "w2", "Schedule": "rate(1 day)", "ClientToken": "tok", "Duration": 2});
        let e = run_op(&svc, "111111111111", op, other, &run).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::IdempotentParameterMismatch);
        // Tokens belong to an account: another account's identical token runs anew.
        let theirs = run_op(&svc, "222222222222", op, input.clone(), &run).await.unwrap();
        assert_ne!(theirs, first);
        // Without a token every call runs.
        let no_token = json!({"Name": "w", "Schedule": "rate(1 day)", "Duration": 2});
        run_op(&svc, "111111111111", op, no_token.clone(), &run).await.unwrap();
        run_op(&svc, "111111111111", op, no_token, &run).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn failures_release_the_token_and_automation_tokens_ignore_case() {
        let svc = service().await;
        let op = Operation::StartAutomationExecution;
        let token = "0F8E6E5A-1111-4222-8333-944445555666";
        let input = json!({"DocumentName": "AWS-Sleep", "ClientToken": token});
        let failing = |_input: Value| async { Err::<Vec<u8>, _>(ApiError::new(ErrorCode::InvalidTarget, "no")) };
        assert!(run_op(&svc, "111111111111", op, input.clone(), &failing).await.is_err());
        let ok = |_input: Value| async { Ok::<_, ApiError>(b"{\"AutomationExecutionId\":\"x\"}".to_vec()) };
        let first = run_op(&svc, "111111111111", op, input, &ok).await.unwrap();
        let lower = json!({"DocumentName": "AWS-Sleep", "ClientToken": token.to_lowercase()});
        let never = |_input: Value| async { panic!("a replay must not run the operation") };
        assert_eq!(run_op(&svc, "111111111111", op, lower, &never).await.unwrap(), first);
    }

    async fn run_op<F, Fut>(
        svc: &Service,
        account: &str,
        op: Operation,
        input: Value,
        f: &F,
    ) -> Result<Vec<u8>, ApiError>
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ApiError>>,
    {
        run(svc, &caller(account), op, input, f).await
    }
}
