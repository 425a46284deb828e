//! Running a window execution: the handler of `window-run` jobs.
//!
//! Each pass reads the execution, its task executions and the invocations of the tasks under
//! way, and moves them on:
//! * tasks run in Priority order, a tier of equal priority at once, the next tier when the
//!   last task of the tier has ended;
//! * a task's targets are resolved when it starts (registered window targets through
//!   `WindowTargetIds`, or its direct targets) by the shared resolver, and the shared
//!   `RateController` decides which invocations start, under the task's MaxConcurrency and
//!   MaxErrors;
//! * an invocation is written IN_PROGRESS with the command or automation id it will use before
//!   that is sent or started, so a pass resumed after a crash finds it (or sends it, if the
//!   crash came first) and nothing runs twice; the pass then links the job to the end of what
//!   it started, so that end wakes it;
//! * no task or invocation starts after the window's start + Duration − Cutoff; at that time
//!   CANCEL_TASK tasks cancel their running commands and stop their automations; at the
//!   window's end what is unfinished is TIMED_OUT;
//! * CancelMaintenanceWindowExecution (CANCELLING): what has not started is CANCELLED, what
//!   runs finishes, then the execution is CANCELLED.
//!
//! Every write is fenced by the job's claim and the execution's version: a cancel, or another
//! replica that took the job over, makes this pass's write fail and the pass starts again from
//! what is stored.

use super::fire::RunTimes;
use super::history::service_role;
use super::*;
use crate::errors::stored;
use serde_json::{Value, json};
use ssmd_core::rate::{RateController, parse_concurrency, parse_errors};
use ssmd_engine::{Handler, Job, Next, Outcome};
use ssmd_model::Ssm;
use ssmd_store::jobs::Claim;
use ssmd_store::{InvocationRunRow, RunWrite, StoreError, TaskRunRow, WINDOW_RUN_JOB};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use MaintenanceWindowExecutionStatus as S;

/// The handler of window-execution jobs.
pub struct Drivers {
    svc: Arc<Service>,
}

impl Drivers {
    pub(crate) fn new(svc: Arc<Service>) -> Drivers {
        Drivers { svc }
    }
}

impl Handler for Drivers {
    async fn run(&self, job: Job) -> Outcome {
        for _ in 0..20 {
            match drive(&self.svc, &job.claim).await {
                Ok(next) => return Outcome::Next(next.map_or(Next::Done, Next::At)),
                // The execution moved under this pass (a cancel): look again.
                Err(Pass::Restart) => continue,
                Err(Pass::Failed(e)) => return Outcome::Failed(e.to_string()),
            }
        }
        Outcome::Next(Next::At(self.svc.now_ms()))
    }
}

/// Why a pass stopped early.
enum Pass {
    /// A write found the execution changed: run the pass again.
    Restart,
    Failed(ApiError),
}

impl From<ApiError> for Pass {
    fn from(e: ApiError) -> Pass {
        Pass::Failed(e)
    }
}

fn stored_err(e: StoreError) -> Pass {
    match e {
        StoreError::Conflict => Pass::Restart,
        e => Pass::Failed(store_error(e)),
    }
}

/// A task execution's rate control and cutoff handling, kept in its `progress`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<RateController>,
    /// CANCEL_TASK: the cancels of its running invocations went out at the cutoff.
    #[serde(default)]
    cancel_sent: bool,
}

fn is_final(s: S) -> bool {
    matches!(s, S::Success | S::Failed | S::TimedOut | S::Cancelled | S::SkippedOverlapping)
}

/// One pass over an execution: what it read and what it changed, written by `flush`.
struct Run<'a> {
    svc: &'a Service,
    claim: &'a Claim,
    execution: WindowRunRow,
    times: RunTimes,
    tasks: Vec<TaskRunRow>,
    /// Invocations of started tasks, by task execution id, in order.
    invocations: HashMap<String, Vec<InvocationRunRow>>,
    dirty_execution: bool,
    dirty_tasks: HashSet<usize>,
    dirty_invocations: Vec<(String, usize)>,
    caller: Caller,
    now: i64,
}

