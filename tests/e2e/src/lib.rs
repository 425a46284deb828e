//! End-to-end test harness: starts the real `ssmd` binary on `127.0.0.1:0` over SQLite (a
//! temporary data directory) or PostgreSQL (a fresh database on 127.0.0.1:5432), and hands out
//! aws-sdk-ssm clients signed with real SigV4 credentials.
//!
//! The binary is `target/debug/ssmd` unless `SSMD_BIN` names another; the test script builds
//! it first. PostgreSQL is reached as `SSMD_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432`); a replica can reach it through a [`proxy::Proxy`]
//! that stalls or cuts its connections on demand.

pub mod agent;
pub mod proxy;
pub mod raw;
pub use raw::{Resp, amz_now, send_raw};

use aws_credential_types::Credentials;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Region};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account of the test root key.
pub const ACCOUNT: &str = "111111111111";
/// The test root key.
pub const ACCESS_KEY: &str = "AKIATESTROOT00000001";
/// Its secret.
pub const SECRET_KEY: &str = "testsecret/0000000000000000000000000000001";

/// Which database a server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// The `ssmd` binary under test.
pub fn ssmd_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SSMD_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
    target.join("debug/ssmd")
}

fn pg_base() -> String {
    std::env::var("SSMD_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Creates an empty PostgreSQL database and returns its URL.
pub fn fresh_pg_database() -> String {
    let name = format!("ssmd_test_{}", uuid::Uuid::new_v4().simple());
    let status = Command::new("psql")
        .args([&format!("{}/postgres", pg_base()), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "creating database {name}");
    format!("{}/{name}", pg_base())
}

/// A running ssmd.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The backend.
    pub backend: Backend,
    data_dir: tempdir::Dir,
    database_url: Option<String>,
    /// The URL the server itself connects with, when not `database_url` (e.g. via a proxy).
    via: Option<String>,
    extra_args: Vec<String>,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("ssmd-e2e-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Server {
    /// Starts a server on a new, empty database.
    pub fn start(backend: Backend) -> Server {
        Self::start_with(backend, &[])
    }

    /// Starts a server with extra `ssmd serve` arguments.
    pub fn start_with(backend: Backend, args: &[&str]) -> Server {
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_pg_database()),
        };
        let mut s = Server {
            child: None,
            endpoint: String::new(),
            backend,
            data_dir: tempdir::Dir::new(),
            database_url,
            via: None,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    /// Starts another replica on this server's PostgreSQL database.
    pub fn replica(&self) -> Server {
        self.replica_with(None, &[])
    }

    /// Starts another replica on this server's PostgreSQL database that connects with
    /// `via` (e.g. [`proxy::Proxy::url_for`] of [`Server::database_url`]) instead of the
    /// database's own URL, with `args` after this server's extra arguments.
    pub fn replica_with(&self, via: Option<&str>, args: &[&str]) -> Server {
        assert_eq!(self.backend, Backend::Postgres, "replicas share a PostgreSQL database");
        let mut extra_args = self.extra_args.clone();
        extra_args.extend(args.iter().map(|s| s.to_string()));
        let mut s = Server {
            child: None,
            endpoint: String::new(),
            backend: self.backend,
            data_dir: tempdir::Dir::new(),
            database_url: self.database_url.clone(),
            via: via.map(str::to_string),
            extra_args,
        };
        s.spawn("127.0.0.1:0");
        s
    }

    /// The PostgreSQL database's URL (`None` on SQLite).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// The server's Prometheus metrics text.
    pub fn metrics(&self) -> String {
        send_raw(self.port(), b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").body
    }

    /// The sum of a counter's samples whose labels contain `labels` (e.g. `what="transaction"`).
    pub fn counter(&self, name: &str, labels: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn spawn(&mut self, listen: &str) {
        let mut cmd = Command::new(ssmd_bin());
        cmd.arg("serve").arg("--listen").arg(listen).arg("--data-dir").arg(&self.data_dir.0);
        if let Some(url) = self.via.as_ref().or(self.database_url.as_ref()) {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(&self.extra_args)
            .env("SSMD_ACCESS_KEY_ID", ACCESS_KEY)
            .env("SSMD_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("SSMD_ACCOUNT_ID", ACCOUNT)
            .env_remove("SSMD_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", ssmd_bin().display()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("ssmd listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("ssmd did not start within 30 s");
        self.endpoint = url;
        self.child = Some(child);
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe_kill(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "ssmd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same database and port.
    pub fn restart(&mut self) {
        self.kill9();
        let listen = format!("127.0.0.1:{}", self.port());
        self.spawn(&listen);
    }

    /// A client for the root account.
    pub fn client(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY, "us-east-1")
    }

    /// A client with other credentials or region.
    pub fn client_with(&self, key: &str, secret: &str, region: &str) -> Client {
        Client::from_conf(self.config(key, secret, region).build())
    }

    /// A root client that never retries, so a test sees every error the server answers.
    pub fn client_without_retries(&self) -> Client {
        let conf = self.config(ACCESS_KEY, SECRET_KEY, "us-east-1").retry_config(RetryConfig::disabled());
        Client::from_conf(conf.build())
    }

    fn config(&self, key: &str, secret: &str, region: &str) -> aws_sdk_ssm::config::Builder {
        let creds = Credentials::new(key, secret, None, None, "e2e");
        let http = aws_smithy_http_client::Builder::new().build_http();
        aws_sdk_ssm::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds)
            .endpoint_url(&self.endpoint)
            .http_client(http)
    }

    /// Runs `ssmd keys ...` against this server's database and returns stdout.
    pub fn keys(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(ssmd_bin());
        cmd.arg("keys").arg("--data-dir").arg(&self.data_dir.0);
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(args);
        let out = cmd.env_remove("SSMD_DATABASE_URL").output().expect("ssmd keys");
        assert!(out.status.success(), "ssmd keys failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs one SQL statement directly on this server's database (`sqlite3` or `psql`), for
    /// tests that need a state the API cannot produce (e.g. an expired credential) or cannot
    /// see; returns the output rows, columns separated by `|`, trimmed.
    pub fn sql(&self, statement: &str) -> String {
        let out = match &self.database_url {
            Some(url) => Command::new("psql")
                .args([url.as_str(), "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", statement])
                .output(),
            None => Command::new("sqlite3").arg(self.data_dir.0.join("ssmd.db")).arg(statement).output(),
        }
        .expect("running the database client");
        assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Creates a key for a new account; returns (key id, secret, account).
    pub fn new_account(&self) -> (String, String, String) {
        let out = self.keys(&["create"]);
        let field = |p: &str| out.lines().find_map(|l| l.strip_prefix(p)).expect("key output").trim().to_string();
        (field("export AWS_ACCESS_KEY_ID="), field("export AWS_SECRET_ACCESS_KEY="), field("# account "))
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The error code of an SDK error (`__type`), for assertions.
pub fn code<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_ssm::error::SdkError::ServiceError(e) => e.err().code().unwrap_or("").to_string(),
        other => format!("not a service error: {other:?}"),
    }
}

/// The error message of an SDK error.
pub fn message<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_ssm::error::SdkError::ServiceError(e) => e.err().message().unwrap_or("").to_string(),
        other => format!("{other:?}"),
    }
}

/// Defines one `#[tokio::test]` per backend running the same async body with a fresh server.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, args = $args:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = $crate::Server::start_with($crate::Backend::Sqlite, $args);
                ($body)(server).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let server = $crate::Server::start_with($crate::Backend::Postgres, $args);
                ($body)(server).await;
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let server = $crate::Server::start($crate::Backend::Sqlite);
                ($body)(server).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let server = $crate::Server::start($crate::Backend::Postgres);
                ($body)(server).await;
            }
        }
    };
}
