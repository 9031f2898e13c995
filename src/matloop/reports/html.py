"""One self-contained HTML file for a DiscoveryReport: inline CSS, figures and card images as
data URIs, no scripts, fonts or style sheets from anywhere else, so it opens offline.

Links to CIFs and DFT inputs are relative to the run directory; DOIs link to doi.org (followed
only when clicked).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

from matloop.reports import shorten
from matloop.reports.plots import Plot
from matloop.schemas import CandidateResult, DiscoveryReport, StructureType

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--accent:#2b6cb0;--ok:#2f855a;
--bad:#c53030;--warn:#b7791f}*{box-sizing:border-box}
body{margin:0;font:15px/1.55 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
.layout{display:grid;grid-template-columns:230px minmax(0,1fr);max-width:1280px;margin:0 auto}
nav{position:sticky;top:0;align-self:start;height:100vh;overflow:auto;padding:28px 18px;
border-right:1px solid var(--line);background:#fff}
nav h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
margin:0 0 10px}
nav a{display:block;padding:4px 8px;border-radius:6px;color:var(--ink);text-decoration:none;
font-size:14px}nav a:hover{background:var(--bg);color:var(--accent)}
main{padding:32px 40px 80px;min-width:0}header h1{font-size:26px;margin:0 0 6px}
header .query{font-size:18px;color:var(--muted);margin:0 0 12px}
.meta{color:var(--muted);font-size:13px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;
margin:18px 0}section h2{font-size:19px;margin:0 0 12px}h3{font-size:15px;margin:18px 0 8px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
background:#edf2f7;color:var(--ink);white-space:nowrap}.b-ok{background:#c6f6d5;color:#22543d}
.b-bad{background:#fed7d7;color:#742a2a}.b-warn{background:#fefcbf;color:#744210}
.b-info{background:#bee3f8;color:#2a4365}.flag{color:#9c4221;font-size:.9em}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{text-align:left;padding:6px 9px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.stable td{background:#f0fff4}.scroll{overflow-x:auto}figure{margin:14px 0}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:13px;color:var(--muted);margin-top:6px}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
#fig-hull{grid-column:1/-1}#fig-hull img{max-width:780px}#fig-hull figcaption{max-width:780px;
margin:6px auto 0}
.note{border-left:4px solid var(--warn);background:#fffbea;padding:10px 14px;border-radius:6px;
margin:12px 0}.note.removed{border-color:var(--bad);background:#fff5f5}
.card{border:1px solid var(--line);border-radius:10px;padding:16px;margin:14px 0}
.card h3{margin-top:0}.proj{display:flex;gap:8px;flex-wrap:wrap}
.proj img{width:190px;height:190px;border:1px solid var(--line);border-radius:6px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13.5px}
.kv dt{color:var(--muted)}.kv dd{margin:0}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--bg);padding:1px 4px;
border-radius:4px}a{color:var(--accent)}ul{padding-left:20px}li{margin:3px 0}
.muted{color:var(--muted)}
.author{font-size:12px;font-weight:400;color:var(--muted);margin-left:10px}
td code{white-space:nowrap;font-size:12px}
td.calls{font-size:12px;color:var(--muted);white-space:nowrap}td.stype{font-size:12.5px}
@media (max-width:900px){.layout{grid-template-columns:1fr}nav{position:static;height:auto}}
"""

SECTIONS = [("summary", "Summary"), ("objective", "Objective"), ("hypotheses", "Hypotheses"),
            ("methods", "Methods"), ("results", "Results"), ("cards", "Material cards"),
            ("evidence", "Evidence"), ("synthesis", "Synthesis"),
            ("limitations", "Limitations and negative results"), ("next-steps", "Next steps"),
            ("grounding", "Grounding and authorship")]


