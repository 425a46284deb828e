//! Stopping: a flag that SIGTERM/SIGINT raise, and interruptible sleeps, so that every loop of
//! the agent notices a stop request at once instead of at the end of its wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Set by the signal handler; read by `Stop::watch_signals`.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Installs the SIGTERM and SIGINT handlers.
pub fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a plain sigaction with a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A stop request shared by the agent's threads.
#[derive(Default)]
pub struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    /// A stop not yet requested.
    pub fn new() -> Self {
        Stop::default()
    }

    /// Requests the stop and wakes every sleeper.
    pub fn request(&self) {
        *self.stopped.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Sleeps for `d` or until a stop is requested; returns whether it was.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = self.stopped.lock().unwrap();
        while !*stopped {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            stopped = self.cv.wait_timeout(stopped, deadline - now).unwrap().0;
        }
        *stopped
    }

    /// Blocks until a signal arrives or the stop is requested otherwise, then requests it.
    pub fn watch_signals(&self) {
        while !SIGNALLED.load(Ordering::SeqCst) {
            if self.sleep(Duration::from_millis(100)) {
                return;
            }
        }
        self.request();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sleep_is_cut_short_by_a_request() {
        let s = Arc::new(Stop::new());
        assert!(!s.sleep(Duration::from_millis(10)));
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            (s2.sleep(Duration::from_secs(30)), start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        s.request();
        let (stopped, took) = t.join().unwrap();
        assert!(stopped && took < Duration::from_secs(5));
        assert!(s.requested());
    }
}
