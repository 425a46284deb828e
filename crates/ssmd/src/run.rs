//! `ssmd automation run`: the local runbook runner. It runs a runbook file on a throw-away ssmd
//! (an SQLite database in a temporary directory, the real Automation engine, no server), prints
//! every step as its status changes, answers approvals, pauses and Interactive-mode step choices
//! at the prompt or from flags, and exits with the execution's outcome.
//!
//! Everything goes through `Service::call` as a fixed local caller, exactly as a client of
//! `ssmd serve` would, so a runbook behaves here as it will on the server.
//!
//! Exit codes: 0 the execution succeeded; 1 it failed, timed out or was cancelled; 2 the runbook,
//! a `--document`, a parameter or a flag is invalid; 3 the execution waits for an answer the
//! runner cannot give (no terminal and no flag, or the caller is not an approver); 124 `--timeout`
//! ran out; 130 interrupted (Ctrl-C; 143 for SIGTERM).

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use ssmd_api::Service;
use ssmd_core::automation::execution::status;
use ssmd_core::{Clock, SystemClock};
use ssmd_model::{ApiError, Caller, ErrorCode, Operation};
use ssmd_store::Store;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The account the runner acts as.
const ACCOUNT: &str = "123456789012";
/// The caller's ARN unless `--approver-arn` says otherwise.
const ROOT_ARN: &str = "arn:aws:iam::123456789012:root";
/// How often the execution is read.
const POLL: Duration = Duration::from_millis(100);
/// Values one `ParentExecutionId` filter may carry.
const FILTER_VALUES: usize = 10;

/// Exit code: the execution succeeded.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit code: the execution failed, timed out or was cancelled (or the runner failed).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: invalid runbook, document, parameter or flag.
pub const EXIT_INVALID: i32 = 2;
/// Exit code: the execution waits for an answer the runner cannot give.
pub const EXIT_UNANSWERED: i32 = 3;
/// Exit code: `--timeout` ran out.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code: stopped by SIGTERM.
pub const EXIT_TERMINATED: i32 = 143;

#[derive(Subcommand)]
pub enum AutomationCommand {
    /// Run a runbook file locally with the Automation engine (no server, a throw-away database),
    /// showing each step as it runs.
    #[command(long_about = "Runs a runbook file locally with ssmd's Automation engine, on a throw-away database and \
                            without a server, printing every step as its status changes. Approvals and pauses are \
                            answered at the prompt, or by --approve/--reject/--resume. Exit codes: 0 success; 1 the \
                            execution failed, timed out or was cancelled; 2 invalid runbook, document, parameter or \
                            flag; 3 the execution waits for an answer that cannot be given (no terminal, not an \
                            approver); 124 --timeout ran out; 130 interrupted.")]
    Run(RunArgs),
}

/// How the execution runs.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Steps run one after another.
    #[value(name = "Auto")]
    Auto,
    /// The runner asks which step to start next.
    #[value(name = "Interactive")]
    Interactive,
}

#[derive(Args)]
pub struct RunArgs {
    /// The runbook file: YAML, or JSON (by a .json extension, or content that parses as JSON).
    pub file: PathBuf,
    /// A runbook parameter; give a NAME several times for a list (each VALUE is one item).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Registers another runbook under NAME, for aws:executeAutomation steps to call.
    #[arg(long = "document", value_name = "NAME=FILE")]
    pub documents: Vec<String>,
    /// Execution mode (Interactive asks at the terminal which step to start next).
    #[arg(long, value_enum, ignore_case = true, default_value = "Auto")]
    pub mode: Mode,
    /// Approve every aws:approve step without asking.
    #[arg(long, conflicts_with = "reject")]
    pub approve: bool,
    /// Reject every aws:approve step without asking.
    #[arg(long)]
    pub reject: bool,
    /// Resume every aws:pause step without asking.
    #[arg(long)]
    pub resume: bool,
    /// The caller's ARN, for the execution and its signals (default: the account root). Give it
    /// several times to approve as several approvers (for MinRequiredApprovals above 1).
    #[arg(long = "approver-arn", value_name = "ARN")]
    pub approver_arns: Vec<String>,
    /// The Region the runner acts in.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Python interpreter for aws:executeScript steps.
    #[arg(long, env = "SSMD_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Cancel the execution and exit with 124 when it runs longer than this.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Keep the database in DIR (ssmd.db; `ssmd serve --data-dir DIR` serves it) instead of a
    /// temporary directory removed at exit.
    #[arg(long, value_name = "DIR")]
    pub keep_data: Option<PathBuf>,
}

/// A reason to stop before or outside the execution, with its exit code.
struct Fail {
    code: i32,
    message: String,
}

impl Fail {
    fn new(code: i32, message: impl Into<String>) -> Fail {
        Fail { code, message: message.into() }
    }

    fn invalid(message: impl Into<String>) -> Fail {
        Fail::new(EXIT_INVALID, message)
    }
}

/// An API error as the user should read it (internal errors with their detail: this is local).
fn describe(e: &ApiError) -> String {
    match e.internal_detail() {
        Some(d) => format!("{} ({}: {d})", e.message(), e.code().name()),
        None => format!("{} ({})", e.message(), e.code().name()),
    }
}