def e(value: object) -> str:
    """HTML-escaped text."""
    return escape(str(value), quote=True)


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for a table, or an en dash."""
    return "–" if value is None else format(value, spec)


@functools.cache
def spacegroup_label(value: str | None) -> str:
    """'I4/mmm (139)' from '139' (symbols kept as written)."""
    if not value:
        return "–"
    if value.strip().isdigit():
        try:
            from pymatgen.symmetry.groups import sg_symbol_from_int_number

            # The symbol table alone: building SpaceGroup objects costs ~0.3 s each.
            return f"{sg_symbol_from_int_number(int(value))} ({value})"
        except Exception:  # unknown numbers stay as written
            return value
    return value


def doi_link(doi: str | None) -> str:
    """An anchor to doi.org, or an empty string."""
    if not doi:
        return ""
    return f'<a href="https://doi.org/{quote(doi, safe="/:;()")}">doi:{e(doi)}</a>'


def data_uri(data: bytes, mime: str) -> str:
    """Inline data URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _badge(status: str) -> str:
    cls = {"supported": "b-ok", "approved": "b-ok", "refuted": "b-bad", "rejected": "b-bad",
           "dropped": "b-bad", "proposed": "b-info"}.get(status, "b-warn")
    return f'<span class="badge {cls}">{e(status)}</span>'


def _author(report: DiscoveryReport, part: str) -> str:
    who = report.authorship.get(part) or report.authorship.get("report", "offline")
    return f'<span class="author">written by {e(who)}</span>'


def _summary(r: DiscoveryReport) -> str:
    out = []
    for q in (r.objective.problems if r.objective else []):
        out.append(f'<div class="note removed"><strong>Not answered exactly as asked:</strong> '
                   f'{e(q.message)}; assumed: {e(q.assumption)}.</div>')
    out.append(f"<p>{e(r.summary)}</p>")
    if r.discussion:
        out.append(f"<h3>Discussion {_author(r, 'discussion')}</h3><p>{e(r.discussion)}</p>")
    if r.removed_claims:
        out.append(f'<div class="note removed"><strong>{len(r.removed_claims)} claim(s) '
                   f'removed by the grounding check</strong> — see '
                   f'<a href="#grounding">Grounding</a>.</div>')
    return "".join(out)


def _objective(r: DiscoveryReport) -> str:
    o = r.objective
    if o is None:
        return "<p class='muted'>The query was not interpreted (the campaign ended first).</p>"
    items = [("query", r.query), ("interpretation", o.interpretation),
             ("chemical systems", ", ".join(o.chemical_systems) or "–"),
             ("targets", "; ".join(t.describe() for t in o.property_targets) or "–"),
             ("stability", f"within {o.stability_threshold_ev_per_atom:g} eV/atom of the hull"
              if o.require_stable else "not required"),
             ("application", o.application or "–"),
             ("excluded elements", ", ".join(o.excluded_elements) or "–")]
    notes = "".join(f"<li>{e(n)}</li>" for n in o.notes)
    return _kv(items) + (f"<h3>Assumptions</h3><ul>{notes}</ul>" if notes else "")


def _kv(items: list[tuple[str, str]]) -> str:
    return "<dl class='kv'>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in items) + \
        "</dl>"


def _hypotheses(r: DiscoveryReport) -> str:
    verdicts: dict[str, list[str]] = {}
    for c in r.critiques:
        for v in c.verdicts:
            verdicts.setdefault(v.hypothesis_id, []).append(
                f"{'approved' if v.approved else 'rejected'} ({c.author}): {v.reasoning}")
    rows = "".join(
        f"<tr><td>{e(h.id)}</td><td>{_badge(h.status)}</td><td>{e(h.chemical_system)}</td>"
        f"<td>{e(', '.join(h.methods))}</td><td>{e(h.statement)}<br><span class='muted'>"
        f"{e(h.justification)}</span></td><td>"
        + "<br>".join(e(v) for v in verdicts.get(h.id, []))
        + f"</td><td>{e(h.author)}</td></tr>" for h in r.hypotheses)
    if not rows:
        return "<p class='muted'>No hypotheses were proposed.</p>"
    return ("<div class='scroll'><table><tr><th>id</th><th>status</th><th>system</th>"
            "<th>methods</th><th>hypothesis</th><th>critic's verdict</th><th>author</th></tr>"
            f"{rows}</table></div>")


