"""Run, resume, inspect and re-render campaigns: the Python API behind ``matloop campaign``.

A campaign lives in a run directory named after its thread id: ``config.json`` (the run
configuration, without credentials), ``checkpoints.sqlite`` (LangGraph SQLite checkpointer),
``events.jsonl``, ``candidates/`` and ``structures/`` (CIFs) and the report files, written once
when the run ends. ``resume`` continues a killed campaign from its last checkpoint; finished
tool work is reused from the checkpoint and the evaluation cache, so nothing is computed twice.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.types import Command

from matloop.agents.query_parser import query_problems
from matloop.app.assembly import build_services
from matloop.app.inputs import (
    QueryProblemsError,
    check_campaign_id,
    check_checkpoint_file,
    check_query,
)
from matloop.config import Settings, get_settings
from matloop.errors import MatloopError
from matloop.graphs.campaign import build_graph
from matloop.graphs.context import (
    ROLES,
    CampaignConfig,
    CampaignContext,
    RunServices,
    new_campaign_id,
)
from matloop.graphs.state import checkpoint_serializer
from matloop.materials.mlip import require_installed
from matloop.reports import write_report_files
from matloop.runtime import Budget, scrub, scrub_text, strip_url_credentials
from matloop.schemas import DiscoveryReport
from matloop.tools.base import Toolbox

Approver = Callable[[dict[str, Any]], dict[str, Any]]
log = logging.getLogger(__name__)


@contextmanager
def sqlite_checkpointer(path: Path) -> Iterator[Any]:
    """A LangGraph SQLite checkpointer on ``path`` with matloop's serializer (closed on exit)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn, serde=checkpoint_serializer())
    finally:
        conn.close()


def config_file_text(config: CampaignConfig) -> str:
    """config.json for a campaign: credentials removed from the base URL and the query.

    The running campaign keeps the real values; resume puts a base URL back when it is the
    same URL without credentials.
    """
    data = scrub(config.model_dump(mode="json"))
    if config.base_url:
        data["base_url"] = strip_url_credentials(config.base_url)
    return json.dumps(data, indent=2)


class CampaignStopped(MatloopError):
    """A campaign stopped on request between two graph steps; it can be resumed."""


