//! One small SQL interface over both databases, so every store method is written once.
//!
//! * **SQLite** runs inline through rusqlite: a query is a few microseconds of work on the
//!   calling thread, instead of a round trip to a driver thread (which costs 150–300 µs on small
//!   virtual machines). Writes go through one connection behind an async mutex, so writers queue
//!   in-process and never see `SQLITE_BUSY`; reads use a few connections of their own (WAL lets
//!   them run beside the writer). Write transactions are `BEGIN IMMEDIATE`.
//! * **PostgreSQL** runs through sqlx's pool, with [`PgLimits`] on every connection so that a
//!   replica whose link to the database stalls cannot hold row locks, or a request, for long.
//!
//! Write transactions run through [`transaction!`], the one place where work is repeated:
//! on PostgreSQL, an attempt whose connection died before COMMIT was sent (so nothing of it can
//! have been committed) runs once more on a fresh connection; a failure during or after COMMIT
//! is ambiguous and is never repeated. A lone `SELECT` outside a transaction is repeated by the
//! same rule; a lone write statement (it commits as it runs) never is.
//!
//! SQL is written once with `$1, $2, ...` placeholders, numbered in order of first appearance
//! (SQLite binds them by position). Values are integers, text or typed NULLs.

use crate::bus::Bus;
use crate::{Result, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column, Postgres, Row as _, TypeInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// Limits set on every PostgreSQL connection (as startup options, so they hold from the first
/// statement), so that neither end of a stalled or partitioned connection waits for long.
/// A zero duration turns that limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct PgLimits {
    /// `lock_timeout`: a statement waiting this long for a lock (a row another request holds)
    /// gives up with [`StoreError::LockTimeout`].
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: the server ends a session that sits this long
    /// inside a transaction without sending anything — a replica that froze or lost its network
    /// mid-transaction — which releases its locks.
    pub idle_in_transaction: Duration,
    /// `statement_timeout` on the server; ssmd itself waits this long plus a second for any
    /// one answer before it gives the connection up (a stalled server must not hang a request).
    pub statement_timeout: Duration,
    /// How long a silent peer is tolerated at the TCP level on the server's end: the server's
    /// `tcp_user_timeout` (unacknowledged data) and keepalives (idle 2/3 of it, then probes every
    /// 1/3), so the server notices a client that vanished without closing its connection.
    pub tcp_timeout: Duration,
}

impl Default for PgLimits {
    fn default() -> Self {
        PgLimits {
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(15),
            tcp_timeout: Duration::from_secs(15),
        }
    }
}

impl PgLimits {
    /// The server settings, as (name, value) startup options; times in the settings' units
    /// (milliseconds, or seconds for the keepalives).
    pub fn server_options(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let tcp = self.tcp_timeout.as_secs();
        let mut o = vec![
            ("lock_timeout", ms(self.lock_timeout)),
            ("idle_in_transaction_session_timeout", ms(self.idle_in_transaction)),
            ("statement_timeout", ms(self.statement_timeout)),
            ("tcp_user_timeout", ms(self.tcp_timeout)),
        ];
        if tcp > 0 {
            // With tcp_user_timeout set, Linux drops a connection whose keepalive probes go
            // unanswered for that long, so the probes only need to start in time.
            o.push(("tcp_keepalives_idle", (tcp * 2 / 3).max(1).to_string()));
            o.push(("tcp_keepalives_interval", (tcp / 3).max(1).to_string()));
            o.push(("tcp_keepalives_count", "3".to_string()));
        }
        o
    }

    /// How long ssmd waits for one answer from the server: the statement timeout and a second
    /// more, so that the server's own cancellation (a clean error) normally arrives first.
    fn answer_wait(&self) -> Option<Duration> {
        (!self.statement_timeout.is_zero()).then(|| self.statement_timeout + Duration::from_secs(1))
    }
}

/// A bound parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL in an integer position.
    NullInt,
    /// SQL NULL in a text position.
    NullText,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map(Value::Int).unwrap_or(Value::NullInt)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        v.map(Value::from).unwrap_or(Value::NullText)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        v.as_deref().map(Value::from).unwrap_or(Value::NullText)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map(Value::Text).unwrap_or(Value::NullText)
    }
}

/// A statement with its parameters.
#[derive(Debug, Clone)]
pub struct Query {
    sql: String,
    params: Vec<Value>,
}

/// Starts a statement.
pub fn query(sql: impl Into<String>) -> Query {
    Query { sql: sql.into(), params: Vec::new() }
}

impl Query {
    /// Binds the next parameter.
    pub fn bind(mut self, v: impl Into<Value>) -> Self {
        self.params.push(v.into());
        self
    }
}

/// Where a statement runs: the database, or an open transaction.
pub trait Executor: Send {
    /// Runs a statement and returns its rows.
    fn rows(self, q: Query) -> impl std::future::Future<Output = Result<Vec<Row>>> + Send;
    /// Runs a statement and returns the rows affected.
    fn affected(self, q: Query) -> impl std::future::Future<Output = Result<u64>> + Send;
}

