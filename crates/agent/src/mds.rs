//! The message delivery service (`EC2WindowsMessageDeliveryService.*`, signing name
//! `ec2messages`): long-polled `GetMessages`, `AcknowledgeMessage`, `FailMessage`, `SendReply`,
//! and the payloads of the two topics handled, `aws.ssm.sendCommand…` and
//! `aws.ssm.cancelCommand…`.

use crate::http::CallError;
use crate::session::Session;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The target prefix of the message delivery service.
pub const PREFIX: &str = "EC2WindowsMessageDeliveryService";

/// The visibility timeout asked for (as the AWS agent).
pub const VISIBILITY_TIMEOUT_SECS: u64 = 10;

/// The time limit of a `GetMessages` call (the server holds it up to ~15 s).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(20);

/// Topic prefix of Run Command messages.
pub const SEND_COMMAND: &str = "aws.ssm.sendCommand";

/// Topic prefix of cancellations.
pub const CANCEL_COMMAND: &str = "aws.ssm.cancelCommand";

/// `FailMessage` type for a topic without a handler.
pub const NO_HANDLER: &str = "NoHandlerExists";

/// `FailMessage` type for a payload that cannot be handled.
pub const INTERNAL_HANDLER: &str = "InternalHandlerException";

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    /// ISO 8601 creation date.
    #[serde(default)]
    pub created_date: String,
    /// The instance id.
    #[serde(default)]
    pub destination: String,
    /// `aws.ssm.<CommandId>.<InstanceId>`.
    pub message_id: String,
    /// The payload, a JSON document in a string.
    #[serde(default)]
    pub payload: String,
    /// SHA-256 of the payload (not checked, as by the AWS agent).
    #[serde(default)]
    pub payload_digest: String,
    /// The topic.
    #[serde(default)]
    pub topic: String,
}

/// The payload of a `aws.ssm.sendCommand` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendCommandPayload {
    /// Parameter values: strings or lists of strings.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The whole document.
    pub document_content: Value,
    /// The command id.
    #[serde(default)]
    pub command_id: String,
    /// The document's name.
    #[serde(default)]
    pub document_name: String,
    /// S3 output key prefix (reported, not used: ssmd-agent does not upload).
    #[serde(default, rename = "OutputS3KeyPrefix")]
    pub output_s3_key_prefix: String,
    /// S3 output bucket (reported, not used).
    #[serde(default, rename = "OutputS3BucketName")]
    pub output_s3_bucket_name: String,
}

/// The payload of a `aws.ssm.cancelCommand` message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelPayload {
    /// The message id of the command to cancel.
    pub cancel_message_id: String,
}

/// The command id of a message id `aws.ssm.<CommandId>.<InstanceId>`: its second-to-last
/// dot-separated part (as the AWS agent derives it).
pub fn command_id_of(message_id: &str) -> Option<&str> {
    let mut parts = message_id.rsplit('.');
    parts.next()?;
    parts.next().filter(|s| !s.is_empty())
}

fn target(op: &str) -> String {
    format!("{PREFIX}.{op}")
}

/// `GetMessages`: waits (up to the server's hold) for messages for `instance_id`.
pub fn get_messages(session: &Session, instance_id: &str) -> Result<Vec<Message>, CallError> {
    let body = json!({
        "Destination": instance_id,
        "MessagesRequestId": crate::ids::uuid_v4(),
        "VisibilityTimeoutInSeconds": VISIBILITY_TIMEOUT_SECS,
    });
    let answer = session.call_with_timeout(&target("GetMessages"), &body, Some(POLL_TIMEOUT))?;
    Ok(read_messages(&answer))
}

/// The messages of a `GetMessages` answer. One that cannot be read is skipped (and failed with
/// `InternalHandlerException` by the caller if it has an id), so that it does not hide the others.
pub fn read_messages(answer: &Value) -> Vec<Message> {
    let Some(list) = answer.get("Messages").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|m| match serde_json::from_value::<Message>(m.clone()) {
            Ok(msg) if !msg.message_id.is_empty() => Some(msg),
            _ => {
                crate::warn!("skipping a message that cannot be read: {m}");
                None
            }
        })
        .collect()
}

/// `AcknowledgeMessage`.
pub fn acknowledge(session: &Session, message_id: &str) -> Result<(), CallError> {
    session.call(&target("AcknowledgeMessage"), &json!({ "MessageId": message_id })).map(|_| ())
}

/// `FailMessage`.
pub fn fail(session: &Session, message_id: &str, failure_type: &str) -> Result<(), CallError> {
    let body = json!({ "MessageId": message_id, "FailureType": failure_type });
    session.call(&target("FailMessage"), &body).map(|_| ())
}

/// `SendReply`.
pub fn send_reply(session: &Session, message_id: &str, reply_id: &str, payload: &str) -> Result<(), CallError> {
    let body = json!({ "MessageId": message_id, "ReplyId": reply_id, "Payload": payload });
    session.call(&target("SendReply"), &body).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids() {
        assert_eq!(command_id_of("aws.ssm.0b1c-22.mi-0123456789abcdef0"), Some("0b1c-22"));
        assert_eq!(command_id_of("x"), None);
        assert_eq!(command_id_of("a..b"), None);
    }

    #[test]
    fn payloads() {
        let m: Message = serde_json::from_value(json!({"CreatedDate":"2026-11-23T06:00:00.000Z","Destination":"mi-1",
            "MessageId":"aws.ssm.c.mi-1","Payload":"{}","PayloadDigest":"d","Topic":"aws.ssm.sendCommand.x"}))
        .unwrap();
        assert_eq!(m.topic, "aws.ssm.sendCommand.x");
        let p: SendCommandPayload = serde_json::from_str(
            r#"{"Parameters":{"commands":["echo hi"]},"DocumentContent":{"schemaVersion":"1.2"},"CommandId":"c",
            "DocumentName":"AWS-RunShellScript","OutputS3KeyPrefix":"","OutputS3BucketName":"",
            "CloudWatchLogGroupName":"","CloudWatchOutputEnabled":"false"}"#,
        )
        .unwrap();
        assert_eq!((p.command_id.as_str(), p.parameters["commands"][0].as_str()), ("c", Some("echo hi")));
        let c: CancelPayload = serde_json::from_str(r#"{"CancelMessageId":"aws.ssm.c.mi-1"}"#).unwrap();
        assert_eq!(c.cancel_message_id, "aws.ssm.c.mi-1");
        assert!(serde_json::from_str::<SendCommandPayload>(r#"{"Parameters":{}}"#).is_err());
        let ms = read_messages(&json!({"Messages": [{"MessageId": "a", "Topic": "t"}, {"Topic": "no id"}, 5]}));
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].message_id, "a");
        assert!(read_messages(&json!({"Messages": null})).is_empty());
    }
}
