//! Encryption at rest of SecureString values: AES-256-GCM under a fresh data key for every
//! version written, the data key itself sealed (AES-256-GCM) under a master key that ssmd keeps
//! outside the database. A database file alone reveals no secret: it holds only sealed data keys.
//!
//! An envelope is the text `ssmd1:` followed by base64 of
//! `fingerprint(8) | key nonce(12) | sealed data key(32+16) | value nonce(12) | sealed value(+16)`.
//! The fingerprint (the first 8 bytes of SHA-256 of the master key) says which master key sealed
//! it, so that after a rotation the previous keys still open what they sealed. The value is
//! bound to its (account, region, name) as associated data: an envelope copied onto another
//! parameter does not open.
//!
//! Nothing here logs, and no error carries the plaintext.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "ssmd1:";
const FP_LEN: usize = 8;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// One master key.
struct MasterKey {
    fingerprint: [u8; FP_LEN],
    key: LessSafeKey,
}

/// The master keys: the first seals, every one opens what it sealed.
pub struct MasterKeys {
    keys: Vec<MasterKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

/// Why a key text or an envelope was refused (never carries key or value material).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// A master key line is not base64 of 32 bytes.
    #[error("a master key must be base64 of exactly 32 bytes (line {0})")]
    BadKey(usize),
    /// No master key was given.
    #[error("no master key given")]
    NoKey,
    /// The envelope was sealed under a master key ssmd was not given.
    #[error("the value was sealed under a master key ssmd does not hold (fingerprint {0})")]
    UnknownKey(String),
    /// The envelope is damaged, or belongs to another parameter.
    #[error("the sealed value does not open (damaged, or moved from another parameter)")]
    Damaged,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

fn fingerprint(key: &[u8]) -> [u8; FP_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut fp = [0u8; FP_LEN];
    fp.copy_from_slice(&d.as_ref()[..FP_LEN]);
    fp
}

fn aead_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key"))
}

impl MasterKeys {
    /// Reads master keys from text: one base64 key of 32 bytes per line (blank lines and lines
    /// starting with `#` skipped); the first seals new values.
    pub fn parse(text: &str) -> Result<MasterKeys, CryptoError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = B64.decode(line).map_err(|_| CryptoError::BadKey(i + 1))?;
            if bytes.len() != KEY_LEN {
                return Err(CryptoError::BadKey(i + 1));
            }
            keys.push(MasterKey { fingerprint: fingerprint(&bytes), key: aead_key(&bytes) });
        }
        if keys.is_empty() {
            return Err(CryptoError::NoKey);
        }
        Ok(MasterKeys { keys, rng: SystemRandom::new() })
    }

    /// A new random master key, as the text [`MasterKeys::parse`] reads.
    pub fn generate_text() -> Result<String, CryptoError> {
        let mut k = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut k).map_err(|_| CryptoError::Random)?;
        Ok(format!("{}\n", B64.encode(k)))
    }

    fn random<const N: usize>(&self) -> Result<[u8; N], CryptoError> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b).map_err(|_| CryptoError::Random)?;
        Ok(b)
    }

    /// Seals `plaintext` for the parameter `binding` under a fresh data key.
    pub fn seal(&self, binding: &str, plaintext: &str) -> Result<String, CryptoError> {
        let master = &self.keys[0];
        let data_key: [u8; KEY_LEN] = self.random()?;
        let key_nonce: [u8; NONCE_LEN] = self.random()?;
        let value_nonce: [u8; NONCE_LEN] = self.random()?;
        let mut sealed_key = data_key.to_vec();
        master
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(key_nonce),
                Aad::from(&master.fingerprint[..]),
                &mut sealed_key,
            )
            .map_err(|_| CryptoError::Damaged)?;
        let mut sealed_value = plaintext.as_bytes().to_vec();
        aead_key(&data_key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(value_nonce),
                Aad::from(binding.as_bytes()),
                &mut sealed_value,
            )
            .map_err(|_| CryptoError::Damaged)?;
        let mut out = Vec::with_capacity(FP_LEN + 2 * NONCE_LEN + sealed_key.len() + sealed_value.len());
        out.extend_from_slice(&master.fingerprint);
        out.extend_from_slice(&key_nonce);
        out.extend_from_slice(&sealed_key);
        out.extend_from_slice(&value_nonce);
        out.extend_from_slice(&sealed_value);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    /// Opens an envelope [`MasterKeys::seal`] made for `binding`.
    pub fn open(&self, binding: &str, envelope: &str) -> Result<String, CryptoError> {
        let raw = envelope.strip_prefix(PREFIX).ok_or(CryptoError::Damaged)?;
        let raw = B64.decode(raw).map_err(|_| CryptoError::Damaged)?;
        let head = FP_LEN + NONCE_LEN + KEY_LEN + TAG_LEN + NONCE_LEN;
        if raw.len() < head + TAG_LEN {
            return Err(CryptoError::Damaged);
        }
        let (fp, rest) = raw.split_at(FP_LEN);
        let master =
            self.keys.iter().find(|k| k.fingerprint[..] == *fp).ok_or_else(|| CryptoError::UnknownKey(hex_of(fp)))?;
        let (key_nonce, rest) = rest.split_at(NONCE_LEN);
        let (sealed_key, rest) = rest.split_at(KEY_LEN + TAG_LEN);
        let (value_nonce, sealed_value) = rest.split_at(NONCE_LEN);
        let mut k = sealed_key.to_vec();
        let data_key = master
            .key
            .open_in_place(
                Nonce::try_assume_unique_for_key(key_nonce).map_err(|_| CryptoError::Damaged)?,
                Aad::from(&master.fingerprint[..]),
                &mut k,
            )
            .map_err(|_| CryptoError::Damaged)?;
        let mut v = sealed_value.to_vec();
        let plain = aead_key(data_key)
            .open_in_place(
                Nonce::try_assume_unique_for_key(value_nonce).map_err(|_| CryptoError::Damaged)?,
                Aad::from(binding.as_bytes()),
                &mut v,
            )
            .map_err(|_| CryptoError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Damaged)
    }
}

