//! Durable jobs: the one table of work that must happen at a time, claimed by one replica at a
//! time under a lease, and the links that wake a job when something it waits for finishes.
//!
//! A job is `(kind, key)` — unique, so "fire window W at T" or "drive execution X" inserted
//! twice is one job — with a due time, an optional small payload, and lease fields.
//!
//! * **Due**: a job can be claimed once `due_ms <= now`. Claiming sets `due_ms` to the lease's
//!   end, so a job whose holder dies is due again when its lease runs out (and the claim query
//!   needs nothing but the `(kind, due_ms)` index). `run_at_ms` keeps the time it was meant to
//!   run (a schedule's occurrence, for fire jitter).
//! * **Claims** take the earliest due jobs of a kind (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//!   replicas never claim the same row; SQLite's single writer serialises), bump the job's
//!   fencing `token`, and count `attempts`.
//! * **Fencing**: every write a holder makes about its job names the token it claimed with;
//!   a holder whose lease ran out and whose job was claimed again finds the token moved and
//!   its write refused ([`StoreError::Conflict`]). [`Store::fence`] checks (and on PostgreSQL
//!   row-locks) the token inside any other transaction, so domain writes and the job move
//!   together.
//! * **Pokes**: [`Store::schedule_job`] on a job that is being run does not make it claimable
//!   twice; it bumps `pokes`, and the holder's [`Store::finish_job`] sees the change and leaves
//!   the job due at once instead of deleting or postponing it — a wake-up during a run is never
//!   lost.
//! * **Links** ([`Store::await_completion`], [`Store::complete_awaited`]): "when X finishes,
//!   make job J due", written by the waiter and fired in the transaction that finishes X, so a
//!   waiter holds no slot and polls nothing.
//!
//! Every change that makes a job due names the topic `job:<kind>:<key>` (a finish, which may
//! move the earliest due time, `job:<kind>`), which wakes the kind's workers — and the holder
//! of a poked job — in every replica once it commits.

use crate::sql::{self, Tx, transaction};
use crate::{Backend, Result, Store, StoreError, timed};

/// A claimed job, as its holder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub kind: String,
    pub key: String,
    /// The fencing token of this claim.
    pub token: i64,
    /// The job's wake-up count when it was claimed.
    pub pokes: i64,
    /// Claims since the job last finished well (1 on a first run).
    pub attempts: i64,
    /// When it was meant to run.
    pub run_at_ms: i64,
    pub payload: Option<String>,
}

/// What a holder does with its job when it is done with this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing more to do: the job goes (unless it was poked meanwhile: then it runs again).
    Done,
    /// Run again at this time (or now, if poked meanwhile); attempts start over.
    At(i64),
    /// The run failed: try again at this time, counting the attempt.
    Retry(i64),
}

/// A pending job, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub kind: String,
    pub key: String,
    pub due_ms: i64,
    pub run_at_ms: i64,
    pub leased: bool,
    pub token: i64,
    pub pokes: i64,
    pub attempts: i64,
    pub payload: Option<String>,
}

/// The earlier of two SQL expressions, on both databases.
fn earlier(a: &str, b: &str) -> String {
    format!("CASE WHEN {a} < {b} THEN {a} ELSE {b} END")
}

impl Store {
    /// Makes job `(kind, key)` due at `at_ms` at the latest: inserts it, or moves an existing one
    /// earlier (never later), and pokes it (a holder running it now runs it again). `payload`,
    /// if given, replaces the stored one.
    pub async fn schedule_job(
        tx: &mut Tx<'_>,
        kind: &str,
        key: &str,
        at_ms: i64,
        payload: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        sql::query(format!(
            "INSERT INTO jobs (kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, payload, created_ms) \
             VALUES ($1, $2, $3, $3, NULL, 0, 0, 0, $4, $5) \
             ON CONFLICT (kind, job_key) DO UPDATE SET pokes = jobs.pokes + 1, \
             payload = COALESCE(excluded.payload, jobs.payload), \
             run_at_ms = {}, \
             due_ms = CASE WHEN jobs.lease_owner IS NOT NULL THEN jobs.due_ms ELSE {} END",
            earlier("excluded.run_at_ms", "jobs.run_at_ms"),
            earlier("excluded.due_ms", "jobs.due_ms"),
        ))
        .bind(kind)
        .bind(key)
        .bind(at_ms)
        .bind(payload)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // The key too: a holder running this job now learns it was poked.
        tx.notify(format!("job:{kind}:{key}"));
        Ok(())
    }

