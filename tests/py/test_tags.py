"""AddTagsToResource / RemoveTagsFromResource / ListTagsForResource on documents."""

from __future__ import annotations

import pytest

from ssmd_helpers import command_doc, expect_error, unique_name


def tags_of(ssm, name):
    return {t["Key"]: t["Value"] for t in
            ssm.list_tags_for_resource(ResourceType="Document", ResourceId=name)["TagList"]}


def test_tag_lifecycle(ssm):
    name = unique_name("tags")
    d = ssm.create_document(Content=command_doc(), Name=name,
                            Tags=[{"Key": "team", "Value": "blue"}])["DocumentDescription"]
    assert d["Tags"] == [{"Key": "team", "Value": "blue"}]
    assert tags_of(ssm, name) == {"team": "blue"}

    ssm.add_tags_to_resource(ResourceType="Document", ResourceId=name,
                             Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "red"}])
    assert tags_of(ssm, name) == {"team": "red", "env": "prod"}
    desc_tags = ssm.describe_document(Name=name)["Document"]["Tags"]
    assert {t["Key"]: t["Value"] for t in desc_tags} == {"team": "red", "env": "prod"}
    listed = ssm.list_documents(Filters=[{"Key": "Name", "Values": [name]}])["DocumentIdentifiers"]
    assert {t["Key"]: t["Value"] for t in listed[0]["Tags"]} == {"team": "red", "env": "prod"}

    ssm.remove_tags_from_resource(ResourceType="Document", ResourceId=name, TagKeys=["team"])
    assert tags_of(ssm, name) == {"env": "prod"}
    # removing a key that is not there is fine
    ssm.remove_tags_from_resource(ResourceType="Document", ResourceId=name, TagKeys=["nope"])
    assert tags_of(ssm, name) == {"env": "prod"}
    ssm.remove_tags_from_resource(ResourceType="Document", ResourceId=name, TagKeys=["env"])
    assert tags_of(ssm, name) == {}


def test_tags_survive_updates(ssm):
    name = unique_name("tagupd")
    ssm.create_document(Content=command_doc("1"), Name=name, Tags=[{"Key": "a", "Value": "1"}])
    ssm.update_document(Name=name, Content=command_doc("2"), DocumentVersion="$LATEST")
    assert tags_of(ssm, name) == {"a": "1"}


def test_empty_tag_value(ssm):
    name = unique_name("tagempty")
    ssm.create_document(Content=command_doc(), Name=name)
    ssm.add_tags_to_resource(ResourceType="Document", ResourceId=name,
                             Tags=[{"Key": "flag", "Value": ""}])
    assert tags_of(ssm, name) == {"flag": ""}


def test_at_most_50_tags(ssm):
    name = unique_name("tagmax")
    ssm.create_document(Content=command_doc(), Name=name, Tags=[{"Key": "k0", "Value": "v"}])
    ssm.add_tags_to_resource(ResourceType="Document", ResourceId=name,
                             Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(1, 50)])
    assert len(tags_of(ssm, name)) == 50
    # overwriting existing keys is still fine at the limit
    ssm.add_tags_to_resource(ResourceType="Document", ResourceId=name,
                             Tags=[{"Key": "k0", "Value": "changed"}])
    assert tags_of(ssm, name)["k0"] == "changed"
    expect_error("TooManyTagsError", ssm.add_tags_to_resource, ResourceType="Document",
                 ResourceId=name, Tags=[{"Key": "one-too-many", "Value": "v"}])
    assert len(tags_of(ssm, name)) == 50
    assert "one-too-many" not in tags_of(ssm, name)


def test_create_with_too_many_tags(ssm):
    expect_error("TooManyTagsError", ssm.create_document, Content=command_doc(),
                 Name=unique_name("tagcreate"),
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])


def test_create_refused_for_too_many_tags_leaves_nothing_behind(ssm):
    name = unique_name("tagatomic")
    expect_error("TooManyTagsError", ssm.create_document, Content=command_doc(), Name=name,
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    expect_error("InvalidDocument", ssm.get_document, Name=name)


def test_reserved_tag_key_prefix(ssm):
    name = unique_name("tagaws")
    ssm.create_document(Content=command_doc(), Name=name)
    expect_error("ValidationException", ssm.add_tags_to_resource, ResourceType="Document",
                 ResourceId=name, Tags=[{"Key": "aws:owner", "Value": "x"}])
    assert tags_of(ssm, name) == {}


def test_create_refused_for_reserved_tag_key_leaves_nothing_behind(ssm):
    name = unique_name("tagawsc")
    expect_error("ValidationException", ssm.create_document, Content=command_doc(), Name=name,
                 Tags=[{"Key": "aws:owner", "Value": "x"}])
    expect_error("InvalidDocument", ssm.get_document, Name=name)


@pytest.mark.parametrize("resource_type", ["PatchBaseline", "OpsItem"])
def test_other_resource_types(ssm, resource_type):
    expect_error("InvalidResourceType", ssm.list_tags_for_resource, ResourceType=resource_type,
                 ResourceId="whatever")
    expect_error("InvalidResourceType", ssm.add_tags_to_resource, ResourceType=resource_type,
                 ResourceId="whatever", Tags=[{"Key": "a", "Value": "b"}])
    expect_error("InvalidResourceType", ssm.remove_tags_from_resource,
                 ResourceType=resource_type, ResourceId="whatever", TagKeys=["a"])


def test_unknown_document(ssm):
    missing = unique_name("tagmissing")
    expect_error("InvalidResourceId", ssm.list_tags_for_resource, ResourceType="Document",
                 ResourceId=missing)
    expect_error("InvalidResourceId", ssm.add_tags_to_resource, ResourceType="Document",
                 ResourceId=missing, Tags=[{"Key": "a", "Value": "b"}])
    expect_error("InvalidResourceId", ssm.remove_tags_from_resource, ResourceType="Document",
                 ResourceId=missing, TagKeys=["a"])


def test_other_accounts_cannot_see_or_change_tags(ssm, new_account):
    other = new_account()
    name = unique_name("tagother")
    ssm.create_document(Content=command_doc(), Name=name, Tags=[{"Key": "a", "Value": "1"}])
    # another account sees neither the document nor its tags
    expect_error("InvalidResourceId", other.client.list_tags_for_resource,
                 ResourceType="Document", ResourceId=name)
    expect_error("InvalidResourceId", other.client.remove_tags_from_resource,
                 ResourceType="Document", ResourceId=name, TagKeys=["a"])
    assert tags_of(ssm, name) == {"a": "1"}


def test_unknown_managed_instance(ssm):
    expect_error("InvalidResourceId", ssm.list_tags_for_resource, ResourceType="ManagedInstance",
                 ResourceId="mi-0123456789abcdef0")
    expect_error("InvalidResourceId", ssm.add_tags_to_resource, ResourceType="ManagedInstance",
                 ResourceId="mi-0123456789abcdef0", Tags=[{"Key": "a", "Value": "b"}])
