//! Automation: StartAutomationExecution and the operations that read and steer executions
//! (`start`, `query`, `control`), the wire form of an execution (`report`), and the engine that
//! drives executions in the background (`engine`, with the work of steps in `actions`).
//!
//! The state machine itself is pure (`ssmd_core::automation::machine`); everything here loads
//! state, applies a transition and writes it back with a version check, so API calls, engine
//! workers and replicas can all act on one execution without losing an update.

mod actions;
mod admission;
pub(crate) mod control;
mod engine;
mod fanout;
pub(crate) mod query;
mod report;
pub(crate) mod start;

pub use engine::{Automation, JOB_KIND};

use crate::{Service, store_error};
use ssmd_core::automation::execution::Execution;
use ssmd_core::automation::runbook::Runbook;
use ssmd_model::{ApiError, Caller, ErrorCode};
use ssmd_store::ExecutionRow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The tag resource type of executions.
pub(crate) const RESOURCE_TYPE: &str = ssmd_model::enums::ResourceTypeForTagging::Automation.as_str();

/// Automation settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Executions of one account and region running at once (InProgress, Waiting, Cancelling);
    /// more wait in Pending.
    pub max_running: i64,
    /// Executions that may wait in Pending before StartAutomationExecution is refused.
    pub max_queued: i64,
    /// How long an engine's claim on an execution lasts without renewal (another replica takes
    /// the execution over after it).
    pub lease_ms: i64,
    /// The Python interpreter for aws:executeScript.
    pub python: PathBuf,
    /// Executions one engine drives at once.
    pub workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_running: 100, max_queued: 1000, lease_ms: 30_000, python: "python3".into(), workers: 256 }
    }
}

/// What the service shares with the engine.
pub(crate) struct Shared {
    pub settings: Settings,
    /// This replica's counts of running executions, for admission.
    pub admissions: admission::Admissions,
    runbooks: Mutex<HashMap<String, Arc<Runbook>>>,
    /// Stored document versions already read as runbooks, by their content hash: (runbook hash,
    /// runbook JSON, runbook). Children of a fan-out all start from one version.
    parsed: Mutex<HashMap<String, Parsed>>,
}

/// A document version read as a runbook.
pub(crate) type Parsed = (String, Arc<String>, Arc<Runbook>);

impl Shared {
    pub fn new(settings: Settings) -> Shared {
        Shared {
            settings,
            admissions: Default::default(),
            runbooks: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
        }
    }
}

impl Service {
    /// The runbook with this content hash, parsed once.
    pub(crate) async fn runbook(&self, sha: &str) -> Result<Arc<Runbook>, ApiError> {
        if let Some(r) = self.automation.runbooks.lock().expect("runbook cache").get(sha) {
            return Ok(r.clone());
        }
        let content = self
            .store
            .runbook(sha)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiError::internal(format!("runbook {sha} is missing")))?;
        let value: serde_json::Value =
            serde_json::from_str(&content).map_err(|e| ApiError::internal(format!("runbook {sha}: {e}")))?;
        let rb = Arc::new(Runbook::from_document(&value));
        bounded_insert(&self.automation.runbooks, sha, rb.clone());
        Ok(rb)
    }

    /// A stored document version read as a runbook, parsed once per content hash (and
    /// remembered by runbook hash, so the engine need not read it back).
    pub(crate) fn parse_runbook(
        &self,
        content_hash: &str,
        parse: impl FnOnce() -> Result<serde_json::Value, ApiError>,
    ) -> Result<Parsed, ApiError> {
        if let Some(p) = self.automation.parsed.lock().expect("parsed cache").get(content_hash) {
            return Ok(p.clone());
        }
        let value = parse()?;
        let json = Arc::new(value.to_string());
        let sha = ssmd_core::document::sha256_hex(&json);
        let rb = Arc::new(Runbook::from_document(&value));
        let parsed = (sha.clone(), json, rb.clone());
        bounded_insert(&self.automation.parsed, content_hash, parsed.clone());
        bounded_insert(&self.automation.runbooks, &sha, rb);
        Ok(parsed)
    }

    /// The caller's execution, or `AutomationExecutionNotFoundException`.
    pub(crate) async fn own_execution(&self, caller: &Caller, id: &str) -> Result<(ExecutionRow, Execution), ApiError> {
        let row = self
            .store
            .execution(&caller.account, &caller.region, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| not_found(id))?;
        let x = parse_state(&row)?;
        Ok((row, x))
    }
}

/// Inserts into a cache, emptying it first when it holds 2,000 entries.
fn bounded_insert<V>(cache: &Mutex<HashMap<String, V>>, key: &str, value: V) {
    let mut c = cache.lock().expect("cache");
    if c.len() >= 2000 {
        c.clear();
    }
    c.insert(key.to_string(), value);
}

/// An execution's state from its row.
pub(crate) fn parse_state(row: &ExecutionRow) -> Result<Execution, ApiError> {
    serde_json::from_str(&row.state).map_err(|e| ApiError::internal(format!("execution {}: {e}", row.id)))
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::AutomationExecutionNotFoundException, format!("Automation Execution {id} is not found."))
}

/// The identity an execution acts as (its account and region, its starter's ARN).
pub(crate) fn caller_of(x: &Execution) -> Caller {
    Caller {
        account: x.account.clone(),
        region: x.region.clone(),
        access_key_id: String::new(),
        arn: x.executed_by.clone(),
    }
}
