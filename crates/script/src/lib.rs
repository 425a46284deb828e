//! Runs the inline Python of an Automation `aws:executeScript` step in a real subprocess.
//!
//! Each run starts the local interpreter (`python3`) in its own process group with a small
//! bootstrap program (`bootstrap.py`). The script, the handler name, `events` (the step's
//! InputPayload) and `context` reach the bootstrap as JSON on stdin; it executes the script in a
//! fresh module, calls `handler(events, context)` and writes the outcome to a result file in a
//! per-run scratch directory, so whatever the script prints stays the user's output.
//!
//! Limits follow AWS: the handler's JSON output may be at most 100 KB, and ssmd keeps at most
//! 100,000 bytes of stdout (and of stderr). On timeout, and when the [`run`] future is dropped,
//! the whole process group is killed with SIGKILL, including processes the script started.
//! Only Python 3 runtimes (`python3.X`) can run; PowerShell and Python 2 cannot.

mod capture;
mod process;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use process::{Finish, RunDir};

/// The most stdout (and stderr) ssmd keeps from one run, in bytes.
pub const MAX_STDOUT_BYTES: usize = 100_000;

/// The largest JSON text of a handler's return value, in bytes (AWS's 100 KB).
pub const MAX_PAYLOAD_BYTES: usize = 100 * 1024;

/// Bound on the result file ssmd reads; the bootstrap writes far less (an ASCII-escaped payload
/// under [`MAX_PAYLOAD_BYTES`] or a clipped error), so a larger file was not written by it.
const MAX_RESULT_FILE_BYTES: u64 = 8 * MAX_PAYLOAD_BYTES as u64;

