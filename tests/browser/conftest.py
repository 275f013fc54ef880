"""Chromium driven by Playwright against a real uvicorn server.

Debian's chromium package provides the browser (Playwright's own download does not
work on our machines); the ``CHROMIUM`` environment variable points elsewhere if needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.needs import unavailable
from tests.servers import ROOT, LiveServer

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Per module, not per session: while sync Playwright runs, its event loop is the
# thread's running loop, and the async tests of other modules need that place.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        unavailable("chromium", f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer("uvicorn") as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context: no cookies or cache left by another test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def page_url(server: LiveServer, name: str, **query: str) -> str:
    return f"{server.url}/browser/page/{name}/?{urllib.parse.urlencode(query)}"


def seen(page: Page, name: str | None = None) -> list[dict[str, Any]]:
    """The sse:* DOM events the page has recorded, optionally only those named ``name``."""
    events: list[dict[str, Any]] = page.evaluate("window.seen")
    return [event for event in events if name is None or event["name"] == name]


def record_requests(page: Page, method: str | None = None, path: str = "") -> list[str]:
    """A list that fills with the URLs the page requests, of one method and/or path."""
    urls: list[str] = []

    def record(request: Request) -> None:
        if (method is None or request.method == method) and path in request.url:
            urls.append(request.url)

    page.on("request", record)
    return urls


def wait_closed(page: Page, element_id: str) -> None:
    page.wait_for_selector(f"#{element_id}[data-sse-state=closed]", state="attached")


def server_outcome(server: LiveServer, token: str) -> str | None:
    """How the server says the probed stream ended, waiting up to 10 s for it to end."""
    with urllib.request.urlopen(f"{server.url}/status/{token}/?wait=10", timeout=15) as reply:
        outcome: str | None = json.load(reply)["outcome"]
    return outcome


def room_works_across_tabs(browser: Browser, room: str, text: str, env: dict[str, str]) -> None:
    """The demo's live room at ``room``, in two tabs: a message posted in one appears in
    both, and so does an event `manage.py sse_publish` sends from a terminal (``env``:
    the demo's settings for that command)."""
    context = browser.new_context()
    tabs = [context.new_page(), context.new_page()]
    try:
        for tab in tabs:
            tab.goto(room)
            expect(tab.locator("#room")).to_have_attribute("data-sse-state", "open")
        tabs[0].fill("#post [name=name]", "Ada")
        tabs[0].fill("#post [name=text]", text)
        tabs[0].click("#post button")
        for tab in tabs:
            expect(tab.locator("#messages li")).to_have_text([f"Ada: {text}"])
        subprocess.run(
            [sys.executable, "manage.py", "sse_publish", "feed", "Deploy finished"],
            cwd=ROOT / "demo_project",
            env={**os.environ, **env},
            check=True,
            timeout=60,
        )
        for tab in tabs:
            expect(tab.locator("#feed li")).to_have_text(["Deploy finished"])
    finally:
        context.close()
