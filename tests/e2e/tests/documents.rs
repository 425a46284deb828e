//! The Documents API through aws-sdk-ssm against the real binary, on both backends.

use aws_sdk_ssm::types::{
    DocumentFilter, DocumentFilterKey, DocumentFormat, DocumentKeyValuesFilter, DocumentReviewAction,
    DocumentReviewCommentSource, DocumentReviewCommentType, DocumentReviews, DocumentType, Tag,
};
use sha2::Digest;
use ssmd_e2e::*;

const CMD: &str = r#"{"schemaVersion":"2.2","description":"Say hello","parameters":{"who":{"type":"String","default":"world","description":"Whom to greet"}},"mainSteps":[{"action":"aws:runShellScript","name":"hello","inputs":{"runCommand":["echo hello {{who}}"]}}]}"#;

const RUNBOOK_YAML: &str = "schemaVersion: '0.3'\ndescription: Two steps\nparameters:\n  Wait:\n    type: String\n    default: PT1S\nmainSteps:\n  - name: first\n    action: aws:sleep\n    inputs:\n      Duration: '{{ Wait }}'\n    nextStep: second\n  - name: second\n    action: aws:sleep\n    inputs:\n      Duration: PT0S\n    isEnd: true\n";

both_backends!(create_get_describe_round_trip, |server: Server| async move {
    let c = server.client();
    let created = c
        .create_document()
        .name("Hello")
        .content(CMD)
        .document_type(DocumentType::Command)
        .tags(Tag::builder().key("team").value("ops").build().unwrap())
        .send()
        .await
        .unwrap();
    let d = created.document_description.unwrap();
    assert_eq!(d.name(), Some("Hello"));
    assert_eq!(d.owner(), Some(ACCOUNT));
    assert_eq!(d.document_version(), Some("1"));
    assert_eq!(d.latest_version(), Some("1"));
    assert_eq!(d.default_version(), Some("1"));
    assert_eq!(d.status().map(|s| s.as_str()), Some("Active"));
    assert_eq!(d.hash(), Some(hex::encode(sha2::Sha256::digest(CMD.as_bytes())).as_str()));
    assert_eq!(d.hash_type().map(|h| h.as_str()), Some("Sha256"));
    assert_eq!(d.schema_version(), Some("2.2"));
    assert_eq!(d.description(), Some("Say hello"));
    assert_eq!(d.document_format().map(|f| f.as_str()), Some("JSON"));
    let p = &d.parameters()[0];
    assert_eq!((p.name(), p.default_value(), p.description()), (Some("who"), Some("world"), Some("Whom to greet")));
    assert_eq!(d.platform_types().len(), 2);
    assert_eq!(d.tags().len(), 1);
    assert!(d.created_date().is_some());

    let got = c.get_document().name("Hello").send().await.unwrap();
    assert_eq!(got.content(), Some(CMD));
    assert_eq!(got.document_type().map(|t| t.as_str()), Some("Command"));
    let yaml = c.get_document().name("Hello").document_format(DocumentFormat::Yaml).send().await.unwrap();
    assert_eq!(yaml.document_format().map(|f| f.as_str()), Some("YAML"));
    assert!(yaml.content().unwrap().contains("schemaVersion: "), "{:?}", yaml.content());

    let desc = c.describe_document().name("Hello").send().await.unwrap().document.unwrap();
    assert_eq!(desc.tags()[0].key(), "team");

    // YAML in, JSON out.
    c.create_document()
        .name("Runbook")
        .content(RUNBOOK_YAML)
        .document_type(DocumentType::Automation)
        .document_format(DocumentFormat::Yaml)
        .send()
        .await
        .unwrap();
    let as_json = c.get_document().name("Runbook").document_format(DocumentFormat::Json).send().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(as_json.content().unwrap()).unwrap();
    assert_eq!(v["mainSteps"][0]["nextStep"], "second");
    assert_eq!(c.get_document().name("Runbook").send().await.unwrap().content(), Some(RUNBOOK_YAML));

    // By ARN, for the owner too.
    let arn = format!("arn:aws:ssm:us-east-1:{ACCOUNT}:document/Hello");
    assert_eq!(c.get_document().name(arn).send().await.unwrap().content(), Some(CMD));
});

