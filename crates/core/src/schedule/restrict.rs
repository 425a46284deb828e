//! What each capability accepts beyond the grammar. The grammar (`parse.rs`) is SSM's for every
//! caller; State Manager associations accept only some cadences (spec §5.1), and maintenance
//! windows have a 5-minute floor (spec §4.1: "cron expressions that lead to rates faster than 5
//! minutes aren't supported"; ssmd applies it to rate() too). Callers run the check of their
//! capability after parsing; the error messages say which rule was broken.

use super::cron::{Cron, DaySpec, FIRST_YEAR, LAST_YEAR, span};
use super::error::ScheduleError;
use super::parse::{Expr, Schedule};

/// The shortest interval between two runs of a maintenance window, in seconds.
pub const WINDOW_MIN_INTERVAL_SECONDS: i64 = 300;
/// The shortest rate of an association, in minutes.
pub const ASSOCIATION_MIN_RATE_MINUTES: i64 = 30;
/// Association rates must be shorter than this many days.
pub const ASSOCIATION_RATE_LIMIT_DAYS: i64 = 31;

/// Checks a schedule for a maintenance window: runs at least 5 minutes apart. A rate must be
/// 5 minutes or more; a cron expression may not name two times of the same hour (or of two
/// consecutive hours) closer than 5 minutes.
pub fn check_window(schedule: &Schedule) -> Result<(), ScheduleError> {
    let refuse = |problem: String| ScheduleError::NotForWindow { expr: schedule.as_str().to_string(), problem };
    match &schedule.expr {
        Expr::Rate(rate) if rate.interval_ms() < WINDOW_MIN_INTERVAL_SECONDS * 1000 => {
            Err(refuse("maintenance windows run at most every 5 minutes, so a rate must be 5 minutes or more".into()))
        }
        Expr::Cron(cron) => match shortest_gap_seconds(cron) {
            Some(gap) if gap < WINDOW_MIN_INTERVAL_SECONDS => Err(refuse(format!(
                "it names runs {} apart, and maintenance windows run at most every 5 minutes",
                describe_seconds(gap)
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The shortest gap between two runs named by the time fields, in seconds (`None` for one run
/// a day). Days are not looked at: two consecutive hours count as adjacent, 23 and 0 too.
fn shortest_gap_seconds(cron: &Cron) -> Option<i64> {
    let mut positions = Vec::new();
    for minute in 0..60 {
        if cron.minutes & (1 << minute) == 0 {
            continue;
        }
        for second in 0..60 {
            if cron.seconds & (1 << second) != 0 {
                positions.push(i64::from(minute * 60 + second));
            }
        }
    }
    let mut gap = positions.windows(2).map(|w| w[1] - w[0]).min();
    let adjacent_hours = (0..24).any(|h| cron.hours & (1 << h) != 0 && cron.hours & (1 << ((h + 1) % 24)) != 0);
    if adjacent_hours && let (Some(first), Some(last)) = (positions.first(), positions.last()) {
        let wrap = first + 3600 - last;
        gap = Some(gap.map_or(wrap, |g| g.min(wrap)));
    }
    gap
}

fn describe_seconds(seconds: i64) -> String {
    match seconds {
        1 => "1 second".into(),
        s if s % 60 == 0 && s / 60 == 1 => "1 minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Checks a schedule for a State Manager association (spec §5.1): a rate of at least 30
/// minutes and under 31 days; a cron expression with seconds (if any) `0`, month and year `*`
/// (or anything naming every month and year), and one of the supported cadences: every 30
/// minutes; every 1, 2, 4, 8 or 12 hours; daily; weekly on one day; the n-th weekday of the
/// month (`TUE#3`); the last weekday of the month (`3L`). at() is accepted.
pub fn check_association(schedule: &Schedule) -> Result<(), ScheduleError> {
    let refuse = |problem: &str| ScheduleError::NotForAssociation {
        expr: schedule.as_str().to_string(),
        problem: problem.to_string(),
    };
    match &schedule.expr {
        Expr::At(_) => Ok(()),
        Expr::Rate(rate) => {
            let interval = rate.interval_ms();
            if interval < ASSOCIATION_MIN_RATE_MINUTES * 60_000 {
                Err(refuse("a rate must be at least 30 minutes"))
            } else if interval >= ASSOCIATION_RATE_LIMIT_DAYS * 86_400_000 {
                Err(refuse("a rate must be less than 31 days"))
            } else {
                Ok(())
            }
        }
        Expr::Cron(cron) => {
            if cron.has_seconds && cron.seconds != 1 {
                return Err(refuse("the seconds field must be 0"));
            }
            if cron.months != span(1, 12) {
                return Err(refuse("a specific month is not supported; the month field must be *"));
            }
            let all_years =
                (0..=i32::from(LAST_YEAR - FIRST_YEAR)).all(|i| cron.years[(i / 64) as usize] & (1 << (i % 64)) != 0);
            if !all_years {
                return Err(refuse("a specific year is not supported; the year field must be *"));
            }
            if supported_cadence(cron) {
                Ok(())
            } else {
                Err(refuse(
                    "associations support only these cadences: every 30 minutes; every 1, 2, 4, 8 or 12 hours; daily; weekly on one day; the n-th weekday of the month (like TUE#3); the last weekday of the month (like 3L)",
                ))
            }
        }
    }
}

fn supported_cadence(cron: &Cron) -> bool {
    let every_day = matches!(cron.days, DaySpec::MonthDays(d) if d == span(1, 31))
        || matches!(cron.days, DaySpec::Weekdays(d) if d == span(1, 7));
    let one_minute = cron.minutes.count_ones() == 1;
    let one_hour = cron.hours.count_ones() == 1;
    let all_hours = span(0, 23);
    // Every 30 minutes: minutes m and m + 30, every hour of every day.
    let first_minute = cron.minutes.trailing_zeros();
    if cron.minutes.count_ones() == 2
        && first_minute < 30
        && cron.minutes == (1 << first_minute) | (1 << (first_minute + 30))
    {
        return cron.hours == all_hours && every_day;
    }
    if !one_minute {
        return false;
    }
    // Every n hours: h0, h0 + n, ... covering the whole day.
    if !one_hour {
        let start = cron.hours.trailing_zeros();
        let every = [1u32, 2, 4, 8, 12]
            .into_iter()
            .any(|n| start < n && cron.hours == (0..24 / n).fold(0u64, |mask, k| mask | (1 << (start + k * n))));
        return every && every_day;
    }
    match cron.days {
        _ if every_day => true,
        DaySpec::Weekdays(d) => d.count_ones() == 1,
        DaySpec::Nth(..) | DaySpec::LastOf(_) => true,
        _ => false,
    }
}
