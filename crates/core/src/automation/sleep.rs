//! When an `aws:sleep` step wakes up (spec §2.4, §2.5): its (already interpolated) inputs hold
//! exactly one of `Duration`, an ISO 8601 duration, or `Timestamp`, an ISO 8601 instant. The
//! engine passes the current time in; nothing here reads a clock.
//!
//! `Duration` grammar (parsed by hand; the designators may also be lower case):
//!
//! ```text
//! duration := "P" [days "D"] ["T" [n "H"] [n "M"] [n ["." | "," digits] "S"]]
//! ```
//!
//! with at least one component, components in that order and each at most once, `T` followed by
//! at least one time component, and a fraction only on seconds (kept to the millisecond,
//! truncated). Examples: `PT10S`, `PT5M`, `PT1H30M`, `P1D`, `P2DT3H`, `PT0.5S`, `PT0S`. Years,
//! months and weeks (`P1Y`, `P1M`, `P1W`) are refused: a year or month has no fixed length, and
//! ssmd follows `java.time.Duration`, which has no weeks either (a week exceeds the limit
//! anyway). A sign is refused; a negative duration (`-PT5S`, `PT-5S`) gets its own error, as AWS
//! documents that a duration can't be negative.
//!
//! `Timestamp` grammar:
//!
//! ```text
//! timestamp := YYYY "-" MM "-" DD "T" hh ":" mm [":" ss ["." | "," digits]] [zone]
//! zone      := "Z" | ("+" | "-") hh [[":"] mm]
//! ```
//!
//! `T` and `Z` may be lower case; the fraction is kept to the millisecond (truncated); a
//! timestamp without a zone is read as UTC. Dates are checked (month lengths, leap years), as are
//! the ranges of hours (00–23), minutes, seconds (00–59, no leap second) and offsets (up to
//! ±23:59). A timestamp that is not in the future wakes the step at once.
//!
//! A delay longer than [`MAX_SLEEP_SECONDS`] (604799 s, just under 7 days — spec §2.4 and the
//! AWS documentation "Automation supports a maximum delay of 604799 seconds") fails the step with
//! [`SleepError::TooLong`], for a `Duration` and for a `Timestamp` that far ahead alike.

use serde_json::Value;

/// The longest delay an `aws:sleep` step accepts, in seconds.
pub const MAX_SLEEP_SECONDS: i64 = 604_799;
/// [`MAX_SLEEP_SECONDS`] in milliseconds.
const MAX_SLEEP_MS: i64 = MAX_SLEEP_SECONDS * 1000;

const MS_PER_DAY: u128 = 86_400_000;
const MS_PER_HOUR: u128 = 3_600_000;
const MS_PER_MINUTE: u128 = 60_000;
const MS_PER_SECOND: u128 = 1000;

/// Why an `aws:sleep` step can't compute its wake-up time; the step fails with the message.
/// Values are quoted as JSON (`"10S"`, or `10` for a number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SleepError {
    /// The inputs are not an object.
    #[error("The inputs of an aws:sleep step must be an object with Duration or Timestamp.")]
    NotAnObject,
    /// Neither `Duration` nor `Timestamp` is present.
    #[error("An aws:sleep step needs exactly one of the inputs Duration and Timestamp, but has neither.")]
    Neither,
    /// Both `Duration` and `Timestamp` are present.
    #[error("An aws:sleep step needs exactly one of the inputs Duration and Timestamp, but has both.")]
    Both,
    /// `Duration` is not a string in the supported ISO 8601 duration form.
    #[error(
        "The Duration {value} is not an ISO 8601 duration: {reason}. Write it like PT10S, PT5M, PT1H30M, P1D or P2DT3H."
    )]
    InvalidDuration {
        /// The value, as JSON.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `Duration` is negative (`-PT5S`, `PT-5S`).
    #[error("The Duration {0} is negative; aws:sleep can't wait a negative amount of time.")]
    NegativeDuration(String),
    /// `Timestamp` is not a string in the supported ISO 8601 form.
    #[error(
        "The Timestamp {value} is not an ISO 8601 timestamp: {reason}. Write it like 2026-01-01T00:00:00Z or 2026-01-01T02:00:00+02:00."
    )]
    InvalidTimestamp {
        /// The value, as JSON.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The delay is longer than [`MAX_SLEEP_SECONDS`].
    #[error(
        "The {input} {value} asks for a delay of {} seconds, more than the {MAX_SLEEP_SECONDS} seconds (just under 7 days) aws:sleep allows.",
        seconds(*.millis)
    )]
    TooLong {
        /// `Duration` or `Timestamp`.
        input: &'static str,
        /// The value, as JSON.
        value: String,
        /// The requested delay in milliseconds (`i64::MAX` when it is larger still).
        millis: i64,
    },
}

