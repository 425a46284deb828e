//! Tests of the schedule module: AWS's documented examples, refusals and their messages,
//! daylight-saving behaviour, options, wire formats, the per-capability checks, and property
//! tests against a brute-force reference that walks local time through jiff.

use super::*;

/// Epoch milliseconds of an ISO 8601 instant.
fn ms(text: &str) -> i64 {
    parse_date_time(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn table(expr: &str, zone: Option<&str>, set_at: &str) -> Timetable {
    let options = ScheduleOptions { timezone: zone.map(str::to_string), ..Default::default() };
    Timetable::new(&Schedule::parse(expr).unwrap(), &options, ms(set_at)).unwrap()
}

/// The first `n` runs after `after`, written in UTC with seconds.
fn runs(table: &Timetable, after: &str, n: usize) -> Vec<String> {
    table.occurrences(ms(after)).take(n).map(|t| format_utc(t, Precision::Second)).collect()
}

/// The first `n` runs after `after`, written in the table's zone.
fn local_runs(table: &Timetable, after: &str, n: usize) -> Vec<String> {
    table.occurrences(ms(after)).take(n).map(|t| format_in_zone(t, table.zone(), Precision::Second)).collect()
}

fn refused(expr: &str) -> ScheduleError {
    Schedule::parse(expr).expect_err(expr)
}

fn message_has(err: &ScheduleError, fragments: &[&str]) {
    let message = err.to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "message {message:?} lacks {fragment:?}");
    }
    assert!(message.starts_with(|c: char| c.is_ascii_uppercase()), "{message:?} is not capitalised");
    assert!(message.ends_with('.'), "{message:?} does not end with a full stop");
}

// ---- AWS's documented examples -------------------------------------------------------------

#[test]
fn documented_cron_examples() {
    let cases: &[(&str, &str, &[&str])] = &[
        // 02:00 on the third Thursday of every month.
        ("cron(0 2 ? * THU#3 *)", "2026-01-01T00:00:00Z", &["2026-01-15T02:00:00Z", "2026-02-19T02:00:00Z"]),
        // 02:00 on the last day of every month (2028 is a leap year).
        (
            "cron(0 2 L * ? *)",
            "2028-01-31T03:00:00Z",
            &["2028-02-29T02:00:00Z", "2028-03-31T02:00:00Z", "2028-04-30T02:00:00Z"],
        ),
        // 10:15 on the last Friday of every month.
        ("cron(15 10 ? * 6L *)", "2026-01-01T00:00:00Z", &["2026-01-30T10:15:00Z", "2026-02-27T10:15:00Z"]),
        // 10:15 Monday to Friday.
        (
            "cron(15 10 ? * MON-FRI *)",
            "2026-01-02T10:15:00Z",
            &["2026-01-05T10:15:00Z", "2026-01-06T10:15:00Z", "2026-01-07T10:15:00Z"],
        ),
        // 09:30:24 every day (the 7-field form with seconds).
        ("cron(24 30 09 ? * * *)", "2026-01-01T09:30:24Z", &["2026-01-02T09:30:24Z", "2026-01-03T09:30:24Z"]),
        // Every 30 minutes, as the association guide writes it (7 fields, seconds 0).
        ("cron(0 */30 * * * ? *)", "2026-01-01T00:10:00Z", &["2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"]),
        ("cron(0 0 0/4 1/1 * ? *)", "2026-01-01T00:00:00Z", &["2026-01-01T04:00:00Z", "2026-01-01T08:00:00Z"]),
        ("cron(0 0 ? * 3L *)", "2026-01-01T00:00:00Z", &["2026-01-27T00:00:00Z", "2026-02-24T00:00:00Z"]),
        ("cron(15 13 ? * MON *)", "2026-01-01T00:00:00Z", &["2026-01-05T13:15:00Z", "2026-01-12T13:15:00Z"]),
        ("cron(0 9 15W * ? *)", "2026-08-01T00:00:00Z", &["2026-08-14T09:00:00Z", "2026-09-15T09:00:00Z"]),
        ("cron(0 9 LW * ? *)", "2026-05-01T00:00:00Z", &["2026-05-29T09:00:00Z", "2026-06-30T09:00:00Z"]),
    ];
    for (expr, after, expected) in cases {
        let t = table(expr, None, "2020-01-01T00:00:00Z");
        assert_eq!(runs(&t, after, expected.len()), *expected, "{expr}");
    }
}

#[test]
fn schedule_in_a_time_zone() {
    // The user guide's example: cron(0 09 ? * WED *) in Los Angeles from a start date.
    let options = ScheduleOptions {
        timezone: Some("America/Los_Angeles".into()),
        start_ms: Some(ms("2021-01-01T00:00:00-08:00")),
        ..Default::default()
    };
    let schedule = Schedule::parse("cron(0 09 ? * WED *)").unwrap();
    let t = Timetable::new(&schedule, &options, ms("2020-12-01T00:00:00Z")).unwrap();
    assert_eq!(local_runs(&t, "2020-12-01T00:00:00Z", 2), ["2021-01-06T09:00:00-08:00", "2021-01-13T09:00:00-08:00"]);
    // Summer time moves the UTC instant, not the local time.
    assert_eq!(local_runs(&t, "2021-06-01T00:00:00Z", 1), ["2021-06-02T09:00:00-07:00"]);
    assert_eq!(runs(&t, "2021-06-01T00:00:00Z", 1), ["2021-06-02T16:00:00Z"]);
}

#[test]
fn documented_rate_examples() {
    let created = "2020-02-12T23:19:20.596Z";
    let cases: &[(&str, &[&str])] = &[
        ("rate(5 minutes)", &["2020-02-12T23:24:20.596Z", "2020-02-12T23:29:20.596Z"]),
        ("rate(180 minutes)", &["2020-02-13T02:19:20.596Z", "2020-02-13T05:19:20.596Z"]),
        ("rate(3 days)", &["2020-02-15T23:19:20.596Z", "2020-02-18T23:19:20.596Z"]),
        ("rate(1 minute)", &["2020-02-12T23:20:20.596Z"]),
        ("rate(1 hour)", &["2020-02-13T00:19:20.596Z"]),
        ("rate(1 day)", &["2020-02-13T23:19:20.596Z"]),
        ("rate(30 minutes)", &["2020-02-12T23:49:20.596Z"]),
    ];
    for (expr, expected) in cases {
        let t = table(expr, Some("America/New_York"), created);
        let got: Vec<String> =
            t.occurrences(ms(created)).take(expected.len()).map(|t| format_utc(t, Precision::Millisecond)).collect();
        assert_eq!(got, *expected, "{expr}");
    }
}

