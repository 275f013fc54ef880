"""Every ```python block in docs/*.md and README.md runs, or is checked as what it is.

A page reads top to bottom like a session: its blocks run in order in one namespace,
in a throwaway project (this suite's settings, django_sse installed, a temporary folder
on ``sys.path``). Kinds of block:

- **run** (the default): executed; top-level ``await`` runs in an event loop. A block
  that starts with a file comment with a folder (``# myapp/views.py``) becomes that
  module, so a later ``from myapp.views import ClockView`` finds it. Each ``SSEView``
  subclass (and each ``sse_response()`` function view) the block defines is then
  requested through Django's ``AsyncClient`` and must send an event that is not an
  ``error`` within a few seconds; views that need a login, a permission or a POST body
  are only defined.
- **doctest**: a block of ``>>>`` lines runs as a doctest in the page's namespace.
- ``<!-- snippet: fragment -->`` right before the block: code that cannot run alone (a
  method body, names the reader defines, a real server's URL). It must compile, and
  every name it imports from django_sse must exist.
- ``<!-- snippet: signature dotted.name -->``: a call signature; its parameters (names,
  kinds, defaults) must be the object's.

Every block: a ``DJANGO_SSE = {...}`` literal may use only keys the settings define.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import importlib
import inspect
import re
import signal
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, override_settings
from django.utils.module_loading import import_string

from django_sse import shutdown
from django_sse.conf import DEFAULTS
from django_sse.protocol import EventParser
from django_sse.views import SSEView

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>```+)\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>[\w-]+)(?:\s+(?P<arg>\S+))?\s*-->\s*$")
MODULE_HEADER = re.compile(r"^#\s*(?P<path>\w+(?:/\w+)+)\.py\s*$")
# A view must answer with a first event within this many seconds.
FIRST_EVENT_TIMEOUT = 5.0
# A block that runs longer than this fails (it waits on a network, say).
BLOCK_TIMEOUT = 30


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    kind: str  # run, doctest, fragment or signature
    arg: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def extract(page: Path) -> list[Block]:
    """The page's fenced code blocks, each with the kind its marker gives."""
    lines = page.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks = len(fence["indent"]), fence["ticks"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        code = textwrap.dedent("\n".join(line[indent:] for line in lines[i + 1 : end]))
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous)
        if marker:
            kind, arg = marker["kind"], marker["arg"]
        elif code.lstrip().startswith(">>>"):
            kind, arg = "doctest", None
        else:
            kind, arg = "run", None
        blocks.append(Block(page, i + 1, fence["lang"], code + "\n", kind, arg))
        i = end + 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    return [block for block in extract(page) if block.lang in ("python", "py")]


def compile_block(block: Block) -> types.CodeType:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code: types.CodeType = compile(block.code, block.where, "exec", flags=flags)
    return code


# Checks for every kind of block.


