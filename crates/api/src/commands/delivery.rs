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
pub const OPERATIONS: &[&str] = &["GetMessages", "AcknowledgeMessage", "SendReply", "FailMessage", "DeleteMessage"];

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
            if let Some((command_id, _)) = parse_message_id(id) {
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

/// What an agent reply says about one plugin.
fn reply_plugin(name: &str, v: &Value, now: i64) -> Plugin {
    // NUL can't be stored in PostgreSQL text (a script printing binary output would make every
    // reply fail); it is dropped, like other output the agent could not have shown as text.
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().replace('\0', "");
    let status = text("status");
    let end = End::from_agent(&status);
    let code = v.get("code").and_then(Value::as_i64).unwrap_or(if end.is_some() { 0 } else { -1 });
    // `NotStarted` is the agent's word (its protocol, not the SSM model) for a plugin it has
    // not begun; any other non-final status means the plugin runs. StatusDetails (free text)
    // says the same as Status in both cases.
    let (status, details) = match end {
        Some(e) => (e.plugin_status(), e.details().to_string()),
        None if status == "NotStarted" => (CommandPluginStatus::Pending, CommandPluginStatus::Pending.to_string()),
        None => (CommandPluginStatus::InProgress, CommandPluginStatus::InProgress.to_string()),
    };
    Plugin {
        name: v.get("stepName").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(name).replace('\0', ""),
        status,
        status_details: details,
        // The AWS agent reports a Failed plugin with code 0 as code 1.
        response_code: if end == Some(End::Failed) && code == 0 { 1 } else { code },
        start_ms: Some(now),
        end_ms: end.map(|_| now),
        output: cut(&text("output"), MAX_OUTPUT_CHARS),
        stdout: cut(&text("standardOutput"), MAX_STDOUT_CHARS),
        stderr: cut(&text("standardError"), MAX_STDERR_CHARS),
    }
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
    let Some((command_id, msg_node)) = parse_message_id(id) else {
        return Err(invalid_message(id));
    };
    if msg_node != node {
        return Err(access_denied(format!("Node {node} may not reply for {msg_node}.")));
    }
    let payload: Value = serde_json::from_str(payload_text).map_err(|e| {
        ApiError::new(ErrorCode::ValidationException, format!("The reply Payload is not valid JSON: {e}"))
    })?;
    let document_status = payload.get("documentStatus").and_then(Value::as_str).unwrap_or_default().to_string();
    let now = svc.now_ms();
    // Plugins in the order the agent lists them (serde_json keeps object order).
    let reported: Vec<Plugin> = payload
        .get("runtimeStatus")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| reply_plugin(k, v, now)).collect())
        .unwrap_or_default();
    let mut unsent = false;
    let settled = settle(svc, command_id, Scope::One(node), Some((reply_id, id)), |row, invocations| {
        unsent = false; // a retried transaction decides afresh
        // A reply for a command this node was never sent (or not sent yet: rate control has not
        // reached it) names no message of its own.
        let Some(mut inv) = invocations.into_iter().next().filter(|i| i.dispatched_ms.is_some()) else {
            unsent = true;
            return None;
        };
        let status = or_log(invocation_status(&inv))?;
        if is_final(status) {
            return None; // a late or repeated reply never rewrites a final result
        }
        inv.started_ms = inv.started_ms.or(Some(now));
        // Merge: a plugin keeps its first start time; one first seen finished started with the
        // invocation (the agent's first reply carries no plugins).
        let before = or_log(plugins(&inv))?;
        let mut list = reported.clone();
        for pl in &mut list {
            let old = before.iter().find(|o| o.name == pl.name).and_then(|o| o.start_ms);
            pl.start_ms = old.or(if pl.end_ms.is_some() { inv.started_ms } else { pl.start_ms });
        }
        if list.is_empty() {
            list = before;
        }
        let joined =
            |f: fn(&Plugin) -> &str| list.iter().map(f).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n");
        inv.stdout = cut(&joined(|p| &p.stdout), MAX_STDOUT_CHARS);
        inv.stderr = cut(&joined(|p| &p.stderr), MAX_STDERR_CHARS);
        inv.plugins = serde_json::to_string(&list).expect("plugins serialise");
        let s = match End::from_agent(&document_status) {
            Some(end) => {
                let mut p = progress(row).ok()?;
                inv.response_code = list
                    .iter()
                    .map(|pl| pl.response_code)
                    .find(|c| *c != 0)
                    .unwrap_or(if end == End::Success { 0 } else { 1 });
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
        };
        Some(s)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_command_and_node() {
        assert_eq!(parse_message_id("aws.ssm.abc-1.mi-0123"), Some(("abc-1", "mi-0123")));
        assert_eq!(parse_message_id("aws.ssm.abc"), None);
        assert_eq!(parse_message_id("aws.ssm.a.b.c"), None);
        assert_eq!(parse_message_id("other.abc.mi-1"), None);
    }
}
