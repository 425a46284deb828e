//! ListCommands, ListCommandInvocations and GetCommandInvocation: filters, stable keyset pages
//! (newest command first) and the invocation output as SSM reports it.

use super::*;
use serde_json::json;
use ssmd_core::clock::{iso8601_ms, parse_iso8601};
use ssmd_model::Caller;
use ssmd_store::CommandFilter;

fn bad_filter(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidFilterKey, msg)
}

/// The store filter for a request's CommandId, InstanceId and Filters; `Status` values must be
/// one of `S` (the command or the invocation statuses).
fn filter<S: std::str::FromStr>(
    command_id: Option<&String>,
    instance_id: Option<&String>,
    filters: Option<&Vec<ssmd_model::shapes::CommandFilter>>,
) -> Result<CommandFilter, ApiError> {
    let mut f =
        CommandFilter { command_id: command_id.cloned(), instance_id: instance_id.cloned(), ..Default::default() };
    for x in filters.into_iter().flatten() {
        let time = || {
            parse_iso8601(&x.value).ok_or_else(|| {
                bad_filter(format!("The {} filter value {} is not an ISO 8601 UTC date and time.", x.key, x.value))
            })
        };
        match x.key {
            CommandFilterKey::InvokedAfter => f.invoked_after_ms = Some(time()?),
            CommandFilterKey::InvokedBefore => f.invoked_before_ms = Some(time()?),
            CommandFilterKey::DocumentName => f.document_name = Some(x.value.clone()),
            CommandFilterKey::Status if x.value.parse::<S>().is_ok() => f.statuses.push(x.value.clone()),
            CommandFilterKey::Status => {
                return Err(bad_filter(format!("The Status filter value {} is not valid.", x.value)));
            }
            CommandFilterKey::ExecutionStage => {
                f.complete = Some(match x.value.as_str() {
                    "Executing" => false,
                    "Complete" => true,
                    other => return Err(bad_filter(format!("The ExecutionStage filter value {other} is not valid."))),
                })
            }
        }
    }
    Ok(f)
}

pub(crate) async fn list_commands(
    svc: &Service,
    caller: &Caller,
    i: ListCommandsRequest,
) -> Result<ListCommandsResult, ApiError> {
    let op = "ListCommands";
    let mut f = filter::<CommandStatus>(i.command_id.as_ref(), i.instance_id.as_ref(), i.filters.as_ref())?;
    if let Some(done) = f.complete.take() {
        // A command's stage follows its status.
        let pick: Vec<&str> =
            CommandStatus::ALL.iter().filter(|s| command_is_final(**s) == done).map(CommandStatus::as_str).collect();
        f.statuses = if f.statuses.is_empty() {
            pick.iter().map(|s| s.to_string()).collect()
        } else {
            f.statuses.into_iter().filter(|s| pick.contains(&s.as_str())).collect()
        };
        if f.statuses.is_empty() {
            return Ok(ListCommandsResult { commands: Some(vec![]), next_token: None });
        }
    }
    let after = svc.open_token(caller, op, i.next_token.as_deref())?;
    let after = after.as_ref().map(|p| (p["t"].as_i64().unwrap_or(0), p["id"].as_str().unwrap_or_default()));
    let size = crate::pagination::page_size(i.max_results, 50);
    let mut rows =
        svc.store.commands_page(&caller.account, &caller.region, &f, after, size + 1).await.map_err(store_error)?;
    let next = (rows.len() as i64 > size).then(|| {
        rows.truncate(size as usize);
        let last = &rows[rows.len() - 1];
        svc.issue_token(caller, op, json!({"t": last.requested_ms, "id": last.id}))
    });
    Ok(ListCommandsResult {
        commands: Some(rows.iter().map(command_shape).collect::<Result<_, ApiError>>()?),
        next_token: next,
    })
}

pub(crate) async fn list_invocations(
    svc: &Service,
    caller: &Caller,
    i: ListCommandInvocationsRequest,
) -> Result<ListCommandInvocationsResult, ApiError> {
    let op = "ListCommandInvocations";
    let f = filter::<InvStatus>(i.command_id.as_ref(), i.instance_id.as_ref(), i.filters.as_ref())?;
    let after = svc.open_token(caller, op, i.next_token.as_deref())?;
    let after = after
        .as_ref()
        .map(|p| (p["t"].as_i64().unwrap_or(0), p["id"].as_str().unwrap_or_default(), p["seq"].as_i64().unwrap_or(0)));
    let size = crate::pagination::page_size(i.max_results, 50);
    let mut rows =
        svc.store.invocations_page(&caller.account, &caller.region, &f, after, size + 1).await.map_err(store_error)?;
    let next = (rows.len() as i64 > size).then(|| {
        rows.truncate(size as usize);
        let last = &rows[rows.len() - 1];
        svc.issue_token(caller, op, json!({"t": last.requested_ms, "id": last.command_id, "seq": last.seq}))
    });
    let mut specs: HashMap<String, Command> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        if !specs.contains_key(&r.command_id) {
            let c = svc
                .store
                .command(&caller.account, &caller.region, &r.command_id)
                .await
                .map_err(store_error)?
                .ok_or_else(invalid_command)?;
            specs.insert(r.command_id.clone(), spec(&c));
        }
        out.push(invocation_shape(&specs[&r.command_id], r, i.details.unwrap_or(false))?);
    }
    Ok(ListCommandInvocationsResult { command_invocations: Some(out), next_token: next })
}

