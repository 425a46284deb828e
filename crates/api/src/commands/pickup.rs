//! Message pickups, batched: long polls that wake together (a command fanned out to many nodes)
//! take their messages in one store transaction instead of one transaction each. One worker
//! (`pickups`) serves the queue: it takes the requests that are waiting or still arriving (up
//! to [`MAX_BATCH`]), runs them as one `take_messages_many`, and answers each. With one poll
//! waiting it costs one channel hop and a few scheduler turns.

use crate::store_error;
use ssmd_engine::{State, Worker};
use ssmd_model::ApiError;
use ssmd_store::{MessageRow, Store};
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// At most this many messages per node per pickup (per GetMessages answer).
pub const MAX_MESSAGES: i64 = 10;

/// At most this many pickups per transaction.
const MAX_BATCH: usize = 1024;

/// Scheduler turns without a new request after which a batch is taken.
const IDLE_TURNS: u32 = 4;

struct Request {
    queued: std::time::Instant,
    node: String,
    now_ms: i64,
    invisible_until: i64,
    reply: oneshot::Sender<Result<Vec<MessageRow>, ApiError>>,
}

/// The pickup queue.
pub struct Pickups {
    queue: mpsc::UnboundedSender<Request>,
    /// The receiving end, until the worker takes it.
    pending: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
}

impl Pickups {
    /// A queue; nothing is served until [`Pickups::worker`] runs.
    pub fn new() -> Pickups {
        let (queue, rx) = mpsc::unbounded_channel();
        Pickups { queue, pending: Mutex::new(Some(rx)) }
    }

    /// The worker that serves the queue from `store` (once; `None` after the first call).
    pub fn worker(&self, store: Store) -> Option<PickupWorker> {
        let rx = self.pending.lock().expect("pickups").take()?;
        Some(PickupWorker { rx, store, first: None, closed: false })
    }

    /// Takes the visible messages of `node`, hiding them until `invisible_until`.
    pub async fn take(&self, node: &str, now_ms: i64, invisible_until: i64) -> Result<Vec<MessageRow>, ApiError> {
        let (reply, answer) = oneshot::channel();
        let req = Request { queued: std::time::Instant::now(), node: node.to_string(), now_ms, invisible_until, reply };
        self.queue.send(req).map_err(|_| ApiError::internal("the message pickup worker has stopped"))?;
        answer.await.map_err(|_| ApiError::internal("the message pickup worker dropped a request"))?
    }
}

impl Default for Pickups {
    fn default() -> Self {
        Pickups::new()
    }
}

/// The worker behind [`Pickups`].
pub struct PickupWorker {
    rx: mpsc::UnboundedReceiver<Request>,
    store: Store,
    /// A request received while waiting for work.
    first: Option<Request>,
    closed: bool,
}

impl Worker for PickupWorker {
    fn name(&self) -> String {
        "pickups".into()
    }

    async fn work(&mut self) -> Result<State, String> {
        let first = match self.first.take() {
            Some(r) => r,
            None => match self.rx.try_recv() {
                Ok(r) => r,
                Err(_) if self.closed => return Ok(State::Done),
                Err(_) => return Ok(State::Idle),
            },
        };
        let mut batch = vec![first];
        // Polls woken together enqueue over a few scheduler turns: keep collecting while they
        // still arrive (a lone poll costs a few yields, microseconds).
        let mut idle_turns = 0;
        while batch.len() < MAX_BATCH && idle_turns < IDLE_TURNS {
            match self.rx.try_recv() {
                Ok(r) => {
                    batch.push(r);
                    idle_turns = 0;
                }
                Err(_) => {
                    idle_turns += 1;
                    tokio::task::yield_now().await;
                }
            }
        }
        let now = batch.iter().map(|r| r.now_ms).max().unwrap_or_default();
        let pickups: Vec<(String, i64)> = batch.iter().map(|r| (r.node.clone(), r.invisible_until)).collect();
        match self.store.take_messages_many(&pickups, now, MAX_MESSAGES).await {
            Ok(answers) => {
                for (r, found) in batch.into_iter().zip(answers) {
                    metrics::histogram!("ssmd_message_pickup_seconds").record(r.queued.elapsed().as_secs_f64());
                    let _ = r.reply.send(Ok(found));
                }
            }
            Err(e) => {
                // One bad pickup (or a deadlock) must not fail the whole batch: each is tried
                // again on its own.
                tracing::warn!(error = %e, pickups = batch.len(), "a batched message pickup failed; retrying one by one");
                for r in batch {
                    let one = self.store.take_messages(&r.node, r.now_ms, r.invisible_until, MAX_MESSAGES).await;
                    let _ = r.reply.send(one.map_err(store_error));
                }
            }
        }
        Ok(State::Busy)
    }

    async fn wait_for_work(&mut self) {
        match self.rx.recv().await {
            Some(r) => self.first = Some(r),
            None => self.closed = true,
        }
    }
}
