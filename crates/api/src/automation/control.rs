//! SendAutomationSignal and StopAutomationExecution, and the one way anything outside the engine
//! changes an execution: read it, apply a machine transition, write it back if nobody wrote in
//! between (else read again), and wake the engine.

use super::{not_found, parse_state};
use crate::{Service, store_error};
use ssmd_core::automation::execution::{Execution, is_terminal};
use ssmd_core::automation::machine::{self, SignalError};
use ssmd_core::automation::runbook::Runbook;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{StateWrite, StoreError};

/// The `outputs` column of a finished execution: its document outputs and failure message.
pub(crate) fn final_outputs(x: &Execution, rb: &Runbook) -> Option<String> {
    is_terminal(x.status).then(|| {
        serde_json::json!({ "outputs": machine::document_outputs(x, rb), "failure": x.failure_message }).to_string()
    })
}

/// Applies `change` to execution `id` (of `caller`'s account, or any when `None`), retrying on
/// concurrent writes. The execution becomes due now, so the engine carries on from the new state.
pub(crate) async fn update(
    svc: &Service,
    caller: Option<&Caller>,
    id: &str,
    mut change: impl FnMut(&mut Execution, &Runbook, i64) -> Result<(), SignalError>,
    invalid: ErrorCode,
) -> Result<(), ApiError> {
    for _ in 0..50 {
        let row = match caller {
            Some(c) => svc.store.execution(&c.account, &c.region, id).await,
            None => svc.store.execution_by_id(id).await,
        }
        .map_err(store_error)?
        .ok_or_else(|| not_found(id))?;
        let mut x = parse_state(&row)?;
        let rb = svc.runbook(&row.runbook_sha).await?;
        let now = svc.now_ms();
        let before = x.clone();
        change(&mut x, &rb, now).map_err(|e| match e {
            SignalError::StepNotFound(m) => ApiError::new(ErrorCode::AutomationStepNotFoundException, m),
            SignalError::Invalid(m) => ApiError::new(invalid, m),
        })?;
        if x == before {
            // Nothing changed (a child already finished, say): no write, no wake-up.
            return Ok(());
        }
        let state = serde_json::to_string(&x).map_err(|e| ApiError::internal(e.to_string()))?;
        let outputs = final_outputs(&x, &rb);
        let terminal = is_terminal(x.status);
        let write = StateWrite {
            id,
            version: row.version,
            state: &state,
            status: x.status.as_str(),
            outputs: outputs.as_deref(),
            // Due now: the engine carries on from the new state (wherever it runs).
            due_ms: if terminal { None } else { Some(now) },
            holder: None,
            wake: if terminal { x.parent_id.as_deref() } else { None },
            admit_next: (terminal && x.parent_id.is_none()).then_some((x.account.as_str(), x.region.as_str())),
            targets: None,
            now_ms: now,
        };
        match svc.store.write_execution(&write).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::internal(format!("execution {id} kept changing; the update was not applied")))
}

pub(crate) async fn signal(
    svc: &Service,
    caller: &Caller,
    i: SendAutomationSignalRequest,
) -> Result<SendAutomationSignalResult, ApiError> {
    let payload = i.payload.unwrap_or_default();
    let who = machine::Caller { arn: &caller.arn, account: &caller.account };
    update(
        svc,
        Some(caller),
        &i.automation_execution_id,
        |x, rb, now| machine::signal(x, rb, i.signal_type, &payload, &who, now),
        ErrorCode::InvalidAutomationSignalException,
    )
    .await?;
    Ok(SendAutomationSignalResult {})
}

pub(crate) async fn stop(
    svc: &Service,
    caller: &Caller,
    i: StopAutomationExecutionRequest,
) -> Result<StopAutomationExecutionResult, ApiError> {
    let kind = i.r#type.unwrap_or(StopType::Cancel);
    update(
        svc,
        Some(caller),
        &i.automation_execution_id,
        |x, _, now| machine::stop(x, kind, now),
        ErrorCode::InvalidAutomationStatusUpdateException,
    )
    .await?;
    Ok(StopAutomationExecutionResult {})
}

/// Cancels a child execution on behalf of its parent (already finished children are left).
pub(crate) async fn cancel_child(svc: &Service, id: &str) -> Result<(), ApiError> {
    let r = update(
        svc,
        None,
        id,
        |x, _, now| if is_terminal(x.status) { Ok(()) } else { machine::stop(x, StopType::Cancel, now) },
        ErrorCode::InvalidAutomationStatusUpdateException,
    )
    .await;
    match r {
        Err(e) if e.code() == ErrorCode::InvalidAutomationStatusUpdateException => Ok(()),
        Err(e) if e.code() == ErrorCode::AutomationExecutionNotFoundException => Ok(()),
        other => other,
    }
}
