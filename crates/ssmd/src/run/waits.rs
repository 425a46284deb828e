//! What the followed executions wait for from the runner: an aws:approve step's approval, an
//! aws:pause step's resume, or (in Interactive mode) the next step to start, each under a key
//! that names this one wait.

use super::output::text;
use super::runner::Runner;
use serde_json::Value;
use ssmd_model::enums::{AutomationExecutionStatus as Status, ExecutionMode};
use std::collections::HashMap;

/// Something an execution waits for from the runner.
#[derive(Clone)]
pub(super) enum Wait {
    Approve {
        execution: String,
        step: String,
        approvers: Vec<String>,
        min: usize,
    },
    Pause {
        execution: String,
        step: String,
    },
    /// An Interactive execution between steps.
    Next {
        suggested: Option<String>,
        steps: Vec<String>,
    },
}

impl Runner<'_> {
    /// What the followed executions wait for, each with a key that names this one wait.
    pub(super) fn waits(&mut self, snapshot: &HashMap<String, Value>) -> Vec<(String, Wait)> {
        let mut out = Vec::new();
        for (id, _) in &self.watched {
            let Some(x) = snapshot.get(id) else { continue };
            for s in x["StepExecutions"].as_array().into_iter().flatten() {
                if s["StepStatus"] != Status::Waiting.as_str() {
                    continue;
                }
                let key = s["StepExecutionId"].as_str().unwrap_or_default().to_string();
                let step = s["StepName"].as_str().unwrap_or_default().to_string();
                match s["Action"].as_str().unwrap_or_default() {
                    "aws:approve" => out.push((
                        key,
                        Wait::Approve {
                            execution: id.clone(),
                            step,
                            approvers: approvers_of(s),
                            min: min_approvals(s),
                        },
                    )),
                    "aws:pause" => out.push((key, Wait::Pause { execution: id.clone(), step })),
                    _ => {}
                }
            }
        }
        let root = snapshot.get(&self.root).cloned().unwrap_or(Value::Null);
        let steps = root["StepExecutions"].as_array().cloned().unwrap_or_default();
        let busy = steps
            .iter()
            .any(|s| s["StepStatus"] == Status::InProgress.as_str() || s["StepStatus"] == Status::Waiting.as_str());
        let idle = root["Mode"] == ExecutionMode::Interactive.as_str()
            && root["AutomationExecutionStatus"] == Status::Waiting.as_str()
            && !busy;
        if idle && !self.was_idle {
            self.idle += 1;
        }
        self.was_idle = idle;
        if idle {
            let top: Vec<&Value> = steps.iter().filter(|s| s.get("ParentStepDetails").is_none()).collect();
            let mut names: Vec<String> = Vec::new();
            for s in &top {
                let n = s["StepName"].as_str().unwrap_or_default().to_string();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            let last = top
                .iter()
                .filter(|s| s["ExecutionEndTime"].is_number())
                .max_by(|a, b| a["ExecutionEndTime"].as_f64().partial_cmp(&b["ExecutionEndTime"].as_f64()).unwrap());
            let valid = last.and_then(|s| s["ValidNextSteps"].as_array()).and_then(|v| v.first()?.as_str());
            let suggested = valid.map(str::to_string).or_else(|| {
                top.iter()
                    .find(|s| s["StepStatus"] == Status::Pending.as_str())?
                    .get("StepName")?
                    .as_str()
                    .map(str::to_string)
            });
            out.push((format!("next#{}", self.idle), Wait::Next { suggested, steps: names }));
        }
        out
    }
}

/// A step input's value (inputs travel as JSON text).
pub(super) fn input_value(step: &Value, key: &str) -> Option<Value> {
    let s = step.get("Inputs")?.get(key)?.as_str()?;
    Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())))
}

/// An aws:approve step's `Approvers`.
pub(super) fn approvers_of(step: &Value) -> Vec<String> {
    match input_value(step, "Approvers") {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(v) => vec![text(&v)],
    }
}

/// An aws:approve step's `MinRequiredApprovals` (at least 1).
pub(super) fn min_approvals(step: &Value) -> usize {
    input_value(step, "MinRequiredApprovals")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(1)
        .max(1) as usize
}
