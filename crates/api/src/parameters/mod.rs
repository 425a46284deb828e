//! Parameter Store: PutParameter, GetParameter(s), GetParametersByPath, DescribeParameters,
//! GetParameterHistory, DeleteParameter(s), LabelParameterVersion and UnlabelParameterVersion.
//!
//! * Names: letters, digits, `_.-` and `/` for hierarchies (a hierarchical name starts with
//!   `/`, at most 15 levels); never prefixed `aws` or `ssm`. Reads accept a name, its ARN, and a
//!   selector `name:version` or `name:label`. The public `/aws/service/...` namespace is not
//!   held by ssmd: reading it answers ParameterNotFound like any other unknown name.
//! * SecureString values are sealed by `crypto` before they reach the store and opened only for
//!   a caller that asked WithDecryption; without it they read as the ciphertext form. No error
//!   or log line carries a value.
//! * Versions are kept up to [`MAX_VERSIONS`]; a new one beyond it drops the oldest unless that
//!   one carries a label (ParameterMaxVersionLimitExceeded).

pub mod crypto;
pub mod policies;
pub(crate) mod refs;

use crate::errors::validation;
use crate::pagination::page_size;
use crate::{Service, store_error};
use serde_json::json;
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{LabelOutcome, NameOp, ParamCond, ParameterRow, PutOutcome};

/// Versions of one parameter kept.
pub const MAX_VERSIONS: i64 = 100;
/// Labels one version may carry.
pub const MAX_LABELS: i64 = 10;
/// Standard-tier parameters one account and Region may hold.
pub const MAX_STANDARD: i64 = 10_000;
/// Advanced-tier parameters one account and Region may hold.
pub const MAX_ADVANCED: i64 = 100_000;
/// Levels one hierarchy may have.
pub const MAX_LEVELS: usize = 15;
const STANDARD_VALUE: usize = 4096;
const ADVANCED_VALUE: usize = 8192;
const MAX_NAME: usize = 1011;
/// The KeyId a SecureString gets when none is given.
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::ParameterNotFound, format!("Parameter {name} not found."))
}

fn bad_name() -> ApiError {
    ApiError::new(
        ErrorCode::ValidationException,
        "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can \
         consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and \
         the following 3 symbols .-_",
    )
}

/// Checks a name a parameter is created under.
fn check_new_name(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > MAX_NAME {
        return Err(validation("(name)", "name", &format!("Member must have length less than or equal to {MAX_NAME}")));
    }
    let body = name.strip_prefix('/').unwrap_or(name);
    if body.is_empty()
        || (name.contains('/') && !name.starts_with('/'))
        || body.split('/').any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    {
        return Err(bad_name());
    }
    let first = body.split('/').next().unwrap_or("").to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(bad_name());
    }
    if body.split('/').count() > MAX_LEVELS {
        return Err(ApiError::new(
            ErrorCode::HierarchyLevelLimitExceededException,
            format!("A hierarchy can have a maximum of {MAX_LEVELS} levels."),
        ));
    }
    Ok(())
}

/// The name an ARN or a plain name refers to (no selector).
fn plain_name(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("arn:")
        && let Some(i) = rest.find(":parameter/")
    {
        let n = &rest[i + ":parameter/".len()..];
        return if n.contains('/') { format!("/{n}") } else { n.to_string() };
    }
    raw.to_string()
}

/// What a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    Latest,
    Version(i64),
    Label(String),
}

/// Splits `name[:version|:label]` (or an ARN) into the name and what it picks.
pub(crate) fn parse_reference(raw: &str) -> Result<(String, Pick), ApiError> {
    let (base, sel) = match raw.strip_prefix("arn:") {
        Some(_) => {
            // The ARN's own colons end at `:parameter/`; a selector follows the name.
            let i = raw.find(":parameter/").map(|i| i + ":parameter/".len()).unwrap_or(0);
            match raw[i..].find(':') {
                Some(j) => (&raw[..i + j], Some(&raw[i + j + 1..])),
                None => (raw, None),
            }
        }
        None => match raw.split_once(':') {
            Some((n, s)) => (n, Some(s)),
            None => (raw, None),
        },
    };
    let name = plain_name(base);
    let pick = match sel {
        None => Pick::Latest,
        Some(s) if s.is_empty() || s.contains(':') => {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("The parameter selector of {name} is not valid: use name:version or name:label."),
            ));
        }
        Some(s) if s.chars().all(|c| c.is_ascii_digit()) => Pick::Version(s.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::ValidationException,
                format!("The version in the selector of {name} is not valid."),
            )
        })?),
        Some(s) => Pick::Label(s.to_string()),
    };
    Ok((name, pick))
}

