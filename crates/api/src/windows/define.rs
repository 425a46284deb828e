//! CreateMaintenanceWindow, UpdateMaintenanceWindow (partial, or whole with `Replace`),
//! GetMaintenanceWindow, DescribeMaintenanceWindows and DeleteMaintenanceWindow, and the
//! `NextExecutionTime` they report (spec §4.3).
//!
//! A window's schedule is checked in full when it is set; the row and its next fire job are
//! written in one transaction, so a schedule change re-plans the next fire at once.

use super::*;
use crate::pagination::page_size;
use crate::tags;
use serde_json::json;
use ssmd_core::schedule::{Precision, ScheduleKind, date_time_offset, format_at_offset, format_in_zone, format_utc};
use ssmd_store::StoreError;

/// How a window writes its times: in its zone when it has one, else at its StartDate's offset
/// when it has one, else in UTC; cron runs to the minute (to the second with a seconds field),
/// rate runs to the millisecond when they count from the creation time, to the second when
/// they count from a StartDate.
pub(crate) fn render_time(w: &Window, table: &Timetable, ms: i64) -> String {
    let kind = Schedule::parse(&w.spec.schedule).map(|s| s.kind()).unwrap_or(ScheduleKind::Cron);
    let start_ms = w.spec.start_date.as_deref().and_then(|d| parse_date_time(d).ok());
    let precision = match kind {
        ScheduleKind::Cron | ScheduleKind::At if ms % 60_000 == 0 => Precision::Minute,
        ScheduleKind::Cron | ScheduleKind::At => Precision::Second,
        ScheduleKind::Rate if start_ms.is_some_and(|s| s > w.row.anchor_ms) => Precision::Second,
        ScheduleKind::Rate => Precision::Millisecond,
    };
    if w.spec.timezone.is_some() {
        format_in_zone(ms, table.zone(), precision)
    } else if let Some(offset) = w.spec.start_date.as_deref().and_then(date_time_offset) {
        format_at_offset(ms, offset, precision)
    } else {
        format_utc(ms, precision)
    }
}

/// The window's next run after `now`, as SSM writes it; `None` when it is disabled, past its
/// end date, or an at() in the past.
pub(crate) fn next_execution_time(w: &Window, now_ms: i64) -> Option<String> {
    if !w.row.enabled {
        return None;
    }
    let table = w.spec.timetable(w.row.anchor_ms).ok()?;
    let next = table.next_after(now_ms)?;
    Some(render_time(w, &table, next))
}

pub(crate) async fn create(
    svc: &Service,
    caller: &Caller,
    i: CreateMaintenanceWindowRequest,
) -> Result<CreateMaintenanceWindowResult, ApiError> {
    let spec = WindowSpec {
        description: i.description,
        start_date: i.start_date,
        end_date: i.end_date,
        schedule: i.schedule,
        timezone: i.schedule_timezone,
        offset: i.schedule_offset,
        duration: i.duration,
        cutoff: i.cutoff,
        allow_unassociated_targets: i.allow_unassociated_targets,
    };
    let now = svc.now_ms();
    let table = spec.check(now)?;
    let tag_list = i.tags.unwrap_or_default();
    tags::check_new(&tag_list)?;
    let id = ssmd_core::ids::prefixed_hex("mw-", 17);
    let row = WindowRow {
        id: id.clone(),
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: i.name,
        enabled: true,
        spec: to_json(&spec),
        revision: 1,
        anchor_ms: now,
        created_ms: now,
        modified_ms: now,
    };
    let rows: Vec<ssmd_store::Tag> =
        tag_list.iter().map(|t| ssmd_store::Tag { key: t.key.clone(), value: t.value.clone() }).collect();
    let limit = svc.windows.max_windows;
    match svc.store.insert_window(&row, &rows, table.next_after(now), limit).await {
        Ok(()) => Ok(CreateMaintenanceWindowResult { window_id: Some(id) }),
        Err(StoreError::Conflict) => Err(ApiError::new(
            ErrorCode::ResourceLimitExceededException,
            format!("This account and Region already hold {limit} maintenance windows, the most ssmd allows."),
        )),
        Err(e) => Err(store_error(e)),
    }
}

