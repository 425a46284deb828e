//! GetAutomationExecution, DescribeAutomationExecutions (every filter key, pagination) and
//! DescribeAutomationStepExecutions (filters, ReverseOrder, pagination).

use super::{RESOURCE_TYPE, fanout, parse_state, report};
use crate::pagination::page_size;
use crate::{Service, store_error};
use serde_json::json;
use ssmd_core::automation::execution::{Execution, StepRecord};
use ssmd_core::automation::sleep::parse_timestamp_ms;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::ExecutionFilter;

fn bad_value(key: &str, value: &str, why: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidFilterValue, format!("The filter value {value} of {key} is not valid: {why}."))
}

fn time_value(key: &str, values: &[String]) -> Result<i64, ApiError> {
    let v = values.first().map(String::as_str).unwrap_or_default();
    if values.len() != 1 {
        return Err(bad_value(key, v, "give exactly one time"));
    }
    parse_timestamp_ms(v).map_err(|_| bad_value(key, v, "use an ISO 8601 time such as 2024-01-31T12:00:00Z"))
}

pub(crate) async fn get(
    svc: &Service,
    caller: &Caller,
    i: GetAutomationExecutionRequest,
) -> Result<GetAutomationExecutionResult, ApiError> {
    let (row, x) = svc.own_execution(caller, &i.automation_execution_id).await?;
    let rb = svc.runbook(&row.runbook_sha).await?;
    let t = fanout::targets(svc, &x, true).await?;
    Ok(GetAutomationExecutionResult { automation_execution: Some(report::execution(&x, &rb, &t)) })
}

/// Filters applied after the database ones.
#[derive(Default)]
struct Residual {
    actions: Vec<String>,
    types: Vec<String>,
    subtypes: Vec<String>,
    tag_keys: Vec<String>,
    impossible: bool,
}

impl Residual {
    fn any(&self) -> bool {
        !self.actions.is_empty() || !self.types.is_empty() || !self.subtypes.is_empty() || !self.tag_keys.is_empty()
    }

    fn keeps(&self, x: &Execution, tags: &[ssmd_store::Tag]) -> bool {
        let action = x.current_step().map(|c| c.1.to_string()).unwrap_or_default();
        (self.actions.is_empty() || self.actions.contains(&action))
            && (self.types.is_empty() || self.types.iter().any(|t| t == x.automation_type().as_str()))
            && (self.subtypes.is_empty())
            && (self.tag_keys.is_empty() || tags.iter().any(|t| self.tag_keys.contains(&t.key)))
    }
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeAutomationExecutionsRequest,
) -> Result<DescribeAutomationExecutionsResult, ApiError> {
    let op = "DescribeAutomationExecutions";
    let mut f = ExecutionFilter::default();
    let mut rest = Residual::default();
    for filter in i.filters.iter().flatten() {
        let values = filter.values.clone();
        use AutomationExecutionFilterKey as K;
        match filter.key {
            K::DocumentNamePrefix => f.name_prefixes.extend(values),
            K::ExecutionStatus => f.statuses.extend(values),
            K::ExecutionId => f.ids.extend(values),
            K::ParentExecutionId => f.parents.extend(values),
            K::CurrentAction => rest.actions.extend(values),
            K::StartTimeBefore => f.start_before_ms = Some(time_value(filter.key.as_str(), &values)?),
            K::StartTimeAfter => f.start_after_ms = Some(time_value(filter.key.as_str(), &values)?),
            K::AutomationType => rest.types.extend(values),
            K::AutomationSubtype => rest.subtypes.extend(values),
            K::TagKey => rest.tag_keys.extend(values),
            // No execution has a resource-group target or an OpsItem in ssmd.
            K::TargetResourceGroup | K::OpsItemId => rest.impossible = true,
        }
    }
    let size = page_size(i.max_results, 50) as usize;
    let mut after: Option<(i64, String)> = svc
        .open_token(caller, op, i.next_token.as_deref())?
        .map(|p| (p["start"].as_i64().unwrap_or(0), p["id"].as_str().unwrap_or_default().to_string()));
    let mut out = Vec::new();
    let mut more = false;
    if !rest.impossible {
        let batch = if rest.any() { 200 } else { size as i64 + 1 };
        'scan: loop {
            let rows = svc
                .store
                .executions_page(
                    &caller.account,
                    &caller.region,
                    &f,
                    after.as_ref().map(|(t, id)| (*t, id.as_str())),
                    batch,
                )
                .await
                .map_err(store_error)?;
            let tags = if rest.tag_keys.is_empty() {
                Default::default()
            } else {
                let ids: Vec<String> = rows.iter().map(|(_, r)| r.id.clone()).collect();
                svc.store
                    .tags_of_many(&caller.account, &caller.region, RESOURCE_TYPE, &ids)
                    .await
                    .map_err(store_error)?
            };
            let n = rows.len();
            for (start, row) in rows {
                let x = parse_state(&row)?;
                if rest.keeps(&x, tags.get(&row.id).map(Vec::as_slice).unwrap_or_default()) {
                    if out.len() == size {
                        more = true;
                        break 'scan;
                    }
                    let rb = svc.runbook(&row.runbook_sha).await?;
                    let outputs = ssmd_core::automation::machine::document_outputs(&x, &rb);
                    let t = fanout::targets(svc, &x, false).await?;
                    out.push(report::metadata(&x, outputs, &t));
                }
                after = Some((start, row.id));
            }
            if (n as i64) < batch {
                break;
            }
        }
    }
    Ok(DescribeAutomationExecutionsResult {
        automation_execution_metadata_list: Some(out),
        next_token: more
            .then(|| after.map(|(start, id)| svc.issue_token(caller, op, json!({ "start": start, "id": id }))))
            .flatten(),
    })
}

