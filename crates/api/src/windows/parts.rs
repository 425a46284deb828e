//! A window's registered targets and tasks: Register…, Update… (partial, or whole with
//! `Replace`), GetMaintenanceWindowTask, Describe… (filters, pagination) and Deregister…
//! (`Safe` refuses a target a task still uses).
//!
//! A target is stored as its `MaintenanceWindowTarget` and a task as its
//! `GetMaintenanceWindowTaskResult`, so what the API reads back is what was written.

use super::*;
use ssmd_store::{Part, StoreError, WindowPartRow};

fn no_target(window: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::DoesNotExistException,
        format!("Maintenance window target {id} does not exist in maintenance window {window}"),
    )
}

fn no_task(window: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::DoesNotExistException,
        format!("Maintenance window task {id} does not exist in maintenance window {window}"),
    )
}

fn over_limit(what: &str, limit: i64) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceLimitExceededException,
        format!("A maintenance window can hold at most {limit} {what}."),
    )
}

/// Writes a new part, mapping the store's answers.
async fn insert(svc: &Service, caller: &Caller, part: Part, row: &WindowPartRow) -> Result<(), ApiError> {
    let (limit, what) = match part {
        Part::Target => (svc.windows.max_targets, "targets"),
        Part::Task => (svc.windows.max_tasks, "tasks"),
    };
    match svc.store.insert_window_part(&caller.account, &caller.region, part, row, limit).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(no_window(&row.window_id)),
        Err(StoreError::Conflict) => Err(over_limit(what, limit)),
        Err(e) => Err(store_error(e)),
    }
}

/// A window's targets as stored.
pub(crate) async fn targets_of(svc: &Service, window_id: &str) -> Result<Vec<MaintenanceWindowTarget>, ApiError> {
    let rows = svc.store.window_parts(Part::Target, window_id).await.map_err(store_error)?;
    rows.iter().map(|r| parse(&r.spec)).collect()
}

/// A window's tasks as stored, in priority order.
pub(crate) async fn tasks_of(svc: &Service, window_id: &str) -> Result<Vec<GetMaintenanceWindowTaskResult>, ApiError> {
    let rows = svc.store.window_parts(Part::Task, window_id).await.map_err(store_error)?;
    rows.iter().map(|r| parse(&r.spec)).collect()
}

fn check_resource_type(t: MaintenanceWindowResourceType) -> Result<(), ApiError> {
    if t == MaintenanceWindowResourceType::ResourceGroup {
        return Err(validation(
            "ssmd does not support resource groups: register RESOURCE_GROUP targets as INSTANCE targets by \
             instance id or tag instead.",
        ));
    }
    Ok(())
}

pub(crate) async fn register_target(
    svc: &Service,
    caller: &Caller,
    i: RegisterTargetWithMaintenanceWindowRequest,
) -> Result<RegisterTargetWithMaintenanceWindowResult, ApiError> {
    check_resource_type(i.resource_type)?;
    check_target_keys(&i.targets, false)?;
    let id = ssmd_core::ids::uuid();
    let spec = MaintenanceWindowTarget {
        window_id: Some(i.window_id.clone()),
        window_target_id: Some(id.clone()),
        resource_type: Some(i.resource_type),
        targets: Some(i.targets),
        owner_information: i.owner_information,
        name: i.name,
        description: i.description,
    };
    let row = WindowPartRow {
        id: id.clone(),
        window_id: i.window_id,
        priority: 0,
        spec: to_json(&spec),
        created_ms: svc.now_ms(),
    };
    insert(svc, caller, Part::Target, &row).await?;
    Ok(RegisterTargetWithMaintenanceWindowResult { window_target_id: Some(id) })
}

