"""MkDocs hook: the docstrings' Sphinx roles (:class:`X`) as links to the API reference.

mkdocstrings reads the docstrings as Markdown, where a role would print literally. Each
role becomes an optional cross-reference: a name is resolved where its docstring stands
(mkdocstrings' ``scoped_crossrefs``), and one the reference does not document (a private
helper, another library) stays plain code.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from typing import Any

from markdown import Extension, Markdown
from markdown.inlinepatterns import InlineProcessor
from mkdocs_autorefs import AutorefsInlineProcessor

# `~a.b.C` shows `C` and `title <a.b.C>` shows `title`, as in Sphinx.
_ROLE = r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([^`]+)`"
_TITLED = re.compile(r"(.+?)\s*<([^<>]+)>")


class _Role(InlineProcessor):
    def handleMatch(self, m: Any, data: str) -> tuple[etree.Element, int, int]:
        target = m.group(2)
        if titled := _TITLED.fullmatch(target):
            title, target = titled.groups()
        else:
            title = target.rsplit(".", 1)[-1] if m.group(1) else target
        # The hook mkdocstrings sets while it renders a docstring resolves names in its scope.
        hook = self.md.inlinePatterns[AutorefsInlineProcessor.name].hook
        identifier = target if hook is None else hook.expand_identifier(target)
        ref = etree.Element("autoref", {"identifier": identifier, "optional": ""})
        code = etree.SubElement(ref, "code")
        code.text = title
        return ref, m.start(0), m.end(0)


class _Roles(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        # Above the backtick pattern (190), which would take the role's code first.
        md.inlinePatterns.register(_Role(_ROLE, md), "sphinx_role", 200)


def on_config(config: Any) -> Any:
    """Add the extension to the pages' and mkdocstrings' Markdown (they share the list)."""
    config.markdown_extensions.append(_Roles())
    return config
