//! Rate control: the one controller that decides when each target of a rate-controlled run
//! starts, shared by Automation (child executions), Run Command (invocations), maintenance-window
//! tasks and State Manager associations.
//!
//! It parses `MaxConcurrency` and `MaxErrors` (the model's grammar, spec §3.1), turns them into a
//! concurrency limit and an error threshold for a resolved target count, and drives one run: the
//! caller asks [`RateController::next_batch`] which targets to start, and reports each end with
//! [`RateController::finished`]. There is no I/O, no time and no async; the state is serialisable
//! so an engine can persist it between steps.
//!
//! Guarantees, for any sequence of calls:
//!
//! * targets start in ascending index order, each at most once, and only through `next_batch`;
//! * never more than [`RateController::limit`] targets run at once (with ramp-up, never more than
//!   one plus the number already finished, either);
//! * without ramp-up, dispatch is work-conserving: after `next_batch`, as many targets run as the
//!   limit allows, until every target has started or dispatch stopped;
//! * with `MaxErrors = E`, dispatch stops exactly when the (E+1)-th failure is reported (the "N+1"
//!   rule, spec §0 rule 4); targets already running still finish and their failures still count;
//! * if dispatch never stops, every target is started exactly once and the run is
//!   [`done`](RateController::done) when the last one finishes.
//!
//! Rounding (undocumented by AWS, recorded in `docs/compat.md` "Rate control"): a concurrency
//! percentage rounds up and is at least 1; an error percentage rounds down.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The model's pattern for `MaxConcurrency` (quoted in validation messages).
pub const CONCURRENCY_PATTERN: &str = "^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$";
/// The model's pattern for `MaxErrors` (quoted in validation messages).
pub const ERRORS_PATTERN: &str = "^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$";
/// The model's maximum length of both values.
pub const MAX_LEN: usize = 7;

/// Why a `MaxConcurrency` or `MaxErrors` value was refused; both are `ValidationException`s.
///
/// The message is the body of an SSM constraint message; callers prefix it with
/// "1 validation error detected: " and may substitute the member path they report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The value is not a valid `MaxConcurrency` (e.g. `0`, `0%`, `010`, `101%`, `5.5`, `-1`).
    #[error(
        "Value '{0}' at 'maxConcurrency' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$"
    )]
    InvalidConcurrency(String),
    /// The value is not a valid `MaxErrors` (e.g. `00`, `101%`, `5.5`, `-1`).
    #[error(
        "Value '{0}' at 'maxErrors' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$"
    )]
    InvalidErrors(String),
}

/// A parsed `MaxConcurrency` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Concurrency {
    /// An absolute number of targets, at least 1.
    Count(u32),
    /// A percentage of the resolved target count, 1–100.
    Percent(u32),
}

/// A parsed `MaxErrors` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorLimit {
    /// An absolute number of tolerated errors, at least 0.
    Count(u32),
    /// A percentage of the resolved target count, 0–100.
    Percent(u32),
}

