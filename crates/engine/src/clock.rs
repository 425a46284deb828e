//! Waiting for a time on the service's clock: a timer on the wall clock, and on a test's
//! [`ManualClock`](ssmd_core::ManualClock) a wait until the test moves the clock past the
//! deadline. Every deadline in the engine waits through [`sleep_until`], so tests drive
//! timeouts, schedules and expiries without sleeping.

use ssmd_core::Clock;
use std::time::Duration;

/// Resolves once `clock` reads `at_ms` or later.
pub async fn sleep_until(clock: &dyn Clock, at_ms: i64) {
    loop {
        match clock.as_manual() {
            Some(manual) => {
                // Subscribed before reading the time, so a move in between is seen.
                let moved = manual.changed();
                if clock.now_ms() >= at_ms {
                    return;
                }
                moved.await;
            }
            None => {
                let now = clock.now_ms();
                if now >= at_ms {
                    return;
                }
                tokio::time::sleep(Duration::from_millis((at_ms - now) as u64)).await;
            }
        }
    }
}

/// Resolves after `ms` milliseconds of `clock` time.
pub async fn sleep_ms(clock: &dyn Clock, ms: i64) {
    let at = clock.now_ms().saturating_add(ms);
    sleep_until(clock, at).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssmd_core::ManualClock;

    #[tokio::test]
    async fn a_manual_deadline_passes_only_when_the_clock_moves_past_it() {
        let clock = ManualClock::at(1_000);
        let c = clock.clone();
        let waiter = tokio::spawn(async move { sleep_until(&c, 5_000).await });
        tokio::task::yield_now().await;
        clock.advance(3_000);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "4,000 is before the deadline");
        clock.advance(1_000);
        tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("woken").unwrap();
    }

    #[tokio::test]
    async fn the_wall_clock_sleeps_for_real() {
        let start = std::time::Instant::now();
        sleep_ms(&ssmd_core::SystemClock, 30).await;
        assert!(start.elapsed() >= Duration::from_millis(25));
    }
}
