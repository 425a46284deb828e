//! The job runner on both databases, on a manual clock: timers fire when the clock passes them
//! and not before, each job runs once however many replicas race for it, failures are retried
//! after a back-off, a holder that stalls past its lease is replaced and its result dropped, and
//! a wake-up during a run is never lost.

use ssmd_core::{Clock, ManualClock};
use ssmd_engine::{Engine, Handler, Job, Next, Outcome, Settings};
use ssmd_store::{Store, on_both};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;

/// Records each run; its behaviour per key is set by the test.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(String, i64)>>,
    /// Keys whose first run fails.
    fail_once: Mutex<Vec<String>>,
    /// Keys whose runs hang until poked, then finish.
    wait_for_poke: Mutex<Vec<String>>,
    /// Keys whose runs never end.
    hang: Mutex<Vec<String>>,
    clock: Mutex<Option<ManualClock>>,
}

impl Handler for Recorder {
    async fn run(&self, job: Job) -> Outcome {
        let now = self.clock.lock().unwrap().as_ref().map_or(0, |c| c.now_ms());
        self.runs.lock().unwrap().push((job.claim.key.clone(), now));
        let key = job.claim.key.clone();
        if self.hang.lock().unwrap().contains(&key) {
            std::future::pending::<()>().await;
        }
        if self.wait_for_poke.lock().unwrap().contains(&key) {
            self.wait_for_poke.lock().unwrap().retain(|k| *k != key);
            job.poked().await;
            return Outcome::Next(Next::Done);
        }
        let mut fail = self.fail_once.lock().unwrap();
        if fail.contains(&key) {
            fail.retain(|k| *k != key);
            return Outcome::Failed("first run fails".into());
        }
        Outcome::Next(Next::Done)
    }
}

impl Recorder {
    fn count(&self, key: &str) -> usize {
        self.runs.lock().unwrap().iter().filter(|(k, _)| k == key).count()
    }
}

fn settings() -> Settings {
    Settings { slots: 16, lease_ms: 3_000, batch: 16, fallback_poll: Duration::from_millis(200) }
}

async fn engine(store: Store, clock: &ManualClock, handler: Arc<Recorder>, owner: &str) -> Engine {
    let e = replica(store, clock, handler, owner);
    e.start().await.unwrap();
    e
}

/// An engine that does not start as the first process on the database (on SQLite, starting
/// releases every lease, as the only process on the file may).
fn replica(store: Store, clock: &ManualClock, handler: Arc<Recorder>, owner: &str) -> Engine {
    *handler.clock.lock().unwrap() = Some(clock.clone());
    let e = Engine::new(store, Arc::new(clock.clone()), owner.into());
    e.run_jobs("test", handler, settings());
    e
}

async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

on_both!(a_timer_fires_when_the_clock_passes_it_and_once, |s: Store, _url: String| async move {
    let clock = ManualClock::at(T0);
    let h = Arc::new(Recorder::default());
    let e = engine(s.clone(), &clock, h.clone(), "a").await;
    s.add_job("test", "t1", T0 + 60_000, None, T0).await.unwrap();
    s.add_job("test", "t1", T0 + 90_000, None, T0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.count("t1"), 0, "not due yet");
    clock.advance(59_999);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.count("t1"), 0, "one millisecond early");
    clock.advance(1);
    eventually("the timer", || h.count("t1") == 1).await;
    assert_eq!(h.runs.lock().unwrap()[0].1, T0 + 60_000, "it ran at its time");
    clock.advance(60_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.count("t1"), 1, "a unique key inserted twice ran once");
    assert_eq!(s.count_jobs("test").await.unwrap(), 0);
    e.shutdown().await;
});

on_both!(replicas_racing_run_every_job_exactly_once, |s: Store, url: String| async move {
    let clock = ManualClock::at(T0);
    let h = Arc::new(Recorder::default());
    // Two engines on two stores of one database: two replicas as far as the database knows.
    let a = engine(s.clone(), &clock, h.clone(), "a").await;
    let b = engine(Store::open(&url).await.unwrap(), &clock, h.clone(), "b").await;
    for i in 0..300 {
        s.add_job("test", &format!("j{i}"), T0 + (i % 7) * 1_000, None, T0).await.unwrap();
    }
    clock.advance(7_000);
    eventually("every job", || h.runs.lock().unwrap().len() >= 300).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = h.runs.lock().unwrap().clone();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for (k, _) in &runs {
        *per_key.entry(k.clone()).or_default() += 1;
    }
    assert_eq!(per_key.len(), 300);
    assert!(per_key.values().all(|n| *n == 1), "a job ran twice: {:?}", per_key.iter().find(|(_, n)| **n > 1));
    a.shutdown().await;
    b.shutdown().await;
});

on_both!(a_failed_run_is_retried_after_its_back_off, |s: Store, _url: String| async move {
    let clock = ManualClock::at(T0);
    let h = Arc::new(Recorder::default());
    h.fail_once.lock().unwrap().push("f".into());
    let e = engine(s.clone(), &clock, h.clone(), "a").await;
    s.add_job("test", "f", T0, None, T0).await.unwrap();
    eventually("the first run", || h.count("f") == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let j = s.job("test", "f").await.unwrap().expect("kept for the retry");
    assert_eq!((j.due_ms, j.attempts, j.leased), (T0 + 1_000, 1, false));
    clock.advance(1_000);
    eventually("the retry", || h.count("f") == 2).await;
    e.shutdown().await;
    assert_eq!(s.count_jobs("test").await.unwrap(), 0, "done after the retry");
});

on_both!(a_stalled_holder_is_replaced_and_its_result_dropped, |s: Store, url: String| async move {
    let clock = ManualClock::at(T0);
    let stuck = Arc::new(Recorder::default());
    stuck.hang.lock().unwrap().push("x".into());
    let a = engine(s.clone(), &clock, stuck.clone(), "a").await;
    s.add_job("test", "x", T0, None, T0).await.unwrap();
    eventually("the first holder", || stuck.count("x") == 1).await;
    // Holder a stops renewing (its replica stalls: here, it is shut down without finishing).
    a.shutdown().await;
    let fresh = Arc::new(Recorder::default());
    let b = replica(Store::open(&url).await.unwrap(), &clock, fresh.clone(), "b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fresh.count("x"), 0, "taken over only once the lease has run out");
    clock.advance(3_001);
    eventually("the takeover", || fresh.count("x") == 1).await;
    b.shutdown().await;
});

on_both!(a_poke_during_a_run_reaches_the_holder_and_runs_the_job_again, |s: Store, _url: String| async move {
    let clock = ManualClock::at(T0);
    let h = Arc::new(Recorder::default());
    h.wait_for_poke.lock().unwrap().push("p".into());
    let e = engine(s.clone(), &clock, h.clone(), "a").await;
    s.add_job("test", "p", T0, None, T0).await.unwrap();
    eventually("the first run", || h.count("p") == 1).await;
    // Someone makes the job due while it runs: the holder hears it, and the job runs again.
    s.add_job("test", "p", T0, None, T0).await.unwrap();
    eventually("the second run", || h.count("p") == 2).await;
    e.shutdown().await;
});
