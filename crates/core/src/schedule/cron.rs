//! The `cron(...)` dialect of SSM (AWS's Quartz-derived one, spec §4.1): its field grammar and a
//! matcher over civil (wall-clock) dates and times. It knows nothing of time zones: it answers
//! "which is the first local date and time at or after this one that the expression names", and
//! the evaluator (`eval.rs`) maps local times to instants.
//!
//! Each field is kept as a bit set, so finding the next match is a handful of `trailing_zeros`
//! per field; the day rules (`L`, `W`, `#`, weekday lists) are turned into a bit set of days once
//! per month, from jiff's calendar (month lengths, weekdays, n-th weekday of a month). There is
//! no hand-written calendar arithmetic here.
//!
//! Grammar choices where AWS documents nothing (recorded in docs/compat.md):
//! * names (JAN-DEC, SUN-SAT) and the letters L, W are case-insensitive;
//! * a range may wrap around (`22-2` hours, `FRI-MON`), as in Quartz, except in the year field;
//! * an increment `/n` runs from 1 to the size of the field; `a/n` runs from `a` to the field's
//!   end, `a-b/n` within the range;
//! * `L`, `LW`, `nW` (day-of-month), `L`, `nL`, `d#k` (day-of-week) stand alone, not in lists;
//!   `L` alone in day-of-week is the last day of the week, Saturday, as in Quartz;
//! * `nW` for a day the month does not have (31W in April) matches nothing that month, like `31`.

use jiff::civil::{Date, DateTime, Weekday};

use super::error::CronField;

/// The first year a cron expression can name.
pub(crate) const FIRST_YEAR: i16 = 1970;
/// The last year a cron expression can name.
pub(crate) const LAST_YEAR: i16 = 2199;

/// A parsed `cron(...)` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    /// Seconds 0-59 (only 0 in the 6-field form).
    pub(crate) seconds: u64,
    /// Whether the expression had the leading seconds field.
    pub(crate) has_seconds: bool,
    /// Minutes 0-59.
    pub(crate) minutes: u64,
    /// Hours 0-23.
    pub(crate) hours: u64,
    /// Months, bits 1-12.
    pub(crate) months: u64,
    /// Years, bit `year - 1970`.
    pub(crate) years: [u64; 4],
    /// Which days of a month match.
    pub(crate) days: DaySpec,
}

/// The day rule: whichever of day-of-month and day-of-week is not `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DaySpec {
    /// Day-of-month values, bits 1-31.
    MonthDays(u64),
    /// `L` in day-of-month: the last day of the month.
    LastDay,
    /// `LW`: the last weekday (Monday to Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest to day n, within the month.
    NearestWeekday(i8),
    /// Day-of-week values, bits 1-7 with 1 = Sunday.
    Weekdays(u64),
    /// `nL` in day-of-week: the last such weekday of the month.
    LastOf(Weekday),
    /// `d#k`: the k-th such weekday of the month.
    Nth(Weekday, i8),
}

