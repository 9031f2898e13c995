"""The chat graph behind the page: one conversation per thread id, streamed step by step.

Each turn runs the chat graph (:mod:`matloop.graphs.chat`) with LangGraph's event stream and
turns it into small JSON events: ``step`` (a graph node starts), ``tool_start`` (name and
arguments), ``tool_end`` (status, a one-line result summary, the evidence it returned),
``token`` (answer text as the model streams it), ``answer`` (the final text and the evidence
ids it may cite, with DOI links) and ``error``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from matloop.app.web.campaigns import CampaignManager, CampaignRequest
from matloop.app.web.runs import RUN_ID_PATTERN, ApiError
from matloop.config import Settings
from matloop.errors import MatloopError


class ChatRequest(BaseModel):
    """One user message."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=8000, description="What the user asks.")
    thread_id: str = Field(default="web", pattern=RUN_ID_PATTERN,
                           description="Conversation id; the graph remembers earlier turns.")


def evidence_in(tool: str, raw: str) -> list[dict[str, Any]]:
    """Citable evidence in a tool result: id, title and DOI link where known."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return []
    if not isinstance(data, dict):
        return []
    rows = [(e.get("id"), e.get("title"), e.get("doi")) for e in data.get("results") or []
            if isinstance(e, dict)]
    rows += [(a.get("evidence_id"), a.get("analog_formula"), a.get("doi"))
             for a in data.get("analogs") or [] if isinstance(a, dict)]
    out = []
    for ev_id, title, doi in rows:
        if not ev_id:
            continue
        doi = _bare_doi(doi)
        out.append({"id": ev_id, "title": title, "doi": doi,
                    "url": f"https://doi.org/{doi}" if doi else None})
    return out


def _bare_doi(doi: str | None) -> str | None:
    """A valid DOI without resolver prefix, or None (invalid DOIs are never linked)."""
    from matloop.knowledge.documents import normalise_doi

    return normalise_doi(doi)


def _status(raw: str) -> str:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, TypeError):
        return "ok"
    return str(data.get("status", "ok")) if isinstance(data, dict) else "ok"


class ChatService:
    """Builds the chat graph once (tools load lazily) and streams turns of it."""

    def __init__(self, runs_dir: Path, *, settings: Settings, manager: CampaignManager,
                 model: Any = None, llm: str = "none", base_url: str | None = None,
                 max_tool_rounds: int = 4) -> None:
        self.runs_dir = runs_dir
        self.settings = settings
        self.manager = manager
        self.model = model
        self.llm = llm
        self.base_url = base_url
        self.max_tool_rounds = max_tool_rounds
        self._graph: Any = None
        self._tools: Any = None
        self._build_lock = threading.Lock()
        self._busy: set[str] = set()
        self._evidence: dict[str, dict[str, dict[str, Any]]] = {}

    def _model(self) -> Any:
        if self.model is None and self.llm.strip().lower() not in ("", "none", "offline"):
            from matloop.agents.llm import make_chat_model, parse_model_string

            spec = parse_model_string(self.llm, base_url=self.base_url)
            self.model = make_chat_model(spec) if spec else None
        return self.model

    def graph(self) -> Any:
        """The compiled chat graph (built on first use: tools open the MLIP and the store)."""
        with self._build_lock:
            if self._graph is None:
                from langgraph.checkpoint.memory import InMemorySaver

                from matloop.app.chat import chat_toolbox
                from matloop.files import FileAccess
                from matloop.graphs.chat import build_chat_graph
                from matloop.tools.campaign import CampaignStarted

                model = self._model()

                def start_campaign(query: str, max_evaluations: int) -> CampaignStarted:
                    job = self.manager.start(CampaignRequest(
                        query=query, max_evaluations=max_evaluations, max_iterations=2))
                    return CampaignStarted(
                        campaign_id=job.run_id, state="running", report=f"#run/{job.run_id}",
                        answer=f"Campaign {job.run_id} started; follow it live at "
                               f"#run/{job.run_id}.")

                scratch = self.runs_dir / ".chat"
                scratch.mkdir(parents=True, exist_ok=True)
                tools = chat_toolbox(model=model, runs_dir=self.runs_dir, starter=start_campaign,
                                     access=FileAccess([scratch], allow_hidden=True),
                                     settings=self.settings)
                self._tools = tools
                self._graph = build_chat_graph(tools, model=model,
                                               max_tool_rounds=self.max_tool_rounds).compile(
                    checkpointer=InMemorySaver())
        return self._graph

    def reserve(self, thread_id: str) -> None:
        """Claim a conversation for one turn; a second message while it runs is a 409."""
        if thread_id in self._busy:
            raise ApiError(409, f"conversation {thread_id!r} is still answering",
                           hint="wait for the answer, or use another thread id")
        self._busy.add(thread_id)

    def release(self, thread_id: str) -> None:
        """Free a conversation (also when the browser went away before the turn began)."""
        self._busy.discard(thread_id)

    async def turn(self, request: ChatRequest) -> AsyncIterator[dict[str, Any]]:
        """Run one turn (the thread must be reserved) and yield its events."""
        from langchain_core.messages import HumanMessage

        from matloop.graphs.chat import describe_tool_output

        thread = {"configurable": {"thread_id": request.thread_id}, "recursion_limit": 50}
        known = self._evidence.setdefault(request.thread_id, {})
        try:
            graph = await asyncio.to_thread(self.graph)
            names = set(graph.get_graph().nodes) - {"__start__", "__end__", "reset"}
            streamed = False
            async for ev in graph.astream_events(
                    {"messages": [HumanMessage(content=request.message)]}, thread,
                    version="v2"):
                kind, name = ev["event"], ev.get("name", "")
                node = (ev.get("metadata") or {}).get("langgraph_node")
                if kind == "on_chain_start" and name == node and name in names:
                    yield {"type": "step", "node": name}
                elif kind == "on_chat_model_stream":
                    text = getattr(ev["data"].get("chunk"), "content", "")
                    if isinstance(text, str) and text:
                        streamed = True
                        yield {"type": "token", "text": text}
                elif kind == "on_tool_start":
                    yield {"type": "tool_start", "run_id": ev["run_id"], "name": name,
                           "args": ev["data"].get("input")}
                elif kind == "on_tool_end":
                    output = ev["data"].get("output")
                    raw = getattr(output, "content", output)
                    raw = raw if isinstance(raw, str) else json.dumps(raw, default=str)
                    evidence = evidence_in(name, raw)
                    known.update({e["id"]: e for e in evidence})
                    yield {"type": "tool_end", "run_id": ev["run_id"], "name": name,
                           "status": _status(raw),
                           "summary": describe_tool_output(name, raw, self._tools)[:1500],
                           "evidence": evidence}
                elif kind == "on_tool_error":
                    yield {"type": "tool_end", "run_id": ev["run_id"], "name": name,
                           "status": "error", "summary": str(ev["data"].get("error"))[:500],
                           "evidence": []}
            state = await asyncio.to_thread(graph.get_state, thread)
            last = state.values["messages"][-1]
            yield {"type": "answer", "text": str(last.content), "streamed": streamed,
                   "evidence": known}
        except MatloopError as exc:
            yield {"type": "error", "message": exc.message, "hint": exc.hint}
        except Exception as exc:  # the conversation goes on; the page shows what failed
            yield {"type": "error", "message": f"{type(exc).__name__}: {exc}",
                   "hint": "try again, or ask differently"}
        finally:
            self._busy.discard(request.thread_id)
