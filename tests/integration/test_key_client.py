"""The consumers' key-service client against a real HTTP server that follows the
internal key API of the contract (tests/key_service_double.py, over InMemoryKeys)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.auth import mint_token
from services.common.key_client import (
    HttpKeyService,
    KeyServiceConfigError,
    KeyServiceHealth,
    require_key_service_url,
)
from services.common.privacy import (
    CachingKeys,
    InMemoryKeys,
    KeyErased,
    KeyNotFound,
    KeyServiceUnavailable,
    reveal,
    seal,
)
from services.common.readiness import NotReadyError
from tests.conftest import TEST_SECRET
from tests.key_service_double import KeyApiState, free_port, key_api, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def state() -> KeyApiState:
    return KeyApiState(InMemoryKeys(), TEST_SECRET)


@pytest.fixture
def url(state: KeyApiState) -> Iterator[str]:
    with serve(key_api(state)) as base:
        yield base


def client(url: str, secret: str = TEST_SECRET, **options: object) -> HttpKeyService:
    return HttpKeyService(url, secret, "projections", **options)  # type: ignore[arg-type]


def test_a_key_fetched_over_http_opens_the_text_it_sealed(state: KeyApiState, url: str) -> None:
    key_id, key = state.keys.key_for("f-1")
    sealed = seal(key, key_id, "I am booked until March.")
    data, erased = reveal("interview.declined", {"reason": sealed}, client(url))
    assert data["reason"] == "I am booked until March."
    assert erased == []


def test_an_erased_key_reads_erased_and_an_unknown_one_not_found(
    state: KeyApiState, url: str
) -> None:
    key_id, key = state.keys.key_for("f-1")
    sealed = seal(key, key_id, "my words")
    state.keys.erase("f-1")
    keys = client(url)
    with pytest.raises(KeyErased):
        keys.data_key(key_id)
    with pytest.raises(KeyNotFound):
        keys.data_key("no-such-key")
    data, erased = reveal("interview.declined", {"reason": sealed}, keys)
    assert data["reason"] is None and erased == ["reason"]


def test_a_key_service_that_is_down_is_unavailable_never_erased(
    state: KeyApiState, url: str
) -> None:
    key_id, _ = state.keys.key_for("f-1")
    health = KeyServiceHealth()
    keys = client(url, health=health)
    state.down = True
    with pytest.raises(KeyServiceUnavailable):
        keys.data_key(key_id)
    with pytest.raises(NotReadyError, match="key service does not answer"):
        health.check_ready()
    state.down = False
    assert len(keys.data_key(key_id)) == 32
    health.check_ready()  # answers again: ready


def test_no_server_and_a_slow_server_are_unavailable(state: KeyApiState, url: str) -> None:
    with pytest.raises(KeyServiceUnavailable):
        client(f"http://127.0.0.1:{free_port()}").data_key("k")
    state.delay_seconds = 1.0
    key_id, _ = state.keys.key_for("f-1")
    with pytest.raises(KeyServiceUnavailable):
        client(url, timeout_seconds=0.2).data_key(key_id)


def test_a_token_signed_with_another_secret_is_refused_and_never_read_as_erased(
    state: KeyApiState, url: str
) -> None:
    key_id, _ = state.keys.key_for("f-1")
    with pytest.raises(KeyServiceUnavailable, match="refused this service's token"):
        client(url, secret="another-secret-that-is-long-enough-0123").data_key(key_id)


def test_the_double_refuses_callers_that_are_not_services(state: KeyApiState, url: str) -> None:
    import httpx

    key_id, _ = state.keys.key_for("f-1")
    assert httpx.get(f"{url}/internal/keys/{key_id}").status_code == 401
    admin = mint_token(TEST_SECRET, "a-1", "admin")
    refused = httpx.get(
        f"{url}/internal/keys/{key_id}", headers={"Authorization": f"Bearer {admin}"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    service = mint_token(TEST_SECRET, "projections", "service")
    ok = httpx.get(f"{url}/internal/keys/{key_id}", headers={"Authorization": f"Bearer {service}"})
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"


def test_pending_erasures_and_done_reports_round_trip(state: KeyApiState, url: str) -> None:
    key_id, _ = state.keys.key_for("f-1")
    task = state.keys.erase("f-1")
    keys = client(url)
    pending = keys.pending_erasures("projections")
    assert [(t.id, t.subject_id, t.key_ids) for t in pending] == [(task.id, "f-1", (key_id,))]
    assert pending[0].keys_destroyed_at == task.keys_destroyed_at
    keys.erasure_done(task.id, "projections")
    keys.erasure_done(task.id, "projections")  # idempotent
    assert keys.pending_erasures("projections") == []
    assert [t.id for t in keys.pending_erasures("notifications")] == [task.id]
    with pytest.raises(KeyNotFound):
        keys.erasure_done("no-such-erasure", "projections")


def test_the_cache_asks_the_server_once_per_ttl(state: KeyApiState, url: str) -> None:
    key_id, key = state.keys.key_for("f-1")
    now = [0.0]
    cached = CachingKeys(client(url), ttl_seconds=5, clock=lambda: now[0])
    for _ in range(50):
        assert cached.data_key(key_id) == key
    assert state.requests.count(f"GET /internal/keys/{key_id}") == 1
    now[0] = 6.0
    state.keys.erase("f-1")
    with pytest.raises(KeyErased):
        cached.data_key(key_id)
    assert state.requests.count(f"GET /internal/keys/{key_id}") == 2


@pytest.mark.parametrize("url", [None, "", "  ", "interviews:8001"])
def test_a_consumer_without_a_usable_key_service_url_refuses_to_start(url: str | None) -> None:
    with pytest.raises(KeyServiceConfigError, match="KEY_SERVICE_URL"):
        require_key_service_url(url, "projections")
    assert require_key_service_url("http://interviews:8001/", "x") == "http://interviews:8001"
