"""Every documented error code, as boto3 sees it: Error.Code and HTTP 400."""

from __future__ import annotations

import json
import re

import pytest

from ssmd_helpers import CALENDAR, command_doc, expect_error, unique_name

VALIDATION_RE = re.compile(
    r"^1 validation error detected: Value '.*' at '[A-Za-z0-9_.]+' failed to satisfy constraint: Member must ",
    re.S,
)


def big_command_doc(total_bytes: int) -> str:
    base = {
        "schemaVersion": "2.2",
        "description": "",
        "mainSteps": [{"action": "aws:runShellScript", "name": "s",
                       "inputs": {"runCommand": ["echo hi"]}}],
    }
    pad = total_bytes - len(json.dumps(base))
    base["description"] = "x" * pad
    text = json.dumps(base)
    assert len(text.encode()) == total_bytes
    return text


def test_missing_document_is_invalid_document(ssm):
    missing = unique_name("missing")
    expect_error("InvalidDocument", ssm.get_document, Name=missing)
    expect_error("InvalidDocument", ssm.describe_document, Name=missing)
    expect_error("InvalidDocument", ssm.delete_document, Name=missing)
    expect_error("InvalidDocument", ssm.list_document_versions, Name=missing)
    expect_error("InvalidDocument", ssm.update_document, Name=missing,
                 Content=command_doc(), DocumentVersion="$LATEST")
    expect_error("InvalidDocument", ssm.update_document_default_version, Name=missing,
                 DocumentVersion="1")
    expect_error("InvalidDocument", ssm.describe_document_permission, Name=missing,
                 PermissionType="Share")
    expect_error("InvalidDocument", ssm.modify_document_permission, Name=missing,
                 PermissionType="Share", AccountIdsToAdd=["222222222222"])


@pytest.mark.parametrize(
    "content",
    [
        "{",
        "[1, 2, 3]",
        '{"schemaVersion": "2.2"}',
        '{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript"}]}',
    ],
    ids=["truncated-json", "json-array", "no-steps", "step-without-name"],
)
def test_bad_content_is_invalid_document_content(ssm, content):
    expect_error("InvalidDocumentContent", ssm.create_document, Content=content,
                 Name=unique_name("bad"))


def test_bad_yaml_is_invalid_document_content(ssm):
    expect_error("InvalidDocumentContent", ssm.create_document,
                 Content="schemaVersion: '0.3'\nmainSteps: [unclosed\n",
                 Name=unique_name("badyaml"), DocumentType="Automation", DocumentFormat="YAML")


@pytest.mark.parametrize(
    "doc_type,content",
    [
        ("Command", '{"schemaVersion":"9.9","mainSteps":[{"action":"aws:runShellScript","name":"s","inputs":{"runCommand":["x"]}}]}'),
        ("Automation", '{"schemaVersion":"2.2","mainSteps":[{"name":"nap","action":"aws:sleep","inputs":{"Duration":"PT1S"}}]}'),
    ],
    ids=["command-9.9", "automation-2.2"],
)
def test_bad_schema_version(ssm, doc_type, content):
    expect_error("InvalidDocumentSchemaVersion", ssm.create_document, Content=content,
                 Name=unique_name("schema"), DocumentType=doc_type)


def test_max_document_size(ssm):
    # exactly 64 KiB is fine, one byte more is not
    ok = unique_name("size")
    ssm.create_document(Content=big_command_doc(65536), Name=ok)
    err = expect_error("MaxDocumentSizeExceeded", ssm.create_document,
                       Content=big_command_doc(65537), Name=unique_name("size"))
    assert "65537" in err["Message"]
    expect_error("MaxDocumentSizeExceeded", ssm.update_document, Name=ok,
                 Content=big_command_doc(70000), DocumentVersion="$LATEST")
    ssm.delete_document(Name=ok)


def test_duplicate_name(ssm):
    name = unique_name("dup")
    ssm.create_document(Content=command_doc(), Name=name)
    expect_error("DocumentAlreadyExists", ssm.create_document, Content=command_doc("x"),
                 Name=name)


