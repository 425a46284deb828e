//! A runbook (Automation document, schemaVersion 0.3) read into the form the engine walks:
//! steps with their control-flow properties and defaults applied, `aws:loop` bodies nested, and an
//! index from step name to its place. Documents were validated when they were stored, so reading
//! is lenient: a property of the wrong type takes its default.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// What a step does after it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    /// End the execution (the default).
    Abort,
    /// Carry on as after success.
    Continue,
    /// Go to the named step.
    Step(String),
}

impl OnFailure {
    /// The text the document uses (`Abort`, `Continue`, `step:X`).
    pub fn as_text(&self) -> String {
        match self {
            OnFailure::Abort => "Abort".into(),
            OnFailure::Continue => "Continue".into(),
            OnFailure::Step(s) => format!("step:{s}"),
        }
    }
}

/// One user-defined step output: a selector over the action's response and a type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputDef {
    /// Output name (referenced as `{{ step.Name }}`).
    pub name: String,
    /// JSONPath selector.
    pub selector: String,
    /// Declared type (`String`, `Integer`, …).
    pub ty: String,
}

/// One step of a runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    /// Unique name.
    pub name: String,
    /// `aws:…` action.
    pub action: String,
    /// Inputs as written (references not yet resolved).
    pub inputs: Value,
    /// User-defined outputs.
    pub outputs: Vec<OutputDef>,
    /// Attempts before the step counts as failed (≥ 1).
    pub max_attempts: u32,
    /// The step's timeout, if the document sets one.
    pub timeout_seconds: Option<i64>,
    /// What happens after a failure.
    pub on_failure: OnFailure,
    /// Step to run when the execution is cancelled during this step (`None`: Abort).
    pub on_cancel: Option<String>,
    /// Ends the execution after this step.
    pub is_end: bool,
    /// Step to run after success, when not the following one.
    pub next_step: Option<String>,
    /// Whether a failure makes the execution fail.
    pub is_critical: bool,
    /// The body of an `aws:loop` step.
    pub steps: Vec<StepDef>,
}

/// Where a step sits: in `mainSteps` or in a loop body, and at which index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The enclosing `aws:loop` step, `None` for `mainSteps`.
    pub parent: Option<String>,
    /// Index in its list.
    pub index: usize,
}

/// A runbook ready to run.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// `mainSteps`.
    pub steps: Vec<StepDef>,
    /// Document `outputs` (`step.Output` strings).
    pub outputs: Vec<String>,
    /// Parameter definitions (`Null` when none).
    pub parameters: Value,
    /// Variable definitions.
    pub variables: Map<String, Value>,
    /// `assumeRole` as written.
    pub assume_role: Option<String>,
    places: HashMap<String, Place>,
}

