//! What windows did: DescribeMaintenanceWindowExecutions (ExecutedBefore / ExecutedAfter),
//! GetMaintenanceWindowExecution, DescribeMaintenanceWindowExecutionTasks,
//! GetMaintenanceWindowExecutionTask, DescribeMaintenanceWindowExecutionTaskInvocations,
//! GetMaintenanceWindowExecutionTaskInvocation, and CancelMaintenanceWindowExecution.

use super::*;
use crate::errors::stored;
use crate::pagination::page_size;
use serde_json::json;
use ssmd_store::{InvocationRunRow, TaskRunRow};
use std::collections::BTreeMap;

/// The role a task without a ServiceRoleArn runs as (SSM's service-linked role).
pub(crate) fn service_role(caller_account: &str, task: &GetMaintenanceWindowTaskResult) -> String {
    task.service_role_arn.clone().unwrap_or_else(|| {
        format!("arn:aws:iam::{caller_account}:role/aws-service-role/ssm.amazonaws.com/AWSServiceRoleForAmazonSSM")
    })
}

fn details(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

fn execution(row: WindowRunRow) -> Result<MaintenanceWindowExecution, ApiError> {
    Ok(MaintenanceWindowExecution {
        window_id: Some(row.window_id),
        window_execution_id: Some(row.id),
        status: Some(stored(&row.status)?),
        status_details: details(&row.status_details),
        start_time: row.start_ms.map(seconds),
        end_time: row.end_ms.map(seconds),
    })
}

pub(crate) async fn describe_executions(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowExecutionsRequest,
) -> Result<DescribeMaintenanceWindowExecutionsResult, ApiError> {
    let op = "DescribeMaintenanceWindowExecutions";
    let (mut before, mut after_ms) = (None, None);
    for f in i.filters.iter().flatten() {
        let (key, values) = filter_values(f);
        match key {
            "ExecutedBefore" => before = Some(filter_time(key, values)?),
            "ExecutedAfter" => after_ms = Some(filter_time(key, values)?),
            other => return Err(bad_filter_key(other, &["ExecutedBefore", "ExecutedAfter"])),
        }
    }
    // The model lists no DoesNotExistException: another account's or no window lists nothing.
    if svc.store.window(&caller.account, &caller.region, &i.window_id).await.map_err(store_error)?.is_none() {
        return Ok(DescribeMaintenanceWindowExecutionsResult { window_executions: Some(vec![]), next_token: None });
    }
    let position = svc.window_token(caller, op, i.next_token.as_deref())?;
    let position = position.as_ref().and_then(|p| Some((p.get("t")?.as_i64()?, p.get("i")?.as_str()?)));
    let size = page_size(i.max_results, 50);
    let mut rows =
        svc.store.window_runs_page(&i.window_id, before, after_ms, position, size + 1).await.map_err(store_error)?;
    let more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let next_token = match rows.last() {
        Some(last) if more => Some(svc.issue_token(caller, op, json!({"t": last.start_ms, "i": last.id}))),
        _ => None,
    };
    let runs = rows.into_iter().map(execution).collect::<Result<_, _>>()?;
    Ok(DescribeMaintenanceWindowExecutionsResult { window_executions: Some(runs), next_token })
}

pub(crate) async fn get_execution(
    svc: &Service,
    caller: &Caller,
    i: GetMaintenanceWindowExecutionRequest,
) -> Result<GetMaintenanceWindowExecutionResult, ApiError> {
    let row = svc.own_window_run(caller, &i.window_execution_id).await?;
    let tasks = svc.store.task_runs(&row.id).await.map_err(store_error)?;
    let e = execution(row)?;
    Ok(GetMaintenanceWindowExecutionResult {
        window_execution_id: e.window_execution_id,
        task_ids: Some(tasks.into_iter().map(|t| t.id).collect()),
        status: e.status,
        status_details: e.status_details,
        start_time: e.start_time,
        end_time: e.end_time,
    })
}

/// A task execution of the caller's execution.
async fn own_task_run(
    svc: &Service,
    caller: &Caller,
    execution_id: &str,
    task_id: &str,
) -> Result<(TaskRunRow, GetMaintenanceWindowTaskResult), ApiError> {
    svc.own_window_run(caller, execution_id).await?;
    let row = svc
        .store
        .task_runs(execution_id)
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|t| t.id == task_id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DoesNotExistException,
                format!("Task execution {task_id} does not exist in maintenance window execution {execution_id}"),
            )
        })?;
    let task = parse(&row.spec)?;
    Ok((row, task))
}

