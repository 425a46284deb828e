//! The RSA side of a managed node's identity, shared by the server (which verifies) and ssmd's
//! own agent (which signs). No server code: the `ssmd-agent` binary depends on it.
//!
//! It does what the AWS SSM Agent's `agent/managedInstances/auth/rsa_key.go` does:
//! * key pairs are RSA-2048; the private key travels as base64 PKCS#1 DER, the public key as
//!   base64 PKIX (SubjectPublicKeyInfo) DER, about 392 characters, which is what the agent
//!   sends to `RegisterManagedInstance`;
//! * signatures are RSA-PSS with SHA-256 and a 32-byte salt, base64-encoded; the agent signs the
//!   SigV4 string to sign of its `RequestManagedInstanceRoleToken` and
//!   `UpdateManagedInstancePublicKey` calls this way.
//!
//! Managed instance ids are `mi-` followed by 17 lower-case hex digits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::Rng as _;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey, pss};
use sha2::Sha256;

/// The size of the keys `generate_key_pair` makes, in bits (as the AWS agent's).
pub const KEY_BITS: usize = 2048;

/// The PSS salt length, in bytes (as the AWS agent's).
pub const SALT_LEN: usize = 32;

/// The smallest public key accepted, in bits.
pub const MIN_KEY_BITS: usize = 2048;

/// The largest public key accepted, in bits (bounds the cost of a verification).
pub const MAX_KEY_BITS: usize = 8192;

/// The `PublicKeyType` value of these keys in the SSM API.
pub const PUBLIC_KEY_TYPE: &str = "Rsa";

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key is not valid base64 DER of the expected structure, or its size is out of range.
    BadKey(String),
    /// The signature is not valid base64.
    BadSignatureEncoding,
    /// The signature does not verify with the key over the message.
    BadSignature,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadKey(m) => write!(f, "invalid key: {m}"),
            Error::BadSignatureEncoding => f.write_str("the signature is not valid base64"),
            Error::BadSignature => f.write_str("the signature does not match"),
        }
    }
}

impl std::error::Error for Error {}

/// A freshly generated key pair, both halves base64 DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// base64 PKCS#1 `RSAPrivateKey` DER.
    pub private_key: String,
    /// base64 PKIX `SubjectPublicKeyInfo` DER.
    pub public_key: String,
}

/// Generates an RSA-2048 key pair.
pub fn generate_key_pair() -> Result<KeyPair, Error> {
    generate_key_pair_bits(KEY_BITS)
}

/// Generates a key pair of another size (tests use it for out-of-range keys).
pub fn generate_key_pair_bits(bits: usize) -> Result<KeyPair, Error> {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), bits).map_err(|e| Error::BadKey(e.to_string()))?;
    let private = key.to_pkcs1_der().map_err(|e| Error::BadKey(e.to_string()))?;
    let public = key.to_public_key().to_public_key_der().map_err(|e| Error::BadKey(e.to_string()))?;
    Ok(KeyPair { private_key: B64.encode(private.as_bytes()), public_key: B64.encode(public.as_bytes()) })
}

fn private_key(private_b64: &str) -> Result<RsaPrivateKey, Error> {
    let der = B64.decode(private_b64.trim()).map_err(|_| Error::BadKey("the private key is not base64".into()))?;
    RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| Error::BadKey(format!("not a PKCS#1 RSA private key: {e}")))
}

/// Parses a base64 public key: PKIX `SubjectPublicKeyInfo` DER (what the AWS agent sends), or
/// PKCS#1 `RSAPublicKey` DER. Keys smaller than `MIN_KEY_BITS` or larger than `MAX_KEY_BITS`
/// are refused.
pub fn parse_public_key(public_b64: &str) -> Result<RsaPublicKey, Error> {
    let der = B64.decode(public_b64.trim()).map_err(|_| Error::BadKey("the public key is not base64".into()))?;
    let key = RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| Error::BadKey("not a DER RSA public key (PKIX or PKCS#1)".into()))?;
    let bits = key.n().bits();
    if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        return Err(Error::BadKey(format!(
            "the key has {bits} bits; between {MIN_KEY_BITS} and {MAX_KEY_BITS} are accepted"
        )));
    }
    Ok(key)
}

/// Checks that a base64 public key parses and has an accepted size.
pub fn check_public_key(public_b64: &str) -> Result<(), Error> {
    parse_public_key(public_b64).map(|_| ())
}

/// Signs `message` (SHA-256, RSA-PSS, 32-byte salt) with a base64 PKCS#1 private key; returns the
/// base64 signature.
pub fn sign_pss(private_b64: &str, message: &[u8]) -> Result<String, Error> {
    let key = private_key(private_b64)?;
    let signer = pss::SigningKey::<Sha256>::new_with_salt_len(key, SALT_LEN);
    let sig = signer.sign_with_rng(&mut rand::thread_rng(), message);
    Ok(B64.encode(sig.to_bytes()))
}

/// Verifies a base64 RSA-PSS (SHA-256, 32-byte salt) signature of `message` with a base64 public
/// key.
pub fn verify_pss(public_b64: &str, message: &[u8], signature_b64: &str) -> Result<(), Error> {
    let key = parse_public_key(public_b64)?;
    let raw = B64.decode(signature_b64.trim()).map_err(|_| Error::BadSignatureEncoding)?;
    let sig = pss::Signature::try_from(raw.as_slice()).map_err(|_| Error::BadSignature)?;
    let verifier = pss::VerifyingKey::<Sha256>::new_with_salt_len(key, SALT_LEN);
    verifier.verify(message, &sig).map_err(|_| Error::BadSignature)
}

