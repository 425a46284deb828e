//! Output limits, as the AWS agent applies them (counted here in characters, and always cut on
//! character boundaries):
//!
//! * `standardOutput` at most 24 000 and `standardError` at most 8 000: a text that reaches the
//!   limit is cut so that, with the suffix `--output truncated--`, it is exactly the limit long
//!   (`pluginutil.StringPrefix`, which also cuts a text of exactly the limit);
//! * `output` — stdout, then `\n----------ERROR-------\n` and stderr when there is any stderr —
//!   at most 2 500, cut by `iohandler.TruncateOutput`'s rules with the markers
//!   `\n---Output truncated---` and `\n---Error truncated----`.

/// The limit of `standardOutput`.
pub const MAX_STDOUT: usize = 24_000;
/// The limit of `standardError`.
pub const MAX_STDERR: usize = 8_000;
/// The limit of `output`.
pub const MAX_OUTPUT: usize = 2_500;
/// The suffix of a cut `standardOutput`/`standardError`.
pub const TRUNCATED_SUFFIX: &str = "--output truncated--";
/// The separator of stdout and stderr in `output`.
pub const ERROR_TITLE: &str = "\n----------ERROR-------\n";
/// The marker of cut stdout in `output`.
pub const OUTPUT_TRUNCATED: &str = "\n---Output truncated---";
/// The marker of cut stderr in `output`.
pub const ERROR_TRUNCATED: &str = "\n---Error truncated----";

/// The first `n` characters of `s`.
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// `s` limited to `max` characters, a cut text ending with `suffix`.
pub fn prefix(s: &str, max: usize, suffix: &str) -> String {
    if len(s) < max {
        return s.to_string();
    }
    let suffix_len = len(suffix);
    if max > suffix_len {
        format!("{}{suffix}", first_chars(s, max - suffix_len))
    } else {
        first_chars(suffix, max).to_string()
    }
}

/// `standardOutput` from a command's stdout.
pub fn standard_output(stdout: &str) -> String {
    prefix(stdout, MAX_STDOUT, TRUNCATED_SUFFIX)
}

/// `standardError` from a command's stderr.
pub fn standard_error(stderr: &str) -> String {
    prefix(stderr, MAX_STDERR, TRUNCATED_SUFFIX)
}

