//! The wire protocol with raw HTTP: routing, error envelopes, body limits, chunked bodies,
//! signature checks, hostile input, health and metrics.

use ssmd_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Builds a signed awsJson1_1 request. `chunked` sends the body with chunked encoding.
#[allow(clippy::too_many_arguments)]
fn signed(
    port: u16,
    target: &str,
    body: &[u8],
    key: &str,
    secret: &str,
    date: &str,
    extra: &[(&str, &str)],
    chunked: bool,
) -> Vec<u8> {
    let mut h = http::HeaderMap::new();
    h.insert("host", format!("127.0.0.1:{port}").parse().unwrap());
    h.insert("x-amz-date", date.parse().unwrap());
    h.insert("x-amz-target", target.parse().unwrap());
    h.insert("content-type", "application/x-amz-json-1.1".parse().unwrap());
    for (k, v) in extra {
        h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let auth = ssmd_sigv4::sign(key, secret, "us-east-1", "ssm", date, "POST", "/", &h, body);
    raw::post(&h, &[("authorization".to_string(), auth)], body, chunked.then_some(7))
}

fn call(port: u16, target: &str, body: &[u8]) -> Resp {
    send_raw(port, &signed(port, target, body, ACCESS_KEY, SECRET_KEY, &amz_now(0), &[], false))
}

#[test]
fn routing_envelopes_and_serialization() {
    let server = Server::start(Backend::Sqlite);
    let port = server.port();
    let r = call(port, "AmazonSSM.ListDocuments", b"{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("x-amzn-requestid: "), "{}", r.head);
    assert!(r.head.contains("content-type: application/x-amz-json-1.1"));
    // An empty body is an empty input.
    assert_eq!(call(port, "AmazonSSM.ListDocuments", b"").status, 200);

    let r = call(port, "AmazonSSM.NoSuchThing", b"{}");
    assert_eq!((r.status, r.error_type().as_str()), (400, "UnknownOperationException"));
    assert!(r.head.contains("x-amzn-requestid: "));
    let r = call(port, "Other.ListDocuments", b"{}");
    assert_eq!(r.error_type(), "UnknownOperationException");

    for body in
        [&b"{not json"[..], b"[1,2]", b"\xff\xfe", b"{\"Name\": 5}", b"{\"Name\": \"Doc\", \"DocumentVersion\": [1]}"]
    {
        let r = call(port, "AmazonSSM.GetDocument", body);
        assert_eq!((r.status, r.error_type().as_str()), (400, "SerializationException"), "{:?} -> {}", body, r.body);
        assert!(r.json()["message"].is_string());
    }
    let deep = "[".repeat(100_000);
    let r = call(port, "AmazonSSM.GetDocument", deep.as_bytes());
    assert_eq!(r.error_type(), "SerializationException");

    let r = call(port, "AmazonSSM.GetDocument", b"{}");
    assert_eq!((r.status, r.error_type().as_str()), (400, "ValidationException"));
    assert_eq!(
        r.json()["Message"],
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null"
    );
    // Errors use the model's message key: `Message` for most shapes.
    let r = call(port, "AmazonSSM.GetDocument", br#"{"Name":"Missing"}"#);
    assert_eq!(
        r.json(),
        serde_json::json!({"__type": "InvalidDocument", "Message": "The specified document does not exist."})
    );

    let r = call(port, "AmazonSSM.GetInventory", br#"{}"#);
    assert_eq!(r.error_type(), "UnsupportedOperationException");
    assert!(r.json()["Message"].as_str().unwrap().contains("GetInventory"));
}

#[test]
fn body_limit_and_chunked_bodies() {
    let server = Server::start(Backend::Sqlite);
    let port = server.port();
    let content = r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["echo chunked"]}}]}"#;
    let body = serde_json::json!({"Name": "Chunked", "Content": content}).to_string();
    let r = send_raw(
        port,
        &signed(port, "AmazonSSM.CreateDocument", body.as_bytes(), ACCESS_KEY, SECRET_KEY, &amz_now(0), &[], true),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(port, "AmazonSSM.GetDocument", br#"{"Name":"Chunked"}"#);
    assert_eq!(r.json()["Content"], content);

    let big = format!(r#"{{"Name":"Big","Content":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let r = call(port, "AmazonSSM.CreateDocument", big.as_bytes());
    assert_eq!((r.status, r.error_type().as_str()), (413, "RequestEntityTooLargeException"));
    // The server is still fine.
    assert_eq!(call(port, "AmazonSSM.ListDocuments", b"{}").status, 200);
}

#[test]
fn signature_failures_use_aws_codes() {
    let server = Server::start(Backend::Sqlite);
    let port = server.port();
    let body = br#"{}"#;
    let target = "AmazonSSM.ListDocuments";

    let unsigned = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-amz-target: {target}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let r = send_raw(port, unsigned.as_bytes());
    assert_eq!((r.status, r.error_type().as_str()), (400, "MissingAuthenticationTokenException"));

    let r = send_raw(port, &signed(port, target, body, ACCESS_KEY, "wrong-secret", &amz_now(0), &[], false));
    assert_eq!(r.error_type(), "InvalidSignatureException");
    assert!(r.json()["message"].as_str().unwrap().contains("does not match"));

    let r = send_raw(port, &signed(port, target, body, "AKIAUNKNOWN000000000", SECRET_KEY, &amz_now(0), &[], false));
    assert_eq!(r.error_type(), "UnrecognizedClientException");

    let r = send_raw(port, &signed(port, target, body, ACCESS_KEY, SECRET_KEY, &amz_now(-20 * 60), &[], false));
    assert_eq!(r.error_type(), "InvalidSignatureException");
    assert!(r.json()["message"].as_str().unwrap().starts_with("Signature expired"), "{}", r.body);
    let r = send_raw(port, &signed(port, target, body, ACCESS_KEY, SECRET_KEY, &amz_now(20 * 60), &[], false));
    assert_eq!(r.error_type(), "InvalidSignatureException");
    // Within 15 minutes is fine.
    let r = send_raw(port, &signed(port, target, body, ACCESS_KEY, SECRET_KEY, &amz_now(-10 * 60), &[], false));
    assert_eq!(r.status, 200, "{}", r.body);

    // A body changed after signing.
    let mut req = signed(port, target, br#"{"MaxResults":1}"#, ACCESS_KEY, SECRET_KEY, &amz_now(0), &[], false);
    let n = req.len();
    req[n - 2] = b'2';
    assert_eq!(send_raw(port, &req).error_type(), "InvalidSignatureException");

    // A session token on a long-term key.
    let r = send_raw(
        port,
        &signed(port, target, body, ACCESS_KEY, SECRET_KEY, &amz_now(0), &[("x-amz-security-token", "abc")], false),
    );
    assert_eq!(r.error_type(), "UnrecognizedClientException");

    let incomplete = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-amz-target: {target}\r\nx-amz-date: {}\r\nauthorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/us-east-1/ssm/aws4_request\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}",
        amz_now(0)
    );
    let r = send_raw(port, incomplete.as_bytes());
    assert_eq!(r.error_type(), "IncompleteSignatureException");

    // Signed for another service.
    let date = amz_now(0);
    let mut h = http::HeaderMap::new();
    h.insert("host", format!("127.0.0.1:{port}").parse().unwrap());
    h.insert("x-amz-date", date.parse().unwrap());
    h.insert("x-amz-target", target.parse().unwrap());
    let auth = ssmd_sigv4::sign(ACCESS_KEY, SECRET_KEY, "us-east-1", "ec2", &date, "POST", "/", &h, body);
    let req = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-amz-date: {date}\r\nx-amz-target: {target}\r\nauthorization: {auth}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    assert_eq!(send_raw(port, req.as_bytes()).error_type(), "InvalidSignatureException");
}

#[test]
fn hostile_input_never_breaks_the_server() {
    let server = Server::start(Backend::Sqlite);
    let port = server.port();
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let targets =
        ["AmazonSSM.CreateDocument", "AmazonSSM.GetDocument", "AmazonSSM.ListDocuments", "AmazonSSM.AddTagsToResource"];
    let samples = [
        r#"{"Name":"ab","Content":""}"#,
        r#"{"Name":null,"Content":{"a":1}}"#,
        r#"{"Filters":[{"Key":"Owner","Values":[null]}]}"#,
        r#"{"ResourceType":"Document","ResourceId":"x","Tags":[{"Key":"k"}]}"#,
        r#"{"Name":"Doc","Content":"{\"schemaVersion\":\"0.3\",\"mainSteps\":[{\"name\":1}]}","DocumentType":"Automation"}"#,
        r#"{"MaxResults":-1,"NextToken":""}"#,
        r#"{"Name":"Doc","Content":"schemaVersion: '0.3'\nmainSteps: &a [*a]","DocumentFormat":"YAML","DocumentType":"Automation"}"#,
    ];
    for i in 0..300 {
        let target = targets[(next() % targets.len() as u64) as usize];
        let mut body = samples[i % samples.len()].as_bytes().to_vec();
        // Flip a few bytes in most of the samples.
        if i % 3 != 0 {
            for _ in 0..(next() % 4) {
                let pos = (next() % body.len() as u64) as usize;
                body[pos] = (next() % 256) as u8;
            }
        }
        let r = call(port, target, &body);
        assert!(
            r.status == 200 || r.status == 400,
            "status {} for {:?}: {}",
            r.status,
            String::from_utf8_lossy(&body),
            r.body
        );
        assert!(!r.error_type().is_empty() || r.status == 200, "{}", r.body);
    }
    assert_eq!(call(port, "AmazonSSM.ListDocuments", b"{}").status, 200);
}

#[test]
fn health_and_metrics() {
    let server = Server::start(Backend::Sqlite);
    let port = server.port();
    let r = send_raw(port, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("x-amzn-requestid: "), "{}", r.head);
    let r = send_raw(port, b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!((r.status, r.error_type().as_str()), (404, "UnknownOperationException"));
    assert!(r.head.contains("x-amzn-requestid: "), "{}", r.head);
    call(port, "AmazonSSM.ListDocuments", b"{}");
    call(port, "AmazonSSM.GetDocument", br#"{"Name":"Missing"}"#);
    let r = send_raw(port, b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"ssmd_requests_total{operation="ListDocuments",code="OK"}"#), "{}", r.body);
    assert!(r.body.contains(r#"code="InvalidDocument""#), "{}", r.body);
    assert!(r.body.contains("ssmd_request_seconds_bucket"), "{}", r.body);
    assert!(r.body.contains("ssmd_store_seconds_bucket"), "{}", r.body);
}

#[test]
fn accept_any_credentials_maps_unknown_keys_to_one_account() {
    let server =
        Server::start_with(Backend::Sqlite, &["--accept-any-credentials", "--default-account", "222222222222"]);
    let port = server.port();
    let content = r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["true"]}}]}"#;
    let body = serde_json::json!({"Name": "Any", "Content": content}).to_string();
    let r = send_raw(
        port,
        &signed(port, "AmazonSSM.CreateDocument", body.as_bytes(), "AKIAANYTHING", "whatever", &amz_now(0), &[], false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["DocumentDescription"]["Owner"], "222222222222");
    // Malformed signatures are still refused.
    let unsigned = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-amz-target: AmazonSSM.ListDocuments\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    assert_eq!(send_raw(port, unsigned.as_bytes()).error_type(), "MissingAuthenticationTokenException");
    // The root key still maps to its own account, which does not see the document.
    let r = call(port, "AmazonSSM.GetDocument", br#"{"Name":"Any"}"#);
    assert_eq!(r.error_type(), "InvalidDocument");
}

#[tokio::test]
async fn unimplemented_operations_say_so_through_the_sdk() {
    let server = Server::start(Backend::Sqlite);
    let e = server.client().get_inventory().send().await.unwrap_err();
    assert_eq!(code(&e), "UnsupportedOperationException");
    assert!(message(&e).contains("GetInventory"));
}

#[test]
fn stalled_clients_are_disconnected_and_others_served() {
    let server = Server::start_with(Backend::Sqlite, &["--header-timeout", "0.5"]);
    let port = server.port();
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n").unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Meanwhile other clients are served.
    assert_eq!(call(port, "AmazonSSM.ListDocuments", b"{}").status, 200);
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = stalled.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the stalled connection was held for {waited:?}");
    let mut idle = idle;
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(5), "the idle connection was held");
    assert_eq!(call(port, "AmazonSSM.ListDocuments", b"{}").status, 200);
}
