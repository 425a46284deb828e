//! Run Command progress: how one command's invocations end, what that does to its counters, to
//! rate control (the shared [`RateController`]) and to the command's own Status and
//! StatusDetails. Pure: no I/O, no time; the state is serialised into the command row and
//! changed only inside the store's settle transaction.
//!
//! Status rules (SSM's, see docs/compat.md "Run Command" for the choices AWS leaves open):
//! * an invocation that ends Failed, ExecutionTimedOut or DeliveryTimedOut is an error for
//!   MaxErrors; at the (E+1)-th, dispatch stops and the invocations never sent end Cancelled /
//!   Terminated at once ([`Progress::terminate_unsent`]);
//! * `ErrorCount` counts Failed and ExecutionTimedOut, `DeliveryTimedOutCount` DeliveryTimedOut;
//!   `CompletedCount` counts every final invocation;
//! * the command ends Cancelled if it was cancelled; Failed / TimedOut (details: the kind of the
//!   error that crossed the threshold) if dispatch stopped on errors; Success otherwise
//!   (details Success, or Incomplete when some invocation did not succeed).

use crate::rate::{Concurrency, ErrorLimit, RateController};
use serde::{Deserialize, Serialize};
use ssmd_model::enums::{CommandInvocationStatus, CommandPluginStatus, CommandStatus};

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    Success,
    Failed,
    ExecutionTimedOut,
    DeliveryTimedOut,
    Cancelled,
    /// Never sent: dispatch stopped at the error threshold.
    Terminated,
    /// The node refused the message (`FailMessage`).
    Undeliverable,
}

impl End {
    /// The invocation's `Status`.
    pub fn status(self) -> CommandInvocationStatus {
        match self {
            End::Success => CommandInvocationStatus::Success,
            End::Failed | End::Undeliverable => CommandInvocationStatus::Failed,
            End::ExecutionTimedOut | End::DeliveryTimedOut => CommandInvocationStatus::TimedOut,
            End::Cancelled | End::Terminated => CommandInvocationStatus::Cancelled,
        }
    }

    /// The `Status` of the invocation's plugins that had not reported their own end.
    pub fn plugin_status(self) -> CommandPluginStatus {
        match self {
            End::Success => CommandPluginStatus::Success,
            End::Failed | End::Undeliverable => CommandPluginStatus::Failed,
            End::ExecutionTimedOut | End::DeliveryTimedOut => CommandPluginStatus::TimedOut,
            End::Cancelled | End::Terminated => CommandPluginStatus::Cancelled,
        }
    }

    /// The invocation's `StatusDetails` (free text in the model, so a string).
    pub fn details(self) -> &'static str {
        match self {
            End::Success => "Success",
            End::Failed => "Failed",
            End::ExecutionTimedOut => "ExecutionTimedOut",
            End::DeliveryTimedOut => "DeliveryTimedOut",
            End::Cancelled => "Cancelled",
            End::Terminated => "Terminated",
            End::Undeliverable => "Undeliverable",
        }
    }

    /// Whether it counts against MaxErrors.
    pub fn is_error(self) -> bool {
        matches!(self, End::Failed | End::ExecutionTimedOut | End::DeliveryTimedOut)
    }

    /// The end an agent's final document status means (`None`: not a final status). The agent's
    /// statuses are its own protocol's strings (`Skipped`, `TestPass`, `SuccessAndReboot`, ...),
    /// not an SSM model enum, so they stay text here.
    /// `SuccessAndReboot` / `PassedAndReboot` are not final: the agent reboots the node and runs
    /// on (the script again, then the remaining steps) and reports the end after that.
    pub fn from_agent(status: &str) -> Option<End> {
        Some(match status {
            "Success" | "Skipped" | "TestPass" => End::Success,
            "Failed" | "TestFailure" => End::Failed,
            "TimedOut" => End::ExecutionTimedOut,
            "Cancelled" => End::Cancelled,
            _ => return None,
        })
    }
}

