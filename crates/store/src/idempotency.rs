//! ClientToken records: a token is reserved with the request's fingerprint before the operation
//! runs, and completed with its response, so a retry returns the same result and a reuse with
//! other input is detected.

use crate::sql;
use crate::{Result, Store, timed};

/// What is stored for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Fingerprint of the request that used the token first.
    pub fingerprint: String,
    /// The response body, once the operation finished (None while it runs).
    pub response: Option<String>,
}

impl Store {
    /// Reserves `token` for a request; `Conflict` if it is already taken.
    pub async fn reserve_token(
        &self,
        account: &str,
        region: &str,
        op: &str,
        token: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<()> {
        timed("reserve_token", async {
            sql::query("INSERT INTO idempotency (account, region, operation, token, fingerprint, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(account)
                .bind(region)
                .bind(op)
                .bind(token)
                .bind(fingerprint)
                .bind(now_ms)
                .execute(&self.db)
                .await
                ?;
            Ok(())
        })
        .await
    }

    /// The record of a token, if any.
    pub async fn token_record(
        &self,
        account: &str,
        region: &str,
        op: &str,
        token: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sql::query("SELECT fingerprint, response FROM idempotency WHERE account = $1 AND region = $2 AND operation = $3 AND token = $4")
            .bind(account)
            .bind(region)
            .bind(op)
            .bind(token)
            .fetch_optional(&self.db)
            .await?;
        Ok(match row {
            Some(r) => Some(IdempotencyRecord { fingerprint: r.get("fingerprint")?, response: r.get("response")? }),
            None => None,
        })
    }

    /// Stores the response of a reserved token.
    pub async fn complete_token(
        &self,
        account: &str,
        region: &str,
        op: &str,
        token: &str,
        response: &str,
    ) -> Result<()> {
        sql::query(
            "UPDATE idempotency SET response = $1 WHERE account = $2 AND region = $3 AND operation = $4 AND token = $5",
        )
        .bind(response)
        .bind(account)
        .bind(region)
        .bind(op)
        .bind(token)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Frees a reservation whose operation failed, so the token can be used again.
    pub async fn release_token(&self, account: &str, region: &str, op: &str, token: &str) -> Result<()> {
        sql::query("DELETE FROM idempotency WHERE account = $1 AND region = $2 AND operation = $3 AND token = $4 AND response IS NULL")
            .bind(account)
            .bind(region)
            .bind(op)
            .bind(token)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}
