//! The store's activations, on SQLite and on PostgreSQL: creation with tags, account scoping,
//! keyset pages, deletion, and `consume_activation` — each refusal, and two consumers racing for
//! the last registration (exactly one wins, on one store or on two stores over one database).

use ssmd_store::on_both;

use ssmd_store::{ACTIVATION_TAGS, ActivationFilter, ActivationUse, NewActivation, Store, Tag};

const A: &str = "111111111111";
const B: &str = "222222222222";
const R: &str = "us-east-1";
const NOW: i64 = 1_700_000_000_000;

fn activation(id: &str, account: &str, created_ms: i64) -> NewActivation {
    NewActivation {
        id: id.into(),
        account: account.into(),
        region: R.into(),
        code_sha256: format!("hash-of-{id}"),
        description: Some(format!("activation {id}")),
        default_instance_name: Some("web".into()),
        iam_role: "SSMServiceRole".into(),
        registration_limit: 1,
        expires_ms: NOW + 86_400_000,
        created_ms,
        registration_metadata: r#"[{"Key":"k","Value":"v"}]"#.into(),
        tags: vec![],
    }
}

on_both!(create_list_delete, |s: Store, _url: String| async move {
    let tag = Tag { key: "team".into(), value: "blue".into() };
    let mut first = activation("a1", A, NOW);
    first.tags = vec![tag.clone()];
    first.default_instance_name = None;
    first.description = None;
    s.create_activation(&first).await.unwrap();
    // A duplicate id is a conflict and writes nothing (its tags included).
    let mut dup = activation("a1", A, NOW);
    dup.tags = vec![Tag { key: "other".into(), value: "x".into() }];
    assert!(matches!(s.create_activation(&dup).await, Err(ssmd_store::StoreError::Conflict)));
    assert_eq!(s.tags(A, R, ACTIVATION_TAGS, "a1").await.unwrap(), [tag]);

    let got = s.activation(A, R, "a1").await.unwrap().unwrap();
    assert_eq!((got.registrations_count, got.registration_limit), (0, 1));
    assert_eq!((got.description, got.default_instance_name), (None, None));
    assert_eq!(got.registration_metadata, r#"[{"Key":"k","Value":"v"}]"#);
    // Another account or region sees nothing.
    assert!(s.activation(B, R, "a1").await.unwrap().is_none());
    assert!(s.activation(A, "eu-west-1", "a1").await.unwrap().is_none());

    // Pages in creation order, ties by id, resuming after (created, id).
    s.create_activation(&activation("a3", A, NOW + 1)).await.unwrap();
    s.create_activation(&activation("a2", A, NOW + 1)).await.unwrap();
    s.create_activation(&activation("b1", B, NOW)).await.unwrap();
    let all = ActivationFilter::default();
    let ids = |rows: Vec<ssmd_store::ActivationRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.activations_page(A, R, &all, None, 10).await.unwrap()), ["a1", "a2", "a3"]);
    assert_eq!(ids(s.activations_page(A, R, &all, None, 2).await.unwrap()), ["a1", "a2"]);
    assert_eq!(ids(s.activations_page(A, R, &all, Some((NOW + 1, "a2")), 2).await.unwrap()), ["a3"]);
    assert_eq!(ids(s.activations_page(B, R, &all, None, 10).await.unwrap()), ["b1"]);
    // Filters: values of one key are alternatives, keys combine.
    let f = ActivationFilter { ids: vec!["a1".into(), "a3".into(), "b1".into()], ..Default::default() };
    assert_eq!(ids(s.activations_page(A, R, &f, None, 10).await.unwrap()), ["a1", "a3"]);
    let f = ActivationFilter { default_instance_names: vec!["web".into()], ..Default::default() };
    assert_eq!(ids(s.activations_page(A, R, &f, None, 10).await.unwrap()), ["a2", "a3"]);
    let f = ActivationFilter {
        ids: vec!["a1".into(), "a2".into()],
        iam_roles: vec!["SSMServiceRole".into()],
        default_instance_names: vec!["web".into()],
    };
    assert_eq!(ids(s.activations_page(A, R, &f, None, 10).await.unwrap()), ["a2"]);

    // Deleting is scoped to the account and takes the tags with it.
    assert!(!s.delete_activation(B, R, "a1").await.unwrap());
    assert!(s.delete_activation(A, R, "a1").await.unwrap());
    assert!(!s.delete_activation(A, R, "a1").await.unwrap());
    assert!(s.activation(A, R, "a1").await.unwrap().is_none());
    assert!(s.tags(A, R, ACTIVATION_TAGS, "a1").await.unwrap().is_empty());
    assert_eq!(s.consume_activation("a1", "hash-of-a1", NOW).await.unwrap(), ActivationUse::Unknown);
});

