"""Sealed personal text: round trip, binding to its key id, erasure reads null."""

import pytest

from services.common.privacy import (
    CachingKeys,
    InMemoryKeys,
    KeyErased,
    SealedTextError,
    is_sealed,
    key_id_of,
    reveal,
    seal,
    unseal,
)


def test_sealed_text_round_trips_and_hides_the_words() -> None:
    keys = InMemoryKeys()
    key_id, key = keys.key_for("f-1")
    sealed = seal(key, key_id, "I am free on Tuesday — ça va")
    assert is_sealed(sealed) and key_id_of(sealed) == key_id
    assert "Tuesday" not in str(sealed)
    assert unseal(key, sealed) == "I am free on Tuesday — ça va"


def test_sealed_text_cannot_move_under_another_key_id() -> None:
    keys = InMemoryKeys()
    key_id, key = keys.key_for("f-1")
    moved = seal(key, key_id, "hello") | {"key_id": "someone-else"}
    with pytest.raises(SealedTextError):
        unseal(key, moved)


def test_erased_author_reads_null_and_is_listed_others_untouched() -> None:
    keys = InMemoryKeys()
    a_id, a_key = keys.key_for("alice")
    data = {"message": seal(a_key, a_id, "alice's words"), "expires_at": None}
    assert reveal("interview.invited", data, keys) == (
        {"message": "alice's words", "expires_at": None},
        [],
    )
    b_id, b_key = keys.key_for("bob")
    keys.erase("alice")
    assert reveal("interview.invited", data, keys) == (
        {"message": None, "expires_at": None},
        ["message"],
    )
    assert reveal("interview.declined", {"reason": seal(b_key, b_id, "bob")}, keys)[0] == {
        "reason": "bob"
    }
    assert reveal("interview.declined", {"reason": "legacy plain"}, keys)[0] == {
        "reason": "legacy plain"
    }


def test_cache_answers_within_ttl_and_asks_again_after() -> None:
    keys = InMemoryKeys()
    key_id, key = keys.key_for("alice")
    now = [0.0]
    cache = CachingKeys(keys, ttl_seconds=5, clock=lambda: now[0])
    assert cache.data_key(key_id) == key
    keys.erase("alice")
    now[0] = 4.9
    assert cache.data_key(key_id) == key  # still cached: why consumers wait a TTL
    now[0] = 5.0
    with pytest.raises(KeyErased):
        cache.data_key(key_id)
    keys2 = InMemoryKeys()
    id2, _ = keys2.key_for("x")
    cache2 = CachingKeys(keys2, ttl_seconds=60, clock=lambda: 0.0)
    cache2.data_key(id2)
    keys2.erase("x")
    cache2.forget([id2])
    with pytest.raises(KeyErased):
        cache2.data_key(id2)
