//! The reply spool: replies waiting for the server, one JSON file each under
//! `<state>/replies/`, named so that they sort in the order they were made. They are sent in that
//! order (a reply waits behind an earlier one of the same message), keep their `ReplyId` across
//! attempts (the server is idempotent on it) and across restarts, and are dropped after 2 hours
//! (the AWS agent's limit) or when the server refuses one for good. A final reply makes the
//! in-progress replies of its message queued before it pointless: they are dropped.

use crate::http::CallError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a reply is kept trying, ms.
pub const MAX_AGE_MS: i64 = 2 * 60 * 60 * 1000;

/// A reply as spooled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpooledReply {
    /// The message replied to.
    pub message_id: String,
    /// The reply's id, kept across attempts.
    pub reply_id: String,
    /// The payload, a JSON text.
    pub payload: String,
    /// When the reply was made, epoch ms.
    pub created_ms: i64,
    /// Whether it is the command's final reply.
    pub is_final: bool,
}

/// What a flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flush {
    /// Replies the server took.
    pub sent: usize,
    /// Replies given up (too old, or refused for good).
    pub dropped: usize,
    /// Replies still waiting.
    pub remaining: usize,
    /// Whether an attempt failed in a way worth retrying (the server is down or busy).
    pub failed: bool,
}

/// The spool directory.
pub struct Spool {
    dir: PathBuf,
    seq: AtomicU64,
    flushing: Mutex<()>,
}

impl Spool {
    /// Opens (creating) the spool in `dir`.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool { dir: dir.to_path_buf(), seq: AtomicU64::new(0), flushing: Mutex::new(()) })
    }

    /// Adds a reply.
    pub fn push(&self, r: &SpooledReply) -> io::Result<()> {
        if r.is_final {
            for (path, old) in self.entries() {
                if old.message_id == r.message_id && !old.is_final {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        let name = format!("{:016}-{seq:08}-{}.json", r.created_ms.max(0), r.reply_id);
        let data = serde_json::to_vec(r).map_err(io::Error::other)?;
        crate::state::write_private(&self.dir.join(name), &data)
    }

    /// The waiting replies, oldest first (unreadable files are removed).
    pub fn entries(&self) -> Vec<(PathBuf, SpooledReply)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|p| match std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                Some(r) => Some((p, r)),
                None => {
                    crate::warn!("dropping unreadable spooled reply {}", p.display());
                    let _ = std::fs::remove_file(&p);
                    None
                }
            })
            .collect()
    }

    /// How many replies wait.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a reply of `message_id` waits.
    pub fn has_pending_for(&self, message_id: &str) -> bool {
        self.entries().iter().any(|(_, r)| r.message_id == message_id)
    }

    /// Tries to send the waiting replies in order with `send`. A reply that fails in a
    /// retryable way holds back the later replies of its message; no answer at all ends the
    /// round (the server is down). Returns `None` if another flush is under way.
    pub fn flush(&self, now_ms: i64, mut send: impl FnMut(&SpooledReply) -> Result<(), CallError>) -> Option<Flush> {
        let _guard = self.flushing.try_lock().ok()?;
        let mut f = Flush::default();
        let mut held: HashSet<String> = HashSet::new();
        let entries = self.entries();
        let total = entries.len();
        for (i, (path, r)) in entries.into_iter().enumerate() {
            if now_ms - r.created_ms > MAX_AGE_MS {
                crate::warn!("{}: giving up reply {} after 2 hours", r.message_id, r.reply_id);
                let _ = std::fs::remove_file(&path);
                f.dropped += 1;
                continue;
            }
            if held.contains(&r.message_id) {
                f.remaining += 1;
                continue;
            }
            match send(&r) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    f.sent += 1;
                }
                Err(e) if e.is_retryable() => {
                    f.failed = true;
                    f.remaining += 1;
                    held.insert(r.message_id.clone());
                    if matches!(e, CallError::Transport(_)) {
                        f.remaining += total - i - 1;
                        break;
                    }
                }
                Err(e) => {
                    crate::error!("{}: the service refused reply {}: {e}; dropping it", r.message_id, r.reply_id);
                    let _ = std::fs::remove_file(&path);
                    f.dropped += 1;
                }
            }
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(msg: &str, id: &str, created: i64, is_final: bool) -> SpooledReply {
        SpooledReply {
            message_id: msg.into(),
            reply_id: id.into(),
            payload: "{}".into(),
            created_ms: created,
            is_final,
        }
    }

    #[test]
    fn order_hold_back_expiry_and_supersession() {
        let dir = std::env::temp_dir().join(format!("ssmd-agent-spool-{}", crate::ids::uuid_v4()));
        let s = Spool::open(&dir).unwrap();
        let now = 10 * MAX_AGE_MS;
        s.push(&reply("m1", "r1", now - 10, false)).unwrap();
        s.push(&reply("m2", "r2", now - 9, false)).unwrap();
        s.push(&reply("m2", "r3", now - 8, true)).unwrap();
        s.push(&reply("m3", "old", now - MAX_AGE_MS - 1, true)).unwrap();
        let ids: Vec<String> = s.entries().into_iter().map(|(_, r)| r.reply_id).collect();
        assert_eq!(ids, ["old", "r1", "r3"], "r2 superseded by m2's final reply");
        assert!(s.has_pending_for("m1") && !s.has_pending_for("m9"));

        // m1 fails with a 503: it stays, m2 goes on.
        let mut tried = Vec::new();
        let f = s
            .flush(now, |r| {
                tried.push(r.reply_id.clone());
                if r.message_id == "m1" {
                    Err(CallError::Service { status: 503, kind: "HTTP503".into(), message: String::new() })
                } else {
                    Ok(())
                }
            })
            .unwrap();
        assert_eq!(tried, ["r1", "r3"]);
        assert_eq!(f, Flush { sent: 1, dropped: 1, remaining: 1, failed: true });
        // No answer at all ends the round.
        s.push(&reply("m4", "r4", now, false)).unwrap();
        let mut n = 0;
        let f = s
            .flush(now, |_| {
                n += 1;
                Err(CallError::Transport("refused".into()))
            })
            .unwrap();
        assert_eq!((n, f.remaining, f.failed), (1, 2, true));
        // A refusal for good drops the reply.
        let f = s
            .flush(now, |_| {
                Err(CallError::Service { status: 400, kind: "InvalidMessageId".into(), message: String::new() })
            })
            .unwrap();
        assert_eq!((f.dropped, f.remaining), (2, 0));
        assert!(s.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
