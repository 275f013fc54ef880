"""The StreamLog dashboard in Chromium, served by the demo as `make demo` serves it.

Real streams are opened against the demo server and closed again, and the page's
numbers must follow, live; the charts must be drawn from a day of rows; nothing may go
to the console; and all of it in the admin's light and dark themes. The screenshots in
docs/images/ are taken here.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.servers import ROOT, LiveServer, demo_runserver

IMAGES = ROOT / "docs" / "images"
PASSWORD = "dashboard-test-password"
CLOCK = "/examples/basic/stream/"
DASHBOARD = "/admin/django_sse/streamlog/dashboard/"
# Milliseconds for a change to reach the page: the row is written a second after the
# stream opens, and the dashboard polls every two.
WAIT = 20_000


def fill() -> None:
    """A day of made-up stream logs in the demo's database, for the charts to draw.

    Run inside the demo server's settings (``manage.py shell``); seeded, so every run
    draws the same shapes relative to its own clock.
    """
    from django.contrib.auth.models import User
    from django.utils import timezone

    from django_sse.models import StreamLog

    User.objects.create_superuser("admin", password=PASSWORD)
    ada = User.objects.create_user("ada")
    grace = User.objects.create_user("grace")
    rng = random.Random(18)
    now = timezone.now()
    outcomes = ["client_disconnected"] * 60 + ["completed"] * 32 + ["error"] * 3
    outcomes += ["timeout"] * 2 + ["slow_consumer"] * 2 + ["shutdown"]
    models = ["gpt-4o-mini"] * 6 + ["llama-3.1-8b"] * 3 + ["claude-haiku"] * 2
    rows = []
    for minute in range(24 * 60):
        # Busier in the afternoon than at night, and never quite idle.
        rate = 1.5 + 1.2 * ((minute // 60 + 10) % 24 > 12) + rng.random()
        for _ in range(int(rate)):
            chat = rng.random() < 0.3
            started = now - timedelta(minutes=24 * 60 - minute, seconds=rng.random() * 60)
            duration = timedelta(seconds=rng.lognormvariate(2.5 if chat else 3.5, 1.2))
            rows.append(
                StreamLog(
                    view_name="chat:answer"
                    if chat
                    else rng.choice(["room:stream", "basic:stream"]),
                    path="/",
                    user=rng.choice([ada, grace, None]),
                    started_at=started,
                    ended_at=started + duration,
                    duration=duration,
                    outcome=rng.choice(outcomes),
                    model=rng.choice(models) if chat else "",
                    prompt_tokens=rng.randint(40, 900) if chat else None,
                    completion_tokens=rng.randint(20, 600) if chat else None,
                )
            )
    # Streams another server process holds open right now.
    for view, user, count in [("chat:answer", ada, 2), ("room:stream", grace, 3)]:
        rows += [
            StreamLog(view_name=view, path="/", user=user, started_at=now, outcome="open")
            for _ in range(count)
        ]
    StreamLog.objects.bulk_create(rows)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with demo_runserver(tmp_path_factory.mktemp("dashboard") / "db.sqlite3") as server:
        server.manage(
            "shell",
            "-c",
            "from tests.browser.test_dashboard import fill; fill()",
            env={"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
        )
        yield server


@contextlib.contextmanager
def clock_stream(demo: LiveServer) -> Iterator[None]:
    """One of the demo's clock streams, open until the block ends (anonymous, no cookies)."""
    with (
        httpx.Client(base_url=demo.url, timeout=20) as client,
        client.stream("GET", CLOCK) as response,
    ):
        assert response.status_code == 200
        yield


def log_in(page: Page, demo: LiveServer, next_path: str) -> None:
    page.goto(f"{demo.url}/admin/login/?next={next_path}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{demo.url}{next_path}")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_dashboard_follows_streams_live(
    browser: Browser, demo: LiveServer, scheme: Literal["light", "dark"]
) -> None:
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            problems.append(f"{message.type}: {message.text}")

    try:
        page.goto(f"{demo.url}/")
        page.click("text=live dashboard")
        log_in(page, demo, DASHBOARD)
        # From here on, the dashboard alone: the demo's index has no favicon, say.
        page.on("console", console)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("response", lambda r: problems.extend([f"{r.status}: {r.url}"] * (r.status >= 400)))
        page.reload()
        # Django 4.2's admin header is an h1 too: the page's own is in #content.
        expect(page.locator("#content h1")).to_have_text("Stream dashboard")
        expect(page.locator(".breadcrumbs")).to_contain_text("Stream logs")
        expect(page.locator("#content-main")).to_have_attribute("data-sse-state", "open")
        heading = page.locator("#sse-open-total")
        expect(heading).to_have_text("5 streams open right now")
        by_view = page.locator("#sse-open-by-view tbody td")
        expect(by_view).to_have_text(["room:stream", "3", "chat:answer", "2"])

        with clock_stream(demo):
            expect(heading).to_have_text("6 streams open right now", timeout=WAIT)
            with clock_stream(demo):
                expect(heading).to_have_text("7 streams open right now", timeout=WAIT)
                expect(by_view).to_have_text(
                    ["room:stream", "3", "basic:stream", "2", "chat:answer", "2"]
                )
                expect(page.locator("#sse-open-by-user tbody td")).to_contain_text(
                    ["grace", "3", "ada", "2", "anonymous", "2"]
                )
                charts(page, scheme)
                IMAGES.mkdir(exist_ok=True)
                page.screenshot(path=str(IMAGES / f"dashboard-{scheme}.png"), full_page=True)
            expect(heading).to_have_text("6 streams open right now", timeout=WAIT)
        expect(heading).to_have_text("5 streams open right now", timeout=WAIT)
        expect(by_view).to_have_text(["room:stream", "3", "chat:answer", "2"])
        assert problems == []
    finally:
        context.close()


def charts(page: Page, scheme: str) -> None:
    """Three charts with data, coloured by the admin's theme rather than SVG's black."""
    expect(page.locator("svg.sse-chart")).to_have_count(3)
    for chart, mark in enumerate(["rect.sse-bar", "circle.sse-point", "rect.sse-bar"]):
        marks = page.locator("svg.sse-chart").nth(chart).locator(mark)
        assert marks.count() > 100, f"chart {chart} has {marks.count()} {mark}"
    assert page.locator(".sse-legend").first.inner_text().startswith("Client disconnected")
    expect(page.locator("#sse-tokens tbody tr")).to_have_count(3)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(18, 18, 18)" if scheme == "dark" else "rgb(255, 255, 255)")
    fill = page.evaluate("getComputedStyle(document.querySelector('.sse-bar')).fill")
    tick = page.evaluate("getComputedStyle(document.querySelector('.sse-tick')).fill")
    assert fill not in {"rgb(0, 0, 0)", "none"}
    # The admin's own quiet text colour for this scheme (its value differs between
    # Django versions), not a colour of the dashboard's.
    quiet = page.evaluate(
        """() => {
            const probe = document.createElement("span");
            probe.style.color = "var(--body-quiet-color)";
            document.body.append(probe);
            const colour = getComputedStyle(probe).color;
            probe.remove();
            return colour;
        }"""
    )
    assert tick == quiet
    assert tick != ("rgb(102, 102, 102)" if scheme == "dark" else "rgb(208, 208, 208)")


def test_screenshots_are_kept_with_the_docs() -> None:
    """docs/operations.md shows both; this module writes them."""
    assert all(Path(IMAGES / f"dashboard-{s}.png").exists() for s in ("light", "dark"))
