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

if TYPE_CHECKING:
    from ..audit import InterviewAudit
    from ..audit_log import LogReport

audit_app = typer.Typer(
    help="Audit the interview log: history, verify, export, offline replay.",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where SQLite files live (DATA_DIR)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of text")]


@contextmanager
def _audit(data_dir: Path | None) -> Iterator[InterviewAudit]:
    if data_dir is not None:
        os.environ["DATA_DIR"] = str(data_dir)
    from ..audit import InterviewAudit
    from ..bootstrap import InterviewsContainer

    container = InterviewsContainer()
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
    interview_id: Annotated[UUID, typer.Argument(help="The interview's id")],
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
        UUID | None, typer.Argument(help="One interview; all of them if left out")
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
    out: Annotated[Path, typer.Option("--out", help="The JSON lines file to write")],
    data_dir: DataDirOpt = None,
) -> None:
    """Write the whole interview log in global order, one JSON object per line,
    with everything needed to re-verify it offline (`audit replay`)."""
    with (
        _audit(data_dir) as audit,
        out.open("w", encoding="utf-8") as handle,
        _progress("exporting") as progress,
    ):
        log = audit.export(handle, progress)
    typer.echo(f"wrote {log.checked} events of {log.interviews} interviews to {out}")
    _print_log_report(log, "exported")


@audit_app.command("replay")
def replay(
    file: Annotated[Path, typer.Argument(help="An `audit export` file", exists=True)],
    as_json: JsonOpt = False,
    digest: Annotated[
        str | None,
        typer.Option(help="The log digest the live store reported; a mismatch fails"),
    ] = None,
) -> None:
    """Offline: verify every chain of an export and print each interview's final
    state and a summary. No database, no broker. Exit code 1 if anything is broken."""
    from ..audit_log import read_export
    from ..audit_log import replay as replay_log

    report = replay_log(read_export(str(file)))
    for iid, state in report.states.items():  # in the order they first appear
        if as_json:
            typer.echo(json.dumps(state, ensure_ascii=False))
        else:
            typer.echo(
                f"{iid}  {state['status']:<15} v{state['version']:<3} job={state['job_id']} "
                f"client={state['client_id']} freelancer={state['freelancer_id']}"
            )
    for iid, reason in sorted(report.unreadable.items(), key=lambda kv: str(kv[0])):
        typer.echo(f"{iid}  UNREADABLE {reason}")
    ok = report.ok
    if digest is not None and digest != report.log.digest:
        ok = False
        typer.echo(f"BROKEN: the export's log digest is not the expected {digest}")
    _print_log_report(report.log, "replayed", out=sys.stderr if as_json else None)
    if not ok:
        raise typer.Exit(1)


def _print_log_report(log: LogReport, verb: str, out: Any = None) -> None:
    def say(text: str) -> None:
        typer.echo(text, err=out is sys.stderr)

    for link in log.broken:
        say(f"BROKEN: interview {link.interview_id} v{link.version}: {link.reason}")
    if log.log_problem is not None:
        say(f"BROKEN: global log at position {log.log_problem.position}: {log.log_problem.reason}")
    verdict = "ok" if log.ok else f"{len(log.broken) + (log.log_problem is not None)} problem(s)"
    say(
        f"{verb} {log.checked} events of {log.interviews} interviews: {verdict}; "
        f"log digest {log.digest or '-'} at position {log.position}"
    )
