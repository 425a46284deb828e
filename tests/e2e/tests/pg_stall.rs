//! A replica whose link to PostgreSQL stalls or breaks holds nothing for long: two replicas on
//! one database, one of them (A) behind a proxy that stalls or cuts its connections.
//!
//! * A transaction frozen mid-way keeps its row locks only until the server ends the idle
//!   session, so the other replica's write to the same tag waits seconds, not the stall.
//! * A write that waits on a lock gives up at the lock timeout with a retryable
//!   `InternalServerError` (no SQL text).
//! * A stalled replica answers within its statement timeout and serves again once the link is
//!   back; its transaction whose COMMIT the server never read is run again and succeeds.
//! * Connections cut before COMMIT are retried on a fresh connection (the client sees no error);
//!   under random cuts nothing acknowledged is lost.
//!
//! Limits are shortened here (e.g. 2 s idle in transaction) to keep each test short; the
//! ignored `measure_*` test reports the same story with the defaults.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{DocumentType, ResourceTypeForTagging, Tag};
use ssmd_e2e::proxy::{Action, Proxy};
use ssmd_e2e::*;
use ssmd_store::{PgLimits, Store, StoreError, sql};
use std::time::{Duration, Instant};

const CMD: &str = r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"a","inputs":{"runCommand":["true"]}}]}"#;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

async fn new_document(c: &Client, name: &str) {
    c.create_document().name(name).content(CMD).document_type(DocumentType::Command).send().await.unwrap();
}

async fn tag_doc(c: &Client, doc: &str, k: &str, v: &str) -> Result<(), (String, String)> {
    c.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Document)
        .resource_id(doc)
        .tags(tag(k, v))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| (code(&e), message(&e)))
}

async fn tags_of(c: &Client, doc: &str) -> Vec<(String, String)> {
    let list = c
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Document)
        .resource_id(doc)
        .send()
        .await
        .unwrap();
    list.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

async fn value_of(c: &Client, doc: &str, k: &str) -> Option<String> {
    tags_of(c, doc).await.into_iter().find(|(key, _)| key == k).map(|(_, v)| v)
}