def _methods(r: DiscoveryReport) -> str:
    m, u = r.methods, r.usage
    budget = m.get("budget") or {}
    items = [(f"model: {role}", model) for role, model in (m.get("models") or {}).items()]
    items += [("MLIP", m.get("mlip", "–")),
              ("reference scale setting", m.get("reference_scale", "–")),
              ("hull energy scale", m.get("hull_energy_scale") or "–"),
              ("hull chemical system", m.get("hull_chemical_system") or "–"),
              ("reference phases in the hull", str(len(r.reference_phases))),
              ("stability threshold", f"{m.get('stability_threshold_ev_per_atom', '–')} eV/atom"),
              ("relaxation", json.dumps(m.get("relaxation", {}))),
              ("seed", str(m.get("seed", "–"))),
              ("iterations used / allowed",
               f"{u.iterations} / {budget.get('max_iterations', '–')}"),
              ("MLIP evaluations used / allowed",
               f"{u.mlip_evaluations} / {budget.get('max_evaluations', '–')}"),
              ("LLM calls used / allowed", f"{u.llm_calls} / {budget.get('max_llm_calls', '–')}"),
              ("tokens (in + out)", f"{u.input_tokens} + {u.output_tokens}"),
              ("cost", f"{u.cost_usd:.4f} USD of {budget.get('max_cost_usd', '–')}"),
              ("wall time", f"{u.wall_time_s:.0f} s of {budget.get('max_wall_time_s', '–')} s"),
              ("tool calls", str(u.tool_calls))]
    if m.get("references"):
        items.insert(3, ("references checked against", str(m["references"])))
    return _kv(items) + reference_table(r)


def reference_table(r: DiscoveryReport) -> str:
    """The reference phases of the hull, with their mp-ids, so stability can be checked."""
    if not r.reference_phases:
        return ""
    rows = "".join(
        f"<tr><td>{e(p.formula)}</td><td class='num'>{p.formation_energy_ev_per_atom:.3f}</td>"
        f"<td class='num'>{p.e_above_hull_ev_per_atom:.3f}</td><td>{_mp_link(p.mp_id)}</td>"
        f"<td>{e(p.source)}</td></tr>"
        for p in sorted(r.reference_phases, key=lambda p: (p.e_above_hull_ev_per_atom > 1e-6,
                                                           p.formula)))
    return ("<h3>Reference phases of the hull</h3><div class='scroll'><table id='references'>"
            "<tr><th>formula</th><th>E<sub>form</sub> (eV/atom)</th><th>E<sub>hull</sub> "
            "(eV/atom)</th><th>Materials Project id</th><th>source</th></tr>"
            f"{rows}</table></div>")


def _mp_link(mp_id: str | None) -> str:
    if not mp_id or not re.fullmatch(r"mp-\d+|mvc-\d+", mp_id):
        return e(mp_id or "–")
    return (f"<a href='https://next-gen.materialsproject.org/materials/{e(mp_id)}'>"
            f"{e(mp_id)}</a>")


def _source(c: CandidateResult) -> str:
    prov = c.provenance or {}
    extra = prov.get("prototype") or prov.get("parent") or ""
    return c.method + (f" ({extra})" if extra else "")


def _props(c: CandidateResult) -> str:
    return "<br>".join(f"{e(k)} = {v:.3g}" for k, v in c.properties.items()) or "–"


def structure_type_cell(kind: StructureType | None) -> str:
    """AFLOW prototype label and name, the Pearson symbol when nothing matched, or a dash."""
    if kind is None:
        return "–"
    if kind.label:
        return (f"<code>{e(kind.label)}</code>"
                + (f"<br><span class='muted'>{e(kind.name)}</span>" if kind.name else ""))
    return (f"{e(kind.pearson or '–')}<br><span class='muted' title='{e(kind.note or '')}'>"
            f"no AFLOW library prototype</span>")


