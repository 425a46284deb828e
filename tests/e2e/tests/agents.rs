//! Run Command end to end with real `ssmd-agent` processes, each a node with its own state
//! directory: real shell commands, exit codes and output; execution timeouts and cancels that
//! kill the process group; output limits; tag targeting; rate control across 20 nodes with an
//! exact stop point; a server restarted while a command runs; an agent restarted.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
use aws_sdk_ssm::types::{Command, Target};
use ssmd_e2e::agent::{Agent, activation, wait_online};
use ssmd_e2e::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const FINAL: &[&str] = &["Success", "Failed", "TimedOut", "Cancelled"];

/// One node registered and running, once it is online.
async fn one_node(server: &Server, c: &Client) -> Agent {
    let act = activation(c, 1, &[]).await;
    let agent = Agent::many(server, &act, 1).pop().unwrap();
    wait_online(c, std::slice::from_ref(&agent.id)).await;
    agent
}

fn ids(agents: &[Agent]) -> Vec<String> {
    agents.iter().map(|a| a.id.clone()).collect()
}

/// Sends AWS-RunShellScript with `commands` to `nodes`, with optional extra parameters.
async fn send(c: &Client, nodes: &[String], commands: &[&str], extra: &[(&str, &str)]) -> String {
    let mut req = c
        .send_command()
        .document_name("AWS-RunShellScript")
        .set_instance_ids(Some(nodes.to_vec()))
        .parameters("commands", commands.iter().map(|s| s.to_string()).collect());
    for (k, v) in extra {
        req = req.parameters(*k, vec![v.to_string()]);
    }
    req.send().await.unwrap_or_else(|e| panic!("send-command: {}", message(&e))).command.unwrap().command_id.unwrap()
}

async fn command(c: &Client, id: &str) -> Command {
    c.list_commands().command_id(id).send().await.unwrap().commands()[0].clone()
}

