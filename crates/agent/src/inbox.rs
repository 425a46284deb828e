//! The inbox: commands acknowledged but not finished, one file each under `<state>/inbox/`. A
//! command still queued when the agent stops runs after the next start; one that was running
//! when the agent died is reported as Failed at the next start (it will not run twice).

use crate::mds::Message;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// An inbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    /// The message.
    pub message: Message,
    /// Whether it had started running.
    pub started: bool,
    /// When it arrived, epoch ms.
    pub received_ms: i64,
}

/// The inbox directory.
pub struct Inbox {
    dir: PathBuf,
}

fn file_name(message_id: &str) -> String {
    let safe: String = message_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    format!("{safe}.json")
}

impl Inbox {
    /// Opens (creating) the inbox in `dir`.
    pub fn open(dir: &Path) -> io::Result<Inbox> {
        std::fs::create_dir_all(dir)?;
        Ok(Inbox { dir: dir.to_path_buf() })
    }

    fn write(&self, e: &Entry) -> io::Result<()> {
        let data = serde_json::to_vec(e).map_err(io::Error::other)?;
        crate::state::write_private(&self.dir.join(file_name(&e.message.message_id)), &data)
    }

    /// Adds a command.
    pub fn put(&self, message: &Message) -> io::Result<()> {
        self.write(&Entry { message: message.clone(), started: false, received_ms: crate::clock::now_ms() })
    }

    /// Marks a command as started.
    pub fn mark_started(&self, message_id: &str) -> io::Result<()> {
        match self.get(message_id) {
            Some(mut e) => {
                e.started = true;
                self.write(&e)
            }
            None => Ok(()),
        }
    }

    /// The entry of `message_id`.
    pub fn get(&self, message_id: &str) -> Option<Entry> {
        let b = std::fs::read(self.dir.join(file_name(message_id))).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Whether `message_id` is in the inbox.
    pub fn contains(&self, message_id: &str) -> bool {
        self.dir.join(file_name(message_id)).exists()
    }

    /// Removes a command.
    pub fn remove(&self, message_id: &str) {
        let _ = std::fs::remove_file(self.dir.join(file_name(message_id)));
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut v: Vec<Entry> = rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_string_lossy().ends_with(".json") && !e.file_name().to_string_lossy().starts_with('.')
            })
            .filter_map(|e| std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()))
            .collect();
        v.sort_by_key(|e: &Entry| e.received_ms);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("ssmd-agent-inbox-{}", crate::ids::uuid_v4()));
        let ib = Inbox::open(&dir).unwrap();
        let m = Message {
            created_date: String::new(),
            destination: "mi-1".into(),
            message_id: "aws.ssm.c/1.mi-1".into(),
            payload: "{}".into(),
            payload_digest: String::new(),
            topic: "aws.ssm.sendCommand".into(),
        };
        ib.put(&m).unwrap();
        assert!(ib.contains(&m.message_id));
        ib.mark_started(&m.message_id).unwrap();
        let e = ib.entries();
        assert_eq!(e.len(), 1);
        assert!(e[0].started && e[0].message == m);
        ib.remove(&m.message_id);
        assert!(ib.entries().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
