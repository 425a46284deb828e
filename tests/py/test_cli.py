"""The aws CLI against ssmd: aws ssm create/get/list/describe/delete-document and an error."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json

import yaml

from ssmd_helpers import ROOT_ACCOUNT, Account, command_doc, unique_name


def test_cli_document_lifecycle(aws_cli):
    name = unique_name("cli")
    content = command_doc("echo from the cli")
    path = aws_cli.tmp / f"{name}.json"
    path.write_text(content)

    created = aws_cli("create-document", "--name", name, "--content", f"file://{path}",
                      "--document-type", "Command").json["DocumentDescription"]
    assert created["Name"] == name
    assert created["Owner"] == ROOT_ACCOUNT
    assert created["Status"] == "Active"
    assert created["Hash"] == hashlib.sha256(content.encode()).hexdigest()
    assert isinstance(created["CreatedDate"], (int, float, str))

    # independent reads, side by side (each aws CLI start costs about a second)
    with cf.ThreadPoolExecutor(3) as pool:
        f_get = pool.submit(aws_cli, "get-document", "--name", name)
        f_list = pool.submit(aws_cli, "list-documents", "--filters", "Key=Owner,Values=Self")
        f_desc = pool.submit(aws_cli, "describe-document", "--name", name)

    got = f_get.result().json
    assert got["Content"] == content
    assert got["DocumentVersion"] == "1"

    listed = f_list.result().json
    mine = [d for d in listed["DocumentIdentifiers"] if d["Name"] == name]
    assert len(mine) == 1 and mine[0]["Owner"] == ROOT_ACCOUNT
    assert all(d["Owner"] == ROOT_ACCOUNT for d in listed["DocumentIdentifiers"])

    described = f_desc.result().json["Document"]
    assert described["Name"] == name
    assert described["Hash"] == created["Hash"]
    assert described["DocumentType"] == "Command"

    deleted = aws_cli("delete-document", "--name", name)
    assert deleted.returncode == 0

    gone = aws_cli("get-document", "--name", name, check=False)
    assert gone.returncode != 0
    assert "InvalidDocument" in gone.stderr


def test_cli_get_document_as_yaml(aws_cli, ssm):
    name = unique_name("cliyaml")
    content = command_doc("yaml please")
    ssm.create_document(Content=content, Name=name)
    out = aws_cli("get-document", "--name", name, "--document-format", "YAML").json
    assert out["DocumentFormat"] == "YAML"
    assert yaml.safe_load(out["Content"]) == json.loads(content)


def test_cli_list_documents_paginates_everything(aws_cli, new_account):
    acct = new_account()
    created = sorted(unique_name("clipag") for _ in range(4))
    for n in created:
        acct.client.create_document(Content=command_doc(n), Name=n)
    # --page-size makes the CLI follow NextToken itself
    out = aws_cli("list-documents", "--filters", "Key=Owner,Values=Self", "--page-size", "1",
                  account=acct).json
    assert sorted(d["Name"] for d in out["DocumentIdentifiers"]) == created


def test_cli_errors_exit_nonzero_and_name_the_code(aws_cli):
    """Several failing commands, run side by side to keep the suite quick."""
    unknown = Account("000000000000", "AKIAUNKNOWNKEY000001", "nope", None)
    cases = {
        "ValidationException": (("create-document", "--name", "aws-reserved-" + unique_name("x"),
                                 "--content", command_doc()), None),
        "UnrecognizedClientException": (("list-documents",), unknown),
        "UnsupportedOperationException": (("get-inventory",), None),
    }
    with cf.ThreadPoolExecutor(len(cases)) as pool:
        futures = {code: pool.submit(aws_cli, *args, account=acct, check=False)
                   for code, (args, acct) in cases.items()}
    for code, fut in futures.items():
        res = fut.result()
        assert res.returncode != 0, (code, res.stdout)
        assert code in res.stderr, (code, res.stderr)
