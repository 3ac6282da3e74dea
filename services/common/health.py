"""``/healthz``, ``/readyz`` and ``/metrics``: the routes of every web service
(``health_router``), and for a process that has no web app (the relay, the
scheduler) a small threaded HTTP server beside its work (``HealthServer``).

``ready`` raises when the process cannot do its work; ``/readyz`` then answers
503 ``{code, detail}`` as the web services' do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .web import ERROR_RESPONSES, Metrics, error_response


class HealthServer:
    """Serves until ``shutdown()``; a daemon thread, so it never holds the process."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], None],
        host: str = "0.0.0.0",  # a container's probe comes from outside
    ) -> None:
        handler = _handler(registry, ready)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="health-server", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    registry: CollectorRegistry, ready: Callable[[], None]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server interface
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                try:
                    ready()
                except Exception as error:  # any failure means not ready
                    detail = f"not ready: {type(error).__name__}: {error}"
                    self._json(503, {"code": "unavailable", "detail": detail})
                else:
                    self._json(200, {"status": "ready"})
            else:
                self._json(404, {"code": "not_found", "detail": f"no such path {path}"})

        def _json(self, status: int, body: dict[str, str]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds are not worth a log line."""

    return Handler


def health_router(metrics: Metrics, ready_check: Callable[[Request], None]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:  # no I/O: no thread-pool hop
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: the dependencies answer",
        responses={503: ERROR_RESPONSES[503]},
    )
    def readyz(request: Request) -> JSONResponse:
        try:
            ready_check(request)
        except Exception as error:  # any failure means not ready
            return error_response(503, "unavailable", f"not ready: {type(error).__name__}: {error}")
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return metrics.render()

    return router
