"""Campaign state: a TypedDict with reducers, plus the graph's input and output schemas.

Values are plain JSON-ready dicts (pydantic ``model_dump(mode="json")``) so SQLite checkpoints
hold no pickled classes; nodes validate them back into :mod:`matloop.schemas` models.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


def merge_by_id(left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None,
                ) -> list[dict[str, Any]]:
    """Merge two lists of records keyed by ``id``: later records replace earlier ones in place,
    new ones are appended (order of first appearance is kept)."""
    merged: dict[str, dict[str, Any]] = {}
    for item in (left or []) + (right or []):
        merged[item["id"]] = {**merged.get(item["id"], {}), **item}
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
    report: dict[str, Any]


class CampaignState(TypedDict, total=False):
    """Everything the campaign graph carries between nodes."""

    query: str
    campaign_id: str
    objective: dict[str, Any] | None
    hypotheses: Annotated[list[dict[str, Any]], merge_by_id]
    critiques: Annotated[list[dict[str, Any]], operator.add]
    plan: dict[str, Any] | None
    plan_cursor: int
    step_outputs: Annotated[dict[str, Any], merge_dicts]
    tool_records: Annotated[list[dict[str, Any]], operator.add]
    candidates: Annotated[list[dict[str, Any]], merge_by_id]
    evidence: Annotated[list[dict[str, Any]], merge_by_id]
    usage: dict[str, Any]
    iteration: int
    hypothesis_revisions: int
    plan_revisions: int
    last_verdict: str
    decision: dict[str, Any] | None
    history: Annotated[list[dict[str, Any]], operator.add]
    notes: Annotated[list[str], operator.add]
    status: str
    report: dict[str, Any] | None
