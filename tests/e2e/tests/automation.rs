//! Automation executions survive `kill -9` of the server at every kind of wait — a sleep, an
//! approval, a running script, a rate-controlled fan-out — and two replicas on one PostgreSQL run
//! every step once, taking over each other's executions when one dies.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{AutomationExecution, DocumentFormat, DocumentType, SignalType, Target};
use ssmd_e2e::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Short leases so that PostgreSQL take-overs happen within the test's patience.
const ARGS: &[&str] = &["--automation-lease-seconds", "2"];

async fn runbook(c: &Client, name: &str, yaml: &str) {
    c.create_document()
        .name(name)
        .content(yaml)
        .document_type(DocumentType::Automation)
        .document_format(DocumentFormat::Yaml)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {}", message(&e)));
}

async fn start(c: &Client, name: &str, params: &[(&str, &str)]) -> String {
    let mut req = c.start_automation_execution().document_name(name);
    for (k, v) in params {
        req = req.parameters(*k, vec![v.to_string()]);
    }
    req.send().await.unwrap_or_else(|e| panic!("starting {name}: {}", message(&e))).automation_execution_id.unwrap()
}

async fn get(c: &Client, id: &str) -> AutomationExecution {
    c.get_automation_execution().automation_execution_id(id).send().await.unwrap().automation_execution.unwrap()
}

fn status(x: &AutomationExecution) -> &str {
    x.automation_execution_status().map(|s| s.as_str()).unwrap_or_default()
}

fn step_status<'a>(x: &'a AutomationExecution, step: &str) -> &'a str {
    x.step_executions()
        .iter()
        .find(|s| s.step_name() == Some(step))
        .and_then(|s| s.step_status())
        .map(|s| s.as_str())
        .unwrap_or("missing")
}

