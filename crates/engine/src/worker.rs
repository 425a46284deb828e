//! Named background workers that stop cleanly: every loop ssmd runs in the background (job
//! runners, the wake-up listener, message pickups, retention) is a [`Worker`] started on
//! [`Workers`].
//!
//! A worker does one unit of work per [`Worker::work`] call and says whether more is waiting
//! ([`State::Busy`]: called again at once) or not ([`State::Idle`]: [`Worker::wait_for_work`]
//! first). The runtime
//! * stops every worker on [`Workers::shutdown`] (the stop signal interrupts a wait, and a
//!   unit of work still running is given a grace period, then dropped);
//! * backs off on errors (100 ms doubling to 30 s, reset by the next success) instead of
//!   spinning on a database that is down;
//! * reports each worker's state in `/metrics` (`ssmd_worker_state{worker}`: 0 idle, 1 busy,
//!   2 backing off after an error, 3 stopped) and counts its errors
//!   (`ssmd_worker_errors_total{worker}`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a unit of work found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// More work is waiting: call `work` again at once.
    Busy,
    /// Nothing more for now: wait for work first.
    Idle,
    /// The worker has finished for good.
    Done,
}

/// A background loop.
pub trait Worker: Send + 'static {
    /// The worker's name, in logs and metrics (`engine:automation`, `listener`, …).
    fn name(&self) -> String;

    /// Does one unit of work. An error is logged and retried after a back-off.
    fn work(&mut self) -> impl Future<Output = Result<State, String>> + Send;

    /// Waits until there may be work again (a wake-up, a due time, a fallback poll).
    fn wait_for_work(&mut self) -> impl Future<Output = ()> + Send;

    /// Called once when the worker stops (on shutdown, or after [`State::Done`]): ends what the
    /// worker started in tasks of its own. It gets the same grace period as a unit of work.
    fn on_stop(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The first wait after an error; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a unit of work may run on after the stop signal before it is dropped.
const GRACE: Duration = Duration::from_secs(5);

/// A started worker: its name and task.
type Started = (String, JoinHandle<()>);

/// The running workers.
#[derive(Clone)]
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<Started>>>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers { stop: watch::channel(false).0, tasks: Default::default() }
    }
}

/// The stop signal, for work that must notice it (long waits inside a unit of work).
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether shutdown has begun.
    pub fn stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown begins.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

fn gauge(name: &str, v: f64) {
    metrics::gauge!("ssmd_worker_state", "worker" => name.to_string()).set(v);
}

impl Workers {
    /// A runtime with no workers yet.
    pub fn new() -> Workers {
        Workers::default()
    }

    /// The stop signal of this runtime.
    pub fn stop_signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Starts `w` on the current tokio runtime.
    pub fn spawn<W: Worker>(&self, mut w: W) {
        let name = w.name();
        let mut stop = self.stop_signal();
        let task_name = name.clone();
        let handle = tokio::spawn(async move {
            let name = task_name;
            tracing::debug!(worker = %name, "worker started");
            let mut backoff = FIRST_BACKOFF;
            while !stop.stopping() {
                gauge(&name, 1.0);
                let outcome = {
                    let work = w.work();
                    tokio::pin!(work);
                    tokio::select! {
                        r = &mut work => r,
                        _ = stop.wait() => match tokio::time::timeout(GRACE, &mut work).await {
                            Ok(r) => r,
                            Err(_) => {
                                tracing::warn!(worker = %name, "stopped in the middle of its work");
                                break;
                            }
                        },
                    }
                };
                match outcome {
                    Ok(State::Busy) => {
                        backoff = FIRST_BACKOFF;
                        // Let other tasks run between units of a busy worker.
                        tokio::task::yield_now().await;
                    }
                    Ok(State::Idle) => {
                        backoff = FIRST_BACKOFF;
                        gauge(&name, 0.0);
                        tokio::select! {
                            _ = w.wait_for_work() => {}
                            _ = stop.wait() => {}
                        }
                    }
                    Ok(State::Done) => break,
                    Err(e) => {
                        metrics::counter!("ssmd_worker_errors_total", "worker" => name.clone()).increment(1);
                        tracing::warn!(worker = %name, error = %e, retry_in_ms = backoff.as_millis() as u64, "worker failed; backing off");
                        gauge(&name, 2.0);
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.wait() => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            if tokio::time::timeout(GRACE, w.on_stop()).await.is_err() {
                tracing::warn!(worker = %name, "did not finish stopping within the grace period");
            }
            gauge(&name, 3.0);
            tracing::debug!(worker = %name, "worker stopped");
        });
        self.tasks.lock().expect("workers").push((name, handle));
    }

    /// Signals every worker to stop and waits until they have (each gets [`GRACE`] to finish
    /// the work in hand).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("workers"));
        for (name, t) in tasks {
            if let Err(e) = t.await
                && e.is_panic()
            {
                tracing::error!(worker = %name, "worker panicked");
            }
        }
    }

    /// The names of the workers started, in order.
    pub fn names(&self) -> Vec<String> {
        self.tasks.lock().expect("workers").iter().map(|(n, _)| n.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counter {
        runs: Arc<AtomicUsize>,
        fail_first: usize,
        wake: Arc<tokio::sync::Notify>,
    }

    impl Worker for Counter {
        fn name(&self) -> String {
            "test:counter".into()
        }
        async fn work(&mut self) -> Result<State, String> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err(format!("failure {n}"));
            }
            Ok(State::Idle)
        }
        async fn wait_for_work(&mut self) {
            self.wake.notified().await
        }
    }

    #[tokio::test]
    async fn a_worker_backs_off_after_errors_runs_when_woken_and_stops_cleanly() {
        let workers = Workers::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        workers.spawn(Counter { runs: runs.clone(), fail_first: 2, wake: wake.clone() });
        // Two failures (back-offs of 100 and 200 ms), then a success that goes idle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(workers.names(), ["test:counter"]);
        tokio::time::timeout(Duration::from_secs(1), workers.shutdown()).await.expect("stops at once when idle");
    }

    struct Stuck;
    impl Worker for Stuck {
        fn name(&self) -> String {
            "test:stuck".into()
        }
        async fn work(&mut self) -> Result<State, String> {
            std::future::pending::<()>().await;
            Ok(State::Busy)
        }
        async fn wait_for_work(&mut self) {}
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_never_ends_is_dropped_after_the_grace_period() {
        let workers = Workers::new();
        workers.spawn(Stuck);
        tokio::task::yield_now().await;
        let start = tokio::time::Instant::now();
        workers.shutdown().await;
        assert!(start.elapsed() >= GRACE);
    }
}
