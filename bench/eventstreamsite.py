"""The same fan-out scenario served by django-eventstream, the peer we compare with.

``uvicorn bench.eventstreamsite:application``: its events view for channel ``bench`` at
``/sub/`` and ``/pub/?data=...``, which answers with the monotonic time just before
``send_event()``. Its default configuration: no storage, in-process delivery; with
``BENCH_REDIS_PREFIX`` set, its Redis pub/sub for several processes.

``BENCH_GRIP_URL`` puts it behind Pushpin as its docs say: django-grip's
``GripMiddleware`` and ``GRIP_URL`` (Pushpin's publish endpoint, with ``iss`` and
``key`` to check the ``Grip-Sig`` of the requests Pushpin forwards). Its events view
then answers each request that came through Pushpin with GRIP hold instructions, and
``send_event()`` publishes to Pushpin. ``BENCH_COUNT_REQUESTS`` counts requests by kind
(bench/_requestcount.py).
"""

from __future__ import annotations

import importlib
import os
import time

from django.conf import settings

REDIS = bool(os.environ.get("BENCH_REDIS_PREFIX"))
GRIP_URL = os.environ.get("BENCH_GRIP_URL", "")

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_eventstream"],
    MIDDLEWARE=["django_grip.GripMiddleware"] if GRIP_URL else [],
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    **({"EVENTSTREAM_REDIS": {"host": "127.0.0.1", "port": 6379, "db": 0}} if REDIS else {}),
    **({"GRIP_URL": GRIP_URL} if GRIP_URL else {}),
)

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
if os.environ.get("BENCH_COUNT_REQUESTS"):
    # By its full name, as the server imports this module (bench.eventstreamsite).
    application = importlib.import_module("bench._requestcount").counting(application)

import django_eventstream  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django_eventstream import send_event  # noqa: E402


def publish(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    send_event("bench", "message", request.GET["data"])
    return JsonResponse({"started": started})


urlpatterns = [
    path("sub/", include(django_eventstream.urls), {"channels": ["bench"]}),
    path("pub/", publish),
]
