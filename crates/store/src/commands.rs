//! Run Command: commands, their per-node invocations, and the message queue the nodes' agents
//! long-poll (`ec2messages`).
//!
//! * A command row holds what never changes (`spec`, the agent payload) and what moves: its
//!   status, the rate-control progress (opaque JSON the caller owns) and the counters SSM lists.
//! * Every change to a command and its invocations goes through [`Store::settle_command`]: one
//!   transaction that locks the command row (`FOR UPDATE` on PostgreSQL; SQLite's single writer
//!   serialises anyway), hands the caller the command and the invocations concerned, and applies
//!   what the caller decides — invocation updates, new deliveries, cancel messages, deleted
//!   messages and the new command state — or nothing. So two replicas never dispatch the same
//!   invocation twice and counters never drift.
//! * A message is handed out by [`Store::take_messages`] and becomes invisible for the visibility
//!   timeout; an unacknowledged one comes back after it. Claiming uses `FOR UPDATE SKIP LOCKED`
//!   on PostgreSQL so two replicas never hand out the same message at once.
//! * Replies are idempotent on their ReplyId (`command_replies`).

use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, timed};

/// The message id of the command `command_id` sent to `instance_id` (the AWS agent takes the
/// second-to-last dot-separated token as the command id).
pub fn send_message_id(command_id: &str, instance_id: &str) -> String {
    format!("aws.ssm.{command_id}.{instance_id}")
}

/// The topic of a command message for `region` (as SSM spells it, e.g. `aws.ssm.sendCommand.us.east.1.1`).
pub fn send_topic(region: &str) -> String {
    format!("aws.ssm.sendCommand.{}.1", region.replace('-', "."))
}

/// The topic of a cancel message for `region`.
pub fn cancel_topic(region: &str) -> String {
    format!("aws.ssm.cancelCommand.{}.1", region.replace('-', "."))
}

/// A new command.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub id: String,
    pub account: String,
    pub region: String,
    pub requested_ms: i64,
    /// When undelivered invocations time out: the command's deadline job is due then.
    pub deliver_by_ms: i64,
    pub document_name: String,
    pub status: String,
    pub status_details: String,
    /// The static part of the `Command` shape (JSON).
    pub spec: String,
    /// The agent payload (JSON), the same for every node.
    pub payload: String,
    /// The caller's rate-control state (JSON).
    pub progress: String,
    /// Targets in dispatch order: (instance id, instance name).
    pub targets: Vec<(String, String)>,
    /// How many of the first targets are dispatched at once.
    pub dispatch: usize,
    /// Every invocation's `plugins` to begin with (JSON; the caller's placeholders for the
    /// document's steps, so replies can keep the document's order).
    pub plugins: String,
}

/// A stored command.
#[derive(Debug, Clone)]
pub struct CommandRow {
    pub id: String,
    pub account: String,
    pub region: String,
    pub requested_ms: i64,
    pub document_name: String,
    pub status: String,
    pub status_details: String,
    pub spec: String,
    pub progress: String,
    pub target_count: i64,
    pub completed_count: i64,
    pub error_count: i64,
    pub delivery_timed_out_count: i64,
}

/// A stored invocation: one node's part of a command. Callers of `settle_command` change the
/// mutable fields and hand the row back.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRow {
    pub command_id: String,
    pub instance_id: String,
    pub seq: i64,
    pub requested_ms: i64,
    pub instance_name: String,
    pub status: String,
    pub status_details: String,
    pub dispatched_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub response_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// The invocation's plugins (JSON array of `CommandPlugin`).
    pub plugins: String,
}

/// Which invocations `settle_command` loads for the caller.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// None (a change to the command alone).
    None,
    /// One node's invocation.
    One(&'a str),
    /// Every invocation not in one of the terminal statuses.
    Unfinished,
}

