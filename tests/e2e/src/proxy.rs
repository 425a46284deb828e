//! A TCP proxy to put between one ssmd replica and PostgreSQL, which a test can tell to stall
//! (stop forwarding bytes in both directions, closing nothing — what a frozen process or a
//! network partition looks like to the other end), to resume, or to cut connections.
//!
//! Trouble can also be armed to strike at an exact point of the PostgreSQL wire protocol (which
//! is plain text here): [`Proxy::arm`] waits for a connection to send bytes containing one
//! pattern, then acts when that same connection next sends bytes containing another — e.g. the
//! tag value an AddTagsToResource binds, then the `COMMIT` of that request's transaction.
//!
//! Plain threads, so it runs whatever the test's async runtime is doing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// What an armed trigger does when it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hold the bytes that struck and stall every connection until [`Proxy::resume`].
    Stall,
    /// Drop the bytes that struck and cut that connection (both sockets closed).
    Cut,
}

/// A proxy listening on `127.0.0.1:port`, forwarding to one target. Stops on drop.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    stalled: bool,
    stopped: bool,
    conns: Vec<Conn>,
    next_id: u64,
    trigger: Option<Trigger>,
    /// Bumped whenever a trigger is armed, so that what a connection saw before does not count.
    generation: u64,
    fired: usize,
}

struct Conn {
    id: u64,
    client: TcpStream,
    server: TcpStream,
}

struct Trigger {
    after: Vec<u8>,
    at: Vec<u8>,
    action: Action,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

impl State {
    fn live(&self, id: u64) -> bool {
        self.conns.iter().any(|c| c.id == id)
    }

    fn cut(&mut self, id: u64) {
        self.conns.retain(|c| {
            if c.id == id {
                let _ = c.client.shutdown(Shutdown::Both);
                let _ = c.server.shutdown(Shutdown::Both);
            }
            c.id != id
        });
    }
}

impl Proxy {
    /// A proxy to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() });
        let (s, target) = (shared.clone(), target.to_string());
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.lock().stopped {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let id = {
                    let mut st = s.lock();
                    st.next_id += 1;
                    let id = st.next_id;
                    let (Ok(c), Ok(sv)) = (client.try_clone(), server.try_clone()) else { continue };
                    st.conns.push(Conn { id, client: c, server: sv });
                    id
                };
                let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let (sa, sb) = (s.clone(), s.clone());
                thread::spawn(move || pump(&sa, id, client, server, true));
                thread::spawn(move || pump(&sb, id, s2, c2, false));
            }
        });
        Proxy { port, shared }
    }

    /// A proxy to the test PostgreSQL server (`SSMD_TEST_PG`).
    pub fn to_postgres() -> Proxy {
        Proxy::start(&host_port(&crate::pg_base()))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `database_url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, database_url: &str) -> String {
        let hp = host_port(database_url);
        database_url.replacen(&hp, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Stops forwarding in both directions on every connection, new ones included.
    pub fn stall(&self) {
        self.shared.lock().stalled = true;
    }

    /// Forwards again, starting with whatever was held.
    pub fn resume(&self) {
        self.shared.lock().stalled = false;
        self.shared.changed.notify_all();
    }

    /// Cuts every connection; answers how many there were.
    pub fn kill_all(&self) -> usize {
        let mut st = self.shared.lock();
        let ids: Vec<u64> = st.conns.iter().map(|c| c.id).collect();
        for id in &ids {
            st.cut(*id);
        }
        drop(st);
        self.shared.changed.notify_all();
        ids.len()
    }

    /// Arms one trigger (replacing any armed one): once a connection has sent bytes containing
    /// `after`, the next bytes it sends that contain `at` (any bytes, if `at` is empty) strike
    /// with `action`. It strikes once.
    pub fn arm(&self, after: &[u8], at: &[u8], action: Action) {
        let mut st = self.shared.lock();
        st.generation += 1;
        st.trigger = Some(Trigger { after: after.to_vec(), at: at.to_vec(), action });
    }

    /// How many armed triggers have struck.
    pub fn fired(&self) -> usize {
        self.shared.lock().fired
    }

    /// Connections open through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.lock().conns.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Copies `from` to `to` for connection `id`, holding bytes while stalled, and applying an
/// armed trigger to what the client sends (`from_client`).
fn pump(s: &Shared, id: u64, mut from: TcpStream, mut to: TcpStream, from_client: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    // (trigger generation, whether this connection has sent the trigger's `after` bytes)
    let mut seen = (0u64, false);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut st = s.lock();
        if from_client && let Some(t) = &st.trigger {
            if seen.0 != st.generation {
                seen = (st.generation, false);
            }
            if !seen.1 {
                seen.1 = contains(chunk, &t.after);
            } else if contains(chunk, &t.at) {
                let action = t.action;
                st.trigger = None;
                st.fired += 1;
                match action {
                    Action::Stall => st.stalled = true,
                    Action::Cut => {
                        st.cut(id);
                        drop(st);
                        s.changed.notify_all();
                        return;
                    }
                }
            }
        }
        while st.stalled && st.live(id) && !st.stopped {
            st = s
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if !st.live(id) {
            return;
        }
        drop(st);
        if to.write_all(chunk).is_err() {
            let _ = from.shutdown(Shutdown::Read);
            return;
        }
    }
}

/// The `host:port` of a `postgres://[user@]host:port[/db]` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, hp)| hp).to_string()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.kill_all();
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_pointed_at_the_proxy() {
        assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/db"), "127.0.0.1:5432");
        assert_eq!(host_port("postgres://127.0.0.1:5432"), "127.0.0.1:5432");
        let p = Proxy::start("127.0.0.1:9");
        assert_eq!(p.url_for("postgres://u@127.0.0.1:5432/d"), format!("postgres://u@127.0.0.1:{}/d", p.port()));
    }

    #[test]
    fn stalls_resumes_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = echo.local_addr().unwrap();
        thread::spawn(move || {
            for c in echo.incoming().flatten() {
                thread::spawn(move || {
                    let mut c = c;
                    let mut b = [0u8; 1024];
                    while let Ok(n) = c.read(&mut b) {
                        if n == 0 || c.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let p = Proxy::start(&addr.to_string());
        let mut c = TcpStream::connect(("127.0.0.1", p.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut b = [0u8; 16];
        c.write_all(b"ping").unwrap();
        assert_eq!(c.read(&mut b).unwrap(), 4);
        p.stall();
        c.write_all(b"held").unwrap();
        assert!(c.read(&mut b).is_err(), "nothing passes while stalled");
        p.resume();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = c.read(&mut b).unwrap();
        assert_eq!(&b[..n], b"held");
        // Armed: the second message after "mark" is cut, not forwarded.
        p.arm(b"mark", b"", Action::Cut);
        c.write_all(b"mark").unwrap();
        assert_eq!(c.read(&mut b).unwrap(), 4);
        c.write_all(b"next").unwrap();
        assert_eq!(c.read(&mut b).unwrap_or(0), 0, "the connection was cut");
        assert_eq!((p.fired(), p.connections()), (1, 0));
    }
}