/// Runs `ssmd automation run` and returns the process exit code.
pub async fn run(args: RunArgs) -> i32 {
    init_logging();
    let out = Printer { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() };
    let (dir, temporary) = match &args.keep_data {
        Some(d) => (d.clone(), false),
        None => (temp_dir(), true),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: creating {}: {e}", dir.display());
        return EXIT_FAILED;
    }
    let code = session(&args, &dir, &out).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("The database is kept in {} (`ssmd serve --data-dir {}` serves it).", dir.display(), dir.display());
    }
    code
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SSMD_LOG").unwrap_or_else(|_| "warn,sqlx=warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("ssmd-run-{}-{nanos}", std::process::id()))
}

/// Opens the store in `dir`, runs the runbook and closes the store again.
async fn session(args: &RunArgs, dir: &Path, out: &Printer) -> i32 {
    let url = format!("sqlite://{}", dir.join("ssmd.db").display());
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: opening the database at {url}: {e}");
            return EXIT_FAILED;
        }
    };
    let code = match execute(args, store.clone(), out).await {
        Ok(code) => code,
        Err(f) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", f.message);
            f.code
        }
    };
    store.close().await;
    code
}

/// The document name for a runbook file: its stem, sanitised to `[a-zA-Z0-9_.-]`, at least 3
/// characters, and clear of the prefixes reserved for AWS.
pub fn document_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
    if name.is_empty() {
        name = "runbook".into();
    } else if name.len() < 3 {
        name.push_str("-runbook");
    }
    let lower = name.to_ascii_lowercase();
    if ["aws", "amazon", "amzn"].iter().any(|p| lower.starts_with(p)) {
        name = format!("local-{name}");
    }
    name.truncate(128);
    name
}

/// `YAML` or `JSON`: by extension, else JSON when the content parses as a JSON object.
fn document_format(path: &Path, content: &str) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => "JSON",
        Some("yaml" | "yml") => "YAML",
        _ if serde_json::from_str::<Value>(content).is_ok_and(|v| v.is_object()) => "JSON",
        _ => "YAML",
    }
}

/// Splits `NAME=VALUE`.
fn pair<'a>(flag: &str, text: &'a str, what: &str) -> Result<(&'a str, &'a str), Fail> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(Fail::invalid(format!("{flag} takes {what}, but got \"{text}\""))),
    }
}

async fn call(svc: &Service, caller: &Caller, op: Operation, input: Value) -> Result<Value, ApiError> {
    let body = svc.call(caller, op, input).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Creates a runbook document; in a kept database an older document of the same name is replaced.
async fn register(svc: &Service, caller: &Caller, name: &str, path: &Path, replace: bool) -> Result<(), Fail> {
    let content =
        std::fs::read_to_string(path).map_err(|e| Fail::invalid(format!("reading {}: {e}", path.display())))?;
    let input = json!({
        "Name": name,
        "Content": content,
        "DocumentType": "Automation",
        "DocumentFormat": document_format(path, &content),
    });
    let bad = |e: &ApiError| Fail::invalid(format!("{}: {}", path.display(), describe(e)));
    match call(svc, caller, Operation::CreateDocument, input.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if replace && e.code() == ErrorCode::DocumentAlreadyExists => {
            call(svc, caller, Operation::DeleteDocument, json!({ "Name": name })).await.map_err(|e| bad(&e))?;
            call(svc, caller, Operation::CreateDocument, input).await.map(|_| ()).map_err(|e| bad(&e))
        }
        Err(e) => Err(bad(&e)),
    }
}

/// Sets everything up, starts the execution and follows it to the end.
async fn execute(args: &RunArgs, store: Store, out: &Printer) -> Result<i32, Fail> {
    let timeout = match args.timeout {
        None => None,
        Some(s) => Some(
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Fail::invalid(format!("--timeout must be a positive number of seconds, not {s}")))?,
        ),
    };
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &args.params {
        let (k, v) = pair("--param", p, "NAME=VALUE")?;
        params.entry(k.to_string()).or_default().push(v.to_string());
    }
    let mut extra: Vec<(String, PathBuf)> = Vec::new();
    for d in &args.documents {
        let (k, v) = pair("--document", d, "NAME=FILE")?;
        if extra.iter().any(|(n, _)| n == k) {
            return Err(Fail::invalid(format!("--document {k} is given twice")));
        }
        extra.push((k.to_string(), PathBuf::from(v)));
    }
    let mut name = document_name(&args.file);
    while extra.iter().any(|(n, _)| *n == name) {
        name = format!("{name}-main");
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = ssmd_api::automation::Settings { python: args.python.clone(), ..Default::default() };
    let svc = Arc::new(
        Service::with_settings(store, clock, settings)
            .await
            .map_err(|e| Fail::new(EXIT_FAILED, format!("starting the service: {}", describe(&e))))?,
    );
    ssmd_api::automation::Engine::start(svc.clone())
        .await
        .map_err(|e| Fail::new(EXIT_FAILED, format!("starting the engine: {}", describe(&e))))?;
    let caller_as = |arn: &str| Caller {
        account: ACCOUNT.into(),
        region: args.region.clone(),
        access_key_id: String::new(),
        arn: arn.to_string(),
    };
    let approvers: Vec<Caller> = if args.approver_arns.is_empty() {
        vec![caller_as(ROOT_ARN)]
    } else {
        args.approver_arns.iter().map(|a| caller_as(a)).collect()
    };
    let caller = approvers[0].clone();

    let replace = args.keep_data.is_some();
    for (n, path) in &extra {
        register(&svc, &caller, n, path, replace).await?;
    }
    register(&svc, &caller, &name, &args.file, replace).await?;

    let mut input = json!({ "DocumentName": name });
    if !params.is_empty() {
        input["Parameters"] = json!(params);
    }
    if args.mode == Mode::Interactive {
        input["Mode"] = json!("Interactive");
    }
    let started = call(&svc, &caller, Operation::StartAutomationExecution, input)
        .await
        .map_err(|e| Fail::invalid(format!("starting {name}: {}", describe(&e))))?;
    let id = started["AutomationExecutionId"].as_str().unwrap_or_default().to_string();
    let mode = if args.mode == Mode::Interactive { ", Interactive mode" } else { "" };
    out.note(&format!("Running {name} (execution {id}{mode})"));

    let mut runner = Runner {
        svc,
        caller,
        approvers,
        args,
        out,
        root: id.clone(),
        watched: vec![(id, Watched::new(name, 0))],
        answered: HashSet::new(),
        prompt: None,
        input: None,
        idle: 0,
        was_idle: false,
        reask: false,
        tty: std::io::stdin().is_terminal(),
        started: Instant::now(),
    };
    runner.follow(timeout).await
}

/// An execution the runner follows (the root, and children its steps start).
struct Watched {
    document: String,
    depth: usize,
    status: String,
    /// The last status printed per step execution.
    steps: HashMap<String, String>,
    terminal: bool,
    /// Its children were looked for once after it finished.
    scanned_after_end: bool,
}

impl Watched {
    fn new(document: String, depth: usize) -> Watched {
        Watched {
            document,
            depth,
            status: String::new(),
            steps: HashMap::new(),
            terminal: false,
            scanned_after_end: false,
        }
    }
}

/// Something an execution waits for from the runner.
#[derive(Clone)]
enum Wait {
    Approve {
        execution: String,
        step: String,
        approvers: Vec<String>,
        min: usize,
    },
    Pause {
        execution: String,
        step: String,
    },
    /// An Interactive execution between steps.
    Next {
        suggested: Option<String>,
        steps: Vec<String>,
    },
}

/// An answer to a wait.
enum Answer {
    Approve(Option<String>),
    Reject(Option<String>),
    Resume,
    StartStep(String),
    Complete,
    Cancel,
}

/// What came of an answer.
enum Applied {
    Done,
    /// Ask again.
    Again,
    /// The runner can't go on; exit with this code.
    Stuck(i32),
}

/// The question on screen.
struct Prompt {
    key: String,
    wait: Wait,
    /// A comment typed in answer to an approval, awaiting y/N.
    comment: Option<String>,
}

enum Event {
    Tick,
    Signal(i32),
    Line(Option<String>),
}

struct Runner<'a> {
    svc: Arc<Service>,
    /// The caller the execution runs as.
    caller: Caller,
    /// The callers approvals are sent as.
    approvers: Vec<Caller>,
    args: &'a RunArgs,
    out: &'a Printer,
    root: String,
    watched: Vec<(String, Watched)>,
    /// Waits already answered (by key).
    answered: HashSet<String>,
    prompt: Option<Prompt>,
    input: Option<UnboundedReceiver<Option<String>>>,
    /// Times the Interactive execution came to rest between steps.
    idle: usize,
    was_idle: bool,
    /// Progress was printed over the question on screen.
    reask: bool,
    tty: bool,
    started: Instant,
}

