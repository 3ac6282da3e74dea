"""The notifications API: a caller's own inbox and webhooks.

Another user's notification or webhook is indistinguishable from one that
does not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from ...common.web import ERROR_RESPONSES, ApiError, CurrentPrincipal
from ..application import DuplicateWebhookError, Inbox, InvalidCursorError, NotFoundError
from .schemas import (
    NotificationPage,
    NotificationPublic,
    WebhookPublic,
    WebhookRequest,
    notification_public,
    webhook_public,
)


def get_inbox(request: Request) -> Inbox:
    return request.app.state.container.inbox()  # type: ignore[no-any-return]


InboxDep = Annotated[Inbox, Depends(get_inbox)]

router = APIRouter(tags=["notifications"], responses=ERROR_RESPONSES)


@router.get("/notifications", response_model=NotificationPage)
def list_notifications(
    principal: CurrentPrincipal,
    inbox: InboxDep,
    unread: Annotated[
        bool | None, Query(description="true: only unread; false: only read; omitted: all")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> NotificationPage:
    """The caller's notifications, newest first, with their delivery status."""
    try:
        page = inbox.list_notifications(principal.id, unread=unread, limit=limit, cursor=cursor)
    except InvalidCursorError as error:
        raise ApiError(422, "invalid_cursor", str(error)) from None
    return NotificationPage(
        items=[notification_public(row) for row in page.items], next_cursor=page.next_cursor
    )


@router.post("/notifications/{notification_id}/read", response_model=NotificationPublic)
def mark_read(
    notification_id: UUID, principal: CurrentPrincipal, inbox: InboxDep
) -> NotificationPublic:
    """Marks one of the caller's notifications as read (repeating it changes nothing)."""
    try:
        return notification_public(inbox.mark_read(principal.id, notification_id))
    except NotFoundError:
        raise ApiError(404, "not_found", f"no notification {notification_id}") from None


@router.post("/webhooks", status_code=201, response_model=WebhookPublic)
def register_webhook(
    body: WebhookRequest, principal: CurrentPrincipal, inbox: InboxDep
) -> WebhookPublic:
    """Registers a URL that receives the caller's notifications of the given types,
    signed with HMAC-SHA256 (see the README). The secret is never shown again."""
    if principal.role not in ("client", "freelancer"):
        raise ApiError(403, "forbidden", f"{principal.role}s receive no notifications to forward")
    try:
        row = inbox.register_webhook(principal.id, body.url, body.secret, body.event_types)
    except DuplicateWebhookError as error:
        raise ApiError(409, "duplicate_webhook", str(error)) from None
    return webhook_public(row)


@router.get("/webhooks", response_model=list[WebhookPublic])
def list_webhooks(
    principal: CurrentPrincipal,
    inbox: InboxDep,
    deliveries: Annotated[
        int, Query(ge=0, le=200, description="how many latest deliveries to show per webhook")
    ] = 20,
) -> list[WebhookPublic]:
    """The caller's webhooks with their latest deliveries and every attempt of each."""
    return [webhook_public(row) for row in inbox.list_webhooks(principal.id, deliveries)]
