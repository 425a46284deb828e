//! Input validation driven by the model: types, required members, lengths, ranges, patterns and
//! enums, reported as AWS reports them.
//!
//! A value of the wrong JSON type is a `SerializationException` (the request could not be read);
//! constraint violations are collected, in model member order, into one `ValidationException`
//! whose message has AWS's form:
//! `1 validation error detected: Value 'x' at 'name' failed to satisfy constraint: Member must ...`.
//! Paths use the member names with a lower-case first letter; list items are `list.N.member`
//! (1-based) and map values `map.KEY`.

use crate::schema::{Kind, SHAPES, ShapeId, shape};
use crate::{ApiError, ErrorCode};
use serde_json::Value;
use std::sync::OnceLock;

enum Matcher {
    Std(regex::Regex),
    Fancy(fancy_regex::Regex),
    /// Neither engine accepts the pattern; it is not enforced (the unit tests prove none is).
    Unsupported,
}

impl Matcher {
    fn compile(pattern: &str) -> Matcher {
        // Java reads `[\w-/]` as a class holding `-`; Rust needs the dash escaped.
        let pattern = &pattern.replace("\\w-", "\\w\\-").replace("\\d-", "\\d\\-").replace("\\s-", "\\s\\-");
        if let Ok(r) = regex::RegexBuilder::new(pattern).size_limit(64 << 20).build() {
            return Matcher::Std(r);
        }
        // Counted repetitions beyond the engine's limit (`.{1,100000}`) become open-ended; the
        // model's min/max length constraints still bound the value.
        let relaxed = relax_large_counts(pattern);
        if let Ok(r) = regex::RegexBuilder::new(&relaxed).size_limit(64 << 20).build() {
            return Matcher::Std(r);
        }
        match fancy_regex::Regex::new(pattern) {
            Ok(r) => Matcher::Fancy(r),
            Err(_) => Matcher::Unsupported,
        }
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Std(r) => r.is_match(s),
            // A pattern too costly to evaluate counts as a mismatch rather than hanging.
            Matcher::Fancy(r) => r.is_match(s).unwrap_or(false),
            Matcher::Unsupported => true,
        }
    }
}

fn relax_large_counts(pattern: &str) -> String {
    static COUNT: OnceLock<regex::Regex> = OnceLock::new();
    let re = COUNT.get_or_init(|| regex::Regex::new(r"\{(\d+),(\d+)\}").expect("static pattern"));
    re.replace_all(pattern, |c: &regex::Captures| {
        let (lo, hi): (u64, u64) = (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0));
        if hi <= 1000 { c[0].to_string() } else { format!("{{{lo},}}") }
    })
    .into_owned()
}

fn matcher(id: ShapeId, pattern: &str) -> &'static Matcher {
    static CACHE: OnceLock<Vec<OnceLock<Matcher>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| (0..SHAPES.len()).map(|_| OnceLock::new()).collect());
    cache[id].get_or_init(|| Matcher::compile(pattern))
}

/// Whether `s` satisfies the pattern of shape `id` (true when the shape has none).
pub fn matches_pattern(id: ShapeId, s: &str) -> bool {
    match shape(id).pattern {
        Some(p) => matcher(id, p).is_match(s),
        None => true,
    }
}

/// Validates a request body against the input shape of an operation.
pub fn validate(input: ShapeId, value: &Value) -> Result<(), ApiError> {
    if !value.is_object() {
        return Err(serialization("the request body must be a JSON object"));
    }
    let mut errors = Vec::new();
    check(input, value, "", &mut errors)?;
    if errors.is_empty() {
        return Ok(());
    }
    let n = errors.len();
    let head =
        if n == 1 { "1 validation error detected: ".to_string() } else { format!("{n} validation errors detected: ") };
    Err(ApiError::new(ErrorCode::ValidationException, head + &errors.join("; ")))
}

fn serialization(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::SerializationException, msg)
}

