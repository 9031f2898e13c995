"""The chat graph: a research assistant with the campaign's tools, remembering the thread.

Without a chat model, the offline assistant (:mod:`matloop.agents.chat`) reads the message,
calls the tools that answer it and writes the answer from their typed results. With one, it is
a standard tool-calling loop (model -> tools -> model, bounded by ``max_tool_rounds``), with the
offline assistant as a floor under it. The model is offered the tools with bounded argument
schemas (:mod:`matloop.agents.tool_args`), and a call whose arguments were cut off anyway is
answered "not run" and sent back closed into valid JSON
(:func:`matloop.agents.messages.closed_tool_arguments`).

**The floor rule.** The offline reader reads every user message (about a millisecond). The
offline assistant answers in the model's place when

1. the model's final reply of the turn called no tool, while the reader maps the message with
   confidence >= :data:`FLOOR_CONFIDENCE` and nothing missing to an intent a tool answers
   (stability, known phases, property, compare, synthesis, relax, run question, literature;
   not a new campaign, which is only started when asked for); the model's reply stays in the
   history, the offline answer is the last message;
2. the model call fails (provider error, malformed output) or the tool-round limit is reached
   without an answer, and the reader understood the message (nothing missing): otherwise the
   failure is reported as it is.

Either way the final message carries a :class:`~matloop.agents.chat.models.ChatAnswer` in
``additional_kwargs["answer"]`` (text, tables, hull figures, structures, sources; for a model's
answer the structured parts come from the tool results of the turn), and the conversation's
entities (last formulas, system, structure, run) are kept in the thread's state under
``context``, so follow-ups such as "and its band gap?" work in both modes.

Long tool calls report progress as LangChain custom events named ``progress``
(``{"stage": ..., "done": ..., "total": ...}``) through
:data:`matloop.tools.properties.TOOL_PROGRESS`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypedDict

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from matloop import prompts
from matloop.agents.chat.compose import rich_parts, write_answer
from matloop.agents.chat.intents import understand
from matloop.agents.chat.models import ChatAnswer, ConversationContext
from matloop.agents.chat.offline import ChatTurn, ToolCall, plan_turn
from matloop.agents.llm import call_failure
from matloop.agents.messages import closed_tool_arguments
from matloop.agents.tool_args import output_limit, scaled_limit, tool_call_schema
from matloop.tools.base import Toolbox
from matloop.tools.properties import TOOL_PROGRESS

#: Smallest offline-reader confidence at which a tool-less model answer is replaced.
FLOOR_CONFIDENCE = 0.6
#: Intents the floor answers (a campaign is never started on the reader's word alone).
FLOOR_INTENTS = ("stability", "known_phases", "property", "compare", "synthesis", "relax",
                 "run_question", "literature")


class ChatState(TypedDict, total=False):
    """Conversation state."""

    messages: Annotated[list[AnyMessage], add_messages]
    tool_rounds: int
    context: dict[str, Any]
    model_error: str | None


def _text(message: AnyMessage) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


def _upload(message: AnyMessage) -> dict[str, Any]:
    extra = message.additional_kwargs or {}
    return {"uploaded": extra.get("structure_text"), "upload_name": extra.get("structure_name"),
            "upload_path": extra.get("structure_path")}


def _emit_progress(stage: str, done: int, total: int) -> None:
    """Send a tool's progress as a LangChain custom event (ignored outside a graph run)."""
    from langchain_core.callbacks import dispatch_custom_event

    try:
        dispatch_custom_event("progress", {"stage": stage, "done": done, "total": total})
    except RuntimeError:  # no parent run (called outside a graph)
        pass


def _last_human(messages: list[AnyMessage]) -> int:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i
    return 0


