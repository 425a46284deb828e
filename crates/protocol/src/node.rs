//! The AWS SSM Agent's private `AmazonSSM.*` operations, which the public model (and so
//! `Operation`) does not have: routed here before the generated-operation lookup.
//!
//! * `RegisterManagedInstance` is anonymous: no `Authorization` header is needed (one that is
//!   sent is ignored, as the agent's anonymous client sends none).
//! * `RequestManagedInstanceRoleToken` and `UpdateManagedInstancePublicKey` are signed "SigV4
//!   with an RSA key": the `Authorization` header has SigV4's form with the node id as access key
//!   id, and `Signature=` is base64 RSA-PSS (SHA-256, 32-byte salt) over the SigV4 string to sign,
//!   verified with the node's registered public key. The date is checked against the clock as
//!   for any SigV4 request.
//! * `UpdateInstanceInformation` is ordinary SigV4 with the node's temporary credentials.
//! * The other private operations of the agent's SDK ([`UNSUPPORTED`]) are authenticated like
//!   any call and answer `UnsupportedOperationException` naming the operation.
//! * The message service (`EC2WindowsMessageDeliveryService.*`: GetMessages, AcknowledgeMessage,
//!   SendReply, FailMessage, DeleteMessage) is SigV4 with the node's credentials scoped to the
//!   signing name `ec2messages`.
//! * The Session Manager control channel (`ssmmessages`, `POST /v1/control-channel/<id>`) is
//!   refused, always the same way (403 with an `AccessDeniedException` body), so the AWS agent
//!   stays on `ec2messages` and never flaps between channels.

use crate::auth::{self, RequestParts, SERVICE};
use crate::sigv4;
use ssmd_api::nodes;
use ssmd_model::{ApiError, ErrorCode};
use ssmd_store::NodeRow;

/// The private operations handled here, by `X-Amz-Target` suffix.
pub const OPERATIONS: &[&str] = &[
    "RegisterManagedInstance",
    "RequestManagedInstanceRoleToken",
    "UpdateManagedInstancePublicKey",
    "UpdateInstanceInformation",
];

/// The operations of the AWS agent's own SSM SDK (`extra/aws-sdk-go/service/ssm` in
/// aws/amazon-ssm-agent, `ssmiface.SSMAPI`) that the public model does not have and ssmd does not
/// implement: signed requests for them answer `UnsupportedOperationException` naming the
/// operation, never `UnknownOperationException` (the agent's association, inventory, package and
/// calendar plugins call some of them and log the answer).
pub const UNSUPPORTED: &[&str] = &[
    "DeleteCommands",
    "DescribeAutomationActions",
    "DescribeAutomationExecutionParameters",
    "DescribeDocumentInternal",
    "DescribeDocumentParameters",
    "DescribeDocumentSchema",
    "DescribeDocumentStepSchema",
    "DescribeDocumentSteps",
    "ExecuteApi",
    "GetAutomationAction",
    "GetCalendar",
    "GetCommandInteractiveToken",
    "GetDocumentInternal",
    "GetManifest",
    "GetResourcePolicyInternal",
    "GetServiceSettingInternal",
    "ListCalendarEvents",
    "ListConsumerAccounts",
    "ListInstanceAssociations",
    "ListResourcesSupportPolicy",
    "ListServiceSettingsInternal",
    "ListSharedResources",
    "LockServiceLinkedRole",
    "PutCalendar",
    "PutConfigurePackageResult",
    "RequestAccess",
    "UnlockServiceLinkedRole",
    "UpdateInstanceAssociationStatus",
    "UpdateParameterDataInternal",
    "UpdateResourceSharingStateV2",
    "UpdateServiceSettingInternal",
    "ValidateResourceSharing",
];

/// The `X-Amz-Target` prefix of the message service.
pub const MESSAGE_PREFIX: &str = "EC2WindowsMessageDeliveryService";

/// The signing name of the message service.
pub const MESSAGE_SERVICE: &str = "ec2messages";