pub(crate) async fn update_target(
    svc: &Service,
    caller: &Caller,
    i: UpdateMaintenanceWindowTargetRequest,
) -> Result<UpdateMaintenanceWindowTargetResult, ApiError> {
    svc.own_window(caller, &i.window_id).await?;
    let replace = i.replace == Some(true);
    if replace && i.targets.is_none() {
        return Err(validation("Targets is required when Replace is true: Replace sets every field of the target."));
    }
    if let Some(t) = &i.targets {
        check_target_keys(t, false)?;
    }
    let old = targets_of(svc, &i.window_id)
        .await?
        .into_iter()
        .find(|t| t.window_target_id.as_deref() == Some(&i.window_target_id))
        .ok_or_else(|| no_target(&i.window_id, &i.window_target_id))?;
    let pick = |new: Option<String>, old: Option<String>| if replace { new } else { new.or(old) };
    let spec = MaintenanceWindowTarget {
        targets: i.targets.or(old.targets),
        owner_information: pick(i.owner_information, old.owner_information),
        name: pick(i.name, old.name),
        description: pick(i.description, old.description),
        ..old
    };
    let row = WindowPartRow {
        id: i.window_target_id.clone(),
        window_id: i.window_id.clone(),
        priority: 0,
        spec: to_json(&spec),
        created_ms: 0,
    };
    let found =
        svc.store.update_window_part(&caller.account, &caller.region, Part::Target, &row).await.map_err(store_error)?;
    if !found {
        return Err(no_target(&i.window_id, &i.window_target_id));
    }
    Ok(UpdateMaintenanceWindowTargetResult {
        window_id: spec.window_id,
        window_target_id: spec.window_target_id,
        targets: spec.targets,
        owner_information: spec.owner_information,
        name: spec.name,
        description: spec.description,
    })
}

/// Whether a task names window target `id`.
fn uses_target(task: &GetMaintenanceWindowTaskResult, id: &str) -> bool {
    task.targets
        .iter()
        .flatten()
        .any(|t| t.key.as_deref() == Some("WindowTargetIds") && t.values.iter().flatten().any(|v| v == id))
}

pub(crate) async fn deregister_target(
    svc: &Service,
    caller: &Caller,
    i: DeregisterTargetFromMaintenanceWindowRequest,
) -> Result<DeregisterTargetFromMaintenanceWindowResult, ApiError> {
    svc.own_window(caller, &i.window_id).await?;
    if i.safe == Some(true) {
        let users: Vec<String> = tasks_of(svc, &i.window_id)
            .await?
            .into_iter()
            .filter(|t| uses_target(t, &i.window_target_id))
            .filter_map(|t| t.window_task_id)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::TargetInUseException,
                format!(
                    "Maintenance window target {} is used by task(s) {}; deregister them first or deregister \
                     without Safe.",
                    i.window_target_id,
                    users.join(", ")
                ),
            ));
        }
    }
    let found = svc
        .store
        .delete_window_part(&caller.account, &caller.region, Part::Target, &i.window_id, &i.window_target_id)
        .await
        .map_err(store_error)?;
    if !found {
        return Err(no_target(&i.window_id, &i.window_target_id));
    }
    Ok(DeregisterTargetFromMaintenanceWindowResult {
        window_id: Some(i.window_id),
        window_target_id: Some(i.window_target_id),
    })
}

pub(crate) async fn describe_targets(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowTargetsRequest,
) -> Result<DescribeMaintenanceWindowTargetsResult, ApiError> {
    svc.own_window(caller, &i.window_id).await?;
    let mut targets = targets_of(svc, &i.window_id).await?;
    for f in i.filters.iter().flatten() {
        let (key, values) = filter_values(f);
        let field = |t: &MaintenanceWindowTarget| -> Option<String> {
            match key {
                "Type" => t.resource_type.map(|r| r.as_str().to_string()),
                "WindowTargetId" => t.window_target_id.clone(),
                _ => t.owner_information.clone(),
            }
        };
        if !matches!(key, "Type" | "WindowTargetId" | "OwnerInformation") {
            return Err(bad_filter_key(key, &["Type", "WindowTargetId", "OwnerInformation"]));
        }
        targets.retain(|t| field(t).is_some_and(|v| values.contains(&v)));
    }
    let (targets, next_token) =
        offset_page(svc, caller, "DescribeMaintenanceWindowTargets", targets, i.next_token.as_deref(), i.max_results)?;
    Ok(DescribeMaintenanceWindowTargetsResult { targets: Some(targets), next_token })
}

