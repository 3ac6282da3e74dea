"""Which routes ``DirectRoutes`` serves itself: only those whose every
parameter it resolves as FastAPI does, and never one an earlier route would
answer; the rest, and every request while a dependency is overridden, reach
FastAPI unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp

from services.common.web import ApiError, Metrics, service_app
from services.interviews.entrypoints.direct_routes import DirectRoutes


class ThingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


async def caller(request: Request) -> str:
    who = request.headers.get("x-who")
    if not who:
        raise ApiError(401, "unauthorized", "say who you are")
    return who


router = APIRouter()


@router.post("/things/new")
async def new_thing(who: str = Depends(caller)) -> Response:
    return Response(f"new by {who}")


@router.post("/things/{thing_id}")
async def name_thing(thing_id: int, body: ThingRequest, who: str = Depends(caller)) -> Response:
    return Response(f"{thing_id} named {body.name} by {who}", status_code=201)


@router.post("/things/{thing_id}/mark")
async def mark_thing(thing_id: int, flag: str = "x") -> Response:  # a query parameter
    return Response(f"{thing_id} marked {flag}")


@router.put("/things/{thing_id}")
def replace_thing(thing_id: int) -> Response:  # not a coroutine
    return Response(f"{thing_id} replaced")


@pytest.fixture
def app() -> FastAPI:
    def front(app: FastAPI, stack: ASGIApp) -> ASGIApp:
        return DirectRoutes(app, stack, router.routes)

    app = service_app(
        title="Things",
        description="A service with a few routes.",
        lifespan=None,
        container=None,
        auth_secret="secret",
        metrics=Metrics("things"),
        unavailable=(),
        front=front,
    )
    app.include_router(router)
    return app


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def served(http: TestClient) -> set[tuple[str, str]]:
    front = http.app.middleware_stack.app  # type: ignore[attr-defined]
    assert isinstance(front, DirectRoutes)
    return {(m, r.path) for r in front.served for m in r.methods or ()}


def test_only_the_routes_it_resolves_exactly_and_that_nothing_earlier_answers(
    http: TestClient,
) -> None:
    assert http.post("/things/new", headers={"x-who": "ann"}).text == "new by ann"
    # /things/{thing_id} comes after the literal /things/new, which answers one
    # of its paths: left to the router, as is a query parameter or a sync endpoint.
    assert served(http) == {("POST", "/things/new")}


def test_a_route_served_directly_answers_as_the_framework_does(http: TestClient) -> None:
    refused = http.post("/things/new")
    assert (refused.status_code, refused.json()) == (
        401,
        {"code": "unauthorized", "detail": "say who you are"},
    )
    assert "x-request-id" in refused.headers and "traceparent" in refused.headers


def test_the_other_routes_still_reach_the_framework(http: TestClient) -> None:
    named = http.post("/things/7", json={"name": "seven"}, headers={"x-who": "bo"})
    assert (named.status_code, named.text) == (201, "7 named seven by bo")
    invalid = http.post("/things/7", json={"name": "seven", "x": 1}, headers={"x-who": "bo"})
    assert invalid.status_code == 422 and invalid.json()["code"] == "invalid_input"
    assert http.post("/things/7/mark?flag=y").text == "7 marked y"
    assert http.put("/things/7").text == "7 replaced"


def test_a_dependency_override_applies_to_a_route_served_directly(
    app: FastAPI, http: TestClient
) -> None:
    async def nobody(request: Request) -> str:
        return "nobody"

    app.dependency_overrides[caller] = nobody
    try:
        assert http.post("/things/new").text == "new by nobody"
    finally:
        app.dependency_overrides.clear()
    assert http.post("/things/new").status_code == 401