#[test]
fn rate_anchors() {
    let rate = Schedule::parse("rate(2 hours)").unwrap();
    let set_at = ms("2026-01-01T00:00:00Z");
    // A start date ahead of the set time is itself the first run (k >= 0).
    let ahead = ScheduleOptions { start_ms: Some(ms("2026-01-05T10:00:00Z")), ..Default::default() };
    let t = Timetable::new(&rate, &ahead, set_at).unwrap();
    assert_eq!(t.next_after(set_at), Some(ms("2026-01-05T10:00:00Z")));
    assert_eq!(t.next_after(ms("2026-01-05T10:00:00Z")), Some(ms("2026-01-05T12:00:00Z")));
    assert_eq!(t.next_after(ms("2026-01-05T11:59:59.999Z")), Some(ms("2026-01-05T12:00:00Z")));
    // A start date already past is replaced by the set time (k >= 1).
    let past = ScheduleOptions { start_ms: Some(ms("2025-06-01T00:00:00Z")), ..Default::default() };
    let t = Timetable::new(&rate, &past, set_at).unwrap();
    assert_eq!(t.next_after(set_at), Some(ms("2026-01-01T02:00:00Z")));
    // Rates are elapsed time: across New York's spring-forward, 24 hours later is 1 hour later
    // on the wall clock.
    let daily = table("rate(1 day)", Some("America/New_York"), "2026-03-07T12:00:00-05:00");
    assert_eq!(
        local_runs(&daily, "2026-03-07T12:00:00-05:00", 2),
        ["2026-03-08T13:00:00-04:00", "2026-03-09T13:00:00-04:00"]
    );
}

#[test]
fn at_runs_once_in_its_zone() {
    let utc = table("at(2026-03-01T15:55:00)", None, "2026-01-01T00:00:00Z");
    assert_eq!(runs(&utc, "2026-01-01T00:00:00Z", 3), ["2026-03-01T15:55:00Z"]);
    assert_eq!(utc.next_after(ms("2026-03-01T15:55:00Z")), None);
    let seoul = table("at(2026-03-01T15:55:00)", Some("Asia/Seoul"), "2026-01-01T00:00:00Z");
    assert_eq!(runs(&seoul, "2026-01-01T00:00:00Z", 3), ["2026-03-01T06:55:00Z"]);
    // Not before the start date, not after the end date.
    let schedule = Schedule::parse("at(2026-03-01T15:55:00)").unwrap();
    let late_start = ScheduleOptions { start_ms: Some(ms("2026-03-02T00:00:00Z")), ..Default::default() };
    assert_eq!(Timetable::new(&schedule, &late_start, 0).unwrap().next_after(0), None);
    let early_end = ScheduleOptions { end_ms: Some(ms("2026-03-01T15:54:59Z")), ..Default::default() };
    assert_eq!(Timetable::new(&schedule, &early_end, 0).unwrap().next_after(0), None);
}

// ---- ScheduleOffset, StartDate, EndDate -------------------------------------------------------

#[test]
fn offset_moves_each_run_forward() {
    // The guide's example: cron(30 23 ? * TUE#3 *) with offset 2 runs on the Thursday after
    // the third Tuesday.
    let schedule = Schedule::parse("cron(30 23 ? * TUE#3 *)").unwrap();
    let options = ScheduleOptions { offset_days: Some(2), ..Default::default() };
    let t = Timetable::new(&schedule, &options, ms("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        runs(&t, "2026-01-01T00:00:00Z", 3),
        ["2026-01-22T23:30:00Z", "2026-02-19T23:30:00Z", "2026-03-19T23:30:00Z"]
    );
    // Set after this month's third Tuesday but before its Thursday: this period is skipped.
    let t = Timetable::new(&schedule, &options, ms("2026-01-21T00:00:00Z")).unwrap();
    assert_eq!(runs(&t, "2026-01-21T00:00:00Z", 1), ["2026-02-19T23:30:00Z"]);
    // Set before the third Tuesday: this period counts.
    let t = Timetable::new(&schedule, &options, ms("2026-01-20T23:29:59Z")).unwrap();
    assert_eq!(runs(&t, "2026-01-20T23:29:59Z", 1), ["2026-01-22T23:30:00Z"]);
    // Offset runs still pending when asked later are kept.
    let t = Timetable::new(&schedule, &options, ms("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(t.next_after(ms("2026-01-21T12:00:00Z")), Some(ms("2026-01-22T23:30:00Z")));
}

#[test]
fn a_skipped_match_before_the_set_time_is_skipped_with_its_period() {
    // 2026-03-08 02:30 does not exist in New York (02:00 -> 03:00 EDT). With offset 1 its run
    // would be 2026-03-09 02:30; set at 03:10 EDT, after the jump, that match is in the past,
    // so the first run comes from the next match.
    let schedule = Schedule::parse("cron(30 2 * * ? *)").unwrap();
    let options =
        ScheduleOptions { timezone: Some("America/New_York".into()), offset_days: Some(1), ..Default::default() };
    let t = Timetable::new(&schedule, &options, ms("2026-03-08T03:10:00-04:00")).unwrap();
    assert_eq!(local_runs(&t, "2026-03-08T03:10:00-04:00", 1), ["2026-03-10T02:30:00-04:00"]);
    // Set just before the jump, the match counts.
    let t = Timetable::new(&schedule, &options, ms("2026-03-08T01:59:00-05:00")).unwrap();
    assert_eq!(local_runs(&t, "2026-03-08T01:59:00-05:00", 1), ["2026-03-09T02:30:00-04:00"]);
}

#[test]
fn offset_keeps_the_wall_clock_across_daylight_saving() {
    // Saturday 2026-03-07 10:00 in New York plus 1 day is Sunday 10:00, after the change.
    let schedule = Schedule::parse("cron(0 10 ? * SAT *)").unwrap();
    let options =
        ScheduleOptions { timezone: Some("America/New_York".into()), offset_days: Some(1), ..Default::default() };
    let t = Timetable::new(&schedule, &options, ms("2026-03-01T00:00:00Z")).unwrap();
    assert_eq!(local_runs(&t, "2026-03-05T00:00:00Z", 2), ["2026-03-08T10:00:00-04:00", "2026-03-15T10:00:00-04:00"]);
}

#[test]
fn start_and_end_dates_bound_the_runs() {
    let schedule = Schedule::parse("cron(0 12 * * ? *)").unwrap();
    let options = ScheduleOptions {
        start_ms: Some(ms("2026-01-10T12:00:00Z")),
        end_ms: Some(ms("2026-01-13T12:00:00Z")),
        ..Default::default()
    };
    let t = Timetable::new(&schedule, &options, ms("2026-01-01T00:00:00Z")).unwrap();
    // The first run is the first match after the start date; the end date is inclusive.
    assert_eq!(
        runs(&t, "2026-01-01T00:00:00Z", 10),
        ["2026-01-11T12:00:00Z", "2026-01-12T12:00:00Z", "2026-01-13T12:00:00Z"]
    );
    assert_eq!(t.next_after(ms("2026-01-13T12:00:00Z")), None);
    let until: Vec<i64> = t.occurrences_until(ms("2026-01-01T00:00:00Z"), ms("2026-01-12T12:00:00Z")).collect();
    assert_eq!(until, [ms("2026-01-11T12:00:00Z"), ms("2026-01-12T12:00:00Z")]);
    let rate = Schedule::parse("rate(1 day)").unwrap();
    let t = Timetable::new(&rate, &options, ms("2026-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        runs(&t, "2026-01-01T00:00:00Z", 10),
        ["2026-01-10T12:00:00Z", "2026-01-11T12:00:00Z", "2026-01-12T12:00:00Z", "2026-01-13T12:00:00Z"]
    );
}

#[test]
fn schedules_end_with_2199() {
    let t = table("cron(0 0 1 1 ? *)", None, "2026-01-01T00:00:00Z");
    assert_eq!(t.occurrences(ms("2197-06-01T00:00:00Z")).count(), 2);
    assert_eq!(t.next_after(ms("2199-01-01T00:00:00Z")), None);
    // A day that never comes.
    let never = table("cron(0 0 30 2 ? *)", None, "2026-01-01T00:00:00Z");
    assert_eq!(never.next_after(0), None);
    assert_eq!(never.occurrences(0).next(), None);
}

// ---- daylight saving time ----------------------------------------------------------------------

#[test]
fn a_time_the_clocks_skip_runs_once_when_they_jump() {
    // New York springs forward 2026-03-08 02:00 -> 03:00: 02:30 runs at 03:00 that day.
    let t = table("cron(30 2 * * ? *)", Some("America/New_York"), "2026-03-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-03-06T12:00:00Z", 3),
        ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    );
    // next_after agrees with the iterator.
    assert_eq!(t.next_after(ms("2026-03-07T02:30:00-05:00")), Some(ms("2026-03-08T03:00:00-04:00")));
    // Every 15 minutes: 02:00-02:45 and 03:00 are one run at the jump, then 03:15.
    let t = table("cron(0/15 * * * ? *)", Some("America/New_York"), "2026-03-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-03-08T01:40:00-05:00", 3),
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"]
    );
    assert_eq!(t.next_after(ms("2026-03-08T03:00:00-04:00")), Some(ms("2026-03-08T03:15:00-04:00")));
    // Los Angeles (2026-03-08), Berlin (2026-03-29 02:00 -> 03:00): a 02:30 window runs at 03:00.
    for (zone, day, jump) in [
        ("America/Los_Angeles", "2026-03-08", "2026-03-08T03:00:00-07:00"),
        ("Europe/Berlin", "2026-03-29", "2026-03-29T03:00:00+02:00"),
    ] {
        let t = table("cron(30 2 * * ? *)", Some(zone), "2026-03-01T00:00:00Z");
        let runs = local_runs(&t, &format!("{day}T00:00:00Z"), 2);
        assert_eq!(runs[0], jump, "{zone}");
        assert!(runs[1].contains("T02:30:00"), "{zone}: {runs:?}");
    }
    // Lord Howe Island moves its clocks by 30 minutes (2026-10-04 02:00 -> 02:30): 02:15 runs at
    // 02:30 with 02:30 itself, once.
    let t = table("cron(0/15 * * * ? *)", Some("Australia/Lord_Howe"), "2026-09-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-10-04T01:40:00+10:30", 3),
        ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]
    );
    // The Chatham Islands skip 02:45 -> 03:45 (2026-09-27): 03:00 runs at 03:45.
    let t = table("cron(0 3 * * ? *)", Some("Pacific/Chatham"), "2026-09-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-09-26T00:00:00Z", 3),
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45", "2026-09-29T03:00:00+13:45"]
    );
    // Kathmandu (+05:45) has no daylight saving: every day is the same.
    let t = table("cron(30 2 * * ? *)", Some("Asia/Kathmandu"), "2026-03-01T00:00:00Z");
    assert_eq!(local_runs(&t, "2026-03-06T12:00:00Z", 2), ["2026-03-07T02:30:00+05:45", "2026-03-08T02:30:00+05:45"]);
}

