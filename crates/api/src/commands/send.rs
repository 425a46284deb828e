//! SendCommand: checks the document and parameters, resolves the nodes, stores the command with
//! one Pending invocation per node (so GetCommandInvocation answers at once), and queues the
//! messages of the first MaxConcurrency nodes.

use super::*;
use serde_json::{Value, json};
use ssmd_core::automation::params::{ParamError, resolve_parameters};
use ssmd_core::clock::epoch_seconds;
use ssmd_core::document;
use ssmd_model::Caller;
use ssmd_store::NewCommand;

/// The delivery timeout when SendCommand names none (seconds).
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 3600;

fn invalid_parameters(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameters, msg)
}

fn param_error(e: ParamError) -> ApiError {
    invalid_parameters(e.to_string())
}

/// How long the command may run on a node (seconds): the sum of its steps' time limits, as the
/// agent applies them — `timeoutSeconds` of each 1.2 plugin property or 2.x step, `{{ param }}`
/// resolved, 3600 when absent or outside 5–172800 — or 3600 for a document that declares none.
/// With the delivery timeout it makes the command's total timeout (`ExpiresAfter`).
fn execution_timeout(content: &Value, values: &serde_json::Map<String, Value>) -> i64 {
    let secs = |v: Option<&Value>| -> i64 {
        let v = match v {
            Some(Value::String(t)) => {
                let name = t.trim().strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim);
                match name {
                    Some(n) => values.get(n),
                    None => v,
                }
            }
            other => other,
        };
        let n = match v {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(t)) => t.trim().parse().ok(),
            _ => None,
        };
        n.filter(|t| (5..=172_800).contains(t)).unwrap_or(3600)
    };
    let mut steps: Vec<i64> = Vec::new();
    if let Some(plugins) = content.get("runtimeConfig").and_then(Value::as_object) {
        for plugin in plugins.values() {
            match plugin.get("properties") {
                Some(Value::Array(props)) => steps.extend(props.iter().map(|p| secs(p.get("timeoutSeconds")))),
                Some(p @ Value::Object(_)) => steps.push(secs(p.get("timeoutSeconds"))),
                _ => {}
            }
        }
    }
    for step in content.get("mainSteps").and_then(Value::as_array).into_iter().flatten() {
        let limit = step.get("inputs").and_then(|i| i.get("timeoutSeconds")).or_else(|| step.get("timeoutSeconds"));
        steps.push(secs(limit));
    }
    if steps.is_empty() { 3600 } else { steps.iter().sum() }
}

/// SendCommand.
pub(crate) async fn send(svc: &Service, caller: &Caller, i: SendCommandRequest) -> Result<SendCommandResult, ApiError> {
    send_with_id(svc, caller, i, ssmd_core::ids::uuid()).await
}

