"""A managed node played from Python, speaking the AWS SSM Agent's protocol to ssmd.

It registers with an activation (RSA key pair, RegisterManagedInstance), gets temporary
credentials (RequestManagedInstanceRoleToken signed with RSA-PSS over the SigV4 string to
sign), pings (UpdateInstanceInformation) and talks to the message service
(EC2WindowsMessageDeliveryService, signing name ec2messages) with those credentials. Tests use it
to drive Run Command step by step, where the real `ssmd-agent` would run everything at once.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HTTP = urllib3.PoolManager(maxsize=32)


class RsaSigV4(SigV4Auth):
    """SigV4 whose signature is RSA-PSS (SHA-256, salt 32) with the node's key."""

    def __init__(self, key, instance_id: str, region: str):
        super().__init__(Credentials(instance_id, "unused"), "ssm", region)
        self.key = key

    def signature(self, string_to_sign, request):
        sig = self.key.sign(
            string_to_sign.encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        return base64.b64encode(sig).decode()


class Response:
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else {}

    @property
    def error(self) -> str | None:
        return self.json().get("__type") if self.status != 200 else None


def call(endpoint: str, target: str, body: dict, auth: SigV4Auth | None, timeout: float = 30) -> Response:
    data = json.dumps(body).encode()
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=data,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    if auth is not None:
        auth.add_auth(req)
    r = HTTP.request("POST", endpoint + "/", body=data, headers=dict(req.headers.items()), timeout=timeout, retries=False)
    return Response(r.status, r.data)


class FakeNode:
    """One node: register with `FakeNode.register(...)`, then ping and use the message service."""

    def __init__(self, endpoint: str, region: str):
        self.endpoint = endpoint
        self.region = region
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fingerprint = str(uuid.uuid4())
        self.instance_id = ""
        self.creds: Credentials | None = None

    @classmethod
    def register(
        cls, endpoint: str, region: str, activation_id: str, code: str, ping: bool = True, computer_name: str = "node.local"
    ) -> "FakeNode":
        node = cls(endpoint, region)
        public = node.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        r = call(
            endpoint,
            "AmazonSSM.RegisterManagedInstance",
            {
                "ActivationCode": code,
                "ActivationId": activation_id,
                "PublicKey": base64.b64encode(public).decode(),
                "PublicKeyType": "Rsa",
                "Fingerprint": node.fingerprint,
            },
            None,
        )
        assert r.status == 200, r.body
        node.instance_id = r.json()["InstanceId"]
        node.refresh()
        if ping:
            node.ping(computer_name)
        return node

    def refresh(self) -> None:
        auth = RsaSigV4(self.key, self.instance_id, self.region)
        r = call(self.endpoint, "AmazonSSM.RequestManagedInstanceRoleToken", {"Fingerprint": self.fingerprint}, auth)
        assert r.status == 200, r.body
        j = r.json()
        self.creds = Credentials(j["AccessKeyId"], j["SecretAccessKey"], j["SessionToken"])

    def auth(self, service: str) -> SigV4Auth:
        return SigV4Auth(self.creds, service, self.region)

    def ping(self, computer_name: str = "node.local") -> Response:
        r = call(
            self.endpoint,
            "AmazonSSM.UpdateInstanceInformation",
            {
                "InstanceId": self.instance_id,
                "AgentName": "amazon-ssm-agent",
                "AgentVersion": "3.3.0.0",
                "AgentStatus": "Active",
                "PlatformType": "Linux",
                "PlatformName": "Debian GNU/Linux",
                "PlatformVersion": "12",
                "IPAddress": "127.0.0.1",
                "ComputerName": computer_name,
            },
            self.auth("ssm"),
        )
        assert r.status == 200, r.body
        return r

    def mds(self, op: str, body: dict, timeout: float = 30, auth: SigV4Auth | None = None) -> Response:
        return call(
            self.endpoint,
            f"EC2WindowsMessageDeliveryService.{op}",
            body,
            auth if auth is not None else self.auth("ec2messages"),
            timeout,
        )

    def get_messages(self, destination: str | None = None, visibility: int = 10, timeout: float = 30) -> Response:
        return self.mds(
            "GetMessages",
            {
                "Destination": destination or self.instance_id,
                "MessagesRequestId": str(uuid.uuid4()),
                "VisibilityTimeoutInSeconds": visibility,
            },
            timeout,
        )

    def messages(self, visibility: int = 10, timeout: float = 5) -> list[dict]:
        """The node's visible messages, for when some are known to be queued: a poll that is
        held instead (nothing there) fails after `timeout` seconds rather than waiting it out.
        Careful: the server keeps an abandoned poll open and it may still take a message."""
        r = self.get_messages(visibility=visibility, timeout=timeout)
        assert r.status == 200, r.body
        return r.json()["Messages"]

    def poll(self, visibility: int = 30) -> "Poller":
        """Starts long-polling in the background, as the agent does all the time."""
        return Poller(self, visibility)

    def ack(self, message_id: str) -> Response:
        return self.mds("AcknowledgeMessage", {"MessageId": message_id})

    def reply(self, message_id: str, payload: dict, reply_id: str | None = None) -> Response:
        return self.mds(
            "SendReply",
            {"MessageId": message_id, "ReplyId": reply_id or str(uuid.uuid4()), "Payload": json.dumps(payload)},
        )

    def fail(self, message_id: str, failure: str = "NoHandlerExists") -> Response:
        return self.mds("FailMessage", {"MessageId": message_id, "FailureType": failure})

    def delete(self, message_id: str) -> Response:
        return self.mds("DeleteMessage", {"MessageId": message_id})


class Poller:
    """A node's never-ending GetMessages loop in a thread; what it receives queues up in `got`.
    `stop()` ends the loop after the poll in flight (held up to ~15 s by the server)."""

    def __init__(self, node: FakeNode, visibility: int):
        self.node = node
        self.visibility = visibility
        self.got: queue.Queue = queue.Queue()
        self.errors: list = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.node.get_messages(visibility=self.visibility, timeout=25)
            except Exception as e:  # noqa: BLE001 - recorded for the test to see
                self.errors.append(repr(e))
                time.sleep(0.2)
                continue
            if r.status != 200:
                self.errors.append(r.body)
                time.sleep(0.2)
                continue
            for m in r.json()["Messages"]:
                self.got.put(m)

    def next(self, timeout: float = 3) -> dict:
        """The next message received, waiting up to `timeout` seconds for it."""
        try:
            return self.got.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.node.instance_id} received nothing within {timeout}s (errors {self.errors})")

    def drain(self) -> list[dict]:
        """Everything received so far and not yet taken."""
        out = []
        while True:
            try:
                out.append(self.got.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._stop.set()


def in_progress() -> dict:
    """The first reply the AWS agent sends for a command."""
    return {"additionalInfo": {"agent": {"name": "amazon-ssm-agent"}}, "documentStatus": "InProgress", "runtimeStatus": None}


def final(status: str = "Success", code: int = 0, stdout: str = "", stderr: str = "", plugin: str = "aws:runShellScript") -> dict:
    """A final reply with one plugin, shaped like the AWS agent's."""
    output = stdout + ("\n----------ERROR-------\n" + stderr if stderr else "")
    return {
        "additionalInfo": {"agent": {"name": "amazon-ssm-agent"}, "runtimeStatusCounts": {status: 1}},
        "documentStatus": status,
        "documentTraceOutput": "",
        "runtimeStatus": {
            plugin: {
                "status": status,
                "code": code,
                "name": "aws:runShellScript",
                "output": output[:2500],
                "standardOutput": stdout,
                "standardError": stderr,
                "stepName": "" if plugin.startswith("aws:") else plugin,
            }
        },
    }


def run(node: FakeNode, message: dict, status: str = "Success", code: int = 0, stdout: str = "", stderr: str = "") -> None:
    """Plays the agent's whole sequence for one command message."""
    assert node.reply(message["MessageId"], in_progress()).status == 200
    assert node.ack(message["MessageId"]).status == 200
    r = node.reply(message["MessageId"], final(status, code, stdout, stderr))
    assert r.status == 200, r.body
