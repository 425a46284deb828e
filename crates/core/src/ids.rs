//! Identifiers in the formats SSM uses.

use rand::Rng;

/// A random UUID (automation executions, command ids, window task ids...).
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `prefix` followed by `n` random lowercase hex digits (`mw-` + 17, `mi-` + 17, ...).
pub fn prefixed_hex(prefix: &str, n: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(prefix.len() + n);
    s.push_str(prefix);
    for _ in 0..n {
        s.push(char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'));
    }
    s
}

/// A random 12-digit account id that does not start with 0.
pub fn account_id() -> String {
    let mut rng = rand::thread_rng();
    format!("{}{:011}", rng.gen_range(1..10), rng.gen_range(0..100_000_000_000u64))
}

/// Random alphanumeric text from the given alphabet.
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

/// A new access key id (`AKIA` + 16 upper-case letters and digits).
pub fn access_key_id() -> String {
    format!("AKIA{}", random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
}

/// A new 40-character secret access key.
pub fn secret_access_key() -> String {
    random_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        let mw = super::prefixed_hex("mw-", 17);
        assert_eq!(mw.len(), 20);
        assert!(mw[3..].chars().all(|c| c.is_ascii_hexdigit()));
        let acct = super::account_id();
        assert_eq!(acct.len(), 12);
        assert!(super::access_key_id().starts_with("AKIA"));
        assert_eq!(super::secret_access_key().len(), 40);
    }
}
