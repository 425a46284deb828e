//! Logging: one line per event on stderr, `<ISO 8601 time> <LEVEL> <message>`. The `info!`,
//! `warn!` and `error!` macros format like `format!`.

use std::io::Write as _;

/// Writes one log line.
pub fn write(level: &str, args: std::fmt::Arguments<'_>) {
    let line = format!("{} {level} {args}\n", crate::clock::iso8601_ms(crate::clock::now_ms()));
    // One write per line, so that lines from several threads do not interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs an informational event.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write("INFO", format_args!($($t)*)) };
}

/// Logs a problem the agent carries on from.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write("WARN", format_args!($($t)*)) };
}

/// Logs a failure.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write("ERROR", format_args!($($t)*)) };
}
