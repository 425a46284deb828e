//! Opaque, tamper-evident pagination tokens.
//!
//! A token is `base64url(payload) "." base64url(hmac)` where the payload names the account,
//! region and operation it was issued for and the position to resume after. The HMAC key is a
//! server secret kept in the database, so a forged, altered or foreign token (another account,
//! region or operation) is refused with `InvalidNextToken`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Signs and checks NextTokens.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
}

/// The scope a token belongs to: it is valid only for the same account, region and operation.
pub struct Scope<'a> {
    /// Account id.
    pub account: &'a str,
    /// Region.
    pub region: &'a str,
    /// Operation name.
    pub operation: &'a str,
}

impl TokenSigner {
    /// A signer with this secret key.
    pub fn new(key: Vec<u8>) -> Self {
        TokenSigner { key }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes()[..16].to_vec()
    }

    /// Issues a token that resumes after `position`.
    pub fn issue(&self, scope: &Scope, position: Value) -> String {
        let payload = json!({"a": scope.account, "r": scope.region, "o": scope.operation, "p": position}).to_string();
        let sig = self.mac(payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(sig))
    }

    /// Returns the position of a token issued for `scope`, or `None` if the token is forged,
    /// altered or belongs to another scope.
    pub fn open(&self, scope: &Scope, token: &str) -> Option<Value> {
        let (payload_b64, sig_b64) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
        let expected = self.mac(&payload);
        if sig.len() != expected.len() || !constant_time_eq(&sig, &expected) {
            return None;
        }
        let v: Value = serde_json::from_slice(&payload).ok()?;
        if v["a"] != scope.account || v["r"] != scope.region || v["o"] != scope.operation {
            return None;
        }
        Some(v["p"].clone())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let s = TokenSigner::new(b"k".to_vec());
        let scope = Scope { account: "111111111111", region: "us-east-1", operation: "ListDocuments" };
        let t = s.issue(&scope, json!(["doc", 3]));
        assert_eq!(s.open(&scope, &t), Some(json!(["doc", 3])));
        let other = Scope { account: "222222222222", ..scope };
        assert_eq!(s.open(&other, &t), None);
        let mut bad = t.clone();
        bad.insert(2, 'x');
        assert_eq!(s.open(&scope, &bad), None);
        assert_eq!(s.open(&scope, "garbage"), None);
        assert_eq!(TokenSigner::new(b"other".to_vec()).open(&scope, &t), None);
    }
}
