//! What an agent's `SendReply` says about an invocation, and how it folds into what is stored.
//!
//! The AWS agent (3.x, `agent/contracts/aggregator.go` `DocumentResultAggregator`,
//! `agent/messageservice/utils/messageutil.go`) replies to one message several times:
//!
//! 1. document level, before it acknowledges: `documentStatus InProgress`, `runtimeStatus` null
//!    (also for the cancel messages it gets, and `Failed` with the reason in
//!    `documentTraceOutput` when it cannot even start the document);
//! 2. after each step: `documentStatus InProgress` and `runtimeStatus` holding that one step;
//! 3. at the end: the document's status and — for a single step only — that step again (older
//!    agents list every step here).
//!
//! Replies that failed are spooled and re-sent later in no particular order, so any of them may
//! come after the final one. Folding therefore works per step: a reported step replaces the stored
//! step of the same name in place; steps keep the document's order (the invocation starts with a
//! placeholder per step, see [`placeholders`]); the document's end is decided once and never
//! rewritten, but a step the final reply did not carry may still arrive afterwards and fill its
//! place. The invocation's own output is derived from its steps in one place, [`derive`].

use super::*;
use serde_json::Value;
use ssmd_core::clock::parse_iso8601;
use ssmd_core::command::End;

/// A status of the agent's reply protocol (`contracts.ResultStatus`; not an SSM model enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentStatus {
    NotStarted,
    InProgress,
    Success,
    SuccessAndReboot,
    PassedAndReboot,
    Failed,
    Cancelled,
    TimedOut,
    Skipped,
    TestFailure,
    TestPass,
}

impl AgentStatus {
    /// The status an agent's word names (`None`: a word the protocol does not have).
    pub(crate) fn parse(s: &str) -> Option<AgentStatus> {
        use AgentStatus::*;
        Some(match s {
            "NotStarted" => NotStarted,
            "InProgress" => InProgress,
            "Success" => Success,
            "SuccessAndReboot" => SuccessAndReboot,
            "PassedAndReboot" => PassedAndReboot,
            "Failed" => Failed,
            "Cancelled" => Cancelled,
            "TimedOut" => TimedOut,
            "Skipped" => Skipped,
            "TestFailure" => TestFailure,
            "TestPass" => TestPass,
            _ => return None,
        })
    }

    /// The end this status means, if it is final. `SuccessAndReboot` / `PassedAndReboot` are not:
    /// the agent reboots the node, runs on, and reports the end after that.
    pub(crate) fn end(self) -> Option<End> {
        use AgentStatus::*;
        match self {
            Success | Skipped | TestPass => Some(End::Success),
            Failed | TestFailure => Some(End::Failed),
            TimedOut => Some(End::ExecutionTimedOut),
            Cancelled => Some(End::Cancelled),
            NotStarted | InProgress | SuccessAndReboot | PassedAndReboot => None,
        }
    }
}

/// One agent reply, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// `documentStatus` (`None`: absent or a word the protocol does not have, read as "still
    /// running").
    pub document: Option<AgentStatus>,
    /// `documentTraceOutput`: why the agent failed the document as a whole.
    pub trace: String,
    /// `runtimeStatus`, each step named by its key (the step name in 2.x documents, the plugin
    /// name in 1.x ones).
    pub steps: Vec<Plugin>,
}

/// Text as it may be stored: NUL can't be stored in PostgreSQL text (a script printing binary
/// output would make every reply fail), so it is dropped.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

impl Reply {
    /// Reads a reply payload received at `now`.
    pub(crate) fn read(payload: &Value, now: i64) -> Reply {
        let text = |v: &Value, k: &str| clean(v.get(k).and_then(Value::as_str).unwrap_or_default());
        let steps = payload
            .get("runtimeStatus")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| step(k, v, now)).collect())
            .unwrap_or_default();
        Reply {
            document: payload.get("documentStatus").and_then(Value::as_str).and_then(AgentStatus::parse),
            trace: cut(&text(payload, "documentTraceOutput"), MAX_STDERR_CHARS),
            steps,
        }
    }
}

