//! Real `ssmd-agent` processes for end-to-end tests: each node registers with an activation into
//! a state directory of its own and runs until it is killed or dropped.
//!
//! The binary is `target/debug/ssmd-agent` (next to `ssmd`) unless `SSMD_AGENT_BIN` names another.

use crate::Server;
use aws_sdk_ssm::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `ssmd-agent` binary under test.
pub fn agent_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SSMD_AGENT_BIN") {
        return PathBuf::from(p);
    }
    crate::ssmd_bin().with_file_name("ssmd-agent")
}

/// One node: its state directory, id and (while running) process.
pub struct Agent {
    /// The managed instance id.
    pub id: String,
    /// Its state directory (removed on drop).
    pub state_dir: PathBuf,
    child: Option<Child>,
}

/// Creates an activation for `count` nodes with `tags`: (id, code).
pub async fn activation(c: &Client, count: i32, tags: &[(&str, &str)]) -> (String, String) {
    let mut req = c.create_activation().iam_role("ssmd-node").registration_limit(count);
    for (k, v) in tags {
        req = req.tags(aws_sdk_ssm::types::Tag::builder().key(*k).value(*v).build().unwrap());
    }
    let a = req.send().await.expect("create activation");
    (a.activation_id.unwrap(), a.activation_code.unwrap())
}

impl Agent {
    /// Registers a node with the activation (blocking: it runs the agent's `register`).
    pub fn register(server: &Server, activation: &(String, String)) -> Agent {
        let state_dir = std::env::temp_dir().join(format!("ssmd-agent-{}", uuid::Uuid::new_v4().simple()));
        let out = Command::new(agent_bin())
            .args(["register", "--endpoint", &server.endpoint, "--code", &activation.1, "--id", &activation.0])
            .args(["--region", "us-east-1", "--state-dir"])
            .arg(&state_dir)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", agent_bin().display()));
        assert!(out.status.success(), "register failed: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(id.starts_with("mi-"), "register printed {id:?}");
        Agent { id, state_dir, child: None }
    }

    /// Starts `ssmd-agent run`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(agent_bin())
            .args(["run", "--state-dir"])
            .arg(&self.state_dir)
            .args(["--max-parallel", "4"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SSMD_AGENT_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("start ssmd-agent");
        self.child = Some(child);
    }

    /// Kills the agent with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Registers and starts `n` nodes.
    pub fn many(server: &Server, activation: &(String, String), n: usize) -> Vec<Agent> {
        (0..n)
            .map(|_| {
                let mut a = Agent::register(server, activation);
                a.start();
                a
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Waits until every node in `ids` has pinged (PingStatus Online).
pub async fn wait_online(c: &Client, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut online = 0;
        let mut pages = c.describe_instance_information().into_paginator().send();
        while let Some(page) = pages.next().await {
            for i in page.expect("describe instances").instance_information_list() {
                if ids.iter().any(|id| Some(id.as_str()) == i.instance_id())
                    && i.ping_status().map(|p| p.as_str()) == Some("Online")
                {
                    online += 1;
                }
            }
        }
        if online == ids.len() {
            return;
        }
        assert!(Instant::now() < deadline, "only {online} of {} nodes came online", ids.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
