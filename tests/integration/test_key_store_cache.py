"""The key store's cache of each author's current data key (and its cipher) in a
process that did not make the erasure: it keeps serving everyone, and stops
sealing with an erased key once it has seen the erasure (within the cache TTL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import privacy
from services.common.privacy import CachingKeys, KeyErased, reveal_value, seal
from services.interviews.adapters.key_encryption import encode_kek, load_kek
from services.interviews.adapters.key_store import SqlKeyStore
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext
from services.interviews.erasures import ErasureService
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock

pytestmark = pytest.mark.integration

ADMIN = Actor("admin-c", "admin")


@pytest.fixture
def container(database_url: str | None, tmp_path: Path) -> Iterator[InterviewsContainer]:
    settings = InterviewsSettings(
        database_url=database_url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        key_encryption_key=encode_kek(b"k" * 32),
    )
    container = InterviewsContainer(settings, clock=FakeClock())
    container.interviews()
    yield container
    container.close()


def other_process(container: InterviewsContainer, ticks: list[float]) -> SqlKeyStore:
    settings = container.settings
    return SqlKeyStore(
        container.key_store().engine,
        load_kek(settings.key_encryption_key, settings.data_dir, postgres=False),
        issue_ttl_seconds=5.0,
        monotonic=lambda: ticks[0],
    )


def erase(container: InterviewsContainer, subject_id: str) -> None:
    app = container.interviews()
    ctx = CommandContext(ADMIN, app.clock(), "c", "r")
    ErasureService(app, container.key_store()).request(ctx, subject_id, "asked to be forgotten")


def test_after_an_erasure_is_seen_the_others_keep_their_keys_and_the_erased_gets_a_new_one(
    container: InterviewsContainer,
) -> None:
    ticks = [0.0]
    other = other_process(container, ticks)
    alice_id, alice_key = other.key_for("alice")
    bob_id, bob_key = other.key_for("bob")
    alices = seal(alice_key, alice_id, "alice's words")
    bobs = seal(bob_key, bob_id, "bob's words")
    reader = CachingKeys(other, ttl_seconds=5.0, clock=lambda: ticks[0])
    assert reveal_value(alices, reader) == ("alice's words", False)  # ciphers cached

    erase(container, "alice")  # by the service's own process, not ``other``
    ticks[0] += 5.0
    new_id, new_key = other.key_for("alice")
    assert new_id != alice_id and new_key != alice_key
    assert alice_key not in privacy._ciphers  # dropped with the current keys
    assert other.key_for("bob") == (bob_id, bob_key)  # read again, the same key
    assert reveal_value(seal(new_key, new_id, "later"), reader) == ("later", False)
    assert reveal_value(bobs, reader) == ("bob's words", False)
    with pytest.raises(KeyErased):
        other.data_key(alice_id)
    reader.forget([alice_id])
    assert reveal_value(alices, reader) == (None, True)


def test_a_key_read_while_an_erasure_is_seen_serves_that_command_only(
    container: InterviewsContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure seen while a key is being read may have destroyed that key: it is
    not kept, so the next command asks the database again."""
    ticks = [0.0]
    other = other_process(container, ticks)
    other.key_for("carol")  # the erasures table has been looked at once
    other.forget_subject("carol")
    read = other._current_key_in_database
    reads: list[str] = []

    def read_while_an_erasure_is_seen(subject_id: str) -> tuple[str, bytes]:
        reads.append(subject_id)
        found = read(subject_id)
        with other._lock:
            other._drop_current_keys()  # what another thread's erasure check does
        return found

    def plain_read(subject_id: str) -> tuple[str, bytes]:
        reads.append(subject_id)
        return read(subject_id)

    monkeypatch.setattr(other, "_current_key_in_database", read_while_an_erasure_is_seen)
    first = other.key_for("carol")
    assert other.key_for("carol") == first
    assert reads == ["carol", "carol"]  # the first read was not kept
    monkeypatch.setattr(other, "_current_key_in_database", plain_read)
    assert other.key_for("carol") == first
    assert other.key_for("carol") == first
    assert reads == ["carol"] * 3  # kept: no erasure was seen meanwhile