on_both!(consume_refusals, |s: Store, _url: String| async move {
    let mut a = activation("c1", A, NOW);
    a.registration_limit = 2;
    s.create_activation(&a).await.unwrap();
    assert_eq!(s.consume_activation("nope", "hash-of-c1", NOW).await.unwrap(), ActivationUse::Unknown);
    assert_eq!(s.consume_activation("c1", "hash-of-c2", NOW).await.unwrap(), ActivationUse::WrongCode);
    // The code is checked before the expiry is disclosed.
    assert_eq!(s.consume_activation("c1", "wrong", a.expires_ms).await.unwrap(), ActivationUse::WrongCode);
    assert_eq!(s.consume_activation("c1", "hash-of-c1", a.expires_ms).await.unwrap(), ActivationUse::Expired);
    assert_eq!(s.consume_activation("c1", "hash-of-c1", a.expires_ms + 1).await.unwrap(), ActivationUse::Expired);
    // Refusals counted nothing.
    assert_eq!(s.activation(A, R, "c1").await.unwrap().unwrap().registrations_count, 0);

    let ActivationUse::Registered(row) = s.consume_activation("c1", "hash-of-c1", NOW).await.unwrap() else {
        panic!("the first registration is allowed")
    };
    assert_eq!((row.account.as_str(), row.region.as_str(), row.registrations_count), (A, R, 1));
    assert_eq!(row.iam_role, "SSMServiceRole");
    let ActivationUse::Registered(row) = s.consume_activation("c1", "hash-of-c1", a.expires_ms - 1).await.unwrap()
    else {
        panic!("the second registration is allowed")
    };
    assert_eq!(row.registrations_count, 2);
    assert_eq!(s.consume_activation("c1", "hash-of-c1", NOW).await.unwrap(), ActivationUse::Exhausted);
    // Once expired, an exhausted activation reports the expiry.
    assert_eq!(s.consume_activation("c1", "hash-of-c1", a.expires_ms).await.unwrap(), ActivationUse::Expired);
    assert_eq!(s.activation(A, R, "c1").await.unwrap().unwrap().registrations_count, 2);
});

/// `racers` consumers register with activation `id` at once, spread over `stores` (separate
/// handles on one database: on PostgreSQL separate pools, like replicas); returns how many won.
/// Every loser must have been told the activation is exhausted.
async fn race(stores: &[Store], id: &str, racers: usize) -> i64 {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(racers));
    let mut tasks = Vec::new();
    for n in 0..racers {
        let s = stores[n % stores.len()].clone();
        let barrier = barrier.clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.consume_activation(&id, &format!("hash-of-{id}"), NOW).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            ActivationUse::Registered(_) => wins += 1,
            ActivationUse::Exhausted => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    wins
}

async fn count(s: &Store, id: &str) -> i64 {
    s.activation(A, R, id).await.unwrap().unwrap().registrations_count
}

on_both!(racing_for_the_last_registration, |s: Store, url: String| async move {
    // Two consumers, one registration left (the second of two).
    let mut a = activation("r1", A, NOW);
    a.registration_limit = 2;
    s.create_activation(&a).await.unwrap();
    assert!(matches!(s.consume_activation("r1", "hash-of-r1", NOW).await.unwrap(), ActivationUse::Registered(_)));
    let other = Store::open(&url).await.unwrap();
    let both = [s.clone(), other.clone()];
    assert_eq!(race(&both, "r1", 2).await, 1, "exactly one of two wins the last registration");
    assert_eq!(count(&s, "r1").await, 2);
    for round in 0..20 {
        let id = format!("race{round}");
        s.create_activation(&activation(&id, A, NOW)).await.unwrap();
        assert_eq!(race(&both, &id, 2).await, 1, "round {round}: exactly one of two wins");
        assert_eq!(count(&other, &id).await, 1);
    }
    // Many consumers, a few registrations.
    let mut b = activation("many", A, NOW);
    b.registration_limit = 3;
    s.create_activation(&b).await.unwrap();
    assert_eq!(race(&both, "many", 16).await, 3);
    assert_eq!(count(&s, "many").await, 3);
});
