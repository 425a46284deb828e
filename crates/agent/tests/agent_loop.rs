//! The whole agent against a fake service, through its command line: `register` (and its
//! refusals), then `run`: token, ping, a Run Command delivered by `GetMessages` answered with
//! an in-progress reply, an acknowledgement and a final reply with the script's results; a
//! redelivered message acknowledged again but not run again; a cancel; unknown topics and
//! unreadable payloads failed; and a clean exit on SIGTERM.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ssmd-agent");

fn agent(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env("SSMD_AGENT_STATE_DIR", state).output().unwrap()
}

fn register(server: &Server, state: &Path, code: &str, extra: &[&str]) -> std::process::Output {
    let url = server.url();
    let mut args = vec!["register", "--endpoint", &url, "--code", code, "--id", ACTIVATION_ID, "--region", "us-east-1"];
    args.extend_from_slice(extra);
    agent(state, &args)
}

struct Running(Child);

impl Running {
    fn start(state: &Path) -> Running {
        Running::start_with(state, &["--ping-seconds", "2", "--max-parallel", "2"])
    }

    fn start_with(state: &Path, args: &[&str]) -> Running {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(state.join("agent.log")).unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .args(args)
            .env("SSMD_AGENT_STATE_DIR", state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Running(child)
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        // SAFETY: signals the child this test started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return (s, start.elapsed());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the agent did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn final_reply(server: &Server, message_id: &str) -> serde_json::Value {
    let r = server
        .wait_for(Duration::from_secs(30), |r| {
            r.op() == "SendReply"
                && r.json()["MessageId"] == message_id
                && reply_payload(r)["documentStatus"] != "InProgress"
        })
        .unwrap_or_else(|| panic!("no final reply for {message_id}"));
    reply_payload(&r)
}

#[test]
fn register_refusals_and_bad_arguments() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let state = temp_dir("refused");
    let out = register(&server, &state, "WRONGCODEWRONGCODEWRONG", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registration refused: InvalidActivation"), "{err}");
    assert!(!state.join("registration.json").exists());

    let out = agent(&state, &["register", "--endpoint", "http://127.0.0.1:1", "--code", CODE]);
    assert_eq!(out.status.code(), Some(2), "missing arguments are a usage error");
    let out = agent(&state, &["register", "--endpoint", "localhost:80", "--code", CODE, "--id", "x", "--region", "r"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an http:// or https:// URL"));
    let out = agent(&state, &["run", "--max-parallel", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = agent(&state, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not registered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listening.
    let out = agent(
        &state,
        &[
            "register",
            "--endpoint",
            "http://127.0.0.1:1",
            "--code",
            CODE,
            "--id",
            ACTIVATION_ID,
            "--region",
            "us-east-1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(state).unwrap();
}

#[test]
fn full_loop() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let base = temp_dir("loop");
    let state = base.join("state");

    // Registration: the agent creates its state directory.
    let out = register(&server, &state, CODE, &["--name", "web-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), INSTANCE_ID);
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    for f in ["registration.json", "private_key", "public_key", "fingerprint"] {
        assert_eq!(std::fs::metadata(state.join(f)).unwrap().mode() & 0o777, 0o600, "{f}");
    }
    let again = register(&server, &state, CODE, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered as mi-0123456789abcdef0"));

    // Run: token, ping.
    let mut running = Running::start(&state);
    let ping = server.wait_for(Duration::from_secs(30), |r| r.op() == "UpdateInstanceInformation").expect("a ping");
    let p = ping.json();
    assert_eq!(p["InstanceId"], INSTANCE_ID);
    assert_eq!(
        (p["AgentName"].as_str(), p["AgentStatus"].as_str(), p["PlatformType"].as_str()),
        (Some("ssmd-agent"), Some("Active"), Some("Linux"))
    );
    assert_eq!(p["ComputerName"], "web-1");
    assert_eq!(p["IPAddress"], "127.0.0.1");
    assert!(!p["PlatformName"].as_str().unwrap().is_empty());
    assert_eq!(server.calls("RequestManagedInstanceRoleToken").len(), 1);
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("credentials.json")).unwrap()).unwrap();
    assert_eq!(creds["AccessKeyId"], "ASIATEST0");
    assert_eq!(std::fs::metadata(state.join("credentials.json")).unwrap().mode() & 0o777, 0o600);

    // A Run Command.
    let msg = send_command(
        "cmd-1",
        run_shell_script(),
        json!({"commands": ["echo hello", "echo oops >&2", "echo \"$AWS_SSM_INSTANCE_ID\"", "exit 3"]}),
    );
    let mid = msg["MessageId"].as_str().unwrap().to_string();
    ssm.deliver(msg.clone());
    let fin = final_reply(&server, &mid);
    let rs = &fin["runtimeStatus"]["aws:runShellScript"];
    assert_eq!(fin["documentStatus"], "Failed", "{fin}");
    assert_eq!(fin["additionalInfo"]["runtimeStatusCounts"], json!({"Failed": 1}));
    assert_eq!(fin["additionalInfo"]["agent"]["name"], "ssmd-agent");
    assert_eq!((rs["status"].as_str(), rs["code"].as_i64()), (Some("Failed"), Some(3)));
    assert_eq!(rs["standardOutput"], format!("hello\n{INSTANCE_ID}\n"));
    assert_eq!(rs["standardError"], "oops\n\nfailed to run commands: exit status 3");
    assert_eq!(
        rs["output"],
        format!("hello\n{INSTANCE_ID}\n\n----------ERROR-------\noops\n\nfailed to run commands: exit status 3")
    );
    assert_eq!((rs["name"].as_str(), rs["stepName"].as_str()), (Some("aws:runShellScript"), Some("")));

    // The order: in-progress reply, then acknowledgement, then the final reply.
    let reqs = server.requests();
    let pos = |pred: &dyn Fn(&Request) -> bool| reqs.iter().position(pred).unwrap();
    let first_reply = pos(&|r| r.op() == "SendReply" && r.json()["MessageId"] == mid.as_str());
    let ack = pos(&|r| r.op() == "AcknowledgeMessage" && r.json()["MessageId"] == mid.as_str());
    let last_reply = pos(&|r| r.op() == "SendReply" && reply_payload(r)["documentStatus"] == "Failed");
    assert!(first_reply < ack && ack < last_reply, "{first_reply} {ack} {last_reply}");
    let ip = reply_payload(&reqs[first_reply]);
    assert_eq!((ip["documentStatus"].as_str(), ip["runtimeStatus"].is_null()), (Some("InProgress"), true));
    let ids: Vec<String> =
        server.calls("SendReply").iter().map(|r| r.json()["ReplyId"].as_str().unwrap().to_string()).collect();
    // In-progress, the step as it ended, the document's end (the AWS agent's sequence).
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "a new ReplyId per reply");
    let step = pos(&|r| {
        r.op() == "SendReply"
            && reply_payload(r)["runtimeStatus"].is_object()
            && reply_payload(r)["documentStatus"] == "InProgress"
    });
    assert!(ack < step && step < last_reply, "{ack} {step} {last_reply}");
    let sp = reply_payload(&reqs[step]);
    assert_eq!(sp["runtimeStatus"]["aws:runShellScript"]["status"], "Failed");
    let gm = server.calls("GetMessages")[0].json();
    assert_eq!((gm["Destination"].as_str(), gm["VisibilityTimeoutInSeconds"].as_u64()), (Some(INSTANCE_ID), Some(10)));

    // Redelivered (a lost ack): acknowledged again, not run again.
    ssm.deliver(msg);
    server
        .wait_for(Duration::from_secs(20), |r| {
            r.op() == "AcknowledgeMessage" && r.json()["MessageId"] == mid.as_str() && r.at > reqs[ack].at
        })
        .expect("a second acknowledgement");
    std::thread::sleep(Duration::from_millis(500));
    let replies = server.calls("SendReply").iter().filter(|r| r.json()["MessageId"] == mid.as_str()).count();
    assert_eq!(replies, 3, "no new replies for a redelivery");

    // A cancel of a running command.
    let long = send_command("cmd-2", run_shell_script(), json!({"commands": ["echo started", "sleep 60"]}));
    let long_id = long["MessageId"].as_str().unwrap().to_string();
    ssm.deliver(long);
    server
        .wait_for(Duration::from_secs(20), |r| {
            r.op() == "AcknowledgeMessage" && r.json()["MessageId"] == long_id.as_str()
        })
        .expect("ack");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    ssm.deliver(cancel_command("cancel-1", "cmd-2"));
    let fin = final_reply(&server, &long_id);
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(fin["documentStatus"], "Cancelled", "{fin}");
    let rs = &fin["runtimeStatus"]["aws:runShellScript"];
    assert_eq!((rs["status"].as_str(), rs["code"].as_i64()), (Some("Cancelled"), Some(137)));
    assert_eq!(rs["standardOutput"], "started\n");
    let cancel_id = format!("aws.ssm.cancel-1.{INSTANCE_ID}");
    let cancel_ack = server
        .wait_for(Duration::from_secs(5), |r| {
            r.op() == "AcknowledgeMessage" && r.json()["MessageId"] == cancel_id.as_str()
        })
        .expect("the cancel message acknowledged");
    // As the AWS agent does for every message: a document-level reply before the acknowledgement.
    let cancel_reply = server
        .calls("SendReply")
        .into_iter()
        .find(|r| r.json()["MessageId"] == cancel_id.as_str())
        .expect("a reply to the cancel message");
    assert!(cancel_reply.at <= cancel_ack.at);
    let p = reply_payload(&cancel_reply);
    assert_eq!((p["documentStatus"].as_str(), p["runtimeStatus"].is_null()), (Some("InProgress"), true));

    // Unknown topics and unreadable payloads.
    let mut odd = send_command("cmd-3", run_shell_script(), json!({}));
    odd["Topic"] = json!("aws.ssm.somethingElse");
    ssm.deliver(odd);
    let mut broken = send_command("cmd-4", run_shell_script(), json!({}));
    broken["Payload"] = json!("{not json");
    ssm.deliver(broken);
    let f = server
        .wait_for(Duration::from_secs(20), |r| {
            r.op() == "FailMessage" && r.json()["MessageId"] == format!("aws.ssm.cmd-3.{INSTANCE_ID}")
        })
        .expect("FailMessage for the unknown topic");
    assert_eq!(f.json()["FailureType"], "NoHandlerExists");
    let f = server
        .wait_for(Duration::from_secs(20), |r| {
            r.op() == "FailMessage" && r.json()["MessageId"] == format!("aws.ssm.cmd-4.{INSTANCE_ID}")
        })
        .expect("FailMessage for the broken payload");
    assert_eq!(f.json()["FailureType"], "InternalHandlerException");

    // Every signature checked out, each call signed for its service.
    assert!(ssm.bad_signatures.lock().unwrap().is_empty(), "{:?}", ssm.bad_signatures.lock().unwrap());
    assert!(server.calls("UpdateInstanceInformation").len() >= 2, "pings repeat every --ping-seconds");

    // SIGTERM: a clean, prompt exit.
    let (status, took) = running.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(10), "{took:?}");
    let log = std::fs::read_to_string(state.join("agent.log")).unwrap();
    assert!(log.contains("starting") && log.contains("stopped"), "{log}");
    assert!(log.lines().all(|l| l.len() > 24 && l.as_bytes()[4] == b'-'), "{log}");
    std::fs::remove_dir_all(base).unwrap();
}

#[test]
fn shutdown_reports_killed_commands_and_keeps_queued_ones_for_the_next_run() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let state = temp_dir("shutdown");
    assert!(register(&server, &state, CODE, &[]).status.success());
    let args = ["--max-parallel", "1", "--shutdown-grace-seconds", "1"];
    let mut running = Running::start_with(&state, &args);
    let long = send_command("long", run_shell_script(), json!({"commands": ["echo begin", "sleep 60"]}));
    let queued = send_command("queued", run_shell_script(), json!({"commands": ["echo later"]}));
    let (long_id, queued_id) =
        (long["MessageId"].as_str().unwrap().to_string(), queued["MessageId"].as_str().unwrap().to_string());
    ssm.deliver(long);
    ssm.deliver(queued);
    server
        .wait_for(Duration::from_secs(20), |r| {
            r.op() == "AcknowledgeMessage" && r.json()["MessageId"] == queued_id.as_str()
        })
        .expect("both acknowledged");
    std::thread::sleep(Duration::from_millis(500));
    let (status, took) = running.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(12), "{took:?}");
    let fin = final_reply(&server, &long_id);
    let rs = &fin["runtimeStatus"]["aws:runShellScript"];
    assert_eq!((fin["documentStatus"].as_str(), rs["code"].as_i64()), (Some("Failed"), Some(137)), "{fin}");
    assert!(rs["standardError"].as_str().unwrap().contains("ssmd-agent stopped while the command was running"));
    assert!(
        server
            .calls("SendReply")
            .iter()
            .all(|r| r.json()["MessageId"] != queued_id.as_str() || reply_payload(r)["documentStatus"] == "InProgress"),
        "the queued command did not run"
    );
    assert_eq!(std::fs::read_dir(state.join("inbox")).unwrap().count(), 1);

    // The next run runs it.
    let mut again = Running::start_with(&state, &args);
    let fin = final_reply(&server, &queued_id);
    assert_eq!(fin["runtimeStatus"]["aws:runShellScript"]["standardOutput"], "later\n");
    assert_eq!(again.terminate().0.code(), Some(0));
    assert_eq!(std::fs::read_dir(state.join("inbox")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(state.join("replies")).unwrap().count(), 0);
    std::fs::remove_dir_all(state).unwrap();
}

#[test]
fn ssm_secure_references_are_read_by_the_node_with_its_credentials() {
    let ssm = Ssm::new();
    let server = Server::start(ssm.handler());
    let base = temp_dir("secure");
    let state = base.join("state");
    let out = register(&server, &state, CODE, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _running = Running::start(&state);

    let msg = send_command("cmd-s1", run_shell_script(), json!({"commands": ["echo pw={{ssm-secure:/db/pw}}"]}));
    let mid = msg["MessageId"].as_str().unwrap().to_string();
    ssm.deliver(msg);
    let fin = final_reply(&server, &mid);
    assert_eq!(fin["documentStatus"], "Success", "{fin}");
    assert_eq!(fin["runtimeStatus"]["aws:runShellScript"]["standardOutput"], "pw=s3cret-value\n");
    let asked = server.calls("GetParameters");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].json(), json!({"Names": ["/db/pw"], "WithDecryption": true}));

    let msg = send_command("cmd-s2", run_shell_script(), json!({"commands": ["echo {{ssm-secure:/missing}}"]}));
    let mid = msg["MessageId"].as_str().unwrap().to_string();
    ssm.deliver(msg);
    let fin = final_reply(&server, &mid);
    assert_eq!(fin["documentStatus"], "Failed", "{fin}");
    let text = fin.to_string();
    assert!(text.contains("{{ssm-secure:/missing}}") && text.contains("ParameterNotFound"), "{text}");
    let log = std::fs::read_to_string(state.join("agent.log")).unwrap_or_default();
    assert!(!log.contains("s3cret-value"), "the value was logged");
}
