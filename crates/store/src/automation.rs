//! Automation executions: one row per execution holding its whole state (JSON) with a version
//! for compare-and-set updates, and the columns listing needs. Runbook contents are stored once
//! per content hash.
//!
//! Scheduling is the engine's: an execution that needs driving has a job `automation/<id>`
//! (`crate::jobs`), due when it next needs the engine (none: only a signal, a child or a
//! command can wake it). Every state write is guarded by the version, so a writer that raced a
//! signal finds out and re-reads; the engine's writes are also fenced by its claim on the job,
//! and move the job in the same transaction. Rows are always locked job first, execution
//! second, and a child's before its parent's, so PostgreSQL never deadlocks a signal, a child
//! ending and the engine.

use crate::jobs::{Claim, Next};
use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, StoreError, Tag, timed};

/// The job kind that drives executions.
pub const AUTOMATION_JOB: &str = "automation";

/// The statuses an execution ends in (the model's terminal `AutomationExecutionStatus` values).
pub const FINAL_EXECUTION_STATUSES: &[&str] = &[
    "Success",
    "TimedOut",
    "Cancelled",
    "Failed",
    "Rejected",
    "CompletedWithSuccess",
    "CompletedWithFailure",
    "Exited",
    "ChangeCalendarOverrideRejected",
];

/// The job-link name of an execution's end (`Store::await_execution`).
fn ended(id: &str) -> String {
    format!("automation:{id}")
}

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
    /// When the engine first needs it (`None`: not until a signal).
    pub due_ms: Option<i64>,
    pub tags: Vec<Tag>,
    /// A rate-controlled parent's targets, in dispatch order: (value, child parameters JSON).
    pub targets: Vec<(String, String)>,
}

/// A rate-controlled parent's target, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub seq: i64,
    /// The target value (or a TargetMaps map's `Key=value;…`).
    pub label: String,
    /// Its child's parameters (JSON, wire form).
    pub parameters: String,
    pub child_id: Option<String>,
    pub step_id: Option<String>,
    /// `Pending` until started; the child's status once it ends.
    pub status: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// How it ended: the child's `outputs` column (`{"outputs":…,"failure":…}`), or a failure
    /// of its own (`{"failure":…}`) when its child could not start.
    pub outputs: Option<String>,
}

/// What a parent's write does to its targets.
#[derive(Debug, Clone, Default)]
pub struct TargetChanges {
    /// Targets started now: (seq, child id, step execution id).
    pub started: Vec<(i64, String, String)>,
    /// Targets whose child could not start: (seq, step execution id, outputs JSON
    /// `{"failure":…}`). They count as reported.
    pub failed: Vec<(i64, String, String)>,
    /// Ended targets the parent has now counted.
    pub reported: Vec<i64>,
    /// Targets moved out of a state written by an earlier version (whole rows; `reported` says
    /// whether the parent had counted them).
    pub moved: Vec<(TargetRow, bool)>,
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
    /// When the execution next needs the engine (`None`: only a signal, a child or a command
    /// wakes it).
    pub due_ms: Option<i64>,
    /// The engine's claim, when the engine writes: the write is refused (`Conflict`) unless the
    /// claim still holds the job. With `Hold::Release` the job moves to `due_ms` (or goes) in
    /// the same transaction; with `Hold::Keep` the engine carries on driving. `None` for writes
    /// from outside the engine (signals, stops), which make the job due at `due_ms`.
    pub holder: Option<(&'a Claim, Hold)>,
    /// Wake this execution (the parent of one that finished).
    pub wake: Option<&'a str>,
    /// A top-level execution ended in this account and Region: the oldest one held back in
    /// Pending by the running limit is woken.
    pub admit_next: Option<(&'a str, &'a str)>,
    /// A rate-controlled parent's changes to its targets.
    pub targets: Option<&'a TargetChanges>,
    pub now_ms: i64,
}

/// Whether the engine keeps driving after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The engine carries on (an effect runs next): the job stays claimed.
    Keep,
    /// The engine lets go: the job is due at `due_ms`, or goes.
    Release,
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

const COLUMNS: &str = "id, account, region, status, version, runbook_sha, state, outputs";

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
    })
}

