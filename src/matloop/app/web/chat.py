"""The chat graph behind the page: one conversation per thread id, kept in SQLite, streamed.

Each turn runs the chat graph (:mod:`matloop.graphs.chat`) with LangGraph's event stream and
turns it into small JSON events: ``step`` (a graph node starts), ``tool_start`` (name and
arguments), ``progress`` (a long tool call's stage, e.g. a relaxation), ``tool_end`` (status,
a one-line result summary, the evidence it returned), ``token`` (answer text as the model
streams it), ``answer`` (the final text, the structured answer: tables, hull figures,
structures, sources, a campaign query; and the evidence ids it may cite, with DOI links) and
``error``.

Structure files come as uploads (:meth:`ChatService.upload`): the text is checked as a
structure, stored in the thread's folder ``<runs>/.chat/threads/<thread>/uploads/`` and sent
with the next message by its upload id; the tools read it from there. Paths typed in a
message are never read.

Threads are checkpointed in ``<runs>/.chat/threads.sqlite``, so a restarted server continues
a conversation; :meth:`ChatService.history` gives a thread's turns back to the page.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from matloop.app.web.campaigns import CampaignManager, CampaignRequest
from matloop.app.web.limits import MAX_STRUCTURE_BYTES
from matloop.app.web.runs import RUN_ID_PATTERN, ApiError
from matloop.config import Settings
from matloop.errors import MatloopError

UPLOAD_ID_PATTERN = r"^[0-9a-f]{12}$"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ChatRequest(BaseModel):
    """One user message."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=8000, description="What the user asks.")
    thread_id: str = Field(default="web", pattern=RUN_ID_PATTERN,
                           description="Conversation id; the graph remembers earlier turns.")
    upload_id: str | None = Field(default=None, pattern=UPLOAD_ID_PATTERN,
                                  description="A structure uploaded to this thread "
                                              "(POST /api/uploads) to send with the message.")


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
        self._builder: Any = None
        self._tools: Any = None
        self._compiled: dict[int, tuple[Any, Any]] = {}  # event loop id -> (graph, connection)
        self._build_lock = threading.Lock()
        self._busy: set[str] = set()
        self._evidence: dict[str, dict[str, dict[str, Any]]] = {}

    @property
    def scratch(self) -> Path:
        """The chat's folder under the runs folder."""
        from matloop.app.chat import chat_dir

        return chat_dir(self.runs_dir)

    def _model(self) -> Any:
        if self.model is None and self.llm.strip().lower() not in ("", "none", "offline"):
            from matloop.agents.llm import make_chat_model, parse_model_string

            spec = parse_model_string(self.llm, base_url=self.base_url)
            self.model = make_chat_model(spec) if spec else None
        return self.model

    def builder(self) -> Any:
        """The uncompiled chat graph (built on first use: tools open the MLIP and the store)."""
        with self._build_lock:
            if self._builder is None:
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

                self.scratch.mkdir(parents=True, exist_ok=True)
                tools = chat_toolbox(model=model, runs_dir=self.runs_dir,
                                     starter=start_campaign,
                                     access=FileAccess([self.scratch], allow_hidden=True),
                                     settings=self.settings)
                self._tools = tools
                self._builder = build_chat_graph(tools, model=model,
                                                 max_tool_rounds=self.max_tool_rounds)
        return self._builder

    async def graph(self) -> Any:
        """The compiled graph with a SQLite checkpointer bound to the running event loop."""
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        from matloop.app.chat import threads_path

        builder = await asyncio.to_thread(self.builder)
        loop = id(asyncio.get_running_loop())
        if loop not in self._compiled:
            path = threads_path(self.runs_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = aiosqlite.connect(str(path))
            self._compiled[loop] = (builder.compile(checkpointer=AsyncSqliteSaver(conn)), conn)
        return self._compiled[loop][0]

    async def aclose(self) -> None:
        """Close the SQLite connections of this event loop."""
        entry = self._compiled.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            try:
                await entry[1].close()
            except ValueError:  # never opened
                pass

    # -- uploads ---------------------------------------------------------------------------
    def uploads_dir(self, thread_id: str) -> Path:
        """Where a thread's uploaded structures are kept."""
        return self.scratch / "threads" / thread_id / "uploads"

    def upload(self, thread_id: str, name: str, body: bytes) -> dict[str, Any]:
        """Check and store an uploaded structure file; return its id, formula and size."""
        from matloop.files import FileAccess, load_structure, looks_like_structure_text

        if not re.match(RUN_ID_PATTERN, thread_id):
            raise ApiError(422, f"{thread_id!r} is not a thread id",
                           hint="letters, digits, '.', '_' and '-' (at most 100)")
        if not body:
            raise ApiError(422, "the uploaded file is empty", hint="choose a CIF or POSCAR file")
        if len(body) > MAX_STRUCTURE_BYTES:
            raise ApiError(413, f"{len(body) / 1024**2:.1f} MiB is over the "
                                f"{MAX_STRUCTURE_BYTES / 1024**2:.0f} MiB limit for structures",
                           hint="upload one structure")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(415, "the file is not text: structure files are CIF, POSCAR, "
                                "extended XYZ or pymatgen JSON",
                           hint="export the structure as CIF") from exc
        safe = _SAFE_NAME.sub("_", Path(name or "structure").name).strip("._")[:80] or \
            "structure"
        if not looks_like_structure_text(text):  # one line of text would be read as a path
            raise ApiError(422, f"{safe} is not a structure file",
                           hint="upload a CIF, POSCAR, extended XYZ or pymatgen JSON file")
        folder = self.uploads_dir(thread_id)
        folder.mkdir(parents=True, exist_ok=True)
        structure = load_structure(text, access=FileAccess([folder], allow_hidden=True),
                                   source=safe)
        upload_id = uuid.uuid4().hex[:12]
        path = folder / f"{upload_id}-{safe}"
        path.write_text(text)
        return {"upload_id": upload_id, "name": safe, "formula":
                structure.composition.reduced_formula, "n_atoms": len(structure),
                "bytes": len(body)}

    def _uploaded(self, thread_id: str, upload_id: str) -> tuple[Path, str, str]:
        matches = sorted(self.uploads_dir(thread_id).glob(f"{upload_id}-*"))
        if not matches:
            raise ApiError(404, f"no upload {upload_id} in conversation {thread_id!r}",
                           hint="upload the file again (POST /api/uploads)")
        path = matches[0]
        return path, path.read_text(), path.name[len(upload_id) + 1:]

    # -- turns -----------------------------------------------------------------------------
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
        from matloop.graphs.chat import describe_tool_output, user

        thread = {"configurable": {"thread_id": request.thread_id}, "recursion_limit": 50}
        known = self._evidence.setdefault(request.thread_id, {})
        try:
            upload: dict[str, str] = {}
            if request.upload_id:
                path, text, name = self._uploaded(request.thread_id, request.upload_id)
                upload = {"structure_text": text, "structure_name": name,
                          "structure_path": str(path)}
            graph = await self.graph()
            names = set(graph.get_graph().nodes) - {"__start__", "__end__", "reset"}
            streamed = False
            async for ev in graph.astream_events(
                    {"messages": [user(request.message, **upload)]}, thread, version="v2"):
                kind, name = ev["event"], ev.get("name", "")
                node = (ev.get("metadata") or {}).get("langgraph_node")
                if kind == "on_chain_start" and name == node and name in names:
                    yield {"type": "step", "node": name}
                elif kind == "on_chat_model_stream":
                    text = getattr(ev["data"].get("chunk"), "content", "")
                    if isinstance(text, str) and text:
                        streamed = True
                        yield {"type": "token", "text": text}
                elif kind == "on_custom_event" and name == "progress":
                    yield {"type": "progress", **(ev.get("data") or {})}
                elif kind == "on_tool_start":
                    yield {"type": "tool_start", "run_id": ev["run_id"], "name": name,
                           "args": _short_args(ev["data"].get("input"))}
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
            state = await graph.aget_state(thread)
            last = state.values["messages"][-1]
            yield {"type": "answer", "text": str(last.content), "streamed": streamed,
                   "answer": (last.additional_kwargs or {}).get("answer"), "evidence": known}
        except MatloopError as exc:
            yield {"type": "error", "message": exc.message, "hint": exc.hint}
        except Exception as exc:  # the conversation goes on; the page shows what failed
            yield {"type": "error", "message": f"{type(exc).__name__}: {exc}",
                   "hint": "try again, or ask differently"}
        finally:
            self._busy.discard(request.thread_id)

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The turns of a thread: user messages (with the upload's name) and answers.

        Read from the checkpoint alone: showing a conversation builds no tools (the page asks
        for it on every load, also while a campaign opens the same knowledge store)."""
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        from matloop.app.chat import threads_path

        path = threads_path(self.runs_dir)
        if not path.exists():
            return []
        async with aiosqlite.connect(str(path)) as conn:
            saved = await AsyncSqliteSaver(conn).aget_tuple(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        values = saved.checkpoint.get("channel_values", {}) if saved else {}
        out: list[dict[str, Any]] = []
        for m in values.get("messages", []):
            extra = m.additional_kwargs or {}
            if m.type == "human":
                out.append({"role": "user", "text": str(m.content),
                            "upload": extra.get("structure_name")})
            elif m.type == "ai" and not getattr(m, "tool_calls", None):
                out.append({"role": "assistant", "text": str(m.content),
                            "answer": extra.get("answer")})
        return out


def _short_args(args: Any) -> Any:
    """Tool arguments for the page: structure text is shown as its size, not in full."""
    if not isinstance(args, dict):
        return args
    return {k: (f"<structure text, {len(v)} characters>" if isinstance(v, str) and "\n" in v
                else v) for k, v in args.items()}
