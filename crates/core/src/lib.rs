//! Pure logic of ssmd, with no I/O: documents and their validation, ids and ARNs, pagination
//! tokens, request fingerprints, schedule expressions and the clock abstraction. Everything here
//! is deterministic given its inputs (time comes from a `Clock`), so it is tested without a
//! server or a database.

pub mod arn;
pub mod automation;
pub mod clock;
pub mod command;
pub mod document;
pub mod fingerprint;
pub mod ids;
pub mod rate;
pub mod schedule;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
