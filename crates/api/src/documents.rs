//! The Documents API: create, read, describe, list, update, versions, delete, review metadata
//! and sharing. Documents are owned by an (account, region); Amazon-owned documents ship with
//! ssmd and are readable by everyone; shared documents are readable by the accounts they are
//! shared with, by ARN.

use crate::errors::{doc_error, stored, validation};
use crate::pagination::page_size;
use crate::{Service, amazon, store_error};
use serde_json::{Value, json};
use ssmd_core::clock::epoch_seconds;
use ssmd_core::document::{self, Parsed};
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::{DocumentRow, ReviewRow, ShareRow, StoreError, Tag, VersionRow};

/// Name prefixes reserved for AWS (compared case-insensitively).
const RESERVED_PREFIXES: &[&str] = &["aws", "amazon", "amzn"];
/// Versions one document may have.
const MAX_VERSIONS: i64 = 1000;
/// Accounts one document may be shared with.
const MAX_SHARES: usize = 1000;
/// The tag resource type of documents.
pub(crate) const RESOURCE_TYPE: &str = ResourceTypeForTagging::Document.as_str();

/// Who owns a document, as seen by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The caller's own document.
    Own,
    /// Shipped with ssmd.
    Amazon,
    /// Another account's document shared with the caller.
    Shared,
}

/// A document version resolved for a caller.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Whose it is.
    pub ownership: Ownership,
    /// The document.
    pub doc: DocumentRow,
    /// The version asked for.
    pub version: VersionRow,
}

impl Resolved {
    /// The name as SSM reports it to this caller (the ARN for shared documents).
    pub fn reported_name(&self) -> String {
        match self.ownership {
            Ownership::Shared => ssmd_core::arn::document(&self.doc.region, &self.doc.account, &self.doc.name),
            _ => self.doc.name.clone(),
        }
    }

    /// The `Owner` field.
    pub fn owner(&self) -> String {
        match self.ownership {
            Ownership::Amazon => "Amazon".into(),
            _ => self.doc.account.clone(),
        }
    }

    /// The document's type (the store holds it as text).
    pub fn doc_type(&self) -> Result<DocumentType, ApiError> {
        stored(&self.doc.doc_type)
    }

    /// The format the version's content is stored in.
    pub fn format(&self) -> Result<DocumentFormat, ApiError> {
        stored(&self.version.format)
    }

    /// The version's `ReviewStatus` (see [`review_status`]).
    fn review_status(&self) -> Result<Option<ReviewStatus>, ApiError> {
        review_status(self.doc_type()?, &self.version)
    }
}

/// A version's `ReviewStatus`: change templates have one (NOT_REVIEWED until reviewed), other
/// documents none.
fn review_status(doc_type: DocumentType, v: &VersionRow) -> Result<Option<ReviewStatus>, ApiError> {
    if doc_type != DocumentType::AutomationChangeTemplate {
        return Ok(None);
    }
    match &v.review_status {
        Some(s) => stored(s).map(Some),
        None => Ok(Some(ReviewStatus::NotReviewed)),
    }
}

fn invalid_document() -> ApiError {
    ApiError::new(ErrorCode::InvalidDocument, "The specified document does not exist.")
}

fn invalid_version() -> ApiError {
    ApiError::new(ErrorCode::InvalidDocumentVersion, "The document version is not valid or does not exist.")
}

/// Whose document a reference names.
struct Located {
    ownership: Ownership,
    /// The owning account (empty for Amazon-owned documents).
    account: String,
    name: String,
    /// The share that lets the caller read another account's document.
    share: Option<ShareRow>,
    amazon: Option<&'static amazon::AmazonDoc>,
}

/// A requested DocumentVersion.
enum VersionSel {
    Default,
    Latest,
    Number(i64),
}

fn version_sel(v: Option<&str>) -> Result<VersionSel, ApiError> {
    match v {
        None | Some("$DEFAULT") => Ok(VersionSel::Default),
        Some("$LATEST") => Ok(VersionSel::Latest),
        Some(n) => n.parse::<i64>().ok().filter(|n| *n > 0).map(VersionSel::Number).ok_or_else(invalid_version),
    }
}

impl Service {
    /// Finds a document (by name or ARN) and one of its versions, as the caller may see it.
    /// Finds whose document a reference (name or ARN) names, as the caller may see it:
    /// Amazon-owned, the caller's own, or another account's shared with the caller.
    async fn locate(&self, caller: &Caller, reference: &str) -> Result<Located, ApiError> {
        let (owner, name) = match ssmd_core::arn::parse_document(reference) {
            Some(arn) if arn.region != caller.region => return Err(invalid_document()),
            Some(arn) if arn.account.is_empty() => (None, arn.name),
            Some(arn) if arn.account != caller.account => (Some(arn.account), arn.name),
            Some(arn) => (None, arn.name),
            None => (None, reference.to_string()),
        };
        if owner.is_none()
            && let Some(a) = amazon::find(&name)
        {
            return Ok(Located {
                ownership: Ownership::Amazon,
                account: String::new(),
                name,
                share: None,
                amazon: Some(a),
            });
        }
        match owner {
            Some(account) => {
                let share = self
                    .store
                    .share_for(&account, &caller.region, &name, &caller.account)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(invalid_document)?;
                Ok(Located { ownership: Ownership::Shared, account, name, share: Some(share), amazon: None })
            }
            None => Ok(Located {
                ownership: Ownership::Own,
                account: caller.account.clone(),
                name,
                share: None,
                amazon: None,
            }),
        }
    }

