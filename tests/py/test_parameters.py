"""Parameter Store through boto3 against the real binary, on both backends: every parameter
operation, its filters, pagination and errors; SecureString encryption at rest (the database
holds no plaintext, reads without decryption give the ciphertext form); labels and selectors;
tags on parameters.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import datetime

import pytest

from ssmd_helpers import REGION, expect_error


def root() -> str:
    """A hierarchy no other test uses."""
    return f"/t{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- put / get


def test_put_get_overwrite_and_history(ssm):
    r = root()
    name = f"{r}/app/url"
    out = ssm.put_parameter(Name=name, Value="http://a", Type="String", Description="the url")
    assert out["Version"] == 1 and out["Tier"] == "Standard"
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert p["Name"] == name and p["Value"] == "http://a" and p["Type"] == "String" and p["Version"] == 1
    assert p["DataType"] == "text" and isinstance(p["LastModifiedDate"], datetime)
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:{p['ARN'].split(':')[4]}:parameter{name}"
    # By ARN too.
    assert ssm.get_parameter(Name=p["ARN"])["Parameter"]["Value"] == "http://a"

    err = expect_error("ParameterAlreadyExists", ssm.put_parameter, Name=name, Value="x", Type="String")
    assert "overwrite" in err["Message"]
    # Type may be left out of an overwrite; the description is kept.
    assert ssm.put_parameter(Name=name, Value="http://b", Overwrite=True)["Version"] == 2
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert p["Value"] == "http://b" and p["Version"] == 2

    hist = ssm.get_parameter_history(Name=name)["Parameters"]
    assert [h["Version"] for h in hist] == [1, 2]
    assert [h["Value"] for h in hist] == ["http://a", "http://b"]
    assert hist[0]["Description"] == "the url" and hist[1]["Description"] == "the url"
    assert hist[0]["LastModifiedUser"].startswith("arn:aws:iam::")
    assert hist[0]["Labels"] == [] and hist[0]["Tier"] == "Standard"

    # Selectors: name:version.
    got = ssm.get_parameter(Name=f"{name}:1")["Parameter"]
    assert got["Value"] == "http://a" and got["Version"] == 1 and got["Selector"] == ":1"
    expect_error("ParameterVersionNotFound", ssm.get_parameter, Name=f"{name}:9")


def test_missing_parameters_and_the_public_namespace(ssm):
    r = root()
    expect_error("ParameterNotFound", ssm.get_parameter, Name=f"{r}/nope")
    expect_error("ParameterNotFound", ssm.get_parameter,
                 Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    expect_error("ParameterNotFound", ssm.delete_parameter, Name=f"{r}/nope")
    expect_error("ParameterNotFound", ssm.get_parameter_history, Name=f"{r}/nope")
    ssm.put_parameter(Name=f"{r}/a", Value="1", Type="String")
    ssm.put_parameter(Name=f"{r}/b", Value="2", Type="StringList")
    out = ssm.get_parameters(Names=[f"{r}/a", f"{r}/missing", f"{r}/b", f"{r}/a:7"])
    assert sorted(p["Name"] for p in out["Parameters"]) == [f"{r}/a", f"{r}/b"]
    assert sorted(out["InvalidParameters"]) == [f"{r}/a:7", f"{r}/missing"]


def test_name_rules_and_hierarchy_depth(ssm):
    r = root()
    for bad in ["aws-thing", "/ssm/x", f"{r}//x", "no/leading/slash", f"{r}/sp ace"]:
        expect_error("ValidationException", ssm.put_parameter, Name=bad, Value="v", Type="String")
    deep = r + "".join(f"/l{i}" for i in range(15))  # 16 levels
    err = expect_error("HierarchyLevelLimitExceededException", ssm.put_parameter, Name=deep, Value="v",
                       Type="String")
    assert "15" in err["Message"]
    ok = r + "".join(f"/l{i}" for i in range(14))  # 15 levels
    assert ssm.put_parameter(Name=ok, Value="v", Type="String")["Version"] == 1
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/nt", Value="v")  # no Type


def test_allowed_pattern_data_type_and_tiers(ssm):
    r = root()
    expect_error("InvalidAllowedPatternException", ssm.put_parameter, Name=f"{r}/p", Value="1",
                 Type="String", AllowedPattern="([")
    expect_error("ParameterPatternMismatchException", ssm.put_parameter, Name=f"{r}/p", Value="abc",
                 Type="String", AllowedPattern=r"^\d+$")
    ssm.put_parameter(Name=f"{r}/p", Value="123", Type="String", AllowedPattern=r"^\d+$")
    # The stored pattern still applies to an overwrite that does not repeat it.
    expect_error("ParameterPatternMismatchException", ssm.put_parameter, Name=f"{r}/p", Value="x",
                 Overwrite=True)

    ssm.put_parameter(Name=f"{r}/ami", Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image")
    assert ssm.get_parameter(Name=f"{r}/ami")["Parameter"]["DataType"] == "aws:ec2:image"
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/ami2", Value="not-an-ami",
                 Type="String", DataType="aws:ec2:image")
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/dt", Value="v", Type="String",
                 DataType="aws:nope")

    big = "x" * 5000
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/big", Value=big, Type="String")
    assert ssm.put_parameter(Name=f"{r}/big", Value=big, Type="String",
                             Tier="Intelligent-Tiering")["Tier"] == "Advanced"
    assert ssm.put_parameter(Name=f"{r}/small", Value="s", Type="String",
                             Tier="Intelligent-Tiering")["Tier"] == "Standard"
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/big", Value="s", Overwrite=True,
                 Tier="Standard")


def test_delete_and_delete_many(ssm):
    r = root()
    for n in "abc":
        ssm.put_parameter(Name=f"{r}/{n}", Value=n, Type="String")
    ssm.delete_parameter(Name=f"{r}/a")
    expect_error("ParameterNotFound", ssm.get_parameter, Name=f"{r}/a")
    out = ssm.delete_parameters(Names=[f"{r}/b", f"{r}/zz", f"{r}/c"])
    assert sorted(out["DeletedParameters"]) == [f"{r}/b", f"{r}/c"]
    assert out["InvalidParameters"] == [f"{r}/zz"]
    # A deleted name starts again at version 1.
    assert ssm.put_parameter(Name=f"{r}/a", Value="again", Type="String")["Version"] == 1


# --------------------------------------------------------------------------- SecureString


def test_secure_string_is_sealed_at_rest(ssm, server):
    r = root()
    secret = f"pw-{uuid.uuid4().hex}"
    name = f"{r}/db/password"
    ssm.put_parameter(Name=name, Value=secret, Type="SecureString")
    plain = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert plain["Value"] == secret and plain["Type"] == "SecureString"
    sealed = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    assert sealed != secret and secret not in sealed
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    assert meta[0]["KeyId"] == "alias/aws/ssm"
    ssm.put_parameter(Name=name, Value=secret + "2", Overwrite=True, KeyId="alias/custom")
    hist = ssm.get_parameter_history(Name=name, WithDecryption=True)["Parameters"]
    assert [h["Value"] for h in hist] == [secret, secret + "2"]
    assert [h["KeyId"] for h in hist] == ["alias/aws/ssm", "alias/custom"]
    assert all(secret not in h["Value"] for h in ssm.get_parameter_history(Name=name)["Parameters"])
    by_path = ssm.get_parameters_by_path(Path=f"{r}/db", WithDecryption=True)["Parameters"]
    assert by_path[0]["Value"] == secret + "2"
    many = ssm.get_parameters(Names=[name], WithDecryption=False)["Parameters"]
    assert secret not in many[0]["Value"]
    expect_error("ValidationException", ssm.put_parameter, Name=f"{r}/k", Value="v", Type="String",
                 KeyId="alias/x")

    # Neither the database nor the log holds the plaintext.
    dump = database_dump(server)
    assert name.encode() in dump  # the dump is real
    assert secret.encode() not in dump
    assert secret not in server.log_path.read_text(errors="replace")
    key_file = server.data_dir / "parameter-master.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600


def database_dump(server) -> bytes:
    if server.database_url:
        if shutil.which("pg_dump") is None:
            pytest.skip("pg_dump is needed to inspect the PostgreSQL database")
        return subprocess.run(["pg_dump", "--data-only", server.database_url], capture_output=True,
                              check=True, timeout=60).stdout
    out = b""
    for f in server.data_dir.iterdir():
        if f.name.startswith("ssmd.db"):
            out += f.read_bytes()
    return out


# --------------------------------------------------------------------------- by path / describe


def test_get_parameters_by_path_recursion_filters_and_pages(ssm):
    r = root()
    names = [f"{r}/a", f"{r}/b", f"{r}/x/c", f"{r}/x/y/d"]
    for n in names:
        ssm.put_parameter(Name=n, Value=n, Type="String")
    ssm.put_parameter(Name=f"{r}/s", Value="secret", Type="SecureString")
    one = ssm.get_parameters_by_path(Path=r)["Parameters"]
    assert sorted(p["Name"] for p in one) == [f"{r}/a", f"{r}/b", f"{r}/s"]
    assert sorted(p["Name"] for p in ssm.get_parameters_by_path(Path=f"{r}/")["Parameters"]) == \
        sorted(p["Name"] for p in one)
    rec = ssm.get_parameters_by_path(Path=r, Recursive=True)["Parameters"]
    assert sorted(p["Name"] for p in rec) == sorted(names + [f"{r}/s"])
    only = ssm.get_parameters_by_path(Path=r, Recursive=True,
                                      ParameterFilters=[{"Key": "Type", "Values": ["SecureString"]}])
    assert [p["Name"] for p in only["Parameters"]] == [f"{r}/s"]
    assert only["Parameters"][0]["Value"] != "secret"

    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ssm.get_parameters_by_path(Path=r, Recursive=True, MaxResults=2, **kw)
        assert len(page["Parameters"]) <= 2
        seen += [p["Name"] for p in page["Parameters"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(names + [f"{r}/s"]) and len(seen) == len(set(seen))

    expect_error("InvalidFilterKey", ssm.get_parameters_by_path, Path=r,
                 ParameterFilters=[{"Key": "Name", "Values": ["x"]}])
    expect_error("InvalidFilterOption", ssm.get_parameters_by_path, Path=r,
                 ParameterFilters=[{"Key": "Type", "Option": "BeginsWith", "Values": ["String"]}])
    expect_error("InvalidFilterValue", ssm.get_parameters_by_path, Path=r,
                 ParameterFilters=[{"Key": "Type", "Values": ["Number"]}])
    expect_error("InvalidNextToken", ssm.get_parameters_by_path, Path=r, NextToken="forged")
    expect_error("ValidationException", ssm.get_parameters_by_path, Path="relative")


def test_describe_parameters_filters_and_pages(ssm):
    r = root()
    ssm.put_parameter(Name=f"{r}/web/one", Value="1", Type="String", Description="d1",
                      Tags=[{"Key": "team", "Value": "web"}])
    ssm.put_parameter(Name=f"{r}/web/two", Value="2", Type="StringList")
    ssm.put_parameter(Name=f"{r}/db/pw", Value="3", Type="SecureString", Tier="Advanced")

    def names(**kw):
        out, token = [], None
        while True:
            extra = {"NextToken": token} if token else {}
            page = ssm.describe_parameters(MaxResults=1, **kw, **extra)
            out += [p["Name"] for p in page["Parameters"]]
            token = page.get("NextToken")
            if not token:
                return sorted(out)

    begins = [{"Key": "Name", "Option": "BeginsWith", "Values": [r]}]
    assert names(ParameterFilters=begins) == [f"{r}/db/pw", f"{r}/web/one", f"{r}/web/two"]
    assert names(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [f"{r}/web"]}]) == \
        [f"{r}/web/one", f"{r}/web/two"]
    assert names(ParameterFilters=[{"Key": "Path", "Values": [r]}]) == []
    assert names(ParameterFilters=begins + [{"Key": "Type", "Values": ["SecureString"]}]) == [f"{r}/db/pw"]
    assert names(ParameterFilters=begins + [{"Key": "Tier", "Values": ["Advanced"]}]) == [f"{r}/db/pw"]
    assert names(ParameterFilters=begins + [{"Key": "tag:team", "Values": ["web"]}]) == [f"{r}/web/one"]
    assert names(ParameterFilters=begins + [{"Key": "tag:team"}]) == [f"{r}/web/one"]
    assert names(ParameterFilters=begins + [{"Key": "tag:team", "Values": ["db"]}]) == []
    assert names(ParameterFilters=[{"Key": "Name", "Option": "Contains", "Values": [r[2:] + "/web/t"]}]) == \
        [f"{r}/web/two"]
    assert names(ParameterFilters=[{"Key": "Name", "Values": [f"{r}/web/one"]}]) == [f"{r}/web/one"]
    assert names(Filters=[{"Key": "Name", "Values": [f"{r}/web"]}]) == [f"{r}/web/one", f"{r}/web/two"]

    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [f"{r}/web/one"]}])["Parameters"][0]
    assert meta["Description"] == "d1" and meta["Version"] == 1 and meta["Tier"] == "Standard"
    assert meta["DataType"] == "text" and meta["ARN"].endswith(f":parameter{r}/web/one")
    assert "Value" not in meta

    expect_error("InvalidFilterKey", ssm.describe_parameters, ParameterFilters=[{"Key": "Label", "Values": ["x"]}])
    expect_error("InvalidFilterOption", ssm.describe_parameters,
                 ParameterFilters=[{"Key": "Path", "Option": "Equals", "Values": [r]}])
    expect_error("InvalidFilterValue", ssm.describe_parameters,
                 ParameterFilters=[{"Key": "Path", "Values": ["nope"]}])
    expect_error("ValidationException", ssm.describe_parameters, Filters=[{"Key": "Name", "Values": ["a"]}],
                 ParameterFilters=begins)
    expect_error("InvalidNextToken", ssm.describe_parameters, NextToken="forged")


def test_history_pages(ssm):
    name = f"{root()}/h"
    ssm.put_parameter(Name=name, Value="0", Type="String")
    for i in range(1, 5):
        ssm.put_parameter(Name=name, Value=str(i), Overwrite=True)
    versions, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = ssm.get_parameter_history(Name=name, MaxResults=2, **extra)
        versions += [h["Version"] for h in page["Parameters"]]
        token = page.get("NextToken")
        if not token:
            break
    assert versions == [1, 2, 3, 4, 5]


def test_the_hundred_and_first_version_drops_the_oldest_unless_labelled(ssm):
    name = f"{root()}/v"
    ssm.put_parameter(Name=name, Value="1", Type="String")
    for i in range(2, 101):
        ssm.put_parameter(Name=name, Value=str(i), Overwrite=True)
    assert ssm.put_parameter(Name=name, Value="101", Overwrite=True)["Version"] == 101
    expect_error("ParameterVersionNotFound", ssm.get_parameter, Name=f"{name}:1")
    ssm.label_parameter_version(Name=name, ParameterVersion=2, Labels=["keep"])
    expect_error("ParameterMaxVersionLimitExceeded", ssm.put_parameter, Name=name, Value="x", Overwrite=True)
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 101


# --------------------------------------------------------------------------- labels, tags


def test_labels_and_label_selectors(ssm):
    name = f"{root()}/l"
    ssm.put_parameter(Name=name, Value="one", Type="String")
    ssm.put_parameter(Name=name, Value="two", Type="String", Overwrite=True)
    out = ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["prod", "1bad", "awsx", "ok.v-1"])
    assert out["ParameterVersion"] == 1 and sorted(out["InvalidLabels"]) == ["1bad", "awsx"]
    got = ssm.get_parameter(Name=f"{name}:prod")["Parameter"]
    assert got["Value"] == "one" and got["Selector"] == ":prod" and got["Version"] == 1
    # Without a version, the latest; a label moves.
    assert ssm.label_parameter_version(Name=name, Labels=["prod"])["ParameterVersion"] == 2
    assert ssm.get_parameter(Name=f"{name}:prod")["Parameter"]["Value"] == "two"
    hist = ssm.get_parameter_history(Name=name)["Parameters"]
    assert hist[0]["Labels"] == ["ok.v-1"] and hist[1]["Labels"] == ["prod"]
    expect_error("ParameterVersionNotFound", ssm.get_parameter, Name=f"{name}:nolabel")
    expect_error("ParameterVersionNotFound", ssm.label_parameter_version, Name=name, ParameterVersion=5,
                 Labels=["x"])
    expect_error("ParameterNotFound", ssm.label_parameter_version, Name=name + "zz", Labels=["x"])
    many = [f"l{i}" for i in range(10)]
    expect_error("ParameterVersionLabelLimitExceeded", ssm.label_parameter_version, Name=name,
                 ParameterVersion=2, Labels=many)
    out = ssm.unlabel_parameter_version(Name=name, ParameterVersion=2, Labels=["prod", "ok.v-1"])
    assert out["RemovedLabels"] == ["prod"] and out["InvalidLabels"] == ["ok.v-1"]
    expect_error("ParameterVersionNotFound", ssm.unlabel_parameter_version, Name=name, ParameterVersion=9,
                 Labels=["x"])
    # Label filter of GetParametersByPath.
    path = name.rsplit("/", 1)[0]
    got = ssm.get_parameters_by_path(Path=path, ParameterFilters=[{"Key": "Label", "Values": ["ok.v-1"]}])
    assert [p["Name"] for p in got["Parameters"]] == [name]


def test_tags_on_parameters(ssm):
    r = root()
    name = f"{r}/t"
    ssm.put_parameter(Name=name, Value="v", Type="String", Tags=[{"Key": "env", "Value": "prod"}])
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == [
        {"Key": "env", "Value": "prod"}]
    ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=[{"Key": "team", "Value": "a"}])
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=name, TagKeys=["env"])
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == [
        {"Key": "team", "Value": "a"}]
    expect_error("InvalidResourceId", ssm.list_tags_for_resource, ResourceType="Parameter",
                 ResourceId=f"{r}/none")
    expect_error("ValidationException", ssm.put_parameter, Name=name, Value="w", Overwrite=True,
                 Tags=[{"Key": "k", "Value": "v"}])
    ssm.delete_parameter(Name=name)
    ssm.put_parameter(Name=name, Value="v", Type="String")
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == []


def test_accounts_do_not_see_each_others_parameters(ssm, second_account):
    r = root()
    ssm.put_parameter(Name=f"{r}/mine", Value="v", Type="String")
    other = second_account.client
    expect_error("ParameterNotFound", other.get_parameter, Name=f"{r}/mine")
    assert other.get_parameters_by_path(Path=r)["Parameters"] == []


# --------------------------------------------------------------------------- references


def test_run_command_resolves_references_when_sent(new_account, server):
    from fake_node import FakeNode

    acct = new_account()
    ssm = acct.client
    act = ssm.create_activation(IamRole="SSMServiceRole", RegistrationLimit=1)
    node = FakeNode.register(server.endpoint, REGION, act["ActivationId"], act["ActivationCode"], ping=True,
                             computer_name="pnode.local")
    r = root()
    ssm.put_parameter(Name=f"{r}/greeting", Value="hello", Type="String")
    ssm.put_parameter(Name=f"{r}/greeting", Value="hello2", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name=f"{r}/greeting", ParameterVersion=1, Labels=["first"])
    secret = f"s-{uuid.uuid4().hex}"
    ssm.put_parameter(Name=f"{r}/pw", Value=secret, Type="SecureString")
    sent = [f"echo {{{{ssm:{r}/greeting}}}} {{{{ ssm:{r}/greeting:1 }}}} {{{{ssm:{r}/greeting:first}}}}",
            f"login {{{{ssm-secure:{r}/pw}}}}"]
    c = ssm.send_command(InstanceIds=[node.instance_id], DocumentName="AWS-RunShellScript",
                         Parameters={"commands": sent})["Command"]
    # The command keeps what was sent; the node gets the values (the secret stays a reference,
    # for the node's agent to read).
    assert c["Parameters"]["commands"] == sent
    msgs = node.messages()
    assert len(msgs) == 1
    import json
    payload = json.loads(msgs[0]["Payload"])
    assert payload["Parameters"]["commands"] == ["echo hello2 hello hello", f"login {{{{ssm-secure:{r}/pw}}}}"]
    assert secret not in msgs[0]["Payload"]

    for bad in [f"{{{{ssm:{r}/missing}}}}", f"{{{{ssm:{r}/greeting:7}}}}", f"{{{{ssm:{r}/pw}}}}",
                f"{{{{ssm-secure:{r}/greeting}}}}"]:
        err = expect_error("InvalidParameters", ssm.send_command, InstanceIds=[node.instance_id],
                           DocumentName="AWS-RunShellScript", Parameters={"commands": [bad]})
        assert secret not in err["Message"]


RUNBOOK = """
schemaVersion: '0.3'
parameters:
  Greeting:
    type: String
    default: '{{ssm:NAME}}'
  Other:
    type: String
