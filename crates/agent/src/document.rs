//! Command documents: turns a document's content and the command's parameters into the list of
//! steps to run, for both schemas.
//!
//! * 1.2: `runtimeConfig: {"<plugin>": {"properties": [ {…}, … ] or {…}}}` — one step per
//!   plugin, named (and keyed in `runtimeStatus`) by the plugin, `stepName` empty.
//! * 2.x: `mainSteps: [{"action", "name", "inputs", "precondition"?, …}]` — one step per entry,
//!   keyed by its name. The flow modifiers `onFailure` (`exit`, `successAndExit`), `onSuccess`
//!   (`exit`) and `finallyStep` are read from `inputs`, where AWS documents put them, or from the
//!   step itself.

use crate::params;
use serde_json::{Map, Value};

/// The plugin ssmd-agent runs.
pub const RUN_SHELL_SCRIPT: &str = "aws:runShellScript";

/// One step of a document, parameters substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The key of its result in `runtimeStatus`: the plugin (1.2) or step (2.x) name.
    pub key: String,
    /// The action (plugin), e.g. `aws:runShellScript`.
    pub action: String,
    /// The step name reported (empty for 1.2).
    pub step_name: String,
    /// The plugin's inputs: one set per 1.2 property, one for a 2.x step.
    pub properties: Vec<Value>,
    /// The 2.x precondition, if any, parameters substituted.
    pub precondition: Option<Value>,
    /// The precondition as written (to tell `platformType` from a parameter's value).
    pub raw_precondition: Option<Value>,
    /// Whether preconditions are allowed (schema 2.2 and later).
    pub preconditions_allowed: bool,
    /// `onFailure`: `exit`, `successAndExit` or absent.
    pub on_failure: Option<String>,
    /// `onSuccess`: `exit` or absent.
    pub on_success: Option<String>,
    /// `finallyStep: true` (honoured on the last step only).
    pub finally_step: bool,
}

fn modifier(step: &Value, inputs: &Value, name: &str) -> Option<String> {
    let v = inputs.get(name).or_else(|| step.get(name))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The steps of `content` (an object, or a JSON text) with `sent` parameters.
pub fn interpret(content: &Value, sent: &Map<String, Value>) -> Result<Vec<Step>, String> {
    let parsed;
    let doc = match content {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).map_err(|e| format!("the document is not valid JSON: {e}"))?;
            &parsed
        }
        other => other,
    };
    if !doc.is_object() {
        return Err("the document content is not a JSON object".into());
    }
    let version = match &doc["schemaVersion"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err("the document has no schemaVersion".into()),
    };
    let p = params::resolve(sent, doc);
    let major = version.split('.').next().unwrap_or("");
    match major {
        "1" => schema1(doc, &p, &version),
        "2" => schema2(doc, &p, &version),
        _ => Err(format!("document schema version {version} is not supported by ssmd-agent (1.2 and 2.x are)")),
    }
}

fn schema1(doc: &Value, p: &Map<String, Value>, version: &str) -> Result<Vec<Step>, String> {
    let rc = doc
        .get("runtimeConfig")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("a schema {version} document needs a runtimeConfig object"))?;
    let mut steps = Vec::new();
    for (plugin, cfg) in rc {
        let props = params::substitute(cfg.get("properties").unwrap_or(&Value::Null), p);
        let properties = match props {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            one => vec![one],
        };
        steps.push(Step {
            key: plugin.clone(),
            action: plugin.clone(),
            step_name: String::new(),
            properties,
            precondition: None,
            raw_precondition: None,
            preconditions_allowed: false,
            on_failure: None,
            on_success: None,
            finally_step: false,
        });
    }
    if steps.is_empty() {
        return Err("the document's runtimeConfig has no plugins".into());
    }
    Ok(steps)
}

