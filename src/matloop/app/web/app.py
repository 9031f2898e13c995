"""The web research assistant: a FastAPI app with server-sent events and one static page.

``create_app(runs_dir=...)`` builds the app; ``matloop serve`` runs it with uvicorn. Routes:

* ``GET /`` the page (static/index.html, plain ES modules, 3Dmol.js vendored in static/vendor);
* ``POST /api/chat`` one chat turn, streamed as SSE (steps, tool calls, progress, tokens,
  answer); ``POST /api/uploads?thread_id=&name=`` a structure file for the next message
  (raw body, at most :data:`~matloop.app.web.limits.STRUCTURE_UPLOAD_BYTES`);
  ``GET /api/chat/{thread_id}`` a conversation's turns (kept in SQLite across restarts);
* ``POST /api/campaigns`` start; ``GET /api/campaigns/{id}/events`` live events (SSE);
  ``POST /api/campaigns/{id}/approval|stop|resume``;
* ``GET /api/runs``, ``GET /api/runs/{id}``, ``GET /api/runs/{id}/files/{path}`` (CIFs,
  reports; never outside the run directory).

Off loopback every ``/api`` route needs the token (``Authorization: Bearer``, the
``X-Matloop-Token`` header, ``?token=`` or the cookie set when the page was opened with it).
Request bodies are capped (:mod:`matloop.app.web.limits`, 1 MiB by default), and a run directory
whose files are damaged is listed as ``damaged`` without disturbing the others.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from matloop.app.web.campaigns import ApprovalAnswer, CampaignManager, CampaignRequest
from matloop.app.web.chat import ChatRequest, ChatService
from matloop.app.web.limits import (
    DEFAULT_MAX_BODY_BYTES,
    STRUCTURE_UPLOAD_BYTES,
    BodySizeLimit,
    BodyTooLarge,
    body_too_large_response,
)
from matloop.app.web.runs import RUN_ID_PATTERN, ApiError, RunStore, summarize
from matloop.config import Settings, get_settings
from matloop.errors import MatloopError

log = logging.getLogger(__name__)

COOKIE = "matloop_token"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind or to be reached at) is this machine only."""
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise MatloopError(
            f"refusing to listen on {host} without a token: anyone who can reach it could "
            "run campaigns and read your runs",
            hint="pass --token SECRET (or set MATLOOP_WEB_TOKEN), or bind 127.0.0.1")


def _error(status: int, message: str, hint: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint, **extra}, status_code=status)


