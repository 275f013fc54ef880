"""Choosing the channel layer, and the system check for it."""

from __future__ import annotations

import pytest
import redis
from django.test import override_settings

from django_sse.checks import check_deployment

LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def ids() -> list[str | None]:
    return [message.id for message in check_deployment()]


def test_no_channel_layers_is_fine() -> None:
    with override_settings(MIDDLEWARE=[]):
        assert "django_sse.E002" not in ids()


def test_the_default_alias_is_found() -> None:
    with override_settings(MIDDLEWARE=[], CHANNEL_LAYERS=LAYERS):
        assert ids() == []


def test_a_missing_alias_is_an_error() -> None:
    with override_settings(
        MIDDLEWARE=[], CHANNEL_LAYERS=LAYERS, DJANGO_SSE={"BROADCAST_LAYER": "events"}
    ):
        (message,) = check_deployment()
    assert message.id == "django_sse.E002"
    assert "'events'" in message.msg
    assert "'default'" in str(message.hint)


def redis_layers(host: object) -> dict[str, object]:
    return {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}
    }


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("redis://127.0.0.1:6379", True),
        ({"address": "redis://127.0.0.1:6379"}, True),
        ({"address": "redis://127.0.0.1:6379", "socket_timeout": 10}, False),
    ],
)
def test_a_redis_host_without_a_read_timeout_is_warned_about(host: object, warned: bool) -> None:
    if int(redis.__version__.split(".")[0]) < 8:
        pytest.skip("The warning is about redis-py 8 and later")
    with override_settings(MIDDLEWARE=[], CHANNEL_LAYERS=redis_layers(host)):
        assert ids() == (["django_sse.W004"] if warned else [])
