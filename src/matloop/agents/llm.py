"""Chat models from a ``provider:model`` string, and structured calls with bounded retries.

Supported: any LangChain chat model through ``init_chat_model`` (``openai:gpt-4o-mini``,
``anthropic:claude-sonnet-4-5``, ``ollama:llama3.1``, ...), any OpenAI-compatible server (vLLM,
llama.cpp, LM Studio) as ``openai:<model>`` with a base URL, and ``hf:/path/to/model`` for a
local Hugging Face model run in-process with transformers. ``none`` means the offline policy.
There is no fallback: a model that cannot be built raises with what to install or set.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from matloop.errors import MatloopError

T = TypeVar("T", bound=BaseModel)

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


class StructuredOutputError(MatloopError):
    """A model that did not produce a valid structured answer within its retries."""


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
                    **kwargs: Any) -> BaseChatModel:
    """Build the chat model a spec names.

    API keys come from the provider's usual environment variable (e.g. ``OPENAI_API_KEY``)
    or ``api_key``; they are passed to the client only and never logged.

    Raises:
        LLMConfigError: The provider's package is missing or the model cannot be built.
    """
    if spec.provider == "hf":
        from matloop.agents.local_hf import LocalHFChatModel

        return LocalHFChatModel.from_path(spec.model, temperature=temperature, **kwargs)
    from langchain.chat_models import init_chat_model

    options: dict[str, Any] = {"temperature": temperature, **kwargs}
    if spec.base_url:
        options["base_url"] = spec.base_url
    if api_key:
        options["api_key"] = api_key
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


@dataclass
class CallRecord:
    """What one LLM call cost."""

    role: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    ok: bool = True
    error: str = ""


@dataclass
class LLMClient:
    """A chat model with the bookkeeping every agent call needs.

    Attributes:
        model: The chat model.
        label: ``provider:model`` for provenance.
        max_retries: Extra attempts after a malformed answer.
        on_call: Receives a :class:`CallRecord` after every call (budget and event log).
    """

    model: BaseChatModel
    label: str
    max_retries: int = 2
    on_call: Any = None
    records: list[CallRecord] = field(default_factory=list)

    def _record(self, rec: CallRecord) -> None:
        self.records.append(rec)
        if self.on_call is not None:
            self.on_call(rec)

    def invoke(self, messages: list[BaseMessage], *, role: str, tools: list | None = None,
               ) -> AIMessage:
        """One raw call (optionally with tools bound); usage is recorded.

        A model that cannot bind tools is called without them (its reply then has no tool
        calls, and the caller asks again or gives up).
        """
        runnable: Any = self.model
        if tools:
            try:
                runnable = self.model.bind_tools(tools)
            except NotImplementedError:
                runnable = self.model
        start = time.perf_counter()
        try:
            reply = runnable.invoke(messages)
        except Exception as exc:
            self._record(CallRecord(role, self.label, latency_s=time.perf_counter() - start,
                                    ok=False, error=_scrub(f"{type(exc).__name__}: {exc}")))
            raise
        usage = getattr(reply, "usage_metadata", None) or {}
        self._record(CallRecord(role, self.label, int(usage.get("input_tokens", 0)),
                                int(usage.get("output_tokens", 0)),
                                time.perf_counter() - start))
        return reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))

    def structured(self, schema: type[T], system: str, user: str, *, role: str) -> T:
        """Ask for an answer in ``schema``; repair or retry malformed answers, then raise.

        The schema is offered as a tool (structured output); a reply that instead carries the
        JSON in its text is accepted too. Each failure is fed back to the model with the
        validation error so it can correct itself.

        Raises:
            StructuredOutputError: No valid answer within ``1 + max_retries`` calls.
        """
        schema_json = json.dumps(schema.model_json_schema())
        messages: list[BaseMessage] = [
            SystemMessage(content=system),
            HumanMessage(content=f"{user}\n\nAnswer by calling the tool {schema.__name__} "
                                 f"(or with one JSON object matching this schema):\n{schema_json}"),
        ]
        errors: list[str] = []
        for _attempt in range(self.max_retries + 1):
            reply = self.invoke(messages, role=role, tools=[schema])
            try:
                return _parse_reply(reply, schema)
            except (ValueError, ValidationError) as exc:
                error = _short_error(exc)
                errors.append(error)
                messages += [reply if reply.content or reply.tool_calls else
                             AIMessage(content="(empty reply)"),
                             HumanMessage(content=f"That answer was not valid: {error}. Reply "
                                                  f"again with a valid {schema.__name__}.")]
        raise StructuredOutputError(
            f"{role}: {self.label} gave no valid {schema.__name__} in {self.max_retries + 1} "
            f"attempts ({'; '.join(errors)})",
            hint="use a stronger model for this role (--role-model) or the offline policy",
        )


def _parse_reply(reply: AIMessage, schema: type[T]) -> T:
    for call in reply.tool_calls or []:
        if call.get("name") == schema.__name__:
            return schema.model_validate(call.get("args") or {})
    if reply.tool_calls:
        names = ", ".join(str(c.get("name")) for c in reply.tool_calls)
        raise ValueError(f"called unknown tool(s) {names}; expected {schema.__name__}")
    text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    payload = extract_json(text)
    if payload is None:
        raise ValueError("no JSON object in the reply" if text.strip() else "empty reply")
    return schema.model_validate(payload)


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
