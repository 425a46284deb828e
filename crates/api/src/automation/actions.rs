//! The work behind effectful steps: `aws:executeScript` (a real Python process, through
//! `ssmd-script`), the `ssm` API actions (`aws:executeAwsApi`, `aws:waitForAwsResourceProperty`,
//! `aws:assertAwsResourceProperty`), which call ssmd itself as the execution's account, and
//! `aws:runCommand`, which sends a Run Command command to managed nodes and waits for it.

use super::caller_of;
use crate::Service;
use serde_json::{Map, Value, json};
use ssmd_core::automation::execution::Execution;
use ssmd_core::automation::machine::{self, ApiCheck, Outcome};
use ssmd_model::Operation;
use ssmd_script::{ScriptOutcome, ScriptRequest};
use std::time::Duration;

/// How often `aws:waitForAwsResourceProperty` calls its API.
const WAIT_POLL: Duration = Duration::from_secs(2);

pub(crate) async fn script(
    svc: &Service,
    x: &Execution,
    runtime: String,
    handler: String,
    script: String,
    events: Value,
    timeout_s: i64,
) -> Outcome {
    let context = json!({
        "automation:EXECUTION_ID": x.id,
        "global:ACCOUNT_ID": x.account,
        "global:REGION": x.region,
        "global:AWS_PARTITION": "aws",
    });
    let req = ScriptRequest {
        runtime,
        handler,
        script,
        events,
        context,
        timeout: Duration::from_secs(timeout_s.max(1) as u64),
        python: svc.automation.settings.python.clone(),
    };
    match ssmd_script::run(req).await {
        ScriptOutcome::Success { payload, stdout } => Outcome::Payload { payload, stdout },
        ScriptOutcome::Failed { message, .. } => Outcome::failed(message),
        ScriptOutcome::TimedOut { .. } => Outcome::TimedOut {
            message: format!("The script did not finish within {timeout_s} seconds and was stopped."),
        },
        ScriptOutcome::Unsupported { message } => {
            Outcome::Failed { message, stage: "InputValidation", kind: "Verification" }
        }
    }
}

/// Whether an effect is one quick call that only reads (`aws:executeAwsApi` or
/// `aws:assertAwsResourceProperty` with a Describe, Get or List operation): running it again
/// changes nothing, so it need not be persisted as dispatched before it runs. Calls that read
/// Automation executions are not: a step reading its own execution must see itself running.
pub(crate) fn is_quick_read(e: &machine::Effect) -> bool {
    match e {
        machine::Effect::Api { service, api, check, .. } => {
            let name = operation_name(api);
            service.eq_ignore_ascii_case("ssm")
                && !matches!(check, ApiCheck::Wait { .. })
                && ["Describe", "Get", "List"].iter().any(|p| name.starts_with(p))
                && !name.contains("Automation")
        }
        _ => false,
    }
}

/// `describe_document` and `DescribeDocument` both name the DescribeDocument operation.
fn operation_name(api: &str) -> String {
    if api.contains('_') || api.starts_with(|c: char| c.is_ascii_lowercase()) {
        api.split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect()
    } else {
        api.to_string()
    }
}

async fn call(
    svc: &Service,
    x: &Execution,
    op: Operation,
    api: &str,
    params: &Map<String, Value>,
) -> Result<Value, String> {
    let caller = caller_of(x);
    match svc.call(&caller, op, Value::Object(params.clone())).await {
        Ok(body) => serde_json::from_slice(&body).map_err(|e| format!("The {api} response could not be read: {e}")),
        Err(e) => {
            Err(format!("An error occurred ({}) when calling the {api} operation: {}", e.code().name(), e.message()))
        }
    }
}

pub(crate) async fn api(
    svc: &Service,
    x: &Execution,
    service: &str,
    api: &str,
    params: &Map<String, Value>,
    check: &ApiCheck,
    timeout_s: i64,
) -> Outcome {
    if !service.eq_ignore_ascii_case("ssm") {
        return Outcome::Failed {
            message: format!(
                "ssmd runs AWS API actions only against Service ssm (ssmd itself); the service {service} is not available."
            ),
            stage: "InputValidation",
            kind: "Verification",
        };
    }
    let name = operation_name(api);
    let Some(op) = Operation::from_name(&name) else {
        return Outcome::Failed {
            message: format!("The ssm service has no operation {api}."),
            stage: "InputValidation",
            kind: "Verification",
        };
    };
    let work = async {
        loop {
            match call(svc, x, op, &name, params).await {
                Err(m) => return Outcome::failed(m),
                Ok(resp) => match check {
                    ApiCheck::Wait { selector, desired } if !machine::wait_satisfied(&resp, selector, desired) => {
                        tokio::time::sleep(WAIT_POLL).await;
                    }
                    _ => return Outcome::Response(resp),
                },
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(timeout_s.max(1) as u64), work).await {
        Ok(o) => o,
        Err(_) => Outcome::TimedOut { message: format!("The {name} call did not succeed within {timeout_s} seconds.") },
    }
}

/// `aws:runCommand`: sends the command `id` (unless a run of this attempt before a restart sent
/// it already) as the execution's account, and looks whether it has ended. `Some` outcome: the
/// command's status and the first node's response code and output (or why it could not be
/// sent). `None`: it is running, and the execution's job is linked to its end — the step waits
/// without holding anything, and is driven again when the command ends or its time is up.
pub(crate) async fn run_command(
    svc: &Service,
    x: &Execution,
    id: &str,
    request: &Map<String, Value>,
) -> Result<Option<Outcome>, ssmd_model::ApiError> {
    let caller = caller_of(x);
    let refused = |e: ssmd_model::ApiError| {
        Some(Outcome::failed(format!(
            "aws:runCommand could not send the command: An error occurred ({}) when calling the SendCommand operation: {}",
            e.code().name(),
            e.message()
        )))
    };
    let store = svc.store();
    if store.command(&x.account, &x.region, id).await.map_err(crate::store_error)?.is_none() {
        let input = Value::Object(request.clone());
        if let Err(e) = ssmd_model::validate::validate(Operation::SendCommand.info().input, &input) {
            return Ok(refused(e));
        }
        let req = match ssmd_model::decode(input) {
            Ok(r) => r,
            Err(e) => return Ok(refused(e)),
        };
        if let Err(e) = crate::commands::send::send_with_id(svc, &caller, req, id.to_string()).await {
            return Ok(refused(e));
        }
    }
    match store.await_command(id, ssmd_store::AUTOMATION_JOB, &x.id).await.map_err(crate::store_error)? {
        Some(None) => Ok(None),
        Some(Some(_)) => match store.command(&x.account, &x.region, id).await.map_err(crate::store_error)? {
            Some(c) => Ok(Some(crate::commands::query::first_result(svc, &c).await)),
            None => Ok(Some(Outcome::failed(format!("The command {id} of this step no longer exists.")))),
        },
        None => Ok(Some(Outcome::failed(format!("The command {id} of this step no longer exists.")))),
    }
}

/// Cancels the command of an `aws:runCommand` step that timed out or was stopped: its nodes
/// stop too. A command that has ended already is left as it is.
pub(crate) async fn cancel_command(svc: &Service, x: &Execution, id: &str) {
    let stop = ssmd_model::shapes::CancelCommandRequest { command_id: id.to_string(), instance_ids: None };
    if let Err(e) = crate::commands::cancel::cancel(svc, &caller_of(x), stop).await {
        tracing::warn!(command = id, error = %e, "cancelling the command of an aws:runCommand step failed");
    }
}