/// A command's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    rate: RateController,
    /// The error that stopped dispatch, if one did.
    stopped_by: Option<End>,
    cancelled: bool,
    /// Invocations that did not succeed (for Incomplete).
    unsuccessful: usize,
    /// Targets cancelled before they were sent: passed over when their turn comes.
    #[serde(default)]
    skipped: std::collections::BTreeSet<usize>,
    pub completed: usize,
    pub errors: usize,
    pub delivery_timed_out: usize,
}

impl Progress {
    /// The progress of a command over `targets` nodes, and the targets to send to at once.
    pub fn new(targets: usize, concurrency: Concurrency, errors: ErrorLimit) -> (Progress, Vec<usize>) {
        let mut p = Progress {
            rate: RateController::new(targets, concurrency, errors),
            stopped_by: None,
            cancelled: false,
            unsuccessful: 0,
            skipped: Default::default(),
            completed: 0,
            errors: 0,
            delivery_timed_out: 0,
        };
        let first = p.rate.next_batch().collect();
        let first = p.pass_over(first);
        (p, first)
    }

    /// Records that the invocation at `seq` ended; returns the targets to send to next. An
    /// invocation never sent (`seq` not running) is counted but does not touch rate control.
    pub fn end(&mut self, seq: usize, end: End) -> Vec<usize> {
        self.count(end);
        let was_stopped = self.rate.stopped();
        self.rate.finished(seq, !end.is_error());
        if !was_stopped && self.rate.stopped() {
            self.stopped_by = Some(end);
        }
        let next = self.rate.next_batch().collect();
        self.pass_over(next)
    }

    /// Ends a target that was never sent (cancelled on its own, or past the delivery deadline):
    /// it is counted now, once, and passed over when rate control reaches it.
    pub fn end_unsent(&mut self, seq: usize, end: End) {
        // One already passed over was counted when it ended.
        if !self.rate.is_started(seq) && self.skipped.insert(seq) {
            self.count(end);
        }
    }

    /// Once dispatch has stopped on errors, ends every target never sent (they are Cancelled /
    /// Terminated) and returns how many; each is counted once, later calls count the rest (none).
    pub fn terminate_unsent(&mut self) -> usize {
        if !self.stopped_on_errors() {
            return 0;
        }
        let unsent = self.never_sent();
        for &seq in &unsent {
            self.end_unsent(seq, End::Terminated);
        }
        unsent.len()
    }

    fn count(&mut self, end: End) {
        self.completed += 1;
        match end {
            End::Success => {}
            End::Failed | End::ExecutionTimedOut => self.errors += 1,
            End::DeliveryTimedOut => self.delivery_timed_out += 1,
            _ => {}
        }
        if end != End::Success {
            self.unsuccessful += 1;
        }
    }

    /// The targets of a batch that are not skipped; skipped ones free their slot at once.
    fn pass_over(&mut self, mut batch: Vec<usize>) -> Vec<usize> {
        let mut out = Vec::with_capacity(batch.len());
        while !batch.is_empty() {
            let mut freed = false;
            for seq in batch.drain(..) {
                if self.skipped.contains(&seq) {
                    self.rate.finished(seq, true);
                    freed = true;
                } else {
                    out.push(seq);
                }
            }
            if freed {
                batch = self.rate.next_batch().collect();
            }
        }
        // Targets passed over need no remembering: the progress stays small however many there
        // are (only cancelled targets not reached yet are kept).
        self.skipped = self.skipped.split_off(&self.rate.started());
        out
    }

    /// Targets never sent and never skipped (what is left when dispatch halts).
    pub fn never_sent(&self) -> Vec<usize> {
        self.rate.not_started().filter(|s| !self.skipped.contains(s)).collect()
    }

