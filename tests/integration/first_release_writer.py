"""Run by ``test_upgrade_from_first_release`` with the FIRST release's code on its
path (``git archive 6a515ff services``), never imported by the tests: writes data
through that release's own platform (embedded, no Kafka), as a user of it would,
and prints the ids it made as JSON.

Settings come from the environment (DATA_DIR, DATABASE_URL, AUTH_SECRET).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from services.common.auth import mint_token  # the first release's
from services.common.db import create_engine
from services.interviews.relay import metadata as relay_metadata
from services.interviews.relay import relay_position
from services.platform import create_platform_app

SECRET = os.environ["AUTH_SECRET"]


def bearer(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, sub, role)}"}


CLIENT, ALICE, BOB = (
    bearer("c-1", "client"),
    bearer("f-1", "freelancer"),
    bearer("f-2", "freelancer"),
)


def ok(response: Any) -> dict[str, Any]:
    if response.status_code >= 300:
        sys.exit(f"{response.request.method} {response.request.url}: {response.status_code} "
                 f"{response.text}")  # fmt: skip
    return response.json()  # type: ignore[no-any-return]


def wait(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"first release: timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    with TestClient(create_platform_app()) as http:
        webhook = ok(
            http.post(
                "/webhooks",
                json={
                    "url": "https://hooks.example.com/in",
                    "secret": "a-secret-of-sixteen-chars",
                    "event_types": ["interview.accepted"],
                },
                headers=CLIENT,
            )
        )
        hired = ok(
            http.post(
                "/interviews",
                json={"job_id": "job-1", "freelancer_id": "f-1", "message": "Hello Alice"},
                headers=CLIENT,
            )
        )["id"]
        ok(http.post(f"/interviews/{hired}/accept", headers=ALICE))
        ok(http.post(f"/interviews/{hired}/start", json={}, headers=CLIENT))
        ok(
            http.post(
                f"/interviews/{hired}/offer",
                json={"amount": "1200.00", "currency": "EUR", "rate_type": "fixed"},
                headers=CLIENT,
            )
        )
        ok(http.post(f"/interviews/{hired}/offer/accept", headers=ALICE))
        pending = ok(
            http.post(
                "/interviews", json={"job_id": "job-1", "freelancer_id": "f-2"}, headers=CLIENT
            )
        )["id"]

        def views_caught_up() -> bool:
            items = ok(http.get("/views/interviews", headers=CLIENT))["items"]
            return {i["id"]: i["status"] for i in items} == {
                hired: "hired",
                pending: "invited",
            }

        wait(views_caught_up, "the views")
        wait(lambda: bool(ok(http.get("/notifications", headers=BOB))["items"]), "Bob's inbox")
        inbox = ok(http.get("/notifications", headers=BOB))["items"]
        record_relay_position()
        print(
            json.dumps(
                {
                    "hired": hired,
                    "pending": pending,
                    "webhook": webhook["id"],
                    "bob_inbox": [n["id"] for n in inbox],
                }
            ),
            flush=True,
        )
        # Everything above is committed. The first release could die of SIGSEGV while
        # stopping `up` on SQLite (it closed its event store under its embedded
        # consumer; later releases stop in the right order), often enough on a loaded
        # machine to fail three attempts in a row: its stop is not what the upgrade
        # test is about, so end here, as a process killed after its work would.
        os._exit(0)


def record_relay_position() -> None:
    """What the relay (it needs Kafka) would have recorded of how far it published."""
    data_dir = Path(os.environ["DATA_DIR"])
    engine = create_engine(os.environ.get("DATABASE_URL") or None, data_dir / "interviews.sqlite")
    relay_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            relay_position.insert().values(
                topic="interviews.events", position=7, updated_at=datetime.now(UTC)
            )
        )
    engine.dispose()


if __name__ == "__main__":
    main()
