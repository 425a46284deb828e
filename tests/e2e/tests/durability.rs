//! Acknowledged writes survive `kill -9`; SIGTERM stops the server cleanly.

use aws_sdk_ssm::types::DocumentType;
use ssmd_e2e::*;

both_backends!(acknowledged_writes_survive_kill_9, |mut server: Server| async move {
    let c = server.client();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let content = format!(
                r#"{{"schemaVersion":"2.2","mainSteps":[{{"action":"aws:runShellScript","name":"s","inputs":{{"runCommand":["echo {i}"]}}}}]}}"#
            );
            c.create_document().name(format!("Durable{i}")).content(content).document_type(DocumentType::Command).send().await.map(|_| i)
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap().unwrap());
    }
    c.update_document().name("Durable0").content(r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["echo v2"]}}]}"#).send().await.unwrap();
    server.kill9();
    server.restart();
    let c = server.client();
    for i in acked {
        let d = c.describe_document().name(format!("Durable{i}")).send().await.unwrap().document.unwrap();
        assert_eq!(d.name(), Some(format!("Durable{i}").as_str()));
    }
    let latest = c.get_document().name("Durable0").document_version("$LATEST").send().await.unwrap();
    assert!(latest.content().unwrap().contains("v2"));
});

#[tokio::test]
async fn sigterm_stops_cleanly_and_data_stays() {
    let mut server = Server::start(Backend::Sqlite);
    server
        .client()
        .create_document()
        .name("Kept")
        .content(r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["true"]}}]}"#)
        .send()
        .await
        .unwrap();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    server.restart();
    server.client().describe_document().name("Kept").send().await.unwrap();
}
