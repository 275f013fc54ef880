"""The GRIP wire format: what Pushpin is told, and how its signature is checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from django_sse.broadcast import _grip
from django_sse.broadcast._channels import validate_channel
from django_sse.broadcast._history import StoredEvent

KEY = b"pushpin-test-key"


def token(claims: dict[str, Any], key: bytes = KEY, alg: str = "HS256") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signed = f"{part({'typ': 'JWT', 'alg': alg})}.{part(claims)}"
    signature = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# JSON nested deeper than Python's parser recurses.
DEEP = b"[" * 5000 + b"]" * 5000


def signed_raw(header: bytes, payload: bytes, key: bytes = KEY) -> str:
    signed = f"{encoded(header)}.{encoded(payload)}"
    return f"{signed}.{encoded(hmac.new(key, signed.encode(), hashlib.sha256).digest())}"


def valid_claims() -> dict[str, Any]:
    return {"iss": "pushpin", "exp": int(time.time()) + 3600}


def test_a_signature_pushpin_made_is_accepted() -> None:
    assert _grip.signed_by_pushpin(token(valid_claims()), KEY)


@pytest.mark.parametrize(
    "grip_sig",
    [
        None,
        "",
        "not.a.jwt",
        "only-one-part",
        token(valid_claims(), key=b"another key"),
        token({"iss": "pushpin", "exp": int(time.time()) - 1}),
        token({"iss": "pushpin"}),
        token(valid_claims(), alg="none"),
        token(valid_claims()) + "x",
        token(valid_claims()).rsplit(".", 1)[0] + ".",
        signed_raw(DEEP, json.dumps(valid_claims()).encode(), key=b"another key"),
        signed_raw(b'{"alg": "HS256"}', DEEP, key=b"another key"),
        signed_raw(DEEP, DEEP),
        signed_raw(b'["HS256"]', json.dumps(valid_claims()).encode()),
        signed_raw(b"\xff", b"{}"),
        "h\u00e9ader.payload.signature",
    ],
    ids=[
        "missing", "empty", "garbage", "one part", "other key", "expired", "no expiry",
        "alg none", "signature changed", "signature missing", "forged deep header",
        "forged deep claims", "signed deep JSON", "signed header not an object",
        "signed header not UTF-8", "not ASCII",
    ],
)  # fmt: skip
def test_a_forged_or_stale_signature_is_refused(grip_sig: str | None) -> None:
    assert not _grip.signed_by_pushpin(grip_sig, KEY)


@pytest.mark.parametrize(
    ("claims", "issuer", "accepted"),
    [
        ({"iss": "pushpin"}, "pushpin", True),
        ({"iss": "another service"}, "pushpin", False),
        ({}, "pushpin", False),
        ({"iss": ["pushpin"]}, "pushpin", False),
        # Without a configured issuer, any (Pushpin's sig_iss is its own to choose).
        ({"iss": "another service"}, None, True),
        ({}, None, True),
    ],
)
def test_a_configured_issuer_must_be_the_signatures(
    claims: dict[str, Any], issuer: str | None, accepted: bool
) -> None:
    grip_sig = token({**claims, "exp": int(time.time()) + 3600})
    assert _grip.signed_by_pushpin(grip_sig, KEY, issuer) is accepted


def test_grip_last_gives_our_channels_positions() -> None:
    header = "p.chat; last-id=12, p.news;last-id=5, other.x; last-id=3, p.bad; last-id=x"
    assert _grip.last_ids(header, "p.") == {"chat": 12, "news": 5}
    assert _grip.last_ids("", "p.") == {}


def test_hold_headers_for_one_channel() -> None:
    headers = _grip.hold_headers(
        {"chat": 12},
        prefix="p.",
        user=None,
        link="/sse/pushpin/state/",
        recover_interval=300,
        keep_alive=15.0,
        hold=True,
    )
    assert headers == {
        "Grip-Hold": "stream",
        "Grip-Channel": "p.chat; prev-id=12; filter=build-id",
        "Grip-Set-Meta": 'id_format="%(p.chat)s"',
        "Grip-Link": "</sse/pushpin/state/>; rel=next; timeout=300",
        "Grip-Keep-Alive": r":\n; format=cstring; timeout=15",
    }


def test_hold_headers_for_several_channels_and_a_user() -> None:
    headers = _grip.hold_headers(
        {"chat": 12, "news": 5},
        prefix="p.",
        user="42",
        link="/l/",
        recover_interval=60,
        keep_alive=0,
        hold=False,
    )
    user_channel = _grip.user_channel("p.", "42")
    assert headers["Grip-Channel"] == (
        "p.chat; prev-id=12; filter=build-id, p.news; prev-id=5; filter=build-id, "
        f"{user_channel}; filter=require-sub"
    )
    # The same vector ids a stream served directly sends: chat:12,news:5.
    assert headers["Grip-Set-Meta"] == 'id_format="chat:%(p.chat)s,news:%(p.news)s"'
    assert "Grip-Hold" not in headers  # more backlog follows at the link
    assert "Grip-Keep-Alive" not in headers


def test_user_channels_hide_the_primary_key_and_any_character_in_it() -> None:
    channel = _grip.user_channel("p.", 'a,b; "c"')
    assert channel.startswith("p.user:")
    assert not set(channel) & set(',;" ')
    assert channel != _grip.user_channel("p.", "a")


@pytest.mark.parametrize("user", ["1", "42", "ada", 'a,b; "c"'])
def test_no_broadcast_channel_shares_its_name_with_a_users_own(user: str) -> None:
    """Else whoever may publish to a channel of their choosing reaches the user."""
    name = _grip.user_channel("p.", user).removeprefix("p.")
    with pytest.raises(ValueError, match="may only contain"):
        validate_channel(name)


def test_a_published_event_for_pushpin() -> None:
    stored = StoredEvent("chat", 7, "said", "100% sure")
    assert _grip.publish_item("p.", stored) == {
        "channel": "p.chat",
        "id": "7",
        "prev-id": "6",
        "formats": {"http-stream": {"content": "id: %I\nevent: said\ndata: 100%% sure\n\n"}},
    }


def test_a_close_for_one_user_of_one_channel() -> None:
    assert _grip.close_item("p.", "42", "chat") == {
        "channel": _grip.user_channel("p.", "42"),
        "meta": {"require_sub": "p.chat"},
        "formats": {"http-stream": {"action": "close"}},
    }
