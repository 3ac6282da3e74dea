"""``interviewctl`` fails like a tool: a user's mistake is one line on stderr
and a documented exit code (2 a usage or user error, 3 a dependency is down,
1 a problem found), never a traceback; a read-only command pointed at a
database that does not exist creates nothing (no file, no database, no table).

Most cases run the CLI's entry point in this process (``run``, what ``main``
exits with), with their own environment and captured output; a few run the
installed ``interviewctl`` as a subprocess, exactly as a user would.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import jwt
import pytest

from services.cli import app as cli_app
from services.common.cli_errors import run
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.settings import InterviewsSettings
from tests.conftest import (
    TEST_SECRET,
    drop_database,
    require_kafka,
    require_postgres,
)

pytestmark = pytest.mark.integration

USAGE, UNAVAILABLE, PROBLEM = 2, 3, 1
SOME_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
READ_ONLY = [
    ["audit", "history", SOME_ID],
    ["audit", "verify"],
    ["audit", "verify", SOME_ID],
    ["audit", "export", "--out", "{tmp}/out.jsonl"],
    ["dlq", "list", "--group", "projections"],
    ["dlq", "list", "--group", "notifications"],
    ["replay", "--source", "log"],
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def interviewctl(*args: str, env: dict[str, str]) -> Result:
    """``interviewctl ARGS`` in this process, in environment ``env``."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(cli_app, list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Result(code, out.getvalue(), err.getvalue())


def installed_interviewctl(*args: str, env: dict[str, str]) -> Result:
    script = Path(sys.executable).with_name("interviewctl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "services.cli"]
    done = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


def fails_cleanly(result: Result, code: int, *words: str) -> str:
    """Exit ``code``, no traceback, and one line on stderr naming ``words``."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No database configured: SQLite files under DATA_DIR, which does not exist."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "LOG_LEVEL", "AUTH_SECRET")
        and not k.endswith("_DATABASE_URL")
    }
    return {**base, "AUTH_SECRET": TEST_SECRET, "DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An existing (empty) SQLite event store; its DATA_DIR."""
    data = tmp_path / "store"
    container = InterviewsContainer(
        InterviewsSettings(database_url=None, data_dir=data, auth_secret=TEST_SECRET)
    )
    container.interviews()
    container.close()
    return data


def _args(args: list[str], tmp_path: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp_path)) for a in args]