/// The time (milliseconds since the Unix epoch) at which an `aws:sleep` step with these
/// (already interpolated) inputs, started at `now_ms`, wakes and succeeds.
///
/// * `Duration`: `now_ms` plus the duration (`PT0S` wakes at `now_ms`).
/// * `Timestamp`: that instant, or `now_ms` when it is not in the future.
///
/// Errors: inputs that are not an object, both or neither of `Duration` / `Timestamp` (a key that
/// is present counts, even with a `null` value), a value that is not a string of the supported
/// form (see the module documentation), a negative duration, and a delay longer than
/// [`MAX_SLEEP_SECONDS`]. Other input keys are ignored.
pub fn wake_at(inputs: &Value, now_ms: i64) -> Result<i64, SleepError> {
    let Some(inputs) = inputs.as_object() else {
        return Err(SleepError::NotAnObject);
    };
    match (inputs.get("Duration"), inputs.get("Timestamp")) {
        (Some(_), Some(_)) => Err(SleepError::Both),
        (None, None) => Err(SleepError::Neither),
        (Some(duration), None) => {
            let Some(text) = duration.as_str() else {
                return Err(SleepError::InvalidDuration {
                    value: duration.to_string(),
                    reason: format!("it must be a string, not {}", ssmd_model::validate::type_name(duration)),
                });
            };
            let millis = parse_duration_ms(text)?;
            if millis > MAX_SLEEP_MS {
                return Err(SleepError::TooLong { input: "Duration", value: duration.to_string(), millis });
            }
            Ok(now_ms.saturating_add(millis))
        }
        (None, Some(timestamp)) => {
            let Some(text) = timestamp.as_str() else {
                return Err(SleepError::InvalidTimestamp {
                    value: timestamp.to_string(),
                    reason: format!("it must be a string, not {}", ssmd_model::validate::type_name(timestamp)),
                });
            };
            let at = parse_timestamp_ms(text)?;
            if at <= now_ms {
                return Ok(now_ms);
            }
            let delay = i128::from(at) - i128::from(now_ms);
            if delay > i128::from(MAX_SLEEP_MS) {
                let millis = i64::try_from(delay).unwrap_or(i64::MAX);
                return Err(SleepError::TooLong { input: "Timestamp", value: timestamp.to_string(), millis });
            }
            Ok(at)
        }
    }
}