/// Bits `lo..=hi` set.
pub(crate) const fn span(lo: u32, hi: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

/// The lowest set bit of `mask` at or above `from`.
#[inline]
pub(crate) fn next_bit(mask: u64, from: i32) -> Option<i32> {
    if from >= 64 {
        return None;
    }
    let rest = mask & (u64::MAX << from.max(0));
    (rest != 0).then(|| rest.trailing_zeros() as i32)
}

impl Cron {
    /// The first year in the year set at or after `from`.
    fn next_year(&self, from: i32) -> Option<i32> {
        let mut index = (from - i32::from(FIRST_YEAR)).max(0);
        while index <= i32::from(LAST_YEAR - FIRST_YEAR) {
            let word = (index / 64) as usize;
            if let Some(bit) = next_bit(self.years[word], index % 64) {
                return Some(i32::from(FIRST_YEAR) + word as i32 * 64 + bit);
            }
            index = (word as i32 + 1) * 64;
        }
        None
    }

    /// The days of `year`-`month` that match, as bits 1-31.
    pub(crate) fn day_mask(&self, year: i16, month: i8) -> u64 {
        let Ok(first) = Date::new(year, month, 1) else { return 0 };
        let len = first.days_in_month();
        let bit = |day: i8| 1u64 << day;
        match self.days {
            DaySpec::MonthDays(days) => days & span(1, len as u32),
            DaySpec::LastDay => bit(len),
            DaySpec::LastWeekday => match first.last_of_month().weekday() {
                Weekday::Saturday => bit(len - 1),
                Weekday::Sunday => bit(len - 2),
                _ => bit(len),
            },
            DaySpec::NearestWeekday(n) if n > len => 0,
            DaySpec::NearestWeekday(n) => match first.weekday().wrapping_add(n - 1) {
                // Never into the neighbouring month: a Saturday the 1st moves to Monday the
                // 3rd, a Sunday that ends the month to the Friday before.
                Weekday::Saturday if n == 1 => bit(3),
                Weekday::Saturday => bit(n - 1),
                Weekday::Sunday if n == len => bit(n - 2),
                Weekday::Sunday => bit(n + 1),
                _ => bit(n),
            },
            DaySpec::Weekdays(set) => {
                let first_weekday = first.weekday();
                let mut mask = 0;
                for number in 1..=7 {
                    if set & (1 << number) == 0 {
                        continue;
                    }
                    let weekday = Weekday::from_sunday_one_offset(number).expect("1..=7");
                    let mut day = 1 + first_weekday.until(weekday);
                    while day <= len {
                        mask |= bit(day);
                        day += 7;
                    }
                }
                mask
            }
            DaySpec::LastOf(weekday) => first.nth_weekday_of_month(-1, weekday).map_or(0, |d| bit(d.day())),
            DaySpec::Nth(weekday, k) => first.nth_weekday_of_month(k, weekday).map_or(0, |d| bit(d.day())),
        }
    }

    /// The first time of day at or after `hour:minute:second` that matches, if any today.
    #[inline]
    pub(crate) fn next_time(&self, mut hour: i32, mut minute: i32, mut second: i32) -> Option<(i32, i32, i32)> {
        loop {
            let h = next_bit(self.hours, hour)?;
            if h != hour {
                (hour, minute, second) = (h, 0, 0);
            }
            let Some(m) = next_bit(self.minutes, minute) else {
                (hour, minute, second) = (hour + 1, 0, 0);
                continue;
            };
            if m != minute {
                (minute, second) = (m, 0);
            }
            let Some(s) = next_bit(self.seconds, second) else {
                (minute, second) = (minute + 1, 0);
                continue;
            };
            return Some((hour, minute, s));
        }
    }

    /// The first local date and time at or after `from` (whole seconds; a fraction of a second
    /// in `from` is ignored) that the expression names, or `None` if there is none before the
    /// end of 2199.
    pub(crate) fn next_local(&self, from: DateTime) -> Option<DateTime> {
        let (mut year, mut month, mut day) = (i32::from(from.year()), i32::from(from.month()), i32::from(from.day()));
        let (mut hour, mut minute, mut second) =
            (i32::from(from.hour()), i32::from(from.minute()), i32::from(from.second()));
        let mut cached: Option<((i32, i32), u64)> = None;
        loop {
            let y = self.next_year(year)?;
            if y != year {
                (year, month, day, hour, minute, second) = (y, 1, 1, 0, 0, 0);
            }
            let Some(m) = next_bit(self.months, month) else {
                (year, month, day, hour, minute, second) = (year + 1, 1, 1, 0, 0, 0);
                continue;
            };
            if m != month {
                (month, day, hour, minute, second) = (m, 1, 0, 0, 0);
            }
            let days = match cached {
                Some((key, mask)) if key == (year, month) => mask,
                _ => {
                    let mask = self.day_mask(year as i16, month as i8);
                    cached = Some(((year, month), mask));
                    mask
                }
            };
            let Some(d) = next_bit(days, day) else {
                (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                continue;
            };
            if d != day {
                (day, hour, minute, second) = (d, 0, 0, 0);
            }
            match self.next_time(hour, minute, second) {
                Some((h, mi, s)) => {
                    return DateTime::new(year as i16, month as i8, day as i8, h as i8, mi as i8, s as i8, 0).ok();
                }
                None => (day, hour, minute, second) = (day + 1, 0, 0, 0),
            }
        }
    }

    /// The first matching date strictly after `date`, or `None` after 2199.
    pub(crate) fn next_day_after(&self, date: Date) -> Option<Date> {
        let next = date.tomorrow().ok()?;
        let first = self.next_local(next.to_datetime(jiff::civil::Time::midnight()))?;
        Some(first.date())
    }

    /// The first matching time of day, if the expression names any (it always does: every
    /// field set is non-empty).
    pub(crate) fn first_time(&self) -> (i32, i32, i32) {
        self.next_time(0, 0, 0).expect("every time field names at least one value")
    }
}

// ---- grammar -----------------------------------------------------------------------------------

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// How one field reads its values.
struct FieldSpec {
    field: CronField,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, ...
    names: &'static [&'static str],
    /// What the field accepts, for messages.
    accepts: &'static str,
}

const SECONDS: FieldSpec =
    FieldSpec { field: CronField::Seconds, min: 0, max: 59, names: &[], accepts: "0-59 with , - * /" };
const MINUTES: FieldSpec =
    FieldSpec { field: CronField::Minutes, min: 0, max: 59, names: &[], accepts: "0-59 with , - * /" };
const HOURS: FieldSpec =
    FieldSpec { field: CronField::Hours, min: 0, max: 23, names: &[], accepts: "0-23 with , - * /" };
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
    accepts: "1-31 with , - * ? / or one of L, LW, nW",
};
const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &MONTH_NAMES,
    accepts: "1-12 or JAN-DEC with , - * /",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &DAY_NAMES,
    accepts: "1-7 or SUN-SAT (1 = SUN) with , - * ? or one of L, nL, d#k",
};
const YEAR: FieldSpec = FieldSpec {
    field: CronField::Year,
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
    names: &[],
    accepts: "1970-2199 with , - * /",
};

