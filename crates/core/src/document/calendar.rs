//! iCalendar (RFC 5545) reading for ChangeCalendar documents.
//!
//! A ChangeCalendar document's content is iCalendar text (spec §6.4): a `VCALENDAR` with
//! `X-CALENDAR-TYPE` (`DEFAULT_OPEN`, the default, or `DEFAULT_CLOSED`) and `VEVENT`s whose
//! active periods invert the default. This module unfolds continuation lines, splits content
//! lines into name, parameters and value, checks the structure `CreateDocument` must refuse
//! (first/last lines, `VERSION`, balanced components, event times, the calendar type) and
//! extracts what calendar evaluation needs. Every refusal names the line it concerns.
//!
//! Times are kept as written (`DTSTART` text plus its `TZID`); turning them into instants and
//! expanding `RRULE`s is the evaluator's job.

use super::DocError;

/// A parsed ChangeCalendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// `true` for `X-CALENDAR-TYPE:DEFAULT_OPEN` (also when the property is absent), `false` for
    /// `DEFAULT_CLOSED`.
    pub default_open: bool,
    /// The calendar's `VEVENT`s in document order.
    pub events: Vec<Event>,
}

/// One `VEVENT` of a calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's `UID`, if any.
    pub uid: Option<String>,
    /// The event's `SUMMARY`, if any.
    pub summary: Option<String>,
    /// The `DTSTART` value as written: `YYYYMMDD` or `YYYYMMDDTHHMMSS`, optionally ending in `Z`.
    pub start: String,
    /// The `DTEND` value as written, in the same forms as `start`.
    pub end: Option<String>,
    /// The `TZID` parameter of `DTSTART` (or, failing that, of `DTEND`).
    pub tzid: Option<String>,
    /// The `RRULE` value as written (e.g. `FREQ=WEEKLY;BYDAY=SA,SU`).
    pub rrule: Option<String>,
}

/// Validates ChangeCalendar content; see [`parse`] for the rules.
pub fn validate(text: &str) -> Result<(), DocError> {
    parse(text).map(|_| ())
}

/// Parses ChangeCalendar content.
///
/// Refuses with [`DocError::InvalidContent`] (the message starts with `Line N:`) content whose
/// first line is not `BEGIN:VCALENDAR` or last line not `END:VCALENDAR`, that has no `VERSION`,
/// whose `BEGIN`/`END` lines don't pair up, a line that isn't `NAME[;PARAM=VALUE…]:VALUE`, an
/// event without `DTSTART`, a `DTSTART`/`DTEND` not of the form `YYYYMMDD` or
/// `YYYYMMDDTHHMMSS[Z]`, an event that ends before it starts, an `RRULE` without a valid `FREQ`,
/// and an `X-CALENDAR-TYPE` other than `DEFAULT_OPEN` or `DEFAULT_CLOSED`.
pub fn parse(text: &str) -> Result<Calendar, DocError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = unfold(text);
    let Some(first) = lines.first() else {
        return Err(err(1, "The calendar is empty; it must start with BEGIN:VCALENDAR."));
    };

    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut calendar = Calendar { default_open: true, events: vec![] };
    let mut version_seen = false;
    let mut calendar_type_line: Option<usize> = None;
    let mut event: Option<EventBuilder> = None;
    let mut closed = false;

    for (no, raw) in &lines {
        let no = *no;
        if closed {
            return Err(err(no, "Content follows END:VCALENDAR; END:VCALENDAR must be the last line."));
        }
        let line = ContentLine::parse(raw).map_err(|msg| err(no, &msg))?;
        if stack.is_empty() && !(line.name == "BEGIN" && line.value.eq_ignore_ascii_case("VCALENDAR")) {
            return Err(if no == first.0 {
                err(no, &format!("The calendar must start with BEGIN:VCALENDAR, not '{}'.", clip(raw)))
            } else {
                err(no, &format!("'{}' is outside the VCALENDAR.", clip(raw)))
            });
        }
        match line.name.as_str() {
            "BEGIN" => {
                let component = line.value.to_ascii_uppercase();
                if !is_component_name(&component) {
                    return Err(err(no, &format!("BEGIN:{} does not name a component.", line.value)));
                }
                if component == "VCALENDAR" && !stack.is_empty() {
                    return Err(err(no, "A VCALENDAR can't be nested inside another component."));
                }
                if component == "VEVENT" {
                    if stack.len() != 1 {
                        return Err(err(no, "A VEVENT must be directly inside the VCALENDAR."));
                    }
                    event = Some(EventBuilder::new(no));
                }
                stack.push((component, no));
            }
            "END" => {
                let component = line.value.to_ascii_uppercase();
                let Some((open, open_line)) = stack.pop() else {
                    return Err(err(no, &format!("END:{} has no matching BEGIN.", line.value)));
                };
                if open != component {
                    return Err(err(
                        no,
                        &format!("END:{} does not match BEGIN:{open} on line {open_line}.", line.value),
                    ));
                }
                if component == "VEVENT"
                    && let Some(builder) = event.take()
                {
                    calendar.events.push(builder.finish()?);
                }
                if stack.is_empty() {
                    closed = true;
                }
            }
            name => {
                let in_calendar = stack.len() == 1;
                let in_event = stack.len() == 2 && stack[1].0 == "VEVENT";
                if in_calendar {
                    match name {
                        "VERSION" => version_seen = true,
                        "X-CALENDAR-TYPE" => {
                            if let Some(previous) = calendar_type_line {
                                return Err(err(
                                    no,
                                    &format!("X-CALENDAR-TYPE appears again (first on line {previous})."),
                                ));
                            }
                            calendar_type_line = Some(no);
                            calendar.default_open = match line.value.trim() {
                                "DEFAULT_OPEN" => true,
                                "DEFAULT_CLOSED" => false,
                                other => {
                                    return Err(err(
                                        no,
                                        &format!(
                                            "X-CALENDAR-TYPE is '{other}'; it must be DEFAULT_OPEN or DEFAULT_CLOSED."
                                        ),
                                    ));
                                }
                            };
                        }
                        _ => {}
                    }
                } else if in_event && let Some(builder) = event.as_mut() {
                    builder.property(no, &line)?;
                }
            }
        }
    }

    let last_line = lines.last().map_or(1, |(no, _)| *no);
    if let Some((open, open_line)) = stack.last() {
        return Err(err(
            last_line,
            &format!("BEGIN:{open} on line {open_line} is never closed; the calendar must end with END:VCALENDAR."),
        ));
    }
    if !version_seen {
        return Err(err(first.0, "The VCALENDAR has no VERSION property (VERSION:2.0)."));
    }
    Ok(calendar)
}

