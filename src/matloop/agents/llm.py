"""Chat models from a ``provider:model`` string, and LLM calls with clean failures.

Supported: any LangChain chat model through ``init_chat_model`` (``openai:gpt-4o-mini``,
``anthropic:claude-sonnet-4-5``, ``ollama:llama3.1``, ...), any OpenAI-compatible server (vLLM,
llama.cpp, LM Studio) as ``openai:<model>`` with a base URL, and ``hf:/path/to/model`` for a
local Hugging Face model run in-process with transformers. ``none`` means the offline policy.
There is no fallback here: a model that cannot be built raises with what to install or set.

:class:`LLMClient` makes every call of a role: it checks the messages against the provider's
rules (:mod:`matloop.agents.messages`), records tokens, latency and the mechanism used, and
turns every failure of the call (server down, HTTP error, context overflow, timeout, an answer
cut at ``max_tokens``) into an :class:`LLMCallError` naming the role, the model, the kind of
failure and what to do. Structured answers use the provider's best mechanism: a json_schema
``response_format`` (OpenAI and compatible servers: llama.cpp, vLLM; Ollama's ``format``),
a forced tool call elsewhere (Anthropic and other tool-calling models), parsing JSON out of
the text only for models with neither. Schemas are bounded (:mod:`matloop.agents.structured`)
so a small model cannot write until its output limit; a malformed answer is retried with the
validation error, a bounded number of times.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ValidationError

from matloop.agents.messages import Rules, check, closed_tool_arguments, rules_for
from matloop.agents.structured import Dialect, WireSchema, wire_schema
from matloop.errors import MatloopError

T = TypeVar("T", bound=BaseModel)
Mechanism = Literal["json_schema", "tool", "text"]

#: Output limit of a chat model built without one (tokens): long enough for any role's answer,
#: short enough that a rambling model stops.
DEFAULT_MAX_TOKENS = 2048
#: Time limit of one request (s) when none is given; local CPU servers need minutes.
DEFAULT_TIMEOUT_S = 300.0

_PROVIDER_PACKAGES = {
    "openai": "langchain-openai",
    "anthropic": "langchain-anthropic",
    "ollama": "langchain-ollama",
    "google_genai": "langchain-google-genai",
    "mistralai": "langchain-mistralai",
    "groq": "langchain-groq",
}


class LLMConfigError(MatloopError):
    """A model string that cannot be turned into a chat model."""


@dataclass
class ModelSpec:
    """A parsed model setting."""

    provider: str
    model: str
    base_url: str | None = None

    @property
    def label(self) -> str:
        """``provider:model`` (never includes credentials)."""
        return f"{self.provider}:{self.model}"


def parse_model_string(value: str, *, base_url: str | None = None) -> ModelSpec | None:
    """Parse ``provider:model`` (or ``none``) into a spec.

    Raises:
        LLMConfigError: The string has no provider or names an unknown one.
    """
    value = value.strip()
    if value.lower() in ("", "none", "offline"):
        return None
    if value.startswith("hf:"):
        return ModelSpec("hf", value[3:], None)
    if ":" not in value:
        raise LLMConfigError(
            f"model setting {value!r} has no provider",
            hint="write provider:model, e.g. openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, "
                 "ollama:llama3.1, hf:/path/to/model, or none for the offline policy",
        )
    provider, model = value.split(":", 1)
    return ModelSpec(provider.strip().lower(), model.strip(), base_url)


def make_chat_model(spec: ModelSpec, *, temperature: float = 0.0, api_key: str | None = None,
                    max_tokens: int | None = DEFAULT_MAX_TOKENS,
                    timeout_s: float | None = DEFAULT_TIMEOUT_S, **kwargs: Any) -> BaseChatModel:
    """Build the chat model a spec names, with an output limit and a request time limit.

    API keys come from the provider's usual environment variable (e.g. ``OPENAI_API_KEY``)
    or ``api_key``; they are passed to the client only and never logged. A local
    OpenAI-compatible server (a base URL) needs no key: a placeholder is sent when none is set.

    Args:
        max_tokens: Output tokens per call (``max_tokens``; Ollama's ``num_predict``; a local
            transformers model's ``max_new_tokens``). None leaves the provider's default.
        timeout_s: Seconds per request (None: the client's default).

    Raises:
        LLMConfigError: The provider's package is missing or the model cannot be built.
    """
    if spec.provider == "hf":
        from matloop.agents.local_hf import LocalHFChatModel

        if max_tokens is not None:
            kwargs.setdefault("max_new_tokens", max_tokens)
        return LocalHFChatModel.from_path(spec.model, temperature=temperature, **kwargs)
    from langchain.chat_models import init_chat_model

    options: dict[str, Any] = {"temperature": temperature, **kwargs}
    if spec.provider == "ollama":
        if max_tokens is not None:
            options.setdefault("num_predict", max_tokens)
        if timeout_s is not None:
            options.setdefault("client_kwargs", {"timeout": timeout_s})
    else:
        if max_tokens is not None:
            options.setdefault("max_tokens", max_tokens)
        if timeout_s is not None:
            options.setdefault("timeout", timeout_s)
    if spec.base_url:
        options["base_url"] = spec.base_url
    if api_key:
        options["api_key"] = api_key
    elif spec.provider == "openai" and spec.base_url and not os.environ.get("OPENAI_API_KEY"):
        options["api_key"] = "not-needed"  # local servers ignore it; the client insists on one
    try:
        return init_chat_model(spec.model, model_provider=spec.provider, **options)
    except ImportError as exc:
        package = _PROVIDER_PACKAGES.get(spec.provider, f"langchain-{spec.provider}")
        raise LLMConfigError(f"provider {spec.provider!r} is not installed ({exc})",
                             hint=f"pip install {package}") from exc
    except Exception as exc:  # bad provider names, missing keys...
        raise LLMConfigError(
            f"cannot build chat model {spec.label}: {type(exc).__name__}: {_scrub(str(exc))}",
            hint="check the provider name, the model name and its API key environment variable",
        ) from exc


_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|[A-Za-z0-9_\-]{32,})")


def _scrub(text: str) -> str:
    """Remove anything that looks like a key from text that may reach logs."""
    return _SECRET.sub("[redacted]", text)


# -- failures ----------------------------------------------------------------------------------

#: Failure kinds by exception class name, first match in this order over the exception's class
#: hierarchy (names, so optional provider packages need not be imported). Timeouts come before
#: connection errors: openai.APITimeoutError subclasses APIConnectionError.
_KINDS_BY_CLASS: tuple[tuple[str, frozenset[str]], ...] = (
    ("length", frozenset({"LengthFinishReasonError"})),
    ("context_overflow", frozenset({"ContextOverflowError"})),
    ("timeout", frozenset({"APITimeoutError", "ModelTimeoutError", "TimeoutException",
                          "TimeoutError"})),
    ("connection", frozenset({"APIConnectionError", "ModelConnectionError", "ConnectError",
                              "ConnectionError", "RemoteProtocolError", "NetworkError"})),
    ("auth", frozenset({"AuthenticationError", "PermissionDeniedError",
                        "ModelAuthenticationError", "ModelPermissionDeniedError"})),
    ("rate_limit", frozenset({"RateLimitError", "ModelRateLimitError"})),
    ("not_found", frozenset({"NotFoundError", "ModelNotFoundError"})),
    ("bad_request", frozenset({"BadRequestError", "UnprocessableEntityError",
                               "ModelInvalidRequestError"})),
    ("http_error", frozenset({"APIStatusError", "ModelAPIError", "ResponseError",
                              "HTTPStatusError", "InternalServerError"})),
)
_KINDS_BY_STATUS = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found",
                    413: "context_overflow", 422: "bad_request", 429: "rate_limit"}
#: How llama-server refuses a request whose history holds tool-call arguments cut off at
#: max_tokens (HTTP 500 "Failed to parse tool call arguments as JSON").
_CUT_ARGUMENTS = re.compile(r"parse tool call arguments", re.I)
#: How servers say that the prompt does not fit (llama.cpp, OpenAI, vLLM, Anthropic, Ollama).
_CONTEXT_WORDS = re.compile(
    r"exceed_context_size|exceeds? the (available )?context|context_length_exceeded|"
    r"maximum context length|context (window|length|size)|prompt is too long|"
    r"too many tokens|input tokens exceed", re.I)
FAILURE_TEXT = {
    "connection": "could not be reached",
    "timeout": "did not answer within the time limit",
    "context_overflow": "rejected the request: the prompt does not fit its context window",
    "length": "was cut off at its output limit (max_tokens)",
    "auth": "refused the credentials",
    "rate_limit": "refused the request: rate limit",
    "not_found": "does not serve this model",
    "bad_request": "rejected the request",
    "http_error": "failed with an HTTP error",
    "tool_arguments": "could not read tool-call arguments cut off at max_tokens={max_tokens}",
    "malformed": "gave no valid answer",
    "error": "failed",
}
FAILURE_HINTS = {
    "connection": "check that the server is running and the base URL (--base-url) is right; "
                  "continue with --resume when it is back, or run with --fallback offline",
    "timeout": "raise --llm-timeout, lower --llm-max-tokens {role}=N, or use a faster model; "
               "--resume continues the run",
    "context_overflow": "give the server a larger context (llama-server -c 16384) or use a "
                        "model with a longer context window",
    "length": "raise --llm-max-tokens {role}=N, or use a model that answers more briefly",
    "tool_arguments": "raise --llm-max-tokens {role}=N above {max_tokens} so a whole tool call "
                      "fits, or use a model that makes one call at a time",
    "auth": "set the provider's API key environment variable (e.g. OPENAI_API_KEY)",
    "rate_limit": "wait, then continue with --resume (or lower the request rate)",
    "not_found": "check the model name after the provider prefix (PROVIDER:MODEL)",
    "malformed": "use a stronger model for this role (--role-model {role}=PROVIDER:MODEL) or "
                 "run with --fallback offline",
}
_DEFAULT_HINT = ("see the llm_call events in events.jsonl for the server's message; use "
                 "another model for this role (--role-model {role}=PROVIDER:MODEL) or "
                 "--fallback offline")


class LLMCallError(MatloopError):
    """A role's LLM call that failed: transport, HTTP status, context overflow, timeout,
    output limit, or no valid answer.

    Attributes:
        role: The role that called (scientist, critic, planner, assistant, reporter...).
        model: ``provider:model``.
        kind: One of :data:`FAILURE_TEXT`'s keys.
        calls: Calls made for the answer that failed.
        partial: The text received before an answer was cut off (``length``), if any.
    """

    def __init__(self, message: str, *, hint: str | None = None, role: str = "",
                 model: str = "", kind: str = "error", calls: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.role, self.model, self.kind, self.calls = role, model, kind, calls
        self.partial = ""


class StructuredOutputError(LLMCallError):
    """A model that did not produce a valid structured answer within its retries."""


def failure_kind(exc: BaseException) -> str:
    """The kind of a failed call (``connection``, ``timeout``, ``context_overflow``...)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    kind = next((k for k, classes in _KINDS_BY_CLASS if names & classes), "error")
    status = getattr(exc, "status_code", None)
    if kind == "http_error" and isinstance(status, int):
        kind = _KINDS_BY_STATUS.get(status, "http_error")
    words = f"{failure_detail(exc)} {getattr(exc, 'body', '')}"
    if kind in ("bad_request", "http_error", "error") and _CUT_ARGUMENTS.search(words):
        kind = "tool_arguments"
    elif kind in ("bad_request", "http_error", "error") and _CONTEXT_WORDS.search(words):
        kind = "context_overflow"
    return kind


def failure_detail(exc: BaseException) -> str:
    """The server's own words about a failure, on one short line, credentials removed."""
    body = getattr(exc, "body", None)
    text = ""
    if isinstance(body, dict):
        inner = body.get("error", body)
        text = str(inner.get("message", "")) if isinstance(inner, dict) else str(inner)
    text = text or str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return _scrub(text if len(text) <= 240 else text[:237] + "...")


def call_failure(exc: BaseException, *, role: str, model: str, calls: int = 1,
                 max_tokens: int | None = None) -> LLMCallError:
    """The :class:`LLMCallError` a failed call becomes (``max_tokens``: the call's output
    limit, named in the message and hint of a failure it caused)."""
    kind = failure_kind(exc)
    status = getattr(exc, "status_code", None)
    where = f"HTTP {status}, " if isinstance(status, int) else ""
    limit = str(max_tokens) if max_tokens is not None else "?"
    return LLMCallError(
        f"{role}: {model} {FAILURE_TEXT[kind].format(max_tokens=limit)} ({where}"
        f"{type(exc).__name__}: {failure_detail(exc)})",
        hint=FAILURE_HINTS.get(kind, _DEFAULT_HINT).format(
            role=role, max_tokens=limit if max_tokens is not None else "the current limit"),
        role=role, model=model, kind=kind, calls=calls)


# -- calls -------------------------------------------------------------------------------------


@dataclass
class CallRecord:
    """What one LLM call cost, how it was made, and how it ended."""

    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    ok: bool = True
    error: str = ""
    mechanism: str = ""
    kind: str = ""
    finish_reason: str = ""


def structured_mechanism(model: Any) -> Mechanism:
    """How a model gives structured answers best: ``json_schema`` (a response-format schema
    the server decodes to: OpenAI and compatible servers, Ollama), ``tool`` (a forced tool
    call: Anthropic and other tool-calling models) or ``text`` (JSON read from the text)."""
    cls = type(model)
    if cls.__module__.startswith(("langchain_openai", "langchain_ollama")) and \
            cls.__name__ in ("ChatOpenAI", "AzureChatOpenAI", "ChatOllama"):
        return "json_schema"
    bind = getattr(cls, "bind_tools", None)
    if bind is not None and bind is not BaseChatModel.bind_tools:
        return "tool"
    return "text"


def wire_dialect(model: Any, mechanism: Mechanism) -> Dialect:
    """How a model's schemas are bounded (:mod:`matloop.agents.structured`): ``grammar`` for
    servers that decode to the schema (local OpenAI-compatible servers, Ollama, text models),
    ``openai`` for OpenAI's strict mode, ``tool`` for forced tool calls (Anthropic...)."""
    if mechanism == "tool":
        return "tool"
    if mechanism == "json_schema" and type(model).__name__ == "AzureChatOpenAI":
        return "openai"
    if mechanism == "json_schema" and type(model).__name__ == "ChatOpenAI":
        base = str(getattr(model, "openai_api_base", None) or "")
        return "openai" if not base or "api.openai.com" in base else "grammar"
    return "grammar"


def _finish_reason(reply: Any) -> str:
    meta = getattr(reply, "response_metadata", None) or {}
    return str(meta.get("finish_reason") or meta.get("stop_reason") or
               meta.get("done_reason") or "")


@dataclass
class LLMClient:
    """A chat model with the bookkeeping every agent call needs.

    Attributes:
        model: The chat model.
        label: ``provider:model`` for provenance.
        max_retries: Extra attempts after a malformed answer.
        on_call: Receives a :class:`CallRecord` after every call (budget and event log).
        max_tokens: The model's output limit, to fit structured-answer schemas into it.
        mechanism: How structured answers are asked for (default: the model's best,
            :func:`structured_mechanism`).
        rules: Message rules checked before each call (default: from the label's provider).
    """

    model: BaseChatModel
    label: str
    max_retries: int = 2
    on_call: Any = None
    records: list[CallRecord] = field(default_factory=list)
    max_tokens: int | None = None
    mechanism: Mechanism | None = None
    rules: Rules | None = None

    def _record(self, rec: CallRecord) -> None:
        self.records.append(rec)
        if self.on_call is not None:
            self.on_call(rec)

    def structured_mode(self) -> Mechanism:
        """The mechanism structured answers use."""
        return self.mechanism or structured_mechanism(self.model)

    def invoke(self, messages: list[BaseMessage], *, role: str, tools: list | None = None,
               tool_choice: str | None = None, mechanism: str = "chat",
               **options: Any) -> AIMessage:
        """One call (optionally with tools bound); usage is recorded.

        A model that cannot bind tools is called without them (its reply then has no tool
        calls, and the caller asks again or gives up). ``options`` are bound to the call
        (``response_format``, Ollama's ``format``).

        Raises:
            LLMCallError: The call failed (its kind says how).
            MessageRuleError: The messages break the provider's rules (a bug).
        """
        check(messages, self.rules or rules_for(self.label.split(":", 1)[0]), role=role)
        messages = closed_tool_arguments(messages)
        runnable: Any = self.model
        if tools:
            runnable = _bind_tools(self.model, tools, tool_choice)
        if options:
            runnable = runnable.bind(**options)
        start = time.perf_counter()
        try:
            reply = runnable.invoke(messages)
        except Exception as exc:  # every provider failure becomes a role failure
            failure = call_failure(exc, role=role, model=self.label,
                                   max_tokens=self.max_tokens)
            usage = getattr(getattr(exc, "completion", None), "usage", None)
            self._record(CallRecord(
                role, self.label, int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0),
                time.perf_counter() - start, ok=False,
                error=_scrub(f"{type(exc).__name__}: {failure_detail(exc)}"),
                mechanism=mechanism, kind=failure.kind,
                finish_reason="length" if failure.kind == "length" else ""))
            failure.partial = _partial_text(exc)
            raise failure from exc
        usage = getattr(reply, "usage_metadata", None) or {}
        self._record(CallRecord(role, self.label, int(usage.get("input_tokens", 0)),
                                int(usage.get("output_tokens", 0)),
                                time.perf_counter() - start, mechanism=mechanism,
                                finish_reason=_finish_reason(reply)))
        return reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))

    def structured(self, schema: type[T], system: str, user: str, *, role: str,
                   enums: dict[str, list[str]] | None = None) -> T:
        """Ask for an answer in ``schema``; retry malformed answers with the error, then raise.

        Args:
            enums: Allowed values of string fields by name (tool names, hypothesis ids), put
                into the schema sent.

        Raises:
            StructuredOutputError: No valid answer within ``1 + max_retries`` answers.
            LLMCallError: A call failed for another reason (transport, HTTP, timeout...).
        """
        mechanism = self.structured_mode()
        downgraded = False
        wire = self._wire(schema, mechanism, enums)
        messages: list[BaseMessage] = [SystemMessage(content=system),
                                       HumanMessage(content=user + _instruction(mechanism, wire))]
        errors: list[str] = []
        calls = 0
        while len(errors) <= self.max_retries:
            calls += 1
            try:
                reply = self.invoke(messages, role=role, mechanism=mechanism,
                                    **_call_options(self.model, mechanism, wire))
            except LLMCallError as exc:
                if exc.kind == "length":  # an answer cut at max_tokens: malformed, retried
                    spent = self.records[-1].output_tokens if self.records else 0
                    errors.append(f"cut off at the output limit after {spent} tokens")
                    messages += [AIMessage(content=(exc.partial[:300] + " ...") if exc.partial
                                           else "(cut off)"),
                                 HumanMessage(content="That answer was cut off at the output "
                                                      "limit. Answer again, much shorter.")]
                    continue
                if (mechanism == "json_schema" and not downgraded and
                        exc.kind in ("bad_request", "http_error") and
                        re.search(r"response_format|json_schema|json schema|grammar",
                                  exc.message, re.I)):
                    # the server does not take a response schema: fall back to the next best
                    downgraded = True
                    mechanism = "tool" if type(self.model).bind_tools is not \
                        BaseChatModel.bind_tools else "text"
                    self.mechanism = mechanism
                    wire = self._wire(schema, mechanism, enums)
                    messages[1] = HumanMessage(content=user + _instruction(mechanism, wire))
                    continue
                raise
            try:
                return wire.load(_payload(reply, mechanism, wire.name))  # type: ignore[return-value]
            except (ValueError, ValidationError) as exc:
                error = _short_error(exc)
                errors.append(error)
                messages += _feedback(reply, error, wire.name)
        raise StructuredOutputError(
            f"{role}: {self.label} gave no valid {schema.__name__} in {len(errors)} attempts "
            f"({'; '.join(errors)})"[:900],
            hint=FAILURE_HINTS["malformed"].format(role=role), role=role, model=self.label,
            kind="malformed", calls=calls)

    def _wire(self, schema: type[BaseModel], mechanism: Mechanism,
              enums: dict[str, list[str]] | None) -> WireSchema:
        return wire_schema(schema, dialect=wire_dialect(self.model, mechanism),
                           max_tokens=self.max_tokens, enums=enums)


