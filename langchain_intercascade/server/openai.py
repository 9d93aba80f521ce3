"""An OpenAI-compatible endpoint on the served cascade: ``/v1/chat/completions`` and ``/v1/models``.

Any OpenAI client reaches the cascade by pointing its ``base_url`` at the
LangGraph server's ``/v1``; the model name is an assistant's name or id
(``GET /v1/models`` lists them). Each completion is one stateless run of that
assistant, through LangGraph's own run API in-process (``get_client(url=None)``),
so it uses the deployment's store, checkpointer and graph factory.

The bank namespace is the authenticated caller's identity behind auth, else
``"default"``; the request's ``user`` field does not choose it. The in-process
client skips the server's auth, so the route binds the namespace in the run's
config itself, from the user that the server's auth put on the request
(``enable_custom_route_auth``, which every config of this repository sets).

The response is OpenAI's, plus ``intercascade`` (route, confidence, threshold,
strategies shown, strategy stored, usage per model and role, errors, the tenant's
strong-call ``budget`` use, namespace) on the completion and on the last chunk of a
stream; a turn refused by a budget with ``over="raise"`` answers 429
(``insufficient_quota``, as a spent OpenAI quota does). ``usage`` sums every model
call of the turn: weak answer, judge, strong answer, distillation. Sampling
parameters (``temperature``, ``max_tokens``, ``stop``, ...) are accepted and
ignored: the configured models' settings apply. Tools, ``n > 1`` and non-text
content are refused (400).

Streams relay tokens as :class:`~langchain_intercascade.ChatInterCascade` does:
the weak answer's tokens are held until the judge accepts it, the strong
model's stream live.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from functools import cache
from typing import Any, Literal

import httpx
from langchain_core.messages import BaseMessage, messages_from_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from langchain_intercascade.bank import DEFAULT_NAMESPACE
from langchain_intercascade.budgets import StrongCallBudgetExceeded
from langchain_intercascade.chat_model import StrongStreamDropped, _Relay
from langchain_intercascade.costs import total_usage
from langchain_intercascade.graph import NAMESPACE_KEY, CascadeTurn
from langchain_intercascade.server.graph import AUTH_USER_ID_KEY, caller_namespace, served_options

ROLES = {"system": "system", "developer": "system", "user": "human", "assistant": "ai"}
"""The message roles taken, and the LangChain message type of each."""

FINISH_REASONS = ("stop", "length", "content_filter")


class OpenAIError(Exception):
    """A request the endpoint answers with an error in OpenAI's format.

    Args:
        status: The HTTP status.
        message: What is wrong.
        param: The request field at fault, if one is.
        code: A short machine-readable code.
        type: OpenAI's error type.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)

    def response(self) -> JSONResponse:
        """The error as OpenAI sends it."""
        return JSONResponse({"error": self.body.model_dump()}, status_code=self.status)


# -- the request ---------------------------------------------------------------


class RequestMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    """``stream_options``: only ``include_usage`` is read."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body; fields not named here are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[RequestMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    tools: list[Any] | None = None
    functions: list[Any] | None = None


def _text(content: str | list[dict[str, Any]] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        parts = []
        for number, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise OpenAIError(
                    400, "only text content parts are supported", param=f"{param}.[{number}]"
                )
            parts.append(part["text"])
        text = "".join(parts)
    if not text.strip():
        raise OpenAIError(400, "a message's content is empty", param=param, code="empty_content")
    return text


def parse_request(body: Any) -> ChatCompletionRequest:
    """Read and check a chat completion request.

    Args:
        body: The decoded JSON body.

    Returns:
        The request.

    Raises:
        OpenAIError: 400, naming what is wrong: a malformed body, no messages,
            an unknown role, empty or non-text content, no user message,
            ``n`` other than 1, or tools.
    """
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"])
        raise OpenAIError(400, f"{param}: {error['msg']}", param=param or None) from None
    if not request.messages:
        raise OpenAIError(400, "messages is empty", param="messages")
    for number, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise OpenAIError(
                400,
                f"unknown role {message.role!r}: the cascade takes {', '.join(ROLES)}",
                param=f"messages.[{number}].role",
                code="invalid_value",
            )
        _text(message.content, f"messages.[{number}].content")
    if all(message.role != "user" for message in request.messages):
        raise OpenAIError(400, "messages holds no user message", param="messages")
    if request.n != 1:
        raise OpenAIError(400, "the cascade gives one choice: n must be 1", param="n")
    for name in ("tools", "functions"):
        if getattr(request, name):
            raise OpenAIError(400, f"the cascade calls no client {name}", param=name)
    return request


def cascade_input(request: ChatCompletionRequest) -> dict[str, Any]:
    """The run input for a checked request: its messages as LangChain message dicts."""
    return {
        "messages": [
            {"type": ROLES[m.role], "content": _text(m.content, "")} for m in request.messages
        ]
    }


# -- the response --------------------------------------------------------------


class ErrorBody(BaseModel):
    """The ``error`` of an OpenAI error response."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class Usage(BaseModel):
    """Tokens of every model call of the turn (weak, judge, strong, distillation)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The answer."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    """The one choice of a completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A ``chat.completion``, with the turn's decisions in ``intercascade``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    intercascade: dict[str, Any]


