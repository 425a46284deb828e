//! Output: the [`Printer`] (timestamped, indented step lines, with colour and status symbols only
//! on a terminal) and the formatting of values, durations and statuses.

use super::progress::{Change, Details};
use serde_json::Value;
use ssmd_core::automation::execution::is_terminal;
use ssmd_model::enums::AutomationExecutionStatus as Status;

/// Output lines; colour and symbols only on a terminal.
pub(super) struct Printer {
    pub(super) color: bool,
}

impl Printer {
    pub(super) fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    /// `[HH:MM:SS] text` (UTC), indented by depth, with a status symbol on a terminal.
    fn line(&self, at_ms: i64, depth: usize, st: Option<&str>, text: &str) {
        let (_, _, _, h, m, s) = ssmd_core::clock::utc_fields(at_ms);
        let stamp = self.paint("2", &format!("[{h:02}:{m:02}:{s:02}]"));
        let symbol = match (self.color, st) {
            (true, Some(st)) => {
                let sym = match Status::from_wire(st) {
                    Some(Status::Success) => "✔",
                    Some(Status::Failed | Status::TimedOut) => "✘",
                    Some(Status::Waiting) => "⏸",
                    Some(Status::Cancelled | Status::Cancelling) => "⊘",
                    _ => "▶",
                };
                format!("{} ", self.paint(status_color(st), sym))
            }
            _ => String::new(),
        };
        println!("{stamp} {}{symbol}{text}", "  ".repeat(depth));
    }

    /// Indented detail lines under a step.
    fn block(&self, depth: usize, text: &str) {
        let pad = " ".repeat(detail_indent(depth));
        for l in text.lines() {
            println!("{pad}{l}");
        }
    }

    /// A change's line and the lines under it.
    pub(super) fn change(&self, c: Change) {
        let word = c.status.as_deref().map(|st| self.paint(status_color(st), st)).unwrap_or_default();
        self.line(c.at, c.depth, c.status.as_deref(), &format!("{}{word}{}", c.text, c.after));
        match c.details {
            Details::None => {}
            Details::Text(t) => self.block(c.depth, &t),
            Details::Outputs(o) => {
                for (k, v) in &o {
                    println!("{}", value_line(detail_indent(c.depth), k, v));
                }
            }
        }
    }

    pub(super) fn prompt(&self, q: &str) -> String {
        self.paint("1", q)
    }

    pub(super) fn note(&self, text: &str) {
        println!("{}", self.paint("2", text));
    }

    pub(super) fn warn(&self, text: &str) {
        println!("{}", self.paint("33", text));
    }

    pub(super) fn error(&self, text: &str) {
        println!("{}", self.paint("31", &format!("error: {text}")));
    }
}

/// The indent of the lines under a change `depth` levels down: past the `[HH:MM:SS] ` stamp and
/// the change's own indent.
fn detail_indent(depth: usize) -> usize {
    13 + 2 * depth
}

/// A JSON value as text (strings without quotes).
pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `1.0s`, `2m05s`, `1h02m`.
pub(super) fn duration(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    } else {
        format!("{}h{:02}m", (secs / 3600.0) as u64, secs as u64 % 3600 / 60)
    }
}

/// `  Key = value` with list values as JSON and continuation lines indented.
pub(super) fn value_line(indent: usize, key: &str, v: &Value) -> String {
    let value = match v {
        Value::Array(items) if items.len() == 1 => text(&items[0]),
        other => other.to_string(),
    };
    let pad = " ".repeat(indent);
    let cont = format!("\n{pad}{}", " ".repeat(key.len() + 3));
    format!("{pad}{key} = {}", value.lines().collect::<Vec<_>>().join(&cont))
}

/// The ANSI colour of a status.
pub(super) fn status_color(st: &str) -> &'static str {
    match Status::from_wire(st) {
        Some(Status::Success) => "32",
        Some(Status::Failed | Status::TimedOut) => "31",
        Some(Status::Waiting | Status::Cancelling | Status::Cancelled) => "33",
        _ => "36",
    }
}

/// Whether a status as the API reports it is final (an unknown one is not).
pub(super) fn terminal(st: &str) -> bool {
    Status::from_wire(st).is_some_and(is_terminal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_durations() {
        assert_eq!(value_line(2, "A", &json!(["x"])), "  A = x");
        assert_eq!(value_line(2, "A", &json!(["x", "y"])), "  A = [\"x\",\"y\"]");
        assert_eq!(value_line(0, "Ab", &json!(["1\n2"])), "Ab = 1\n     2");
        assert_eq!(duration(1.04), "1.0s");
        assert_eq!(duration(125.0), "2m05s");
    }
}
