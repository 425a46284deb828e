//! Running documents for real: scripts' exit codes, stdout/stderr, working directory and
//! environment; the step flow (168/169/194, onFailure, preconditions, unsupported actions,
//! finallyStep); timeouts and cancels ending the whole process group.

mod common;

use serde_json::{Value, json};
use ssmd_agent::document;
use ssmd_agent::exec::{self, End, Interrupt};
use ssmd_agent::runner::{self, Context, PluginResult, Status};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn run_doc(doc: Value, params: Value, interrupt: &Interrupt) -> (Vec<PluginResult>, Vec<Value>) {
    let work = common::temp_dir("work");
    let steps = document::interpret(&doc, params.as_object().unwrap()).unwrap();
    let env = vec![("AWS_SSM_INSTANCE_ID".to_string(), "mi-0123456789abcdef0".to_string())];
    let ctx = Context { work_dir: &work, env: &env, interrupt };
    let results = runner::run_document(&steps, &ctx, &mut |_| {});
    let json = results.iter().map(PluginResult::to_json).collect();
    std::fs::remove_dir_all(work).unwrap();
    (results, json)
}

fn steps(list: Value) -> Value {
    json!({"schemaVersion": "2.2", "mainSteps": list})
}

fn shell(name: &str, lines: Value) -> Value {
    json!({"action": "aws:runShellScript", "name": name, "inputs": {"runCommand": lines}})
}

/// Whether process `pid` is gone (or a zombie nobody reaps), now.
fn gone_now(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with('Z')).unwrap_or(true),
    }
}

/// Whether process `pid` is gone within half a second (a killed process takes a moment to die).
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_millis(500);
    while !gone_now(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn scripts_streams_cwd_env_and_exit_codes() {
    let dir = common::temp_dir("cwd");
    let dir_s = dir.to_string_lossy().to_string();
    let doc = steps(json!([
        {"action": "aws:runShellScript", "name": "first", "inputs": {
            "runCommand": ["pwd", "echo \"$GREETING\" \"$AWS_SSM_INSTANCE_ID\"", "echo to-err >&2", "exit 7"],
            "workingDirectory": "{{ dir }}", "environment": {"GREETING": "hi there"}}},
        shell("second", json!("echo second")),
        {"action": "aws:runShellScript", "name": "nowhere", "inputs": {"runCommand": ["true"],
            "workingDirectory": "/does/not/exist"}},
        {"action": "aws:runPowerShellScript", "name": "ps", "inputs": {"runCommand": ["Get-Date"]}},
        shell("shebang", json!(["#!/bin/sh", "echo from-file \"$0\" | sed 's|/.*/|/|'"])),
    ]));
    let (r, j) = run_doc(doc, json!({"dir": dir_s}), &Interrupt::new());
    assert_eq!((r[0].status, r[0].code), (Status::Failed, 7));
    assert_eq!(j[0]["standardOutput"], format!("{dir_s}\nhi there mi-0123456789abcdef0\n"));
    assert_eq!(j[0]["standardError"], "to-err\n\nfailed to run commands: exit status 7");
    assert_eq!((j[0]["name"].as_str(), j[0]["stepName"].as_str()), (Some("aws:runShellScript"), Some("first")));
    assert_eq!(
        (r[1].status, j[1]["standardOutput"].as_str()),
        (Status::Success, Some("second\n")),
        "a failure does not stop the next step"
    );
    assert_eq!((r[2].status, r[2].code), (Status::Failed, 1));
    assert!(j[2]["standardError"].as_str().unwrap().contains("/does/not/exist does not exist"), "{}", j[2]);
    assert_eq!((r[3].status, r[3].code), (Status::Failed, 1));
    assert!(j[3]["output"].as_str().unwrap().contains("does not support the action aws:runPowerShellScript"));
    assert_eq!(j[4]["standardOutput"], "from-file /_script.sh\n");
    assert_eq!(runner::aggregate(r.iter().map(|r| r.status)), Status::Failed);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn schema_1_2_run_shell_script() {
    let (r, j) = run_doc(common::run_shell_script(), json!({"commands": ["echo a", "echo b"]}), &Interrupt::new());
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].key.as_str(), r[0].status, r[0].code), ("aws:runShellScript", Status::Success, 0));
    assert_eq!(j[0]["standardOutput"], "a\nb\n");
    assert_eq!((j[0]["output"].as_str(), j[0]["stepName"].as_str()), (Some("a\nb\n"), Some("")));
}