impl Run<'_> {
    fn status(&self) -> Result<S, ApiError> {
        stored(&self.execution.status)
    }

    fn task_status(&self, k: usize) -> Result<S, ApiError> {
        stored(&self.tasks[k].status)
    }

    fn set_execution(&mut self, s: S, details: &str) {
        self.execution.status = s.as_str().into();
        self.execution.status_details = details.into();
        if is_final(s) {
            self.execution.end_ms = Some(self.now);
        }
        self.dirty_execution = true;
    }

    fn set_task(&mut self, k: usize, s: S, details: &str) {
        let t = &mut self.tasks[k];
        t.status = s.as_str().into();
        t.status_details = truncate(details);
        if s == S::InProgress && t.start_ms.is_none() {
            t.start_ms = Some(self.now);
        }
        if is_final(s) {
            t.start_ms.get_or_insert(self.now);
            t.end_ms = Some(self.now);
        }
        self.dirty_tasks.insert(k);
    }

    fn set_progress(&mut self, k: usize, p: &Progress) {
        self.tasks[k].progress = to_json(p);
        self.dirty_tasks.insert(k);
    }

    fn set_invocation(&mut self, task: &str, seq: usize, s: S, details: &str) {
        let now = self.now;
        let inv = &mut self.invocations.get_mut(task).expect("invocations read")[seq];
        inv.status = s.as_str().into();
        inv.status_details = truncate(details);
        if s == S::InProgress {
            inv.start_ms = Some(now);
        }
        if is_final(s) {
            inv.end_ms = Some(now);
        }
        self.dirty_invocations.push((task.to_string(), seq));
    }

    /// Writes what changed, fenced by the claim and the execution's version.
    async fn flush(&mut self) -> Result<(), Pass> {
        let invocations: Vec<InvocationRunRow> =
            self.dirty_invocations.drain(..).map(|(task, seq)| self.invocations[&task][seq].clone()).collect();
        let w = RunWrite {
            execution: Some(self.execution.clone()),
            tasks: self.dirty_tasks.drain().map(|k| self.tasks[k].clone()).collect(),
            invocations,
        };
        self.svc.store.write_window_run(Some(self.claim), &w).await.map_err(stored_err)?;
        self.execution.version += 1;
        self.dirty_execution = false;
        Ok(())
    }

    fn progress(&self, k: usize) -> Result<Progress, ApiError> {
        parse(&self.tasks[k].progress)
    }

    fn task(&self, k: usize) -> Result<GetMaintenanceWindowTaskResult, ApiError> {
        parse(&self.tasks[k].spec)
    }
}

/// StatusDetails hold at most 250 characters.
fn truncate(text: &str) -> String {
    text.chars().take(250).collect()
}