/// A new managed instance id: `mi-` and 17 random lower-case hex digits.
pub fn managed_instance_id() -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(20);
    id.push_str("mi-");
    for _ in 0..17 {
        id.push(char::from(b"0123456789abcdef"[rng.gen_range(0..16)]));
    }
    id
}

/// Whether `s` has the form of a managed instance id.
pub fn is_managed_instance_id(s: &str) -> bool {
    s.strip_prefix("mi-")
        .is_some_and(|h| h.len() == 17 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// Key generation is slow in debug builds: the tests share two pairs.
    fn pair(i: usize) -> &'static KeyPair {
        static PAIRS: OnceLock<Vec<KeyPair>> = OnceLock::new();
        &PAIRS.get_or_init(|| (0..2).map(|_| generate_key_pair().unwrap()).collect())[i]
    }

    #[test]
    fn key_format_matches_the_agent() {
        let kp = pair(0);
        // base64 of a 294-byte SubjectPublicKeyInfo.
        assert_eq!(kp.public_key.len(), 392, "{}", kp.public_key);
        assert!(kp.public_key.starts_with("MIIBIjANBgkqhkiG9w0B"), "{}", kp.public_key);
        assert!(kp.private_key.starts_with("MII"), "PKCS#1 DER is a SEQUENCE");
        assert_eq!(parse_public_key(&kp.public_key).unwrap().n().bits(), 2048);
    }

    #[test]
    fn round_trip_and_tampering() {
        let kp = pair(0);
        let msg = b"AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/ssm/aws4_request\nabc";
        let sig = sign_pss(&kp.private_key, msg).unwrap();
        verify_pss(&kp.public_key, msg, &sig).unwrap();
        // PSS is randomized: two signatures differ, both verify.
        let sig2 = sign_pss(&kp.private_key, msg).unwrap();
        assert_ne!(sig, sig2);
        verify_pss(&kp.public_key, msg, &sig2).unwrap();

        assert_eq!(verify_pss(&kp.public_key, b"other message", &sig), Err(Error::BadSignature));
        let mut raw = B64.decode(&sig).unwrap();
        raw[10] ^= 1;
        assert_eq!(verify_pss(&kp.public_key, msg, &B64.encode(&raw)), Err(Error::BadSignature));
        assert_eq!(verify_pss(&kp.public_key, msg, &B64.encode(&raw[..100])), Err(Error::BadSignature));
        assert_eq!(verify_pss(&kp.public_key, msg, "not base64!"), Err(Error::BadSignatureEncoding));
        assert_eq!(verify_pss(&kp.public_key, msg, ""), Err(Error::BadSignature));
    }

    #[test]
    fn wrong_key_fails() {
        let msg = b"message";
        let sig = sign_pss(&pair(0).private_key, msg).unwrap();
        assert_eq!(verify_pss(&pair(1).public_key, msg, &sig), Err(Error::BadSignature));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(parse_public_key("%%%"), Err(Error::BadKey(_))));
        assert!(matches!(parse_public_key(&B64.encode(b"not der")), Err(Error::BadKey(_))));
        assert!(matches!(sign_pss(&pair(0).public_key, b"x"), Err(Error::BadKey(_))));
        let small = generate_key_pair_bits(1024).unwrap();
        let e = parse_public_key(&small.public_key).unwrap_err();
        assert!(e.to_string().contains("1024 bits"), "{e}");
        // PKCS#1 public keys are accepted too.
        let k = parse_public_key(&pair(0).public_key).unwrap();
        use rsa::pkcs1::EncodeRsaPublicKey;
        let pkcs1 = B64.encode(k.to_pkcs1_der().unwrap().as_bytes());
        let sig = sign_pss(&pair(0).private_key, b"m").unwrap();
        verify_pss(&pkcs1, b"m", &sig).unwrap();
    }

    #[test]
    fn instance_ids() {
        let a = managed_instance_id();
        assert_eq!(a.len(), 20);
        assert!(is_managed_instance_id(&a), "{a}");
        assert_ne!(a, managed_instance_id());
        for bad in ["i-0123456789abcdef0", "mi-0123456789ABCDEF0", "mi-0123", "mi-0123456789abcdef01"] {
            assert!(!is_managed_instance_id(bad), "{bad}");
        }
    }

    /// Interoperability with Python's `cryptography` (the same primitives as Go's crypto/rsa):
    /// a signature made here verifies there and the other way round. Skipped when the project's
    /// virtualenv has no `cryptography`.
    #[test]
    fn interoperates_with_python_cryptography() {
        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        let has = std::process::Command::new(&python)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            eprintln!("skipped: {} has no cryptography module", python.display());
            return;
        }
        let kp = pair(0);
        let msg = "string to sign\nwith lines";
        let sig = sign_pss(&kp.private_key, msg.as_bytes()).unwrap();
        let script = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
priv_b64, pub_b64, msg, sig_b64 = sys.argv[1:5]
pub = serialization.load_der_public_key(base64.b64decode(pub_b64))
pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
pub.verify(base64.b64decode(sig_b64), msg.encode(), pss, hashes.SHA256())
priv = serialization.load_der_private_key(base64.b64decode(priv_b64), password=None)
print(base64.b64encode(priv.sign(b"from python", pss, hashes.SHA256())).decode())
"#;
        let out = std::process::Command::new(&python)
            .args(["-c", script, &kp.private_key, &kp.public_key, msg, &sig])
            .output()
            .unwrap();
        assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
        let py_sig = String::from_utf8(out.stdout).unwrap();
        verify_pss(&kp.public_key, b"from python", py_sig.trim()).unwrap();
        assert_eq!(verify_pss(&kp.public_key, b"from pythoN", py_sig.trim()), Err(Error::BadSignature));
    }
}
