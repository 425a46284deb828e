//! Admission: a top-level execution leaves Pending only while fewer than `max_running`
//! executions of its account and Region run (InProgress, Waiting, Cancelling); the rest wait in
//! Pending and start in the order they were started. Children always start: their parents hold
//! places already, and holding children back could leave every place to parents waiting on them.
//!
//! Counting every running execution for every start is a scan that grows with the number
//! running, so each replica keeps the last count per account and Region (a [`Tally`]) with the
//! places it has given out since. While even the sum of everything counted and given out is
//! under half the limit, an execution starts without a query; nearer the limit, or after a
//! second, the count is taken again. Other replicas' starts are seen at the next count, so
//! replicas together may briefly give out more places than the limit (documented in
//! `docs/compat.md`).

use crate::Service;
use ssmd_core::automation::execution::Execution;
use ssmd_model::ApiError;
use ssmd_model::enums::AutomationExecutionStatus as Status;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a count is trusted while far from the limit.
const TRUST: Duration = Duration::from_secs(1);

/// The last count of one account and Region.
struct Tally {
    at: Instant,
    running: i64,
    pending: i64,
    /// Places given out here since the count.
    given: i64,
    /// Executions started (queued) here since the count.
    queued: i64,
}

/// The counts of every account and Region this replica has admitted for.
#[derive(Default)]
pub(crate) struct Admissions {
    tallies: Mutex<HashMap<(String, String), Tally>>,
}

impl Admissions {
    /// A place given out without counting, if the last count is recent and far from `max`.
    fn quick(&self, key: &(String, String), max: i64) -> bool {
        let mut tallies = self.tallies.lock().expect("admissions");
        match tallies.get_mut(key) {
            Some(t) if t.at.elapsed() < TRUST && 2 * (t.running + t.pending + t.queued + t.given) < max => {
                t.given += 1;
                true
            }
            _ => false,
        }
    }

    /// A start queued without counting, if the last count is recent and far from `max_queued`.
    fn quick_queue(&self, key: &(String, String), max_queued: i64) -> bool {
        let mut tallies = self.tallies.lock().expect("admissions");
        match tallies.get_mut(key) {
            Some(t) if t.at.elapsed() < TRUST && 2 * (t.pending + t.queued) < max_queued => {
                t.queued += 1;
                true
            }
            _ => false,
        }
    }

    fn counted(&self, key: (String, String), running: i64, pending: i64, admitted: bool) {
        let mut tallies = self.tallies.lock().expect("admissions");
        if tallies.len() > 10_000 {
            tallies.clear();
        }
        tallies.insert(key, Tally { at: Instant::now(), running, pending, given: i64::from(admitted), queued: 0 });
    }
}

/// `Some(waiting)` when `max_queued` executions of the account and Region already wait in
/// Pending (StartAutomationExecution is refused), else `None` (and the start counts as queued).
pub(crate) async fn queue_full(svc: &Service, account: &str, region: &str) -> Result<Option<i64>, ApiError> {
    let max_queued = svc.automation.settings.max_queued;
    let key = (account.to_string(), region.to_string());
    if svc.automation.admissions.quick_queue(&key, max_queued) {
        return Ok(None);
    }
    let (running, pending) = count(svc, account, region).await?;
    let full = pending >= max_queued;
    svc.automation.admissions.counted(key, running, pending, false);
    if !full {
        svc.automation.admissions.quick_queue(&(account.to_string(), region.to_string()), i64::MAX);
    }
    Ok(full.then_some(pending))
}

/// Whether the Pending execution `x` may start now.
pub(crate) async fn admit(svc: &Service, x: &Execution) -> Result<bool, ApiError> {
    if x.parent_id.is_some() {
        return Ok(true);
    }
    let max = svc.automation.settings.max_running;
    let key = (x.account.clone(), x.region.clone());
    let admissions = &svc.automation.admissions;
    if admissions.quick(&key, max) {
        return Ok(true);
    }
    let (running, pending) = count(svc, &x.account, &x.region).await?;
    let admitted = if running >= max {
        false
    } else if running + pending <= max {
        // When every queued execution fits, order does not matter (the common, cheap case).
        true
    } else {
        let before =
            svc.store.pending_before(&x.account, &x.region, x.start_ms, &x.id).await.map_err(crate::store_error)?;
        running + before < max
    };
    admissions.counted(key, running, pending, admitted);
    Ok(admitted)
}

/// (running, pending) executions of the account and Region, counted in one query.
async fn count(svc: &Service, account: &str, region: &str) -> Result<(i64, i64), ApiError> {
    let counted = [Status::InProgress, Status::Waiting, Status::Cancelling, Status::Pending];
    let statuses: Vec<&str> = counted.iter().map(Status::as_str).collect();
    let counts = svc.store.count_by_status(account, region, &statuses).await.map_err(crate::store_error)?;
    let pending: i64 = counts.iter().filter(|(s, _)| s == Status::Pending.as_str()).map(|(_, n)| n).sum();
    let running: i64 = counts.iter().map(|(_, n)| n).sum::<i64>() - pending;
    Ok((running, pending))
}
