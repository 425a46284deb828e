"""Automation executions through boto3: StartAutomationExecution, GetAutomationExecution,
DescribeAutomationExecutions, DescribeAutomationStepExecutions, SendAutomationSignal,
StopAutomationExecution and tags on resource type Automation, against the real binary.

Every runbook is written out in the test (YAML text, or a dict sent as JSON). Steps that do real
work run Python (aws:executeScript) or call ssmd itself (Service ssm). Waits poll every 0.1 s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import textwrap
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from ssmd_helpers import (
    AUTOMATION_TERMINAL,
    REGION,
    ROOT_ACCOUNT,
    expect_error,
    unique_name,
    wait_for_status,
)

ROOT_ARN = f"arn:aws:iam::{ROOT_ACCOUNT}:root"
PY = "python3.11"
NOT_RUN = "No output available yet because the step is not successfully executed"


# --------------------------------------------------------------------------- helpers


def runbook(ssm, content, prefix: str = "rb", name: str | None = None) -> str:
    """Creates an Automation document from YAML text, JSON text or a dict; returns its name."""
    name = name or unique_name(prefix)
    if isinstance(content, dict):
        content = json.dumps(content)
    fmt = "JSON" if content.lstrip().startswith("{") else "YAML"
    ssm.create_document(Content=content, Name=name, DocumentType="Automation", DocumentFormat=fmt)
    return name


def doc(steps, **extra) -> dict:
    """A schemaVersion 0.3 runbook dict with these mainSteps and top-level members."""
    return {"schemaVersion": "0.3", **extra, "mainSteps": steps}


def script_step(name, script, payload=None, outputs=None, runtime=PY, **props) -> dict:
    step = {
        "name": name,
        "action": "aws:executeScript",
        "inputs": {"Runtime": runtime, "Handler": "handler", "Script": textwrap.dedent(script)},
        **props,
    }
    if payload is not None:
        step["inputs"]["InputPayload"] = payload
    if outputs is not None:
        step["outputs"] = outputs
    return step


def sleep_step(name, duration="PT0S", **props) -> dict:
    return {"name": name, "action": "aws:sleep", "inputs": {"Duration": duration}, **props}


def fail_step(name, message="boom", **props) -> dict:
    return script_step(name, f"def handler(events, context):\n    raise RuntimeError({message!r})\n", **props)


def start(ssm, name, **kw) -> str:
    return ssm.start_automation_execution(DocumentName=name, **kw)["AutomationExecutionId"]


def run(ssm, content, statuses=AUTOMATION_TERMINAL, timeout=10.0, prefix="rb", **kw):
    """Creates a runbook, starts it and waits for one of ``statuses``: (name, id, execution)."""
    name = runbook(ssm, content, prefix)
    xid = start(ssm, name, **kw)
    return name, xid, wait_for_status(ssm, xid, statuses, timeout)


def get(ssm, xid) -> dict:
    return ssm.get_automation_execution(AutomationExecutionId=xid)["AutomationExecution"]


def by_name(ex_or_steps) -> dict:
    """Step executions by StepName (the last record of a name wins)."""
    steps = ex_or_steps["StepExecutions"] if isinstance(ex_or_steps, dict) else ex_or_steps
    return {s["StepName"]: s for s in steps}


def statuses_of(ex) -> dict:
    return {name: s["StepStatus"] for name, s in by_name(ex).items()}


def all_step_executions(ssm, xid, **kw) -> list:
    out, token = [], None
    while True:
        args = dict(AutomationExecutionId=xid, **kw)
        if token:
            args["NextToken"] = token
        page = ssm.describe_automation_step_executions(**args)
        out += page["StepExecutions"]
        token = page.get("NextToken")
        if not token:
            return out


def wait_step(ssm, xid, step, statuses, timeout=10.0) -> dict:
    """Polls until step ``step`` has one of ``statuses``; returns the execution."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        ex = get(ssm, xid)
        st = by_name(ex).get(step, {}).get("StepStatus")
        if st in wanted:
            return ex
        assert time.monotonic() < deadline, (
            f"step {step} is {st}, not {sorted(wanted)}; execution {ex['AutomationExecutionStatus']}: "
            f"{statuses_of(ex)} {ex.get('FailureMessage')!r}")
        time.sleep(0.1)


def children_of(ssm, parent_id) -> list:
    out, token = [], None
    while True:
        args = dict(Filters=[{"Key": "ParentExecutionId", "Values": [parent_id]}], MaxResults=50)
        if token:
            args["NextToken"] = token
        page = ssm.describe_automation_executions(**args)
        out += page["AutomationExecutionMetadataList"]
        token = page.get("NextToken")
        if not token:
            return out


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def maplist(values) -> list:
    """A MapList output in wire form (one JSON array, or one JSON object per value)."""
    if len(values) == 1 and values[0].lstrip().startswith("["):
        return json.loads(values[0])
    return [json.loads(v) for v in values]


ECHO_SCRIPT = """\
def handler(events, context):
    return events
"""


# --------------------------------------------------------------------------- 1. basics


def test_sleep_branch_api_runbook_succeeds_with_full_report(ssm):
    name = unique_name("basic")
    content = textwrap.dedent(f"""\
        schemaVersion: '0.3'
        description: sleeps, branches and describes itself
        parameters:
          Target:
            type: String
            default: {name}
          Count:
            type: Integer
            default: 3
          Note:
            type: String
            default: ''
          Names:
            type: StringList
            default: [x, 'y']
        mainSteps:
          - name: nap
            action: aws:sleep
            inputs:
              Duration: PT0S
          - name: choose
            action: aws:branch
            inputs:
              Choices:
                - NextStep: describe
                  Variable: '{{{{ Count }}}}'
                  NumericGreater: 2
              Default: never
          - name: never
            action: aws:sleep
            inputs:
              Duration: PT0S
            isEnd: true
          - name: describe
            action: aws:executeAwsApi
            inputs:
              Service: ssm
              Api: DescribeDocument
              Name: '{{{{ Target }}}}'
            outputs:
              - Name: DocType
                Selector: $.Document.DocumentType
                Type: String
              - Name: DocStatus
                Selector: $.Document.Status
                Type: String
            isEnd: true
        outputs:
          - describe.DocType
          - describe.DocStatus
        """)
    runbook(ssm, content, name=name)
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    xid = start(ssm, name)
    assert len(xid) == 36 and uuid.UUID(xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["AutomationExecutionId"] == xid
    assert ex["DocumentName"] == name
    assert ex["DocumentVersion"] == "1"
    assert ex["Mode"] == "Auto"
    assert ex["ExecutedBy"] == ROOT_ARN
    assert "ParentAutomationExecutionId" not in ex
    assert ex["ExecutionStartTime"] >= before
    assert ex["ExecutionEndTime"] >= ex["ExecutionStartTime"]
    assert ex["Parameters"] == {"Target": [name], "Count": ["3"], "Note": [""], "Names": ["x", "y"]}
    assert ex["Outputs"] == {"describe.DocType": ["Automation"], "describe.DocStatus": ["Active"]}
    assert not ex.get("FailureMessage")

    steps = ex["StepExecutions"]
    assert [s["StepName"] for s in steps] == ["nap", "choose", "never", "describe"]
    assert statuses_of(ex) == {"nap": "Success", "choose": "Success", "never": "Pending",
                               "describe": "Success"}
    s = by_name(ex)
    assert [x["Action"] for x in steps] == ["aws:sleep", "aws:branch", "aws:sleep", "aws:executeAwsApi"]
    d = s["describe"]
    assert {k: json.loads(v) for k, v in d["Inputs"].items()} == {
        "Service": "ssm", "Api": "DescribeDocument", "Name": name}
    assert d["Outputs"] == {"DocType": ["Automation"], "DocStatus": ["Active"]}
    assert d["IsCritical"] is True
    assert d["OnFailure"] == "Abort"
    assert d["MaxAttempts"] == 1
    assert d["IsEnd"] is True
    assert d["ExecutionStartTime"] <= d["ExecutionEndTime"]
    assert s["nap"]["ExecutionEndTime"] <= d["ExecutionStartTime"]
    assert json.loads(s["nap"]["Inputs"]["Duration"]) == "PT0S"
    assert len({x["StepExecutionId"] for x in steps}) == 4
    assert "ExecutionStartTime" not in s["never"]
    assert "FailureMessage" not in d
    # Get and Describe agree.
    meta = ssm.describe_automation_executions(
        Filters=[{"Key": "ExecutionId", "Values": [xid]}])["AutomationExecutionMetadataList"]
    assert len(meta) == 1
    m = meta[0]
    assert m["AutomationExecutionStatus"] == "Success"
    assert m["DocumentName"] == name
    assert m["ExecutedBy"] == ROOT_ARN
    assert m["Mode"] == "Auto"
    assert m["Outputs"] == ex["Outputs"]
    assert m["AutomationType"] == "Local"
    assert m["ExecutionStartTime"] == ex["ExecutionStartTime"]


def test_start_by_arn_latest_and_numbered_versions(ssm):
    name = runbook(ssm, doc([sleep_step("one")]))
    ssm.update_document(Name=name, DocumentVersion="$LATEST",
                        Content=json.dumps(doc([sleep_step("one"), sleep_step("two")])))
    ex = wait_for_status(ssm, start(ssm, name), AUTOMATION_TERMINAL)
    assert ex["DocumentVersion"] == "1"  # $DEFAULT
    assert [s["StepName"] for s in ex["StepExecutions"]] == ["one"]
    ex = wait_for_status(ssm, start(ssm, name, DocumentVersion="$LATEST"), AUTOMATION_TERMINAL)
    assert ex["DocumentVersion"] == "2"
    assert [s["StepName"] for s in ex["StepExecutions"]] == ["one", "two"]
    ex = wait_for_status(ssm, start(ssm, name, DocumentVersion="2"), AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    arn = f"arn:aws:ssm:{REGION}:{ROOT_ACCOUNT}:document/{name}"
    ex = wait_for_status(ssm, start(ssm, arn), AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"


# --------------------------------------------------------------------------- 2. parameters


TYPED_PARAMS = {
    "S": {"type": "String"},
    "L": {"type": "StringList"},
    "I": {"type": "Integer"},
    "B": {"type": "Boolean"},
    "M": {"type": "StringMap"},
    "ML": {"type": "MapList"},
}


def test_every_parameter_type_is_coerced(ssm):
    script = """\
        def handler(events, context):
            return {k: [type(v).__name__, v] for k, v in events.items()}
        """
    payload = {k: "{{ %s }}" % k for k in TYPED_PARAMS}
    _, xid, ex = run(ssm, doc([script_step("echo", script, payload)], parameters=TYPED_PARAMS),
                     Parameters={
                         "S": ["text"],
                         "L": ["a", "b"],
                         "I": ["42"],
                         "B": ["true"],
                         "M": ['{"k": "v"}'],
                         "ML": ['[{"a": "1"}, {"b": "2"}]'],
                     })
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    got = json.loads(by_name(ex)["echo"]["Outputs"]["Payload"][0])
    assert got == {
        "S": ["str", "text"],
        "L": ["list", ["a", "b"]],
        "I": ["int", 42],
        "B": ["bool", True],
        "M": ["dict", {"k": "v"}],
        "ML": ["list", [{"a": "1"}, {"b": "2"}]],
    }
    p = ex["Parameters"]
    assert p["S"] == ["text"] and p["L"] == ["a", "b"] and p["I"] == ["42"] and p["B"] == ["true"]
    assert json.loads(p["M"][0]) == {"k": "v"}
    assert maplist(p["ML"]) == [{"a": "1"}, {"b": "2"}]


@pytest.mark.parametrize("params", [
    {"I": ["4.5"]},
    {"I": ["abc"]},
    {"B": ["yes"]},
    {"M": ["not json"]},
    {"I": ["1", "2"]},
])
def test_bad_typed_values_are_refused(ssm, params):
    name = runbook(ssm, doc([sleep_step("s")], parameters={
        "I": {"type": "Integer", "default": 1},
        "B": {"type": "Boolean", "default": False},
        "M": {"type": "StringMap", "default": {}},
    }))
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, Parameters=params)


def test_missing_required_and_unknown_parameters(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={
        "Needed": {"type": "String"},
        "Optional": {"type": "String", "default": "d"},
    }))
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name)
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, Parameters={"Optional": ["x"]})
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, Parameters={"Needed": ["x"], "Bogus": ["y"]})
    # Parameter names are case-sensitive.
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, Parameters={"needed": ["x"]})
    ex = wait_for_status(ssm, start(ssm, name, Parameters={"Needed": ["x"]}), AUTOMATION_TERMINAL)
    assert ex["Parameters"] == {"Needed": ["x"], "Optional": ["d"]}