/// Checks a task as it will be stored: its targets against the window's rules, rate control
/// only with targets (and then both values), the invocation parameters of its own type.
async fn check_task(svc: &Service, w: &Window, task: &mut GetMaintenanceWindowTaskResult) -> Result<(), ApiError> {
    let task_type = task.task_type.unwrap_or(MaintenanceWindowTaskType::RunCommand);
    let targets = task.targets.clone().filter(|t| !t.is_empty());
    if let Some(targets) = &targets {
        check_target_keys(targets, true)?;
        let registered: Vec<String> =
            targets_of(svc, &w.row.id).await?.into_iter().filter_map(|t| t.window_target_id).collect();
        for t in targets {
            let key = t.key.as_deref().unwrap_or_default();
            if key == "WindowTargetIds" {
                if targets.len() > 1 {
                    return Err(validation(
                        "A task's WindowTargetIds target can't be combined with other target keys.",
                    ));
                }
                for id in t.values.iter().flatten() {
                    if !registered.contains(id) {
                        return Err(no_target(&w.row.id, id));
                    }
                }
            } else if !w.spec.allow_unassociated_targets {
                return Err(validation(format!(
                    "Maintenance window {} does not allow unassociated targets: a task's targets must be \
                     Key=WindowTargetIds with targets registered with the window (target key {key} given).",
                    w.row.id
                )));
            }
        }
        let (Some(c), Some(e)) = (&task.max_concurrency, &task.max_errors) else {
            return Err(validation("A maintenance window task with targets needs both MaxConcurrency and MaxErrors."));
        };
        ssmd_core::rate::parse_concurrency(c).map_err(|e| validation(format!("1 validation error detected: {e}")))?;
        ssmd_core::rate::parse_errors(e).map_err(|e| validation(format!("1 validation error detected: {e}")))?;
    } else {
        if task_type == MaintenanceWindowTaskType::RunCommand {
            return Err(validation("A RUN_COMMAND maintenance window task needs targets."));
        }
        if task.max_concurrency.is_some() {
            return Err(validation("Maintenance window tasks without targets don't support MaxConcurrency values."));
        }
        if task.max_errors.is_some() {
            return Err(validation("Maintenance window tasks without targets don't support MaxErrors values."));
        }
    }
    if let Some(p) = &task.task_invocation_parameters {
        let branches = [
            (p.run_command.is_some(), MaintenanceWindowTaskType::RunCommand, "RunCommand"),
            (p.automation.is_some(), MaintenanceWindowTaskType::Automation, "Automation"),
            (p.lambda.is_some(), MaintenanceWindowTaskType::Lambda, "Lambda"),
            (p.step_functions.is_some(), MaintenanceWindowTaskType::StepFunctions, "StepFunctions"),
        ];
        for (given, kind, name) in branches {
            if given && kind != task_type {
                return Err(validation(format!(
                    "TaskInvocationParameters.{name} does not go with TaskType {task_type}."
                )));
            }
        }
    }
    task.targets = targets;
    Ok(())
}

/// The value a targetless task reports for MaxConcurrency and MaxErrors.
fn targetless_default(task: &mut GetMaintenanceWindowTaskResult) {
    if task.targets.is_none() {
        task.max_concurrency = Some("1".into());
        task.max_errors = Some("1".into());
    }
}

