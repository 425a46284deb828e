//! `ssmd-bench engine`: the durable engine (`ssmd_engine`'s job runners over `ssmd_store::jobs`,
//! wake-ups through `ssmd_store::bus`) measured in this process, on SQLite and on PostgreSQL —
//! a fresh database for every part, dropped after. The parts (`--parts`, default all four):
//!
//! * `timers`: 100,000 jobs due in an hour are pending. The process's CPU (getrusage, user +
//!   sys) while one runner of their kind idles over them, as % of one core, against the same
//!   process with the store open and no engine (the floor); on PostgreSQL also the CPU of the
//!   database's server backends (`pg_stat_activity` pids, `/proc/<pid>/stat`) and the
//!   transactions it committed; and how often the runner looked (`claim_jobs` calls). Then
//!   2,000 timers come due over 20 s: half inserted (in transactions of 100) 2-22 s before they
//!   are due, half inserted one by one with `add_job` while the engine idles, 0-2 s before they
//!   are due. The handler records how late each ran (`now - run_at_ms`, wall clock); the floor
//!   is plain tokio sleeps to the same instants, in the same run.
//! * `claims`: N jobs due now, one runner (slots 64, batch 64) with a no-op handler; jobs/s until
//!   none is left; on PostgreSQL also two engines on two stores (two replicas) racing, every job
//!   run exactly once. Floors, same run and store: N single-row durable writes, each in its own
//!   transaction, from 64 tasks and (N/10) from one — a plain INSERT, and `add_job` (the same
//!   row plus its wake-up, `pg_notify` on PostgreSQL).
//! * `wakeups` (PostgreSQL, and SQLite for the local case): replica A commits `add_job(now)` at
//!   a steady pace; replica B's runner of that kind runs it: latency = B's handler starts − A's
//!   commit returned. The bus alone: A commits transactions naming `node:x<i>`, B's subscriber
//!   receives them. And the same job wake-up on one store (local).
//! * `settle`: an in-process `ssmd_api::Service` (background work started) with N + 10 managed
//!   nodes registered and pinged in process (one RSA key pair shared, distinct fingerprints);
//!   SendCommand AWS-RunShellScript to the 10 nodes tagged `small` (MaxConcurrency 50, and 1)
//!   and to the N nodes tagged `big` (MaxConcurrency 50); for dispatched invocations the node
//!   takes its message (GetMessages) and reports InProgress, then the final SendReply (Success)
//!   is timed call by call, the three kinds interleaved. Also the size of each command's
//!   `progress` column.
//!
//! The store's own call counts and times come from the metrics it records
//! (`ssmd_store_seconds{op}`), read by a recorder this binary installs.
//!
//! Medians and percentiles only; the machine is shared, so every figure has its floor from the
//! same run beside it.

use super::nodes::{cpu_seconds, percentile};
use super::{drop_pg_named, fresh_pg_named};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use ssmd_core::{Clock, SystemClock};
use ssmd_engine::{Engine, Handler, Job, Next, Outcome, Settings};
use ssmd_model::{Caller, Operation};
use ssmd_store::{Backend, Store, sql};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

struct Opts {
    pg: Option<String>,
    sqlite: bool,
    parts: Vec<String>,
    timers: usize,
    due: usize,
    window_s: u64,
    idle_s: u64,
    jobs: usize,
    wakeups: usize,
    pace_ms: u64,
    nodes: usize,
    replies: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        pg: Some("postgres://postgres@127.0.0.1:5432".into()),
        sqlite: true,
        parts: ["timers", "claims", "wakeups", "settle"].map(String::from).to_vec(),
        timers: 100_000,
        due: 2_000,
        window_s: 20,
        idle_s: 10,
        jobs: 20_000,
        wakeups: 1_000,
        pace_ms: 10,
        nodes: 10_000,
        replies: 300,
    };
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--no-pg" {
            o.pg = None;
            i += 1;
            continue;
        }
        if flag == "--no-sqlite" {
            o.sqlite = false;
            i += 1;
            continue;
        }
        let v = args.get(i + 1).with_context(|| format!("{flag} needs a value"))?.clone();
        match flag {
            "--pg" => o.pg = Some(v),
            "--parts" => o.parts = v.split(',').map(str::to_string).collect(),
            "--timers" => o.timers = v.parse()?,
            "--due" => o.due = v.parse()?,
            "--window" => o.window_s = v.parse()?,
            "--idle" => o.idle_s = v.parse()?,
            "--jobs" => o.jobs = v.parse()?,
            "--wakeups" => o.wakeups = v.parse()?,
            "--pace-ms" => o.pace_ms = v.parse()?,
            "--nodes" => o.nodes = v.parse()?,
            "--replies" => o.replies = v.parse()?,
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Databases, clocks and figures

/// A fresh database for one part: an SQLite file in a directory of its own, or a PostgreSQL
/// database `ssmd_bench_<pid>_<tag>`; removed when dropped.
pub(crate) struct Fresh {
    pub(crate) url: String,
    dir: Option<std::path::PathBuf>,
    pg: Option<(String, String)>,
}

impl Fresh {
    fn new(o: &Opts, backend: Backend, tag: &str) -> Result<Fresh> {
        Fresh::with(o.pg.as_deref(), backend, tag)
    }

    pub(crate) fn with(pg: Option<&str>, backend: Backend, tag: &str) -> Result<Fresh> {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("ssmd-bench-engine-{}-{tag}", std::process::id()));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)?;
                Ok(Fresh { url: format!("sqlite://{}", dir.join("db.sqlite").display()), dir: Some(dir), pg: None })
            }
            Backend::Postgres => {
                let base = pg.context("no PostgreSQL")?.to_string();
                let name = format!("ssmd_bench_{}_{tag}", std::process::id());
                let url = fresh_pg_named(&base, &name)?;
                Ok(Fresh { url, dir: None, pg: Some((base, name)) })
            }
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some((base, name)) = &self.pg {
            drop_pg_named(base, name);
        }
    }
}

