"""Skip a test whose outside resource is missing, unless the run requires that resource.

CI sets ``DJANGO_SSE_TEST_REQUIRE="chromium redis pushpin"``: there a missing resource
fails the test instead of skipping it, so a green CI run has really run those tests.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(resource: str) -> bool:
    return resource in os.environ.get("DJANGO_SSE_TEST_REQUIRE", "").split()


def unavailable(resource: str, reason: str) -> NoReturn:
    if required(resource):
        pytest.fail(f"{reason} (DJANGO_SSE_TEST_REQUIRE includes {resource!r})", pytrace=False)
    pytest.skip(reason)