/// The private operation a target names, if it is one.
pub fn operation(target: &str) -> Option<&'static str> {
    if let Some(op) = target.strip_prefix(MESSAGE_PREFIX).and_then(|t| t.strip_prefix('.')) {
        return ssmd_api::commands::delivery::OPERATIONS.iter().copied().find(|o| *o == op);
    }
    let op = target.strip_prefix(ssmd_model::generated::schema::TARGET_PREFIX)?.strip_prefix('.')?;
    OPERATIONS.iter().chain(UNSUPPORTED).copied().find(|o| *o == op)
}

/// Whether a target names the message service.
fn is_message_service(target: &str) -> bool {
    target.starts_with(MESSAGE_PREFIX) && target[MESSAGE_PREFIX.len()..].starts_with('.')
}

/// The answer to the Session Manager control channel: refused, consistently.
pub fn refuse_control_channel() -> (u16, &'static str) {
    (
        403,
        "<AccessDeniedException><Message>ssmd does not offer the Session Manager control channel (ssmmessages); the agent's message delivery runs over ec2messages.</Message></AccessDeniedException>",
    )
}

/// Verifies an RSA-signed request and returns the registered node that signed it.
async fn rsa_signed(state: &crate::AppState, req: &RequestParts<'_>) -> Result<NodeRow, ApiError> {
    let a = sigv4::parse(req.headers).map_err(auth::sig_error)?;
    if a.service != SERVICE {
        return Err(ApiError::new(
            ErrorCode::InvalidSignatureException,
            format!("Credential should be scoped to correct service: '{SERVICE}'."),
        ));
    }
    sigv4::check_time(&a, state.clock.now_ms().div_euclid(1000)).map_err(auth::sig_error)?;
    sigv4::check_content_sha256(req.headers, req.body).map_err(auth::sig_error)?;
    let node = state
        .service
        .store()
        .node(&a.access_key_id)
        .await
        .map_err(ssmd_api::store_error)?
        .filter(|n| n.deregistered_ms.is_none() && n.region == a.region)
        .ok_or_else(|| nodes::unknown_node(&a.access_key_id))?;
    let sts = sigv4::string_to_sign(&a, req.method, req.path, req.query, req.headers, req.body);
    ssmd_nodeauth::verify_pss(&node.public_key, sts.as_bytes(), &a.signature).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidSignatureException,
            "The request signature we calculated does not match the signature you provided.",
        )
    })?;
    Ok(node)
}

/// Runs private operation `op` for a request whose body has been read.
pub async fn handle(state: &crate::AppState, op: &'static str, req: &RequestParts<'_>) -> Result<Vec<u8>, ApiError> {
    let svc = &state.service;
    let target = req.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if is_message_service(target) {
        let caller = state.auth.authenticate_for(req, state.clock.now_ms(), MESSAGE_SERVICE).await?;
        return ssmd_api::commands::delivery::handle(svc, &caller, op, crate::parse_input(req.body)?).await;
    }
    match op {
        "RegisterManagedInstance" => nodes::register(svc, crate::parse_input(req.body)?).await,
        "RequestManagedInstanceRoleToken" => {
            let node = rsa_signed(state, req).await?;
            nodes::request_token(svc, &node, crate::parse_input(req.body)?).await
        }
        "UpdateManagedInstancePublicKey" => {
            let node = rsa_signed(state, req).await?;
            nodes::update_public_key(svc, &node, crate::parse_input(req.body)?).await
        }
        "UpdateInstanceInformation" => {
            let caller = state.auth.authenticate(req, state.clock.now_ms()).await?;
            nodes::update_instance_information(svc, &caller, crate::parse_input(req.body)?).await
        }
        other if UNSUPPORTED.contains(&other) => {
            state.auth.authenticate(req, state.clock.now_ms()).await?;
            Err(ApiError::not_implemented(other))
        }
        other => Err(ApiError::new(ErrorCode::UnknownOperationException, format!("Unknown operation {other}."))),
    }
}
