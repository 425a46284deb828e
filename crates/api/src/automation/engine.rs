//! The Automation job handler: the engine (`ssmd_engine`) claims an execution's job
//! (`automation/<id>`) when it is due, and this drives the execution through the state machine,
//! carries out the effects it asks for, and writes every transition before acting on it.
//!
//! * Every write is guarded by the execution's version and fenced by the engine's claim on the
//!   job. A signal or stop that lands while an effect runs pokes the job: the effect is
//!   abandoned if its step was stopped (its script is killed), and the engine's next write
//!   fails, so it re-reads and applies its result to the new state (the machine drops results
//!   that no longer apply).
//! * An effect is persisted as dispatched before it runs, so a crash re-runs it at most once.
//! * The last write of a run releases the job in the same transaction: due at the execution's
//!   next timer, or gone when only a signal, a child or a command can wake it. Nothing waits
//!   holding a slot: a child's end wakes its parent, and a command's end wakes the
//!   `aws:runCommand` step that sent it, through completion links.
//! * Children are inserted in the same transaction as the parent's state.
//! * Executions beyond `max_running` stay Pending; one that ends wakes the oldest one held
//!   back, and a slow re-check covers the rest.

use super::control::{cancel_child, final_outputs};
use super::start::Origin;
use super::{actions, caller_of, fanout, parse_state};
use crate::Service;
use serde_json::Value;
use ssmd_core::automation::execution::{Execution, is_terminal};
use ssmd_core::automation::machine::{self, ChildStart, Effect, Need, Outcome};
use ssmd_core::automation::runbook::Runbook;
use ssmd_engine::{Handler, Job, Next};
use ssmd_model::ApiError;
use ssmd_model::enums::AutomationExecutionStatus as Status;
use ssmd_store::{AUTOMATION_JOB, ExecutionRow, Hold, NewExecution, StateWrite, StoreError, TargetChanges};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long an execution held back by the running limit waits before it looks again, if no
/// execution ending wakes it first.
const ADMIT_RECHECK_MS: i64 = 30_000;

/// Drives executions: the handler of `automation` jobs.
pub struct Automation {
    svc: Arc<Service>,
}

impl Automation {
    pub(crate) fn new(svc: Arc<Service>) -> Automation {
        Automation { svc }
    }
}

impl Handler for Automation {
    async fn run(&self, job: Job) -> ssmd_engine::Outcome {
        let d = Driver { svc: &self.svc, job: &job };
        match d.run().await {
            Ok(o) => o,
            Err(e) => ssmd_engine::Outcome::Failed(e.to_string()),
        }
    }
}

/// One run of one execution's job.
struct Driver<'a> {
    svc: &'a Service,
    job: &'a Job,
}

/// What running an effect came to.
enum Effected {
    /// It finished: feed this to the machine.
    Done(usize, u32, Outcome),
    /// It waits for something that will wake the job (a command): the job is due at this time.
    Waiting(Option<i64>),
    /// The step was stopped or the execution changed meanwhile: look again.
    Abandoned,
}

