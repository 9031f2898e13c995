"""What a campaign run needs besides its state: its configuration and its services.

:class:`CampaignContext` is the campaign graph's ``context_schema``: LangGraph hands it to
every node as ``runtime.context``. It carries the run's :class:`RunServices` (roles, tools,
budget, event log, engine) when the caller built them (command line, Python API, tests), or
just the configuration, from which the services are built once per thread by the builder the
application registers (:func:`register_services_builder`) — that is how one compiled graph in
the LangGraph server runs many campaigns, each in its own run directory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import AliasChoices, BaseModel, Field, field_validator

from matloop.agents.base import Assistant, Critic, Planner, Reporter, Scientist
from matloop.errors import MatloopError
from matloop.runtime import Budget, EventLog, PriceTable, scrub_text
from matloop.schemas import Usage
from matloop.tools.base import Toolbox
from matloop.tools.runner import ToolRunner

ROLES = ("scientist", "planner", "critic", "assistant", "reporter")
#: Output limits per role (tokens): each fits the role's largest structured answer with its
#: bounded schema; "generator" is the few-shot structure generator (the scientist's model).
DEFAULT_MAX_TOKENS: dict[str, int] = {"scientist": 1500, "planner": 1500, "critic": 1000,
                                      "assistant": 512, "reporter": 1500, "generator": 1024}
#: Time limit of one LLM request (s): local CPU servers answer in minutes, not seconds.
DEFAULT_LLM_TIMEOUT_S = 300.0
#: Thread ids are folder names: letters, digits, dot, dash, underscore; no leading dot.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def new_campaign_id() -> str:
    """A fresh, sortable thread id."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def check_role_models(value: dict[str, str]) -> dict[str, str]:
    """Validator of per-role models: every key a role (shared by the run and web configs)."""
    unknown = sorted(set(value) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles: {', '.join(ROLES)}")
    return value


def check_max_tokens(value: dict[str, int]) -> dict[str, int]:
    """Validator of per-role output limits: known roles, at least 16 tokens each."""
    unknown = sorted(set(value) - set(DEFAULT_MAX_TOKENS))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)} in llm_max_tokens; roles: "
                         f"{', '.join(DEFAULT_MAX_TOKENS)}")
    bad = sorted(k for k, v in value.items() if v < 16)
    if bad:
        raise ValueError(f"llm_max_tokens of {', '.join(bad)} must be at least 16")
    return value

class CampaignConfig(BaseModel):
    """Everything that defines a campaign run (saved as config.json, without credentials)."""

    query: str = Field(description="The user's question.")
    campaign_id: str = Field(description="Thread id; also the run directory name.",
                             pattern=RUN_ID_PATTERN)
    llm: str = Field(default="none", description="Default model for every role, or none.")
    role_models: dict[str, str] = Field(default_factory=dict,
                                        description="Per-role model overrides.")
    base_url: str | None = Field(default=None, description="OpenAI-compatible server URL.")
    mlip: str = Field(default="chgnet", description="MLIP backend.")
    budget: Budget = Field(default_factory=Budget, description="Campaign limits.")
    seed: int = Field(default=0, description="Seed of every stochastic step.")
    require_approval: bool = Field(default=False, description="Ask a human to approve plans.")
    max_atoms: int = Field(default=20, ge=1, le=200,
                           validation_alias=AliasChoices("max_atoms", "max_generated_atoms"),
                           description="Largest generated cell (atoms); the engine's own limit "
                                       "on input structures is a separate setting.")
    tool_timeout_s: float = Field(default=1800.0, gt=0, description="Time limit per tool call, "
                                                                     "s.")
    price_table: str | None = Field(default=None, description="Price table JSON path.")
    llm_max_tokens: dict[str, int] = Field(
        default_factory=dict, description="Output tokens per LLM call, by role (scientist, "
                                          "planner, critic, assistant, reporter, generator); "
                                          "unset roles use DEFAULT_MAX_TOKENS.")
    llm_timeout_s: float = Field(default=DEFAULT_LLM_TIMEOUT_S, gt=0,
                                 description="Time limit of one LLM request, s.")
    fallback: Literal["none", "offline"] = Field(
        default="none", description="What happens when a role's model fails: none ends the "
                                    "campaign with a partial report; offline hands the role to "
                                    "its offline policy for the rest of the run (the report "
                                    "says so).")

    _known_roles = field_validator("role_models")(check_role_models)
    _known_limits = field_validator("llm_max_tokens")(check_max_tokens)
    @field_validator("query")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        """Credentials typed into a question never reach checkpoints, events or reports."""
        return scrub_text(value)

    def model_for(self, role: str) -> str:
        """The model setting of one role."""
        return self.role_models.get(role, self.llm)

    def max_tokens_for(self, role: str) -> int:
        """Output tokens per call of one role."""
        return self.llm_max_tokens.get(role, DEFAULT_MAX_TOKENS.get(role, 1024))


