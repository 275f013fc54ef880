"""System checks for the deployment mistakes that silently break event streams."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from django_sse import conf
from django_sse._handover import DJANGO_WATCHES_DISCONNECTS
from django_sse.broadcast._pushpin import settings as pushpin_settings
from django_sse.llm._provider import openai_endpoint, provider_class

__all__ = ["check_deployment"]

GZIP_MIDDLEWARE = "django.middleware.gzip.GZipMiddleware"

# The checks that report a setting of the wrong type or range; any other is E001.
_SETTING_CHECKS: dict[str | None, str] = {
    "LLM_PROVIDER": "django_sse.E003",
    "IDLE_REQUEST_THREADS": "django_sse.E004",
    "PUSHPIN": "django_sse.E005",
    "METRICS_ADDRESSES": "django_sse.E008",
    "STREAM_LIMIT_PER_USER": "django_sse.E009",
    "STREAM_LIMIT_PER_ADDRESS": "django_sse.E009",
}


@checks.register(checks.Tags.compatibility)
def check_deployment(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = [
        checks.Error(problem, id=_SETTING_CHECKS.get(name, "django_sse.E001"))
        for name, problem in conf.problems()
    ]
    if not messages:
        messages += _check_broadcast_layer()
        messages += _check_pushpin()
        messages += _check_llm_provider()
        messages += _check_metrics()
        messages += _check_stream_limits()
    if not getattr(settings, "ASGI_APPLICATION", None):
        messages.append(
            checks.Warning(
                "ASGI_APPLICATION is not set.",
                hint=(
                    "Event streams need an ASGI server; under WSGI they are refused. Set "
                    "ASGI_APPLICATION = 'yourproject.asgi.application' and serve with "
                    "daphne or uvicorn."
                ),
                id="django_sse.W001",
            )
        )
    if GZIP_MIDDLEWARE in getattr(settings, "MIDDLEWARE", []):
        messages.append(
            checks.Info(
                "GZipMiddleware is enabled; django_sse responses are exempt from it.",
                hint=(
                    "SSEResponse sets 'Content-Encoding: identity', which GZipMiddleware "
                    "leaves alone. A hand-made StreamingHttpResponse with "
                    "text/event-stream would be compressed and buffered."
                ),
                id="django_sse.I001",
            )
        )
    messages += _check_disconnect_watching()
    apps = list(settings.INSTALLED_APPS)
    staticfiles = "django.contrib.staticfiles"
    if "daphne" in apps and staticfiles in apps and apps.index("daphne") > apps.index(staticfiles):
        messages.append(
            checks.Warning(
                "'daphne' comes after 'django.contrib.staticfiles' in INSTALLED_APPS.",
                hint=(
                    "staticfiles' runserver then wins and serves WSGI, where streams "
                    "are refused. Put 'daphne' first in INSTALLED_APPS."
                ),
                id="django_sse.W002",
            )
        )
    return messages


def _check_broadcast_layer() -> list[checks.CheckMessage]:
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    alias = conf.get("BROADCAST_LAYER")
    # Without CHANNEL_LAYERS, broadcast uses an in-memory layer of its own.
    if not layers:
        return []
    if alias not in layers:
        return [
            checks.Error(
                f"DJANGO_SSE['BROADCAST_LAYER'] is {alias!r}, which CHANNEL_LAYERS does not "
                f"define.",
                hint=f"Use one of: {', '.join(map(repr, layers))}.",
                id="django_sse.E002",
            )
        ]
    return _check_redis_read_timeout(alias, layers[alias])


def _check_pushpin() -> list[checks.CheckMessage]:
    """Pushpin mode's setting, and the route its recovery requests come back to."""
    try:
        pushpin = pushpin_settings()
    except ImproperlyConfigured as error:
        hint = "See the Pushpin page of django_sse's docs for each key."
        return [checks.Error(str(error), hint=hint, id="django_sse.E005")]
    if pushpin is None:
        return []
    try:
        reverse("django_sse_broadcast:pushpin-recover", args=["state"])
    except NoReverseMatch:
        return [
            checks.Error(
                "Pushpin mode is on, but django_sse.broadcast.urls is not in the URLconf.",
                hint=(
                    "Pushpin fetches missed events from it: add "
                    'path("sse/", include("django_sse.broadcast.urls")) to your urlpatterns.'
                ),
                id="django_sse.E006",
            )
        ]
    return []


