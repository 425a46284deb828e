//! StartAutomationExecution: resolving the runbook and its parameters, expanding Targets and
//! TargetMaps into a rate-controlled fan-out, and writing the new execution for the engine. The
//! engine starts child executions (aws:executeAutomation, fan-out children) through `prepare`
//! too, so children obey exactly the rules a caller's start does.

use crate::{Service, store_error, tags};
use serde_json::{Map, Value};
use ssmd_core::automation::execution::{Echo, Execution, FanItem};
use ssmd_core::automation::machine;
use ssmd_core::automation::params::{ParamError, resolve_parameters};
use ssmd_core::automation::runbook::Runbook;
use ssmd_core::document::parse;
use ssmd_core::rate::{self, RateController};
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::NewExecution;
use std::collections::BTreeMap;

fn bad_params(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidAutomationExecutionParametersException, message)
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationException, message)
}

fn param_error(e: ParamError) -> ApiError {
    bad_params(e.to_string())
}

/// Where a new execution comes from.
pub(crate) struct Origin {
    /// Its id (children get theirs from the parent, so a restart re-creates the same child).
    pub id: String,
    pub parent: Option<String>,
    pub target: Option<String>,
}

pub(crate) async fn start(
    svc: &Service,
    caller: &Caller,
    i: StartAutomationExecutionRequest,
) -> Result<StartAutomationExecutionResult, ApiError> {
    let id = ssmd_core::ids::uuid();
    start_with_id(svc, caller, &i, id.clone()).await?;
    Ok(StartAutomationExecutionResult { automation_execution_id: Some(id) })
}

/// Starts an execution with a chosen id (a maintenance-window task picks it before it acts, so
/// a run resumed after a restart finds its execution instead of starting another).
pub(crate) async fn start_with_id(
    svc: &Service,
    caller: &Caller,
    i: &StartAutomationExecutionRequest,
    id: String,
) -> Result<(), ApiError> {
    let new = prepare(svc, caller, i, Origin { id, parent: None, target: None }).await?;
    if let Some(queued) = super::admission::queue_full(svc, &caller.account, &caller.region).await? {
        return Err(ApiError::new(
            ErrorCode::AutomationExecutionLimitExceededException,
            format!(
                "{queued} automation executions are already waiting to run in this account and Region (the limit is {}).",
                svc.automation.settings.max_queued
            ),
        ));
    }
    svc.store.insert_executions(&[new], None).await.map_err(store_error)
}

