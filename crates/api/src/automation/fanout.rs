//! A rate-controlled parent's targets (Targets or TargetMaps): each is a row of its own
//! (`automation_targets`), so a parent's state holds only its rate controller's counters.
//!
//! * At the start every target gets its row (value, child parameters).
//! * When the machine asks to start targets `a..b`, their rows give the children's requests;
//!   the children are inserted, and the rows marked started, in the parent's write.
//! * A child's end writes its target's row in the transaction that ends it (and wakes the
//!   parent); the parent counts ended rows it has not counted yet, marking them counted in its
//!   next write. Each costs the same at 10 targets as at 10,000.
//! * GetAutomationExecution and DescribeAutomationStepExecutions show the started targets as
//!   the parent's steps, read from the rows.

use super::start::{Origin, prepare};
use super::{caller_of, report};
use crate::errors::stored;
use crate::{Service, store_error};
use serde_json::{Value, json};
use ssmd_core::automation::execution::{Execution, StepRecord, is_terminal};
use ssmd_core::automation::machine;
use ssmd_model::ApiError;
use ssmd_model::enums::AutomationExecutionStatus as Status;
use ssmd_model::shapes::StartAutomationExecutionRequest;
use ssmd_store::{NewExecution, TargetChanges, TargetRow};
use std::collections::BTreeMap;

/// Moves the targets of a state written by an earlier version (kept in the state, with a step
/// record each) into rows.
pub(crate) fn move_kept_targets(x: &mut Execution, changes: &mut TargetChanges) {
    let Some(f) = x.fanout.as_mut() else { return };
    if f.items.is_empty() {
        return;
    }
    for (seq, item) in std::mem::take(&mut f.items).into_iter().enumerate() {
        let record = x.steps.iter().find(|r| r.fan_item == Some(seq));
        let ended = record.is_some_and(|r| is_terminal(r.status));
        let outputs = record.filter(|_| ended).map(|r| {
            let child: Value = r
                .outputs
                .get("Output")
                .and_then(Value::as_str)
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or_else(|| json!({}));
            json!({"outputs": child, "failure": r.failure_message}).to_string()
        });
        if record.is_some() {
            f.last_label = Some(item.label.clone());
        }
        let row = TargetRow {
            seq: seq as i64,
            label: item.label,
            parameters: serde_json::to_string(&item.parameters).expect("parameters serialise"),
            child_id: item.child,
            step_id: record.map(|r| r.id.clone()),
            status: record.map_or_else(|| "Pending".to_string(), |r| r.status.to_string()),
            start_ms: record.and_then(|r| r.start_ms),
            end_ms: record.and_then(|r| r.end_ms),
            outputs,
        };
        // An ended record was counted by the controller already.
        changes.moved.push((row, ended));
    }
    x.steps.retain(|r| r.fan_item.is_none());
}

/// Counts the targets whose children have ended since the parent last looked.
pub(crate) async fn count_ended(svc: &Service, x: &mut Execution, changes: &mut TargetChanges) -> Result<(), ApiError> {
    if x.fanout.is_none() {
        return Ok(());
    }
    for (seq, status) in svc.store.ended_targets(&x.id).await.map_err(store_error)? {
        if changes.reported.contains(&seq) {
            continue;
        }
        let status: Status = stored(&status)?;
        machine::target_finished(x, seq as usize, status == Status::Success);
        changes.reported.push(seq);
    }
    Ok(())
}

/// Prepares the children of targets `range`; a child that can't start fails its target instead.
pub(crate) async fn start(
    svc: &Service,
    x: &mut Execution,
    range: std::ops::Range<usize>,
    changes: &mut TargetChanges,
) -> Result<Vec<NewExecution>, ApiError> {
    let rows = svc.store.targets_between(&x.id, range.start as i64, range.end as i64).await.map_err(store_error)?;
    let from_targets = x.fanout.as_ref().is_some_and(|f| f.from_targets);
    let caller = caller_of(x);
    let mut children = Vec::new();
    for row in rows {
        let parameters: Value = serde_json::from_str(&row.parameters)
            .map_err(|e| ApiError::internal(format!("target {} of {}: {e}", row.seq, x.id)))?;
        let request = json!({
            "DocumentName": x.document_name,
            "DocumentVersion": x.document_version,
            "Parameters": parameters,
        });
        let id = ssmd_core::ids::uuid();
        let origin =
            Origin { id: id.clone(), parent: Some(x.id.clone()), target: from_targets.then(|| row.label.clone()) };
        match prepare_child(svc, &caller, &request, origin).await {
            Ok(n) => {
                children.push(n);
                changes.started.push((row.seq, id, ssmd_core::ids::uuid()));
            }
            Err(e) => {
                machine::target_finished(x, row.seq as usize, false);
                let failure = format!("The child automation could not start: {} ({})", e.message(), e.code().name());
                changes.failed.push((row.seq, ssmd_core::ids::uuid(), json!({ "failure": failure }).to_string()));
            }
        }
        if let Some(f) = x.fanout.as_mut() {
            f.last_label = Some(row.label);
        }
    }
    Ok(children)
}