pub(crate) async fn register_task(
    svc: &Service,
    caller: &Caller,
    i: RegisterTaskWithMaintenanceWindowRequest,
) -> Result<RegisterTaskWithMaintenanceWindowResult, ApiError> {
    let w = svc.own_window(caller, &i.window_id).await?;
    let id = ssmd_core::ids::uuid();
    let mut task = GetMaintenanceWindowTaskResult {
        window_id: Some(i.window_id.clone()),
        window_task_id: Some(id.clone()),
        targets: i.targets,
        task_arn: Some(i.task_arn),
        service_role_arn: i.service_role_arn,
        task_type: Some(i.task_type),
        task_parameters: i.task_parameters,
        task_invocation_parameters: i.task_invocation_parameters,
        priority: Some(i.priority.unwrap_or(1)),
        max_concurrency: i.max_concurrency,
        max_errors: i.max_errors,
        logging_info: i.logging_info,
        name: i.name,
        description: i.description,
        cutoff_behavior: i.cutoff_behavior,
        alarm_configuration: i.alarm_configuration,
    };
    check_task(svc, &w, &mut task).await?;
    targetless_default(&mut task);
    let row = WindowPartRow {
        id: id.clone(),
        window_id: i.window_id,
        priority: i64::from(task.priority.unwrap_or(1)),
        spec: to_json(&task),
        created_ms: svc.now_ms(),
    };
    insert(svc, caller, Part::Task, &row).await?;
    Ok(RegisterTaskWithMaintenanceWindowResult { window_task_id: Some(id) })
}

/// The caller's task `task_id` of window `window_id`.
async fn own_task(
    svc: &Service,
    caller: &Caller,
    window_id: &str,
    task_id: &str,
) -> Result<(Window, GetMaintenanceWindowTaskResult), ApiError> {
    let w = svc.own_window(caller, window_id).await?;
    let task = tasks_of(svc, window_id)
        .await?
        .into_iter()
        .find(|t| t.window_task_id.as_deref() == Some(task_id))
        .ok_or_else(|| no_task(window_id, task_id))?;
    Ok((w, task))
}

pub(crate) async fn update_task(
    svc: &Service,
    caller: &Caller,
    i: UpdateMaintenanceWindowTaskRequest,
) -> Result<UpdateMaintenanceWindowTaskResult, ApiError> {
    let (w, old) = own_task(svc, caller, &i.window_id, &i.window_task_id).await?;
    let replace = i.replace == Some(true);
    if replace && i.task_arn.is_none() {
        return Err(validation("TaskArn is required when Replace is true: Replace sets every field of the task."));
    }
    fn pick<T>(replace: bool, new: Option<T>, old: Option<T>) -> Option<T> {
        if replace { new } else { new.or(old) }
    }
    // A targetless task's reported "1"s are not the caller's values: they don't carry over.
    let (old_concurrency, old_errors) =
        if old.targets.is_some() { (old.max_concurrency, old.max_errors) } else { (None, None) };
    let targets = pick(replace, i.targets, old.targets);
    // Removing the targets (an empty list) drops rate control with them, unless given anew.
    let dropped = targets.as_ref().is_some_and(Vec::is_empty);
    let mut task = GetMaintenanceWindowTaskResult {
        window_id: old.window_id,
        window_task_id: old.window_task_id,
        targets,
        task_arn: i.task_arn.or(old.task_arn),
        service_role_arn: pick(replace, i.service_role_arn, old.service_role_arn),
        task_type: old.task_type,
        task_parameters: pick(replace, i.task_parameters, old.task_parameters),
        // Replaced as a whole when given.
        task_invocation_parameters: pick(replace, i.task_invocation_parameters, old.task_invocation_parameters),
        priority: Some(pick(replace, i.priority, old.priority).unwrap_or(1)),
        max_concurrency: if dropped { i.max_concurrency } else { pick(replace, i.max_concurrency, old_concurrency) },
        max_errors: if dropped { i.max_errors } else { pick(replace, i.max_errors, old_errors) },
        logging_info: pick(replace, i.logging_info, old.logging_info),
        name: pick(replace, i.name, old.name),
        description: pick(replace, i.description, old.description),
        cutoff_behavior: pick(replace, i.cutoff_behavior, old.cutoff_behavior),
        alarm_configuration: pick(replace, i.alarm_configuration, old.alarm_configuration),
    };
    check_task(svc, &w, &mut task).await?;
    targetless_default(&mut task);
    let row = WindowPartRow {
        id: i.window_task_id.clone(),
        window_id: i.window_id.clone(),
        priority: i64::from(task.priority.unwrap_or(1)),
        spec: to_json(&task),
        created_ms: 0,
    };
    let found =
        svc.store.update_window_part(&caller.account, &caller.region, Part::Task, &row).await.map_err(store_error)?;
    if !found {
        return Err(no_task(&i.window_id, &i.window_task_id));
    }
    Ok(UpdateMaintenanceWindowTaskResult {
        window_id: task.window_id,
        window_task_id: task.window_task_id,
        targets: task.targets,
        task_arn: task.task_arn,
        service_role_arn: task.service_role_arn,
        task_parameters: task.task_parameters,
        task_invocation_parameters: task.task_invocation_parameters,
        priority: task.priority,
        max_concurrency: task.max_concurrency,
        max_errors: task.max_errors,
        logging_info: task.logging_info,
        name: task.name,
        description: task.description,
        cutoff_behavior: task.cutoff_behavior,
        alarm_configuration: task.alarm_configuration,
    })
}

