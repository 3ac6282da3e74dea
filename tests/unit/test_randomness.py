"""Pooled random bytes: every call new bytes, per thread, never shared across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from services.common import randomness
from services.common.privacy import seal, unseal


def test_consecutive_calls_never_repeat_bytes_across_page_refills() -> None:
    draws = [randomness.random_bytes(12) for _ in range(3 * randomness.PAGE // 12)]
    assert all(len(d) == 12 for d in draws)
    assert len(set(draws)) == len(draws)


def test_a_request_larger_than_a_page_is_served_whole() -> None:
    assert len(randomness.random_bytes(randomness.PAGE + 1)) == randomness.PAGE + 1


def test_threads_draw_from_pages_of_their_own() -> None:
    drawn: list[list[bytes]] = [[] for _ in range(4)]

    def draw(i: int) -> None:
        drawn[i].extend(randomness.random_bytes(16) for _ in range(1000))

    threads = [threading.Thread(target=draw, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [d for mine in drawn for d in mine]
    assert len(set(every)) == len(every) == 4000


def test_a_forked_child_never_uses_the_page_its_parent_read() -> None:
    randomness.random_bytes(12)  # the parent holds a page with bytes left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send what it draws next, then leave at once
        os.write(write, randomness.random_bytes(12))
        os._exit(0)
    os.close(write)
    child = os.read(read, 12)
    os.close(read)
    os.waitpid(pid, 0)
    assert child != randomness.random_bytes(12)


def test_random_uuids_are_version_4() -> None:
    ids = {randomness.random_uuid() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in ids)


def test_sealed_texts_get_a_fresh_nonce_each() -> None:
    key = os.urandom(32)
    sealed = [seal(key, "k1", "same words") for _ in range(500)]
    assert len({s["nonce"] for s in sealed}) == 500
    assert {unseal(key, s) for s in sealed} == {"same words"}