/// What a settle decides. Counters are absolute values.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    pub status: String,
    pub status_details: String,
    pub progress: String,
    pub completed_count: i64,
    pub error_count: i64,
    pub delivery_timed_out_count: i64,
    /// Changed invocations.
    pub invocations: Vec<InvocationRow>,
    /// Sequence numbers of invocations to deliver now.
    pub dispatch: Vec<i64>,
    /// Nodes whose command message is done with (finished, timed out, cancelled before delivery).
    pub drop_messages: Vec<String>,
    /// Nodes whose command message was acknowledged by a reply (not to be redelivered).
    pub acked: Vec<String>,
    /// Nodes that get a cancel message (id, node).
    pub cancel_messages: Vec<(String, String)>,
    /// Every invocation never sent ends Cancelled / Terminated (dispatch stopped on errors).
    pub terminate_unsent: bool,
}

/// A message handed to a node.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub message_id: String,
    pub destination: String,
    pub command_id: String,
    pub topic: String,
    pub payload: String,
    pub created_ms: i64,
}

/// Filters for listing commands and invocations; `None` means no filter.
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    pub command_id: Option<String>,
    pub instance_id: Option<String>,
    pub statuses: Vec<String>,
    pub document_name: Option<String>,
    pub invoked_after_ms: Option<i64>,
    pub invoked_before_ms: Option<i64>,
    /// Invocations only: `Some(true)` finished ones, `Some(false)` unfinished ones.
    pub complete: Option<bool>,
}

/// Invocation statuses that are final.
pub const FINAL_STATUSES: &[&str] = &["Success", "Failed", "TimedOut", "Cancelled"];

/// The job kind of a command's deadlines (delivery timeout, then ExpiresAfter).
pub const COMMAND_JOB: &str = "command";

/// Whether a command status is final (the command's statuses end like its invocations').
fn is_final_command(status: &str) -> bool {
    FINAL_STATUSES.contains(&status)
}

const COMMAND_COLUMNS: &str = "id, account, region, requested_ms, document_name, status, status_details, \
     spec, progress, target_count, completed_count, error_count, delivery_timed_out_count";
const INVOCATION_COLUMNS: &str = "command_id, instance_id, seq, requested_ms, instance_name, status, status_details, \
     dispatched_ms, started_ms, ended_ms, response_code, stdout, stderr, plugins";

fn command_row(r: &sql::Row) -> Result<CommandRow> {
    Ok(CommandRow {
        id: r.get("id")?,
        account: r.get("account")?,
        region: r.get("region")?,
        requested_ms: r.get("requested_ms")?,
        document_name: r.get("document_name")?,
        status: r.get("status")?,
        status_details: r.get("status_details")?,
        spec: r.get("spec")?,
        progress: r.get("progress")?,
        target_count: r.get("target_count")?,
        completed_count: r.get("completed_count")?,
        error_count: r.get("error_count")?,
        delivery_timed_out_count: r.get("delivery_timed_out_count")?,
    })
}

fn invocation_row(r: &sql::Row) -> Result<InvocationRow> {
    Ok(InvocationRow {
        command_id: r.get("command_id")?,
        instance_id: r.get("instance_id")?,
        seq: r.get("seq")?,
        requested_ms: r.get("requested_ms")?,
        instance_name: r.get("instance_name")?,
        status: r.get("status")?,
        status_details: r.get("status_details")?,
        dispatched_ms: r.get("dispatched_ms")?,
        started_ms: r.get("started_ms")?,
        ended_ms: r.get("ended_ms")?,
        response_code: r.get("response_code")?,
        stdout: r.get("stdout")?,
        stderr: r.get("stderr")?,
        plugins: r.get("plugins")?,
    })
}

