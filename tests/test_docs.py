"""The docs' references to tests point at tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `tests/path.py::test_name` or `tests/path.py::TestClass::test_name`, in backquotes.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(?:(\w+)::)?(\w+)`")
PAGES = sorted((ROOT / "docs").glob("*.md"))


def defined(path: Path) -> set[str]:
    """``name`` and ``Class::name`` for every test function in the file."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_test_a_page_names_exists(page: Path) -> None:
    missing = []
    for path, cls, name in REFERENCE.findall(page.read_text()):
        test_file = ROOT / path
        wanted = f"{cls}::{name}" if cls else name
        if not test_file.exists() or wanted not in defined(test_file):
            missing.append(f"{path}::{wanted}")
    assert not missing, f"{page.name} names tests that do not exist: {missing}"


def test_the_security_page_names_tests() -> None:
    assert len(REFERENCE.findall((ROOT / "docs" / "security.md").read_text())) >= 30
