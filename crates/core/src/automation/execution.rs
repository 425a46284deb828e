//! The persisted state of one Automation execution: its status, parameters, variables, every
//! step execution record, where it stands in the runbook, open loops and, for a rate-controlled
//! parent, the fan-out over its targets. The whole state is one serialisable value, written
//! atomically on every transition; `machine` is the only code that changes it.

use crate::rate::RateController;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ssmd_model::enums::{AutomationExecutionStatus as Status, AutomationType, ExecutionMode, SignalType};
use ssmd_model::shapes::{AlarmConfiguration, Target, TargetLocation};
use std::collections::BTreeMap;

/// Whether an execution or step status is final.
pub fn is_terminal(s: Status) -> bool {
    matches!(
        s,
        Status::Success
            | Status::TimedOut
            | Status::Cancelled
            | Status::Failed
            | Status::Rejected
            | Status::CompletedWithSuccess
            | Status::CompletedWithFailure
            | Status::Exited
            | Status::ChangeCalendarOverrideRejected
    )
}

/// Where an execution stands in its runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum At {
    /// About to start the named step.
    Start(String),
    /// The step record at this index is running or waiting.
    Running(usize),
    /// Interactive mode, between steps: waiting for StartStep or Complete.
    Idle,
    /// The step record at this index starts its next attempt.
    Retry(usize),
    /// Finished.
    End,
}

/// One approver's decision on an `aws:approve` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The caller identity (ARN) that decided.
    pub approver: String,
    /// `Approve` or `Reject`.
    pub decision: SignalType,
    /// The comment sent with the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When, in epoch milliseconds.
    pub time_ms: i64,
}

/// The loop step a sub-step execution ran under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Step execution id of the loop step.
    pub id: String,
    /// Name of the loop step.
    pub name: String,
    /// 1-based iteration.
    pub iteration: u32,
    /// The iterator value, as text, for for-each loops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterator_value: Option<String>,
}

/// One step execution (a `StepExecution` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// StepExecutionId.
    pub id: String,
    /// StepName (the target value for a rate-controlled parent's steps).
    pub name: String,
    /// Action.
    pub action: String,
    /// StepStatus.
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
    /// Resolved inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
    /// Typed outputs.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// FailureDetails (stage, type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
    /// Current attempt, 1-based (0 while Pending).
    #[serde(default)]
    pub attempt: u32,
    /// Timer: sleep wake-up, approval expiry or step deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_ms: Option<i64>,
    /// The current attempt's work was handed out (persisted before it runs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dispatched: bool,
    /// Times the step was restarted after the server running it went away.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recoveries: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// Child execution run by this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// The Run Command command this attempt sends (`aws:runCommand`), chosen before it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub valid_next: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overridden: BTreeMap<String, Vec<String>>,
    /// Index of the fan-out target this record runs (rate-controlled parents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fan_item: Option<usize>,
    /// Step properties echoed from the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<StepProps>,
}

impl Default for StepRecord {
    /// An empty Pending record (attempt 0, nothing run yet).
    fn default() -> Self {
        StepRecord {
            id: String::new(),
            name: String::new(),
            action: String::new(),
            status: Status::Pending,
            start_ms: None,
            end_ms: None,
            inputs: None,
            outputs: Map::new(),
            failure_message: None,
            failure: None,
            attempt: 0,
            wake_ms: None,
            dispatched: false,
            recoveries: 0,
            decisions: Vec::new(),
            child: None,
            command: None,
            parent: None,
            valid_next: Vec::new(),
            overridden: BTreeMap::new(),
            fan_item: None,
            props: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The document properties a StepExecution echoes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProps {
    pub is_end: bool,
    pub is_critical: bool,
    pub on_failure: String,
    pub max_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// An open `aws:loop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopFrame {
    /// The loop step's name.
    pub step: String,
    /// Its step record.
    pub record: usize,
    /// 1-based current iteration.
    pub iteration: u32,
    /// Iterator values (for-each loops); `None` for LoopCondition loops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// Iteration limit.
    pub max: u32,
}

/// One target of a rate-controlled parent, as resolved at the start (each becomes a row of its
/// own in the store; only states written by earlier versions hold them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanItem {
    /// The target value (StepName of its step record).
    pub label: String,
    /// Parameters of its child (wire form).
    pub parameters: BTreeMap<String, Vec<String>>,
    /// The child, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
}

/// A rate-controlled parent's fan-out: the rate controller's counters, the same size whatever
/// the number of targets. Each target — its value, its child's parameters, its child and how it
/// ended — is a row of its own (`automation_targets`), written when it starts and by the
/// transaction that ends its child, so a child's end costs the parent the same at 10 targets as
/// at 10,000.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanOut {
    pub controller: RateController,
    /// Targets kept in the state by earlier versions; the engine moves them to rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<FanItem>,
    /// Whether the targets came from Targets (ResolvedTargets lists them) or TargetMaps.
    pub from_targets: bool,
    /// The target started last (CurrentStepName while the fan-out runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_label: Option<String>,
}

/// Request fields an execution echoes on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_parameter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Target>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_maps: Option<Vec<BTreeMap<String, Vec<String>>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_locations: Option<Vec<TargetLocation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_locations_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_configuration: Option<AlarmConfiguration>,
}

