"""Change-template reviews: UpdateDocumentMetadata and ListDocumentMetadataHistory."""

from __future__ import annotations

import datetime as dt

from ssmd_helpers import (
    AUTOMATION_YAML,
    CHANGE_TEMPLATE,
    ROOT_ACCOUNT,
    command_doc,
    expect_error,
    unique_name,
)

ROOT_ARN = f"arn:aws:iam::{ROOT_ACCOUNT}:root"


def create_template(ssm, name=None):
    name = name or unique_name("ct")
    d = ssm.create_document(Content=CHANGE_TEMPLATE, Name=name,
                            DocumentType="Automation.ChangeTemplate")["DocumentDescription"]
    return name, d


def history(ssm, name, **kw):
    return ssm.list_document_metadata_history(Name=name, Metadata="DocumentReviews", **kw)


def test_new_template_is_not_reviewed(ssm):
    name, d = create_template(ssm)
    assert d["DocumentType"] == "Automation.ChangeTemplate"
    assert d["ReviewStatus"] == "NOT_REVIEWED"
    assert ssm.describe_document(Name=name)["Document"]["ReviewStatus"] == "NOT_REVIEWED"
    listed = ssm.list_documents(Filters=[{"Key": "Name", "Values": [name]}])["DocumentIdentifiers"]
    assert listed[0]["ReviewStatus"] == "NOT_REVIEWED"
    versions = ssm.list_document_versions(Name=name)["DocumentVersions"]
    assert versions[0]["ReviewStatus"] == "NOT_REVIEWED"
    h = history(ssm, name)
    assert h["Name"] == name
    assert h["DocumentVersion"] == "1"
    assert h["Author"] == ROOT_ARN
    assert h["Metadata"]["ReviewerResponse"] == []


def test_send_for_review_then_approve(ssm):
    name, _ = create_template(ssm)
    ssm.update_document_metadata(
        Name=name, DocumentVersion="1",
        DocumentReviews={"Action": "SendForReview",
                         "Comment": [{"Type": "Comment", "Content": "please look"}]})
    d = ssm.describe_document(Name=name)["Document"]
    assert d["ReviewStatus"] == "PENDING"
    assert d["PendingReviewVersion"] == "1"
    assert [r["Status"] for r in d["ReviewInformation"]] == ["PENDING"]
    assert ssm.list_document_versions(Name=name)["DocumentVersions"][0]["ReviewStatus"] == "PENDING"

    ssm.update_document_metadata(
        Name=name,
        DocumentReviews={"Action": "Approve", "Comment": [{"Type": "Comment", "Content": "lgtm"}]})
    d = ssm.describe_document(Name=name)["Document"]
    assert d["ReviewStatus"] == "APPROVED"
    assert d["ApprovedVersion"] == "1"
    assert "PendingReviewVersion" not in d
    info = d["ReviewInformation"]
    assert [r["Status"] for r in info] == ["PENDING", "APPROVED"]
    for r in info:
        assert r["Reviewer"] == ROOT_ARN
        assert isinstance(r["ReviewedTime"], dt.datetime)
    listed = ssm.list_documents(Filters=[{"Key": "Name", "Values": [name]}])["DocumentIdentifiers"]
    assert listed[0]["ReviewStatus"] == "APPROVED"

    responses = history(ssm, name)["Metadata"]["ReviewerResponse"]
    assert [r["ReviewStatus"] for r in responses] == ["PENDING", "APPROVED"]
    assert [r["Comment"] for r in responses] == [
        [{"Type": "Comment", "Content": "please look"}],
        [{"Type": "Comment", "Content": "lgtm"}],
    ]
    for r in responses:
        assert r["Reviewer"] == ROOT_ARN
        assert isinstance(r["CreateTime"], dt.datetime)
        assert isinstance(r["UpdatedTime"], dt.datetime)
    assert responses[0]["CreateTime"] <= responses[1]["CreateTime"]