/// One pass; returns when the job is next due (`None`: the execution has ended).
async fn drive(svc: &Service, claim: &Claim) -> Result<Option<i64>, Pass> {
    let Some(execution) = svc.store.window_run_by_id(&claim.key).await.map_err(stored_err)? else {
        return Ok(None);
    };
    if is_final(stored(&execution.status)?) {
        return Ok(None);
    }
    let times: RunTimes = parse(&execution.state)?;
    let tasks = svc.store.task_runs(&execution.id).await.map_err(stored_err)?;
    let caller = Caller {
        account: execution.account.clone(),
        region: execution.region.clone(),
        access_key_id: String::new(),
        arn: String::new(),
    };
    let mut run = Run {
        svc,
        claim,
        execution,
        times,
        tasks,
        invocations: HashMap::new(),
        dirty_execution: false,
        dirty_tasks: HashSet::new(),
        dirty_invocations: Vec::new(),
        caller,
        now: svc.now_ms(),
    };
    for k in 0..run.tasks.len() {
        if run.task_status(k)? == S::InProgress {
            let rows = svc.store.invocation_runs(&run.tasks[k].id).await.map_err(stored_err)?;
            run.invocations.insert(run.tasks[k].id.clone(), rows);
        }
    }
    if run.status()? == S::Pending {
        run.set_execution(S::InProgress, "");
    }
    if run.now >= run.times.end_ms {
        close(&mut run)?;
        run.flush().await?;
        return Ok(None);
    }
    // Tiers: the lowest priority with a task not ended runs; the next one starts when it ends.
    loop {
        let mut open: Vec<usize> = Vec::new();
        for k in 0..run.tasks.len() {
            if !is_final(run.task_status(k)?) {
                open.push(k);
            }
        }
        let mut tier_priority = None;
        for &k in &open {
            let p = run.task(k)?.priority.unwrap_or(1);
            tier_priority = Some(tier_priority.map_or(p, |q: i32| q.min(p)));
        }
        let Some(priority) = tier_priority else { break };
        let mut tier = Vec::new();
        for &k in &open {
            if run.task(k)?.priority.unwrap_or(1) == priority {
                tier.push(k);
            }
        }
        for &k in &tier {
            if run.task_status(k)? == S::Pending {
                start_task(&mut run, k).await?;
            }
        }
        for &k in &tier {
            if run.task_status(k)? == S::InProgress {
                advance_task(&mut run, k).await?;
            }
        }
        let mut tier_open = false;
        for &k in &tier {
            tier_open |= !is_final(run.task_status(k)?);
        }
        if tier_open {
            break;
        }
    }
    let mut all_ended = true;
    let mut worst = S::Success;
    for k in 0..run.tasks.len() {
        let s = run.task_status(k)?;
        all_ended &= is_final(s);
        worst = match (worst, s) {
            (S::Failed, _) | (_, S::Failed) => S::Failed,
            (S::TimedOut, _) | (_, S::TimedOut) => S::TimedOut,
            (S::Cancelled, _) | (_, S::Cancelled) => S::Cancelled,
            _ => S::Success,
        };
    }
    if all_ended {
        let s = if run.status()? == S::Cancelling { S::Cancelled } else { worst };
        run.set_execution(s, "");
    }
    if run.dirty_execution || !run.dirty_tasks.is_empty() || !run.dirty_invocations.is_empty() {
        run.flush().await?;
    }
    if all_ended {
        return Ok(None);
    }
    // Woken by what it waits for (links); else at the cutoff, then at the end.
    let at = if run.now < run.times.latest_start_ms { run.times.latest_start_ms } else { run.times.end_ms };
    Ok(Some(at))
}

/// The window has closed: what has not ended is TIMED_OUT.
fn close(run: &mut Run<'_>) -> Result<(), ApiError> {
    for k in 0..run.tasks.len() {
        if is_final(run.task_status(k)?) {
            continue;
        }
        let id = run.tasks[k].id.clone();
        let unfinished: Vec<usize> = run
            .invocations
            .get(&id)
            .map(|invs| invs.iter().enumerate().filter(|(_, v)| v.end_ms.is_none()).map(|(n, _)| n).collect())
            .unwrap_or_default();
        for n in unfinished {
            run.set_invocation(&id, n, S::TimedOut, "The maintenance window ended before this invocation finished.");
        }
        run.set_task(k, S::TimedOut, "The maintenance window ended before this task finished.");
    }
    let s = if run.status()? == S::Cancelling { S::Cancelled } else { S::TimedOut };
    run.set_execution(s, "");
    Ok(())
}

/// A target an invocation runs on.
struct Planned {
    node: Option<String>,
    window_target_id: Option<String>,
    owner_information: Option<String>,
}