def candidate_table(r: DiscoveryReport, *, limit: int = 40) -> str:
    """Ranked candidate table (evaluated candidates; failures counted below it)."""
    from matloop.reports.cards import structure_types

    ok = [c for c in r.candidates if c.status == "ok"]
    kinds = structure_types(r)
    rows = []
    for i, c in enumerate(ok[:limit], 1):
        meets = {True: "<span class='badge b-ok'>yes</span>", False: "no", None: "–"}[
            c.meets_objective]
        rows.append(
            f"<tr class='{'stable' if c.is_stable else ''}'><td class='num'>{i}</td>"
            f"<td><code>{e(c.id)}</code></td><td><strong>{e(c.formula)}</strong></td>"
            f"<td>{e(spacegroup_label(c.spacegroup))}</td>"
            f"<td class='stype'>{structure_type_cell(kinds.get(c.id))}</td>"
            f"<td class='num'>{fmt(c.e_above_hull_ev_per_atom, '+.3f')}</td>"
            f"<td class='num'>{fmt(c.formation_energy_ev_per_atom)}</td><td>{_props(c)}</td>"
            f"<td>{e(c.novelty or 'not assessed')}"
            + "".join(f"<br><span class='flag'>⚠ {e(f)}</span>" for f in c.flags)
            + f"</td><td>{e(_source(c))}</td>"
            f"<td>{e(c.hypothesis_id or '–')}</td><td>{meets}</td>"
            f"<td class='calls'>{'<br>'.join(e(x) for x in c.tool_call_ids)}</td></tr>")
    failed = [c for c in r.candidates if c.status != "ok"]
    note = (f"<p class='muted'>{len(failed)} candidate(s) have no result: "
            f"{e(', '.join(sorted({c.status for c in failed})))}.</p>" if failed else "")
    if not rows:
        return "<p class='muted'>No candidate was evaluated.</p>" + note
    return ("<div class='scroll'><table id='candidates'><tr><th>#</th><th>id</th>"
            "<th>formula</th><th>space group</th><th>structure type</th>"
            "<th>E<sub>hull</sub> (eV/atom)</th>"
            "<th>E<sub>form</sub> (eV/atom)</th><th>target properties</th><th>novelty</th>"
            "<th>source method</th><th>hypothesis</th><th>meets objective</th>"
            f"<th>tool calls</th></tr>{''.join(rows)}</table></div>" + note +
            "<p class='muted'>Green rows lie within the stability threshold. Energy scale: "
            f"{e(ok[0].energy_scale or '–')}; MLIP: {e(ok[0].mlip or '–')}. Structure types "
            "(AFLOW prototype labels) are matched for the candidates with a material card and "
            "the candidates holding the same relaxed structure.</p>")


def _results(r: DiscoveryReport, plots: list[Plot]) -> str:
    figs = "".join(
        f"<figure id='fig-{p.name}'><img alt='{e(p.title)}' src='"
        f"{data_uri(p.svg.encode(), 'image/svg+xml')}'><figcaption><strong>{e(p.title)}."
        f"</strong> {e(p.caption)}</figcaption></figure>" for p in plots)
    return (f"<div class='figs'>{figs}</div>" if figs else "") + "<h3>Ranked candidates</h3>" \
        + candidate_table(r)


