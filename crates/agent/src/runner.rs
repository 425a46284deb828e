//! Running a document's steps and producing each step's result, with the AWS agent's rules:
//!
//! * steps run in order; a failed step does not stop the next ones unless it has
//!   `onFailure: exit` (or `successAndExit`, which also marks it Success with code 168);
//!   `onSuccess: exit` stops after a successful step; exit codes 168 (success) and 169 (failure)
//!   stop the remaining steps; stopped steps are `Skipped` — except a last `finallyStep`;
//! * exit code 194 asks for a reboot: ssmd-agent does not reboot, so the step is `Failed` and the
//!   remaining steps are skipped;
//! * a timeout or a cancel kills the step's process group: status `TimedOut` / `Cancelled`,
//!   code 137 (128 + SIGKILL, the AWS agent's `CommandStoppedPreemptivelyExitCode` on Linux);
//!   steps not started when a cancel arrives are `Cancelled` with code 1;
//! * a non-zero exit is `Failed` with that code and `failed to run commands: exit status N`
//!   appended to stderr; a Failed step never reports code 0;
//! * actions other than `aws:runShellScript` are `Failed` ("not supported by ssmd-agent"),
//!   unless a 2.2 precondition skips them first;
//! * `timeoutSeconds` (or `executionTimeout`), a string or a number, defaults to 3 600 s; values
//!   outside 5…172 800 also mean 3 600 s (`pluginutil.ValidateExecutionTimeout`).

use crate::document::{self, Precondition, RUN_SHELL_SCRIPT, Step};
use crate::exec::{self, End, Interrupt, Interruption};
use crate::truncate;
use serde_json::{Value, json};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit code asking to stop the remaining steps, the step succeeding.
pub const EXIT_WITH_SUCCESS: i32 = 168;
/// Exit code asking to stop the remaining steps, the step failing.
pub const EXIT_WITH_FAILURE: i32 = 169;
/// Exit code asking for a reboot.
pub const REBOOT: i32 = 194;
/// The code of a step whose process group the agent killed (timeout, cancel, shutdown).
pub const STOPPED_PREEMPTIVELY: i32 = 137;
/// Default step time limit, seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;
/// Smallest accepted step time limit, seconds.
pub const MIN_TIMEOUT_SECS: u64 = 5;
/// Largest accepted step time limit, seconds.
pub const MAX_TIMEOUT_SECS: u64 = 172_800;

/// A plugin/step status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Finished successfully.
    Success,
    /// Failed.
    Failed,
    /// Killed after its time limit.
    TimedOut,
    /// Cancelled.
    Cancelled,
    /// Not run.
    Skipped,
}

impl Status {
    /// The protocol's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::Failed => "Failed",
            Status::TimedOut => "TimedOut",
            Status::Cancelled => "Cancelled",
            Status::Skipped => "Skipped",
        }
    }

    /// How bad it is, for merging and aggregation: Failed > TimedOut > Cancelled > the rest.
    fn severity(self) -> u8 {
        match self {
            Status::Failed => 3,
            Status::TimedOut => 2,
            Status::Cancelled => 1,
            Status::Success | Status::Skipped => 0,
        }
    }
}

/// The status of a document from its steps' statuses.
pub fn aggregate(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().filter(|s| s.severity() > 0).max_by_key(|s| s.severity()).unwrap_or(Status::Success)
}

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginResult {
    /// Key in `runtimeStatus`.
    pub key: String,
    /// The action (`name`).
    pub name: String,
    /// `stepName`.
    pub step_name: String,
    /// Status.
    pub status: Status,
    /// Exit code.
    pub code: i32,
    /// Captured stdout (possibly longer than reported).
    pub stdout: String,
    /// Captured stderr plus the agent's messages.
    pub stderr: String,
    /// `output` when it is a message rather than the streams (skipped steps).
    pub output_override: Option<String>,
    /// Start, epoch ms.
    pub start_ms: i64,
    /// End, epoch ms.
    pub end_ms: i64,
}

impl PluginResult {
    fn new(step: &Step, status: Status, code: i32) -> Self {
        let now = crate::clock::now_ms();
        PluginResult {
            key: step.key.clone(),
            name: step.action.clone(),
            step_name: step.step_name.clone(),
            status,
            code,
            stdout: String::new(),
            stderr: String::new(),
            output_override: None,
            start_ms: now,
            end_ms: now,
        }
    }

