"""How a command on an interview runs: decided, committed, retried, answered.

``_execute`` decides and commits, first optimistically on cached state, then on
fresh state after a refusal or a lost race (``_attempts``), with an
``Idempotency-Key`` answering a retry as the first attempt was answered
(``_replay``). An HTTP route may instead ``prepare`` the command and run it with
``execute_on_loop``: its first attempt on the event loop, its commit awaited,
every later attempt in a thread: the same attempts in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Recording

from ...common.logs import log_line
from ...common.loop_threads import WouldBlockError, on_the_loop
from ..domain import CommandContext, DomainError, Interview
from ..idempotency import IdempotentResponse, fingerprint
from ..personal_data import private_payload
from .core import MAX_ATTEMPTS, ApplicationCore
from .errors import (
    ConcurrencyConflictError,
    IdempotencyKeyReusedError,
    InterviewNotFoundError,
    VersionMismatchError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    id: UUID
    status: str
    version: int
    position: int
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "status": self.status,
            "version": self.version,
            "position": self.position,
        }


@dataclass(frozen=True, slots=True)
class PreparedCommand:
    """A command on an interview, ready to run: what ``_execute`` was given."""

    ctx: CommandContext
    action: str
    target: str
    payload: dict[str, Any]
    idempotency_key: str | None
    decide: Callable[[list[Any] | None], tuple[list[Any], Interview]]
    job_lock: str | None
    # Its decision always queries (it reads an aggregate fresh): no attempt on the loop.
    queries: bool = False

    def fingerprint(self) -> str:
        """The idempotency fingerprint ("" without a key)."""
        if not self.idempotency_key:
            return ""
        return fingerprint(self.action, self.target, private_payload(self.ctx, self.payload))


@dataclass(frozen=True, slots=True)
class _Decision:
    """One attempt's aggregates to commit and the answer's fields, read before
    the commit (a committed aggregate is the cache's)."""

    aggregates: list[Any]
    interview_id: UUID
    status: str
    version: int


# Set by ``prepare``: ``_execute`` hands its command here instead of running it.
_PREPARING: ContextVar[list[PreparedCommand] | None] = ContextVar("preparing", default=None)
# What ``_execute`` returns inside ``prepare`` (never seen outside it).
_NOT_RUN = CommandResult(UUID(int=0), "", 0, 0)


class CommandExecution(ApplicationCore):
    """Runs the commands of ``InterviewCommands`` (``_execute``)."""

    def _execute(
        self,
        ctx: CommandContext,
        action: str,
        target: str,
        payload: dict[str, Any],
        idempotency_key: str | None,
        decide: Callable[[list[Any] | None], tuple[list[Any], Interview]],
        *,
        job_lock: str | None = None,
        queries: bool = False,
    ) -> CommandResult:
        """Decides and commits, first optimistically: ``decide`` may take the
        aggregates it will write from the cache as they are (``trusted``, see
        ``_load``), and the idempotency record is written without looking for an
        earlier one. The store's unique versions refuse a commit made on stale
        state or with a key already used; then, and whenever the domain refuses
        a decision taken on trusted state, the command is decided again on fresh
        state, after looking for an earlier answer to its key. So the answer is
        always the one fresh state gives. ``job_lock``: the job whose commands
        this process runs one at a time (invitations all write their job).
        ``queries``: ``decide`` always reads from the store, so
        ``execute_on_loop`` runs the command in a thread without trying the loop.

        Inside ``prepare`` the command is not run but handed back, for
        ``execute_on_loop``."""
        command = PreparedCommand(
            ctx, action, target, payload, idempotency_key, decide, job_lock, queries
        )
        captured = _PREPARING.get()
        if captured is not None:
            captured.append(command)
            return _NOT_RUN
        return self._run(command)

    def prepare(self, call: Callable[[], CommandResult]) -> PreparedCommand | None:
        """The command ``call`` (one of this class's commands) would run, without
        running it; None if ``call`` runs none (or more than one)."""
        captured: list[PreparedCommand] = []
        token = _PREPARING.set(captured)
        try:
            call()
        finally:
            _PREPARING.reset(token)
        return captured[0] if len(captured) == 1 else None

    async def execute_on_loop(
        self,
        command: PreparedCommand,
        offload: Callable[[Callable[[], CommandResult]], Awaitable[CommandResult]],
    ) -> CommandResult:
        """``command`` as ``_execute`` runs it, with its first, optimistic attempt
        taken on the event loop and its commit awaited (``commit_async``): no
        thread hop for a command decided on cached state. Whatever would block
        there (a query, a key not held, a job lock held) and every later attempt
        (a refusal on trusted state, a lost race) go to ``offload`` (a thread),
        exactly as ``_execute`` would have gone on; nothing was recorded before.
        A command that ``queries`` goes to ``offload`` whole, at once: on the
        loop it could only get as far as its query and be taken again."""
        if command.queries:
            return await offload(partial(self._run, command))
        lock = command.job_lock
        if lock is not None and not self._job_locks.acquire(lock, blocking=False):
            return await offload(partial(self._run, command))
        afresh = False  # the thread's attempts: from the start, or on fresh state
        try:
            with on_the_loop():
                try:
                    decision = self._decision(command, command.fingerprint(), optimistic=True)
                except WouldBlockError:
                    decision, afresh = None, True
            if isinstance(decision, CommandResult):
                return decision
            if decision is not None:
                try:
                    recordings = await self.committer.commit_async(decision.aggregates)
                except IntegrityError:
                    pass  # lost a race, or stale: decide again on fresh state
                else:
                    return self._answered(command, decision, recordings)
            # else refused or unchecked on trusted state: decide again on fresh state
        finally:
            if lock is not None:
                self._job_locks.release(lock)
        if afresh:
            return await offload(partial(self._run, command))
        retry = partial(self._run, command, optimistic=False, attempts=MAX_ATTEMPTS - 1)
        return await offload(retry)

    def _run(
        self, command: PreparedCommand, *, optimistic: bool = True, attempts: int = MAX_ATTEMPTS
    ) -> CommandResult:
        """``_execute``'s attempts, blocking; ``optimistic=False``: on fresh state
        from the first (a caller's optimistic attempt failed)."""
        if command.job_lock is None:
            return self._attempts(command, optimistic, attempts)
        with self._job_locks.hold(command.job_lock):
            return self._attempts(command, optimistic, attempts)

    def _attempts(self, command: PreparedCommand, optimistic: bool, attempts: int) -> CommandResult:
        fp = command.fingerprint()
        for _ in range(attempts):
            if command.idempotency_key and not optimistic:
                replay = self._replay(command.ctx.actor.id, command.idempotency_key, fp)
                if replay is not None:
                    return replay
            decision = self._decision(command, fp, optimistic)
            if isinstance(decision, CommandResult):
                return decision
            if decision is None:
                optimistic = False
                continue
            try:
                recordings = self._commit(decision.aggregates)
            except IntegrityError:
                optimistic = False  # lost a race, or stale: decide again on fresh state
                continue
            return self._answered(command, decision, recordings)
        raise ConcurrencyConflictError

    def _decision(
        self, command: PreparedCommand, fp: str, optimistic: bool
    ) -> _Decision | CommandResult | None:
        """One attempt's decision: what to commit, an earlier answer to the key
        (a replay), or None to decide again on fresh state (refused or unchecked
        on trusted state). The domain's refusals on fresh state are raised."""
        ctx, key = command.ctx, command.idempotency_key
        trusted: list[Any] | None = [] if optimistic else None
        try:
            aggregates, interview = command.decide(trusted)
        except (DomainError, InterviewNotFoundError, VersionMismatchError):
            if trusted:
                return None  # refused on what may be stale state
            # A concurrent retry of this same request may have committed
            # since the replay check above: then its answer is the answer.
            if key:
                replay = self._replay(ctx.actor.id, key, fp)
                if replay is not None:
                    return replay
            raise
        if trusted and not all(aggregate.pending_events for aggregate in trusted):
            return None  # read from the cache but not written: unchecked
        if key:
            aggregates.append(
                IdempotentResponse.record(
                    ctx.actor.id,
                    key,
                    fp,
                    200,
                    {
                        "id": str(interview.id),
                        "status": interview.status,
                        "version": interview.version,
                    },
                )
            )
        # Read before committing: once committed, the aggregate object is the
        # cache's, and must not change.
        return _Decision(aggregates, interview.id, interview.status, interview.version)

    def _answered(
        self,
        command: PreparedCommand,
        decision: _Decision,
        recordings: list[Recording[UUID]],
    ) -> CommandResult:
        interview_id = decision.interview_id
        position = max(
            r.notification.id for r in recordings if r.domain_event.originator_id == interview_id
        )
        ctx = command.ctx
        log_line(
            log,
            logging.INFO,
            "command %s on interview %s by %s:%s -> %s v%d @%d",
            (
                command.action,
                interview_id,
                ctx.actor.role,
                ctx.actor.id,
                decision.status,
                decision.version,
                position,
            ),
            {"correlation_id": ctx.correlation_id},
        )
        return CommandResult(interview_id, decision.status, decision.version, position)

    def _replay(self, caller_id: str, key: str, fp: str) -> CommandResult | None:
        try:
            record: IdempotentResponse = self._load(
                IdempotentResponse.id_for(caller_id, key), snapshotted=False
            )
        except AggregateNotFoundError:
            return None
        if record.fingerprint != fp:
            raise IdempotencyKeyReusedError
        body = record.response()
        interview_id = UUID(body["id"])
        position = self.position_of(interview_id, body["version"]) or 0
        return CommandResult(interview_id, body["status"], body["version"], position, replayed=True)
