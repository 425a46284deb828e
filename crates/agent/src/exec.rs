//! Running a script: `sh -c <script file>` (so that a `#!` line picks the interpreter, as with the
//! AWS agent) in its own process group, stdin `/dev/null`, stdout and stderr captured with bounded
//! memory. A timeout, a cancel or the agent's shutdown ends the whole process group: SIGTERM,
//! then SIGKILL after a short grace.

use crate::capture::{self, Output};
use std::io;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How long a terminated process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the output streams to end once the script has exited (a background
/// process may hold them open; it is left running and its further output ignored).
pub const STREAM_GRACE: Duration = Duration::from_secs(1);

/// A command's interruption: none, cancelled (`CancelCommand`), or the agent shutting down.
#[derive(Debug, Default)]
pub struct Interrupt(AtomicU8);

/// The state of an [`Interrupt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// Not interrupted.
    None,
    /// Cancelled by `CancelCommand`.
    Cancelled,
    /// The agent is stopping.
    Shutdown,
}

impl Interrupt {
    /// Not interrupted.
    pub fn new() -> Self {
        Interrupt::default()
    }
    /// Cancels.
    pub fn cancel(&self) {
        self.0.store(1, Ordering::SeqCst);
    }
    /// Interrupts for shutdown, unless already cancelled.
    pub fn shutdown(&self) {
        let _ = self.0.compare_exchange(0, 2, Ordering::SeqCst, Ordering::SeqCst);
    }
    /// The current state.
    pub fn state(&self) -> Interruption {
        match self.0.load(Ordering::SeqCst) {
            0 => Interruption::None,
            1 => Interruption::Cancelled,
            _ => Interruption::Shutdown,
        }
    }
}

/// What to run.
pub struct Spec<'a> {
    /// The script file (executable).
    pub script: &'a Path,
    /// The working directory.
    pub cwd: &'a Path,
    /// Extra environment variables.
    pub env: &'a [(String, String)],
    /// The time limit.
    pub timeout: Duration,
    /// Interruption flag, polled while the script runs.
    pub interrupt: &'a Interrupt,
    /// How many bytes of stdout to keep.
    pub keep_stdout: usize,
    /// How many bytes of stderr to keep.
    pub keep_stderr: usize,
}

/// How the script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited with this code.
    Exited(i32),
    /// A signal (not sent by the agent) killed it.
    Signaled(i32),
    /// It ran out of time and its process group was killed.
    TimedOut,
    /// It was cancelled and its process group was killed.
    Cancelled,
    /// The agent stopped and killed its process group.
    Shutdown,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// Its stdout (first bytes).
    pub stdout: Output,
    /// Its stderr (first bytes).
    pub stderr: Output,
}

/// Quotes `s` for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Whether process group `pgid` has a member that is not a zombie (zombies whose parent died
/// stay in the group until init reaps them, which some containers' init never does).
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return true };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else { continue };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let pgrp = f.nth(1).and_then(|v| v.parse::<i32>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: signals the process group the agent created for the script.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Ends the process group `pgid` led by `child`: SIGTERM, then SIGKILL after `KILL_GRACE`.
fn terminate(child: &mut std::process::Child, pgid: i32) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + KILL_GRACE;
    let mut reaped = false;
    while Instant::now() < deadline {
        if !reaped {
            reaped = matches!(child.try_wait(), Ok(Some(_)));
        }
        if reaped && !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pgid, libc::SIGKILL);
    let _ = child.wait();
    // SIGKILL is delivered asynchronously: wait (briefly) until the group is really gone.
    let deadline = Instant::now() + Duration::from_secs(1);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `spec.script`; an error means the script could not be started.
pub fn run(spec: &Spec<'_>) -> io::Result<Outcome> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(shell_quote(&spec.script.to_string_lossy()))
        .current_dir(spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let out = capture::drain(child.stdout.take().expect("piped stdout"), spec.keep_stdout);
    let err = capture::drain(child.stderr.take().expect("piped stderr"), spec.keep_stderr);
    let deadline = Instant::now() + spec.timeout;
    let end = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match status.code() {
                    Some(c) => End::Exited(c),
                    None => End::Signaled(status.signal().unwrap_or(0)),
                };
            }
            Ok(None) => {}
            Err(e) => {
                terminate(&mut child, pgid);
                return Err(e);
            }
        }
        let stop = match spec.interrupt.state() {
            Interruption::Cancelled => Some(End::Cancelled),
            Interruption::Shutdown => Some(End::Shutdown),
            Interruption::None if Instant::now() >= deadline => Some(End::TimedOut),
            Interruption::None => None,
        };
        if let Some(end) = stop {
            terminate(&mut child, pgid);
            break end;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Outcome { end, stdout: out.finish(STREAM_GRACE), stderr: err.finish(STREAM_GRACE) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn interrupts() {
        let i = Interrupt::new();
        assert_eq!(i.state(), Interruption::None);
        i.shutdown();
        assert_eq!(i.state(), Interruption::Shutdown);
        i.cancel();
        assert_eq!(i.state(), Interruption::Cancelled);
        i.shutdown();
        assert_eq!(i.state(), Interruption::Cancelled, "a cancel is not overridden");
    }
}
