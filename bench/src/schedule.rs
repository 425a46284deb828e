//! `ssmd-bench schedule`: the schedule engine (`ssmd_core::schedule`) in process, no server.
//!
//! * **Next occurrence**: `Timetable::next_after` for representative expressions (a DST zone,
//!   `L`, `W`, `#`, an offset, the 7-field form, a rate), each called on 1,000 instants spread
//!   over 2026-2030; the figure is the median, over `--batches` batches, of a batch's time per
//!   call, in ns. Target: under 2 µs.
//! * **A year of runs**: `Timetable::occurrences_until` over 2026 for `cron(0/5 * * * ? *)`
//!   (105,120 runs) and an hourly cron, in UTC and in America/New_York; median of `--batches`
//!   enumerations, in ms. Target: under 5 ms.
//! * **Floors**, measured in the same run: one jiff `Timestamp -> ZonedDateTime` conversion in
//!   America/New_York (what any zone-aware evaluation pays at least once per answer), and an
//!   empty timed loop (the measurement's own cost). The year enumerations are compared with
//!   doing that one conversion per run.

use anyhow::{Context, Result, bail};
use ssmd_core::schedule::{Schedule, ScheduleOptions, Timetable};
use std::hint::black_box;
use std::time::Instant;

/// 2026-01-01T00:00:00Z.
const YEAR_START_MS: i64 = 1_767_225_600_000;
/// 2027-01-01T00:00:00Z.
const YEAR_END_MS: i64 = 1_798_761_600_000;
const CALLS_PER_BATCH: usize = 1000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Instants spread over 2026-2030 (a fixed linear congruential sequence, so runs compare).
fn instants(n: usize) -> Vec<i64> {
    let span = 5 * 365 * 86_400_000u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            YEAR_START_MS + ((x >> 11) % span) as i64
        })
        .collect()
}

/// Median ns per call of `f` over `batches` batches of the given inputs.
fn per_call_ns(batches: usize, inputs: &[i64], mut f: impl FnMut(i64) -> i64) -> f64 {
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t = Instant::now();
        let mut sink = 0i64;
        for &at in inputs {
            sink = sink.wrapping_add(f(black_box(at)));
        }
        black_box(sink);
        samples.push(t.elapsed().as_nanos() as f64 / inputs.len() as f64);
    }
    median(samples)
}

fn table(expr: &str, zone: Option<&str>, offset_days: Option<i64>) -> Result<Timetable> {
    let schedule = Schedule::parse(expr)?;
    let options = ScheduleOptions { timezone: zone.map(str::to_string), offset_days, ..Default::default() };
    Ok(Timetable::new(&schedule, &options, YEAR_START_MS - 86_400_000)?)
}