fn version_not_found(name: &str, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ParameterVersionNotFound,
        format!("Systems Manager could not find {what} of {name}. Verify the version and try again."),
    )
}

/// The row a reference names, with the selector text to report (`:3`, `:prod`).
pub(crate) async fn lookup(
    svc: &Service,
    caller: &Caller,
    raw: &str,
) -> Result<(ParameterRow, Option<String>), ApiError> {
    let (name, pick) = parse_reference(raw)?;
    let store = &svc.store;
    let latest = store.parameter(&caller.account, &caller.region, &name).await.map_err(store_error)?;
    let Some(latest) = latest else { return Err(not_found(&name)) };
    let version = match &pick {
        Pick::Latest => return Ok((latest, None)),
        Pick::Version(v) => *v,
        Pick::Label(l) => store
            .parameter_label(&caller.account, &caller.region, &name, l)
            .await
            .map_err(store_error)?
            .ok_or_else(|| version_not_found(&name, &format!("label {l}")))?,
    };
    let selector = match &pick {
        Pick::Version(v) => format!(":{v}"),
        Pick::Label(l) => format!(":{l}"),
        Pick::Latest => unreachable!(),
    };
    if version == latest.version {
        return Ok((latest, Some(selector)));
    }
    let row = store
        .parameter_version(&caller.account, &caller.region, &name, version)
        .await
        .map_err(store_error)?
        .ok_or_else(|| version_not_found(&name, &format!("version {version}")))?;
    Ok((row, Some(selector)))
}

fn binding(row: &ParameterRow) -> String {
    format!("{}/{}/{}", row.account, row.region, row.name)
}

/// The value to show: a SecureString opened only when asked to decrypt.
pub(crate) fn shown_value(svc: &Service, row: &ParameterRow, decrypt: bool) -> Result<String, ApiError> {
    if row.ptype != ParameterType::SecureString.as_str() {
        return Ok(row.value.clone());
    }
    if !decrypt {
        return Ok(crypto::ciphertext_form(&row.value));
    }
    let keys = svc.parameter_keys.as_ref().ok_or_else(no_master_key)?;
    keys.open(&binding(row), &row.value)
        .map_err(|e| ApiError::internal(format!("SecureString {} does not open: {e}", row.name)))
}

fn no_master_key() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidKeyId,
        "ssmd was started without a master key for SecureString parameters (see docs/compat.md, Parameter Store).",
    )
}

fn arn(row: &ParameterRow) -> String {
    ssmd_core::arn::ssm(&row.region, &row.account, &format!("parameter/{}", row.name.trim_start_matches('/')))
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn ptype(row: &ParameterRow) -> Result<ParameterType, ApiError> {
    crate::errors::stored(&row.ptype)
}

fn tier(row: &ParameterRow) -> Result<ParameterTier, ApiError> {
    crate::errors::stored(&row.tier)
}

fn to_parameter(
    svc: &Service,
    row: &ParameterRow,
    decrypt: bool,
    selector: Option<String>,
) -> Result<Parameter, ApiError> {
    Ok(Parameter {
        name: Some(row.name.clone()),
        r#type: Some(ptype(row)?),
        value: Some(shown_value(svc, row, decrypt)?),
        version: Some(row.version),
        selector,
        source_result: None,
        last_modified_date: Some(secs(row.modified_ms)),
        arn: Some(arn(row)),
        data_type: Some(row.data_type.clone()),
    })
}

fn shown_policies(row: &ParameterRow) -> Vec<ParameterInlinePolicy> {
    policies::shown(row.policies.as_deref())
}

fn to_metadata(row: &ParameterRow) -> Result<ParameterMetadata, ApiError> {
    Ok(ParameterMetadata {
        name: Some(row.name.clone()),
        arn: Some(arn(row)),
        r#type: Some(ptype(row)?),
        key_id: row.key_id.clone(),
        last_modified_date: Some(secs(row.modified_ms)),
        last_modified_user: Some(row.modified_user.clone()),
        description: row.description.clone(),
        allowed_pattern: row.allowed_pattern.clone(),
        version: Some(row.version),
        tier: Some(tier(row)?),
        policies: Some(shown_policies(row)),
        data_type: Some(row.data_type.clone()),
    })
}

fn compile_pattern(p: &str) -> Result<fancy_regex::Regex, ApiError> {
    fancy_regex::Regex::new(p).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidAllowedPatternException,
            format!("The allowed pattern {p} is not a valid regular expression."),
        )
    })
}