/// `output`: stdout and stderr combined within `capacity` characters.
pub fn output(stdout: &str, stderr: &str, capacity: usize) -> String {
    let (out_len, err_len) = (len(stdout), len(stderr));
    let title = if err_len > 0 { ERROR_TITLE } else { "" };
    let available = capacity.saturating_sub(len(title));
    if out_len + err_len < available {
        return format!("{stdout}{title}{stderr}");
    }
    let (mark_out, mark_err) = (len(OUTPUT_TRUNCATED), len(ERROR_TRUNCATED));
    // (`>=` on stdout: where stdout is exactly half, the AWS agent slices out of range.)
    if out_len >= available / 2 && err_len > available / 2 {
        let half = available.saturating_sub(mark_out + mark_err) / 2;
        return format!(
            "{}{OUTPUT_TRUNCATED}{title}{}{ERROR_TRUNCATED}",
            first_chars(stdout, half),
            first_chars(stderr, half)
        );
    }
    if out_len < available / 2 {
        let keep = available.saturating_sub(mark_err).saturating_sub(out_len);
        return format!("{stdout}{title}{}{ERROR_TRUNCATED}", first_chars(stderr, keep));
    }
    let keep = available.saturating_sub(mark_out).saturating_sub(err_len);
    format!("{}{OUTPUT_TRUNCATED}{title}{stderr}", first_chars(stdout, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_limits_are_exact() {
        let below = "a".repeat(MAX_STDOUT - 1);
        assert_eq!(standard_output(&below), below);
        for n in [MAX_STDOUT, MAX_STDOUT + 1, 100_000] {
            let s = standard_output(&"a".repeat(n));
            assert_eq!(s.len(), MAX_STDOUT);
            assert!(s.ends_with("a--output truncated--"));
        }
        let e = standard_error(&"e".repeat(9000));
        assert_eq!(e.len(), MAX_STDERR);
        assert_eq!(e, format!("{}{}", "e".repeat(MAX_STDERR - 20), TRUNCATED_SUFFIX));
        assert_eq!(standard_error("short"), "short");
        assert_eq!(prefix("abcdef", 4, "--output truncated--"), "--ou");
    }

    #[test]
    fn multi_byte_characters_are_counted_and_kept_whole() {
        let s = "é".repeat(MAX_STDERR + 5);
        let e = standard_error(&s);
        assert_eq!(e.chars().count(), MAX_STDERR);
        assert_eq!(e, format!("{}{}", "é".repeat(MAX_STDERR - 20), TRUNCATED_SUFFIX));
        let emoji = "🦀".repeat(3000);
        let o = output(&emoji, "", MAX_OUTPUT);
        assert_eq!(o.chars().count(), MAX_OUTPUT);
        assert!(o.starts_with("🦀🦀") && o.ends_with(OUTPUT_TRUNCATED));
        assert_eq!(first_chars("añb", 2), "añ");
    }

    #[test]
    fn output_fits_untouched() {
        assert_eq!(output("hello\n", "", MAX_OUTPUT), "hello\n");
        assert_eq!(output("out", "err", MAX_OUTPUT), "out\n----------ERROR-------\nerr");
        assert_eq!(output("", "err", MAX_OUTPUT), "\n----------ERROR-------\nerr");
        // Exactly the available space is already cut (the AWS agent compares with <).
        let o = output(&"a".repeat(MAX_OUTPUT), "", MAX_OUTPUT);
        assert_eq!((OUTPUT_TRUNCATED.len(), ERROR_TRUNCATED.len(), ERROR_TITLE.len()), (23, 23, 24));
        assert_eq!(o, format!("{}{OUTPUT_TRUNCATED}", "a".repeat(MAX_OUTPUT - 23)));
        assert_eq!(output(&"a".repeat(MAX_OUTPUT - 1), "", MAX_OUTPUT), "a".repeat(MAX_OUTPUT - 1));
    }

    #[test]
    fn output_cuts_both_halves() {
        let o = output(&"o".repeat(5000), &"e".repeat(5000), MAX_OUTPUT);
        // available = 2500 - 24 = 2476; (2476 - 23 - 23) / 2 = 1215 of each.
        assert_eq!(
            o,
            format!("{}{OUTPUT_TRUNCATED}{ERROR_TITLE}{}{ERROR_TRUNCATED}", "o".repeat(1215), "e".repeat(1215))
        );
        assert!(o.chars().count() <= MAX_OUTPUT);
    }

    #[test]
    fn output_cuts_the_long_side() {
        // Short stdout, long stderr: stderr cut to 2476 - 23 - 100 = 2353.
        let o = output(&"o".repeat(100), &"e".repeat(5000), MAX_OUTPUT);
        assert_eq!(o, format!("{}{ERROR_TITLE}{}{ERROR_TRUNCATED}", "o".repeat(100), "e".repeat(2353)));
        assert_eq!(o.len(), MAX_OUTPUT);
        // Long stdout, short stderr: stdout cut to 2476 - 23 - 100 = 2353.
        let o = output(&"o".repeat(5000), &"e".repeat(100), MAX_OUTPUT);
        assert_eq!(o, format!("{}{OUTPUT_TRUNCATED}{ERROR_TITLE}{}", "o".repeat(2353), "e".repeat(100)));
        assert_eq!(o.len(), MAX_OUTPUT);
        // The AWS agent would slice out of range here (stdout exactly half, stderr large); this
        // does not panic and stays within the limit.
        let o = output(&"o".repeat(1238), &"e".repeat(2460), MAX_OUTPUT);
        assert!(o.chars().count() <= MAX_OUTPUT, "{}", o.len());
    }
}