fn schema2(doc: &Value, p: &Map<String, Value>, version: &str) -> Result<Vec<Step>, String> {
    let main = doc
        .get("mainSteps")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("a schema {version} document needs a mainSteps list"))?;
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok());
    let preconditions_allowed = minor.is_some_and(|minor| minor >= 2);
    let mut steps: Vec<Step> = Vec::new();
    for (i, raw) in main.iter().enumerate() {
        let step = params::substitute(raw, p);
        let action = step["action"].as_str().ok_or_else(|| format!("step {} has no action", i + 1))?.to_string();
        let name =
            step["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| format!("step {} has no name", i + 1))?;
        if steps.iter().any(|s| s.key == name) {
            return Err(format!("two steps are named {name}"));
        }
        let inputs = step.get("inputs").cloned().unwrap_or(Value::Object(Map::new()));
        steps.push(Step {
            key: name.to_string(),
            action,
            step_name: name.to_string(),
            on_failure: modifier(&step, &inputs, "onFailure"),
            on_success: modifier(&step, &inputs, "onSuccess"),
            finally_step: modifier(&step, &inputs, "finallyStep").as_deref() == Some("true"),
            precondition: step.get("precondition").filter(|v| !v.is_null()).cloned(),
            raw_precondition: raw.get("precondition").filter(|v| !v.is_null()).cloned(),
            preconditions_allowed,
            properties: vec![inputs],
        });
    }
    if steps.is_empty() {
        return Err("the document has no steps".into());
    }
    Ok(steps)
}

/// What a precondition decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Run the step.
    Run,
    /// Skip the step (the message says why).
    Skip(String),
    /// Fail the step (the precondition cannot be evaluated).
    Fail(String),
}

