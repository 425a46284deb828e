//! Documents, their versions, sharing permissions and review history.

use crate::sql::{self, Row, Tx, transaction};
use crate::{Result, Store, StoreError, opt_str, timed};
use std::sync::LazyLock;

/// A document: what is common to all its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Name.
    pub name: String,
    /// DocumentType.
    pub doc_type: String,
    /// TargetType.
    pub target_type: Option<String>,
    /// The default version number.
    pub default_version: i64,
    /// The latest version number.
    pub latest_version: i64,
    /// When the document was created.
    pub created_ms: i64,
}

/// One version of a document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionRow {
    /// The version number (1, 2, ...).
    pub version: i64,
    /// The optional VersionName.
    pub version_name: Option<String>,
    /// The content exactly as written.
    pub content: String,
    /// The format it was written in (JSON, YAML, TEXT).
    pub format: String,
    /// SHA-256 of the content.
    pub hash: String,
    /// The schemaVersion.
    pub schema_version: Option<String>,
    /// The document's description.
    pub description: Option<String>,
    /// Declared parameters, as JSON (a list of DocumentParameter objects).
    pub parameters: String,
    /// PlatformTypes, as a JSON list.
    pub platform_types: String,
    /// Requires, as JSON.
    pub requires: Option<String>,
    /// Attachments information, as JSON.
    pub attachments: Option<String>,
    /// DisplayName.
    pub display_name: Option<String>,
    /// ReviewStatus (change templates).
    pub review_status: Option<String>,
    /// When this version was created.
    pub created_ms: i64,
}

/// One account (or `All`) a document is shared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    /// The account id, or `All`.
    pub shared_with: String,
    /// The version shared (a number or `$DEFAULT`/`$LATEST`).
    pub shared_version: String,
}

/// One review action on a document version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    /// Version reviewed.
    pub version: i64,
    /// Order of the action.
    pub seq: i64,
    /// Who acted.
    pub reviewer: String,
    /// The resulting ReviewStatus.
    pub status: String,
    /// The comment, if any.
    pub comment: Option<String>,
    /// When.
    pub created_ms: i64,
}

const VERSION_COLS: &str = "version, version_name, content, format, hash, schema_version, description, parameters, platform_types, requires, attachments, display_name, review_status, created_ms";
const DOC_COLS: &str = "account, region, name, doc_type, target_type, default_version, latest_version, created_ms";

static D_COLS: LazyLock<String> = LazyLock::new(|| prefixed("d", DOC_COLS));
/// Version columns in joins are renamed `v_*`, since documents share some column names.
static V_COLS: LazyLock<String> =
    LazyLock::new(|| VERSION_COLS.split(", ").map(|c| format!("v.{c} AS v_{c}")).collect::<Vec<_>>().join(", "));

/// Version columns for listings: everything but the content, which listings never show.
static V_COLS_NO_CONTENT: LazyLock<String> = LazyLock::new(|| {
    VERSION_COLS
        .split(", ")
        .map(|c| if c == "content" { "'' AS v_content".to_string() } else { format!("v.{c} AS v_{c}") })
        .collect::<Vec<_>>()
        .join(", ")
});

static DOC_WITH_VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {}, v.name AS vname FROM documents d LEFT JOIN document_versions v \
         ON v.account = d.account AND v.region = d.region AND v.name = d.name AND v.version = COALESCE($1, d.default_version) \
         WHERE d.account = $2 AND d.region = $3 AND d.name = $4",
        *D_COLS, *V_COLS
    )
});