@pytest.mark.parametrize("prefix", ["aws", "AWS-", "Amazon", "amazon-", "amzn", "AmZn_"])
def test_reserved_name_prefix(ssm, prefix):
    err = expect_error("ValidationException", ssm.create_document, Content=command_doc(),
                       Name=prefix + "thing" + unique_name("")[1:9])
    assert VALIDATION_RE.match(err["Message"]), err["Message"]


@pytest.mark.parametrize(
    "call,kwargs,where",
    [
        ("create_document", {"Content": "{}", "Name": "a b c"}, "name"),
        ("create_document", {"Content": "{}", "Name": "ab"}, "name"),
        ("create_document", {"Content": "{}", "Name": "x" * 129}, "name"),
        ("create_document", {"Content": "{}", "Name": "okname-doctype", "DocumentType": "Bogus"},
         "documentType"),
        ("list_documents", {"MaxResults": 51}, "maxResults"),
        ("list_document_versions", {"Name": "whatever", "MaxResults": 51}, "maxResults"),
        ("modify_document_permission",
         {"Name": "whatever", "PermissionType": "Share", "AccountIdsToAdd": ["abc"]},
         "accountIdsToAdd.1.member"),
        ("modify_document_permission",
         {"Name": "whatever", "PermissionType": "Nope", "AccountIdsToAdd": ["222222222222"]},
         "permissionType"),
        ("list_document_metadata_history", {"Name": "whatever", "Metadata": "Nope"}, "metadata"),
        ("update_document_metadata",
         {"Name": "whatever", "DocumentReviews": {"Action": "Nope"}}, "documentReviews.action"),
    ],
    ids=[
        "name-space", "name-short", "name-long", "doctype-enum", "list-maxresults",
        "versions-maxresults", "account-id-pattern", "permission-type-enum",
        "metadata-enum", "review-action-enum",
    ],
)
def test_constraint_violations(ssm, call, kwargs, where):
    err = expect_error("ValidationException", getattr(ssm, call), **kwargs)
    assert VALIDATION_RE.match(err["Message"]), err["Message"]
    assert f"at '{where}'" in err["Message"], err["Message"]


def test_forged_next_token(ssm):
    expect_error("InvalidNextToken", ssm.list_documents, NextToken="garbage")
    expect_error("InvalidNextToken", ssm.list_documents, MaxResults=1, NextToken="eyJhIjoiMSJ9.AAAA")
    real = ssm.list_documents(MaxResults=1)["NextToken"]
    tampered = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    expect_error("InvalidNextToken", ssm.list_documents, MaxResults=1, NextToken=tampered)

    name = unique_name("tok")
    ssm.create_document(Content=command_doc(), Name=name)
    expect_error("InvalidNextToken", ssm.list_document_versions, Name=name, NextToken="abc")


def test_next_token_is_bound_to_the_account(ssm, second_account):
    token = ssm.list_documents(MaxResults=1)["NextToken"]
    expect_error("InvalidNextToken", second_account.client.list_documents, MaxResults=1,
                 NextToken=token)


