//! Wake-ups across the process and across replicas: a transaction names topics
//! ([`crate::sql::Tx::notify`], e.g. `job:automation`, `node:mi-0123…`, `doc:…`), and once it
//! commits every subscriber of the topic's prefix in every replica is called.
//!
//! * In this process, subscribers are called right after the commit returns.
//! * On PostgreSQL the topics are also queued for the other replicas: the [`Notifier`] (run by
//!   the engine as a worker) sends what has queued up with `pg_notify`, a batch per round trip,
//!   and each replica's [`Listener`] hands the other replicas' topics to its bus. Sending after
//!   the commit, from one connection, keeps data transactions clear of PostgreSQL's
//!   cluster-wide notify lock (a `pg_notify` inside a transaction serialises every notifying
//!   commit); a crash between a commit and its announcement costs the other replicas a
//!   fallback poll, nothing more.
//! * A wake-up is a hint, never the source of truth: subscribers re-read the database. When the
//!   listener loses its connection, notifications may have been missed, so every subscriber is
//!   called with the topic `*` ("anything may have changed"), and [`Bus::healthy`] is false until
//!   it is back (caches that rely on invalidations stop caching meanwhile).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The PostgreSQL channel every replica listens on.
pub const CHANNEL: &str = "ssmd";

/// A subscriber: called with the topic's suffix after its prefix (or `*`). Must be quick and
/// must not block: it wakes something up.
pub type Subscriber = Arc<dyn Fn(&str) + Send + Sync>;

/// The wake-up bus of one store.
pub struct Bus {
    /// This replica's id, put before the topics it publishes so its listener skips its own.
    origin: String,
    subscribers: RwLock<HashMap<String, Vec<Subscriber>>>,
    /// False while cross-replica notifications may be missed (PostgreSQL listener down).
    healthy: AtomicBool,
    /// Topics committed here and not yet sent to the other replicas (PostgreSQL only).
    outbox: Option<std::sync::Mutex<Vec<String>>>,
    /// Raised when the outbox gets topics.
    outbox_filled: tokio::sync::Notify,
}

impl Bus {
    pub(crate) fn new(cross_replica: bool) -> Bus {
        Bus {
            origin: uuid_like(),
            subscribers: RwLock::new(HashMap::new()),
            // Without other replicas there is nothing to miss.
            healthy: AtomicBool::new(!cross_replica),
            outbox: cross_replica.then(Default::default),
            outbox_filled: tokio::sync::Notify::new(),
        }
    }

    /// Calls `f` for every topic `prefix` + suffix published from now on (with the suffix), and
    /// with `*` when notifications may have been lost. `prefix` includes its colon (`job:`).
    pub fn subscribe(&self, prefix: &str, f: Subscriber) {
        self.subscribers.write().expect("bus").entry(prefix.to_string()).or_default().push(f);
    }

    /// Whether every notification of every replica is being received.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub(crate) fn set_healthy(&self, ok: bool) {
        self.healthy.store(ok, Ordering::SeqCst);
    }

    /// Queues committed topics for the other replicas (nothing on SQLite).
    pub(crate) fn send_remote(&self, topics: Vec<String>) {
        if let Some(outbox) = &self.outbox
            && !topics.is_empty()
        {
            outbox.lock().expect("outbox").extend(topics);
            self.outbox_filled.notify_one();
        }
    }

    /// Hands a topic to this process's subscribers.
    pub fn deliver(&self, topic: &str) {
        let subs = self.subscribers.read().expect("bus");
        if topic == "*" {
            subs.values().flatten().for_each(|f| f("*"));
            return;
        }
        if let Some((prefix, rest)) = topic.split_once(':') {
            // Prefixes are stored with their colon.
            let key = &topic[..prefix.len() + 1];
            if let Some(list) = subs.get(key) {
                list.iter().for_each(|f| f(rest));
            }
        }
    }

    /// The payloads of the `pg_notify` calls carrying `topics`: one topic per line after this
    /// replica's id, each payload under PostgreSQL's 8,000-byte limit (a command to 1,000
    /// nodes names 1,000 topics).
    pub(crate) fn payloads(&self, topics: &[String]) -> Vec<String> {
        const MAX: usize = 7_000;
        let mut out = Vec::new();
        let mut p = self.origin.clone();
        for t in topics.iter().filter(|t| t.len() < MAX - self.origin.len() - 1) {
            if p.len() + 1 + t.len() > MAX {
                out.push(std::mem::replace(&mut p, self.origin.clone()));
            }
            p.push('\n');
            p.push_str(t);
        }
        if p.len() > self.origin.len() {
            out.push(p);
        }
        out
    }

    /// Delivers the topics of a notification payload, unless this replica sent it.
    pub(crate) fn deliver_payload(&self, payload: &str) {
        let mut lines = payload.split('\n');
        if lines.next() == Some(self.origin.as_str()) {
            return;
        }
        lines.filter(|t| !t.is_empty()).for_each(|t| self.deliver(t));
    }
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    format!("r{:016x}", h.finish())
}

/// Sends this replica's committed topics to the other replicas on PostgreSQL (run it as a
/// worker: call [`Notifier::next`] in a loop). Whatever has queued up since the last send goes
/// out in one round trip; repeated topics once.
pub struct Notifier {
    bus: Arc<Bus>,
    pool: Option<sqlx::PgPool>,
}

