//! Raw HTTP for tests that must control every byte of a request (routing, chunked bodies,
//! signatures the SDKs would never send, the agent's own calls): building a request from
//! headers and a body, sending it on a fresh connection, and reading the whole response.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A response: status, lower-cased head, body.
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Status line and headers, lower-cased.
    pub head: String,
    /// The body as text.
    pub body: String,
}

impl Resp {
    /// The body as JSON (panics, showing the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// The `__type` of an error envelope.
    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_string()
    }
}

/// An `X-Amz-Date` value `offset_secs` from now.
pub fn amz_now(offset_secs: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64 + offset_secs;
    ssmd_sigv4::format_amz_date(now)
}

/// A `POST /` request with `headers`, then `extra` headers, `connection: close`, and `body` —
/// sent in chunks of `chunk` bytes with chunked encoding, or with a content length.
pub fn post(headers: &http::HeaderMap, extra: &[(String, String)], body: &[u8], chunk: Option<usize>) -> Vec<u8> {
    let mut req = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n");
    let mut out = req.into_bytes();
    match chunk {
        Some(size) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for part in body.chunks(size) {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        None => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
    }
    out
}

/// Sends `request` on a new connection and reads the response to the end.
pub fn send_raw(port: u16, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Resp { status, head: head.to_ascii_lowercase(), body: body.to_string() }
}
