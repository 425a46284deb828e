//! Access keys (each belongs to an account) and server secrets (e.g. the NextToken HMAC key).

use crate::sql::{self, Row};
use crate::{Result, Store, timed};

/// An access key pair and the account it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The 12-digit account id.
    pub account: String,
    /// For temporary credentials: the session token requests must carry.
    pub session_token: Option<String>,
    /// For temporary credentials: when they expire.
    pub expires_ms: Option<i64>,
    /// The IAM-style user the key belongs to (`None`: the account root).
    pub user_name: Option<String>,
    /// For a managed node's temporary credentials: the node (`mi-...`) they were issued to.
    pub node_id: Option<String>,
}

impl Store {
    /// Adds a key; `Conflict` if the id exists.
    pub async fn put_access_key(&self, key: &AccessKey, now_ms: i64) -> Result<()> {
        timed("put_access_key", async {
            sql::query("INSERT INTO access_keys (access_key_id, secret_access_key, account, session_token, expires_ms, created_ms, user_name, node_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&key.access_key_id)
                .bind(&key.secret_access_key)
                .bind(&key.account)
                .bind(&key.session_token)
                .bind(key.expires_ms)
                .bind(now_ms)
                .bind(&key.user_name)
                .bind(&key.node_id)
                .execute(&self.db)
                .await
                ?;
            Ok(())
        })
        .await
    }

    /// Looks a key up by id.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        timed("access_key", async {
            let row = sql::query("SELECT access_key_id, secret_access_key, account, session_token, expires_ms, user_name, node_id FROM access_keys WHERE access_key_id = $1")
                .bind(id)
                .fetch_optional(&self.db)
                .await?;
            row.map(|r| key_from(&r)).transpose()
        })
        .await
    }

    /// Every key except managed nodes' temporary credentials, oldest first.
    pub async fn access_keys(&self) -> Result<Vec<AccessKey>> {
        let rows = sql::query("SELECT access_key_id, secret_access_key, account, session_token, expires_ms, user_name, node_id FROM access_keys WHERE node_id IS NULL ORDER BY created_ms, access_key_id")
            .fetch_all(&self.db)
            .await?;
        rows.iter().map(key_from).collect::<std::result::Result<_, _>>()
    }

    /// Deletes a key; true if it existed.
    pub async fn delete_access_key(&self, id: &str) -> Result<bool> {
        let r = sql::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(id).execute(&self.db).await?;
        Ok(r > 0)
    }

    /// Returns the named secret, creating it with `make` the first time. Concurrent replicas
    /// agree on one value: the first insert wins and everyone reads it back.
    pub async fn server_secret(&self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        sql::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.db)
            .await?;
        let v: String =
            sql::query("SELECT value FROM server_secrets WHERE name = $1").bind(name).scalar(&self.db).await?;
        Ok(v)
    }
}

fn key_from(r: &Row) -> Result<AccessKey> {
    Ok(AccessKey {
        access_key_id: r.get("access_key_id")?,
        secret_access_key: r.get("secret_access_key")?,
        account: r.get("account")?,
        session_token: r.get("session_token")?,
        expires_ms: r.get("expires_ms")?,
        user_name: r.get("user_name")?,
        node_id: r.get("node_id")?,
    })
}
