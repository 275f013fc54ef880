"""The Django project the benchmarks serve: ``uvicorn bench.benchsite:application``.

Settings are configured here, in code, so the benchmark needs no DJANGO_SETTINGS_MODULE
and cannot pick up the test suite's middleware by accident. Deliberately minimal (no
middleware, DEBUG off) so that what is measured is the streaming path: our SSEView
against a bare StreamingHttpResponse doing the same job. The views and URLs are in
``bench/benchviews.py``.

StreamLog rows (``LOG_STREAMS``, on by default in django_sse) are off here, so nothing
touches the database. Setting ``BENCH_STREAM_LOG_DB`` to a migrated sqlite file turns
them on, to measure what logging adds (``migrate_stream_log_db()`` prepares the file).
"""

from __future__ import annotations

import os

from django.conf import settings

from django_sse.asgi import get_asgi_application

STREAM_LOG_DB = os.environ.get("BENCH_STREAM_LOG_DB", "")

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django_sse",
    ],
    MIDDLEWARE=[],
    ROOT_URLCONF="bench.benchviews",
    # request_started/finished still open and close connections; nothing else queries.
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": STREAM_LOG_DB or ":memory:",
        }
    },
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    # Keep-alive stays at its default (15 s); the flood views turn it off.
    # Metrics are counted (prometheus-client is in the bench extra) unless BENCH_METRICS
    # is "off".
    DJANGO_SSE={
        "LOG_STREAMS": bool(STREAM_LOG_DB),
        "METRICS": os.environ.get("BENCH_METRICS") != "off",
    },
)

# What django_sse asks projects to use; on Django 5.0+ it is Django's own, untouched.
application = get_asgi_application()


def migrate_stream_log_db() -> None:
    """Create the tables in ``BENCH_STREAM_LOG_DB``; run in its own process, not the server."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


if __name__ == "__main__":
    migrate_stream_log_db()