def test_next_token_is_bound_to_the_operation(ssm):
    name = unique_name("tokop")
    ssm.create_document(Content=command_doc("1"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    token = ssm.list_document_versions(Name=name, MaxResults=1)["NextToken"]
    expect_error("InvalidNextToken", ssm.list_documents, MaxResults=1, NextToken=token)


def test_update_errors(ssm):
    name = unique_name("upd")
    c1, c2 = command_doc("one"), command_doc("two")
    ssm.create_document(Content=c1, Name=name, VersionName="v1")
    expect_error("DuplicateDocumentContent", ssm.update_document, Name=name, Content=c1,
                 DocumentVersion="$LATEST")
    expect_error("DuplicateDocumentVersionName", ssm.update_document, Name=name, Content=c2,
                 DocumentVersion="$LATEST", VersionName="v1")
    ssm.update_document(Name=name, Content=c2, DocumentVersion="$LATEST")
    # only the latest version (2) can be updated
    expect_error("InvalidDocumentVersion", ssm.update_document, Name=name,
                 Content=command_doc("three"), DocumentVersion="1")
    expect_error("InvalidDocumentVersion", ssm.update_document, Name=name,
                 Content=command_doc("three"), DocumentVersion="$DEFAULT")
    # content equal to an older (non-latest) version is still a duplicate
    expect_error("DuplicateDocumentContent", ssm.update_document, Name=name, Content=c1,
                 DocumentVersion="$LATEST")
    expect_error("InvalidDocumentContent", ssm.update_document, Name=name, Content="{",
                 DocumentVersion="$LATEST")
    assert len(ssm.list_document_versions(Name=name)["DocumentVersions"]) == 2


def test_invalid_document_version(ssm):
    name = unique_name("badver")
    ssm.create_document(Content=command_doc(), Name=name)
    expect_error("InvalidDocumentVersion", ssm.get_document, Name=name, DocumentVersion="7")
    expect_error("InvalidDocumentVersion", ssm.describe_document, Name=name, DocumentVersion="7")
    expect_error("InvalidDocumentVersion", ssm.get_document, Name=name, VersionName="nope")
    expect_error("InvalidDocumentVersion", ssm.delete_document, Name=name, DocumentVersion="7")
    expect_error("InvalidDocumentVersion", ssm.update_document_default_version, Name=name,
                 DocumentVersion="7")


def test_default_version_cannot_be_deleted(ssm):
    name = unique_name("deldef")
    ssm.create_document(Content=command_doc(), Name=name)
    expect_error("InvalidDocumentOperation", ssm.delete_document, Name=name, DocumentVersion="1")
    assert ssm.get_document(Name=name)["DocumentVersion"] == "1"


def test_unsupported_filter_key(ssm):
    expect_error("InvalidFilterKey", ssm.list_documents,
                 Filters=[{"Key": "Bogus", "Values": ["x"]}])


def test_text_document_cannot_be_returned_as_json(ssm):
    name = unique_name("caljson")
    ssm.create_document(Content=CALENDAR, Name=name, DocumentType="ChangeCalendar",
                        DocumentFormat="TEXT")
    expect_error("InvalidDocumentOperation", ssm.get_document, Name=name, DocumentFormat="JSON")


def test_wrong_secret_is_invalid_signature(server):
    bad = server.client(secret_access_key="not-the-secret")
    expect_error("InvalidSignatureException", bad.list_documents)
    expect_error("InvalidSignatureException", bad.create_document, Content=command_doc(),
                 Name=unique_name("sig"))


def test_unknown_key_is_unrecognized_client(server):
    unknown = server.client(access_key_id="AKIAUNKNOWNKEY000000", secret_access_key="whatever")
    expect_error("UnrecognizedClientException", unknown.list_documents)


@pytest.mark.parametrize(
    "call,kwargs,operation",
    [
        ("describe_ops_items", {}, "DescribeOpsItems"),
        ("get_inventory", {}, "GetInventory"),
        ("create_association", {"Name": "AWS-RunShellScript"}, "CreateAssociation"),
        ("describe_patch_baselines", {}, "DescribePatchBaselines"),
    ],
    ids=["DescribeOpsItems", "GetInventory", "CreateAssociation", "DescribePatchBaselines"],
)
def test_unsupported_operations(ssm, call, kwargs, operation):
    err = expect_error("UnsupportedOperationException", getattr(ssm, call), **kwargs)
    assert operation in err["Message"]


def test_server_side_validation_without_client_checks(server):
    """With boto3's own parameter checks off, the server's checks answer."""
    c = server.client(parameter_validation=False)
    err = expect_error("ValidationException", c.create_document, Name=unique_name("nocontent"))
    assert err["Message"].startswith("1 validation error detected: Value null at 'content'"), err
    assert "Member must not be null" in err["Message"]
    err = expect_error("ValidationException", c.create_document, Name=unique_name("empty"),
                       Content="")
    assert VALIDATION_RE.match(err["Message"]), err
    err = expect_error("ValidationException", c.list_documents, MaxResults=0)
    assert VALIDATION_RE.match(err["Message"]) and "at 'maxResults'" in err["Message"], err
    err = expect_error("ValidationException", c.get_document)
    assert "at 'name'" in err["Message"], err
    expect_error("SerializationException", c.list_documents, MaxResults="abc")
