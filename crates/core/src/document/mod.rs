//! SSM documents: parsing content in JSON, YAML or TEXT, validating it for its document type,
//! converting between formats on read, hashing, and extracting the parameter list that
//! DescribeDocument reports.

pub mod calendar;
pub mod validate;

use serde_json::Value;
use sha2::{Digest, Sha256};
use ssmd_model::enums::{DocumentFormat, DocumentType};

/// Why a document's content was refused; each maps to one SSM error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// `InvalidDocumentContent`: the message names the exact problem.
    #[error("{0}")]
    InvalidContent(String),
    /// `InvalidDocumentSchemaVersion`: the schemaVersion is not one ssmd supports for the type.
    #[error("{0}")]
    InvalidSchemaVersion(String),
}

/// One parameter a document declares, as DescribeDocument reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocParameter {
    /// The parameter's name.
    pub name: String,
    /// Its declared type (`String`, `StringList`, `Integer`, `Boolean`, `StringMap`, `MapList`).
    pub kind: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// Its default rendered as text, if any.
    pub default_value: Option<String>,
}

/// What parsing and validating a document yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The content as a JSON value (for TEXT documents: a string value).
    pub value: Value,
    /// The document's `schemaVersion` (ChangeCalendar documents report none).
    pub schema_version: Option<String>,
    /// The declared parameters, in document order.
    pub parameters: Vec<DocParameter>,
    /// The top-level `description`, if any.
    pub description: Option<String>,
}

/// Maximum content size SSM accepts (64 KB); larger is `MaxDocumentSizeExceeded`.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// Parses `content` written in `format` and validates it as a document of `doc_type`.
pub fn parse(content: &str, format: DocumentFormat, doc_type: DocumentType) -> Result<Parsed, DocError> {
    if doc_type == DocumentType::ChangeCalendar {
        if format != DocumentFormat::Text {
            return Err(DocError::InvalidContent(
                "ChangeCalendar documents must use DocumentFormat TEXT with iCalendar content.".into(),
            ));
        }
        calendar::validate(content)?;
        return Ok(Parsed {
            value: Value::String(content.to_string()),
            schema_version: None,
            parameters: vec![],
            description: None,
        });
    }
    let value = match format {
        DocumentFormat::Json => serde_json::from_str::<Value>(content)
            .map_err(|e| DocError::InvalidContent(format!("The content is not valid JSON: {e}")))?,
        DocumentFormat::Yaml => parse_yaml(content)?,
        DocumentFormat::Text => {
            return Err(DocError::InvalidContent(format!(
                "DocumentFormat TEXT is only supported for ChangeCalendar documents, not {doc_type}."
            )));
        }
    };
    if !value.is_object() {
        return Err(DocError::InvalidContent(
            "The document content must be an object (a JSON object or YAML mapping).".into(),
        ));
    }
    validate::validate(doc_type, &value)?;
    let schema_version = value.get("schemaVersion").map(scalar_text);
    let description = value.get("description").and_then(Value::as_str).map(str::to_string);
    Ok(Parsed { schema_version, parameters: parameters(&value), description, value })
}

fn parse_yaml(content: &str) -> Result<Value, DocError> {
    serde_saphyr::from_str::<Value>(content)
        .map_err(|e| DocError::InvalidContent(format!("The content is not valid YAML: {e}")))
}

/// Renders a scalar as text (`0.3` stays `0.3`, strings are unquoted).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parameters(doc: &Value) -> Vec<DocParameter> {
    let Some(params) = doc.get("parameters").and_then(Value::as_object) else {
        return vec![];
    };
    params
        .iter()
        .map(|(name, def)| DocParameter {
            name: name.clone(),
            kind: def.get("type").and_then(Value::as_str).unwrap_or("String").to_string(),
            description: def.get("description").and_then(Value::as_str).map(str::to_string),
            default_value: def.get("default").map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        })
        .collect()
}

/// Renders stored content in the requested format. `original` is returned unchanged when no
/// conversion is needed, so a document reads back byte for byte as it was written.
pub fn convert(original: &str, from: DocumentFormat, to: DocumentFormat) -> Result<String, DocError> {
    if from == to || from == DocumentFormat::Text || to == DocumentFormat::Text {
        return Ok(original.to_string());
    }
    let value = match from {
        DocumentFormat::Json => {
            serde_json::from_str::<Value>(original).map_err(|e| DocError::InvalidContent(e.to_string()))?
        }
        _ => parse_yaml(original)?,
    };
    match to {
        DocumentFormat::Json => {
            serde_json::to_string_pretty(&value).map_err(|e| DocError::InvalidContent(e.to_string()))
        }
        _ => serde_saphyr::to_string(&value).map_err(|e| DocError::InvalidContent(e.to_string())),
    }
}

/// The SHA-256 hash of the content, hex encoded, as SSM reports `Hash` with `HashType: Sha256`.
pub fn sha256_hex(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}