pub(crate) fn label(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Microseconds since the epoch, on the wall clock the engine's `SystemClock` reads.
pub(crate) fn wall_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// This process's CPU so far (user + system, every thread), in seconds.
pub(crate) fn self_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// p50 / p99 / max of a sample.
#[derive(Clone, Copy, Default)]
pub(crate) struct Dist {
    pub(crate) n: usize,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

pub(crate) fn dist(mut v: Vec<f64>) -> Dist {
    v.sort_by(|a, b| a.total_cmp(b));
    Dist { n: v.len(), p50: percentile(&v, 0.50), p99: percentile(&v, 0.99), max: v.last().copied().unwrap_or(0.0) }
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} / {:.2} / {:.2}", self.p50, self.p99, self.max)
    }
}

/// Inserts `n` jobs `<prefix><i>` of `kind` due at `due_ms` in one statement (set-up, not
/// measured: the API path is `schedule_job`, timed below where it matters).
async fn bulk_jobs(store: &Store, kind: &str, prefix: &str, n: usize, due_ms: i64, now_ms: i64) -> Result<()> {
    let cols = "kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, payload, created_ms";
    // Placeholders are numbered in order of first appearance (SQLite binds by position).
    let q = match store.backend() {
        Backend::Postgres => sql::query(format!(
            "INSERT INTO jobs ({cols}) SELECT $1, $2 || g, $3, $3, NULL, 0, 0, 0, NULL, $4 \
             FROM generate_series(1, $5) AS g"
        ))
        .bind(kind)
        .bind(prefix)
        .bind(due_ms)
        .bind(now_ms)
        .bind(n as i64),
        Backend::Sqlite => sql::query(format!(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $1) \
             INSERT INTO jobs ({cols}) SELECT $2, $3 || i, $4, $4, NULL, 0, 0, 0, NULL, $5 FROM g"
        ))
        .bind(n as i64)
        .bind(kind)
        .bind(prefix)
        .bind(due_ms)
        .bind(now_ms),
    };
    let inserted = q.execute(store.db()).await?;
    if inserted != n as u64 {
        bail!("inserted {inserted} jobs, not {n}");
    }
    Ok(())
}

/// The server backends of this store's PostgreSQL database (empty on SQLite).
async fn pg_pids(store: &Store) -> Result<Vec<String>> {
    if store.backend() != Backend::Postgres {
        return Ok(Vec::new());
    }
    let rows = sql::query("SELECT pid::bigint AS pid FROM pg_stat_activity WHERE datname = current_database()")
        .fetch_all(store.db())
        .await?;
    rows.iter().map(|r| Ok(r.get::<i64>("pid")?.to_string())).collect()
}

/// Transactions committed in this store's PostgreSQL database so far (None on SQLite).
async fn pg_commits(store: &Store) -> Result<Option<i64>> {
    if store.backend() != Backend::Postgres {
        return Ok(None);
    }
    let n = sql::query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .scalar::<i64>(store.db())
        .await?;
    Ok(Some(n))
}

/// What a process did over a quiet window.
struct Window {
    /// This process's CPU, % of one core.
    self_pct: f64,
    /// The database's server backends' CPU, % of one core (PostgreSQL).
    pg_pct: Option<f64>,
    /// Transactions the database committed per second, less the two reads of the counter.
    commits_per_s: Option<f64>,
    /// `claim_jobs` calls per second (how often a runner looked).
    claims_per_s: f64,
}

