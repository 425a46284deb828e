//! Bounded capture of a command's output stream: a thread keeps the first N bytes, counts and
//! throws away the rest, and keeps reading until the end so that the command never blocks on a
//! full pipe. Memory stays at N whatever the command prints.

use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    total: u64,
}

/// A stream being drained.
pub struct Drain {
    captured: Arc<Mutex<Captured>>,
    done: mpsc::Receiver<()>,
}

/// What a stream produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Its first bytes (at most the limit).
    pub kept: Vec<u8>,
    /// How many bytes it produced in all (so far, if it had not ended).
    pub total: u64,
    /// Whether it had ended.
    pub ended: bool,
}

/// Starts draining `reader`, keeping at most `keep` bytes.
pub fn drain(mut reader: impl Read + Send + 'static, keep: usize) -> Drain {
    let captured = Arc::new(Mutex::new(Captured::default()));
    let (tx, done) = mpsc::channel();
    let shared = captured.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut c = shared.lock().unwrap();
                    let room = keep.saturating_sub(c.kept.len()).min(n);
                    c.kept.extend_from_slice(&buf[..room]);
                    c.total += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    Drain { captured, done }
}

impl Drain {
    /// Waits up to `wait` for the end of the stream, then returns what it produced. A stream
    /// still open then (a background process holding it) keeps being drained, unseen.
    pub fn finish(self, wait: Duration) -> Output {
        let ended = self.done.recv_timeout(wait).is_ok();
        let c = self.captured.lock().unwrap();
        Output { kept: c.kept.clone(), total: c.total, ended }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_all() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let d = drain(std::io::Cursor::new(data.clone()), 1000);
        let o = d.finish(Duration::from_secs(5));
        assert!(o.ended);
        assert_eq!(o.total, 200_000);
        assert_eq!(o.kept, data[..1000]);
        let o = drain(std::io::Cursor::new(b"short".to_vec()), 1000).finish(Duration::from_secs(5));
        assert_eq!((o.kept.as_slice(), o.total), (&b"short"[..], 5));
    }
}
