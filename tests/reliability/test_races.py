"""Races over HTTP: 50 requests released at the same instant, spread over two
command API processes on one event store (so no in-process lock can help)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.jobs import register_job

from .harness import TALLY, Platform, bearer, fresh_databases

pytestmark = [pytest.mark.reliability]

RACERS = 50


@pytest.fixture(scope="module")
def apis(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("races")
    with fresh_databases() as databases, Platform(tmp, kafka_bootstrap, databases) as platform:
        first = platform.interviews_api("interviews-api-1")
        second = platform.interviews_api("interviews-api-2")
        platform.start()
        yield first.url, second.url
        errors = platform.server_errors()
        TALLY.add(server_errors=errors)
        assert errors == 0, platform.logs()


def race(
    apis: tuple[str, str], attempt: Callable[[int, httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``attempt(i, client)`` on ``RACERS`` threads, released together by a barrier; each
    thread has its connection to API ``i % 2`` open before the barrier."""
    gate = threading.Barrier(RACERS)

    def run(i: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            client.get(f"{apis[i % 2]}/healthz")
            gate.wait()
            return attempt(i, client)

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        responses = list(pool.map(run, range(RACERS)))
    statuses = Counter(r.status_code for r in responses)
    TALLY.add(server_errors=sum(n for s, n in statuses.items() if s >= 500))
    TALLY.add(acknowledged=sum(n for s, n in statuses.items() if 200 <= s < 300))
    return responses


def post(
    client: httpx.Client, url: str, who: tuple[str, str], body: Any = None, **headers: str
) -> httpx.Response:
    return client.post(url, json=body, headers=bearer(*who) | headers)


def history(base: str, interview_id: str) -> list[dict[str, Any]]:
    events = httpx.get(
        f"{base}/audit/interviews/{interview_id}/events",
        headers=bearer("auditor-races", "auditor"),
        timeout=10,
    )
    assert events.status_code == 200, events.text
    return events.json()  # type: ignore[no-any-return]


def invite(base: str, client: str, freelancer: str, job: str) -> str:
    register_job(httpx, job, client, base_url=base)
    answer = httpx.post(
        f"{base}/interviews",
        json={"job_id": job, "freelancer_id": freelancer},
        headers=bearer(client, "client"),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]  # type: ignore[no-any-return]


def test_fifty_identical_transitions_one_succeeds_the_rest_409_versions_contiguous(
    apis: tuple[str, str],
) -> None:
    tag = uuid.uuid4().hex[:8]
    client, freelancer = f"c-{tag}", f"f-{tag}"
    interview = invite(apis[0], client, freelancer, f"job-{tag}")

    responses = race(
        apis,
        lambda i, http: post(
            http, f"{apis[i % 2]}/interviews/{interview}/accept", (freelancer, "freelancer")
        ),
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: RACERS - 1}, statuses
    refused = next(r for r in responses if r.status_code == 409).json()
    assert refused["code"] and "accepted" in refused["detail"], refused
    events = history(apis[1], interview)
    assert [e["version"] for e in events] == [1, 2]
    assert [e["type"] for e in events] == ["interview.invited", "interview.accepted"]


def test_fifty_mixed_transitions_keep_the_stream_contiguous(apis: tuple[str, str]) -> None:
    """Accept, decline and cancel at once: one wins, the stream never forks."""
    tag = uuid.uuid4().hex[:8]
    client, freelancer = f"c-{tag}", f"f-{tag}"
    interview = invite(apis[1], client, freelancer, f"job-{tag}")
    base = "/interviews/" + interview

    def attempt(i: int, http: httpx.Client) -> httpx.Response:
        url = apis[i % 2] + base
        if i % 3 == 0:
            return post(http, url + "/accept", (freelancer, "freelancer"))
        if i % 3 == 1:
            return post(http, url + "/decline", (freelancer, "freelancer"), {"reason": "no"})
        return post(http, url + "/cancel", (client, "client"), {"reason": "filled"})

    responses = race(apis, attempt)
    statuses = Counter(r.status_code for r in responses)
    events = history(apis[0], interview)
    versions = [e["version"] for e in events]
    assert versions == list(range(1, len(versions) + 1))
    # An accept may be followed by one cancel (accepted interviews can be cancelled).
    assert statuses[200] == len(events) - 1 and statuses[200] in (1, 2), statuses
    assert statuses[409] == RACERS - statuses[200], statuses


def test_fifty_concurrent_invitations_of_one_freelancer_to_one_job_make_one_interview(
    apis: tuple[str, str],
) -> None:
    tag = uuid.uuid4().hex[:8]
    client, freelancer, job = f"c-{tag}", f"f-{tag}", f"job-{tag}"
    register_job(httpx, job, client, base_url=apis[0])

    responses = race(
        apis,
        lambda i, http: post(
            http,
            f"{apis[i % 2]}/interviews",
            (client, "client"),
            {"job_id": job, "freelancer_id": freelancer, "message": f"attempt {i}"},
        ),
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: RACERS - 1}, statuses
    refused = [r.json() for r in responses if r.status_code == 409]
    assert all(r["code"] == "duplicate_open_interview" for r in refused), refused[:3]
    log = httpx.get(
        f"{apis[0]}/audit/events",
        params={"limit": 1000},
        headers=bearer("auditor-races", "auditor"),
        timeout=10,
    ).json()["events"]
    invited = [
        e
        for e in log
        if e["type"] == "interview.invited" and e["data"].get("job_id", job) == job
        and e["actor"]["id"] == client
    ]  # fmt: skip
    assert len(invited) == 1, invited


def test_concurrent_retries_with_one_idempotency_key_record_one_event(
    apis: tuple[str, str],
) -> None:
    tag = uuid.uuid4().hex[:8]
    client, freelancer, job = f"c-{tag}", f"f-{tag}", f"job-{tag}"
    body = {"job_id": job, "freelancer_id": freelancer, "message": "one interview"}
    register_job(httpx, job, client, base_url=apis[0])

    invitations = race(
        apis,
        lambda i, http: post(
            http, f"{apis[i % 2]}/interviews", (client, "client"), body,
            **{"Idempotency-Key": f"invite-{tag}"},
        ),
    )  # fmt: skip

    assert {r.status_code for r in invitations} == {201}, Counter(
        r.status_code for r in invitations
    )
    answers = {(r.json()["id"], r.json()["version"], r.json()["position"]) for r in invitations}
    assert len(answers) == 1, answers
    interview = invitations[0].json()["id"]
    replayed = sum(r.headers.get("Idempotent-Replayed") == "true" for r in invitations)
    assert replayed == RACERS - 1

    accepts = race(
        apis,
        lambda i, http: post(
            http, f"{apis[i % 2]}/interviews/{interview}/accept", (freelancer, "freelancer"),
            **{"Idempotency-Key": f"accept-{tag}"},
        ),
    )  # fmt: skip

    assert {r.status_code for r in accepts} == {200}, Counter(r.status_code for r in accepts)
    assert len({(r.json()["version"], r.json()["position"]) for r in accepts}) == 1
    events = history(apis[0], interview)
    assert [(e["version"], e["type"]) for e in events] == [
        (1, "interview.invited"),
        (2, "interview.accepted"),
    ]
