//! Document parameters: the values the command was sent with, completed by the document's
//! defaults, substituted into `{{ name }}` placeholders (whitespace inside the braces optional)
//! throughout the document's steps.
//!
//! A string that is exactly one placeholder takes the parameter's value whatever its type — so
//! `"runCommand": "{{ commands }}"` becomes the list of command lines. A placeholder inside a
//! longer string is replaced by the value's text (a list of one string by that string, other
//! lists by their JSON). Unknown names, and `{{ssm:…}}` references, are left as they are. A
//! one-element list sent for a parameter the document declares as `String` is that string.

use serde_json::{Map, Value};

/// The parameter values: `sent`, then the defaults of `document.parameters`.
pub fn resolve(sent: &Map<String, Value>, document: &Value) -> Map<String, Value> {
    let declared = document.get("parameters").and_then(Value::as_object);
    let mut out = Map::new();
    if let Some(decl) = declared {
        for (name, d) in decl {
            if let Some(default) = d.get("default") {
                out.insert(name.clone(), default.clone());
            }
        }
    }
    for (name, v) in sent {
        out.insert(name.clone(), v.clone());
    }
    if let Some(decl) = declared {
        for (name, d) in decl {
            let is_string = d.get("type").and_then(Value::as_str) == Some("String");
            if let Some(Value::Array(items)) = out.get(name)
                && is_string
                && items.len() == 1
                && items[0].is_string()
            {
                let one = items[0].clone();
                out.insert(name.clone(), one);
            }
        }
    }
    out
}

/// The name inside a `{{ … }}` placeholder body, if it is a parameter name.
fn placeholder_name(inner: &str) -> Option<&str> {
    let n = inner.trim();
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(n)
}

/// The text a value takes inside a longer string.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => items[0].as_str().unwrap_or("").into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Substitutes placeholders in one string.
pub fn substitute_str(s: &str, params: &Map<String, Value>) -> Value {
    let t = s.trim();
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
        && let Some(v) = placeholder_name(inner).and_then(|n| params.get(n))
    {
        return v.clone();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = &after[..end];
                match placeholder_name(inner).and_then(|n| params.get(n)) {
                    Some(v) => out.push_str(&as_text(v)),
                    None => {
                        out.push_str("{{");
                        out.push_str(inner);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

/// Substitutes placeholders in every string of `v` (object keys are left alone).
pub fn substitute(v: &Value, params: &Map<String, Value>) -> Value {
    match v {
        Value::String(s) => substitute_str(s, params),
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, params)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, i)| (k.clone(), substitute(i, params))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn whole_placeholders_take_the_value() {
        let p = map(json!({"commands": ["echo a", "echo b"], "dir": "/tmp", "n": 5}));
        assert_eq!(substitute_str("{{ commands }}", &p), json!(["echo a", "echo b"]));
        assert_eq!(substitute_str("{{commands}}", &p), json!(["echo a", "echo b"]));
        assert_eq!(substitute_str("  {{   dir }} ", &p), json!("/tmp"));
        assert_eq!(substitute_str("{{ n }}", &p), json!(5));
    }

    #[test]
    fn embedded_placeholders_become_text() {
        let p = map(json!({"name": "world", "one": ["x"], "many": ["a", "b"], "n": 5}));
        assert_eq!(substitute_str("hello {{ name }}!", &p), json!("hello world!"));
        assert_eq!(substitute_str("{{name}}{{name}}", &p), json!("worldworld"));
        assert_eq!(substitute_str("[{{ one }}] [{{ many }}] {{n}}", &p), json!(r#"[x] [["a","b"]] 5"#));
        assert_eq!(
            substitute_str("{{ missing }} {{ssm:/a/b}} {{ name", &p),
            json!("{{ missing }} {{ssm:/a/b}} {{ name")
        );
        assert_eq!(substitute_str("{{ name }} and {{ missing }}", &p), json!("world and {{ missing }}"));
        assert_eq!(substitute_str("héllo {{name}} ✓", &p), json!("héllo world ✓"));
    }

    #[test]
    fn defaults_and_declared_strings() {
        let doc = json!({"parameters": {
            "commands": {"type": "StringList"},
            "workingDirectory": {"type": "String", "default": ""},
            "executionTimeout": {"type": "String", "default": "3600"},
            "greeting": {"type": "String", "default": "hi"}}});
        let sent = map(json!({"commands": ["ls"], "workingDirectory": ["/srv"], "executionTimeout": "60"}));
        let p = resolve(&sent, &doc);
        assert_eq!(
            Value::Object(p.clone()),
            json!({"commands": ["ls"], "workingDirectory": "/srv",
            "executionTimeout": "60", "greeting": "hi"})
        );
        let steps = json!([{"runCommand": "{{ commands }}", "workingDirectory": "{{ workingDirectory }}",
            "timeoutSeconds": "{{executionTimeout}}", "note": "{{ greeting }} there", "keep": 7}]);
        assert_eq!(
            substitute(&steps, &p),
            json!([{"runCommand": ["ls"], "workingDirectory": "/srv",
            "timeoutSeconds": "60", "note": "hi there", "keep": 7}])
        );
    }
}