impl Store {
    /// Inserts executions (and their runbooks and tags) and, optionally, writes the state of the
    /// parent that starts them — all in one transaction. An execution id that already exists is
    /// skipped (a parent re-starting children after a crash).
    pub async fn insert_executions(&self, new: &[NewExecution], parent: Option<&StateWrite<'_>>) -> Result<()> {
        // Runbooks are never deleted: one this process stored or read is there.
        let known = |sha: &str| self.known_runbooks.lock().expect("runbooks").contains(sha);
        timed("insert_executions", async {
            transaction!(self.db, |tx| {
            if let Some(w) = parent {
                Self::write_state(tx, w).await?;
            }
            for (i, n) in new.iter().enumerate() {
                let stored_above = new[..i].iter().any(|m| m.runbook_sha == n.runbook_sha);
                if !stored_above && !known(&n.runbook_sha) {
                    sql::query("INSERT INTO automation_runbooks (sha, content) VALUES ($1, $2) ON CONFLICT (sha) DO NOTHING")
                        .bind(&n.runbook_sha)
                        .bind(&n.runbook)
                        .execute(&mut *tx)
                        .await?;
                }
                let inserted = sql::query(
                    "INSERT INTO automation_executions (id, account, region, document_name, status, parent_id, start_ms, runbook_sha, state, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1) ON CONFLICT (id) DO NOTHING",
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
                .execute(&mut *tx)
                .await?;
                if inserted > 0 {
                    Store::upsert_tags(tx, &n.account, &n.region, "Automation", &n.id, &n.tags).await?;
                    for (seq, (label, parameters)) in n.targets.iter().enumerate() {
                        let row = TargetRow {
                            seq: seq as i64,
                            label: label.clone(),
                            parameters: parameters.clone(),
                            child_id: None,
                            step_id: None,
                            status: "Pending".into(),
                            start_ms: None,
                            end_ms: None,
                            outputs: None,
                        };
                        insert_target(tx, &n.id, &row, false).await?;
                    }
                    if let Some(due) = n.due_ms {
                        Store::schedule_job(tx, AUTOMATION_JOB, &n.id, due, None, n.start_ms).await?;
                    }
                }
            }
            Ok(())
            })?;
            self.remember_runbooks(new.iter().map(|n| n.runbook_sha.as_str()));
            Ok(())
        })
        .await
    }

    fn remember_runbooks<'a>(&self, shas: impl Iterator<Item = &'a str>) {
        let mut known = self.known_runbooks.lock().expect("runbooks");
        if known.len() > 10_000 {
            known.clear();
        }
        known.extend(shas.map(str::to_string));
    }

