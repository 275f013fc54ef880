from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_sse import conf


def test_defaults() -> None:
    with override_settings(DJANGO_SSE={}):
        assert conf.get("KEEP_ALIVE") == 15.0
        assert conf.get("RETRY") is None


def test_override() -> None:
    with override_settings(DJANGO_SSE={"KEEP_ALIVE": 5}):
        assert conf.get("KEEP_ALIVE") == 5


def test_unknown_keys_are_named() -> None:
    with (
        override_settings(DJANGO_SSE={"KEEPALIVE": 5}),
        pytest.raises(ImproperlyConfigured, match="KEEPALIVE"),
    ):
        conf.get("KEEP_ALIVE")


def test_not_a_dict() -> None:
    with (
        override_settings(DJANGO_SSE=["x"]),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        conf.get("KEEP_ALIVE")


def test_unknown_name_in_code() -> None:
    with pytest.raises(KeyError):
        conf.get("NOPE")
