"""Over HTTP, on SQLite and PostgreSQL: a command decided on cached state runs
on the event loop (no command thread), answers exactly what the same command
answers in a thread (``COMMANDS_ON_LOOP=false``), and an event store failing
under its awaited commit answers 503, records nothing, and the next command
succeeds once the store is back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient

from services.common.loop_threads import blocking_allowed
from services.interviews.bootstrap import InterviewsContainer
from tests.jobs import register_job

pytestmark = pytest.mark.integration

Token = Callable[[str, str], dict[str, str]]
CLIENT, FREELANCER = "client-loop", "freelancer-loop"


class CountingThreads:
    """Counts the calls the routes hand to the container's command threads."""

    def __init__(self, container: InterviewsContainer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        threads = container.command_threads
        run = threads.run

        async def counted(call: Callable[..., Any], *args: Any) -> Any:
            self.calls += 1
            return await run(call, *args)

        monkeypatch.setattr(threads, "run", counted)


def flow(api: TestClient, token: Token, job: str) -> list[tuple[int, Any, str | None]]:
    """Invite, accept, offer, refuse a stale If-Match, replay a key, accept the
    offer: each answer's status, body (ids and positions left out) and ETag."""
    client, freelancer = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    register_job(api, job, CLIENT)
    invited = api.post(
        "/interviews",
        json={"job_id": job, "freelancer_id": FREELANCER, "message": "Shall we talk?"},
        headers=client,
    )
    base = f"/interviews/{invited.json()['id']}"
    keyed = {**freelancer, "Idempotency-Key": f"accept-{job}"}
    answers = [
        invited,
        api.post(f"{base}/accept", headers=keyed),
        api.post(f"{base}/accept", headers=keyed),  # a replay
        api.post(f"{base}/accept", headers={**freelancer, "Idempotency-Key": "other"}),  # 409
        api.post(
            f"{base}/offer",
            json={"amount": "900.00", "currency": "EUR", "rate_type": "fixed"},
            headers={**client, "If-Match": "1"},
        ),  # 412
        api.post(
            f"{base}/offer",
            json={"amount": "900.00", "currency": "EUR", "rate_type": "fixed"},
            headers={**client, "If-Match": "2"},
        ),
        api.post(f"{base}/offer/accept", headers=freelancer),
        api.post(f"{base}/cancel", json={"reason": "late"}, headers=client),  # 409: hired
    ]
    shown = []
    for answer in answers:
        body = answer.json()
        if answer.status_code < 300:
            body = {k: v for k, v in body.items() if k not in ("id", "position")}
        replayed = answer.headers.get("idempotent-replayed")
        shown.append((answer.status_code, body, answer.headers.get("etag"), replayed))
    return shown


def test_commands_on_the_loop_answer_as_commands_in_threads_do(
    api: TestClient,
    token: Token,
    interviews_container: InterviewsContainer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = CountingThreads(interviews_container, monkeypatch)
    settings = interviews_container.settings
    assert settings.commands_on_loop
    on_loop = flow(api, token, "job-on-loop")
    used_on_loop = threads.calls
    monkeypatch.setattr(settings, "commands_on_loop", False)
    threads.calls = 0
    in_threads = flow(api, token, "job-in-threads")

    assert on_loop == in_threads
    assert [status for status, *_ in on_loop] == [201, 200, 200, 409, 412, 200, 200, 409]
    assert on_loop[2][3] == "true"  # the replay says so
    # In threads: every command and the job's registration. With commands on the
    # loop: the registration, the invitation (the client's data key is new: a
    # query), the replay (it reads the key's record) and the three refusals (a
    # refusal on cached state is decided again on fresh state); the accept, the
    # offer and its acceptance ran on the loop.
    assert threads.calls == 9
    assert used_on_loop == 6


def test_an_event_store_failure_under_an_awaited_commit_answers_503_and_recovers(
    api: TestClient,
    token: Token,
    interviews_container: InterviewsContainer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, freelancer = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    register_job(api, "job-store-down", CLIENT)
    invited = api.post(
        "/interviews",
        json={"job_id": "job-store-down", "freelancer_id": FREELANCER},
        headers=client,
    )
    iid = invited.json()["id"]
    app = interviews_container.interviews()
    position = app.max_position()
    threads = CountingThreads(interviews_container, monkeypatch)

    def unreachable(*_: Any) -> Any:
        raise OperationalError("connection to the event store lost")

    with monkeypatch.context() as patched:
        patched.setattr(app, "_record", unreachable)
        down = api.post(f"/interviews/{iid}/accept", headers=freelancer)

    assert down.status_code == 503, down.text
    assert down.json()["code"] == "unavailable" and down.headers["Retry-After"]
    assert threads.calls == 0  # it was the loop's awaited commit that failed
    assert app.max_position() == position
    assert api.get(f"/interviews/{iid}", headers=client).json()["status"] == "invited"
    back = api.post(f"/interviews/{iid}/accept", headers=freelancer)
    assert back.status_code == 200, back.text
    assert (back.json()["status"], back.json()["version"]) == ("accepted", 2)


def test_a_start_goes_to_a_thread_at_once_and_answers_as_in_a_thread(
    api: TestClient,
    token: Token,
    interviews_container: InterviewsContainer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``start`` reads its job fresh (a query): it is decided in a command thread
    only, never first on the loop up to that query, and answers as it does
    with every command in a thread."""
    client, freelancer = token(CLIENT, "client"), token(FREELANCER, "freelancer")
    app = interviews_container.interviews()
    job_reads: list[bool] = []  # for each read of a job: whether it could block
    get_job = app._get_job

    def watched(*args: Any, **kwargs: Any) -> Any:
        job_reads.append(blocking_allowed())
        return get_job(*args, **kwargs)

    def started(job: str) -> tuple[int, Any, int, list[bool]]:
        register_job(api, job, CLIENT)
        invited = api.post(
            "/interviews", json={"job_id": job, "freelancer_id": FREELANCER}, headers=client
        )
        base = f"/interviews/{invited.json()['id']}"
        assert api.post(f"{base}/accept", headers=freelancer).status_code == 200
        threads = CountingThreads(interviews_container, monkeypatch)
        job_reads.clear()
        with monkeypatch.context() as patched:
            patched.setattr(app, "_get_job", watched)
            answer = api.post(f"{base}/start", json={"duration_minutes": 45}, headers=client)
        body = {k: v for k, v in answer.json().items() if k not in ("id", "position")}
        return answer.status_code, body, threads.calls, list(job_reads)

    on_loop = started("job-start-on-loop")
    monkeypatch.setattr(interviews_container.settings, "commands_on_loop", False)
    in_threads = started("job-start-in-threads")

    assert on_loop[:2] == in_threads[:2] == (200, {"status": "in_progress", "version": 3})
    assert on_loop[2] == in_threads[2] == 1  # one hop to a thread
    assert on_loop[3] == [True]  # the job read once, in the thread: none on the loop
