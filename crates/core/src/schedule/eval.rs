//! Evaluation: a [`Schedule`] with its options (time zone, start and end dates, offset) and the
//! time it was set becomes a [`Timetable`], which answers "when is the next run after this
//! instant" and lists runs in order. All instants are epoch milliseconds. The rules are spec
//! §4.3's; the daylight-saving rule is in the module documentation of `schedule`.

use std::sync::OnceLock;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{Span, Timestamp};

use super::cron::Cron;
use super::error::ScheduleError;
use super::format::{Precision, format_utc};
use super::parse::{Expr, Schedule};

/// The time zone database: jiff's bundled copy, never the host's, so that every machine (and
/// every replica) computes the same runs.
fn database() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// An IANA time zone.
#[derive(Debug, Clone)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl Zone {
    /// UTC, the default zone of every schedule.
    pub fn utc() -> Zone {
        Zone { tz: TimeZone::UTC, name: "UTC".to_string() }
    }

    /// Looks up an IANA time zone id (`America/Los_Angeles`, `UTC`, `Etc/UTC`, `Asia/Seoul`;
    /// case-insensitive) in the bundled database.
    pub fn parse(name: &str) -> Result<Zone, ScheduleError> {
        let unknown = || ScheduleError::UnknownTimeZone { zone: name.to_string() };
        // Only names of the database: no POSIX TZ strings, no fixed offsets such as +05:00.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b)) {
            return Err(unknown());
        }
        let tz = database().get(name).map_err(|_| unknown())?;
        Ok(Zone { tz, name: name.to_string() })
    }

    /// The id as it was given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is UTC itself (not merely a zone at offset zero, like London in winter).
    pub fn is_utc(&self) -> bool {
        self.tz == TimeZone::UTC || self.tz.iana_name().is_some_and(|n| matches!(n, "UTC" | "Etc/UTC"))
    }

    /// The offset from UTC at an instant, in seconds.
    pub fn offset_seconds_at(&self, ms: i64) -> i32 {
        self.tz.to_offset(timestamp(ms)).seconds()
    }

    pub(crate) fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.tz == other.tz
    }
}

/// The options a schedule is evaluated with, as the API gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// The IANA time zone cron and at() expressions are read in; `None` is UTC.
    pub timezone: Option<String>,
    /// No run before this instant (epoch ms); it also anchors rate schedules (spec §4.3).
    pub start_ms: Option<i64>,
    /// No run after this instant (epoch ms).
    pub end_ms: Option<i64>,
    /// Days to move each cron run forward (1 to 6; cron only).
    pub offset_days: Option<i64>,
}

/// A schedule ready to evaluate: the expression, its checked options and the instant it was
/// set (created or last updated).
#[derive(Debug, Clone)]
pub struct Timetable {
    expr: Expr,
    zone: Zone,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    offset_days: i8,
    /// Runs come from cron matches after this instant: max(set time, start).
    anchor_ms: i64,
    /// The anchor's local time: no match before it can be after the anchor.
    anchor_floor: DateTime,
    /// Two days past `anchor_floor`: every match from here on is after the anchor, whatever
    /// the zone's offset changes (the largest ever was a day).
    anchor_clear: DateTime,
    /// rate(): the first run.
    rate_first_ms: i64,
    /// at(): the run, resolved in the zone.
    at_ms: i64,
}

/// Milliseconds to a jiff instant, clamped to jiff's range (years -9999 to 9999).
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

