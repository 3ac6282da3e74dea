"""The erasure worker of a consumer service (projections, notifications).

It polls the key service for the erasures this service has not carried out yet
(``KeyService.pending_erasures(service)``). For each, it waits until
``keys_destroyed_at + KEY_CACHE_TTL_SECONDS`` (by then no process of ours still
caches a destroyed key, so nothing can write the words again), drops the keys
from this process's cache, redacts every stored copy of text sealed with those
keys (the service's ``redact(key_ids)``) and reports the erasure done. Redacting
twice changes nothing, so a crash between redaction and the report only repeats
harmless work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .privacy import CachingKeys, ErasureTask, KeyService, KeyServiceUnavailable
from .readiness import NotReadyError
from .settings import CommonSettings

log = logging.getLogger(__name__)

Redactor = Callable[[Sequence[str]], int]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ErasureWorker:
    """Carries out pending erasures for one service; ``run_once`` for tests."""

    def __init__(
        self,
        service: str,
        keys: KeyService,
        cache: CachingKeys | None,
        redact: Redactor,
        *,
        ttl_seconds: float = 5.0,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = _utcnow,
        registry: Any = None,
    ) -> None:
        self.service = service
        self.keys = keys
        self.cache = cache
        self.redact = redact
        self.ttl = timedelta(seconds=ttl_seconds)
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.pending = 0
        self.done = 0
        self.failures = 0
        self.unreachable: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics = _Metrics(registry, self) if registry is not None else None

    @classmethod
    def for_service(
        cls,
        service: str,
        settings: CommonSettings,
        keys: KeyService,
        cache: CachingKeys,
        redact: Redactor,
        *,
        registry: Any = None,
    ) -> ErasureWorker:
        """The worker of a consumer service's container: it waits the key cache's
        TTL (``KEY_CACHE_TTL_SECONDS``) and polls every ``ERASURE_POLL_SECONDS``."""
        return cls(
            service,
            keys,
            cache,
            redact,
            ttl_seconds=settings.key_cache_ttl_seconds,
            poll_seconds=settings.erasure_poll_seconds,
            registry=registry,
        )

    def run_once(self) -> int:
        """One pass: carries out every due erasure; returns how many it reported done.

        ``KeyServiceUnavailable`` is remembered for readiness, never raised; a
        failing redaction leaves its erasure pending for the next pass."""
        try:
            tasks = self.keys.pending_erasures(self.service)
        except KeyServiceUnavailable as error:
            self._failed(f"the key service does not answer: {error}")
            return 0
        self.unreachable = None
        self.pending = len(tasks)
        finished = 0
        now = self.clock()
        for task in tasks:
            if now < task.keys_destroyed_at + self.ttl:
                continue  # another process may still cache the key: come back later
            try:
                self._carry_out(task)
            except KeyServiceUnavailable as error:
                self._failed(f"the key service does not answer: {error}")
                break
            except Exception:
                self.failures += 1
                if self._metrics is not None:
                    self._metrics.failures.inc()
                log.exception("%s: erasure %s failed; retrying later", self.service, task.id)
                continue
            finished += 1
        self.pending -= finished
        return finished

    def _carry_out(self, task: ErasureTask) -> None:
        if self.cache is not None:
            self.cache.forget(list(task.key_ids))
        redacted = self.redact(task.key_ids) if task.key_ids else 0
        self.keys.erasure_done(task.id, self.service)
        self.done += 1
        if self._metrics is not None:
            self._metrics.done.inc()
        log.info(
            "%s: erasure %s done (%d stored copies redacted, %d keys)",
            self.service,
            task.id,
            redacted,
            len(task.key_ids),
        )

    def _failed(self, why: str) -> None:
        if self.unreachable is None:
            log.warning("%s erasure worker: %s; retrying", self.service, why)
        self.unreachable = why
        self.failures += 1
        if self._metrics is not None:
            self._metrics.failures.inc()

    def check_ready(self) -> None:
        """Raises ``NotReadyError`` while the key service cannot be reached."""
        if self.unreachable is not None:
            raise NotReadyError(f"{self.service} erasure worker: {self.unreachable}")

    # ---------------------------------------------------------------- thread

    def start(self) -> ErasureWorker:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"{self.service}-erasures", daemon=True
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # never let the thread die: the next pass retries
                log.exception("%s erasure worker pass failed", self.service)
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


class _Metrics:
    def __init__(self, registry: Any, worker: ErasureWorker) -> None:
        from prometheus_client import Counter, Gauge

        pending = Gauge(
            "erasures_pending",
            "Erasures this service has still to carry out (as of the last poll)",
            registry=registry,
        )
        pending.set_function(lambda: float(worker.pending))
        self.done = Counter(
            "erasures_done", "Erasures this service carried out and reported", registry=registry
        )
        self.failures = Counter(
            "erasure_failures",
            "Failed erasure passes (key service unreachable, a redaction that failed)",
            registry=registry,
        )
        unreachable = Gauge(
            "erasure_key_service_unreachable",
            "1 while the key service does not answer the erasure worker",
            registry=registry,
        )
        unreachable.set_function(lambda: 1.0 if worker.unreachable else 0.0)
