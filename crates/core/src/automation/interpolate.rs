//! The `{{ … }}` interpolation grammar of runbook step inputs (spec §2.3): finding references in
//! a JSON value and replacing them with what an execution knows, through a [`Scope`].
//!
//! A reference is `{{`, optional whitespace, a target, optional whitespace, `}}`. The target is
//! one of:
//!
//! | Target | Reference | Resolved by |
//! |---|---|---|
//! | `Name` | [`Reference::Parameter`] | [`Scope::parameter`] |
//! | `step.Output` | [`Reference::StepOutput`] | [`Scope::step_output`] |
//! | `loopStep.CurrentIteratorValue`, `loopStep.CurrentIteration` | [`Reference::Loop`] | [`Scope::loop_value`], else [`Scope::step_output`] |
//! | `variable:name` | [`Reference::Variable`] | [`Scope::variable`] |
//! | `global:ACCOUNT_ID` … (see [`GLOBALS`]) | [`Reference::Global`] | [`Scope::global`] |
//! | `automation:EXECUTION_ID` | [`Reference::Automation`] | [`Scope::automation`] |
//! | `ssm:name` | [`Reference::ParameterStore`] | never: an error in step inputs |
//!
//! Rules:
//!
//! * a string that is exactly one reference becomes the referenced value with its type (a
//!   StringList stays a list, an Integer a number); a reference inside a longer string is
//!   rendered as text (strings as they are, anything else as compact JSON);
//! * substituted values are never expanded again (no nested expansion), and object keys are
//!   left alone (references in keys are not supported);
//! * text that is not a reference stays as it is: single braces, `{{ }}`, and `{{ … }}` whose
//!   content is not a target (targets are letters, digits and `_ - . / :`, starting with a letter,
//!   digit or `_`; so `{{ a b }}` or `{{"k": 1}}` is text);
//! * a target that can't be resolved, an unknown `namespace:` and `ssm:` are errors naming the
//!   reference.

use serde_json::{Map, Value};
use std::fmt;

/// The names `{{global:…}}` may use.
pub const GLOBALS: [&str; 5] = ["ACCOUNT_ID", "REGION", "AWS_PARTITION", "DATE", "DATE_TIME"];
/// The names `{{automation:…}}` may use.
pub const AUTOMATION_NAMES: [&str; 1] = ["EXECUTION_ID"];
/// The properties of an `aws:loop` step its sub-steps read as `{{ loopStep.<property> }}`.
pub const LOOP_PROPERTIES: [&str; 2] = ["CurrentIteratorValue", "CurrentIteration"];

/// What an execution knows at the moment a step's inputs are resolved. Each method returns
/// `None` for something unknown, which makes the reference an error.
pub trait Scope {
    /// The typed value of runbook parameter `name`.
    fn parameter(&self, name: &str) -> Option<Value>;
    /// Output `output` of step `step` (which must have run).
    fn step_output(&self, step: &str, output: &str) -> Option<Value>;
    /// The current value of runbook variable `name`.
    fn variable(&self, name: &str) -> Option<Value>;
    /// A global: one of [`GLOBALS`] (`DATE` is `yyyy-MM-dd`, `DATE_TIME` `yyyy-MM-dd_HH.mm.ss`,
    /// evaluated now). Other names are refused before this is asked.
    fn global(&self, name: &str) -> Option<String>;
    /// An automation property: one of [`AUTOMATION_NAMES`]. Other names are refused before this
    /// is asked.
    fn automation(&self, name: &str) -> Option<String>;
    /// Property `property` (one of [`LOOP_PROPERTIES`]) of the current iteration of the enclosing
    /// `aws:loop` step `step`: the iterator value (typed per `IteratorDataType`) or the iteration
    /// number. `None` outside that loop, in which case the loop step's outputs are asked instead.
    fn loop_value(&self, step: &str, property: &str) -> Option<Value>;
}