/// Resolves a task's targets when it starts (`Err` with the reason the task fails).
async fn plan(
    svc: &Service,
    caller: &Caller,
    window_id: &str,
    task: &GetMaintenanceWindowTaskResult,
) -> Result<Vec<Planned>, ApiError> {
    let Some(targets) = task.targets.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(vec![Planned { node: None, window_target_id: None, owner_information: None }]);
    };
    let mut out: Vec<Planned> = Vec::new();
    let mut seen = HashSet::new();
    let registered = targets.iter().find(|t| t.key.as_deref() == Some("WindowTargetIds"));
    match registered {
        Some(t) => {
            let all = super::parts::targets_of(svc, window_id).await?;
            for id in t.values.iter().flatten() {
                let Some(target) = all.iter().find(|r| r.window_target_id.as_deref() == Some(id)) else { continue };
                for node in svc.resolve_targets(caller, target.targets.as_deref().unwrap_or_default()).await? {
                    if seen.insert(node.id.clone()) {
                        out.push(Planned {
                            node: Some(node.id),
                            window_target_id: Some(id.clone()),
                            owner_information: target.owner_information.clone(),
                        });
                    }
                }
            }
        }
        None => {
            for node in svc.resolve_targets(caller, targets).await? {
                if seen.insert(node.id.clone()) {
                    out.push(Planned { node: Some(node.id), window_target_id: None, owner_information: None });
                }
            }
        }
    }
    Ok(out)
}

/// Starts task `k` (its tier has come): cancelled or too late, or its targets resolved into
/// PENDING invocations under a rate controller.
async fn start_task(run: &mut Run<'_>, k: usize) -> Result<(), Pass> {
    if run.status()? == S::Cancelling {
        run.set_task(k, S::Cancelled, "The maintenance window execution was cancelled before this task started.");
        return Ok(());
    }
    if run.now >= run.times.latest_start_ms {
        run.set_task(k, S::TimedOut, "The maintenance window's cutoff passed before this task started.");
        return Ok(());
    }
    let task = run.task(k)?;
    let planned = match plan(run.svc, &run.caller, &run.execution.window_id, &task).await {
        Ok(p) => p,
        Err(e) if e.code() == ErrorCode::InternalServerError => return Err(Pass::Failed(e)),
        Err(e) => {
            run.set_task(k, S::Failed, &format!("The task's targets could not be resolved: {}", e.message()));
            return Ok(());
        }
    };
    if planned.is_empty() {
        run.set_task(k, S::Success, "The task's targets matched no managed node.");
        return Ok(());
    }
    let concurrency = parse_concurrency(task.max_concurrency.as_deref().unwrap_or("1"))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let errors =
        parse_errors(task.max_errors.as_deref().unwrap_or("1")).map_err(|e| ApiError::internal(e.to_string()))?;
    let progress = Progress { rate: Some(RateController::new(planned.len(), concurrency, errors)), cancel_sent: false };
    let task_run = &run.tasks[k];
    let rows: Vec<InvocationRunRow> = planned
        .into_iter()
        .enumerate()
        .map(|(seq, p)| InvocationRunRow {
            id: ssmd_core::ids::uuid(),
            task_execution_id: task_run.id.clone(),
            execution_id: task_run.execution_id.clone(),
            seq: seq as i64,
            run_id: None,
            parameters: String::new(),
            status: S::Pending.as_str().into(),
            status_details: String::new(),
            start_ms: None,
            end_ms: None,
            owner_information: p.owner_information,
            window_target_id: p.window_target_id,
            target: p.node,
        })
        .collect();
    let id = task_run.id.clone();
    let count = rows.len();
    run.invocations.insert(id.clone(), rows);
    for n in 0..count {
        run.dirty_invocations.push((id.clone(), n));
    }
    run.set_progress(k, &progress);
    run.set_task(k, S::InProgress, "");
    run.flush().await
}

