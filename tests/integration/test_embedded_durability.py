"""The embedded event store keeps what it acknowledged: its SQLite file commits in
WAL mode with ``synchronous=FULL``, so a command answered before a crash (of the
process or the machine) is in the file after it. B8, the raw SQLite baseline of
``bench.sqlite``, commits with the same settings: the ratio compares like with like."""

from __future__ import annotations

import pytest

from services.interviews.bootstrap import InterviewsContainer

SYNCHRONOUS_FULL = 2


@pytest.fixture
def database_url() -> None:
    """The embedded default: the event store is an SQLite file."""
    return None


def test_the_embedded_event_store_syncs_each_commit_to_disk(
    interviews_container: InterviewsContainer,
) -> None:
    recorder = interviews_container.interviews().recorder
    with recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    assert journal_mode == "wal"
    assert synchronous == SYNCHRONOUS_FULL, "an acknowledged command could be lost on power loss"