#[test]
fn a_time_the_clocks_repeat_runs_once_at_the_first_pass() {
    // New York falls back 2026-11-01 02:00 -> 01:00: 01:30 happens at -04:00, then at -05:00.
    let t = table("cron(30 1 * * ? *)", Some("America/New_York"), "2026-10-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-10-31T12:00:00Z", 3),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"]
    );
    // Asked during the second pass, the next run is the next day's.
    assert_eq!(t.next_after(ms("2026-11-01T01:10:00-05:00")), Some(ms("2026-11-02T01:30:00-05:00")));
    // Every 20 minutes: the repeated hour runs once; after 01:40 (-04:00) comes 02:00 (-05:00).
    let t = table("cron(0/20 * * * ? *)", Some("America/New_York"), "2026-10-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-11-01T01:30:00-04:00", 3),
        ["2026-11-01T01:40:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:20:00-05:00"]
    );
    assert_eq!(t.next_after(ms("2026-11-01T01:30:00-05:00")), Some(ms("2026-11-01T02:00:00-05:00")));
    // London's repeated hour is 01:00-02:00 (2026-10-25).
    let t = table("cron(15 1 * * ? *)", Some("Europe/London"), "2026-10-01T00:00:00Z");
    assert_eq!(local_runs(&t, "2026-10-24T12:00:00Z", 2), ["2026-10-25T01:15:00+01:00", "2026-10-26T01:15:00+00:00"]);
}