/// The fields `Replace` requires, as CreateMaintenanceWindow does.
fn require(present: bool, member: &str) -> Result<(), ApiError> {
    if present {
        Ok(())
    } else {
        Err(validation(format!("{member} is required when Replace is true: Replace sets every field of the window.")))
    }
}

pub(crate) async fn update(
    svc: &Service,
    caller: &Caller,
    i: UpdateMaintenanceWindowRequest,
) -> Result<UpdateMaintenanceWindowResult, ApiError> {
    let replace = i.replace == Some(true);
    if replace {
        require(i.name.is_some(), "Name")?;
        require(i.schedule.is_some(), "Schedule")?;
        require(i.duration.is_some(), "Duration")?;
        require(i.cutoff.is_some(), "Cutoff")?;
        require(i.allow_unassociated_targets.is_some(), "AllowUnassociatedTargets")?;
    }
    // A concurrent update moves the revision: read again and re-apply.
    for _ in 0..5 {
        let w = svc.own_window(caller, &i.window_id).await?;
        let old = &w.spec;
        let keep = |new: &Option<String>, old: &Option<String>| {
            if replace { new.clone() } else { new.clone().or(old.clone()) }
        };
        let spec = WindowSpec {
            description: keep(&i.description, &old.description),
            start_date: keep(&i.start_date, &old.start_date),
            end_date: keep(&i.end_date, &old.end_date),
            schedule: i.schedule.clone().unwrap_or(old.schedule.clone()),
            timezone: keep(&i.schedule_timezone, &old.timezone),
            offset: if replace { i.schedule_offset } else { i.schedule_offset.or(old.offset) },
            duration: i.duration.unwrap_or(old.duration),
            cutoff: i.cutoff.unwrap_or(old.cutoff),
            allow_unassociated_targets: i.allow_unassociated_targets.unwrap_or(old.allow_unassociated_targets),
        };
        let enabled = if replace { i.enabled.unwrap_or(true) } else { i.enabled.unwrap_or(w.row.enabled) };
        let now = svc.now_ms();
        // A new schedule (or one switched back on) counts from now: rate runs anchor here.
        let rescheduled = spec.schedule != old.schedule
            || spec.timezone != old.timezone
            || spec.start_date != old.start_date
            || spec.end_date != old.end_date
            || spec.offset != old.offset
            || (enabled && !w.row.enabled);
        let anchor_ms = if rescheduled { now } else { w.row.anchor_ms };
        let table = spec.check(anchor_ms)?;
        let row = WindowRow {
            name: i.name.clone().unwrap_or(w.row.name.clone()),
            enabled,
            spec: to_json(&spec),
            revision: w.row.revision + 1,
            anchor_ms,
            modified_ms: now,
            ..w.row.clone()
        };
        let next = if enabled { table.next_after(now) } else { None };
        match svc.store.update_window(&row, next).await {
            Ok(()) => {
                return Ok(UpdateMaintenanceWindowResult {
                    window_id: Some(row.id),
                    name: Some(row.name),
                    description: spec.description,
                    start_date: spec.start_date,
                    end_date: spec.end_date,
                    schedule: Some(spec.schedule),
                    schedule_timezone: spec.timezone,
                    schedule_offset: spec.offset,
                    duration: Some(spec.duration),
                    cutoff: Some(spec.cutoff),
                    allow_unassociated_targets: Some(spec.allow_unassociated_targets),
                    enabled: Some(enabled),
                });
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(store_error(e)),
        }
    }
    Err(ApiError::internal_with(
        "The maintenance window is being changed by other requests. Retry the request.",
        "update_window kept conflicting".to_string(),
    ))
}

pub(crate) async fn get(
    svc: &Service,
    caller: &Caller,
    i: GetMaintenanceWindowRequest,
) -> Result<GetMaintenanceWindowResult, ApiError> {
    let w = svc.own_window(caller, &i.window_id).await?;
    let next = next_execution_time(&w, svc.now_ms());
    let (row, spec) = (w.row, w.spec);
    Ok(GetMaintenanceWindowResult {
        window_id: Some(row.id),
        name: Some(row.name),
        description: spec.description,
        start_date: spec.start_date,
        end_date: spec.end_date,
        schedule: Some(spec.schedule),
        schedule_timezone: spec.timezone,
        schedule_offset: spec.offset,
        next_execution_time: next,
        duration: Some(spec.duration),
        cutoff: Some(spec.cutoff),
        allow_unassociated_targets: Some(spec.allow_unassociated_targets),
        enabled: Some(row.enabled),
        created_date: Some(seconds(row.created_ms)),
        modified_date: Some(seconds(row.modified_ms)),
    })
}

/// One window as DescribeMaintenanceWindows lists it.
fn identity(w: Window, now_ms: i64) -> MaintenanceWindowIdentity {
    let next = next_execution_time(&w, now_ms);
    let (row, spec) = (w.row, w.spec);
    MaintenanceWindowIdentity {
        window_id: Some(row.id),
        name: Some(row.name),
        description: spec.description,
        enabled: Some(row.enabled),
        duration: Some(spec.duration),
        cutoff: Some(spec.cutoff),
        schedule: Some(spec.schedule),
        schedule_timezone: spec.timezone,
        schedule_offset: spec.offset,
        end_date: spec.end_date,
        start_date: spec.start_date,
        next_execution_time: next,
    }
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeMaintenanceWindowsRequest,
) -> Result<DescribeMaintenanceWindowsResult, ApiError> {
    let op = "DescribeMaintenanceWindows";
    let mut prefixes = Vec::new();
    let mut enabled = None;
    for f in i.filters.iter().flatten() {
        let (key, values) = filter_values(f);
        match key {
            "Name" => prefixes.extend(values.iter().cloned()),
            "Enabled" => {
                for v in values {
                    let e = match v.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(validation(format!(
                                "The Enabled filter value {v} is not valid; use true or false."
                            )));
                        }
                    };
                    if enabled.is_some_and(|was| was != e) {
                        return Ok(DescribeMaintenanceWindowsResult {
                            window_identities: Some(vec![]),
                            next_token: None,
                        });
                    }
                    enabled = Some(e);
                }
            }
            other => return Err(bad_filter_key(other, &["Name", "Enabled"])),
        }
    }
    let after = svc.window_token(caller, op, i.next_token.as_deref())?;
    let after = after.as_ref().and_then(|p| Some((p.get("n")?.as_str()?, p.get("i")?.as_str()?)));
    let size = page_size(i.max_results, 10);
    let mut rows = svc
        .store
        .windows_page(&caller.account, &caller.region, &prefixes, enabled, after, size + 1)
        .await
        .map_err(store_error)?;
    let more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let next_token = match rows.last() {
        Some(last) if more => Some(svc.issue_token(caller, op, json!({"n": last.name, "i": last.id}))),
        _ => None,
    };
    let now = svc.now_ms();
    let windows = rows.into_iter().map(|r| Window::read(r).map(|w| identity(w, now))).collect::<Result<_, _>>()?;
    Ok(DescribeMaintenanceWindowsResult { window_identities: Some(windows), next_token })
}

pub(crate) async fn delete(
    svc: &Service,
    caller: &Caller,
    i: DeleteMaintenanceWindowRequest,
) -> Result<DeleteMaintenanceWindowResult, ApiError> {
    // The model lists no DoesNotExistException here: deleting what is not there succeeds.
    svc.store.delete_window(&caller.account, &caller.region, &i.window_id).await.map_err(store_error)?;
    Ok(DeleteMaintenanceWindowResult { window_id: Some(i.window_id) })
}
