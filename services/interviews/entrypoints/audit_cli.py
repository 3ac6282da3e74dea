"""``interviewctl audit``: history, verification, export and offline replay.

``history``, ``verify`` and ``export`` read the event store the service uses
(``DATABASE_URL``, or the SQLite file under ``DATA_DIR``). ``replay`` needs
neither a database nor a broker: it imports only the domain and the standard
library, so an auditor can check an export on their own machine.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from ...common.cli_errors import EXIT_PROBLEM, CliError, tool_app

if TYPE_CHECKING:
    from ..audit import InterviewAudit
    from ..audit_log import LogReport

audit_app = tool_app("Audit the interview log: history, verify, export, offline replay.")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Where SQLite files live (DATA_DIR)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of text")]


@contextmanager
def _audit(data_dir: Path | None) -> Iterator[InterviewAudit]:
    """The audit of the existing event store; a store that does not exist is an
    error, and nothing (file, database, table) is created to read it."""
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)
    from ...common.db import require_database
    from ..audit import InterviewAudit
    from ..bootstrap import InterviewsContainer

    container = InterviewsContainer(create_tables=False)
    require_database(
        container.settings.database_url,
        container.sqlite_path,
        [container.events_table],
        "interview event store",
    )
    try:
        yield InterviewAudit(container.interviews())
    finally:
        container.close()


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, advanced by positions in the log."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("positions"),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@audit_app.command("history")
def history(
    interview_id: Annotated[UUID, typer.Argument(metavar="ID", help="The interview's id")],
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Every event of one interview: who did what, when, and its hash link."""
    from ..application import InterviewNotFoundError

    with _audit(data_dir) as audit:
        try:
            records = audit.history(interview_id)
        except InterviewNotFoundError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
    for record in records:
        item = record.to_json()
        if as_json:
            typer.echo(json.dumps(item, ensure_ascii=False, default=str))
            continue
        actor = item["actor"]
        typer.echo(
            f"v{item['version']:<3} @{item['position']:<8} {item['occurred_at']}  "
            f"{item['type'] or item['event'] or '?':<26} {actor['role']}:{actor['id']}  "
            f"hash {str(item['hash'])[:12]}"
            + (f"  {json.dumps(item['data'], ensure_ascii=False)}" if item["data"] else "")
            + (f"  ERROR {item['error']}" if item["error"] else "")
        )


