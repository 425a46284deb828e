//! Two ssmd replicas on one PostgreSQL database serve one consistent service: what one writes the
//! other reads, pagination tokens and keys work across them, and concurrent updates of one
//! document never produce two versions with the same number.

use aws_sdk_ssm::types::DocumentKeyValuesFilter;
use ssmd_e2e::*;

fn doc(n: usize) -> String {
    format!(
        r#"{{"schemaVersion":"2.2","mainSteps":[{{"action":"aws:runShellScript","name":"s","inputs":{{"runCommand":["echo {n}"]}}}}]}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_state_tokens_and_keys() {
    let a = Server::start(Backend::Postgres);
    let b = a.replica();
    let (ca, cb) = (a.client(), b.client());
    for i in 0..5 {
        ca.create_document().name(format!("Rep{i}")).content(doc(i)).send().await.unwrap();
    }
    assert_eq!(cb.get_document().name("Rep3").send().await.unwrap().content(), Some(doc(3).as_str()));

    // A token issued by one replica is accepted by the other.
    let own = DocumentKeyValuesFilter::builder().key("Owner").values("Self").build();
    let page = ca.list_documents().filters(own.clone()).max_results(2).send().await.unwrap();
    let rest =
        cb.list_documents().filters(own).max_results(10).next_token(page.next_token().unwrap()).send().await.unwrap();
    assert_eq!(page.document_identifiers().len() + rest.document_identifiers().len(), 5);

    // A key made for the database works on both.
    let (k, s, _) = a.new_account();
    b.client_with(&k, &s, "us-east-1").list_documents().send().await.unwrap();

    // Concurrent updates through both replicas: each accepted update has its own version.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move { c.update_document().name("Rep0").content(doc(100 + i)).send().await }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => versions.push(r.document_description.unwrap().document_version().unwrap().to_string()),
            Err(e) => assert_eq!(code(&e), "TooManyUpdates", "{}", message(&e)),
        }
    }
    let mut unique = versions.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), versions.len(), "{versions:?}");
    let listed = ca.list_document_versions().name("Rep0").send().await.unwrap();
    assert_eq!(listed.document_versions().len(), versions.len() + 1);
}
