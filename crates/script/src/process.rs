//! The interpreter process of one run: its scratch directory, its process group (killed on
//! timeout, on exit and when the run is cancelled), and the supervision loop that feeds stdin,
//! drains stdout and stderr under a cap and enforces the deadline.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use tokio::time::{Instant, sleep_until};

use crate::capture::Capture;

/// The Python program that loads the script and calls the handler.
const BOOTSTRAP: &str = include_str!("bootstrap.py");

/// How long output may still arrive after the interpreter exited (and its group was killed)
/// before ssmd stops waiting for the pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How long to wait for the killed interpreter to be reaped after a timeout.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// A per-run scratch directory, removed when dropped. It holds the result file and `work/`,
/// the script's working directory.
pub(crate) struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates a fresh directory (mode 0700) under the system temporary directory.
    pub(crate) fn create() -> io::Result<RunDir> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let root = base.join(format!("ssmd-script-{}-{n}-{nanos:08x}", std::process::id()));
            match builder.create(&root) {
                Ok(()) => {
                    let dir = RunDir { root };
                    builder.create(dir.work_dir())?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name for a scratch directory"))
    }

    /// Where the bootstrap writes the outcome.
    pub(crate) fn result_path(&self) -> PathBuf {
        self.root.join("result.json")
    }

    /// The script's working directory.
    pub(crate) fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Kills the interpreter's whole process group (the interpreter and everything it started)
/// with SIGKILL, at most once: explicitly, or when dropped still armed.
struct GroupGuard {
    pgid: Option<libc::pid_t>,
}

impl GroupGuard {
    /// Kills the group now and disarms the guard. Later calls do nothing, so a process group id
    /// the system has since reused is never signalled.
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) only sends a signal; a negative pid addresses the group `pgid`,
            // which the interpreter leads (it was started with process_group(0)).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How the interpreter process ended.
pub(crate) enum Finish {
    /// It could not be started; the message says why.
    NotStarted(String),
    /// The deadline passed and the group was killed.
    TimedOut { stdout: String },
    /// It exited on its own (or waiting for it failed).
    Exited { status: io::Result<ExitStatus>, stdout: String, stderr: String },
}

/// Runs the bootstrap under `python` in `dir`, feeding `input` on stdin, until it exits or
/// `timeout` passes. Dropping the returned future kills the process group.
pub(crate) async fn execute(python: &Path, dir: &RunDir, input: Vec<u8>, timeout: Duration, cap: usize) -> Finish {
    let deadline = Instant::now() + timeout;
    let mut command = Command::new(python);
    command
        .arg("-u")
        .arg("-c")
        .arg(BOOTSTRAP)
        .arg(dir.result_path())
        .current_dir(dir.work_dir())
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // The server's own settings (database URL, root key) are not the script's business.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SSMD_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Finish::NotStarted(format!(
                "cannot start the Python interpreter {}: it was not found (is it installed and on PATH?)",
                python.display()
            ));
        }
        Err(e) => {
            return Finish::NotStarted(format!("cannot start the Python interpreter {}: {e}", python.display()));
        }
    };
    // The child leads its own group, so its pid is the group id.
    let mut group = GroupGuard { pgid: child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) };

    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out = Capture::new(cap);
    let mut err = Capture::new(cap);

    let status = {
        let mut io = pin!(async {
            tokio::join!(feed(stdin, input), out.read_from(stdout), err.read_from(stderr));
        });
        let mut io_done = false;
        let mut status = None;
        let mut limit = deadline;
        loop {
            tokio::select! {
                () = &mut io, if !io_done => io_done = true,
                exited = child.wait(), if status.is_none() => {
                    // Whatever the script left running goes with it; this also closes the pipes
                    // those processes inherited.
                    group.kill();
                    status = Some(exited);
                    limit = limit.min(Instant::now() + DRAIN_GRACE);
                }
                () = sleep_until(limit) => break,
            }
            if io_done && status.is_some() {
                break;
            }
        }
        status
    };

    match status {
        Some(status) => Finish::Exited { status, stdout: out.into_text(), stderr: err.into_text() },
        None => {
            group.kill();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            Finish::TimedOut { stdout: out.into_text() }
        }
    }
}

/// Writes the request to the interpreter's stdin and closes it. A write error means the
/// interpreter already died, which the exit status reports.
async fn feed(stdin: Option<ChildStdin>, input: Vec<u8>) {
    if let Some(mut stdin) = stdin {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    }
}
