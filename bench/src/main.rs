//! Load benchmark for ssmd's API path (issue: signed GetDocument / ListDocuments).
//!
//! `ssmd-bench http` starts, in separate processes, a bare HTTP server (the floor: the same
//! hyper/axum stack answering a fixed body, no signature, no database) and the real `ssmd`
//! release binary on SQLite and on PostgreSQL, then drives each over loopback with 1 and 32
//! keep-alive connections of signed awsJson1_1 requests. Requests are signed once per
//! connection and replayed (a signature stays valid for 15 minutes), so the client spends its
//! CPU on I/O, while the server verifies every request in full. Each figure is the median of
//! `--rounds` runs. It also reports start-up time to readiness and resident memory.
//!
//! `ssmd-bench floor-server` is the floor server itself (started by `http` and `nodes`).
//! `ssmd-bench automation`, `ssmd-bench nodes` (Run Command to N managed nodes) and
//! `ssmd-bench schedule` (the schedule engine, in process) and `ssmd-bench engine` (the durable
//! engine's timers, claims, wake-ups and Run Command settles, in process) are described in their
//! modules.

mod automation;
mod engine;
mod nodes;
mod parameters;
mod schedule;
mod windows;

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "AKIABENCH00000000001";
const SECRET: &str = "benchsecret/000000000000000000000000000001";

struct Opts {
    seconds: u64,
    rounds: usize,
    ssmd: String,
    pg: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        seconds: 3,
        rounds: 3,
        ssmd: "target/release/ssmd".into(),
        pg: Some("postgres://postgres@127.0.0.1:5432".into()),
    };
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--seconds" => o.seconds = v.parse()?,
            "--rounds" => o.rounds = v.parse()?,
            "--ssmd" => o.ssmd = v,
            "--pg" => o.pg = Some(v),
            "--no-pg" => {
                o.pg = None;
                i -= 1;
            }
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    Ok(o)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("floor-server") => floor_server(),
        Some("http") => http_bench(parse_opts(&args[1..])?),
        Some("automation") => {
            let mut rest: Vec<String> = args[1..].to_vec();
            let mut take = |flag: &str, default: usize| -> Result<usize> {
                match rest.iter().position(|a| a == flag) {
                    Some(i) => {
                        let v = rest.get(i + 1).context("missing value")?.parse()?;
                        rest.drain(i..i + 2);
                        Ok(v)
                    }
                    None => Ok(default),
                }
            };
            let executions = take("--executions", 2000)?;
            let waiting = take("--waiting", 10_000)?;
            let parts = match rest.iter().position(|a| a == "--parts") {
                Some(i) => {
                    let v = rest.get(i + 1).context("missing value")?.clone();
                    rest.drain(i..i + 2);
                    v
                }
                None => "throughput,approvals,fanout".to_string(),
            };
            automation::run(&parse_opts(&rest)?, executions, waiting, &parts)
        }
        Some("nodes") => nodes::run(&args[1..]),
        Some("agent") => nodes::agent(&args[1..]),
        Some("schedule") => schedule::run(&args[1..]),
        Some("engine") => engine::run(&args[1..]),
        Some("windows") => windows::run(&args[1..]),
        Some("parameters") => {
            let mut rest: Vec<String> = args[1..].to_vec();
            let count = match rest.iter().position(|a| a == "--count") {
                Some(i) => {
                    let v = rest.get(i + 1).context("missing value")?.parse()?;
                    rest.drain(i..i + 2);
                    v
                }
                None => 9_990, // with the two others, inside the 10,000 Standard parameters an account may hold
            };
            parameters::run(&parse_opts(&rest)?, count)
        }
        _ => bail!(
            "usage: ssmd-bench (http [--seconds N] [--rounds N] [--ssmd PATH] [--pg URL | --no-pg] | automation [--executions N] [--waiting N] [--parts throughput,approvals,fanout] [--rounds N] [--ssmd PATH] [--pg URL | --no-pg] | nodes [--nodes N] [--rounds N] [--ssmd PATH] [--agent PATH | --no-agent] [--pg URL | --no-pg] [--no-sqlite] [--perf PREFIX] [--keep] | agent [--agent PATH] [--ssmd PATH] | schedule [--batches N] | engine [--parts timers,claims,wakeups,settle] [--pg URL | --no-pg] [--no-sqlite] [--timers N] [--due N] [--window S] [--idle S] [--jobs N] [--wakeups N] [--pace-ms MS] [--nodes N] [--replies N] | parameters [--count N] [--seconds N] [--rounds N] [--pg URL | --no-pg] | windows [--windows N] [--burst N] [--idle S] [--calls N] [--pg URL | --no-pg] [--no-sqlite] | floor-server)"
        ),
    }
}