/// Checks a child's start request as StartAutomationExecution does and builds the child.
pub(crate) async fn prepare_child(
    svc: &Service,
    caller: &ssmd_model::Caller,
    request: &Value,
    origin: Origin,
) -> Result<NewExecution, ApiError> {
    ssmd_model::validate::validate(ssmd_model::Operation::StartAutomationExecution.info().input, request)?;
    let req: StartAutomationExecutionRequest = ssmd_model::decode(request.clone())?;
    prepare(svc, caller, &req, origin).await
}

/// What a rate-controlled parent shows of its targets: with `steps`, its started targets as
/// step records, in order; always, every target's value (ResolvedTargets, Targets only).
pub(crate) async fn targets(svc: &Service, x: &Execution, steps: bool) -> Result<report::Targets, ApiError> {
    let Some(f) = x.fanout.as_ref() else { return Ok(report::Targets::default()) };
    if !steps && !f.from_targets {
        return Ok(report::Targets::default());
    }
    let rows = svc.store.targets(&x.id, false).await.map_err(store_error)?;
    let labels = if f.from_targets { rows.iter().map(|r| r.label.clone()).collect() } else { Vec::new() };
    let steps = if steps {
        rows.iter().filter(|r| r.step_id.is_some()).map(record).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    Ok(report::Targets { steps, labels })
}

/// A target row as the step record GetAutomationExecution shows.
fn record(row: &TargetRow) -> Result<StepRecord, ApiError> {
    let parameters: BTreeMap<String, Vec<String>> = serde_json::from_str(&row.parameters).unwrap_or_default();
    let ended: Option<Value> = row.outputs.as_deref().and_then(|o| serde_json::from_str(o).ok());
    let child_outputs: Option<BTreeMap<String, Vec<String>>> =
        ended.as_ref().and_then(|v| serde_json::from_value(v["outputs"].clone()).ok());
    let failure = ended.as_ref().and_then(|v| v["failure"].as_str().map(str::to_string));
    Ok(machine::target_record(
        row.step_id.as_deref().unwrap_or_default(),
        &row.label,
        &parameters,
        row.child_id.as_deref(),
        stored(&row.status)?,
        row.start_ms,
        row.end_ms,
        child_outputs.as_ref(),
        failure,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent written by a version that kept its targets in its state: two targets, the
    /// first ended (and counted), the second running.
    fn kept() -> Execution {
        let controller = json!({"concurrency": {"Count": 2}, "errors": {"Count": 0}, "limit": 2, "threshold": 0,
            "items": ["Succeeded", "Running"], "next": 2, "running": 1, "succeeded": 1, "failed": 0,
            "stopped": false, "cancelled": false});
        serde_json::from_value(json!({
            "id": "p", "account": "111111111111", "region": "us-east-1", "document_name": "d",
            "document_version": "1", "mode": "Auto", "status": "InProgress", "executed_by": "arn", "start_ms": 1,
            "parameters": {}, "at": "End",
            "steps": [
                {"id": "s0", "name": "a", "action": "aws:executeAutomation", "status": "Success", "start_ms": 2,
                 "end_ms": 3, "fan_item": 0, "child": "c0",
                 "outputs": {"ExecutionId": "c0", "Status": "Success", "Output": "{\"x.Out\":[\"1\"]}"}},
                {"id": "s1", "name": "b", "action": "aws:executeAutomation", "status": "InProgress",
                 "start_ms": 2, "fan_item": 1, "child": "c1", "dispatched": true}
            ],
            "fanout": {"controller": controller, "from_targets": true, "items": [
                {"label": "a", "parameters": {"Item": ["a"]}, "child": "c0"},
                {"label": "b", "parameters": {"Item": ["b"]}, "child": "c1"}]}
        }))
        .unwrap()
    }

    #[test]
    fn targets_kept_in_an_earlier_state_move_to_rows() {
        let mut x = kept();
        let mut changes = TargetChanges::default();
        move_kept_targets(&mut x, &mut changes);
        assert!(x.steps.is_empty(), "the targets' records left the state");
        let f = x.fanout.as_ref().unwrap();
        assert!(f.items.is_empty());
        assert_eq!(f.last_label.as_deref(), Some("b"));
        assert_eq!((f.controller.total(), f.controller.running()), (2, 1));
        let [(first, counted), (second, running_counted)] = &changes.moved[..] else { panic!("{changes:?}") };
        assert_eq!((first.label.as_str(), first.status.as_str(), *counted), ("a", "Success", true));
        assert_eq!(first.child_id.as_deref(), Some("c0"));
        let out: Value = serde_json::from_str(first.outputs.as_deref().unwrap()).unwrap();
        assert_eq!(out["outputs"], json!({"x.Out": ["1"]}));
        assert_eq!((second.status.as_str(), *running_counted, second.end_ms), ("InProgress", false, None));
        // Shown as before: the ended target's step carries its child's outputs.
        let r = record(first).unwrap();
        assert_eq!(r.outputs["Output"], r#"{"x.Out":["1"]}"#);
        // Moving again does nothing.
        let mut again = TargetChanges::default();
        move_kept_targets(&mut x, &mut again);
        assert!(again.moved.is_empty());
    }
}
