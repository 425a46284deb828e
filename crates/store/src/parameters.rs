//! Parameter Store: parameters, every version of each, and version labels.
//!
//! * `parameters` holds one row per parameter: a full copy of its latest version (so that
//!   GetParameter and DescribeParameters read one row) plus `parent`, the path one level up
//!   (`/a/b` for `/a/b/c`, `/` for `/a` and for names outside any hierarchy), which serves
//!   GetParametersByPath without recursion.
//! * `parameter_versions` holds every version kept (at most the caller's limit; the oldest
//!   unlabelled one makes room). A SecureString's `value` is whatever the caller stored (the api
//!   stores an envelope encrypted under a key the database never sees).
//! * `parameter_labels` maps (parameter, label) to one version: a label moves when it is given to
//!   another version.
//! * Writes are guarded by the version the caller read (`expect`), so two concurrent
//!   overwrites never both become version n+1; a sequential writer never meets a conflict.

use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, Tag, timed};

/// The tag resource type of parameters.
pub const PARAMETER_TAGS: &str = "Parameter";
/// The job kind that deletes parameters at their Expiration policy's time (key
/// `account/region/name`).
pub const PARAMETER_EXPIRE_JOB: &str = "parameter-expire";

/// One version of a parameter (or the latest, from `parameters`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParameterRow {
    pub account: String,
    pub region: String,
    pub name: String,
    pub version: i64,
    /// `String`, `StringList` or `SecureString` (the api's enum, as text).
    pub ptype: String,
    /// The value (a SecureString's is the api's encrypted envelope).
    pub value: String,
    pub key_id: Option<String>,
    pub description: Option<String>,
    pub allowed_pattern: Option<String>,
    /// `Standard` or `Advanced`.
    pub tier: String,
    pub data_type: String,
    /// The policies as given (JSON text), if any.
    pub policies: Option<String>,
    pub modified_ms: i64,
    pub modified_user: String,
    /// Labels on this version (filled by history reads only).
    pub labels: Vec<String>,
}

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written as this version.
    Written(i64),
    /// The parameter exists (a create) or moved since it was read (an overwrite): read again.
    Moved,
    /// The account holds as many parameters of the tier as it may.
    QuotaReached,
    /// The oldest of the versions kept has a label, so no room can be made.
    OldestLabelled,
}

/// What labelling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOutcome {
    /// Labels set on this version.
    Labelled(i64),
    NoParameter,
    NoVersion,
    /// The version would carry more labels than allowed.
    TooManyLabels,
}

/// How a name filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOp {
    Equals,
    BeginsWith,
    Contains,
}

/// One condition of a parameter listing (all conditions must hold; values of one are
/// alternatives).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamCond {
    Name(NameOp, Vec<String>),
    Type(Vec<String>),
    KeyId(Vec<String>),
    Tier(Vec<String>),
    DataType(Vec<String>),
    /// Under `path` (normalised, no trailing slash except `/` itself): one level or any depth.
    Path {
        path: String,
        recursive: bool,
    },
    /// A tag with this key and (if any values) one of these values.
    Tag {
        key: String,
        values: Vec<String>,
    },
    /// One of these labels is on some version.
    Label(Vec<String>),
}

const COLUMNS: &str = "account, region, name, version, ptype, value, key_id, description, allowed_pattern, tier, \
     data_type, policies, modified_ms, modified_user";

fn row(r: &sql::Row) -> Result<ParameterRow> {
    Ok(ParameterRow {
        account: r.get("account")?,
        region: r.get("region")?,
        name: r.get("name")?,
        version: r.get("version")?,
        ptype: r.get("ptype")?,
        value: r.get("value")?,
        key_id: r.get("key_id")?,
        description: r.get("description")?,
        allowed_pattern: r.get("allowed_pattern")?,
        tier: r.get("tier")?,
        data_type: r.get("data_type")?,
        policies: r.get("policies")?,
        modified_ms: r.get("modified_ms")?,
        modified_user: r.get("modified_user")?,
        labels: Vec::new(),
    })
}

