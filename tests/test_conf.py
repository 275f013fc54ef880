from __future__ import annotations

import re
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_sse import conf


@pytest.mark.parametrize("configured", [{}, None])
def test_defaults(configured: dict[str, object] | None) -> None:
    with override_settings(DJANGO_SSE=configured):
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


@pytest.mark.parametrize("configured", [["x"], [], "", 0, False])
def test_not_a_dict(configured: object) -> None:
    with (
        override_settings(DJANGO_SSE=configured),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        conf.get("KEEP_ALIVE")


def test_unknown_name_in_code() -> None:
    with pytest.raises(KeyError):
        conf.get("NOPE")


def test_every_setting_has_a_rule_that_its_default_passes() -> None:
    assert set(conf._RULES) == set(conf.DEFAULTS)
    with override_settings(DJANGO_SSE=dict(conf.DEFAULTS)):
        assert conf.problems() == []


# What the audit tried, and values of the wrong kind for every sort of setting.
BAD_VALUES = [
    ("KEEP_ALIVE", "abc"),
    ("KEEP_ALIVE", None),
    ("KEEP_ALIVE", -1),
    ("KEEP_ALIVE", float("nan")),
    ("RETRY", 2.5),
    ("MAX_DURATION", "10"),
    ("MAX_DURATION", -1),
    ("LOG_STREAMS", "no"),
    ("HANDLE_SIGNALS", "no"),
    ("CLIENT_ADDRESS_HEADER", 5),
    ("CLIENT_ADDRESS_HEADER", ""),
    ("CLIENT_ADDRESS_HEADER", "X-Forwarded-For:"),
    ("CLIENT_ADDRESS_HEADER", "X-Forwarded-For "),
    ("REDACTED_NAMES", "token"),
    ("IDLE_REQUEST_THREADS", True),
    ("CLEANUP_TIMEOUT", "x"),
    ("CLEANUP_TIMEOUT", None),
    ("CLEANUP_TIMEOUT", 0),
    ("CLEANUP_TIMEOUT", -1),
    ("CLEANUP_TIMEOUT", float("inf")),
    # Finite, and still too large for a date less it or a thread's timeout.
    ("CLEANUP_TIMEOUT", 1e300),
    ("KEEP_ALIVE", 1e10),
    ("BROADCAST_HISTORY_AGE", sys.maxsize),
    ("LLM_GENERATION_TIMEOUT", 1e12),
    ("METRICS_FLUSH_INTERVAL", 1e300),
    ("METRICS", "false"),
    ("METRICS", 0),
    ("METRICS_FLUSH_INTERVAL", -1),
    ("METRICS_FLUSH_INTERVAL", 0),
    ("METRICS_FLUSH_INTERVAL", "x"),
    ("METRICS_STAFF", None),
    ("METRICS_TOKEN", 123),
    ("METRICS_ADDRESSES", None),
    ("METRICS_ADDRESSES", "10.0.0.0/8"),
    ("METRICS_ADDRESSES", [10]),
    ("STREAM_LIMIT_PER_USER", "3"),
    ("STREAM_LIMIT_CACHE", ["default"]),
    ("PUSHPIN", "http://127.0.0.1:5561/"),
    ("BROADCAST_LAYER", None),
    ("BROADCAST_HISTORY_SIZE", 0),
    ("BROADCAST_HISTORY_AGE", -1),
    ("BROADCAST_QUEUE_SIZE", None),
    ("BROADCAST_POLL_INTERVAL", -1),
    ("BROADCAST_POLL_INTERVAL", "x"),
    ("LLM_PROVIDER", 123),
    ("LLM_MODEL", ""),
    ("LLM_TIMEOUT", 0),
    ("LLM_MAX_RETRIES", -1),
    ("LLM_HTTP_CLIENT", "requests"),
    ("LLM_GENERATIONS_PER_USER", -1),
    ("LLM_GENERATION_MAX_TOKENS", 0),
    ("LLM_GENERATION_ABANDON_AFTER", "60"),
    ("LLM_GENERATION_TIMEOUT", None),
    ("LLM_MAX_MESSAGES", "5"),
    ("LLM_MAX_MESSAGE_LENGTH", None),
    ("LLM_MAX_CONVERSATION_LENGTH", -1),
    # Past each whole number's maximum: "no limit" is None, not a huge number.
    ("RETRY", 2**31),
    ("IDLE_REQUEST_THREADS", 1001),
    ("STREAM_LIMIT_PER_USER", 10**30),
    ("STREAM_LIMIT_PER_ADDRESS", 1001),
    ("BROADCAST_HISTORY_SIZE", sys.maxsize + 1),
    ("BROADCAST_QUEUE_SIZE", 10**30),
    # A bool is an int to Python, never a number to a setting.
    ("RETRY", True),
    ("STREAM_LIMIT_PER_USER", True),
    ("BROADCAST_HISTORY_SIZE", True),
    ("BROADCAST_QUEUE_SIZE", True),
    ("LLM_MAX_RETRIES", False),
    ("LLM_GENERATIONS_PER_ADDRESS", True),
    ("LLM_GENERATION_MAX_TOKENS", True),
    ("LLM_MAX_MESSAGES", True),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_a_value_a_setting_cannot_have_is_named_on_first_use(name: str, value: object) -> None:
    """Any setting's first use, not only its own: nothing starts on a broken setting."""
    expected = rf"DJANGO_SSE\['{name}'\] is {re.escape(repr(value))}; it must be "
    with override_settings(DJANGO_SSE={name: value}):
        assert [found for found, _ in conf.problems()] == [name]
        with pytest.raises(ImproperlyConfigured, match=expected):
            conf.get("KEEP_ALIVE")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KEEP_ALIVE", 0),
        ("KEEP_ALIVE", 2.5),
        ("BROADCAST_HISTORY_AGE", 1e9),
        ("LLM_GENERATION_TIMEOUT", 10**9),
        ("MAX_DURATION", 0),
        ("RETRY", 0),
        # Each whole number's maximum.
        ("RETRY", 2**31 - 1),
        ("IDLE_REQUEST_THREADS", 1000),
        ("STREAM_LIMIT_PER_USER", 1000),
        ("STREAM_LIMIT_PER_ADDRESS", 0),
        ("BROADCAST_HISTORY_SIZE", 2**63 - 1),
        ("BROADCAST_QUEUE_SIZE", 1_000_000),
        ("CLIENT_ADDRESS_HEADER", "X-Forwarded-For"),
        ("CLIENT_ADDRESS_HEADER", "x-real-ip"),
        ("CLIENT_ADDRESS_HEADER", "Forwarded"),
        ("METRICS", False),
        ("METRICS_ADDRESSES", ["10.0.0.0/8", "::1"]),
        ("REDACTED_NAMES", ["tenant"]),
        ("BROADCAST_HISTORY_SIZE", None),
        ("BROADCAST_POLL_INTERVAL", None),
        ("LLM_HTTP_CLIENT", "httpx"),
        ("PUSHPIN", None),
    ],
)
def test_values_the_docs_allow_pass(name: str, value: object) -> None:
    with override_settings(DJANGO_SSE={name: value}):
        assert conf.problems() == []
        assert conf.get(name) == value