fn final_list() -> String {
    FINAL_STATUSES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Inserts a command, its invocations (Pending) and the messages of the first `dispatch`
    /// targets, in one transaction.
    pub async fn insert_command(&self, c: &NewCommand) -> Result<()> {
        timed("insert_command", async {
            transaction!(self.db, |tx| {
                sql::query(
                    "INSERT INTO commands (id, account, region, requested_ms, document_name, status, \
                 status_details, spec, payload, progress, target_count, completed_count, error_count, \
                 delivery_timed_out_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0)",
                )
                .bind(&c.id)
                .bind(&c.account)
                .bind(&c.region)
                .bind(c.requested_ms)
                .bind(&c.document_name)
                .bind(&c.status)
                .bind(&c.status_details)
                .bind(&c.spec)
                .bind(&c.payload)
                .bind(&c.progress)
                .bind(c.targets.len() as i64)
                .execute(&mut *tx)
                .await?;
                for (seq, (instance, name)) in c.targets.iter().enumerate() {
                    let dispatched = (seq < c.dispatch).then_some(c.requested_ms);
                    sql::query(
                        "INSERT INTO command_invocations (command_id, instance_id, account, region, seq, requested_ms, \
                     instance_name, status, status_details, dispatched_ms, response_code, stdout, stderr, plugins) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'Pending', 'Pending', $8, -1, '', '', $9)",
                    )
                    .bind(&c.id)
                    .bind(instance)
                    .bind(&c.account)
                    .bind(&c.region)
                    .bind(seq as i64)
                    .bind(c.requested_ms)
                    .bind(name)
                    .bind(dispatched)
                    .bind(&c.plugins)
                    .execute(&mut *tx)
                    .await?;
                    if dispatched.is_some() {
                        Self::add_message(
                            tx,
                            &send_message_id(&c.id, instance),
                            instance,
                            &c.id,
                            &send_topic(&c.region),
                            None,
                            c.requested_ms,
                        )
                        .await?;
                    }
                }
                if !is_final_command(&c.status) {
                    Self::schedule_job(tx, COMMAND_JOB, &c.id, c.deliver_by_ms, None, c.requested_ms).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn add_message(
        tx: &mut Tx<'_>,
        id: &str,
        destination: &str,
        command_id: &str,
        topic: &str,
        payload: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        sql::query(
            "INSERT INTO node_messages (message_id, destination, command_id, topic, payload, created_ms, visible_ms, \
             deliveries, acked) VALUES ($1, $2, $3, $4, $5, $6, $6, 0, 0) ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(id)
        .bind(destination)
        .bind(command_id)
        .bind(topic)
        .bind(payload)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // The node's long poll, in whichever replica holds it.
        tx.notify(format!("node:{destination}"));
        Ok(())
    }

    /// One command of the account and region.
    pub async fn command(&self, account: &str, region: &str, id: &str) -> Result<Option<CommandRow>> {
        sql::query(format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1 AND account = $2 AND region = $3"))
            .bind(id)
            .bind(account)
            .bind(region)
            .fetch_optional(&self.db)
            .await?
            .as_ref()
            .map(command_row)
            .transpose()
    }

    /// One invocation of the account and region.
    pub async fn invocation(
        &self,
        account: &str,
        region: &str,
        command_id: &str,
        instance_id: &str,
    ) -> Result<Option<InvocationRow>> {
        sql::query(format!(
            "SELECT {INVOCATION_COLUMNS} FROM command_invocations \
             WHERE command_id = $1 AND instance_id = $2 AND account = $3 AND region = $4"
        ))
        .bind(command_id)
        .bind(instance_id)
        .bind(account)
        .bind(region)
        .fetch_optional(&self.db)
        .await?
        .as_ref()
        .map(invocation_row)
        .transpose()
    }

    /// Changes a command and its invocations in one transaction (see the module header).
    /// `reply`: (ReplyId, MessageId) of an agent reply; a ReplyId seen before makes this a no-op
    /// that returns `false`. `decide` gets the command (`None` if there is no such command) and
    /// the invocations in `scope`, and returns the change to make, or `None` for none.
    /// Returns `None` for a duplicate reply or an unknown command, else the nodes that got a new
    /// message (to wake their long polls). `decide` is called again if the transaction is
    /// repeated after its connection died (see `sql::transaction!`).
    pub async fn settle_command<F>(
        &self,
        command_id: &str,
        scope: Scope<'_>,
        reply: Option<(&str, &str)>,
        now_ms: i64,
        mut decide: F,
    ) -> Result<Option<Vec<String>>>
    where
        F: FnMut(&CommandRow, Vec<InvocationRow>) -> Option<Settlement> + Send,
    {
        timed("settle_command", async {
            transaction!(self.db, |tx| {
                if let Some((reply_id, message_id)) = reply {
                    let n = sql::query(
                        "INSERT INTO command_replies (reply_id, message_id, received_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (reply_id) DO NOTHING",
                    )
                    .bind(reply_id)
                    .bind(message_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    if n == 0 {
                        return Ok(None);
                    }
                }
                let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
                let Some(cmd) = sql::query(format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1{lock}"))
                    .bind(command_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(command_row)
                    .transpose()?
                else {
                    return Ok(None);
                };
                let invocations = match scope {
                Scope::None => Vec::new(),
                Scope::One(instance) => sql::query(format!(
                    "SELECT {INVOCATION_COLUMNS} FROM command_invocations WHERE command_id = $1 AND instance_id = $2"
                ))
                .bind(command_id)
                .bind(instance)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(invocation_row)
                .collect::<Result<Vec<_>>>()?,
                Scope::Unfinished => sql::query(format!(
                    "SELECT {INVOCATION_COLUMNS} FROM command_invocations WHERE command_id = $1 \
                     AND status NOT IN ({}) ORDER BY seq",
                    final_list()
                ))
                .bind(command_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(invocation_row)
                .collect::<Result<Vec<_>>>()?,
            };
                let Some(s) = decide(&cmd, invocations) else {
                    // Nothing to change: the reply id is not kept either (a replay changes nothing
                    // again), so replies that change nothing can't fill the table.
                    tx.discard();
                    return Ok(Some(Vec::new()));
                };
                let woken = Self::apply_settlement(tx, &cmd, &s, now_ms).await?;
                Ok(Some(woken))
            })
        })
        .await
    }

    async fn apply_settlement(tx: &mut Tx<'_>, cmd: &CommandRow, s: &Settlement, now_ms: i64) -> Result<Vec<String>> {
        let mut woken = Vec::new();
        let unchanged = s.status == cmd.status
            && s.status_details == cmd.status_details
            && s.progress == cmd.progress
            && s.completed_count == cmd.completed_count
            && s.error_count == cmd.error_count
            && s.delivery_timed_out_count == cmd.delivery_timed_out_count;
        // Most replies (a node's InProgress) leave the command as it is: no rewrite of its row.
        if !unchanged {
            sql::query(
                "UPDATE commands SET status = $1, status_details = $2, progress = $3, completed_count = $4, \
             error_count = $5, delivery_timed_out_count = $6 WHERE id = $7",
            )
            .bind(&s.status)
            .bind(&s.status_details)
            .bind(&s.progress)
            .bind(s.completed_count)
            .bind(s.error_count)
            .bind(s.delivery_timed_out_count)
            .bind(&cmd.id)
            .execute(&mut *tx)
            .await?;
        }
        if is_final_command(&s.status) && !is_final_command(&cmd.status) {
            // Its deadlines are moot, and whoever waits for it (`aws:runCommand`) carries on.
            Self::cancel_job(tx, COMMAND_JOB, &cmd.id).await?;
            Self::complete_awaited(tx, &format!("command:{}", cmd.id), now_ms).await?;
        }
        for node in &s.drop_messages {
            sql::query("DELETE FROM node_messages WHERE message_id = $1")
                .bind(send_message_id(&cmd.id, node))
                .execute(&mut *tx)
                .await?;
        }
        for node in &s.acked {
            sql::query("UPDATE node_messages SET acked = 1 WHERE message_id = $1")
                .bind(send_message_id(&cmd.id, node))
                .execute(&mut *tx)
                .await?;
        }
        // Invocations after the messages: a pickup locks a message, then its invocation (Delayed);
        // the same order here keeps PostgreSQL from deadlocking the two.
        for i in &s.invocations {
            sql::query(
                "UPDATE command_invocations SET status = $1, status_details = $2, dispatched_ms = $3, \
                 started_ms = $4, ended_ms = $5, response_code = $6, stdout = $7, stderr = $8, plugins = $9 \
                 WHERE command_id = $10 AND instance_id = $11",
            )
            .bind(&i.status)
            .bind(&i.status_details)
            .bind(i.dispatched_ms)
            .bind(i.started_ms)
            .bind(i.ended_ms)
            .bind(i.response_code)
            .bind(&i.stdout)
            .bind(&i.stderr)
            .bind(&i.plugins)
            .bind(&cmd.id)
            .bind(&i.instance_id)
            .execute(&mut *tx)
            .await?;
        }
        for (id, node) in &s.cancel_messages {
            let payload = format!(r#"{{"CancelMessageId":"{}"}}"#, send_message_id(&cmd.id, node));
            Self::add_message(tx, id, node, &cmd.id, &cancel_topic(&cmd.region), Some(&payload), now_ms).await?;
            woken.push(node.clone());
        }
        if s.terminate_unsent {
            sql::query(format!(
                "UPDATE command_invocations SET status = 'Cancelled', status_details = 'Terminated', ended_ms = $1 \
                 WHERE command_id = $2 AND dispatched_ms IS NULL AND status NOT IN ({})",
                final_list()
            ))
            .bind(now_ms)
            .bind(&cmd.id)
            .execute(&mut *tx)
            .await?;
        }
        for seq in &s.dispatch {
            let nodes: Vec<String> = sql::query(
                "UPDATE command_invocations SET dispatched_ms = $1 WHERE command_id = $2 AND seq = $3 \
                 AND dispatched_ms IS NULL RETURNING instance_id",
            )
            .bind(now_ms)
            .bind(&cmd.id)
            .bind(*seq)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.first())
            .collect::<Result<_>>()?;
            for node in nodes {
                let id = send_message_id(&cmd.id, &node);
                Self::add_message(tx, &id, &node, &cmd.id, &send_topic(&cmd.region), None, now_ms).await?;
                woken.push(node);
            }
        }
        Ok(woken)
    }

    /// Hands out up to `limit` visible, unacknowledged messages of `destination`, making them
    /// invisible until `invisible_until`. A command message handed out again (its earlier
    /// delivery was never acknowledged) marks its Pending invocation Delayed.
    pub async fn take_messages(
        &self,
        destination: &str,
        now_ms: i64,
        invisible_until: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>> {
        let mut all = self.take_messages_many(&[(destination.to_string(), invisible_until)], now_ms, limit).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`Store::take_messages`] for many nodes at once, in one transaction: `pickups` are
    /// (destination, invisible until); the answer has one list per pickup, in order. Woken long
    /// polls are served this way in batches, so a fan-out to many nodes costs one commit, not one
    /// per node.
    pub async fn take_messages_many(
        &self,
        pickups: &[(String, i64)],
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<Vec<MessageRow>>> {
        timed("take_messages", async {
            transaction!(self.db, |tx| {
                let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
                let take = format!(
                    "UPDATE node_messages SET visible_ms = $1, deliveries = deliveries + 1 WHERE message_id IN (\
                 SELECT message_id FROM node_messages WHERE destination = $2 AND acked = 0 AND visible_ms <= $3 \
                 ORDER BY created_ms, message_id LIMIT $4{lock}) \
                 RETURNING message_id, destination, command_id, topic, payload, created_ms, deliveries"
                );
                let mut payloads: std::collections::HashMap<String, String> = Default::default();
                let mut answers = Vec::with_capacity(pickups.len());
                for (destination, invisible_until) in pickups {
                    let rows = sql::query(take.as_str())
                        .bind(*invisible_until)
                        .bind(destination)
                        .bind(now_ms)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let command_id: String = r.get("command_id")?;
                        let payload = match r.get::<Option<String>>("payload")? {
                            Some(p) => p,
                            None => {
                                if r.get::<i64>("deliveries")? > 1 {
                                    sql::query(
                                        "UPDATE command_invocations SET status = 'Delayed', status_details = 'Delayed' \
                                     WHERE command_id = $1 AND instance_id = $2 AND status = 'Pending'",
                                    )
                                    .bind(&command_id)
                                    .bind(destination)
                                    .execute(&mut *tx)
                                    .await?;
                                }
                                match payloads.get(&command_id) {
                                    Some(p) => p.clone(),
                                    None => {
                                        let p = sql::query("SELECT payload FROM commands WHERE id = $1")
                                            .bind(&command_id)
                                            .scalar::<String>(&mut *tx)
                                            .await?;
                                        payloads.insert(command_id.clone(), p.clone());
                                        p
                                    }
                                }
                            }
                        };
                        out.push(MessageRow {
                            message_id: r.get("message_id")?,
                            destination: r.get("destination")?,
                            command_id,
                            topic: r.get("topic")?,
                            payload,
                            created_ms: r.get("created_ms")?,
                        });
                    }
                    out.sort_by(|a, b| (a.created_ms, &a.message_id).cmp(&(b.created_ms, &b.message_id)));
                    answers.push(out);
                }
                Ok(answers)
            })
        })
        .await
    }

    /// A message of `destination` by id: (command id, topic, acked), if it is still queued.
    pub async fn message(&self, destination: &str, message_id: &str) -> Result<Option<(String, String, bool)>> {
        let row =
            sql::query("SELECT command_id, topic, acked FROM node_messages WHERE message_id = $1 AND destination = $2")
                .bind(message_id)
                .bind(destination)
                .fetch_optional(&self.db)
                .await?;
        row.map(|r| Ok((r.get("command_id")?, r.get("topic")?, r.get::<i64>("acked")? != 0))).transpose()
    }

    /// Acknowledges a message of `destination`: a command message is not handed out again, any
    /// other message is done with. False if there is no such message.
    pub async fn ack_message(&self, destination: &str, message_id: &str) -> Result<bool> {
        let kind = sql::query(
            "SELECT CASE WHEN payload IS NULL THEN acked + 1 ELSE 0 END AS command, acked FROM node_messages WHERE message_id = $1 AND destination = $2",
        )
        .bind(message_id)
        .bind(destination)
        .fetch_optional(&self.db)
        .await?;
        let Some(kind) = kind else { return Ok(false) };
        // (`acked + 1` keeps the column BIGINT on PostgreSQL, where a literal would be INT4.)
        let (command, acked) = (kind.get::<i64>("command")? != 0, kind.get::<i64>("acked")? != 0);
        if !command {
            return self.delete_message(destination, message_id).await;
        }
        if !acked {
            // The AWS agent's InProgress reply usually acknowledged it already: no write then.
            sql::query("UPDATE node_messages SET acked = 1 WHERE message_id = $1 AND destination = $2")
                .bind(message_id)
                .bind(destination)
                .execute(&self.db)
                .await?;
        }
        Ok(true)
    }

    /// Deletes a message of `destination`; false if there is no such message.
    pub async fn delete_message(&self, destination: &str, message_id: &str) -> Result<bool> {
        let n = sql::query("DELETE FROM node_messages WHERE message_id = $1 AND destination = $2")
            .bind(message_id)
            .bind(destination)
            .execute(&self.db)
            .await?;
        Ok(n > 0)
    }

    /// Links job `(owner_kind, owner_key)` to command `command_id`'s end: returns the command's
    /// status if it has ended already (no link then), else links and returns `None` — and the
    /// job becomes due when the command ends. The command row is locked while this looks, so a
    /// command ending at the same moment can't slip between the look and the link. The outer
    /// `None`: there is no such command.
    pub async fn await_command(
        &self,
        command_id: &str,
        owner_kind: &str,
        owner_key: &str,
    ) -> Result<Option<Option<String>>> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        transaction!(self.db, |tx| {
            let status: Option<String> = sql::query(format!("SELECT status FROM commands WHERE id = $1{lock}"))
                .bind(command_id)
                .scalar_opt(&mut *tx)
                .await?;
            let Some(status) = status else { return Ok(None) };
            if is_final_command(&status) {
                return Ok(Some(Some(status)));
            }
            Self::await_completion(tx, &format!("command:{command_id}"), owner_kind, owner_key).await?;
            Ok(Some(None))
        })
    }

    /// When the next hidden message of `destination` becomes visible again (after its
    /// visibility timeout), if any: a held long poll wakes then.
    pub async fn next_visible(&self, destination: &str, now_ms: i64) -> Result<Option<i64>> {
        sql::query("SELECT MIN(visible_ms) FROM node_messages WHERE destination = $1 AND acked = 0 AND visible_ms > $2")
            .bind(destination)
            .bind(now_ms)
            .scalar::<Option<i64>>(&self.db)
            .await
    }

    /// Forgets reply ids received before `before_ms` (the AWS agent re-sends a reply for at most
    /// two hours); returns how many.
    pub async fn purge_replies(&self, before_ms: i64) -> Result<u64> {
        sql::query("DELETE FROM command_replies WHERE received_ms < $1").bind(before_ms).execute(&self.db).await
    }

    /// Commands of the account and region, newest first (ties by id), after `after` =
    /// (requested time, id).
    pub async fn commands_page(
        &self,
        account: &str,
        region: &str,
        f: &CommandFilter,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<CommandRow>> {
        timed("commands_page", async {
            let mut w = sql::Where::new();
            w.and("c.account = ?1 AND c.region = ?2", [account.into(), region.into()]);
            if let Some(id) = &f.command_id {
                w.and("c.id = ?1", [id.into()]);
            }
            if let Some(node) = &f.instance_id {
                w.and(
                    "EXISTS (SELECT 1 FROM command_invocations i WHERE i.command_id = c.id AND i.instance_id = ?1)",
                    [node.into()],
                );
            }
            if let Some(d) = &f.document_name {
                w.and("c.document_name = ?1", [d.into()]);
            }
            if let Some(t) = f.invoked_after_ms {
                w.and("c.requested_ms >= ?1", [t.into()]);
            }
            if let Some(t) = f.invoked_before_ms {
                w.and("c.requested_ms <= ?1", [t.into()]);
            }
            w.any_of("c.status", &f.statuses);
            if let Some((t, id)) = after {
                w.and("c.requested_ms <= ?1 AND (c.requested_ms < ?1 OR c.id > ?2)", [t.into(), id.into()]);
            }
            let cols: Vec<String> = COMMAND_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
            let q = w.query(
                &format!("SELECT {} FROM commands c", cols.join(", ")),
                "ORDER BY c.requested_ms DESC, c.id",
                limit,
            );
            q.fetch_all(&self.db).await?.iter().map(command_row).collect()
        })
        .await
    }

    /// Invocations of the account and region, newest command first, then in target order, after
    /// `after` = (requested time, command id, seq).
    pub async fn invocations_page(
        &self,
        account: &str,
        region: &str,
        f: &CommandFilter,
        after: Option<(i64, &str, i64)>,
        limit: i64,
    ) -> Result<Vec<InvocationRow>> {
        timed("invocations_page", async {
            let mut w = sql::Where::new();
            w.and("i.account = ?1 AND i.region = ?2", [account.into(), region.into()]);
            if let Some(id) = &f.command_id {
                w.and("i.command_id = ?1", [id.into()]);
            }
            if let Some(node) = &f.instance_id {
                w.and("i.instance_id = ?1", [node.into()]);
            }
            if let Some(d) = &f.document_name {
                w.and("EXISTS (SELECT 1 FROM commands c WHERE c.id = i.command_id AND c.document_name = ?1)", [d.into()]);
            }
            if let Some(t) = f.invoked_after_ms {
                w.and("i.requested_ms >= ?1", [t.into()]);
            }
            if let Some(t) = f.invoked_before_ms {
                w.and("i.requested_ms <= ?1", [t.into()]);
            }
            w.any_of("i.status", &f.statuses);
            match f.complete {
                Some(true) => w.and(&format!("i.status IN ({})", final_list()), []),
                Some(false) => w.and(&format!("i.status NOT IN ({})", final_list()), []),
                None => &mut w,
            };
            if let Some((t, id, seq)) = after {
                w.and(
                    "i.requested_ms <= ?1 AND (i.requested_ms < ?1 OR i.command_id > ?2 OR (i.command_id = ?2 AND i.seq > ?3))",
                    [t.into(), id.into(), seq.into()],
                );
            }
            let cols: Vec<String> = INVOCATION_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect();
            let q = w.query(
                &format!("SELECT {} FROM command_invocations i", cols.join(", ")),
                "ORDER BY i.requested_ms DESC, i.command_id, i.seq",
                limit,
            );
            q.fetch_all(&self.db).await?.iter().map(invocation_row).collect()
        })
        .await
    }
}
