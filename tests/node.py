"""JavaScript clients for the tests: Node, with npm packages the tests install into a
cache folder of their own (SSE_TEST_NODE_CACHE, default ~/.cache/django-sse-tests/node).

Without node and npm the test skips, and fails where the run requires "node"
(DJANGO_SSE_TEST_REQUIRE, as .ci/run sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.needs import unavailable

CACHE = Path(
    os.environ.get("SSE_TEST_NODE_CACHE", Path.home() / ".cache" / "django-sse-tests" / "node")
)
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0


def packages(name: str, *specs: str) -> Path:
    """A folder with ``specs`` (npm install arguments) installed, reused while they
    stay the same."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            unavailable("node", f"{tool} is not installed (Node 18+ and npm run these tests)")
    folder = CACHE / name
    stamp = folder / "installed.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != list(specs):
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *specs],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if result.returncode:
            unavailable("node", f"npm install {' '.join(specs)} failed:\n{result.stderr[-2000:]}")
        stamp.write_text(json.dumps(list(specs)))
    return folder


def version(folder: Path, package: str) -> str:
    manifest = folder / "node_modules" / package / "package.json"
    found: str = json.loads(manifest.read_text())["version"]
    return found


def run(folder: Path, script: Path, *args: str) -> str:
    """Run ``script`` with ``folder``'s packages; its stdout, or an error with stderr."""
    result = subprocess.run(
        ["node", str(script), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, "NODE_PATH": str(folder / "node_modules")},
        cwd=folder,
    )
    if result.returncode:
        raise AssertionError(f"node {script.name} failed:\n{result.stderr[-4000:]}")
    return result.stdout