impl Executor for &Db {
    async fn rows(self, q: Query) -> Result<Vec<Row>> {
        self.fetch_all(q).await
    }
    async fn affected(self, q: Query) -> Result<u64> {
        self.execute(q).await
    }
}

impl Executor for &mut Tx<'_> {
    async fn rows(self, q: Query) -> Result<Vec<Row>> {
        self.fetch_all(q).await
    }
    async fn affected(self, q: Query) -> Result<u64> {
        self.execute(q).await
    }
}

impl Query {
    /// Every row.
    pub async fn fetch_all(self, e: impl Executor) -> Result<Vec<Row>> {
        e.rows(self).await
    }
    /// The first row, if any.
    pub async fn fetch_optional(self, e: impl Executor) -> Result<Option<Row>> {
        Ok(e.rows(self).await?.into_iter().next())
    }
    /// The first row; an error if there is none.
    pub async fn fetch_one(self, e: impl Executor) -> Result<Row> {
        e.rows(self).await?.into_iter().next().ok_or_else(|| StoreError::Db("no row returned".into()))
    }
    /// The first column of the first row.
    pub async fn scalar<T: FromValue>(self, e: impl Executor) -> Result<T> {
        self.fetch_one(e).await?.first()
    }
    /// The first column of the first row, if there is a row.
    pub async fn scalar_opt<T: FromValue>(self, e: impl Executor) -> Result<Option<T>> {
        match self.fetch_optional(e).await? {
            Some(r) => r.first().map(Some),
            None => Ok(None),
        }
    }
    /// Runs a write; returns the rows affected.
    pub async fn execute(self, e: impl Executor) -> Result<u64> {
        e.affected(self).await
    }
}

/// A result row, read by column name.
#[derive(Debug, Clone)]
pub struct Row {
    cols: Arc<Vec<String>>,
    vals: Vec<Value>,
}

/// Types a column can be read as.
pub trait FromValue: Sized {
    /// Converts, or explains why not.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, got {other:?}")),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(format!("expected text, got {other:?}")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::NullInt | Value::NullText => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl Row {
    /// The value of a column.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T> {
        let i = self.cols.iter().position(|c| c == name).ok_or_else(|| StoreError::Db(format!("no column {name}")))?;
        T::from_value(&self.vals[i]).map_err(|e| StoreError::Db(format!("column {name}: {e}")))
    }

    /// The value of the column `prefix` + `name` (a joined table's aliased columns), without
    /// building the name.
    pub fn get_prefixed<T: FromValue>(&self, prefix: &str, name: &str) -> Result<T> {
        let i = self
            .cols
            .iter()
            .position(|c| c.len() == prefix.len() + name.len() && c.starts_with(prefix) && c.ends_with(name))
            .ok_or_else(|| StoreError::Db(format!("no column {prefix}{name}")))?;
        T::from_value(&self.vals[i]).map_err(|e| StoreError::Db(format!("column {prefix}{name}: {e}")))
    }

    /// The first column (for scalar queries).
    pub fn first<T: FromValue>(&self) -> Result<T> {
        let v = self.vals.first().ok_or_else(|| StoreError::Db("empty row".into()))?;
        T::from_value(v).map_err(|e| StoreError::Db(format!("first column: {e}")))
    }
}

/// The database.
#[derive(Clone)]
pub enum Db {
    /// Embedded SQLite.
    Sqlite(Arc<SqliteDb>),
    /// PostgreSQL.
    Postgres(PgDb),
}

/// PostgreSQL: sqlx's pool, how long to wait for any one answer, and the wake-up bus.
#[derive(Clone)]
pub struct PgDb {
    pool: PgPool,
    wait: Option<Duration>,
    bus: Arc<Bus>,
}

/// Closes a connection that died or stopped answering instead of returning it to the pool
/// (where sqlx would first ping it, which on a stalled link waits as long as the stall).
fn discard_if_dead<T>(c: &mut PoolConnection<Postgres>, r: Result<T>) -> Result<T> {
    if matches!(r, Err(StoreError::Disconnected(_))) {
        c.close_on_drop();
    }
    r
}

/// A lone statement that commits as it runs failed with its connection: whether it took effect
/// is unknown, so it is not a [`StoreError::Disconnected`] (which promises nothing was written).
fn ambiguous(e: StoreError) -> StoreError {
    match e {
        StoreError::Disconnected(why) => {
            StoreError::Db(format!("connection lost during a write; whether it took effect is unknown: {why}"))
        }
        other => other,
    }
}

impl PgDb {
    async fn acquire(&self) -> Result<PoolConnection<Postgres>> {
        // The pool hands out an idle connection as it is (no ping: a dead one fails on use and
        // the work is repeated once) and gives up after its acquire timeout.
        self.pool.acquire().await.map_err(|e| StoreError::Db(format!("getting a database connection: {e}")))
    }

    /// One statement outside a transaction, on a connection of its own.
    async fn fetch(&self, q: &Query) -> Result<Vec<Row>> {
        let mut c = self.acquire().await?;
        let r = answer(self.wait, pg_query(q).fetch_all(&mut *c)).await;
        pg_rows(discard_if_dead(&mut c, r)?)
    }