    /// Stops all further dispatch because the command was cancelled.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        self.rate.cancel();
    }

    /// Stops all further dispatch because the delivery deadline passed.
    pub fn expire(&mut self) {
        self.rate.cancel();
    }

    /// Whether targets not yet sent will never be sent (errors, cancel or expiry).
    pub fn halted(&self) -> bool {
        self.rate.stopped() || self.rate.cancelled()
    }

    /// Whether the error threshold stopped dispatch.
    pub fn stopped_on_errors(&self) -> bool {
        self.stopped_by.is_some()
    }

    /// Whether the command was cancelled.
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// Whether every invocation has ended.
    pub fn finished(&self) -> bool {
        self.completed >= self.rate.total()
    }

    /// The command's Status and StatusDetails; `started` says whether any invocation has been
    /// picked up by its node yet (Pending until then).
    pub fn status(&self, started: bool) -> (CommandStatus, &'static str) {
        if !self.finished() {
            return match (self.cancelled, started) {
                (true, _) => (CommandStatus::Cancelling, "Cancelling"),
                (false, true) => (CommandStatus::InProgress, "InProgress"),
                (false, false) => (CommandStatus::Pending, "Pending"),
            };
        }
        if self.cancelled {
            return (CommandStatus::Cancelled, "Cancelled");
        }
        if self.rate.total() == 0 {
            return (CommandStatus::Success, "NoInstancesInTag");
        }
        match self.stopped_by {
            Some(End::DeliveryTimedOut) => (CommandStatus::TimedOut, "DeliveryTimedOut"),
            Some(End::ExecutionTimedOut) => (CommandStatus::TimedOut, "ExecutionTimedOut"),
            Some(_) => (CommandStatus::Failed, "Failed"),
            None if self.unsuccessful > 0 => (CommandStatus::Success, "Incomplete"),
            None => (CommandStatus::Success, "Success"),
        }
    }

    /// The concurrency limit in effect.
    pub fn limit(&self) -> usize {
        self.rate.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(n: usize, c: &str, e: &str) -> (Progress, Vec<usize>) {
        Progress::new(n, c.parse().unwrap(), e.parse().unwrap())
    }

    #[test]
    fn dispatch_follows_concurrency_and_success_ends_success() {
        let (mut p, first) = progress(5, "2", "0");
        assert_eq!(first, vec![0, 1]);
        assert_eq!(p.status(false), (CommandStatus::Pending, "Pending"));
        assert_eq!(p.end(0, End::Success), vec![2]);
        assert_eq!(p.end(1, End::Success), vec![3]);
        assert_eq!(p.end(2, End::Success), vec![4]);
        assert!(p.end(3, End::Success).is_empty());
        assert_eq!(p.status(true), (CommandStatus::InProgress, "InProgress"));
        assert!(p.end(4, End::Success).is_empty());
        assert!(p.finished());
        assert_eq!(p.status(true), (CommandStatus::Success, "Success"));
        assert_eq!((p.completed, p.errors, p.delivery_timed_out), (5, 0, 0));
    }

    #[test]
    fn stops_at_error_e_plus_one() {
        let (mut p, first) = progress(10, "1", "2");
        assert_eq!(first, vec![0]);
        assert_eq!(p.end(0, End::Failed), vec![1]);
        assert_eq!(p.end(1, End::ExecutionTimedOut), vec![2]);
        assert!(!p.halted());
        assert!(p.end(2, End::Failed).is_empty());
        assert!(p.halted() && p.stopped_on_errors());
        assert_eq!(p.terminate_unsent(), 7);
        assert_eq!(p.terminate_unsent(), 0);
        assert!(p.finished());
        assert_eq!(p.status(true), (CommandStatus::Failed, "Failed"));
        assert_eq!((p.completed, p.errors), (10, 3));
    }

    #[test]
    fn nothing_is_terminated_while_dispatch_goes_on_and_running_ones_still_finish() {
        let (mut p, first) = progress(6, "2", "1");
        assert_eq!(first, vec![0, 1]);
        assert_eq!(p.end(0, End::Failed), vec![2]);
        assert_eq!(p.terminate_unsent(), 0);
        assert!(p.end(2, End::Failed).is_empty());
        assert_eq!(p.terminate_unsent(), 3);
        assert_eq!(p.status(true), (CommandStatus::InProgress, "InProgress"));
        assert!(p.end(1, End::Success).is_empty());
        assert!(p.finished());
        assert_eq!(p.status(true), (CommandStatus::Failed, "Failed"));
        assert_eq!((p.completed, p.errors), (6, 2));
    }

    #[test]
    fn unsent_targets_timed_out_are_not_terminated_again() {
        let (mut p, first) = progress(3, "1", "0");
        assert_eq!(first, vec![0]);
        p.expire();
        p.end(0, End::DeliveryTimedOut);
        p.end_unsent(1, End::DeliveryTimedOut);
        p.end_unsent(2, End::DeliveryTimedOut);
        assert!(p.stopped_on_errors());
        assert_eq!(p.terminate_unsent(), 0);
        assert_eq!((p.completed, p.delivery_timed_out), (3, 3));
        assert_eq!(p.status(false), (CommandStatus::TimedOut, "DeliveryTimedOut"));
    }

    #[test]
    fn errors_within_the_limit_are_incomplete_success() {
        let (mut p, _) = progress(2, "2", "1");
        p.end(0, End::Failed);
        p.end(1, End::Success);
        assert_eq!(p.status(true), (CommandStatus::Success, "Incomplete"));
    }

    #[test]
    fn delivery_timeouts_count_separately_and_name_the_stop() {
        let (mut p, _) = progress(2, "2", "0");
        p.end(0, End::DeliveryTimedOut);
        p.expire();
        p.end(1, End::DeliveryTimedOut);
        assert_eq!((p.errors, p.delivery_timed_out), (0, 2));
        assert_eq!(p.status(false), (CommandStatus::TimedOut, "DeliveryTimedOut"));
    }

    #[test]
    fn cancel_stops_dispatch_and_ends_cancelled() {
        let (mut p, first) = progress(3, "1", "0");
        assert_eq!(first, vec![0]);
        p.cancel();
        assert_eq!(p.status(true), (CommandStatus::Cancelling, "Cancelling"));
        p.end(1, End::Cancelled);
        p.end(2, End::Cancelled);
        assert!(p.end(0, End::Cancelled).is_empty());
        assert_eq!(p.status(true), (CommandStatus::Cancelled, "Cancelled"));
    }

    #[test]
    fn undeliverable_is_not_an_error() {
        let (mut p, _) = progress(2, "1", "0");
        assert_eq!(p.end(0, End::Undeliverable), vec![1]);
        p.end(1, End::Success);
        assert_eq!(p.status(true), (CommandStatus::Success, "Incomplete"));
    }

    #[test]
    fn skipped_targets_are_passed_over_and_counted_once() {
        let (mut p, first) = progress(4, "1", "0");
        assert_eq!(first, vec![0]);
        p.end_unsent(1, End::Cancelled);
        p.end_unsent(1, End::Cancelled);
        assert_eq!(p.completed, 1);
        assert_eq!(p.end(0, End::Success), vec![2]);
        assert_eq!(p.end(2, End::Success), vec![3]);
        p.end(3, End::Success);
        assert!(p.finished());
        assert_eq!(p.status(true), (CommandStatus::Success, "Incomplete"));
    }

    #[test]
    fn progress_stays_small_over_many_targets() {
        let (mut p, first) = progress(10_000, "2", "0");
        let size = |p: &Progress| serde_json::to_string(p).unwrap().len();
        let at_start = size(&p);
        // Targets cancelled before their turn are remembered only until they are passed over.
        for seq in [5, 6, 7, 9_000] {
            p.end_unsent(seq, End::Cancelled);
        }
        let mut running: Vec<usize> = first;
        while let Some(seq) = running.pop() {
            running.extend(p.end(seq, End::Success));
            if seq == 100 {
                assert!(size(&p) < at_start + 40, "only the target not reached yet is kept");
            }
        }
        assert!(p.finished());
        assert_eq!(p.completed, 10_000);
        assert!(size(&p) < at_start + 40, "{} vs {at_start}", size(&p));
    }

    #[test]
    fn a_reboot_request_is_not_an_end() {
        assert_eq!(End::from_agent("SuccessAndReboot"), None);
        assert_eq!(End::from_agent("PassedAndReboot"), None);
        assert_eq!(End::from_agent("InProgress"), None);
        assert_eq!(End::from_agent("Skipped"), Some(End::Success));
        assert_eq!(End::from_agent("TimedOut"), Some(End::ExecutionTimedOut));
    }

    #[test]
    fn no_targets_is_no_instances_in_tag() {
        let (p, first) = progress(0, "50", "0");
        assert!(first.is_empty());
        assert_eq!(p.status(false), (CommandStatus::Success, "NoInstancesInTag"));
    }
}
