"""Jobs for tests: an invitation needs its job to exist first (DESIGN, "Jobs").

Every test, the bench and the reliability harness register the jobs they invite
to through these helpers, as the marketplace's job service would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import jwt

from services.common.auth import mint_token
from services.interviews.application import InterviewsApplication
from services.interviews.domain import Actor, CommandContext

from .conftest import TEST_SECRET

SERVICE_ID = "job-service"


class Puts(Protocol):
    """A ``TestClient``, an ``httpx.Client`` or the ``httpx`` module itself."""

    def put(self, url: str, *, json: Any, headers: dict[str, str]) -> Any: ...

    def post(self, url: str, *, json: Any, headers: dict[str, str]) -> Any: ...


def service_headers(secret: str = TEST_SECRET) -> dict[str, str]:
    """An Authorization header of the marketplace's job service."""
    return {"Authorization": f"Bearer {mint_token(secret, SERVICE_ID, 'service')}"}


def owner_of(headers: dict[str, str]) -> str:
    """The user id (``sub``) of the bearer token in ``headers``."""
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def register_job(
    http: Puts,
    job_id: str,
    client_id: str,
    *,
    base_url: str = "",
    secret: str = TEST_SECRET,
    title: str | None = None,
) -> None:
    """Registers ``job_id`` for ``client_id`` with ``PUT /jobs/{job_id}`` (201 new,
    200 already theirs); anything else fails the test."""
    body: dict[str, Any] = {"client_id": client_id}
    if title is not None:
        body["title"] = title
    response = http.put(f"{base_url}/jobs/{job_id}", json=body, headers=service_headers(secret))
    assert response.status_code in (200, 201), response.text


def invite(
    http: Puts,
    headers: dict[str, str],
    freelancer_id: str = "freelancer-1",
    job_id: str = "job-1",
    *,
    register: bool = True,
    base_url: str = "",
    secret: str = TEST_SECRET,
    **body: Any,
) -> dict[str, Any]:
    """``POST /interviews`` as the client of ``headers`` (201 or the test fails);
    the job is registered for that client first unless ``register`` is False (a
    test that made the job itself). Returns the command's answer."""
    if register:
        register_job(http, job_id, owner_of(headers), base_url=base_url, secret=secret)
    response = http.post(
        f"{base_url}/interviews",
        json={"job_id": job_id, "freelancer_id": freelancer_id, **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def ensure_job(
    app: InterviewsApplication, job_id: str, client_id: str, at: datetime | None = None
) -> None:
    """The same on the application, for tests that call its use cases directly."""
    ctx = CommandContext(
        actor=Actor(SERVICE_ID, "service"),
        at=at or datetime.now(UTC),
        correlation_id="test-job",
        causation_id="test-job",
    )
    app.register_job(ctx, job_id, client_id)
