"""Sealing free text before it is recorded (#17): the domain checks the words,
records them sealed with the author's key, and the hash chain covers the
ciphertext; the key-encryption key wraps data keys; the Erasure aggregate
records who erased whom and why, never the subject's words."""

from __future__ import annotations

import os
import stat
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

from services.common.privacy import InMemoryKeys, is_sealed, reveal_value
from services.contracts import decode_envelope
from services.interviews.adapters.key_encryption import (
    KeyEncryptionKeyError,
    encode_kek,
    kek_file,
    load_kek,
    parse_kek,
    unwrap,
    warn_if_file_kek,
    wrap,
)
from services.interviews.domain import (
    Actor,
    CommandContext,
    Erasure,
    InputOutOfBoundsError,
    Interview,
    Job,
    NotAllowedError,
    OfferTerms,
)
from services.interviews.domain.hashing import GENESIS
from services.interviews.idempotency import fingerprint
from services.interviews.personal_data import private_payload, sealing

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")
ADMIN = Actor("admin-1", "admin")
WORDS = "Let us talk about the compiler work next week"


def ctx(actor: Actor, keys: InMemoryKeys | None) -> CommandContext:
    return sealing(CommandContext(actor, NOW, "corr", "cause"), keys)


def invited(keys: InMemoryKeys | None, message: str | None = WORDS) -> Interview:
    return Interview.invite(
        ctx(CLIENT, keys),
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        message=message,
        expires_at=NOW + timedelta(days=3),
    )


def test_an_invitation_records_its_message_sealed_with_the_clients_key() -> None:
    keys = InMemoryKeys()
    interview = invited(keys)
    event = interview.collect_events()[0]
    assert isinstance(event, Interview.Invited)
    assert is_sealed(event.message) and WORDS not in str(event.__dict__)
    assert event.message["key_id"] == keys.subjects[CLIENT.id]  # type: ignore[index]
    assert reveal_value(event.message, keys) == (WORDS, False)


def test_a_sealing_context_keeps_who_acts_when_and_why() -> None:
    plain = CommandContext(CLIENT, NOW, "corr", "cause")
    sealed = sealing(plain, InMemoryKeys())
    assert plain.sealer is None and sealed.sealer is not None
    # Every other field is carried over: one added to CommandContext must be listed here.
    assert {f.name: getattr(sealed, f.name) for f in fields(sealed) if f.name != "sealer"} == {
        "actor": CLIENT,
        "at": NOW,
        "correlation_id": "corr",
        "causation_id": "cause",
    }
    assert sealing(sealed, InMemoryKeys()) is sealed  # sealed once, by its first issuer


def test_the_hash_chain_covers_the_ciphertext() -> None:
    keys = InMemoryKeys()
    event = invited(keys).collect_events()[0]
    assert isinstance(event, Interview.Event)
    assert event.verify_link(GENESIS) is None
    sealed = dict(event.message)  # type: ignore[arg-type]
    sealed["ciphertext"] = sealed["ciphertext"][::-1]
    object.__setattr__(event, "message", sealed)
    assert event.verify_link(GENESIS) == "hash does not match the event's content"


def test_after_an_erasure_the_history_still_verifies_but_the_words_are_gone() -> None:
    keys = InMemoryKeys()
    event = invited(keys).collect_events()[0]
    assert isinstance(event, Interview.Event)
    keys.erase(CLIENT.id)
    assert event.verify_link(GENESIS) is None
    assert reveal_value(event.message, keys) == (None, True)  # type: ignore[attr-defined]


def test_bounds_are_checked_on_the_words_before_sealing() -> None:
    keys = InMemoryKeys()
    with pytest.raises(InputOutOfBoundsError, match="message"):
        invited(keys, message="x" * 2001)
    with pytest.raises(InputOutOfBoundsError, match="blank"):
        invited(keys, message="   ")
    assert keys.keys == {}  # nothing was sealed, no key was made
    # 2000 characters are accepted though their ciphertext is much longer.
    assert is_sealed(invited(keys, message="y" * 2000).message)