/// The path one level above `name` (`/` for top-level and non-hierarchical names).
pub fn parent_path(name: &str) -> &str {
    match name.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &name[..i],
    }
}

fn quota_kind(tier: &str) -> String {
    format!("{PARAMETER_TAGS}/{tier}")
}

fn bind_row(q: sql::Query, p: &ParameterRow) -> sql::Query {
    q.bind(&p.account)
        .bind(&p.region)
        .bind(&p.name)
        .bind(p.version)
        .bind(&p.ptype)
        .bind(&p.value)
        .bind(&p.key_id)
        .bind(&p.description)
        .bind(&p.allowed_pattern)
        .bind(&p.tier)
        .bind(&p.data_type)
        .bind(&p.policies)
        .bind(p.modified_ms)
        .bind(&p.modified_user)
}

impl Store {
    /// Writes `p` as the next version of its parameter. `expect`: the version the caller read
    /// (`None`: the parameter must not exist; it is created as version 1 with `tags`).
    /// `p.version` is ignored. `quota`: the most parameters of `p.tier` an account and region may
    /// hold; `max_versions`: the most versions kept. `expire_ms`: when an Expiration policy
    /// deletes it (its expire job is planned in the same transaction).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_parameter(
        &self,
        p: &ParameterRow,
        expect: Option<(i64, &str)>,
        tags: &[Tag],
        quota: i64,
        max_versions: i64,
        expire_ms: Option<i64>,
    ) -> Result<PutOutcome> {
        timed("put_parameter", async {
            transaction!(self.db, |tx| {
                let mut p = p.clone();
                match expect {
                    None => {
                        p.version = 1;
                        let inserted = bind_row(
                            sql::query(format!(
                                "INSERT INTO parameters ({COLUMNS}, parent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                                 ON CONFLICT (account, region, name) DO NOTHING"
                            )),
                            &p,
                        )
                        .bind(parent_path(&p.name))
                        .execute(&mut *tx)
                        .await?;
                        if inserted == 0 {
                            return Ok(PutOutcome::Moved);
                        }
                        if !Store::take_quota(tx, &p.account, &p.region, &quota_kind(&p.tier), quota).await? {
                            tx.discard();
                            return Ok(PutOutcome::QuotaReached);
                        }
                        Store::upsert_tags(tx, &p.account, &p.region, PARAMETER_TAGS, &p.name, tags).await?;
                    }
                    Some((version, old_tier)) => {
                        p.version = version + 1;
                        let n = sql::query(
                            "UPDATE parameters SET version = $1, ptype = $2, value = $3, key_id = $4, description = $5, \
                             allowed_pattern = $6, tier = $7, data_type = $8, policies = $9, modified_ms = $10, modified_user = $11 \
                             WHERE account = $12 AND region = $13 AND name = $14 AND version = $15",
                        )
                        .bind(p.version)
                        .bind(&p.ptype)
                        .bind(&p.value)
                        .bind(&p.key_id)
                        .bind(&p.description)
                        .bind(&p.allowed_pattern)
                        .bind(&p.tier)
                        .bind(&p.data_type)
                        .bind(&p.policies)
                        .bind(p.modified_ms)
                        .bind(&p.modified_user)
                        .bind(&p.account)
                        .bind(&p.region)
                        .bind(&p.name)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                        if n == 0 {
                            return Ok(PutOutcome::Moved);
                        }
                        if old_tier != p.tier {
                            Store::release_quota(tx, &p.account, &p.region, &quota_kind(old_tier)).await?;
                            if !Store::take_quota(tx, &p.account, &p.region, &quota_kind(&p.tier), quota).await? {
                                tx.discard();
                                return Ok(PutOutcome::QuotaReached);
                            }
                        }
                        let kept: i64 = sql::query(
                            "SELECT COUNT(*) FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3",
                        )
                        .bind(&p.account)
                        .bind(&p.region)
                        .bind(&p.name)
                        .scalar(&mut *tx)
                        .await?;
                        if kept >= max_versions {
                            let oldest: i64 = sql::query(
                                "SELECT MIN(version) FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3",
                            )
                            .bind(&p.account)
                            .bind(&p.region)
                            .bind(&p.name)
                            .scalar(&mut *tx)
                            .await?;
                            let labelled = sql::query(
                                "SELECT label FROM parameter_labels WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
                            )
                            .bind(&p.account)
                            .bind(&p.region)
                            .bind(&p.name)
                            .bind(oldest)
                            .fetch_optional(&mut *tx)
                            .await?;
                            if labelled.is_some() {
                                tx.discard();
                                return Ok(PutOutcome::OldestLabelled);
                            }
                            sql::query(
                                "DELETE FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
                            )
                            .bind(&p.account)
                            .bind(&p.region)
                            .bind(&p.name)
                            .bind(oldest)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                bind_row(
                    sql::query(format!(
                        "INSERT INTO parameter_versions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                    )),
                    &p,
                )
                .execute(&mut *tx)
                .await?;
                if let Some(at) = expire_ms {
                    let key = format!("{}/{}/{}", p.account, p.region, p.name);
                    Store::schedule_job(tx, PARAMETER_EXPIRE_JOB, &key, at, None, p.modified_ms).await?;
                }
                Ok(PutOutcome::Written(p.version))
            })
        })
        .await
    }

    /// The latest version of a parameter.
    pub async fn parameter(&self, account: &str, region: &str, name: &str) -> Result<Option<ParameterRow>> {
        timed("parameter", async {
            sql::query(format!("SELECT {COLUMNS} FROM parameters WHERE account = $1 AND region = $2 AND name = $3"))
                .bind(account)
                .bind(region)
                .bind(name)
                .fetch_optional(&self.db)
                .await?
                .as_ref()
                .map(row)
                .transpose()
        })
        .await
    }

    /// One kept version of a parameter.
    pub async fn parameter_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<ParameterRow>> {
        timed("parameter_version", async {
            sql::query(format!(
                "SELECT {COLUMNS} FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4"
            ))
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(version)
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(row)
            .transpose()
        })
        .await
    }

    /// The version a label is on.
    pub async fn parameter_label(&self, account: &str, region: &str, name: &str, label: &str) -> Result<Option<i64>> {
        timed("parameter_label", async {
            sql::query(
                "SELECT version FROM parameter_labels WHERE account = $1 AND region = $2 AND name = $3 AND label = $4",
            )
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(label)
            .scalar_opt(&self.db)
            .await
        })
        .await
    }

    /// Versions of a parameter after `after` (oldest first), with their labels.
    pub async fn parameter_history(
        &self,
        account: &str,
        region: &str,
        name: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ParameterRow>> {
        timed("parameter_history", async {
            let mut rows: Vec<ParameterRow> = sql::query(format!(
                "SELECT {COLUMNS} FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3 AND version > $4 \
                 ORDER BY version LIMIT $5"
            ))
            .bind(account)
            .bind(region)
            .bind(name)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(row)
            .collect::<Result<_>>()?;
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                let labels = sql::query(
                    "SELECT version, label FROM parameter_labels WHERE account = $1 AND region = $2 AND name = $3 \
                     AND version >= $4 AND version <= $5 ORDER BY label",
                )
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(first.version)
                .bind(last.version)
                .fetch_all(&self.db)
                .await?;
                for l in labels {
                    let v: i64 = l.get("version")?;
                    if let Some(r) = rows.iter_mut().find(|r| r.version == v) {
                        r.labels.push(l.get("label")?);
                    }
                }
            }
            Ok(rows)
        })
        .await
    }

    /// Deletes a parameter with its versions, labels and tags; false if there is none.
    pub async fn delete_parameter(&self, account: &str, region: &str, name: &str) -> Result<bool> {
        self.delete_parameter_at(account, region, name, None).await
    }

    /// [`Store::delete_parameter`], only while its latest version is `version` (if given).
    pub async fn delete_parameter_at(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<bool> {
        timed("delete_parameter", async {
            transaction!(self.db, |tx| { Store::drop_parameter(tx, account, region, name, version).await })
        })
        .await
    }

    async fn drop_parameter(
        tx: &mut Tx<'_>,
        account: &str,
        region: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<bool> {
        let Some(tier) = sql::query(
            "DELETE FROM parameters WHERE account = $1 AND region = $2 AND name = $3 AND ($4 < 0 OR version = $4) \
             RETURNING tier",
        )
        .bind(account)
        .bind(region)
        .bind(name)
        .bind(version.unwrap_or(-1))
        .scalar_opt::<String>(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        Store::cancel_job(tx, PARAMETER_EXPIRE_JOB, &format!("{account}/{region}/{name}")).await?;
        for table in ["parameter_versions", "parameter_labels"] {
            sql::query(format!("DELETE FROM {table} WHERE account = $1 AND region = $2 AND name = $3"))
                .bind(account)
                .bind(region)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        Store::release_quota(tx, account, region, &quota_kind(&tier)).await?;
        Store::drop_tags(tx, account, region, PARAMETER_TAGS, name).await?;
        Ok(true)
    }

    /// A page of parameters (latest versions) matching every condition, by name, after `after`.
    pub async fn parameters_page(
        &self,
        account: &str,
        region: &str,
        conds: &[ParamCond],
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ParameterRow>> {
        timed("parameters_page", async {
            let mut w = sql::Where::new();
            w.and("p.account = ?1 AND p.region = ?2", [account.into(), region.into()]);
            for c in conds {
                match c {
                    ParamCond::Name(NameOp::Equals, v) => {
                        w.any_of("p.name", v);
                    }
                    ParamCond::Name(NameOp::BeginsWith, v) => {
                        w.any_matching(v, |n, s| format!("substr(p.name, 1, {}) = ${n}", s.chars().count()));
                    }
                    ParamCond::Name(NameOp::Contains, v) => {
                        // `replace` is case-sensitive on both backends (LIKE is not, on SQLite).
                        w.any_matching(v, |n, _| format!("replace(p.name, ${n}, '') <> p.name"));
                    }
                    ParamCond::Type(v) => {
                        w.any_of("p.ptype", v);
                    }
                    ParamCond::KeyId(v) => {
                        w.any_of("p.key_id", v);
                    }
                    ParamCond::Tier(v) => {
                        w.any_of("p.tier", v);
                    }
                    ParamCond::DataType(v) => {
                        w.any_of("p.data_type", v);
                    }
                    ParamCond::Path { path, recursive: false } => {
                        w.and("p.parent = ?1", [path.into()]);
                    }
                    ParamCond::Path { path, recursive: true } => {
                        let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
                        if path == "/" {
                            // Every parameter sits under the root, names outside any hierarchy too.
                        } else {
                            w.and(&format!("substr(p.name, 1, {}) = ?1", prefix.chars().count()), [prefix.into()]);
                        }
                    }
                    ParamCond::Tag { key, values } => {
                        let exists = "EXISTS (SELECT 1 FROM tags t WHERE t.account = p.account AND t.region = p.region \
                             AND t.resource_type = 'Parameter' AND t.resource_id = p.name AND t.tag_key = ?1";
                        if values.is_empty() {
                            w.and(&format!("{exists})"), [key.into()]);
                        } else {
                            let alts: Vec<String> = (0..values.len()).map(|i| format!("t.tag_value = ?{}", i + 2)).collect();
                            let expr = format!("{exists} AND ({}))", alts.join(" OR "));
                            let mut binds: Vec<sql::Value> = vec![key.into()];
                            binds.extend(values.iter().map(sql::Value::from));
                            w.and_dyn(&expr, binds);
                        }
                    }
                    ParamCond::Label(v) => {
                        let alts: Vec<String> = (0..v.len()).map(|i| format!("l.label = ?{}", i + 1)).collect();
                        let expr = format!(
                            "EXISTS (SELECT 1 FROM parameter_labels l WHERE l.account = p.account AND l.region = p.region \
                             AND l.name = p.name AND ({}))",
                            alts.join(" OR ")
                        );
                        w.and_dyn(&expr, v.iter().map(sql::Value::from).collect());
                    }
                }
            }
            if let Some(a) = after {
                w.and("p.name > ?1", [a.into()]);
            }
            let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
            w.query(&format!("SELECT {} FROM parameters p", cols.join(", ")), "ORDER BY p.name", limit)
                .fetch_all(&self.db).await?.iter().map(row).collect()
        })
        .await
    }

    /// Puts `labels` on `version` (the latest if `None`), moving any from other versions;
    /// refused when the version would carry more than `max_labels`.
    pub async fn label_parameter(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: Option<i64>,
        labels: &[String],
        max_labels: i64,
    ) -> Result<LabelOutcome> {
        timed("label_parameter", async {
            transaction!(self.db, |tx| {
                let lock = if tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
                let Some(latest) = sql::query(format!(
                    "SELECT version FROM parameters WHERE account = $1 AND region = $2 AND name = $3{lock}"
                ))
                .bind(account)
                .bind(region)
                .bind(name)
                .scalar_opt::<i64>(&mut *tx)
                .await?
                else {
                    return Ok(LabelOutcome::NoParameter);
                };
                let version = version.unwrap_or(latest);
                let kept = sql::query(
                    "SELECT version FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
                )
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                if kept.is_none() {
                    return Ok(LabelOutcome::NoVersion);
                }
                for l in labels {
                    sql::query(
                        "INSERT INTO parameter_labels (account, region, name, label, version) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (account, region, name, label) DO UPDATE SET version = excluded.version",
                    )
                    .bind(account)
                    .bind(region)
                    .bind(name)
                    .bind(l)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                }
                let n: i64 = sql::query(
                    "SELECT COUNT(*) FROM parameter_labels WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
                )
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(version)
                .scalar(&mut *tx)
                .await?;
                if n > max_labels {
                    tx.discard();
                    return Ok(LabelOutcome::TooManyLabels);
                }
                Ok(LabelOutcome::Labelled(version))
            })
        })
        .await
    }

    /// Removes those of `labels` that are on `version`; returns the ones removed, or `None` if
    /// the parameter or version does not exist (`Some(Err(()))`: no such version).
    pub async fn unlabel_parameter(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<std::result::Result<Vec<String>, LabelOutcome>> {
        timed("unlabel_parameter", async {
            transaction!(self.db, |tx| {
                let exists = sql::query("SELECT version FROM parameters WHERE account = $1 AND region = $2 AND name = $3")
                    .bind(account)
                    .bind(region)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Ok(Err(LabelOutcome::NoParameter));
                }
                let kept = sql::query(
                    "SELECT version FROM parameter_versions WHERE account = $1 AND region = $2 AND name = $3 AND version = $4",
                )
                .bind(account)
                .bind(region)
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?;
                if kept.is_none() {
                    return Ok(Err(LabelOutcome::NoVersion));
                }
                let mut removed = Vec::new();
                for l in labels {
                    let n = sql::query(
                        "DELETE FROM parameter_labels WHERE account = $1 AND region = $2 AND name = $3 AND label = $4 AND version = $5",
                    )
                    .bind(account)
                    .bind(region)
                    .bind(name)
                    .bind(l)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                    if n > 0 {
                        removed.push(l.clone());
                    }
                }
                Ok(Ok(removed))
            })
        })
        .await
    }
}