fn floor_server() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|body: axum::body::Bytes| async move {
                let _ = body;
                ([("content-type", "application/x-amz-json-1.1")], r#"{"Name":"BenchDoc","Content":"{}"}"#)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("ssmd listening on http://{}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// A child server process that is killed on drop.
struct Proc {
    child: Child,
    port: u16,
    startup: Duration,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command) -> Result<Proc> {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("spawning server")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut port = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("ssmd listening on http://") {
            port = url.rsplit(':').next().unwrap_or("0").parse()?;
            break;
        }
    }
    if port == 0 {
        bail!("server did not start");
    }
    Ok(Proc { child, port, startup: start.elapsed() })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn ssmd_cmd(o: &Opts, data_dir: &std::path::Path, db: Option<&str>) -> Command {
    let mut c = Command::new(&o.ssmd);
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    if let Some(url) = db {
        c.args(["--database-url", url]);
    }
    c.env("SSMD_ACCESS_KEY_ID", KEY)
        .env("SSMD_SECRET_ACCESS_KEY", SECRET)
        .env("SSMD_ACCOUNT_ID", "999999999999")
        .env("SSMD_LOG", "warn");
    c
}

fn signed_request(port: u16, target: &str, body: &str) -> Vec<u8> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let date = ssmd_sigv4::format_amz_date(now);
    let mut h = http::HeaderMap::new();
    h.insert("host", format!("127.0.0.1:{port}").parse().expect("header"));
    h.insert("x-amz-date", date.parse().expect("header"));
    h.insert("x-amz-target", format!("AmazonSSM.{target}").parse().expect("header"));
    h.insert("content-type", "application/x-amz-json-1.1".parse().expect("header"));
    let auth = ssmd_sigv4::sign(KEY, SECRET, "us-east-1", "ssm", &date, "POST", "/", &h, body.as_bytes());
    let mut req = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in &h {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    req.push_str(&format!("authorization: {auth}\r\ncontent-length: {}\r\n\r\n{body}", body.len()));
    req.into_bytes()
}

/// Sends one request on a kept-alive connection and reads the whole response; returns the status.
async fn round_trip(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> Result<u16> {
    s.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
    }
}

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

fn load(port: u16, target: &str, body: &str, conns: usize, seconds: u64) -> Result<Run> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let req = signed_request(port, target, body);
        let warm_until = Instant::now() + Duration::from_millis(500);
        let deadline = warm_until + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let req = req.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
                s.set_nodelay(true)?;
                let mut buf = Vec::with_capacity(16 * 1024);
                let mut lat = Vec::new();
                let mut errors = 0;
                loop {
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    let status = round_trip(&mut s, &req, &mut buf).await?;
                    if t >= warm_until {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        if status != 200 {
                            errors += 1;
                        }
                    }
                }
                anyhow::Ok((lat, errors))
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await??;
            all.extend(lat);
            errors += e;
        }
        all.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0)
        };
        Ok(Run { rps: all.len() as f64 / seconds as f64, p50_ms: pct(0.50), p99_ms: pct(0.99), errors })
    })
}

fn median_run(port: u16, target: &str, body: &str, conns: usize, o: &Opts) -> Result<Run> {
    let mut runs = Vec::new();
    for _ in 0..o.rounds {
        runs.push(load(port, target, body, conns, o.seconds)?);
    }
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    Ok(runs.swap_remove(runs.len() / 2))
}

