"""Pushpin mode in-process: its setting, its checks, and the answers Pushpin gets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, override_settings

from django_sse.broadcast import _pushpin, apublish
from django_sse.checks import check_deployment
from django_sse.protocol import EventParser
from tests.broadcast.test_grip import DEEP, KEY, signed_raw, token

pytestmark = pytest.mark.django_db(transaction=True)

PUSHPIN = {"PUBLISH_URL": "http://127.0.0.1:9/publish/", "SIG_KEY": KEY.decode()}


@pytest.fixture
def pushpin_mode() -> Iterator[None]:
    with override_settings(DJANGO_SSE={"PUSHPIN": PUSHPIN, "BROADCAST_POLL_INTERVAL": None}):
        yield


def with_keys(*extra: tuple[object, object]) -> dict[object, object]:
    """PUSHPIN with more keys, of any type."""
    return dict([*PUSHPIN.items(), *extra])


def signed() -> dict[str, str]:
    return {"Grip-Sig": token({"iss": "pushpin", "exp": int(time.time()) + 60})}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ([], "must be None or a dict"),
        ({**PUSHPIN, "PUBLISH_URLS": []}, "unknown keys ['PUBLISH_URLS']"),
        # Keys that do not sort together (a constant's value for a name).
        (with_keys((1, "x"), ("SIGKEY", "k")), "unknown keys ['SIGKEY', 1]"),
        (with_keys((("SIG_KEY",), "k"), ("X", 1)), "unknown keys ['X', ('SIG_KEY',)]"),
        ({**PUSHPIN, "PUBLISH_URL": "127.0.0.1:5561"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": []}, "['PUBLISH_URL']"),
        # URLs httpx cannot send to: the publisher thread would fail on each event.
        ({**PUSHPIN, "PUBLISH_URL": "http://127.0.0.1:abc/publish/"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": "http://[::1/"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": "http://127.0.0.1:99999/publish/"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": "http://127.0.0.1:0/publish/"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": "http:///publish/"}, "['PUBLISH_URL']"),
        ({**PUSHPIN, "PUBLISH_URL": "http://a:5561/pub\nlish/"}, "['PUBLISH_URL']"),
        (
            {**PUSHPIN, "PUBLISH_URL": ["http://a:5561/publish/", "http://b:x/publish/"]},
            "'http://b:x/publish/'",
        ),
        ({**PUSHPIN, "SIG_KEY": ""}, "['SIG_KEY']"),
        ({**PUSHPIN, "SIG_KEY": "key\n[proxy]"}, "['SIG_KEY']"),
        ({**PUSHPIN, "SIG_KEY": "key\r"}, "['SIG_KEY']"),
        ({"PUBLISH_URL": PUSHPIN["PUBLISH_URL"]}, "['SIG_KEY']"),
        ({**PUSHPIN, "CHANNEL_PREFIX": "a,b"}, "['CHANNEL_PREFIX']"),
        # In Pushpin's id format %(name)s: the name would end at ")".
        ({**PUSHPIN, "CHANNEL_PREFIX": "app)"}, "['CHANNEL_PREFIX']"),
        ({**PUSHPIN, "CHANNEL_PREFIX": "app%"}, "['CHANNEL_PREFIX']"),
        # A header with a line break is refused by Django: every stream a 500.
        ({**PUSHPIN, "CHANNEL_PREFIX": "app\n"}, "['CHANNEL_PREFIX']"),
        ({**PUSHPIN, "CHANNEL_PREFIX": "app\t"}, "['CHANNEL_PREFIX']"),
        ({**PUSHPIN, "CHANNEL_PREFIX": "caf\u00e9."}, "['CHANNEL_PREFIX']"),
        ({**PUSHPIN, "RECOVER_INTERVAL": 0}, "['RECOVER_INTERVAL']"),
        ({**PUSHPIN, "RECOVER_INTERVAL": True}, "['RECOVER_INTERVAL']"),
        ({**PUSHPIN, "RECOVER_INTERVAL": float("inf")}, "['RECOVER_INTERVAL']"),
        ({**PUSHPIN, "RECOVER_INTERVAL": float("nan")}, "['RECOVER_INTERVAL']"),
        # Past what Pushpin's timeout and a thread's wait hold, like every other setting.
        ({**PUSHPIN, "RECOVER_INTERVAL": 10**30}, "['RECOVER_INTERVAL']"),
        ({**PUSHPIN, "TIMEOUT": 1e300}, "['TIMEOUT']"),
        ({**PUSHPIN, "SIG_ISS": ""}, "['SIG_ISS']"),
        ({**PUSHPIN, "SIG_ISS": 5}, "['SIG_ISS']"),
        ({**PUSHPIN, "SIG_ISS": "pushpin\n[proxy]"}, "['SIG_ISS']"),
        ({**PUSHPIN, "TIMEOUT": -1}, "['TIMEOUT']"),
        ({**PUSHPIN, "TIMEOUT": float("inf")}, "['TIMEOUT']"),
        ({**PUSHPIN, "TIMEOUT": float("nan")}, "['TIMEOUT']"),
    ],
)
def test_a_bad_setting_is_an_error_and_a_check_naming_the_key(value: Any, named: str) -> None:
    with override_settings(DJANGO_SSE={"PUSHPIN": value}):
        with pytest.raises(ImproperlyConfigured) as error:
            _pushpin.settings()
        assert named in str(error.value)
        [message] = [m for m in check_deployment() if m.id == "django_sse.E005"]
        assert message.level == checks.ERROR
        assert named in message.msg


def test_several_pushpin_instances_and_defaults() -> None:
    urls = ["http://a:5561/publish/", "http://b:5561/publish/"]
    with override_settings(DJANGO_SSE={"PUSHPIN": {"PUBLISH_URL": urls, "SIG_KEY": "k"}}):
        settings = _pushpin.settings()
    assert settings == _pushpin.PushpinSettings(tuple(urls), b"k", "django_sse.", 300, 5.0)
    assert settings.sig_iss is None


@pytest.mark.urls("tests.broadcast.urls")
@pytest.mark.usefixtures("pushpin_mode")
def test_without_the_recovery_route_the_check_says_what_to_include() -> None:
    [message] = [m for m in check_deployment() if m.id == "django_sse.E006"]
    assert 'include("django_sse.broadcast.urls")' in (message.hint or "")


@pytest.mark.usefixtures("pushpin_mode")
def test_with_the_route_pushpin_mode_passes_its_checks() -> None:
    assert not [m for m in check_deployment() if m.id in ("django_sse.E005", "django_sse.E006")]


@pytest.mark.usefixtures("pushpin_mode")
async def test_a_request_through_pushpin_gets_hold_instructions_and_the_backlog() -> None:
    for n in range(3):
        await apublish("lobby", f"event {n}")
    response = await AsyncClient().get(
        "/broadcast/rooms/lobby/", headers={"Last-Event-ID": "1", **signed()}
    )
    body = b"".join([chunk async for chunk in response.streaming_content])  # type: ignore[attr-defined]
    assert response["Grip-Hold"] == "stream"
    assert response["Grip-Channel"] == "django_sse.lobby; prev-id=3; filter=build-id"
    assert response["Grip-Link"].startswith("</sse/pushpin/")
    assert not response.has_header("Content-Length")
    assert [(e.id, e.data) for e in EventParser().feed(body)] == [
        ("2", "event 1"),
        ("3", "event 2"),
    ]


@pytest.mark.usefixtures("pushpin_mode")
async def test_pushpin_recovers_what_a_connection_missed_from_its_link() -> None:
    first = await AsyncClient().get("/broadcast/rooms/lobby/", headers=signed())
    link = first["Grip-Link"].split(">")[0][1:]
    for n in range(2):
        await apublish("lobby", f"event {n}")
    recovery = await AsyncClient().get(
        link, headers={"Grip-Last": "django_sse.lobby; last-id=1", **signed()}
    )
    body = b"".join([chunk async for chunk in recovery.streaming_content])  # type: ignore[attr-defined]
    assert [(e.id, e.data) for e in EventParser().feed(body)] == [("2", "event 1")]
    assert recovery["Grip-Channel"] == "django_sse.lobby; prev-id=2; filter=build-id"


@pytest.mark.usefixtures("pushpin_mode")
async def test_only_pushpin_may_fetch_a_recovery_link_and_only_a_link_of_ours() -> None:
    first = await AsyncClient().get("/broadcast/rooms/lobby/", headers=signed())
    link = first["Grip-Link"].split(">")[0][1:]
    assert (await AsyncClient().get(link)).status_code == 403
    forged = await AsyncClient().get("/sse/pushpin/made-up-state/", headers=signed())
    # Not a 4xx, which Pushpin would retry for half a minute: the stream ends.
    assert forged.status_code == 200
    assert not forged.has_header("Grip-Hold")
    assert not forged.has_header("Grip-Link")


@pytest.mark.usefixtures("pushpin_mode")
@pytest.mark.parametrize(
    ("path", "status"),
    # Django streams the channel itself; only Pushpin may fetch a recovery link.
    [("/broadcast/rooms/lobby/", 200), ("/sse/pushpin/made-up-state/", 403)],
)
async def test_a_forged_signature_of_deeply_nested_json_is_not_pushpins(
    path: str, status: int
) -> None:
    forged = signed_raw(DEEP, DEEP, key=b"not pushpin's key")
    response = await AsyncClient(raise_request_exception=False).get(
        path, headers={"Grip-Sig": forged}
    )
    assert response.status_code == status
    assert not response.has_header("Grip-Hold")
    if response.streaming:
        await response.streaming_content.aclose()  # type: ignore[attr-defined]


@pytest.mark.usefixtures("pushpin_mode")
async def test_a_request_not_through_pushpin_is_streamed_by_django() -> None:
    response = await AsyncClient().get("/broadcast/rooms/lobby/")
    assert not response.has_header("Grip-Hold")
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    await response.streaming_content.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("issuer", "held"), [("pushpin", True), ("another service", False), (None, False)]
)
async def test_with_sig_iss_only_a_signature_naming_it_is_pushpins(
    issuer: str | None, held: bool
) -> None:
    """A JWT signed with Pushpin's key for another purpose (the key reused elsewhere)
    is no Grip-Sig: its issuer is not Pushpin's."""
    claims: dict[str, Any] = {"exp": int(time.time()) + 60}
    if issuer is not None:
        claims["iss"] = issuer
    pushpin = {**PUSHPIN, "SIG_ISS": "pushpin"}
    with override_settings(DJANGO_SSE={"PUSHPIN": pushpin, "BROADCAST_POLL_INTERVAL": None}):
        response = await AsyncClient().get(
            "/broadcast/rooms/lobby/", headers={"Grip-Sig": token(claims)}
        )
        assert response.has_header("Grip-Hold") is held
        await response.streaming_content.aclose()  # type: ignore[attr-defined]
