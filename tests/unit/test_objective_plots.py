"""Figures of property targets: each target against E above hull (with the model's 1-sigma),
and the Pareto front of stability against the targets, drawn from the report's numbers."""

from __future__ import annotations

import re
from pathlib import Path

from matloop.agents.scoring import pareto_ranks, score, target_probability
from matloop.reports import to_markdown
from matloop.reports.plots import report_plots
from matloop.schemas import DiscoveryReport, PropertyTarget

FIXTURE = Path(__file__).parents[1] / "data" / "report_run" / "batio-fixture" / "report.json"


def report_with_targets(*targets: PropertyTarget) -> DiscoveryReport:
    """The Ba-Ti-O fixture (real CHGNet numbers) with model values for the targets, scored and
    ranked as the campaign's expand step does."""
    report = DiscoveryReport.model_validate_json(FIXTURE.read_text())
    objective = report.objective.model_copy(update={"property_targets": list(targets)})
    cands = []
    for i, c in enumerate(report.candidates):
        props = {**c.properties, "band_gap_ev": 0.5 + 0.3 * i,
                 "vickers_hardness_gpa": 30.0 - 2.0 * i}
        cands.append(c.model_copy(update={
            "properties": props, "property_uncertainties": {"band_gap_ev": 0.3},
            "property_sources": {**c.property_sources, "band_gap_ev": "surrogate:test (±0.3)",
                                 "vickers_hardness_gpa": "chen2011 B/G model on mlip:test"}}))
    scored = []
    for c in cands:
        s, meets = score(c, objective)
        scored.append(c.model_copy(update={"objective_score": s, "meets_objective": meets,
                                           "target_probability": target_probability(c, objective)
                                           }))
    fronts = pareto_ranks(scored, objective)
    scored = [c.model_copy(update={"pareto_rank": fronts.get(c.id)}) for c in scored]
    return report.model_copy(update={"objective": objective, "candidates": scored})


GAP = PropertyTarget(name="band_gap", unit="eV", min=1.1, max=1.8)
HARD = PropertyTarget(name="hardness", unit="GPa", min=20.0)


def test_one_figure_per_target_and_a_pareto_front() -> None:
    report = report_with_targets(GAP, HARD)
    plots = {p.name: p for p in report_plots(report)}
    assert set(plots) == {"hull", "property_band_gap", "property_hardness", "pareto",
                          "progress"}
    gap = plots["property_band_gap"]
    assert "band_gap 1.1-1.8 eV" in gap.caption and "1-sigma" in gap.caption
    assert "Ringed: the Pareto front" in gap.caption
    front = [c for c in report.candidates if c.pareto_rank == 1]
    usable = [c for c in report.candidates if c.status == "ok"]
    assert f"{len(usable)} candidates with every target evaluated; {len(front)} on the " \
           f"Pareto front" in plots["pareto"].caption
    # error bars are drawn: matplotlib writes one path per bar
    assert gap.svg.count("<path") > plots["property_hardness"].svg.count("<path") - 50


def test_without_targets_formation_energy_is_plotted_and_no_pareto_figure() -> None:
    report = report_with_targets()
    names = [p.name for p in report_plots(report)]
    assert names == ["hull", "property", "progress"]


def test_markdown_lists_every_figure_and_shows_uncertainty_probability_and_front() -> None:
    report = report_with_targets(GAP)
    plots = report_plots(report)
    report = report.model_copy(update={"artifacts": {
        **report.artifacts, "plots": ", ".join(f"plots/{p.name}.svg" for p in plots)}})
    md = to_markdown(report)
    for p in plots:
        assert f"(plots/{p.name}.svg)" in md
    assert "P(targets met) | Pareto front |" in md
    row = next(line for line in md.splitlines() if "gap\\_ev=" in line)  # markdown-escaped
    assert re.search(r"band\\_gap\\_ev=[0-9.]+±0\.3", row)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert re.fullmatch(r"[01]\.\d\d", cells[-2]) and cells[-1].isdigit()
