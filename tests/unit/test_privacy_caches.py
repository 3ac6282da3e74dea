"""The caches on the sealing path: AESGCM objects per key, sealed values copied by
reference. Neither may change what a sealed field is or who can open it."""

from __future__ import annotations

import copy
import json
import pickle

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