def test_each_author_seals_with_their_own_key() -> None:
    keys = InMemoryKeys()
    interview = invited(keys)
    interview.decline(ctx(FREELANCER, keys), "Signed elsewhere")
    invitation, decline = interview.collect_events()
    assert isinstance(invitation, Interview.Invited) and isinstance(decline, Interview.Declined)
    assert invitation.message["key_id"] != decline.reason["key_id"]  # type: ignore[index]
    keys.erase(FREELANCER.id)
    assert reveal_value(decline.reason, keys) == (None, True)
    assert reveal_value(invitation.message, keys) == (WORDS, False)


def test_every_personal_field_of_the_interview_is_sealed() -> None:
    keys = InMemoryKeys()
    interview = invited(keys)
    interview.accept(ctx(FREELANCER, keys))
    interview.start(ctx(CLIENT, keys), NOW + timedelta(days=1))
    interview.reschedule(ctx(FREELANCER, keys), NOW + timedelta(days=2), reason="a clash")
    terms = OfferTerms(Decimal("100"), "EUR", "fixed", date(2026, 12, 1), "welcome aboard")
    interview.extend_offer(ctx(CLIENT, keys), terms)
    interview.decline_offer(ctx(FREELANCER, keys), "too low")
    interview.extend_offer(ctx(CLIENT, keys), terms)
    interview.withdraw_offer(ctx(CLIENT, keys), "budget cut")
    interview.cancel(ctx(CLIENT, keys), "position filled")
    texts = [
        getattr(e, name)
        for e in interview.collect_events()
        for name in ("message", "reason")
        if hasattr(e, name)
    ]
    assert len(texts) == 7 and all(is_sealed(t) for t in texts)
    assert is_sealed(interview.closed_reason) and is_sealed(interview.message)


def test_closing_a_job_seals_its_reason_and_each_cancellation_with_the_clients_key() -> None:
    keys = InMemoryKeys()
    job = Job.create("job-1", CLIENT, NOW, "Compiler engineer", None)
    interview = invited(keys)
    cancelled = job.close(ctx(CLIENT, keys), [interview], "we hired internally")
    assert cancelled == [interview]
    closed = job.collect_events()[-1]
    assert isinstance(closed, Job.Closed) and is_sealed(closed.reason)
    cancel = interview.collect_events()[-1]
    assert isinstance(cancel, Interview.Cancelled) and cancel.job_closed
    assert cancel.reason["key_id"] == keys.subjects[CLIENT.id]  # type: ignore[index]
    assert reveal_value(cancel.reason, keys) == ("job closed", False)
    with pytest.raises(InputOutOfBoundsError):
        Job.create("job-2", CLIENT, NOW, "t", None).close(ctx(CLIENT, keys), [], "\u202ebad")


def test_without_a_key_issuer_text_is_recorded_as_written() -> None:
    event = invited(None).collect_events()[0]
    assert event.message == WORDS  # type: ignore[attr-defined]


def test_an_idempotency_fingerprint_never_hashes_the_words_alone() -> None:
    keys = InMemoryKeys()
    payload = {"reason": "position filled"}
    sealed_fp = fingerprint("cancel", "i", private_payload(ctx(CLIENT, keys), payload))
    assert sealed_fp != fingerprint("cancel", "i", payload)
    # Stable while the key lives: a retry with the same words matches.
    assert sealed_fp == fingerprint("cancel", "i", private_payload(ctx(CLIENT, keys), payload))


# ----------------------------------------------------------------- envelopes


def envelope(data: dict[str, object], version: int) -> dict[str, object]:
    return {
        "id": str(uuid4()),
        "type": "interview.declined",
        "schema_version": version,
        "interview_id": str(uuid4()),
        "version": 2,
        "position": 7,
        "occurred_at": NOW.isoformat(),
        "actor": {"id": "f", "role": "freelancer"},
        "job_id": "j",
        "client_id": "c",
        "freelancer_id": "f",
        "correlation_id": "x",
        "causation_id": "y",
        "data": data,
    }