class RecordedModel:
    """A chat model seen through an :class:`LLMClient`, for code that takes a plain chat model
    (the few-shot structure generator): each ``invoke`` is recorded (tokens, latency, event
    log) and a failed call raises :class:`LLMCallError`."""

    def __init__(self, client: LLMClient, *, role: str) -> None:
        self.client = client
        self.role = role

    @property
    def model_name(self) -> str:
        """``provider:model`` (provenance of generated structures)."""
        return self.client.label

    def invoke(self, messages: Any, config: Any = None, **kwargs: Any) -> AIMessage:
        """One recorded call."""
        return self.client.invoke(list(messages), role=self.role, mechanism="text")


def _bind_tools(model: Any, tools: list, tool_choice: str | None) -> Any:
    try:
        return model.bind_tools(tools, tool_choice=tool_choice) if tool_choice else \
            model.bind_tools(tools)
    except NotImplementedError:
        return model
    except (TypeError, ValueError):
        try:
            return model.bind_tools(tools)
        except NotImplementedError:
            return model


def _partial_text(exc: BaseException) -> str:
    completion = getattr(exc, "completion", None)
    try:
        return str(completion.choices[0].message.content or "")  # type: ignore[union-attr]
    except (AttributeError, IndexError, TypeError):
        return ""


