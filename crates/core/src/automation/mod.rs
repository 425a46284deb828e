//! Automation runbooks at run time, as pure logic: turning the wire parameters of
//! `StartAutomationExecution` into typed runbook parameter values ([`params`]) and resolving the
//! `{{ … }}` references of step inputs against what an execution knows ([`mod@interpolate`]).
//!
//! Nothing here does I/O or keeps state; the execution engine supplies the runbook's parameter
//! definitions, the supplied values and a [`Scope`] describing the execution so far.

pub mod interpolate;
pub mod params;

pub use interpolate::{InterpolationError, Reference, Scope, interpolate, references};
pub use params::{ParamError, ParamType, resolve_parameters, to_wire};
