//! Evaluating an `aws:branch` step (spec §2.5): which step runs next, given the step's inputs
//! after interpolation, so every `Variable` already holds the value it referenced (a string, a
//! number, a boolean, a list…). The same condition grammar drives `aws:loop`'s `LoopCondition`
//! ([`condition_holds`]).
//!
//! Inputs are `Choices` (a list; each choice is a condition plus `NextStep`) and an optional
//! `Default` step name. [`evaluate`] tries the choices in order and returns the `NextStep` of the
//! first whose condition holds, else `Default`, else nothing.
//!
//! A condition is `Variable` plus exactly one comparison operator, or exactly one of `And` / `Or`
//! (non-empty lists of conditions) or `Not` (one condition); nested conditions carry no
//! `NextStep`. The comparison rules:
//!
//! | Operators | Operand (the value in the document) | `Variable` | Comparison |
//! |---|---|---|---|
//! | `StringEquals`, `EqualsIgnoreCase`, `StartsWith`, `EndsWith`, `Contains` | a string; a number or boolean counts as its JSON text (`5`, `1.5`, `true`) | a string; a number or boolean counts as its JSON text | exact (case-sensitive) text comparison; `EqualsIgnoreCase` compares the lower-cased texts; `Contains` is a substring test |
//! | `Contains` | as above | a list | true when an element (string, number or boolean, by its text) equals the operand; other elements never match |
//! | `NumericEquals`, `NumericGreater`, `NumericLesser`, `NumericGreaterOrEquals`, `NumericLesserOrEquals` | a number, or a string holding a decimal number | a number, or a string holding a decimal number | numeric; integers compare exactly, `10` equals `10.0` and `"1e1"` |
//! | `BooleanEquals` | `true` / `false`, or the string `"true"` / `"false"` (any case) | the same | equality |
//!
//! A numeric string is optional surrounding whitespace around `[+-]digits[.digits][e[+-]digits]`
//! (or `.digits…`); `NaN`, `Infinity`, hexadecimal and empty strings are not numbers. Any other
//! combination — a list `Variable` for an operator other than `Contains`, an object or `null`
//! `Variable`, a non-numeric operand of a numeric operator, `"yes"` for `BooleanEquals` — is a
//! [`BranchError::TypeMismatch`] naming the choice, the operator and the offending value; the
//! engine fails the step with that message.
//!
//! Evaluation is lazy, left to right: the choices stop at the first that holds, `And` at the
//! first false condition, `Or` at the first true one, so a condition never reached is never
//! checked (a type error there goes unnoticed, exactly as a later choice's would).
//!
//! Structure is checked again while evaluating (unknown or several operators, a nested
//! `NextStep`, an empty `And`…), with the rules `CreateDocument` already applies
//! (`document::validate`), so a runbook that passed validation only meets type errors here.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Operators that compare `Variable` with a string.
pub const STRING_OPERATORS: [&str; 5] = ["StringEquals", "EqualsIgnoreCase", "StartsWith", "EndsWith", "Contains"];
/// Operators that compare `Variable` with a number.
pub const NUMERIC_OPERATORS: [&str; 5] =
    ["NumericEquals", "NumericGreater", "NumericLesser", "NumericGreaterOrEquals", "NumericLesserOrEquals"];
/// The operator that compares `Variable` with a boolean.
pub const BOOLEAN_OPERATOR: &str = "BooleanEquals";
/// Operators that combine nested conditions and take no `Variable`.
pub const LOGICAL_OPERATORS: [&str; 3] = ["And", "Or", "Not"];

/// Longest rendering of a value quoted in an error message; longer ones are cut with `…`.
const SHOWN_CHARS: usize = 80;

/// Why an `aws:branch` step (or a `LoopCondition`) can't be evaluated. The step fails with the
/// message, which names where the problem is: `Choice 2`, `Choice 2 And condition 1`,
/// `Choice 3 Not`, `LoopCondition Or condition 2`… (choices are numbered from 1, as
/// `CreateDocument`'s messages number them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BranchError {
    /// The inputs are not an object with a non-empty `Choices` list and an optional string
    /// `Default`.
    #[error("{0}")]
    InvalidInputs(String),
    /// A choice or condition is not shaped as the grammar requires (not an object, no or several
    /// operators, an unknown operator, a missing `NextStep` or `Variable`, an empty `And`…).
    #[error("{place} is not a valid condition: {reason}.")]
    InvalidCondition {
        /// The 1-based index of the top-level choice, `None` for a `LoopCondition`.
        choice: Option<usize>,
        /// Where the condition is, e.g. `Choice 2 And condition 1`.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// The `Variable` or the operand of a comparison has a type (or text) the operator can't
    /// compare.
    #[error("{place} can't be evaluated: {operator} {reason}.")]
    TypeMismatch {
        /// The 1-based index of the top-level choice, `None` for a `LoopCondition`.
        choice: Option<usize>,
        /// Where the condition is, e.g. `Choice 2 And condition 1`.
        place: String,
        /// The comparison operator, e.g. `NumericGreater`.
        operator: String,
        /// What was wrong, e.g. `needs a number, but the Variable is "abc"`.
        reason: String,
    },
}

