"""The command routes served without FastAPI's per-request machinery.

FastAPI answers a request through a stack of middleware (error, exception,
body-limit, exit-stack), a router that tries every route, and a dependency
solver that walks the route's parameters anew each time: together more event
loop time per command than the use case's own Python. ``DirectRoutes`` sits
just inside the service's request middleware (span, log, metrics, body limit)
and serves the routes whose shape it knows, resolved once from the routes
themselves at start-up: the same path pattern, the same path and body fields
validating the same values, the same dependencies (plain ``async def
f(request)``), the same endpoint and the app's own exception handlers.

Only the ordinary case goes this way. A request whose path parameter or body
does not validate, whose body is not ``application/json`` or arrives in parts
the server did not announce, is handed to FastAPI with its body replayed, so
every refusal keeps FastAPI's exact answer. So does every route this module
does not understand, and every request while a test overrides a dependency.
"""

from __future__ import annotations

import copy
import inspect
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from re import Pattern
from typing import Any

from fastapi import FastAPI, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import get_route_path
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class _Direct:
    """One route, resolved once: what its endpoint needs and where from."""

    route: APIRoute
    methods: frozenset[str]
    regex: Pattern[str]
    convertors: dict[str, Convertor[Any]]
    path_fields: tuple[tuple[str, str, Any], ...]  # (kwarg, path key, ModelField)
    dependencies: tuple[tuple[str, Callable[[Request], Any]], ...]
    request_name: str | None
    body_name: str | None
    body_field: Any
    body_required: bool
    endpoint: Callable[..., Any]


def _plain_dependency(dependant: Dependant) -> bool:
    """``async def f(request)`` and nothing else: no parameters, no sub-dependencies."""
    return (
        dependant.call is not None
        and inspect.iscoroutinefunction(dependant.call)
        and dependant.request_param_name is not None
        and not dependant.dependencies
        and not _has_other_parameters(dependant)
        and not dependant.path_params
        and not dependant.body_params
    )


