//! Structural validation of document content for its DocumentType, as `CreateDocument` and
//! `UpdateDocument` perform it before anything is stored.
//!
//! [`validate`] receives content that already parsed as JSON or YAML into an object. It checks
//! the shape the document type requires and refuses the first problem it finds with a message
//! that names the step, parameter or field and the rule broken:
//!
//! * `Automation` and `Automation.ChangeTemplate` (schemaVersion `0.3`): steps, their control flow
//!   (`nextStep`, `onFailure`, `onCancel`, branch targets), `aws:branch` conditions, `aws:loop`
//!   bodies, `aws:approve` approvers, step outputs, `{{ssm:…}}` references, parameters, variables,
//!   top-level outputs and, for change templates, the template fields and approval levels.
//! * `Command` (schemaVersion `1.2`, `2.0`, `2.2`): `runtimeConfig` plugins or `mainSteps`, shell
//!   script inputs and parameters.
//! * Every other type: a `schemaVersion` must be present.
//!
//! Unknown actions are accepted here (they are refused when a runbook runs); validation is pure
//! and never looks at anything but the document itself.

use super::DocError;
use regex::Regex;
use serde_json::{Map, Value};
use ssmd_model::enums::DocumentType;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// Validates a parsed document (a JSON object) of `doc_type`.
///
/// Returns [`DocError::InvalidSchemaVersion`] when the schemaVersion is missing or not one ssmd
/// supports for the type, and [`DocError::InvalidContent`] for every other problem.
pub fn validate(doc_type: DocumentType, doc: &Value) -> Result<(), DocError> {
    let Some(obj) = doc.as_object() else {
        return Err(bad("The document content must be an object."));
    };
    match doc_type {
        DocumentType::Automation => automation(obj, false),
        DocumentType::AutomationChangeTemplate => automation(obj, true),
        DocumentType::Command => command(obj),
        _ => {
            schema_version(obj, doc_type)?;
            Ok(())
        }
    }
}

fn bad(msg: impl Into<String>) -> DocError {
    DocError::InvalidContent(msg.into())
}

/// Parameter and variable types runbooks and Command documents accept.
const PARAM_TYPES: [&str; 6] = ["String", "StringList", "Integer", "Boolean", "StringMap", "MapList"];
/// Types a step output may declare.
const OUTPUT_TYPES: [&str; 6] = ["String", "Integer", "Boolean", "StringList", "StringMap", "MapList"];
/// Operators that compare `Variable` with a string.
const STRING_OPS: [&str; 5] = ["StringEquals", "EqualsIgnoreCase", "StartsWith", "EndsWith", "Contains"];
/// Operators that compare `Variable` with a number.
const NUMERIC_OPS: [&str; 5] =
    ["NumericEquals", "NumericGreater", "NumericLesser", "NumericGreaterOrEquals", "NumericLesserOrEquals"];
/// Operators that combine nested conditions and take no `Variable`.
const LOGICAL_OPS: [&str; 3] = ["And", "Or", "Not"];
/// Actions an `onCancel` step may not be (the cancellation workflow has at most two minutes).
const ON_CANCEL_FORBIDDEN_TARGETS: [&str; 8] = [
    "aws:approve",
    "aws:copyImage",
    "aws:createImage",
    "aws:createStack",
    "aws:createTags",
    "aws:pause",
    "aws:runInstances",
    "aws:sleep",
];
/// Approver principal types of `EnhancedApprovals` in change templates.
const APPROVER_TYPES: [&str; 5] = ["IamUser", "IamGroup", "IamRole", "SSOGroup", "SSOUser"];
/// Most approval levels (aws:approve steps) a change template may have.
const MAX_APPROVAL_LEVELS: usize = 5;
/// Most approver entries one change-template approval level may list.
const MAX_TEMPLATE_APPROVERS: usize = 5;
/// Most approvers a runbook's aws:approve step may list.
const MAX_APPROVERS: usize = 10;
/// Most iterations (and iterator values) of an aws:loop.
const MAX_LOOP_ITERATIONS: u64 = 100;