impl BranchError {
    /// The 1-based index of the choice the error is in (`None` for input-level errors and
    /// `LoopCondition`s).
    pub fn choice(&self) -> Option<usize> {
        match self {
            BranchError::InvalidInputs(_) => None,
            BranchError::InvalidCondition { choice, .. } | BranchError::TypeMismatch { choice, .. } => *choice,
        }
    }
}

/// Evaluates the (already interpolated) inputs of an `aws:branch` step.
///
/// Returns the `NextStep` of the first choice whose condition holds; when none holds, `Default`
/// as `Some` if the step has one, else `Ok(None)`.
///
/// `Ok(None)` does **not** fail the step: as spec §2.5 and the AWS documentation
/// (`aws:branch` – "If no default value is specified for the step, then the automation processes
/// the next step in the runbook") describe, the step succeeds and the engine continues with the
/// step after it in document order — or finishes the execution when the branch step has
/// `isEnd: true` or is the last step of its list. (The branch step's own `nextStep` is not
/// consulted: branching is what the step does.)
///
/// Errors ([`BranchError`]) mean the step fails: malformed inputs, or a condition whose operands
/// have types its operator can't compare. Only conditions actually evaluated can fail (see the
/// module documentation); `Default` is checked to be a string up front.
pub fn evaluate(inputs: &Value) -> Result<Option<String>, BranchError> {
    let Some(inputs) = inputs.as_object() else {
        return Err(BranchError::InvalidInputs(format!(
            "The aws:branch inputs must be an object with Choices, but are {}.",
            describe(inputs)
        )));
    };
    let choices = match inputs.get("Choices") {
        Some(Value::Array(choices)) if !choices.is_empty() => choices,
        Some(Value::Array(_)) => {
            return Err(BranchError::InvalidInputs(
                "The aws:branch Choices list is empty; a branch needs at least one choice.".to_string(),
            ));
        }
        Some(other) => {
            return Err(BranchError::InvalidInputs(format!(
                "The aws:branch Choices must be a list of choices, but are {}.",
                describe(other)
            )));
        }
        None => return Err(BranchError::InvalidInputs("The aws:branch inputs have no Choices.".to_string())),
    };
    let default = match inputs.get("Default") {
        None => None,
        Some(Value::String(step)) => Some(step),
        Some(other) => {
            return Err(BranchError::InvalidInputs(format!(
                "The aws:branch Default must be a step name, but is {}.",
                describe(other)
            )));
        }
    };
    for (i, choice) in choices.iter().enumerate() {
        let at = At { choice: Some(i + 1), place: format!("Choice {}", i + 1) };
        let Some(choice) = choice.as_object() else {
            return Err(at.invalid(format!("it must be an object, but is {}", describe(choice))));
        };
        let next = match choice.get("NextStep") {
            Some(Value::String(next)) => next,
            Some(other) => {
                return Err(at.invalid(format!("its NextStep must be a step name, but is {}", describe(other))));
            }
            None => return Err(at.invalid("it has no NextStep".to_string())),
        };
        if holds(choice, &at, true)? {
            return Ok(Some(next.clone()));
        }
    }
    Ok(default.cloned())
}

/// Evaluates one (already interpolated) condition of the `aws:branch` grammar that carries no
/// `NextStep`, such as an `aws:loop` step's `LoopCondition`. Errors name the place as
/// `LoopCondition…` and have no choice index.
pub fn condition_holds(condition: &Value) -> Result<bool, BranchError> {
    let at = At { choice: None, place: "LoopCondition".to_string() };
    let Some(condition) = condition.as_object() else {
        return Err(at.invalid(format!("it must be an object, but is {}", describe(condition))));
    };
    holds(condition, &at, false)
}

/// Where a condition sits, for error messages.
struct At {
    choice: Option<usize>,
    place: String,
}

impl At {
    fn invalid(&self, reason: String) -> BranchError {
        BranchError::InvalidCondition { choice: self.choice, place: self.place.clone(), reason }
    }

    fn mismatch(&self, operator: &str, reason: String) -> BranchError {
        BranchError::TypeMismatch {
            choice: self.choice,
            place: self.place.clone(),
            operator: operator.to_string(),
            reason,
        }
    }

    fn nested(&self, suffix: &str) -> At {
        At { choice: self.choice, place: format!("{} {suffix}", self.place) }
    }
}

fn is_operator(key: &str) -> bool {
    STRING_OPERATORS.contains(&key)
        || NUMERIC_OPERATORS.contains(&key)
        || LOGICAL_OPERATORS.contains(&key)
        || key == BOOLEAN_OPERATOR
}

