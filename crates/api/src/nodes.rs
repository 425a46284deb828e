//! Managed nodes, the node-facing half: the AWS SSM Agent's private operations that are not in
//! the public model (`RegisterManagedInstance`, `RequestManagedInstanceRoleToken`,
//! `UpdateManagedInstancePublicKey`, `UpdateInstanceInformation`), plus the public
//! `DeregisterManagedInstance`.
//!
//! The HTTP layer authenticates the private calls (none for registration, RSA-signed SigV4 for
//! the token and key calls, ordinary SigV4 with the node's temporary credentials for the rest)
//! and hands over the JSON input; validation happens here, with the errors the AWS agent
//! surfaces. Temporary credentials last `TOKEN_LIFETIME_MS`; their access key row names its node,
//! which is how the node's identity (`arn:aws:ssm:<region>:<account>:managed-instance/<mi-id>`)
//! reaches `Caller`.

use crate::errors::validation;
use crate::{Service, store_error};
use serde_json::{Value, json};
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{AccessKey, ActivationUse, NewNode, NodeInfo, NodeRegistration, NodeRow, StoreError};

/// How long the credentials `RequestManagedInstanceRoleToken` issues last.
pub const TOKEN_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// The `__type` AWS answers when a token request's fingerprint is not the registered one.
pub const FINGERPRINT_MISMATCH: &str = "MachineFingerprintDoesNotMatch";

/// The ARN of a managed node, as the `Caller` of requests signed with its credentials.
pub fn node_arn(region: &str, account: &str, id: &str) -> String {
    ssmd_core::arn::ssm(region, account, &format!("managed-instance/{id}"))
}

/// The node id a caller's ARN names, if the caller is a managed node.
pub fn caller_node(caller: &Caller) -> Option<&str> {
    let prefix = node_arn(&caller.region, &caller.account, "");
    caller.arn.strip_prefix(prefix.as_str()).filter(|id| !id.is_empty())
}

/// The error for a node id that does not name a registered node (AWS's words).
pub fn unknown_node(id: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidInstanceId, format!("Not existing InstanceId {id}"))
}

fn obj(input: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    input
        .as_object()
        .ok_or_else(|| ApiError::new(ErrorCode::SerializationException, "The request body must be a JSON object."))
}

/// A required string member with a length range (in characters), in AWS's validation words.
fn string<'a>(o: &'a serde_json::Map<String, Value>, name: &str, min: usize, max: usize) -> Result<&'a str, ApiError> {
    let path = {
        let mut c = name.chars();
        c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
    };
    let v = match o.get(name) {
        None | Some(Value::Null) => {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                format!(
                    "1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
                ),
            ));
        }
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::SerializationException,
                format!("Could not read the request: {name} must be a string."),
            ));
        }
    };
    let n = v.chars().count();
    if n < min {
        return Err(validation(v, &path, &format!("Member must have length greater than or equal to {min}")));
    }
    if n > max {
        return Err(validation(v, &path, &format!("Member must have length less than or equal to {max}")));
    }
    Ok(v)
}

fn optional(o: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= 1024 => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(validation(s, name, "Member must have length less than or equal to 1024")),
        Some(_) => Err(ApiError::new(
            ErrorCode::SerializationException,
            format!("Could not read the request: {name} must be a string."),
        )),
    }
}

/// Checks a `PublicKey`/`PublicKeyType` pair.
fn check_key(key: &str, key_type: &str, type_member: &str) -> Result<(), ApiError> {
    if key_type != ssmd_nodeauth::PUBLIC_KEY_TYPE {
        return Err(validation(key_type, type_member, "Member must satisfy enum value set: [Rsa]"));
    }
    ssmd_nodeauth::check_public_key(key)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameters, format!("The public key is not valid: {e}.")))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// `RegisterManagedInstance` (anonymous): registers a node with an activation.
pub async fn register(svc: &Service, input: Value) -> Result<Vec<u8>, ApiError> {
    let o = obj(&input)?;
    let code = string(o, "ActivationCode", 20, 250)?;
    let activation_id = string(o, "ActivationId", 36, 36)?;
    let public_key = string(o, "PublicKey", 392, 4096)?;
    let key_type = string(o, "PublicKeyType", 1, 16)?;
    let fingerprint = string(o, "Fingerprint", 1, 256)?;
    if !is_uuid(activation_id) {
        return Err(ApiError::new(
            ErrorCode::InvalidActivationId,
            format!("The activation ID {activation_id} isn't valid. Verify that you entered the correct ActivationId."),
        ));
    }
    check_key(public_key, key_type, "publicKeyType")?;
    let mut new = NewNode {
        id: ssmd_nodeauth::managed_instance_id(),
        activation_id: activation_id.to_ascii_lowercase(),
        code_sha256: crate::activations::code_hash(code),
        public_key: public_key.to_string(),
        public_key_type: key_type.to_string(),
        fingerprint: fingerprint.to_string(),
    };
    let now = svc.now_ms();
    let node = loop {
        match svc.store.register_node(&new, now).await {
            Ok(NodeRegistration::Registered(n)) => break n,
            Ok(NodeRegistration::Refused(why)) => {
                let message = match why {
                    ActivationUse::Expired => "Activation has expired",
                    ActivationUse::Exhausted => "Activation has reached its registration limit",
                    _ => "Not existing activation ID or activation code",
                };
                return Err(ApiError::new(ErrorCode::InvalidActivation, message));
            }
            // An id collision rolled everything back: draw another.
            Err(StoreError::Conflict) => new.id = ssmd_nodeauth::managed_instance_id(),
            Err(e) => return Err(store_error(e)),
        }
    };
    tracing::info!(
        instance_id = node.id,
        activation_id = node.activation_id,
        account = node.account,
        "node registered"
    );
    ssmd_model::encode(&json!({ "InstanceId": node.id }))
}

