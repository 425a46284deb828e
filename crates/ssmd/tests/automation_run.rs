//! `ssmd automation run`, the local runbook runner, run as a process on small runbooks: progress
//! and outputs on stdout, exit codes, parameters, approvals, pauses, child runbooks, timeouts,
//! interrupts, and refusing what it can't do clearly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any one run may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ssmd-run-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, file: &str, content: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

fn runner(dir: &TempDir, file: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssmd"));
    cmd.args(["automation", "run"]).arg(file).args(args);
    if !args.contains(&"--timeout") {
        // A guard against a runner that never ends.
        cmd.args(["--timeout", "45"]);
    }
    cmd.current_dir(&dir.0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Waits for a spawned runner, failing the test if it takes too long.
fn finish(child: Child) -> Run {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out: Output = rx.recv_timeout(PATIENCE).expect("the runner did not finish in time").unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `ssmd automation run FILE ARGS` on a runbook written to `dir` as `file`.
fn run(dir: &TempDir, file: &str, runbook: &str, args: &[&str]) -> Run {
    let path = dir.write(file, runbook);
    finish(runner(dir, &path, args).spawn().unwrap())
}

const GREET: &str = r#"schemaVersion: '0.3'
description: Says hello.
parameters:
  Who:
    type: String
    default: world
  Names:
    type: StringList
    default: []
outputs:
  - greet.Greeting
mainSteps:
  - name: nap
    action: aws:sleep
    inputs:
      Duration: PT0.2S
  - name: greet
    action: aws:executeScript
    inputs:
      Runtime: python3.11
      Handler: handler
      InputPayload:
        who: '{{ Who }}'
        names: '{{ Names }}'
      Script: |
        def handler(events, context):
            return {"greeting": "hello " + events["who"], "count": len(events["names"])}
    outputs:
      - Name: Greeting
        Selector: $.Payload.greeting
        Type: String
      - Name: Count
        Selector: $.Payload.count
        Type: Integer
"#;

#[test]
fn a_successful_runbook_shows_its_steps_and_outputs() {
    let dir = TempDir::new("success");
    let r = run(&dir, "greet.yaml", GREET, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    for text in [
        "Running greet (execution ",
        "step nap (aws:sleep) InProgress",
        "step nap (aws:sleep) Success (",
        "step greet (aws:executeScript) Success (",
        "Greeting = hello world",
        "Count = 0",
        " Success in ",
        "Outputs:\n  greet.Greeting = hello world",
    ] {
        assert!(r.stdout.contains(text), "no {text:?} in\n{}", r.all());
    }
    assert!(!r.stdout.contains('\x1b'), "no colour when stdout is not a terminal:\n{}", r.stdout);
    let nap = r.stdout.find("step nap (aws:sleep) Success").unwrap();
    let greet = r.stdout.find("step greet (aws:executeScript) InProgress").unwrap_or(usize::MAX);
    let greeted = r.stdout.find("step greet (aws:executeScript) Success").unwrap();
    assert!(nap < greeted && (greet == usize::MAX || nap < greet), "steps out of order:\n{}", r.stdout);
}

#[test]
fn json_runbooks_run_too() {
    let dir = TempDir::new("json");
    let doc = r#"{"schemaVersion": "0.3", "mainSteps": [{"name": "only", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}}]}"#;
    let r = run(&dir, "tiny.json", doc, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("step only (aws:sleep) Success"), "{}", r.all());
}

#[test]
fn a_failing_script_exits_1_with_its_traceback() {
    let dir = TempDir::new("fail");
    let doc = r#"schemaVersion: '0.3'
mainSteps:
  - name: boom
    action: aws:executeScript
    inputs:
      Runtime: python3.11
      Handler: handler
      Script: |
        def helper():
            raise ValueError("the disk is on fire")
        def handler(events, context):
            helper()
  - name: never
    action: aws:sleep
    inputs: { Duration: PT0S }
"#;
    let r = run(&dir, "fail.yaml", doc, &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("step boom (aws:executeScript) Failed"), "{}", r.all());
    assert!(r.stdout.contains("Traceback (most recent call last):"), "{}", r.all());
    assert!(r.stdout.contains("in helper"), "the whole traceback is kept:\n{}", r.all());
    assert!(r.stdout.contains("ValueError: the disk is on fire"), "{}", r.all());
    assert!(r.stdout.contains(" Failed in "), "{}", r.all());
    assert!(!r.stdout.contains("step never"), "{}", r.all());
}

#[test]
fn params_reach_the_runbook_and_repeat_into_lists() {
    let dir = TempDir::new("params");
    let r = run(&dir, "greet.yaml", GREET, &["--param", "Who=bob", "--param", "Names=a", "--param", "Names=b=c"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("Greeting = hello bob"), "{}", r.all());
    assert!(r.stdout.contains("Count = 2"), "{}", r.all());
}

#[test]
fn a_parameter_the_runbook_lacks_exits_2_with_the_service_message() {
    let dir = TempDir::new("badparam");
    let r = run(&dir, "greet.yaml", GREET, &["--param", "Nope=1"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("Nope"), "{}", r.all());
    assert!(r.stderr.contains("InvalidAutomationExecutionParametersException"), "{}", r.all());
    let r = run(&dir, "greet.yaml", GREET, &["--param", "no-equals-sign"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("NAME=VALUE"), "{}", r.all());
}

#[test]
fn an_invalid_runbook_exits_2() {
    let dir = TempDir::new("invalid");
    let r = run(&dir, "broken.yaml", "schemaVersion: '0.3'\nmainSteps:\n  - name: x\n    inputs: {}\n", &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("InvalidDocumentContent"), "{}", r.all());
    assert!(r.stderr.contains("broken.yaml"), "{}", r.all());
    let r = finish(runner(&dir, &dir.0.join("missing.yaml"), &[]).spawn().unwrap());
    assert_eq!(r.code, 2, "{}", r.all());
}

const GATE: &str = r#"schemaVersion: '0.3'
mainSteps:
  - name: gate
    action: aws:approve
    inputs:
      Approvers: ['123456789012']
      Message: Ship it?
  - name: after
    action: aws:sleep
    inputs: { Duration: PT0S }
"#;

#[test]
fn approve_finishes_an_approval() {
    let dir = TempDir::new("approve");
    let r = run(&dir, "gate.yaml", GATE, &["--approve"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("step gate (aws:approve) Waiting"), "{}", r.all());
    assert!(r.stdout.contains("Message: Ship it?"), "{}", r.all());
    assert!(r.stdout.contains("Approvers: 123456789012"), "{}", r.all());
    assert!(r.stdout.contains("ApprovalStatus = Approved"), "{}", r.all());
    assert!(r.stdout.contains("step after (aws:sleep) Success"), "{}", r.all());
}

#[test]
fn reject_fails_the_runbook() {
    let dir = TempDir::new("reject");
    let r = run(&dir, "gate.yaml", GATE, &["--reject"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("The approval was rejected."), "{}", r.all());
}

#[test]
fn an_approval_without_a_terminal_or_flag_exits_clearly() {
    let dir = TempDir::new("noterm");
    let started = Instant::now();
    let r = run(&dir, "gate.yaml", GATE, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("no terminal"), "{}", r.all());
    assert!(r.stdout.contains("--approve"), "{}", r.all());
    assert!(started.elapsed() < Duration::from_secs(20), "it must not wait for the approval");
}

#[test]
fn a_caller_who_is_not_an_approver_is_told_about_approver_arn() {
    let dir = TempDir::new("approver");
    let doc = "schemaVersion: '0.3'\nmainSteps:\n  - name: gate\n    action: aws:approve\n    inputs:\n      Approvers: [alice]\n";
    let r = run(&dir, "alice.yaml", doc, &["--approve"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("is not one of the approvers"), "{}", r.all());
    assert!(r.stdout.contains("--approver-arn arn:aws:iam::123456789012:user/alice"), "{}", r.all());
    let r = run(&dir, "alice.yaml", doc, &["--approve", "--approver-arn", "arn:aws:iam::123456789012:user/alice"]);
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn resume_finishes_a_pause() {
    let dir = TempDir::new("resume");
    let doc = "schemaVersion: '0.3'\nmainSteps:\n  - name: hold\n    action: aws:pause\n    inputs: {}\n";
    let r = run(&dir, "hold.yaml", doc, &["--resume"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("step hold (aws:pause) Waiting"), "{}", r.all());
    assert!(r.stdout.contains("step hold (aws:pause) Success"), "{}", r.all());
    let r = run(&dir, "hold.yaml", doc, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("--resume"), "{}", r.all());
}

#[test]
fn loops_show_their_iterations() {
    let dir = TempDir::new("loop");
    let doc = r#"schemaVersion: '0.3'
mainSteps:
  - name: each
    action: aws:loop
    inputs:
      Iterators: [red, blue]
      Steps:
        - name: body
          action: aws:sleep
          inputs: { Duration: PT0S }
"#;
    let r = run(&dir, "loop.yaml", doc, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("step each #1 (red) > body (aws:sleep) Success"), "{}", r.all());
    assert!(r.stdout.contains("step each #2 (blue) > body (aws:sleep) Success"), "{}", r.all());
    let body = r.stdout.find("each #2 (blue) > body (aws:sleep) Success").unwrap();
    let done = r.stdout.find("step each (aws:loop) Success").unwrap();
    assert!(body < done, "the loop ends after its body:\n{}", r.stdout);
}

#[test]
fn documents_given_with_document_run_as_children() {
    let dir = TempDir::new("child");
    let child = dir.write(
        "child.yaml",
        r#"schemaVersion: '0.3'
parameters:
  Msg: { type: String }
outputs: [shout.Out]
mainSteps:
  - name: shout
    action: aws:executeScript
    inputs:
      Runtime: python3.11
      Handler: handler
      InputPayload: { m: '{{ Msg }}' }
      Script: |
        def handler(events, context):
            return events["m"].upper()
    outputs:
      - { Name: Out, Selector: $.Payload, Type: String }
"#,
    );
    let parent = r#"schemaVersion: '0.3'
mainSteps:
  - name: call
    action: aws:executeAutomation
    inputs:
      DocumentName: Shouter
      RuntimeParameters: { Msg: [hi there] }
"#;
    let arg = format!("Shouter={}", child.display());
    let r = run(&dir, "parent.yaml", parent, &["--document", &arg]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("automation Shouter started"), "{}", r.all());
    assert!(r.stdout.contains("Shouter: step shout (aws:executeScript) Success"), "{}", r.all());
    assert!(r.stdout.contains("Out = HI THERE"), "{}", r.all());
    assert!(r.stdout.contains("step call (aws:executeAutomation) Success"), "{}", r.all());
}

const NAP: &str =
    "schemaVersion: '0.3'\nmainSteps:\n  - name: nap\n    action: aws:sleep\n    inputs: { Duration: PT30S }\n";

#[test]
fn timeout_cancels_and_exits_124() {
    let dir = TempDir::new("timeout");
    let path = dir.write("nap.yaml", NAP);
    let started = Instant::now();
    let r = finish(runner(&dir, &path, &["--timeout", "1"]).spawn().unwrap());
    assert_eq!(r.code, 124, "{}", r.all());
    assert!(r.stdout.contains("step nap (aws:sleep) Cancelled"), "{}", r.all());
    assert!(r.stdout.contains(" Cancelled in "), "{}", r.all());
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

#[test]
fn ctrl_c_cancels_and_exits_130() {
    let dir = TempDir::new("interrupt");
    let path = dir.write("nap.yaml", NAP);
    let mut child = runner(&dir, &path, &[]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the sleep starts");
        seen.push(line.clone());
        if line.contains("step nap (aws:sleep) InProgress") {
            break;
        }
    }
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let r = finish(child);
    seen.extend(rx.try_iter());
    let text = seen.join("\n");
    assert_eq!(r.code, 130, "{text}\n{}", r.stderr);
    assert!(text.contains("Interrupted"), "{text}");
    assert!(text.contains("step nap (aws:sleep) Cancelled"), "{text}");
}

#[test]
fn the_database_is_temporary_unless_kept() {
    let dir = TempDir::new("keep");
    let tmp = dir.0.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let path = dir.write("quick.yaml", GATE);
    let r = finish(runner(&dir, &path, &["--approve"]).env("TMPDIR", &tmp).spawn().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the runner left {left:?} behind");

    let kept = dir.0.join("kept");
    let k = kept.to_str().unwrap();
    let r = finish(runner(&dir, &path, &["--approve", "--keep-data", k]).spawn().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(kept.join("ssmd.db").exists());
    // A second run on the kept database replaces the document of the same name.
    let r = finish(runner(&dir, &path, &["--approve", "--keep-data", k]).spawn().unwrap());
    assert_eq!(r.code, 0, "{}", r.all());
}