/// Whether condition `cond` holds; `is_choice` allows the `NextStep` key of a top-level choice.
fn holds(cond: &Map<String, Value>, at: &At, is_choice: bool) -> Result<bool, BranchError> {
    let ops: Vec<&str> =
        cond.keys().map(String::as_str).filter(|k| *k != "Variable" && !(is_choice && *k == "NextStep")).collect();
    if let Some(unknown) = ops.iter().find(|k| !is_operator(k)) {
        if *unknown == "NextStep" {
            return Err(at.invalid("it has NextStep, which only a top-level choice may have".to_string()));
        }
        return Err(at.invalid(format!("it uses unknown operator '{unknown}'")));
    }
    let op = match ops.as_slice() {
        [op] => *op,
        [] => return Err(at.invalid("it has no operator".to_string())),
        many => return Err(at.invalid(format!("it has more than one operator ({})", many.join(", ")))),
    };
    let operand = &cond[op];
    if LOGICAL_OPERATORS.contains(&op) {
        if cond.contains_key("Variable") {
            return Err(at.invalid(format!("{op} takes nested conditions, not a Variable")));
        }
        if op == "Not" {
            let inner = at.nested("Not");
            let Some(obj) = operand.as_object() else {
                return Err(at.invalid(format!("Not needs one condition object, but has {}", describe(operand))));
            };
            return Ok(!holds(obj, &inner, false)?);
        }
        let list = match operand {
            Value::Array(list) if !list.is_empty() => list,
            other => {
                return Err(
                    at.invalid(format!("{op} needs a non-empty list of conditions, but has {}", describe(other)))
                );
            }
        };
        let want = op == "Or";
        for (j, item) in list.iter().enumerate() {
            let inner = at.nested(&format!("{op} condition {}", j + 1));
            let Some(obj) = item.as_object() else {
                return Err(inner.invalid(format!("it must be an object, but is {}", describe(item))));
            };
            if holds(obj, &inner, false)? == want {
                return Ok(want);
            }
        }
        return Ok(!want);
    }
    let Some(variable) = cond.get("Variable") else {
        return Err(at.invalid(format!("it uses {op} but has no Variable")));
    };
    compare(op, variable, operand).map_err(|reason| at.mismatch(op, reason))
}

/// Applies comparison operator `op`; `Err` carries the reason for a type mismatch.
fn compare(op: &str, variable: &Value, operand: &Value) -> Result<bool, String> {
    if STRING_OPERATORS.contains(&op) {
        let Some(wanted) = scalar_text(operand) else {
            return Err(format!("needs a string to compare with, but has {}", describe(operand)));
        };
        if op == "Contains"
            && let Value::Array(items) = variable
        {
            return Ok(items.iter().any(|item| scalar_text(item).as_deref() == Some(wanted.as_str())));
        }
        let Some(text) = scalar_text(variable) else {
            let hint = if variable.is_array() { "; only Contains accepts a list" } else { "" };
            return Err(format!("compares text, but the Variable is {}{hint}", describe(variable)));
        };
        return Ok(match op {
            "StringEquals" => text == wanted,
            "EqualsIgnoreCase" => text.to_lowercase() == wanted.to_lowercase(),
            "StartsWith" => text.starts_with(&wanted),
            "EndsWith" => text.ends_with(&wanted),
            _ => text.contains(&wanted),
        });
    }
    if NUMERIC_OPERATORS.contains(&op) {
        let Some(wanted) = number(operand) else {
            return Err(format!("needs a number to compare with, but has {}", describe(operand)));
        };
        let Some(actual) = number(variable) else {
            return Err(format!("needs a number, but the Variable is {}", describe(variable)));
        };
        let ord = actual.compare(wanted);
        return Ok(match op {
            "NumericEquals" => ord == Ordering::Equal,
            "NumericGreater" => ord == Ordering::Greater,
            "NumericLesser" => ord == Ordering::Less,
            "NumericGreaterOrEquals" => ord != Ordering::Less,
            _ => ord != Ordering::Greater,
        });
    }
    let Some(wanted) = boolean(operand) else {
        return Err(format!("needs true or false to compare with, but has {}", describe(operand)));
    };
    let Some(actual) = boolean(variable) else {
        return Err(format!("needs true or false, but the Variable is {}", describe(variable)));
    };
    Ok(actual == wanted)
}

/// The text a string comparison sees: a string as it is, a number or boolean as its JSON text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `true` / `false`, or a string spelling one of them in any case.
fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A number as a numeric comparison sees it: integers exactly, anything else as an `f64`.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn compare(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
            // Both finite: never NaN.
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        }
    }
}

/// Compares an integer with a finite float exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    const LIMIT: f64 = 1.7e38; // inside i128's range (about 1.70141e38)
    let floor = f.floor();
    if floor < -LIMIT {
        return Ordering::Greater;
    }
    if floor >= LIMIT {
        return Ordering::Less;
    }
    match i.cmp(&(floor as i128)) {
        Ordering::Equal if f > floor => Ordering::Less,
        ord => ord,
    }
}

/// A JSON number, or a string holding a decimal number (see the module documentation).
fn number(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Num::Int(i.into()))
            } else if let Some(u) = n.as_u64() {
                Some(Num::Int(u.into()))
            } else {
                n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
            }
        }
        Value::String(s) => parse_number(s.trim()),
        _ => None,
    }
}

/// Parses `[+-]digits[.digits][e[+-]digits]` (digits may also only follow the point).
fn parse_number(s: &str) -> Option<Num> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    let mut integral = true;
    if i < b.len() && b[i] == b'.' {
        integral = false;
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        integral = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    if integral && let Ok(n) = s.parse::<i128>() {
        return Some(Num::Int(n));
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::Float)
}