    /// Removes job `(kind, key)` if no one holds it (a timer no longer needed); true if it was
    /// removed. A held job is left to its holder.
    pub async fn cancel_job(tx: &mut Tx<'_>, kind: &str, key: &str) -> Result<bool> {
        let n = sql::query("DELETE FROM jobs WHERE kind = $1 AND job_key = $2 AND lease_owner IS NULL")
            .bind(kind)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(n > 0)
    }

    /// [`Store::schedule_job`] in a transaction of its own.
    pub async fn add_job(&self, kind: &str, key: &str, at_ms: i64, payload: Option<&str>, now_ms: i64) -> Result<()> {
        timed("add_job", async {
            transaction!(self.db, |tx| { Self::schedule_job(tx, kind, key, at_ms, payload, now_ms).await })
        })
        .await
    }

    /// Claims up to `limit` due jobs of `kind` for `owner` until `lease_until`, earliest first.
    pub async fn claim_jobs(
        &self,
        kind: &str,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Claim>> {
        timed("claim_jobs", async {
            let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
            let mut claims: Vec<Claim> = sql::query(format!(
                "UPDATE jobs SET lease_owner = $1, due_ms = $2, token = token + 1, attempts = attempts + 1 \
                 WHERE kind = $3 AND job_key IN (SELECT job_key FROM jobs WHERE kind = $3 AND due_ms <= $4 \
                 ORDER BY due_ms LIMIT $5{lock}) \
                 RETURNING kind, job_key, token, pokes, attempts, run_at_ms, payload"
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(kind)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(claim_row)
            .collect::<Result<_>>()?;
            claims.sort_by_key(|c| c.run_at_ms);
            Ok(claims)
        })
        .await
    }

    /// Extends a claim's lease to `until`; false if the job is no longer this claim's (it was
    /// claimed again after the lease ran out, or finished).
    pub async fn renew_job(&self, claim: &Claim, until: i64) -> Result<bool> {
        let n = sql::query(
            "UPDATE jobs SET due_ms = $1 WHERE kind = $2 AND job_key = $3 AND token = $4 AND lease_owner IS NOT NULL",
        )
        .bind(until)
        .bind(&claim.kind)
        .bind(&claim.key)
        .bind(claim.token)
        .execute(&self.db)
        .await?;
        Ok(n > 0)
    }

    /// Whether `claim` still holds its job.
    pub async fn holds_job(&self, claim: &Claim) -> Result<bool> {
        let held = sql::query(
            "SELECT token FROM jobs WHERE kind = $1 AND job_key = $2 AND token = $3 AND lease_owner IS NOT NULL",
        )
        .bind(&claim.kind)
        .bind(&claim.key)
        .bind(claim.token)
        .fetch_optional(&self.db)
        .await?;
        Ok(held.is_some())
    }

    /// Checks inside `tx` that `claim` still holds its job (on PostgreSQL the job row stays
    /// locked until `tx` ends, so the claim can't move before it commits); `Conflict` if not.
    pub async fn fence(tx: &mut Tx<'_>, claim: &Claim) -> Result<()> {
        let lock = if tx.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
        let held = sql::query(format!(
            "SELECT token FROM jobs WHERE kind = $1 AND job_key = $2 AND token = $3 AND lease_owner IS NOT NULL{lock}"
        ))
        .bind(&claim.kind)
        .bind(&claim.key)
        .bind(claim.token)
        .fetch_optional(&mut *tx)
        .await?;
        held.map(|_| ()).ok_or(StoreError::Conflict)
    }

    /// Ends `claim`'s run inside `tx` (see [`Next`]); `Conflict` if the claim no longer holds
    /// the job (nothing is changed then).
    pub async fn finish_job(tx: &mut Tx<'_>, claim: &Claim, next: Next, now_ms: i64) -> Result<()> {
        let n = match next {
            Next::Done => {
                let gone =
                    sql::query("DELETE FROM jobs WHERE kind = $1 AND job_key = $2 AND token = $3 AND pokes = $4")
                        .bind(&claim.kind)
                        .bind(&claim.key)
                        .bind(claim.token)
                        .bind(claim.pokes)
                        .execute(&mut *tx)
                        .await?;
                if gone > 0 {
                    return Ok(());
                }
                // Poked while it ran (or no longer ours): due again now.
                Self::release(tx, claim, now_ms, now_ms, true).await?
            }
            Next::At(at) => Self::release(tx, claim, at, now_ms, true).await?,
            Next::Retry(at) => Self::release(tx, claim, at, now_ms, false).await?,
        };
        if n == 0 {
            return Err(StoreError::Conflict);
        }
        // Workers recompute when they next need to look.
        tx.notify(format!("job:{}", claim.kind));
        Ok(())
    }

    async fn release(tx: &mut Tx<'_>, claim: &Claim, at: i64, now_ms: i64, success: bool) -> Result<u64> {
        sql::query(
            "UPDATE jobs SET lease_owner = NULL, \
             due_ms = CASE WHEN pokes = $1 THEN $2 ELSE $3 END, \
             run_at_ms = CASE WHEN pokes = $1 THEN $2 ELSE $3 END, \
             attempts = CASE WHEN $4 = 1 THEN 0 ELSE attempts END \
             WHERE kind = $5 AND job_key = $6 AND token = $7",
        )
        .bind(claim.pokes)
        .bind(at)
        .bind(now_ms)
        .bind(i64::from(success))
        .bind(&claim.kind)
        .bind(&claim.key)
        .bind(claim.token)
        .execute(&mut *tx)
        .await
    }

    /// [`Store::finish_job`] in a transaction of its own.
    pub async fn finish(&self, claim: &Claim, next: Next, now_ms: i64) -> Result<()> {
        timed("finish_job", async {
            transaction!(self.db, |tx| { Self::finish_job(tx, claim, next.clone(), now_ms).await })
        })
        .await
    }

    /// The earliest due time of a job of `kind` (a held job counts at its lease's end).
    pub async fn next_job_due(&self, kind: &str) -> Result<Option<i64>> {
        sql::query("SELECT MIN(due_ms) FROM jobs WHERE kind = $1").bind(kind).scalar::<Option<i64>>(&self.db).await
    }

    /// Gives up every lease on every job (SQLite start-up: this process is the only one on the
    /// file, so leases left by a previous process are dead). The jobs are due at once.
    pub async fn release_all_jobs(&self, now_ms: i64) -> Result<u64> {
        sql::query("UPDATE jobs SET lease_owner = NULL, due_ms = $1 WHERE lease_owner IS NOT NULL")
            .bind(now_ms)
            .execute(&self.db)
            .await
    }

    /// One job, for tests and tools.
    pub async fn job(&self, kind: &str, key: &str) -> Result<Option<JobRow>> {
        sql::query(
            "SELECT kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, payload FROM jobs \
             WHERE kind = $1 AND job_key = $2",
        )
        .bind(kind)
        .bind(key)
        .fetch_optional(&self.db)
        .await?
        .map(|r| {
            Ok(JobRow {
                kind: r.get("kind")?,
                key: r.get("job_key")?,
                due_ms: r.get("due_ms")?,
                run_at_ms: r.get("run_at_ms")?,
                leased: r.get::<Option<String>>("lease_owner")?.is_some(),
                token: r.get("token")?,
                pokes: r.get("pokes")?,
                attempts: r.get("attempts")?,
                payload: r.get("payload")?,
            })
        })
        .transpose()
    }

    /// The number of jobs of `kind` (metrics, tests).
    pub async fn count_jobs(&self, kind: &str) -> Result<i64> {
        sql::query("SELECT COUNT(*) FROM jobs WHERE kind = $1").bind(kind).scalar(&self.db).await
    }

    /// Records, inside `tx`, that job `(owner_kind, owner_key)` waits for `awaited` (e.g.
    /// `command:<id>`): when `awaited` completes, the job becomes due.
    pub async fn await_completion(tx: &mut Tx<'_>, awaited: &str, owner_kind: &str, owner_key: &str) -> Result<()> {
        sql::query(
            "INSERT INTO job_links (awaited, owner_kind, owner_key) VALUES ($1, $2, $3) \
             ON CONFLICT (awaited, owner_kind, owner_key) DO NOTHING",
        )
        .bind(awaited)
        .bind(owner_kind)
        .bind(owner_key)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Inside the transaction that finishes `awaited`: makes every job waiting for it due now
    /// and forgets the links. Returns how many jobs were woken.
    pub async fn complete_awaited(tx: &mut Tx<'_>, awaited: &str, now_ms: i64) -> Result<usize> {
        let owners = sql::query("DELETE FROM job_links WHERE awaited = $1 RETURNING owner_kind, owner_key")
            .bind(awaited)
            .fetch_all(&mut *tx)
            .await?;
        for o in &owners {
            let (kind, key): (String, String) = (o.get("owner_kind")?, o.get("owner_key")?);
            Self::schedule_job(tx, &kind, &key, now_ms, None, now_ms).await?;
        }
        Ok(owners.len())
    }
}

fn claim_row(r: &sql::Row) -> Result<Claim> {
    Ok(Claim {
        kind: r.get("kind")?,
        key: r.get("job_key")?,
        token: r.get("token")?,
        pokes: r.get("pokes")?,
        attempts: r.get("attempts")?,
        run_at_ms: r.get("run_at_ms")?,
        payload: r.get("payload")?,
    })
}