@audit_app.command("verify")
def verify(
    interview_id: Annotated[
        UUID | None,
        typer.Argument(metavar="[ID]", help="One interview; all of them if left out"),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Recompute every hash: each interview's chain, and (for all) the log digest
    against its checkpoints. Exit code 1 if anything is broken."""
    from ..application import InterviewNotFoundError

    with _audit(data_dir) as audit:
        if interview_id is not None:
            try:
                report = audit.verify(interview_id)
            except InterviewNotFoundError as error:
                typer.echo(str(error), err=True)
                raise typer.Exit(2) from None
            if report.broken is None:
                typer.echo(f"ok: {report.checked} events of interview {interview_id} verified")
                return
            typer.echo(
                f"BROKEN: interview {interview_id} v{report.broken.version}: "
                f"{report.broken.reason} ({report.checked} events checked)"
            )
            raise typer.Exit(1)
        with _progress("verifying") as progress:
            log = audit.verify_all(progress)
    _print_log_report(log, "verified")
    if not log.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    out: Annotated[
        Path, typer.Option("--out", metavar="FILE", help="The JSON lines file to write")
    ],
    data_dir: DataDirOpt = None,
) -> None:
    """Write the whole interview log in global order, one JSON object per line,
    with everything needed to re-verify it offline (`audit replay`). An empty
    log is an error (exit code 1) and writes no file."""
    _check_writable(out)
    # Written beside the target and renamed at the end: a failed export leaves
    # no half-written file and never clobbers an earlier one.
    partial = out.with_name(f".{out.name}.partial")
    try:
        with (
            _audit(data_dir) as audit,
            _create(partial, out) as handle,
            _progress("exporting") as progress,
        ):
            log = audit.export(handle, progress)
        if log.checked == 0:
            raise CliError("the event store holds no events: nothing to export", EXIT_PROBLEM)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"wrote {log.checked} events of {log.interviews} interviews to {out}")
    _print_log_report(log, "exported")


@contextmanager
def _create(path: Path, named: Path) -> Iterator[Any]:
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as error:
        raise CliError(f"--out {named}: cannot write there: {error.strerror}") from None
    with handle:
        yield handle


def _check_writable(out: Path) -> None:
    if out.is_dir():
        raise CliError(f"--out {out} is a directory; name a file")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--out {out}: {folder} is not a folder")
    if not folder.is_dir():
        raise CliError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise CliError(f"--out {out}: permission denied")


@audit_app.command("replay")
def replay(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="An `audit export` file",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    as_json: JsonOpt = False,
    digest: Annotated[
        str | None,
        typer.Option(
            metavar="DIGEST", help="The log digest the live store reported; a mismatch fails"
        ),
    ] = None,
) -> None:
    """Offline: verify every chain of an export and print each interview's final
    state and a summary. No database, no broker. Exit code 1 if anything is
    broken or the file holds no events, 2 if it is not an export at all."""
    from ..audit_export import replay as replay_log

    report = replay_log(_export_lines(file))
    if report.log.checked == 0 and not report.bad_lines:
        raise CliError(f"{file} holds no events: an export has at least one", EXIT_PROBLEM)
    for iid, state in report.states.items():  # in the order they first appear
        if as_json:
            typer.echo(json.dumps(state, ensure_ascii=False))
        else:
            typer.echo(
                f"{iid}  {state['status']:<15} v{state['version']:<3} job={state['job_id']} "
                f"client={state['client_id']} freelancer={state['freelancer_id']}"
            )
    problems = [
        f"interview {iid} cannot be replayed: {reason}"
        for iid, reason in sorted(report.unreadable.items(), key=lambda kv: str(kv[0]))
    ]
    named = report.log.log_problem.reason if report.log.log_problem else None
    problems += [f"export {line}" for line in report.bad_lines if line != named]
    if digest is not None and digest != report.log.digest:
        problems.append(f"the export's log digest is not the expected {digest}")
    _print_log_report(report.log, "replayed", out=sys.stderr if as_json else None, more=problems)
    if problems or not report.ok:
        raise typer.Exit(EXIT_PROBLEM)


def _export_lines(file: Path) -> Iterator[str]:
    """The lines of an export; a file that is not one (not UTF-8 text, or a
    first line that is not an export record) is a usage error, not a problem
    found in an export."""
    try:
        with file.open(encoding="utf-8") as handle:
            first = True
            for number, line in enumerate(handle, 1):
                if first and line.strip():
                    first = False
                    _check_first_line(file, number, line)
                yield line
    except UnicodeDecodeError:
        raise CliError(f"{file} is not an `audit export` file: it is not UTF-8 text") from None


def _check_first_line(file: Path, number: int, line: str) -> None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        record = None
    if not isinstance(record, dict) or "log_hash" not in record:
        raise CliError(
            f"{file} is not an `audit export` file: line {number} is not an exported event"
        )


def _print_log_report(
    log: LogReport, verb: str, out: Any = None, more: list[str] | None = None
) -> None:
    """One BROKEN line per problem, then a summary whose count is those lines."""

    def say(text: str) -> None:
        typer.echo(text, err=out is sys.stderr)

    problems = [
        f"interview {link.interview_id} v{link.version}: {link.reason}" for link in log.broken
    ]
    if log.log_problem is not None:
        problems.append(
            f"global log at position {log.log_problem.position}: {log.log_problem.reason}"
        )
    problems += more or []
    for problem in problems:
        say(f"BROKEN: {problem}")
    verdict = f"{len(problems)} problem(s)" if problems else "ok"
    say(
        f"{verb} {log.checked} events of {log.interviews} interviews: {verdict}; "
        f"log digest {log.digest or '-'} at position {log.position}"
    )
