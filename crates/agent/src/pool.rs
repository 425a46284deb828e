//! The command queue and its workers' bookkeeping: at most `max_parallel` commands run at once,
//! the rest wait in order (already acknowledged). Each command has an [`Interrupt`] from the
//! moment it is queued, so a cancel reaches it whether it waits or runs; a cancel that arrives
//! before its command is remembered for a while and applied when the command comes.

use crate::exec::Interrupt;
use crate::mds::{Message, SendCommandPayload};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long an early cancel is remembered, ms.
const EARLY_CANCEL_MS: i64 = 30 * 60 * 1000;

/// A command to run.
pub struct Job {
    /// Its message.
    pub message: Message,
    /// Its payload.
    pub payload: SendCommandPayload,
    /// Its interruption flag.
    pub interrupt: Arc<Interrupt>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    known: HashMap<String, Arc<Interrupt>>,
    running: usize,
    closed: bool,
    early_cancels: HashMap<String, i64>,
}

/// The queue.
#[derive(Default)]
pub struct Pool {
    state: Mutex<State>,
    cv: Condvar,
}

impl Pool {
    /// An empty, open queue.
    pub fn new() -> Self {
        Pool::default()
    }

    /// Queues a command; false if it is already queued or running.
    pub fn submit(&self, message: Message, payload: SendCommandPayload) -> bool {
        let mut s = self.state.lock().unwrap();
        let id = message.message_id.clone();
        if s.known.contains_key(&id) {
            return false;
        }
        let interrupt = Arc::new(Interrupt::new());
        if s.early_cancels.remove(&id).is_some() {
            interrupt.cancel();
        }
        s.known.insert(id, interrupt.clone());
        s.queue.push_back(Job { message, payload, interrupt });
        self.cv.notify_all();
        true
    }

    /// Whether a command is queued or running.
    pub fn knows(&self, message_id: &str) -> bool {
        self.state.lock().unwrap().known.contains_key(message_id)
    }

    /// Cancels a command; false if it is not here (the cancel is then remembered).
    pub fn cancel(&self, message_id: &str) -> bool {
        let mut s = self.state.lock().unwrap();
        match s.known.get(message_id) {
            Some(i) => {
                i.cancel();
                true
            }
            None => {
                let now = crate::clock::now_ms();
                s.early_cancels.retain(|_, t| now - *t < EARLY_CANCEL_MS);
                if s.early_cancels.len() < 10_000 {
                    s.early_cancels.insert(message_id.to_string(), now);
                }
                false
            }
        }
    }

    /// The next command to run (blocks); `None` once the queue is closed.
    pub fn next(&self) -> Option<Job> {
        let mut s = self.state.lock().unwrap();
        loop {
            if s.closed {
                return None;
            }
            if let Some(job) = s.queue.pop_front() {
                s.running += 1;
                return Some(job);
            }
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Marks a command handed out by `next` as finished.
    pub fn done(&self, message_id: &str) {
        let mut s = self.state.lock().unwrap();
        s.known.remove(message_id);
        s.running = s.running.saturating_sub(1);
        self.cv.notify_all();
    }

    /// Stops handing out commands (queued ones stay queued, in the inbox, for the next start).
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.cv.notify_all();
    }

    /// Interrupts every running command for shutdown.
    pub fn shutdown_running(&self) {
        let s = self.state.lock().unwrap();
        let queued: Vec<&str> = s.queue.iter().map(|j| j.message.message_id.as_str()).collect();
        for (id, i) in &s.known {
            if !queued.contains(&id.as_str()) {
                i.shutdown();
            }
        }
    }

    /// Waits up to `timeout` for no command to be running; returns whether none is.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap();
        while s.running > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self.cv.wait_timeout(s, deadline - now).unwrap().0;
        }
        true
    }

    /// (queued, running) counts.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.queue.len(), s.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Interruption;

    fn job(id: &str) -> (Message, SendCommandPayload) {
        let m = Message {
            created_date: String::new(),
            destination: String::new(),
            message_id: id.into(),
            payload: String::new(),
            payload_digest: String::new(),
            topic: String::new(),
        };
        let p: SendCommandPayload = serde_json::from_value(serde_json::json!({"DocumentContent": {}})).unwrap();
        (m, p)
    }

    #[test]
    fn queue_cancel_and_close() {
        let pool = Pool::new();
        let (m, p) = job("a");
        assert!(pool.submit(m.clone(), p.clone()));
        assert!(!pool.submit(m, p), "no duplicates");
        assert!(!pool.cancel("b"), "b is not here yet");
        let (m, p) = job("b");
        pool.submit(m, p);
        assert_eq!(pool.counts(), (2, 0));
        let a = pool.next().unwrap();
        assert_eq!(a.message.message_id, "a");
        let b = pool.next().unwrap();
        assert_eq!(b.interrupt.state(), Interruption::Cancelled, "the early cancel applies");
        assert!(pool.cancel("a"));
        assert_eq!(a.interrupt.state(), Interruption::Cancelled);
        assert!(!pool.wait_idle(Duration::from_millis(10)));
        pool.done("a");
        pool.done("b");
        assert!(pool.wait_idle(Duration::from_millis(10)));
        assert!(!pool.knows("a"));
        pool.close();
        assert!(pool.next().is_none());
    }
}
