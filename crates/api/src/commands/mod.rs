//! Run Command: SendCommand and its rate-controlled delivery to managed nodes, the queries on
//! commands and invocations, CancelCommand, and the node side (`ec2messages`: GetMessages,
//! AcknowledgeMessage, SendReply, FailMessage, DeleteMessage).
//!
//! State lives in the store (`commands`, `command_invocations`, `node_messages`); every change to
//! a command goes through the store's settle transaction with the pure rules of
//! `ssmd_core::command::Progress` deciding counters, dispatch and status. Long polls wait on a
//! per-node [`Hub`] signal, raised locally when a message is queued and by the [`worker`] (which
//! also times out undelivered work) for messages queued by other replicas or back from their
//! visibility timeout.

pub(crate) mod cancel;
pub mod delivery;
pub(crate) mod pickup;
pub(crate) mod query;
pub(crate) mod reply;
pub(crate) mod send;
pub mod worker;

use crate::errors::stored;
use crate::{Service, store_error};
use serde::{Deserialize, Serialize};
use ssmd_core::command::{End, Progress};
use ssmd_model::enums::CommandInvocationStatus as InvStatus;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, ErrorCode};
use ssmd_store::{CommandRow, InvocationRow, Scope, Settlement};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// SSM's limits on what an invocation keeps of a plugin's output.
pub const MAX_STDOUT_CHARS: usize = 24_000;
/// See [`MAX_STDOUT_CHARS`].
pub const MAX_STDERR_CHARS: usize = 8_000;
/// The combined `Output` of a plugin as ListCommandInvocations shows it.
pub const MAX_OUTPUT_CHARS: usize = 2_500;

/// Wakes long polls: one signal per node, raised by the store's `node:<id>` wake-ups (a message
/// queued for the node in this replica or, on PostgreSQL, any other).
#[derive(Default)]
pub struct Hub {
    nodes: Mutex<HashMap<String, Arc<Notify>>>,
    /// Set when the server shuts down: long polls answer at once instead of holding.
    closing: std::sync::atomic::AtomicBool,
}

impl Hub {
    /// Ends every long poll now and makes new ones answer at once (server shutdown, so
    /// in-flight requests finish without waiting out their hold).
    pub fn close(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        let all: Vec<Arc<Notify>> = self.nodes.lock().expect("hub").values().cloned().collect();
        all.iter().for_each(|n| n.notify_waiters());
    }

    /// Whether the server is shutting down.
    pub fn closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The signal of `node` (created on first use).
    pub fn signal(&self, node: &str) -> Arc<Notify> {
        self.nodes.lock().expect("hub").entry(node.to_string()).or_default().clone()
    }

    /// Wakes every long poll held now (wake-ups may have been missed).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self.nodes.lock().expect("hub").values().cloned().collect();
        all.iter().for_each(|n| n.notify_waiters());
    }

    /// Wakes every long poll of `node` that is waiting now.
    pub fn wake(&self, node: &str) {
        let n = self.nodes.lock().expect("hub").get(node).cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }
}

/// A plugin's result as kept with its invocation: the `CommandPlugin` fields plus the output
/// GetCommandInvocation returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plugin {
    pub name: String,
    pub status: CommandPluginStatus,
    pub status_details: String,
    pub response_code: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub output: String,
    pub stdout: String,
    pub stderr: String,
    /// A step of the document the node has not reported yet (see `reply::placeholders`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub placeholder: bool,
}

/// What an invocation keeps of its node's replies: its steps and the agent's reason for
/// failing the document as a whole (`documentTraceOutput`). Stored as JSON in the invocation's
/// `plugins` column: a bare array of steps when there is no reason (as before there was one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Steps {
    pub plugins: Vec<Plugin>,
    #[serde(default)]
    pub trace: String,
}

impl Steps {
    /// The stored form.
    pub(crate) fn to_json(&self) -> String {
        if self.trace.is_empty() {
            serde_json::to_string(&self.plugins).expect("plugins serialise")
        } else {
            serde_json::to_string(self).expect("plugins serialise")
        }
    }
}

impl Plugin {
    fn shape(&self, spec: &Command) -> CommandPlugin {
        CommandPlugin {
            name: Some(self.name.clone()),
            status: Some(self.status),
            status_details: Some(self.status_details.clone()),
            response_code: Some(self.response_code as i32),
            response_start_date_time: self.start_ms.map(ssmd_core::clock::epoch_seconds),
            response_finish_date_time: self.end_ms.map(ssmd_core::clock::epoch_seconds),
            output: Some(self.output.clone()),
            standard_output_url: Some(String::new()),
            standard_error_url: Some(String::new()),
            output_s3_region: spec.output_s3_region.clone(),
            output_s3_bucket_name: Some(spec.output_s3_bucket_name.clone().unwrap_or_default()),
            output_s3_key_prefix: Some(spec.output_s3_key_prefix.clone().unwrap_or_default()),
        }
    }
}

