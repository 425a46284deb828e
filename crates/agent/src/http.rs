//! AWS JSON 1.1 calls to the service: `POST /` with `Content-Type: application/x-amz-json-1.1`
//! and `X-Amz-Target: <Prefix>.<Op>`, signed one of the three ways the AWS agent signs:
//!
//! * anonymous (`RegisterManagedInstance`);
//! * "SigV4 with an RSA key" (`RequestManagedInstanceRoleToken`, `UpdateManagedInstancePublicKey`):
//!   SigV4's string to sign with the instance id as access key id, `Signature=` base64 RSA-PSS;
//! * HMAC SigV4 with the temporary credentials and `X-Amz-Security-Token` (everything else).
//!
//! The signing service is `ssm` for `AmazonSSM.*` and `ec2messages` for
//! `EC2WindowsMessageDeliveryService.*`. Errors come back as `{"__type", "message"}`. HTTPS
//! trusts the system's CA bundle (as the AWS agent does), or Mozilla's roots if there is none.
//!
//! Clock skew is corrected as AWS SDKs do: a signature refused as expired or not yet current,
//! on a response with a `Date` header, sets the offset between the service's clock and this
//! node's, and the call is tried once more with it.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The JSON 1.1 content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The default time limit of a call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest response body read.
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// How a call is signed.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// No signature.
    Anonymous,
    /// SigV4 with the node's RSA key: instance id and base64 PKCS#1 private key.
    Rsa {
        /// The managed instance id (the access key id of the signature).
        instance_id: &'a str,
        /// The base64 PKCS#1 private key.
        private_key: &'a str,
    },
    /// HMAC SigV4 with temporary credentials.
    Hmac {
        /// Access key id.
        key: &'a str,
        /// Secret access key.
        secret: &'a str,
        /// Session token (`X-Amz-Security-Token`), if any.
        token: &'a str,
    },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer: connection refused, reset, timed out, unreadable response.
    Transport(String),
    /// The service answered with an error.
    Service {
        /// HTTP status.
        status: u16,
        /// The error code (`__type` without any namespace).
        kind: String,
        /// The message.
        message: String,
    },
}

impl CallError {
    /// Whether trying again later may work: no answer, a 5xx, or throttling.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Service { status, kind, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(kind.as_str(), "ThrottlingException" | "TooManyUpdates" | "RequestLimitExceeded")
            }
        }
    }

    /// Whether the temporary credentials were refused (they are renewed, and the call retried).
    pub fn is_auth(&self) -> bool {
        matches!(self, CallError::Service { kind, .. }
            if matches!(kind.as_str(), "UnrecognizedClientException" | "ExpiredTokenException" | "InvalidClientTokenId"))
    }

    /// The error code, if the service answered.
    pub fn kind(&self) -> Option<&str> {
        match self {
            CallError::Service { kind, .. } => Some(kind),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(m) => write!(f, "no answer from the service: {m}"),
            CallError::Service { status, kind, message } => write!(f, "{kind} (HTTP {status}): {message}"),
        }
    }
}

/// A service endpoint: `http://host[:port]` or `https://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL requests are posted to (scheme, authority, `/`).
    pub url: String,
    /// The `Host` header value (and signed host).
    pub host: String,
}

impl Endpoint {
    /// Parses an endpoint URL; a path, if any, is ignored (requests go to `/`).
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let (scheme, rest) = s
            .split_once("://")
            .filter(|(sc, _)| matches!(sc.to_ascii_lowercase().as_str(), "http" | "https"))
            .ok_or_else(|| format!("the endpoint {s:?} is not an http:// or https:// URL"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
            return Err(format!("the endpoint {s:?} has no valid host"));
        }
        let scheme = scheme.to_ascii_lowercase();
        Ok(Endpoint { url: format!("{scheme}://{authority}/"), host: authority.to_string() })
    }

    /// The host name or address alone (no port, no brackets).
    pub fn hostname(&self) -> &str {
        let h = &self.host;
        if let Some(rest) = h.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        h.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(h, |(n, _)| n)
    }
}

/// The signing service of a target prefix.
pub fn service_of(target: &str) -> &'static str {
    if target.starts_with("EC2WindowsMessageDeliveryService.") { "ec2messages" } else { "ssm" }
}

/// A client of one endpoint and region.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    region: String,
    /// The service's clock minus this node's, ms.
    skew_ms: Arc<AtomicI64>,
}

/// Epoch ms of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = f.as_slice() else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = MONTHS.iter().position(|x| x == month)? + 1;
    let t: String = time.chars().filter(|c| *c != ':').collect();
    let amz = format!("{year:0>4}{m:02}{day:0>2}T{t}Z");
    ssmd_sigv4::parse_amz_date(&amz).map(|secs| secs * 1000)
}

