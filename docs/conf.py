"""Sphinx configuration for the docs site: ``make docs`` builds it into build/docs/.

The pages stay plain Markdown (MyST) so that they read the same on a repository host.
What only the site needs is added here at build time, not written into the pages:

- index.md's "Contents" list becomes the site's navigation (a hidden toctree in the same
  order), so the list and the sidebar cannot disagree;
- links to ``../bench/README.md`` and ``../CHANGELOG.md`` point at the pages that include
  those files (benchmarks.md, changelog.md);
- ``{django-commands}`` renders every management command's ``--help``.

Broken internal links and heading anchors are warnings (MyST's cross-reference check),
and ``make docs`` turns warnings into errors.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, its models included: a minimal project around it.
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.admin",
        "django_sse",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    USE_TZ=True,
)
django.setup()

import django_sse  # noqa: E402

project = "django-sse-kit"
author = "django-sse-kit contributors"
copyright = "django-sse-kit contributors"
release = version = django_sse.__version__  # the one place the version is kept

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# GitHub's anchors for headings, so `page.md#a-heading` works on the site and there;
# a link to a missing page or anchor is a warning (myst.xref_missing).
myst_heading_anchors = 6
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"django_sse {release}"
html_static_path: list[str] = []

CONTENTS = re.compile(r"^\d+\.\s+\[[^\]]+\]\((?P<page>[\w-]+)\.md\)", re.MULTILINE)
# Files outside docs/ that a page includes, and the page.
INCLUDED = {"../bench/README.md": "benchmarks.md", "../CHANGELOG.md": "changelog.md"}


def add_navigation(app: Any, docname: str, source: list[str]) -> None:
    """Build-time edits of the Markdown source; the files themselves stay untouched."""
    text = source[0]
    if docname == root_doc:
        contents = text.split("## Contents", 1)[1]
        pages = CONTENTS.findall(contents)
        if not pages:
            raise ValueError("index.md: no pages found in its Contents list")
        toctree = "\n".join(["", "```{toctree}", ":hidden:", "", *pages, "```", ""])
        text += toctree
    for outside, page in INCLUDED.items():
        text = text.replace(f"]({outside}", f"]({page}")
    source[0] = text


def management_commands() -> str:
    """Each of django_sse's management commands with its ``--help``, as Markdown."""
    from django.core.management import get_commands, load_command_class

    os.environ["COLUMNS"] = "88"  # argparse wraps its help to the terminal's width
    parts = []
    for name, app in sorted(get_commands().items()):
        if app != "django_sse":
            continue
        command = load_command_class(app, name)
        help_text = io.StringIO()
        command.create_parser("manage.py", name).print_help(help_text)
        parts.append(f"### `{name}`\n\n```text\n{help_text.getvalue().rstrip()}\n```\n")
    return "\n".join(parts)


def expand_commands(app: Any, docname: str, source: list[str]) -> None:
    source[0] = source[0].replace("<!-- django-commands -->", management_commands())


def setup(app: Any) -> dict[str, Any]:
    from pygments.lexers.special import TextLexer

    app.add_lexer("cron", TextLexer)  # a crontab line in stream-logs.md
    app.connect("source-read", add_navigation)
    app.connect("source-read", expand_commands)
    return {"parallel_read_safe": True}
