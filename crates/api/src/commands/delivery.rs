//! The node side of Run Command, as the AWS SSM Agent speaks it (`EC2WindowsMessageDeliveryService`,
//! signing name `ec2messages`): GetMessages (a long poll held up to [`LONG_POLL_MS`]),
//! AcknowledgeMessage, SendReply (idempotent on ReplyId), FailMessage and DeleteMessage.
//!
//! Only a managed node's own credentials may call these, and only for its own messages: the
//! `Destination` must be the caller, and a message id names its node as its last part.

use super::*;
use serde_json::{Value, json};
use ssmd_core::clock::iso8601_ms;
use ssmd_core::command::End;
use ssmd_model::Caller;
use std::time::Duration;

/// The operations of `EC2WindowsMessageDeliveryService`.
/// `GetEndpoint` is in the agent's SDK too (`ssmmds`); ssmd has no endpoint discovery and says so.
pub const OPERATIONS: &[&str] =
    &["GetMessages", "AcknowledgeMessage", "SendReply", "FailMessage", "DeleteMessage", "GetEndpoint"];

/// The longest a GetMessages call is held when there is nothing for the node (the AWS agent's
/// HTTP timeout is 20 s).
pub const LONG_POLL_MS: i64 = 15_000;

fn access_denied(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::AccessDeniedException, msg)
}

fn invalid_message(id: &str) -> ApiError {
    ApiError::new(ErrorCode::ValidationException, format!("Message {id} does not exist for this node."))
        .with_type("InvalidMessageId")
}

fn required<'a>(input: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match input.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(ApiError::new(
            ErrorCode::ValidationException,
            format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null"
            ),
        )),
        Some(_) => Err(ApiError::new(ErrorCode::SerializationException, format!("{name} must be a string."))),
    }
}

/// The node a caller is; other callers may not use the message service.
fn node_of(caller: &Caller) -> Result<&str, ApiError> {
    crate::nodes::caller_node(caller)
        .ok_or_else(|| access_denied("Only a managed node's own credentials may use the message delivery service."))
}

/// (command id, node) of a command message id `aws.ssm.<CommandId>.<InstanceId>`.
fn parse_message_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("aws.ssm.")?;
    let (command, node) = rest.split_once('.')?;
    (!command.is_empty() && !node.is_empty() && !node.contains('.')).then_some((command, node))
}

/// What a cancel message id starts its command part with.
const CANCEL_PREFIX: &str = "cancel-";

/// The id of the cancel message of command `command_id` for `node`:
/// `aws.ssm.cancel-<CommandId>.<InstanceId>` — the AWS agent takes the part before the node as
/// a command id, and a reply to it names the command it cancels.
pub(crate) fn cancel_message_id(command_id: &str, node: &str) -> String {
    format!("aws.ssm.{CANCEL_PREFIX}{command_id}.{node}")
}

/// (command id, node) of a cancel message id.
fn parse_cancel_id(id: &str) -> Option<(&str, &str)> {
    let (command, node) = parse_message_id(id)?;
    Some((command.strip_prefix(CANCEL_PREFIX).filter(|c| !c.is_empty())?, node))
}

/// Runs operation `op` of the message service for `caller`.
pub async fn handle(svc: &Service, caller: &Caller, op: &str, input: Value) -> Result<Vec<u8>, ApiError> {
    if !input.is_object() {
        return Err(ApiError::new(ErrorCode::SerializationException, "The request body must be a JSON object."));
    }
    let node = node_of(caller)?.to_string();
    let out = match op {
        "GetMessages" => get_messages(svc, &node, &input).await?,
        "AcknowledgeMessage" => {
            let id = required(&input, "MessageId")?;
            if !svc.store.ack_message(&node, id).await.map_err(store_error)? {
                return Err(invalid_message(id));
            }
            if let Some((command_id, _)) = parse_message_id(id).filter(|_| parse_cancel_id(id).is_none()) {
                picked_up(svc, caller, command_id, &node).await?;
            }
            json!({})
        }
        "SendReply" => send_reply(svc, caller, &node, &input).await?,
        "FailMessage" => fail_message(svc, &node, &input).await?,
        "DeleteMessage" => {
            let id = required(&input, "MessageId")?;
            if !svc.store.delete_message(&node, id).await.map_err(store_error)? {
                return Err(invalid_message(id));
            }
            json!({})
        }
        "GetEndpoint" => return Err(ApiError::not_implemented(op)),
        other => {
            return Err(ApiError::new(ErrorCode::UnknownOperationException, format!("Unknown operation {other}.")));
        }
    };
    Ok(serde_json::to_vec(&out).expect("json"))
}