impl Notifier {
    pub(crate) fn new(pool: Option<sqlx::PgPool>, bus: Arc<Bus>) -> Notifier {
        Notifier { bus, pool }
    }

    /// Whether there is anything to send to (PostgreSQL).
    pub fn active(&self) -> bool {
        self.pool.is_some()
    }

    /// Waits for topics and sends them. A failed send is returned (the caller backs off); its
    /// topics are dropped — the other replicas' fallback polls cover them.
    pub async fn next(&mut self) -> crate::Result<()> {
        let (Some(pool), Some(outbox)) = (&self.pool, &self.bus.outbox) else {
            std::future::pending::<()>().await;
            return Ok(());
        };
        let mut topics = loop {
            let filled = self.bus.outbox_filled.notified();
            let taken = std::mem::take(&mut *outbox.lock().expect("outbox"));
            if !taken.is_empty() {
                break taken;
            }
            filled.await;
        };
        let mut seen = std::collections::HashSet::new();
        topics.retain(|t| seen.insert(t.clone()));
        let sql: String = self
            .bus
            .payloads(&topics)
            .iter()
            .map(|p| format!("SELECT pg_notify('{CHANNEL}', '{}'); ", p.replace('\'', "''")))
            .collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(pool).await.map_err(crate::sql::pg_err)?;
        Ok(())
    }
}

/// Receives the other replicas' notifications on PostgreSQL (run it as a worker: call
/// [`Listener::next`] in a loop). On SQLite there is nothing to listen to.
pub struct Listener {
    inner: Option<sqlx::postgres::PgListener>,
    bus: Arc<Bus>,
    pool: Option<sqlx::PgPool>,
}

impl Listener {
    pub(crate) fn new(pool: Option<sqlx::PgPool>, bus: Arc<Bus>) -> Listener {
        Listener { inner: None, bus, pool }
    }

    /// Whether there is anything to listen to (PostgreSQL).
    pub fn active(&self) -> bool {
        self.pool.is_some()
    }

    /// Waits for the next notification and delivers it. After a lost connection it reconnects,
    /// delivers `*` (anything may have changed meanwhile) and returns; an error is returned
    /// when the database can't be reached (the caller backs off and calls again).
    pub async fn next(&mut self) -> crate::Result<()> {
        let Some(pool) = &self.pool else {
            std::future::pending::<()>().await;
            return Ok(());
        };
        if self.inner.is_none() {
            let mut l = sqlx::postgres::PgListener::connect_with(pool).await.map_err(crate::sql::pg_err)?;
            // Lost notifications are announced below, not silently skipped.
            l.ignore_pool_close_event(false);
            l.listen(CHANNEL).await.map_err(crate::sql::pg_err)?;
            self.inner = Some(l);
            self.bus.set_healthy(true);
            // Whatever happened while nobody listened must be looked at again.
            self.bus.deliver("*");
        }
        let l = self.inner.as_mut().expect("connected above");
        match l.try_recv().await {
            Ok(Some(n)) => {
                self.bus.deliver_payload(n.payload());
                Ok(())
            }
            Ok(None) => {
                // The connection was lost; sqlx reconnects on the next call. Until it has,
                // invalidations may be missed.
                self.bus.set_healthy(false);
                self.inner = None;
                self.bus.deliver("*");
                Ok(())
            }
            Err(e) => {
                self.bus.set_healthy(false);
                self.inner = None;
                Err(crate::sql::pg_err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn topics_reach_their_prefix_and_star_reaches_everyone() {
        let bus = Bus::new(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        for prefix in ["job:", "node:"] {
            let s = seen.clone();
            bus.subscribe(prefix, Arc::new(move |t: &str| s.lock().unwrap().push(format!("{prefix}{t}"))));
        }
        bus.deliver("job:automation");
        bus.deliver("node:mi-1");
        bus.deliver("doc:x");
        bus.deliver("*");
        let mut seen = seen.lock().unwrap().clone();
        // `*` reaches every subscriber, in no particular order.
        seen[2..].sort();
        assert_eq!(seen, ["job:automation", "node:mi-1", "job:*", "node:*"]);
    }

    #[test]
    fn a_replica_skips_its_own_payloads() {
        let (a, b) = (Bus::new(true), Bus::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        b.subscribe("job:", Arc::new(move |t: &str| s.lock().unwrap().push(t.to_string())));
        let s = seen.clone();
        a.subscribe("job:", Arc::new(move |t: &str| s.lock().unwrap().push(format!("own {t}"))));
        let p = a.payloads(&["job:x".into(), "job:y".into()]);
        assert_eq!(p.len(), 1);
        a.deliver_payload(&p[0]);
        b.deliver_payload(&p[0]);
        assert_eq!(*seen.lock().unwrap(), ["x", "y"]);
    }

    #[test]
    fn many_topics_are_split_under_the_notification_limit() {
        let (a, b) = (Bus::new(true), Bus::new(true));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        b.subscribe("node:", Arc::new(move |t: &str| s.lock().unwrap().push(t.to_string())));
        let topics: Vec<String> = (0..1000).map(|i| format!("node:mi-{i:017x}")).collect();
        let payloads = a.payloads(&topics);
        assert!(payloads.len() > 1 && payloads.iter().all(|p| p.len() < 8000));
        payloads.iter().for_each(|p| b.deliver_payload(p));
        assert_eq!(seen.lock().unwrap().len(), 1000);
        assert!(a.payloads(&[]).is_empty());
    }
}
