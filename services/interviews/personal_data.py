"""Personal text in the interview service: sealed on the way in, revealed on the way out.

Commands seal each free-text field with the actor's data key before the
aggregate records it (:class:`ActorSealer`, put on the command's context), so
the event store, its hash chain, snapshots and every export hold ciphertext.
Reads reveal through the key service: a destroyed key reads ``None`` and the
field is named in ``erased_fields``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common.loop_threads import WouldBlockError, blocking_allowed
from ..common.privacy import (
    PERSONAL_FIELDS,
    CachingKeys,
    KeyIssuer,
    KeyService,
    is_sealed,
    reveal_value,
    seal,
)
from .domain import CommandContext

Keys = CachingKeys | KeyService

# The fields of an audit event's ``data`` that hold personal text, by event class.
PERSONAL_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Invited": PERSONAL_FIELDS["interview.invited"],
    "Declined": PERSONAL_FIELDS["interview.declined"],
    "Rescheduled": PERSONAL_FIELDS["interview.rescheduled"],
    "OfferExtended": PERSONAL_FIELDS["interview.offer_extended"],
    "OfferDeclined": PERSONAL_FIELDS["interview.offer_declined"],
    "OfferWithdrawn": PERSONAL_FIELDS["interview.offer_withdrawn"],
    "Cancelled": PERSONAL_FIELDS["interview.cancelled"],
}
# Command payload fields that hold personal text (for idempotency fingerprints).
PERSONAL_PAYLOAD_FIELDS = ("message", "reason")


class ActorSealer:
    """Seals text with the current data key of one author (made once per command
    that carries text: a plain slotted class, cheaper than a frozen dataclass)."""

    __slots__ = ("keys", "subject_id")

    def __init__(self, keys: KeyIssuer, subject_id: str) -> None:
        self.keys = keys
        self.subject_id = subject_id

    def __call__(self, text: str) -> dict[str, str]:
        key_id, key = self._key()
        return seal(key, key_id, text)

    def digest(self, text: str) -> str:
        """A keyed digest of ``text``: equal for equal text while the key lives,
        unlinkable to it once the key is destroyed.

        ``hmac.new``, not the one-shot ``hmac.digest``: that one releases the GIL
        around OpenSSL's call, and with other threads waiting each release costs
        this thread a switch interval and the process context switches."""
        _, key = self._key()
        return hmac.new(key, text.encode("utf-8"), "sha256").hexdigest()

    def _key(self) -> tuple[str, bytes]:
        """The author's key; on the event loop only one the issuer holds
        (``cached_key_for``), else ``WouldBlockError``: the command goes to a thread."""
        if blocking_allowed():
            return self.keys.key_for(self.subject_id)
        cached = getattr(self.keys, "cached_key_for", None)
        hit = cached(self.subject_id) if cached is not None else None
        if hit is None:
            raise WouldBlockError
        return hit


def sealing(ctx: CommandContext, keys: KeyIssuer | None) -> CommandContext:
    """The context with a sealer keyed to its actor (unchanged without a key issuer)."""
    if keys is None or ctx.sealer is not None:
        return ctx
    return ctx.with_sealer(ActorSealer(keys, ctx.actor.id))


def private_payload(ctx: CommandContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A command's payload for its idempotency fingerprint, with personal text
    replaced by a keyed digest: the stored fingerprint never hashes the words alone."""
    sealer = ctx.sealer
    if not isinstance(sealer, ActorSealer):
        return payload
    out = dict(payload)
    for name in PERSONAL_PAYLOAD_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = {"hmac": sealer.digest(out[name])}
    return out


@dataclass(frozen=True)
class RevealedTexts:
    """An interview's free-text fields in clear, and those whose key is gone."""

    message: str | None
    offer_message: str | None
    closed_reason: str | None
    erased_fields: list[str]


def reveal_interview(interview: Any, keys: Keys) -> RevealedTexts:
    """The texts ``GET /interviews/{id}`` shows: ``message``, ``offer.message``
    and ``closed_reason`` (a cancel or decline reason)."""
    erased: list[str] = []

    def one(name: str, value: Any) -> str | None:
        text, gone = reveal_value(value, keys)
        if gone:
            erased.append(name)
        return text

    message = one("message", interview.message)
    offer = getattr(interview, "offer", None)
    offer_message = one("offer.message", offer.message) if offer is not None else None
    closed_reason = one("closed_reason", interview.closed_reason)
    return RevealedTexts(message, offer_message, closed_reason, erased)


def reveal_event_json(event: Mapping[str, Any], keys: Keys | None) -> dict[str, Any]:
    """An audit event's JSON form with its personal fields revealed (``keys``) or,
    offline (no keys), every sealed one shown as erased; ``erased_fields`` lists them."""
    out = dict(event)
    data = dict(out.get("data") or {})
    erased: list[str] = []
    for name in PERSONAL_EVENT_FIELDS.get(str(out.get("event")), ()):
        value = data.get(name)
        if keys is None:
            if is_sealed(value):
                data[name] = None
                erased.append(name)
            continue
        data[name], gone = reveal_value(value, keys)
        if gone:
            erased.append(name)
    out["data"] = data
    out["erased_fields"] = erased
    return out