impl Runner<'_> {
    async fn follow(&mut self, timeout: Option<Duration>) -> Result<i32, Fail> {
        let deadline = timeout.map(|t| self.started + t);
        let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Fail::new(EXIT_FAILED, format!("SIGINT: {e}")))?;
        let mut sigterm =
            signal(SignalKind::terminate()).map_err(|e| Fail::new(EXIT_FAILED, format!("SIGTERM: {e}")))?;
        // The exit code once the runner itself stopped the execution.
        let mut stopping: Option<i32> = None;
        let root = loop {
            let snapshot = self.poll().await?;
            let root = snapshot.get(&self.root).cloned().unwrap_or(Value::Null);
            let root_status = root["AutomationExecutionStatus"].as_str().unwrap_or_default();
            if status::is_terminal(root_status) {
                break root;
            }
            if stopping.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
                let secs = timeout.map_or(0.0, |t| t.as_secs_f64());
                self.out.warn(&format!("The execution ran longer than --timeout {secs}s: cancelling it."));
                self.end_prompt();
                self.cancel().await;
                stopping = Some(EXIT_TIMEOUT);
            }
            if stopping.is_none() {
                let waits = self.waits(&snapshot);
                if let Some(p) = &self.prompt
                    && !waits.iter().any(|(k, _)| *k == p.key)
                {
                    self.out.note("(no longer waiting for that answer)");
                    self.prompt = None;
                }
                if self.prompt.is_some() && std::mem::take(&mut self.reask) {
                    self.ask();
                }
                if self.prompt.is_none()
                    && let Some((key, wait)) = waits.into_iter().find(|(k, _)| !self.answered.contains(k))
                    && let Some(code) = self.answer(key, wait).await?
                {
                    return Ok(code);
                }
            }
            let prompting = self.prompt.is_some();
            let event = tokio::select! {
                _ = tokio::time::sleep(POLL) => Event::Tick,
                _ = sigint.recv() => Event::Signal(EXIT_INTERRUPTED),
                _ = sigterm.recv() => Event::Signal(EXIT_TERMINATED),
                line = next_line(&mut self.input), if prompting => Event::Line(line),
            };
            match event {
                Event::Tick => {}
                Event::Signal(code) => {
                    if stopping.is_some() {
                        self.out.warn("Interrupted again: exiting without waiting for the cancellation.");
                        return Ok(code);
                    }
                    println!();
                    self.out.warn("Interrupted: cancelling the execution (interrupt again to exit at once).");
                    self.end_prompt();
                    self.cancel().await;
                    stopping = Some(code);
                }
                Event::Line(None) => {
                    self.out.warn("The input ended before an answer was given.");
                    return Ok(EXIT_UNANSWERED);
                }
                Event::Line(Some(line)) => {
                    if let Some(code) = self.on_line(line).await? {
                        return Ok(code);
                    }
                }
            }
        };
        self.summary(&root);
        let st = root["AutomationExecutionStatus"].as_str().unwrap_or_default();
        Ok(stopping.unwrap_or(if st == status::SUCCESS { EXIT_SUCCESS } else { EXIT_FAILED }))
    }

    fn end_prompt(&mut self) {
        if self.prompt.take().is_some() {
            println!();
        }
    }

    async fn cancel(&self) {
        let input = json!({ "AutomationExecutionId": self.root, "Type": "Cancel" });
        if let Err(e) = call(&self.svc, &self.caller, Operation::StopAutomationExecution, input).await {
            self.out.warn(&format!("Cancelling failed: {}", describe(&e)));
        }
    }

    /// Reads every followed execution, prints what changed (in the order it happened), and returns
    /// the executions read.
    async fn poll(&mut self) -> Result<HashMap<String, Value>, Fail> {
        let mut changes = self.discover().await?;
        let mut snapshot = HashMap::new();
        for i in 0..self.watched.len() {
            if self.watched[i].1.terminal {
                continue;
            }
            let id = self.watched[i].0.clone();
            let input = json!({ "AutomationExecutionId": id });
            let x = call(&self.svc, &self.caller, Operation::GetAutomationExecution, input)
                .await
                .map_err(|e| Fail::new(EXIT_FAILED, format!("reading execution {id}: {}", describe(&e))))?;
            let x = x["AutomationExecution"].clone();
            self.report(i, &x, &mut changes);
            snapshot.insert(id, x);
        }
        changes.sort_by_key(|c| (c.at, c.rank));
        if self.prompt.is_some() && !changes.is_empty() {
            // Progress arrived while a question is on screen: move below it, ask again after.
            println!();
            self.reask = true;
        }
        for c in changes {
            self.out.change(c);
        }
        Ok(snapshot)
    }

    /// Follows the children of followed executions (aws:executeAutomation).
    async fn discover(&mut self) -> Result<Vec<Change>, Fail> {
        let mut changes = Vec::new();
        let parents: Vec<String> = self
            .watched
            .iter_mut()
            .filter(|(_, w)| !w.scanned_after_end)
            .map(|(id, w)| {
                w.scanned_after_end = w.terminal;
                id.clone()
            })
            .collect();
        for chunk in parents.chunks(FILTER_VALUES) {
            let mut token: Option<String> = None;
            loop {
                let mut input = json!({ "Filters": [{ "Key": "ParentExecutionId", "Values": chunk }] });
                if let Some(t) = &token {
                    input["NextToken"] = json!(t);
                }
                let page = call(&self.svc, &self.caller, Operation::DescribeAutomationExecutions, input)
                    .await
                    .map_err(|e| Fail::new(EXIT_FAILED, format!("listing child executions: {}", describe(&e))))?;
                for m in page["AutomationExecutionMetadataList"].as_array().into_iter().flatten() {
                    let id = m["AutomationExecutionId"].as_str().unwrap_or_default();
                    if id.is_empty() || self.watched.iter().any(|(w, _)| w == id) {
                        continue;
                    }
                    let parent = m["ParentAutomationExecutionId"].as_str().unwrap_or_default();
                    let depth = self.watched.iter().find(|(w, _)| w == parent).map_or(0, |(_, w)| w.depth) + 1;
                    let document = m["DocumentName"].as_str().unwrap_or("?").to_string();
                    changes.push(Change {
                        at: millis(m["ExecutionStartTime"].as_f64()),
                        rank: start_rank(depth) - 1,
                        depth,
                        status: None,
                        text: format!("automation {document} started (execution {id})"),
                        after: String::new(),
                        details: Details::None,
                    });
                    self.watched.push((id.to_string(), Watched::new(document, depth)));
                }
                token = page["NextToken"].as_str().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(changes)
    }

    /// Collects the changes of followed execution `i`, read as `x`.
    fn report(&mut self, i: usize, x: &Value, changes: &mut Vec<Change>) {
        let w = &mut self.watched[i].1;
        let steps: Vec<&Value> = x["StepExecutions"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        let by_id: HashMap<&str, &Value> =
            steps.iter().filter_map(|s| Some((s["StepExecutionId"].as_str()?, *s))).collect();
        // At one instant, ends come first, from the innermost out (a loop's body before the loop,
        // a child execution before the parent's step that ran it), then starts from the outermost in.
        let end_rank = |depth: usize, level: usize| (32 - depth.min(32)) * 3 + level;
        let start_rank = start_rank(w.depth);
        for s in &steps {
            let st = s["StepStatus"].as_str().unwrap_or_default();
            let sid = s["StepExecutionId"].as_str().unwrap_or_default();
            if st == status::PENDING || w.steps.get(sid).is_some_and(|old| old == st) {
                continue;
            }
            w.steps.insert(sid.to_string(), st.to_string());
            let rank = match (status::is_terminal(st), s["Action"] == "aws:loop") {
                (false, _) => start_rank,
                (true, false) => end_rank(w.depth, 0),
                (true, true) => end_rank(w.depth, 1),
            };
            changes.push(step_change(w, s, &by_id, rank));
        }
        let st = x["AutomationExecutionStatus"].as_str().unwrap_or_default().to_string();
        if st != w.status {
            w.terminal = status::is_terminal(&st);
            if w.depth > 0 && w.terminal {
                let failure = x["FailureMessage"].as_str().filter(|_| st != status::SUCCESS);
                changes.push(Change {
                    at: millis(x["ExecutionEndTime"].as_f64()),
                    rank: end_rank(w.depth, 2),
                    depth: w.depth,
                    status: Some(st.clone()),
                    text: format!("automation {} ", w.document),
                    after: String::new(),
                    details: failure.map_or(Details::None, |m| Details::Text(m.to_string())),
                });
            }
            w.status = st;
        }
    }

    /// What the followed executions wait for, each with a key that names this one wait.
    fn waits(&mut self, snapshot: &HashMap<String, Value>) -> Vec<(String, Wait)> {
        let mut out = Vec::new();
        for (id, _) in &self.watched {
            let Some(x) = snapshot.get(id) else { continue };
            for s in x["StepExecutions"].as_array().into_iter().flatten() {
                if s["StepStatus"] != status::WAITING {
                    continue;
                }
                let key = s["StepExecutionId"].as_str().unwrap_or_default().to_string();
                let step = s["StepName"].as_str().unwrap_or_default().to_string();
                match s["Action"].as_str().unwrap_or_default() {
                    "aws:approve" => out.push((
                        key,
                        Wait::Approve {
                            execution: id.clone(),
                            step,
                            approvers: approvers_of(s),
                            min: min_approvals(s),
                        },
                    )),
                    "aws:pause" => out.push((key, Wait::Pause { execution: id.clone(), step })),
                    _ => {}
                }
            }
        }
        let root = snapshot.get(&self.root).cloned().unwrap_or(Value::Null);
        let steps = root["StepExecutions"].as_array().cloned().unwrap_or_default();
        let busy = steps.iter().any(|s| s["StepStatus"] == status::IN_PROGRESS || s["StepStatus"] == status::WAITING);
        let idle = root["Mode"] == "Interactive" && root["AutomationExecutionStatus"] == status::WAITING && !busy;
        if idle && !self.was_idle {
            self.idle += 1;
        }
        self.was_idle = idle;
        if idle {
            let top: Vec<&Value> = steps.iter().filter(|s| s.get("ParentStepDetails").is_none()).collect();
            let mut names: Vec<String> = Vec::new();
            for s in &top {
                let n = s["StepName"].as_str().unwrap_or_default().to_string();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            let last = top
                .iter()
                .filter(|s| s["ExecutionEndTime"].is_number())
                .max_by(|a, b| a["ExecutionEndTime"].as_f64().partial_cmp(&b["ExecutionEndTime"].as_f64()).unwrap());
            let valid = last.and_then(|s| s["ValidNextSteps"].as_array()).and_then(|v| v.first()?.as_str());
            let suggested = valid.map(str::to_string).or_else(|| {
                top.iter().find(|s| s["StepStatus"] == status::PENDING)?.get("StepName")?.as_str().map(str::to_string)
            });
            out.push((format!("next#{}", self.idle), Wait::Next { suggested, steps: names }));
        }
        out
    }

    /// Answers a wait from the flags, asks at the terminal, or gives up (`Some(exit code)`).
    async fn answer(&mut self, key: String, wait: Wait) -> Result<Option<i32>, Fail> {
        let flagged = match &wait {
            Wait::Approve { .. } if self.args.approve => Some(Answer::Approve(Some("Approved with --approve".into()))),
            Wait::Approve { .. } if self.args.reject => Some(Answer::Reject(Some("Rejected with --reject".into()))),
            Wait::Pause { .. } if self.args.resume => Some(Answer::Resume),
            _ => None,
        };
        if let Some(a) = flagged {
            return Ok(match self.apply(&wait, a).await {
                Applied::Done | Applied::Again => {
                    self.answered.insert(key);
                    None
                }
                Applied::Stuck(code) => Some(code),
            });
        }
        if !self.tty {
            let why = match &wait {
                Wait::Approve { step, .. } => {
                    format!("Step {step} waits for an approval, and there is no terminal to ask at: run again with --approve or --reject.")
                }
                Wait::Pause { step, .. } => {
                    format!("Step {step} is paused, and there is no terminal to ask at: run again with --resume.")
                }
                Wait::Next { .. } => "The Interactive execution waits for the next step to be chosen, and there is no terminal to ask at: run it from a terminal, or in Auto mode.".to_string(),
            };
            self.out.error(&why);
            if let Some(dir) = &self.args.keep_data {
                self.out.note(&format!("The execution is left waiting in {}.", dir.display()));
            }
            return Ok(Some(EXIT_UNANSWERED));
        }
        if self.input.is_none() {
            self.input = Some(read_stdin());
        }
        self.prompt = Some(Prompt { key, wait, comment: None });
        self.reask = false;
        self.ask();
        Ok(None)
    }

    fn ask(&self) {
        let Some(p) = &self.prompt else { return };
        let q = match (&p.wait, &p.comment) {
            (Wait::Approve { .. }, Some(c)) => format!("Approve with the comment \"{c}\"? [y/N] "),
            (Wait::Approve { .. }, None) => "Approve? [y/N/comment] ".to_string(),
            (Wait::Pause { step, .. }, _) => format!("Step {step} is paused. Press Enter to resume "),
            (Wait::Next { suggested, steps }, _) => {
                self.out.note(&format!("Steps: {}", steps.join(", ")));
                match suggested {
                    Some(s) => format!("Next step? [Enter: {s}, a step name, done, cancel] "),
                    None => "Next step? [a step name, Enter or done: complete, cancel] ".to_string(),
                }
            }
        };
        print!("{}", self.out.prompt(&q));
        let _ = std::io::stdout().flush();
    }

    /// Handles a line typed at a prompt.
    async fn on_line(&mut self, line: String) -> Result<Option<i32>, Fail> {
        let Some(mut p) = self.prompt.take() else { return Ok(None) };
        let text = line.trim();
        let answer = match &p.wait {
            Wait::Approve { .. } => {
                let (word, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
                let rest = rest.trim();
                let comment = p.comment.clone().or_else(|| (!rest.is_empty()).then(|| rest.to_string()));
                match word.to_ascii_lowercase().as_str() {
                    "y" | "yes" => Answer::Approve(comment),
                    "n" | "no" | "" => Answer::Reject(comment),
                    _ if p.comment.is_none() => {
                        p.comment = Some(text.to_string());
                        self.prompt = Some(p);
                        self.ask();
                        return Ok(None);
                    }
                    _ => Answer::Reject(comment),
                }
            }
            Wait::Pause { .. } => Answer::Resume,
            Wait::Next { suggested, .. } => match text {
                "" => suggested.clone().map_or(Answer::Complete, Answer::StartStep),
                "done" | "complete" => Answer::Complete,
                "cancel" => Answer::Cancel,
                step => Answer::StartStep(step.to_string()),
            },
        };
        match self.apply(&p.wait, answer).await {
            Applied::Done => {
                self.answered.insert(p.key);
                Ok(None)
            }
            Applied::Again => {
                p.comment = None;
                self.prompt = Some(p);
                self.ask();
                Ok(None)
            }
            Applied::Stuck(code) => Ok(Some(code)),
        }
    }

    async fn signal(&self, caller: &Caller, execution: &str, kind: &str, payload: Value) -> Result<(), ApiError> {
        let input = json!({ "AutomationExecutionId": execution, "SignalType": kind, "Payload": payload });
        call(&self.svc, caller, Operation::SendAutomationSignal, input).await.map(|_| ())
    }

    /// Sends an answer to the service.
    async fn apply(&self, wait: &Wait, answer: Answer) -> Applied {
        let out = self.out;
        match (wait, answer) {
            (Wait::Approve { execution, step, approvers, min }, answer @ (Answer::Approve(_) | Answer::Reject(_))) => {
                let (kind, comment) = match answer {
                    Answer::Approve(c) => ("Approve", c),
                    Answer::Reject(c) => ("Reject", c),
                    _ => unreachable!("matched above"),
                };
                let payload = match comment {
                    Some(c) => json!({ "Comment": [c] }),
                    None => json!({}),
                };
                let mut accepted = Vec::new();
                let mut refused = Vec::new();
                for c in &self.approvers {
                    match self.signal(c, execution, kind, payload.clone()).await {
                        Ok(()) => {
                            accepted.push(c.arn.clone());
                            if kind == "Reject" {
                                break;
                            }
                        }
                        Err(e) if e.message().contains("not one of the approvers") => refused.push(describe(&e)),
                        // The step stopped waiting meanwhile (timed out, cancelled).
                        Err(e) => {
                            out.warn(&format!("The {kind} signal was not applied: {}", describe(&e)));
                            return Applied::Done;
                        }
                    }
                }
                let needed = if kind == "Approve" { *min } else { 1 };
                if accepted.len() >= needed {
                    out.note(&format!("{kind} sent for step {step} as {}", accepted.join(", ")));
                    return Applied::Done;
                }
                for r in &refused {
                    out.error(r);
                }
                if accepted.is_empty() {
                    let hint = approvers.first().map(|a| suggest_arn(a)).unwrap_or_else(|| ROOT_ARN.to_string());
                    out.error(&format!(
                        "Step {step} accepts answers only from its approvers ({}). Run again with --approver-arn {hint} (and --approve or --reject).",
                        approvers.join(", ")
                    ));
                } else {
                    out.error(&format!(
                        "Step {step} needs {min} approvals, but only {} of the given approvers could approve ({}). Give one --approver-arn per approver needed.",
                        accepted.len(),
                        accepted.join(", ")
                    ));
                }
                Applied::Stuck(EXIT_UNANSWERED)
            }
            (Wait::Pause { execution, step }, _) => {
                match self.signal(&self.caller, execution, "Resume", json!({ "StepName": [step] })).await {
                    Ok(()) => out.note(&format!("Resumed step {step}")),
                    Err(e) => out.warn(&format!("The Resume signal was not applied: {}", describe(&e))),
                }
                Applied::Done
            }
            (Wait::Next { .. }, Answer::StartStep(s)) => {
                match self.signal(&self.caller, &self.root, "StartStep", json!({ "StepName": [s] })).await {
                    Ok(()) => Applied::Done,
                    Err(e) => {
                        out.error(&describe(&e));
                        Applied::Again
                    }
                }
            }
            (Wait::Next { .. }, a @ (Answer::Complete | Answer::Cancel)) => {
                let kind = if matches!(a, Answer::Complete) { "Complete" } else { "Cancel" };
                let input = json!({ "AutomationExecutionId": self.root, "Type": kind });
                match call(&self.svc, &self.caller, Operation::StopAutomationExecution, input).await {
                    Ok(_) => Applied::Done,
                    Err(e) => {
                        out.error(&describe(&e));
                        Applied::Again
                    }
                }
            }
            _ => Applied::Again,
        }
    }

    /// The final lines: status, duration, failure and document outputs.
    fn summary(&self, x: &Value) {
        let st = x["AutomationExecutionStatus"].as_str().unwrap_or_default();
        let took = match (x["ExecutionStartTime"].as_f64(), x["ExecutionEndTime"].as_f64()) {
            (Some(a), Some(b)) => format!(" in {}", duration(b - a)),
            _ => String::new(),
        };
        let id = x["AutomationExecutionId"].as_str().unwrap_or_default();
        println!();
        println!("{}", self.out.paint(status_color(st), &format!("Execution {id} {st}{took}")));
        if st != status::SUCCESS
            && let Some(m) = x["FailureMessage"].as_str()
        {
            // A step's whole message (a traceback) is printed above with the step.
            let more = if m.trim_end().lines().count() > 1 { " (details above)" } else { "" };
            println!("  {}{more}", m.lines().next().unwrap_or_default());
        }
        if let Some(outputs) = x["Outputs"].as_object().filter(|o| !o.is_empty()) {
            println!("Outputs:");
            for (k, v) in outputs {
                println!("{}", value_line(2, k, v));
            }
        }
    }
}

async fn next_line(input: &mut Option<UnboundedReceiver<Option<String>>>) -> Option<String> {
    match input {
        Some(rx) => rx.recv().await.flatten(),
        None => std::future::pending().await,
    }
}

/// Lines from stdin, read on a thread of their own (`None` at the end of the input).
fn read_stdin() -> UnboundedReceiver<Option<String>> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        loop {
            let mut line = String::new();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    if tx.send(Some(line.trim_end_matches(['\r', '\n']).to_string())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// A step input's value (inputs travel as JSON text).
fn input_value(step: &Value, key: &str) -> Option<Value> {
    let s = step.get("Inputs")?.get(key)?.as_str()?;
    Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn approvers_of(step: &Value) -> Vec<String> {
    match input_value(step, "Approvers") {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(v) => vec![text(&v)],
    }
}

fn min_approvals(step: &Value) -> usize {
    input_value(step, "MinRequiredApprovals")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(1)
        .max(1) as usize
}

/// The `--approver-arn` that an `Approvers` entry accepts.
fn suggest_arn(entry: &str) -> String {
    let entry = entry.trim();
    if entry.starts_with("arn:") {
        entry.to_string()
    } else if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{entry}:root")
    } else {
        format!("arn:aws:iam::{ACCOUNT}:user/{entry}")
    }
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// `1.0s`, `2m05s`, `1h02m`.
fn duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    } else {
        format!("{}h{:02}m", (secs / 3600.0) as u64, secs as u64 % 3600 / 60)
    }
}

/// `  Key = value` with list values as JSON and continuation lines indented.
fn value_line(indent: usize, key: &str, v: &Value) -> String {
    let value = match v {
        Value::Array(items) if items.len() == 1 => text(&items[0]),
        other => other.to_string(),
    };
    let pad = " ".repeat(indent);
    let cont = format!("\n{pad}{}", " ".repeat(key.len() + 3));
    format!("{pad}{key} = {}", value.lines().collect::<Vec<_>>().join(&cont))
}

fn status_color(st: &str) -> &'static str {
    match st {
        status::SUCCESS => "32",
        status::FAILED | status::TIMED_OUT => "31",
        status::WAITING | status::CANCELLING | status::CANCELLED => "33",
        _ => "36",
    }
}

/// Output lines; colour and symbols only on a terminal.
struct Printer {
    color: bool,
}

impl Printer {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    /// `[HH:MM:SS] text` (UTC), indented by depth, with a status symbol on a terminal.
    fn line(&self, at_ms: i64, depth: usize, st: Option<&str>, text: &str) {
        let (_, _, _, h, m, s) = ssmd_core::clock::utc_fields(at_ms);
        let stamp = self.paint("2", &format!("[{h:02}:{m:02}:{s:02}]"));
        let symbol = match (self.color, st) {
            (true, Some(st)) => {
                let sym = match st {
                    status::SUCCESS => "✔",
                    status::FAILED | status::TIMED_OUT => "✘",
                    status::WAITING => "⏸",
                    status::CANCELLED | status::CANCELLING => "⊘",
                    _ => "▶",
                };
                format!("{} ", self.paint(status_color(st), sym))
            }
            _ => String::new(),
        };
        println!("{stamp} {}{symbol}{text}", "  ".repeat(depth));
    }

    /// Indented detail lines under a step.
    fn block(&self, depth: usize, text: &str) {
        let pad = " ".repeat(13 + 2 * depth);
        for l in text.lines() {
            println!("{pad}{l}");
        }
    }

    fn change(&self, c: Change) {
        let word = c.status.as_deref().map(|st| self.paint(status_color(st), st)).unwrap_or_default();
        self.line(c.at, c.depth, c.status.as_deref(), &format!("{}{word}{}", c.text, c.after));
        let pad = 13 + 2 * c.depth;
        match c.details {
            Details::None => {}
            Details::Text(t) => self.block(c.depth, &t),
            Details::Outputs(o) => {
                for (k, v) in &o {
                    println!("{}", value_line(pad, k, v));
                }
            }
        }
    }

    fn prompt(&self, q: &str) -> String {
        self.paint("1", q)
    }

    fn note(&self, text: &str) {
        println!("{}", self.paint("2", text));
    }

    fn warn(&self, text: &str) {
        println!("{}", self.paint("33", text));
    }

    fn error(&self, text: &str) {
        println!("{}", self.paint("31", &format!("error: {text}")));
    }
}

/// One printed change: a step's new status, or a child execution starting or finishing.
struct Change {
    at: i64,
    /// Order among changes at the same millisecond.
    rank: usize,
    depth: usize,
    /// The new status, printed after `text` (and marked on a terminal).
    status: Option<String>,
    text: String,
    /// Printed after the status.
    after: String,
    details: Details,
}

/// The lines under a change.
enum Details {
    None,
    /// Indented text (a failure message, an approval's message).
    Text(String),
    /// A finished step's outputs.
    Outputs(serde_json::Map<String, Value>),
}

/// The order of a start in an execution `depth` levels down among changes at one instant (after
/// every end).
fn start_rank(depth: usize) -> usize {
    200 + 3 * depth
}

/// Epoch milliseconds from wire epoch seconds (now when absent).
fn millis(secs: Option<f64>) -> i64 {
    secs.map_or_else(now_ms, |s| (s * 1000.0).round() as i64)
}

/// The change for step execution `s` of execution `w`.
fn step_change(w: &Watched, s: &Value, by_id: &HashMap<&str, &Value>, rank: usize) -> Change {
    let st = s["StepStatus"].as_str().unwrap_or_default();
    let action = s["Action"].as_str().unwrap_or_default();
    let start = s["ExecutionStartTime"].as_f64();
    let end = s["ExecutionEndTime"].as_f64().filter(|_| status::is_terminal(st));
    let took = match (start, end) {
        (Some(a), Some(b)) => format!(" ({})", duration(b - a)),
        _ => String::new(),
    };
    let prefix = if w.depth > 0 { format!("{}: ", w.document) } else { String::new() };
    let label = step_label(s, by_id);
    let details = match st {
        status::SUCCESS => s["Outputs"].as_object().cloned().map_or(Details::None, Details::Outputs),
        status::WAITING if action == "aws:approve" => {
            let mut t = String::new();
            if let Some(m) = input_value(s, "Message") {
                t.push_str(&format!("Message: {}\n", text(&m)));
            }
            t.push_str(&format!("Approvers: {}", approvers_of(s).join(", ")));
            let min = min_approvals(s);
            if min > 1 {
                t.push_str(&format!("\nApprovals needed: {min}"));
            }
            Details::Text(t)
        }
        _ => s["FailureMessage"].as_str().map_or(Details::None, |m| Details::Text(m.to_string())),
    };
    Change {
        at: millis(end.or(start)),
        rank,
        depth: w.depth,
        status: Some(st.to_string()),
        text: format!("{prefix}step {label} ({action}) "),
        after: took,
        details,
    }
}

/// `name`, or `loop #2 (value) > name` for a step in a loop body (nested loops chain).
fn step_label(step: &Value, by_id: &HashMap<&str, &Value>) -> String {
    let mut label = step["StepName"].as_str().unwrap_or_default().to_string();
    let mut cur = step;
    for _ in 0..32 {
        let Some(p) = cur.get("ParentStepDetails") else { break };
        let mut seg = format!("{} #{}", p["StepName"].as_str().unwrap_or("loop"), p["Iteration"].as_i64().unwrap_or(0));
        if let Some(v) = p["IteratorValue"].as_str() {
            seg.push_str(&format!(" ({v})"));
        }
        label = format!("{seg} > {label}");
        match p["StepExecutionId"].as_str().and_then(|id| by_id.get(id)) {
            Some(r) => cur = r,
            None => break,
        }
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_are_sanitised() {
        assert_eq!(document_name(Path::new("dir/my runbook.yaml")), "my-runbook");
        assert_eq!(document_name(Path::new("a.yml")), "a-runbook");
        assert_eq!(document_name(Path::new("AWS-Restart.json")), "local-AWS-Restart");
        assert_eq!(document_name(Path::new("Déploi.yaml")), "D-ploi");
        assert_eq!(document_name(Path::new(".yaml")), ".yaml");
    }

    #[test]
    fn formats_follow_extension_then_content() {
        assert_eq!(document_format(Path::new("x.json"), "schemaVersion: '0.3'"), "JSON");
        assert_eq!(document_format(Path::new("x.yml"), "{}"), "YAML");
        assert_eq!(document_format(Path::new("x.runbook"), "{\"schemaVersion\": \"0.3\"}"), "JSON");
        assert_eq!(document_format(Path::new("x"), "schemaVersion: '0.3'"), "YAML");
    }

    #[test]
    fn arn_suggestions() {
        assert_eq!(suggest_arn("arn:aws:iam::123456789012:role/Ops"), "arn:aws:iam::123456789012:role/Ops");
        assert_eq!(suggest_arn("123456789012"), "arn:aws:iam::123456789012:root");
        assert_eq!(suggest_arn("alice"), "arn:aws:iam::123456789012:user/alice");
    }

    #[test]
    fn values_and_durations() {
        assert_eq!(value_line(2, "A", &json!(["x"])), "  A = x");
        assert_eq!(value_line(2, "A", &json!(["x", "y"])), "  A = [\"x\",\"y\"]");
        assert_eq!(value_line(0, "Ab", &json!(["1\n2"])), "Ab = 1\n     2");
        assert_eq!(duration(1.04), "1.0s");
        assert_eq!(duration(125.0), "2m05s");
    }
}
