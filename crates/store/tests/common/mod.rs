//! What every store test file shares: a fresh store on SQLite or on PostgreSQL, and `on_both!`,
//! which runs one test body on each.

use ssmd_store::Store;

/// A store on a new SQLite file, and its URL.
pub async fn sqlite() -> (Store, String) {
    let dir = std::env::temp_dir().join(format!("ssmd-store-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("s.db").display());
    (Store::open(&url).await.unwrap(), url)
}

/// A name part no other test in this run uses.
pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{t}_{}", N.fetch_add(1, Ordering::SeqCst))
}

/// A store on a new PostgreSQL database (`SSMD_TEST_PG`, default the local server), and its URL.
pub async fn postgres() -> (Store, String) {
    let base = std::env::var("SSMD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("ssmd_store_{}", rand_suffix());
    let st = std::process::Command::new("psql")
        .args([&format!("{base}/postgres"), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(st.success());
    let url = format!("{base}/{name}");
    (Store::open(&url).await.unwrap(), url)
}

/// `on_both!(name, |store, url| async move { ... })`: the body as a test on each database.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (s, url) = $crate::common::sqlite().await;
                ($body)(s, url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let (s, url) = $crate::common::postgres().await;
                ($body)(s, url).await;
            }
        }
    };
}
