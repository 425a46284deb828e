"""Maintenance Windows through boto3 against the real binary, on both backends: every window
operation and its errors, the schedule table (AWS's documented cron forms, L/W/#, offsets,
StartDate/EndDate, rate anchoring, zones and daylight-saving gaps and overlaps) read back as
NextExecutionTime and DescribeMaintenanceWindowSchedule, tags, ClientToken idempotency,
pagination, and windows that really fire: an at() window whose Run Command task reaches a
played node and whose Automation task starts a real execution.

Schedules are given a StartDate in 2027 so the expected runs are fixed dates, checked against
zoneinfo where a zone is involved.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from fake_node import FakeNode, final, in_progress
from ssmd_helpers import REGION, expect_error, unique_name

WINDOW_ID = re.compile(r"^mw-[0-9a-f]{17}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
START_2027 = "2027-01-01T00:00:00Z"


def window(ssm, schedule="cron(0 2 ? * * *)", **kw) -> str:
    kw.setdefault("Name", unique_name("mw"))
    kw.setdefault("Duration", 2)
    kw.setdefault("Cutoff", 1)
    kw.setdefault("AllowUnassociatedTargets", False)
    return ssm.create_maintenance_window(Schedule=schedule, **kw)["WindowId"]


def upcoming(ssm, window_id, n=4, **kw) -> list[str]:
    out = ssm.describe_maintenance_window_schedule(WindowId=window_id, MaxResults=n, **kw)
    return [e["ExecutionTime"] for e in out["ScheduledWindowExecutions"]]


# --------------------------------------------------------------------------- definitions


def test_window_lifecycle(ssm):
    name = unique_name("mw")
    wid = ssm.create_maintenance_window(
        Name=name, Description="patch night", Schedule="cron(0 2 ? * SUN *)", Duration=3, Cutoff=1,
        AllowUnassociatedTargets=True, StartDate=START_2027, Tags=[{"Key": "team", "Value": "ops"}],
    )["WindowId"]
    assert WINDOW_ID.match(wid)
    got = ssm.get_maintenance_window(WindowId=wid)
    assert got["Name"] == name and got["Description"] == "patch night"
    assert got["Schedule"] == "cron(0 2 ? * SUN *)" and got["Duration"] == 3 and got["Cutoff"] == 1
    assert got["AllowUnassociatedTargets"] is True and got["Enabled"] is True
    assert got["StartDate"] == START_2027
    assert got["NextExecutionTime"] == "2027-01-03T02:00Z"  # the first Sunday after StartDate
    assert isinstance(got["CreatedDate"], datetime) and isinstance(got["ModifiedDate"], datetime)
    assert ssm.list_tags_for_resource(ResourceType="MaintenanceWindow", ResourceId=wid)["TagList"] == [
        {"Key": "team", "Value": "ops"}]

    # A partial update changes only what it names, and answers the whole window.
    out = ssm.update_maintenance_window(WindowId=wid, Duration=4)
    assert out["Duration"] == 4 and out["Description"] == "patch night" and out["Schedule"] == "cron(0 2 ? * SUN *)"
    assert "NextExecutionTime" not in out
    # Disabled: no next run.
    ssm.update_maintenance_window(WindowId=wid, Enabled=False)
    got = ssm.get_maintenance_window(WindowId=wid)
    assert got["Enabled"] is False and "NextExecutionTime" not in got
    assert upcoming(ssm, wid) == []
    # Replace sets every field: what it omits is cleared, Enabled defaults to true.
    out = ssm.update_maintenance_window(WindowId=wid, Replace=True, Name=name, Schedule="cron(30 4 ? * * *)",
                                       Duration=2, Cutoff=0, AllowUnassociatedTargets=False)
    assert "Description" not in out and "StartDate" not in out and out["Enabled"] is True
    got = ssm.get_maintenance_window(WindowId=wid)
    assert "Description" not in got and got["Cutoff"] == 0 and got["NextExecutionTime"].endswith(":30Z")
    err = expect_error("ValidationException", ssm.update_maintenance_window, WindowId=wid, Replace=True,
                       Name=name, Schedule="rate(1 day)", Duration=2, AllowUnassociatedTargets=False)
    assert "Cutoff" in err["Message"]

    ssm.add_tags_to_resource(ResourceType="MaintenanceWindow", ResourceId=wid, Tags=[{"Key": "env", "Value": "prod"}])
    ssm.remove_tags_from_resource(ResourceType="MaintenanceWindow", ResourceId=wid, TagKeys=["team"])
    assert ssm.list_tags_for_resource(ResourceType="MaintenanceWindow", ResourceId=wid)["TagList"] == [
        {"Key": "env", "Value": "prod"}]

    assert ssm.delete_maintenance_window(WindowId=wid)["WindowId"] == wid
    expect_error("DoesNotExistException", ssm.get_maintenance_window, WindowId=wid)
    expect_error("DoesNotExistException", ssm.update_maintenance_window, WindowId=wid, Duration=3)
    expect_error("InvalidResourceId", ssm.list_tags_for_resource, ResourceType="MaintenanceWindow", ResourceId=wid)
    # Deleting what is not there succeeds (the model lists no error for it).
    assert ssm.delete_maintenance_window(WindowId=wid)["WindowId"] == wid


def test_client_token_is_idempotent(ssm):
    token = unique_name("tok")
    name = unique_name("mw")
    a = window(ssm, Name=name, ClientToken=token)
    b = window(ssm, Name=name, ClientToken=token)
    assert a == b
    assert window(ssm, Name=name) != a
    t1 = ssm.register_target_with_maintenance_window(
        WindowId=a, ResourceType="INSTANCE", Targets=[{"Key": "tag:role", "Values": ["web"]}], ClientToken=token,
    )["WindowTargetId"]
    t2 = ssm.register_target_with_maintenance_window(
        WindowId=a, ResourceType="INSTANCE", Targets=[{"Key": "tag:role", "Values": ["web"]}], ClientToken=token,
    )["WindowTargetId"]
    assert t1 == t2
    assert len(ssm.describe_maintenance_window_targets(WindowId=a)["Targets"]) == 1


@pytest.mark.parametrize("kw,needle", [
    ({"Duration": 5, "Cutoff": 12}, "Cutoff was 12 but must be smaller than 5 (Duration - 1)"),
    ({"Duration": 2, "Cutoff": 2}, "Cutoff was 2 but must be smaller than 2"),
    ({"Schedule": "cron(0 2 * * * *)"}, ""),  # both day fields given
    ({"Schedule": "cron(0 2 ? * *)"}, ""),  # five fields
    ({"Schedule": "rate(1 minutes)"}, ""),
    ({"Schedule": "rate(5 hour)"}, ""),
    ({"Schedule": "rate(2 minutes)"}, ""),  # below the 5-minute floor
    ({"Schedule": "cron(0/1 * ? * * *)"}, ""),  # every minute
    ({"Schedule": "at(2027-02-30T10:00:00)"}, ""),
    ({"Schedule": "rate(1 day)", "ScheduleOffset": 2}, ""),
    ({"ScheduleTimezone": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
    ({"StartDate": "yesterday"}, "StartDate"),
])
def test_invalid_definitions(ssm, kw, needle):
    kw = dict(kw)
    kw.setdefault("Schedule", "cron(0 2 ? * * *)")
    err = expect_error("ValidationException", ssm.create_maintenance_window, Name=unique_name("mw"),
                       Duration=kw.pop("Duration", 2), Cutoff=kw.pop("Cutoff", 1), AllowUnassociatedTargets=False,
                       **kw)
    assert needle in err["Message"], err


def test_model_ranges_are_checked(server):
    raw = server.client(parameter_validation=False)  # boto3 itself refuses values out of range
    for kw in ({"Duration": 25}, {"Duration": 0}, {"Cutoff": -1}, {"ScheduleOffset": 7}, {"Name": "ab"}):
        args = {"Name": unique_name("mw"), "Schedule": "cron(0 2 ? * * *)", "Duration": 2, "Cutoff": 0,
                "AllowUnassociatedTargets": False, **kw}
        err = expect_error("ValidationException", raw.create_maintenance_window, **args)
        assert "validation error" in err["Message"], err


def test_describe_windows_filters_and_pages(server, new_account):
    ssm = new_account().client
    ids = [window(ssm, Name=f"alpha-{i:02d}") for i in range(12)] + [window(ssm, Name="beta-1")]
    ssm.update_maintenance_window(WindowId=ids[3], Enabled=False)
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        out = ssm.describe_maintenance_windows(MaxResults=10, Filters=[{"Key": "Name", "Values": ["alpha"]}], **kw)
        seen += out["WindowIdentities"]
        token = out.get("NextToken")
        if not token:
            break
    assert sorted(w["WindowId"] for w in seen) == sorted(ids[:12])
    assert all("NextExecutionTime" in w for w in seen if w["WindowId"] != ids[3])
    ident = next(w for w in seen if w["WindowId"] == ids[0])
    assert set(ident) >= {"WindowId", "Name", "Enabled", "Duration", "Cutoff", "Schedule"}
    off = ssm.describe_maintenance_windows(Filters=[{"Key": "Enabled", "Values": ["false"]}])["WindowIdentities"]
    assert [w["WindowId"] for w in off] == [ids[3]]
    expect_error("ValidationException", server.client(parameter_validation=False).describe_maintenance_windows,
                 MaxResults=5)
    expect_error("ValidationException", ssm.describe_maintenance_windows, NextToken="bogus")
    expect_error("ValidationException", ssm.describe_maintenance_windows, Filters=[{"Key": "Owner", "Values": ["x"]}])


def test_accounts_do_not_see_each_others_windows(ssm, second_account):
    wid = window(ssm)
    expect_error("DoesNotExistException", second_account.client.get_maintenance_window, WindowId=wid)
    expect_error("DoesNotExistException", second_account.client.register_target_with_maintenance_window,
                 WindowId=wid, ResourceType="INSTANCE", Targets=[{"Key": "InstanceIds", "Values": ["mi-0123456789abcdef0"]}])
    ids = [w["WindowId"] for w in second_account.client.describe_maintenance_windows()["WindowIdentities"]]
    assert wid not in ids


# --------------------------------------------------------------------------- schedules


SCHEDULE_TABLE = [
    # AWS's documented examples, in UTC from StartDate 2027-01-01 (a Friday).
    ("cron(0 2 ? * THU#3 *)", {}, ["2027-01-21T02:00Z", "2027-02-18T02:00Z", "2027-03-18T02:00Z"]),
    ("cron(0 2 L * ? *)", {}, ["2027-01-31T02:00Z", "2027-02-28T02:00Z", "2027-03-31T02:00Z"]),
    ("cron(15 10 ? * 6L *)", {}, ["2027-01-29T10:15Z", "2027-02-26T10:15Z", "2027-03-26T10:15Z"]),
    ("cron(15 10 ? * MON-FRI *)", {}, ["2027-01-01T10:15Z", "2027-01-04T10:15Z", "2027-01-05T10:15Z"]),
    ("cron(0 9 16W * ? *)", {}, ["2027-01-15T09:00Z", "2027-02-16T09:00Z", "2027-03-16T09:00Z"]),
    ("cron(0 9 LW * ? *)", {}, ["2027-01-29T09:00Z", "2027-02-26T09:00Z", "2027-03-31T09:00Z"]),
    ("cron(24 30 09 ? * * *)", {}, ["2027-01-01T09:30:24Z", "2027-01-02T09:30:24Z", "2027-01-03T09:30:24Z"]),
    ("cron(0 0/6 ? * * *)", {}, ["2027-01-01T06:00Z", "2027-01-01T12:00Z", "2027-01-01T18:00Z"]),
    ("cron(0 12 1 JAN-MAR/2 ? 2027)", {}, ["2027-01-01T12:00Z", "2027-03-01T12:00Z"]),
    # ScheduleOffset: the Thursday after the third Tuesday.
    ("cron(30 23 ? * TUE#3 *)", {"ScheduleOffset": 2}, ["2027-01-21T23:30Z", "2027-02-18T23:30Z", "2027-03-18T23:30Z"]),
    # Rate windows with a future StartDate run from it, written at its offset.
    ("rate(1 day)", {"StartDate": "2027-01-01T00:00:00-08:00"},
     ["2027-01-01T00:00:00-08:00", "2027-01-02T00:00:00-08:00", "2027-01-03T00:00:00-08:00"]),
    ("rate(180 minutes)", {}, ["2027-01-01T00:00:00Z", "2027-01-01T03:00:00Z", "2027-01-01T06:00:00Z"]),
    # EndDate bounds the series.
    ("cron(0 2 ? * * *)", {"EndDate": "2027-01-03T12:00:00Z"}, ["2027-01-01T02:00Z", "2027-01-02T02:00Z", "2027-01-03T02:00Z"]),
    # at() once, in the window's zone.
    ("at(2027-06-01T12:00:00)", {"ScheduleTimezone": "Asia/Kathmandu"}, ["2027-06-01T12:00+05:45"]),
    ("cron(0 9 ? * MON *)", {"ScheduleTimezone": "Asia/Kathmandu"}, ["2027-01-04T09:00+05:45", "2027-01-11T09:00+05:45"]),
    # Daylight saving: a time the clocks skip runs once at the first instant after the gap; a
    # time they repeat runs once, at its first occurrence.
    ("cron(30 2 ? * * *)", {"ScheduleTimezone": "America/Los_Angeles", "StartDate": "2027-03-13T00:00:00-08:00"},
     ["2027-03-13T02:30-08:00", "2027-03-14T03:00-07:00", "2027-03-15T02:30-07:00"]),
    ("cron(30 1 ? * * *)", {"ScheduleTimezone": "America/Los_Angeles", "StartDate": "2027-11-06T00:00:00-07:00"},
     ["2027-11-06T01:30-07:00", "2027-11-07T01:30-07:00", "2027-11-08T01:30-08:00"]),
    ("cron(30 2 ? * * *)", {"ScheduleTimezone": "Europe/Berlin", "StartDate": "2027-03-27T00:00:00+01:00"},
     ["2027-03-27T02:30+01:00", "2027-03-28T03:00+02:00", "2027-03-29T02:30+02:00"]),
    ("cron(30 2 ? * * *)", {"ScheduleTimezone": "Europe/Berlin", "StartDate": "2027-10-30T00:00:00+02:00"},
     ["2027-10-30T02:30+02:00", "2027-10-31T02:30+02:00", "2027-11-01T02:30+01:00"]),
    ("cron(15 2 ? * * *)", {"ScheduleTimezone": "Australia/Lord_Howe", "StartDate": "2027-10-02T00:00:00+10:30"},
     ["2027-10-02T02:15+10:30", "2027-10-03T02:30+11:00", "2027-10-04T02:15+11:00"]),
    ("cron(45 1 ? * * *)", {"ScheduleTimezone": "Australia/Lord_Howe", "StartDate": "2027-04-03T00:00:00+11:00"},
     ["2027-04-03T01:45+11:00", "2027-04-04T01:45+11:00", "2027-04-05T01:45+10:30"]),
]


@pytest.mark.parametrize("schedule,extra,expected", SCHEDULE_TABLE, ids=[f"{s} {e}" for s, e, _ in SCHEDULE_TABLE])
def test_schedule_table(ssm, schedule, extra, expected):
    extra = dict(extra)
    extra.setdefault("StartDate", START_2027)
    wid = window(ssm, schedule, **extra)
    assert ssm.get_maintenance_window(WindowId=wid)["NextExecutionTime"] == expected[0]
    assert upcoming(ssm, wid, n=len(expected) + 1)[:len(expected)] == expected
    # The strings are real instants: zoneinfo agrees on the offsets (the table's own check).
    for text in expected:
        datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_schedule_is_bounded_by_end_date_and_filters(ssm):
    wid = window(ssm, "cron(0 2 ? * * *)", StartDate=START_2027, EndDate="2027-01-03T12:00:00Z")
    assert upcoming(ssm, wid, n=10) == ["2027-01-01T02:00Z", "2027-01-02T02:00Z", "2027-01-03T02:00Z"]
    hourly = window(ssm, "cron(0 * ? * * *)", StartDate=START_2027)
    got = upcoming(ssm, hourly, n=10, Filters=[{"Key": "ScheduledAfter", "Values": ["2027-02-01T10:30:00Z"]},
                                               {"Key": "ScheduledBefore", "Values": ["2027-02-01T13:00:00Z"]}])
    assert got == ["2027-02-01T11:00Z", "2027-02-01T12:00Z"]
    # A year of hourly runs pages through without repeats or gaps.
    seen, token = [], None
    for _ in range(3):
        kw = {"NextToken": token} if token else {}
        out = ssm.describe_maintenance_window_schedule(WindowId=hourly, MaxResults=100, **kw)
        seen += [e["ExecutionTime"] for e in out["ScheduledWindowExecutions"]]
        token = out["NextToken"]
    assert len(seen) == 300 and len(set(seen)) == 300
    assert seen[0] == "2027-01-01T01:00Z" and seen[-1] == "2027-01-13T12:00Z"
    expect_error("DoesNotExistException", ssm.describe_maintenance_window_schedule, WindowId="mw-0123456789abcdef0")
    expect_error("ValidationException", ssm.describe_maintenance_window_schedule, WindowId=hourly,
                 Filters=[{"Key": "ScheduledAfter", "Values": ["soon"]}])


def test_past_at_and_end_date_have_no_next_run(ssm):
    wid = window(ssm, "at(2020-01-01T00:00:00)")
    assert "NextExecutionTime" not in ssm.get_maintenance_window(WindowId=wid)
    ended = window(ssm, "cron(0 2 ? * * *)", EndDate="2021-01-01T00:00:00Z")
    assert "NextExecutionTime" not in ssm.get_maintenance_window(WindowId=ended)


def test_rate_window_counts_from_creation(ssm):
    before = datetime.now(timezone.utc)
    wid = window(ssm, "rate(5 minutes)")
    nxt = ssm.get_maintenance_window(WindowId=wid)["NextExecutionTime"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", nxt), nxt
    at = datetime.fromisoformat(nxt.replace("Z", "+00:00"))
    assert timedelta(minutes=5) - timedelta(seconds=5) < at - before < timedelta(minutes=5, seconds=5)
    runs = upcoming(ssm, wid, n=3)
    assert runs[0] == nxt
    gaps = [datetime.fromisoformat(b.replace("Z", "+00:00")) - datetime.fromisoformat(a.replace("Z", "+00:00"))
            for a, b in zip(runs, runs[1:])]
    assert gaps == [timedelta(minutes=5)] * 2


def test_schedule_change_replans_next_run(ssm):
    wid = window(ssm, "cron(0 2 ? * * *)", StartDate=START_2027)
    ssm.update_maintenance_window(WindowId=wid, Schedule="cron(0 5 ? * * *)")
    assert ssm.get_maintenance_window(WindowId=wid)["NextExecutionTime"] == "2027-01-01T05:00Z"
    ssm.update_maintenance_window(WindowId=wid, ScheduleTimezone="Asia/Kathmandu")
    # 05:00 in Kathmandu on 1 January is before the StartDate (05:45 there): the next is the 2nd.
    assert ssm.get_maintenance_window(WindowId=wid)["NextExecutionTime"] == "2027-01-02T05:00+05:45"


# --------------------------------------------------------------------------- targets and tasks


NODE = "mi-0123456789abcdef0"


def test_targets_and_tasks(ssm):
    wid = window(ssm)
    tid = ssm.register_target_with_maintenance_window(
        WindowId=wid, ResourceType="INSTANCE", Targets=[{"Key": "InstanceIds", "Values": [NODE]}],
        OwnerInformation="owner-1", Name="web", Description="web nodes",
    )["WindowTargetId"]
    assert UUID.match(tid)
    targets = ssm.describe_maintenance_window_targets(WindowId=wid)["Targets"]
    assert targets == [{"WindowId": wid, "WindowTargetId": tid, "ResourceType": "INSTANCE",
                        "Targets": [{"Key": "InstanceIds", "Values": [NODE]}], "OwnerInformation": "owner-1",
                        "Name": "web", "Description": "web nodes"}]
    out = ssm.update_maintenance_window_target(WindowId=wid, WindowTargetId=tid, Name="web2")
    assert out["Name"] == "web2" and out["OwnerInformation"] == "owner-1"
    out = ssm.update_maintenance_window_target(WindowId=wid, WindowTargetId=tid, Replace=True,
                                               Targets=[{"Key": "tag:role", "Values": ["web"]}])
    assert "Name" not in out and "OwnerInformation" not in out

    task = ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript", Priority=1, MaxConcurrency="2",
        MaxErrors="1", Targets=[{"Key": "WindowTargetIds", "Values": [tid]}], Name="patch",
        TaskInvocationParameters={"RunCommand": {"Parameters": {"commands": ["echo {{WINDOW_ID}}"]},
                                                 "TimeoutSeconds": 60, "Comment": "c"}},
        CutoffBehavior="CANCEL_TASK",
    )["WindowTaskId"]
    got = ssm.get_maintenance_window_task(WindowId=wid, WindowTaskId=task)
    assert got["TaskType"] == "RUN_COMMAND" and got["Priority"] == 1 and got["CutoffBehavior"] == "CANCEL_TASK"
    assert got["TaskInvocationParameters"]["RunCommand"]["TimeoutSeconds"] == 60
    # A partial update keeps the rest; TaskInvocationParameters is replaced whole.
    ssm.update_maintenance_window_task(WindowId=wid, WindowTaskId=task, TaskInvocationParameters={
        "RunCommand": {"Parameters": {"commands": ["uptime"]}}})
    got = ssm.get_maintenance_window_task(WindowId=wid, WindowTaskId=task)
    assert got["Name"] == "patch" and got["MaxConcurrency"] == "2"
    assert got["TaskInvocationParameters"]["RunCommand"] == {"Parameters": {"commands": ["uptime"]}}
    listed = ssm.describe_maintenance_window_tasks(WindowId=wid, Filters=[{"Key": "TaskType", "Values": ["RUN_COMMAND"]}])
    assert [t["WindowTaskId"] for t in listed["Tasks"]] == [task]
    assert ssm.describe_maintenance_window_tasks(WindowId=wid, Filters=[{"Key": "Priority", "Values": ["7"]}])["Tasks"] == []

    # A target a task uses is refused with Safe, and removed without it.
    err = expect_error("TargetInUseException", ssm.deregister_target_from_maintenance_window, WindowId=wid,
                       WindowTargetId=tid, Safe=True)
    assert tid in err["Message"]
    ssm.deregister_target_from_maintenance_window(WindowId=wid, WindowTargetId=tid)
    assert ssm.describe_maintenance_window_targets(WindowId=wid)["Targets"] == []
    ssm.deregister_task_from_maintenance_window(WindowId=wid, WindowTaskId=task)
    expect_error("DoesNotExistException", ssm.get_maintenance_window_task, WindowId=wid, WindowTaskId=task)
    expect_error("DoesNotExistException", ssm.deregister_task_from_maintenance_window, WindowId=wid, WindowTaskId=task)
    expect_error("DoesNotExistException", ssm.update_maintenance_window_target, WindowId=wid, WindowTargetId=tid, Name="xyz")


def test_task_rules(ssm):
    wid = window(ssm)
    open_wid = window(ssm, AllowUnassociatedTargets=True)
    direct = [{"Key": "InstanceIds", "Values": [NODE]}]
    # Without AllowUnassociatedTargets, tasks must use the window's registered targets.
    err = expect_error("ValidationException", ssm.register_task_with_maintenance_window, WindowId=wid,
                       TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript", Targets=direct, MaxConcurrency="1",
                       MaxErrors="0")
    assert "unassociated" in err["Message"]
    ssm.register_task_with_maintenance_window(WindowId=open_wid, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript",
                                              Targets=direct, MaxConcurrency="1", MaxErrors="0")
    # Targetless tasks refuse MaxConcurrency / MaxErrors with AWS's words, and report "1".
    err = expect_error("ValidationException", ssm.register_task_with_maintenance_window, WindowId=wid,
                       TaskType="AUTOMATION", TaskArn="AWS-Sleep", MaxConcurrency="1")
    assert err["Message"] == "Maintenance window tasks without targets don't support MaxConcurrency values."
    err = expect_error("ValidationException", ssm.register_task_with_maintenance_window, WindowId=wid,
                       TaskType="AUTOMATION", TaskArn="AWS-Sleep", MaxErrors="1")
    assert err["Message"] == "Maintenance window tasks without targets don't support MaxErrors values."
    t = ssm.register_task_with_maintenance_window(WindowId=wid, TaskType="AUTOMATION", TaskArn="AWS-Sleep")["WindowTaskId"]
    got = ssm.get_maintenance_window_task(WindowId=wid, WindowTaskId=t)
    assert got["MaxConcurrency"] == "1" and got["MaxErrors"] == "1"
    expect_error("ValidationException", ssm.register_task_with_maintenance_window, WindowId=wid,
                 TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript")
    # Parameters of another task type are refused.
    expect_error("ValidationException", ssm.register_task_with_maintenance_window, WindowId=wid,
                 TaskType="AUTOMATION", TaskArn="AWS-Sleep",
                 TaskInvocationParameters={"RunCommand": {"Parameters": {"commands": ["x"]}}})
    # Resource groups are refused by name.
    err = expect_error("ValidationException", ssm.register_target_with_maintenance_window, WindowId=wid,
                       ResourceType="RESOURCE_GROUP", Targets=[{"Key": "resource-groups:Name", "Values": ["g"]}])
    assert "resource groups" in err["Message"]
    expect_error("DoesNotExistException", ssm.register_task_with_maintenance_window, WindowId="mw-0123456789abcdef0",
                 TaskType="AUTOMATION", TaskArn="AWS-Sleep")
    # Replace needs every Register-required field.
    err = expect_error("ValidationException", ssm.update_maintenance_window_task, WindowId=wid, WindowTaskId=t,
                       Replace=True)
    assert "Replace" in err["Message"]


def test_at_most_20_tasks(server, new_account):
    ssm = new_account().client
    wid = window(ssm)
    for _ in range(20):
        ssm.register_task_with_maintenance_window(WindowId=wid, TaskType="AUTOMATION", TaskArn="AWS-Sleep")
    expect_error("ResourceLimitExceededException", ssm.register_task_with_maintenance_window, WindowId=wid,
                 TaskType="AUTOMATION", TaskArn="AWS-Sleep")
    assert len(ssm.describe_maintenance_window_tasks(WindowId=wid, MaxResults=10)["Tasks"]) == 10


def test_windows_for_target(server, new_account):
    ssm = new_account().client
    a = window(ssm, "cron(0 2 ? * * *)", Name="node-window-a", StartDate=START_2027)
    b = window(ssm, "cron(0 3 ? * * *)", Name="node-window-b", StartDate=START_2027, AllowUnassociatedTargets=True)
    window(ssm, "cron(0 4 ? * * *)", Name="other-window")
    ssm.register_target_with_maintenance_window(WindowId=a, ResourceType="INSTANCE",
                                                Targets=[{"Key": "InstanceIds", "Values": [NODE]}])
    ssm.register_task_with_maintenance_window(WindowId=b, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript",
                                              Targets=[{"Key": "InstanceIds", "Values": [NODE]}],
                                              MaxConcurrency="1", MaxErrors="0")
    node = [{"Key": "InstanceIds", "Values": [NODE]}]
    found = ssm.describe_maintenance_windows_for_target(Targets=node, ResourceType="INSTANCE")["WindowIdentities"]
    assert sorted(w["WindowId"] for w in found) == sorted([a, b])
    assert ssm.describe_maintenance_windows_for_target(
        Targets=[{"Key": "InstanceIds", "Values": ["mi-00000000000000000"]}], ResourceType="INSTANCE",
    )["WindowIdentities"] == []
    # The node's windows' runs, merged in time order.
    runs = ssm.describe_maintenance_window_schedule(Targets=node, ResourceType="INSTANCE", MaxResults=4)
    assert [(e["WindowId"], e["ExecutionTime"]) for e in runs["ScheduledWindowExecutions"]] == [
        (a, "2027-01-01T02:00Z"), (b, "2027-01-01T03:00Z"), (a, "2027-01-02T02:00Z"), (b, "2027-01-02T03:00Z")]
    assert runs["ScheduledWindowExecutions"][0]["Name"] == "node-window-a"


def test_unknown_executions(ssm):
    missing = "00000000-0000-0000-0000-000000000000"
    expect_error("DoesNotExistException", ssm.get_maintenance_window_execution, WindowExecutionId=missing)
    expect_error("DoesNotExistException", ssm.cancel_maintenance_window_execution, WindowExecutionId=missing)
    expect_error("DoesNotExistException", ssm.describe_maintenance_window_execution_tasks, WindowExecutionId=missing)
    expect_error("DoesNotExistException", ssm.get_maintenance_window_execution_task, WindowExecutionId=missing,
                 TaskId=missing)
    # The model lists no DoesNotExistException for the history of a window: it is empty.
    assert ssm.describe_maintenance_window_executions(WindowId="mw-0123456789abcdef0")["WindowExecutions"] == []


# --------------------------------------------------------------------------- windows that run


def wait_for(fn, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s")
        time.sleep(interval)


def at_in(seconds: float) -> str:
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return "at(" + t.strftime("%Y-%m-%dT%H:%M:%S") + ")"


def test_window_fires_and_runs_its_tasks(server, new_account):
    acct = new_account()
    ssm = acct.client
    act = ssm.create_activation(IamRole="SSMServiceRole", RegistrationLimit=1)
    node = FakeNode.register(server.endpoint, REGION, act["ActivationId"], act["ActivationCode"], ping=True,
                             computer_name="mw-node.local")
    wid = window(ssm, at_in(3), Duration=1, Cutoff=0)
    tid = ssm.register_target_with_maintenance_window(
        WindowId=wid, ResourceType="INSTANCE", Targets=[{"Key": "InstanceIds", "Values": [node.instance_id]}],
        OwnerInformation="night-shift",
    )["WindowTargetId"]
    shell = ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript", Priority=1, MaxConcurrency="1",
        MaxErrors="0", Targets=[{"Key": "WindowTargetIds", "Values": [tid]}],
        TaskInvocationParameters={"RunCommand": {"Parameters": {"commands": ["echo {{WINDOW_EXECUTION_ID}}"]}}},
    )["WindowTaskId"]
    auto = ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="AUTOMATION", TaskArn="AWS-Sleep", Priority=2,
        TaskInvocationParameters={"Automation": {"Parameters": {"Duration": ["PT0S"]}}},
    )["WindowTaskId"]
    assert ssm.get_maintenance_window(WindowId=wid)["NextExecutionTime"]

    # The command reaches the node with the pseudo-parameter substituted.
    msg = wait_for(lambda: node.messages(timeout=20), timeout=30)[0]
    payload = __import__("json").loads(msg["Payload"])
    execs = ssm.describe_maintenance_window_executions(WindowId=wid)["WindowExecutions"]
    assert len(execs) == 1 and execs[0]["Status"] == "IN_PROGRESS"
    wex = execs[0]["WindowExecutionId"]
    commands = payload["Parameters"]["commands"]
    assert commands == [f"echo {wex}"], payload
    assert node.reply(msg["MessageId"], in_progress()).status == 200
    assert node.ack(msg["MessageId"]).status == 200
    assert node.reply(msg["MessageId"], final("Success", 0, wex + "\n")).status == 200

    done = wait_for(lambda: [e for e in ssm.describe_maintenance_window_executions(WindowId=wid)["WindowExecutions"]
                             if e["Status"] not in ("PENDING", "IN_PROGRESS")])
    assert done[0]["Status"] == "SUCCESS", done
    got = ssm.get_maintenance_window_execution(WindowExecutionId=wex)
    assert got["Status"] == "SUCCESS" and len(got["TaskIds"]) == 2
    tasks = ssm.describe_maintenance_window_execution_tasks(WindowExecutionId=wex)["WindowExecutionTaskIdentities"]
    by_task = {t["TaskArn"]: t for t in tasks}
    assert by_task["AWS-RunShellScript"]["Status"] == "SUCCESS" and by_task["AWS-Sleep"]["Status"] == "SUCCESS"
    # Priority 1 ended before priority 2 began.
    assert by_task["AWS-RunShellScript"]["EndTime"] <= by_task["AWS-Sleep"]["StartTime"]
    shell_run = by_task["AWS-RunShellScript"]["TaskExecutionId"]
    task = ssm.get_maintenance_window_execution_task(WindowExecutionId=wex, TaskId=shell_run)
    assert task["TaskArn"] == "AWS-RunShellScript" and task["Type"] == "RUN_COMMAND"
    assert task["MaxConcurrency"] == "1" and task["MaxErrors"] == "0"
    invs = ssm.describe_maintenance_window_execution_task_invocations(
        WindowExecutionId=wex, TaskId=shell_run)["WindowExecutionTaskInvocationIdentities"]
    assert len(invs) == 1
    inv = invs[0]
    assert inv["Status"] == "SUCCESS" and inv["OwnerInformation"] == "night-shift" and inv["WindowTargetId"] == tid
    command = ssm.list_commands(CommandId=inv["ExecutionId"])["Commands"][0]
    assert command["Status"] == "Success"
    one = ssm.get_maintenance_window_execution_task_invocation(WindowExecutionId=wex, TaskId=shell_run,
                                                               InvocationId=inv["InvocationId"])
    assert one["ExecutionId"] == inv["ExecutionId"] and one["TaskType"] == "RUN_COMMAND"
    auto_inv = ssm.describe_maintenance_window_execution_task_invocations(
        WindowExecutionId=wex, TaskId=by_task["AWS-Sleep"]["TaskExecutionId"],
    )["WindowExecutionTaskInvocationIdentities"][0]
    ex = ssm.get_automation_execution(AutomationExecutionId=auto_inv["ExecutionId"])["AutomationExecution"]
    assert ex["AutomationExecutionStatus"] == "Success" and ex["DocumentName"] == "AWS-Sleep"
    assert shell and auto
    # An at() window runs once: nothing is scheduled after it.
    assert "NextExecutionTime" not in ssm.get_maintenance_window(WindowId=wid)
    # Filters on the history.
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ssm.describe_maintenance_window_executions(
        WindowId=wid, Filters=[{"Key": "ExecutedAfter", "Values": [later]}])["WindowExecutions"] == []
    assert len(ssm.describe_maintenance_window_executions(
        WindowId=wid, Filters=[{"Key": "ExecutedBefore", "Values": [later]}])["WindowExecutions"]) == 1
    # Cancelling a finished execution changes nothing.
    assert ssm.cancel_maintenance_window_execution(WindowExecutionId=wex)["WindowExecutionId"] == wex
    assert ssm.get_maintenance_window_execution(WindowExecutionId=wex)["Status"] == "SUCCESS"


def test_cancel_a_running_window(server, new_account):
    acct = new_account()
    ssm = acct.client
    act = ssm.create_activation(IamRole="SSMServiceRole", RegistrationLimit=1)
    node = FakeNode.register(server.endpoint, REGION, act["ActivationId"], act["ActivationCode"], ping=True,
                             computer_name="mw-cancel.local")
    wid = window(ssm, at_in(3), Duration=1, Cutoff=0, AllowUnassociatedTargets=True)
    first = ssm.register_task_with_maintenance_window(
        WindowId=wid, TaskType="RUN_COMMAND", TaskArn="AWS-RunShellScript", Priority=1, MaxConcurrency="1",
        MaxErrors="0", Targets=[{"Key": "InstanceIds", "Values": [node.instance_id]}],
        TaskInvocationParameters={"RunCommand": {"Parameters": {"commands": ["sleep 60"]}}},
    )["WindowTaskId"]
    ssm.register_task_with_maintenance_window(WindowId=wid, TaskType="AUTOMATION", TaskArn="AWS-Sleep", Priority=5)
    msg = wait_for(lambda: node.messages(timeout=20), timeout=30)[0]
    wex = ssm.describe_maintenance_window_executions(WindowId=wid)["WindowExecutions"][0]["WindowExecutionId"]
    ssm.cancel_maintenance_window_execution(WindowExecutionId=wex)
    # The running task finishes; the one not started is cancelled.
    assert node.reply(msg["MessageId"], final("Success", 0, "done")).status == 200
    final_state = wait_for(lambda: (s := ssm.get_maintenance_window_execution(WindowExecutionId=wex))["Status"]
                           in ("CANCELLED", "SUCCESS", "FAILED") and s)
    assert final_state["Status"] == "CANCELLED", final_state
    tasks = ssm.describe_maintenance_window_execution_tasks(WindowExecutionId=wex)["WindowExecutionTaskIdentities"]
    by = {t["TaskArn"]: t["Status"] for t in tasks}
    assert by == {"AWS-RunShellScript": "SUCCESS", "AWS-Sleep": "CANCELLED"}, tasks
    assert first