fn err(line: usize, msg: &str) -> DocError {
    DocError::InvalidContent(format!("Line {line}: {msg}"))
}

/// Shortens a line quoted in a message.
fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX { s.to_string() } else { format!("{}...", s.chars().take(MAX).collect::<String>()) }
}

/// Unfolds continuation lines (a line starting with a space or tab continues the previous one,
/// minus that first character) and drops blank lines. Each logical line carries the 1-based
/// number of the physical line it starts on.
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, physical) in text.split('\n').enumerate() {
        let physical = physical.strip_suffix('\r').unwrap_or(physical);
        if let Some(rest) = physical.strip_prefix([' ', '\t'])
            && let Some((_, last)) = out.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        if physical.trim().is_empty() {
            continue;
        }
        out.push((i + 1, physical.to_string()));
    }
    out
}

/// A content line: `NAME *(";" PARAM "=" VALUE) ":" VALUE`.
struct ContentLine {
    /// Upper-cased property name.
    name: String,
    /// Parameters with upper-cased names and unquoted values.
    params: Vec<(String, String)>,
    value: String,
}

impl ContentLine {
    fn parse(line: &str) -> Result<ContentLine, String> {
        // The first ':' outside a quoted parameter value ends the name and parameters.
        let mut in_quotes = false;
        let mut colon = None;
        for (i, c) in line.char_indices() {
            match c {
                '"' => in_quotes = !in_quotes,
                ':' if !in_quotes => {
                    colon = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(colon) = colon else {
            return Err(format!("'{}' is not a content line of the form NAME:VALUE.", clip(line)));
        };
        let (head, value) = (&line[..colon], &line[colon + 1..]);
        let mut parts = split_outside_quotes(head, ';').into_iter();
        let name = parts.next().unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("'{}' does not start with a property name.", clip(line)));
        }
        let mut params = Vec::new();
        for part in parts {
            let Some((pname, pvalue)) = part.split_once('=') else {
                return Err(format!("Parameter '{part}' of {name} is not of the form NAME=VALUE."));
            };
            if pname.is_empty() {
                return Err(format!("A parameter of {name} has no name."));
            }
            params.push((pname.to_ascii_uppercase(), pvalue.trim_matches('"').to_string()));
        }
        Ok(ContentLine { name: name.to_ascii_uppercase(), params, value: value.to_string() })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Component names RFC 5545 defines, plus `X-` extensions.
fn is_component_name(name: &str) -> bool {
    matches!(
        name,
        "VCALENDAR" | "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY" | "VTIMEZONE" | "STANDARD" | "DAYLIGHT" | "VALARM"
    ) || (name.starts_with("X-") && name.len() > 2)
        || (name.starts_with("IANA-") && name.len() > 5)
}

/// How a DATE or DATE-TIME value is written; start and end are only compared when alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeForm {
    Date,
    Local,
    Utc,
}

/// Checks `YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]` with plausible field ranges.
fn time_form(value: &str) -> Option<TimeForm> {
    let digits = |s: &str| s.len() >= 2 && s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<u32>().ok();
    let (date, time) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    if date.len() != 8 || !digits(date) {
        return None;
    }
    let month = num(&date[4..6])?;
    let day = num(&date[6..8])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let Some(time) = time else {
        return Some(TimeForm::Date);
    };
    let (clock, utc) = match time.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (time, false),
    };
    if clock.len() != 6 || !digits(clock) {
        return None;
    }
    let (h, m, s) = (num(&clock[0..2])?, num(&clock[2..4])?, num(&clock[4..6])?);
    // Second 60 is a leap second, which RFC 5545 allows.
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(if utc { TimeForm::Utc } else { TimeForm::Local })
}

/// Collects one VEVENT's properties.
struct EventBuilder {
    begin_line: usize,
    uid: Option<String>,
    summary: Option<String>,
    start: Option<(String, TimeForm, Option<String>)>,
    end: Option<(String, TimeForm, Option<String>, usize)>,
    rrule: Option<String>,
}

impl EventBuilder {
    fn new(begin_line: usize) -> EventBuilder {
        EventBuilder { begin_line, uid: None, summary: None, start: None, end: None, rrule: None }
    }