    fn append_error(&mut self, message: &str) {
        append_line(&mut self.stderr, message);
    }

    /// The `runtimeStatus` entry.
    pub fn to_json(&self) -> Value {
        let output = match &self.output_override {
            Some(o) => truncate::prefix(o, truncate::MAX_OUTPUT, truncate::TRUNCATED_SUFFIX),
            None => truncate::output(&self.stdout, &self.stderr, truncate::MAX_OUTPUT),
        };
        json!({
            "status": self.status.as_str(),
            "code": self.code,
            "name": self.name,
            "output": output,
            "startDateTime": crate::clock::iso8601_ms(self.start_ms),
            "endDateTime": crate::clock::iso8601_ms(self.end_ms),
            "outputS3BucketName": "",
            "outputS3KeyPrefix": "",
            "stepName": self.step_name,
            "standardOutput": truncate::standard_output(&self.stdout),
            "standardError": truncate::standard_error(&self.stderr),
        })
    }
}

fn append_line(s: &mut String, message: &str) {
    if message.is_empty() {
        return;
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s.push_str(message);
}

/// Where and as whom a document runs.
pub struct Context<'a> {
    /// The command's work directory (scripts live below it; the default working directory).
    pub work_dir: &'a Path,
    /// Extra environment for every script (`AWS_SSM_INSTANCE_ID`, …).
    pub env: &'a [(String, String)],
    /// The command's interruption flag.
    pub interrupt: &'a Interrupt,
}

/// The time limit of a step's inputs.
pub fn timeout_of(props: &Value) -> Duration {
    let v = props.get("timeoutSeconds").or_else(|| props.get("executionTimeout"));
    let n: f64 = match v {
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>().map(|i| i as f64).or_else(|_| s.parse::<f64>()).unwrap_or(DEFAULT_TIMEOUT_SECS as f64)
        }
        Some(Value::Number(n)) => n.as_f64().unwrap_or(DEFAULT_TIMEOUT_SECS as f64),
        _ => DEFAULT_TIMEOUT_SECS as f64,
    };
    let n = n.trunc();
    let secs = if n < MIN_TIMEOUT_SECS as f64 || n > MAX_TIMEOUT_SECS as f64 { DEFAULT_TIMEOUT_SECS } else { n as u64 };
    Duration::from_secs(secs)
}

/// The command lines of a `runCommand` input: a string, or (nested) lists of strings.
pub fn command_lines(v: Option<&Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(v) = v {
        walk(v, &mut out);
    }
    out
}

fn environment(props: &Value) -> Vec<(String, String)> {
    let Some(m) = props.get("environment").and_then(Value::as_object) else { return Vec::new() };
    m.iter()
        .filter(|(k, _)| !k.is_empty() && !k.contains('=') && !k.contains('\0'))
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .filter(|(_, v)| !v.contains('\0'))
        .collect()
}

fn safe_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "killed".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGINT => "interrupt".into(),
        libc::SIGHUP => "hangup".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGABRT => "aborted".into(),
        other => format!("signal {other}"),
    }
}

/// The result of one set of `aws:runShellScript` inputs.
struct Run {
    status: Status,
    code: i32,
    stdout: String,
    stderr: String,
    reboot: bool,
}

