//! `ssmd-bench automation`: the Automation engine's figures against the release binary, on SQLite
//! and PostgreSQL, over signed HTTP like any client.
//!
//! * **Throughput**: N executions of a 3-step runbook (aws:sleep PT0S, aws:branch,
//!   aws:executeAwsApi ssm DescribeDocument) started at once; executions and steps completed per
//!   second until the last one finishes. Floor, same server and run: N AddTagsToResource calls,
//!   the simplest durable single-transaction write ssmd serves.
//! * **Approvals**: N executions waiting at aws:approve at once — server memory before and while
//!   they wait — then all approved; time until the last one finishes.
//! * **Fan-out**: one execution over 300 TargetMaps with MaxConcurrency 10%, each child one
//!   aws:sleep PT1S step; ssmd's overhead is the wall time beyond the ideal
//!   ceil(300 / 30) × 1 s, per target.

use super::{Opts, fresh_pg, round_trip, rss_kib, signed_request, spawn, ssmd_cmd};
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const CONNS: usize = 16;

/// Sends every request over `CONNS` kept-alive connections; returns the response bodies in order.
async fn many(port: u16, reqs: Vec<(String, String)>) -> Result<Vec<Value>> {
    let reqs = std::sync::Arc::new(reqs);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        let (reqs, next) = (reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
            s.set_nodelay(true)?;
            let mut buf = Vec::new();
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((target, body)) = reqs.get(i) else { break };
                let status = round_trip(&mut s, &signed_request(port, target, body), &mut buf).await?;
                let start = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(0);
                let v: Value = serde_json::from_slice(&buf[start..]).unwrap_or(Value::Null);
                if status != 200 {
                    bail!("{target} failed ({status}): {v}");
                }
                out.push((i, v));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}

async fn one(port: u16, target: &str, body: Value) -> Result<Value> {
    Ok(many(port, vec![(target.to_string(), body.to_string())]).await?.remove(0))
}

async fn runbook(port: u16, name: &str, yaml: &str) -> Result<()> {
    one(
        port,
        "CreateDocument",
        json!({"Name": name, "Content": yaml, "DocumentType": "Automation", "DocumentFormat": "YAML"}),
    )
    .await?;
    Ok(())
}

/// Number of executions in any of `statuses` (0 or "at least one" is all callers need).
async fn any_in(port: u16, statuses: &[&str]) -> Result<bool> {
    let v = one(
        port,
        "DescribeAutomationExecutions",
        json!({"Filters": [{"Key": "ExecutionStatus", "Values": statuses}], "MaxResults": 1}),
    )
    .await?;
    Ok(v["AutomationExecutionMetadataList"].as_array().is_some_and(|l| !l.is_empty()))
}

async fn wait_none(port: u16, statuses: &[&str], limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    while any_in(port, statuses).await? {
        if t.elapsed() > limit {
            bail!("executions still {statuses:?} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(t.elapsed())
}

const THREE_STEPS: &str = r#"schemaVersion: '0.3'
mainSteps:
  - name: nap
    action: aws:sleep
    inputs: { Duration: PT0S }
  - name: choose
    action: aws:branch
    inputs:
      Choices:
        - NextStep: look
          Variable: "{{ automation:EXECUTION_ID }}"
          StartsWith: ""
  - name: look
    action: aws:executeAwsApi
    inputs: { Service: ssm, Api: DescribeDocument, Name: BenchTarget }
    outputs:
      - { Name: Type, Selector: $.Document.DocumentType, Type: String }
"#;

const APPROVAL: &str = r#"schemaVersion: '0.3'
mainSteps:
  - name: gate
    action: aws:approve
    inputs:
      Approvers: ["{{ global:ACCOUNT_ID }}"]
      Message: bench
"#;

const CHILD: &str = r#"schemaVersion: '0.3'
parameters:
  Item: { type: String }
mainSteps:
  - name: nap
    action: aws:sleep
    inputs: { Duration: PT1S }
"#;

async fn throughput(port: u16, n: usize) -> Result<(f64, f64, f64)> {
    // Floor: durable single-transaction writes through the same path.
    let tags: Vec<(String, String)> = (0..n)
        .map(|i| {
            let body = json!({"ResourceType": "Document", "ResourceId": "BenchTarget", "Tags": [{"Key": format!("k{}", i % 40), "Value": i.to_string()}]});
            ("AddTagsToResource".to_string(), body.to_string())
        })
        .collect();
    let t = Instant::now();
    many(port, tags).await?;
    let floor = n as f64 / t.elapsed().as_secs_f64();
    let starts: Vec<(String, String)> = (0..n)
        .map(|_| ("StartAutomationExecution".to_string(), json!({"DocumentName": "BenchThree"}).to_string()))
        .collect();
    let t = Instant::now();
    many(port, starts).await?;
    wait_none(port, &["Pending", "InProgress", "Waiting"], Duration::from_secs(600)).await?;
    let secs = t.elapsed().as_secs_f64();
    if any_in(port, &["Failed", "TimedOut", "Cancelled"]).await? {
        bail!("some benchmark executions did not succeed");
    }
    Ok((n as f64 / secs, 3.0 * n as f64 / secs, floor))
}

async fn approvals(port: u16, pid: u32, n: usize) -> Result<(f64, f64, f64)> {
    runbook(port, "BenchApprove", APPROVAL).await?;
    let before = rss_kib(pid) as f64 / 1024.0;
    let starts: Vec<(String, String)> = (0..n)
        .map(|_| ("StartAutomationExecution".to_string(), json!({"DocumentName": "BenchApprove"}).to_string()))
        .collect();
    let ids: Vec<String> = many(port, starts)
        .await?
        .iter()
        .map(|v| v["AutomationExecutionId"].as_str().unwrap_or_default().to_string())
        .collect();
    wait_none(port, &["Pending", "InProgress"], Duration::from_secs(600)).await?;
    let waiting = rss_kib(pid) as f64 / 1024.0;
    let signals: Vec<(String, String)> = ids
        .iter()
        .map(|id| {
            (
                "SendAutomationSignal".to_string(),
                json!({"AutomationExecutionId": id, "SignalType": "Approve"}).to_string(),
            )
        })
        .collect();
    let t = Instant::now();
    many(port, signals).await?;
    wait_none(port, &["Pending", "InProgress", "Waiting"], Duration::from_secs(600)).await?;
    Ok((before, waiting, t.elapsed().as_secs_f64()))
}

async fn fan_out(port: u16) -> Result<(f64, f64)> {
    let maps: Vec<Value> = (0..300).map(|i| json!({"Item": [format!("t{i}")]})).collect();
    let t = Instant::now();
    let v = one(
        port,
        "StartAutomationExecution",
        json!({"DocumentName": "BenchChild", "TargetMaps": maps, "MaxConcurrency": "10%", "MaxErrors": "0"}),
    )
    .await?;
    let id = v["AutomationExecutionId"].as_str().unwrap_or_default().to_string();
    loop {
        let x = one(port, "GetAutomationExecution", json!({"AutomationExecutionId": id})).await?;
        match x["AutomationExecution"]["AutomationExecutionStatus"].as_str() {
            Some("Success") => break,
            Some("Failed" | "Cancelled" | "TimedOut") => bail!("the fan-out failed: {x}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let ideal = 10.0;
    Ok((wall, (wall - ideal) * 1000.0 / 300.0))
}

pub fn run(o: &Opts, executions: usize, waiting: usize, parts: &str) -> Result<()> {
    let mut backends: Vec<(&str, Option<String>)> = vec![("sqlite", None)];
    if let Some(base) = &o.pg {
        backends.push(("postgres", Some(fresh_pg(base)?)));
    }
    println!("| backend | figure | value | floor / target |");
    println!("|---|---|---|---|");
    for (label, db) in backends {
        let dir = std::env::temp_dir().join(format!("ssmd-bench-auto-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cmd = ssmd_cmd(o, &dir, db.as_deref());
        cmd.args(["--automation-max-running", "50000", "--automation-max-queued", "50000"]);
        let server = spawn(cmd)?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(async {
            if parts.contains("throughput") {
            runbook(server.port, "BenchTarget", THREE_STEPS).await?;
            runbook(server.port, "BenchThree", THREE_STEPS).await?;
            let mut per_round = Vec::new();
            for _ in 0..o.rounds {
                per_round.push(throughput(server.port, executions).await?);
            }
            per_round.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (eps, sps, floor) = per_round[per_round.len() / 2];
            println!("| {label} | 3-step executions/s ({executions} at once, median of {}) | {eps:.0} | ≥ 500 |", o.rounds);
            println!("| {label} | steps completed/s | {sps:.0} | ≥ 1,500 |");
            println!(
                "| {label} | floor: AddTagsToResource writes/s, same run | {floor:.0} | steps/s ÷ floor = {:.2} |",
                sps / floor
            );
            }
            if parts.contains("approvals") {
            let (before, held, approve_s) = approvals(server.port, server.child.id(), waiting).await?;
            println!("| {label} | RSS with {waiting} executions waiting at aws:approve | {held:.0} MiB (before: {before:.0} MiB) | < 500 MB |");
            println!("| {label} | approving all {waiting}, until the last finished | {approve_s:.1} s | < 60 s |");
            }
            if parts.contains("fanout") {
            runbook(server.port, "BenchChild", CHILD).await?;
            let mut walls = Vec::new();
            for _ in 0..o.rounds {
                walls.push(fan_out(server.port).await?);
            }
            walls.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (wall, overhead) = walls[walls.len() / 2];
            println!(
                "| {label} | 300 TargetMaps, MaxConcurrency 10%, children sleep 1 s (median of {}) | {wall:.2} s wall (ideal 10 s) | overhead {overhead:.2} ms/target (< 1 ms) |",
                o.rounds
            );
            }
            anyhow::Ok(())
        })?;
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(base) = &o.pg {
        crate::drop_pg(base);
    }
    Ok(())
}