    /// One write statement outside a transaction; its rows affected.
    async fn exec(&self, q: &Query) -> Result<u64> {
        let mut c = self.acquire().await?;
        let r = answer(self.wait, pg_query(q).execute(&mut *c)).await;
        Ok(discard_if_dead(&mut c, r)?.rows_affected())
    }
}

/// SQLite connections: one writer, a few readers, and the wake-up bus.
pub struct SqliteDb {
    write: Mutex<rusqlite::Connection>,
    reads: Vec<Mutex<rusqlite::Connection>>,
    next: AtomicUsize,
    bus: Arc<Bus>,
}

const SQLITE_READERS: usize = 4;

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    {
        return StoreError::Conflict;
    }
    StoreError::Db(e.to_string())
}

/// SQLSTATEs of a session the server ended (or never let start): connection exceptions (class
/// 08), administrator or crash shutdown, not accepting connections yet, and the
/// idle-in-transaction timeout.
fn session_ended(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "25P03")
}

pub(crate) fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("55P03") => StoreError::LockTimeout,
            Some(c) if session_ended(c) => StoreError::Disconnected(e.to_string()),
            _ => StoreError::Db(e.to_string()),
        },
        sqlx::Error::Io(_) => StoreError::Disconnected(e.to_string()),
        _ => StoreError::Db(e.to_string()),
    }
}

/// Waits for one answer from PostgreSQL, at most `wait`; no answer in time counts as a dead
/// connection.
async fn answer<T>(
    wait: Option<Duration>,
    fut: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
) -> Result<T> {
    match wait {
        None => fut.await.map_err(pg_err),
        Some(w) => match tokio::time::timeout(w, fut).await {
            Ok(r) => r.map_err(pg_err),
            Err(_) => Err(StoreError::Disconnected(format!("no answer from PostgreSQL within {} s", w.as_secs_f64()))),
        },
    }
}

/// The retry rule, in one place: an attempt that failed with [`StoreError::Disconnected`] —
/// which is returned only when nothing the attempt did can have been committed — is worth one
/// more on a fresh connection. Says so in the log and in `ssmd_store_retries_total`.
pub(crate) fn worth_another_try<T>(r: &Result<T>, what: &'static str) -> bool {
    let Err(StoreError::Disconnected(why)) = r else { return false };
    tracing::warn!(what, error = %why, "database connection lost before anything was committed; trying once more");
    metrics::counter!("ssmd_store_retries_total", "what" => what).increment(1);
    true
}

/// `transaction!(db, |tx| { ... })`: runs the block (an `async` body in which `tx` is the
/// `&mut Tx` and `?` / `return` leave the block with a `Result`) in a write transaction on `db`,
/// then commits — or rolls back if the block failed or called [`Tx::discard`].
///
/// This is the one place where store work is repeated: if the attempt fails with
/// [`StoreError::Disconnected`] — its connection died before COMMIT was sent, or the server
/// ended the session for idling in the transaction, so nothing was committed — the block runs
/// once more on a fresh connection. The block must therefore do nothing but database work
/// through `tx`. A failure during or after COMMIT is never repeated.
///
/// (A macro rather than a function taking an async closure: the futures of async closures
/// that borrow their arguments cannot yet be shown to be `Send` without `'static` captures.)
macro_rules! transaction {
    ($db:expr, |$tx:ident| $body:block) => {{
        let db: &$crate::sql::Db = &$db;
        let mut first = true;
        loop {
            let r = async {
                let mut t = db.begin().await?;
                let out: $crate::Result<_> = {
                    let $tx = &mut t;
                    async $body.await
                };
                t.finish(out).await
            }
            .await;
            if first && $crate::sql::worth_another_try(&r, "transaction") {
                first = false;
                continue;
            }
            break r;
        }
    }};
}
pub(crate) use transaction;

/// Whether a statement only reads (so repeating it is harmless).
fn is_select(sql: &str) -> bool {
    sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

fn open_sqlite(path: &str) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
    )
    .map_err(sqlite_err)?;
    // Without the query planner stability guarantee, SQLite marks a statement whose plan looked
    // at a bound value (any `LIMIT $n`, for one) as expired on every rebind, and parses and
    // plans it again on each run: a quarter of ListDocuments' time went there.
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(sqlite_err)?;
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::NullInt | Value::NullText => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn sqlite_run(conn: &rusqlite::Connection, q: &Query) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(&q.sql).map_err(sqlite_err)?;
    let cols: Arc<Vec<String>> = Arc::new(stmt.column_names().into_iter().map(str::to_string).collect());
    let n = cols.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(q.params.iter())).map_err(sqlite_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sqlite_err)? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            use rusqlite::types::ValueRef;
            vals.push(match r.get_ref(i).map_err(sqlite_err)? {
                ValueRef::Null => Value::NullText,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Real(v) => Value::Int(v as i64),
                ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            });
        }
        out.push(Row { cols: cols.clone(), vals });
    }
    Ok(out)
}

