//! The one error type of the schedule module. Every message is a whole sentence that names the
//! exact problem (which part of the expression, which value, what is allowed), written to be
//! returned to an API client as it is: maintenance windows answer `ValidationException` with it,
//! associations `InvalidSchedule`; the callers choose the code, this module only the words.

use std::fmt;

/// The longest schedule expression SSM accepts (the model's `MaintenanceWindowSchedule` and
/// `ScheduleExpression` are 1 to 256 characters).
pub const MAX_EXPRESSION_CHARS: usize = 256;

/// A field of a `cron(...)` expression, named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// The optional leading seconds field of the 7-field form.
    Seconds,
    /// Minutes, 0-59.
    Minutes,
    /// Hours, 0-23.
    Hours,
    /// Day of month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day of week, 1-7 or SUN-SAT (1 = SUN).
    DayOfWeek,
    /// Year, 1970-2199.
    Year,
}

impl CronField {
    /// The field's name as AWS's documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Seconds => "seconds",
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a schedule expression, its options or a date can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is the empty string.
    #[error("The schedule expression is empty. Write cron(...), rate(...) or at(...).")]
    Empty,
    /// The expression is longer than [`MAX_EXPRESSION_CHARS`].
    #[error("The schedule expression is {chars} characters long, but at most 256 are allowed.")]
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// Not `cron(...)`, `rate(...)` or `at(...)`.
    #[error(
        "The schedule expression {expr} is not of the form cron(...), rate(...) or at(...) (lower case, with nothing before or after)."
    )]
    UnknownForm {
        /// The expression.
        expr: String,
    },
    /// A `cron(...)` with other than 6 or 7 fields.
    #[error(
        "The schedule expression {expr} has {count} fields, but cron(...) takes 6 (minutes hours day-of-month month day-of-week year) or 7 (with seconds first)."
    )]
    FieldCount {
        /// The expression.
        expr: String,
        /// How many whitespace-separated fields it has.
        count: usize,
    },
    /// One field of a `cron(...)` is wrong.
    #[error("The schedule expression {expr} has an invalid {field} field \"{value}\": {problem}.")]
    Field {
        /// The expression.
        expr: String,
        /// Which field.
        field: CronField,
        /// The field's text.
        value: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// Both day-of-month and day-of-week are `?`, or neither is.
    #[error(
        "The schedule expression {expr} {}, but exactly one of them must be '?' (cron can't use both day fields, nor neither).",
        if *.both { "has '?' as both day-of-month and day-of-week" } else { "has '?' as neither day-of-month nor day-of-week" }
    )]
    DayFields {
        /// The expression.
        expr: String,
        /// True when both are `?`, false when neither is.
        both: bool,
    },
    /// A `rate(...)` that is malformed.
    #[error("The schedule expression {expr} is not a valid rate: {problem}.")]
    Rate {
        /// The expression.
        expr: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// An `at(...)` that is malformed or names a time that does not exist.
    #[error("The schedule expression {expr} is not a valid at(yyyy-MM-ddTHH:mm:ss): {problem}.")]
    At {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// An `at(...)` whose local time is skipped by a daylight-saving change in its time zone, so
    /// A time zone that is not an IANA time zone id.
    #[error(
        "The time zone \"{zone}\" is not a known IANA time zone id (such as UTC, America/Los_Angeles or Asia/Seoul)."
    )]
    UnknownTimeZone {
        /// The time zone as given.
        zone: String,
    },
    /// A schedule offset outside 1 to 6 days.
    #[error("The schedule offset {offset} is out of range: it must be 1 to 6 days.")]
    OffsetRange {
        /// The offset as given.
        offset: i64,
    },
    /// A schedule offset with a `rate(...)` or `at(...)` expression.
    #[error("A schedule offset can only be used with a cron expression, not with {expr}.")]
    OffsetNeedsCron {
        /// The expression.
        expr: String,
    },
    /// An end date that is not after the start date.
    #[error("The end date {end} must be later than the start date {start}.")]
    EndBeforeStart {
        /// The start date, as ISO 8601.
        start: String,
        /// The end date, as ISO 8601.
        end: String,
    },
    /// A start or end date that is not an ISO 8601 date and time.
    #[error(
        "The date and time \"{value}\" is not in ISO-8601 form like 2021-01-01T00:00:00-08:00 or 2021-01-01T08:00:00Z: {problem}."
    )]
    DateTime {
        /// The text as given.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// A valid expression that State Manager associations don't support.
    #[error("The schedule expression {expr} can't be used for an association: {problem}.")]
    NotForAssociation {
        /// The expression.
        expr: String,
        /// Which restriction it breaks.
        problem: String,
    },
    /// A valid expression that maintenance windows don't support.
    #[error("The schedule expression {expr} can't be used for a maintenance window: {problem}.")]
    NotForWindow {
        /// The expression.
        expr: String,
        /// Which restriction it breaks.
        problem: String,
    },
}
