//! Per-account counts of what a quota limits (`resource_counts`): taking one checks the limit
//! and counts in one statement, so a quota costs the same with a hundred resources or a hundred
//! thousand, and two replicas racing for the last slot never both get it (the count's row is
//! the lock on PostgreSQL; SQLite has one writer).

use crate::Result;
use crate::sql::{self, Tx};

impl crate::Store {
    /// Counts one more `kind` for the account and Region if fewer than `limit` are counted;
    /// false (nothing changed) when the limit is reached.
    pub(crate) async fn take_quota(
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        kind: &str,
        limit: i64,
    ) -> Result<bool> {
        let taken = sql::query(
            "INSERT INTO resource_counts (account, region, kind, used) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (account, region, kind) DO UPDATE SET used = resource_counts.used + 1 \
             WHERE resource_counts.used < $4 RETURNING used",
        )
        .bind(account)
        .bind(region)
        .bind(kind)
        .bind(limit)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(taken.is_some() && limit > 0)
    }

    /// Gives back one `kind` of the account and Region (its resource was deleted).
    pub(crate) async fn release_quota(tx: &mut Tx<'_>, account: &str, region: &str, kind: &str) -> Result<()> {
        sql::query(
            "UPDATE resource_counts SET used = used - 1 WHERE account = $1 AND region = $2 AND kind = $3 AND used > 0",
        )
        .bind(account)
        .bind(region)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
