"""The demo behind Pushpin, started as `make demo-pushpin` starts it, in Chromium.

Django's runserver with DEMO_PUSHPIN_PORT set, and `manage.py sse_pushpin` in front of
it: the live room works across tabs, a message published from a terminal arrives
through Pushpin, and Django's stream logs show the streams were handed to Pushpin.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import room_works_across_tabs
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
    # The command has the same settings: it publishes straight to Pushpin, no polling.
    room_works_across_tabs(
        browser, f"{demo.url}/examples/room/pushpin/", "through Pushpin", demo.django.env
    )
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        outcomes = db.execute(
            "SELECT outcome FROM django_sse_streamlog WHERE path LIKE '%/room/pushpin/stream/'"
        ).fetchall()
    assert outcomes == [("held",), ("held",)]
