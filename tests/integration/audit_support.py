"""What the audit tests share: a scripted history at known times, and a
tamperer that edits the event store's table behind the application's back."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from services.interviews.bootstrap import InterviewsContainer
from tests.conftest import FakeClock
from tests.jobs import owner_of, register_job

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-1", "freelancer-1"
OFFER = {"amount": "1500.00", "currency": "EUR", "rate_type": "fixed", "start_date": "2027-01-04"}


def post(api: TestClient, path: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
    """POSTs and expects success; an invitation registers its job for the inviting client first."""
    if path == "/interviews":
        register_job(api, body["job_id"], owner_of(headers))
    response = api.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def hiring(
    api: TestClient,
    clock: FakeClock,
    token: Token,
    job: str = "job-1",
    freelancer: str = FREELANCER,
) -> tuple[str, list[datetime]]:
    """Invited, accepted, started, offer, hired: one hour apart. Returns the id
    and the time of each event."""
    client, fl = token(CLIENT, "client"), token(freelancer, "freelancer")
    times = [clock.now]
    iid = post(api, "/interviews", client, {"job_id": job, "freelancer_id": freelancer})["id"]
    for path, headers, body in (
        ("accept", fl, None),
        ("start", client, {"scheduled_at": "2026-12-01T09:00:00Z"}),
        ("offer", client, OFFER),
        ("offer/accept", fl, None),
    ):
        times.append(clock.advance(hours=1))
        post(api, f"/interviews/{iid}/{path}", headers, body)
    return iid, times


def cancelled(api: TestClient, clock: FakeClock, token: Token, job: str) -> str:
    client, fl = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    iid = post(api, "/interviews", client, {"job_id": job, "freelancer_id": FREELANCER})["id"]
    clock.advance(minutes=5)
    post(api, f"/interviews/{iid}/accept", fl)
    clock.advance(minutes=5)
    post(api, f"/interviews/{iid}/cancel", fl, {"reason": "found another job"})
    return str(iid)


class Tamperer:
    """Edits the events table directly: what an intruder with database access does."""

    KEY = "originator_id = ? AND originator_version = ?"

    def __init__(self, container: InterviewsContainer) -> None:
        recorder = container.interviews().recorder
        self.table = recorder.events_table_name
        self.url = container.settings.database_url
        self.sqlite_path = container.settings.data_dir / "interviews.sqlite"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.url:
            import psycopg

            with psycopg.connect(self.url) as conn, conn.cursor() as cur:
                yield cur
        else:
            conn = sqlite3.connect(self.sqlite_path)
            try:
                yield conn.cursor()
                conn.commit()
            finally:
                conn.close()

    def _id(self, interview_id: str) -> Any:
        return UUID(interview_id) if self.url else UUID(interview_id).hex

    def _sql(self, statement: str) -> str:
        return statement.format(t=self.table).replace("?", "%s" if self.url else "?")

    def state(self, interview_id: str, version: int) -> bytes:
        with self._cursor() as cur:
            cur.execute(
                self._sql("SELECT state FROM {t} WHERE " + self.KEY),
                (self._id(interview_id), version),
            )
            return bytes(cur.fetchone()[0])

    def set_state(self, interview_id: str, version: int, state: bytes) -> None:
        with self._cursor() as cur:
            cur.execute(
                self._sql("UPDATE {t} SET state = ? WHERE " + self.KEY),
                (state, self._id(interview_id), version),
            )
            assert cur.rowcount == 1

    def replace(self, interview_id: str, version: int, old: bytes, new: bytes) -> None:
        state = self.state(interview_id, version)
        assert old in state, state
        self.set_state(interview_id, version, state.replace(old, new, 1))

    def delete(self, interview_id: str, version: int | None = None) -> None:
        with self._cursor() as cur:
            if version is None:
                cur.execute(
                    self._sql("DELETE FROM {t} WHERE originator_id = ?"), (self._id(interview_id),)
                )
            else:
                cur.execute(
                    self._sql("DELETE FROM {t} WHERE " + self.KEY),
                    (self._id(interview_id), version),
                )
            assert cur.rowcount >= 1

    def swap_versions(self, interview_id: str, a: int, b: int) -> None:
        """Three steps, as the primary key is checked row by row."""
        iid = self._id(interview_id)
        update = self._sql("UPDATE {t} SET originator_version = ? WHERE " + self.KEY)
        with self._cursor() as cur:
            cur.execute(update, (-1, iid, a))
            cur.execute(update, (a, iid, b))
            cur.execute(update, (b, iid, -1))