fn check_pattern(pattern: &str, value: &str) -> Result<(), ApiError> {
    let re = compile_pattern(pattern)?;
    if re.is_match(value).unwrap_or(false) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::ParameterPatternMismatchException,
            format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
        ))
    }
}

fn check_data_type(data_type: &str, t: ParameterType, value: &str) -> Result<(), ApiError> {
    match data_type {
        "text" => Ok(()),
        "aws:ec2:image" => {
            if t != ParameterType::String {
                return Err(ApiError::new(
                    ErrorCode::ValidationException,
                    "The data type aws:ec2:image is supported only for parameters of type String.",
                ));
            }
            let hex = value.strip_prefix("ami-").unwrap_or("");
            if (hex.len() == 8 || hex.len() == 17)
                && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::ValidationException,
                    format!(
                        "Parameter value {value} is not a valid AMI ID for the data type aws:ec2:image (ami- followed by 8 or 17 hexadecimal digits)."
                    ),
                ))
            }
        }
        other => Err(ApiError::new(
            ErrorCode::ValidationException,
            format!("The data type {other} is not supported. Supported data types are text and aws:ec2:image."),
        )),
    }
}

pub(crate) async fn put(
    svc: &Service,
    caller: &Caller,
    i: PutParameterRequest,
) -> Result<PutParameterResult, ApiError> {
    let name = i.name.clone();
    check_new_name(&name)?;
    let overwrite = i.overwrite.unwrap_or(false);
    if overwrite && i.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove \
             overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or \
             RemoveTagsFromResource.",
        ));
    }
    if let Some(tags) = &i.tags {
        crate::tags::check_new(tags)?;
    }
    let new_policies = i.policies.as_deref().map(|p| policies::parse(p, svc.now_ms())).transpose()?;
    if let Some(p) = &i.allowed_pattern {
        compile_pattern(p)?;
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let existing = svc.store.parameter(&caller.account, &caller.region, &name).await.map_err(store_error)?;
        if existing.is_some() && !overwrite {
            return Err(already_exists());
        }
        let prev = existing.as_ref();
        let t = match (i.r#type, prev) {
            (Some(t), _) => t,
            (None, Some(p)) => ptype(p)?,
            (None, None) => {
                return Err(ApiError::new(
                    ErrorCode::ValidationException,
                    "A parameter type is required when you create a parameter.",
                ));
            }
        };
        if i.key_id.is_some() && t != ParameterType::SecureString {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                "KeyId is valid only for parameters of type SecureString.",
            ));
        }
        let allowed_pattern = i.allowed_pattern.clone().or_else(|| prev.and_then(|p| p.allowed_pattern.clone()));
        if let Some(p) = &allowed_pattern {
            check_pattern(p, &i.value)?;
        }
        let data_type = i
            .data_type
            .clone()
            .filter(|d| !d.is_empty())
            .or_else(|| prev.map(|p| p.data_type.clone()))
            .unwrap_or_else(|| "text".to_string());
        check_data_type(&data_type, t, &i.value)?;
        let prev_tier = prev.map(tier).transpose()?;
        // Policies given replace the previous ones; left out, the previous ones stay.
        let policy_text = match &new_policies {
            Some(p) => Some(p.text.clone()),
            None => prev.and_then(|p| p.policies.clone()),
        };
        let len = i.value.chars().count();
        let want = i.tier.or(prev_tier).unwrap_or(ParameterTier::Standard);
        let chosen = match want {
            ParameterTier::IntelligentTiering => {
                if len > STANDARD_VALUE || prev_tier == Some(ParameterTier::Advanced) || policy_text.is_some() {
                    ParameterTier::Advanced
                } else {
                    ParameterTier::Standard
                }
            }
            t => t,
        };
        if chosen == ParameterTier::Standard && prev_tier == Some(ParameterTier::Advanced) {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the \
                 advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced \
                 parameter and recreate it as a standard parameter.",
            ));
        }
        if chosen == ParameterTier::Standard && policy_text.is_some() {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                "Parameter policies are supported only for parameters in the Advanced tier; set Tier to Advanced or \
                 Intelligent-Tiering.",
            ));
        }
        let limit = if chosen == ParameterTier::Advanced { ADVANCED_VALUE } else { STANDARD_VALUE };
        if len > limit {
            return Err(validation(
                "(value hidden)",
                "value",
                &format!("Member must have length less than or equal to {limit}"),
            ));
        }
        let key_id = if t == ParameterType::SecureString {
            Some(
                i.key_id
                    .clone()
                    .or_else(|| prev.filter(|p| p.ptype == t.as_str()).and_then(|p| p.key_id.clone()))
                    .unwrap_or_else(|| DEFAULT_KEY_ID.to_string()),
            )
        } else {
            None
        };
        let mut row = ParameterRow {
            account: caller.account.clone(),
            region: caller.region.clone(),
            name: name.clone(),
            version: 0,
            ptype: t.as_str().to_string(),
            value: String::new(),
            key_id,
            description: i.description.clone().or_else(|| prev.and_then(|p| p.description.clone())),
            allowed_pattern,
            tier: chosen.as_str().to_string(),
            data_type,
            policies: policy_text.clone(),
            modified_ms: svc.now_ms(),
            modified_user: caller.arn.clone(),
            labels: Vec::new(),
        };
        row.value = if t == ParameterType::SecureString {
            let keys = svc.parameter_keys.as_ref().ok_or_else(no_master_key)?;
            keys.seal(&binding(&row), &i.value).map_err(|e| ApiError::internal(format!("sealing {name}: {e}")))?
        } else {
            i.value.clone()
        };
        let quota = if chosen == ParameterTier::Advanced { MAX_ADVANCED } else { MAX_STANDARD };
        let tags: Vec<ssmd_store::Tag> =
            i.tags.iter().flatten().map(|t| ssmd_store::Tag { key: t.key.clone(), value: t.value.clone() }).collect();
        let expect = prev.map(|p| (p.version, p.tier.as_str()));
        let expire_ms = new_policies.as_ref().and_then(|p| p.expire_ms);
        match svc.store.put_parameter(&row, expect, &tags, quota, MAX_VERSIONS, expire_ms).await.map_err(store_error)? {
            PutOutcome::Written(v) => return Ok(PutParameterResult { version: Some(v), tier: Some(chosen) }),
            PutOutcome::Moved if prev.is_none() && !overwrite => return Err(already_exists()),
            PutOutcome::Moved if attempts < 5 => continue,
            PutOutcome::Moved => {
                return Err(ApiError::new(
                    ErrorCode::TooManyUpdates,
                    "There are concurrent updates for the resource that you're trying to modify. Try again later.",
                ));
            }
            PutOutcome::QuotaReached => {
                return Err(ApiError::new(
                    ErrorCode::ParameterLimitExceeded,
                    format!(
                        "You have exceeded the number of {} parameters for this AWS account ({quota}). Delete some parameters and try again.",
                        chosen.as_str()
                    ),
                ));
            }
            PutOutcome::OldestLabelled => {
                return Err(ApiError::new(
                    ErrorCode::ParameterMaxVersionLimitExceeded,
                    format!(
                        "You attempted to create a new version of {name} by calling the PutParameter API with the overwrite \
                         flag. The oldest version can't be deleted because it has a label associated with it. Move the \
                         label to another version of the parameter, and try again."
                    ),
                ));
            }
        }
    }
}

