"""Scripted chat models for deterministic tests of the LLM paths."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk


class ScriptedChatModel(GenericFakeChatModel):
    """A GenericFakeChatModel whose ``bind_tools`` returns itself, so structured outputs and
    tool calls come from the scripted ``AIMessage`` turns. Every turn reports token usage."""

    matloop_label: str = "scripted:test"
    calls: int = 0

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # noqa: D102
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # noqa: D102
        self.calls += 1
        result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        # A repeated turn is the same object: copy it so each reply is a message of its own.
        msg = result.generations[0].message.model_copy(deep=True, update={"id": None})
        if isinstance(msg, AIMessage) and not msg.usage_metadata:
            msg.usage_metadata = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
        result.generations[0].message = msg
        return result

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # noqa: D102
        # Streamed (astream_events, stream_mode="messages"): the text word by word, then the
        # tool calls and token usage in the last chunk, as provider chat models stream them.
        msg = self._generate(messages, stop=stop, run_manager=run_manager,
                             **kwargs).generations[0].message
        text = msg.content if isinstance(msg.content, str) else ""
        for word in [w for w in re.split(r"(\s)", text) if w]:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word, id=msg.id))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk
        calls = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                 for i, c in enumerate(getattr(msg, "tool_calls", []) or [])]
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", id=msg.id, tool_call_chunks=calls, usage_metadata=msg.usage_metadata,
            chunk_position="last"))


def tool_turn(name: str, args: dict[str, Any], call_id: str = "call-1") -> AIMessage:
    """A turn that calls a tool (or answers with a structured-output schema)."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


def text_turn(text: str) -> AIMessage:
    """A plain text turn."""
    return AIMessage(content=text)


def scripted(turns: Iterable[AIMessage], *, label: str = "scripted:test",
             repeat_last: bool = False) -> ScriptedChatModel:
    """A scripted model; with ``repeat_last`` the final turn repeats forever."""
    turns = list(turns)
    stream = itertools.chain(turns, itertools.repeat(turns[-1])) if repeat_last else iter(turns)
    return ScriptedChatModel(messages=stream, matloop_label=label)


def json_turn(payload: dict[str, Any]) -> AIMessage:
    """A turn that answers with JSON in its text (no tool call)."""
    return AIMessage(content="```json\n" + json.dumps(payload) + "\n```")


def lc_tools(specs: Iterable[Any]) -> dict[str, Any]:
    """Tool specs as the LangChain tools an LLM calls (JSON strings in and out), by name."""
    return {spec.name: spec.as_langchain() for spec in specs}


def toolbox(*families: Iterable[Any]) -> Any:
    """A Toolbox of the given tool specs."""
    from matloop.tools.base import Toolbox

    box = Toolbox()
    for family in families:
        for spec in family:
            box.add(spec)
    return box