def test_allowed_values_and_pattern(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={
        "Color": {"type": "String", "allowedValues": ["red", "green"], "default": "red"},
        "Id": {"type": "String", "allowedPattern": "^i-[0-9a-f]{4}$", "default": "i-0000"},
        "Ids": {"type": "StringList", "allowedPattern": "^i-[0-9a-f]{4}$", "default": []},
    }))
    for bad in ({"Color": ["blue"]}, {"Id": ["i-xyz0"]}, {"Id": ["x-i-0000"]},
                {"Ids": ["i-0001", "nope"]}):
        expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                     DocumentName=name, Parameters=bad)
    xid = start(ssm, name, Parameters={"Color": ["green"], "Id": ["i-abcd"], "Ids": ["i-0001"]})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert ex["Parameters"]["Color"] == ["green"]


def test_parameter_length_limits(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={
        "L": {"type": "StringList", "minItems": 1, "maxItems": 2, "default": ["a"]},
        "S": {"type": "String", "minChars": 2, "maxChars": 4, "default": "ab"},
    }))
    for bad in ({"L": []}, {"L": ["a", "b", "c"]}, {"S": ["a"]}, {"S": ["abcde"]}):
        expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                     DocumentName=name, Parameters=bad)
    xid = start(ssm, name, Parameters={"L": ["a", "b"], "S": ["abcd"]})
    assert wait_for_status(ssm, xid, AUTOMATION_TERMINAL)["AutomationExecutionStatus"] == "Success"


def test_amazon_owned_runbooks(ssm):
    ex = wait_for_status(ssm, start(ssm, "AWS-Sleep", Parameters={"Duration": ["PT0S"]}), AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert ex["DocumentName"] == "AWS-Sleep"
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName="AWS-Sleep", Parameters={"Duration": ["soon"]})

    xid = start(ssm, "AWS-RunPythonScript", Parameters={"InputPayload": ['{"a": "1"}']})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert json.loads(ex["Outputs"]["run.Result"][0]) == {"echo": {"a": "1"}}

    xid = start(ssm, "AWS-RequestApproval", Parameters={"Approvers": [ROOT_ARN]})
    wait_for_status(ssm, xid, "Waiting")
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert ex["Outputs"] == {"approve.ApprovalStatus": ["Approved"]}


def test_shared_runbook_runs_in_the_callers_account(ssm, new_account):
    other = new_account()
    name = runbook(ssm, doc([script_step("who", "def handler(events, context):\n    return events\n",
                                         {"acct": "{{ global:ACCOUNT_ID }}"})]))
    arn = f"arn:aws:ssm:{REGION}:{ROOT_ACCOUNT}:document/{name}"
    expect_error("AutomationDefinitionNotFoundException", other.client.start_automation_execution,
                 DocumentName=arn)
    ssm.modify_document_permission(Name=name, PermissionType="Share", AccountIdsToAdd=[other.account_id])
    xid = start(other.client, arn)
    ex = wait_for_status(other.client, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["ExecutedBy"] == f"arn:aws:iam::{other.account_id}:root"
    assert json.loads(by_name(ex)["who"]["Outputs"]["Payload"][0]) == {"acct": other.account_id}
    expect_error("AutomationExecutionNotFoundException", ssm.get_automation_execution,
                 AutomationExecutionId=xid)


def test_unknown_document_and_version(ssm):
    expect_error("AutomationDefinitionNotFoundException", ssm.start_automation_execution,
                 DocumentName=unique_name("nosuch"))
    name = runbook(ssm, doc([sleep_step("s")]))
    expect_error("AutomationDefinitionVersionNotFoundException", ssm.start_automation_execution,
                 DocumentName=name, DocumentVersion="7")


def test_command_document_is_not_a_runbook(ssm):
    name = unique_name("cmd")
    ssm.create_document(Name=name, DocumentType="Command", Content=json.dumps({
        "schemaVersion": "2.2", "mainSteps": [
            {"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["echo"]}}]}))
    with pytest.raises(ClientError) as e:
        ssm.start_automation_execution(DocumentName=name)
    assert error_code(e) in ("AutomationDefinitionNotFoundException", "InvalidDocumentType",
                             "ValidationException"), e.value.response["Error"]


def test_targets_and_target_maps_together_are_refused(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={"P": {"type": "String", "default": "x"}}))
    expect_error("ValidationException", ssm.start_automation_execution, DocumentName=name,
                 TargetParameterName="P",
                 Targets=[{"Key": "ParameterValues", "Values": ["a"]}],
                 TargetMaps=[{"P": ["b"]}])


def test_client_token_idempotency(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={"P": {"type": "String", "default": "x"}}))
    token = str(uuid.uuid4())
    first = start(ssm, name, ClientToken=token, Parameters={"P": ["1"]})
    assert start(ssm, name, ClientToken=token, Parameters={"P": ["1"]}) == first
    # Tokens compare case-insensitively.
    assert start(ssm, name, ClientToken=token.upper(), Parameters={"P": ["1"]}) == first
    expect_error("IdempotentParameterMismatch", ssm.start_automation_execution,
                 DocumentName=name, ClientToken=token, Parameters={"P": ["2"]})
    other = start(ssm, name, ClientToken=str(uuid.uuid4()), Parameters={"P": ["1"]})
    assert other != first
    matching = ssm.describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [name]}])["AutomationExecutionMetadataList"]
    assert sorted(m["AutomationExecutionId"] for m in matching) == sorted([first, other])


def test_client_token_of_a_refused_start_can_be_used_again(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={"P": {"type": "Integer", "default": 1}}))
    token = str(uuid.uuid4())
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, ClientToken=token, Parameters={"P": ["x"]})
    xid = start(ssm, name, ClientToken=token, Parameters={"P": ["2"]})
    assert wait_for_status(ssm, xid, AUTOMATION_TERMINAL)["Parameters"] == {"P": ["2"]}


def test_target_locations_of_other_accounts_are_refused(ssm):
    name = runbook(ssm, doc([sleep_step("s")]))
    with pytest.raises(ClientError) as e:
        ssm.start_automation_execution(DocumentName=name, TargetLocations=[
            {"Accounts": ["222222222222"], "Regions": [REGION]}])
    assert error_code(e) in ("ValidationException", "InvalidAutomationExecutionParametersException")


# --------------------------------------------------------------------------- 3. interpolation


def test_globals_execution_id_and_typed_references(ssm):
    payload = {
        "account": "{{global:ACCOUNT_ID}}",
        "region": "{{ global:REGION }}",
        "partition": "{{global:AWS_PARTITION}}",
        "date": "{{ global:DATE }}",
        "date_time": "{{global:DATE_TIME}}",
        "id": "{{ automation:EXECUTION_ID }}",
        "list": "{{ Names }}",
        "count": "{{Count}}",
        "flag": "{{ Flag }}",
        "embedded": "n={{ Count }} in {{global:REGION}}",
        "nested": {"deep": ["{{ Names }}", "{{ Count }}"]},
    }
    steps = [
        script_step("first", "def handler(events, context):\n    return {'n': 7, 'ctx': context}\n",
                    outputs=[{"Name": "N", "Selector": "$.Payload.n", "Type": "Integer"}]),
        script_step("echo", ECHO_SCRIPT, {**payload, "prev": "{{ first.N }}",
                                          "prev_text": "got {{first.N}}"}),
    ]
    params = {"Names": {"type": "StringList", "default": ["a", "b"]},
              "Count": {"type": "Integer", "default": 5},
              "Flag": {"type": "Boolean", "default": True}}
    _, xid, ex = run(ssm, doc(steps, parameters=params))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    got = json.loads(by_name(ex)["echo"]["Outputs"]["Payload"][0])
    today = dt.datetime.now(dt.timezone.utc).date()
    assert got["account"] == ROOT_ACCOUNT
    assert got["region"] == REGION
    assert got["partition"] == "aws"
    assert got["date"] in (today.isoformat(), (today - dt.timedelta(days=1)).isoformat())
    assert dt.datetime.strptime(got["date_time"], "%Y-%m-%d_%H.%M.%S")
    assert got["id"] == xid
    assert got["list"] == ["a", "b"]
    assert got["count"] == 5
    assert got["flag"] is True
    assert got["embedded"] == f"n=5 in {REGION}"
    assert got["nested"] == {"deep": [["a", "b"], 5]}
    assert got["prev"] == 7
    assert got["prev_text"] == "got 7"
    # The resolved inputs are what Inputs reports.
    inputs = by_name(ex)["echo"]["Inputs"]
    assert json.loads(inputs["InputPayload"])["id"] == xid
    ctx = json.loads(by_name(ex)["first"]["Outputs"]["Payload"][0])["ctx"]
    assert ctx.get("automation:EXECUTION_ID") == xid


def test_reference_to_unknown_parameter_fails_the_step(ssm):
    # Created fine (references are resolved at run time), fails at the step.
    _, _, ex = run(ssm, doc([script_step("echo", ECHO_SCRIPT, {"x": "{{ step0.Nothing }}"})]))
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = by_name(ex)["echo"]
    assert s["StepStatus"] == "Failed"
    assert "step0.Nothing" in s["FailureMessage"]


# --------------------------------------------------------------------------- 4. actions: sleep, pause


