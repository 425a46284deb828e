//! Access keys and accounts: the root key made on first start (or taken from the environment)
//! and the `ssmd keys` commands that add, list and delete keys. Each key belongs to one
//! account; a new account is simply a key with a new account id.

use anyhow::{Result, bail};
use clap::Subcommand;
use ssmd_core::ids;
use ssmd_store::{AccessKey, Store};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an access key, printed as export lines for the aws CLI.
    Create {
        /// The account the key belongs to (12 digits). Omit for a new account.
        #[arg(long)]
        account: Option<String>,
        /// Use this access key id instead of a generated one.
        #[arg(long, requires = "secret_access_key")]
        access_key_id: Option<String>,
        /// Use this secret instead of a generated one.
        #[arg(long, requires = "access_key_id")]
        secret_access_key: Option<String>,
        /// Make the key a user's (caller ARN arn:aws:iam::ACCOUNT:user/NAME) instead of the
        /// account root's, e.g. for approvers.
        #[arg(long)]
        user: Option<String>,
    },
    /// List access keys and their accounts (secrets are not shown).
    List,
    /// Delete an access key; requests signed with it are refused within seconds.
    Delete {
        /// The access key id.
        access_key_id: String,
    },
}

/// The account of the root key: `SSMD_ACCOUNT_ID`, or one chosen at random on first start.
async fn root_account(store: &Store) -> Result<String> {
    if let Ok(a) = std::env::var("SSMD_ACCOUNT_ID") {
        check_account(&a)?;
        return Ok(a);
    }
    Ok(store.server_secret("root-account", ids::account_id).await?)
}

fn check_account(a: &str) -> Result<()> {
    if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
        bail!("an account id is 12 digits, not {a:?}");
    }
    Ok(())
}

/// Makes sure a root key exists. Returns the key when it was generated just now (so that it
/// is printed once); a key from `SSMD_ACCESS_KEY_ID`/`SSMD_SECRET_ACCESS_KEY` is stored if new.
pub async fn ensure_root_key(store: &Store, now_ms: i64) -> Result<Option<AccessKey>> {
    if let (Ok(id), Ok(secret)) = (std::env::var("SSMD_ACCESS_KEY_ID"), std::env::var("SSMD_SECRET_ACCESS_KEY")) {
        match store.access_key(&id).await? {
            Some(k) if k.secret_access_key == secret => {}
            Some(_) => {
                bail!("SSMD_ACCESS_KEY_ID {id} exists with another secret; delete it with `ssmd keys delete` first")
            }
            None => {
                let account = root_account(store).await?;
                let key = AccessKey {
                    access_key_id: id,
                    secret_access_key: secret,
                    account,
                    session_token: None,
                    expires_ms: None,
                    user_name: None,
                    node_id: None,
                };
                store.put_access_key(&key, now_ms).await?;
            }
        }
        return Ok(None);
    }
    if !store.access_keys().await?.is_empty() {
        return Ok(None);
    }
    let key = AccessKey {
        access_key_id: ids::access_key_id(),
        secret_access_key: ids::secret_access_key(),
        account: root_account(store).await?,
        session_token: None,
        expires_ms: None,
        user_name: None,
        node_id: None,
    };
    store.put_access_key(&key, now_ms).await?;
    Ok(Some(key))
}

pub async fn run(store: &Store, cmd: KeysCommand, now_ms: i64) -> Result<()> {
    match cmd {
        KeysCommand::Create { account, access_key_id, secret_access_key, user } => {
            let account = match account {
                Some(a) => {
                    check_account(&a)?;
                    a
                }
                None => ids::account_id(),
            };
            let key = AccessKey {
                access_key_id: access_key_id.unwrap_or_else(ids::access_key_id),
                secret_access_key: secret_access_key.unwrap_or_else(ids::secret_access_key),
                account,
                session_token: None,
                expires_ms: None,
                user_name: user,
                node_id: None,
            };
            if let Some(u) = &key.user_name
                && (u.is_empty() || !u.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
            {
                bail!("a user name is letters, digits and +=,.@_- only, not {u:?}");
            }
            if store.put_access_key(&key, now_ms).await.is_err() {
                bail!("the access key id {} exists already", key.access_key_id);
            }
            println!("# account {}", key.account);
            if let Some(u) = &key.user_name {
                println!("# user {}", ssmd_core::arn::user(&key.account, u));
            }
            println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
            println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
        }
        KeysCommand::List => {
            for k in store.access_keys().await? {
                println!("{}\t{}\t{}", k.access_key_id, k.account, k.user_name.as_deref().unwrap_or("root"));
            }
        }
        KeysCommand::Delete { access_key_id } => {
            if !store.delete_access_key(&access_key_id).await? {
                bail!("no access key {access_key_id}");
            }
            println!("deleted {access_key_id}");
        }
    }
    Ok(())
}