pub fn run(args: &[String]) -> Result<()> {
    let mut batches = 41;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--batches" => batches = args.get(i + 1).context("--batches needs a number")?.parse()?,
            other => bail!("unknown option {other}"),
        }
        i += 2;
    }
    let inputs = instants(CALLS_PER_BATCH);

    // Floors.
    let empty = per_call_ns(batches, &inputs, |at| at);
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let zoned = per_call_ns(batches, &inputs, |at| {
        let z = jiff::Timestamp::from_millisecond(at).expect("in range").to_zoned_datetime(tz.clone());
        i64::from(z.hour())
    });
    println!("floors (median ns per call, {batches} batches of {CALLS_PER_BATCH}):");
    println!("  empty timed loop                                   {empty:>8.1} ns");
    println!("  jiff Timestamp -> ZonedDateTime (America/New_York) {zoned:>8.1} ns");

    println!("\nnext occurrence, Timetable::next_after (median ns per call):");
    let cases: &[(&str, Option<&str>, Option<i64>)] = &[
        ("cron(0 2 ? * THU#3 *)", None, None),
        ("cron(0 2 ? * THU#3 *)", Some("America/New_York"), None),
        ("cron(0/5 * * * ? *)", Some("America/New_York"), None),
        ("cron(15 10 ? * 6L *)", Some("Europe/London"), None),
        ("cron(0 2 L * ? *)", Some("America/New_York"), None),
        ("cron(0 9 15W * ? *)", Some("Asia/Kolkata"), None),
        ("cron(0 9 LW * ? *)", Some("Australia/Lord_Howe"), None),
        ("cron(30 23 ? * TUE#3 *)", Some("America/Los_Angeles"), Some(2)),
        ("cron(24 30 09 ? * * *)", Some("Pacific/Chatham"), None),
        ("cron(0 0 29 2 ? *)", Some("America/New_York"), None),
        ("rate(5 minutes)", Some("America/New_York"), None),
    ];
    let mut worst: f64 = 0.0;
    for &(expr, zone, offset) in cases {
        let t = table(expr, zone, offset)?;
        let ns = per_call_ns(batches, &inputs, |at| t.next_after(at).unwrap_or(0));
        worst = worst.max(ns);
        let offset = offset.map(|d| format!(" +{d}d")).unwrap_or_default();
        let label = format!("{expr}{offset} in {}", zone.unwrap_or("UTC"));
        println!("  {label:<58} {ns:>8.1} ns  ({:.1}x the zone floor)", ns / zoned);
    }
    println!("  slowest: {worst:.0} ns — target < 2,000 ns: {}", if worst < 2000.0 { "met" } else { "NOT met" });

    println!("\na year of runs, Timetable::occurrences_until over 2026 (median of {batches}):");
    let years: &[(&str, Option<&str>)] = &[
        ("cron(0/5 * * * ? *)", None),
        ("cron(0/5 * * * ? *)", Some("America/New_York")),
        ("cron(0 * * * ? *)", Some("America/New_York")),
        ("cron(0/5 * * * ? *)", Some("Australia/Lord_Howe")),
    ];
    let mut worst_ms: f64 = 0.0;
    for &(expr, zone) in years {
        let t = table(expr, zone, None)?;
        let mut count = 0;
        let mut samples = Vec::new();
        for _ in 0..batches {
            let start = Instant::now();
            count = black_box(t.occurrences_until(YEAR_START_MS - 1, YEAR_END_MS - 1).count());
            samples.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let ms = median(samples);
        worst_ms = worst_ms.max(ms);
        // The floor: one jiff zone conversion per run of the same year.
        let step = (YEAR_END_MS - YEAR_START_MS) / count as i64;
        let tz = jiff::tz::TimeZone::get(zone.unwrap_or("UTC"))?;
        let mut floor_samples = Vec::new();
        for _ in 0..batches.min(11) {
            let start = Instant::now();
            let mut sink = 0i64;
            for k in 0..count as i64 {
                let at = jiff::Timestamp::from_millisecond(YEAR_START_MS + k * step).expect("in range");
                sink = sink.wrapping_add(i64::from(at.to_zoned_datetime(tz.clone()).minute()));
            }
            black_box(sink);
            floor_samples.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let floor_ms = median(floor_samples);
        let label = format!("{expr} in {}", zone.unwrap_or("UTC"));
        println!(
            "  {label:<42} {count:>7} runs {ms:>7.2} ms ({:.0} ns/run; {count} zone conversions: {floor_ms:.2} ms)",
            ms * 1e6 / count as f64
        );
    }
    println!("  slowest: {worst_ms:.2} ms — target < 5 ms: {}", if worst_ms < 5.0 { "met" } else { "NOT met" });

    // For comparison: the same year by asking next_after again and again.
    let t = table("cron(0/5 * * * ? *)", Some("America/New_York"), None)?;
    let mut count = 0;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut at = YEAR_START_MS - 1;
        count = 0;
        while let Some(next) = t.next_after(at).filter(|&n| n < YEAR_END_MS) {
            at = next;
            count += 1;
        }
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\n  (the same year of cron(0/5 * * * ? *) in America/New_York by repeated next_after: {count} runs in {:.1} ms, median of 5)",
        median(samples)
    );
    Ok(())
}