/// What a reply says about one step.
fn step(key: &str, v: &Value, now: i64) -> Plugin {
    let text = |k: &str| clean(v.get(k).and_then(Value::as_str).unwrap_or_default());
    let status = v.get("status").and_then(Value::as_str).and_then(AgentStatus::parse);
    let end = status.and_then(AgentStatus::end);
    let code = v.get("code").and_then(Value::as_i64).unwrap_or(if end.is_some() { 0 } else { -1 });
    // `NotStarted` is a step the agent has not begun; any other non-final status means it runs.
    // StatusDetails (free text) says the same as Status in both cases.
    let (status, details) = match end {
        Some(e) => (e.plugin_status(), e.details().to_string()),
        None if status == Some(AgentStatus::NotStarted) => {
            (CommandPluginStatus::Pending, CommandPluginStatus::Pending.to_string())
        }
        None => (CommandPluginStatus::InProgress, CommandPluginStatus::InProgress.to_string()),
    };
    let time = |k: &str| v.get(k).and_then(Value::as_str).and_then(parse_iso8601);
    Plugin {
        name: clean(key),
        status,
        status_details: details,
        // The AWS agent reports a Failed step with code 0 as code 1.
        response_code: if end == Some(End::Failed) && code == 0 { 1 } else { code },
        start_ms: time("startDateTime").or(Some(now)),
        end_ms: end.map(|_| time("endDateTime").unwrap_or(now)),
        output: cut(&text("output"), MAX_OUTPUT_CHARS),
        stdout: cut(&text("standardOutput"), MAX_STDOUT_CHARS),
        stderr: cut(&text("standardError"), MAX_STDERR_CHARS),
        placeholder: false,
    }
}

/// The plugins an invocation starts with: one placeholder per step of `content` (the document
/// the node is sent), in the document's order — `mainSteps` by name (2.x), `runtimeConfig` by
/// plugin name (1.x, in name order: the AWS agent runs them in no fixed order). Placeholders are
/// not shown as CommandPlugins until the node reports the step, but name a step GetCommandInvocation
/// may ask for.
pub(crate) fn placeholders(content: &Value) -> Vec<Plugin> {
    let mut keys: Vec<String> = Vec::new();
    if let Some(steps) = content.get("mainSteps").and_then(Value::as_array) {
        keys.extend(steps.iter().filter_map(|s| s.get("name").and_then(Value::as_str)).map(clean));
    } else if let Some(plugins) = content.get("runtimeConfig").and_then(Value::as_object) {
        // Plugin-name order, whatever order the map keeps (serde_json's depends on features
        // other crates of a build turn on).
        keys.extend(plugins.keys().map(|k| clean(k)));
        keys.sort();
    }
    keys.dedup();
    keys.into_iter()
        .map(|name| Plugin {
            name,
            status: CommandPluginStatus::Pending,
            status_details: CommandPluginStatus::Pending.to_string(),
            response_code: -1,
            start_ms: None,
            end_ms: None,
            output: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            placeholder: true,
        })
        .collect()
}

