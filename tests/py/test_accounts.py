"""Account isolation, document sharing (ModifyDocumentPermission) and per-account keys."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from ssmd_helpers import command_doc, expect_error, unique_name


def owner(value):
    return {"Key": "Owner", "Values": [value]}


def names(resp):
    return [d["Name"] for d in resp["DocumentIdentifiers"]]


def test_keys_create_makes_distinct_accounts(server):
    a = server.create_account()
    b = server.create_account()
    assert a.account_id != b.account_id
    assert a.access_key_id != b.access_key_id
    assert a.client.list_documents(Filters=[owner("Self")])["DocumentIdentifiers"] == []


def test_accounts_are_isolated(ssm, new_account):
    other = new_account()
    name = unique_name("iso")
    ssm.create_document(Content=command_doc("root"), Name=name)

    # invisible to the other account, by name and by ARN
    expect_error("InvalidDocument", other.client.get_document, Name=name)
    expect_error("InvalidDocument", other.client.describe_document, Name=name)
    expect_error("InvalidDocument", other.client.get_document,
                 Name=f"arn:aws:ssm:us-east-1:111111111111:document/{name}")
    expect_error("InvalidDocument", other.client.delete_document, Name=name)
    expect_error("InvalidDocument", other.client.update_document, Name=name,
                 Content=command_doc("evil"), DocumentVersion="$LATEST")
    assert name not in names(other.client.list_documents(Filters=[owner("Self")]))
    assert name not in names(other.client.list_documents(Filters=[owner("Private")]))
    assert name not in [d["Name"] for p in other.client.get_paginator("list_documents").paginate()
                        for d in p["DocumentIdentifiers"]]

    # the same name can exist independently in the other account
    mine = other.client.create_document(Content=command_doc("other"), Name=name)["DocumentDescription"]
    assert mine["Owner"] == other.account_id
    assert other.client.get_document(Name=name)["Content"] == command_doc("other")
    assert ssm.get_document(Name=name)["Content"] == command_doc("root")
    other.client.delete_document(Name=name)
    assert ssm.get_document(Name=name)["Content"] == command_doc("root")


def test_share_with_another_account(ssm, server, new_account):
    friend = new_account()
    stranger = new_account()
    name = unique_name("share")
    content = command_doc("shared")
    ssm.create_document(Content=content, Name=name, Tags=[{"Key": "k", "Value": "v"}])
    arn = f"arn:aws:ssm:us-east-1:111111111111:document/{name}"

    perms = ssm.describe_document_permission(Name=name, PermissionType="Share")
    assert perms["AccountIds"] == []
    assert perms.get("AccountSharingInfoList", []) == []

    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=[friend.account_id])
    perms = ssm.describe_document_permission(Name=name, PermissionType="Share")
    assert perms["AccountIds"] == [friend.account_id]
    assert [i["AccountId"] for i in perms["AccountSharingInfoList"]] == [friend.account_id]

    # the friend reads it by ARN
    got = friend.client.get_document(Name=arn)
    assert got["Content"] == content
    assert got["DocumentType"] == "Command"
    desc = friend.client.describe_document(Name=arn)["Document"]
    assert desc["Owner"] == "111111111111"
    # listed as Private (shared with me), not as Self
    private = friend.client.list_documents(Filters=[owner("Private")])["DocumentIdentifiers"]
    assert len(private) == 1
    assert private[0]["Name"] in (name, arn) or private[0]["Name"].endswith("/" + name)
    assert private[0]["Owner"] == "111111111111"
    assert friend.client.list_documents(Filters=[owner("Self")])["DocumentIdentifiers"] == []

    # the friend cannot change or re-share the owner's document
    expect_error("InvalidDocument", friend.client.delete_document, Name=name)
    expect_error("InvalidDocument", friend.client.describe_document_permission, Name=name,
                 PermissionType="Share")
    expect_error("InvalidResourceId", friend.client.add_tags_to_resource, ResourceType="Document",
                 ResourceId=name, Tags=[{"Key": "a", "Value": "b"}])
    assert ssm.get_document(Name=name)["Content"] == content

    # others still cannot see it
    expect_error("InvalidDocument", stranger.client.get_document, Name=arn)
    assert stranger.client.list_documents(Filters=[owner("Private")])["DocumentIdentifiers"] == []

    # unshare
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToRemove=[friend.account_id])
    assert ssm.describe_document_permission(Name=name, PermissionType="Share")["AccountIds"] == []
    expect_error("InvalidDocument", friend.client.get_document, Name=arn)
    assert friend.client.list_documents(Filters=[owner("Private")])["DocumentIdentifiers"] == []


def test_shared_document_follows_default_version(ssm, new_account):
    friend = new_account()
    name = unique_name("sharever")
    arn = f"arn:aws:ssm:us-east-1:111111111111:document/{name}"
    ssm.create_document(Content=command_doc("v1"), Name=name)
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=[friend.account_id])
    ssm.update_document(Name=name, Content=command_doc("v2"), DocumentVersion="$LATEST")
    assert friend.client.get_document(Name=arn)["Content"] == command_doc("v1")
    ssm.update_document_default_version(Name=name, DocumentVersion="2")
    assert friend.client.get_document(Name=arn)["Content"] == command_doc("v2")


def test_share_with_all(ssm, new_account):
    name = unique_name("public")
    arn = f"arn:aws:ssm:us-east-1:111111111111:document/{name}"
    ssm.create_document(Content=command_doc("public"), Name=name)
    ssm.modify_document_permission(Name=name, PermissionType="Share", AccountIdsToAdd=["All"])
    perms = ssm.describe_document_permission(Name=name, PermissionType="Share")
    assert [a.lower() for a in perms["AccountIds"]] == ["all"]
    anyone = new_account()
    assert anyone.client.get_document(Name=arn)["Content"] == command_doc("public")
    ssm.modify_document_permission(Name=name, PermissionType="Share", AccountIdsToRemove=["All"])
    expect_error("InvalidDocument", anyone.client.get_document, Name=arn)


def test_shared_document_must_be_unshared_before_delete(ssm, new_account):
    friend = new_account()
    name = unique_name("sharedel")
    arn = f"arn:aws:ssm:us-east-1:111111111111:document/{name}"
    ssm.create_document(Content=command_doc("bye"), Name=name)
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=[friend.account_id])
    assert friend.client.get_document(Name=arn)["Content"] == command_doc("bye")
    # like AWS: a shared document can't be deleted until it's no longer shared
    expect_error("InvalidDocumentOperation", ssm.delete_document, Name=name)
    assert friend.client.get_document(Name=arn)["Content"] == command_doc("bye")
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToRemove=[friend.account_id])
    ssm.delete_document(Name=name)
    expect_error("InvalidDocument", friend.client.get_document, Name=arn)
    assert friend.client.list_documents(Filters=[owner("Private")])["DocumentIdentifiers"] == []


def test_second_account_owns_its_documents(ssm, second_account):
    c = second_account.client
    name = unique_name("second")
    d = c.create_document(Content=command_doc(), Name=name)["DocumentDescription"]
    assert d["Owner"] == second_account.account_id
    assert name in names(c.list_documents(Filters=[owner("Self"), {"Key": "Name", "Values": [name]}]))
    assert names(ssm.list_documents(Filters=[{"Key": "Name", "Values": [name]}])) == []
    # Amazon documents are visible to every account
    assert c.describe_document(Name="AWS-RunShellScript")["Document"]["Owner"] == "Amazon"


def test_shared_document_versions_by_arn(ssm, new_account):
    friend = new_account()
    name = unique_name("sharelist")
    arn = f"arn:aws:ssm:us-east-1:111111111111:document/{name}"
    ssm.create_document(Content=command_doc("1"), Name=name)
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=[friend.account_id])
    assert friend.client.get_document(Name=arn, DocumentVersion="2")["Content"] == command_doc("2")
    versions = friend.client.list_document_versions(Name=arn)["DocumentVersions"]
    assert [v["DocumentVersion"] for v in versions] == ["1", "2"]


def test_deleted_key_is_refused_within_seconds(server):
    acct = server.create_account()
    assert acct.client.list_documents(MaxResults=1)["DocumentIdentifiers"] is not None
    server.delete_key(acct.access_key_id)
    deadline = time.monotonic() + 15
    while True:
        try:
            acct.client.list_documents(MaxResults=1)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "UnrecognizedClientException", e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            break
        assert time.monotonic() < deadline, "a deleted key was still accepted after 15 s"
        time.sleep(0.25)
    # other keys are unaffected
    assert server.client().list_documents(MaxResults=1)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_describe_document_permission_pages(ssm):
    name = unique_name("permpage")
    ssm.create_document(Content=command_doc(), Name=name)
    accounts = ["333333333333", "222222222222", "444444444444"]
    ssm.modify_document_permission(Name=name, PermissionType="Share", AccountIdsToAdd=accounts)
    # adding an account twice is harmless
    ssm.modify_document_permission(Name=name, PermissionType="Share",
                                   AccountIdsToAdd=["222222222222"])
    everything = ssm.describe_document_permission(Name=name, PermissionType="Share")
    assert sorted(everything["AccountIds"]) == sorted(accounts)
    for info in everything["AccountSharingInfoList"]:
        assert info["SharedDocumentVersion"] == "$DEFAULT"

    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ssm.describe_document_permission(Name=name, PermissionType="Share", MaxResults=1, **kw)
        assert len(page["AccountIds"]) <= 1
        seen.extend(page["AccountIds"])
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(accounts)
