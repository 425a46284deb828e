//! `ssmd-bench windows`: Maintenance Windows at scale, in this process (an `ssmd_api::Service`
//! over a fresh SQLite or PostgreSQL database, called as the HTTP layer calls it, without the
//! HTTP and signature work):
//!
//! * **idle**: N enabled windows (default 100,000; a daily cron 12 hours away, so nothing is
//!   due) created through CreateMaintenanceWindow. The process's CPU (user + system, every
//!   thread) over `--idle` seconds with the service's background work running, as % of one
//!   core; floor: the same process and store over the same time before the background work
//!   starts.
//! * **burst**: M more windows (default 1,000) with one `at()` at the same second, no tasks.
//!   Jitter of each fire = the execution's start − its scheduled time (both recorded by ssmd,
//!   wall clock). Floor: M tokio tasks sleeping to one wall-clock instant, in the same run.
//! * **schedule**: DescribeMaintenanceWindowSchedule of an hourly cron window with
//!   `ScheduledBefore` a year ahead (8,760 runs): the first page of 100, a page deep in the
//!   year (by its token), and walking the whole year. Floor: GetMaintenanceWindow of the same
//!   window (one row read through the same path).
//! * **list**: DescribeMaintenanceWindows pages of 100 walked from the start among the N + M
//!   windows. Same floor.
//!
//! Medians and p99 only; the machine is shared, so each figure has its floor from the same run.