/// One `{{ … }}` reference, by what it reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `{{ Name }}`: a runbook parameter.
    Parameter(String),
    /// `{{ step.Output }}`: a step's output (step name, output name).
    StepOutput(String, String),
    /// `{{ variable:name }}`: a runbook variable.
    Variable(String),
    /// `{{ global:NAME }}`.
    Global(String),
    /// `{{ automation:NAME }}`.
    Automation(String),
    /// `{{ loopStep.CurrentIteratorValue }}` / `{{ loopStep.CurrentIteration }}` (loop step name,
    /// property).
    Loop(String, String),
    /// `{{ ssm:name }}`: a Parameter Store parameter (only allowed in parameter defaults).
    ParameterStore(String),
}

impl fmt::Display for Reference {
    /// The reference's target as a runbook writes it, e.g. `step.Output` or `global:REGION`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Parameter(n) => write!(f, "{n}"),
            Reference::StepOutput(s, o) | Reference::Loop(s, o) => write!(f, "{s}.{o}"),
            Reference::Variable(n) => write!(f, "variable:{n}"),
            Reference::Global(n) => write!(f, "global:{n}"),
            Reference::Automation(n) => write!(f, "automation:{n}"),
            Reference::ParameterStore(n) => write!(f, "ssm:{n}"),
        }
    }
}

/// Why a value's references can't be resolved; the message names the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// The scope does not know what the reference names.
    #[error("{}", unresolved_message(.0))]
    Unresolved(Reference),
    /// `{{ ns:… }}` with a namespace other than `global`, `automation`, `variable` or `ssm`
    /// (carries the whole target).
    #[error(
        "The reference {{{{ {0} }}}} uses an unknown namespace; references are a parameter name, step.Output, variable:, global: or automation:."
    )]
    UnknownNamespace(String),
    /// `{{ ssm:name }}` in a step input (carries the Parameter Store name).
    #[error(
        "The reference {{{{ ssm:{0} }}}} reads Parameter Store, which is only supported in parameter defaults, not in step inputs."
    )]
    ParameterStore(String),
}

fn unresolved_message(r: &Reference) -> String {
    match r {
        Reference::Parameter(n) => {
            format!("The reference {{{{ {r} }}}} does not name a parameter of the runbook ({n}).")
        }
        Reference::StepOutput(s, o) => format!(
            "The reference {{{{ {r} }}}} names output \"{o}\" of step \"{s}\", which is not available (the step has not run or has no such output)."
        ),
        Reference::Variable(n) => {
            format!("The reference {{{{ {r} }}}} names variable \"{n}\", which the runbook does not declare.")
        }
        Reference::Global(_) => {
            format!("The reference {{{{ {r} }}}} is not available; the globals are {}.", GLOBALS.join(", "))
        }
        Reference::Automation(_) => format!(
            "The reference {{{{ {r} }}}} is not available; the automation references are {}.",
            AUTOMATION_NAMES.join(", ")
        ),
        Reference::Loop(s, _) => {
            format!("The reference {{{{ {r} }}}} is only available inside aws:loop step \"{s}\".")
        }
        Reference::ParameterStore(n) => format!(
            "The reference {{{{ ssm:{n} }}}} reads Parameter Store, which is only supported in parameter defaults, not in step inputs."
        ),
    }
}

/// A piece of a string: literal text or the (trimmed) target of a reference.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Ref(&'a str),
}

/// Whether `target` (already trimmed) has the shape of a reference target.
fn is_target(target: &str) -> bool {
    let Some(first) = target.chars().next() else {
        return false;
    };
    (first.is_alphanumeric() || first == '_')
        && !target.ends_with(['.', ':'])
        && target.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':'))
}