#[test]
fn step_flow_exit_codes_and_modifiers() {
    let i = Interrupt::new();
    let statuses = |r: &[PluginResult]| r.iter().map(|r| (r.status, r.code)).collect::<Vec<_>>();

    let (r, j) = run_doc(
        steps(json!([shell("a", json!("exit 168")), shell("b", json!("echo no")),
        {"action": "aws:runShellScript", "name": "c", "inputs": {"runCommand": "echo finally", "finallyStep": true}}])),
        json!({}),
        &i,
    );
    assert_eq!(statuses(&r), [(Status::Success, 168), (Status::Skipped, 0), (Status::Success, 0)]);
    assert!(j[0]["standardOutput"].as_str().unwrap().contains("Step exited with code 168"));
    assert_eq!(j[0]["standardError"], "");
    assert_eq!(
        j[1]["output"],
        "Plugin with name aws:runShellScript and id b skipped due to prior step with an exit condition"
    );
    assert_eq!(j[2]["standardOutput"], "finally\n");

    let (r, j) = run_doc(steps(json!([shell("a", json!("exit 169")), shell("b", json!("echo no"))])), json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Failed, 169), (Status::Skipped, 0)]);
    assert!(j[0]["standardError"].as_str().unwrap().ends_with("Further document steps will be skipped."));

    let (r, j) = run_doc(steps(json!([shell("a", json!("exit 194")), shell("b", json!("echo no"))])), json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Failed, 194), (Status::Skipped, 0)]);
    assert!(j[0]["standardError"].as_str().unwrap().contains("ssmd-agent does not reboot"), "{}", j[0]);

    let exit_on_failure = |how: &str| {
        steps(
            json!([{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": "exit 2", "onFailure": how}},
            shell("b", json!("echo no"))]),
        )
    };
    let (r, _) = run_doc(exit_on_failure("exit"), json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Failed, 2), (Status::Skipped, 0)]);
    let (r, _) = run_doc(exit_on_failure("successAndExit"), json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Success, 168), (Status::Skipped, 0)]);
    let on_success = steps(json!([{"action": "aws:runShellScript", "name": "a", "onSuccess": "exit",
        "inputs": {"runCommand": "true"}}, shell("b", json!("echo no"))]));
    let (r, _) = run_doc(on_success, json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Success, 0), (Status::Skipped, 0)]);

    let pre = steps(json!([
        {"action": "aws:runPowerShellScript", "name": "win", "precondition": {"StringEquals": ["platformType", "Windows"]},
            "inputs": {"runCommand": "Get-Date"}},
        {"action": "aws:runShellScript", "name": "lin", "precondition": {"StringEquals": ["platformType", "Linux"]},
            "inputs": {"runCommand": "echo linux"}}]));
    let (r, j) = run_doc(pre, json!({}), &i);
    assert_eq!(statuses(&r), [(Status::Skipped, 0), (Status::Success, 0)]);
    assert!(j[0]["output"].as_str().unwrap().contains("unsatisfied preconditions"));
    assert_eq!(runner::aggregate(r.iter().map(|r| r.status)), Status::Success);
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = common::temp_dir("timeout");
    let script = dir.join("s.sh");
    std::fs::write(&script, "sleep 300 &\necho $! > bg.pid\necho started\nsleep 300\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let i = Interrupt::new();
    let spec = exec::Spec {
        script: &script,
        cwd: &dir,
        env: &[],
        timeout: Duration::from_secs(1),
        interrupt: &i,
        keep_stdout: 1000,
        keep_stderr: 1000,
    };
    let start = Instant::now();
    let o = exec::run(&spec).unwrap();
    let took = start.elapsed();
    assert_eq!(o.end, End::TimedOut);
    assert_eq!(o.stdout.kept, b"started\n");
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "{took:?}");
    let bg: i32 = std::fs::read_to_string(dir.join("bg.pid")).unwrap().trim().parse().unwrap();
    assert!(gone(bg), "the background sleep {bg} survived");

    // A script that ignores SIGTERM gets SIGKILL after the grace.
    std::fs::write(&script, "trap '' TERM\nsleep 300 &\necho $! > bg.pid\nsleep 300\n").unwrap();
    let start = Instant::now();
    let o = exec::run(&spec).unwrap();
    assert_eq!(o.end, End::TimedOut);
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1) + exec::KILL_GRACE && took < Duration::from_secs(6), "{took:?}");
    let bg: i32 = std::fs::read_to_string(dir.join("bg.pid")).unwrap().trim().parse().unwrap();
    assert!(gone(bg), "the background sleep {bg} survived SIGKILL");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn timed_out_step_is_reported_timed_out_with_code_137() {
    let doc = steps(json!([{"action": "aws:runShellScript", "name": "slow",
        "inputs": {"runCommand": ["echo begin", "sleep 60"], "timeoutSeconds": 5}}, shell("next", json!("echo next"))]));
    let start = Instant::now();
    let (r, j) = run_doc(doc, json!({}), &Interrupt::new());
    assert!(start.elapsed() < Duration::from_secs(12), "{:?}", start.elapsed());
    assert_eq!((r[0].status, r[0].code), (Status::TimedOut, 137));
    assert_eq!(j[0]["standardOutput"], "begin\n");
    assert_eq!((r[1].status, j[1]["standardOutput"].as_str()), (Status::Success, Some("next\n")));
    assert_eq!(runner::aggregate(r.iter().map(|r| r.status)), Status::TimedOut);
}

