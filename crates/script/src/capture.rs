//! Bounded capture of a child's output stream: keeps the first bytes up to a cap, reads and
//! discards the rest so the child never blocks on a full pipe, and turns what it kept into text
//! cut at a character boundary.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of one read from the pipe.
const CHUNK: usize = 64 * 1024;

/// The first `cap` bytes of a stream, and whether more followed.
pub(crate) struct Capture {
    kept: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capture {
    /// An empty capture that keeps at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Capture { kept: Vec::new(), cap, truncated: false }
    }

    /// Reads `stream` to its end (or first error), keeping what fits under the cap.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(&mut self, stream: Option<R>) {
        let Some(mut stream) = stream else { return };
        let mut chunk = vec![0u8; CHUNK];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.push(&chunk[..n]),
            }
        }
    }

    /// Appends bytes, dropping whatever goes past the cap.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = self.cap - self.kept.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The kept bytes as text of at most `cap` bytes. A character the cap cut in half is
    /// dropped; other invalid UTF-8 becomes U+FFFD.
    pub(crate) fn into_text(self) -> String {
        let mut kept = self.kept;
        if self.truncated
            && let Err(e) = std::str::from_utf8(&kept)
            && e.error_len().is_none()
        {
            kept.truncate(e.valid_up_to());
        }
        let mut text = match String::from_utf8(kept) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if text.len() > self.cap {
            let mut end = self.cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut c = Capture::new(10);
        c.push(b"hello");
        c.push(b" you");
        assert_eq!(c.into_text(), "hello you");
    }

    #[test]
    fn truncates_at_the_cap() {
        let mut c = Capture::new(4);
        c.push(b"abcdefgh");
        c.push(b"ijk");
        assert_eq!(c.into_text(), "abcd");
    }

    #[test]
    fn does_not_split_a_character() {
        // "é" is two bytes: a cap of 3 keeps "a" and "é", a cap of 2 only "a".
        let mut c = Capture::new(3);
        c.push("aéé".as_bytes());
        assert_eq!(c.into_text(), "aé");
        let mut c = Capture::new(2);
        c.push("aéé".as_bytes());
        assert_eq!(c.into_text(), "a");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_within_the_cap() {
        let mut c = Capture::new(4);
        c.push(&[b'a', 0xff, 0xfe, b'b', b'c']);
        let text = c.into_text();
        assert!(text.len() <= 4, "{text:?}");
        assert!(text.starts_with("a\u{fffd}"), "{text:?}");
    }

    #[tokio::test]
    async fn reads_a_stream_past_the_cap() {
        let data = vec![b'x'; 300_000];
        let mut c = Capture::new(1000);
        c.read_from(Some(&data[..])).await;
        assert_eq!(c.into_text().len(), 1000);
    }
}
