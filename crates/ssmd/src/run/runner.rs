//! The [`Runner`]: the state of one run and the loop that follows the execution to its end. Each
//! turn reads the executions (printing what changed), answers or asks about what they wait for,
//! and then waits for the next poll, a signal or a typed line; `--timeout`, Ctrl-C and SIGTERM
//! cancel the execution.

use super::output::Printer;
use super::progress::Watched;
use super::prompt::Prompt;
use super::{
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SUCCESS, EXIT_TERMINATED, EXIT_TIMEOUT, EXIT_UNANSWERED, Fail, RunArgs,
    describe,
};
use serde_json::Value;
use ssmd_api::Service;
use ssmd_model::Caller;
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;

/// How often the execution is read.
const POLL: Duration = Duration::from_millis(100);

/// What ended a wait between two turns.
enum Event {
    Tick,
    Signal(i32),
    Line(Option<String>),
}

pub(super) struct Runner<'a> {
    pub(super) svc: Arc<Service>,
    /// The caller the execution runs as.
    pub(super) caller: Caller,
    /// The callers approvals are sent as.
    pub(super) approvers: Vec<Caller>,
    pub(super) args: &'a RunArgs,
    pub(super) out: &'a Printer,
    pub(super) root: String,
    pub(super) watched: Vec<(String, Watched)>,
    /// Waits already answered (by key).
    pub(super) answered: HashSet<String>,
    pub(super) prompt: Option<Prompt>,
    pub(super) input: Option<UnboundedReceiver<Option<String>>>,
    /// Times the Interactive execution came to rest between steps.
    pub(super) idle: usize,
    pub(super) was_idle: bool,
    /// Progress was printed over the question on screen.
    pub(super) reask: bool,
    pub(super) tty: bool,
    started: Instant,
}

impl<'a> Runner<'a> {
    /// A runner for execution `root` of document `document`, just started.
    pub(super) fn new(
        svc: Arc<Service>,
        caller: Caller,
        approvers: Vec<Caller>,
        args: &'a RunArgs,
        out: &'a Printer,
        root: String,
        document: String,
    ) -> Runner<'a> {
        Runner {
            svc,
            caller,
            approvers,
            args,
            out,
            root: root.clone(),
            watched: vec![(root, Watched::new(document, 0))],
            answered: HashSet::new(),
            prompt: None,
            input: None,
            idle: 0,
            was_idle: false,
            reask: false,
            tty: std::io::stdin().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Follows the execution until it ends (or the runner gives up) and returns the exit code.
    pub(super) async fn follow(&mut self, timeout: Option<Duration>) -> Result<i32, Fail> {
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
            if super::output::terminal(root_status) {
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
                line = super::prompt::next_line(&mut self.input), if prompting => Event::Line(line),
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
        Ok(stopping.unwrap_or(if st == ssmd_model::enums::AutomationExecutionStatus::Success.as_str() {
            EXIT_SUCCESS
        } else {
            EXIT_FAILED
        }))
    }

    /// Drops the question on screen, if any, and leaves its line.
    fn end_prompt(&mut self) {
        if self.prompt.take().is_some() {
            println!();
        }
    }

    /// Cancels the execution (for `--timeout` or a signal).
    async fn cancel(&self) {
        if let Err(e) = self.stop("Cancel").await {
            self.out.warn(&format!("Cancelling failed: {}", describe(&e)));
        }
    }
}
