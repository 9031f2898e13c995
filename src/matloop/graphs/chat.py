"""The chat graph: a research assistant with the campaign's tools, remembering the thread.

With a chat model it is a tool-calling loop (model -> tools -> model, bounded by
``max_tool_rounds``). Without one, the offline assistant (:mod:`matloop.agents.chat.offline`)
reads the message, calls the tools that answer it and writes the answer from their results.
Either way the conversation's entities (last formulas, system, run) are kept in the thread's
state, so follow-ups such as "and its band gap?" work.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from matloop import prompts
from matloop.agents.chat.models import ConversationContext
from matloop.agents.chat.offline import plan_turn, write_answer
from matloop.agents.llm import call_failure
from matloop.tools.base import Toolbox


class ChatState(TypedDict, total=False):
    """Conversation state."""

    messages: Annotated[list[AnyMessage], add_messages]
    tool_rounds: int
    context: dict[str, Any]


def _text(message: AnyMessage) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


def build_chat_graph(tools: Toolbox, *, model: Any = None, max_tool_rounds: int = 4,
                     ) -> StateGraph:
    """The chat graph (uncompiled). ``model=None`` uses the offline assistant."""
    lc_tools = {name: tools[name].as_langchain() for name in tools}

    def offline(state: ChatState) -> dict[str, Any]:
        message = state["messages"][-1]
        context = ConversationContext.model_validate(state.get("context") or {})
        uploaded = (message.additional_kwargs or {}).get("structure_text")
        turn = plan_turn(_text(message), context, uploaded=uploaded, tools=tools.names)
        results = []
        for call in turn.calls:
            raw = lc_tools[call.tool].invoke(call.arguments)
            results.append((call, tools[call.tool].parse(json.loads(raw))))
        answer = write_answer(turn, results)
        context.update(turn.understanding)
        for _, result in results:
            if getattr(result, "campaign_id", None):
                context.remember_run(result.campaign_id)
        return {"messages": [AIMessage(content=answer,
                                       additional_kwargs={"reading": turn.understanding.reading})],
                "context": context.model_dump(mode="json")}

    def agent(state: ChatState) -> dict[str, Any]:
        bound = model.bind_tools(list(lc_tools.values()))
        try:
            reply = bound.invoke([SystemMessage(content=prompts.system("chat")),
                                  *state["messages"]])
        except Exception as exc:  # a model that fails answers with why, and the chat goes on
            label = str(getattr(model, "model_name", None) or type(model).__name__)
            failure = call_failure(exc, role="chat", model=label)
            return {"messages": [AIMessage(
                content=f"No answer: {failure.message}. What to do: {failure.hint}",
                additional_kwargs={"error": failure.kind})]}
        return {"messages": [_with_sources(_with_ids(reply), state["messages"])]}

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
                content = str(lc_tools[name].invoke(call.get("args") or {}))
            out.append(ToolMessage(content=content, tool_call_id=call["id"]))
        for bad in last.invalid_tool_calls:  # arguments cut off or not JSON: never run
            out.append(ToolMessage(content=json.dumps({
                "status": "error", "message": f"the arguments of {bad.get('name')} are not "
                                              f"valid JSON; call it again"}),
                tool_call_id=bad["id"]))
        return {"messages": out, "tool_rounds": state.get("tool_rounds", 0) + 1}

    def route(state: ChatState) -> str:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return "stop" if state.get("tool_rounds", 0) >= max_tool_rounds else "tools"
        return "done"

    def stop(state: ChatState) -> dict[str, Any]:
        # the pending calls get results too: a call without one breaks the next request
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        pending = [ToolMessage(content=f"not run: limit of {max_tool_rounds} tool rounds "
                                       f"reached", tool_call_id=c["id"])
                   for c in [*last.tool_calls, *last.invalid_tool_calls]]
        return {"messages": [*pending, AIMessage(content=f"Stopped after {max_tool_rounds} "
                                                         f"rounds of tool calls without a "
                                                         f"final answer.")]}

    def reset(state: ChatState) -> dict[str, Any]:
        return {"tool_rounds": 0}

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
    graph.add_node("stop", stop)
    graph.add_edge("reset", "agent")
    graph.add_conditional_edges("agent", route, {"tools": "tools", "done": END, "stop": "stop"})
    graph.add_edge("tools", "agent")
    graph.add_edge("stop", END)
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


def user(text: str, *, structure_text: str | None = None) -> HumanMessage:
    """A user message (optionally with an uploaded structure's text)."""
    extra = {"structure_text": structure_text} if structure_text else {}
    return HumanMessage(content=text, additional_kwargs=extra)
