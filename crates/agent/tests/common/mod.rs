//! Test support: a tiny HTTP/1.1 server on loopback that plays ssmd's node-facing API — it
//! registers nodes, checks the RSA signature of token requests and the HMAC signature (and
//! signing service) of every other call, long-polls a message queue, and records every request.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `X-Amz-Target`.
    pub target: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The operation (after the dot).
    pub fn op(&self) -> &str {
        self.target.rsplit('.').next().unwrap_or("")
    }
    fn header_map(&self) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
                h.append(n, v);
            }
        }
        h
    }
}

/// Epoch seconds now, shifted by `offset`.
pub fn now_secs(offset: i64) -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + offset
}

/// An HTTP date (`Mon, 23 Nov 2026 06:00:00 GMT`) for epoch seconds.
pub fn http_date(secs: i64) -> String {
    let a = ssmd_sigv4::format_amz_date(secs);
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let m: usize = a[4..6].parse().unwrap();
    format!(
        "{}, {} {} {} {}:{}:{} GMT",
        days[secs.div_euclid(86400).rem_euclid(7) as usize],
        &a[6..8],
        months[m - 1],
        &a[0..4],
        &a[9..11],
        &a[11..13],
        &a[13..15]
    )
}

/// A handler: a request to (status, JSON body).
pub type Handler = Arc<dyn Fn(&Request) -> (u16, Value) + Send + Sync>;

/// The server.
pub struct Server {
    /// Its port.
    pub port: u16,
    log: Arc<(Mutex<Vec<Request>>, Condvar)>,
    stopped: Arc<AtomicBool>,
    clock_offset: Arc<AtomicI64>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; n];
        r.read_exact(&mut body).ok()?;
    }
    Some(Request { target: get("x-amz-target").unwrap_or_default(), headers, body, at: Instant::now() })
}

impl Server {
    /// Starts a server on a free port.
    pub fn start(handler: Handler) -> Server {
        Server::start_on(0, handler)
    }

    /// Starts a server on `port` (0: any).
    pub fn start_on(port: u16, handler: Handler) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let port = listener.local_addr().unwrap().port();
        let log: Arc<(Mutex<Vec<Request>>, Condvar)> = Arc::default();
        let stopped = Arc::new(AtomicBool::new(false));
        let clock_offset = Arc::new(AtomicI64::new(0));
        let (l, s, c) = (log.clone(), stopped.clone(), clock_offset.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let (l, h, s, c) = (l.clone(), handler.clone(), s.clone(), c.clone());
                std::thread::spawn(move || {
                    let mut w = stream.try_clone().unwrap();
                    let mut r = BufReader::new(stream);
                    while let Some(req) = read_request(&mut r) {
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        let (status, body) = h(&req);
                        {
                            let (m, cv) = &*l;
                            m.lock().unwrap().push(req);
                            cv.notify_all();
                        }
                        let body = body.to_string();
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ndate: {}\r\ncontent-length: {}\r\n\r\n{body}",
                            http_date(now_secs(c.load(Ordering::SeqCst))),
                            body.len()
                        );
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Server { port, log, stopped, clock_offset }
    }

    /// Shifts the clock of the `Date` header by `secs`.
    pub fn set_clock_offset(&self, secs: i64) {
        self.clock_offset.store(secs, Ordering::SeqCst);
    }

    /// The endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.0.lock().unwrap().clone()
    }

    /// Requests of operation `op` so far.
    pub fn calls(&self, op: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.op() == op).collect()
    }

