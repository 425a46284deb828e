//! AWS Signature Version 4: verification for the server and signing for ssmd's own clients
//! (the agent, the benchmark, tests). No server or database code: the agent depends on it.
//!
//! The server recomputes the signature from the request exactly as a client computes it
//! (canonical request, string to sign, derived signing key) and compares in constant time.
//! Failures carry the error codes AWS uses: a missing header is
//! `MissingAuthenticationTokenException`, a malformed one `IncompleteSignatureException`, a
//! mismatch or an expired date `InvalidSignatureException`.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which AWS error a verification failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigErrorKind {
    /// `MissingAuthenticationTokenException`: no Authorization header.
    Missing,
    /// `IncompleteSignatureException`: the header is malformed or incomplete.
    Incomplete,
    /// `InvalidSignatureException`: the signature or date does not hold.
    Invalid,
}

/// A verification failure with AWS's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigError {
    /// The kind, which decides the error code.
    pub kind: SigErrorKind,
    /// The message.
    pub message: String,
}

impl SigError {
    fn new(kind: SigErrorKind, message: impl Into<String>) -> Self {
        SigError { kind, message: message.into() }
    }
    /// The message (for tests and logs).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The largest clock difference accepted between the request's date and the server's.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// What the `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id.
    pub access_key_id: String,
    /// Credential scope date, `YYYYMMDD`.
    pub date: String,
    /// Credential scope region.
    pub region: String,
    /// Credential scope service.
    pub service: String,
    /// Signed header names, lower case, as listed.
    pub signed_headers: Vec<String>,
    /// The `Signature=` value as sent: lower-case hex for HMAC SigV4 (compared
    /// case-insensitively), base64 for the RSA-signed calls of managed nodes.
    pub signature: String,
    /// The request's `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
    pub amz_date: String,
    /// The `X-Amz-Security-Token`, if sent.
    pub security_token: Option<String>,
}

fn incomplete(msg: impl Into<String>) -> SigError {
    SigError::new(SigErrorKind::Incomplete, msg)
}

fn invalid(msg: impl Into<String>) -> SigError {
    SigError::new(SigErrorKind::Invalid, msg)
}

/// Parses the `Authorization` and `X-Amz-Date` headers.
pub fn parse(headers: &HeaderMap) -> Result<Authorization, SigError> {
    let Some(auth) = headers.get(http::header::AUTHORIZATION) else {
        return Err(SigError::new(SigErrorKind::Missing, "Missing Authentication Token"));
    };
    let auth = auth.to_str().map_err(|_| incomplete("The Authorization header is not valid text."))?;
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(incomplete(format!(
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm. Authorization={auth}"
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let mut missing = Vec::new();
    for (name, v) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed)] {
        if v.is_none_or(str::is_empty) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).map(str::to_string);
    if amz_date.is_none() {
        missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into());
    }
    if !missing.is_empty() {
        return Err(incomplete(format!("{} Authorization={auth}", missing.join(" "))));
    }
    let (credential, signed, signature, amz_date) = (
        credential.unwrap_or_default(),
        signed.unwrap_or_default(),
        signature.unwrap_or_default(),
        amz_date.unwrap_or_default(),
    );
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope.iter().any(|s| s.is_empty()) || scope[4] != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should have 5 parts: access key id, date, region, service and 'aws4_request'. Credential={credential}"
        )));
    }
    if parse_amz_date(&amz_date).is_none() {
        return Err(incomplete(format!("X-Amz-Date must be in the form YYYYMMDD'T'HHMMSS'Z'. X-Amz-Date={amz_date}")));
    }
    let signed_headers: Vec<String> = signed.split(';').map(|h| h.to_ascii_lowercase()).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."));
    }
    let security_token = headers.get("x-amz-security-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok(Authorization {
        access_key_id: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers,
        signature: signature.to_string(),
        amz_date,
        security_token,
    })
}

/// Parses `YYYYMMDDTHHMMSSZ` into epoch seconds; `None` for anything else, including a date that
/// does not exist (`20260231`). A leap second (`...235960Z`) is read as the next minute's first
/// second, as a clock that repeats :59 would sign it a second late anyway.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(4..6)?, num(6..8)?, num(9..11)?, num(11..13)?, num(13..15)?);
    if se > 60 {
        return None;
    }
    let narrow = |v: i16| i8::try_from(v).ok();
    let dt =
        jiff::civil::DateTime::new(y, narrow(mo)?, narrow(d)?, narrow(h)?, narrow(mi)?, narrow(se.min(59))?, 0).ok()?;
    let at = jiff::tz::Offset::UTC.to_timestamp(dt).ok()?;
    Some(at.as_second() + i64::from(se == 60))
}

/// Formats epoch seconds as `YYYYMMDDTHHMMSSZ` (clamped to the years -9999 to 9999, far beyond
/// any clock a request is checked against).
pub fn format_amz_date(secs: i64) -> String {
    let at = jiff::Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    let dt = jiff::tz::Offset::UTC.to_datetime(at);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", dt.year(), dt.month(), dt.day(), dt.hour(), dt.minute(), dt.second())
}

