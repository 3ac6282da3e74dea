"""How ``interviewctl`` fails: one line on stderr saying what is wrong, and an
exit code a script can act on. A user's mistake never shows a traceback.

====  ===========================================================================
code  meaning
====  ===========================================================================
0     done
1     a check found a problem (``audit verify``/``replay``: a broken chain, a
      digest that differs, an empty export), or a rebuild already running
2     a usage or user error: a bad argument or setting, a missing or unwritable
      path, a file that is not an export, a database that does not exist, a
      malformed ``DATABASE_URL``, a database newer than the code (or behind it
      with ``AUTO_MIGRATE=false``)
3     a dependency is down: the database or the Kafka broker does not answer
70    an internal error (a bug): one line, the traceback with INTERVIEWCTL_DEBUG=1
130   interrupted (Ctrl-C)
====  ===========================================================================
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import typer

if TYPE_CHECKING:
    import pydantic

# Typer carries its own copy of Click; its exceptions are what commands raise.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def tool_app(help: str) -> typer.Typer:
    """A command group of ``interviewctl``: plain help (flags read ``--port PORT``,
    no panels or type labels), help when called bare, no pretty tracebacks."""
    return typer.Typer(
        help=help, rich_markup_mode=None, pretty_exceptions_enable=False, no_args_is_help=True
    )


class CliError(ClickException):
    """A failure to report as one line, with its exit code (a usage error by default)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def unavailable(message: str) -> CliError:
    return CliError(message, EXIT_UNAVAILABLE)


# Errors of libraries that mean "a dependency does not answer"; checked only
# when the library was imported (``audit replay`` must not import any of them).
_UNAVAILABLE = (
    ("psycopg", "OperationalError"),
    ("psycopg", "InterfaceError"),
    ("psycopg_pool", "PoolTimeout"),
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("eventsourcing.persistence", "OperationalError"),
    ("eventsourcing.persistence", "InterfaceError"),
    ("kafka.errors", "KafkaConnectionError"),
    ("kafka.errors", "KafkaTimeoutError"),
)


DB = f"{__package__}.db"


def _is(error: BaseException, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(error, cls)


def one_line(text: str) -> str:
    """The first non-blank line of ``text``, shortened to fit a terminal line or two."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= 300 else line[:297] + "..."


def describe(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an error a command raised."""
    # services.common.db imports SQLAlchemy: looked up only once something loaded it.
    if _is(error, DB, "InvalidDatabaseUrlError") or _is(error, DB, "MissingDatabaseError"):
        return EXIT_USAGE, str(error)
    if _is(error, f"{__package__}.migrations", "SchemaError"):
        return EXIT_USAGE, str(error)  # a database newer than the code, or not migrated
    if _is(error, DB, "UnreachableDatabaseError"):
        return EXIT_UNAVAILABLE, str(error)
    if _is(error, DB, "DependencyUnavailableError") or any(
        _is(error, module, name) for module, name in _UNAVAILABLE
    ):
        return (
            EXIT_UNAVAILABLE,
            f"a dependency is down: {one_line(str(error)) or type(error).__name__}",
        )
    if _is(error, "sqlite3", "Error"):
        code = EXIT_UNAVAILABLE if "locked" in str(error) else EXIT_USAGE
        return code, f"SQLite: {one_line(str(error))}"
    if _is(error, "pydantic", "ValidationError"):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper() or 'value'}: {e['msg']}"
            # Matched by name above (pydantic is not imported at run time here).
            for e in cast("pydantic.ValidationError", error).errors()
        )
        return EXIT_USAGE, f"invalid setting: {problems}"
    if isinstance(error, ConnectionError | TimeoutError):
        return EXIT_UNAVAILABLE, f"a dependency is down: {one_line(str(error))}"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return EXIT_USAGE, f"{error.strerror or one_line(str(error))}{where}"
    return EXIT_INTERNAL, (
        f"internal error: {type(error).__name__}: {one_line(str(error))} "
        "(set INTERVIEWCTL_DEBUG=1 for the traceback)"
    )


def run(
    app: typer.Typer, argv: Sequence[str] | None = None, prog_name: str = "interviewctl"
) -> int:
    """Runs the CLI and returns its exit code; every failure is one line on stderr."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except NoArgsIsHelpError as error:
        typer.echo(error.format_message(), err=True)
        return EXIT_USAGE
    except UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else prog_name
        hint = f" (see '{where} --help')"
        return _fail(f"{where}: {one_line(error.format_message())}{hint}", EXIT_USAGE)
    except ClickException as error:
        return _fail(f"{prog_name}: {one_line(error.format_message())}", error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _fail(f"{prog_name}: interrupted", EXIT_INTERRUPTED)
    except Exception as error:  # every error becomes one line and an exit code
        if os.environ.get("INTERVIEWCTL_DEBUG"):
            raise
        code, message = describe(error)
        return _fail(f"{prog_name}: {message}", code)
    return result if isinstance(result, int) else EXIT_OK


def _fail(message: str, code: int) -> int:
    typer.echo(message, err=True)
    return code