def _cards(r: DiscoveryReport, run_dir: Path) -> str:
    out = []
    for card in r.cards:
        c = card.card
        imgs = []
        for axis, rel in card.images.items():
            path = run_dir / rel
            if path.is_file():
                imgs.append(f"<img alt='projection along {e(axis)}' src='"
                            f"{data_uri(path.read_bytes(), 'image/png')}'>")
        envs = "".join(
            f"<li>{e(x['element'])} (×{x['multiplicity']}): {x['coordination_number']}-"
            f"coordinated by " + e(", ".join(f"{n} {el}" for el, n in sorted(
                x["neighbours"].items()))) + (
                f", mean {x['mean_bond_length_angstrom']:.3f} Å" if
                x.get("mean_bond_length_angstrom") else "") + "</li>"
            for x in c.get("coordination", []))
        items = [("space group", f"{c.get('space_group_symbol') or '–'} "
                                 f"(No. {c.get('space_group_number') or '–'}), "
                                 f"{c.get('crystal_system') or ''}"),
                 ("a, b, c", f"{c['a_angstrom']:.4f}, {c['b_angstrom']:.4f}, "
                             f"{c['c_angstrom']:.4f} Å"),
                 ("α, β, γ", f"{c['alpha_deg']:.2f}°, {c['beta_deg']:.2f}°, "
                             f"{c['gamma_deg']:.2f}°"),
                 ("volume, density", f"{c['volume_angstrom3']:.2f} Å³, "
                                     f"{c['density_g_cm3']:.3f} g/cm³"),
                 ("sites", str(c["n_sites"]))]
        kind = card.structure_type
        if kind is not None:
            items.insert(1, ("structure type", kind.describe()
                             + (f" (Strukturbericht {kind.strukturbericht})"
                                if kind.strukturbericht else "")))
        src = c.get("description_source", "")
        note = f" <span class='muted'>({e(c['description_note'])})</span>" if c.get(
            "description_note") else ""
        cif = f"<a href='{e(card.cif)}'>{e(Path(card.cif).name)}</a>" if card.cif else "–"
        out.append(f"<div class='card' id='card-{e(card.candidate_id)}'><h3>{e(c['formula'])} "
                   f"<code>{e(card.candidate_id)}</code></h3><div class='proj'>{''.join(imgs)}"
                   f"</div>{_kv(items)}<p><strong>Coordination</strong></p><ul>{envs}</ul>"
                   f"<p><strong>Description</strong> <span class='badge'>{e(src)}</span>{note}"
                   f"</p><p>{e(c.get('description', ''))}</p><p>CIF: {cif}</p>"
                   f"{_structure_type_note(kind)}</div>")
    return "".join(out) or "<p class='muted'>No material cards (no relaxed structure).</p>"


def _structure_type_note(kind: StructureType | None) -> str:
    if kind is None:
        return ""
    why = f"{kind.note}. " if kind.note else ""
    return (f"<p class='muted'>Structure type: {e(why)}{e(kind.source)}; matched in "
            f"{kind.duration_s:.2f} s.</p>")


def _evidence(r: DiscoveryReport) -> str:
    if not r.evidence:
        return "<p class='muted'>No literature evidence was retrieved in this run.</p>"
    return "<ul>" + "".join(
        f"<li><code>{e(x.id)}</code> <strong>{e(x.title or '')}</strong> {doi_link(x.doi)}"
        f" <span class='muted'>({e(x.source)}, score {x.score:.3f})</span><br>"
        f"<span class='muted'>{e(shorten(x.snippet, 300))}</span></li>"
        for x in r.evidence) + "</ul>"


def _synthesis(r: DiscoveryReport) -> str:
    if not r.synthesis:
        return "<p class='muted'>No synthesis analogue was found in the knowledge base.</p>"
    rows = "".join(f"<tr><td><code>{e(s.candidate_id)}</code></td><td>{e(s.analog_formula)}</td>"
                   f"<td>{e(', '.join(s.precursors))}</td><td>{e(', '.join(s.temperatures))}</td>"
                   f"<td>{e(', '.join(s.atmosphere) or '–')}</td><td class='num'>"
                   f"{fmt(s.similarity, '.2f')}</td><td>{doi_link(s.doi)}</td></tr>"
                   for s in r.synthesis)
    return ("<div class='scroll'><table><tr><th>candidate</th><th>known analogue</th>"
            "<th>precursors</th><th>temperatures</th><th>atmosphere</th><th>similarity</th>"
            f"<th>source</th></tr>{rows}</table></div>")


