//! Evaluating the `Selector` of runbook step outputs and the `PropertySelector` of
//! `aws:waitForAwsResourceProperty` / `aws:assertAwsResourceProperty` (spec §2.4, §2.5), and
//! checking a selected value against an output's declared `Type`.
//!
//! Selectors are a small JSONPath subset starting with `$`:
//!
//! ```text
//! selector := "$" segment*
//! segment  := "." name | ".*" | "[" quoted "]" | "[" integer "]" | "[*]" | ".." (name | "*" | "[" … "]")
//! quoted   := "'" chars "'" | '"' chars '"'     (backslash escapes the next character)
//! ```
//!
//! A negative index counts from the end (`[-1]` is the last element). A wildcard (`.*` or
//! `[*]`) expands every element of a list (or every value of an object) and makes the result a
//! list collecting whatever the rest of the path selects from each (elements where the rest is
//! missing are skipped). Recursive descent (`..name`, `..*`, `..[0]`) applies the rest of the
//! path to the value and every value nested in it, in document order, and also makes the result a
//! list (AWS: "deepscan always returns an array").
//!
//! A well-formed path that selects nothing gives `Ok(None)`: what a missing output means is for
//! the engine to decide. Nothing here does I/O or keeps state.

use serde_json::Value;

/// Why a selector could not be evaluated or a value does not fit an output `Type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector is not valid syntax.
    #[error("invalid selector `{selector}`: {reason}")]
    Malformed {
        /// The selector as written.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The output `Type` is not one of the six SSM output types.
    #[error("unknown output type `{0}` (expected String, Integer, Boolean, StringList, StringMap or MapList)")]
    UnknownType(String),
    /// The selected value cannot be given the output `Type`.
    #[error("value {value} cannot be used as output type {ty}: {reason}")]
    TypeMismatch {
        /// The declared output type.
        ty: String,
        /// The selected value, as JSON text.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
}

/// One step of a parsed selector path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(i64),
    Wildcard,
    /// `..`: the value and everything nested in it.
    Descend,
}

fn malformed(selector: &str, reason: impl Into<String>) -> SelectorError {
    SelectorError::Malformed { selector: selector.to_string(), reason: reason.into() }
}

/// Parses `selector` into its path segments.
fn parse(selector: &str) -> Result<Vec<Segment>, SelectorError> {
    let chars: Vec<char> = selector.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return Err(malformed(selector, "a selector must start with `$`"));
    }
    let mut segments = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                match chars.get(i) {
                    Some('.') => {
                        segments.push(Segment::Descend);
                        // The second dot starts the name (`..name`, `..*`); before `[` it is dropped.
                        if chars.get(i + 1) == Some(&'[') {
                            i += 1;
                        }
                        if i + 1 >= chars.len() {
                            return Err(malformed(selector, "`..` must be followed by a name, `*` or `[...]`"));
                        }
                    }
                    Some('*') => {
                        segments.push(Segment::Wildcard);
                        i += 1;
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && !matches!(chars[i], '.' | '[' | ']') {
                            i += 1;
                        }
                        if i == start {
                            return Err(malformed(
                                selector,
                                format!("expected a property name after `.` at position {start}"),
                            ));
                        }
                        let name: String = chars[start..i].iter().collect();
                        if name.contains(['\'', '"', ' ']) {
                            return Err(malformed(
                                selector,
                                format!("invalid property name `{name}`; use ['...'] to quote it"),
                            ));
                        }
                        segments.push(Segment::Key(name));
                    }
                }
            }
            '[' => {
                let open = i;
                i += 1;
                match chars.get(i) {
                    Some(&q @ ('\'' | '"')) => {
                        i += 1;
                        let mut name = String::new();
                        loop {
                            match chars.get(i) {
                                None => {
                                    return Err(malformed(
                                        selector,
                                        format!("unterminated quoted name starting at position {open}"),
                                    ));
                                }
                                Some('\\') => {
                                    let Some(&c) = chars.get(i + 1) else {
                                        return Err(malformed(selector, "dangling `\\` in quoted name"));
                                    };
                                    name.push(c);
                                    i += 2;
                                }
                                Some(&c) if c == q => {
                                    i += 1;
                                    break;
                                }
                                Some(&c) => {
                                    name.push(c);
                                    i += 1;
                                }
                            }
                        }
                        expect_close(selector, &chars, i, open)?;
                        segments.push(Segment::Key(name));
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' && chars[i] != '[' {
                            i += 1;
                        }
                        expect_close(selector, &chars, i, open)?;
                        let inner: String = chars[start..i].iter().collect();
                        let inner = inner.trim();
                        if inner == "*" {
                            segments.push(Segment::Wildcard);
                        } else if inner.starts_with('?') || inner.contains(':') {
                            return Err(malformed(
                                selector,
                                format!("filters and slices (`[{inner}]`) are unsupported"),
                            ));
                        } else {
                            let valid = !inner.is_empty()
                                && inner.strip_prefix('-').unwrap_or(inner).chars().all(|c| c.is_ascii_digit())
                                && inner != "-";
                            let index = if valid { inner.parse::<i64>().ok() } else { None };
                            let Some(index) = index else {
                                return Err(malformed(
                                    selector,
                                    format!("bad index `[{inner}]` (expected an integer, `*` or a quoted name)"),
                                ));
                            };
                            segments.push(Segment::Index(index));
                        }
                    }
                }
                i += 1; // past `]`
            }
            ']' => {
                return Err(malformed(selector, format!("unbalanced `]` at position {i}")));
            }
            c => {
                return Err(malformed(selector, format!("unexpected `{c}` at position {i} (expected `.` or `[`)")));
            }
        }
    }
    Ok(segments)
}

