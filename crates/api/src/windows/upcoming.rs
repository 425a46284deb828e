//! DescribeMaintenanceWindowSchedule (one window's upcoming runs, or every window of a node
//! merged in time order) and DescribeMaintenanceWindowsForTarget.
//!
//! Runs come from each window's `Timetable` lazily: a page costs the runs it shows, whatever
//! the range asked for. A node's windows are those whose registered targets or whose tasks'
//! direct targets select it.

use super::*;
use crate::pagination::page_size;
use serde_json::json;
use ssmd_store::{NODE_TAGS, Part};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// A node or tag the caller asks about.
struct Query {
    /// Node ids named by `InstanceIds`, with their tags.
    nodes: Vec<(String, Vec<ssmd_store::Tag>)>,
    /// `tag:<key>` and `tag-key` targets, matched as written.
    literal: Vec<(String, Vec<String>)>,
}

impl Query {
    async fn new(svc: &Service, caller: &Caller, targets: &[Target]) -> Result<Query, ApiError> {
        check_target_keys(targets, false)?;
        let mut ids = Vec::new();
        let mut literal = Vec::new();
        for t in targets {
            let key = t.key.clone().unwrap_or_default();
            let values = t.values.clone().unwrap_or_default();
            if key == "InstanceIds" {
                ids.extend(values);
            } else {
                literal.push((key, values));
            }
        }
        let mut tags =
            svc.store.tags_of_many(&caller.account, &caller.region, NODE_TAGS, &ids).await.map_err(store_error)?;
        let nodes = ids.into_iter().map(|id| (id.clone(), tags.remove(&id).unwrap_or_default())).collect();
        Ok(Query { nodes, literal })
    }

    /// Whether a window's target list (its entries ANDed) selects one of the nodes, or names
    /// one of the tags.
    fn matches(&self, targets: &[Target]) -> bool {
        fn entry(t: &Target) -> (&str, &[String]) {
            (t.key.as_deref().unwrap_or_default(), t.values.as_deref().unwrap_or_default())
        }
        let selects = |(id, tags): &(String, Vec<ssmd_store::Tag>)| {
            targets.iter().map(entry).all(|(key, values)| crate::targets::selects(id, tags, key, values))
        };
        let names = |(key, values): &(String, Vec<String>)| {
            targets.iter().map(entry).any(|(k, vs)| k == key && vs.iter().any(|v| values.contains(v)))
        };
        self.nodes.iter().any(selects) || self.literal.iter().any(names)
    }
}

/// The windows of the account and Region whose targets select what `query` names.
async fn windows_naming(svc: &Service, caller: &Caller, query: &Query) -> Result<Vec<Window>, ApiError> {
    let mut found = HashSet::new();
    let targets =
        svc.store.window_parts_in(&caller.account, &caller.region, Part::Target).await.map_err(store_error)?;
    for row in targets {
        let t: MaintenanceWindowTarget = parse(&row.spec)?;
        if query.matches(t.targets.as_deref().unwrap_or_default()) {
            found.insert(row.window_id);
        }
    }
    let tasks = svc.store.window_parts_in(&caller.account, &caller.region, Part::Task).await.map_err(store_error)?;
    for row in tasks {
        let t: GetMaintenanceWindowTaskResult = parse(&row.spec)?;
        let direct: Vec<Target> =
            t.targets.unwrap_or_default().into_iter().filter(|t| t.key.as_deref() != Some("WindowTargetIds")).collect();
        if !direct.is_empty() && query.matches(&direct) {
            found.insert(row.window_id);
        }
    }
    if found.is_empty() {
        return Ok(vec![]);
    }
    let rows = svc.store.windows_all(&caller.account, &caller.region).await.map_err(store_error)?;
    rows.into_iter().filter(|r| found.contains(&r.id)).map(Window::read).collect()
}

