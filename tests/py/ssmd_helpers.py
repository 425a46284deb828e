"""Shared constants and helpers for the ssmd pytest suite (imported by conftest and tests)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"
ROOT_ACCOUNT = "111111111111"
ROOT_KEY = "AKIATESTROOT00000001"
ROOT_SECRET = "testsecret/0000000000000000000000000000001"
READY_PREFIX = "ssmd listening on "
STARTUP_TIMEOUT = 30.0

AUTOMATION_YAML = """\
schemaVersion: '0.3'
description: naps for a second
mainSteps:
  - name: nap
    action: aws:sleep
    inputs:
      Duration: PT1S
"""

CALENDAR = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//ssmd//pytest//EN\r\n"
    "X-CALENDAR-TYPE:DEFAULT_OPEN\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:freeze-1@ssmd.test\r\n"
    "DTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20260101T000000Z\r\n"
    "DTEND:20260102T000000Z\r\n"
    "SUMMARY:freeze\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)

CHANGE_TEMPLATE = (
    '{"schemaVersion":"0.3","templateInformation":"x","mainSteps":[{"name":"ApproveChange",'
    '"action":"aws:approve","inputs":{"Message":"ok?","Approvers":'
    '["arn:aws:iam::111111111111:root"],"MinRequiredApprovals":1}}]}'
)


def unique_name(prefix: str = "doc") -> str:
    """A document name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def command_doc(text: str = "echo hi") -> str:
    """A valid Command 2.2 document whose content differs with ``text``."""
    return (
        '{"schemaVersion":"2.2","mainSteps":[{"action":"aws:runShellScript",'
        '"name":"s","inputs":{"runCommand":["' + text + '"]}}]}'
    )


def expect_error(code: str, fn, /, **kwargs) -> dict:
    """Call ``fn(**kwargs)``; assert it fails with ``code`` and HTTP 400. Returns the error dict."""
    with pytest.raises(ClientError) as excinfo:
        fn(**kwargs)
    resp = excinfo.value.response
    assert resp["Error"]["Code"] == code, resp["Error"]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400, resp["ResponseMetadata"]
    assert resp["Error"].get("Message"), resp["Error"]
    return resp["Error"]


@dataclasses.dataclass
class Account:
    account_id: str
    access_key_id: str
    secret_access_key: str
    client: object  # boto3 SSM client signed with this key

    def arn_of(self, name: str) -> str:
        return f"arn:aws:ssm:{REGION}:{self.account_id}:document/{name}"


AUTOMATION_TERMINAL = ("Success", "Failed", "TimedOut", "Cancelled")


def wait_for_status(ssm, execution_id: str, statuses, timeout: float = 10.0,
                    interval: float = 0.1) -> dict:
    """Poll GetAutomationExecution until its status is one of ``statuses`` (a string or a
    collection); returns the AutomationExecution. Fails with the last state seen on timeout."""
    import time

    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        ex = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if ex["AutomationExecutionStatus"] in wanted:
            return ex
        if time.monotonic() > deadline:
            steps = [(s.get("StepName"), s.get("StepStatus"), s.get("FailureMessage"))
                     for s in ex.get("StepExecutions", [])]
            raise AssertionError(
                f"execution {execution_id} is {ex['AutomationExecutionStatus']}, not one of "
                f"{sorted(wanted)}, after {timeout}s; failure={ex.get('FailureMessage')!r} "
                f"steps={steps}")
        time.sleep(interval)