fn sqlite_execute(conn: &rusqlite::Connection, q: &Query) -> Result<u64> {
    let mut stmt = conn.prepare_cached(&q.sql).map_err(sqlite_err)?;
    let n = stmt.execute(rusqlite::params_from_iter(q.params.iter())).map_err(sqlite_err)?;
    Ok(n as u64)
}

fn pg_query(q: &Query) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut pq = sqlx::query(sqlx::AssertSqlSafe(q.sql.as_str()));
    for p in &q.params {
        pq = match p {
            Value::NullInt => pq.bind(None::<i64>),
            Value::NullText => pq.bind(None::<String>),
            Value::Int(i) => pq.bind(*i),
            Value::Text(s) => pq.bind(s.as_str()),
        };
    }
    pq
}

fn pg_rows(rows: Vec<PgRow>) -> Result<Vec<Row>> {
    let Some(first) = rows.first() else { return Ok(vec![]) };
    let cols: Arc<Vec<String>> = Arc::new(first.columns().iter().map(|c| c.name().to_string()).collect());
    let kinds: Vec<bool> = first
        .columns()
        .iter()
        .map(|c| matches!(c.type_info().name(), "INT8" | "INT4" | "INT2" | "BIGINT" | "INTEGER" | "SMALLINT"))
        .collect();
    rows.iter()
        .map(|r| {
            let mut vals = Vec::with_capacity(kinds.len());
            for (i, is_int) in kinds.iter().enumerate() {
                vals.push(if *is_int {
                    match r.try_get::<Option<i64>, _>(i).map_err(pg_err)? {
                        Some(v) => Value::Int(v),
                        None => Value::NullInt,
                    }
                } else {
                    match r.try_get::<Option<String>, _>(i).map_err(pg_err)? {
                        Some(v) => Value::Text(v),
                        None => Value::NullText,
                    }
                });
            }
            Ok(Row { cols: cols.clone(), vals })
        })
        .collect()
}

impl Db {
    /// Opens SQLite at a file path.
    pub fn sqlite(path: &str) -> Result<Db> {
        let write = Mutex::new(open_sqlite(path)?);
        let reads = (0..SQLITE_READERS).map(|_| open_sqlite(path).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        let bus = Arc::new(Bus::new(false));
        Ok(Db::Sqlite(Arc::new(SqliteDb { write, reads, next: AtomicUsize::new(0), bus })))
    }

    /// Connects to PostgreSQL at `url`, with `limits` on every connection.
    pub async fn postgres(url: &str, limits: &PgLimits) -> Result<Db> {
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| StoreError::BadUrl(format!("{e}")))?;
        // Waiting for a connection (all in use, or a new one being opened over a stalled link) is
        // bounded like any other answer (and by 10 s, as it always was).
        let acquire = limits.answer_wait().map_or(Duration::from_secs(10), |w| w.min(Duration::from_secs(10)));
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(acquire)
            // No ping before each use (a round trip per statement): a connection found dead on
            // use is a `Disconnected` error, and the statement or transaction is repeated once
            // on a fresh connection (see `transaction!`).
            .test_before_acquire(false)
            .connect_with(options.options(limits.server_options()))
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Db::Postgres(PgDb { pool, wait: limits.answer_wait(), bus: Arc::new(Bus::new(true)) }))
    }

    async fn reader(s: &SqliteDb) -> MutexGuard<'_, rusqlite::Connection> {
        for c in &s.reads {
            if let Ok(g) = c.try_lock() {
                return g;
            }
        }
        let i = s.next.fetch_add(1, Ordering::Relaxed) % s.reads.len();
        s.reads[i].lock().await
    }

    /// Runs a statement outside a transaction and returns every row. On PostgreSQL a `SELECT`
    /// whose connection dies is repeated once on a fresh one.
    pub async fn fetch_all(&self, q: Query) -> Result<Vec<Row>> {
        match self {
            Db::Sqlite(s) => sqlite_run(&*Self::reader(s).await, &q),
            Db::Postgres(p) if is_select(&q.sql) => {
                let r = p.fetch(&q).await;
                if !worth_another_try(&r, "read") {
                    return r;
                }
                p.fetch(&q).await
            }
            Db::Postgres(p) => p.fetch(&q).await.map_err(ambiguous),
        }
    }

    /// Runs a read and returns the first row, if any.
    pub async fn fetch_optional(&self, q: Query) -> Result<Option<Row>> {
        Ok(self.fetch_all(q).await?.into_iter().next())
    }

    /// Runs one write statement on its own; returns the rows affected. It commits as it runs, so
    /// it is never repeated: a connection lost under it is an ordinary [`StoreError::Db`].
    pub async fn execute(&self, q: Query) -> Result<u64> {
        match self {
            Db::Sqlite(s) => sqlite_execute(&*s.write.lock().await, &q),
            Db::Postgres(p) => p.exec(&q).await.map_err(ambiguous),
        }
    }

    /// Runs several statements (migrations) with no parameters.
    pub async fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(s) => s.write.lock().await.execute_batch(sql).map_err(sqlite_err),
            Db::Postgres(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&p.pool).await.map_err(pg_err)?;
                Ok(())
            }
        }
    }

    /// Starts a write transaction that the caller commits; nothing repeats it. Store methods use
    /// [`transaction!`]; this is for migrations and tests.
    pub async fn begin(&self) -> Result<Tx<'_>> {
        match self {
            Db::Sqlite(s) => {
                let g = s.write.lock().await;
                g.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_err)?;
                Ok(Tx {
                    conn: TxConn::Sqlite { conn: g, open: true },
                    discard: false,
                    notes: Vec::new(),
                    bus: s.bus.clone(),
                })
            }
            Db::Postgres(p) => {
                let conn = p.acquire().await?;
                let mut t = PgTx { conn, wait: p.wait, ended: false, dead: None };
                t.simple("BEGIN").await?;
                Ok(Tx { conn: TxConn::Postgres(t), discard: false, notes: Vec::new(), bus: p.bus.clone() })
            }
        }
    }

    /// The wake-up bus of this database.
    pub fn bus(&self) -> &Arc<Bus> {
        match self {
            Db::Sqlite(s) => &s.bus,
            Db::Postgres(p) => &p.bus,
        }
    }

    /// The PostgreSQL pool, if that is the database.
    pub(crate) fn pg_pool(&self) -> Option<&PgPool> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(p) => Some(&p.pool),
        }
    }

    /// Closes the database, waiting for in-flight work.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(s) => {
                let g = s.write.lock().await;
                let _ = g.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
            Db::Postgres(p) => p.pool.close().await,
        }
    }
}

