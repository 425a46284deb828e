//! A command that prints 50 MB: the agent keeps only the first bytes of the stream (its memory
//! does not grow with the output), reports the limits, and the command is not slowed by a full
//! pipe. In a test binary of its own so that its peak memory is this test's.

mod common;

use serde_json::json;
use ssmd_agent::exec::Interrupt;
use ssmd_agent::runner::{self, Context, Status};

fn peak_rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn fifty_megabytes_of_output_in_bounded_memory() {
    let work = common::temp_dir("huge");
    let doc = json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "yes",
        "inputs": {"runCommand": ["yes | head -c 50000000", "yes error | head -c 20000000 >&2"]}}]});
    let steps = ssmd_agent::document::interpret(&doc, &serde_json::Map::new()).unwrap();
    let before = peak_rss_kb();
    let interrupt = Interrupt::new();
    let ctx = Context { work_dir: &work, env: &[], interrupt: &interrupt };
    let r = runner::run_document(&steps, &ctx, &mut |_| {});
    let grew_mb = (peak_rss_kb() - before) / 1024;
    assert!(grew_mb < 20, "peak memory grew by {grew_mb} MB");
    assert_eq!((r[0].status, r[0].code), (Status::Success, 0));
    let j = r[0].to_json();
    assert_eq!(j["standardOutput"].as_str().unwrap().len(), 24_000);
    assert!(j["standardOutput"].as_str().unwrap().starts_with("y\ny\n"));
    assert_eq!(j["standardError"].as_str().unwrap().len(), 8_000);
    assert_eq!(j["output"].as_str().unwrap().chars().count(), 2_500);
    std::fs::remove_dir_all(work).unwrap();
}
