//! The `ssmd-agent` command line: `register` and `run`.

use clap::{Parser, Subcommand};
use ssmd_agent::{node, register, state};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A node agent speaking the AWS SSM Agent's protocol to an ssmd server.
#[derive(Parser)]
#[command(name = "ssmd-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Registers this node with an activation (hybrid activation) and prints its instance id.
    Register {
        /// The service endpoint, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        endpoint: String,
        /// The activation code.
        #[arg(long)]
        code: String,
        /// The activation id.
        #[arg(long)]
        id: String,
        /// The region, e.g. us-east-1.
        #[arg(long)]
        region: String,
        /// The state directory [default: $SSMD_AGENT_STATE_DIR, else $HOME/.ssmd-agent].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// A name to report as the computer name instead of the host name.
        #[arg(long)]
        name: Option<String>,
        /// Register again even if this state directory holds a registration.
        #[arg(long)]
        force: bool,
    },
    /// Runs the node in the foreground until SIGTERM or SIGINT.
    Run {
        /// The state directory [default: $SSMD_AGENT_STATE_DIR, else $HOME/.ssmd-agent].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Seconds between pings (UpdateInstanceInformation).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        ping_seconds: u64,
        /// How many commands run at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
        max_parallel: u64,
        /// Seconds running commands may go on after a stop signal before they are killed.
        #[arg(long, default_value_t = 5, hide = true)]
        shutdown_grace_seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Register { endpoint, code, id, region, state_dir, name, force } => state::resolve(state_dir)
            .and_then(|state_dir| {
                register::register(&register::Options { endpoint, code, id, region, state_dir, name, force })
            })
            .map(|instance_id| println!("{instance_id}")),
        Command::Run { state_dir, ping_seconds, max_parallel, shutdown_grace_seconds } => state::resolve(state_dir)
            .and_then(|state_dir| {
                node::run(&node::Options {
                    state_dir,
                    ping_seconds,
                    max_parallel: max_parallel as usize,
                    shutdown_grace: Duration::from_secs(shutdown_grace_seconds),
                })
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssmd-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}