/// Evaluates a step's precondition on this node (platform type `Linux`). Only `StringEquals`
/// with two arguments is known, as in the AWS agent: `["platformType", "Linux"]` (either order)
/// or two values at least one of which came from a parameter.
pub fn evaluate_precondition(step: &Step) -> Precondition {
    let Some(pre) = &step.precondition else { return Precondition::Run };
    if !step.preconditions_allowed {
        return Precondition::Fail(format!(
            "Precondition is not supported for document schema version prior to 2.2. Step name: {}",
            step.key
        ));
    }
    let Some(ops) = pre.as_object() else {
        return Precondition::Fail(format!("The precondition of step {} is not an object", step.key));
    };
    let mut unsatisfied = Vec::new();
    for (op, args) in ops {
        if op != "StringEquals" {
            return Precondition::Fail(format!(
                "Unrecognized precondition(s): 'unrecognized operator: \"{op}\"', please update agent to latest version. Step name: {}",
                step.key
            ));
        }
        let vals: Vec<&str> = args.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if vals.len() != 2 {
            return Precondition::Fail(format!(
                "Unrecognized precondition(s): '\"StringEquals\": operator accepts exactly 2 arguments'. Step name: {}",
                step.key
            ));
        }
        // The raw (unsubstituted) arguments tell which one named platformType.
        let raw: Vec<String> = step
            .raw_precondition
            .as_ref()
            .and_then(|p| p[op].as_array())
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .filter(|r: &Vec<String>| r.len() == 2)
            .unwrap_or_else(|| vals.iter().map(|s| s.to_string()).collect());
        let platform_pos = raw.iter().position(|s| s == "platformType");
        let ok = match platform_pos {
            Some(i) => vals[1 - i].eq_ignore_ascii_case("linux"),
            None => vals[0] == vals[1],
        };
        if !ok {
            unsatisfied.push(format!("\"{op}\": [{}, {}]", raw[0], raw[1]));
        }
    }
    if unsatisfied.is_empty() {
        Precondition::Run
    } else {
        Precondition::Skip(format!(
            "Step execution skipped due to unsatisfied preconditions: '{}'. Step name: {}",
            unsatisfied.join(", "),
            step.key
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_shell_script_doc() -> Value {
        json!({"schemaVersion": "1.2", "description": "Run a shell script.",
          "parameters": {
            "commands": {"type": "StringList"},
            "workingDirectory": {"type": "String", "default": ""},
            "executionTimeout": {"type": "String", "default": "3600"}},
          "runtimeConfig": {"aws:runShellScript": {"properties": [{"id": "0.aws:runShellScript",
            "runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}",
            "timeoutSeconds": "{{ executionTimeout }}"}]}}})
    }

    #[test]
    fn schema_1_2() {
        let sent = json!({"commands": ["echo a", "echo b"], "executionTimeout": ["60"]});
        let steps = interpret(&run_shell_script_doc(), sent.as_object().unwrap()).unwrap();
        assert_eq!(steps.len(), 1);
        let s = &steps[0];
        assert_eq!((s.key.as_str(), s.action.as_str(), s.step_name.as_str()), (RUN_SHELL_SCRIPT, RUN_SHELL_SCRIPT, ""));
        assert_eq!(
            s.properties,
            vec![json!({"id": "0.aws:runShellScript", "runCommand": ["echo a", "echo b"], "workingDirectory": "",
                "timeoutSeconds": "60"})]
        );
        // The content may also arrive as JSON text.
        let text = Value::String(run_shell_script_doc().to_string());
        assert_eq!(interpret(&text, sent.as_object().unwrap()).unwrap(), steps);
    }

    #[test]
    fn schema_2_2() {
        let doc = json!({"schemaVersion": "2.2", "parameters": {"msg": {"type": "String", "default": "hi"},
            "lines": {"type": "StringList", "default": ["echo x"]}},
          "mainSteps": [
            {"action": "aws:runShellScript", "name": "first", "inputs": {"runCommand": ["echo {{ msg }}"],
              "onFailure": "exit", "environment": {"A": "{{msg}}"}}},
            {"action": "aws:runPowerShellScript", "name": "win", "precondition": {"StringEquals": ["platformType", "Windows"]},
              "inputs": {"runCommand": "{{ lines }}"}},
            {"action": "aws:runShellScript", "name": "last", "onFailure": "successAndExit",
              "inputs": {"runCommand": "{{ lines }}", "finallyStep": true}}]});
        let sent = json!({"msg": "hello"});
        let steps = interpret(&doc, sent.as_object().unwrap()).unwrap();
        let keys: Vec<_> = steps.iter().map(|s| (s.key.as_str(), s.action.as_str(), s.step_name.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("first", RUN_SHELL_SCRIPT, "first"),
                ("win", "aws:runPowerShellScript", "win"),
                ("last", RUN_SHELL_SCRIPT, "last")
            ]
        );
        assert_eq!(steps[0].properties[0]["runCommand"], json!(["echo hello"]));
        assert_eq!(steps[0].properties[0]["environment"], json!({"A": "hello"}));
        assert_eq!(steps[0].on_failure.as_deref(), Some("exit"));
        assert_eq!(steps[1].properties[0]["runCommand"], json!(["echo x"]));
        assert_eq!(steps[2].on_failure.as_deref(), Some("successAndExit"));
        assert!(steps[2].finally_step && !steps[0].finally_step);
        assert!(matches!(evaluate_precondition(&steps[1]), Precondition::Skip(m)
            if m.contains("unsatisfied preconditions") && m.contains("platformType, Windows")));
        assert_eq!(evaluate_precondition(&steps[0]), Precondition::Run);
        let mut linux = steps[1].clone();
        linux.precondition = Some(json!({"StringEquals": ["linux", "platformType"]}));
        linux.raw_precondition = linux.precondition.clone();
        assert_eq!(evaluate_precondition(&linux), Precondition::Run);
        // A parameter's value compared with a constant.
        linux.precondition = Some(json!({"StringEquals": ["prod", "prod"]}));
        linux.raw_precondition = Some(json!({"StringEquals": ["{{ env }}", "prod"]}));
        assert_eq!(evaluate_precondition(&linux), Precondition::Run);
        linux.precondition = Some(json!({"StringEquals": ["dev", "prod"]}));
        assert!(matches!(evaluate_precondition(&linux), Precondition::Skip(_)));
        linux.precondition = Some(json!({"StringLike": ["a", "b"]}));
        assert!(matches!(evaluate_precondition(&linux), Precondition::Fail(_)));
        linux.preconditions_allowed = false;
        assert!(matches!(evaluate_precondition(&linux), Precondition::Fail(m) if m.contains("prior to 2.2")));
    }

    #[test]
    fn bad_documents() {
        let none = Map::new();
        for (doc, want) in [
            (json!({"mainSteps": []}), "no schemaVersion"),
            (json!({"schemaVersion": "3.0"}), "not supported"),
            (json!({"schemaVersion": "2.2"}), "mainSteps"),
            (json!({"schemaVersion": "2.2", "mainSteps": [{"name": "a"}]}), "no action"),
            (
                json!({"schemaVersion": "2.2", "mainSteps": [{"action": "x", "name": "a"}, {"action": "x", "name": "a"}]}),
                "two steps",
            ),
            (json!({"schemaVersion": "1.2"}), "runtimeConfig"),
            (json!("not json"), "not valid JSON"),
        ] {
            let e = interpret(&doc, &none).unwrap_err();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }
}
