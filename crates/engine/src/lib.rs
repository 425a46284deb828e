//! ssmd's durable engine: the one place background work lives.
//!
//! * [`jobs`]: work that must happen at a time, exactly once across replicas — a durable job
//!   table (in `ssmd_store::jobs`) claimed under leases with fencing tokens, run by one
//!   [`jobs::Runner`] per kind with retries and back-off. Automation executions, Run Command
//!   deadlines and every timer are jobs; a waiter links itself to what it waits for
//!   (`Store::await_completion`) instead of holding a slot.
//! * [`worker`]: every background loop is a named [`worker::Worker`] that stops cleanly and
//!   reports its state in `/metrics`.
//! * [`clock`]: every deadline waits on the service's clock, so tests drive time.
//! * Wake-ups: committed transactions name topics (`Tx::notify`); in this process they are
//!   delivered at once, and on PostgreSQL the [`Listener`] worker brings the other replicas'
//!   (LISTEN/NOTIFY). Polling is only the fallback.
//!
//! `docs/design/engine.md` explains how the pieces fit.

pub mod clock;
pub mod jobs;
pub mod worker;

pub use jobs::{Handler, Job, Outcome, Runner, Settings};
pub use ssmd_store::jobs::{Claim, Next};
pub use worker::{State, Stop, Worker, Workers};

use ssmd_core::Clock;
use ssmd_store::Store;
use std::sync::Arc;

/// The engine of one replica: its lease owner id, its workers, its store and clock.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    owner: String,
    workers: Workers,
}

impl Engine {
    /// An engine with no workers yet. `owner` names this replica in leases.
    pub fn new(store: Store, clock: Arc<dyn Clock>, owner: String) -> Engine {
        Engine { store, clock, owner, workers: Workers::new() }
    }

    /// Starts the replica's background plumbing: on SQLite, releases the leases a previous
    /// process left (it is the only process on the file); on PostgreSQL, the listener that
    /// brings other replicas' wake-ups.
    pub async fn start(&self) -> ssmd_store::Result<()> {
        if self.store.backend() == ssmd_store::Backend::Sqlite {
            let n = self.store.release_all_jobs(self.clock.now_ms()).await?;
            if n > 0 {
                tracing::info!(jobs = n, "released the jobs a previous process held");
            }
        }
        let listener = self.store.listener();
        if listener.active() {
            self.workers.spawn(RelayWorker { name: "listener", inner: listener, failed: None });
        }
        let notifier = self.store.notifier();
        if notifier.active() {
            self.workers.spawn(RelayWorker { name: "notifier", inner: notifier, failed: None });
        }
        Ok(())
    }

    /// Runs `kind` jobs with `handler` from now on.
    pub fn run_jobs<H: Handler>(&self, kind: &'static str, handler: Arc<H>, settings: Settings) {
        let r = Runner::new(kind, self.store.clone(), self.clock.clone(), self.owner.clone(), handler, settings);
        self.workers.spawn(r);
    }

    /// Starts a worker.
    pub fn spawn<W: Worker>(&self, w: W) {
        self.workers.spawn(w)
    }

    /// This replica's lease owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The workers.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops every worker and waits for them.
    pub async fn shutdown(&self) {
        self.workers.shutdown().await
    }
}

/// A loop that waits for something and passes it on: the wake-up listener and notifier.
trait Relay: Send + 'static {
    fn next(&mut self) -> impl std::future::Future<Output = ssmd_store::Result<()>> + Send;
}

impl Relay for ssmd_store::bus::Listener {
    async fn next(&mut self) -> ssmd_store::Result<()> {
        ssmd_store::bus::Listener::next(self).await
    }
}

impl Relay for ssmd_store::bus::Notifier {
    async fn next(&mut self) -> ssmd_store::Result<()> {
        ssmd_store::bus::Notifier::next(self).await
    }
}

/// The worker of a [`Relay`]: `listener` brings other replicas' wake-ups (PostgreSQL
/// LISTEN/NOTIFY) to the bus, `notifier` sends this replica's committed ones. It relays while it
/// waits for work (so a stop interrupts it at once); a failure is reported by the next unit of
/// work, which backs off.
struct RelayWorker<R: Relay> {
    name: &'static str,
    inner: R,
    failed: Option<String>,
}

impl<R: Relay> Worker for RelayWorker<R> {
    fn name(&self) -> String {
        self.name.into()
    }

    async fn work(&mut self) -> Result<State, String> {
        match self.failed.take() {
            Some(e) => Err(format!("{}: {e}", self.name)),
            None => Ok(State::Idle),
        }
    }

    async fn wait_for_work(&mut self) {
        if let Err(e) = self.inner.next().await {
            self.failed = Some(e.to_string());
        }
    }
}
