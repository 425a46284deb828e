//! Running jobs: one [`Runner`] worker per job kind claims that kind's due jobs (see
//! `ssmd_store::jobs` for the table and its guarantees) and runs each with the kind's
//! [`Handler`], at most `slots` at once.
//!
//! * While a handler runs, its lease is renewed every third of the lease; if the job was taken
//!   over meanwhile (the lease ran out: a stalled database, a paused process), the handler is
//!   dropped and its result discarded — the new holder runs the job.
//! * The handler's [`Outcome`] decides what happens to the job (done, again at a time, retried
//!   after a back-off of 1 s doubling to 5 min). A handler that panics is retried the same
//!   way. A handler that finishes the job in a transaction of its own (so the job moves with
//!   its domain writes) answers [`Outcome::Finished`].
//! * A job poked while it runs (a signal for an execution being driven) is told through
//!   [`Job::poked`], and runs again after this run.
//! * Idle runners sleep until their kind's earliest due job, woken early by `job:<kind>`
//!   wake-ups from this process or (PostgreSQL) any replica; a slow fallback poll covers lost
//!   wake-ups.
//!
//! Metrics: `ssmd_jobs_running{kind}`, `ssmd_jobs_total{kind,outcome}`, and
//! `ssmd_job_lag_seconds{kind}` — from when a job was meant to run to when it was claimed (the
//! fire jitter of timers).

use crate::clock::sleep_until;
use crate::worker::{State, Worker};
use ssmd_core::Clock;
use ssmd_store::jobs::{Claim, Next};
use ssmd_store::{Store, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A claimed job handed to its handler.
pub struct Job {
    /// The claim (kind, key, fencing token, payload…).
    pub claim: Claim,
    poke: Arc<Notify>,
}

impl Job {
    /// Resolves when the job is poked (made due again by someone else) while it runs; a poke
    /// that came before the call counts.
    pub async fn poked(&self) {
        self.poke.notified().await
    }
}

/// What a handler did with its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finish the job this way (done, or again at a time).
    Next(Next),
    /// The handler already finished the job inside its own transaction.
    Finished,
    /// The run failed: try again after a back-off.
    Failed(String),
}

/// The work of one job kind.
pub trait Handler: Send + Sync + 'static {
    /// Runs one claimed job.
    fn run(&self, job: Job) -> impl Future<Output = Outcome> + Send;
}

/// How a runner claims and runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs of the kind this runner runs at once.
    pub slots: usize,
    /// How long a claim lasts unrenewed.
    pub lease_ms: i64,
    /// Jobs claimed per query.
    pub batch: usize,
    /// The longest an idle runner waits without looking (wake-ups normally come first).
    pub fallback_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { slots: 64, lease_ms: 30_000, batch: 64, fallback_poll: Duration::from_secs(2) }
    }
}

/// How long running jobs may take to finish at shutdown before they are ended.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The first retry delay of a failed job; it doubles per attempt up to [`MAX_RETRY_MS`].
const FIRST_RETRY_MS: i64 = 1_000;
/// The longest retry delay.
const MAX_RETRY_MS: i64 = 300_000;

/// When a job that failed on its `attempts`-th claim is tried again.
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let doublings = (attempts.max(1) - 1).min(20) as u32;
    FIRST_RETRY_MS.saturating_mul(1i64 << doublings).min(MAX_RETRY_MS)
}

struct Shared {
    kind: &'static str,
    wake: Notify,
    /// Keys running here, with their poke signals.
    running: Mutex<HashMap<String, Arc<Notify>>>,
    /// The tasks running them, to end at shutdown.
    tasks: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Set at shutdown: finished runs start no deferred claims.
    stopping: std::sync::atomic::AtomicBool,
    /// Claims of keys still running here (their old lease ran out and this runner claimed them
    /// again): run when the old run ends.
    deferred: Mutex<HashMap<String, Claim>>,
}

/// The worker that runs one job kind.
pub struct Runner<H: Handler> {
    ctx: Ctx<H>,
    owner: String,
    settings: Settings,
}

