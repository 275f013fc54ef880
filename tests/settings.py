"""Settings for the test suite and for the ASGI servers the end-to-end tests start."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SECRET_KEY = "tests-only-not-secret"
# SSE_TEST_DEBUG=1: a server the end-to-end tests start with DEBUG on.
DEBUG = os.environ.get("SSE_TEST_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django_sse",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# django-htmx (the htmx tests, tests/browser/test_htmx.py): its app for htmx 2 and 4 and
# their SSE extensions as static files, its middleware in front of every stream. It does
# not install on every Python/Django pair the matrix runs; there those tests skip.
try:
    import django_htmx  # noqa: F401
except ImportError:
    HTMX = False
else:
    HTMX = True
    INSTALLED_APPS.append("django_htmx")
    MIDDLEWARE.append("django_htmx.middleware.HtmxMiddleware")
ROOT_URLCONF = "tests.urls"
ASGI_APPLICATION = "tests.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SSE_TEST_DB", ":memory:"),
    }
}
# SSE_TEST_POSTGRES=host: run the suite against PostgreSQL instead (make test-postgres);
# SSE_TEST_POSTGRES_NAME: the database, for servers of a test's own (tests/chaos/).
if os.environ.get("SSE_TEST_POSTGRES"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["SSE_TEST_POSTGRES"],
        "NAME": os.environ.get("SSE_TEST_POSTGRES_NAME", "django_sse"),
        "USER": "postgres",
    }
# SSE_TEST_MYSQL=host: against MariaDB/MySQL instead (make test-mysql; user root, no
# password; the test database is test_ + SSE_TEST_MYSQL_DB, test_django_sse by default).
# utf8mb4 so that any text round-trips; read committed, Django's default on MySQL, stated
# because the docs recommend it: each statement sees the latest commits, and publishers
# to one channel queue on the counter row's lock (_history.append()) either way.
if os.environ.get("SSE_TEST_MYSQL"):
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.mysql",
        "HOST": os.environ["SSE_TEST_MYSQL"],
        "NAME": os.environ.get("SSE_TEST_MYSQL_DB", "django_sse"),
        "USER": "root",
        "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},  # type: ignore[dict-item]
        "TEST": {"CHARSET": "utf8mb4"},  # type: ignore[dict-item]
    }
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
USE_TZ = True
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/accounts/login/"
# StreamLog writes run in worker threads, outside the transaction a test runs in, so
# in-process tests only log where they ask to (tests/test_tracking.py); the servers
# that the end-to-end tests start always log.
DJANGO_SSE = {"LOG_STREAMS": os.environ.get("SSE_TEST_LOG_STREAMS") == "1"}
# SSE_TEST_SETTINGS: more DJANGO_SSE keys, as JSON, for a server an end-to-end test starts.
DJANGO_SSE.update(json.loads(os.environ.get("SSE_TEST_SETTINGS", "{}")))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_sse": {"handlers": ["console"], "level": "INFO"}},
}

# Broadcast (tests/broadcast/, tests/e2e/test_broadcast.py). History is read and
# written from several threads at once; SQLite's shared in-memory test database fails
# a read that meets another connection's write lock ("database table is locked")
# instead of waiting for it as a file database does, so the test database is a file,
# one per test run.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {  # type: ignore[assignment]
        "NAME": os.path.join(tempfile.gettempdir(), f"django-sse-tests-{os.getpid()}.sqlite3")
    }
# The end-to-end broadcast servers share a Redis channel layer under a prefix of their
# test's own; everything else uses broadcast's embedded in-memory layer.
if os.environ.get("SSE_TEST_REDIS_PREFIX"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": os.environ.get("SSE_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
                        "socket_timeout": 10,
                    }
                ],
                "prefix": os.environ["SSE_TEST_REDIS_PREFIX"],
            },
        }
    }
    # Stream limits' slots, shared by the servers of one test (tests/e2e/test_limits.py).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("SSE_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            "KEY_PREFIX": os.environ["SSE_TEST_REDIS_PREFIX"],
        }
    }
