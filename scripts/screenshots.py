#!/usr/bin/env python3
"""Takes the dashboard screenshots in docs/screenshots/ (PNG, 1280 and 390 px wide).

Seeds the demo marketplace (``services/projections/demo.py``: three clients,
every interview state, deadlines and meetings relative to now), serves the
projections app on SQLite in a temporary directory, and photographs each
role's page and one interview page in headless Chromium (Debian's package,
see scripts/chromium.sh). Nothing leaves the machine.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--tz Europe/Berlin]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.common.auth import mint_token  # noqa: E402
from services.projections.demo import demo_log, serve  # noqa: E402

SECRET = "screenshots-" + "s" * 32
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTHS = {"desktop": (1280, 900), "mobile": (390, 844)}
PAGES = [  # (file stem, user, role, what to open)
    ("client", "northwind", "client", "/dashboard"),
    ("freelancer", "ana.souza", "freelancer", "/dashboard"),
    ("auditor", "audit-team", "auditor", "/dashboard"),
    ("interview", "northwind", "client", "omar.haddad"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--tz", default="Europe/Berlin")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    now = datetime.now(UTC)
    events = demo_log(now).events()
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp), events, auth_secret=SECRET) as (base, _),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            for width_name, (width, height) in WIDTHS.items():
                for stem, user, role, target in PAGES:
                    context = browser.new_context(
                        viewport={"width": width, "height": height},
                        timezone_id=args.tz,
                        locale="en-GB",
                        device_scale_factor=1,
                    )
                    context.route(
                        "**/*",
                        lambda route: (
                            route.continue_()
                            if route.request.url.startswith(base)
                            else route.abort()
                        ),
                    )
                    page = context.new_page()
                    token = mint_token(SECRET, user, role)
                    page.goto(f"{base}/dashboard?access_token={token}")
                    page.wait_for_selector("#live.on", timeout=10_000)
                    if not target.startswith("/"):
                        page.click(f"#jobs .card:has-text('{target}')")
                        page.wait_for_selector("ol.timeline", timeout=10_000)
                        page.wait_for_selector("#live.on", timeout=10_000)
                    path = args.out / f"{stem}-{width}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(f"{path} ({width_name})")
                    context.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
