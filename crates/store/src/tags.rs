//! Tags on any resource, keyed by (account, region, resource type, resource id).

use crate::sql::{self, Tx};
use crate::{Result, Store, timed};

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Store {
    /// The tags of a resource, ordered by key.
    pub async fn tags(&self, account: &str, region: &str, rtype: &str, rid: &str) -> Result<Vec<Tag>> {
        timed("tags", async {
            let rows = sql::query(
                "SELECT tag_key, tag_value FROM tags WHERE account = $1 AND region = $2 AND resource_type = $3 AND resource_id = $4 ORDER BY tag_key",
            )
            .bind(account)
            .bind(region)
            .bind(rtype)
            .bind(rid)
            .fetch_all(&self.db)
            .await?;
            rows
                .iter()
                .map(|r| Ok(Tag { key: r.get("tag_key")?, value: r.get("tag_value")? }))
                .collect::<Result<_>>()
        })
        .await
    }

    /// The tags of several resources of one type, by resource id, in one query.
    pub async fn tags_of_many(
        &self,
        account: &str,
        region: &str,
        rtype: &str,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<Tag>>> {
        let mut out: std::collections::HashMap<String, Vec<Tag>> = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT resource_id, tag_key, tag_value FROM tags WHERE account = $1 AND region = $2 AND resource_type = $3 \
             AND resource_id IN ({}) ORDER BY resource_id, tag_key",
            placeholders.join(", ")
        );
        timed("tags_of_many", async {
            let mut q = sql::query(sql).bind(account).bind(region).bind(rtype);
            for id in ids {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.db).await? {
                let id: String = r.get("resource_id")?;
                out.entry(id).or_default().push(Tag { key: r.get("tag_key")?, value: r.get("tag_value")? });
            }
            Ok(out)
        })
        .await
    }

    /// Adds or overwrites tags and removes `remove` keys, in one transaction, refusing (with
    /// `Ok(false)`, nothing written) if the resource would end up with more than `limit` tags.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_tags(
        &self,
        account: &str,
        region: &str,
        rtype: &str,
        rid: &str,
        set: &[Tag],
        remove: &[String],
        limit: usize,
    ) -> Result<bool> {
        timed("change_tags", async {
            let mut tx = self.db.begin().await?;
            Store::upsert_tags(&mut tx, account, region, rtype, rid, set).await?;
            for k in remove {
                sql::query("DELETE FROM tags WHERE account = $1 AND region = $2 AND resource_type = $3 AND resource_id = $4 AND tag_key = $5")
                    .bind(account)
                    .bind(region)
                    .bind(rtype)
                    .bind(rid)
                    .bind(k)
                    .execute(&mut tx)
                    .await?;
            }
            let n: i64 = sql::query(
                "SELECT COUNT(*) FROM tags WHERE account = $1 AND region = $2 AND resource_type = $3 AND resource_id = $4",
            )
            .bind(account)
            .bind(region)
            .bind(rtype)
            .bind(rid)
            .scalar(&mut tx)
            .await?;
            if n as usize > limit {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Adds or overwrites tags inside a transaction (used when a resource is created with tags,
    /// so that the resource and its tags are written together).
    pub(crate) async fn upsert_tags(
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        rtype: &str,
        rid: &str,
        tags: &[Tag],
    ) -> Result<()> {
        for t in tags {
            sql::query(
                "INSERT INTO tags (account, region, resource_type, resource_id, tag_key, tag_value) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (account, region, resource_type, resource_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(account)
            .bind(region)
            .bind(rtype)
            .bind(rid)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Removes every tag of a resource (when the resource is deleted).
    pub(crate) async fn drop_tags(tx: &mut Tx<'_>, account: &str, region: &str, rtype: &str, rid: &str) -> Result<()> {
        sql::query("DELETE FROM tags WHERE account = $1 AND region = $2 AND resource_type = $3 AND resource_id = $4")
            .bind(account)
            .bind(region)
            .bind(rtype)
            .bind(rid)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}
