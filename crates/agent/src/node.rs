//! `ssmd-agent run`: the node in the foreground until SIGTERM/SIGINT.
//!
//! Threads: the poller (long-polled `GetMessages`, handling each message), the pinger
//! (`UpdateInstanceInformation` at start and every `ping_seconds`), the reply resender, and
//! `max_parallel` workers running commands. The service being unreachable never stops the agent:
//! every loop backs off (1 s doubling to 30 s, with jitter), logs, and carries on.
//!
//! Per `aws.ssm.sendCommand` message, the AWS agent's sequence: in-progress reply,
//! `AcknowledgeMessage`, queue, run — a reply as each step ends — then the final reply. A message
//! already handled (a redelivery after a lost acknowledgement) is only acknowledged again.
//! `aws.ssm.cancelCommand` messages get the in-progress reply too, are acknowledged and cancel
//! their command here; other topics get `FailMessage NoHandlerExists`, unreadable payloads
//! `FailMessage InternalHandlerException`.
//!
//! On a stop signal the agent takes no more messages (messages received after it are left
//! unacknowledged for the next run), lets running commands finish for `shutdown_grace`, kills
//! the rest (reported Failed), tries once more to deliver the spooled replies, and returns.

use crate::backoff::Backoff;
use crate::exec::{Interruption, KILL_GRACE};
use crate::inbox::Inbox;
use crate::mds::{self, CancelPayload, Message, SendCommandPayload};
use crate::outbox::Outbox;
use crate::platform::{self, Platform};
use crate::pool::{Job, Pool};
use crate::reply::{self, AgentInfo};
use crate::runner::{self, Status};
use crate::seen::Seen;
use crate::session::Session;
use crate::spool::Spool;
use crate::state::{self, StateDir};
use crate::stop::{self, Stop};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `run` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// State directory.
    pub state_dir: PathBuf,
    /// Seconds between pings.
    pub ping_seconds: u64,
    /// Commands run at once.
    pub max_parallel: usize,
    /// How long running commands may go on after a stop signal.
    pub shutdown_grace: Duration,
}

/// Everything the threads share.
struct Node {
    session: Arc<Session>,
    outbox: Outbox,
    pool: Pool,
    seen: Mutex<Seen>,
    inbox: Inbox,
    info: AgentInfo,
    platform: Platform,
    env: Vec<(String, String)>,
    max_parallel: usize,
}

impl Node {
    fn instance_id(&self) -> &str {
        self.session.instance_id()
    }

