"""ListDocuments filters, legacy DocumentFilterList, MaxResults/NextToken and boto3 paginators."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from ssmd_helpers import (
    AUTOMATION_YAML,
    CALENDAR,
    command_doc,
    unique_name,
)

AMAZON_DOCS = {"AWS-RunShellScript", "AWS-Sleep", "AWS-RequestApproval", "AWS-RunPythonScript"}


def names(resp) -> list[str]:
    return [d["Name"] for d in resp["DocumentIdentifiers"]]


def list_all(client, **kwargs) -> list[dict]:
    out = []
    for page in client.get_paginator("list_documents").paginate(**kwargs):
        out.extend(page["DocumentIdentifiers"])
    return out


def owner(value):
    return {"Key": "Owner", "Values": [value]}


@pytest.fixture
def populated(new_account):
    """A fresh account with a known mix of documents."""
    acct = new_account()
    c = acct.client
    tag = unique_name("t")
    docs = {
        "cmd-alpha": dict(Content=command_doc("a"), DocumentType="Command",
                          Tags=[{"Key": "team", "Value": "blue"}]),
        "cmd-beta": dict(Content=command_doc("b"), DocumentType="Command",
                         TargetType="/AWS::EC2::Instance",
                         Tags=[{"Key": "team", "Value": "red"}]),
        "auto-gamma": dict(Content=AUTOMATION_YAML, DocumentType="Automation",
                           DocumentFormat="YAML", Tags=[{"Key": "team", "Value": "blue"},
                                                       {"Key": tag, "Value": "x"}]),
        "cal-delta": dict(Content=CALENDAR, DocumentType="ChangeCalendar",
                          DocumentFormat="TEXT"),
    }
    for name, kw in docs.items():
        c.create_document(Name=name, **kw)
    return acct, tag


def test_owner_self_lists_exactly_own_documents(populated):
    acct, _ = populated
    got = names(acct.client.list_documents(Filters=[owner("Self")]))
    assert sorted(got) == ["auto-gamma", "cal-delta", "cmd-alpha", "cmd-beta"]
    for d in acct.client.list_documents(Filters=[owner("Self")])["DocumentIdentifiers"]:
        assert d["Owner"] == acct.account_id
        assert isinstance(d["CreatedDate"], dt.datetime)
        assert d["DocumentVersion"] == "1"


def test_owner_amazon_all_and_default(populated):
    acct, _ = populated
    c = acct.client
    assert set(names(c.list_documents(Filters=[owner("Amazon")]))) == AMAZON_DOCS
    for d in c.list_documents(Filters=[owner("Amazon")])["DocumentIdentifiers"]:
        assert d["Owner"] == "Amazon"
    mine = {"auto-gamma", "cal-delta", "cmd-alpha", "cmd-beta"}
    assert {d["Name"] for d in list_all(c, Filters=[owner("All")])} == AMAZON_DOCS | mine
    assert {d["Name"] for d in list_all(c)} == AMAZON_DOCS | mine
    assert names(c.list_documents(Filters=[owner("Private")])) == []


def test_filter_by_name_prefix(populated):
    acct, _ = populated
    c = acct.client
    assert sorted(names(c.list_documents(Filters=[{"Key": "Name", "Values": ["cmd-"]}]))) == [
        "cmd-alpha", "cmd-beta"]
    assert names(c.list_documents(Filters=[{"Key": "Name", "Values": ["AWS-Run"]}, owner("Amazon")])) == [
        "AWS-RunPythonScript", "AWS-RunShellScript"]
    assert names(c.list_documents(Filters=[{"Key": "Name", "Values": ["zzz-nothing"]}])) == []


def test_filter_by_document_type(populated):
    acct, _ = populated
    c = acct.client
    got = names(c.list_documents(Filters=[owner("Self"), {"Key": "DocumentType", "Values": ["Command"]}]))
    assert sorted(got) == ["cmd-alpha", "cmd-beta"]
    got = names(c.list_documents(Filters=[{"Key": "DocumentType", "Values": ["Automation"]}]))
    assert set(got) == {"auto-gamma", "AWS-Sleep", "AWS-RequestApproval", "AWS-RunPythonScript"}
    got = names(c.list_documents(Filters=[{"Key": "DocumentType", "Values": ["ChangeCalendar"]}]))
    assert got == ["cal-delta"]
    # several values are OR-ed
    got = names(c.list_documents(Filters=[owner("Self"), {"Key": "DocumentType",
                                                          "Values": ["ChangeCalendar", "Automation"]}]))
    assert sorted(got) == ["auto-gamma", "cal-delta"]


def test_filter_by_platform_type(populated):
    acct, _ = populated
    c = acct.client
    got = names(c.list_documents(Filters=[owner("Self"), {"Key": "PlatformTypes", "Values": ["Windows"]}]))
    # Command docs using aws:runShellScript run on Linux/MacOS only
    assert "cmd-alpha" not in got and "cmd-beta" not in got
    assert "auto-gamma" in got
    got = names(c.list_documents(Filters=[owner("Self"), {"Key": "PlatformTypes", "Values": ["Linux"]}]))
    assert {"cmd-alpha", "cmd-beta", "auto-gamma"} <= set(got)


def test_filter_by_target_type(populated):
    acct, _ = populated
    got = names(acct.client.list_documents(
        Filters=[{"Key": "TargetType", "Values": ["/AWS::EC2::Instance"]}]))
    assert got == ["cmd-beta"]


def test_filter_by_search_keyword(populated):
    acct, _ = populated
    c = acct.client
    assert names(c.list_documents(Filters=[owner("Self"), {"Key": "SearchKeyword", "Values": ["gamma"]}])) == [
        "auto-gamma"]
    assert "AWS-RunPythonScript" in names(c.list_documents(
        Filters=[{"Key": "SearchKeyword", "Values": ["Python"]}]))


def test_filter_by_tag(populated):
    acct, tag = populated
    c = acct.client
    assert sorted(names(c.list_documents(Filters=[{"Key": "tag:team", "Values": ["blue"]}]))) == [
        "auto-gamma", "cmd-alpha"]
    assert sorted(names(c.list_documents(Filters=[{"Key": "tag:team", "Values": ["red", "blue"]}]))) == [
        "auto-gamma", "cmd-alpha", "cmd-beta"]
    assert names(c.list_documents(Filters=[{"Key": "tag:team", "Values": ["green"]}])) == []
    assert names(c.list_documents(Filters=[{"Key": f"tag:{tag}", "Values": ["x"]}])) == ["auto-gamma"]
    # filters are AND-ed
    assert names(c.list_documents(Filters=[{"Key": "tag:team", "Values": ["blue"]},
                                           {"Key": "DocumentType", "Values": ["Command"]}])) == ["cmd-alpha"]


def test_legacy_document_filter_list(populated):
    acct, _ = populated
    c = acct.client
    got = names(c.list_documents(DocumentFilterList=[{"key": "Owner", "value": "Self"}]))
    assert sorted(got) == ["auto-gamma", "cal-delta", "cmd-alpha", "cmd-beta"]
    got = names(c.list_documents(DocumentFilterList=[{"key": "Name", "value": "cmd-alpha"}]))
    assert got == ["cmd-alpha"]
    got = names(c.list_documents(DocumentFilterList=[{"key": "DocumentType", "value": "Automation"},
                                                     {"key": "Owner", "value": "Self"}]))
    assert got == ["auto-gamma"]
    got = names(c.list_documents(DocumentFilterList=[{"key": "Owner", "value": "Amazon"}]))
    assert set(got) == AMAZON_DOCS


def test_max_results_and_next_token(new_account):
    acct = new_account()
    c = acct.client
    created = sorted(unique_name("pg") for _ in range(5))
    for n in created:
        c.create_document(Content=command_doc(n), Name=n)
    first = c.list_documents(Filters=[owner("Self")], MaxResults=2)
    assert len(first["DocumentIdentifiers"]) == 2
    assert first["NextToken"]
    second = c.list_documents(Filters=[owner("Self")], MaxResults=2, NextToken=first["NextToken"])
    third = c.list_documents(Filters=[owner("Self")], MaxResults=2, NextToken=second["NextToken"])
    assert "NextToken" not in third or not third["NextToken"]
    seen = names(first) + names(second) + names(third)
    assert sorted(seen) == created
    # an exactly-full last page gives no token either
    full = c.list_documents(Filters=[owner("Self")], MaxResults=50)
    assert sorted(names(full)) == created and not full.get("NextToken")


@pytest.mark.parametrize("page_size", [1, 2, 3, 50])
def test_list_documents_paginator_visits_each_once(new_account, page_size):
    acct = new_account()
    c = acct.client
    created = {unique_name("pag") for _ in range(7)}
    for n in created:
        c.create_document(Content=command_doc(n), Name=n)

    pages = list(c.get_paginator("list_documents").paginate(
        Filters=[owner("Self")], PaginationConfig={"PageSize": page_size}))
    seen = [d["Name"] for p in pages for d in p["DocumentIdentifiers"]]
    assert Counter(seen) == Counter(created)
    assert all(len(p["DocumentIdentifiers"]) <= page_size for p in pages)
    assert len(pages) >= -(-7 // page_size)

    # unfiltered: Amazon documents too, each once
    everything = [d["Name"] for p in c.get_paginator("list_documents").paginate(
        PaginationConfig={"PageSize": page_size}) for d in p["DocumentIdentifiers"]]
    assert Counter(everything) == Counter(created | AMAZON_DOCS)


def test_list_documents_paginator_max_items(new_account):
    acct = new_account()
    c = acct.client
    created = sorted(unique_name("mi") for _ in range(5))
    for n in created:
        c.create_document(Content=command_doc(n), Name=n)
    pag = c.get_paginator("list_documents")
    first = pag.paginate(Filters=[owner("Self")],
                         PaginationConfig={"PageSize": 2, "MaxItems": 3}).build_full_result()
    assert len(first["DocumentIdentifiers"]) == 3
    rest = pag.paginate(Filters=[owner("Self")], PaginationConfig={
        "PageSize": 2, "StartingToken": first["NextToken"]}).build_full_result()
    assert sorted(names(first) + names(rest)) == created


def test_name_prefix_paginator_in_shared_account(ssm):
    prefix = unique_name("pfx")
    created = {f"{prefix}-{i:02d}" for i in range(6)}
    for n in created:
        ssm.create_document(Content=command_doc(n), Name=n)
    seen = [d["Name"] for d in list_all(
        ssm, Filters=[{"Key": "Name", "Values": [prefix]}], PaginationConfig={"PageSize": 4})]
    assert Counter(seen) == Counter(created)


@pytest.mark.parametrize("page_size", [1, 2, 4])
def test_list_document_versions_paginator(ssm, page_size):
    name = unique_name("vpag")
    ssm.create_document(Content=command_doc("v1"), Name=name)
    for i in range(2, 7):
        ssm.update_document(Name=name, Content=command_doc(f"v{i}"), DocumentVersion="$LATEST")
    pages = list(ssm.get_paginator("list_document_versions").paginate(
        Name=name, PaginationConfig={"PageSize": page_size}))
    seen = [v["DocumentVersion"] for p in pages for v in p["DocumentVersions"]]
    assert seen == [str(i) for i in range(1, 7)]
    assert all(len(p["DocumentVersions"]) <= page_size for p in pages)
    assert len(pages) == -(-6 // page_size)


def test_paginator_with_deleted_item_between_pages(new_account):
    """Deleting an already-returned document mid-pagination must not skip or repeat others."""
    acct = new_account()
    c = acct.client
    created = sorted(unique_name("del") for _ in range(6))
    for n in created:
        c.create_document(Content=command_doc(n), Name=n)
    first = c.list_documents(Filters=[owner("Self")], MaxResults=3)
    c.delete_document(Name=names(first)[0])
    rest = []
    token = first["NextToken"]
    while token:
        page = c.list_documents(Filters=[owner("Self")], MaxResults=3, NextToken=token)
        rest.extend(names(page))
        token = page.get("NextToken")
    assert sorted(names(first) + rest) == created