/// One Automation execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub account: String,
    pub region: String,
    pub document_name: String,
    pub document_version: String,
    pub mode: ExecutionMode,
    pub status: Status,
    pub executed_by: String,
    pub start_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
    /// Typed runbook parameters (supplied or default).
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
    pub steps: Vec<StepRecord>,
    pub at: At,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loops: Vec<LoopFrame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// The status a critical step failure left for the end (`Failed` or `TimedOut`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanOut>,
    #[serde(default)]
    pub echo: Echo,
    /// While the onCancel workflow runs: when it must end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_deadline_ms: Option<i64>,
    /// The record a cancel interrupted (its onCancel step runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_record: Option<usize>,
    /// Children to cancel (the engine cancels them, then clears this).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel_children: Vec<String>,
    /// Run Command commands to cancel (the engine cancels them, then clears this).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel_commands: Vec<String>,
    /// The runbook's `assumeRole`, resolved at start (recorded; ssmd has no IAM to assume it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<String>,
    /// StartStep payload keys other than StepName, for the step it starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, Vec<String>>,
}

impl Execution {
    /// The step record currently running or waiting, if any.
    pub fn current(&self) -> Option<&StepRecord> {
        match self.at {
            At::Running(i) | At::Retry(i) => self.steps.get(i),
            _ => None,
        }
    }

    /// CurrentStepName and CurrentAction for the wire.
    pub fn current_step(&self) -> Option<(&str, &str)> {
        if is_terminal(self.status) {
            return None;
        }
        if let Some(r) = self.current() {
            return Some((&r.name, &r.action));
        }
        if let Some(f) = &self.fanout {
            return f.last_label.as_deref().map(|l| (l, "aws:executeAutomation"));
        }
        None
    }

    /// `AutomationType`: `CrossAccount` when the start named TargetLocations, else `Local`.
    pub fn automation_type(&self) -> AutomationType {
        if self.echo.target_locations.is_some() { AutomationType::CrossAccount } else { AutomationType::Local }
    }

    /// Ids of children this execution waits for.
    pub fn awaited_children(&self) -> Vec<(usize, String)> {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, r)| r.dispatched && !is_terminal(r.status))
            .filter_map(|(i, r)| r.child.clone().map(|c| (i, c)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The state is stored as JSON: typed statuses, mode and decisions must write exactly the
    /// strings the untyped state wrote, and read back what it stored.
    #[test]
    fn stored_state_keeps_its_wire_strings() {
        let stored = json!({
            "id": "e", "account": "a", "region": "r", "document_name": "d", "document_version": "1",
            "mode": "Interactive", "status": "Waiting", "executed_by": "arn", "start_ms": 1,
            "parameters": {},
            "steps": [{
                "id": "s", "name": "approve", "action": "aws:approve", "status": "TimedOut", "attempt": 1,
                "decisions": [{"approver": "arn", "decision": "Reject", "time_ms": 2}]
            }],
            "at": "Idle", "failed": "TimedOut", "echo": {}
        });
        let x: Execution = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!((x.mode, x.status, x.failed), (ExecutionMode::Interactive, Status::Waiting, Some(Status::TimedOut)));
        assert_eq!(x.steps[0].decisions[0].decision, SignalType::Reject);
        assert_eq!(serde_json::to_value(&x).unwrap(), stored);
        let text = serde_json::to_string(&x).unwrap();
        assert!(text.contains(r#""mode":"Interactive","status":"Waiting""#), "{text}");
        let bad = stored.to_string().replace("\"Waiting\"", "\"Sleeping\"");
        assert!(serde_json::from_str::<Execution>(&bad).is_err(), "an unknown status is an error, not a panic");
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<&str> = Status::ALL.iter().filter(|s| is_terminal(**s)).map(Status::as_str).collect();
        assert_eq!(
            terminal,
            [
                "Success",
                "TimedOut",
                "Cancelled",
                "Failed",
                "Rejected",
                "ChangeCalendarOverrideRejected",
                "CompletedWithSuccess",
                "CompletedWithFailure",
                "Exited"
            ]
        );
    }
}
