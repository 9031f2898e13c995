"""One summary table of every benchmark result (``evals/results/*.json`` or another folder).

    .venv/bin/python -m evals.summary [RESULTS_DIR ...]

Each row: benchmark, date, its headline figures and its wall time; rows from a folder other
than ``evals/results`` are prefixed with the folder's name (``fast/generation``). A file this
module does not know still gets a row (its date and wall time); a file that is not valid JSON
is named with the error, so a broken result cannot hide.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evals.common import RESULTS


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def _num(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(float(x), spec)


def _hull(d: dict[str, Any]) -> str:
    u = _get(d, "metrics", "union") or {}
    return (f"E_hull MAE {_num(u.get('mae_ev_per_atom'), '.4f')} eV/atom vs MP labels; stable "
            f"agreement {_pct(_get(u, 'stability_at_0', 'agreement'))} "
            f"({u.get('n', '-')} compositions)")


def _mlip(d: dict[str, Any]) -> str:
    parts = []
    for name, b in (d.get("backends") or {}).items():
        fe = b.get("formation_energy") or {}
        parts.append(f"{name} E_form MAE {_num(fe.get('mae_ev_per_atom_mp2020_scale'))} eV/atom "
                     f"(n={fe.get('n_compounds', '-')})")
    return "; ".join(parts) or "-"


def _throughput(d: dict[str, Any]) -> str:
    return (f"{_num(_get(d, 'sequential', 'structures_per_min'), '.2f')} -> "
            f"{_num(_get(d, 'dask_parallel', 'structures_per_min'), '.2f')} structures/min, "
            f"speedup {_num(d.get('speedup'), '.2f')}x")


def _generation(d: dict[str, Any]) -> str:
    # One run ("combined" at the top) or several named runs (e.g. with and without a
    # pre-screen), each with its own "combined".
    runs = d.get("runs") or {"": d}
    parts = []
    for name, r in runs.items():
        c = r.get("combined") or {}
        parts.append(f"{name + ': ' if name else ''}SUN {_pct(c.get('sun_rate'))}, stable "
                     f"{_pct(c.get('stable_rate'))}, unique {_pct(c.get('unique_rate'))} of "
                     f"{c.get('total', '-')}")
    return "; ".join(parts)


def _retrieval(d: dict[str, Any]) -> str:
    h = _get(d, "quality", "synthesis", "hybrid") or {}
    return (f"synthesis recall@10 {_num(h.get('recall@10'))} (hybrid), p50 latency "
            f"{_num(_get(d, 'latency_ms', 'hybrid', 'p50'), '.0f')} ms")


def _surrogates(d: dict[str, Any]) -> str:
    cv = _get(d, "expt_gap", "cv") or {}
    return (f"expt band gap MAE {_num(cv.get('mae'))} eV (baseline "
            f"{_num(cv.get('baseline_mae'))}), 95% coverage {_pct(cv.get('coverage_95'))}")


def _rediscovery(d: dict[str, Any]) -> str:
    parts = []
    for name, r in (d.get("overall") or {}).items():
        per = r.get("evaluations_per_rediscovery")
        parts.append(f"{name} {r.get('rediscovered', 0)}/{r.get('targets', 0)} "
                     f"({_pct(r.get('rate'))}, {per if per is not None else '-'} evals/hit)")
    return "; ".join(parts) or "-"


def _campaigns(d: dict[str, Any]) -> str:
    runs = list((d.get("campaigns") or {}).values())
    if not runs:
        return "-"
    sun = sum(_get(r, "sun_top10", "sun") or 0 for r in runs)
    top = sum(_get(r, "sun_top10", "n") or 0 for r in runs)
    g = [_get(r, "grounding", "grounded_fraction") for r in runs]
    g = [x for x in g if x is not None]
    holds = sum(bool(r.get("all_constraints_hold")) for r in runs)
    return (f"{len(runs)} campaigns: SUN top-10 {sun}/{top}, grounded "
            f"{_pct(sum(g) / len(g) if g else None)}, constraints hold in {holds}/{len(runs)}")


def _judge(d: dict[str, Any]) -> str:
    means = [r.get("mean_score") for r in (d.get("reports") or {}).values()]
    return f"{len(means)} reports, mean score {_num(sum(means) / len(means), '.2f')}" \
        if means else "-"


def _chat_intents(d: dict[str, Any]) -> str:
    h, t = d.get("heldout") or {}, d.get("train") or {}
    return (f"intent {_pct(h.get('intent_accuracy'))} held-out ({_pct(t.get('intent_accuracy'))} "
            f"tuned), entities {_pct(h.get('entity_accuracy'))} held-out, median "
            f"{_num(_get(d, 'latency', 'median_ms'), '.2f')} ms")


def _llm_server(d: dict[str, Any]) -> str:
    return (f"llama-server build {_num(d.get('build_seconds_cold'), '.0f')} s cold, start "
            f"{_num(_get(d, 'startup_seconds', 'median'), '.1f')} s, "
            f"{_num(_get(d, 'generation_tokens_per_s', 'median'), '.1f')} tokens/s, structured "
            f"answer {_num(_get(d, 'structured_answer', 'median_seconds'), '.1f')} s")


def _mp_references(d: dict[str, Any]) -> str:
    cov, ver, cost = d.get("coverage") or {}, d.get("verdicts") or {}, d.get("costs") or {}
    return (f"{_pct(cov.get('known_fraction'))} of {cov.get('n')} labelled compositions known; "
            f"verdicts {_pct(_get(ver, 'stability_at_0', 'agreement'))} agree; load "
            f"{_num(cost.get('load_seconds_median'), '.2f')} s; ternary hull "
            f"{_num(_get(cost, 'hull_seconds', 'ternary', 'median'), '.3f')} s")


def _band_gap(d: dict[str, Any]) -> str:
    cv = _get(d, "cv", "default") or {}
    old = _get(d, "cv", "et_regressor_all_rows") or {}
    return (f"default model grouped-CV MAE {_num(cv.get('mae'))} eV (non-metals "
            f"{_num(cv.get('mae_nonmetal'))}; previous recipe {_num(old.get('mae'))}), 95% "
            f"coverage {_pct(cv.get('coverage_95'))}, sanity-table MAE "
            f"{_num(_get(d, 'sanity', 'mae_ev'), '.2f')} eV")


def _hardness(d: dict[str, Any]) -> str:
    parts = []
    for name, r in (d.get("results") or {}).items():
        s = r.get("summary") or {}
        parts.append(f"{name}: B MAE {_num(_get(s, 'bulk_modulus_vrh', 'mae_gpa'), '.0f')} GPa, "
                     f"G MAE {_num(_get(s, 'shear_modulus_vrh', 'mae_gpa'), '.0f')} GPa, Hv "
                     f"rank corr {_num(_get(s, 'hardness_chen2011', 'spearman'), '.2f')}")
    return "; ".join(parts) or "-"


def _composition_prior(d: dict[str, Any]) -> str:
    mae = _get(d, "shipped_model", "cv_grouped_mae_ev_per_atom")
    summary = _get(d, "ranking", "summary") or {}
    key = next((k for k in summary if k.startswith("blind/") and k.endswith("/all")
                and d.get("default_rule", "icsd24-medium+pmg") in k), None)
    r = summary.get(key) if key else None
    cal = _get(d, "calibration", "held_out_targets_blind") or {}
    if mae is None or r is None:
        return "-"
    return (f"grouped-CV MAE {_num(mae, '.3f')} eV/atom; {r['targets']} held-out MP ground "
            f"states, recall@10 {_pct(r['recall_at_10_by_rank_average'])} (E_hull "
            f"{_pct(r['recall_at_10'])}, E_form {_pct(r['recall_at_10_by_eform'])}, random "
            f"{_pct(r['recall_at_10_random_order'])}); within 1 sigma "
            f"{_pct(cal.get('within_1_sigma'))}")



def _application_queries(d: dict[str, Any]) -> str:
    s = d.get("summary") or {}
    if not s:
        return "-"
    return (f"{s['queries']} questions: application read in {s['application_recognised']}, "
            f"all proposed systems on topic in {s['on_topic']}, empty {s['empty']}; predicted "
            f"gap in the window for {_pct(s['mean_in_window_share'])} of proposed compositions "
            f"vs {_pct(s['mean_in_window_share_without_window'])} without the window "
            f"({s['gap_queries']} gap questions); median {s['median_wall_s']} s per question")

def _application_campaigns(d: dict[str, Any]) -> str:
    s = d.get("summary") or {}
    if not s:
        return "-"
    return (f"{s['runs']} held-out campaigns: known-good hit (or one-element analogue) in the "
            f"top 10 of {_pct(s['hit_rate'])} (exact {_pct(s['exact_hit_rate'])}); top-10 "
            f"candidates meeting every target and within 0.1 eV/atom of the MP hull "
            f"{_pct(s['top10_meeting_targets_and_mp_hull'])}; non-empty "
            f"{_pct(s['non_empty_rate'])}, on topic {_pct(s['on_topic_rate'])}; median "
            f"{s['median_wall_s']} s per run"
            + ("" if d.get("complete", True) else " (partial run)"))


def _made(d: dict[str, Any]) -> str:
    budget = _get(d, "settings", "budget_per_approach")
    parts = []
    for name, r in (d.get("overall") or {}).items():
        af, ef = r.get("af_gt_found_mean"), r.get("ef_gt_found_mean")
        parts.append(f"{name} {r.get('found', 0)}/{r.get('ground_truth', 0)} found, AF "
                     f"{'n/a' if af is None else af}, EF {'n/a' if ef is None else ef}")
    return (f"MADE protocol, budget {budget}, {len(d.get('per_system') or {})} systems: "
            + "; ".join(parts)) if parts else "-"


HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "hull_labels": _hull, "mlip_accuracy": _mlip, "throughput": _throughput,
    "generation": _generation, "retrieval": _retrieval, "surrogates": _surrogates,
    "rediscovery": _rediscovery, "rediscovery_composition": _rediscovery,
    "campaigns": _campaigns, "judge": _judge,
    "chat_intents": _chat_intents, "llm_server": _llm_server, "mp_references": _mp_references,
    "band_gap": _band_gap, "hardness": _hardness, "composition_prior": _composition_prior,
    "application_queries": _application_queries, "made": _made,
    "application_campaigns": _application_campaigns,
}


def _wall(d: dict[str, Any]) -> Any:
    for key in ("wall_seconds", "wall_time_s", "wall_s"):
        if d.get(key) is not None:
            return d[key]
    return None


def rows(folders: list[Path]) -> list[tuple[str, str, str, str]]:
    """(benchmark, date, headline, wall seconds) for every result file in ``folders``."""
    out = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            # Rows from another folder (e.g. the reduced runs in results/fast) say where from.
            name = path.stem if folder.resolve() == RESULTS.resolve() else \
                f"{folder.name}/{path.stem}"
            try:
                d = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                out.append((name, "-", f"unreadable: {exc}", "-"))
                continue
            fn = HEADLINES.get(path.stem)
            try:
                headline = fn(d) if fn else "(no headline defined)"
            except (TypeError, ValueError, ZeroDivisionError) as exc:
                headline = f"unexpected layout: {type(exc).__name__}: {exc}"
            wall = _wall(d)
            out.append((name, str(d.get("date_utc", "-"))[:10], headline,
                        "-" if wall is None else f"{float(wall):.0f}"))
    return out


def table(folders: list[Path]) -> str:
    """The summary as a fixed-width text table."""
    data = rows(folders)
    head = ("benchmark", "date", "headline", "wall s")
    w0 = max([len(head[0])] + [len(r[0]) for r in data])
    lines = [f"{head[0]:<{w0}}  {head[1]:<10}  {head[3]:>6}  {head[2]}",
             f"{'-' * w0}  {'-' * 10}  {'-' * 6}  {'-' * 40}"]
    lines += [f"{r[0]:<{w0}}  {r[1]:<10}  {r[3]:>6}  {r[2]}" for r in data]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[RESULTS])
    args = parser.parse_args(argv)
    print(table(args.folders))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
