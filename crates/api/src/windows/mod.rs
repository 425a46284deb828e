//! Maintenance Windows: the 24 window operations and the windows' runs.
//!
//! * `define` — Create/Update/Get/Describe/DeleteMaintenanceWindow and NextExecutionTime;
//! * `parts` — registered targets and tasks (register, update with `Replace`, get, describe,
//!   deregister);
//! * `upcoming` — DescribeMaintenanceWindowSchedule and DescribeMaintenanceWindowsForTarget;
//! * `history` — executions, task executions and invocations, and CancelMaintenanceWindowExecution;
//! * `fire` and `drive` — the engine's handlers: a window's fire job creates its execution at
//!   each occurrence, the execution's driver job runs its tasks over their targets.
//!
//! Schedules come from `ssmd_core::schedule` (one module for windows, associations and change
//! requests), fires and drivers are engine jobs, fan-out is the shared `RateController`, targets
//! resolve through the shared resolver: windows bring no timer or fan-out of their own.

mod define;
pub(crate) mod drive;
pub(crate) mod fire;
mod history;
mod parts;
mod upcoming;

pub(crate) use define::{create, delete, describe, get, update};
pub(crate) use history::{
    cancel, describe_executions, describe_invocations, describe_task_executions, get_execution, get_invocation,
    get_task_execution,
};
pub(crate) use parts::{
    deregister_target, deregister_task, describe_targets, describe_tasks, get_task, register_target, register_task,
    update_target, update_task,
};
pub(crate) use upcoming::{for_target, schedule};

use crate::{Service, store_error};
use serde::{Deserialize, Serialize};
use ssmd_core::schedule::{Schedule, ScheduleError, ScheduleOptions, Timetable, parse_date_time};
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{WindowRow, WindowRunRow};

/// Maintenance-window settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Windows one account and Region may hold.
    pub max_windows: i64,
    /// Targets one window may hold.
    pub max_targets: i64,
    /// Tasks one window may hold.
    pub max_tasks: i64,
    /// Days an ended window execution is kept (AWS keeps 30).
    pub history_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_windows: 100_000, max_targets: 100, max_tasks: 20, history_days: 30 }
    }
}

/// A window's definition as stored (the row's `spec`; name and Enabled are columns).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct WindowSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i32>,
    pub duration: i32,
    pub cutoff: i32,
    pub allow_unassociated_targets: bool,
}

impl WindowSpec {
    /// The schedule options, with StartDate and EndDate read (a bad date is a
    /// `ValidationException` naming it).
    pub fn options(&self) -> Result<ScheduleOptions, ApiError> {
        let date = |member: &str, v: &Option<String>| {
            v.as_deref().map(parse_date_time).transpose().map_err(|e| validation(format!("{member}: {e}")))
        };
        Ok(ScheduleOptions {
            timezone: self.timezone.clone(),
            start_ms: date("StartDate", &self.start_date)?,
            end_ms: date("EndDate", &self.end_date)?,
            offset_days: self.offset.map(i64::from),
        })
    }

    /// Checks everything a window's definition must satisfy: the schedule, its options, and a
    /// Cutoff below the Duration (AWS's message).
    pub fn check(&self, set_at_ms: i64) -> Result<Timetable, ApiError> {
        if self.cutoff >= self.duration {
            return Err(validation(format!(
                "Cutoff was {} but must be smaller than {} (Duration - 1) for this maintenance window.",
                self.cutoff, self.duration
            )));
        }
        self.timetable(set_at_ms)
    }

    /// The window's timetable, its schedule set at `set_at_ms`.
    pub fn timetable(&self, set_at_ms: i64) -> Result<Timetable, ApiError> {
        let schedule = Schedule::parse(&self.schedule).map_err(schedule_error)?;
        ssmd_core::schedule::check_window(&schedule).map_err(schedule_error)?;
        Timetable::new(&schedule, &self.options()?, set_at_ms).map_err(schedule_error)
    }

    /// The hours a window lasts and its cutoff, in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        i64::from(self.duration) * 3_600_000
    }

    pub fn cutoff_ms(&self) -> i64 {
        i64::from(self.cutoff) * 3_600_000
    }
}

/// A window as the service reads it.
pub(crate) struct Window {
    pub row: WindowRow,
    pub spec: WindowSpec,
}

impl Window {
    pub fn read(row: WindowRow) -> Result<Window, ApiError> {
        let spec = parse(&row.spec)?;
        Ok(Window { row, spec })
    }
}

/// A stored JSON value read back (the service wrote it; anything else is an internal error).
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::internal(format!("stored maintenance-window data: {e}")))
}

/// A value written to the store.
pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("window data serialises")
}

pub(crate) fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationException, message)
}

pub(crate) fn schedule_error(e: ScheduleError) -> ApiError {
    validation(e.to_string())
}

pub(crate) fn no_window(id: &str) -> ApiError {
    ApiError::new(ErrorCode::DoesNotExistException, format!("Maintenance window {id} does not exist"))
}

