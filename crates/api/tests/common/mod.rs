//! What the service-level tests share: a service with its engine running on a fresh SQLite
//! file and a manual clock, the root caller, calls through `Service::call`, nodes registered
//! and pinged in-process, and a wait for what the engine does next.

#![allow(dead_code)]

use serde_json::{Value, json};
use ssmd_api::Service;
use ssmd_core::clock::ManualClock;
use ssmd_model::{Caller, Operation};
use ssmd_store::Store;
use std::sync::Arc;

/// Where every test's manual clock starts.
pub const START_MS: i64 = 1_800_000_000_000;

pub fn root() -> Caller {
    Caller {
        account: "111111111111".into(),
        region: "us-east-1".into(),
        access_key_id: "AKIATEST".into(),
        arn: "arn:aws:iam::111111111111:root".into(),
    }
}

pub async fn call(svc: &Service, caller: &Caller, op: &str, input: Value) -> Value {
    let op = Operation::from_name(op).unwrap();
    let out = svc.call(caller, op, input).await.unwrap_or_else(|e| panic!("{}: {e}", op.info().name));
    serde_json::from_slice(&out).unwrap()
}

/// Registers a node and pings once; returns its id and its `Caller`.
pub async fn node(svc: &Service, activation: &Value) -> (String, Caller) {
    let keys = ssmd_nodeauth::generate_key_pair().unwrap();
    let out = ssmd_api::nodes::register(
        svc,
        json!({"ActivationCode": activation["ActivationCode"], "ActivationId": activation["ActivationId"],
               "PublicKey": keys.public_key, "PublicKeyType": "Rsa", "Fingerprint": ssmd_core::ids::uuid()}),
    )
    .await
    .unwrap();
    let id = serde_json::from_slice::<Value>(&out).unwrap()["InstanceId"].as_str().unwrap().to_string();
    let caller = Caller {
        arn: ssmd_api::nodes::node_arn("us-east-1", "111111111111", &id),
        access_key_id: "ASIATEST".into(),
        ..root()
    };
    ssmd_api::nodes::update_instance_information(svc, &caller, json!({"InstanceId": id, "AgentName": "t"}))
        .await
        .unwrap();
    (id, caller)
}

pub async fn messages(svc: &Service, node: &(String, Caller)) -> Vec<Value> {
    let body = json!({"Destination": node.0, "MessagesRequestId": "r", "VisibilityTimeoutInSeconds": 600});
    let out = ssmd_api::commands::delivery::handle(svc, &node.1, "GetMessages", body).await.unwrap();
    serde_json::from_slice::<Value>(&out).unwrap()["Messages"].as_array().unwrap().clone()
}

/// A running service: its engine, clock and data directory (removed on drop).
pub struct Running {
    pub svc: Arc<Service>,
    pub clock: ManualClock,
    pub engine: ssmd_engine::Engine,
    dir: std::path::PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A service with its engine running, on a fresh SQLite file and a manual clock at `START_MS`.
pub async fn service() -> Running {
    service_with(ssmd_api::automation::Settings::default()).await
}

/// [`service`] with Automation settings.
pub async fn service_with(settings: ssmd_api::automation::Settings) -> Running {
    let dir = std::env::temp_dir().join(format!("ssmd-api-{}", ssmd_core::ids::uuid()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display())).await.unwrap();
    let clock = ManualClock::at(START_MS);
    let svc = Arc::new(Service::with_settings(store, Arc::new(clock.clone()), settings).await.unwrap());
    let engine = svc.run_background().await.unwrap();
    Running { svc, clock, engine, dir }
}

/// Waits (a few real seconds at most) until `f` holds: the engine reacts to the clock at once.
pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}