async fn quiet_window(store: &Store, secs: u64) -> Result<Window> {
    let pids = pg_pids(store).await?;
    let pg_cpu = || pids.iter().map(|p| cpu_seconds(p)).sum::<f64>();
    let c0 = pg_commits(store).await?;
    let (s0, p0, o0, t0) = (self_cpu_s(), pg_cpu(), ops::snapshot(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (s1, p1, o1, wall) = (self_cpu_s(), pg_cpu(), ops::snapshot(), t0.elapsed().as_secs_f64());
    let c1 = pg_commits(store).await?;
    Ok(Window {
        claims_per_s: o1.since(&o0, "claim_jobs").0 as f64 / wall,
        self_pct: (s1 - s0) / wall * 100.0,
        pg_pct: (!pids.is_empty()).then(|| (p1 - p0) / wall * 100.0),
        commits_per_s: c0.zip(c1).map(|(a, b)| (b - a - 1) as f64 / wall),
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2} %"))
}

/// The store's own timings, read from the metrics it records anyway: calls and seconds per
/// `ssmd_store_seconds{op}` (claim_jobs, finish_job, add_job, settle_command…). Installed as
/// the process's metrics recorder; every other metric is dropped.
mod ops {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    #[derive(Default)]
    struct Sum {
        calls: AtomicU64,
        nanos: AtomicU64,
    }

    impl metrics::HistogramFn for Sum {
        fn record(&self, seconds: f64) {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        }
    }

    fn table() -> &'static Mutex<HashMap<String, Arc<Sum>>> {
        static T: OnceLock<Mutex<HashMap<String, Arc<Sum>>>> = OnceLock::new();
        T.get_or_init(Default::default)
    }

    struct Recorder;

    impl metrics::Recorder for Recorder {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            if key.name() != "ssmd_store_seconds" {
                return metrics::Histogram::noop();
            }
            let Some(op) = key.labels().find(|l| l.key() == "op") else { return metrics::Histogram::noop() };
            let sum = table().lock().expect("ops").entry(op.value().to_string()).or_default().clone();
            metrics::Histogram::from_arc(sum)
        }
    }

    /// Starts counting (once per process).
    pub fn install() {
        let _ = metrics::set_global_recorder(Recorder);
    }

    /// Calls and seconds per store operation so far.
    #[derive(Clone, Default)]
    pub struct Snapshot(HashMap<String, (u64, f64)>);

    pub fn snapshot() -> Snapshot {
        let t = table().lock().expect("ops");
        Snapshot(
            t.iter()
                .map(|(k, s)| {
                    (k.clone(), (s.calls.load(Ordering::Relaxed), s.nanos.load(Ordering::Relaxed) as f64 / 1e9))
                })
                .collect(),
        )
    }

    impl Snapshot {
        /// (calls, seconds) of `op` since `before`.
        pub fn since(&self, before: &Snapshot, op: &str) -> (u64, f64) {
            let (c1, s1) = self.0.get(op).copied().unwrap_or_default();
            let (c0, s0) = before.0.get(op).copied().unwrap_or_default();
            (c1 - c0, s1 - s0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: 100,000 pending timers

/// Records how late each `t-` timer ran, by how it was inserted (`t-pre-…` long before, or
/// `t-live-…` while the engine idled), and counts any other job that ran (none should).
#[derive(Default)]
struct Fire {
    late_us: Mutex<Vec<(bool, f64)>>,
    others: AtomicUsize,
    done: Notify,
    expect: AtomicUsize,
}

impl Handler for Fire {
    async fn run(&self, job: Job) -> Outcome {
        let late = (wall_us() - job.claim.run_at_ms * 1000) as f64;
        if job.claim.key.starts_with("t-") {
            let mut v = self.late_us.lock().expect("late");
            v.push((job.claim.key.starts_with("t-pre-"), late));
            if v.len() >= self.expect.load(Ordering::SeqCst) {
                self.done.notify_one();
            }
        } else {
            self.others.fetch_add(1, Ordering::SeqCst);
        }
        Outcome::Next(Next::Done)
    }
}

struct TimersOut {
    insert_s: f64,
    floor: Window,
    idle: Window,
    all_ms: Dist,
    pre_ms: Dist,
    live_ms: Dist,
    floor_ms: Dist,
    far_fired: usize,
}

/// A fixed pseudo-random sequence, so runs compare.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Sleeps until the wall clock reads `at_ms`.
pub(crate) async fn sleep_until_wall(at_ms: i64) {
    let wait = at_ms * 1000 - wall_us();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
    }
}

async fn timers(o: &Opts, url: &str) -> Result<TimersOut> {
    const KIND: &str = "bench-timer";
    let store = Store::open(url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now_ms();
    let t = Instant::now();
    bulk_jobs(&store, KIND, "far-", o.timers, now + 3_600_000, now).await?;
    let insert_s = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let floor = quiet_window(&store, (o.idle_s / 2).max(1)).await?;

    let fire = Arc::new(Fire::default());
    fire.expect.store(o.due, Ordering::SeqCst);
    let engine = Engine::new(store.clone(), clock.clone(), "bench".into());
    engine.start().await?;
    engine.run_jobs(KIND, fire.clone(), Settings::default());
    // Its first claim and first look at the next due time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = quiet_window(&store, o.idle_s).await?;

    // The stream: `due` timers spread over the window, starting 2 s from now.
    let start = clock.now_ms() + 2_000;
    let span = (o.window_s * 1000) as i64;
    let mut rng = Lcg(0x5eed);
    let mut pre = Vec::new();
    let mut live = Vec::new();
    for i in 0..o.due {
        let due = start + span * i as i64 / o.due as i64 + rng.below(5) as i64;
        if i % 2 == 0 {
            pre.push((format!("t-pre-{i}"), due));
        } else {
            let lead = rng.below(2_000) as i64;
            live.push((format!("t-live-{i}"), due, due - lead));
        }
    }
    live.sort_by_key(|l| l.2);
    // The floor: plain tokio sleeps to the same instants, in the same process at the same time.
    let floor_late = Arc::new(Mutex::new(Vec::new()));
    for &due in pre.iter().map(|(_, d)| d).chain(live.iter().map(|(_, d, _)| d)) {
        let fl = floor_late.clone();
        tokio::spawn(async move {
            sleep_until_wall(due).await;
            fl.lock().expect("floor").push((wall_us() - due * 1000) as f64);
        });
    }
    // In transactions of 100: on PostgreSQL one transaction's wake-ups go out as one
    // `pg_notify` payload, which the server limits to 8,000 bytes (~300 job topics).
    for chunk in pre.chunks(100) {
        let mut tx = store.begin().await?;
        for (key, due) in chunk {
            Store::schedule_job(&mut tx, KIND, key, *due, None, clock.now_ms()).await?;
        }
        tx.commit().await?;
    }
    let s = store.clone();
    let inserter = tokio::spawn(async move {
        for (key, due, at) in live {
            sleep_until_wall(at).await;
            s.add_job(KIND, &key, due, None, SystemClock.now_ms()).await?;
        }
        anyhow::Ok(())
    });
    let limit = Duration::from_millis((start + span - clock.now_ms()).max(0) as u64 + 15_000);
    let finished = tokio::time::timeout(limit, async {
        loop {
            let woken = fire.done.notified();
            if fire.late_us.lock().expect("late").len() >= o.due {
                break;
            }
            woken.await;
        }
    })
    .await;
    inserter.await??;
    engine.shutdown().await;
    store.close().await;
    if finished.is_err() {
        eprintln!("  only {} of {} timers fired", fire.late_us.lock().expect("late").len(), o.due);
    }

    let late = fire.late_us.lock().expect("late").clone();
    let ms = |pick: Option<bool>| {
        dist(late.iter().filter(|(p, _)| pick.is_none_or(|want| *p == want)).map(|(_, us)| us / 1000.0).collect())
    };
    let floor_ms = dist(floor_late.lock().expect("floor").iter().map(|us| us / 1000.0).collect());
    Ok(TimersOut {
        insert_s,
        floor,
        idle,
        all_ms: ms(None),
        pre_ms: ms(Some(true)),
        live_ms: ms(Some(false)),
        floor_ms,
        far_fired: fire.others.load(Ordering::SeqCst),
    })
}

// ---------------------------------------------------------------------------------------------
// Part 2: claim throughput

/// What every replica's no-op handler shares: jobs run, keys seen (to catch a job run twice).
#[derive(Default)]
struct Tally {
    runs: AtomicUsize,
    seen: Mutex<HashSet<String>>,
    twice: AtomicUsize,
    done: Notify,
    expect: AtomicUsize,
}

/// A no-op handler of one replica.
struct Noop {
    tally: Arc<Tally>,
    mine: AtomicUsize,
}

impl Handler for Noop {
    async fn run(&self, job: Job) -> Outcome {
        self.mine.fetch_add(1, Ordering::Relaxed);
        if !self.tally.seen.lock().expect("seen").insert(job.claim.key) {
            self.tally.twice.fetch_add(1, Ordering::SeqCst);
        }
        if self.tally.runs.fetch_add(1, Ordering::SeqCst) + 1 >= self.tally.expect.load(Ordering::SeqCst) {
            self.tally.done.notify_one();
        }
        Outcome::Next(Next::Done)
    }
}

struct ClaimRun {
    jobs_per_s: f64,
    per_replica: Vec<usize>,
    twice: usize,
    /// claim_jobs: calls, mean ms; finish_job: calls, mean ms.
    claim: (u64, f64),
    finish: (u64, f64),
}

/// `n` jobs due now, claimed and run by one engine per store until the table has none left.
async fn claim_run(stores: &[Store], n: usize) -> Result<ClaimRun> {
    const KIND: &str = "bench-claim";
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now_ms();
    bulk_jobs(&stores[0], KIND, "c-", n, now, now).await?;
    let tally = Arc::new(Tally::default());
    tally.expect.store(n, Ordering::SeqCst);
    let mut engines = Vec::new();
    let mut handlers = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        let e = Engine::new(s.clone(), clock.clone(), format!("replica-{i}"));
        e.start().await?;
        engines.push(e);
        handlers.push(Arc::new(Noop { tally: tally.clone(), mine: AtomicUsize::new(0) }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settings = Settings { slots: 64, batch: 64, ..Settings::default() };
    let o0 = ops::snapshot();
    let t0 = Instant::now();
    for (e, h) in engines.iter().zip(&handlers) {
        e.run_jobs(KIND, h.clone(), settings.clone());
    }
    let all_ran = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let woken = tally.done.notified();
            if tally.runs.load(Ordering::SeqCst) >= n {
                break;
            }
            woken.await;
        }
    })
    .await;
    if all_ran.is_err() {
        bail!("only {} of {n} jobs ran", tally.runs.load(Ordering::SeqCst));
    }
    // The last finishes commit after their handlers return.
    while stores[0].count_jobs(KIND).await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let o1 = ops::snapshot();
    for e in &engines {
        e.shutdown().await;
    }
    let mean = |(calls, s): (u64, f64)| (calls, s * 1000.0 / calls.max(1) as f64);
    Ok(ClaimRun {
        claim: mean(o1.since(&o0, "claim_jobs")),
        finish: mean(o1.since(&o0, "finish_job")),
        jobs_per_s: n as f64 / secs,
        per_replica: handlers.iter().map(|h| h.mine.load(Ordering::SeqCst)).collect(),
        twice: tally.twice.load(Ordering::SeqCst),
    })
}

/// How a floor writes one row.
#[derive(Clone, Copy)]
enum FloorWrite {
    /// `Store::add_job`: the row and its wake-up (`pg_notify` on PostgreSQL) in one transaction.
    AddJob,
    /// The same row inserted in a transaction of its own (BEGIN, INSERT, COMMIT), no wake-up.
    Plain,
}

/// The floor: `n` single-row durable writes, each in its own transaction, from `tasks` tasks at
/// once; writes/s.
async fn floor_writes(store: &Store, n: usize, tasks: usize, how: FloorWrite) -> Result<f64> {
    const KIND: &str = "bench-floor";
    let far = SystemClock.now_ms() + 3_600_000;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (s, next) = (store.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let key = format!("f-{i}");
                let now = SystemClock.now_ms();
                match how {
                    FloorWrite::AddJob => s.add_job(KIND, &key, far, None, now).await?,
                    FloorWrite::Plain => {
                        let mut tx = s.begin().await?;
                        sql::query(
                            "INSERT INTO jobs (kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, \
                             payload, created_ms) VALUES ($1, $2, $3, $3, NULL, 0, 0, 0, NULL, $4)",
                        )
                        .bind(KIND)
                        .bind(key)
                        .bind(far)
                        .bind(now)
                        .execute(&mut tx)
                        .await?;
                        tx.commit().await?;
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    sql::query("DELETE FROM jobs WHERE kind = $1").bind(KIND).execute(store.db()).await?;
    Ok(rate)
}

/// Floor write rates: (plain insert, add_job) × (64 tasks, 1 task).
struct Floors {
    plain_64: f64,
    add_64: f64,
    plain_1: f64,
    add_1: f64,
    one_task_n: usize,
}

struct ClaimsOut {
    floors: Floors,
    one: ClaimRun,
    two: Option<ClaimRun>,
}

async fn claims(o: &Opts, url: &str) -> Result<ClaimsOut> {
    let a = Store::open(url).await?;
    let one_task_n = (o.jobs / 10).max(1);
    let floors = Floors {
        plain_1: floor_writes(&a, one_task_n, 1, FloorWrite::Plain).await?,
        add_1: floor_writes(&a, one_task_n, 1, FloorWrite::AddJob).await?,
        plain_64: floor_writes(&a, o.jobs, 64, FloorWrite::Plain).await?,
        add_64: floor_writes(&a, o.jobs, 64, FloorWrite::AddJob).await?,
        one_task_n,
    };
    let one = claim_run(std::slice::from_ref(&a), o.jobs).await?;
    let two = if a.backend() == Backend::Postgres {
        let b = Store::open(url).await?;
        let r = claim_run(&[a.clone(), b.clone()], o.jobs).await?;
        b.close().await;
        Some(r)
    } else {
        None
    };
    a.close().await;
    Ok(ClaimsOut { floors, one, two })
}

// ---------------------------------------------------------------------------------------------
// Part 3: wake-up latency

/// Records when each job's handler started.
#[derive(Default)]
struct Started {
    at: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

impl Handler for Started {
    async fn run(&self, job: Job) -> Outcome {
        let now = Instant::now();
        self.at.lock().expect("started").insert(job.claim.key, now);
        self.changed.notify_one();
        Outcome::Next(Next::Done)
    }
}

impl Started {
    async fn wait_for(&self, n: usize, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let woken = self.changed.notified();
                if self.at.lock().expect("started").len() >= n {
                    break;
                }
                woken.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Signed latency in ms from `from` to `to`.
fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from { (to - from).as_secs_f64() * 1000.0 } else { -((from - to).as_secs_f64() * 1000.0) }
}

/// `a` makes `n` jobs of `kind` due now, one at a time every `pace`, after `warm` warm-up jobs;
/// returns the latency from each commit's return to its handler's start (`started` is the
/// handler running them, on `a`'s store or another), and the add_job call's own time.
async fn job_wakeups(
    a: &Store,
    kind: &str,
    started: &Started,
    n: usize,
    warm: usize,
    pace: Duration,
) -> Result<(Dist, Dist, usize)> {
    let mut committed = Vec::with_capacity(n + warm);
    let mut call_ms = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(pace);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..n + warm {
        tick.tick().await;
        let key = format!("w-{i}");
        let now = SystemClock.now_ms();
        let t = Instant::now();
        a.add_job(kind, &key, now, None, now).await?;
        let after = Instant::now();
        if i >= warm {
            call_ms.push((after - t).as_secs_f64() * 1000.0);
            committed.push((key, after));
        }
    }
    let all = started.wait_for(n + warm, Duration::from_secs(10)).await;
    let at = started.at.lock().expect("started");
    let lat: Vec<f64> = committed.iter().filter_map(|(k, c)| at.get(k).map(|s| ms_between(*c, *s))).collect();
    let missing = if all { 0 } else { committed.len() - lat.len() };
    Ok((dist(lat), dist(call_ms), missing))
}

/// The bus alone: `a` commits `n` transactions naming `node:x<i>`, `b`'s subscriber records
/// when each arrives.
async fn bus_wakeups(a: &Store, b: &Store, n: usize, warm: usize, pace: Duration) -> Result<(Dist, usize)> {
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let s = seen.clone();
    b.bus().subscribe(
        "node:",
        Arc::new(move |topic: &str| {
            let now = Instant::now();
            s.lock().expect("seen").insert(topic.to_string(), now);
        }),
    );
    let mut committed = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(pace);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..n + warm {
        tick.tick().await;
        let mut tx = a.begin().await?;
        tx.notify(format!("node:x{i}"));
        tx.commit().await?;
        let after = Instant::now();
        if i >= warm {
            committed.push((format!("x{i}"), after));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().expect("seen");
    let lat: Vec<f64> = committed.iter().filter_map(|(k, c)| seen.get(k).map(|s| ms_between(*c, *s))).collect();
    let missing = committed.len() - lat.len();
    Ok((dist(lat), missing))
}

struct WakeRow {
    what: String,
    lat: Dist,
    call: Option<Dist>,
    missing: usize,
}

async fn wakeups(o: &Opts, url: &str, backend: Backend) -> Result<Vec<WakeRow>> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let pace = Duration::from_millis(o.pace_ms);
    let warm = 20;
    let settings = Settings::default();
    let mut rows = Vec::new();
    let a = Store::open(url).await?;
    // Replica A is a whole engine too: its notifier sends its commits' wake-ups to the others.
    let engine_a = Engine::new(a.clone(), clock.clone(), "replica-a".into());
    engine_a.start().await?;
    if backend == Backend::Postgres {
        let b = Store::open(url).await?;
        let engine_b = Engine::new(b.clone(), clock.clone(), "replica-b".into());
        engine_b.start().await?;
        let on_b = Arc::new(Started::default());
        engine_b.run_jobs("bench-wake", on_b.clone(), settings.clone());
        // B listens before A starts.
        for _ in 0..500 {
            if b.bus().healthy() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !b.bus().healthy() {
            bail!("replica B is not listening");
        }
        let (lat, call, missing) = job_wakeups(&a, "bench-wake", &on_b, o.wakeups, warm, pace).await?;
        rows.push(WakeRow { what: "job, A commits → B's handler starts".into(), lat, call: Some(call), missing });
        let (lat, missing) = bus_wakeups(&a, &b, o.wakeups, warm, pace).await?;
        rows.push(WakeRow { what: "bus alone, A commits → B's subscriber called".into(), lat, call: None, missing });
        engine_b.shutdown().await;
        b.close().await;
    }
    let on_a = Arc::new(Started::default());
    engine_a.run_jobs("bench-local", on_a.clone(), settings);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (lat, call, missing) = job_wakeups(&a, "bench-local", &on_a, o.wakeups, warm, pace).await?;
    rows.push(WakeRow { what: "job, one store: commit → handler starts".into(), lat, call: Some(call), missing });
    engine_a.shutdown().await;
    a.close().await;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Part 4: a final reply's cost against the number of targets

const ACCOUNT: &str = "999999999999";
const REGION: &str = "us-east-1";

pub(crate) fn root() -> Caller {
    Caller {
        account: ACCOUNT.into(),
        region: REGION.into(),
        access_key_id: "AKIABENCH00000000001".into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:root"),
    }
}

fn node_caller(id: &str) -> Caller {
    Caller {
        arn: ssmd_api::nodes::node_arn(REGION, ACCOUNT, id),
        access_key_id: "ASIABENCH0000000001".into(),
        ..root()
    }
}

pub(crate) async fn call(svc: &ssmd_api::Service, op: &str, input: Value) -> Result<Value> {
    let operation = Operation::from_name(op).with_context(|| format!("no operation {op}"))?;
    let out = svc.call(&root(), operation, input).await.map_err(|e| anyhow!("{op}: {e}"))?;
    Ok(serde_json::from_slice(&out)?)
}

async fn delivery(svc: &ssmd_api::Service, node: &str, op: &str, input: Value) -> Result<Value> {
    let out = ssmd_api::commands::delivery::handle(svc, &node_caller(node), op, input)
        .await
        .map_err(|e| anyhow!("{op}: {e}"))?;
    Ok(serde_json::from_slice(&out)?)
}

/// Registers `n` nodes tagged `group=<group>` (activations of up to 1,000, registered in
/// parallel, one after another within an activation) and pings each once.
async fn fleet(svc: &Arc<ssmd_api::Service>, public_key: &str, group: &str, n: usize) -> Result<Vec<String>> {
    let mut tasks = Vec::new();
    let mut left = n;
    while left > 0 {
        let size = left.min(1000);
        left -= size;
        let a = call(
            svc,
            "CreateActivation",
            json!({"IamRole": "bench", "RegistrationLimit": size, "Tags": [{"Key": "group", "Value": group}]}),
        )
        .await?;
        let (svc, key) = (svc.clone(), public_key.to_string());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(size);
            for _ in 0..size {
                let out = ssmd_api::nodes::register(
                    &svc,
                    json!({"ActivationCode": a["ActivationCode"], "ActivationId": a["ActivationId"],
                           "PublicKey": key, "PublicKeyType": "Rsa", "Fingerprint": ssmd_core::ids::uuid()}),
                )
                .await
                .map_err(|e| anyhow!("register: {e}"))?;
                let v: Value = serde_json::from_slice(&out)?;
                let id = v["InstanceId"].as_str().context("no InstanceId")?.to_string();
                ssmd_api::nodes::update_instance_information(
                    &svc,
                    &node_caller(&id),
                    json!({"InstanceId": id, "AgentName": "ssmd-bench", "AgentVersion": "3.3.0.0"}),
                )
                .await
                .map_err(|e| anyhow!("ping: {e}"))?;
                ids.push(id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

fn success_payload() -> String {
    json!({
        "additionalInfo": {"agent": {"name": "ssmd-bench"}, "runtimeStatusCounts": {"Success": 1}},
        "documentStatus": "Success",
        "documentTraceOutput": "",
        "runtimeStatus": {"aws:runShellScript": {
            "status": "Success", "code": 0, "name": "aws:runShellScript", "output": "ok\n",
            "standardOutput": "ok\n", "standardError": ""
        }}
    })
    .to_string()
}

fn in_progress_payload() -> String {
    json!({"additionalInfo": {"agent": {"name": "ssmd-bench"}}, "documentStatus": "InProgress", "runtimeStatus": null})
        .to_string()
}

async fn progress_bytes(svc: &ssmd_api::Service, id: &str) -> Result<i64> {
    Ok(sql::query("SELECT CAST(length(progress) AS BIGINT) FROM commands WHERE id = $1")
        .bind(id)
        .scalar::<i64>(svc.store().db())
        .await?)
}

/// A command sent to the nodes tagged `group`, whose final replies are timed a few at a time.
struct Timed {
    id: String,
    /// Final reply times (ms) and whether that reply ended the command.
    times: Vec<(f64, bool)>,
    /// `progress` bytes right after SendCommand.
    first_progress: i64,
}

impl Timed {
    async fn send(svc: &ssmd_api::Service, group: &str, targets: usize, concurrency: usize) -> Result<Timed> {
        let v = call(
            svc,
            "SendCommand",
            json!({"DocumentName": "AWS-RunShellScript", "Targets": [{"Key": "tag:group", "Values": [group]}],
                   "MaxConcurrency": concurrency.to_string(), "MaxErrors": "0",
                   "Parameters": {"commands": ["echo ok"]}}),
        )
        .await?;
        let id = v["Command"]["CommandId"].as_str().context("no CommandId")?.to_string();
        if v["Command"]["TargetCount"].as_u64() != Some(targets as u64) {
            bail!("SendCommand targeted {}, not {targets}", v["Command"]["TargetCount"]);
        }
        let first_progress = progress_bytes(svc, &id).await?;
        Ok(Timed { id, times: Vec::new(), first_progress })
    }

    /// For up to `k` dispatched invocations: the node takes its message (GetMessages) and
    /// reports InProgress, as the agent does; then its final Success reply is timed.
    async fn replies(&mut self, svc: &ssmd_api::Service, k: usize) -> Result<()> {
        let goal = self.times.len() + k;
        while self.times.len() < goal {
            let waiting = sql::query("SELECT destination FROM node_messages WHERE command_id = $1 AND deliveries = 0")
                .bind(self.id.as_str())
                .fetch_all(svc.store().db())
                .await?;
            if waiting.is_empty() {
                break;
            }
            for row in waiting.iter().take(goal - self.times.len()) {
                let node: String = row.get("destination")?;
                let poll = json!({"Destination": node, "MessagesRequestId": ssmd_core::ids::uuid(),
                                  "VisibilityTimeoutInSeconds": 600});
                let got = delivery(svc, &node, "GetMessages", poll).await?;
                let Some(m) = got["Messages"].as_array().and_then(|m| m.first()).cloned() else { continue };
                let mid = m["MessageId"].clone();
                let body =
                    json!({"MessageId": mid, "ReplyId": ssmd_core::ids::uuid(), "Payload": in_progress_payload()});
                delivery(svc, &node, "SendReply", body).await?;
                let body = json!({"MessageId": mid, "ReplyId": ssmd_core::ids::uuid(), "Payload": success_payload()});
                let t = Instant::now();
                delivery(svc, &node, "SendReply", body).await?;
                self.times.push((t.elapsed().as_secs_f64() * 1000.0, false));
            }
        }
        Ok(())
    }

    /// Checks that every timed reply counted, marks the one that ended the command, and
    /// returns the `progress` bytes now.
    async fn finish(&mut self, svc: &ssmd_api::Service) -> Result<i64> {
        let listed = call(svc, "ListCommands", json!({"CommandId": self.id})).await?;
        let cmd = &listed["Commands"][0];
        let completed = cmd["CompletedCount"].as_u64().unwrap_or(0) as usize;
        if completed != self.times.len() {
            bail!("{} final replies timed, but the command counts {completed} completed", self.times.len());
        }
        if cmd["Status"] == "Success"
            && let Some(l) = self.times.last_mut()
        {
            l.1 = true;
        }
        progress_bytes(svc, &self.id).await
    }
}

struct SettleRow {
    targets: usize,
    concurrency: usize,
    commands: usize,
    all: Dist,
    not_ending: Dist,
    progress: (i64, i64),
}

fn settle_row(
    targets: usize,
    concurrency: usize,
    commands: usize,
    v: &[(f64, bool)],
    progress: (i64, i64),
) -> SettleRow {
    SettleRow {
        targets,
        concurrency,
        commands,
        all: dist(v.iter().map(|x| x.0).collect()),
        not_ending: dist(v.iter().filter(|x| !x.1).map(|x| x.0).collect()),
        progress,
    }
}

/// Three kinds of command, their replies interleaved ten at a time so the machine's noise falls
/// on all alike: 10 targets at MaxConcurrency 50 (all sent at once: no reply dispatches
/// anything, the tenth ends the command), 10 targets at MaxConcurrency 1 (each reply but the
/// last sends the next target, as at N), and N targets at MaxConcurrency 50 (every reply sends
/// the next target).
async fn settle(o: &Opts, url: &str) -> Result<(Vec<SettleRow>, f64)> {
    let store = Store::open(url).await?;
    let svc = Arc::new(ssmd_api::Service::new(store, Arc::new(SystemClock)).await.map_err(|e| anyhow!("{e}"))?);
    let engine = svc.run_background().await.map_err(|e| anyhow!("{e}"))?;
    let keys = ssmd_nodeauth::generate_key_pair().map_err(|e| anyhow!("{e:?}"))?;
    let t = Instant::now();
    fleet(&svc, &keys.public_key, "small", 10).await?;
    fleet(&svc, &keys.public_key, "big", o.nodes).await?;
    let setup_s = t.elapsed().as_secs_f64();
    let mut big = Timed::send(&svc, "big", o.nodes, 50).await?;
    let mut small = [(50, Vec::new(), (0, 0)), (1, Vec::new(), (0, 0))];
    while big.times.len() < o.replies {
        for (concurrency, times, progress) in small.iter_mut() {
            let mut c = Timed::send(&svc, "small", 10, *concurrency).await?;
            c.replies(&svc, 10).await?;
            *progress = (c.first_progress, c.finish(&svc).await?);
            times.extend(c.times);
        }
        let before = big.times.len();
        big.replies(&svc, 10).await?;
        if big.times.len() == before {
            bail!("the {}-target command dispatched nothing more", o.nodes);
        }
    }
    let big_last = big.finish(&svc).await?;
    let mut rows: Vec<SettleRow> =
        small.iter().map(|(c, times, progress)| settle_row(10, *c, times.len() / 10, times, *progress)).collect();
    rows.push(settle_row(o.nodes, 50, 1, &big.times, (big.first_progress, big_last)));
    svc.close_long_polls();
    engine.shutdown().await;
    svc.store().close().await;
    Ok((rows, setup_s))
}

// ---------------------------------------------------------------------------------------------
// The run

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let mut backends = Vec::new();
    if o.sqlite {
        backends.push(Backend::Sqlite);
    }
    if o.pg.is_some() {
        backends.push(Backend::Postgres);
    }
    ops::install();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let part = |p: &str| o.parts.iter().any(|x| x == p);
    rt.block_on(async {
        if part("timers") {
            println!(
                "\n### Timers: {} pending {} h ahead, then {} coming due over {} s\n",
                o.timers, 1, o.due, o.window_s
            );
            println!(
                "| backend | idle CPU, runner over {} timers | floor: no engine | PG backends' CPU (runner / floor) | PG commits/s (runner / floor) | runner claims/s idle | fire jitter p50 / p99 / max ms | inserted long before | inserted while idle | floor: tokio sleeps | far-future jobs that ran |",
                o.timers
            );
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            for &b in &backends {
                let db = Fresh::new(&o, b, "timers")?;
                let r = timers(&o, &db.url).await?;
                eprintln!("  {} timers: bulk insert of {} took {:.2} s", label(b), o.timers, r.insert_s);
                println!(
                    "| {} | **{:.2} %** | {:.2} % | {} / {} | {} / {} | {:.2} | **{}** | {} | {} | {} | {} |",
                    label(b),
                    r.idle.self_pct,
                    r.floor.self_pct,
                    pct(r.idle.pg_pct),
                    pct(r.floor.pg_pct),
                    r.idle.commits_per_s.map_or("—".into(), |v| format!("{v:.2}")),
                    r.floor.commits_per_s.map_or("—".into(), |v| format!("{v:.2}")),
                    r.idle.claims_per_s,
                    r.all_ms,
                    r.pre_ms,
                    r.live_ms,
                    r.floor_ms,
                    r.far_fired
                );
                if r.all_ms.n != o.due {
                    println!("\n(only {} of {} timers fired)\n", r.all_ms.n, o.due);
                }
            }
        }
        if part("claims") {
            println!("\n### Claim throughput: {} jobs due now, runner slots 64 / batch 64, no-op handler\n", o.jobs);
            println!(
                "| backend | engines | jobs/s | per replica | run twice | floor: plain insert tx/s, 64 tasks | jobs/s ÷ floor | claim_jobs calls (jobs per call), mean ms | finish_job mean ms |"
            );
            println!("|---|---|---|---|---|---|---|---|---|");
            let mut floors = Vec::new();
            for &b in &backends {
                let db = Fresh::new(&o, b, "claims")?;
                let r = claims(&o, &db.url).await?;
                let mut runs = vec![(1, &r.one)];
                if let Some(two) = &r.two {
                    runs.push((2, two));
                }
                for (engines, c) in runs {
                    println!(
                        "| {} | {engines} | **{:.0}** | {:?} | {} | {:.0} | **{:.2}** | {} ({:.1}), {:.2} | {:.2} |",
                        label(b),
                        c.jobs_per_s,
                        c.per_replica,
                        c.twice,
                        r.floors.plain_64,
                        c.jobs_per_s / r.floors.plain_64,
                        c.claim.0,
                        o.jobs as f64 / c.claim.0.max(1) as f64,
                        c.claim.1,
                        c.finish.1,
                    );
                }
                floors.push((b, r.floors));
            }
            println!("\n| backend | floor writes/s | 64 tasks, {} writes | 1 task, {} writes |", o.jobs, (o.jobs / 10).max(1));
            println!("|---|---|---|---|");
            for (b, f) in floors {
                println!("| {} | plain insert (BEGIN, INSERT, COMMIT) | {:.0} | {:.0} |", label(b), f.plain_64, f.plain_1);
                println!("| {} | `add_job` (the same row + its wake-up) | {:.0} | {:.0} |", label(b), f.add_64, f.add_1);
                let _ = f.one_task_n;
            }
        }
        if part("wakeups") {
            println!(
                "\n### Wake-up latency: {} wake-ups, one every {} ms (after 20 warm-up ones)\n",
                o.wakeups, o.pace_ms
            );
            println!("| backend | wake-up | latency p50 / p99 / max ms | add_job call p50 / p99 / max ms | lost |");
            println!("|---|---|---|---|---|");
            for &b in &backends {
                let db = Fresh::new(&o, b, "wakeups")?;
                for r in wakeups(&o, &db.url, b).await? {
                    println!(
                        "| {} | {} | **{}** | {} | {} |",
                        label(b),
                        r.what,
                        r.lat,
                        r.call.map_or("—".into(), |c| c.to_string()),
                        r.missing
                    );
                }
            }
        }
        if part("settle") {
            println!(
                "\n### A final SendReply's cost: 10 and {} targets, {} timed replies each\n",
                o.nodes, o.replies
            );
            println!(
                "| backend | targets | MaxConcurrency | commands | final reply p50 / p99 / max ms | same, replies that did not end the command | `progress` bytes (after SendCommand → after the replies) |"
            );
            println!("|---|---|---|---|---|---|---|");
            for &b in &backends {
                let db = Fresh::new(&o, b, "settle")?;
                let (rows, setup_s) = settle(&o, &db.url).await?;
                eprintln!("  {} settle: registered and pinged {} nodes in {setup_s:.1} s", label(b), o.nodes + 10);
                for r in &rows {
                    println!(
                        "| {} | {} | {} | {} | **{}** | {} | {} → {} |",
                        label(b),
                        r.targets,
                        r.concurrency,
                        r.commands,
                        r.all,
                        r.not_ending,
                        r.progress.0,
                        r.progress.1
                    );
                }
                let (at_n, ten) = (rows[2].all.p50, rows[1].not_ending.p50);
                println!(
                    "| {} | ratio | | | p50 at {} ÷ p50 at 10 (MaxConcurrency 1, not ending) = **{:.2}** | | |",
                    label(b),
                    o.nodes,
                    at_n / ten
                );
            }
        }
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(200));
    eprintln!("ssmd-bench engine: {:.0} s in all", started.elapsed().as_secs_f64());
    Ok(())
}