    /// Finds a document (by name or ARN) and one of its versions, as the caller may see it.
    pub async fn resolve_document(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<&str>,
        version_name: Option<&str>,
    ) -> Result<Resolved, ApiError> {
        let sel = version_sel(version)?;
        let loc = self.locate(caller, reference).await?;
        if let Some(a) = loc.amazon {
            let version = match sel {
                VersionSel::Number(n) if n != a.version.version => return Err(invalid_version()),
                _ => a.version.clone(),
            };
            if version_name.is_some_and(|vn| version.version_name.as_deref() != Some(vn)) {
                return Err(invalid_version());
            }
            return Ok(Resolved { ownership: Ownership::Amazon, doc: a.doc.clone(), version });
        }
        let (account, name, ownership, share) = (loc.account.as_str(), loc.name.clone(), loc.ownership, loc.share);
        let number = match sel {
            VersionSel::Number(n) => Some(n),
            _ => None,
        };
        let found = if let (Some(vn), None) = (version_name, number) {
            // A VersionName alone selects that version.
            let doc = self
                .store
                .document(account, &caller.region, &name)
                .await
                .map_err(store_error)?
                .ok_or_else(invalid_document)?;
            let v = self.store.document_version_named(account, &caller.region, &name, vn).await.map_err(store_error)?;
            (doc, v)
        } else {
            let latest = matches!(sel, VersionSel::Latest);
            let (doc, v) = self
                .store
                .document_with_version(account, &caller.region, &name, number)
                .await
                .map_err(store_error)?
                .ok_or_else(invalid_document)?;
            if latest && doc.latest_version != doc.default_version {
                let v = self
                    .store
                    .document_version(account, &caller.region, &name, doc.latest_version)
                    .await
                    .map_err(store_error)?;
                (doc, v)
            } else {
                (doc, v)
            }
        };
        let (doc, version) = found;
        let version = version.ok_or_else(invalid_version)?;
        if version_name.is_some_and(|vn| version.version_name.as_deref() != Some(vn)) {
            return Err(invalid_version());
        }
        if let Some(share) = share
            && let Ok(n) = share.shared_version.parse::<i64>()
            && n != version.version
        {
            return Err(invalid_version());
        }
        Ok(Resolved { ownership, doc, version })
    }

    /// The caller's own document, or `InvalidDocument`.
    async fn own_document(&self, caller: &Caller, name: &str) -> Result<DocumentRow, ApiError> {
        if amazon::find(name).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidDocumentOperation,
                format!("The Amazon-owned document {name} can't be changed."),
            ));
        }
        self.store
            .document(&caller.account, &caller.region, name)
            .await
            .map_err(store_error)?
            .ok_or_else(invalid_document)
    }

    async fn document_tags(&self, r: &Resolved) -> Result<Vec<Tag>, ApiError> {
        if r.ownership == Ownership::Amazon {
            return Ok(vec![]);
        }
        self.store.tags(&r.doc.account, &r.doc.region, RESOURCE_TYPE, &r.doc.name).await.map_err(store_error)
    }

    async fn description(&self, r: &Resolved) -> Result<DocumentDescription, ApiError> {
        let tags = self.document_tags(r).await?;
        let reviews = if r.doc_type()? == DocumentType::AutomationChangeTemplate && r.ownership != Ownership::Amazon {
            self.store
                .document_reviews(&r.doc.account, &r.doc.region, &r.doc.name, r.version.version, 0, 1000)
                .await
                .map_err(store_error)?
        } else {
            vec![]
        };
        describe_version(r, tags, &reviews)
    }
}

fn tag_list(tags: Vec<Tag>) -> Vec<ssmd_model::shapes::Tag> {
    tags.into_iter().map(|t| ssmd_model::shapes::Tag { key: t.key, value: t.value }).collect()
}

/// A list the store holds as JSON text; `None` when empty. Text that does not read back (as
/// the typed list) is an internal error.
fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Option<Vec<T>>, ApiError> {
    let list = serde_json::from_str::<Vec<T>>(text)
        .map_err(|e| ApiError::internal(format!("store holds an unreadable list: {e}")))?;
    Ok(Some(list).filter(|l| !l.is_empty()))
}

/// [`json_list`] of an optional column.
fn opt_json_list<T: serde::de::DeserializeOwned>(text: Option<&str>) -> Result<Option<Vec<T>>, ApiError> {
    text.map_or(Ok(None), json_list)
}

