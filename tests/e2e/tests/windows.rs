//! Maintenance windows end to end with the real binary: an at() window that fires on its own
//! clock and runs a Run Command task on real `ssmd-agent` nodes (priority order, the target's
//! id substituted) and then an Automation task; a server killed with SIGKILL in the middle of
//! a window execution that resumes without running any task twice; and two replicas on one
//! PostgreSQL database that fire each window exactly once.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{
    MaintenanceWindowAutomationParameters, MaintenanceWindowExecution, MaintenanceWindowResourceType,
    MaintenanceWindowRunCommandParameters, MaintenanceWindowTaskInvocationParameters, MaintenanceWindowTaskType,
    Target,
};
use ssmd_e2e::agent::{Agent, activation, wait_online};
use ssmd_e2e::*;
use std::time::{Duration, Instant};

/// An at() schedule `secs` seconds from now (UTC, to the second).
fn at_in(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    format!("at({})", t.strftime("%Y-%m-%dT%H:%M:%S"))
}

async fn window(c: &Client, schedule: &str, unassociated: bool) -> String {
    c.create_maintenance_window()
        .name(format!("e2e-{}", &schedule[3..22].replace([':', 'T'], "-")))
        .schedule(schedule)
        .duration(1)
        .cutoff(0)
        .allow_unassociated_targets(unassociated)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create window: {}", message(&e)))
        .window_id
        .unwrap()
}

async fn shell_task(c: &Client, window: &str, targets: Target, priority: i32, commands: &[&str]) -> String {
    let params = MaintenanceWindowRunCommandParameters::builder()
        .parameters("commands", commands.iter().map(|s| s.to_string()).collect())
        .build();
    c.register_task_with_maintenance_window()
        .window_id(window)
        .task_type(MaintenanceWindowTaskType::RunCommand)
        .task_arn("AWS-RunShellScript")
        .targets(targets)
        .priority(priority)
        .max_concurrency("1")
        .max_errors("0")
        .task_invocation_parameters(MaintenanceWindowTaskInvocationParameters::builder().run_command(params).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("register task: {}", message(&e)))
        .window_task_id
        .unwrap()
}

async fn sleep_task(c: &Client, window: &str, priority: i32) -> String {
    let params = MaintenanceWindowAutomationParameters::builder().parameters("Duration", vec!["PT0S".into()]).build();
    c.register_task_with_maintenance_window()
        .window_id(window)
        .task_type(MaintenanceWindowTaskType::Automation)
        .task_arn("AWS-Sleep")
        .priority(priority)
        .task_invocation_parameters(MaintenanceWindowTaskInvocationParameters::builder().automation(params).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("register task: {}", message(&e)))
        .window_task_id
        .unwrap()
}

async fn executions(c: &Client, window: &str) -> Vec<MaintenanceWindowExecution> {
    c.describe_maintenance_window_executions().window_id(window).send().await.unwrap().window_executions().to_vec()
}

