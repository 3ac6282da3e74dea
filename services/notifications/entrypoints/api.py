"""The notifications API: a caller's own inbox and webhooks.

Another user's notification or webhook is indistinguishable from one that
does not exist (404), so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from ...common.web import ERROR_RESPONSES, ApiError, CurrentPrincipal
from ..application import (
    DuplicateWebhookError,
    Inbox,
    InvalidCursorError,
    NotFoundError,
    WebhookLimitError,
    WebhookStateError,
)
from ..webhook_urls import UrlNotAllowedError
from .schemas import (
    NotificationPage,
    NotificationPublic,
    RedeliverRequest,
    RotateSecretRequest,
    WebhookDeliveryPublic,
    WebhookPublic,
    WebhookRequest,
    WebhookUpdateRequest,
    delivery_public,
    notification_public,
    webhook_public,
)


def get_inbox(request: Request) -> Inbox:
    return request.app.state.container.inbox()


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


def _refused(error: UrlNotAllowedError) -> ApiError:
    return ApiError(422, "url_not_allowed", f"this webhook URL is not allowed: {error}")


@router.post("/webhooks", status_code=201, response_model=WebhookPublic)
def register_webhook(
    body: WebhookRequest, principal: CurrentPrincipal, inbox: InboxDep
) -> WebhookPublic:
    """Registers a URL that receives the caller's notifications of the given types,
    signed with HMAC-SHA256 (see the README). The secret is never shown again.

    The URL must be http(s) to a public address (422 ``url_not_allowed``), not one
    the caller already registered (409 ``duplicate_webhook``; case, default port,
    trailing slash and query string do not make a URL different), and a user has
    at most ``WEBHOOK_MAX_PER_USER`` (10) webhooks (409 ``webhook_limit``)."""
    if principal.role not in ("client", "freelancer"):
        raise ApiError(403, "forbidden", f"{principal.role}s receive no notifications to forward")
    try:
        row = inbox.register_webhook(
            principal.id, body.url, body.secret, body.event_types, owner_role=principal.role
        )
    except UrlNotAllowedError as error:
        raise _refused(error) from None
    except DuplicateWebhookError as error:
        raise ApiError(409, "duplicate_webhook", str(error)) from None
    except WebhookLimitError as error:
        raise ApiError(409, "webhook_limit", str(error)) from None
    return webhook_public(row, inbox.clock())


@router.get("/webhooks", response_model=list[WebhookPublic])
def list_webhooks(
    principal: CurrentPrincipal,
    inbox: InboxDep,
    deliveries: Annotated[
        int, Query(ge=0, le=200, description="how many latest deliveries to show per webhook")
    ] = 20,
) -> list[WebhookPublic]:
    """The caller's webhooks with their latest deliveries and every attempt of each:
    status codes and timings, never what the receiver answered."""
    now = inbox.clock()
    return [webhook_public(row, now) for row in inbox.list_webhooks(principal.id, deliveries)]


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: UUID, principal: CurrentPrincipal, inbox: InboxDep) -> Response:
    """Deletes one of the caller's webhooks; deliveries still waiting are dropped."""
    try:
        inbox.delete_webhook(principal.id, webhook_id)
    except NotFoundError:
        raise ApiError(404, "not_found", f"no webhook {webhook_id}") from None
    return Response(status_code=204)


@router.patch("/webhooks/{webhook_id}", response_model=WebhookPublic)
def update_webhook(
    webhook_id: UUID, body: WebhookUpdateRequest, principal: CurrentPrincipal, inbox: InboxDep
) -> WebhookPublic:
    """Pauses (``active: false``) or resumes a webhook, or changes its event types.
    Resuming checks the URL again (422 ``url_not_allowed``) and clears the count of
    dead deliveries that disabled it."""
    try:
        row = inbox.update_webhook(
            principal.id, webhook_id, active=body.active, event_types=body.event_types
        )
    except NotFoundError:
        raise ApiError(404, "not_found", f"no webhook {webhook_id}") from None
    except UrlNotAllowedError as error:
        raise _refused(error) from None
    return webhook_public(row, inbox.clock())


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookPublic)
def rotate_secret(
    webhook_id: UUID, body: RotateSecretRequest, principal: CurrentPrincipal, inbox: InboxDep
) -> WebhookPublic:
    """Replaces the signing secret. During the grace period
    (``WEBHOOK_SECRET_GRACE_HOURS``, 24 h) every call carries two signatures in
    ``X-Signature``, new first, so the receiver can switch at its own pace."""
    try:
        row = inbox.rotate_secret(principal.id, webhook_id, body.secret)
    except NotFoundError:
        raise ApiError(404, "not_found", f"no webhook {webhook_id}") from None
    except WebhookStateError as error:
        raise ApiError(422, error.code, str(error)) from None
    return webhook_public(row, inbox.clock())


@router.post(
    "/webhooks/{webhook_id}/redeliver", status_code=202, response_model=WebhookDeliveryPublic
)
def redeliver(
    webhook_id: UUID, body: RedeliverRequest, principal: CurrentPrincipal, inbox: InboxDep
) -> WebhookDeliveryPublic:
    """Sends one of the caller's notifications to the webhook again (a new delivery,
    queued now). 409 ``webhook_inactive`` for a paused or disabled webhook, 422
    ``type_not_subscribed`` for a type it does not receive."""
    try:
        row = inbox.redeliver(principal.id, webhook_id, body.notification_id)
    except NotFoundError as error:
        raise ApiError(404, "not_found", str(error)) from None
    except WebhookStateError as error:
        status = 409 if error.code == "webhook_inactive" else 422
        raise ApiError(status, error.code, str(error)) from None
    return delivery_public(row, WebhookDeliveryPublic)
