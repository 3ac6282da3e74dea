"""A stand-in for the interviews service's internal key API (DESIGN, Privacy), over
``InMemoryKeys``, served for real by uvicorn on 127.0.0.1: what a consumer's
``HttpKeyService`` talks to in tests. It follows the contract exactly:

- ``Authorization: Bearer <JWT>`` with role ``service``: none or a bad token 401,
  another role 403; every answer ``Cache-Control: no-store``; errors ``{code, detail}``;
- ``GET /internal/keys/{key_id}`` 200 ``{key_id, key}`` (base64url, 32 bytes),
  410 ``key_erased``, 404 ``key_not_found``, 503 while ``down``;
- ``GET /internal/erasures?service=NAME`` 200 ``{items: [{id, subject_id, key_ids,
  keys_destroyed_at}]}`` (what NAME has not reported done);
- ``POST /internal/erasures/{id}/done`` ``{service}`` 204 (idempotent), 404 unknown id.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.common.auth import AuthError, decode_token
from services.common.privacy import InMemoryKeys


@dataclass
class KeyApiState:
    keys: InMemoryKeys
    secret: str
    down: bool = False
    delay_seconds: float = 0.0
    requests: list[str] = field(default_factory=list)


class DoneRequest(BaseModel):
    service: str


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "detail": detail}, status_code=status, headers={"Cache-Control": "no-store"}
    )


def key_api(state: KeyApiState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        state.requests.append(f"{request.method} {request.url.path}")
        if state.delay_seconds:
            time.sleep(state.delay_seconds)
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "unauthorized", "a bearer token is required")
        try:
            principal = decode_token(state.secret, header.removeprefix("Bearer "))
        except AuthError as error:
            return _error(401, "unauthorized", str(error))
        if principal.role != "service":
            return _error(403, "forbidden", "internal key API: services only")
        if state.down:
            return _error(503, "unavailable", "the key store's database is down")
        response: Response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/internal/keys/{key_id}")
    def get_key(key_id: str) -> Any:
        if key_id in state.keys.erased:
            return _error(410, "key_erased", f"key {key_id} was erased")
        if key_id not in state.keys.keys:
            return _error(404, "key_not_found", f"no key {key_id}")
        raw = state.keys.keys[key_id]
        return {"key_id": key_id, "key": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}

    @app.get("/internal/erasures")
    def pending(service: str) -> Any:
        return {
            "items": [
                {
                    "id": task.id,
                    "subject_id": task.subject_id,
                    "key_ids": list(task.key_ids),
                    "keys_destroyed_at": task.keys_destroyed_at.isoformat(),
                }
                for task in state.keys.pending_erasures(service)
            ]
        }

    @app.post("/internal/erasures/{erasure_id}/done", response_class=Response)
    def done(erasure_id: str, body: DoneRequest) -> Response:
        if erasure_id not in state.keys.erasures:
            return _error(404, "not_found", f"no erasure {erasure_id}")
        state.keys.erasure_done(erasure_id, body.service)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Runs ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the key API double did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
