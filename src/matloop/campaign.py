"""Run, resume and inspect campaigns: the Python API behind ``matloop campaign``.

A campaign lives in a run directory named after its thread id: ``config.json`` (the full run
configuration), ``checkpoints.sqlite`` (LangGraph SQLite checkpointer), ``events.jsonl``,
``candidates/`` and ``structures/`` (CIFs) and ``report.json``. ``resume`` continues a killed
campaign from its last checkpoint; finished tool work is reused from the checkpoint and the
evaluation cache, so nothing is computed twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from matloop.config import Settings, get_settings
from matloop.errors import MatloopError
from matloop.runtime import Budget, EventLog, PriceTable
from matloop.schemas import DiscoveryReport

ROLES = ("scientist", "planner", "critic", "assistant", "reporter")


class CampaignConfig(BaseModel):
    """Everything that defines a campaign run (saved as config.json)."""

    query: str = Field(description="The user's question.")
    campaign_id: str = Field(description="Thread id; also the run directory name.")
    llm: str = Field(default="none", description="Default model for every role, or none.")
    role_models: dict[str, str] = Field(default_factory=dict,
                                        description="Per-role model overrides.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible server URL.")
    mlip: str = Field(default="chgnet", description="MLIP backend.")
    budget: Budget = Field(default_factory=Budget, description="Campaign limits.")
    seed: int = Field(default=0, description="Seed of every stochastic step.")
    require_approval: bool = Field(default=False, description="Ask a human to approve plans.")
    max_atoms: int = Field(default=20, description="Largest generated cell, atoms.")
    tool_timeout_s: float = Field(default=1800.0, description="Time limit per tool call, s.")
    price_table: str | None = Field(default=None, description="Price table JSON path.")


def new_campaign_id() -> str:
    """A fresh, sortable thread id."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def model_for(config: CampaignConfig, role: str) -> str:
    """The model setting of one role."""
    return config.role_models.get(role, config.llm)


