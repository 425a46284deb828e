//! Managed nodes (hybrid, `mi-...`): registration with an activation, their RSA public keys,
//! the temporary credentials issued to them, what their agents report, and deregistration.
//!
//! Guarantees:
//! * a registration counts against the activation and writes the node and its tags (copied from
//!   the activation, under resource type `ManagedInstance`) in one transaction: a refused
//!   registration writes nothing, and the activation's limit holds across replicas;
//! * a node is looked up by its id alone (ids are globally unique): the node-facing calls name
//!   no account;
//! * a deregistered node keeps its row (marked `deregistered_ms`), so later calls can be told
//!   apart from calls by ids never issued, but it loses its tags and every access key issued to
//!   it, in the deregistration's transaction;
//! * issuing credentials and deregistering serialise on the node's row: issuing first updates the
//!   row guarded by "not deregistered" (which waits for, then re-checks after, a concurrent
//!   deregistration), so no key survives the deregistration of its node.

use crate::sql::{self, Row, transaction};
use crate::{AccessKey, ActivationUse, Result, Store, timed};

/// The resource type a managed node's tags are stored under (the model's
/// `ResourceTypeForTagging` value).
pub const NODE_TAGS: &str = "ManagedInstance";

/// A node to register.
#[derive(Debug, Clone)]
pub struct NewNode {
    /// The new `mi-...` id.
    pub id: String,
    /// The activation it registers with.
    pub activation_id: String,
    /// SHA-256 (lower-case hex) of the activation code it sent.
    pub code_sha256: String,
    /// base64 DER public key.
    pub public_key: String,
    /// `PublicKeyType` (`Rsa`).
    pub public_key_type: String,
    /// The agent's machine fingerprint.
    pub fingerprint: String,
}

/// A stored managed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The `mi-...` id.
    pub id: String,
    /// The account (the activation's).
    pub account: String,
    /// The region (the activation's).
    pub region: String,
    /// The activation it registered with.
    pub activation_id: String,
    /// base64 DER public key.
    pub public_key: String,
    /// `PublicKeyType`.
    pub public_key_type: String,
    /// The agent's machine fingerprint.
    pub fingerprint: String,
    /// The activation's `DefaultInstanceName`.
    pub name: Option<String>,
    /// The activation's `IamRole`.
    pub iam_role: String,
    /// When it registered (epoch ms).
    pub registered_ms: i64,
    /// When its public key last changed (epoch ms).
    pub key_updated_ms: i64,
    /// When credentials were last issued to it.
    pub token_ms: Option<i64>,
    /// When it was deregistered; `None` while registered.
    pub deregistered_ms: Option<i64>,
    /// What its agent last reported.
    pub info: NodeInfo,
    /// When its agent last reported (`UpdateInstanceInformation`).
    pub last_ping_ms: Option<i64>,
}

/// What an agent reports with `UpdateInstanceInformation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `AgentName`.
    pub agent_name: Option<String>,
    /// `AgentVersion`.
    pub agent_version: Option<String>,
    /// `PlatformType`.
    pub platform_type: Option<String>,
    /// `PlatformName`.
    pub platform_name: Option<String>,
    /// `PlatformVersion`.
    pub platform_version: Option<String>,
    /// `IPAddress`.
    pub ip_address: Option<String>,
    /// `ComputerName`.
    pub computer_name: Option<String>,
}

/// What came of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRegistration {
    /// The node was registered.
    Registered(Box<NodeRow>),
    /// The activation refused it (never `ActivationUse::Registered`).
    Refused(ActivationUse),
}

const COLUMNS: &str = "id, account, region, activation_id, public_key, public_key_type, fingerprint, name, iam_role, \
                       registered_ms, key_updated_ms, token_ms, deregistered_ms, agent_name, agent_version, \
                       platform_type, platform_name, platform_version, ip_address, computer_name, last_ping_ms";