    async fn write_state(tx: &mut Tx<'_>, w: &StateWrite<'_>) -> Result<()> {
        // Rows are locked in one order everywhere — an execution's job before the execution, a
        // child's rows before its parent's — so PostgreSQL never deadlocks the engine, signals
        // and children ending together. A write from outside the engine makes the job due first.
        if w.holder.is_none()
            && let Some(due) = w.due_ms
        {
            Self::schedule_job(tx, AUTOMATION_JOB, w.id, due, None, w.now_ms).await?;
        }
        // The engine's write is fenced by its claim in the same statement: the job row is
        // share-locked (before the execution's row) until commit, so the claim can't move.
        let lock = if tx.backend() == Backend::Postgres { " FOR SHARE" } else { "" };
        let n = sql::query(format!(
            "UPDATE automation_executions SET state = $1, status = $2, version = version + 1, \
             outputs = COALESCE($3, outputs) WHERE id = $4 AND version = $5 AND ($6 < 0 OR EXISTS (\
             SELECT 1 FROM jobs WHERE kind = $7 AND job_key = $4 AND token = $6 AND lease_owner IS NOT NULL{lock}))"
        ))
        .bind(w.state)
        .bind(w.status)
        .bind(w.outputs)
        .bind(w.id)
        .bind(w.version)
        .bind(w.holder.map_or(-1, |(c, _)| c.token))
        .bind(AUTOMATION_JOB)
        .execute(&mut *tx)
        .await?;
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        if let Some((claim, Hold::Release)) = w.holder {
            let next = w.due_ms.map_or(Next::Done, Next::At);
            Self::finish_job(tx, claim, next, w.now_ms).await?;
        }
        if FINAL_EXECUTION_STATUSES.contains(&w.status) {
            // Whoever waits for it (a maintenance-window task) carries on.
            Self::complete_awaited(tx, &ended(w.id), w.now_ms).await?;
        }
        if let Some(t) = w.targets {
            Self::write_targets(tx, w.id, t, w.now_ms).await?;
        }
        if let Some(p) = w.wake {
            Self::schedule_job(tx, AUTOMATION_JOB, p, w.now_ms, None, w.now_ms).await?;
            // The version moves too, so an engine about to release the parent with an older view
            // of its children fails its write and looks again.
            sql::query("UPDATE automation_executions SET version = version + 1 WHERE id = $1")
                .bind(p)
                .execute(&mut *tx)
                .await?;
            // A fan-out child ends its target's row (nothing for other children).
            sql::query(
                "UPDATE automation_targets SET status = $1, end_ms = $2, outputs = $3 \
                 WHERE execution_id = $4 AND child_id = $5 AND end_ms IS NULL",
            )
            .bind(w.status)
            .bind(w.now_ms)
            .bind(w.outputs)
            .bind(p)
            .bind(w.id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((account, region)) = w.admit_next {
            // The oldest execution held back by the running limit (Pending, its job parked in
            // the future) is due now. Rows another transaction holds are skipped, not waited
            // for: two executions ending at once wake two, and nothing waits in a cycle.
            let skip = if tx.backend() == Backend::Postgres { " FOR UPDATE OF j SKIP LOCKED" } else { "" };
            let woken = sql::query(format!(
                "UPDATE jobs SET due_ms = $1, run_at_ms = $1 WHERE kind = $2 AND job_key = (\
                 SELECT e.id FROM automation_executions e JOIN jobs j ON j.kind = $2 AND j.job_key = e.id \
                 WHERE e.account = $3 AND e.region = $4 AND e.status = 'Pending' AND e.parent_id IS NULL \
                 AND j.due_ms > $1 AND j.lease_owner IS NULL ORDER BY e.start_ms, e.id LIMIT 1{skip})"
            ))
            .bind(w.now_ms)
            .bind(AUTOMATION_JOB)
            .bind(account)
            .bind(region)
            .execute(&mut *tx)
            .await?;
            if woken > 0 {
                tx.notify(format!("job:{AUTOMATION_JOB}"));
            }
        }
        Ok(())
    }

    async fn write_targets(tx: &mut Tx<'_>, id: &str, t: &TargetChanges, now_ms: i64) -> Result<()> {
        for (row, reported) in &t.moved {
            insert_target(tx, id, row, *reported).await?;
        }
        for (seq, child, step) in &t.started {
            sql::query(
                "UPDATE automation_targets SET child_id = $1, step_id = $2, status = 'InProgress', start_ms = $3 \
                 WHERE execution_id = $4 AND seq = $5",
            )
            .bind(child)
            .bind(step)
            .bind(now_ms)
            .bind(id)
            .bind(*seq)
            .execute(&mut *tx)
            .await?;
        }
        for (seq, step, outputs) in &t.failed {
            sql::query(
                "UPDATE automation_targets SET step_id = $1, status = 'Failed', start_ms = $2, end_ms = $2, \
                 outputs = $3, reported = 1 WHERE execution_id = $4 AND seq = $5",
            )
            .bind(step)
            .bind(now_ms)
            .bind(outputs)
            .bind(id)
            .bind(*seq)
            .execute(&mut *tx)
            .await?;
        }
        for seq in &t.reported {
            sql::query("UPDATE automation_targets SET reported = 1 WHERE execution_id = $1 AND seq = $2")
                .bind(id)
                .bind(*seq)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// The targets of a rate-controlled parent whose children have ended and that it has not
    /// counted yet: (seq, status).
    pub async fn ended_targets(&self, id: &str) -> Result<Vec<(i64, String)>> {
        sql::query(
            "SELECT seq, status FROM automation_targets WHERE execution_id = $1 AND reported = 0 \
             AND end_ms IS NOT NULL ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|r| Ok((r.get("seq")?, r.get("status")?)))
        .collect()
    }

    /// The targets `from..to` of a rate-controlled parent.
    pub async fn targets_between(&self, id: &str, from: i64, to: i64) -> Result<Vec<TargetRow>> {
        sql::query(format!(
            "SELECT {TARGET_COLUMNS} FROM automation_targets WHERE execution_id = $1 AND seq >= $2 AND seq < $3 \
             ORDER BY seq"
        ))
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(target_row)
        .collect()
    }

    /// Every target of a rate-controlled parent, in order (`started_only`: those whose child was
    /// started or could not start — the parent's step executions).
    pub async fn targets(&self, id: &str, started_only: bool) -> Result<Vec<TargetRow>> {
        let only = if started_only { " AND step_id IS NOT NULL" } else { "" };
        sql::query(format!(
            "SELECT {TARGET_COLUMNS} FROM automation_targets WHERE execution_id = $1{only} ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(target_row)
        .collect()
    }

    /// The children of a rate-controlled parent's targets still running.
    pub async fn running_target_children(&self, id: &str) -> Result<Vec<String>> {
        sql::query(
            "SELECT child_id FROM automation_targets WHERE execution_id = $1 AND child_id IS NOT NULL \
             AND end_ms IS NULL ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|r| r.first())
        .collect()
    }

    /// Writes an execution's state if its version is still `w.version` (`Conflict` otherwise).
    pub async fn write_execution(&self, w: &StateWrite<'_>) -> Result<()> {
        timed("write_execution", async { transaction!(self.db, |tx| { Self::write_state(tx, w).await }) }).await
    }

    /// Links job `(owner_kind, owner_key)` to execution `id`'s end: returns its status if it
    /// has ended already (no link then), else links and returns `None` — and the job becomes
    /// due when the execution ends. The execution's row is locked while this looks, so an end
    /// at the same moment can't slip between the look and the link. The outer `None`: there is
    /// no such execution.
    pub async fn await_execution(&self, id: &str, owner_kind: &str, owner_key: &str) -> Result<Option<Option<String>>> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        transaction!(self.db, |tx| {
            let status: Option<String> =
                sql::query(format!("SELECT status FROM automation_executions WHERE id = $1{lock}"))
                    .bind(id)
                    .scalar_opt(&mut *tx)
                    .await?;
            let Some(status) = status else { return Ok(None) };
            if FINAL_EXECUTION_STATUSES.contains(&status.as_str()) {
                return Ok(Some(Some(status)));
            }
            Self::await_completion(tx, &ended(id), owner_kind, owner_key).await?;
            Ok(Some(None))
        })
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
        let found: Option<String> =
            sql::query("SELECT content FROM automation_runbooks WHERE sha = $1").bind(sha).scalar_opt(&self.db).await?;
        if found.is_some() {
            self.remember_runbooks(std::iter::once(sha));
        }
        Ok(found)
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
        Ok(self.count_by_status(account, region, statuses).await?.iter().map(|(_, n)| n).sum())
    }

    /// How many executions of the account and region are in each of `statuses` (those with
    /// none are left out), in one query.
    pub async fn count_by_status(&self, account: &str, region: &str, statuses: &[&str]) -> Result<Vec<(String, i64)>> {
        let marks: Vec<String> = (3..3 + statuses.len()).map(|i| format!("${i}")).collect();
        let mut q = sql::query(format!(
            "SELECT status, COUNT(*) AS n FROM automation_executions WHERE account = $1 AND region = $2 \
             AND status IN ({}) GROUP BY status",
            marks.join(", ")
        ))
        .bind(account)
        .bind(region);
        for s in statuses {
            q = q.bind(*s);
        }
        q.fetch_all(&self.db).await?.iter().map(|r| Ok((r.get("status")?, r.get("n")?))).collect()
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
                w.and("start_ms <= ?1 AND (start_ms < ?1 OR id > ?2)", [t.into(), id.into()]);
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

const TARGET_COLUMNS: &str = "seq, label, parameters, child_id, step_id, status, start_ms, end_ms, outputs";

fn target_row(r: &sql::Row) -> Result<TargetRow> {
    Ok(TargetRow {
        seq: r.get("seq")?,
        label: r.get("label")?,
        parameters: r.get("parameters")?,
        child_id: r.get("child_id")?,
        step_id: r.get("step_id")?,
        status: r.get("status")?,
        start_ms: r.get("start_ms")?,
        end_ms: r.get("end_ms")?,
        outputs: r.get("outputs")?,
    })
}

async fn insert_target(tx: &mut Tx<'_>, id: &str, t: &TargetRow, reported: bool) -> Result<()> {
    sql::query(
        "INSERT INTO automation_targets (execution_id, seq, label, parameters, child_id, step_id, status, start_ms, \
         end_ms, outputs, reported) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (execution_id, seq) DO NOTHING",
    )
    .bind(id)
    .bind(t.seq)
    .bind(&t.label)
    .bind(&t.parameters)
    .bind(&t.child_id)
    .bind(&t.step_id)
    .bind(&t.status)
    .bind(t.start_ms)
    .bind(t.end_ms)
    .bind(&t.outputs)
    .bind(i64::from(reported))
    .execute(&mut *tx)
    .await?;
    Ok(())
}
