"""The unmodified AWS SSM Agent's replies, replayed byte for byte over raw HTTP (signed as the agent
signs, see fake_node.py), as its source builds them — aws/amazon-ssm-agent 3.3:

* agent/messageservice/interactor/mdsinteractor/mdsinteractor.go `processMessage`: for every
  message it takes, cancel messages included, a document-level reply (`documentStatus
  InProgress`, `runtimeStatus` null) before AcknowledgeMessage; when it cannot start a document
  (`ParseSendCommandMessage` fails: a `{{ssm:…}}` it can't resolve…) a document-level `Failed`
  reply with the reason in `documentTraceOutput`, and no acknowledgement;
* agent/framework/processor/executer/basicexecuter/basicexecuter.go and
  agent/framework/runpluginutil/runplugins.go: a reply as each step ends, `runtimeStatus` holding
  that step only (keyed by step name in 2.x documents, by plugin name in 1.2 ones; `name` is the
  plugin), `documentStatus InProgress`;
* agent/contracts/aggregator.go `DocumentResultAggregator`: the final reply's `documentStatus`
  (SuccessAndReboot > Failed > TimedOut > Cancelled > Success), `runtimeStatus` listing the step
  only for a one-step document (`{}` otherwise), counts over every step;
* agent/runcommand/mds/service.go `SendReply` / mdsinteractor.go `sendFailedReplies`: a reply that
  failed is saved and re-sent every 5 minutes, in file-name (ReplyId) order, stopping at the first
  failure.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import pytest
import urllib3

from fake_node import call
from test_run_command import fleet, msg_id, one_message, received  # noqa: F401 - fleet is a fixture

AGENT = {"lang": "en-US", "name": "amazon-ssm-agent", "os": "linux", "osver": "1", "ver": "3.3.0.0"}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def doc_level(status: str, trace: str = "") -> dict:
    """`PrepareReplyPayloadToUpdateDocumentStatus`."""
    return {"additionalInfo": {"agent": AGENT, "dateTime": now_iso(), "runId": "", "runtimeStatusCounts": None},
            "documentStatus": status, "documentTraceOutput": trace, "runtimeStatus": None}


def runtime_status(step: dict) -> dict:
    """`prepareRuntimeStatus`: a Failed plugin with code 0 reports 1."""
    code = step["code"]
    if step["status"] == "Failed" and code == 0:
        code = 1
    err = step.get("stderr", "")
    output = step["stdout"] + ("\n----------ERROR-------\n" + err if err else "")
    return {"code": code, "name": step["plugin"], "output": output[:2500], "startDateTime": now_iso(),
            "endDateTime": now_iso(), "outputS3BucketName": "", "outputS3KeyPrefix": "", "stepName": "",
            "status": step["status"], "standardOutput": step["stdout"], "standardError": err}


def counts(steps: list[dict]) -> dict:
    out: dict = {}
    for s in steps:
        out[s["status"]] = out.get(s["status"], 0) + 1
    return out


def step_update(done: list[dict]) -> dict:
    """The reply when the last step of `done` ends."""
    last = done[-1]
    return {"additionalInfo": {"agent": AGENT, "dateTime": now_iso(), "runId": "", "runtimeStatusCounts": counts(done)},
            "documentStatus": "InProgress", "documentTraceOutput": "",
            "runtimeStatus": {last["key"]: runtime_status(last)}}


def aggregate(steps: list[dict]) -> str:
    c = counts(steps)
    for s in ("SuccessAndReboot", "Failed", "TimedOut", "Cancelled"):
        if c.get(s):
            return s
    return "Success" if c.get("Success", 0) + c.get("Skipped", 0) == len(steps) else "InProgress"


def final_reply(steps: list[dict]) -> dict:
    runtime = {s["key"]: runtime_status(s) for s in steps} if len(steps) <= 1 else {}
    return {"additionalInfo": {"agent": AGENT, "dateTime": now_iso(), "runId": "", "runtimeStatusCounts": counts(steps)},
            "documentStatus": aggregate(steps), "documentTraceOutput": "", "runtimeStatus": runtime}


def document(schema: str, n: int) -> tuple[dict, list[tuple[str, str]]]:
    """A Command document of `n` shell steps and its (key, plugin) pairs in the document's order."""
    if schema == "2.2":
        names = [f"step{i}" for i in range(n)]
        return ({"schemaVersion": "2.2", "mainSteps": [
            {"action": "aws:runShellScript", "name": name, "inputs": {"runCommand": [f"echo {name}"]}} for name in names
        ]}, [(name, "aws:runShellScript") for name in names])
    # 1.2: one runtimeConfig entry per plugin, keyed (and reported) by plugin name; listed in name order.
    plugins = ["aws:runShellScript", "aws:runPowerShellScript", "aws:applications"][:n]
    return ({"schemaVersion": "1.2", "runtimeConfig": {
        p: {"properties": [{"id": f"0.{p}", "runCommand": [f"echo {p}"]}]} for p in plugins
    }}, sorted((p, p) for p in plugins))