impl Timetable {
    /// Checks the options against the schedule: a known time zone, an offset of 1 to 6 days and
    /// only with cron, an end after the start, and an at() time that exists in its zone.
    /// `set_at_ms` is when the schedule was created or last updated: rate runs count from it
    /// (unless the start date was later), and cron runs whose match falls before it are never
    /// used.
    pub fn new(schedule: &Schedule, options: &ScheduleOptions, set_at_ms: i64) -> Result<Timetable, ScheduleError> {
        let zone = match &options.timezone {
            Some(name) => Zone::parse(name)?,
            None => Zone::utc(),
        };
        let offset_days = match options.offset_days {
            None => 0,
            Some(offset) if !(1..=6).contains(&offset) => return Err(ScheduleError::OffsetRange { offset }),
            Some(offset) if matches!(schedule.expr, Expr::Cron(_)) => offset as i8,
            Some(_) => return Err(ScheduleError::OffsetNeedsCron { expr: schedule.as_str().to_string() }),
        };
        if let (Some(start), Some(end)) = (options.start_ms, options.end_ms)
            && end <= start
        {
            return Err(ScheduleError::EndBeforeStart {
                start: format_utc(start, Precision::Second),
                end: format_utc(end, Precision::Second),
            });
        }
        let anchor_ms = options.start_ms.map_or(set_at_ms, |start| start.max(set_at_ms));
        let mut table = Timetable {
            expr: schedule.expr.clone(),
            zone,
            start_ms: options.start_ms,
            end_ms: options.end_ms,
            offset_days,
            anchor_ms,
            anchor_floor: DateTime::MIN,
            anchor_clear: DateTime::MIN,
            rate_first_ms: 0,
            at_ms: 0,
        };
        table.anchor_floor = table.local_floor(anchor_ms);
        table.anchor_clear = table.anchor_floor.saturating_add(Span::new().days(2));
        match &schedule.expr {
            Expr::Rate(rate) => {
                // A start date still ahead when the schedule is set anchors the runs (k >= 0);
                // otherwise they count from the set time itself (k >= 1).
                table.rate_first_ms = match options.start_ms {
                    Some(start) if start > set_at_ms => start,
                    _ => set_at_ms.saturating_add(rate.interval_ms()),
                };
            }
            Expr::At(local) => {
                // Past the zone's range only; then it never runs.
                table.at_ms = table.resolve(*local).unwrap_or(i64::MAX);
            }
            Expr::Cron(_) => {}
        }
        Ok(table)
    }

