"""The ceiling for HTTP commands on this machine (B1): a FastAPI endpoint that
does nothing, served by uvicorn exactly as ``interviewctl serve interviews``
serves the API (WORKERS processes, like ``--workers``)."""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    job_id: str | None = None


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/noop")
def noop(body: Body | None = None) -> dict[str, object]:
    """Sync like the command routes, so it goes through the same thread pool."""
    return {"id": "00000000-0000-0000-0000-000000000000", "status": "ok", "version": 1}


if __name__ == "__main__":
    workers = int(os.environ.get("WORKERS", "1"))
    uvicorn.run(
        "bench.noop_app:app" if workers > 1 else app,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        log_level="warning",
        access_log=False,
        workers=workers if workers > 1 else None,
    )
