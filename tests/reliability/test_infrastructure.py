"""The infrastructure goes away under load and comes back; no service is restarted.

- Kafka stops: commands keep succeeding (the event store is the source of
  truth); once the broker is back the relay catches up and the consumers go on,
  and nothing is lost.
- PostgreSQL stops: every service answers 503 with a JSON body that says so and
  ``/readyz`` fails (``/healthz`` still answers); once it is back, the very same
  processes serve again and every command acknowledged before, during and after
  is in the store, on the topic, in the views and in the inboxes.

These stop the shared local servers (scripts/services.sh), so they run after
every other test (``runs_last``) and always start them again.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.jobs import register_job
from tests.support.services import infrastructure
from tests.support.waiting import holds_within

from .checks import check_everything
from .harness import TALLY, HttpCommands, Platform, bearer

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.runs_last]


def assert_no_service_restarted(platform: Platform) -> None:
    for service in platform.services.values():
        assert service.starts == 1 and service.alive(), f"{service.name} was restarted or died"


def test_commands_keep_succeeding_while_kafka_is_down_and_nothing_is_lost(
    platform: Platform,
) -> None:
    api = platform.interviews_api()
    platform.relay()
    platform.projections_consumer()
    platform.notifications_consumer()
    views = platform.projections_api(consumer=False)
    load = HttpCommands(api.url, threads=4, seed=11)
    try:
        platform.start()
        traffic = load.in_background(900, 30.0)
        assert holds_within(lambda: len(load.acks) >= 150, 60)
        infrastructure("stop-kafka")
        TALLY.add(faults=1)
        down_at = time.monotonic()
        time.sleep(8)
        up_at = time.monotonic()
        during = load.acks_between(down_at, up_at)
        infrastructure("start-kafka")
        traffic.join(180)
        assert not traffic.is_alive() and not load.failures, load.failures[:5]

        TALLY.add(acknowledged=len(load.acks))
        found, store = check_everything(
            platform, load.acks, views_api=views.url, webhook_users=set()
        )
        server_errors = sum(n for status, n in load.answers.items() if status >= 500)
        server_errors += platform.server_errors()
        TALLY.add(server_errors=server_errors)
        print(f"kafka outage: {during} commands acknowledged while it was down; {found.facts}")
        assert during >= 100, "commands did not keep succeeding while Kafka was down"
        assert server_errors == 0
        found.assert_clean()
        assert_no_service_restarted(platform)
    finally:
        load.stop()
        infrastructure("start-kafka")


def test_without_postgresql_every_service_answers_503_and_recovers_by_itself(
    platform: Platform,
) -> None:
    api = platform.interviews_api()
    platform.relay()
    projections = platform.projections_api(consumer=True)
    notifications = platform.notifications_api(workers=True)
    load = HttpCommands(api.url, threads=4, seed=12)
    tag = uuid.uuid4().hex[:8]
    client, freelancer = (f"outage-client-{tag}", "client"), (f"outage-free-{tag}", "freelancer")
    probes: dict[str, tuple[str, str, dict[str, object] | None, dict[str, str]]] = {}
    try:
        platform.start()
        traffic = load.in_background(600, 25.0)
        assert holds_within(lambda: len(load.acks) >= 100, 60)
        for job in (f"job-{tag}", f"job2-{tag}"):
            register_job(httpx, job, client[0], base_url=api.url)
        known = httpx.post(
            f"{api.url}/interviews",
            json={"job_id": f"job-{tag}", "freelancer_id": freelancer[0]},
            headers=bearer(*client),
        ).json()["id"]
        probes = {
            "invite": ("POST", f"{api.url}/interviews",
                       {"job_id": f"job2-{tag}", "freelancer_id": freelancer[0]},
                       bearer(*client) | {"Idempotency-Key": f"probe-{tag}"}),
            "accept": ("POST", f"{api.url}/interviews/{known}/accept", None, bearer(*freelancer)),
            "read": ("GET", f"{api.url}/interviews/{known}", None, bearer(*client)),
            "views": ("GET", f"{projections.url}/views/stats", None, bearer(*client)),
            "inbox": ("GET", f"{notifications.url}/notifications", None, bearer(*freelancer)),
        }  # fmt: skip

        infrastructure("stop-pg")
        TALLY.add(faults=1)
        with httpx.Client(timeout=30) as http:
            # A request caught by the outage still waits out the event store's retries
            # (about 12 s); within a second the API knows, and answers at once.
            first = time.monotonic()
            answer = http.get(f"{api.url}/interviews/{known}", headers=bearer(*client))
            assert answer.status_code == 503 and time.monotonic() - first < 20, answer.text
            for name, (method, url, body, headers) in probes.items():
                started = time.monotonic()
                answer = http.request(method, url, json=body, headers=headers)
                took = time.monotonic() - started
                assert answer.status_code == 503, (name, answer.status_code, answer.text)
                assert took < 1.0, f"{name} took {took:.1f}s to answer 503"
                assert answer.headers["content-type"].startswith("application/json"), name
                problem = answer.json()
                assert problem["code"] == "unavailable" and "unavailable" in problem["detail"], (
                    name,
                    problem,
                )
                assert answer.headers.get("Retry-After"), name
            for service in (api, projections, notifications):
                ready = http.get(f"{service.url}/readyz")
                assert ready.status_code == 503 and ready.json()["code"] == "unavailable"
                assert http.get(f"{service.url}/healthz").status_code == 200
        # The load keeps knocking: its requests caught in flight come back 503 after
        # the store's retries, or time out after 15 s and are sent again (503 at once).
        # Keep the database down until it has seen that, however slow the machine.
        assert holds_within(lambda: load.answers[503] > 0, 60, 0.2), "the load never met the outage"
        infrastructure("start-pg")

        def serving() -> bool:
            with httpx.Client(timeout=10) as http:
                if not all(
                    http.get(f"{s.url}/readyz").status_code == 200
                    for s in (api, projections, notifications)
                ):
                    return False
                method, url, body, headers = probes["invite"]  # idempotent: safe to repeat
                return http.request(method, url, json=body, headers=headers).is_success

        assert holds_within(serving, 60, 0.5), "the services did not recover by themselves"
        traffic.join(180)
        assert not traffic.is_alive() and not load.failures, load.failures[:5]
        accepted = httpx.post(probes["accept"][1], headers=probes["accept"][3])
        assert accepted.status_code == 200, accepted.text

        TALLY.add(acknowledged=len(load.acks) + 3)  # + the probes' invitations, accept
        found, store = check_everything(
            platform, load.acks, views_api=projections.url, webhook_users=set()
        )
        unavailable = load.answers[503]
        server_errors = sum(n for s, n in load.answers.items() if s >= 500 and s != 503)
        server_errors += platform.server_errors()
        TALLY.add(server_errors=server_errors)
        print(f"postgres outage: {unavailable} answers 503 (retried), {found.facts}")
        assert unavailable > 0, "the load never met the outage"
        assert server_errors == 0
        found.assert_clean()
        assert_no_service_restarted(platform)
    finally:
        load.stop()
        infrastructure("start-pg")
