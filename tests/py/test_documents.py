"""Document lifecycle through boto3: create, get, describe, versions, defaults, deletes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import yaml

from ssmd_helpers import (
    AUTOMATION_YAML,
    CALENDAR,
    ROOT_ACCOUNT,
    command_doc,
    expect_error,
    unique_name,
)

def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def assert_recent(ts):
    assert isinstance(ts, dt.datetime), type(ts)
    assert ts.tzinfo is not None
    now = dt.datetime.now(dt.timezone.utc)
    assert abs((now - ts).total_seconds()) < 300, (ts, now)


def test_create_get_describe_command_document(ssm):
    name = unique_name("cmd")
    content = command_doc("echo lifecycle")
    resp = ssm.create_document(Content=content, Name=name, DocumentType="Command")
    d = resp["DocumentDescription"]
    assert d["Name"] == name
    assert d["Owner"] == ROOT_ACCOUNT
    assert d["Status"] == "Active"
    assert d["DocumentType"] == "Command"
    assert d["DocumentFormat"] == "JSON"
    assert d["SchemaVersion"] == "2.2"
    assert d["DocumentVersion"] == d["LatestVersion"] == d["DefaultVersion"] == "1"
    assert d["HashType"] == "Sha256"
    assert d["Hash"] == sha256(content)
    assert set(d["PlatformTypes"]) >= {"Linux"}
    assert_recent(d["CreatedDate"])

    got = ssm.get_document(Name=name)
    assert got["Name"] == name
    assert got["Content"] == content
    assert got["DocumentVersion"] == "1"
    assert got["DocumentFormat"] == "JSON"
    assert got["DocumentType"] == "Command"
    assert got["Status"] == "Active"
    assert_recent(got["CreatedDate"])

    desc = ssm.describe_document(Name=name)["Document"]
    assert desc["Hash"] == sha256(content)
    assert desc["Name"] == name
    assert desc["CreatedDate"] == d["CreatedDate"]
    assert desc["LatestVersion"] == "1"


def test_document_type_defaults_to_command(ssm):
    name = unique_name("dflt")
    d = ssm.create_document(Content=command_doc(), Name=name)["DocumentDescription"]
    assert d["DocumentType"] == "Command"


def test_response_metadata_has_request_id(ssm):
    resp = ssm.list_documents(MaxResults=1)
    meta = resp["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert meta["RequestId"]
    assert meta["HTTPHeaders"]["x-amzn-requestid"] == meta["RequestId"]
    assert meta["HTTPHeaders"]["content-type"].startswith("application/x-amz-json-1.1")
    other = ssm.list_documents(MaxResults=1)["ResponseMetadata"]["RequestId"]
    assert other and other != meta["RequestId"]


def test_error_responses_carry_request_id(ssm):
    from botocore.exceptions import ClientError

    try:
        ssm.get_document(Name=unique_name("missing"))
    except ClientError as e:
        meta = e.response["ResponseMetadata"]
        assert meta["RequestId"]
        assert meta["HTTPHeaders"]["x-amzn-requestid"] == meta["RequestId"]
    else:  # pragma: no cover
        raise AssertionError("expected an error")


def test_json_document_returned_as_yaml(ssm):
    name = unique_name("j2y")
    content = command_doc("echo convert")
    ssm.create_document(Content=content, Name=name, DocumentFormat="JSON")
    got = ssm.get_document(Name=name, DocumentFormat="YAML")
    assert got["DocumentFormat"] == "YAML"
    assert not got["Content"].lstrip().startswith("{")
    assert yaml.safe_load(got["Content"]) == json.loads(content)
    # stored form is unchanged
    again = ssm.get_document(Name=name)
    assert again["Content"] == content and again["DocumentFormat"] == "JSON"
    assert ssm.get_document(Name=name, DocumentFormat="JSON")["Content"] == content


def test_yaml_automation_document_returned_as_json(ssm):
    name = unique_name("y2j")
    d = ssm.create_document(
        Content=AUTOMATION_YAML, Name=name, DocumentType="Automation", DocumentFormat="YAML"
    )["DocumentDescription"]
    assert d["DocumentType"] == "Automation"
    assert d["DocumentFormat"] == "YAML"
    assert d["SchemaVersion"] == "0.3"
    assert d["Description"] == "naps for a second"
    assert d["Hash"] == sha256(AUTOMATION_YAML)

    as_yaml = ssm.get_document(Name=name)
    assert as_yaml["Content"] == AUTOMATION_YAML
    assert as_yaml["DocumentFormat"] == "YAML"

    as_json = ssm.get_document(Name=name, DocumentFormat="JSON")
    assert as_json["DocumentFormat"] == "JSON"
    assert json.loads(as_json["Content"]) == yaml.safe_load(AUTOMATION_YAML)


def test_change_calendar_text_document(ssm):
    name = unique_name("cal")
    d = ssm.create_document(
        Content=CALENDAR, Name=name, DocumentType="ChangeCalendar", DocumentFormat="TEXT"
    )["DocumentDescription"]
    assert d["DocumentType"] == "ChangeCalendar"
    assert d["DocumentFormat"] == "TEXT"
    assert d["Hash"] == sha256(CALENDAR)
    got = ssm.get_document(Name=name)
    assert got["Content"] == CALENDAR
    assert got["DocumentFormat"] == "TEXT"


def test_invalid_calendar_content_is_refused(ssm):
    expect_error(
        "InvalidDocumentContent",
        ssm.create_document,
        Content="this is not a calendar",
        Name=unique_name("badcal"),
        DocumentType="ChangeCalendar",
        DocumentFormat="TEXT",
    )


def test_target_type_is_kept(ssm):
    name = unique_name("tt")
    d = ssm.create_document(
        Content=command_doc(), Name=name, TargetType="/AWS::EC2::Instance"
    )["DocumentDescription"]
    assert d["TargetType"] == "/AWS::EC2::Instance"
    assert ssm.describe_document(Name=name)["Document"]["TargetType"] == "/AWS::EC2::Instance"


def test_versions_defaults_and_deletes(ssm):
    name = unique_name("ver")
    c1, c2, c3 = command_doc("echo 1"), command_doc("echo 2"), command_doc("echo 3")
    ssm.create_document(Content=c1, Name=name, VersionName="first")

    u2 = ssm.update_document(Name=name, Content=c2, DocumentVersion="$LATEST",
                             VersionName="second")["DocumentDescription"]
    assert u2["DocumentVersion"] == "2"
    assert u2["LatestVersion"] == "2"
    assert u2["DefaultVersion"] == "1"
    assert u2["VersionName"] == "second"
    assert u2["Hash"] == sha256(c2)

    # the latest version may also be named by its number
    u3 = ssm.update_document(Name=name, Content=c3, DocumentVersion="2")["DocumentDescription"]
    assert u3["DocumentVersion"] == "3"

    # the default (1) is what you get without a version
    assert ssm.get_document(Name=name)["Content"] == c1
    assert ssm.describe_document(Name=name)["Document"]["DocumentVersion"] == "1"
    assert ssm.get_document(Name=name, DocumentVersion="$LATEST")["Content"] == c3
    assert ssm.get_document(Name=name, DocumentVersion="$DEFAULT")["Content"] == c1
    assert ssm.get_document(Name=name, DocumentVersion="2")["Content"] == c2
    by_name = ssm.get_document(Name=name, VersionName="second")
    assert by_name["Content"] == c2 and by_name["DocumentVersion"] == "2"
    assert ssm.describe_document(Name=name, VersionName="first")["Document"]["Hash"] == sha256(c1)
    desc3 = ssm.describe_document(Name=name, DocumentVersion="3")["Document"]
    assert desc3["Hash"] == sha256(c3)
    assert desc3["LatestVersion"] == "3" and desc3["DefaultVersion"] == "1"

    versions = ssm.list_document_versions(Name=name)["DocumentVersions"]
    assert [v["DocumentVersion"] for v in versions] == ["1", "2", "3"]
    assert [v["IsDefaultVersion"] for v in versions] == [True, False, False]
    assert versions[0]["VersionName"] == "first"
    assert versions[1]["VersionName"] == "second"
    assert "VersionName" not in versions[2]
    for v in versions:
        assert v["Name"] == name
        assert v["Status"] == "Active"
        assert v["DocumentFormat"] == "JSON"
        assert_recent(v["CreatedDate"])

    # change the default
    dv = ssm.update_document_default_version(Name=name, DocumentVersion="2")["Description"]
    assert dv == {"Name": name, "DefaultVersion": "2", "DefaultVersionName": "second"}
    assert ssm.get_document(Name=name)["Content"] == c2
    d = ssm.describe_document(Name=name)["Document"]
    assert d["DefaultVersion"] == "2" and d["LatestVersion"] == "3"
    assert d["DocumentVersion"] == "2"
    assert [v["IsDefaultVersion"] for v in ssm.list_document_versions(Name=name)["DocumentVersions"]] == [False, True, False]

    # the default version cannot be deleted on its own; others can
    expect_error("InvalidDocumentOperation", ssm.delete_document, Name=name, DocumentVersion="2")
    ssm.delete_document(Name=name, DocumentVersion="1")
    assert [v["DocumentVersion"] for v in ssm.list_document_versions(Name=name)["DocumentVersions"]] == ["2", "3"]
    expect_error("InvalidDocumentVersion", ssm.get_document, Name=name, DocumentVersion="1")
    expect_error("InvalidDocumentVersion", ssm.describe_document, Name=name, VersionName="first")
    assert ssm.get_document(Name=name)["Content"] == c2

    # delete the whole document
    ssm.delete_document(Name=name)
    expect_error("InvalidDocument", ssm.get_document, Name=name)
    expect_error("InvalidDocument", ssm.describe_document, Name=name)
    expect_error("InvalidDocument", ssm.list_document_versions, Name=name)
    expect_error("InvalidDocument", ssm.delete_document, Name=name)
    # and the name is free again
    again = ssm.create_document(Content=c3, Name=name)["DocumentDescription"]
    assert again["DocumentVersion"] == "1"
    ssm.delete_document(Name=name)


def test_update_keeps_document_type_and_supports_yaml(ssm):
    name = unique_name("auto")
    ssm.create_document(Content=AUTOMATION_YAML, Name=name, DocumentType="Automation",
                        DocumentFormat="YAML")
    v2 = AUTOMATION_YAML.replace("PT1S", "PT2S")
    d = ssm.update_document(Name=name, Content=v2, DocumentVersion="$LATEST",
                            DocumentFormat="YAML")["DocumentDescription"]
    assert d["DocumentType"] == "Automation"
    assert d["DocumentVersion"] == "2"
    assert d["Hash"] == sha256(v2)
    assert ssm.get_document(Name=name, DocumentVersion="2")["Content"] == v2


def test_update_default_version_by_latest(ssm):
    name = unique_name("def")
    ssm.create_document(Content=command_doc("a"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("b"), DocumentVersion="$LATEST")
    ssm.update_document_default_version(Name=name, DocumentVersion="2")
    ssm.update_document(Name=name, Content=command_doc("c"), DocumentVersion="$LATEST")
    d = ssm.describe_document(Name=name)["Document"]
    assert (d["DefaultVersion"], d["LatestVersion"]) == ("2", "3")
    expect_error("InvalidDocumentVersion", ssm.update_document_default_version,
                 Name=name, DocumentVersion="9")


def test_amazon_owned_documents(ssm):
    for name, doc_type in [
        ("AWS-RunShellScript", "Command"),
        ("AWS-Sleep", "Automation"),
        ("AWS-RequestApproval", "Automation"),
        ("AWS-RunPythonScript", "Automation"),
    ]:
        d = ssm.describe_document(Name=name)["Document"]
        assert d["Owner"] == "Amazon", name
        assert d["DocumentType"] == doc_type, name
        assert d["Status"] == "Active"
        assert isinstance(d["CreatedDate"], dt.datetime)
        got = ssm.get_document(Name=name)
        assert got["Content"]
        assert d["Hash"] == sha256(got["Content"]), name

    shell = ssm.describe_document(Name="AWS-RunShellScript")["Document"]
    assert "commands" in {p["Name"] for p in shell["Parameters"]}
    # Amazon-owned documents are read-only
    expect_error("InvalidDocumentOperation", ssm.delete_document, Name="AWS-Sleep")
    expect_error("InvalidDocumentOperation", ssm.update_document, Name="AWS-Sleep",
                 Content=command_doc(), DocumentVersion="$LATEST")
    expect_error("InvalidDocumentOperation", ssm.modify_document_permission, Name="AWS-Sleep",
                 PermissionType="Share", AccountIdsToAdd=["222222222222"])


def test_amazon_yaml_document_as_json(ssm):
    got = ssm.get_document(Name="AWS-Sleep", DocumentFormat="JSON")
    parsed = json.loads(got["Content"])
    assert parsed["schemaVersion"] == "0.3"
    assert parsed["mainSteps"][0]["action"] == "aws:sleep"


def test_unicode_content_hash_and_round_trip(ssm):
    name = unique_name("uni")
    content = json.dumps({
        "schemaVersion": "2.2",
        "description": "héllo ✓ 日本語",
        "mainSteps": [{"action": "aws:runShellScript", "name": "s",
                       "inputs": {"runCommand": ["echo 'ünïcödé ✓'"]}}],
    }, ensure_ascii=False)
    d = ssm.create_document(Content=content, Name=name)["DocumentDescription"]
    assert d["Hash"] == hashlib.sha256(content.encode("utf-8")).hexdigest()
    assert d["Description"] == "héllo ✓ 日本語"
    assert ssm.get_document(Name=name)["Content"] == content
    as_yaml = ssm.get_document(Name=name, DocumentFormat="YAML")["Content"]
    assert yaml.safe_load(as_yaml) == json.loads(content)


def test_own_document_by_arn(ssm):
    name = unique_name("ownarn")
    content = command_doc("by arn")
    ssm.create_document(Content=content, Name=name)
    arn = f"arn:aws:ssm:us-east-1:{ROOT_ACCOUNT}:document/{name}"
    assert ssm.get_document(Name=arn)["Content"] == content
    assert ssm.describe_document(Name=arn)["Document"]["Hash"] == sha256(content)
    # an ARN in another region does not name it
    expect_error("InvalidDocument", ssm.get_document,
                 Name=f"arn:aws:ssm:us-west-2:{ROOT_ACCOUNT}:document/{name}")


def test_list_document_versions_by_own_arn(ssm):
    name = unique_name("verarn")
    ssm.create_document(Content=command_doc("1"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    arn = f"arn:aws:ssm:us-east-1:{ROOT_ACCOUNT}:document/{name}"
    versions = ssm.list_document_versions(Name=arn)["DocumentVersions"]
    assert [v["DocumentVersion"] for v in versions] == ["1", "2"]


def test_deleting_the_latest_version_moves_latest_back(ssm):
    name = unique_name("dellatest")
    ssm.create_document(Content=command_doc("1"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    ssm.update_document(Name=name, Content=command_doc("3"), DocumentVersion="$LATEST")
    ssm.delete_document(Name=name, DocumentVersion="3")
    versions = ssm.list_document_versions(Name=name)["DocumentVersions"]
    assert [v["DocumentVersion"] for v in versions] == ["1", "2"]
    got = ssm.get_document(Name=name, DocumentVersion="$LATEST")
    assert got["Content"] == command_doc("2")
    assert ssm.describe_document(Name=name)["Document"]["LatestVersion"] == "2"


def test_update_after_deleting_the_latest_version(ssm):
    """Whatever LatestVersion says, a new version gets a fresh number and becomes $LATEST."""
    name = unique_name("dellatest2")
    ssm.create_document(Content=command_doc("1"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    ssm.delete_document(Name=name, DocumentVersion="2")
    d = ssm.update_document(Name=name, Content=command_doc("new"),
                            DocumentVersion="$LATEST")["DocumentDescription"]
    assert d["DocumentVersion"] not in ("1",)
    assert d["LatestVersion"] == d["DocumentVersion"]
    assert ssm.get_document(Name=name, DocumentVersion="$LATEST")["Content"] == command_doc("new")
    assert [v["DocumentVersion"] for v in ssm.list_document_versions(Name=name)["DocumentVersions"]] == [
        "1", d["DocumentVersion"]]


def test_concurrent_updates_get_distinct_versions(ssm):
    import concurrent.futures as cf

    from botocore.exceptions import ClientError

    name = unique_name("race")
    ssm.create_document(Content=command_doc("0"), Name=name)

    def update(i):  # botocore clients are thread-safe
        try:
            return ssm.update_document(Name=name, Content=command_doc(f"u{i}"),
                                          DocumentVersion="$LATEST")["DocumentDescription"]["DocumentVersion"]
        except ClientError as e:
            return e.response["Error"]["Code"]

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(update, range(16)))
    versions = [r for r in results if r.isdigit()]
    errors = [r for r in results if not r.isdigit()]
    assert set(errors) <= {"TooManyUpdates"}, results
    assert versions, results
    assert len(set(versions)) == len(versions), results
    listed = [v["DocumentVersion"] for v in ssm.list_document_versions(Name=name)["DocumentVersions"]]
    assert sorted(listed, key=int) == sorted(["1"] + versions, key=int)
    latest = ssm.describe_document(Name=name, DocumentVersion="$LATEST")["Document"]
    assert latest["DocumentVersion"] == max(versions, key=int)


def test_concurrent_creates_of_one_name(ssm):
    import concurrent.futures as cf

    from botocore.exceptions import ClientError

    name = unique_name("race")

    def create(i):
        try:
            ssm.create_document(Name=name, Content=command_doc(f"c{i}"))
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    assert results.count("ok") == 1, results
    assert set(results) == {"ok", "DocumentAlreadyExists"}, results


def test_recreated_document_starts_clean(ssm):
    """Deleting a document removes its versions, tags, reviews and shares with it."""
    from ssmd_helpers import CHANGE_TEMPLATE

    name = unique_name("reborn")
    ssm.create_document(Content=CHANGE_TEMPLATE, Name=name, VersionName="v1",
                        DocumentType="Automation.ChangeTemplate",
                        Tags=[{"Key": "old", "Value": "tag"}])
    ssm.update_document(Name=name, Content=CHANGE_TEMPLATE.replace("ok?", "v2?"),
                        DocumentVersion="$LATEST")
    ssm.update_document_metadata(Name=name, DocumentVersion="1",
                                 DocumentReviews={"Action": "SendForReview"})
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=["222222222222"])
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToRemove=["222222222222"])
    ssm.delete_document(Name=name)

    d = ssm.create_document(Content=CHANGE_TEMPLATE, Name=name, VersionName="v1",
                            DocumentType="Automation.ChangeTemplate")["DocumentDescription"]
    assert d["DocumentVersion"] == d["LatestVersion"] == "1"
    assert d["Tags"] == []
    assert d["ReviewStatus"] == "NOT_REVIEWED"
    assert ssm.list_tags_for_resource(ResourceType="Document", ResourceId=name)["TagList"] == []
    assert [v["DocumentVersion"] for v in ssm.list_document_versions(Name=name)["DocumentVersions"]] == ["1"]
    history = ssm.list_document_metadata_history(Name=name, Metadata="DocumentReviews")
    assert history["Metadata"]["ReviewerResponse"] == []
    assert ssm.describe_document_permission(Name=name, PermissionType="Share")["AccountIds"] == []
