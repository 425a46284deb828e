//! The Run Command background worker: every [`TICK_MS`] it wakes the long polls of nodes whose
//! messages became visible (queued by another replica, or back after their visibility timeout),
//! and it ends the invocations of commands whose delivery timeout has passed before their node
//! picked them up (TimedOut / DeliveryTimedOut), and, once `ExpiresAfter` (delivery plus
//! execution timeout) has passed, every invocation still unfinished — a node that died mid-run
//! does not keep its command open forever. Every replica runs one; the settle transaction makes
//! a timeout count once.

use super::*;
use ssmd_core::command::End;
use std::time::Duration;

/// How long reply ids are remembered (the AWS agent re-sends a reply for at most two hours).
const REPLY_MEMORY_MS: i64 = 3 * 60 * 60 * 1000;

/// How often the worker looks.
pub const TICK_MS: u64 = 100;

/// How far back each look reaches, so a message committed by another replica with a slightly
/// earlier clock reading is not missed.
const LOOK_BACK_MS: i64 = 2_000;

/// Starts the worker on the current tokio runtime.
pub fn start(svc: Arc<Service>) {
    tokio::spawn(async move {
        let mut last = svc.now_ms();
        let mut ticks: u64 = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(TICK_MS)).await;
            let now = svc.now_ms();
            match svc.store.destinations_visible_between(last.min(now) - LOOK_BACK_MS, now).await {
                Ok(nodes) => nodes.iter().for_each(|n| svc.commands.wake(n)),
                Err(e) => tracing::warn!(error = %e, "looking for visible node messages failed"),
            }
            last = now;
            ticks += 1;
            if ticks.is_multiple_of(5) {
                expire_due(&svc, now).await;
            }
            if ticks.is_multiple_of(600)
                && let Err(e) = svc.store.purge_replies(now - REPLY_MEMORY_MS).await
            {
                tracing::warn!(error = %e, "forgetting old reply ids failed");
            }
        }
    });
}

/// Times out the undelivered invocations of every command past its delivery deadline.
pub async fn expire_due(svc: &Service, now: i64) {
    let due = match svc.store.commands_past_delivery(now, 100).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "looking for commands past their delivery timeout failed");
            return;
        }
    };
    for id in due {
        let r = settle(svc, &id, Scope::Unfinished, None, |row, invocations| {
            if row.deliver_by_ms.is_none_or(|t| t > now) {
                return None; // another replica got here first
            }
            let mut p = progress(row).ok()?;
            p.expire();
            // Past ExpiresAfter (delivery plus execution timeout) every unfinished invocation
            // ends, as SSM does; before it, only those no node has picked up.
            let expires = spec(row).expires_after.map_or(i64::MAX, |s| (s * 1000.0).round() as i64);
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
            let mut s = ends.into_settlement(settlement(row, &mut p, false)?);
            s.deliver_by_ms = if final_pass || p.finished() { None } else { Some(expires) };
            Some(s)
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(command = id, error = %e, "timing out undelivered invocations failed");
        }
    }
}
