//! ssmd-agent: a small node agent that speaks the AWS SSM Agent's wire protocol to an ssmd server
//! (or anything else that implements it).
//!
//! It registers with an activation (`register`), obtains temporary credentials with its RSA key,
//! pings `UpdateInstanceInformation`, long-polls `ec2messages` for Run Command messages, runs
//! `aws:runShellScript` steps of schema 1.2 and 2.x documents, and reports the results with
//! `SendReply`, spooling replies the server could not take. It has no server or database code.
//!
//! Module map: `cli` side — [`register`], [`node`]; talking to the service — [`http`],
//! [`session`], [`mds`], [`outbox`], [`spool`]; running commands — [`params`], [`document`],
//! [`runner`], [`exec`], [`capture`], [`truncate`], [`reply`], [`pool`], [`inbox`], [`seen`];
//! plumbing — [`state`], [`platform`], [`clock`], [`ids`], [`log`], [`backoff`], [`stop`].

pub mod backoff;
pub mod capture;
pub mod clock;
pub mod document;
pub mod exec;
pub mod http;
pub mod ids;
pub mod inbox;
pub mod log;
pub mod mds;
pub mod node;
pub mod outbox;
pub mod params;
pub mod platform;
pub mod pool;
pub mod register;
pub mod reply;
pub mod runner;
pub mod secure;
pub mod seen;
pub mod session;
pub mod spool;
pub mod state;
pub mod stop;
pub mod truncate;

/// The agent's name in pings and replies.
pub const AGENT_NAME: &str = "ssmd-agent";

/// The agent's version in pings and replies.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
