//! Parameter policies (Advanced tier): `Expiration` deletes the parameter at its `Timestamp`,
//! through the engine's jobs (`parameter-expire`, one job per parameter, keyed
//! `account/region/name`); `ExpirationNotification` and `NoChangeNotification` are validated,
//! stored and reported, but ssmd has no EventBridge to send their events to (docs/compat.md).
//!
//! The expire job is planned in the transaction that writes the version; when it runs it reads
//! the parameter as it is then: no Expiration (any more) does nothing, a later one waits for it,
//! and the delete is guarded by the version read, so an overwrite racing the expiry wins.

use super::{Service, store_error};
use serde_json::Value;
use ssmd_engine::{Handler, Job, Outcome};
use ssmd_model::shapes::ParameterInlinePolicy;
use ssmd_model::{ApiError, ErrorCode};
use ssmd_store::jobs::Next;
use std::sync::Arc;

/// Policies one parameter may carry.
pub const MAX_POLICIES: usize = 10;

/// Checked policies: the canonical text to store and the expiry, if any.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policies {
    pub text: String,
    pub expire_ms: Option<i64>,
}

fn attr_error(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPolicyAttributeException, msg)
}

fn count_attr(attrs: &serde_json::Map<String, Value>, field: &str, ty: &str) -> Result<(), ApiError> {
    let n = attrs.get(field).and_then(|v| match v {
        Value::String(s) => s.parse::<u32>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    });
    if n.is_none_or(|n| n == 0) {
        return Err(attr_error(format!(
            "A policy of type {ty} needs attribute {field}, a whole number of at least 1."
        )));
    }
    match attrs.get("Unit").and_then(Value::as_str) {
        None | Some("Days") | Some("Hours") => Ok(()),
        Some(u) => Err(attr_error(format!("The Unit {u} of a {ty} policy is not valid; use Days or Hours."))),
    }
}

