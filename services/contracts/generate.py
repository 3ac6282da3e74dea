"""Writes the published contract as files: JSON Schema per event type and AsyncAPI 3.

    python -m services.contracts.generate          # (re)write schemas/ and asyncapi.yaml
    python -m services.contracts.generate --check  # exit 1 if the committed files are stale

The files are generated from the pydantic models in :mod:`.envelope`, so the
models stay the single source of truth; a unit test fails when they drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import Field, create_model

from .envelope import (
    CONTENT_TYPE,
    DATA_MODELS,
    DLQ_TOPIC,
    ERASURES_TOPIC,
    EVENT_TYPES,
    SCHEMA_VERSIONS,
    TOPIC,
    EventEnvelope,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DESCRIPTIONS = {
    "interview.invited": "A client invited a freelancer to interview for a job.",
    "interview.accepted": "The freelancer accepted the invitation.",
    "interview.declined": "The freelancer declined the invitation (final).",
    "interview.started": "A party marked the interview as started, maybe with a date.",
    "interview.offer_extended": "The client extended an offer (terms in data).",
    "interview.offer_accepted": "The freelancer accepted the offer: hired (final).",
    "interview.offer_declined": "The freelancer declined the offer; a revised one may follow.",
    "interview.cancelled": "A party cancelled an open interview, with a reason (final).",
    "interview.expired": "An invitation or offer nobody answered expired (final).",
    "interview.rescheduled": "A party moved the scheduled interview (old and new time in data).",
    "interview.offer_withdrawn": "The client withdrew an unanswered offer; the interview "
    "returns to the state it was in before the offer.",
}

# Headers every message carries (DESIGN: type, schema_version, content-type, traceparent).
DLQ_HEADERS = {
    "error": "why the message was refused",
    "source_topic": "topic the message was read from",
    "source_partition": "partition it was read from",
    "source_offset": "offset it was read from",
    "group": "consumer group that refused it",
}


def schema_file_name(event_type: str, version: int | None = None) -> str:
    return f"{event_type}.v{version or SCHEMA_VERSIONS[event_type]}.json"


def message_name(event_type: str) -> str:
    head, _, tail = event_type.partition(".")
    return head + "".join(part.capitalize() for part in tail.split("_"))


def event_schema(event_type: str) -> dict[str, Any]:
    """The envelope of one event type, its ``data`` replaced by that type's model."""
    version = SCHEMA_VERSIONS[event_type]
    data_model = DATA_MODELS[event_type]
    model = create_model(
        message_name(event_type)[0].upper() + message_name(event_type)[1:] + "Event",
        __base__=EventEnvelope,
        __doc__=DESCRIPTIONS[event_type],
        # Literals built at run time from each type's name and version: their static
        # type is only a special form, so they are handed over as Any.
        type=(cast(Any, Literal[event_type]), Field(description="event type")),
        schema_version=(
            cast(Any, Literal[version]),
            Field(description="schema version of this type"),
        ),
        data=(data_model, Field(description="event-specific fields")),
    )
    schema: dict[str, Any] = model.model_json_schema(mode="serialization")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_file_name(event_type),
        **schema,
    }


def envelope_headers_schema(event_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "schema_version", "content-type"],
        "properties": {
            "type": {"type": "string", "const": event_type},
            "schema_version": {
                "type": "string",
                "const": str(SCHEMA_VERSIONS[event_type]),
                "description": "the schema version, as a decimal string",
            },
            "content-type": {"type": "string", "const": CONTENT_TYPE},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the command, where a trace exists",
            },
        },
    }


