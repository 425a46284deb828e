//! Hybrid activations: the (id, code) pairs on-premises nodes register with. One row per
//! activation, scoped by (account, region) like every other row, but keyed by its UUID alone so
//! that the anonymous registration call (which names no account) can find it.
//!
//! Guarantees:
//! * the activation code is never stored, only its SHA-256 (hex); a registration is checked by
//!   hashing what the node sends and comparing hashes;
//! * `consume_activation` checks the code, the expiry and the registration limit and counts the
//!   registration in one guarded `UPDATE`, so concurrent registrations (across replicas too) never
//!   exceed `registration_limit`: of two racing for the last one, exactly one wins;
//! * an activation's tags live in the shared `tags` table under resource type `Activation`, written
//!   and deleted in the same transaction as the activation.

use crate::sql::{self, Tx, transaction};
use crate::{Result, Store, Tag, timed};

/// The resource type an activation's tags are stored under.
pub const ACTIVATION_TAGS: &str = "Activation";

/// A new activation to insert.
#[derive(Debug, Clone)]
pub struct NewActivation {
    /// The activation id (a UUID).
    pub id: String,
    /// The owning account.
    pub account: String,
    /// The owning region.
    pub region: String,
    /// SHA-256 (lower-case hex) of the activation code.
    pub code_sha256: String,
    /// `Description`, as given.
    pub description: Option<String>,
    /// `DefaultInstanceName`, as given.
    pub default_instance_name: Option<String>,
    /// `IamRole`, as given.
    pub iam_role: String,
    /// How many nodes may register with it.
    pub registration_limit: i64,
    /// When it stops accepting registrations (epoch ms).
    pub expires_ms: i64,
    /// When it was created (epoch ms).
    pub created_ms: i64,
    /// `RegistrationMetadata`, as JSON text (the API layer's encoding).
    pub registration_metadata: String,
    /// Tags, applied later to the nodes that register.
    pub tags: Vec<Tag>,
}

/// A stored activation (without its code hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    /// The activation id.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// The owning region.
    pub region: String,
    /// `Description`.
    pub description: Option<String>,
    /// `DefaultInstanceName`.
    pub default_instance_name: Option<String>,
    /// `IamRole`.
    pub iam_role: String,
    /// How many nodes may register with it.
    pub registration_limit: i64,
    /// How many have.
    pub registrations_count: i64,
    /// When it stops accepting registrations (epoch ms).
    pub expires_ms: i64,
    /// When it was created (epoch ms).
    pub created_ms: i64,
    /// `RegistrationMetadata`, as JSON text.
    pub registration_metadata: String,
}

/// Filters for listing activations; an empty list means no filter on that column, several values
/// match any of them.
#[derive(Debug, Clone, Default)]
pub struct ActivationFilter {
    /// Activation ids.
    pub ids: Vec<String>,
    /// Exact default instance names.
    pub default_instance_names: Vec<String>,
    /// Exact IAM roles.
    pub iam_roles: Vec<String>,
}

/// What came of an attempt to register with an activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationUse {
    /// The registration was counted; the activation as it is now (count included).
    Registered(ActivationRow),
    /// No activation has this id (never created, or deleted).
    Unknown,
    /// The code does not match the activation's.
    WrongCode,
    /// The activation expired (`now_ms >= expires_ms`).
    Expired,
    /// Every registration the activation allows has been used.
    Exhausted,
}

const COLUMNS: &str = "id, account, region, description, default_instance_name, iam_role, registration_limit, \
                       registrations_count, expires_ms, created_ms, registration_metadata";