def test_sleep_duration_and_timestamps(ssm):
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    steps = [
        sleep_step("short", "PT1S"),
        {"name": "past", "action": "aws:sleep", "inputs": {"Timestamp": "2020-01-01T00:00:00Z"}},
        {"name": "until", "action": "aws:sleep", "inputs": {"Timestamp": future}},
    ]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    s = by_name(ex)
    took = (s["short"]["ExecutionEndTime"] - s["short"]["ExecutionStartTime"]).total_seconds()
    assert 0.9 <= took < 3, took
    assert (s["past"]["ExecutionEndTime"] - s["past"]["ExecutionStartTime"]).total_seconds() < 0.5
    target = dt.datetime.strptime(future, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert s["until"]["ExecutionEndTime"] >= target - dt.timedelta(milliseconds=50)


def test_bad_sleep_duration_fails_the_step(ssm):
    _, _, ex = run(ssm, doc([sleep_step("s", "{{ D }}")], parameters={"D": {"type": "String", "default": "soon"}}))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert by_name(ex)["s"]["StepStatus"] == "Failed"
    assert by_name(ex)["s"].get("FailureMessage")


def test_pause_and_resume(ssm):
    steps = [{"name": "hold", "action": "aws:pause", "inputs": {}}, sleep_step("after")]
    name, xid, ex = run(ssm, doc(steps), statuses=("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    assert statuses_of(ex) == {"hold": "Waiting", "after": "Pending"}
    assert ex.get("CurrentStepName") == "hold"
    assert ex.get("CurrentAction") == "aws:pause"
    expect_error("AutomationStepNotFoundException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Resume", Payload={"StepName": ["nosuch"]})
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Resume", Payload={"StepName": ["after"]})
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Approve")
    listed = ssm.describe_automation_executions(Filters=[
        {"Key": "ExecutionId", "Values": [xid]},
        {"Key": "CurrentAction", "Values": ["aws:pause"]}])["AutomationExecutionMetadataList"]
    assert [(m["AutomationExecutionId"], m["CurrentStepName"], m["AutomationExecutionStatus"])
            for m in listed] == [(xid, "hold", "Waiting")]
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Resume",
                               Payload={"StepName": ["hold"]})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert statuses_of(ex) == {"hold": "Success", "after": "Success"}
    assert "CurrentStepName" not in ex
    # A finished execution takes no more signals.
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Resume", Payload={"StepName": ["hold"]})


# --------------------------------------------------------------------------- 4. actions: approve


def approve_doc(approvers, min_approvals=None, **props):
    inputs = {"Approvers": approvers, "Message": "please"}
    if min_approvals is not None:
        inputs["MinRequiredApprovals"] = min_approvals
    return doc([{"name": "gate", "action": "aws:approve", "inputs": inputs, **props},
                sleep_step("after")],
               outputs=["gate.ApprovalStatus"])


def test_approve_by_the_single_approver(ssm):
    _, xid, ex = run(ssm, approve_doc([ROOT_ARN]), statuses=("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    gate = by_name(ex)["gate"]
    assert gate["StepStatus"] == "Waiting"
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve",
                               Payload={"Comment": ["looks good"]})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    gate = by_name(ex)["gate"]
    assert gate["StepStatus"] == "Success"
    assert gate["Outputs"]["ApprovalStatus"] == ["Approved"]
    decisions = maplist(gate["Outputs"]["ApproverDecisions"])
    assert len(decisions) == 1
    assert decisions[0]["Approver"] == ROOT_ARN
    assert decisions[0]["Decision"] == "Approve"
    assert decisions[0].get("Comment") == "looks good"
    assert ex["Outputs"] == {"gate.ApprovalStatus": ["Approved"]}
    assert by_name(ex)["after"]["StepStatus"] == "Success"


def test_two_required_approvals_need_two_distinct_users(server, ssm):
    tag = uuid.uuid4().hex[:6]
    alice = server.create_user(ROOT_ACCOUNT, f"alice{tag}")
    bob = server.create_user(ROOT_ACCOUNT, f"bob{tag}")
    carol = server.create_user(ROOT_ACCOUNT, f"carol{tag}")
    bob_arn = f"arn:aws:iam::{ROOT_ACCOUNT}:user/bob{tag}"
    # Executions started by a user record the user's ARN.
    own = runbook(ssm, doc([sleep_step("s")]))
    ex = wait_for_status(ssm, start(alice.client, own), AUTOMATION_TERMINAL)
    assert ex["ExecutedBy"] == f"arn:aws:iam::{ROOT_ACCOUNT}:user/alice{tag}"
    _, xid, ex = run(ssm, approve_doc([f"alice{tag}", bob_arn], 2),
                     statuses=("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    # Neither the root (not listed) nor carol may decide.
    for client in (ssm, carol.client):
        for kind in ("Approve", "Reject"):
            expect_error("InvalidAutomationSignalException", client.send_automation_signal,
                         AutomationExecutionId=xid, SignalType=kind)
    alice.client.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve")
    alice.client.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve")
    time.sleep(0.3)
    ex = get(ssm, xid)
    assert ex["AutomationExecutionStatus"] == "Waiting", "one user approving twice is one approval"
    gate = by_name(ex)["gate"]
    assert gate["StepStatus"] == "Waiting"
    assert gate["Outputs"]["ApprovalStatus"] == ["Waiting"]
    bob.client.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success"
    gate = by_name(ex)["gate"]
    assert gate["Outputs"]["ApprovalStatus"] == ["Approved"]
    decisions = maplist(gate["Outputs"]["ApproverDecisions"])
    assert sorted(d["Approver"] for d in decisions) == sorted(
        [f"arn:aws:iam::{ROOT_ACCOUNT}:user/alice{tag}", bob_arn])
    assert {d["Decision"] for d in decisions} == {"Approve"}


def test_concurrent_approvals_are_all_counted(server, ssm):
    import threading

    tag = uuid.uuid4().hex[:6]
    users = [server.create_user(ROOT_ACCOUNT, f"u{i}{tag}") for i in range(4)]
    _, xid, _ = run(ssm, approve_doc([f"u{i}{tag}" for i in range(4)], 4),
                    statuses=("Waiting",) + AUTOMATION_TERMINAL)
    errors = []

    def approve(u):
        try:
            u.client.send_automation_signal(AutomationExecutionId=xid, SignalType="Approve")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=approve, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert len(maplist(by_name(ex)["gate"]["Outputs"]["ApproverDecisions"])) == 4


def test_reject_fails_the_step(ssm):
    content = approve_doc("{{ Approvers }}", "{{ Min }}")
    content["parameters"] = {"Approvers": {"type": "StringList", "default": [ROOT_ACCOUNT]},
                             "Min": {"type": "Integer", "default": 1}}
    _, xid, _ = run(ssm, content, statuses=("Waiting",) + AUTOMATION_TERMINAL)
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Reject",
                               Payload={"Comment": ["no way"]})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Failed"
    gate = by_name(ex)["gate"]
    assert gate["StepStatus"] == "Failed"
    assert gate["Outputs"]["ApprovalStatus"] == ["Rejected"]
    decisions = maplist(gate["Outputs"]["ApproverDecisions"])
    assert [(d["Decision"], d.get("Comment")) for d in decisions] == [("Reject", "no way")]
    assert by_name(ex)["after"]["StepStatus"] == "Pending"
    assert ex.get("FailureMessage")


def test_approval_times_out(ssm):
    _, xid, ex = run(ssm, approve_doc([ROOT_ARN], timeoutSeconds=2), timeout=8)
    assert ex["AutomationExecutionStatus"] == "TimedOut"
    gate = by_name(ex)["gate"]
    assert gate["StepStatus"] == "TimedOut"
    assert gate["TimeoutSeconds"] == 2
    assert by_name(ex)["after"]["StepStatus"] == "Pending"
    took = (gate["ExecutionEndTime"] - gate["ExecutionStartTime"]).total_seconds()
    assert 1.8 <= took < 5, took


# --------------------------------------------------------------------------- 4. actions: branch


def test_branch_choices_default_and_fall_through(ssm):
    steps = [
        {"name": "byString", "action": "aws:branch", "inputs": {
            "Choices": [
                {"NextStep": "wrong1", "Variable": "{{ Env }}", "StringEquals": "Prod"},
                {"NextStep": "byNumber", "Variable": "{{ Env }}", "EqualsIgnoreCase": "PROD"},
            ],
            "Default": "wrong1"}},
        sleep_step("wrong1", isEnd=True),
        {"name": "byNumber", "action": "aws:branch", "inputs": {
            "Choices": [
                {"NextStep": "wrong2", "Variable": "{{ Size }}", "NumericGreater": 10},
                {"NextStep": "wrong2", "Variable": "{{ Size }}", "NumericLesser": 10},
            ],
            "Default": "byBool"}},
        sleep_step("wrong2", isEnd=True),
        {"name": "byBool", "action": "aws:branch", "inputs": {
            "Choices": [
                {"NextStep": "combined", "Variable": "{{ Flag }}", "BooleanEquals": False},
            ]}},
        sleep_step("wrong3", isEnd=True),
        {"name": "combined", "action": "aws:branch", "inputs": {
            "Choices": [
                {"NextStep": "fallen", "And": [
                    {"Variable": "{{ Size }}", "NumericGreaterOrEquals": 10},
                    {"Not": {"Variable": "{{ Env }}", "StartsWith": "dev"}},
                    {"Or": [{"Variable": "{{ Env }}", "EndsWith": "x"},
                            {"Variable": "{{ Env }}", "Contains": "ro"}]},
                ]},
            ]}},
        sleep_step("wrong4", isEnd=True),
        {"name": "fallen", "action": "aws:branch", "inputs": {
            "Choices": [{"NextStep": "wrong5", "Variable": "{{ Size }}", "NumericEquals": 11}]}},
        sleep_step("landed"),
        sleep_step("wrong5"),
    ]
    params = {"Env": {"type": "String", "default": "prod"},
              "Size": {"type": "Integer", "default": 10},
              "Flag": {"type": "Boolean", "default": True}}
    _, _, ex = run(ssm, doc(steps, parameters=params))
    assert statuses_of(ex) == {
        "byString": "Success", "wrong1": "Pending", "byNumber": "Success", "wrong2": "Pending",
        "byBool": "Success", "wrong3": "Success", "combined": "Pending", "wrong4": "Pending",
        "fallen": "Pending", "landed": "Pending", "wrong5": "Pending",
    }
    assert ex["AutomationExecutionStatus"] == "Success"
    # Flag true: BooleanEquals false does not hold, no Default: falls through to wrong3 (isEnd).
    # Now with Flag false the combined branch and the fall-through of `fallen` run.
    name = runbook(ssm, doc(steps, parameters=params))
    ex = wait_for_status(ssm, start(ssm, name, Parameters={"Flag": ["false"]}), AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert statuses_of(ex) == {
        "byString": "Success", "wrong1": "Pending", "byNumber": "Success", "wrong2": "Pending",
        "byBool": "Success", "wrong3": "Pending", "combined": "Success", "wrong4": "Pending",
        "fallen": "Success", "landed": "Success", "wrong5": "Success",
    }


def test_branch_on_step_output_with_type_mismatch_fails(ssm):
    steps = [
        {"name": "pick", "action": "aws:branch", "inputs": {
            "Choices": [{"NextStep": "b", "Variable": "{{ Word }}", "NumericEquals": 1}]}},
        sleep_step("b"),
    ]
    _, _, ex = run(ssm, doc(steps, parameters={"Word": {"type": "String", "default": "one"}}))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert by_name(ex)["pick"]["StepStatus"] == "Failed"
    assert by_name(ex)["b"]["StepStatus"] == "Pending"


# --------------------------------------------------------------------------- 4. actions: executeScript


def test_execute_script_payload_and_selectors(ssm):
    script = """\
        def handler(events, context):
            print("hello from the script")
            return {"n": events["n"] * 2, "names": ["a", "b"], "ok": True,
                    "m": {"k": "v"}, "list": [{"x": "1"}], "s": "text"}
        """
    outputs = [
        {"Name": "N", "Selector": "$.Payload.n", "Type": "Integer"},
        {"Name": "Names", "Selector": "$.Payload.names", "Type": "StringList"},
        {"Name": "First", "Selector": "$.Payload.names[0]", "Type": "String"},
        {"Name": "Ok", "Selector": "$.Payload.ok", "Type": "Boolean"},
        {"Name": "M", "Selector": "$.Payload.m", "Type": "StringMap"},
        {"Name": "L", "Selector": "$.Payload.list", "Type": "MapList"},
        {"Name": "S", "Selector": "$.Payload.s", "Type": "String"},
    ]
    steps = [script_step("calc", script, {"n": 21}, outputs)]
    _, _, ex = run(ssm, doc(steps, outputs=["calc.N", "calc.Names", "calc.Payload"]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    out = by_name(ex)["calc"]["Outputs"]
    assert out["N"] == ["42"]
    assert out["Names"] == ["a", "b"]
    assert out["First"] == ["a"]
    assert out["Ok"] == ["true"]
    assert json.loads(out["M"][0]) == {"k": "v"}
    assert maplist(out["L"]) == [{"x": "1"}]
    assert out["S"] == ["text"]
    payload = json.loads(out["Payload"][0])
    assert payload["n"] == 42 and payload["names"] == ["a", "b"]
    op = json.loads(out["OutputPayload"][0])
    assert op["Payload"] == payload
    assert "hello from the script" in json.dumps(op)
    assert ex["Outputs"]["calc.N"] == ["42"]
    assert ex["Outputs"]["calc.Names"] == ["a", "b"]
    assert json.loads(ex["Outputs"]["calc.Payload"][0]) == payload


def test_execute_script_exception_fails_with_traceback(ssm):
    script = """\
        def helper():
            raise ValueError("the disk is full")

        def handler(events, context):
            helper()
        """
    _, _, ex = run(ssm, doc([script_step("boom", script), sleep_step("after")]))
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = by_name(ex)["boom"]
    assert s["StepStatus"] == "Failed"
    assert "Traceback" in s["FailureMessage"]
    assert "ValueError" in s["FailureMessage"]
    assert "the disk is full" in s["FailureMessage"]
    assert "helper" in s["FailureMessage"]
    assert s.get("FailureDetails", {}).get("FailureStage")
    assert "the disk is full" in ex["FailureMessage"]
    assert by_name(ex)["after"]["StepStatus"] == "Pending"


def test_execute_script_times_out(ssm):
    script = "import time\n\ndef handler(events, context):\n    time.sleep(30)\n"
    _, _, ex = run(ssm, doc([script_step("tolerated", script, timeoutSeconds=1, onFailure="Continue"),
                             script_step("slow", script, timeoutSeconds=1), sleep_step("after")]),
                   timeout=8)
    assert ex["AutomationExecutionStatus"] == "TimedOut"
    assert by_name(ex)["tolerated"]["StepStatus"] == "TimedOut"
    s = by_name(ex)["slow"]
    assert s["StepStatus"] == "TimedOut"
    took = (s["ExecutionEndTime"] - s["ExecutionStartTime"]).total_seconds()
    assert took < 4, took
    assert by_name(ex)["after"]["StepStatus"] == "Pending"


def test_execute_script_unsupported_runtime(ssm):
    _, _, ex = run(ssm, doc([script_step("ps", "Write-Output 'hi'", runtime="PowerShell 7.4")]))
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = by_name(ex)["ps"]
    assert s["StepStatus"] == "Failed"
    assert "PowerShell 7.4" in s["FailureMessage"]


def test_execute_script_missing_handler_and_unserialisable_result(ssm):
    steps = [
        {"name": "nohandler", "action": "aws:executeScript", "onFailure": "Continue",
         "inputs": {"Runtime": PY, "Handler": "main", "Script": "def other(e, c):\n    return 1\n"}},
        script_step("badresult", "def handler(events, context):\n    return object()\n"),
    ]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = by_name(ex)
    assert s["nohandler"]["StepStatus"] == "Failed"
    assert "main" in s["nohandler"]["FailureMessage"]
    assert s["badresult"]["StepStatus"] == "Failed"


# --------------------------------------------------------------------------- 4. actions: executeAutomation


CHILD_DOC = doc(
    [script_step("work", "def handler(events, context):\n"
                         "    if events['fail'] == 'yes':\n"
                         "        raise RuntimeError('child broke')\n"
                         "    return {'greeting': 'hi ' + events['who']}\n",
                 {"who": "{{ Who }}", "fail": "{{ Fail }}"},
                 [{"Name": "Greeting", "Selector": "$.Payload.greeting", "Type": "String"}])],
    parameters={"Who": {"type": "String"}, "Fail": {"type": "String", "default": "no"}},
    outputs=["work.Greeting"],
)


def test_execute_automation_runs_a_child(ssm):
    child = runbook(ssm, CHILD_DOC, "child")
    steps = [
        {"name": "call", "action": "aws:executeAutomation",
         "inputs": {"DocumentName": child, "RuntimeParameters": {"Who": "{{ Name }}"}}},
        script_step("use", ECHO_SCRIPT, {"id": "{{ call.ExecutionId }}", "status": "{{ call.Status }}"}),
    ]
    _, xid, ex = run(ssm, doc(steps, parameters={"Name": {"type": "String", "default": "bob"}},
                              outputs=["call.ExecutionId", "call.Status"]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    call = by_name(ex)["call"]
    assert call["StepStatus"] == "Success"
    child_id = call["Outputs"]["ExecutionId"][0]
    assert call["Outputs"]["Status"] == ["Success"]
    assert "hi bob" in "".join(call["Outputs"]["Output"])
    assert ex["Outputs"]["call.ExecutionId"] == [child_id]
    used = json.loads(by_name(ex)["use"]["Outputs"]["Payload"][0])
    assert used == {"id": child_id, "status": "Success"}

    cx = get(ssm, child_id)
    assert cx["ParentAutomationExecutionId"] == xid
    assert cx["DocumentName"] == child
    assert cx["AutomationExecutionStatus"] == "Success"
    assert cx["Parameters"] == {"Who": ["bob"], "Fail": ["no"]}
    assert cx["Outputs"] == {"work.Greeting": ["hi bob"]}
    assert cx["ExecutedBy"] == ROOT_ARN
    assert [m["AutomationExecutionId"] for m in children_of(ssm, xid)] == [child_id]


def test_failing_child_fails_the_step(ssm):
    child = runbook(ssm, CHILD_DOC, "child")
    steps = [
        {"name": "call", "action": "aws:executeAutomation",
         "inputs": {"DocumentName": child, "RuntimeParameters": {"Who": "x", "Fail": "yes"}}},
        sleep_step("after"),
    ]
    _, xid, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Failed"
    call = by_name(ex)["call"]
    assert call["StepStatus"] == "Failed"
    assert call["Outputs"]["Status"] == ["Failed"]
    assert "child broke" in call["FailureMessage"]
    assert by_name(ex)["after"]["StepStatus"] == "Pending"
    cx = get(ssm, call["Outputs"]["ExecutionId"][0])
    assert cx["AutomationExecutionStatus"] == "Failed"
    assert cx["ParentAutomationExecutionId"] == xid


def test_execute_automation_passes_typed_runtime_parameters(ssm):
    child = runbook(ssm, doc([script_step("echo", ECHO_SCRIPT, {"n": "{{ N }}", "l": "{{ L }}", "b": "{{ B }}"})],
                             parameters={"N": {"type": "Integer"}, "L": {"type": "StringList"},
                                         "B": {"type": "Boolean"}}), "child")
    steps = [{"name": "call", "action": "aws:executeAutomation", "inputs": {
        "DocumentName": child, "DocumentVersion": "1",
        "RuntimeParameters": {"N": "{{ Count }}", "L": "{{ Names }}", "B": True}}}]
    _, xid, ex = run(ssm, doc(steps, parameters={"Count": {"type": "Integer", "default": 4},
                                                 "Names": {"type": "StringList", "default": ["p", "q"]}}))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    cx = get(ssm, by_name(ex)["call"]["Outputs"]["ExecutionId"][0])
    assert cx["Parameters"] == {"N": ["4"], "L": ["p", "q"], "B": ["true"]}
    assert json.loads(by_name(cx)["echo"]["Outputs"]["Payload"][0]) == {"n": 4, "l": ["p", "q"], "b": True}


def test_execute_automation_with_targets_starts_a_rate_controlled_child(ssm):
    leaf = runbook(ssm, item_doc("def handler(events, context):\n    return events['item']\n"), "leaf")
    steps = [{"name": "fan", "action": "aws:executeAutomation", "inputs": {
        "DocumentName": leaf, "TargetParameterName": "Item",
        "Targets": [{"Key": "ParameterValues", "Values": ["u", "v"]}], "MaxConcurrency": "2"}}]
    _, xid, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    mid = by_name(ex)["fan"]["Outputs"]["ExecutionId"][0]
    mx = get(ssm, mid)
    assert mx["ParentAutomationExecutionId"] == xid
    assert mx["ResolvedTargets"]["ParameterValues"] == ["u", "v"]
    leaves = children_of(ssm, mid)
    assert sorted(k["Target"] for k in leaves) == ["u", "v"]
    assert {k["AutomationExecutionStatus"] for k in leaves} == {"Success"}


def test_api_step_reads_its_own_execution(ssm):
    steps = [sleep_step("first"),
             {"name": "me", "action": "aws:executeAwsApi",
              "inputs": {"Service": "ssm", "Api": "GetAutomationExecution",
                         "AutomationExecutionId": "{{ automation:EXECUTION_ID }}"},
              "outputs": [
                  {"Name": "Status", "Selector": "$.AutomationExecution.AutomationExecutionStatus",
                   "Type": "String"},
                  {"Name": "Current", "Selector": "$.AutomationExecution.CurrentStepName", "Type": "String"},
                  {"Name": "FirstStatus", "Selector": "$.AutomationExecution.StepExecutions[0].StepStatus",
                   "Type": "String"}]}]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert by_name(ex)["me"]["Outputs"] == {"Status": ["InProgress"], "Current": ["me"],
                                            "FirstStatus": ["Success"]}


def test_child_that_cannot_start_fails_the_step(ssm):
    steps = [{"name": "call", "action": "aws:executeAutomation",
              "inputs": {"DocumentName": unique_name("missing")}}]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert "AutomationDefinitionNotFound" in by_name(ex)["call"]["FailureMessage"]


# --------------------------------------------------------------------------- 4. actions: loop


def test_loop_over_iterators(ssm):
    steps = [
        {"name": "each", "action": "aws:loop", "inputs": {
            "Iterators": "{{ Items }}",
            "Steps": [
                script_step("visit", "def handler(events, context):\n    return events['v'].upper()\n",
                            {"v": "{{ each.CurrentIteratorValue }}", "i": "{{ each.CurrentIteration }}"},
                            [{"Name": "Up", "Selector": "$.Payload", "Type": "String"}]),
                sleep_step("rest"),
            ]}},
        sleep_step("done"),
    ]
    _, xid, ex = run(ssm, doc(steps, parameters={"Items": {"type": "StringList", "default": ["a", "b", "c"]}},
                              outputs=["visit.Up"]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert by_name(ex)["each"]["StepStatus"] == "Success"
    assert by_name(ex)["done"]["StepStatus"] == "Success"
    assert ex["Outputs"]["visit.Up"] == ["C"]

    all_steps = all_step_executions(ssm, xid)
    loop = next(s for s in all_steps if s["StepName"] == "each")
    visits = [s for s in all_steps if s["StepName"] == "visit"]
    rests = [s for s in all_steps if s["StepName"] == "rest"]
    assert len(visits) == 3 and len(rests) == 3
    assert [v["Outputs"]["Up"] for v in visits] == [["A"], ["B"], ["C"]]
    for n, (v, value) in enumerate(zip(visits, "abc"), start=1):
        assert v["StepStatus"] == "Success"
        d = v["ParentStepDetails"]
        assert d["StepExecutionId"] == loop["StepExecutionId"]
        assert d["StepName"] == "each"
        assert d["Action"] == "aws:loop"
        assert d["Iteration"] == n
        assert d["IteratorValue"] == value
        assert json.loads(v["Inputs"]["InputPayload"]) == {"v": value, "i": n}
    assert "ParentStepDetails" not in loop
    # Sub-steps run in order: visit(1), rest(1), visit(2) ...
    runs = [s for s in all_steps if "ParentStepDetails" in s]
    assert [(s["StepName"], s["ParentStepDetails"]["Iteration"]) for s in runs] == [
        ("visit", 1), ("rest", 1), ("visit", 2), ("rest", 2), ("visit", 3), ("rest", 3)]

    second = all_step_executions(ssm, xid, Filters=[{"Key": "ParentStepIteration", "Values": ["2"]}])
    assert sorted(s["StepName"] for s in second) == ["rest", "visit"]
    assert {s["ParentStepDetails"]["IteratorValue"] for s in second} == {"b"}
    by_value = all_step_executions(ssm, xid, Filters=[{"Key": "ParentStepIteratorValue", "Values": ["c"]},
                                                      {"Key": "StepName", "Values": ["visit"]}])
    assert [s["Outputs"]["Up"] for s in by_value] == [["C"]]
    under = all_step_executions(ssm, xid, Filters=[
        {"Key": "ParentStepExecutionId", "Values": [loop["StepExecutionId"]]}])
    assert len(under) == 6


def test_loop_with_condition_and_variables(ssm):
    content = {
        "schemaVersion": "0.3",
        "variables": {
            "counter": {"type": "Integer", "default": 0},
            "label": {"type": "String", "default": "start"},
            "seen": {"type": "StringList", "default": []},
        },
        "mainSteps": [
            {"name": "repeat", "action": "aws:loop", "inputs": {
                "MaxIterations": 10,
                "LoopCondition": {"Variable": "{{ variable:counter }}", "NumericLesser": 3},
                "Steps": [
                    script_step("inc", "def handler(events, context):\n"
                                       "    return {'n': events['n'] + 1, 'seen': events['seen'] + [str(events['n'])]}\n",
                                {"n": "{{ variable:counter }}", "seen": "{{ variable:seen }}"},
                                [{"Name": "N", "Selector": "$.Payload.n", "Type": "Integer"},
                                 {"Name": "Seen", "Selector": "$.Payload.seen", "Type": "StringList"}]),
                    {"name": "setN", "action": "aws:updateVariable",
                     "inputs": {"Name": "variable:counter", "Value": "{{ inc.N }}"}},
                    {"name": "setSeen", "action": "aws:updateVariable",
                     "inputs": {"Name": "variable:seen", "Value": "{{ inc.Seen }}"}},
                ]}},
            {"name": "rename", "action": "aws:updateVariable",
             "inputs": {"Name": "variable:label", "Value": "done after {{ variable:counter }}"}},
        ],
    }
    _, xid, ex = run(ssm, content)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["Variables"] == {"counter": ["3"], "label": ["done after 3"], "seen": ["0", "1", "2"]}
    incs = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["inc"]}])
    assert [s["ParentStepDetails"]["Iteration"] for s in incs] == [1, 2, 3]
    assert all("IteratorValue" not in s["ParentStepDetails"] for s in incs)
    loop = by_name(ex)["repeat"]
    assert loop["StepStatus"] == "Success"
    assert loop["Outputs"].get("CurrentIteration") == ["3"]


def test_loop_sub_step_failure_and_typed_iterators(ssm):
    check = script_step("check", "def handler(events, context):\n"
                                 "    if events['v'] == 2:\n"
                                 "        raise RuntimeError('two is bad')\n"
                                 "    return events['v'] * 10\n",
                        {"v": "{{ each.CurrentIteratorValue }}"},
                        [{"Name": "Ten", "Selector": "$.Payload", "Type": "Integer"}])
    loop = {"name": "each", "action": "aws:loop",
            "inputs": {"Iterators": [1, 2, 3], "IteratorDataType": "Integer", "Steps": [check]}}
    _, xid, ex = run(ssm, doc([loop, sleep_step("after")]))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert by_name(ex)["each"]["StepStatus"] == "Failed"
    assert by_name(ex)["after"]["StepStatus"] == "Pending"
    checks = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["check"]}])
    assert [(c["ParentStepDetails"]["Iteration"], c["StepStatus"]) for c in checks] == [
        (1, "Success"), (2, "Failed")]
    assert checks[0]["Outputs"]["Ten"] == ["10"]
    assert checks[0]["ParentStepDetails"]["IteratorValue"] == "1"
    assert "two is bad" in checks[1]["FailureMessage"]

    # With onFailure Continue on the sub-step the loop carries on and the execution succeeds.
    check["onFailure"] = "Continue"
    _, xid, ex = run(ssm, doc([loop, sleep_step("after")]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert statuses_of(ex)["after"] == "Success"
    checks = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["check"]}])
    assert [c["StepStatus"] for c in checks] == ["Success", "Failed", "Success"]


def test_loop_body_can_leave_the_loop(ssm):
    loop = {"name": "each", "action": "aws:loop", "inputs": {
        "Iterators": ["a", "stop", "c"],
        "Steps": [
            {"name": "check", "action": "aws:branch", "inputs": {
                "Choices": [{"NextStep": "out", "Variable": "{{ each.CurrentIteratorValue }}",
                             "StringEquals": "stop"}]}},
            sleep_step("body"),
        ]}}
    _, xid, ex = run(ssm, doc([loop, sleep_step("skipped", isEnd=True), sleep_step("out")]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert statuses_of(ex)["out"] == "Success"
    assert statuses_of(ex)["skipped"] == "Pending"
    bodies = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["body"]}])
    assert [b["ParentStepDetails"]["IteratorValue"] for b in bodies] == ["a"]


def test_loop_condition_stops_at_max_iterations(ssm):
    loop = {"name": "forever", "action": "aws:loop", "inputs": {
        "MaxIterations": 5,
        "LoopCondition": {"Variable": "{{ Go }}", "BooleanEquals": True},
        "Steps": [sleep_step("tick")]}}
    _, xid, ex = run(ssm, doc([loop, sleep_step("after")],
                              parameters={"Go": {"type": "Boolean", "default": True}}))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert statuses_of(ex)["forever"] == "Success"
    assert statuses_of(ex)["after"] == "Success"
    ticks = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["tick"]}])
    assert [t["ParentStepDetails"]["Iteration"] for t in ticks] == [1, 2, 3, 4, 5]