fn already_exists() -> ApiError {
    ApiError::new(
        ErrorCode::ParameterAlreadyExists,
        "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
    )
}

pub(crate) async fn get(
    svc: &Service,
    caller: &Caller,
    i: GetParameterRequest,
) -> Result<GetParameterResult, ApiError> {
    let (row, selector) = lookup(svc, caller, &i.name).await?;
    Ok(GetParameterResult { parameter: Some(to_parameter(svc, &row, i.with_decryption.unwrap_or(false), selector)?) })
}

pub(crate) async fn get_many(
    svc: &Service,
    caller: &Caller,
    i: GetParametersRequest,
) -> Result<GetParametersResult, ApiError> {
    let decrypt = i.with_decryption.unwrap_or(false);
    let mut found = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in &i.names {
        if !seen.insert(raw.clone()) {
            continue;
        }
        match lookup(svc, caller, raw).await {
            Ok((row, selector)) => found.push(to_parameter(svc, &row, decrypt, selector)?),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::ParameterNotFound | ErrorCode::ParameterVersionNotFound | ErrorCode::ValidationException
                ) =>
            {
                invalid.push(raw.clone())
            }
            Err(e) => return Err(e),
        }
    }
    Ok(GetParametersResult { parameters: Some(found), invalid_parameters: Some(invalid) })
}

