"""What every HTTP service shares: JSON errors, bearer auth, metrics, request logs, health."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import AuthError, Principal, decode_token
from .docs import DOCS_ASSETS_URL, install_offline_docs
from .logs import bind_log_context, trace_id_from, unbind_log_context
from .randomness import random_uuid
from .readiness import schema_problem
from .tracing import ServerSpans

log = logging.getLogger("http")


class ApiError(Exception):
    """An error with an HTTP status, a machine-readable code and a human detail."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def error_response(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse({"code": code, "detail": detail, **extra}, status, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "detail": {"type": "string"}},
                    "required": ["code", "detail"],
                }
            }
        },
    }
    for code, text in (
        (401, "No or bad token"),
        (403, "Not allowed for this caller"),
        (404, "Unknown id"),
        (409, "Transition not allowed or duplicate"),
        (412, "If-Match mismatch"),
        (413, "Body over 64 KiB"),
        (422, "Invalid input"),
        (503, "A dependency is down"),
    )
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


def _describe_validation(errors: Iterable[Any]) -> tuple[str, list[dict[str, Any]]]:
    clean = []
    parts = []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ())]
        msg = str(e.get("msg", "invalid"))
        clean.append({"loc": loc, "msg": msg, "type": str(e.get("type", ""))})
        parts.append(f"{'.'.join(loc)}: {msg}")
    return "; ".join(parts) or "invalid input", clean


def install_error_handlers(app: FastAPI, unavailable: tuple[type[Exception], ...] = ()) -> None:
    """JSON ``{code, detail}`` for every error; never a 500 for bad input."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _describe_validation(exc.errors())
        return error_response(422, "invalid_input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        if status == 400:
            # FastAPI answers 400 for a body it cannot even decode (not UTF-8):
            # DESIGN says invalid input is 422, whatever the way it is invalid.
            status = 422
        code = _STATUS_CODES.get(status, "error")
        return error_response(status, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(sa_exc.DBAPIError)
    async def _database_error(_: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        problem = schema_problem(exc)
        if problem is not None:
            return _schema_mismatch(problem)
        log.error("database error: %s", type(exc.orig).__name__)
        return error_response(500, "internal_error", "the database refused the request")

    for exc_type in unavailable:

        @app.exception_handler(exc_type)
        async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
            problem = schema_problem(exc)
            if problem is not None:
                return _schema_mismatch(problem)
            log.warning("dependency unavailable: %s: %s", type(exc).__name__, exc)
            return error_response(
                503,
                "unavailable",
                "a dependency (the database) is unavailable; retry shortly",
                headers={"Retry-After": "2"},
            )


def _schema_mismatch(problem: str) -> JSONResponse:
    """The service's tables are not the ones its code knows (an upgrade or a
    migration is due): 503 until an operator brings them in line."""
    log.error("the database's schema does not match this release: %s", problem)
    return error_response(
        503,
        "schema_mismatch",
        "the service's database schema does not match this release (an upgrade or "
        "migration is due); retry later",
        headers={"Retry-After": "30"},
    )


# Declares the scheme in each service's OpenAPI document (and on every operation
# that needs a principal); the token itself is checked below, with our 401 body.
BEARER = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="HS256 JWT with `sub` and `role` claims (`interviewctl token SUB ROLE`).",
)


def bearer_principal(
    secret_getter: Callable[[Request], str],
) -> Callable[..., Awaitable[Principal]]:
    async def dependency(  # no I/O: no thread-pool hop
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> Principal:
        token = credentials.credentials if credentials else ""
        return principal_from_token(secret_getter(request), token)

    return dependency


def principal_from_token(secret: str, token: str) -> Principal:
    """The caller a bearer token names; 401 when it is missing or not valid."""
    token = token.strip()
    if not token:
        raise ApiError(
            401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return decode_token(secret, token)
    except AuthError as error:
        raise ApiError(
            401, "unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"}
        ) from None


def app_secret(request: Request) -> str:
    return request.app.state.auth_secret


CurrentPrincipal = Annotated[Principal, Depends(bearer_principal(app_secret))]


def request_principal(request: Request) -> Principal:
    """The caller, read from the request as ``CurrentPrincipal`` reads it (for a
    route whose hot path declares no dependency tree; ``BEARER_DOCUMENT`` then
    states the scheme in its ``openapi_extra``)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return principal_from_token(app_secret(request), token if scheme.lower() == "bearer" else "")


BEARER_DOCUMENT: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


