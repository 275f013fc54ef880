"""The demo behind Pushpin, started as `make demo-pushpin` starts it, in Chromium.

Django's runserver with DEMO_PUSHPIN_PORT set, and `manage.py sse_pushpin` in front of
it: the live room works across tabs, a message published from a terminal arrives
through Pushpin, and Django's stream logs show the streams were handed to Pushpin.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.pushpin import _port_is_free, pushpin_binary
from tests.servers import ROOT, LiveServer, demo_runserver, free_port

pytestmark = pytest.mark.e2e
DEMO = ROOT / "demo_project"


def pushpin_port() -> int:
    """A free port whose neighbours that the demo's settings give Pushpin's handler
    (PORT + 9 to PORT + 12) are free too."""
    for _ in range(100):
        port = free_port()
        if all(_port_is_free(port + n) for n in range(9, 13)):
            return port
    raise RuntimeError("no free port with free neighbours")


class DemoBehindPushpin:
    def __init__(self, database: Path) -> None:
        pushpin_binary()  # skips (or fails, where required) without Pushpin
        self.port = pushpin_port()
        self.env = {"DEMO_PUSHPIN_PORT": str(self.port)}
        self.django = demo_runserver(database, env=self.env)
        self.pushpin = LiveServer(
            "daphne",
            command=lambda port: [
                sys.executable,
                "manage.py",
                "sse_pushpin",
                f"--port={port}",
                f"--origin=127.0.0.1:{self.django.port}",
            ],
            ready="] started",
            cwd=DEMO,
            env={**self.django.env, **self.env},
            port=self.port,
        )
        self.url = self.pushpin.url

    def __enter__(self) -> DemoBehindPushpin:
        self.django.start()
        self.pushpin.start()
        self._wait_until_it_answers()
        return self

    def _wait_until_it_answers(self) -> None:
        """Pushpin's services say "started" before every link between them is up: the
        first requests can go unanswered. Nothing signals readiness, so ask until the
        index page comes back, each try bounded."""
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def __exit__(self, *exc_info: object) -> None:
        self.pushpin.stop()
        self.django.stop()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoBehindPushpin]:
    with DemoBehindPushpin(tmp_path / "db.sqlite3") as running:
        yield running


def test_the_live_room_works_across_tabs_through_pushpin(
    browser: Browser, demo: DemoBehindPushpin, tmp_path: Path
) -> None:
    context = browser.new_context()
    tabs = [context.new_page(), context.new_page()]
    try:
        for tab in tabs:
            tab.goto(f"{demo.url}/examples/room/pushpin/")
            expect(tab.locator("#room")).to_have_attribute("data-sse-state", "open")
        tabs[0].fill("#post [name=name]", "Ada")
        tabs[0].fill("#post [name=text]", "through Pushpin")
        tabs[0].click("#post button")
        for tab in tabs:
            expect(tab.locator("#messages li")).to_have_text(["Ada: through Pushpin"])
        # From a terminal, with the same settings: straight to Pushpin, no polling.
        subprocess.run(
            [sys.executable, "manage.py", "sse_publish", "feed", "Deploy finished"],
            cwd=DEMO,
            env={**os.environ, **demo.django.env},
            check=True,
            timeout=60,
        )
        for tab in tabs:
            expect(tab.locator("#feed li")).to_have_text(["Deploy finished"])
    finally:
        context.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        outcomes = db.execute(
            "SELECT outcome FROM django_sse_streamlog WHERE path LIKE '%/room/pushpin/stream/'"
        ).fetchall()
    assert outcomes == [("held",), ("held",)]
