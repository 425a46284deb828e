//! Setting a run up: the `--timeout`, `--param` and `--document` flags, the service and the
//! Automation engine on the store, the runbook documents, and the started execution, handed to
//! the [`Runner`] to follow.

use super::output::Printer;
use super::runner::Runner;
use super::{ACCOUNT, EXIT_FAILED, EXIT_INVALID, Fail, Mode, ROOT_ARN, RunArgs, call};
use serde_json::{Value, json};
use ssmd_api::Service;
use ssmd_core::{Clock, SystemClock};
use ssmd_model::{ApiError, Caller, ErrorCode, Operation};
use ssmd_store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Sets everything up, starts the execution and follows it to the end.
pub(super) async fn execute(args: &RunArgs, store: Store, out: &Printer) -> Result<i32, Fail> {
    let timeout = match args.timeout {
        None => None,
        Some(s) => Some(
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Fail::invalid(format!("--timeout must be a positive number of seconds, not {s}")))?,
        ),
    };
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &args.params {
        let (k, v) = pair("--param", p, "NAME=VALUE")?;
        params.entry(k.to_string()).or_default().push(v.to_string());
    }
    let mut extra: Vec<(String, PathBuf)> = Vec::new();
    for d in &args.documents {
        let (k, v) = pair("--document", d, "NAME=FILE")?;
        if extra.iter().any(|(n, _)| n == k) {
            return Err(Fail::invalid(format!("--document {k} is given twice")));
        }
        extra.push((k.to_string(), PathBuf::from(v)));
    }
    let mut name = document_name(&args.file);
    while extra.iter().any(|(n, _)| *n == name) {
        name = format!("{name}-main");
    }

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let settings = ssmd_api::automation::Settings { python: args.python.clone(), ..Default::default() };
    let svc = Arc::new(
        Service::with_settings(store, clock, settings)
            .await
            .map_err(|e| Fail::api(EXIT_FAILED, "starting the service", &e))?,
    );
    let engine = svc.run_background().await.map_err(|e| Fail::api(EXIT_FAILED, "starting the engine", &e))?;
    let caller_as = |arn: &str| Caller {
        account: ACCOUNT.into(),
        region: args.region.clone(),
        access_key_id: String::new(),
        arn: arn.to_string(),
    };
    let approvers: Vec<Caller> = if args.approver_arns.is_empty() {
        vec![caller_as(ROOT_ARN)]
    } else {
        args.approver_arns.iter().map(|a| caller_as(a)).collect()
    };
    let caller = approvers[0].clone();

    let replace = args.keep_data.is_some();
    for (n, path) in &extra {
        register(&svc, &caller, n, path, replace).await?;
    }
    register(&svc, &caller, &name, &args.file, replace).await?;

    let interactive = args.mode == Mode::Interactive;
    let mut input = json!({ "DocumentName": name });
    if !params.is_empty() {
        input["Parameters"] = json!(params);
    }
    if interactive {
        input["Mode"] = json!("Interactive");
    }
    let started = call(&svc, &caller, Operation::StartAutomationExecution, input)
        .await
        .map_err(|e| Fail::api(EXIT_INVALID, format!("starting {name}"), &e))?;
    let id = started["AutomationExecutionId"].as_str().unwrap_or_default().to_string();
    let mode = if interactive { ", Interactive mode" } else { "" };
    out.note(&format!("Running {name} (execution {id}{mode})"));

    let result = Runner::new(svc, caller, approvers, args, out, id, name).follow(timeout).await;
    engine.shutdown().await;
    result
}

/// The document name for a runbook file: its stem, sanitised to `[a-zA-Z0-9_.-]`, at least 3
/// characters, and clear of the prefixes reserved for AWS.
fn document_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '-' }).collect();
    if name.is_empty() {
        name = "runbook".into();
    } else if name.len() < 3 {
        name.push_str("-runbook");
    }
    let lower = name.to_ascii_lowercase();
    if ["aws", "amazon", "amzn"].iter().any(|p| lower.starts_with(p)) {
        name = format!("local-{name}");
    }
    name.truncate(128);
    name
}

/// `YAML` or `JSON`: by extension, else JSON when the content parses as a JSON object.
fn document_format(path: &Path, content: &str) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("json") => "JSON",
        Some("yaml" | "yml") => "YAML",
        _ if serde_json::from_str::<Value>(content).is_ok_and(|v| v.is_object()) => "JSON",
        _ => "YAML",
    }
}

/// Splits `NAME=VALUE`.
fn pair<'a>(flag: &str, text: &'a str, what: &str) -> Result<(&'a str, &'a str), Fail> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(Fail::invalid(format!("{flag} takes {what}, but got \"{text}\""))),
    }
}

/// Creates a runbook document; in a kept database an older document of the same name is replaced.
async fn register(svc: &Service, caller: &Caller, name: &str, path: &Path, replace: bool) -> Result<(), Fail> {
    let content =
        std::fs::read_to_string(path).map_err(|e| Fail::invalid(format!("reading {}: {e}", path.display())))?;
    let input = json!({
        "Name": name,
        "Content": content,
        "DocumentType": "Automation",
        "DocumentFormat": document_format(path, &content),
    });
    let bad = |e: &ApiError| Fail::api(EXIT_INVALID, path.display(), e);
    match call(svc, caller, Operation::CreateDocument, input.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if replace && e.code() == ErrorCode::DocumentAlreadyExists => {
            call(svc, caller, Operation::DeleteDocument, json!({ "Name": name })).await.map_err(|e| bad(&e))?;
            call(svc, caller, Operation::CreateDocument, input).await.map(|_| ()).map_err(|e| bad(&e))
        }
        Err(e) => Err(bad(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_are_sanitised() {
        assert_eq!(document_name(Path::new("dir/my runbook.yaml")), "my-runbook");
        assert_eq!(document_name(Path::new("a.yml")), "a-runbook");
        assert_eq!(document_name(Path::new("AWS-Restart.json")), "local-AWS-Restart");
        assert_eq!(document_name(Path::new("Déploi.yaml")), "D-ploi");
        assert_eq!(document_name(Path::new(".yaml")), ".yaml");
    }

    #[test]
    fn formats_follow_extension_then_content() {
        assert_eq!(document_format(Path::new("x.json"), "schemaVersion: '0.3'"), "JSON");
        assert_eq!(document_format(Path::new("x.yml"), "{}"), "YAML");
        assert_eq!(document_format(Path::new("x.runbook"), "{\"schemaVersion\": \"0.3\"}"), "JSON");
        assert_eq!(document_format(Path::new("x"), "schemaVersion: '0.3'"), "YAML");
    }
}