fn read_step(v: &Value) -> StepDef {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let b = |k: &str| match v.get(k) {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(t)) => t.parse::<bool>().ok(),
        _ => None,
    };
    let n = |k: &str| match v.get(k) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(t)) => t.parse::<i64>().ok(),
        _ => None,
    };
    let on_failure = match s("onFailure").as_deref() {
        Some("Continue") => OnFailure::Continue,
        Some(t) if t.starts_with("step:") => OnFailure::Step(t[5..].to_string()),
        _ => OnFailure::Abort,
    };
    let on_cancel = s("onCancel").and_then(|t| t.strip_prefix("step:").map(str::to_string));
    let outputs = v
        .get("outputs")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|o| {
                    Some(OutputDef {
                        name: o.get("Name")?.as_str()?.to_string(),
                        selector: o.get("Selector")?.as_str()?.to_string(),
                        ty: o.get("Type").and_then(Value::as_str).unwrap_or("String").to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let inputs = v.get("inputs").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let action = s("action").unwrap_or_default();
    let steps = if action == "aws:loop" {
        inputs.get("Steps").and_then(Value::as_array).map(|l| l.iter().map(read_step).collect()).unwrap_or_default()
    } else {
        Vec::new()
    };
    StepDef {
        name: s("name").unwrap_or_default(),
        action,
        inputs,
        outputs,
        max_attempts: n("maxAttempts").unwrap_or(1).clamp(1, 1000) as u32,
        // At most a year: longer is no different in practice, and keeps time arithmetic safe.
        timeout_seconds: n("timeoutSeconds").filter(|t| *t > 0).map(|t| t.min(31_536_000)),
        is_critical: b("isCritical").unwrap_or(on_failure != OnFailure::Continue),
        on_failure,
        on_cancel,
        is_end: b("isEnd").unwrap_or(false),
        next_step: s("nextStep"),
        steps,
    }
}

fn index(steps: &[StepDef], parent: Option<&str>, places: &mut HashMap<String, Place>) {
    for (i, st) in steps.iter().enumerate() {
        places.entry(st.name.clone()).or_insert(Place { parent: parent.map(str::to_string), index: i });
        index(&st.steps, Some(&st.name), places);
    }
}

impl Runbook {
    /// Reads a parsed Automation document.
    pub fn from_document(doc: &Value) -> Runbook {
        let steps: Vec<StepDef> = doc
            .get("mainSteps")
            .and_then(Value::as_array)
            .map(|l| l.iter().map(read_step).collect())
            .unwrap_or_default();
        let mut places = HashMap::new();
        index(&steps, None, &mut places);
        Runbook {
            steps,
            outputs: doc
                .get("outputs")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|o| o.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            parameters: doc.get("parameters").cloned().unwrap_or(Value::Null),
            variables: doc.get("variables").and_then(Value::as_object).cloned().unwrap_or_default(),
            assume_role: doc.get("assumeRole").and_then(Value::as_str).map(str::to_string),
            places,
        }
    }

    /// Where the named step sits.
    pub fn place(&self, name: &str) -> Option<&Place> {
        self.places.get(name)
    }

    /// The list a step belongs to (`mainSteps` or a loop body).
    pub fn siblings(&self, name: &str) -> Option<&[StepDef]> {
        let place = self.places.get(name)?;
        match &place.parent {
            None => Some(&self.steps),
            Some(p) => Some(&self.step(p)?.steps),
        }
    }

    /// The named step.
    pub fn step(&self, name: &str) -> Option<&StepDef> {
        let place = self.places.get(name)?;
        let list: &[StepDef] = match &place.parent {
            None => &self.steps,
            Some(p) => &self.step(p)?.steps,
        };
        list.get(place.index)
    }

    /// The step after `name` in its own list, if any.
    pub fn following(&self, name: &str) -> Option<&StepDef> {
        let index = self.places.get(name)?.index;
        self.siblings(name)?.get(index + 1)
    }

    /// Every step name, loop bodies included, in document order.
    pub fn all_steps(&self) -> Vec<&StepDef> {
        fn walk<'a>(steps: &'a [StepDef], out: &mut Vec<&'a StepDef>) {
            for s in steps {
                out.push(s);
                walk(&s.steps, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rb() -> Runbook {
        Runbook::from_document(&json!({
            "schemaVersion": "0.3",
            "outputs": ["b.Out"],
            "mainSteps": [
                {"name": "a", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}, "onFailure": "Continue"},
                {"name": "l", "action": "aws:loop", "inputs": {"Iterators": ["x"], "Steps": [
                    {"name": "in1", "action": "aws:sleep", "inputs": {}},
                    {"name": "in2", "action": "aws:sleep", "inputs": {}, "onFailure": "step:a", "maxAttempts": 3}
                ]}},
                {"name": "b", "action": "aws:executeScript", "isEnd": true, "nextStep": "a", "timeoutSeconds": 9,
                 "onCancel": "step:a", "outputs": [{"Name": "Out", "Selector": "$.Payload", "Type": "String"}]}
            ]
        }))
    }

    #[test]
    fn reads_properties_with_defaults() {
        let r = rb();
        let a = r.step("a").unwrap();
        assert_eq!(a.on_failure, OnFailure::Continue);
        assert!(!a.is_critical, "onFailure Continue makes a step non-critical by default");
        assert_eq!(a.max_attempts, 1);
        let b = r.step("b").unwrap();
        assert!(b.is_end && b.is_critical);
        assert_eq!(b.next_step.as_deref(), Some("a"));
        assert_eq!(b.timeout_seconds, Some(9));
        assert_eq!(b.on_cancel.as_deref(), Some("a"));
        assert_eq!(b.outputs[0].selector, "$.Payload");
        assert_eq!(r.outputs, vec!["b.Out"]);
    }

    #[test]
    fn loop_bodies_are_indexed() {
        let r = rb();
        assert_eq!(r.place("in2"), Some(&Place { parent: Some("l".into()), index: 1 }));
        assert_eq!(r.step("in2").unwrap().max_attempts, 3);
        assert_eq!(r.step("in2").unwrap().on_failure, OnFailure::Step("a".into()));
        assert_eq!(r.following("in1").unwrap().name, "in2");
        assert!(r.following("in2").is_none());
        assert_eq!(r.following("l").unwrap().name, "b");
        let names: Vec<&str> = r.all_steps().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "l", "in1", "in2", "b"]);
    }
}