    /// The zone cron and at() expressions are read in.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The first run strictly after `after_ms`, or `None` when there is none (an at() in the
    /// past, past the end date, or no match before the end of 2199).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.expr {
            Expr::Cron(cron) => self.cron_next(cron, after_ms).map(|(ms, _)| ms),
            Expr::Rate(rate) => {
                let (first, interval) = (i128::from(self.rate_first_ms), i128::from(rate.interval_ms()));
                let after = i128::from(after_ms);
                let next = if after < first { first } else { first + ((after - first) / interval + 1) * interval };
                let next = i64::try_from(next).ok()?;
                self.within_end(next)
            }
            Expr::At(_) => {
                let starts = self.start_ms.is_none_or(|start| self.at_ms >= start);
                (self.at_ms > after_ms && starts).then_some(self.at_ms).and_then(|ms| self.within_end(ms))
            }
        }
    }

    /// The runs strictly after `after_ms`, in order, to the end date (or the end of 2199). For
    /// DescribeMaintenanceWindowSchedule and the like: take as many as a page needs.
    pub fn occurrences(&self, after_ms: i64) -> Occurrences<'_> {
        Occurrences { table: self, state: State::Start(after_ms), last: i64::MIN }
    }

    /// The runs in `after_ms < t <= until_ms`, in order.
    pub fn occurrences_until(&self, after_ms: i64, until_ms: i64) -> impl Iterator<Item = i64> + '_ {
        self.occurrences(after_ms).take_while(move |&t| t <= until_ms)
    }

    fn within_end(&self, ms: i64) -> Option<i64> {
        self.end_ms.is_none_or(|end| ms <= end).then_some(ms)
    }

    /// A local time in the zone, by the daylight-saving rule: a time the clocks skip happens at
    /// the first instant after the gap (the moment the clocks jump); a time that happens twice
    /// happens once, at the earlier instant.
    fn resolve(&self, local: DateTime) -> Option<i64> {
        let tz = self.zone.tz();
        let ambiguous = tz.to_ambiguous_timestamp(local);
        match ambiguous.offset() {
            AmbiguousOffset::Gap { before, .. } => {
                // Read with the offset before the jump, the time lands at or after it: the jump
                // is the last transition up to that instant (`preceding` is strictly before, so
                // look from a millisecond later: the first time of the gap is the jump itself).
                let past = before.to_timestamp(local).ok()?.checked_add(jiff::SignedDuration::from_millis(1)).ok()?;
                tz.preceding(past).next().map(|t| t.timestamp().as_millisecond())
            }
            _ => ambiguous.earlier().ok().map(|t| t.as_millisecond()),
        }
    }

    /// The instant a cron match counts from for the "skip this period" rule: like [`resolve`],
    /// except that a time the clocks skip reads as the instant it would be after the jump
    /// (jiff's "compatible" reading). Which instant a skipped match gets can't change the
    /// outcome: the search starts at the anchor's own local time, which is never inside a gap,
    /// so a skipped match it reaches lies ahead of the anchor either way.
    fn base_instant(&self, local: DateTime) -> Option<i64> {
        self.zone.tz().to_ambiguous_timestamp(local).compatible().ok().map(|t| t.as_millisecond())
    }

    /// The earliest local time (whole seconds) that can resolve to an instant after `ms`: the
    /// local time of `ms` itself, except in the second pass of a repeated hour, whose local
    /// times resolve to their first pass and so are all before `ms`: then the end of the
    /// repeated hour.
    fn local_floor(&self, ms: i64) -> DateTime {
        let at = timestamp(ms);
        let tz = self.zone.tz();
        let local = tz.to_datetime(at);
        let local = match tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Fold { before, .. } => {
                // The first pass of `local` is before the change, the change at or before `at`.
                let first_pass = before.to_timestamp(local).unwrap_or(at);
                let change = tz.following(first_pass).next().map_or(at, |t| t.timestamp());
                before.to_datetime(at.min(change))
            }
            _ => local,
        };
        local.with().subsec_nanosecond(0).build().unwrap_or(local)
    }

    /// The first cron run after `after_ms`, with the cron match (local) it comes from.
    fn cron_next(&self, cron: &Cron, after_ms: i64) -> Option<(i64, DateTime)> {
        let shift = Span::new().days(self.offset_days);
        let from_run = self.local_floor(after_ms).saturating_sub(shift);
        let mut from = from_run.max(self.anchor_floor);
        loop {
            let base = cron.next_local(from)?;
            from = base.checked_add(Span::new().seconds(1)).ok()?;
            // The "skip this period" rule: a match at or before the anchor is never used, even
            // when its offset run would still be ahead.
            if base < self.anchor_clear && self.base_instant(base)? <= self.anchor_ms {
                continue;
            }
            let local = if self.offset_days == 0 { base } else { base.checked_add(shift).ok()? };
            // Several times in one gap (and the first time after it) are one run: only a run
            // after `after_ms` is the next one.
            match self.resolve(local) {
                Some(ms) if ms > after_ms => return self.within_end(ms).map(|ms| (ms, base)),
                Some(_) => {}
                None => return None,
            }
        }
    }
}

/// The runs of a [`Timetable`] after an instant, in order (strictly increasing: the times of a
/// daylight-saving gap and the first time after it are one run).
#[derive(Debug, Clone)]
pub struct Occurrences<'a> {
    table: &'a Timetable,
    state: State,
    /// The last run given.
    last: i64,
}

#[derive(Debug, Clone)]
enum State {
    Start(i64),
    After(i64),
    Cron(CronCursor),
    Done,
}

