//! Sending replies: in-progress replies go out at once (spooled if the server cannot take
//! them); final replies are written to the spool first — so that none is lost if the agent stops
//! — and sent by one resender thread, which retries with back-off (2 s doubling to 30 s) for as
//! long as the spool keeps them.

use crate::backoff::Backoff;
use crate::mds;
use crate::session::Session;
use crate::spool::{Flush, Spool, SpooledReply};
use crate::stop::Stop;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The reply sender.
pub struct Outbox {
    session: Arc<Session>,
    spool: Spool,
    nudged: Mutex<bool>,
    cv: Condvar,
}

impl Outbox {
    /// An outbox spooling into `spool`.
    pub fn new(session: Arc<Session>, spool: Spool) -> Outbox {
        Outbox { session, spool, nudged: Mutex::new(false), cv: Condvar::new() }
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    fn record(message_id: &str, payload: &str, is_final: bool) -> SpooledReply {
        SpooledReply {
            message_id: message_id.to_string(),
            reply_id: crate::ids::uuid_v4(),
            payload: payload.to_string(),
            created_ms: crate::clock::now_ms(),
            is_final,
        }
    }

    fn spool_it(&self, r: &SpooledReply) {
        if let Err(e) = self.spool.push(r) {
            crate::error!("{}: cannot spool reply {}: {e}", r.message_id, r.reply_id);
        }
        self.nudge();
    }

    /// Sends an in-progress reply now; spools it if the server cannot take it (or if earlier
    /// replies of the message still wait).
    pub fn send_now(&self, message_id: &str, payload: &str) {
        let r = Self::record(message_id, payload, false);
        if self.spool.has_pending_for(message_id) {
            self.spool_it(&r);
            return;
        }
        match mds::send_reply(&self.session, &r.message_id, &r.reply_id, &r.payload) {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                crate::warn!("{message_id}: reply not sent ({e}); spooled for later");
                self.spool_it(&r);
            }
            Err(e) => crate::error!("{message_id}: the service refused the reply: {e}"),
        }
    }

    /// Queues a final reply (spooled first, then sent by the resender).
    pub fn send_final(&self, message_id: &str, payload: &str) {
        self.spool_it(&Self::record(message_id, payload, true));
    }

    /// Wakes the resender.
    pub fn nudge(&self) {
        *self.nudged.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// One pass over the spool, each call limited to `timeout` (default if `None`).
    pub fn flush(&self, timeout: Option<Duration>) -> Option<Flush> {
        self.spool.flush(crate::clock::now_ms(), |r| {
            let body = serde_json::json!({ "MessageId": r.message_id, "ReplyId": r.reply_id, "Payload": r.payload });
            self.session
                .call_with_timeout(&format!("{}.SendReply", mds::PREFIX), &body, timeout)
                .map(|_| crate::info!("{}: reply {} sent", r.message_id, r.reply_id))
        })
    }

    /// The resender: flushes when nudged, and retries with back-off while the server fails.
    pub fn run_resender(&self, stop: &Stop) {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(30));
        let mut next_attempt = Instant::now();
        let mut failing = false;
        while !stop.requested() {
            {
                let mut n = self.nudged.lock().unwrap();
                if !*n {
                    n = self.cv.wait_timeout(n, Duration::from_millis(500)).unwrap().0;
                }
                *n = false;
            }
            if stop.requested() {
                break;
            }
            if Instant::now() < next_attempt || self.spool.is_empty() {
                continue;
            }
            if let Some(f) = self.flush(None) {
                if f.failed {
                    let wait = backoff.next_wait();
                    if !failing {
                        crate::warn!("{} replies wait for the service; retrying with back-off", f.remaining);
                    }
                    failing = true;
                    next_attempt = Instant::now() + wait;
                } else {
                    if failing {
                        crate::info!("the spooled replies are sent");
                    }
                    failing = false;
                    backoff.reset();
                }
            }
        }
    }
}