async fn get_messages(svc: &Service, node: &str, input: &Value) -> Result<Value, ApiError> {
    let destination = required(input, "Destination")?;
    if destination != node {
        return Err(access_denied(format!("Node {node} may not read the messages of {destination}.")));
    }
    let request_id = input.get("MessagesRequestId").and_then(Value::as_str).unwrap_or_default().to_string();
    let visibility = input.get("VisibilityTimeoutInSeconds").and_then(Value::as_i64).unwrap_or(10).clamp(1, 3600);
    // The hold is measured in real time (the service clock may be a test's manual clock).
    let deadline = tokio::time::Instant::now() + Duration::from_millis(LONG_POLL_MS as u64);
    let signal = svc.commands.signal(node);
    let messages = loop {
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = svc.now_ms();
        let found = svc.pickups.take(node, now, now + visibility * 1000).await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !found.is_empty() || left.is_zero() || svc.commands.closing() {
            break found;
        }
        // A message handed out earlier and never acknowledged comes back after its visibility
        // timeout: the poll looks again then, if it is still held.
        let back = svc.store.next_visible(node, now).await.map_err(store_error)?;
        let clock = svc.clock.clone();
        let returns = async move {
            match back {
                Some(at) => ssmd_engine::clock::sleep_until(&*clock, at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(left) => {}
            _ = woken => {}
            _ = returns => {}
        }
    };
    let list: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "CreatedDate": iso8601_ms(m.created_ms),
                "Destination": m.destination,
                "MessageId": m.message_id,
                "Payload": m.payload,
                "PayloadDigest": ssmd_core::document::sha256_hex(&m.payload),
                "Topic": m.topic,
            })
        })
        .collect();
    Ok(json!({"Destination": node, "Messages": list, "MessagesRequestId": request_id}))
}

/// An acknowledged command counts as picked up even when the agent's InProgress reply did not
/// arrive (it is spooled and sent later): the invocation is InProgress, so the delivery timeout
/// no longer applies to it. A read first, so the usual case (already InProgress) writes nothing.
async fn picked_up(svc: &Service, caller: &Caller, command_id: &str, node: &str) -> Result<(), ApiError> {
    let inv = svc.store.invocation(&caller.account, &caller.region, command_id, node).await.map_err(store_error)?;
    if !inv.is_some_and(|i| invocation_status(&i).is_ok_and(not_started) && i.dispatched_ms.is_some()) {
        return Ok(());
    }
    let now = svc.now_ms();
    settle(svc, command_id, Scope::One(node), None, |row, invocations| {
        let mut inv = invocations.into_iter().next()?;
        if inv.dispatched_ms.is_none() || !not_started(or_log(invocation_status(&inv))?) {
            return None;
        }
        mark_in_progress(&mut inv);
        inv.started_ms = inv.started_ms.or(Some(now));
        let mut s = started(row)?;
        s.invocations = vec![inv];
        Some(s)
    })
    .await?;
    Ok(())
}

async fn fail_message(svc: &Service, node: &str, input: &Value) -> Result<Value, ApiError> {
    let id = required(input, "MessageId")?;
    let Some((command_id, _topic, _acked)) = svc.store.message(node, id).await.map_err(store_error)? else {
        return Err(invalid_message(id));
    };
    if parse_message_id(id).is_some_and(|(c, n)| c == command_id && n == node) {
        let now = svc.now_ms();
        settle(svc, &command_id, Scope::One(node), None, |row, invocations| {
            let inv = invocations.into_iter().next()?;
            if is_final(or_log(invocation_status(&inv))?) {
                return None;
            }
            let mut p = progress(row).ok()?;
            let mut ends = Ends::default();
            ends.end(&mut p, inv, End::Undeliverable, now);
            Some(ends.into_settlement(settlement(row, &mut p, true)?))
        })
        .await?;
    }
    svc.store.delete_message(node, id).await.map_err(store_error)?;
    Ok(json!({}))
}

async fn send_reply(svc: &Service, caller: &Caller, node: &str, input: &Value) -> Result<Value, ApiError> {
    let id = required(input, "MessageId")?;
    let reply_id = required(input, "ReplyId")?;
    if reply_id.chars().count() > 64 || reply_id.contains('\0') {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "1 validation error detected: Value at 'replyId' failed to satisfy constraint: Member must have length \
             less than or equal to 64",
        ));
    }
    let payload_text = required(input, "Payload")?;
    let payload: Value = serde_json::from_str(payload_text).map_err(|e| {
        ApiError::new(ErrorCode::ValidationException, format!("The reply Payload is not valid JSON: {e}"))
    })?;
    let (command_id, msg_node, cancel) = match parse_cancel_id(id) {
        Some((command, n)) => (command, n, true),
        None => match parse_message_id(id) {
            Some((command, n)) => (command, n, false),
            None => return Err(invalid_message(id)),
        },
    };
    if msg_node != node {
        return Err(access_denied(format!("Node {node} may not reply for {msg_node}.")));
    }
    if cancel {
        // The AWS agent answers every message it takes with a document-level reply before it
        // acknowledges it, cancel messages included, and re-sends one that failed for two hours
        // (the first failure stops its queue). The cancel's effect is the command's own reply.
        return ignored(svc, caller, command_id, node, id).await;
    }
    let reply = reply::Reply::read(&payload, svc.now_ms());
    let now = svc.now_ms();
    let mut unsent = false;
    let settled = settle(svc, command_id, Scope::One(node), Some((reply_id, id)), |row, invocations| {
        unsent = false; // a retried transaction decides afresh
        // A reply for a command this node was never sent (or not sent yet: rate control has not
        // reached it) names no message of its own.
        let Some(inv) = invocations.into_iter().next().filter(|i| i.dispatched_ms.is_some()) else {
            unsent = true;
            return None;
        };
        fold(row, inv, &reply, now)
    })
    .await?;
    // Not settled: a repeated ReplyId (fine), or no such command — read only on this rare path.
    if !settled && !unsent {
        let inv = svc.store.invocation(&caller.account, &caller.region, command_id, node).await.map_err(store_error)?;
        unsent = inv.is_none_or(|i| i.dispatched_ms.is_none());
    }
    if unsent {
        return Err(invalid_message(id));
    }
    Ok(json!({}))
}

