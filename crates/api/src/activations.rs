//! Hybrid activations: CreateActivation, DescribeActivations (filters, pagination) and
//! DeleteActivation. An activation is the (id, code) pair on-premises nodes register with; the
//! code is shown once, by CreateActivation, and only its SHA-256 is kept.
//!
//! `Expired` is computed at read time from the service clock: an activation is expired from its
//! ExpirationDate on. Activations are not a `ResourceTypeForTagging` in the model, so their tags
//! are set only at creation (as in AWS) and are applied to the nodes that register with them.

use crate::pagination::page_size;
use crate::{Service, store_error};
use serde_json::json;
use ssmd_core::clock::epoch_seconds;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{ACTIVATION_TAGS, ActivationFilter, ActivationRow, NewActivation, StoreError};

/// How long an activation lasts when CreateActivation gives no ExpirationDate.
const DEFAULT_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// The characters of an activation code (AWS's codes are 20 of these).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The length of an activation code.
const CODE_LENGTH: usize = 20;

/// The SHA-256 (lower-case hex) an activation code is stored and compared as.
pub(crate) fn code_hash(code: &str) -> String {
    ssmd_core::document::sha256_hex(code)
}

pub(crate) async fn create(
    svc: &Service,
    caller: &Caller,
    i: CreateActivationRequest,
) -> Result<CreateActivationResult, ApiError> {
    let now = svc.now_ms();
    let expires_ms = match i.expiration_date {
        Some(secs) => {
            let ms = (secs * 1000.0).round() as i64;
            if ms <= now {
                return Err(ApiError::new(
                    ErrorCode::ValidationException,
                    "ExpirationDate must be in the future; an activation that has already expired can't be used.",
                ));
            }
            ms
        }
        None => now + DEFAULT_LIFETIME_MS,
    };
    let tags = i.tags.unwrap_or_default();
    crate::tags::check_new(&tags)?;
    let metadata: Vec<serde_json::Value> =
        i.registration_metadata.iter().flatten().map(|m| json!({ "Key": m.key, "Value": m.value })).collect();
    let code = ssmd_core::ids::random_from(CODE_ALPHABET, CODE_LENGTH);
    let mut new = NewActivation {
        id: ssmd_core::ids::uuid(),
        account: caller.account.clone(),
        region: caller.region.clone(),
        code_sha256: code_hash(&code),
        description: i.description,
        default_instance_name: i.default_instance_name,
        iam_role: i.iam_role,
        registration_limit: i64::from(i.registration_limit.unwrap_or(1)),
        expires_ms,
        created_ms: now,
        registration_metadata: serde_json::Value::Array(metadata).to_string(),
        tags: tags.into_iter().map(|t| ssmd_store::Tag { key: t.key, value: t.value }).collect(),
    };
    // A UUID collision is as good as impossible; a fresh one is nonetheless cheap.
    loop {
        match svc.store.create_activation(&new).await {
            Ok(()) => break,
            Err(StoreError::Conflict) => new.id = ssmd_core::ids::uuid(),
            Err(e) => return Err(store_error(e)),
        }
    }
    Ok(CreateActivationResult { activation_id: Some(new.id), activation_code: Some(code) })
}

fn invalid_filter(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidFilter, message)
}

fn report(row: ActivationRow, tags: Vec<ssmd_store::Tag>, now_ms: i64) -> Activation {
    Activation {
        expired: Some(now_ms >= row.expires_ms),
        activation_id: Some(row.id),
        description: row.description,
        default_instance_name: row.default_instance_name,
        iam_role: Some(row.iam_role),
        registration_limit: Some(i32::try_from(row.registration_limit).unwrap_or(i32::MAX)),
        registrations_count: Some(i32::try_from(row.registrations_count).unwrap_or(i32::MAX)),
        expiration_date: Some(epoch_seconds(row.expires_ms)),
        created_date: Some(epoch_seconds(row.created_ms)),
        tags: (!tags.is_empty()).then(|| tags.into_iter().map(|t| Tag { key: t.key, value: t.value }).collect()),
    }
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeActivationsRequest,
) -> Result<DescribeActivationsResult, ApiError> {
    let op = "DescribeActivations";
    let mut f = ActivationFilter::default();
    for filter in i.filters.iter().flatten() {
        let Some(key) = filter.filter_key else {
            return Err(invalid_filter("A filter must have a FilterKey.".into()));
        };
        let values = filter.filter_values.clone().unwrap_or_default();
        if values.is_empty() {
            return Err(invalid_filter(format!("The filter {key} must have at least one value in FilterValues.")));
        }
        match key {
            DescribeActivationsFilterKeys::ActivationIds => f.ids.extend(values),
            DescribeActivationsFilterKeys::DefaultInstanceName => f.default_instance_names.extend(values),
            DescribeActivationsFilterKeys::IamRole => f.iam_roles.extend(values),
        }
    }
    let size = page_size(i.max_results, 50);
    let after: Option<(i64, String)> = svc
        .open_token(caller, op, i.next_token.as_deref())?
        .map(|p| (p["created"].as_i64().unwrap_or(0), p["id"].as_str().unwrap_or_default().to_string()));
    let mut rows = svc
        .store
        .activations_page(
            &caller.account,
            &caller.region,
            &f,
            after.as_ref().map(|(t, id)| (*t, id.as_str())),
            size + 1,
        )
        .await
        .map_err(store_error)?;
    let more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let next_token = if more {
        rows.last().map(|last| svc.issue_token(caller, op, json!({ "created": last.created_ms, "id": last.id })))
    } else {
        None
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut tags =
        svc.store.tags_of_many(&caller.account, &caller.region, ACTIVATION_TAGS, &ids).await.map_err(store_error)?;
    let now = svc.now_ms();
    let list = rows
        .into_iter()
        .map(|r| {
            let t = tags.remove(&r.id).unwrap_or_default();
            report(r, t, now)
        })
        .collect();
    Ok(DescribeActivationsResult { activation_list: Some(list), next_token })
}

pub(crate) async fn delete(
    svc: &Service,
    caller: &Caller,
    i: DeleteActivationRequest,
) -> Result<DeleteActivationResult, ApiError> {
    let deleted =
        svc.store.delete_activation(&caller.account, &caller.region, &i.activation_id).await.map_err(store_error)?;
    if !deleted {
        return Err(ApiError::new(
            ErrorCode::InvalidActivationId,
            format!(
                "The activation ID {} isn't valid. Verify that you entered the correct ActivationId.",
                i.activation_id
            ),
        ));
    }
    Ok(DeleteActivationResult {})
}
