"""Campaigns started from the page: one background thread per thread id.

A job runs :class:`matloop.app.campaign.CampaignRun` in a thread. Plan approval (a LangGraph
interrupt) waits for an answer posted by the page; stop is cooperative (checked between graph
steps, so the last finished step stays checkpointed) and resume uses the campaign's own
resume machinery. Progress reaches the page through the run's events.jsonl.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from matloop.app.campaign import CampaignRun, CampaignStopped, config_file_text
from matloop.app.web.runs import (
    RUN_ID_PATTERN,
    ApiError,
    RunStore,
    checkpoint_values,
    read_config,
)
from matloop.config import Settings
from matloop.errors import MatloopError
from matloop.graphs.context import (
    CampaignConfig,
    check_max_tokens,
    check_role_models,
    new_campaign_id,
)
from matloop.runtime import Budget, EventLog, strip_url_credentials
from matloop.schemas import Plan

log = logging.getLogger(__name__)

ACTIVE = ("starting", "running", "awaiting_approval", "stopping")


class CampaignRequest(BaseModel):
    """A campaign to start from the page."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="The materials question.")
    thread_id: str | None = Field(default=None, pattern=RUN_ID_PATTERN,
                                  description="Thread id (run directory name); new if unset.")
    max_iterations: int = Field(default=2, ge=1, le=20, description="Ideation loops.")
    max_evaluations: int = Field(default=20, ge=1, le=2000,
                                 description="Candidate MLIP relaxations.")
    max_llm_calls: int = Field(default=200, ge=1, description="LLM calls over all roles.")
    budget_usd: float = Field(default=5.0, gt=0, allow_inf_nan=False,
                              description="Spend limit, USD.")
    max_wall_time_s: float = Field(default=3600.0, gt=0, le=7 * 86400,
                                   description="Wall-time limit, seconds.")
    require_approval: bool = Field(default=False, description="Ask before running each plan.")
    llm: str | None = Field(default=None, description="PROVIDER:MODEL or none; server default "
                                                      "when unset.")
    role_models: dict[str, str] = Field(default_factory=dict,
                                        description="Per-role PROVIDER:MODEL overrides.")
    mlip: str | None = Field(default=None, description="MLIP backend; settings default.")
    seed: int = Field(default=0, description="Seed of every stochastic step.")
    max_atoms: int = Field(default=20, ge=1, le=200, description="Largest generated cell, "
                                                                 "atoms.")
    fallback: Literal["none", "offline"] = Field(
        default="none", description="none: a role whose model fails ends the campaign with a "
                                    "partial report; offline: its offline policy takes over "
                                    "and the report says so.")
    llm_max_tokens: dict[str, int] = Field(default_factory=dict,
                                           description="Output tokens per LLM call, by role.")
    llm_timeout_s: float | None = Field(default=None, gt=0, le=3600,
                                        description="Time limit of one LLM request, s.")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('empty query: ask a question, e.g. "stable Ba-Ti-O oxides"')
        return value.strip()

    _known_roles = field_validator("role_models")(check_role_models)
    _known_limits = field_validator("llm_max_tokens")(check_max_tokens)

    @field_validator("mlip")
    @classmethod
    def _known_mlip(cls, value: str | None) -> str | None:
        from matloop.materials.mlip import get_backend_spec

        if value is not None:
            try:
                get_backend_spec(value)
            except MatloopError as exc:
                raise ValueError(str(exc)) from None
        return value


class ApprovalAnswer(BaseModel):
    """The page's answer to a plan-approval request."""

    model_config = ConfigDict(extra="forbid")

    approved: bool = Field(description="Run the plan (true) or send it back (false).")
    feedback: str = Field(default="", max_length=4000,
                          description="What should change (a rejection without feedback "
                                      "ends the campaign).")
    plan: dict[str, Any] | None = Field(default=None,
                                        description="An edited plan (Plan schema) to run "
                                                    "instead; only with approved=true.")


