//! The state directory: where the node's identity, credentials and work live, private to the
//! agent's user (directories 0700, files 0600, every file replaced atomically).
//!
//! ```text
//! <state>/registration.json   {"InstanceId","Region","Endpoint","Name"}
//! <state>/private_key         base64 PKCS#1 DER (RSA-2048)
//! <state>/public_key          base64 PKIX DER
//! <state>/fingerprint         this machine's fingerprint (a UUID, kept across registrations)
//! <state>/credentials.json    the temporary credentials and when they were issued / expire
//! <state>/seen.json           message ids already handled (de-duplication of redeliveries)
//! <state>/replies/            replies the server has not accepted yet
//! <state>/inbox/              acknowledged commands not finished yet
//! <state>/work/<CommandId>/   scripts of running commands
//! ```
//!
//! The default directory is `$SSMD_AGENT_STATE_DIR`, else `$HOME/.ssmd-agent`.

use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The registration file's name.
pub const REGISTRATION: &str = "registration.json";
/// The private key file's name.
pub const PRIVATE_KEY: &str = "private_key";
/// The public key file's name.
pub const PUBLIC_KEY: &str = "public_key";
/// The fingerprint file's name.
pub const FINGERPRINT: &str = "fingerprint";
/// The credentials file's name.
pub const CREDENTIALS: &str = "credentials.json";
/// The seen-message-ids file's name.
pub const SEEN: &str = "seen.json";
/// The reply spool directory's name.
pub const REPLIES: &str = "replies";
/// The inbox directory's name.
pub const INBOX: &str = "inbox";
/// The per-command work directory's name.
pub const WORK: &str = "work";

/// The state directory to use: `explicit`, else `$SSMD_AGENT_STATE_DIR`, else `$HOME/.ssmd-agent`.
pub fn resolve(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("SSMD_AGENT_STATE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".ssmd-agent")),
        None => Err("no state directory: pass --state-dir or set SSMD_AGENT_STATE_DIR or HOME".into()),
    }
}

/// An opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens the state directory at `root`, creating it (mode 0700) if needed. An existing
    /// directory is not changed; a warning is logged if other users may read it (the files in
    /// it are 0600 all the same).
    pub fn open(root: &Path) -> io::Result<StateDir> {
        if root.is_dir() {
            let mode = fs::metadata(root)?.permissions().mode();
            if mode & 0o077 != 0 {
                crate::warn!(
                    "the state directory {} has mode {:o}: other users can list it",
                    root.display(),
                    mode & 0o777
                );
            }
        } else {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(root)?;
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(StateDir { root: root.to_path_buf() })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A sub-directory (created, mode 0700, if needed).
    pub fn dir(&self, rel: &str) -> io::Result<PathBuf> {
        let p = self.root.join(rel);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&p)?;
        Ok(p)
    }

    /// Writes a file of the directory atomically, mode 0600.
    pub fn write(&self, rel: &str, data: &[u8]) -> io::Result<()> {
        write_private(&self.root.join(rel), data)
    }

    /// Reads a file of the directory; `None` if it does not exist.
    pub fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        read_optional(&self.root.join(rel))
    }

    /// Reads a text file of the directory, trimmed; `None` if it does not exist.
    pub fn read_text(&self, rel: &str) -> io::Result<Option<String>> {
        Ok(self.read(rel)?.map(|b| String::from_utf8_lossy(&b).trim().to_string()))
    }

    /// Removes a file or directory tree of the directory, if it exists.
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let p = self.root.join(rel);
        let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// The registration, if the node is registered.
    pub fn registration(&self) -> Result<Option<Registration>, String> {
        match self.read(REGISTRATION).map_err(|e| format!("cannot read {}: {e}", self.path(REGISTRATION).display()))? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{} is not valid: {e}", self.path(REGISTRATION).display())),
        }
    }
}

/// Writes `data` to `path` atomically (a temporary file renamed over it), mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", crate::ids::uuid_v4()));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a file; `None` if it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What registration produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Registration {
    /// The managed instance id, `mi-…`.
    pub instance_id: String,
    /// The region the node was registered in.
    pub region: String,
    /// The service endpoint URL.
    pub endpoint: String,
    /// A name reported as the computer name instead of the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn files_and_dirs_are_private_and_replaced_whole() {
        let base = std::env::temp_dir().join(format!("ssmd-agent-state-{}", crate::ids::uuid_v4()));
        let s = StateDir::open(&base.join("nested")).unwrap();
        assert_eq!(fs::metadata(s.root()).unwrap().mode() & 0o777, 0o700);
        s.write("a", b"one").unwrap();
        s.write("a", b"two").unwrap();
        assert_eq!(s.read("a").unwrap().unwrap(), b"two");
        assert_eq!(fs::metadata(s.path("a")).unwrap().mode() & 0o777, 0o600);
        assert_eq!(s.read("missing").unwrap(), None);
        let d = s.dir("replies").unwrap();
        assert_eq!(fs::metadata(d).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::read_dir(s.root()).unwrap().count(), 2, "no temporary files left");
        s.remove("a").unwrap();
        s.remove("a").unwrap();
        fs::remove_dir_all(base).unwrap();
    }
}
