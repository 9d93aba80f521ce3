"""GGUF chat models on llama.cpp: the per-model lock, ``ChatLlamaCpp`` with usage, and logprobs."""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

_T = TypeVar("_T")


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
