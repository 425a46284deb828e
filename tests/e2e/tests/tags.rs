//! Tags through aws-sdk-ssm, on both backends.

use aws_sdk_ssm::types::{DocumentType, ResourceTypeForTagging, Tag};
use ssmd_e2e::*;

const CMD: &str = r#"{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript","name":"a","inputs":{"runCommand":["true"]}}]}"#;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

both_backends!(add_list_remove, |server: Server| async move {
    let c = server.client();
    c.create_document().name("Tagged").content(CMD).document_type(DocumentType::Command).send().await.unwrap();
    let rt = ResourceTypeForTagging::Document;
    c.add_tags_to_resource()
        .resource_type(rt.clone())
        .resource_id("Tagged")
        .tags(tag("b", "2"))
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap();
    c.add_tags_to_resource()
        .resource_type(rt.clone())
        .resource_id("Tagged")
        .tags(tag("a", "one"))
        .send()
        .await
        .unwrap();
    let list = c.list_tags_for_resource().resource_type(rt.clone()).resource_id("Tagged").send().await.unwrap();
    let pairs: Vec<(String, String)> =
        list.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    assert_eq!(pairs, vec![("a".into(), "one".into()), ("b".into(), "2".into())]);
    c.remove_tags_from_resource().resource_type(rt.clone()).resource_id("Tagged").tag_keys("a").send().await.unwrap();
    let list = c.list_tags_for_resource().resource_type(rt.clone()).resource_id("Tagged").send().await.unwrap();
    assert_eq!(list.tag_list().len(), 1);

    // 50 tags at most: the 51st is refused and nothing is written.
    let mut req = c.add_tags_to_resource().resource_type(rt.clone()).resource_id("Tagged");
    for i in 0..50 {
        req = req.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(&req.send().await.unwrap_err()), "TooManyTagsError");
    let list = c.list_tags_for_resource().resource_type(rt.clone()).resource_id("Tagged").send().await.unwrap();
    assert_eq!(list.tag_list().len(), 1);

    let e = c
        .add_tags_to_resource()
        .resource_type(rt.clone())
        .resource_id("Missing")
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidResourceId");
    let e = c
        .list_tags_for_resource()
        .resource_type(rt.clone())
        .resource_id("AWS-RunShellScript")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidResourceId");
    let e = c
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::PatchBaseline)
        .resource_id("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidResourceType");
    let e = c
        .add_tags_to_resource()
        .resource_type(rt.clone())
        .resource_id("Tagged")
        .tags(tag("aws:x", "1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = c
        .add_tags_to_resource()
        .resource_type(rt.clone())
        .resource_id("Tagged")
        .tags(tag(&"k".repeat(129), "1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");

    // Another account cannot see or change them.
    let (k, s, _) = server.new_account();
    let other = server.client_with(&k, &s, "us-east-1");
    let e = other.list_tags_for_resource().resource_type(rt.clone()).resource_id("Tagged").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidResourceId");

    // Deleting the document deletes its tags.
    c.delete_document().name("Tagged").send().await.unwrap();
    c.create_document().name("Tagged").content(CMD).send().await.unwrap();
    let list = c.list_tags_for_resource().resource_type(rt).resource_id("Tagged").send().await.unwrap();
    assert!(list.tag_list().is_empty());
});