fn task_identity(
    row: TaskRunRow,
    task: &GetMaintenanceWindowTaskResult,
) -> Result<MaintenanceWindowExecutionTaskIdentity, ApiError> {
    Ok(MaintenanceWindowExecutionTaskIdentity {
        window_execution_id: Some(row.execution_id),
        task_execution_id: Some(row.id),
        status: Some(stored(&row.status)?),
        status_details: details(&row.status_details),
        start_time: row.start_ms.map(seconds),
        end_time: row.end_ms.map(seconds),
        task_arn: task.task_arn.clone(),
        task_type: task.task_type,
        alarm_configuration: task.alarm_configuration.clone(),
        triggered_alarms: None,
    })
}

pub(crate) async fn describe_task_executions(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowExecutionTasksRequest,
) -> Result<DescribeMaintenanceWindowExecutionTasksResult, ApiError> {
    let op = "DescribeMaintenanceWindowExecutionTasks";
    let statuses = status_filter(i.filters.as_deref().unwrap_or_default())?;
    svc.own_window_run(caller, &i.window_execution_id).await?;
    let mut out = Vec::new();
    for row in svc.store.task_runs(&i.window_execution_id).await.map_err(store_error)? {
        let task: GetMaintenanceWindowTaskResult = parse(&row.spec)?;
        let t = task_identity(row, &task)?;
        if statuses.is_empty() || t.status.is_some_and(|s| statuses.contains(&s)) {
            out.push(t);
        }
    }
    let (out, next_token) = offset_page(svc, caller, op, out, i.next_token.as_deref(), i.max_results)?;
    Ok(DescribeMaintenanceWindowExecutionTasksResult { window_execution_task_identities: Some(out), next_token })
}

pub(crate) async fn get_task_execution(
    svc: &Service,
    caller: &Caller,
    i: GetMaintenanceWindowExecutionTaskRequest,
) -> Result<GetMaintenanceWindowExecutionTaskResult, ApiError> {
    let (row, task) = own_task_run(svc, caller, &i.window_execution_id, &i.task_id).await?;
    let parameters = task_parameters(&task);
    let t = task_identity(row, &task)?;
    Ok(GetMaintenanceWindowExecutionTaskResult {
        window_execution_id: t.window_execution_id,
        task_execution_id: t.task_execution_id,
        task_arn: task.task_arn.clone(),
        service_role: Some(service_role(&caller.account, &task)),
        r#type: task.task_type,
        task_parameters: Some(vec![parameters]),
        priority: task.priority,
        max_concurrency: task.max_concurrency.clone(),
        max_errors: task.max_errors.clone(),
        status: t.status,
        status_details: t.status_details,
        start_time: t.start_time,
        end_time: t.end_time,
        alarm_configuration: task.alarm_configuration.clone(),
        triggered_alarms: None,
    })
}

/// A task's parameters as the execution reports them: its invocation parameters' document
/// parameters, or its legacy TaskParameters.
fn task_parameters(
    task: &GetMaintenanceWindowTaskResult,
) -> BTreeMap<String, MaintenanceWindowTaskParameterValueExpression> {
    let p = task.task_invocation_parameters.as_ref();
    let doc = p.and_then(|p| {
        p.run_command.as_ref().and_then(|r| r.parameters.clone()).or_else(|| p.automation.as_ref()?.parameters.clone())
    });
    match doc {
        Some(values) => values
            .into_iter()
            .map(|(k, v)| (k, MaintenanceWindowTaskParameterValueExpression { values: Some(v) }))
            .collect(),
        None => task.task_parameters.clone().unwrap_or_default(),
    }
}