/// Checks the date against the server clock and the credential scope.
pub fn check_time(auth: &Authorization, now_secs: i64) -> Result<(), SigError> {
    let signed_at = parse_amz_date(&auth.amz_date).unwrap_or(0);
    if !auth.amz_date.starts_with(&auth.date) {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            auth.date,
            &auth.amz_date[..8],
            auth.amz_date
        )));
    }
    if signed_at < now_secs - MAX_SKEW_SECS {
        return Err(invalid(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            auth.amz_date,
            format_amz_date(now_secs - MAX_SKEW_SECS),
            format_amz_date(now_secs)
        )));
    }
    if signed_at > now_secs + MAX_SKEW_SECS {
        return Err(invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            auth.amz_date,
            format_amz_date(now_secs + MAX_SKEW_SECS),
            format_amz_date(now_secs)
        )));
    }
    Ok(())
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key for a secret and credential scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// URI-encodes per SigV4 (unreserved characters kept; `/` kept when `keep_slash`).
fn uri_encode(s: &str, keep_slash: bool, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&percent_decode(k), false, &mut ek);
            uri_encode(&percent_decode(v), false, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request of SigV4 for the given request parts.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed: &[String],
    body: &[u8],
) -> String {
    let mut s = String::with_capacity(512);
    s.push_str(method);
    s.push('\n');
    if path.is_empty() {
        s.push('/');
    } else {
        // Non-S3 services sign the path as sent, encoded once more.
        uri_encode(path, true, &mut s);
    }
    s.push('\n');
    s.push_str(&canonical_query(query));
    s.push('\n');
    for name in signed {
        s.push_str(name);
        s.push(':');
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        s.push_str(&values.join(","));
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&signed.join(";"));
    s.push('\n');
    match headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
        Some(h) => s.push_str(h),
        None => s.push_str(&hex::encode(Sha256::digest(body))),
    }
    s
}

/// Refuses a request whose `X-Amz-Content-Sha256` header (when sent, and not
/// `UNSIGNED-PAYLOAD`) is not the SHA-256 of its body.
pub fn check_content_sha256(headers: &HeaderMap, body: &[u8]) -> Result<(), SigError> {
    if let Some(h) = headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok())
        && h != "UNSIGNED-PAYLOAD"
        && h != hex::encode(Sha256::digest(body))
    {
        return Err(invalid("The provided 'x-amz-content-sha256' header does not match what was computed."));
    }
    Ok(())
}

/// The SigV4 string to sign of a request, for the credential scope, date and signed headers of
/// `auth`. HMAC SigV4 signs it with the derived key; managed nodes sign it with their RSA key
/// (`RequestManagedInstanceRoleToken`), so it is exposed on its own.
pub fn string_to_sign(
    auth: &Authorization,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let creq = canonical_request(method, path, query, headers, &auth.signed_headers, body);
    sts_of(&auth.amz_date, &auth.date, &auth.region, &auth.service, &creq)
}

fn sts_of(amz_date: &str, date: &str, region: &str, service: &str, creq: &str) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(creq.as_bytes())))
}

/// Verifies the signature with a derived signing key.
pub fn verify(
    auth: &Authorization,
    key: &[u8; 32],
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SigError> {
    check_content_sha256(headers, body)?;
    let sts = string_to_sign(auth, method, path, query, headers, body);
    let expected = hex::encode(hmac(key, sts.as_bytes()));
    if expected.as_bytes().ct_eq(auth.signature.to_ascii_lowercase().as_bytes()).into() {
        Ok(())
    } else {
        Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ))
    }
}

/// Signs a request the way an AWS SDK does, returning the `Authorization` header value. Used by
/// ssmd's own tools (the benchmark, the agent) and by tests.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let key = signing_key(secret, &amz_date[..8], region, service);
    sign_with(access_key_id, region, service, amz_date, method, path, headers, body, |sts| {
        hex::encode(hmac(&key, sts.as_bytes()))
    })
}

