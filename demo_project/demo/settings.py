"""Settings for the django_sse demo. Development settings: read the comments before reusing."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "true").lower() in {"1", "true", "yes", "on"}

# DEV ONLY: this fallback is public, so it signs nothing worth protecting. Anywhere else,
# set DJANGO_SECRET_KEY; with DEBUG off the fallback is refused.
_DEV_ONLY_SECRET_KEY = "dev-only-insecure-django-sse-demo-key"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _DEV_ONLY_SECRET_KEY)
if not DEBUG and SECRET_KEY == _DEV_ONLY_SECRET_KEY:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is off.")

ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    # First, so that `manage.py runserver` is daphne's ASGI server: Django's own
    # runserver speaks WSGI, where event streams are refused (check django_sse.W002).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_sse",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# django-htmx brings htmx 2 and 4 as static files, and request.htmx, for example 6. It
# needs Django 5.2+ (make demo installs it); without it that page says how to get it.
HTMX = importlib.util.find_spec("django_htmx") is not None
if HTMX:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("django_sse"), "django_htmx")
    MIDDLEWARE.append("django_htmx.middleware.HtmxMiddleware")

ROOT_URLCONF = "demo.urls"
ASGI_APPLICATION = "demo.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # DEMO_DB lets the test suite run the demo against a throwaway database.
        "NAME": os.environ.get("DEMO_DB", BASE_DIR / "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
LOGIN_URL = "/admin/login/"

# Broadcast (Example 5) goes through a channel layer. Without CHANNEL_LAYERS django_sse
# uses an in-memory one: a single server process, nothing to install. Set DEMO_REDIS_URL
# (e.g. redis://127.0.0.1:6379/0) to share events between several server processes.
if os.environ.get("DEMO_REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["DEMO_REDIS_URL"]], "prefix": "django_sse_demo"},
        }
    }

# Every key is optional (see django_sse.conf.DEFAULTS). The demo keeps the project-wide
# defaults and sets keep_alive and retry on the views that show them off.
DJANGO_SSE: dict[str, object] = {}

# `make demo-pushpin` sets DEMO_PUSHPIN_PORT: Pushpin serves the demo on that port and
# holds the live room's streams (Pushpin mode, docs/pushpin.md); Django publishes to
# Pushpin's publish endpoint next to it. The key only has to match Pushpin's sig_key,
# which `manage.py sse_pushpin` sets from it; a real site keeps its key secret.
if os.environ.get("DEMO_PUSHPIN_PORT"):
    DJANGO_SSE["PUSHPIN"] = {
        "PUBLISH_URL": f"http://127.0.0.1:{int(os.environ['DEMO_PUSHPIN_PORT']) + 10}/publish/",
        "SIG_KEY": "demo-only-pushpin-key",
    }

# django_sse logs failing streams (with their traceback, which never reaches the client)
# and StreamLog write errors; the examples log their cleanup under "demo". No propagation:
# daphne's command line also logs the root logger to the console, which would double lines.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "[{name}] {levelname} {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_sse": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "demo": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