/// A new session token: 256 characters of base64 alphabet, like AWS's.
fn session_token() -> String {
    ssmd_core::ids::random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 256)
}

/// `RequestManagedInstanceRoleToken`, for `node` whose RSA signature the HTTP layer verified:
/// checks the fingerprint and issues temporary credentials.
pub async fn request_token(svc: &Service, node: &NodeRow, input: Value) -> Result<Vec<u8>, ApiError> {
    let o = obj(&input)?;
    let fingerprint = string(o, "Fingerprint", 1, 256)?;
    if fingerprint != node.fingerprint {
        return Err(ApiError::new(
            ErrorCode::InvalidInstanceId,
            format!("The fingerprint of the machine does not match the one registered for {}.", node.id),
        )
        .with_type(FINGERPRINT_MISMATCH));
    }
    let now = svc.now_ms();
    let key = AccessKey {
        access_key_id: format!("ASIA{}", &ssmd_core::ids::access_key_id()[4..]),
        secret_access_key: ssmd_core::ids::secret_access_key(),
        account: node.account.clone(),
        session_token: Some(session_token()),
        expires_ms: Some(now + TOKEN_LIFETIME_MS),
        user_name: None,
        node_id: Some(node.id.clone()),
    };
    if !svc.store.issue_node_key(&node.id, &key, now).await.map_err(store_error)? {
        return Err(unknown_node(&node.id));
    }
    ssmd_model::encode(&json!({
        "AccessKeyId": key.access_key_id,
        "SecretAccessKey": key.secret_access_key,
        "SessionToken": key.session_token,
        "TokenExpirationDate": ssmd_core::clock::epoch_seconds(now + TOKEN_LIFETIME_MS),
        "UpdateKeyPair": false,
    }))
}

/// `UpdateManagedInstancePublicKey`, for `node` whose RSA signature (with the old key) the
/// HTTP layer verified.
pub async fn update_public_key(svc: &Service, node: &NodeRow, input: Value) -> Result<Vec<u8>, ApiError> {
    let o = obj(&input)?;
    let key = string(o, "NewPublicKey", 392, 4096)?;
    let key_type = string(o, "NewPublicKeyType", 1, 16)?;
    check_key(key, key_type, "newPublicKeyType")?;
    if !svc.store.update_node_key(&node.id, key, key_type, svc.now_ms()).await.map_err(store_error)? {
        return Err(unknown_node(&node.id));
    }
    ssmd_model::encode(&json!({}))
}

/// `UpdateInstanceInformation`: a node's agent reports itself. Only the node's own credentials
/// may report for it.
pub async fn update_instance_information(svc: &Service, caller: &Caller, input: Value) -> Result<Vec<u8>, ApiError> {
    let o = obj(&input)?;
    let id = string(o, "InstanceId", 10, 124)?;
    if caller_node(caller) != Some(id) {
        return Err(ApiError::new(
            ErrorCode::AccessDeniedException,
            format!(
                "User: {} is not authorized to perform: ssm:UpdateInstanceInformation on resource: {}",
                caller.arn,
                node_arn(&caller.region, &caller.account, id)
            ),
        ));
    }
    if let Some(t) = o.get("PlatformType").and_then(Value::as_str)
        && PlatformType::from_wire(t).is_none()
    {
        let set: Vec<&str> = PlatformType::ALL.iter().map(PlatformType::as_str).collect();
        return Err(validation(
            t,
            "platformType",
            &format!("Member must satisfy enum value set: [{}]", set.join(", ")),
        ));
    }
    let info = NodeInfo {
        agent_name: optional(o, "AgentName")?,
        agent_version: optional(o, "AgentVersion")?,
        platform_type: optional(o, "PlatformType")?,
        platform_name: optional(o, "PlatformName")?,
        platform_version: optional(o, "PlatformVersion")?,
        ip_address: optional(o, "IPAddress")?,
        computer_name: optional(o, "ComputerName")?,
    };
    match svc.store.node(id).await.map_err(store_error)? {
        Some(n) if n.account == caller.account && n.region == caller.region && n.deregistered_ms.is_none() => {}
        _ => return Err(unknown_node(id)),
    }
    if !svc.store.update_node_info(id, &info, svc.now_ms()).await.map_err(store_error)? {
        return Err(unknown_node(id));
    }
    ssmd_model::encode(&json!({}))
}

/// `DeregisterManagedInstance`: the node's credentials stop working at once (their rows are
/// deleted, and node keys are never cached by the authenticator).
pub(crate) async fn deregister(
    svc: &Service,
    caller: &Caller,
    i: DeregisterManagedInstanceRequest,
) -> Result<DeregisterManagedInstanceResult, ApiError> {
    let done = svc
        .store
        .deregister_node(&caller.account, &caller.region, &i.instance_id, svc.now_ms())
        .await
        .map_err(store_error)?;
    if !done {
        return Err(unknown_node(&i.instance_id));
    }
    tracing::info!(instance_id = i.instance_id, account = caller.account, "node deregistered");
    Ok(DeregisterManagedInstanceResult {})
}
