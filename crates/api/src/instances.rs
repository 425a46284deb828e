//! DescribeInstanceInformation: the managed nodes of an account and Region as SSM lists them,
//! with PingStatus derived from the last `UpdateInstanceInformation` ping, both filter forms
//! (InstanceInformationFilterList and Filters, including `tag:Key` and `tag-key`), and stable
//! pages.

use crate::errors::stored;
use crate::{Service, store_error};
use serde_json::json;
use ssmd_core::clock::epoch_seconds;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{NodeRow, Tag};

use ssmd_store::NODE_TAGS as RESOURCE_TYPE;
/// A node whose last ping is at most this old is Online (the AWS agent pings every 5 minutes).
const ONLINE_MS: i64 = 10 * 60 * 1000;

/// `Online`, `ConnectionLost` (no ping for 10 minutes) or `Inactive` (never pinged).
pub(crate) fn ping_status(node: &NodeRow, now_ms: i64) -> PingStatus {
    match node.last_ping_ms {
        None => PingStatus::Inactive,
        Some(t) if now_ms - t <= ONLINE_MS => PingStatus::Online,
        Some(_) => PingStatus::ConnectionLost,
    }
}

/// The `ResourceType` of every node ssmd manages: registered by activation (hybrid nodes).
const NODE_RESOURCE_TYPE: ResourceType = ResourceType::ManagedInstance;

fn info(node: &NodeRow, now_ms: i64) -> Result<InstanceInformation, ApiError> {
    Ok(InstanceInformation {
        instance_id: Some(node.id.clone()),
        ping_status: Some(ping_status(node, now_ms)),
        last_ping_date_time: node.last_ping_ms.map(epoch_seconds),
        agent_version: node.info.agent_version.clone(),
        is_latest_version: Some(false),
        platform_type: node.info.platform_type.as_deref().map(stored).transpose()?,
        platform_name: node.info.platform_name.clone(),
        platform_version: node.info.platform_version.clone(),
        activation_id: Some(node.activation_id.clone()),
        iam_role: Some(node.iam_role.clone()),
        registration_date: Some(epoch_seconds(node.registered_ms)),
        resource_type: Some(NODE_RESOURCE_TYPE),
        name: node.name.clone(),
        ip_address: node.info.ip_address.clone(),
        computer_name: node.info.computer_name.clone(),
        source_id: Some(node.id.clone()),
        source_type: Some(SourceType::AwsSsmManagedInstance),
        ..Default::default()
    })
}

fn bad_key(key: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidInstanceInformationFilterValue, format!("The filter key {key} is not valid."))
}

/// Whether a node matches one filter (`key` with any of `values`). Keys of the
/// `InstanceInformationFilterList` form are the model's `InstanceInformationFilterKey`; keys of
/// the `Filters` form are free text (a pattern in the model) that may name one of those too, or
/// a tag.
fn matches(node: &NodeRow, tags: &[Tag], key: &str, values: &[String], now_ms: i64) -> Result<bool, ApiError> {
    let any = |v: Option<&str>| v.is_some_and(|v| values.iter().any(|x| x == v));
    if let Some(k) = InstanceInformationFilterKey::from_wire(key) {
        use InstanceInformationFilterKey as K;
        return Ok(match k {
            K::InstanceIds => any(Some(&node.id)),
            K::AgentVersion => any(node.info.agent_version.as_deref()),
            K::PingStatus => any(Some(ping_status(node, now_ms).as_str())),
            K::PlatformTypes => any(node.info.platform_type.as_deref()),
            K::ActivationIds => any(Some(&node.activation_id)),
            K::IamRole => any(Some(&node.iam_role)),
            K::ResourceType => any(Some(NODE_RESOURCE_TYPE.as_str())),
            // No associations exist yet, so no node has an association status.
            K::AssociationStatus => false,
        });
    }
    Ok(match key {
        "tag-key" => tags.iter().any(|t| values.contains(&t.key)),
        k if k.starts_with("tag:") => tags.iter().any(|t| t.key == k[4..] && values.contains(&t.value)),
        other => return Err(bad_key(other)),
    })
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeInstanceInformationRequest,
) -> Result<DescribeInstanceInformationResult, ApiError> {
    let op = "DescribeInstanceInformation";
    if i.instance_information_filter_list.is_some() && i.filters.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidInstanceInformationFilterValue,
            "InstanceInformationFilterList and Filters can't be used together.",
        ));
    }
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for f in i.instance_information_filter_list.iter().flatten() {
        filters.push((f.key.to_string(), f.value_set.clone()));
    }
    for f in i.filters.iter().flatten() {
        filters.push((f.key.clone(), f.values.clone()));
    }
    for (key, values) in &filters {
        if values.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidInstanceInformationFilterValue,
                format!("The filter {key} needs at least one value."),
            ));
        }
    }
    let now = svc.now_ms();
    let nodes = svc.store.nodes(&caller.account, &caller.region).await.map_err(store_error)?;
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let tags =
        svc.store.tags_of_many(&caller.account, &caller.region, RESOURCE_TYPE, &ids).await.map_err(store_error)?;
    let mut kept = Vec::new();
    for n in &nodes {
        let node_tags = tags.get(&n.id).map(Vec::as_slice).unwrap_or_default();
        let mut keep = true;
        for (key, values) in &filters {
            keep &= matches(n, node_tags, key, values, now)?;
        }
        if keep {
            kept.push(n);
        }
    }
    // Pages resume after the last node returned (nodes are listed oldest first).
    if let Some(p) = svc.open_token(caller, op, i.next_token.as_deref())? {
        let after = (p["registered"].as_i64().unwrap_or(0), p["id"].as_str().unwrap_or_default().to_string());
        kept.retain(|n| (n.registered_ms, n.id.clone()) > after);
    }
    let size = crate::pagination::page_size(i.max_results, 50) as usize;
    let page: Vec<&NodeRow> = kept.iter().take(size).copied().collect();
    let next = (kept.len() > size).then(|| {
        let last = page[page.len() - 1];
        svc.issue_token(caller, op, json!({ "registered": last.registered_ms, "id": last.id }))
    });
    Ok(DescribeInstanceInformationResult {
        instance_information_list: Some(page.iter().map(|n| info(n, now)).collect::<Result<_, ApiError>>()?),
        next_token: next,
    })
}
