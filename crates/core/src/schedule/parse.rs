//! The three expression forms (spec §4.1): `cron(...)`, `rate(N unit)` and
//! `at(yyyy-MM-ddTHH:mm:ss)`, 1 to 256 characters, and nothing before or after them.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;

use super::cron::{self, Cron, FIRST_YEAR, LAST_YEAR};
use super::error::{MAX_EXPRESSION_CHARS, ScheduleError};

/// A schedule expression, parsed and checked. It keeps its text as given, to echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    pub(crate) expr: Expr,
}

/// What a [`Schedule`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Cron(Cron),
    Rate(Rate),
    /// A wall-clock time in the schedule's time zone.
    At(DateTime),
}

/// Which of the three forms a schedule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    /// `cron(...)`: calendar matches in the schedule's time zone.
    Cron,
    /// `rate(N unit)`: a fixed interval from an anchor.
    Rate,
    /// `at(...)`: once.
    At,
}

/// The unit of a `rate(...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds: a rate in days is a fixed interval, not a calendar day, so a day with a
    /// daylight-saving change moves the wall-clock time of the runs (as EventBridge Scheduler
    /// documents for its rate schedules).
    Day,
}

/// A `rate(N unit)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// N, at least 1.
    pub value: u32,
    /// The unit.
    pub unit: RateUnit,
}

impl Rate {
    /// The interval in milliseconds.
    pub fn interval_ms(self) -> i64 {
        let unit_ms = match self.unit {
            RateUnit::Minute => 60_000,
            RateUnit::Hour => 3_600_000,
            RateUnit::Day => 86_400_000,
        };
        i64::from(self.value) * unit_ms
    }
}

impl Schedule {
    /// Parses a schedule expression, exactly SSM's grammar (see the module documentation).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let chars = text.chars().count();
        if chars == 0 {
            return Err(ScheduleError::Empty);
        }
        if chars > MAX_EXPRESSION_CHARS {
            return Err(ScheduleError::TooLong { chars });
        }
        let expr = text.to_string();
        let inner = |prefix: &str| text.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(')'));
        let parsed = if let Some(body) = inner("cron(") {
            Expr::Cron(parse_cron(&expr, body)?)
        } else if let Some(body) = inner("rate(") {
            Expr::Rate(parse_rate(&expr, body)?)
        } else if let Some(body) = inner("at(") {
            Expr::At(parse_at(&expr, body)?)
        } else {
            return Err(ScheduleError::UnknownForm { expr });
        };
        Ok(Schedule { text: expr, expr: parsed })
    }

    /// The expression as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Which form it is.
    pub fn kind(&self) -> ScheduleKind {
        match self.expr {
            Expr::Cron(_) => ScheduleKind::Cron,
            Expr::Rate(_) => ScheduleKind::Rate,
            Expr::At(_) => ScheduleKind::At,
        }
    }

    /// The rate, for a `rate(...)` expression.
    pub fn rate(&self) -> Option<Rate> {
        match self.expr {
            Expr::Rate(rate) => Some(rate),
            _ => None,
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(text: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse(text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_cron(expr: &str, body: &str) -> Result<Cron, ScheduleError> {
    if body.contains(['(', ')']) {
        return Err(ScheduleError::UnknownForm { expr: expr.to_string() });
    }
    let fields: Vec<&str> = body.split_ascii_whitespace().collect();
    if !(6..=7).contains(&fields.len()) {
        return Err(ScheduleError::FieldCount { expr: expr.to_string(), count: fields.len() });
    }
    cron::parse_fields(&fields).map_err(|e| match e {
        Ok((field, value, problem)) => ScheduleError::Field { expr: expr.to_string(), field, value, problem },
        Err(both) => ScheduleError::DayFields { expr: expr.to_string(), both },
    })
}

fn parse_rate(expr: &str, body: &str) -> Result<Rate, ScheduleError> {
    let bad = |problem: String| ScheduleError::Rate { expr: expr.to_string(), problem };
    let parts: Vec<&str> = body.split_ascii_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(bad(
            "rate(...) takes a whole number and a unit (minute, minutes, hour, hours, day or days), like rate(5 minutes)"
                .into(),
        ));
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("\"{value}\" is not a positive whole number")));
    }
    let Ok(value) = value.parse::<u32>() else {
        return Err(bad(format!("{value} is too large")));
    };
    if value == 0 {
        return Err(bad("the value must be at least 1".into()));
    }
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        other => {
            return Err(bad(format!(
                "\"{other}\" is not a unit; use minute, hour or day for 1, and minutes, hours or days otherwise"
            )));
        }
    };
    let singular = match unit {
        RateUnit::Minute => "minute",
        RateUnit::Hour => "hour",
        RateUnit::Day => "day",
    };
    match (value == 1, plural) {
        (true, true) => Err(bad(format!("with the value 1 the unit is singular: rate(1 {singular})"))),
        (false, false) => Err(bad(format!("with a value other than 1 the unit is plural: rate({value} {singular}s)"))),
        _ => Ok(Rate { value, unit }),
    }
}

fn parse_at(expr: &str, body: &str) -> Result<DateTime, ScheduleError> {
    let bad = |problem: String| ScheduleError::At { expr: expr.to_string(), problem };
    let b = body.as_bytes();
    let shape = b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return Err(bad(format!("\"{body}\" is not written yyyy-MM-ddTHH:mm:ss (like 2026-03-01T15:55:00)")));
    }
    let number = |range: std::ops::Range<usize>| body[range].parse::<i16>().expect("digits");
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let (hour, minute, second) = (number(11..13), number(14..16), number(17..19));
    if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
        return Err(bad(format!("the year {year} is out of range; it must be {FIRST_YEAR} to {LAST_YEAR}")));
    }
    if !(1..=12).contains(&month) {
        return Err(bad(format!("the month {month:02} does not exist")));
    }
    let month_days = jiff::civil::Date::new(year, month as i8, 1).expect("year and month checked").days_in_month();
    if day < 1 || day > i16::from(month_days) {
        return Err(bad(format!("the day {day:02} does not exist in {year}-{month:02}, which has {month_days} days")));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad(format!("the time {hour:02}:{minute:02}:{second:02} does not exist (00:00:00 to 23:59:59)")));
    }
    Ok(DateTime::new(year, month as i8, day as i8, hour as i8, minute as i8, second as i8, 0).expect("fields checked"))
}
