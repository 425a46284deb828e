//! The one target resolver: which managed nodes of the caller's account and Region a list of
//! instance ids or a `Targets` list names. Run Command, Automation's node targets and its
//! `aws:runCommand` steps all resolve through here.
//!
//! * `InstanceIds`: each must be a registered node that has reported in at least once (a node
//!   registered but never run is not managed yet) — else `InvalidInstanceId`; a repeated id is
//!   `DuplicateInstanceId`.
//! * `Targets` (ANDed): `InstanceIds` (values are ids, or `*` for every node), `tag:<Key>`
//!   (any of the values), `tag-key` (any of the keys). Nodes that match are returned in
//!   registration order; ids that match no node are simply not there (SSM's tag semantics).

use crate::{Service, store_error};
use ssmd_model::shapes::Target;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{NODE_TAGS, NodeRow, Tag};
use std::collections::{HashMap, HashSet};

/// A resolved node: its id and the name SSM reports for it (`InstanceName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub name: String,
}

fn node(n: &NodeRow) -> Node {
    Node { id: n.id.clone(), name: n.info.computer_name.clone().unwrap_or_default() }
}

fn invalid_instance(id: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidInstanceId, format!("Instances [[{id}]] not in a valid state for account"))
}

fn managed(n: &NodeRow) -> bool {
    n.deregistered_ms.is_none() && n.last_ping_ms.is_some()
}

impl Service {
    /// The nodes `instance_ids` names, in the order given.
    pub(crate) async fn resolve_instance_ids(&self, caller: &Caller, ids: &[String]) -> Result<Vec<Node>, ApiError> {
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id.as_str()) {
                return Err(ApiError::new(ErrorCode::DuplicateInstanceId, format!("Instance Id {id} is duplicated.")));
            }
        }
        let nodes = self.store.nodes(&caller.account, &caller.region).await.map_err(store_error)?;
        let by_id: HashMap<&str, &NodeRow> = nodes.iter().filter(|n| managed(n)).map(|n| (n.id.as_str(), n)).collect();
        ids.iter().map(|id| by_id.get(id.as_str()).map(|n| node(n)).ok_or_else(|| invalid_instance(id))).collect()
    }

    /// The nodes a `Targets` list selects (every target must match), in registration order.
    pub(crate) async fn resolve_targets(&self, caller: &Caller, targets: &[Target]) -> Result<Vec<Node>, ApiError> {
        let mut rules = Vec::new();
        for t in targets {
            let key = t.key.as_deref().unwrap_or_default();
            let values = t.values.clone().unwrap_or_default();
            if values.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameters,
                    format!("The target with key {key} must have at least one value."),
                ));
            }
            if !node_key(key) {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameters,
                    format!(
                        "Target key {key} is not supported by ssmd: use InstanceIds, tag:<key> or tag-key \
                         (resource groups are not supported)."
                    ),
                ));
            }
            rules.push((key.to_string(), values));
        }
        let nodes: Vec<NodeRow> = self
            .store
            .nodes(&caller.account, &caller.region)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(managed)
            .collect();
        let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        let tags = if rules.iter().any(|(k, _)| k.starts_with("tag")) {
            self.store.tags_of_many(&caller.account, &caller.region, NODE_TAGS, &ids).await.map_err(store_error)?
        } else {
            HashMap::new()
        };
        let matches = |n: &NodeRow, key: &str, values: &[String]| -> bool {
            selects(&n.id, tags.get(&n.id).map(Vec::as_slice).unwrap_or_default(), key, values)
        };
        Ok(nodes.iter().filter(|n| rules.iter().all(|(k, v)| matches(n, k, v))).map(node).collect())
    }
}

/// Whether `key` is a target key that names nodes: `InstanceIds`, `tag:<key>` or `tag-key`.
pub(crate) fn node_key(key: &str) -> bool {
    key == "InstanceIds" || key == "tag-key" || (key.starts_with("tag:") && key.len() > 4)
}

/// Whether one target entry (`key` with `values`, a [`node_key`]) selects the node `id` with
/// `tags`.
pub(crate) fn selects(id: &str, tags: &[Tag], key: &str, values: &[String]) -> bool {
    match key {
        "InstanceIds" => values.iter().any(|v| v == "*" || v == id),
        "tag-key" => tags.iter().any(|t| values.contains(&t.key)),
        k => k.strip_prefix("tag:").is_some_and(|k| tags.iter().any(|t| t.key == k && values.contains(&t.value))),
    }
}