class CampaignRun:
    """A campaign bound to its run directory; ``run()`` starts or continues it."""

    def __init__(self, config: CampaignConfig, run_dir: Path, *,
                 settings: Settings | None = None, chat_models: dict[str, Any] | None = None,
                 tools: Toolbox | None = None, approve: Approver | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.approve = approve
        self.services: RunServices = build_services(config, run_dir, settings=settings,
                                                    chat_models=chat_models, tools=tools)

    @property
    def thread(self) -> dict[str, Any]:
        """LangGraph config naming this campaign's thread."""
        return {"configurable": {"thread_id": self.config.campaign_id}, "recursion_limit": 500}

    @property
    def context(self) -> CampaignContext:
        """The runtime context every node receives."""
        return CampaignContext(services=self.services)

    def run(self, *, resume: bool = False,
            on_event: Callable[[dict[str, Any]], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> DiscoveryReport:
        """Run to the end (or continue from the last checkpoint when ``resume``).

        Args:
            should_stop: Asked after every graph step; when it returns True the run ends with
                :class:`CampaignStopped`, its last finished step checkpointed, so
                ``run(resume=True)`` continues from there.
        """
        events = self.services.events
        if on_event is not None:
            events.subscribe(on_event)
        checkpoints = self.run_dir / "checkpoints.sqlite"
        check_checkpoint_file(checkpoints)
        events.write("campaign_start" if not resume else "campaign_resume",
                     campaign_id=self.config.campaign_id, query=self.config.query)
        log.info("campaign %s %s in %s", self.config.campaign_id,
                 "resumed" if resume else "started", self.run_dir)
        with sqlite_checkpointer(checkpoints) as saver:
            graph = build_graph().compile(checkpointer=saver)
            payload: Any = None if resume else {"query": self.config.query,
                                                "campaign_id": self.config.campaign_id}
            thread: dict[str, Any] = self.thread
            if resume and not graph.get_state(self.thread).values:
                raise MatloopError(f"campaign {self.config.campaign_id} has no checkpoint",
                                   hint="start it again without --resume")
            if resume:
                thread = self._retry_point(graph, events) or thread
            while True:
                # durability="sync": each node's checkpoint is on disk before the next node
                # starts, so a killed process never redoes a finished step.
                for _ in graph.stream(payload, thread, context=self.context,
                                      stream_mode="updates", durability="sync"):
                    if should_stop is not None and should_stop():
                        events.write("campaign_stopped", campaign_id=self.config.campaign_id)
                        raise CampaignStopped(
                            f"campaign {self.config.campaign_id} stopped",
                            hint=f"resume it with --resume {self.config.campaign_id}")
                snapshot = graph.get_state(self.thread)
                pending = [i for t in snapshot.tasks for i in t.interrupts]
                if not pending:
                    break
                if self.approve is None:
                    raise MatloopError("the plan needs approval but no one can answer",
                                       hint="pass --yes for batch runs")
                payload = Command(resume=self.approve(pending[0].value))
                thread = self.thread
            values = snapshot.values
        report = values.get("report")
        if report is None:
            raise MatloopError(f"campaign {self.config.campaign_id} ended without a report")
        events.write("campaign_end", status=values.get("status"))
        return report

    def _retry_point(self, graph: Any, events: Any) -> dict[str, Any] | None:
        """For a campaign that ended ``failed: <node>: ...``: the checkpoint just before that
        node ran, so a resume runs the failed node again (e.g. once the model server is back)
        and goes on from there. None for any other campaign."""
        latest = graph.get_state(self.thread)
        status = str(latest.values.get("status") or "")
        if latest.next or not status.startswith("failed: "):
            return None
        failed_node = status.split(": ", 2)[1]
        history = list(graph.get_state_history(self.thread))  # newest first
        if failed_node != "report":  # a node failure, not a status the reporter derived
            before = next((s for s in history if "report" in s.next), None)
            if before is None or not str(before.values.get("status") or "").startswith(
                    "failed: "):
                return None
        for snapshot in history:
            if failed_node in snapshot.next and not str(
                    snapshot.values.get("status") or "").startswith("failed: "):
                events.write("campaign_retry", campaign_id=self.config.campaign_id,
                             node=failed_node, failed=status)
                return {**self.thread, "configurable": dict(snapshot.config["configurable"])}
        return None

    def state(self) -> dict[str, Any]:
        """The latest checkpointed state (typed values)."""
        check_checkpoint_file(self.run_dir / "checkpoints.sqlite")
        with sqlite_checkpointer(self.run_dir / "checkpoints.sqlite") as saver:
            graph = build_graph().compile(checkpointer=saver)
            return dict(graph.get_state(self.thread).values)


def start_campaign(query: str, *, out_dir: str | Path = "runs", llm: str = "none",
                   role_models: dict[str, str] | None = None, budget: Budget | None = None,
                   mlip: str | None = None, seed: int = 0, require_approval: bool = False,
                   base_url: str | None = None, max_atoms: int = 20,
                   campaign_id: str | None = None, settings: Settings | None = None,
                   chat_models: dict[str, Any] | None = None, tools: Toolbox | None = None,
                   approve: Approver | None = None, llm_max_tokens: dict[str, int] | None = None,
                   llm_timeout_s: float | None = None, fallback: str = "none",
                   accept_assumptions: bool = False) -> CampaignRun:
    """Check everything, then create a run directory and its configuration; call ``.run()``
    on the result. Nothing is written when a check fails.

    Credentials typed into the query (API keys, tokens, URLs with passwords) are replaced by
    ``[redacted]`` before anything is stored, with a warning in the log.

    Args:
        accept_assumptions: Go on when the question has parts that cannot be read as asked
            (unknown elements, conditions not understood), with the assumptions written at the
            top of the report; otherwise such a question raises :class:`QueryProblemsError`.

    ``llm_max_tokens`` (output tokens per role), ``llm_timeout_s`` and ``fallback``
    (``none`` or ``offline``) are the :class:`CampaignConfig` fields of the same names.

    Raises:
        QueryProblemsError: See ``accept_assumptions``.
        MatloopError: An empty or invalid query, an unknown role or MLIP, an invalid setting,
            a campaign id that exists already, or a run directory that cannot be written.
    """
    text = check_query(query)
    clean = scrub_text(text)
    if clean != text:
        log.warning("the query held something that looks like a credential; it was replaced "
                    "by [redacted] before the campaign started")
    for role in (role_models or {}):
        if role not in ROLES:
            raise MatloopError(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    if campaign_id is not None:
        check_campaign_id(campaign_id)
    settings = settings or get_settings()
    if tools is None:
        require_installed(mlip or settings.mlip)
    try:
        config = CampaignConfig(
            query=clean, campaign_id=campaign_id or new_campaign_id(), llm=llm,
            role_models=role_models or {}, base_url=base_url, mlip=mlip or settings.mlip,
            budget=budget or Budget(), seed=seed, require_approval=require_approval,
            max_atoms=max_atoms, llm_max_tokens=llm_max_tokens or {}, fallback=fallback,
            **({"llm_timeout_s": llm_timeout_s} if llm_timeout_s is not None else {}))
    except ValueError as exc:
        raise MatloopError(f"invalid campaign settings: {str(exc).splitlines()[-1].strip()}",
                           hint="see matloop campaign --help") from exc
    problems = query_problems(clean)
    if problems and not accept_assumptions:
        raise QueryProblemsError(problems)
    for problem in problems:
        log.warning("going on with an assumption: %s", problem.describe())
    run_dir = Path(out_dir) / config.campaign_id
    if (run_dir / "config.json").exists():
        raise MatloopError(f"campaign {config.campaign_id} exists already in {out_dir}",
                           hint=f"resume it with --resume {config.campaign_id}, or choose "
                                f"another --campaign-id")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(config_file_text(config), encoding="utf-8")
    except OSError as exc:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise MatloopError(f"cannot write the run directory {run_dir} "
                           f"({exc.strerror or type(exc).__name__})",
                           hint="choose a folder you can write to with --out") from exc
    return CampaignRun(config, run_dir, settings=settings, chat_models=chat_models, tools=tools,
                       approve=approve)


def read_config(run_dir: Path) -> CampaignConfig:
    """The configuration of a run directory.

    Raises:
        MatloopError: No such run, or its config.json is damaged.
    """
    path = run_dir / "config.json"
    if not path.is_file():
        raise MatloopError(f"no campaign in {run_dir}",
                           hint="pass the thread id printed when the campaign started, and the "
                                "same --out directory")
    try:
        return CampaignConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise MatloopError(f"{path} cannot be read ({exc.strerror or type(exc).__name__})",
                           hint="check the run directory's permissions") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MatloopError(f"{path} is damaged ({type(exc).__name__})",
                           hint="the run cannot be resumed; start the campaign again") from exc


def resume_campaign(campaign_id: str, *, out_dir: str | Path = "runs",
                    settings: Settings | None = None,
                    chat_models: dict[str, Any] | None = None, tools: Toolbox | None = None,
                    approve: Approver | None = None, base_url: str | None = None,
                    ) -> CampaignRun:
    """Reopen a campaign's run directory (``.run(resume=True)`` continues it).

    ``base_url`` restores a server URL whose credentials were kept out of config.json.

    Raises:
        MatloopError: An invalid id, no such run, a damaged config.json or checkpoint, or a
            run directory that cannot be written.
    """
    check_campaign_id(campaign_id)
    run_dir = Path(out_dir) / campaign_id
    config = read_config(run_dir)
    check_checkpoint_file(run_dir / "checkpoints.sqlite")
    unwritable = [p for p in (run_dir, run_dir / "checkpoints.sqlite", run_dir / "events.jsonl")
                  if p.exists() and not os.access(p, os.W_OK)]
    if unwritable:
        raise MatloopError(f"{unwritable[0]} is not writable",
                           hint="the campaign cannot continue there; fix the permissions, or "
                                "copy the run directory somewhere writable and pass that --out")
    if base_url and config.base_url == strip_url_credentials(base_url):
        config = config.model_copy(update={"base_url": base_url})
    return CampaignRun(config, Path(out_dir) / campaign_id, settings=settings,
                       chat_models=chat_models, tools=tools, approve=approve)


def run_campaign(query: str, *, out_dir: str | Path = "runs", llm: str = "none",
                 role_models: dict[str, str] | None = None, budget: Budget | None = None,
                 mlip: str | None = None, seed: int = 0, base_url: str | None = None,
                 max_atoms: int = 20, campaign_id: str | None = None,
                 settings: Settings | None = None, chat_models: dict[str, Any] | None = None,
                 tools: Toolbox | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 write_files: bool = True, llm_max_tokens: dict[str, int] | None = None,
                 llm_timeout_s: float | None = None, fallback: str = "none",
                 accept_assumptions: bool = False) -> DiscoveryReport:
    """Run a campaign to the end and return its report (the notebook entry point).

    Args:
        query: The materials question.
        out_dir: Folder of run directories.
        llm: ``none`` (offline policies) or ``provider:model`` for every role.
        role_models: Per-role ``provider:model`` overrides.
        budget: Limits (iterations, MLIP evaluations, LLM calls, tokens, USD, wall time).
        mlip: MLIP backend (default: the settings').
        seed: Seed of every stochastic step.
        base_url: OpenAI-compatible server URL.
        max_atoms: Largest generated cell, atoms.
        campaign_id: Thread id (default: a new one).
        settings: Process settings (default: from the environment).
        chat_models: Ready chat models by role.
        tools: A toolbox to use instead of the default tools.
        on_event: Receives every event as it happens.
        write_files: Write report.json/md/html, cards and DFT inputs into the run directory.
        llm_max_tokens: Output tokens per LLM call, by role (defaults per role).
        llm_timeout_s: Time limit of one LLM request, s.
        fallback: ``none`` (a failing role model ends the campaign with a partial report) or
            ``offline`` (its offline policy takes over; the report says so).
        accept_assumptions: Go on when parts of the question cannot be read as asked (see
            :func:`start_campaign`); by default such a question raises
            :class:`QueryProblemsError` with what to ask.

    The defaults are those of ``matloop campaign`` (budget: 3 iterations, 60 MLIP
    evaluations, 200 LLM calls, 2,000,000 tokens, 5 USD, 3600 s; 20 atoms; seed 0; offline).
    Plans are approved automatically, like ``--yes`` (use :func:`start_campaign` with
    ``approve=`` to review them).

    Returns:
        The report; ``report.to_dataframe()`` gives the candidates as a pandas DataFrame.
    """
    run = start_campaign(query, out_dir=out_dir, llm=llm, role_models=role_models, budget=budget,
                         mlip=mlip, seed=seed, base_url=base_url, max_atoms=max_atoms,
                         campaign_id=campaign_id, settings=settings, chat_models=chat_models,
                         tools=tools, llm_max_tokens=llm_max_tokens, llm_timeout_s=llm_timeout_s,
                         fallback=fallback, accept_assumptions=accept_assumptions)
    report = run.run(on_event=on_event)
    if write_files:
        report = write_report_files(report, run.run_dir).report
    return report


def rebuild_report(run_dir: Path) -> DiscoveryReport:
    """The report of a run without report.json, from its last checkpoint (offline reporter).

    Raises:
        MatloopError: The folder is not a campaign run or has no checkpoint.
    """
    if not (run_dir / "config.json").is_file() or not (run_dir / "checkpoints.sqlite").is_file():
        raise MatloopError(f"{run_dir}: no report.json and no campaign checkpoint",
                           hint="pass a run directory written by `matloop campaign` "
                                "(it holds config.json and checkpoints.sqlite)")
    config = read_config(run_dir)
    run = resume_campaign(config.campaign_id, out_dir=run_dir.parent, chat_models={})
    try:
        state: dict[str, Any] = run.state()
    except sqlite3.DatabaseError as exc:
        raise MatloopError(f"{run_dir / 'checkpoints.sqlite'} is damaged ({exc})",
                           hint="the report cannot be rebuilt; start the campaign again") from exc
    if not state:
        raise MatloopError(f"{run_dir}: the campaign has no checkpoint yet",
                           hint="start it again: there is nothing to rebuild a report from")
    if state.get("report") is not None:
        return state["report"]
    run.services.methods["models"] = {
        role: "offline" if config.model_for(role).lower() in ("", "none", "offline")
        else config.model_for(role) for role in ROLES}
    state = {**state, "status": state.get("status") or (
        f"partial: rebuilt from the last checkpoint; the campaign did not finish (continue it "
        f"with matloop campaign --resume {config.campaign_id} --out {run_dir.parent})")}
    return run.services.reporter.build(state, run.services).report


FORMATS = ("html", "md", "json")


def render_run(run_dir: Path, *, fmt: str = "html") -> Path:
    """Re-render a finished or partial run to ``fmt`` (html, md or json).

    A run killed before its report (no report.json) is rebuilt from its last checkpoint.
    """
    if fmt not in FORMATS:
        raise MatloopError(f"unknown format {fmt!r}", hint="use html, md or json")
    if not run_dir.is_dir():
        raise MatloopError(f"{run_dir}: no such run directory" if not run_dir.exists()
                           else f"{run_dir}: not a folder",
                           hint="pass runs/<campaign id> (see the campaign's first output line)")
    source = run_dir / "report.json"
    if source.is_file():
        try:
            report = DiscoveryReport.model_validate_json(source.read_bytes())
        except ValueError as exc:
            raise MatloopError(f"{source} is not a valid report: {str(exc)[:200]}",
                               hint="delete it and re-render: the report is rebuilt from the "
                                    "checkpoint") from exc
    else:
        report = rebuild_report(run_dir)
    try:
        paths = write_report_files(report, run_dir).paths
    except OSError as exc:
        raise MatloopError(f"cannot write the report into {run_dir} "
                           f"({exc.strerror or type(exc).__name__})",
                           hint="fix the folder's permissions (or free disk space), or copy the "
                                "run directory somewhere writable and render it there") from exc
    return {"json": paths[0], "md": paths[1], "html": paths[2]}[fmt]