#[test]
fn cancel_kills_the_running_step_and_cancels_the_rest() {
    let i = Arc::new(Interrupt::new());
    let i2 = i.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        i2.cancel();
    });
    let doc = steps(json!([
        shell("first", json!("echo quick")),
        shell("long", json!(["echo begin", "sleep 60"])),
        shell("after", json!("echo never"))
    ]));
    let start = Instant::now();
    let (r, j) = run_doc(doc, json!({}), &i);
    canceller.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    let got: Vec<_> = r.iter().map(|r| (r.status, r.code)).collect();
    assert_eq!(got, [(Status::Success, 0), (Status::Cancelled, 137), (Status::Cancelled, 1)]);
    assert_eq!(j[1]["standardOutput"], "begin\n");
    assert_eq!(runner::aggregate(r.iter().map(|r| r.status)), Status::Cancelled);
}

#[test]
fn a_background_process_holding_the_output_does_not_hold_the_step() {
    let dir = common::temp_dir("bg");
    let doc = steps(json!([shell("daemon", json!(["sleep 30 &", "echo $! > bg.pid", "echo done"]))]));
    let d = dir.to_string_lossy().to_string();
    let mut doc = doc;
    doc["mainSteps"][0]["inputs"]["workingDirectory"] = json!(d);
    let start = Instant::now();
    let (r, j) = run_doc(doc, json!({}), &Interrupt::new());
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!((r[0].status, j[0]["standardOutput"].as_str()), (Status::Success, Some("done\n")));
    let bg: i32 = std::fs::read_to_string(Path::new(&d).join("bg.pid")).unwrap().trim().parse().unwrap();
    assert!(!gone_now(bg), "a background process of a finished script is left alone");
    // SAFETY: ends the test's own background process.
    unsafe { libc::kill(bg, libc::SIGKILL) };
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn multi_byte_output_is_cut_on_characters() {
    let (_, j) = run_doc(
        steps(json!([shell(
            "wide",
            json!([
                "i=0; while [ $i -lt 3000 ]; do printf 'ééééééééé\\n'; i=$((i+1)); done",
                "printf 'ü%.0s' $(seq 1 9000) >&2"
            ])
        )])),
        json!({}),
        &Interrupt::new(),
    );
    let out = j[0]["standardOutput"].as_str().unwrap();
    assert_eq!(out.chars().count(), 24_000);
    assert!(out.ends_with("--output truncated--") && out.starts_with("ééé"));
    let err = j[0]["standardError"].as_str().unwrap();
    assert_eq!(err.chars().count(), 8_000);
    assert!(err.starts_with("üüü") && err.ends_with("--output truncated--"));
    let output = j[0]["output"].as_str().unwrap();
    assert_eq!(output.chars().count(), 2_500);
    assert!(
        output.contains("\n---Output truncated---\n----------ERROR-------\nüü")
            && output.ends_with("\n---Error truncated----")
    );
}