/// Where a cron enumeration stands: the date of the last match and its time of day, and how
/// the run date's local times map to instants.
#[derive(Debug, Clone)]
struct CronCursor {
    base_date: Date,
    time: (i32, i32, i32),
    /// The instant of the run date's midnight, when the whole run date has one offset (then a
    /// run is midnight plus its time of day, no time zone lookup needed).
    day_start_ms: Option<i64>,
    /// The first time zone transition at or after the run date's midnight (cache).
    next_transition_ms: i64,
}

impl Iterator for Occurrences<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        loop {
            let next = self.step()?;
            if next > self.last {
                self.last = next;
                return Some(next);
            }
        }
    }
}

impl Occurrences<'_> {
    /// The next run of the enumeration, which may repeat the last (a gap's times).
    fn step(&mut self) -> Option<i64> {
        let table = self.table;
        match &mut self.state {
            State::Done => None,
            State::Start(after) => {
                let after = *after;
                let Expr::Cron(cron) = &table.expr else {
                    let next = table.next_after(after);
                    self.state = next.map_or(State::Done, State::After);
                    return next;
                };
                let Some((ms, base)) = table.cron_next(cron, after) else {
                    self.state = State::Done;
                    return None;
                };
                let mut cursor = CronCursor {
                    base_date: base.date(),
                    time: (i32::from(base.hour()), i32::from(base.minute()), i32::from(base.second())),
                    day_start_ms: None,
                    next_transition_ms: i64::MIN,
                };
                cursor.enter_day(table);
                self.state = State::Cron(cursor);
                Some(ms)
            }
            State::After(last) => {
                let next = table.next_after(*last);
                self.state = next.map_or(State::Done, State::After);
                next
            }
            State::Cron(cursor) => {
                let Expr::Cron(cron) = &table.expr else { unreachable!("a cron cursor belongs to a cron schedule") };
                let next = cursor.advance(table, cron);
                if next.is_none() {
                    self.state = State::Done;
                }
                next
            }
        }
    }
}

impl CronCursor {
    /// The run date of the current match.
    fn run_date(&self, table: &Timetable) -> Option<Date> {
        if table.offset_days == 0 {
            return Some(self.base_date);
        }
        self.base_date.checked_add(Span::new().days(table.offset_days)).ok()
    }

    /// Works out how the run date's local times map to instants.
    fn enter_day(&mut self, table: &Timetable) {
        self.day_start_ms = None;
        let Some(date) = self.run_date(table) else { return };
        let midnight = date.to_datetime(Time::midnight());
        let tz = table.zone.tz();
        let AmbiguousOffset::Unambiguous { offset } = tz.to_ambiguous_timestamp(midnight).offset() else { return };
        let Ok(start) = offset.to_timestamp(midnight) else { return };
        let start_ms = start.as_millisecond();
        if self.next_transition_ms < start_ms {
            // Transitions strictly after one second before midnight: one at midnight counts.
            let probe = timestamp(start_ms - 1000);
            self.next_transition_ms = tz.following(probe).next().map_or(i64::MAX, |t| t.timestamp().as_millisecond());
        }
        if self.next_transition_ms >= start_ms + 86_400_000 {
            self.day_start_ms = Some(start_ms);
        }
    }

    fn advance(&mut self, table: &Timetable, cron: &Cron) -> Option<i64> {
        let (h, m, s) = self.time;
        match cron.next_time(h, m, s + 1) {
            Some(time) => self.time = time,
            None => {
                self.base_date = cron.next_day_after(self.base_date)?;
                self.time = cron.first_time();
                self.enter_day(table);
            }
        }
        let (h, m, s) = self.time;
        let ms = match self.day_start_ms {
            Some(start) => start + i64::from(h * 3600 + m * 60 + s) * 1000,
            None => {
                let date = self.run_date(table)?;
                let local = date.to_datetime(Time::new(h as i8, m as i8, s as i8, 0).ok()?);
                table.resolve(local)?
            }
        };
        table.within_end(ms)
    }
}