    fn ack(&self, id: &str) {
        match mds::acknowledge(&self.session, id) {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                crate::warn!("{id}: acknowledgement failed ({e}); the message will come again and be acknowledged then")
            }
            Err(e) => crate::warn!("{id}: the service refused the acknowledgement: {e}"),
        }
    }

    fn fail(&self, id: &str, failure: &str) {
        if let Err(e) = mds::fail(&self.session, id, failure) {
            crate::warn!("{id}: FailMessage {failure} failed: {e}");
        }
    }

    fn already_handled(&self, id: &str) -> bool {
        self.seen.lock().unwrap().contains(id, crate::clock::now_ms()) || self.pool.knows(id) || self.inbox.contains(id)
    }

    fn handle(&self, m: Message) {
        let id = m.message_id.clone();
        if m.topic.starts_with(mds::SEND_COMMAND) {
            self.handle_send_command(m);
        } else if m.topic.starts_with(mds::CANCEL_COMMAND) {
            self.handle_cancel(m);
        } else {
            crate::warn!("{id}: no handler for topic {:?}", m.topic);
            self.fail(&id, mds::NO_HANDLER);
        }
    }

    fn handle_send_command(&self, m: Message) {
        let id = m.message_id.clone();
        if self.already_handled(&id) {
            crate::info!("{id}: received again; acknowledging it again");
            self.ack(&id);
            return;
        }
        let payload: SendCommandPayload = match serde_json::from_str(&m.payload) {
            Ok(p) => p,
            Err(e) => {
                crate::warn!("{id}: the payload cannot be read ({e})");
                self.fail(&id, mds::INTERNAL_HANDLER);
                return;
            }
        };
        self.seen.lock().unwrap().insert(&id, crate::clock::now_ms());
        if let Err(e) = self.inbox.put(&m) {
            crate::warn!("{id}: cannot record it in the inbox: {e}");
        }
        crate::info!("{id}: command {} ({}) received", payload.command_id, payload.document_name);
        self.outbox.send_now(&id, &reply::in_progress(&self.info));
        self.ack(&id);
        self.pool.submit(m, payload);
        let (queued, running) = self.pool.counts();
        if running >= self.max_parallel && queued > 0 {
            crate::info!("{id}: queued ({queued} waiting, {running} running)");
        }
    }

    fn handle_cancel(&self, m: Message) {
        let id = m.message_id.clone();
        if self.seen.lock().unwrap().contains(&id, crate::clock::now_ms()) {
            self.ack(&id);
            return;
        }
        let cancel: CancelPayload = match serde_json::from_str(&m.payload) {
            Ok(c) => c,
            Err(e) => {
                crate::warn!("{id}: the cancel payload cannot be read ({e})");
                self.fail(&id, mds::INTERNAL_HANDLER);
                return;
            }
        };
        self.seen.lock().unwrap().insert(&id, crate::clock::now_ms());
        // As the AWS agent does for every message it takes: the document-level reply first.
        self.outbox.send_now(&id, &reply::in_progress(&self.info));
        self.ack(&id);
        let target = &cancel.cancel_message_id;
        if self.pool.cancel(target) {
            crate::info!("{target}: cancel requested");
        } else {
            crate::info!("{target}: cancel requested, but the command is not running here");
        }
    }

    /// The command's steps, with its `{{ssm-secure:…}}` references read from the service.
    fn interpret(&self, job: &Job) -> Result<Vec<crate::document::Step>, String> {
        let params = crate::secure::resolve(&job.payload.parameters, |body| {
            self.session.call("AmazonSSM.GetParameters", body).map_err(|e| e.to_string())
        })?;
        crate::document::interpret(&job.payload.document_content, &params)
    }

    /// Runs one command and queues its final reply.
    fn execute(&self, job: &Job) {
        let id = &job.message.message_id;
        let _ = self.inbox.mark_started(id);
        let work_rel = format!("{}/{}", state::WORK, safe(&job.payload.command_id, id));
        let work_dir = self.session.state().dir(&work_rel);
        let started = Instant::now();
        let (results, trace) = match (self.interpret(job), work_dir) {
            (Err(e), _) => (Vec::new(), e),
            (Ok(steps), Err(e)) => (
                self.report_steps(
                    id,
                    runner::not_run(&steps, Status::Failed, 1, &format!("cannot create the work directory: {e}")),
                ),
                String::new(),
            ),
            (Ok(steps), Ok(dir)) => {
                if job.interrupt.state() == Interruption::Cancelled {
                    (self.report_steps(id, runner::not_run(&steps, Status::Cancelled, 1, "")), String::new())
                } else {
                    crate::info!("{id}: running {} step(s)", steps.len());
                    let ctx = runner::Context { work_dir: &dir, env: &self.env, interrupt: &job.interrupt };
                    let mut step_done = |so_far: &[runner::PluginResult]| self.report_step(id, so_far);
                    (runner::run_document(&steps, &ctx, &mut step_done), String::new())
                }
            }
        };
        let payload = reply::final_reply(&self.info, &results, &trace);
        let status =
            if results.is_empty() { Status::Failed } else { runner::aggregate(results.iter().map(|r| r.status)) };
        crate::info!(
            "{id}: {} after {:.1} s{}",
            status.as_str(),
            started.elapsed().as_secs_f64(),
            if trace.is_empty() { String::new() } else { format!(": {trace}") }
        );
        self.outbox.send_final(id, &payload);
        self.inbox.remove(id);
        let _ = self.session.state().remove(&work_rel);
    }

    /// The reply for a step that has ended (`so_far`: the steps so far, that one last). The AWS
    /// agent sends it for a one-step document too, whose final reply repeats the step.
    fn report_step(&self, id: &str, so_far: &[runner::PluginResult]) {
        self.outbox.send_now(id, &reply::step_reply(&self.info, so_far));
    }

    /// Step replies for `results` that did not run through the runner (never started, or the
    /// agent stopped while they ran), so the final reply needs no step list.
    fn report_steps(&self, id: &str, results: Vec<runner::PluginResult>) -> Vec<runner::PluginResult> {
        for n in 1..=results.len() {
            self.report_step(id, &results[..n]);
        }
        results
    }

    fn ping(&self) -> Result<(), crate::http::CallError> {
        let e = self.session.client().endpoint();
        let default_port = if e.url.starts_with("https") { 443 } else { 80 };
        let port = e.host.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(default_port);
        let ip = platform::local_ip(e.hostname(), port);
        let name = self.session.registration().name.clone().unwrap_or_else(|| self.platform.hostname.clone());
        let body = platform::ping_body(self.instance_id(), &self.platform, &name, &ip);
        self.session.call("AmazonSSM.UpdateInstanceInformation", &body).map(|_| ())
    }
}

