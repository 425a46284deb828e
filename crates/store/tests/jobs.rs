//! The engine's job table on both databases: unique keys, claims that never hand one job to two
//! holders (two stores on one database race for them, as two replicas or processes would),
//! leases that run out and fence their old holder, pokes that are never lost, and completion
//! links.

use ssmd_store::Store;
use ssmd_store::StoreError;
use ssmd_store::jobs::Next;
use ssmd_store::on_both;
use std::collections::HashSet;

const T0: i64 = 1_800_000_000_000;

on_both!(a_unique_key_is_one_job_due_at_its_earliest, |s: Store, _url: String| async move {
    s.add_job("k", "w@1", T0 + 5_000, Some("p1"), T0).await.unwrap();
    s.add_job("k", "w@1", T0 + 9_000, None, T0).await.unwrap();
    assert_eq!(s.count_jobs("k").await.unwrap(), 1);
    let j = s.job("k", "w@1").await.unwrap().unwrap();
    assert_eq!((j.due_ms, j.payload.as_deref(), j.pokes), (T0 + 5_000, Some("p1"), 1));
    // Earlier wins; a payload given replaces the old one.
    s.add_job("k", "w@1", T0 + 1_000, Some("p2"), T0).await.unwrap();
    let j = s.job("k", "w@1").await.unwrap().unwrap();
    assert_eq!((j.due_ms, j.run_at_ms, j.payload.as_deref()), (T0 + 1_000, T0 + 1_000, Some("p2")));
    // Not due yet: nothing to claim; due: claimed once.
    assert!(s.claim_jobs("k", "a", T0, T0 + 30_000, 10).await.unwrap().is_empty());
    let c = s.claim_jobs("k", "a", T0 + 1_000, T0 + 31_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].key.as_str(), c[0].attempts, c[0].run_at_ms), ("w@1", 1, T0 + 1_000));
    assert!(s.claim_jobs("k", "b", T0 + 2_000, T0 + 32_000, 10).await.unwrap().is_empty());
    assert_eq!(s.next_job_due("k").await.unwrap(), Some(T0 + 31_000), "a held job is due when its lease ends");
    s.finish(&c[0], Next::Done, T0 + 2_000).await.unwrap();
    assert_eq!(s.count_jobs("k").await.unwrap(), 0);
    assert_eq!(s.next_job_due("k").await.unwrap(), None);
});

on_both!(a_lapsed_lease_is_taken_over_and_fences_its_old_holder, |s: Store, _url: String| async move {
    s.add_job("k", "x", T0, None, T0).await.unwrap();
    let old = s.claim_jobs("k", "a", T0, T0 + 1_000, 1).await.unwrap().remove(0);
    assert!(s.renew_job(&old, T0 + 2_000).await.unwrap());
    assert!(s.claim_jobs("k", "b", T0 + 1_500, T0 + 3_000, 1).await.unwrap().is_empty(), "renewed");
    let new = s.claim_jobs("k", "b", T0 + 2_000, T0 + 5_000, 1).await.unwrap().remove(0);
    assert_eq!((new.token, new.attempts), (old.token + 1, 2));
    // The old holder can neither renew, nor fence a write, nor finish.
    assert!(!s.renew_job(&old, T0 + 9_000).await.unwrap());
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(Store::fence(&mut tx, &old).await, Err(StoreError::Conflict)));
    Store::fence(&mut tx, &new).await.unwrap();
    drop(tx);
    assert!(matches!(s.finish(&old, Next::Done, T0 + 2_500).await, Err(StoreError::Conflict)));
    assert_eq!(s.count_jobs("k").await.unwrap(), 1);
    // The new holder reschedules it; attempts start over.
    s.finish(&new, Next::At(T0 + 60_000), T0 + 2_500).await.unwrap();
    let j = s.job("k", "x").await.unwrap().unwrap();
    assert_eq!((j.due_ms, j.run_at_ms, j.leased, j.attempts), (T0 + 60_000, T0 + 60_000, false, 0));
});

