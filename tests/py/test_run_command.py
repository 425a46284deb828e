"""Run Command through boto3 against the real binary: SendCommand, ListCommands,
ListCommandInvocations, GetCommandInvocation, CancelCommand, and the node side
(EC2WindowsMessageDeliveryService: GetMessages, AcknowledgeMessage, SendReply, FailMessage,
DeleteMessage) played step by step by `FakeNode`s registered with an activation in a fresh
account per test.

Polling: a GetMessages with nothing queued is held ~15 s, and the server does not abandon a poll
whose client went away (it may still take a message). So a test only calls `node.messages()` when
a message is known to be queued, and uses a background `Poller` (the agent's endless loop) where
it must see that a node gets nothing.

Slow checks run in the background (`background` below): one held long poll (~15 s) and one
delivery timeout (TimeoutSeconds 30, the model's minimum) are started when the first test of the
module runs against a server and checked by the module's last test, so they cost no wall time.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
import urllib3
import yaml
from botocore.auth import SigV4Auth
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import WaiterError

from fake_node import FakeNode, call, final, in_progress, run
from ssmd_helpers import REGION, ROOT_KEY, ROOT_SECRET, expect_error, unique_name

DOC = "AWS-RunShellScript"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ELAPSED = re.compile(r"^PT\d+\.\d{3}S$")
SEND_TOPIC = "aws.ssm.sendCommand." + REGION.replace("-", ".") + ".1"
COMMAND_KEYS = {
    "CommandId", "DocumentName", "DocumentVersion", "Comment", "ExpiresAfter", "Parameters", "InstanceIds",
    "Targets", "RequestedDateTime", "Status", "StatusDetails", "OutputS3Region", "OutputS3BucketName",
    "OutputS3KeyPrefix", "MaxConcurrency", "MaxErrors", "TargetCount", "CompletedCount", "ErrorCount",
    "DeliveryTimedOutCount", "ServiceRole", "NotificationConfig", "CloudWatchOutputConfig", "TimeoutSeconds",
}
EMPTY_NOTIFICATION = {"NotificationArn": "", "NotificationEvents": [], "NotificationType": ""}
NO_CLOUDWATCH = {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}
# The agent's reply while its plugin runs (what it sends between the first reply and the result).
PLUGIN_RUNNING = {"documentStatus": "InProgress", "runtimeStatus": {"aws:runShellScript": {
    "status": "InProgress", "code": 0, "name": "aws:runShellScript", "output": "half",
    "standardOutput": "half", "standardError": ""}}}
GRACE = 0.4  # how long a node that should get nothing is watched (the server wakes polls in ms)


# --------------------------------------------------------------------------- helpers


class Fleet:
    """A fresh account with `n` registered, pinged nodes (`nodeI.local`)."""

    def __init__(self, server, account, n: int):
        self.server = server
        self.account = account
        self.ssm = account.client
        self.nodes: list[FakeNode] = []
        self.add(n)

    def add(self, n: int, ping: bool = True) -> list[FakeNode]:
        if n == 0:
            return []
        act = self.ssm.create_activation(IamRole="SSMServiceRole", RegistrationLimit=n)
        made = [
            FakeNode.register(
                self.server.endpoint, REGION, act["ActivationId"], act["ActivationCode"], ping=ping,
                computer_name=f"node{len(self.nodes) + i}.local",
            )
            for i in range(n)
        ]
        self.nodes += made
        return made

    @property
    def ids(self) -> list[str]:
        return [n.instance_id for n in self.nodes]

    def send(self, nodes=None, commands=("echo hi",), **kw) -> dict:
        """SendCommand of AWS-RunShellScript to `nodes` (default: all); returns the Command."""
        if "Targets" not in kw:
            kw["InstanceIds"] = [n.instance_id for n in (self.nodes if nodes is None else nodes)]
        kw.setdefault("DocumentName", DOC)
        if kw["DocumentName"] == DOC:
            kw.setdefault("Parameters", {"commands": list(commands)})
        return self.ssm.send_command(**kw)["Command"]

    def command(self, command_id: str) -> dict:
        found = self.ssm.list_commands(CommandId=command_id)["Commands"]
        assert len(found) == 1, found
        return found[0]

    def inv(self, command_id: str, node: FakeNode, **kw) -> dict:
        return self.ssm.get_command_invocation(CommandId=command_id, InstanceId=node.instance_id, **kw)

    def invocations(self, command_id: str, details: bool = False) -> list[dict]:
        return self.ssm.list_command_invocations(CommandId=command_id, Details=details)["CommandInvocations"]

    def statuses(self, command_id: str) -> dict:
        """{instance id: (Status, StatusDetails)} of a command's invocations."""
        return {i["InstanceId"]: (i["Status"], i["StatusDetails"]) for i in self.invocations(command_id)}

    def state(self, command_id: str) -> tuple:
        c = self.command(command_id)
        return (c["Status"], c["StatusDetails"], c["TargetCount"], c["CompletedCount"], c["ErrorCount"],
                c["DeliveryTimedOutCount"])


@pytest.fixture
def fleet(server, new_account):
    """`fleet(n)`: a fresh account with n managed nodes."""
    return lambda n=1: Fleet(server, new_account(), n)


def one_message(node: FakeNode, **kw) -> dict:
    got = node.messages(**kw)
    assert len(got) == 1, got
    return got[0]


def msg_id(command_id: str, node: FakeNode) -> str:
    return f"aws.ssm.{command_id}.{node.instance_id}"