/// What starting and finishing a job needs.
struct Ctx<H: Handler> {
    shared: Arc<Shared>,
    store: Store,
    clock: Arc<dyn Clock>,
    handler: Arc<H>,
    lease_ms: i64,
}

impl<H: Handler> Clone for Ctx<H> {
    fn clone(&self) -> Self {
        Ctx {
            shared: self.shared.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            handler: self.handler.clone(),
            lease_ms: self.lease_ms,
        }
    }
}

impl<H: Handler> Runner<H> {
    /// A runner of `kind` jobs for the lease owner `owner`, woken by the store's bus.
    pub fn new(
        kind: &'static str,
        store: Store,
        clock: Arc<dyn Clock>,
        owner: String,
        handler: Arc<H>,
        settings: Settings,
    ) -> Runner<H> {
        let shared = Arc::new(Shared {
            kind,
            wake: Notify::new(),
            running: Mutex::default(),
            tasks: Mutex::default(),
            stopping: Default::default(),
            deferred: Mutex::default(),
        });
        let s = shared.clone();
        store.bus().subscribe(
            "job:",
            Arc::new(move |topic: &str| {
                if topic == "*" {
                    s.wake.notify_one();
                    return;
                }
                let (kind, key) = topic.split_once(':').map_or((topic, None), |(k, rest)| (k, Some(rest)));
                if kind != s.kind {
                    return;
                }
                if let Some(key) = key
                    && let Some(poke) = s.running.lock().expect("running").get(key)
                {
                    poke.notify_one();
                }
                s.wake.notify_one();
            }),
        );
        let ctx = Ctx { shared, store, clock, handler, lease_ms: settings.lease_ms };
        Runner { ctx, owner, settings }
    }
}

impl<H: Handler> Ctx<H> {
    /// Runs `claim` in a task of its own (after the run of the same key here, if one is still
    /// going).
    fn start(&self, claim: Claim) {
        let poke = Arc::new(Notify::new());
        {
            let mut running = self.shared.running.lock().expect("running");
            if running.contains_key(&claim.key) {
                self.shared.deferred.lock().expect("deferred").insert(claim.key.clone(), claim);
                return;
            }
            running.insert(claim.key.clone(), poke.clone());
        }
        metrics::gauge!("ssmd_jobs_running", "kind" => self.shared.kind).increment(1.0);
        let lag = (self.clock.now_ms() - claim.run_at_ms).max(0) as f64 / 1000.0;
        metrics::histogram!("ssmd_job_lag_seconds", "kind" => self.shared.kind).record(lag);
        let key = claim.key.clone();
        let run: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(self.clone().run(claim, poke));
        let handle = tokio::spawn(run).abort_handle();
        self.shared.tasks.lock().expect("tasks").insert(key, handle);
    }