/// A write transaction; rolled back if dropped without `commit`. Topics named with
/// [`Tx::notify`] wake their subscribers once it commits (see `crate::bus`).
pub struct Tx<'a> {
    conn: TxConn<'a>,
    /// Roll back instead of committing at the end of [`transaction!`].
    discard: bool,
    /// Topics to announce once committed.
    notes: Vec<String>,
    bus: Arc<Bus>,
}

enum TxConn<'a> {
    /// SQLite: the writer connection, held for the transaction, and whether the transaction
    /// still needs a COMMIT or ROLLBACK.
    Sqlite { conn: MutexGuard<'a, rusqlite::Connection>, open: bool },
    /// PostgreSQL: a pooled connection of its own.
    Postgres(PgTx),
}

/// A PostgreSQL transaction on a connection taken from the pool. BEGIN, COMMIT and ROLLBACK
/// are sent here (not through sqlx's `Transaction`), so that this type knows whether COMMIT was
/// sent and can close, rather than pool, a connection whose state is unknown.
struct PgTx {
    conn: PoolConnection<Postgres>,
    wait: Option<Duration>,
    /// COMMIT or ROLLBACK was answered: the connection may go back to the pool. Until then,
    /// dropping closes it, which ends the transaction on the server.
    ended: bool,
    /// Why the connection is dead (it failed or stopped answering): nothing more is sent on it.
    dead: Option<String>,
}

impl PgTx {
    fn alive(&self) -> Result<()> {
        match &self.dead {
            Some(why) => Err(StoreError::Disconnected(why.clone())),
            None => Ok(()),
        }
    }

    fn note<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(StoreError::Disconnected(why)) = &r {
            self.dead = Some(why.clone());
        }
        r
    }

    async fn fetch(&mut self, q: &Query) -> Result<Vec<Row>> {
        self.alive()?;
        let r = answer(self.wait, pg_query(q).fetch_all(&mut *self.conn)).await;
        pg_rows(self.note(r)?)
    }

    async fn exec(&mut self, q: &Query) -> Result<u64> {
        self.alive()?;
        let r = answer(self.wait, pg_query(q).execute(&mut *self.conn)).await;
        Ok(self.note(r)?.rows_affected())
    }

    async fn simple(&mut self, sql: &'static str) -> Result<()> {
        self.alive()?;
        let r = answer(self.wait, sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *self.conn)).await;
        self.note(r).map(|_| ())
    }

    /// Sends COMMIT. Only an answer proves the outcome: a connection lost or silent after
    /// COMMIT was sent is an ordinary [`StoreError::Db`] (never repeated), except when the server
    /// says it ended the session for idling in the transaction — it was then waiting for the
    /// next command and never read the COMMIT, so nothing was committed.
    async fn commit(&mut self) -> Result<()> {
        // A connection already dead never got the COMMIT.
        self.alive()?;
        let fut = sqlx::raw_sql(sqlx::AssertSqlSafe("COMMIT")).execute(&mut *self.conn);
        let r = match self.wait {
            Some(w) => tokio::time::timeout(w, fut).await.ok(),
            None => Some(fut.await),
        };
        let e = match r {
            Some(Ok(_)) => {
                self.ended = true;
                return Ok(());
            }
            Some(Err(e)) => e,
            None => {
                self.dead = Some("no answer to COMMIT".into());
                return Err(StoreError::Db("no answer to COMMIT in time; whether it committed is unknown".into()));
            }
        };
        let idle_kill = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("25P03"));
        match pg_err(e) {
            StoreError::Disconnected(why) => {
                self.dead = Some(why.clone());
                if idle_kill {
                    Err(StoreError::Disconnected(why))
                } else {
                    Err(StoreError::Db(format!(
                        "connection lost during COMMIT; whether it committed is unknown: {why}"
                    )))
                }
            }
            other => {
                // The server answered: the transaction is over (rolled back).
                self.ended = true;
                Err(other)
            }
        }
    }

    async fn rollback(&mut self) {
        if self.dead.is_none() && self.simple("ROLLBACK").await.is_ok() {
            self.ended = true;
        }
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if !self.ended || self.dead.is_some() {
            self.conn.close_on_drop();
        }
    }
}

