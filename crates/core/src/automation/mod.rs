//! Automation runbooks at run time, as pure logic: turning the wire parameters of
//! `StartAutomationExecution` into typed runbook parameter values ([`params`]), resolving the
//! `{{ … }}` references of step inputs against what an execution knows ([`mod@interpolate`]),
//! choosing where an `aws:branch` step goes ([`branch`]) and computing when an `aws:sleep` step
//! wakes ([`sleep`]); the runbook as the engine walks it ([`runbook`]), the persisted state of an
//! execution ([`execution`]) and the state machine that advances it ([`machine`]).
//!
//! Nothing here does I/O or keeps state; the execution engine supplies the runbook's parameter
//! definitions, the supplied values and a [`Scope`] describing the execution so far.

pub mod branch;
pub mod execution;
pub mod interpolate;
pub mod machine;
pub mod params;
pub mod runbook;
pub mod selector;
pub mod sleep;

pub use branch::{BranchError, condition_holds};
pub use interpolate::{InterpolationError, Reference, Scope, interpolate, references};
pub use params::{ParamError, ParamType, resolve_parameters, to_wire};
pub use sleep::{MAX_SLEEP_SECONDS, SleepError, wake_at};