impl Driver<'_> {
    async fn run(&self) -> Result<ssmd_engine::Outcome, ApiError> {
        let Some(row) = self.svc.store.execution_by_id(&self.job.claim.key).await.map_err(crate::store_error)? else {
            return Ok(ssmd_engine::Outcome::Next(Next::Done));
        };
        self.drive(row).await
    }

    /// Writes `x` over `row`; `Ok(false)` when someone wrote in between (re-read and retry).
    async fn write(
        &self,
        row: &mut ExecutionRow,
        x: &Execution,
        rb: &Runbook,
        due_ms: Option<i64>,
        hold: Hold,
        children: &[NewExecution],
        targets: &TargetChanges,
    ) -> Result<bool, ApiError> {
        let svc = self.svc;
        let state = serde_json::to_string(x).map_err(|e| ApiError::internal(e.to_string()))?;
        let outputs = final_outputs(x, rb);
        let terminal = is_terminal(x.status);
        // A place frees up when a top-level execution ends: the next in line is woken.
        let frees = terminal && x.parent_id.is_none();
        let w = StateWrite {
            id: &row.id,
            version: row.version,
            state: &state,
            status: x.status.as_str(),
            outputs: outputs.as_deref(),
            due_ms,
            holder: Some((&self.job.claim, hold)),
            wake: if terminal { x.parent_id.as_deref() } else { None },
            admit_next: frees.then_some((x.account.as_str(), x.region.as_str())),
            targets: Some(targets),
            now_ms: svc.now_ms(),
        };
        let r = if children.is_empty() {
            svc.store.write_execution(&w).await
        } else {
            svc.store.insert_executions(children, Some(&w)).await
        };
        match r {
            Ok(()) => {
                row.version += 1;
                row.state = state;
                row.status = x.status.to_string();
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(crate::store_error(e)),
        }
    }

    /// Re-reads a row after a conflict; `None` when the job is no longer this run's (another
    /// replica took it over after the lease ran out: it drives the execution from here).
    async fn reload(&self, id: &str) -> Result<Option<ExecutionRow>, ApiError> {
        let store = &self.svc.store;
        if !store.holds_job(&self.job.claim).await.map_err(crate::store_error)? {
            return Ok(None);
        }
        store.execution_by_id(id).await.map_err(crate::store_error)
    }

    /// Drives the execution until it waits, finishes or is taken over.
    async fn drive(&self, mut row: ExecutionRow) -> Result<ssmd_engine::Outcome, ApiError> {
        let svc = self.svc;
        let rb = svc.runbook(&row.runbook_sha).await?;
        // The result of the last effect, kept until it is written.
        let mut result: Option<(usize, u32, Outcome)> = None;
        // State moved on in memory past the last write (a read-only call ran without one).
        let mut carried: Option<Execution> = None;
        // What the next write does to a rate-controlled parent's targets.
        let mut targets = TargetChanges::default();
        loop {
            let mut x = match carried.take() {
                Some(x) => x,
                None => {
                    targets = TargetChanges::default();
                    parse_state(&row)?
                }
            };
            let now = svc.now_ms();
            if let Some((i, attempt, o)) = result.clone() {
                machine::complete(&mut x, &rb, i, attempt, o, now);
            }
            fanout::move_kept_targets(&mut x, &mut targets);
            self.collect_children(&mut x, &rb, now).await?;
            fanout::count_ended(svc, &mut x, &mut targets).await?;
            if x.status == Status::Pending && !super::admission::admit(svc, &x).await? {
                // Over the running limit: stay Pending until an execution ending wakes it.
                return Ok(ssmd_engine::Outcome::Next(Next::At(now + ADMIT_RECHECK_MS)));
            }
            let need = machine::drive(&mut x, &rb, now);
            let mut cancels = Vec::new();
            let mut command_cancels = Vec::new();
            let mut cancel_targets = false;
            let (due, hold, children, effect) = match need {
                Need::Done => (None, Hold::Release, Vec::new(), None),
                Need::Wait(at) => (at, Hold::Release, Vec::new(), None),
                Need::Effect(Effect::Start(starts)) => {
                    let children = self.prepare_children(&mut x, &rb, starts, now).await?;
                    (Some(now), Hold::Keep, children, None)
                }
                Need::Effect(Effect::Cancel(ids)) => {
                    // Persist first (the list is cleared in the state), then cancel.
                    cancels = ids;
                    (Some(now), Hold::Keep, Vec::new(), None)
                }
                Need::Effect(Effect::CancelCommands(ids)) => {
                    command_cancels = ids;
                    (Some(now), Hold::Keep, Vec::new(), None)
                }
                Need::Effect(Effect::StartTargets(range)) => {
                    let children = fanout::start(svc, &mut x, range, &mut targets).await?;
                    (Some(now), Hold::Keep, children, None)
                }
                Need::Effect(Effect::CancelTargets) => {
                    cancel_targets = true;
                    (Some(now), Hold::Keep, Vec::new(), None)
                }
                Need::Effect(e) => (Some(now), Hold::Keep, Vec::new(), Some(e)),
            };
            // A single read-only call changes nothing if it runs again after a crash: it is not
            // persisted as dispatched first, and its result goes out with the next write.
            if let Some(e) = effect.as_ref().filter(|e| actions::is_quick_read(e)) {
                match self.run_effect(&row, &x, e.clone()).await? {
                    Effected::Done(i, attempt, o) => {
                        machine::complete(&mut x, &rb, i, attempt, o, svc.now_ms());
                        carried = Some(x);
                    }
                    Effected::Waiting(_) | Effected::Abandoned => {
                        row = match self.reload(&row.id).await? {
                            Some(r) => r,
                            None => return Ok(ssmd_engine::Outcome::Finished),
                        };
                    }
                }
                continue;
            }
            if !self.write(&mut row, &x, &rb, due, hold, &children, &targets).await? {
                row = match self.reload(&row.id).await? {
                    Some(r) => r,
                    None => return Ok(ssmd_engine::Outcome::Finished),
                };
                continue;
            }
            result = None;
            targets = TargetChanges::default();
            if cancel_targets {
                for id in svc.store.running_target_children(&x.id).await.map_err(crate::store_error)? {
                    cancel_child(svc, &id).await?;
                }
            }
            for id in &cancels {
                cancel_child(svc, id).await?;
            }
            for id in &command_cancels {
                actions::cancel_command(svc, &x, id).await;
            }
            if hold == Hold::Release {
                return Ok(ssmd_engine::Outcome::Finished);
            }
            if let Some(effect) = effect {
                match self.run_effect(&row, &x, effect).await? {
                    Effected::Done(i, attempt, o) => result = Some((i, attempt, o)),
                    Effected::Waiting(due) => return Ok(ssmd_engine::Outcome::Next(due.map_or(Next::Done, Next::At))),
                    Effected::Abandoned => {
                        row = match self.reload(&row.id).await? {
                            Some(r) => r,
                            None => return Ok(ssmd_engine::Outcome::Finished),
                        };
                    }
                }
            }
        }
    }

    /// Feeds finished children's results to the machine.
    async fn collect_children(&self, x: &mut Execution, rb: &Runbook, now: i64) -> Result<(), ApiError> {
        let awaited = x.awaited_children();
        if awaited.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = awaited.iter().map(|(_, id)| id.clone()).collect();
        let rows = self.svc.store.executions_by_ids(&ids).await.map_err(crate::store_error)?;
        for row in rows {
            let status: Status = crate::errors::stored(&row.status)?;
            if !is_terminal(status) {
                continue;
            }
            let Some((i, _)) = awaited.iter().find(|(_, id)| *id == row.id) else { continue };
            let (outputs, failure) = match row.outputs.as_deref().map(serde_json::from_str::<Value>) {
                Some(Ok(v)) => (
                    serde_json::from_value::<BTreeMap<String, Vec<String>>>(v["outputs"].clone()).unwrap_or_default(),
                    v["failure"].as_str().map(str::to_string),
                ),
                _ => (BTreeMap::new(), None),
            };
            let attempt = x.steps[*i].attempt;
            machine::complete(x, rb, *i, attempt, Outcome::Child { id: row.id, status, outputs, failure }, now);
        }
        Ok(())
    }

    /// Builds the children an effect starts; a child that can't start fails its step instead.
    async fn prepare_children(
        &self,
        x: &mut Execution,
        rb: &Runbook,
        starts: Vec<ChildStart>,
        now: i64,
    ) -> Result<Vec<NewExecution>, ApiError> {
        let svc = self.svc;
        let caller = caller_of(x);
        let mut out = Vec::new();
        for s in starts {
            let origin = Origin { id: s.id.clone(), parent: Some(x.id.clone()), target: s.target.clone() };
            let prepared = fanout::prepare_child(svc, &caller, &s.request, origin).await;
            match prepared {
                Ok(n) => out.push(n),
                Err(e) => machine::complete(
                    x,
                    rb,
                    s.record,
                    s.attempt,
                    Outcome::failed(format!(
                        "The child automation could not start: {} ({})",
                        e.message(),
                        e.code().name()
                    )),
                    now,
                ),
            }
        }
        Ok(out)
    }

    /// Runs a script, API or command effect. A poke while it runs (a signal, a stop) makes it
    /// look whether its step is still live; if not, the effect is abandoned (a script is
    /// killed).
    async fn run_effect(&self, row: &ExecutionRow, x: &Execution, effect: Effect) -> Result<Effected, ApiError> {
        let svc = self.svc;
        let (record, attempt) = match &effect {
            Effect::Script { record, attempt, .. }
            | Effect::Api { record, attempt, .. }
            | Effect::RunCommand { record, attempt, .. } => (*record, *attempt),
            _ => return Ok(Effected::Abandoned),
        };
        if let Effect::RunCommand { command_id, request, .. } = &effect {
            return Ok(match actions::run_command(svc, x, command_id, request).await? {
                Some(o) => Effected::Done(record, attempt, o),
                None => Effected::Waiting(x.steps.get(record).and_then(|r| r.wake_ms)),
            });
        }
        let work = async {
            match effect {
                Effect::Script { runtime, handler, script, events, timeout_s, .. } => {
                    actions::script(svc, x, runtime, handler, script, events, timeout_s).await
                }
                Effect::Api { service, api, params, check, timeout_s, .. } => {
                    actions::api(svc, x, &service, &api, &params, &check, timeout_s).await
                }
                _ => unreachable!("filtered above"),
            }
        };
        tokio::pin!(work);
        loop {
            tokio::select! {
                outcome = &mut work => return Ok(Effected::Done(record, attempt, outcome)),
                _ = self.job.poked() => {
                    let fresh = match svc.store.execution_by_id(&row.id).await {
                        Ok(Some(fresh)) => fresh,
                        Ok(None) => return Ok(Effected::Abandoned),
                        // A database hiccup is not a reason to kill the work.
                        Err(_) => continue,
                    };
                    if fresh.version != row.version {
                        let fx = parse_state(&fresh)?;
                        let r = fx.steps.get(record);
                        let live = fx.status != Status::Cancelling
                            && r.is_some_and(|r| r.attempt == attempt && !is_terminal(r.status));
                        if !live {
                            return Ok(Effected::Abandoned);
                        }
                    }
                }
            }
        }
    }
}

/// The job kind of executions, for the engine.
pub const JOB_KIND: &str = AUTOMATION_JOB;