fn invocation(
    row: InvocationRunRow,
    task_type: Option<MaintenanceWindowTaskType>,
) -> Result<MaintenanceWindowExecutionTaskInvocationIdentity, ApiError> {
    Ok(MaintenanceWindowExecutionTaskInvocationIdentity {
        window_execution_id: Some(row.execution_id),
        task_execution_id: Some(row.task_execution_id),
        invocation_id: Some(row.id),
        execution_id: row.run_id,
        task_type,
        parameters: Some(row.parameters),
        status: Some(stored(&row.status)?),
        status_details: details(&row.status_details),
        start_time: row.start_ms.map(seconds),
        end_time: row.end_ms.map(seconds),
        owner_information: row.owner_information,
        window_target_id: row.window_target_id,
    })
}

pub(crate) async fn describe_invocations(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowExecutionTaskInvocationsRequest,
) -> Result<DescribeMaintenanceWindowExecutionTaskInvocationsResult, ApiError> {
    let op = "DescribeMaintenanceWindowExecutionTaskInvocations";
    let statuses = status_filter(i.filters.as_deref().unwrap_or_default())?;
    let (row, task) = own_task_run(svc, caller, &i.window_execution_id, &i.task_id).await?;
    let mut out = Vec::new();
    for inv in svc.store.invocation_runs(&row.id).await.map_err(store_error)? {
        let inv = invocation(inv, task.task_type)?;
        if statuses.is_empty() || inv.status.is_some_and(|s| statuses.contains(&s)) {
            out.push(inv);
        }
    }
    let (out, next_token) = offset_page(svc, caller, op, out, i.next_token.as_deref(), i.max_results)?;
    Ok(DescribeMaintenanceWindowExecutionTaskInvocationsResult {
        window_execution_task_invocation_identities: Some(out),
        next_token,
    })
}

pub(crate) async fn get_invocation(
    svc: &Service,
    caller: &Caller,
    i: GetMaintenanceWindowExecutionTaskInvocationRequest,
) -> Result<GetMaintenanceWindowExecutionTaskInvocationResult, ApiError> {
    let (row, task) = own_task_run(svc, caller, &i.window_execution_id, &i.task_id).await?;
    let inv = svc
        .store
        .invocation_runs(&row.id)
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|v| v.id == i.invocation_id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DoesNotExistException,
                format!("Invocation {} does not exist in task execution {}", i.invocation_id, i.task_id),
            )
        })?;
    let v = invocation(inv, task.task_type)?;
    Ok(GetMaintenanceWindowExecutionTaskInvocationResult {
        window_execution_id: v.window_execution_id,
        task_execution_id: v.task_execution_id,
        invocation_id: v.invocation_id,
        execution_id: v.execution_id,
        task_type: v.task_type,
        parameters: v.parameters,
        status: v.status,
        status_details: v.status_details,
        start_time: v.start_time,
        end_time: v.end_time,
        owner_information: v.owner_information,
        window_target_id: v.window_target_id,
    })
}

pub(crate) async fn cancel(
    svc: &Service,
    caller: &Caller,
    i: CancelMaintenanceWindowExecutionRequest,
) -> Result<CancelMaintenanceWindowExecutionResult, ApiError> {
    let row = svc.own_window_run(caller, &i.window_execution_id).await?;
    // An execution that has ended is left as it is; the call still answers with its id.
    svc.store
        .poke_window_run(&row.id, MaintenanceWindowExecutionStatus::Cancelling.as_str(), "", svc.now_ms())
        .await
        .map_err(store_error)?;
    Ok(CancelMaintenanceWindowExecutionResult { window_execution_id: Some(row.id) })
}
