//! The Automation state machine, as pure functions over an [`Execution`]:
//!
//! * [`drive`] advances an execution as far as it can go at `now` without doing I/O — it runs
//!   sleeps, branches, variable updates, approvals and loops itself — and returns what it needs
//!   next: nothing (finished), a wake-up time or a signal, or an [`Effect`] for the engine to carry
//!   out (a script, an API call, child executions to start or cancel);
//! * [`complete`] feeds an effect's [`Outcome`] back; a late or repeated outcome (another attempt,
//!   a cancelled step) is ignored;
//! * [`signal`] and [`stop`] apply `SendAutomationSignal` and `StopAutomationExecution`.
//!
//! The engine persists the state returned by every call before it acts on an effect, so a crash
//! at any point resumes from the last persisted state. An effect marked dispatched that is found
//! again after a restart runs once more at most (`recoveries`), then fails.

use super::execution::{At, Decision, Execution, FanOut, LoopFrame, ParentRef, StepProps, StepRecord, is_terminal};
use super::interpolate::{self, Scope};
use super::runbook::{OnFailure, Runbook, StepDef};
use super::{branch, selector, sleep};
use serde_json::{Map, Value, json};
use ssmd_model::enums::{AutomationExecutionStatus as Status, CommandStatus, ExecutionMode, SignalType, StopType};
use std::collections::BTreeMap;

/// The default `aws:approve` timeout (7 days) and its maximum (30 days).
pub const APPROVE_DEFAULT_TIMEOUT_S: i64 = 604_800;
const APPROVE_MAX_TIMEOUT_S: i64 = 2_592_000;
/// `aws:executeScript` may run at most this long.
pub const SCRIPT_MAX_TIMEOUT_S: i64 = 600;
/// Default timeout of `aws:waitForAwsResourceProperty`.
const WAIT_DEFAULT_TIMEOUT_S: i64 = 3600;
/// The onCancel workflow may run this long.
const CANCEL_WORKFLOW_MS: i64 = 120_000;
/// The step timeout of `aws:runCommand` when the step sets none: the longest a command can
/// wait for delivery (30 days) is not a useful bound for a runbook, so two days.
const RUN_COMMAND_DEFAULT_TIMEOUT_S: i64 = 172_800;
/// The `aws:runCommand` inputs passed on to SendCommand.
const RUN_COMMAND_INPUTS: &[&str] = &[
    "DocumentName",
    "DocumentVersion",
    "DocumentHash",
    "DocumentHashType",
    "InstanceIds",
    "Targets",
    "Parameters",
    "Comment",
    "NotificationConfig",
    "OutputS3BucketName",
    "OutputS3KeyPrefix",
    "OutputS3Region",
    "ServiceRoleArn",
    "TimeoutSeconds",
    "CloudWatchOutputConfig",
    "MaxConcurrency",
    "MaxErrors",
];
/// The most iterations an `aws:loop` runs.
pub const MAX_LOOP_ITERATIONS: u32 = 100;

/// What an execution needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// It is finished.
    Done,
    /// Nothing to do until this time (or, with `None`, until a signal or a child finishes).
    Wait(Option<i64>),
    /// Work for the engine.
    Effect(Effect),
}

/// Which `Api` call flavour a step makes.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCheck {
    /// `aws:executeAwsApi`: one call, outputs selected from the response.
    Outputs,
    /// `aws:waitForAwsResourceProperty`: call until the selected property is one of the values.
    Wait { selector: String, desired: Vec<String> },
    /// `aws:assertAwsResourceProperty`: one call; the selected property must be one of the values.
    Assert { selector: String, desired: Vec<String> },
}

/// A child execution to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildStart {
    /// Its id, chosen by the parent so the start is idempotent.
    pub id: String,
    /// The parent's step record waiting for it.
    pub record: usize,
    /// That record's attempt.
    pub attempt: u32,
    /// A `StartAutomationExecution` request body.
    pub request: Value,
    /// The target it runs for (rate-controlled parents).
    pub target: Option<String>,
}

/// Work the engine carries out for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run an `aws:executeScript` script.
    Script {
        record: usize,
        attempt: u32,
        runtime: String,
        handler: String,
        script: String,
        events: Value,
        timeout_s: i64,
    },
    /// Call an API as the execution's account.
    Api {
        record: usize,
        attempt: u32,
        service: String,
        api: String,
        params: Map<String, Value>,
        check: ApiCheck,
        timeout_s: i64,
    },
    /// Send a Run Command command (`aws:runCommand`) with this id, unless it exists already;
    /// complete the step if it has finished, else wait for it (the step's record keeps the
    /// command, and the effect comes again when the command ends or the step's time is up).
    RunCommand { record: usize, attempt: u32, command_id: String, request: Map<String, Value>, timeout_s: i64 },
    /// Start child executions (an `aws:executeAutomation` step, or a fan-out batch).
    Start(Vec<ChildStart>),
    /// Cancel these child executions.
    Cancel(Vec<String>),
    /// Start the children of these fan-out targets (their rows name their parameters).
    StartTargets(std::ops::Range<usize>),
    /// Cancel the children of every fan-out target still running.
    CancelTargets,
    /// Cancel these Run Command commands (an `aws:runCommand` step timed out or was stopped).
    CancelCommands(Vec<String>),
}

/// The result of an effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A script returned.
    Payload { payload: Value, stdout: String },
    /// An API call answered (for `Wait`, with the matching response).
    Response(Value),
    /// A child execution finished.
    Child { id: String, status: Status, outputs: BTreeMap<String, Vec<String>>, failure: Option<String> },
    /// A Run Command command finished (`aws:runCommand`): its status and the first node's result.
    Command { id: String, status: CommandStatus, response_code: i64, output: String },
    /// The work failed.
    Failed { message: String, stage: &'static str, kind: &'static str },
    /// The work ran out of time.
    TimedOut { message: String },
}

impl Outcome {
    /// A failure of the action itself.
    pub fn failed(message: impl Into<String>) -> Outcome {
        Outcome::Failed { message: message.into(), stage: "Invocation", kind: "Action" }
    }
}

/// Who sends a signal.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    /// Caller ARN.
    pub arn: &'a str,
    /// The account.
    pub account: &'a str,
}

/// Why a signal or stop was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// No such step (`AutomationStepNotFoundException`).
    #[error("{0}")]
    StepNotFound(String),
    /// Not applicable now (`InvalidAutomationSignalException` / `InvalidAutomationStatusUpdateException`).
    #[error("{0}")]
    Invalid(String),
}

/// The view interpolation has of an execution.
struct View<'a> {
    x: &'a Execution,
    now_ms: i64,
}

impl Scope for View<'_> {
    fn parameter(&self, name: &str) -> Option<Value> {
        self.x.parameters.get(name).cloned()
    }
    fn step_output(&self, step: &str, output: &str) -> Option<Value> {
        self.x.steps.iter().rev().filter(|r| r.name == step).find_map(|r| r.outputs.get(output).cloned())
    }
    fn variable(&self, name: &str) -> Option<Value> {
        self.x.variables.get(name).cloned()
    }
    fn global(&self, name: &str) -> Option<String> {
        let (y, mo, d, h, mi, s) = crate::clock::utc_fields(self.now_ms);
        match name {
            "ACCOUNT_ID" => Some(self.x.account.clone()),
            "REGION" => Some(self.x.region.clone()),
            "AWS_PARTITION" => Some("aws".into()),
            "DATE" => Some(format!("{y:04}-{mo:02}-{d:02}")),
            "DATE_TIME" => Some(format!("{y:04}-{mo:02}-{d:02}_{h:02}.{mi:02}.{s:02}")),
            _ => None,
        }
    }
    fn automation(&self, name: &str) -> Option<String> {
        (name == "EXECUTION_ID").then(|| self.x.id.clone())
    }
    fn loop_value(&self, step: &str, property: &str) -> Option<Value> {
        let f = self.x.loops.iter().find(|f| f.step == step)?;
        match property {
            "CurrentIteration" => Some(Value::from(f.iteration)),
            "CurrentIteratorValue" => f.values.as_ref()?.get(f.iteration as usize - 1).cloned(),
            _ => None,
        }
    }
}

/// Resolves `{{ … }}` references in `value` against the execution.
pub fn resolve(x: &Execution, value: &Value, now_ms: i64) -> Result<Value, String> {
    interpolate::interpolate(value, &View { x, now_ms }).map_err(|e| e.to_string())
}

fn props(def: &StepDef) -> StepProps {
    StepProps {
        is_end: def.is_end,
        is_critical: def.is_critical,
        on_failure: def.on_failure.as_text(),
        max_attempts: def.max_attempts,
        next_step: def.next_step.clone(),
        timeout_seconds: def.timeout_seconds,
    }
}

/// Creates an execution's step records: one Pending record per main step, as SSM lists them.
pub fn pending_records(rb: &Runbook) -> Vec<StepRecord> {
    rb.steps
        .iter()
        .map(|d| StepRecord {
            id: crate::ids::uuid(),
            name: d.name.clone(),
            action: d.action.clone(),
            status: Status::Pending,
            props: Some(props(d)),
            ..Default::default()
        })
        .collect()
}

