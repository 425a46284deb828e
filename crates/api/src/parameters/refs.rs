//! Parameter Store references in the parameters of Run Command and Automation (and so of
//! maintenance-window tasks, which run through those): `{{ssm:name}}`, `{{ssm:name:version}}`,
//! `{{ssm:name:label}}` are replaced by the parameter's value when SSM takes the request
//! (SendCommand, StartAutomationExecution, a window task's run), in supplied values and in the
//! document's parameter defaults.
//!
//! * `{{ssm:…}}` reads String and StringList parameters only; a SecureString must be read with
//!   `{{ssm-secure:name}}`, which only Run Command accepts. That reference is checked (the
//!   parameter exists and is a SecureString) and left in place for the node, whose agent reads
//!   it with its own credentials at run time (as the AWS agent does): the plaintext never enters
//!   the command stored in the database.
//! * A reference to a missing parameter, version or label is the operation's parameter error,
//!   naming the reference (never a value).
//! * Replacement is one pass: a value that itself contains `{{…}}` is not expanded again.

use super::{Service, lookup};
use ssmd_model::Caller;
use ssmd_model::shapes::ParameterType;
use std::collections::BTreeMap;

/// Which operation the references are resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    RunCommand,
    Automation,
}

/// A parsed reference inside `{{ }}`.
fn reference(inner: &str) -> Option<(bool, &str)> {
    let inner = inner.trim();
    if let Some(r) = inner.strip_prefix("ssm-secure:") {
        return Some((true, r.trim()));
    }
    inner.strip_prefix("ssm:").map(|r| (false, r.trim()))
}

/// Whether the text holds a Parameter Store reference.
pub(crate) fn has_reference(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { return false };
        if reference(&after[..j]).is_some() {
            return true;
        }
        rest = &after[j + 2..];
    }
    false
}

/// Replaces the references in `text`; `Err` carries the message (no value in it).
pub(crate) async fn resolve_text(svc: &Service, caller: &Caller, text: &str, usage: Use) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let whole = &rest[i..i + 2 + j + 2];
        match reference(&after[..j]) {
            None => out.push_str(whole),
            Some((secure, name)) => {
                let shown = if secure { format!("{{{{ssm-secure:{name}}}}}") } else { format!("{{{{ssm:{name}}}}}") };
                if secure && usage != Use::RunCommand {
                    return Err(format!(
                        "The reference {shown} is not supported here: SecureString parameters can be referenced with ssm-secure only in Run Command parameters."
                    ));
                }
                let (row, _) = lookup(svc, caller, name).await.map_err(|e| match e.code() {
                    ssmd_model::ErrorCode::InternalServerError => e.message().to_string(),
                    _ => format!("The reference {shown} can't be resolved: {}", e.message()),
                })?;
                let is_secure = row.ptype == ParameterType::SecureString.as_str();
                if secure {
                    if !is_secure {
                        return Err(format!(
                            "The reference {shown} names a parameter of type {}; ssm-secure reads SecureString parameters only.",
                            row.ptype
                        ));
                    }
                    // Left for the node's agent to read at run time.
                    out.push_str(whole);
                } else if is_secure {
                    return Err(format!(
                        "The reference {shown} names a SecureString parameter; ssm references read String and StringList parameters only{}.",
                        if usage == Use::RunCommand { " (use {{ssm-secure:name}})" } else { "" }
                    ));
                } else {
                    out.push_str(&row.value);
                }
            }
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves every value of supplied parameters.
pub(crate) async fn resolve_supplied(
    svc: &Service,
    caller: &Caller,
    supplied: &BTreeMap<String, Vec<String>>,
    usage: Use,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for (k, vs) in supplied {
        let mut list = Vec::with_capacity(vs.len());
        for v in vs {
            list.push(resolve_text(svc, caller, v, usage).await?);
        }
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// The document's parameter definitions with the references in their defaults resolved.
pub(crate) async fn resolve_defaults(
    svc: &Service,
    caller: &Caller,
    definitions: &serde_json::Value,
    usage: Use,
) -> Result<serde_json::Value, String> {
    let mut defs = definitions.clone();
    if let Some(map) = defs.as_object_mut() {
        for def in map.values_mut() {
            let Some(default) = def.get_mut("default") else { continue };
            match default {
                serde_json::Value::String(s) if has_reference(s) => {
                    *s = resolve_text(svc, caller, s, usage).await?;
                }
                serde_json::Value::Array(items) => {
                    for it in items.iter_mut() {
                        if let serde_json::Value::String(s) = it
                            && has_reference(s)
                        {
                            *s = resolve_text(svc, caller, s, usage).await?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references() {
        assert!(has_reference("x {{ssm:/a/b}} y"));
        assert!(has_reference("{{ ssm-secure:pw }}"));
        assert!(has_reference("{{ssm:/a:3}}"));
        assert!(!has_reference("{{ other }} {{ssm"));
        assert!(!has_reference("ssm:/x"));
        assert_eq!(reference(" ssm:/a:prod "), Some((false, "/a:prod")));
    }
}