pub(crate) async fn get_task(
    svc: &Service,
    caller: &Caller,
    i: GetMaintenanceWindowTaskRequest,
) -> Result<GetMaintenanceWindowTaskResult, ApiError> {
    Ok(own_task(svc, caller, &i.window_id, &i.window_task_id).await?.1)
}

pub(crate) async fn deregister_task(
    svc: &Service,
    caller: &Caller,
    i: DeregisterTaskFromMaintenanceWindowRequest,
) -> Result<DeregisterTaskFromMaintenanceWindowResult, ApiError> {
    svc.own_window(caller, &i.window_id).await?;
    let found = svc
        .store
        .delete_window_part(&caller.account, &caller.region, Part::Task, &i.window_id, &i.window_task_id)
        .await
        .map_err(store_error)?;
    if !found {
        return Err(no_task(&i.window_id, &i.window_task_id));
    }
    Ok(DeregisterTaskFromMaintenanceWindowResult {
        window_id: Some(i.window_id),
        window_task_id: Some(i.window_task_id),
    })
}

pub(crate) async fn describe_tasks(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowTasksRequest,
) -> Result<DescribeMaintenanceWindowTasksResult, ApiError> {
    svc.own_window(caller, &i.window_id).await?;
    let mut tasks = tasks_of(svc, &i.window_id).await?;
    for f in i.filters.iter().flatten() {
        let (key, values) = filter_values(f);
        let field = |t: &GetMaintenanceWindowTaskResult| -> Option<String> {
            match key {
                "WindowTaskId" => t.window_task_id.clone(),
                "TaskArn" => t.task_arn.clone(),
                "Priority" => t.priority.map(|p| p.to_string()),
                _ => t.task_type.map(|k| k.as_str().to_string()),
            }
        };
        if !matches!(key, "WindowTaskId" | "TaskArn" | "Priority" | "TaskType") {
            return Err(bad_filter_key(key, &["WindowTaskId", "TaskArn", "Priority", "TaskType"]));
        }
        tasks.retain(|t| field(t).is_some_and(|v| values.contains(&v)));
    }
    let tasks: Vec<MaintenanceWindowTask> = tasks
        .into_iter()
        .map(|t| MaintenanceWindowTask {
            window_id: t.window_id,
            window_task_id: t.window_task_id,
            task_arn: t.task_arn,
            r#type: t.task_type,
            targets: t.targets,
            task_parameters: t.task_parameters,
            priority: t.priority,
            logging_info: t.logging_info,
            service_role_arn: t.service_role_arn,
            max_concurrency: t.max_concurrency,
            max_errors: t.max_errors,
            name: t.name,
            description: t.description,
            cutoff_behavior: t.cutoff_behavior,
            alarm_configuration: t.alarm_configuration,
        })
        .collect();
    let (tasks, next_token) =
        offset_page(svc, caller, "DescribeMaintenanceWindowTasks", tasks, i.next_token.as_deref(), i.max_results)?;
    Ok(DescribeMaintenanceWindowTasksResult { tasks: Some(tasks), next_token })
}
