//! Fresh stores for tests, on SQLite or PostgreSQL: every crate's tests share these, and
//! `on_both!` runs one test body on each database.

use crate::Store;

/// A store on a new SQLite file in the temporary directory, and its URL.
pub async fn sqlite() -> (Store, String) {
    let dir = std::env::temp_dir().join(format!("ssmd-store-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let url = format!("sqlite://{}", dir.join("s.db").display());
    (Store::open(&url).await.expect("opening SQLite"), url)
}

/// A name part no other test in this run uses.
pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{t}_{}", N.fetch_add(1, Ordering::SeqCst))
}

/// A store on a new PostgreSQL database (`SSMD_TEST_PG`, default the local server), and its URL.
pub async fn postgres() -> (Store, String) {
    let base = std::env::var("SSMD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!("ssmd_store_{}", rand_suffix());
    let st = std::process::Command::new("psql")
        .args([&format!("{base}/postgres"), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(st.success(), "creating database {name}");
    let url = format!("{base}/{name}");
    (Store::open(&url).await.expect("opening PostgreSQL"), url)
}

/// `on_both!(name, |store, url| async move { ... })`: the body as a test on each database.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (s, url) = $crate::testing::sqlite().await;
                ($body)(s, url).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let (s, url) = $crate::testing::postgres().await;
                ($body)(s, url).await;
            }
        }
    };
}