use super::engine::{Dist, Fresh, call, dist, label, self_cpu_s, sleep_until_wall, wall_us};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use ssmd_core::SystemClock;
use ssmd_store::{Backend, Store, sql};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    pg: Option<String>,
    sqlite: bool,
    windows: usize,
    burst: usize,
    idle_s: u64,
    calls: usize,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        pg: Some("postgres://postgres@127.0.0.1:5432".into()),
        sqlite: true,
        windows: 100_000,
        burst: 1_000,
        idle_s: 10,
        calls: 200,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context("missing value");
        match a.as_str() {
            "--pg" => o.pg = Some(value()?.clone()),
            "--no-pg" => o.pg = None,
            "--no-sqlite" => o.sqlite = false,
            "--windows" => o.windows = value()?.parse()?,
            "--burst" => o.burst = value()?.parse()?,
            "--idle" => o.idle_s = value()?.parse()?,
            "--calls" => o.calls = value()?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

/// Milliseconds each call of `f` took, `n` calls.
async fn time_calls<F, Fut>(n: usize, mut f: F) -> Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

/// Creates `n` windows from 8 tasks; returns creations per second.
async fn create_many(svc: &Arc<ssmd_api::Service>, n: usize, prefix: &str, schedule: &str) -> Result<f64> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for part in 0..8 {
        let (svc, prefix, schedule) = (svc.clone(), prefix.to_string(), schedule.to_string());
        tasks.push(tokio::spawn(async move {
            for i in (part..n).step_by(8) {
                call(
                    &svc,
                    "CreateMaintenanceWindow",
                    json!({"Name": format!("{prefix}-{i:06}"), "Schedule": schedule, "Duration": 2, "Cutoff": 0,
                           "AllowUnassociatedTargets": true}),
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// This process's CPU over `secs` seconds, as % of one core.
async fn cpu_pct(secs: u64) -> f64 {
    let (c0, t0) = (self_cpu_s(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (self_cpu_s() - c0) / t0.elapsed().as_secs_f64() * 100.0
}

struct Row {
    backend: Backend,
    create_per_s: f64,
    idle_pct: f64,
    floor_pct: f64,
    jitter: Dist,
    floor_jitter: Dist,
    fired: usize,
    schedule_first: Dist,
    schedule_deep: Dist,
    year_walk_ms: f64,
    year_runs: usize,
    list: Dist,
    floor_get: Dist,
}

async fn one(o: &Opts, backend: Backend) -> Result<Row> {
    let db = Fresh::with(o.pg.as_deref(), backend, "windows")?;
    let store = Store::open(&db.url).await?;
    let svc = Arc::new(
        ssmd_api::Service::new(store.clone(), Arc::new(SystemClock))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_window_settings(ssmd_api::windows::Settings {
                max_windows: (o.windows + o.burst + 10) as i64,
                ..Default::default()
            }),
    );

    // Idle: a daily run 12 hours from now.
    let hour = (jiff::Timestamp::now().as_second() / 3600 + 12) % 24;
    let create_per_s = create_many(&svc, o.windows, "idle", &format!("cron(0 {hour} ? * * *)")).await?;
    eprintln!("  {}: {} windows created, {create_per_s:.0}/s", label(backend), o.windows);
    let floor_pct = cpu_pct(o.idle_s).await;
    let engine = svc.run_background().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_pct = cpu_pct(o.idle_s).await;

    // Floor for the burst: tokio sleeps to one instant.
    let at = (wall_us() / 1_000_000 + 3) * 1000;
    let mut sleepers = Vec::new();
    for _ in 0..o.burst {
        sleepers.push(tokio::spawn(async move {
            sleep_until_wall(at).await;
            (wall_us() as f64 / 1000.0) - at as f64
        }));
    }
    let mut late = Vec::new();
    for s in sleepers {
        late.push(s.await?);
    }
    let floor_jitter = dist(late);

    // Burst: M windows at one second, 20 s ahead (creation takes a while on a busy machine).
    let fire_s = wall_us() / 1_000_000 + 20;
    let when = jiff::Timestamp::from_second(fire_s)?.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    create_many(&svc, o.burst, "burst", &format!("at({when})")).await?;
    if wall_us() / 1_000_000 >= fire_s {
        bail!("creating {} windows took longer than 20 s; the burst would not be one instant", o.burst);
    }
    let deadline =
        Instant::now() + Duration::from_secs(60) + Duration::from_secs((fire_s - wall_us() / 1_000_000).max(0) as u64);
    let lateness = loop {
        let rows =
            store.db().fetch_all(sql::query("SELECT start_ms - scheduled_ms AS late FROM window_executions")).await?;
        if rows.len() >= o.burst || Instant::now() > deadline {
            break rows
                .iter()
                .map(|r| r.get::<i64>("late").map(|v| v as f64))
                .collect::<std::result::Result<Vec<_>, _>>()?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let fired = lateness.len();
    let jitter = dist(lateness);

    // Schedule: an hourly window, a year ahead.
    let hourly = call(
        &svc,
        "CreateMaintenanceWindow",
        json!({"Name": "hourly", "Schedule": "cron(0 * ? * * *)", "Duration": 1, "Cutoff": 0, "AllowUnassociatedTargets": true}),
    )
    .await?["WindowId"]
        .as_str()
        .context("no WindowId")?
        .to_string();
    let year = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let page = |token: Option<String>| {
        let mut input = json!({"WindowId": hourly, "MaxResults": 100,
                               "Filters": [{"Key": "ScheduledBefore", "Values": [year]}]});
        if let Some(t) = token {
            input["NextToken"] = Value::String(t);
        }
        input
    };
    let schedule_first = dist(
        time_calls(o.calls, |_| {
            let (svc, input) = (svc.clone(), page(None));
            async move { call(&svc, "DescribeMaintenanceWindowSchedule", input).await.map(|_| ()) }
        })
        .await?,
    );
    let t = Instant::now();
    let (mut token, mut year_runs, mut deep_token) = (None, 0, None);
    loop {
        let out = call(&svc, "DescribeMaintenanceWindowSchedule", page(token.take())).await?;
        year_runs += out["ScheduledWindowExecutions"].as_array().map_or(0, Vec::len);
        match out["NextToken"].as_str() {
            Some(next) => {
                if year_runs >= 8000 && deep_token.is_none() {
                    deep_token = Some(next.to_string());
                }
                token = Some(next.to_string());
            }
            None => break,
        }
    }
    let year_walk_ms = t.elapsed().as_secs_f64() * 1000.0;
    let deep = deep_token.context("the year had no page past 8,000 runs")?;
    let schedule_deep = dist(
        time_calls(o.calls, |_| {
            let (svc, input) = (svc.clone(), page(Some(deep.clone())));
            async move { call(&svc, "DescribeMaintenanceWindowSchedule", input).await.map(|_| ()) }
        })
        .await?,
    );

    // List: pages of 100 from the start.
    let mut list_token: Option<String> = None;
    let mut list = Vec::new();
    for _ in 0..o.calls {
        let mut input = json!({"MaxResults": 100});
        if let Some(t) = list_token.take() {
            input["NextToken"] = Value::String(t);
        }
        let t = Instant::now();
        let out = call(&svc, "DescribeMaintenanceWindows", input).await?;
        list.push(t.elapsed().as_secs_f64() * 1000.0);
        list_token = out["NextToken"].as_str().map(str::to_string);
    }
    let floor_get = dist(
        time_calls(o.calls, |_| {
            let (svc, id) = (svc.clone(), hourly.clone());
            async move { call(&svc, "GetMaintenanceWindow", json!({"WindowId": id})).await.map(|_| ()) }
        })
        .await?,
    );

    svc.close_long_polls();
    engine.shutdown().await;
    store.close().await;
    drop(db);
    Ok(Row {
        backend,
        create_per_s,
        idle_pct,
        floor_pct,
        jitter,
        floor_jitter,
        fired,
        schedule_first,
        schedule_deep,
        year_walk_ms,
        year_runs,
        list: dist(list),
        floor_get,
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let mut backends = Vec::new();
    if o.sqlite {
        backends.push(Backend::Sqlite);
    }
    if o.pg.is_some() {
        backends.push(Backend::Postgres);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        for &b in &backends {
            rows.push(one(&o, b).await?);
        }
        anyhow::Ok(rows)
    })?;
    println!("\n### Maintenance windows: {} enabled, {} firing in one second\n", o.windows, o.burst);
    println!(
        "| backend | creates/s | idle CPU (floor: no background work) | fire jitter p50 / p99 / max ms (fired) | floor: tokio sleeps p50 / p99 / max ms |"
    );
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | **{:.2} %** ({:.2} %) | **{}** ({}/{}) | {} |",
            label(r.backend),
            r.create_per_s,
            r.idle_pct,
            r.floor_pct,
            r.jitter,
            r.fired,
            o.burst,
            r.floor_jitter
        );
    }
    println!("\n### Reads among {} windows, {} calls each (ms p50 / p99 / max)\n", o.windows + o.burst, o.calls);
    println!(
        "| backend | DescribeMaintenanceWindowSchedule, hourly, a year ahead: first page of 100 | a page past run 8,000 | the whole year | DescribeMaintenanceWindows, pages of 100 | floor: GetMaintenanceWindow |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | **{}** | {} | {:.0} ms ({} runs) | **{}** | {} |",
            label(r.backend),
            r.schedule_first,
            r.schedule_deep,
            r.year_walk_ms,
            r.year_runs,
            r.list,
            r.floor_get
        );
    }
    Ok(())
}