static STEP_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_]{1,128}$").unwrap());
static ACTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^aws:[A-Za-z]+$").unwrap());
static SSM_REF: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\{\{\s*ssm:").unwrap());
static WHOLE_SSM_REF: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\{\{\s*ssm:[^{}]+\}\}$").unwrap());

// ---------------------------------------------------------------------------------------------
// schemaVersion

/// Reads `schemaVersion` as text (`0.3` written as a number reads as `"0.3"`).
fn schema_version(obj: &Map<String, Value>, doc_type: DocumentType) -> Result<String, DocError> {
    match obj.get("schemaVersion") {
        None => Err(DocError::InvalidSchemaVersion(format!(
            "The document has no schemaVersion; {doc_type} documents must declare one."
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(DocError::InvalidSchemaVersion("The schemaVersion must be a string or a number.".into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Automation runbooks and change templates

/// One step list: `mainSteps` (no parent) or the `Steps` of an aws:loop.
struct Scope {
    parent: Option<usize>,
    /// The aws:loop step whose body this is.
    owner: Option<String>,
}

/// A step found while collecting names, with where it lives.
struct StepInfo<'a> {
    name: &'a str,
    action: &'a str,
    scope: usize,
    step: &'a Map<String, Value>,
}

/// Everything the per-step checks need to know about the whole document.
struct Runbook<'a> {
    scopes: Vec<Scope>,
    steps: Vec<StepInfo<'a>>,
    by_name: HashMap<&'a str, usize>,
    variables: HashSet<&'a str>,
    template: bool,
}

fn automation(obj: &Map<String, Value>, template: bool) -> Result<(), DocError> {
    let kind = if template { DocumentType::AutomationChangeTemplate } else { DocumentType::Automation };
    let version = schema_version(obj, kind)?;
    if version != "0.3" {
        return Err(DocError::InvalidSchemaVersion(format!(
            "The schemaVersion '{version}' is not supported for {kind} documents; use 0.3."
        )));
    }
    optional_string(obj, "description", "The document's description")?;
    if let Some(role) = obj.get("assumeRole") {
        let Some(role) = role.as_str() else {
            return Err(bad("The assumeRole must be a string (a role ARN or a {{ parameter }} reference)."));
        };
        if SSM_REF.is_match(role) {
            return Err(bad(
                "The assumeRole may not use a {{ssm:...}} Parameter Store reference; use a role ARN or a {{ parameter }} reference.",
            ));
        }
    }
    if let Some(params) = obj.get("parameters") {
        check_definitions(params, "parameters", "Parameter", true)?;
    }
    let mut variables = HashSet::new();
    if let Some(vars) = obj.get("variables") {
        check_definitions(vars, "variables", "Variable", false)?;
        if let Some(map) = vars.as_object() {
            variables.extend(map.keys().map(String::as_str));
        }
    }
    if let Some(files) = obj.get("files")
        && !files.is_object()
    {
        return Err(bad("The files member must be a map of file name to file details."));
    }

    let Some(main) = obj.get("mainSteps") else {
        return Err(bad("The document has no mainSteps; an Automation document needs at least one step."));
    };
    let mut book = Runbook { scopes: vec![], steps: vec![], by_name: HashMap::new(), variables, template };
    collect_steps(main, None, &mut book)?;
    for i in 0..book.steps.len() {
        check_step(&book, i)?;
    }

    if let Some(outputs) = obj.get("outputs") {
        let Some(list) = outputs.as_array() else {
            return Err(bad("The document's outputs must be a list of strings of the form stepName.outputName."));
        };
        for out in list {
            let Some(s) = out.as_str() else {
                return Err(bad(format!(
                    "The document output {out} must be a string of the form stepName.outputName."
                )));
            };
            let Some((step, name)) = s.split_once('.') else {
                return Err(bad(format!("The document output '{s}' must have the form stepName.outputName.")));
            };
            if name.is_empty() {
                return Err(bad(format!("The document output '{s}' has no output name after the step name.")));
            }
            if !book.by_name.contains_key(step) {
                return Err(bad(format!(
                    "The document output '{s}' names step '{step}', which is not a step of this document."
                )));
            }
        }
    }
    if template {
        change_template(obj, &book)?;
    }
    Ok(())
}

/// Walks a step list (and the bodies of loops inside it), checking each entry is an object
/// with a valid, unique `name` and a valid `action`, and records where each step lives.
fn collect_steps<'a>(list: &'a Value, owner: Option<(&'a str, usize)>, book: &mut Runbook<'a>) -> Result<(), DocError> {
    let place = match owner {
        None => "mainSteps".to_string(),
        Some((loop_name, _)) => format!("the inputs.Steps of aws:loop step '{loop_name}'"),
    };
    let Some(items) = list.as_array() else {
        return Err(bad(match owner {
            None => "The mainSteps member must be a list of steps.".to_string(),
            Some((loop_name, _)) => {
                format!("Step '{loop_name}' (aws:loop) has inputs.Steps that is not a list of steps.")
            }
        }));
    };
    if items.is_empty() {
        return Err(bad(match owner {
            None => "The mainSteps list is empty; an Automation document needs at least one step.".to_string(),
            Some((loop_name, _)) => {
                format!("Step '{loop_name}' (aws:loop) has an empty inputs.Steps list; a loop needs at least one step.")
            }
        }));
    }
    let scope = book.scopes.len();
    book.scopes.push(Scope { parent: owner.map(|(_, s)| s), owner: owner.map(|(n, _)| n.to_string()) });
    for (i, item) in items.iter().enumerate() {
        let Some(step) = item.as_object() else {
            return Err(bad(format!("Step {} in {place} must be an object.", i + 1)));
        };
        let name = match step.get("name") {
            None => return Err(bad(format!("Step {} in {place} has no name.", i + 1))),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(bad(format!("Step {} in {place} has a name that is not a string.", i + 1)));
            }
        };
        if !STEP_NAME.is_match(name) {
            return Err(bad(format!(
                "Step name '{name}' is invalid: a step name is 1 to 128 characters, each a letter, digit or underscore."
            )));
        }
        if book.by_name.contains_key(name) {
            return Err(bad(format!(
                "Step name '{name}' is used more than once; step names must be unique in the document."
            )));
        }
        let action = match step.get("action") {
            None => return Err(bad(format!("Step '{name}' has no action."))),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(bad(format!("Step '{name}' has an action that is not a string.")));
            }
        };
        if !ACTION.is_match(action) {
            return Err(bad(format!("Step '{name}' has action '{action}', which is not of the form aws:actionName.")));
        }
        book.by_name.insert(name, book.steps.len());
        book.steps.push(StepInfo { name, action, scope, step });
        if action == "aws:loop" {
            let inputs = step.get("inputs").and_then(Value::as_object);
            match inputs.and_then(|m| m.get("Steps")) {
                None => {
                    return Err(bad(format!(
                        "Step '{name}' (aws:loop) has no inputs.Steps; a loop needs steps to run."
                    )));
                }
                Some(nested) => collect_steps(nested, Some((name, scope)), book)?,
            }
        }
    }
    Ok(())
}

impl Runbook<'_> {
    /// Checks that `target` names a step that the step `from` may jump to: a step in its own
    /// list or in a list enclosing it (a loop's sub-step may leave the loop, but nothing may jump
    /// into the middle of a loop body from outside it).
    fn check_target(&self, from: usize, field: &str, target: &str) -> Result<(), DocError> {
        let step = &self.steps[from];
        let Some(&idx) = self.by_name.get(target) else {
            return Err(bad(match field {
                "onFailure" | "onCancel" => format!(
                    "Step '{}' has {field} 'step:{target}', but '{target}' is not a step of this document.",
                    step.name
                ),
                _ => format!("Step '{}' has {field} '{target}', which is not a step of this document.", step.name),
            }));
        };
        let target_scope = self.steps[idx].scope;
        let mut scope = Some(step.scope);
        while let Some(s) = scope {
            if s == target_scope {
                return Ok(());
            }
            scope = self.scopes[s].parent;
        }
        let owner = self.scopes[target_scope].owner.as_deref().unwrap_or("?");
        Err(bad(format!(
            "Step '{}' has {field} '{target}', which is inside aws:loop step '{owner}' and can't be reached from outside that loop.",
            step.name
        )))
    }
}

fn check_step(book: &Runbook<'_>, idx: usize) -> Result<(), DocError> {
    let StepInfo { name, action, step, .. } = book.steps[idx];
    let inputs = match step.get("inputs") {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            return Err(bad(format!("Step '{name}' has inputs that are not a map of input name to value.")));
        }
    };
    optional_string(step, "description", &format!("Step '{name}' has a description that"))?;

    if let Some(next) = step.get("nextStep") {
        let Some(next) = next.as_str() else {
            return Err(bad(format!("Step '{name}' has a nextStep that is not a string.")));
        };
        book.check_target(idx, "nextStep", next)?;
    }
    if let Some(on_failure) = step.get("onFailure") {
        let Some(v) = on_failure.as_str() else {
            return Err(bad(format!(
                "Step '{name}' has an onFailure that is not a string; use Abort, Continue or step:<name>."
            )));
        };
        match v {
            "Abort" | "Continue" => {}
            _ => match v.strip_prefix("step:") {
                Some(target) => book.check_target(idx, "onFailure", target)?,
                None => {
                    return Err(bad(format!(
                        "Step '{name}' has onFailure '{v}'; the value must be Abort, Continue or step:<name>."
                    )));
                }
            },
        }
    }
    if let Some(on_cancel) = step.get("onCancel") {
        if action == "aws:loop" || action == "aws:updateVariable" {
            return Err(bad(format!("Step '{name}' uses onCancel, which is not supported for {action} steps.")));
        }
        let Some(v) = on_cancel.as_str() else {
            return Err(bad(format!("Step '{name}' has an onCancel that is not a string; use Abort or step:<name>.")));
        };
        if v != "Abort" {
            let Some(target) = v.strip_prefix("step:") else {
                return Err(bad(format!("Step '{name}' has onCancel '{v}'; the value must be Abort or step:<name>.")));
            };
            book.check_target(idx, "onCancel", target)?;
            let target_action = book.steps[book.by_name[target]].action;
            if ON_CANCEL_FORBIDDEN_TARGETS.contains(&target_action) {
                return Err(bad(format!(
                    "Step '{name}' has onCancel 'step:{target}', but a cancellation step may not use action {target_action}."
                )));
            }
        }
    }
    for flag in ["isEnd", "isCritical"] {
        if let Some(v) = step.get(flag)
            && !v.is_boolean()
        {
            return Err(bad(format!("Step '{name}' has {flag} {v}; {flag} must be true or false.")));
        }
    }
    for field in ["maxAttempts", "timeoutSeconds"] {
        if let Some(v) = step.get(field)
            && v.as_u64().is_none_or(|n| n == 0)
        {
            return Err(bad(format!("Step '{name}' has {field} {v}; {field} must be a positive integer.")));
        }
    }
    if let Some(outputs) = step.get("outputs") {
        check_step_outputs(name, outputs)?;
    }

    // {{ssm:...}} is only resolved in parameter defaults; a loop's body is checked step by step.
    if let Some(inputs) = inputs {
        for (key, value) in inputs {
            if action == "aws:loop" && key == "Steps" {
                continue;
            }
            if contains_ssm_ref(value) {
                return Err(bad(format!(
                    "Step '{name}' input '{key}' uses a {{{{ssm:...}}}} Parameter Store reference, which is only allowed in parameter defaults."
                )));
            }
        }
    }

    let empty = Map::new();
    let inputs = inputs.unwrap_or(&empty);
    match action {
        "aws:branch" => check_branch(book, idx, inputs)?,
        "aws:loop" => check_loop(name, inputs)?,
        "aws:approve" => check_approve(name, inputs, book.template)?,
        "aws:sleep" => {
            let n = ["Duration", "Timestamp"].iter().filter(|k| inputs.contains_key(**k)).count();
            if n != 1 {
                return Err(bad(format!(
                    "Step '{name}' (aws:sleep) needs exactly one of the inputs Duration and Timestamp."
                )));
            }
        }
        "aws:updateVariable" => check_update_variable(book, name, inputs)?,
        _ => {}
    }
    Ok(())
}

fn check_step_outputs(name: &str, outputs: &Value) -> Result<(), DocError> {
    let Some(list) = outputs.as_array() else {
        return Err(bad(format!("Step '{name}' has outputs that are not a list of {{Name, Selector, Type}} entries.")));
    };
    for (i, out) in list.iter().enumerate() {
        let n = i + 1;
        let Some(out) = out.as_object() else {
            return Err(bad(format!("Step '{name}' output {n} must be an object with Name, Selector and Type.")));
        };
        let out_name = match out.get("Name") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => {
                return Err(bad(format!("Step '{name}' output {n} needs a Name that is a non-empty string.")));
            }
        };
        match out.get("Selector") {
            Some(Value::String(s)) if s.starts_with('$') => {}
            _ => {
                return Err(bad(format!(
                    "Step '{name}' output '{out_name}' needs a Selector that is a JSONPath string starting with $."
                )));
            }
        }
        match out.get("Type").and_then(Value::as_str) {
            Some(t) if OUTPUT_TYPES.contains(&t) => {}
            Some(t) => {
                return Err(bad(format!(
                    "Step '{name}' output '{out_name}' has Type '{t}'; the type must be one of {}.",
                    OUTPUT_TYPES.join(", ")
                )));
            }
            None => {
                return Err(bad(format!(
                    "Step '{name}' output '{out_name}' needs a Type, one of {}.",
                    OUTPUT_TYPES.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn contains_ssm_ref(v: &Value) -> bool {
    match v {
        Value::String(s) => SSM_REF.is_match(s),
        Value::Array(items) => items.iter().any(contains_ssm_ref),
        Value::Object(m) => m.iter().any(|(k, v)| SSM_REF.is_match(k) || contains_ssm_ref(v)),
        _ => false,
    }
}

fn check_branch(book: &Runbook<'_>, idx: usize, inputs: &Map<String, Value>) -> Result<(), DocError> {
    let name = book.steps[idx].name;
    let Some(choices) = inputs.get("Choices") else {
        return Err(bad(format!("Step '{name}' (aws:branch) has no inputs.Choices.")));
    };
    let Some(choices) = choices.as_array() else {
        return Err(bad(format!("Step '{name}' (aws:branch) has inputs.Choices that is not a list.")));
    };
    if choices.is_empty() {
        return Err(bad(format!(
            "Step '{name}' (aws:branch) has an empty Choices list; a branch needs at least one choice."
        )));
    }
    for (i, choice) in choices.iter().enumerate() {
        let place = format!("Step '{name}' (aws:branch) choice {}", i + 1);
        let Some(obj) = choice.as_object() else {
            return Err(bad(format!("{place} must be an object.")));
        };
        match obj.get("NextStep") {
            None => return Err(bad(format!("{place} has no NextStep."))),
            Some(Value::String(next)) => book.check_target(idx, &format!("choice {} NextStep", i + 1), next)?,
            Some(_) => return Err(bad(format!("{place} has a NextStep that is not a string."))),
        }
        check_condition(obj, &place, true)?;
    }
    if let Some(default) = inputs.get("Default") {
        let Some(default) = default.as_str() else {
            return Err(bad(format!("Step '{name}' (aws:branch) has a Default that is not a string.")));
        };
        book.check_target(idx, "Default", default)?;
    }
    Ok(())
}

/// Checks one condition of the aws:branch / LoopCondition grammar: `Variable` plus exactly one
/// comparison operator, or exactly one of `And` / `Or` (lists of conditions) / `Not` (one
/// condition). `is_choice` allows the `NextStep` key a branch choice carries.
fn check_condition(obj: &Map<String, Value>, place: &str, is_choice: bool) -> Result<(), DocError> {
    let ops: Vec<&str> =
        obj.keys().map(String::as_str).filter(|k| *k != "Variable" && !(is_choice && *k == "NextStep")).collect();
    if let Some(unknown) = ops.iter().find(|k| !is_operator(k)) {
        if !is_choice && *unknown == "NextStep" {
            return Err(bad(format!("{place} has NextStep, which only a top-level branch choice may have.")));
        }
        return Err(bad(format!(
            "{place} uses unknown operator '{unknown}'; the operators are {}, {}, BooleanEquals, And, Or and Not.",
            STRING_OPS.join(", "),
            NUMERIC_OPS.join(", ")
        )));
    }
    let op = match ops.as_slice() {
        [op] => *op,
        [] => {
            return Err(bad(format!(
                "{place} has no operator; a condition needs exactly one (for example StringEquals)."
            )));
        }
        many => {
            return Err(bad(format!(
                "{place} has more than one operator ({}); a condition needs exactly one (combine conditions with And or Or).",
                many.join(", ")
            )));
        }
    };
    let operand = &obj[op];
    if LOGICAL_OPS.contains(&op) {
        if obj.contains_key("Variable") {
            return Err(bad(format!("{place} uses {op}, which takes nested conditions instead of a Variable.")));
        }
        if op == "Not" {
            let Some(inner) = operand.as_object() else {
                return Err(bad(format!("{place} has a Not whose value is not a single condition object.")));
            };
            return check_condition(inner, &format!("{place} Not"), false);
        }
        let Some(list) = operand.as_array().filter(|l| !l.is_empty()) else {
            return Err(bad(format!("{place} has an {op} whose value is not a non-empty list of conditions.")));
        };
        for (i, inner) in list.iter().enumerate() {
            let inner_place = format!("{place} {op} condition {}", i + 1);
            let Some(inner) = inner.as_object() else {
                return Err(bad(format!("{inner_place} must be an object.")));
            };
            check_condition(inner, &inner_place, false)?;
        }
        return Ok(());
    }
    match obj.get("Variable") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(bad(format!("{place} has a Variable that is not a string."))),
        None => {
            return Err(bad(format!("{place} uses {op} but has no Variable to compare.")));
        }
    }
    let ok = if STRING_OPS.contains(&op) {
        matches!(operand, Value::String(_) | Value::Number(_) | Value::Bool(_))
    } else if NUMERIC_OPS.contains(&op) {
        matches!(operand, Value::Number(_) | Value::String(_))
    } else {
        matches!(operand, Value::Bool(_) | Value::String(_))
    };
    if !ok {
        let wanted = if STRING_OPS.contains(&op) {
            "a string"
        } else if NUMERIC_OPS.contains(&op) {
            "a number"
        } else {
            "true or false"
        };
        return Err(bad(format!("{place} compares with {op} {operand}, but {op} needs {wanted}.")));
    }
    Ok(())
}

fn is_operator(k: &str) -> bool {
    STRING_OPS.contains(&k) || NUMERIC_OPS.contains(&k) || LOGICAL_OPS.contains(&k) || k == "BooleanEquals"
}

fn check_loop(name: &str, inputs: &Map<String, Value>) -> Result<(), DocError> {
    let iterators = inputs.get("Iterators");
    let condition = inputs.get("LoopCondition");
    match (iterators, condition) {
        (None, None) => {
            return Err(bad(format!(
                "Step '{name}' (aws:loop) needs either Iterators or LoopCondition in its inputs."
            )));
        }
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "Step '{name}' (aws:loop) has both Iterators and LoopCondition; use only one of them."
            )));
        }
        _ => {}
    }
    if let Some(iterators) = iterators {
        match iterators {
            Value::String(_) => {}
            Value::Array(items) if items.len() as u64 <= MAX_LOOP_ITERATIONS => {}
            Value::Array(items) => {
                return Err(bad(format!(
                    "Step '{name}' (aws:loop) has {} Iterators; a loop iterates over at most {MAX_LOOP_ITERATIONS} values.",
                    items.len()
                )));
            }
            _ => {
                return Err(bad(format!(
                    "Step '{name}' (aws:loop) has Iterators that are neither a list nor a {{{{ reference }}}} string."
                )));
            }
        }
    }
    if let Some(t) = inputs.get("IteratorDataType") {
        const ITERATOR_TYPES: [&str; 4] = ["Boolean", "Integer", "String", "StringMap"];
        if !t.as_str().is_some_and(|t| ITERATOR_TYPES.contains(&t)) {
            return Err(bad(format!(
                "Step '{name}' (aws:loop) has IteratorDataType {t}; it must be one of {}.",
                ITERATOR_TYPES.join(", ")
            )));
        }
    }
    if let Some(condition) = condition {
        let Some(obj) = condition.as_object() else {
            return Err(bad(format!("Step '{name}' (aws:loop) has a LoopCondition that is not a condition object.")));
        };
        check_condition(obj, &format!("Step '{name}' (aws:loop) LoopCondition"), false)?;
    }
    if let Some(max) = inputs.get("MaxIterations")
        && max.as_u64().is_none_or(|n| n == 0 || n > MAX_LOOP_ITERATIONS)
    {
        return Err(bad(format!(
            "Step '{name}' (aws:loop) has MaxIterations {max}; it must be an integer from 1 to {MAX_LOOP_ITERATIONS}."
        )));
    }
    Ok(())
}

fn check_approve(name: &str, inputs: &Map<String, Value>, template: bool) -> Result<(), DocError> {
    let max = if template { MAX_TEMPLATE_APPROVERS } else { MAX_APPROVERS };
    let approvers = inputs.get("Approvers");
    let enhanced = inputs.get("EnhancedApprovals");
    if approvers.is_none() && enhanced.is_none() {
        return Err(bad(format!("Step '{name}' (aws:approve) needs Approvers (or EnhancedApprovals) in its inputs.")));
    }
    let mut literal_count = None;
    if let Some(approvers) = approvers {
        match approvers {
            Value::String(_) => {}
            Value::Array(list) => {
                if list.is_empty() || list.len() > max {
                    return Err(bad(format!(
                        "Step '{name}' (aws:approve) lists {} Approvers; it must list 1 to {max}.",
                        list.len()
                    )));
                }
                if list.iter().any(|a| !a.is_string()) {
                    return Err(bad(format!("Step '{name}' (aws:approve) has Approvers that are not all strings.")));
                }
                literal_count = Some(list.len() as u64);
            }
            _ => {
                return Err(bad(format!("Step '{name}' (aws:approve) has Approvers that are not a list of strings.")));
            }
        }
    }
    if let Some(min) = inputs.get("MinRequiredApprovals") {
        match min {
            Value::String(_) => {}
            _ => {
                let Some(n) = min.as_u64().filter(|n| *n >= 1) else {
                    return Err(bad(format!(
                        "Step '{name}' (aws:approve) has MinRequiredApprovals {min}; it must be a positive integer."
                    )));
                };
                if let Some(count) = literal_count
                    && n > count
                {
                    return Err(bad(format!(
                        "Step '{name}' (aws:approve) has MinRequiredApprovals {n}, more than its {count} Approvers."
                    )));
                }
            }
        }
    }
    if let Some(enhanced) = enhanced {
        let Some(enhanced) = enhanced.as_object() else {
            return Err(bad(format!("Step '{name}' (aws:approve) has EnhancedApprovals that is not an object.")));
        };
        let Some(list) = enhanced.get("Approvers").and_then(Value::as_array) else {
            return Err(bad(format!("Step '{name}' (aws:approve) has EnhancedApprovals without an Approvers list.")));
        };
        if list.is_empty() || list.len() > max {
            return Err(bad(format!(
                "Step '{name}' (aws:approve) lists {} EnhancedApprovals approvers; it must list 1 to {max}.",
                list.len()
            )));
        }
        for (i, entry) in list.iter().enumerate() {
            let place = format!("Step '{name}' (aws:approve) EnhancedApprovals approver {}", i + 1);
            let Some(entry) = entry.as_object() else {
                return Err(bad(format!("{place} must be an object with approver and type.")));
            };
            if !non_empty_str(entry.get("approver")) {
                return Err(bad(format!("{place} needs an approver that is a non-empty string.")));
            }
            match entry.get("type").and_then(Value::as_str) {
                Some(t) if APPROVER_TYPES.contains(&t) => {}
                _ => {
                    return Err(bad(format!("{place} needs a type, one of {}.", APPROVER_TYPES.join(", "))));
                }
            }
            if let Some(min) = entry.get("minRequiredApprovals")
                && min.as_u64().is_none()
            {
                return Err(bad(format!("{place} has minRequiredApprovals {min}; it must be a non-negative integer.")));
            }
        }
    }
    Ok(())
}

fn check_update_variable(book: &Runbook<'_>, name: &str, inputs: &Map<String, Value>) -> Result<(), DocError> {
    let Some(var) = inputs.get("Name") else {
        return Err(bad(format!(
            "Step '{name}' (aws:updateVariable) has no Name input naming the variable:<name> to update."
        )));
    };
    let Some(var) = var.as_str() else {
        return Err(bad(format!("Step '{name}' (aws:updateVariable) has a Name input that is not a string.")));
    };
    if !var.contains("{{") {
        let Some(var_name) = var.strip_prefix("variable:") else {
            return Err(bad(format!(
                "Step '{name}' (aws:updateVariable) has Name '{var}'; it must have the form variable:<name>."
            )));
        };
        if !book.variables.contains(var_name) {
            return Err(bad(format!(
                "Step '{name}' (aws:updateVariable) updates variable '{var_name}', which the document's variables don't declare."
            )));
        }
    }
    if !inputs.contains_key("Value") {
        return Err(bad(format!("Step '{name}' (aws:updateVariable) has no Value input.")));
    }
    Ok(())
}

/// The change-template rules of spec §6.1 on top of the runbook rules.
fn change_template(obj: &Map<String, Value>, book: &Runbook<'_>) -> Result<(), DocError> {
    optional_string(obj, "templateInformation", "The templateInformation")?;
    for flag in ["emergencyChange", "autoApprovable"] {
        if let Some(v) = obj.get(flag)
            && !v.is_boolean()
        {
            return Err(bad(format!("The {flag} member is {v}; it must be true or false.")));
        }
    }
    if let Some(runbooks) = obj.get("executableRunBooks") {
        let Some(list) = runbooks.as_array() else {
            return Err(bad("The executableRunBooks member must be a list of {name, version} entries."));
        };
        if list.is_empty() {
            return Err(bad(
                "The executableRunBooks list is empty; list at least one runbook, or leave it out to allow any runbook.",
            ));
        }
        for (i, rb) in list.iter().enumerate() {
            let n = i + 1;
            let Some(rb) = rb.as_object() else {
                return Err(bad(format!("Entry {n} of executableRunBooks must be an object with name and version.")));
            };
            if !non_empty_str(rb.get("name")) {
                return Err(bad(format!("Entry {n} of executableRunBooks needs a name that is a non-empty string.")));
            }
            if let Some(v) = rb.get("version")
                && !(v.is_string() || v.is_u64())
            {
                return Err(bad(format!(
                    "Entry {n} of executableRunBooks has version {v}; it must be a version number or $DEFAULT/$LATEST."
                )));
            }
        }
    }
    // The template's steps are its approval levels.
    for step in &book.steps {
        if step.action != "aws:approve" {
            return Err(bad(format!(
                "Step '{}' uses action {}; a change template's mainSteps may only be aws:approve approval levels.",
                step.name, step.action
            )));
        }
    }
    if book.steps.len() > MAX_APPROVAL_LEVELS {
        return Err(bad(format!(
            "The change template has {} aws:approve steps; a template may have at most {MAX_APPROVAL_LEVELS} approval levels.",
            book.steps.len()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parameters and variables

/// Checks a `parameters` (or `variables`) map. `what` names one entry in messages ("Parameter",
/// "Variable"); `allow_ssm_default` lets a default be a whole `{{ssm:name}}` reference.
fn check_definitions(defs: &Value, member: &str, what: &str, allow_ssm_default: bool) -> Result<(), DocError> {
    let Some(defs) = defs.as_object() else {
        return Err(bad(format!("The {member} member must be a map of name to definition.")));
    };
    for (name, def) in defs {
        if name.is_empty() {
            return Err(bad(format!("A {} in {member} has an empty name.", what.to_lowercase())));
        }
        let Some(def) = def.as_object() else {
            return Err(bad(format!("{what} '{name}' must be defined by an object with at least a type.")));
        };
        let kind = match def.get("type") {
            None => {
                return Err(bad(format!(
                    "{what} '{name}' has no type; the type must be one of {}.",
                    PARAM_TYPES.join(", ")
                )));
            }
            Some(Value::String(t)) if PARAM_TYPES.contains(&t.as_str()) => t.as_str(),
            Some(t) => {
                return Err(bad(format!(
                    "{what} '{name}' has type {t}; the type must be one of {}.",
                    PARAM_TYPES.join(", ")
                )));
            }
        };
        optional_string(def, "description", &format!("{what} '{name}' has a description that"))?;
        if let Some(v) = def.get("allowedValues")
            && !v.is_array()
        {
            return Err(bad(format!("{what} '{name}' has allowedValues that is not a list.")));
        }
        if let Some(p) = def.get("allowedPattern") {
            let Some(p) = p.as_str() else {
                return Err(bad(format!("{what} '{name}' has an allowedPattern that is not a string.")));
            };
            check_pattern(what, name, p)?;
        }
        if let Some(d) = def.get("displayType")
            && !matches!(d.as_str(), Some("textfield" | "textarea"))
        {
            return Err(bad(format!("{what} '{name}' has displayType {d}; it must be textfield or textarea.")));
        }
        for field in ["minItems", "maxItems", "minChars", "maxChars"] {
            if let Some(v) = def.get(field)
                && v.as_u64().is_none()
            {
                return Err(bad(format!("{what} '{name}' has {field} {v}; it must be a non-negative integer.")));
            }
        }
        for (min, max) in [("minItems", "maxItems"), ("minChars", "maxChars")] {
            if let (Some(lo), Some(hi)) = (def.get(min).and_then(Value::as_u64), def.get(max).and_then(Value::as_u64))
                && lo > hi
            {
                return Err(bad(format!("{what} '{name}' has {min} {lo} greater than {max} {hi}.")));
            }
        }
        if let Some(default) = def.get("default") {
            check_default(what, name, kind, default, allow_ssm_default)?;
        }
    }
    Ok(())
}

/// Compiles an `allowedPattern`. AWS checks patterns with Java regex semantics; Rust's `regex`
/// lacks look-around and backreferences, so a pattern refused only for using one of those is
/// accepted rather than rejecting a document AWS would take.
fn check_pattern(what: &str, name: &str, pattern: &str) -> Result<(), DocError> {
    match Regex::new(pattern) {
        Ok(_) => Ok(()),
        Err(regex::Error::Syntax(msg)) if msg.contains("not supported") => Ok(()),
        Err(e) => {
            let detail = match e {
                regex::Error::Syntax(msg) => {
                    let last = msg.lines().last().unwrap_or("").trim();
                    last.strip_prefix("error: ").unwrap_or(last).to_string()
                }
                other => other.to_string(),
            };
            Err(bad(format!(
                "{what} '{name}' has allowedPattern '{pattern}', which is not a valid regular expression ({}).",
                detail.trim_end_matches('.')
            )))
        }
    }
}

fn check_default(what: &str, name: &str, kind: &str, default: &Value, allow_ssm: bool) -> Result<(), DocError> {
    if let Value::String(s) = default
        && SSM_REF.is_match(s)
    {
        if !allow_ssm {
            return Err(bad(format!(
                "{what} '{name}' has a default with a {{{{ssm:...}}}} reference, which only parameter defaults may use."
            )));
        }
        // Resolved from Parameter Store when the runbook starts, so its type can't be known now.
        if WHOLE_SSM_REF.is_match(s.trim()) || kind == "String" {
            return Ok(());
        }
    }
    let ok = match kind {
        "String" => default.is_string(),
        "Integer" => default.is_i64() || default.is_u64(),
        "Boolean" => default.is_boolean(),
        "StringList" => default.as_array().is_some_and(|l| l.iter().all(Value::is_string)),
        "StringMap" => default.is_object(),
        "MapList" => default.as_array().is_some_and(|l| l.iter().all(Value::is_object)),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let wanted = match kind {
        "String" => "a string",
        "Integer" => "an integer",
        "Boolean" => "true or false",
        "StringList" => "a list of strings",
        "StringMap" => "a map",
        _ => "a list of maps",
    };
    Err(bad(format!("{what} '{name}' has type {kind} but its default {default} is not {wanted}.")))
}

fn non_empty_str(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::String(s)) if !s.is_empty())
}

/// Refuses a member that is present but not a string. `subject` starts the message, e.g.
/// "Step 'x' has a description that".
fn optional_string(obj: &Map<String, Value>, key: &str, subject: &str) -> Result<(), DocError> {
    match obj.get(key) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) if subject.ends_with(" that") => Err(bad(format!("{subject} is not a string."))),
        Some(_) => Err(bad(format!("{subject} must be a string."))),
    }
}

// ---------------------------------------------------------------------------------------------
// Command documents

fn command(obj: &Map<String, Value>) -> Result<(), DocError> {
    let version = schema_version(obj, DocumentType::Command)?;
    optional_string(obj, "description", "The document's description")?;
    if let Some(params) = obj.get("parameters") {
        check_definitions(params, "parameters", "Parameter", true)?;
    }
    match version.as_str() {
        "1.2" => command_v12(obj),
        "2.0" | "2.2" => command_v2(obj),
        other => Err(DocError::InvalidSchemaVersion(format!(
            "The schemaVersion '{other}' is not supported for Command documents; use 1.2, 2.0 or 2.2."
        ))),
    }
}

fn command_v12(obj: &Map<String, Value>) -> Result<(), DocError> {
    let Some(runtime) = obj.get("runtimeConfig") else {
        return Err(bad("The document has no runtimeConfig; a schemaVersion 1.2 Command document needs one."));
    };
    let Some(runtime) = runtime.as_object() else {
        return Err(bad("The runtimeConfig must be a map of plugin name to plugin configuration."));
    };
    if runtime.is_empty() {
        return Err(bad("The runtimeConfig is empty; it needs at least one plugin."));
    }
    for (plugin, cfg) in runtime {
        if !ACTION.is_match(plugin) {
            return Err(bad(format!("The runtimeConfig plugin '{plugin}' is not of the form aws:pluginName.")));
        }
        let Some(cfg) = cfg.as_object() else {
            return Err(bad(format!("The runtimeConfig plugin '{plugin}' must be an object with properties.")));
        };
        match cfg.get("properties") {
            Some(Value::Object(_) | Value::Array(_)) => {}
            Some(_) => {
                return Err(bad(format!(
                    "The runtimeConfig plugin '{plugin}' has properties that are not an object or a list."
                )));
            }
            None => {
                return Err(bad(format!("The runtimeConfig plugin '{plugin}' has no properties.")));
            }
        }
    }
    Ok(())
}

fn command_v2(obj: &Map<String, Value>) -> Result<(), DocError> {
    let Some(main) = obj.get("mainSteps") else {
        return Err(bad(
            "The document has no mainSteps; a schemaVersion 2.x Command document needs at least one step.",
        ));
    };
    let Some(steps) = main.as_array() else {
        return Err(bad("The mainSteps member must be a list of steps."));
    };
    if steps.is_empty() {
        return Err(bad("The mainSteps list is empty; a Command document needs at least one step."));
    }
    let mut names = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let Some(step) = step.as_object() else {
            return Err(bad(format!("Step {n} in mainSteps must be an object.")));
        };
        let name = match step.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(_) => {
                return Err(bad(format!("Step {n} in mainSteps has a name that is not a non-empty string.")));
            }
            None => return Err(bad(format!("Step {n} in mainSteps has no name."))),
        };
        if !names.insert(name) {
            return Err(bad(format!(
                "Step name '{name}' is used more than once; step names must be unique in the document."
            )));
        }
        let action = match step.get("action") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(bad(format!("Step '{name}' has an action that is not a string.")));
            }
            None => return Err(bad(format!("Step '{name}' has no action."))),
        };
        if !ACTION.is_match(action) {
            return Err(bad(format!("Step '{name}' has action '{action}', which is not of the form aws:pluginName.")));
        }
        let inputs = match step.get("inputs") {
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(bad(format!("Step '{name}' has inputs that are not a map of input name to value.")));
            }
            None => return Err(bad(format!("Step '{name}' has no inputs."))),
        };
        if let Some(pre) = step.get("precondition")
            && !pre.is_object()
        {
            return Err(bad(format!("Step '{name}' has a precondition that is not an object.")));
        }
        if matches!(action, "aws:runShellScript" | "aws:runPowerShellScript") {
            match inputs.get("runCommand") {
                None => {
                    return Err(bad(format!("Step '{name}' ({action}) has no inputs.runCommand.")));
                }
                Some(Value::String(_)) => {}
                Some(Value::Array(lines)) if lines.iter().all(Value::is_string) => {}
                Some(_) => {
                    return Err(bad(format!(
                        "Step '{name}' ({action}) has inputs.runCommand that is not a string or a list of strings."
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Asserts that validation fails with `InvalidContent` whose message contains `fragment`.
    fn content_err(doc_type: DocumentType, doc: Value, fragment: &str) {
        match validate(doc_type, &doc) {
            Err(DocError::InvalidContent(msg)) => {
                assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
                assert!(msg.ends_with('.'), "message {msg:?} does not end with a period");
                assert!(msg.starts_with(|c: char| c.is_ascii_uppercase()), "message {msg:?} is not capitalised");
            }
            other => panic!("expected InvalidContent containing {fragment:?}, got {other:?}"),
        }
    }

    fn version_err(doc_type: DocumentType, doc: Value, fragment: &str) {
        match validate(doc_type, &doc) {
            Err(DocError::InvalidSchemaVersion(msg)) => {
                assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
                assert!(msg.ends_with('.'), "message {msg:?} does not end with a period");
            }
            other => panic!("expected InvalidSchemaVersion containing {fragment:?}, got {other:?}"),
        }
    }

    /// A runbook with one step `stepOne` plus whatever `extra` fields the test sets on it.
    fn one_step(extra: Value) -> Value {
        let mut step = json!({"name": "stepOne", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}});
        for (k, v) in extra.as_object().unwrap() {
            step[k] = v.clone();
        }
        json!({"schemaVersion": "0.3", "mainSteps": [step, {"name": "stepTwo", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}]})
    }

    /// A runbook whose first step is a branch with the given inputs.
    fn branch(inputs: Value) -> Value {
        json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "choose", "action": "aws:branch", "inputs": inputs},
            {"name": "a", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}},
            {"name": "b", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}
        ]})
    }

    /// A runbook whose only step is a loop with the given inputs.
    fn looped(inputs: Value) -> Value {
        json!({"schemaVersion": "0.3", "mainSteps": [{"name": "loop", "action": "aws:loop", "inputs": inputs}]})
    }

    fn body() -> Value {
        json!([{"name": "inner", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}])
    }

    /// A runbook with one parameter `P` defined as `def`.
    fn param(def: Value) -> Value {
        let mut doc = one_step(json!({}));
        doc["parameters"] = json!({ "P": def });
        doc
    }

    fn realistic_runbook() -> Value {
        json!({
            "schemaVersion": "0.3",
            "description": "Restart instances that are running, then report.",
            "assumeRole": "{{ AutomationAssumeRole }}",
            "parameters": {
                "AutomationAssumeRole": {"type": "String", "default": "", "description": "Role to assume."},
                "InstanceIds": {"type": "StringList", "default": ["i-0123456789abcdef0"], "minItems": 1, "maxItems": 50},
                "Mode": {"type": "String", "allowedValues": ["restart", "stop"], "default": "restart",
                         "allowedPattern": "^[a-z]+$", "minChars": 1, "maxChars": 16, "displayType": "textfield"},
                "Retries": {"type": "Integer", "default": 3},
                "DryRun": {"type": "Boolean", "default": false},
                "Tags": {"type": "StringMap", "default": {"Owner": "ops"}},
                "Extra": {"type": "MapList", "default": [{"k": "v"}]},
                "AmiId": {"type": "String", "default": "{{ssm:/golden/ami}}"},
                "Subnets": {"type": "StringList", "default": "{{ ssm:/net/subnets }}"}
            },
            "variables": {
                "Counter": {"type": "Integer", "default": 0, "description": "Iterations seen."}
            },
            "mainSteps": [
                {
                    "name": "describe",
                    "action": "aws:executeAwsApi",
                    "inputs": {"Service": "ec2", "Api": "DescribeInstances", "InstanceIds": "{{ InstanceIds }}"},
                    "outputs": [
                        {"Name": "State", "Selector": "$.Reservations[0].Instances[0].State.Name", "Type": "String"},
                        {"Name": "Ids", "Selector": "$..InstanceId", "Type": "StringList"}
                    ],
                    "maxAttempts": 3,
                    "timeoutSeconds": 60,
                    "onFailure": "step:report",
                    "isCritical": true
                },
                {
                    "name": "choose",
                    "action": "aws:branch",
                    "inputs": {
                        "Choices": [
                            {"NextStep": "restartAll", "Variable": "{{ describe.State }}", "StringEquals": "running"},
                            {"NextStep": "report", "And": [
                                {"Variable": "{{ Retries }}", "NumericGreater": 1},
                                {"Not": {"Variable": "{{ DryRun }}", "BooleanEquals": true}}
                            ]},
                            {"NextStep": "report", "Or": [
                                {"Variable": "{{ Mode }}", "EqualsIgnoreCase": "STOP"},
                                {"Variable": "{{ Mode }}", "StartsWith": "st"}
                            ]}
                        ],
                        "Default": "report"
                    }
                },
                {
                    "name": "restartAll",
                    "action": "aws:loop",
                    "onFailure": "Continue",
                    "inputs": {
                        "Iterators": "{{ describe.Ids }}",
                        "IteratorDataType": "String",
                        "MaxIterations": 50,
                        "Steps": [
                            {
                                "name": "restartOne",
                                "action": "aws:executeAwsApi",
                                "inputs": {"Service": "ec2", "Api": "RebootInstances",
                                           "InstanceIds": ["{{ restartAll.CurrentIteratorValue }}"]},
                                "onFailure": "step:report",
                                "onCancel": "step:cleanup"
                            },
                            {
                                "name": "count",
                                "action": "aws:updateVariable",
                                "inputs": {"Name": "variable:Counter", "Value": "{{ restartAll.CurrentIteration }}"},
                                "nextStep": "cleanup"
                            },
                            {
                                "name": "cleanup",
                                "action": "aws:executeScript",
                                "inputs": {"Runtime": "python3.11", "Handler": "handler", "Script": "def handler(e, c): return {}"}
                            }
                        ]
                    }
                },
                {
                    "name": "waitABit",
                    "action": "aws:sleep",
                    "inputs": {"Duration": "PT5S"},
                    "onCancel": "Abort"
                },
                {
                    "name": "report",
                    "action": "aws:executeScript",
                    "isEnd": true,
                    "inputs": {"Runtime": "python3.11", "Handler": "handler", "Script": "def handler(e, c): return {'ok': True}"},
                    "outputs": [{"Name": "Ok", "Selector": "$.Payload.ok", "Type": "Boolean"}]
                }
            ],
            "outputs": ["describe.State", "report.Ok", "restartOne.Whatever"]
        })
    }

    fn change_template() -> Value {
        json!({
            "schemaVersion": "0.3",
            "emergencyChange": false,
            "autoApprovable": true,
            "templateInformation": "### Document Name: MyTemplate\n\nDescribe the change.",
            "description": "Standard change template.",
            "parameters": {"ApproverSnsTopicArn": {"type": "String", "default": ""}},
            "executableRunBooks": [
                {"name": "AWS-RestartEC2Instance", "version": "$DEFAULT"},
                {"name": "MyRunbook", "version": 1}
            ],
            "mainSteps": [
                {
                    "name": "SimpleApproval",
                    "action": "aws:approve",
                    "timeoutSeconds": 604800,
                    "inputs": {
                        "Message": "A sample change request has been submitted.",
                        "MinRequiredApprovals": 1,
                        "EnhancedApprovals": {
                            "NotificationArn": "{{ ApproverSnsTopicArn }}",
                            "Approvers": [
                                {"approver": "ops-admins", "type": "IamGroup", "minRequiredApprovals": 0},
                                {"approver": "alice", "type": "IamUser", "minRequiredApprovals": 1}
                            ]
                        }
                    }
                },
                {
                    "name": "SecondLevel",
                    "action": "aws:approve",
                    "inputs": {"Approvers": ["arn:aws:iam::123456789012:role/Approver"], "Message": "Level two."}
                }
            ]
        })
    }

    // ---- valid documents -------------------------------------------------------------------

    #[test]
    fn yaml_runbook_through_document_parse() {
        use crate::document::parse;
        use ssmd_model::enums::DocumentFormat;
        let yaml = r#"
schemaVersion: 0.3
description: Stop an instance when it is running.
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: String
    default: ''
  InstanceId:
    type: String
    allowedPattern: '^i-[a-z0-9]{8,17}$'
mainSteps:
  - name: getState
    action: aws:executeAwsApi
    inputs:
      Service: ec2
      Api: DescribeInstances
      InstanceIds: ['{{ InstanceId }}']
    outputs:
      - Name: State
        Selector: $.Reservations[0].Instances[0].State.Name
        Type: String
  - name: decide
    action: aws:branch
    inputs:
      Choices:
        - NextStep: stop
          Variable: '{{ getState.State }}'
          StringEquals: running
      Default: done
  - name: stop
    action: aws:changeInstanceState
    maxAttempts: 2
    inputs:
      InstanceIds: ['{{ InstanceId }}']
      DesiredState: stopped
  - name: done
    action: aws:sleep
    isEnd: true
    inputs:
      Duration: PT1S
outputs:
  - getState.State
"#;
        let parsed = parse(yaml, DocumentFormat::Yaml, DocumentType::Automation).unwrap();
        assert_eq!(parsed.schema_version.as_deref(), Some("0.3"));
        let broken = yaml.replace("Default: done", "Default: nowhere");
        match parse(&broken, DocumentFormat::Yaml, DocumentType::Automation) {
            Err(DocError::InvalidContent(msg)) => {
                assert!(msg.contains("Default 'nowhere'"), "{msg}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let command = "schemaVersion: 2.2\nmainSteps:\n  - name: run\n    action: aws:runShellScript\n    inputs:\n      runCommand:\n        - echo hi\n";
        parse(command, DocumentFormat::Yaml, DocumentType::Command).unwrap();
    }

    #[test]
    fn realistic_runbook_passes() {
        validate(DocumentType::Automation, &realistic_runbook()).unwrap();
    }

    #[test]
    fn schema_version_number_is_accepted() {
        let mut doc = one_step(json!({}));
        doc["schemaVersion"] = json!(0.3);
        validate(DocumentType::Automation, &doc).unwrap();
    }

    #[test]
    fn do_while_loop_with_condition_passes() {
        let doc = looped(json!({
            "Steps": [{"name": "invoke", "action": "aws:invokeLambdaFunction", "inputs": {"FunctionName": "f"},
                       "outputs": [{"Name": "Retry", "Selector": "$.Retry", "Type": "Boolean"}]}],
            "LoopCondition": {"Variable": "{{ invoke.Retry }}", "BooleanEquals": true},
            "MaxIterations": 3
        }));
        validate(DocumentType::Automation, &doc).unwrap();
    }

    #[test]
    fn unknown_action_is_accepted_at_creation() {
        let doc =
            json!({"schemaVersion": "0.3", "mainSteps": [{"name": "x", "action": "aws:doesNotExist", "inputs": {}}]});
        validate(DocumentType::Automation, &doc).unwrap();
    }

    #[test]
    fn change_template_passes() {
        validate(DocumentType::AutomationChangeTemplate, &change_template()).unwrap();
    }

    #[test]
    fn change_template_without_executable_runbooks_passes() {
        let mut doc = change_template();
        doc.as_object_mut().unwrap().remove("executableRunBooks");
        validate(DocumentType::AutomationChangeTemplate, &doc).unwrap();
    }

    #[test]
    fn command_22_passes() {
        let doc = json!({
            "schemaVersion": "2.2",
            "description": "Run a shell script.",
            "parameters": {
                "commands": {"type": "StringList", "default": ["echo hi"], "description": "Commands."},
                "workingDirectory": {"type": "String", "default": ""},
                "executionTimeout": {"type": "String", "default": "3600", "allowedPattern": "([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)"},
                "flags": {"type": "StringMap", "default": {}},
                "verbose": {"type": "Boolean", "default": true}
            },
            "mainSteps": [
                {"action": "aws:runShellScript", "name": "runShellScript",
                 "precondition": {"StringEquals": ["platformType", "Linux"]},
                 "inputs": {"runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}", "timeoutSeconds": "{{ executionTimeout }}"}},
                {"action": "aws:runPowerShellScript", "name": "runPowerShell",
                 "precondition": {"StringEquals": ["platformType", "Windows"]},
                 "inputs": {"runCommand": ["Get-Date", "Write-Output {{ssm:/greeting}}"]}},
                {"action": "aws:runShellScript", "name": "single", "inputs": {"runCommand": "uptime"}}
            ]
        });
        validate(DocumentType::Command, &doc).unwrap();
    }

    #[test]
    fn command_20_and_numeric_version_pass() {
        let mut doc = json!({"schemaVersion": "2.0", "mainSteps": [
            {"action": "aws:runDocument", "name": "nested", "inputs": {"documentType": "SSMDocument", "documentPath": "AWS-RunShellScript"}}
        ]});
        validate(DocumentType::Command, &doc).unwrap();
        doc["schemaVersion"] = json!(2.2);
        validate(DocumentType::Command, &doc).unwrap();
    }

    #[test]
    fn command_12_passes() {
        let doc = json!({
            "schemaVersion": "1.2",
            "description": "Run a shell script.",
            "parameters": {"commands": {"type": "StringList", "description": "Commands to run."}},
            "runtimeConfig": {
                "aws:runShellScript": {
                    "properties": [{"id": "0.aws:runShellScript", "runCommand": "{{ commands }}"}]
                }
            }
        });
        validate(DocumentType::Command, &doc).unwrap();
    }

    #[test]
    fn other_types_only_need_a_schema_version() {
        validate(DocumentType::Session, &json!({"schemaVersion": "1.0", "sessionType": "Standard_Stream"})).unwrap();
        validate(DocumentType::Policy, &json!({"schemaVersion": 1.0})).unwrap();
        validate(DocumentType::Package, &json!({"schemaVersion": "2.0", "anything": [1, 2]})).unwrap();
    }

    // ---- schemaVersion ---------------------------------------------------------------------

    #[test]
    fn automation_wrong_schema_version_is_refused() {
        let mut doc = one_step(json!({}));
        doc["schemaVersion"] = json!("2.2");
        version_err(DocumentType::Automation, doc, "'2.2' is not supported for Automation");
    }

    #[test]
    fn automation_missing_schema_version_is_refused() {
        let mut doc = one_step(json!({}));
        doc.as_object_mut().unwrap().remove("schemaVersion");
        version_err(DocumentType::Automation, doc, "no schemaVersion");
    }

    #[test]
    fn change_template_wrong_schema_version_is_refused() {
        let mut doc = change_template();
        doc["schemaVersion"] = json!("1.2");
        version_err(DocumentType::AutomationChangeTemplate, doc, "Automation.ChangeTemplate");
    }

    #[test]
    fn command_unknown_schema_version_is_refused() {
        version_err(DocumentType::Command, json!({"schemaVersion": "0.3", "mainSteps": []}), "use 1.2, 2.0 or 2.2");
    }

    #[test]
    fn other_type_without_schema_version_is_refused() {
        version_err(
            DocumentType::Session,
            json!({"sessionType": "Standard_Stream"}),
            "Session documents must declare one",
        );
    }

    #[test]
    fn other_type_with_object_schema_version_is_refused() {
        version_err(DocumentType::Policy, json!({"schemaVersion": {"v": 1}}), "must be a string or a number");
    }

    // ---- mainSteps and step identity ---------------------------------------------------------

    #[test]
    fn missing_main_steps_is_refused() {
        content_err(DocumentType::Automation, json!({"schemaVersion": "0.3"}), "has no mainSteps");
    }

    #[test]
    fn empty_main_steps_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": []}),
            "mainSteps list is empty",
        );
    }

    #[test]
    fn main_steps_not_a_list_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": {"a": 1}}),
            "must be a list of steps",
        );
    }

    #[test]
    fn step_not_an_object_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": ["x"]}),
            "Step 1 in mainSteps must be an object",
        );
    }

    #[test]
    fn step_without_name_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": [{"action": "aws:pause"}]}),
            "Step 1 in mainSteps has no name",
        );
    }

    #[test]
    fn step_name_not_string_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": [{"name": 5, "action": "aws:pause"}]}),
            "name that is not a string",
        );
    }

    #[test]
    fn step_name_with_bad_characters_is_refused() {
        let doc =
            json!({"schemaVersion": "0.3", "mainSteps": [{"name": "bad-name", "action": "aws:pause", "inputs": {}}]});
        content_err(DocumentType::Automation, doc, "Step name 'bad-name' is invalid");
    }

    #[test]
    fn step_name_too_long_is_refused() {
        let long = "a".repeat(129);
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [{"name": long, "action": "aws:pause", "inputs": {}}]});
        content_err(DocumentType::Automation, doc, "1 to 128 characters");
        let ok = json!({"schemaVersion": "0.3", "mainSteps": [{"name": "a".repeat(128), "action": "aws:pause", "inputs": {}}]});
        validate(DocumentType::Automation, &ok).unwrap();
    }

    #[test]
    fn duplicate_step_name_is_refused() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "same", "action": "aws:pause", "inputs": {}},
            {"name": "same", "action": "aws:pause", "inputs": {}}
        ]});
        content_err(DocumentType::Automation, doc, "Step name 'same' is used more than once");
    }

    #[test]
    fn duplicate_name_between_loop_body_and_main_steps_is_refused() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "loop", "action": "aws:loop", "inputs": {"Iterators": ["a"], "Steps": [{"name": "dup", "action": "aws:pause", "inputs": {}}]}},
            {"name": "dup", "action": "aws:pause", "inputs": {}}
        ]});
        content_err(DocumentType::Automation, doc, "Step name 'dup' is used more than once");
    }

    #[test]
    fn step_without_action_is_refused() {
        content_err(
            DocumentType::Automation,
            json!({"schemaVersion": "0.3", "mainSteps": [{"name": "x"}]}),
            "Step 'x' has no action",
        );
    }

    #[test]
    fn malformed_action_is_refused() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [{"name": "x", "action": "runScript", "inputs": {}}]});
        content_err(
            DocumentType::Automation,
            doc,
            "Step 'x' has action 'runScript', which is not of the form aws:actionName",
        );
        let doc =
            json!({"schemaVersion": "0.3", "mainSteps": [{"name": "x", "action": "aws:run-script", "inputs": {}}]});
        content_err(DocumentType::Automation, doc, "not of the form aws:actionName");
    }

    #[test]
    fn inputs_not_a_map_is_refused() {
        content_err(
            DocumentType::Automation,
            one_step(json!({"inputs": ["a"]})),
            "Step 'stepOne' has inputs that are not a map",
        );
    }

    // ---- control flow ----------------------------------------------------------------------

    #[test]
    fn unknown_next_step_is_refused() {
        content_err(
            DocumentType::Automation,
            one_step(json!({"nextStep": "nope"})),
            "Step 'stepOne' has nextStep 'nope', which is not a step of this document.",
        );
    }

    #[test]
    fn next_step_not_string_is_refused() {
        content_err(DocumentType::Automation, one_step(json!({"nextStep": 3})), "nextStep that is not a string");
    }

    #[test]
    fn valid_next_step_passes() {
        validate(DocumentType::Automation, &one_step(json!({"nextStep": "stepTwo"}))).unwrap();
    }

    #[test]
    fn on_failure_values() {
        for ok in ["Abort", "Continue", "step:stepTwo"] {
            validate(DocumentType::Automation, &one_step(json!({"onFailure": ok}))).unwrap();
        }
        content_err(
            DocumentType::Automation,
            one_step(json!({"onFailure": "Retry"})),
            "onFailure 'Retry'; the value must be Abort, Continue or step:<name>",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"onFailure": "step:ghost"})),
            "has onFailure 'step:ghost', but 'ghost' is not a step of this document",
        );
        content_err(DocumentType::Automation, one_step(json!({"onFailure": true})), "onFailure that is not a string");
    }

    #[test]
    fn on_cancel_values() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "work", "action": "aws:executeScript", "inputs": {}, "onCancel": "step:undo"},
            {"name": "undo", "action": "aws:executeAwsApi", "inputs": {}}
        ]});
        validate(DocumentType::Automation, &doc).unwrap();
        validate(DocumentType::Automation, &one_step(json!({"onCancel": "Abort"}))).unwrap();
        content_err(
            DocumentType::Automation,
            one_step(json!({"onCancel": "Continue"})),
            "onCancel 'Continue'; the value must be Abort or step:<name>",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"onCancel": "step:ghost"})),
            "has onCancel 'step:ghost', but 'ghost' is not a step of this document",
        );
    }

    #[test]
    fn on_cancel_to_forbidden_action_is_refused() {
        // stepTwo is an aws:sleep, which can't be a cancellation step.
        content_err(
            DocumentType::Automation,
            one_step(json!({"onCancel": "step:stepTwo"})),
            "may not use action aws:sleep",
        );
    }

    #[test]
    fn on_cancel_on_loop_is_refused() {
        let mut doc = looped(json!({"Iterators": ["a"], "Steps": body()}));
        doc["mainSteps"][0]["onCancel"] = json!("Abort");
        content_err(
            DocumentType::Automation,
            doc,
            "Step 'loop' uses onCancel, which is not supported for aws:loop steps",
        );
    }

    #[test]
    fn jump_into_a_loop_body_is_refused() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "first", "action": "aws:pause", "inputs": {}, "nextStep": "inner"},
            {"name": "loop", "action": "aws:loop", "inputs": {"Iterators": ["a"], "Steps": body()}}
        ]});
        content_err(
            DocumentType::Automation,
            doc,
            "Step 'first' has nextStep 'inner', which is inside aws:loop step 'loop'",
        );
    }

    #[test]
    fn loop_sub_step_may_jump_out_of_the_loop() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "loop", "action": "aws:loop", "inputs": {"Iterators": ["a"], "Steps": [
                {"name": "inner", "action": "aws:pause", "inputs": {}, "onFailure": "step:after"}
            ]}},
            {"name": "after", "action": "aws:pause", "inputs": {}}
        ]});
        validate(DocumentType::Automation, &doc).unwrap();
    }

    #[test]
    fn is_end_and_is_critical_must_be_booleans() {
        validate(DocumentType::Automation, &one_step(json!({"isEnd": true, "isCritical": false}))).unwrap();
        content_err(
            DocumentType::Automation,
            one_step(json!({"isEnd": "true"})),
            "Step 'stepOne' has isEnd \"true\"; isEnd must be true or false",
        );
        content_err(DocumentType::Automation, one_step(json!({"isCritical": 1})), "isCritical must be true or false");
    }

    #[test]
    fn max_attempts_and_timeout_must_be_positive_integers() {
        validate(DocumentType::Automation, &one_step(json!({"maxAttempts": 2, "timeoutSeconds": 600}))).unwrap();
        content_err(
            DocumentType::Automation,
            one_step(json!({"maxAttempts": 0})),
            "Step 'stepOne' has maxAttempts 0; maxAttempts must be a positive integer",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"maxAttempts": 1.5})),
            "maxAttempts must be a positive integer",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"timeoutSeconds": -5})),
            "timeoutSeconds must be a positive integer",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"timeoutSeconds": "60"})),
            "timeoutSeconds must be a positive integer",
        );
    }

    #[test]
    fn step_description_must_be_string() {
        content_err(
            DocumentType::Automation,
            one_step(json!({"description": 5})),
            "Step 'stepOne' has a description that is not a string",
        );
    }

    // ---- aws:branch --------------------------------------------------------------------------

    #[test]
    fn branch_needs_choices() {
        content_err(DocumentType::Automation, branch(json!({})), "Step 'choose' (aws:branch) has no inputs.Choices");
        content_err(DocumentType::Automation, branch(json!({"Choices": []})), "empty Choices list");
        content_err(DocumentType::Automation, branch(json!({"Choices": "x"})), "inputs.Choices that is not a list");
        content_err(DocumentType::Automation, branch(json!({"Choices": ["x"]})), "choice 1 must be an object");
    }

    #[test]
    fn branch_choice_needs_existing_next_step() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"Variable": "{{ x }}", "StringEquals": "y"}]})),
            "choice 1 has no NextStep",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "zzz", "Variable": "{{ x }}", "StringEquals": "y"}]})),
            "Step 'choose' has choice 1 NextStep 'zzz', which is not a step of this document",
        );
    }

    #[test]
    fn branch_default_must_exist() {
        let ok =
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "StringEquals": "y"}], "Default": "b"}));
        validate(DocumentType::Automation, &ok).unwrap();
        content_err(
            DocumentType::Automation,
            branch(
                json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "StringEquals": "y"}], "Default": "ghost"}),
            ),
            "Step 'choose' has Default 'ghost', which is not a step of this document",
        );
    }

    #[test]
    fn branch_every_operator_is_known() {
        for (op, val) in [
            ("StringEquals", json!("a")),
            ("EqualsIgnoreCase", json!("a")),
            ("StartsWith", json!("a")),
            ("EndsWith", json!("a")),
            ("Contains", json!("a")),
            ("NumericEquals", json!(1)),
            ("NumericGreater", json!(1)),
            ("NumericLesser", json!(1)),
            ("NumericGreaterOrEquals", json!(1.5)),
            ("NumericLesserOrEquals", json!("{{ n }}")),
            ("BooleanEquals", json!(false)),
        ] {
            let doc = branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", op: val}]}));
            validate(DocumentType::Automation, &doc).unwrap_or_else(|e| panic!("{op}: {e}"));
        }
    }

    #[test]
    fn branch_unknown_operator_is_refused() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "StringMatches": "y"}]})),
            "choice 1 uses unknown operator 'StringMatches'",
        );
    }

    #[test]
    fn branch_needs_exactly_one_operator() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}"}]})),
            "choice 1 has no operator",
        );
        content_err(
            DocumentType::Automation,
            branch(
                json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "StringEquals": "y", "Contains": "z"}]}),
            ),
            "has more than one operator",
        );
    }

    #[test]
    fn branch_operator_needs_variable() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "StringEquals": "y"}]})),
            "uses StringEquals but has no Variable",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": 3, "StringEquals": "y"}]})),
            "Variable that is not a string",
        );
    }

    #[test]
    fn branch_operand_types_are_checked() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "NumericEquals": [1]}]})),
            "NumericEquals needs a number",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "BooleanEquals": 1}]})),
            "BooleanEquals needs true or false",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "StringEquals": {"a": 1}}]})),
            "StringEquals needs a string",
        );
    }

    #[test]
    fn branch_logical_operators_nest() {
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "And": []}]})),
            "And whose value is not a non-empty list",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Not": [{"Variable": "{{ x }}", "StringEquals": "y"}]}]})),
            "Not whose value is not a single condition",
        );
        content_err(
            DocumentType::Automation,
            branch(
                json!({"Choices": [{"NextStep": "a", "Variable": "{{ x }}", "Or": [{"Variable": "{{ x }}", "StringEquals": "y"}]}]}),
            ),
            "uses Or, which takes nested conditions instead of a Variable",
        );
        content_err(
            DocumentType::Automation,
            branch(json!({"Choices": [{"NextStep": "a", "Or": [{"Variable": "{{ x }}", "Bogus": "y"}]}]})),
            "choice 1 Or condition 1 uses unknown operator 'Bogus'",
        );
        content_err(
            DocumentType::Automation,
            branch(
                json!({"Choices": [{"NextStep": "a", "And": [{"NextStep": "b", "Variable": "{{ x }}", "StringEquals": "y"}]}]}),
            ),
            "NextStep, which only a top-level branch choice may have",
        );
    }

    // ---- aws:loop --------------------------------------------------------------------------

    #[test]
    fn loop_needs_steps() {
        content_err(
            DocumentType::Automation,
            looped(json!({"Iterators": ["a"]})),
            "Step 'loop' (aws:loop) has no inputs.Steps",
        );
        content_err(
            DocumentType::Automation,
            looped(json!({"Iterators": ["a"], "Steps": []})),
            "empty inputs.Steps list",
        );
        content_err(
            DocumentType::Automation,
            looped(json!({"Iterators": ["a"], "Steps": {}})),
            "inputs.Steps that is not a list",
        );
    }

    #[test]
    fn loop_sub_steps_are_validated_like_steps() {
        let doc = looped(json!({"Iterators": ["a"], "Steps": [{"name": "inner", "action": "bad"}]}));
        content_err(DocumentType::Automation, doc, "Step 'inner' has action 'bad'");
        let doc = looped(json!({"Iterators": ["a"], "Steps": [{"action": "aws:pause"}]}));
        content_err(DocumentType::Automation, doc, "Step 1 in the inputs.Steps of aws:loop step 'loop' has no name");
        let doc =
            looped(json!({"Iterators": ["a"], "Steps": [{"name": "inner", "action": "aws:pause", "maxAttempts": 0}]}));
        content_err(DocumentType::Automation, doc, "Step 'inner' has maxAttempts 0");
    }

    #[test]
    fn loop_needs_exactly_one_of_iterators_and_condition() {
        content_err(
            DocumentType::Automation,
            looped(json!({"Steps": body()})),
            "needs either Iterators or LoopCondition",
        );
        content_err(
            DocumentType::Automation,
            looped(
                json!({"Steps": body(), "Iterators": ["a"], "LoopCondition": {"Variable": "{{ x }}", "StringEquals": "y"}}),
            ),
            "has both Iterators and LoopCondition",
        );
    }

    #[test]
    fn loop_iterators_and_condition_are_checked() {
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        content_err(DocumentType::Automation, looped(json!({"Steps": body(), "Iterators": many})), "has 101 Iterators");
        content_err(
            DocumentType::Automation,
            looped(json!({"Steps": body(), "Iterators": 5})),
            "Iterators that are neither a list",
        );
        content_err(
            DocumentType::Automation,
            looped(json!({"Steps": body(), "Iterators": ["a"], "IteratorDataType": "Float"})),
            "IteratorDataType \"Float\"",
        );
        content_err(
            DocumentType::Automation,
            looped(json!({"Steps": body(), "LoopCondition": {"Variable": "{{ x }}", "Matches": "y"}})),
            "Step 'loop' (aws:loop) LoopCondition uses unknown operator 'Matches'",
        );
        content_err(
            DocumentType::Automation,
            looped(json!({"Steps": body(), "LoopCondition": "x"})),
            "LoopCondition that is not a condition object",
        );
    }

    #[test]
    fn loop_max_iterations_range() {
        validate(DocumentType::Automation, &looped(json!({"Steps": body(), "Iterators": ["a"], "MaxIterations": 100})))
            .unwrap();
        validate(DocumentType::Automation, &looped(json!({"Steps": body(), "Iterators": ["a"], "MaxIterations": 1})))
            .unwrap();
        for bad_value in [json!(0), json!(101), json!("5"), json!(2.5)] {
            content_err(
                DocumentType::Automation,
                looped(json!({"Steps": body(), "Iterators": ["a"], "MaxIterations": bad_value})),
                "it must be an integer from 1 to 100",
            );
        }
    }

    // ---- other actions -------------------------------------------------------------------

    #[test]
    fn approve_needs_approvers() {
        let doc = |inputs: Value| json!({"schemaVersion": "0.3", "mainSteps": [{"name": "ok", "action": "aws:approve", "inputs": inputs}]});
        validate(DocumentType::Automation, &doc(json!({"Approvers": ["alice", "bob"], "MinRequiredApprovals": 2})))
            .unwrap();
        validate(DocumentType::Automation, &doc(json!({"Approvers": "{{ Approvers }}"}))).unwrap();
        content_err(DocumentType::Automation, doc(json!({"Message": "hi"})), "Step 'ok' (aws:approve) needs Approvers");
        content_err(DocumentType::Automation, doc(json!({"Approvers": []})), "lists 0 Approvers; it must list 1 to 10");
        let eleven: Vec<String> = (0..11).map(|i| format!("u{i}")).collect();
        content_err(DocumentType::Automation, doc(json!({"Approvers": eleven})), "lists 11 Approvers");
        content_err(
            DocumentType::Automation,
            doc(json!({"Approvers": ["a"], "MinRequiredApprovals": 2})),
            "MinRequiredApprovals 2, more than its 1 Approvers",
        );
        content_err(
            DocumentType::Automation,
            doc(json!({"Approvers": ["a"], "MinRequiredApprovals": 0})),
            "must be a positive integer",
        );
    }

    #[test]
    fn sleep_needs_exactly_one_of_duration_and_timestamp() {
        let doc = |inputs: Value| json!({"schemaVersion": "0.3", "mainSteps": [{"name": "nap", "action": "aws:sleep", "inputs": inputs}]});
        validate(DocumentType::Automation, &doc(json!({"Timestamp": "2030-01-01T00:00:00Z"}))).unwrap();
        content_err(
            DocumentType::Automation,
            doc(json!({})),
            "Step 'nap' (aws:sleep) needs exactly one of the inputs Duration and Timestamp",
        );
        content_err(DocumentType::Automation, doc(json!({"Duration": "PT1S", "Timestamp": "x"})), "needs exactly one");
    }

    #[test]
    fn update_variable_must_name_a_declared_variable() {
        let doc = |name: &str| {
            json!({"schemaVersion": "0.3", "variables": {"Counter": {"type": "Integer", "default": 0}},
                   "mainSteps": [{"name": "set", "action": "aws:updateVariable", "inputs": {"Name": name, "Value": 1}}]})
        };
        validate(DocumentType::Automation, &doc("variable:Counter")).unwrap();
        content_err(
            DocumentType::Automation,
            doc("variable:Other"),
            "updates variable 'Other', which the document's variables don't declare",
        );
        content_err(DocumentType::Automation, doc("Counter"), "must have the form variable:<name>");
        let mut no_value = doc("variable:Counter");
        no_value["mainSteps"][0]["inputs"].as_object_mut().unwrap().remove("Value");
        content_err(DocumentType::Automation, no_value, "has no Value input");
        let mut cancel = doc("variable:Counter");
        cancel["mainSteps"][0]["onCancel"] = json!("Abort");
        content_err(DocumentType::Automation, cancel, "not supported for aws:updateVariable steps");
    }

    // ---- {{ssm:...}} ----------------------------------------------------------------------

    #[test]
    fn ssm_reference_in_step_inputs_is_refused() {
        let doc = json!({"schemaVersion": "0.3", "mainSteps": [
            {"name": "call", "action": "aws:executeAwsApi", "inputs": {"Service": "ec2", "Api": "DescribeImages", "ImageIds": ["{{ssm:/golden/ami}}"]}}
        ]});
        content_err(
            DocumentType::Automation,
            doc,
            "Step 'call' input 'ImageIds' uses a {{ssm:...}} Parameter Store reference",
        );
    }

    #[test]
    fn ssm_reference_in_loop_sub_step_names_the_sub_step() {
        let doc = looped(json!({"Iterators": ["a"], "Steps": [
            {"name": "inner", "action": "aws:executeAwsApi", "inputs": {"Api": "{{ ssm:/x }}"}}
        ]}));
        content_err(DocumentType::Automation, doc, "Step 'inner' input 'Api'");
    }

    #[test]
    fn ssm_reference_in_assume_role_is_refused() {
        let mut doc = one_step(json!({}));
        doc["assumeRole"] = json!("{{ssm:/roles/automation}}");
        content_err(DocumentType::Automation, doc, "The assumeRole may not use a {{ssm:...}}");
        let mut doc = one_step(json!({}));
        doc["assumeRole"] = json!(["arn"]);
        content_err(DocumentType::Automation, doc, "The assumeRole must be a string");
    }

    // ---- step outputs --------------------------------------------------------------------

    #[test]
    fn step_outputs_are_checked() {
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": {"Name": "x"}})),
            "Step 'stepOne' has outputs that are not a list",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": ["x"]})),
            "Step 'stepOne' output 1 must be an object",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": [{"Selector": "$.a", "Type": "String"}]})),
            "output 1 needs a Name",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": [{"Name": "A", "Type": "String"}]})),
            "output 'A' needs a Selector",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": [{"Name": "A", "Selector": "a.b", "Type": "String"}]})),
            "starting with $",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": [{"Name": "A", "Selector": "$.a"}]})),
            "output 'A' needs a Type",
        );
        content_err(
            DocumentType::Automation,
            one_step(json!({"outputs": [{"Name": "A", "Selector": "$.a", "Type": "Float"}]})),
            "output 'A' has Type 'Float'",
        );
    }

    // ---- top-level outputs, description, files ------------------------------------------

    #[test]
    fn document_outputs_are_checked() {
        let with = |outputs: Value| {
            let mut doc = one_step(json!({}));
            doc["outputs"] = outputs;
            doc
        };
        validate(DocumentType::Automation, &with(json!(["stepOne.Foo", "stepTwo.Bar.Baz"]))).unwrap();
        content_err(DocumentType::Automation, with(json!("stepOne.Foo")), "The document's outputs must be a list");
        content_err(DocumentType::Automation, with(json!([5])), "The document output 5 must be a string");
        content_err(
            DocumentType::Automation,
            with(json!(["stepOne"])),
            "The document output 'stepOne' must have the form stepName.outputName",
        );
        content_err(DocumentType::Automation, with(json!(["stepOne."])), "has no output name");
        content_err(
            DocumentType::Automation,
            with(json!(["ghost.Out"])),
            "names step 'ghost', which is not a step of this document",
        );
    }

    #[test]
    fn description_and_files_types() {
        let mut doc = one_step(json!({}));
        doc["description"] = json!(["x"]);
        content_err(DocumentType::Automation, doc, "The document's description must be a string");
        let mut doc = one_step(json!({}));
        doc["files"] = json!(["x"]);
        content_err(DocumentType::Automation, doc, "The files member must be a map");
    }

    // ---- parameters --------------------------------------------------------------------

    #[test]
    fn parameters_must_be_a_map_of_objects() {
        let mut doc = one_step(json!({}));
        doc["parameters"] = json!(["a"]);
        content_err(DocumentType::Automation, doc, "The parameters member must be a map");
        content_err(DocumentType::Automation, param(json!("String")), "Parameter 'P' must be defined by an object");
    }

    #[test]
    fn parameter_type_is_required_and_known() {
        content_err(DocumentType::Automation, param(json!({"default": "x"})), "Parameter 'P' has no type");
        content_err(
            DocumentType::Automation,
            param(json!({"type": "Float"})),
            "Parameter 'P' has type \"Float\"; the type must be one of",
        );
        for t in PARAM_TYPES {
            validate(DocumentType::Automation, &param(json!({"type": t}))).unwrap();
        }
    }

    #[test]
    fn parameter_allowed_values_and_pattern() {
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "allowedValues": "a"})),
            "allowedValues that is not a list",
        );
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "allowedPattern": 5})),
            "allowedPattern that is not a string",
        );
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "allowedPattern": "^[a-z"})),
            "Parameter 'P' has allowedPattern '^[a-z', which is not a valid regular expression",
        );
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "allowedPattern": "a{2,1}"})),
            "not a valid regular expression",
        );
        // Java-only features (look-ahead) are accepted rather than refused.
        validate(DocumentType::Automation, &param(json!({"type": "String", "allowedPattern": "^(?!root$)[a-z]+$"})))
            .unwrap();
    }

    #[test]
    fn parameter_defaults_match_their_type() {
        let cases = [
            ("String", json!(5), "default 5 is not a string"),
            ("Integer", json!("5"), "default \"5\" is not an integer"),
            ("Integer", json!(1.5), "is not an integer"),
            ("Boolean", json!("true"), "is not true or false"),
            ("StringList", json!("a"), "is not a list of strings"),
            ("StringList", json!(["a", 1]), "is not a list of strings"),
            ("StringMap", json!(["a"]), "is not a map"),
            ("MapList", json!([{"a": "b"}, "c"]), "is not a list of maps"),
        ];
        for (kind, default, fragment) in cases {
            content_err(DocumentType::Automation, param(json!({"type": kind, "default": default})), fragment);
        }
        let good = [
            ("String", json!("x")),
            ("Integer", json!(-3)),
            ("Boolean", json!(true)),
            ("StringList", json!([])),
            ("StringMap", json!({"k": "v"})),
            ("MapList", json!([])),
            ("StringList", json!("{{ssm:/list}}")),
        ];
        for (kind, default) in good {
            validate(DocumentType::Automation, &param(json!({"type": kind, "default": default}))).unwrap();
        }
    }

    #[test]
    fn parameter_limits_are_non_negative_integers() {
        for field in ["minItems", "maxItems", "minChars", "maxChars"] {
            content_err(
                DocumentType::Automation,
                param(json!({"type": "StringList", field: -1})),
                &format!("Parameter 'P' has {field} -1; it must be a non-negative integer"),
            );
        }
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "minChars": 5, "maxChars": 2})),
            "minChars 5 greater than maxChars 2",
        );
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "displayType": "dropdown"})),
            "displayType \"dropdown\"",
        );
        content_err(
            DocumentType::Automation,
            param(json!({"type": "String", "description": 4})),
            "Parameter 'P' has a description that is not a string",
        );
    }

    #[test]
    fn variables_are_checked_like_parameters() {
        let mut doc = one_step(json!({}));
        doc["variables"] = json!({"V": {"type": "Integer", "default": "x"}});
        content_err(
            DocumentType::Automation,
            doc,
            "Variable 'V' has type Integer but its default \"x\" is not an integer",
        );
        let mut doc = one_step(json!({}));
        doc["variables"] = json!({"V": {"default": 1}});
        content_err(DocumentType::Automation, doc, "Variable 'V' has no type");
        let mut doc = one_step(json!({}));
        doc["variables"] = json!({"V": {"type": "String", "default": "{{ssm:/x}}"}});
        content_err(DocumentType::Automation, doc, "only parameter defaults may use");
    }

    // ---- change templates ------------------------------------------------------------

    #[test]
    fn change_template_fields_are_typed() {
        let mut doc = change_template();
        doc["templateInformation"] = json!(["x"]);
        content_err(DocumentType::AutomationChangeTemplate, doc, "The templateInformation must be a string");
        let mut doc = change_template();
        doc["emergencyChange"] = json!("yes");
        content_err(
            DocumentType::AutomationChangeTemplate,
            doc,
            "The emergencyChange member is \"yes\"; it must be true or false",
        );
        let mut doc = change_template();
        doc["autoApprovable"] = json!(1);
        content_err(DocumentType::AutomationChangeTemplate, doc, "The autoApprovable member is 1");
    }

    #[test]
    fn change_template_executable_runbooks_are_checked() {
        let with = |v: Value| {
            let mut doc = change_template();
            doc["executableRunBooks"] = v;
            doc
        };
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!("AWS-Restart")),
            "executableRunBooks member must be a list",
        );
        content_err(DocumentType::AutomationChangeTemplate, with(json!([])), "executableRunBooks list is empty");
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!(["x"])),
            "Entry 1 of executableRunBooks must be an object",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!([{"version": "1"}])),
            "Entry 1 of executableRunBooks needs a name",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!([{"name": "a", "version": [1]}])),
            "Entry 1 of executableRunBooks has version [1]",
        );
    }

    #[test]
    fn change_template_steps_must_be_approvals() {
        let mut doc = change_template();
        doc["mainSteps"] = json!([{"name": "run", "action": "aws:executeScript", "inputs": {}}]);
        content_err(
            DocumentType::AutomationChangeTemplate,
            doc,
            "Step 'run' uses action aws:executeScript; a change template's mainSteps may only be aws:approve",
        );
    }

    #[test]
    fn change_template_needs_main_steps() {
        let mut doc = change_template();
        doc.as_object_mut().unwrap().remove("mainSteps");
        content_err(DocumentType::AutomationChangeTemplate, doc, "has no mainSteps");
    }

    #[test]
    fn change_template_has_at_most_five_levels() {
        let mut doc = change_template();
        let steps: Vec<Value> = (0..6)
            .map(|i| json!({"name": format!("Level{i}"), "action": "aws:approve", "inputs": {"Approvers": ["a"]}}))
            .collect();
        doc["mainSteps"] = json!(steps);
        content_err(
            DocumentType::AutomationChangeTemplate,
            doc,
            "has 6 aws:approve steps; a template may have at most 5 approval levels",
        );
    }

    #[test]
    fn change_template_approval_levels_are_checked() {
        let with = |inputs: Value| {
            let mut doc = change_template();
            doc["mainSteps"] = json!([{"name": "Level", "action": "aws:approve", "inputs": inputs}]);
            doc
        };
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"Message": "x"})),
            "Step 'Level' (aws:approve) needs Approvers",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"Approvers": ["a", "b", "c", "d", "e", "f"]})),
            "lists 6 Approvers; it must list 1 to 5",
        );
        let approver = json!({"approver": "a", "type": "IamUser"});
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"EnhancedApprovals": {"Approvers": vec![approver; 6]}})),
            "lists 6 EnhancedApprovals approvers; it must list 1 to 5",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"EnhancedApprovals": []})),
            "EnhancedApprovals that is not an object",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"EnhancedApprovals": {}})),
            "EnhancedApprovals without an Approvers list",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"EnhancedApprovals": {"Approvers": [{"type": "IamUser"}]}})),
            "EnhancedApprovals approver 1 needs an approver",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(json!({"EnhancedApprovals": {"Approvers": [{"approver": "a", "type": "Robot"}]}})),
            "needs a type, one of IamUser, IamGroup, IamRole, SSOGroup, SSOUser",
        );
        content_err(
            DocumentType::AutomationChangeTemplate,
            with(
                json!({"EnhancedApprovals": {"Approvers": [{"approver": "a", "type": "IamUser", "minRequiredApprovals": -1}]}}),
            ),
            "minRequiredApprovals -1",
        );
    }

    // ---- Command documents -----------------------------------------------------------

    fn command_step(step: Value) -> Value {
        json!({"schemaVersion": "2.2", "mainSteps": [step]})
    }

    #[test]
    fn command_v2_needs_main_steps() {
        content_err(DocumentType::Command, json!({"schemaVersion": "2.2"}), "has no mainSteps");
        content_err(DocumentType::Command, json!({"schemaVersion": "2.2", "mainSteps": []}), "mainSteps list is empty");
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "2.0", "mainSteps": "x"}),
            "must be a list of steps",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "2.2", "mainSteps": [1]}),
            "Step 1 in mainSteps must be an object",
        );
    }

    #[test]
    fn command_v2_step_shape() {
        content_err(
            DocumentType::Command,
            command_step(json!({"action": "aws:runShellScript", "inputs": {"runCommand": "x"}})),
            "Step 1 in mainSteps has no name",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "", "action": "aws:runShellScript"})),
            "not a non-empty string",
        );
        content_err(DocumentType::Command, command_step(json!({"name": "s", "inputs": {}})), "Step 's' has no action");
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "runShellScript", "inputs": {}})),
            "Step 's' has action 'runShellScript'",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runDocument"})),
            "Step 's' has no inputs",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runDocument", "inputs": "x"})),
            "inputs that are not a map",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runDocument", "inputs": {}, "precondition": "Linux"})),
            "Step 's' has a precondition that is not an object",
        );
        let dup = json!({"schemaVersion": "2.2", "mainSteps": [
            {"name": "s", "action": "aws:runShellScript", "inputs": {"runCommand": "a"}},
            {"name": "s", "action": "aws:runShellScript", "inputs": {"runCommand": "b"}}
        ]});
        content_err(DocumentType::Command, dup, "Step name 's' is used more than once");
    }

    #[test]
    fn command_run_command_input_is_checked() {
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runShellScript", "inputs": {}})),
            "Step 's' (aws:runShellScript) has no inputs.runCommand",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runPowerShellScript", "inputs": {"runCommand": ["a", 1]}})),
            "Step 's' (aws:runPowerShellScript) has inputs.runCommand that is not a string or a list of strings",
        );
        content_err(
            DocumentType::Command,
            command_step(json!({"name": "s", "action": "aws:runShellScript", "inputs": {"runCommand": {"a": "b"}}})),
            "not a string or a list of strings",
        );
    }

    #[test]
    fn command_v12_needs_runtime_config() {
        content_err(DocumentType::Command, json!({"schemaVersion": "1.2"}), "has no runtimeConfig");
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": []}),
            "runtimeConfig must be a map",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": {}}),
            "runtimeConfig is empty",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": "x"}}),
            "plugin 'aws:runShellScript' must be an object with properties",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": {}}}),
            "plugin 'aws:runShellScript' has no properties",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": {"aws:runShellScript": {"properties": "x"}}}),
            "properties that are not an object or a list",
        );
        content_err(
            DocumentType::Command,
            json!({"schemaVersion": "1.2", "runtimeConfig": {"shell": {"properties": {}}}}),
            "plugin 'shell' is not of the form aws:pluginName",
        );
    }

    #[test]
    fn command_parameters_are_checked() {
        let doc = json!({"schemaVersion": "2.2", "parameters": {"p": {"type": "Integer", "default": "x"}},
                         "mainSteps": [{"name": "s", "action": "aws:runShellScript", "inputs": {"runCommand": "x"}}]});
        content_err(DocumentType::Command, doc, "Parameter 'p' has type Integer but its default");
        let doc = json!({"schemaVersion": "1.2", "parameters": {"p": {"type": "Date"}},
                         "runtimeConfig": {"aws:runShellScript": {"properties": []}}});
        content_err(DocumentType::Command, doc, "Parameter 'p' has type \"Date\"");
    }
}
