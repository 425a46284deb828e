//! `ssmd-bench nodes`: Run Command fan-out to N managed nodes (default 1,000) played over the AWS
//! SSM Agent's protocol against one release `ssmd serve`, on SQLite and PostgreSQL.
//!
//! Setup: an activation (several when N > 1,000, the model's RegistrationLimit maximum), then
//! each node registers (anonymous RegisterManagedInstance with its own fingerprint; the RSA-2048
//! key pairs are few and shared, since generating 1,000 takes minutes), gets temporary
//! credentials (RequestManagedInstanceRoleToken, "SigV4 with an RSA key"), pings once
//! (UpdateInstanceInformation) and starts long-polling `EC2WindowsMessageDeliveryService.GetMessages`
//! (signing name `ec2messages`, X-Amz-Security-Token). Every node is a tokio task with one
//! keep-alive connection of hand-written HTTP/1.1; it derives its signing key once per day and
//! service. On a message it does what the AWS agent does: SendReply InProgress,
//! AcknowledgeMessage, SendReply Success with a line of stdout, then polls again.
//!
//! Each round sends one `SendCommand` AWS-RunShellScript to every node (Targets InstanceIds `*`,
//! MaxConcurrency 100%) and measures:
//! * completion: SendCommand sent → the last node's final SendReply accepted, then confirmed by
//!   ListCommands (Status Success, CompletedCount N);
//! * delivery latency per node: SendCommand sent → that node's GetMessages answered with the
//!   message (p50 / p99 / max);
//! * the server's CPU seconds (utime + stime from /proc/<pid>/stat) and peak RSS (VmRSS sampled
//!   every 5 ms) during the fan-out, and its RSS idle and with N long polls held;
//! * the bytes and write calls the server made (/proc/<pid>/io), and how long its threads were
//!   runnable but had no CPU (/proc/<pid>/task/*/schedstat) — this machine is shared;
//! * where the server's time went: the difference of its own `/metrics` histograms
//!   (`ssmd_store_seconds` per store operation, `ssmd_request_seconds` per API operation) across
//!   the fan-out. Store times include waiting for SQLite's single writer.
//!
//! Floors, measured in every round just before the fan-out, on the same machine under the same
//! noise: the fan-out costs each node four HTTP exchanges (the poll answer, two replies and the
//! ack), so **floor A** is the same N nodes each making the same four signed requests, one after
//! another on its own kept-alive connection, against the bare floor server (`ssmd-bench
//! floor-server`: hyper/axum answering a fixed body) — the cost of the traffic pattern itself,
//! client included. **Floor B** is the same 4 × N exchanges against ssmd as durable
//! single-transaction writes (AddTagsToResource on each node, root key) — what ssmd's write path
//! costs at that concurrency when there is no Run Command logic. The fan-out's ratio to each is
//! reported.
//!
//! Figures are medians over `--rounds` rounds on the same registered nodes. `--perf PREFIX`
//! records each fan-out with `perf record` (files `PREFIX.<backend>.<round>`); `--keep` keeps the
//! SQLite data directory for inspection.
//!
//! With `--agent PATH` (default `target/release/ssmd-agent`; skipped when absent, or with
//! `--no-agent`) it also reports the agent binary's size and the RSS of one real `ssmd-agent run`
//! registered against a fresh SQLite server: idle after 5 s, and after it ran one command.
//! `ssmd-bench agent` reports only that.

use super::{Opts, fresh_pg, parse_opts, round_trip, rss_kib, signed_request, spawn, ssmd_cmd};
use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore, mpsc};

const REGION: &str = "us-east-1";
/// The model's maximum RegistrationLimit of one activation.
const PER_ACTIVATION: usize = 1000;
/// Key pairs generated and shared by the nodes.
const KEY_PAIRS: usize = 8;
/// Nodes registering at once.
const SETUP_CONCURRENCY: usize = 64;
const MDS: &str = "EC2WindowsMessageDeliveryService";
/// Requests per node in a fan-out (and so in each floor): poll answer, reply, ack, reply.
const EXCHANGES: usize = 4;

/// What the tool was asked for, beyond the shared options.
struct NodeOpts {
    nodes: usize,
    agent: String,
    with_agent: bool,
    /// Record each fan-out of the server with `perf record` into `<prefix>.<backend>.<round>`.
    perf: Option<String>,
    /// Keep the server's data directory (its path is printed).
    keep: bool,
    /// Skip SQLite (to profile PostgreSQL alone).
    sqlite: bool,
}

/// Takes `--nodes`, `--agent` and `--no-agent` out of `args`; the rest are the shared options.
fn split_opts(args: &[String]) -> Result<(Opts, NodeOpts)> {
    let mut n = NodeOpts {
        nodes: 1000,
        agent: "target/release/ssmd-agent".into(),
        with_agent: true,
        perf: None,
        keep: false,
        sqlite: true,
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--nodes" => n.nodes = it.next().context("--nodes needs a value")?.parse()?,
            "--agent" => n.agent = it.next().context("--agent needs a value")?.clone(),
            "--no-agent" => n.with_agent = false,
            "--perf" => n.perf = Some(it.next().context("--perf needs a file prefix")?.clone()),
            "--keep" => n.keep = true,
            "--no-sqlite" => n.sqlite = false,
            _ => rest.push(a.clone()),
        }
    }
    if n.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    Ok((parse_opts(&rest)?, n))
}

