//! Where the master key that seals SecureString parameter values comes from. It never goes in
//! the database, so a copy of the database alone reveals no secret:
//! * `--parameter-key` / `SSMD_PARAMETER_KEY`: the key text itself (base64 of 32 bytes; several
//!   lines for a rotation, the first sealing new values);
//! * `--parameter-key-file` / `SSMD_PARAMETER_KEY_FILE`: a file holding that text;
//! * otherwise `parameter-master.key` in the data directory, created (mode 0600) on first start.
//!
//! A key file that others than its owner may read is refused.

use anyhow::{Context, Result, bail};
use ssmd_api::parameters::crypto::MasterKeys;
use std::path::{Path, PathBuf};

/// Master-key options of `ssmd serve`.
#[derive(clap::Args, Clone)]
pub struct SecretArgs {
    /// The master key for SecureString parameters (base64 of 32 bytes; more lines = older keys
    /// kept for reading). Prefer --parameter-key-file.
    #[arg(long, env = "SSMD_PARAMETER_KEY", hide_env_values = true)]
    parameter_key: Option<String>,
    /// A file holding the master key for SecureString parameters (default:
    /// DATA_DIR/parameter-master.key, created with mode 0600 when missing).
    #[arg(long, env = "SSMD_PARAMETER_KEY_FILE")]
    parameter_key_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The master keys, creating the default key file if needed.
    pub fn load(&self, data_dir: &Path) -> Result<MasterKeys> {
        if let Some(text) = &self.parameter_key {
            return MasterKeys::parse(text).map_err(|e| anyhow::anyhow!("--parameter-key: {e}"));
        }
        let path = match &self.parameter_key_file {
            Some(p) => p.clone(),
            None => {
                let p = data_dir.join("parameter-master.key");
                if !p.exists() {
                    create_key_file(&p)?;
                }
                p
            }
        };
        check_private(&path)?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        MasterKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

fn create_key_file(path: &Path) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = MasterKeys::generate_text().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    tracing::info!(path = %path.display(), "created the master key for SecureString parameters");
    Ok(())
}

fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!("{} may be read by others (mode {:o}); make it private with chmod 600", path.display(), mode & 0o777);
        }
    }
    Ok(())
}
