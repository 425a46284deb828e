//! The `ssmd` binary: command-line parsing, configuration, logging, metrics and wiring of the
//! store, the service and the HTTP server, plus key management commands and the local runbook
//! runner.

mod keys;
mod run;
mod secrets;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use metrics_exporter_prometheus::PrometheusBuilder;
use ssmd_core::{Clock, SystemClock};
use ssmd_protocol::{AppState, Authenticator};
use ssmd_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The address ssmd listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4590";

#[derive(Parser)]
#[command(
    name = "ssmd",
    version,
    about = "A self-hosted implementation of the operations half of AWS Systems Manager (SSM).",
    long_about = "ssmd speaks the SSM API (AWS JSON 1.1 + SigV4), so the aws CLI, boto3 and the AWS SDKs work against it \
                  with an endpoint URL. It keeps its state in an embedded SQLite database by default, or in PostgreSQL \
                  for several replicas."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the database is, shared by every subcommand that opens it.
#[derive(clap::Args, Clone)]
struct DbArgs {
    /// Directory for the embedded SQLite database (ssmd.db) when no --database-url is given.
    #[arg(long, env = "SSMD_DATA_DIR", default_value = "./ssmd-data")]
    data_dir: PathBuf,
    /// Database URL: postgres://user@host/db selects PostgreSQL; sqlite://PATH an SQLite file.
    #[arg(long, env = "SSMD_DATABASE_URL")]
    database_url: Option<String>,
}

/// Limits on every PostgreSQL connection, so that a replica (or a database) whose link stalls
/// mid-transaction cannot hold rows, or requests, for long. Seconds; 0 turns a limit off.
/// See docs/postgres.md.
#[derive(clap::Args, Clone)]
struct PgArgs {
    /// Seconds a statement waits for a row lock another request holds before it gives up (the
    /// request fails with a retryable InternalServerError).
    #[arg(long, env = "SSMD_PG_LOCK_TIMEOUT", default_value_t = 5.0)]
    pg_lock_timeout: f64,
    /// Seconds a session may sit idle inside a transaction before PostgreSQL ends it, releasing
    /// its locks (a replica that froze or lost its network mid-transaction).
    #[arg(long, env = "SSMD_PG_IDLE_IN_TRANSACTION_TIMEOUT", default_value_t = 10.0)]
    pg_idle_in_transaction_timeout: f64,
    /// Seconds one statement may run (PostgreSQL's statement_timeout); ssmd waits one second more
    /// for any answer before it gives the connection up.
    #[arg(long, env = "SSMD_PG_STATEMENT_TIMEOUT", default_value_t = 15.0)]
    pg_statement_timeout: f64,
    /// Seconds PostgreSQL tolerates a silent ssmd at the TCP level (its tcp_user_timeout; its
    /// keepalives start after 2/3 of it and probe every 1/3).
    #[arg(long, env = "SSMD_PG_TCP_TIMEOUT", default_value_t = 15.0)]
    pg_tcp_timeout: f64,
}

impl PgArgs {
    fn limits(&self) -> Result<ssmd_store::PgLimits> {
        let secs = |v: f64, name: &str| {
            std::time::Duration::try_from_secs_f64(v).with_context(|| format!("--{name} must be 0 or more seconds"))
        };
        Ok(ssmd_store::PgLimits {
            lock_timeout: secs(self.pg_lock_timeout, "pg-lock-timeout")?,
            idle_in_transaction: secs(self.pg_idle_in_transaction_timeout, "pg-idle-in-transaction-timeout")?,
            statement_timeout: secs(self.pg_statement_timeout, "pg-statement-timeout")?,
            tcp_timeout: secs(self.pg_tcp_timeout, "pg-tcp-timeout")?,
        })
    }
}

impl DbArgs {
    fn url(&self) -> Result<String> {
        if let Some(u) = &self.database_url {
            return Ok(u.clone());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("creating {}", self.data_dir.display()))?;
        Ok(format!("sqlite://{}", self.data_dir.join("ssmd.db").display()))
    }

    async fn open(&self) -> Result<Store> {
        self.open_with(&ssmd_store::PgLimits::default()).await
    }

    async fn open_with(&self, limits: &ssmd_store::PgLimits) -> Result<Store> {
        let url = self.url()?;
        Store::open_with(&url, limits)
            .await
            .with_context(|| format!("opening the database at {}", ssmd_store::redacted_url(&url)))
    }
}

/// Automation engine settings.
#[derive(clap::Args, Clone)]
struct AutomationArgs {
    /// Automation executions of one account and Region running at once (more wait in Pending).
    #[arg(long, env = "SSMD_AUTOMATION_MAX_RUNNING", default_value_t = 100)]
    automation_max_running: i64,
    /// Automation executions that may wait in Pending before starts are refused.
    #[arg(long, env = "SSMD_AUTOMATION_MAX_QUEUED", default_value_t = 1000)]
    automation_max_queued: i64,
    /// Seconds an engine's claim on an execution lasts unrenewed; after it another replica takes
    /// the execution over.
    #[arg(long, env = "SSMD_AUTOMATION_LEASE_SECONDS", default_value_t = 30.0)]
    automation_lease_seconds: f64,
    /// Python interpreter for aws:executeScript steps.
    #[arg(long, env = "SSMD_PYTHON", default_value = "python3")]
    python: PathBuf,
}