/// Where an execution starts: the first step (Auto) or waiting for StartStep (Interactive).
pub fn initial_position(rb: &Runbook, mode_name: ExecutionMode) -> At {
    match (mode_name, rb.steps.first()) {
        (ExecutionMode::Interactive, _) => At::Idle,
        (_, Some(s)) => At::Start(s.name.clone()),
        (_, None) => At::End,
    }
}

/// The most step records one execution keeps; a runbook that would run more steps (loops
/// within loops, jumps in a cycle) fails instead of growing without bound.
pub const MAX_STEP_RECORDS: usize = 5_000;

/// Advances the execution as far as possible at `now_ms`; see the module documentation.
pub fn drive(x: &mut Execution, rb: &Runbook, now_ms: i64) -> Need {
    let need = drive_inner(x, rb, now_ms);
    // While the onCancel workflow runs, nothing may wait past its deadline.
    match (need, x.cancel_deadline_ms) {
        (Need::Wait(at), Some(deadline)) if !is_terminal(x.status) => {
            Need::Wait(Some(at.map_or(deadline, |t| t.min(deadline))))
        }
        (need, _) => need,
    }
}

fn drive_inner(x: &mut Execution, rb: &Runbook, now_ms: i64) -> Need {
    for _ in 0..10_000 {
        // Children and commands to cancel come first, even when this execution just ended.
        if !x.cancel_commands.is_empty() {
            return Need::Effect(Effect::CancelCommands(std::mem::take(&mut x.cancel_commands)));
        }
        if !x.cancel_children.is_empty() {
            return Need::Effect(Effect::Cancel(std::mem::take(&mut x.cancel_children)));
        }
        if is_terminal(x.status) {
            return Need::Done;
        }
        if x.status == Status::Pending {
            x.status = if x.at == At::Idle { Status::Waiting } else { Status::InProgress };
        }
        if x.fanout.is_some() {
            return drive_fanout(x, now_ms);
        }
        if x.status == Status::Cancelling && x.cancel_deadline_ms.is_none() {
            begin_cancel_workflow(x, rb, now_ms);
            continue;
        }
        if x.cancel_deadline_ms.is_some_and(|d| now_ms >= d) {
            x.failure_message.get_or_insert_with(|| "The onCancel workflow ran out of time (2 minutes).".into());
            interrupt_current(x, now_ms, Status::Cancelled);
            finish(x, Status::Cancelled, now_ms);
            continue;
        }
        match x.at.clone() {
            At::End => {
                let final_status = if x.cancel_deadline_ms.is_some() {
                    Status::Cancelled
                } else {
                    x.failed.unwrap_or(Status::Success)
                };
                finish(x, final_status, now_ms);
            }
            At::Idle => {
                x.status = Status::Waiting;
                return Need::Wait(None);
            }
            At::Start(name) => start_step(x, rb, &name, now_ms),
            At::Retry(i) => {
                x.at = At::Running(i);
                begin(x, rb, i, now_ms);
            }
            At::Running(i) => {
                if let Some(need) = run_step(x, rb, i, now_ms) {
                    return need;
                }
            }
        }
    }
    // A runbook whose steps loop on themselves without waiting: stop it rather than spin.
    x.failure_message = Some("The execution made 10,000 transitions without waiting; it was stopped.".into());
    finish(x, Status::Failed, now_ms);
    Need::Done
}

fn finish(x: &mut Execution, final_status: Status, now_ms: i64) {
    x.status = final_status;
    x.end_ms = Some(now_ms);
    x.at = At::End;
    for f in std::mem::take(&mut x.loops) {
        let r = &mut x.steps[f.record];
        if !is_terminal(r.status) {
            r.status = if final_status == Status::Success { Status::Failed } else { final_status };
            r.end_ms = Some(now_ms);
        }
    }
}

/// Marks the running record, if any, with `st` (a cancel or stop interrupted it).
fn interrupt_current(x: &mut Execution, now_ms: i64, st: Status) {
    if let At::Running(i) | At::Retry(i) = x.at {
        let r = &mut x.steps[i];
        if !is_terminal(r.status) {
            r.status = st;
            r.end_ms = Some(now_ms);
            r.dispatched = false;
            if let Some(c) = r.child.clone() {
                x.cancel_children.push(c);
            }
            if let Some(c) = r.command.clone() {
                x.cancel_commands.push(c);
            }
        }
    }
}

fn begin_cancel_workflow(x: &mut Execution, rb: &Runbook, now_ms: i64) {
    let on_cancel = x
        .cancelled_record
        .and_then(|i| x.steps.get(i))
        .and_then(|r| rb.step(&r.name))
        .and_then(|d| d.on_cancel.clone())
        .filter(|s| rb.step(s).is_some());
    match on_cancel {
        Some(step) => {
            x.cancel_deadline_ms = Some(now_ms + CANCEL_WORKFLOW_MS);
            x.loops.clear();
            x.at = At::Start(step);
        }
        None => finish(x, Status::Cancelled, now_ms),
    }
}

/// The record a step runs in: its Pending main-step record, else a new one.
fn record_for(x: &mut Execution, def: &StepDef) -> usize {
    let parent = x.loops.last().map(|f| {
        let lr = &x.steps[f.record];
        ParentRef {
            id: lr.id.clone(),
            name: lr.name.clone(),
            iteration: f.iteration,
            iterator_value: f
                .values
                .as_ref()
                .and_then(|v| v.get(f.iteration as usize - 1))
                .map(crate::document::scalar_text),
        }
    });
    if parent.is_none()
        && let Some(i) = x.steps.iter().position(|r| r.name == def.name && r.status == Status::Pending)
    {
        return i;
    }
    x.steps.push(StepRecord {
        id: crate::ids::uuid(),
        name: def.name.clone(),
        action: def.action.clone(),
        status: Status::Pending,
        parent,
        props: Some(props(def)),
        ..Default::default()
    });
    x.steps.len() - 1
}

fn start_step(x: &mut Execution, rb: &Runbook, name: &str, now_ms: i64) {
    let Some(def) = rb.step(name) else {
        x.failure_message = Some(format!("Step {name} does not exist in the runbook."));
        finish(x, Status::Failed, now_ms);
        return;
    };
    if x.steps.len() >= MAX_STEP_RECORDS {
        x.failure_message = Some(format!(
            "The execution ran {MAX_STEP_RECORDS} step executions, the most ssmd keeps for one execution; it was stopped."
        ));
        finish(x, Status::Failed, now_ms);
        return;
    }
    let i = record_for(x, def);
    let r = &mut x.steps[i];
    r.status = Status::InProgress;
    r.start_ms = Some(now_ms);
    r.attempt = 1;
    r.overridden = std::mem::take(&mut x.overrides);
    if x.status != Status::Cancelling {
        x.status = Status::InProgress;
    }
    x.at = At::Running(i);
    begin(x, rb, i, now_ms);
}

/// Resolves the inputs of record `i` and does what its action does at the start of an attempt.
fn begin(x: &mut Execution, rb: &Runbook, i: usize, now_ms: i64) {
    let def = rb.step(&x.steps[i].name).expect("records of runbook steps name runbook steps").clone();
    let mut raw = def.inputs.clone();
    if let Value::Object(m) = &mut raw {
        for (k, v) in &x.steps[i].overridden {
            m.insert(k.clone(), if v.len() == 1 { Value::String(v[0].clone()) } else { json!(v) });
        }
    }
    let inputs = if def.action == "aws:loop" {
        // The body's references resolve per iteration; only the loop's own inputs resolve now.
        let mut m = raw.as_object().cloned().unwrap_or_default();
        let body = m.remove("Steps");
        let cond = m.remove("LoopCondition");
        let resolved = resolve(x, &Value::Object(m), now_ms);
        resolved.map(|mut v| {
            if let (Value::Object(o), Some(c)) = (&mut v, cond) {
                o.insert("LoopCondition".into(), c);
            }
            let _ = body;
            v
        })
    } else {
        resolve(x, &raw, now_ms)
    };
    let inputs = match inputs {
        Ok(v) => v,
        Err(message) => {
            x.steps[i].inputs = raw.as_object().cloned();
            return fail(x, rb, i, Status::Failed, message, "InputValidation", "Verification", now_ms);
        }
    };
    let r = &mut x.steps[i];
    r.inputs = inputs.as_object().cloned();
    r.dispatched = false;
    r.wake_ms = None;
    r.child = None;
    r.command = None;
    match def.action.as_str() {
        "aws:sleep" => match sleep::wake_at(&inputs, now_ms) {
            Ok(at) => r.wake_ms = Some(at),
            Err(e) => fail(x, rb, i, Status::Failed, e.to_string(), "InputValidation", "Verification", now_ms),
        },
        "aws:pause" => {
            r.wake_ms = def.timeout_seconds.map(|t| now_ms.saturating_add(t.saturating_mul(1000)));
            r.status = Status::Waiting;
            if x.status != Status::Cancelling {
                x.status = Status::Waiting;
            }
        }
        "aws:approve" => match approve_rules(&inputs) {
            Ok(_) => {
                let timeout = def.timeout_seconds.unwrap_or(APPROVE_DEFAULT_TIMEOUT_S).min(APPROVE_MAX_TIMEOUT_S);
                r.wake_ms = Some(now_ms.saturating_add(timeout.saturating_mul(1000)));
                r.status = Status::Waiting;
                r.decisions.clear();
                r.outputs = approval_outputs("Waiting", &[]);
                if x.status != Status::Cancelling {
                    x.status = Status::Waiting;
                }
            }
            Err(m) => fail(x, rb, i, Status::Failed, m, "InputValidation", "Verification", now_ms),
        },
        "aws:branch" => match branch::evaluate(&inputs) {
            Ok(Some(target)) if rb.step(&target).is_none() => fail(
                x,
                rb,
                i,
                Status::Failed,
                format!("The branch chose step {target}, which does not exist."),
                "Invocation",
                "Action",
                now_ms,
            ),
            Ok(target) => succeed(x, rb, i, Map::new(), target, now_ms),
            Err(e) => fail(x, rb, i, Status::Failed, e.to_string(), "InputValidation", "Verification", now_ms),
        },
        "aws:updateVariable" => match update_variable(x, rb, &inputs) {
            Ok(()) => succeed(x, rb, i, Map::new(), None, now_ms),
            Err(m) => fail(x, rb, i, Status::Failed, m, "InputValidation", "Verification", now_ms),
        },
        "aws:loop" => start_loop(x, rb, i, &def, &inputs, now_ms),
        "aws:runCommand" => {
            // The step waits for its command without holding anything: this is its deadline.
            let t = def.timeout_seconds.unwrap_or(RUN_COMMAND_DEFAULT_TIMEOUT_S);
            r.wake_ms = Some(now_ms.saturating_add(t.saturating_mul(1000)));
        }
        "aws:executeScript"
        | "aws:executeAwsApi"
        | "aws:waitForAwsResourceProperty"
        | "aws:assertAwsResourceProperty"
        | "aws:executeAutomation" => {
            if let Some(t) = def.timeout_seconds {
                r.wake_ms = Some(now_ms.saturating_add(t.saturating_mul(1000)));
            }
        }
        other => fail(
            x,
            rb,
            i,
            Status::Failed,
            format!(
                "ssmd cannot run the action {other}: it acts on AWS resources ssmd does not hold. Actions ssmd runs: aws:sleep, aws:pause, aws:approve, aws:branch, aws:loop, aws:updateVariable, aws:executeScript, aws:executeAutomation, aws:runCommand, and aws:executeAwsApi, aws:waitForAwsResourceProperty, aws:assertAwsResourceProperty with Service ssm."
            ),
            "Invocation",
            "Action",
            now_ms,
        ),
    }
}