/// The steps and trace stored with an invocation.
pub(crate) fn steps(i: &InvocationRow) -> Result<Steps, ApiError> {
    let bad = |e: serde_json::Error| {
        ApiError::internal(format!("the plugins of {} on {} do not read back: {e}", i.command_id, i.instance_id))
    };
    if i.plugins.trim_start().starts_with('{') {
        serde_json::from_str(&i.plugins).map_err(bad)
    } else {
        Ok(Steps { plugins: serde_json::from_str(&i.plugins).map_err(bad)?, trace: String::new() })
    }
}

/// The plugins stored with an invocation (placeholders included).
pub(crate) fn plugins(i: &InvocationRow) -> Result<Vec<Plugin>, ApiError> {
    Ok(steps(i)?.plugins)
}

/// A stored command's `Status`.
pub(crate) fn command_status(row: &CommandRow) -> Result<CommandStatus, ApiError> {
    stored(&row.status)
}

/// A stored invocation's `Status`.
pub(crate) fn invocation_status(i: &InvocationRow) -> Result<InvStatus, ApiError> {
    stored(&i.status)
}

/// Inside a settle, which can only decline: a stored value that does not read back is logged
/// (as the protocol layer logs an internal error) and the settle declines, leaving the rows as
/// they are.
pub(crate) fn or_log<T>(r: Result<T, ApiError>) -> Option<T> {
    r.map_err(|e| {
        tracing::error!(error = %e, detail = e.internal_detail().unwrap_or_default(), "a command row does not read back")
    })
    .ok()
}

/// Whether an invocation's result is final (`ssmd_store::FINAL_STATUSES`, which the store's
/// queries use, lists the same statuses; a test keeps them equal).
pub(crate) fn is_final(s: InvStatus) -> bool {
    matches!(s, InvStatus::Success | InvStatus::Failed | InvStatus::TimedOut | InvStatus::Cancelled)
}

/// Whether a command's status is final.
pub(crate) fn command_is_final(s: CommandStatus) -> bool {
    matches!(s, CommandStatus::Success | CommandStatus::Failed | CommandStatus::TimedOut | CommandStatus::Cancelled)
}

/// The invocation status a plugin status is reported as (every plugin status is one).
pub(crate) fn plugin_as_invocation(s: CommandPluginStatus) -> InvStatus {
    match s {
        CommandPluginStatus::Pending => InvStatus::Pending,
        CommandPluginStatus::InProgress => InvStatus::InProgress,
        CommandPluginStatus::Success => InvStatus::Success,
        CommandPluginStatus::TimedOut => InvStatus::TimedOut,
        CommandPluginStatus::Cancelled => InvStatus::Cancelled,
        CommandPluginStatus::Failed => InvStatus::Failed,
    }
}

/// The static part of a command (what SendCommand answered, before counters and status).
pub(crate) fn spec(row: &CommandRow) -> Command {
    serde_json::from_str(&row.spec).unwrap_or_default()
}

/// The `Command` shape of a stored command.
pub(crate) fn command_shape(row: &CommandRow) -> Result<Command, ApiError> {
    Ok(Command {
        status: Some(command_status(row)?),
        status_details: Some(row.status_details.clone()),
        target_count: Some(row.target_count as i32),
        completed_count: Some(row.completed_count as i32),
        error_count: Some(row.error_count as i32),
        delivery_timed_out_count: Some(row.delivery_timed_out_count as i32),
        ..spec(row)
    })
}

/// The `CommandInvocation` shape of a stored invocation.
pub(crate) fn invocation_shape(
    spec: &Command,
    i: &InvocationRow,
    details: bool,
) -> Result<CommandInvocation, ApiError> {
    let steps = steps(i)?;
    Ok(CommandInvocation {
        command_id: Some(i.command_id.clone()),
        instance_id: Some(i.instance_id.clone()),
        instance_name: Some(i.instance_name.clone()),
        comment: Some(spec.comment.clone().unwrap_or_default()),
        document_name: spec.document_name.clone(),
        document_version: spec.document_version.clone(),
        requested_date_time: Some(ssmd_core::clock::epoch_seconds(i.requested_ms)),
        status: Some(invocation_status(i)?),
        status_details: Some(i.status_details.clone()),
        command_plugins: Some(if details {
            reply::reported(&steps.plugins).into_iter().map(|p| p.shape(spec)).collect()
        } else {
            vec![]
        }),
        trace_output: Some(steps.trace),
        standard_output_url: Some(String::new()),
        standard_error_url: Some(String::new()),
        service_role: Some(spec.service_role.clone().unwrap_or_default()),
        notification_config: Some(spec.notification_config.clone().unwrap_or_else(|| NotificationConfig {
            notification_arn: Some(String::new()),
            notification_events: Some(vec![]),
            notification_type: Some(String::new()),
        })),
        cloud_watch_output_config: spec.cloud_watch_output_config.clone(),
    })
}

/// The command's progress as stored.
pub(crate) fn progress(row: &CommandRow) -> Result<Progress, ApiError> {
    serde_json::from_str(&row.progress).map_err(|e| ApiError::internal(format!("command {} progress: {e}", row.id)))
}

