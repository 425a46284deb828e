//! Amazon-owned documents that ship with ssmd (owner `Amazon`, readable by every account in
//! every region). Their content is written for ssmd and validated by the same parser as users'
//! documents when first used; a unit test proves they all parse.

use ssmd_core::document;
use ssmd_model::enums::{DocumentFormat, DocumentType};
use ssmd_store::{DocumentRow, VersionRow};
use std::sync::LazyLock;

/// One built-in document.
pub struct AmazonDoc {
    /// The document.
    pub doc: DocumentRow,
    /// Its only version.
    pub version: VersionRow,
}

/// (name, type, format, content).
const SOURCES: &[(&str, DocumentType, DocumentFormat, &str)] = &[
    (
        "AWS-RequestApproval",
        DocumentType::Automation,
        DocumentFormat::Yaml,
        include_str!("../amazon/AWS-RequestApproval.yaml"),
    ),
    (
        "AWS-RunPythonScript",
        DocumentType::Automation,
        DocumentFormat::Yaml,
        include_str!("../amazon/AWS-RunPythonScript.yaml"),
    ),
    (
        "AWS-RunShellScript",
        DocumentType::Command,
        DocumentFormat::Json,
        include_str!("../amazon/AWS-RunShellScript.json"),
    ),
    ("AWS-Sleep", DocumentType::Automation, DocumentFormat::Yaml, include_str!("../amazon/AWS-Sleep.yaml")),
];

/// 2026-01-01T00:00:00Z, the creation date the built-in documents report.
const CREATED_MS: i64 = 1_767_225_600_000;

static DOCS: LazyLock<Vec<AmazonDoc>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .filter_map(|(name, doc_type, format, content)| {
            let parsed = match document::parse(content, *format, *doc_type) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(name, error = %e, "a built-in document does not parse; it is not served");
                    return None;
                }
            };
            let platforms = serde_json::json!(crate::documents::platform_types(*doc_type, &parsed)).to_string();
            let parameters = crate::documents::parameters_json(&parsed.parameters);
            Some(AmazonDoc {
                doc: DocumentRow {
                    account: String::new(),
                    region: String::new(),
                    name: name.to_string(),
                    doc_type: doc_type.to_string(),
                    target_type: None,
                    default_version: 1,
                    latest_version: 1,
                    created_ms: CREATED_MS,
                },
                version: VersionRow {
                    version: 1,
                    content: content.to_string(),
                    format: format.to_string(),
                    hash: document::sha256_hex(content),
                    schema_version: parsed.schema_version,
                    description: parsed.description,
                    parameters,
                    platform_types: platforms,
                    created_ms: CREATED_MS,
                    ..Default::default()
                },
            })
        })
        .collect()
});

/// Every built-in document, by name.
pub fn all() -> &'static [AmazonDoc] {
    &DOCS
}

/// The built-in document with this name.
pub fn find(name: &str) -> Option<&'static AmazonDoc> {
    DOCS.iter().find(|d| d.doc.name == name)
}

/// The names of the built-in documents.
pub fn amazon_documents() -> Vec<&'static str> {
    SOURCES.iter().map(|s| s.0).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_document_parses() {
        assert_eq!(super::all().len(), super::SOURCES.len());
        assert!(super::find("AWS-RunShellScript").is_some());
    }
}