def create(fl, content: dict) -> str:
    name = f"agent-{uuid.uuid4().hex[:12]}"
    fl.ssm.create_document(Name=name, Content=json.dumps(content), DocumentType="Command")
    return name


def take(node, fl, name: str) -> tuple[str, str]:
    """SendCommand to `node`, and the agent's first two calls for its message."""
    cid = fl.send(nodes=[node], DocumentName=name)["CommandId"]
    m = one_message(node)
    assert node.reply(m["MessageId"], doc_level("InProgress")).status == 200
    assert node.ack(m["MessageId"]).status == 200
    return cid, m["MessageId"]


CASES = [(schema, n, fail) for schema in ("1.2", "2.2") for n in (2, 3) for fail in [None, *range(n)]]


@pytest.mark.parametrize("schema,n,fail", CASES, ids=[f"{s}-{n}steps-fail{f}" for s, n, f in CASES])
def test_per_step_replies_keep_every_step(fleet, schema, n, fail):
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document(schema, n)
    cid, mid = take(node, fl, create(fl, content))
    steps = [{"key": k, "plugin": p, "status": "Failed" if i == fail else "Success",
              "code": 10 + i if i == fail else 0, "stdout": f"out {k}\n",
              "stderr": f"failed to run commands: exit status {10 + i}" if i == fail else ""}
             for i, (k, p) in enumerate(keys)]
    # 1.2 plugins run in Go map order: any order.
    ran = steps if schema == "2.2" else random.sample(steps, len(steps))
    for i in range(len(ran)):
        r = node.reply(mid, step_update(ran[: i + 1]))
        assert r.status == 200 and r.json() == {}, r.body
        assert fl.inv(cid, node)["Status"] == "InProgress"
    assert node.reply(mid, final_reply(steps)).status == 200

    failed = fail is not None
    inv = fl.invocations(cid, details=True)[0]
    assert (inv["Status"], inv["StatusDetails"]) == (("Failed", "Failed") if failed else ("Success", "Success"))
    plugins = inv["CommandPlugins"]
    assert [(p["Name"], p["Status"], p["ResponseCode"]) for p in plugins] == \
        [(s["key"], s["status"], s["code"]) for s in steps], "every step, in the document's order"
    assert [p["Output"] for p in plugins] == [runtime_status(s)["output"] for s in steps]
    for s in steps:
        one = fl.inv(cid, node, PluginName=s["key"])
        assert (one["PluginName"], one["Status"], one["ResponseCode"]) == (s["key"], s["status"], s["code"])
        assert (one["StandardOutputContent"], one["StandardErrorContent"]) == (s["stdout"], s["stderr"])
    whole = fl.inv(cid, node)
    assert (whole["PluginName"], whole["Status"]) == ("", "Failed" if failed else "Success")
    assert whole["ResponseCode"] == (10 + fail if failed else 0)
    assert whole["StandardOutputContent"] == "\n".join(s["stdout"] for s in steps)
    assert fl.state(cid) == (("Failed", "Failed", 1, 1, 1, 0) if failed else ("Success", "Success", 1, 1, 0, 0))