/// A file-name-safe form of a command id (the message id if there is none).
fn safe(command_id: &str, message_id: &str) -> String {
    let base = if command_id.is_empty() { message_id } else { command_id };
    base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' }).collect()
}

fn poll_loop(node: &Node, stop: &Stop) {
    let mut backoff = Backoff::default();
    let mut failing = false;
    while !stop.requested() {
        let started = Instant::now();
        match mds::get_messages(&node.session, node.instance_id()) {
            Ok(messages) => {
                if failing {
                    crate::info!("GetMessages works again");
                }
                failing = false;
                backoff.reset();
                if stop.requested() {
                    // Not acknowledged: they come again to the next run.
                    break;
                }
                let n = messages.len();
                for m in messages {
                    node.handle(m);
                }
                if n == 0 && started.elapsed() < Duration::from_secs(1) && stop.sleep(Duration::from_secs(1)) {
                    break;
                }
            }
            Err(e) => {
                let wait = backoff.next_wait();
                crate::warn!("GetMessages failed: {e}; retrying in {:.1} s", wait.as_secs_f64());
                failing = true;
                if stop.sleep(wait) {
                    break;
                }
            }
        }
    }
}

fn ping_loop(node: &Node, stop: &Stop, every: Duration) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30).min(every));
    loop {
        let wait = match node.ping() {
            Ok(()) => {
                crate::info!("ping sent (UpdateInstanceInformation)");
                backoff.reset();
                every
            }
            Err(e) => {
                let w = backoff.next_wait();
                crate::warn!("ping failed: {e}; retrying in {:.1} s", w.as_secs_f64());
                w
            }
        };
        if stop.sleep(wait) {
            return;
        }
    }
}

/// Runs the node until a stop signal (or `stop`, for tests).
pub fn run(o: &Options) -> Result<(), String> {
    stop::install_signal_handlers();
    run_until(o, Arc::new(Stop::new()), true)
}

