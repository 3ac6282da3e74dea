"""The caches on the sealing path: AESGCM objects per key, sealed values copied by
reference (by ``copy`` and by a command's private copy of an aggregate). Neither
may change what a sealed field is or who can open it."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from services.common import privacy
from services.common.privacy import (
    CachingKeys,
    InMemoryKeys,
    SealedTextError,
    SealedValue,
    reveal_value,
    seal,
    unseal,
)
from services.interviews.domain import Actor, CommandContext, Interview, OfferTerms
from services.interviews.personal_data import sealing
from services.interviews.use_cases.core import private_copy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CLIENT = Actor("client-1", "client")
FREELANCER = Actor("freelancer-1", "freelancer")


def test_every_seal_has_a_fresh_nonce_and_opens_under_its_key_only() -> None:
    keys = InMemoryKeys()
    a_id, a_key = keys.key_for("alice")
    b_id, b_key = keys.key_for("bob")
    sealed = [seal(a_key, a_id, "same words") for _ in range(50)]
    assert len({s["nonce"] for s in sealed}) == 50
    assert len({s["ciphertext"] for s in sealed}) == 50
    assert all(unseal(a_key, s) == "same words" for s in sealed)
    with pytest.raises(SealedTextError):
        unseal(b_key, sealed[0])  # a cipher cached for alice's key never opens bob's
    assert unseal(b_key, seal(b_key, b_id, "bob's")) == "bob's"


def test_forgetting_an_erased_key_drops_its_cipher_and_the_text_reads_erased() -> None:
    keys = InMemoryKeys()
    key_id, key = keys.key_for("alice")
    sealed = seal(key, key_id, "alice's words")
    cache = CachingKeys(keys, ttl_seconds=60, clock=lambda: 0.0)
    assert reveal_value(sealed, cache) == ("alice's words", False)
    assert key in privacy._ciphers
    keys.erase("alice")
    cache.forget([key_id])
    assert key not in privacy._ciphers
    assert reveal_value(sealed, cache) == (None, True)
    # The words written after the erasure get a new key and still seal and open.
    new_id, new_key = keys.key_for("alice")
    assert new_id != key_id
    assert reveal_value(seal(new_key, new_id, "later"), cache) == ("later", False)


def test_ciphers_of_keys_no_longer_used_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(privacy.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(privacy, "_ciphers_swept", [0.0])
    old, fresh = InMemoryKeys().key_for("old")[1], InMemoryKeys().key_for("fresh")[1]
    privacy._cipher(old)
    now[0] += privacy.CIPHER_SECONDS
    privacy._cipher(fresh)  # a miss sweeps what is older than CIPHER_SECONDS
    assert old not in privacy._ciphers and fresh in privacy._ciphers


def test_a_sealed_value_is_copied_by_reference_and_cannot_change() -> None:
    keys = InMemoryKeys()
    key_id, key = keys.key_for("alice")
    sealed = seal(key, key_id, "words")
    assert isinstance(sealed, SealedValue)
    assert copy.deepcopy(sealed) is sealed and copy.copy(sealed) is sealed
    with pytest.raises(TypeError):
        sealed["ciphertext"] = "tampered"
    with pytest.raises(TypeError):
        sealed.update(key_id="someone-else")
    plain = dict(sealed)
    assert plain == sealed and json.loads(json.dumps(sealed)) == plain
    assert pickle.loads(pickle.dumps(sealed)) == sealed
    plain["ciphertext"] = "tampered"  # a copy can be changed; the original is intact
    assert unseal(key, sealed) == "words"


def test_a_private_copy_shares_sealed_texts_and_its_changes_stay_its_own() -> None:
    """A command's copy of a cached interview shares its sealed texts (and the
    offer holding one) instead of copying them: they cannot change. What the
    copy then records never reaches the cached original."""
    keys = InMemoryKeys()
    client = sealing(CommandContext(CLIENT, NOW, "corr", "cause"), keys)
    freelancer = sealing(CommandContext(FREELANCER, NOW, "corr", "cause"), keys)
    interview = Interview.invite(
        client,
        interview_id=uuid4(),
        job_id="job-1",
        freelancer_id=FREELANCER.id,
        message="shall we talk?",
        expires_at=NOW + timedelta(days=3),
    )
    interview.accept(freelancer)
    interview.extend_offer(client, OfferTerms(Decimal("900"), "EUR", "fixed", message="welcome"))
    interview.collect_events()

    mine = private_copy(interview)
    assert isinstance(interview.message, SealedValue) and mine.message is interview.message
    assert interview.offer is not None
    assert isinstance(interview.offer.message, SealedValue) and mine.offer is interview.offer
    assert vars(mine) == vars(copy.deepcopy(interview))

    mine.decline_offer(freelancer, "too low")
    assert (mine.offer, len(mine.pending_events)) == (None, 1)
    assert interview.offer is not None and interview.pending_events == []
    assert reveal_value(interview.offer.message, keys) == ("welcome", False)
