"""More than six EventSource streams from one page: HTTP/2 lifts the browser's limit.

Over HTTP/1.1 Chromium opens at most six connections per origin, so a seventh
EventSource waits until one closes (docs/deployment.md, "HTTP/1.1: six connections per
origin"). Browsers speak HTTP/2 only over TLS: hypercorn serves the test project with a
self-signed certificate made here, the page opens ten streams, and each must deliver
its first event while all ten are open, each response having come over ``h2``
(Chromium's own record of the protocol, through the DevTools protocol). The same page
over plain HTTP/1.1 shows the limit: the seventh stream waits for one of the six.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, Page

from tests.servers import LiveServer

pytestmark = pytest.mark.e2e

STREAMS = 10
# Chromium's connections per origin over HTTP/1.1.
HTTP1_LIMIT = 6

# Opens ``n`` EventSources to the idle stream (one "hello", then nothing) and counts the
# streams that have had their first event.
OPEN_STREAMS = """n => {
  window.hellos = 0;
  window.sources = [];
  for (let i = 0; i < n; i++) {
    const source = new EventSource(`/idle/?probe=h2-${i}-${Math.random()}`);
    source.onmessage = () => { window.hellos += 1; };
    window.sources.push(source);
  }
}"""


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def hypercorn(tls: tuple[Path, Path] | None) -> LiveServer:
    """hypercorn serving tests.asgi, over TLS (HTTP/2 by ALPN) or plain HTTP/1.1."""
    options = ["--certfile", str(tls[0]), "--keyfile", str(tls[1])] if tls else []

    def command(port: int) -> list[str]:
        app, bind = "tests.asgi:application", f"127.0.0.1:{port}"
        return [sys.executable, "-m", "hypercorn", app, "-b", bind, "--workers", "0", *options]

    return LiveServer("hypercorn", command=command, ready="Running on http")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with hypercorn(self_signed(tmp_path_factory.mktemp("tls"))) as server:
        yield server


@pytest.fixture
def tls_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def protocols(page: Page) -> dict[str, str]:
    """The protocol of each response the page gets from now on, by URL (Chromium's own
    record, through the DevTools protocol)."""
    seen: dict[str, str] = {}
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")

    def received(event: dict[str, Any]) -> None:
        response = event["response"]
        seen[response["url"]] = response.get("protocol", "")

    session.on("Network.responseReceived", received)
    return seen


def test_more_than_six_streams_from_one_page_over_http2(
    tls_server: LiveServer, tls_page: Page
) -> None:
    origin = tls_server.url.replace("http://", "https://")
    seen = protocols(tls_page)
    # Any page of the origin: the streams are opened from its script context.
    tls_page.goto(f"{origin}/static/django_sse/sse.js")
    tls_page.evaluate(OPEN_STREAMS, STREAMS)
    tls_page.wait_for_function(f"window.hellos === {STREAMS}")
    open_streams = tls_page.evaluate("window.sources.filter(s => s.readyState === 1).length")
    streams = {url: protocol for url, protocol in seen.items() if "/idle/" in url}
    assert open_streams == STREAMS
    assert len(streams) == STREAMS
    assert set(streams.values()) == {"h2"}, streams


def test_seventh_stream_waits_over_http1(browser: Browser) -> None:
    """The control: over HTTP/1.1 the seventh stream gets its event only once one of the
    six open ones has closed."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        with hypercorn(None) as server:
            page.goto(f"{server.url}/static/django_sse/sse.js")
            page.evaluate(OPEN_STREAMS, HTTP1_LIMIT + 1)
            page.wait_for_function(f"window.hellos === {HTTP1_LIMIT}")
            waiting = page.evaluate("window.sources.filter(s => s.readyState === 0).length")
            page.evaluate("window.sources[0].close()")
            page.wait_for_function(f"window.hellos === {HTTP1_LIMIT + 1}")
    finally:
        context.close()
    assert waiting == 1