/// A reply to a cancel message: accepted with the service's empty answer and otherwise ignored,
/// as long as the message named a command of this node (else `InvalidMessageId`, as for any
/// message the node was never sent).
async fn ignored(svc: &Service, caller: &Caller, command_id: &str, node: &str, id: &str) -> Result<Value, ApiError> {
    let inv = svc.store.invocation(&caller.account, &caller.region, command_id, node).await.map_err(store_error)?;
    if inv.is_none_or(|i| i.dispatched_ms.is_none()) {
        return Err(invalid_message(id));
    }
    tracing::debug!(message_id = id, "reply to a cancel message accepted and ignored");
    Ok(json!({}))
}

/// How `reply` changes invocation `inv` of command `row`: its steps merge (see `reply`), the
/// first final document status ends it, an earlier one marks it started. `None`: nothing
/// changes (a reply that repeats what is stored, or a late one about an ended step).
fn fold(row: &CommandRow, mut inv: InvocationRow, reply: &reply::Reply, now: i64) -> Option<Settlement> {
    let status = or_log(invocation_status(&inv))?;
    let mut steps = or_log(super::steps(&inv))?;
    if !reply.trace.is_empty() && steps.trace.is_empty() {
        steps.trace = reply.trace.clone();
    }
    if is_final(status) {
        // The end is decided and never rewritten; a step reply that was spooled by the agent and
        // comes after the document's end still fills its step — if the agent ended the
        // invocation (not a deadline or a refused message).
        let by_agent = inv.started_ms.is_some()
            && [End::Success, End::Failed, End::ExecutionTimedOut, End::Cancelled]
                .iter()
                .any(|e| e.details() == inv.status_details && e.status() == status);
        if !by_agent || !reply::merge(&mut steps.plugins, &reply.steps, true) {
            return None;
        }
        let end = [End::Success, End::Failed, End::ExecutionTimedOut, End::Cancelled]
            .into_iter()
            .find(|e| e.details() == inv.status_details);
        reply::derive(&mut inv, &steps.plugins, &steps.trace, end);
        inv.plugins = steps.to_json();
        let mut s = started(row)?;
        s.invocations = vec![inv];
        return Some(s);
    }
    inv.started_ms = inv.started_ms.or(Some(now));
    reply::merge(&mut steps.plugins, &reply.steps, false);
    let end = reply.document.and_then(reply::AgentStatus::end);
    if let Some(end) = end
        && !steps.trace.is_empty()
        && steps.plugins.iter().all(|p| p.placeholder)
    {
        // The agent failed the document before running any step: its reason is every step's.
        reply::fail_unreported(&mut steps.plugins, end, &steps.trace, now);
    }
    reply::derive(&mut inv, &steps.plugins, &steps.trace, end);
    inv.plugins = steps.to_json();
    Some(match end {
        Some(end) => {
            let mut p = progress(row).ok()?;
            let mut ends = Ends::default();
            ends.end(&mut p, inv, end, now);
            ends.into_settlement(settlement(row, &mut p, true)?)
        }
        None => {
            if not_started(status) {
                mark_in_progress(&mut inv);
            }
            // Progress is untouched: the command only moves from Pending to InProgress.
            let mut s = started(row)?;
            s.acked = vec![inv.instance_id.clone()];
            s.invocations = vec![inv];
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_command_and_node() {
        assert_eq!(parse_message_id("aws.ssm.abc-1.mi-0123"), Some(("abc-1", "mi-0123")));
        assert_eq!(parse_message_id("aws.ssm.abc"), None);
        assert_eq!(parse_message_id("aws.ssm.a.b.c"), None);
        assert_eq!(parse_message_id("other.abc.mi-1"), None);
        let cancel = cancel_message_id("abc-1", "mi-0123");
        assert_eq!(parse_cancel_id(&cancel), Some(("abc-1", "mi-0123")));
        assert_eq!(parse_cancel_id("aws.ssm.abc-1.mi-0123"), None);
    }
}