pub(crate) async fn delete(
    svc: &Service,
    caller: &Caller,
    i: DeleteParameterRequest,
) -> Result<DeleteParameterResult, ApiError> {
    let name = plain_name(&i.name);
    if svc.store.delete_parameter(&caller.account, &caller.region, &name).await.map_err(store_error)? {
        Ok(DeleteParameterResult {})
    } else {
        Err(not_found(&name))
    }
}

pub(crate) async fn delete_many(
    svc: &Service,
    caller: &Caller,
    i: DeleteParametersRequest,
) -> Result<DeleteParametersResult, ApiError> {
    let mut deleted = Vec::new();
    let mut invalid = Vec::new();
    for raw in &i.names {
        let name = plain_name(raw);
        if svc.store.delete_parameter(&caller.account, &caller.region, &name).await.map_err(store_error)? {
            deleted.push(raw.clone());
        } else if !deleted.contains(raw) {
            invalid.push(raw.clone());
        }
    }
    Ok(DeleteParametersResult { deleted_parameters: Some(deleted), invalid_parameters: Some(invalid) })
}

pub(crate) async fn history(
    svc: &Service,
    caller: &Caller,
    i: GetParameterHistoryRequest,
) -> Result<GetParameterHistoryResult, ApiError> {
    let op = "GetParameterHistory";
    let name = plain_name(&i.name);
    let after = svc.open_token(caller, op, i.next_token.as_deref())?;
    let after_v = match &after {
        Some(p) => {
            if p.get("n").and_then(|n| n.as_str()) != Some(name.as_str()) {
                return Err(ApiError::new(ErrorCode::InvalidNextToken, "The specified token isn't valid."));
            }
            p.get("v").and_then(|v| v.as_i64()).unwrap_or(0)
        }
        None => 0,
    };
    if svc.store.parameter(&caller.account, &caller.region, &name).await.map_err(store_error)?.is_none() {
        return Err(not_found(&name));
    }
    let size = page_size(i.max_results, 50);
    let decrypt = i.with_decryption.unwrap_or(false);
    let mut rows = svc
        .store
        .parameter_history(&caller.account, &caller.region, &name, after_v, size + 1)
        .await
        .map_err(store_error)?;
    let next = if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last().map(|r| svc.issue_token(caller, op, json!({"n": name, "v": r.version})))
    } else {
        None
    };
    let parameters = rows
        .iter()
        .map(|r| {
            Ok(ParameterHistory {
                name: Some(r.name.clone()),
                r#type: Some(ptype(r)?),
                key_id: r.key_id.clone(),
                last_modified_date: Some(secs(r.modified_ms)),
                last_modified_user: Some(r.modified_user.clone()),
                description: r.description.clone(),
                value: Some(shown_value(svc, r, decrypt)?),
                allowed_pattern: r.allowed_pattern.clone(),
                version: Some(r.version),
                labels: Some(r.labels.clone()),
                tier: Some(tier(r)?),
                policies: Some(shown_policies(r)),
                data_type: Some(r.data_type.clone()),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(GetParameterHistoryResult { parameters: Some(parameters), next_token: next })
}

/// Normalises a path (`/a/b/` → `/a/b`), refusing one that is not a path.
fn normal_path(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let t = p.trim_end_matches('/');
    let t = if t.is_empty() { "/" } else { t };
    if t != "/"
        && t[1..].split('/').any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    {
        return None;
    }
    Some(t.to_string())
}

/// Which operation a ParameterStringFilter list belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterUse {
    Describe,
    ByPath,
}

fn filter_conds(filters: &[ParameterStringFilter], usage: FilterUse) -> Result<Vec<ParamCond>, ApiError> {
    let valid_keys: &[&str] = match usage {
        FilterUse::Describe => &["Name", "Type", "KeyId", "Path", "Tier", "DataType", "tag:"],
        FilterUse::ByPath => &["Type", "KeyId", "Label"],
    };
    let mut seen = std::collections::HashSet::new();
    let mut conds = Vec::new();
    for f in filters {
        let key = f.key.as_str();
        let known = if let Some(tag) = key.strip_prefix("tag:") {
            !tag.is_empty() && usage == FilterUse::Describe
        } else {
            valid_keys.contains(&key)
        };
        if !known {
            return Err(ApiError::new(
                ErrorCode::InvalidFilterKey,
                format!(
                    "The following filter key is not valid: {key}. Valid filter keys include: [{}].",
                    valid_keys
                        .iter()
                        .map(|k| if *k == "tag:" { "tag:<key>" } else { k })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !seen.insert(key.to_string()) {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                format!(
                    "The following filter is duplicated in the request: {key}. A request can contain only one occurrence of a specific filter."
                ),
            ));
        }
        let options: &[&str] = match key {
            "Name" => &["Equals", "BeginsWith", "Contains"],
            "Path" => &["Recursive", "OneLevel"],
            _ => &["Equals"],
        };
        let option = f.option.as_deref().unwrap_or(options[if key == "Path" { 1 } else { 0 }]);
        if !options.contains(&option) {
            return Err(ApiError::new(
                ErrorCode::InvalidFilterOption,
                format!(
                    "The following filter option is not valid: {option}. Valid options include: [{}].",
                    options.join(", ")
                ),
            ));
        }
        let values: Vec<String> = f.values.clone().unwrap_or_default();
        if values.is_empty() && !key.starts_with("tag:") {
            return Err(ApiError::new(
                ErrorCode::InvalidFilterValue,
                format!("The following filter values are missing: {key}. Give at least one value."),
            ));
        }
        let bad_value = |v: &str, allowed: &str| {
            ApiError::new(
                ErrorCode::InvalidFilterValue,
                format!("The following filter value is not valid: {v}. Valid values include: [{allowed}]."),
            )
        };
        let cond = match key {
            "Name" => ParamCond::Name(
                match option {
                    "BeginsWith" => NameOp::BeginsWith,
                    "Contains" => NameOp::Contains,
                    _ => NameOp::Equals,
                },
                values.iter().map(|v| plain_name(v)).collect(),
            ),
            "Type" => {
                for v in &values {
                    v.parse::<ParameterType>().map_err(|_| bad_value(v, "String, StringList, SecureString"))?;
                }
                ParamCond::Type(values)
            }
            "Tier" => {
                for v in &values {
                    if v != "Standard" && v != "Advanced" {
                        return Err(bad_value(v, "Standard, Advanced"));
                    }
                }
                ParamCond::Tier(values)
            }
            "KeyId" => ParamCond::KeyId(values),
            "DataType" => ParamCond::DataType(values),
            "Label" => ParamCond::Label(values),
            "Path" => {
                if values.len() != 1 {
                    return Err(ApiError::new(
                        ErrorCode::InvalidFilterValue,
                        "The Path filter takes exactly one value.",
                    ));
                }
                let path = normal_path(&values[0]).ok_or_else(|| bad_value(&values[0], "a path starting with /"))?;
                ParamCond::Path { path, recursive: option == "Recursive" }
            }
            _ => ParamCond::Tag { key: key["tag:".len()..].to_string(), values },
        };
        conds.push(cond);
    }
    Ok(conds)
}

fn page_after(svc: &Service, caller: &Caller, op: &str, token: Option<&str>) -> Result<Option<String>, ApiError> {
    Ok(svc.open_token(caller, op, token)?.and_then(|p| p.get("n").and_then(|n| n.as_str()).map(str::to_string)))
}

pub(crate) async fn by_path(
    svc: &Service,
    caller: &Caller,
    i: GetParametersByPathRequest,
) -> Result<GetParametersByPathResult, ApiError> {
    let op = "GetParametersByPath";
    let path = normal_path(&i.path).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ValidationException,
            "The parameter path is not valid. A path starts with / and its levels are made of letters, numbers and the symbols .-_",
        )
    })?;
    let mut conds = filter_conds(i.parameter_filters.as_deref().unwrap_or_default(), FilterUse::ByPath)?;
    conds.push(ParamCond::Path { path, recursive: i.recursive.unwrap_or(false) });
    let after = page_after(svc, caller, op, i.next_token.as_deref())?;
    let size = page_size(i.max_results, 10);
    let (rows, next) = parameters_page(svc, caller, op, &conds, after.as_deref(), size).await?;
    let decrypt = i.with_decryption.unwrap_or(false);
    let parameters = rows.iter().map(|r| to_parameter(svc, r, decrypt, None)).collect::<Result<Vec<_>, _>>()?;
    Ok(GetParametersByPathResult { parameters: Some(parameters), next_token: next })
}

/// One page of the caller's parameters matching `conds` after `after`, and the token of the
/// next page.
async fn parameters_page(
    svc: &Service,
    caller: &Caller,
    op: &str,
    conds: &[ParamCond],
    after: Option<&str>,
    size: i64,
) -> Result<(Vec<ParameterRow>, Option<String>), ApiError> {
    let mut rows = svc
        .store
        .parameters_page(&caller.account, &caller.region, conds, after, size + 1)
        .await
        .map_err(store_error)?;
    let next = if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last().map(|r| svc.issue_token(caller, op, json!({"n": r.name})))
    } else {
        None
    };
    Ok((rows, next))
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeParametersRequest,
) -> Result<DescribeParametersResult, ApiError> {
    let op = "DescribeParameters";
    if i.shared == Some(true) {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "ssmd does not share parameters between accounts: Shared=true is not supported.",
        ));
    }
    let filters = i.filters.as_deref().unwrap_or_default();
    let pfilters = i.parameter_filters.as_deref().unwrap_or_default();
    if !filters.is_empty() && !pfilters.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "You can use either Filters or ParameterFilters in a single request, not both.",
        ));
    }
    let mut conds = filter_conds(pfilters, FilterUse::Describe)?;
    for f in filters {
        conds.push(match f.key {
            ParametersFilterKey::Name => ParamCond::Name(NameOp::BeginsWith, f.values.clone()),
            ParametersFilterKey::Type => ParamCond::Type(f.values.clone()),
            ParametersFilterKey::KeyId => ParamCond::KeyId(f.values.clone()),
        });
    }
    let after = page_after(svc, caller, op, i.next_token.as_deref())?;
    let size = page_size(i.max_results, 50);
    let (rows, next) = parameters_page(svc, caller, op, &conds, after.as_deref(), size).await?;
    let parameters = rows.iter().map(to_metadata).collect::<Result<Vec<_>, _>>()?;
    Ok(DescribeParametersResult { parameters: Some(parameters), next_token: next })
}