fn row(r: &sql::Row) -> Result<ActivationRow> {
    Ok(ActivationRow {
        id: r.get("id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        description: r.get("description")?,
        default_instance_name: r.get("default_instance_name")?,
        iam_role: r.get("iam_role")?,
        registration_limit: r.get("registration_limit")?,
        registrations_count: r.get("registrations_count")?,
        expires_ms: r.get("expires_ms")?,
        created_ms: r.get("created_ms")?,
        registration_metadata: r.get("registration_metadata")?,
    })
}

impl Store {
    /// Inserts an activation and its tags in one transaction; `Conflict` if the id exists.
    pub async fn create_activation(&self, a: &NewActivation) -> Result<()> {
        timed("create_activation", async {
            transaction!(self.db, |tx| {
            sql::query(
                "INSERT INTO activations (id, account, region, code_sha256, description, default_instance_name, iam_role, \
                 registration_limit, registrations_count, expires_ms, created_ms, registration_metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
            )
            .bind(&a.id)
            .bind(&a.account)
            .bind(&a.region)
            .bind(&a.code_sha256)
            .bind(&a.description)
            .bind(&a.default_instance_name)
            .bind(&a.iam_role)
            .bind(a.registration_limit)
            .bind(a.expires_ms)
            .bind(a.created_ms)
            .bind(&a.registration_metadata)
            .execute(&mut *tx)
            .await?;
            Store::upsert_tags(tx, &a.account, &a.region, ACTIVATION_TAGS, &a.id, &a.tags).await
            })
        })
        .await
    }

    /// One activation of the account and region.
    pub async fn activation(&self, account: &str, region: &str, id: &str) -> Result<Option<ActivationRow>> {
        timed("activation", async {
            sql::query(format!("SELECT {COLUMNS} FROM activations WHERE id = $1 AND account = $2 AND region = $3"))
                .bind(id)
                .bind(account)
                .bind(region)
                .fetch_optional(&self.db)
                .await?
                .as_ref()
                .map(row)
                .transpose()
        })
        .await
    }

    /// Activations of the account and region in creation order (ties by id), after the
    /// activation `after` = (created time, id), so that pages stay stable while activations are
    /// created and deleted.
    pub async fn activations_page(
        &self,
        account: &str,
        region: &str,
        f: &ActivationFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ActivationRow>> {
        timed("activations_page", async {
            let mut w = sql::Where::new();
            w.and("account = ?1 AND region = ?2", [account.into(), region.into()]);
            w.any_of("id", &f.ids)
                .any_of("default_instance_name", &f.default_instance_names)
                .any_of("iam_role", &f.iam_roles);
            if let Some((t, id)) = after {
                w.and("created_ms >= ?1 AND (created_ms > ?1 OR id > ?2)", [t.into(), id.into()]);
            }
            let q = w.query(&format!("SELECT {COLUMNS} FROM activations"), "ORDER BY created_ms, id", limit);
            q.fetch_all(&self.db).await?.iter().map(row).collect()
        })
        .await
    }

    /// Deletes an activation of the account and region and its tags; false if there was none.
    /// Nodes that registered with it stay registered.
    pub async fn delete_activation(&self, account: &str, region: &str, id: &str) -> Result<bool> {
        timed("delete_activation", async {
            transaction!(self.db, |tx| {
                let n = sql::query("DELETE FROM activations WHERE id = $1 AND account = $2 AND region = $3")
                    .bind(id)
                    .bind(account)
                    .bind(region)
                    .execute(&mut *tx)
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                Store::drop_tags(tx, account, region, ACTIVATION_TAGS, id).await?;
                Ok(true)
            })
        })
        .await
    }

    /// Counts one registration with activation `id` if `code_sha256` is its code's hash, it has
    /// not expired at `now_ms` and it has registrations left — in one transaction. The activation
    /// is looked up by id alone: the registration call is anonymous, and the activation says
    /// which account and region the node joins.
    pub async fn consume_activation(&self, id: &str, code_sha256: &str, now_ms: i64) -> Result<ActivationUse> {
        timed("consume_activation", async {
            transaction!(self.db, |tx| { Store::consume_activation_in(tx, id, code_sha256, now_ms).await })
        })
        .await
    }

    /// `consume_activation` inside a caller's transaction, so that a registration can count
    /// against the activation and write the node together (a refusal writes nothing).
    pub async fn consume_activation_in(
        tx: &mut Tx<'_>,
        id: &str,
        code_sha256: &str,
        now_ms: i64,
    ) -> Result<ActivationUse> {
        // One guarded UPDATE: on PostgreSQL a concurrent consumer blocks on the row lock and then
        // re-checks the guard against the committed count, so two racing for the last
        // registration cannot both pass it. (SQLite has one writer.)
        let updated = sql::query(format!(
            "UPDATE activations SET registrations_count = registrations_count + 1 \
             WHERE id = $1 AND code_sha256 = $2 AND expires_ms > $3 AND registrations_count < registration_limit \
             RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(code_sha256)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = updated {
            return Ok(ActivationUse::Registered(row(&r)?));
        }
        // Refused: say why. The code is checked before anything else is disclosed.
        let current = sql::query(
            "SELECT code_sha256, expires_ms, registrations_count, registration_limit FROM activations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = current else { return Ok(ActivationUse::Unknown) };
        if r.get::<String>("code_sha256")? != code_sha256 {
            return Ok(ActivationUse::WrongCode);
        }
        if r.get::<i64>("expires_ms")? <= now_ms {
            return Ok(ActivationUse::Expired);
        }
        // Only the count can have stood in the way (the code and expiry never change).
        Ok(ActivationUse::Exhausted)
    }
}
