"""Rendering of DiscoveryReport to JSON and Markdown (HTML: see html.py when present)."""

from __future__ import annotations

import json
from pathlib import Path

from matloop.errors import MatloopError
from matloop.schemas import DiscoveryReport


def to_markdown(report: DiscoveryReport) -> str:
    """A readable Markdown rendering of the report."""
    lines = [f"# Discovery report: {report.query}", "",
             f"*Campaign {report.campaign_id} — status: {report.status} — {report.created_utc}*",
             "", "## Summary", "", report.summary, ""]
    if report.objective:
        o = report.objective
        lines += ["## Objective", "", o.interpretation, ""]
        lines += [f"- {t.describe()}" for t in o.property_targets]
        lines += [f"- note: {n}" for n in o.notes] + [""]
    lines += ["## Hypotheses", ""]
    for h in report.hypotheses:
        lines.append(f"- **{h.id}** [{h.status}] ({h.chemical_system}, {', '.join(h.methods)}): "
                     f"{h.statement} *Why:* {h.justification}")
    lines += ["", "## Methods", ""]
    for key, value in report.methods.items():
        if key != "reference_store":
            lines.append(f"- {key}: {json.dumps(value) if not isinstance(value, str) else value}")
    lines += ["", "## Candidates (best first)", "",
              "| id | formula | space group | method | E_hull (eV/atom) | E_form (eV/atom) | "
              "properties | meets objective |", "|---|---|---|---|---|---|---|---|"]
    for c in [c for c in report.candidates if c.status == "ok"][:25]:
        props = ", ".join(f"{k}={v:.3g}" for k, v in c.properties.items())
        lines.append(f"| {c.id} | {c.formula} | {c.spacegroup or ''} | {c.method} | "
                     f"{c.e_above_hull_ev_per_atom:+.3f} | {c.formation_energy_ev_per_atom:.3f} | "
                     f"{props} | {c.meets_objective} |")
    failed = [c for c in report.candidates if c.status not in ("ok",)]
    if failed:
        lines += ["", f"{len(failed)} candidates have no result (" + ", ".join(
            sorted({c.status for c in failed})) + ")."]
    if report.evidence:
        lines += ["", "## Evidence", ""]
        for e in report.evidence:
            doi = f" [doi:{e.doi}](https://doi.org/{e.doi})" if e.doi else ""
            lines.append(f"- `{e.id}` {e.title or ''}{doi}: {e.snippet[:200]}")
    if report.synthesis:
        lines += ["", "## Synthesis suggestions", ""]
        for s in report.synthesis:
            lines.append(f"- {s.candidate_id}: like {s.analog_formula} from "
                         f"{', '.join(s.precursors)} at {', '.join(s.temperatures) or 'n/a'}"
                         f"{' (doi:' + s.doi + ')' if s.doi else ''}")
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in report.limitations]
    if report.negative_results:
        lines += ["", "## Negative results", ""] + [f"- {x}" for x in report.negative_results]
    lines += ["", "## Next steps", ""] + [f"- {x}" for x in report.next_steps]
    u = report.usage
    lines += ["", "## Usage", "", f"{u.iterations} iterations, {u.mlip_evaluations} MLIP "
              f"evaluations, {u.tool_calls} tool calls, {u.llm_calls} LLM calls "
              f"({u.input_tokens}+{u.output_tokens} tokens, ${u.cost_usd:.4f}), "
              f"{u.wall_time_s:.0f} s wall time.", "",
              "Written by: " + ", ".join(f"{k}: {v}" for k, v in report.authorship.items())]
    return "\n".join(lines) + "\n"


def write_report_files(report: DiscoveryReport, run_dir: Path) -> list[Path]:
    """Write report.json and report.md into the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = [run_dir / "report.json", run_dir / "report.md"]
    paths[0].write_text(report.model_dump_json(indent=2))
    paths[1].write_text(to_markdown(report))
    return paths


def render_run(run_dir: Path, *, fmt: str = "md") -> Path:
    """Re-render a run's report.json (finished or partial) to ``fmt``."""
    source = run_dir / "report.json"
    if not source.is_file():
        raise MatloopError(f"{run_dir}: no report.json",
                           hint="resume the campaign first (matloop campaign --resume ID)")
    report = DiscoveryReport.model_validate_json(source.read_text())
    if fmt == "json":
        return source
    if fmt == "md":
        path = run_dir / "report.md"
        path.write_text(to_markdown(report))
        return path
    raise MatloopError(f"unknown format {fmt!r}", hint="use md or json")