fn approve_rules(inputs: &Value) -> Result<(Vec<String>, usize), String> {
    let approvers: Vec<String> = match inputs.get("Approvers") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().map(crate::document::scalar_text).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => return Err("aws:approve needs a non-empty Approvers list.".into()),
    };
    let min = match inputs.get("MinRequiredApprovals") {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(n) if n >= 1 && n as usize <= approvers.len() => n as usize,
            _ => {
                return Err(format!(
                    "MinRequiredApprovals must be a whole number from 1 to the number of approvers ({}), but is {v}.",
                    approvers.len()
                ));
            }
        },
    };
    Ok((approvers, min))
}

fn approval_outputs(state: &str, decisions: &[Decision]) -> Map<String, Value> {
    let list: Vec<Value> = decisions
        .iter()
        .map(|d| {
            let mut m = json!({"Approver": d.approver, "Decision": d.decision});
            if let Some(c) = &d.comment {
                m["Comment"] = Value::String(c.clone());
            }
            m
        })
        .collect();
    let mut out = Map::new();
    out.insert("ApprovalStatus".into(), Value::String(state.into()));
    out.insert("ApproverDecisions".into(), Value::Array(list));
    out
}

fn update_variable(x: &mut Execution, rb: &Runbook, inputs: &Value) -> Result<(), String> {
    let name = inputs.get("Name").and_then(Value::as_str).unwrap_or_default();
    let Some(var) = name.strip_prefix("variable:") else {
        return Err(format!("aws:updateVariable Name must be variable:<name>, but is \"{name}\"."));
    };
    let Some(def) = rb.variables.get(var) else {
        return Err(format!("aws:updateVariable names variable \"{var}\", which the runbook does not declare."));
    };
    let value = inputs.get("Value").cloned().unwrap_or(Value::Null);
    let ty = def.get("type").and_then(Value::as_str).unwrap_or("String");
    let ok = match ty {
        "String" => value.is_string(),
        "Integer" => value.is_i64() || value.is_u64(),
        "Boolean" => value.is_boolean(),
        "StringList" => value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "StringMap" => value.is_object(),
        "MapList" => value.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
        _ => true,
    };
    if !ok {
        return Err(format!("aws:updateVariable: variable \"{var}\" is of type {ty}, and the value {value} is not."));
    }
    x.variables.insert(var.to_string(), value);
    Ok(())
}

fn start_loop(x: &mut Execution, rb: &Runbook, i: usize, def: &StepDef, inputs: &Value, now_ms: i64) {
    let max = inputs
        .get("MaxIterations")
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .map(|n| n.clamp(1, u64::from(MAX_LOOP_ITERATIONS)) as u32)
        .unwrap_or(MAX_LOOP_ITERATIONS);
    let values = match inputs.get("Iterators") {
        Some(Value::Array(items)) => {
            let ty = inputs.get("IteratorDataType").and_then(Value::as_str).unwrap_or("String");
            let typed: Result<Vec<Value>, String> = items
                .iter()
                .map(|v| match ty {
                    "String" => Ok(Value::String(crate::document::scalar_text(v))),
                    "StringMap" => match v {
                        Value::String(s) => {
                            serde_json::from_str(s).map_err(|_| format!("Iterator value {s} is not a StringMap."))
                        }
                        other => Ok(other.clone()),
                    },
                    other => selector::typed_output(v, other).map_err(|e| e.to_string()),
                })
                .collect();
            match typed {
                Ok(t) => Some(t),
                Err(m) => return fail(x, rb, i, Status::Failed, m, "InputValidation", "Verification", now_ms),
            }
        }
        Some(Value::String(s)) => Some(vec![Value::String(s.clone())]),
        _ if inputs.get("LoopCondition").is_some() => None,
        _ => {
            return fail(
                x,
                rb,
                i,
                Status::Failed,
                "aws:loop needs Iterators or LoopCondition.".into(),
                "InputValidation",
                "Verification",
                now_ms,
            );
        }
    };
    if values.as_ref().is_some_and(|v| v.len() > MAX_LOOP_ITERATIONS as usize) {
        return fail(
            x,
            rb,
            i,
            Status::Failed,
            format!("aws:loop takes at most {MAX_LOOP_ITERATIONS} Iterators."),
            "InputValidation",
            "Verification",
            now_ms,
        );
    }
    let Some(first) = def.steps.first() else {
        return succeed(x, rb, i, Map::new(), None, now_ms);
    };
    if values.as_ref().is_some_and(Vec::is_empty) {
        return succeed(x, rb, i, Map::new(), None, now_ms);
    }
    x.loops.push(LoopFrame { step: def.name.clone(), record: i, iteration: 1, values, max });
    set_loop_outputs(x, x.loops.len() - 1);
    x.at = At::Start(first.name.clone());
}

fn set_loop_outputs(x: &mut Execution, frame: usize) {
    let f = &x.loops[frame];
    let mut out = Map::new();
    out.insert("CurrentIteration".into(), Value::from(f.iteration));
    if let Some(v) = f.values.as_ref().and_then(|v| v.get(f.iteration as usize - 1)) {
        out.insert("CurrentIteratorValue".into(), v.clone());
    }
    let record = f.record;
    x.steps[record].outputs = out;
}

/// One iteration of the innermost loop ended: start the next one or finish the loop.
fn end_iteration(x: &mut Execution, rb: &Runbook, now_ms: i64) {
    let Some(f) = x.loops.last().cloned() else {
        // A loop body reached without its loop (an onCancel step inside a loop): the list ends.
        x.at = At::End;
        return;
    };
    let def = rb.step(&f.step).expect("loop frames name loop steps").clone();
    let more = match &f.values {
        Some(v) => Ok((f.iteration as usize) < v.len()),
        None => {
            let cond = def.inputs.get("LoopCondition").cloned().unwrap_or(Value::Null);
            resolve(x, &cond, now_ms).and_then(|c| branch::condition_holds(&c).map_err(|e| e.to_string()))
        }
    };
    match more {
        Ok(true) if f.iteration < f.max => {
            let frame = x.loops.len() - 1;
            x.loops[frame].iteration += 1;
            set_loop_outputs(x, frame);
            x.at = At::Start(def.steps[0].name.clone());
        }
        Ok(_) => {
            x.loops.pop();
            let outputs = x.steps[f.record].outputs.clone();
            succeed(x, rb, f.record, outputs, None, now_ms);
        }
        Err(m) => {
            x.loops.pop();
            fail(x, rb, f.record, Status::Failed, m, "Invocation", "Action", now_ms);
        }
    }
}