def test_the_envelope_carries_sealed_text_and_still_reads_old_plain_text() -> None:
    import json

    keys = InMemoryKeys()
    sealed = ctx(FREELANCER, keys).seal("signed elsewhere")
    now = decode_envelope(json.dumps(envelope({"reason": sealed}, 2)))
    assert now.data["reason"] == sealed
    old = decode_envelope(json.dumps(envelope({"reason": "signed elsewhere"}, 1)))
    assert old.data["reason"] == "signed elsewhere"
    from services.contracts import UnsupportedEventError

    broken = {**sealed, "alg": "ROT13"}  # type: ignore[dict-item]
    with pytest.raises(UnsupportedEventError):
        decode_envelope(json.dumps(envelope({"reason": broken}, 2)))


# ------------------------------------------------------- key-encryption key


def test_a_key_encryption_key_is_base64url_of_32_bytes() -> None:
    raw = os.urandom(32)
    assert parse_kek(encode_kek(raw)) == raw
    assert parse_kek(encode_kek(raw).rstrip("=")) == raw
    for bad in ("", "short", encode_kek(os.urandom(16)), encode_kek(os.urandom(33)), "ü" * 43):
        with pytest.raises(KeyEncryptionKeyError, match="KEY_ENCRYPTION_KEY"):
            parse_kek(bad)


def test_a_data_key_unwraps_only_with_its_kek_and_its_own_id() -> None:
    kek, other, data_key = os.urandom(32), os.urandom(32), os.urandom(32)
    wrapped = wrap(kek, "key-1", data_key)
    assert data_key not in wrapped
    assert unwrap(kek, "key-1", wrapped) == data_key
    with pytest.raises(KeyEncryptionKeyError, match="not the one"):
        unwrap(other, "key-1", wrapped)
    with pytest.raises(KeyEncryptionKeyError):
        unwrap(kek, "key-2", wrapped)


def test_without_a_configured_kek_one_is_generated_owner_only_and_kept(tmp_path: Path) -> None:
    first = load_kek(None, tmp_path, postgres=False)
    mode = stat.S_IMODE(kek_file(tmp_path).stat().st_mode)
    assert mode == 0o600
    assert load_kek(None, tmp_path, postgres=False) == first
    configured = os.urandom(32)
    assert load_kek(encode_kek(configured), tmp_path, postgres=False) == configured


def test_postgres_without_a_configured_kek_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    warn_if_file_kek(None, tmp_path, postgres=True)
    assert "KEY_ENCRYPTION_KEY is not set" in caplog.text
    caplog.clear()
    warn_if_file_kek("set", tmp_path, postgres=True)
    warn_if_file_kek(None, tmp_path, postgres=False)
    assert caplog.text == ""


def test_a_reader_creates_no_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyEncryptionKeyError):
        load_kek(None, tmp_path, postgres=False, create=False)
    assert not kek_file(tmp_path).exists()


# ------------------------------------------------------------------ Erasure


def test_an_erasure_records_who_when_why_and_the_keys_never_the_words() -> None:
    erasure = Erasure.request(
        CommandContext(ADMIN, NOW, "corr", "cause"),
        erasure_id=uuid4(),
        subject_id=FREELANCER.id,
        reason="GDPR request of 2026-11-20",
        key_ids=["k1", "k2"],
    )
    (event,) = erasure.collect_events()
    assert isinstance(event, Erasure.Requested)
    assert (event.subject_id, event.requested_by, event.reason, event.key_ids) == (
        FREELANCER.id,
        ADMIN.id,
        "GDPR request of 2026-11-20",
        ["k1", "k2"],
    )
    assert event.timestamp == NOW


@pytest.mark.parametrize("actor", [CLIENT, FREELANCER, Actor("a", "auditor")])
def test_only_an_admin_erases(actor: Actor) -> None:
    with pytest.raises(NotAllowedError):
        Erasure.check_request(CommandContext(actor, NOW, "c", "c"), "someone", "why")


@pytest.mark.parametrize(
    ("subject", "reason"),
    [("", "why"), (" x", "why"), ("x" * 129, "why"), ("x", ""), ("x", "\x00")],
)
def test_a_bad_erasure_request_is_refused(subject: str, reason: str) -> None:
    from services.interviews.domain import DomainError

    with pytest.raises(DomainError):
        Erasure.check_request(CommandContext(ADMIN, NOW, "c", "c"), subject, reason)
