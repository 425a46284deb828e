//! Access keys (each belongs to an account) and server secrets (e.g. the NextToken HMAC key).

use crate::{Result, Store, StoreError, timed};
use sqlx::Row;

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
}

impl Store {
    /// Adds a key; `Conflict` if the id exists.
    pub async fn put_access_key(&self, key: &AccessKey, now_ms: i64) -> Result<()> {
        timed("put_access_key", async {
            sqlx::query("INSERT INTO access_keys (access_key_id, secret_access_key, account, session_token, expires_ms, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&key.access_key_id)
                .bind(&key.secret_access_key)
                .bind(&key.account)
                .bind(&key.session_token)
                .bind(key.expires_ms)
                .bind(now_ms)
                .execute(&self.write)
                .await
                .map_err(StoreError::from_write)?;
            Ok(())
        })
        .await
    }

    /// Looks a key up by id.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>> {
        timed("access_key", async {
            let row = sqlx::query("SELECT access_key_id, secret_access_key, account, session_token, expires_ms FROM access_keys WHERE access_key_id = $1")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
            Ok(row.map(|r| key_from(&r)).transpose()?)
        })
        .await
    }

    /// Every key, oldest first.
    pub async fn access_keys(&self) -> Result<Vec<AccessKey>> {
        let rows = sqlx::query("SELECT access_key_id, secret_access_key, account, session_token, expires_ms FROM access_keys ORDER BY created_ms, access_key_id")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(key_from).collect::<std::result::Result<_, _>>()?)
    }

    /// Deletes a key; true if it existed.
    pub async fn delete_access_key(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(id).execute(&self.write).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Returns the named secret, creating it with `make` the first time. Concurrent replicas
    /// agree on one value: the first insert wins and everyone reads it back.
    pub async fn server_secret(&self, name: &str, make: impl FnOnce() -> String) -> Result<String> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.write)
            .await?;
        let v: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(v)
    }
}

fn key_from(r: &sqlx::any::AnyRow) -> std::result::Result<AccessKey, sqlx::Error> {
    Ok(AccessKey {
        access_key_id: r.try_get("access_key_id")?,
        secret_access_key: r.try_get("secret_access_key")?,
        account: r.try_get("account")?,
        session_token: r.try_get("session_token")?,
        expires_ms: r.try_get("expires_ms")?,
    })
}
