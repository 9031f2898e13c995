"""Choose each role's policy: the LLM policy when the role has a model, else the offline one."""

from __future__ import annotations

from typing import Any

from matloop.agents.llm import LLMClient
from matloop.agents.offline import OfflineCritic, OfflinePlanner, OfflineScientist
from matloop.agents.reporter import LLMReporter, OfflineReporter


def make_policies(models: dict[str, Any], labels: dict[str, str], *, ctx: Any,
                  max_atoms: int, threshold: float, engine: Any = None) -> dict[str, Any]:
    """Policies by role. ``models`` maps roles to chat models; missing roles run offline.

    ``engine`` (a MaterialsEngine) lets the reporter draw the reference hull.
    """
    from matloop.agents.llm_policies import LLMAssistant, LLMCritic, LLMPlanner, LLMScientist
    from matloop.graphs.campaign import DirectAssistant

    def client(role: str) -> LLMClient:
        return LLMClient(models[role], labels[role], on_call=ctx.record_llm_call)

    return {
        "scientist": LLMScientist(client("scientist")) if "scientist" in models else
        OfflineScientist(stability_threshold_ev_per_atom=threshold, max_atoms=max_atoms),
        "critic": LLMCritic(client("critic")) if "critic" in models else OfflineCritic(),
        "planner": LLMPlanner(client("planner"), ctx.tools) if "planner" in models else
        OfflinePlanner(),
        "assistant": LLMAssistant(client("assistant")) if "assistant" in models else
        DirectAssistant(),
        "reporter": LLMReporter(client("reporter"), offline=OfflineReporter(engine=engine))
        if "reporter" in models else OfflineReporter(engine=engine),
    }