/// Waits until the window has an execution that has ended; returns it.
async fn wait_ended(c: &Client, window: &str, secs: u64) -> MaintenanceWindowExecution {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(found) = c.describe_maintenance_window_executions().window_id(window).send().await {
            let ended = found
                .window_executions()
                .iter()
                .find(|e| !matches!(e.status().map(|s| s.as_str()), Some("PENDING" | "IN_PROGRESS" | "CANCELLING")));
            if let Some(e) = ended {
                return e.clone();
            }
        }
        assert!(Instant::now() < deadline, "window {window} has not run to the end after {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The (task ARN, status, invocation execution ids) of each task of a window execution.
async fn task_runs(c: &Client, execution: &str) -> Vec<(String, String, Vec<String>)> {
    let tasks = c.describe_maintenance_window_execution_tasks().window_execution_id(execution).send().await.unwrap();
    let mut out = Vec::new();
    for t in tasks.window_execution_task_identities() {
        let invs = c
            .describe_maintenance_window_execution_task_invocations()
            .window_execution_id(execution)
            .task_id(t.task_execution_id().unwrap())
            .send()
            .await
            .unwrap();
        let ids = invs
            .window_execution_task_invocation_identities()
            .iter()
            .filter_map(|i| i.execution_id())
            .map(String::from);
        out.push((
            t.task_arn().unwrap_or_default().to_string(),
            t.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            ids.collect(),
        ));
    }
    out.sort();
    out
}

both_backends!(a_window_runs_its_tasks_on_real_nodes, |server: Server| async move {
    let c = server.client();
    let act = activation(&c, 2, &[("role", "web")]).await;
    let agents = Agent::many(&server, &act, 2);
    let nodes: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    wait_online(&c, &nodes).await;

    let w = window(&c, &at_in(4), false).await;
    let target = c
        .register_target_with_maintenance_window()
        .window_id(&w)
        .resource_type(MaintenanceWindowResourceType::Instance)
        .targets(Target::builder().key("tag:role").values("web").build())
        .send()
        .await
        .unwrap()
        .window_target_id
        .unwrap();
    let by_target = Target::builder().key("WindowTargetIds").values(&target).build();
    shell_task(&c, &w, by_target, 1, &["echo on {{TARGET_ID}}"]).await;
    sleep_task(&c, &w, 2).await;

    let ended = wait_ended(&c, &w, 60).await;
    assert_eq!(ended.status().unwrap().as_str(), "SUCCESS", "{ended:?}");
    let runs = task_runs(&c, ended.window_execution_id().unwrap()).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (shell, sleep) = (&runs[0], &runs[1]);
    assert_eq!((shell.0.as_str(), shell.1.as_str(), shell.2.len()), ("AWS-RunShellScript", "SUCCESS", 2));
    // The invocations ran one node at a time (MaxConcurrency 1), each a real command whose
    // output names its node.
    for command in &shell.2 {
        let cmd = c.list_commands().command_id(command).send().await.unwrap().commands()[0].clone();
        assert_eq!(cmd.status().unwrap().as_str(), "Success");
        let node = &cmd.instance_ids()[0];
        let inv = c.get_command_invocation().command_id(command).instance_id(node).send().await.unwrap();
        assert_eq!(inv.standard_output_content(), Some(format!("on {node}\n").as_str()));
    }
    assert_eq!((sleep.0.as_str(), sleep.1.as_str(), sleep.2.len()), ("AWS-Sleep", "SUCCESS", 1));
    let ex = c.get_automation_execution().automation_execution_id(&sleep.2[0]).send().await.unwrap();
    assert_eq!(ex.automation_execution().unwrap().automation_execution_status().unwrap().as_str(), "Success");
    assert_eq!(executions(&c, &w).await.len(), 1);
});

both_backends!(a_window_execution_survives_kill_9, |server: Server| async move {
    let mut server = server;
    let c = server.client();
    let act = activation(&c, 1, &[]).await;
    let agent = Agent::many(&server, &act, 1).pop().unwrap();
    let node = agent.id.clone();
    wait_online(&c, std::slice::from_ref(&node)).await;
    let w = window(&c, &at_in(3), true).await;
    let direct = || Target::builder().key("InstanceIds").values(&node).build();
    shell_task(&c, &w, direct(), 1, &["sleep 4", "echo first"]).await;
    shell_task(&c, &w, direct(), 2, &["echo second"]).await;

    // Kill the server while the first task's command runs on the node.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = c.list_commands().instance_id(&node).send().await.unwrap();
        if listed.commands().iter().any(|cmd| cmd.status().map(|s| s.as_str()) == Some("InProgress")) {
            break;
        }
        assert!(Instant::now() < deadline, "the first task never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let c = server.client();

    let ended = wait_ended(&c, &w, 90).await;
    assert_eq!(ended.status().unwrap().as_str(), "SUCCESS", "{ended:?}");
    let runs = task_runs(&c, ended.window_execution_id().unwrap()).await;
    assert_eq!(runs.iter().map(|r| (r.1.as_str(), r.2.len())).collect::<Vec<_>>(), [("SUCCESS", 1), ("SUCCESS", 1)]);
    // No task ran twice: the node got exactly the two commands.
    let listed = c.list_commands().instance_id(&node).send().await.unwrap();
    assert_eq!(listed.commands().len(), 2, "{:?}", listed.commands());
    assert_eq!(executions(&c, &w).await.len(), 1);
    drop(agent);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_each_window_once() {
    let a = Server::start(Backend::Postgres);
    let b = a.replica();
    let (ca, cb) = (a.client(), b.client());
    let mut windows = Vec::new();
    for i in 0..6 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        let w = window(c, &at_in(4), true).await;
        sleep_task(c, &w, 1).await;
        windows.push(w);
    }
    for w in &windows {
        let ended = wait_ended(&ca, w, 60).await;
        assert_eq!(ended.status().unwrap().as_str(), "SUCCESS");
    }
    // Let any second fire show itself, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for w in &windows {
        assert_eq!(executions(&cb, w).await.len(), 1, "window {w} fired more than once");
    }
    let started = ca.describe_automation_executions().max_results(50).send().await.unwrap();
    let sleeps =
        started.automation_execution_metadata_list().iter().filter(|m| m.document_name() == Some("AWS-Sleep")).count();
    assert_eq!(sleeps, windows.len());
}
