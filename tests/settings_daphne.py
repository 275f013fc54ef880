"""tests.settings with daphne first in INSTALLED_APPS: ``manage.py runserver`` is then
daphne's (ASGI), as in a project that follows the README. The application it serves is
``SSE_TEST_ASGI_APPLICATION`` (a dotted path), tests.asgi's by default."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = ["daphne", *INSTALLED_APPS]
ASGI_APPLICATION = os.environ.get("SSE_TEST_ASGI_APPLICATION", "tests.asgi.application")
