//! Maintenance windows running on the real engine with a manual clock: a rate window fires at
//! its occurrences (not before, once), runs its tasks in priority order over registered
//! targets with MaxConcurrency and MaxErrors, starts automations, honours the cutoff, cancels,
//! records overlapping and missed runs, substitutes pseudo-parameters, and forgets ended
//! executions after the history days. Nodes are registered and answer in-process.

mod common;

use common::*;
use serde_json::{Value, json};
use ssmd_api::Service;
use ssmd_model::Caller;

const MINUTE: i64 = 60_000;

async fn window(svc: &Service, c: &Caller, extra: Value) -> String {
    let mut input = json!({"Name": "nightly", "Schedule": "rate(5 minutes)", "Duration": 2, "Cutoff": 1,
                           "AllowUnassociatedTargets": false});
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    call(svc, c, "CreateMaintenanceWindow", input).await["WindowId"].as_str().unwrap().to_string()
}

async fn target(svc: &Service, c: &Caller, window: &str, nodes: &[&str], owner: &str) -> String {
    let out = call(
        svc,
        c,
        "RegisterTargetWithMaintenanceWindow",
        json!({"WindowId": window, "ResourceType": "INSTANCE", "OwnerInformation": owner,
               "Targets": [{"Key": "InstanceIds", "Values": nodes}]}),
    )
    .await;
    out["WindowTargetId"].as_str().unwrap().to_string()
}

async fn shell_task(svc: &Service, c: &Caller, window: &str, target: &str, priority: i32, extra: Value) -> String {
    let mut input = json!({"WindowId": window, "TaskType": "RUN_COMMAND", "TaskArn": "AWS-RunShellScript",
        "Targets": [{"Key": "WindowTargetIds", "Values": [target]}], "Priority": priority,
        "MaxConcurrency": "1", "MaxErrors": "0",
        "TaskInvocationParameters": {"RunCommand": {"Parameters": {"commands": ["echo {{TARGET_ID}} {{WINDOW_EXECUTION_ID}}"]}}}});
    for (k, v) in extra.as_object().unwrap() {
        input[k] = v.clone();
    }
    call(svc, c, "RegisterTaskWithMaintenanceWindow", input).await["WindowTaskId"].as_str().unwrap().to_string()
}

async fn executions(svc: &Service, c: &Caller, window: &str) -> Vec<Value> {
    call(svc, c, "DescribeMaintenanceWindowExecutions", json!({"WindowId": window})).await["WindowExecutions"]
        .as_array()
        .unwrap()
        .clone()
}

async fn tasks(svc: &Service, c: &Caller, execution: &str) -> Vec<Value> {
    call(svc, c, "DescribeMaintenanceWindowExecutionTasks", json!({"WindowExecutionId": execution})).await
        ["WindowExecutionTaskIdentities"]
        .as_array()
        .unwrap()
        .clone()
}

async fn invocations(svc: &Service, c: &Caller, execution: &str, task: &str) -> Vec<Value> {
    call(
        svc,
        c,
        "DescribeMaintenanceWindowExecutionTaskInvocations",
        json!({"WindowExecutionId": execution, "TaskId": task}),
    )
    .await["WindowExecutionTaskInvocationIdentities"]
        .as_array()
        .unwrap()
        .clone()
}

/// The node's pending messages, answered with a final reply of `status` (and exit code).
async fn answer(svc: &Service, node: &(String, Caller), status: &str) -> Vec<Value> {
    let got = messages(svc, node).await;
    for m in &got {
        let code = if status == "Success" { 0 } else { 1 };
        let reply = json!({"MessageId": m["MessageId"], "ReplyId": ssmd_core::ids::uuid(),
            "Payload": json!({"documentStatus": status, "runtimeStatus": {"aws:runShellScript":
                {"status": status, "code": code, "standardOutput": "out"}}}).to_string()});
        ssmd_api::commands::delivery::handle(svc, &node.1, "SendReply", reply).await.unwrap();
    }
    got
}