fn describe_version(r: &Resolved, tags: Vec<Tag>, reviews: &[ReviewRow]) -> Result<DocumentDescription, ApiError> {
    let v = &r.version;
    let review_status = r.review_status()?;
    Ok(DocumentDescription {
        hash: Some(v.hash.clone()),
        hash_type: Some(DocumentHashType::Sha256),
        name: Some(r.reported_name()),
        display_name: v.display_name.clone(),
        version_name: v.version_name.clone(),
        owner: Some(r.owner()),
        created_date: Some(epoch_seconds(v.created_ms)),
        status: Some(DocumentStatus::Active),
        document_version: Some(v.version.to_string()),
        description: v.description.clone(),
        parameters: json_list(&v.parameters)?,
        platform_types: json_list(&v.platform_types)?,
        document_type: Some(r.doc_type()?),
        schema_version: v.schema_version.clone(),
        latest_version: Some(r.doc.latest_version.to_string()),
        default_version: Some(r.doc.default_version.to_string()),
        document_format: Some(r.format()?),
        target_type: r.doc.target_type.clone(),
        tags: Some(tag_list(tags)),
        attachments_information: opt_json_list(v.attachments.as_deref())?,
        requires: opt_json_list(v.requires.as_deref())?,
        review_information: if reviews.is_empty() {
            None
        } else {
            Some(
                reviews
                    .iter()
                    .map(|rv| {
                        Ok(ReviewInformation {
                            reviewed_time: Some(epoch_seconds(rv.created_ms)),
                            status: Some(stored(&rv.status)?),
                            reviewer: Some(rv.reviewer.clone()),
                        })
                    })
                    .collect::<Result<_, ApiError>>()?,
            )
        },
        approved_version: (review_status == Some(ReviewStatus::Approved)).then(|| v.version.to_string()),
        pending_review_version: (review_status == Some(ReviewStatus::Pending)).then(|| v.version.to_string()),
        review_status,
        ..Default::default()
    })
}

/// The parameter list DescribeDocument reports, as stored JSON.
pub(crate) fn parameters_json(params: &[document::DocParameter]) -> String {
    let list: Vec<Value> = params
        .iter()
        .map(|p| {
            let mut o = json!({"Name": p.name, "Type": p.kind});
            if let Some(d) = &p.description {
                o["Description"] = json!(d);
            }
            if let Some(d) = &p.default_value {
                o["DefaultValue"] = json!(d);
            }
            o
        })
        .collect();
    Value::Array(list).to_string()
}

/// The platforms a document runs on, derived from its actions as SSM does.
pub(crate) fn platform_types(doc_type: DocumentType, parsed: &Parsed) -> Vec<PlatformType> {
    let all = || PlatformType::ALL.to_vec();
    if doc_type != DocumentType::Command {
        return all();
    }
    let mut actions: Vec<String> = Vec::new();
    if let Some(steps) = parsed.value.get("mainSteps").and_then(Value::as_array) {
        actions.extend(steps.iter().filter_map(|s| s.get("action").and_then(Value::as_str)).map(str::to_string));
    }
    if let Some(cfg) = parsed.value.get("runtimeConfig").and_then(Value::as_object) {
        actions.extend(cfg.keys().cloned());
    }
    let mut out: Vec<PlatformType> = Vec::new();
    for a in actions {
        let p: &[PlatformType] = match a.as_str() {
            "aws:runShellScript" => &[PlatformType::Linux, PlatformType::MacOS],
            "aws:runPowerShellScript" => &[PlatformType::Windows],
            _ => PlatformType::ALL,
        };
        for x in p {
            if !out.contains(x) {
                out.push(*x);
            }
        }
    }
    if out.is_empty() { all() } else { out }
}

/// Validates content for a type and builds the version row.
/// What a CreateDocument or UpdateDocument request says about the new version.
struct NewVersion<'a> {
    content: &'a str,
    format: DocumentFormat,
    version_name: Option<String>,
    display_name: Option<String>,
    requires: Option<&'a Vec<DocumentRequires>>,
    attachments: Option<&'a Vec<AttachmentsSource>>,
}

fn build_version(new: NewVersion, doc_type: DocumentType, version: i64, now_ms: i64) -> Result<VersionRow, ApiError> {
    let NewVersion { content, format, version_name, display_name, requires, attachments } = new;
    if content.len() > document::MAX_CONTENT_BYTES {
        return Err(ApiError::new(
            ErrorCode::MaxDocumentSizeExceeded,
            format!(
                "The content of the document is {} bytes; the limit is {} bytes.",
                content.len(),
                document::MAX_CONTENT_BYTES
            ),
        ));
    }
    let parsed = document::parse(content, format, doc_type).map_err(doc_error)?;
    let attachments_info = attachments.map(|a| {
        Value::Array(
            a.iter()
                .map(|s| json!({"Name": s.name.clone().unwrap_or_else(|| s.key.map(|k| k.to_string()).unwrap_or_default())}))
                .collect(),
        )
        .to_string()
    });
    Ok(VersionRow {
        version,
        version_name,
        content: content.to_string(),
        format: format.to_string(),
        hash: document::sha256_hex(content),
        schema_version: parsed.schema_version.clone(),
        description: parsed.description.clone(),
        parameters: parameters_json(&parsed.parameters),
        platform_types: json!(platform_types(doc_type, &parsed)).to_string(),
        requires: requires.map(|r| serde_json::to_string(r).unwrap_or_default()),
        attachments: attachments_info,
        display_name,
        review_status: (doc_type == DocumentType::AutomationChangeTemplate)
            .then(|| ReviewStatus::NotReviewed.to_string()),
        created_ms: now_ms,
    })
}