/// Parses an ISO 8601 duration of the form the module documentation describes into
/// milliseconds (fractions of a millisecond truncated; absurdly long durations saturate at
/// `i64::MAX`). No upper limit is applied here; [`wake_at`] applies [`MAX_SLEEP_SECONDS`].
pub fn parse_duration_ms(text: &str) -> Result<i64, SleepError> {
    let bad = |reason: String| SleepError::InvalidDuration { value: quote(text), reason };
    let negative = || SleepError::NegativeDuration(quote(text));
    let b = text.as_bytes();
    match b.first() {
        None => return Err(bad("it is empty".to_string())),
        Some(b'-') => return Err(negative()),
        Some(b'+') => return Err(bad("it must not have a sign".to_string())),
        Some(b'P' | b'p') => {}
        Some(_) => return Err(bad("it must start with P (as in PT10S)".to_string())),
    }
    let mut i = 1;
    let mut in_time = false;
    // Rank of the last component: D = 1, H = 2, M = 3, S = 4.
    let mut last_rank = 0;
    let mut components = 0;
    let mut total: u128 = 0;
    while i < b.len() {
        if b[i].eq_ignore_ascii_case(&b'T') {
            if in_time {
                return Err(bad("it has T twice".to_string()));
            }
            in_time = true;
            i += 1;
            if i == b.len() {
                return Err(bad("T must be followed by hours (H), minutes (M) or seconds (S)".to_string()));
            }
            continue;
        }
        if b[i] == b'-' {
            return Err(negative());
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad(format!("expected a number at \"{}\"", &text[start..])));
        }
        let whole = &text[start..i];
        let mut fraction = "";
        if i < b.len() && (b[i] == b'.' || b[i] == b',') {
            i += 1;
            let frac_start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac_start {
                return Err(bad("a decimal point must be followed by digits".to_string()));
            }
            fraction = &text[frac_start..i];
        }
        let Some(&unit) = b.get(i) else {
            let number = &text[start..i];
            let units = if in_time { "H, M or S" } else { "D, or T before H, M or S" };
            return Err(bad(format!("the number {number} has no unit ({units})")));
        };
        let (rank, unit_ms) = match (in_time, unit.to_ascii_uppercase()) {
            (false, b'D') => (1, MS_PER_DAY),
            (true, b'H') => (2, MS_PER_HOUR),
            (true, b'M') => (3, MS_PER_MINUTE),
            (true, b'S') => (4, MS_PER_SECOND),
            (false, b'Y' | b'M' | b'W') => {
                return Err(bad(
                    "years (Y), months (M before T) and weeks (W) are not supported; use days (D), and hours (H), minutes (M) and seconds (S) after T"
                        .to_string(),
                ));
            }
            (false, b'H' | b'S') => {
                return Err(bad("hours, minutes and seconds must come after T (as in PT10S)".to_string()));
            }
            (true, b'D') => return Err(bad("days must come before T (as in P1DT2H)".to_string())),
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return Err(bad(format!("'{shown}' is not a unit (D, H, M or S)")));
            }
        };
        i += 1;
        if rank <= last_rank {
            return Err(bad("each component may appear once, in the order D, T, H, M, S".to_string()));
        }
        if !fraction.is_empty() && rank != 4 {
            return Err(bad("only seconds may have a fraction".to_string()));
        }
        last_rank = rank;
        components += 1;
        total = total.saturating_add(digits_value(whole).saturating_mul(unit_ms));
        if !fraction.is_empty() {
            let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
            total = total.saturating_add(digits_value(&millis));
        }
    }
    if components == 0 {
        return Err(bad("it has no days, hours, minutes or seconds".to_string()));
    }
    Ok(i64::try_from(total).unwrap_or(i64::MAX))
}

