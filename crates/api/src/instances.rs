//! DescribeInstanceInformation: the managed nodes of an account and Region as SSM lists them,
//! with PingStatus derived from the last `UpdateInstanceInformation` ping, both filter forms
//! (InstanceInformationFilterList and Filters, including `tag:Key` and `tag-key`), and stable
//! pages.

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
pub(crate) fn ping_status(node: &NodeRow, now_ms: i64) -> &'static str {
    match node.last_ping_ms {
        None => "Inactive",
        Some(t) if now_ms - t <= ONLINE_MS => "Online",
        Some(_) => "ConnectionLost",
    }
}

fn info(node: &NodeRow, now_ms: i64) -> InstanceInformation {
    InstanceInformation {
        instance_id: Some(node.id.clone()),
        ping_status: Some(ping_status(node, now_ms).into()),
        last_ping_date_time: node.last_ping_ms.map(epoch_seconds),
        agent_version: node.info.agent_version.clone(),
        is_latest_version: Some(false),
        platform_type: node.info.platform_type.clone(),
        platform_name: node.info.platform_name.clone(),
        platform_version: node.info.platform_version.clone(),
        activation_id: Some(node.activation_id.clone()),
        iam_role: Some(node.iam_role.clone()),
        registration_date: Some(epoch_seconds(node.registered_ms)),
        resource_type: Some("ManagedInstance".into()),
        name: node.name.clone(),
        ip_address: node.info.ip_address.clone(),
        computer_name: node.info.computer_name.clone(),
        source_id: Some(node.id.clone()),
        source_type: Some("AWS::SSM::ManagedInstance".into()),
        ..Default::default()
    }
}

fn bad_key(key: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidInstanceInformationFilterValue, format!("The filter key {key} is not valid."))
}

/// Whether a node matches one filter (`key` with any of `values`).
fn matches(node: &NodeRow, tags: &[Tag], key: &str, values: &[String], now_ms: i64) -> Result<bool, ApiError> {
    let any = |v: Option<&str>| v.is_some_and(|v| values.iter().any(|x| x == v));
    Ok(match key {
        "InstanceIds" => any(Some(&node.id)),
        "AgentVersion" => any(node.info.agent_version.as_deref()),
        "PingStatus" => any(Some(ping_status(node, now_ms))),
        "PlatformTypes" => any(node.info.platform_type.as_deref()),
        "ActivationIds" => any(Some(&node.activation_id)),
        "IamRole" => any(Some(&node.iam_role)),
        "ResourceType" => any(Some("ManagedInstance")),
        // No associations exist yet, so no node has an association status.
        "AssociationStatus" => false,
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
        if f.key.starts_with("tag") {
            return Err(bad_key(&f.key));
        }
        filters.push((f.key.clone(), f.value_set.clone()));
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
        instance_information_list: Some(page.iter().map(|n| info(n, now)).collect()),
        next_token: next,
    })
}