/// Builds a new execution from a StartAutomationExecution request, checking everything a start
/// checks. Nothing is written.
pub(crate) async fn prepare(
    svc: &Service,
    caller: &Caller,
    i: &StartAutomationExecutionRequest,
    origin: Origin,
) -> Result<NewExecution, ApiError> {
    if i.targets.is_some() && i.target_maps.is_some() {
        return Err(validation("Targets and TargetMaps cannot be specified together."));
    }
    if i.target_parameter_name.is_some() && i.targets.is_none() {
        return Err(validation("TargetParameterName can only be specified together with Targets."));
    }
    let fanned = i.targets.is_some() || i.target_maps.is_some();
    let mode_name = i.mode.unwrap_or(ExecutionMode::Auto);
    if fanned && mode_name == ExecutionMode::Interactive {
        return Err(validation("Targets and TargetMaps run in Auto mode only."));
    }
    if i.target_locations_url.is_some() {
        return Err(validation(
            "ssmd runs automations in the caller's account and Region only; TargetLocationsURL is not supported.",
        ));
    }
    for loc in i.target_locations.iter().flatten() {
        let foreign_account = loc.accounts.iter().flatten().any(|a| a != &caller.account);
        let foreign_region = loc.regions.iter().flatten().any(|r| r != &caller.region);
        if foreign_account || foreign_region {
            return Err(validation(
                "ssmd runs automations in the caller's account and Region only; TargetLocations may name only those.",
            ));
        }
    }
    if let Some(t) = &i.tags {
        tags::check_new(t)?;
    }
    let resolved = svc.resolve_document(caller, &i.document_name, i.document_version.as_deref(), None).await.map_err(
        |e| match e.code() {
            ErrorCode::InvalidDocumentVersion => ApiError::new(
                ErrorCode::AutomationDefinitionVersionNotFoundException,
                format!(
                    "Document version {} of {} is not found.",
                    i.document_version.as_deref().unwrap_or("$DEFAULT"),
                    i.document_name
                ),
            ),
            ErrorCode::InvalidDocument => ApiError::new(
                ErrorCode::AutomationDefinitionNotFoundException,
                format!("Document {} is not found.", i.document_name),
            ),
            _ => e,
        },
    )?;
    if resolved.doc_type()? != DocumentType::Automation {
        return Err(ApiError::new(
            ErrorCode::AutomationDefinitionNotFoundException,
            format!(
                "Document {} is not an Automation runbook (it is of type {}).",
                i.document_name, resolved.doc.doc_type
            ),
        ));
    }
    let (sha, runbook_json, rb) = svc.parse_runbook(&resolved.version.hash, || {
        parse(&resolved.version.content, resolved.format()?, DocumentType::Automation)
            .map(|p| p.value)
            .map_err(|e| ApiError::internal(format!("stored runbook does not parse: {e:?}")))
    })?;
    // Parameter Store references in the supplied values and the runbook's defaults are resolved
    // when the execution starts, as SSM does.
    let use_ = crate::parameters::refs::Use::Automation;
    let supplied =
        crate::parameters::refs::resolve_supplied(svc, caller, &i.parameters.clone().unwrap_or_default(), use_)
            .await
            .map_err(bad_params)?;
    let definitions =
        crate::parameters::refs::resolve_defaults(svc, caller, &rb.parameters, use_).await.map_err(bad_params)?;

    let mut targets = Vec::new();
    let (parameters, fanout, steps) = if fanned {
        let nodes = match i.targets.as_deref() {
            Some([t]) if t.key.as_deref().is_some_and(is_node_key) => {
                Some(svc.resolve_targets(caller, std::slice::from_ref(t)).await?.into_iter().map(|n| n.id).collect())
            }
            _ => None,
        };
        let (items, from_targets) = fan_items(&rb, i, &supplied, nodes)?;
        for item in &items {
            resolve_parameters(&definitions, &item.parameters).map_err(param_error)?;
        }
        let concurrency = rate::parse_concurrency(i.max_concurrency.as_deref().unwrap_or("10"))
            .map_err(|e| validation(e.to_string()))?;
        let errors =
            rate::parse_errors(i.max_errors.as_deref().unwrap_or("0")).map_err(|e| validation(e.to_string()))?;
        let controller = RateController::new(items.len(), concurrency, errors);
        let wire: Map<String, Value> = supplied.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        targets = items
            .into_iter()
            .map(|i| (i.label, serde_json::to_string(&i.parameters).expect("parameters serialise")))
            .collect();
        (wire, Some(machine::fanout(controller, from_targets)), Vec::new())
    } else {
        let typed = resolve_parameters(&definitions, &supplied).map_err(param_error)?;
        (typed, None, machine::pending_records(&rb))
    };
    let variables: Map<String, Value> =
        rb.variables.iter().map(|(k, def)| (k.clone(), def.get("default").cloned().unwrap_or(Value::Null))).collect();
    let now = svc.now_ms();
    let mut x = Execution {
        id: origin.id.clone(),
        account: caller.account.clone(),
        region: caller.region.clone(),
        document_name: resolved.reported_name(),
        document_version: resolved.version.version.to_string(),
        mode: mode_name,
        status: AutomationExecutionStatus::Pending,
        executed_by: caller.arn.clone(),
        start_ms: now,
        end_ms: None,
        parameters,
        variables,
        steps,
        at: machine::initial_position(&rb, mode_name),
        loops: Vec::new(),
        failure_message: None,
        failed: None,
        parent_id: origin.parent.clone(),
        target: origin.target,
        fanout,
        echo: Echo {
            target_parameter_name: i.target_parameter_name.clone(),
            targets: i.targets.clone(),
            target_maps: i.target_maps.clone(),
            max_concurrency: fanned.then(|| i.max_concurrency.clone().unwrap_or_else(|| "10".into())),
            max_errors: i.max_errors.clone(),
            target_locations: i.target_locations.clone(),
            target_locations_url: None,
            alarm_configuration: i.alarm_configuration.clone(),
        },
        cancel_deadline_ms: None,
        cancelled_record: None,
        cancel_children: Vec::new(),
        cancel_commands: Vec::new(),
        assume_role: None,
        overrides: BTreeMap::new(),
    };
    if let Some(role) = &rb.assume_role {
        let resolved = machine::resolve(&x, &Value::String(role.clone()), now)
            .map_err(|e| bad_params(format!("assumeRole: {e}")))?;
        x.assume_role = Some(ssmd_core::document::scalar_text(&resolved)).filter(|r| !r.is_empty());
    }
    let tags =
        i.tags.iter().flatten().map(|t| ssmd_store::Tag { key: t.key.clone(), value: t.value.clone() }).collect();
    Ok(NewExecution {
        id: origin.id,
        account: caller.account.clone(),
        region: caller.region.clone(),
        document_name: x.document_name.clone(),
        status: x.status.to_string(),
        parent_id: origin.parent,
        start_ms: now,
        runbook_sha: sha,
        runbook: runbook_json.to_string(),
        state: serde_json::to_string(&x).map_err(|e| ApiError::internal(e.to_string()))?,
        due_ms: Some(now),
        tags,
        targets,
    })
}

