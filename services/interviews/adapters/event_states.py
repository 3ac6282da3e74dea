"""Stored events decoded to their classes and fields, without the event objects.

What ``eventsourcing``'s ``Mapper.to_domain_event`` does (decrypt, decompress,
decode the JSON and its transcoded values, upcast) up to the point where it would
build the object: the relay only reads the fields, for every event of the log.
The JSON is parsed by ``pydantic_core`` (several times faster than ``json``), and
the ``{"_type_": ..., "_data_": ...}`` values the transcoder wrote are revived
with the transcoder's own transcodings, innermost first as its object hook does,
so the fields are the ones the mapper gives the event.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent, Transcoding
from eventsourcing.utils import resolve_topic
from pydantic_core import from_json


class EventStates:
    """``decode(stored)``: the stored event's class and its fields, as the mapper has them."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        transcoder = mapper.transcoder
        if not isinstance(transcoder, JSONTranscoder):
            raise TypeError(f"a JSONTranscoder's states are decoded here, not {transcoder!r}")
        self._transcoder = transcoder
        self._names: dict[str, Transcoding] = transcoder.names
        self._cipher = mapper.cipher
        self._compressor = mapper.compressor
        self._classes: dict[str, type[Any]] = {}

    def decode(self, stored: StoredEvent) -> tuple[type[Any], dict[str, Any]]:
        """The class of ``stored`` and its fields but ``originator_id`` and
        ``originator_version`` (the stored event has them), upcast to the class's
        version."""
        cls = self._classes.get(stored.topic)
        if cls is None:
            cls = self._classes[stored.topic] = resolve_topic(stored.topic)
        state = stored.state
        if self._cipher:
            state = self._cipher.decrypt(state)
        if self._compressor:
            state = self._compressor.decompress(state)
        try:
            fields = self._revive(from_json(state, cache_strings=False))
        except (ValueError, KeyError):
            # JSON only ``json`` reads, or a transcoding it lacks: the transcoder's
            # own decoding, and its error.
            fields = self._transcoder.decode(state)
        class_version = getattr(cls, "class_version", 1)
        from_version = fields.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(fields)
            from_version += 1
        return cls, fields

    def _revive(self, value: Any) -> Any:
        """``value`` with every transcoded value decoded, innermost first."""
        if type(value) is dict:
            for key, item in value.items():
                kind = type(item)
                if kind is dict:
                    data = item.get("_data_", item)
                    if len(item) == 2 and "_type_" in item and type(data) not in (dict, list):
                        # A transcoded scalar (a timestamp): decoded at once.
                        value[key] = self._names[item["_type_"]].decode(data)
                    else:
                        value[key] = self._revive(item)
                elif kind is list:
                    value[key] = self._revive(item)
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                return self._names[value["_type_"]].decode(value["_data_"])
            return value
        if type(value) is list:
            return [self._revive(item) for item in value]
        return value