/// The nodes with a command waiting for them: invocations still Pending, their message not yet
/// taken (GetMessages on such a node answers at once; on any other it would hold the poll).
async fn waiting(svc: &Service, c: &Caller) -> Vec<String> {
    let out = call(svc, c, "ListCommandInvocations", json!({})).await;
    out["CommandInvocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["Status"] == "Pending")
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect()
}

/// How many command invocations a node has had.
async fn sent_to(svc: &Service, c: &Caller, node: &str) -> usize {
    call(svc, c, "ListCommandInvocations", json!({"InstanceId": node})).await["CommandInvocations"]
        .as_array()
        .unwrap()
        .len()
}

/// The node of `nodes` with id `id`.
fn by_id<'a>(nodes: &'a [&'a (String, Caller)], id: &str) -> &'a (String, Caller) {
    nodes.iter().find(|n| n.0 == id).unwrap()
}

/// The commands lines a node was sent (`commands` parameter of its message).
fn script(message: &Value) -> String {
    let payload: Value = serde_json::from_str(message["Payload"].as_str().unwrap()).unwrap();
    payload["Parameters"]["commands"][0].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_rate_window_fires_once_per_occurrence_and_runs_tiers_over_its_targets() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 3})).await;
    let n1 = node(svc, &a).await;
    let n2 = node(svc, &a).await;
    let w = window(svc, &c, json!({})).await;
    let t = target(svc, &c, &w, &[&n1.0, &n2.0], "team-a").await;
    let registered = shell_task(svc, &c, &w, &t, 1, json!({})).await;
    // Priority 2: an automation, targetless, after the command tier.
    let second = call(
        svc,
        &c,
        "RegisterTaskWithMaintenanceWindow",
        json!({"WindowId": w, "TaskType": "AUTOMATION", "TaskArn": "AWS-Sleep", "Priority": 2,
               "TaskInvocationParameters": {"Automation": {"Parameters": {"Duration": ["PT1S"]}}}}),
    )
    .await["WindowTaskId"]
        .as_str()
        .unwrap()
        .to_string();
    let got = call(svc, &c, "GetMaintenanceWindow", json!({"WindowId": w})).await;
    assert_eq!(got["NextExecutionTime"], "2027-01-15T08:05:00.000Z");

    // Nothing before the occurrence.
    clock.advance(5 * MINUTE - 1);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(executions(svc, &c, &w).await.is_empty());
    clock.advance(1);
    eventually("the fire", || async { executions(svc, &c, &w).await.len() == 1 }).await;
    let x = executions(svc, &c, &w).await[0]["WindowExecutionId"].as_str().unwrap().to_string();

    // One node at a time (MaxConcurrency 1): n1 first (registration order), then n2.
    let mut sent = Vec::new();
    eventually("the first invocation", || async { waiting(svc, &c).await.len() == 1 }).await;
    let first = by_id(&[&n1, &n2], &waiting(svc, &c).await[0]).clone();
    let other = if first.0 == n1.0 { n2.clone() } else { n1.clone() };
    assert_eq!(sent_to(svc, &c, &other.0).await, 0, "MaxConcurrency 1 runs one node at a time");
    sent.extend(answer(svc, &first, "Success").await);
    eventually("the second invocation", || async { waiting(svc, &c).await == [other.0.clone()] }).await;
    sent.extend(answer(svc, &other, "Success").await);
    assert_eq!(script(&sent[0]), format!("echo {} {x}", first.0));

    // Then the automation tier; AWS-Sleep waits one second of the manual clock.
    let ts = tasks(svc, &c, &x).await;
    eventually("the automation to start", || async {
        let ts = tasks(svc, &c, &x).await;
        ts.iter().any(|t| t["TaskArn"] == "AWS-Sleep" && t["Status"] == "IN_PROGRESS")
    })
    .await;
    let _ = ts;
    clock.advance(1_000);
    eventually("the execution to succeed", || async { executions(svc, &c, &w).await[0]["Status"] == "SUCCESS" }).await;
    let ts = tasks(svc, &c, &x).await;
    assert_eq!(ts.len(), 2);
    assert!(ts.iter().all(|t| t["Status"] == "SUCCESS"), "{ts:?}");
    let get = call(svc, &c, "GetMaintenanceWindowExecution", json!({"WindowExecutionId": x})).await;
    assert_eq!(get["TaskIds"].as_array().unwrap().len(), 2);
    let command_task = ts.iter().find(|t| t["TaskType"] == "RUN_COMMAND").unwrap();
    let tid = command_task["TaskExecutionId"].as_str().unwrap();
    let invs = invocations(svc, &c, &x, tid).await;
    assert_eq!(invs.len(), 2);
    for inv in &invs {
        assert_eq!(inv["Status"], "SUCCESS");
        assert_eq!(inv["OwnerInformation"], "team-a");
        assert_eq!(inv["WindowTargetId"], t.as_str());
        let command = call(svc, &c, "ListCommands", json!({"CommandId": inv["ExecutionId"]})).await;
        assert_eq!(command["Commands"][0]["Status"], "Success");
        let params: Value = serde_json::from_str(inv["Parameters"].as_str().unwrap()).unwrap();
        assert_eq!(params["documentName"], "AWS-RunShellScript");
        assert_eq!((&params["maxConcurrency"], &params["maxErrors"]), (&json!("1"), &json!("0")));
    }
    let auto_task = ts.iter().find(|t| t["TaskType"] == "AUTOMATION").unwrap();
    let auto_inv = &invocations(svc, &c, &x, auto_task["TaskExecutionId"].as_str().unwrap()).await[0];
    let ax = call(svc, &c, "GetAutomationExecution", json!({"AutomationExecutionId": auto_inv["ExecutionId"]})).await;
    assert_eq!(ax["AutomationExecution"]["AutomationExecutionStatus"], "Success");
    assert_ne!(registered, second);

    // The next occurrence fires once more, five minutes after the first.
    clock.advance(5 * MINUTE);
    eventually("the second fire", || async { executions(svc, &c, &w).await.len() == 2 }).await;
}