def test_update_variable_with_wrong_type_fails(ssm):
    content = {
        "schemaVersion": "0.3",
        "variables": {"n": {"type": "Integer", "default": 1}},
        "mainSteps": [{"name": "set", "action": "aws:updateVariable",
                       "inputs": {"Name": "variable:n", "Value": "not a number"}}],
    }
    _, _, ex = run(ssm, content)
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert by_name(ex)["set"]["StepStatus"] == "Failed"
    assert ex["Variables"] == {"n": ["1"]}


# --------------------------------------------------------------------------- 4. actions: AWS API


def test_assert_and_wait_for_resource_property(ssm):
    target = runbook(ssm, doc([sleep_step("s")]))
    api = {"Service": "ssm", "Api": "DescribeDocument", "Name": target}
    steps = [
        {"name": "isAutomation", "action": "aws:assertAwsResourceProperty",
         "inputs": {**api, "PropertySelector": "$.Document.DocumentType", "DesiredValues": ["Automation"]}},
        {"name": "isActive", "action": "aws:waitForAwsResourceProperty",
         "inputs": {**api, "PropertySelector": "$.Document.Status", "DesiredValues": ["Creating", "Active"]}},
        {"name": "isCommand", "action": "aws:assertAwsResourceProperty", "onFailure": "Continue",
         "inputs": {**api, "PropertySelector": "$.Document.DocumentType", "DesiredValues": ["Command"]}},
        {"name": "snakeCase", "action": "aws:executeAwsApi",
         "inputs": {"Service": "ssm", "Api": "describe_document", "Name": target},
         "outputs": [{"Name": "Owner", "Selector": "$.Document.Owner", "Type": "String"}]},
    ]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    s = by_name(ex)
    assert s["isAutomation"]["StepStatus"] == "Success"
    assert s["isActive"]["StepStatus"] == "Success"
    assert s["isCommand"]["StepStatus"] == "Failed"
    assert "Command" in s["isCommand"]["FailureMessage"]
    assert s["snakeCase"]["Outputs"]["Owner"] == [ROOT_ACCOUNT]


