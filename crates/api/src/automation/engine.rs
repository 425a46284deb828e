//! The engine: claims due executions with a lease, drives each through the state machine, carries
//! out the effects it asks for, and writes every transition before acting on it.
//!
//! * A claim is a lease (`Settings::lease_ms`) renewed while an effect runs; an execution whose
//!   engine died is claimed again once its lease runs out (on SQLite, at once on restart).
//! * Every write is guarded by the execution's version. A signal or stop that lands while an
//!   effect runs makes the engine's next write fail; it re-reads and applies its result to the
//!   new state (the machine drops results that no longer apply). A running effect whose step was
//!   stopped or cancelled is abandoned (its script is killed).
//! * An effect is persisted as dispatched before it runs, so a crash re-runs it at most once.
//! * Children are inserted in the same transaction as the parent's state; a finishing child
//!   wakes its parent in the transaction that finishes it.

use super::control::{cancel_child, final_outputs};
use super::start::{Origin, prepare};
use super::{actions, caller_of, parse_state};
use crate::Service;
use serde_json::Value;
use ssmd_core::automation::execution::{Execution, is_terminal};
use ssmd_core::automation::machine::{self, ChildStart, Effect, Need, Outcome};
use ssmd_core::automation::runbook::Runbook;
use ssmd_model::ApiError;
use ssmd_model::enums::AutomationExecutionStatus as Status;
use ssmd_model::shapes::StartAutomationExecutionRequest;
use ssmd_store::{ExecutionRow, NewExecution, StateWrite, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest an idle engine waits before looking for due work again (a start or signal on this
/// replica wakes it at once, a timer when it is due; other replicas' writes are seen within this).
const POLL: Duration = Duration::from_millis(100);
/// Executions claimed per query.
const CLAIM_BATCH: i64 = 64;
/// How often a running effect renews its lease and checks for a stop.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Handle on a running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    svc: Arc<Service>,
    owner: String,
    inflight: Mutex<Inflight>,
}

/// Executions this engine is driving, and those claimed again meanwhile (by the time a driving
/// task releases a row, a signal may have made it due and the claim loop taken it): the task
/// drives a "dirty" execution once more before it lets go.
#[derive(Default)]
struct Inflight {
    running: HashSet<String>,
    dirty: HashSet<String>,
}

impl Engine {
    /// Starts the engine on a tokio runtime. On SQLite this process is the only engine on the
    /// database, so leases left by a previous process are released first.
    pub async fn start(svc: Arc<Service>) -> Result<Engine, ApiError> {
        if svc.store.backend() == ssmd_store::Backend::Sqlite {
            svc.store.release_all_leases().await.map_err(crate::store_error)?;
        }
        let engine = Engine {
            inner: Arc::new(Inner { svc, owner: ssmd_core::ids::uuid(), inflight: Mutex::new(Inflight::default()) }),
        };
        let e = engine.clone();
        tokio::spawn(async move { e.run().await });
        Ok(engine)
    }

    async fn run(self) {
        let svc = &self.inner.svc;
        loop {
            let now = svc.now_ms();
            let room = svc.automation.settings.workers.saturating_sub(self.inflight_len()) as i64;
            let claimed = if room > 0 {
                match svc
                    .store
                    .claim_executions(
                        &self.inner.owner,
                        now,
                        now + svc.automation.settings.lease_ms,
                        room.min(CLAIM_BATCH),
                    )
                    .await
                {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming automation executions failed");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let full = claimed.len() as i64 == CLAIM_BATCH;
            for row in claimed {
                {
                    let mut f = self.inner.inflight.lock().expect("inflight");
                    if !f.running.insert(row.id.clone()) {
                        f.dirty.insert(row.id.clone());
                        continue;
                    }
                }
                let e = self.clone();
                tokio::spawn(async move { e.drive_until_clean(row).await });
            }
            if !full {
                // Sleep until the next timer on this database is due, but no longer than POLL.
                let next = if room > 0 { svc.store.next_due().await.ok().flatten() } else { None };
                let pause = next
                    .map(|due| Duration::from_millis((due - svc.now_ms()).clamp(1, POLL.as_millis() as i64) as u64))
                    .unwrap_or(POLL);
                tokio::select! {
                    _ = svc.automation.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    fn inflight_len(&self) -> usize {
        self.inner.inflight.lock().expect("inflight").running.len()
    }

    /// Drives a claimed execution, again if it was claimed again meanwhile; a panic in the
    /// machine is contained (logged; the lease runs out and the execution is retried).
    async fn drive_until_clean(self, mut row: ExecutionRow) {
        let id = row.id.clone();
        loop {
            let e = self.clone();
            match tokio::spawn(async move { e.drive(row).await }).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(execution = %id, error = %err, "driving an automation execution failed"),
                Err(err) => tracing::error!(execution = %id, error = %err, "driving an automation execution panicked"),
            }
            let again = {
                let mut f = self.inner.inflight.lock().expect("inflight");
                let again = f.dirty.remove(&id);
                if !again {
                    f.running.remove(&id);
                }
                again
            };
            let next = if again { self.inner.svc.store.execution_by_id(&id).await.ok().flatten() } else { None };
            match next {
                Some(r) if r.lease_owner.as_deref() == Some(self.inner.owner.as_str()) => row = r,
                _ => {
                    if again {
                        self.inner.inflight.lock().expect("inflight").running.remove(&id);
                    }
                    break;
                }
            }
        }
        self.inner.svc.automation.wake.notify_one();
    }

    /// Writes `x` over `row`; `Ok(false)` when someone wrote in between (re-read and retry).
    async fn write(
        &self,
        row: &mut ExecutionRow,
        x: &Execution,
        rb: &Runbook,
        due_ms: Option<i64>,
        keep_lease: bool,
        children: &[NewExecution],
    ) -> Result<bool, ApiError> {
        let svc = &self.inner.svc;
        let state = serde_json::to_string(x).map_err(|e| ApiError::internal(e.to_string()))?;
        let outputs = final_outputs(x, rb);
        let terminal = is_terminal(x.status);
        let w = StateWrite {
            id: &row.id,
            version: row.version,
            state: &state,
            status: x.status.as_str(),
            outputs: outputs.as_deref(),
            due_ms,
            keep_lease,
            lease_until: Some(svc.now_ms() + svc.automation.settings.lease_ms),
            wake: if terminal { x.parent_id.as_deref() } else { None },
            now_ms: svc.now_ms(),
            owner: Some(&self.inner.owner),
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
                if terminal && x.parent_id.is_some() || !children.is_empty() {
                    svc.automation.wake.notify_one();
                }
                Ok(true)
            }
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(crate::store_error(e)),
        }
    }

    /// Re-reads a row after a conflict; `None` when the lease is no longer this engine's (another
    /// engine took the execution over: it drives it from here).
    async fn reload(&self, id: &str) -> Result<Option<ExecutionRow>, ApiError> {
        let row = self.inner.svc.store.execution_by_id(id).await.map_err(crate::store_error)?;
        Ok(row.filter(|r| r.lease_owner.as_deref() == Some(self.inner.owner.as_str())))
    }

    /// Drives one claimed execution until it waits, finishes or is taken over.
    async fn drive(&self, mut row: ExecutionRow) -> Result<(), ApiError> {
        let svc = &self.inner.svc;
        let rb = svc.runbook(&row.runbook_sha).await?;
        // The result of the last effect, kept until it is written.
        let mut result: Option<(usize, u32, Outcome)> = None;
        loop {
            let mut x = parse_state(&row)?;
            let now = svc.now_ms();
            if let Some((i, attempt, o)) = result.clone() {
                machine::complete(&mut x, &rb, i, attempt, o, now);
            }
            self.collect_children(&mut x, &rb, now).await?;
            if x.status == Status::Pending && !self.admit(&x).await? {
                // Over the running limit: stay Pending and look again shortly.
                if self.write(&mut row, &x, &rb, Some(now + 500), false, &[]).await? {
                    return Ok(());
                }
                row = match self.reload(&row.id).await? {
                    Some(r) => r,
                    None => return Ok(()),
                };
                continue;
            }
            let need = machine::drive(&mut x, &rb, now);
            let mut cancels = Vec::new();
            let (due, keep, children, effect) = match need {
                Need::Done => (None, false, Vec::new(), None),
                Need::Wait(at) => (at, false, Vec::new(), None),
                Need::Effect(Effect::Start(starts)) => {
                    let children = self.prepare_children(&mut x, &rb, starts, now).await?;
                    (Some(now), true, children, None)
                }
                Need::Effect(Effect::Cancel(ids)) => {
                    // Persist first (the list is cleared in the state), then cancel.
                    cancels = ids;
                    (Some(now), true, Vec::new(), None)
                }
                Need::Effect(e) => (Some(now), true, Vec::new(), Some(e)),
            };
            if !self.write(&mut row, &x, &rb, due, keep, &children).await? {
                row = match self.reload(&row.id).await? {
                    Some(r) => r,
                    None => return Ok(()),
                };
                continue;
            }
            result = None;
            for id in &cancels {
                cancel_child(svc, id).await?;
            }
            if !keep {
                return Ok(());
            }
            if let Some(effect) = effect {
                match self.run_effect(&mut row, &x, effect).await? {
                    Some(r) => result = Some(r),
                    None => {
                        // The step was stopped or the execution changed hands: re-read.
                        row = match self.reload(&row.id).await? {
                            Some(r) => r,
                            None => return Ok(()),
                        };
                    }
                }
            }
        }
    }

    /// Whether a Pending execution may start under the running limit (queued executions start
    /// in the order they were started). Children always start: their parents already hold
    /// places, and holding children back could leave every place to parents waiting on them.
    async fn admit(&self, x: &Execution) -> Result<bool, ApiError> {
        if x.parent_id.is_some() {
            return Ok(true);
        }
        let svc = &self.inner.svc;
        let max = svc.automation.settings.max_running;
        let count = |statuses: &'static [Status]| async move {
            let statuses: Vec<&str> = statuses.iter().map(Status::as_str).collect();
            svc.store.count_executions(&x.account, &x.region, &statuses).await.map_err(crate::store_error)
        };
        let running = count(&[Status::InProgress, Status::Waiting, Status::Cancelling]).await?;
        if running >= max {
            return Ok(false);
        }
        // When every queued execution fits, order does not matter (the common, cheap case).
        if running + count(&[Status::Pending]).await? <= max {
            return Ok(true);
        }
        let before =
            svc.store.pending_before(&x.account, &x.region, x.start_ms, &x.id).await.map_err(crate::store_error)?;
        Ok(running + before < max)
    }

    /// Feeds finished children's results to the machine.
    async fn collect_children(&self, x: &mut Execution, rb: &Runbook, now: i64) -> Result<(), ApiError> {
        let awaited = x.awaited_children();
        if awaited.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = awaited.iter().map(|(_, id)| id.clone()).collect();
        let rows = self.inner.svc.store.executions_by_ids(&ids).await.map_err(crate::store_error)?;
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
        let svc = &self.inner.svc;
        let caller = caller_of(x);
        let mut out = Vec::new();
        for s in starts {
            let req: Result<StartAutomationExecutionRequest, ApiError> = ssmd_model::validate::validate(
                ssmd_model::Operation::StartAutomationExecution.info().input,
                &s.request,
            )
            .and_then(|_| ssmd_model::decode(s.request.clone()));
            let origin = Origin { id: s.id.clone(), parent: Some(x.id.clone()), target: s.target.clone() };
            let prepared = match req {
                Ok(req) => prepare(svc, &caller, &req, origin).await,
                Err(e) => Err(e),
            };
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

    /// Runs a script or API effect while renewing the lease. `Ok(None)` when the step was stopped,
    /// cancelled or taken over meanwhile (the effect is abandoned).
    async fn run_effect(
        &self,
        row: &mut ExecutionRow,
        x: &Execution,
        effect: Effect,
    ) -> Result<Option<(usize, u32, Outcome)>, ApiError> {
        let svc = self.inner.svc.clone();
        let (record, attempt) = match &effect {
            Effect::Script { record, attempt, .. }
            | Effect::Api { record, attempt, .. }
            | Effect::RunCommand { record, attempt, .. } => (*record, *attempt),
            _ => return Ok(None),
        };
        let work = async {
            match effect {
                Effect::Script { runtime, handler, script, events, timeout_s, .. } => {
                    actions::script(&svc, x, runtime, handler, script, events, timeout_s).await
                }
                Effect::Api { service, api, params, check, timeout_s, .. } => {
                    actions::api(&svc, x, &service, &api, &params, &check, timeout_s).await
                }
                Effect::RunCommand { command_id, request, timeout_s, .. } => {
                    actions::run_command(&svc, x, &command_id, &request, timeout_s).await
                }
                _ => unreachable!("filtered above"),
            }
        };
        tokio::pin!(work);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return Ok(Some((record, attempt, outcome))),
                _ = beat.tick() => {
                    let now = svc.now_ms();
                    // A database hiccup is not a reason to kill the work: the lease still runs.
                    let mine = match svc
                        .store
                        .extend_lease(&row.id, &self.inner.owner, now + svc.automation.settings.lease_ms)
                        .await
                    {
                        Ok(mine) => mine,
                        Err(e) => {
                            tracing::warn!(execution = %row.id, error = %e, "renewing a lease failed");
                            continue;
                        }
                    };
                    if !mine {
                        return Ok(None);
                    }
                    let fresh = match svc.store.execution_by_id(&row.id).await {
                        Ok(Some(fresh)) => fresh,
                        Ok(None) => return Ok(None),
                        Err(_) => continue,
                    };
                    if fresh.version != row.version {
                        let fx = parse_state(&fresh)?;
                        let r = fx.steps.get(record);
                        let live = fx.status != Status::Cancelling
                            && r.is_some_and(|r| r.attempt == attempt && !is_terminal(r.status));
                        if !live {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}