    fn property(&mut self, no: usize, line: &ContentLine) -> Result<(), DocError> {
        match line.name.as_str() {
            "UID" => self.uid = Some(line.value.clone()),
            "SUMMARY" => self.summary = Some(unescape(&line.value)),
            "DTSTART" | "DTEND" => {
                let name = line.name.as_str();
                let value = line.value.trim();
                let Some(form) = time_form(value) else {
                    return Err(err(
                        no,
                        &format!(
                            "{name} value '{value}' is not of the form YYYYMMDD or YYYYMMDDTHHMMSS (optionally ending in Z)."
                        ),
                    ));
                };
                let tzid = line.param("TZID").map(str::to_string);
                if name == "DTSTART" {
                    if self.start.is_some() {
                        return Err(err(no, "The VEVENT has more than one DTSTART."));
                    }
                    self.start = Some((value.to_string(), form, tzid));
                } else {
                    if self.end.is_some() {
                        return Err(err(no, "The VEVENT has more than one DTEND."));
                    }
                    self.end = Some((value.to_string(), form, tzid, no));
                }
            }
            "RRULE" => {
                let value = line.value.trim();
                let freq = value.split(';').find_map(|part| {
                    let (k, v) = part.split_once('=')?;
                    k.eq_ignore_ascii_case("FREQ").then_some(v)
                });
                const FREQS: [&str; 7] = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"];
                match freq {
                    Some(f) if FREQS.contains(&f.to_ascii_uppercase().as_str()) => {}
                    Some(f) => {
                        return Err(err(no, &format!("RRULE has FREQ={f}; FREQ must be one of {}.", FREQS.join(", "))));
                    }
                    None => return Err(err(no, &format!("RRULE '{value}' has no FREQ part."))),
                }
                if self.rrule.is_some() {
                    return Err(err(no, "The VEVENT has more than one RRULE."));
                }
                self.rrule = Some(value.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Event, DocError> {
        let Some((start, start_form, start_tz)) = self.start else {
            return Err(err(self.begin_line, "The VEVENT that begins here has no DTSTART."));
        };
        let mut tzid = start_tz;
        let end = match self.end {
            None => None,
            Some((end, end_form, end_tz, end_line)) => {
                // Same form and zone: the text compares like the time it denotes.
                if end_form == start_form && end_tz == tzid && end.as_str() < start.as_str() {
                    return Err(err(end_line, &format!("DTEND {end} is before DTSTART {start}.")));
                }
                if tzid.is_none() {
                    tzid = end_tz;
                }
                Some(end)
            }
        };
        Ok(Event { uid: self.uid, summary: self.summary, start, end, tzid, rrule: self.rrule })
    }
}

/// Undoes RFC 5545 TEXT escaping (`\,` `\;` `\\` `\n`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps body lines in a minimal valid calendar, joined with CRLF.
    fn cal(body: &[&str]) -> String {
        let mut lines = vec!["BEGIN:VCALENDAR", "PRODID:-//AWS//Change Calendar 1.0//EN", "VERSION:2.0"];
        lines.extend_from_slice(body);
        lines.push("END:VCALENDAR");
        lines.join("\r\n") + "\r\n"
    }

    fn refused(text: &str, fragment: &str) {
        match parse(text) {
            Err(DocError::InvalidContent(msg)) => {
                assert!(msg.contains(fragment), "message {msg:?} lacks {fragment:?}");
                assert!(msg.starts_with("Line "), "message {msg:?} does not name a line");
                assert!(msg.ends_with('.'), "message {msg:?} does not end with a period");
            }
            other => panic!("expected InvalidContent containing {fragment:?}, got {other:?}"),
        }
        assert!(validate(text).is_err());
    }

    const AWS_STYLE: &str = "BEGIN:VCALENDAR\r\n\
PRODID:-//AWS//Change Calendar 1.0//EN\r\n\
VERSION:2.0\r\n\
X-CALENDAR-TYPE:DEFAULT_CLOSED\r\n\
X-WR-CALDESC:Weekend maintenance windows are the only time\r\n \
 changes may be made.\r\n\
X-CALENDAR-CMEVENTS:DISABLED\r\n\
X-WR-TIMEZONE:America/New_York\r\n\
BEGIN:VTIMEZONE\r\n\
TZID:America/New_York\r\n\
BEGIN:STANDARD\r\n\
DTSTART:19701101T020000\r\n\
TZOFFSETFROM:-0400\r\n\
TZOFFSETTO:-0500\r\n\
END:STANDARD\r\n\
END:VTIMEZONE\r\n\
BEGIN:VEVENT\r\n\
DTSTAMP:20250101T000000Z\r\n\
UID:3b5af39a-d0b3-4049-a839-d7bb8af01f92\r\n\
SUMMARY:Weekend window\\, Saturday\r\n\
DTSTART;TZID=America/New_York:20250104T\r\n\
\t090000\r\n\
DTEND;TZID=America/New_York:20250104T170000\r\n\
RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=SA\r\n\
X-EVENT-TYPE:STANDARD\r\n\
BEGIN:VALARM\r\n\
ACTION:DISPLAY\r\n\
DESCRIPTION:Reminder\r\n\
TRIGGER:-PT15M\r\n\
END:VALARM\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:all-day\r\n\
DTSTART;VALUE=DATE:20251225\r\n\
DTEND;VALUE=DATE:20251226\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:utc\r\n\
DTSTART:20250301T000000Z\r\n\
END:VEVENT\r\n\
BEGIN:VTODO\r\n\
UID:placeholder\r\n\
END:VTODO\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn parses_a_realistic_calendar_with_folded_lines_and_tzid() {
        let c = parse(AWS_STYLE).unwrap();
        assert!(!c.default_open);
        assert_eq!(c.events.len(), 3);
        assert_eq!(
            c.events[0],
            Event {
                uid: Some("3b5af39a-d0b3-4049-a839-d7bb8af01f92".into()),
                summary: Some("Weekend window, Saturday".into()),
                start: "20250104T090000".into(),
                end: Some("20250104T170000".into()),
                tzid: Some("America/New_York".into()),
                rrule: Some("FREQ=WEEKLY;INTERVAL=1;BYDAY=SA".into()),
            }
        );
        assert_eq!(c.events[1].start, "20251225");
        assert_eq!(c.events[1].end.as_deref(), Some("20251226"));
        assert_eq!(c.events[1].tzid, None);
        assert_eq!(c.events[2].start, "20250301T000000Z");
        assert_eq!(c.events[2].end, None);
        validate(AWS_STYLE).unwrap();
    }

    #[test]
    fn lf_line_endings_and_default_open() {
        let text = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nDTSTART:20250101T000000Z\nDTEND:20250102T000000Z\nEND:VEVENT\nEND:VCALENDAR";
        let c = parse(text).unwrap();
        assert!(c.default_open);
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.events[0].uid, None);
    }

    #[test]
    fn explicit_default_open_and_empty_calendar() {
        let c = parse(&cal(&["X-CALENDAR-TYPE:DEFAULT_OPEN"])).unwrap();
        assert_eq!(c, Calendar { default_open: true, events: vec![] });
    }

    #[test]
    fn lower_case_names_and_quoted_parameters() {
        let text = cal(&[
            "begin:vevent",
            "dtstart;tzid=\"Europe/Paris:Custom\";x-note=\"a;b\":20250101T100000",
            "summary:Quoted",
            "end:vevent",
        ]);
        let c = parse(&text).unwrap();
        assert_eq!(c.events[0].tzid.as_deref(), Some("Europe/Paris:Custom"));
        assert_eq!(c.events[0].start, "20250101T100000");
        assert_eq!(c.events[0].summary.as_deref(), Some("Quoted"));
    }

    #[test]
    fn tzid_falls_back_to_dtend() {
        let text =
            cal(&["BEGIN:VEVENT", "DTSTART:20250101T100000", "DTEND;TZID=Asia/Tokyo:20250101T110000", "END:VEVENT"]);
        assert_eq!(parse(&text).unwrap().events[0].tzid.as_deref(), Some("Asia/Tokyo"));
    }

    #[test]
    fn byte_order_mark_and_blank_lines_are_tolerated() {
        let text = format!("\u{feff}{}\r\n\r\n", cal(&["", "BEGIN:VEVENT", "DTSTART:20250101", "END:VEVENT"]));
        assert_eq!(parse(&text).unwrap().events.len(), 1);
    }

    #[test]
    fn unfolding_keeps_line_numbers_of_the_first_physical_line() {
        // The bad DTSTART starts on line 5 and continues on line 6.
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2025\r\n 0101T10\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        refused(text, "Line 5: DTSTART value '20250101T10' is not of the form");
    }

    #[test]
    fn empty_content_is_refused() {
        refused("", "Line 1: The calendar is empty");
        refused("\r\n  \r\n", "The calendar is empty");
    }

    #[test]
    fn must_start_with_begin_vcalendar() {
        refused(
            "VERSION:2.0\r\nEND:VCALENDAR\r\n",
            "Line 1: The calendar must start with BEGIN:VCALENDAR, not 'VERSION:2.0'",
        );
        refused("BEGIN:VEVENT\r\nEND:VEVENT\r\n", "must start with BEGIN:VCALENDAR");
    }

    #[test]
    fn must_end_with_end_vcalendar() {
        refused("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "Line 2: BEGIN:VCALENDAR on line 1 is never closed");
        let trailing = format!("{}X-EXTRA:1\r\n", cal(&[]));
        refused(&trailing, "Line 5: Content follows END:VCALENDAR");
    }

    #[test]
    fn version_is_required() {
        refused("BEGIN:VCALENDAR\r\nPRODID:x\r\nEND:VCALENDAR\r\n", "Line 1: The VCALENDAR has no VERSION property");
        // A VERSION inside an event doesn't count.
        refused(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nVERSION:2.0\r\nDTSTART:20250101\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "no VERSION property",
        );
    }

    #[test]
    fn components_must_balance() {
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "END:VTODO"]),
            "Line 6: END:VTODO does not match BEGIN:VEVENT on line 4",
        );
        refused(&cal(&["BEGIN:VEVENT", "DTSTART:20250101"]), "END:VCALENDAR does not match BEGIN:VEVENT on line 4");
        refused(&cal(&["END:VEVENT"]), "Line 4: END:VEVENT does not match BEGIN:VCALENDAR on line 1");
        refused(&cal(&["BEGIN:VCALENDAR"]), "Line 4: A VCALENDAR can't be nested");
        refused(&cal(&["BEGIN:"]), "Line 4: BEGIN: does not name a component");
        refused(
            &cal(&["BEGIN:VTODO", "BEGIN:VEVENT", "DTSTART:20250101", "END:VEVENT", "END:VTODO"]),
            "A VEVENT must be directly inside the VCALENDAR",
        );
    }

