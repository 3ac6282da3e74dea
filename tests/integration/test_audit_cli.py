"""``interviewctl audit``: history, verify (exit codes, broken links), and the
export -> offline replay round trip, which gives the states the live API gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.cli import app as cli
from services.interviews.audit_log import EVENT_CLASSES, TYPE_NAMES
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain.interview import EVENT_TYPES
from services.interviews.entrypoints.schemas import InterviewPublic
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock
from tests.integration.audit_support import (
    CLIENT,
    FREELANCER,
    OFFER,
    Tamperer,
    Token,
    cancelled,
    hiring,
    post,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NO_DATABASE_MODULES = ("psycopg", "psycopg_pool", "sqlite3", "kafka", "sqlalchemy", "fastapi")

# Runs `audit replay` and then reports which modules it had to import.
REPLAY_SCRIPT = """
import json, sys
from services.cli import app
try:
    app(["audit", "replay", "--json", sys.argv[1]])
except SystemExit as exit:
    code = exit.code
names = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
names += sorted(m for m in sys.modules if m.startswith(("eventsourcing.persistence",
    "eventsourcing.application", "services.interviews.application",
    "services.interviews.use_cases")))
print("RESULT " + json.dumps({"code": code, "modules": names}))
"""


@pytest.fixture
def run(interviews_settings: InterviewsSettings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs ``interviewctl`` in-process against the test's event store."""
    if interviews_settings.database_url:
        monkeypatch.setenv("DATABASE_URL", interviews_settings.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(interviews_settings.data_dir))
    monkeypatch.setenv("AUTH_SECRET", TEST_SECRET)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def assorted_interviews(
    api: TestClient, clock: FakeClock, token: Token, container: InterviewsContainer
) -> list[str]:
    """Hired, cancelled, declined, offer declined and re-offered, expired."""
    client, fl = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    hired, _ = hiring(api, clock, token, job="job-1")
    gone = cancelled(api, clock, token, job="job-2")
    declined = post(api, "/interviews", client, {"job_id": "job-3", "freelancer_id": FREELANCER})
    post(api, f"/interviews/{declined['id']}/decline", fl, {"reason": "not for me"})
    haggled = post(api, "/interviews", client, {"job_id": "job-4", "freelancer_id": FREELANCER})
    post(api, f"/interviews/{haggled['id']}/accept", fl)
    post(api, f"/interviews/{haggled['id']}/offer", client, OFFER)
    post(api, f"/interviews/{haggled['id']}/offer/decline", fl, {"reason": "too low"})
    post(api, f"/interviews/{haggled['id']}/offer", client, {**OFFER, "amount": "1800.00"})
    lapsed = post(api, "/interviews", client, {"job_id": "job-5", "freelancer_id": FREELANCER})
    clock.advance(days=8)
    container.interviews().expire(UUID(lapsed["id"]))
    return [hired, gone, declined["id"], haggled["id"], lapsed["id"]]


def test_export_then_offline_replay_gives_the_live_states(
    api: TestClient,
    clock: FakeClock,
    token: Token,
    interviews_container: InterviewsContainer,
    run: Any,
    tmp_path: Path,
) -> None:
    ids = assorted_interviews(api, clock, token, interviews_container)
    export = tmp_path / "log.jsonl"

    exported = run("audit", "export", "--out", str(export))
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == 17 and [x["position"] for x in lines] == sorted(
        x["position"] for x in lines
    )
    assert all(x["hash"] and x["log_hash"] for x in lines)

    # Offline: an unreachable database, and no database module imported.
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", REPLAY_SCRIPT, str(export), ",".join(NO_DATABASE_MODULES)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    out = done.stdout.splitlines()
    result = json.loads(out[-1].removeprefix("RESULT "))
    assert result == {"code": 0, "modules": []}, done.stderr
    states = {s["id"]: s for s in map(json.loads, out[:-1])}
    assert "replayed 17 events of 5 interviews: ok" in done.stderr

    auditor = token("a1", "auditor")
    assert sorted(states) == sorted(ids)
    opened = 0
    for iid in ids:
        live = InterviewPublic.model_validate(api.get(f"/interviews/{iid}", headers=auditor).json())
        offline = InterviewPublic.model_validate({**states[iid], "position": live.position})
        # Offline, sealed free text cannot be opened: it shows as erased.
        sealed = set(offline.erased_fields)
        opened += len(sealed)
        assert all(getattr(live, f) for f in sealed - {"offer.message"}), iid
        shown = live.model_copy(
            update={
                **{f: None for f in ("message", "closed_reason") if f in sealed},
                "erased_fields": offline.erased_fields,
                "offer": live.offer.model_copy(update={"message": None})
                if live.offer and "offer.message" in sealed
                else live.offer,
            }
        )
        assert offline == shown, iid
    assert opened > 0  # some interviews hold sealed text
    assert [states[i]["status"] for i in ids] == [
        "hired",
        "cancelled",
        "declined",
        "offer_extended",
        "expired",
    ]


