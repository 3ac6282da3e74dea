"""``interviewctl keys rotate``: re-wrap every data key under a new key-encryption key.

The new KEK comes from ``--new-key-file FILE`` (base64url of 32 bytes) or
``NEW_KEY_ENCRYPTION_KEY``; in the embedded default (no ``KEY_ENCRYPTION_KEY``,
the KEK in a file under ``DATA_DIR``) a fresh one is generated when neither is
given, and the file is replaced. Every data key is re-wrapped in one
transaction: afterwards the data keys open with the new KEK and not with the
old. Stop the interview service (and the relay and scheduler) first: a running
process keeps the old KEK in memory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from ...common.cli_errors import CliError, tool_app


def check_key_encryption_key() -> None:
    """A malformed KEY_ENCRYPTION_KEY is refused now, in one line, before anything starts."""
    from ..adapters.key_encryption import KeyEncryptionKeyError, parse_kek

    value = os.environ.get("KEY_ENCRYPTION_KEY")
    if value:
        try:
            parse_kek(value)
        except KeyEncryptionKeyError as error:
            raise CliError(str(error)) from None


keys_app = tool_app("The data keys of personal text: rotate the key-encryption key.")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Where SQLite files live (DATA_DIR)"),
]


@keys_app.command("rotate")
def rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            metavar="FILE",
            help="A file holding the new key-encryption key (base64url of 32 bytes); "
            "default NEW_KEY_ENCRYPTION_KEY, or (embedded default) a fresh one",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Re-wrap every data key under a new key-encryption key, in one transaction."""
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)
    from ..adapters.key_encryption import (
        KEK_BYTES,
        KeyEncryptionKeyError,
        kek_file,
        parse_kek,
        write_kek_file,
    )
    from ..bootstrap import InterviewsContainer
    from ..settings import InterviewsSettings

    settings = InterviewsSettings()
    in_file = not settings.key_encryption_key
    if not settings.database_url and not (settings.data_dir / "interviews.sqlite").exists():
        raise CliError(f"no interviews database under {settings.data_dir}")
    if in_file and not kek_file(settings.data_dir).exists():
        raise CliError(
            f"no KEY_ENCRYPTION_KEY and no key file {kek_file(settings.data_dir)}: "
            "nothing was ever wrapped with a key to rotate from"
        )
    try:
        if new_key_file is not None:
            new_kek = parse_kek(new_key_file.read_text(encoding="ascii"), str(new_key_file))
        elif os.environ.get("NEW_KEY_ENCRYPTION_KEY"):
            new_kek = parse_kek(os.environ["NEW_KEY_ENCRYPTION_KEY"], "NEW_KEY_ENCRYPTION_KEY")
        elif in_file:
            new_kek = secrets.token_bytes(KEK_BYTES)
        else:
            raise CliError(
                "give the new key-encryption key: --new-key-file FILE or NEW_KEY_ENCRYPTION_KEY"
            )
        container = InterviewsContainer(settings)
        try:
            container.migrate()
            store = container.key_store()
            store.check_kek()
            if new_kek == store.kek:
                raise CliError("the new key-encryption key is the current one")
            path = kek_file(settings.data_dir)
            staged = path.with_name(path.name + ".next")
            if in_file:
                # Kept until the file is replaced: a crash between the commit and the
                # replacement leaves the new KEK here, never lost.
                write_kek_file(staged, new_kek)
            try:
                count = store.rotate(new_kek)
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
            if in_file:
                os.replace(staged, path)
        finally:
            container.close()
    except KeyEncryptionKeyError as error:
        raise CliError(str(error)) from None
    typer.echo(f"re-wrapped {count} data key{'' if count == 1 else 's'} under the new key")
    if in_file:
        typer.echo(f"replaced the key file {kek_file(settings.data_dir)}")
    else:
        typer.echo("now set KEY_ENCRYPTION_KEY to the new key for every interviews process")