def _check_metrics() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if conf.get("METRICS") is True and importlib.util.find_spec("prometheus_client") is None:
        messages.append(
            checks.Error(
                "DJANGO_SSE['METRICS'] is True but prometheus-client is not installed.",
                hint="pip install 'django-sse-kit[metrics]', or leave METRICS at None.",
                id="django_sse.E007",
            )
        )
    return messages


def _check_stream_limits() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    alias = conf.get("STREAM_LIMIT_CACHE")
    limited = conf.get("STREAM_LIMIT_PER_USER") is not None or (
        conf.get("STREAM_LIMIT_PER_ADDRESS") is not None
    )
    if limited and alias not in settings.CACHES:
        messages.append(
            checks.Error(
                f"DJANGO_SSE['STREAM_LIMIT_CACHE'] is {alias!r}, which CACHES does not define.",
                hint=f"Use one of: {', '.join(map(repr, settings.CACHES))}.",
                id="django_sse.E010",
            )
        )
    return messages


def _check_llm_provider() -> list[checks.CheckMessage]:
    """The provider chat views will use must be importable, before the first chat."""
    configured = conf.get("LLM_PROVIDER")
    problem = None
    if configured is not None:
        try:
            provider_class(configured)
        except ImproperlyConfigured as error:
            problem = str(error)
    elif any(openai_endpoint()) and importlib.util.find_spec("openai") is None:
        problem = "An OpenAI API key or base URL is configured, but the openai package is missing."
    if problem is None:
        return []
    return [
        checks.Error(
            problem,
            hint="pip install 'django-sse-kit[llm]', or fix the dotted path.",
            id="django_sse.E003",
        )
    ]


def _check_redis_read_timeout(alias: str, layer: object) -> list[checks.CheckMessage]:
    """redis-py 8 made reads time out after 5 s by default, which is exactly how long
    channels_redis blocks waiting for a message (channels_redis issue 422)."""
    if not isinstance(layer, Mapping) or not str(layer.get("BACKEND", "")).startswith(
        "channels_redis."
    ):
        return []
    try:
        from redis import __version__ as redis_version
    except ImportError:
        return []
    if int(redis_version.split(".")[0]) < 8:
        return []
    hosts = _redis_hosts(layer.get("CONFIG", {}))
    if hosts is None or all(
        isinstance(host, Mapping) and "socket_timeout" in host for host in hosts
    ):
        return []
    return [
        checks.Warning(
            f"CHANNEL_LAYERS[{alias!r}] uses channels_redis with redis-py {redis_version}, "
            f"whose default read timeout (5 s) interrupts every wait for a message.",
            hint=(
                "Give each host a longer timeout, e.g. "
                '{"address": "redis://127.0.0.1:6379", "socket_timeout": 10}. Until then '
                "events arrive late, by history polling, and errors are logged."
            ),
            id="django_sse.W004",
        )
    ]


def _redis_hosts(config: object) -> Sequence[object] | None:
    """The hosts of a channels_redis layer's CONFIG (none: one on localhost, with the
    default timeout); None for a CONFIG that channels_redis refuses itself, with an
    error of its own, when the layer is made: that is not this check's to report."""
    if not isinstance(config, Mapping):
        return None
    hosts = config.get("hosts")
    if not hosts:
        return [None]
    return hosts if isinstance(hosts, (list, tuple)) else None


def _check_disconnect_watching() -> list[checks.CheckMessage]:
    path = getattr(settings, "ASGI_APPLICATION", None)
    if DJANGO_WATCHES_DISCONNECTS or not path:
        return []
    try:
        application = import_string(path)
    except ImportError:
        return []
    if getattr(application, "django_sse_watches_disconnects", False):
        return []
    return [
        checks.Warning(
            "On Django 4.2, streams do not notice when their client disconnects.",
            hint=(
                "In your asgi.py, build the application with "
                "django_sse.asgi.get_asgi_application() instead of Django's."
            ),
            id="django_sse.W003",
        )
    ]
