"""What the ``interviewctl`` commands that run a service share: the ``--data-dir``
option and the checks made before anything starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .cli_errors import CliError

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Where SQLite files live (DATA_DIR)"),
]


def apply_data_dir(data_dir: Path | None) -> None:
    """``--data-dir``: DATA_DIR for the settings the command reads."""
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)


def check_database_urls() -> None:
    """A malformed database URL is a one-line error now, not a traceback at start-up."""
    # Here, not at the top: commands that need no database (audit replay) import no
    # SQLAlchemy.
    from .db import check_database_url

    for name in ("DATABASE_URL", "PROJECTIONS_DATABASE_URL", "NOTIFICATIONS_DATABASE_URL"):
        value = os.environ.get(name)
        if value:
            try:
                check_database_url(value)
            except ValueError as error:
                raise CliError(f"{name}: {error}") from None