/// Folds the steps of a reply into `stored`; `settled`: the invocation's end is decided, so only
/// steps that have not ended may still change. Returns whether anything changed.
pub(crate) fn merge(stored: &mut Vec<Plugin>, reported: &[Plugin], settled: bool) -> bool {
    let mut changed = false;
    for new in reported {
        match stored.iter_mut().find(|p| p.name == new.name) {
            Some(old) => {
                let ended = !old.placeholder && old.end_ms.is_some();
                if (settled && ended) || (*old == *new) {
                    continue;
                }
                let start = old.start_ms.filter(|_| !old.placeholder);
                *old = new.clone();
                // A step keeps the start time it was first reported with.
                old.start_ms = start.or(new.start_ms);
                changed = true;
            }
            None => {
                stored.push(new.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Ends the placeholder steps of an invocation the agent failed as a whole (it never ran them):
/// they take its end and show the agent's reason as their output.
pub(crate) fn fail_unreported(stored: &mut [Plugin], end: End, trace: &str, now: i64) {
    for p in stored.iter_mut().filter(|p| p.placeholder) {
        p.placeholder = false;
        p.status = end.plugin_status();
        p.status_details = end.details().to_string();
        p.response_code = if end == End::Success { 0 } else { 1 };
        p.end_ms = Some(now);
        p.output = cut(trace, MAX_OUTPUT_CHARS);
        p.stderr = cut(trace, MAX_STDERR_CHARS);
    }
}

/// The steps the node has reported (what CommandPlugins lists).
pub(crate) fn reported(list: &[Plugin]) -> Vec<&Plugin> {
    list.iter().filter(|p| !p.placeholder).collect()
}

/// An invocation's own output from its steps, in the document's order: the steps' standard
/// output and error joined (one line break between steps) and, for an invocation that has ended,
/// its response code: the first step's that is not 0, else 0 for Success and 1 otherwise. The
/// agent's reason for failing the whole document ends the standard error.
pub(crate) fn derive(inv: &mut InvocationRow, list: &[Plugin], trace: &str, end: Option<End>) {
    let steps = reported(list);
    let joined =
        |f: fn(&Plugin) -> &str| steps.iter().map(|p| f(p)).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n");
    inv.stdout = cut(&joined(|p| &p.stdout), MAX_STDOUT_CHARS);
    // Steps that only repeat the agent's reason (see `fail_unreported`) leave it to the end.
    let mut stderr =
        steps.iter().map(|p| p.stderr.as_str()).filter(|t| !t.is_empty() && *t != trace).collect::<Vec<_>>().join("\n");
    if !trace.is_empty() {
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        stderr.push_str(trace);
    }
    inv.stderr = cut(&stderr, MAX_STDERR_CHARS);
    if let Some(end) = end {
        inv.response_code = steps
            .iter()
            .filter(|p| p.end_ms.is_some())
            .map(|p| p.response_code)
            .find(|c| *c != 0)
            .unwrap_or(if end == End::Success { 0 } else { 1 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reported_step(name: &str, status: &str, code: i64, out: &str) -> Plugin {
        step(name, &json!({"status": status, "code": code, "standardOutput": out}), 5)
    }

    fn row() -> InvocationRow {
        InvocationRow {
            command_id: "c".into(),
            instance_id: "mi-1".into(),
            seq: 0,
            requested_ms: 0,
            instance_name: String::new(),
            status: "Failed".into(),
            status_details: "Failed".into(),
            dispatched_ms: None,
            started_ms: None,
            ended_ms: None,
            response_code: -1,
            stdout: String::new(),
            stderr: String::new(),
            plugins: String::new(),
        }
    }

    #[test]
    fn statuses_of_the_agent_protocol() {
        assert_eq!(AgentStatus::parse("SuccessAndReboot").and_then(AgentStatus::end), None);
        assert_eq!(AgentStatus::parse("Skipped").and_then(AgentStatus::end), Some(End::Success));
        assert_eq!(AgentStatus::parse("TimedOut").and_then(AgentStatus::end), Some(End::ExecutionTimedOut));
        assert_eq!(AgentStatus::parse("Bogus"), None);
    }

    #[test]
    fn placeholders_follow_the_document() {
        let v22 = json!({"mainSteps": [{"name": "b"}, {"name": "a"}, {"name": "c"}]});
        let names: Vec<String> = placeholders(&v22).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["b", "a", "c"]);
        let v12 = json!({"runtimeConfig": {"aws:runShellScript": {}, "aws:psModule": {}}});
        let names: Vec<String> = placeholders(&v12).into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["aws:psModule", "aws:runShellScript"]);
    }

    #[test]
    fn steps_replace_their_own_place_only() {
        let mut list = placeholders(&json!({"mainSteps": [{"name": "one"}, {"name": "two"}, {"name": "three"}]}));
        // Out of order, as spooled replies come back.
        assert!(merge(&mut list, &[reported_step("three", "Success", 0, "3")], false));
        assert!(merge(&mut list, &[reported_step("one", "Failed", 2, "1")], false));
        let names: Vec<(&str, bool)> = list.iter().map(|p| (p.name.as_str(), p.placeholder)).collect();
        assert_eq!(names, [("one", false), ("two", true), ("three", false)]);
        // Once settled, an ended step is never rewritten, a missing one still fills its place.
        assert!(!merge(&mut list, &[reported_step("one", "Success", 0, "x")], true));
        assert!(merge(&mut list, &[reported_step("two", "Success", 0, "2")], true));
        let mut inv = row();
        derive(&mut inv, &list, "", Some(End::Failed));
        assert_eq!((inv.stdout.as_str(), inv.response_code), ("1\n2\n3", 2));
        // A step the agent reports unknown to the document goes last.
        assert!(merge(&mut list, &[reported_step("extra", "Success", 0, "")], true));
        assert_eq!(list.last().map(|p| p.name.as_str()), Some("extra"));
    }

    #[test]
    fn a_document_failed_as_a_whole_shows_its_reason() {
        let mut list = placeholders(&json!({"mainSteps": [{"name": "one"}, {"name": "two"}]}));
        fail_unreported(&mut list, End::Failed, "cannot resolve {{ssm:x}}", 9);
        assert!(list.iter().all(|p| !p.placeholder && p.status == CommandPluginStatus::Failed));
        assert_eq!(list[0].output, "cannot resolve {{ssm:x}}");
        let mut inv = row();
        derive(&mut inv, &list, "cannot resolve {{ssm:x}}", Some(End::Failed));
        assert_eq!((inv.stderr.as_str(), inv.response_code), ("cannot resolve {{ssm:x}}", 1), "the reason once");
    }
}
