//! `{{ssm-secure:name}}` references in a command's parameters, resolved by the node when it runs
//! the command, with its own credentials (`GetParameters` with decryption), as the AWS agent
//! does: the service leaves them in the payload, so the plaintext never enters a stored command.
//! The values only reach the document being run; they are never logged nor put in a reply.

use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

/// The references in one string: (the whole `{{…}}` text, the name with any selector).
fn refs_in(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let Some(j) = after.find(CLOSE) else { break };
        if let Some(name) = after[..j].trim().strip_prefix("ssm-secure:") {
            out.push((rest[i..i + OPEN.len() + j + CLOSE.len()].to_string(), name.trim().to_string()));
        }
        rest = &after[j + CLOSE.len()..];
    }
    out
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The names (with selectors) the parameters reference with `ssm-secure`.
pub fn referenced(params: &Map<String, Value>) -> BTreeSet<String> {
    params.values().flat_map(strings).flat_map(refs_in).map(|(_, n)| n).collect()
}

fn replace(v: &Value, values: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (whole, name) in refs_in(s) {
                if let Some(val) = values.get(&name) {
                    out = out.replace(&whole, val);
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| replace(i, values)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, i)| (k.clone(), replace(i, values))).collect()),
        other => other.clone(),
    }
}

/// The parameters with every `ssm-secure` reference replaced by its value. `fetch` calls
/// `GetParameters` with a request body and returns the response. A reference the service can't
/// resolve is an error naming it (never a value).
pub fn resolve(
    params: &Map<String, Value>,
    mut fetch: impl FnMut(&Value) -> Result<Value, String>,
) -> Result<Map<String, Value>, String> {
    let names: Vec<String> = referenced(params).into_iter().collect();
    if names.is_empty() {
        return Ok(params.clone());
    }
    let mut values = HashMap::new();
    for chunk in names.chunks(10) {
        let resp = fetch(&json!({"Names": chunk, "WithDecryption": true}))
            .map_err(|e| format!("failed to resolve ssm-secure parameter references: {e}"))?;
        if let Some(bad) = resp["InvalidParameters"].as_array().and_then(|a| a.first()).and_then(Value::as_str) {
            return Err(format!(
                "failed to resolve ssm-secure parameter reference {{{{ssm-secure:{bad}}}}}: ParameterNotFound"
            ));
        }
        for p in resp["Parameters"].as_array().into_iter().flatten() {
            let name = p["Name"].as_str().unwrap_or_default();
            let key = format!("{name}{}", p["Selector"].as_str().unwrap_or_default());
            if p["Type"] != "SecureString" {
                return Err(format!("{{{{ssm-secure:{key}}}}} does not name a SecureString parameter"));
            }
            values.insert(key, p["Value"].as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(missing) = names.iter().find(|n| !values.contains_key(*n)) {
        return Err(format!(
            "failed to resolve ssm-secure parameter reference {{{{ssm-secure:{missing}}}}}: ParameterNotFound"
        ));
    }
    Ok(params.iter().map(|(k, v)| (k.clone(), replace(v, &values))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_resolved_and_failures_name_them() {
        let p: Map<String, Value> = serde_json::from_value(json!({
            "commands": ["login {{ssm-secure:/db/pw}} {{ ssm-secure:/db/pw:2 }}", "echo {{ other }}"],
            "dir": "/tmp"
        }))
        .unwrap();
        assert_eq!(referenced(&p).into_iter().collect::<Vec<_>>(), vec!["/db/pw", "/db/pw:2"]);
        let mut asked = Vec::new();
        let out = resolve(&p, |body| {
            asked.push(body.clone());
            Ok(json!({"Parameters": [
                {"Name": "/db/pw", "Type": "SecureString", "Value": "s3cret"},
                {"Name": "/db/pw", "Selector": ":2", "Type": "SecureString", "Value": "old"}
            ], "InvalidParameters": []}))
        })
        .unwrap();
        assert_eq!(out["commands"], json!(["login s3cret old", "echo {{ other }}"]));
        assert_eq!(asked, vec![json!({"Names": ["/db/pw", "/db/pw:2"], "WithDecryption": true})]);

        let err = resolve(&p, |_| Ok(json!({"Parameters": [], "InvalidParameters": ["/db/pw"]}))).unwrap_err();
        assert!(err.contains("{{ssm-secure:/db/pw}}") && err.contains("ParameterNotFound"), "{err}");
        let plain: Map<String, Value> = serde_json::from_value(json!({"a": "no refs"})).unwrap();
        assert_eq!(resolve(&plain, |_| panic!("no call")).unwrap(), plain);
    }
}