    async fn run(self, claim: Claim, poke: Arc<Notify>) {
        let kind = self.shared.kind;
        let key = claim.key.clone();
        let outcome = self.run_with_lease(claim.clone(), poke).await;
        let now = self.clock.now_ms();
        let label = match &outcome {
            None => "lost",
            Some(Outcome::Next(_)) | Some(Outcome::Finished) => "ok",
            Some(Outcome::Failed(_)) => "failed",
        };
        metrics::counter!("ssmd_jobs_total", "kind" => kind, "outcome" => label).increment(1);
        let next = match outcome {
            None | Some(Outcome::Finished) => None,
            Some(Outcome::Next(n)) => Some(n),
            Some(Outcome::Failed(e)) => {
                let delay = retry_delay_ms(claim.attempts);
                tracing::warn!(kind, key = %key, attempt = claim.attempts, retry_in_ms = delay, error = %e, "job failed");
                Some(Next::Retry(now + delay))
            }
        };
        if let Some(next) = next {
            match self.store.finish(&claim, next, now).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => tracing::debug!(kind, key = %key, "job was taken over before it finished"),
                // The lease runs out and the job is run again.
                Err(e) => tracing::warn!(kind, key = %key, error = %e, "finishing a job failed"),
            }
        }
        self.shared.running.lock().expect("running").remove(&key);
        self.shared.tasks.lock().expect("tasks").remove(&key);
        metrics::gauge!("ssmd_jobs_running", "kind" => kind).decrement(1.0);
        self.shared.wake.notify_one();
        let deferred = self.shared.deferred.lock().expect("deferred").remove(&key);
        if let Some(c) = deferred
            && !self.shared.stopping.load(std::sync::atomic::Ordering::SeqCst)
        {
            self.start(c);
        }
    }

    /// Runs the handler while renewing the lease; `None` if the job was taken over (the
    /// handler is dropped) — a panic is a failure.
    async fn run_with_lease(&self, claim: Claim, poke: Arc<Notify>) -> Option<Outcome> {
        let handler = self.handler.clone();
        let job = Job { claim: claim.clone(), poke };
        // In a task of its own, so a panic is contained; ended with this run if it is ended.
        let mut work = AbortOnDrop(tokio::spawn(async move { handler.run(job).await }));
        let beat = Duration::from_millis((self.lease_ms / 3).max(10) as u64);
        loop {
            tokio::select! {
                r = &mut work.0 => {
                    return Some(match r {
                        Ok(o) => o,
                        Err(e) if e.is_panic() => Outcome::Failed(format!("the handler panicked: {e}")),
                        Err(e) => Outcome::Failed(format!("the handler was cancelled: {e}")),
                    });
                }
                _ = tokio::time::sleep(beat) => {
                    match self.store.renew_job(&claim, self.clock.now_ms() + self.lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => return None,
                        // A database hiccup is not a reason to drop the work: the lease still runs.
                        Err(e) => tracing::warn!(kind = self.shared.kind, key = %claim.key, error = %e, "renewing a job's lease failed"),
                    }
                }
            }
        }
    }
}

/// A task ended when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<H: Handler> Worker for Runner<H> {
    fn name(&self) -> String {
        format!("jobs:{}", self.ctx.shared.kind)
    }

    async fn work(&mut self) -> Result<State, String> {
        let busy = self.ctx.shared.running.lock().expect("running").len();
        let free = self.settings.slots.saturating_sub(busy).min(self.settings.batch);
        if free == 0 {
            return Ok(State::Idle);
        }
        let now = self.ctx.clock.now_ms();
        let kind = self.ctx.shared.kind;
        let claims = self
            .ctx
            .store
            .claim_jobs(kind, &self.owner, now, now + self.settings.lease_ms, free as i64)
            .await
            .map_err(|e| format!("claiming {kind} jobs: {e}"))?;
        let full = claims.len() == free;
        for c in claims {
            self.ctx.start(c);
        }
        Ok(if full { State::Busy } else { State::Idle })
    }

    /// Runs still going get the grace period to finish; then they are ended where they stand
    /// (their leases run out, or a restart on SQLite releases them, and the jobs run again).
    async fn on_stop(&mut self) {
        let shared = &self.ctx.shared;
        shared.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while !shared.running.lock().expect("running").is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<_> = shared.tasks.lock().expect("tasks").drain().collect();
        if !left.is_empty() {
            tracing::info!(
                kind = shared.kind,
                jobs = left.len(),
                "stopping with jobs still running; they run again later"
            );
        }
        left.into_iter().for_each(|(_, t)| t.abort());
    }

    async fn wait_for_work(&mut self) {
        let shared = &self.ctx.shared;
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let full = shared.running.lock().expect("running").len() >= self.settings.slots;
        let next = if full { None } else { self.ctx.store.next_job_due(shared.kind).await.ok().flatten() };
        let clock = self.ctx.clock.clone();
        let due = async move {
            match next {
                Some(at) => sleep_until(&*clock, at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = due => {}
            _ = tokio::time::sleep(self.settings.fallback_poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(retry_delay_ms(1), 1_000);
        assert_eq!(retry_delay_ms(2), 2_000);
        assert_eq!(retry_delay_ms(5), 16_000);
        assert_eq!(retry_delay_ms(9), 256_000);
        assert_eq!(retry_delay_ms(10), 300_000);
        assert_eq!(retry_delay_ms(1_000), 300_000);
        assert_eq!(retry_delay_ms(0), 1_000);
    }
}
