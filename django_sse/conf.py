"""Project-wide settings, read from one dict: ``settings.DJANGO_SSE``.

Every key is optional; ``DEFAULTS`` documents them. Values are read on each access,
so ``override_settings`` in tests takes effect without a restart.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULTS", "get", "limit", "problems"]

DEFAULTS: dict[str, Any] = {
    # Seconds between keep-alive comments on an idle stream; 0 turns them off.
    "KEEP_ALIVE": 15.0,
    # Milliseconds sent as ``retry`` at the start of every stream; None sends none.
    "RETRY": None,
    # Seconds after which a stream ends with outcome "timeout"; None means no limit.
    "MAX_DURATION": None,
    # Write a StreamLog row when a stream opens and when it closes.
    "LOG_STREAMS": True,
    # Request header naming the client's address, set by your trusted reverse proxy
    # (e.g. "X-Forwarded-For"; its last address is used). None: use REMOTE_ADDR.
    "CLIENT_ADDRESS_HEADER": None,
    # Stream logs hide the value of every parameter whose name contains API, TOKEN,
    # KEY, SECRET, PASS, PWD, SIG, AUTH, SESSION, JWT, CODE, COOKIE or CREDENTIAL
    # (any case) in a row's path, query string, error and user agent: extra fragments
    # (strings) added to that built-in list.
    "REDACTED_NAMES": (),
    # django_sse's get_asgi_application() runs each request's sync work (signal
    # receivers, sync middleware, sync_to_async) on a thread from a pool, not on one
    # started for the request as Django does: at most this many are kept idle. 0 turns
    # the pool off.
    "IDLE_REQUEST_THREADS": 16,
    # End open streams (outcome "shutdown") when the process gets SIGINT or SIGTERM,
    # so servers that wait for open responses can stop.
    "HANDLE_SIGNALS": True,
    # Seconds each step of a stream's close may take (the generator's cleanup, the
    # stream log's write, on_close) before it is cancelled and logged.
    "CLEANUP_TIMEOUT": 5.0,
    # Prometheus metrics (docs/operations.md): None counts them when prometheus-client is
    # installed (django-sse-kit[metrics]), True requires it, False turns them off.
    "METRICS": None,
    # In prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR set), seconds
    # between writes of open streams' events and bytes to this process's files.
    "METRICS_FLUSH_INTERVAL": 5.0,
    # Who may read django_sse.metrics.urls, any of: a logged-in staff user (if True),
    # a request with "Authorization: Bearer <METRICS_TOKEN>" (if set), or one from an
    # address or network in METRICS_ADDRESSES (e.g. ["10.0.0.0/8"]; the client's address
    # as CLIENT_ADDRESS_HEADER finds it).
    "METRICS_STAFF": True,
    "METRICS_TOKEN": None,
    "METRICS_ADDRESSES": (),
    # Streams one logged-in user, and one anonymous client address, may have open at
    # once; one more gets a 429 with Retry-After. None: no limit. Counted through the
    # cache STREAM_LIMIT_CACHE names (a shared one, e.g. Redis, counts across
    # processes). A view's stream_limit_per_user / _per_address override them.
    "STREAM_LIMIT_PER_USER": None,
    "STREAM_LIMIT_PER_ADDRESS": None,
    "STREAM_LIMIT_CACHE": "default",
    # Broadcast through Pushpin, which then holds the streams: a dict with Pushpin's
    # PUBLISH_URL (or a list, one per instance) and its SIG_KEY; optional
    # CHANNEL_PREFIX ("django_sse."), RECOVER_INTERVAL (300 s) and TIMEOUT (5 s).
    # None: broadcast streams are served by Django.
    "PUSHPIN": None,
    # Broadcast (django_sse.broadcast). The CHANNEL_LAYERS alias to publish through;
    # without CHANNEL_LAYERS, an in-memory layer that reaches this process only.
    "BROADCAST_LAYER": "default",
    # History kept per channel for replay: at most this many events (None: no limit)...
    "BROADCAST_HISTORY_SIZE": 1000,
    # ...and none older than this many seconds (None: no limit).
    "BROADCAST_HISTORY_AGE": 86400.0,
    # Events waiting for one subscriber; when full, it is cut off (outcome
    # "slow_consumer") and its client replays from history on reconnect.
    "BROADCAST_QUEUE_SIZE": 1000,
    # Seconds between history checks for channels with subscribers in this process:
    # delivers what the layer dropped, and, with an in-memory layer, what other
    # processes published. None turns them off.
    "BROADCAST_POLL_INTERVAL": 1.0,
    # LLM streaming (django_sse.llm). The provider: None picks OpenAI's when an API key
    # or base URL is configured (here or as OPENAI_API_KEY / OPENAI_BASE_URL in the
    # environment), and otherwise the local text source, which is not a language
    # model and says so. Or a dotted path to a provider class.
    "LLM_PROVIDER": None,
    # The OpenAI provider's API key and base URL (any OpenAI-compatible server: vLLM,
    # Ollama, llama.cpp's server...); None falls back to the environment variables.
    "LLM_API_KEY": None,
    "LLM_BASE_URL": None,
    "LLM_MODEL": "gpt-4o-mini",
    # Seconds the provider may take to connect and between chunks of the answer.
    "LLM_TIMEOUT": 60.0,
    # Times the OpenAI SDK retries a request that failed before the answer started
    # (honouring the provider's retry-after).
    "LLM_MAX_RETRIES": 2,
    # The OpenAI SDK's HTTP client: "aiohttp", its faster one (its aiohttp extra, which
    # django-sse-kit[llm] installs; without it, "httpx" with a warning), or "httpx".
    "LLM_HTTP_CLIENT": "aiohttp",
    # Resumable generations (ResumableChatView). Answers one logged-in user, and one
    # anonymous client address, may have running at once; one more gets a 429. None:
    # no limit. A view's generations_per_user / generations_per_address override them.
    "LLM_GENERATIONS_PER_USER": 3,
    "LLM_GENERATIONS_PER_ADDRESS": 3,
    # The most tokens a resumable answer may have, unless its view sets max_tokens.
    "LLM_GENERATION_MAX_TOKENS": 4096,
    # Seconds an answer goes on with nobody following it before it is stopped
    # (outcome "abandoned"); None: it runs to its end.
    "LLM_GENERATION_ABANDON_AFTER": 60.0,
    # Seconds an answer may run at most (outcome "timeout").
    "LLM_GENERATION_TIMEOUT": 600.0,
    # Limits on what a client may send to a chat view; larger gets a 400.
    "LLM_MAX_MESSAGES": 100,
    "LLM_MAX_MESSAGE_LENGTH": 32_000,
    "LLM_MAX_CONVERSATION_LENGTH": 200_000,
}


def _number(value: Any, minimum: float, *, zero: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value >= minimum if zero else value > minimum


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _network(value: Any) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


# What each setting accepts: a test, and the words the error message uses for it.
_Rule = tuple[Callable[[Any], bool], str]


def _or_none(rule: _Rule) -> _Rule:
    accepts, description = rule
    return (lambda value: value is None or accepts(value)), f"None or {description}"


# About 31 years: more than any of these waits needs, and a value that a date less it
# and a thread's timeout can hold. A larger one (sys.maxsize for "forever") failed
# later: OverflowError in each sse_prune_history (BROADCAST_HISTORY_AGE), each
# resumable answer's POST (LLM_GENERATION_TIMEOUT), the metrics' flush thread.
MAX_SECONDS = 1e9

_SECONDS: _Rule = (
    lambda v: _number(v, 0, zero=False) and v <= MAX_SECONDS,
    "a number of seconds above 0, at most 1e9",
)
_SECONDS_OR_ZERO: _Rule = (
    lambda v: _number(v, 0, zero=True) and v <= MAX_SECONDS,
    "a number of seconds from 0 to 1e9",
)
_COUNT: _Rule = (lambda v: _whole(v, 0), "a whole number, 0 or more")
_SIZE: _Rule = (lambda v: _whole(v, 1), "a whole number, 1 or more")
_FLAG: _Rule = (lambda v: isinstance(v, bool), "True or False")
_TEXT: _Rule = (lambda v: isinstance(v, str) and v != "", "a non-empty string")


def _up_to(minimum: int, maximum: int) -> _Rule:
    return (
        lambda v: _whole(v, minimum) and v <= maximum,
        f"a whole number from {minimum} to {maximum}",
    )


# Whole numbers whose use fails, or stops bounding anything, past a point; as with
# MAX_SECONDS, "no limit" is None, not a huge number. RETRY: browsers' polyfills wait
# with setTimeout(), which fires at once for more than 2**31 - 1 ms, so a client told to
# wait for ever would reconnect in a loop.
MAX_RETRY = 2**31 - 1
# STREAM_LIMIT_*: each stream that opens reads that many keys from the cache (10**30
# hung the request building their names).
MAX_STREAMS = 1000
# IDLE_REQUEST_THREADS: each idle thread keeps its stack, and with CONN_MAX_AGE a
# database connection, for the life of the process.
MAX_IDLE_THREADS = 1000
# BROADCAST_HISTORY_SIZE: compared with sequence numbers in SQL, a 64-bit column.
MAX_HISTORY_SIZE = 2**63 - 1
# BROADCAST_QUEUE_SIZE: events one stalled subscriber holds in memory before it is cut
# off; a bound that never cuts one off lets it hold everything published.
MAX_QUEUE_SIZE = 1_000_000

# A header's name as a proxy sends it. Not a request.META key: "HTTP_X_FORWARDED_FOR"
# names a header nobody sends (the proxy's address is used instead), and "REMOTE_ADDR"
# the header Remote-Addr, which any client can send to claim any address.
_HEADER: _Rule = (
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", v) is not None,
    'the name of a request header, letters, digits and hyphens (e.g. "X-Forwarded-For"), '
    'not a request.META key (such as "HTTP_X_FORWARDED_FOR")',
)
_TEXTS: _Rule = (
    lambda v: isinstance(v, (list, tuple)) and all(isinstance(i, str) and i.strip() for i in v),
    "a list or tuple of non-empty strings",
)

_RULES: dict[str, _Rule] = {
    "KEEP_ALIVE": _SECONDS_OR_ZERO,
    "RETRY": _or_none(_up_to(0, MAX_RETRY)),
    "MAX_DURATION": _or_none(_SECONDS_OR_ZERO),
    "LOG_STREAMS": _FLAG,
    "CLIENT_ADDRESS_HEADER": _or_none(_HEADER),
    "REDACTED_NAMES": _TEXTS,
    "IDLE_REQUEST_THREADS": _up_to(0, MAX_IDLE_THREADS),
    "HANDLE_SIGNALS": _FLAG,
    "CLEANUP_TIMEOUT": _SECONDS,
    "METRICS": _or_none(_FLAG),
    "METRICS_FLUSH_INTERVAL": _SECONDS,
    "METRICS_STAFF": _FLAG,
    "METRICS_TOKEN": _or_none(_TEXT),
    "METRICS_ADDRESSES": (
        lambda v: (
            isinstance(v, (list, tuple)) and all(isinstance(i, str) and _network(i) for i in v)
        ),
        'a list or tuple of addresses and networks, as strings ("10.0.0.5", "10.0.0.0/8")',
    ),
    "STREAM_LIMIT_PER_USER": _or_none(_up_to(0, MAX_STREAMS)),
    "STREAM_LIMIT_PER_ADDRESS": _or_none(_up_to(0, MAX_STREAMS)),
    "STREAM_LIMIT_CACHE": _TEXT,
    # Its keys are checked where it is read (django_sse.broadcast._pushpin).
    "PUSHPIN": (lambda v: v is None or isinstance(v, dict), "None or a dict"),
    "BROADCAST_LAYER": _TEXT,
    "BROADCAST_HISTORY_SIZE": _or_none(_up_to(1, MAX_HISTORY_SIZE)),
    "BROADCAST_HISTORY_AGE": _or_none(_SECONDS_OR_ZERO),
    "BROADCAST_QUEUE_SIZE": _up_to(1, MAX_QUEUE_SIZE),
    "BROADCAST_POLL_INTERVAL": _or_none(_SECONDS),
    "LLM_PROVIDER": _or_none((_TEXT[0], "the dotted path of a provider class")),
    "LLM_API_KEY": _or_none(_TEXT),
    "LLM_BASE_URL": _or_none(_TEXT),
    "LLM_MODEL": _TEXT,
    "LLM_TIMEOUT": _SECONDS,
    "LLM_MAX_RETRIES": _COUNT,
    "LLM_HTTP_CLIENT": (lambda v: v in ("aiohttp", "httpx"), '"aiohttp" or "httpx"'),
    "LLM_GENERATIONS_PER_USER": _or_none(_COUNT),
    "LLM_GENERATIONS_PER_ADDRESS": _or_none(_COUNT),
    "LLM_GENERATION_MAX_TOKENS": _SIZE,
    "LLM_GENERATION_ABANDON_AFTER": _or_none(_SECONDS),
    "LLM_GENERATION_TIMEOUT": _SECONDS,
    "LLM_MAX_MESSAGES": _SIZE,
    "LLM_MAX_MESSAGE_LENGTH": _SIZE,
    "LLM_MAX_CONVERSATION_LENGTH": _SIZE,
}


# The settings dict last found valid, and its size then. get() runs on hot paths (each
# stream, each broadcast event): it checks a dict once, again only when
# settings.DJANGO_SSE is another dict (override_settings) or has grown. All of it at
# once: a bad value fails the first stream as it starts, not one that has run for an
# hour as it closes.
_checked: tuple[dict[str, Any], int] | None = None
_UNSET: dict[str, Any] = {}


def get(name: str) -> Any:
    """The setting's value, or its default; ImproperlyConfigured, naming the settings at
    fault, if the project set any to something it cannot be."""
    global _checked
    if name not in DEFAULTS:
        raise KeyError(f"Unknown django_sse setting {name!r}")
    configured = _configured()
    if _checked is None or _checked[0] is not configured or _checked[1] != len(configured):
        found = problems()
        if found:
            raise ImproperlyConfigured(" ".join(problem for _, problem in found))
        _checked = (configured, len(configured))
    return configured.get(name, DEFAULTS[name])


def problems() -> list[tuple[str | None, str]]:
    """Everything wrong with settings.DJANGO_SSE, for the system checks: the setting
    at fault (None for the dict itself) and what is wrong with it."""
    try:
        configured = _configured()
    except ImproperlyConfigured as error:
        return [(None, str(error))]
    unknown = _unknown(configured)
    if unknown:
        return [(None, unknown)]
    found = ((name, _problem(name, configured)) for name in DEFAULTS)
    return [(name, problem) for name, problem in found if problem is not None]


def _configured() -> dict[str, Any]:
    configured = getattr(django_settings, "DJANGO_SSE", None)
    if configured is None:
        # The same dict each time, which get() then checks only once.
        return _UNSET
    # Only None means unset: an empty list or string is no dict either.
    if not isinstance(configured, dict):
        raise ImproperlyConfigured("settings.DJANGO_SSE must be a dict")
    return configured


def _unknown(configured: dict[str, Any]) -> str | None:
    unknown = set(configured) - set(DEFAULTS)
    if not unknown:
        return None
    # repr: a key may be anything hashable (a constant's value, a tuple), not only a str.
    return (
        f"Unknown key(s) in settings.DJANGO_SSE: {', '.join(sorted(map(repr, unknown)))}. "
        f"Known keys: {', '.join(DEFAULTS)}"
    )


def _problem(name: str, configured: dict[str, Any]) -> str | None:
    if name not in configured:
        return None
    value = configured[name]
    accepts, description = _RULES[name]
    if accepts(value):
        return None
    return f"DJANGO_SSE[{name!r}] is {value!r}; it must be {description}."


def limit(setting: str, override: int | None = None) -> int | None:
    """A limit setting (a whole number, or None for none), or a view's ``override``,
    which must be what the setting may be."""
    value = get(setting) if override is None else override
    accepts, description = _RULES[setting]
    if not accepts(value):
        raise ImproperlyConfigured(
            f"{setting} (or the view's override) is {value!r}: use {description}"
        )
    return value