#[tokio::test]
async fn max_errors_stops_a_task_and_fails_the_execution() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 3})).await;
    let nodes = [node(svc, &a).await, node(svc, &a).await, node(svc, &a).await];
    let w = window(svc, &c, json!({})).await;
    let ids: Vec<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
    let t = target(svc, &c, &w, &ids, "o").await;
    shell_task(svc, &c, &w, &t, 1, json!({})).await;
    clock.advance(5 * MINUTE);
    eventually("the first invocation", || async { waiting(svc, &c).await.len() == 1 }).await;
    let first = by_id(&[&nodes[0], &nodes[1], &nodes[2]], &waiting(svc, &c).await[0]).clone();
    answer(svc, &first, "Failed").await;
    eventually("the execution to fail", || async { executions(svc, &c, &w).await[0]["Status"] == "FAILED" }).await;
    let x = executions(svc, &c, &w).await[0]["WindowExecutionId"].as_str().unwrap().to_string();
    let task = &tasks(svc, &c, &x).await[0];
    assert_eq!(task["Status"], "FAILED");
    let invs = invocations(svc, &c, &x, task["TaskExecutionId"].as_str().unwrap()).await;
    let statuses: Vec<&str> = invs.iter().map(|i| i["Status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["FAILED", "CANCELLED", "CANCELLED"]);
    let total =
        call(svc, &c, "ListCommandInvocations", json!({})).await["CommandInvocations"].as_array().unwrap().len();
    assert_eq!(total, 1, "MaxErrors 0: no node after the failed one is sent anything");
}

#[tokio::test]
async fn a_run_due_while_the_previous_runs_is_skipped_and_cancel_ends_the_execution() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 3})).await;
    let n1 = node(svc, &a).await;
    let n2 = node(svc, &a).await;
    let w = window(svc, &c, json!({})).await;
    let t = target(svc, &c, &w, &[&n1.0, &n2.0], "o").await;
    shell_task(svc, &c, &w, &t, 1, json!({})).await;
    let later = shell_task(svc, &c, &w, &t, 5, json!({})).await;
    clock.advance(5 * MINUTE);
    eventually("the first invocation", || async { waiting(svc, &c).await.len() == 1 }).await;
    let first = by_id(&[&n1, &n2], &waiting(svc, &c).await[0]).clone();
    let other = if first.0 == n1.0 { n2.clone() } else { n1.clone() };
    // Still running five minutes on: the next occurrence is skipped.
    clock.advance(5 * MINUTE);
    eventually("the skipped run", || async { executions(svc, &c, &w).await.len() == 2 }).await;
    let runs = executions(svc, &c, &w).await;
    assert_eq!(runs[0]["Status"], "SKIPPED_OVERLAPPING", "{runs:?}");
    assert_eq!(runs[1]["Status"], "IN_PROGRESS");
    let x = runs[1]["WindowExecutionId"].as_str().unwrap().to_string();

    // Cancel: the running invocation finishes, n2 never starts, the later task is cancelled.
    let out = call(svc, &c, "CancelMaintenanceWindowExecution", json!({"WindowExecutionId": x})).await;
    assert_eq!(out["WindowExecutionId"], x.as_str());
    let get = call(svc, &c, "GetMaintenanceWindowExecution", json!({"WindowExecutionId": x})).await;
    assert_eq!(get["Status"], "CANCELLING");
    answer(svc, &first, "Success").await;
    eventually("the cancel", || async {
        call(svc, &c, "GetMaintenanceWindowExecution", json!({"WindowExecutionId": x})).await["Status"] == "CANCELLED"
    })
    .await;
    assert_eq!(sent_to(svc, &c, &other.0).await, 0);
    let ts = tasks(svc, &c, &x).await;
    let by_task =
        |id: &str| ts.iter().find(|t| t["TaskArn"] == "AWS-RunShellScript" && t["TaskExecutionId"] == id).cloned();
    let _ = by_task;
    let statuses: Vec<&str> = ts.iter().map(|t| t["Status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["CANCELLED", "CANCELLED"], "{ts:?}");
    let _ = later;
}

#[tokio::test]
async fn cancel_task_at_the_cutoff_cancels_the_command_and_the_window_end_times_out_the_rest() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let a = call(svc, &c, "CreateActivation", json!({"IamRole": "r", "RegistrationLimit": 3})).await;
    let n1 = node(svc, &a).await;
    let n2 = node(svc, &a).await;
    let w = window(svc, &c, json!({"Schedule": "rate(3 hours)"})).await;
    let t1 = target(svc, &c, &w, &[&n1.0], "o").await;
    let t2 = target(svc, &c, &w, &[&n2.0], "o").await;
    // The nodes never answer: a delivery timeout longer than the window keeps the commands
    // waiting until the cutoff and the end decide.
    let long = |cutoff: &str| {
        json!({"CutoffBehavior": cutoff, "TaskInvocationParameters": {"RunCommand": {"TimeoutSeconds": 36000,
               "Parameters": {"commands": ["sleep 1"]}}}})
    };
    shell_task(svc, &c, &w, &t1, 1, long("CANCEL_TASK")).await;
    shell_task(svc, &c, &w, &t2, 1, long("CONTINUE_TASK")).await;
    clock.advance(180 * MINUTE);
    eventually("both invocations", || async { waiting(svc, &c).await.len() == 2 }).await;
    // Both nodes start their command (the agent's first reply).
    for n in [&n1, &n2] {
        let got = messages(svc, n).await;
        assert_eq!(got.len(), 1);
        let reply = json!({"MessageId": got[0]["MessageId"], "ReplyId": ssmd_core::ids::uuid(),
            "Payload": json!({"documentStatus": "InProgress", "runtimeStatus": null}).to_string()});
        ssmd_api::commands::delivery::handle(svc, &n.1, "SendReply", reply).await.unwrap();
    }
    let x = executions(svc, &c, &w).await[0]["WindowExecutionId"].as_str().unwrap().to_string();
    // The cutoff (Duration 2 − Cutoff 1 = one hour in): the CANCEL_TASK command is cancelled.
    clock.advance(60 * MINUTE);
    eventually("the cancel", || async {
        let cmds = call(svc, &c, "ListCommands", json!({"InstanceId": n1.0})).await;
        cmds["Commands"][0]["Status"] == "Cancelling"
    })
    .await;
    let cancel = messages(svc, &n1).await;
    assert!(
        cancel.iter().any(|m| m["Topic"].as_str().unwrap_or_default().starts_with("aws.ssm.cancelCommand")),
        "{cancel:?}"
    );
    let ts = tasks(svc, &c, &x).await;
    let cancel_task = ts.iter().find(|t| t["Status"] != "IN_PROGRESS");
    assert!(cancel_task.is_none(), "both tasks still run: one cancelling, one continuing: {ts:?}");
    // The window end: what still runs is TIMED_OUT.
    clock.advance(60 * MINUTE);
    eventually("the window end", || async { executions(svc, &c, &w).await[0]["Status"] == "TIMED_OUT" }).await;
    let ts = tasks(svc, &c, &x).await;
    assert!(ts.iter().all(|t| t["Status"] == "TIMED_OUT"), "{ts:?}");
}