/// Parses and checks `Policies` (a JSON array of `{Type, Version, Attributes}`).
pub(crate) fn parse(text: &str, now_ms: i64) -> Result<Policies, ApiError> {
    let list: Vec<Value> = serde_json::from_str(text).map_err(|_| {
        attr_error("Policies must be a JSON array of policies, each with Type, Version and Attributes.")
    })?;
    if list.len() > MAX_POLICIES {
        return Err(ApiError::new(
            ErrorCode::PoliciesLimitExceededException,
            format!("A parameter can have at most {MAX_POLICIES} policies."),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut expire_ms = None;
    for p in &list {
        let ty = p.get("Type").and_then(Value::as_str).unwrap_or("");
        if !["Expiration", "ExpirationNotification", "NoChangeNotification"].contains(&ty) {
            return Err(ApiError::new(
                ErrorCode::InvalidPolicyTypeException,
                format!(
                    "The policy type {ty:?} is not valid. Valid types are Expiration, ExpirationNotification and NoChangeNotification."
                ),
            ));
        }
        if !seen.insert(ty) {
            return Err(ApiError::new(
                ErrorCode::IncompatiblePolicyException,
                format!("A parameter can have only one policy of type {ty}."),
            ));
        }
        if p.get("Version").and_then(Value::as_str).is_some_and(|v| v != "1.0") {
            return Err(attr_error(format!("The policy version of {ty} is not valid; use 1.0.")));
        }
        let attrs = p.get("Attributes").and_then(Value::as_object).cloned().unwrap_or_default();
        match ty {
            "Expiration" => {
                let ts = attrs.get("Timestamp").and_then(Value::as_str).unwrap_or("");
                let at = ssmd_core::clock::parse_iso8601(ts).ok_or_else(|| {
                    attr_error(format!(
                        "The Timestamp {ts:?} of the Expiration policy is not valid; use ISO 8601 UTC, e.g. 2030-01-01T00:00:00.000Z."
                    ))
                })?;
                if at <= now_ms {
                    return Err(attr_error(format!("The Timestamp {ts} of the Expiration policy is in the past.")));
                }
                expire_ms = Some(at);
            }
            "ExpirationNotification" => count_attr(&attrs, "Before", ty)?,
            _ => count_attr(&attrs, "After", ty)?,
        }
    }
    if seen.contains("ExpirationNotification") && expire_ms.is_none() {
        return Err(ApiError::new(
            ErrorCode::IncompatiblePolicyException,
            "An ExpirationNotification policy needs an Expiration policy on the same parameter.",
        ));
    }
    Ok(Policies { text: serde_json::to_string(&list).expect("JSON values serialise"), expire_ms })
}

/// The expiry of stored policies.
fn stored_expiry(text: &str) -> Option<i64> {
    let list: Vec<Value> = serde_json::from_str(text).ok()?;
    list.iter()
        .find(|p| p.get("Type").and_then(Value::as_str) == Some("Expiration"))
        .and_then(|p| p.pointer("/Attributes/Timestamp")?.as_str().and_then(ssmd_core::clock::parse_iso8601))
}

/// The policies as the API shows them.
pub(crate) fn shown(text: Option<&str>) -> Vec<ParameterInlinePolicy> {
    let Some(list) = text.and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok()) else { return Vec::new() };
    list.iter()
        .map(|p| ParameterInlinePolicy {
            policy_text: Some(p.to_string()),
            policy_type: p.get("Type").and_then(Value::as_str).map(str::to_string),
            policy_status: Some("Pending".to_string()),
        })
        .collect()
}

/// The handler of `parameter-expire` jobs.
pub struct Expirer {
    svc: Arc<Service>,
}

impl Expirer {
    pub(crate) fn new(svc: Arc<Service>) -> Expirer {
        Expirer { svc }
    }

    async fn expire(&self, key: &str) -> Result<Next, ApiError> {
        let mut parts = key.splitn(3, '/');
        let (Some(account), Some(region), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            tracing::warn!(key, "malformed parameter expire job dropped");
            return Ok(Next::Done);
        };
        let store = &self.svc.store;
        let Some(row) = store.parameter(account, region, name).await.map_err(store_error)? else {
            return Ok(Next::Done);
        };
        let Some(at) = row.policies.as_deref().and_then(stored_expiry) else { return Ok(Next::Done) };
        let now = self.svc.now_ms();
        if at > now {
            return Ok(Next::At(at));
        }
        if store.delete_parameter_at(account, region, name, Some(row.version)).await.map_err(store_error)? {
            tracing::info!(account, region, parameter = name, "parameter expired and was deleted");
            Ok(Next::Done)
        } else {
            // Overwritten meanwhile: look at it again.
            Ok(Next::At(now))
        }
    }
}

impl Handler for Expirer {
    async fn run(&self, job: Job) -> Outcome {
        match self.expire(&job.claim.key).await {
            Ok(next) => Outcome::Next(next),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn policies_are_checked() {
        let p = parse(
            r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2030-01-01T00:00:00.000Z"}},
                {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
                {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"20","Unit":"Hours"}}]"#,
            NOW,
        )
        .unwrap();
        assert_eq!(p.expire_ms, ssmd_core::clock::parse_iso8601("2030-01-01T00:00:00Z"));
        assert_eq!(stored_expiry(&p.text), p.expire_ms);
        assert_eq!(shown(Some(&p.text)).len(), 3);
        let code = |t: &str| parse(t, NOW).unwrap_err().code();
        assert_eq!(code(r#"[{"Type":"Nope"}]"#), ErrorCode::InvalidPolicyTypeException);
        assert_eq!(
            code(r#"[{"Type":"Expiration","Attributes":{"Timestamp":"soon"}}]"#),
            ErrorCode::InvalidPolicyAttributeException
        );
        assert_eq!(
            code(r#"[{"Type":"Expiration","Attributes":{"Timestamp":"2001-01-01T00:00:00Z"}}]"#),
            ErrorCode::InvalidPolicyAttributeException
        );
        assert_eq!(
            code(r#"[{"Type":"NoChangeNotification","Attributes":{"After":"x"}}]"#),
            ErrorCode::InvalidPolicyAttributeException
        );
        assert_eq!(
            code(
                r#"[{"Type":"NoChangeNotification","Attributes":{"After":"1"}},{"Type":"NoChangeNotification","Attributes":{"After":"2"}}]"#
            ),
            ErrorCode::IncompatiblePolicyException
        );
        assert_eq!(
            code(r#"[{"Type":"ExpirationNotification","Attributes":{"Before":"1"}}]"#),
            ErrorCode::IncompatiblePolicyException
        );
        assert_eq!(code("{}"), ErrorCode::InvalidPolicyAttributeException);
    }
}
