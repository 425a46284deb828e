//! Automation executions: one row per execution holding its whole state (JSON) with a version
//! for compare-and-set updates, the columns listing and scheduling need, and a lease that says
//! which engine instance is driving it. Runbook contents are stored once per content hash.
//!
//! Scheduling: `due_ms` is when the execution next needs the engine (NULL: only a signal or a
//! child can wake it). Engines claim due rows with a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so replicas never claim the same row); every state write is guarded by the
//! version, so a writer that lost its lease or raced a signal finds out and re-reads.

use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, StoreError, Tag, timed};

/// A new execution to insert.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub account: String,
    pub region: String,
    pub document_name: String,
    pub status: String,
    pub parent_id: Option<String>,
    pub start_ms: i64,
    pub runbook_sha: String,
    pub runbook: String,
    pub state: String,
    pub due_ms: Option<i64>,
    pub tags: Vec<Tag>,
}

/// A stored execution.
#[derive(Debug, Clone)]
pub struct ExecutionRow {
    pub id: String,
    pub account: String,
    pub region: String,
    pub status: String,
    pub version: i64,
    pub runbook_sha: String,
    pub state: String,
    pub outputs: Option<String>,
    pub lease_owner: Option<String>,
}

/// A guarded state write.
#[derive(Debug, Clone)]
pub struct StateWrite<'a> {
    pub id: &'a str,
    /// The version read; the write fails with `Conflict` if the row moved on.
    pub version: i64,
    pub state: &'a str,
    pub status: &'a str,
    /// Document outputs and failure, written when the execution finishes.
    pub outputs: Option<&'a str>,
    pub due_ms: Option<i64>,
    /// Keep the lease (the writer carries on driving) or release it.
    pub keep_lease: bool,
    /// With `keep_lease` and an `owner`: the lease's new end (each write renews it).
    pub lease_until: Option<i64>,
    /// Wake this execution (the parent of one that finished).
    pub wake: Option<&'a str>,
    pub now_ms: i64,
    /// The engine writing under its lease: the write fails unless the lease is still its own
    /// (a fence against an engine whose lease ran out and was taken over). `None` for writes
    /// that need no lease (signals, stops).
    pub owner: Option<&'a str>,
}

/// Filters for listing executions; `None` means no filter.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub statuses: Vec<String>,
    pub ids: Vec<String>,
    pub parents: Vec<String>,
    pub name_prefixes: Vec<String>,
    pub start_before_ms: Option<i64>,
    pub start_after_ms: Option<i64>,
}

const COLUMNS: &str = "id, account, region, status, version, runbook_sha, state, outputs, lease_owner";

