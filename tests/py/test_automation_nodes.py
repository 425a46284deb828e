"""Automation meets managed nodes: `aws:runCommand` steps and Automation Targets that name nodes
(tag:, tag-key, InstanceIds), resolved by the same target resolver Run Command uses.

Nodes are played by FakeNode in a background thread that answers every command message the
way the AWS agent does (InProgress, ack, final reply).
"""

from __future__ import annotations

import json
import threading

from fake_node import FakeNode, in_progress, run as play
from ssmd_helpers import AUTOMATION_TERMINAL, REGION, unique_name, wait_for_status


class Player:
    """Answers a node's command messages until stopped: `answer(payload) -> (status, code, stdout)`."""

    def __init__(self, node: FakeNode, answer=None):
        self.node = node
        self.answer = answer or (lambda payload: ("Success", 0, "ran on " + node.instance_id))
        self.seen: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                r = self.node.get_messages(visibility=5)
            except Exception:  # the server went away at the end of the session
                return
            for m in r.json().get("Messages", []) if r.status == 200 else []:
                if "sendCommand" not in m["Topic"]:
                    self.node.ack(m["MessageId"])
                    continue
                payload = json.loads(m["Payload"])
                self.seen.append(payload)
                status, code, out = self.answer(payload)
                play(self.node, m, status=status, code=code, stdout=out)

    def close(self):
        self.stop.set()


def nodes(client, server, n: int, tags=None) -> list[FakeNode]:
    a = client.create_activation(IamRole="role", RegistrationLimit=n, Tags=tags or [])
    return [FakeNode.register(server.endpoint, REGION, a["ActivationId"], a["ActivationCode"]) for _ in range(n)]


def runbook(client, content: dict) -> str:
    name = unique_name("rc")
    client.create_document(Content=json.dumps(content), Name=name, DocumentType="Automation", DocumentFormat="JSON")
    return name


def run_command_doc(**inputs) -> dict:
    return {
        "schemaVersion": "0.3",
        "parameters": {"Node": {"type": "String"}},
        "mainSteps": [
            {
                "name": "cmd",
                "action": "aws:runCommand",
                "inputs": {"DocumentName": "AWS-RunShellScript", "InstanceIds": ["{{ Node }}"], **inputs},
            }
        ],
        "outputs": ["cmd.CommandId", "cmd.Status", "cmd.Output"],
    }


def step(ex, name) -> dict:
    return {s["StepName"]: s for s in ex["StepExecutions"]}[name]


def test_run_command_step_runs_on_the_node_and_reports_its_result(server, new_account):
    acct = new_account()
    c = acct.client
    (node,) = nodes(c, server, 1)
    player = Player(node)
    try:
        name = runbook(c, run_command_doc(Parameters={"commands": ["echo hi"]}, Comment="from automation"))
        xid = c.start_automation_execution(DocumentName=name, Parameters={"Node": [node.instance_id]})[
            "AutomationExecutionId"
        ]
        ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=20)
    finally:
        player.close()
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    out = step(ex, "cmd")["Outputs"]
    assert out["Status"] == ["Success"]
    assert out["ResponseCode"] == ["0"]
    assert out["Output"] == ["ran on " + node.instance_id]
    command_id = out["CommandId"][0]
    cmd = c.list_commands(CommandId=command_id)["Commands"][0]
    assert cmd["Comment"] == "from automation"
    assert cmd["InstanceIds"] == [node.instance_id]
    assert player.seen[0]["Parameters"]["commands"] == ["echo hi"]
    assert player.seen[0]["CommandId"] == command_id


def test_run_command_step_fails_with_the_command(server, new_account):
    acct = new_account()
    c = acct.client
    (node,) = nodes(c, server, 1)
    player = Player(node, lambda p: ("Failed", 7, "nope"))
    try:
        name = runbook(c, run_command_doc(Parameters={"commands": ["exit 7"]}))
        xid = c.start_automation_execution(DocumentName=name, Parameters={"Node": [node.instance_id]})[
            "AutomationExecutionId"
        ]
        ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=20)
    finally:
        player.close()
    assert ex["AutomationExecutionStatus"] == "Failed"
    s = step(ex, "cmd")
    assert s["StepStatus"] == "Failed"
    assert s["Outputs"]["Status"] == ["Failed"]
    assert s["Outputs"]["ResponseCode"] == ["7"]
    assert "ended Failed" in s["FailureMessage"]