# ---------------------------------------------------------------- read-only, nothing there


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_a_missing_sqlite_store_fails_and_creates_nothing(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    before = tree(tmp_path)

    result = interviewctl(*_args(args, tmp_path), env=env)

    fails_cleanly(result, USAGE, str(tmp_path / "data"), "does not exist")
    assert tree(tmp_path) == before


@pytest.fixture
def missing_database() -> Iterator[str]:
    """The URL of a PostgreSQL database that does not exist (checked afterwards)."""
    admin = require_postgres()
    name = f"t_missing_{uuid.uuid4().hex[:10]}"
    yield urlunparse(urlparse(admin)._replace(path="/" + name))
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if found:
        drop_database(admin, name)
    assert found is None, f"a read-only command created database {name}"


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_a_missing_postgres_database_fails_and_creates_nothing(
    args: list[str], env: dict[str, str], tmp_path: Path, missing_database: str
) -> None:
    before = tree(tmp_path)

    result = interviewctl(*_args(args, tmp_path), env={**env, "DATABASE_URL": missing_database})

    name = urlparse(missing_database).path.lstrip("/")
    fails_cleanly(result, USAGE, f"database '{name}' does not exist")
    assert tree(tmp_path) == before


def _tables(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("args", READ_ONLY[:3] + READ_ONLY[4:], ids=" ".join)
def test_a_read_only_command_on_an_empty_postgres_database_creates_no_table(
    args: list[str], env: dict[str, str], tmp_path: Path, postgres_url: str
) -> None:
    result = interviewctl(*_args(args, tmp_path), env={**env, "DATABASE_URL": postgres_url})

    fails_cleanly(result, USAGE, "no table")
    assert _tables(postgres_url) == []


# ---------------------------------------------------------------- databases down or malformed


@pytest.mark.parametrize(
    "args", [READ_ONLY[1], READ_ONLY[4], ["replay", "--source", "log"]], ids=" ".join
)
def test_a_database_that_is_down_is_exit_code_3_in_one_line(
    args: list[str], env: dict[str, str]
) -> None:
    down = "postgresql://nobody:secret@127.0.0.1:1/interviews"

    result = interviewctl(*args, env={**env, "DATABASE_URL": down})

    line = fails_cleanly(result, UNAVAILABLE, "127.0.0.1:1")
    assert "secret" not in line


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://user@host/db", "postgresql://host:port/db", "postgresql:///db"]
)
@pytest.mark.parametrize(
    "args",
    [["audit", "verify"], ["dlq", "list", "-g", "projections"], ["up"], ["serve", "interviews"]],
    ids=" ".join,
)
def test_a_malformed_database_url_is_a_usage_error(
    url: str, args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = interviewctl(*args, env={**env, "DATABASE_URL": url})

    fails_cleanly(result, USAGE, "URL")
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- paths and files


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("/no/such/dir/x.jsonl", ("/no/such/dir", "does not exist")),
        ("{tmp}", ("is a directory",)),
        ("/etc/hostname/x.jsonl", ("is not a folder",)),
        ("/proc/x.jsonl", ("cannot write",)),
    ],
)
def test_export_to_a_path_it_cannot_write_says_so(
    out: str, words: tuple[str, ...], env: dict[str, str], store: Path, tmp_path: Path
) -> None:
    out = out.replace("{tmp}", str(tmp_path))

    result = interviewctl("audit", "export", "--out", out, env={**env, "DATA_DIR": str(store)})

    fails_cleanly(result, USAGE, *words)
    assert not Path(out).is_file()


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (b"id,status\n1,hired\n", USAGE, ("is not an `audit export` file", "line 1")),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", USAGE, ("not UTF-8 text",)),
        (b'{"some": "json"}\n', USAGE, ("is not an `audit export` file",)),
        (b"[" * 20_000 + b"]" * 20_000 + b"\n", USAGE, ("is not an `audit export` file",)),
        (b"", PROBLEM, ("holds no events",)),
        (b"\n  \n", PROBLEM, ("holds no events",)),
    ],
    ids=["csv", "binary", "other-json", "too-deep", "empty", "blank"],
)
def test_replay_of_a_file_that_is_not_an_export_is_one_line(
    content: bytes, code: int, words: tuple[str, ...], env: dict[str, str], tmp_path: Path
) -> None:
    file = tmp_path / "given.jsonl"
    file.write_bytes(content)

    result = interviewctl("audit", "replay", str(file), env=env)

    fails_cleanly(result, code, *words)
    assert "replayed" not in result.stdout


@pytest.mark.parametrize("path", ["{tmp}/missing.jsonl", "{tmp}"], ids=["missing", "folder"])
def test_replay_of_a_missing_file_or_a_folder_is_a_usage_error(
    path: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = interviewctl("audit", "replay", path.replace("{tmp}", str(tmp_path)), env=env)

    fails_cleanly(result, USAGE, "FILE")


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["audit", "history", "not-a-uuid"], ("ID",)),
        (["--bogus"], ("--bogus",)),
        (["audit", "verify", "--nope"], ("--nope",)),
        (["replay", "--source", "nowhere"], ("--source",)),
        (["replay", "--batch", "0"], ("--batch",)),
        (["up", "--port", "70000"], ("--port",)),
        (["up", "--port", "eighty"], ("--port",)),
        (["dlq", "list", "--group", "nobody"], ("unknown consumer group",)),
        (["dlq", "list"], ("--group",)),
        (["dlq", "skip", "--group", "projections"], ("--event", "--interview")),
        (["serve", "nothing"], ("nothing",)),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_bad_argument_is_one_line_and_exit_code_2(
    args: list[str], words: tuple[str, ...], env: dict[str, str], tmp_path: Path
) -> None:
    result = interviewctl(*args, env=env)

    fails_cleanly(result, USAGE, *words)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--sub", "", "--role", "client"], ("--sub", "empty")),
        (["--sub", "   ", "--role", "client"], ("--sub", "blank")),
        (["--sub", "x" * 129, "--role", "client"], ("--sub", "128")),
        (["--sub", "u1", "--role", "client", "--ttl", "0"], ("--ttl",)),
        (["--sub", "u1", "--role", "client", "--ttl", "-60"], ("--ttl",)),
        (["--sub", "u1", "--role", "superuser"], ("role", "service")),
        (["--role", "client"], ("--sub",)),
    ],
    ids=["empty-sub", "blank-sub", "long-sub", "ttl-0", "ttl-negative", "role", "no-sub"],
)
def test_token_refuses_claims_the_api_would_not_accept(
    args: list[str], words: tuple[str, ...], env: dict[str, str]
) -> None:
    result = interviewctl("token", *args, env=env)

    fails_cleanly(result, USAGE, *words)
    assert result.stdout == ""