@dataclass
class RunServices:
    """The live objects of one campaign run. Built per run, never at import time."""

    config: CampaignConfig
    run_dir: Path
    scientist: Scientist
    critic: Critic
    planner: Planner
    assistant: Assistant
    reporter: Reporter
    tools: Toolbox
    events: EventLog
    engine: Any
    models: dict[str, str] = field(default_factory=dict)
    property_models: set[str] = field(default_factory=set)
    prices: PriceTable = field(default_factory=PriceTable)
    methods: dict[str, Any] = field(default_factory=dict)
    offline: dict[str, Any] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)
    pending: Usage = field(default_factory=Usage)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def budget(self) -> Budget:
        """The run's limits."""
        return self.config.budget

    def runner(self, *, timeout_s: float | None = None) -> ToolRunner:
        """A tool runner with the run's time limit per call."""
        return ToolRunner(self.tools, timeout_s=timeout_s or self.config.tool_timeout_s)

    def record_llm_call(self, rec: Any) -> None:
        """LLM client callback: count the call and log it."""
        cost = self.prices.cost_usd(rec.model, rec.input_tokens, rec.output_tokens)
        with self._lock:
            self.pending.llm_calls += 1
            self.pending.input_tokens += rec.input_tokens
            self.pending.output_tokens += rec.output_tokens
            self.pending.cost_usd += cost or 0.0
        self.events.write("llm_call", role=rec.role, model=rec.model,
                          input_tokens=rec.input_tokens, output_tokens=rec.output_tokens,
                          latency_s=round(rec.latency_s, 3), ok=rec.ok, error=rec.error,
                          cost_usd=cost, **{name: getattr(rec, attr) for name, attr in
                                            (("mechanism", "mechanism"), ("failure", "kind"),
                                             ("finish_reason", "finish_reason"))
                                            if getattr(rec, attr, None)})

    def fall_back(self, role: str, reason: str) -> bool:
        """Hand a failed role to its offline policy for the rest of the run, when the
        configuration allows it (``fallback="offline"``); the switch is logged.

        Returns:
            Whether the role now runs offline.
        """
        policy = self.offline.get(role)
        if self.config.fallback != "offline" or policy is None or role in self.fallbacks or \
                getattr(self, role, None) is policy:
            return False
        setattr(self, role, policy)
        model = self.models.get(role, "?")
        self.fallbacks[role] = reason
        self.models[role] = f"offline (fallback: {model} failed)"
        self.methods.setdefault("models", {})[role] = self.models[role]
        self.events.write("llm_fallback", role=role, model=model, reason=reason)
        return True

    def spend(self, **counts: int) -> None:
        """Count tool calls, MLIP evaluations or iterations spent by the current node."""
        with self._lock:
            for key, value in counts.items():
                setattr(self.pending, key, getattr(self.pending, key) + value)

    def take_usage(self, before: Usage | None, seconds: float) -> Usage:
        """Usage so far: ``before`` plus what the current node spent, which is then reset."""
        u = (before or Usage()).model_copy()
        with self._lock:
            p, self.pending = self.pending, Usage()
        for key in ("llm_calls", "input_tokens", "output_tokens", "mlip_evaluations",
                    "tool_calls", "iterations"):
            setattr(u, key, getattr(u, key) + getattr(p, key))
        u.cost_usd = round(u.cost_usd + p.cost_usd, 6)
        u.wall_time_s = round(u.wall_time_s + seconds, 3)
        return u


@dataclass
class CampaignContext:
    """The campaign graph's runtime context.

    Attributes:
        services: The run's services, when the caller built them.
        config: The run's configuration (a dict from a LangGraph server client is validated),
            used to build the services when ``services`` is None.
        runs_dir: Folder of run directories for services built here (default: the settings'
            ``runs_dir``).
    """

    services: RunServices | None = None
    config: CampaignConfig | dict[str, Any] | None = None
    runs_dir: str | None = None


ServicesBuilder = Callable[[CampaignConfig, Path], RunServices]
_BUILDER: list[ServicesBuilder] = []
_BUILT: dict[str, RunServices] = {}
_BUILT_LOCK = threading.Lock()


def register_services_builder(builder: ServicesBuilder) -> None:
    """Set how services are built from a configuration (the application does this once)."""
    _BUILDER[:] = [builder]


def services_for(context: CampaignContext | None, config: RunnableConfig | None,
                 state: dict[str, Any] | None = None) -> RunServices:
    """The services of the run a node belongs to.

    Raises:
        MatloopError: Nothing to build them from (no services, no builder registered).
    """
    if context is not None and context.services is not None:
        return context.services
    thread = str(((config or {}).get("configurable") or {}).get("thread_id") or "")
    with _BUILT_LOCK:
        if thread and thread in _BUILT:
            return _BUILT[thread]
        if not _BUILDER:
            raise MatloopError("this campaign graph has no run services",
                               hint="run it through matloop (matloop campaign, run_campaign or "
                                    "the LangGraph server module matloop.app.server)")
        raw = context.config if context is not None else None
        data = raw.model_dump() if isinstance(raw, CampaignConfig) else dict(raw or {})
        state = state or {}
        data.setdefault("query", state.get("query") or "(set per run)")
        data.setdefault("campaign_id", thread or state.get("campaign_id") or new_campaign_id())
        from matloop.config import get_settings

        settings = get_settings()
        data.setdefault("llm", settings.llm)
        cfg = CampaignConfig.model_validate(data)
        runs = Path(context.runs_dir) if context is not None and context.runs_dir else \
            settings.runs_dir
        services = _BUILDER[0](cfg, runs / cfg.campaign_id)
        if thread:
            _BUILT[thread] = services
        return services