def test_run_command_step_refused_by_send_command_fails_clearly(server, new_account):
    c = new_account().client
    name = runbook(c, run_command_doc(Parameters={"commands": ["true"]}))
    xid = c.start_automation_execution(DocumentName=name, Parameters={"Node": ["mi-0123456789abcdef0"]})[
        "AutomationExecutionId"
    ]
    ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=10)
    assert ex["AutomationExecutionStatus"] == "Failed"
    msg = step(ex, "cmd")["FailureMessage"]
    assert "InvalidInstanceId" in msg and "aws:runCommand" in msg


def test_targets_naming_nodes_fan_out_one_child_per_node(server, new_account):
    acct = new_account()
    c = acct.client
    tagged = nodes(c, server, 3, tags=[{"Key": "role", "Value": "web"}])
    (other,) = nodes(c, server, 1, tags=[{"Key": "role", "Value": "db"}])
    players = [Player(n) for n in tagged + [other]]
    try:
        name = runbook(c, run_command_doc(Parameters={"commands": ["hostname"]}))
        xid = c.start_automation_execution(
            DocumentName=name,
            TargetParameterName="Node",
            Targets=[{"Key": "tag:role", "Values": ["web"]}],
            MaxConcurrency="2",
        )["AutomationExecutionId"]
        ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=30)
    finally:
        for p in players:
            p.close()
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert sorted(ex["ResolvedTargets"]["ParameterValues"]) == sorted(n.instance_id for n in tagged)
    ran = sorted(p.node.instance_id for p in players if p.seen)
    assert ran == sorted(n.instance_id for n in tagged)
    assert not [p for p in players if p.node is other and p.seen]


def test_targets_with_no_matching_node_run_nothing(server, new_account):
    c = new_account().client
    name = runbook(c, run_command_doc(Parameters={"commands": ["true"]}))
    xid = c.start_automation_execution(
        DocumentName=name, TargetParameterName="Node", Targets=[{"Key": "tag-key", "Values": ["absent"]}]
    )["AutomationExecutionId"]
    ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=10)
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    kids = c.describe_automation_executions(
        Filters=[{"Key": "ParentExecutionId", "Values": [xid]}]
    )["AutomationExecutionMetadataList"]
    assert kids == []


def test_instance_ids_star_targets_every_node(server, new_account):
    acct = new_account()
    c = acct.client
    all_nodes = nodes(c, server, 2)
    players = [Player(n) for n in all_nodes]
    try:
        name = runbook(c, run_command_doc(Parameters={"commands": ["true"]}))
        xid = c.start_automation_execution(
            DocumentName=name, TargetParameterName="Node", Targets=[{"Key": "InstanceIds", "Values": ["*"]}]
        )["AutomationExecutionId"]
        ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=30)
    finally:
        for p in players:
            p.close()
    assert ex["AutomationExecutionStatus"] == "Success", ex.get("FailureMessage")
    assert sorted(ex["ResolvedTargets"]["ParameterValues"]) == sorted(n.instance_id for n in all_nodes)


def test_a_timed_out_run_command_step_cancels_its_command(server, new_account):
    acct = new_account()
    c = acct.client
    (node,) = nodes(c, server, 1)
    # The node picks the command up and reports it running, then goes silent.
    doc = run_command_doc(Parameters={"commands": ["sleep 600"]})
    doc["mainSteps"][0]["timeoutSeconds"] = 2
    name = runbook(c, doc)
    xid = c.start_automation_execution(DocumentName=name, Parameters={"Node": [node.instance_id]})[
        "AutomationExecutionId"
    ]
    msgs = node.messages()
    assert len(msgs) == 1
    assert node.reply(msgs[0]["MessageId"], in_progress()).status == 200
    ex = wait_for_status(c, xid, AUTOMATION_TERMINAL, timeout=20)
    s = step(ex, "cmd")
    assert (ex["AutomationExecutionStatus"], s["StepStatus"]) == ("TimedOut", "TimedOut"), ex.get("FailureMessage")
    assert "was cancelled" in s["FailureMessage"]
    command_id = c.list_commands(InstanceId=node.instance_id)["Commands"][0]["CommandId"]
    assert c.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Cancelling"
    cancel = node.messages()
    assert len(cancel) == 1 and "cancelCommand" in cancel[0]["Topic"], cancel
    assert json.loads(cancel[0]["Payload"]) == {"CancelMessageId": msgs[0]["MessageId"]}