pub(crate) async fn create(
    svc: &Service,
    caller: &Caller,
    i: CreateDocumentRequest,
) -> Result<CreateDocumentResult, ApiError> {
    let lower = i.name.to_ascii_lowercase();
    if RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(validation(
            &i.name,
            "name",
            "Member must not start with a reserved prefix (aws, amazon, amzn, AWSEC2, AWSConfigRemediation, AWSSupport)",
        ));
    }
    if let Some(tags) = &i.tags {
        crate::tags::check_new(tags)?;
    }
    let doc_type = i.document_type.unwrap_or(DocumentType::Command);
    let format = i.document_format.unwrap_or(DocumentFormat::Json);
    let now = svc.now_ms();
    let version = build_version(
        NewVersion {
            content: &i.content,
            format,
            version_name: i.version_name.clone(),
            display_name: i.display_name.clone(),
            requires: i.requires.as_ref(),
            attachments: i.attachments.as_ref(),
        },
        doc_type,
        1,
        now,
    )?;
    let doc = DocumentRow {
        account: caller.account.clone(),
        region: caller.region.clone(),
        name: i.name.clone(),
        doc_type: doc_type.to_string(),
        target_type: i.target_type.clone(),
        default_version: 1,
        latest_version: 1,
        created_ms: now,
    };
    let tags: Vec<ssmd_store::Tag> =
        i.tags.iter().flatten().map(|t| ssmd_store::Tag { key: t.key.clone(), value: t.value.clone() }).collect();
    match svc.store.create_document(&doc, &version, &tags).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                ErrorCode::DocumentAlreadyExists,
                format!("Document with same name {} already exists", i.name),
            ));
        }
        Err(e) => return Err(store_error(e)),
    }
    let r = Resolved { ownership: Ownership::Own, doc, version };
    Ok(CreateDocumentResult { document_description: Some(svc.description(&r).await?) })
}

pub(crate) async fn get(svc: &Service, caller: &Caller, i: GetDocumentRequest) -> Result<GetDocumentResult, ApiError> {
    let r = svc.resolve_document(caller, &i.name, i.document_version.as_deref(), i.version_name.as_deref()).await?;
    let stored = r.format()?;
    let wanted = i.document_format.unwrap_or(stored);
    if (wanted == DocumentFormat::Text) != (stored == DocumentFormat::Text) {
        return Err(ApiError::new(
            ErrorCode::InvalidDocumentOperation,
            format!("The document is stored as {stored}; it can't be returned as {wanted}."),
        ));
    }
    let content = document::convert(&r.version.content, stored, wanted)
        .map_err(|e| ApiError::internal(format!("converting content: {e}")))?;
    let v = &r.version;
    Ok(GetDocumentResult {
        name: Some(r.reported_name()),
        created_date: Some(epoch_seconds(v.created_ms)),
        display_name: v.display_name.clone(),
        version_name: v.version_name.clone(),
        document_version: Some(v.version.to_string()),
        status: Some(DocumentStatus::Active),
        content: Some(content),
        document_type: Some(r.doc_type()?),
        document_format: Some(wanted),
        requires: opt_json_list(v.requires.as_deref())?,
        review_status: r.review_status()?,
        ..Default::default()
    })
}

pub(crate) async fn describe(
    svc: &Service,
    caller: &Caller,
    i: DescribeDocumentRequest,
) -> Result<DescribeDocumentResult, ApiError> {
    let r = svc.resolve_document(caller, &i.name, i.document_version.as_deref(), i.version_name.as_deref()).await?;
    Ok(DescribeDocumentResult { document: Some(svc.description(&r).await?) })
}

/// One ListDocuments filter, normalised from either filter style: `DocumentFilterList` keys are
/// the model's `DocumentFilterKey`; `Filters` keys are free text (the model gives them a pattern,
/// not an enum), and those that name a `DocumentFilterKey` mean the same filter.
struct Filter {
    key: String,
    values: Vec<String>,
}

impl Filter {
    /// The key as the model's `DocumentFilterKey`, when it is one.
    fn model_key(&self) -> Option<DocumentFilterKey> {
        DocumentFilterKey::from_wire(&self.key)
    }
}

fn identifier(r: &Resolved, tags: Vec<Tag>) -> Result<DocumentIdentifier, ApiError> {
    let v = &r.version;
    Ok(DocumentIdentifier {
        name: Some(r.reported_name()),
        created_date: Some(epoch_seconds(v.created_ms)),
        display_name: v.display_name.clone(),
        owner: Some(r.owner()),
        version_name: v.version_name.clone(),
        platform_types: json_list(&v.platform_types)?,
        document_version: Some(v.version.to_string()),
        document_type: Some(r.doc_type()?),
        schema_version: v.schema_version.clone(),
        document_format: Some(r.format()?),
        target_type: r.doc.target_type.clone(),
        tags: Some(tag_list(tags)),
        requires: opt_json_list(v.requires.as_deref())?,
        review_status: r.review_status()?,
        ..Default::default()
    })
}

