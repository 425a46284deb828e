//! One behavioural suite for the store, run on SQLite and on PostgreSQL: conflicts, guarded
//! updates, transactions that roll back, limits that refuse without writing, idempotency
//! records, cache coherence and concurrent writers.

use ssmd_store::on_both;

use ssmd_store::sql;
use ssmd_store::{DocumentRow, Store, StoreError, Tag, VersionRow};

fn doc(name: &str) -> DocumentRow {
    DocumentRow {
        account: "111111111111".into(),
        region: "us-east-1".into(),
        name: name.into(),
        doc_type: "Command".into(),
        target_type: None,
        default_version: 1,
        latest_version: 1,
        created_ms: 1,
    }
}

fn version(n: i64, content: &str) -> VersionRow {
    VersionRow {
        version: n,
        content: content.into(),
        format: "JSON".into(),
        hash: format!("h-{content}"),
        parameters: "[]".into(),
        platform_types: "[]".into(),
        created_ms: n,
        ..Default::default()
    }
}

const A: &str = "111111111111";
const R: &str = "us-east-1";

on_both!(conflicts_and_guarded_updates, |s: Store, url: String| async move {
    let tag = Tag { key: "k".into(), value: "v".into() };
    s.create_document(&doc("d"), &version(1, "a"), std::slice::from_ref(&tag)).await.unwrap();
    assert_eq!(s.tags(A, R, "Document", "d").await.unwrap(), std::slice::from_ref(&tag));
    let other = Tag { key: "other".into(), value: "v".into() };
    assert!(matches!(s.create_document(&doc("d"), &version(1, "b"), &[other]).await, Err(StoreError::Conflict)));
    // The refused create's tags were not written either.
    assert_eq!(s.tags(A, R, "Document", "d").await.unwrap(), [tag]);
    // The refused create wrote nothing: version 1 still holds the first content.
    assert_eq!(s.document_version(A, R, "d", 1).await.unwrap().unwrap().content, "a");
    // A version added against a stale latest is refused and leaves no row behind.
    s.add_document_version(A, R, "d", &version(2, "b"), 1, None).await.unwrap();
    assert!(matches!(s.add_document_version(A, R, "d", &version(3, "c"), 1, None).await, Err(StoreError::Conflict)));
    assert!(s.document_version(A, R, "d", 3).await.unwrap().is_none());
    // Deleting the latest version moves latest back; the default cannot be deleted.
    assert!(!s.delete_document_version(A, R, "d", 1).await.unwrap());
    assert!(s.delete_document_version(A, R, "d", 2).await.unwrap());
    assert_eq!(s.document(A, R, "d").await.unwrap().unwrap().latest_version, 1);
    // Reopening applies no migration twice and keeps the data.
    let again = Store::open(&url).await.unwrap();
    assert!(again.document(A, R, "d").await.unwrap().is_some());
});

on_both!(reads_follow_writes, |s: Store, _url: String| async move {
    s.create_document(&doc("c"), &version(1, "one"), &[]).await.unwrap();
    let (_, v) = s.document_with_version(A, R, "c", None).await.unwrap().unwrap();
    assert_eq!(v.unwrap().content, "one");
    s.add_document_version(A, R, "c", &version(2, "two"), 1, None).await.unwrap();
    assert!(s.set_default_document_version(A, R, "c", 2).await.unwrap());
    let (d, v) = s.document_with_version(A, R, "c", None).await.unwrap().unwrap();
    assert_eq!((d.default_version, v.unwrap().content.as_str()), (2, "two"));
    assert!(s.document_with_version(A, R, "c", Some(9)).await.unwrap().unwrap().1.is_none());
    s.delete_document(A, R, "c").await.unwrap();
    assert!(s.document_with_version(A, R, "c", None).await.unwrap().is_none());
    // Another account and another region see nothing.
    s.create_document(&doc("c"), &version(1, "again"), &[]).await.unwrap();
    assert!(s.document_with_version("222222222222", R, "c", None).await.unwrap().is_none());
    assert!(s.document_with_version(A, "eu-west-1", "c", None).await.unwrap().is_none());
});