def test_wait_for_resource_property_times_out(ssm):
    target = runbook(ssm, doc([sleep_step("s")]))
    steps = [{"name": "never", "action": "aws:waitForAwsResourceProperty", "timeoutSeconds": 2,
              "inputs": {"Service": "ssm", "Api": "DescribeDocument", "Name": target,
                         "PropertySelector": "$.Document.DocumentType", "DesiredValues": ["Command"]}}]
    _, _, ex = run(ssm, doc(steps), timeout=8)
    assert ex["AutomationExecutionStatus"] == "TimedOut"
    assert by_name(ex)["never"]["StepStatus"] == "TimedOut"


def test_api_error_fails_the_step_with_the_error_code(ssm):
    steps = [{"name": "missing", "action": "aws:executeAwsApi",
              "inputs": {"Service": "ssm", "Api": "DescribeDocument", "Name": unique_name("nosuch")}}]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert "InvalidDocument" in by_name(ex)["missing"]["FailureMessage"]


def test_api_call_acts_as_the_execution_account(ssm, new_account):
    other = new_account()
    mine = runbook(other.client, doc([sleep_step("s")]))
    roots = runbook(ssm, doc([sleep_step("s")]))
    steps = [
        {"name": "own", "action": "aws:executeAwsApi",
         "inputs": {"Service": "ssm", "Api": "DescribeDocument", "Name": mine},
         "outputs": [{"Name": "Owner", "Selector": "$.Document.Owner", "Type": "String"}]},
        {"name": "foreign", "action": "aws:executeAwsApi", "onFailure": "Continue",
         "inputs": {"Service": "ssm", "Api": "DescribeDocument", "Name": roots}},
    ]
    _, _, ex = run(other.client, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["ExecutedBy"] == f"arn:aws:iam::{other.account_id}:root"
    assert by_name(ex)["own"]["Outputs"]["Owner"] == [other.account_id]
    assert by_name(ex)["foreign"]["StepStatus"] == "Failed"
    assert "InvalidDocument" in by_name(ex)["foreign"]["FailureMessage"]


def test_output_selectors_deep_scan_and_index(ssm):
    # Spec 2.4: Selector supports .child, ..deepscan (always an array) and [i].
    script = """\
        def handler(events, context):
            return {"items": [{"id": "a", "tags": {"k": "1"}}, {"id": "b", "tags": {"k": "2"}}]}
        """
    outputs = [
        {"Name": "Ids", "Selector": "$..id", "Type": "StringList"},
        {"Name": "Second", "Selector": "$.Payload.items[1].id", "Type": "String"},
        {"Name": "Ks", "Selector": "$.Payload.items..k", "Type": "StringList"},
    ]
    _, _, ex = run(ssm, doc([script_step("gen", script, outputs=outputs)]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    out = by_name(ex)["gen"]["Outputs"]
    assert out["Ids"] == ["a", "b"]
    assert out["Second"] == ["b"]
    assert out["Ks"] == ["1", "2"]


@pytest.mark.parametrize("step, fragment", [
    ({"name": "ec2", "action": "aws:executeAwsApi",
      "inputs": {"Service": "ec2", "Api": "DescribeInstances"}}, "ec2"),
    ({"name": "stack", "action": "aws:createStack",
      "inputs": {"StackName": "s", "TemplateBody": "{}"}}, "aws:createStack"),
    ({"name": "nosuchop", "action": "aws:executeAwsApi",
      "inputs": {"Service": "ssm", "Api": "FlyToTheMoon"}}, "FlyToTheMoon"),
])
def test_actions_ssmd_cannot_run_fail_clearly(ssm, step, fragment):
    _, _, ex = run(ssm, doc([step, sleep_step("after")]))
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = by_name(ex)[step["name"]]
    assert s["StepStatus"] == "Failed"
    assert fragment in s["FailureMessage"]
    assert fragment in ex["FailureMessage"]
    assert by_name(ex)["after"]["StepStatus"] == "Pending"


# --------------------------------------------------------------------------- 5. control flow


def test_on_failure_continue_is_not_critical(ssm):
    _, _, ex = run(ssm, doc([fail_step("bad", onFailure="Continue"), sleep_step("next")]))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    bad = by_name(ex)["bad"]
    assert bad["StepStatus"] == "Failed"
    assert bad["IsCritical"] is False
    assert bad["OnFailure"] == "Continue"
    assert by_name(ex)["next"]["StepStatus"] == "Success"


def test_on_failure_continue_critical_step_fails_the_execution_at_the_end(ssm):
    _, _, ex = run(ssm, doc([fail_step("bad", onFailure="Continue", isCritical=True), sleep_step("next")]))
    assert statuses_of(ex) == {"bad": "Failed", "next": "Success"}
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert by_name(ex)["bad"]["IsCritical"] is True


def test_on_failure_step_jumps(ssm):
    steps = [fail_step("bad", onFailure="step:recover"), sleep_step("skipped"),
             sleep_step("recover")]
    _, _, ex = run(ssm, doc(steps))
    assert statuses_of(ex) == {"bad": "Failed", "skipped": "Pending", "recover": "Success"}
    assert by_name(ex)["bad"]["OnFailure"] == "step:recover"
    # The failed step is critical (the default), so the execution fails.
    assert ex["AutomationExecutionStatus"] == "Failed"

    steps[0] = fail_step("bad", onFailure="step:recover", isCritical=False)
    _, _, ex = run(ssm, doc(steps))
    assert statuses_of(ex) == {"bad": "Failed", "skipped": "Pending", "recover": "Success"}
    assert ex["AutomationExecutionStatus"] == "Success"


def test_is_end_and_next_step(ssm):
    steps = [
        sleep_step("first", nextStep="third"),
        sleep_step("second"),
        sleep_step("third", isEnd=True),
        sleep_step("fourth"),
    ]
    _, _, ex = run(ssm, doc(steps, outputs=["fourth.Anything"]))
    assert ex["AutomationExecutionStatus"] == "Success"
    assert statuses_of(ex) == {"first": "Success", "second": "Pending", "third": "Success",
                               "fourth": "Pending"}
    assert ex["Outputs"] == {"fourth.Anything": [NOT_RUN]}
    s = by_name(ex)
    assert s["first"]["NextStep"] == "third"
    assert s["third"]["IsEnd"] is True
    # isEnd also ends a failed step that continues.
    _, _, ex = run(ssm, doc([fail_step("bad", onFailure="Continue", isEnd=True), sleep_step("after")]))
    assert statuses_of(ex) == {"bad": "Failed", "after": "Pending"}
    assert ex["AutomationExecutionStatus"] == "Success"


def test_max_attempts_retries_until_success(ssm):
    state = tempfile.mkdtemp(prefix="ssmd-attempts-")
    marker = os.path.join(state, "attempts")
    script = """\
        import os

        def handler(events, context):
            path = events["path"]
            n = int(open(path).read()) if os.path.exists(path) else 0
            with open(path, "w") as f:
                f.write(str(n + 1))
            if n + 1 < events["succeed_on"]:
                raise RuntimeError("attempt %d fails" % (n + 1))
            return n + 1
        """
    steps = [script_step("flaky", script, {"path": marker, "succeed_on": 2}, maxAttempts=3,
                         outputs=[{"Name": "Attempt", "Selector": "$.Payload", "Type": "Integer"}])]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    s = by_name(ex)["flaky"]
    assert s["StepStatus"] == "Success"
    assert s["MaxAttempts"] == 3
    assert s["Outputs"]["Attempt"] == ["2"]
    assert open(marker).read() == "2"
    assert "FailureMessage" not in s

    # Never succeeding: exactly maxAttempts runs, then the step fails.
    marker2 = os.path.join(state, "attempts2")
    steps = [script_step("flaky", script, {"path": marker2, "succeed_on": 99}, maxAttempts=3)]
    _, _, ex = run(ssm, doc(steps))
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert open(marker2).read() == "3"
    assert "attempt 3 fails" in by_name(ex)["flaky"]["FailureMessage"]


def test_max_attempts_with_timeouts(ssm):
    state = tempfile.mkdtemp(prefix="ssmd-attempts-")
    marker = os.path.join(state, "runs")
    script = """\
        import time

        def handler(events, context):
            with open(events["path"], "a") as f:
                f.write("x")
            time.sleep(30)
        """
    _, _, ex = run(ssm, doc([script_step("slow", script, {"path": marker}, timeoutSeconds=1,
                                         maxAttempts=2)]), timeout=10)
    assert ex["AutomationExecutionStatus"] == "TimedOut"
    s = by_name(ex)["slow"]
    assert s["StepStatus"] == "TimedOut"
    assert open(marker).read() == "xx"
    took = (s["ExecutionEndTime"] - s["ExecutionStartTime"]).total_seconds()
    assert 1.8 <= took < 5, took


def test_failure_message_and_details(ssm):
    _, _, ex = run(ssm, doc([fail_step("bad", "kaput")]))
    s = by_name(ex)["bad"]
    assert s["FailureDetails"]["FailureStage"] in ("Invocation", "InputValidation", "PreVerification",
                                                  "PostVerification")
    assert s["FailureDetails"]["FailureType"] in ("Action", "Verification", "Internal")
    assert "kaput" in ex["FailureMessage"]
    assert "bad" in ex["FailureMessage"] or "Step fails" in ex["FailureMessage"]
    counters = ex["ProgressCounters"]
    assert counters["FailedSteps"] == 1
    assert counters["TotalSteps"] == 1


# --------------------------------------------------------------------------- 6. interactive


def test_interactive_mode_step_by_step(ssm):
    steps = [sleep_step("one"), sleep_step("two"), sleep_step("three")]
    name = runbook(ssm, doc(steps))
    xid = start(ssm, name, Mode="Interactive")
    ex = wait_for_status(ssm, xid, ("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    assert ex["Mode"] == "Interactive"
    assert statuses_of(ex) == {"one": "Pending", "two": "Pending", "three": "Pending"}

    expect_error("AutomationStepNotFoundException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="StartStep", Payload={"StepName": ["nosuch"]})
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["one"]})
    ex = wait_step(ssm, xid, "one", "Success")
    ex = wait_for_status(ssm, xid, ("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    assert statuses_of(ex) == {"one": "Success", "two": "Pending", "three": "Pending"}
    assert by_name(ex)["one"].get("ValidNextSteps") == ["two"]

    # Steps may run in any order in interactive mode.
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["three"]})
    ex = wait_step(ssm, xid, "three", "Success")
    ex = wait_for_status(ssm, xid, ("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    assert statuses_of(ex) == {"one": "Success", "two": "Pending", "three": "Success"}

    ssm.stop_automation_execution(AutomationExecutionId=xid, Type="Complete")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
    assert ex["AutomationExecutionStatus"] == "Success"
    assert statuses_of(ex) == {"one": "Success", "two": "Pending", "three": "Success"}
    assert ex.get("ExecutionEndTime")


def test_interactive_start_step_while_a_step_runs_and_stop_step(ssm):
    script = "import time\n\ndef handler(events, context):\n    time.sleep(30)\n"
    steps = [{"name": "hold", "action": "aws:pause", "inputs": {}}, script_step("slow", script),
             sleep_step("last")]
    name = runbook(ssm, doc(steps))
    xid = start(ssm, name, Mode="Interactive")
    wait_for_status(ssm, xid, "Waiting")
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["hold"]})
    wait_step(ssm, xid, "hold", "Waiting")
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="StartStep", Payload={"StepName": ["last"]})
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Resume",
                               Payload={"StepName": ["hold"]})
    wait_step(ssm, xid, "hold", "Success")
    wait_for_status(ssm, xid, "Waiting")
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["slow"]})
    ex = wait_step(ssm, xid, "slow", "InProgress")
    sid = by_name(ex)["slow"]["StepExecutionId"]
    expect_error("AutomationStepNotFoundException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="StopStep",
                 Payload={"StepExecutionId": [str(uuid.uuid4())]})
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StopStep",
                               Payload={"StepExecutionId": [sid]})
    ex = wait_step(ssm, xid, "slow", ("Cancelled", "Failed", "Success"), timeout=5)
    assert by_name(ex)["slow"]["StepStatus"] == "Cancelled"
    ex = wait_for_status(ssm, xid, ("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["last"]})
    wait_step(ssm, xid, "last", "Success")
    ssm.stop_automation_execution(AutomationExecutionId=xid, Type="Complete")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, 5)
    assert statuses_of(ex) == {"hold": "Success", "slow": "Cancelled", "last": "Success"}


def test_interactive_start_step_overrides_parameters(ssm):
    steps = [script_step("echo", ECHO_SCRIPT, {"who": "{{ Who }}"})]
    name = runbook(ssm, doc(steps, parameters={"Who": {"type": "String", "default": "a"}}))
    xid = start(ssm, name, Mode="Interactive")
    wait_for_status(ssm, xid, "Waiting")
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["echo"]})
    ex = wait_step(ssm, xid, "echo", ("Success", "Failed"))
    assert json.loads(by_name(ex)["echo"]["Outputs"]["Payload"][0]) == {"who": "a"}


