//! Turns a signed request into a `Caller`: parses and checks the SigV4 signature against the
//! access key's secret and maps the key to its account; the region comes from the credential
//! scope.
//!
//! Keys are cached in memory for `KEY_TTL` (a key added or removed with `ssmd keys` takes
//! effect within that time, even in a running server), and derived signing keys are cached per
//! (key, day, region, service), so a request costs two SHA-256 digests and one HMAC.
//!
//! Managed nodes' temporary credentials (keys with a `node_id`) are never cached: each of their
//! requests reads the key row, so deregistering a node (which deletes its keys) locks it out at
//! once, on every replica. Nodes call rarely (a ping every few minutes, a long poll), so the
//! read costs little. Their `Caller` ARN is `arn:aws:ssm:<region>:<account>:managed-instance/<id>`.

use http::HeaderMap;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_sigv4 as sigv4;
use ssmd_store::{AccessKey, Store};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a looked-up key (or its absence) is trusted before it is read again.
pub const KEY_TTL: Duration = Duration::from_secs(5);
const CACHE_LIMIT: usize = 10_000;

/// The service name requests must be scoped to.
pub const SERVICE: &str = "ssm";

/// Verifies requests.
pub struct Authenticator {
    store: Store,
    /// With `--accept-any-credentials`: the account unknown keys map to.
    accept_any: Option<String>,
    keys: Mutex<HashMap<String, (Instant, Option<AccessKey>)>>,
    signing: Mutex<HashMap<String, (String, [u8; 32])>>,
}

/// The parts of a request the signature covers.
pub struct RequestParts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// Raw query string.
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
}

/// The SSM error for a signature failure.
pub fn sig_error(e: sigv4::SigError) -> ApiError {
    let code = match e.kind {
        sigv4::SigErrorKind::Missing => ErrorCode::MissingAuthenticationTokenException,
        sigv4::SigErrorKind::Incomplete => ErrorCode::IncompleteSignatureException,
        sigv4::SigErrorKind::Invalid => ErrorCode::InvalidSignatureException,
    };
    ApiError::new(code, e.message)
}

fn unrecognized() -> ApiError {
    ApiError::new(ErrorCode::UnrecognizedClientException, "The security token included in the request is invalid.")
}

impl Authenticator {
    /// An authenticator over the store's keys.
    pub fn new(store: Store, accept_any: Option<String>) -> Self {
        Authenticator { store, accept_any, keys: Mutex::new(HashMap::new()), signing: Mutex::new(HashMap::new()) }
    }

    async fn key(&self, id: &str) -> Result<Option<AccessKey>, ApiError> {
        if let Some((at, k)) = self.keys.lock().unwrap().get(id)
            && at.elapsed() < KEY_TTL
        {
            return Ok(k.clone());
        }
        let k = self.store.access_key(id).await.map_err(|e| ApiError::internal(format!("reading access key: {e}")))?;
        if k.as_ref().is_some_and(|k| k.node_id.is_some()) {
            return Ok(k);
        }
        let mut cache = self.keys.lock().unwrap();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id.to_string(), (Instant::now(), k.clone()));
        Ok(k)
    }

    fn signing_key(&self, key: &AccessKey, auth: &sigv4::Authorization) -> [u8; 32] {
        let id = format!("{}/{}/{}/{}", key.access_key_id, auth.date, auth.region, auth.service);
        let mut cache = self.signing.lock().unwrap();
        if let Some((secret, k)) = cache.get(&id)
            && *secret == key.secret_access_key
        {
            return *k;
        }
        let k = sigv4::signing_key(&key.secret_access_key, &auth.date, &auth.region, &auth.service);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, (key.secret_access_key.clone(), k));
        k
    }

    /// Authenticates an SSM request at `now_ms`.
    pub async fn authenticate(&self, req: &RequestParts<'_>, now_ms: i64) -> Result<Caller, ApiError> {
        self.authenticate_for(req, now_ms, SERVICE).await
    }

    /// Authenticates a request at `now_ms` whose signature must be scoped to `service`.
    pub async fn authenticate_for(
        &self,
        req: &RequestParts<'_>,
        now_ms: i64,
        service: &str,
    ) -> Result<Caller, ApiError> {
        let auth = sigv4::parse(req.headers).map_err(sig_error)?;
        if auth.service != service {
            return Err(ApiError::new(
                ErrorCode::InvalidSignatureException,
                format!("Credential should be scoped to correct service: '{service}'."),
            ));
        }
        sigv4::check_time(&auth, now_ms.div_euclid(1000)).map_err(sig_error)?;
        let key = self.key(&auth.access_key_id).await?;
        let (account, user, node) = match (key, &self.accept_any) {
            (Some(key), Some(_)) => (key.account, key.user_name, key.node_id),
            (None, Some(default_account)) => (default_account.clone(), None, None),
            (None, None) => return Err(unrecognized()),
            (Some(key), None) => {
                match (&key.session_token, &auth.security_token) {
                    (None, None) => {}
                    (Some(expected), Some(sent)) if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) => {
                        if key.expires_ms.is_some_and(|e| e <= now_ms) {
                            return Err(ApiError::new(
                                ErrorCode::ExpiredTokenException,
                                "The security token included in the request is expired",
                            ));
                        }
                    }
                    _ => return Err(unrecognized()),
                }
                let signing_key = self.signing_key(&key, &auth);
                sigv4::verify(&auth, &signing_key, req.method, req.path, req.query, req.headers, req.body)
                    .map_err(sig_error)?;
                (key.account, key.user_name, key.node_id)
            }
        };
        Ok(Caller {
            arn: match (node, user) {
                (Some(node), _) => ssmd_api::nodes::node_arn(&auth.region, &account, &node),
                (None, Some(u)) => ssmd_core::arn::user(&account, &u),
                (None, None) => ssmd_core::arn::root_user(&account),
            },
            account,
            region: auth.region,
            access_key_id: auth.access_key_id,
        })
    }
}
