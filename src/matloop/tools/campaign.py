"""Campaign tools for the chat: start_campaign, read_campaign.

``start_campaign`` runs (or starts in the background) a discovery campaign through a function
the application supplies; ``read_campaign`` answers questions about a finished or running
campaign from its run directory (its report, or its last checkpoint's events).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from matloop.errors import MatloopError
from matloop.schemas import DiscoveryReport
from matloop.tools.base import ToolOutput, ToolSpec

START_CAMPAIGN = "start_campaign"
READ_CAMPAIGN = "read_campaign"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class CampaignArgs(BaseModel):
    """Arguments of start_campaign."""

    query: str = Field(description="The discovery question, e.g. 'stable Ba-Ti-O oxides'.",
                       min_length=1, max_length=2000)
    max_evaluations: int = Field(default=30, ge=1, le=500,
                                 description="Candidate MLIP relaxations allowed.")


class CampaignStarted(ToolOutput):
    """Result of start_campaign."""

    campaign_id: str | None = Field(default=None, description="Thread id of the campaign.")
    state: str = Field(default="", description="running (in the background) or its final "
                                               "status.")
    top: list[str] = Field(default_factory=list, description="Best candidates, when finished.")
    report: str | None = Field(default=None, description="Where its report is.")
    answer: str = Field(default="", description="One-paragraph answer for the chat.")


class ReadCampaignArgs(BaseModel):
    """Arguments of read_campaign."""

    run_id: str = Field(default="", description="The campaign's thread id (empty: the most "
                                                "recent campaign).", max_length=100)
    question: str = Field(default="", description="What the user asks about it.",
                          max_length=1000)


class CampaignAnswer(ToolOutput):
    """Result of read_campaign."""

    run_id: str | None = Field(default=None, description="The campaign read.")
    campaign_status: str | None = Field(default=None, description="Its status.")
    answer: str = Field(default="", description="The answer, from its report.")


def _answer(report: DiscoveryReport, question: str) -> str:
    q = question.lower()
    hyp = re.search(r"\bh(\d+)\b", q)
    if hyp:
        hid = f"H{hyp.group(1)}"
        h = next((h for h in report.hypotheses if h.id == hid), None)
        if h is None:
            return f"Campaign {report.campaign_id} has no hypothesis {hid}."
        why = [f"{c.author}: {v.reasoning}" for c in report.critiques for v in c.verdicts
               if v.hypothesis_id == hid]
        negative = [n for n in report.negative_results if n.startswith(hid)]
        return (f"{hid} ({h.chemical_system}, {h.status}): {h.statement} " +
                (f"Critic: {'; '.join(why)}. " if why else "") +
                (f"Outcome: {'; '.join(negative)}" if negative else ""))
    if re.search(r"\bnext\b|what should|what to do|recommend", q):
        return "Next steps: " + "; ".join(report.next_steps[:6])
    top = [c for c in report.candidates if c.status == "ok"][:5]
    rows = "; ".join(f"{c.formula} ({c.spacegroup or '?'}) {c.e_above_hull_ev_per_atom:+.3f} "
                     f"eV/atom above the hull, {c.novelty or 'novelty not assessed'}"
                     for c in top if c.e_above_hull_ev_per_atom is not None)
    return (f"Campaign {report.campaign_id} ({report.status}): {report.summary} "
            + (f"Top candidates: {rows}." if rows else ""))


def campaign_tools(*, starter: Callable[[str, int], CampaignStarted] | None,
                   runs_dir: Path | None) -> list[ToolSpec[Any, Any]]:
    """The chat's campaign tools (each only when the application can back it)."""
    specs: list[ToolSpec[Any, Any]] = []
    if starter is not None:
        def start(args: CampaignArgs) -> CampaignStarted:
            return starter(args.query, args.max_evaluations)

        specs.append(ToolSpec(
            START_CAMPAIGN, "Start a discovery campaign for a question and return its thread "
            "id, or its top candidates (formula, energy above hull in eV/atom) and report "
            "location when it ran to the end.", CampaignArgs, CampaignStarted, start,
            lambda r: r.answer or f"campaign {r.campaign_id}: {r.state}"))
    if runs_dir is not None:
        def read(args: ReadCampaignArgs) -> CampaignAnswer:
            run_id = args.run_id.strip()
            if not run_id:
                runs = sorted((p for p in runs_dir.iterdir() if (p / "config.json").is_file()),
                              key=lambda p: p.stat().st_mtime) if runs_dir.is_dir() else []
                if not runs:
                    raise MatloopError("no campaign has run yet",
                                       hint="start one, e.g. 'suggest stable Ba-Ti-O oxides'")
                run_id = runs[-1].name
            if not _RUN_ID.match(run_id):
                raise MatloopError(f"{run_id!r} is not a campaign id",
                                   hint="campaign ids look like 20261130-141500-1a2b3c")
            path = runs_dir / run_id / "report.json"
            if not path.is_file():
                raise MatloopError(f"campaign {run_id} has no report yet",
                                   hint="wait for it to finish, or re-render it with "
                                        "`matloop report`")
            try:
                report = DiscoveryReport.model_validate(json.loads(path.read_text()))
            except (ValueError, OSError) as exc:
                raise MatloopError(f"the report of campaign {run_id} cannot be read",
                                   hint="re-render it with `matloop report`") from exc
            return CampaignAnswer(run_id=run_id, campaign_status=report.status,
                                  answer=_answer(report, args.question))

        specs.append(ToolSpec(
            READ_CAMPAIGN, "Answer a question about an earlier campaign from its report: what "
            "it found, why a hypothesis was rejected, what to do next.", ReadCampaignArgs,
            CampaignAnswer, read, lambda r: r.answer[:200] if r.status == "ok" else
            f"error: {r.message}"))
    return specs