/// Splits a string into literal text and references, leaving out empty text.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut from = 0;
    while let Some(offset) = s[from..].find("{{") {
        let open = from + offset;
        let Some(close_offset) = s[open + 2..].find("}}") else {
            break;
        };
        let close = open + 2 + close_offset;
        let target = s[open + 2..close].trim();
        if is_target(target) {
            if open > text_start {
                out.push(Piece::Text(&s[text_start..open]));
            }
            out.push(Piece::Ref(target));
            from = close + 2;
            text_start = from;
        } else {
            // Not a reference: keep the first brace as text and look again from the next one
            // (so `{{{x}}}` still finds `{{x}}`).
            from = open + 1;
        }
    }
    if text_start < s.len() {
        out.push(Piece::Text(&s[text_start..]));
    }
    out
}

/// Classifies a target.
fn parse_target(target: &str) -> Result<Reference, InterpolationError> {
    let colon = target.find(':');
    let dot = target.find('.');
    if let Some(c) = colon
        && dot.is_none_or(|d| c < d)
    {
        let rest = target[c + 1..].to_string();
        return match &target[..c] {
            "global" => Ok(Reference::Global(rest)),
            "automation" => Ok(Reference::Automation(rest)),
            "variable" => Ok(Reference::Variable(rest)),
            "ssm" => Ok(Reference::ParameterStore(rest)),
            _ => Err(InterpolationError::UnknownNamespace(target.to_string())),
        };
    }
    if let Some((step, output)) = target.split_once('.') {
        return Ok(if LOOP_PROPERTIES.contains(&output) {
            Reference::Loop(step.to_string(), output.to_string())
        } else {
            Reference::StepOutput(step.to_string(), output.to_string())
        });
    }
    Ok(Reference::Parameter(target.to_string()))
}

/// Looks one reference up in the scope.
fn resolve(r: &Reference, scope: &dyn Scope) -> Result<Value, InterpolationError> {
    let value = match r {
        Reference::Parameter(n) => scope.parameter(n),
        Reference::StepOutput(s, o) => scope.step_output(s, o),
        Reference::Variable(n) => scope.variable(n),
        Reference::Global(n) => GLOBALS.contains(&n.as_str()).then(|| scope.global(n)).flatten().map(Value::String),
        Reference::Automation(n) => {
            AUTOMATION_NAMES.contains(&n.as_str()).then(|| scope.automation(n)).flatten().map(Value::String)
        }
        Reference::Loop(s, p) => scope.loop_value(s, p).or_else(|| scope.step_output(s, p)),
        Reference::ParameterStore(n) => return Err(InterpolationError::ParameterStore(n.clone())),
    };
    value.ok_or_else(|| InterpolationError::Unresolved(r.clone()))
}