def _instruction(mechanism: Mechanism, wire: WireSchema) -> str:
    if mechanism == "json_schema":
        return f"\n\nAnswer with one JSON object ({wire.name})."
    if mechanism == "tool":
        return f"\n\nAnswer by calling the tool {wire.name}."
    return (f"\n\nAnswer with one JSON object ({wire.name}) matching this schema, and nothing "
            f"else:\n{wire.describe()}")


def _call_options(model: Any, mechanism: Mechanism, wire: WireSchema) -> dict[str, Any]:
    if mechanism == "json_schema":
        if type(model).__name__ == "ChatOllama":
            return {"format": wire.schema}
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": wire.name, "schema": wire.schema, "strict": True}}}
    if mechanism == "tool":
        doc = (wire.model.__doc__ or wire.name).strip().splitlines()[0]
        return {"tools": [{"type": "function", "function": {
            "name": wire.name, "description": doc, "parameters": wire.schema}}],
            "tool_choice": wire.name}
    return {}


def _payload(reply: AIMessage, mechanism: Mechanism, name: str) -> Any:
    """The JSON object of an answer (from its tool call or its text)."""
    for call in reply.tool_calls or []:
        if call.get("name") == name:
            return call.get("args") or {}
    if reply.tool_calls:
        names = ", ".join(str(c.get("name")) for c in reply.tool_calls)
        raise ValueError(f"called unknown tool(s) {names}; expected {name}")
    if reply.invalid_tool_calls:
        raise ValueError(f"the arguments of the {name} call are not valid JSON (cut off at the "
                         f"output limit?)")
    text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    if mechanism == "json_schema":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    payload = extract_json(text)
    if payload is None:
        raise ValueError("no JSON object in the reply" if text.strip() else "empty reply")
    return payload


def _feedback(reply: AIMessage, error: str, name: str) -> list[BaseMessage]:
    """Messages that tell the model what was wrong, in an order every provider accepts: a
    reply with tool calls gets one tool result per call, any other reply a user message."""
    ids = [str(c.get("id") or "") for c in
           list(reply.tool_calls or []) + list(reply.invalid_tool_calls or [])]
    retry = f"That answer was not valid: {error}. Answer again with a valid {name}."
    if ids and all(ids):
        return [reply] + [ToolMessage(content=retry, tool_call_id=i) for i in ids]
    if ids:  # calls without ids cannot be answered: keep the text only
        reply = AIMessage(content=reply.content or "(a tool call without an id)")
    text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    return [reply if text.strip() else AIMessage(content="(empty reply)"),
            HumanMessage(content=retry)]


def extract_json(text: str) -> Any:
    """The first JSON object in ``text`` (fenced or bare), or None."""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    start = text.find("{")
    while start != -1:
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    candidates.append(text[start:i + 1])
                    break
        start = text.find("{", start + 1) if not candidates else -1
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return "; ".join(parts)
    return str(exc)[:300]