fn run_shell_script(props: &Value, dir: &Path, ctx: &Context<'_>) -> Run {
    let failed = |message: String| Run {
        status: Status::Failed,
        code: 1,
        stdout: String::new(),
        stderr: message,
        reboot: false,
    };
    let wd = props.get("workingDirectory").and_then(Value::as_str).unwrap_or("").trim();
    let cwd: PathBuf = if wd.is_empty() { ctx.work_dir.to_path_buf() } else { ctx.work_dir.join(wd) };
    if !cwd.is_dir() {
        return failed(format!("failed to run commands: the working directory {wd} does not exist"));
    }
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).create(dir) {
        return failed(format!("failed to create the directory {}: {e}", dir.display()));
    }
    let script = dir.join("_script.sh");
    let lines = command_lines(props.get("runCommand"));
    let write = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(&script)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{}\n", lines.join("\n")).as_bytes()));
    if let Err(e) = write {
        return failed(format!("failed to create script file. {e}"));
    }
    let mut env = ctx.env.to_vec();
    env.extend(environment(props));
    let spec = exec::Spec {
        script: &script,
        cwd: &cwd,
        env: &env,
        timeout: timeout_of(props),
        interrupt: ctx.interrupt,
        keep_stdout: truncate::MAX_STDOUT * 4,
        keep_stderr: truncate::MAX_STDERR * 4,
    };
    let outcome = match exec::run(&spec) {
        Ok(o) => o,
        Err(e) => return failed(format!("failed to run commands: {e}")),
    };
    let mut run = Run {
        status: Status::Success,
        code: 0,
        stdout: String::from_utf8_lossy(&outcome.stdout.kept).into_owned(),
        stderr: String::from_utf8_lossy(&outcome.stderr.kept).into_owned(),
        reboot: false,
    };
    match outcome.end {
        End::Exited(0) => {}
        End::Exited(REBOOT) => {
            run.status = Status::Failed;
            run.code = REBOOT;
            run.reboot = true;
            append_line(
                &mut run.stderr,
                "the script exited with 194 (reboot requested): ssmd-agent does not reboot, so the step is reported as Failed and the remaining steps are skipped",
            );
        }
        End::Exited(c) => {
            run.status = Status::Failed;
            run.code = c;
            append_line(&mut run.stderr, &format!("failed to run commands: exit status {c}"));
        }
        End::Signaled(sig) => {
            run.status = Status::Failed;
            run.code = -1;
            append_line(&mut run.stderr, &format!("failed to run commands: signal: {}", signal_name(sig)));
        }
        End::TimedOut => {
            run.status = Status::TimedOut;
            run.code = STOPPED_PREEMPTIVELY;
        }
        End::Cancelled => {
            run.status = Status::Cancelled;
            run.code = STOPPED_PREEMPTIVELY;
        }
        End::Shutdown => {
            run.status = Status::Failed;
            run.code = STOPPED_PREEMPTIVELY;
            append_line(&mut run.stderr, "ssmd-agent stopped while the command was running");
        }
    }
    run
}

/// Runs `steps` in order; `on_step` gets the results so far after each step (its own last),
/// as the AWS agent reports each step when it ends.
pub fn run_document(steps: &[Step], ctx: &Context<'_>, on_step: &mut dyn FnMut(&[PluginResult])) -> Vec<PluginResult> {
    let mut results: Vec<PluginResult> = Vec::with_capacity(steps.len());
    let mut rebooted = false;
    for (i, step) in steps.iter().enumerate() {
        let is_finally = step.finally_step && i + 1 == steps.len();
        let exit_condition = results.iter().zip(steps).any(|(r, s)| {
            r.code == EXIT_WITH_SUCCESS
                || r.code == EXIT_WITH_FAILURE
                || (r.status == Status::Failed && s.on_failure.as_deref() == Some("exit"))
                || (r.status == Status::Success && s.on_success.as_deref() == Some("exit"))
        });
        let interruption = ctx.interrupt.state();
        let result = if interruption == Interruption::Cancelled {
            PluginResult::new(step, Status::Cancelled, 1)
        } else if interruption == Interruption::Shutdown {
            let mut r = PluginResult::new(step, Status::Failed, 1);
            r.append_error("not run: ssmd-agent stopped before this step started");
            r
        } else if (exit_condition || rebooted) && !is_finally {
            let mut r = PluginResult::new(step, Status::Skipped, 0);
            r.output_override = Some(format!(
                "Plugin with name {} and id {} skipped due to prior step with an exit condition",
                step.action, step.key
            ));
            r
        } else {
            match document::evaluate_precondition(step) {
                Precondition::Skip(m) => {
                    let mut r = PluginResult::new(step, Status::Skipped, 0);
                    r.output_override = Some(m);
                    r
                }
                Precondition::Fail(m) => {
                    let mut r = PluginResult::new(step, Status::Failed, 1);
                    r.append_error(&m);
                    r
                }
                Precondition::Run if step.action != RUN_SHELL_SCRIPT => {
                    let mut r = PluginResult::new(step, Status::Failed, 1);
                    r.append_error(&format!(
                        "ssmd-agent does not support the action {} (step {}); it runs {RUN_SHELL_SCRIPT} only",
                        step.action, step.key
                    ));
                    r
                }
                Precondition::Run => run_step(step, i, ctx, &mut rebooted),
            }
        };
        results.push(result);
        on_step(&results);
    }
    results
}