/// Whether an `Owner` filter value selects documents of this ownership.
fn owner_matches(value: &str, ownership: &Ownership) -> bool {
    match value {
        "Self" => *ownership == Ownership::Own,
        "Amazon" | "Public" => *ownership == Ownership::Amazon,
        "Private" | "ThirdParty" => *ownership == Ownership::Shared,
        "All" => true,
        _ => false,
    }
}

fn matches(f: &Filter, r: &Resolved, tags: &[Tag]) -> Result<bool, ApiError> {
    let any = |pred: &dyn Fn(&str) -> bool| f.values.iter().any(|v| pred(v));
    if let Some(key) = f.model_key() {
        return Ok(match key {
            DocumentFilterKey::Name => any(&|v| r.doc.name.starts_with(v)),
            DocumentFilterKey::DocumentType => any(&|v| r.doc.doc_type == v),
            DocumentFilterKey::PlatformTypes => any(&|v| r.version.platform_types.contains(&format!("\"{v}\""))),
            DocumentFilterKey::Owner => any(&|v| owner_matches(v, &r.ownership)),
        });
    }
    Ok(match f.key.as_str() {
        "SearchKeyword" => any(&|v| r.doc.name.to_lowercase().contains(&v.to_lowercase())),
        "TargetType" => any(&|v| r.doc.target_type.as_deref() == Some(v)),
        k if k.starts_with("tag:") => {
            let key = &k[4..];
            tags.iter().any(|t| t.key == key && (f.values.is_empty() || f.values.contains(&t.value)))
        }
        "tag-key" | "TagKeys" => f.values.iter().any(|v| tags.iter().any(|t| &t.key == v)),
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidFilterKey,
                format!("The filter key {other} isn't supported by ListDocuments."),
            ));
        }
    })
}

pub(crate) async fn list(
    svc: &Service,
    caller: &Caller,
    i: ListDocumentsRequest,
) -> Result<ListDocumentsResult, ApiError> {
    const OP: &str = "ListDocuments";
    let mut filters: Vec<Filter> = Vec::new();
    for f in i.document_filter_list.iter().flatten() {
        filters.push(Filter { key: f.key.to_string(), values: vec![f.value.clone()] });
    }
    for f in i.filters.iter().flatten() {
        let key = f.key.clone().unwrap_or_default();
        if key.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidFilterKey, "A filter needs a Key."));
        }
        filters.push(Filter { key, values: f.values.clone().unwrap_or_default() });
    }
    let owners: Vec<&str> = filters
        .iter()
        .filter(|f| f.model_key() == Some(DocumentFilterKey::Owner))
        .flat_map(|f| f.values.iter().map(String::as_str))
        .collect();
    // Owner filters choose which sources are read at all.
    let want = |o: &Ownership| owners.is_empty() || owners.iter().any(|v| owner_matches(v, o));
    let limit = page_size(i.max_results, 50) as usize;
    let after = svc.open_token(caller, OP, i.next_token.as_deref())?;
    let after_key: (String, String) = match &after {
        Some(v) => (v[0].as_str().unwrap_or_default().to_string(), v[1].as_str().unwrap_or_default().to_string()),
        None => (String::new(), String::new()),
    };
    let mut candidates: Vec<(Resolved, Vec<Tag>)> = Vec::new();
    let keep = |r: Resolved, tags: Vec<Tag>, out: &mut Vec<(Resolved, Vec<Tag>)>| -> Result<(), ApiError> {
        if (r.doc.name.clone(), r.owner()) <= after_key {
            return Ok(());
        }
        for f in filters.iter().filter(|f| f.model_key() != Some(DocumentFilterKey::Owner)) {
            if !matches(f, &r, &tags)? {
                return Ok(());
            }
        }
        out.push((r, tags));
        Ok(())
    };
    if want(&Ownership::Amazon) {
        for a in amazon::all() {
            keep(
                Resolved { ownership: Ownership::Amazon, doc: a.doc.clone(), version: a.version.clone() },
                vec![],
                &mut candidates,
            )?;
        }
    }
    if want(&Ownership::Shared) {
        for (doc, version) in
            svc.store.documents_shared_with(&caller.account, &caller.region).await.map_err(store_error)?
        {
            let r = Resolved { ownership: Ownership::Shared, doc, version };
            let tags = svc.document_tags(&r).await?;
            keep(r, tags, &mut candidates)?;
        }
    }
    if want(&Ownership::Own) {
        // Own documents are read in name order, a batch at a time, until a page is full.
        let mut cursor = after_key.0.clone();
        let mut own = Vec::new();
        loop {
            let batch =
                svc.store.documents_page(&caller.account, &caller.region, &cursor, 200).await.map_err(store_error)?;
            let n = batch.len();
            let names: Vec<String> = batch.iter().map(|(d, _)| d.name.clone()).collect();
            let mut tags = svc
                .store
                .tags_of_many(&caller.account, &caller.region, RESOURCE_TYPE, &names)
                .await
                .map_err(store_error)?;
            for (doc, version) in batch {
                cursor = doc.name.clone();
                let t = tags.remove(&doc.name).unwrap_or_default();
                keep(Resolved { ownership: Ownership::Own, doc, version }, t, &mut own)?;
            }
            if own.len() > limit || n < 200 {
                break;
            }
        }
        candidates.extend(own);
    }
    candidates.sort_by(|a, b| (&a.0.doc.name, a.0.owner()).cmp(&(&b.0.doc.name, b.0.owner())));
    let more = candidates.len() > limit;
    candidates.truncate(limit);
    let next_token = match (more, candidates.last()) {
        (true, Some((r, _))) => Some(svc.issue_token(caller, OP, json!([r.doc.name, r.owner()]))),
        _ => None,
    };
    Ok(ListDocumentsResult {
        document_identifiers: Some(
            candidates.into_iter().map(|(r, tags)| identifier(&r, tags)).collect::<Result<_, ApiError>>()?,
        ),
        next_token,
    })
}

