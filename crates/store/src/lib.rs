//! Persistence for ssmd over SQLite (the embedded default) and PostgreSQL (for several replicas
//! on one database), through one SQL code path (sqlx's `Any` driver).
//!
//! Guarantees:
//! * every method returns only after its writes are committed (SQLite in WAL mode survives a
//!   `kill -9` of the process; PostgreSQL commits synchronously);
//! * times are always bound parameters supplied by the caller's clock, never SQL `now()`;
//! * every row is scoped by (account, region), and every query filters on both.
//!
//! On SQLite, writes go through a single-connection pool so writers queue in-process instead of
//! failing with `SQLITE_BUSY`; reads use a separate pool. On PostgreSQL both are one pool.

mod cache;
mod documents;
mod idempotency;
mod keys;
mod migrations;
mod tags;

pub use documents::{DocumentRow, ReviewRow, ShareRow, VersionRow};
pub use idempotency::IdempotencyRecord;
pub use keys::AccessKey;
pub use tags::Tag;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::{Duration, Instant};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one file, WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Store failures. `Conflict` is a uniqueness or concurrent-update conflict the caller maps to a
/// domain error; everything else is an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key already exists, or a guarded update found the row changed.
    #[error("conflict")]
    Conflict,
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The database URL is not one ssmd supports.
    #[error("unsupported database URL: {0}")]
    BadUrl(String),
}

impl StoreError {
    fn from_write(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Db(e),
        }
    }
}

/// Result alias for store calls.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    /// Present only on SQLite, where this process is the only writer.
    doc_cache: Option<std::sync::Arc<cache::DocCache>>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    /// `sqlite://PATH` and `postgres://...` (or `postgresql://`) are accepted.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let (read, write) = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
                let opts = || {
                    AnyPoolOptions::new().test_before_acquire(false).after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::raw_sql(
                                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                };
                let write = opts().max_connections(1).min_connections(1).connect(&url).await?;
                let read = opts().max_connections(8).min_connections(1).connect(&url).await?;
                (read, write)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let doc_cache = (backend == Backend::Sqlite).then(Default::default);
        let store = Store { read, write, backend, doc_cache };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Drops cached reads of a document after a committed write to it.
    fn invalidate_document(&self, account: &str, region: &str, name: &str) {
        if let Some(c) = &self.doc_cache {
            c.invalidate(account, region, name);
        }
    }

    /// Closes both pools, waiting for in-flight queries.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Records how long a store call took, by call name.
async fn timed<T>(op: &'static str, fut: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    metrics::histogram!("ssmd_store_seconds", "op" => op).record(start.elapsed().as_secs_f64());
    out
}

fn opt_str(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}
