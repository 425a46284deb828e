//! The node's authenticated session: temporary credentials from
//! `RequestManagedInstanceRoleToken` (RSA-signed), kept in the state directory and renewed when
//! less than a quarter of their lifetime is left, and ordinary SigV4 calls made with them. A call
//! refused for its credentials (`UnrecognizedClientException`, `ExpiredTokenException`) renews
//! them and is tried once more.
//!
//! When the token answer says `UpdateKeyPair`, the key pair is rotated: the new pair is written
//! next to the old (`private_key.next`), `UpdateManagedInstancePublicKey` is signed with the old
//! key, and the new key replaces the old once the service has it. A `.next` key found at start-up
//! (a rotation interrupted after the service took it) is tried when the current key is refused.

use crate::http::{Auth, CallError, Client};
use crate::state::{self, Registration, StateDir};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::Duration;

const NEXT_PRIVATE_KEY: &str = "private_key.next";
const NEXT_PUBLIC_KEY: &str = "public_key.next";

/// Temporary credentials as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: String,
    /// When they were received, epoch seconds.
    pub issued_at: i64,
    /// When they expire, epoch seconds.
    pub expires_at: i64,
}

impl Credentials {
    /// Whether they should be renewed at `now` (epoch seconds): less than a quarter of their
    /// lifetime (and at least a minute) left.
    pub fn needs_refresh(&self, now: i64) -> bool {
        let lifetime = (self.expires_at - self.issued_at).max(0);
        now >= self.expires_at - (lifetime / 4).max(60)
    }
}

/// The node's session with the service.
pub struct Session {
    client: Client,
    state: StateDir,
    registration: Registration,
    fingerprint: String,
    private_key: Mutex<String>,
    creds: Mutex<Option<Credentials>>,
}

