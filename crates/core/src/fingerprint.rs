//! Request fingerprints for ClientToken idempotency: a hash of the request with the token
//! member removed, over a canonical JSON form (object keys sorted), so that the same request
//! sent again matches and any other input does not.

use serde_json::Value;
use sha2::{Digest, Sha256};

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The fingerprint of `request` without its `token_member`.
pub fn of_request(request: &Value, token_member: &str) -> String {
    let mut copy = request.clone();
    if let Some(obj) = copy.as_object_mut() {
        obj.remove(token_member);
    }
    let mut text = String::new();
    canonical(&copy, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn ignores_token_and_key_order() {
        let a = super::of_request(&json!({"ClientToken": "a", "Name": "x", "B": [1, 2]}), "ClientToken");
        let b = super::of_request(&json!({"B": [1, 2], "Name": "x", "ClientToken": "b"}), "ClientToken");
        let c = super::of_request(&json!({"B": [2, 1], "Name": "x"}), "ClientToken");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