/// Waits until `cond` holds, at most `limit`.
async fn until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// ssmd's own store, through the proxy, holding a row lock on tag `k` of document `doc` in an
/// open transaction — the state a replica frozen mid-transaction leaves behind.
async fn hold_tag_lock<'a>(a: &'a Store, doc: &str, k: &str) -> sql::Tx<'a> {
    let mut tx = a.db().begin().await.unwrap();
    let n = sql::query("UPDATE tags SET tag_value = 'from-a' WHERE resource_id = $1 AND tag_key = $2")
        .bind(doc)
        .bind(k)
        .execute(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_transaction_releases_its_row_lock_at_the_idle_timeout() {
    let b = Server::start(Backend::Postgres);
    let c = b.client();
    new_document(&c, "Locked").await;
    tag_doc(&c, "Locked", "k", "before").await.unwrap();
    let proxy = Proxy::to_postgres();
    let limits = PgLimits { idle_in_transaction: Duration::from_secs(2), ..Default::default() };
    let a = Store::open_with(&proxy.url_for(b.database_url().unwrap()), &limits).await.unwrap();
    let tx = hold_tag_lock(&a, "Locked", "k").await;
    proxy.stall();
    let stalled = Instant::now();

    // B (lock timeout 5 s) waits for A's row until the server ends A's idle session at 2 s.
    let started = Instant::now();
    tag_doc(&c, "Locked", "k", "from-b").await.unwrap();
    let waited = started.elapsed();
    eprintln!("B waited {waited:?} for the row a frozen transaction held");
    assert!(waited >= Duration::from_millis(1200), "B did not wait for the lock at all: {waited:?}");
    assert!(waited < Duration::from_secs(4), "B waited {waited:?}");
    assert_eq!(value_of(&c, "Locked", "k").await.as_deref(), Some("from-b"));

    // The stall goes on well past B's write, then ends: A's COMMIT meets the ended session, a
    // failure the store knows wrote nothing; A serves again on a fresh connection.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(stalled.elapsed())).await;
    proxy.resume();
    let r = tx.commit().await;
    assert!(matches!(r, Err(StoreError::Disconnected(_))), "{r:?}");
    let tags = a.tags(ACCOUNT, "us-east-1", "Document", "Locked").await.unwrap();
    assert_eq!(tags[0].value, "from-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_gives_up_with_a_retryable_internal_error() {
    let b = Server::start_with(Backend::Postgres, &["--pg-lock-timeout", "1"]);
    let c = b.client_without_retries();
    new_document(&c, "Held").await;
    tag_doc(&c, "Held", "k", "before").await.unwrap();
    let proxy = Proxy::to_postgres();
    // No idle-in-transaction limit on A: its lock stays for as long as the stall.
    let limits = PgLimits { idle_in_transaction: Duration::ZERO, ..Default::default() };
    let a = Store::open_with(&proxy.url_for(b.database_url().unwrap()), &limits).await.unwrap();
    let tx = hold_tag_lock(&a, "Held", "k").await;
    proxy.stall();

    let started = Instant::now();
    let (code, msg) = tag_doc(&c, "Held", "k", "from-b").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(code, "InternalServerError", "{msg}");
    assert!(msg.contains("Retry the request"), "{msg}");
    assert!(!msg.contains("UPDATE") && !msg.contains("55P03") && !msg.contains("canceling"), "{msg}");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(4), "{waited:?}");

    // Once A's link is back and its transaction ends, the same request goes through.
    proxy.resume();
    tx.rollback().await.unwrap();
    tag_doc(&c, "Held", "k", "from-b").await.unwrap();
    assert_eq!(value_of(&c, "Held", "k").await.as_deref(), Some("from-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_limits_the_other_replica_waits_out_the_stall() {
    // The control: with the idle-in-transaction and lock timeouts off, B waits for as long as
    // A's link is stalled (here 6 s) — the behaviour the limits exist to end.
    let b = Server::start_with(Backend::Postgres, &["--pg-lock-timeout", "0"]);
    let c = b.client_without_retries();
    new_document(&c, "Stuck").await;
    tag_doc(&c, "Stuck", "k", "before").await.unwrap();
    let proxy = Proxy::to_postgres();
    let off = PgLimits { idle_in_transaction: Duration::ZERO, ..Default::default() };
    let a = Store::open_with(&proxy.url_for(b.database_url().unwrap()), &off).await.unwrap();
    let tx = hold_tag_lock(&a, "Stuck", "k").await;
    proxy.stall();
    let resume = async {
        tokio::time::sleep(Duration::from_secs(6)).await;
        proxy.resume();
        tx.commit().await.unwrap();
    };
    let write = async {
        let started = Instant::now();
        tag_doc(&c, "Stuck", "k", "from-b").await.unwrap();
        started.elapsed()
    };
    let ((), waited) = tokio::join!(resume, write);
    eprintln!("without limits, B waited {waited:?}");
    assert!(waited >= Duration::from_secs(5), "{waited:?}");
    assert_eq!(value_of(&c, "Stuck", "k").await.as_deref(), Some("from-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stalled_before_commit_holds_the_tag_for_seconds_and_then_succeeds() {
    let b = Server::start(Backend::Postgres);
    let cb = b.client_without_retries();
    new_document(&cb, "Shared").await;
    tag_doc(&cb, "Shared", "k", "before").await.unwrap();
    let proxy = Proxy::to_postgres();
    let a = b.replica_with(Some(&proxy.url_for(b.database_url().unwrap())), &["--pg-idle-in-transaction-timeout", "2"]);
    let ca = a.client_without_retries();
    ca.list_documents().send().await.unwrap();

    // A's AddTagsToResource runs its statements, then the link stalls as it sends COMMIT: the
    // row stays locked on the server with A's session idle in its transaction.
    let value_a = format!("from-a-{}", uuid::Uuid::new_v4().simple());
    proxy.arm(value_a.as_bytes(), b"COMMIT", Action::Stall);
    let a_started = Instant::now();
    let (ca2, va) = (ca.clone(), value_a.clone());
    let a_write = tokio::spawn(async move { tag_doc(&ca2, "Shared", "k", &va).await.map(|()| a_started.elapsed()) });
    until(Duration::from_secs(10), "A's COMMIT to stall", || proxy.fired() == 1).await;
    let stalled = Instant::now();

    // B's write to the same tag goes through once the server ends A's idle session (2 s).
    let started = Instant::now();
    tag_doc(&cb, "Shared", "k", "from-b").await.unwrap();
    let waited = started.elapsed();
    eprintln!("B waited {waited:?} behind A's stalled transaction");
    assert!(waited >= Duration::from_millis(1000), "B did not meet A's lock: {waited:?}");
    assert!(waited < Duration::from_secs(5), "B waited {waited:?}");
    assert!(!a_write.is_finished(), "A's request is still waiting on its stalled link");

    // The stall ends after 10 s. The server never read A's COMMIT (it had ended the session
    // for idling), so A runs the transaction again on a fresh connection and its request
    // succeeds — later than B's, so A's value is the one that stays.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stalled.elapsed())).await;
    proxy.resume();
    let a_took = a_write.await.unwrap().unwrap();
    eprintln!("A's request took {a_took:?} (stall 10 s)");
    assert!(a_took >= Duration::from_secs(9), "{a_took:?}");
    assert_eq!(value_of(&cb, "Shared", "k").await.as_deref(), Some(value_a.as_str()));
    assert!(a.counter("ssmd_store_retries_total", "what=\"transaction\"") >= 1.0, "{}", a.metrics());
    tag_doc(&ca, "Shared", "after", "stall").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replica_answers_within_its_statement_timeout_and_recovers() {
    let b = Server::start(Backend::Postgres);
    let cb = b.client();
    new_document(&cb, "Slow").await;
    let proxy = Proxy::to_postgres();
    let a = b.replica_with(Some(&proxy.url_for(b.database_url().unwrap())), &["--pg-statement-timeout", "2"]);
    let ca = a.client_without_retries();
    tag_doc(&ca, "Slow", "k", "1").await.unwrap();

    proxy.stall();
    let started = Instant::now();
    let (code, msg) = tag_doc(&ca, "Slow", "k", "2").await.unwrap_err();
    let took = started.elapsed();
    eprintln!("a stalled replica answered {code} after {took:?}");
    assert_eq!(code, "InternalServerError", "{msg}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    // B is not held up meanwhile.
    tag_doc(&cb, "Slow", "other", "b").await.unwrap();

    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tag_doc(&ca, "Slow", "k", "3").await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "A did not recover: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value_of(&cb, "Slow", "k").await.as_deref(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_before_commit_are_retried_and_nothing_acknowledged_is_lost() {
    let b = Server::start(Backend::Postgres);
    let cb = b.client();
    let proxy = Proxy::to_postgres();
    let a = b.replica_with(Some(&proxy.url_for(b.database_url().unwrap())), &[]);
    let ca = a.client_without_retries();
    for d in 0..5 {
        new_document(&cb, &format!("Cut{d}")).await;
    }

    // Cut exactly mid-transaction: after the statement binding this request's value, the next
    // bytes (the tag count, before COMMIT) are dropped and the connection closed. The request
    // succeeds anyway, with no retry by the client.
    let before = a.counter("ssmd_store_retries_total", "what=\"transaction\"");
    for i in 0..6 {
        let v = format!("cut-{i}-{}", uuid::Uuid::new_v4().simple());
        proxy.arm(v.as_bytes(), b"", Action::Cut);
        tag_doc(&ca, "Cut0", &format!("k{i}"), &v).await.unwrap_or_else(|e| panic!("cut {i}: {e:?}"));
        assert_eq!(proxy.fired(), i + 1);
        assert_eq!(value_of(&cb, "Cut0", &format!("k{i}")).await, Some(v));
    }
    let retried = a.counter("ssmd_store_retries_total", "what=\"transaction\"") - before;
    assert!(retried >= 6.0, "{retried}");

    // Under load, every connection is cut every 150 ms: a request may fail only where the
    // outcome is unknown (a cut during COMMIT) or its one retry is cut too, and then as a
    // retryable InternalServerError; whatever was acknowledged is there afterwards.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, cuts) = (stop.clone(), std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    let cuts2 = cuts.clone();
    let killer = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(150));
            cuts2.fetch_add(proxy.kill_all(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    // Each task overwrites 40 tags of its own document with increasing numbers for 3 s; a tag
    // must end up holding at least the last number acknowledged for it (a failed write may
    // still have committed, so a later number is fine).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for d in 1..5 {
        let ca = ca.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = std::collections::HashMap::new();
            let (mut ok, mut failed) = (0, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                let k = format!("k{}", n % 40);
                match tag_doc(&ca, &format!("Cut{d}"), &k, &n.to_string()).await {
                    Ok(()) => {
                        acked.insert(k, n);
                        ok += 1;
                    }
                    Err(e) => failed.push(e),
                }
                n += 1;
            }
            (d, acked, ok, failed)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.join().unwrap();
    let (mut acked_total, mut failed_total) = (0, 0);
    for (d, acked, ok, failed) in results {
        for (code, msg) in &failed {
            assert_eq!(code, "InternalServerError", "{msg}");
        }
        let stored: std::collections::HashMap<String, u64> =
            tags_of(&cb, &format!("Cut{d}")).await.into_iter().map(|(k, v)| (k, v.parse().unwrap())).collect();
        for (k, n) in &acked {
            let have = stored.get(k).copied();
            assert!(have.is_some_and(|h| h >= *n), "Cut{d} {k}: acknowledged {n}, stored {have:?}");
        }
        acked_total += ok;
        failed_total += failed.len();
    }
    let retried = a.counter("ssmd_store_retries_total", "") - before;
    eprintln!(
        "under cuts: {acked_total} acknowledged, {failed_total} failed, {} connections cut, {retried} retries",
        cuts.load(std::sync::atomic::Ordering::SeqCst)
    );
    // Retries hide most cuts; how many depends on the machine's load (a clean-checkout CI run
    // on 2 busy cores saw 13 acknowledged per failure, an idle run over 20).
    assert!(acked_total > 8 * failed_total.max(1), "{acked_total} acknowledged, {failed_total} failed");
}

/// The numbers for docs/postgres.md: how long B's write waits behind a replica frozen for 20 s
/// just before COMMIT, and what A's request answers — with the default limits (idle in
/// transaction 10 s, lock timeout 5 s, statement timeout 15 s), and with every limit off (as
/// before they existed). B's client retries as the SDK does by default. Run with
/// `--run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, ~45 s"]
async fn measure_b_behind_a_20_s_stall() {
    let off = ["--pg-lock-timeout", "0", "--pg-idle-in-transaction-timeout", "0", "--pg-statement-timeout", "0"];
    measure("default limits", &[]).await;
    measure("no limits", &off).await;
}

async fn measure(label: &str, args: &[&str]) {
    let b = Server::start_with(Backend::Postgres, args);
    let cb = b.client();
    new_document(&cb, "Measured").await;
    tag_doc(&cb, "Measured", "k", "before").await.unwrap();
    let proxy = Proxy::to_postgres();
    let a = b.replica_with(Some(&proxy.url_for(b.database_url().unwrap())), &[]);
    let ca = a.client_without_retries();
    ca.list_documents().send().await.unwrap();
    let value_a = format!("from-a-{}", uuid::Uuid::new_v4().simple());
    proxy.arm(value_a.as_bytes(), b"COMMIT", Action::Stall);
    let a_started = Instant::now();
    let (ca2, va) = (ca.clone(), value_a.clone());
    let a_write = tokio::spawn(async move {
        let r = tag_doc(&ca2, "Measured", "k", &va).await;
        (r, a_started.elapsed())
    });
    until(Duration::from_secs(10), "A's COMMIT to stall", || proxy.fired() == 1).await;
    let stalled = Instant::now();
    let resume = async {
        tokio::time::sleep(Duration::from_secs(20).saturating_sub(stalled.elapsed())).await;
        proxy.resume();
    };
    let write = async {
        let started = Instant::now();
        let r = tag_doc(&cb, "Measured", "k", "from-b").await;
        (r, started.elapsed())
    };
    let ((), (r, waited)) = tokio::join!(resume, write);
    eprintln!("MEASURE {label}: B's AddTagsToResource took {waited:?}: {r:?}");
    let (r, took) = a_write.await.unwrap();
    eprintln!("MEASURE {label}: A's AddTagsToResource took {took:?}: {r:?}");
}
