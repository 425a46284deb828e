"""CreateActivation / DescribeActivations / DeleteActivation: hybrid activations."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from ssmd_helpers import expect_error

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CODE = re.compile(r"^[A-Za-z0-9+/]{20}$")


def now() -> datetime:
    return datetime.now(timezone.utc)


def by_id(ssm, activation_id):
    found = ssm.describe_activations(
        Filters=[{"FilterKey": "ActivationIds", "FilterValues": [activation_id]}])["ActivationList"]
    assert len(found) <= 1
    return found[0] if found else None


def ids(activations):
    return [a["ActivationId"] for a in activations]


def test_create_describe_delete(ssm):
    expires = (now() + timedelta(days=3)).replace(microsecond=0)
    created = ssm.create_activation(
        Description="rack 7", DefaultInstanceName="rack7-node", IamRole="SSMServiceRole",
        RegistrationLimit=10, ExpirationDate=expires,
        Tags=[{"Key": "site", "Value": "lab"}, {"Key": "env", "Value": "dev"}],
        RegistrationMetadata=[{"Key": "owner", "Value": "ops"}])
    aid, code = created["ActivationId"], created["ActivationCode"]
    assert UUID.match(aid), aid
    assert CODE.match(code), code

    a = by_id(ssm, aid)
    assert a["ActivationId"] == aid
    assert a["Description"] == "rack 7"
    assert a["DefaultInstanceName"] == "rack7-node"
    assert a["IamRole"] == "SSMServiceRole"
    assert a["RegistrationLimit"] == 10
    assert a["RegistrationsCount"] == 0
    assert a["ExpirationDate"] == expires
    assert a["Expired"] is False
    assert abs((a["CreatedDate"] - now()).total_seconds()) < 60
    assert {t["Key"]: t["Value"] for t in a["Tags"]} == {"site": "lab", "env": "dev"}
    assert "ActivationCode" not in a

    assert ssm.delete_activation(ActivationId=aid)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert by_id(ssm, aid) is None
    expect_error("InvalidActivationId", ssm.delete_activation, ActivationId=aid)


def test_defaults(ssm):
    aid = ssm.create_activation(IamRole="SSMServiceRole")["ActivationId"]
    a = by_id(ssm, aid)
    assert a["RegistrationLimit"] == 1
    assert a["RegistrationsCount"] == 0
    assert a["Expired"] is False
    lifetime = (a["ExpirationDate"] - a["CreatedDate"]).total_seconds()
    assert abs(lifetime - 24 * 3600) < 1, lifetime
    # Members never given are absent, as AWS leaves them out.
    for member in ("Description", "DefaultInstanceName", "Tags"):
        assert member not in a, a


def test_codes_and_ids_are_fresh(ssm):
    made = [ssm.create_activation(IamRole="r") for _ in range(5)]
    assert len({m["ActivationId"] for m in made}) == 5
    assert len({m["ActivationCode"] for m in made}) == 5


def test_expiration_beyond_30_days_is_allowed(ssm):
    # AWS allows at most 30 days; ssmd accepts any future date (docs/compat.md).
    expires = (now() + timedelta(days=365)).replace(microsecond=0)
    aid = ssm.create_activation(IamRole="r", ExpirationDate=expires)["ActivationId"]
    assert by_id(ssm, aid)["ExpirationDate"] == expires


def test_expired_is_computed_when_read(ssm):
    expires = now() + timedelta(seconds=1.5)
    aid = ssm.create_activation(IamRole="r", ExpirationDate=expires)["ActivationId"]
    assert by_id(ssm, aid)["Expired"] is False
    time.sleep(max(0.0, (expires - now()).total_seconds()) + 0.3)
    assert by_id(ssm, aid)["Expired"] is True
    # An expired activation can still be deleted.
    ssm.delete_activation(ActivationId=aid)
    assert by_id(ssm, aid) is None


def test_filters(new_account):
    acct = new_account()
    ssm = acct.client
    a = ssm.create_activation(IamRole="RoleA", DefaultInstanceName="web")["ActivationId"]
    b = ssm.create_activation(IamRole="RoleB", DefaultInstanceName="web")["ActivationId"]
    c = ssm.create_activation(IamRole="RoleA", DefaultInstanceName="db")["ActivationId"]
    d = ssm.create_activation(IamRole="RoleA")["ActivationId"]

    def find(*filters):
        return ids(ssm.describe_activations(
            Filters=[{"FilterKey": k, "FilterValues": v} for k, v in filters])["ActivationList"])

    assert find() == [a, b, c, d]
    assert find(("IamRole", ["RoleA"])) == [a, c, d]
    assert find(("DefaultInstanceName", ["web"])) == [a, b]
    assert find(("DefaultInstanceName", ["web", "db"])) == [a, b, c]
    assert find(("IamRole", ["RoleA"]), ("DefaultInstanceName", ["web"])) == [a]
    assert find(("ActivationIds", [b, d, str(uuid.uuid4())])) == [b, d]
    assert find(("ActivationIds", [a]), ("IamRole", ["RoleB"])) == []
    assert find(("IamRole", ["rolea"])) == []  # exact, case-sensitive

    expect_error("InvalidFilter", ssm.describe_activations,
                 Filters=[{"FilterKey": "IamRole", "FilterValues": []}])
    expect_error("ValidationException", ssm.describe_activations,
                 Filters=[{"FilterKey": "Nope", "FilterValues": ["x"]}])


def test_pagination(new_account):
    ssm = new_account().client
    made = [ssm.create_activation(IamRole="r", Description=f"n{i}")["ActivationId"] for i in range(7)]

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"MaxResults": 3}
        if token:
            kwargs["NextToken"] = token
        page = ssm.describe_activations(**kwargs)
        pages += 1
        assert len(page["ActivationList"]) <= 3
        seen += ids(page["ActivationList"])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert seen == made  # creation order, nothing twice, nothing missed

    # An exact multiple of the page size ends without a dangling token.
    first = ssm.describe_activations(MaxResults=7)
    assert ids(first["ActivationList"]) == made and "NextToken" not in first

    # Pages stay stable while activations are deleted and created between them.
    page1 = ssm.describe_activations(MaxResults=3)
    ssm.delete_activation(ActivationId=made[3])
    late = ssm.create_activation(IamRole="r")["ActivationId"]
    page2 = ssm.describe_activations(MaxResults=10, NextToken=page1["NextToken"])
    assert ids(page2["ActivationList"]) == made[4:] + [late]

    paged = [a["ActivationId"] for p in ssm.get_paginator("describe_activations").paginate(
        PaginationConfig={"PageSize": 2}) for a in p["ActivationList"]]
    assert paged == made[:3] + made[4:] + [late]

    expect_error("InvalidNextToken", ssm.describe_activations, NextToken="garbage")
    expect_error("ValidationException", ssm.describe_activations, MaxResults=51)


def test_accounts_are_isolated(ssm, new_account):
    other = new_account()
    mine = ssm.create_activation(IamRole="r", Description="mine")["ActivationId"]
    theirs = other.client.create_activation(IamRole="r")["ActivationId"]
    assert by_id(other.client, mine) is None
    assert ids(other.client.describe_activations()["ActivationList"]) == [theirs]
    expect_error("InvalidActivationId", other.client.delete_activation, ActivationId=mine)
    assert by_id(ssm, mine)["Description"] == "mine"
    # A token issued to one account is worthless to another.
    for _ in range(2):
        other.client.create_activation(IamRole="r")
    token = other.client.describe_activations(MaxResults=1)["NextToken"]
    expect_error("InvalidNextToken", ssm.describe_activations, NextToken=token)


def test_tags(ssm):
    tags = [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(50)]
    aid = ssm.create_activation(IamRole="r", Tags=tags)["ActivationId"]
    assert sorted(by_id(ssm, aid)["Tags"], key=lambda t: int(t["Key"][1:])) == tags
    expect_error("TooManyTagsError", ssm.create_activation, IamRole="r",
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    expect_error("ValidationException", ssm.create_activation, IamRole="r",
                 Tags=[{"Key": "aws:reserved", "Value": "v"}])
    # Activations are not a ResourceTypeForTagging: their tags are set at creation only.
    expect_error("ValidationException", ssm.add_tags_to_resource, ResourceType="Activation",
                 ResourceId=aid, Tags=[{"Key": "a", "Value": "b"}])
    expect_error("ValidationException", ssm.list_tags_for_resource, ResourceType="Activation",
                 ResourceId=aid)


def test_errors(ssm, server, new_account):
    expect_error("InvalidActivationId", ssm.delete_activation, ActivationId=str(uuid.uuid4()))
    expect_error("ValidationException", ssm.delete_activation, ActivationId="not-a-uuid")
    raw = server.client(parameter_validation=False)  # boto3 itself refuses values under a minimum
    expect_error("ValidationException", raw.create_activation, IamRole="r", RegistrationLimit=0)
    expect_error("ValidationException", ssm.create_activation, IamRole="r", RegistrationLimit=1001)
    err = expect_error("ValidationException", ssm.create_activation, IamRole="r",
                       ExpirationDate=now() - timedelta(minutes=5))
    assert "ExpirationDate" in err["Message"]
    expect_error("ValidationException", ssm.create_activation, IamRole="r" * 65)
    expect_error("ValidationException", ssm.create_activation, IamRole="r",
                 DefaultInstanceName="no!bang")
    # A refused create leaves nothing behind.
    fresh = new_account().client
    expect_error("TooManyTagsError", fresh.create_activation, IamRole="r",
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    expect_error("ValidationException", fresh.create_activation, IamRole="r",
                 ExpirationDate=now() - timedelta(seconds=1))
    assert fresh.describe_activations()["ActivationList"] == []


def test_code_is_stored_only_as_its_hash(ssm, server):
    made = ssm.create_activation(IamRole="r")
    aid, code = made["ActivationId"], made["ActivationCode"]
    query = f"SELECT code_sha256 FROM activations WHERE id = '{aid}'"
    if server.backend == "sqlite":
        db = sqlite3.connect(f"file:{server.data_dir / 'ssmd.db'}?mode=ro", uri=True)
        try:
            stored = db.execute(query).fetchone()[0]
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
    else:
        out = subprocess.run(["psql", server.database_url, "-At", "-c", query],
                             capture_output=True, text=True, timeout=30, check=True)
        stored = out.stdout.strip()
        dump = subprocess.run(["psql", server.database_url, "-At", "-c",
                               "SELECT row_to_json(a) FROM activations a"],
                              capture_output=True, text=True, timeout=30, check=True).stdout
    assert stored == hashlib.sha256(code.encode()).hexdigest()
    assert code not in dump