#[test]
fn a_run_at_the_first_instant_of_a_gap_runs_when_the_clocks_jump() {
    // 02:00 itself is the first time New York skips on 2026-03-08 (the property test found
    // this: the jump was looked up strictly before 02:00 EST, which is the jump itself).
    let t = table("cron(0 2 * * ? *)", Some("America/New_York"), "2026-03-01T00:00:00Z");
    assert_eq!(
        local_runs(&t, "2026-03-08T06:59:59.999Z", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
    );
    let t = table("at(2026-03-08T02:00:00)", Some("America/New_York"), "2026-01-01T00:00:00Z");
    assert_eq!(local_runs(&t, "2026-01-01T00:00:00Z", 2), ["2026-03-08T03:00:00-04:00"]);
}

#[test]
fn at_in_a_gap_runs_when_the_clocks_jump_and_in_an_overlap_at_the_first_pass() {
    let t = table("at(2026-03-08T02:30:00)", Some("America/New_York"), "2026-01-01T00:00:00Z");
    assert_eq!(local_runs(&t, "2026-01-01T00:00:00Z", 2), ["2026-03-08T03:00:00-04:00"]);
    let t = table("at(2026-11-01T01:30:00)", Some("America/New_York"), "2026-01-01T00:00:00Z");
    assert_eq!(local_runs(&t, "2026-01-01T00:00:00Z", 2), ["2026-11-01T01:30:00-04:00"]);
}

// ---- refusals ------------------------------------------------------------------------------------

#[test]
fn invalid_expressions_say_what_is_wrong() {
    let cases: &[(&str, &[&str])] = &[
        ("rate(1 hours)", &["rate(1 hours)", "singular", "rate(1 hour)"]),
        ("rate(5 hour)", &["plural", "rate(5 hours)"]),
        ("rate(1 minutes)", &["rate(1 minute)"]),
        ("rate(0 minutes)", &["at least 1"]),
        ("rate(-5 minutes)", &["\"-5\" is not a positive whole number"]),
        ("rate(5 weeks)", &["\"weeks\" is not a unit"]),
        ("rate(5)", &["a whole number and a unit"]),
        ("rate(5 Minutes)", &["\"Minutes\" is not a unit"]),
        ("rate(99999999999 minutes)", &["too large"]),
        ("cron(0 2 ? * ? *)", &["'?' as both day-of-month and day-of-week", "exactly one"]),
        ("cron(0 2 1 * MON *)", &["'?' as neither day-of-month nor day-of-week", "exactly one"]),
        ("cron(0 2 * * * *)", &["as neither"]),
        ("cron(60 2 * * ? *)", &["minutes field \"60\"", "60 is out of range", "0-59"]),
        ("cron(0 24 * * ? *)", &["hours field \"24\"", "0-23"]),
        ("cron(0 2 32 * ? *)", &["day-of-month field \"32\"", "1-31"]),
        ("cron(0 2 0 * ? *)", &["day-of-month field \"0\"", "out of range"]),
        ("cron(0 2 * 13 ? *)", &["month field \"13\"", "1-12"]),
        ("cron(0 2 ? * 8 *)", &["day-of-week field \"8\"", "1-7"]),
        ("cron(0 2 ? * 0 *)", &["day-of-week field \"0\"", "SUN-SAT"]),
        ("cron(0 2 * * ? 1969)", &["year field \"1969\"", "1970-2199"]),
        ("cron(0 2 * * ? 2200)", &["year field \"2200\"", "out of range"]),
        ("cron(0 2 * FOO ? *)", &["month field \"FOO\"", "\"FOO\" is not a number or a month name JAN-DEC"]),
        ("cron(0 2 ? * FUN *)", &["day-of-week field \"FUN\"", "day name SUN-SAT"]),
        ("cron(0 2 ? * MONDAY *)", &["\"MONDAY\""]),
        ("cron(0 2 ? * THU#6 *)", &["\"THU#6\"", "1 to 5"]),
        ("cron(0 2 ? * THU#0 *)", &["1 to 5"]),
        ("cron(0 2 ? * 1/2 *)", &["'/' is not allowed in the day-of-week field"]),
        ("cron(0 2 ? * MON,TUE#2 *)", &["must stand alone"]),
        ("cron(0 2 L,15 * ? *)", &["L, LW or nW"]),
        ("cron(0 2 L-3 * ? *)", &["L, LW or nW"]),
        ("cron(0 2 32W * ? *)", &["32 is out of range"]),
        ("cron(0 2 1#2 * ? *)", &["'#' is not allowed in the day-of-month field"]),
        ("cron(0 L * * ? *)", &["'L' is not allowed in the hours field"]),
        ("cron(? 2 * * ? *)", &["'?' is not allowed in the minutes field"]),
        ("cron(0/0 2 * * ? *)", &["increment", "1 to 60"]),
        ("cron(0/61 2 * * ? *)", &["1 to 60"]),
        ("cron(0 2 * * ? 2030-2020)", &["runs backwards"]),
        ("cron(1-2-3 2 * * ? *)", &["not a range"]),
        ("cron(0,,5 2 * * ? *)", &["empty item"]),
        ("cron(5* 2 * * ? *)", &["'*' must stand alone"]),
        ("cron(0 2 * * ?)", &["has 5 fields", "6 (minutes hours day-of-month month day-of-week year)"]),
        ("cron(0 0 2 * * ? * 1)", &["has 8 fields"]),
        ("cron(0 2 * * ? *", &["not of the form"]),
        ("CRON(0 2 * * ? *)", &["not of the form"]),
        (" cron(0 2 * * ? *)", &["not of the form"]),
        ("cron(0 2 * * ? *) ", &["not of the form"]),
        ("every day", &["not of the form"]),
        ("at(2026-02-30T00:00:00)", &["day 30 does not exist in 2026-02, which has 28 days"]),
        ("at(2026-01-01T24:00:00)", &["24:00:00 does not exist"]),
        ("at(2026-01-01 00:00:00)", &["yyyy-MM-ddTHH:mm:ss"]),
        ("at(2026-01-01T00:00:00Z)", &["yyyy-MM-ddTHH:mm:ss"]),
        ("at(2300-01-01T00:00:00)", &["year 2300 is out of range"]),
    ];
    for (expr, fragments) in cases {
        message_has(&refused(expr), fragments);
    }
    assert_eq!(refused(""), ScheduleError::Empty);
    message_has(&refused(""), &["empty"]);
    let long = format!("cron(0 2 * * ? {})", "2026,".repeat(60) + "2026");
    message_has(&refused(&long), &["at most 256"]);
    assert!(matches!(refused("cron(60 2 * * ? *)"), ScheduleError::Field { field: CronField::Minutes, .. }));
}

#[test]
fn names_are_case_insensitive_and_numbers_may_have_leading_zeros() {
    let a = Schedule::parse("cron(0 9 ? jan-Mar mon-fri *)").unwrap();
    let b = Schedule::parse("cron(00 09 ? 1-3 2-6 *)").unwrap();
    assert_eq!(a.expr, b.expr);
    assert_eq!(a.as_str(), "cron(0 9 ? jan-Mar mon-fri *)");
    assert_eq!(a.to_string(), a.as_str());
    assert_eq!(a.kind(), ScheduleKind::Cron);
    assert_eq!(Schedule::parse("rate(5 minutes)").unwrap().rate(), Some(Rate { value: 5, unit: RateUnit::Minute }));
    assert_eq!(Schedule::parse("at(2026-01-01T00:00:00)").unwrap().kind(), ScheduleKind::At);
}

#[test]
fn options_are_checked() {
    let cron = Schedule::parse("cron(0 2 ? * THU#3 *)").unwrap();
    let rate = Schedule::parse("rate(1 day)").unwrap();
    let with = |o: ScheduleOptions, s: &Schedule| Timetable::new(s, &o, 0).unwrap_err();
    let err = with(ScheduleOptions { timezone: Some("Mars/Olympus_Mons".into()), ..Default::default() }, &cron);
    assert_eq!(err, ScheduleError::UnknownTimeZone { zone: "Mars/Olympus_Mons".into() });
    message_has(&err, &["\"Mars/Olympus_Mons\"", "IANA"]);
    for zone in ["", "+05:00", "EST5EDT,M3.2.0,M11.1.0", "../etc/passwd"] {
        assert!(matches!(
            with(ScheduleOptions { timezone: Some(zone.into()), ..Default::default() }, &cron),
            ScheduleError::UnknownTimeZone { .. }
        ));
    }
    for zone in ["UTC", "Etc/UTC", "America/Los_Angeles", "asia/seoul", "Pacific/Chatham", "Asia/Kolkata"] {
        let options = ScheduleOptions { timezone: Some(zone.into()), ..Default::default() };
        assert!(Timetable::new(&cron, &options, 0).is_ok(), "{zone}");
    }
    for offset in [0, 7, -1] {
        let err = with(ScheduleOptions { offset_days: Some(offset), ..Default::default() }, &cron);
        assert_eq!(err, ScheduleError::OffsetRange { offset });
        message_has(&err, &["1 to 6 days"]);
    }
    let err = with(ScheduleOptions { offset_days: Some(2), ..Default::default() }, &rate);
    message_has(&err, &["only be used with a cron expression", "rate(1 day)"]);
    let err = with(ScheduleOptions { start_ms: Some(1000), end_ms: Some(1000), ..Default::default() }, &rate);
    message_has(&err, &["end date 1970-01-01T00:00:01Z must be later than the start date"]);
}

// ---- per-capability checks ---------------------------------------------------------------------

#[test]
fn association_schedules() {
    let ok = [
        "cron(0/30 * * * ? *)",
        "cron(0 */30 * * * ? *)",
        "cron(15/30 * * * ? *)",
        "cron(0 0/1 * * ? *)",
        "cron(0 0/2 * * ? *)",
        "cron(0 1/4 * * ? *)",
        "cron(0 0 0/4 1/1 * ? *)",
        "cron(0 0/8 * * ? *)",
        "cron(0 0/12 * * ? *)",
        "cron(15 10 * * ? *)",
        "cron(15 10 ? * * *)",
        "cron(15 13 ? * MON *)",
        "cron(30 23 ? * TUE#3 *)",
        "cron(0 0 ? * 3L *)",
        "rate(30 minutes)",
        "rate(1 hour)",
        "rate(5 hours)",
        "rate(15 days)",
        "rate(30 days)",
        "at(2026-01-01T00:00:00)",
    ];
    for expr in ok {
        check_association(&Schedule::parse(expr).unwrap()).unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
    let refused: &[(&str, &str)] = &[
        ("rate(29 minutes)", "at least 30 minutes"),
        ("rate(1 minute)", "at least 30 minutes"),
        ("rate(31 days)", "less than 31 days"),
        ("rate(744 hours)", "less than 31 days"),
        ("cron(30 */30 * * * ? *)", "seconds field must be 0"),
        ("cron(0 2 ? 6 MON *)", "the month field must be *"),
        ("cron(0 2 ? * MON 2027)", "the year field must be *"),
        ("cron(0/15 * * * ? *)", "only these cadences"),
        ("cron(0 0/3 * * ? *)", "only these cadences"),
        ("cron(0 2 ? * MON-FRI *)", "only these cadences"),
        ("cron(0 2 15 * ? *)", "only these cadences"),
        ("cron(0 2 L * ? *)", "only these cadences"),
        ("cron(0 2,13 * * ? *)", "only these cadences"),
        ("cron(0 0/4 ? * MON *)", "only these cadences"),
    ];
    for (expr, fragment) in refused {
        let err = check_association(&Schedule::parse(expr).unwrap()).expect_err(expr);
        assert!(matches!(err, ScheduleError::NotForAssociation { .. }));
        message_has(&err, &[expr, "can't be used for an association", fragment]);
    }
}

#[test]
fn window_schedules_run_at_most_every_5_minutes() {
    for expr in [
        "rate(5 minutes)",
        "rate(1 hour)",
        "cron(0/5 * * * ? *)",
        "cron(24 30 09 ? * * *)",
        "cron(0,30 * * * ? *)",
        "cron(0 0,5,10 * * * ? *)",
        "cron(0 2 ? * THU#3 *)",
        "at(2026-01-01T00:00:00)",
    ] {
        check_window(&Schedule::parse(expr).unwrap()).unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
    for (expr, fragment) in [
        ("rate(4 minutes)", "a rate must be 5 minutes or more"),
        ("rate(1 minute)", "a rate must be 5 minutes or more"),
        ("cron(* * * * ? *)", "runs 1 minute apart"),
        ("cron(0/4 * * * ? *)", "runs 4 minutes apart"),
        ("cron(0,30 * * * * ? *)", "runs 30 seconds apart"),
        ("cron(0,58 0,1 * * ? *)", "runs 2 minutes apart"),
    ] {
        let err = check_window(&Schedule::parse(expr).unwrap()).expect_err(expr);
        message_has(&err, &[expr, "maintenance window", fragment]);
    }
}

// ---- wire formats --------------------------------------------------------------------------------

#[test]
fn wire_formats() {
    let t = ms("2020-02-12T23:19:20.596Z");
    assert_eq!(format_utc(t, Precision::Minute), "2020-02-12T23:19Z");
    assert_eq!(format_utc(t, Precision::Second), "2020-02-12T23:19:20Z");
    assert_eq!(format_utc(t, Precision::Millisecond), "2020-02-12T23:19:20.596Z");
    assert_eq!(format_utc(ms("2020-02-19T16:00:00Z"), Precision::Minute), "2020-02-19T16:00Z");
    let la = Zone::parse("America/Los_Angeles").unwrap();
    assert_eq!(format_in_zone(ms("2019-10-20T12:34:56Z"), &la, Precision::Second), "2019-10-20T05:34:56-07:00");
    assert_eq!(
        format_in_zone(ms("2020-07-25T14:00:00Z"), &Zone::parse("Australia/Brisbane").unwrap(), Precision::Minute),
        "2020-07-26T00:00+10:00"
    );
    assert_eq!(
        format_in_zone(ms("2026-01-01T00:00:00Z"), &Zone::parse("Asia/Kolkata").unwrap(), Precision::Second),
        "2026-01-01T05:30:00+05:30"
    );
    assert_eq!(
        format_in_zone(ms("2026-01-01T00:00:00Z"), &Zone::parse("Europe/London").unwrap(), Precision::Second),
        "2026-01-01T00:00:00+00:00"
    );
    assert_eq!(format_in_zone(ms("2026-01-01T00:00:00Z"), &Zone::utc(), Precision::Second), "2026-01-01T00:00:00Z");
    assert_eq!(
        format_in_zone(ms("2026-01-01T00:00:00Z"), &Zone::parse("Etc/UTC").unwrap(), Precision::Minute),
        "2026-01-01T00:00Z"
    );
    assert_eq!(Zone::parse("America/Los_Angeles").unwrap().name(), "America/Los_Angeles");
    assert!(Zone::utc().is_utc() && !la.is_utc());
}

#[test]
fn start_and_end_date_inputs() {
    assert_eq!(ms("2021-01-01T00:00:00-08:00"), ms("2021-01-01T08:00:00Z"));
    assert_eq!(parse_date_time("2021-01-01T08:00:00Z"), Ok(1_609_488_000_000));
    assert_eq!(parse_date_time("2021-04-07T14:29:00-08:00"), Ok(1_617_834_540_000));
    assert_eq!(parse_date_time("2021-01-01T08:00Z"), Ok(1_609_488_000_000));
    assert_eq!(parse_date_time("2021-01-01T08:00:00.123Z"), Ok(1_609_488_000_123));
    assert_eq!(parse_date_time("2021-01-01T13:30:00+05:30"), Ok(1_609_488_000_000));
    // No offset: UTC.
    assert_eq!(parse_date_time("2021-01-01T08:00:00"), Ok(1_609_488_000_000));
    for (bad, fragment) in [
        ("2021-01-01", "no time"),
        ("2021-02-30T00:00:00Z", "day"),
        ("2021-01-01T25:00:00Z", "hour"),
        ("yesterday", ""),
        ("2021-01-01T00:00:00Z[America/New_York]", "brackets"),
        ("", ""),
    ] {
        let err = parse_date_time(bad).expect_err(bad);
        assert!(matches!(err, ScheduleError::DateTime { .. }));
        message_has(&err, &[&format!("\"{bad}\""), "ISO-8601", fragment]);
    }
}

// ---- properties ------------------------------------------------------------------------------------

mod reference {
    //! A brute-force reference: it walks local dates one by one and, on days that match, every
    //! hour, minute and second in order, checking each against predicates written here
    //! independently of the engine (naive loops over jiff dates, no bit sets), and resolves
    //! each local time through jiff by the daylight-saving rule (gap: the jump; repeated: the
    //! first pass).

    use jiff::civil::{Date, DateTime, Weekday};
    use jiff::tz::{AmbiguousOffset, TimeZone};
    use jiff::{Span, Timestamp};
    use proptest::prelude::*;

    /// One comma-separated item of a field.
    #[derive(Debug, Clone)]
    pub enum Item {
        One(u32),
        Range(u32, u32),
        From(u32, u32),
        StarStep(u32),
        RangeStep(u32, u32, u32),
    }

    /// A numeric field: `*` (empty list) or items.
    #[derive(Debug, Clone)]
    pub struct Field {
        pub items: Vec<Item>,
        pub min: u32,
        pub max: u32,
        /// Write values as names (JAN, MON) where the field has them.
        pub names: bool,
    }

    const MONTHS: [&str; 12] = ["JAN", "feb", "Mar", "APR", "may", "JUN", "jul", "AUG", "sep", "OCT", "nov", "DEC"];
    const DAYS: [&str; 7] = ["SUN", "mon", "Tue", "WED", "thu", "FRI", "sat"];

    impl Field {
        fn value(&self, v: u32) -> String {
            match (self.names, self.max) {
                (true, 12) => MONTHS[(v - 1) as usize].to_string(),
                (true, 7) => DAYS[(v - 1) as usize].to_string(),
                _ => v.to_string(),
            }
        }

        pub fn render(&self) -> String {
            if self.items.is_empty() {
                return "*".into();
            }
            let items: Vec<String> = self
                .items
                .iter()
                .map(|item| match *item {
                    Item::One(a) => self.value(a),
                    Item::Range(a, b) => format!("{}-{}", self.value(a), self.value(b)),
                    Item::From(a, n) => format!("{}/{n}", self.value(a)),
                    Item::StarStep(n) => format!("*/{n}"),
                    Item::RangeStep(a, b, n) => format!("{}-{}/{n}", self.value(a), self.value(b)),
                })
                .collect();
            items.join(",")
        }

        pub fn contains(&self, v: u32) -> bool {
            let size = self.max - self.min + 1;
            // Steps along a range that may wrap past the end of the field (22-2).
            let along = |a: u32, b: u32, n: u32| {
                let position = (v + size - a) % size;
                position <= (b + size - a) % size && position.is_multiple_of(n)
            };
            self.items.is_empty()
                || self.items.iter().any(|item| match *item {
                    Item::One(a) => v == a,
                    Item::Range(a, b) if a <= b => (a..=b).contains(&v),
                    Item::Range(a, b) => v >= a || v <= b,
                    Item::From(a, n) => v >= a && (v - a).is_multiple_of(n),
                    Item::StarStep(n) => (v - self.min).is_multiple_of(n),
                    Item::RangeStep(a, b, n) if a <= b => (a..=b).contains(&v) && (v - a).is_multiple_of(n),
                    Item::RangeStep(a, b, n) => along(a, b, n),
                })
        }
    }

    /// The day part: the field that is not `?`.
    #[derive(Debug, Clone)]
    pub enum DayRule {
        MonthDays(Field),
        Last,
        LastWeekday,
        Nearest(u32),
        Weekdays(Field),
        LastOf(u32),
        Nth(u32, u32),
    }

    fn is_weekend(date: Date) -> bool {
        matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
    }

    impl DayRule {
        /// (day-of-month, day-of-week) texts.
        pub fn render(&self) -> (String, String) {
            let q = "?".to_string();
            match self {
                DayRule::MonthDays(f) => (f.render(), q),
                DayRule::Last => ("L".into(), q),
                DayRule::LastWeekday => ("LW".into(), q),
                DayRule::Nearest(n) => (format!("{n}W"), q),
                DayRule::Weekdays(f) => (q, f.render()),
                DayRule::LastOf(d) => (q, format!("{d}L")),
                DayRule::Nth(d, k) => (q, format!("{}#{k}", DAYS[(*d - 1) as usize])),
            }
        }

        pub fn matches(&self, date: Date) -> bool {
            let days_of_month = || {
                let first = date.first_of_month();
                (0..31)
                    .filter_map(move |i| first.checked_add(Span::new().days(i)).ok())
                    .filter(move |d| d.month() == first.month())
            };
            let sunday_one = |d: Date| d.weekday().to_sunday_one_offset() as u32;
            match self {
                DayRule::MonthDays(f) => f.contains(date.day() as u32),
                DayRule::Last => date == date.last_of_month(),
                DayRule::LastWeekday => days_of_month().rfind(|d| !is_weekend(*d)) == Some(date),
                DayRule::Nearest(n) => {
                    if *n > date.days_in_month() as u32 {
                        return false;
                    }
                    let nearest =
                        days_of_month().filter(|d| !is_weekend(*d)).min_by_key(|d| (d.day() as i32 - *n as i32).abs());
                    nearest == Some(date)
                }
                DayRule::Weekdays(f) => f.contains(sunday_one(date)),
                DayRule::LastOf(w) => days_of_month().rfind(|d| sunday_one(*d) == *w) == Some(date),
                DayRule::Nth(w, k) => {
                    days_of_month().filter(|d| sunday_one(*d) == *w).nth(*k as usize - 1) == Some(date)
                }
            }
        }
    }

    /// A generated cron expression.
    #[derive(Debug, Clone)]
    pub struct Spec {
        pub seconds: Option<Field>,
        pub minutes: Field,
        pub hours: Field,
        pub days: DayRule,
        pub months: Field,
        pub years: Field,
    }

    impl Spec {
        pub fn render(&self) -> String {
            let (dom, dow) = self.days.render();
            let mut fields = Vec::new();
            if let Some(s) = &self.seconds {
                fields.push(s.render());
            }
            fields.extend([
                self.minutes.render(),
                self.hours.render(),
                dom,
                self.months.render(),
                dow,
                self.years.render(),
            ]);
            format!("cron({})", fields.join(" "))
        }

        fn day_matches(&self, date: Date) -> bool {
            self.years.contains(date.year() as u32)
                && self.months.contains(date.month() as u32)
                && self.days.matches(date)
        }

        /// Every matching local time, in order, from the start of `from` for `days` days.
        pub fn local_matches(&self, from: Date, days: i64) -> impl Iterator<Item = DateTime> + '_ {
            (0..days)
                .filter_map(move |i| from.checked_add(Span::new().days(i)).ok())
                .filter(move |date| self.day_matches(*date))
                .flat_map(move |date| {
                    (0..24u32).filter(move |h| self.hours.contains(*h)).flat_map(move |h| {
                        (0..60u32).filter(move |m| self.minutes.contains(*m)).flat_map(move |m| {
                            (0..60u32)
                                .filter(move |s| self.seconds.as_ref().map_or(*s == 0, |f| f.contains(*s)))
                                .map(move |s| date.at(h as i8, m as i8, s as i8, 0))
                        })
                    })
                })
        }
    }

    /// The rule: in a gap, the first local time after it that exists (the jump); the first
    /// pass in a fold.
    pub fn resolve(tz: &TimeZone, local: DateTime) -> Option<i64> {
        existing(tz, local).or_else(|| base_instant(tz, local))
    }

    /// A local time that exists (`None` in a gap), the first pass in a fold.
    fn existing(tz: &TimeZone, local: DateTime) -> Option<i64> {
        let ambiguous = tz.to_ambiguous_timestamp(local);
        match ambiguous.offset() {
            AmbiguousOffset::Gap { .. } => None,
            AmbiguousOffset::Fold { before, after } => {
                let a = before.to_timestamp(local).ok()?.as_millisecond();
                let b = after.to_timestamp(local).ok()?.as_millisecond();
                Some(a.min(b))
            }
            AmbiguousOffset::Unambiguous { offset } => Some(offset.to_timestamp(local).ok()?.as_millisecond()),
        }
    }

    /// The instant a local time counts from for the anchor rule: a time in a gap counts as
    /// the first local time after it that exists (found by walking minute by minute).
    pub fn base_instant(tz: &TimeZone, local: DateTime) -> Option<i64> {
        let mut probe = local;
        for _ in 0..(48 * 60) {
            if let Some(ms) = existing(tz, probe) {
                return Some(ms);
            }
            probe = probe.checked_add(Span::new().minutes(1)).ok()?.with().second(0).build().ok()?;
        }
        None
    }

    pub fn local_date(tz: &TimeZone, ms: i64) -> Date {
        tz.to_datetime(Timestamp::from_millisecond(ms).unwrap()).date()
    }

    // ---- generators ----

    fn item(min: u32, max: u32) -> BoxedStrategy<Item> {
        let size = max - min + 1;
        prop_oneof![
            3 => (min..=max).prop_map(Item::One),
            2 => (min..=max, min..=max).prop_map(|(a, b)| Item::Range(a, b)),
            2 => (min..=max, 1..=size).prop_map(|(a, n)| Item::From(a, n)),
            1 => (1..=size).prop_map(Item::StarStep),
            1 => (min..=max, min..=max, 1..=size).prop_map(|(a, b, n)| Item::RangeStep(a, b, n)),
        ]
        .boxed()
    }

    /// A field, `*` with weight `star` out of 10.
    pub fn field(min: u32, max: u32, star: u32, names: bool) -> impl Strategy<Value = Field> {
        let items = prop_oneof![
            star => Just(Vec::new()),
            (10 - star) => prop::collection::vec(item(min, max), 1..=3),
        ];
        (items, any::<bool>()).prop_map(move |(items, use_names)| Field { items, min, max, names: names && use_names })
    }

    /// Hours near the usual daylight-saving changes (0-4) are drawn more often.
    fn hours() -> impl Strategy<Value = Field> {
        prop_oneof![
            3 => field(0, 23, 3, false),
            2 => prop::collection::vec(prop_oneof![(0u32..=4).prop_map(Item::One), (0u32..=4, 0u32..=4).prop_map(|(a, b)| Item::Range(a, b))], 1..=2)
                .prop_map(|items| Field { items, min: 0, max: 23, names: false }),
        ]
    }

    /// Minutes on the quarter hours (where Lord Howe's and Chatham's changes fall) more often.
    fn minutes() -> impl Strategy<Value = Field> {
        prop_oneof![
            3 => field(0, 59, 2, false),
            2 => prop::collection::vec(prop_oneof![Just(0u32), Just(15), Just(30), Just(45)].prop_map(Item::One), 1..=3)
                .prop_map(|items| Field { items, min: 0, max: 59, names: false }),
        ]
    }

    fn days() -> impl Strategy<Value = DayRule> {
        prop_oneof![
            4 => field(1, 31, 5, false).prop_map(DayRule::MonthDays),
            1 => Just(DayRule::Last),
            1 => Just(DayRule::LastWeekday),
            // The month's edges are where nW must not cross into the next or previous month.
            2 => prop_oneof![1u32..=31, prop::sample::select(vec![1u32, 2, 28, 29, 30, 31])].prop_map(DayRule::Nearest),
            4 => weekdays().prop_map(DayRule::Weekdays),
            1 => (1u32..=7).prop_map(DayRule::LastOf),
            1 => (1u32..=7, 1u32..=5).prop_map(|(d, k)| DayRule::Nth(d, k)),
        ]
    }

    /// Day-of-week takes no '/' (spec §4.1).
    fn weekdays() -> impl Strategy<Value = Field> {
        let item =
            prop_oneof![(1u32..=7).prop_map(Item::One), (1u32..=7, 1u32..=7).prop_map(|(a, b)| Item::Range(a, b))];
        let items = prop_oneof![4 => Just(Vec::new()), 6 => prop::collection::vec(item, 1..=3)];
        (items, any::<bool>()).prop_map(|(items, names)| Field { items, min: 1, max: 7, names })
    }

    fn years() -> impl Strategy<Value = Field> {
        prop_oneof![
            8 => Just(Field { items: Vec::new(), min: 1970, max: 2199, names: false }),
            1 => (1995u32..=2040, 2000u32..=2060).prop_map(|(a, b)| Field { items: vec![Item::Range(a.min(b), a.max(b))], min: 1970, max: 2199, names: false }),
            1 => (1970u32..=2030, 1u32..=3).prop_map(|(a, n)| Field { items: vec![Item::From(a, n)], min: 1970, max: 2199, names: false }),
        ]
    }

    pub fn spec(with_seconds: bool) -> impl Strategy<Value = Spec> {
        let seconds = if with_seconds { field(0, 59, 2, false).prop_map(Some).boxed() } else { Just(None).boxed() };
        (seconds, minutes(), hours(), days(), field(1, 12, 7, true), years()).prop_map(
            |(seconds, minutes, hours, days, months, years)| Spec { seconds, minutes, hours, days, months, years },
        )
    }

    pub const ZONES: [&str; 6] =
        ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"];

    /// An instant: anywhere in 1995-2045, or near a time zone transition (within two days, or
    /// within three hours to land in skipped and repeated hours often).
    pub fn instant(zone: usize) -> impl Strategy<Value = i64> {
        let anywhere = (788_918_400_000i64..2_366_841_600_000).boxed(); // 1995-01-01 .. 2045-01-01
        let near_change = move |window: i64| {
            (1996i16..=2044, 0usize..2, -window..window)
                .prop_map(move |(year, which, delta)| {
                    let tz = super::super::Zone::parse(ZONES[zone]).unwrap().tz().clone();
                    let start = Date::new(year, 1, 1).unwrap().to_zoned_datetime(tz.clone()).unwrap().timestamp();
                    let change = tz.following(start).nth(which).map_or(start, |t| t.timestamp());
                    change.as_millisecond() + delta
                })
                .boxed()
        };
        prop_oneof![1 => anywhere, 1 => near_change(172_800_000), 2 => near_change(10_800_000)]
    }
}

mod properties {
    use jiff::Span;
    use proptest::prelude::*;

    use super::super::*;
    use super::reference::{self, Spec, ZONES};

    /// How far the reference looks ahead: 3 years of days.
    const HORIZON_DAYS: i64 = 3 * 366;

    fn check_next(spec: &Spec, zone: usize, after: i64) -> Result<(), TestCaseError> {
        let expr = spec.render();
        let schedule = Schedule::parse(&expr).map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?;
        let options = ScheduleOptions { timezone: Some(ZONES[zone].into()), ..Default::default() };
        let table = Timetable::new(&schedule, &options, i64::MIN / 4).unwrap();
        let tz = Zone::parse(ZONES[zone]).unwrap().tz().clone();
        let from = reference::local_date(&tz, after).checked_sub(Span::new().days(2)).unwrap();
        let expected =
            spec.local_matches(from, HORIZON_DAYS).filter_map(|l| reference::resolve(&tz, l)).find(|&t| t > after);
        let got = table.next_after(after);
        match expected {
            Some(_) => prop_assert_eq!(
                got,
                expected,
                "{} in {} after {}",
                expr,
                ZONES[zone],
                format_utc(after, Precision::Millisecond)
            ),
            // Nothing within the horizon: the engine may only find something beyond it.
            None => {
                let horizon = after + (HORIZON_DAYS - 3) * 86_400_000;
                prop_assert!(
                    got.is_none_or(|t| t > horizon),
                    "{} in {}: engine {:?}, reference none",
                    expr,
                    ZONES[zone],
                    got
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn next_matches_the_minute_walk((zone, after) in (0..ZONES.len()).prop_flat_map(|z| (Just(z), reference::instant(z))),
                                        spec in reference::spec(false)) {
            check_next(&spec, zone, after)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 250, ..ProptestConfig::default() })]

        #[test]
        fn next_matches_the_second_walk((zone, after) in (0..ZONES.len()).prop_flat_map(|z| (Just(z), reference::instant(z))),
                                        spec in reference::spec(true)) {
            check_next(&spec, zone, after)?;
        }

        /// Offsets, anchors and the "skip this period" rule against the reference.
        #[test]
        fn offset_runs_match_the_walk((zone, anchor) in (0..ZONES.len()).prop_flat_map(|z| (Just(z), reference::instant(z))),
                                      spec in reference::spec(false),
                                      offset in 1i64..=6,
                                      later in -864_000_000i64..5_184_000_000) {
            let expr = spec.render();
            let schedule = Schedule::parse(&expr).unwrap();
            let options = ScheduleOptions { timezone: Some(ZONES[zone].into()), offset_days: Some(offset), ..Default::default() };
            let table = Timetable::new(&schedule, &options, anchor).unwrap();
            let after = anchor + later;
            let tz = Zone::parse(ZONES[zone]).unwrap().tz().clone();
            let from = reference::local_date(&tz, after.min(anchor)).checked_sub(Span::new().days(offset + 2)).unwrap();
            let expected = spec
                .local_matches(from, HORIZON_DAYS)
                .filter(|base| reference::base_instant(&tz, *base).is_some_and(|t| t > anchor))
                .filter_map(|base| reference::resolve(&tz, base.checked_add(Span::new().days(offset)).unwrap()))
                .find(|&t| t > after);
            let got = table.next_after(after);
            match expected {
                Some(_) => prop_assert_eq!(got, expected, "{} +{}d in {} set {} after {}", expr, offset, ZONES[zone],
                    format_utc(anchor, Precision::Millisecond), format_utc(after, Precision::Millisecond)),
                // Nothing within the horizon: the engine may only find a run whose match is
                // beyond it (a day of slack for the zone's offset).
                None => {
                    let walked_from = from.to_datetime(jiff::civil::Time::midnight()).to_zoned_datetime(jiff::tz::TimeZone::UTC).unwrap().timestamp();
                    let horizon = walked_from.as_millisecond() + (HORIZON_DAYS - 1) * 86_400_000;
                    prop_assert!(got.is_none_or(|t| t > horizon), "{} +{}d in {}: engine {:?}, reference none", expr, offset, ZONES[zone], got);
                }
            }
        }

        /// The iterator's fast path (no zone lookup on days without a transition) gives the
        /// same runs as asking next_after again and again.
        #[test]
        fn occurrences_equal_repeated_next((zone, after) in (0..ZONES.len()).prop_flat_map(|z| (Just(z), reference::instant(z))),
                                           spec in reference::spec(false),
                                           offset in prop::option::of(1i64..=6)) {
            let schedule = Schedule::parse(&spec.render()).unwrap();
            let options = ScheduleOptions { timezone: Some(ZONES[zone].into()), offset_days: offset, ..Default::default() };
            let table = Timetable::new(&schedule, &options, after - 86_400_000).unwrap();
            let fast: Vec<i64> = table.occurrences(after).take(300).collect();
            let mut slow = Vec::new();
            let mut at = after;
            while slow.len() < 300 {
                let Some(next) = table.next_after(at) else { break };
                slow.push(next);
                at = next;
            }
            prop_assert_eq!(fast, slow, "{} in {}", spec.render(), ZONES[zone]);
        }
    }
}