/// Keeps a running or waiting step going; `Some` when the execution must wait or needs work.
fn run_step(x: &mut Execution, rb: &Runbook, i: usize, now_ms: i64) -> Option<Need> {
    if is_terminal(x.steps[i].status) {
        // The record was stopped (StopStep, cancel): move on from it.
        let ok = x.steps[i].status == Status::Success;
        after_step(x, rb, i, ok, None, now_ms);
        return None;
    }
    let def = rb.step(&x.steps[i].name)?.clone();
    let r = &mut x.steps[i];
    match def.action.as_str() {
        "aws:sleep" => {
            let wake = r.wake_ms.unwrap_or(now_ms);
            if now_ms >= wake {
                succeed(x, rb, i, Map::new(), None, now_ms);
                None
            } else {
                Some(Need::Wait(Some(wake)))
            }
        }
        "aws:pause" if r.wake_ms.is_some_and(|w| now_ms >= w) => {
            let message =
                format!("The pause was not resumed within {} seconds.", def.timeout_seconds.unwrap_or_default());
            fail(x, rb, i, Status::TimedOut, message, "Invocation", "Action", now_ms);
            None
        }
        "aws:pause" => Some(Need::Wait(r.wake_ms)),
        "aws:approve" => {
            let inputs = Value::Object(r.inputs.clone().unwrap_or_default());
            let (_, min) = approve_rules(&inputs).unwrap_or((vec![], 1));
            let approvals = r.decisions.iter().filter(|d| d.decision == SignalType::Approve).count();
            if r.decisions.iter().any(|d| d.decision == SignalType::Reject) {
                r.outputs = approval_outputs("Rejected", &r.decisions);
                fail(x, rb, i, Status::Failed, "The approval was rejected.".into(), "Invocation", "Action", now_ms);
                None
            } else if approvals >= min {
                let outputs = approval_outputs("Approved", &r.decisions);
                succeed(x, rb, i, outputs, None, now_ms);
                None
            } else if r.wake_ms.is_some_and(|w| now_ms >= w) {
                fail(x, rb, i, Status::TimedOut, "The approval timed out.".into(), "Invocation", "Action", now_ms);
                None
            } else {
                Some(Need::Wait(r.wake_ms))
            }
        }
        _ => {
            if r.wake_ms.is_some_and(|w| now_ms >= w) {
                let mut message = format!("Step timed out after {} seconds.", def.timeout_seconds.unwrap_or_default());
                if let Some(c) = r.child.clone() {
                    x.cancel_children.push(c);
                }
                if let Some(c) = r.command.clone().filter(|_| r.dispatched) {
                    // The step gives up on its command: so do its nodes.
                    message = format!(
                        "The command {c} did not finish within {} seconds and was cancelled.",
                        def.timeout_seconds.unwrap_or(RUN_COMMAND_DEFAULT_TIMEOUT_S)
                    );
                    x.cancel_commands.push(c);
                }
                fail(x, rb, i, Status::TimedOut, message, "Invocation", "Action", now_ms);
                return None;
            }
            if r.dispatched {
                if r.child.is_some() {
                    return Some(Need::Wait(r.wake_ms));
                }
                if def.action == "aws:runCommand" && r.command.is_some() {
                    // Sending is idempotent on the command id: look at the command again.
                    return Some(Need::Effect(effect_for(x, &def, i, now_ms)));
                }
                // Found dispatched without a result: the server running it went away.
                if r.recoveries >= 1 {
                    fail(
                        x,
                        rb,
                        i,
                        Status::Failed,
                        "The step was interrupted twice by the server running it going away; it is not run again."
                            .into(),
                        "Invocation",
                        "Internal",
                        now_ms,
                    );
                    return None;
                }
                r.recoveries += 1;
            }
            r.dispatched = true;
            Some(Need::Effect(effect_for(x, &def, i, now_ms)))
        }
    }
}

fn input_str(inputs: &Map<String, Value>, key: &str) -> Option<String> {
    inputs.get(key).map(crate::document::scalar_text)
}

fn effect_for(x: &mut Execution, def: &StepDef, i: usize, now_ms: i64) -> Effect {
    let r = &x.steps[i];
    let inputs = r.inputs.clone().unwrap_or_default();
    let attempt = r.attempt;
    let timeout_s = |max: Option<i64>, default: i64| {
        let t = def.timeout_seconds.unwrap_or(default);
        max.map_or(t, |m| t.min(m))
    };
    match def.action.as_str() {
        "aws:executeScript" => Effect::Script {
            record: i,
            attempt,
            runtime: input_str(&inputs, "Runtime").unwrap_or_default(),
            handler: input_str(&inputs, "Handler").unwrap_or_default(),
            script: input_str(&inputs, "Script").unwrap_or_default(),
            events: inputs.get("InputPayload").cloned().unwrap_or_else(|| json!({})),
            timeout_s: timeout_s(Some(SCRIPT_MAX_TIMEOUT_S), SCRIPT_MAX_TIMEOUT_S),
        },
        "aws:executeAutomation" => {
            let id = crate::ids::uuid();
            x.steps[i].child = Some(id.clone());
            let mut req = Map::new();
            for (from, to) in [
                ("DocumentName", "DocumentName"),
                ("DocumentVersion", "DocumentVersion"),
                ("RuntimeParameters", "Parameters"),
                ("Targets", "Targets"),
                ("TargetParameterName", "TargetParameterName"),
                ("TargetMaps", "TargetMaps"),
                ("MaxConcurrency", "MaxConcurrency"),
                ("MaxErrors", "MaxErrors"),
                ("Tags", "Tags"),
            ] {
                if let Some(v) = inputs.get(from) {
                    req.insert(to.into(), v.clone());
                }
            }
            if let Some(Value::Object(params)) = req.get_mut("Parameters") {
                for v in params.values_mut() {
                    let wire = match &*v {
                        Value::Array(items) => {
                            Value::Array(items.iter().map(|i| Value::String(crate::document::scalar_text(i))).collect())
                        }
                        other => json!([crate::document::scalar_text(other)]),
                    };
                    *v = wire;
                }
            }
            let _ = now_ms;
            Effect::Start(vec![ChildStart { id, record: i, attempt, request: Value::Object(req), target: None }])
        }
        "aws:runCommand" => {
            let command_id = x.steps[i].command.clone().unwrap_or_else(crate::ids::uuid);
            x.steps[i].command = Some(command_id.clone());
            let mut request = Map::new();
            for key in RUN_COMMAND_INPUTS {
                if let Some(v) = inputs.get(*key) {
                    request.insert(key.to_string(), v.clone());
                }
            }
            if let Some(Value::String(t)) = request.get("TimeoutSeconds")
                && let Ok(n) = t.trim().parse::<i64>()
            {
                request.insert("TimeoutSeconds".into(), json!(n));
            }
            if let Some(Value::Object(params)) = request.get_mut("Parameters") {
                for v in params.values_mut() {
                    *v = match &*v {
                        Value::Array(items) => {
                            Value::Array(items.iter().map(|i| Value::String(crate::document::scalar_text(i))).collect())
                        }
                        other => json!([crate::document::scalar_text(other)]),
                    };
                }
            }
            Effect::RunCommand {
                record: i,
                attempt,
                command_id,
                request,
                timeout_s: timeout_s(None, RUN_COMMAND_DEFAULT_TIMEOUT_S),
            }
        }
        action => {
            let mut params = inputs.clone();
            let service = params.remove("Service").map(|v| crate::document::scalar_text(&v)).unwrap_or_default();
            let api = params.remove("Api").map(|v| crate::document::scalar_text(&v)).unwrap_or_default();
            let selector = params.remove("PropertySelector").map(|v| crate::document::scalar_text(&v));
            let desired: Vec<String> = match params.remove("DesiredValues") {
                Some(Value::Array(a)) => a.iter().map(crate::document::scalar_text).collect(),
                Some(v) => vec![crate::document::scalar_text(&v)],
                None => vec![],
            };
            let (check, timeout) = match action {
                "aws:waitForAwsResourceProperty" => (
                    ApiCheck::Wait { selector: selector.unwrap_or_default(), desired },
                    timeout_s(None, WAIT_DEFAULT_TIMEOUT_S),
                ),
                "aws:assertAwsResourceProperty" => {
                    (ApiCheck::Assert { selector: selector.unwrap_or_default(), desired }, timeout_s(None, 25))
                }
                _ => (ApiCheck::Outputs, timeout_s(None, 25)),
            };
            Effect::Api { record: i, attempt, service, api, params, check, timeout_s: timeout }
        }
    }
}