class Metrics:
    """A registry per app, so several apps (and tests) can live in one process."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


MAX_BODY_BYTES = 64 * 1024


class PayloadTooLargeError(HTTPException):
    """A request body over the limit (FastAPI passes an HTTPException through
    its body parsing untouched, so the app's handler answers it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit // 1024} KiB")


# Wraps the app's own middleware stack, given the app (e.g. routes it serves
# without the framework's per-request machinery), inside ``RequestMiddleware``.
Front = Callable[[FastAPI, ASGIApp], ASGIApp]


def install_observability(
    app: FastAPI, metrics: Metrics, limit: int = MAX_BODY_BYTES, front: Front | None = None
) -> None:
    """Request metrics, one structured log line per request, a request id header,
    the request's server span with its ``traceparent`` on every response, and the
    body limit: ``RequestMiddleware``, outside the app's whole middleware stack
    (and outside ``front``, if given, which wraps that stack)."""
    spans = ServerSpans(metrics.service)
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        stack = build()
        return RequestMiddleware(front(app, stack) if front else stack, metrics, spans, limit)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


class RequestMiddleware:
    """What every request passes through, in one plain ASGI layer with one
    ``send`` hook (a layer per concern cost a sixth of the event loop's time per
    command):

    - the server span (``ServerSpans``), current while the app runs, and its
      ``traceparent`` on the answer. It wraps the app's error handling, as
      OpenTelemetry's FastAPI instrumentation does, so a 500 carries it too and
      the exception is on the span;
    - an ``X-Request-Id`` (the caller's, up to 128 characters, or a new one),
      the log context (service, correlation id, the caller's trace id), then the
      request's metrics and one log line;
    - the body limit: a declared Content-Length over ``limit`` is refused (413)
      before the app runs; a body without one (chunked) is counted as it arrives
      and refused at the first chunk past the limit, by the app's handler of the
      ``PayloadTooLargeError`` raised where it is read. The rest is never read:
      the server closes the connection rather than drain it;
    - a query parameter given more than once is refused (422): no operation
      takes a list in its query, and the framework would otherwise read the
      last value and ignore the others."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, spans: ServerSpans, limit: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.spans = spans
        self.limit = limit
        # The labelled series by (method, route, status): as many as the metrics
        # hold, looked up without the client library's checks and lock.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given, correlation, traceparent, declared = _request_headers(scope)
        # random_uuid: os.urandom's bytes without a GIL release on the event loop per request
        request_id = given if given and len(given) <= 128 else random_uuid().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # The same correlation id the interviews API records on the events.
        correlation_id = correlation[:128] or request_id
        spans = self.spans
        span = spans.start(scope)
        token = otel_context.attach(trace.set_span_in_context(span))
        bound = bind_log_context(
            service=self.metrics.service,
            correlation_id=correlation_id,
            trace_id=trace_id_from(traceparent),
        )
        status = 0
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_once_marked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append(request_id_header)
                value = spans.answered(span, status)
                if value is not None:
                    headers.append((b"traceparent", value))
                message["headers"] = headers
            await send(message)

        limit = self.limit
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(limit)
            return message

        try:
            refusal = self._refusal(scope.get("query_string", b""), declared)
            if refusal is not None:
                await refusal(scope, _no_body, send_once_marked)
            else:
                await self.app(scope, counting_receive, send_once_marked)
        except Exception as error:
            spans.failed(span, error, status)
            raise
        finally:
            self._record(scope, status or 500, time.perf_counter() - start, request_id)
            unbind_log_context(bound)
            otel_context.detach(token)
            spans.end(span, scope)

    def _refusal(self, query: bytes, declared: str) -> Response | None:
        """The answer to a request refused before the app runs, if it is."""
        repeated = _repeated_query_parameter(query) if query else None
        if repeated is not None:
            return error_response(
                422, "invalid_input", f"query parameter {repeated!r} is given more than once"
            )
        if declared and declared.strip().isdigit() and int(declared) > self.limit:
            response = error_response(
                413, "payload_too_large", str(PayloadTooLargeError(self.limit).detail)
            )
            response.headers["Connection"] = "close"
            return response
        return None

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        """The request's metrics and its log line."""
        method = scope["method"]
        template = getattr(scope.get("route"), "path", "unmatched")
        series = self._series.get((method, template, status))
        if series is None:
            series = self._series[(method, template, status)] = (
                self.metrics.requests.labels(method, template, str(status)),
                self.metrics.latency.labels(method, template),
            )
        series[0].inc()
        series[1].observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            # The path holds ids only; the query string and body are never logged.
            # A record made here, not by ``log.info``: that would look up the
            # calling frame's file and line, which no log format shows.
            record = log.makeRecord(
                log.name,
                logging.INFO,
                "(unknown file)",
                0,
                "%s %s %d %.2fms",
                (method, scope["path"], status, elapsed * 1000),
                None,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )
            log.handle(record)


_CONTEXT_HEADERS = (b"x-request-id", b"x-correlation-id", b"traceparent", b"content-length")


def _request_headers(scope: Scope) -> tuple[str, str, str, str]:
    """``X-Request-Id``, ``X-Correlation-Id``, ``traceparent`` and
    ``Content-Length`` ("" when absent, the first one when repeated), in one pass
    over the request's headers."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _CONTEXT_HEADERS:
            found.setdefault(name, value)
    request_id, correlation_id, traceparent, length = (
        found.get(name, b"").decode("latin-1") for name in _CONTEXT_HEADERS
    )
    return request_id, correlation_id, traceparent, length


def _repeated_query_parameter(query: bytes) -> str | None:
    names = [name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name[:64]
        seen.add(name)
    return None


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def service_app(
    *,
    title: str,
    description: str,
    lifespan: Any,
    container: Any,
    auth_secret: str,
    metrics: Metrics,
    unavailable: tuple[type[Exception], ...],
    front: Front | None = None,
) -> FastAPI:
    """A service's app: JSON errors (``unavailable``: 503), body limit, metrics, docs;
    ``front`` (see ``install_observability``) in front of its middleware stack."""
    app = FastAPI(
        title=title,
        version="1.0.0",
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # The server span is ours (install_observability); FastAPI's own would be a second.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    app.state.auth_secret = auth_secret
    app.state.metrics = metrics
    install_error_handlers(app, unavailable)
    install_observability(app, metrics, front=front)
    install_offline_docs(app)
    match_documents_last(app)
    return app


def match_documents_last(app: FastAPI) -> None:
    """The router tries its routes in order, and FastAPI puts ``/openapi.json``
    first, then the docs pages and their assets: every request tried those four
    before the service's own routes. None of their paths overlaps another route's
    and the OpenAPI document lists none of them, so they move to the end, when
    the middleware stack is built (at the first request, every router included)."""
    documents = {app.openapi_url, "/docs", "/redoc", DOCS_ASSETS_URL}
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        routes = app.router.routes
        routes.sort(key=lambda route: getattr(route, "path", None) in documents)
        return build()

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
