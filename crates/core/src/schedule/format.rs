//! The wire forms of schedule times (spec §4.3) and the parser for StartDate / EndDate.
//!
//! SSM writes `NextExecutionTime` and `ExecutionTime` as ISO 8601 strings in three observed
//! shapes: minute precision in UTC (`2020-02-19T16:00Z`, cron windows), milliseconds in UTC
//! (`2020-02-12T23:19:20.596Z`, rate windows anchored at their creation time) and local time
//! with the zone's offset (`2019-10-20T05:34:56-07:00`, windows with a ScheduleTimezone or a
//! StartDate). The caller picks the shape; these functions only write it. Calendar fields come
//! from jiff.

use jiff::Timestamp;
use jiff::fmt::temporal::{Pieces, PiecesOffset};
use jiff::tz::Offset;

use super::error::ScheduleError;
use super::eval::Zone;

/// How much of the time of day to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// `HH:mm`.
    Minute,
    /// `HH:mm:ss`.
    Second,
    /// `HH:mm:ss.SSS`.
    Millisecond,
}

fn write(ms: i64, offset: Offset, precision: Precision, zone_suffix: &str) -> String {
    let at = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX });
    let dt = offset.to_datetime(at);
    let mut out = format!("{:04}-{:02}-{:02}T{:02}:{:02}", dt.year(), dt.month(), dt.day(), dt.hour(), dt.minute());
    match precision {
        Precision::Minute => {}
        Precision::Second => out.push_str(&format!(":{:02}", dt.second())),
        Precision::Millisecond => out.push_str(&format!(":{:02}.{:03}", dt.second(), dt.millisecond())),
    }
    out.push_str(zone_suffix);
    out
}

/// An instant in UTC with a `Z`: `2020-02-19T16:00Z`, `2020-02-19T16:00:00Z` or
/// `2020-02-12T23:19:20.596Z`. Lower precisions truncate.
pub fn format_utc(ms: i64, precision: Precision) -> String {
    write(ms, Offset::UTC, precision, "Z")
}

/// An instant as local time in `zone` with the offset in force then:
/// `2019-10-20T05:34:56-07:00`. UTC itself is written with `Z`, as [`format_utc`] does; a zone
/// that is merely at offset zero (Europe/London in winter) is written `+00:00`.
pub fn format_in_zone(ms: i64, zone: &Zone, precision: Precision) -> String {
    if zone.is_utc() {
        return format_utc(ms, precision);
    }
    format_at_offset(ms, zone.offset_seconds_at(ms), precision)
}

/// An instant as local time at a fixed offset from UTC (seconds east):
/// `2019-10-20T05:34:56-07:00`; offset zero is written `+00:00`.
pub fn format_at_offset(ms: i64, seconds: i32, precision: Precision) -> String {
    let offset = Offset::from_seconds(seconds).unwrap_or(Offset::UTC);
    let (sign, magnitude) = if seconds < 0 { ('-', -seconds) } else { ('+', seconds) };
    let mut suffix = format!("{sign}{:02}:{:02}", magnitude / 3600, magnitude / 60 % 60);
    // Only local mean time before the 1970s has offsets with seconds; write them rather than
    // print a local time that doesn't add up.
    if magnitude % 60 != 0 {
        suffix.push_str(&format!(":{:02}", magnitude % 60));
    }
    write(ms, offset, precision, &suffix)
}

/// Parses a StartDate or EndDate: ISO 8601 with a date and a time, and an offset or `Z`
/// (`2021-01-01T00:00:00-08:00`, `2021-04-07T14:29:00Z`, `2021-01-01T08:00Z`; fractions of a
/// second are kept to the millisecond). Without an offset the time is read as UTC. Returns
/// epoch milliseconds.
pub fn parse_date_time(text: &str) -> Result<i64, ScheduleError> {
    parse_with_offset(text).map(|(ms, _)| ms)
}

/// The offset a StartDate or EndDate was written with (seconds east of UTC; `None` for `Z` or
/// none, and for text [`parse_date_time`] refuses).
pub fn date_time_offset(text: &str) -> Option<i32> {
    parse_with_offset(text).ok().and_then(|(_, offset)| offset)
}

fn parse_with_offset(text: &str) -> Result<(i64, Option<i32>), ScheduleError> {
    let bad = |problem: String| ScheduleError::DateTime { value: text.to_string(), problem };
    let pieces = Pieces::parse(text).map_err(|e| bad(e.to_string()))?;
    if pieces.time_zone_annotation().is_some() {
        return Err(bad("a time zone in brackets is not accepted; give an offset such as -08:00 or Z".into()));
    }
    let Some(time) = pieces.time() else {
        return Err(bad("it has a date but no time".into()));
    };
    let (offset, written) = match pieces.offset() {
        None | Some(PiecesOffset::Zulu) => (Offset::UTC, None),
        Some(PiecesOffset::Numeric(numeric)) => (numeric.offset(), Some(numeric.offset().seconds())),
        Some(_) => return Err(bad("its offset is not supported; give one such as -08:00, +05:30 or Z".into())),
    };
    let local = pieces.date().to_datetime(time);
    offset
        .to_timestamp(local)
        .map(|t| (t.as_millisecond(), written))
        .map_err(|_| bad("it is outside the range of supported instants".into()))
}
