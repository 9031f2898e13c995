"""The campaign graph: ideation -> planning -> experimentation -> expansion -> report.

:func:`build_graph` returns an uncompiled StateGraph; the caller compiles it with a
checkpointer (SQLite for campaigns, in-memory in tests) and passes a
:class:`~matloop.graphs.context.CampaignContext` as ``context`` when it runs it. Nothing
run-specific is bound here, so one compiled graph serves any number of runs.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from matloop.graphs import routing
from matloop.graphs.context import CampaignContext
from matloop.graphs.nodes import NODES
from matloop.graphs.state import CampaignInput, CampaignOutput, CampaignState


def build_graph() -> StateGraph[CampaignState, CampaignContext, CampaignInput, CampaignOutput]:
    """The campaign as an uncompiled StateGraph over :class:`CampaignState`."""
    graph = StateGraph(CampaignState, context_schema=CampaignContext,
                       input_schema=CampaignInput, output_schema=CampaignOutput)
    for name, fn in NODES.items():
        graph.add_node(name, fn)
    graph.add_edge(START, "interpret")
    graph.add_conditional_edges("interpret", routing.after_interpret)
    graph.add_conditional_edges("ideate", routing.after_ideate)
    graph.add_conditional_edges("review_hypotheses", routing.after_hypothesis_review)
    graph.add_conditional_edges("plan", routing.after_plan)
    graph.add_conditional_edges("review_plan", routing.after_plan_review)
    graph.add_conditional_edges("approve", routing.after_approval)
    graph.add_conditional_edges("execute", routing.after_execute)
    graph.add_conditional_edges("expand", routing.after_expand)
    graph.add_edge("report", END)
    return graph