fn setup_documents(port: u16) -> Result<()> {
    let content = r#"{"schemaVersion":"2.2","description":"bench","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["echo hi"]}}]}"#;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut buf = Vec::new();
        for i in 0..10 {
            let name = if i == 0 { "BenchDoc".to_string() } else { format!("BenchDoc{i}") };
            let body =
                serde_json::json!({"Name": name, "Content": content.replace("hi", &format!("hi{i}"))}).to_string();
            let status = round_trip(&mut s, &signed_request(port, "CreateDocument", &body), &mut buf).await?;
            if status != 200 {
                bail!("CreateDocument failed: {}", String::from_utf8_lossy(&buf));
            }
        }
        Ok(())
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fresh_pg(base: &str) -> Result<String> {
    fresh_pg_named(base, &format!("ssmd_bench_{}", std::process::id()))
}

/// Creates the empty PostgreSQL database `name` (dropping one left by an earlier run) and
/// returns its URL.
pub(crate) fn fresh_pg_named(base: &str, name: &str) -> Result<String> {
    drop_pg_named(base, name);
    let st = Command::new("psql")
        .args([&format!("{base}/postgres"), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()?;
    if !st.success() {
        bail!("could not create the PostgreSQL database");
    }
    Ok(format!("{base}/{name}"))
}

fn http_bench(o: Opts) -> Result<()> {
    let exe = std::env::current_exe()?;
    println!("| server | request | conns | req/s (median) | p50 ms | p99 ms | errors | vs floor |");
    println!("|---|---|---|---|---|---|---|---|");
    let floor = spawn({
        let mut c = Command::new(&exe);
        c.arg("floor-server");
        c
    })?;
    let mut floor_rps = [0.0; 2];
    for (i, conns) in [1usize, 32].into_iter().enumerate() {
        let r = median_run(floor.port, "GetDocument", r#"{"Name":"BenchDoc"}"#, conns, &o)?;
        floor_rps[i] = r.rps;
        println!(
            "| floor (bare axum) | POST / | {conns} | {:.0} | {:.3} | {:.3} | {} | 1.00 |",
            r.rps, r.p50_ms, r.p99_ms, r.errors
        );
    }
    drop(floor);

    let mut backends: Vec<(&str, Option<String>)> = vec![("ssmd sqlite", None)];
    if let Some(base) = &o.pg {
        backends.push(("ssmd postgres", Some(fresh_pg(base)?)));
    }
    let mut notes = Vec::new();
    for (label, db) in backends {
        let dir = std::env::temp_dir().join(format!("ssmd-bench-{}-{}", std::process::id(), label.replace(' ', "-")));
        let _ = std::fs::remove_dir_all(&dir);
        let server = spawn(ssmd_cmd(&o, &dir, db.as_deref()))?;
        std::thread::sleep(Duration::from_millis(300));
        let idle = rss_kib(server.child.id());
        setup_documents(server.port)?;
        for (target, body) in [
            ("GetDocument", r#"{"Name":"BenchDoc"}"#),
            ("ListDocuments", r#"{"Filters":[{"Key":"Owner","Values":["Self"]}],"MaxResults":10}"#),
        ] {
            for (i, conns) in [1usize, 32].into_iter().enumerate() {
                // SSMD_BENCH_PERF=DIR records a perf profile of the server under the 32-connection
                // load of each request (for finding where the time goes; not part of the figures).
                let perf = match std::env::var("SSMD_BENCH_PERF") {
                    Ok(dir) if conns == 32 => Command::new("perf")
                        .args(["record", "-g", "-p", &server.child.id().to_string(), "-o"])
                        .arg(format!("{dir}/{}-{target}.data", label.replace(' ', "-")))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .ok(),
                    _ => None,
                };
                let r = median_run(server.port, target, body, conns, &o)?;
                if let Some(mut p) = perf {
                    // SIGINT makes perf write its file and exit.
                    unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
                    let _ = p.wait();
                }
                println!(
                    "| {label} | {target} | {conns} | {:.0} | {:.3} | {:.3} | {} | {:.2} |",
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors,
                    r.rps / floor_rps[i]
                );
            }
        }
        let loaded = rss_kib(server.child.id());
        notes.push(format!(
            "{label}: idle RSS {:.1} MiB, after load {:.1} MiB",
            idle as f64 / 1024.0,
            loaded as f64 / 1024.0
        ));
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
        if let (Some(base), Some(_)) = (&o.pg, &db) {
            drop_pg(base);
        }
    }
    // Start-up on an empty data directory, to readiness (the listening line).
    let mut startups = Vec::new();
    for i in 0..5 {
        let dir = std::env::temp_dir().join(format!("ssmd-bench-start-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = spawn(ssmd_cmd(&o, &dir, None))?;
        startups.push(p.startup.as_secs_f64() * 1000.0);
        drop(p);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    println!("- start-up to ready on an empty SQLite data dir: median {:.0} ms of 5", median(startups));
    Ok(())
}

/// Drops the PostgreSQL database a bench run made (`ssmd_bench_<pid>`), if it is there.
pub(crate) fn drop_pg(base: &str) {
    drop_pg_named(base, &format!("ssmd_bench_{}", std::process::id()));
}

/// Drops the PostgreSQL database `name` if it is there, ending any session still on it.
pub(crate) fn drop_pg_named(base: &str, name: &str) {
    let _ = Command::new("psql")
        .args([&format!("{base}/postgres"), "-q", "-c", &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")])
        .stderr(Stdio::null())
        .status();
}
