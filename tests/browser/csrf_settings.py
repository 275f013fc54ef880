"""The tests' settings with another CSRF set-up, for tests/browser/test_helper_requests.py
and tests/browser/test_csrf_cookie_name.py: ``SSE_TEST_CSRF=httponly`` sets
CSRF_COOKIE_HTTPONLY, ``SSE_TEST_CSRF=sessions`` CSRF_USE_SESSIONS,
``SSE_TEST_CSRF_COOKIE`` is the CSRF_COOKIE_NAME and ``SSE_TEST_CSRF_HEADER`` the
CSRF_HEADER_NAME."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

CSRF_COOKIE_HTTPONLY = os.environ.get("SSE_TEST_CSRF") == "httponly"
CSRF_USE_SESSIONS = os.environ.get("SSE_TEST_CSRF") == "sessions"
CSRF_COOKIE_NAME = os.environ.get("SSE_TEST_CSRF_COOKIE", "csrftoken")
CSRF_HEADER_NAME = os.environ.get("SSE_TEST_CSRF_HEADER", "HTTP_X_CSRFTOKEN")
