//! Runbook parameters at `StartAutomationExecution`: turning the wire `Parameters` (every value a
//! list of strings, spec §0 rule 9) into typed values for the runbook's declared parameters, and
//! back into wire form for `GetAutomationExecution`.
//!
//! [`resolve_parameters`] applies the rules of spec §2.2:
//!
//! * every supplied name must be declared ("Undefined execution inputs" otherwise);
//! * each supplied list is coerced to the declared type: `String`, `Integer`, `Boolean` and
//!   `StringMap` take exactly one value (an `i64`; `true`/`false` in any letter case; a JSON
//!   object), `StringList` takes the list as it is, `MapList` takes one value holding a JSON array
//!   of objects or any number of values each holding one JSON object;
//! * supplied values must satisfy `allowedValues`, `allowedPattern` (checked on each string, each
//!   list item and the text of integers and booleans), `minItems`/`maxItems` (lists) and
//!   `minChars`/`maxChars` (each string);
//! * a parameter that is not supplied takes its `default`, or is missing (an error). A default
//!   that reads Parameter Store (`{{ssm:…}}`) can't be resolved here and is reported as
//!   [`ParamError::ParameterStoreReference`] for the caller to handle.
//!
//! Choices AWS does not document (spec legend \[infer\]): defaults are the runbook author's values
//! and are only type-checked, not held to the allowed values, pattern or limits; an
//! `allowedPattern` must match somewhere in the value (patterns are written with `^…$` when they
//! mean the whole value) and a pattern Rust's `regex` can't compile (look-around, back-references)
//! is not enforced; Boolean accepts `True`/`FALSE` as well as `true`/`false`.

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The type of a runbook parameter (or variable), as declared by its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// One string.
    String,
    /// A list of strings.
    StringList,
    /// A whole number (`i64`).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    StringMap,
    /// A list of JSON objects.
    MapList,
}

impl ParamType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [ParamType; 6] = [
        ParamType::String,
        ParamType::StringList,
        ParamType::Integer,
        ParamType::Boolean,
        ParamType::StringMap,
        ParamType::MapList,
    ];

    /// Parses a declared `type` name (case-sensitive).
    pub fn from_name(name: &str) -> Option<ParamType> {
        ParamType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The type's name as runbooks write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "String",
            ParamType::StringList => "StringList",
            ParamType::Integer => "Integer",
            ParamType::Boolean => "Boolean",
            ParamType::StringMap => "StringMap",
            ParamType::MapList => "MapList",
        }
    }

    /// Whether `value` already has this type's JSON shape (an integer that fits `i64` for
    /// `Integer`, only strings in a `StringList`, only objects in a `MapList`).
    pub fn matches(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::StringList => value.as_array().is_some_and(|l| l.iter().all(Value::is_string)),
            ParamType::Integer => value.is_i64(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::StringMap => value.is_object(),
            ParamType::MapList => value.as_array().is_some_and(|l| l.iter().all(Value::is_object)),
        }
    }

    fn article(self) -> &'static str {
        match self {
            ParamType::Integer => "an",
            _ => "a",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the supplied parameters can't start the runbook. Every variant is reported as
/// `InvalidAutomationExecutionParametersException` except [`ParamError::ParameterStoreReference`],
/// which marks something ssmd can't do yet; the message names the parameter and the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Supplied names the runbook does not declare (all of them, sorted). Worded as SSM words it.
    #[error("Undefined execution inputs: [{}]", .0.join(", "))]
    Undefined(Vec<String>),
    /// A parameter without a default was not supplied. Worded as SSM words it.
    #[error("Missing required parameter: {0} in user inputs.")]
    Missing(String),
    /// A `String`, `Integer`, `Boolean` or `StringMap` parameter got no value or several.
    #[error("Parameter \"{name}\" of type {kind} takes exactly one value, got {count}.")]
    NotOneValue {
        /// The parameter.
        name: String,
        /// Its declared type.
        kind: ParamType,
        /// How many values were supplied.
        count: usize,
    },
    /// A supplied value does not read as the declared type.
    #[error("Parameter \"{name}\" must be {} {kind}, got \"{value}\".", .kind.article())]
    WrongType {
        /// The parameter.
        name: String,
        /// Its declared type.
        kind: ParamType,
        /// The offending wire value.
        value: String,
    },
    /// A value (or list item) is not one of `allowedValues`. Worded as SSM words it.
    #[error("Parameter \"{name}\" has value \"{value}\" not found in [{}].", .allowed.join(", "))]
    NotAllowed {
        /// The parameter.
        name: String,
        /// The offending value (list item), as text.
        value: String,
        /// The allowed values, as text.
        allowed: Vec<String>,
    },
    /// A value (or list item) does not match `allowedPattern`.
    #[error("Parameter \"{name}\" has value \"{value}\" that does not match the allowed pattern \"{pattern}\".")]
    PatternMismatch {
        /// The parameter.
        name: String,
        /// The offending value (list item), as text.
        value: String,
        /// The runbook's `allowedPattern`.
        pattern: String,
    },
    /// A list has fewer items than `minItems`.
    #[error("Parameter \"{name}\" has {}; it needs at least {min} (minItems).", plural(.count, "value"))]
    TooFewItems {
        /// The parameter.
        name: String,
        /// How many items the list has.
        count: usize,
        /// The runbook's `minItems`.
        min: u64,
    },
    /// A list has more items than `maxItems`.
    #[error("Parameter \"{name}\" has {}; it takes at most {max} (maxItems).", plural(.count, "value"))]
    TooManyItems {
        /// The parameter.
        name: String,
        /// How many items the list has.
        count: usize,
        /// The runbook's `maxItems`.
        max: u64,
    },
    /// A string (or list item) is shorter than `minChars`.
    #[error("Parameter \"{name}\" has value \"{value}\" of {}; it needs at least {min} (minChars).", plural(.len, "character"))]
    TooShort {
        /// The parameter.
        name: String,
        /// The offending string.
        value: String,
        /// Its length in characters.
        len: usize,
        /// The runbook's `minChars`.
        min: u64,
    },
    /// A string (or list item) is longer than `maxChars`.
    #[error("Parameter \"{name}\" has value \"{value}\" of {}; it takes at most {max} (maxChars).", plural(.len, "character"))]
    TooLong {
        /// The parameter.
        name: String,
        /// The offending string.
        value: String,
        /// Its length in characters.
        len: usize,
        /// The runbook's `maxChars`.
        max: u64,
    },
    /// The parameter was not supplied and its default reads Parameter Store (`{{ssm:…}}`), which
    /// ssmd can't resolve yet. Carries the parameter's name.
    #[error(
        "Parameter \"{0}\" was not supplied and its default reads Parameter Store ({{{{ssm:...}}}}), which ssmd does not support yet."
    )]
    ParameterStoreReference(String),
    /// The runbook's default for a parameter does not have the declared type.
    #[error("Parameter \"{name}\" has type {kind} but its default {default} is not {} {kind}.", .kind.article())]
    InvalidDefault {
        /// The parameter.
        name: String,
        /// Its declared type.
        kind: ParamType,
        /// The default, as JSON text.
        default: String,
    },
    /// The runbook defines the parameter in a way that can't be used (no object, unknown type).
    /// CreateDocument refuses such runbooks, so this only guards against stored oddities.
    #[error("Parameter \"{name}\" is not properly defined in the runbook: {reason}.")]
    InvalidDefinition {
        /// The parameter.
        name: String,
        /// What is wrong with its definition.
        reason: String,
    },
    /// The runbook's `parameters` member is not a map.
    #[error("The runbook's parameters member is not a map of parameter definitions.")]
    InvalidDefinitions,
}