fn row(r: &sql::Row) -> Result<ExecutionRow> {
    Ok(ExecutionRow {
        id: r.get("id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        status: r.get("status")?,
        version: r.get("version")?,
        runbook_sha: r.get("runbook_sha")?,
        state: r.get("state")?,
        outputs: r.get("outputs")?,
        lease_owner: r.get("lease_owner")?,
    })
}

impl Store {
    /// Inserts executions (and their runbooks and tags) and, optionally, writes the state of the
    /// parent that starts them — all in one transaction. An execution id that already exists is
    /// skipped (a parent re-starting children after a crash).
    pub async fn insert_executions(&self, new: &[NewExecution], parent: Option<&StateWrite<'_>>) -> Result<()> {
        timed("insert_executions", async {
            transaction!(self.db, |tx| {
            if let Some(w) = parent {
                Self::write_state(tx, w).await?;
            }
            for n in new {
                sql::query("INSERT INTO automation_runbooks (sha, content) VALUES ($1, $2) ON CONFLICT (sha) DO NOTHING")
                    .bind(&n.runbook_sha)
                    .bind(&n.runbook)
                    .execute(&mut *tx)
                    .await?;
                let inserted = sql::query(
                    "INSERT INTO automation_executions (id, account, region, document_name, status, parent_id, start_ms, runbook_sha, state, version, due_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&n.id)
                .bind(&n.account)
                .bind(&n.region)
                .bind(&n.document_name)
                .bind(&n.status)
                .bind(&n.parent_id)
                .bind(n.start_ms)
                .bind(&n.runbook_sha)
                .bind(&n.state)
                .bind(n.due_ms)
                .execute(&mut *tx)
                .await?;
                if inserted > 0 {
                    Store::upsert_tags(tx, &n.account, &n.region, "Automation", &n.id, &n.tags).await?;
                }
            }
            Ok(())
            })
        })
        .await
    }

    async fn write_state(tx: &mut Tx<'_>, w: &StateWrite<'_>) -> Result<()> {
        let n = sql::query(
            "UPDATE automation_executions SET state = $1, status = $2, version = version + 1, due_ms = $3, \
             outputs = COALESCE($4, outputs), \
             lease_owner = CASE WHEN $5 = 1 THEN lease_owner ELSE NULL END, \
             lease_until = CASE WHEN $5 = 1 THEN COALESCE($6, lease_until) ELSE NULL END \
             WHERE id = $7 AND version = $8 AND ($9 = '' OR (lease_owner = $9 AND lease_until > $10))",
        )
        .bind(w.state)
        .bind(w.status)
        .bind(w.due_ms)
        .bind(w.outputs)
        .bind(i64::from(w.keep_lease))
        .bind(w.lease_until)
        .bind(w.id)
        .bind(w.version)
        .bind(w.owner.unwrap_or_default())
        .bind(w.now_ms)
        .execute(&mut *tx)
        .await?;
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        if let Some(p) = w.wake {
            // The version moves too, so an engine about to release the parent with an older view
            // of its children fails its write and looks again.
            sql::query("UPDATE automation_executions SET due_ms = $1, version = version + 1 WHERE id = $2")
                .bind(w.now_ms)
                .bind(p)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// Writes an execution's state if its version is still `w.version` (`Conflict` otherwise).
    pub async fn write_execution(&self, w: &StateWrite<'_>) -> Result<()> {
        timed("write_execution", async { transaction!(self.db, |tx| { Self::write_state(tx, w).await }) }).await
    }

    /// One execution of the account and region.
    pub async fn execution(&self, account: &str, region: &str, id: &str) -> Result<Option<ExecutionRow>> {
        timed("execution", async {
            sql::query(format!(
                "SELECT {COLUMNS} FROM automation_executions WHERE id = $1 AND account = $2 AND region = $3"
            ))
            .bind(id)
            .bind(account)
            .bind(region)
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(row)
            .transpose()
        })
        .await
    }

    /// One execution by id alone (the engine, which works across accounts).
    pub async fn execution_by_id(&self, id: &str) -> Result<Option<ExecutionRow>> {
        sql::query(format!("SELECT {COLUMNS} FROM automation_executions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(row)
            .transpose()
    }

    /// The listed executions (children a parent waits for), by id.
    pub async fn executions_by_ids(&self, ids: &[String]) -> Result<Vec<ExecutionRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let mut q =
            sql::query(format!("SELECT {COLUMNS} FROM automation_executions WHERE id IN ({})", marks.join(", ")));
        for id in ids {
            q = q.bind(id);
        }
        q.fetch_all(&self.db).await?.iter().map(row).collect()
    }

    /// A runbook's content by hash.
    pub async fn runbook(&self, sha: &str) -> Result<Option<String>> {
        sql::query("SELECT content FROM automation_runbooks WHERE sha = $1").bind(sha).scalar_opt(&self.db).await
    }

    /// Claims up to `limit` due executions for `owner` until `lease_until`, skipping rows another
    /// owner holds with a live lease.
    pub async fn claim_executions(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ExecutionRow>> {
        timed("claim_executions", async {
            let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
            sql::query(format!(
                "UPDATE automation_executions SET lease_owner = $1, lease_until = $2 WHERE id IN (\
                 SELECT id FROM automation_executions WHERE due_ms <= $3 AND (lease_until IS NULL OR lease_until < $3) \
                 ORDER BY due_ms LIMIT $4{lock}) RETURNING {COLUMNS}"
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(row)
            .collect()
        })
        .await
    }

    /// Extends `owner`'s lease; false if the lease is no longer theirs.
    pub async fn extend_lease(&self, id: &str, owner: &str, until: i64) -> Result<bool> {
        let n = sql::query("UPDATE automation_executions SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(until)
            .bind(id)
            .bind(owner)
            .execute(&self.db)
            .await?;
        Ok(n > 0)
    }

    /// Gives up every lease (SQLite start-up: this process is the only engine on the file).
    pub async fn release_all_leases(&self) -> Result<()> {
        sql::query(
            "UPDATE automation_executions SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The earliest due time of an execution no engine holds, if any.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        sql::query("SELECT MIN(due_ms) FROM automation_executions WHERE due_ms IS NOT NULL AND lease_owner IS NULL")
            .scalar::<Option<i64>>(&self.db)
            .await
    }

    /// How many Pending executions of the account and region were started before the given one
    /// (queued executions start in the order they were started).
    pub async fn pending_before(&self, account: &str, region: &str, start_ms: i64, id: &str) -> Result<i64> {
        sql::query(
            "SELECT COUNT(*) FROM automation_executions WHERE account = $1 AND region = $2 AND status = 'Pending' \
             AND (start_ms < $3 OR (start_ms = $3 AND id < $4))",
        )
        .bind(account)
        .bind(region)
        .bind(start_ms)
        .bind(id)
        .scalar(&self.db)
        .await
    }

    /// The number of executions of the account and region in one of `statuses`.
    pub async fn count_executions(&self, account: &str, region: &str, statuses: &[&str]) -> Result<i64> {
        let marks: Vec<String> = (3..3 + statuses.len()).map(|i| format!("${i}")).collect();
        let mut q = sql::query(format!(
            "SELECT COUNT(*) FROM automation_executions WHERE account = $1 AND region = $2 AND status IN ({})",
            marks.join(", ")
        ))
        .bind(account)
        .bind(region);
        for s in statuses {
            q = q.bind(*s);
        }
        q.scalar(&self.db).await
    }

    /// Executions of the account and region, newest first (ties by id), after the execution
    /// `after` = (start time, id), so that pages stay stable while executions start.
    pub async fn executions_page(
        &self,
        account: &str,
        region: &str,
        f: &ExecutionFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<(i64, ExecutionRow)>> {
        timed("executions_page", async {
            let mut w = sql::Where::new();
            w.and("account = ?1 AND region = ?2", [account.into(), region.into()]);
            w.any_of("status", &f.statuses).any_of("id", &f.ids).any_of("parent_id", &f.parents);
            w.any_matching(&f.name_prefixes, |n, v| format!("substr(document_name, 1, {}) = ${n}", v.chars().count()));
            if let Some(t) = f.start_before_ms {
                w.and("start_ms < ?1", [t.into()]);
            }
            if let Some(t) = f.start_after_ms {
                w.and("start_ms > ?1", [t.into()]);
            }
            if let Some((t, id)) = after {
                w.and("(start_ms < ?1 OR (start_ms = ?1 AND id > ?2))", [t.into(), id.into()]);
            }
            let q = w.query(
                &format!("SELECT start_ms, {COLUMNS} FROM automation_executions"),
                "ORDER BY start_ms DESC, id",
                limit,
            );
            q.fetch_all(&self.db).await?.iter().map(|r| Ok((r.get("start_ms")?, row(r)?))).collect()
        })
        .await
    }
}