/// Checks that `chars[i]` is the `]` closing the bracket opened at `open`.
fn expect_close(selector: &str, chars: &[char], i: usize, open: usize) -> Result<(), SelectorError> {
    if chars.get(i) == Some(&']') {
        Ok(())
    } else {
        Err(malformed(selector, format!("unbalanced `[` at position {open}")))
    }
}

/// Applies one non-wildcard segment to a value.
fn step<'a>(value: &'a Value, segment: &Segment) -> Option<&'a Value> {
    match (segment, value) {
        (Segment::Key(k), Value::Object(m)) => m.get(k),
        (Segment::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { (a.len() as i64).checked_add(*i)? } else { *i };
            usize::try_from(idx).ok().and_then(|idx| a.get(idx))
        }
        _ => None,
    }
}

/// A value and everything nested in it, in document order.
fn descendants<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(value);
    for c in children(value) {
        descendants(c, out);
    }
}

/// The children a wildcard expands a value into.
fn children(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => Vec::new(),
    }
}

/// Evaluates `selector` against `doc`.
///
/// Returns `Ok(None)` when the (well-formed) path selects nothing, and a list when the path
/// contains a wildcard. Errors name the selector when it is malformed or uses recursive descent.
pub fn select(doc: &Value, selector: &str) -> Result<Option<Value>, SelectorError> {
    let segments = parse(selector)?;
    let mut nodes: Vec<&Value> = vec![doc];
    let mut multi = false;
    for segment in &segments {
        if *segment == Segment::Wildcard {
            multi = true;
            nodes = nodes.into_iter().flat_map(children).collect();
        } else if *segment == Segment::Descend {
            multi = true;
            let mut all = Vec::new();
            for n in nodes {
                descendants(n, &mut all);
            }
            nodes = all;
        } else {
            nodes = nodes.into_iter().filter_map(|n| step(n, segment)).collect();
            if !multi && nodes.is_empty() {
                return Ok(None);
            }
        }
    }
    if multi {
        Ok(Some(Value::Array(nodes.into_iter().cloned().collect())))
    } else {
        Ok(nodes.into_iter().next().cloned())
    }
}

fn mismatch(ty: &str, value: &Value, reason: impl Into<String>) -> SelectorError {
    SelectorError::TypeMismatch { ty: ty.to_string(), value: value.to_string(), reason: reason.into() }
}