impl AutomationArgs {
    fn settings(&self) -> ssmd_api::automation::Settings {
        ssmd_api::automation::Settings {
            max_running: self.automation_max_running.max(1),
            max_queued: self.automation_max_queued.max(0),
            lease_ms: (self.automation_lease_seconds * 1000.0).max(1000.0) as i64,
            python: self.python.clone(),
            ..Default::default()
        }
    }
}

/// Maintenance Windows settings.
#[derive(clap::Args, Clone)]
struct WindowArgs {
    /// Maintenance windows one account and Region may hold.
    #[arg(long, env = "SSMD_MAX_WINDOWS", default_value_t = 100_000)]
    max_windows: i64,
    /// Days an ended maintenance window execution stays in the history (AWS keeps 30).
    #[arg(long, env = "SSMD_WINDOW_HISTORY_DAYS", default_value_t = 30)]
    window_history_days: i64,
}

impl WindowArgs {
    fn settings(&self) -> ssmd_api::windows::Settings {
        ssmd_api::windows::Settings {
            max_windows: self.max_windows.max(1),
            history_days: self.window_history_days.max(1),
            ..Default::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SSM API server.
    Serve {
        /// Address to listen on (port 0 picks a free port; the chosen address is printed).
        #[arg(long, env = "SSMD_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        pg: PgArgs,
        /// Log format.
        #[arg(long, env = "SSMD_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Accept any well-formed signature, mapping unknown access keys to --default-account
        /// (for test suites written against mocks; never in production).
        #[arg(long, env = "SSMD_ACCEPT_ANY_CREDENTIALS")]
        accept_any_credentials: bool,
        /// The account unknown keys map to with --accept-any-credentials.
        #[arg(long, env = "SSMD_DEFAULT_ACCOUNT", default_value = "123456789012")]
        default_account: String,
        /// Seconds a client may take to send a request's headers (idle keep-alive included)
        /// before the connection is closed.
        #[arg(long, env = "SSMD_HEADER_TIMEOUT", default_value_t = 30.0)]
        header_timeout: f64,
        #[command(flatten)]
        automation: AutomationArgs,
        #[command(flatten)]
        windows: WindowArgs,
        #[command(flatten)]
        secrets: secrets::SecretArgs,
    },
    /// Manage access keys and the accounts they belong to.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Work with Automation runbooks locally.
    Automation {
        #[command(subcommand)]
        command: run::AutomationCommand,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SSMD_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when the
/// future is first polled), so a signal that arrives right after start-up is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let int = async {
            match int.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => {},
            _ = int => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listen: SocketAddr,
    db: DbArgs,
    pg: ssmd_store::PgLimits,
    accept_any: bool,
    default_account: String,
    header_timeout: std::time::Duration,
    automation: AutomationArgs,
    windows: WindowArgs,
    secrets: secrets::SecretArgs,
) -> Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = db.open_with(&pg).await?;
    let root = keys::ensure_root_key(&store, clock.now_ms()).await?;
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        .context("configuring metrics")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let service = Arc::new(
        ssmd_api::Service::with_settings(store.clone(), clock.clone(), automation.settings())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_window_settings(windows.settings())
            .with_parameter_keys(secrets.load(&db.data_dir)?),
    );
    let engine = service.run_background().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = Authenticator::new(store.clone(), accept_any.then_some(default_account));
    let state = Arc::new(AppState { auth, service, clock, metrics: Some(metrics) });
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(key) = root {
        println!("# ssmd generated a root access key (shown once; it is kept in the database):");
        println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
        println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
        println!("export AWS_DEFAULT_REGION=us-east-1");
        println!("export AWS_ENDPOINT_URL=http://{addr}");
    }
    let signal = shutdown_signal();
    let polls = state.service.clone();
    let shutdown = async move {
        signal.await;
        // Held long polls answer now, so shutdown does not wait out their 15 s hold.
        polls.close_long_polls();
    };
    println!("ssmd listening on http://{addr}");
    tracing::info!(%addr, backend = ?store.backend(), "ssmd ready");
    ssmd_protocol::serve(listener, ssmd_protocol::router(state), shutdown, header_timeout).await?;
    // Background work stops before the database closes under it.
    engine.shutdown().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            db,
            pg,
            log_format,
            accept_any_credentials,
            default_account,
            header_timeout,
            automation,
            windows,
            secrets,
        } => {
            init_logging(log_format);
            let header_timeout = std::time::Duration::try_from_secs_f64(header_timeout).context("--header-timeout")?;
            let pg = pg.limits()?;
            serve(listen, db, pg, accept_any_credentials, default_account, header_timeout, automation, windows, secrets)
                .await
        }
        Command::Keys { command, db } => {
            init_logging(LogFormat::Text);
            let store = db.open().await?;
            let r = keys::run(&store, command, SystemClock.now_ms()).await;
            store.close().await;
            r
        }
        Command::Automation { command: run::AutomationCommand::Run(args) } => std::process::exit(run::run(args).await),
    }
}
