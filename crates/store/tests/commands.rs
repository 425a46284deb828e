//! Run Command's concurrency-critical paths on both databases, with two stores on one database
//! racing as two replicas (or processes) would: settles never lose a count, a message is handed
//! out to one pickup at a time, a repeated reply changes nothing, and a command's end drops its
//! deadline job and wakes whoever waits for it.

use ssmd_store::jobs::Next;
use ssmd_store::{COMMAND_JOB, NewCommand, Scope, Settlement, Store, on_both};
use std::collections::HashSet;

const T0: i64 = 1_800_000_000_000;
const A: &str = "111111111111";
const R: &str = "us-east-1";

fn command(id: &str, nodes: &[String]) -> NewCommand {
    NewCommand {
        id: id.into(),
        account: A.into(),
        region: R.into(),
        requested_ms: T0,
        deliver_by_ms: T0 + 60_000,
        document_name: "AWS-RunShellScript".into(),
        status: "Pending".into(),
        status_details: "Pending".into(),
        spec: "{}".into(),
        payload: "{}".into(),
        progress: "{}".into(),
        targets: nodes.iter().map(|n| (n.clone(), n.clone())).collect(),
        dispatch: nodes.len(),
        plugins: "[]".into(),
    }
}

/// A settle that ends one invocation and counts it on the command row.
async fn end_one(s: &Store, id: &str, node: &str, reply: &str) -> bool {
    s.settle_command(id, Scope::One(node), Some((reply, node)), T0, |row, invocations| {
        let mut inv = invocations.into_iter().next()?;
        if inv.status == "Success" {
            return None;
        }
        inv.status = "Success".into();
        inv.ended_ms = Some(T0);
        let completed = row.completed_count + 1;
        let done = completed == row.target_count;
        Some(Settlement {
            status: if done { "Success" } else { "InProgress" }.into(),
            status_details: if done { "Success" } else { "InProgress" }.into(),
            progress: row.progress.clone(),
            completed_count: completed,
            invocations: vec![inv],
            drop_messages: vec![node.to_string()],
            ..Default::default()
        })
    })
    .await
    .unwrap()
    .is_some()
}

on_both!(settles_from_two_stores_never_lose_a_count, |s: Store, url: String| async move {
    let other = Store::open(&url).await.unwrap();
    let nodes: Vec<String> = (0..120).map(|i| format!("mi-{i:017}")).collect();
    s.insert_command(&command("c1", &nodes)).await.unwrap();
    assert!(s.job(COMMAND_JOB, "c1").await.unwrap().is_some(), "a deadline job comes with the command");
    // An execution waits for the command's end.
    let mut tx = s.begin().await.unwrap();
    Store::await_completion(&mut tx, "command:c1", "automation", "x1").await.unwrap();
    tx.commit().await.unwrap();
    let (a, b): (Vec<_>, Vec<_>) = nodes.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let run = |st: Store, part: Vec<(usize, String)>| async move {
        for (i, node) in part {
            assert!(end_one(&st, "c1", &node, &format!("r{i}")).await);
        }
    };
    let (ra, rb) = tokio::join!(tokio::spawn(run(s.clone(), a)), tokio::spawn(run(other.clone(), b)));
    ra.unwrap();
    rb.unwrap();
    let c = s.command(A, R, "c1").await.unwrap().unwrap();
    assert_eq!((c.completed_count, c.status.as_str()), (120, "Success"), "every settle counted once");
    // The end dropped the deadline job and woke the waiting execution.
    assert!(s.job(COMMAND_JOB, "c1").await.unwrap().is_none());
    let woken = s.claim_jobs("automation", "e", T0, T0 + 1_000, 10).await.unwrap();
    assert_eq!(woken.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["x1"]);
    s.finish(&woken[0], Next::Done, T0).await.unwrap();
    // A reply seen before changes nothing, however often it comes and from where.
    assert!(!end_one(&other, "c1", &nodes[0], "r0").await);
});

on_both!(a_message_is_handed_to_one_pickup_at_a_time, |s: Store, url: String| async move {
    let other = Store::open(&url).await.unwrap();
    let node = vec!["mi-00000000000000001".to_string()];
    for i in 0..60 {
        s.insert_command(&command(&format!("c{i:02}"), &node)).await.unwrap();
    }
    let take = |st: Store, node: String| async move {
        let mut got = Vec::new();
        loop {
            let batch = st.take_messages(&node, T0, T0 + 600_000, 3).await.unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|m| m.message_id));
        }
        got
    };
    let (ga, gb) = tokio::join!(take(s.clone(), node[0].clone()), take(other.clone(), node[0].clone()));
    let all: HashSet<&String> = ga.iter().chain(&gb).collect();
    assert_eq!(ga.len() + gb.len(), 60, "no message handed out twice while invisible");
    assert_eq!(all.len(), 60);
    // Back after the visibility timeout, to one pickup again.
    assert_eq!(s.next_visible(&node[0], T0).await.unwrap(), Some(T0 + 600_000));
    let again = s.take_messages(&node[0], T0 + 600_000, T0 + 1_200_000, 100).await.unwrap();
    assert_eq!(again.len(), 60);
    assert!(other.take_messages(&node[0], T0 + 600_001, T0 + 1_200_000, 100).await.unwrap().is_empty());
});
