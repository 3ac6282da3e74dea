"""``interviewctl deadlines isolated|release``: deadlines the scheduler set aside.

A deadline the scheduler cannot index or expire is isolated (table
``isolated_deadlines``) so that every other deadline keeps firing. ``isolated``
lists them with the error; ``release ID`` puts one back into the index from
the interview's current state once the cause is fixed (a new scheduler
release, a repaired record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

if TYPE_CHECKING:
    from ..settings import InterviewsSettings

deadlines_app = typer.Typer(
    help="Deadlines the scheduler isolated: list them, release them.", no_args_is_help=True
)

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where SQLite files live (DATA_DIR)")
]


def _settings(data_dir: Path | None) -> InterviewsSettings:
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)
    from ..settings import InterviewsSettings

    settings = InterviewsSettings()
    if not settings.database_url and not settings.sqlite_path.exists():
        typer.echo(f"no interviews database under {settings.data_dir}", err=True)
        raise typer.Exit(1)
    return settings


@deadlines_app.command("isolated")
def isolated(data_dir: DataDirOpt = None) -> None:
    """The deadlines set aside: interview, what, due, version, stage, error."""
    import sqlalchemy as sa

    from ...common.db import create_engine
    from ..adapters.deadline_index import DeadlineIndex
    from ..adapters.tables import ISOLATED

    settings = _settings(data_dir)
    engine = create_engine(settings.database_url, settings.sqlite_path)
    try:
        if not sa.inspect(engine).has_table(ISOLATED.name):
            rows = []
        else:
            rows = DeadlineIndex(engine).isolated()
    except sa.exc.OperationalError as error:
        typer.echo(f"cannot read the deadline index: {error.orig}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    for row in rows:
        typer.echo(
            f"{row.interview_id}  {row.what or '?'} due {row.due_at or '?'}  "
            f"v{row.version}  {row.stage}  {row.isolated_at:%Y-%m-%dT%H:%M:%SZ}  {row.error}"
        )
    typer.echo(f"{len(rows)} isolated deadline{'' if len(rows) == 1 else 's'}")


@deadlines_app.command("release")
def release(
    interview_id: Annotated[UUID, typer.Argument(help="The interview's id")],
    data_dir: DataDirOpt = None,
) -> None:
    """Put an isolated deadline back into the index, from the interview's current state."""
    from ..bootstrap import InterviewsContainer
    from ..scheduler import Scheduler

    settings = _settings(data_dir)
    container = InterviewsContainer(settings)
    scheduler = Scheduler(container)
    try:
        released = scheduler.release(interview_id)
    finally:
        scheduler.close()
        container.close()
    if not released:
        typer.echo(f"no isolated deadline for interview {interview_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"released the deadline of interview {interview_id}")