fn step_matches(r: &StepRecord, key: StepExecutionFilterKey, values: &[String]) -> bool {
    use StepExecutionFilterKey as K;
    let any = |v: Option<String>| v.is_some_and(|v| values.contains(&v));
    let time = |default| time_value(key.as_str(), values).unwrap_or(default);
    match key {
        K::StepExecutionStatus => values.iter().any(|v| v.eq_ignore_ascii_case(r.status.as_str())),
        K::StepExecutionId => any(Some(r.id.clone())),
        K::StepName => any(Some(r.name.clone())),
        K::Action => any(Some(r.action.clone())),
        K::ParentStepExecutionId => any(r.parent.as_ref().map(|p| p.id.clone())),
        K::ParentStepIteration => any(r.parent.as_ref().map(|p| p.iteration.to_string())),
        K::ParentStepIteratorValue => any(r.parent.as_ref().and_then(|p| p.iterator_value.clone())),
        K::StartTimeBefore => r.start_ms.is_some_and(|s| s < time(i64::MIN)),
        K::StartTimeAfter => r.start_ms.is_some_and(|s| s > time(i64::MAX)),
    }
}

pub(crate) async fn describe_steps(
    svc: &Service,
    caller: &Caller,
    i: DescribeAutomationStepExecutionsRequest,
) -> Result<DescribeAutomationStepExecutionsResult, ApiError> {
    let op = "DescribeAutomationStepExecutions";
    let (_, x) = svc.own_execution(caller, &i.automation_execution_id).await?;
    let t = fanout::targets(svc, &x, true).await?;
    let filters = i.filters.unwrap_or_default();
    for filter in &filters {
        if matches!(filter.key, StepExecutionFilterKey::StartTimeBefore | StepExecutionFilterKey::StartTimeAfter) {
            time_value(filter.key.as_str(), &filter.values)?;
        }
    }
    // Records are only ever appended, so a page resumes after the index of the last record it
    // returned, in either order, however many records were added meanwhile.
    let mut steps: Vec<(usize, &StepRecord)> = Vec::new();
    for (index, r) in x.steps.iter().chain(&t.steps).enumerate() {
        let mut keep = true;
        for filter in &filters {
            keep &= step_matches(r, filter.key, &filter.values);
        }
        if keep {
            steps.push((index, r));
        }
    }
    let reverse = i.reverse_order == Some(true);
    if reverse {
        steps.reverse();
    }
    if let Some(p) = svc.open_token(caller, op, i.next_token.as_deref())? {
        let last = p.get("index").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        steps.retain(|(index, _)| if reverse { *index < last } else { *index > last });
    }
    let size = page_size(i.max_results, 50) as usize;
    let page: Vec<StepExecution> = steps.iter().take(size).map(|(_, r)| report::step(r)).collect();
    let next = (steps.len() > size).then(|| steps[size - 1].0);
    Ok(DescribeAutomationStepExecutionsResult {
        step_executions: Some(page),
        next_token: next.map(|index| svc.issue_token(caller, op, json!({ "index": index }))),
    })
}