/// Runs the node until `stop` is requested (and, if `signals`, on SIGTERM/SIGINT).
pub fn run_until(o: &Options, stop: Arc<Stop>, signals: bool) -> Result<(), String> {
    let st = StateDir::open(&o.state_dir).map_err(|e| format!("cannot open {}: {e}", o.state_dir.display()))?;
    let session = Arc::new(Session::open(st.clone())?);
    let open_dir = |name: &str| st.dir(name).map_err(|e| format!("cannot create {}: {e}", st.path(name).display()));
    let spool = Spool::open(&open_dir(state::REPLIES)?).map_err(|e| e.to_string())?;
    let inbox = Inbox::open(&open_dir(state::INBOX)?).map_err(|e| e.to_string())?;
    let platform = platform::detect();
    let reg = session.registration().clone();
    let node = Arc::new(Node {
        outbox: Outbox::new(session.clone(), spool),
        pool: Pool::new(),
        seen: Mutex::new(Seen::load(&st)),
        inbox,
        info: AgentInfo { os_version: platform.version.clone() },
        env: vec![
            ("AWS_SSM_INSTANCE_ID".to_string(), reg.instance_id.clone()),
            ("AWS_SSM_REGION_NAME".to_string(), reg.region.clone()),
        ],
        platform,
        session,
        max_parallel: o.max_parallel.max(1),
    });
    crate::info!(
        "{} {} starting: instance {}, endpoint {}, region {}, state {}, {} command(s) at once",
        crate::AGENT_NAME,
        crate::AGENT_VERSION,
        reg.instance_id,
        reg.endpoint,
        reg.region,
        st.root().display(),
        o.max_parallel
    );
    recover_inbox(&node);

    // No thread is joined at the end: the workers are waited for through the pool; the pinger,
    // the resender and the poller may be inside a call (a hung service holds one for its time
    // limit), and whatever they were sending stays spooled or unacknowledged for the next run.
    if signals {
        let s = stop.clone();
        std::thread::spawn(move || s.watch_signals());
    }
    let (n, s) = (node.clone(), stop.clone());
    let every = Duration::from_secs(o.ping_seconds.max(1));
    std::thread::spawn(move || ping_loop(&n, &s, every));
    let (n, s) = (node.clone(), stop.clone());
    std::thread::spawn(move || n.outbox.run_resender(&s));
    for _ in 0..o.max_parallel.max(1) {
        let n = node.clone();
        std::thread::spawn(move || {
            while let Some(job) = n.pool.next() {
                let id = job.message.message_id.clone();
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| n.execute(&job))).is_err() {
                    crate::error!("{id}: the agent failed while running it (a bug); reporting it Failed");
                    let trace = "ssmd-agent failed while running the command";
                    n.outbox.send_final(&id, &reply::final_reply(&n.info, &[], trace));
                    n.inbox.remove(&id);
                }
                n.pool.done(&id);
            }
        });
    }
    let (n, s) = (node.clone(), stop.clone());
    std::thread::spawn(move || poll_loop(&n, &s));

    while !stop.sleep(Duration::from_secs(3600)) {}
    crate::info!("stopping: no more messages are taken");
    node.pool.close();
    if !node.pool.wait_idle(o.shutdown_grace) {
        crate::info!("stopping: killing the commands still running");
        node.pool.shutdown_running();
        node.pool.wait_idle(KILL_GRACE + Duration::from_secs(3));
    }
    let pending = node.outbox.spool().len();
    if pending > 0 {
        match node.outbox.flush(Some(Duration::from_secs(3))) {
            Some(f) if f.remaining > 0 => {
                crate::info!("{} replies stay spooled for the next run", f.remaining)
            }
            _ => {}
        }
    }
    crate::info!("stopped");
    Ok(())
}

/// Commands left in the inbox by the previous run: those not started run now; those that were
/// running when the agent died are reported Failed.
fn recover_inbox(node: &Node) {
    for e in node.inbox.entries() {
        let id = e.message.message_id.clone();
        let payload: Option<SendCommandPayload> = serde_json::from_str(&e.message.payload).ok();
        match payload {
            Some(p) if !e.started => {
                crate::info!("{id}: queued before the agent stopped; running it now");
                node.pool.submit(e.message, p);
            }
            Some(p) => {
                let steps = crate::document::interpret(&p.document_content, &p.parameters).unwrap_or_default();
                let results = runner::not_run(
                    &steps,
                    Status::Failed,
                    1,
                    "ssmd-agent stopped while the command was running; it was not run again",
                );
                let trace = if steps.is_empty() { "ssmd-agent stopped while the command was running" } else { "" };
                crate::info!("{id}: was running when the agent stopped; reporting it Failed");
                let results = node.report_steps(&id, results);
                node.outbox.send_final(&id, &reply::final_reply(&node.info, &results, trace));
                node.inbox.remove(&id);
            }
            None => node.inbox.remove(&id),
        }
    }
}