def test_interactive_start_step_payload_overrides_inputs(ssm):
    # Spec 2.7: StartStep payload keys other than StepName are parameter overrides and surface
    # as OverriddenParameters.
    name = runbook(ssm, doc([sleep_step("nap", "PT30S")]))
    xid = start(ssm, name, Mode="Interactive")
    wait_for_status(ssm, xid, "Waiting")
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="StartStep",
                               Payload={"StepName": ["nap"], "Duration": ["PT0S"]})
    ex = wait_step(ssm, xid, "nap", ("Success", "Failed"), timeout=5)
    nap = by_name(ex)["nap"]
    assert nap["StepStatus"] == "Success"
    assert nap["OverriddenParameters"] == {"Duration": ["PT0S"]}
    assert json.loads(nap["Inputs"]["Duration"]) == "PT0S"
    ssm.stop_automation_execution(AutomationExecutionId=xid, Type="Complete")


def test_start_step_in_auto_mode_is_refused(ssm):
    steps = [{"name": "hold", "action": "aws:pause", "inputs": {}}]
    _, xid, ex = run(ssm, doc(steps), statuses=("Waiting",) + AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Waiting"
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="StartStep", Payload={"StepName": ["hold"]})
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    wait_for_status(ssm, xid, "Cancelled", timeout=5)


def test_interactive_mode_with_targets_is_refused(ssm):
    name = runbook(ssm, doc([sleep_step("s")], parameters={"P": {"type": "String", "default": "x"}}))
    with pytest.raises(ClientError) as e:
        ssm.start_automation_execution(DocumentName=name, Mode="Interactive", TargetParameterName="P",
                                       Targets=[{"Key": "ParameterValues", "Values": ["a"]}])
    assert error_code(e) in ("ValidationException", "InvalidAutomationExecutionParametersException")


# --------------------------------------------------------------------------- 7. stop


def test_cancel_during_sleep(ssm):
    steps = [sleep_step("first"), sleep_step("long", "PT30S"), sleep_step("later")]
    name = runbook(ssm, doc(steps))
    xid = start(ssm, name)
    wait_step(ssm, xid, "long", "InProgress")
    ssm.stop_automation_execution(AutomationExecutionId=xid, Type="Cancel")
    ex = get(ssm, xid)
    assert ex["AutomationExecutionStatus"] in ("Cancelling", "Cancelled")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    assert statuses_of(ex) == {"first": "Success", "long": "Cancelled", "later": "Pending"}
    assert ex.get("ExecutionEndTime")
    assert by_name(ex)["long"].get("ExecutionEndTime")
    # Stopping (or signalling) it again is refused.
    expect_error("InvalidAutomationStatusUpdateException", ssm.stop_automation_execution,
                 AutomationExecutionId=xid)
    expect_error("InvalidAutomationStatusUpdateException", ssm.stop_automation_execution,
                 AutomationExecutionId=xid, Type="Complete")


def test_cancel_runs_on_cancel_step(ssm):
    steps = [
        sleep_step("long", "PT30S", onCancel="step:cleanup"),
        sleep_step("normal"),
        script_step("cleanup", "def handler(events, context):\n    return 'cleaned'\n",
                    outputs=[{"Name": "Said", "Selector": "$.Payload", "Type": "String"}]),
    ]
    name = runbook(ssm, doc(steps))
    xid = start(ssm, name)
    wait_step(ssm, xid, "long", "InProgress")
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=8)
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    assert statuses_of(ex) == {"long": "Cancelled", "normal": "Pending", "cleanup": "Success"}
    assert by_name(ex)["cleanup"]["Outputs"]["Said"] == ["cleaned"]


def test_cancel_while_waiting_for_approval_and_running_script(ssm):
    _, xid, _ = run(ssm, approve_doc([ROOT_ARN]), statuses=("Waiting",) + AUTOMATION_TERMINAL)
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    assert statuses_of(ex) == {"gate": "Cancelled", "after": "Pending"}
    expect_error("InvalidAutomationSignalException", ssm.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Approve")

    script = "import time\n\ndef handler(events, context):\n    time.sleep(30)\n"
    name = runbook(ssm, doc([script_step("slow", script), sleep_step("after")]))
    xid = start(ssm, name)
    wait_step(ssm, xid, "slow", "InProgress")
    t0 = time.monotonic()
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
    assert time.monotonic() - t0 < 4
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    assert statuses_of(ex) == {"slow": "Cancelled", "after": "Pending"}


def test_cancel_inside_a_loop(ssm):
    loop = {"name": "each", "action": "aws:loop",
            "inputs": {"Iterators": ["a", "b"], "Steps": [sleep_step("wait", "PT30S")]}}
    name = runbook(ssm, doc([loop, sleep_step("after")]))
    xid = start(ssm, name)
    wait_step(ssm, xid, "wait", "InProgress")
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, 5)
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    assert statuses_of(ex) == {"each": "Cancelled", "wait": "Cancelled", "after": "Pending"}
    waits = all_step_executions(ssm, xid, Filters=[{"Key": "StepName", "Values": ["wait"]}])
    assert [w["ParentStepDetails"]["IteratorValue"] for w in waits] == ["a"]


def test_cancel_parent_cancels_child(ssm):
    child = runbook(ssm, doc([sleep_step("wait", "PT30S")]), "child")
    name = runbook(ssm, doc([{"name": "call", "action": "aws:executeAutomation",
                              "inputs": {"DocumentName": child}}]))
    xid = start(ssm, name)
    ex = wait_step(ssm, xid, "call", "InProgress")
    deadline = time.monotonic() + 5
    while not children_of(ssm, xid):
        assert time.monotonic() < deadline, "no child started"
        time.sleep(0.1)
    child_id = children_of(ssm, xid)[0]["AutomationExecutionId"]
    wait_step(ssm, child_id, "wait", "InProgress")
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    assert wait_for_status(ssm, xid, AUTOMATION_TERMINAL, 5)["AutomationExecutionStatus"] == "Cancelled"
    assert wait_for_status(ssm, child_id, AUTOMATION_TERMINAL, 5)["AutomationExecutionStatus"] == "Cancelled"


def test_stop_right_after_start(ssm):
    script = "import time\n\ndef handler(events, context):\n    time.sleep(30)\n"
    for steps in ([sleep_step("s", "PT30S"), sleep_step("t")], [script_step("s", script), sleep_step("t")]):
        name = runbook(ssm, doc(steps))
        xid = start(ssm, name)
        ssm.stop_automation_execution(AutomationExecutionId=xid)
        ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=5)
        assert ex["AutomationExecutionStatus"] == "Cancelled"
        assert statuses_of(ex)["s"] in ("Pending", "Cancelled")
        assert statuses_of(ex)["t"] == "Pending"


def test_many_executions_at_once(ssm):
    script = "def handler(events, context):\n    return events['i']\n"
    name = runbook(ssm, doc([script_step("work", script, {"i": "{{ I }}"},
                                         [{"Name": "I", "Selector": "$.Payload", "Type": "String"}]),
                             sleep_step("nap")],
                            parameters={"I": {"type": "String"}}, outputs=["work.I"]))
    ids = {start(ssm, name, Parameters={"I": [str(i)]}): str(i) for i in range(20)}
    for xid, i in ids.items():
        ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=15)
        assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
        assert ex["Outputs"] == {"work.I": [i]}
        assert len(ex["StepExecutions"]) == 2


def test_unknown_and_malformed_execution_ids(server, ssm):
    raw = server.client(parameter_validation=False)
    missing = str(uuid.uuid4())
    for op, extra in (("get_automation_execution", {}),
                      ("stop_automation_execution", {}),
                      ("describe_automation_step_executions", {}),
                      ("send_automation_signal", {"SignalType": "Approve"})):
        expect_error("AutomationExecutionNotFoundException", getattr(ssm, op),
                     AutomationExecutionId=missing, **extra)
        expect_error("AutomationExecutionNotFoundException", getattr(ssm, op),
                     AutomationExecutionId=missing.upper(), **extra)
        expect_error("ValidationException", getattr(raw, op), AutomationExecutionId="too-short", **extra)
        expect_error("ValidationException", getattr(raw, op), AutomationExecutionId=missing + "0", **extra)
    expect_error("ValidationException", raw.send_automation_signal,
                 AutomationExecutionId=missing, SignalType="Wave")
    expect_error("ValidationException", raw.stop_automation_execution,
                 AutomationExecutionId=missing, Type="Pause")


def test_stop_finished_execution_is_refused(ssm):
    _, xid, ex = run(ssm, doc([sleep_step("s")]))
    assert ex["AutomationExecutionStatus"] == "Success"
    expect_error("InvalidAutomationStatusUpdateException", ssm.stop_automation_execution,
                 AutomationExecutionId=xid)
    expect_error("InvalidAutomationStatusUpdateException", ssm.stop_automation_execution,
                 AutomationExecutionId=xid, Type="Complete")
    assert get(ssm, xid)["AutomationExecutionStatus"] == "Success"