/// Waits until the command reaches a final status.
async fn wait_command(c: &Client, id: &str, secs: u64) -> Command {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let cmd = command(c, id).await;
        if FINAL.contains(&cmd.status().map(|s| s.as_str()).unwrap_or_default()) {
            return cmd;
        }
        assert!(Instant::now() < deadline, "command {id} still {:?} after {secs} s", cmd.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the invocation on `node` has status `want`.
async fn wait_invocation(c: &Client, id: &str, node: &str, want: &str, secs: u64) -> GetCommandInvocationOutput {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let inv = c.get_command_invocation().command_id(id).instance_id(node).send().await.unwrap();
        if inv.status().map(|s| s.as_str()) == Some(want) {
            return inv;
        }
        assert!(Instant::now() < deadline, "invocation on {node} still {:?}, not {want}", inv.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn invocation(c: &Client, id: &str, node: &str) -> GetCommandInvocationOutput {
    c.get_command_invocation().command_id(id).instance_id(node).send().await.unwrap()
}

fn status(s: Option<&aws_sdk_ssm::types::CommandInvocationStatus>) -> &str {
    s.map(|s| s.as_str()).unwrap_or_default()
}

both_backends!(commands_run_on_real_nodes, |server: Server| async move {
    let c = server.client();
    let web = activation(&c, 2, &[("role", "web")]).await;
    let db = activation(&c, 1, &[("role", "db")]).await;
    let mut agents = Agent::many(&server, &web, 2);
    agents.extend(Agent::many(&server, &db, 1));
    let all = ids(&agents);
    wait_online(&c, &all).await;

    // Success with real output, on every node.
    let id = send(&c, &all, &["echo hello from $AWS_SSM_INSTANCE_ID", "echo to-stderr >&2"], &[]).await;
    let cmd = wait_command(&c, &id, 30).await;
    assert_eq!(cmd.status().unwrap().as_str(), "Success");
    assert_eq!((cmd.target_count(), cmd.completed_count(), cmd.error_count()), (3, 3, 0));
    for node in &all {
        let inv = invocation(&c, &id, node).await;
        assert_eq!(status(inv.status()), "Success");
        assert_eq!(inv.response_code(), 0);
        assert_eq!(inv.standard_output_content(), Some(format!("hello from {node}\n").as_str()));
        assert_eq!(inv.standard_error_content(), Some("to-stderr\n"));
        assert!(!inv.execution_start_date_time().unwrap_or_default().is_empty());
    }

    // A failing exit code, with the output before it, and a working directory.
    let dir = std::env::temp_dir();
    let id = send(&c, &all[..1], &["pwd", "exit 3"], &[("workingDirectory", dir.to_str().unwrap())]).await;
    let cmd = wait_command(&c, &id, 30).await;
    assert_eq!((cmd.status().unwrap().as_str(), cmd.error_count()), ("Failed", 1));
    let inv = invocation(&c, &id, &all[0]).await;
    assert_eq!((status(inv.status()), inv.status_details(), inv.response_code()), ("Failed", Some("Failed"), 3));
    let pwd = std::fs::canonicalize(&dir).unwrap();
    assert_eq!(inv.standard_output_content().unwrap().trim_end(), pwd.to_str().unwrap());

    // Tag targeting reaches exactly the tagged nodes.
    let out = c
        .send_command()
        .document_name("AWS-RunShellScript")
        .targets(Target::builder().key("tag:role").values("web").build())
        .parameters("commands", vec!["true".into()])
        .send()
        .await
        .unwrap();
    let id = out.command.unwrap().command_id.unwrap();
    let cmd = wait_command(&c, &id, 30).await;
    assert_eq!((cmd.status().unwrap().as_str(), cmd.target_count()), ("Success", 2));
    let listed: Vec<String> = c
        .list_command_invocations()
        .command_id(&id)
        .send()
        .await
        .unwrap()
        .command_invocations()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    let mut want = all[..2].to_vec();
    want.sort();
    let mut got = listed.clone();
    got.sort();
    assert_eq!(got, want);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_timeout_and_cancel_kill_the_process_group() {
    let server = Server::start(Backend::Sqlite);
    let c = server.client();
    let agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let marks = std::env::temp_dir().join(format!("ssmd-marks-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&marks).unwrap();
    let late = |name: &str| marks.join(name);

    // Execution timeout (5 s, the least the AWS agent honours): the background child of the
    // script is killed with it.
    let script = format!("(sleep 7; touch {}) & sleep 30", late("timeout").display());
    let id = send(&c, std::slice::from_ref(&node), &[&script], &[("executionTimeout", "5")]).await;
    let cmd = wait_command(&c, &id, 30).await;
    assert_eq!(cmd.status().unwrap().as_str(), "TimedOut");
    let inv = invocation(&c, &id, &node).await;
    assert_eq!((status(inv.status()), inv.status_details()), ("TimedOut", Some("ExecutionTimedOut")));

    // Cancel mid-run: Cancelling, then Cancelled, and the process group is gone.
    let script = format!("(sleep 4; touch {}) & sleep 30", late("cancel").display());
    let id = send(&c, std::slice::from_ref(&node), &[&script], &[]).await;
    wait_invocation(&c, &id, &node, "InProgress", 15).await;
    c.cancel_command().command_id(&id).send().await.unwrap();
    let cmd = wait_command(&c, &id, 15).await;
    assert_eq!(cmd.status().unwrap().as_str(), "Cancelled");
    assert_eq!(status(invocation(&c, &id, &node).await.status()), "Cancelled");

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!late("timeout").exists(), "a child of the timed-out script survived it");
    assert!(!late("cancel").exists(), "a child of the cancelled script survived it");
    let _ = std::fs::remove_dir_all(&marks);
}

/// A 2.2 document whose first step fails and second succeeds: ssmd-agent replies as each step
/// ends and then with the document's status alone (the AWS agent's sequence), and every step
/// survives — in the document's order, each by its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_step_documents_keep_every_step() {
    let server = Server::start(Backend::Sqlite);
    let c = server.client();
    let agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let content = serde_json::json!({"schemaVersion": "2.2", "description": "two steps", "mainSteps": [
        {"action": "aws:runShellScript", "name": "first", "inputs": {"runCommand": ["echo one", "exit 2"]}},
        {"action": "aws:runShellScript", "name": "second", "inputs": {"runCommand": ["echo two"]}},
        {"action": "aws:runShellScript", "name": "third", "inputs": {"runCommand": ["echo three >&2"]}}]});
    c.create_document()
        .name("TwoSteps")
        .content(content.to_string())
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .send()
        .await
        .unwrap();
    let id = c
        .send_command()
        .document_name("TwoSteps")
        .instance_ids(&node)
        .send()
        .await
        .unwrap()
        .command
        .unwrap()
        .command_id
        .unwrap();
    let cmd = wait_command(&c, &id, 30).await;
    assert_eq!((cmd.status().unwrap().as_str(), cmd.error_count()), ("Failed", 1));
    let listed = c.list_command_invocations().command_id(&id).details(true).send().await.unwrap();
    let inv = &listed.command_invocations()[0];
    let plugins: Vec<(&str, &str, i32, &str)> = inv
        .command_plugins()
        .iter()
        .map(|p| (p.name().unwrap(), p.status().unwrap().as_str(), p.response_code(), p.output().unwrap()))
        .collect();
    assert_eq!(
        plugins,
        [
            ("first", "Failed", 2, "one\n\n----------ERROR-------\nfailed to run commands: exit status 2"),
            ("second", "Success", 0, "two\n"),
            ("third", "Success", 0, "\n----------ERROR-------\nthree\n")
        ]
    );
    let get = |plugin: Option<&str>| {
        let c = c.clone();
        let (id, node, plugin) = (id.clone(), node.clone(), plugin.map(str::to_string));
        async move {
            c.get_command_invocation().command_id(id).instance_id(node).set_plugin_name(plugin).send().await.unwrap()
        }
    };
    let first = get(Some("first")).await;
    assert_eq!(
        (status(first.status()), first.response_code(), first.standard_output_content()),
        ("Failed", 2, Some("one\n"))
    );
    assert_eq!(first.standard_error_content(), Some("failed to run commands: exit status 2"));
    let second = get(Some("second")).await;
    assert_eq!(
        (status(second.status()), second.response_code(), second.standard_output_content()),
        ("Success", 0, Some("two\n"))
    );
    let whole = get(None).await;
    assert_eq!((whole.plugin_name(), status(whole.status()), whole.response_code()), (Some(""), "Failed", 2));
    assert_eq!(whole.standard_output_content(), Some("one\n\ntwo\n"));
    // Step start times are the steps' own.
    let starts: Vec<_> = inv.command_plugins().iter().map(|p| p.response_start_date_time().cloned()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
}

/// The agent's reply to a cancel message is answered like any other, and not counted an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_replies_are_answered() {
    let server = Server::start(Backend::Sqlite);
    let c = server.client();
    let agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let id = send(&c, std::slice::from_ref(&node), &["sleep 30"], &[]).await;
    wait_invocation(&c, &id, &node, "InProgress", 15).await;
    c.cancel_command().command_id(&id).send().await.unwrap();
    wait_command(&c, &id, 15).await;
    let refused = server.counter("ssmd_requests_total", r#"operation="SendReply",code="ValidationException""#);
    assert_eq!(refused, 0.0, "{}", server.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_over_the_limits_is_truncated_as_ssm_does() {
    let server = Server::start(Backend::Sqlite);
    let c = server.client();
    let agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let id = send(
        &c,
        std::slice::from_ref(&node),
        &["head -c 30000 /dev/zero | tr '\\0' a", "head -c 9000 /dev/zero | tr '\\0' e >&2"],
        &[],
    )
    .await;
    wait_command(&c, &id, 30).await;
    let inv = invocation(&c, &id, &node).await;
    let out = inv.standard_output_content().unwrap();
    let err = inv.standard_error_content().unwrap();
    assert_eq!(out.chars().count(), 24_000);
    assert!(out.ends_with("--output truncated--"), "{}", &out[out.len() - 40..]);
    assert_eq!(err.chars().count(), 8_000);
    let listed = c.list_command_invocations().command_id(&id).details(true).send().await.unwrap();
    let plugin = &listed.command_invocations()[0].command_plugins()[0];
    let combined = plugin.output().unwrap();
    assert!(combined.chars().count() <= 2_500, "{}", combined.len());
    assert!(combined.contains("---Output truncated---"), "{combined}");
}

/// Parses the per-node start/end lines scripts append to a log: node -> (start ns, end ns).
fn spans(log: &Path) -> BTreeMap<String, (u128, u128)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out: BTreeMap<String, (u128, u128)> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [what, node, t] = parts[..] {
            let t: u128 = t.parse().unwrap();
            let e = out.entry(node.to_string()).or_default();
            if what == "start" {
                e.0 = t;
            } else {
                e.1 = t;
            }
        }
    }
    out
}

/// The most spans open at once.
fn max_overlap(spans: &BTreeMap<String, (u128, u128)>) -> usize {
    let mut events: Vec<(u128, i32)> = spans.values().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    events.sort_by_key(|(t, d)| (*t, *d));
    let (mut open, mut most) = (0i32, 0i32);
    for (_, d) in events {
        open += d;
        most = most.max(open);
    }
    most as usize
}

both_backends!(rate_control_across_twenty_nodes, |server: Server| async move {
    let c = server.client();
    let act = activation(&c, 20, &[("fleet", "twenty")]).await;
    let agents = Agent::many(&server, &act, 20);
    let all = ids(&agents);
    wait_online(&c, &all).await;
    let work = std::env::temp_dir().join(format!("ssmd-rate-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();
    let targets = || Target::builder().key("tag:fleet").values("twenty").build();
    // Targets resolve in registration order, which is `all`'s order.
    let script = |log: &Path, fail: &Path, pause: &str| {
        format!(
            "echo start $AWS_SSM_INSTANCE_ID $(date +%s%N) >> {log}; sleep {pause}; \
             echo end $AWS_SSM_INSTANCE_ID $(date +%s%N) >> {log}; \
             if grep -q $AWS_SSM_INSTANCE_ID {fail}; then exit 1; fi",
            log = log.display(),
            fail = fail.display()
        )
    };

    // Concurrency 4, no errors: never more than 4 at once, all succeed.
    let (log, fail) = (work.join("a.log"), work.join("a.fail"));
    std::fs::write(&fail, "").unwrap();
    let out = c
        .send_command()
        .document_name("AWS-RunShellScript")
        .targets(targets())
        .max_concurrency("4")
        .parameters("commands", vec![script(&log, &fail, "0.4")])
        .send()
        .await
        .unwrap();
    let id = out.command.unwrap().command_id.unwrap();
    let cmd = wait_command(&c, &id, 90).await;
    assert_eq!((cmd.status().unwrap().as_str(), cmd.completed_count()), ("Success", 20));
    let s = spans(&log);
    assert_eq!(s.len(), 20);
    let most = max_overlap(&s);
    assert!(most <= 4, "{most} nodes ran at once with MaxConcurrency 4");
    assert!(most >= 2, "nothing ran in parallel ({most})");

    // Concurrency 1, MaxErrors 2, failures on nodes 2, 5, 7 and 12: dispatch stops exactly at the
    // third failure (node 7); nodes 8.. never run and end Terminated.
    let (log, fail) = (work.join("b.log"), work.join("b.fail"));
    let failing = [2usize, 5, 7, 12];
    std::fs::write(&fail, failing.iter().map(|i| all[*i].clone() + "\n").collect::<String>()).unwrap();
    let out = c
        .send_command()
        .document_name("AWS-RunShellScript")
        .targets(targets())
        .max_concurrency("1")
        .max_errors("2")
        .parameters("commands", vec![script(&log, &fail, "0.05")])
        .send()
        .await
        .unwrap();
    let id = out.command.unwrap().command_id.unwrap();
    let cmd = wait_command(&c, &id, 90).await;
    assert_eq!(cmd.status().unwrap().as_str(), "Failed");
    assert_eq!((cmd.completed_count(), cmd.error_count()), (20, 3));
    let ran: Vec<String> = spans(&log).into_keys().collect();
    let mut want: Vec<String> = all[..=7].to_vec();
    want.sort();
    assert_eq!(ran, want, "exactly nodes 0..=7 ran");
    for (i, node) in all.iter().enumerate() {
        let inv = invocation(&c, &id, node).await;
        let got = (status(inv.status()).to_string(), inv.status_details().unwrap_or_default().to_string());
        let want = match i {
            2 | 5 | 7 => ("Failed", "Failed"),
            0..=7 => ("Success", "Success"),
            _ => ("Cancelled", "Terminated"),
        };
        assert_eq!((got.0.as_str(), got.1.as_str()), want, "node {i}");
    }
    let _ = std::fs::remove_dir_all(&work);
});

both_backends!(a_result_arrives_across_a_server_restart, |server: Server| async move {
    let mut server = server;
    let c = server.client();
    let agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let id = send(&c, std::slice::from_ref(&node), &["sleep 3", "echo survived"], &[]).await;
    wait_invocation(&c, &id, &node, "InProgress", 15).await;
    server.restart();
    let c = server.client();
    let inv = wait_invocation(&c, &id, &node, "Success", 60).await;
    assert_eq!(inv.standard_output_content(), Some("survived\n"));
    assert_eq!(wait_command(&c, &id, 10).await.status().unwrap().as_str(), "Success");
    // And the node carries on taking new work.
    let id = send(&c, std::slice::from_ref(&node), &["echo again"], &[]).await;
    assert_eq!(wait_invocation(&c, &id, &node, "Success", 60).await.standard_output_content(), Some("again\n"));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_takes_queued_work_and_never_reruns_finished_work() {
    let server = Server::start(Backend::Sqlite);
    let c = server.client();
    let mut agent = one_node(&server, &c).await;
    let node = agent.id.clone();
    let counter = std::env::temp_dir().join(format!("ssmd-count-{}", uuid::Uuid::new_v4().simple()));
    let first = send(&c, std::slice::from_ref(&node), &[&format!("echo x >> {}", counter.display())], &[]).await;
    wait_invocation(&c, &first, &node, "Success", 30).await;

    agent.kill9();
    let queued = send(&c, std::slice::from_ref(&node), &["echo while-away"], &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(invocation(&c, &queued, &node).await.status()), "Pending");
    agent.start();
    let inv = wait_invocation(&c, &queued, &node, "Success", 60).await;
    assert_eq!(inv.standard_output_content(), Some("while-away\n"));
    let runs = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(runs.lines().count(), 1, "the finished command ran again after the restart");
    let _ = std::fs::remove_file(&counter);
}