fn run_step(step: &Step, index: usize, ctx: &Context<'_>, rebooted: &mut bool) -> PluginResult {
    let mut r = PluginResult::new(step, Status::Success, 0);
    let base = ctx.work_dir.join(".steps").join(format!("{index}-{}", safe_name(&step.key)));
    for (j, props) in step.properties.iter().enumerate() {
        if j > 0 && ctx.interrupt.state() != Interruption::None {
            break;
        }
        let run = run_shell_script(props, &base.join(j.to_string()), ctx);
        append_line(&mut r.stdout, &run.stdout);
        append_line(&mut r.stderr, &run.stderr);
        if r.code == 0 {
            r.code = run.code;
        }
        if run.status.severity() > r.status.severity() {
            r.status = run.status;
        }
        *rebooted |= run.reboot;
    }
    if r.status == Status::Failed && r.code == 0 {
        r.code = 1;
    }
    if r.code == EXIT_WITH_SUCCESS {
        r.status = Status::Success;
        r.stderr.clear();
        r.stdout.push_str("\nStep exited with code 168. Therefore, marking step as succeeded. Further document steps will be skipped.");
    } else if r.code == EXIT_WITH_FAILURE {
        let m =
            "\nStep exited with code 169. Therefore, marking step as Failed. Further document steps will be skipped.";
        r.stdout.push_str(m);
        r.stderr.push_str(m);
    } else if r.status == Status::Failed && matches!(step.on_failure.as_deref(), Some("exit" | "successAndExit")) {
        let m = "\nStep was found to have onFailure property. Further document steps will be skipped.";
        r.stdout.push_str(m);
        r.stderr.push_str(m);
        if step.on_failure.as_deref() == Some("successAndExit") {
            r.status = Status::Success;
            r.code = EXIT_WITH_SUCCESS;
        }
    }
    r.end_ms = crate::clock::now_ms();
    r
}

/// Results for steps that will not run at all (e.g. a command cancelled while queued).
pub fn not_run(steps: &[Step], status: Status, code: i32, message: &str) -> Vec<PluginResult> {
    steps
        .iter()
        .map(|s| {
            let mut r = PluginResult::new(s, status, code);
            r.append_error(message);
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_the_aws_agent_reads_them() {
        let t = |v: Value| timeout_of(&json!({ "timeoutSeconds": v })).as_secs();
        assert_eq!(t(json!("60")), 60);
        assert_eq!(t(json!(120)), 120);
        assert_eq!(t(json!("7.9")), 7);
        assert_eq!(t(json!(" 30 ")), 30);
        assert_eq!(t(json!("4")), 3600, "below the minimum of 5");
        assert_eq!(t(json!("172801")), 3600);
        assert_eq!(t(json!("172800")), 172_800);
        assert_eq!(t(json!("soon")), 3600);
        assert_eq!(t(json!(null)), 3600);
        assert_eq!(timeout_of(&json!({ "executionTimeout": "45" })).as_secs(), 45);
        assert_eq!(timeout_of(&json!({})).as_secs(), 3600);
    }

    #[test]
    fn command_line_shapes() {
        assert_eq!(command_lines(Some(&json!("echo a"))), ["echo a"]);
        assert_eq!(command_lines(Some(&json!(["a", ["b", "c"], 5]))), ["a", "b", "c"]);
        assert!(command_lines(None).is_empty());
    }

    #[test]
    fn aggregation() {
        use Status::*;
        assert_eq!(aggregate([Success, Skipped]), Success);
        assert_eq!(aggregate([]), Success);
        assert_eq!(aggregate([Cancelled, Success]), Cancelled);
        assert_eq!(aggregate([Cancelled, TimedOut]), TimedOut);
        assert_eq!(aggregate([TimedOut, Failed, Cancelled]), Failed);
    }
}
