//! The work behind effectful steps: `aws:executeScript` (a real Python process, through
//! `ssmd-script`) and the `ssm` API actions (`aws:executeAwsApi`, `aws:waitForAwsResourceProperty`,
//! `aws:assertAwsResourceProperty`), which call ssmd itself as the execution's account.

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