/// A problem with one field: which field, and the message tail.
pub(crate) type FieldProblem = (CronField, String, String);

fn problem(spec: &FieldSpec, text: &str, message: String) -> FieldProblem {
    (spec.field, text.to_string(), message)
}

/// Parses the fields of a `cron(...)` (6 or 7 of them, already split) into a [`Cron`], or names
/// the first field that is wrong. `Err(Err(both))` means both day fields are `?` (true) or
/// neither is (false); the caller words that one.
pub(crate) fn parse_fields(fields: &[&str]) -> Result<Cron, Result<FieldProblem, bool>> {
    let (seconds_text, rest) = match fields.len() {
        7 => (Some(fields[0]), &fields[1..]),
        _ => (None, fields),
    };
    let seconds = match seconds_text {
        Some(text) => parse_set(&SECONDS, text).map_err(Ok)?,
        None => 1,
    };
    let minutes = parse_set(&MINUTES, rest[0]).map_err(Ok)?;
    let hours = parse_set(&HOURS, rest[1]).map_err(Ok)?;
    let dom = parse_day_of_month(rest[2]).map_err(Ok)?;
    let months = parse_set(&MONTH, rest[3]).map_err(Ok)?;
    let dow = parse_day_of_week(rest[4]).map_err(Ok)?;
    let years = parse_years(rest[5]).map_err(Ok)?;
    let days = match (dom, dow) {
        (Some(days), None) | (None, Some(days)) => days,
        (None, None) => return Err(Err(true)),
        (Some(_), Some(_)) => return Err(Err(false)),
    };
    Ok(Cron { seconds, has_seconds: seconds_text.is_some(), minutes, hours, months, years, days })
}

/// The characters other than digits and names a field accepts.
fn check_characters(spec: &FieldSpec, text: &str, extra: &str) -> Result<(), FieldProblem> {
    if text.is_empty() {
        return Err(problem(spec, text, format!("it is empty; the {} field takes {}", spec.field, spec.accepts)));
    }
    for c in text.chars() {
        let name_letter = c.is_ascii_alphabetic() && !spec.names.is_empty();
        if c.is_ascii_digit() || name_letter || ",-*/".contains(c) || extra.contains(c) {
            continue;
        }
        let c = c.to_ascii_uppercase();
        let special = "?LW#".contains(c);
        let why = if special {
            format!("'{c}' is not allowed in the {} field, which takes {}", spec.field, spec.accepts)
        } else {
            format!("'{c}' is not allowed; the {} field takes {}", spec.field, spec.accepts)
        };
        return Err(problem(spec, text, why));
    }
    Ok(())
}