fn lower_first(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Renders a value the way AWS echoes it in validation messages (Java `toString` style).
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            format!("{{{}}}", map.iter().map(|(k, v)| format!("{k}={}", render(v))).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

fn violation(errors: &mut Vec<String>, id: ShapeId, value: &Value, path: &str, rule: String) {
    let shown = if shape(id).sensitive { "Value '***'".to_string() } else { format!("Value '{}'", render(value)) };
    errors.push(format!("{shown} at '{path}' failed to satisfy constraint: {rule}"));
}

/// What kind of JSON value `v` is, for messages ("a string", "a list", ...).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(expected: &str, v: &Value, path: &str) -> ApiError {
    let at = if path.is_empty() { String::new() } else { format!(" at '{path}'") };
    serialization(format!("Expected {expected}{at} but found {}.", type_name(v)))
}

fn check_len(id: ShapeId, len: usize, value: &Value, path: &str, errors: &mut Vec<String>) {
    let s = shape(id);
    let len = len as i64;
    if let Some(max) = s.max.filter(|m| len > *m) {
        violation(errors, id, value, path, format!("Member must have length less than or equal to {max}"));
    }
    if let Some(min) = s.min.filter(|m| len < *m) {
        violation(errors, id, value, path, format!("Member must have length greater than or equal to {min}"));
    }
}

fn check(id: ShapeId, value: &Value, path: &str, errors: &mut Vec<String>) -> Result<(), ApiError> {
    let s = shape(id);
    match s.kind {
        Kind::Structure(members) => {
            let Some(obj) = value.as_object() else {
                return Err(wrong_type("an object", value, path));
            };
            for m in members {
                let child =
                    if path.is_empty() { lower_first(m.name) } else { format!("{path}.{}", lower_first(m.name)) };
                match obj.get(m.name) {
                    None | Some(Value::Null) => {
                        if m.required {
                            errors.push(format!(
                                "Value null at '{child}' failed to satisfy constraint: Member must not be null"
                            ));
                        }
                    }
                    Some(v) => check(m.shape, v, &child, errors)?,
                }
            }
        }
        Kind::List(member) => {
            let Some(items) = value.as_array() else {
                return Err(wrong_type("a list", value, path));
            };
            check_len(id, items.len(), value, path, errors);
            for (i, item) in items.iter().enumerate() {
                if item.is_null() {
                    return Err(wrong_type("a list item", item, path));
                }
                check(member, item, &format!("{path}.{}.member", i + 1), errors)?;
            }
        }
        Kind::Map(key, val) => {
            let Some(obj) = value.as_object() else {
                return Err(wrong_type("a map", value, path));
            };
            check_len(id, obj.len(), value, path, errors);
            for (k, v) in obj {
                check(key, &Value::String(k.clone()), path, errors)?;
                if v.is_null() {
                    return Err(wrong_type("a map value", v, path));
                }
                check(val, v, &format!("{path}.{k}"), errors)?;
            }
        }
        Kind::String | Kind::Blob => {
            let Some(text) = value.as_str() else {
                return Err(wrong_type("a string", value, path));
            };
            check_len(id, text.chars().count(), value, path, errors);
            if let Some(p) = s.pattern
                && !matcher(id, p).is_match(text)
            {
                violation(errors, id, value, path, format!("Member must satisfy regular expression pattern: {p}"));
            }
            if !s.enum_values.is_empty() && !s.enum_values.contains(&text) {
                violation(
                    errors,
                    id,
                    value,
                    path,
                    format!("Member must satisfy enum value set: [{}]", s.enum_values.join(", ")),
                );
            }
        }
        Kind::Integer | Kind::Long => {
            let n = match value.as_i64() {
                Some(n) if matches!(s.kind, Kind::Long) || i32::try_from(n).is_ok() => n,
                _ => return Err(wrong_type("an integer", value, path)),
            };
            if let Some(max) = s.max.filter(|m| n > *m) {
                violation(errors, id, value, path, format!("Member must have value less than or equal to {max}"));
            }
            if let Some(min) = s.min.filter(|m| n < *m) {
                violation(errors, id, value, path, format!("Member must have value greater than or equal to {min}"));
            }
        }
        Kind::Boolean => {
            if !value.is_boolean() {
                return Err(wrong_type("a boolean", value, path));
            }
        }
        Kind::Timestamp => {
            if !value.is_number() {
                return Err(wrong_type("a timestamp in epoch seconds", value, path));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ids;
    use serde_json::json;

    #[test]
    fn every_model_pattern_compiles() {
        for (i, s) in SHAPES.iter().enumerate() {
            if let Some(p) = s.pattern {
                assert!(!matches!(matcher(i, p), Matcher::Unsupported), "pattern of {} does not compile: {p}", s.name);
            }
        }
    }

    #[test]
    fn required_and_pattern_messages() {
        let err = validate(ids::CreateDocumentRequest, &json!({"Name": "a b"})).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationException);
        assert_eq!(
            err.message(),
            "2 validation errors detected: Value null at 'content' failed to satisfy constraint: Member must not be null; \
             Value 'a b' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.]{3,128}$"
        );
    }

    #[test]
    fn enum_range_and_list_paths() {
        let err = validate(
            ids::ListDocumentsRequest,
            &json!({"MaxResults": 0, "Filters": [{"Key": "Owner", "Value": "Self"}], "DocumentFilterList": [{"key": "Nope", "value": "x"}]}),
        )
        .unwrap_err();
        let msg = err.message();
        assert!(msg.starts_with("2 validation errors detected: "), "{msg}");
        assert!(msg.contains("Value 'Nope' at 'documentFilterList.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [Name, Owner, PlatformTypes, DocumentType]"), "{msg}");
        assert!(msg.contains("Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"), "{msg}");
    }

    #[test]
    fn wrong_types_are_serialization_errors() {
        for body in [json!({"Name": 5, "Content": "x"}), json!({"Name": "abc", "Content": ["x"]}), json!([])] {
            let err = validate(ids::CreateDocumentRequest, &body).unwrap_err();
            assert_eq!(err.code(), ErrorCode::SerializationException, "{body}");
        }
        let err = validate(ids::ListDocumentsRequest, &json!({"MaxResults": 5_000_000_000i64})).unwrap_err();
        assert_eq!(err.code(), ErrorCode::SerializationException);
    }

    #[test]
    fn valid_input_passes() {
        validate(ids::CreateDocumentRequest, &json!({"Name": "my-doc", "Content": "{}", "DocumentType": "Command"}))
            .unwrap();
    }
}