fn prefixed(alias: &str, cols: &str) -> String {
    cols.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

fn doc_from(r: &Row) -> Result<DocumentRow> {
    Ok(DocumentRow {
        account: r.get("account")?,
        region: r.get("region")?,
        name: r.get("name")?,
        doc_type: r.get("doc_type")?,
        target_type: opt_str(r, "target_type")?,
        default_version: r.get("default_version")?,
        latest_version: r.get("latest_version")?,
        created_ms: r.get("created_ms")?,
    })
}

fn version_from(r: &Row) -> Result<VersionRow> {
    version_cols(r, "")
}

fn joined_version(r: &Row) -> Result<VersionRow> {
    version_cols(r, "v_")
}

fn version_cols(r: &Row, p: &str) -> Result<VersionRow> {
    Ok(VersionRow {
        version: r.get_prefixed(p, "version")?,
        version_name: r.get_prefixed(p, "version_name")?,
        content: r.get_prefixed(p, "content")?,
        format: r.get_prefixed(p, "format")?,
        hash: r.get_prefixed(p, "hash")?,
        schema_version: r.get_prefixed(p, "schema_version")?,
        description: r.get_prefixed(p, "description")?,
        parameters: r.get_prefixed(p, "parameters")?,
        platform_types: r.get_prefixed(p, "platform_types")?,
        requires: r.get_prefixed(p, "requires")?,
        attachments: r.get_prefixed(p, "attachments")?,
        display_name: r.get_prefixed(p, "display_name")?,
        review_status: r.get_prefixed(p, "review_status")?,
        created_ms: r.get_prefixed(p, "created_ms")?,
    })
}

async fn insert_version(tx: &mut Tx<'_>, account: &str, region: &str, name: &str, v: &VersionRow) -> Result<()> {
    sql::query(
        "INSERT INTO document_versions (account, region, name, version, version_name, content, format, hash, schema_version, description, \
         parameters, platform_types, requires, attachments, display_name, review_status, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(account)
    .bind(region)
    .bind(name)
    .bind(v.version)
    .bind(&v.version_name)
    .bind(&v.content)
    .bind(&v.format)
    .bind(&v.hash)
    .bind(&v.schema_version)
    .bind(&v.description)
    .bind(&v.parameters)
    .bind(&v.platform_types)
    .bind(&v.requires)
    .bind(&v.attachments)
    .bind(&v.display_name)
    .bind(&v.review_status)
    .bind(v.created_ms)
    .execute(&mut *tx)
    .await
    ?;
    Ok(())
}

impl Store {
    /// Creates a document with its first version; `Conflict` if the name is taken.
    /// The document, its first version and its tags are written in one transaction.
    pub async fn create_document(&self, doc: &DocumentRow, v: &VersionRow, tags: &[crate::Tag]) -> Result<()> {
        timed("create_document", async {
            transaction!(self.db, |tx| {
                sql::query(format!("INSERT INTO documents ({DOC_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                    .bind(&doc.account)
                    .bind(&doc.region)
                    .bind(&doc.name)
                    .bind(&doc.doc_type)
                    .bind(&doc.target_type)
                    .bind(doc.default_version)
                    .bind(doc.latest_version)
                    .bind(doc.created_ms)
                    .execute(&mut *tx)
                    .await?;
                insert_version(tx, &doc.account, &doc.region, &doc.name, v).await?;
                tx.notify(doc_topic(&doc.account, &doc.region, &doc.name));
                Store::upsert_tags(tx, &doc.account, &doc.region, "Document", &doc.name, tags).await
            })?;
            Ok(())
        })
        .await
    }

    /// A document by name.
    pub async fn document(&self, account: &str, region: &str, name: &str) -> Result<Option<DocumentRow>> {
        timed("document", async {
            let row = sql::query(format!(
                "SELECT {DOC_COLS} FROM documents WHERE account = $1 AND region = $2 AND name = $3"
            ))
            .bind(account)
            .bind(region)
            .bind(name)
            .fetch_optional(&self.db)
            .await?;
            row.as_ref().map(doc_from).transpose()
        })
        .await
    }

    /// One version by number.
    pub async fn document_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<VersionRow>> {
        timed("document_version", async {
            let row = sql::query(format!(
                "SELECT {VERSION_COLS} FROM document_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4"
            ))
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(version)
            .fetch_optional(&self.db)
            .await?;
            row.as_ref().map(version_from).transpose()
        })
        .await
    }

    /// The document and one of its versions in one query: `version` None means the default.
    pub async fn document_with_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<(DocumentRow, Option<VersionRow>)>> {
        // On PostgreSQL, other replicas' writes reach the cache through the bus: it is used only
        // while their notifications are being received.
        let cache = Some(&self.doc_cache).filter(|_| self.db.bus().healthy());
        if let Some(cache) = cache
            && let Some(hit) = cache.get(account, region, name, version)
        {
            return Ok(hit);
        }
        let seen = cache.map(|c| c.generation());
        let found: Option<(DocumentRow, Option<VersionRow>)> = timed("document_with_version", async {
            let row = sql::query(DOC_WITH_VERSION.as_str())
                .bind(version)
                .bind(account)
                .bind(region)
                .bind(name)
                .fetch_optional(&self.db)
                .await?;
            let Some(r) = row else { return Ok::<_, StoreError>(None) };
            let doc = doc_from(&r)?;
            let has_version = opt_str(&r, "vname")?.is_some();
            Ok(Some((doc, if has_version { Some(joined_version(&r)?) } else { None })))
        })
        .await?;
        if let (Some(cache), Some(seen)) = (cache, seen) {
            cache.put(seen, account, region, name, version, found.clone());
        }
        Ok(found)
    }

    /// The version with this VersionName.
    pub async fn document_version_named(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version_name: &str,
    ) -> Result<Option<VersionRow>> {
        let row = sql::query(format!(
            "SELECT {VERSION_COLS} FROM document_versions WHERE account = $1 AND region = $2 AND name = $3 AND version_name = $4"
        ))
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(version_name)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(version_from).transpose()
    }

    /// The number of a version whose content hash is `hash`, if any.
    pub async fn document_version_with_hash(
        &self,
        account: &str,
        region: &str,
        name: &str,
        hash: &str,
    ) -> Result<Option<i64>> {
        sql::query(
            "SELECT version FROM document_versions WHERE account = $1 AND region = $2 AND name = $3 AND hash = $4",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(hash)
        .scalar_opt(&self.db)
        .await
    }

    /// Adds version `v.version`, which must be `expected_latest + 1`; `Conflict` if another
    /// update got there first or the VersionName is taken. A target type, if given, is updated.
    pub async fn add_document_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        v: &VersionRow,
        expected_latest: i64,
        target_type: Option<&str>,
    ) -> Result<()> {
        timed("add_document_version", async {
            transaction!(self.db, |tx| {
                let r = sql::query(
                    "UPDATE documents SET latest_version = $1, target_type = COALESCE($2, target_type) \
                 WHERE account = $3 AND region = $4 AND name = $5 AND latest_version = $6",
                )
                .bind(v.version)
                .bind(target_type)
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(expected_latest)
                .execute(&mut *tx)
                .await?;
                if r != 1 {
                    return Err(StoreError::Conflict);
                }
                tx.notify(doc_topic(account, region, name));
                insert_version(tx, account, region, name, v).await
            })?;
            Ok(())
        })
        .await
    }

    /// Sets the default version; false if the document does not exist.
    pub async fn set_default_document_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: i64,
    ) -> Result<bool> {
        let r = transaction!(self.db, |tx| {
            tx.notify(doc_topic(account, region, name));
            sql::query("UPDATE documents SET default_version = $1 WHERE account = $2 AND region = $3 AND name = $4")
                .bind(version)
                .bind(account)
                .bind(region)
                .bind(name)
                .execute(&mut *tx)
                .await
        })?;
        Ok(r == 1)
    }

    /// Versions in ascending order after `after`, at most `limit`.
    pub async fn document_versions(
        &self,
        account: &str,
        region: &str,
        name: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<VersionRow>> {
        let rows = sql::query(format!(
            "SELECT {VERSION_COLS} FROM document_versions WHERE account = $1 AND region = $2 AND name = $3 AND version > $4 ORDER BY version LIMIT $5"
        ))
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(version_from).collect()
    }

    /// Documents of an account ordered by name, after `after`, each with its default version
    /// (without its content).
    pub async fn documents_page(
        &self,
        account: &str,
        region: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(DocumentRow, VersionRow)>> {
        timed("documents_page", async {
            let (dcols, cols) = (&*D_COLS, &*V_COLS_NO_CONTENT);
            let rows = sql::query(format!(
                "SELECT {dcols}, {cols} FROM documents d JOIN document_versions v \
                 ON v.account = d.account AND v.region = d.region AND v.name = d.name AND v.version = d.default_version \
                 WHERE d.account = $1 AND d.region = $2 AND d.name > $3 ORDER BY d.name LIMIT $4"
            ))
            .bind(account)
            .bind(region)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
            rows.iter().map(|r| Ok((doc_from(r)?, joined_version(r)?))).collect()
        })
        .await
    }

    /// Number of documents an account holds in a region.
    pub async fn document_count(&self, account: &str, region: &str) -> Result<i64> {
        sql::query("SELECT COUNT(*) FROM documents WHERE account = $1 AND region = $2")
            .bind(account)
            .bind(region)
            .scalar(&self.db)
            .await
    }

    /// Deletes a whole document with its versions, shares, reviews and tags.
    pub async fn delete_document(&self, account: &str, region: &str, name: &str) -> Result<bool> {
        timed("delete_document", async {
            let r = transaction!(self.db, |tx| {
                let r = sql::query("DELETE FROM documents WHERE account = $1 AND region = $2 AND name = $3")
                    .bind(account)
                    .bind(region)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                for table in ["document_versions", "document_shares", "document_reviews"] {
                    sql::query(format!("DELETE FROM {table} WHERE account = $1 AND region = $2 AND name = $3"))
                        .bind(account)
                        .bind(region)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                Store::drop_tags(tx, account, region, "Document", name).await?;
                tx.notify(doc_topic(account, region, name));
                Ok(r)
            })?;
            Ok(r > 0)
        })
        .await
    }

    /// Deletes one version (never the default: the caller checks, and the guard here makes a
    /// concurrent default change safe). Returns false if nothing was deleted.
    pub async fn delete_document_version(&self, account: &str, region: &str, name: &str, version: i64) -> Result<bool> {
        let r = transaction!(self.db, |tx| {
            let default: Option<i64> =
                sql::query("SELECT default_version FROM documents WHERE account = $1 AND region = $2 AND name = $3")
                    .bind(account)
                    .bind(region)
                    .bind(name)
                    .scalar_opt(&mut *tx)
                    .await?;
            if default.is_none() || default == Some(version) {
                return Ok(0);
            }
            let r = sql::query(
                "DELETE FROM document_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
            )
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            // Deleting the latest version makes the newest remaining one the latest.
            sql::query(
                "UPDATE documents SET latest_version = (SELECT MAX(version) FROM document_versions v \
             WHERE v.account = documents.account AND v.region = documents.region AND v.name = documents.name) \
             WHERE account = $1 AND region = $2 AND name = $3",
            )
            .bind(account)
            .bind(region)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            tx.notify(doc_topic(account, region, name));
            Ok(r)
        })?;
        Ok(r > 0)
    }

    /// The accounts a document is shared with.
    pub async fn document_shares(&self, account: &str, region: &str, name: &str) -> Result<Vec<ShareRow>> {
        let rows = sql::query("SELECT shared_with, shared_version FROM document_shares WHERE account = $1 AND region = $2 AND name = $3 ORDER BY shared_with")
            .bind(account)
            .bind(region)
            .bind(name)
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Ok(ShareRow { shared_with: r.get("shared_with")?, shared_version: r.get("shared_version")? }))
            .collect()
    }

    /// Adds and removes shares in one transaction.
    pub async fn change_document_shares(
        &self,
        account: &str,
        region: &str,
        name: &str,
        add: &[ShareRow],
        remove: &[String],
    ) -> Result<()> {
        transaction!(self.db, |tx| {
            for s in add {
                sql::query(
                "INSERT INTO document_shares (account, region, name, shared_with, shared_version) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account, region, name, shared_with) DO UPDATE SET shared_version = excluded.shared_version",
            )
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(&s.shared_with)
            .bind(&s.shared_version)
            .execute(&mut *tx)
            .await?;
            }
            for who in remove {
                sql::query(
                    "DELETE FROM document_shares WHERE account = $1 AND region = $2 AND name = $3 AND shared_with = $4",
                )
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(who)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    /// The share, if any, that gives `reader` access to another account's document.
    pub async fn share_for(&self, owner: &str, region: &str, name: &str, reader: &str) -> Result<Option<ShareRow>> {
        let row = sql::query(
            "SELECT shared_with, shared_version FROM document_shares WHERE account = $1 AND region = $2 AND name = $3 \
             AND (shared_with = $4 OR shared_with = 'All') ORDER BY CASE WHEN shared_with = 'All' THEN 1 ELSE 0 END LIMIT 1",
        )
        .bind(owner)
        .bind(region)
        .bind(name)
        .bind(reader)
        .fetch_optional(&self.db)
        .await?;
        Ok(match row {
            Some(r) => Some(ShareRow { shared_with: r.get("shared_with")?, shared_version: r.get("shared_version")? }),
            None => None,
        })
    }

    /// Documents other accounts share with `reader` (or with All), by name, each with its
    /// default version.
    pub async fn documents_shared_with(&self, reader: &str, region: &str) -> Result<Vec<(DocumentRow, VersionRow)>> {
        let (dcols, cols) = (&*D_COLS, &*V_COLS);
        let rows = sql::query(format!(
            "SELECT DISTINCT {dcols}, {cols} FROM document_shares s \
             JOIN documents d ON d.account = s.account AND d.region = s.region AND d.name = s.name \
             JOIN document_versions v ON v.account = d.account AND v.region = d.region AND v.name = d.name AND v.version = d.default_version \
             WHERE (s.shared_with = $1 OR s.shared_with = 'All') AND s.region = $2 AND s.account <> $3 ORDER BY d.name"
        ))
        .bind(reader)
        .bind(region)
        .bind(reader)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(|r| Ok((doc_from(r)?, joined_version(r)?))).collect()
    }

    /// Records a review action and sets the version's ReviewStatus.
    pub async fn add_document_review(&self, account: &str, region: &str, name: &str, review: &ReviewRow) -> Result<()> {
        transaction!(self.db, |tx| {
            let seq: i64 = sql::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM document_reviews WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(review.version)
        .scalar(&mut *tx)
        .await?;
            sql::query(
            "INSERT INTO document_reviews (account, region, name, version, seq, reviewer, status, comment, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(review.version)
        .bind(seq)
        .bind(&review.reviewer)
        .bind(&review.status)
        .bind(&review.comment)
        .bind(review.created_ms)
        .execute(&mut *tx)
        .await?;
            sql::query("UPDATE document_versions SET review_status = $1 WHERE account = $2 AND region = $3 AND name = $4 AND version = $5")
            .bind(&review.status)
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(review.version)
            .execute(&mut *tx)
            .await?;
            tx.notify(doc_topic(account, region, name));
            Ok(())
        })?;
        Ok(())
    }

    /// Review actions on a version, oldest first, after `after_seq`.
    pub async fn document_reviews(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ReviewRow>> {
        let rows = sql::query(
            "SELECT version, seq, reviewer, status, comment, created_ms FROM document_reviews \
             WHERE account = $1 AND region = $2 AND name = $3 AND version = $4 AND seq > $5 ORDER BY seq LIMIT $6",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(version)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReviewRow {
                    version: r.get("version")?,
                    seq: r.get("seq")?,
                    reviewer: r.get("reviewer")?,
                    status: r.get("status")?,
                    comment: opt_str(r, "comment")?,
                    created_ms: r.get("created_ms")?,
                })
            })
            .collect()
    }
}

/// The wake-up topic of a document's writes (`doc:ACCOUNT/REGION/NAME`): it drops the document
/// from every replica's cache.
pub(crate) fn doc_topic(account: &str, region: &str, name: &str) -> String {
    format!("doc:{account}/{region}/{name}")
}
