"""Assembling a run: chat models, tools and role policies from a campaign configuration.

:func:`build_services` is the one place that turns a :class:`CampaignConfig` into live
objects; the command line, the Python API, the web app and the LangGraph server all use it
(the server through :func:`matloop.graphs.context.register_services_builder`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from matloop.agents.assistant import make_assistant
from matloop.agents.critic import make_critic
from matloop.agents.llm import LLMClient, RecordedModel, make_chat_model, parse_model_string
from matloop.agents.planner import make_planner
from matloop.agents.reporter import make_reporter
from matloop.agents.scientist import make_scientist
from matloop.config import Settings, get_settings
from matloop.files import FileAccess
from matloop.graphs.context import ROLES, CampaignConfig, RunServices, register_services_builder
from matloop.materials.engine import MaterialsEngine
from matloop.runtime import EventLog, PriceTable
from matloop.tools.base import Toolbox
from matloop.tools.registry import build_toolbox, property_models


def chat_models_for(config: CampaignConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """Chat models by role from the configuration's model strings, each with the role's output
    limit and the run's request time limit (one client per distinct model and limit), and
    their labels; roles without a model are left out (offline policy). The scientist's model
    also serves the few-shot structure generator (``generator``, its own output limit)."""
    built: dict[tuple[str, int], Any] = {}
    models: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for role in (*ROLES, "generator"):
        setting = config.model_for("scientist" if role == "generator" else role)
        spec = parse_model_string(setting, base_url=config.base_url)
        if spec is None:
            continue
        key = (spec.label, config.max_tokens_for(role))
        if key not in built:
            built[key] = make_chat_model(spec, max_tokens=key[1],
                                         timeout_s=config.llm_timeout_s)
        models[role] = built[key]
        labels[role] = spec.label
    return models, labels


def offline_policies(config: CampaignConfig, settings: Settings) -> dict[str, Any]:
    """The offline policy of every role (what ``fallback="offline"`` hands a role to)."""
    return {"scientist": make_scientist(
                None, stability_threshold_ev_per_atom=settings.stability_threshold_ev_per_atom,
                max_atoms=config.max_atoms),
            "critic": make_critic(None), "planner": make_planner(None),
            "assistant": make_assistant(None), "reporter": make_reporter(None)}
def progress_to(events: EventLog) -> Callable[[str, str, int, int], None]:
    """A tool-progress callback that writes ``progress`` events (tool, stage, done, total):
    the command line and the web app show them while a tool call runs."""

    def write(tool: str, stage: str, done: int, total: int) -> None:
        events.write("progress", tool=tool, stage=stage, done=done, total=total)

    return write


def build_services(config: CampaignConfig, run_dir: Path, *, settings: Settings | None = None,
                   chat_models: dict[str, Any] | None = None, tools: Toolbox | None = None,
                   engine: MaterialsEngine | None = None) -> RunServices:
    """Policies, tools and logs for one run.

    Args:
        chat_models: Ready chat models by role (tests pass scripted models here); otherwise
            they are built from the configuration's model strings. A role without a model uses
            the offline policy; there is never a fallback from a configured model to another.
        tools: A toolbox (default: :func:`matloop.tools.registry.build_toolbox`).
        engine: A materials engine (default: one from the settings, with the run's MLIP).
    """
    settings = settings or get_settings()
    run_dir.mkdir(parents=True, exist_ok=True)
    events = EventLog(run_dir / "events.jsonl")
    engine = engine or MaterialsEngine(settings, mlip=config.mlip)
    if chat_models is None:
        models, labels = chat_models_for(config)
    else:
        models = dict(chat_models)
        labels = {role: getattr(m, "matloop_label", type(m).__name__) for role, m in
                  models.items()}
        if "scientist" in models:
            models.setdefault("generator", models["scientist"])
            labels.setdefault("generator", labels["scientist"])
    generator = LLMClient(models["generator"], labels["generator"],
                          max_tokens=config.max_tokens_for("generator")) \
        if "generator" in models else None
    labels.pop("generator", None)
    for role in ROLES:
        labels.setdefault(role, "offline")
    if tools is None:
        tools = build_toolbox(engine, run_dir=run_dir,
                              access=FileAccess.working_directory(run_dir),
                              chat_model=RecordedModel(generator, role="generator")
                              if generator is not None else None,
                              progress=progress_to(events))
    services = RunServices(
        config=config, run_dir=run_dir, scientist=None, critic=None,  # type: ignore[arg-type]
        planner=None, assistant=None, reporter=None, tools=tools,  # type: ignore[arg-type]
        events=events, engine=engine, models=labels, property_models=property_models(),
        prices=PriceTable(config.price_table), offline=offline_policies(config, settings))
    if generator is not None:
        generator.on_call = services.record_llm_call

    def client(role: str) -> LLMClient | None:
        if role not in models:
            return None
        return LLMClient(models[role], labels[role], on_call=services.record_llm_call,
                         max_tokens=config.max_tokens_for(role))

    services.scientist = make_scientist(
        client("scientist"),
        stability_threshold_ev_per_atom=settings.stability_threshold_ev_per_atom,
        max_atoms=config.max_atoms, store=engine.store)
    services.critic = make_critic(client("critic"), store=engine.store)
    services.planner = make_planner(client("planner"))
    services.assistant = make_assistant(client("assistant"))
    services.reporter = make_reporter(client("reporter"))
    services.methods = {
        "models": labels, "mlip": engine.mlip_label,
        "reference_scale": settings.reference_scale,
        "stability_threshold_ev_per_atom": settings.stability_threshold_ev_per_atom,
        "relaxation": engine.evaluator.relax_settings(),
        "budget": config.budget.model_dump(), "seed": config.seed,
        "reference_store": engine.store.status(), "tools": sorted(tools.names),
    }
    return services


register_services_builder(lambda config, run_dir: build_services(config, run_dir))