impl Tx<'_> {
    /// Runs a read inside the transaction.
    pub async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>> {
        match &mut self.conn {
            TxConn::Sqlite { conn, .. } => sqlite_run(conn, &q),
            TxConn::Postgres(t) => t.fetch(&q).await,
        }
    }

    /// Runs a read inside the transaction and returns the first row.
    pub async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>> {
        Ok(self.fetch_all(q).await?.into_iter().next())
    }

    /// Runs a write inside the transaction.
    pub async fn execute(&mut self, q: Query) -> Result<u64> {
        match &mut self.conn {
            TxConn::Sqlite { conn, .. } => sqlite_execute(conn, &q),
            TxConn::Postgres(t) => t.exec(&q).await,
        }
    }

    /// Ends the transaction for [`transaction!`]: commits if `out` is a success and
    /// [`Tx::discard`] was not called, else rolls back; returns `out` unless COMMIT failed.
    pub(crate) async fn finish<T>(self, out: Result<T>) -> Result<T> {
        match out {
            Ok(v) if !self.discard => self.commit().await.map(|()| v),
            other => {
                self.rollback().await?;
                other
            }
        }
    }

    /// Makes [`transaction!`] roll this transaction back instead of committing it, while
    /// `work` still returns its value: for a refusal that must leave nothing behind.
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// Lifts the lock and statement timeouts for the rest of the transaction, for work that may
    /// rightly wait long: migrations, which wait for another replica's under an advisory lock.
    pub async fn without_time_limits(&mut self) -> Result<()> {
        if let TxConn::Postgres(t) = &mut self.conn {
            t.simple("SET LOCAL lock_timeout = 0").await?;
            t.simple("SET LOCAL statement_timeout = 0").await?;
            t.wait = None;
        }
        Ok(())
    }

    /// Which database the transaction runs on.
    pub fn backend(&self) -> crate::Backend {
        match self.conn {
            TxConn::Sqlite { .. } => crate::Backend::Sqlite,
            TxConn::Postgres(_) => crate::Backend::Postgres,
        }
    }

    /// Wakes the subscribers of `topic` in every replica once this transaction commits (nothing
    /// if it rolls back). Repeated topics go out once.
    pub fn notify(&mut self, topic: impl Into<String>) {
        let topic = topic.into();
        if !self.notes.contains(&topic) {
            self.notes.push(topic);
        }
    }

    /// Commits, then wakes the subscribers of the topics named.
    pub async fn commit(mut self) -> Result<()> {
        let notes = std::mem::take(&mut self.notes);
        match &mut self.conn {
            TxConn::Sqlite { conn, open } => {
                *open = false;
                conn.execute_batch("COMMIT").map_err(sqlite_err)?;
            }
            TxConn::Postgres(t) => t.commit().await?,
        }
        notes.iter().for_each(|t| self.bus.deliver(t));
        // Announced to the other replicas after the commit, by the notifier (see `crate::bus`).
        self.bus.send_remote(notes);
        Ok(())
    }

    /// Rolls back. (Dropping does too; on PostgreSQL this keeps the connection for reuse.)
    pub async fn rollback(mut self) -> Result<()> {
        if let TxConn::Postgres(t) = &mut self.conn {
            t.rollback().await;
        }
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let TxConn::Sqlite { conn, open: true } = &mut self.conn {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// A `WHERE` clause assembled from conditions, with parameters numbered in order of appearance
/// (as both backends need): the one way list queries build their filters.
#[derive(Debug, Clone, Default)]
pub struct Where {
    cond: Vec<String>,
    binds: Vec<Value>,
}

impl Where {
    /// An empty clause.
    pub fn new() -> Where {
        Where::default()
    }

    /// Adds a condition: `?1`, `?2`… in `expr` are `values[0]`, `values[1]`… (each may appear
    /// several times).
    pub fn and<const N: usize>(&mut self, expr: &str, values: [Value; N]) -> &mut Where {
        let base = self.binds.len();
        let mut out = expr.to_string();
        // Highest index first, so `?1` does not eat the start of `?10`.
        for k in (1..=N).rev() {
            out = out.replace(&format!("?{k}"), &format!("${}", base + k));
        }
        self.binds.extend(values);
        self.cond.push(out);
        self
    }

    /// [`Where::and`] with a number of values known only at run time.
    pub fn and_dyn(&mut self, expr: &str, values: Vec<Value>) -> &mut Where {
        let base = self.binds.len();
        let mut out = expr.to_string();
        for k in (1..=values.len()).rev() {
            out = out.replace(&format!("?{k}"), &format!("${}", base + k));
        }
        self.binds.extend(values);
        self.cond.push(out);
        self
    }

    /// Adds `column = v1 OR column = v2 …` (nothing for no values).
    pub fn any_of(&mut self, column: &str, values: &[String]) -> &mut Where {
        self.any_matching(values, |n, _| format!("{column} = ${n}"))
    }

    /// Adds one alternative per value, `expr(parameter number, value)` (nothing for no values).
    pub fn any_matching(&mut self, values: &[String], expr: impl Fn(usize, &str) -> String) -> &mut Where {
        if values.is_empty() {
            return self;
        }
        let parts: Vec<String> = values
            .iter()
            .map(|v| {
                self.binds.push(v.into());
                expr(self.binds.len(), v)
            })
            .collect();
        self.cond.push(format!("({})", parts.join(" OR ")));
        self
    }

    /// The statement `{select} WHERE … {order} LIMIT n`, with its parameters bound.
    pub fn query(mut self, select: &str, order: &str, limit: i64) -> Query {
        self.binds.push(limit.into());
        let clause = if self.cond.is_empty() { "TRUE".to_string() } else { self.cond.join(" AND ") };
        let mut q = query(format!("{select} WHERE {clause} {order} LIMIT ${}", self.binds.len()));
        for b in self.binds {
            q = q.bind(b);
        }
        q
    }
}

#[cfg(test)]
mod where_tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_in_order_and_may_repeat() {
        let mut w = Where::new();
        w.and("a = ?1 AND b = ?2", [1.into(), "x".into()]);
        w.any_of("s", &["p".to_string(), "q".to_string()]);
        w.any_of("never", &[]);
        w.and("(t < ?1 OR (t = ?1 AND id > ?2))", [5.into(), "k".into()]);
        let q = w.query("SELECT * FROM x", "ORDER BY t", 10);
        assert_eq!(
            q.sql,
            "SELECT * FROM x WHERE a = $1 AND b = $2 AND (s = $3 OR s = $4) AND (t < $5 OR (t = $5 AND id > $6)) ORDER BY t LIMIT $7"
        );
        assert_eq!(
            q.params,
            vec![
                Value::Int(1),
                Value::Text("x".into()),
                Value::Text("p".into()),
                Value::Text("q".into()),
                Value::Int(5),
                Value::Text("k".into()),
                Value::Int(10)
            ]
        );
    }

    #[test]
    fn ten_or_more_parameters_keep_their_numbers() {
        let mut w = Where::new();
        let values: Vec<String> = (0..9).map(|i| i.to_string()).collect();
        w.any_of("v", &values);
        w.and("a = ?1", [1.into()]);
        let q = w.query("SELECT 1", "", 1);
        assert!(q.sql.contains("a = $10"), "{}", q.sql);
        assert!(q.sql.ends_with("LIMIT $11"), "{}", q.sql);
    }
}

/// The retry rule against a real PostgreSQL (`SSMD_TEST_PG`, default the local server): which
/// failures run a transaction again and which never do.
#[cfg(test)]
mod pg_retry_tests {
    use super::*;

    fn base() -> String {
        std::env::var("SSMD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
    }

    /// A pool on the `postgres` database and a table of its own there (dropped by `drop_table`).
    async fn db_and_table(limits: PgLimits) -> (Db, String) {
        let db = Db::postgres(&format!("{}/postgres", base()), &limits).await.unwrap();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let table = format!("ssmd_retry_{nanos}_{}", std::process::id());
        db.execute(query(format!("CREATE TABLE {table} (k TEXT PRIMARY KEY)"))).await.unwrap();
        (db, table)
    }

    async fn rows(db: &Db, table: &str) -> i64 {
        query(format!("SELECT COUNT(*) FROM {table}")).scalar(db).await.unwrap()
    }

    async fn drop_table(db: &Db, table: &str) {
        db.execute(query(format!("DROP TABLE {table} CASCADE"))).await.unwrap();
    }

    #[tokio::test]
    async fn a_transaction_whose_session_ends_before_commit_runs_once_more() {
        let (db, t) = db_and_table(PgLimits::default()).await;
        let mut attempts = 0;
        let r: Result<()> = transaction!(db, |tx| {
            attempts += 1;
            query(format!("INSERT INTO {t} (k) VALUES ('a')")).execute(&mut *tx).await?;
            if attempts == 1 {
                // The server ends the session (57P01) in the middle of the transaction.
                query("SELECT pg_terminate_backend(pg_backend_pid())").fetch_all(&mut *tx).await?;
            }
            Ok(())
        });
        r.unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(rows(&db, &t).await, 1);
        drop_table(&db, &t).await;
    }

    #[tokio::test]
    async fn a_commit_the_server_refused_for_idling_runs_once_more() {
        let (db, t) = db_and_table(PgLimits::default()).await;
        let mut attempts = 0;
        let r: Result<()> = transaction!(db, |tx| {
            attempts += 1;
            query(format!("INSERT INTO {t} (k) VALUES ('a')")).execute(&mut *tx).await?;
            if attempts == 1 {
                // The session idles past its limit before COMMIT is sent: the server ends it
                // (25P03) without ever reading the COMMIT.
                query("SET LOCAL idle_in_transaction_session_timeout = 100").execute(&mut *tx).await?;
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            Ok(())
        });
        r.unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(rows(&db, &t).await, 1);
        drop_table(&db, &t).await;
    }

    #[tokio::test]
    async fn a_connection_lost_during_commit_is_never_repeated() {
        let (db, t) = db_and_table(PgLimits::default()).await;
        // A deferred trigger ends the session while COMMIT runs: from the client's side the
        // outcome of that COMMIT is unknown.
        db.execute(query(format!(
            "CREATE FUNCTION {t}_die() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(1); RETURN NULL; END $$"
        )))
        .await
        .unwrap();
        db.execute(query(format!(
            "CREATE CONSTRAINT TRIGGER {t}_die AFTER INSERT ON {t} DEFERRABLE INITIALLY DEFERRED \
             FOR EACH ROW EXECUTE FUNCTION {t}_die()"
        )))
        .await
        .unwrap();
        let mut attempts = 0;
        let r: Result<()> = transaction!(db, |tx| {
            attempts += 1;
            query(format!("INSERT INTO {t} (k) VALUES ('a')")).execute(&mut *tx).await?;
            Ok(())
        });
        assert!(matches!(&r, Err(StoreError::Db(m)) if m.contains("COMMIT")), "{r:?}");
        assert_eq!(attempts, 1);
        drop_table(&db, &t).await;
        db.execute(query(format!("DROP FUNCTION {t}_die()"))).await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_held_elsewhere_times_out_without_a_retry() {
        let limits = PgLimits { lock_timeout: Duration::from_millis(300), ..Default::default() };
        let (db, t) = db_and_table(limits).await;
        db.execute(query(format!("INSERT INTO {t} (k) VALUES ('a')"))).await.unwrap();
        let mut holder = db.begin().await.unwrap();
        query(format!("UPDATE {t} SET k = 'b' WHERE k = 'a'")).execute(&mut holder).await.unwrap();
        let started = std::time::Instant::now();
        let mut attempts = 0;
        let r: Result<u64> = transaction!(db, |tx| {
            attempts += 1;
            query(format!("UPDATE {t} SET k = 'c' WHERE k = 'a'")).execute(&mut *tx).await
        });
        assert!(matches!(r, Err(StoreError::LockTimeout)), "{r:?}");
        assert_eq!(attempts, 1);
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        holder.rollback().await.unwrap();
        drop_table(&db, &t).await;
    }

    /// Ends, 200 ms from now, the sessions running a statement that contains `marker`; answers
    /// how many it ended.
    fn kill_soon(db: &Db, marker: &str) -> tokio::task::JoinHandle<i64> {
        let (db, marker) = (db.clone(), marker.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            query(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
            )
            .bind(marker)
            .scalar(&db)
            .await
            .unwrap()
        })
    }

    #[tokio::test]
    async fn a_lone_select_is_repeated_and_a_lone_write_is_not() {
        let (db, t) = db_and_table(PgLimits::default()).await;
        // The session ends under a lone SELECT: it is read again on a fresh connection.
        let killer = kill_soon(&db, &format!("{t}_read"));
        let r = query(format!("SELECT 1::BIGINT AS {t}_read FROM pg_sleep(0.6)")).fetch_all(&db).await;
        assert_eq!(killer.await.unwrap(), 1);
        assert!(r.is_ok(), "{r:?}");
        // A lone write that loses its connection reports an ordinary error: it may have run.
        let killer = kill_soon(&db, &format!("{t}_write"));
        let r = db.execute(query(format!("INSERT INTO {t} (k) SELECT '{t}_write' FROM pg_sleep(0.6)"))).await;
        assert_eq!(killer.await.unwrap(), 1);
        assert!(matches!(&r, Err(StoreError::Db(m)) if m.contains("unknown")), "{r:?}");
        drop_table(&db, &t).await;
    }

    #[test]
    fn limits_become_server_settings() {
        let o = PgLimits::default().server_options();
        let get = |k: &str| o.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("lock_timeout"), Some("5000"));
        assert_eq!(get("idle_in_transaction_session_timeout"), Some("10000"));
        assert_eq!(get("statement_timeout"), Some("15000"));
        assert_eq!(get("tcp_user_timeout"), Some("15000"));
        assert_eq!((get("tcp_keepalives_idle"), get("tcp_keepalives_interval")), (Some("10"), Some("5")));
        assert_eq!(get("tcp_keepalives_count"), Some("3"));
        let off = PgLimits { tcp_timeout: Duration::ZERO, ..Default::default() };
        assert!(off.server_options().iter().all(|(n, _)| !n.starts_with("tcp_keepalives")));
        assert_eq!(PgLimits::default().answer_wait(), Some(Duration::from_secs(16)));
    }
}