@dataclass
class Job:
    """A campaign thread of this server."""

    run_id: str
    run_dir: Path
    state: str = "starting"
    pending: dict[str, Any] | None = None
    error: str | None = None
    tool_names: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    answers: queue.Queue = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None

    def view(self) -> dict[str, Any]:
        """What the page may see of the job."""
        return {"state": self.state, "pending": self.pending, "error": self.error}


class CampaignManager:
    """Starts, stops, resumes and answers the campaigns of one runs folder."""

    def __init__(self, store: RunStore, *, settings: Settings, llm: str = "none",
                 base_url: str | None = None, chat_models: dict[str, Any] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.llm = llm
        self.base_url = base_url
        self.chat_models = chat_models
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def job(self, run_id: str) -> Job | None:
        """The job of a thread id on this server, if any."""
        return self.jobs.get(run_id)

    def job_view(self, run_id: str) -> dict[str, Any] | None:
        """The job's state for summaries and event streams."""
        job = self.jobs.get(run_id)
        return job.view() if job else None

    def active(self, run_id: str) -> bool:
        """Whether a campaign thread is working on this thread id now."""
        job = self.jobs.get(run_id)
        return job is not None and job.state in ACTIVE

    def start(self, request: CampaignRequest) -> Job:
        """Write the run's config.json and start it in a background thread."""
        run_id = request.thread_id or new_campaign_id()
        run_dir = self.store.path(run_id)
        with self._lock:
            if self.active(run_id):
                raise ApiError(409, f"a campaign is already running on thread {run_id!r}",
                               hint=f"watch it (GET /api/campaigns/{run_id}/events), stop it "
                                    f"(POST /api/campaigns/{run_id}/stop) or use another "
                                    "thread id")
            if (run_dir / "config.json").is_file():
                raise ApiError(409, f"thread {run_id!r} already has a campaign",
                               hint=f"resume it (POST /api/campaigns/{run_id}/resume) or "
                                    "start a new one under another thread id")
            budget = Budget(max_iterations=request.max_iterations,
                            max_evaluations=request.max_evaluations,
                            max_llm_calls=request.max_llm_calls,
                            max_cost_usd=request.budget_usd,
                            max_wall_time_s=request.max_wall_time_s)
            config = CampaignConfig(
                query=request.query, campaign_id=run_id, llm=request.llm or self.llm,
                role_models=request.role_models, base_url=self.base_url,
                mlip=request.mlip or self.settings.mlip, budget=budget, seed=request.seed,
                require_approval=request.require_approval, max_atoms=request.max_atoms,
                fallback=request.fallback, llm_max_tokens=request.llm_max_tokens,
                **({"llm_timeout_s": request.llm_timeout_s} if request.llm_timeout_s else {}))
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(config_file_text(config))
            job = self._launch(config, run_dir, resume=False)
        return job

    def resume(self, run_id: str) -> Job:
        """Continue an interrupted or stopped campaign from its last checkpoint (or from the
        start when it stopped before its first step)."""
        run_dir = self.store.run_dir(run_id)
        with self._lock:
            if self.active(run_id):
                raise ApiError(409, f"campaign {run_id!r} is running",
                               hint="stop it first, or watch it")
            if (run_dir / "report.json").is_file():
                raise ApiError(409, f"campaign {run_id!r} has finished; nothing to resume",
                               hint="open its report, or start a new campaign")
            config = CampaignConfig.model_validate(read_config(run_dir))
            if self.base_url and config.base_url == strip_url_credentials(self.base_url):
                # config.json holds the URL without its credentials; the server has them.
                config = config.model_copy(update={"base_url": self.base_url})
            # Stopped before its first step: nothing is checkpointed, so it starts afresh.
            started = bool(checkpoint_values(run_dir, run_id))
            return self._launch(config, run_dir, resume=started)

    def stop(self, run_id: str) -> Job:
        """Ask a running campaign to stop after its current graph step."""
        self.store.run_dir(run_id)
        job = self.jobs.get(run_id)
        if job is None or job.state not in ACTIVE:
            raise ApiError(409, f"campaign {run_id!r} is not running",
                           hint="only a running campaign can be stopped; resume it first")
        job.stop.set()
        if job.state != "awaiting_approval":
            job.state = "stopping"
        return job

    def answer(self, run_id: str, answer: ApprovalAnswer) -> Job:
        """Pass the page's approval answer to a campaign waiting for one."""
        self.store.run_dir(run_id)
        job = self.jobs.get(run_id)
        if job is None or job.state != "awaiting_approval":
            state = job.state if job else "not running on this server"
            raise ApiError(409, f"campaign {run_id!r} is not waiting for plan approval "
                                f"(state: {state})",
                           hint="answer when the page shows a plan to approve")
        payload: dict[str, Any] = {"approved": answer.approved, "feedback": answer.feedback}
        if answer.plan is not None:
            if not answer.approved:
                raise ApiError(422, "an edited plan can only be approved",
                               hint="send approved=true with the plan, or feedback to reject")
            try:
                plan = Plan.model_validate(answer.plan)
            except ValidationError as exc:
                raise ApiError(422, f"the edited plan does not match the Plan schema: "
                                    f"{_first_errors(exc)}",
                               hint="each step needs id, purpose, tool and inputs; the plan "
                                    "needs reasoning and steps") from None
            unknown = sorted({s.tool for s in plan.steps} - job.tool_names)
            if unknown:
                raise ApiError(422, f"the edited plan uses unknown tools: {', '.join(unknown)}",
                               hint=f"tools: {', '.join(sorted(job.tool_names))}")
            if len({s.id for s in plan.steps}) != len(plan.steps) or not plan.steps:
                raise ApiError(422, "the edited plan needs at least one step and unique "
                                    "step ids", hint="number the steps S1, S2, ...")
            payload["plan"] = plan.model_dump(mode="json")
        job.answers.put(payload)
        return job

    def _launch(self, config: CampaignConfig, run_dir: Path, *, resume: bool) -> Job:
        job = Job(run_id=config.campaign_id, run_dir=run_dir)
        self.jobs[config.campaign_id] = job
        job.thread = threading.Thread(target=self._work, args=(job, config, resume),
                                      name=f"campaign-{config.campaign_id}", daemon=True)
        job.thread.start()
        return job

    def _work(self, job: Job, config: CampaignConfig, resume: bool) -> None:
        from matloop.reports import write_report_files

        events = EventLog(job.run_dir / "events.jsonl")
        try:
            run = CampaignRun(config, job.run_dir, settings=self.settings,
                              chat_models=self.chat_models,
                              approve=lambda payload: self._wait_for_answer(job, payload, run))
            job.tool_names = run.services.tools.names
            if job.stop.is_set():
                raise CampaignStopped(f"campaign {config.campaign_id} stopped")
            job.state = "running"
            report = run.run(resume=resume, should_stop=job.stop.is_set)
            write_report_files(report, job.run_dir)
            job.state = "finished"
        except CampaignStopped:
            job.state = "stopped"
        except MatloopError as exc:
            job.error = str(exc)
            job.state = "failed"
            events.write("campaign_error", error=job.error)
        except Exception as exc:  # the thread must not die silently: the page shows it
            log.exception("campaign %s failed", config.campaign_id)
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = "failed"
            events.write("campaign_error", error=job.error)
        finally:
            job.pending = None

    def _wait_for_answer(self, job: Job, payload: dict[str, Any], run: CampaignRun
                         ) -> dict[str, Any]:
        """The CampaignRun approval callback: block until the page answers or stops."""
        job.pending = payload
        job.state = "awaiting_approval"
        run.services.events.write("approval_requested", plan=payload.get("plan"))
        while True:
            if job.stop.is_set():
                run.services.events.write("campaign_stopped", campaign_id=job.run_id,
                                     note="stopped while waiting for plan approval")
                raise CampaignStopped(f"campaign {job.run_id} stopped")
            try:
                answer = job.answers.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        job.pending = None
        job.state = "running"
        return answer

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every job at its next step and wait for the threads."""
        for job in list(self.jobs.values()):
            job.stop.set()
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout=timeout_s)


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = [f"{'.'.join(str(x) for x in e['loc']) or 'plan'}: {e['msg']}"
             for e in exc.errors()[:limit]]
    return "; ".join(parts)
