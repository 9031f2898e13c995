"""Grounded fraction of a report: its numbers and citations checked against the run's records.

Uses the project's checker (:mod:`matloop.reports.grounding`: what counts as a figure, rounding
at the written precision, DOI and evidence-id matching). The known facts come from the run, not
from the report's own prose: tool results and their arguments (checkpointed state), candidate
numbers, usage, methods and settings, the objective and the query, the report's date and id,
and the sizes of every list, the retrieved evidence, and the synthesis suggestions (built from
the reporter's own ``find_synthesis_analogs`` calls, which are logged as events but not kept in
the state). Citations count as grounded only when a tool retrieved them. Markdown links
``[text](url)`` are read as their text (the URL repeats the DOI).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# A DOI may hold parentheses (10.1016/S0304-8853(02)00708-4): allow one level in the URL.
_LINK = re.compile(r"\[([^\]]*)\]\(https?://(?:[^()\s]|\([^()\s]*\))*\)")


def run_facts(report: Any, state: dict[str, Any]) -> Any:
    """What the run knows, as :class:`matloop.reports.grounding.KnownFacts`."""
    from matloop.reports.grounding import KnownFacts, extract_dois, extract_evidence_ids, numbers_in

    records = state.get("tool_records") or []
    evidence = [e for e in state.get("evidence") or [] if isinstance(e, dict)]
    synthesis = [s.model_dump(mode="json") for s in report.synthesis]
    sources: list[Any] = [
        records, evidence, synthesis, [c.model_dump(mode="json") for c in report.candidates],
        report.usage.model_dump(), report.methods, report.query, report.created_utc,
        report.campaign_id, report.plan.model_dump(mode="json") if report.plan else None,
        report.objective.model_dump(mode="json") if report.objective else None,
    ]
    numbers = numbers_in(sources)
    numbers += [float(len(v)) for v in _lists(report.model_dump(mode="json"))]
    numbers += [float(len(v)) for v in _lists(state)]
    text = repr(records)
    dois = set(extract_dois(text)) | {d["doi"] for d in evidence + synthesis if d.get("doi")}
    ids = set(extract_evidence_ids(text)) | {e["id"] for e in evidence if e.get("id")}
    return KnownFacts(numbers=numbers, dois=dois, evidence_ids=ids)


def _lists(obj: Any) -> list[list[Any]]:
    out: list[list[Any]] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            out.append(item)
            stack.extend(item)
    return out


def grounded_fraction(run_dir: Path, *, report: Any, state: dict[str, Any],
                      text: str | None = None) -> dict[str, Any]:
    """Grounded numbers and citations of ``report.md`` (or ``text``) in one run."""
    from matloop.reports.grounding import (
        extract_dois,
        extract_evidence_ids,
        extract_numbers,
        number_grounded,
    )

    text = text if text is not None else (Path(run_dir) / "report.md").read_text()
    text = _LINK.sub(r"\1", text)
    facts = run_facts(report, state)
    claims = extract_numbers(text)
    bad_numbers = [c.text for c in claims if not number_grounded(c, facts.numbers)]
    cites = [("doi", d) for d in extract_dois(text)] + [
        ("evidence", e) for e in extract_evidence_ids(text)]
    bad_cites = [v for kind, v in cites
                 if (v.lower().rstrip(".,;") not in facts.dois if kind == "doi"
                     else v.lower() not in facts.evidence_ids)]
    n, c = len(claims), len(cites)
    return {
        "checker": "matloop.reports.grounding",
        "numbers": n, "numbers_grounded": n - len(bad_numbers),
        "citations": c, "citations_grounded": c - len(bad_cites),
        "grounded_fraction": round((n + c - len(bad_numbers) - len(bad_cites)) / (n + c), 4)
        if n + c else None,
        "ungrounded_examples": (bad_numbers + bad_cites)[:10],
    }