on_both!(a_poke_during_a_run_is_never_lost, |s: Store, _url: String| async move {
    s.add_job("k", "x", T0, None, T0).await.unwrap();
    let c = s.claim_jobs("k", "a", T0, T0 + 30_000, 1).await.unwrap().remove(0);
    // Someone wakes the job while it runs: it does not become claimable twice …
    s.add_job("k", "x", T0 + 10, None, T0 + 10).await.unwrap();
    assert!(s.claim_jobs("k", "b", T0 + 20, T0 + 30_000, 1).await.unwrap().is_empty());
    // … and the holder's "done" leaves it due now instead of deleting it.
    s.finish(&c, Next::Done, T0 + 50).await.unwrap();
    let j = s.job("k", "x").await.unwrap().unwrap();
    assert_eq!((j.due_ms, j.leased), (T0 + 50, false));
    // Same for "again later".
    let c = s.claim_jobs("k", "a", T0 + 60, T0 + 30_000, 1).await.unwrap().remove(0);
    s.add_job("k", "x", T0 + 70, None, T0 + 70).await.unwrap();
    s.finish(&c, Next::At(T0 + 3_600_000), T0 + 80).await.unwrap();
    assert_eq!(s.job("k", "x").await.unwrap().unwrap().due_ms, T0 + 80);
    // A failed run is retried later, counting its attempts.
    let c = s.claim_jobs("k", "a", T0 + 80, T0 + 30_000, 1).await.unwrap().remove(0);
    s.finish(&c, Next::Retry(T0 + 1_080), T0 + 80).await.unwrap();
    let j = s.job("k", "x").await.unwrap().unwrap();
    assert_eq!((j.due_ms, j.attempts), (T0 + 1_080, 1));
});

on_both!(completion_links_wake_their_owners_once, |s: Store, _url: String| async move {
    let mut tx = s.begin().await.unwrap();
    Store::await_completion(&mut tx, "command:c1", "automation", "e1").await.unwrap();
    Store::await_completion(&mut tx, "command:c1", "automation", "e1").await.unwrap();
    Store::await_completion(&mut tx, "command:c1", "automation", "e2").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.count_jobs("automation").await.unwrap(), 0, "waiting holds nothing");
    let mut tx = s.begin().await.unwrap();
    assert_eq!(Store::complete_awaited(&mut tx, "command:c1", T0).await.unwrap(), 2);
    tx.commit().await.unwrap();
    let c = s.claim_jobs("automation", "a", T0, T0 + 1_000, 10).await.unwrap();
    assert_eq!(c.iter().map(|c| c.key.as_str()).collect::<HashSet<_>>(), HashSet::from(["e1", "e2"]));
    let mut tx = s.begin().await.unwrap();
    assert_eq!(Store::complete_awaited(&mut tx, "command:c1", T0).await.unwrap(), 0, "links fire once");
    tx.commit().await.unwrap();
});

on_both!(cancelled_timers_go_but_held_jobs_stay, |s: Store, _url: String| async move {
    s.add_job("k", "idle", T0 + 5_000, None, T0).await.unwrap();
    s.add_job("k", "held", T0, None, T0).await.unwrap();
    let c = s.claim_jobs("k", "a", T0, T0 + 30_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    let mut tx = s.begin().await.unwrap();
    assert!(Store::cancel_job(&mut tx, "k", "idle").await.unwrap());
    assert!(!Store::cancel_job(&mut tx, "k", "held").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(s.count_jobs("k").await.unwrap(), 1);
});

on_both!(two_stores_racing_never_claim_one_job_twice, |s: Store, url: String| async move {
    // Two stores on one database are two replicas (or two processes) as far as it can tell.
    let other = Store::open(&url).await.unwrap();
    let n = 400;
    for i in 0..n {
        s.add_job("race", &format!("j{i:04}"), T0, None, T0).await.unwrap();
    }
    let claim = |st: Store, owner: &'static str| async move {
        let mut got = Vec::new();
        loop {
            let c = st.claim_jobs("race", owner, T0, T0 + 60_000, 7).await.unwrap();
            if c.is_empty() {
                break;
            }
            for c in c {
                st.finish(&c, Next::Done, T0).await.unwrap();
                got.push(c.key);
            }
        }
        got
    };
    let (a, b) = tokio::join!(tokio::spawn(claim(s.clone(), "a")), tokio::spawn(claim(other.clone(), "b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<String> = a.iter().chain(&b).cloned().collect();
    assert_eq!(a.len() + b.len(), n, "no job ran twice");
    assert_eq!(all.len(), n, "every job ran");
    assert_eq!(s.count_jobs("race").await.unwrap(), 0);
});