/// A number or (for months and weekdays) a name, checked against the field's range.
fn parse_value(spec: &FieldSpec, whole: &str, item: &str) -> Result<u32, FieldProblem> {
    if item.is_empty() {
        return Err(problem(
            spec,
            whole,
            format!("a value is missing; the {} field takes {}", spec.field, spec.accepts),
        ));
    }
    if item.bytes().all(|b| b.is_ascii_digit()) {
        let value = if item.len() > 6 { u32::MAX } else { item.parse::<u32>().unwrap_or(u32::MAX) };
        if value < spec.min || value > spec.max {
            let names = match spec.names.len() {
                12 => " or JAN-DEC",
                7 => " or SUN-SAT (1 = SUN)",
                _ => "",
            };
            return Err(problem(
                spec,
                whole,
                format!("{item} is out of range; {} values are {}-{}{names}", spec.field, spec.min, spec.max),
            ));
        }
        return Ok(value);
    }
    if let Some(index) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(item)) {
        return Ok(spec.min + index as u32);
    }
    let names = match spec.names.len() {
        12 => " or a month name JAN-DEC",
        7 => " or a day name SUN-SAT",
        _ => "",
    };
    Err(problem(
        spec,
        whole,
        format!("\"{item}\" is not a number{names}; the {} field takes {}", spec.field, spec.accepts),
    ))
}

/// A list of `*`, `a`, `a-b`, `a/n`, `*/n` and `a-b/n` items as a bit set (bit = value).
fn parse_set(spec: &FieldSpec, text: &str) -> Result<u64, FieldProblem> {
    check_characters(spec, text, "")?;
    let mut bits = 0u64;
    for value in parse_items(spec, text)? {
        bits |= 1 << value;
    }
    Ok(bits)
}

/// The values a list names, in the field's numbering.
fn parse_items(spec: &FieldSpec, text: &str) -> Result<Vec<u32>, FieldProblem> {
    let size = spec.max - spec.min + 1;
    let mut values = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(problem(spec, text, "a list has an empty item (two commas in a row, or one at an end)".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                if step.contains('/') {
                    return Err(problem(spec, text, format!("\"{item}\" has more than one '/'")));
                }
                let n = if step.bytes().all(|b| b.is_ascii_digit()) && !step.is_empty() && step.len() <= 6 {
                    step.parse::<u32>().unwrap_or(0)
                } else {
                    0
                };
                if n == 0 || n > size {
                    return Err(problem(
                        spec,
                        text,
                        format!("the increment after '/' in \"{item}\" must be a number from 1 to {size}"),
                    ));
                }
                (range, Some(n))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            if a.is_empty() || b.is_empty() || b.contains('-') {
                return Err(problem(spec, text, format!("\"{range}\" is not a range like 1-5")));
            }
            (parse_value(spec, text, a)?, parse_value(spec, text, b)?)
        } else if range.contains('*') {
            return Err(problem(spec, text, format!("'*' must stand alone or as */n, not in \"{range}\"")));
        } else {
            let a = parse_value(spec, text, range)?;
            (a, if step.is_some() { spec.max } else { a })
        };
        if start > end && spec.field == CronField::Year {
            return Err(problem(spec, text, format!("the range {range} runs backwards; years can't wrap around")));
        }
        // Positions along the field, wrapping past its end for a range like 22-2.
        let length = (end + size - start) % size + 1;
        let step = step.unwrap_or(1);
        let mut position = 0;
        while position < length {
            values.push(spec.min + (start - spec.min + position) % size);
            position += step;
        }
    }
    Ok(values)
}

/// The year field, as bits `year - 1970` (230 years don't fit one u64).
fn parse_years(text: &str) -> Result<[u64; 4], FieldProblem> {
    check_characters(&YEAR, text, "")?;
    let mut years = [0u64; 4];
    for value in parse_items(&YEAR, text)? {
        let index = (value - YEAR.min) as usize;
        years[index / 64] |= 1 << (index % 64);
    }
    Ok(years)
}

