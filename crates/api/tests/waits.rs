//! Waiting holds nothing: executions waiting in `aws:runCommand` hold no engine slot (the step is
//! linked to its command's end and driven again when it ends or its time is up), so a new
//! execution runs at once however many wait; the command's end wakes its step; and a step
//! whose time is up cancels its command — all on a manual clock.

mod common;

use common::*;
use serde_json::{Value, json};
use ssmd_api::Service;
use ssmd_model::Caller;

const WAITING: usize = 24;

async fn execution(svc: &Service, c: &Caller, id: &str) -> Value {
    call(svc, c, "GetAutomationExecution", json!({"AutomationExecutionId": id})).await["AutomationExecution"].clone()
}

async fn start(svc: &Service, c: &Caller, name: &str, params: Value) -> String {
    let mut input = json!({"DocumentName": name});
    if params.as_object().is_some_and(|p| !p.is_empty()) {
        input["Parameters"] = params;
    }
    let out = call(svc, c, "StartAutomationExecution", input).await;
    out["AutomationExecutionId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_waiting_for_commands_hold_no_slot() {
    // Four slots: before, four executions in aws:runCommand filled the engine.
    let settings = ssmd_api::automation::Settings { workers: 4, ..Default::default() };
    let Running { svc, clock, engine, .. } = &service_with(settings).await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 1})).await;
    let silent = node(svc, &a).await;
    let wait_doc = json!({
        "schemaVersion": "0.3",
        "parameters": {"Node": {"type": "String"}},
        "mainSteps": [{"name": "cmd", "action": "aws:runCommand", "timeoutSeconds": 600,
            "inputs": {"DocumentName": "AWS-RunShellScript", "InstanceIds": ["{{ Node }}"],
                       "Parameters": {"commands": ["echo hi"]}}}]
    });
    call(
        svc,
        &c,
        "CreateDocument",
        json!({"Name": "Waits", "DocumentType": "Automation", "Content": wait_doc.to_string()}),
    )
    .await;
    let quick_doc = json!({"schemaVersion": "0.3", "mainSteps": [{"name": "nap", "action": "aws:sleep",
        "inputs": {"Duration": "PT0S"}}]});
    call(
        svc,
        &c,
        "CreateDocument",
        json!({"Name": "Quick", "DocumentType": "Automation", "Content": quick_doc.to_string()}),
    )
    .await;

    let mut waiting = Vec::new();
    for _ in 0..WAITING {
        waiting.push(start(svc, &c, "Waits", json!({"Node": [silent.0]})).await);
    }
    eventually("every command sent", || async {
        call(svc, &c, "ListCommands", json!({"InstanceId": silent.0, "MaxResults": 50})).await["Commands"]
            .as_array()
            .unwrap()
            .len()
            == WAITING
    })
    .await;
    // They all wait, and none holds its job: each is due only at its step's deadline.
    eventually("every execution released", || async {
        let mut released = 0;
        for id in &waiting {
            let job = svc.store().job(ssmd_store::AUTOMATION_JOB, id).await.unwrap();
            released += usize::from(job.is_some_and(|j| !j.leased && j.due_ms == START_MS + 600_000));
        }
        released == WAITING
    })
    .await;

    // A new execution runs at once.
    let quick = start(svc, &c, "Quick", json!({})).await;
    eventually("the quick execution", || async {
        execution(svc, &c, &quick).await["AutomationExecutionStatus"] == "Success"
    })
    .await;

    // The node runs the first command: its step is woken by the command's end.
    let msgs = messages(svc, &silent).await;
    let first = &msgs[0];
    let done = json!({"documentStatus": "Success", "runtimeStatus": {"aws:runShellScript":
        {"status": "Success", "code": 0, "standardOutput": "hi"}}});
    let reply = json!({"MessageId": first["MessageId"], "ReplyId": "r1", "Payload": done.to_string()});
    ssmd_api::commands::delivery::handle(svc, &silent.1, "SendReply", reply).await.unwrap();
    let mut owner = None;
    for _ in 0..500 {
        for id in &waiting {
            if execution(svc, &c, id).await["AutomationExecutionStatus"] == "Success" {
                owner = Some(id.clone());
            }
        }
        if owner.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let owner = owner.expect("the command's end woke its step");

    // The others' time is up: each step times out and cancels its command.
    clock.advance(600_000);
    for id in waiting.iter().filter(|id| **id != owner) {
        eventually("the step's deadline", || async {
            execution(svc, &c, id).await["AutomationExecutionStatus"] == "TimedOut"
        })
        .await;
    }
    let listed = call(svc, &c, "ListCommands", json!({"InstanceId": silent.0, "MaxResults": 50})).await;
    let statuses: Vec<&str> =
        listed["Commands"].as_array().unwrap().iter().map(|c| c["Status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "Success").count(), 1, "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s != "Success").all(|s| *s == "Cancelling" || *s == "Cancelled"),
        "the timed-out steps' commands were cancelled: {statuses:?}"
    );
    engine.shutdown().await;
}