def _has_other_parameters(dependant: Dependant) -> bool:
    return bool(
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _answers_a_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except Exception:  # an annotation that does not resolve: not ours to serve
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def resolve(route: BaseRoute) -> _Direct | None:
    """The route, resolved for direct serving, or None if its shape is not one
    this module serves exactly as FastAPI does."""
    if not isinstance(route, APIRoute) or not route.methods:
        return None
    dependant = route.dependant
    endpoint = route.endpoint
    if (
        not inspect.iscoroutinefunction(endpoint)
        or not _answers_a_response(endpoint)
        or _has_other_parameters(dependant)
        or len(dependant.body_params) > 1
        or not all(_plain_dependency(d) for d in dependant.dependencies)
        or any(d.name is None for d in dependant.dependencies)
    ):
        return None
    body_name = body_field = None
    body_required = False
    if dependant.body_params:
        param = dependant.body_params[0]
        body_field = route.body_field
        info = param.field_info
        if (
            body_field is None
            or body_field.name != param.name
            or getattr(info, "embed", False)
            or getattr(info, "media_type", "application/json") != "application/json"
            or type(info) is not params.Body
            or info.validate_default
        ):
            return None
        body_name = param.name
        body_required = info.is_required()
    path_fields = tuple((f.name, f.alias, f) for f in dependant.path_params)
    if set(route.param_convertors) != {key for _, key, _ in path_fields}:
        return None
    return _Direct(
        route=route,
        methods=frozenset(route.methods),
        regex=route.path_regex,
        convertors=dict(route.param_convertors),
        path_fields=path_fields,
        dependencies=tuple(
            (str(d.name), typing.cast(Callable[[Request], Any], d.call))
            for d in dependant.dependencies
        ),
        request_name=dependant.request_param_name,
        body_name=body_name,
        body_field=body_field,
        body_required=body_required,
        endpoint=endpoint,
    )


class _Fallback(Exception):
    """The request goes to FastAPI after all (its body replayed)."""


class DirectRoutes:
    """Serves the direct routes among ``routes`` (in the router's order: a route
    that an earlier one would answer is left to the router), everything else
    through ``stack``, the app's own middleware stack and router."""

    def __init__(self, app: FastAPI, stack: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.stack = stack
        self.by_method: dict[str, list[_Direct]] = {}
        earlier: list[BaseRoute] = []
        for route in routes:
            direct = resolve(route)
            if direct is not None and not any(_may_answer(other, direct) for other in earlier):
                for method in direct.methods:
                    self.by_method.setdefault(method, []).append(direct)
            earlier.append(route)

    @property
    def served(self) -> list[APIRoute]:
        """The routes served directly (each once)."""
        seen: dict[int, APIRoute] = {}
        for directs in self.by_method.values():
            for direct in directs:
                seen.setdefault(id(direct.route), direct.route)
        return list(seen.values())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        directs = self.by_method.get(scope.get("method", "")) if scope["type"] == "http" else None
        if directs and not self.app.dependency_overrides:
            path = get_route_path(scope)
            for direct in directs:
                match = direct.regex.match(path)
                if match is not None:
                    await self._serve(direct, match.groupdict(), scope, receive, send)
                    return
        await self.stack(scope, receive, send)

    async def _serve(
        self,
        direct: _Direct,
        raw_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        messages: list[Message] = []
        try:
            kwargs = await self._arguments(direct, raw_params, scope, receive, messages)
        except _Fallback:
            await self.stack(scope, _replaying(messages, receive), send)
            return
        except Exception as error:  # reading the body (e.g. over the size limit)
            await self._answer_error(error, scope, receive, send)
            return
        scope["app"] = self.app
        scope["route"] = direct.route
        scope["endpoint"] = direct.endpoint
        scope["path_params"] = {
            key: direct.convertors[key].convert(value) for key, value in raw_params.items()
        }
        request = Request(scope, receive)
        try:
            for name, dependency in direct.dependencies:
                kwargs[name] = await dependency(request)
            if direct.request_name is not None:
                kwargs[direct.request_name] = request
            response: Response = await direct.endpoint(**kwargs)
        except Exception as error:
            await self._answer_error(error, scope, receive, send, request)
            return
        await response(scope, receive, send)

    async def _arguments(
        self,
        direct: _Direct,
        raw_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        messages: list[Message],
    ) -> dict[str, Any]:
        """The endpoint's path and body arguments, validated as FastAPI validates
        them; ``_Fallback`` for anything that is not plainly valid."""
        kwargs: dict[str, Any] = {}
        for name, key, field in direct.path_fields:
            value = direct.convertors[key].convert(raw_params[key])
            validated, errors = field.validate(value, {}, loc=("path", key))
            if errors:
                raise _Fallback
            kwargs[name] = validated
        if direct.body_name is None:
            return kwargs
        body = await _read_body(receive, messages)
        if not body:
            if direct.body_required:
                raise _Fallback
            kwargs[direct.body_name] = copy.deepcopy(direct.body_field.default)
            return kwargs
        if not _declares_json(scope):
            raise _Fallback
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            # Not JSON, or nested past the parser's depth: FastAPI answers it its own
            # way (the position of the error; a 400 for what its parser cannot read).
            raise _Fallback from None
        validated, errors = direct.body_field.validate(decoded, {}, loc=("body",))
        if errors:
            raise _Fallback
        kwargs[direct.body_name] = validated
        return kwargs

    async def _answer_error(
        self,
        error: Exception,
        scope: Scope,
        receive: Receive,
        send: Send,
        request: Request | None = None,
    ) -> None:
        """The app's own handler's answer to ``error``, as its exception
        middleware gives it; an error no handler takes is a plain 500 (as the
        server-error middleware answers it) and raised again."""
        handlers = self.app.exception_handlers
        handler: Any = None
        if isinstance(error, HTTPException):
            handler = handlers.get(error.status_code)
        if handler is None:
            handler = _lookup_exception_handler(self._handlers(), error)
        if handler is None:
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise error
        scope.setdefault("app", self.app)
        request = request or Request(scope, receive)
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, error)
        else:
            response = await run_in_threadpool(handler, request, error)
        await response(scope, receive, send)

    def _handlers(self) -> dict[Any, Any]:
        return {
            key: handler
            for key, handler in self.app.exception_handlers.items()
            if isinstance(key, type)
        }


def _may_answer(other: BaseRoute, direct: _Direct) -> bool:
    """Whether ``other``, tried before ``direct``, could answer one of its requests."""
    methods = getattr(other, "methods", None)
    if methods is not None and not methods & direct.methods:
        return False
    path = getattr(other, "path_format", None)
    if not isinstance(path, str) or not hasattr(other, "path_regex"):
        return True  # a mount or an included router: not ours to second-guess
    return _overlap(path, direct.route.path_format)


def _overlap(first: str, second: str) -> bool:
    """Whether some path matches both templates: segment by segment, a segment
    with a parameter matches anything, a literal only itself (a parameter that
    may span segments, ``{name:path}``, matches everything)."""
    if ":path}" in first or ":path}" in second:
        return True
    ones, twos = first.split("/"), second.split("/")
    return len(ones) == len(twos) and all(
        a == b or "{" in a or "{" in b for a, b in zip(ones, twos, strict=True)
    )


def _declares_json(scope: Scope) -> bool:
    """``Content-Type: application/json`` exactly (the first one, as FastAPI reads
    it); any other spelling goes to FastAPI, which reads it its own way."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.strip().lower() == b"application/json"
    return False


async def _read_body(receive: Receive, messages: list[Message]) -> bytes:
    """The whole body, each message kept in ``messages`` for a replay."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            raise _Fallback  # the client went away: FastAPI answers that its way
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive``, after the messages already taken from it."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