/// Whether a label follows AWS's rules (it is reported in InvalidLabels otherwise).
fn valid_label(l: &str) -> bool {
    let lower = l.to_ascii_lowercase();
    !l.is_empty()
        && l.chars().count() <= 100
        && !l.starts_with(|c: char| c.is_ascii_digit())
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
        && l.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub(crate) async fn label(
    svc: &Service,
    caller: &Caller,
    i: LabelParameterVersionRequest,
) -> Result<LabelParameterVersionResult, ApiError> {
    let name = plain_name(&i.name);
    let (valid, invalid): (Vec<String>, Vec<String>) = i.labels.iter().cloned().partition(|l| valid_label(l));
    let out = svc
        .store
        .label_parameter(&caller.account, &caller.region, &name, i.parameter_version, &valid, MAX_LABELS)
        .await
        .map_err(store_error)?;
    match out {
        LabelOutcome::Labelled(v) => {
            Ok(LabelParameterVersionResult { invalid_labels: Some(invalid), parameter_version: Some(v) })
        }
        LabelOutcome::NoParameter => Err(not_found(&name)),
        LabelOutcome::NoVersion => {
            Err(version_not_found(&name, &format!("version {}", i.parameter_version.unwrap_or_default())))
        }
        LabelOutcome::TooManyLabels => Err(ApiError::new(
            ErrorCode::ParameterVersionLabelLimitExceeded,
            format!(
                "A parameter version can have maximum {MAX_LABELS} labels. Move one or more labels to another version and try again."
            ),
        )),
    }
}

pub(crate) async fn unlabel(
    svc: &Service,
    caller: &Caller,
    i: UnlabelParameterVersionRequest,
) -> Result<UnlabelParameterVersionResult, ApiError> {
    let name = plain_name(&i.name);
    let out = svc
        .store
        .unlabel_parameter(&caller.account, &caller.region, &name, i.parameter_version, &i.labels)
        .await
        .map_err(store_error)?;
    match out {
        Ok(removed) => {
            let invalid = i.labels.iter().filter(|l| !removed.contains(l)).cloned().collect();
            Ok(UnlabelParameterVersionResult { removed_labels: Some(removed), invalid_labels: Some(invalid) })
        }
        Err(LabelOutcome::NoParameter) => Err(not_found(&name)),
        Err(_) => Err(version_not_found(&name, &format!("version {}", i.parameter_version))),
    }
}

/// Whether the caller holds parameter `name` (tags' resource check).
pub(crate) async fn exists(svc: &Service, caller: &Caller, name: &str) -> Result<bool, ApiError> {
    Ok(svc.store.parameter(&caller.account, &caller.region, &plain_name(name)).await.map_err(store_error)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "a.b-c_d", "/a", "/a/b/c", "/Prod/db/Password"] {
            check_new_name(ok).unwrap();
        }
        for bad in ["a/b", "/a//b", "/a/", "aws-x", "/ssm/x", "SSMx", "/a/b c", "a:b", "/"] {
            assert_eq!(check_new_name(bad).unwrap_err().code(), ErrorCode::ValidationException, "{bad}");
        }
        let deep = "/a".repeat(16);
        assert_eq!(check_new_name(&deep).unwrap_err().code(), ErrorCode::HierarchyLevelLimitExceededException);
        check_new_name(&"/a".repeat(15)).unwrap();
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("x").unwrap(), ("x".into(), Pick::Latest));
        assert_eq!(parse_reference("/a/b:3").unwrap(), ("/a/b".into(), Pick::Version(3)));
        assert_eq!(parse_reference("/a/b:prod").unwrap(), ("/a/b".into(), Pick::Label("prod".into())));
        assert_eq!(
            parse_reference("arn:aws:ssm:us-east-1:111122223333:parameter/a/b:2").unwrap(),
            ("/a/b".into(), Pick::Version(2))
        );
        assert_eq!(
            parse_reference("arn:aws:ssm:us-east-1:111122223333:parameter/x").unwrap(),
            ("x".into(), Pick::Latest)
        );
        assert!(parse_reference("x:1:2").is_err());
    }

    #[test]
    fn labels_and_paths() {
        assert!(valid_label("prod") && valid_label("v1.2-x_y"));
        for bad in ["1abc", "awsx", "SSM", "a/b", "a b", ""] {
            assert!(!valid_label(bad), "{bad}");
        }
        assert_eq!(normal_path("/a/b/").as_deref(), Some("/a/b"));
        assert_eq!(normal_path("/").as_deref(), Some("/"));
        assert_eq!(normal_path("a"), None);
    }
}
