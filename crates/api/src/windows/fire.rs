//! Firing windows: the handler of `window` jobs. A window has one pending fire job, keyed
//! `<window id>@<occurrence ms>`; at that time one replica claims it and, in one transaction,
//! records the occurrence's execution (unique per window and occurrence), hands it to its
//! driver and plans the next fire.
//!
//! What an occurrence becomes:
//! * the window is gone, disabled, or the time is no longer one of its runs (its schedule
//!   changed): nothing; the next fire is planned from the window as it is now;
//! * the window's previous execution is still running: an execution recorded
//!   `SKIPPED_OVERLAPPING`;
//! * ssmd was not running at the time and the window's task start period (Duration − Cutoff)
//!   has passed since: an execution recorded `TIMED_OUT`, saying so (inside the period it runs
//!   late, with the time left);
//! * otherwise an execution `PENDING` with one task execution per registered task, which the
//!   driver (`drive`) then runs.
//!
//! A run missed entirely is not recorded: after a long stop only the one due occurrence is,
//! and the next fire is the first run after now.

use super::parts::tasks_of;
use super::*;
use ssmd_core::schedule::{Precision, format_utc};
use ssmd_engine::{Handler, Job, Outcome};
use ssmd_store::{Fire, StoreError, TaskRunRow};
use std::sync::Arc;

/// An execution's timing, kept in its `state`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct RunTimes {
    /// The occurrence: when the window opened.
    pub opened_ms: i64,
    /// No task or invocation starts after this (start + Duration − Cutoff).
    pub latest_start_ms: i64,
    /// The window closes: what is unfinished then is TIMED_OUT (start + Duration).
    pub end_ms: i64,
}

/// The handler of fire jobs.
pub struct Fires {
    svc: Arc<Service>,
}

impl Fires {
    pub(crate) fn new(svc: Arc<Service>) -> Fires {
        Fires { svc }
    }
}

impl Handler for Fires {
    async fn run(&self, job: Job) -> Outcome {
        match fire(&self.svc, &job.claim).await {
            Ok(()) => Outcome::Finished,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// The window id and occurrence of a fire job's key.
fn occurrence(key: &str) -> Option<(&str, i64)> {
    let (id, at) = key.rsplit_once('@')?;
    Some((id, at.parse().ok()?))
}

async fn fire(svc: &Service, claim: &ssmd_store::jobs::Claim) -> Result<(), ApiError> {
    let Some((id, at)) = occurrence(&claim.key) else {
        tracing::warn!(key = claim.key, "malformed window fire job dropped");
        return svc.store.finish(claim, ssmd_store::jobs::Next::Done, svc.now_ms()).await.map_err(store_error);
    };
    // The window may change while this looks: a conflict reads it again.
    for _ in 0..5 {
        let now = svc.now_ms();
        let Some(row) = svc.store.window_by_id(id).await.map_err(store_error)? else {
            return svc.store.finish(claim, ssmd_store::jobs::Next::Done, now).await.map_err(store_error);
        };
        let w = Window::read(row)?;
        let table = match w.spec.timetable(w.row.anchor_ms) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(window = id, error = %e, "stored window schedule no longer valid; not fired");
                return svc.store.finish(claim, ssmd_store::jobs::Next::Done, now).await.map_err(store_error);
            }
        };
        let due = w.row.enabled && table.next_after(at - 1) == Some(at);
        let next = if w.row.enabled { table.next_after(at.max(now)) } else { None };
        let fire = if due { Some(build(svc, &w, at, now).await?) } else { None };
        match svc.store.fire_window(claim, &w.row, fire.as_ref(), next, now).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::internal("the window kept changing while it fired"))
}

/// The execution occurrence `at` of window `w` becomes, fired at `now`.
async fn build(svc: &Service, w: &Window, at: i64, now: i64) -> Result<Fire, ApiError> {
    let times = RunTimes {
        opened_ms: at,
        latest_start_ms: at + w.spec.duration_ms() - w.spec.cutoff_ms(),
        end_ms: at + w.spec.duration_ms(),
    };
    let mut execution = WindowRunRow {
        id: ssmd_core::ids::uuid(),
        window_id: w.row.id.clone(),
        account: w.row.account.clone(),
        region: w.row.region.clone(),
        scheduled_ms: at,
        status: MaintenanceWindowExecutionStatus::Pending.as_str().into(),
        status_details: String::new(),
        start_ms: Some(now),
        end_ms: None,
        state: to_json(&times),
        version: 1,
    };
    let mut ended = |status: MaintenanceWindowExecutionStatus, details: String| {
        execution.status = status.as_str().into();
        execution.status_details = details;
        execution.end_ms = Some(now);
    };
    if now >= times.latest_start_ms {
        ended(
            MaintenanceWindowExecutionStatus::TimedOut,
            format!(
                "ssmd was not running when this execution was due at {}, and when it started again the window's \
                 time to start tasks had passed.",
                format_utc(at, Precision::Second)
            ),
        );
        return Ok(Fire { execution, tasks: vec![], drive: false });
    }
    if let Some(previous) = svc.store.window_running(&w.row.id).await.map_err(store_error)? {
        ended(
            MaintenanceWindowExecutionStatus::SkippedOverlapping,
            format!("The previous execution of this maintenance window, {previous}, was still running."),
        );
        return Ok(Fire { execution, tasks: vec![], drive: false });
    }
    let tasks = tasks_of(svc, &w.row.id)
        .await?
        .into_iter()
        .enumerate()
        .map(|(seq, task)| TaskRunRow {
            id: ssmd_core::ids::uuid(),
            execution_id: execution.id.clone(),
            task_id: task.window_task_id.clone().unwrap_or_default(),
            seq: seq as i64,
            status: MaintenanceWindowExecutionStatus::Pending.as_str().into(),
            status_details: String::new(),
            start_ms: None,
            end_ms: None,
            spec: to_json(&task),
            progress: "{}".into(),
        })
        .collect();
    Ok(Fire { execution, tasks, drive: true })
}