/// Moves a running task on: records the ends of its invocations, starts the next ones the rate
/// controller allows (or cancels at the cutoff), and ends the task when all have ended.
async fn advance_task(run: &mut Run<'_>, k: usize) -> Result<(), Pass> {
    let task = run.task(k)?;
    let mut progress = run.progress(k)?;
    let Some(mut rate) = progress.rate.take() else {
        return Err(Pass::Failed(ApiError::internal("a running window task has no rate control")));
    };
    let id = run.tasks[k].id.clone();
    // Ends of what runs.
    let running: Vec<usize> = run.invocations[&id]
        .iter()
        .enumerate()
        .filter(|(_, v)| v.run_id.is_some() && v.end_ms.is_none())
        .map(|(n, _)| n)
        .collect();
    for n in running {
        if let Some((s, details)) = follow(run, &task, &id, n, true).await? {
            run.set_invocation(&id, n, s, &details);
            rate.finished(n, s == S::Success);
        }
    }
    // An invocation's end and its count in the rate controller are written together.
    progress.rate = Some(rate.clone());
    run.set_progress(k, &progress);
    let cancelling = run.status()? == S::Cancelling;
    let past_cutoff = run.now >= run.times.latest_start_ms;
    let cancel_at_cutoff = task.cutoff_behavior == Some(MaintenanceWindowTaskCutoffBehavior::CancelTask);
    if cancelling || (past_cutoff && cancel_at_cutoff) {
        // Nothing more starts; what has not started ends now.
        rate.cancel();
        let (s, why) = if cancelling {
            (S::Cancelled, "The maintenance window execution was cancelled before this invocation started.")
        } else {
            (S::TimedOut, "The maintenance window's cutoff passed before this invocation started.")
        };
        for n in rate.not_started() {
            if run.invocations[&id][n].end_ms.is_none() {
                run.set_invocation(&id, n, s, why);
            }
        }
        if past_cutoff && cancel_at_cutoff && !cancelling && !progress.cancel_sent {
            progress.cancel_sent = true;
            cancel_running(run, &task, &id).await;
        }
    } else if !past_cutoff || task.cutoff_behavior != Some(MaintenanceWindowTaskCutoffBehavior::CancelTask) {
        // CONTINUE_TASK keeps starting invocations after the cutoff, until the window ends.
        loop {
            let batch = rate.next_batch();
            if batch.is_empty() {
                break;
            }
            for n in batch {
                if let Some((s, details)) = start_invocation(run, &task, &id, n, &rate, &progress).await? {
                    run.set_invocation(&id, n, s, &details);
                    rate.finished(n, s == S::Success);
                }
            }
        }
    }
    let done = rate.done();
    let all_ok = rate.all_succeeded();
    let stopped = rate.stopped() && !rate.cancelled();
    let failed = rate.failed();
    let total = rate.total();
    if stopped {
        // MaxErrors was reached: the targets never started are not run.
        for n in rate.not_started() {
            if run.invocations[&id][n].end_ms.is_none() {
                run.set_invocation(&id, n, S::Cancelled, "Not started: the task's MaxErrors was reached.");
            }
        }
    }
    progress.rate = Some(rate);
    run.set_progress(k, &progress);
    if done {
        let (s, details) = if all_ok {
            (S::Success, String::new())
        } else if cancelling {
            (S::Cancelled, String::new())
        } else if past_cutoff && cancel_at_cutoff {
            (S::TimedOut, "The maintenance window's cutoff passed before this task finished.".to_string())
        } else if stopped {
            (
                S::Failed,
                format!("{failed} of {total} invocations failed; MaxErrors was reached and no more were started."),
            )
        } else {
            (S::Failed, format!("{failed} of {total} invocations failed."))
        };
        run.set_task(k, s, &details);
    }
    Ok(())
}

/// The pseudo-parameters of one invocation.
fn pseudo(run: &Run<'_>, task: &GetMaintenanceWindowTaskResult, inv: &InvocationRunRow) -> Vec<(&'static str, String)> {
    let node = inv.target.clone().unwrap_or_default();
    vec![
        ("WINDOW_ID", run.execution.window_id.clone()),
        ("WINDOW_TASK_ID", task.window_task_id.clone().unwrap_or_default()),
        ("WINDOW_TARGET_ID", inv.window_target_id.clone().unwrap_or_default()),
        ("WINDOW_EXECUTION_ID", run.execution.id.clone()),
        ("TASK_EXECUTION_ID", inv.task_execution_id.clone()),
        ("INVOCATION_ID", inv.id.clone()),
        ("TARGET_TYPE", if inv.target.is_some() { "INSTANCE".into() } else { String::new() }),
        ("TARGET_ID", node.clone()),
        ("RESOURCE_ID", node),
    ]
}

