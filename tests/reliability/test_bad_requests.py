"""Generated requests (Schemathesis) against each service's published OpenAPI document,
sent over HTTP to the running service with valid tokens of every role.

At least 500 requests per service, half valid by the schema and half not: no
answer is a 5xx, and every answer (status, content type, headers, body) is one
the document declares; a request the schema calls valid is not refused with
422, and one it calls invalid is not accepted. Some requests are aimed at
interviews, jobs and notifications that exist, so they reach past "not found".

The examples are generated from a fixed seed (the same requests in every run);
``RELIABILITY_SEED=<int>`` explores others.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.jobs import register_job
from tests.support.waiting import holds_within

from .checks import Findings, check_poison_accepted, check_topic
from .harness import (
    TALLY,
    Db,
    Platform,
    bearer,
    fresh_databases,
    read_topic,
    store_envelopes,
)

pytestmark = [pytest.mark.reliability, pytest.mark.kafka]

REQUESTS_EACH = 600
SEED = int(os.environ.get("RELIABILITY_SEED", "20261125"))


@dataclass
class Known:
    """Things that exist, and who may see them."""

    interviews: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # job -> its client
    notifications: list[str] = field(default_factory=list)
    users: list[tuple[str, str]] = field(default_factory=list)
    seeded_events: int = 0  # interview events the seed itself recorded


@dataclass
class Services:
    urls: dict[str, str]
    known: Known
    platform: Platform


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with (
        fresh_databases() as databases,
        Platform(tmp, kafka_bootstrap, databases, name="fuzz") as platform,
    ):
        # ``min_position`` far ahead answers view_behind after this bounded wait.
        platform.extra_env["MIN_POSITION_TIMEOUT_S"] = "0.05"
        urls = platform.start_everything()
        yield Services(urls, seed_data(urls), platform)
        errors = platform.server_errors()
        TALLY.add(server_errors=errors)
        assert errors == 0, platform.logs()


def seed_data(urls: dict[str, str]) -> Known:
    known = Known()
    for n in range(6):
        client, freelancer, job = f"fz-client-{n % 2}", f"fz-freelancer-{n}", f"fz-job-{n}"
        register_job(httpx, job, client, base_url=urls["interviews"])
        answer = httpx.post(
            urls["interviews"] + "/interviews",
            json={"job_id": job, "freelancer_id": freelancer, "message": "fuzz"},
            headers=bearer(client, "client"),
        )
        assert answer.status_code == 201, answer.text
        interview = answer.json()["id"]
        if n % 2:
            httpx.post(
                f"{urls['interviews']}/interviews/{interview}/accept",
                headers=bearer(freelancer, "freelancer"),
            ).raise_for_status()
        known.interviews.append(interview)
        known.jobs.append(job)
        known.owners[job] = client
        known.users += [(client, "client"), (freelancer, "freelancer")]
        known.seeded_events += 2 if n % 2 else 1  # invited (and accepted)
    known.users += [("fz-auditor", "auditor"), ("fz-admin", "admin"), ("fz-jobs", "service")]

    def notified() -> bool:
        for n in range(6):
            items = httpx.get(
                urls["notifications"] + "/notifications",
                headers=bearer(f"fz-freelancer-{n}", "freelancer"),
            ).json()["items"]
            known.notifications = list({*known.notifications, *(i["id"] for i in items)})
        return len(known.notifications) >= 6

    assert holds_within(notified, 60, 0.3), "the seeded interviews never reached the inbox"
    return known


# Refusals of schema-valid requests that no schema can foresee: they depend on the
# state (If-Match naming another version, an Idempotency-Key used before for
# another request) or on rules of the domain that JSON
# Schema cannot state (a deadline already past, a client inviting themselves, a
# cursor this API never issued, a time that does not exist, two query parameters
# that exclude each other, a time outside its window around the service's clock
# or one whose UTC form leaves the calendar, a time zone name the zone database
# does not know, a webhook URL whose host is or resolves to an internal address).
SEMANTIC_REFUSALS = (
    (412, "version_mismatch", ""),
    (422, "idempotency_key_reused", ""),
    (422, "invalid_command", ""),
    (422, "invalid_input", "expires_at must be in the future and at most"),
    (422, "invalid_input", "scheduled_at must be between"),
    (422, "invalid_input", "start_date must be between"),
    (422, "invalid_input", "body.expires_at: is out of range"),
    (422, "invalid_input", "body.scheduled_at: is out of range"),
    (422, "invalid_cursor", ""),
    (422, "invalid_input", "cursor: "),
    (422, "invalid_input", "at: "),
    (422, "invalid_input", "give either `at` or `version`, not both"),
    (422, "invalid_input", "body.time_zone: Value error, unknown time zone"),
    (422, "invalid_input", "tz: "),  # the dashboard's ?tz= names no IANA zone
    (422, "url_not_allowed", ""),
)


def tolerated(failure: BaseException, response: Any) -> bool:
    """A failure made only of semantic refusals of schema-valid requests."""
    from schemathesis.openapi.checks import RejectedPositiveData

    parts = failure.exceptions if isinstance(failure, BaseExceptionGroup) else (failure,)
    try:
        answer = response.json()
    except ValueError:
        return False
    semantic = any(
        response.status_code == status
        and answer.get("code") == code
        and str(answer.get("detail", "")).startswith(detail)
        for status, code, detail in SEMANTIC_REFUSALS
    )
    return semantic and all(isinstance(p, RejectedPositiveData) for p in parts)


def is_server_error(response: Any) -> bool:
    """A 5xx, except the documented ``view_behind`` answer of ``min_position``
    (the views had not applied a position that may not even exist yet)."""
    if response.status_code < 500:
        return False
    if response.status_code == 503:
        with contextlib.suppress(ValueError, AttributeError):
            return response.json().get("code") != "view_behind"  # type: ignore[no-any-return]
    return True


@pytest.mark.parametrize("service", ["interviews", "projections", "notifications"])
def test_generated_requests_get_no_server_error_and_answers_match_the_schema(
    services: Services, service: str
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.parameters import ParameterLocation

    base = services.urls[service]
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    known = services.known
    tokens = [bearer(sub, role) for sub, role in known.users]
    existing = {
        "interview_id": known.interviews,
        "job_id": known.jobs,
        "notification_id": known.notifications,
    }
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    server_errors: list[str] = []
    tolerated_refusals: Counter[int] = Counter()

    @seed(SEED)
    @settings(
        max_examples=REQUESTS_EACH,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def fuzz(data: Any) -> None:
        operation = data.draw(st.sampled_from(operations), label="operation")
        mode = data.draw(st.sampled_from(list(GenerationMode)), label="mode")
        case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
        owner: str | None = None
        if mode is GenerationMode.POSITIVE:  # (a negative case stays invalid as generated)
            for name in list(case.path_parameters or {}):
                if name in existing and data.draw(st.booleans(), label=f"existing {name}"):
                    case.path_parameters[name] = data.draw(st.sampled_from(existing[name]))
            body = case.body if isinstance(case.body, dict) else {}
            if "job_id" in body and data.draw(st.booleans(), label="existing job_id"):
                body["job_id"] = data.draw(st.sampled_from(known.jobs))  # jobs exist first
                owner = known.owners[body["job_id"]]
            if case.path == "/views/stream":
                case.query = {**(case.query or {}), "max_events": 1}  # else it lasts a second
        # A valid token, unless the case was generated to break the headers (the
        # Authorization header the documents require, say): then it is sent as is.
        components = case.meta.components if case.meta else {}
        broken = components.get(ParameterLocation.HEADER)
        if broken is not None and broken.mode is GenerationMode.NEGATIVE:
            headers: dict[str, str] = {}
        else:
            headers = data.draw(st.sampled_from(tokens), label="token")
            if owner is not None and data.draw(st.booleans(), label="as the job's client"):
                headers = bearer(owner, "client")
        response = case.call(base_url=base, headers=headers, timeout=30)
        sent[mode.value] += 1
        statuses[response.status_code] += 1
        if is_server_error(response):
            server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")
        try:
            # 5xx are judged above (view_behind is a documented 503).
            case.validate_response(response, headers=headers, excluded_checks=[not_a_server_error])
        except (Exception, BaseExceptionGroup) as failure:  # collected
            if tolerated(failure, response):
                tolerated_refusals[response.status_code] += 1
                return
            key = f"{operation.label} [{mode.value}] {type(failure).__name__}"
            failures.setdefault(key, str(failure)[:2000])

    fuzz()
    total = sum(sent.values())
    TALLY.add(bad_inputs=sent["negative"], server_errors=len(server_errors))
    print(
        f"{service}: {total} generated requests {dict(sent)}, answers {dict(statuses)}, "
        f"semantic refusals of schema-valid requests {dict(tolerated_refusals)}"
    )
    assert total >= 500
    assert not server_errors, server_errors[:20]
    assert not failures, f"{len(failures)} kinds of non-conforming answers:\n\n" + (
        "\n\n".join(f"{k}:\n{v}" for k, v in list(failures.items())[:12])
    )


def test_what_the_generated_commands_recorded_poisons_no_consumer(services: Services) -> None:
    """Every command the API accepted above flows through the relay into both
    consumers' databases: none is parked (a handler failed on it), none dead-lettered."""
    platform = services.platform
    store = store_envelopes(platform.interviews_db, platform.tmp / "data")
    seeded = services.known.seeded_events
    assert len(store) > seeded, "the generated requests recorded no events of their own"
    found = Findings()
    check_topic(platform, store, found)
    processed = 'SELECT count(*) FROM processed_events WHERE "group" = :g'
    for url, group in (
        (platform.views_db, platform.projections_group),
        (platform.notifications_db, platform.notifications_group),
    ):
        with Db(url) as db:
            holds_within(lambda db=db, g=group: db.scalar(processed, g=g) >= len(store), 60, 0.3)
            parked = db.rows('SELECT type, error FROM parked_events WHERE "group" = :g', g=group)
            found.lost[f"parked by {group}"] += len(parked)
            found.examples += [f"{group} parked {row.type}: {row.error[:300]}" for row in parked]
            applied = db.scalar(processed, g=group)
            found.lost[f"not applied by {group}"] += max(len(store) - applied, 0)
    dead = [m for m in read_topic(platform.bootstrap, f"{platform.topic}.dlq") if m]
    found.lost["dead-lettered"] += len(dead)
    check_poison_accepted(platform, store, None, found)
    found.record()
    found.assert_clean()