def test_replay_fails_on_an_edited_or_shortened_export(
    api: TestClient, clock: FakeClock, token: Token, run: Any, tmp_path: Path
) -> None:
    hiring(api, clock, token, job="job-1")
    gone = cancelled(api, clock, token, job="job-2")
    hiring(api, clock, token, job="job-3")
    export = tmp_path / "log.jsonl"
    assert run("audit", "export", "--out", str(export)).exit_code == 0
    lines = export.read_text().splitlines()
    verified = run("audit", "replay", str(export))
    digest = verified.output.split("log digest ")[1].split()[0]
    assert verified.exit_code == 0 and "replayed 13 events of 3 interviews: ok" in verified.output
    assert run("audit", "replay", str(export), "--digest", digest).exit_code == 0
    assert run("audit", "replay", str(export), "--digest", "0" * 64).exit_code == 1

    edited = tmp_path / "edited.jsonl"
    edited.write_text(
        "\n".join(
            line.replace('"1500.00"', '"150.00"') if i == 3 else line
            for i, line in enumerate(lines)
        )
    )
    result = run("audit", "replay", str(edited))
    assert result.exit_code == 1
    assert "v4: hash does not match the event's content" in result.output

    shortened = tmp_path / "shortened.jsonl"
    shortened.write_text("\n".join(line for line in lines if gone not in line))
    result = run("audit", "replay", str(shortened))
    assert result.exit_code == 1
    assert "log_hash does not match" in result.output


def test_verify_reports_ok_then_the_broken_links_with_exit_code_1(
    api: TestClient,
    clock: FakeClock,
    token: Token,
    interviews_container: InterviewsContainer,
    run: Any,
) -> None:
    iid, _ = hiring(api, clock, token, job="job-1")
    gone = cancelled(api, clock, token, job="job-2")

    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "verified 8 events of 2 interviews: ok" in result.output
    assert run("audit", "verify", iid).exit_code == 0

    tamper = Tamperer(interviews_container)
    tamper.delete(iid, version=3)
    tamper.delete(gone)

    result = run("audit", "verify")
    assert result.exit_code == 1
    assert f"BROKEN: interview {iid} v3: v4 follows v2" in result.output
    assert "BROKEN: global log at position" in result.output
    one = run("audit", "verify", iid)
    assert one.exit_code == 1 and f"BROKEN: interview {iid} v3" in one.output
    assert run("audit", "verify", gone).exit_code == 2  # not found


def test_history_prints_who_did_what_and_when(
    api: TestClient, clock: FakeClock, token: Token, run: Any
) -> None:
    iid, times = hiring(api, clock, token)

    text = run("audit", "history", iid)
    as_json = run("audit", "history", iid, "--json")

    assert text.exit_code == 0, text.output
    rows = text.output.splitlines()
    assert len(rows) == 5
    assert "interview.invited" in rows[0] and f"client:{CLIENT}" in rows[0]
    assert times[0].isoformat() in rows[0]
    assert "interview.offer_accepted" in rows[4] and f"freelancer:{FREELANCER}" in rows[4]
    events = [json.loads(line) for line in as_json.output.splitlines()]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert run("audit", "history", "00000000-0000-4000-8000-000000000000").exit_code == 2


def test_the_audit_log_knows_every_interview_event_by_its_published_name() -> None:
    for cls, name in EVENT_TYPES.items():
        assert EVENT_CLASSES[cls.__name__] is cls
        assert TYPE_NAMES[cls.__name__] == name


def test_the_replay_summary_counts_every_problem_it_prints(
    api: TestClient, clock: FakeClock, token: Token, run: Any, tmp_path: Path
) -> None:
    hiring(api, clock, token, job="job-1")
    hiring(api, clock, token, job="job-2")
    export = tmp_path / "log.jsonl"
    assert run("audit", "export", "--out", str(export)).exit_code == 0
    lines = export.read_text().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    # One event's amount edited, two lines that are not events at all.
    damaged.write_text(
        "\n".join(
            [
                *(line.replace('"1500.00"', '"150.00"') for line in lines[:4]),
                "{not json",
                *lines[4:7],
                "[1, 2]",
                "[" * 20_000 + "]" * 20_000,  # past the JSON parser's depth
                *lines[7:],
            ]
        )
    )

    result = run("audit", "replay", str(damaged), "--digest", "0" * 64)

    assert result.exit_code == 1
    printed = [line for line in result.output.splitlines() if line.startswith("BROKEN: ")]
    assert len(printed) >= 4, result.output
    assert f": {len(printed)} problem(s); log digest" in result.output
    assert "line 5 cannot be read" in result.output and "line 9 cannot be read" in result.output
    assert "line 10 cannot be read" in result.output
    assert "log digest is not the expected" in result.output


def test_an_empty_event_store_exports_nothing_and_says_so(
    api: TestClient, run: Any, tmp_path: Path
) -> None:
    out = tmp_path / "empty.jsonl"

    result = run("audit", "export", "--out", str(out))

    assert result.exit_code == 1
    assert "holds no events: nothing to export" in result.output
    assert not out.exists()
    assert list(tmp_path.glob("*.partial")) == [] and list(tmp_path.glob(".*.partial")) == []


def test_a_failed_export_keeps_the_earlier_file(
    api: TestClient, clock: FakeClock, token: Token, run: Any, tmp_path: Path
) -> None:
    out = tmp_path / "log.jsonl"
    out.write_text("an earlier export\n")

    result = run("audit", "export", "--out", str(out))

    assert result.exit_code == 1
    assert out.read_text() == "an earlier export\n"
