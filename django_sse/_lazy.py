"""Lazy public names for a package's ``__init__`` (PEP 562).

A name is imported from its module on first use, so importing the package (from
settings, say) never imports Django's models or an optional extra before it is needed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(
    package: str, locations: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__``; ``locations`` maps names to modules."""

    def __getattr__(name: str) -> Any:
        module_name = locations.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module_name), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
