"""The embeddings of the served bank's store index, for ``langgraph.store.json``.

LangGraph's server loads ``store.index.embed`` from a file path (a
``module:attribute`` name is read as ``provider:model``), so the config names
this file's ``embeddings``:

```text
"store": {"index": {"embed": "./langchain_intercascade/server/store_index.py:embeddings",
                    "dims": 256, "fields": ["key_text"]}}
```

The path is relative to the folder the server runs in: the project root for
``langgraph dev``. ``embeddings`` is
:func:`~langchain_intercascade.server.store.served_embeddings`, the object the
served bank embeds with too, built from the ``INTERCASCADE_*`` settings:
bag-of-words (256 dimensions) with the scripted models, else
:func:`~langchain_intercascade.models.local_embeddings` (384 for
all-MiniLM-L6-v2). It is built when the server reads it, at start, not when this
module is imported.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from langchain_intercascade.server.store import served_embeddings


def __getattr__(name: str) -> Embeddings:
    if name == "embeddings":
        return served_embeddings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