def test_send_for_review_then_reject(ssm):
    name, _ = create_template(ssm)
    ssm.update_document_metadata(Name=name, DocumentReviews={"Action": "SendForReview"})
    ssm.update_document_metadata(
        Name=name,
        DocumentReviews={"Action": "Reject", "Comment": [{"Type": "Comment", "Content": "no"}]})
    d = ssm.describe_document(Name=name)["Document"]
    assert d["ReviewStatus"] == "REJECTED"
    assert "ApprovedVersion" not in d
    responses = history(ssm, name)["Metadata"]["ReviewerResponse"]
    assert [r["ReviewStatus"] for r in responses] == ["PENDING", "REJECTED"]
    assert "Comment" not in responses[0] or responses[0]["Comment"] in ([], None)


def test_reviews_are_per_version(ssm):
    name, _ = create_template(ssm)
    ssm.update_document_metadata(Name=name, DocumentReviews={"Action": "SendForReview"})
    ssm.update_document_metadata(Name=name, DocumentReviews={"Action": "Approve"})
    ssm.update_document(Name=name, Content=CHANGE_TEMPLATE.replace("ok?", "still ok?"),
                        DocumentVersion="$LATEST")
    versions = {v["DocumentVersion"]: v["ReviewStatus"]
                for v in ssm.list_document_versions(Name=name)["DocumentVersions"]}
    assert versions == {"1": "APPROVED", "2": "NOT_REVIEWED"}
    assert history(ssm, name, DocumentVersion="2")["Metadata"]["ReviewerResponse"] == []
    assert len(history(ssm, name, DocumentVersion="1")["Metadata"]["ReviewerResponse"]) == 2
    # reviewing $LATEST (the default target) touches version 2 only
    ssm.update_document_metadata(Name=name, DocumentReviews={"Action": "SendForReview"})
    versions = {v["DocumentVersion"]: v["ReviewStatus"]
                for v in ssm.list_document_versions(Name=name)["DocumentVersions"]}
    assert versions == {"1": "APPROVED", "2": "PENDING"}
    assert ssm.describe_document(Name=name, DocumentVersion="2")["Document"]["ReviewStatus"] == "PENDING"


def test_review_errors(ssm):
    name, _ = create_template(ssm)
    expect_error("InvalidDocumentVersion", ssm.update_document_metadata, Name=name,
                 DocumentVersion="9", DocumentReviews={"Action": "SendForReview"})
    expect_error("InvalidDocumentVersion", ssm.list_document_metadata_history, Name=name,
                 Metadata="DocumentReviews", DocumentVersion="9")
    expect_error("InvalidDocument", ssm.update_document_metadata, Name=unique_name("nope"),
                 DocumentReviews={"Action": "SendForReview"})
    expect_error("InvalidDocument", ssm.list_document_metadata_history, Name=unique_name("nope"),
                 Metadata="DocumentReviews")
    expect_error("ValidationException", ssm.list_document_metadata_history, Name=name,
                 Metadata="Bogus")


def test_only_change_templates_have_reviews(ssm):
    cmd = unique_name("notct")
    ssm.create_document(Content=command_doc(), Name=cmd)
    expect_error("InvalidDocumentOperation", ssm.update_document_metadata, Name=cmd,
                 DocumentReviews={"Action": "SendForReview"})
    auto = unique_name("notct")
    ssm.create_document(Content=AUTOMATION_YAML, Name=auto, DocumentType="Automation",
                        DocumentFormat="YAML")
    expect_error("InvalidDocumentOperation", ssm.update_document_metadata, Name=auto,
                 DocumentReviews={"Action": "Approve"})
    assert "ReviewStatus" not in ssm.describe_document(Name=auto)["Document"]
    expect_error("InvalidDocumentOperation", ssm.update_document_metadata, Name="AWS-Sleep",
                 DocumentReviews={"Action": "SendForReview"})
