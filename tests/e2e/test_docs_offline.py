"""``/docs`` and ``/redoc`` work on a machine without internet: every service,
and ``interviewctl up``, serves Swagger UI and ReDoc from pinned local assets.

Headless Chromium (Debian's package, driven by Playwright) loads each page with
every request to a non-loopback host aborted, finds every operation of the
service's OpenAPI document on the page, and checks that nothing at all was
requested from another origin.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.browser import CHROMIUM, FLAGS, browser_or_skip
from tests.e2e.servers import SERVICES, build_app, serving

pytestmark = pytest.mark.e2e

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(params=SERVICES)
def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with serving(build_app(request.param, tmp_path, monkeypatch)) as base_url:
        yield base_url


class OfflineBrowser:
    """A page on which every request leaving loopback is aborted and recorded."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.requested: list[str] = []
        self.blocked: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requested.append(url)
        if urlparse(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    @property
    def elsewhere(self) -> list[str]:
        """Requests to any origin but the server's own (data: URLs stay in the page)."""
        return [
            u for u in self.requested if not u.startswith((self.base_url + "/", "data:", "blob:"))
        ]


@pytest.fixture
def browser() -> Iterator[Any]:
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            yield context
        finally:
            context.close()


def operations(base_url: str) -> set[tuple[str, str]]:
    document = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_swagger_ui_lists_every_operation_with_the_network_cut_off(
    served: str, browser: Any
) -> None:
    expected = operations(served)
    offline = OfflineBrowser(browser.new_page(), served)

    offline.page.goto(f"{served}/docs")
    offline.page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    shown = {
        tuple(operation)
        for operation in offline.page.eval_on_selector_all(
            ".opblock",
            """blocks => blocks.map(b => [
                b.querySelector('.opblock-summary-method').textContent.trim(),
                b.querySelector('.opblock-summary-path').getAttribute('data-path'),
            ])""",
        )
    }

    assert len(expected) > 5
    assert shown == expected
    assert offline.elsewhere == [], f"/docs requested another origin: {offline.elsewhere}"
    assert any(u.endswith("/swagger-ui-bundle.js") for u in offline.requested)


def test_redoc_renders_the_operations_with_the_network_cut_off(served: str, browser: Any) -> None:
    document = httpx.get(f"{served}/openapi.json", timeout=10).json()
    summaries = [
        op["summary"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS and op.get("summary")
    ]
    offline = OfflineBrowser(browser.new_page(), served)

    offline.page.goto(f"{served}/redoc")
    offline.page.wait_for_selector("[data-section-id^='operation/']", timeout=20_000)
    rendered = offline.page.locator("[data-section-id^='operation/']").count()
    text = offline.page.inner_text("body")

    assert rendered == len(operations(served))
    assert summaries and all(summary in text for summary in summaries)
    assert offline.elsewhere == [], f"/redoc requested another origin: {offline.elsewhere}"
    assert any(u.endswith("/redoc.standalone.js") for u in offline.requested)
