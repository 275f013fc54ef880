"""The Django project the fan-out benchmark serves for django_sse's broadcast.

``uvicorn bench.broadcastsite:application``. One ChannelView on channel ``bench`` at
``/sub/`` and a publish endpoint at ``/pub/?data=...`` that answers with the monotonic
time just before ``apublish()``, so the client can measure publish-to-receipt latency
(CLOCK_MONOTONIC is one clock for every process on the machine).

``BENCH_DB`` names the migrated sqlite file holding the history (shared by the server
processes of one run); ``BENCH_REDIS_PREFIX`` switches from the in-memory channel layer
to channels_redis at 127.0.0.1:6379 under that prefix.

``BENCH_PUSHPIN`` (JSON: ``{"PUBLISH_URL": ..., "SIG_KEY": ...}``) turns Pushpin mode
on: ``DJANGO_SSE["PUSHPIN"]`` is that dict and the recovery URLs
(``django_sse.broadcast.urls``) are included at ``/sse/``. ``BENCH_COUNT_REQUESTS``
counts requests by kind (bench/_requestcount.py).
"""

from __future__ import annotations

import importlib
import json
import os
import time

from django.conf import settings

from django_sse.asgi import get_asgi_application

REDIS_PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "")
PUSHPIN = json.loads(os.environ.get("BENCH_PUSHPIN") or "null")

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_sse"],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_DB", ":memory:"),
            "OPTIONS": {"timeout": 30},
        }
    },
    CHANNEL_LAYERS=(
        {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": REDIS_PREFIX},
            }
        }
        if REDIS_PREFIX
        else {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    ),
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    DJANGO_SSE={"LOG_STREAMS": False, "BROADCAST_QUEUE_SIZE": 100, "PUSHPIN": PUSHPIN},
)

application = get_asgi_application()
if os.environ.get("BENCH_COUNT_REQUESTS"):
    # By its full name, as the server imports this module (bench.broadcastsite).
    application = importlib.import_module("bench._requestcount").counting(application)

from django.http import HttpRequest, JsonResponse  # noqa: E402  (after settings)
from django.urls import URLPattern, URLResolver, include, path  # noqa: E402

from django_sse.broadcast import ChannelView, apublish  # noqa: E402


class Subscribe(ChannelView):
    channels = ("bench",)


async def publish(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    event_id = await apublish("bench", request.GET["data"])
    return JsonResponse({"started": started, "id": event_id})


urlpatterns: list[URLPattern | URLResolver] = [
    path("sub/", Subscribe.as_view()),
    path("pub/", publish),
]
if PUSHPIN:
    urlpatterns.append(path("sse/", include("django_sse.broadcast.urls")))


def migrate() -> None:
    """Create the history tables in ``BENCH_DB``; run in its own process, not a server."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


if __name__ == "__main__":
    migrate()