def _limits(r: DiscoveryReport) -> str:
    neg = "".join(f"<li>{e(x)}</li>" for x in r.negative_results)
    return ("<ul>" + "".join(f"<li>{e(x)}</li>" for x in r.limitations) + "</ul>"
            + (f"<h3>Failed hypotheses and negative results</h3><ul>{neg}</ul>" if neg else
               "<p class='muted'>No hypothesis was refuted or rejected.</p>"))


def _next(r: DiscoveryReport) -> str:
    steps = "<ol>" + "".join(f"<li>{e(x)}</li>" for x in r.next_steps) + "</ol>"
    if not r.dft_inputs:
        return steps
    rows = "".join(
        f"<tr><td><code>{e(d.candidate_id)}</code></td><td>{e(d.formula)}</td>"
        f"<td><a href='{e(d.directory)}/'>{e(d.directory)}/</a><br><span class='muted'>"
        f"{e(', '.join(d.files))}</span></td><td>"
        + (f"<a href='{e(d.workflow)}'>{e(d.workflow)}</a>" if d.workflow else "–") +
        "</td></tr>" for d in r.dft_inputs)
    return (steps + "<h3>DFT validation inputs</h3><div class="
            "'scroll'><table><tr><th>candidate</th><th>formula</th><th>VASP inputs "
            "(pymatgen MPRelaxSet)</th><th>atomate2 workflow</th></tr>" + rows +
            f"</table></div><p class='muted'>{e(r.dft_inputs[0].note)}</p>")


def _grounding(r: DiscoveryReport) -> str:
    if r.removed_claims:
        items = "".join(f"<li><strong>{e(c.part or 'text')}</strong>: “{e(c.text)}” — "
                        f"<span class='muted'>{e(c.reason)}</span></li>"
                        for c in r.removed_claims)
        removed = (f"<div class='note removed'><strong>Removed by the grounding check</strong>"
                   f"<ul>{items}</ul></div>")
    else:
        removed = ("<p>Every number and citation in the narrative matches the run's results "
                   "and retrieved evidence; nothing was removed.</p>")
    who = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in r.authorship.items()
                  if k != "roles")
    return (removed + "<h3>Who wrote each part</h3><table><tr><th>part</th><th>policy</th></tr>"
            f"{who}</table>")


def to_html(report: DiscoveryReport, run_dir: Path, plots: list[Plot]) -> str:
    """The report as one self-contained HTML document."""
    r = report
    bodies = {"summary": _summary(r), "objective": _objective(r), "hypotheses": _hypotheses(r),
              "methods": _methods(r), "results": _results(r, plots),
              "cards": _cards(r, run_dir), "evidence": _evidence(r),
              "synthesis": _synthesis(r), "limitations": _limits(r), "next-steps": _next(r),
              "grounding": _grounding(r)}
    nav = "".join(f"<a href='#{k}'>{e(t)}</a>" for k, t in SECTIONS)
    parts = {"summary": "summary", "limitations": "limitations", "next-steps": "next_steps",
             "results": "tables", "cards": "cards"}
    sections = "".join(f"<section id='{k}'><h2>{e(t)}"
                       f"{_author(r, parts[k]) if k in parts else ''}</h2>{bodies[k]}</section>"
                       for k, t in SECTIONS)
    status_cls = "b-ok" if r.status in ("objective_met", "completed") else "b-warn"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>Discovery report — "
            f"{e(r.query)}</title><style>{CSS}</style></head><body><div class='layout'>"
            f"<nav><h2>Contents</h2>{nav}</nav><main><header><h1>Discovery report</h1>"
            f"<p class='query'>{e(r.query)}</p><p class='meta'><span class='badge "
            f"{status_cls}'>{e(r.status)}</span> campaign <code>{e(r.campaign_id)}</code> · "
            f"{e(r.created_utc)} · schema {e(r.schema_version)}</p></header>{sections}"
            f"</main></div></body></html>\n")