/// Checks `value` against the output type `ty`, coercing where SSM does.
///
/// * `String`: a string as is; a number or boolean as its JSON text.
/// * `Integer`: an integral number, or a string holding one (surrounding spaces ignored).
/// * `Boolean`: a boolean, or the string `true` / `false` in any case.
/// * `StringList`: a list of strings.
/// * `StringMap`: an object.
/// * `MapList`: a list of objects.
///
/// Anything else (including `null`) is refused with [`SelectorError::TypeMismatch`]; an unknown
/// `ty` with [`SelectorError::UnknownType`].
pub fn typed_output(value: &Value, ty: &str) -> Result<Value, SelectorError> {
    match ty {
        "String" => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(mismatch(ty, value, "expected a string, number or boolean")),
        },
        "Integer" => match value {
            Value::Number(n) => {
                if n.is_i64() || n.is_u64() {
                    Ok(value.clone())
                } else {
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Ok(Value::from(f as i64)),
                        _ => Err(mismatch(ty, value, "not a whole number")),
                    }
                }
            }
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Value::from(i))
                } else if let Ok(u) = t.parse::<u64>() {
                    Ok(Value::from(u))
                } else {
                    Err(mismatch(ty, value, "the string is not an integer"))
                }
            }
            _ => Err(mismatch(ty, value, "expected an integer")),
        },
        "Boolean" => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(mismatch(ty, value, "expected a boolean or \"true\"/\"false\"")),
        },
        "StringList" => match value {
            Value::Array(a) if a.iter().all(Value::is_string) => Ok(value.clone()),
            Value::Array(_) => Err(mismatch(ty, value, "every element must be a string")),
            _ => Err(mismatch(ty, value, "expected a list of strings")),
        },
        "StringMap" => match value {
            Value::Object(_) => Ok(value.clone()),
            _ => Err(mismatch(ty, value, "expected an object")),
        },
        "MapList" => match value {
            Value::Array(a) if a.iter().all(Value::is_object) => Ok(value.clone()),
            Value::Array(_) => Err(mismatch(ty, value, "every element must be an object")),
            _ => Err(mismatch(ty, value, "expected a list of objects")),
        },
        other => Err(SelectorError::UnknownType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "State": "OPEN",
            "Count": 3,
            "Reservations": [
                {"Instances": [{"InstanceId": "i-1", "State": {"Name": "running"}}]},
                {"Instances": [{"InstanceId": "i-2", "State": {"Name": "stopped"}}, {"InstanceId": "i-3"}]}
            ],
            "odd key": {"a.b": 1},
            "Payload": {"list": [10, 20, 30]}
        })
    }

    fn sel(s: &str) -> Option<Value> {
        select(&doc(), s).unwrap()
    }

    fn err(s: &str) -> SelectorError {
        select(&doc(), s).unwrap_err()
    }

    #[test]
    fn root_selects_the_whole_document() {
        assert_eq!(sel("$"), Some(doc()));
    }

    #[test]
    fn dotted_children() {
        assert_eq!(sel("$.State"), Some(json!("OPEN")));
        assert_eq!(sel("$.Payload.list"), Some(json!([10, 20, 30])));
    }

    #[test]
    fn bracketed_names() {
        assert_eq!(sel("$['State']"), Some(json!("OPEN")));
        assert_eq!(sel("$[\"State\"]"), Some(json!("OPEN")));
        assert_eq!(sel("$['odd key']['a.b']"), Some(json!(1)));
        assert_eq!(sel("$['Payload'].list[1]"), Some(json!(20)));
        assert_eq!(select(&json!({"it's": 5}), "$['it\\'s']").unwrap(), Some(json!(5)));
    }

    #[test]
    fn indexes_including_negative() {
        assert_eq!(sel("$.Payload.list[0]"), Some(json!(10)));
        assert_eq!(sel("$.Payload.list[-1]"), Some(json!(30)));
        assert_eq!(sel("$.Payload.list[-3]"), Some(json!(10)));
        assert_eq!(sel("$.Reservations[1].Instances[0].InstanceId"), Some(json!("i-2")));
    }

    #[test]
    fn wildcards_collect_into_a_list() {
        assert_eq!(sel("$.Reservations[*].Instances[*].InstanceId"), Some(json!(["i-1", "i-2", "i-3"])));
        assert_eq!(sel("$.Reservations[*].Instances[*].State.Name"), Some(json!(["running", "stopped"])));
        assert_eq!(sel("$.Payload.list.*"), Some(json!([10, 20, 30])));
        assert_eq!(sel("$.Reservations[*].Nope"), Some(json!([])));
        assert_eq!(sel("$.State[*]"), Some(json!([])));
    }

    #[test]
    fn missing_paths_are_none() {
        assert_eq!(sel("$.Nope"), None);
        assert_eq!(sel("$.State.Deeper"), None);
        assert_eq!(sel("$.Payload.list[3]"), None);
        assert_eq!(sel("$.Payload.list[-4]"), None);
        assert_eq!(sel("$.State[0]"), None);
        assert_eq!(sel("$.Payload['list']['x']"), None);
        assert_eq!(select(&json!(null), "$.a").unwrap(), None);
    }

    #[test]
    fn null_leaf_is_selected() {
        assert_eq!(select(&json!({"a": null}), "$.a").unwrap(), Some(Value::Null));
    }

    #[test]
    fn recursive_descent_collects_every_match() {
        assert_eq!(sel("$..InstanceId"), Some(json!(["i-1", "i-2", "i-3"])));
        assert_eq!(sel("$.Reservations..Name"), Some(json!(["running", "stopped"])));
        assert_eq!(sel("$..Instances[0].InstanceId"), Some(json!(["i-1", "i-2"])));
        assert_eq!(sel("$..nothing"), Some(json!([])), "deep scan always gives a list");
        assert_eq!(sel("$.Payload..*"), Some(json!([[10, 20, 30], 10, 20, 30])));
        assert!(matches!(err("$.."), SelectorError::Malformed { .. }));
    }

    #[test]
    fn malformed_selectors_are_refused_naming_the_selector() {
        for s in [
            "",
            "State",
            ".State",
            "$State",
            "$.",
            "$.a.",
            "$.a[",
            "$.a[0",
            "$.a]",
            "$.a[0]]",
            "$['a'",
            "$['a]",
            "$[x]",
            "$.a[1.5]",
            "$.a[-]",
            "$.a[]",
            "$.a[0:2]",
            "$.a[?(@.b)]",
            "$.a[99999999999999999999]",
            "$.a b",
        ] {
            match select(&doc(), s) {
                Err(e @ SelectorError::Malformed { .. }) => {
                    assert!(e.to_string().contains(&format!("`{s}`")), "{s}: {e}")
                }
                other => panic!("{s:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(sel("  $.State "), Some(json!("OPEN")));
    }

    #[test]
    fn string_type() {
        assert_eq!(typed_output(&json!("x"), "String").unwrap(), json!("x"));
        assert_eq!(typed_output(&json!(42), "String").unwrap(), json!("42"));
        assert_eq!(typed_output(&json!(1.5), "String").unwrap(), json!("1.5"));
        assert_eq!(typed_output(&json!(true), "String").unwrap(), json!("true"));
        for v in [json!(null), json!([]), json!({})] {
            assert!(matches!(typed_output(&v, "String"), Err(SelectorError::TypeMismatch { .. })));
        }
    }

    #[test]
    fn integer_type() {
        assert_eq!(typed_output(&json!(7), "Integer").unwrap(), json!(7));
        assert_eq!(typed_output(&json!(-7), "Integer").unwrap(), json!(-7));
        assert_eq!(typed_output(&json!(3.0), "Integer").unwrap(), json!(3));
        assert_eq!(typed_output(&json!(" 12 "), "Integer").unwrap(), json!(12));
        assert_eq!(typed_output(&json!("-5"), "Integer").unwrap(), json!(-5));
        for v in [json!(1.5), json!("1.5"), json!("abc"), json!(""), json!(true), json!(null), json!([1]), json!({})] {
            assert!(matches!(typed_output(&v, "Integer"), Err(SelectorError::TypeMismatch { .. })), "{v}");
        }
    }

    #[test]
    fn boolean_type() {
        assert_eq!(typed_output(&json!(true), "Boolean").unwrap(), json!(true));
        assert_eq!(typed_output(&json!("True"), "Boolean").unwrap(), json!(true));
        assert_eq!(typed_output(&json!("FALSE"), "Boolean").unwrap(), json!(false));
        for v in [json!(1), json!("yes"), json!(null), json!([])] {
            assert!(typed_output(&v, "Boolean").is_err(), "{v}");
        }
    }

    #[test]
    fn string_list_type() {
        assert_eq!(typed_output(&json!(["a", "b"]), "StringList").unwrap(), json!(["a", "b"]));
        assert_eq!(typed_output(&json!([]), "StringList").unwrap(), json!([]));
        for v in [json!(["a", 1]), json!("a"), json!({"a": "b"}), json!(null)] {
            assert!(typed_output(&v, "StringList").is_err(), "{v}");
        }
    }

    #[test]
    fn string_map_type() {
        assert_eq!(typed_output(&json!({"a": "b"}), "StringMap").unwrap(), json!({"a": "b"}));
        for v in [json!([]), json!("a"), json!(null)] {
            assert!(typed_output(&v, "StringMap").is_err(), "{v}");
        }
    }

    #[test]
    fn map_list_type() {
        assert_eq!(typed_output(&json!([{"a": 1}, {}]), "MapList").unwrap(), json!([{"a": 1}, {}]));
        assert_eq!(typed_output(&json!([]), "MapList").unwrap(), json!([]));
        for v in [json!([{"a": 1}, "x"]), json!({}), json!(null)] {
            assert!(typed_output(&v, "MapList").is_err(), "{v}");
        }
    }

    #[test]
    fn unknown_type_is_refused() {
        assert_eq!(typed_output(&json!("x"), "Float"), Err(SelectorError::UnknownType("Float".into())));
    }

    #[test]
    fn mismatch_message_names_type_and_value() {
        let e = typed_output(&json!("abc"), "Integer").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("Integer") && msg.contains("\"abc\""), "{msg}");
    }

    proptest! {
        #[test]
        fn dotted_and_bracketed_forms_agree(
            keys in proptest::collection::vec("[A-Za-z_][A-Za-z0-9_]{0,6}", 1..5),
            leaf in any::<i64>(),
        ) {
            let mut doc = json!(leaf);
            for k in keys.iter().rev() {
                doc = json!({ k.clone(): doc });
            }
            let dotted = format!("${}", keys.iter().map(|k| format!(".{k}")).collect::<String>());
            let bracketed = format!("${}", keys.iter().map(|k| format!("['{k}']")).collect::<String>());
            prop_assert_eq!(select(&doc, &dotted).unwrap(), Some(json!(leaf)));
            prop_assert_eq!(select(&doc, &bracketed).unwrap(), Some(json!(leaf)));
        }

        #[test]
        fn indexes_match_slice_access(
            items in proptest::collection::vec(any::<i32>(), 0..10),
            i in -12i64..12,
        ) {
            let doc = json!({ "a": items.clone() });
            let got = select(&doc, &format!("$.a[{i}]")).unwrap();
            let idx = if i < 0 { items.len() as i64 + i } else { i };
            let want = usize::try_from(idx).ok().and_then(|j| items.get(j)).map(|v| json!(v));
            prop_assert_eq!(got, want);
            prop_assert_eq!(select(&doc, "$.a[*]").unwrap(), Some(json!(items)));
        }

        #[test]
        fn integers_round_trip_through_strings(n in any::<i64>()) {
            prop_assert_eq!(typed_output(&json!(n.to_string()), "Integer").unwrap(), json!(n));
            prop_assert_eq!(typed_output(&json!(n), "String").unwrap(), json!(n.to_string()));
        }
    }
}
