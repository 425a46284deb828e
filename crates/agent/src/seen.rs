//! The ids of messages already handled, so that a message redelivered after its visibility
//! timeout (because its acknowledgement was lost) is acknowledged again instead of run twice.
//! Kept in `seen.json` in the state directory so that a restart does not forget them; entries
//! older than 30 minutes (the AWS agent's idempotency window) are dropped, and at most 5 000
//! are kept.

use crate::state::{self, StateDir};
use std::collections::HashMap;

/// How long an id is remembered, ms.
pub const WINDOW_MS: i64 = 30 * 60 * 1000;
/// The most ids remembered.
pub const MAX_ENTRIES: usize = 5000;

/// The remembered ids.
pub struct Seen {
    state: Option<StateDir>,
    ids: HashMap<String, i64>,
}

impl Seen {
    /// Loads the ids remembered in `state` (an unreadable file is a fresh start).
    pub fn load(state: &StateDir) -> Seen {
        let ids = state
            .read(state::SEEN)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<HashMap<String, i64>>(&b).ok())
            .unwrap_or_default();
        Seen { state: Some(state.clone()), ids }
    }

    /// An empty set that is not persisted (tests).
    pub fn in_memory() -> Seen {
        Seen { state: None, ids: HashMap::new() }
    }

    /// Whether `id` was seen within the window before `now_ms`.
    pub fn contains(&self, id: &str, now_ms: i64) -> bool {
        self.ids.get(id).is_some_and(|t| now_ms - t < WINDOW_MS)
    }

    /// Records `id` at `now_ms`; returns whether it is new. The set is written back.
    pub fn insert(&mut self, id: &str, now_ms: i64) -> bool {
        if self.contains(id, now_ms) {
            return false;
        }
        self.ids.insert(id.to_string(), now_ms);
        self.ids.retain(|_, t| now_ms - *t < WINDOW_MS);
        if self.ids.len() > MAX_ENTRIES {
            let mut by_age: Vec<(String, i64)> = self.ids.drain().collect();
            by_age.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
            by_age.truncate(MAX_ENTRIES);
            self.ids = by_age.into_iter().collect();
        }
        self.save();
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn save(&self) {
        if let Some(s) = &self.state
            && let Err(e) = s.write(state::SEEN, &serde_json::to_vec(&self.ids).unwrap_or_default())
        {
            crate::warn!("cannot store the seen message ids: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bound_and_persistence() {
        let mut s = Seen::in_memory();
        assert!(s.insert("a", 1000));
        assert!(!s.insert("a", 2000));
        assert!(s.contains("a", 1000 + WINDOW_MS - 1));
        assert!(!s.contains("a", 1000 + WINDOW_MS));
        assert!(s.insert("a", 1000 + WINDOW_MS), "forgotten after the window");
        for i in 0..MAX_ENTRIES + 10 {
            s.insert(&format!("m{i}"), 5_000_000 + i as i64);
        }
        assert_eq!(s.len(), MAX_ENTRIES);
        assert!(s.contains(&format!("m{}", MAX_ENTRIES + 9), 5_000_000 + MAX_ENTRIES as i64 + 9));
        assert!(!s.contains("m0", 5_000_000), "the oldest went first");

        let dir = std::env::temp_dir().join(format!("ssmd-agent-seen-{}", crate::ids::uuid_v4()));
        let st = StateDir::open(&dir).unwrap();
        let mut p = Seen::load(&st);
        assert!(p.insert("x", crate::clock::now_ms()));
        let again = Seen::load(&st);
        assert!(again.contains("x", crate::clock::now_ms()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