/// Parses an ISO 8601 timestamp of the form the module documentation describes into
/// milliseconds since the Unix epoch (fractions of a millisecond truncated).
pub fn parse_timestamp_ms(text: &str) -> Result<i64, SleepError> {
    let bad = |reason: &str| SleepError::InvalidTimestamp { value: quote(text), reason: reason.to_string() };
    let mut c = Cursor { b: text.as_bytes(), i: 0 };

    let date = (|| {
        let year = c.digits(4)?;
        c.expect(b'-')?;
        let month = c.digits(2)?;
        c.expect(b'-')?;
        let day = c.digits(2)?;
        Some((year, month, day))
    })();
    let Some((year, month, day)) = date else {
        return Err(bad("it must start with the date as YYYY-MM-DD"));
    };
    if !(1..=12).contains(&month) {
        return Err(bad(&format!("month {month:02} does not exist")));
    }
    // Four digits and a month in 1..=12 always make a valid jiff date.
    let month_days = jiff::civil::Date::new(year as i16, month as i8, 1).map_or(31, |d| d.days_in_month() as u32);
    if day == 0 || day > month_days {
        return Err(bad(&format!("day {day:02} does not exist in {year:04}-{month:02}, which has {month_days} days")));
    }
    if !c.expect_either(b'T', b't') {
        return Err(bad("the date must be followed by T and the time"));
    }
    let time = (|| {
        let hour = c.digits(2)?;
        c.expect(b':')?;
        let minute = c.digits(2)?;
        Some((hour, minute))
    })();
    let Some((hour, minute)) = time else {
        return Err(bad("the time must be written hh:mm or hh:mm:ss"));
    };
    let mut second = 0;
    let mut millis = 0;
    if c.peek() == Some(b':') {
        c.i += 1;
        let Some(s) = c.digits(2) else {
            return Err(bad("the seconds must be two digits"));
        };
        second = s;
        if matches!(c.peek(), Some(b'.' | b',')) {
            c.i += 1;
            let start = c.i;
            while c.peek().is_some_and(|d| d.is_ascii_digit()) {
                c.i += 1;
            }
            if c.i == start {
                return Err(bad("a decimal point must be followed by digits"));
            }
            let fraction: String = text[start..c.i].chars().chain("000".chars()).take(3).collect();
            millis = digits_value(&fraction) as i64;
        }
    }
    if hour > 23 {
        return Err(bad(&format!("hour {hour:02} does not exist (00 to 23)")));
    }
    if minute > 59 {
        return Err(bad(&format!("minute {minute:02} does not exist (00 to 59)")));
    }
    if second > 59 {
        return Err(bad(&format!("second {second:02} does not exist (00 to 59)")));
    }
    let offset_minutes: i64 = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let Some(h) = c.digits(2) else {
                return Err(bad("the offset must be Z, +hh:mm or -hh:mm"));
            };
            let m = if c.peek() == Some(b':') {
                c.i += 1;
                let Some(m) = c.digits(2) else {
                    return Err(bad("the offset must be Z, +hh:mm or -hh:mm"));
                };
                m
            } else {
                c.digits(2).unwrap_or(0)
            };
            if h > 23 || m > 59 {
                return Err(bad(&format!("the offset {h:02}:{m:02} is out of range (at most 23:59)")));
            }
            let total = i64::from(h * 60 + m);
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return Err(bad("the time must be followed by Z, an offset (+hh:mm) or nothing")),
    };
    if c.i != text.len() {
        return Err(bad(&format!("unexpected \"{}\" after the time", &text[c.i..])));
    }
    // jiff civil (wall-clock) arithmetic, not a Timestamp: the grammar reaches 9999-12-31T23:59:59,
    // past the last instant a Timestamp can hold.
    let wall =
        jiff::civil::DateTime::new(year as i16, month as i8, day as i8, hour as i8, minute as i8, second as i8, 0)
            .expect("every field was range-checked above");
    let local = wall.duration_since(UNIX_EPOCH_WALL).as_millis() as i64 + millis;
    Ok(local - offset_minutes * 60_000)
}

/// A position in ASCII text being parsed.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let chunk = self.b.get(self.i..self.i + n)?;
        if !chunk.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(chunk.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.i += 1)
    }

    fn expect_either(&mut self, a: u8, b: u8) -> bool {
        let found = matches!(self.peek(), Some(x) if x == a || x == b);
        if found {
            self.i += 1;
        }
        found
    }
}

/// The value of a run of ASCII digits, saturating.
fn digits_value(digits: &str) -> u128 {
    digits.bytes().fold(0u128, |acc, d| acc.saturating_mul(10).saturating_add(u128::from(d - b'0')))
}