def test_one_step_document_final_reply_carries_the_step(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document("2.2", 1)
    cid, mid = take(node, fl, create(fl, content))
    step = {"key": keys[0][0], "plugin": "aws:runShellScript", "status": "Failed", "code": 0, "stdout": "x\n",
            "stderr": "boom"}
    assert node.reply(mid, step_update([step])).status == 200
    assert node.reply(mid, final_reply([step])).status == 200
    whole = fl.inv(cid, node)
    assert (whole["PluginName"], whole["Status"], whole["ResponseCode"]) == ("step0", "Failed", 1)


def test_spooled_replies_come_back_after_an_outage_in_any_order(fleet):
    """The service was down while the steps ended: the agent saved every reply and re-sends them
    in ReplyId order, so the final one may come first; each is sent again if its answer was lost."""
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document("2.2", 3)
    cid, mid = take(node, fl, create(fl, content))
    steps = [{"key": k, "plugin": p, "status": s, "code": c, "stdout": f"{k}\n", "stderr": e}
             for (k, p), (s, c, e) in zip(keys, [("Success", 0, ""), ("Failed", 3, "three"), ("Success", 0, "")])]
    updates = [(str(uuid.uuid4()), step_update(steps[: i + 1])) for i in range(3)]
    last = (str(uuid.uuid4()), final_reply(steps))
    assert last[1]["runtimeStatus"] == {}
    # The final reply first, then the steps, last step first.
    for rid, payload in [last, *reversed(updates)]:
        r = node.reply(mid, payload, reply_id=rid)
        assert r.status == 200 and r.json() == {}, r.body
        assert fl.inv(cid, node)["Status"] == "Failed", "the end is decided by the first final reply"
    # Every reply re-sent (its answer lost): accepted, nothing changes.
    for rid, payload in [*updates, last]:
        r = node.reply(mid, payload, reply_id=rid)
        assert r.status == 200 and r.json() == {}, r.body
    inv = fl.invocations(cid, details=True)[0]
    assert inv["Status"] == "Failed"
    assert [(p["Name"], p["Status"], p["ResponseCode"]) for p in inv["CommandPlugins"]] == \
        [("step0", "Success", 0), ("step1", "Failed", 3), ("step2", "Success", 0)]
    whole = fl.inv(cid, node)
    assert (whole["ResponseCode"], whole["StandardOutputContent"], whole["StandardErrorContent"]) == \
        (3, "step0\n\nstep1\n\nstep2\n", "three")
    assert fl.state(cid) == ("Failed", "Failed", 1, 1, 1, 0)


def test_replies_to_cancel_messages_are_accepted(server, fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document("2.2", 2)
    cid, mid = take(node, fl, create(fl, content))
    first = {"key": keys[0][0], "plugin": "aws:runShellScript", "status": "Success", "code": 0, "stdout": "a\n"}
    assert node.reply(mid, step_update([first])).status == 200
    fl.ssm.cancel_command(CommandId=cid)
    assert fl.inv(cid, node)["Status"] == "Cancelling"
    cancel = one_message(node)
    assert cancel["Topic"].startswith("aws.ssm.cancelCommand.")
    assert json.loads(cancel["Payload"]) == {"CancelMessageId": mid}
    before = ok_replies(server)
    # The agent's sequence for the cancel message: document-level reply, then acknowledgement.
    r = node.reply(cancel["MessageId"], doc_level("InProgress"))
    assert (r.status, r.json()) == (200, {}), r.body
    assert node.ack(cancel["MessageId"]).status == 200
    # Re-sent from its spool after the message is gone: still the normal answer.
    r = node.reply(cancel["MessageId"], doc_level("InProgress"))
    assert (r.status, r.json()) == (200, {}), r.body
    assert ok_replies(server) - before == 2, "counted as answered, not as errors"
    second = {"key": keys[1][0], "plugin": "aws:runShellScript", "status": "Cancelled", "code": 137, "stdout": ""}
    assert node.reply(mid, step_update([first, second])).status == 200
    assert node.reply(mid, final_reply([first, second])).status == 200
    inv = fl.invocations(cid, details=True)[0]
    assert (inv["Status"], [p["Status"] for p in inv["CommandPlugins"]]) == ("Cancelled", ["Success", "Cancelled"])
    assert fl.command(cid)["Status"] == "Cancelled"
    # A cancel message id of another node's command is still refused.
    other = f"aws.ssm.cancel-{uuid.uuid4()}.{node.instance_id}"
    assert node.reply(other, doc_level("InProgress")).json()["__type"] == "InvalidMessageId"


def ok_replies(server) -> float:
    text = urllib3.PoolManager().request("GET", server.endpoint + "/metrics").data.decode()
    for line in text.splitlines():
        if line.startswith("ssmd_requests_total{") and 'operation="SendReply"' in line and 'code="OK"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_document_failed_before_it_ran_shows_the_reason(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document("2.2", 2)
    cid = fl.send(nodes=[node], DocumentName=create(fl, content))["CommandId"]
    m = one_message(node)
    reason = "failed to resolve ssm parameter reference {{ssm:missing}}: ParameterNotFound"
    # ParseSendCommandMessage failed: only the document-level Failed reply, no acknowledgement.
    assert node.reply(m["MessageId"], doc_level("Failed", reason)).status == 200
    inv = fl.invocations(cid, details=True)[0]
    assert (inv["Status"], inv["TraceOutput"]) == ("Failed", reason)
    assert [(p["Name"], p["Status"], p["Output"]) for p in inv["CommandPlugins"]] == \
        [(k, "Failed", reason) for k, _ in keys]
    whole = fl.inv(cid, node)
    assert (whole["Status"], whole["ResponseCode"], whole["StandardErrorContent"]) == ("Failed", 1, reason)
    step = fl.inv(cid, node, PluginName=keys[0][0])
    assert (step["Status"], step["StandardErrorContent"]) == ("Failed", reason)
    poller = node.poll()
    try:
        assert received({node.instance_id: poller}, wait=1.5) == {}, "the message is withdrawn"
    finally:
        poller.stop()


def test_every_call_of_the_agent_sdk_gets_an_answer(fleet):
    fl = fleet(1)
    node = fl.nodes[0]
    for op in ("ListInstanceAssociations", "UpdateInstanceAssociationStatus", "GetManifest",
               "PutConfigurePackageResult", "DescribeDocumentParameters", "GetCalendar"):
        r = call(node.endpoint, f"AmazonSSM.{op}", {"InstanceId": node.instance_id}, node.auth("ssm"))
        assert (r.status, r.json()["__type"]) == (400, "UnsupportedOperationException"), (op, r.body)
        assert op in r.json()["Message"], r.body
    r = node.mds("GetEndpoint", {"Protocol": "https"})
    assert r.json()["__type"] == "UnsupportedOperationException", r.body
    # Unsigned, they are refused like any other call.
    r = call(node.endpoint, "AmazonSSM.ListInstanceAssociations", {"InstanceId": node.instance_id}, None)
    assert r.status in (400, 403) and r.json()["__type"] != "UnsupportedOperationException", r.body


def test_a_held_poll_is_not_answered_by_the_nodes_own_replies(fleet):
    """Replies, acknowledgements and step updates of one command never end the node's held poll
    (the AWS agent sleeps 2-2.5 s after any poll answered in under a second)."""
    fl = fleet(1)
    node = fl.nodes[0]
    content, keys = document("2.2", 2)
    cid, mid = take(node, fl, create(fl, content))
    answered = {}

    def poll():
        t0 = time.monotonic()
        r = node.get_messages(timeout=25)
        answered["after"] = time.monotonic() - t0
        answered["messages"] = r.json().get("Messages")

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    time.sleep(0.3)
    steps = [{"key": k, "plugin": p, "status": "Success", "code": 0, "stdout": ""} for k, p in keys]
    for payload in (step_update(steps[:1]), step_update(steps), final_reply(steps)):
        assert node.reply(mid, payload).status == 200
    assert fl.inv(cid, node)["Status"] == "Success"
    t.join(2.0)
    assert answered == {}, f"the poll was answered early: {answered}"
    # A command for the node ends the hold at once.
    cid2 = fl.send(nodes=[node])["CommandId"]
    t.join(5.0)
    assert answered["after"] < 5 and [m["MessageId"] for m in answered["messages"]] == [msg_id(cid2, node)]
