//! The `ssmd` command line: help texts, JSON logs, and refusing bad configuration clearly.

use ssmd_e2e::ssmd_bin;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn help_explains_every_option() {
    let out = Command::new(ssmd_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("keys"), "{text}");
    let out = Command::new(ssmd_bin()).args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--listen",
        "--data-dir",
        "--database-url",
        "--log-format",
        "--accept-any-credentials",
        "--default-account",
        "--header-timeout",
        "SSMD_DATABASE_URL",
    ] {
        assert!(text.contains(opt), "serve --help does not mention {opt}:\n{text}");
    }
}

#[test]
fn json_logs_are_json_lines() {
    let dir = std::env::temp_dir().join(format!("ssmd-cli-{}", std::process::id()));
    let mut child = Command::new(ssmd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
        .arg(&dir)
        .env("SSMD_ACCESS_KEY_ID", "AKIACLI0000000000001")
        .env("SSMD_SECRET_ACCESS_KEY", "secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("a log line");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let out = Command::new(ssmd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
    let out = Command::new(ssmd_bin()).args(["serve", "--listen", "not-an-address"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

#[test]
fn a_database_password_never_prints() {
    // Nothing listens on port 1: the connection fails and the error names the database.
    let out = Command::new(ssmd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", "postgres://postgres:S3cretPass@127.0.0.1:1/ssmd"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://postgres:***@127.0.0.1:1/ssmd"), "{err}");
    assert!(!err.contains("S3cretPass") && !String::from_utf8_lossy(&out.stdout).contains("S3cretPass"), "{err}");
}
