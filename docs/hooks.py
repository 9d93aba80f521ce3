"""MkDocs hook: show the docstrings' Sphinx roles (:class:`X`) as code, as Sphinx would.

mkdocstrings reads the docstrings as Markdown, where a role would print literally.
"""

from __future__ import annotations

import xml.etree.ElementTree as etree
from typing import Any

from markdown import Extension, Markdown
from markdown.inlinepatterns import InlineProcessor

# `~a.b.C` shows `C`, as in Sphinx.
_ROLE = r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`"


class _Role(InlineProcessor):
    def handleMatch(self, m: Any, data: str) -> tuple[etree.Element, int, int]:
        code = etree.Element("code")
        code.text = m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)
        return code, m.start(0), m.end(0)


class _Roles(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        # Above the backtick pattern (190), which would take the role's code first.
        md.inlinePatterns.register(_Role(_ROLE, md), "sphinx_role", 200)


def on_config(config: Any) -> Any:
    """Add the extension to the pages' and mkdocstrings' Markdown (they share the list)."""
    config.markdown_extensions.append(_Roles())
    return config