/// A value as an error message quotes it: its compact JSON, lists and objects introduced as
/// such, cut at [`SHOWN_CHARS`] characters.
fn describe(v: &Value) -> String {
    let json = v.to_string();
    let json = if json.chars().count() > SHOWN_CHARS {
        let cut: String = json.chars().take(SHOWN_CHARS).collect();
        format!("{cut}…")
    } else {
        json
    };
    match v {
        Value::Array(_) => format!("a list ({json})"),
        Value::Object(_) => format!("an object ({json})"),
        _ => json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Evaluates a single condition as the only choice of a branch with a `Default`.
    fn check(cond: Value) -> Result<bool, BranchError> {
        let mut choice = cond.as_object().unwrap().clone();
        choice.insert("NextStep".into(), json!("yes"));
        let inputs = json!({"Choices": [choice], "Default": "no"});
        evaluate(&inputs).map(|next| next.as_deref() == Some("yes"))
    }

    fn cmp(var: Value, op: &str, operand: Value) -> Result<bool, BranchError> {
        check(json!({"Variable": var, op: operand}))
    }

    fn yes(var: Value, op: &str, operand: Value) {
        assert_eq!(cmp(var.clone(), op, operand.clone()), Ok(true), "{var} {op} {operand} should hold");
    }

    fn no(var: Value, op: &str, operand: Value) {
        assert_eq!(cmp(var.clone(), op, operand.clone()), Ok(false), "{var} {op} {operand} should not hold");
    }

    /// Asserts a type mismatch whose message contains every fragment and reads like a sentence.
    fn mismatch(result: Result<bool, BranchError>, fragments: &[&str]) -> BranchError {
        let err = result.expect_err("expected an error");
        assert!(matches!(err, BranchError::TypeMismatch { .. }), "not a type mismatch: {err:?}");
        assert_message(&err, fragments);
        err
    }

    fn invalid(result: Result<Option<String>, BranchError>, fragments: &[&str]) -> BranchError {
        let err = result.expect_err("expected an error");
        assert_message(&err, fragments);
        err
    }

    fn assert_message(err: &BranchError, fragments: &[&str]) {
        let msg = err.to_string();
        for f in fragments {
            assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
        }
        assert!(msg.starts_with(|c: char| c.is_ascii_uppercase()), "message {msg:?} is not capitalised");
        assert!(msg.ends_with('.'), "message {msg:?} does not end with a full stop");
    }

    // ---- choice order, Default, no match ---------------------------------------------------

    #[test]
    fn first_matching_choice_wins() {
        let inputs = json!({
            "Choices": [
                {"NextStep": "a", "Variable": "linux", "StringEquals": "windows"},
                {"NextStep": "b", "Variable": "linux", "StringEquals": "linux"},
                {"NextStep": "c", "Variable": "linux", "StartsWith": "lin"},
            ],
            "Default": "d"
        });
        assert_eq!(evaluate(&inputs), Ok(Some("b".to_string())));
    }

    #[test]
    fn default_when_nothing_matches() {
        let inputs = json!({
            "Choices": [{"NextStep": "a", "Variable": "x", "StringEquals": "y"}],
            "Default": "fallback"
        });
        assert_eq!(evaluate(&inputs), Ok(Some("fallback".to_string())));
    }

    #[test]
    fn none_without_default() {
        let inputs = json!({"Choices": [{"NextStep": "a", "Variable": "x", "StringEquals": "y"}]});
        assert_eq!(evaluate(&inputs), Ok(None));
    }

    #[test]
    fn a_match_ignores_default() {
        let inputs = json!({
            "Choices": [{"NextStep": "a", "Variable": 3, "NumericEquals": 3}],
            "Default": "fallback"
        });
        assert_eq!(evaluate(&inputs), Ok(Some("a".to_string())));
    }

    #[test]
    fn choices_after_a_match_are_not_evaluated() {
        let inputs = json!({"Choices": [
            {"NextStep": "a", "Variable": "x", "StringEquals": "x"},
            {"NextStep": "b", "Variable": "abc", "NumericEquals": 1},
        ]});
        assert_eq!(evaluate(&inputs), Ok(Some("a".to_string())));
    }

    #[test]
    fn a_type_error_in_an_evaluated_choice_fails_even_if_a_later_one_would_match() {
        let inputs = json!({"Choices": [
            {"NextStep": "a", "Variable": "abc", "NumericEquals": 1},
            {"NextStep": "b", "Variable": "x", "StringEquals": "x"},
        ]});
        let err = invalid(evaluate(&inputs), &["Choice 1", "NumericEquals", "\"abc\""]);
        assert_eq!(err.choice(), Some(1));
    }

    // ---- string operators -----------------------------------------------------------------

    #[test]
    fn string_equals() {
        yes(json!("windows"), "StringEquals", json!("windows"));
        no(json!("windows"), "StringEquals", json!("Windows"));
        no(json!("windows "), "StringEquals", json!("windows"));
        yes(json!(""), "StringEquals", json!(""));
    }

    #[test]
    fn string_equals_compares_numbers_and_booleans_by_their_text() {
        yes(json!(5), "StringEquals", json!("5"));
        yes(json!("5"), "StringEquals", json!(5));
        yes(json!(5), "StringEquals", json!(5));
        no(json!(5), "StringEquals", json!("5.0"));
        yes(json!(1.5), "StringEquals", json!("1.5"));
        yes(json!(true), "StringEquals", json!("true"));
        no(json!(true), "StringEquals", json!("True"));
        yes(json!("false"), "StringEquals", json!(false));
    }

    #[test]
    fn equals_ignore_case() {
        yes(json!("Windows"), "EqualsIgnoreCase", json!("WINDOWS"));
        yes(json!("ÉTÉ"), "EqualsIgnoreCase", json!("été"));
        no(json!("Windows"), "EqualsIgnoreCase", json!("Window"));
        yes(json!(true), "EqualsIgnoreCase", json!("TRUE"));
    }

    #[test]
    fn starts_with() {
        yes(json!("i-0123abc"), "StartsWith", json!("i-"));
        no(json!("i-0123abc"), "StartsWith", json!("I-"));
        no(json!("ami-1"), "StartsWith", json!("i-"));
        yes(json!("anything"), "StartsWith", json!(""));
        yes(json!(12345), "StartsWith", json!(12));
    }

    #[test]
    fn ends_with() {
        yes(json!("report.csv"), "EndsWith", json!(".csv"));
        no(json!("report.csv"), "EndsWith", json!(".CSV"));
        no(json!("csv"), "EndsWith", json!(".csv"));
        yes(json!(12345), "EndsWith", json!("45"));
    }

    #[test]
    fn contains_in_a_string() {
        yes(json!("Microsoft Windows Server"), "Contains", json!("Windows"));
        no(json!("Microsoft Windows Server"), "Contains", json!("windows"));
        yes(json!(10203), "Contains", json!("020"));
    }

    #[test]
    fn contains_in_a_list() {
        yes(json!(["a", "b", "c"]), "Contains", json!("b"));
        no(json!(["a", "b", "c"]), "Contains", json!("d"));
        // Whole elements only, not substrings of elements.
        no(json!(["abc"]), "Contains", json!("b"));
        no(json!([]), "Contains", json!("a"));
        // Elements and operand compare by text.
        yes(json!([1, 2, 3]), "Contains", json!("2"));
        yes(json!(["1", "2"]), "Contains", json!(2));
        yes(json!([true]), "Contains", json!("true"));
        // Nested lists and objects never match.
        no(json!([["b"], {"b": "b"}]), "Contains", json!("b"));
    }

    #[test]
    fn string_operators_refuse_a_list_variable_except_contains() {
        for op in ["StringEquals", "EqualsIgnoreCase", "StartsWith", "EndsWith"] {
            let err = mismatch(cmp(json!(["a"]), op, json!("a")), &["Choice 1", op, "a list ([\"a\"])", "Contains"]);
            assert_eq!(err.choice(), Some(1));
        }
    }

    #[test]
    fn string_operators_refuse_objects_and_null() {
        mismatch(cmp(json!({"k": "v"}), "StringEquals", json!("v")), &["StringEquals", "an object", "Variable"]);
        mismatch(cmp(json!(null), "Contains", json!("v")), &["Contains", "null"]);
        mismatch(cmp(json!("v"), "StartsWith", json!(["v"])), &["StartsWith", "needs a string", "a list"]);
        mismatch(cmp(json!("v"), "EndsWith", json!(null)), &["EndsWith", "needs a string", "null"]);
    }

    // ---- numeric operators ----------------------------------------------------------------

    #[test]
    fn numeric_equals() {
        yes(json!(3), "NumericEquals", json!(3));
        no(json!(3), "NumericEquals", json!(4));
        yes(json!(10), "NumericEquals", json!(10.0));
        yes(json!(-2.5), "NumericEquals", json!(-2.5));
        yes(json!(0), "NumericEquals", json!(-0.0));
    }

    #[test]
    fn numeric_ordering_operators() {
        yes(json!(5), "NumericGreater", json!(3));
        no(json!(3), "NumericGreater", json!(3));
        no(json!(2), "NumericGreater", json!(3));
        yes(json!(2), "NumericLesser", json!(3));
        no(json!(3), "NumericLesser", json!(3));
        no(json!(4), "NumericLesser", json!(3));
        yes(json!(3), "NumericGreaterOrEquals", json!(3));
        yes(json!(4), "NumericGreaterOrEquals", json!(3));
        no(json!(2), "NumericGreaterOrEquals", json!(3));
        yes(json!(3), "NumericLesserOrEquals", json!(3));
        yes(json!(2), "NumericLesserOrEquals", json!(3));
        no(json!(4), "NumericLesserOrEquals", json!(3));
        yes(json!(3.5), "NumericGreater", json!(3));
        yes(json!(3), "NumericLesser", json!(3.5));
        no(json!(-3.5), "NumericGreater", json!(-3));
    }

    #[test]
    fn numeric_strings_on_either_side() {
        yes(json!("42"), "NumericEquals", json!(42));
        yes(json!(42), "NumericEquals", json!("42"));
        yes(json!("42"), "NumericEquals", json!("42.0"));
        yes(json!(" 42 "), "NumericEquals", json!(42));
        yes(json!("1e3"), "NumericEquals", json!(1000));
        yes(json!("+7"), "NumericEquals", json!(7));
        yes(json!(".5"), "NumericEquals", json!(0.5));
        yes(json!("5."), "NumericEquals", json!(5));
        yes(json!("-0.25"), "NumericLesser", json!(0));
        yes(json!("10"), "NumericGreater", json!("9"));
    }

    #[test]
    fn large_integers_compare_exactly() {
        yes(json!(9007199254740993_u64), "NumericGreater", json!(9007199254740992_u64));
        yes(json!("9007199254740993"), "NumericGreater", json!(9007199254740992.0));
        yes(json!(u64::MAX), "NumericEquals", json!(u64::MAX.to_string()));
        yes(json!("170141183460469231731687303715884105728"), "NumericGreater", json!(i64::MAX));
        yes(json!(i64::MIN), "NumericGreater", json!(-9.3e18));
        yes(json!(i64::MIN), "NumericLesser", json!(-9.2e18));
    }

    #[test]
    fn numeric_operators_refuse_non_numbers() {
        for op in NUMERIC_OPERATORS {
            let err = mismatch(cmp(json!("abc"), op, json!(1)), &["Choice 1", op, "needs a number", "\"abc\""]);
            assert!(matches!(&err, BranchError::TypeMismatch { operator, .. } if operator == op));
        }
        for bad in
            [json!(""), json!("NaN"), json!("Infinity"), json!("inf"), json!("0x10"), json!("1e"), json!("1.2.3")]
        {
            mismatch(cmp(bad.clone(), "NumericEquals", json!(1)), &["NumericEquals", "Variable"]);
        }
        mismatch(cmp(json!("1e999"), "NumericEquals", json!(1)), &["NumericEquals", "1e999"]);
        mismatch(cmp(json!(true), "NumericEquals", json!(1)), &["NumericEquals", "Variable is true"]);
        mismatch(cmp(json!([1]), "NumericEquals", json!(1)), &["NumericEquals", "a list ([1])"]);
        mismatch(cmp(json!(null), "NumericGreater", json!(1)), &["NumericGreater", "null"]);
        mismatch(cmp(json!(1), "NumericLesser", json!("ten")), &["NumericLesser", "to compare with", "\"ten\""]);
        mismatch(cmp(json!(1), "NumericLesser", json!(false)), &["NumericLesser", "to compare with", "false"]);
    }

    // ---- BooleanEquals ---------------------------------------------------------------------

    #[test]
    fn boolean_equals() {
        yes(json!(true), "BooleanEquals", json!(true));
        yes(json!(false), "BooleanEquals", json!(false));
        no(json!(true), "BooleanEquals", json!(false));
        no(json!(false), "BooleanEquals", json!(true));
    }

    #[test]
    fn boolean_equals_accepts_boolean_strings() {
        yes(json!("true"), "BooleanEquals", json!(true));
        yes(json!("False"), "BooleanEquals", json!(false));
        yes(json!(true), "BooleanEquals", json!("TRUE"));
        no(json!("true"), "BooleanEquals", json!("false"));
    }

    #[test]
    fn boolean_equals_refuses_other_values() {
        mismatch(cmp(json!("yes"), "BooleanEquals", json!(true)), &["BooleanEquals", "true or false", "\"yes\""]);
        mismatch(cmp(json!(1), "BooleanEquals", json!(true)), &["BooleanEquals", "Variable is 1"]);
        mismatch(cmp(json!(" true"), "BooleanEquals", json!(true)), &["BooleanEquals"]);
        mismatch(cmp(json!([true]), "BooleanEquals", json!(true)), &["BooleanEquals", "a list"]);
        mismatch(cmp(json!(true), "BooleanEquals", json!(0)), &["BooleanEquals", "to compare with", "0"]);
    }

    // ---- And / Or / Not --------------------------------------------------------------------

    fn leaf(b: bool) -> Value {
        json!({"Variable": b, "BooleanEquals": true})
    }

    #[test]
    fn and() {
        assert_eq!(check(json!({"And": [leaf(true), leaf(true)]})), Ok(true));
        assert_eq!(check(json!({"And": [leaf(true), leaf(false)]})), Ok(false));
        assert_eq!(check(json!({"And": [leaf(false), leaf(true)]})), Ok(false));
        assert_eq!(check(json!({"And": [leaf(true)]})), Ok(true));
    }

    #[test]
    fn or() {
        assert_eq!(check(json!({"Or": [leaf(false), leaf(true)]})), Ok(true));
        assert_eq!(check(json!({"Or": [leaf(false), leaf(false)]})), Ok(false));
        assert_eq!(check(json!({"Or": [leaf(true), leaf(false)]})), Ok(true));
    }

    #[test]
    fn not() {
        assert_eq!(check(json!({"Not": leaf(true)})), Ok(false));
        assert_eq!(check(json!({"Not": leaf(false)})), Ok(true));
        assert_eq!(check(json!({"Not": {"Not": leaf(true)}})), Ok(true));
    }

    #[test]
    fn nested_logic() {
        // (os == linux AND count > 2) OR NOT (env starts with prod)
        let cond = |os: &str, count: i64, env: &str| {
            json!({"Or": [
                {"And": [
                    {"Variable": os, "StringEquals": "linux"},
                    {"Variable": count, "NumericGreater": 2},
                ]},
                {"Not": {"Variable": env, "StartsWith": "prod"}},
            ]})
        };
        assert_eq!(check(cond("linux", 3, "prod-1")), Ok(true));
        assert_eq!(check(cond("linux", 2, "prod-1")), Ok(false));
        assert_eq!(check(cond("windows", 3, "prod-1")), Ok(false));
        assert_eq!(check(cond("windows", 0, "dev")), Ok(true));
    }

    #[test]
    fn logic_short_circuits() {
        let bad = json!({"Variable": "abc", "NumericEquals": 1});
        assert_eq!(check(json!({"And": [leaf(false), bad.clone()]})), Ok(false));
        assert_eq!(check(json!({"Or": [leaf(true), bad.clone()]})), Ok(true));
        mismatch(check(json!({"And": [leaf(true), bad.clone()]})), &["Choice 1 And condition 2", "NumericEquals"]);
        mismatch(check(json!({"Or": [leaf(false), bad]})), &["Choice 1 Or condition 2", "NumericEquals"]);
    }

    #[test]
    fn nested_errors_name_their_place() {
        let inputs = json!({"Choices": [
            {"NextStep": "a", "Variable": "x", "StringEquals": "y"},
            {"NextStep": "b", "Not": {"Or": [leaf(false), {"Variable": [1], "EndsWith": "1"}]}},
        ]});
        let err = invalid(evaluate(&inputs), &["Choice 2 Not Or condition 2 can't be evaluated", "EndsWith", "a list"]);
        assert_eq!(err.choice(), Some(2));
        assert!(matches!(
            &err,
            BranchError::TypeMismatch { place, operator, .. } if place == "Choice 2 Not Or condition 2" && operator == "EndsWith"
        ));
    }

    // ---- malformed inputs and conditions ---------------------------------------------------

    #[test]
    fn malformed_inputs() {
        invalid(evaluate(&json!([])), &["must be an object"]);
        invalid(evaluate(&json!({})), &["no Choices"]);
        invalid(evaluate(&json!({"Choices": []})), &["empty"]);
        invalid(evaluate(&json!({"Choices": "x"})), &["must be a list", "\"x\""]);
        let choices = json!([{"NextStep": "a", "Variable": "x", "StringEquals": "x"}]);
        invalid(evaluate(&json!({"Choices": choices, "Default": 3})), &["Default", "step name", "3"]);
    }

    #[test]
    fn malformed_choices() {
        let run = |choice: Value| evaluate(&json!({"Choices": [choice]}));
        invalid(run(json!("x")), &["Choice 1 is not a valid condition", "must be an object"]);
        invalid(run(json!({"Variable": "x", "StringEquals": "x"})), &["Choice 1", "no NextStep"]);
        invalid(run(json!({"NextStep": 1, "Variable": "x", "StringEquals": "x"})), &["NextStep", "step name"]);
        invalid(run(json!({"NextStep": "a", "Variable": "x"})), &["Choice 1", "no operator"]);
        invalid(run(json!({"NextStep": "a", "Variable": "x", "StringLike": "x"})), &["unknown operator 'StringLike'"]);
        invalid(
            run(json!({"NextStep": "a", "Variable": "x", "StringEquals": "x", "Contains": "x"})),
            &["more than one operator"],
        );
        invalid(run(json!({"NextStep": "a", "StringEquals": "x"})), &["StringEquals", "no Variable"]);
        invalid(run(json!({"NextStep": "a", "Variable": "x", "And": [leaf(true)]})), &["And", "not a Variable"]);
        invalid(run(json!({"NextStep": "a", "And": []})), &["And", "non-empty list"]);
        invalid(run(json!({"NextStep": "a", "Or": leaf(true)})), &["Or", "non-empty list"]);
        invalid(run(json!({"NextStep": "a", "Not": [leaf(true)]})), &["Not", "one condition"]);
        invalid(run(json!({"NextStep": "a", "And": ["x"]})), &["Choice 1 And condition 1", "must be an object"]);
        invalid(
            run(json!({"NextStep": "a", "Not": {"NextStep": "b", "Variable": true, "BooleanEquals": true}})),
            &["Choice 1 Not", "NextStep", "only a top-level choice"],
        );
        let err = run(json!({"NextStep": "a", "Variable": "x"})).unwrap_err();
        assert!(matches!(err, BranchError::InvalidCondition { choice: Some(1), .. }));
    }

    // ---- LoopCondition ---------------------------------------------------------------------

    #[test]
    fn loop_conditions() {
        assert_eq!(condition_holds(&json!({"Variable": "running", "StringEquals": "running"})), Ok(true));
        assert_eq!(condition_holds(&json!({"Not": {"Variable": 3, "NumericLesser": 5}})), Ok(false));
        let err = condition_holds(&json!({"And": [leaf(true), {"Variable": "x", "NumericEquals": 1}]})).unwrap_err();
        assert_message(&err, &["LoopCondition And condition 2", "NumericEquals", "\"x\""]);
        assert_eq!(err.choice(), None);
        let err = condition_holds(&json!({"NextStep": "a", "Variable": "x", "StringEquals": "x"})).unwrap_err();
        assert_message(&err, &["LoopCondition", "NextStep"]);
        assert_message(&condition_holds(&json!("x")).unwrap_err(), &["LoopCondition", "must be an object"]);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long: Vec<String> = (0..100).map(|i| format!("item-{i}")).collect();
        let err = mismatch(cmp(json!(long), "StringEquals", json!("x")), &["…"]);
        assert!(err.to_string().len() < 250, "{err}");
    }

    // ---- properties ------------------------------------------------------------------------

    /// Leaf conditions over a small pool of values, some of which don't fit their operator.
    fn leaf_strategy() -> impl Strategy<Value = Value> {
        let values = prop_oneof![
            Just(json!("a")),
            Just(json!("abc")),
            Just(json!("")),
            Just(json!("12")),
            Just(json!(12)),
            Just(json!(-3.5)),
            Just(json!(true)),
            Just(json!("false")),
            Just(json!(["a", "12"])),
            Just(json!(null)),
        ];
        let ops = prop_oneof![
            Just("StringEquals"),
            Just("EqualsIgnoreCase"),
            Just("StartsWith"),
            Just("EndsWith"),
            Just("Contains"),
            Just("NumericEquals"),
            Just("NumericGreater"),
            Just("NumericLesser"),
            Just("NumericGreaterOrEquals"),
            Just("NumericLesserOrEquals"),
            Just("BooleanEquals"),
        ];
        (values.clone(), ops, values).prop_map(|(var, op, operand)| json!({"Variable": var, op: operand}))
    }

    fn condition_strategy() -> impl Strategy<Value = Value> {
        leaf_strategy().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|l| json!({"And": l})),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|l| json!({"Or": l})),
                inner.prop_map(|c| json!({"Not": c})),
            ]
        })
    }

    /// Result of a condition with the error reduced to its kind, operator and choice (the place
    /// differs by design when conditions are wrapped).
    fn outcome(r: Result<bool, BranchError>) -> Result<bool, (Option<usize>, Option<String>)> {
        r.map_err(|e| {
            let op = match &e {
                BranchError::TypeMismatch { operator, .. } => Some(operator.clone()),
                _ => None,
            };
            (e.choice(), op)
        })
    }

    proptest! {
        #[test]
        fn and_or_of_one_condition_equals_the_condition(c in condition_strategy()) {
            let plain = outcome(check(c.clone()));
            prop_assert_eq!(outcome(check(json!({"And": [c.clone()]}))), plain.clone());
            prop_assert_eq!(outcome(check(json!({"Or": [c]}))), plain);
        }

        #[test]
        fn double_negation_is_identity(c in condition_strategy()) {
            prop_assert_eq!(outcome(check(json!({"Not": {"Not": c.clone()}}))), outcome(check(c)));
        }

        #[test]
        fn not_inverts_or_fails_alike(c in condition_strategy()) {
            let plain = outcome(check(c.clone()));
            let negated = outcome(check(json!({"Not": c})));
            prop_assert_eq!(negated, plain.map(|b| !b));
        }

        #[test]
        fn de_morgan(a in condition_strategy(), b in condition_strategy()) {
            let lhs = outcome(check(json!({"Not": {"And": [a.clone(), b.clone()]}})));
            let rhs = outcome(check(json!({"Or": [{"Not": a}, {"Not": b}]})));
            prop_assert_eq!(lhs, rhs);
        }

        #[test]
        fn numeric_operators_agree_with_integer_order(a in any::<i64>(), b in any::<i64>(), sa in any::<bool>(), sb in any::<bool>()) {
            let va = if sa { json!(a.to_string()) } else { json!(a) };
            let vb = if sb { json!(b.to_string()) } else { json!(b) };
            prop_assert_eq!(cmp(va.clone(), "NumericEquals", vb.clone()), Ok(a == b));
            prop_assert_eq!(cmp(va.clone(), "NumericGreater", vb.clone()), Ok(a > b));
            prop_assert_eq!(cmp(va.clone(), "NumericLesser", vb.clone()), Ok(a < b));
            prop_assert_eq!(cmp(va.clone(), "NumericGreaterOrEquals", vb.clone()), Ok(a >= b));
            prop_assert_eq!(cmp(va, "NumericLesserOrEquals", vb), Ok(a <= b));
        }

        #[test]
        fn numeric_operators_agree_with_float_order(a in -1e12f64..1e12, b in -1e12f64..1e12) {
            prop_assert_eq!(cmp(json!(a.to_string()), "NumericGreater", json!(b)), Ok(a > b));
            prop_assert_eq!(cmp(json!(a), "NumericEquals", json!(b.to_string())), Ok(a == b));
        }

        #[test]
        fn string_operators_on_a_string_and_its_parts(s in "[a-zA-Z0-9 ]{0,12}", t in "[a-zA-Z0-9 ]{0,12}") {
            let whole = format!("{s}{t}");
            prop_assert_eq!(cmp(json!(whole.clone()), "StringEquals", json!(whole.clone())), Ok(true));
            prop_assert_eq!(cmp(json!(whole.clone()), "EqualsIgnoreCase", json!(whole.to_uppercase())), Ok(true));
            prop_assert_eq!(cmp(json!(whole.clone()), "StartsWith", json!(s.clone())), Ok(true));
            prop_assert_eq!(cmp(json!(whole.clone()), "EndsWith", json!(t.clone())), Ok(true));
            prop_assert_eq!(cmp(json!(whole), "Contains", json!(s.clone())), Ok(true));
            prop_assert_eq!(cmp(json!([s.clone(), t.clone()]), "Contains", json!(t)), Ok(true));
        }

        #[test]
        fn the_first_true_choice_is_taken(flags in proptest::collection::vec(any::<bool>(), 1..8), default in any::<bool>()) {
            let choices: Vec<Value> = flags
                .iter()
                .enumerate()
                .map(|(i, f)| json!({"NextStep": format!("s{i}"), "Variable": f, "BooleanEquals": true}))
                .collect();
            let mut inputs = json!({"Choices": choices});
            if default {
                inputs["Default"] = json!("d");
            }
            let expected = match flags.iter().position(|f| *f) {
                Some(i) => Some(format!("s{i}")),
                None if default => Some("d".to_string()),
                None => None,
            };
            prop_assert_eq!(evaluate(&inputs), Ok(expected));
        }
    }
}