class Delta(BaseModel):
    """What a chunk adds to the answer."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    """The one choice of a chunk."""

    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """A ``chat.completion.chunk``; the last one of a stream carries ``intercascade``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    intercascade: dict[str, Any] | None = None


class ModelCard(BaseModel):
    """One ``model``: a served assistant."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "intercascade"


class ModelList(BaseModel):
    """The ``GET /v1/models`` answer."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


def cascade_state(values: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON state with its messages as LangChain messages again, as the graph gave it."""
    state = dict(values)
    state["messages"] = [_message(m) for m in values.get("messages") or []]
    if isinstance(values.get("weak_message"), dict):
        state["weak_message"] = _message(values["weak_message"])
    return state


def _message(data: dict[str, Any]) -> BaseMessage:
    return messages_from_dict([{"type": data["type"], "data": data}])[0]


def usage_of(turn: CascadeTurn) -> Usage:
    """The turn's tokens, summed over every model and role."""
    total = total_usage(turn.usage)
    return Usage(
        prompt_tokens=total["input_tokens"],
        completion_tokens=total["output_tokens"],
        total_tokens=total["total_tokens"],
    )


def extension(turn: CascadeTurn, namespace: str) -> dict[str, Any]:
    """The ``intercascade`` field: the turn's decisions and the namespace it used."""
    return {**turn.metadata(), "namespace": namespace}


def finish_reason(turn: CascadeTurn) -> str:
    """The answering model's finish reason when OpenAI has it, else ``"stop"``."""
    reason = turn.final_message.response_metadata.get("finish_reason")
    return reason if reason in FINISH_REASONS else "stop"


def completion(
    values: dict[str, Any], *, model: str, namespace: str, id: str, created: int
) -> ChatCompletion:
    """A finished run's state as a ``chat.completion``.

    Args:
        values: The run's output state, as JSON.
        model: The model name the request gave.
        namespace: The bank namespace the run was bound to.
        id: The completion's id.
        created: Its Unix time.

    Returns:
        The completion.
    """
    turn = CascadeTurn.from_state(cascade_state(values))
    return ChatCompletion(
        id=id,
        created=created,
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=turn.final_message.text),
                finish_reason=finish_reason(turn),
            )
        ],
        usage=usage_of(turn),
        intercascade=extension(turn, namespace),
    )


def model_cards(assistants: list[dict[str, Any]]) -> list[ModelCard]:
    """The assistants as models: by name, or by id where several share the name."""
    names = [a.get("name") for a in assistants]
    return [
        ModelCard(
            id=a["name"] if a.get("name") and names.count(a["name"]) == 1 else a["assistant_id"],
            created=_unix_time(a.get("created_at")),
        )
        for a in assistants
    ]


def resolve_model(model: str, assistants: list[dict[str, Any]]) -> str:
    """The id of the assistant that ``model`` names (its id, else its unique name).

    Raises:
        OpenAIError: 404 for an unknown model, 400 for a name several share.
    """
    for assistant in assistants:
        if assistant["assistant_id"] == model:
            return str(assistant["assistant_id"])
    named = [a["assistant_id"] for a in assistants if a.get("name") == model]
    if len(named) > 1:
        raise OpenAIError(
            400, f"{len(named)} assistants are named {model!r}: use an assistant id", param="model"
        )
    if not named:
        raise OpenAIError(
            404,
            f"the model {model!r} does not exist: GET /v1/models lists the assistants",
            param="model",
            code="model_not_found",
        )
    return str(named[0])


def _unix_time(stamp: Any) -> int:
    if not isinstance(stamp, str):
        return 0
    # Python 3.10's fromisoformat takes no "Z".
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


# -- the routes ----------------------------------------------------------------


def request_namespace(request: Request) -> str:
    """The bank namespace of a request: its authenticated caller's identity, else the default.

    Raises:
        OpenAIError: 500 when the server's auth did not run on the route (the
            config lacks ``enable_custom_route_auth``): behind auth the caller
            would be unknown.
    """
    if "user" not in request.scope:
        raise _server_error(
            "the server did not authenticate this route: set http.enable_custom_route_auth"
        )
    user = request.scope["user"]
    if not getattr(user, "is_authenticated", False):
        return DEFAULT_NAMESPACE
    bound = caller_namespace({"configurable": {AUTH_USER_ID_KEY: user.identity}})
    return bound or DEFAULT_NAMESPACE


@cache
def _client() -> Any:
    from langgraph_sdk import get_client  # the server extra's

    # No url: LangGraph's in-process transport, which skips the server's auth.
    return get_client(url=None, api_key=None)


