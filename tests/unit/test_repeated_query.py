"""A query parameter given twice is refused: the framework would read the last
value and ignore the others (the generated-requests test found ``?deliveries=x&deliveries=5``
answered 200)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from services.common.web import Metrics, install_observability


def app() -> FastAPI:
    api = FastAPI()
    install_observability(api, Metrics("things"))

    @api.get("/things")
    def things(limit: Annotated[int, Query(ge=1)] = 10) -> dict[str, int]:
        return {"limit": limit}

    return api


def test_a_query_parameter_given_twice_is_refused_and_once_is_fine() -> None:
    with TestClient(app()) as http:
        assert http.get("/things?limit=5").json() == {"limit": 5}
        twice = http.get("/things?limit=abc&limit=5")
        assert twice.status_code == 422
        assert twice.json()["code"] == "invalid_input"
        assert "'limit' is given more than once" in twice.json()["detail"]
