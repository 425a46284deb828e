//! `ssmd automation run`: the local runbook runner. It runs a runbook file on a throw-away ssmd
//! (an SQLite database in a temporary directory, the real Automation engine, no server), prints
//! every step as its status changes, answers approvals, pauses and Interactive-mode step choices
//! at the prompt or from flags, and exits with the execution's outcome.
//!
//! Everything goes through `Service::call` as a fixed local caller, exactly as a client of
//! `ssmd serve` would, so a runbook behaves here as it will on the server.
//!
//! This module holds the command-line arguments, the exit codes and the wiring around a run (the
//! data directory, logging, the store). The run itself is split by what it does:
//! - [`setup`]: flags, service, engine and documents, up to the started execution;
//! - [`runner`]: the loop that follows the execution to its end (timeout, signals, input);
//! - [`progress`]: reading the executions and printing what changed, and the final summary;
//! - [`waits`]: what the executions wait for (approvals, pauses, the next Interactive step);
//! - [`prompt`]: answering a wait from the flags or at the terminal;
//! - [`signals`]: sending an answer to the service;
//! - [`output`]: the printed lines and how values, durations and statuses look.
//!
//! Exit codes: 0 the execution succeeded; 1 it failed, timed out or was cancelled; 2 the runbook,
//! a `--document`, a parameter or a flag is invalid; 3 the execution waits for an answer the
//! runner cannot give (no terminal and no flag, or the caller is not an approver); 124 `--timeout`
//! ran out; 130 interrupted (Ctrl-C; 143 for SIGTERM).

mod output;
mod progress;
mod prompt;
mod runner;
mod setup;
mod signals;
mod waits;

use clap::{Args, Subcommand, ValueEnum};
use output::Printer;
use serde_json::Value;
use ssmd_api::Service;
use ssmd_model::{ApiError, Caller, Operation};
use ssmd_store::Store;
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The account the runner acts as.
const ACCOUNT: &str = "123456789012";
/// The caller's ARN unless `--approver-arn` says otherwise.
const ROOT_ARN: &str = "arn:aws:iam::123456789012:root";

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

    /// `context: <the API error>`, with this exit code.
    fn api(code: i32, context: impl Display, e: &ApiError) -> Fail {
        Fail::new(code, format!("{context}: {}", describe(e)))
    }
}

/// An API error as the user should read it (internal errors with their detail: this is local).
fn describe(e: &ApiError) -> String {
    match e.internal_detail() {
        Some(d) => format!("{} ({}: {d})", e.message(), e.code().name()),
        None => format!("{} ({})", e.message(), e.code().name()),
    }
}

/// Calls an operation as `caller` and returns its JSON response.
async fn call(svc: &Service, caller: &Caller, op: Operation, input: Value) -> Result<Value, ApiError> {
    let body = svc.call(caller, op, input).await?;
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
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
    let code = match setup::execute(args, store.clone(), out).await {
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
