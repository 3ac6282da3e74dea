"""Right to erasure: the admin's erasure requests and the internal key service.

``/admin/erasures`` is for admins. ``/internal/*`` is the key service the
consumer services (run as their own processes) read data keys from and report
their redactions to: callers authenticate with a ``service`` token. Answers
that carry keys are never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ...common.auth import Principal
from ...common.privacy import KeyErased, KeyNotFound, KeyServiceUnavailable
from ...common.web import ERROR_RESPONSES, ApiError, CurrentPrincipal
from ..adapters.key_store import ErasureRecord, SqlKeyStore, UnknownErasureError
from ..domain import Actor, CommandContext, DomainError, NotAllowedError
from ..erasures import ErasureService
from .api import InterviewsDep
from .schemas import Reason

NO_STORE = {"Cache-Control": "no-store"}
SERVICE_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
SubjectId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$", description="A user id")
]


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject_id: SubjectId
    reason: Reason = Field(description="Why (the admin's words, kept in the audit trail)")


class ErasureAccepted(BaseModel):
    id: str
    subject_id: str
    status: str


class ErasurePublic(BaseModel):
    id: str
    subject_id: str
    status: str = Field(description='"pending" until every service reported, then "done"')
    requested_at: datetime
    requested_by: str
    reason: str
    done_at: datetime | None
    services: dict[str, str] = Field(description='Each service: "pending" or "done"')


class DataKeyPublic(BaseModel):
    key_id: str
    key: str = Field(description="The data key, base64url (32 bytes)")


class ErasureTaskPublic(BaseModel):
    id: str
    subject_id: str
    key_ids: list[str]
    keys_destroyed_at: datetime


class ErasureTasksPublic(BaseModel):
    items: list[ErasureTaskPublic]


class ErasureDoneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(pattern=SERVICE_NAME)


router = APIRouter(tags=["privacy"], responses=ERROR_RESPONSES)


def _store(request: Request) -> SqlKeyStore:
    store: SqlKeyStore = request.app.state.container.key_store()
    return store


def _require(principal: Principal, role: str, what: str) -> None:
    if principal.role != role:
        raise ApiError(403, "forbidden", f"only {what} may do this")


# The platform's own consumers, which open sealed texts (a token's ``sub``).
KEY_READERS = frozenset({"projections", "notifications"})


def _require_key_reader(principal: Principal, request: Request, service: str | None = None) -> None:
    """Only the platform's own consumer services read data keys and report erasures:
    role ``service`` and a ``sub`` naming one of them (the marketplace's other
    services, which register jobs, never see a key); and a service answers for itself."""
    readers = KEY_READERS | set(request.app.state.container.settings.erasure_service_names)
    if principal.role != "service" or principal.id not in readers:
        raise ApiError(403, "forbidden", "only the platform's consumer services may do this")
    if service is not None and service != principal.id:
        raise ApiError(403, "forbidden", f"{principal.id} may only answer for itself")


def _erasure_public(record: ErasureRecord) -> ErasurePublic:
    services = {"interviews": "done"}
    services |= {s: "done" if s in record.done else "pending" for s in record.services}
    return ErasurePublic(
        id=record.id,
        subject_id=record.subject_id,
        status=record.status,
        requested_at=record.requested_at,
        requested_by=record.requested_by,
        reason=record.reason,
        done_at=record.done_at,
        services=services,
    )


def _unavailable(error: Exception) -> ApiError:
    return ApiError(503, "unavailable", f"the key store cannot be reached: {error}")


@router.post("/admin/erasures", status_code=202, response_model=ErasureAccepted)
def request_erasure(
    body: ErasureRequest, request: Request, principal: CurrentPrincipal, app: InterviewsDep
) -> ErasureAccepted:
    """An admin erases a person: their data keys are destroyed now (every copy of
    their words becomes unreadable) and the erasure is recorded (who, when, why).
    The consumer services then redact their copies; follow `GET
    /admin/erasures/{id}` until `done`. Erasing someone again, or someone who
    never wrote anything, is accepted too."""
    _require(principal, "admin", "an admin")
    request_id = getattr(request.state, "request_id", "")
    ctx = CommandContext(
        actor=Actor(principal.id, principal.role),
        at=request.app.state.container.clock(),
        correlation_id=request.headers.get("x-correlation-id", "")[:128] or request_id,
        causation_id=request_id,
    )
    service = ErasureService(app, _store(request))
    try:
        record = service.request(ctx, body.subject_id, body.reason)
    except NotAllowedError as error:
        raise ApiError(403, error.code, error.detail) from None
    except DomainError as error:
        raise ApiError(422, error.code, error.detail) from None
    except KeyServiceUnavailable as error:
        raise _unavailable(error) from None
    return ErasureAccepted(id=record.id, subject_id=record.subject_id, status=record.status)


@router.get("/admin/erasures/{erasure_id}", response_model=ErasurePublic)
def erasure_status(
    erasure_id: Annotated[str, Path(max_length=64)], request: Request, principal: CurrentPrincipal
) -> ErasurePublic:
    """An erasure's progress: `done` once every consumer service redacted its copies."""
    _require(principal, "admin", "an admin")
    try:
        record = _store(request).erasure(erasure_id)
    except UnknownErasureError:
        raise ApiError(404, "erasure_not_found", f"erasure {erasure_id!r} not found") from None
    except KeyServiceUnavailable as error:
        raise _unavailable(error) from None
    return _erasure_public(record)


