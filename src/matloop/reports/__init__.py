"""Rendering of DiscoveryReport to JSON, Markdown and one self-contained HTML file, with the
figures (plots.py), material cards (cards.py), DFT inputs (dft.py) and the grounding check of
narrative text (grounding.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

from matloop.knowledge.documents import normalise_doi
from matloop.schemas import SCHEMA_VERSION, DiscoveryReport

FORMATS = ("html", "md", "json")


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary within ``limit`` characters, with an ellipsis; a cut
    never splits a number or a DOI, so what is shown can still be checked against its source."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    return (head.rsplit(" ", 1)[0] if " " in head else head) + " …"


_MD_PUNCT = re.compile(r"([\\`*_\[\]|#~])")
_URL_START = re.compile(r"(?i)(\w)(://)|\b(www)(\.)")


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_text(value: object) -> str:
    r"""Untrusted text as inert inline Markdown.

    One line (newlines become spaces, so nothing can start a heading, list or quote), ``& < >``
    written as entities, and the characters that make links, images, emphasis, code, table
    cells and headings (``\\ ` * _ [ ] | # ~``) backslash-escaped; ``://`` and
    ``www.`` are broken up so no bare URL is auto-linked. The text reads the same.
    """
    text = _entities(" ".join(str(value).split()))
    text = _MD_PUNCT.sub(r"\\\1", text)
    return _URL_START.sub(lambda m: (f"{m.group(1)}\\:\\/\\/" if m.group(2)
                                     else f"{m.group(3)}\\."), text)


def md_block(value: object) -> str:
    """Narrative text (summary, discussion) as Markdown paragraphs without links or HTML.

    Paragraph breaks are kept and emphasis still works; HTML, links, images and headings
    cannot be formed (``< >`` become entities, ``[ ]`` and a leading ``#``, ``-``, ``+``, ``=``
    or list number are escaped, URLs broken up).
    """
    lines = []
    for line in str(value).replace("\r", "").split("\n"):
        text = _entities(line.strip())
        text = re.sub(r"([\\`\[\]|])", r"\\\1", text)
        text = _URL_START.sub(lambda m: (f"{m.group(1)}\\:\\/\\/" if m.group(2)
                                         else f"{m.group(3)}\\."), text)
        text = re.sub(r"^(\d+)([.)])", r"\1\\\2", text)  # "1." would start a list
        lines.append(re.sub(r"^([#>+\-=]|\*(?=\s)|[*_](?=[*_\s]*$))", r"\\\1", text))
    return "\n".join(lines)


def md_code(value: object) -> str:
    """Untrusted text as a one-line code span (backticks inside become quotes)."""
    return "`" + " ".join(str(value).split()).replace("`", "'") + "`"


def md_path(value: object) -> str:
    """A relative file path as a link destination (percent-encoded, cannot leave the link)."""
    return quote(str(value), safe="/._-")


def md_doi(doi: str | None) -> str:
    """A DOI link, a note that an invalid DOI was withheld, or an empty string."""
    if not doi:
        return ""
    valid = normalise_doi(doi)
    if valid is None:
        return " (DOI withheld: not a valid DOI)"
    return f" [doi:{md_text(valid)}](https://doi.org/{quote(valid, safe='/:;')})"


#: How the markdown table shows ``meets_objective`` (None: a target was not evaluated).
MEETS_WORDS = {True: "yes", False: "no", None: "not evaluated"}


