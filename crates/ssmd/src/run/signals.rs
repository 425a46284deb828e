//! Sending an answer to the service: Approve or Reject signals (as each `--approver-arn` until
//! enough approvals are in), Resume, StartStep, and stopping the execution (Complete or Cancel).

use super::runner::Runner;
use super::waits::Wait;
use super::{ACCOUNT, EXIT_UNANSWERED, ROOT_ARN, call, describe};
use serde_json::{Value, json};
use ssmd_model::{ApiError, Caller, Operation};

/// An answer to a wait.
pub(super) enum Answer {
    Approve(Option<String>),
    Reject(Option<String>),
    Resume,
    StartStep(String),
    Complete,
    Cancel,
}

/// What came of an answer.
pub(super) enum Applied {
    Done,
    /// Ask again.
    Again,
    /// The runner can't go on; exit with this code.
    Stuck(i32),
}

impl Runner<'_> {
    /// Sends an answer to the service.
    pub(super) async fn apply(&self, wait: &Wait, answer: Answer) -> Applied {
        let out = self.out;
        match (wait, answer) {
            (Wait::Approve { execution, step, approvers, min }, answer @ (Answer::Approve(_) | Answer::Reject(_))) => {
                let (kind, comment) = match answer {
                    Answer::Approve(c) => ("Approve", c),
                    Answer::Reject(c) => ("Reject", c),
                    _ => unreachable!("matched above"),
                };
                let payload = match comment {
                    Some(c) => json!({ "Comment": [c] }),
                    None => json!({}),
                };
                let mut accepted = Vec::new();
                let mut refused = Vec::new();
                for c in &self.approvers {
                    match self.signal(c, execution, kind, payload.clone()).await {
                        Ok(()) => {
                            accepted.push(c.arn.clone());
                            if kind == "Reject" {
                                break;
                            }
                        }
                        Err(e) if e.message().contains("not one of the approvers") => refused.push(describe(&e)),
                        // The step stopped waiting meanwhile (timed out, cancelled).
                        Err(e) => {
                            out.warn(&format!("The {kind} signal was not applied: {}", describe(&e)));
                            return Applied::Done;
                        }
                    }
                }
                let needed = if kind == "Approve" { *min } else { 1 };
                if accepted.len() >= needed {
                    out.note(&format!("{kind} sent for step {step} as {}", accepted.join(", ")));
                    return Applied::Done;
                }
                for r in &refused {
                    out.error(r);
                }
                if accepted.is_empty() {
                    let hint = approvers.first().map(|a| suggest_arn(a)).unwrap_or_else(|| ROOT_ARN.to_string());
                    out.error(&format!(
                        "Step {step} accepts answers only from its approvers ({}). Run again with --approver-arn {hint} (and --approve or --reject).",
                        approvers.join(", ")
                    ));
                } else {
                    out.error(&format!(
                        "Step {step} needs {min} approvals, but only {} of the given approvers could approve ({}). Give one --approver-arn per approver needed.",
                        accepted.len(),
                        accepted.join(", ")
                    ));
                }
                Applied::Stuck(EXIT_UNANSWERED)
            }
            (Wait::Pause { execution, step }, _) => {
                match self.signal(&self.caller, execution, "Resume", json!({ "StepName": [step] })).await {
                    Ok(()) => out.note(&format!("Resumed step {step}")),
                    Err(e) => out.warn(&format!("The Resume signal was not applied: {}", describe(&e))),
                }
                Applied::Done
            }
            (Wait::Next { .. }, Answer::StartStep(s)) => {
                self.or_again(self.signal(&self.caller, &self.root, "StartStep", json!({ "StepName": [s] })).await)
            }
            (Wait::Next { .. }, Answer::Complete) => self.or_again(self.stop("Complete").await),
            (Wait::Next { .. }, Answer::Cancel) => self.or_again(self.stop("Cancel").await),
            _ => Applied::Again,
        }
    }

    /// `Done` when the answer went through, else the error printed and `Again`.
    fn or_again(&self, sent: Result<(), ApiError>) -> Applied {
        match sent {
            Ok(()) => Applied::Done,
            Err(e) => {
                self.out.error(&describe(&e));
                Applied::Again
            }
        }
    }

    /// Sends a signal of `kind` to `execution` as `caller`.
    async fn signal(&self, caller: &Caller, execution: &str, kind: &str, payload: Value) -> Result<(), ApiError> {
        let input = json!({ "AutomationExecutionId": execution, "SignalType": kind, "Payload": payload });
        call(&self.svc, caller, Operation::SendAutomationSignal, input).await.map(|_| ())
    }

    /// Stops the execution: `Complete` (Interactive mode) or `Cancel`.
    pub(super) async fn stop(&self, kind: &str) -> Result<(), ApiError> {
        let input = json!({ "AutomationExecutionId": self.root, "Type": kind });
        call(&self.svc, &self.caller, Operation::StopAutomationExecution, input).await.map(|_| ())
    }
}

/// The `--approver-arn` that an `Approvers` entry accepts.
fn suggest_arn(entry: &str) -> String {
    let entry = entry.trim();
    if entry.starts_with("arn:") {
        entry.to_string()
    } else if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{entry}:root")
    } else {
        format!("arn:aws:iam::{ACCOUNT}:user/{entry}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_suggestions() {
        assert_eq!(suggest_arn("arn:aws:iam::123456789012:role/Ops"), "arn:aws:iam::123456789012:role/Ops");
        assert_eq!(suggest_arn("123456789012"), "arn:aws:iam::123456789012:root");
        assert_eq!(suggest_arn("alice"), "arn:aws:iam::123456789012:user/alice");
    }
}
