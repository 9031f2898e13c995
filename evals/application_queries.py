"""Do campaigns start on topic? Reading of application questions and the systems proposed.

For each question of ``evals/data/application_queries.json`` (24 applications and wordings) the
offline scientist's first steps run exactly as in a campaign: :func:`parse_query` reads the
question, :func:`candidate_systems` ranks systems and compositions (shipped MP references,
composition prior, band-gap model). No MLIP runs. Recorded per question:

* whether the application (and so its implied targets) was recognised;
* whether every proposed system honours the question (required and forbidden elements, an
  element of ``any_of``): the "on topic" rate;
* for questions with a band-gap window, the share of the proposed compositions whose predicted
  gap lies in the window, measured side by side with the same ranking run with the gap window
  removed from the objective (the stability prior alone): the gain of gap-aware ideation;
* the wall time of the reading and ranking.

The gap shares are the band-gap model's predictions (experimental-gap random forest, see
``evals/band_gap.py``), not computed gaps: they measure whether ideation aims at the window, not
whether the candidates meet it. Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python -m evals.application_queries
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from evals.common import REPO, write_json

QUERIES = REPO / "evals" / "data" / "application_queries.json"


def _in_window(gap: float | None, lo: float | None, hi: float | None) -> bool | None:
    if gap is None:
        return None
    return (lo is None or gap >= lo) and (hi is None or gap <= hi)


def _share(options: list[Any], lo: float | None, hi: float | None) -> float | None:
    flags = [_in_window(o.predicted_gap_ev, lo, hi) for o in options]
    known = [f for f in flags if f is not None]
    return round(sum(known) / len(known), 3) if known else None


def _gaps(options: list[Any]) -> list[Any]:
    """Predicted gaps for options that carry none (the ranking without a window skips them)."""
    from matloop.surrogates.band_gap import band_gap_for_compositions

    missing = [o for o in options if o.predicted_gap_ev is None]
    if missing:
        screen = band_gap_for_compositions([o.formula for o in missing], domain=False)
        for o, gap in zip(missing, screen.recommended_gap_ev, strict=True):
            o.predicted_gap_ev = float(gap)
    return options


def run_one(item: dict[str, Any], store: Any, *, limit: int, per_system: int) -> dict[str, Any]:
    """Read one question, rank systems, check them; the same without the gap window."""
    from matloop.agents.ideation import candidate_systems
    from matloop.agents.query_parser import parse_query

    t0 = time.perf_counter()
    objective = parse_query(item["query"])
    systems = candidate_systems(objective, store, limit=limit)
    wall = time.perf_counter() - t0
    required = set(item.get("required", []))
    forbidden = set(item.get("forbidden", []))
    any_of = set(item.get("any_of", []))
    checks = []
    for s in systems:
        els = set(s.chemsys.split("-"))
        checks.append({"system": s.chemsys, "required_ok": required <= els,
                       "forbidden_ok": not els & forbidden,
                       "any_of_ok": not any_of or bool(els & any_of),
                       "compositions": [o.formula for o in s.compositions[:per_system]]})
    on_topic = bool(systems) and all(c["required_ok"] and c["forbidden_ok"] and c["any_of_ok"]
                                     for c in checks)
    row: dict[str, Any] = {
        "query": item["query"], "expected_application": item.get("application"),
        "application": objective.application or None,
        "application_ok": (objective.application or None) == item.get("application"),
        "targets": [t.describe() for t in objective.property_targets],
        "systems": checks, "n_systems": len(systems), "on_topic": on_topic,
        "wall_s": round(wall, 2)}
    gap = next((t for t in objective.property_targets if t.name == "band_gap"), None)
    if gap is not None and systems:
        chosen = [o for s in systems for o in s.compositions[:per_system]]
        blind = objective.model_copy(update={"property_targets": [
            t for t in objective.property_targets if t.name != "band_gap"]})
        baseline = candidate_systems(blind, store, limit=limit)
        base_options = _gaps([o for s in baseline for o in s.compositions[:per_system]])
        row["gap_window_ev"] = [gap.min, gap.max]
        row["in_window_share"] = _share(chosen, gap.min, gap.max)
        row["in_window_share_without_window"] = _share(base_options, gap.min, gap.max)
        row["baseline_systems"] = [s.chemsys for s in baseline]
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over the questions."""
    gapped = [r for r in rows if r.get("in_window_share") is not None
              and r.get("in_window_share_without_window") is not None]
    with_w = [r["in_window_share"] for r in gapped]
    without = [r["in_window_share_without_window"] for r in gapped]
    return {
        "queries": len(rows),
        "application_recognised": sum(r["application_ok"] for r in rows),
        "on_topic": sum(r["on_topic"] for r in rows),
        "empty": sum(r["n_systems"] == 0 for r in rows),
        "gap_queries": len(gapped),
        "median_in_window_share": statistics.median(with_w) if with_w else None,
        "median_in_window_share_without_window": statistics.median(without) if without
        else None,
        "mean_in_window_share": round(statistics.fmean(with_w), 3) if with_w else None,
        "mean_in_window_share_without_window": round(statistics.fmean(without), 3) if without
        else None,
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "max_wall_s": max(r["wall_s"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every question and write ``evals/results/application_queries.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--limit", type=int, default=4, help="systems per question")
    parser.add_argument("--per-system", type=int, default=3, help="compositions per system")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from matloop.materials.references import ReferenceStore

    items = json.loads(args.queries.read_text())["queries"]
    store = ReferenceStore.from_settings()
    t0 = time.perf_counter()
    rows = []
    for item in items:
        row = run_one(item, store, limit=args.limit, per_system=args.per_system)
        rows.append(row)
        print(f"{'ok ' if row['on_topic'] and row['application_ok'] else 'BAD'} "
              f"{row['wall_s']:5.1f}s {row['query'][:60]:60s} {row['application']} "
              f"{[s['system'] for s in row['systems']]} "
              f"{row.get('in_window_share')} vs {row.get('in_window_share_without_window')}",
              flush=True)
    summary = summarise(rows)
    path = write_json("application_queries", {
        "settings": {"limit": args.limit, "per_system": args.per_system,
                     "queries_file": str(args.queries.relative_to(REPO))
                     if args.queries.is_relative_to(REPO) else str(args.queries)},
        "summary": summary, "per_query": rows,
        "wall_seconds": round(time.perf_counter() - t0, 1)}, args.out)
    print(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
