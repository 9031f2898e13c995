"""Pure routing functions of the campaign graph. Each raises on a state it does not expect."""

from __future__ import annotations

from typing import Literal

from matloop.graphs.state import CampaignState


class RoutingError(RuntimeError):
    """The graph reached a state no route covers (a bug, never user input)."""


def _verdict(state: CampaignState) -> str:
    verdict = state.get("last_verdict")
    if verdict is None:
        raise RoutingError("no critic verdict in state")
    return verdict


def after_interpret(state: CampaignState) -> Literal["ideate", "report"]:
    """Go on to ideation unless interpretation failed or the budget is gone."""
    return "report" if state.get("status") else "ideate"


def after_ideate(state: CampaignState) -> Literal["review_hypotheses", "report"]:
    """Review the new hypotheses unless the budget ended the campaign."""
    return "report" if state.get("status") else "review_hypotheses"


def after_hypothesis_review(state: CampaignState) -> Literal["ideate", "plan", "report"]:
    """Approved -> plan; revise -> ideate; give_up -> report (nothing approvable)."""
    verdict = _verdict(state)
    if state.get("status"):
        return "report"
    routes = {"approved": "plan", "revise": "ideate", "give_up": "report"}
    if verdict not in routes:
        raise RoutingError(f"unexpected hypothesis verdict {verdict!r}")
    return routes[verdict]  # type: ignore[return-value]


def after_plan(state: CampaignState) -> Literal["review_plan", "report"]:
    """Review the plan unless planning failed (a failed planner leaves no plan to review)."""
    return "report" if state.get("status") or state.get("plan") is None else "review_plan"


def after_plan_review(state: CampaignState) -> Literal["plan", "approve", "report"]:
    """Approved -> human approval gate; revise -> plan; give_up -> report."""
    verdict = _verdict(state)
    if state.get("status"):
        return "report"
    routes = {"approved": "approve", "revise": "plan", "give_up": "report"}
    if verdict not in routes:
        raise RoutingError(f"unexpected plan verdict {verdict!r}")
    return routes[verdict]  # type: ignore[return-value]


def after_approval(state: CampaignState) -> Literal["execute", "plan", "report"]:
    """Approved -> execute; revise (human feedback) -> plan; rejected -> report."""
    verdict = _verdict(state)
    if state.get("status"):
        return "report"
    routes = {"approved": "execute", "revise": "plan", "give_up": "report"}
    if verdict not in routes:
        raise RoutingError(f"unexpected approval verdict {verdict!r}")
    return routes[verdict]  # type: ignore[return-value]


def after_execute(state: CampaignState) -> Literal["execute", "expand", "report"]:
    """Next plan step, or expansion when the plan is done; report when the budget is gone."""
    if state.get("status"):
        return "report"
    plan = state.get("plan")
    if plan is None:
        raise RoutingError("execute finished without a plan")
    return "execute" if state.get("plan_cursor", 0) < len(plan.steps) else "expand"


def after_expand(state: CampaignState) -> Literal["ideate", "report"]:
    """Iterate while the scientist wants to and the budget allows."""
    if state.get("status"):
        return "report"
    decision = state.get("decision")
    if decision is None:
        raise RoutingError("expansion produced no decision")
    return "ideate" if decision.continue_search else "report"
