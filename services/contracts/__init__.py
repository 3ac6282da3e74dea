"""The published event contract: the only thing services share.

Services never import each other; they import this package to read and write
the integration events on the ``interviews.events`` topic.
"""

from .envelope import (
    DATA_MODELS,
    DLQ_TOPIC,
    EVENT_TYPES,
    SCHEMA_VERSIONS,
    TOPIC,
    ActorRef,
    EventEnvelope,
    UnsupportedEventError,
    decode_envelope,
)

__all__ = [
    "DATA_MODELS",
    "DLQ_TOPIC",
    "EVENT_TYPES",
    "SCHEMA_VERSIONS",
    "TOPIC",
    "ActorRef",
    "EventEnvelope",
    "UnsupportedEventError",
    "decode_envelope",
]