fn interpolate_str(s: &str, scope: &dyn Scope) -> Result<Value, InterpolationError> {
    if !s.contains("{{") {
        return Ok(Value::String(s.to_string()));
    }
    let pieces = pieces(s);
    if let [Piece::Ref(target)] = pieces.as_slice() {
        return resolve(&parse_target(target)?, scope);
    }
    let mut out = String::with_capacity(s.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref(target) => match resolve(&parse_target(target)?, scope)? {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

/// Resolves every reference in `input` (strings inside arrays and object values, at any depth)
/// against `scope`, following the rules in the module documentation. Numbers, booleans, `null`
/// and object keys are returned as they are.
pub fn interpolate(input: &Value, scope: &dyn Scope) -> Result<Value, InterpolationError> {
    match input {
        Value::String(s) => interpolate_str(s, scope),
        Value::Array(items) => items.iter().map(|i| interpolate(i, scope)).collect::<Result<_, _>>().map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), interpolate(v, scope)?)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// Every reference in `input`, in the order they first appear (depth first, object values in
/// map order), each once. References in object keys and targets with an unknown namespace
/// (which [`interpolate`] refuses) are left out.
pub fn references(input: &Value) -> Vec<Reference> {
    fn walk(v: &Value, out: &mut Vec<Reference>) {
        match v {
            Value::String(s) if s.contains("{{") => {
                for piece in pieces(s) {
                    if let Piece::Ref(target) = piece
                        && let Ok(r) = parse_target(target)
                        && !out.contains(&r)
                    {
                        out.push(r);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => map.values().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(input, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    /// A scope backed by maps; `loop_values` is keyed by "step.property".
    #[derive(Default)]
    struct TestScope {
        params: HashMap<String, Value>,
        outputs: HashMap<(String, String), Value>,
        variables: HashMap<String, Value>,
        globals: HashMap<String, String>,
        automation: HashMap<String, String>,
        loop_values: HashMap<String, Value>,
    }

    impl Scope for TestScope {
        fn parameter(&self, name: &str) -> Option<Value> {
            self.params.get(name).cloned()
        }
        fn step_output(&self, step: &str, output: &str) -> Option<Value> {
            self.outputs.get(&(step.to_string(), output.to_string())).cloned()
        }
        fn variable(&self, name: &str) -> Option<Value> {
            self.variables.get(name).cloned()
        }
        fn global(&self, name: &str) -> Option<String> {
            self.globals.get(name).cloned()
        }
        fn automation(&self, name: &str) -> Option<String> {
            self.automation.get(name).cloned()
        }
        fn loop_value(&self, step: &str, property: &str) -> Option<Value> {
            self.loop_values.get(&format!("{step}.{property}")).cloned()
        }
    }

    fn scope() -> TestScope {
        let mut s = TestScope::default();
        s.params.insert("Count".into(), json!(3));
        s.params.insert("Name".into(), json!("web"));
        s.params.insert("Ids".into(), json!(["i-1", "i-2"]));
        s.params.insert("Flag".into(), json!(true));
        s.params.insert("Tags".into(), json!({"env": "prod"}));
        s.params.insert("Maps".into(), json!([{"a": "1"}]));
        s.params.insert("Empty".into(), json!(""));
        s.params.insert("Sneaky".into(), json!("{{ Name }}"));
        s.params.insert("Nothing".into(), Value::Null);
        s.outputs.insert(("launch".into(), "InstanceIds".into()), json!(["i-9"]));
        s.outputs.insert(("launch".into(), "Status".into()), json!("Success"));
        s.outputs.insert(("loop".into(), "CurrentIteration".into()), json!(7));
        s.variables.insert("attempts".into(), json!(2));
        s.globals.insert("ACCOUNT_ID".into(), "123456789012".into());
        s.globals.insert("REGION".into(), "us-east-2".into());
        s.globals.insert("AWS_PARTITION".into(), "aws".into());
        s.globals.insert("DATE".into(), "2024-05-06".into());
        s.globals.insert("DATE_TIME".into(), "2024-05-06_07.08.09".into());
        s.globals.insert("SECRET".into(), "must not leak".into());
        s.automation.insert("EXECUTION_ID".into(), "11111111-2222-3333-4444-555555555555".into());
        s.automation.insert("OTHER".into(), "must not leak".into());
        s.loop_values.insert("each.CurrentIteratorValue".into(), json!("i-5"));
        s.loop_values.insert("each.CurrentIteration".into(), json!(2));
        s
    }

    fn run(input: Value) -> Result<Value, InterpolationError> {
        interpolate(&input, &scope())
    }

    fn ok(input: Value) -> Value {
        run(input).unwrap()
    }

    fn err(input: Value, fragment: &str) -> InterpolationError {
        let e = run(input).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
        assert!(msg.ends_with('.'), "message {msg:?} does not end with a period");
        e
    }

    // ---- whole-value references keep their type ---------------------------------------------

    #[test]
    fn whole_value_references_keep_their_type() {
        assert_eq!(ok(json!("{{ Count }}")), json!(3));
        assert_eq!(ok(json!("{{Count}}")), json!(3));
        assert_eq!(ok(json!("{{   Count\t}}")), json!(3));
        assert_eq!(ok(json!("{{ Ids }}")), json!(["i-1", "i-2"]));
        assert_eq!(ok(json!("{{ Flag }}")), json!(true));
        assert_eq!(ok(json!("{{ Tags }}")), json!({"env": "prod"}));
        assert_eq!(ok(json!("{{ Maps }}")), json!([{"a": "1"}]));
        assert_eq!(ok(json!("{{ Name }}")), json!("web"));
        assert_eq!(ok(json!("{{ Empty }}")), json!(""));
        assert_eq!(ok(json!("{{ Nothing }}")), Value::Null);
    }

    #[test]
    fn surrounding_text_makes_a_reference_embedded() {
        // Whitespace outside the braces belongs to the string.
        assert_eq!(ok(json!(" {{ Count }}")), json!(" 3"));
        assert_eq!(ok(json!("{{ Count }}\n")), json!("3\n"));
    }

    // ---- embedded references render as text ----------------------------------------------

    #[test]
    fn embedded_references_render_as_text() {
        assert_eq!(ok(json!("host-{{ Name }}-{{Count}}")), json!("host-web-3"));
        assert_eq!(ok(json!("ids={{ Ids }}")), json!("ids=[\"i-1\",\"i-2\"]"));
        assert_eq!(ok(json!("tags: {{ Tags }}")), json!("tags: {\"env\":\"prod\"}"));
        assert_eq!(ok(json!("flag={{Flag}}")), json!("flag=true"));
        assert_eq!(ok(json!("[{{ Empty }}]")), json!("[]"));
        assert_eq!(ok(json!("v={{ Nothing }}")), json!("v=null"));
        assert_eq!(ok(json!("{{ Name }}{{ Name }}")), json!("webweb"));
    }

    #[test]
    fn text_without_references_is_unchanged() {
        for s in [
            "",
            "plain",
            "{ single }",
            "{x}",
            "}} {{",
            "{{",
            "a {{ b",
            "{{ }}",
            "{{}}",
            "{{ a b }}",
            "{{\"k\": 1}}",
            "{{ .x }}",
            "{{ x. }}",
            "{{ Name | upper }}",
            "$.Payload.{x}",
        ] {
            assert_eq!(ok(json!(s)), json!(s), "{s:?} changed");
        }
    }

    #[test]
    fn braces_next_to_references_stay_text() {
        assert_eq!(ok(json!("{{{Name}}}")), json!("{web}"));
        assert_eq!(ok(json!("{ {{Name}} }")), json!("{ web }"));
        assert_eq!(ok(json!("{{ a b }} {{Name}}")), json!("{{ a b }} web"));
        assert_eq!(ok(json!("{{ {{Name}} }}")), json!("{{ web }}"));
    }

    #[test]
    fn substituted_values_are_not_expanded_again() {
        assert_eq!(ok(json!("{{ Sneaky }}")), json!("{{ Name }}"));
        assert_eq!(ok(json!("x {{ Sneaky }} y")), json!("x {{ Name }} y"));
    }

    // ---- namespaces -------------------------------------------------------------------------

    #[test]
    fn step_outputs_resolve() {
        assert_eq!(ok(json!("{{ launch.InstanceIds }}")), json!(["i-9"]));
        assert_eq!(ok(json!("status {{launch.Status}}")), json!("status Success"));
        let e = err(
            json!("{{ launch.Missing }}"),
            "The reference {{ launch.Missing }} names output \"Missing\" of step \"launch\", which is not available",
        );
        assert_eq!(e, InterpolationError::Unresolved(Reference::StepOutput("launch".into(), "Missing".into())));
        err(json!("{{ nostep.Out }}"), "of step \"nostep\"");
    }

    #[test]
    fn loop_properties_resolve() {
        assert_eq!(ok(json!("{{ each.CurrentIteratorValue }}")), json!("i-5"));
        assert_eq!(ok(json!("{{each.CurrentIteration}}")), json!(2));
        assert_eq!(ok(json!("n{{ each.CurrentIteration }}")), json!("n2"));
        // Outside the loop, the loop step's own outputs answer.
        assert_eq!(ok(json!("{{ loop.CurrentIteration }}")), json!(7));
        let e = err(
            json!("{{ other.CurrentIteratorValue }}"),
            "The reference {{ other.CurrentIteratorValue }} is only available inside aws:loop step \"other\".",
        );
        assert_eq!(e, InterpolationError::Unresolved(Reference::Loop("other".into(), "CurrentIteratorValue".into())));
    }

    #[test]
    fn variables_resolve() {
        assert_eq!(ok(json!("{{ variable:attempts }}")), json!(2));
        assert_eq!(ok(json!("try {{variable:attempts}}")), json!("try 2"));
        let e = err(
            json!("{{ variable:nope }}"),
            "The reference {{ variable:nope }} names variable \"nope\", which the runbook does not declare.",
        );
        assert_eq!(e, InterpolationError::Unresolved(Reference::Variable("nope".into())));
    }

    #[test]
    fn globals_resolve_as_strings() {
        assert_eq!(ok(json!("{{ global:ACCOUNT_ID }}")), json!("123456789012"));
        assert_eq!(ok(json!("{{global:REGION}}")), json!("us-east-2"));
        assert_eq!(
            ok(json!("arn:{{global:AWS_PARTITION}}:ssm:{{ global:REGION }}:{{global:ACCOUNT_ID}}:x")),
            json!("arn:aws:ssm:us-east-2:123456789012:x")
        );
        assert_eq!(ok(json!("backup-{{ global:DATE }}")), json!("backup-2024-05-06"));
        assert_eq!(ok(json!("{{ global:DATE_TIME }}")), json!("2024-05-06_07.08.09"));
        // Only the documented globals are asked for.
        let e =
            err(json!("{{ global:SECRET }}"), "The reference {{ global:SECRET }} is not available; the globals are");
        assert_eq!(e, InterpolationError::Unresolved(Reference::Global("SECRET".into())));
        err(json!("{{ global:region }}"), "ACCOUNT_ID, REGION, AWS_PARTITION, DATE, DATE_TIME.");
    }

    #[test]
    fn automation_execution_id_resolves() {
        assert_eq!(ok(json!("{{ automation:EXECUTION_ID }}")), json!("11111111-2222-3333-4444-555555555555"));
        assert_eq!(ok(json!("run-{{automation:EXECUTION_ID}}")), json!("run-11111111-2222-3333-4444-555555555555"));
        let e = err(json!("{{ automation:OTHER }}"), "The reference {{ automation:OTHER }} is not available");
        assert_eq!(e, InterpolationError::Unresolved(Reference::Automation("OTHER".into())));
    }

    #[test]
    fn unknown_parameters_are_errors() {
        let e = err(json!("{{ Missing }}"), "The reference {{ Missing }} does not name a parameter of the runbook");
        assert_eq!(e, InterpolationError::Unresolved(Reference::Parameter("Missing".into())));
        // Even when embedded, and even when other references resolve.
        err(json!("{{ Name }}-{{ count }}"), "{{ count }}");
    }

    #[test]
    fn parameter_store_references_are_refused() {
        let e = err(
            json!("{{ ssm:/my/param }}"),
            "The reference {{ ssm:/my/param }} reads Parameter Store, which is only supported in parameter defaults",
        );
        assert_eq!(e, InterpolationError::ParameterStore("/my/param".into()));
        err(json!("x-{{ssm:name}}"), "{{ ssm:name }}");
    }

    #[test]
    fn unknown_namespaces_are_refused() {
        let e = err(json!("{{ foo:bar }}"), "The reference {{ foo:bar }} uses an unknown namespace");
        assert_eq!(e, InterpolationError::UnknownNamespace("foo:bar".into()));
        err(json!("{{ ssm-secure:pw }}"), "{{ ssm-secure:pw }} uses an unknown namespace");
        err(json!("{{ Global:REGION }}"), "unknown namespace");
    }

    #[test]
    fn a_namespace_wins_over_a_dot_only_when_it_comes_first() {
        assert_eq!(parse_target("ssm:/a.b").unwrap(), Reference::ParameterStore("/a.b".into()));
        assert_eq!(parse_target("step.a:b").unwrap(), Reference::StepOutput("step".into(), "a:b".into()));
        assert_eq!(parse_target("variable:x").unwrap(), Reference::Variable("x".into()));
        assert_eq!(parse_target("a.b.c").unwrap(), Reference::StepOutput("a".into(), "b.c".into()));
    }

    // ---- structures -------------------------------------------------------------------------

    #[test]
    fn deep_structures_are_walked() {
        let input = json!({
            "InstanceIds": "{{ Ids }}",
            "Count": "{{ Count }}",
            "Nested": {
                "List": ["{{ Name }}", "literal", 5, null, false, ["{{ launch.InstanceIds }}", {"deep": "id={{ automation:EXECUTION_ID }}"}]],
                "Number": 1.5,
            },
            "{{ Name }}": "keys stay",
        });
        let expect = json!({
            "InstanceIds": ["i-1", "i-2"],
            "Count": 3,
            "Nested": {
                "List": ["web", "literal", 5, null, false, [["i-9"], {"deep": "id=11111111-2222-3333-4444-555555555555"}]],
                "Number": 1.5,
            },
            "{{ Name }}": "keys stay",
        });
        assert_eq!(ok(input), expect);
    }

    #[test]
    fn an_error_anywhere_fails_the_whole_value() {
        err(json!({"a": ["ok", {"b": "{{ nope }}"}]}), "{{ nope }}");
    }

    #[test]
    fn scalars_pass_through() {
        for v in [json!(1), json!(-2.5), json!(true), Value::Null, json!([]), json!({})] {
            assert_eq!(ok(v.clone()), v);
        }
    }

    // ---- references -------------------------------------------------------------------------

    #[test]
    fn references_are_listed_once_in_order() {
        let input = json!({
            "a": "{{ Count }} and {{ launch.Status }}",
            "b": ["{{ variable:v }}", "{{global:REGION}}", "{{ automation:EXECUTION_ID }}"],
            "c": {"d": "{{ each.CurrentIteratorValue }}", "e": "{{ssm:/p}}", "f": "{{ Count }}"},
            "g": "{{ foo:bar }} {{ not a ref }} {x}",
            "{{ Key }}": 1,
        });
        let refs = references(&input);
        let mut expect = vec![
            Reference::Parameter("Count".into()),
            Reference::StepOutput("launch".into(), "Status".into()),
            Reference::Variable("v".into()),
            Reference::Global("REGION".into()),
            Reference::Automation("EXECUTION_ID".into()),
            Reference::Loop("each".into(), "CurrentIteratorValue".into()),
            Reference::ParameterStore("/p".into()),
        ];
        // Map order depends on serde_json's preserve_order feature; compare as sets, and check
        // the order within one string.
        let mut sorted = refs.clone();
        sorted.sort_by_key(|r| r.to_string());
        expect.sort_by_key(|r| r.to_string());
        assert_eq!(sorted, expect);
        assert_eq!(
            references(&json!("{{ b }}{{ a }}{{ b }}")),
            vec![Reference::Parameter("b".into()), Reference::Parameter("a".into())]
        );
        assert_eq!(
            references(&json!(["{{ z }}", "{{ y }}"])),
            vec![Reference::Parameter("z".into()), Reference::Parameter("y".into())]
        );
        assert!(references(&json!("no refs {here}")).is_empty());
    }

    #[test]
    fn references_display_as_targets() {
        assert_eq!(Reference::Parameter("P".into()).to_string(), "P");
        assert_eq!(Reference::StepOutput("s".into(), "o".into()).to_string(), "s.o");
        assert_eq!(Reference::Loop("l".into(), "CurrentIteration".into()).to_string(), "l.CurrentIteration");
        assert_eq!(Reference::Variable("v".into()).to_string(), "variable:v");
        assert_eq!(Reference::Global("REGION".into()).to_string(), "global:REGION");
        assert_eq!(Reference::Automation("EXECUTION_ID".into()).to_string(), "automation:EXECUTION_ID");
        assert_eq!(Reference::ParameterStore("/p".into()).to_string(), "ssm:/p");
        for r in [
            Reference::Parameter("P".into()),
            Reference::StepOutput("s".into(), "o".into()),
            Reference::Loop("l".into(), "CurrentIteration".into()),
            Reference::Variable("v".into()),
            Reference::Global("REGION".into()),
            Reference::Automation("EXECUTION_ID".into()),
            Reference::ParameterStore("/p".into()),
        ] {
            // Display gives back a target that parses to the same reference.
            assert_eq!(parse_target(&r.to_string()).unwrap(), r);
            let msg = InterpolationError::Unresolved(r.clone()).to_string();
            assert!(msg.contains(&format!("{{{{ {r} }}}}")), "{msg:?} does not name {r}");
        }
    }

    #[test]
    fn pieces_split_text_and_references() {
        assert_eq!(pieces("a{{ b }}c"), vec![Piece::Text("a"), Piece::Ref("b"), Piece::Text("c")]);
        assert_eq!(pieces("{{b}}"), vec![Piece::Ref("b")]);
        assert_eq!(pieces("{{ x y }}"), vec![Piece::Text("{{ x y }}")]);
        assert_eq!(pieces(""), vec![]);
    }

    proptest! {
        #[test]
        fn strings_without_double_braces_are_unchanged(s in ".{0,60}") {
            prop_assume!(!s.contains("{{"));
            let input = json!({"a": s, "b": [s, {"c": s}]});
            prop_assert_eq!(interpolate(&input, &scope()).unwrap(), input.clone());
            prop_assert!(references(&input).is_empty());
        }

        #[test]
        fn brace_heavy_strings_without_references_are_unchanged(s in "[{} a-z.]{0,40}") {
            // Only letters, dots, spaces and braces: a reference would need a target made of
            // letters; strip those that form one and check the rest is left alone.
            let pieces = pieces(&s);
            prop_assume!(pieces.iter().all(|p| matches!(p, Piece::Text(_))));
            prop_assert_eq!(interpolate(&json!(s), &scope()).unwrap(), json!(s));
        }

        #[test]
        fn whole_references_return_the_value_unexpanded(value in ".{0,40}", pad_l in " {0,3}", pad_r in " {0,3}") {
            let mut sc = TestScope::default();
            sc.params.insert("P".into(), json!(value));
            let input = json!(format!("{{{{{pad_l}P{pad_r}}}}}"));
            prop_assert_eq!(interpolate(&input, &sc).unwrap(), json!(value));
        }

        #[test]
        fn embedded_references_concatenate(prefix in "[^{}]{0,10}", suffix in "[^{}]{0,10}", value in ".{0,20}") {
            prop_assume!(!(prefix.is_empty() && suffix.is_empty()));
            let mut sc = TestScope::default();
            sc.params.insert("P".into(), json!(value));
            let input = json!(format!("{prefix}{{{{ P }}}}{suffix}"));
            prop_assert_eq!(interpolate(&input, &sc).unwrap(), json!(format!("{prefix}{value}{suffix}")));
        }

        #[test]
        fn typed_whole_references_keep_their_type(n in any::<i64>(), items in proptest::collection::vec("[a-z]{0,5}", 0..5)) {
            let mut sc = TestScope::default();
            sc.params.insert("N".into(), json!(n));
            sc.params.insert("L".into(), json!(items));
            prop_assert_eq!(interpolate(&json!("{{ N }}"), &sc).unwrap(), json!(n));
            prop_assert_eq!(interpolate(&json!("{{ L }}"), &sc).unwrap(), json!(items));
            prop_assert_eq!(interpolate(&json!("n={{ N }}"), &sc).unwrap(), json!(format!("n={n}")));
        }
    }
}