/// Builds the `Authorization` header of a request every header of which is signed, with the
/// `Signature=` value computed by `signer` from the string to sign. `sign` passes an HMAC; a
/// managed node passes its RSA-PSS signer for "SigV4 with an RSA key".
#[allow(clippy::too_many_arguments)]
pub fn sign_with(
    access_key_id: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    signer: impl FnOnce(&str) -> String,
) -> String {
    let mut signed: Vec<String> = headers.keys().map(|k| k.as_str().to_ascii_lowercase()).collect();
    signed.sort();
    signed.dedup();
    let date = &amz_date[..8];
    let creq = canonical_request(method, path, "", headers, &signed, body);
    let sig = signer(&sts_of(amz_date, date, region, service, &creq));
    let scope = format!("{date}/{region}/{service}/aws4_request");
    format!("AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={sig}", signed.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// The "get-vanilla" vector of AWS's SigV4 test suite (service, region, date and the
    /// published signature).
    #[test]
    fn aws_get_vanilla_vector() {
        let mut h = headers(&[("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")]);
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service");
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        );
        let auth = parse(&h).unwrap();
        verify(&auth, &key, "GET", "/", "", &h, b"").unwrap();
        assert_eq!(
            string_to_sign(&auth, "GET", "/", "", &h, b""),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        // Hex signatures compare case-insensitively.
        let upper = Authorization { signature: auth.signature.to_ascii_uppercase(), ..auth.clone() };
        verify(&upper, &key, "GET", "/", "", &h, b"").unwrap();
        let bad = Authorization { signature: "0".repeat(64), ..auth };
        assert_eq!(verify(&bad, &key, "GET", "/", "", &h, b"").unwrap_err().kind, SigErrorKind::Invalid);
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let body = br#"{"Name":"x"}"#;
        let mut h = headers(&[
            ("host", "127.0.0.1:1"),
            ("x-amz-date", "20260101T000000Z"),
            ("x-amz-target", "AmazonSSM.GetDocument"),
            ("content-type", "application/x-amz-json-1.1"),
        ]);
        let a = sign("AK", "SECRET", "eu-west-1", "ssm", "20260101T000000Z", "POST", "/", &h, body);
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&a).unwrap());
        let auth = parse(&h).unwrap();
        assert_eq!((auth.region.as_str(), auth.service.as_str()), ("eu-west-1", "ssm"));
        let key = signing_key("SECRET", "20260101", "eu-west-1", "ssm");
        verify(&auth, &key, "POST", "/", "", &h, body).unwrap();
        assert!(verify(&auth, &key, "POST", "/", "", &h, br#"{"Name":"y"}"#).is_err());
        let other = signing_key("WRONG", "20260101", "eu-west-1", "ssm");
        assert!(verify(&auth, &other, "POST", "/", "", &h, body).is_err());
    }

    #[test]
    fn sign_with_passes_the_string_to_sign_and_keeps_the_signature_as_sent() {
        let body = br#"{"Fingerprint":"f"}"#;
        let mut h = headers(&[("host", "h"), ("x-amz-date", "20260101T000000Z"), ("content-type", "x")]);
        let mut seen = String::new();
        let a = sign_with("mi-0123456789abcdef0", "us-east-1", "ssm", "20260101T000000Z", "POST", "/", &h, body, |s| {
            seen = s.to_string();
            "AbC+/=".to_string()
        });
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&a).unwrap());
        let auth = parse(&h).unwrap();
        assert_eq!(auth.signature, "AbC+/=");
        assert_eq!(auth.access_key_id, "mi-0123456789abcdef0");
        assert_eq!(string_to_sign(&auth, "POST", "/", "", &h, body), seen);
        assert!(seen.starts_with("AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/ssm/aws4_request\n"));
    }

    #[test]
    fn parse_errors_have_aws_codes() {
        assert_eq!(parse(&headers(&[])).unwrap_err().kind, SigErrorKind::Missing);
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/ssm/aws4_request"),
            ("x-amz-date", "20260101T000000Z"),
        ]);
        let e = parse(&h).unwrap_err();
        assert_eq!(e.kind, SigErrorKind::Incomplete);
        assert!(e.message().contains("'Signature'"), "{}", e.message());
        let h = headers(&[("authorization", "Basic abc")]);
        assert_eq!(parse(&h).unwrap_err().kind, SigErrorKind::Incomplete);
    }

    #[test]
    fn skew_and_dates() {
        let now = parse_amz_date("20260101T120000Z").unwrap();
        assert_eq!(format_amz_date(now), "20260101T120000Z");
        let auth = |d: &str| Authorization {
            access_key_id: "A".into(),
            date: d[..8].into(),
            region: "r".into(),
            service: "ssm".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
            amz_date: d.into(),
            security_token: None,
        };
        check_time(&auth("20260101T114600Z"), now).unwrap();
        let e = check_time(&auth("20260101T114400Z"), now).unwrap_err();
        assert!(
            e.message().starts_with("Signature expired: 20260101T114400Z is now earlier than 20260101T114500Z"),
            "{}",
            e.message()
        );
        assert!(check_time(&auth("20260101T121600Z"), now).is_err());
    }

    #[test]
    fn amz_dates_of_known_instants() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_amz_date("19691231T235959Z"), Some(-1));
        assert_eq!(parse_amz_date("20261123T060000Z"), Some(1_795_413_600));
        // A leap second reads as the next minute's first second.
        assert_eq!(parse_amz_date("20161231T235960Z"), parse_amz_date("20170101T000000Z"));
        for bad in ["20260231T000000Z", "20250229T000000Z", "20261301T000000Z", "20260101T240000Z", "20260101T000061Z"]
        {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(format_amz_date(-1), "19691231T235959Z");
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        for secs in [0, 951_782_400, 1_795_413_599, 4_102_444_800, -86_401, 253_402_000_000] {
            assert_eq!(parse_amz_date(&format_amz_date(secs)), Some(secs), "{secs}");
        }
    }
}