impl Session {
    /// Opens the session of the node registered in `state`.
    pub fn open(state: StateDir) -> Result<Session, String> {
        let registration = state.registration()?.ok_or_else(|| {
            format!(
                "not registered: no {} (run `ssmd-agent register` first)",
                state.path(state::REGISTRATION).display()
            )
        })?;
        let read = |name: &str| -> Result<String, String> {
            state
                .read_text(name)
                .map_err(|e| format!("cannot read {}: {e}", state.path(name).display()))?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("the registration is incomplete: {} is missing", state.path(name).display()))
        };
        let private_key = read(state::PRIVATE_KEY)?;
        let fingerprint = read(state::FINGERPRINT)?;
        let creds =
            state.read(state::CREDENTIALS).ok().flatten().and_then(|b| serde_json::from_slice::<Credentials>(&b).ok());
        let client = Client::new(&registration.endpoint, &registration.region)?;
        Ok(Session {
            client,
            state,
            registration,
            fingerprint,
            private_key: Mutex::new(private_key),
            creds: Mutex::new(creds),
        })
    }

    /// The registration.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The managed instance id.
    pub fn instance_id(&self) -> &str {
        &self.registration.instance_id
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Calls `target` with the temporary credentials (default time limit).
    pub fn call(&self, target: &str, body: &Value) -> Result<Value, CallError> {
        self.call_with_timeout(target, body, None)
    }

    /// Calls `target` with the temporary credentials; renews them and tries once more if the
    /// service refuses them.
    pub fn call_with_timeout(&self, target: &str, body: &Value, timeout: Option<Duration>) -> Result<Value, CallError> {
        let creds = self.credentials(false)?;
        match self.call_with(&creds, target, body, timeout) {
            Err(e) if e.is_auth() => {
                crate::info!("{target}: the service refused the credentials ({e}); renewing them");
                let creds = self.credentials(true)?;
                self.call_with(&creds, target, body, timeout)
            }
            other => other,
        }
    }

    fn call_with(
        &self,
        c: &Credentials,
        target: &str,
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, CallError> {
        let auth = Auth::Hmac { key: &c.access_key_id, secret: &c.secret_access_key, token: &c.session_token };
        self.client.call(target, body, auth, timeout)
    }

    /// The current credentials, renewed first if they are old (or `force`).
    pub fn credentials(&self, force: bool) -> Result<Credentials, CallError> {
        let mut guard = self.creds.lock().unwrap();
        if let Some(c) = guard.as_ref()
            && !force
            && !c.needs_refresh(crate::clock::now_secs())
        {
            return Ok(c.clone());
        }
        let fresh = self.request_token()?;
        if let Err(e) = self.state.write(state::CREDENTIALS, &serde_json::to_vec(&fresh).unwrap_or_default()) {
            crate::warn!("cannot store the credentials: {e}");
        }
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    fn rsa_call(&self, private_key: &str, op: &str, body: &Value) -> Result<Value, CallError> {
        let auth = Auth::Rsa { instance_id: self.instance_id(), private_key };
        self.client.call(&format!("AmazonSSM.{op}"), body, auth, None)
    }

    /// `RequestManagedInstanceRoleToken`, rotating the key pair when asked to.
    fn request_token(&self) -> Result<Credentials, CallError> {
        self.request_token_rotating(true)
    }

    fn request_token_rotating(&self, may_rotate: bool) -> Result<Credentials, CallError> {
        let body = json!({ "Fingerprint": self.fingerprint });
        let key = self.private_key.lock().unwrap().clone();
        let answer = match self.rsa_call(&key, "RequestManagedInstanceRoleToken", &body) {
            Err(e) if e.kind() == Some("InvalidSignatureException") => match self.adopt_next_key()? {
                Some(next) => {
                    crate::info!("the service refused the current key; trying the key of an interrupted rotation");
                    let a = self.rsa_call(&next, "RequestManagedInstanceRoleToken", &body)?;
                    self.promote_next_key(next);
                    a
                }
                None => return Err(e),
            },
            other => other?,
        };
        let creds = parse_token(&answer)?;
        crate::info!("received credentials {} (expire at {})", creds.access_key_id, creds.expires_at);
        if answer["UpdateKeyPair"].as_bool() == Some(true) && may_rotate {
            match self.rotate_key() {
                Ok(()) => return self.request_token_rotating(false),
                Err(e) => crate::warn!("key rotation failed, keeping the current key: {e}"),
            }
        }
        Ok(creds)
    }

    fn adopt_next_key(&self) -> Result<Option<String>, CallError> {
        Ok(self.state.read_text(NEXT_PRIVATE_KEY).ok().flatten().filter(|k| !k.is_empty()))
    }

    fn promote_next_key(&self, next: String) {
        let public = self.state.read_text(NEXT_PUBLIC_KEY).ok().flatten().unwrap_or_default();
        if let Err(e) = self
            .state
            .write(state::PRIVATE_KEY, next.as_bytes())
            .and_then(|_| self.state.write(state::PUBLIC_KEY, public.as_bytes()))
        {
            crate::error!("cannot store the rotated key: {e}");
        }
        let _ = self.state.remove(NEXT_PRIVATE_KEY);
        let _ = self.state.remove(NEXT_PUBLIC_KEY);
        *self.private_key.lock().unwrap() = next;
    }

    /// Rotates the key pair (`UpdateManagedInstancePublicKey`, signed with the old key).
    fn rotate_key(&self) -> Result<(), String> {
        crate::info!("the service asks for a new key pair; rotating");
        let pair = ssmd_nodeauth::generate_key_pair().map_err(|e| e.to_string())?;
        self.state
            .write(NEXT_PRIVATE_KEY, pair.private_key.as_bytes())
            .and_then(|_| self.state.write(NEXT_PUBLIC_KEY, pair.public_key.as_bytes()))
            .map_err(|e| format!("cannot store the new key: {e}"))?;
        let old = self.private_key.lock().unwrap().clone();
        let body = json!({ "NewPublicKey": pair.public_key, "NewPublicKeyType": ssmd_nodeauth::PUBLIC_KEY_TYPE });
        match self.rsa_call(&old, "UpdateManagedInstancePublicKey", &body) {
            Ok(_) => {
                self.promote_next_key(pair.private_key);
                crate::info!("key pair rotated");
                Ok(())
            }
            Err(e) => {
                // Keep the .next files only if the service may have taken the key.
                if !e.is_retryable() {
                    let _ = self.state.remove(NEXT_PRIVATE_KEY);
                    let _ = self.state.remove(NEXT_PUBLIC_KEY);
                }
                Err(e.to_string())
            }
        }
    }
}

/// Reads a `RequestManagedInstanceRoleToken` answer.
pub fn parse_token(answer: &Value) -> Result<Credentials, CallError> {
    let s = |k: &str| answer[k].as_str().filter(|v| !v.is_empty()).map(str::to_string);
    let bad = || CallError::Transport(format!("the token answer is incomplete: {answer}"));
    let expires = answer["TokenExpirationDate"]
        .as_f64()
        .or_else(|| answer["TokenExpirationDate"].as_str().and_then(|v| v.parse().ok()))
        .ok_or_else(bad)?;
    Ok(Credentials {
        access_key_id: s("AccessKeyId").ok_or_else(bad)?,
        secret_access_key: s("SecretAccessKey").ok_or_else(bad)?,
        session_token: s("SessionToken").unwrap_or_default(),
        issued_at: crate::clock::now_secs(),
        expires_at: expires as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_when_a_quarter_is_left() {
        let c = Credentials {
            access_key_id: "A".into(),
            secret_access_key: "S".into(),
            session_token: "T".into(),
            issued_at: 1000,
            expires_at: 1000 + 3600,
        };
        assert!(!c.needs_refresh(1000));
        assert!(!c.needs_refresh(1000 + 2699));
        assert!(c.needs_refresh(1000 + 2700));
        assert!(c.needs_refresh(1000 + 4000));
        let short = Credentials { expires_at: 1000 + 100, ..c };
        assert!(short.needs_refresh(1000 + 40), "at least a minute of margin");
    }

    #[test]
    fn token_answers() {
        let a = json!({"AccessKeyId":"ASIA1","SecretAccessKey":"s","SessionToken":"t","TokenExpirationDate":1.8e9,
            "UpdateKeyPair":false});
        let c = parse_token(&a).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.expires_at), ("ASIA1", 1_800_000_000));
        assert!(parse_token(&json!({"AccessKeyId":"A"})).is_err());
    }
}