/// Replaces `{{NAME}}` (spaces inside the braces allowed) by each pseudo-parameter's value.
fn substitute(text: &str, values: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                let name = after[..close].trim();
                match values.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[open..open + 2 + close + 2]),
                }
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn substitute_map(
    map: &BTreeMap<String, Vec<String>>,
    values: &[(&'static str, String)],
) -> BTreeMap<String, Vec<String>> {
    map.iter().map(|(k, vs)| (k.clone(), vs.iter().map(|v| substitute(v, values)).collect())).collect()
}

/// The document parameters of a task: its invocation parameters' or its legacy TaskParameters.
fn document_parameters(task: &GetMaintenanceWindowTaskResult) -> BTreeMap<String, Vec<String>> {
    let p = task.task_invocation_parameters.as_ref();
    let given = p.and_then(|p| {
        p.run_command.as_ref().and_then(|r| r.parameters.clone()).or_else(|| p.automation.as_ref()?.parameters.clone())
    });
    given.unwrap_or_else(|| {
        task.task_parameters.iter().flatten().map(|(k, v)| (k.clone(), v.values.clone().unwrap_or_default())).collect()
    })
}

/// What an invocation runs: built once from the task and the invocation's pseudo-parameters,
/// recorded as the invocation's `Parameters` and then sent.
enum Request {
    Command(SendCommandRequest),
    Automation(StartAutomationExecutionRequest),
}

impl Request {
    /// The invocation's `Parameters` as SSM records them (camelCase, the request's chosen fields).
    fn record(&self) -> Value {
        let mut v = match self {
            Request::Command(r) => json!({"documentName": r.document_name, "instanceIds": r.instance_ids,
                "maxConcurrency": r.max_concurrency, "maxErrors": r.max_errors, "parameters": r.parameters,
                "timeoutSeconds": r.timeout_seconds, "comment": r.comment, "documentVersion": r.document_version}),
            Request::Automation(r) => json!({"documentName": r.document_name, "parameters": r.parameters,
                "documentVersion": r.document_version}),
        };
        v.as_object_mut().expect("an object").retain(|_, x| !x.is_null());
        v
    }
}

/// The request invocation `inv` of `task` runs; `Err` names what ssmd cannot invoke (Lambda
/// functions, Step Functions state machines).
fn request(
    run: &Run<'_>,
    task: &GetMaintenanceWindowTaskResult,
    inv: &InvocationRunRow,
) -> Result<Request, &'static str> {
    let values = pseudo(run, task, inv);
    let params = substitute_map(&document_parameters(task), &values);
    let arn = task.task_arn.clone().unwrap_or_default();
    let given = task.task_invocation_parameters.as_ref();
    match task.task_type.unwrap_or(MaintenanceWindowTaskType::RunCommand) {
        MaintenanceWindowTaskType::RunCommand => {
            let rc = given.and_then(|p| p.run_command.clone()).unwrap_or_default();
            Ok(Request::Command(SendCommandRequest {
                instance_ids: Some(vec![inv.target.clone().unwrap_or_default()]),
                document_name: arn,
                document_version: rc.document_version,
                document_hash: rc.document_hash,
                document_hash_type: rc.document_hash_type,
                timeout_seconds: rc.timeout_seconds,
                comment: rc.comment.map(|c| substitute(&c, &values)),
                parameters: Some(params),
                output_s3_bucket_name: rc.output_s3_bucket_name,
                output_s3_key_prefix: rc.output_s3_key_prefix,
                // One node per command, and MaxErrors 0: the command ends as its one invocation
                // does (with 1 it would end Success/Incomplete after a failure).
                max_concurrency: Some("1".into()),
                max_errors: Some("0".into()),
                service_role_arn: rc.service_role_arn,
                notification_config: rc.notification_config,
                cloud_watch_output_config: rc.cloud_watch_output_config,
                ..Default::default()
            }))
        }
        MaintenanceWindowTaskType::Automation => {
            let a = given.and_then(|p| p.automation.clone()).unwrap_or_default();
            Ok(Request::Automation(StartAutomationExecutionRequest {
                document_name: arn,
                document_version: a.document_version,
                parameters: Some(params),
                ..Default::default()
            }))
        }
        MaintenanceWindowTaskType::Lambda => Err("AWS Lambda functions"),
        MaintenanceWindowTaskType::StepFunctions => Err("AWS Step Functions state machines"),
    }
}

/// Starts invocation `n` of task execution `id`: writes it IN_PROGRESS with the id of what it
/// runs, then sends or starts that. Returns its end when it ended at once (it could not start).
async fn start_invocation(
    run: &mut Run<'_>,
    task: &GetMaintenanceWindowTaskResult,
    id: &str,
    n: usize,
    rate: &RateController,
    progress: &Progress,
) -> Result<Option<(S, String)>, Pass> {
    let inv = run.invocations[id][n].clone();
    let arn = task.task_arn.clone().unwrap_or_default();
    let record = match request(run, task, &inv) {
        Ok(r) => r.record(),
        Err(kind) => {
            let task_type = task.task_type.unwrap_or(MaintenanceWindowTaskType::RunCommand);
            let inv = &mut run.invocations.get_mut(id).expect("invocations read")[n];
            inv.parameters = json!({"taskArn": arn}).to_string();
            return Ok(Some((
                S::Failed,
                format!("ssmd cannot run {task_type} tasks: it has no {kind} to invoke ({arn})."),
            )));
        }
    };
    // Persist first: the invocation names its run before the run exists.
    let run_id = ssmd_core::ids::uuid();
    {
        let inv = &mut run.invocations.get_mut(id).expect("invocations read")[n];
        inv.run_id = Some(run_id.clone());
        inv.parameters = record.to_string();
    }
    run.set_invocation(id, n, S::InProgress, "");
    let mut saved = progress.clone();
    saved.rate = Some(rate.clone());
    let k = run.tasks.iter().position(|t| t.id == id).expect("task of the invocation");
    run.set_progress(k, &saved);
    run.flush().await?;
    launch(run, task, id, n).await
}

/// Sends the command or starts the automation invocation `n` names (it is IN_PROGRESS with its
/// run id), and links the job to its end. Returns its end if it has ended already or could not
/// start.
async fn launch(
    run: &mut Run<'_>,
    task: &GetMaintenanceWindowTaskResult,
    id: &str,
    n: usize,
) -> Result<Option<(S, String)>, Pass> {
    let inv = run.invocations[id][n].clone();
    let run_id = inv.run_id.clone().unwrap_or_default();
    let mut caller = run.caller.clone();
    caller.arn = service_role(&caller.account, task);
    let started = match request(run, task, &inv) {
        Ok(Request::Command(r)) => crate::commands::send::send_with_id(run.svc, &caller, r, run_id).await.map(|_| ()),
        Ok(Request::Automation(r)) => crate::automation::start::start_with_id(run.svc, &caller, &r, run_id).await,
        Err(kind) => Err(ApiError::internal(format!("an invocation of {kind} was started"))),
    };
    match started {
        Ok(()) => follow(run, task, id, n, false).await,
        Err(e) if e.code() == ErrorCode::InternalServerError => Err(Pass::Failed(e)),
        Err(e) => Ok(Some((S::Failed, e.message().to_string()))),
    }
}

/// Where invocation `n`'s command or automation stands: its end, or `None` while it runs (the
/// job is then linked to its end). One that does not exist yet (a crash came between the
/// write and the send) is sent now.
async fn follow(
    run: &mut Run<'_>,
    task: &GetMaintenanceWindowTaskResult,
    id: &str,
    n: usize,
    relaunch: bool,
) -> Result<Option<(S, String)>, Pass> {
    let run_id = run.invocations[id][n].run_id.clone().unwrap_or_default();
    let store = &run.svc.store;
    let exec_id = run.execution.id.clone();
    match task.task_type.unwrap_or(MaintenanceWindowTaskType::RunCommand) {
        MaintenanceWindowTaskType::RunCommand => {
            match store.await_command(&run_id, WINDOW_RUN_JOB, &exec_id).await.map_err(stored_err)? {
                None if relaunch => Box::pin(launch(run, task, id, n)).await,
                None => Err(Pass::Failed(ApiError::internal(format!("command {run_id} was sent but is not stored")))),
                Some(None) => Ok(None),
                Some(Some(status)) => {
                    let row =
                        store.command(&run.caller.account, &run.caller.region, &run_id).await.map_err(stored_err)?;
                    let details = row.map(|r| r.status_details).unwrap_or_else(|| status.clone());
                    let s = match status.parse::<CommandStatus>() {
                        Ok(CommandStatus::Success) => S::Success,
                        Ok(CommandStatus::Cancelled) => S::Cancelled,
                        Ok(CommandStatus::TimedOut) => S::TimedOut,
                        _ => S::Failed,
                    };
                    Ok(Some((s, details)))
                }
            }
        }
        _ => match store.await_execution(&run_id, WINDOW_RUN_JOB, &exec_id).await.map_err(stored_err)? {
            None if relaunch => Box::pin(launch(run, task, id, n)).await,
            None => Err(Pass::Failed(ApiError::internal(format!("automation {run_id} was started but is not stored")))),
            Some(None) => Ok(None),
            Some(Some(status)) => {
                use AutomationExecutionStatus as A;
                let s = match status.parse::<A>() {
                    Ok(A::Success | A::CompletedWithSuccess) => S::Success,
                    Ok(A::Cancelled) => S::Cancelled,
                    Ok(A::TimedOut) => S::TimedOut,
                    _ => S::Failed,
                };
                Ok(Some((s, status)))
            }
        },
    }
}

/// CANCEL_TASK at the cutoff: cancels the task's running commands and stops its automations
/// (best effort: what ends reports its own status).
async fn cancel_running(run: &Run<'_>, task: &GetMaintenanceWindowTaskResult, id: &str) {
    let running: Vec<String> =
        run.invocations[id].iter().filter(|v| v.end_ms.is_none()).filter_map(|v| v.run_id.clone()).collect();
    for run_id in running {
        let result = match task.task_type.unwrap_or(MaintenanceWindowTaskType::RunCommand) {
            MaintenanceWindowTaskType::RunCommand => run
                .svc
                .cancel_command(&run.caller, CancelCommandRequest { command_id: run_id.clone(), instance_ids: None })
                .await
                .map(|_| ()),
            _ => run
                .svc
                .stop_automation_execution(
                    &run.caller,
                    StopAutomationExecutionRequest {
                        automation_execution_id: run_id.clone(),
                        r#type: Some(StopType::Cancel),
                    },
                )
                .await
                .map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!(run = run_id, error = %e, "cancelling a window task's run at its cutoff");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::substitute;

    #[test]
    fn pseudo_parameters_are_replaced_and_others_kept() {
        let values = vec![("TARGET_ID", "mi-1".to_string()), ("WINDOW_ID", "mw-1".to_string())];
        assert_eq!(substitute("echo {{TARGET_ID}} in {{ WINDOW_ID }}", &values), "echo mi-1 in mw-1");
        assert_eq!(substitute("{{ssm:/a}} {{OTHER}} {{", &values), "{{ssm:/a}} {{OTHER}} {{");
        assert_eq!(substitute("no braces", &values), "no braces");
    }
}