/// Polls until `done` holds, failing after `secs`.
async fn wait_until(
    c: &Client,
    id: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&AutomationExecution) -> bool,
) -> AutomationExecution {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(out) = c.get_automation_execution().automation_execution_id(id).send().await {
            let x = out.automation_execution.unwrap();
            if done(&x) {
                return x;
            }
            assert!(Instant::now() < deadline, "{what}: still {} after {secs} s: {x:?}", status(&x));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn finished(c: &Client, id: &str, secs: u64) -> AutomationExecution {
    wait_until(c, id, secs, "finish", |x| matches!(status(x), "Success" | "Failed" | "TimedOut" | "Cancelled")).await
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A script step that appends `text` to `file`, then sleeps `secs`.
fn recording_step(name: &str, file: &Path, text: &str, secs: f64) -> String {
    format!(
        r#"  - name: {name}
    action: aws:executeScript
    inputs:
      Runtime: python3.11
      Handler: handler
      InputPayload: {{ text: "{text}" }}
      Script: |
        import time
        def handler(events, context):
            with open("{}", "a") as f:
                f.write(events["text"] + "\n")
            time.sleep({secs})
            return {{"ok": True}}
"#,
        file.display()
    )
}

both_backends!(a_sleep_survives_kill_9, args = ARGS, |mut server: Server| async move {
    let dir = tempfile_dir();
    let file = dir.join("runs");
    let c = server.client();
    let doc = format!(
        "schemaVersion: '0.3'\nmainSteps:\n  - name: nap\n    action: aws:sleep\n    inputs: {{ Duration: PT3S }}\n{}",
        recording_step("after", &file, "ran", 0.0)
    );
    runbook(&c, "CrashSleep", &doc).await;
    let id = start(&c, "CrashSleep", &[]).await;
    wait_until(&c, id.as_str(), 10, "sleep starts", |x| step_status(x, "nap") == "InProgress").await;
    server.restart();
    let c = server.client();
    let x = finished(&c, &id, 30).await;
    assert_eq!(status(&x), "Success", "{x:?}");
    assert_eq!(step_status(&x, "nap"), "Success");
    assert_eq!(lines(&file), vec!["ran"], "the step after the sleep ran once");
});

both_backends!(an_approval_wait_survives_kill_9, args = ARGS, |mut server: Server| async move {
    let c = server.client();
    let doc = "schemaVersion: '0.3'\nmainSteps:\n  - name: gate\n    action: aws:approve\n    inputs:\n      Approvers: [\"{{ global:ACCOUNT_ID }}\"]\n      Message: go?\n";
    runbook(&c, "CrashApprove", doc).await;
    let id = start(&c, "CrashApprove", &[]).await;
    wait_until(&c, &id, 10, "approval waits", |x| status(x) == "Waiting").await;
    server.restart();
    let c = server.client();
    assert_eq!(status(&get(&c, &id).await), "Waiting");
    c.send_automation_signal()
        .automation_execution_id(&id)
        .signal_type(SignalType::Approve)
        .payload("Comment", vec!["after the crash".into()])
        .send()
        .await
        .unwrap();
    let x = finished(&c, &id, 20).await;
    assert_eq!(status(&x), "Success", "{x:?}");
});

both_backends!(a_running_script_reruns_at_most_once_after_kill_9, args = ARGS, |mut server: Server| async move {
    let dir = tempfile_dir();
    let file = dir.join("starts");
    let c = server.client();
    let doc = format!("schemaVersion: '0.3'\nmainSteps:\n{}", recording_step("slow", &file, "start", 3.0));
    runbook(&c, "CrashScript", &doc).await;
    let id = start(&c, "CrashScript", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while lines(&file).is_empty() {
        assert!(Instant::now() < deadline, "the script never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart();
    let c = server.client();
    let x = finished(&c, &id, 40).await;
    assert_eq!(status(&x), "Success", "{x:?}");
    assert_eq!(lines(&file).len(), 2, "interrupted once, the step ran again exactly once");
});

both_backends!(a_fan_out_survives_kill_9, args = ARGS, |mut server: Server| async move {
    let dir = tempfile_dir();
    let file = dir.join("children");
    let c = server.client();
    let doc = format!(
        "schemaVersion: '0.3'\nparameters:\n  Item: {{ type: String }}\nmainSteps:\n{}",
        recording_step("work", &file, "{{ Item }}", 1.0)
    );
    runbook(&c, "CrashFan", &doc).await;
    let target = Target::builder()
        .key("ParameterValues")
        .values("a")
        .values("b")
        .values("c")
        .values("d")
        .values("e")
        .values("f")
        .build();
    let id = c
        .start_automation_execution()
        .document_name("CrashFan")
        .target_parameter_name("Item")
        .targets(target)
        .max_concurrency("2")
        .send()
        .await
        .unwrap()
        .automation_execution_id
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&file).len() < 3 {
        assert!(Instant::now() < deadline, "the fan-out never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart();
    let c = server.client();
    let x = finished(&c, &id, 60).await;
    assert_eq!(status(&x), "Success", "{x:?}");
    let succeeded =
        x.step_executions().iter().filter(|s| s.step_status().map(|s| s.as_str()) == Some("Success")).count();
    assert_eq!(succeeded, 6, "one successful child per target: {x:?}");
    let mut seen = lines(&file);
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["a", "b", "c", "d", "e", "f"], "every target ran");
    assert!(lines(&file).len() <= 8, "at most the two running children re-ran: {:?}", lines(&file));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_each_step_once_and_take_over_from_a_dead_one() {
    let dir = tempfile_dir();
    let file = dir.join("steps");
    let mut a = Server::start_with(Backend::Postgres, ARGS);
    let b = a.replica();
    let (ca, cb) = (a.client(), b.client());
    let doc = format!(
        "schemaVersion: '0.3'\nmainSteps:\n  - name: nap\n    action: aws:sleep\n    inputs: {{ Duration: PT1S }}\n{}",
        recording_step("once", &file, "{{ automation:EXECUTION_ID }}", 0.0)
    );
    runbook(&ca, "Replicated", &doc).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        ids.push(start(c, "Replicated", &[]).await);
    }
    // Kill one replica while executions sleep; the other finishes them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill9();
    for id in &ids {
        let x = finished(&cb, id, 60).await;
        assert_eq!(status(&x), "Success", "{x:?}");
    }
    let ran = lines(&file);
    for id in &ids {
        assert_eq!(ran.iter().filter(|l| *l == id).count(), 1, "the step of {id} ran exactly once: {ran:?}");
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ssmd-e2e-{}", ssmd_core_free_uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ssmd_core_free_uuid() -> String {
    format!("{}-{}", std::process::id(), Instant::now().elapsed().as_nanos() ^ rand_nanos())
}

fn rand_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

both_backends!(
    executions_past_the_running_limit_wait_in_pending,
    args = &["--automation-max-running", "1", "--automation-max-queued", "2"],
    |server: Server| async move {
        let c = server.client();
        let doc = "schemaVersion: '0.3'\nmainSteps:\n  - name: gate\n    action: aws:approve\n    inputs:\n      Approvers: [\"{{ global:ACCOUNT_ID }}\"]\n";
        runbook(&c, "Queued", doc).await;
        let first = start(&c, "Queued", &[]).await;
        wait_until(&c, &first, 10, "the first runs", |x| status(x) == "Waiting").await;
        let second = start(&c, "Queued", &[]).await;
        let third = start(&c, "Queued", &[]).await;
        // Two wait in Pending; a fourth start is over the queue limit.
        let err = c.start_automation_execution().document_name("Queued").send().await.unwrap_err();
        assert_eq!(code(&err), "AutomationExecutionLimitExceededException", "{}", message(&err));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!((status(&get(&c, &second).await), status(&get(&c, &third).await)), ("Pending", "Pending"));
        for id in [&first, &second, &third] {
            // Generous: the whole suite shares two cores; alone this takes under a second.
            wait_until(&c, id, 30, "its turn", |x| status(x) == "Waiting").await;
            c.send_automation_signal()
                .automation_execution_id(id)
                .signal_type(SignalType::Approve)
                .send()
                .await
                .unwrap();
            assert_eq!(status(&finished(&c, id, 30).await), "Success");
        }
    }
);