def to_markdown(report: DiscoveryReport) -> str:
    """A readable Markdown rendering of the report.

    Text that does not come from matloop's own templates (the query, evidence titles and
    snippets, DOIs, formulas and labels from tools, recipe fields, objective notes, model
    narrative) is escaped with :func:`md_text` / :func:`md_block`, so it cannot add links,
    images, HTML or headings to the file; invalid DOIs are withheld with a note.
    """
    from matloop.reports.cards import structure_types

    t = md_text
    lines = [f"# Discovery report: {t(report.query)}", "",
             f"*Campaign {t(report.campaign_id)} — status: {t(report.status)} — "
             f"{t(report.created_utc)}*", ""]
    for q in (report.objective.problems if report.objective else []):
        lines += [f"> **Not answered exactly as asked:** {t(q.message)}; assumed: "
                  f"{t(q.assumption)}.", ""]
    lines += ["## Summary", "", md_block(report.summary), ""]
    if report.discussion:
        lines += ["### Discussion", "", md_block(report.discussion), ""]
    if report.removed_claims:
        lines += [f"> **{len(report.removed_claims)} claim(s) removed by the grounding check** "
                  "(see Grounding).", ""]
    if report.objective:
        o = report.objective
        lines += ["## Objective", "", md_block(o.interpretation), ""]
        lines += [f"- {t(pt.describe())}" for pt in o.property_targets]
        lines += [f"- note: {t(n)}" for n in o.notes] + [""]
    lines += ["## Hypotheses", ""]
    for h in report.hypotheses:
        lines.append(f"- **{t(h.id)}** \\[{t(h.status)}\\] ({t(h.chemical_system)}, "
                     f"{t(', '.join(h.methods))}): {t(h.statement)} *Why:* "
                     f"{t(h.justification)}")
    lines += ["", "## Methods", ""]
    for key, value in report.methods.items():
        if key != "reference_store":
            lines.append(f"- {t(key)}: "
                         f"{t(json.dumps(value) if not isinstance(value, str) else value)}")
    if report.reference_phases:
        lines += ["", "### Reference phases of the hull", "",
                  "| formula | E_form (eV/atom) | E_hull (eV/atom) | Materials Project id | "
                  "source |", "|---|---|---|---|---|"]
        for p in sorted(report.reference_phases,
                        key=lambda p: (p.e_above_hull_ev_per_atom > 1e-6, p.formula)):
            lines.append(f"| {t(p.formula)} | {p.formation_energy_ev_per_atom:.3f} | "
                         f"{p.e_above_hull_ev_per_atom:.3f} | {t(p.mp_id or '–')} | "
                         f"{t(p.source)} |")
    lines += ["", "## Candidates (best first)", ""]
    plot_files = [p.strip() for p in report.artifacts.get("plots", "").split(",") if p.strip()]
    lines += [f"![{Path(f).stem}]({f})" for f in plot_files] + [""]
    lines += ["| id | formula | space group | structure type | method | E_hull (eV/atom) | "
              "E_form (eV/atom) | properties (± model 1-sigma) | novelty | meets objective | "
              "P(targets met) | Pareto front |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    kinds = structure_types(report)
    for c in [c for c in report.candidates if c.status == "ok"][:25]:
        props = ", ".join(f"{t(k)}={v:.3g}" + (f"±{c.property_uncertainties[k]:.2g}"
                                               if c.property_uncertainties.get(k) else "")
                          for k, v in c.properties.items())
        novelty = t(c.novelty or "not assessed") + "".join(f"; **{t(f)}**" for f in c.flags)
        kind = t(kinds[c.id].describe()) if c.id in kinds else "–"
        prob = "–" if c.target_probability is None else f"{c.target_probability:.2f}"
        lines.append(f"| {t(c.id)} | {t(c.formula)} | {t(c.spacegroup or '')} | {kind} | "
                     f"{t(c.method)} | {c.e_above_hull_ev_per_atom:+.3f} | "
                     f"{c.formation_energy_ev_per_atom:.3f} | {props} | "
                     f"{novelty} | {MEETS_WORDS[c.meets_objective]} | {prob} | "
                     f"{c.pareto_rank or '–'} |")
    failed = [c for c in report.candidates if c.status not in ("ok",)]
    if failed:
        lines += ["", f"{len(failed)} candidates have no result (" + t(", ".join(
            sorted({c.status for c in failed}))) + ")."]
    if report.evidence:
        lines += ["", "## Evidence", ""]
        for e in report.evidence:
            lines.append(f"- {md_code(e.id)} {t(e.title or '')}{md_doi(e.doi)}: "
                         f"{t(shorten(e.snippet, 200))}")
    if report.synthesis:
        lines += ["", "## Synthesis suggestions", ""]
        for s in report.synthesis:
            lines.append(f"- {t(s.candidate_id)}: like {t(s.analog_formula)} from "
                         f"{t(', '.join(s.precursors))} at "
                         f"{t(', '.join(s.temperatures) or 'n/a')}{md_doi(s.doi)}")
    if report.cards:
        lines += ["", "## Material cards", ""]
        for card in report.cards:
            c = card.card
            kind = (f"structure type {t(card.structure_type.describe())}, "
                    if card.structure_type else "")
            lines.append(f"- **{t(c['formula'])}** {md_code(card.candidate_id)}: "
                         f"{t(c.get('space_group_symbol') or '?')} (No. "
                         f"{t(c.get('space_group_number') or '?')}), {kind}a, b, c = "
                         f"{c['a_angstrom']:.3f}, {c['b_angstrom']:.3f}, {c['c_angstrom']:.3f} Å; "
                         f"[CIF]({md_path(card.cif)}); projections: " + ", ".join(
                             f"[{t(axis)}]({md_path(path)})"
                             for axis, path in card.images.items()))
    lines += ["", "## Limitations", ""] + [f"- {t(x)}" for x in report.limitations]
    if report.negative_results:
        lines += ["", "## Negative results", ""] + [f"- {t(x)}" for x in report.negative_results]
    lines += ["", "## Next steps", ""] + [f"- {t(x)}" for x in report.next_steps]
    if report.dft_inputs:
        lines += ["", "DFT validation inputs (pymatgen MPRelaxSet; POTCAR.spec only):", ""]
        lines += [f"- {t(d.formula)} {md_code(d.candidate_id)}: "
                  f"[{t(d.directory)}/]({md_path(d.directory)}/)"
                  + (f", atomate2 workflow [{t(d.workflow)}]({md_path(d.workflow)})"
                     if d.workflow else "")
                  for d in report.dft_inputs]
    lines += ["", "## Grounding", ""]
    if report.removed_claims:
        lines += [f"- {t(c.part or 'text')}: \u201c{t(c.text)}\u201d — {t(c.reason)}"
                  for c in report.removed_claims]
    else:
        lines.append("Nothing was removed: every number and citation in the narrative matches "
                     "the run's results and evidence.")
    u = report.usage
    lines += ["", "## Usage", "", f"{u.iterations} iterations, {u.mlip_evaluations} MLIP "
              f"evaluations, {u.tool_calls} tool calls, {u.llm_calls} LLM calls "
              f"({u.input_tokens}+{u.output_tokens} tokens, ${u.cost_usd:.4f}), "
              f"{u.wall_time_s:.0f} s wall time.", "",
              "Written by: " + t(", ".join(f"{k}: {v}" for k, v in report.authorship.items()
                                           if k != "roles"))]
    return "\n".join(lines) + "\n"


class WrittenReport(NamedTuple):
    """The report as written (with cards, inputs and artifacts) and its three files."""

    report: DiscoveryReport
    paths: list[Path]


def write_report_files(report: DiscoveryReport, run_dir: Path, *, cards: int = 5,
                       dft: int = 3, use_robocrys: bool = True,
                       robocrys_timeout_s: float = 60.0, prototypes: bool = True,
                       prototype_timeout_s: float = 20.0,
                       workflows: bool | None = None) -> WrittenReport:
    """Write report.json, report.md and report.html, with figures (plots/), material cards
    (cards/<id>/: CIF, projections; structure type from the AFLOW prototype library unless
    ``prototypes`` is False, each match given ``prototype_timeout_s``) and DFT inputs
    (dft/<id>/) into the run directory.

    Cards and inputs already listed in the report are reused (re-rendering is quick).
    ``workflows`` writes atomate2 Flow JSON beside the DFT inputs (default: when atomate2
    is installed). Credentials anywhere in the report (a key typed into the query, say) are
    scrubbed before anything is written.

    Returns:
        The report as written, and the three report files.
    """
    from matloop.reports.cards import report_cards
    from matloop.reports.dft import write_dft_inputs
    from matloop.reports.html import to_html
    from matloop.reports.plots import report_plots
    from matloop.runtime import scrub

    run_dir.mkdir(parents=True, exist_ok=True)
    report = DiscoveryReport.model_validate(scrub(report.model_dump(mode="json")))
    ranked = report.candidates
    card_list, notes = report_cards(ranked, run_dir, top=cards, use_robocrys=use_robocrys,
                                    robocrys_timeout_s=robocrys_timeout_s,
                                    prototypes=prototypes,
                                    prototype_timeout_s=prototype_timeout_s,
                                    previous=report.cards)
    dft_inputs = report.dft_inputs if report.dft_inputs and all(
        (run_dir / d.directory).is_dir() for d in report.dft_inputs) else \
        write_dft_inputs(ranked, run_dir, top=dft, with_workflow=workflows)
    limitations = list(report.limitations) + [f"No material card: {n}" for n in notes
                                              if f"No material card: {n}" not in
                                              report.limitations]
    report = report.model_copy(update={
        "schema_version": SCHEMA_VERSION, "cards": card_list, "dft_inputs": dft_inputs,
        "limitations": limitations,
        "authorship": {**report.authorship, "tables": "offline", "plots": "offline",
                       "cards": "offline", "dft_inputs": "offline"}})
    plots = report_plots(report)
    (run_dir / "plots").mkdir(exist_ok=True)
    for plot in plots:
        (run_dir / "plots" / f"{plot.name}.svg").write_text(plot.svg)
    report = report.model_copy(update={"artifacts": {
        "json": "report.json", "markdown": "report.md", "html": "report.html",
        "plots": ", ".join(f"plots/{p.name}.svg" for p in plots),
        "cards": "cards/" if card_list else "", "dft": "dft/" if dft_inputs else ""}})
    paths = [run_dir / "report.json", run_dir / "report.md", run_dir / "report.html"]
    paths[0].write_text(report.model_dump_json(indent=2))
    paths[1].write_text(to_markdown(report))
    paths[2].write_text(to_html(report, run_dir, plots))
    return WrittenReport(report, paths)
