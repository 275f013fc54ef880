"""The tests' settings with a CSRF token that page scripts cannot read, for
tests/browser/test_helper_requests.py: ``SSE_TEST_CSRF=httponly`` sets
CSRF_COOKIE_HTTPONLY, ``SSE_TEST_CSRF=sessions`` CSRF_USE_SESSIONS."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

CSRF_COOKIE_HTTPONLY = os.environ.get("SSE_TEST_CSRF") == "httponly"
CSRF_USE_SESSIONS = os.environ.get("SSE_TEST_CSRF") == "sessions"