def wait_until(fn, timeout: float = 5.0, interval: float = 0.1):
    """Polls `fn` until it returns something truthy; returns it, or fails with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last {value!r})")
        time.sleep(interval)


def received(pollers: dict, wait: float = GRACE) -> dict:
    """{node id: [message ids]} received by the pollers within `wait` seconds (nodes with none left out)."""
    time.sleep(wait)
    out = {}
    for node_id, p in pollers.items():
        got = [m["MessageId"] for m in p.drain()]
        if got:
            out[node_id] = got
    return out


def code_of(r) -> str | None:
    return r.json().get("__type") if r.status != 200 else None


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds, rounded to the millisecond the server stored."""
    ms = round(dt.timestamp() * 1000)
    whole = datetime.fromtimestamp(ms // 1000, timezone.utc)
    return whole.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --------------------------------------------------------------------------- background slow checks

LONG_POLL_S = 15.0


@pytest.fixture(scope="module", autouse=True)
def background(server):
    """Starts the two slow checks for this server (see the module docstring); the last test of
    the module checks them."""
    acct = server.create_account()
    fl = Fleet(server, acct, 3)
    held_node, slow_a, slow_b = fl.nodes
    # (1) THE one held long poll of the suite: nothing is queued for held_node, ever.
    held = {}

    def poll():
        t0 = time.monotonic()
        try:
            r = held_node.get_messages(timeout=25)
        except Exception as e:  # noqa: BLE001 - e.g. the server stopped: only the last test looks
            held.update(error=repr(e))
            return
        held.update(elapsed=time.monotonic() - t0, status=r.status, body=r.json())

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    # (2) Delivery timeout: slow_a takes its message and never acknowledges it; slow_b (after
    # slow_a, MaxConcurrency 1) is never sent anything. TimeoutSeconds 30 is the minimum.
    cmd = fl.send([slow_a, slow_b], TimeoutSeconds=30, MaxConcurrency="1")
    taken = one_message(slow_a, visibility=3600)
    yield dict(fleet=fl, thread=thread, held=held, held_node=held_node, cmd=cmd, taken=taken, a=slow_a, b=slow_b)


# --------------------------------------------------------------------------- SendCommand


def test_send_command_response_shape(fleet):
    fl = fleet(2)
    before = datetime.now(timezone.utc)
    c = fl.send(Comment="hello", TimeoutSeconds=600)
    assert set(c) == COMMAND_KEYS, set(c) ^ COMMAND_KEYS
    assert UUID.match(c["CommandId"]), c["CommandId"]
    assert c["DocumentName"] == DOC
    assert c["DocumentVersion"] == "1"
    assert c["Comment"] == "hello"
    assert abs((c["RequestedDateTime"] - before).total_seconds()) < 5
    # ExpiresAfter: the delivery timeout plus the execution timeout (AWS-RunShellScript's
    # executionTimeout defaults to 3600 s).
    assert (c["ExpiresAfter"] - c["RequestedDateTime"]) == timedelta(seconds=600 + 3600)
    assert c["Parameters"] == {"commands": ["echo hi"]}
    assert c["InstanceIds"] == fl.ids
    assert c["Targets"] == []
    assert (c["Status"], c["StatusDetails"]) == ("Pending", "Pending")
    assert (c["MaxConcurrency"], c["MaxErrors"]) == ("50", "0")
    assert (c["TargetCount"], c["CompletedCount"], c["ErrorCount"], c["DeliveryTimedOutCount"]) == (2, 0, 0, 0)
    assert c["TimeoutSeconds"] == 600
    assert (c["OutputS3Region"], c["OutputS3BucketName"], c["OutputS3KeyPrefix"]) == (REGION, "", "")
    assert c["ServiceRole"] == ""
    assert c["NotificationConfig"] == EMPTY_NOTIFICATION
    assert c["CloudWatchOutputConfig"] == NO_CLOUDWATCH
    # ListCommands reports the same command while nothing has happened.
    assert fl.command(c["CommandId"]) == c

    # Defaults: TimeoutSeconds 3600, no comment.
    d = fl.send(fl.nodes[:1])
    assert d["TimeoutSeconds"] == 3600
    assert (d["ExpiresAfter"] - d["RequestedDateTime"]) == timedelta(seconds=3600 + 3600)
    assert d["Comment"] == ""
    assert d["TargetCount"] == 1

    # Every invocation exists at once, Pending (never InvocationDoesNotExist).
    for node in fl.nodes:
        i = fl.inv(c["CommandId"], node)
        assert (i["CommandId"], i["InstanceId"]) == (c["CommandId"], node.instance_id)
        assert (i["Status"], i["StatusDetails"]) == ("Pending", "Pending")
        assert (i["Comment"], i["DocumentName"], i["DocumentVersion"]) == ("hello", DOC, "1")
        assert (i["ResponseCode"], i["PluginName"]) == (-1, "")
        assert (i["ExecutionStartDateTime"], i["ExecutionEndDateTime"], i["ExecutionElapsedTime"]) == ("", "", "")
        assert (i["StandardOutputContent"], i["StandardErrorContent"]) == ("", "")
        assert i["CloudWatchOutputConfig"] == NO_CLOUDWATCH
    invs = fl.invocations(c["CommandId"])
    assert [i["InstanceId"] for i in invs] == fl.ids
    assert [i["InstanceName"] for i in invs] == ["node0.local", "node1.local"]
    for i in invs:
        assert (i["Status"], i["StatusDetails"], i["CommandPlugins"]) == ("Pending", "Pending", [])
        assert i["RequestedDateTime"] == c["RequestedDateTime"]
        assert (i["Comment"], i["DocumentName"], i["DocumentVersion"]) == ("hello", DOC, "1")


def test_send_command_echoes_outputs_and_notification_settings(fleet):
    fl = fleet(1)
    cw = {"CloudWatchLogGroupName": "group-1", "CloudWatchOutputEnabled": True}
    c = fl.send(OutputS3BucketName="bucket-1", OutputS3KeyPrefix="pre/fix", OutputS3Region="eu-west-1",
                CloudWatchOutputConfig=cw, MaxConcurrency="10%", MaxErrors="5")
    assert (c["OutputS3BucketName"], c["OutputS3KeyPrefix"], c["OutputS3Region"]) == ("bucket-1", "pre/fix", "eu-west-1")
    assert c["CloudWatchOutputConfig"] == cw
    assert (c["MaxConcurrency"], c["MaxErrors"]) == ("10%", "5")
    payload = json.loads(one_message(fl.nodes[0])["Payload"])
    assert (payload["OutputS3BucketName"], payload["OutputS3KeyPrefix"]) == ("bucket-1", "pre/fix")
    assert (payload["CloudWatchLogGroupName"], payload["CloudWatchOutputEnabled"]) == ("group-1", "true")


def test_payload_a_node_receives(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    c = fl.send(commands=["echo one", "echo two"])
    m = one_message(node)
    assert set(m) == {"CreatedDate", "Destination", "MessageId", "Payload", "PayloadDigest", "Topic"}
    assert m["Topic"] == SEND_TOPIC and m["Topic"].startswith("aws.ssm.sendCommand")
    assert m["MessageId"] == f"aws.ssm.{c['CommandId']}.{node.instance_id}"
    # The AWS agent takes the command id as the second-to-last dot-separated token.
    assert m["MessageId"].split(".")[-2] == c["CommandId"]
    assert m["Destination"] == node.instance_id
    assert ISO_MS.match(m["CreatedDate"]) and len(m["CreatedDate"]) >= 24, m["CreatedDate"]
    created = datetime.strptime(m["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs((created - c["RequestedDateTime"]).total_seconds()) < 2
    assert m["PayloadDigest"] == hashlib.sha256(m["Payload"].encode()).hexdigest()
    p = json.loads(m["Payload"])
    assert set(p) == {"Parameters", "DocumentContent", "CommandId", "DocumentName", "OutputS3KeyPrefix",
                      "OutputS3BucketName", "CloudWatchLogGroupName", "CloudWatchOutputEnabled"}
    assert p["CommandId"] == c["CommandId"]
    assert p["DocumentName"] == DOC
    # Resolved parameters: the defaults are filled in, as the agent substitutes them itself.
    assert p["Parameters"] == {"commands": ["echo one", "echo two"], "workingDirectory": "", "executionTimeout": "3600"}
    content = p["DocumentContent"]
    assert content["schemaVersion"] == "1.2"
    assert content["runtimeConfig"]["aws:runShellScript"]["properties"][0]["runCommand"] == "{{ commands }}"
    assert set(content["parameters"]) == {"commands", "workingDirectory", "executionTimeout"}
    assert (p["OutputS3KeyPrefix"], p["OutputS3BucketName"], p["CloudWatchLogGroupName"]) == ("", "", "")
    assert p["CloudWatchOutputEnabled"] == "false"


def test_payload_carries_the_whole_document_of_the_chosen_version(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    name = unique_name("cmd")
    v1 = {
        "schemaVersion": "2.2",
        "description": "greets",
        "parameters": {
            "greeting": {"type": "String", "default": "hi"},
            "names": {"type": "StringList", "default": ["a", "b"]},
            "loud": {"type": "Boolean", "default": False},
        },
        "mainSteps": [{"action": "aws:runShellScript", "name": "greet",
                       "inputs": {"runCommand": ["echo {{ greeting }} {{ names }}"]}}],
    }
    fl.ssm.create_document(Name=name, Content=json.dumps(v1), DocumentType="Command", DocumentFormat="JSON")
    v2 = dict(v1, description="greets louder")
    v2_yaml = yaml.safe_dump(v2)
    fl.ssm.update_document(Name=name, Content=v2_yaml, DocumentFormat="YAML", DocumentVersion="$LATEST")

    c = fl.send(DocumentName=name, Parameters={"greeting": ["yo"]})
    assert (c["DocumentName"], c["DocumentVersion"]) == (name, "1")  # the default version
    assert c["Parameters"] == {"greeting": ["yo"]}
    p = json.loads(one_message(node)["Payload"])
    assert p["DocumentContent"] == v1
    assert p["DocumentName"] == name
    assert p["Parameters"] == {"greeting": "yo", "names": ["a", "b"], "loud": False}
    run(node, {"MessageId": msg_id(c["CommandId"], node)})

    c2 = fl.send(DocumentName=name, DocumentVersion="$LATEST")
    assert c2["DocumentVersion"] == "2"
    assert json.loads(one_message(node)["Payload"])["DocumentContent"] == yaml.safe_load(v2_yaml)

    # DocumentHash: the version's sha256 passes; any other is InvalidDocument.
    digest = hashlib.sha256(json.dumps(v1).encode()).hexdigest()
    c3 = fl.send(DocumentName=name, DocumentVersion="1", DocumentHash=digest, DocumentHashType="Sha256")
    assert c3["DocumentVersion"] == "1"
    expect_error("InvalidDocument", fl.ssm.send_command, InstanceIds=fl.ids, DocumentName=name,
                 DocumentHash="0" * 64, DocumentHashType="Sha256")


def test_get_messages_hands_out_at_most_ten_oldest_first(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    sent = []
    for _ in range(12):
        sent.append(fl.send()["CommandId"])
        time.sleep(0.003)
    first = node.messages(visibility=60)
    assert [m["MessageId"] for m in first] == [msg_id(c, node) for c in sent[:10]]
    assert [m["MessageId"] for m in node.messages(visibility=60)] == [msg_id(c, node) for c in sent[10:]]
    assert len({m["CreatedDate"] for m in first}) >= 2


def test_long_poll_is_answered_as_soon_as_a_command_arrives(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    out = {}

    def poll():
        r = node.get_messages(timeout=25)
        out.update(at=time.monotonic(), status=r.status, messages=r.json()["Messages"])

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    time.sleep(0.5)  # the poll is waiting now
    assert "at" not in out, "a poll with nothing queued was answered at once"
    sent_at = time.monotonic()
    c = fl.send()
    t.join(5)
    assert out["status"] == 200
    assert out["at"] - sent_at < 1.0, out["at"] - sent_at
    assert [m["MessageId"] for m in out["messages"]] == [msg_id(c["CommandId"], node)]


# --------------------------------------------------------------------------- the agent's sequence


def test_success_sequence(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    c = fl.send(Comment="seq")
    cid = c["CommandId"]
    m = one_message(node)
    # Handed out but not picked up yet: still Pending.
    assert fl.inv(cid, node)["Status"] == "Pending"
    assert fl.command(cid)["Status"] == "Pending"

    assert node.reply(m["MessageId"], in_progress()).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"]) == ("InProgress", "InProgress")
    assert ISO_MS.match(i["ExecutionStartDateTime"]), i
    assert (i["ExecutionEndDateTime"], i["ExecutionElapsedTime"], i["ResponseCode"]) == ("", "", -1)
    assert fl.state(cid)[:4] == ("InProgress", "InProgress", 1, 0)

    assert node.ack(m["MessageId"]).status == 200
    time.sleep(0.05)
    r = node.reply(m["MessageId"], final("Success", 0, stdout="hello\n"))
    assert r.status == 200 and r.json() == {}, r.body
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"], i["ResponseCode"]) == ("Success", "Success", 0)
    assert i["PluginName"] == "aws:runShellScript"
    assert (i["StandardOutputContent"], i["StandardErrorContent"]) == ("hello\n", "")
    assert (i["StandardOutputUrl"], i["StandardErrorUrl"]) == ("", "")
    assert ISO_MS.match(i["ExecutionEndDateTime"]) and ELAPSED.match(i["ExecutionElapsedTime"]), i
    assert i["ExecutionEndDateTime"] >= i["ExecutionStartDateTime"]
    assert i["Comment"] == "seq"
    assert fl.state(cid) == ("Success", "Success", 1, 1, 0, 0)
    # The plugin's own view is the same.
    assert fl.inv(cid, node, PluginName="aws:runShellScript")["StandardOutputContent"] == "hello\n"

    [detailed] = fl.invocations(cid, details=True)
    assert (detailed["Status"], detailed["StatusDetails"], detailed["InstanceName"]) == ("Success", "Success", "node0.local")
    [plugin] = detailed["CommandPlugins"]
    assert plugin["Name"] == "aws:runShellScript"
    assert (plugin["Status"], plugin["StatusDetails"], plugin["ResponseCode"]) == ("Success", "Success", 0)
    assert plugin["Output"] == "hello\n"
    assert (plugin["OutputS3Region"], plugin["OutputS3BucketName"], plugin["OutputS3KeyPrefix"]) == (REGION, "", "")
    assert plugin["ResponseStartDateTime"] <= plugin["ResponseFinishDateTime"]
    [plain] = fl.invocations(cid)
    assert plain["CommandPlugins"] == []
    assert {k: v for k, v in plain.items() if k != "CommandPlugins"} == \
        {k: v for k, v in detailed.items() if k != "CommandPlugins"}

    # The finished message is gone: the next poll hands out only a new command.
    c2 = fl.send()
    assert [x["MessageId"] for x in node.messages()] == [msg_id(c2["CommandId"], node)]


def test_failed_with_exit_code(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    run(node, m, "Failed", 3, stdout="partial\n", stderr="failed to run commands: exit status 3")
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"], i["ResponseCode"]) == ("Failed", "Failed", 3)
    assert i["StandardOutputContent"] == "partial\n"  # the agent keeps stdout on a non-zero exit
    assert i["StandardErrorContent"] == "failed to run commands: exit status 3"
    # MaxErrors 0: the first error fails the command.
    assert fl.state(cid) == ("Failed", "Failed", 1, 1, 1, 0)
    [plugin] = fl.invocations(cid, details=True)[0]["CommandPlugins"]
    assert (plugin["Status"], plugin["ResponseCode"]) == ("Failed", 3)
    assert plugin["Output"] == "partial\n\n----------ERROR-------\nfailed to run commands: exit status 3"


def test_failed_plugin_with_code_zero_reports_one(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    run(node, one_message(node), "Failed", 0)
    assert fl.inv(cid, node)["ResponseCode"] == 1


def test_timed_out(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    run(node, one_message(node), "TimedOut", 124, stdout="slow\n")
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"], i["ResponseCode"]) == ("TimedOut", "ExecutionTimedOut", 124)
    assert i["StandardOutputContent"] == "slow\n"
    assert fl.state(cid) == ("TimedOut", "ExecutionTimedOut", 1, 1, 1, 0)


def test_reboot_request_is_not_the_end(fleet):
    """Exit 194: the AWS agent reports SuccessAndReboot, reboots the node and runs the script
    again; only the reply after that is final."""
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    node.reply(m["MessageId"], in_progress())
    node.ack(m["MessageId"])
    rebooting = final("SuccessAndReboot", 194, stdout="updated, rebooting\n")
    assert node.reply(m["MessageId"], rebooting).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"], i["ExecutionEndDateTime"]) == ("InProgress", "InProgress", ""), i
    assert fl.state(cid) == ("InProgress", "InProgress", 1, 0, 0, 0)
    assert node.reply(m["MessageId"], final("Success", 0, stdout="up to date\n")).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["ResponseCode"], i["StandardOutputContent"]) == ("Success", 0, "up to date\n")
    assert fl.state(cid) == ("Success", "Success", 1, 1, 0, 0)


def test_output_is_cut_to_ssm_limits(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    payload = final("Success", 0, stdout="o" * 30_000, stderr="e" * 9_000)
    payload["runtimeStatus"]["aws:runShellScript"]["output"] = "x" * 3_000
    run_reply = node.reply(m["MessageId"], payload)
    assert run_reply.status == 200, run_reply.body
    i = fl.inv(cid, node)
    assert i["StandardOutputContent"] == "o" * 24_000
    assert i["StandardErrorContent"] == "e" * 8_000
    assert fl.invocations(cid, details=True)[0]["CommandPlugins"][0]["Output"] == "x" * 2_500


def test_several_plugins_and_plugin_name(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    name = unique_name("two")
    doc = {"schemaVersion": "2.2", "mainSteps": [
        {"action": "aws:runShellScript", "name": "first", "inputs": {"runCommand": ["echo 1"]}},
        {"action": "aws:runShellScript", "name": "second", "inputs": {"runCommand": ["exit 2"]}},
    ]}
    fl.ssm.create_document(Name=name, Content=json.dumps(doc), DocumentType="Command")
    cid = fl.send(DocumentName=name)["CommandId"]
    m = one_message(node)
    node.reply(m["MessageId"], in_progress())
    node.ack(m["MessageId"])
    reply = {"documentStatus": "Failed", "runtimeStatus": {
        "first": {"status": "Success", "code": 0, "name": "aws:runShellScript", "stepName": "first",
                  "output": "1\n", "standardOutput": "1\n", "standardError": ""},
        "second": {"status": "Failed", "code": 2, "name": "aws:runShellScript", "stepName": "second",
                   "output": "oops", "standardOutput": "", "standardError": "oops"},
    }}
    assert node.reply(m["MessageId"], reply).status == 200
    whole = fl.inv(cid, node)
    assert (whole["Status"], whole["ResponseCode"], whole["PluginName"]) == ("Failed", 2, "")
    assert whole["StandardOutputContent"] == "1\n"
    assert whole["StandardErrorContent"] == "oops"
    first = fl.inv(cid, node, PluginName="first")
    assert (first["PluginName"], first["Status"], first["ResponseCode"], first["StandardOutputContent"]) == \
        ("first", "Success", 0, "1\n")
    second = fl.inv(cid, node, PluginName="second")
    assert (second["Status"], second["StatusDetails"], second["ResponseCode"], second["StandardErrorContent"]) == \
        ("Failed", "Failed", 2, "oops")
    plugins = fl.invocations(cid, details=True)[0]["CommandPlugins"]
    assert [(p["Name"], p["Status"], p["ResponseCode"]) for p in plugins] == [("first", "Success", 0), ("second", "Failed", 2)]
    expect_error("InvalidPluginName", fl.ssm.get_command_invocation, CommandId=cid, InstanceId=node.instance_id,
                 PluginName="third")


def test_counters_over_mixed_results(fleet):
    fl = fleet(4)
    cid = fl.send(MaxErrors="2")["CommandId"]
    outcomes = [("Success", 0), ("Failed", 1), ("TimedOut", 124)]
    for node, (status, code) in zip(fl.nodes, outcomes):
        run(node, one_message(node), status, code)
        assert fl.command(cid)["Status"] == "InProgress"
    assert fl.state(cid) == ("InProgress", "InProgress", 4, 3, 2, 0)
    run(fl.nodes[3], one_message(fl.nodes[3]))
    # Two errors are within MaxErrors 2: the command succeeds, incompletely.
    assert fl.state(cid) == ("Success", "Incomplete", 4, 4, 2, 0)
    assert fl.statuses(cid) == {
        fl.ids[0]: ("Success", "Success"), fl.ids[1]: ("Failed", "Failed"),
        fl.ids[2]: ("TimedOut", "ExecutionTimedOut"), fl.ids[3]: ("Success", "Success"),
    }


def test_command_executed_waiter(fleet):
    fl = fleet(2)
    ok, bad = fl.nodes
    cid = fl.send(MaxErrors="1")["CommandId"]
    waiter = fl.ssm.get_waiter("command_executed")
    result = {}

    def wait():
        try:
            waiter.wait(CommandId=cid, InstanceId=ok.instance_id, WaiterConfig={"Delay": 1, "MaxAttempts": 15})
            result["ok"] = True
        except WaiterError as e:  # pragma: no cover - reported below
            result["error"] = str(e)

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    time.sleep(1.2)
    assert not result, result  # still Pending: the waiter keeps waiting
    run(ok, one_message(ok))
    t.join(10)
    assert result == {"ok": True}

    run(bad, one_message(bad), "Failed", 2)
    with pytest.raises(WaiterError) as e:
        waiter.wait(CommandId=cid, InstanceId=bad.instance_id, WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert "Failed" in str(e.value)


# --------------------------------------------------------------------------- replies


def test_send_reply_is_idempotent_on_reply_id(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    rid = str(uuid.uuid4())
    assert node.reply(m["MessageId"], in_progress(), reply_id=rid).status == 200
    # The same ReplyId with other content (a resent reply) is accepted and ignored.
    again = node.reply(m["MessageId"], final("Success", 0, stdout="second"), reply_id=rid)
    assert again.status == 200, again.body
    i = fl.inv(cid, node)
    assert (i["Status"], i["StandardOutputContent"]) == ("InProgress", "")
    # The first final reply wins; a replay of it with other content changes nothing.
    fid = str(uuid.uuid4())
    assert node.reply(m["MessageId"], final("Failed", 7, stdout="first"), reply_id=fid).status == 200
    assert node.reply(m["MessageId"], final("Success", 0, stdout="replayed"), reply_id=fid).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["ResponseCode"], i["StandardOutputContent"]) == ("Failed", 7, "first")
    assert fl.state(cid) == ("Failed", "Failed", 1, 1, 1, 0)


def test_late_replies_never_rewrite_a_final_result(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    run(node, m, "Success", 0, stdout="done\n")
    late = in_progress()
    late["runtimeStatus"] = {"aws:runShellScript": {"status": "InProgress", "standardOutput": "late\n"}}
    assert node.reply(m["MessageId"], late).status == 200
    assert node.reply(m["MessageId"], final("Failed", 9, stdout="other")).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["ResponseCode"], i["StandardOutputContent"]) == ("Success", 0, "done\n")
    assert fl.state(cid) == ("Success", "Success", 1, 1, 0, 0)
    plugins = fl.invocations(cid, details=True)[0]["CommandPlugins"]
    assert [(p["Status"], p["Output"]) for p in plugins] == [("Success", "done\n")]


def test_in_progress_reply_with_plugin_progress(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    node.reply(m["MessageId"], in_progress())
    node.ack(m["MessageId"])
    assert node.reply(m["MessageId"], PLUGIN_RUNNING).status == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"], i["PluginName"], i["StandardOutputContent"]) == \
        ("InProgress", "InProgress", "aws:runShellScript", "half")
    assert i["ExecutionEndDateTime"] == ""
    node.reply(m["MessageId"], final("Success", 0, stdout="whole"))
    i = fl.inv(cid, node)
    assert (i["Status"], i["StandardOutputContent"]) == ("Success", "whole")


def test_reply_for_an_invocation_not_sent_yet_is_refused(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    cid = fl.send(MaxConcurrency="1")["CommandId"]
    # b guesses the id of a message it has not been sent (it is second in line).
    r = b.reply(msg_id(cid, b), final("Success", 0, stdout="guessed"))
    assert code_of(r) == "InvalidMessageId", r.body
    assert code_of(b.fail(msg_id(cid, b))) == "InvalidMessageId"
    assert fl.statuses(cid) == {a.instance_id: ("Pending", "Pending"), b.instance_id: ("Pending", "Pending")}
    assert fl.state(cid) == ("Pending", "Pending", 2, 0, 0, 0)
    # The command runs as if nothing happened: b gets its message once a is done.
    run(a, one_message(a))
    m = one_message(b)
    assert m["MessageId"] == msg_id(cid, b)
    run(b, m, stdout="real")
    assert fl.inv(cid, b)["StandardOutputContent"] == "real"
    assert fl.state(cid) == ("Success", "Success", 2, 2, 0, 0)


# --------------------------------------------------------------------------- visibility, fail, delete


def test_unacknowledged_message_comes_back_and_shows_delayed(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    first = one_message(node, visibility=1)
    t0 = time.monotonic()
    # Invisible for 1 s: this poll is held until it is visible again.
    again = one_message(node, visibility=1)
    waited = time.monotonic() - t0
    assert 0.7 <= waited <= 3.0, waited
    assert again["MessageId"] == first["MessageId"]
    assert again["Payload"] == first["Payload"]
    assert again["CreatedDate"] == first["CreatedDate"]
    assert fl.statuses(cid) == {node.instance_id: ("Delayed", "Delayed")}
    assert fl.inv(cid, node)["Status"] == "Delayed"
    assert fl.command(cid)["Status"] == "Pending"
    # Picked up at last: InProgress, and acknowledged it never comes back.
    assert node.reply(again["MessageId"], in_progress()).status == 200
    assert node.ack(again["MessageId"]).status == 200
    assert fl.inv(cid, node)["Status"] == "InProgress"
    poller = node.poll(visibility=1)
    try:
        assert received({node.instance_id: poller}, wait=1.8) == {}
    finally:
        poller.stop()
    node.reply(again["MessageId"], final())
    assert fl.state(cid)[:2] == ("Success", "Success")


def test_acknowledged_message_does_not_come_back(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node, visibility=1)
    assert node.ack(m["MessageId"]).status == 200
    poller = node.poll(visibility=1)
    try:
        assert received({node.instance_id: poller}, wait=1.8) == {}
    finally:
        poller.stop()
    # The acknowledgement counts as the node picking the command up.
    assert fl.inv(cid, node)["Status"] == "InProgress"


def test_fail_message_makes_the_invocation_undeliverable(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    cid = fl.send(MaxConcurrency="1")["CommandId"]
    m = one_message(a)
    a.reply(m["MessageId"], PLUGIN_RUNNING)
    r = a.fail(m["MessageId"], "InternalHandlerException")
    assert r.status == 200 and r.json() == {}, r.body
    i = fl.inv(cid, a)
    assert (i["Status"], i["StatusDetails"]) == ("Failed", "Undeliverable")
    assert fl.statuses(cid)[a.instance_id] == ("Failed", "Undeliverable")
    # Undeliverable does not count against MaxErrors 0: the next node still gets the command.
    run(b, one_message(b))
    assert fl.state(cid) == ("Success", "Incomplete", 2, 2, 0, 0)
    # The failed message is gone.
    assert code_of(a.fail(m["MessageId"])) == "InvalidMessageId"
    assert code_of(a.ack(m["MessageId"])) == "InvalidMessageId"


def test_delete_message(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node, visibility=1)
    r = node.delete(m["MessageId"])
    assert r.status == 200 and r.json() == {}, r.body
    assert code_of(node.delete(m["MessageId"])) == "InvalidMessageId"
    assert code_of(node.ack(m["MessageId"])) == "InvalidMessageId"
    # Deleted, it never comes back after its visibility timeout; the invocation waits on.
    c2 = fl.send()
    time.sleep(1.2)
    assert [x["MessageId"] for x in node.messages()] == [msg_id(c2["CommandId"], node)]
    assert fl.inv(cid, node)["Status"] == "Pending"


def test_message_service_input_errors(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    assert code_of(node.ack("aws.ssm.nope.nope")) == "InvalidMessageId"
    assert code_of(node.mds("AcknowledgeMessage", {})) == "ValidationException"
    assert code_of(node.mds("GetMessages", {"MessagesRequestId": "x"})) == "ValidationException"
    assert code_of(node.mds("SendReply", {"MessageId": "x", "ReplyId": "y"})) == "ValidationException"
    bad = node.mds("SendReply", {"MessageId": f"aws.ssm.{uuid.uuid4()}.{node.instance_id}", "ReplyId": "r",
                                 "Payload": "not json"})
    assert code_of(bad) == "ValidationException"
    # A reply for a command this node was never sent.
    r = node.reply(f"aws.ssm.{uuid.uuid4()}.{node.instance_id}", final())
    assert code_of(r) == "InvalidMessageId", r.body
    assert code_of(node.mds("Nope", {})) == "UnknownOperationException"


# --------------------------------------------------------------------------- rate control


def test_max_concurrency_bounds_what_nodes_hold(fleet):
    fl = fleet(6)
    order = list(reversed(fl.nodes))  # dispatch follows the order InstanceIds names them in
    pollers = {n.instance_id: n.poll() for n in fl.nodes}
    try:
        c = fl.send(order, MaxConcurrency="2")
        cid = c["CommandId"]
        assert c["InstanceIds"] == [n.instance_id for n in order]
        got = received(pollers)
        assert got == {order[0].instance_id: [msg_id(cid, order[0])], order[1].instance_id: [msg_id(cid, order[1])]}
        assert fl.command(cid)["Status"] == "Pending"
        # Picking one up and acknowledging it frees no slot; finishing does.
        node = order[0]
        node.reply(msg_id(cid, node), in_progress())
        node.ack(msg_id(cid, node))
        assert received(pollers) == {}
        assert fl.command(cid)["Status"] == "InProgress"
        t0 = time.monotonic()
        node.reply(msg_id(cid, node), final())
        nxt = pollers[order[2].instance_id].next(timeout=2)
        assert time.monotonic() - t0 < 1.0
        assert nxt["MessageId"] == msg_id(cid, order[2])
        assert received(pollers) == {}
        for k in (1, 2, 3):
            run(order[k], {"MessageId": msg_id(cid, order[k])})
            assert pollers[order[k + 2].instance_id].next(timeout=2)["MessageId"] == msg_id(cid, order[k + 2])
            assert received(pollers, wait=0.1) == {}
        run(order[4], {"MessageId": msg_id(cid, order[4])})
        assert received(pollers) == {}
        assert fl.state(cid) == ("InProgress", "InProgress", 6, 5, 0, 0)
        run(order[5], {"MessageId": msg_id(cid, order[5])})
        assert fl.state(cid) == ("Success", "Success", 6, 6, 0, 0)
    finally:
        for p in pollers.values():
            p.stop()


def test_max_errors_stops_dispatch_at_the_next_error(fleet):
    fl = fleet(6)
    pollers = {n.instance_id: n.poll() for n in fl.nodes}
    try:
        cid = fl.send(MaxConcurrency="2", MaxErrors="1")["CommandId"]
        n = fl.nodes
        assert received(pollers) == {n[0].instance_id: [msg_id(cid, n[0])], n[1].instance_id: [msg_id(cid, n[1])]}
        n[1].reply(msg_id(cid, n[1]), in_progress())
        run(n[0], {"MessageId": msg_id(cid, n[0])}, "Failed", 1)  # error 1: tolerated
        assert received(pollers) == {n[2].instance_id: [msg_id(cid, n[2])]}
        run(n[2], {"MessageId": msg_id(cid, n[2])}, "Failed", 1)  # error 2: dispatch stops
        assert received(pollers) == {}
        never = [x.instance_id for x in n[3:]]
        assert all(fl.statuses(cid)[i] == ("Cancelled", "Terminated") for i in never), fl.statuses(cid)
        # n[1] was running when the threshold was crossed: it may finish (and is counted).
        assert fl.state(cid) == ("InProgress", "InProgress", 6, 5, 2, 0)
        run(n[1], {"MessageId": msg_id(cid, n[1])})
        assert received(pollers) == {}
        assert fl.state(cid) == ("Failed", "Failed", 6, 6, 2, 0)
        assert fl.statuses(cid) == {
            n[0].instance_id: ("Failed", "Failed"), n[1].instance_id: ("Success", "Success"),
            n[2].instance_id: ("Failed", "Failed"), **{i: ("Cancelled", "Terminated") for i in never},
        }
        for i in never:
            inv = fl.ssm.get_command_invocation(CommandId=cid, InstanceId=i)
            assert (inv["Status"], inv["StatusDetails"]) == ("Cancelled", "Terminated")
        cancelled = fl.ssm.list_command_invocations(CommandId=cid, Filters=[{"key": "Status", "value": "Cancelled"}])
        assert sorted(i["InstanceId"] for i in cancelled["CommandInvocations"]) == sorted(never)
    finally:
        for p in pollers.values():
            p.stop()


def test_max_errors_zero_with_concurrency_one_stops_at_the_first_error(fleet):
    fl = fleet(3)
    n = fl.nodes
    cid = fl.send(MaxConcurrency="1")["CommandId"]
    run(n[0], one_message(n[0]), "TimedOut", 124)
    assert fl.state(cid) == ("TimedOut", "ExecutionTimedOut", 3, 3, 1, 0)
    assert fl.statuses(cid) == {
        n[0].instance_id: ("TimedOut", "ExecutionTimedOut"),
        n[1].instance_id: ("Cancelled", "Terminated"), n[2].instance_id: ("Cancelled", "Terminated"),
    }
    # A later command to the same nodes is not disturbed by the stopped one.
    c2 = fl.send(n[1:2])
    assert [m["MessageId"] for m in n[1].messages()] == [msg_id(c2["CommandId"], n[1])]


def test_percent_rate_control(fleet):
    fl = fleet(5)
    n = fl.nodes
    pollers = {x.instance_id: x.poll() for x in n}
    try:
        # 40% of 5 = 2 at once; 20% of 5 = 1 error tolerated, the 2nd stops.
        cid = fl.send(MaxConcurrency="40%", MaxErrors="20%")["CommandId"]
        assert sorted(received(pollers)) == sorted([n[0].instance_id, n[1].instance_id])
        run(n[0], {"MessageId": msg_id(cid, n[0])}, "Failed", 1)
        assert list(received(pollers)) == [n[2].instance_id]
        run(n[1], {"MessageId": msg_id(cid, n[1])}, "Failed", 1)
        assert received(pollers) == {}
        run(n[2], {"MessageId": msg_id(cid, n[2])})
        assert fl.state(cid) == ("Failed", "Failed", 5, 5, 2, 0)
        assert [fl.statuses(cid)[x.instance_id] for x in n[3:]] == [("Cancelled", "Terminated")] * 2
    finally:
        for p in pollers.values():
            p.stop()


def test_percent_concurrency_rounds_up(fleet):
    fl = fleet(3)
    pollers = {x.instance_id: x.poll() for x in fl.nodes}
    try:
        # 34% of 3 = 1.02 → 2 at once.
        cid = fl.send(MaxConcurrency="34%", MaxErrors="100%")["CommandId"]
        assert sorted(received(pollers)) == sorted(fl.ids[:2])
        for node in fl.nodes[:2]:
            run(node, {"MessageId": msg_id(cid, node)}, "Failed", 1)
        assert list(received(pollers)) == [fl.ids[2]]
        run(fl.nodes[2], {"MessageId": msg_id(cid, fl.nodes[2])}, "Failed", 1)
        # 100%: never stops; all failed yet within the limit.
        assert fl.state(cid) == ("Success", "Incomplete", 3, 3, 3, 0)
    finally:
        for p in pollers.values():
            p.stop()


def test_invalid_rate_control_values(fleet, server):
    fl = fleet(1)
    raw = server.client(fl.account.access_key_id, fl.account.secret_access_key, parameter_validation=False)
    args = dict(InstanceIds=fl.ids, DocumentName=DOC, Parameters={"commands": ["x"]})
    for value in ("0", "0%", "010", "101%", "5.5", "-1", "abc", "12345678"):
        expect_error("ValidationException", raw.send_command, MaxConcurrency=value, **args)
    for value in ("010", "101%", "5.5", "-1", "x", "00%"):
        expect_error("ValidationException", raw.send_command, MaxErrors=value, **args)
    assert fl.ssm.list_commands()["Commands"] == []
    # The edges that are valid.
    for conc, errs in (("1", "0"), ("100%", "100%"), ("1%", "0%"), ("9999999", "9999999")):
        c = fl.send(MaxConcurrency=conc, MaxErrors=errs)
        assert (c["MaxConcurrency"], c["MaxErrors"]) == (conc, errs)


# --------------------------------------------------------------------------- CancelCommand


def test_cancel_pending_invocation_withdraws_its_message(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    assert fl.ssm.cancel_command(CommandId=cid)["ResponseMetadata"]["HTTPStatusCode"] == 200
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"]) == ("Cancelled", "Cancelled")
    assert fl.state(cid) == ("Cancelled", "Cancelled", 1, 1, 0, 0)
    # Withdrawn: the node's next poll hands out only a newer command.
    c2 = fl.send()
    assert [m["MessageId"] for m in node.messages()] == [msg_id(c2["CommandId"], node)]
    # A reply that comes anyway changes nothing.
    node.reply(msg_id(cid, node), final())
    assert fl.inv(cid, node)["Status"] == "Cancelled"


def test_cancel_in_progress_sends_a_cancel_message(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    m = one_message(node)
    node.reply(m["MessageId"], in_progress())
    node.ack(m["MessageId"])
    node.reply(m["MessageId"], PLUGIN_RUNNING)
    poller = node.poll()
    try:
        time.sleep(0.2)
        fl.ssm.cancel_command(CommandId=cid)
        cancel = poller.next(timeout=2)
    finally:
        poller.stop()
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"]) == ("Cancelling", "Cancelling")
    assert fl.statuses(cid) == {node.instance_id: ("Cancelling", "Cancelling")}
    [plugin] = fl.invocations(cid, details=True)[0]["CommandPlugins"]
    assert plugin["Status"] == "InProgress"  # the plugin's own last report
    assert fl.state(cid)[:4] == ("Cancelling", "Cancelling", 1, 0)
    assert cancel["Topic"].startswith("aws.ssm.cancelCommand"), cancel
    assert cancel["Topic"] == "aws.ssm.cancelCommand." + REGION.replace("-", ".") + ".1"
    assert cancel["Destination"] == node.instance_id
    assert json.loads(cancel["Payload"]) == {"CancelMessageId": m["MessageId"]}
    assert cancel["PayloadDigest"] == hashlib.sha256(cancel["Payload"].encode()).hexdigest()
    assert ISO_MS.match(cancel["CreatedDate"])
    assert cancel["MessageId"] != m["MessageId"]
    assert node.ack(cancel["MessageId"]).status == 200
    # The agent stops the document and reports it Cancelled.
    r = node.reply(m["MessageId"], final("Cancelled", 1, stdout="interrupted"))
    assert r.status == 200, r.body
    i = fl.inv(cid, node)
    assert (i["Status"], i["StatusDetails"]) == ("Cancelled", "Cancelled")
    assert fl.state(cid) == ("Cancelled", "Cancelled", 1, 1, 0, 0)


def test_cancel_whole_command_with_unsent_targets(fleet):
    fl = fleet(3)
    a, b, c = fl.nodes
    cid = fl.send(MaxConcurrency="1")["CommandId"]
    m = one_message(a)
    node_reply = a.reply(m["MessageId"], in_progress())
    assert node_reply.status == 200
    fl.ssm.cancel_command(CommandId=cid)
    assert fl.statuses(cid) == {
        a.instance_id: ("Cancelling", "Cancelling"),
        b.instance_id: ("Cancelled", "Cancelled"), c.instance_id: ("Cancelled", "Cancelled"),
    }
    assert fl.state(cid) == ("Cancelling", "Cancelling", 3, 2, 0, 0)
    # Cancelling twice sends no second cancel message and changes nothing.
    fl.ssm.cancel_command(CommandId=cid)
    cancels = a.messages()
    assert len(cancels) == 1 and json.loads(cancels[0]["Payload"]) == {"CancelMessageId": m["MessageId"]}
    # A node that finishes anyway (the cancel came too late) reports its real end.
    a.reply(m["MessageId"], final("Success", 0, stdout="made it"))
    assert fl.inv(cid, a)["Status"] == "Success"
    assert fl.state(cid) == ("Cancelled", "Cancelled", 3, 3, 0, 0)


def test_cancel_some_instances(fleet):
    fl = fleet(3)
    a, b, c = fl.nodes
    pollers = {x.instance_id: x.poll() for x in fl.nodes}
    try:
        cid = fl.send(MaxConcurrency="1")["CommandId"]
        assert received(pollers) == {a.instance_id: [msg_id(cid, a)]}
        a.reply(msg_id(cid, a), in_progress())
        fl.ssm.cancel_command(CommandId=cid, InstanceIds=[b.instance_id])
        assert fl.statuses(cid) == {
            a.instance_id: ("InProgress", "InProgress"), b.instance_id: ("Cancelled", "Cancelled"),
            c.instance_id: ("Pending", "Pending"),
        }
        assert fl.state(cid)[:4] == ("InProgress", "InProgress", 3, 1)
        assert received(pollers) == {}
        # b is passed over: when a finishes, c is next.
        a.reply(msg_id(cid, a), final())
        assert received(pollers) == {c.instance_id: [msg_id(cid, c)]}
        run(c, {"MessageId": msg_id(cid, c)})
        assert fl.state(cid) == ("Success", "Incomplete", 3, 3, 0, 0)
    finally:
        for p in pollers.values():
            p.stop()


def test_cancel_a_finished_command_changes_nothing(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    run(node, one_message(node))
    fl.ssm.cancel_command(CommandId=cid)
    assert fl.state(cid) == ("Success", "Success", 1, 1, 0, 0)
    assert fl.inv(cid, node)["Status"] == "Success"
    cid2 = fl.send()["CommandId"]
    run(node, one_message(node), "Failed", 1)
    fl.ssm.cancel_command(CommandId=cid2, InstanceIds=[node.instance_id])
    assert fl.state(cid2) == ("Failed", "Failed", 1, 1, 1, 0)


def test_cancel_errors(fleet, new_account):
    fl = fleet(2)
    a, b = fl.nodes
    cid = fl.send([a])["CommandId"]
    expect_error("InvalidCommandId", fl.ssm.cancel_command, CommandId=str(uuid.uuid4()))
    expect_error("InvalidInstanceId", fl.ssm.cancel_command, CommandId=cid, InstanceIds=[b.instance_id])
    expect_error("DuplicateInstanceId", fl.ssm.cancel_command, CommandId=cid,
                 InstanceIds=[a.instance_id, a.instance_id])
    expect_error("InvalidCommandId", new_account().client.cancel_command, CommandId=cid)
    assert fl.state(cid)[:2] == ("Pending", "Pending")


# --------------------------------------------------------------------------- targets


def test_targets_select_nodes(fleet):
    fl = fleet(4)
    n = fl.nodes
    tag = lambda node, **kv: fl.ssm.add_tags_to_resource(  # noqa: E731
        ResourceType="ManagedInstance", ResourceId=node.instance_id,
        Tags=[{"Key": k, "Value": v} for k, v in kv.items()])
    tag(n[0], env="prod", role="web")
    tag(n[1], env="dev", role="web")
    tag(n[3], env="prod")

    def targets(*pairs) -> dict:
        return fl.send(Targets=[{"Key": k, "Values": v} for k, v in pairs])

    c = targets(("tag:env", ["prod"]))
    assert c["InstanceIds"] == [] and c["Targets"] == [{"Key": "tag:env", "Values": ["prod"]}]
    assert c["TargetCount"] == 2
    assert [i["InstanceId"] for i in fl.invocations(c["CommandId"])] == [n[0].instance_id, n[3].instance_id]
    assert targets(("tag:env", ["prod", "dev"]))["TargetCount"] == 3
    assert [i["InstanceId"] for i in fl.invocations(targets(("tag-key", ["role"]))["CommandId"])] == fl.ids[:2]
    assert targets(("tag:env", ["prod"]), ("tag:role", ["web"]))["TargetCount"] == 1
    assert targets(("InstanceIds", ["*"]))["TargetCount"] == 4
    picked = targets(("InstanceIds", [n[2].instance_id, n[1].instance_id, "mi-0123456789abcdef0"]))
    assert [i["InstanceId"] for i in fl.invocations(picked["CommandId"])] == [n[1].instance_id, n[2].instance_id]
    assert targets(("tag:env", ["PROD"]))["TargetCount"] == 0  # values are case-sensitive

    # Tags added later are seen by the next command.
    tag(n[2], env="prod")
    assert targets(("tag:env", ["prod"]))["TargetCount"] == 3
    fl.ssm.remove_tags_from_resource(ResourceType="ManagedInstance", ResourceId=n[0].instance_id, TagKeys=["env"])
    assert [i["InstanceId"] for i in fl.invocations(targets(("tag:env", ["prod"]))["CommandId"])] == \
        [n[2].instance_id, n[3].instance_id]


def test_targets_matching_nothing(fleet):
    fl = fleet(1)
    c = fl.send(Targets=[{"Key": "tag:env", "Values": ["nowhere"]}])
    assert c["TargetCount"] == 0
    assert (c["Status"], c["StatusDetails"]) == ("Success", "NoInstancesInTag")
    assert (c["CompletedCount"], c["ErrorCount"]) == (0, 0)
    assert fl.state(c["CommandId"]) == ("Success", "NoInstancesInTag", 0, 0, 0, 0)
    assert fl.invocations(c["CommandId"]) == []
    expect_error("InvocationDoesNotExist", fl.ssm.get_command_invocation, CommandId=c["CommandId"],
                 InstanceId=fl.ids[0])


def test_targets_skip_unmanaged_nodes(fleet):
    fl = fleet(2)
    live, gone = fl.nodes
    quiet = fl.add(1, ping=False)[0]  # registered, never reported in: not managed yet
    fl.ssm.deregister_managed_instance(InstanceId=gone.instance_id)
    for node in (live, quiet):
        fl.ssm.add_tags_to_resource(ResourceType="ManagedInstance", ResourceId=node.instance_id,
                                    Tags=[{"Key": "all", "Value": "yes"}])
    for target in ({"Key": "InstanceIds", "Values": ["*"]}, {"Key": "tag:all", "Values": ["yes"]},
                   {"Key": "InstanceIds", "Values": [live.instance_id, gone.instance_id, quiet.instance_id]}):
        c = fl.send(Targets=[target])
        assert [i["InstanceId"] for i in fl.invocations(c["CommandId"])] == [live.instance_id], target


def test_target_errors(fleet):
    fl = fleet(1)
    send = fl.ssm.send_command
    expect_error("InvalidParameters", send, DocumentName=DOC, Parameters={"commands": ["x"]},
                 Targets=[{"Key": "resource-groups:Name", "Values": ["g"]}])
    expect_error("InvalidParameters", send, DocumentName=DOC, Parameters={"commands": ["x"]},
                 Targets=[{"Key": "tag:env", "Values": []}])


# --------------------------------------------------------------------------- errors


def test_send_command_errors(fleet, server):
    fl = fleet(1)
    node = fl.nodes[0]
    quiet = fl.add(1, ping=False)[0]
    gone = fl.add(1)[0]
    fl.ssm.deregister_managed_instance(InstanceId=gone.instance_id)
    send = fl.ssm.send_command
    args = dict(DocumentName=DOC, Parameters={"commands": ["x"]})

    for bad in ("mi-0123456789abcdef0", "i-0123456789abcdef0", quiet.instance_id, gone.instance_id):
        expect_error("InvalidInstanceId", send, InstanceIds=[bad], **args)
        expect_error("InvalidInstanceId", send, InstanceIds=[node.instance_id, bad], **args)
    expect_error("DuplicateInstanceId", send, InstanceIds=[node.instance_id, node.instance_id], **args)

    ids = [node.instance_id]
    expect_error("InvalidDocument", send, InstanceIds=ids, DocumentName=unique_name("nope"))
    expect_error("InvalidDocument", send, InstanceIds=ids, DocumentName="AWS-Sleep")
    auto = unique_name("auto")
    fl.ssm.create_document(Name=auto, DocumentType="Automation", DocumentFormat="YAML",
                           Content="schemaVersion: '0.3'\nmainSteps:\n  - name: s\n    action: aws:sleep\n"
                                   "    inputs:\n      Duration: PT1S\n")
    expect_error("InvalidDocument", send, InstanceIds=ids, DocumentName=auto)
    expect_error("InvalidDocumentVersion", send, InstanceIds=ids, DocumentVersion="7", **args)
    expect_error("InvalidDocument", send, InstanceIds=ids, DocumentHash="ab" * 32, DocumentHashType="Sha256", **args)

    expect_error("InvalidParameters", send, InstanceIds=ids, DocumentName=DOC)  # commands is required
    expect_error("InvalidParameters", send, InstanceIds=ids, DocumentName=DOC,
                 Parameters={"commands": ["x"], "nope": ["y"]})
    expect_error("InvalidParameters", send, InstanceIds=ids, DocumentName=DOC,
                 Parameters={"commands": ["x"], "executionTimeout": ["forever"]})

    expect_error("ValidationException", send, InstanceIds=ids, Targets=[{"Key": "InstanceIds", "Values": ids}], **args)
    expect_error("ValidationException", send, **args)
    raw = server.client(fl.account.access_key_id, fl.account.secret_access_key, parameter_validation=False)
    expect_error("ValidationException", raw.send_command, InstanceIds=ids, TimeoutSeconds=29, **args)
    expect_error("ValidationException", raw.send_command, InstanceIds=ids, TimeoutSeconds=2592001, **args)
    expect_error("ValidationException", raw.send_command, InstanceIds=["bogus"], **args)
    expect_error("ValidationException", raw.send_command, InstanceIds=ids, Comment="c" * 101, **args)
    expect_error("ValidationException", raw.send_command,
                 InstanceIds=[f"mi-{i:017x}" for i in range(51)], **args)
    expect_error("ValidationException", raw.send_command,
                 Targets=[{"Key": f"tag:k{i}", "Values": ["v"]} for i in range(6)], **args)
    # Nothing refused was created.
    assert fl.ssm.list_commands()["Commands"] == []


def test_query_errors(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    cid = fl.send([a])["CommandId"]
    expect_error("InvocationDoesNotExist", fl.ssm.get_command_invocation, CommandId=cid, InstanceId=b.instance_id)
    expect_error("InvalidCommandId", fl.ssm.get_command_invocation, CommandId=str(uuid.uuid4()),
                 InstanceId=a.instance_id)
    expect_error("InvalidPluginName", fl.ssm.get_command_invocation, CommandId=cid, InstanceId=a.instance_id,
                 PluginName="aws:nothing")
    # A key outside the model's enum is a constraint failure, as for any enum member; a value
    # the key can't take is InvalidFilterKey.
    expect_error("ValidationException", fl.ssm.list_commands, Filters=[{"key": "Nope", "value": "x"}])
    expect_error("ValidationException", fl.ssm.list_command_invocations, Filters=[{"key": "Nope", "value": "x"}])
    expect_error("InvalidFilterKey", fl.ssm.list_commands, Filters=[{"key": "Status", "value": "Delayed"}])
    expect_error("InvalidFilterKey", fl.ssm.list_commands, Filters=[{"key": "InvokedAfter", "value": "yesterday"}])
    expect_error("InvalidFilterKey", fl.ssm.list_commands, Filters=[{"key": "ExecutionStage", "value": "Later"}])
    expect_error("InvalidNextToken", fl.ssm.list_commands, NextToken="garbage")
    expect_error("InvalidNextToken", fl.ssm.list_command_invocations, NextToken="garbage")
    # An unknown command lists nothing (AWS answers 200 and an empty list).
    assert fl.ssm.list_command_invocations(CommandId=str(uuid.uuid4()))["CommandInvocations"] == []
    assert fl.ssm.list_commands(CommandId=str(uuid.uuid4()))["Commands"] == []


# --------------------------------------------------------------------------- listing


def test_list_filters(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    other_doc = unique_name("cmd")
    fl.ssm.create_document(Name=other_doc, DocumentType="Command", Content=json.dumps({
        "schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "s",
                                               "inputs": {"runCommand": ["true"]}}]}))
    c1 = fl.send([a])["CommandId"]  # Success
    run(a, one_message(a))
    time.sleep(0.01)
    c2 = fl.send([a, b], MaxErrors="1")["CommandId"]  # a Failed, b in progress
    run(a, one_message(a), "Failed", 1)
    b.reply(msg_id(c2, b), in_progress())
    time.sleep(0.01)
    mid = fl.command(c2)["RequestedDateTime"]
    c3 = fl.send([b], DocumentName=other_doc)["CommandId"]  # Pending
    time.sleep(0.01)
    c4 = fl.send([a], DocumentName=other_doc)["CommandId"]  # Cancelled
    fl.ssm.cancel_command(CommandId=c4)

    def commands(*filters, **kw):
        if filters:
            kw["Filters"] = [{"key": k, "value": v} for k, v in filters]
        return [c["CommandId"] for c in fl.ssm.list_commands(**kw)["Commands"]]

    def invocations(*filters, **kw):
        if filters:
            kw["Filters"] = [{"key": k, "value": v} for k, v in filters]
        return [(i["CommandId"], i["InstanceId"]) for i in fl.ssm.list_command_invocations(**kw)["CommandInvocations"]]

    assert commands() == [c4, c3, c2, c1]  # newest first
    assert commands(("Status", "Success")) == [c1]
    assert commands(("Status", "InProgress")) == [c2]
    assert commands(("Status", "Pending")) == [c3]
    assert commands(("Status", "Cancelled")) == [c4]
    assert commands(("DocumentName", other_doc)) == [c4, c3]
    assert commands(("DocumentName", DOC), ("Status", "Success")) == [c1]
    assert commands(("ExecutionStage", "Executing")) == [c3, c2]
    assert commands(("ExecutionStage", "Complete")) == [c4, c1]
    assert commands(("InvokedAfter", iso(mid))) == [c4, c3, c2]
    assert commands(("InvokedBefore", iso(mid))) == [c2, c1]
    assert commands(("InvokedAfter", iso(mid + timedelta(days=1)))) == []
    assert commands(InstanceId=b.instance_id) == [c3, c2]

    A, B = a.instance_id, b.instance_id
    assert invocations() == [(c4, A), (c3, B), (c2, A), (c2, B), (c1, A)]
    assert invocations(("Status", "Failed")) == [(c2, A)]
    assert invocations(("Status", "InProgress")) == [(c2, B)]
    assert invocations(("DocumentName", other_doc)) == [(c4, A), (c3, B)]
    assert invocations(("ExecutionStage", "Executing")) == [(c3, B), (c2, B)]
    assert invocations(("ExecutionStage", "Complete")) == [(c4, A), (c2, A), (c1, A)]
    assert invocations(("InvokedBefore", iso(mid))) == [(c2, A), (c2, B), (c1, A)]
    assert invocations(InstanceId=A) == [(c4, A), (c2, A), (c1, A)]
    assert invocations(CommandId=c2, InstanceId=B) == [(c2, B)]


def test_pagination_is_stable_and_complete(fleet):
    fl = fleet(3)
    made = []
    for _ in range(5):
        made.append(fl.send()["CommandId"])
        time.sleep(0.005)
    newest_first = list(reversed(made))

    def pages(op, key, ident, **kw):
        out, token = [], None
        while True:
            page = op(MaxResults=2, **({"NextToken": token} if token else {}), **kw)
            assert len(page[key]) <= 2
            out.append([ident(x) for x in page[key]])
            token = page.get("NextToken")
            if not token:
                return out

    cmd_pages = pages(fl.ssm.list_commands, "Commands", lambda c: c["CommandId"])
    assert cmd_pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    inv_pages = pages(fl.ssm.list_command_invocations, "CommandInvocations",
                      lambda i: (i["CommandId"], i["InstanceId"]))
    flat = [x for p in inv_pages for x in p]
    assert flat == [(c, n) for c in newest_first for n in fl.ids]
    assert len(inv_pages) == 8 and len(set(flat)) == 15

    # A page boundary holds while new commands arrive between pages.
    first = fl.ssm.list_commands(MaxResults=2)
    late = fl.send()["CommandId"]
    rest = fl.ssm.list_commands(MaxResults=50, NextToken=first["NextToken"])
    assert [c["CommandId"] for c in rest["Commands"]] == newest_first[2:]
    assert "NextToken" not in rest
    assert [c["CommandId"] for c in fl.ssm.list_commands(MaxResults=6)["Commands"]] == [late] + newest_first
    # boto3's paginators walk the same order.
    paged = [c["CommandId"] for p in fl.ssm.get_paginator("list_commands").paginate(
        PaginationConfig={"PageSize": 4}) for c in p["Commands"]]
    assert paged == [late] + newest_first
    paged = [(i["CommandId"], i["InstanceId"]) for p in fl.ssm.get_paginator("list_command_invocations").paginate(
        CommandId=made[0], PaginationConfig={"PageSize": 2}) for i in p["CommandInvocations"]]
    assert paged == [(made[0], n) for n in fl.ids]
    # An exact multiple of the page size ends without a token.
    whole = fl.ssm.list_commands(MaxResults=6)
    assert "NextToken" not in whole


@pytest.fixture
def replica(server, tmp_path):
    """A second ssmd on the same PostgreSQL database (PostgreSQL only)."""
    if server.backend != "postgres":
        pytest.skip("replicas share a PostgreSQL database")
    from conftest import Server

    other = Server("replica", tmp_path)
    other.database_url = server.database_url
    other.start()
    try:
        yield other
    finally:
        other.stop()


def test_replicas_wake_each_others_long_polls(fleet, replica):
    fl = fleet(2)
    a, b = fl.nodes
    for node in (a, b):  # the nodes talk to the other replica
        node.endpoint = replica.endpoint
    pollers = {n.instance_id: n.poll() for n in fl.nodes}
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        cid = fl.send(MaxConcurrency="1")["CommandId"]  # queued by the first replica
        m = pollers[a.instance_id].next(timeout=3)
        assert time.monotonic() - t0 < 1.5
        assert m["MessageId"] == msg_id(cid, a)
        # a's result arrives at the replica, which dispatches b's message itself.
        run(a, m)
        assert pollers[b.instance_id].next(timeout=2)["MessageId"] == msg_id(cid, b)
        run(b, {"MessageId": msg_id(cid, b)})
        assert fl.state(cid) == ("Success", "Success", 2, 2, 0, 0)
        # A cancel on the first replica reaches a node polling the second.
        cid2 = fl.send([a])["CommandId"]
        m2 = pollers[a.instance_id].next(timeout=3)
        a.reply(m2["MessageId"], in_progress())
        fl.ssm.cancel_command(CommandId=cid2)
        cancel = pollers[a.instance_id].next(timeout=3)
        assert json.loads(cancel["Payload"]) == {"CancelMessageId": msg_id(cid2, a)}
    finally:
        for p in pollers.values():
            p.stop()


# --------------------------------------------------------------------------- security


def test_nodes_only_touch_their_own_messages(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    cid = fl.send()["CommandId"]
    mine = msg_id(cid, a)
    theirs = msg_id(cid, b)
    r = a.get_messages(destination=b.instance_id)
    assert code_of(r) == "AccessDeniedException", r.body
    r = a.reply(theirs, final("Failed", 1))
    assert code_of(r) == "AccessDeniedException", r.body
    assert code_of(a.ack(theirs)) == "InvalidMessageId"
    assert code_of(a.delete(theirs)) == "InvalidMessageId"
    assert code_of(a.fail(theirs)) == "InvalidMessageId"
    # b's message is untouched: still there, still Pending.
    assert fl.inv(cid, b)["Status"] == "Pending"
    assert [m["MessageId"] for m in b.messages()] == [theirs]
    assert [m["MessageId"] for m in a.messages()] == [mine]


def test_message_service_refuses_other_callers(fleet, server):
    fl = fleet(1)
    node = fl.nodes[0]
    fl.send()
    body = {"Destination": node.instance_id, "MessagesRequestId": str(uuid.uuid4()), "VisibilityTimeoutInSeconds": 10}
    target = "EC2WindowsMessageDeliveryService.GetMessages"
    # An ordinary account key (the root user of the node's account), signed for ec2messages.
    key = SigV4Auth(Credentials(fl.account.access_key_id, fl.account.secret_access_key), "ec2messages", REGION)
    r = call(server.endpoint, target, body, key)
    assert code_of(r) == "AccessDeniedException", r.body
    root = SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "ec2messages", REGION)
    assert code_of(call(server.endpoint, target, body, root)) == "AccessDeniedException"
    user = server.create_user(fl.account.account_id, "operator")
    r = call(server.endpoint, target, body,
             SigV4Auth(Credentials(user.access_key_id, user.secret_access_key), "ec2messages", REGION))
    assert code_of(r) == "AccessDeniedException", r.body
    # The node's own credentials, but scoped to the wrong service.
    r = node.mds("GetMessages", body, auth=node.auth("ssm"))
    assert code_of(r) == "InvalidSignatureException", r.body
    # Unsigned.
    r = call(server.endpoint, target, body, None)
    assert code_of(r) == "MissingAuthenticationTokenException", r.body
    # A wrong secret.
    forged = SigV4Auth(Credentials(node.creds.access_key, "x" * 40, node.creds.token), "ec2messages", REGION)
    r = call(server.endpoint, target, body, forged)
    assert code_of(r) == "InvalidSignatureException", r.body
    # None of these took the message: the node still gets it.
    assert len(node.messages()) == 1


def test_node_credentials_stop_working_when_deregistered(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    fl.send()
    fl.ssm.deregister_managed_instance(InstanceId=node.instance_id)
    r = node.get_messages(timeout=5)
    assert code_of(r) == "UnrecognizedClientException", r.body


def test_accounts_do_not_see_each_others_commands(fleet):
    mine = fleet(1)
    theirs = fleet(1)
    cid = mine.send()["CommandId"]
    run(mine.nodes[0], one_message(mine.nodes[0]))
    other = theirs.ssm
    assert other.list_commands()["Commands"] == []
    assert other.list_commands(CommandId=cid)["Commands"] == []
    assert other.list_command_invocations()["CommandInvocations"] == []
    assert other.list_command_invocations(CommandId=cid, Details=True)["CommandInvocations"] == []
    expect_error("InvalidCommandId", other.get_command_invocation, CommandId=cid, InstanceId=mine.ids[0])
    expect_error("InvalidCommandId", other.cancel_command, CommandId=cid)
    # Nor send to the other account's nodes.
    expect_error("InvalidInstanceId", other.send_command, InstanceIds=mine.ids, DocumentName=DOC,
                 Parameters={"commands": ["x"]})
    assert other.send_command(Targets=[{"Key": "InstanceIds", "Values": ["*"]}], DocumentName=DOC,
                              Parameters={"commands": ["x"]})["Command"]["TargetCount"] == 1
    assert mine.state(cid) == ("Success", "Success", 1, 1, 0, 0)
    # A page token of one account is worthless to another.
    for _ in range(2):
        mine.send()
    token = mine.ssm.list_commands(MaxResults=1)["NextToken"]
    expect_error("InvalidNextToken", other.list_commands, NextToken=token)


def test_regions_are_separate(fleet, server):
    fl = fleet(1)
    node = fl.nodes[0]
    cid = fl.send()["CommandId"]
    west = boto3.session.Session().client(
        "ssm", endpoint_url=server.endpoint, region_name="us-west-2", aws_access_key_id=fl.account.access_key_id,
        aws_secret_access_key=fl.account.secret_access_key, config=Config(retries={"max_attempts": 1}))
    assert west.list_commands()["Commands"] == []
    expect_error("InvalidCommandId", west.get_command_invocation, CommandId=cid, InstanceId=node.instance_id)
    expect_error("InvalidInstanceId", west.send_command, InstanceIds=[node.instance_id], DocumentName=DOC,
                 Parameters={"commands": ["x"]})
    c = west.send_command(Targets=[{"Key": "InstanceIds", "Values": ["*"]}], DocumentName=DOC,
                          Parameters={"commands": ["x"]})["Command"]
    assert (c["TargetCount"], c["StatusDetails"], c["OutputS3Region"]) == (0, "NoInstancesInTag", "us-west-2")
    assert [x["CommandId"] for x in fl.ssm.list_commands()["Commands"]] == [cid]


def test_control_channel_is_refused(fleet, server):
    fl = fleet(1)
    node = fl.nodes[0]
    http = urllib3.PoolManager()
    url = f"{server.endpoint}/v1/control-channel/{node.instance_id}"
    body = json.dumps({"MessageSchemaVersion": "1.0", "RequestId": str(uuid.uuid4())}).encode()
    from botocore.awsrequest import AWSRequest

    answers = []
    for auth in (None, node.auth("ssmmessages"), node.auth("ssm")):
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            req = AWSRequest(method="POST", url=url, data=body, headers=headers)
            auth.add_auth(req)
            headers = dict(req.headers.items())
        r = http.request("POST", url, body=body, headers=headers, retries=False)
        answers.append((r.status, r.data))
    for status, data in answers:
        assert status == 403
        text = data.decode()
        assert text.startswith("<AccessDeniedException>") and text.endswith("</AccessDeniedException>"), text
        assert "<Message>" in text
    assert len({d for _, d in answers}) == 1  # always the same answer


# --------------------------------------------------------------------------- aws CLI


def test_aws_cli(fleet, aws_cli):
    fl = fleet(1)
    node = fl.nodes[0]
    sent = aws_cli("send-command", "--instance-ids", node.instance_id, "--document-name", DOC,
                   "--parameters", "commands=echo cli", "--comment", "from the cli", account=fl.account).json
    cid = sent["Command"]["CommandId"]
    assert (sent["Command"]["Status"], sent["Command"]["Comment"]) == ("Pending", "from the cli")
    assert sent["Command"]["Parameters"] == {"commands": ["echo cli"]}
    got = aws_cli("get-command-invocation", "--command-id", cid, "--instance-id", node.instance_id,
                  account=fl.account).json
    assert got["Status"] == "Pending"
    m = one_message(node)
    assert json.loads(m["Payload"])["Parameters"]["commands"] == ["echo cli"]
    run(node, m, stdout="cli\n")
    listed = aws_cli("list-command-invocations", "--command-id", cid, "--details", account=fl.account).json
    [inv] = listed["CommandInvocations"]
    assert (inv["Status"], inv["CommandPlugins"][0]["Output"]) == ("Success", "cli\n")
    got = aws_cli("get-command-invocation", "--command-id", cid, "--instance-id", node.instance_id,
                  account=fl.account).json
    assert (got["Status"], got["StandardOutputContent"], got["ResponseCode"]) == ("Success", "cli\n", 0)
    cmds = aws_cli("list-commands", "--command-id", cid, account=fl.account).json["Commands"]
    assert [(c["CommandId"], c["Status"], c["CompletedCount"]) for c in cmds] == [(cid, "Success", 1)]
    err = aws_cli("get-command-invocation", "--command-id", str(uuid.uuid4()), "--instance-id", node.instance_id,
                  account=fl.account, check=False)
    assert err.returncode != 0 and "InvalidCommandId" in err.stderr


# --------------------------------------------------------------------------- the background checks (keep last)


def test_zz_background_held_poll_and_delivery_timeout(background):
    """Checks what `background` started: a poll with nothing queued is held ~15 s and answered
    empty; a command nobody picked up times out at its TimeoutSeconds (30 s) as DeliveryTimedOut,
    including the target that was never sent, and the message taken but never acknowledged is
    withdrawn."""
    bg = background
    fl, cid = bg["fleet"], bg["cmd"]["CommandId"]
    # (1) The held poll.
    bg["thread"].join(LONG_POLL_S + 5)
    held = bg["held"]
    assert held.get("status") == 200, held
    assert held["body"]["Messages"] == [] and held["body"]["Destination"] == bg["held_node"].instance_id
    assert LONG_POLL_S - 1 <= held["elapsed"] <= LONG_POLL_S + 2.5, held["elapsed"]
    # (2) The delivery timeout (at RequestedDateTime + 30 s; the worker looks every 0.5 s).
    deadline = bg["cmd"]["RequestedDateTime"] + timedelta(seconds=bg["cmd"]["TimeoutSeconds"])
    assert bg["cmd"]["TimeoutSeconds"] == 30
    remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
    if remaining > 0:
        time.sleep(remaining)
    state = wait_until(lambda: (s := fl.state(cid))[0] != "Pending" and s, timeout=5)
    assert state == ("TimedOut", "DeliveryTimedOut", 2, 2, 0, 2)
    assert fl.statuses(cid) == {
        bg["a"].instance_id: ("TimedOut", "DeliveryTimedOut"),
        bg["b"].instance_id: ("TimedOut", "DeliveryTimedOut"),
    }
    i = fl.inv(cid, bg["b"])
    assert (i["Status"], i["StatusDetails"], i["ResponseCode"]) == ("TimedOut", "DeliveryTimedOut", -1)
    # The message a took is withdrawn: a late reply changes nothing, and a's next poll only
    # hands out a new command.
    a = bg["a"]
    assert a.reply(bg["taken"]["MessageId"], in_progress()).status == 200
    assert fl.inv(cid, a)["Status"] == "TimedOut"
    c2 = fl.send([a])
    assert [m["MessageId"] for m in a.messages()] == [msg_id(c2["CommandId"], a)]


# --------------------------------------------------------------------------- review regressions


def node_client(node: FakeNode):
    """boto3 with a node's own temporary credentials."""
    c = node.creds
    return boto3.client(
        "ssm", endpoint_url=node.endpoint, region_name=REGION, aws_access_key_id=c.access_key,
        aws_secret_access_key=c.secret_key, aws_session_token=c.token,
        config=Config(retries={"max_attempts": 1}),
    )


def test_node_credentials_cannot_send_commands_or_read_other_nodes_output(fleet):
    fl = fleet(2)
    a, b = fl.nodes
    cmd = fl.send([b])
    as_node = node_client(a)
    err = expect_error("AccessDeniedException", as_node.send_command, DocumentName=DOC,
                       Targets=[{"Key": "InstanceIds", "Values": ["*"]}], Parameters={"commands": ["id"]})
    assert f"managed-instance/{a.instance_id}" in err["Message"] and "ssm:SendCommand" in err["Message"]
    expect_error("AccessDeniedException", as_node.get_command_invocation, CommandId=cmd["CommandId"],
                 InstanceId=b.instance_id)
    expect_error("AccessDeniedException", as_node.cancel_command, CommandId=cmd["CommandId"])
    # What the agent does call still works.
    assert as_node.get_document(Name=DOC)["Name"] == DOC


def test_nul_in_output_is_dropped_and_the_reply_lands(fleet):
    fl = fleet(1)
    (n,) = fl.nodes
    cmd = fl.send()
    m = one_message(n)
    run(n, m, stdout="bin\u0000ary\n", stderr="e\u0000rr")
    i = fl.inv(cmd["CommandId"], n)
    assert (i["Status"], i["StandardOutputContent"], i["StandardErrorContent"]) == ("Success", "binary\n", "err")


def test_reply_ids_are_bounded(fleet):
    fl = fleet(1)
    (n,) = fl.nodes
    fl.send()
    m = one_message(n)
    r = n.reply(m["MessageId"], in_progress(), reply_id="x" * 65)
    assert (r.status, r.error) == (400, "ValidationException"), r.body


def test_an_acknowledged_command_counts_as_picked_up_without_the_in_progress_reply(fleet):
    fl = fleet(1)
    (n,) = fl.nodes
    cmd = fl.send()
    m = one_message(n)
    assert fl.inv(cmd["CommandId"], n)["Status"] == "Pending"
    assert n.ack(m["MessageId"]).status == 200
    i = fl.inv(cmd["CommandId"], n)
    assert (i["Status"], i["StatusDetails"]) == ("InProgress", "InProgress")
    assert i["ExecutionStartDateTime"] != ""
    assert fl.command(cmd["CommandId"])["Status"] == "InProgress"
