//! A read-through cache of document lookups. Every committed write to a document names its
//! topic (`doc:…`) and the bus drops the document here — at once for this process's writes,
//! and on PostgreSQL for other replicas' writes as soon as their notification arrives (the
//! cache is used only while notifications are being received; a lost listener clears it).
//!
//! A write bumps a global generation and drops the document's entries; a reader snapshots the
//! generation before it queries and stores its result only if no write (here or announced
//! from elsewhere) happened meanwhile. So this process never reads its own writes stale, and
//! another replica's write is seen once its notification has arrived (milliseconds).

use crate::{DocumentRow, VersionRow};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

type Key = (String, String, String);
/// What `document_with_version` returned for one version selector.
pub(crate) type Entry = Option<(DocumentRow, Option<VersionRow>)>;

const MAX_DOCUMENTS: usize = 10_000;

#[derive(Default)]
pub(crate) struct DocCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<Key, HashMap<Option<i64>, Entry>>>,
}

fn key(account: &str, region: &str, name: &str) -> Key {
    (account.to_string(), region.to_string(), name.to_string())
}

impl DocCache {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn get(&self, account: &str, region: &str, name: &str, version: Option<i64>) -> Option<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&key(account, region, name)).and_then(|m| m.get(&version)).cloned()
    }

    /// Stores a result read when the generation was `seen`, unless a write happened since.
    pub(crate) fn put(&self, seen: u64, account: &str, region: &str, name: &str, version: Option<i64>, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation() != seen {
            return;
        }
        if entries.len() >= MAX_DOCUMENTS {
            entries.clear();
        }
        entries.entry(key(account, region, name)).or_default().insert(version, entry);
    }

    /// Forgets everything (notifications may have been missed).
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// Called after every committed write to a document.
    pub(crate) fn invalidate(&self, account: &str, region: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(&key(account, region, name));
    }
}