/// The form a SecureString takes when read without decryption: the base64 of the envelope (as
/// AWS returns the base64 of its KMS ciphertext blob).
pub fn ciphertext_form(envelope: &str) -> String {
    envelope.strip_prefix(PREFIX).unwrap_or(envelope).to_string()
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (MasterKeys, String) {
        let t = MasterKeys::generate_text().unwrap();
        (MasterKeys::parse(&t).unwrap(), t)
    }

    #[test]
    fn seals_and_opens_and_hides_the_value() {
        let (k, _) = keys();
        let e = k.seal("a/r/n", "hunter2-secret").unwrap();
        assert!(!e.contains("hunter2"));
        assert!(!ciphertext_form(&e).contains("hunter2"));
        assert_eq!(k.open("a/r/n", &e).unwrap(), "hunter2-secret");
        // A fresh data key and nonce every time.
        assert_ne!(e, k.seal("a/r/n", "hunter2-secret").unwrap());
    }

    #[test]
    fn refuses_another_binding_a_damaged_envelope_and_an_unknown_key() {
        let (k, _) = keys();
        let e = k.seal("a/r/n", "v").unwrap();
        assert_eq!(k.open("a/r/other", &e), Err(CryptoError::Damaged));
        let mut raw = B64.decode(ciphertext_form(&e)).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(k.open("a/r/n", &format!("{PREFIX}{}", B64.encode(raw))), Err(CryptoError::Damaged));
        let (other, _) = keys();
        assert!(matches!(other.open("a/r/n", &e), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn a_rotated_key_set_still_opens_what_the_old_key_sealed() {
        let (old, old_text) = keys();
        let e = old.seal("b", "x").unwrap();
        let new_text = MasterKeys::generate_text().unwrap();
        let rotated = MasterKeys::parse(&format!("{new_text}{old_text}")).unwrap();
        assert_eq!(rotated.open("b", &e).unwrap(), "x");
        let e2 = rotated.seal("b", "y").unwrap();
        assert!(matches!(old.open("b", &e2), Err(CryptoError::UnknownKey(_))));
    }

    #[test]
    fn bad_key_text_is_refused() {
        assert_eq!(MasterKeys::parse("").unwrap_err(), CryptoError::NoKey);
        assert_eq!(MasterKeys::parse("# c\nAAAA\n").unwrap_err(), CryptoError::BadKey(2));
    }
}