/// Splits a value into its digits and whether it ends in `%`, checking the shared shape:
/// 1–7 characters, ASCII digits with an optional trailing `%`, no leading zero unless the digits
/// are exactly `0`. Returns the number and the percent flag.
fn parse_shape(s: &str) -> Option<(u32, bool)> {
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    let (digits, percent) = match s.strip_suffix('%') {
        Some(d) => (d, true),
        None => (s, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    // At most 7 digits, so it always fits.
    let n: u32 = digits.parse().ok()?;
    if percent && n > 100 {
        return None;
    }
    Some((n, percent))
}

/// Parses `MaxConcurrency`: `[1-9][0-9]*` (at most 7 characters) or `1%`–`100%`.
/// `0`, `0%`, leading zeros, signs, decimals and whitespace are refused.
pub fn parse_concurrency(s: &str) -> Result<Concurrency, RateError> {
    match parse_shape(s) {
        Some((0, _)) | None => Err(RateError::InvalidConcurrency(s.to_string())),
        Some((n, true)) => Ok(Concurrency::Percent(n)),
        Some((n, false)) => Ok(Concurrency::Count(n)),
    }
}

/// Parses `MaxErrors`: `0`, `[1-9][0-9]*` (at most 7 characters) or `0%`–`100%`.
/// Leading zeros, signs, decimals and whitespace are refused.
pub fn parse_errors(s: &str) -> Result<ErrorLimit, RateError> {
    match parse_shape(s) {
        None => Err(RateError::InvalidErrors(s.to_string())),
        Some((n, true)) => Ok(ErrorLimit::Percent(n)),
        Some((n, false)) => Ok(ErrorLimit::Count(n)),
    }
}

/// `targets × percent / 100`, exact, as (quotient, has remainder).
fn percent_of(targets: usize, percent: u32) -> (usize, bool) {
    let product = targets as u128 * percent as u128;
    ((product / 100) as usize, !product.is_multiple_of(100))
}

impl Concurrency {
    /// The most targets that may run at once out of `targets`: a count is capped at `targets`; a
    /// percentage rounds up (`ceil(targets × p / 100)`). At least 1 when `targets > 0`; 0 when
    /// there are no targets.
    pub fn limit(&self, targets: usize) -> usize {
        if targets == 0 {
            return 0;
        }
        let raw = match *self {
            Concurrency::Count(n) => n as usize,
            Concurrency::Percent(p) => {
                let (q, rem) = percent_of(targets, p);
                q + rem as usize
            }
        };
        raw.clamp(1, targets)
    }
}

impl ErrorLimit {
    /// The number of errors tolerated, E, out of `targets`: a count as given; a percentage rounds
    /// down (`floor(targets × p / 100)`). Dispatch stops when error E+1 arrives, so `0`, `0%`
    /// and any percentage of fewer than `100 / p` targets stop at the first error.
    pub fn threshold(&self, targets: usize) -> usize {
        match *self {
            ErrorLimit::Count(n) => n as usize,
            ErrorLimit::Percent(p) => percent_of(targets, p).0,
        }
    }
}

impl fmt::Display for Concurrency {
    /// The wire form: `10` or `10%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concurrency::Count(n) => write!(f, "{n}"),
            Concurrency::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl fmt::Display for ErrorLimit {
    /// The wire form: `5` or `10%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorLimit::Count(n) => write!(f, "{n}"),
            ErrorLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl std::str::FromStr for Concurrency {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_concurrency(s)
    }
}

impl std::str::FromStr for ErrorLimit {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_errors(s)
    }
}

/// Drives one rate-controlled run over `targets` items (indices `0..n`), deciding which start
/// when. See the module documentation for the guarantees.
///
/// The state is compact — counters and the next index, never one entry per target — so a run
/// over 10,000 targets persists in a few hundred bytes and each report costs the same as over
/// 10. What the controller does not keep is *which* started targets have finished: the caller
/// keeps that with each target (an invocation's status, a step's record) and reports each
/// started target once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct RateController {
    concurrency: Concurrency,
    errors: ErrorLimit,
    limit: usize,
    threshold: usize,
    ramp_up: bool,
    total: usize,
    /// The lowest index not yet started; targets start in index order.
    next: usize,
    running: usize,
    succeeded: usize,
    failed: usize,
    stopped: bool,
    cancelled: bool,
}

/// A stored controller, as written now or by versions that kept one state per target
/// (`items`), so runs persisted before the change go on.
#[derive(Deserialize)]
struct Stored {
    concurrency: Concurrency,
    errors: ErrorLimit,
    limit: usize,
    threshold: usize,
    #[serde(default)]
    ramp_up: bool,
    #[serde(default)]
    total: Option<usize>,
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
    next: usize,
    running: usize,
    succeeded: usize,
    failed: usize,
    stopped: bool,
    cancelled: bool,
}

impl From<Stored> for RateController {
    fn from(s: Stored) -> Self {
        RateController {
            concurrency: s.concurrency,
            errors: s.errors,
            limit: s.limit,
            threshold: s.threshold,
            ramp_up: s.ramp_up,
            total: s.total.or(s.items.map(|i| i.len())).unwrap_or(0),
            next: s.next,
            running: s.running,
            succeeded: s.succeeded,
            failed: s.failed,
            stopped: s.stopped,
            cancelled: s.cancelled,
        }
    }
}

impl RateController {
    /// A controller for `targets` items with these limits; ramp-up is off.
    pub fn new(targets: usize, concurrency: Concurrency, errors: ErrorLimit) -> Self {
        RateController {
            concurrency,
            errors,
            limit: concurrency.limit(targets),
            threshold: errors.threshold(targets),
            ramp_up: false,
            total: targets,
            next: 0,
            running: 0,
            succeeded: 0,
            failed: 0,
            stopped: false,
            cancelled: false,
        }
    }

    /// Turns the exponential ramp-up on or off (off by default). With it, at most
    /// `1 + finished` targets run at once (still capped by the limit): 1 to begin with, 2 once
    /// the first finishes, 4 once those finish, and so on — the window doubles with every
    /// generation of completions. Failures count as completions for the ramp.
    pub fn with_ramp_up(mut self, ramp_up: bool) -> Self {
        self.ramp_up = ramp_up;
        self
    }

    /// Indices to start now, in ascending order: as many as fit under the current window
    /// ([`window`](Self::window)) minus those running; none once stopped or cancelled.
    /// They count as running from now on.
    pub fn next_batch(&mut self) -> std::ops::Range<usize> {
        if self.stopped || self.cancelled {
            return self.next..self.next;
        }
        let room = self.window().saturating_sub(self.running);
        let start = self.next;
        let end = (start + room).min(self.total);
        self.running += end - start;
        self.next = end;
        start..end
    }

    /// Reports that a started item finished: success or failure. Failures count toward
    /// `MaxErrors`; the (E+1)-th stops dispatch. Failures reported after the stop still count.
    ///
    /// The caller reports each started item once (it keeps which have finished). A report for
    /// an item never started, or when nothing runs, changes nothing and returns false.
    pub fn finished(&mut self, index: usize, success: bool) -> bool {
        if index >= self.next || self.running == 0 {
            return false;
        }
        self.running -= 1;
        if success {
            self.succeeded += 1;
        } else {
            self.failed += 1;
            if self.failed > self.threshold {
                self.stopped = true;
            }
        }
        true
    }

    /// Stops dispatch from outside (the run was cancelled): no new item starts; running ones
    /// still finish and may be reported. Independent of the error threshold.
    pub fn cancel(&mut self) {
        self.cancelled = true;
    }

    /// True once error E+1 has arrived: no new item starts; running ones finish.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// The number of items running (started and not reported finished).
    pub fn running(&self) -> usize {
        self.running
    }

    /// Indices that were never started and never will be, because dispatch stopped (error
    /// threshold) or was cancelled; empty while dispatch may still go on.
    pub fn not_started(&self) -> std::ops::Range<usize> {
        if self.stopped || self.cancelled { self.next..self.total } else { self.total..self.total }
    }

    /// True when nothing runs and nothing more will start.
    pub fn done(&self) -> bool {
        self.running == 0 && (self.next == self.total || self.stopped || self.cancelled)
    }

    /// True when the run is done, every item started and none failed: the roll-up for a parent
    /// execution's `Success` (zero targets count as success).
    pub fn all_succeeded(&self) -> bool {
        self.done() && self.succeeded == self.total
    }

    /// The number of targets, N.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The number of items started so far (`TargetsSummary.StartedCount`).
    pub fn started(&self) -> usize {
        self.next
    }

    /// Whether item `index` has been started (it may have finished since).
    pub fn is_started(&self, index: usize) -> bool {
        index < self.next
    }

    /// The number of items reported finished (`TargetsSummary.CompletedCount`).
    pub fn completed(&self) -> usize {
        self.succeeded + self.failed
    }

    /// The number of items reported successful (`TargetsSummary.SuccessfulCount`).
    pub fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// The number of items reported failed (`TargetsSummary.FailedCount`); may exceed the
    /// threshold by the failures of items that were in flight at the stop.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// The concurrency limit for this run (see [`Concurrency::limit`]).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The number of errors tolerated, E (see [`ErrorLimit::threshold`]).
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The most items allowed to run right now: the limit, or with ramp-up
    /// `min(limit, 1 + completed)`.
    pub fn window(&self) -> usize {
        if self.ramp_up { self.limit.min(1 + self.completed()) } else { self.limit }
    }

    /// Whether ramp-up is on.
    pub fn ramp_up(&self) -> bool {
        self.ramp_up
    }

    /// The `MaxConcurrency` this run was created with.
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    /// The `MaxErrors` this run was created with.
    pub fn errors(&self) -> ErrorLimit {
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(s: &str) -> Concurrency {
        parse_concurrency(s).unwrap()
    }
    fn e(s: &str) -> ErrorLimit {
        parse_errors(s).unwrap()
    }

    /// Starts everything startable and finishes items in index order with the given outcome,
    /// returning the order of starts.
    fn run_in_order(ctl: &mut RateController, outcome: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut started = Vec::new();
        let mut running = std::collections::VecDeque::new();
        loop {
            let batch = ctl.next_batch();
            started.extend(batch.clone());
            running.extend(batch);
            match running.pop_front() {
                Some(i) => assert!(ctl.finished(i, outcome(i))),
                None => break,
            }
        }
        assert!(ctl.done());
        started
    }

    // ---- parsing ----

    #[test]
    fn parses_valid_concurrency() {
        assert_eq!(c("1"), Concurrency::Count(1));
        assert_eq!(c("10"), Concurrency::Count(10));
        assert_eq!(c("9999999"), Concurrency::Count(9_999_999));
        assert_eq!(c("1%"), Concurrency::Percent(1));
        assert_eq!(c("10%"), Concurrency::Percent(10));
        assert_eq!(c("99%"), Concurrency::Percent(99));
        assert_eq!(c("100%"), Concurrency::Percent(100));
    }

    #[test]
    fn refuses_invalid_concurrency() {
        for bad in [
            "", "0", "0%", "00", "010", "01%", "101%", "1000%", "5.5", "-1", "+1", " 1", "1 ", "%", "1%%", "%1", "abc",
            "10000000", "1e3", "٣", "1_0",
        ] {
            assert_eq!(
                parse_concurrency(bad),
                Err(RateError::InvalidConcurrency(bad.to_string())),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn parses_valid_errors() {
        assert_eq!(e("0"), ErrorLimit::Count(0));
        assert_eq!(e("5"), ErrorLimit::Count(5));
        assert_eq!(e("9999999"), ErrorLimit::Count(9_999_999));
        assert_eq!(e("0%"), ErrorLimit::Percent(0));
        assert_eq!(e("9%"), ErrorLimit::Percent(9));
        assert_eq!(e("10%"), ErrorLimit::Percent(10));
        assert_eq!(e("100%"), ErrorLimit::Percent(100));
    }

    #[test]
    fn refuses_invalid_errors() {
        for bad in ["", "00", "010", "00%", "05%", "101%", "5.5", "-1", " 0", "0 ", "%", "x", "10000000", "0x1"] {
            assert_eq!(parse_errors(bad), Err(RateError::InvalidErrors(bad.to_string())), "{bad:?} should be refused");
        }
    }

    #[test]
    fn error_messages_quote_value_and_pattern() {
        let m = parse_concurrency("0").unwrap_err().to_string();
        assert!(m.starts_with("Value '0' at 'maxConcurrency' failed to satisfy constraint"), "{m}");
        assert!(m.ends_with(CONCURRENCY_PATTERN), "{m}");
        let m = parse_errors("-1").unwrap_err().to_string();
        assert!(m.starts_with("Value '-1' at 'maxErrors' failed to satisfy constraint"), "{m}");
        assert!(m.ends_with(ERRORS_PATTERN), "{m}");
    }

    #[test]
    fn display_and_from_str_round_trip() {
        for s in ["1", "50", "9999999", "1%", "100%"] {
            assert_eq!(c(s).to_string(), s);
            assert_eq!(s.parse::<Concurrency>().unwrap(), c(s));
        }
        for s in ["0", "7", "0%", "10%", "100%"] {
            assert_eq!(e(s).to_string(), s);
            assert_eq!(s.parse::<ErrorLimit>().unwrap(), e(s));
        }
    }

    // ---- rounding ----

    #[test]
    fn concurrency_limit_rounding() {
        assert_eq!(c("10%").limit(25), 3); // 2.5 rounds up
        assert_eq!(c("10%").limit(50), 5);
        assert_eq!(c("10%").limit(20), 2);
        assert_eq!(c("1%").limit(1), 1); // tiny percentage: at least 1
        assert_eq!(c("1%").limit(10), 1);
        assert_eq!(c("1%").limit(101), 2);
        assert_eq!(c("33%").limit(3), 1); // 0.99 rounds up
        assert_eq!(c("34%").limit(3), 2); // 1.02 rounds up
        assert_eq!(c("100%").limit(7), 7);
        assert_eq!(c("50%").limit(0), 0);
        assert_eq!(c("10").limit(3), 3); // a count is capped at the target count
        assert_eq!(c("10").limit(30), 10);
        assert_eq!(c("10").limit(0), 0);
        assert_eq!(c("9999999").limit(usize::MAX), 9_999_999);
        assert_eq!(c("100%").limit(usize::MAX), usize::MAX); // no overflow
    }

    #[test]
    fn error_threshold_rounding() {
        assert_eq!(e("10%").threshold(50), 5); // spec: stop at the 6th error
        assert_eq!(e("10%").threshold(25), 2); // 2.5 rounds down
        assert_eq!(e("10%").threshold(9), 0); // 0.9 rounds down: stop at the first error
        assert_eq!(e("1%").threshold(99), 0);
        assert_eq!(e("1%").threshold(100), 1);
        assert_eq!(e("0%").threshold(1000), 0);
        assert_eq!(e("100%").threshold(12), 12); // can never be exceeded
        assert_eq!(e("0").threshold(10), 0);
        assert_eq!(e("5").threshold(3), 5); // a count is not capped
        assert_eq!(e("50%").threshold(0), 0);
        assert_eq!(e("100%").threshold(usize::MAX), usize::MAX);
    }

    // ---- the spec's worked examples ----

    #[test]
    fn max_errors_zero_stops_after_first_error() {
        let mut ctl = RateController::new(10, c("1"), e("0"));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![0]);
        assert!(ctl.finished(0, true));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![1]);
        assert!(!ctl.stopped());
        assert!(ctl.finished(1, false));
        assert!(ctl.stopped());
        assert!(ctl.next_batch().is_empty());
        assert!(ctl.done());
        assert_eq!(ctl.not_started(), (2..10));
        assert_eq!((ctl.started(), ctl.succeeded(), ctl.failed()), (2, 1, 1));
        assert!(!ctl.all_succeeded());
    }

    #[test]
    fn max_errors_zero_percent_stops_after_first_error() {
        let mut ctl = RateController::new(4, c("100%"), e("0%"));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(ctl.finished(2, false));
        assert!(ctl.stopped());
        // In-flight items finish, and their failures still count.
        assert!(ctl.finished(0, false));
        assert!(ctl.finished(1, true));
        assert!(!ctl.done());
        assert!(ctl.finished(3, false));
        assert!(ctl.done());
        assert_eq!(ctl.failed(), 3);
        assert!(ctl.not_started().is_empty());
    }

    #[test]
    fn ten_percent_of_fifty_stops_at_sixth_error() {
        let mut ctl = RateController::new(50, c("1"), e("10%"));
        assert_eq!(ctl.threshold(), 5);
        for i in 0..6 {
            assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![i]);
            assert!(!ctl.stopped(), "stopped before error {}", i + 1);
            assert!(ctl.finished(i, false));
        }
        assert!(ctl.stopped());
        assert_eq!(ctl.failed(), 6);
        assert!(ctl.next_batch().is_empty());
        assert!(ctl.done());
        assert_eq!(ctl.not_started(), (6..50));
    }

    #[test]
    fn ten_percent_of_fifty_with_successes_in_between() {
        // Errors on every odd item: the 6th error is item 11.
        let mut ctl = RateController::new(50, c("1"), e("10%"));
        let started = run_in_order(&mut ctl, |i| i % 2 == 0);
        assert_eq!(started, (0..12).collect::<Vec<_>>());
        assert!(ctl.stopped());
        assert_eq!((ctl.succeeded(), ctl.failed()), (6, 6));
    }

    #[test]
    fn concurrency_one_guarantees_at_most_e_plus_one_failures() {
        let mut ctl = RateController::new(20, c("1"), e("3"));
        run_in_order(&mut ctl, |_| false);
        assert_eq!(ctl.failed(), 4);
        assert_eq!(ctl.started(), 4);
    }

    // ---- dispatch ----

    #[test]
    fn exact_concurrency_without_ramp_up() {
        let mut ctl = RateController::new(25, c("10%"), e("100%"));
        assert_eq!(ctl.limit(), 3);
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(ctl.next_batch().is_empty());
        assert_eq!(ctl.running(), 3);
        assert!(ctl.finished(1, true));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![3]);
        assert!(ctl.finished(0, false));
        assert!(ctl.finished(2, true));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(ctl.running(), 3);
        assert!(!ctl.done());
    }

    #[test]
    fn everything_starts_when_nothing_fails() {
        let mut ctl = RateController::new(17, c("4"), e("0"));
        let started = run_in_order(&mut ctl, |_| true);
        assert_eq!(started, (0..17).collect::<Vec<_>>());
        assert!(ctl.all_succeeded());
        assert!(ctl.not_started().is_empty());
        assert_eq!((ctl.started(), ctl.completed(), ctl.succeeded(), ctl.failed()), (17, 17, 17, 0));
    }

    #[test]
    fn hundred_percent_errors_never_stops() {
        let mut ctl = RateController::new(8, c("3"), e("100%"));
        let started = run_in_order(&mut ctl, |_| false);
        assert_eq!(started.len(), 8);
        assert!(!ctl.stopped());
        assert_eq!(ctl.failed(), 8);
        assert!(!ctl.all_succeeded());
    }

    #[test]
    fn zero_targets_is_done_at_once() {
        let mut ctl = RateController::new(0, c("10"), e("0"));
        assert!(ctl.done());
        assert!(ctl.next_batch().is_empty());
        assert!(ctl.not_started().is_empty());
        assert!(ctl.all_succeeded());
        assert_eq!(ctl.limit(), 0);
    }

    #[test]
    fn reports_of_unstarted_items_are_ignored() {
        let mut ctl = RateController::new(5, c("2"), e("0"));
        assert!(!ctl.finished(0, false)); // not started
        assert!(!ctl.finished(99, false)); // out of range
        assert_eq!(ctl.next_batch(), 0..2);
        assert!(!ctl.finished(2, false)); // not started yet
        assert!(ctl.finished(0, true));
        assert!(ctl.finished(1, true));
        assert!(!ctl.finished(1, false)); // nothing runs any more
        assert!(!ctl.stopped());
        assert_eq!((ctl.running(), ctl.succeeded(), ctl.failed()), (0, 2, 0));
        assert!(ctl.is_started(1) && !ctl.is_started(2));
    }

    #[test]
    fn the_state_stays_the_same_size_whatever_the_number_of_targets() {
        let size = |n: usize| {
            let mut ctl = RateController::new(n, c("10"), e("0"));
            let batch = ctl.next_batch();
            ctl.finished(batch.start, true);
            serde_json::to_string(&ctl).unwrap().len()
        };
        // Only the digits of the counters grow.
        assert!(size(10_000) <= size(10) + 8, "{} vs {}", size(10_000), size(10));
    }

    #[test]
    fn controllers_stored_with_one_state_per_target_carry_on() {
        let old = r#"{"concurrency":{"Count":2},"errors":{"Count":0},"limit":2,"threshold":0,"ramp_up":false,
            "items":["Succeeded","Running","Pending","Pending"],"next":2,"running":1,"succeeded":1,"failed":0,
            "stopped":false,"cancelled":false}"#;
        let mut ctl: RateController = serde_json::from_str(old).unwrap();
        assert_eq!((ctl.total(), ctl.started(), ctl.running()), (4, 2, 1));
        assert!(ctl.finished(1, true));
        assert_eq!(ctl.next_batch(), 2..4);
    }

    #[test]
    fn cancel_stops_dispatch_and_running_items_finish() {
        let mut ctl = RateController::new(6, c("2"), e("0"));
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![0, 1]);
        ctl.cancel();
        assert!(ctl.cancelled() && !ctl.stopped());
        assert!(ctl.next_batch().is_empty());
        assert!(!ctl.done());
        assert!(ctl.finished(0, true));
        assert!(ctl.finished(1, true));
        assert!(ctl.done());
        assert_eq!(ctl.not_started(), 2..6);
        assert!(!ctl.all_succeeded());
    }

    #[test]
    fn not_started_is_empty_while_dispatch_goes_on() {
        let mut ctl = RateController::new(6, c("2"), e("1"));
        ctl.next_batch();
        assert!(ctl.not_started().is_empty());
        assert!(ctl.finished(0, false)); // 1 error tolerated
        assert!(ctl.not_started().is_empty());
        assert!(ctl.finished(1, false)); // the 2nd stops
        assert_eq!(ctl.not_started(), 2..6);
    }

    // ---- ramp-up ----

    #[test]
    fn ramp_up_doubles_per_generation() {
        let mut ctl = RateController::new(100, c("10"), e("0")).with_ramp_up(true);
        assert!(ctl.ramp_up());
        let mut sizes = Vec::new();
        loop {
            let batch = ctl.next_batch();
            if batch.is_empty() {
                break;
            }
            sizes.push(batch.len());
            assert!(ctl.running() <= ctl.limit());
            for i in batch {
                assert!(ctl.finished(i, true));
            }
        }
        // 1, 2, 4, 8 (= 15 finished), then capped at 10.
        assert_eq!(&sizes[..5], &[1, 2, 4, 8, 10]);
        assert!(sizes[4..sizes.len() - 1].iter().all(|&s| s == 10));
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(ctl.all_succeeded());
    }

    #[test]
    fn ramp_up_grows_by_one_per_completion() {
        let mut ctl = RateController::new(20, c("100%"), e("100%")).with_ramp_up(true);
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![0]);
        assert!(ctl.next_batch().is_empty());
        assert!(ctl.finished(0, false)); // failures advance the ramp too
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![1, 2]);
        assert!(ctl.finished(2, true));
        assert_eq!(ctl.window(), 3);
        assert_eq!(ctl.next_batch().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(ctl.running(), 3);
    }

    #[test]
    fn ramp_up_off_by_default() {
        let mut ctl = RateController::new(20, c("5"), e("0"));
        assert!(!ctl.ramp_up());
        assert_eq!(ctl.next_batch().len(), 5);
    }

    // ---- persistence ----

    #[test]
    fn serde_round_trip_mid_run() {
        let mut ctl = RateController::new(10, c("30%"), e("1")).with_ramp_up(true);
        ctl.next_batch();
        ctl.finished(0, false);
        ctl.next_batch();
        let json = serde_json::to_string(&ctl).unwrap();
        let mut back: RateController = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ctl);
        assert_eq!(back.concurrency(), Concurrency::Percent(30));
        assert_eq!(back.errors(), ErrorLimit::Count(1));
        // Both continue identically.
        for ctl in [&mut ctl, &mut back] {
            assert!(ctl.finished(1, false));
            assert!(ctl.stopped());
            assert!(ctl.finished(2, true));
            assert!(ctl.done());
        }
        assert_eq!(back, ctl);
    }

    // ---- properties ----

    fn concurrency_strategy() -> impl Strategy<Value = Concurrency> {
        prop_oneof![(1u32..80).prop_map(Concurrency::Count), (1u32..=100).prop_map(Concurrency::Percent)]
    }

    fn errors_strategy() -> impl Strategy<Value = ErrorLimit> {
        prop_oneof![(0u32..70).prop_map(ErrorLimit::Count), (0u32..=100).prop_map(ErrorLimit::Percent)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Simulates a run with random outcomes reported in random completion order and checks
        /// every guarantee of the module after every call.
        #[test]
        fn controller_guarantees(
            n in 0usize..60,
            conc in concurrency_strategy(),
            errs in errors_strategy(),
            ramp in any::<bool>(),
            outcomes in prop::collection::vec(any::<bool>(), 1..80),
            picks in prop::collection::vec(any::<usize>(), 1..80),
            batches_per_round in 1usize..3,
        ) {
            let mut ctl = RateController::new(n, conc, errs).with_ramp_up(ramp);
            let limit = conc.limit(n);
            let threshold = errs.threshold(n);
            prop_assert_eq!(ctl.limit(), limit);
            prop_assert_eq!(ctl.threshold(), threshold);

            let mut starts = vec![0u32; n];
            let mut running: Vec<usize> = Vec::new();
            let mut errors = 0usize;
            let mut finished = 0usize;
            let mut step = 0usize;
            loop {
                for _ in 0..batches_per_round {
                    let stopped_before = ctl.stopped();
                    let batch = ctl.next_batch();
                    if stopped_before {
                        prop_assert!(batch.is_empty(), "started {:?} after the stop", batch);
                    }
                    for i in batch {
                        prop_assert!(i < n);
                        starts[i] += 1;
                        prop_assert_eq!(starts[i], 1, "item {} started twice", i);
                        running.push(i);
                    }
                }
                prop_assert_eq!(ctl.running(), running.len());
                prop_assert!(running.len() <= limit);
                if ramp {
                    prop_assert!(running.len() <= finished + 1);
                } else if !ctl.stopped() {
                    // Work-conserving: as many running as the limit allows.
                    prop_assert_eq!(running.len(), limit.min(n - finished));
                }
                prop_assert_eq!(ctl.started(), finished + running.len());
                prop_assert_eq!(ctl.completed(), finished);
                if running.is_empty() {
                    prop_assert!(ctl.done());
                    break;
                }
                prop_assert!(!ctl.done());
                prop_assert!(finished < n, "more completions than targets");

                let idx = running.swap_remove(picks[step % picks.len()] % running.len());
                let ok = outcomes[step % outcomes.len()];
                step += 1;
                prop_assert!(ctl.finished(idx, ok));
                finished += 1;
                if !ok {
                    errors += 1;
                }
                // The stop happens exactly when error E+1 arrives, and then stays.
                prop_assert_eq!(ctl.stopped(), errors > threshold);
                prop_assert_eq!(ctl.failed(), errors);
            }

            prop_assert!(ctl.done());
            prop_assert!(ctl.next_batch().is_empty());
            let never: Vec<usize> = (0..n).filter(|&i| starts[i] == 0).collect();
            if ctl.stopped() {
                prop_assert!(errors > threshold);
                prop_assert_eq!(ctl.not_started().collect::<Vec<_>>(), never);
            } else {
                prop_assert!(starts.iter().all(|&s| s == 1), "every item starts exactly once");
                prop_assert!(ctl.not_started().is_empty());
                prop_assert_eq!(ctl.completed(), n);
                prop_assert_eq!(ctl.all_succeeded(), errors == 0);
            }
            // Survives persistence unchanged.
            let back: RateController = serde_json::from_str(&serde_json::to_string(&ctl).unwrap()).unwrap();
            prop_assert_eq!(back, ctl);
        }

        /// With concurrency 1, a run stops after exactly E+1 failures (or runs everything).
        #[test]
        fn serial_runs_fail_at_most_e_plus_one(
            n in 0usize..80,
            errs in errors_strategy(),
            outcomes in prop::collection::vec(any::<bool>(), 80),
        ) {
            let mut ctl = RateController::new(n, Concurrency::Count(1), errs);
            let started = run_in_order(&mut ctl, |i| outcomes[i]);
            let e = errs.threshold(n);
            let failures = outcomes[..n].iter().filter(|&&ok| !ok).count();
            if failures > e {
                prop_assert!(ctl.stopped());
                prop_assert_eq!(ctl.failed(), e + 1);
                // The last item started is the (E+1)-th failure.
                let last = *started.last().unwrap();
                prop_assert!(!outcomes[last]);
                prop_assert_eq!(outcomes[..=last].iter().filter(|&&ok| !ok).count(), e + 1);
            } else {
                prop_assert!(!ctl.stopped());
                prop_assert_eq!(started.len(), n);
            }
        }

        /// Percent rounding: concurrency is the ceiling (at least 1, at most N), errors the floor.
        #[test]
        fn percent_rounding(n in 0usize..100_000, p in 0u32..=100) {
            let exact = n as u64 * p as u64; // 100 × the exact value
            let t = ErrorLimit::Percent(p).threshold(n) as u64;
            prop_assert!(t * 100 <= exact && exact < (t + 1) * 100);
            if p >= 1 {
                let l = Concurrency::Percent(p).limit(n) as u64;
                if n == 0 {
                    prop_assert_eq!(l, 0);
                } else {
                    prop_assert!(l >= 1 && l <= n as u64);
                    prop_assert!(l * 100 >= exact && (l - 1) * 100 < exact.max(1));
                }
            }
        }

        /// Counts: the limit is min(count, N), the threshold is the count.
        #[test]
        fn count_limits(n in 0usize..1000, k in 1u32..2000) {
            let l = Concurrency::Count(k).limit(n);
            prop_assert_eq!(l, (k as usize).min(n));
            prop_assert_eq!(ErrorLimit::Count(k).threshold(n), k as usize);
        }

        /// The parsers accept exactly the model's patterns and lengths.
        #[test]
        fn parsers_match_model_patterns(s in "[0-9%.+ -]{0,9}|[1-9][0-9]{0,8}%?|[0-9]{1,3}%") {
            let conc_re = regex::Regex::new(CONCURRENCY_PATTERN).unwrap();
            let err_re = regex::Regex::new(ERRORS_PATTERN).unwrap();
            let len_ok = !s.is_empty() && s.len() <= MAX_LEN;
            prop_assert_eq!(parse_concurrency(&s).is_ok(), len_ok && conc_re.is_match(&s), "concurrency {:?}", s);
            prop_assert_eq!(parse_errors(&s).is_ok(), len_ok && err_re.is_match(&s), "errors {:?}", s);
            if let Ok(v) = parse_concurrency(&s) {
                prop_assert_eq!(v.to_string(), s.clone());
            }
            if let Ok(v) = parse_errors(&s) {
                prop_assert_eq!(v.to_string(), s);
            }
        }
    }
}
