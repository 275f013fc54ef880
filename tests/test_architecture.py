"""The package's floor plan: imports inside django_sse run one way, and modules stay small.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a cycle
there is still two modules that each need the other to be read.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import django_sse

PACKAGE = Path(django_sse.__file__).parent
# Issue 16: split a module by job before it passes this.
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path
    for path in sorted(PACKAGE.rglob("*.py"))
    if "migrations" not in path.parts
}


def imported(path: Path) -> Iterator[str]:
    """The django_sse modules ``path`` imports."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                # ``from package import module`` names the module, not the package.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def import_graph() -> dict[str, set[str]]:
    return {
        name: {target for target in imported(path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    described = [
        " <-> ".join(component)
        + ": "
        + "; ".join(
            f"{source} -> {target}"
            for source in component
            for target in sorted(graph[source])
            if target in component
        )
        for component in found
    ]
    assert not found, "Import cycles in django_sse:\n" + "\n".join(described)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_readable_top_to_bottom(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        # The core never reaches up into what is built on it.
        ("django_sse.protocol", "django_sse"),
        ("django_sse.response", "django_sse.tracking"),
        ("django_sse.response", "django_sse.views"),
        ("django_sse.response", "django_sse.broadcast"),
        ("django_sse.views", "django_sse.broadcast"),
        ("django_sse.views", "django_sse.llm"),
        ("django_sse.broadcast", "django_sse.llm"),
        # Metrics are counted from below: the response, broadcast and llm call in.
        ("django_sse._metrics", "django_sse.response"),
        ("django_sse._metrics", "django_sse.broadcast"),
        ("django_sse._metrics", "django_sse.llm"),
        ("django_sse._metrics", "django_sse.metrics"),
        # The admin's dashboard is built on views and models, never the reverse.
        ("django_sse.views", "django_sse._dashboard"),
        ("django_sse.models", "django_sse._dashboard"),
    ],
)
def test_lower_layers_do_not_import_higher_ones(low: str, high: str) -> None:
    graph = import_graph()
    lows = [name for name in graph if name == low or name.startswith(f"{low}.")]
    leaks = [
        f"{name} -> {target}"
        for name in lows
        for target in graph[name]
        if (target == high or target.startswith(f"{high}.")) and not target.startswith(low)
    ]
    assert not leaks