// ---------------------------------------------------------------------------------------------
// Requests

fn amz_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    ssmd_sigv4::format_amz_date(now as i64)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn base_headers(port: u16, target: &str, date: Option<&str>) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("host", format!("127.0.0.1:{port}").parse().expect("header"));
    if let Some(d) = date {
        h.insert("x-amz-date", d.parse().expect("header"));
    }
    h.insert("x-amz-target", target.parse().expect("header"));
    h.insert("content-type", "application/x-amz-json-1.1".parse().expect("header"));
    h
}

/// An HTTP/1.1 POST / with `headers`, then the unsigned `extra` ones, and `body`.
fn post(headers: &http::HeaderMap, extra: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut req = String::with_capacity(1024 + body.len());
    req.push_str("POST / HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    req.into_bytes()
}

/// A node's temporary credentials, with its derived signing keys cached per (day, service).
#[derive(Clone)]
struct Creds {
    key: String,
    secret: String,
    token: String,
    signing: Vec<(String, &'static str, [u8; 32])>,
}

impl Creds {
    fn from_token(v: &Value) -> Result<Creds> {
        let s = |k: &str| v[k].as_str().map(str::to_string).with_context(|| format!("token answer lacks {k}: {v}"));
        Ok(Creds { key: s("AccessKeyId")?, secret: s("SecretAccessKey")?, token: s("SessionToken")?, signing: vec![] })
    }

    fn signing_key(&mut self, day: &str, service: &'static str) -> [u8; 32] {
        if let Some((_, _, k)) = self.signing.iter().find(|(d, s, _)| d == day && *s == service) {
            return *k;
        }
        self.signing.retain(|(d, _, _)| d == day);
        let k = ssmd_sigv4::signing_key(&self.secret, day, REGION, service);
        self.signing.push((day.to_string(), service, k));
        k
    }

    /// A request signed with these credentials (HMAC SigV4 + X-Amz-Security-Token).
    fn request(&mut self, port: u16, service: &'static str, target: &str, body: &str) -> Vec<u8> {
        let date = amz_now();
        let key = self.signing_key(&date[..8], service);
        let mut h = base_headers(port, target, Some(&date));
        h.insert("x-amz-security-token", self.token.parse().expect("header"));
        let auth = ssmd_sigv4::sign_with(&self.key, REGION, service, &date, "POST", "/", &h, body.as_bytes(), |sts| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
            mac.update(sts.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        });
        post(&h, &[("authorization", auth)], body)
    }
}

/// RequestManagedInstanceRoleToken, signed "SigV4 with an RSA key" as the agent does (with the
/// unsigned X-Amz-Content-Sha256 it adds).
fn token_request(port: u16, node: &str, private_key: &str, fingerprint: &str) -> Result<Vec<u8>> {
    let body = json!({ "Fingerprint": fingerprint }).to_string();
    let date = amz_now();
    let h = base_headers(port, "AmazonSSM.RequestManagedInstanceRoleToken", Some(&date));
    let mut err = None;
    let auth = ssmd_sigv4::sign_with(node, REGION, "ssm", &date, "POST", "/", &h, body.as_bytes(), |sts| {
        ssmd_nodeauth::sign_pss(private_key, sts.as_bytes()).unwrap_or_else(|e| {
            err = Some(e);
            String::new()
        })
    });
    if let Some(e) = err {
        bail!("RSA signing failed: {e}");
    }
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    Ok(post(&h, &[("authorization", auth), ("x-amz-content-sha256", sha)], &body))
}

fn body_json(buf: &[u8]) -> Value {
    let start = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(buf.len());
    serde_json::from_slice(&buf[start..]).unwrap_or(Value::Null)
}

/// One exchange that must answer 200; returns the JSON body.
async fn ok(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>, what: &str) -> Result<Value> {
    let status = round_trip(s, req, buf).await.with_context(|| what.to_string())?;
    let v = body_json(buf);
    if status != 200 {
        bail!("{what} failed ({status}): {v}");
    }
    Ok(v)
}

async fn connect(port: u16) -> Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.context("connecting")?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A root-key call on the control connection.
async fn call(s: &mut TcpStream, port: u16, target: &str, body: Value) -> Result<Value> {
    let mut buf = Vec::new();
    ok(s, &signed_request(port, target, &body.to_string()), &mut buf, target).await
}

fn in_progress() -> String {
    json!({"additionalInfo": {"agent": {"name": "ssmd-bench"}}, "documentStatus": "InProgress", "runtimeStatus": null})
        .to_string()
}

fn success(stdout: &str) -> String {
    json!({
        "additionalInfo": {"agent": {"name": "ssmd-bench"}, "runtimeStatusCounts": {"Success": 1}},
        "documentStatus": "Success",
        "documentTraceOutput": "",
        "runtimeStatus": {"aws:runShellScript": {
            "status": "Success", "code": 0, "name": "aws:runShellScript", "output": stdout,
            "standardOutput": stdout, "standardError": ""
        }}
    })
    .to_string()
}

fn get_messages_body(node: &str) -> String {
    json!({"Destination": node, "MessagesRequestId": uuid(), "VisibilityTimeoutInSeconds": 10}).to_string()
}

fn reply_body(message_id: &str, payload: &str) -> String {
    json!({"MessageId": message_id, "ReplyId": uuid(), "Payload": payload}).to_string()
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// What nodes tell the driver.
enum Ev {
    /// Registered, holding credentials, about to start polling.
    Ready {
        idx: usize,
        id: String,
        creds: Creds,
    },
    /// A GetMessages answer carried the message of `command`.
    Delivered {
        idx: usize,
        command: String,
        at: Instant,
    },
    /// The final reply for `command` was accepted.
    Done {
        command: String,
        at: Instant,
    },
    /// A long poll ended empty (15 s passed with nothing for the node).
    Empty,
    Failed(String),
}

struct Fleet {
    port: u16,
    activations: Vec<(String, String)>,
    keys: Vec<ssmd_nodeauth::KeyPair>,
    setup: Semaphore,
    events: mpsc::UnboundedSender<Ev>,
}

async fn node(idx: usize, f: Arc<Fleet>) {
    if let Err(e) = node_life(idx, &f).await {
        let _ = f.events.send(Ev::Failed(format!("node {idx}: {e:#}")));
    }
}

async fn node_life(idx: usize, f: &Fleet) -> Result<()> {
    let port = f.port;
    let permit = f.setup.acquire().await?;
    let mut s = connect(port).await?;
    let mut buf = Vec::with_capacity(8192);
    let (activation, code) = &f.activations[idx / PER_ACTIVATION];
    let keys = &f.keys[idx % f.keys.len()];
    let fingerprint = uuid();
    let body = json!({"ActivationCode": code, "ActivationId": activation, "PublicKey": keys.public_key,
        "PublicKeyType": "Rsa", "Fingerprint": fingerprint})
    .to_string();
    let req = post(&base_headers(port, "AmazonSSM.RegisterManagedInstance", None), &[], &body);
    let v = ok(&mut s, &req, &mut buf, "RegisterManagedInstance").await?;
    let id = v["InstanceId"].as_str().context("no InstanceId")?.to_string();
    let (node_id, private, fp) = (id.clone(), keys.private_key.clone(), fingerprint.clone());
    let req = tokio::task::spawn_blocking(move || token_request(port, &node_id, &private, &fp)).await??;
    let mut creds = Creds::from_token(&ok(&mut s, &req, &mut buf, "RequestManagedInstanceRoleToken").await?)?;
    let ping = json!({"AgentName": "amazon-ssm-agent", "AgentStatus": "Active", "AgentVersion": "3.3.0.0",
        "ComputerName": format!("bench-{idx}"), "IPAddress": "127.0.0.1", "InstanceId": id,
        "PlatformName": "Debian GNU/Linux", "PlatformType": "Linux", "PlatformVersion": "12"})
    .to_string();
    let req = creds.request(port, "ssm", "AmazonSSM.UpdateInstanceInformation", &ping);
    ok(&mut s, &req, &mut buf, "UpdateInstanceInformation").await?;
    drop(permit);
    let _ = f.events.send(Ev::Ready { idx, id: id.clone(), creds: creds.clone() });
    let stdout = format!("hello from {id}\n");
    loop {
        let req = creds.request(port, "ec2messages", &format!("{MDS}.GetMessages"), &get_messages_body(&id));
        let v = ok(&mut s, &req, &mut buf, "GetMessages").await?;
        let at = Instant::now();
        let messages = v["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            let _ = f.events.send(Ev::Empty);
        }
        for m in messages {
            let mid = m["MessageId"].as_str().context("message without MessageId")?.to_string();
            if !m["Topic"].as_str().unwrap_or_default().starts_with("aws.ssm.sendCommand") {
                let req = creds.request(
                    port,
                    "ec2messages",
                    &format!("{MDS}.DeleteMessage"),
                    &json!({"MessageId": mid}).to_string(),
                );
                ok(&mut s, &req, &mut buf, "DeleteMessage").await?;
                continue;
            }
            // aws.ssm.<CommandId>.<InstanceId>
            let command = mid.rsplit('.').nth(1).unwrap_or_default().to_string();
            let _ = f.events.send(Ev::Delivered { idx, command: command.clone(), at });
            let req =
                creds.request(port, "ec2messages", &format!("{MDS}.SendReply"), &reply_body(&mid, &in_progress()));
            ok(&mut s, &req, &mut buf, "SendReply InProgress").await?;
            let ack = json!({ "MessageId": mid }).to_string();
            let req = creds.request(port, "ec2messages", &format!("{MDS}.AcknowledgeMessage"), &ack);
            ok(&mut s, &req, &mut buf, "AcknowledgeMessage").await?;
            let req =
                creds.request(port, "ec2messages", &format!("{MDS}.SendReply"), &reply_body(&mid, &success(&stdout)));
            ok(&mut s, &req, &mut buf, "SendReply Success").await?;
            let _ = f.events.send(Ev::Done { command, at: Instant::now() });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring the server

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = stat.rfind(')').map(|i| &stat[i + 2..]).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(14) + ticks(15)) / clock_ticks()
}

/// (bytes written, write calls) of a process so far, from /proc/<pid>/io.
fn io_written(pid: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    (field("wchar:"), field("syscw:"))
}

/// Seconds the threads of a process have spent runnable but waiting for a CPU (the second
/// field of /proc/<pid>/task/*/schedstat): how much the machine's other work held it back.
fn runqueue_wait_seconds(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .sum::<f64>()
        / 1e9
}

/// Samples a process's VmRSS every 5 ms on a thread of its own until stopped; keeps the peak.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssPeak { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// The server's Prometheus histograms: (metric{labels} without the _sum/_count suffix) →
/// (count, sum seconds).
async fn scrape(port: u16) -> Result<BTreeMap<String, (f64, f64)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = connect(port).await?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (metric, labels) =
            name.split_once('{').map(|(m, l)| (m, format!("{{{l}"))).unwrap_or((name, String::new()));
        if let Some(base) = metric.strip_suffix("_count") {
            out.entry(format!("{base}{labels}")).or_default().0 = value;
        } else if let Some(base) = metric.strip_suffix("_sum") {
            out.entry(format!("{base}{labels}")).or_default().1 = value;
        }
    }
    Ok(out)
}

fn histogram_diff(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> BTreeMap<String, (f64, f64)> {
    after
        .iter()
        .filter_map(|(k, (c, s))| {
            let (c0, s0) = before.get(k).copied().unwrap_or_default();
            (c - c0 > 0.0).then(|| (k.clone(), (c - c0, s - s0)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Rounds

struct Round {
    complete_s: f64,
    confirmed_s: f64,
    send_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_s: f64,
    client_cpu_s: f64,
    peak_rss_kib: u64,
    /// Bytes and write calls the server made during the fan-out.
    written_mib: f64,
    write_calls: f64,
    /// Time the server's threads were runnable but had no CPU, during the fan-out.
    runqueue_s: f64,
    /// Nodes whose final reply had been accepted when the last node got its message.
    finished_before_last_delivery: usize,
    empty_polls: usize,
    floor_a_s: f64,
    floor_a_p99_ms: f64,
    floor_b_s: f64,
    profile: BTreeMap<String, (f64, f64)>,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

/// Floor A: every node makes its four requests (signed with its credentials, bodies shaped like
/// the fan-out's) one after another on a fresh kept-alive connection to the bare floor server,
/// all nodes at once. Returns (wall seconds, p99 of the first exchange in ms).
async fn floor_a(floor_port: u16, nodes: &[(String, Creds)]) -> Result<(f64, f64)> {
    let barrier = Arc::new(Barrier::new(nodes.len() + 1));
    let mut tasks = Vec::new();
    for (id, creds) in nodes.iter().cloned() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut creds = creds;
            let mut s = connect(floor_port).await;
            barrier.wait().await;
            let s = s.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let t = Instant::now();
            let mut buf = Vec::with_capacity(8192);
            let mid = format!("aws.ssm.{}.{id}", uuid());
            let mut first = Duration::ZERO;
            for i in 0..EXCHANGES {
                let (op, body) = match i {
                    0 => ("GetMessages", get_messages_body(&id)),
                    1 => ("SendReply", reply_body(&mid, &in_progress())),
                    2 => ("AcknowledgeMessage", json!({ "MessageId": mid }).to_string()),
                    _ => ("SendReply", reply_body(&mid, &success("hello\n"))),
                };
                let req = creds.request(floor_port, "ec2messages", &format!("{MDS}.{op}"), &body);
                ok(s, &req, &mut buf, "floor").await?;
                if i == 0 {
                    first = t.elapsed();
                }
            }
            anyhow::Ok((first, Instant::now()))
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    let mut firsts = Vec::new();
    let mut last = t0;
    for t in tasks {
        let (first, end) = t.await??;
        firsts.push(first.as_secs_f64() * 1000.0);
        last = last.max(end);
    }
    firsts.sort_by(|a, b| a.total_cmp(b));
    Ok(((last - t0).as_secs_f64(), percentile(&firsts, 0.99)))
}

/// Floor B: every node's four exchanges as durable single-transaction writes to ssmd
/// (AddTagsToResource on the node, root key), on fresh kept-alive connections, all at once.
async fn floor_b(port: u16, nodes: &[(String, Creds)], round: usize) -> Result<f64> {
    let barrier = Arc::new(Barrier::new(nodes.len() + 1));
    let mut tasks = Vec::new();
    for id in nodes.iter().map(|(id, _)| id.clone()) {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(port).await;
            barrier.wait().await;
            let s = s.as_mut().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let mut buf = Vec::with_capacity(4096);
            for k in 0..EXCHANGES {
                let body = json!({"ResourceType": "ManagedInstance", "ResourceId": id,
                    "Tags": [{"Key": format!("bench{k}"), "Value": round.to_string()}]});
                ok(s, &signed_request(port, "AddTagsToResource", &body.to_string()), &mut buf, "AddTagsToResource")
                    .await?;
            }
            anyhow::Ok(Instant::now())
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    let mut last = t0;
    for t in tasks {
        last = last.max(t.await??);
    }
    Ok((last - t0).as_secs_f64())
}

/// How many message pickups the server has served (every long poll takes once when it starts;
/// pickups are batched into fewer store transactions, so those are not the count).
fn pickups(m: &BTreeMap<String, (f64, f64)>) -> f64 {
    m.get("ssmd_message_pickup_seconds").map(|v| v.0).unwrap_or(0.0)
}

/// Waits until the server has served at least `at_least` message pickups, so the polls are held
/// before anything is measured.
async fn wait_takes(port: u16, at_least: f64) -> Result<()> {
    let t = Instant::now();
    loop {
        let m = scrape(port).await?;
        if pickups(&m) >= at_least {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the nodes' long polls did not all reach the server within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads events until `pred` says stop, failing on a node failure or after `limit`.
async fn next_event(rx: &mut mpsc::UnboundedReceiver<Ev>, deadline: Instant) -> Result<Ev> {
    match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
        Ok(Some(Ev::Failed(e))) => bail!("{e}"),
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => bail!("every node stopped"),
        Err(_) => bail!("timed out waiting for the nodes"),
    }
}

struct Server<'a> {
    port: u16,
    pid: u32,
    floor_port: u16,
    nodes: &'a [(String, Creds)],
    /// `perf record` output prefix, when profiling.
    perf: Option<String>,
}

/// `perf record` attached to the server for one fan-out; stopped (SIGINT) by `finish`.
struct Perf(std::process::Child);

impl Perf {
    fn start(pid: u32, out: &str) -> Result<Perf> {
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-F", "999", "--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o", out])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting perf record")?;
        Ok(Perf(child))
    }

    fn finish(mut self) {
        // SAFETY: signals the perf process this tool started, by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

async fn fan_out(sv: &Server<'_>, rx: &mut mpsc::UnboundedReceiver<Ev>, round: usize) -> Result<Round> {
    let n = sv.nodes.len();
    let (floor_a_s, floor_a_p99_ms) = floor_a(sv.floor_port, sv.nodes).await?;
    let floor_b_s = floor_b(sv.port, sv.nodes, round).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut empty_polls = 0;
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Ev::Failed(e) => bail!("{e}"),
            Ev::Empty => {}
            _ => bail!("an event arrived between rounds"),
        }
    }
    let perf = match &sv.perf {
        Some(prefix) => {
            let p = Perf::start(sv.pid, &format!("{prefix}.{round}"))?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Some(p)
        }
        None => None,
    };
    // A fresh control connection: the server drops connections idle for 30 s.
    let ctl = &mut connect(sv.port).await?;
    let before = scrape(sv.port).await?;
    let pid = sv.pid.to_string();
    let (cpu0, client0) = (cpu_seconds(&pid), cpu_seconds("self"));
    let (io0, wait0) = (io_written(&pid), runqueue_wait_seconds(&pid));
    let rss = RssPeak::start(sv.pid);
    let body = json!({"DocumentName": "AWS-RunShellScript", "Targets": [{"Key": "InstanceIds", "Values": ["*"]}],
        "MaxConcurrency": "100%", "Parameters": {"commands": [format!("echo round {round}")]},
        "Comment": format!("ssmd-bench nodes round {round}")});
    let t0 = Instant::now();
    let v = call(ctl, sv.port, "SendCommand", body).await?;
    let send_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let id = v["Command"]["CommandId"].as_str().context("SendCommand answered no CommandId")?.to_string();
    if v["Command"]["TargetCount"].as_u64() != Some(n as u64) {
        bail!("SendCommand targeted {} nodes, not {n}", v["Command"]["TargetCount"]);
    }
    let mut delivered: Vec<Option<f64>> = vec![None; n];
    let mut done = 0;
    let mut done_ms = Vec::with_capacity(n);
    let mut last = t0;
    let deadline = t0 + Duration::from_secs(300);
    while done < n {
        match next_event(rx, deadline).await? {
            Ev::Delivered { idx, command, at } if command == id => {
                delivered[idx].get_or_insert((at - t0).as_secs_f64() * 1000.0);
            }
            Ev::Done { command, at } if command == id => {
                done += 1;
                done_ms.push((at - t0).as_secs_f64() * 1000.0);
                last = last.max(at);
            }
            Ev::Empty => empty_polls += 1,
            Ev::Delivered { command, .. } | Ev::Done { command, .. } => bail!("a message of command {command} arrived"),
            Ev::Ready { .. } | Ev::Failed(_) => bail!("unexpected node event"),
        }
    }
    let complete_s = (last - t0).as_secs_f64();
    let (cpu_s, client_cpu_s) = (cpu_seconds(&pid) - cpu0, cpu_seconds("self") - client0);
    let (io1, runqueue_s) = (io_written(&pid), runqueue_wait_seconds(&pid) - wait0);
    let peak_rss_kib = rss.finish();
    if let Some(p) = perf {
        p.finish();
    }
    let after = scrape(sv.port).await?;
    let c = call(ctl, sv.port, "ListCommands", json!({ "CommandId": id })).await?;
    let confirmed_s = t0.elapsed().as_secs_f64();
    let cmd = &c["Commands"][0];
    if cmd["Status"] != "Success" || cmd["CompletedCount"].as_u64() != Some(n as u64) {
        bail!("command {id} is not Success with CompletedCount {n}: {cmd}");
    }
    let mut lat: Vec<f64> =
        delivered.iter().map(|d| d.context("a node never got the message")).collect::<Result<_>>()?;
    lat.sort_by(|a, b| a.total_cmp(b));
    let last_delivery = lat.last().copied().unwrap_or(0.0);
    let finished_before_last_delivery = done_ms.iter().filter(|d| **d <= last_delivery).count();
    // Every node polls again; let those polls reach the server before the next round.
    wait_takes(sv.port, pickups(&before) + 2.0 * n as f64).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Round {
        complete_s,
        confirmed_s,
        send_ms,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: *lat.last().unwrap_or(&0.0),
        cpu_s,
        client_cpu_s,
        peak_rss_kib,
        written_mib: (io1.0 - io0.0) / 1048576.0,
        write_calls: io1.1 - io0.1,
        runqueue_s,
        finished_before_last_delivery,
        empty_polls,
        floor_a_s,
        floor_a_p99_ms,
        floor_b_s,
        profile: histogram_diff(&before, &after),
    })
}

fn median_of(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    let mut v: Vec<f64> = rounds.iter().map(f).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Raises the soft open-file limit to the hard one (children inherit it) and checks it fits.
fn raise_nofile(needed: u64) -> Result<()> {
    // SAFETY: getrlimit/setrlimit write to / read from a valid rlimit struct.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            bail!("getrlimit failed");
        }
        if l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        }
        if l.rlim_cur < needed {
            bail!(
                "the open-file limit is {} but {needed} are needed: raise it (ulimit -n) or use fewer --nodes",
                l.rlim_cur
            );
        }
    }
    Ok(())
}

async fn activations(ctl: &mut TcpStream, port: u16, n: usize) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let limit = left.min(PER_ACTIVATION);
        let v = call(
            ctl,
            port,
            "CreateActivation",
            json!({"IamRole": "SSMServiceRole", "RegistrationLimit": limit, "DefaultInstanceName": "bench"}),
        )
        .await?;
        let s = |k: &str| v[k].as_str().map(str::to_string).context("CreateActivation answer");
        out.push((s("ActivationId")?, s("ActivationCode")?));
        left -= limit;
    }
    Ok(out)
}

fn generate_keys(n: usize) -> Result<Vec<ssmd_nodeauth::KeyPair>> {
    let threads: Vec<_> = (0..n).map(|_| std::thread::spawn(ssmd_nodeauth::generate_key_pair)).collect();
    threads
        .into_iter()
        .map(|t| t.join().map_err(|_| anyhow::anyhow!("key generation panicked"))?.map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

/// Everything for one backend; prints its rows.
fn bench_backend(o: &Opts, no: &NodeOpts, label: &str, db: Option<&str>, floor_port: u16) -> Result<Vec<String>> {
    let dir = std::env::temp_dir().join(format!("ssmd-bench-nodes-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = spawn(ssmd_cmd(o, &dir, db))?;
    let (port, pid) = (server.port, server.child.id());
    std::thread::sleep(Duration::from_millis(300));
    let idle_kib = rss_kib(pid);
    let n = no.nodes;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = rt.block_on(async {
        let t = Instant::now();
        let keys = tokio::task::spawn_blocking(move || generate_keys(KEY_PAIRS.min(n))).await??;
        let keygen_s = t.elapsed().as_secs_f64();
        let acts = activations(&mut connect(port).await?, port, n).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fleet = Arc::new(Fleet {
            port,
            activations: acts,
            keys,
            setup: Semaphore::new(SETUP_CONCURRENCY),
            events: tx,
        });
        let takes0 = pickups(&scrape(port).await?);
        let t = Instant::now();
        for idx in 0..n {
            tokio::spawn(node(idx, fleet.clone()));
        }
        let mut nodes: Vec<Option<(String, Creds)>> = vec![None; n];
        let mut ready = 0;
        while ready < n {
            if let Ev::Ready { idx, id, creds } = next_event(&mut rx, Instant::now() + Duration::from_secs(300)).await? {
                nodes[idx] = Some((id, creds));
                ready += 1;
            }
        }
        let setup_s = t.elapsed().as_secs_f64();
        wait_takes(port, takes0 + n as f64).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let polls_kib = rss_kib(pid);
        let nodes: Vec<(String, Creds)> = nodes.into_iter().flatten().collect();
        let perf = no.perf.as_ref().map(|p| format!("{p}.{label}"));
        let sv = Server { port, pid, floor_port, nodes: &nodes, perf };
        let mut rounds = Vec::new();
        for r in 0..o.rounds {
            let x = fan_out(&sv, &mut rx, r).await?;
            eprintln!(
                "{label} round {}: complete {:.3} s (confirmed {:.3} s), SendCommand {:.0} ms, delivery p50 {:.0} / p99 {:.0} / max {:.0} ms, server CPU {:.2} s, client CPU {:.2} s, peak RSS {:.1} MiB, wrote {:.1} MiB in {:.0} calls, run-queue wait {:.2} s, {} nodes done before the last delivery, floor A {:.3} s (p99 {:.0} ms), floor B {:.3} s, empty polls {}",
                r + 1, x.complete_s, x.confirmed_s, x.send_ms, x.p50_ms, x.p99_ms, x.max_ms, x.cpu_s, x.client_cpu_s,
                mib(x.peak_rss_kib), x.written_mib, x.write_calls, x.runqueue_s, x.finished_before_last_delivery,
                x.floor_a_s, x.floor_a_p99_ms, x.floor_b_s, x.empty_polls
            );
            rounds.push(x);
        }
        anyhow::Ok((keygen_s, setup_s, polls_kib, rounds))
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    let (keygen_s, setup_s, polls_kib, rounds) = result?;
    let m = |f: fn(&Round) -> f64| median_of(&rounds, f);
    let complete = m(|r| r.complete_s);
    let p99 = m(|r| r.p99_ms);
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    let r = o.rounds;
    let mut rows = vec![
        format!(
            "| {label} | setup: {n} nodes register, get credentials (RSA-signed) and ping, 64 at a time | {setup_s:.1} s ({:.0} nodes/s; {KEY_PAIRS} key pairs generated in {keygen_s:.1} s) | |",
            n as f64 / setup_s
        ),
        format!(
            "| {label} | SendCommand → last final reply accepted, {n} nodes (median of {r}) | **{complete:.2} s** (ListCommands confirms Success at {:.2} s) | < 5 s — {} |",
            m(|r| r.confirmed_s),
            met(complete < 5.0)
        ),
        format!(
            "| {label} | delivery latency SendCommand → node's GetMessages answered, p50 / p99 / max | {:.0} / **{p99:.0}** / {:.0} ms | p99 < 200 ms — {} |",
            m(|r| r.p50_ms),
            m(|r| r.max_ms),
            met(p99 < 200.0)
        ),
        format!("| {label} | the SendCommand call itself ({n} invocations stored) | {:.0} ms | |", m(|r| r.send_ms)),
        format!(
            "| {label} | server CPU during the fan-out | {:.2} s ({:.2} ms per node; {:.2} s runnable without a CPU) | client CPU {:.2} s |",
            m(|r| r.cpu_s),
            m(|r| r.cpu_s) * 1000.0 / n as f64,
            m(|r| r.runqueue_s),
            m(|r| r.client_cpu_s)
        ),
        format!(
            "| {label} | server writes during the fan-out (/proc/<pid>/io) | {:.1} MiB in {:.0} write calls ({:.1} KiB per node) | |",
            m(|r| r.written_mib),
            m(|r| r.write_calls),
            m(|r| r.written_mib) * 1024.0 / n as f64
        ),
        format!(
            "| {label} | server RSS idle / with {n} long polls held / peak during fan-out | {:.1} / {:.1} / {:.1} MiB | |",
            mib(idle_kib),
            mib(polls_kib),
            m(|r| r.peak_rss_kib as f64) / 1024.0
        ),
        format!(
            "| {label} | floor A: {n} nodes × {EXCHANGES} signed requests against the bare floor server | {:.3} s (first-exchange p99 {:.0} ms) | fan-out ÷ floor A = {:.1} |",
            m(|r| r.floor_a_s),
            m(|r| r.floor_a_p99_ms),
            complete / m(|r| r.floor_a_s)
        ),
        format!(
            "| {label} | floor B: {n} connections × {EXCHANGES} AddTagsToResource (durable writes) against ssmd | {:.3} s | fan-out ÷ floor B = {:.2} |",
            m(|r| r.floor_b_s),
            complete / m(|r| r.floor_b_s)
        ),
    ];
    let empties: usize = rounds.iter().map(|r| r.empty_polls).sum();
    if empties > 0 {
        rows.push(format!(
            "| {label} | long polls that ended empty (15 s) during the fan-outs, all rounds | {empties} | noise: each re-poll is a write |"
        ));
    }
    // Where the server's time went, averaged over the rounds.
    let mut profile: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for r in &rounds {
        for (k, (c, s)) in &r.profile {
            let e = profile.entry(k.clone()).or_default();
            e.0 += c / rounds.len() as f64;
            e.1 += s / rounds.len() as f64;
        }
    }
    let mut notes = vec![format!("{label}: server time during one fan-out (mean of {r} rounds, from its /metrics):")];
    for (k, (c, s)) in &profile {
        if k.starts_with("ssmd_store_seconds") || k.starts_with("ssmd_request_seconds") {
            notes.push(format!("  {k}: {c:.0} calls, {s:.3} s total, {:.3} ms each", s * 1000.0 / c));
        }
    }
    drop(server);
    if no.keep {
        notes.push(format!("{label}: data directory kept: {}", dir.display()));
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    for row in &rows {
        println!("{row}");
    }
    Ok(notes)
}

pub fn run(args: &[String]) -> Result<()> {
    let (o, no) = split_opts(args)?;
    if o.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    // Node connections, floor connections, and the server's side of both.
    raise_nofile(2 * no.nodes as u64 + 256)?;
    let exe = std::env::current_exe()?;
    let floor = spawn({
        let mut c = std::process::Command::new(&exe);
        c.arg("floor-server");
        c
    })?;
    let mut backends: Vec<(&str, Option<String>)> = Vec::new();
    if no.sqlite {
        backends.push(("sqlite", None));
    }
    if let Some(base) = &o.pg {
        backends.push(("postgres", Some(fresh_pg(base)?)));
    }
    println!("| backend | figure | value | target / floor |");
    println!("|---|---|---|---|");
    let mut notes = Vec::new();
    for (label, db) in &backends {
        notes.extend(bench_backend(&o, &no, label, db.as_deref(), floor.port)?);
    }
    drop(floor);
    if let Some(base) = &o.pg {
        crate::drop_pg(base);
    }
    if no.with_agent {
        notes.extend(agent_figures(&o, &no.agent)?);
    }
    println!();
    for n in notes {
        println!("{n}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The real agent

/// `ssmd-bench agent`: only the agent's figures, against a SQLite server of its own.
pub fn agent(args: &[String]) -> Result<()> {
    let (o, no) = split_opts(args)?;
    for n in agent_figures(&o, &no.agent)? {
        println!("{n}");
    }
    Ok(())
}

/// The agent binary's size, and the RSS of one `ssmd-agent run` registered against a fresh
/// SQLite server: idle after 5 s, then after it ran one command.
fn agent_figures(o: &Opts, agent: &str) -> Result<Vec<String>> {
    let path = Path::new(agent);
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(vec![format!(
            "- agent: {agent} not found (build it with cargo build --release -p ssmd-agent); skipped"
        )]);
    };
    let mut notes = Vec::new();
    let stripped = std::env::temp_dir().join(format!("ssmd-bench-agent-stripped-{}", std::process::id()));
    let stripped_size = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(path)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&stripped);
    notes.push(format!(
        "- agent binary {agent}: {:.2} MiB{}",
        meta.len() as f64 / 1048576.0,
        stripped_size.map(|s| format!(" ({:.2} MiB stripped)", s as f64 / 1048576.0)).unwrap_or_default()
    ));
    let dir = std::env::temp_dir().join(format!("ssmd-bench-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = spawn(ssmd_cmd(o, &dir.join("server"), None))?;
    let port = server.port;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut ctl = rt.block_on(connect(port))?;
    let (id, code) = rt.block_on(activations(&mut ctl, port, 1))?.remove(0);
    let state = dir.join("agent");
    let out = std::process::Command::new(path)
        .args(["register", "--endpoint", &format!("http://127.0.0.1:{port}"), "--code", &code, "--id", &id])
        .args(["--region", REGION, "--state-dir"])
        .arg(&state)
        .output()
        .context("running ssmd-agent register")?;
    if !out.status.success() {
        bail!("ssmd-agent register failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let instance = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let child = std::process::Command::new(path)
        .args(["run", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting ssmd-agent run")?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(child.0.id());
    let (secs, after) = rt.block_on(async {
        let t = Instant::now();
        let v = call(
            &mut ctl,
            port,
            "SendCommand",
            json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [instance],
                "Parameters": {"commands": ["echo hello from ssmd-agent"]}}),
        )
        .await?;
        let cmd = v["Command"]["CommandId"].as_str().context("no CommandId")?.to_string();
        loop {
            let c = call(&mut ctl, port, "ListCommands", json!({ "CommandId": cmd })).await?;
            match c["Commands"][0]["Status"].as_str() {
                Some("Success") => break,
                Some("Pending" | "InProgress") if t.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => bail!("the agent's command ended {other:?}: {c}"),
            }
        }
        anyhow::Ok((t.elapsed().as_secs_f64(), rss_kib(child.0.id())))
    })?;
    notes.push(format!(
        "- ssmd-agent run ({instance}): idle RSS {:.1} MiB after 5 s; one `echo` command SendCommand → Success in {:.0} ms (polled every 10 ms); RSS after it {:.1} MiB",
        mib(idle),
        secs * 1000.0,
        mib(after)
    ));
    drop(child);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(notes)
}
