"""Idempotency keys, stored as tiny aggregates in the same event store.

A command with an ``Idempotency-Key`` saves an ``IdempotentResponse`` in the
same transaction as its events. Its id is derived from the caller and the key,
so a concurrent retry conflicts on version 1 and then finds the first answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

IDEMPOTENCY_NAMESPACE = UUID("0b8f8a53-0f6b-4a5c-9d61-33c0a2f3f0d4")


class IdempotentResponse(Aggregate):
    """The first answer given to a command sent with an idempotency key."""

    class Recorded(Aggregate.Created):
        fingerprint: str
        status_code: int
        body: str

    def __init__(self, fingerprint: str, status_code: int, body: str) -> None:
        self.fingerprint = fingerprint
        self.status_code = status_code
        self.body = body

    @staticmethod
    def id_for(caller_id: str, key: str) -> UUID:
        return uuid5(IDEMPOTENCY_NAMESPACE, f"{caller_id}\x00{key}")

    @classmethod
    def record(
        cls, caller_id: str, key: str, fingerprint: str, status_code: int, body: dict[str, Any]
    ) -> IdempotentResponse:
        return cls._create(
            cls.Recorded,
            id=cls.id_for(caller_id, key),
            fingerprint=fingerprint,
            status_code=status_code,
            body=json.dumps(body, sort_keys=True, default=str),
        )

    def response(self) -> dict[str, Any]:
        return json.loads(self.body)


def fingerprint(action: str, target: str, payload: dict[str, Any]) -> str:
    blob = json.dumps([action, target, payload], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