/// Feeds back the outcome of an effect for record `i`, attempt `attempt`. Stale outcomes (the
/// record moved on) are ignored.
pub fn complete(x: &mut Execution, rb: &Runbook, i: usize, attempt: u32, outcome: Outcome, now_ms: i64) {
    let Some(r) = x.steps.get_mut(i) else { return };
    if r.attempt != attempt || is_terminal(r.status) || is_terminal(x.status) {
        return;
    }
    let Some(def) = rb.step(&r.name).cloned() else { return };
    r.dispatched = false;
    let result: Result<Map<String, Value>, StepFailure> = match outcome {
        Outcome::Payload { payload, stdout } => {
            let wrapped = json!({"Payload": payload});
            let mut out = Map::new();
            out.insert("Payload".into(), payload.clone());
            let mut op = json!({"Payload": payload});
            if !stdout.is_empty() {
                op["ScriptOutput"] = Value::String(stdout);
            }
            out.insert("OutputPayload".into(), op);
            select_outputs(&def, &wrapped, out)
        }
        Outcome::Response(resp) => match &def.action[..] {
            "aws:assertAwsResourceProperty" => {
                let sel = x.steps[i]
                    .inputs
                    .as_ref()
                    .and_then(|m| m.get("PropertySelector"))
                    .map(crate::document::scalar_text);
                let desired: Vec<String> = match x.steps[i].inputs.as_ref().and_then(|m| m.get("DesiredValues")) {
                    Some(Value::Array(a)) => a.iter().map(crate::document::scalar_text).collect(),
                    Some(v) => vec![crate::document::scalar_text(v)],
                    None => vec![],
                };
                match property_matches(&resp, sel.as_deref().unwrap_or("$"), &desired) {
                    Ok(true) => Ok(Map::new()),
                    Ok(false) | Err(_) => Err((
                        Status::Failed,
                        format!(
                            "The property {} is {}, which is not one of the desired values {:?}.",
                            sel.as_deref().unwrap_or("$"),
                            selector::select(&resp, sel.as_deref().unwrap_or("$"))
                                .ok()
                                .flatten()
                                .map_or("missing".to_string(), |v| v.to_string()),
                            desired
                        ),
                        "PostVerification",
                        "Verification",
                    )),
                }
            }
            "aws:executeAwsApi" => select_outputs(&def, &resp, Map::new()),
            _ => Ok(Map::new()),
        },
        Outcome::Child { id, status: st, outputs, failure } => {
            let mut out = Map::new();
            out.insert("ExecutionId".into(), Value::String(id.clone()));
            out.insert("Status".into(), Value::String(st.to_string()));
            out.insert("Output".into(), Value::String(serde_json::to_string(&outputs).unwrap_or_default()));
            if st == Status::Success {
                Ok(out)
            } else {
                x.steps[i].outputs = out;
                let step_status = if st == Status::TimedOut { Status::TimedOut } else { Status::Failed };
                Err((
                    step_status,
                    format!(
                        "The child automation {id} ended {st}{}",
                        failure.map(|f| format!(": {f}")).unwrap_or_else(|| ".".into())
                    ),
                    "Invocation",
                    "Action",
                ))
            }
        }
        Outcome::Command { id, status: st, response_code, output } => {
            let mut out = Map::new();
            out.insert("CommandId".into(), Value::String(id.clone()));
            out.insert("Status".into(), Value::String(st.to_string()));
            out.insert("ResponseCode".into(), json!(response_code));
            out.insert("Output".into(), Value::String(output));
            if st == CommandStatus::Success {
                Ok(out)
            } else {
                x.steps[i].outputs = out;
                let step_status = if st == CommandStatus::TimedOut { Status::TimedOut } else { Status::Failed };
                Err((step_status, format!("The command {id} ended {st}."), "Invocation", "Action"))
            }
        }
        Outcome::Failed { message, stage, kind } => Err((Status::Failed, message, stage, kind)),
        Outcome::TimedOut { message } => Err((Status::TimedOut, message, "Invocation", "Action")),
    };
    match result {
        Ok(outputs) => succeed(x, rb, i, outputs, None, now_ms),
        Err((st, message, stage, kind)) => fail(x, rb, i, st, message, stage, kind, now_ms),
    }
}

fn property_matches(resp: &Value, sel: &str, desired: &[String]) -> Result<bool, String> {
    let v = selector::select(resp, sel).map_err(|e| e.to_string())?;
    let text = |v: &Value| match v {
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        other => crate::document::scalar_text(other),
    };
    Ok(match v {
        None => false,
        Some(Value::Array(items)) => !items.is_empty() && items.iter().all(|i| desired.contains(&text(i))),
        Some(v) => desired.iter().any(|d| d == &text(&v) || d.eq_ignore_ascii_case(&text(&v)) && v.is_boolean()),
    })
}

/// Public for the engine's `aws:waitForAwsResourceProperty` polling.
pub fn wait_satisfied(resp: &Value, sel: &str, desired: &[String]) -> bool {
    property_matches(resp, sel, desired).unwrap_or(false)
}

type StepFailure = (Status, String, &'static str, &'static str);

fn select_outputs(def: &StepDef, doc: &Value, mut out: Map<String, Value>) -> Result<Map<String, Value>, StepFailure> {
    for o in &def.outputs {
        let fail = |m: String| (Status::Failed, m, "PostVerification", "Verification");
        match selector::select(doc, &o.selector) {
            Ok(Some(v)) => {
                let typed = selector::typed_output(&v, &o.ty).map_err(|e| fail(format!("Output {}: {e}", o.name)))?;
                out.insert(o.name.clone(), typed);
            }
            Ok(None) => {}
            Err(e) => return Err(fail(format!("Output {}: {e}", o.name))),
        }
    }
    Ok(out)
}

fn succeed(x: &mut Execution, rb: &Runbook, i: usize, outputs: Map<String, Value>, jump: Option<String>, now_ms: i64) {
    let r = &mut x.steps[i];
    r.status = Status::Success;
    r.end_ms = Some(now_ms);
    r.outputs = outputs;
    r.dispatched = false;
    r.failure_message = None;
    r.failure = None;
    after_step(x, rb, i, true, jump, now_ms);
}

#[allow(clippy::too_many_arguments)]
fn fail(x: &mut Execution, rb: &Runbook, i: usize, st: Status, message: String, stage: &str, kind: &str, now_ms: i64) {
    let def = rb.step(&x.steps[i].name).cloned();
    let r = &mut x.steps[i];
    r.dispatched = false;
    if let Some(d) = &def
        && r.attempt < d.max_attempts
        && x.status != Status::Cancelling
    {
        r.attempt += 1;
        r.failure_message = Some(message);
        // The next attempt starts from `drive`'s loop, not from here: a step that fails at once
        // many times must not recurse.
        x.at = At::Retry(i);
        return;
    }
    r.status = st;
    r.end_ms = Some(now_ms);
    r.failure_message = Some(message);
    r.failure = Some((stage.into(), kind.into()));
    after_step(x, rb, i, false, None, now_ms);
}

/// Chooses what follows record `i` (which just succeeded or failed) and moves there.
fn after_step(x: &mut Execution, rb: &Runbook, i: usize, ok: bool, jump: Option<String>, now_ms: i64) {
    let name = x.steps[i].name.clone();
    let Some(def) = rb.step(&name).cloned() else { return };
    enum Next {
        Goto(String),
        EndOfList,
        Finish,
        Abort,
    }
    let normal = |def: &StepDef| {
        if def.is_end {
            Next::Finish
        } else if let Some(n) = &def.next_step {
            Next::Goto(n.clone())
        } else {
            match rb.following(&def.name) {
                Some(s) => Next::Goto(s.name.clone()),
                None => Next::EndOfList,
            }
        }
    };
    let next = if ok {
        match jump {
            Some(j) => Next::Goto(j),
            None => normal(&def),
        }
    } else {
        let r = &x.steps[i];
        if def.is_critical {
            x.failed = Some(if r.status == Status::TimedOut { Status::TimedOut } else { Status::Failed });
            x.failure_message = Some(format!(
                "Step fails when it is {}. {}",
                match r.status {
                    Status::TimedOut => "timed out",
                    _ => "executing",
                },
                r.failure_message.clone().unwrap_or_default()
            ));
        }
        match &def.on_failure {
            _ if def.is_end => Next::Finish,
            OnFailure::Abort => Next::Abort,
            OnFailure::Continue => normal(&def),
            OnFailure::Step(s) => Next::Goto(s.clone()),
        }
    };
    let interactive = x.mode == ExecutionMode::Interactive && x.cancel_deadline_ms.is_none() && x.loops.is_empty();
    match next {
        Next::Abort => {
            let st = x.failed.unwrap_or(Status::Failed);
            if x.cancel_deadline_ms.is_some() { finish(x, Status::Cancelled, now_ms) } else { finish(x, st, now_ms) }
        }
        Next::Finish if interactive => {
            x.steps[i].valid_next.clear();
            x.at = At::Idle;
        }
        Next::Finish => {
            for f in std::mem::take(&mut x.loops) {
                let r = &mut x.steps[f.record];
                if !is_terminal(r.status) {
                    r.status = if ok { Status::Success } else { Status::Failed };
                    r.end_ms = Some(now_ms);
                }
            }
            x.at = At::End;
        }
        Next::Goto(s) if interactive => {
            x.steps[i].valid_next = vec![s];
            x.at = At::Idle;
        }
        Next::Goto(s) => {
            // A jump out of a loop body closes the loops it leaves.
            let target_parent = rb.place(&s).and_then(|p| p.parent.clone());
            while let Some(f) = x.loops.last() {
                if Some(&f.step) == target_parent.as_ref() {
                    break;
                }
                let f = x.loops.pop().expect("checked");
                let r = &mut x.steps[f.record];
                if !is_terminal(r.status) {
                    r.status = if ok { Status::Success } else { Status::Failed };
                    r.end_ms = Some(now_ms);
                }
            }
            x.at = At::Start(s);
        }
        Next::EndOfList => {
            if rb.place(&name).and_then(|p| p.parent.clone()).is_some() {
                end_iteration(x, rb, now_ms);
            } else if interactive {
                x.at = At::Idle;
            } else {
                x.at = At::End;
            }
        }
    }
}

