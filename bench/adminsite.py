"""The Django project bench/admin_scale.py measures: the admin on a PostgreSQL database
of the benchmark's own.

Configured here, in code, so the benchmark cannot pick up the test suite's settings or
its database. The database's name and host come from ``BENCH_ADMIN_DB`` and
``BENCH_ADMIN_PGHOST``, which admin_scale.py sets from its arguments before importing
this module. DEBUG stays off: the benchmark captures queries with Django's
``CaptureQueriesContext``, which works without it.
"""

from __future__ import annotations

import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",
    ALLOWED_HOSTS=["testserver"],
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.admin",
        "django_sse",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    ROOT_URLCONF="adminsite",
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("BENCH_ADMIN_PGHOST", "127.0.0.1"),
            "NAME": os.environ.get("BENCH_ADMIN_DB", "django_sse_admin_scale"),
            "USER": "postgres",
        }
    },
    TEMPLATES=[
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
    ],
    USE_TZ=True,
    STATIC_URL="/static/",
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

# The URLs need the app registry, so they come after setup().
from django.contrib import admin  # noqa: E402
from django.urls import path  # noqa: E402

urlpatterns = [path("admin/", admin.site.urls)]