def test_every_problem_is_named_at_once() -> None:
    with (
        override_settings(DJANGO_SSE={"KEEP_ALIVE": "x", "LLM_MAX_MESSAGES": "5"}),
        pytest.raises(ImproperlyConfigured) as error,
    ):
        conf.get("RETRY")
    assert "'KEEP_ALIVE'" in str(error.value)
    assert "'LLM_MAX_MESSAGES'" in str(error.value)


@pytest.mark.parametrize("key", ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR", "HTTP_X_REAL_IP"])
def test_a_client_address_header_given_as_its_meta_key_is_refused(key: str) -> None:
    """Django's own SECURE_PROXY_SSL_HEADER takes the request.META key; this setting
    takes the header's name. Given a key, it named a header nobody sends, and every
    client had the proxy's address, one address that METRICS_ADDRESSES may trust and
    the per-address limits count all clients under; or, for "REMOTE_ADDR", the header
    Remote-Addr, with which any client could claim any address."""
    with override_settings(DJANGO_SSE={"CLIENT_ADDRESS_HEADER": key}):
        ((name, problem),) = conf.problems()
    assert name == "CLIENT_ADDRESS_HEADER"
    assert 'not a request.META key (such as "HTTP_X_FORWARDED_FOR")' in problem


@pytest.mark.parametrize("override", [10**30, 1001, True, -1, "2"])
def test_a_views_limit_is_held_to_the_settings_range(override: object) -> None:
    """A view's stream_limit_per_user takes the setting's place: the same values."""
    with pytest.raises(ImproperlyConfigured, match=r"use None or a whole number from 0 to 1000"):
        conf.limit("STREAM_LIMIT_PER_USER", override)  # type: ignore[arg-type]


def test_a_views_limit_within_the_range_overrides_the_setting() -> None:
    with override_settings(DJANGO_SSE={"STREAM_LIMIT_PER_USER": 5}):
        assert conf.limit("STREAM_LIMIT_PER_USER") == 5
        assert conf.limit("STREAM_LIMIT_PER_USER", 1000) == 1000
