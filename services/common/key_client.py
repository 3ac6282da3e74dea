"""The consumers' side of the key service: an HTTP client of the interviews service's
internal key API, and the health it reports to readiness.

A consumer run as its own process (``serve projections|notifications`` with Kafka)
asks ``KEY_SERVICE_URL`` for data keys and for the erasures it still has to carry
out, with a short-lived service JWT (role ``service``) minted from AUTH_SECRET.
Embedded (``interviewctl up``) the consumers use the interviews service's key store
in-process instead; either way they go through ``privacy.CachingKeys``.

A timeout, a refused connection or a 5xx answer is ``KeyServiceUnavailable``: the
caller retries (the consumer replays its batch, the erasure worker polls again) and
never mistakes it for an erased key. 410 is ``KeyErased``, 404 ``KeyNotFound``.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from .auth import mint_token
from .privacy import (
    ErasureTask,
    KeyErased,
    KeyNotFound,
    KeyService,
    KeyServiceUnavailable,
)
from .readiness import NotReadyError

# How long a minted service token lives; a fresh one is minted well before it ends.
TOKEN_TTL_SECONDS = 300


class KeyServiceConfigError(RuntimeError):
    """A consumer run as its own process has no key service to ask (KEY_SERVICE_URL)."""


def require_key_service_url(url: str | None, service: str) -> str:
    """The configured KEY_SERVICE_URL, or a clear refusal to start without it."""
    if not url or not url.strip():
        raise KeyServiceConfigError(
            f"{service} reads Kafka as its own process and needs KEY_SERVICE_URL (the base URL "
            "of the interviews service, e.g. http://interviews:8001) to open the sealed texts "
            "of the events; without it every event carrying a personal text would wait forever"
        )
    if not url.startswith(("http://", "https://")):
        raise KeyServiceConfigError(f"KEY_SERVICE_URL must be an http(s) URL, not {url!r}")
    return url.rstrip("/")


class KeyServiceHealth:
    """Whether the key service answered the last time it was asked (for ``/readyz``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.failing_since: float | None = None
        self.last_error: str | None = None

    def ok(self) -> None:
        with self._lock:
            self.failing_since = None
            self.last_error = None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.failing_since is None:
                self.failing_since = self._clock()
            self.last_error = f"{type(error).__name__}: {error}"

    def check_ready(self) -> None:
        """Raises ``NotReadyError`` while the key service does not answer."""
        with self._lock:
            since, error = self.failing_since, self.last_error
        if since is not None:
            raise NotReadyError(
                f"the key service does not answer ({error}) for "
                f"{self._clock() - since:.0f}s: events with personal texts wait, none is lost"
            )


class HttpKeyService:
    """``KeyService`` over the interviews service's ``/internal`` API (DESIGN, Privacy)."""

    def __init__(
        self,
        base_url: str,
        auth_secret: str,
        service: str,
        *,
        timeout_seconds: float = 2.0,
        health: KeyServiceHealth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.health = health or KeyServiceHealth()
        self._secret = auth_secret
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout_seconds, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def _bearer(self) -> str:
        now = time.time()
        with self._lock:
            if self._token is None or self._token[1] - now < TOKEN_TTL_SECONDS / 2:
                token = mint_token(self._secret, self.service, "service", TOKEN_TTL_SECONDS)
                self._token = (token, now + TOKEN_TTL_SECONDS)
            return self._token[0]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(
                method, path, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs
            )
        except httpx.HTTPError as error:  # timeouts, refused connections, broken streams
            unavailable = KeyServiceUnavailable(f"{method} {path}: {type(error).__name__}")
            self.health.failed(unavailable)
            raise unavailable from error
        if response.status_code >= 500:
            unavailable = KeyServiceUnavailable(f"{method} {path}: {response.status_code}")
            self.health.failed(unavailable)
            raise unavailable
        if response.status_code in (401, 403):
            # A wrong AUTH_SECRET: nothing retrying fixes, but never "erased" either.
            refused = KeyServiceUnavailable(
                f"{method} {path}: the key service refused this service's token "
                f"({response.status_code}); is AUTH_SECRET the interviews service's?"
            )
            self.health.failed(refused)
            raise refused
        self.health.ok()
        return response

    def data_key(self, key_id: str) -> bytes:
        response = self._request("GET", f"/internal/keys/{_segment(key_id)}")
        if response.status_code == 410:
            raise KeyErased(key_id)
        if response.status_code == 404:
            raise KeyNotFound(key_id)
        body = _json(response)
        try:
            key = base64.urlsafe_b64decode(str(body["key"]) + "=" * (-len(str(body["key"])) % 4))
        except (KeyError, binascii.Error, ValueError) as error:
            raise KeyServiceUnavailable(f"malformed key answer for {key_id}") from error
        if len(key) != 32:
            raise KeyServiceUnavailable(f"the key of {key_id} is not 32 bytes")
        return key

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        response = self._request("GET", "/internal/erasures", params={"service": service})
        items = _json(response).get("items")
        if not isinstance(items, list):
            raise KeyServiceUnavailable("malformed erasures answer: no items")
        try:
            return [
                ErasureTask(
                    id=str(item["id"]),
                    subject_id=str(item["subject_id"]),
                    key_ids=tuple(str(k) for k in item["key_ids"]),
                    keys_destroyed_at=datetime.fromisoformat(
                        str(item["keys_destroyed_at"]).replace("Z", "+00:00")
                    ),
                )
                for item in items
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise KeyServiceUnavailable(f"malformed erasures answer: {error}") from error

    def erasure_done(self, erasure_id: str, service: str) -> None:
        response = self._request(
            "POST", f"/internal/erasures/{_segment(erasure_id)}/done", json={"service": service}
        )
        if response.status_code == 404:
            raise KeyNotFound(f"erasure {erasure_id}")
        if response.status_code not in (200, 204):
            raise KeyServiceUnavailable(
                f"erasure {erasure_id} done: unexpected {response.status_code}"
            )


class UnconfiguredKeyService:
    """No key service here: sealed texts wait (the consumer retries), plain ones pass."""

    def __init__(self, why: str, health: KeyServiceHealth | None = None) -> None:
        self.why = why
        self.health = health or KeyServiceHealth()

    def _fail(self) -> KeyServiceUnavailable:
        error = KeyServiceUnavailable(self.why)
        self.health.failed(error)
        return error

    def data_key(self, key_id: str) -> bytes:
        raise self._fail()

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        raise self._fail()

    def erasure_done(self, erasure_id: str, service: str) -> None:
        raise self._fail()


def _segment(value: str) -> str:
    return httpx.URL("/" + value).raw_path.decode("ascii").lstrip("/").replace("/", "%2F")


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise KeyServiceUnavailable(f"unexpected status {response.status_code}")
    try:
        body = response.json()
    except ValueError as error:
        raise KeyServiceUnavailable("the key service answered no JSON") from error
    if not isinstance(body, dict):
        raise KeyServiceUnavailable("the key service answered no JSON object")
    return body


class MonitoredKeys:
    """A key service whose every answer tells ``health`` whether it is reachable."""

    def __init__(self, inner: KeyService, health: KeyServiceHealth) -> None:
        self.inner = inner
        self.health = health

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            result = fn()
        except KeyServiceUnavailable as error:
            self.health.failed(error)
            raise
        except (KeyErased, KeyNotFound):
            self.health.ok()
            raise
        self.health.ok()
        return result

    def data_key(self, key_id: str) -> bytes:
        return self._call(lambda: self.inner.data_key(key_id))

    def pending_erasures(self, service: str) -> list[ErasureTask]:
        return self._call(lambda: self.inner.pending_erasures(service))

    def erasure_done(self, erasure_id: str, service: str) -> None:
        self._call(lambda: self.inner.erasure_done(erasure_id, service))


def key_service_for(
    settings: Any, service: str, in_process: KeyService | None, health: KeyServiceHealth
) -> MonitoredKeys:
    """The key service a consumer container uses, reporting to ``health``: the one
    given (embedded: the interviews service's key store in this process), else
    ``KEY_SERVICE_URL``'s internal API, else none (sealed texts then wait and
    readiness says why)."""
    inner: KeyService
    if in_process is not None:
        inner = in_process
    elif getattr(settings, "key_service_url", None):
        inner = HttpKeyService(
            require_key_service_url(settings.key_service_url, service),
            settings.resolved_auth_secret(),
            service,
            health=health,
        )
    else:
        inner = UnconfiguredKeyService(
            f"{service} has no key service (set KEY_SERVICE_URL) to open sealed texts", health
        )
    return MonitoredKeys(inner, health)


def install_key_metrics(registry: Any, health: KeyServiceHealth) -> None:
    """``key_service_up``: 0 while the key service does not answer this process."""
    from prometheus_client import Gauge

    up = Gauge(
        "key_service_up",
        "1 while the key service answers (sealed texts can be opened), else 0",
        registry=registry,
    )
    up.set_function(lambda: 0.0 if health.failing_since is not None else 1.0)