def _for_model(messages: list[AnyMessage]) -> list[AnyMessage]:
    """Messages as the model sees them: an uploaded structure is named with the path the
    tools read it from (the user's text itself stays as typed)."""
    out: list[AnyMessage] = []
    for m in messages:
        extra = m.additional_kwargs or {}
        if isinstance(m, HumanMessage) and (extra.get("structure_path") or
                                            extra.get("structure_text")):
            where = extra.get("structure_path")
            note = (f"[The user uploaded the structure file {extra.get('structure_name') or ''}"
                    + (f"; pass structure='{where}' to the tools]" if where else
                       f"; its text follows]\n{extra.get('structure_text')}"))
            m = HumanMessage(content=f"{_text(m)}\n\n{note}", id=m.id)
        out.append(m)
    return out


def build_chat_graph(tools: Toolbox, *, model: Any = None, max_tool_rounds: int = 4,
                     ) -> StateGraph:
    """The chat graph (uncompiled). ``model=None`` uses the offline assistant."""
    lc_tools = {name: tools[name].as_langchain() for name in tools}
    # what the model is offered: each tool's contract with bounded arguments (scaled to the
    # model's output limit on a grammar-constrained server, so a call cannot be cut off)
    offered = [tool_call_schema(tools[name], max_tokens=scaled_limit(model))
               for name in sorted(tools)] if model is not None else []

    def call_tool(name: str, arguments: dict[str, Any]) -> str:
        token = TOOL_PROGRESS.set(_emit_progress)
        try:
            return str(lc_tools[name].invoke(arguments))
        finally:
            TOOL_PROGRESS.reset(token)

    def answer_offline(state: ChatState) -> tuple[ChatTurn, ChatAnswer, ConversationContext]:
        message = state["messages"][_last_human(state["messages"])]
        context = ConversationContext.model_validate(state.get("context") or {})
        turn = plan_turn(_text(message), context, tools=tools.names, **_upload(message))
        results: list[tuple[ToolCall, Any]] = []
        for call in turn.calls:
            raw = call_tool(call.tool, call.arguments)
            results.append((call, tools[call.tool].parse(json.loads(raw))))
        answer = write_answer(turn, results)
        context.update(turn.understanding)
        for _, result in results:
            if getattr(result, "campaign_id", None):
                context.remember_run(result.campaign_id)
        return turn, answer, context

    def message_of(answer: ChatAnswer, turn: ChatTurn) -> AIMessage:
        return AIMessage(content=answer.text, additional_kwargs={
            "reading": turn.understanding.reading, "answer": answer.model_dump(mode="json")})

    def offline(state: ChatState) -> dict[str, Any]:
        turn, answer, context = answer_offline(state)
        return {"messages": [message_of(answer, turn)],
                "context": context.model_dump(mode="json")}

    def agent(state: ChatState) -> dict[str, Any]:
        bound = model.bind_tools(offered)
        try:
            reply = bound.invoke(closed_tool_arguments(
                [SystemMessage(content=prompts.system("chat")), *_for_model(state["messages"])]))
        except Exception as exc:  # noqa: BLE001 - any provider failure: the floor answers
            label = str(getattr(model, "model_name", None) or type(model).__name__)
            failure = call_failure(exc, role="chat", model=label,
                                   max_tokens=output_limit(model))
            return {"model_error": f"{failure.message}; what to do: {failure.hint}"}
        return {"messages": [_with_sources(_with_ids(reply), state["messages"])],
                "model_error": None}

    def run_tools(state: ChatState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        out = []
        for call in last.tool_calls:
            name = call["name"]
            if name not in lc_tools:
                content = json.dumps({"status": "error", "message": f"unknown tool {name!r}; "
                                      f"available: {', '.join(sorted(lc_tools))}"})
            else:
                content = call_tool(name, call.get("args") or {})
            out.append(ToolMessage(content=content, name=name,
                                   tool_call_id=call.get("id") or name))
        for bad in last.invalid_tool_calls:  # arguments cut off or not JSON: never run
            out.append(ToolMessage(content=json.dumps({
                "status": "error", "message": f"the arguments of {bad.get('name')} are not "
                                              f"valid JSON; call it again"}),
                name=bad.get("name") or "invalid", tool_call_id=bad.get("id") or "invalid"))
        return {"messages": out, "tool_rounds": state.get("tool_rounds", 0) + 1}

    def reading(state: ChatState) -> Any:
        message = state["messages"][_last_human(state["messages"])]
        context = ConversationContext.model_validate(state.get("context") or {})
        return understand(_text(message), context=context,
                          uploaded=_upload(message)["uploaded"])

    def tools_used(state: ChatState) -> list[ToolMessage]:
        msgs = state["messages"]
        return [m for m in msgs[_last_human(msgs):] if isinstance(m, ToolMessage)]

    def route(state: ChatState) -> str:
        if state.get("model_error"):
            return "floor"
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return "floor" if state.get("tool_rounds", 0) >= max_tool_rounds else "tools"
        u = reading(state)
        if not tools_used(state) and u.intent in FLOOR_INTENTS and not u.missing and \
                u.confidence >= FLOOR_CONFIDENCE:
            return "floor"
        return "finish"

    def finish(state: ChatState) -> dict[str, Any]:
        """The model's answer, with the tables, figures and sources of its tool results."""
        last = state["messages"][-1]
        results = []
        for m in tools_used(state):
            name = m.name or ""
            if name in tools:
                try:
                    data = json.loads(_text(m))
                except json.JSONDecodeError:
                    continue
                results.append((ToolCall(name, {}), tools[name].parse(data)))
        tables, plots, structures, sources = rich_parts(results)
        u = reading(state)
        answer = ChatAnswer(intent=u.intent, text=_text(last), tables=tables, plots=plots,
                            structures=structures, sources=sources, origin="model")
        context = ConversationContext.model_validate(state.get("context") or {})
        context.update(u)
        replaced = AIMessage(content=last.content, id=last.id, additional_kwargs={
            **(last.additional_kwargs or {}), "reading": u.reading,
            "answer": answer.model_dump(mode="json")})
        return {"messages": [replaced], "context": context.model_dump(mode="json")}

    def floor(state: ChatState) -> dict[str, Any]:
        """The offline answer in the model's place (see the module docstring)."""
        u = reading(state)
        error = state.get("model_error")
        rounds = state.get("tool_rounds", 0) >= max_tool_rounds
        why = (f"the language model failed ({error})" if error else
               f"the language model stopped after {max_tool_rounds} rounds of tool calls "
               f"without an answer" if rounds else
               "the language model answered without consulting the tools")
        last = state["messages"][-1]
        unanswered = [ToolMessage(content=json.dumps({
            "status": "error", "message": "not run: the tool-round limit was reached"}),
            name=c.get("name") or "invalid", tool_call_id=c.get("id") or str(c.get("name")))
            for c in ([*last.tool_calls, *last.invalid_tool_calls]
                      if isinstance(last, AIMessage) and rounds else [])]
        if u.missing or u.intent not in FLOOR_INTENTS:
            text = (f"No answer: {why}." if error or rounds else _text(last))
            return {"messages": [*unanswered, AIMessage(content=text)], "model_error": None}
        turn, answer, context = answer_offline(state)
        answer.text = f"({why.capitalize()}; this answer comes from the tools.)\n\n{answer.text}"
        answer.origin = "offline_floor"
        return {"messages": [*unanswered, message_of(answer, turn)], "model_error": None,
                "context": context.model_dump(mode="json")}

    def reset(state: ChatState) -> dict[str, Any]:
        return {"tool_rounds": 0, "model_error": None}

    graph = StateGraph(ChatState)
    graph.add_node("reset", reset)
    graph.add_edge(START, "reset")
    if model is None:
        graph.add_node("offline", offline)
        graph.add_edge("reset", "offline")
        graph.add_edge("offline", END)
        return graph
    graph.add_node("agent", agent)
    graph.add_node("tools", run_tools)
    graph.add_node("finish", finish)
    graph.add_node("floor", floor)
    graph.add_edge("reset", "agent")
    graph.add_conditional_edges("agent", route, {"tools": "tools", "finish": "finish",
                                                 "floor": "floor"})
    graph.add_edge("tools", "agent")
    graph.add_edge("finish", END)
    graph.add_edge("floor", END)
    return graph


def _with_ids(reply: Any) -> Any:
    """A model reply with an id on every tool call (results are matched by id)."""
    if not isinstance(reply, AIMessage):
        return reply
    calls = [{**c, "id": c.get("id") or f"call-{n}"} for n, c in enumerate(reply.tool_calls)]
    bad = [{**c, "id": c.get("id") or f"call-x{n}"}
           for n, c in enumerate(reply.invalid_tool_calls)]
    return reply.model_copy(update={"tool_calls": calls, "invalid_tool_calls": bad})


def _with_sources(reply: Any, messages: list[AnyMessage]) -> Any:
    """A final answer (no tool calls) with the tools that answered this turn named at its
    end, as the offline assistant does ("Sources: ... (tool calls of this turn)."), and listed
    in ``additional_kwargs["sources"]`` (only tools that answered, not failed calls). Replies
    that call tools pass unchanged."""
    if not isinstance(reply, AIMessage) or reply.tool_calls or reply.invalid_tool_calls:
        return reply
    turn: list[AnyMessage] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        turn.append(message)
    found: set[str] = set()
    names: dict[str, str] = {}  # the calls of the latest AI message (ids may repeat across)
    for message in reversed(turn):  # oldest first
        if isinstance(message, AIMessage):
            names = {str(c.get("id")): c["name"] for c in message.tool_calls}
        elif isinstance(message, ToolMessage) and _succeeded(message) and \
                message.tool_call_id in names:
            found.add(names[message.tool_call_id])
    sources = sorted(found)
    if not sources:
        return reply
    text = reply.content if isinstance(reply.content, str) else _text(reply)
    line = f"Sources: {', '.join(sources)} (tool calls of this turn)."
    return reply.model_copy(update={
        "content": f"{text.rstrip()}\n\n{line}" if text.strip() else line,
        "additional_kwargs": {**reply.additional_kwargs, "sources": sources}})


def _succeeded(message: ToolMessage) -> bool:
    """Whether a tool result is an answer (not an error, an unknown tool or a call not run)."""
    try:
        data = json.loads(_text(message))
    except (json.JSONDecodeError, TypeError):
        return False
    return isinstance(data, dict) and data.get("status") not in ("error", "no_model", None)


def describe_tool_output(tool: str, raw: str, tools: Toolbox | None = None) -> str:
    """One line about a tool's JSON answer (the tool's own summary when it is known)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return str(raw)[:800]
    if tools is not None and tool in tools:
        spec = tools[tool]
        return spec.summarize(spec.parse(data))
    if isinstance(data, dict) and data.get("status") in ("error", "no_model"):
        return f"{tool} could not answer: {data.get('message')}"
    return json.dumps(data)[:800]


def user(text: str, *, structure_text: str | None = None, structure_name: str | None = None,
         structure_path: str | None = None) -> HumanMessage:
    """A user message, optionally with an uploaded structure: its text (what the reader
    sees), file name, and where the server stored it (what the tools read)."""
    extra = {k: v for k, v in (("structure_text", structure_text),
                               ("structure_name", structure_name),
                               ("structure_path", structure_path)) if v}
    return HumanMessage(content=text, additional_kwargs=extra)


def answer_of(message: AnyMessage) -> ChatAnswer | None:
    """The structured answer a chat reply carries, if any."""
    data = (message.additional_kwargs or {}).get("answer")
    return ChatAnswer.model_validate(data) if data else None


__all__ = ["FLOOR_CONFIDENCE", "FLOOR_INTENTS", "ChatState", "answer_of", "build_chat_graph",
           "describe_tool_output", "user"]
