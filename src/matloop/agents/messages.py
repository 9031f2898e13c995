"""The message-order rules chat providers enforce, checked before a request is sent.

OpenAI-style chat completions (OpenAI, llama.cpp, vLLM, Ollama, most compatible servers):

* system messages come first;
* an assistant message with tool calls is followed by exactly one tool message per call id,
  in the order of the calls, before any other message;
* a tool message answers a call of the assistant message just before it (no stray results).

Anthropic's Messages API, after LangChain's conversion (system messages become the
``system`` parameter; consecutive user messages and tool results merge into one user turn):

* at most one system message, and only first;
* turns alternate user / assistant, starting with a user turn;
* the tool results of an assistant turn's tool calls are all in the next user turn;
* an assistant turn is never empty (no text and no tool call).

Tool calls count whether LangChain parsed them (``tool_calls``) or not
(``invalid_tool_calls``, e.g. arguments cut off at ``max_tokens``): both are sent back to the
provider as calls and need their results. A call's arguments go back as the model wrote them,
and a server may refuse to read cut-off ones (llama-server answers HTTP 500 "Failed to parse
tool call arguments as JSON" to the whole request): :func:`closed_tool_arguments` sends them
as the JSON object they began instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.utils.json import parse_partial_json

from matloop.errors import MatloopError

Rules = Literal["openai", "anthropic"]


class MessageRuleError(MatloopError):
    """A message sequence a provider would reject (a bug in how matloop built it)."""


def call_ids(message: AIMessage) -> list[str]:
    """Ids of every tool call of an assistant message, parsed or not, in order."""
    calls = list(message.tool_calls or []) + list(message.invalid_tool_calls or [])
    return [str(c.get("id") or "") for c in calls]


def _kind(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, HumanMessage):
        return "user"
    return message.type


def openai_violations(messages: Sequence[BaseMessage]) -> list[str]:
    """Breaches of the OpenAI chat-completions rules (empty: the sequence is valid)."""
    problems: list[str] = []
    seen_other = False
    pending: list[str] = []
    answered_for: list[str] = []
    for i, message in enumerate(messages):
        kind = _kind(message)
        if kind == "system":
            if seen_other:
                problems.append(f"message {i}: system message after the conversation started")
            continue
        seen_other = True
        if kind == "tool":
            call_id = str(getattr(message, "tool_call_id", "") or "")
            if not pending:
                where = "twice" if call_id in answered_for else "without a preceding call"
                problems.append(f"message {i}: tool result {call_id!r} {where}")
            elif call_id != pending[0]:
                problems.append(f"message {i}: tool result {call_id!r} where the result of "
                                f"call {pending[0]!r} is due (one per call, in order)")
                pending.pop(0)
            else:
                answered_for.append(pending.pop(0))
            continue
        if pending:
            problems.append(f"message {i}: {kind} message before the results of tool call(s) "
                            f"{', '.join(repr(p) for p in pending)}")
            pending = []
        if isinstance(message, AIMessage):
            ids = call_ids(message)
            if any(not c for c in ids):
                problems.append(f"message {i}: a tool call without an id")
            if len(set(ids)) != len(ids):
                problems.append(f"message {i}: repeated tool call ids {ids}")
            pending = list(ids)
            answered_for = []
    if pending:
        problems.append(f"end: no results for tool call(s) {', '.join(repr(p) for p in pending)}")
    return problems


def anthropic_violations(messages: Sequence[BaseMessage]) -> list[str]:
    """Breaches of Anthropic's Messages API rules, after LangChain's merging of user turns."""
    problems: list[str] = []
    turns: list[tuple[str, list[int]]] = []  # (role, message indexes)
    for i, message in enumerate(messages):
        kind = _kind(message)
        if kind == "system":
            if i != 0:
                problems.append(f"message {i}: system message not first")
            continue
        role = "assistant" if kind == "assistant" else "user"
        if turns and turns[-1][0] == role == "user":
            turns[-1][1].append(i)  # LangChain merges consecutive user content and results
        else:
            turns.append((role, [i]))
    if not turns:
        return problems + ["no user message"]
    if turns[0][0] != "user":
        problems.append("the first turn is not a user turn")
    for (role_a, idx_a), (role_b, idx_b) in zip(turns, turns[1:], strict=False):
        if role_a == role_b:
            problems.append(f"messages {idx_a[-1]} and {idx_b[0]}: two {role_a} turns in a row")
    for n, (role, indexes) in enumerate(turns):
        if role != "assistant":
            continue
        message = messages[indexes[0]]
        assert isinstance(message, AIMessage)
        ids = call_ids(message)
        following = turns[n + 1][1] if n + 1 < len(turns) else []
        results = [str(getattr(messages[j], "tool_call_id", "")) for j in following
                   if _kind(messages[j]) == "tool"]
        missing = [c for c in ids if c not in results]
        if missing:
            problems.append(f"message {indexes[0]}: tool call(s) {missing} have no result in "
                            f"the next user turn")
        extra = [r for r in results if r not in ids]
        if extra:
            problems.append(f"tool result(s) {extra} answer no call of the assistant turn "
                            f"before them")
    for n, (role, indexes) in enumerate(turns):
        if role == "user" and (n == 0 or turns[n - 1][0] != "assistant"):
            stray = [str(getattr(messages[j], "tool_call_id", "")) for j in indexes
                     if _kind(messages[j]) == "tool"]
            if stray:
                problems.append(f"tool result(s) {stray} without an assistant turn before them")
    for i, message in enumerate(messages):
        if isinstance(message, AIMessage) and not call_ids(message) and not (
                message.content.strip() if isinstance(message.content, str)
                else message.content):
            problems.append(f"message {i}: empty assistant turn")
    return problems


def violations(messages: Sequence[BaseMessage], rules: Rules) -> list[str]:
    """Breaches of one provider family's rules."""
    return anthropic_violations(messages) if rules == "anthropic" else \
        openai_violations(messages)


def rules_for(provider: str) -> Rules:
    """The rule family of a provider name (``anthropic`` or everything OpenAI-like)."""
    return "anthropic" if provider.lower().startswith("anthropic") else "openai"


def check(messages: Sequence[BaseMessage], rules: Rules, *, role: str) -> None:
    """Raise when a request would break its provider's rules.

    Raises:
        MessageRuleError: The first breaches, naming the role that built the messages.
    """
    found = violations(messages, rules)
    if found:
        raise MessageRuleError(
            f"{role}: the messages break {rules}'s rules: {'; '.join(found[:3])}",
            hint="this is a bug in matloop; please report it with events.jsonl")


def closed_arguments(text: str) -> str:
    """Tool-call arguments as a JSON object: unchanged when they are one, else the object
    they began (cut-off strings, lists and objects closed), else ``{}``."""
    try:
        if isinstance(json.loads(text), dict):
            return text
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        begun = parse_partial_json(text or "")
    except (json.JSONDecodeError, TypeError, ValueError):
        begun = None
    return json.dumps(begun if isinstance(begun, dict) else {})


def closed_tool_arguments(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages with every unparsed tool call's arguments closed into a JSON object
    (:func:`closed_arguments`), so a server that parses the history accepts it; ids, names and
    the order of calls and results are unchanged. The tool result of such a call says it was
    not run."""
    out: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.invalid_tool_calls:
            bad = [{**c, "args": closed_arguments(str(c.get("args") or ""))}
                   for c in message.invalid_tool_calls]
            message = message.model_copy(update={"invalid_tool_calls": bad})
        out.append(message)
    return out