# --------------------------------------------------------------------------- 8. rate control


def item_doc(script, extra_params=None):
    params = {"Item": {"type": "String"}, **(extra_params or {})}
    return doc([script_step("work", script, {"item": "{{ Item }}"},
                            [{"Name": "Out", "Selector": "$.Payload", "Type": "String"}])],
               parameters=params, outputs=["work.Out"])


def test_targets_parameter_values_fan_out(ssm):
    name = runbook(ssm, item_doc("def handler(events, context):\n    return 'did ' + events['item']\n",
                                 {"Other": {"type": "String", "default": "d"}}))
    values = ["red", "green", "blue"]
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": values}],
                Parameters={"Other": ["o"]}, MaxConcurrency="2", MaxErrors="1")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["Mode"] == "Auto"
    assert ex["TargetParameterName"] == "Item"
    assert ex["Targets"] == [{"Key": "ParameterValues", "Values": values}]
    assert ex["MaxConcurrency"] == "2"
    assert ex["MaxErrors"] == "1"
    assert ex["ResolvedTargets"]["ParameterValues"] == values
    assert ex["ResolvedTargets"]["Truncated"] is False
    summary = ex["TargetsSummary"] if "TargetsSummary" in ex else None
    if summary is not None:
        assert summary.get("TotalCount") == 3
        assert summary.get("SuccessfulCount") == 3
        assert summary.get("FailedCount", 0) == 0
    steps = ex["StepExecutions"]
    assert sorted(s["StepName"] for s in steps) == sorted(values)
    assert {s["Action"] for s in steps} == {"aws:executeAutomation"}
    assert {s["StepStatus"] for s in steps} == {"Success"}
    for s in steps:
        assert "Item" in s["Inputs"]
        assert s["Outputs"]["ExecutionId"]

    kids = children_of(ssm, xid)
    assert sorted(k["Target"] for k in kids) == sorted(values)
    for k in kids:
        assert k["ParentAutomationExecutionId"] == xid
        assert k["AutomationExecutionStatus"] == "Success"
        assert k["DocumentName"] == name
        full = get(ssm, k["AutomationExecutionId"])
        assert full["Target"] == k["Target"]
        assert full["Parameters"] == {"Item": [k["Target"]], "Other": ["o"]}
        assert full["Outputs"] == {"work.Out": ["did " + k["Target"]]}
        assert full["ParentAutomationExecutionId"] == xid
    step_child_ids = {s["Outputs"]["ExecutionId"][0] for s in steps}
    assert step_child_ids == {k["AutomationExecutionId"] for k in kids}


@pytest.mark.parametrize("max_errors", ["1", "10%"])
def test_max_errors_stops_dispatch_at_the_exact_point(ssm, max_errors):
    name = runbook(ssm, item_doc(
        "def handler(events, context):\n"
        "    if int(events['item']) % 2:\n"
        "        raise RuntimeError('odd ' + events['item'])\n"
        "    return events['item']\n"))
    values = [str(i) for i in range(10)]
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": values}],
                MaxConcurrency="1", MaxErrors=max_errors)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=15)
    assert ex["AutomationExecutionStatus"] == "Failed"
    kids = children_of(ssm, xid)
    assert sorted(k["Target"] for k in kids) == ["0", "1", "2", "3"]
    assert {k["Target"]: k["AutomationExecutionStatus"] for k in kids} == {
        "0": "Success", "1": "Failed", "2": "Success", "3": "Failed"}
    s = ex.get("TargetsSummary")
    assert s is not None
    assert s["TotalCount"] == 10
    assert s["StartedCount"] == 4
    assert s["FailedCount"] == 2
    assert s["SuccessfulCount"] == 2
    assert ex.get("FailureMessage")
    assert sorted(st["StepName"] for st in ex["StepExecutions"] if st["StepStatus"] != "Pending") == [
        "0", "1", "2", "3"]


def test_max_errors_zero_stops_after_first_failure(ssm):
    name = runbook(ssm, item_doc(
        "def handler(events, context):\n"
        "    if events['item'] == 'b':\n"
        "        raise RuntimeError('b fails')\n"
        "    return events['item']\n"))
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": ["a", "b", "c", "d"]}],
                MaxConcurrency="1", MaxErrors="0")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Failed"
    assert sorted(k["Target"] for k in children_of(ssm, xid)) == ["a", "b"]


def test_target_maps_fan_out(ssm):
    script = "def handler(events, context):\n    return events['item'] + '/' + events['extra']\n"
    name = runbook(ssm, doc([script_step("work", script, {"item": "{{ Item }}", "extra": "{{ Extra }}"},
                                         [{"Name": "Out", "Selector": "$.Payload", "Type": "String"}])],
                            parameters={"Item": {"type": "String"},
                                        "Extra": {"type": "String", "default": "base"}},
                            outputs=["work.Out"]))
    xid = start(ssm, name, TargetMaps=[{"Item": ["x"], "Extra": ["e1"]}, {"Item": ["y"]}],
                Parameters={"Extra": ["given"]})
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert ex["TargetMaps"] == [{"Item": ["x"], "Extra": ["e1"]}, {"Item": ["y"]}]
    kids = children_of(ssm, xid)
    assert len(kids) == 2
    outs = sorted(get(ssm, k["AutomationExecutionId"])["Outputs"]["work.Out"][0] for k in kids)
    assert outs == ["x/e1", "y/given"]
    assert len(ex["StepExecutions"]) == 2
    assert {s["Action"] for s in ex["StepExecutions"]} == {"aws:executeAutomation"}


def test_target_maps_with_bad_parameters_are_refused(ssm):
    name = runbook(ssm, item_doc("def handler(events, context):\n    return 'x'\n"))
    expect_error("InvalidAutomationExecutionParametersException", ssm.start_automation_execution,
                 DocumentName=name, TargetMaps=[{"Item": ["x"]}, {"Nope": ["y"]}])


@pytest.mark.parametrize("kw", [
    {"MaxConcurrency": "0"},
    {"MaxConcurrency": "101%"},
    {"MaxErrors": "-1"},
    {"MaxErrors": "5.5"},
])
def test_bad_rate_values_are_refused(ssm, kw):
    name = runbook(ssm, item_doc("def handler(events, context):\n    return 'x'\n"))
    expect_error("ValidationException", ssm.start_automation_execution, DocumentName=name,
                 TargetParameterName="Item", Targets=[{"Key": "ParameterValues", "Values": ["a"]}], **kw)


def test_target_parameter_name_must_be_declared(ssm):
    name = runbook(ssm, item_doc("def handler(events, context):\n    return 'x'\n"))
    with pytest.raises(ClientError) as e:
        ssm.start_automation_execution(DocumentName=name, TargetParameterName="Nope",
                                       Targets=[{"Key": "ParameterValues", "Values": ["a"]}])
    assert error_code(e) in ("InvalidAutomationExecutionParametersException", "ValidationException")
    with pytest.raises(ClientError) as e:
        ssm.start_automation_execution(DocumentName=name, TargetParameterName="Item",
                                       Targets=[{"Key": "ResourceGroup", "Values": ["prod"]}])
    assert error_code(e) in ("InvalidTarget", "ValidationException")


def test_cancel_rate_controlled_parent(ssm):
    name = runbook(ssm, doc([sleep_step("wait", "PT30S")], parameters={"Item": {"type": "String"}}))
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": ["a", "b", "c", "d"]}], MaxConcurrency="2")
    deadline = time.monotonic() + 8
    while True:
        kids = children_of(ssm, xid)
        if len(kids) == 2 and all(k["AutomationExecutionStatus"] == "InProgress" for k in kids):
            break
        assert time.monotonic() < deadline, kids
        time.sleep(0.1)
    ssm.stop_automation_execution(AutomationExecutionId=xid)
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, 5)
    assert ex["AutomationExecutionStatus"] == "Cancelled"
    for k in kids:
        kx = wait_for_status(ssm, k["AutomationExecutionId"], AUTOMATION_TERMINAL, 5)
        assert kx["AutomationExecutionStatus"] == "Cancelled"
    time.sleep(0.3)
    assert len(children_of(ssm, xid)) == 2


def child_log_doc(log, seconds=0.3):
    script = f"""\
        import time

        def handler(events, context):
            with open(events["log"], "a") as f:
                f.write("start %s %.6f\\n" % (events["item"], time.time()))
            time.sleep({seconds})
            with open(events["log"], "a") as f:
                f.write("end %s %.6f\\n" % (events["item"], time.time()))
            return events["item"]
        """
    return doc([script_step("work", script, {"item": "{{ Item }}", "log": log})],
               parameters={"Item": {"type": "String"}})


def read_log(log):
    """[(time, +1 start / -1 end, item)] from a child_log_doc log."""
    events = []
    for line in open(log).read().splitlines():
        kind, item, t = line.split()
        events.append((float(t), 1 if kind == "start" else -1, item))
    return sorted(events, key=lambda e: (e[0], e[1]))


def test_rate_control_starts_up_to_max_concurrency_at_once(ssm):
    # ssmd does not ramp up Automation fan-outs (docs/compat.md, Automation): up to MaxConcurrency
    # children start together.
    log = os.path.join(tempfile.mkdtemp(prefix="ssmd-ramp-"), "log")
    name = runbook(ssm, child_log_doc(log, seconds=1.0))
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": ["a", "b", "c", "d"]}], MaxConcurrency="10")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=15)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    events = read_log(log)
    first_end = min(t for t, d, item in events if d == -1)
    starts = [t for t, d, item in events if d == 1]
    assert len(starts) == 4 and max(starts) < first_end, f"all four should run together: {events}"


def test_concurrency_is_never_exceeded(ssm):
    log_dir = tempfile.mkdtemp(prefix="ssmd-conc-")
    log = os.path.join(log_dir, "log")
    script = """\
        import time

        def handler(events, context):
            with open(events["log"], "a") as f:
                f.write("start %s %.6f\\n" % (events["item"], time.time()))
            time.sleep(0.4)
            with open(events["log"], "a") as f:
                f.write("end %s %.6f\\n" % (events["item"], time.time()))
            return events["item"]
        """
    name = runbook(ssm, doc([script_step("work", script, {"item": "{{ Item }}", "log": log})],
                            parameters={"Item": {"type": "String"}}))
    values = [f"v{i}" for i in range(6)]
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": values}], MaxConcurrency="2")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=15)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    events = []
    for line in open(log).read().splitlines():
        kind, item, t = line.split()
        events.append((float(t), 1 if kind == "start" else -1, item))
    assert sorted(e[2] for e in events if e[1] == 1) == values
    running, peak = 0, 0
    for _, delta, _ in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    assert peak <= 2, events
    assert peak == 2, "MaxConcurrency 2 should let two children run at once"
    # The children's own start/end times agree.
    kids = children_of(ssm, xid)
    spans = [(k["ExecutionStartTime"], k["ExecutionEndTime"]) for k in kids]
    for t, _ in spans:
        assert sum(1 for s, e in spans if s <= t < e) <= 2


# --------------------------------------------------------------------------- 9. listing, tags, isolation