/// Runs a store's listener and notifier (the engine runs them as workers) until the test ends.
fn listen(s: &Store) {
    let mut l = s.listener();
    let mut n = s.notifier();
    if l.active() {
        tokio::spawn(async move {
            loop {
                if l.next().await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                if n.next().await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        });
    }
}

/// Waits until `s`'s wake-ups from the other replicas are being received.
async fn healthy(s: &Store) {
    for _ in 0..200 {
        if s.bus().healthy() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the listener did not connect");
}

/// Two replicas on one PostgreSQL database, each caching documents. (On SQLite one process owns
/// the file, and its writes drop its cache directly.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_replicas_writes_reach_the_document_cache() {
    let (s, url) = ssmd_store::testing::postgres().await;
    let b = Store::open(&url).await.unwrap();
    listen(&s);
    listen(&b);
    healthy(&b).await;
    s.create_document(&doc("x"), &version(1, "one"), &[]).await.unwrap();
    let read = |st: Store| async move { st.document_with_version(A, R, "x", None).await.unwrap().unwrap() };
    assert_eq!(read(b.clone()).await.1.unwrap().content, "one");
    // Cached on b now; a write through s reaches b's cache within moments.
    s.add_document_version(A, R, "x", &version(2, "two"), 1, None).await.unwrap();
    s.set_default_document_version(A, R, "x", 2).await.unwrap();
    let mut seen = String::new();
    for _ in 0..200 {
        seen = read(b.clone()).await.1.unwrap().content;
        if seen == "two" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(seen, "two", "the other replica's cache kept a stale default version");
    s.delete_document(A, R, "x").await.unwrap();
    for _ in 0..200 {
        if b.document_with_version(A, R, "x", None).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the other replica still reads a deleted document");
}

on_both!(limits_refuse_without_writing, |s: Store, _url: String| async move {
    let tags: Vec<Tag> = (0..3).map(|i| Tag { key: format!("k{i}"), value: "v".into() }).collect();
    assert!(s.change_tags(A, R, "Document", "x", &tags, &[], 3).await.unwrap());
    let more = vec![Tag { key: "k9".into(), value: "v".into() }];
    assert!(!s.change_tags(A, R, "Document", "x", &more, &[], 3).await.unwrap());
    assert_eq!(s.tags(A, R, "Document", "x").await.unwrap().len(), 3);
    // Replacing one while adding one stays within the limit.
    assert!(s.change_tags(A, R, "Document", "x", &more, &["k0".into()], 3).await.unwrap());
    let keys: Vec<String> = s.tags(A, R, "Document", "x").await.unwrap().into_iter().map(|t| t.key).collect();
    assert_eq!(keys, ["k1", "k2", "k9"]);
    let many = s.tags_of_many(A, R, "Document", &["x".into(), "y".into()]).await.unwrap();
    assert_eq!(many.get("x").map(Vec::len), Some(3));
    assert!(!many.contains_key("y"));
});

on_both!(transactions_roll_back_when_dropped, |s: Store, _url: String| async move {
    {
        let mut tx = s.db().begin().await.unwrap();
        sql::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2)")
            .bind("ghost")
            .bind("dropped")
            .execute(&mut tx)
            .await
            .unwrap();
        // Dropped without commit.
    }
    let v = s.server_secret("ghost", || "real".into()).await.unwrap();
    assert_eq!(v, "real");
    // The first value of a secret wins, whoever asks later.
    assert_eq!(s.server_secret("ghost", || "other".into()).await.unwrap(), "real");
});

on_both!(idempotency_records, |s: Store, _url: String| async move {
    s.reserve_token(A, R, "Op", "t", "fp", 1).await.unwrap();
    assert!(matches!(s.reserve_token(A, R, "Op", "t", "fp2", 2).await, Err(StoreError::Conflict)));
    s.reserve_token("222222222222", R, "Op", "t", "fp", 1).await.unwrap();
    s.complete_token(A, R, "Op", "t", "{}").await.unwrap();
    // A completed token is not released.
    s.release_token(A, R, "Op", "t").await.unwrap();
    let rec = s.token_record(A, R, "Op", "t").await.unwrap().unwrap();
    assert_eq!((rec.fingerprint.as_str(), rec.response.as_deref()), ("fp", Some("{}")));
    s.release_token("222222222222", R, "Op", "t").await.unwrap();
    assert!(s.token_record("222222222222", R, "Op", "t").await.unwrap().is_none());
});

on_both!(concurrent_writers_all_land, |s: Store, _url: String| async move {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_document(&doc(&format!("w{i:02}")), &version(1, &format!("c{i}")), &[]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let page = s.documents_page(A, R, "", 100).await.unwrap();
    assert_eq!(page.len(), 40);
    assert_eq!(s.document_count(A, R).await.unwrap(), 40);
    // Listings leave the content out.
    assert!(page.iter().all(|(_, v)| v.content.is_empty()));
});

#[test]
fn sql_values_convert() {
    let v: sql::Value = Some(5i64).into();
    assert_eq!(v, sql::Value::Int(5));
    let v: sql::Value = None::<i64>.into();
    assert_eq!(v, sql::Value::NullInt);
    let v: sql::Value = (&None::<String>).into();
    assert_eq!(v, sql::Value::NullText);
}