async def _assistants() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 100
    while True:
        batch = await _client().assistants.search(limit=page, offset=len(found))
        found.extend(batch)
        if len(batch) < page:
            return found


def _run_failed(error: Any) -> OpenAIError:
    error = error if isinstance(error, dict) else {"message": str(error)}
    message = f"the cascade failed: {error.get('error', 'Error')}: {error.get('message', '')}"
    # The graph refuses an input it cannot take (oversized, ...) with a ValueError.
    if error.get("error") == "ValueError":
        return OpenAIError(400, message)
    # Over a strong-call budget with over="raise": OpenAI's answer to a spent quota.
    if error.get("error") == StrongCallBudgetExceeded.__name__:
        return OpenAIError(429, message, type="insufficient_quota", code="budget_exceeded")
    return _server_error(message)


def _as_error(failed: Exception) -> OpenAIError:
    if isinstance(failed, OpenAIError):
        return failed
    if isinstance(failed, httpx.HTTPStatusError):
        answer = failed.response
        return _server_error(f"the run API answered {answer.status_code}: {answer.text}")
    return _server_error(str(failed))  # StrongStreamDropped: the shown tokens cannot be taken back


def _server_error(message: str) -> OpenAIError:
    return OpenAIError(500, message, type="server_error")


async def chat_completions(request: Request) -> Response:
    """``POST /v1/chat/completions``: one turn of the cascade the model names."""
    try:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise OpenAIError(400, "the body is not JSON") from None
        chat = parse_request(body)
        namespace = request_namespace(request)
        assistant = resolve_model(chat.model, await _assistants())
    except OpenAIError as error:
        return error.response()
    run = {
        "input": cascade_input(chat),
        "config": {"configurable": {NAMESPACE_KEY: namespace}},
    }
    id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if chat.stream:
        include_usage = chat.stream_options is not None and chat.stream_options.include_usage
        events = _stream(assistant, run, chat.model, namespace, id, created, include_usage)
        return StreamingResponse(events, media_type="text/event-stream")
    try:
        values = await _client().runs.wait(None, assistant, **run, raise_error=False)
    except httpx.HTTPStatusError as refused:
        return _as_error(refused).response()
    if not isinstance(values, dict) or "__error__" in values:
        failure = values.get("__error__") if isinstance(values, dict) else values
        return _run_failed(failure).response()
    answer = completion(values, model=chat.model, namespace=namespace, id=id, created=created)
    return JSONResponse(answer.model_dump())


async def _stream(
    assistant: str,
    run: dict[str, Any],
    model: str,
    namespace: str,
    id: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    def chunk(**fields: Any) -> str:
        part = ChatCompletionChunk(id=id, created=created, model=model, **fields)
        return f"data: {part.model_dump_json(exclude_none=True)}\n\n"

    def text(content: str) -> str:
        return chunk(choices=[ChunkChoice(delta=Delta(content=content))])

    options = served_options()
    # As ChatInterCascade builds it; the served cascade always has a bank.
    relay = _Relay(
        hide_strategy_block=options.distill and options.distill_mode == "joint",
        stream_strong=options.strong_threshold is None,
        model_names={},
    )
    yield chunk(choices=[ChunkChoice(delta=Delta(role="assistant", content=""))])
    try:
        parts = _client().runs.stream(
            None, assistant, **run, stream_mode=["messages-tuple", "values"]
        )
        async for part in parts:
            if part.event == "error":
                raise _run_failed(part.data)
            if part.event == "values":
                released = relay.on_state(cascade_state(part.data))
            elif part.event == "messages":
                released = relay.on_token(_message(part.data[0]), part.data[1])
            else:
                continue
            for piece in released:
                if piece.message.text:
                    yield text(piece.message.text)
        last = relay.finish().message.text
    except (OpenAIError, StrongStreamDropped, httpx.HTTPStatusError) as failed:
        yield f"data: {json.dumps({'error': _as_error(failed).body.model_dump()})}\n\n"
        return
    if last:
        yield text(last)
    turn = CascadeTurn.from_state(relay.state)
    done = ChunkChoice(finish_reason=finish_reason(turn))
    decisions = extension(turn, namespace)
    if include_usage:
        yield chunk(choices=[done])
        yield chunk(choices=[], usage=usage_of(turn), intercascade=decisions)
    else:
        yield chunk(choices=[done], intercascade=decisions)
    yield "data: [DONE]\n\n"


async def models(request: Request) -> Response:
    """``GET /v1/models``: the deployment's assistants."""
    try:
        request_namespace(request)  # the same auth check as completions
    except OpenAIError as error:
        return error.response()
    cards = model_cards(await _assistants())
    return JSONResponse(ModelList(data=cards).model_dump())


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
]
"""The endpoint's routes, which :mod:`~langchain_intercascade.server.app` mounts."""