/// "1 value", "2 values".
fn plural(count: &usize, noun: &str) -> String {
    if *count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// One parameter definition, read leniently: constraints of the wrong JSON type are ignored
/// (CreateDocument refuses them, see `document::validate`).
struct Definition<'a> {
    kind: ParamType,
    /// `None` when absent or `null`.
    default: Option<&'a Value>,
    allowed: Option<&'a Vec<Value>>,
    pattern: Option<&'a str>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_chars: Option<u64>,
    max_chars: Option<u64>,
}

impl<'a> Definition<'a> {
    fn parse(name: &str, def: &'a Value) -> Result<Definition<'a>, ParamError> {
        let invalid = |reason: String| ParamError::InvalidDefinition { name: name.to_string(), reason };
        let Some(def) = def.as_object() else {
            return Err(invalid("its definition is not an object".into()));
        };
        let kind = match def.get("type") {
            None => return Err(invalid("it has no type".into())),
            Some(t) => t.as_str().and_then(ParamType::from_name).ok_or_else(|| {
                invalid(format!("its type {t} is not one of {}", ParamType::ALL.map(ParamType::as_str).join(", ")))
            })?,
        };
        let limit = |key: &str| def.get(key).and_then(Value::as_u64);
        Ok(Definition {
            kind,
            default: def.get("default").filter(|d| !d.is_null()),
            allowed: def.get("allowedValues").and_then(Value::as_array),
            pattern: def.get("allowedPattern").and_then(Value::as_str),
            min_items: limit("minItems"),
            max_items: limit("maxItems"),
            min_chars: limit("minChars"),
            max_chars: limit("maxChars"),
        })
    }

    /// Holds a coerced supplied value to the definition's constraints.
    fn check(&self, name: &str, value: &Value) -> Result<(), ParamError> {
        let items: Vec<&Value> = match value {
            Value::Array(list) => {
                let count = list.len();
                if let Some(min) = self.min_items
                    && (count as u64) < min
                {
                    return Err(ParamError::TooFewItems { name: name.to_string(), count, min });
                }
                if let Some(max) = self.max_items
                    && count as u64 > max
                {
                    return Err(ParamError::TooManyItems { name: name.to_string(), count, max });
                }
                list.iter().collect()
            }
            other => vec![other],
        };
        // An allowedPattern Rust's regex can't compile is not enforced (see the module docs).
        let pattern = self.pattern.and_then(|p| Regex::new(p).ok().map(|re| (p, re)));
        for item in items {
            if let Some(allowed) = self.allowed
                && !allowed.iter().any(|a| same_value(a, item))
            {
                return Err(ParamError::NotAllowed {
                    name: name.to_string(),
                    value: text(item),
                    allowed: allowed.iter().map(text).collect(),
                });
            }
            if let Some((source, re)) = &pattern
                && !item.is_object()
                && !item.is_array()
                && !re.is_match(&text(item))
            {
                return Err(ParamError::PatternMismatch {
                    name: name.to_string(),
                    value: text(item),
                    pattern: source.to_string(),
                });
            }
            if let Value::String(s) = item {
                let len = s.chars().count();
                if let Some(min) = self.min_chars
                    && (len as u64) < min
                {
                    return Err(ParamError::TooShort { name: name.to_string(), value: s.clone(), len, min });
                }
                if let Some(max) = self.max_chars
                    && len as u64 > max
                {
                    return Err(ParamError::TooLong { name: name.to_string(), value: s.clone(), len, max });
                }
            }
        }
        Ok(())
    }

    /// The value a parameter that was not supplied takes.
    fn default_value(&self, name: &str) -> Result<Value, ParamError> {
        let Some(default) = self.default else {
            return Err(ParamError::Missing(name.to_string()));
        };
        if reads_parameter_store(default) {
            return Err(ParamError::ParameterStoreReference(name.to_string()));
        }
        if self.kind.matches(default) {
            return Ok(default.clone());
        }
        let invalid =
            || ParamError::InvalidDefault { name: name.to_string(), kind: self.kind, default: default.to_string() };
        // A default written as text (`default: "5"` for an Integer) reads as a wire value would.
        match default {
            Value::String(s) => coerce(name, self.kind, std::slice::from_ref(s)).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }
}

/// Whether `a` (an allowed value) and `b` (a supplied value or list item) are the same value:
/// equal as JSON, or, for scalars, equal as text (`allowedValues: ["1"]` allows the Integer 1).
fn same_value(a: &Value, b: &Value) -> bool {
    let scalar = |v: &Value| !v.is_array() && !v.is_object();
    a == b || (scalar(a) && scalar(b) && text(a) == text(b))
}

/// A value as text: strings as they are, everything else as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a default (or any string inside it) holds a `{{ssm:…}}` reference.
fn reads_parameter_store(v: &Value) -> bool {
    match v {
        Value::String(s) => s.match_indices("{{").any(|(i, _)| s[i + 2..].trim_start().starts_with("ssm:")),
        Value::Array(items) => items.iter().any(reads_parameter_store),
        Value::Object(m) => m.values().any(reads_parameter_store),
        _ => false,
    }
}

/// Coerces one parameter's wire values to its declared type.
fn coerce(name: &str, kind: ParamType, values: &[String]) -> Result<Value, ParamError> {
    let wrong = |value: &str| ParamError::WrongType { name: name.to_string(), kind, value: value.to_string() };
    let one = || match values {
        [v] => Ok(v.as_str()),
        _ => Err(ParamError::NotOneValue { name: name.to_string(), kind, count: values.len() }),
    };
    match kind {
        ParamType::String => Ok(Value::String(one()?.to_string())),
        ParamType::StringList => Ok(Value::Array(values.iter().cloned().map(Value::String).collect())),
        ParamType::Integer => {
            let v = one()?;
            v.parse::<i64>().map(Value::from).map_err(|_| wrong(v))
        }
        ParamType::Boolean => {
            let v = one()?;
            if v.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if v.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(wrong(v))
            }
        }
        ParamType::StringMap => {
            let v = one()?;
            match serde_json::from_str::<Value>(v) {
                Ok(map @ Value::Object(_)) => Ok(map),
                _ => Err(wrong(v)),
            }
        }
        ParamType::MapList => {
            // One value holding the whole list...
            if let [v] = values
                && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(v)
            {
                return if items.iter().all(Value::is_object) { Ok(Value::Array(items)) } else { Err(wrong(v)) };
            }
            // ...or one JSON object per value.
            values
                .iter()
                .map(|v| match serde_json::from_str::<Value>(v) {
                    Ok(map @ Value::Object(_)) => Ok(map),
                    _ => Err(wrong(v)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
    }
}

/// Turns StartAutomationExecution's wire `Parameters` into typed values for the runbook's
/// `parameters` definitions (`definitions` may be absent, i.e. `Null`).
///
/// The result holds every declared parameter: the supplied value coerced to its type, or its
/// default. Errors, checked in this order: undeclared supplied names
/// ([`ParamError::Undefined`]), then each declared parameter in name order (coercion, then its
/// constraints, or its default when not supplied).
pub fn resolve_parameters(
    definitions: &Value,
    supplied: &BTreeMap<String, Vec<String>>,
) -> Result<Map<String, Value>, ParamError> {
    let empty = Map::new();
    let defs = match definitions {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(ParamError::InvalidDefinitions),
    };
    let undefined: Vec<String> = supplied.keys().filter(|k| !defs.contains_key(*k)).cloned().collect();
    if !undefined.is_empty() {
        return Err(ParamError::Undefined(undefined));
    }
    let mut names: Vec<&String> = defs.keys().collect();
    names.sort();
    let mut out = Map::new();
    for name in names {
        let def = Definition::parse(name, &defs[name])?;
        let value = match supplied.get(name) {
            Some(values) => {
                let value = coerce(name, def.kind, values)?;
                def.check(name, &value)?;
                value
            }
            None => def.default_value(name)?,
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Renders typed parameter values in SSM's wire form, as `GetAutomationExecution` reports
/// `Parameters`: a string as itself, an integer or boolean as its text, a list of scalars item by
/// item, a map or a list holding maps (a MapList) as one compact JSON text, `null` as no values.
///
/// For values [`resolve_parameters`] produced, resolving the result again gives the same values.
pub fn to_wire(values: &Map<String, Value>) -> BTreeMap<String, Vec<String>> {
    values.iter().map(|(name, value)| (name.clone(), wire_values(value))).collect()
}

fn wire_values(value: &Value) -> Vec<String> {
    match value {
        Value::Null => vec![],
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => vec![value.to_string()],
        Value::Array(items) => items.iter().map(text).collect(),
        other => vec![text(other)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn wire(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect())).collect()
    }

    fn one(kind: &str, values: &[&str]) -> Result<Value, ParamError> {
        let defs = json!({"P": {"type": kind}});
        resolve_parameters(&defs, &wire(&[("P", values)])).map(|mut m| m.remove("P").unwrap())
    }

    fn with_def(def: Value, values: &[&str]) -> Result<Value, ParamError> {
        let defs = json!({ "P": def });
        resolve_parameters(&defs, &wire(&[("P", values)])).map(|mut m| m.remove("P").unwrap())
    }

    /// Asserts the error's message contains `fragment` and reads like a sentence.
    fn err_msg(result: Result<Value, ParamError>, fragment: &str) -> ParamError {
        let err = result.expect_err("expected an error");
        let msg = err.to_string();
        assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
        assert!(msg.starts_with(|c: char| c.is_ascii_uppercase()), "message {msg:?} is not capitalised");
        err
    }

    // ---- types ---------------------------------------------------------------------------

    #[test]
    fn param_type_names_round_trip() {
        for t in ParamType::ALL {
            assert_eq!(ParamType::from_name(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(ParamType::from_name("string"), None);
        assert_eq!(ParamType::from_name("Float"), None);
    }

    #[test]
    fn param_type_matches_json_shapes() {
        assert!(ParamType::String.matches(&json!("")));
        assert!(!ParamType::String.matches(&json!(1)));
        assert!(ParamType::StringList.matches(&json!([])));
        assert!(!ParamType::StringList.matches(&json!(["a", 1])));
        assert!(ParamType::Integer.matches(&json!(-4)));
        assert!(!ParamType::Integer.matches(&json!(1.5)));
        assert!(!ParamType::Integer.matches(&json!(u64::MAX)));
        assert!(ParamType::Boolean.matches(&json!(false)));
        assert!(!ParamType::Boolean.matches(&json!("false")));
        assert!(ParamType::StringMap.matches(&json!({})));
        assert!(ParamType::MapList.matches(&json!([{}, {"a": "b"}])));
        assert!(!ParamType::MapList.matches(&json!([{}, "x"])));
    }

    #[test]
    fn string_takes_exactly_one_value() {
        assert_eq!(one("String", &["hello"]).unwrap(), json!("hello"));
        assert_eq!(one("String", &[""]).unwrap(), json!(""));
        // A String value is never parsed, whatever it looks like.
        assert_eq!(one("String", &["42"]).unwrap(), json!("42"));
        assert_eq!(one("String", &["{{ other }}"]).unwrap(), json!("{{ other }}"));
        let e = err_msg(one("String", &["a", "b"]), "Parameter \"P\" of type String takes exactly one value, got 2.");
        assert!(matches!(e, ParamError::NotOneValue { count: 2, kind: ParamType::String, .. }));
        err_msg(one("String", &[]), "takes exactly one value, got 0.");
    }

    #[test]
    fn string_list_takes_the_list() {
        assert_eq!(one("StringList", &["a", "b", "a"]).unwrap(), json!(["a", "b", "a"]));
        assert_eq!(one("StringList", &[]).unwrap(), json!([]));
        // Items that look like JSON stay strings.
        assert_eq!(one("StringList", &["[\"x\"]", "1"]).unwrap(), json!(["[\"x\"]", "1"]));
    }

    #[test]
    fn integer_parses_one_whole_number() {
        assert_eq!(one("Integer", &["42"]).unwrap(), json!(42));
        assert_eq!(one("Integer", &["-7"]).unwrap(), json!(-7));
        assert_eq!(one("Integer", &["9223372036854775807"]).unwrap(), json!(i64::MAX));
        let e = err_msg(one("Integer", &["abc"]), "Parameter \"P\" must be an Integer, got \"abc\".");
        assert!(matches!(e, ParamError::WrongType { kind: ParamType::Integer, .. }));
        for bad in ["1.5", "1e3", " 1", "", "9223372036854775808", "0x10", "one"] {
            err_msg(one("Integer", &[bad]), "must be an Integer");
        }
        err_msg(one("Integer", &["1", "2"]), "of type Integer takes exactly one value, got 2.");
    }

    #[test]
    fn boolean_reads_true_or_false() {
        assert_eq!(one("Boolean", &["true"]).unwrap(), json!(true));
        assert_eq!(one("Boolean", &["false"]).unwrap(), json!(false));
        assert_eq!(one("Boolean", &["True"]).unwrap(), json!(true));
        assert_eq!(one("Boolean", &["FALSE"]).unwrap(), json!(false));
        for bad in ["yes", "1", "0", "", "t", "truee"] {
            err_msg(one("Boolean", &[bad]), "Parameter \"P\" must be a Boolean, got");
        }
        err_msg(one("Boolean", &[]), "of type Boolean takes exactly one value, got 0.");
    }

    #[test]
    fn string_map_reads_one_json_object() {
        assert_eq!(one("StringMap", &["{\"a\":\"b\"}"]).unwrap(), json!({"a": "b"}));
        assert_eq!(one("StringMap", &["{}"]).unwrap(), json!({}));
        // Values of other types are kept as they are.
        assert_eq!(one("StringMap", &["{\"n\": 1, \"l\": [true]}"]).unwrap(), json!({"n": 1, "l": [true]}));
        for bad in ["[]", "\"x\"", "a=b", "{", "1"] {
            err_msg(one("StringMap", &[bad]), "Parameter \"P\" must be a StringMap, got");
        }
        err_msg(one("StringMap", &["{}", "{}"]), "of type StringMap takes exactly one value, got 2.");
    }

    #[test]
    fn map_list_reads_an_array_or_objects() {
        assert_eq!(one("MapList", &["[{\"a\":\"1\"},{\"b\":\"2\"}]"]).unwrap(), json!([{"a": "1"}, {"b": "2"}]));
        assert_eq!(one("MapList", &["[]"]).unwrap(), json!([]));
        assert_eq!(one("MapList", &["{\"a\":\"1\"}"]).unwrap(), json!([{"a": "1"}]));
        assert_eq!(one("MapList", &["{\"a\":\"1\"}", "{\"b\":\"2\"}"]).unwrap(), json!([{"a": "1"}, {"b": "2"}]));
        assert_eq!(one("MapList", &[]).unwrap(), json!([]));
        err_msg(one("MapList", &["[{\"a\":1}, 2]"]), r#"Parameter "P" must be a MapList, got "[{"a":1}, 2]"."#);
        err_msg(one("MapList", &["{\"a\":1}", "x"]), "must be a MapList, got \"x\".");
        err_msg(one("MapList", &["[{}]", "{}"]), "must be a MapList, got \"[{}]\".");
        err_msg(one("MapList", &["nope"]), "must be a MapList");
    }

    // ---- names, defaults ---------------------------------------------------------------------

    #[test]
    fn undeclared_names_are_refused_together() {
        let defs = json!({"A": {"type": "String"}});
        let err = resolve_parameters(&defs, &wire(&[("A", &["x"]), ("Zed", &["1"]), ("Bee", &["2"])])).unwrap_err();
        assert_eq!(err, ParamError::Undefined(vec!["Bee".into(), "Zed".into()]));
        assert_eq!(err.to_string(), "Undefined execution inputs: [Bee, Zed]");
        // Names are case-sensitive.
        let err = resolve_parameters(&defs, &wire(&[("a", &["x"])])).unwrap_err();
        assert_eq!(err, ParamError::Undefined(vec!["a".into()]));
    }

    #[test]
    fn no_definitions_means_no_parameters() {
        assert_eq!(resolve_parameters(&Value::Null, &BTreeMap::new()).unwrap(), Map::new());
        assert_eq!(resolve_parameters(&json!({}), &BTreeMap::new()).unwrap(), Map::new());
        let err = resolve_parameters(&Value::Null, &wire(&[("X", &["1"])])).unwrap_err();
        assert_eq!(err, ParamError::Undefined(vec!["X".into()]));
        let err = resolve_parameters(&json!(["X"]), &BTreeMap::new()).unwrap_err();
        assert_eq!(err, ParamError::InvalidDefinitions);
        assert!(err.to_string().ends_with('.'));
    }

    #[test]
    fn missing_required_parameter_is_refused() {
        let defs = json!({"InstanceId": {"type": "String"}, "Other": {"type": "String", "default": "x"}});
        let err = resolve_parameters(&defs, &BTreeMap::new()).unwrap_err();
        assert_eq!(err, ParamError::Missing("InstanceId".into()));
        assert_eq!(err.to_string(), "Missing required parameter: InstanceId in user inputs.");
        // A null default is no default.
        let defs = json!({"P": {"type": "String", "default": null}});
        assert_eq!(resolve_parameters(&defs, &BTreeMap::new()).unwrap_err(), ParamError::Missing("P".into()));
    }

    #[test]
    fn defaults_fill_in_missing_parameters() {
        let defs = json!({
            "AutomationAssumeRole": {"type": "String", "default": ""},
            "Count": {"type": "Integer", "default": 3},
            "Flag": {"type": "Boolean", "default": false},
            "Ids": {"type": "StringList", "default": ["a", "b"]},
            "Tags": {"type": "StringMap", "default": {"k": "v"}},
            "Maps": {"type": "MapList", "default": [{"k": "v"}]},
            "Given": {"type": "String", "default": "unused"},
        });
        let got = resolve_parameters(&defs, &wire(&[("Given", &["supplied"])])).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({
                "AutomationAssumeRole": "",
                "Count": 3,
                "Flag": false,
                "Ids": ["a", "b"],
                "Tags": {"k": "v"},
                "Maps": [{"k": "v"}],
                "Given": "supplied",
            })
        );
    }

    #[test]
    fn text_defaults_are_read_like_wire_values() {
        let defs = json!({
            "Count": {"type": "Integer", "default": "5"},
            "Flag": {"type": "Boolean", "default": "true"},
            "Tags": {"type": "StringMap", "default": "{\"a\":\"b\"}"},
        });
        let got = resolve_parameters(&defs, &BTreeMap::new()).unwrap();
        assert_eq!(Value::Object(got), json!({"Count": 5, "Flag": true, "Tags": {"a": "b"}}));
    }

    #[test]
    fn defaults_of_the_wrong_type_are_refused() {
        let cases = [
            ("Integer", json!("abc"), "Parameter \"P\" has type Integer but its default \"abc\" is not an Integer."),
            ("Integer", json!(1.5), "its default 1.5 is not an Integer."),
            ("Boolean", json!(1), "its default 1 is not a Boolean."),
            ("String", json!(5), "its default 5 is not a String."),
            ("StringList", json!(["a", 1]), "its default [\"a\",1] is not a StringList."),
            ("MapList", json!([{}, "x"]), "is not a MapList."),
        ];
        for (kind, default, fragment) in cases {
            let defs = json!({"P": {"type": kind, "default": default}});
            let err = resolve_parameters(&defs, &BTreeMap::new()).unwrap_err();
            assert!(matches!(err, ParamError::InvalidDefault { .. }), "{err:?}");
            assert!(err.to_string().contains(fragment), "{err} lacks {fragment}");
        }
    }

    #[test]
    fn defaults_are_not_held_to_constraints() {
        let defs = json!({"Role": {"type": "String", "default": "", "allowedPattern": "^arn:", "minChars": 3},
                          "Env": {"type": "String", "default": "qa", "allowedValues": ["dev", "prod"]}});
        let got = resolve_parameters(&defs, &BTreeMap::new()).unwrap();
        assert_eq!(Value::Object(got), json!({"Role": "", "Env": "qa"}));
    }

    #[test]
    fn parameter_store_defaults_are_reported() {
        for default in
            [json!("{{ssm:/my/param}}"), json!("{{ ssm:/x }}"), json!("prefix-{{ssm:name}}"), json!(["{{ssm:/l}}"])]
        {
            let defs = json!({"P": {"type": "String", "default": default}});
            let err = resolve_parameters(&defs, &BTreeMap::new()).unwrap_err();
            assert_eq!(err, ParamError::ParameterStoreReference("P".into()));
            assert!(err.to_string().contains("Parameter \"P\""), "{err}");
            assert!(err.to_string().contains("{{ssm:...}}"), "{err}");
        }
        // Supplying the parameter avoids the default altogether.
        let defs = json!({"P": {"type": "String", "default": "{{ssm:/my/param}}"}});
        let got = resolve_parameters(&defs, &wire(&[("P", &["given"])])).unwrap();
        assert_eq!(got["P"], json!("given"));
        // Text that merely mentions ssm is not a reference.
        let defs = json!({"P": {"type": "String", "default": "ssm:/x {{ other }}"}});
        assert_eq!(resolve_parameters(&defs, &BTreeMap::new()).unwrap()["P"], json!("ssm:/x {{ other }}"));
    }

    #[test]
    fn broken_definitions_are_reported() {
        let err = with_def(json!("String"), &["x"]).unwrap_err();
        assert!(matches!(err, ParamError::InvalidDefinition { .. }));
        assert!(err.to_string().contains("Parameter \"P\" is not properly defined"), "{err}");
        err_msg(with_def(json!({"default": "x"}), &["x"]), "it has no type.");
        err_msg(with_def(json!({"type": "Float"}), &["x"]), "its type \"Float\" is not one of String, StringList");
    }

    // ---- constraints ---------------------------------------------------------------------

    #[test]
    fn allowed_values_are_enforced() {
        let def = json!({"type": "String", "allowedValues": ["dev", "prod"]});
        assert_eq!(with_def(def.clone(), &["prod"]).unwrap(), json!("prod"));
        let err = err_msg(with_def(def.clone(), &["qa"]), "Parameter \"P\" has value \"qa\" not found in [dev, prod].");
        assert!(matches!(err, ParamError::NotAllowed { .. }));
        // Case matters.
        err_msg(with_def(def, &["Prod"]), "has value \"Prod\" not found in [dev, prod].");
    }

    #[test]
    fn allowed_values_apply_to_each_list_item() {
        let def = json!({"type": "StringList", "allowedValues": ["a", "b"]});
        assert_eq!(with_def(def.clone(), &["a", "b", "a"]).unwrap(), json!(["a", "b", "a"]));
        assert_eq!(with_def(def.clone(), &[]).unwrap(), json!([]));
        err_msg(with_def(def, &["a", "c"]), "has value \"c\" not found in [a, b].");
    }

    #[test]
    fn allowed_values_compare_typed_values() {
        let def = json!({"type": "Integer", "allowedValues": [1, 2, 3]});
        assert_eq!(with_def(def.clone(), &["2"]).unwrap(), json!(2));
        err_msg(with_def(def, &["4"]), "has value \"4\" not found in [1, 2, 3].");
        // Allowed values written as text allow the matching number.
        let def = json!({"type": "Integer", "allowedValues": ["1", "2"]});
        assert_eq!(with_def(def, &["1"]).unwrap(), json!(1));
        let def = json!({"type": "Boolean", "allowedValues": [true]});
        assert_eq!(with_def(def.clone(), &["true"]).unwrap(), json!(true));
        err_msg(with_def(def, &["false"]), "has value \"false\" not found in [true].");
        let def = json!({"type": "StringMap", "allowedValues": [{"a": "b"}]});
        assert_eq!(with_def(def.clone(), &["{\"a\": \"b\"}"]).unwrap(), json!({"a": "b"}));
        err_msg(with_def(def, &["{\"a\": \"c\"}"]), r#"has value "{"a":"c"}" not found in [{"a":"b"}]."#);
    }

    #[test]
    fn allowed_pattern_is_enforced() {
        let def = json!({"type": "String", "allowedPattern": "^i-[0-9a-f]{8,17}$"});
        assert_eq!(with_def(def.clone(), &["i-0123abcd"]).unwrap(), json!("i-0123abcd"));
        let err = err_msg(
            with_def(def, &["i-xyz"]),
            "Parameter \"P\" has value \"i-xyz\" that does not match the allowed pattern \"^i-[0-9a-f]{8,17}$\".",
        );
        assert!(matches!(err, ParamError::PatternMismatch { .. }));
    }

    #[test]
    fn allowed_pattern_matches_anywhere_unless_anchored() {
        let def = json!({"type": "String", "allowedPattern": "[0-9]+"});
        assert!(with_def(def.clone(), &["abc1"]).is_ok());
        err_msg(with_def(def, &["abc"]), "does not match the allowed pattern");
        // The `|^$` idiom of Amazon's runbooks admits the empty string.
        let def = json!({"type": "String", "allowedPattern": "^arn:aws:iam::\\d{12}:role/[\\w+=,.@-]+$|^$"});
        assert!(with_def(def.clone(), &[""]).is_ok());
        assert!(with_def(def.clone(), &["arn:aws:iam::123456789012:role/R"]).is_ok());
        err_msg(with_def(def, &["role"]), "does not match");
    }

    #[test]
    fn allowed_pattern_applies_to_list_items_and_scalars() {
        let def = json!({"type": "StringList", "allowedPattern": "^[a-z]+$"});
        assert!(with_def(def.clone(), &["ab", "cd"]).is_ok());
        err_msg(with_def(def, &["ab", "C"]), "has value \"C\" that does not match");
        let def = json!({"type": "Integer", "allowedPattern": "^[1-9]$"});
        assert!(with_def(def.clone(), &["7"]).is_ok());
        err_msg(with_def(def, &["10"]), "has value \"10\" that does not match");
        // Maps are not held to patterns.
        let def = json!({"type": "StringMap", "allowedPattern": "^x$"});
        assert!(with_def(def, &["{\"a\":\"b\"}"]).is_ok());
    }

    #[test]
    fn unsupported_patterns_are_not_enforced() {
        // Look-ahead is Java-only; rather than refuse every value, the pattern is skipped.
        let def = json!({"type": "String", "allowedPattern": "^(?!root$)[a-z]+$"});
        assert!(with_def(def.clone(), &["root"]).is_ok());
        assert!(with_def(def, &["ROOT"]).is_ok());
        let def = json!({"type": "String", "allowedPattern": "^[a-z"});
        assert!(with_def(def, &["anything"]).is_ok());
    }

    #[test]
    fn item_counts_are_enforced() {
        let def = json!({"type": "StringList", "minItems": 1, "maxItems": 2});
        assert!(with_def(def.clone(), &["a"]).is_ok());
        assert!(with_def(def.clone(), &["a", "b"]).is_ok());
        let err = err_msg(with_def(def.clone(), &[]), "Parameter \"P\" has 0 values; it needs at least 1 (minItems).");
        assert!(matches!(err, ParamError::TooFewItems { count: 0, min: 1, .. }));
        let err = err_msg(with_def(def, &["a", "b", "c"]), "has 3 values; it takes at most 2 (maxItems).");
        assert!(matches!(err, ParamError::TooManyItems { count: 3, max: 2, .. }));
        let def = json!({"type": "MapList", "maxItems": 1});
        err_msg(with_def(def, &["[{},{}]"]), "has 2 values; it takes at most 1 (maxItems).");
        let def = json!({"type": "StringList", "minItems": 2});
        err_msg(with_def(def, &["a"]), "has 1 value; it needs at least 2 (minItems).");
    }

    #[test]
    fn character_counts_are_enforced() {
        let def = json!({"type": "String", "minChars": 2, "maxChars": 4});
        assert!(with_def(def.clone(), &["ab"]).is_ok());
        assert!(with_def(def.clone(), &["abcd"]).is_ok());
        // Characters, not bytes.
        assert!(with_def(def.clone(), &["éééé"]).is_ok());
        let err = err_msg(
            with_def(def.clone(), &["a"]),
            "Parameter \"P\" has value \"a\" of 1 character; it needs at least 2 (minChars).",
        );
        assert!(matches!(err, ParamError::TooShort { len: 1, min: 2, .. }));
        let err = err_msg(with_def(def, &["abcde"]), "of 5 characters; it takes at most 4 (maxChars).");
        assert!(matches!(err, ParamError::TooLong { len: 5, max: 4, .. }));
        let def = json!({"type": "StringList", "maxChars": 1});
        assert!(with_def(def.clone(), &["a", "b"]).is_ok());
        err_msg(with_def(def, &["a", "bb"]), "has value \"bb\" of 2 characters");
    }

    #[test]
    fn malformed_constraints_are_ignored() {
        let def = json!({"type": "String", "allowedValues": "dev", "allowedPattern": 5, "minChars": -1});
        assert_eq!(with_def(def, &["x"]).unwrap(), json!("x"));
    }

    #[test]
    fn first_broken_parameter_in_name_order_is_reported() {
        let defs = json!({"B": {"type": "Integer"}, "A": {"type": "Integer"}});
        let err = resolve_parameters(&defs, &wire(&[("A", &["x"]), ("B", &["y"])])).unwrap_err();
        assert!(err.to_string().contains("Parameter \"A\""), "{err}");
    }

    // ---- wire form -------------------------------------------------------------------------

    #[test]
    fn to_wire_renders_each_type() {
        let values = json!({
            "S": "text",
            "Empty": "",
            "L": ["a", "b"],
            "NoItems": [],
            "I": -12,
            "B": true,
            "M": {"k": "v"},
            "ML": [{"k": "v"}],
            "N": null,
        });
        let got = to_wire(values.as_object().unwrap());
        let expect = wire(&[
            ("S", &["text"]),
            ("Empty", &[""]),
            ("L", &["a", "b"]),
            ("NoItems", &[]),
            ("I", &["-12"]),
            ("B", &["true"]),
            ("M", &["{\"k\":\"v\"}"]),
            ("ML", &["[{\"k\":\"v\"}]"]),
            ("N", &[]),
        ]);
        assert_eq!(got, expect);
    }

    #[test]
    fn to_wire_round_trips_every_type() {
        let defs = json!({
            "S": {"type": "String"},
            "L": {"type": "StringList"},
            "I": {"type": "Integer"},
            "B": {"type": "Boolean"},
            "M": {"type": "StringMap"},
            "ML": {"type": "MapList"},
            "D": {"type": "Integer", "default": 9},
        });
        let supplied = wire(&[
            ("S", &["x y"]),
            ("L", &["1", "{}"]),
            ("I", &["0"]),
            ("B", &["False"]),
            ("M", &["{\"a\": {\"nested\": [1]}}"]),
            ("ML", &["{\"a\":\"1\"}", "{\"b\":\"2\"}"]),
        ]);
        let first = resolve_parameters(&defs, &supplied).unwrap();
        let again = resolve_parameters(&defs, &to_wire(&first)).unwrap();
        assert_eq!(first, again);
        assert_eq!(to_wire(&first)["D"], vec!["9".to_string()]);
        assert_eq!(to_wire(&first)["B"], vec!["false".to_string()]);
    }

    proptest! {
        #[test]
        fn string_values_round_trip(s in ".{0,40}") {
            let defs = json!({"P": {"type": "String"}});
            let supplied = wire(&[("P", &[s.as_str()])]);
            let typed = resolve_parameters(&defs, &supplied).unwrap();
            prop_assert_eq!(&typed["P"], &json!(s));
            prop_assert_eq!(to_wire(&typed), supplied);
        }

        #[test]
        fn string_list_values_round_trip(items in proptest::collection::vec(".{0,20}", 0..8)) {
            let defs = json!({"P": {"type": "StringList"}});
            let supplied: BTreeMap<String, Vec<String>> = [("P".to_string(), items.clone())].into();
            let typed = resolve_parameters(&defs, &supplied).unwrap();
            prop_assert_eq!(&typed["P"], &json!(items));
            prop_assert_eq!(to_wire(&typed), supplied);
        }

        #[test]
        fn integer_values_round_trip(n in any::<i64>()) {
            let defs = json!({"P": {"type": "Integer"}});
            let supplied = wire(&[("P", &[n.to_string().as_str()])]);
            let typed = resolve_parameters(&defs, &supplied).unwrap();
            prop_assert_eq!(&typed["P"], &json!(n));
            prop_assert_eq!(to_wire(&typed), supplied);
        }

        #[test]
        fn map_list_values_round_trip(maps in proptest::collection::vec(
            proptest::collection::btree_map("[a-z]{1,4}", ".{0,6}", 0..3), 0..4)
        ) {
            let defs = json!({"P": {"type": "MapList"}});
            let value = json!(maps);
            let typed: Map<String, Value> = [("P".to_string(), value.clone())].into_iter().collect();
            let back = resolve_parameters(&defs, &to_wire(&typed)).unwrap();
            prop_assert_eq!(&back["P"], &value);
        }

        #[test]
        fn non_integers_are_refused(s in "[^0-9-]{1,10}") {
            prop_assert!(
                matches!(one("Integer", &[s.as_str()]), Err(ParamError::WrongType { .. })),
                "accepted {:?}", s
            );
        }
    }
}
