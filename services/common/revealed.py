"""An integration event with its sealed personal texts opened, at consume time.

Consumers (projections, notifications) open each event's sealed fields through the
key service once, as the event arrives, and keep beside ``data`` which key sealed
each field and whether it was erased, so every copy they store can carry its key
id (an erasure finds the copies to redact by it).
"""

from __future__ import annotations

import functools
from typing import Any

from ..contracts import DATA_MODELS, EventEnvelope
from .consumer import Batch
from .privacy import PERSONAL_FIELDS, CachingKeys, KeyService, is_sealed, reveal_value

# ``data[REVEALED]``: ``{field: {"key_id": ..., "erased": bool}}`` for each sealed field.
REVEALED = "_revealed"


def reveal_event(event: EventEnvelope, keys: CachingKeys | KeyService | None) -> EventEnvelope:
    """``event`` with its personal fields in clear (or None once erased) and, under
    ``data[REVEALED]``, each field's key id and whether it was erased.

    An event with nothing sealed is returned as it is. ``KeyServiceUnavailable``
    propagates: the batch is retried, never folded without its texts."""
    names = _sealed_names(event)
    if not names:
        return event
    if keys is None:
        raise RuntimeError(
            f"{event.type} {event.id} carries sealed text and no key service is wired here"
        )
    data = dict(event.data)
    revealed: dict[str, dict[str, Any]] = {}
    for name in names:
        key_id = str(data[name]["key_id"])
        data[name], erased = reveal_value(data[name], keys)
        revealed[name] = {"key_id": key_id, "erased": erased}
    data[REVEALED] = revealed
    return event.model_copy(update={"data": data})


def reveal_batch(batch: Batch, keys: CachingKeys | KeyService | None) -> list[EventEnvelope]:
    """``reveal_event`` of each event of ``batch``, in order. Only the events that carry
    sealed text go through ``Batch.map`` (its log context per event costs more than
    the check); the others are returned as they are, as ``reveal_event`` would."""
    events = list(batch.events)
    sealed = [i for i, event in enumerate(events) if _sealed_names(event)]
    if sealed:
        subset = Batch([events[i] for i in sealed], batch.traceparents)
        for i, event in zip(sealed, subset.map(lambda e: reveal_event(e, keys)), strict=True):
            events[i] = event
    return events


def _sealed_names(event: EventEnvelope) -> list[str]:
    return [n for n in PERSONAL_FIELDS.get(event.type, ()) if is_sealed(event.data.get(n))]


def revealed_info(event: EventEnvelope, name: str) -> tuple[str | None, bool]:
    """``(key_id, erased)`` of one personal field of a revealed event."""
    info = (event.data.get(REVEALED) or {}).get(name) or {}
    return info.get("key_id"), bool(info.get("erased"))


def key_id_of_event(event: EventEnvelope) -> str | None:
    """The key of the (single) sealed personal field of a revealed event, if any."""
    for info in (event.data.get(REVEALED) or {}).values():
        if info.get("key_id"):
            return str(info["key_id"])
    return None


def erased_of_event(event: EventEnvelope) -> list[str]:
    """The personal fields of a revealed event whose key was destroyed."""
    return [name for name, info in (event.data.get(REVEALED) or {}).items() if info.get("erased")]


def sealed_fields(event: EventEnvelope) -> list[str]:
    """The personal fields of a revealed event that arrived sealed."""
    return list(event.data.get(REVEALED) or {})


def typed_data(event: EventEnvelope) -> Any:
    """The event's typed ``data`` for code that reads its facts, never its texts
    (schedules, deadlines): the model ``decode_envelope`` validated when the event
    was read from its message, else a validation that leaves out the personal fields
    (opened, erased or sealed) and the ``REVEALED`` note, so whichever form the texts
    take, the facts read the same."""
    decoded = event.decoded_data()
    if decoded is not None:
        # What decoding validated, not validated again: the same facts, its texts
        # in the form the message carried (a revealed copy has none of it).
        return decoded
    texts = PERSONAL_FIELDS.get(event.type, ())
    data = event.data
    if texts or REVEALED in data:
        data = {k: v for k, v in data.items() if k != REVEALED and k not in texts}
        data |= _placeholders(event.type)
    return DATA_MODELS[event.type].model_validate(data)


@functools.cache
def _placeholders(event_type: str) -> dict[str, str]:
    """A stand-in for each personal text the event type requires (its facts validate
    without the text)."""
    model = DATA_MODELS[event_type]
    return {
        name: "-"
        for name in PERSONAL_FIELDS.get(event_type, ())
        if name in model.model_fields and model.model_fields[name].is_required()
    }