def check_settings_keys(block: Block, tree: ast.Module) -> None:
    """A ``DJANGO_SSE = {...}`` literal names only keys that django_sse.conf defines."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "DJANGO_SSE" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            keys = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            unknown = sorted(str(k) for k in keys - set(DEFAULTS))
            assert not unknown, f"{block.where}: DJANGO_SSE has no setting {unknown}"


def check_imports(block: Block, tree: ast.Module) -> None:
    """Every ``from django_sse... import X`` and ``import django_sse...`` resolves."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django_sse"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name) or _is_module(f"{node.module}.{alias.name}"), (
                    f"{block.where}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("django_sse"):
                    importlib.import_module(alias.name)


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def check_fragment(block: Block) -> None:
    try:
        tree = ast.parse(block.code, block.where)
        compile_block(block)
    except SyntaxError as error:
        # A method body (``yield`` or ``return`` at the top level) compiles as one.
        if "outside function" not in str(error):
            raise AssertionError(f"{block.where}: does not compile: {error}") from error
        body = textwrap.indent(block.code, "    ")
        tree = ast.parse(f"async def _fragment():\n{body}", block.where)
        compile(tree, block.where, "exec")
    check_imports(block, tree)
    check_settings_keys(block, tree)


def check_signature(block: Block) -> None:
    """``name(params)`` in the block has the parameters of the object ``arg`` names."""
    assert block.arg, f"{block.where}: a signature marker names its object"
    text = block.code.strip()
    params = text[text.index("(") + 1 : text.rindex(")")]
    documented = ast.parse(f"def _({params}\n): pass").body[0]
    assert isinstance(documented, ast.FunctionDef)
    expected = [
        (p.name, p.kind, None if p.default is p.empty else p.default)
        for p in inspect.signature(import_string(block.arg)).parameters.values()
    ]
    args = documented.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    found: list[tuple[str, inspect._ParameterKind, Any]] = [
        (a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, _literal(d))
        for a, d in zip(positional, defaults, strict=True)
    ]
    if args.vararg:
        found.append((args.vararg.arg, inspect.Parameter.VAR_POSITIONAL, None))
    found += [
        (a.arg, inspect.Parameter.KEYWORD_ONLY, _literal(d))
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg:
        found.append((args.kwarg.arg, inspect.Parameter.VAR_KEYWORD, None))
    assert found == expected, f"{block.where}: the signature of {block.arg} is {expected}"


def _literal(node: ast.expr | None) -> Any:
    return None if node is None else ast.literal_eval(node)


# Running a page.


class Page:
    """One page's blocks run in order, in one namespace, with a folder for its modules."""

    def __init__(self, page: Path, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.namespace: dict[str, Any] = {"__name__": f"snippets_{page.stem.replace('-', '_')}"}

    def run(self, block: Block) -> None:
        def timed_out(signum: int, frame: Any) -> None:
            raise TimeoutError(f"still running after {BLOCK_TIMEOUT} s")

        previous = signal.signal(signal.SIGALRM, timed_out)
        signal.alarm(BLOCK_TIMEOUT)
        try:
            self._run(block)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    def _run(self, block: Block) -> None:
        check_settings_keys(block, ast.parse(block.code, block.where))
        header = MODULE_HEADER.match(block.code.splitlines()[0])
        code = compile_block(block)
        before = dict(self.namespace)
        if header:
            self._run_module(header["path"], block)
        elif code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, self.namespace))
        else:
            exec(code, self.namespace)
        added = {k: v for k, v in self.namespace.items() if before.get(k) is not v}
        for name, value in added.items():
            self._exercise(block, name, value)

    def _run_module(self, path: str, block: Block) -> None:
        file = self.folder / f"{path}.py"
        for package in file.relative_to(self.folder).parents:
            if package.name:
                (self.folder / package).mkdir(exist_ok=True)
                (self.folder / package / "__init__.py").touch()
        file.write_text(block.code)
        importlib.invalidate_caches()
        module = importlib.import_module(path.replace("/", "."))
        self.namespace.update(
            {k: v for k, v in vars(module).items() if not k.startswith("__")},
        )

    def _exercise(self, block: Block, name: str, value: Any) -> None:
        if getattr(value, "__module__", "").startswith(("django_sse", "django.")):
            return  # imported, not defined by the docs
        if _is_stream_view(value):
            view = value.as_view()
        elif _is_sse_function_view(value):
            view = value
        else:
            return
        urls = types.ModuleType(f"{self.namespace['__name__']}_urls")
        from django.urls import path

        urls.urlpatterns = [path("snippet/", view)]  # type: ignore[attr-defined]
        sys.modules[urls.__name__] = urls
        try:
            with override_settings(ROOT_URLCONF=urls.__name__):
                first = asyncio.run(first_event())
        finally:
            del sys.modules[urls.__name__]
        assert first is not None, f"{block.where}: {name} sent no event"
        assert first.event != "error", f"{block.where}: {name} sent an error: {first.data}"


def _is_stream_view(value: Any) -> bool:
    """An SSEView subclass with its own stream(), open to anonymous GET requests."""
    return (
        isinstance(value, type)
        and issubclass(value, SSEView)
        and "stream" in vars(value)
        and "get" in value.http_method_names
        and not value.login_required
        and value.has_permission is SSEView.has_permission
    )


def _is_sse_function_view(value: Any) -> bool:
    if not inspect.iscoroutinefunction(value):
        return False
    parameters = list(inspect.signature(value).parameters)
    return parameters == ["request"] and "sse_response" in value.__code__.co_names


async def first_event() -> Any:
    """GET /snippet/ and parse the stream up to its first event, then end it."""
    response = await AsyncClient().get("/snippet/")
    assert response.status_code == 200, f"status {response.status_code}"
    parser = EventParser()
    chunks = aiter(response.streaming_content)  # type: ignore[attr-defined]

    async def read() -> Any:
        async for chunk in chunks:
            if events := parser.feed(chunk):
                return events[0]
        return None

    try:
        return await asyncio.wait_for(read(), FIRST_EVENT_TIMEOUT)
    finally:
        response.stop("client_disconnected")  # type: ignore[attr-defined]
        async for _ in chunks:
            pass


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for the page's modules, and its modules gone afterwards."""
    # docs/lifecycle.md calls end_all_streams(): the process's streams end after it.
    monkeypatch.setattr(shutdown, "_shutting_down", shutdown.is_shutting_down())
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None) or str(getattr(module, "__path__", ""))
            if str(tmp_path) in where:
                del sys.modules[name]


CHECKS: dict[str, Callable[[Block], None]] = {
    "fragment": check_fragment,
    "signature": check_signature,
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_page_snippets(page: Path, page_folder: Path) -> None:
    runner = Page(page, page_folder)
    for block in python_blocks(page):
        if block.kind in CHECKS:
            CHECKS[block.kind](block)
        elif block.kind == "doctest":
            run_doctest(block, runner.namespace)
        elif block.kind == "run":
            try:
                runner.run(block)
            except AssertionError:
                raise
            except Exception as error:
                raise AssertionError(
                    f"{block.where}: the block does not run ({type(error).__name__}: {error});"
                    " fix it, or mark it <!-- snippet: fragment --> if it cannot run alone"
                ) from error
        else:
            pytest.fail(f"{block.where}: unknown snippet kind {block.kind!r}")


def run_doctest(block: Block, namespace: dict[str, Any]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, dict(namespace), block.where, block.where, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert not runner.failures, "".join(failures)


def test_markers_stand_before_python_blocks() -> None:
    """A marker that is followed by no python block (or a typo in one) is an error."""
    misplaced = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if not (line.lstrip().startswith("<!--") and "snippet:" in line):
                continue
            marker = MARKER.match(line)
            fence = FENCE.match(next((x for x in lines[number:] if x.strip()), ""))
            python = fence is not None and fence["lang"] in ("python", "py")
            if not (marker and python and marker["kind"] in CHECKS):
                misplaced.append(f"{page.relative_to(ROOT)}:{number}")
    assert not misplaced, f"snippet markers not before a python block: {misplaced}"


def test_every_page_has_blocks_found() -> None:
    """The extractor sees the blocks there are (a broken fence pattern finds none)."""
    found = sum(len(python_blocks(page)) for page in PAGES)
    fences = re.compile(r"^\s*```python$", re.MULTILINE)
    written = sum(len(fences.findall(page.read_text())) for page in PAGES)
    assert found == written > 50
