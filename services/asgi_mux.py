"""Serve several FastAPI apps on one path space (for ``interviewctl up``).

Each service stays a complete app of its own (state, middleware, lifespan);
requests are dispatched by path prefix, lifespans run together, and the
operational endpoints are combined: ``/readyz`` is ready when every service
is, ``/openapi.json`` is the union of the services' documents (``/docs`` and
``/redoc`` show it; their assets come from the default app), and
``/metrics`` concatenates each service's registry under its own prefix.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from .common.docs import docs_pages


class PathMux:
    def __init__(
        self,
        routes: Sequence[tuple[str, FastAPI]],
        default: FastAPI,
        background: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = (),
    ) -> None:
        """``routes``: (path prefix, app), first match wins; ``default`` gets the rest.
        ``background``: context managers entered after every app has started
        (workers that need the apps' resources) and left before they stop.
        ``default`` starts first and stops last: the other apps' embedded consumers
        read its event store until they stop (closing it under them crashed SQLite)."""
        self.routes = list(routes)
        self.default = default
        self.background = list(background)
        self.apps: list[FastAPI] = []
        for _, app in [("", default), *self.routes]:
            if app not in self.apps:
                self.apps.append(app)

    def app_for(self, path: str) -> FastAPI:
        for prefix, app in self.routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return app
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] == "http":
            if path == "/openapi.json":
                await _send_json(send, self.openapi())
                return
            if path in ("/docs", "/redoc"):
                swagger, redoc = docs_pages("Interview platform")
                await (swagger if path == "/docs" else redoc)(scope, receive, send)
                return
            if path == "/readyz":
                await self._readyz(scope, send)
                return
            if path == "/metrics":
                await self._metrics(send)
                return
        await self.app_for(path)(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "Interview platform", "version": "1.0.0"},
            "paths": {},
            "components": {"schemas": {}},
        }
        for app in self.apps:
            doc = app.openapi()
            for path, item in doc.get("paths", {}).items():
                merged["paths"].setdefault(path, {}).update(item)
            for name, schema in doc.get("components", {}).get("schemas", {}).items():
                merged["components"]["schemas"].setdefault(name, schema)
            for name, scheme in doc.get("components", {}).get("securitySchemes", {}).items():
                merged["components"].setdefault("securitySchemes", {})[name] = scheme
        return merged

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with contextlib.AsyncExitStack() as stack:
            try:
                for app in self.apps:
                    await stack.enter_async_context(app.router.lifespan_context(app))
                for worker in self.background:
                    await stack.enter_async_context(worker())
            except Exception as error:  # reported to the server
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    async def _readyz(self, scope: Scope, send: Send) -> None:
        import httpx

        statuses: dict[str, Any] = {}
        ok = True
        for app in self.apps:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mux") as client:
                response = await client.get("/readyz")
            statuses[app.title] = response.json()
            ok = ok and response.status_code == 200
        body = {"status": "ready", "services": statuses}
        if not ok:
            body = {"code": "unavailable", "detail": "a service is not ready", "services": statuses}
        await _send_json(send, body, 200 if ok else 503)

    async def _metrics(self, send: Send) -> None:
        from prometheus_client import generate_latest

        chunks = []
        for app in self.apps:
            metrics = getattr(app.state, "metrics", None)
            if metrics is None:
                continue
            text = generate_latest(metrics.registry).decode()
            prefix = metrics.service + "_"
            chunks.append(_prefix_metrics(text, prefix))
        body = "".join(chunks).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _prefix_metrics(text: str, prefix: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[:7], line[7:]
            out.append(kind + prefix + rest)
        elif line and not line.startswith("#"):
            out.append(prefix + line)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


async def _send_json(send: Send, body: Any, status: int = 200) -> None:
    payload = json.dumps(body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})