/// Whether a target key names managed nodes (resolved through the shared target resolver).
fn is_node_key(key: &str) -> bool {
    key == "InstanceIds" || key == "tag-key" || key.starts_with("tag:")
}

/// One fan-out item per target value (Targets: ParameterValues, or the managed nodes `nodes`
/// resolved for a node target) or per map (TargetMaps), each with its child's parameters: the
/// request's Parameters with the target's values over them.
fn fan_items(
    rb: &Runbook,
    i: &StartAutomationExecutionRequest,
    supplied: &BTreeMap<String, Vec<String>>,
    nodes: Option<Vec<String>>,
) -> Result<(Vec<FanItem>, bool), ApiError> {
    if let Some(maps) = &i.target_maps {
        let items = maps
            .iter()
            .map(|m| {
                let mut parameters = supplied.clone();
                parameters.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                let label = m.iter().map(|(k, v)| format!("{k}={}", v.join(","))).collect::<Vec<_>>().join(";");
                FanItem { label, parameters, child: None }
            })
            .collect();
        return Ok((items, false));
    }
    let targets = i.targets.as_deref().unwrap_or_default();
    let name = i
        .target_parameter_name
        .as_deref()
        .ok_or_else(|| validation("TargetParameterName is required with Targets."))?;
    let declared = rb.parameters.get(name).is_some();
    if !declared {
        return Err(bad_params(format!("TargetParameterName {name} is not a parameter of the runbook.")));
    }
    if targets.len() != 1 {
        return Err(ApiError::new(ErrorCode::InvalidTarget, "An automation takes exactly one Target."));
    }
    let t = &targets[0];
    let key = t.key.as_deref().unwrap_or_default();
    let values = match nodes {
        Some(ids) => ids,
        None if key == "ParameterValues" => {
            let values = t.values.clone().unwrap_or_default();
            if values.is_empty() {
                return Err(ApiError::new(ErrorCode::InvalidTarget, "The ParameterValues target has no values."));
            }
            values
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "ssmd resolves Automation targets from ParameterValues, managed nodes (InstanceIds, tag:<key>, tag-key) and TargetMaps; the target key {key} names AWS resources ssmd does not hold."
                ),
            ));
        }
    };
    let items = values
        .into_iter()
        .map(|v| {
            let mut parameters = supplied.clone();
            parameters.insert(name.to_string(), vec![v.clone()]);
            FanItem { label: v, parameters, child: None }
        })
        .collect();
    Ok((items, true))
}