pub(crate) async fn update(
    svc: &Service,
    caller: &Caller,
    i: UpdateDocumentRequest,
) -> Result<UpdateDocumentResult, ApiError> {
    let doc = svc.own_document(caller, &i.name).await?;
    if let Some(v) = i.document_version.as_deref()
        && v != "$LATEST"
        && v != doc.latest_version.to_string()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidDocumentVersion,
            format!("Only the latest version of a document can be updated: specify $LATEST or {}.", doc.latest_version),
        ));
    }
    if doc.latest_version >= MAX_VERSIONS {
        return Err(ApiError::new(
            ErrorCode::DocumentVersionLimitExceeded,
            format!(
                "The document has reached the limit of {MAX_VERSIONS} versions. Delete one or more versions and try again."
            ),
        ));
    }
    let latest = svc
        .store
        .document_version(&caller.account, &caller.region, &i.name, doc.latest_version)
        .await
        .map_err(store_error)?;
    let format = match (i.document_format, &latest) {
        (Some(f), _) => f,
        (None, Some(l)) => stored(&l.format)?,
        (None, None) => DocumentFormat::Json,
    };
    let hash = document::sha256_hex(&i.content);
    if svc
        .store
        .document_version_with_hash(&caller.account, &caller.region, &i.name, &hash)
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Err(ApiError::new(
            ErrorCode::DuplicateDocumentContent,
            "The content of the document matches an existing version of it. Change the content and try again.",
        ));
    }
    if let Some(vn) = &i.version_name
        && svc
            .store
            .document_version_named(&caller.account, &caller.region, &i.name, vn)
            .await
            .map_err(store_error)?
            .is_some()
    {
        return Err(ApiError::new(
            ErrorCode::DuplicateDocumentVersionName,
            format!(
                "The version name {vn} has already been used in this document. Specify a different version name, and then try again."
            ),
        ));
    }
    let display_name = i.display_name.clone().or_else(|| latest.as_ref().and_then(|l| l.display_name.clone()));
    let version = build_version(
        NewVersion {
            content: &i.content,
            format,
            version_name: i.version_name.clone(),
            display_name,
            requires: None,
            attachments: i.attachments.as_ref(),
        },
        stored(&doc.doc_type)?,
        doc.latest_version + 1,
        svc.now_ms(),
    )?;
    match svc
        .store
        .add_document_version(
            &caller.account,
            &caller.region,
            &i.name,
            &version,
            doc.latest_version,
            i.target_type.as_deref(),
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::new(
                ErrorCode::TooManyUpdates,
                "The document was updated concurrently; retry the update.",
            ));
        }
        Err(e) => return Err(store_error(e)),
    }
    let doc =
        DocumentRow { latest_version: version.version, target_type: i.target_type.clone().or(doc.target_type), ..doc };
    let r = Resolved { ownership: Ownership::Own, doc, version };
    Ok(UpdateDocumentResult { document_description: Some(svc.description(&r).await?) })
}

pub(crate) async fn update_default_version(
    svc: &Service,
    caller: &Caller,
    i: UpdateDocumentDefaultVersionRequest,
) -> Result<UpdateDocumentDefaultVersionResult, ApiError> {
    let doc = svc.own_document(caller, &i.name).await?;
    let VersionSel::Number(n) = version_sel(Some(&i.document_version))? else {
        return Err(invalid_version());
    };
    let v = svc
        .store
        .document_version(&caller.account, &caller.region, &doc.name, n)
        .await
        .map_err(store_error)?
        .ok_or_else(invalid_version)?;
    if !svc
        .store
        .set_default_document_version(&caller.account, &caller.region, &doc.name, n)
        .await
        .map_err(store_error)?
    {
        return Err(invalid_document());
    }
    Ok(UpdateDocumentDefaultVersionResult {
        description: Some(DocumentDefaultVersionDescription {
            name: Some(doc.name),
            default_version: Some(n.to_string()),
            default_version_name: v.version_name,
        }),
    })
}