def test_describe_automation_executions_filters(server, ssm):
    prefix = unique_name("desc")
    a = runbook(ssm, doc([sleep_step("s")]), name=prefix + "-a")
    b = runbook(ssm, doc([fail_step("f")]), name=prefix + "-b")
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    ida1 = start(ssm, a, Tags=[{"Key": "team", "Value": "blue"}])
    ida2 = start(ssm, a)
    idb = start(ssm, b, Tags=[{"Key": "env", "Value": "x"}])
    for x in (ida1, ida2, idb):
        wait_for_status(ssm, x, AUTOMATION_TERMINAL)

    def ids(*filters, **kw):
        out, token = [], None
        while True:
            args = dict(Filters=list(filters), **kw)
            if token:
                args["NextToken"] = token
            page = ssm.describe_automation_executions(**args)
            out += [m["AutomationExecutionId"] for m in page["AutomationExecutionMetadataList"]]
            token = page.get("NextToken")
            if not token:
                return out

    pre = {"Key": "DocumentNamePrefix", "Values": [prefix]}
    assert sorted(ids(pre)) == sorted([ida1, ida2, idb])
    assert sorted(ids({"Key": "DocumentNamePrefix", "Values": [prefix + "-a"]})) == sorted([ida1, ida2])
    assert ids({"Key": "ExecutionId", "Values": [idb]}) == [idb]
    assert sorted(ids({"Key": "ExecutionId", "Values": [ida1, idb]})) == sorted([ida1, idb])
    assert ids(pre, {"Key": "ExecutionStatus", "Values": ["Failed"]}) == [idb]
    assert sorted(ids(pre, {"Key": "ExecutionStatus", "Values": ["Success", "Failed"]})) == sorted(
        [ida1, ida2, idb])
    assert sorted(ids(pre, {"Key": "StartTimeAfter",
                            "Values": [before.strftime("%Y-%m-%dT%H:%M:%SZ")]})) == sorted([ida1, ida2, idb])
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(pre, {"Key": "StartTimeAfter", "Values": [future]}) == []
    assert sorted(ids(pre, {"Key": "StartTimeBefore", "Values": [future]})) == sorted([ida1, ida2, idb])
    assert ids(pre, {"Key": "TagKey", "Values": ["team"]}) == [ida1]
    assert sorted(ids(pre, {"Key": "TagKey", "Values": ["team", "env"]})) == sorted([ida1, idb])
    assert ids(pre, {"Key": "ParentExecutionId", "Values": [str(uuid.uuid4())]}) == []
    assert ids(pre, {"Key": "AutomationType", "Values": ["CrossAccount"]}) == []
    assert len(ids(pre, {"Key": "AutomationType", "Values": ["Local"]})) == 3

    # Pagination: one per page, newest first, no repeats.
    pages, token = [], None
    while True:
        args = dict(Filters=[pre], MaxResults=1)
        if token:
            args["NextToken"] = token
        page = ssm.describe_automation_executions(**args)
        assert len(page["AutomationExecutionMetadataList"]) <= 1
        pages += [m["AutomationExecutionId"] for m in page["AutomationExecutionMetadataList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(pages) == sorted([ida1, ida2, idb])
    assert len(pages) == 3
    # Unknown keys fail the model's enum constraint, as on AWS.
    raw = server.client(parameter_validation=False)
    expect_error("ValidationException", raw.describe_automation_executions,
                 Filters=[{"Key": "Bogus", "Values": ["x"]}])
    # CurrentAction of finished executions is empty.
    assert ids(pre, {"Key": "CurrentAction", "Values": ["aws:sleep"]}) == []
    expect_error("InvalidFilterValue", ssm.describe_automation_executions,
                 Filters=[{"Key": "StartTimeAfter", "Values": ["yesterday"]}])


def test_describe_executions_pages_stay_stable_when_executions_start(ssm):
    prefix = unique_name("pages")
    name = runbook(ssm, doc([sleep_step("s")]), name=prefix)
    first = [start(ssm, name) for _ in range(3)]
    pre = [{"Key": "DocumentNamePrefix", "Values": [prefix]}]
    page = ssm.describe_automation_executions(Filters=pre, MaxResults=1)
    seen = [m["AutomationExecutionId"] for m in page["AutomationExecutionMetadataList"]]
    token = page["NextToken"]
    # A new execution starts between two pages: the pages go on where they left off.
    late = start(ssm, name)
    while token:
        page = ssm.describe_automation_executions(Filters=pre, MaxResults=1, NextToken=token)
        seen += [m["AutomationExecutionId"] for m in page["AutomationExecutionMetadataList"]]
        token = page.get("NextToken")
    assert len(seen) == len(set(seen)), f"an execution was listed twice: {seen}"
    assert set(first) <= set(seen)
    assert set(seen) <= set(first) | {late}


def test_describe_executions_lists_newest_first(ssm):
    prefix = unique_name("order")
    name = runbook(ssm, doc([sleep_step("s")]), name=prefix)
    first = start(ssm, name)
    time.sleep(0.05)
    second = start(ssm, name)
    page = ssm.describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [prefix]}])["AutomationExecutionMetadataList"]
    assert [m["AutomationExecutionId"] for m in page] == [second, first]


def test_describe_step_executions_filters_order_and_pages(server, ssm):
    steps = [sleep_step("a"), fail_step("b", onFailure="Continue"), sleep_step("c"),
             sleep_step("d", isEnd=True), sleep_step("e")]
    _, xid, ex = run(ssm, doc(steps))
    everything = ssm.describe_automation_step_executions(AutomationExecutionId=xid)["StepExecutions"]
    assert [s["StepName"] for s in everything] == ["a", "b", "c", "d", "e"]
    assert [s["StepExecutionId"] for s in everything] == [s["StepExecutionId"] for s in ex["StepExecutions"]]
    rev = ssm.describe_automation_step_executions(AutomationExecutionId=xid, ReverseOrder=True)
    assert [s["StepName"] for s in rev["StepExecutions"]] == ["e", "d", "c", "b", "a"]

    def names(**kw):
        return [s["StepName"] for s in all_step_executions(ssm, xid, **kw)]

    assert names(Filters=[{"Key": "StepExecutionStatus", "Values": ["Failed"]}]) == ["b"]
    assert names(Filters=[{"Key": "StepExecutionStatus", "Values": ["Pending"]}]) == ["e"]
    assert names(Filters=[{"Key": "StepName", "Values": ["c", "a"]}]) == ["a", "c"]
    assert names(Filters=[{"Key": "Action", "Values": ["aws:executeScript"]}]) == ["b"]
    sid = everything[2]["StepExecutionId"]
    assert names(Filters=[{"Key": "StepExecutionId", "Values": [sid]}]) == ["c"]
    assert names(Filters=[{"Key": "StepName", "Values": ["a", "b", "c"]},
                          {"Key": "StepExecutionStatus", "Values": ["Success"]}]) == ["a", "c"]
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert names(Filters=[{"Key": "StartTimeAfter", "Values": [future]}]) == []
    assert names(Filters=[{"Key": "StartTimeBefore", "Values": [future]}]) == ["a", "b", "c", "d"]

    page1 = ssm.describe_automation_step_executions(AutomationExecutionId=xid, MaxResults=2)
    assert [s["StepName"] for s in page1["StepExecutions"]] == ["a", "b"]
    assert page1["NextToken"]
    assert names(MaxResults=2) == ["a", "b", "c", "d", "e"]
    assert names(MaxResults=2, ReverseOrder=True) == ["e", "d", "c", "b", "a"]
    expect_error("ValidationException", server.client(parameter_validation=False).describe_automation_step_executions,
                 AutomationExecutionId=xid, Filters=[{"Key": "Bogus", "Values": ["x"]}])
    expect_error("InvalidFilterValue", ssm.describe_automation_step_executions,
                 AutomationExecutionId=xid, Filters=[{"Key": "StartTimeAfter", "Values": ["soon"]}])
    expect_error("InvalidNextToken", ssm.describe_automation_step_executions,
                 AutomationExecutionId=xid, NextToken="garbage")


def test_tags_on_automation_executions(ssm):
    name = runbook(ssm, doc([sleep_step("s")]))
    xid = start(ssm, name, Tags=[{"Key": "team", "Value": "blue"}, {"Key": "cost", "Value": "1"}])
    tags = ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=xid)["TagList"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("cost", "1"), ("team", "blue")]
    ssm.add_tags_to_resource(ResourceType="Automation", ResourceId=xid,
                             Tags=[{"Key": "team", "Value": "red"}, {"Key": "new", "Value": ""}])
    ssm.remove_tags_from_resource(ResourceType="Automation", ResourceId=xid, TagKeys=["cost"])
    tags = ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=xid)["TagList"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("new", ""), ("team", "red")]
    with pytest.raises(ClientError) as e:
        ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=str(uuid.uuid4()))
    assert error_code(e) in ("InvalidResourceId", "AutomationExecutionNotFoundException")


def test_other_accounts_cannot_see_or_steer_an_execution(ssm, new_account):
    other = new_account()
    name = runbook(ssm, doc([{"name": "hold", "action": "aws:pause", "inputs": {}}]))
    xid = start(ssm, name, Tags=[{"Key": "k", "Value": "v"}])
    wait_for_status(ssm, xid, "Waiting")
    c = other.client
    expect_error("AutomationExecutionNotFoundException", c.get_automation_execution, AutomationExecutionId=xid)
    expect_error("AutomationExecutionNotFoundException", c.describe_automation_step_executions,
                 AutomationExecutionId=xid)
    expect_error("AutomationExecutionNotFoundException", c.send_automation_signal,
                 AutomationExecutionId=xid, SignalType="Resume", Payload={"StepName": ["hold"]})
    expect_error("AutomationExecutionNotFoundException", c.stop_automation_execution,
                 AutomationExecutionId=xid)
    listed = c.describe_automation_executions()["AutomationExecutionMetadataList"]
    assert xid not in [m["AutomationExecutionId"] for m in listed]
    with pytest.raises(ClientError):
        c.list_tags_for_resource(ResourceType="Automation", ResourceId=xid)
    with pytest.raises(ClientError):
        c.add_tags_to_resource(ResourceType="Automation", ResourceId=xid, Tags=[{"Key": "x", "Value": "y"}])
    # Nor can it start the root account's (unshared) runbook.
    expect_error("AutomationDefinitionNotFoundException", c.start_automation_execution, DocumentName=name)
    # The execution is untouched.
    assert get(ssm, xid)["AutomationExecutionStatus"] == "Waiting"
    ssm.send_automation_signal(AutomationExecutionId=xid, SignalType="Resume", Payload={"StepName": ["hold"]})
    assert wait_for_status(ssm, xid, AUTOMATION_TERMINAL)["AutomationExecutionStatus"] == "Success"
    assert ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=xid)["TagList"] == [
        {"Key": "k", "Value": "v"}]


def fifty_target_doc(sleep="PT0S") -> dict:
    """A child that sleeps, then fails when its Item starts with "bad" (an SSM call that errors)."""
    return doc([
        sleep_step("nap", sleep),
        {"name": "route", "action": "aws:branch", "inputs": {
            "Choices": [{"NextStep": "boom", "Variable": "{{ Item }}", "StartsWith": "bad"}],
            "Default": "fine"}},
        {"name": "fine", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}, "isEnd": True},
        {"name": "boom", "action": "aws:executeAwsApi",
         "inputs": {"Service": "ssm", "Api": "GetDocument", "Name": "no-such-document-anywhere"}},
    ], parameters={"Item": {"type": "String"}})


def fifty_values():
    # Every fourth target fails: bad3, bad7, bad11, ... — the sixth failure is bad23.
    return [f"bad{i}" if i % 4 == 3 else f"ok{i}" for i in range(50)]


def test_fifty_targets_stop_exactly_at_error_e_plus_one(ssm):
    name = runbook(ssm, fifty_target_doc())
    values = fifty_values()
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": values}],
                MaxConcurrency="1", MaxErrors="10%")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=60)
    assert ex["AutomationExecutionStatus"] == "Failed"
    # 10% of 50 tolerates 5 errors; the 6th (bad23, the 24th target) stops dispatch.
    assert sorted(k["Target"] for k in children_of(ssm, xid)) == sorted(values[:24])
    s = ex["TargetsSummary"]
    assert (s["TotalCount"], s["StartedCount"], s["FailedCount"], s["SuccessfulCount"]) == (50, 24, 6, 18)


def test_fifty_targets_never_exceed_max_concurrency(ssm):
    name = runbook(ssm, fifty_target_doc("PT1S"))
    values = fifty_values()
    xid = start(ssm, name, TargetParameterName="Item",
                Targets=[{"Key": "ParameterValues", "Values": values}],
                MaxConcurrency="5", MaxErrors="10%")
    ex = wait_for_status(ssm, xid, AUTOMATION_TERMINAL, timeout=60)
    assert ex["AutomationExecutionStatus"] == "Failed"
    kids = children_of(ssm, xid)
    events = []
    for k in kids:
        events.append((k["ExecutionStartTime"].timestamp(), 1))
        events.append((k["ExecutionEndTime"].timestamp(), -1))
    running = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        running += d
        peak = max(peak, running)
    assert peak <= 5, f"{peak} children ran at once"
    failed = [k for k in kids if k["AutomationExecutionStatus"] == "Failed"]
    started = {k["Target"] for k in kids}
    # Dispatch stops once the 6th failure arrives; children finish in any order, so a few
    # targets after bad23 may have started before it failed (the exact stop point is checked with
    # MaxConcurrency 1 above), but never all of them.
    assert all(v in started for v in values[:24]) and len(kids) < 50, sorted(started)
    assert len(failed) >= 6
    assert len(failed) == sum(1 for k in kids if k["Target"].startswith("bad")), "exactly the bad targets fail"
    assert ex["TargetsSummary"]["StartedCount"] == len(kids)
    # No child starts once the 6th failure has arrived (a second of slack for the parent to see it).
    sixth_end = sorted(k["ExecutionEndTime"].timestamp() for k in failed)[5]
    late = [k["Target"] for k in kids if k["ExecutionStartTime"].timestamp() > sixth_end + 1.0]
    assert not late, f"started after the 6th failure: {late}"
