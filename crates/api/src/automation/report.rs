//! An execution's state in SSM's wire shapes: `AutomationExecution` (GetAutomationExecution),
//! `AutomationExecutionMetadata` (DescribeAutomationExecutions) and `StepExecution`.

use serde_json::{Map, Value};
use ssmd_core::automation::execution::{Execution, StepRecord};
use ssmd_core::automation::machine;
use ssmd_core::automation::params::to_wire;
use ssmd_core::automation::runbook::Runbook;
use ssmd_core::clock::epoch_seconds;
use ssmd_model::shapes::*;
use std::collections::BTreeMap;

fn wire(m: &Map<String, Value>) -> BTreeMap<String, Vec<String>> {
    to_wire(m)
}

/// One StepExecution.
pub(crate) fn step(r: &StepRecord) -> StepExecution {
    let inputs = r.inputs.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect());
    let p = r.props.as_ref();
    StepExecution {
        step_name: Some(r.name.clone()),
        action: Some(r.action.clone()),
        timeout_seconds: p.and_then(|p| p.timeout_seconds),
        on_failure: p.map(|p| p.on_failure.clone()),
        max_attempts: p.map(|p| p.max_attempts as i32),
        execution_start_time: r.start_ms.map(epoch_seconds),
        execution_end_time: r.end_ms.map(epoch_seconds),
        step_status: Some(r.status),
        inputs,
        outputs: (!r.outputs.is_empty()).then(|| wire(&r.outputs)),
        failure_message: r.failure_message.clone().filter(|_| r.status != AutomationExecutionStatus::Success),
        failure_details: r.failure.as_ref().map(|(stage, kind)| FailureDetails {
            failure_stage: Some(stage.clone()),
            failure_type: Some(kind.clone()),
            details: None,
        }),
        step_execution_id: Some(r.id.clone()),
        overridden_parameters: (!r.overridden.is_empty()).then(|| r.overridden.clone()),
        is_end: p.map(|p| p.is_end),
        next_step: p.and_then(|p| p.next_step.clone()),
        is_critical: p.map(|p| p.is_critical),
        valid_next_steps: (!r.valid_next.is_empty()).then(|| r.valid_next.clone()),
        parent_step_details: r.parent.as_ref().map(|pr| ParentStepDetails {
            step_execution_id: Some(pr.id.clone()),
            step_name: Some(pr.name.clone()),
            action: Some("aws:loop".into()),
            iteration: Some(pr.iteration as i32),
            iterator_value: pr.iterator_value.clone(),
        }),
        ..Default::default()
    }
}

/// What a rate-controlled parent keeps outside its state: its started targets as steps, and
/// every target's value (empty for other executions).
#[derive(Debug, Default)]
pub(crate) struct Targets {
    pub steps: Vec<StepRecord>,
    pub labels: Vec<String>,
}

fn resolved_targets(x: &Execution, t: &Targets) -> Option<ResolvedTargets> {
    x.fanout.as_ref()?;
    Some(ResolvedTargets { parameter_values: Some(t.labels.clone()), truncated: Some(false) })
}

fn targets_summary(x: &Execution) -> Option<TargetsSummary> {
    let c = &x.fanout.as_ref()?.controller;
    Some(TargetsSummary {
        total_count: Some(c.total() as i32),
        started_count: Some(c.started() as i32),
        completed_count: Some(c.completed() as i32),
        successful_count: Some(c.succeeded() as i32),
        failed_count: Some(c.failed() as i32),
    })
}

fn progress(x: &Execution, t: &Targets) -> ProgressCounters {
    use AutomationExecutionStatus as S;
    let all = || x.steps.iter().chain(&t.steps);
    let count = |s: S| all().filter(|r| r.status == s).count() as i32;
    ProgressCounters {
        total_steps: Some(all().filter(|r| r.status != S::Pending).count() as i32),
        success_steps: Some(count(S::Success)),
        failed_steps: Some(count(S::Failed)),
        cancelled_steps: Some(count(S::Cancelled)),
        timed_out_steps: Some(count(S::TimedOut)),
    }
}

fn parameters(x: &Execution) -> BTreeMap<String, Vec<String>> {
    wire(&x.parameters)
}

/// GetAutomationExecution's AutomationExecution.
pub(crate) fn execution(x: &Execution, rb: &Runbook, t: &Targets) -> AutomationExecution {
    let current = x.current_step();
    AutomationExecution {
        automation_execution_id: Some(x.id.clone()),
        document_name: Some(x.document_name.clone()),
        document_version: Some(x.document_version.clone()),
        execution_start_time: Some(epoch_seconds(x.start_ms)),
        execution_end_time: x.end_ms.map(epoch_seconds),
        automation_execution_status: Some(x.status),
        step_executions: Some(x.steps.iter().chain(&t.steps).map(step).collect()),
        step_executions_truncated: Some(false),
        parameters: Some(parameters(x)),
        outputs: Some(machine::document_outputs(x, rb)),
        failure_message: x.failure_message.clone(),
        mode: Some(x.mode),
        parent_automation_execution_id: x.parent_id.clone(),
        executed_by: Some(x.executed_by.clone()),
        current_step_name: current.map(|c| c.0.to_string()),
        current_action: current.map(|c| c.1.to_string()),
        target_parameter_name: x.echo.target_parameter_name.clone(),
        targets: x.echo.targets.clone(),
        target_maps: x.echo.target_maps.clone(),
        resolved_targets: resolved_targets(x, t),
        max_concurrency: x.echo.max_concurrency.clone(),
        max_errors: x.echo.max_errors.clone(),
        target: x.target.clone(),
        target_locations: x.echo.target_locations.clone(),
        progress_counters: Some(progress(x, t)),
        alarm_configuration: x.echo.alarm_configuration.clone(),
        variables: (!x.variables.is_empty()).then(|| wire(&x.variables)),
        targets_summary: targets_summary(x),
        ..Default::default()
    }
}

/// DescribeAutomationExecutions' AutomationExecutionMetadata.
pub(crate) fn metadata(
    x: &Execution,
    outputs: BTreeMap<String, Vec<String>>,
    t: &Targets,
) -> AutomationExecutionMetadata {
    let current = x.current_step();
    AutomationExecutionMetadata {
        automation_execution_id: Some(x.id.clone()),
        document_name: Some(x.document_name.clone()),
        document_version: Some(x.document_version.clone()),
        automation_execution_status: Some(x.status),
        execution_start_time: Some(epoch_seconds(x.start_ms)),
        execution_end_time: x.end_ms.map(epoch_seconds),
        executed_by: Some(x.executed_by.clone()),
        outputs: Some(outputs),
        mode: Some(x.mode),
        parent_automation_execution_id: x.parent_id.clone(),
        current_step_name: current.map(|c| c.0.to_string()),
        current_action: current.map(|c| c.1.to_string()),
        failure_message: x.failure_message.clone(),
        target_parameter_name: x.echo.target_parameter_name.clone(),
        targets: x.echo.targets.clone(),
        target_maps: x.echo.target_maps.clone(),
        resolved_targets: resolved_targets(x, t),
        max_concurrency: x.echo.max_concurrency.clone(),
        max_errors: x.echo.max_errors.clone(),
        target: x.target.clone(),
        automation_type: Some(x.automation_type()),
        alarm_configuration: x.echo.alarm_configuration.clone(),
        ..Default::default()
    }
}