    /// Waits up to `timeout` for a request matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Request) -> bool) -> Option<Request> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.log;
        let mut log = m.lock().unwrap();
        loop {
            if let Some(r) = log.iter().find(|r| pred(r)) {
                return Some(r.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            log = cv.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Stops answering (connections already open are dropped at their next request).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn error(status: u16, kind: &str, message: &str) -> (u16, Value) {
    (status, json!({"__type": kind, "message": message}))
}

/// The fake service's state.
#[derive(Default)]
pub struct Ssm {
    /// Registered node: (instance id, public key, fingerprint).
    pub node: Mutex<Option<(String, String, String)>>,
    /// Issued credentials: (key, secret, token).
    pub creds: Mutex<Vec<(String, String, String)>>,
    /// Messages to deliver.
    pub queue: Mutex<VecDeque<Value>>,
    /// Answer SendReply with 503 while set.
    pub replies_down: AtomicBool,
    /// Token lifetime, seconds.
    pub token_secs: AtomicUsize,
    /// The service's clock minus the real one, seconds (signatures are checked against it).
    pub clock_offset: AtomicI64,
    /// Answer the next token request with `UpdateKeyPair: true`.
    pub rotate_next: AtomicBool,
    /// Credentials issued so far.
    pub issued: AtomicUsize,
    /// Signature failures seen.
    pub bad_signatures: Mutex<Vec<String>>,
}

/// The instance id the fake service hands out.
pub const INSTANCE_ID: &str = "mi-0123456789abcdef0";
/// The activation code it accepts.
pub const CODE: &str = "ABCDEFGHIJKLMNOPQRSTUVWX";
/// The activation id it accepts.
pub const ACTIVATION_ID: &str = "01234567-89ab-cdef-0123-456789abcdef";

impl Ssm {
    /// A service with a one-hour token lifetime.
    pub fn new() -> Arc<Ssm> {
        let s = Ssm::default();
        s.token_secs.store(3600, Ordering::SeqCst);
        Arc::new(s)
    }

    /// Queues a message for delivery.
    pub fn deliver(&self, m: Value) {
        self.queue.lock().unwrap().push_back(m);
    }

    /// A handler playing the service.
    pub fn handler(self: &Arc<Self>) -> Handler {
        let me = self.clone();
        Arc::new(move |r: &Request| me.handle(r))
    }

    fn check_rsa(&self, r: &Request) -> Result<(), String> {
        let h = r.header_map();
        let a = ssmd_sigv4::parse(&h).map_err(|e| e.message)?;
        let node = self.node.lock().unwrap().clone().ok_or("no node")?;
        ssmd_sigv4::check_time(&a, now_secs(self.clock_offset.load(Ordering::SeqCst))).map_err(|e| e.message)?;
        if a.access_key_id != node.0 || a.service != "ssm" {
            return Err(format!("wrong key id or service: {} {}", a.access_key_id, a.service));
        }
        ssmd_sigv4::check_content_sha256(&h, &r.body).map_err(|e| e.message)?;
        let sts = ssmd_sigv4::string_to_sign(&a, "POST", "/", "", &h, &r.body);
        ssmd_nodeauth::verify_pss(&node.1, sts.as_bytes(), &a.signature).map_err(|e| e.to_string())
    }

    fn check_hmac(&self, r: &Request) -> Result<(), (u16, Value)> {
        let h = r.header_map();
        let a = ssmd_sigv4::parse(&h).map_err(|e| error(403, "IncompleteSignatureException", &e.message))?;
        ssmd_sigv4::check_time(&a, now_secs(self.clock_offset.load(Ordering::SeqCst)))
            .map_err(|e| error(400, "InvalidSignatureException", &e.message))?;
        let want_service =
            if r.target.starts_with("EC2WindowsMessageDeliveryService.") { "ec2messages" } else { "ssm" };
        let creds = self.creds.lock().unwrap().clone();
        let Some((_, secret, token)) = creds.iter().find(|c| c.0 == a.access_key_id) else {
            return Err(error(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        };
        if a.security_token.as_deref() != Some(token.as_str()) {
            return Err(error(400, "UnrecognizedClientException", "wrong session token"));
        }
        if a.service != want_service {
            self.bad_signatures.lock().unwrap().push(format!("{} signed for {}", r.target, a.service));
            return Err(error(400, "InvalidSignatureException", "Credential should be scoped to correct service"));
        }
        let key = ssmd_sigv4::signing_key(secret, &a.date, &a.region, &a.service);
        ssmd_sigv4::verify(&a, &key, "POST", "/", "", &h, &r.body).map_err(|e| {
            self.bad_signatures.lock().unwrap().push(format!("{}: {}", r.target, e.message));
            error(400, "InvalidSignatureException", &e.message)
        })
    }

    fn handle(&self, r: &Request) -> (u16, Value) {
        let b = r.json();
        match r.op() {
            "RegisterManagedInstance" => {
                if b["ActivationCode"] != CODE || b["ActivationId"] != ACTIVATION_ID {
                    return error(400, "InvalidActivation", "Not existing activation ID or activation code");
                }
                let key = b["PublicKey"].as_str().unwrap_or("");
                if key.len() != 392 || b["PublicKeyType"] != "Rsa" || ssmd_nodeauth::check_public_key(key).is_err() {
                    return error(400, "InvalidParameters", "bad key");
                }
                let fp = b["Fingerprint"].as_str().unwrap_or("").to_string();
                *self.node.lock().unwrap() = Some((INSTANCE_ID.into(), key.into(), fp));
                (200, json!({"InstanceId": INSTANCE_ID}))
            }
            "RequestManagedInstanceRoleToken" => {
                if let Err(e) = self.check_rsa(r) {
                    self.bad_signatures.lock().unwrap().push(format!("token: {e}"));
                    return error(400, "InvalidSignatureException", &e);
                }
                let fp = self.node.lock().unwrap().as_ref().map(|n| n.2.clone()).unwrap_or_default();
                if b["Fingerprint"] != fp.as_str() {
                    return error(400, "MachineFingerprintDoesNotMatch", "fingerprint");
                }
                let n = self.issued.fetch_add(1, Ordering::SeqCst);
                let c = (format!("ASIATEST{n}"), format!("secret{n}"), format!("token{n}"));
                self.creds.lock().unwrap().push(c.clone());
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let exp = now + self.token_secs.load(Ordering::SeqCst) as u64;
                let rotate = self.rotate_next.swap(false, Ordering::SeqCst);
                (
                    200,
                    json!({"AccessKeyId": c.0, "SecretAccessKey": c.1, "SessionToken": c.2,
                    "TokenExpirationDate": exp, "UpdateKeyPair": rotate}),
                )
            }
            "UpdateManagedInstancePublicKey" => {
                if let Err(e) = self.check_rsa(r) {
                    self.bad_signatures.lock().unwrap().push(format!("rotation: {e}"));
                    return error(400, "InvalidSignatureException", &e);
                }
                let key = b["NewPublicKey"].as_str().unwrap_or("").to_string();
                if ssmd_nodeauth::check_public_key(&key).is_err() || b["NewPublicKeyType"] != "Rsa" {
                    return error(400, "InvalidParameters", "bad key");
                }
                if let Some(n) = self.node.lock().unwrap().as_mut() {
                    n.1 = key;
                }
                (200, json!({}))
            }
            op => {
                if let Err(e) = self.check_hmac(r) {
                    return e;
                }
                match op {
                    "GetMessages" => {
                        let deadline = Instant::now() + Duration::from_millis(300);
                        loop {
                            if let Some(m) = self.queue.lock().unwrap().pop_front() {
                                return (
                                    200,
                                    json!({"Destination": b["Destination"], "MessagesRequestId":
                                    b["MessagesRequestId"], "Messages": [m]}),
                                );
                            }
                            if Instant::now() >= deadline {
                                return (
                                    200,
                                    json!({"Destination": b["Destination"], "MessagesRequestId":
                                    b["MessagesRequestId"], "Messages": []}),
                                );
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    // One SecureString, `/db/pw`, for `{{ssm-secure:…}}` references.
                    "GetParameters" => {
                        let decrypt = b["WithDecryption"] == true;
                        let (mut found, mut invalid) = (Vec::new(), Vec::new());
                        for n in b["Names"].as_array().into_iter().flatten() {
                            if n == "/db/pw" {
                                let value = if decrypt { "s3cret-value" } else { "AQICAHsealed" };
                                found.push(json!({"Name": "/db/pw", "Type": "SecureString", "Value": value}));
                            } else {
                                invalid.push(n.clone());
                            }
                        }
                        (200, json!({"Parameters": found, "InvalidParameters": invalid}))
                    }
                    "SendReply" if self.replies_down.load(Ordering::SeqCst) => {
                        error(503, "InternalServerError", "down")
                    }
                    _ => (200, json!({})),
                }
            }
        }
    }
}

/// A `aws.ssm.sendCommand` message for `document` with `parameters`.
pub fn send_command(command_id: &str, document: Value, parameters: Value) -> Value {
    let payload = json!({"Parameters": parameters, "DocumentContent": document, "CommandId": command_id,
        "DocumentName": "AWS-RunShellScript", "OutputS3KeyPrefix": "", "OutputS3BucketName": "",
        "CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": "false"});
    json!({"CreatedDate": "2026-11-23T06:00:00.000Z", "Destination": INSTANCE_ID,
        "MessageId": format!("aws.ssm.{command_id}.{INSTANCE_ID}"), "Payload": payload.to_string(),
        "PayloadDigest": "", "Topic": "aws.ssm.sendCommand.test"})
}

/// A `aws.ssm.cancelCommand` message for `command_id`.
pub fn cancel_command(cancel_id: &str, command_id: &str) -> Value {
    let payload = json!({"CancelMessageId": format!("aws.ssm.{command_id}.{INSTANCE_ID}")});
    json!({"CreatedDate": "2026-11-23T06:00:00.000Z", "Destination": INSTANCE_ID,
        "MessageId": format!("aws.ssm.{cancel_id}.{INSTANCE_ID}"), "Payload": payload.to_string(),
        "PayloadDigest": "", "Topic": "aws.ssm.cancelCommand.test"})
}

/// AWS-RunShellScript's content (schema 1.2).
pub fn run_shell_script() -> Value {
    json!({"schemaVersion": "1.2", "description": "Run a shell script.",
      "parameters": {
        "commands": {"type": "StringList"},
        "workingDirectory": {"type": "String", "default": ""},
        "executionTimeout": {"type": "String", "default": "3600"}},
      "runtimeConfig": {"aws:runShellScript": {"properties": [{"id": "0.aws:runShellScript",
        "runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}",
        "timeoutSeconds": "{{ executionTimeout }}"}]}}})
}

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ssmd-agent-{tag}-{}", ssmd_agent::ids::uuid_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The payload of a SendReply request.
pub fn reply_payload(r: &Request) -> Value {
    serde_json::from_str(r.json()["Payload"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}