@contextmanager
def sqlite_checkpointer(path: Path) -> Iterator[Any]:
    """A LangGraph SQLite checkpointer on ``path`` (closed on exit)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def build_context(config: CampaignConfig, run_dir: Path, *, settings: Settings | None = None,
                  chat_models: dict[str, Any] | None = None, tools: dict[str, Any] | None = None,
                  ) -> Any:
    """Policies, tools and logs for one run.

    Args:
        chat_models: Ready chat models by role (tests pass scripted models here); otherwise
            they are built from the config's model strings. A role without a model uses the
            offline policy; there is no fallback from a configured model to another.
        tools: Tools by name (default: :func:`matloop.tools.registry.build_tools`).
    """
    from matloop.agents.policies import make_policies
    from matloop.graphs.campaign import CampaignContext
    from matloop.materials.engine import MaterialsEngine

    settings = settings or get_settings()
    events = EventLog(run_dir / "events.jsonl")
    engine = MaterialsEngine(settings, mlip=config.mlip)
    labels: dict[str, str] = {}
    models: dict[str, Any] = dict(chat_models or {})
    if chat_models is None:
        from matloop.agents.llm import make_chat_model, parse_model_string

        built: dict[str, Any] = {}
        for role in ROLES:
            spec = parse_model_string(model_for(config, role), base_url=config.base_url)
            if spec is None:
                continue
            if spec.label not in built:
                built[spec.label] = make_chat_model(spec)
            models[role] = built[spec.label]
            labels[role] = spec.label
    else:
        labels = {role: getattr(m, "matloop_label", type(m).__name__) for role, m in
                  models.items()}
    for role in ROLES:
        labels.setdefault(role, "offline")
    if tools is None:
        from matloop.tools.registry import build_tools

        tools = build_tools(engine, run_dir=run_dir, chat_model=models.get("scientist"))
    try:
        from matloop.tools.registry import property_models

        props = property_models()
    except ImportError:
        props = set()
    prices = PriceTable(config.price_table)
    ctx = CampaignContext(
        scientist=None, critic=None, planner=None, assistant=None, reporter=None,
        tools=tools, budget=config.budget, events=events, run_dir=run_dir, models=labels,
        property_models=props, seed=config.seed, require_approval=config.require_approval,
        tool_timeout_s=config.tool_timeout_s, prices=prices,
        mlip_label=engine.mlip_label,
    )
    policies = make_policies(models, labels, ctx=ctx, max_atoms=config.max_atoms,
                             threshold=settings.stability_threshold_ev_per_atom, engine=engine)
    for role, policy in policies.items():
        setattr(ctx, role, policy)
    ctx.methods = {
        "models": labels, "mlip": engine.mlip_label,
        "reference_scale": settings.reference_scale,
        "stability_threshold_ev_per_atom": settings.stability_threshold_ev_per_atom,
        "relaxation": engine.evaluator.relax_settings(),
        "budget": config.budget.model_dump(), "seed": config.seed,
        "reference_store": engine.store.status(),
        "tools": sorted(tools),
    }
    return ctx


class CampaignStopped(MatloopError):
    """A campaign stopped on request between two graph steps; it can be resumed."""


class CampaignRun:
    """A campaign bound to its run directory; ``run()`` starts or continues it."""

    def __init__(self, config: CampaignConfig, run_dir: Path, *,
                 settings: Settings | None = None, chat_models: dict[str, Any] | None = None,
                 tools: dict[str, Any] | None = None,
                 approve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.settings = settings
        self.chat_models = chat_models
        self.tools = tools
        self.approve = approve
        self.ctx = build_context(config, run_dir, settings=settings, chat_models=chat_models,
                                 tools=tools)

    @property
    def thread(self) -> dict[str, Any]:
        """LangGraph config naming this campaign's thread."""
        return {"configurable": {"thread_id": self.config.campaign_id}, "recursion_limit": 500}

    def run(self, *, resume: bool = False,
            on_event: Callable[[dict[str, Any]], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> DiscoveryReport:
        """Run to the end (or continue from the last checkpoint when ``resume``).

        Args:
            should_stop: Asked after every graph step; when it returns True the run ends with
                :class:`CampaignStopped`, its last finished step checkpointed, so
                ``run(resume=True)`` continues from there.
        """
        from langgraph.types import Command

        from matloop.graphs.campaign import build_graph

        if on_event is not None:
            self.ctx.events.subscribe(on_event)
        self.ctx.events.write("campaign_start" if not resume else "campaign_resume",
                              campaign_id=self.config.campaign_id, query=self.config.query)
        with sqlite_checkpointer(self.run_dir / "checkpoints.sqlite") as saver:
            graph = build_graph(self.ctx).compile(checkpointer=saver)
            payload: Any = None if resume else {"query": self.config.query,
                                                "campaign_id": self.config.campaign_id}
            if resume and not graph.get_state(self.thread).values:
                raise MatloopError(f"campaign {self.config.campaign_id} has no checkpoint",
                                   hint="start it again without --resume")
            while True:
                # durability="sync": each node's checkpoint is on disk before the next node
                # starts, so a killed process never redoes a finished step.
                for _ in graph.stream(payload, self.thread, stream_mode="updates",
                                      durability="sync"):
                    if should_stop is not None and should_stop():
                        self.ctx.events.write("campaign_stopped",
                                              campaign_id=self.config.campaign_id)
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
            values = snapshot.values
        report = values.get("report")
        if not report:
            raise MatloopError(f"campaign {self.config.campaign_id} ended without a report")
        self.ctx.events.write("campaign_end", status=values.get("status"))
        return DiscoveryReport.model_validate(report)

    def state(self) -> dict[str, Any]:
        """The latest checkpointed state."""
        from matloop.graphs.campaign import build_graph

        with sqlite_checkpointer(self.run_dir / "checkpoints.sqlite") as saver:
            graph = build_graph(self.ctx).compile(checkpointer=saver)
            return dict(graph.get_state(self.thread).values)


def start_campaign(query: str, *, out_dir: str | Path = "runs", llm: str = "none",
                   role_models: dict[str, str] | None = None, budget: Budget | None = None,
                   mlip: str | None = None, seed: int = 0, require_approval: bool = False,
                   base_url: str | None = None, max_atoms: int = 20,
                   campaign_id: str | None = None, settings: Settings | None = None,
                   chat_models: dict[str, Any] | None = None, tools: dict[str, Any] | None = None,
                   approve: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   ) -> CampaignRun:
    """Create a run directory and its configuration; call ``.run()`` on the result."""
    if not query.strip():
        raise MatloopError("empty query", hint='ask a question, e.g. "stable Ba-Ti-O oxides"')
    for role in (role_models or {}):
        if role not in ROLES:
            raise MatloopError(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    settings = settings or get_settings()
    config = CampaignConfig(
        query=query, campaign_id=campaign_id or new_campaign_id(), llm=llm,
        role_models=role_models or {}, base_url=base_url, mlip=mlip or settings.mlip,
        budget=budget or Budget(), seed=seed, require_approval=require_approval,
        max_atoms=max_atoms,
    )
    run_dir = Path(out_dir) / config.campaign_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2))
    return CampaignRun(config, run_dir, settings=settings, chat_models=chat_models, tools=tools,
                       approve=approve)


def resume_campaign(campaign_id: str, *, out_dir: str | Path = "runs",
                    settings: Settings | None = None,
                    chat_models: dict[str, Any] | None = None,
                    tools: dict[str, Any] | None = None,
                    approve: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                    ) -> CampaignRun:
    """Reopen a campaign's run directory (``.run(resume=True)`` continues it)."""
    run_dir = Path(out_dir) / campaign_id
    path = run_dir / "config.json"
    if not path.is_file():
        raise MatloopError(f"no campaign {campaign_id!r} in {out_dir}",
                           hint="pass the thread id printed when the campaign started, and the "
                                "same --out directory")
    config = CampaignConfig.model_validate(json.loads(path.read_text()))
    return CampaignRun(config, run_dir, settings=settings, chat_models=chat_models, tools=tools,
                       approve=approve)


def run_campaign(query: str, **kwargs: Any) -> DiscoveryReport:
    """Run a campaign to the end and return its report (notebook entry point).

    Keyword arguments are those of :func:`start_campaign`, plus ``on_event`` to stream events.
    The run directory gets report.json, report.md, report.html, material cards and DFT inputs.
    """
    from matloop.reports import write_report_files

    on_event = kwargs.pop("on_event", None)
    run = start_campaign(query, **kwargs)
    report = run.run(on_event=on_event)
    write_report_files(report, run.run_dir)
    return DiscoveryReport.model_validate_json((run.run_dir / "report.json").read_text())