/// Day-of-month: `Ok(None)` for `?`.
fn parse_day_of_month(text: &str) -> Result<Option<DaySpec>, FieldProblem> {
    let spec = &DAY_OF_MONTH;
    check_characters(spec, text, "?LWlw")?;
    let upper = text.to_ascii_uppercase();
    match upper.as_str() {
        "?" => return Ok(None),
        "L" => return Ok(Some(DaySpec::LastDay)),
        "LW" => return Ok(Some(DaySpec::LastWeekday)),
        _ => {}
    }
    if let Some(day) = upper.strip_suffix('W')
        && !day.is_empty()
        && day.bytes().all(|b| b.is_ascii_digit())
    {
        let value = parse_value(spec, text, day)?;
        return Ok(Some(DaySpec::NearestWeekday(value as i8)));
    }
    if upper.contains(['?', 'L', 'W']) {
        return Err(problem(
            spec,
            text,
            "'?' must stand alone, and L and W only as L, LW or nW (like 15W), not in lists or ranges".into(),
        ));
    }
    Ok(Some(DaySpec::MonthDays(parse_set(spec, text)?)))
}

/// Day-of-week: `Ok(None)` for `?`.
fn parse_day_of_week(text: &str) -> Result<Option<DaySpec>, FieldProblem> {
    let spec = &DAY_OF_WEEK;
    check_characters(spec, text, "?#")?;
    let upper = text.to_ascii_uppercase();
    if upper == "?" {
        return Ok(None);
    }
    if upper.contains('/') {
        return Err(problem(
            spec,
            text,
            format!("'/' is not allowed in the day-of-week field, which takes {}", spec.accepts),
        ));
    }
    let weekday = |value: u32| Weekday::from_sunday_one_offset(value as i8).expect("1..=7");
    if upper == "L" {
        return Ok(Some(DaySpec::Weekdays(1 << 7)));
    }
    if let Some((day, nth)) = upper.split_once('#') {
        if day.contains([',', '-', '*', '?', 'L']) || nth.contains([',', '-', '*', '?', 'L', '#']) {
            return Err(problem(spec, text, "d#k (like TUE#3) must stand alone, not in lists or ranges".into()));
        }
        let value = parse_value(spec, text, day)?;
        let k = match nth.parse::<i8>() {
            Ok(k @ 1..=5) if nth.len() == 1 => k,
            _ => {
                return Err(problem(
                    spec,
                    text,
                    format!("the k in d#k must be 1 to 5 (the k-th such day of the month), not \"{nth}\""),
                ));
            }
        };
        return Ok(Some(DaySpec::Nth(weekday(value), k)));
    }
    if let Some(day) = upper.strip_suffix('L')
        && !day.contains([',', '-', '*', '?', 'L'])
    {
        let value = parse_value(spec, text, day)?;
        return Ok(Some(DaySpec::LastOf(weekday(value))));
    }
    if upper.contains('?') || upper.contains('L') {
        return Err(problem(
            spec,
            text,
            "'?' must stand alone, and L only as L or nL (like 6L or FRIL), not in lists or ranges".into(),
        ));
    }
    Ok(Some(DaySpec::Weekdays(parse_set(spec, text)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(text: &str) -> Cron {
        let fields: Vec<&str> = text.split_whitespace().collect();
        parse_fields(&fields).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn values(mask: u64) -> Vec<u32> {
        (0..64).filter(|b| mask & (1 << b) != 0).collect()
    }

    #[test]
    fn sets() {
        let c = cron("0/15 9-17 * JAN,mar-May ? *");
        assert_eq!(values(c.minutes), [0, 15, 30, 45]);
        assert_eq!(values(c.hours), (9..=17).collect::<Vec<_>>());
        assert_eq!(values(c.months), [1, 3, 4, 5]);
        assert_eq!(c.seconds, 1);
        let c = cron("*/20 22-2 ? * FRI-MON 2020-2030/5");
        assert_eq!(values(c.minutes), [0, 20, 40]);
        assert_eq!(values(c.hours), [0, 1, 2, 22, 23]);
        assert_eq!(c.days, DaySpec::Weekdays(1 << 1 | 1 << 2 | 1 << 6 | 1 << 7));
        assert_eq!(c.next_year(1970), Some(2020));
        assert_eq!(c.next_year(2021), Some(2025));
        assert_eq!(c.next_year(2031), None);
        let c = cron("22-2/2 * * * ? *");
        assert_eq!(
            values(c.minutes),
            [0, 2, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58]
        );
        let c = cron("10 5/6 * * ? *");
        assert_eq!(values(c.hours), [5, 11, 17, 23]);
    }

    #[test]
    fn day_rules() {
        let d = |text: &str| cron(&format!("0 0 {text} *")).days;
        assert_eq!(d("L * ?"), DaySpec::LastDay);
        assert_eq!(d("lw * ?"), DaySpec::LastWeekday);
        assert_eq!(d("15W * ?"), DaySpec::NearestWeekday(15));
        assert_eq!(d("? * 6L"), DaySpec::LastOf(Weekday::Friday));
        assert_eq!(d("? * FRIL"), DaySpec::LastOf(Weekday::Friday));
        assert_eq!(d("? * THU#3"), DaySpec::Nth(Weekday::Thursday, 3));
        assert_eq!(d("? * 2#1"), DaySpec::Nth(Weekday::Monday, 1));
        assert_eq!(d("? * L"), DaySpec::Weekdays(1 << 7));
        assert_eq!(d("? * *"), DaySpec::Weekdays(span(1, 7)));
        assert_eq!(d("* * ?"), DaySpec::MonthDays(span(1, 31)));
    }

    #[test]
    fn day_masks_from_the_calendar() {
        let days = |text: &str, y, m| values(cron(&format!("0 0 {text} *")).day_mask(y, m));
        // February 2024 has 29 days and starts on a Thursday.
        assert_eq!(days("L * ?", 2024, 2), [29]);
        assert_eq!(days("L * ?", 2023, 2), [28]);
        assert_eq!(days("31 * ?", 2024, 4), Vec::<u32>::new());
        // 2024-08-31 is a Saturday, 2024-03-31 a Sunday.
        assert_eq!(days("LW * ?", 2024, 8), [30]);
        assert_eq!(days("LW * ?", 2024, 3), [29]);
        // 2024-06-01 is a Saturday: 1W is Monday the 3rd; 2024-06-15 Saturday -> Friday 14.
        assert_eq!(days("1W * ?", 2024, 6), [3]);
        assert_eq!(days("15W * ?", 2024, 6), [14]);
        // 2024-06-30 is a Sunday and the last day: Friday the 28th.
        assert_eq!(days("30W * ?", 2024, 6), [28]);
        // 2024-09-01 is a Sunday: Monday the 2nd.
        assert_eq!(days("1W * ?", 2024, 9), [2]);
        assert_eq!(days("31W * ?", 2024, 9), Vec::<u32>::new());
        assert_eq!(days("? * THU#3", 2024, 2), [15]);
        assert_eq!(days("? * THU#5", 2024, 2), [29]);
        assert_eq!(days("? * THU#5", 2024, 3), Vec::<u32>::new());
        assert_eq!(days("? * 6L", 2024, 5), [31]);
        assert_eq!(days("? * MON-FRI", 2024, 2).len(), 21);
        assert_eq!(days("? * 1", 2024, 2), [4, 11, 18, 25]);
    }

    #[test]
    fn next_local_walks_fields_in_order() {
        let at = |s: &str| s.parse::<DateTime>().unwrap();
        let c = cron("15 10 ? * 6L *");
        assert_eq!(c.next_local(at("2024-05-01T00:00:00")), Some(at("2024-05-31T10:15:00")));
        assert_eq!(c.next_local(at("2024-05-31T10:15:00")), Some(at("2024-05-31T10:15:00")));
        assert_eq!(c.next_local(at("2024-05-31T10:15:01")), Some(at("2024-06-28T10:15:00")));
        let c = cron("0 0 29 2 ? *");
        assert_eq!(c.next_local(at("2097-03-01T00:00:00")), Some(at("2104-02-29T00:00:00")));
        let c = cron("0 0 30 2 ? *");
        assert_eq!(c.next_local(at("1970-01-01T00:00:00")), None);
        let c = cron("24 30 09 ? * * *");
        assert!(c.has_seconds);
        assert_eq!(c.next_local(at("2024-01-01T09:30:24")), Some(at("2024-01-01T09:30:24")));
        assert_eq!(c.next_local(at("2024-01-01T09:30:25")), Some(at("2024-01-02T09:30:24")));
        let c = cron("0 0 1 1 ? 2199");
        assert_eq!(c.next_local(at("2199-01-01T00:00:01")), None);
        assert_eq!(c.next_local(at("1900-01-01T00:00:00")), Some(at("2199-01-01T00:00:00")));
    }
}
