"""Fixtures that run the real ``ssmd`` binary and talk to it with boto3 and the aws CLI.

Every test that asks for ``server`` (directly or through ``ssm``, ``account`` ...)
runs twice: once against an SQLite-backed server and once against a
PostgreSQL-backed one. One server per backend is started for the whole session;
tests keep out of each other's way by using unique document names (``unique_name``)
or a fresh account of their own (``new_account``).

Environment:
  SSMD_BIN            path of the binary (default: <repo>/target/debug/ssmd)
  SSMD_TEST_PG        PostgreSQL base URL (default: postgres://postgres@127.0.0.1:5432)
  SSMD_TEST_BACKENDS  comma-separated subset of "sqlite,postgres" (default: both)
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from ssmd_helpers import (
    READY_PREFIX,
    REGION,
    ROOT_ACCOUNT,
    ROOT_KEY,
    ROOT_SECRET,
    STARTUP_TIMEOUT,
    Account,
)

REPO = Path(__file__).resolve().parents[2]
SSMD_BIN = os.environ.get("SSMD_BIN") or str(REPO / "target" / "debug" / "ssmd")
PG_BASE = os.environ.get("SSMD_TEST_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
BACKENDS = [
    b.strip()
    for b in os.environ.get("SSMD_TEST_BACKENDS", "sqlite,postgres").split(",")
    if b.strip()
]

BOTO_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)


# --------------------------------------------------------------------------- server


class Server:
    def __init__(self, backend: str, workdir: Path):
        self.backend = backend
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir()
        self.log_path = workdir / "ssmd.log"
        self.db_name: str | None = None
        self.database_url: str | None = None
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self._log = None

    # ---- lifecycle

    def _storage_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            SSMD_ACCESS_KEY_ID=ROOT_KEY,
            SSMD_SECRET_ACCESS_KEY=ROOT_SECRET,
            SSMD_ACCOUNT_ID=ROOT_ACCOUNT,
        )
        # Settings that would change what the tests see must come from the command line.
        for var in ("SSMD_LISTEN", "SSMD_DATA_DIR", "SSMD_DATABASE_URL",
                    "SSMD_ACCEPT_ANY_CREDENTIALS", "SSMD_DEFAULT_ACCOUNT"):
            env.pop(var, None)
        return env

    def start(self) -> None:
        if not os.access(SSMD_BIN, os.X_OK):
            pytest.fail(f"ssmd binary not found at {SSMD_BIN} (build it or set SSMD_BIN)")
        if self.backend == "postgres":
            self._create_database()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [SSMD_BIN, "serve", "--listen", "127.0.0.1:0", *self._storage_args()],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=self.env(),
        )
        lines: queue.Queue = queue.Queue()

        def pump(stream):
            # Keep draining stdout for the life of the server so it never blocks on a full pipe.
            for raw in iter(stream.readline, b""):
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(f"ssmd ({self.backend}) did not report readiness within "
                            f"{STARTUP_TIMEOUT}s; stdout={seen!r}\n{self.log_tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=5)
                pytest.fail(f"ssmd ({self.backend}) exited with {code} before it was ready; "
                            f"stdout={seen!r}\n{self.log_tail()}")
            seen.append(line)
            if line.startswith(READY_PREFIX):
                self.endpoint = line[len(READY_PREFIX):].strip()
                break
        assert self.endpoint.startswith("http://127.0.0.1:"), self.endpoint

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.db_name:
            subprocess.run(
                ["psql", f"{PG_BASE}/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c",
                 f'DROP DATABASE IF EXISTS "{self.db_name}"'],
                capture_output=True, text=True, timeout=30,
            )
            self.db_name = None

    def _create_database(self) -> None:
        if shutil.which("psql") is None:
            pytest.fail("psql is needed for the PostgreSQL backend tests "
                        "(or set SSMD_TEST_BACKENDS=sqlite)")
        self.db_name = f"ssmd_pytest_{uuid.uuid4().hex[:12]}"
        res = subprocess.run(
            ["psql", f"{PG_BASE}/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c",
             f'CREATE DATABASE "{self.db_name}"'],
            capture_output=True, text=True, timeout=30,
        )
        if res.returncode != 0:
            name, self.db_name = self.db_name, None
            pytest.fail(f"could not create PostgreSQL database {name} at {PG_BASE}: "
                        f"{res.stderr.strip()} (or set SSMD_TEST_BACKENDS=sqlite)")
        self.database_url = f"{PG_BASE}/{self.db_name}"

    def log_tail(self, n: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "--- ssmd log (tail) ---\n" + "\n".join(text.splitlines()[-n:])

    # ---- clients and accounts

    def client(self, access_key_id: str = ROOT_KEY, secret_access_key: str = ROOT_SECRET,
               **config):
        """A boto3 SSM client for this server; ``config`` adds botocore Config options."""
        return boto3.session.Session().client(
            "ssm",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=BOTO_CONFIG.merge(Config(**config)) if config else BOTO_CONFIG,
        )

    def create_account(self, account: str | None = None, user: str | None = None) -> Account:
        """``ssmd keys ... create``: a new account with a key of its own, or (with ``account``)
        another key of an existing account; with ``user`` the key is that IAM user's
        (caller ARN ``arn:aws:iam::ACCOUNT:user/NAME``)."""
        extra = []
        if account:
            extra += ["--account", account]
        if user:
            extra += ["--user", user]
        res = subprocess.run(
            [SSMD_BIN, "keys", *self._storage_args(), "create", *extra],
            capture_output=True, text=True, timeout=30, env=self.env(),
        )
        assert res.returncode == 0, f"ssmd keys create failed: {res.stderr}"
        account_id = key = secret = None
        for line in res.stdout.splitlines():
            line = line.strip()
            if line.startswith("# account "):
                account_id = line.split()[-1]
            elif line.startswith("export AWS_ACCESS_KEY_ID="):
                key = line.split("=", 1)[1]
            elif line.startswith("export AWS_SECRET_ACCESS_KEY="):
                secret = line.split("=", 1)[1]
        assert account_id and key and secret, f"unexpected keys output: {res.stdout!r}"
        assert len(account_id) == 12 and account_id.isdigit(), account_id
        if account:
            assert account_id == account, (account_id, account)
        return Account(account_id, key, secret, self.client(key, secret))

    def create_user(self, account: str, name: str) -> Account:
        """``ssmd keys ... create --account ACCOUNT --user NAME``: a key of IAM user NAME."""
        return self.create_account(account=account, user=name)

    def delete_key(self, access_key_id: str) -> None:
        """``ssmd keys ... delete KEY``."""
        res = subprocess.run(
            [SSMD_BIN, "keys", *self._storage_args(), "delete", access_key_id],
            capture_output=True, text=True, timeout=30, env=self.env(),
        )
        assert res.returncode == 0, f"ssmd keys delete failed: {res.stderr}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, tmp_path_factory):
    srv = Server(request.param, tmp_path_factory.mktemp(f"ssmd-{request.param}"))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def ssm(server):
    """boto3 SSM client of the root account (111111111111)."""
    return server.client()


@pytest.fixture(scope="session")
def second_account(server) -> Account:
    return server.create_account()


@pytest.fixture
def new_account(server):
    """Factory for fresh, empty accounts (for tests that list 'everything I own')."""
    return server.create_account


@pytest.fixture(autouse=True)
def _report_server_log_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
        sys.stderr.write("\n" + srv.log_tail(20) + "\n")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# --------------------------------------------------------------------------- aws CLI


def aws_cli_path() -> str:
    """The aws CLI: on PATH, else next to this interpreter (a venv's bin/). Never skipped."""
    found = shutil.which("aws")
    if found:
        return found
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return str(beside)
    pytest.fail("the aws CLI was not found on PATH (pip install awscli); CLI tests need it")


@pytest.fixture
def aws_cli(server):
    """Run ``aws ssm ...`` against the server with the root account's key.

    Returns a function ``run(*args, account=None, check=True)`` -> CompletedProcess
    whose ``.json`` holds the parsed stdout when there is any.
    """
    exe = aws_cli_path()
    tmp = Path(tempfile.mkdtemp(prefix="ssmd-awscli-"))

    def run(*args, account: Account | None = None, check: bool = True):
        key = account.access_key_id if account else ROOT_KEY
        secret = account.secret_access_key if account else ROOT_SECRET
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(tmp / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp / "credentials"),
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        cmd = [exe, "ssm", *args, "--endpoint-url", server.endpoint, "--output", "json"]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        res.json = json.loads(res.stdout) if res.stdout.strip() else None
        if check:
            assert res.returncode == 0, f"{cmd} failed ({res.returncode}): {res.stderr}"
        return res

    run.tmp = tmp
    yield run
    shutil.rmtree(tmp, ignore_errors=True)
