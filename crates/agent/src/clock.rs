//! Wall-clock time and the two date formats of the protocol: SigV4's `X-Amz-Date`
//! (`YYYYMMDDTHHMMSSZ`) and the ISO 8601 UTC with milliseconds of replies
//! (`2026-11-23T06:00:00.000Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

/// `X-Amz-Date` for `ms`.
pub fn amz_date(ms: i64) -> String {
    ssmd_sigv4::format_amz_date(ms.div_euclid(1000))
}

/// ISO 8601 UTC with milliseconds for `ms`, e.g. `2026-11-23T06:00:00.000Z`.
pub fn iso8601_ms(ms: i64) -> String {
    let a = amz_date(ms);
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}Z",
        &a[0..4],
        &a[4..6],
        &a[6..8],
        &a[9..11],
        &a[11..13],
        &a[13..15],
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2026-11-23T06:00:00Z
        let ms = 1_795_413_600_000 + 7;
        assert_eq!(amz_date(ms), "20261123T060000Z");
        assert_eq!(iso8601_ms(ms), "2026-11-23T06:00:00.007Z");
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(now_ms()).len(), 24);
    }
}
