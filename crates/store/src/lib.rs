//! Persistence for ssmd over SQLite (the embedded default) and PostgreSQL (for several replicas
//! on one database). Every query is written once (`sql` runs it on either database).
//!
//! Guarantees:
//! * every method returns only after its writes are committed (SQLite in WAL mode survives a
//!   `kill -9` of the process; PostgreSQL commits synchronously);
//! * times are always bound parameters supplied by the caller's clock, never SQL `now()`;
//! * every row is scoped by (account, region), and every query filters on both.
//!
//! On SQLite, writes go through a single connection so writers queue in-process instead of
//! failing with `SQLITE_BUSY`; reads use their own connections. On PostgreSQL, sqlx's pool, with
//! [`PgLimits`] on every connection; a transaction whose connection died before COMMIT is run
//! once more (see `sql::transaction!`).

mod activations;
mod automation;
pub mod bus;
mod cache;
mod commands;
mod documents;
mod idempotency;
pub mod jobs;
mod keys;
mod migrations;
mod nodes;
mod parameters;
mod quotas;
pub mod sql;
mod tags;
#[doc(hidden)]
pub mod testing;
mod windows;

pub use activations::{ACTIVATION_TAGS, ActivationFilter, ActivationRow, ActivationUse, NewActivation};
pub use automation::{
    AUTOMATION_JOB, ExecutionFilter, ExecutionRow, FINAL_EXECUTION_STATUSES, Hold, NewExecution, StateWrite,
    TargetChanges, TargetRow,
};
pub use commands::{
    COMMAND_JOB, CommandFilter, CommandRow, FINAL_STATUSES, InvocationRow, MessageRow, NewCommand, Scope, Settlement,
    cancel_topic, send_message_id, send_topic,
};
pub use documents::{DocumentRow, ReviewRow, ShareRow, VersionRow};
pub use idempotency::IdempotencyRecord;
pub use keys::AccessKey;
pub use nodes::{NODE_TAGS, NewNode, NodeInfo, NodeRegistration, NodeRow};
pub use parameters::{
    LabelOutcome, NameOp, PARAMETER_EXPIRE_JOB, PARAMETER_TAGS, ParamCond, ParameterRow, PutOutcome, parent_path,
};
pub use sql::PgLimits;

/// A database URL fit to print: a password in it is replaced by `***`
/// (`postgres://postgres:***@db/ssmd`).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}
pub use tags::Tag;
pub use windows::{
    Fire, InvocationRunRow, Part, RunWrite, TaskRunRow, WINDOW_FIRE_JOB, WINDOW_RUN_JOB, WINDOW_TAGS, WindowPartRow,
    WindowRow, WindowRunRow, fire_key,
};

use std::time::Instant;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one file, WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Store failures. `Conflict` is a uniqueness or concurrent-update conflict the caller maps to a
/// domain error; everything else is an internal error (`LockTimeout` and `Disconnected` are
/// worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists, or a guarded update found the row changed.
    #[error("conflict")]
    Conflict,
    /// A statement waited longer than the lock timeout for a row another transaction holds;
    /// nothing was written.
    #[error("lock timeout: another transaction holds the rows")]
    LockTimeout,
    /// The database connection died (or stopped answering, or the server ended the session)
    /// before COMMIT was sent, so nothing was written; the store has already tried once more.
    #[error("database connection lost: {0}")]
    Disconnected(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// The database URL is not one ssmd supports.
    #[error("unsupported database URL: {0}")]
    BadUrl(String),
}

/// Result alias for store calls.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sql::Db,
    backend: Backend,
    /// Present only on SQLite, where this process is the only writer.
    /// Document reads, dropped by every committed write to the document — in this process, and
    /// (PostgreSQL) in every replica through the bus; used only while the bus is healthy.
    doc_cache: std::sync::Arc<cache::DocCache>,
    /// Runbook hashes this process knows are stored (runbooks are never deleted).
    known_runbooks: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    /// `sqlite://PATH` and `postgres://...` (or `postgresql://`) are accepted. PostgreSQL
    /// connections get the default [`PgLimits`].
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, &PgLimits::default()).await
    }

    /// [`Store::open`] with these limits on every PostgreSQL connection.
    pub async fn open_with(url: &str, limits: &PgLimits) -> Result<Store> {
        let (db, backend) = if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or(path);
            (sql::Db::sqlite(path)?, Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (sql::Db::postgres(url, limits).await?, Backend::Postgres)
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let doc_cache: std::sync::Arc<cache::DocCache> = Default::default();
        let c = doc_cache.clone();
        db.bus().subscribe(
            "doc:",
            std::sync::Arc::new(move |topic: &str| {
                if topic == "*" {
                    return c.clear();
                }
                let mut parts = topic.splitn(3, '/');
                if let (Some(a), Some(r), Some(n)) = (parts.next(), parts.next(), parts.next()) {
                    c.invalidate(a, r, n);
                }
            }),
        );
        let store = Store { db, backend, doc_cache, known_runbooks: Default::default() };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// The database, for statements outside the store's methods (tests, tools).
    pub fn db(&self) -> &sql::Db {
        &self.db
    }

    /// Starts a write transaction (one that is not repeated if its connection dies: store
    /// methods use `sql::transaction!`; this is for tests and tools).
    pub async fn begin(&self) -> Result<sql::Tx<'_>> {
        self.db.begin().await
    }

    /// The wake-up bus (subscribe to topics published by committed transactions).
    pub fn bus(&self) -> &std::sync::Arc<bus::Bus> {
        self.db.bus()
    }

    /// The listener that brings the other replicas' wake-ups to this store's bus (PostgreSQL;
    /// inactive on SQLite). Run it as a worker.
    pub fn listener(&self) -> bus::Listener {
        bus::Listener::new(self.db.pg_pool().cloned(), self.db.bus().clone())
    }

    /// The notifier that sends this store's committed wake-ups to the other replicas
    /// (PostgreSQL; inactive on SQLite). Run it as a worker.
    pub fn notifier(&self) -> bus::Notifier {
        bus::Notifier::new(self.db.pg_pool().cloned(), self.db.bus().clone())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the database, waiting for in-flight queries.
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// Records how long a store call took, by call name.
async fn timed<T>(op: &'static str, fut: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    metrics::histogram!("ssmd_store_seconds", "op" => op).record(start.elapsed().as_secs_f64());
    out
}

fn opt_str(row: &sql::Row, col: &str) -> Result<Option<String>> {
    row.get::<Option<String>>(col)
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_never_print() {
        use super::redacted_url as r;
        assert_eq!(r("postgres://postgres:S3cretPass@db:5432/ssmd"), "postgres://postgres:***@db:5432/ssmd");
        assert_eq!(r("postgres://u:p%40ss@h/d?sslmode=disable"), "postgres://u:***@h/d?sslmode=disable");
        assert_eq!(r("postgres://postgres@127.0.0.1:5432/x"), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(r("sqlite:///tmp/ssmd.db"), "sqlite:///tmp/ssmd.db");
        assert_eq!(r("not a url"), "not a url");
    }
}
