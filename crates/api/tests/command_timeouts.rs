//! Run Command delivery timeouts, on a manual clock driving the real engine: an invocation no
//! node picked up before `TimeoutSeconds` ends TimedOut / DeliveryTimedOut (once), its message
//! is withdrawn, and one a node is running is left to the node — the command's deadline job
//! fires when the clock passes it, not before, and nothing sleeps.

mod common;

use common::*;
use serde_json::{Value, json};
use ssmd_api::Service;

/// When the command's deadline job is next due.
async fn deadline(svc: &Service, id: &str) -> Option<i64> {
    svc.store().job(ssmd_store::COMMAND_JOB, id).await.unwrap().map(|j| j.due_ms)
}

#[tokio::test]
async fn undelivered_invocations_time_out_once_and_running_ones_are_left_alone() {
    let Running { svc, clock, engine, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 3})).await;
    let busy = node(svc, &a).await;
    let idle = node(svc, &a).await;
    let queued = node(svc, &a).await;

    // Concurrency 2: `queued` is never even sent before the deadline.
    let cmd = call(
        &svc,
        &c,
        "SendCommand",
        json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [busy.0, idle.0, queued.0],
               "Parameters": {"commands": ["sleep 100"]}, "TimeoutSeconds": 30, "MaxConcurrency": "2",
               "MaxErrors": "5"}),
    )
    .await;
    let id = cmd["Command"]["CommandId"].as_str().unwrap().to_string();
    let m = messages(svc, &busy).await;
    assert_eq!(m.len(), 1);
    let reply = json!({"MessageId": m[0]["MessageId"], "ReplyId": "r1",
                       "Payload": json!({"documentStatus": "InProgress"}).to_string()});
    ssmd_api::commands::delivery::handle(svc, &busy.1, "SendReply", reply).await.unwrap();

    // Before the deadline nothing times out: the deadline job waits for the clock.
    assert_eq!(deadline(svc, &id).await, Some(START_MS + 30_000));
    clock.advance(29_000);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(deadline(svc, &id).await, Some(START_MS + 30_000));
    let inv = |node: &str| json!({"CommandId": id, "InstanceId": node});
    let get = |v: Value| {
        let svc = &svc;
        let c = c.clone();
        async move { call(svc, &c, "GetCommandInvocation", v).await }
    };
    assert_eq!(get(inv(&idle.0)).await["Status"], "Pending");

    clock.advance(2_000);
    eventually("the delivery timeout", || async { get(inv(&queued.0)).await["Status"] == "TimedOut" }).await;
    // Then the job waits for ExpiresAfter (delivery plus the document's 3600 s).
    eventually("the move to ExpiresAfter", || async { deadline(svc, &id).await == Some(START_MS + 3_630_000) }).await;
    for n in [&idle.0, &queued.0] {
        let i = get(inv(n)).await;
        assert_eq!((i["Status"].as_str(), i["StatusDetails"].as_str()), (Some("TimedOut"), Some("DeliveryTimedOut")));
    }
    assert_eq!(get(inv(&busy.0)).await["Status"], "InProgress");
    let withdrawn = svc.store().message(&idle.0, &ssmd_store::send_message_id(&id, &idle.0)).await.unwrap();
    assert!(withdrawn.is_none(), "the timed-out message was not withdrawn");
    let listed = call(svc, &c, "ListCommands", json!({"CommandId": id})).await;
    let cmd = &listed["Commands"][0];
    assert_eq!(cmd["DeliveryTimedOutCount"], 2);
    assert_eq!(cmd["CompletedCount"], 2);
    assert_eq!(cmd["Status"], "InProgress");

    // The running node finishes: the command ends, with two errors (within MaxErrors 5).
    let reply = json!({"MessageId": m[0]["MessageId"], "ReplyId": "r2",
                       "Payload": json!({"documentStatus": "Success", "runtimeStatus": {"aws:runShellScript":
                            {"status": "Success", "code": 0, "standardOutput": "ok"}}}).to_string()});
    ssmd_api::commands::delivery::handle(svc, &busy.1, "SendReply", reply).await.unwrap();
    let listed = call(svc, &c, "ListCommands", json!({"CommandId": id})).await;
    let cmd = &listed["Commands"][0];
    assert_eq!((cmd["Status"].as_str(), cmd["StatusDetails"].as_str()), (Some("Success"), Some("Incomplete")));
    assert_eq!(cmd["CompletedCount"], 3);
    // An ended command needs no deadline any more.
    assert_eq!(deadline(svc, &id).await, None);
    engine.shutdown().await;
}

#[tokio::test]
async fn past_expires_after_a_silent_running_node_no_longer_keeps_the_command_open() {
    let Running { svc, clock, engine, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 1})).await;
    let silent = node(svc, &a).await;
    let cmd = call(
        &svc,
        &c,
        "SendCommand",
        json!({"DocumentName": "AWS-RunShellScript", "InstanceIds": [silent.0], "TimeoutSeconds": 30,
               "Parameters": {"commands": ["sleep 100"], "executionTimeout": ["100"]}}),
    )
    .await;
    let id = cmd["Command"]["CommandId"].as_str().unwrap().to_string();
    // ExpiresAfter = RequestedDateTime + TimeoutSeconds + executionTimeout.
    assert_eq!(cmd["Command"]["ExpiresAfter"].as_f64().unwrap(), (START_MS + 130_000) as f64 / 1000.0);
    let m = messages(svc, &silent).await;
    let reply = json!({"MessageId": m[0]["MessageId"], "ReplyId": "r1",
                       "Payload": json!({"documentStatus": "InProgress"}).to_string()});
    ssmd_api::commands::delivery::handle(svc, &silent.1, "SendReply", reply).await.unwrap();

    let get = || async {
        let v = call(svc, &c, "GetCommandInvocation", json!({"CommandId": id, "InstanceId": silent.0})).await;
        (v["Status"].as_str().unwrap().to_string(), v["StatusDetails"].as_str().unwrap().to_string())
    };
    clock.advance(31_000);
    eventually("the move to ExpiresAfter", || async { deadline(svc, &id).await == Some(START_MS + 130_000) }).await;
    assert_eq!(get().await, ("InProgress".to_string(), "InProgress".to_string()));
    clock.advance(99_000);
    eventually("the end at ExpiresAfter", || async { get().await.0 == "TimedOut" }).await;
    assert_eq!(get().await, ("TimedOut".to_string(), "DeliveryTimedOut".to_string()));
    assert_eq!(deadline(svc, &id).await, None);
    let listed = call(svc, &c, "ListCommands", json!({"CommandId": id})).await;
    let cmd = &listed["Commands"][0];
    assert_eq!((cmd["Status"].as_str(), cmd["StatusDetails"].as_str()), (Some("TimedOut"), Some("DeliveryTimedOut")));
    // A result that arrives after that changes nothing.
    let reply = json!({"MessageId": m[0]["MessageId"], "ReplyId": "r2",
                       "Payload": json!({"documentStatus": "Success"}).to_string()});
    let _ = ssmd_api::commands::delivery::handle(svc, &silent.1, "SendReply", reply).await;
    assert_eq!(get().await.0, "TimedOut");
    engine.shutdown().await;
}