mainSteps:
  - name: wait
    action: aws:sleep
    inputs:
      Duration: PT0S
"""


def test_automation_resolves_references_in_values_and_defaults(ssm):
    r = root()
    ssm.put_parameter(Name=f"{r}/g", Value="one", Type="String")
    ssm.put_parameter(Name=f"{r}/g", Value="two", Type="String", Overwrite=True)
    ssm.put_parameter(Name=f"{r}/pw", Value="secret", Type="SecureString")
    doc = f"rb-{uuid.uuid4().hex[:12]}"
    ssm.create_document(Name=doc, DocumentType="Automation", DocumentFormat="YAML",
                        Content=RUNBOOK.replace("NAME", f"{r}/g"))
    eid = ssm.start_automation_execution(DocumentName=doc, Parameters={"Other": [f"{{{{ssm:{r}/g:1}}}}"]})[
        "AutomationExecutionId"]
    import time
    deadline = time.monotonic() + 20
    while True:
        x = ssm.get_automation_execution(AutomationExecutionId=eid)["AutomationExecution"]
        if x["AutomationExecutionStatus"] in ("Success", "Failed", "Cancelled", "TimedOut"):
            break
        assert time.monotonic() < deadline, x
        time.sleep(0.2)
    assert x["AutomationExecutionStatus"] == "Success"
    assert x["Parameters"]["Greeting"] == ["two"] and x["Parameters"]["Other"] == ["one"]
    for bad in [f"{{{{ssm:{r}/none}}}}", f"{{{{ssm-secure:{r}/pw}}}}", f"{{{{ssm:{r}/pw}}}}"]:
        expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                     DocumentName=doc, Parameters={"Other": [bad]})
    ssm.delete_parameter(Name=f"{r}/g")
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=doc, Parameters={"Other": ["x"]})


# --------------------------------------------------------------------------- durability


def test_kill_9_during_a_burst_loses_no_acknowledged_version(server, tmp_path):
    import threading
    import time

    from conftest import Server

    srv = Server(server.backend, tmp_path)
    srv.start()
    try:
        ssm = srv.client()
        name = f"{root()}/burst"
        secret_name = f"{root()}/burst-secret"
        ssm.put_parameter(Name=name, Value="0", Type="String")
        ssm.put_parameter(Name=secret_name, Value="s0", Type="SecureString")
        acked: list[int] = []
        secret_acked: list[int] = []

        def burst():
            i = 0
            while True:
                i += 1
                try:
                    v = ssm.put_parameter(Name=name, Value=str(i), Overwrite=True)["Version"]
                    acked.append(v)
                    if i % 5 == 0:
                        secret_acked.append(ssm.put_parameter(Name=secret_name, Value=f"s{i}",
                                                              Overwrite=True)["Version"])
                except Exception:
                    return

        t = threading.Thread(target=burst, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while len(acked) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.proc.kill()  # SIGKILL: no shutdown of any kind
        srv.proc.wait(timeout=10)
        t.join(timeout=30)
        assert len(acked) >= 30, acked
        srv.backend = "restarted"  # same database and data directory, no new database
        srv.start()
        ssm = srv.client()
        history = []
        token = None
        while True:
            extra = {"NextToken": token} if token else {}
            page = ssm.get_parameter_history(Name=name, **extra)
            history += [h["Version"] for h in page["Parameters"]]
            token = page.get("NextToken")
            if not token:
                break
        kept = set(history)
        # 100 versions are kept: every acknowledged one among the newest 100 is there.
        newest = max(kept)
        assert newest >= max(acked)
        assert all(v in kept for v in acked if v > newest - 100)
        latest = ssm.get_parameter(Name=secret_name, WithDecryption=True)["Parameter"]
        assert latest["Version"] >= max(secret_acked, default=1)
        assert latest["Value"].startswith("s")  # the master key survived the restart
    finally:
        srv.stop()


# --------------------------------------------------------------------------- policies


def test_policies_are_checked_shown_and_expiration_deletes(ssm):
    import json
    import time
    from datetime import timedelta, timezone

    r = root()
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    later = "2035-01-01T00:00:00.000Z"
    exp = lambda ts: {"Type": "Expiration", "Version": "1.0", "Attributes": {"Timestamp": ts}}
    note = {"Type": "NoChangeNotification", "Version": "1.0", "Attributes": {"After": "20", "Unit": "Days"}}

    def put(name, policies, **kw):
        kw.setdefault("Type", "String")
        return ssm.put_parameter(Name=name, Value="v", Policies=json.dumps(policies), **kw)

    def refused(code, name, policies, **kw):
        kw.setdefault("Type", "String")
        expect_error(code, ssm.put_parameter, Name=name, Value="v", Policies=json.dumps(policies), **kw)

    refused("InvalidPolicyTypeException", f"{r}/x", [{"Type": "Nope", "Version": "1.0"}],
                 Tier="Advanced")
    refused("InvalidPolicyAttributeException", f"{r}/x", [exp("tomorrow")], Tier="Advanced")
    refused("InvalidPolicyAttributeException", f"{r}/x", [exp("2001-01-01T00:00:00Z")],
                 Tier="Advanced")
    refused("IncompatiblePolicyException", f"{r}/x", [exp(later), exp(later)], Tier="Advanced")
    refused("PoliciesLimitExceededException", f"{r}/x", [note] * 11, Tier="Advanced")
    refused("ValidationException", f"{r}/x", [exp(later)], Tier="Standard")
    refused("ValidationException", f"{r}/x", [exp(later)])

    assert put(f"{r}/kept", [exp(later), note], Tier="Intelligent-Tiering")["Tier"] == "Advanced"
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [f"{r}/kept"]}])["Parameters"][0]
    assert sorted(p["PolicyType"] for p in meta["Policies"]) == ["Expiration", "NoChangeNotification"]
    assert all(p["PolicyStatus"] == "Pending" and json.loads(p["PolicyText"]) for p in meta["Policies"])

    put(f"{r}/gone", [exp(soon)], Tier="Advanced")
    assert ssm.get_parameter(Name=f"{r}/gone")["Parameter"]["Value"] == "v"
    deadline = time.monotonic() + 15
    while True:
        try:
            ssm.get_parameter(Name=f"{r}/gone")
        except ssm.exceptions.ParameterNotFound:
            break
        assert time.monotonic() < deadline, "the parameter did not expire"
        time.sleep(0.3)
    assert ssm.get_parameter(Name=f"{r}/kept")["Parameter"]["Value"] == "v"


def test_window_tasks_resolve_references_when_they_run(server, new_account):
    import json
    import time
    from datetime import timedelta, timezone

    from fake_node import FakeNode, final, in_progress

    acct = new_account()
    ssm = acct.client
    act = ssm.create_activation(IamRole="SSMServiceRole", RegistrationLimit=1)
    node = FakeNode.register(server.endpoint, REGION, act["ActivationId"], act["ActivationCode"], ping=True,
                             computer_name="pw-node.local")
    r = root()
    ssm.put_parameter(Name=f"{r}/greeting", Value="at-registration", Type="String")
    ssm.put_parameter(Name=f"{r}/duration", Value="PT0S", Type="String")
    at = (datetime.now(timezone.utc) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S")
    wid = ssm.create_maintenance_window(Name=f"pw-{uuid.uuid4().hex[:8]}", Schedule=f"at({at})", Duration=1,
                                        Cutoff=0, AllowUnassociatedTargets=False)["WindowId"]
    tid = ssm.register_target_with_maintenance_window(
        WindowId=wid, ResourceType="INSTANCE", Targets=[{"Key": "InstanceIds", "Values": [node.instance_id]}],
    )["WindowTargetId"]
    ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript", Priority=1, MaxConcurrency="1",
        MaxErrors="0", Targets=[{"Key": "WindowTargetIds", "Values": [tid]}],
        TaskInvocationParameters={"RunCommand": {"Parameters": {"commands": [f"echo {{{{ssm:{r}/greeting}}}}"]}}},
    )
    ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="AUTOMATION", TaskArn="AWS-Sleep", Priority=2,
        TaskInvocationParameters={"Automation": {"Parameters": {"Duration": [f"{{{{ssm:{r}/duration}}}}"]}}},
    )
    # Changed after registration: the task reads the value as it is when it runs.
    ssm.put_parameter(Name=f"{r}/greeting", Value="at-run", Type="String", Overwrite=True)

    deadline = time.monotonic() + 30
    msgs = []
    while not msgs:
        assert time.monotonic() < deadline, "the window's command never arrived"
        msgs = node.messages(timeout=20)
    payload = json.loads(msgs[0]["Payload"])
    assert payload["Parameters"]["commands"] == ["echo at-run"], payload
    node.reply(msgs[0]["MessageId"], in_progress())
    node.ack(msgs[0]["MessageId"])
    node.reply(msgs[0]["MessageId"], final("Success", 0, "at-run\n"))
    deadline = time.monotonic() + 30
    while True:
        execs = ssm.describe_maintenance_window_executions(WindowId=wid)["WindowExecutions"]
        if execs and execs[0]["Status"] not in ("PENDING", "IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, execs
        time.sleep(0.3)
    assert execs[0]["Status"] == "SUCCESS", execs
    autos = ssm.describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": ["AWS-Sleep"]}])["AutomationExecutionMetadataList"]
    assert autos, "the automation task did not start"