fn drive_fanout(x: &mut Execution, now_ms: i64) -> Need {
    let cancelling = x.status == Status::Cancelling;
    let f = x.fanout.as_mut().expect("checked by the caller");
    if cancelling && !f.controller.cancelled() {
        f.controller.cancel();
        let running = f.controller.running() > 0;
        finish(x, Status::Cancelled, now_ms);
        for r in x.steps.iter_mut().filter(|r| !is_terminal(r.status)) {
            r.status = Status::Cancelled;
            r.end_ms = Some(now_ms);
        }
        return if running { Need::Effect(Effect::CancelTargets) } else { Need::Done };
    }
    let batch = f.controller.next_batch();
    if !batch.is_empty() {
        return Need::Effect(Effect::StartTargets(batch));
    }
    if f.controller.done() {
        let ok = f.controller.all_succeeded();
        let (failed, total, not_started) =
            (f.controller.failed(), f.controller.total(), f.controller.not_started().len());
        if !ok {
            x.failure_message = Some(if not_started > 0 {
                format!(
                    "{failed} of {total} targets failed; the error threshold stopped the run before {not_started} targets started."
                )
            } else {
                format!("{failed} of {total} targets failed.")
            });
        }
        finish(x, if ok { Status::Success } else { Status::Failed }, now_ms);
        return Need::Done;
    }
    Need::Wait(None)
}

/// Reports that the fan-out target `seq` (started by [`Effect::StartTargets`]) ended; each
/// target is reported once (the engine marks its row reported in the same write).
pub fn target_finished(x: &mut Execution, seq: usize, ok: bool) {
    if let Some(f) = x.fanout.as_mut() {
        f.controller.finished(seq, ok);
    }
}