both_backends!(versions_defaults_and_deletes, |server: Server| async move {
    let c = server.client();
    c.create_document().name("Ver").content(CMD).version_name("first").send().await.unwrap();
    let v2 = CMD.replace("hello", "hi");
    let up = c.update_document().name("Ver").content(&v2).document_version("$LATEST").send().await.unwrap();
    let d = up.document_description.unwrap();
    assert_eq!((d.document_version(), d.latest_version(), d.default_version()), (Some("2"), Some("2"), Some("1")));

    // The default is still 1; $LATEST is 2.
    assert_eq!(c.get_document().name("Ver").send().await.unwrap().content(), Some(CMD));
    assert_eq!(
        c.get_document().name("Ver").document_version("$LATEST").send().await.unwrap().content(),
        Some(v2.as_str())
    );
    assert_eq!(c.get_document().name("Ver").version_name("first").send().await.unwrap().document_version(), Some("1"));

    let e = c.update_document().name("Ver").content(&v2).send().await.unwrap_err();
    assert_eq!(code(&e), "DuplicateDocumentContent");
    let e = c
        .update_document()
        .name("Ver")
        .content(CMD.replace("hello", "hey"))
        .version_name("first")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "DuplicateDocumentVersionName");
    let e = c
        .update_document()
        .name("Ver")
        .content(CMD.replace("hello", "yo"))
        .document_version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentVersion");
    let e = c.get_document().name("Ver").document_version("9").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentVersion");

    let dv = c.update_document_default_version().name("Ver").document_version("2").send().await.unwrap();
    assert_eq!(dv.description.unwrap().default_version(), Some("2"));
    assert_eq!(c.get_document().name("Ver").send().await.unwrap().content(), Some(v2.as_str()));
    let e = c.update_document_default_version().name("Ver").document_version("7").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentVersion");

    c.update_document().name("Ver").content(CMD.replace("hello", "hola")).send().await.unwrap();
    let page1 = c.list_document_versions().name("Ver").max_results(2).send().await.unwrap();
    assert_eq!(page1.document_versions().len(), 2);
    assert!(page1.document_versions()[1].is_default_version());
    let page2 = c
        .list_document_versions()
        .name("Ver")
        .max_results(2)
        .next_token(page1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page2.document_versions().len(), 1);
    assert_eq!(page2.document_versions()[0].document_version(), Some("3"));
    assert!(page2.next_token().is_none());

    let e = c.delete_document().name("Ver").document_version("2").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentOperation");
    c.delete_document().name("Ver").document_version("1").send().await.unwrap();
    let e = c.get_document().name("Ver").document_version("1").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentVersion");
    c.delete_document().name("Ver").send().await.unwrap();
    let e = c.describe_document().name("Ver").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocument");
    // The name is free again.
    c.create_document().name("Ver").content(CMD).send().await.unwrap();
});

