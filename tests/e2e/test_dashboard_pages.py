"""The dashboard per role, in headless Chromium (Debian's package through
Playwright's ``executable_path``), over the demo marketplace of
``services/projections/demo.py`` fed through the embedded consumer.

Each role sees its own content and nobody else's; no page shows an internal
position or a raw UUID; times read like a person wrote them, in the viewer's
zone; every card opens its interview's timeline; the keyboard reaches and
opens a card; both widths render without the page scrolling sideways.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.auth import mint_token
from services.projections.demo import DemoLog, d, demo_log, serve
from tests.conftest import TEST_SECRET
from tests.e2e.browser import CHROMIUM, FLAGS, browser_or_skip

pytestmark = pytest.mark.e2e

NOW = datetime.now(UTC)
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
POSITION_TEXT = re.compile(r"#\d+|\bposition\b", re.I)
ISO_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
# "Tue 8 Dec, 15:00 CET" (with the year when it is not this one)
HUMAN_TIME = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"( \d{4})?, \d{2}:\d{2} (CET|CEST)$"
)
NORTHWIND_FREELANCERS = {
    "ana.souza", "li.wei", "marta.kowalska", "omar.haddad", "jon.berg", "priya.nair",
    "tom.okafor", "sara.lind", "kenji.mori", "lucas.brandt", "elena.rossi", "david.kim",
    "nina.petrova",
}  # fmt: skip


@pytest.fixture(scope="module")
def demo() -> DemoLog:
    return demo_log(NOW)


@pytest.fixture(scope="module")
def base(demo: DemoLog) -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp), demo.events(), auth_secret=TEST_SECRET) as (url, _),
    ):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


Open = Callable[..., Any]


@pytest.fixture
def open_as(base: str, browser: Any) -> Iterator[Open]:
    """``open_as(user, role, path="/dashboard", width=1280)``: a page signed in
    as that user, in Europe/Berlin, with every request to another origin refused."""
    contexts: list[Any] = []
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def open_page(user: str, role: str, path: str = "/dashboard", width: int = 1280) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": 900}, timezone_id="Europe/Berlin"
        )
        contexts.append(context)
        context.route("**/*", only_local)
        page = context.new_page()
        page.goto(f"{base}/dashboard?access_token={mint_token(TEST_SECRET, user, role)}")
        page.wait_for_selector("#live.on", timeout=10_000)
        if path != "/dashboard":
            page.goto(base + path)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert outside == [], f"the dashboard fetched from outside: {outside}"


def card_names(page: Any, scope: str = "#view") -> list[str]:
    return [n.strip() for n in page.locator(f"{scope} .card .name").all_inner_texts()]


def interview_id(demo: DemoLog, freelancer: str, client: str = "northwind") -> str:
    for _, iid, _, _, c, f, _ in demo.steps:
        if c == client and f == freelancer:
            return str(iid)
    raise KeyError(freelancer)


def assert_reads_like_a_person_wrote_it(page: Any) -> None:
    text = page.inner_text("body")
    assert not UUID_TEXT.search(text), UUID_TEXT.search(text)
    assert not POSITION_TEXT.search(text), POSITION_TEXT.search(text)
    assert not ISO_TEXT.search(text), ISO_TEXT.search(text)


# ------------------------------------------------------------------ clients


def test_a_client_sees_a_board_per_job_with_only_their_candidates(open_as: Open) -> None:
    page = open_as("northwind", "client")
    assert page.inner_text("h1") == "My Jobs"
    jobs = page.locator("#jobs section.job h3").all_inner_texts()
    assert sorted(jobs) == ["Backend api engineer", "Brand refresh designer", "Mobile app audit"]
    on_boards = card_names(page, "#jobs")
    assert sorted(on_boards) == sorted(NORTHWIND_FREELANCERS)
    assert "ravi.shah" not in page.inner_text("body")  # acme-studio's candidate
    brand = page.locator("section.job", has_text="Brand refresh designer")
    columns = brand.locator(".col h4").all_inner_texts()
    assert [c.split()[0] for c in columns] == [
        "INVITED",
        "ACCEPTED",
        "IN",
        "OFFER",
        "HIRED",
        "CLOSED",
    ]
    li = brand.locator(".c-accepted .card")
    assert li.locator(".name").inner_text() == "li.wei"
    assert li.locator(".wait").inner_text() == "Waiting on you"
    ana = brand.locator(".c-invited .card")
    assert ana.locator(".wait").inner_text() == "Waiting on the freelancer"
    assert ana.locator(".due time").inner_text() == "Invitation expires in 5 h"
    kenji = page.locator("#jobs .card", has_text="kenji.mori")
    assert kenji.locator(".due time").inner_text() == "Invitation: 4 days left"
    meets = page.locator("#jobs .card", has_text="marta.kowalska").locator("time").last
    assert HUMAN_TIME.match(meets.inner_text().split(" · ")[0]), meets.inner_text()
    assert_reads_like_a_person_wrote_it(page)


def test_a_client_sees_what_waits_on_them_the_next_7_days_and_what_expires_soon(
    open_as: Open,
) -> None:
    page = open_as("northwind", "client")
    # waiting longest first: marta (started 4 days ago), li and lucas (2 days), tom, nina
    assert card_names(page, "#yours") == [
        "marta.kowalska", "li.wei", "lucas.brandt", "tom.okafor", "nina.petrova",
    ]  # fmt: skip
    yours = page.locator("#yours .card")
    li, marta = (" ".join(yours.nth(i).inner_text().split()) for i in (1, 0))
    assert "NEXT Start the interview or make an offer · waiting 2 days" in li
    assert "NEXT Hold the interview, then make an offer" in marta
    # nina: in 2 h, marta: tomorrow, tom: moved to in 3 days; none of acme's or globex's
    assert card_names(page, "#upcoming") == ["nina.petrova", "marta.kowalska", "tom.okafor"]
    # ana's invitation (5 h), omar's offer (30 h), david's invitation (40 h); kenji's (4 days) not
    assert card_names(page, "#expiring") == ["ana.souza", "omar.haddad", "david.kim"]
    offer = page.locator("#expiring .card", has_text="omar.haddad")
    assert "Offer expires in 30 h" in offer.inner_text()
    assert "€4,800 fixed" in offer.inner_text()


def test_a_client_with_no_interviews_sees_nothing_of_anyone_else(
    open_as: Open, demo: DemoLog
) -> None:
    page = open_as("stranger-co", "client")
    assert page.locator(".card").count() == 0
    text = page.inner_text("body")
    assert "No candidates yet" in text
    assert not any(name in text for name in NORTHWIND_FREELANCERS)
    other = open_as(
        "stranger-co", "client", f"/dashboard/interviews/{interview_id(demo, 'li.wei')}"
    )
    assert other.inner_text("h1") == "Not found"
    assert "li.wei" not in other.inner_text("body")


# ------------------------------------------------------------------ freelancers


def test_a_freelancer_sees_what_to_answer_and_by_when_and_only_their_interviews(
    open_as: Open,
) -> None:
    page = open_as("ana.souza", "freelancer")
    assert page.inner_text("h1") == "Interviews"
    answer = page.locator("#answer .card")
    assert card_names(page, "#answer") == ["Brand refresh designer", "Data pipeline"]
    assert "Invitation from northwind" in answer.nth(0).inner_text()
    assert answer.nth(0).locator(".due time").inner_text() == "Invitation expires in 5 h"
    due = answer.nth(0).locator(".due time").get_attribute("title")
    assert due is not None and HUMAN_TIME.match(due), due
    assert "Offer from acme-studio" in answer.nth(1).inner_text()
    assert "US$6,200 fixed" in answer.nth(1).inner_text()
    assert card_names(page, "#upcoming") == ["Logo sprint"]
    assert card_names(page, "#closed") == ["Landing page"]
    text = page.inner_text("body")
    for someone_else in NORTHWIND_FREELANCERS - {"ana.souza"} | {"ravi.shah"}:
        assert someone_else not in text
    assert "Mobile app audit" not in text and "Backend api engineer" not in text
    assert_reads_like_a_person_wrote_it(page)


def test_a_freelancer_cannot_open_another_freelancers_interview(
    open_as: Open, demo: DemoLog
) -> None:
    page = open_as(
        "ana.souza", "freelancer", f"/dashboard/interviews/{interview_id(demo, 'omar.haddad')}"
    )
    assert page.inner_text("h1") == "Not found"
    assert "omar.haddad" not in page.inner_text("body")


# ------------------------------------------------------------------ auditors, admins


def test_an_auditor_sees_the_platform_figures_and_the_consumers_health(
    open_as: Open, base: str
) -> None:
    page = open_as("audit-team", "auditor")
    assert page.inner_text("h1") == "Platform"
    assert page.inner_text("#count-invited") == "3"
    assert page.inner_text("#count-hired") == "2"
    assert page.inner_text("#open") == "11" and page.inner_text("#total") == "17"
    assert page.inner_text("#funnel-hired") == "2"
    assert page.inner_text("#consumer-lag") == "Up to date"
    assert page.inner_text("#consumer-parked") == "0"
    assert page.inner_text("#consumer-dead") == "0"
    assert page.locator("#recent li").count() == 15
    assert_reads_like_a_person_wrote_it(page)
    # the same figures as JSON, for auditors and admins only
    auditor = {"Authorization": f"Bearer {mint_token(TEST_SECRET, 'audit-team', 'auditor')}"}
    client = {"Authorization": f"Bearer {mint_token(TEST_SECRET, 'northwind', 'client')}"}
    health = httpx.get(f"{base}/views/consumer", headers=auditor)
    assert health.status_code == 200
    assert health.json() == {
        "group": "projections",
        "source": "event store",
        "lag": 0,
        "parked": 0,
        "dead_lettered": 0,
    }
    refused = httpx.get(f"{base}/views/consumer", headers=client)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


# ------------------------------------------------------------------ interview page


def test_every_card_opens_its_interviews_timeline(open_as: Open, demo: DemoLog) -> None:
    page = open_as("northwind", "client")
    page.locator("#jobs .card", has_text="tom.okafor").click()
    page.wait_for_selector("ol.timeline")
    assert page.url.split("?")[0].endswith(
        f"/dashboard/interviews/{interview_id(demo, 'tom.okafor')}"
    )
    assert page.inner_text("h1").startswith("tom.okafor · Backend api engineer")
    entries = page.locator("ol.timeline li .what b").all_inner_texts()
    assert entries[:3] == [
        "Invited tom.okafor by the client",
        "Invitation accepted",
        "Interview started by the client",
    ]
    assert entries[3].startswith("Moved by the client to ")
    assert HUMAN_TIME.match(entries[3].removeprefix("Moved by the client to ")), entries[3]
    assert "A clash with a client workshop." in page.inner_text("ol.timeline")
    for when in page.locator("ol.timeline .when time").all_inner_texts():
        assert HUMAN_TIME.match(when), when
    assert_reads_like_a_person_wrote_it(page)


def test_an_auditor_opens_any_interview_and_nobody_opens_a_made_up_one(
    open_as: Open, demo: DemoLog
) -> None:
    page = open_as(
        "audit-team", "auditor", f"/dashboard/interviews/{interview_id(demo, 'priya.nair')}"
    )
    entries = page.locator("ol.timeline li .what b").all_inner_texts()
    assert entries[-2:] == ["Offer extended: €85 an hour", "Offer accepted: hired"]
    assert_reads_like_a_person_wrote_it(page)
    for path in ("/dashboard/interviews/not-an-id", "/dashboard/interviews/" + "0" * 32):
        missing = open_as("audit-team", "auditor", path)
        assert missing.inner_text("h1") == "Not found"


def test_the_tz_parameter_shows_times_in_that_zone(open_as: Open, demo: DemoLog) -> None:
    path = f"/dashboard/interviews/{interview_id(demo, 'marta.kowalska')}"
    berlin = open_as("northwind", "client", path)
    tokyo = open_as("northwind", "client", path + "?tz=Asia/Tokyo")
    meeting = berlin.locator("dd", has_text=" min").inner_text()
    assert re.search(r"\d{2}:\d{2} CET", meeting), meeting
    assert re.search(r"\d{2}:\d{2} GMT\+9", tokyo.locator("dd", has_text=" min").inner_text())


# ------------------------------------------------------------------ keyboard, widths


def test_the_keyboard_reaches_the_first_card_and_enter_opens_it(open_as: Open) -> None:
    page = open_as("northwind", "client")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('card')"):
            break
    else:
        pytest.fail("ten Tabs did not reach a card")
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    first = card_names(page, "#yours")[0]
    assert label.startswith(f"{first}, In progress, Waiting on you")
    page.keyboard.press("Enter")
    page.wait_for_selector("ol.timeline")
    assert "/dashboard/interviews/" in page.url
    assert page.inner_text("h1").startswith(first)


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize(
    ("user", "role"),
    [("northwind", "client"), ("ana.souza", "freelancer"), ("audit-team", "auditor")],
)
def test_each_page_fits_the_width_without_scrolling_sideways(
    open_as: Open, demo: DemoLog, user: str, role: str, width: int
) -> None:
    if role == "freelancer":
        theirs = interview_id(demo, "ana.souza", "acme-studio")
    else:
        theirs = interview_id(demo, "omar.haddad")
    detail = f"/dashboard/interviews/{theirs}"
    for path in ("/dashboard", detail):
        page = open_as(user, role, path, width=width)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} as {role} at {width}px is {overflow}px too wide"
        assert page.locator(".card, .tile, ol.timeline").first.is_visible()


def test_the_interview_page_and_the_board_follow_new_events_live(
    browser: Any, tmp_path: Path
) -> None:
    demo = demo_log(NOW)
    events = demo.events()
    demo.interview("brand-refresh-designer", "northwind", "ana.souza", ("accepted", d(0), {}))
    accepted = demo.events()[-1]
    assert accepted.type == "interview.accepted" and accepted.position == len(events) + 1
    with serve(tmp_path, events, auth_secret=TEST_SECRET) as (url, publish):
        context = browser.new_context(timezone_id="Europe/Berlin")
        try:
            token = mint_token(TEST_SECRET, "northwind", "client")
            board = context.new_page()
            board.goto(f"{url}/dashboard?access_token={token}")
            board.wait_for_selector("#live.on")
            page = context.new_page()
            page.goto(f"{url}/dashboard/interviews/{accepted.interview_id}")
            page.wait_for_selector("#live.on")
            assert page.locator("ol.timeline li").count() == 1
            brand = board.locator("section.job", has_text="Brand refresh designer")
            assert brand.locator(".c-accepted .card").count() == 1  # li.wei

            publish(accepted)
            page.wait_for_selector("ol.timeline li:nth-child(2)", timeout=10_000)
            assert page.locator("ol.timeline li .what b").nth(1).inner_text() == (
                "Invitation accepted"
            )
            assert "Waiting on you: start the interview" in page.inner_text(".facts")
            brand.locator(".c-accepted .card", has_text="ana.souza").wait_for(timeout=10_000)
            assert brand.locator(".c-invited .card").count() == 0
        finally:
            context.close()


def test_ids_that_are_uuids_are_shown_as_short_names_never_whole(
    browser: Any, tmp_path: Path
) -> None:
    client, freelancer, job = (str(uuid.uuid4()) for _ in range(3))
    log = DemoLog(NOW)
    log.interview(job, client, freelancer, ("invited", d(1), {"expires_at": log.at(2)}))
    with serve(tmp_path, log.events(), auth_secret=TEST_SECRET) as (url, _):
        context = browser.new_context(timezone_id="Europe/Berlin")
        try:
            for user, role in ((client, "client"), (freelancer, "freelancer")):
                page = context.new_page()
                page.goto(f"{url}/dashboard?access_token={mint_token(TEST_SECRET, user, role)}")
                page.wait_for_selector("#view .card")
                text = page.inner_text("body")
                assert f"Job {job[:8]}" in text
                assert f"user {(freelancer if role == 'client' else client)[:8]}" in text
                assert_reads_like_a_person_wrote_it(page)
                page.click("#view .card")
                page.wait_for_selector("ol.timeline")
                assert_reads_like_a_person_wrote_it(page)
        finally:
            context.close()