def asyncapi_document() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        name = message_name(event_type)
        messages[name] = {
            "name": event_type,
            "title": event_type,
            "summary": DESCRIPTIONS[event_type],
            "contentType": CONTENT_TYPE,
            "headers": envelope_headers_schema(event_type),
            "payload": {"$ref": f"./{SCHEMA_DIR}/{schema_file_name(event_type)}"},
            "correlationId": {"$ref": "#/components/correlationIds/commandCorrelation"},
            "bindings": {
                "kafka": {
                    "key": {"$ref": "#/components/schemas/InterviewKey"},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    messages["deadLetter"] = {
        "name": "dead-letter",
        "title": "A refused (poison) message",
        "summary": "The original bytes of a message a consumer could not decode or validate.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": sorted(DLQ_HEADERS),
            "properties": {k: {"type": "string", "description": v} for k, v in DLQ_HEADERS.items()},
        },
        "payload": {"description": "the original message value, unchanged"},
    }
    messages["subjectErased"] = {
        "name": "subject.erased",
        "title": "A person was erased",
        "summary": "An admin erased a person (crypto-shredding): their data keys are "
        "destroyed, so every free text they wrote, sealed in the interview events, can no "
        "longer be read. Services holding copies of their words redact them.",
        "contentType": CONTENT_TYPE,
        "payload": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "type", "subject_id", "occurred_at"],
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": "the erasure's id"},
                "type": {"const": "subject.erased"},
                "subject_id": {"type": "string", "description": "the erased person's user id"},
                "occurred_at": {"type": "string", "format": "date-time"},
            },
        },
        "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
    }
    event_refs = {
        message_name(t): {"$ref": f"#/channels/interviewEvents/messages/{message_name(t)}"}
        for t in EVENT_TYPES
    }

    def event_messages() -> list[dict[str, str]]:
        return [
            {"$ref": f"#/channels/interviewEvents/messages/{message_name(t)}"} for t in EVENT_TYPES
        ]

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Interview events",
            "version": "1.0.0",
            "description": (
                "Every event of the interview workflow, published by the relay from the "
                "event store's ordered notification log. Delivery is at least once: "
                "consumers deduplicate by `id`. Order is guaranteed per interview (the "
                "Kafka key), by `version`. `schema_version` is per event type; a "
                "consumer dead-letters a version newer than it knows."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:29092",
                "protocol": "kafka",
                "description": "scripts/services.sh (docker compose: kafka:9092)",
            }
        },
        "channels": {
            "interviewEvents": {
                "address": TOPIC,
                "title": "Interview events",
                "description": "Key: the interview id. Retention unlimited, so consumers "
                "can rebuild from the start.",
                "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in event_refs},
                "bindings": {
                    "kafka": {
                        "topic": TOPIC,
                        "partitions": 6,
                        "topicConfiguration": {"retention.ms": -1},
                        "bindingVersion": "0.5.0",
                    }
                },
            },
            "subjectErasures": {
                "address": ERASURES_TOPIC,
                "title": "Erasures",
                "description": "Key: the erased person's id. One message per erasure, "
                "published by the relay from the event store's log (at least once).",
                "messages": {"subjectErased": {"$ref": "#/components/messages/subjectErased"}},
                "bindings": {
                    "kafka": {
                        "topic": ERASURES_TOPIC,
                        "topicConfiguration": {"retention.ms": -1},
                        "bindingVersion": "0.5.0",
                    }
                },
            },
            "deadLetters": {
                "address": DLQ_TOPIC,
                "title": "Poison messages",
                "description": "Messages a consumer refused: undecodable, unknown type, "
                "unsupported schema_version or invalid fields, with the original bytes.",
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
                "bindings": {
                    "kafka": {
                        "topic": DLQ_TOPIC,
                        "topicConfiguration": {"retention.ms": -1},
                        "bindingVersion": "0.5.0",
                    }
                },
            },
        },
        "operations": {
            "publishInterviewEvents": {
                "action": "send",
                "title": "The relay publishes every recorded interview event",
                "channel": {"$ref": "#/channels/interviewEvents"},
                "messages": event_messages(),
            },
            "consumeInterviewEvents": {
                "action": "receive",
                "title": "Downstream services (groups projections, notifications) consume",
                "channel": {"$ref": "#/channels/interviewEvents"},
                "messages": event_messages(),
            },
            "announceErasures": {
                "action": "send",
                "title": "The relay announces every recorded erasure",
                "channel": {"$ref": "#/channels/subjectErasures"},
                "messages": [{"$ref": "#/channels/subjectErasures/messages/subjectErased"}],
            },
            "deadLetterPoison": {
                "action": "send",
                "title": "A consumer dead-letters a message it cannot accept",
                "channel": {"$ref": "#/channels/deadLetters"},
                "messages": [{"$ref": "#/channels/deadLetters/messages/deadLetter"}],
            },
        },
        "components": {
            "schemas": {
                "InterviewKey": {
                    "type": "string",
                    "format": "uuid",
                    "description": "the interview id",
                }
            },
            "correlationIds": {
                "commandCorrelation": {
                    "description": "the correlation id of the request that caused the event",
                    "location": "$message.payload#/correlation_id",
                }
            },
            "messages": messages,
        },
    }


def rendered_files() -> dict[str, str]:
    """Relative path -> exact file content."""
    files = {
        f"{SCHEMA_DIR}/{schema_file_name(t)}": json.dumps(event_schema(t), indent=2) + "\n"
        for t in EVENT_TYPES
    }
    header = "# Generated by `python -m services.contracts.generate`; do not edit by hand.\n"
    files[ASYNCAPI_FILE] = header + yaml.safe_dump(
        asyncapi_document(), sort_keys=False, width=100, allow_unicode=True
    )
    return files


def stale_files(root: Path = ROOT) -> list[str]:
    """Files that are missing or differ from what the models generate, plus strays."""
    expected = rendered_files()
    stale = [
        path
        for path, content in expected.items()
        if not (root / path).exists() or (root / path).read_text() != content
    ]
    schema_dir = root / SCHEMA_DIR
    if schema_dir.exists():
        for path in sorted(schema_dir.glob("*.json")):
            relative = f"{SCHEMA_DIR}/{path.name}"
            if relative not in expected:
                stale.append(relative)
    return stale


def write(root: Path = ROOT) -> list[str]:
    expected = rendered_files()
    (root / SCHEMA_DIR).mkdir(exist_ok=True)
    for stray in (root / SCHEMA_DIR).glob("*.json"):
        if f"{SCHEMA_DIR}/{stray.name}" not in expected:
            stray.unlink()
    for path, content in expected.items():
        (root / path).write_text(content)
    return sorted(expected)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        stale = stale_files()
        if stale:
            print("stale contract files (run `python -m services.contracts.generate`):")
            for path in stale:
                print(f"  {path}")
            return 1
        print("contract files are up to date")
        return 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
