//! Maintenance windows: windows, their registered targets and tasks, and their executions with
//! one row per task execution and per invocation (one target of a task).
//!
//! * A window row holds what the API shows (a JSON `spec` the caller owns) plus `enabled`, a
//!   `revision` bumped by every change to it, and `anchor_ms`, when its schedule was last set.
//! * A window fires through the engine's jobs: `window/<id>@<occurrence ms>` with the revision
//!   as payload. Creating, updating or enabling a window replaces its pending fire job in the
//!   same transaction, so a schedule change re-plans at once; a fire job of an older revision
//!   does nothing.
//! * Firing inserts the execution with a unique (window, occurrence) key, its task executions,
//!   its driver job (`window-run/<execution id>`) and the window's next fire job, in one
//!   transaction: a restart or a second replica never fires one occurrence twice, and never
//!   loses one.
//! * The driver's writes are guarded by the execution's version; an invocation is marked started
//!   (with the command or execution id it will use) before anything is sent.

use crate::jobs::Claim;
use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, StoreError, Tag, timed};

/// The job kind that fires windows.
pub const WINDOW_FIRE_JOB: &str = "window";
/// The job kind that drives window executions.
pub const WINDOW_RUN_JOB: &str = "window-run";
/// The tag resource type of windows.
pub const WINDOW_TAGS: &str = "MaintenanceWindow";

/// A window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub enabled: bool,
    /// Everything else the API shows (JSON, the caller's).
    pub spec: String,
    pub revision: i64,
    /// When its schedule was last set (rate windows count from it).
    pub anchor_ms: i64,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// A window's registered target or task.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPartRow {
    pub id: String,
    pub window_id: String,
    /// Tasks: the priority (targets: 0).
    pub priority: i64,
    /// The definition (JSON, the caller's).
    pub spec: String,
    pub created_ms: i64,
}

/// Which of a window's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Target,
    Task,
}

impl Part {
    fn table(self) -> &'static str {
        match self {
            Part::Target => "window_targets",
            Part::Task => "window_tasks",
        }
    }
}

/// A window execution.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRunRow {
    pub id: String,
    pub window_id: String,
    pub account: String,
    pub region: String,
    /// The occurrence it runs (epoch ms).
    pub scheduled_ms: i64,
    pub status: String,
    pub status_details: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The driver's state (JSON, the caller's).
    pub state: String,
    pub version: i64,
}

/// A task execution of a window execution.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRunRow {
    pub id: String,
    pub execution_id: String,
    pub task_id: String,
    /// Its place in the execution (priority order).
    pub seq: i64,
    pub status: String,
    pub status_details: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The task as it was when the window fired (JSON, the caller's).
    pub spec: String,
    /// Its rate control (JSON, the caller's).
    pub progress: String,
}

/// One invocation of a task execution: one target (or the task itself, when it has none).
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRunRow {
    pub id: String,
    pub task_execution_id: String,
    pub execution_id: String,
    pub seq: i64,
    /// The command or automation execution it started.
    pub run_id: Option<String>,
    pub parameters: String,
    pub status: String,
    pub status_details: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub owner_information: Option<String>,
    pub window_target_id: Option<String>,
    /// The managed node it targets (`None` for a targetless task).
    pub target: Option<String>,
}

/// A fire: the execution it creates, with its task executions.
#[derive(Debug, Clone)]
pub struct Fire {
    pub execution: WindowRunRow,
    pub tasks: Vec<TaskRunRow>,
    /// Whether the driver runs it (false for one recorded as skipped or missed).
    pub drive: bool,
}

/// The driver's write.
#[derive(Debug, Clone, Default)]
pub struct RunWrite {
    /// The execution, with the version it was read at (the write is refused if it moved).
    pub execution: Option<WindowRunRow>,
    pub tasks: Vec<TaskRunRow>,
    /// Invocations to insert or overwrite.
    pub invocations: Vec<InvocationRunRow>,
}