/// One `aws:executeScript` invocation.
#[derive(Debug, Clone)]
pub struct ScriptRequest {
    /// The step's `Runtime`, e.g. `python3.8` or `python3.11`. Only `python3.X` can run.
    pub runtime: String,
    /// The step's `Handler`: the name of the Python function to call. For a dotted name
    /// (`module.func`) the last part is used.
    pub handler: String,
    /// The step's inline Python source.
    pub script: String,
    /// The `events` argument (the step's InputPayload); `null` is passed as `{}`.
    pub events: Value,
    /// The `context` argument, e.g. `{"automation:EXECUTION_ID": "...", ...}`; `null` is
    /// passed as `{}`.
    pub context: Value,
    /// How long the script may run before its process group is killed.
    pub timeout: Duration,
    /// The interpreter to run, normally `python3` (looked up on PATH).
    pub python: PathBuf,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptOutcome {
    /// The handler returned; `payload` is its return value as JSON (`None` is `null`).
    Success {
        /// The handler's return value.
        payload: Value,
        /// What the script wrote to stdout, at most [`MAX_STDOUT_BYTES`].
        stdout: String,
    },
    /// The script raised, did not compile, lacks the handler, returned something that is not
    /// JSON-serialisable or too large, or the interpreter could not start or died.
    Failed {
        /// What went wrong; for an exception it includes the Python traceback.
        message: String,
        /// What the script wrote to stdout, at most [`MAX_STDOUT_BYTES`].
        stdout: String,
    },
    /// The timeout elapsed and the whole process group was killed.
    TimedOut {
        /// What the script wrote to stdout before it was killed.
        stdout: String,
    },
    /// The runtime is not one ssmd can run; no process was started.
    Unsupported {
        /// Says which runtime was asked for and which ones ssmd can run.
        message: String,
    },
}

/// Runs one script to completion, failure or timeout. Dropping the future kills the
/// interpreter's process group and removes the scratch directory.
pub async fn run(req: ScriptRequest) -> ScriptOutcome {
    if !is_python3_runtime(&req.runtime) {
        return ScriptOutcome::Unsupported {
            message: format!(
                "ssmd cannot run the aws:executeScript runtime {:?}: it runs only Python 3 runtimes \
                 (python3.6 to python3.11, or any other python3.X), with the local Python 3 interpreter",
                req.runtime
            ),
        };
    }
    let Some(handler) = handler_name(&req.handler) else {
        return failed(format!("the handler name {:?} is empty: it must name a Python function", req.handler));
    };
    let input = serde_json::json!({
        "script": req.script,
        "handler": handler,
        "events": object_or_empty(req.events),
        "context": object_or_empty(req.context),
        "max_payload": MAX_PAYLOAD_BYTES,
    });
    let input = match serde_json::to_vec(&input) {
        Ok(input) => input,
        Err(e) => return failed(format!("cannot encode the script's input: {e}")),
    };
    let dir = match RunDir::create() {
        Ok(dir) => dir,
        Err(e) => return failed(format!("cannot create a scratch directory for the script: {e}")),
    };
    match process::execute(&req.python, &dir, input, req.timeout, MAX_STDOUT_BYTES).await {
        Finish::NotStarted(message) => failed(message),
        Finish::TimedOut { stdout } => ScriptOutcome::TimedOut { stdout },
        Finish::Exited { status: Err(e), stdout, .. } => {
            ScriptOutcome::Failed { message: format!("cannot wait for the script process: {e}"), stdout }
        }
        Finish::Exited { status: Ok(status), stdout, stderr } => {
            interpret(&dir.result_path(), status, stdout, stderr).await
        }
    }
}

/// Whether `runtime` is `python3.X` (X a number), the only runtimes ssmd runs.
fn is_python3_runtime(runtime: &str) -> bool {
    runtime
        .trim()
        .to_ascii_lowercase()
        .strip_prefix("python3.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

/// The function name to look up: the last part of a dotted handler.
fn handler_name(handler: &str) -> Option<&str> {
    let name = handler.trim().rsplit('.').next().unwrap_or_default().trim();
    (!name.is_empty()).then_some(name)
}

fn object_or_empty(value: Value) -> Value {
    if value.is_null() { Value::Object(Default::default()) } else { value }
}

fn failed(message: String) -> ScriptOutcome {
    ScriptOutcome::Failed { message, stdout: String::new() }
}

/// Turns the result file (or its absence) and the exit status into the outcome.
async fn interpret(result_path: &Path, status: ExitStatus, stdout: String, stderr: String) -> ScriptOutcome {
    let result = match read_result(result_path).await {
        Ok(Some(result)) => result,
        Ok(None) => {
            let mut message = format!("the script process {} without reporting a result", describe(status));
            if !stderr.trim().is_empty() {
                message.push_str("; its error output:\n");
                message.push_str(stderr.trim_end());
            }
            return ScriptOutcome::Failed { message, stdout };
        }
        Err(message) => return ScriptOutcome::Failed { message, stdout },
    };
    if result.get("ok") == Some(&Value::Bool(true)) {
        let payload = result.get("payload").cloned().unwrap_or(Value::Null);
        let size = serde_json::to_string(&payload).map_or(0, |text| text.len());
        if size > MAX_PAYLOAD_BYTES {
            let message = format!(
                "the handler's output is too large: {size} bytes of JSON, over the {MAX_PAYLOAD_BYTES}-byte (100 KB) limit"
            );
            return ScriptOutcome::Failed { message, stdout };
        }
        return ScriptOutcome::Success { payload, stdout };
    }
    let error = result.get("error").and_then(Value::as_str).unwrap_or("the script failed");
    let traceback = result.get("traceback").and_then(Value::as_str).unwrap_or_default().trim_end();
    let message = if traceback.is_empty() { error.to_owned() } else { format!("{error}\n\n{traceback}") };
    ScriptOutcome::Failed { message, stdout }
}

/// Reads the bootstrap's result file: `None` if it wrote none.
async fn read_result(path: &Path) -> Result<Option<Value>, String> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the script's result: {e}")),
    };
    let mut text = Vec::new();
    if let Err(e) = file.take(MAX_RESULT_FILE_BYTES + 1).read_to_end(&mut text).await {
        return Err(format!("cannot read the script's result: {e}"));
    }
    if text.len() as u64 > MAX_RESULT_FILE_BYTES {
        return Err(format!("the script's result is too large (over {MAX_RESULT_FILE_BYTES} bytes)"));
    }
    let result: Value =
        serde_json::from_slice(&text).map_err(|e| format!("the script's result is not valid JSON: {e}"))?;
    if result.is_object() { Ok(Some(result)) } else { Err("the script's result is not a JSON object".to_owned()) }
}

/// "exited with status N" or "was killed by signal S (NAME)".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => match signal_name(signal) {
            Some(name) => format!("was killed by signal {signal} ({name})"),
            None => format!("was killed by signal {signal}"),
        },
        None => format!("ended ({status})"),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python3_runtimes_are_supported() {
        for runtime in ["python3.6", "python3.8", "python3.11", "python3.13", " Python3.9 "] {
            assert!(is_python3_runtime(runtime), "{runtime}");
        }
        for runtime in ["PowerShell 7.4", "PowerShell Core 6.0", "python2.7", "python3", "python3.", "python3.x", ""] {
            assert!(!is_python3_runtime(runtime), "{runtime}");
        }
    }

    #[test]
    fn handler_uses_the_last_dotted_part() {
        assert_eq!(handler_name("script_handler"), Some("script_handler"));
        assert_eq!(handler_name("module.func"), Some("func"));
        assert_eq!(handler_name("  "), None);
        assert_eq!(handler_name("module."), None);
    }

    #[test]
    fn describes_exit_statuses() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with status 3");
        assert_eq!(describe(ExitStatus::from_raw(libc::SIGSEGV)), "was killed by signal 11 (SIGSEGV)");
    }
}
