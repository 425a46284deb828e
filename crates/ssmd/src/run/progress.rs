//! Progress: reading every followed execution (the root and the children its
//! aws:executeAutomation steps start), turning what changed since the last read into [`Change`]s
//! printed in the order they happened, and the summary printed when the execution ends.

use super::output::{duration, status_color, terminal, text, value_line};
use super::runner::Runner;
use super::waits::{approvers_of, input_value, min_approvals};
use super::{EXIT_FAILED, Fail, call};
use serde_json::{Value, json};
use ssmd_core::{Clock, SystemClock};
use ssmd_model::Operation;
use ssmd_model::enums::AutomationExecutionStatus as Status;
use std::collections::HashMap;

/// Values one `ParentExecutionId` filter may carry.
const FILTER_VALUES: usize = 10;

/// An execution the runner follows (the root, and children its steps start).
pub(super) struct Watched {
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
    pub(super) fn new(document: String, depth: usize) -> Watched {
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

/// One printed change: a step's new status, or a child execution starting or finishing.
pub(super) struct Change {
    pub(super) at: i64,
    /// Order among changes at the same millisecond.
    rank: usize,
    pub(super) depth: usize,
    /// The new status, printed after `text` (and marked on a terminal).
    pub(super) status: Option<String>,
    pub(super) text: String,
    /// Printed after the status.
    pub(super) after: String,
    pub(super) details: Details,
}

/// The lines under a change.
pub(super) enum Details {
    None,
    /// Indented text (a failure message, an approval's message).
    Text(String),
    /// A finished step's outputs.
    Outputs(serde_json::Map<String, Value>),
}

impl Runner<'_> {
    /// Reads every followed execution, prints what changed (in the order it happened), and returns
    /// the executions read.
    pub(super) async fn poll(&mut self) -> Result<HashMap<String, Value>, Fail> {
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
                .map_err(|e| Fail::api(EXIT_FAILED, format!("reading execution {id}"), &e))?;
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
                    .map_err(|e| Fail::api(EXIT_FAILED, "listing child executions", &e))?;
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
        for s in &steps {
            let st = s["StepStatus"].as_str().unwrap_or_default();
            let sid = s["StepExecutionId"].as_str().unwrap_or_default();
            if st == Status::Pending.as_str() || w.steps.get(sid).is_some_and(|old| old == st) {
                continue;
            }
            w.steps.insert(sid.to_string(), st.to_string());
            let rank = match (terminal(st), s["Action"] == "aws:loop") {
                (false, _) => start_rank(w.depth),
                (true, false) => end_rank(w.depth, 0),
                (true, true) => end_rank(w.depth, 1),
            };
            changes.push(step_change(w, s, &by_id, rank));
        }
        let st = x["AutomationExecutionStatus"].as_str().unwrap_or_default().to_string();
        if st != w.status {
            w.terminal = terminal(&st);
            if w.depth > 0 && w.terminal {
                let failure = x["FailureMessage"].as_str().filter(|_| st != Status::Success.as_str());
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

    /// The final lines: status, duration, failure and document outputs.
    pub(super) fn summary(&self, x: &Value) {
        let st = x["AutomationExecutionStatus"].as_str().unwrap_or_default();
        let took = span(x["ExecutionStartTime"].as_f64(), x["ExecutionEndTime"].as_f64())
            .map_or_else(String::new, |d| format!(" in {d}"));
        let id = x["AutomationExecutionId"].as_str().unwrap_or_default();
        println!();
        println!("{}", self.out.paint(status_color(st), &format!("Execution {id} {st}{took}")));
        if st != Status::Success.as_str()
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

/// The order of an end in an execution `depth` levels down among changes at one instant: `level`
/// 0 for a step, 1 for a loop, 2 for the execution itself. At one instant, ends come first, from
/// the innermost out (a loop's body before the loop, a child execution before the parent's step
/// that ran it), then starts from the outermost in.
fn end_rank(depth: usize, level: usize) -> usize {
    (32 - depth.min(32)) * 3 + level
}

/// The order of a start in an execution `depth` levels down among changes at one instant (after
/// every end).
fn start_rank(depth: usize) -> usize {
    200 + 3 * depth
}

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

/// Epoch milliseconds from wire epoch seconds (now when absent).
fn millis(secs: Option<f64>) -> i64 {
    secs.map_or_else(now_ms, |s| (s * 1000.0).round() as i64)
}

/// The time from `start` to `end` (wire epoch seconds), when both are known.
fn span(start: Option<f64>, end: Option<f64>) -> Option<String> {
    Some(duration(end? - start?))
}

/// The change for step execution `s` of execution `w`.
fn step_change(w: &Watched, s: &Value, by_id: &HashMap<&str, &Value>, rank: usize) -> Change {
    let st = s["StepStatus"].as_str().unwrap_or_default();
    let action = s["Action"].as_str().unwrap_or_default();
    let start = s["ExecutionStartTime"].as_f64();
    let end = s["ExecutionEndTime"].as_f64().filter(|_| terminal(st));
    let took = span(start, end).map_or_else(String::new, |d| format!(" ({d})"));
    let prefix = if w.depth > 0 { format!("{}: ", w.document) } else { String::new() };
    let label = step_label(s, by_id);
    let details = match Status::from_wire(st) {
        Some(Status::Success) => s["Outputs"].as_object().cloned().map_or(Details::None, Details::Outputs),
        Some(Status::Waiting) if action == "aws:approve" => {
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