@router.get("/internal/keys/{key_id}", response_model=DataKeyPublic)
async def data_key(
    key_id: Annotated[str, Path(max_length=64)],
    request: Request,
    principal: CurrentPrincipal,
    response: Response,
) -> Any:
    """A data key, for a consumer service that reveals sealed text. `410
    key_erased` once its owner was erased, `404 key_not_found` if never issued."""
    _require_key_reader(principal, request)
    store = _store(request)
    try:
        key = await run_in_threadpool(store.data_key, key_id)
    except KeyErased:
        raise ApiError(410, "key_erased", f"data key {key_id} was erased", NO_STORE) from None
    except KeyNotFound:
        raise ApiError(404, "key_not_found", f"no data key {key_id}", NO_STORE) from None
    except KeyServiceUnavailable as error:
        raise ApiError(503, "unavailable", str(error), NO_STORE) from None
    response.headers.update(NO_STORE)
    return DataKeyPublic(key_id=key_id, key=base64.urlsafe_b64encode(key).decode("ascii"))


@router.get("/internal/erasures", response_model=ErasureTasksPublic)
def pending_erasures(
    service: Annotated[str, Query(pattern=SERVICE_NAME)],
    request: Request,
    principal: CurrentPrincipal,
    response: Response,
) -> ErasureTasksPublic:
    """The erasures `service` has not reported done, oldest first."""
    _require_key_reader(principal, request, service)
    try:
        tasks = _store(request).pending_erasures(service)
    except KeyServiceUnavailable as error:
        raise ApiError(503, "unavailable", str(error), NO_STORE) from None
    response.headers.update(NO_STORE)
    return ErasureTasksPublic(
        items=[
            ErasureTaskPublic(
                id=t.id,
                subject_id=t.subject_id,
                key_ids=list(t.key_ids),
                keys_destroyed_at=t.keys_destroyed_at,
            )
            for t in tasks
        ]
    )


@router.post("/internal/erasures/{erasure_id}/done", status_code=204)
def erasure_done(
    erasure_id: Annotated[str, Path(max_length=64)],
    body: ErasureDoneRequest,
    request: Request,
    principal: CurrentPrincipal,
) -> Response:
    """`service` has redacted every stored copy for this erasure (idempotent)."""
    _require_key_reader(principal, request, body.service)
    try:
        _store(request).erasure_done(erasure_id, body.service)
    except UnknownErasureError:
        raise ApiError(404, "erasure_not_found", f"erasure {erasure_id!r} not found") from None
    except KeyServiceUnavailable as error:
        raise ApiError(503, "unavailable", str(error), NO_STORE) from None
    return Response(status_code=204, headers=NO_STORE)
