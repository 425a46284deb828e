//! Capped exponential back-off with jitter, for reconnecting to a server that is down: 1 s
//! doubling to 30 s by default, each wait drawn between half and all of the current step.

use std::time::Duration;

/// A back-off sequence; `reset` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    /// A sequence starting at `min` and doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, step: min }
    }

    /// The next wait: a random duration in [step/2, step]; the step then doubles (capped).
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let span = (step - half).as_millis() as u64;
        half + Duration::from_millis(if span == 0 { 0 } else { crate::ids::random_u64() % (span + 1) })
    }

    /// Back to the first step.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        for (w, step) in waits.iter().zip([1u64, 2, 4, 8, 16, 30, 30, 30]) {
            let step = Duration::from_secs(step);
            assert!(*w >= step / 2 && *w <= step, "{w:?} for step {step:?}");
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_secs(1));
    }
}