/// Sends a command with a chosen id (Automation's `aws:runCommand` picks it before it acts, so
/// a step resumed after a restart finds its command instead of sending another).
pub(crate) async fn send_with_id(
    svc: &Service,
    caller: &Caller,
    i: SendCommandRequest,
    id: String,
) -> Result<SendCommandResult, ApiError> {
    let nodes = match (&i.instance_ids, &i.targets) {
        (Some(ids), None) if !ids.is_empty() => svc.resolve_instance_ids(caller, ids).await?,
        (None, Some(t)) if !t.is_empty() => svc.resolve_targets(caller, t).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                "InstanceIds and Targets can't be used together: name the nodes one way or the other.",
            ));
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                "Either InstanceIds or Targets must be specified.",
            ));
        }
    };
    let resolved = svc.resolve_document(caller, &i.document_name, i.document_version.as_deref(), None).await?;
    if resolved.doc_type()? != DocumentType::Command {
        return Err(ApiError::new(
            ErrorCode::InvalidDocument,
            format!(
                "Document {} is of type {}, not Command: Run Command runs Command documents.",
                i.document_name, resolved.doc.doc_type
            ),
        ));
    }
    if let Some(hash) = &i.document_hash {
        if i.document_hash_type == Some(DocumentHashType::Sha1) {
            return Err(ApiError::new(
                ErrorCode::InvalidDocument,
                "ssmd documents carry Sha256 hashes only; Sha1 is not supported.",
            ));
        }
        if !hash.eq_ignore_ascii_case(&resolved.version.hash) {
            return Err(ApiError::new(ErrorCode::InvalidDocument, "The document hash does not match the document."));
        }
    }
    let content = document::parse(&resolved.version.content, resolved.format()?, DocumentType::Command)
        .map_err(|e| ApiError::new(ErrorCode::InvalidDocument, format!("The document can't be run: {e}")))?
        .value;
    let supplied = i.parameters.clone().unwrap_or_default();
    let definitions = content.get("parameters").cloned().unwrap_or(json!({}));
    // Parameter Store references are resolved now, as SSM does when it takes the command; the
    // command keeps the parameters as they were sent.
    let use_ = crate::parameters::refs::Use::RunCommand;
    let definitions =
        crate::parameters::refs::resolve_defaults(svc, caller, &definitions, use_).await.map_err(invalid_parameters)?;
    let resolved_supplied =
        crate::parameters::refs::resolve_supplied(svc, caller, &supplied, use_).await.map_err(invalid_parameters)?;
    let values = resolve_parameters(&definitions, &resolved_supplied).map_err(param_error)?;
    let concurrency_text = i.max_concurrency.clone().unwrap_or_else(|| "50".into());
    let errors_text = i.max_errors.clone().unwrap_or_else(|| "0".into());
    let concurrency = ssmd_core::rate::parse_concurrency(&concurrency_text)
        .map_err(|e| ApiError::new(ErrorCode::ValidationException, format!("1 validation error detected: {e}")))?;
    let errors = ssmd_core::rate::parse_errors(&errors_text)
        .map_err(|e| ApiError::new(ErrorCode::ValidationException, format!("1 validation error detected: {e}")))?;

    let now = svc.now_ms();
    let timeout = i.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
    let document_name = resolved.reported_name();
    let version = resolved.version.version.to_string();
    let cw = i.cloud_watch_output_config.clone().unwrap_or(CloudWatchOutputConfig {
        cloud_watch_log_group_name: Some(String::new()),
        cloud_watch_output_enabled: Some(false),
    });
    let spec = Command {
        command_id: Some(id.clone()),
        document_name: Some(document_name.clone()),
        document_version: Some(version),
        comment: Some(i.comment.clone().unwrap_or_default()),
        expires_after: Some(epoch_seconds(now + (i64::from(timeout) + execution_timeout(&content, &values)) * 1000)),
        parameters: Some(supplied),
        instance_ids: Some(i.instance_ids.clone().unwrap_or_default()),
        targets: Some(i.targets.clone().unwrap_or_default()),
        requested_date_time: Some(epoch_seconds(now)),
        output_s3_region: Some(i.output_s3_region.clone().unwrap_or_else(|| caller.region.clone())),
        output_s3_bucket_name: Some(i.output_s3_bucket_name.clone().unwrap_or_default()),
        output_s3_key_prefix: Some(i.output_s3_key_prefix.clone().unwrap_or_default()),
        max_concurrency: Some(concurrency_text),
        max_errors: Some(errors_text),
        service_role: Some(i.service_role_arn.clone().unwrap_or_default()),
        notification_config: Some(i.notification_config.clone().unwrap_or(NotificationConfig {
            notification_arn: Some(String::new()),
            notification_events: Some(vec![]),
            notification_type: Some(String::new()),
        })),
        cloud_watch_output_config: Some(cw.clone()),
        timeout_seconds: Some(timeout),
        alarm_configuration: i.alarm_configuration.clone(),
        ..Default::default()
    };
    let steps = Steps { plugins: super::reply::placeholders(&content), trace: String::new() };
    let payload = json!({
        "Parameters": Value::Object(values),
        "DocumentContent": content,
        "CommandId": id,
        "DocumentName": document_name,
        "OutputS3KeyPrefix": i.output_s3_key_prefix.clone().unwrap_or_default(),
        "OutputS3BucketName": i.output_s3_bucket_name.clone().unwrap_or_default(),
        "CloudWatchLogGroupName": cw.cloud_watch_log_group_name.clone().unwrap_or_default(),
        "CloudWatchOutputEnabled": cw.cloud_watch_output_enabled.unwrap_or(false).to_string(),
    });
    let (p, first) = Progress::new(nodes.len(), concurrency, errors);
    let (status, details) = p.status(false);
    let new = NewCommand {
        id: id.clone(),
        account: caller.account.clone(),
        region: caller.region.clone(),
        requested_ms: now,
        deliver_by_ms: now + i64::from(timeout) * 1000,
        document_name: document_name.clone(),
        status: status.to_string(),
        status_details: details.into(),
        spec: serde_json::to_string(&spec).expect("command serialises"),
        payload: payload.to_string(),
        progress: serde_json::to_string(&p).expect("progress serialises"),
        targets: nodes.iter().map(|n| (n.id.clone(), n.name.clone())).collect(),
        dispatch: first.len(),
        plugins: steps.to_json(),
    };
    svc.store.insert_command(&new).await.map_err(store_error)?;
    // The answer is what was just stored: no need to read it back.
    Ok(SendCommandResult {
        command: Some(Command {
            status: Some(status),
            status_details: Some(details.into()),
            target_count: Some(nodes.len() as i32),
            completed_count: Some(p.completed as i32),
            error_count: Some(p.errors as i32),
            delivery_timed_out_count: Some(p.delivery_timed_out as i32),
            ..spec
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_timeout_sums_the_steps_limits_as_the_agent_reads_them() {
        let values = json!({"executionTimeout": "100", "long": 14400}).as_object().unwrap().clone();
        let v12 = json!({"runtimeConfig": {"aws:runShellScript": {"properties": [
            {"timeoutSeconds": "{{ executionTimeout }}"}, {"timeoutSeconds": 2}]}}});
        assert_eq!(execution_timeout(&v12, &values), 100 + 3600);
        let v22 = json!({"mainSteps": [
            {"inputs": {"timeoutSeconds": "{{long}}"}}, {"inputs": {"timeoutSeconds": 60}}, {"inputs": {}}]});
        assert_eq!(execution_timeout(&v22, &values), 14400 + 60 + 3600);
        assert_eq!(execution_timeout(&json!({"mainSteps": []}), &values), 3600);
    }
}