/// A settlement that writes `p` and the command's derived status and counters; the caller adds
/// its invocation changes. Once dispatch has stopped on errors, the targets never sent end here
/// (Cancelled / Terminated), so the command can finish. `None` (logged): the row's status does
/// not read back.
pub(crate) fn settlement(row: &CommandRow, p: &mut Progress, started: bool) -> Option<Settlement> {
    let was = or_log(command_status(row))?;
    let terminated = p.terminate_unsent();
    let (status, details) = p.status(started || was != CommandStatus::Pending);
    Some(Settlement {
        terminate_unsent: terminated > 0,
        status: status.to_string(),
        status_details: details.into(),
        progress: serde_json::to_string(p).expect("progress serialises"),
        completed_count: p.completed as i64,
        error_count: p.errors as i64,
        delivery_timed_out_count: p.delivery_timed_out as i64,
        ..Default::default()
    })
}

/// Invocations ended in one settle, and what that frees: the one way an invocation ends
/// (replies, FailMessage, CancelCommand, the delivery-timeout worker).
#[derive(Default)]
pub(crate) struct Ends {
    invocations: Vec<InvocationRow>,
    drop: Vec<String>,
    dispatch: Vec<i64>,
}

impl Ends {
    /// Ends `inv` with `end` at `now`: rate control counts it — one that was sent frees its slot
    /// (the targets that may go next are kept) and its message is withdrawn; one never sent is
    /// passed over when its turn comes — and its row takes the end's status.
    pub(crate) fn end(&mut self, p: &mut Progress, mut inv: InvocationRow, end: End, now: i64) {
        let seq = inv.seq as usize;
        if inv.dispatched_ms.is_some() {
            self.dispatch.extend(p.end(seq, end).into_iter().map(|d| d as i64));
            self.drop.push(inv.instance_id.clone());
        } else {
            p.end_unsent(seq, end);
        }
        inv.status = end.status().to_string();
        inv.status_details = end.details().into();
        inv.ended_ms = Some(now);
        self.invocations.push(inv);
    }

    /// Adds the ends to a settlement (made after them, so it carries the progress they made).
    pub(crate) fn into_settlement(self, mut s: Settlement) -> Settlement {
        s.invocations.extend(self.invocations);
        s.drop_messages.extend(self.drop);
        s.dispatch.extend(self.dispatch);
        s
    }
}

/// A settlement that leaves the command's progress and counters as they are, only marking it
/// InProgress if it was Pending (a node reported it started). `None` (logged): the row's status
/// does not read back.
pub(crate) fn started(row: &CommandRow) -> Option<Settlement> {
    let (status, details) = if or_log(command_status(row))? == CommandStatus::Pending {
        let s = CommandStatus::InProgress.to_string();
        (s.clone(), s)
    } else {
        (row.status.clone(), row.status_details.clone())
    };
    Some(Settlement {
        status,
        status_details: details,
        progress: row.progress.clone(),
        completed_count: row.completed_count,
        error_count: row.error_count,
        delivery_timed_out_count: row.delivery_timed_out_count,
        ..Default::default()
    })
}

/// Invocation statuses in which the node has not picked the command up yet.
pub(crate) fn not_started(status: InvStatus) -> bool {
    matches!(status, InvStatus::Pending | InvStatus::Delayed)
}

/// Marks an invocation InProgress (its node picked it up); the details say the same.
pub(crate) fn mark_in_progress(inv: &mut InvocationRow) {
    inv.status = InvStatus::InProgress.to_string();
    inv.status_details = InvStatus::InProgress.to_string();
}

/// Runs a settle on command `id` (the nodes that get new messages are woken by the store's
/// wake-ups once it commits). `Ok(false)`: a duplicate reply or no such command. `decide` runs
/// again if the store repeats the transaction, so whatever it records outside itself must be
/// reset at its start.
pub(crate) async fn settle<F>(
    svc: &Service,
    id: &str,
    scope: Scope<'_>,
    reply: Option<(&str, &str)>,
    decide: F,
) -> Result<bool, ApiError>
where
    F: FnMut(&CommandRow, Vec<InvocationRow>) -> Option<Settlement> + Send,
{
    let settled = svc.store.settle_command(id, scope, reply, svc.now_ms(), decide).await.map_err(store_error)?;
    Ok(settled.is_some())
}

/// `InvalidCommandId` for a command the caller does not have.
pub(crate) fn invalid_command() -> ApiError {
    ApiError::new(ErrorCode::InvalidCommandId, "The command ID is not valid.")
}

/// Cuts `s` to at most `max` characters (on a character boundary).
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_agree_with_the_store() {
        let sorted = |mut v: Vec<&'static str>| {
            v.sort();
            v
        };
        let store = sorted(ssmd_store::FINAL_STATUSES.to_vec());
        let invocations = InvStatus::ALL.iter().filter(|s| is_final(**s)).map(InvStatus::as_str).collect();
        assert_eq!(sorted(invocations), store);
        let commands = CommandStatus::ALL.iter().filter(|s| command_is_final(**s)).map(CommandStatus::as_str).collect();
        assert_eq!(sorted(commands), store);
    }
}