def create_app(runs_dir: str | Path = "runs", *, settings: Settings | None = None,
               chat_model: Any = None, campaign_models: dict[str, Any] | None = None,
               llm: str = "none", base_url: str | None = None, token: str | None = None,
               host: str = "127.0.0.1", max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               body_limits: Mapping[str, int] | None = None) -> FastAPI:
    """The web app over a folder of run directories.

    Args:
        runs_dir: Folder of campaign run directories (one per thread id).
        chat_model: Chat model of the chat graph (tests pass a scripted model); otherwise
            built from ``llm``, and ``none`` uses the offline router.
        campaign_models: Chat models by role for campaigns started here (tests); otherwise
            each campaign builds its models from its ``llm`` setting.
        llm: Default PROVIDER:MODEL for chat and campaigns, or ``none`` (offline).
        base_url: OpenAI-compatible server URL for ``llm``.
        token: Secret every /api request must carry; required when ``host`` is not loopback.
        host: The address the server is bound to (decides the Host-header check).
        max_body_bytes: Largest request body; larger ones get 413 before they are read.
        body_limits: Other limits by path prefix (e.g. a structure-upload route gets
            :data:`matloop.app.web.limits.STRUCTURE_UPLOAD_BYTES`).
    """
    check_bind(host, token)
    settings = settings or get_settings()
    store = RunStore(runs_dir)
    manager = CampaignManager(store, settings=settings, llm=llm, base_url=base_url,
                              chat_models=campaign_models)
    chat = ChatService(store.root, settings=settings, manager=manager, model=chat_model,
                       llm=llm, base_url=base_url)
    static = resources.files("matloop.app.web") / "static"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await chat.aclose()
        await asyncio.to_thread(manager.shutdown, 5.0)  # stop jobs at their next step

    app = FastAPI(title="matloop", summary="Web research assistant for materials discovery",
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None,
                  lifespan=lifespan)
    app.state.manager, app.state.chat, app.state.store = manager, chat, store

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        host_header = request.headers.get("host", "")
        reached = urlsplit(f"//{host_header}").hostname or ""
        if is_loopback(host) and not is_loopback(reached):
            # A loopback server answers only to loopback names (no DNS rebinding).
            return _error(400, f"unexpected Host header {host_header!r}",
                          "open the page at http://127.0.0.1:PORT/")
        given = _token(request)
        if request.url.path.startswith("/api/"):
            if token and not (given and hmac.compare_digest(given, token)):
                return _error(401, "missing or wrong token",
                              "open the page with ?token=SECRET, or send the header "
                              "'Authorization: Bearer SECRET'")
            origin = request.headers.get("origin")
            if request.method != "GET" and origin and urlsplit(origin).netloc != host_header:
                return _error(403, f"cross-origin request from {origin} refused",
                              "use the page this server serves")
        response = await call_next(request)
        if token and request.query_params.get("token") and given and \
                hmac.compare_digest(given, token):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    # Added last, so it is the outermost middleware: a large body is refused before the
    # Host/token checks or any route reads it.
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes,
                       limits={"/api/uploads": STRUCTURE_UPLOAD_BYTES, **(body_limits or {})})

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Any:
        return body_too_large_response(exc)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.hint)

    @app.exception_handler(MatloopError)
    async def matloop_error(request: Request, exc: MatloopError) -> JSONResponse:
        return _error(400, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(x) for x in e["loc"][1:]) or "body", "problem": e["msg"]}
                  for e in exc.errors()]
        text = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        return _error(422, f"invalid request: {text}",
                      "see /api/docs for the expected JSON body", errors=errors)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text())

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.post("/api/chat", summary="One chat turn, streamed as server-sent events")
    async def chat_turn(request: ChatRequest) -> EventSourceResponse:
        chat.reserve(request.thread_id)

        async def events() -> Any:
            async for event in chat.turn(request):
                yield {"event": event["type"], "data": json.dumps(event, default=str)}
            yield {"event": "done", "data": "{}"}

        release = BackgroundTask(chat.release, request.thread_id)
        return EventSourceResponse(events(), background=release)

    @app.post("/api/uploads", summary="Upload a structure file for the next chat message")
    async def upload(request: Request, thread_id: str = Query(...),
                     name: str = Query("structure", max_length=200)) -> dict[str, Any]:
        body = await request.body()
        return await asyncio.to_thread(chat.upload, thread_id, name, body)

    @app.get("/api/chat/{thread_id}", summary="The turns of a conversation")
    async def chat_history(thread_id: str) -> list[dict[str, Any]]:
        if not re.match(RUN_ID_PATTERN, thread_id):
            raise ApiError(422, f"{thread_id!r} is not a thread id")
        return await chat.history(thread_id)

    @app.post("/api/campaigns", status_code=202, summary="Start a campaign in the background")
    def start(request: CampaignRequest) -> dict[str, Any]:
        job = manager.start(request)
        return {"id": job.run_id, "state": job.state,
                "events": f"/api/campaigns/{job.run_id}/events"}

    @app.post("/api/campaigns/{run_id}/approval", summary="Approve, reject or edit the plan")
    def approval(run_id: str, answer: ApprovalAnswer) -> dict[str, Any]:
        job = manager.answer(run_id, answer)
        return {"id": run_id, "state": job.state}

    @app.post("/api/campaigns/{run_id}/stop", summary="Stop after the current graph step")
    def stop(run_id: str) -> dict[str, Any]:
        job = manager.stop(run_id)
        return {"id": run_id, "state": job.state}

    @app.post("/api/campaigns/{run_id}/resume", status_code=202,
              summary="Continue an interrupted or stopped campaign")
    def resume(run_id: str) -> dict[str, Any]:
        job = manager.resume(run_id)
        return {"id": run_id, "state": job.state,
                "events": f"/api/campaigns/{run_id}/events"}

    @app.get("/api/campaigns/{run_id}/events", summary="The run's events, live (SSE)")
    async def events(run_id: str, request: Request, after: int = 0) -> EventSourceResponse:
        run_dir = store.run_dir(run_id)
        last = request.headers.get("last-event-id")
        start_line = int(last) + 1 if last and last.isdigit() else max(after, 0)
        return EventSourceResponse(_tail(run_dir, run_id, manager, request, start_line))

    @app.get("/api/runs", summary="Every run, newest first")
    def runs() -> list[dict[str, Any]]:
        rows = []
        for run_id in store.ids():
            try:
                s = summarize(store.run_dir(run_id), manager.job_view(run_id))
            except Exception as exc:  # one unreadable run must not hide the others
                log.exception("cannot summarise run %s", run_id)
                s = {"id": run_id, "query": "", "state": "damaged", "status": "", "files": {},
                     "candidates": [], "damage": [f"cannot be summarised "
                                                  f"({type(exc).__name__})"]}
            rows.append({k: s[k] for k in ("id", "query", "state", "status", "files",
                                           "damage")} | {"candidates": len(s["candidates"])})
        return rows

    @app.get("/api/runs/{run_id}", summary="One run: state, budget, candidates, plan")
    def run(run_id: str) -> dict[str, Any]:
        return summarize(store.run_dir(run_id), manager.job_view(run_id))

    @app.get("/api/runs/{run_id}/files/{relative:path}", summary="A file of a run")
    def run_file(run_id: str, relative: str, download: bool = False) -> FileResponse:
        path = store.file(run_id, relative)
        media = {".cif": "chemical/x-cif", ".md": "text/markdown; charset=utf-8",
                 ".jsonl": "application/x-ndjson"}.get(path.suffix)
        return FileResponse(path, media_type=media,
                            filename=path.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    return app


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return (request.headers.get("x-matloop-token") or request.query_params.get("token")
            or request.cookies.get(COOKIE))


#: Bytes of events.jsonl read per poll, and the longest line sent (longer ones are skipped).
_TAIL_CHUNK_BYTES = 1024 * 1024
_MAX_EVENT_LINE_BYTES = 4 * 1024 * 1024


def _read_from(path: Path, offset: int) -> bytes:
    if not path.is_file():
        return b""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(_TAIL_CHUNK_BYTES)


def _log_event(raw: bytes, line_no: int) -> dict[str, str]:
    """One events.jsonl line as an SSE event: ``log`` when it is JSON, else a ``note``."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return {"event": "note", "id": str(line_no), "data": json.dumps(
            {"line": line_no + 1, "note": f"line {line_no + 1} of events.jsonl is not valid "
                                          "JSON; skipped"})}
    if "\r" in text:  # a bare CR would split the SSE data field
        text = text.replace("\r", " ")
    return {"event": "log", "id": str(line_no), "data": text}


async def _tail(run_dir: Path, run_id: str, manager: CampaignManager, request: Request,
                start_line: int) -> Any:
    """events.jsonl from ``start_line`` on, then new lines as they come while the job runs.

    Every non-empty line is an SSE event whose id is its line number (a reconnecting browser
    resumes after it): ``log`` for a JSON line, ``note`` for a line that is not JSON (bytes
    that are not UTF-8 are replaced first). ``status`` events carry the job's state; ``end``
    closes the stream, also after an error reading the file.
    """
    path = run_dir / "events.jsonl"
    offset, line_no, buffer, last_status = 0, 0, b"", None
    skipping = False  # inside a line longer than _MAX_EVENT_LINE_BYTES
    view: dict[str, Any] = {"state": "idle", "pending": None, "error": None}
    try:
        while True:
            if await request.is_disconnected():
                return
            active = manager.active(run_id)  # before reading: what a finished job wrote is in
            chunk = await asyncio.to_thread(_read_from, path, offset)
            offset += len(chunk)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if not chunk and not active and buffer.strip():
                lines, buffer = [*lines, buffer], b""  # a last line without its newline
            for raw in lines:
                if skipping:
                    skipping = False
                    continue
                if not raw.strip():
                    continue
                if line_no >= start_line:
                    yield _log_event(raw, line_no)
                line_no += 1
            if len(buffer) > _MAX_EVENT_LINE_BYTES:
                if not skipping and line_no >= start_line:
                    yield {"event": "note", "id": str(line_no), "data": json.dumps(
                        {"line": line_no + 1, "note": f"line {line_no + 1} of events.jsonl is "
                                                      "too long; skipped"})}
                line_no += 0 if skipping else 1
                buffer, skipping = b"", True
            view = manager.job_view(run_id) or {"state": "idle", "pending": None,
                                                "error": None}
            if view != last_status:
                last_status = view
                yield {"event": "status", "data": json.dumps(view, default=str)}
            if not active and not chunk:
                break
            if not chunk:
                await asyncio.sleep(0.25)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the stream must still end cleanly; the page shows the error
        log.exception("reading the events of run %s failed", run_id)
        yield {"event": "error", "data": json.dumps(
            {"error": f"reading events.jsonl failed ({type(exc).__name__})"})}
    yield {"event": "end", "data": json.dumps(view, default=str)}
