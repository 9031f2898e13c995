"""Campaign state: a TypedDict of the :mod:`matloop.schemas` models with reducers, plus the
graph's input and output schemas and the checkpoint serializer.

Values are the pydantic models themselves, so nodes never re-validate dicts. SQLite
checkpoints hold them through LangGraph's msgpack serializer, allowed explicitly for these
classes only (:func:`checkpoint_serializer`); no pickle is involved.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from matloop import schemas
from matloop.schemas import (
    CandidateResult,
    Critique,
    DiscoveryReport,
    EvidenceRecord,
    ExpansionDecision,
    Hypothesis,
    IterationSummary,
    Objective,
    Plan,
    ToolRecord,
    Usage,
)


def _with_id(item: Any) -> str:
    return str(item["id"]) if isinstance(item, dict) else str(item.id)


def merge_by_id(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Merge two lists of records keyed by ``id``: later records replace earlier ones in place,
    new ones are appended (order of first appearance is kept)."""
    merged: dict[str, Any] = {}
    for item in (left or []) + (right or []):
        merged[_with_id(item)] = item
    return list(merged.values())


def merge_candidates(left: list[CandidateResult] | None,
                     right: list[CandidateResult | dict[str, Any]] | None,
                     ) -> list[CandidateResult]:
    """Candidates by id: a dict updates the fields it names (a tool enriching a candidate), a
    model or a dict of a new id adds or replaces one."""
    merged: dict[str, CandidateResult] = {c.id: c for c in left or []}
    for item in right or []:
        if isinstance(item, CandidateResult):
            merged[item.id] = item
        elif item["id"] in merged:
            old = merged[item["id"]]
            merged[item["id"]] = CandidateResult.model_validate({**old.model_dump(), **item})
        else:
            merged[item["id"]] = CandidateResult.model_validate(item)
    return list(merged.values())


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow dict union, right wins."""
    return {**(left or {}), **(right or {})}


class CampaignInput(TypedDict):
    """What a campaign starts from."""

    query: str
    campaign_id: str


class CampaignOutput(TypedDict, total=False):
    """What a finished campaign exposes."""

    status: str
    report: DiscoveryReport | None


class CampaignState(TypedDict, total=False):
    """Everything the campaign graph carries between nodes."""

    query: str
    campaign_id: str
    objective: Objective | None
    hypotheses: Annotated[list[Hypothesis], merge_by_id]
    critiques: Annotated[list[Critique], operator.add]
    plan: Plan | None
    plan_cursor: int
    step_outputs: Annotated[dict[str, ToolRecord], merge_dicts]
    tool_records: Annotated[list[ToolRecord], operator.add]
    candidates: Annotated[list[CandidateResult], merge_candidates]
    evidence: Annotated[list[EvidenceRecord], merge_by_id]
    usage: Usage
    iteration: int
    hypothesis_revisions: int
    plan_revisions: int
    last_verdict: str
    feedback: list[str]
    decision: ExpansionDecision | None
    history: Annotated[list[IterationSummary], operator.add]
    notes: Annotated[list[str], operator.add]
    status: str
    report: DiscoveryReport | None


#: Every model class state may hold (and their nested models), allowed in checkpoints.
STATE_MODELS = tuple(
    cls for cls in vars(schemas).values()
    if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == schemas.__name__)


def checkpoint_serializer() -> JsonPlusSerializer:
    """LangGraph's serializer with matloop's state models allowed (and nothing else new)."""
    from matloop.tools import result_models

    allowed = [(cls.__module__, cls.__name__) for cls in (*STATE_MODELS, *result_models())]
    return JsonPlusSerializer(allowed_msgpack_modules=allowed)
