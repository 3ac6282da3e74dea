from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.interviews.bootstrap import InterviewsContainer, create_app
from services.interviews.settings import InterviewsSettings
from tests.conftest import TEST_SECRET, FakeClock


@pytest.fixture
def interviews_settings(database_url: str | None, tmp_path: Path) -> InterviewsSettings:
    return InterviewsSettings(database_url=database_url, data_dir=tmp_path, auth_secret=TEST_SECRET)


@pytest.fixture
def interviews_container(
    interviews_settings: InterviewsSettings, clock: FakeClock
) -> Iterator[InterviewsContainer]:
    container = InterviewsContainer(interviews_settings, clock=clock)
    yield container
    container.close()


@pytest.fixture
def api(interviews_container: InterviewsContainer) -> Iterator[TestClient]:
    with TestClient(create_app(interviews_container)) as client:
        yield client