pub(crate) async fn schedule(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowScheduleRequest,
) -> Result<DescribeMaintenanceWindowScheduleResult, ApiError> {
    let op = "DescribeMaintenanceWindowSchedule";
    let now = svc.now_ms();
    let (mut from, mut until) = (now, i64::MAX);
    for f in i.filters.iter().flatten() {
        let key = f.key.as_deref().unwrap_or_default();
        let values = f.values.as_deref().unwrap_or_default();
        match key {
            "ScheduledAfter" => from = from.max(filter_time(key, values)?),
            "ScheduledBefore" => until = until.min(filter_time(key, values)?),
            other => return Err(bad_filter_key(other, &["ScheduledBefore", "ScheduledAfter"])),
        }
    }
    let windows: Vec<Window> = match (&i.window_id, &i.targets) {
        (Some(id), None) => vec![svc.own_window(caller, id).await?],
        (None, Some(targets)) => {
            let Some(resource_type) = i.resource_type else {
                return Err(validation("ResourceType is required with Targets."));
            };
            if resource_type == MaintenanceWindowResourceType::ResourceGroup {
                // ssmd holds no resource groups, so no window targets one.
                vec![]
            } else {
                let query = Query::new(svc, caller, targets).await?;
                windows_naming(svc, caller, &query).await?
            }
        }
        _ => return Err(validation("Specify either WindowId or Targets with ResourceType, not both.")),
    };
    // Resume strictly after the last run shown: (time, window id).
    let after = svc.window_token(caller, op, i.next_token.as_deref())?;
    let after: Option<(i64, String)> =
        after.as_ref().and_then(|p| Some((p.get("t")?.as_i64()?, p.get("w")?.as_str()?.to_string())));
    let size = page_size(i.max_results, 50) as usize;
    let tables: Vec<(&Window, Timetable)> = windows
        .iter()
        .filter(|w| w.row.enabled)
        .filter_map(|w| w.spec.timetable(w.row.anchor_ms).ok().map(|t| (w, t)))
        .collect();
    let start = match &after {
        Some((t, _)) => (*t - 1).max(from - 1),
        None => from - 1,
    };
    let mut runs: Vec<_> = tables.iter().map(|(w, t)| (w, t, t.occurrences(start).peekable())).collect();
    let mut heap = BinaryHeap::new();
    for (k, (w, _, it)) in runs.iter_mut().enumerate() {
        if let Some(&t) = it.peek() {
            heap.push(Reverse((t, w.row.id.clone(), k)));
        }
    }
    // One run more than the page, to know whether there is a next page.
    let mut shown: Vec<(i64, String, usize)> = Vec::new();
    while let Some(Reverse((t, id, k))) = heap.pop() {
        let it = &mut runs[k].2;
        it.next();
        if let Some(&n) = it.peek() {
            heap.push(Reverse((n, id.clone(), k)));
        }
        if t >= until || shown.len() > size {
            break;
        }
        if after.as_ref().is_some_and(|(at, aw)| (t, &id) <= (*at, aw)) {
            continue;
        }
        shown.push((t, id, k));
    }
    let more = shown.len() > size;
    shown.truncate(size);
    let next_token = match shown.last() {
        Some((t, id, _)) if more => Some(svc.issue_token(caller, op, json!({"t": t, "w": id}))),
        _ => None,
    };
    let runs = shown
        .into_iter()
        .map(|(t, id, k)| {
            let (w, table, _) = &runs[k];
            ScheduledWindowExecution {
                window_id: Some(id),
                name: Some(w.row.name.clone()),
                execution_time: Some(super::define::render_time(w, table, t)),
            }
        })
        .collect();
    Ok(DescribeMaintenanceWindowScheduleResult { scheduled_window_executions: Some(runs), next_token })
}

pub(crate) async fn for_target(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowsForTargetRequest,
) -> Result<DescribeMaintenanceWindowsForTargetResult, ApiError> {
    let op = "DescribeMaintenanceWindowsForTarget";
    let after = svc.window_token(caller, op, i.next_token.as_deref())?;
    let after = after.as_ref().and_then(|p| p.get("i")?.as_str().map(str::to_string));
    let mut found: Vec<(String, String)> = if i.resource_type == MaintenanceWindowResourceType::ResourceGroup {
        vec![]
    } else {
        let query = Query::new(svc, caller, &i.targets).await?;
        windows_naming(svc, caller, &query).await?.into_iter().map(|w| (w.row.id, w.row.name)).collect()
    };
    found.sort();
    found.retain(|(id, _)| after.as_ref().is_none_or(|a| id > a));
    let size = page_size(i.max_results, 50) as usize;
    let more = found.len() > size;
    found.truncate(size);
    let next_token = match found.last() {
        Some((last, _)) if more => Some(svc.issue_token(caller, op, json!({"i": last}))),
        _ => None,
    };
    let windows = found
        .into_iter()
        .map(|(id, name)| MaintenanceWindowIdentityForTarget { window_id: Some(id), name: Some(name) })
        .collect();
    Ok(DescribeMaintenanceWindowsForTargetResult { window_identities: Some(windows), next_token })
}
