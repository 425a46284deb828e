//! One small SQL interface over both databases, so every store method is written once.
//!
//! * **SQLite** runs inline through rusqlite: a query is a few microseconds of work on the
//!   calling thread, instead of a round trip to a driver thread (which costs 150–300 µs on small
//!   virtual machines). Writes go through one connection behind an async mutex, so writers queue
//!   in-process and never see `SQLITE_BUSY`; reads use a few connections of their own (WAL lets
//!   them run beside the writer). Write transactions are `BEGIN IMMEDIATE`.
//! * **PostgreSQL** runs through sqlx's pool.
//!
//! SQL is written once with `$1, $2, ...` placeholders, numbered in order of first appearance
//! (SQLite binds them by position). Values are integers, text or typed NULLs.

use crate::bus::Bus;
use crate::{Result, StoreError};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column, Row as _, TypeInfo};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, MutexGuard};

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
    Postgres(PgPool),
}

/// SQLite connections: one writer, a few readers.
pub struct SqliteDb {
    write: Mutex<rusqlite::Connection>,
    reads: Vec<Mutex<rusqlite::Connection>>,
    next: AtomicUsize,
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

pub(crate) fn pg_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Db(e.to_string()),
    }
}

fn open_sqlite(path: &str) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
    )
    .map_err(sqlite_err)?;
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
        Ok(Db::Sqlite(Arc::new(SqliteDb { write, reads, next: AtomicUsize::new(0) })))
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

    /// Runs a read and returns every row.
    pub async fn fetch_all(&self, q: Query) -> Result<Vec<Row>> {
        match self {
            Db::Sqlite(s) => sqlite_run(&*Self::reader(s).await, &q),
            Db::Postgres(p) => pg_rows(pg_query(&q).fetch_all(p).await.map_err(pg_err)?),
        }
    }

    /// Runs a read and returns the first row, if any.
    pub async fn fetch_optional(&self, q: Query) -> Result<Option<Row>> {
        Ok(self.fetch_all(q).await?.into_iter().next())
    }

    /// Runs one write statement on its own; returns the rows affected.
    pub async fn execute(&self, q: Query) -> Result<u64> {
        match self {
            Db::Sqlite(s) => sqlite_execute(&*s.write.lock().await, &q),
            Db::Postgres(p) => Ok(pg_query(&q).execute(p).await.map_err(pg_err)?.rows_affected()),
        }
    }

    /// Runs several statements (migrations) with no parameters.
    pub async fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(s) => s.write.lock().await.execute_batch(sql).map_err(sqlite_err),
            Db::Postgres(p) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(p).await.map_err(pg_err)?;
                Ok(())
            }
        }
    }

    /// Starts a write transaction (whose topics reach no bus: see `Store::begin`).
    pub async fn begin(&self) -> Result<Tx<'_>> {
        match self {
            Db::Sqlite(s) => {
                let g = s.write.lock().await;
                g.execute_batch("BEGIN IMMEDIATE").map_err(sqlite_err)?;
                Ok(Tx { inner: TxInner::Sqlite { conn: g, open: true }, notes: Vec::new(), bus: None })
            }
            Db::Postgres(p) => Ok(Tx {
                inner: TxInner::Postgres(Some(p.begin().await.map_err(pg_err)?)),
                notes: Vec::new(),
                bus: None,
            }),
        }
    }

    /// Closes the database, waiting for in-flight work.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(s) => {
                let g = s.write.lock().await;
                let _ = g.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// A write transaction; rolled back if dropped without `commit`. Topics named with
/// [`Tx::notify`] wake their subscribers once it commits (see `crate::bus`).
pub struct Tx<'a> {
    inner: TxInner<'a>,
    notes: Vec<String>,
    bus: Option<Arc<Bus>>,
}

enum TxInner<'a> {
    /// SQLite: the writer connection, held for the transaction; `open` while it still needs a
    /// COMMIT or ROLLBACK.
    Sqlite { conn: MutexGuard<'a, rusqlite::Connection>, open: bool },
    /// PostgreSQL (taken out on commit).
    Postgres(Option<sqlx::Transaction<'static, sqlx::Postgres>>),
}

impl Tx<'_> {
    /// Runs a read inside the transaction.
    pub async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>> {
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => sqlite_run(conn, &q),
            TxInner::Postgres(t) => {
                let t = t.as_mut().ok_or_else(|| StoreError::Db("transaction already finished".into()))?;
                pg_rows(pg_query(&q).fetch_all(&mut **t).await.map_err(pg_err)?)
            }
        }
    }

    /// Runs a read inside the transaction and returns the first row.
    pub async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>> {
        Ok(self.fetch_all(q).await?.into_iter().next())
    }

    /// Runs a write inside the transaction.
    pub async fn execute(&mut self, q: Query) -> Result<u64> {
        match &mut self.inner {
            TxInner::Sqlite { conn, .. } => sqlite_execute(conn, &q),
            TxInner::Postgres(t) => {
                let t = t.as_mut().ok_or_else(|| StoreError::Db("transaction already finished".into()))?;
                Ok(pg_query(&q).execute(&mut **t).await.map_err(pg_err)?.rows_affected())
            }
        }
    }

    /// Which database the transaction runs on.
    pub fn backend(&self) -> crate::Backend {
        match self.inner {
            TxInner::Sqlite { .. } => crate::Backend::Sqlite,
            TxInner::Postgres(_) => crate::Backend::Postgres,
        }
    }

    pub(crate) fn attach(&mut self, bus: Arc<Bus>) {
        self.bus = Some(bus);
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
        let bus = self.bus.take();
        match &mut self.inner {
            TxInner::Sqlite { conn, open } => {
                *open = false;
                conn.execute_batch("COMMIT").map_err(sqlite_err)?;
            }
            TxInner::Postgres(t) => {
                if let Some(mut t) = t.take() {
                    if let (Some(bus), false) = (&bus, notes.is_empty()) {
                        // Delivered to the other replicas only if the transaction commits.
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(crate::bus::CHANNEL)
                            .bind(bus.payload(&notes))
                            .execute(&mut *t)
                            .await
                            .map_err(pg_err)?;
                    }
                    t.commit().await.map_err(pg_err)?;
                }
            }
        }
        if let Some(bus) = bus {
            notes.iter().for_each(|t| bus.deliver(t));
        }
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<()> {
        // Dropping does it (SQLite below; sqlx rolls back a dropped transaction).
        drop(self);
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let TxInner::Sqlite { conn, open: true } = &mut self.inner {
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
