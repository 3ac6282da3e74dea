"""The persistence kit's rules that need no database: a database URL has one
spelling in the settings, an SQLite file has one place under DATA_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.common.db import dialect_insert, sqlalchemy_url, sqlite_url
from services.common.settings import eventsourcing_env, normalized_database_url
from services.interviews.settings import InterviewsSettings
from services.notifications.settings import NotificationsSettings
from services.projections.settings import ProjectionsSettings

rows = sa.Table("rows", sa.MetaData(), sa.Column("id", sa.String(16), primary_key=True))


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@db:5432/app",
        "postgres://u:p@db:5432/app",
        "postgresql+psycopg://u:p@db:5432/app",
    ],
)
def test_every_spelling_of_a_postgresql_url_becomes_one(given: str) -> None:
    assert normalized_database_url(given) == "postgresql://u:p@db:5432/app"
    assert sqlalchemy_url(given, Path("unused")) == "postgresql+psycopg://u:p@db:5432/app"


def test_a_url_of_another_kind_is_left_for_the_check_to_refuse() -> None:
    assert normalized_database_url("mysql://u@db/app") == "mysql://u@db/app"


def test_the_settings_hold_database_urls_in_the_one_spelling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/main")
    monkeypatch.setenv("PROJECTIONS_DATABASE_URL", "postgresql+psycopg://u:p@db/views")
    monkeypatch.setenv("NOTIFICATIONS_DATABASE_URL", "postgres://u:p@db/inbox")

    assert InterviewsSettings().database_url == "postgresql://u:p@db/main"
    assert ProjectionsSettings().view_database_url == "postgresql://u:p@db/views"
    assert NotificationsSettings().resolved_database_url() == "postgresql://u:p@db/inbox"


def test_each_service_keeps_its_sqlite_file_under_data_dir(tmp_path: Path) -> None:
    paths = {
        InterviewsSettings(data_dir=tmp_path).sqlite_path,
        ProjectionsSettings(data_dir=tmp_path).sqlite_path,
        NotificationsSettings(data_dir=tmp_path).sqlite_path,
    }

    assert paths == {
        tmp_path / f"{n}.sqlite" for n in ("interviews", "projections", "notifications")
    }


def test_an_sqlite_file_url_names_the_file_and_makes_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "views.sqlite"

    assert sqlite_url(path) == f"sqlite:///{path}"
    assert path.parent.is_dir()
    assert sqlalchemy_url(None, path) == sqlite_url(path)
    assert eventsourcing_env(None, path)["SQLITE_DBNAME"] == str(path)


def test_the_on_conflict_insert_is_the_dialects_own() -> None:
    assert isinstance(dialect_insert("postgresql", rows), postgresql.Insert)
    assert isinstance(dialect_insert("sqlite", rows), sqlite.Insert)
    with pytest.raises(NotImplementedError, match="mysql"):
        dialect_insert("mysql", rows)