/// 1970-01-01T00:00:00, the wall-clock date and time epoch milliseconds count from (in UTC).
const UNIX_EPOCH_WALL: jiff::civil::DateTime = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// A string quoted as JSON.
fn quote(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// Milliseconds as seconds, with only the decimals needed (`604800`, `604799.5`).
fn seconds(millis: i64) -> String {
    let (whole, frac) = (millis / 1000, millis % 1000);
    if frac == 0 { whole.to_string() } else { format!("{whole}.{frac:03}").trim_end_matches('0').to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn duration(text: &str) -> Result<i64, SleepError> {
        wake_at(&json!({ "Duration": text }), NOW).map(|t| t - NOW)
    }

    fn timestamp(text: &str) -> Result<i64, SleepError> {
        parse_timestamp_ms(text)
    }

    /// Asserts the error's message contains every fragment and reads like a sentence.
    fn message(err: SleepError, fragments: &[&str]) -> SleepError {
        let msg = err.to_string();
        for f in fragments {
            assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
        }
        assert!(msg.starts_with(|c: char| c.is_ascii_uppercase()), "message {msg:?} is not capitalised");
        assert!(msg.ends_with('.'), "message {msg:?} does not end with a full stop");
        err
    }

    fn bad_duration(text: &str, fragment: &str) {
        let err = duration(text).expect_err(text);
        assert!(matches!(err, SleepError::InvalidDuration { .. }), "{text}: {err:?}");
        message(err, &[&quote(text), fragment]);
    }

    fn bad_timestamp(text: &str, fragment: &str) {
        let err = wake_at(&json!({ "Timestamp": text }), NOW).expect_err(text);
        assert!(matches!(err, SleepError::InvalidTimestamp { .. }), "{text}: {err:?}");
        message(err, &[&quote(text), fragment]);
    }

    // ---- Duration --------------------------------------------------------------------------

    #[test]
    fn duration_forms() {
        assert_eq!(duration("PT10S"), Ok(10_000));
        assert_eq!(duration("PT5M"), Ok(300_000));
        assert_eq!(duration("PT1H"), Ok(3_600_000));
        assert_eq!(duration("PT1H30M"), Ok(5_400_000));
        assert_eq!(duration("PT1H30M15S"), Ok(5_415_000));
        assert_eq!(duration("PT90M"), Ok(5_400_000));
        assert_eq!(duration("PT3600S"), Ok(3_600_000));
        assert_eq!(duration("P1D"), Ok(86_400_000));
        assert_eq!(duration("P2DT3H"), Ok(2 * 86_400_000 + 3 * 3_600_000));
        assert_eq!(duration("P1DT1H1M1S"), Ok(86_400_000 + 3_600_000 + 60_000 + 1000));
        assert_eq!(duration("P1DT30S"), Ok(86_430_000));
        assert_eq!(duration("PT0S"), Ok(0));
        assert_eq!(duration("P0D"), Ok(0));
        assert_eq!(duration("PT00010S"), Ok(10_000));
    }

    #[test]
    fn fractional_seconds() {
        assert_eq!(duration("PT0.5S"), Ok(500));
        assert_eq!(duration("PT1.25S"), Ok(1250));
        assert_eq!(duration("PT0,5S"), Ok(500));
        assert_eq!(duration("PT1M0.001S"), Ok(60_001));
        // Truncated to the millisecond.
        assert_eq!(duration("PT1.2349S"), Ok(1234));
        assert_eq!(duration("PT0.0009S"), Ok(0));
    }

    #[test]
    fn lower_case_designators() {
        assert_eq!(duration("pt10s"), Ok(10_000));
        assert_eq!(duration("p1dt2h"), Ok(86_400_000 + 7_200_000));
    }

    #[test]
    fn the_longest_delay() {
        assert_eq!(duration("PT604799S"), Ok(604_799_000));
        assert_eq!(duration("P6DT23H59M59S"), Ok(604_799_000));
    }

    #[test]
    fn longer_delays_are_refused() {
        for text in
            ["P7D", "PT168H", "PT604799.001S", "PT604800S", "P100D", "P99999999999999999999999999999999999999999D"]
        {
            let err = duration(text).expect_err(text);
            assert!(matches!(err, SleepError::TooLong { input: "Duration", .. }), "{text}: {err:?}");
            message(err, &["Duration", &quote(text), "604799 seconds"]);
        }
        let err = duration("P7D").unwrap_err();
        message(err, &["a delay of 604800 seconds"]);
        let err = duration("PT604799.5S").unwrap_err();
        message(err, &["a delay of 604799.5 seconds"]);
        assert!(matches!(
            duration("P99999999999999999999999999999999999999999D"),
            Err(SleepError::TooLong { millis: i64::MAX, .. })
        ));
    }

    #[test]
    fn bad_durations() {
        bad_duration("10S", "must start with P");
        bad_duration("10", "must start with P");
        bad_duration("", "empty");
        bad_duration(" PT5S", "must start with P");
        bad_duration("P", "no days, hours, minutes or seconds");
        bad_duration("PT", "T must be followed");
        bad_duration("P1DT", "T must be followed");
        bad_duration("PT5", "has no unit");
        bad_duration("P5", "has no unit");
        bad_duration("PTS", "expected a number");
        bad_duration("PT5S ", "expected a number");
        bad_duration("PT5X", "'X' is not a unit");
        bad_duration("PT5é", "'é' is not a unit");
        bad_duration("P1H", "must come after T");
        bad_duration("P1S", "must come after T");
        bad_duration("PT1D", "days must come before T");
        bad_duration("PT5S3M", "in the order D, T, H, M, S");
        bad_duration("P1D2D", "in the order");
        bad_duration("PT1H1H", "in the order");
        bad_duration("PT1HT1M", "T twice");
        bad_duration("PT1.5M", "only seconds may have a fraction");
        bad_duration("P1.5D", "only seconds may have a fraction");
        bad_duration("PT5.S", "decimal point must be followed by digits");
        bad_duration("+PT5S", "sign");
    }

    #[test]
    fn years_months_and_weeks_are_not_supported() {
        for text in ["P1Y", "P1M", "P1W", "P0Y", "P1Y2M3DT4H"] {
            bad_duration(text, "not supported");
        }
    }

    #[test]
    fn negative_durations() {
        for text in ["-PT5S", "PT-5S", "P-1D", "-P1D"] {
            let err = duration(text).expect_err(text);
            assert!(matches!(err, SleepError::NegativeDuration(_)), "{text}: {err:?}");
            message(err, &[&quote(text), "negative"]);
        }
    }

    #[test]
    fn duration_must_be_a_string() {
        let err = wake_at(&json!({"Duration": 10}), NOW).unwrap_err();
        assert!(matches!(err, SleepError::InvalidDuration { .. }));
        message(err, &["The Duration 10", "must be a string, not a number"]);
        let err = wake_at(&json!({"Duration": null}), NOW).unwrap_err();
        message(err, &["not null"]);
    }

    // ---- Timestamp -------------------------------------------------------------------------

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(timestamp("2026-01-01T00:00:00Z"), Ok(NOW));
        assert_eq!(timestamp("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(timestamp("1969-12-31T23:59:59Z"), Ok(-1000));
        assert_eq!(timestamp("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(timestamp("2024-02-29T12:34:56Z"), Ok(1_709_210_096_000));
        assert_eq!(timestamp("9999-12-31T23:59:59Z"), Ok(253_402_300_799_000));
        assert_eq!(timestamp("0000-01-01T00:00:00Z"), Ok(-62_167_219_200_000));
    }

    #[test]
    fn timestamp_variants() {
        assert_eq!(timestamp("2026-01-01T00:00Z"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T00:00:00"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01t00:00:00z"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T00:00:00.250Z"), Ok(NOW + 250));
        assert_eq!(timestamp("2026-01-01T00:00:00,5Z"), Ok(NOW + 500));
        assert_eq!(timestamp("2026-01-01T00:00:00.123456789Z"), Ok(NOW + 123));
    }

    #[test]
    fn timestamp_offsets() {
        assert_eq!(timestamp("2026-01-01T02:00:00+02:00"), Ok(NOW));
        assert_eq!(timestamp("2025-12-31T19:00:00-05:00"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T05:30:00+05:30"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T05:30:00+0530"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T02:00:00+02"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T00:00:00+00:00"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T00:00:00-00:00"), Ok(NOW));
        assert_eq!(timestamp("2026-01-01T00:00:00.5+01:00"), Ok(NOW - 3_600_000 + 500));
    }

    #[test]
    fn future_timestamps_wake_at_that_instant() {
        let inputs = json!({"Timestamp": "2026-01-01T00:10:00Z"});
        assert_eq!(wake_at(&inputs, NOW), Ok(NOW + 600_000));
        let inputs = json!({"Timestamp": "2026-01-01T01:00:00+01:00"});
        assert_eq!(wake_at(&inputs, NOW - 1), Ok(NOW));
    }

    #[test]
    fn past_and_present_timestamps_wake_now() {
        for text in
            ["2020-01-01T01:00:00Z", "2025-12-31T23:59:59.999Z", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"]
        {
            assert_eq!(wake_at(&json!({ "Timestamp": text }), NOW), Ok(NOW), "{text}");
        }
    }

    #[test]
    fn far_timestamps_are_refused() {
        let limit = wake_at(&json!({"Timestamp": "2026-01-07T23:59:59Z"}), NOW);
        assert_eq!(limit, Ok(NOW + 604_799_000));
        let err = wake_at(&json!({"Timestamp": "2026-01-08T00:00:00Z"}), NOW).unwrap_err();
        assert!(matches!(err, SleepError::TooLong { input: "Timestamp", millis: 604_800_000, .. }));
        message(err, &["The Timestamp \"2026-01-08T00:00:00Z\"", "604800 seconds", "604799"]);
        let err = wake_at(&json!({"Timestamp": "9999-12-31T23:59:59Z"}), NOW).unwrap_err();
        assert!(matches!(err, SleepError::TooLong { .. }));
    }

    #[test]
    fn bad_timestamps() {
        bad_timestamp("2026-01-01", "followed by T");
        bad_timestamp("2026-1-1T00:00:00Z", "YYYY-MM-DD");
        bad_timestamp("26-01-01T00:00:00Z", "YYYY-MM-DD");
        bad_timestamp("1767225600", "YYYY-MM-DD");
        bad_timestamp("", "YYYY-MM-DD");
        bad_timestamp("2026-13-01T00:00:00Z", "month 13");
        bad_timestamp("2026-00-01T00:00:00Z", "month 00");
        bad_timestamp("2026-01-32T00:00:00Z", "day 32");
        bad_timestamp("2026-04-31T00:00:00Z", "30 days");
        bad_timestamp("2025-02-29T00:00:00Z", "28 days");
        bad_timestamp("1900-02-29T00:00:00Z", "28 days");
        bad_timestamp("2026-01-00T00:00:00Z", "day 00");
        bad_timestamp("2026-01-01 00:00:00Z", "followed by T");
        bad_timestamp("2026-01-01T0:00:00Z", "hh:mm");
        bad_timestamp("2026-01-01T00Z", "hh:mm");
        bad_timestamp("2026-01-01T24:00:00Z", "hour 24");
        bad_timestamp("2026-01-01T00:60:00Z", "minute 60");
        bad_timestamp("2026-01-01T00:00:60Z", "second 60");
        bad_timestamp("2026-01-01T00:00:0Z", "seconds must be two digits");
        bad_timestamp("2026-01-01T00:00:00.Z", "decimal point");
        bad_timestamp("2026-01-01T00:00:00+24:00", "out of range");
        bad_timestamp("2026-01-01T00:00:00+01:60", "out of range");
        bad_timestamp("2026-01-01T00:00:00+1", "offset must be");
        bad_timestamp("2026-01-01T00:00:00+01:", "offset must be");
        bad_timestamp("2026-01-01T00:00:00Zjunk", "unexpected \"junk\"");
        bad_timestamp("2026-01-01T00:00:00+01:00:00", "unexpected");
        bad_timestamp("2026-01-01T00:00:00 UTC", "followed by Z");
    }

    #[test]
    fn timestamp_must_be_a_string() {
        let err = wake_at(&json!({"Timestamp": 1_767_225_600}), NOW).unwrap_err();
        assert!(matches!(err, SleepError::InvalidTimestamp { .. }));
        message(err, &["The Timestamp 1767225600", "must be a string, not a number"]);
    }

    // ---- inputs ----------------------------------------------------------------------------

    #[test]
    fn exactly_one_input() {
        let both = json!({"Duration": "PT1S", "Timestamp": "2026-01-01T00:00:00Z"});
        assert_eq!(wake_at(&both, NOW), Err(SleepError::Both));
        message(SleepError::Both, &["exactly one", "both"]);
        assert_eq!(wake_at(&json!({}), NOW), Err(SleepError::Neither));
        assert_eq!(wake_at(&json!({"Other": "PT1S"}), NOW), Err(SleepError::Neither));
        message(SleepError::Neither, &["exactly one", "neither"]);
        assert_eq!(wake_at(&json!({"Duration": null, "Timestamp": null}), NOW), Err(SleepError::Both));
        assert_eq!(wake_at(&json!("PT1S"), NOW), Err(SleepError::NotAnObject));
        message(SleepError::NotAnObject, &["object"]);
    }

    #[test]
    fn other_inputs_are_ignored() {
        assert_eq!(wake_at(&json!({"Duration": "PT1S", "Note": 1}), NOW), Ok(NOW + 1000));
    }

    #[test]
    fn seconds_rendering() {
        assert_eq!(seconds(604_800_000), "604800");
        assert_eq!(seconds(604_799_500), "604799.5");
        assert_eq!(seconds(604_799_001), "604799.001");
    }

    // ---- properties ------------------------------------------------------------------------

    /// `yyyy-mm-ddThh:mm:ss.mmm` of a UTC instant, from jiff's date arithmetic.
    fn format_utc(ms: i64) -> String {
        let dt = UNIX_EPOCH_WALL.checked_add(jiff::SignedDuration::from_millis(ms)).expect("in range");
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }

    /// 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
    const FIRST_MS: i64 = -62_167_219_200_000;
    const LAST_MS: i64 = 253_402_300_799_999;

    proptest! {
        #[test]
        fn whole_seconds_wake_after_that_many_seconds(n in 0i64..=MAX_SLEEP_SECONDS, now in -1_000_000_000_000i64..4_000_000_000_000) {
            prop_assert_eq!(wake_at(&json!({ "Duration": format!("PT{n}S") }), now), Ok(now + n * 1000));
        }

        #[test]
        fn components_add_up(d in 0i64..10, h in 0i64..30, m in 0i64..100, s in 0i64..100, ms in 0i64..1000) {
            let text = format!("P{d}DT{h}H{m}M{s}.{ms:03}S");
            let total = ((d * 24 + h) * 60 + m) * 60_000 + s * 1000 + ms;
            let result = wake_at(&json!({ "Duration": text }), NOW);
            if total <= MAX_SLEEP_MS {
                prop_assert_eq!(result, Ok(NOW + total));
            } else {
                prop_assert!(
                    matches!(result, Err(SleepError::TooLong { millis, .. }) if millis == total),
                    "unexpected {:?}", result
                );
            }
        }

        #[test]
        fn timestamps_round_trip(ms in FIRST_MS..=LAST_MS) {
            prop_assert_eq!(parse_timestamp_ms(&format!("{}Z", format_utc(ms))), Ok(ms));
        }

        #[test]
        fn offsets_name_the_same_instant(ms in 0i64..4_000_000_000_000, offset in -(23 * 60 + 59)..=(23i64 * 60 + 59)) {
            let local = format_utc(ms + offset * 60_000);
            let sign = if offset < 0 { '-' } else { '+' };
            let text = format!("{local}{sign}{:02}:{:02}", offset.abs() / 60, offset.abs() % 60);
            prop_assert_eq!(parse_timestamp_ms(&text), Ok(ms));
        }

        #[test]
        fn past_timestamps_wake_now(ms in FIRST_MS..=LAST_MS, ahead in 0i64..1_000_000_000_000) {
            let now = ms.saturating_add(ahead);
            let text = format!("{}Z", format_utc(ms));
            prop_assert_eq!(wake_at(&json!({ "Timestamp": text }), now), Ok(now));
        }

        #[test]
        fn near_future_timestamps_wake_then(now in 0i64..4_000_000_000_000, delay in 1i64..=MAX_SLEEP_MS) {
            let text = format!("{}Z", format_utc(now + delay));
            prop_assert_eq!(wake_at(&json!({ "Timestamp": text }), now), Ok(now + delay));
        }
    }
}
