//! Run Command's background work, on the engine: each command has a deadline job
//! (`command/<id>`, due at its delivery timeout) whose handler ends the invocations no node
//! picked up in time (TimedOut / DeliveryTimedOut) and moves the job to the command's
//! `ExpiresAfter` (delivery plus execution timeout), when every invocation still unfinished
//! ends — a node that died mid-run does not keep its command open forever. A command that ends
//! drops its deadline job in the transaction that ends it. The settle transaction makes a
//! timeout count once, whichever replica runs the job.
//!
//! Retention is a job too (`maintenance/purge-replies`, every minute on one replica): reply ids
//! are forgotten after three hours; `maintenance/purge-window-history` forgets maintenance-window
//! executions that ended more than the configured days ago (30 by default, as AWS).

use super::*;
use ssmd_core::command::End;
use ssmd_engine::{Handler, Job, Next, Outcome};

/// How long reply ids are remembered (the AWS agent re-sends a reply for at most two hours).
const REPLY_MEMORY_MS: i64 = 3 * 60 * 60 * 1000;

/// The job kind of periodic clean-ups.
pub const MAINTENANCE_JOB: &str = "maintenance";
/// The key of the reply-id clean-up.
pub const PURGE_REPLIES: &str = "purge-replies";
/// The key of the maintenance-window history clean-up.
pub const PURGE_WINDOW_HISTORY: &str = "purge-window-history";
/// How often the clean-ups run.
const PURGE_EVERY_MS: i64 = 60_000;

/// The handler of command deadline jobs.
pub struct Deadlines {
    svc: Arc<Service>,
}

impl Deadlines {
    pub(crate) fn new(svc: Arc<Service>) -> Deadlines {
        Deadlines { svc }
    }
}

impl Handler for Deadlines {
    async fn run(&self, job: Job) -> Outcome {
        match expire(&self.svc, &job.claim.key, self.svc.now_ms()).await {
            Ok(next) => Outcome::Next(next.map_or(Next::Done, Next::At)),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// The handler of `maintenance` jobs.
pub struct Maintenance {
    svc: Arc<Service>,
}

impl Maintenance {
    pub(crate) fn new(svc: Arc<Service>) -> Maintenance {
        Maintenance { svc }
    }
}

impl Handler for Maintenance {
    async fn run(&self, job: Job) -> Outcome {
        let now = self.svc.now_ms();
        match job.claim.key.as_str() {
            PURGE_REPLIES => match self.svc.store.purge_replies(now - REPLY_MEMORY_MS).await {
                Ok(_) => Outcome::Next(Next::At(now + PURGE_EVERY_MS)),
                Err(e) => Outcome::Failed(format!("forgetting old reply ids: {e}")),
            },
            PURGE_WINDOW_HISTORY => {
                let keep_ms = self.svc.windows.history_days.max(1) * 86_400_000;
                match self.svc.store.purge_window_runs(now - keep_ms).await {
                    Ok(_) => Outcome::Next(Next::At(now + PURGE_EVERY_MS)),
                    Err(e) => Outcome::Failed(format!("forgetting old window executions: {e}")),
                }
            }
            other => {
                tracing::warn!(job = other, "unknown maintenance job dropped");
                Outcome::Next(Next::Done)
            }
        }
    }
}

/// Ends what command `id`'s deadlines end at `now`; returns when to look again (`None`: the
/// command needs no more deadlines).
pub async fn expire(svc: &Service, id: &str, now: i64) -> Result<Option<i64>, ApiError> {
    let mut next = None;
    let found = settle(svc, id, Scope::Unfinished, None, |row, invocations| {
        // (Run again if the store repeats the transaction: start from nothing.)
        next = None;
        let sp = spec(row);
        let deliver_by =
            row.requested_ms + i64::from(sp.timeout_seconds.unwrap_or(send::DEFAULT_TIMEOUT_SECONDS)) * 1000;
        // Past ExpiresAfter (delivery plus execution timeout) every unfinished invocation ends,
        // as SSM does; before it, only those no node has picked up.
        let expires = sp.expires_after.map_or(i64::MAX, |s| (s * 1000.0).round() as i64);
        let mut p = progress(row).ok()?;
        if p.finished() {
            return None;
        }
        if now < deliver_by {
            next = Some(deliver_by);
            return None;
        }
        p.expire();
        let final_pass = now >= expires;
        let mut ends = Ends::default();
        for inv in invocations {
            let end = match or_log(invocation_status(&inv))? {
                s if not_started(s) => End::DeliveryTimedOut,
                InvStatus::Cancelling if final_pass => End::Cancelled,
                _ if final_pass => End::DeliveryTimedOut,
                _ => continue,
            };
            ends.end(&mut p, inv, end, now);
        }
        let s = ends.into_settlement(settlement(row, &mut p, false)?);
        next = (!final_pass && !p.finished()).then_some(expires);
        Some(s)
    })
    .await?;
    Ok(if found { next } else { None })
}