/// A fan-out target as a step record (how GetAutomationExecution shows it): a step named for the
/// target running `aws:executeAutomation`, with its child's id, status and outputs.
#[allow(clippy::too_many_arguments)]
pub fn target_record(
    step_id: &str,
    label: &str,
    parameters: &BTreeMap<String, Vec<String>>,
    child: Option<&str>,
    status: Status,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    child_outputs: Option<&BTreeMap<String, Vec<String>>>,
    failure: Option<String>,
) -> StepRecord {
    let mut outputs = Map::new();
    if is_terminal(status)
        && let Some(id) = child
    {
        outputs.insert("ExecutionId".into(), Value::String(id.to_string()));
        outputs.insert("Status".into(), Value::String(status.to_string()));
        let out = child_outputs.cloned().unwrap_or_default();
        outputs.insert("Output".into(), Value::String(serde_json::to_string(&out).unwrap_or_default()));
    }
    let failed = is_terminal(status) && status != Status::Success;
    StepRecord {
        id: step_id.to_string(),
        name: label.to_string(),
        action: "aws:executeAutomation".into(),
        status,
        start_ms,
        end_ms,
        inputs: Some(parameters.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
        outputs,
        failure_message: failure.filter(|_| failed),
        failure: failed.then(|| ("Invocation".into(), "Action".into())),
        attempt: 1,
        child: child.map(str::to_string),
        ..Default::default()
    }
}

/// Applies `SendAutomationSignal`.
pub fn signal(
    x: &mut Execution,
    rb: &Runbook,
    kind: SignalType,
    payload: &BTreeMap<String, Vec<String>>,
    caller: &Caller<'_>,
    now_ms: i64,
) -> Result<(), SignalError> {
    if is_terminal(x.status) {
        return Err(SignalError::Invalid(format!(
            "The automation execution {} is {} and takes no more signals.",
            x.id, x.status
        )));
    }
    let first = |key: &str| payload.get(key).and_then(|v| v.first()).cloned();
    match kind {
        SignalType::Approve | SignalType::Reject => {
            let i = match x.at {
                At::Running(i) if x.steps[i].action == "aws:approve" && x.steps[i].status == Status::Waiting => i,
                _ => {
                    return Err(SignalError::Invalid(format!(
                        "The automation execution {} is not waiting for an approval.",
                        x.id
                    )));
                }
            };
            let inputs = Value::Object(x.steps[i].inputs.clone().unwrap_or_default());
            let (approvers, _) = approve_rules(&inputs).map_err(SignalError::Invalid)?;
            if !approvers.iter().any(|a| approver_matches(a, caller)) {
                return Err(SignalError::Invalid(format!(
                    "{} is not one of the approvers of step {}.",
                    caller.arn, x.steps[i].name
                )));
            }
            let r = &mut x.steps[i];
            r.decisions.retain(|d| d.approver != caller.arn);
            r.decisions.push(Decision {
                approver: caller.arn.to_string(),
                decision: kind,
                comment: first("Comment"),
                time_ms: now_ms,
            });
            let decisions = r.decisions.clone();
            r.outputs = approval_outputs("Waiting", &decisions);
            Ok(())
        }
        SignalType::Resume => {
            let step = first("StepName")
                .ok_or_else(|| SignalError::Invalid("Resume needs StepName in the payload.".into()))?;
            if rb.step(&step).is_none() {
                return Err(SignalError::StepNotFound(format!("Step {step} does not exist in the runbook.")));
            }
            match x.at {
                At::Running(i) if x.steps[i].action == "aws:pause" && x.steps[i].name == step => {
                    succeed(x, rb, i, Map::new(), None, now_ms);
                    Ok(())
                }
                _ => Err(SignalError::Invalid(format!("Step {step} is not paused."))),
            }
        }
        SignalType::StartStep => {
            let step = first("StepName")
                .ok_or_else(|| SignalError::Invalid("StartStep needs StepName in the payload.".into()))?;
            if rb.step(&step).is_none() || rb.place(&step).is_some_and(|p| p.parent.is_some()) {
                return Err(SignalError::StepNotFound(format!("Step {step} does not exist in the runbook.")));
            }
            if x.mode != ExecutionMode::Interactive {
                return Err(SignalError::Invalid("StartStep is only valid for executions in Interactive mode.".into()));
            }
            if x.at != At::Idle || x.status == Status::Cancelling {
                return Err(SignalError::Invalid(format!(
                    "The automation execution {} is running a step; StartStep is valid between steps.",
                    x.id
                )));
            }
            x.overrides =
                payload.iter().filter(|(k, _)| *k != "StepName").map(|(k, v)| (k.clone(), v.clone())).collect();
            x.at = At::Start(step);
            x.status = Status::InProgress;
            Ok(())
        }
        SignalType::StopStep => {
            let id = first("StepExecutionId")
                .ok_or_else(|| SignalError::Invalid("StopStep needs StepExecutionId in the payload.".into()))?;
            let Some(i) = x.steps.iter().position(|r| r.id == id) else {
                return Err(SignalError::StepNotFound(format!("Step execution {id} does not exist.")));
            };
            if !matches!(x.at, At::Running(j) | At::Retry(j) if j == i) || is_terminal(x.steps[i].status) {
                return Err(SignalError::Invalid(format!("Step execution {id} is not running.")));
            }
            interrupt_current(x, now_ms, Status::Cancelled);
            x.steps[i].failure_message = Some("The step was stopped by a StopStep signal.".into());
            if x.mode == ExecutionMode::Interactive {
                x.at = At::Idle;
                x.status = Status::Waiting;
            }
            Ok(())
        }
        other => {
            Err(SignalError::Invalid(format!("ssmd does not support the signal {other} for Automation executions.")))
        }
    }
}

/// Whether an `Approvers` entry names the caller: its ARN, its user or role name (the last part
/// of the ARN), or the account root (`arn:aws:iam::ACCOUNT:root` or the account id).
fn approver_matches(entry: &str, caller: &Caller<'_>) -> bool {
    let entry = entry.trim();
    if entry == caller.arn {
        return true;
    }
    let user = caller.arn.split_once(":user/").map(|(_, path)| path.rsplit('/').next().unwrap_or(path));
    user == Some(entry) || (caller.arn.ends_with(":root") && entry == caller.account)
}

/// Applies `StopAutomationExecution` (`Cancel` or `Complete`).
pub fn stop(x: &mut Execution, kind: StopType, now_ms: i64) -> Result<(), SignalError> {
    if is_terminal(x.status) || (x.status == Status::Cancelling && kind != StopType::Complete) {
        return Err(SignalError::Invalid(format!(
            "The automation execution {} is {}; it can't be stopped.",
            x.id, x.status
        )));
    }
    match kind {
        StopType::Complete if x.cancel_deadline_ms.is_some() || x.fanout.is_some() => {
            return Err(SignalError::Invalid(format!(
                "The automation execution {} can't be completed: Complete ends Interactive executions; use Cancel.",
                x.id
            )));
        }
        StopType::Complete => {
            interrupt_current(x, now_ms, Status::Cancelled);
            let st = x.failed.unwrap_or(Status::Success);
            finish(x, st, now_ms);
        }
        StopType::Cancel => {
            if x.status == Status::Pending {
                finish(x, Status::Cancelled, now_ms);
                return Ok(());
            }
            x.cancelled_record = match x.at {
                At::Running(i) | At::Retry(i) => Some(i),
                _ => None,
            };
            interrupt_current(x, now_ms, Status::Cancelled);
            for f in std::mem::take(&mut x.loops) {
                let r = &mut x.steps[f.record];
                if !is_terminal(r.status) {
                    r.status = Status::Cancelled;
                    r.end_ms = Some(now_ms);
                }
            }
            x.at = At::End;
            x.status = Status::Cancelling;
        }
    }
    Ok(())
}

/// The fan-out of a rate-controlled parent (its targets are rows of their own).
pub fn fanout(controller: crate::rate::RateController, from_targets: bool) -> FanOut {
    FanOut { controller, items: Vec::new(), from_targets, last_label: None }
}

/// The document outputs (`step.Output` strings) in wire form.
pub fn document_outputs(x: &Execution, rb: &Runbook) -> BTreeMap<String, Vec<String>> {
    let view = View { x, now_ms: 0 };
    rb.outputs
        .iter()
        .map(|o| {
            let value = o.split_once('.').and_then(|(s, n)| view.step_output(s, n));
            let wire = match value {
                Some(v) => {
                    let mut m = Map::new();
                    m.insert(String::new(), v);
                    super::params::to_wire(&m).remove("").unwrap_or_default()
                }
                None => vec!["No output available yet because the step is not successfully executed".to_string()],
            };
            (o.clone(), wire)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::execution::Echo;
    use crate::rate::{parse_concurrency, parse_errors};
    use serde_json::json;

    fn rb(steps: Value) -> Runbook {
        Runbook::from_document(
            &json!({"schemaVersion": "0.3", "mainSteps": steps, "variables": {"n": {"type": "Integer", "default": 0}}}),
        )
    }

    fn exec(rb: &Runbook, mode_name: ExecutionMode) -> Execution {
        Execution {
            id: "11111111-2222-3333-4444-555555555555".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            document_name: "Doc".into(),
            document_version: "1".into(),
            mode: mode_name,
            status: Status::Pending,
            executed_by: "arn:aws:iam::123456789012:root".into(),
            start_ms: 0,
            end_ms: None,
            parameters: Map::new(),
            variables: Map::from_iter([("n".to_string(), json!(0))]),
            steps: pending_records(rb),
            at: initial_position(rb, mode_name),
            loops: vec![],
            failure_message: None,
            failed: None,
            parent_id: None,
            target: None,
            fanout: None,
            echo: Echo::default(),
            cancel_deadline_ms: None,
            cancelled_record: None,
            cancel_children: vec![],
            cancel_commands: vec![],
            assume_role: None,
            overrides: BTreeMap::new(),
        }
    }

    fn st<'a>(x: &'a Execution, name: &str) -> Vec<&'a str> {
        x.steps.iter().filter(|r| r.name == name).map(|r| r.status.as_str()).collect()
    }

    fn script(name: &str, extra: Value) -> Value {
        let mut s = json!({"name": name, "action": "aws:executeScript", "inputs": {"Runtime": "python3.11", "Handler": "h", "Script": "x"}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    /// Drives until an effect is needed; returns (record, attempt).
    fn effect(x: &mut Execution, rb: &Runbook, now: i64) -> (usize, u32) {
        match drive(x, rb, now) {
            Need::Effect(Effect::Script { record, attempt, .. } | Effect::Api { record, attempt, .. }) => {
                (record, attempt)
            }
            other => panic!("expected an effect, got {other:?}"),
        }
    }

    #[test]
    fn sleep_then_branch_then_end() {
        let rb = rb(json!([
            {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT5S"}},
            {"name": "b", "action": "aws:branch", "inputs": {"Choices": [{"NextStep": "z", "Variable": "x", "StringEquals": "x"}]}},
            {"name": "skipped", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
            {"name": "z", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}
        ]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        assert_eq!(drive(&mut x, &rb, 1000), Need::Wait(Some(6000)));
        assert_eq!(x.status, Status::InProgress);
        assert_eq!(drive(&mut x, &rb, 5999), Need::Wait(Some(6000)));
        assert_eq!(drive(&mut x, &rb, 6000), Need::Done);
        assert_eq!(x.status, Status::Success);
        assert_eq!(st(&x, "skipped"), ["Pending"], "a branch skips a step, which stays Pending");
        assert_eq!(st(&x, "z"), ["Success"]);
        assert_eq!(x.end_ms, Some(6000));
    }

    #[test]
    fn retries_then_abort_fails_the_execution() {
        let rb = rb(
            json!([script("s", json!({"maxAttempts": 2})), {"name": "after", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}]),
        );
        let mut x = exec(&rb, ExecutionMode::Auto);
        let (i, a) = effect(&mut x, &rb, 0);
        complete(&mut x, &rb, i, a, Outcome::failed("boom 1"), 1);
        let (i2, a2) = effect(&mut x, &rb, 2);
        assert_eq!((i2, a2), (i, 2), "the second attempt runs in the same record");
        complete(&mut x, &rb, i, 1, Outcome::failed("stale"), 3);
        assert_eq!(x.steps[i].attempt, 2, "an outcome of an old attempt is ignored");
        complete(&mut x, &rb, i, 2, Outcome::failed("boom 2"), 4);
        assert_eq!(drive(&mut x, &rb, 5), Need::Done);
        assert_eq!(x.status, Status::Failed);
        assert_eq!(st(&x, "after"), ["Pending"]);
        assert!(x.failure_message.as_deref().unwrap().contains("boom 2"), "{:?}", x.failure_message);
        assert_eq!(x.steps[i].failure, Some(("Invocation".into(), "Action".into())));
    }

    #[test]
    fn continue_and_step_jumps() {
        let rb = rb(json!([
            script("a", json!({"onFailure": "Continue"})),
            script("b", json!({"onFailure": "step:d"})),
            {"name": "c", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
            {"name": "d", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}, "isEnd": true},
            {"name": "e", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}
        ]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        let (i, a) = effect(&mut x, &rb, 0);
        complete(&mut x, &rb, i, a, Outcome::failed("non-critical"), 0);
        let (i, a) = effect(&mut x, &rb, 0);
        complete(&mut x, &rb, i, a, Outcome::failed("critical"), 0);
        assert_eq!(drive(&mut x, &rb, 0), Need::Done);
        assert_eq!((st(&x, "c"), st(&x, "d"), st(&x, "e")), (vec!["Pending"], vec!["Success"], vec!["Pending"]));
        assert_eq!(x.status, Status::Failed, "b is critical, so the execution fails even though it carried on");
    }

    #[test]
    fn a_non_critical_failure_leaves_success() {
        let rb = rb(json!([script("a", json!({"onFailure": "Continue"}))]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        let (i, a) = effect(&mut x, &rb, 0);
        complete(&mut x, &rb, i, a, Outcome::TimedOut { message: "slow".into() }, 0);
        assert_eq!(drive(&mut x, &rb, 0), Need::Done);
        assert_eq!(x.status, Status::Success);
        assert_eq!(st(&x, "a"), ["TimedOut"]);
    }

    #[test]
    fn approvals_count_distinct_approvers_and_one_reject_ends_it() {
        let steps = json!([{"name": "ok", "action": "aws:approve", "timeoutSeconds": 60,
            "inputs": {"Approvers": ["alice", "arn:aws:iam::123456789012:user/bob"], "MinRequiredApprovals": 2}}]);
        let rb = rb(steps);
        let alice = Caller { arn: "arn:aws:iam::123456789012:user/alice", account: "123456789012" };
        let bob = Caller { arn: "arn:aws:iam::123456789012:user/bob", account: "123456789012" };
        let eve = Caller { arn: "arn:aws:iam::123456789012:user/eve", account: "123456789012" };
        let none = BTreeMap::new();
        let mut x = exec(&rb, ExecutionMode::Auto);
        assert_eq!(drive(&mut x, &rb, 0), Need::Wait(Some(60_000)));
        assert_eq!(x.status, Status::Waiting);
        assert!(matches!(signal(&mut x, &rb, SignalType::Approve, &none, &eve, 1), Err(SignalError::Invalid(_))));
        signal(&mut x, &rb, SignalType::Approve, &none, &alice, 1).unwrap();
        signal(&mut x, &rb, SignalType::Approve, &none, &alice, 2).unwrap();
        assert_eq!(drive(&mut x, &rb, 3), Need::Wait(Some(60_000)), "one approver twice is one approval");
        signal(&mut x, &rb, SignalType::Approve, &none, &bob, 4).unwrap();
        assert_eq!(drive(&mut x, &rb, 5), Need::Done);
        assert_eq!(x.status, Status::Success);
        assert_eq!(x.steps[0].outputs["ApprovalStatus"], json!("Approved"));
        assert_eq!(x.steps[0].outputs["ApproverDecisions"].as_array().unwrap().len(), 2);

        let mut x = exec(&rb, ExecutionMode::Auto);
        drive(&mut x, &rb, 0);
        signal(&mut x, &rb, SignalType::Reject, &none, &bob, 1).unwrap();
        drive(&mut x, &rb, 2);
        assert_eq!((x.status.as_str(), x.steps[0].outputs["ApprovalStatus"].as_str()), ("Failed", Some("Rejected")));

        let mut x = exec(&rb, ExecutionMode::Auto);
        drive(&mut x, &rb, 0);
        assert_eq!(drive(&mut x, &rb, 60_000), Need::Done);
        assert_eq!(x.status, Status::TimedOut);
    }

    #[test]
    fn pause_resumes_on_its_step_name() {
        let rb = rb(json!([{"name": "p", "action": "aws:pause", "inputs": {}}]));
        let who = Caller { arn: "arn:aws:iam::123456789012:root", account: "123456789012" };
        let mut x = exec(&rb, ExecutionMode::Auto);
        assert_eq!(drive(&mut x, &rb, 0), Need::Wait(None));
        let other = BTreeMap::from([("StepName".to_string(), vec!["nope".to_string()])]);
        assert!(matches!(signal(&mut x, &rb, SignalType::Resume, &other, &who, 1), Err(SignalError::StepNotFound(_))));
        let right = BTreeMap::from([("StepName".to_string(), vec!["p".to_string()])]);
        signal(&mut x, &rb, SignalType::Resume, &right, &who, 1).unwrap();
        assert_eq!(drive(&mut x, &rb, 2), Need::Done);
        assert_eq!(x.status, Status::Success);
    }

    #[test]
    fn cancel_runs_the_on_cancel_step_and_leaves_the_rest_pending() {
        let rb = rb(json!([
            {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}, "onCancel": "step:cleanup"},
            {"name": "next", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
            {"name": "cleanup", "action": "aws:updateVariable", "inputs": {"Name": "variable:n", "Value": 7}}
        ]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        drive(&mut x, &rb, 0);
        stop(&mut x, StopType::Cancel, 10).unwrap();
        assert_eq!(x.status, Status::Cancelling);
        assert_eq!(drive(&mut x, &rb, 11), Need::Done);
        assert_eq!(x.status, Status::Cancelled);
        assert_eq!(
            (st(&x, "nap"), st(&x, "next"), st(&x, "cleanup")),
            (vec!["Cancelled"], vec!["Pending"], vec!["Success"])
        );
        assert_eq!(x.variables["n"], json!(7));
        assert!(stop(&mut x, StopType::Cancel, 12).is_err(), "a finished execution can't be stopped");
    }

    #[test]
    fn interactive_mode_waits_before_every_step() {
        let rb = rb(json!([
            {"name": "one", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
            {"name": "two", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}
        ]));
        let who = Caller { arn: "arn:aws:iam::123456789012:root", account: "123456789012" };
        let mut x = exec(&rb, ExecutionMode::Interactive);
        assert_eq!(drive(&mut x, &rb, 0), Need::Wait(None));
        assert_eq!((x.status.as_str(), st(&x, "one")), ("Waiting", vec!["Pending"]));
        let go = |s: &str| BTreeMap::from([("StepName".to_string(), vec![s.to_string()])]);
        signal(&mut x, &rb, SignalType::StartStep, &go("one"), &who, 1).unwrap();
        assert_eq!(drive(&mut x, &rb, 1), Need::Wait(None));
        assert_eq!((x.status.as_str(), st(&x, "one")), ("Waiting", vec!["Success"]));
        assert_eq!(x.steps[0].valid_next, ["two"]);
        assert!(matches!(
            signal(&mut x, &rb, SignalType::StartStep, &go("zzz"), &who, 2),
            Err(SignalError::StepNotFound(_))
        ));
        stop(&mut x, StopType::Complete, 3).unwrap();
        assert_eq!((x.status.as_str(), st(&x, "two")), ("Success", vec!["Pending"]));
    }

    #[test]
    fn loops_run_their_body_per_iterator_value() {
        let rb = rb(json!([
            {"name": "l", "action": "aws:loop", "inputs": {"Iterators": ["a", "b", "c"], "Steps": [
                {"name": "add", "action": "aws:updateVariable", "inputs": {"Name": "variable:n", "Value": "{{ l.CurrentIteration }}"}},
                {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}
            ]}},
            {"name": "after", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}
        ]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        assert_eq!(drive(&mut x, &rb, 0), Need::Done);
        assert_eq!(x.status, Status::Success, "{:?}", x.failure_message);
        assert_eq!(st(&x, "add"), ["Success"; 3]);
        assert_eq!(x.variables["n"], json!(3));
        let values: Vec<_> =
            x.steps.iter().filter(|r| r.name == "nap").map(|r| r.parent.clone().unwrap().iterator_value).collect();
        assert_eq!(values, [Some("a".into()), Some("b".into()), Some("c".into())]);
        assert_eq!(st(&x, "l"), ["Success"]);
        assert_eq!(st(&x, "after"), ["Success"]);
    }

    #[test]
    fn a_dispatched_effect_found_after_a_crash_reruns_once() {
        let rb = rb(json!([script("s", json!({}))]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        effect(&mut x, &rb, 0);
        // The engine died: the persisted state is found again with the effect dispatched.
        effect(&mut x, &rb, 1);
        assert_eq!(x.steps[0].recoveries, 1);
        assert_eq!(drive(&mut x, &rb, 2), Need::Done);
        assert_eq!(x.status, Status::Failed);
        assert!(x.steps[0].failure_message.as_deref().unwrap().contains("interrupted twice"));
    }

    #[test]
    fn a_thousand_instant_failures_retry_without_recursing() {
        let rb = rb(json!([{"name": "rc", "action": "aws:createImage", "maxAttempts": 1000, "inputs": {}}]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        // Run on a small stack: retries must not nest calls.
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let need = drive(&mut x, &rb, 0);
                (need, x)
            })
            .unwrap();
        let (need, x) = handle.join().unwrap();
        assert_eq!(need, Need::Done);
        assert_eq!((x.status.as_str(), x.steps[0].attempt), ("Failed", 1000));
    }

    #[test]
    fn a_step_timeout_cancels_its_child_even_as_the_execution_ends() {
        let rb = rb(
            json!([{"name": "c", "action": "aws:executeAutomation", "timeoutSeconds": 5, "inputs": {"DocumentName": "Child"}}]),
        );
        let mut x = exec(&rb, ExecutionMode::Auto);
        let child = match drive(&mut x, &rb, 0) {
            Need::Effect(Effect::Start(c)) => c[0].id.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(drive(&mut x, &rb, 1000), Need::Wait(Some(5000)));
        assert_eq!(drive(&mut x, &rb, 5000), Need::Effect(Effect::Cancel(vec![child])));
        assert_eq!(x.status, Status::TimedOut);
        assert_eq!(drive(&mut x, &rb, 5001), Need::Done);
    }

    #[test]
    fn the_on_cancel_workflow_never_waits_past_its_deadline() {
        let rb = rb(json!([
            {"name": "a", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}, "onCancel": "step:b"},
            {"name": "b", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}}
        ]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        drive(&mut x, &rb, 0);
        stop(&mut x, StopType::Cancel, 10).unwrap();
        assert_eq!(drive(&mut x, &rb, 10), Need::Wait(Some(120_010)));
        assert_eq!(drive(&mut x, &rb, 120_010), Need::Done);
        assert_eq!(x.status, Status::Cancelled);
    }

    #[test]
    fn fan_out_stops_dispatching_at_error_e_plus_one() {
        let rb = rb(json!([{"name": "s", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        x.steps.clear();
        let controller =
            crate::rate::RateController::new(6, parse_concurrency("1").unwrap(), parse_errors("1").unwrap());
        x.fanout = Some(fanout(controller, true));
        let mut failures = 0;
        loop {
            match drive(&mut x, &rb, 0) {
                Need::Effect(Effect::StartTargets(batch)) => {
                    assert_eq!(batch.len(), 1, "MaxConcurrency 1");
                    failures += 1;
                    target_finished(&mut x, batch.start, false);
                }
                Need::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(failures, 2, "MaxErrors 1 stops at the second error");
        assert_eq!(x.status, Status::Failed);
        assert_eq!(x.fanout.as_ref().unwrap().controller.not_started().len(), 4);
    }

    #[test]
    fn a_cancelled_fan_out_cancels_the_targets_still_running() {
        let rb = rb(json!([{"name": "s", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}]));
        let mut x = exec(&rb, ExecutionMode::Auto);
        x.steps.clear();
        let controller =
            crate::rate::RateController::new(4, parse_concurrency("2").unwrap(), parse_errors("0").unwrap());
        x.fanout = Some(fanout(controller, true));
        assert_eq!(drive(&mut x, &rb, 0), Need::Effect(Effect::StartTargets(0..2)));
        x.status = Status::Cancelling;
        assert_eq!(drive(&mut x, &rb, 5), Need::Effect(Effect::CancelTargets));
        assert_eq!(x.status, Status::Cancelled);
        // Nothing more starts, whatever ends later.
        target_finished(&mut x, 0, false);
        assert_eq!(drive(&mut x, &rb, 6), Need::Done);
    }

    #[test]
    fn a_target_shows_as_a_step_running_its_child() {
        let params = BTreeMap::from([("Item".to_string(), vec!["a".to_string()])]);
        let outputs = BTreeMap::from([("s.Out".to_string(), vec!["1".to_string()])]);
        let r = target_record(
            "st",
            "a",
            &params,
            Some("child"),
            Status::Failed,
            Some(1),
            Some(2),
            Some(&outputs),
            Some("boom".into()),
        );
        assert_eq!((r.name.as_str(), r.action.as_str(), r.status), ("a", "aws:executeAutomation", Status::Failed));
        assert_eq!(r.outputs["ExecutionId"], "child");
        assert_eq!(r.outputs["Output"], r#"{"s.Out":["1"]}"#);
        assert_eq!(r.failure_message.as_deref(), Some("boom"));
        let running = target_record("st", "a", &params, Some("child"), Status::InProgress, Some(1), None, None, None);
        assert!(running.outputs.is_empty() && running.failure.is_none());
    }
}