const WINDOW_COLUMNS: &str = "id, account, region, name, enabled, spec, revision, anchor_ms, created_ms, modified_ms";
const RUN_COLUMNS: &str =
    "id, window_id, account, region, scheduled_ms, status, status_details, start_ms, end_ms, state, version";
const TASK_RUN_COLUMNS: &str =
    "id, execution_id, task_id, seq, status, status_details, start_ms, end_ms, spec, progress";
const INVOCATION_COLUMNS: &str = "id, task_execution_id, execution_id, seq, run_id, parameters, status, \
     status_details, start_ms, end_ms, owner_information, window_target_id, target";

fn window_row(r: &sql::Row) -> Result<WindowRow> {
    Ok(WindowRow {
        id: r.get("id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        name: r.get("name")?,
        enabled: r.get::<i64>("enabled")? != 0,
        spec: r.get("spec")?,
        revision: r.get("revision")?,
        anchor_ms: r.get("anchor_ms")?,
        created_ms: r.get("created_ms")?,
        modified_ms: r.get("modified_ms")?,
    })
}

fn part_row(r: &sql::Row) -> Result<WindowPartRow> {
    Ok(WindowPartRow {
        id: r.get("id")?,
        window_id: r.get("window_id")?,
        priority: r.get("priority")?,
        spec: r.get("spec")?,
        created_ms: r.get("created_ms")?,
    })
}

fn run_row(r: &sql::Row) -> Result<WindowRunRow> {
    Ok(WindowRunRow {
        id: r.get("id")?,
        window_id: r.get("window_id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        scheduled_ms: r.get("scheduled_ms")?,
        status: r.get("status")?,
        status_details: r.get("status_details")?,
        start_ms: r.get("start_ms")?,
        end_ms: r.get("end_ms")?,
        state: r.get("state")?,
        version: r.get("version")?,
    })
}

fn task_run_row(r: &sql::Row) -> Result<TaskRunRow> {
    Ok(TaskRunRow {
        id: r.get("id")?,
        execution_id: r.get("execution_id")?,
        task_id: r.get("task_id")?,
        seq: r.get("seq")?,
        status: r.get("status")?,
        status_details: r.get("status_details")?,
        start_ms: r.get("start_ms")?,
        end_ms: r.get("end_ms")?,
        spec: r.get("spec")?,
        progress: r.get("progress")?,
    })
}

fn invocation_row(r: &sql::Row) -> Result<InvocationRunRow> {
    Ok(InvocationRunRow {
        id: r.get("id")?,
        task_execution_id: r.get("task_execution_id")?,
        execution_id: r.get("execution_id")?,
        seq: r.get("seq")?,
        run_id: r.get("run_id")?,
        parameters: r.get("parameters")?,
        status: r.get("status")?,
        status_details: r.get("status_details")?,
        start_ms: r.get("start_ms")?,
        end_ms: r.get("end_ms")?,
        owner_information: r.get("owner_information")?,
        window_target_id: r.get("window_target_id")?,
        target: r.get("target")?,
    })
}

/// The key of window `id`'s fire job for the occurrence `at_ms`.
pub fn fire_key(id: &str, at_ms: i64) -> String {
    format!("{id}@{at_ms:015}")
}

impl Store {
    /// Inserts a window with its tags, and its first fire job (`first_fire_ms`), in one
    /// transaction. `limit`: the most windows an account and region may hold
    /// (`StoreError::Conflict` past it).
    pub async fn insert_window(
        &self,
        w: &WindowRow,
        tags: &[Tag],
        first_fire_ms: Option<i64>,
        limit: i64,
    ) -> Result<()> {
        timed("insert_window", async {
            transaction!(self.db, |tx| {
                if !Store::take_quota(tx, &w.account, &w.region, WINDOW_TAGS, limit).await? {
                    return Err(StoreError::Conflict);
                }
                sql::query(format!(
                    "INSERT INTO maintenance_windows ({WINDOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(&w.id)
                .bind(&w.account)
                .bind(&w.region)
                .bind(&w.name)
                .bind(i64::from(w.enabled))
                .bind(&w.spec)
                .bind(w.revision)
                .bind(w.anchor_ms)
                .bind(w.created_ms)
                .bind(w.modified_ms)
                .execute(&mut *tx)
                .await?;
                Store::upsert_tags(tx, &w.account, &w.region, WINDOW_TAGS, &w.id, tags).await?;
                Self::plan_fire(tx, w, first_fire_ms).await
            })
        })
        .await
    }

    /// Replaces window `w` (same id) if its revision is still `w.revision - 1`, and re-plans its
    /// fire job (`Conflict` if it moved or is gone).
    pub async fn update_window(&self, w: &WindowRow, next_fire_ms: Option<i64>) -> Result<()> {
        timed("update_window", async {
            transaction!(self.db, |tx| {
                let n = sql::query(
                    "UPDATE maintenance_windows SET name = $1, enabled = $2, spec = $3, revision = $4, anchor_ms = $5, \
                     modified_ms = $6 WHERE id = $7 AND account = $8 AND region = $9 AND revision = $10",
                )
                .bind(&w.name)
                .bind(i64::from(w.enabled))
                .bind(&w.spec)
                .bind(w.revision)
                .bind(w.anchor_ms)
                .bind(w.modified_ms)
                .bind(&w.id)
                .bind(&w.account)
                .bind(&w.region)
                .bind(w.revision - 1)
                .execute(&mut *tx)
                .await?;
                if n == 0 {
                    return Err(StoreError::Conflict);
                }
                Self::plan_fire(tx, w, next_fire_ms).await
            })
        })
        .await
    }

    /// Drops a window's pending fire jobs and schedules the one for `at_ms` (if any) with the
    /// window's revision.
    async fn plan_fire(tx: &mut Tx<'_>, w: &WindowRow, at_ms: Option<i64>) -> Result<()> {
        sql::query("DELETE FROM jobs WHERE kind = $1 AND job_key >= $2 AND job_key < $3 AND lease_owner IS NULL")
            .bind(WINDOW_FIRE_JOB)
            .bind(format!("{}@", w.id))
            .bind(format!("{}@~", w.id))
            .execute(&mut *tx)
            .await?;
        if let Some(at) = at_ms.filter(|_| w.enabled) {
            let rev = w.revision.to_string();
            Self::schedule_job(tx, WINDOW_FIRE_JOB, &fire_key(&w.id, at), at, Some(&rev), w.modified_ms).await?;
        }
        Ok(())
    }

    /// Deletes a window with its targets, tasks, tags, executions and pending jobs; false if
    /// there is no such window.
    pub async fn delete_window(&self, account: &str, region: &str, id: &str) -> Result<bool> {
        timed("delete_window", async {
            transaction!(self.db, |tx| {
                let n = sql::query("DELETE FROM maintenance_windows WHERE id = $1 AND account = $2 AND region = $3")
                    .bind(id)
                    .bind(account)
                    .bind(region)
                    .execute(&mut *tx)
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                Store::release_quota(tx, account, region, WINDOW_TAGS).await?;
                for table in ["window_targets", "window_tasks"] {
                    sql::query(format!("DELETE FROM {table} WHERE window_id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                for sub in ["window_invocations", "window_task_executions"] {
                    sql::query(format!(
                        "DELETE FROM {sub} WHERE execution_id IN (SELECT id FROM window_executions WHERE window_id = $1)"
                    ))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                sql::query("DELETE FROM window_executions WHERE window_id = $1").bind(id).execute(&mut *tx).await?;
                sql::query("DELETE FROM jobs WHERE kind = $1 AND job_key >= $2 AND job_key < $3 AND lease_owner IS NULL")
                    .bind(WINDOW_FIRE_JOB)
                    .bind(format!("{id}@"))
                    .bind(format!("{id}@~"))
                    .execute(&mut *tx)
                    .await?;
                Store::drop_tags(tx, account, region, WINDOW_TAGS, id).await?;
                Ok(true)
            })
        })
        .await
    }

    /// One window of the account and region.
    pub async fn window(&self, account: &str, region: &str, id: &str) -> Result<Option<WindowRow>> {
        self.row_by_id("maintenance_windows", WINDOW_COLUMNS, id, Some((account, region)), window_row).await
    }

    /// One window by id alone (the engine).
    pub async fn window_by_id(&self, id: &str) -> Result<Option<WindowRow>> {
        self.row_by_id("maintenance_windows", WINDOW_COLUMNS, id, None, window_row).await
    }

    /// One row of `table` by id, within the account and Region when `scope` names them.
    async fn row_by_id<T>(
        &self,
        table: &str,
        columns: &str,
        id: &str,
        scope: Option<(&str, &str)>,
        read: fn(&sql::Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut q = match scope {
            Some(_) => {
                sql::query(format!("SELECT {columns} FROM {table} WHERE id = $1 AND account = $2 AND region = $3"))
            }
            None => sql::query(format!("SELECT {columns} FROM {table} WHERE id = $1")),
        }
        .bind(id);
        if let Some((account, region)) = scope {
            q = q.bind(account).bind(region);
        }
        q.fetch_optional(&self.db).await?.as_ref().map(read).transpose()
    }

    /// Windows of the account and region in name order after `after` = (name, id), those
    /// whose name starts with one of `name_prefixes` (all if empty) and, with `enabled`, only
    /// enabled or disabled ones.
    pub async fn windows_page(
        &self,
        account: &str,
        region: &str,
        name_prefixes: &[String],
        enabled: Option<bool>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<WindowRow>> {
        timed("windows_page", async {
            let mut w = sql::Where::new();
            w.and("account = ?1 AND region = ?2", [account.into(), region.into()]);
            w.any_matching(name_prefixes, |n, v| format!("substr(name, 1, {}) = ${n}", v.chars().count()));
            if let Some(e) = enabled {
                w.and("enabled = ?1", [i64::from(e).into()]);
            }
            if let Some((name, id)) = after {
                w.and("name >= ?1 AND (name > ?1 OR id > ?2)", [name.into(), id.into()]);
            }
            w.query(&format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows"), "ORDER BY name, id", limit)
                .fetch_all(&self.db)
                .await?
                .iter()
                .map(window_row)
                .collect()
        })
        .await
    }

    /// Every window of the account and region (schedules and for-target lookups).
    pub async fn windows_all(&self, account: &str, region: &str) -> Result<Vec<WindowRow>> {
        self.windows_page(account, region, &[], None, None, i64::MAX).await
    }

    /// Adds a target or task to window `window_id` of the account and region, if it exists and
    /// holds fewer than `limit` of them. `Ok(false)`: no such window; `Conflict`: over the limit.
    pub async fn insert_window_part(
        &self,
        account: &str,
        region: &str,
        part: Part,
        row: &WindowPartRow,
        limit: i64,
    ) -> Result<bool> {
        timed("insert_window_part", async {
            let table = part.table();
            transaction!(self.db, |tx| {
                if !Self::lock_window(tx, account, region, &row.window_id).await? {
                    return Ok(false);
                }
                let held: i64 = sql::query(format!("SELECT COUNT(*) FROM {table} WHERE window_id = $1"))
                    .bind(&row.window_id)
                    .scalar(&mut *tx)
                    .await?;
                if held >= limit {
                    return Err(StoreError::Conflict);
                }
                sql::query(format!(
                    "INSERT INTO {table} (id, window_id, priority, spec, created_ms) VALUES ($1, $2, $3, $4, $5)"
                ))
                .bind(&row.id)
                .bind(&row.window_id)
                .bind(row.priority)
                .bind(&row.spec)
                .bind(row.created_ms)
                .execute(&mut *tx)
                .await?;
                Ok(true)
            })
        })
        .await
    }

    /// Locks the window row (PostgreSQL) so its parts change one at a time; false if it is not
    /// the account's.
    async fn lock_window(tx: &mut Tx<'_>, account: &str, region: &str, id: &str) -> Result<bool> {
        let lock = if tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
        let found = sql::query(format!(
            "SELECT id FROM maintenance_windows WHERE id = $1 AND account = $2 AND region = $3{lock}"
        ))
        .bind(id)
        .bind(account)
        .bind(region)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(found.is_some())
    }

    /// Replaces a target's or task's definition; false if there is no such part of that window.
    pub async fn update_window_part(
        &self,
        account: &str,
        region: &str,
        part: Part,
        row: &WindowPartRow,
    ) -> Result<bool> {
        let table = part.table();
        transaction!(self.db, |tx| {
            if !Self::lock_window(tx, account, region, &row.window_id).await? {
                return Ok(false);
            }
            let n = sql::query(format!("UPDATE {table} SET priority = $1, spec = $2 WHERE id = $3 AND window_id = $4"))
                .bind(row.priority)
                .bind(&row.spec)
                .bind(&row.id)
                .bind(&row.window_id)
                .execute(&mut *tx)
                .await?;
            Ok(n > 0)
        })
    }

    /// Removes a target or task; false if there is no such part of that window.
    pub async fn delete_window_part(
        &self,
        account: &str,
        region: &str,
        part: Part,
        window_id: &str,
        id: &str,
    ) -> Result<bool> {
        let table = part.table();
        transaction!(self.db, |tx| {
            if !Self::lock_window(tx, account, region, window_id).await? {
                return Ok(false);
            }
            let n = sql::query(format!("DELETE FROM {table} WHERE id = $1 AND window_id = $2"))
                .bind(id)
                .bind(window_id)
                .execute(&mut *tx)
                .await?;
            Ok(n > 0)
        })
    }

    /// A window's targets or tasks (tasks in priority order, then as registered).
    pub async fn window_parts(&self, part: Part, window_id: &str) -> Result<Vec<WindowPartRow>> {
        sql::query(format!(
            "SELECT id, window_id, priority, spec, created_ms FROM {} WHERE window_id = $1 \
             ORDER BY priority, created_ms, id",
            part.table()
        ))
        .bind(window_id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(part_row)
        .collect()
    }

    /// Every target or task of every window of the account and region (which windows name a
    /// node).
    pub async fn window_parts_in(&self, account: &str, region: &str, part: Part) -> Result<Vec<WindowPartRow>> {
        sql::query(format!(
            "SELECT p.id, p.window_id, p.priority, p.spec, p.created_ms FROM {} p \
             JOIN maintenance_windows w ON w.id = p.window_id WHERE w.account = $1 AND w.region = $2",
            part.table()
        ))
        .bind(account)
        .bind(region)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(part_row)
        .collect()
    }

    /// Fires an occurrence for the holder of its fire job (`claim`): inserts the execution
    /// (unless that occurrence has one) with its task executions and driver job, ends the fire
    /// job and plans the window's next fire at `next_ms` — in one transaction. With `fire`
    /// `None` it only ends the job and re-plans (a fire job of an older revision). `Conflict`
    /// if the window changed since it was read (read it again); `Ok(false)` if the occurrence
    /// had fired already.
    pub async fn fire_window(
        &self,
        claim: &Claim,
        window: &WindowRow,
        fire: Option<&Fire>,
        next_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<bool> {
        timed("fire_window", async {
            transaction!(self.db, |tx| {
                let lock = if tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
                let revision: Option<i64> =
                    sql::query(format!("SELECT revision FROM maintenance_windows WHERE id = $1{lock}"))
                        .bind(&window.id)
                        .scalar_opt(&mut *tx)
                        .await?;
                if revision != Some(window.revision) {
                    return Err(StoreError::Conflict);
                }
                let mut inserted = 0;
                if let Some(fire) = fire {
                    let e = &fire.execution;
                    inserted = sql::query(format!(
                        "INSERT INTO window_executions ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1) \
                         ON CONFLICT (window_id, scheduled_ms) DO NOTHING"
                    ))
                    .bind(&e.id)
                    .bind(&e.window_id)
                    .bind(&e.account)
                    .bind(&e.region)
                    .bind(e.scheduled_ms)
                    .bind(&e.status)
                    .bind(&e.status_details)
                    .bind(e.start_ms)
                    .bind(e.end_ms)
                    .bind(&e.state)
                    .execute(&mut *tx)
                    .await?;
                    if inserted > 0 {
                        for t in &fire.tasks {
                            insert_task_run(tx, t).await?;
                        }
                        if fire.drive {
                            Self::schedule_job(tx, WINDOW_RUN_JOB, &e.id, now_ms, None, now_ms).await?;
                        }
                    }
                }
                Self::finish_job(tx, claim, crate::jobs::Next::Done, now_ms).await?;
                Self::plan_fire(tx, window, next_ms).await?;
                Ok(inserted > 0)
            })
        })
        .await
    }

    /// The window's execution still under way, if any (a new occurrence then is skipped).
    pub async fn window_running(&self, window_id: &str) -> Result<Option<String>> {
        sql::query(
            "SELECT id FROM window_executions WHERE window_id = $1 \
             AND status IN ('PENDING', 'IN_PROGRESS', 'CANCELLING') LIMIT 1",
        )
        .bind(window_id)
        .scalar_opt(&self.db)
        .await
    }

    /// One window execution of the account and region.
    pub async fn window_run(&self, account: &str, region: &str, id: &str) -> Result<Option<WindowRunRow>> {
        self.row_by_id("window_executions", RUN_COLUMNS, id, Some((account, region)), run_row).await
    }

    /// One window execution by id alone (the engine).
    pub async fn window_run_by_id(&self, id: &str) -> Result<Option<WindowRunRow>> {
        self.row_by_id("window_executions", RUN_COLUMNS, id, None, run_row).await
    }

    /// A window's executions, newest first (by start time), after `after` = (start, id), those
    /// started before / after the given times.
    pub async fn window_runs_page(
        &self,
        window_id: &str,
        before_ms: Option<i64>,
        after_ms: Option<i64>,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<WindowRunRow>> {
        let mut w = sql::Where::new();
        w.and("window_id = ?1", [window_id.into()]);
        if let Some(t) = before_ms {
            w.and("start_ms < ?1", [t.into()]);
        }
        if let Some(t) = after_ms {
            w.and("start_ms > ?1", [t.into()]);
        }
        if let Some((t, id)) = after {
            w.and("start_ms <= ?1 AND (start_ms < ?1 OR id > ?2)", [t.into(), id.into()]);
        }
        w.query(&format!("SELECT {RUN_COLUMNS} FROM window_executions"), "ORDER BY start_ms DESC, id", limit)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(run_row)
            .collect()
    }

    /// The task executions of a window execution, in order.
    pub async fn task_runs(&self, execution_id: &str) -> Result<Vec<TaskRunRow>> {
        sql::query(format!(
            "SELECT {TASK_RUN_COLUMNS} FROM window_task_executions WHERE execution_id = $1 ORDER BY seq"
        ))
        .bind(execution_id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(task_run_row)
        .collect()
    }

    /// The invocations of a task execution, in order.
    pub async fn invocation_runs(&self, task_execution_id: &str) -> Result<Vec<InvocationRunRow>> {
        sql::query(format!(
            "SELECT {INVOCATION_COLUMNS} FROM window_invocations WHERE task_execution_id = $1 ORDER BY seq"
        ))
        .bind(task_execution_id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(invocation_row)
        .collect()
    }

    /// The invocations of a window execution that are running (started, not ended).
    pub async fn running_invocations(&self, execution_id: &str) -> Result<Vec<InvocationRunRow>> {
        sql::query(format!(
            "SELECT {INVOCATION_COLUMNS} FROM window_invocations WHERE execution_id = $1 AND run_id IS NOT NULL \
             AND end_ms IS NULL ORDER BY task_execution_id, seq"
        ))
        .bind(execution_id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(invocation_row)
        .collect()
    }

    /// The driver's write (see [`RunWrite`]), fenced by its claim on the execution's job;
    /// `Conflict` if the execution moved (re-read) or the claim was lost.
    pub async fn write_window_run(&self, claim: Option<&Claim>, w: &RunWrite) -> Result<()> {
        timed("write_window_run", async {
            transaction!(self.db, |tx| {
                if let Some(c) = claim {
                    Self::fence(tx, c).await?;
                }
                if let Some(e) = &w.execution {
                    let n = sql::query(
                        "UPDATE window_executions SET status = $1, status_details = $2, start_ms = $3, end_ms = $4, \
                         state = $5, version = version + 1 WHERE id = $6 AND version = $7",
                    )
                    .bind(&e.status)
                    .bind(&e.status_details)
                    .bind(e.start_ms)
                    .bind(e.end_ms)
                    .bind(&e.state)
                    .bind(&e.id)
                    .bind(e.version)
                    .execute(&mut *tx)
                    .await?;
                    if n == 0 {
                        return Err(StoreError::Conflict);
                    }
                }
                for t in &w.tasks {
                    sql::query(
                        "UPDATE window_task_executions SET status = $1, status_details = $2, start_ms = $3, end_ms = $4, \
                         progress = $5 WHERE id = $6",
                    )
                    .bind(&t.status)
                    .bind(&t.status_details)
                    .bind(t.start_ms)
                    .bind(t.end_ms)
                    .bind(&t.progress)
                    .bind(&t.id)
                    .execute(&mut *tx)
                    .await?;
                }
                for i in &w.invocations {
                    upsert_invocation(tx, i).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Makes window execution `id` due now for its driver (a cancel), bumping its version so a
    /// driver working from an older view writes nothing.
    pub async fn poke_window_run(&self, id: &str, status: &str, details: &str, now_ms: i64) -> Result<bool> {
        transaction!(self.db, |tx| {
            Self::schedule_job(tx, WINDOW_RUN_JOB, id, now_ms, None, now_ms).await?;
            let n = sql::query(
                "UPDATE window_executions SET status = $1, status_details = $2, version = version + 1 \
                 WHERE id = $3 AND status IN ('PENDING', 'IN_PROGRESS')",
            )
            .bind(status)
            .bind(details)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(n > 0)
        })
    }

    /// Forgets window executions (with their task executions and invocations) that ended
    /// before `before_ms`; returns how many.
    pub async fn purge_window_runs(&self, before_ms: i64) -> Result<u64> {
        transaction!(self.db, |tx| {
            for sub in ["window_invocations", "window_task_executions"] {
                sql::query(format!(
                    "DELETE FROM {sub} WHERE execution_id IN (SELECT id FROM window_executions WHERE end_ms < $1)"
                ))
                .bind(before_ms)
                .execute(&mut *tx)
                .await?;
            }
            sql::query("DELETE FROM window_executions WHERE end_ms < $1").bind(before_ms).execute(&mut *tx).await
        })
    }
}

async fn insert_task_run(tx: &mut Tx<'_>, t: &TaskRunRow) -> Result<()> {
    sql::query(format!(
        "INSERT INTO window_task_executions ({TASK_RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&t.id)
    .bind(&t.execution_id)
    .bind(&t.task_id)
    .bind(t.seq)
    .bind(&t.status)
    .bind(&t.status_details)
    .bind(t.start_ms)
    .bind(t.end_ms)
    .bind(&t.spec)
    .bind(&t.progress)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn upsert_invocation(tx: &mut Tx<'_>, i: &InvocationRunRow) -> Result<()> {
    sql::query(format!(
        "INSERT INTO window_invocations ({INVOCATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, parameters = excluded.parameters, \
         status = excluded.status, status_details = excluded.status_details, start_ms = excluded.start_ms, \
         end_ms = excluded.end_ms"
    ))
    .bind(&i.id)
    .bind(&i.task_execution_id)
    .bind(&i.execution_id)
    .bind(i.seq)
    .bind(&i.run_id)
    .bind(&i.parameters)
    .bind(&i.status)
    .bind(&i.status_details)
    .bind(i.start_ms)
    .bind(i.end_ms)
    .bind(&i.owner_information)
    .bind(&i.window_target_id)
    .bind(&i.target)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
