"""``interviewctl keys rotate``: every data key re-wrapped under a new
key-encryption key in one transaction; afterwards everything reveals with the
new KEK and nothing opens with the old. On SQLite (the key file replaced) and on
PostgreSQL (the new key given, the operator then sets KEY_ENCRYPTION_KEY)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app as cli
from services.common.privacy import reveal_value
from services.interviews.adapters.key_encryption import (
    KeyEncryptionKeyError,
    encode_kek,
    kek_file,
    parse_kek,
)
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.domain import Actor, CommandContext
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock
from tests.jobs import ensure_job

pytestmark = pytest.mark.integration

CLIENT = Actor("client-r", "client")
WORDS = "Would you walk us through your last release?"


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, database_url: str | None, tmp_path: Path
) -> Iterator[None]:
    for name in ("DATABASE_URL", "KEY_ENCRYPTION_KEY", "NEW_KEY_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    if database_url:
        monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    yield


def write_some_text(settings: InterviewsSettings) -> dict[str, object]:
    container = InterviewsContainer(settings, clock=FakeClock())
    try:
        app = container.interviews()
        ctx = CommandContext(CLIENT, app.clock(), "c", "r")
        ensure_job(app, "job-r", CLIENT.id, app.clock())
        iid = app.invite(ctx, job_id="job-r", freelancer_id="f-r", message=WORDS).id
        message = app.get_interview(iid).message
        assert isinstance(message, dict)
        return message
    finally:
        container.close()


def reveal_with(settings: InterviewsSettings, sealed: dict[str, object]) -> str | None:
    container = InterviewsContainer(settings, clock=FakeClock())
    try:
        return reveal_value(sealed, container.key_store())[0]
    finally:
        container.close()


def test_rotation_in_the_embedded_default_replaces_the_key_file(
    env: None, database_url: str | None, tmp_path: Path
) -> None:
    settings = InterviewsSettings(
        database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET
    )
    sealed = write_some_text(settings)
    old = parse_kek(kek_file(tmp_path).read_text())

    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "re-wrapped 1 data key" in result.output

    new = parse_kek(kek_file(tmp_path).read_text())
    assert new != old
    assert stat.S_IMODE(kek_file(tmp_path).stat().st_mode) == 0o600
    assert not any(p.name.endswith(".next") for p in tmp_path.iterdir())
    assert reveal_with(settings, sealed) == WORDS
    with_old = settings.model_copy(update={"key_encryption_key": encode_kek(old)})
    with pytest.raises(KeyEncryptionKeyError):
        reveal_with(with_old, sealed)


def test_rotation_to_a_given_key_then_only_the_new_key_opens_the_data_keys(
    env: None,
    database_url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    monkeypatch.setenv("KEY_ENCRYPTION_KEY", encode_kek(old))
    settings = InterviewsSettings(
        database_url=database_url,
        data_dir=tmp_path,
        auth_secret=TEST_SECRET,
        key_encryption_key=encode_kek(old),
    )
    sealed = write_some_text(settings)
    key_file = tmp_path / "new.key"
    key_file.write_text(encode_kek(new))

    result = CliRunner().invoke(cli, ["keys", "rotate", "--new-key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    assert "set KEY_ENCRYPTION_KEY" in result.output

    assert (
        reveal_with(settings.model_copy(update={"key_encryption_key": encode_kek(new)}), sealed)
        == WORDS
    )
    with pytest.raises(KeyEncryptionKeyError):
        reveal_with(settings, sealed)
    # Starting the service with the old key is refused, in words.
    stale = InterviewsContainer(settings)
    try:
        with pytest.raises(KeyEncryptionKeyError, match="another key-encryption key"):
            stale.interviews()
    finally:
        stale.close()


def test_rotation_refuses_a_malformed_new_key_and_changes_nothing(
    env: None, database_url: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = InterviewsSettings(
        database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET
    )
    sealed = write_some_text(settings)
    before = kek_file(tmp_path).read_text()
    monkeypatch.setenv("NEW_KEY_ENCRYPTION_KEY", "not-a-key")
    result = CliRunner().invoke(cli, ["keys", "rotate"])
    assert result.exit_code == 2
    assert "NEW_KEY_ENCRYPTION_KEY" in result.output and "Traceback" not in result.output
    assert kek_file(tmp_path).read_text() == before
    assert reveal_with(settings, sealed) == WORDS
