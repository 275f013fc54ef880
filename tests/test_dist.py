"""The sdist and wheel that ``make dist`` builds: their contents, their metadata, and a
new project that installs the wheel (not editable) and streams an event under uvicorn.

They check what is in dist/; without a build there they skip ("make dist" first), and
fail where the run requires them (``.ci/run``: ``DJANGO_SSE_TEST_REQUIRE`` with ``dist``).
"""

from __future__ import annotations

import configparser
import email.parser
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import django_sse
from django_sse.protocol import EventParser, MessageEvent
from tests.needs import unavailable
from tests.servers import free_port

pytestmark = pytest.mark.dist

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
NAME = f"django_sse_kit-{django_sse.__version__}"
# Supported Django releases, newest last: each has its classifier.
DJANGO_RELEASES = ("4.2", "5.2", "6.0", "6.1")
INSTALL_TIMEOUT = 180


def _built(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    if not found:
        unavailable("dist", f"no {pattern} in dist/: run `make dist` first")
    return found[-1]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return _built(f"{NAME}-py3-none-any.whl")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return _built(f"{NAME}.tar.gz")


def source_files(folder: str) -> set[str]:
    """The repository's files under ``folder`` (relative to the root), build debris aside."""
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".tmp")
        and path.name != "db.sqlite3"
    }


def test_twine_check_strict(wheel: Path, sdist: Path) -> None:
    if importlib.util.find_spec("twine") is None:
        unavailable("dist", "twine is not installed (the dist extra)")
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_has_the_whole_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = source_files("django_sse")
    missing = sorted(package - names)
    assert not missing, f"the wheel lacks {missing} (setup.cfg's package_data?)"
    # What the issue names, spelled out, so that a rename is noticed here too.
    for required in (
        "django_sse/py.typed",
        "django_sse/static/django_sse/sse.js",
        "django_sse/static/django_sse/dashboard.css",
        "django_sse/templates/admin/django_sse/streamlog/change_list.html",
        "django_sse/templates/admin/django_sse/streamlog/dashboard.html",
        f"{NAME}.dist-info/licenses/LICENSE",
    ):
        assert required in names, f"the wheel lacks {required}"
    migrations = {n for n in package if re.fullmatch(r"django_sse/migrations/\d{4}_\w+\.py", n)}
    assert len(migrations) >= 7
    assert migrations <= names
    others = sorted(n for n in names if not n.startswith(("django_sse/", f"{NAME}.dist-info/")))
    assert not others, f"the wheel has files outside the package: {others}"