    #[test]
    fn malformed_content_lines_are_refused() {
        refused(&cal(&["NOCOLON"]), "Line 4: 'NOCOLON' is not a content line of the form NAME:VALUE");
        refused(&cal(&[":value"]), "Line 4: ':value' does not start with a property name");
        refused(&cal(&["BAD NAME:x"]), "does not start with a property name");
        refused(&cal(&["DESCRIPTION;LANGUAGE:x"]), "Parameter 'LANGUAGE' of DESCRIPTION is not of the form NAME=VALUE");
        refused(&cal(&["DESCRIPTION;=en:x"]), "A parameter of DESCRIPTION has no name");
    }

    #[test]
    fn event_needs_dtstart() {
        refused(&cal(&["BEGIN:VEVENT", "UID:x", "END:VEVENT"]), "Line 4: The VEVENT that begins here has no DTSTART");
    }

    #[test]
    fn dtstart_and_dtend_forms_are_checked() {
        for bad in [
            "2025-01-01",
            "20250101T0900",
            "20251301",
            "20250132",
            "20250101T250000",
            "20250101T126000",
            "20250101Z",
            "20250101T090000z",
            "",
        ] {
            refused(
                &cal(&["BEGIN:VEVENT", &format!("DTSTART:{bad}"), "END:VEVENT"]),
                &format!("Line 5: DTSTART value '{bad}' is not of the form YYYYMMDD or YYYYMMDDTHHMMSS"),
            );
        }
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101T090000Z", "DTEND:tomorrow", "END:VEVENT"]),
            "Line 6: DTEND value 'tomorrow' is not of the form",
        );
        for good in ["20250101", "20250101T090000", "20250101T235960Z"] {
            parse(&cal(&["BEGIN:VEVENT", &format!("DTSTART:{good}"), "END:VEVENT"])).unwrap();
        }
    }

    #[test]
    fn duplicate_times_and_reversed_events_are_refused() {
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "DTSTART:20250102", "END:VEVENT"]),
            "Line 6: The VEVENT has more than one DTSTART",
        );
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "DTEND:20250102", "DTEND:20250103", "END:VEVENT"]),
            "more than one DTEND",
        );
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250102T000000Z", "DTEND:20250101T000000Z", "END:VEVENT"]),
            "Line 6: DTEND 20250101T000000Z is before DTSTART 20250102T000000Z",
        );
        // Different zones can't be compared textually, so they are accepted.
        parse(&cal(&[
            "BEGIN:VEVENT",
            "DTSTART;TZID=Asia/Tokyo:20250102T000000",
            "DTEND:20250101T200000Z",
            "END:VEVENT",
        ]))
        .unwrap();
    }

    #[test]
    fn rrule_needs_a_valid_freq() {
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "RRULE:INTERVAL=2", "END:VEVENT"]),
            "Line 6: RRULE 'INTERVAL=2' has no FREQ part",
        );
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "RRULE:FREQ=FORTNIGHTLY", "END:VEVENT"]),
            "RRULE has FREQ=FORTNIGHTLY",
        );
        refused(
            &cal(&["BEGIN:VEVENT", "DTSTART:20250101", "RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY", "END:VEVENT"]),
            "more than one RRULE",
        );
    }

    #[test]
    fn calendar_type_is_checked() {
        refused(
            &cal(&["X-CALENDAR-TYPE:ALWAYS_OPEN"]),
            "Line 4: X-CALENDAR-TYPE is 'ALWAYS_OPEN'; it must be DEFAULT_OPEN or DEFAULT_CLOSED",
        );
        refused(
            &cal(&["X-CALENDAR-TYPE:DEFAULT_OPEN", "X-CALENDAR-TYPE:DEFAULT_CLOSED"]),
            "Line 5: X-CALENDAR-TYPE appears again (first on line 4)",
        );
    }

    #[test]
    fn properties_outside_events_do_not_leak_into_events() {
        // The VTIMEZONE's DTSTART and the VALARM's DESCRIPTION are not event properties.
        let c = parse(AWS_STYLE).unwrap();
        assert_eq!(c.events[0].start, "20250104T090000");
    }

    #[test]
    fn document_parse_uses_this_module() {
        use crate::document::parse as parse_doc;
        use ssmd_model::enums::{DocumentFormat, DocumentType};
        parse_doc(AWS_STYLE, DocumentFormat::Text, DocumentType::ChangeCalendar).unwrap();
        match parse_doc("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", DocumentFormat::Text, DocumentType::ChangeCalendar) {
            Err(DocError::InvalidContent(msg)) => assert!(msg.contains("no VERSION"), "{msg}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unescape_handles_text_escapes() {
        assert_eq!(unescape(r"a\,b\;c\\d\ne"), "a,b;c\\d\ne");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }
}