both_backends!(content_errors, |server: Server| async move {
    let c = server.client();
    let bad_next = RUNBOOK_YAML.replace("nextStep: second", "nextStep: nowhere");
    let e = c
        .create_document()
        .name("Bad")
        .content(bad_next)
        .document_type(DocumentType::Automation)
        .document_format(DocumentFormat::Yaml)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentContent");
    assert!(message(&e).contains("nowhere"), "{}", message(&e));
    let e = c.create_document().name("Bad").content("{not json").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentContent");
    let e = c
        .create_document()
        .name("Bad")
        .content(r#"{"schemaVersion":"9.9","mainSteps":[]}"#)
        .document_type(DocumentType::Automation)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentSchemaVersion");
    let huge = format!(r#"{{"schemaVersion":"2.2","description":"{}","mainSteps":[]}}"#, "x".repeat(70 * 1024));
    let e = c.create_document().name("Big").content(huge).send().await.unwrap_err();
    assert_eq!(code(&e), "MaxDocumentSizeExceeded");
    let e = c.create_document().name("AWS-Mine").content(CMD).send().await.unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = c.create_document().name("amazonish").content(CMD).send().await.unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = c.create_document().name("x").content(CMD).send().await.unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    assert!(
        message(&e).starts_with("1 validation error detected: Value 'x' at 'name' failed to satisfy constraint"),
        "{}",
        message(&e)
    );
    c.create_document().name("Dup").content(CMD).send().await.unwrap();
    let e = c.create_document().name("Dup").content(CMD).send().await.unwrap_err();
    assert_eq!(code(&e), "DocumentAlreadyExists");
    let e = c
        .create_document()
        .name("Cal")
        .content("BEGIN:VCALENDAR\nEND:VCALENDAR")
        .document_type(DocumentType::ChangeCalendar)
        .document_format(DocumentFormat::Text)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentContent");
    let cal = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//ssmd//test//EN\r\nX-CALENDAR-TYPE:DEFAULT_OPEN\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260101T000000Z\r\nDTEND:20260102T000000Z\r\nSUMMARY:freeze\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    c.create_document()
        .name("Cal")
        .content(cal)
        .document_type(DocumentType::ChangeCalendar)
        .document_format(DocumentFormat::Text)
        .send()
        .await
        .unwrap();
    assert_eq!(c.get_document().name("Cal").send().await.unwrap().content(), Some(cal));
    // Nothing half-written: the refused documents do not exist.
    for name in ["Bad", "Big"] {
        assert_eq!(code(&c.describe_document().name(name).send().await.unwrap_err()), "InvalidDocument");
    }
});

both_backends!(list_filters_and_pagination, |server: Server| async move {
    let c = server.client();
    for i in 0..7 {
        let t = if i % 2 == 0 { "even" } else { "odd" };
        c.create_document()
            .name(format!("Doc{i}"))
            .content(CMD.replace("hello", &format!("hello{i}")))
            .tags(Tag::builder().key("parity").value(t).build().unwrap())
            .send()
            .await
            .unwrap();
    }
    c.create_document()
        .name("RunbookA")
        .content(RUNBOOK_YAML)
        .document_type(DocumentType::Automation)
        .document_format(DocumentFormat::Yaml)
        .send()
        .await
        .unwrap();
    let owner = |v: &str| DocumentKeyValuesFilter::builder().key("Owner").values(v).build();
    let mine = c.list_documents().filters(owner("Self")).send().await.unwrap();
    assert_eq!(mine.document_identifiers().len(), 8);
    let amazon = c.list_documents().filters(owner("Amazon")).send().await.unwrap();
    assert!(amazon.document_identifiers().iter().any(|d| d.name() == Some("AWS-RunShellScript")));
    assert!(amazon.document_identifiers().iter().all(|d| d.owner() == Some("Amazon")));
    let autos = c
        .list_documents()
        .filters(owner("Self"))
        .filters(DocumentKeyValuesFilter::builder().key("DocumentType").values("Automation").build())
        .send()
        .await
        .unwrap();
    assert_eq!(autos.document_identifiers().len(), 1);
    let even = c
        .list_documents()
        .filters(DocumentKeyValuesFilter::builder().key("tag:parity").values("even").build())
        .send()
        .await
        .unwrap();
    assert_eq!(even.document_identifiers().len(), 4);
    let legacy = c
        .list_documents()
        .document_filter_list(DocumentFilter::builder().key(DocumentFilterKey::Name).value("Doc").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.document_identifiers().len(), 7);

    // Pages of 3 over own documents visit each once, in name order.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_documents()
            .filters(owner("Self"))
            .max_results(3)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.document_identifiers().len() <= 3);
        seen.extend(page.document_identifiers().iter().map(|d| d.name().unwrap().to_string()));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 8);

    // A forged token, and a real token from another account, are refused.
    let e = c.list_documents().next_token("forged.token").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidNextToken");
    let first = c.list_documents().max_results(1).send().await.unwrap();
    let (k, s, _) = server.new_account();
    let other = server.client_with(&k, &s, "us-east-1");
    let e = other.list_documents().next_token(first.next_token().unwrap()).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidNextToken");
    let e = c
        .list_documents()
        .filters(DocumentKeyValuesFilter::builder().key("Bogus").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidFilterKey");
});

both_backends!(accounts_regions_and_sharing, |server: Server| async move {
    let a = server.client();
    let (k, s, account_b) = server.new_account();
    let b = server.client_with(&k, &s, "us-east-1");
    a.create_document().name("Shared").content(CMD).send().await.unwrap();
    // Isolation: B sees nothing of A's, and can use the same name.
    assert_eq!(code(&b.get_document().name("Shared").send().await.unwrap_err()), "InvalidDocument");
    let arn = format!("arn:aws:ssm:us-east-1:{ACCOUNT}:document/Shared");
    assert_eq!(code(&b.get_document().name(&arn).send().await.unwrap_err()), "InvalidDocument");
    b.create_document().name("Shared").content(CMD.replace("hello", "b")).send().await.unwrap();
    assert_eq!(code(&b.delete_document().name(&arn).send().await.unwrap_err()), "ValidationException");
    // Regions are separate too.
    let a_west = server.client_with(ACCESS_KEY, SECRET_KEY, "eu-west-1");
    assert_eq!(code(&a_west.get_document().name("Shared").send().await.unwrap_err()), "InvalidDocument");
    let self_filter = DocumentKeyValuesFilter::builder().key("Owner").values("Self").build();
    assert_eq!(
        a_west.list_documents().filters(self_filter.clone()).send().await.unwrap().document_identifiers().len(),
        0
    );

    // Share with B: B reads and lists it by ARN; A sees the permission.
    a.modify_document_permission()
        .name("Shared")
        .permission_type(aws_sdk_ssm::types::DocumentPermissionType::Share)
        .account_ids_to_add(&account_b)
        .send()
        .await
        .unwrap();
    let got = b.get_document().name(&arn).send().await.unwrap();
    assert_eq!(got.content(), Some(CMD));
    assert_eq!(got.name(), Some(arn.as_str()));
    let private = DocumentKeyValuesFilter::builder().key("Owner").values("Private").build();
    let listed = b.list_documents().filters(private.clone()).send().await.unwrap();
    assert_eq!(listed.document_identifiers().len(), 1);
    assert_eq!(listed.document_identifiers()[0].owner(), Some(ACCOUNT));
    let perm = a
        .describe_document_permission()
        .name("Shared")
        .permission_type(aws_sdk_ssm::types::DocumentPermissionType::Share)
        .send()
        .await
        .unwrap();
    assert_eq!(perm.account_ids(), std::slice::from_ref(&account_b));
    assert_eq!(perm.account_sharing_info_list()[0].shared_document_version(), Some("$DEFAULT"));
    // B cannot change A's document; A cannot delete it while shared.
    assert_eq!(code(&a.delete_document().name("Shared").send().await.unwrap_err()), "InvalidDocumentOperation");
    // Unshare: B loses access.
    a.modify_document_permission()
        .name("Shared")
        .permission_type(aws_sdk_ssm::types::DocumentPermissionType::Share)
        .account_ids_to_remove(&account_b)
        .send()
        .await
        .unwrap();
    assert_eq!(code(&b.get_document().name(&arn).send().await.unwrap_err()), "InvalidDocument");
    assert_eq!(b.list_documents().filters(private).send().await.unwrap().document_identifiers().len(), 0);
    a.delete_document().name("Shared").send().await.unwrap();
    // B's own document of the same name is untouched.
    assert!(b.get_document().name("Shared").send().await.unwrap().content().unwrap().contains("echo b"));
});

both_backends!(change_template_reviews, |server: Server| async move {
    let c = server.client();
    let template = r#"{"schemaVersion":"0.3","description":"A change","templateInformation":"Describe the change","emergencyChange":false,"autoApprovable":false,"mainSteps":[{"name":"ApproveChange","action":"aws:approve","timeoutSeconds":3600,"inputs":{"Message":"ok?","Approvers":["arn:aws:iam::111111111111:root"],"MinRequiredApprovals":1}}]}"#;
    c.create_document()
        .name("Tmpl")
        .content(template)
        .document_type(DocumentType::ChangeTemplate)
        .send()
        .await
        .unwrap();
    let d = c.describe_document().name("Tmpl").send().await.unwrap().document.unwrap();
    assert_eq!(d.review_status().map(|s| s.as_str()), Some("NOT_REVIEWED"));
    let review = |action: DocumentReviewAction, text: &str| {
        DocumentReviews::builder()
            .action(action)
            .comment(
                DocumentReviewCommentSource::builder().r#type(DocumentReviewCommentType::Comment).content(text).build(),
            )
            .build()
            .unwrap()
    };
    c.update_document_metadata()
        .name("Tmpl")
        .document_reviews(review(DocumentReviewAction::SendForReview, "please"))
        .send()
        .await
        .unwrap();
    let d = c.describe_document().name("Tmpl").send().await.unwrap().document.unwrap();
    assert_eq!(d.review_status().map(|s| s.as_str()), Some("PENDING"));
    assert_eq!(d.pending_review_version(), Some("1"));
    c.update_document_metadata()
        .name("Tmpl")
        .document_reviews(review(DocumentReviewAction::Approve, "fine"))
        .send()
        .await
        .unwrap();
    let d = c.describe_document().name("Tmpl").send().await.unwrap().document.unwrap();
    assert_eq!(d.review_status().map(|s| s.as_str()), Some("APPROVED"));
    assert_eq!(d.approved_version(), Some("1"));
    let h = c
        .list_document_metadata_history()
        .name("Tmpl")
        .metadata(aws_sdk_ssm::types::DocumentMetadataEnum::DocumentReviews)
        .send()
        .await
        .unwrap();
    let responses = h.metadata().unwrap().reviewer_response();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[1].review_status().map(|s| s.as_str()), Some("APPROVED"));
    assert_eq!(responses[1].comment()[0].content(), Some("fine"));
    // Review metadata belongs to change templates only.
    c.create_document().name("Plain").content(CMD).send().await.unwrap();
    let e = c
        .update_document_metadata()
        .name("Plain")
        .document_reviews(review(DocumentReviewAction::Approve, "x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDocumentOperation");
});

both_backends!(amazon_documents_are_read_only, |server: Server| async move {
    let c = server.client();
    let d = c.describe_document().name("AWS-RunShellScript").send().await.unwrap().document.unwrap();
    assert_eq!(d.owner(), Some("Amazon"));
    assert_eq!(d.parameters()[0].name(), Some("commands"));
    let sleep = c.get_document().name("AWS-Sleep").send().await.unwrap();
    assert_eq!(sleep.document_type().map(|t| t.as_str()), Some("Automation"));
    assert_eq!(code(&c.delete_document().name("AWS-Sleep").send().await.unwrap_err()), "InvalidDocumentOperation");
    assert_eq!(
        code(&c.update_document().name("AWS-Sleep").content(CMD).send().await.unwrap_err()),
        "InvalidDocumentOperation"
    );
    let versions = c.list_document_versions().name("AWS-RunShellScript").send().await.unwrap();
    assert_eq!(versions.document_versions().len(), 1);
});