def test_sdist_has_tests_docs_and_license(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = (
        source_files("django_sse")
        | source_files("tests")
        | source_files("docs")
        | {"LICENSE", "README.md", "CHANGELOG.md", "setup.cfg", "pyproject.toml", "Makefile"}
    )
    missing = sorted(expected - names)
    assert not missing, f"the sdist lacks {missing} (MANIFEST.in?)"
    # The docs site's benchmarks page includes bench/README.md.
    assert "bench/README.md" in names


def metadata(wheel: Path) -> Message:
    text = zipfile.ZipFile(wheel).read(f"{NAME}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def newest_python() -> str:
    """The newest Python 3 minor version on this machine (python3.N or pyenv's)."""
    found = {f"3.{sys.version_info.minor}"}
    for minor in range(10, 20):
        if shutil.which(f"python3.{minor}"):
            found.add(f"3.{minor}")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in pyenv_root.glob("3.*") if pyenv_root.is_dir() else []:
        if match := re.match(r"3\.(\d+)\.\d+$", version.name):
            found.add(f"3.{match[1]}")
    return max(found, key=lambda v: int(v.split(".")[1]))


def test_metadata(wheel: Path) -> None:
    meta = metadata(wheel)
    assert meta["Name"] == "django-sse-kit"
    assert meta["Version"] == django_sse.__version__
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License"] == "MIT" or meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    django_versions = [
        c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Framework :: Django ::")
    ]
    assert tuple(django_versions) == DJANGO_RELEASES
    assert f"Programming Language :: Python :: {newest_python()}" in classifiers
    assert "Typing :: Typed" in classifiers
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    extras = set(setup["options.extras_require"])
    assert set(meta.get_all("Provides-Extra") or []) == extras
    assert {"client", "broadcast", "llm", "metrics"} <= extras
    assert meta.get_content_type() == "text/markdown" or "markdown" in (
        meta["Description-Content-Type"] or ""
    )


# A new project, as a user makes one.


def quickstart() -> dict[str, str]:
    """The README Quickstart's python block, split at its ``# file.py`` comments."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    parts = re.split(r"^# (\w+\.py)\n", block, flags=re.MULTILINE)
    return {name: code.strip() + "\n" for name, code in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.fixture(scope="module")
def project(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel and uvicorn, and a project made by startproject."""
    folder = tmp_path_factory.mktemp("installed")
    venv = folder / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=folder)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", str(wheel), "uvicorn"], cwd=folder)
    site = folder / "site"
    site.mkdir()
    run([str(venv / "bin" / "django-admin"), "startproject", "mysite", str(site)], cwd=folder)
    files = quickstart()
    settings = site / "mysite" / "settings.py"
    # As the Quickstart says, less daphne: this project runs under uvicorn.
    assert '"django_sse"' in files["settings.py"]
    text = settings.read_text()
    text = text.replace("INSTALLED_APPS = [\n", 'INSTALLED_APPS = [\n    "django_sse",\n', 1)
    settings.write_text(text + '\nASGI_APPLICATION = "mysite.asgi.application"\n')
    (site / "mysite" / "views.py").write_text(files["views.py"])
    urls = site / "mysite" / "urls.py"
    urls.write_text(
        urls.read_text().replace(
            "urlpatterns = [", "from mysite.views import Clock\n\nurlpatterns = [", 1
        )
        + files["urls.py"].replace("urlpatterns = [", "urlpatterns += [", 1)
    )
    run([python, "manage.py", "migrate", "--verbosity", "0"], cwd=site)
    return site


def run(command: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_installed_package_is_the_wheel(project: Path) -> None:
    python = str(project.parent / "venv" / "bin" / "python")
    code = (
        "import django; django.setup(); import django_sse, pathlib\n"
        "from django.contrib.staticfiles import finders\n"
        "from django.template.loader import get_template\n"
        "print(pathlib.Path(django_sse.__file__).parent)\n"
        "print(finders.find('django_sse/sse.js'))\n"
        "get_template('admin/django_sse/streamlog/dashboard.html')\n"
    )
    env_code = f"import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'\n{code}"
    package, static = run([python, "-c", env_code], cwd=project).split()
    assert "site-packages" in package
    assert str(ROOT) not in package
    assert static.startswith(package)
    # All migrations applied, the StreamLog table among them.
    shown = run([python, "manage.py", "showmigrations", "django_sse"], cwd=project)
    assert shown.count("[X]") >= 7
    assert "[ ]" not in shown


def test_new_project_streams_under_uvicorn(project: Path) -> None:
    python = str(project.parent / "venv" / "bin" / "python")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    server = subprocess.Popen(
        [python, "-m", "uvicorn", "mysite.asgi:application", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        event = read_first_event(port, "/clock/")
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert event is not None, f"no event from the server:\n{output}"
    assert (event.id, event.json()) == ("0", {"tick": 0}), output
    # The stream's log row, written by the installed app into the migrated database.
    count = run(
        [python, "manage.py", "shell", "-c",
         "from django_sse.models import StreamLog; print(StreamLog.objects.count())"],
        cwd=project,
    )  # fmt: skip
    assert int(count.split()[-1]) >= 1


def read_first_event(port: int, path: str, timeout: float = 30.0) -> MessageEvent | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
    with sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, body = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"text/event-stream" in head.lower(), head
        parser = EventParser()
        buffer = body  # chunked transfer encoding: the stream's bytes are in chunks
        while time.monotonic() < deadline:
            data, buffer = dechunk(buffer)
            if data and (events := parser.feed(data)):
                return events[0]
            buffer += sock.recv(65536)
    return None


def dechunk(buffer: bytes) -> tuple[bytes, bytes]:
    """The payload of the complete chunks at the start of ``buffer``, and the rest."""
    data = b""
    while b"\r\n" in buffer:
        size_line, rest = buffer.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if len(rest) < size + 2:
            break
        data += rest[:size]
        buffer = rest[size + 2 :]
    return data, buffer
