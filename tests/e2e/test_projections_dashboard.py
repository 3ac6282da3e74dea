"""The dashboard in a real browser: headless Chromium (Debian's package) driven
by Playwright. The page loads, a command goes to the interviews service, the
event flows through the embedded consumer, and the numbers on the page change
without a reload (server-sent events). Nothing is fetched from outside.

Chromium: ``scripts/chromium.sh`` installs and checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.runner.embedded import embedded_runner
from services.interviews.bootstrap import InterviewsContainer
from services.interviews.bootstrap import create_app as create_interviews_app
from services.interviews.feed import InterviewEventFeed, wake_on_interview_events
from services.interviews.settings import InterviewsSettings
from services.projections.bootstrap import ProjectionsContainer, consumer_spec
from services.projections.bootstrap import create_app as create_projections_app
from services.projections.settings import ProjectionsSettings
from tests.conftest import TEST_SECRET
from tests.e2e.browser import CHROMIUM, FLAGS, browser_or_skip
from tests.e2e.servers import serving
from tests.jobs import invite

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[str, TestClient]]:
    """Embedded default: interviews on SQLite, the projections consumer reading
    the event store's log in-process, the projections app on a real port."""

    interviews = InterviewsContainer(
        InterviewsSettings(
            database_url=None,
            kafka_bootstrap_servers=None,
            data_dir=tmp_path,
            auth_secret=TEST_SECRET,
        )  # fmt: skip
    )
    app = interviews.interviews()
    views = ProjectionsContainer(
        ProjectionsSettings(
            database_url=None,
            kafka_bootstrap_servers=None,
            data_dir=tmp_path,
            auth_secret=TEST_SECRET,
            stream_interval_s=0.05,
        ),
        key_service=interviews.key_store(),
    )
    runner = embedded_runner(
        consumer_spec(views),
        InterviewEventFeed(app).read,
        wake_on_interview_events(app),
        poll_timeout=0.2,
    ).start()
    try:
        with (
            serving(create_projections_app(views)) as url,
            TestClient(create_interviews_app(interviews)) as commands,
        ):
            yield url, commands
    finally:
        runner.stop()
        runner.join(10)
        views.close()
        interviews.close()


def test_the_dashboard_changes_live_when_a_command_is_sent(
    platform: tuple[str, TestClient], token: Callable[[str, str], dict[str, str]]
) -> None:
    """The auditor's figures and the client's board move without a reload."""
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    base, commands = platform
    client, freelancer = token("client-1", "client"), token("fl-1", "freelancer")
    outside: list[str] = []

    def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(base):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    def text(page: Any, element: str) -> str:
        return str(page.text_content(f"#{element}")).strip()

    def wait_text(page: Any, element: str, value: str) -> None:
        page.wait_for_function(
            "([id, v]) => (document.getElementById(id) || {}).textContent?.trim() === v",
            arg=[element, value],
            timeout=10_000,
        )

    def signed_in(browser: Any, user: str, role: str) -> Any:
        raw = token(user, role)["Authorization"].split()[1]
        context = browser.new_context()
        context.route("**/*", only_local)
        page = context.new_page()
        page.goto(f"{base}/dashboard?access_token={raw}")
        assert page.url == f"{base}/dashboard"  # the token moved into a cookie
        wait_text(page, "live", "live")
        return page

    with sync_playwright() as p:
        # One context (cookie jar) per user: the auditor and the client side by side.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            auditor = signed_in(browser, "audit-1", "auditor")
            assert text(auditor, "count-invited") == "0" and text(auditor, "total") == "0"
            board = signed_in(browser, "client-1", "client")
            assert board.locator("#jobs .card").count() == 0

            invited = invite(commands, client, "fl-1", "job-7")
            wait_text(auditor, "count-invited", "1")
            assert text(auditor, "funnel-invited") == "1"
            assert "Invited" in text(auditor, "recent")
            board.wait_for_selector("#jobs .c-invited .card")
            card = board.locator("#jobs .c-invited .card")
            assert card.locator(".name").inner_text() == "fl-1"
            assert card.locator(".wait").inner_text() == "Waiting on the freelancer"

            path = f"/interviews/{invited['id']}"
            assert commands.post(f"{path}/accept", headers=freelancer).status_code == 200
            wait_text(auditor, "count-accepted", "1")
            assert text(auditor, "count-invited") == "0"
            assert text(auditor, "median-hire") == "–"
            board.wait_for_selector("#jobs .c-accepted .card .wait:text('Waiting on you')")

            offer = {"amount": "900", "currency": "EUR", "rate_type": "fixed"}
            assert commands.post(f"{path}/offer", json=offer, headers=client).status_code == 200
            assert commands.post(f"{path}/offer/accept", headers=freelancer).status_code == 200
            wait_text(auditor, "count-hired", "1")
            assert text(auditor, "funnel-hired") == "1" and text(auditor, "rate-hired") == "100.0%"
            assert text(auditor, "median-hire") != "–"
            board.wait_for_selector("#jobs .c-hired .card")
            assert board.locator("#jobs .c-invited .card").count() == 0
        finally:
            browser.close()
    assert outside == [], f"the dashboard fetched from outside: {outside}"