pub(crate) fn no_execution(id: &str) -> ApiError {
    ApiError::new(ErrorCode::DoesNotExistException, format!("Maintenance window execution {id} does not exist"))
}

/// Epoch milliseconds as an API timestamp.
pub(crate) fn seconds(ms: i64) -> f64 {
    ssmd_core::clock::epoch_seconds(ms)
}

impl Service {
    /// The caller's window `id` (`DoesNotExistException` otherwise).
    pub(crate) async fn own_window(&self, caller: &Caller, id: &str) -> Result<Window, ApiError> {
        let row = self.store.window(&caller.account, &caller.region, id).await.map_err(store_error)?;
        Window::read(row.ok_or_else(|| no_window(id))?)
    }

    /// The caller's window execution `id` (`DoesNotExistException` otherwise).
    pub(crate) async fn own_window_run(&self, caller: &Caller, id: &str) -> Result<WindowRunRow, ApiError> {
        self.store
            .window_run(&caller.account, &caller.region, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| no_execution(id))
    }

    /// The position a window operation's NextToken resumes after. These operations model no
    /// `InvalidNextToken`: a bad token is a `ValidationException`.
    pub(crate) fn window_token(
        &self,
        caller: &Caller,
        op: &str,
        token: Option<&str>,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        self.open_token(caller, op, token).map_err(|_| validation("The specified NextToken is not valid."))
    }
}

/// One filter's key and values (absent ones empty).
pub(crate) fn filter_values(f: &MaintenanceWindowFilter) -> (&str, &[String]) {
    (f.key.as_deref().unwrap_or_default(), f.values.as_deref().unwrap_or_default())
}

/// An unsupported filter key: a `ValidationException` naming the keys the operation takes.
pub(crate) fn bad_filter_key(key: &str, allowed: &[&str]) -> ApiError {
    validation(format!("The filter key {key} is not valid; use one of: {}.", allowed.join(", ")))
}

/// The status filter of the execution-history operations (`Status`, any case).
pub(crate) fn status_filter(
    filters: &[MaintenanceWindowFilter],
) -> Result<Vec<MaintenanceWindowExecutionStatus>, ApiError> {
    let mut out = Vec::new();
    for f in filters {
        let (key, values) = filter_values(f);
        if !key.eq_ignore_ascii_case("Status") {
            return Err(bad_filter_key(key, &["Status"]));
        }
        for v in values {
            let s = v.to_ascii_uppercase().parse::<MaintenanceWindowExecutionStatus>().map_err(|_| {
                validation(format!(
                    "The Status filter value {v} is not valid; use one of: PENDING, IN_PROGRESS, SUCCESS, FAILED, \
                     TIMED_OUT, CANCELLING, CANCELLED, SKIPPED_OVERLAPPING."
                ))
            })?;
            out.push(s);
        }
    }
    Ok(out)
}

/// A window-target or task `Targets` list, checked for what ssmd resolves: `WindowTargetIds`,
/// `InstanceIds`, `tag:<key>` and `tag-key` (resource groups are refused by name).
pub(crate) fn check_target_keys(targets: &[Target], window_target_ids: bool) -> Result<(), ApiError> {
    for t in targets {
        let key = t.key.as_deref().unwrap_or_default();
        let values = t.values.as_deref().unwrap_or_default();
        if values.is_empty() {
            return Err(validation(format!("The target with key {key} must have at least one value.")));
        }
        let ok = crate::targets::node_key(key) || (window_target_ids && key == "WindowTargetIds");
        if !ok {
            let keys = if window_target_ids {
                "WindowTargetIds, InstanceIds, tag:<key> or tag-key"
            } else {
                "InstanceIds, tag:<key> or tag-key"
            };
            return Err(validation(format!(
                "Target key {key} is not supported by ssmd: use {keys} (resource groups are not supported)."
            )));
        }
    }
    Ok(())
}

/// Parses an ISO 8601 filter time (`ScheduledBefore`, `ExecutedAfter`…).
pub(crate) fn filter_time(key: &str, values: &[String]) -> Result<i64, ApiError> {
    let [v] = values else {
        return Err(validation(format!("The filter {key} takes exactly one value, an ISO 8601 time.")));
    };
    parse_date_time(v).map_err(|e| validation(format!("The filter {key} value is not valid: {e}")))
}

/// A page of a list read whole (a window's targets or tasks, an execution's tasks, a task's
/// invocations: at most a few hundred): the offset a token resumes at, and the next token.
pub(crate) fn offset_page<T>(
    svc: &Service,
    caller: &Caller,
    op: &str,
    items: Vec<T>,
    token: Option<&str>,
    max: Option<i32>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let from = svc.window_token(caller, op, token)?.and_then(|p| p.get("o")?.as_u64()).unwrap_or(0) as usize;
    let size = crate::pagination::page_size(max, 50) as usize;
    let total = items.len();
    let items: Vec<T> = items.into_iter().skip(from).take(size).collect();
    let next = (from + size < total).then(|| svc.issue_token(caller, op, serde_json::json!({"o": from + size})));
    Ok((items, next))
}