/// `PT1.234S`, SSM's way of writing an elapsed time.
fn elapsed(ms: i64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

pub(crate) async fn get_invocation(
    svc: &Service,
    caller: &Caller,
    i: GetCommandInvocationRequest,
) -> Result<GetCommandInvocationResult, ApiError> {
    let c = svc
        .store
        .command(&caller.account, &caller.region, &i.command_id)
        .await
        .map_err(store_error)?
        .ok_or_else(invalid_command)?;
    let inv = svc
        .store
        .invocation(&caller.account, &caller.region, &i.command_id, &i.instance_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvocationDoesNotExist,
                format!("Command {} was not sent to instance {}.", i.command_id, i.instance_id),
            )
        })?;
    let spec = spec(&c);
    let list = plugins(&inv)?;
    // One plugin's view (named, or the only one), else the invocation's.
    let plugin = match &i.plugin_name {
        Some(name) => Some(list.iter().find(|p| &p.name == name).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidPluginName,
                format!("The plugin name {name} is not valid for this command."),
            )
        })?),
        // A one-step document's step is the invocation's view; with several, the invocation's
        // own (derived from them) is.
        None => match &list[..] {
            [only] if !only.placeholder => Some(only.clone()),
            _ => None,
        },
    };
    let (status, details, code, start, end, stdout, stderr) = match &plugin {
        Some(p) => (
            plugin_as_invocation(p.status),
            p.status_details.clone(),
            p.response_code,
            p.start_ms.or(inv.started_ms),
            p.end_ms,
            p.stdout.clone(),
            p.stderr.clone(),
        ),
        None => (
            invocation_status(&inv)?,
            inv.status_details.clone(),
            inv.response_code,
            inv.started_ms,
            inv.ended_ms,
            inv.stdout.clone(),
            inv.stderr.clone(),
        ),
    };
    // A plugin the node last reported running shows its invocation's state once that is being
    // cancelled or has ended without the plugin's own result (cancelled, undeliverable).
    let settled = |s: InvStatus| is_final(s) || s == InvStatus::Cancelling;
    let inv_status = invocation_status(&inv)?;
    let (status, details) = if plugin.is_some() && !settled(status) && settled(inv_status) {
        (inv_status, inv.status_details.clone())
    } else {
        (status, details)
    };
    Ok(GetCommandInvocationResult {
        command_id: Some(inv.command_id.clone()),
        instance_id: Some(inv.instance_id.clone()),
        comment: Some(spec.comment.clone().unwrap_or_default()),
        document_name: spec.document_name.clone(),
        document_version: spec.document_version.clone(),
        plugin_name: Some(
            plugin.as_ref().map(|p| p.name.clone()).unwrap_or_else(|| i.plugin_name.clone().unwrap_or_default()),
        ),
        response_code: Some(code as i32),
        execution_start_date_time: Some(start.map(iso8601_ms).unwrap_or_default()),
        execution_elapsed_time: Some(match (start, end) {
            (Some(s), Some(e)) => elapsed(e - s),
            _ => String::new(),
        }),
        execution_end_date_time: Some(end.map(iso8601_ms).unwrap_or_default()),
        status: Some(status),
        status_details: Some(details),
        standard_output_content: Some(stdout),
        standard_output_url: Some(String::new()),
        standard_error_content: Some(stderr),
        standard_error_url: Some(String::new()),
        cloud_watch_output_config: spec.cloud_watch_output_config.clone(),
    })
}

/// A finished command as Automation's `aws:runCommand` reports it: its status, and the first
/// node's response code and plugin output.
pub(crate) async fn first_result(svc: &Service, c: &CommandRow) -> ssmd_core::automation::machine::Outcome {
    let f = CommandFilter { command_id: Some(c.id.clone()), ..Default::default() };
    let first =
        svc.store.invocations_page(&c.account, &c.region, &f, None, 1).await.ok().and_then(|v| v.into_iter().next());
    let (response_code, plugins) = match &first {
        Some(i) => (i.response_code, plugins(i)),
        None => (-1, Ok(vec![])),
    };
    match (command_status(c), plugins) {
        (Ok(status), Ok(plugins)) => ssmd_core::automation::machine::Outcome::Command {
            id: c.id.clone(),
            status,
            response_code,
            output: reply::reported(&plugins).iter().map(|p| p.output.as_str()).collect::<Vec<_>>().join("\n"),
        },
        (Err(e), _) | (_, Err(e)) => {
            or_log::<()>(Err(e));
            ssmd_core::automation::machine::Outcome::failed(format!("The command {} could not be read back.", c.id))
        }
    }
}
