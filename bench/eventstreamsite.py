"""The same fan-out scenario served by django-eventstream, the peer we compare with.

``uvicorn bench.eventstreamsite:application``: its events view for channel ``bench`` at
``/sub/`` and ``/pub/?data=...``, which answers with the monotonic time just before
``send_event()``. Its default configuration: no storage, in-process delivery; with
``BENCH_REDIS_PREFIX`` set, its Redis pub/sub for several processes.
"""

from __future__ import annotations

import os
import time

from django.conf import settings

REDIS = bool(os.environ.get("BENCH_REDIS_PREFIX"))

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_eventstream"],
    MIDDLEWARE=[],
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    **({"EVENTSTREAM_REDIS": {"host": "127.0.0.1", "port": 6379, "db": 0}} if REDIS else {}),
)

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

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