def test_token_mints_a_service_token(env: dict[str, str]) -> None:
    result = interviewctl("token", "--sub", "job-service", "--role", "service", env=env)

    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "job-service" and claims["role"] == "service"


# ---------------------------------------------------------------- help


HELP_PAGES = [
    [],
    ["up"],
    ["serve", "interviews"],
    ["replay"],
    ["relay"],
    ["token"],
    ["audit", "export"],
    ["audit", "replay"],
    ["audit", "history"],
    ["dlq", "list"],
    ["dlq", "skip"],
    ["consumer", "prune"],
]


@pytest.mark.parametrize("args", HELP_PAGES, ids=lambda a: " ".join(a) or "interviewctl")
def test_help_shows_flags_without_type_noise(args: list[str], env: dict[str, str]) -> None:
    result = interviewctl(*args, "--help", env=env)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    for noise in ("TEXT", "INTEGER", "PATH", "<str>", "<int>", "<bool>", "<path>", "╭", "│"):
        assert noise not in text, f"{noise!r} in:\n{text}"
    assert "--help" in text


def test_help_names_what_each_flag_takes(env: dict[str, str]) -> None:
    token = interviewctl("token", "--help", env=env).stdout
    export = interviewctl("audit", "export", "--help", env=env).stdout
    up = interviewctl("up", "--help", env=env).stdout

    assert "--sub ID" in token and "--role ROLE" in token and "--ttl SECONDS" in token
    assert "--out FILE" in export and "--data-dir DIR" in export
    assert "--port PORT" in up and "--host HOST" in up


# ---------------------------------------------------------------- the installed command


@pytest.mark.parametrize(
    ("args", "database_url", "code", "words"),
    [
        (["audit", "verify"], None, USAGE, ("does not exist",)),
        (["audit", "export", "--out", "/no/such/dir/x.jsonl"], None, USAGE, ("/no/such/dir",)),
        (["dlq", "list", "-g", "notifications"], "postgresql://u:p@127.0.0.1:1/x", UNAVAILABLE, ()),
        (["token", "--sub", " ", "--role", "client"], None, USAGE, ("--sub",)),
    ],
    ids=["missing-store", "missing-folder", "database-down", "blank-sub"],
)
def test_the_installed_command_fails_in_one_line(
    args: list[str],
    database_url: str | None,
    code: int,
    words: tuple[str, ...],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    if database_url:
        env = {**env, "DATABASE_URL": database_url}

    result = installed_interviewctl(*args, env=env)

    fails_cleanly(result, code, *words)
    assert not (tmp_path / "data").exists()


def test_replay_from_a_topic_that_does_not_exist_creates_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    brokers = require_kafka()
    topic = f"missing-{uuid.uuid4().hex[:10]}"

    result = interviewctl(
        "replay",
        "--source",
        "kafka",
        env={**env, "KAFKA_BOOTSTRAP_SERVERS": brokers, "EVENTS_TOPIC": topic},
    )

    fails_cleanly(result, USAGE, f"no topic '{topic}'")
    assert not (tmp_path / "data").exists()


def test_replay_from_a_broker_that_is_down_is_exit_code_3(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = interviewctl(
        "replay", "--source", "kafka", env={**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    )

    fails_cleanly(result, UNAVAILABLE, "no Kafka broker answers at 127.0.0.1:1")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("service", [["up"], ["serve", "projections"]], ids=" ".join)
def test_a_port_in_use_is_one_line(service: list[str], env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = interviewctl(*service, "--port", str(port), env=env)

    fails_cleanly(result, USAGE, f"cannot listen on 127.0.0.1:{port}")
    assert not Path(env["DATA_DIR"]).exists()