fn is_clock_error(e: &CallError) -> bool {
    match e {
        CallError::Service { kind, message, .. } => {
            kind == "RequestTimeTooSkewed"
                || (kind == "InvalidSignatureException"
                    && (message.contains("Signature expired") || message.contains("not yet current")))
        }
        CallError::Transport(_) => false,
    }
}

fn tls_roots() -> ureq::tls::RootCerts {
    let mut files: Vec<std::path::PathBuf> =
        std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from).into_iter().collect();
    files.extend(
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
            .map(std::path::PathBuf::from),
    );
    for f in files {
        if let Ok(pem) = std::fs::read(&f) {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if !certs.is_empty() {
                return ureq::tls::RootCerts::new_with_certs(&certs);
            }
        }
    }
    ureq::tls::RootCerts::WebPki
}

impl Client {
    /// A client for `endpoint` (a URL) in `region`.
    pub fn new(endpoint: &str, region: &str) -> Result<Client, String> {
        let endpoint = Endpoint::parse(endpoint)?;
        let tls = if endpoint.url.starts_with("https") {
            ureq::tls::TlsConfig::builder().root_certs(tls_roots()).build()
        } else {
            ureq::tls::TlsConfig::default()
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(DEFAULT_TIMEOUT))
            .timeout_connect(Some(Duration::from_secs(10)))
            .user_agent(format!("{}/{}", crate::AGENT_NAME, crate::AGENT_VERSION))
            .tls_config(tls)
            .build()
            .into();
        Ok(Client { agent, endpoint, region: region.to_string(), skew_ms: Arc::new(AtomicI64::new(0)) })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The current clock correction, ms (the service's clock minus this node's).
    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::SeqCst)
    }

    /// Calls `target` (`Prefix.Op`) with `body`; `timeout` overrides the default 20 s.
    pub fn call(
        &self,
        target: &str,
        body: &Value,
        auth: Auth<'_>,
        timeout: Option<Duration>,
    ) -> Result<Value, CallError> {
        match self.call_once(target, body, auth, timeout) {
            Err((e, Some(server_ms))) if is_clock_error(&e) => {
                let skew = server_ms - crate::clock::now_ms();
                self.skew_ms.store(skew, Ordering::SeqCst);
                crate::warn!("the service's clock is {:+} s from this node's; signing with its time", skew / 1000);
                self.call_once(target, body, auth, timeout).map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// One attempt; an error comes with the service's `Date`, if it sent one.
    fn call_once(
        &self,
        target: &str,
        body: &Value,
        auth: Auth<'_>,
        timeout: Option<Duration>,
    ) -> Result<Value, (CallError, Option<i64>)> {
        let transport = |m: String| (CallError::Transport(m), None);
        let body = serde_json::to_vec(body).expect("JSON values serialize");
        let amz_date = crate::clock::amz_date(crate::clock::now_ms() + self.skew_ms());
        let mut h = http::HeaderMap::new();
        let hv = |s: &str| http::HeaderValue::from_str(s).map_err(|_| transport(format!("bad header {s:?}")));
        h.insert("host", hv(&self.endpoint.host)?);
        h.insert("content-type", hv(CONTENT_TYPE)?);
        h.insert("x-amz-date", hv(&amz_date)?);
        h.insert("x-amz-target", hv(target)?);
        let service = service_of(target);
        let mut unsigned: Vec<(&str, String)> = Vec::new();
        match auth {
            Auth::Anonymous => {}
            Auth::Rsa { instance_id, private_key } => {
                let mut failure = None;
                let a = ssmd_sigv4::sign_with(
                    instance_id,
                    &self.region,
                    service,
                    &amz_date,
                    "POST",
                    "/",
                    &h,
                    &body,
                    |sts| match ssmd_nodeauth::sign_pss(private_key, sts.as_bytes()) {
                        Ok(sig) => sig,
                        Err(e) => {
                            failure = Some(e.to_string());
                            String::new()
                        }
                    },
                );
                if let Some(e) = failure {
                    return Err(transport(format!("cannot sign with the node's key: {e}")));
                }
                unsigned.push(("authorization", a));
                // The AWS agent sends the body hash, unsigned, on these calls.
                unsigned.push(("x-amz-content-sha256", sha256_hex(&body)));
            }
            Auth::Hmac { key, secret, token } => {
                if !token.is_empty() {
                    h.insert("x-amz-security-token", hv(token)?);
                }
                let a = ssmd_sigv4::sign(key, secret, &self.region, service, &amz_date, "POST", "/", &h, &body);
                unsigned.push(("authorization", a));
            }
        }
        let mut req = self.agent.post(&self.endpoint.url);
        for (k, v) in &h {
            req = req.header(k.as_str(), v.to_str().unwrap_or_default());
        }
        for (k, v) in &unsigned {
            req = req.header(*k, v.as_str());
        }
        if let Some(t) = timeout {
            req = req.config().timeout_global(Some(t)).build();
        }
        let mut resp = req.send(&body[..]).map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (error_type, date) = (header("x-amzn-errortype"), header("date"));
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| transport(format!("reading the response: {e}")))?;
        decode(status, error_type.as_deref(), &bytes).map_err(|e| (e, date.as_deref().and_then(parse_http_date)))
    }
}

/// Turns a response into the result of a call.
pub fn decode(status: u16, error_type: Option<&str>, body: &[u8]) -> Result<Value, CallError> {
    let json: Option<Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Some(Value::Object(Default::default()))
    } else {
        serde_json::from_slice(body).ok()
    };
    if (200..300).contains(&status) {
        return json.ok_or_else(|| CallError::Transport(format!("HTTP {status} with a body that is not JSON")));
    }
    let j = json.unwrap_or(Value::Null);
    let raw_kind = j["__type"].as_str().or(j["code"].as_str()).or(error_type).unwrap_or("");
    // `__type` may be namespaced (`com.amazonaws.ssm#InvalidInstanceId`) or carry a suffix after ':'.
    let kind = raw_kind.rsplit('#').next().unwrap_or("").split(':').next().unwrap_or("").to_string();
    let kind = if kind.is_empty() { format!("HTTP{status}") } else { kind };
    let message = j["message"]
        .as_str()
        .or(j["Message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    Err(CallError::Service { status, kind, message })
}

fn sha256_hex(data: &[u8]) -> String {
    // ssmd_sigv4 hashes bodies for the canonical request; its canonical request of an empty
    // header map ends with the body hash, which is what is needed here.
    let creq = ssmd_sigv4::canonical_request("POST", "/", "", &http::HeaderMap::new(), &[], data);
    creq.rsplit('\n').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (e.url.as_str(), e.host.as_str(), e.hostname()),
            ("http://127.0.0.1:8080/", "127.0.0.1:8080", "127.0.0.1")
        );
        let e = Endpoint::parse("HTTPS://ssm.example.com/some/path").unwrap();
        assert_eq!((e.url.as_str(), e.host.as_str()), ("https://ssm.example.com/", "ssm.example.com"));
        assert_eq!(Endpoint::parse("http://[::1]:9/").unwrap().hostname(), "::1");
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://u:p@h/"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn services() {
        assert_eq!(service_of("AmazonSSM.UpdateInstanceInformation"), "ssm");
        assert_eq!(service_of("EC2WindowsMessageDeliveryService.GetMessages"), "ec2messages");
    }

    #[test]
    fn error_decoding() {
        assert_eq!(decode(200, None, b"").unwrap(), serde_json::json!({}));
        assert_eq!(decode(200, None, br#"{"a":1}"#).unwrap()["a"], 1);
        let e =
            decode(400, None, br#"{"__type":"com.amazonaws.ssm#ExpiredTokenException","message":"old"}"#).unwrap_err();
        assert_eq!(e, CallError::Service { status: 400, kind: "ExpiredTokenException".into(), message: "old".into() });
        assert!(e.is_auth() && !e.is_retryable());
        let e = decode(400, None, br#"{"__type":"InvalidActivation","Message":"Activation has expired"}"#).unwrap_err();
        assert_eq!(e.to_string(), "InvalidActivation (HTTP 400): Activation has expired");
        let e = decode(503, None, b"<html>busy</html>").unwrap_err();
        assert!(e.is_retryable() && e.kind() == Some("HTTP503"), "{e:?}");
        assert!(decode(400, Some("ThrottlingException"), b"").unwrap_err().is_retryable());
        assert!(CallError::Transport("refused".into()).is_retryable());
    }

    #[test]
    fn http_dates_and_clock_errors() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("Mon, 23 Nov 2026 06:00:00 GMT"), Some(1_795_413_600_000));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        let e = |kind: &str, m: &str| CallError::Service { status: 400, kind: kind.into(), message: m.into() };
        assert!(is_clock_error(&e("InvalidSignatureException", "Signature expired: 20260101T000000Z is now earlier")));
        assert!(is_clock_error(&e("InvalidSignatureException", "Signature not yet current: x")));
        assert!(!is_clock_error(&e("InvalidSignatureException", "The request signature we calculated does not match")));
    }

    #[test]
    fn body_hash() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