fn row(r: &Row) -> Result<NodeRow> {
    Ok(NodeRow {
        id: r.get("id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        activation_id: r.get("activation_id")?,
        public_key: r.get("public_key")?,
        public_key_type: r.get("public_key_type")?,
        fingerprint: r.get("fingerprint")?,
        name: r.get("name")?,
        iam_role: r.get("iam_role")?,
        registered_ms: r.get("registered_ms")?,
        key_updated_ms: r.get("key_updated_ms")?,
        token_ms: r.get("token_ms")?,
        deregistered_ms: r.get("deregistered_ms")?,
        info: NodeInfo {
            agent_name: r.get("agent_name")?,
            agent_version: r.get("agent_version")?,
            platform_type: r.get("platform_type")?,
            platform_name: r.get("platform_name")?,
            platform_version: r.get("platform_version")?,
            ip_address: r.get("ip_address")?,
            computer_name: r.get("computer_name")?,
        },
        last_ping_ms: r.get("last_ping_ms")?,
    })
}

impl Store {
    /// Registers a node with an activation at `now_ms`: counts the registration, inserts the node
    /// (account, region, name and IAM role from the activation) and copies the activation's tags
    /// to it, in one transaction. `Conflict` if the node id exists (nothing is written).
    pub async fn register_node(&self, n: &NewNode, now_ms: i64) -> Result<NodeRegistration> {
        timed("register_node", async {
            transaction!(self.db, |tx| {
                let a = match Store::consume_activation_in(tx, &n.activation_id, &n.code_sha256, now_ms).await? {
                    ActivationUse::Registered(a) => a,
                    refused => return Ok(NodeRegistration::Refused(refused)),
                };
                sql::query(
                    "INSERT INTO managed_instances (id, account, region, activation_id, public_key, public_key_type, \
                 fingerprint, name, iam_role, registered_ms, key_updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
                )
                .bind(&n.id)
                .bind(&a.account)
                .bind(&a.region)
                .bind(&a.id)
                .bind(&n.public_key)
                .bind(&n.public_key_type)
                .bind(&n.fingerprint)
                .bind(&a.default_instance_name)
                .bind(&a.iam_role)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                sql::query(
                    "INSERT INTO tags (account, region, resource_type, resource_id, tag_key, tag_value) \
                 SELECT account, region, $1, $2, tag_key, tag_value FROM tags \
                 WHERE account = $3 AND region = $4 AND resource_type = $5 AND resource_id = $6",
                )
                .bind(NODE_TAGS)
                .bind(&n.id)
                .bind(&a.account)
                .bind(&a.region)
                .bind(crate::ACTIVATION_TAGS)
                .bind(&a.id)
                .execute(&mut *tx)
                .await?;
                let node = sql::query(format!("SELECT {COLUMNS} FROM managed_instances WHERE id = $1"))
                    .bind(&n.id)
                    .fetch_one(&mut *tx)
                    .await?;
                Ok(NodeRegistration::Registered(Box::new(row(&node)?)))
            })
        })
        .await
    }

    /// The registered (not deregistered) nodes of an account and region, oldest first.
    pub async fn nodes(&self, account: &str, region: &str) -> Result<Vec<NodeRow>> {
        timed("nodes", async {
            sql::query(format!(
                "SELECT {COLUMNS} FROM managed_instances WHERE account = $1 AND region = $2 AND deregistered_ms IS NULL \
                 ORDER BY registered_ms, id"
            ))
            .bind(account)
            .bind(region)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(row)
            .collect()
        })
        .await
    }

    /// A node by id (registered or deregistered), in any account.
    pub async fn node(&self, id: &str) -> Result<Option<NodeRow>> {
        timed("node", async {
            sql::query(format!("SELECT {COLUMNS} FROM managed_instances WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.db)
                .await?
                .as_ref()
                .map(row)
                .transpose()
        })
        .await
    }

    /// Issues temporary credentials to a registered node: records the time, deletes its keys
    /// that expired by `now_ms` and inserts `key` (whose `node_id` must be `id`), in one
    /// transaction. False (nothing written) if the node is unknown or deregistered.
    pub async fn issue_node_key(&self, id: &str, key: &AccessKey, now_ms: i64) -> Result<bool> {
        timed("issue_node_key", async {
            transaction!(self.db, |tx| {
                let n =
                    sql::query("UPDATE managed_instances SET token_ms = $1 WHERE id = $2 AND deregistered_ms IS NULL")
                        .bind(now_ms)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                if n == 0 {
                    return Ok(false);
                }
                sql::query("DELETE FROM access_keys WHERE node_id = $1 AND expires_ms <= $2")
                    .bind(id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                sql::query(
                    "INSERT INTO access_keys (access_key_id, secret_access_key, account, session_token, expires_ms, \
                 created_ms, user_name, node_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&key.access_key_id)
                .bind(&key.secret_access_key)
                .bind(&key.account)
                .bind(&key.session_token)
                .bind(key.expires_ms)
                .bind(now_ms)
                .bind(&key.user_name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Ok(true)
            })
        })
        .await
    }

    /// Replaces a registered node's public key; false if it is unknown or deregistered.
    pub async fn update_node_key(&self, id: &str, public_key: &str, key_type: &str, now_ms: i64) -> Result<bool> {
        timed("update_node_key", async {
            let n = sql::query(
                "UPDATE managed_instances SET public_key = $1, public_key_type = $2, key_updated_ms = $3 \
                 WHERE id = $4 AND deregistered_ms IS NULL",
            )
            .bind(public_key)
            .bind(key_type)
            .bind(now_ms)
            .bind(id)
            .execute(&self.db)
            .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Records what a registered node's agent reports and when; false if it is unknown or
    /// deregistered.
    pub async fn update_node_info(&self, id: &str, info: &NodeInfo, now_ms: i64) -> Result<bool> {
        timed("update_node_info", async {
            let n = sql::query(
                "UPDATE managed_instances SET agent_name = $1, agent_version = $2, platform_type = $3, \
                 platform_name = $4, platform_version = $5, ip_address = $6, computer_name = $7, last_ping_ms = $8 \
                 WHERE id = $9 AND deregistered_ms IS NULL",
            )
            .bind(&info.agent_name)
            .bind(&info.agent_version)
            .bind(&info.platform_type)
            .bind(&info.platform_name)
            .bind(&info.platform_version)
            .bind(&info.ip_address)
            .bind(&info.computer_name)
            .bind(now_ms)
            .bind(id)
            .execute(&self.db)
            .await?;
            Ok(n > 0)
        })
        .await
    }

    /// Deregisters a node of the account and region: marks it, and deletes its tags and every
    /// access key issued to it, in one transaction. False if there is no such registered node.
    pub async fn deregister_node(&self, account: &str, region: &str, id: &str, now_ms: i64) -> Result<bool> {
        timed("deregister_node", async {
            transaction!(self.db, |tx| {
                let n = sql::query(
                    "UPDATE managed_instances SET deregistered_ms = $1 \
                 WHERE id = $2 AND account = $3 AND region = $4 AND deregistered_ms IS NULL",
                )
                .bind(now_ms)
                .bind(id)
                .bind(account)
                .bind(region)
                .execute(&mut *tx)
                .await?;
                if n == 0 {
                    return Ok(false);
                }
                sql::query("DELETE FROM access_keys WHERE node_id = $1").bind(id).execute(&mut *tx).await?;
                Store::drop_tags(tx, account, region, NODE_TAGS, id).await?;
                Ok(true)
            })
        })
        .await
    }
}