pub(crate) async fn list_versions(
    svc: &Service,
    caller: &Caller,
    i: ListDocumentVersionsRequest,
) -> Result<ListDocumentVersionsResult, ApiError> {
    const OP: &str = "ListDocumentVersions";
    let limit = page_size(i.max_results, 50);
    let after = svc.open_token(caller, OP, i.next_token.as_deref())?.and_then(|v| v.as_i64()).unwrap_or(0);
    let loc = svc.locate(caller, &i.name).await?;
    let (doc, versions) = match loc.amazon {
        Some(a) => (a.doc.clone(), if after == 0 { vec![a.version.clone()] } else { vec![] }),
        None => {
            let doc = svc
                .store
                .document(&loc.account, &caller.region, &loc.name)
                .await
                .map_err(store_error)?
                .ok_or_else(invalid_document)?;
            let mut versions = svc
                .store
                .document_versions(&loc.account, &caller.region, &loc.name, after, limit + 1)
                .await
                .map_err(store_error)?;
            // A share of one version shows only that version.
            if let Some(n) = loc.share.as_ref().and_then(|s| s.shared_version.parse::<i64>().ok()) {
                versions.retain(|v| v.version == n);
            }
            (doc, versions)
        }
    };
    let more = versions.len() as i64 > limit;
    let page: Vec<VersionRow> = versions.into_iter().take(limit as usize).collect();
    let next_token = match (more, page.last()) {
        (true, Some(v)) => Some(svc.issue_token(caller, OP, json!(v.version))),
        _ => None,
    };
    let doc_type: DocumentType = stored(&doc.doc_type)?;
    Ok(ListDocumentVersionsResult {
        document_versions: Some(
            page.into_iter()
                .map(|v| {
                    Ok(DocumentVersionInfo {
                        name: Some(doc.name.clone()),
                        display_name: v.display_name.clone(),
                        document_version: Some(v.version.to_string()),
                        version_name: v.version_name.clone(),
                        created_date: Some(epoch_seconds(v.created_ms)),
                        is_default_version: Some(v.version == doc.default_version),
                        document_format: Some(stored(&v.format)?),
                        status: Some(DocumentStatus::Active),
                        review_status: review_status(doc_type, &v)?,
                        ..Default::default()
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        ),
        next_token,
    })
}

pub(crate) async fn delete(
    svc: &Service,
    caller: &Caller,
    i: DeleteDocumentRequest,
) -> Result<DeleteDocumentResult, ApiError> {
    let doc = svc.own_document(caller, &i.name).await?;
    let shares = svc.store.document_shares(&caller.account, &caller.region, &doc.name).await.map_err(store_error)?;
    if !shares.is_empty() && i.document_version.is_none() && i.version_name.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidDocumentOperation,
            "The document is shared with other accounts. Stop sharing it (ModifyDocumentPermission) before you delete it.",
        ));
    }
    if i.document_version.is_none() && i.version_name.is_none() {
        svc.store.delete_document(&caller.account, &caller.region, &doc.name).await.map_err(store_error)?;
        return Ok(DeleteDocumentResult {});
    }
    let r = svc.resolve_document(caller, &doc.name, i.document_version.as_deref(), i.version_name.as_deref()).await?;
    if r.version.version == r.doc.default_version {
        return Err(ApiError::new(
            ErrorCode::InvalidDocumentOperation,
            "You can't delete the default version of a document. Make another version the default, or delete the whole document.",
        ));
    }
    if !svc
        .store
        .delete_document_version(&caller.account, &caller.region, &doc.name, r.version.version)
        .await
        .map_err(store_error)?
    {
        return Err(invalid_version());
    }
    Ok(DeleteDocumentResult {})
}

pub(crate) async fn update_metadata(
    svc: &Service,
    caller: &Caller,
    i: UpdateDocumentMetadataRequest,
) -> Result<UpdateDocumentMetadataResponse, ApiError> {
    let doc = svc.own_document(caller, &i.name).await?;
    if stored::<DocumentType>(&doc.doc_type)? != DocumentType::AutomationChangeTemplate {
        return Err(ApiError::new(
            ErrorCode::InvalidDocumentOperation,
            format!(
                "Review metadata applies to Automation.ChangeTemplate documents; {} is a {} document.",
                doc.name, doc.doc_type
            ),
        ));
    }
    let r = svc.resolve_document(caller, &doc.name, i.document_version.as_deref().or(Some("$LATEST")), None).await?;
    let status = match i.document_reviews.action {
        DocumentReviewAction::SendForReview => ReviewStatus::Pending,
        DocumentReviewAction::Approve => ReviewStatus::Approved,
        DocumentReviewAction::Reject => ReviewStatus::Rejected,
        DocumentReviewAction::UpdateReview => r.review_status()?.unwrap_or(ReviewStatus::NotReviewed),
    };
    let comment = i.document_reviews.comment.as_ref().and_then(|c| c.iter().find_map(|c| c.content.clone()));
    let review = ReviewRow {
        version: r.version.version,
        seq: 0,
        reviewer: caller.arn.clone(),
        status: status.to_string(),
        comment,
        created_ms: svc.now_ms(),
    };
    svc.store.add_document_review(&caller.account, &caller.region, &doc.name, &review).await.map_err(store_error)?;
    Ok(UpdateDocumentMetadataResponse {})
}

pub(crate) async fn metadata_history(
    svc: &Service,
    caller: &Caller,
    i: ListDocumentMetadataHistoryRequest,
) -> Result<ListDocumentMetadataHistoryResponse, ApiError> {
    const OP: &str = "ListDocumentMetadataHistory";
    let r = svc.resolve_document(caller, &i.name, i.document_version.as_deref().or(Some("$LATEST")), None).await?;
    if r.ownership != Ownership::Own {
        return Err(invalid_document());
    }
    let limit = page_size(i.max_results, 50);
    let after = svc.open_token(caller, OP, i.next_token.as_deref())?.and_then(|v| v.as_i64()).unwrap_or(0);
    let rows = svc
        .store
        .document_reviews(&caller.account, &caller.region, &r.doc.name, r.version.version, after, limit + 1)
        .await
        .map_err(store_error)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<ReviewRow> = rows.into_iter().take(limit as usize).collect();
    let next_token = match (more, page.last()) {
        (true, Some(rv)) => Some(svc.issue_token(caller, OP, json!(rv.seq))),
        _ => None,
    };
    Ok(ListDocumentMetadataHistoryResponse {
        name: Some(r.doc.name.clone()),
        document_version: Some(r.version.version.to_string()),
        author: Some(caller.arn.clone()),
        metadata: Some(DocumentMetadataResponseInfo {
            reviewer_response: Some(
                page.into_iter()
                    .map(|rv| {
                        Ok(DocumentReviewerResponseSource {
                            create_time: Some(epoch_seconds(rv.created_ms)),
                            updated_time: Some(epoch_seconds(rv.created_ms)),
                            review_status: Some(stored(&rv.status)?),
                            comment: rv.comment.map(|c| {
                                vec![DocumentReviewCommentSource {
                                    r#type: Some(DocumentReviewCommentType::Comment),
                                    content: Some(c),
                                }]
                            }),
                            reviewer: Some(rv.reviewer),
                        })
                    })
                    .collect::<Result<_, ApiError>>()?,
            ),
        }),
        next_token,
    })
}

pub(crate) async fn describe_permission(
    svc: &Service,
    caller: &Caller,
    i: DescribeDocumentPermissionRequest,
) -> Result<DescribeDocumentPermissionResponse, ApiError> {
    const OP: &str = "DescribeDocumentPermission";
    // `Share` is the only PermissionType the model has; validation refused any other.
    let DocumentPermissionType::Share = i.permission_type;
    let doc = svc.own_document(caller, &i.name).await?;
    let shares = svc.store.document_shares(&caller.account, &caller.region, &doc.name).await.map_err(store_error)?;
    let limit = page_size(i.max_results, 50) as usize;
    let after = svc
        .open_token(caller, OP, i.next_token.as_deref())?
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let rest: Vec<ShareRow> = shares.into_iter().filter(|s| s.shared_with > after).collect();
    let more = rest.len() > limit;
    let page: Vec<ShareRow> = rest.into_iter().take(limit).collect();
    let next_token = match (more, page.last()) {
        (true, Some(s)) => Some(svc.issue_token(caller, OP, json!(s.shared_with))),
        _ => None,
    };
    Ok(DescribeDocumentPermissionResponse {
        account_ids: Some(page.iter().map(|s| s.shared_with.clone()).collect()),
        account_sharing_info_list: Some(
            page.iter()
                .map(|s| AccountSharingInfo {
                    account_id: Some(s.shared_with.clone()),
                    shared_document_version: Some(s.shared_version.clone()),
                })
                .collect(),
        ),
        next_token,
    })
}

/// `all` in any case means every account.
fn normalise_account(a: &str) -> String {
    if a.eq_ignore_ascii_case("all") { "All".into() } else { a.to_string() }
}

pub(crate) async fn modify_permission(
    svc: &Service,
    caller: &Caller,
    i: ModifyDocumentPermissionRequest,
) -> Result<ModifyDocumentPermissionResponse, ApiError> {
    let DocumentPermissionType::Share = i.permission_type;
    let doc = svc.own_document(caller, &i.name).await?;
    let shared_version = i.shared_document_version.clone().unwrap_or_else(|| "$DEFAULT".into());
    if let Ok(n) = shared_version.parse::<i64>()
        && svc
            .store
            .document_version(&caller.account, &caller.region, &doc.name, n)
            .await
            .map_err(store_error)?
            .is_none()
    {
        return Err(invalid_version());
    }
    let add: Vec<ShareRow> = i
        .account_ids_to_add
        .iter()
        .flatten()
        .map(|a| ShareRow { shared_with: normalise_account(a), shared_version: shared_version.clone() })
        .collect();
    let remove: Vec<String> = i.account_ids_to_remove.iter().flatten().map(|a| normalise_account(a)).collect();
    let existing = svc.store.document_shares(&caller.account, &caller.region, &doc.name).await.map_err(store_error)?;
    let mut after: Vec<&str> =
        existing.iter().map(|s| s.shared_with.as_str()).filter(|a| !remove.iter().any(|r| r == a)).collect();
    for a in &add {
        if !after.contains(&a.shared_with.as_str()) {
            after.push(&a.shared_with);
        }
    }
    if after.len() > MAX_SHARES {
        return Err(ApiError::new(
            ErrorCode::DocumentPermissionLimit,
            format!("A document can be shared with at most {MAX_SHARES} accounts."),
        ));
    }
    svc.store
        .change_document_shares(&caller.account, &caller.region, &doc.name, &add, &remove)
        .await
        .map_err(store_error)?;
    Ok(ModifyDocumentPermissionResponse {})
}
