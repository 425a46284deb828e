//! `SendReply` payloads (spec §A.7), in the AWS agent's sequence (`agent/contracts/aggregator.go`,
//! `agent/messageservice/utils/messageutil.go`): a document-level InProgress reply for every
//! message taken (cancel messages too), one reply per step as it ends (that step alone under
//! `runtimeStatus`), and a final reply with the aggregated document status and the counts per
//! status — which lists the step only for a one-step document. Payloads are JSON text, as
//! `SendReply` carries them (`runtimeStatus` is written out by hand: `serde_json` maps would
//! sort it).

use crate::runner::{self, PluginResult, Status};
use serde_json::{Map, Value, json};

/// What a reply says about the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The OS version (`PlatformVersion`).
    pub os_version: String,
}

fn additional_info(info: &AgentInfo, counts: Map<String, Value>) -> Value {
    json!({
        "agent": {"lang": "en-US", "name": crate::AGENT_NAME, "os": "linux", "osver": info.os_version,
            "ver": crate::AGENT_VERSION},
        "dateTime": crate::clock::iso8601_ms(crate::clock::now_ms()),
        "runId": "",
        "runtimeStatusCounts": counts,
    })
}

/// The first reply: the command is in progress, nothing has run yet.
pub fn in_progress(info: &AgentInfo) -> String {
    json!({
        "additionalInfo": additional_info(info, Map::new()),
        "documentStatus": "InProgress",
        "documentTraceOutput": "",
        "runtimeStatus": null,
    })
    .to_string()
}

/// A JSON object with its members (name, JSON text) in the given order.
fn ordered_object(members: &[(String, String)]) -> String {
    let parts: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
    format!("{{{}}}", parts.join(","))
}

fn counts(results: &[PluginResult]) -> Map<String, Value> {
    let mut counts = Map::new();
    for r in results {
        let n = counts.get(r.status.as_str()).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(r.status.as_str().to_string(), json!(n + 1));
    }
    counts
}

fn payload(
    info: &AgentInfo,
    counts: Map<String, Value>,
    status: &str,
    trace: &str,
    runtime: &[&PluginResult],
) -> String {
    let runtime: Vec<(String, String)> = runtime.iter().map(|r| (r.key.clone(), r.to_json().to_string())).collect();
    ordered_object(&[
        ("additionalInfo".into(), additional_info(info, counts).to_string()),
        ("documentStatus".into(), json!(status).to_string()),
        ("documentTraceOutput".into(), json!(trace).to_string()),
        ("runtimeStatus".into(), ordered_object(&runtime)),
    ])
}

/// The reply sent when a step ends (`results`: the steps so far, that one last): the document is
/// still in progress and `runtimeStatus` holds that step alone; the counts are over every step so
/// far — as the AWS agent's `DocumentResultAggregator` builds it for a plugin update.
pub fn step_reply(info: &AgentInfo, results: &[PluginResult]) -> String {
    payload(info, counts(results), "InProgress", "", &results.iter().last().into_iter().collect::<Vec<_>>())
}

/// The final reply for `results`; `trace` explains a document that could not run at all. As the
/// AWS agent's, it lists the step itself only for a one-step document: the steps of a longer one
/// went out one by one ([`step_reply`]).
pub fn final_reply(info: &AgentInfo, results: &[PluginResult], trace: &str) -> String {
    let status = if results.is_empty() && !trace.is_empty() {
        Status::Failed
    } else {
        runner::aggregate(results.iter().map(|r| r.status))
    };
    let runtime: Vec<&PluginResult> = if results.len() <= 1 { results.iter().collect() } else { Vec::new() };
    payload(info, counts(results), status.as_str(), trace, &runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(key: &str, status: Status, code: i32, out: &str) -> PluginResult {
        PluginResult {
            key: key.into(),
            name: "aws:runShellScript".into(),
            step_name: String::new(),
            status,
            code,
            stdout: out.into(),
            stderr: String::new(),
            output_override: None,
            start_ms: 0,
            end_ms: 1500,
        }
    }

    #[test]
    fn final_payload_shape() {
        let info = AgentInfo { os_version: "12".into() };
        let parse = |t: String| serde_json::from_str::<Value>(&t).unwrap();
        let p = parse(final_reply(&info, &[result("aws:runShellScript", Status::Success, 0, "hi\n")], ""));
        assert_eq!(p["documentStatus"], "Success");
        assert_eq!(p["additionalInfo"]["runtimeStatusCounts"], json!({"Success": 1}));
        assert_eq!(p["additionalInfo"]["agent"]["name"], "ssmd-agent");
        assert_eq!(p["additionalInfo"]["agent"]["osver"], "12");
        let rs = &p["runtimeStatus"]["aws:runShellScript"];
        assert_eq!(
            *rs,
            json!({"status": "Success", "code": 0, "name": "aws:runShellScript", "output": "hi\n",
                "startDateTime": "1970-01-01T00:00:00.000Z", "endDateTime": "1970-01-01T00:00:01.500Z",
                "outputS3BucketName": "", "outputS3KeyPrefix": "", "stepName": "", "standardOutput": "hi\n",
                "standardError": ""})
        );
        let text = final_reply(
            &info,
            &[
                result("z", Status::Success, 0, ""),
                result("b", Status::Failed, 2, ""),
                result("c", Status::Skipped, 0, ""),
            ],
            "",
        );
        let two = parse(text.clone());
        assert_eq!(two["runtimeStatus"], json!({}), "the steps went out one by one: {text}");
        assert_eq!(two["documentStatus"], "Failed");
        let steps = [result("z", Status::Success, 0, "1"), result("b", Status::Failed, 2, "")];
        let step = parse(step_reply(&info, &steps));
        assert_eq!(step["documentStatus"], "InProgress");
        assert_eq!(
            step["runtimeStatus"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["b".to_string()])
        );
        assert_eq!(step["runtimeStatus"]["b"]["code"], 2);
        assert_eq!(step["additionalInfo"]["runtimeStatusCounts"], json!({"Success": 1, "Failed": 1}));
        assert_eq!(two["additionalInfo"]["runtimeStatusCounts"], json!({"Success": 1, "Failed": 1, "Skipped": 1}));
        let broken = parse(final_reply(&info, &[], "the document is not valid JSON"));
        assert_eq!((broken["documentStatus"].as_str(), broken["runtimeStatus"].clone()), (Some("Failed"), json!({})));
        let ip = parse(in_progress(&info));
        assert_eq!((ip["documentStatus"].as_str(), ip["runtimeStatus"].is_null()), (Some("InProgress"), true));
    }
}