#[tokio::test]
async fn a_run_missed_while_down_is_recorded_and_the_schedule_resumes_after_now() {
    let Running { svc, clock, engine, .. } = &service().await;
    let c = root();
    let w = window(svc, &c, json!({"Schedule": "rate(5 minutes)", "Duration": 1, "Cutoff": 0})).await;
    // The engine is stopped (ssmd down) across the occurrence and beyond the window.
    engine.shutdown().await;
    clock.advance(5 * MINUTE + 61 * MINUTE);
    let engine2 = svc.run_background().await.unwrap();
    eventually("the missed run", || async { executions(svc, &c, &w).await.len() == 1 }).await;
    let run = &executions(svc, &c, &w).await[0];
    assert_eq!(run["Status"], "TIMED_OUT");
    assert!(run["StatusDetails"].as_str().unwrap().contains("not running"), "{run}");
    // The next fire is the first occurrence after now, not the ones missed in between.
    let next = call(svc, &c, "GetMaintenanceWindow", json!({"WindowId": w})).await["NextExecutionTime"].clone();
    assert_eq!(next, "2027-01-15T09:10:00.000Z");
    engine2.shutdown().await;
}

#[tokio::test]
async fn ended_executions_are_forgotten_after_the_history_days() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let w = window(svc, &c, json!({"Schedule": "rate(5 minutes)", "Duration": 1, "Cutoff": 0})).await;
    clock.advance(5 * MINUTE);
    eventually("the run", || async { executions(svc, &c, &w).await.first().is_some_and(|x| x["Status"] == "SUCCESS") })
        .await;
    let x = executions(svc, &c, &w).await[0]["WindowExecutionId"].as_str().unwrap().to_string();
    call(svc, &c, "UpdateMaintenanceWindow", json!({"WindowId": w, "Enabled": false})).await;
    // 29 days on it is still there; past 30 days (AWS's retention, the default) it is gone.
    clock.advance(29 * 24 * 60 * MINUTE);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    call(svc, &c, "GetMaintenanceWindowExecution", json!({"WindowExecutionId": x})).await;
    clock.advance(2 * 24 * 60 * MINUTE);
    eventually("the purge", || async { executions(svc, &c, &w).await.is_empty() }).await;
    let op = ssmd_model::Operation::from_name("GetMaintenanceWindowExecution").unwrap();
    let err = svc.call(&c, op, json!({"WindowExecutionId": x})).await.unwrap_err();
    assert_eq!(err.code(), ssmd_model::ErrorCode::DoesNotExistException);
}

#[tokio::test]
async fn a_schedule_change_replans_the_next_fire_at_once() {
    let Running { svc, clock, .. } = &service().await;
    let c = root();
    let w = window(svc, &c, json!({"Schedule": "rate(5 minutes)", "Duration": 1, "Cutoff": 0})).await;
    clock.advance(2 * MINUTE);
    call(svc, &c, "UpdateMaintenanceWindow", json!({"WindowId": w, "Schedule": "rate(10 minutes)"})).await;
    // The old occurrence (5 minutes after creation) never fires; the new one counts from the update.
    clock.advance(3 * MINUTE);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(executions(svc, &c, &w).await.is_empty());
    clock.advance(7 * MINUTE - 1);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(executions(svc, &c, &w).await.is_empty());
    clock.advance(1);
    eventually("the replanned fire", || async { executions(svc, &c, &w).await.len() == 1 }).await;
    // Disabled: nothing more fires.
    call(svc, &c, "UpdateMaintenanceWindow", json!({"WindowId": w, "Enabled": false})).await;
    clock.advance(30 * MINUTE);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(executions(svc, &c, &w).await.len(), 1);
}
