//! Time as an injected dependency: the server uses `SystemClock`, engine tests a `ManualClock`.
//! All times are milliseconds since the Unix epoch; SQL never calls `now()`.
//!
//! Waiting for a time is the engine's business (`ssmd_engine::clock::sleep_until`): on the wall
//! clock it is a timer; on a manual clock it waits until a test moves the clock past the
//! deadline ([`ManualClock::changed`]), so timeouts, schedules and expiries are tested without
//! sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The manual clock behind this one, if time only moves when a test says so.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock that only moves when told to; waiters are woken on every move.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug, Default)]
struct Manual {
    ms: AtomicI64,
    /// Bumped on every move, so a waiter can tell whether the clock moved since it looked.
    generation: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn at(ms: i64) -> Self {
        let c = ManualClock::default();
        c.0.ms.store(ms, Ordering::SeqCst);
        c
    }

    /// Moves the clock forward by `ms` and wakes everything waiting on [`ManualClock::changed`].
    pub fn advance(&self, ms: i64) {
        self.0.ms.fetch_add(ms, Ordering::SeqCst);
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.0.wakers.lock().expect("manual clock"));
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Resolves at the first move of the clock after this call. Create it *before* reading the
    /// time it guards, so a move in between is not missed.
    pub fn changed(&self) -> Changed {
        Changed { clock: self.0.clone(), seen: self.0.generation.load(Ordering::SeqCst) }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.ms.load(Ordering::SeqCst)
    }

    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

/// The future of [`ManualClock::changed`].
#[derive(Debug)]
pub struct Changed {
    clock: Arc<Manual>,
    seen: u64,
}

impl Future for Changed {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.generation.load(Ordering::SeqCst) != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.clock.wakers.lock().expect("manual clock");
        // Checked again under the lock: `advance` bumps the generation before taking it.
        if self.clock.generation.load(Ordering::SeqCst) != self.seen {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Milliseconds to awsJson1_1 epoch seconds.
pub fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The UTC calendar date and time of an instant in epoch milliseconds, clamped to jiff's range
/// (the years -9999 to 9999).
fn utc_datetime(ms: i64) -> jiff::civil::DateTime {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    jiff::tz::Offset::UTC.to_datetime(at)
}

/// The UTC calendar fields `(year, month, day, hour, minute, second)` of an instant in epoch
/// milliseconds.
pub fn utc_fields(ms: i64) -> (i64, u32, u32, u32, u32, u32) {
    let dt = utc_datetime(ms);
    let field = |v: i8| v as u32;
    (i64::from(dt.year()), field(dt.month()), field(dt.day()), field(dt.hour()), field(dt.minute()), field(dt.second()))
}

/// An instant as ISO 8601 UTC with milliseconds (`2026-11-23T06:00:00.123Z`), as SSM writes
/// string-typed times (GetCommandInvocation, the agent's messages).
pub fn iso8601_ms(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z", ms.rem_euclid(1000))
}

/// Parses ISO 8601 UTC (`2026-11-23T06:00:00Z`, optional fraction, `Z` or `+00:00`) into epoch
/// milliseconds; `None` if it is anything else, or names a date that does not exist. A leap
/// second (`23:59:60`) reads as the next minute's first second.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i16> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = first3.parse::<i64>().ok()?;
        rest = &f[digits..];
    }
    if rest != "Z" && rest != "+00:00" {
        return None;
    }
    let narrow = |v: i16| i8::try_from(v).ok();
    let dt = jiff::civil::DateTime::new(y, narrow(mo)?, narrow(d)?, narrow(h)?, narrow(mi)?, narrow(sec.min(59))?, 0)
        .ok()?;
    let at = jiff::tz::Offset::UTC.to_timestamp(dt).ok()?;
    Some(at.as_millisecond() + i64::from(sec == 60) * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_round_trips() {
        for ms in [0, 1_767_225_600_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_iso8601(&iso8601_ms(ms)), Some(ms), "{}", iso8601_ms(ms));
        }
        assert_eq!(iso8601_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(parse_iso8601("2026-01-01T00:00:00Z"), Some(1_767_225_600_000));
        assert_eq!(parse_iso8601("2026-01-01T00:00:00+00:00"), Some(1_767_225_600_000));
        for bad in [
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "x026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T24:00:00Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_fields_of_known_instants() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_fields(951_782_400_000), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(1_795_398_245_999), (2026, 11, 23, 1, 44, 5));
        assert_eq!(utc_fields(-1000), (1969, 12, 31, 23, 59, 59));
        assert_eq!(parse_iso8601("2016-12-31T23:59:60Z"), parse_iso8601("2017-01-01T00:00:00Z"));
    }
}
