"""Elastic moduli and Vickers hardness from the MLIP against experiment (hard and soft solids).

Each compound is built from matloop's starter library (prototype + lattice constants),
relaxed with the MLIP (CHGNet by default) and put through
:func:`matloop.materials.elastic.elastic_properties` (±0.5 % and ±1 % strains, ions relaxed
at fixed cell). The Voigt-Reuss-Hill bulk and shear moduli and the Vickers hardness of
Chen et al. 2011 (and Tian et al. 2012) are compared with experimental values:

* B and G: Hill averages of measured single-crystal elastic constants (cited per compound;
  the constants are listed so the averages can be checked);
* Hv: measured Vickers hardness as tabulated in the B/G-model papers (Chen et al.,
  Intermetallics 19, 1275 (2011), Table 1; Tian et al., Int. J. Refract. Met. Hard Mater.
  33, 93 (2012)) or, for the soft solids, typical annealed values.

Also: the Birch-Murnaghan bulk modulus of the existing EOS path (``Evaluator.bulk_modulus``)
next to the VRH one, and, when ``matcalc`` is importable, its ``ElasticityCalc`` with the
same CHGNet calculator on a few compounds.

Reported: per-compound values and wall times, MAE and mean |log ratio| of B, G and Hv, and
Spearman rank correlations. Run from the repository root::

    .venv/bin/python -m evals.hardness [--mlip chgnet] [--only C,NaCl] [--no-matcalc]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.common import write_json

#: Where the measured hardness values come from (see REFERENCE_CAVEAT).
HV_COMPILATIONS = "experimental Hv as compiled by Chen et al. 2011 (Table 1) and Tian et al. 2012"
REFERENCE_CAVEAT = ("Reference values were transcribed from the cited literature; the papers "
                    "were not at hand to re-check every number, so treat single values as "
                    "+-10 % (hardness depends on load and sample as well).")
#: Experimental references. ``cij``: measured elastic constants (GPa) whose Hill averages give
#: B and G (cubic: C11, C12, C44); ``b``/``g`` given directly where the crystal is not cubic.
REFERENCES: list[dict[str, Any]] = [
    {"formula": "C", "prototype": "diamond", "cij": (1079.0, 124.0, 578.0),
     "cij_ref": "McSkimin & Andreatch, J. Appl. Phys. 43, 2944 (1972)",
     "hv": 96.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "BN", "prototype": "zincblende", "cij": (820.0, 190.0, 480.0),
     "cij_ref": "Grimsditch, Zouboulis & Polian, J. Appl. Phys. 76, 832 (1994)",
     "hv": 66.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "SiC", "prototype": "zincblende", "cij": (390.0, 142.0, 256.0),
     "cij_ref": "3C-SiC, experimental set quoted by Lambrecht et al., Phys. Rev. B 44, 3685 "
                "(1991)",
     "hv": 34.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "TiC", "prototype": "rocksalt", "cij": (515.0, 106.0, 179.0),
     "cij_ref": "Gilman & Roberts, J. Appl. Phys. 32, 1405 (1961)",
     "hv": 30.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "ZrC", "prototype": "rocksalt", "cij": (472.0, 98.7, 159.3),
     "cij_ref": "Chang & Graham, J. Appl. Phys. 37, 3778 (1966)",
     "hv": 25.8, "hv_ref": HV_COMPILATIONS},
    {"formula": "TiN", "prototype": "rocksalt", "cij": (625.0, 165.0, 163.0),
     "cij_ref": "Kim, Achenbach, Mirkarimi, Shinn & Barnett, J. Appl. Phys. 72, 1805 (1992)",
     "hv": 23.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "WC", "prototype": "WC", "b": 439.0, "g": 282.0,
     "cij_ref": "Hill averages of the single-crystal constants of Lee & Gilmore, J. Am. "
                "Ceram. Soc. 65, C-32 (1982)",
     "hv": 30.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "Al2O3", "prototype": "corundum", "b": 254.0, "g": 163.0,
     "cij_ref": "Hill averages of Gieske & Barsch, Phys. Status Solidi 29, 121 (1968)",
     "hv": 20.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "Si", "prototype": "diamond", "cij": (165.8, 63.9, 79.6),
     "cij_ref": "Hall, Phys. Rev. 161, 756 (1967)",
     "hv": 12.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "MgO", "prototype": "rocksalt", "cij": (297.0, 95.2, 155.7),
     "cij_ref": "Zha, Mao & Hemley, PNAS 97, 13494 (2000), ambient pressure",
     "hv": 11.0, "hv_ref": HV_COMPILATIONS},
    {"formula": "GaAs", "prototype": "zincblende", "cij": (118.8, 53.8, 59.4),
     "cij_ref": "Blakemore, J. Appl. Phys. 53, R123 (1982)",
     "hv": 7.5, "hv_ref": HV_COMPILATIONS},
    {"formula": "NaCl", "prototype": "rocksalt", "cij": (49.1, 12.8, 12.8),
     "cij_ref": "Bartels & Schuele, J. Phys. Chem. Solids 26, 537 (1965)",
     "hv": 0.2, "hv_ref": "typical single-crystal value (about HV 20)"},
    {"formula": "Cu", "prototype": "fcc", "cij": (168.4, 121.4, 75.4),
     "cij_ref": "Overton & Gaffney, Phys. Rev. 98, 969 (1955)",
     "hv": 0.4, "hv_ref": "typical annealed value (about HV 40)"},
    {"formula": "Al", "prototype": "fcc", "cij": (107.3, 60.9, 28.3),
     "cij_ref": "Simmons & Wang, Single Crystal Elastic Constants (MIT Press 1971)",
     "hv": 0.17, "hv_ref": "typical annealed value (about HV 17)"},
]
#: Compounds on which matcalc is compared (small cells).
MATCALC_SUBSET = ("C", "Si", "MgO", "NaCl", "Cu", "TiN")


def hill_cubic(c11: float, c12: float, c44: float) -> tuple[float, float]:
    """Hill bulk and shear moduli (GPa) of a cubic crystal."""
    b = (c11 + 2 * c12) / 3
    gv = (c11 - c12 + 3 * c44) / 5
    gr = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    return b, (gv + gr) / 2


def experimental(ref: dict[str, Any]) -> tuple[float, float]:
    """Experimental B and G (GPa) of a reference row."""
    if "cij" in ref:
        return hill_cubic(*ref["cij"])
    return float(ref["b"]), float(ref["g"])


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def _log_err(calc: float | None, exp: float) -> float | None:
    if calc is None or calc <= 0 or exp <= 0:
        return None
    return abs(math.log(calc / exp))


def _structure(formula: str, prototype: str) -> Any:
    from matloop.materials.references import build_starter_structure, starter_entries

    for entry in starter_entries():
        if entry["formula"] == formula and entry["prototype"] == prototype:
            return build_starter_structure(entry)
    raise KeyError(f"{formula} ({prototype}) is not in the starter library")


def _matcalc(structure: Any, mlip: str) -> dict[str, Any]:
    """matcalc's ElasticityCalc with the same calculator (relaxed deformed structures)."""
    from matcalc import ElasticityCalc  # type: ignore[import-not-found]

    from matloop.materials.mlip import get_mlip

    t0 = time.perf_counter()
    calc = ElasticityCalc(get_mlip(mlip).calculator, relax_structure=True,
                          relax_deformed_structures=True, fmax=0.01, units_GPa=True)
    out = calc.calc(structure)
    b, g = float(out["bulk_modulus_vrh"]), float(out["shear_modulus_vrh"])
    from matloop.materials.elastic import vickers_hardness

    return {"bulk_modulus_vrh_gpa": b, "shear_modulus_vrh_gpa": g,
            "vickers_hardness_chen2011_gpa": vickers_hardness(b, g, "chen2011"),
            "wall_time_s": time.perf_counter() - t0}


def run_mlip(mlip: str, refs: list[dict[str, Any]], cache: Any, *,
             matcalc: bool) -> dict[str, Any]:
    """Elastic properties, EOS and (optionally) matcalc for every reference with one MLIP."""
    from matloop.materials.elastic import elastic_properties
    from matloop.materials.evaluation import Evaluator

    ev = Evaluator(mlip, cache=cache)
    t0 = time.perf_counter()
    _ = ev.mlip  # load the model outside the per-compound timings
    load_s = time.perf_counter() - t0
    rows = []
    for ref in refs:
        structure = _structure(ref["formula"], ref["prototype"])
        b_exp, g_exp = experimental(ref)
        t0 = time.perf_counter()
        res = elastic_properties(structure, ev)
        elastic_s = time.perf_counter() - t0
        relaxed = ev.relax(structure, fmax=res.settings["fmax_ev_per_angstrom"],
                           steps=res.settings["relax_steps"]).final_structure()
        t0 = time.perf_counter()
        eos = ev.bulk_modulus(relaxed)
        eos_s = time.perf_counter() - t0
        row = {
            "formula": ref["formula"], "prototype": ref["prototype"], "n_atoms": res.n_atoms,
            "bulk_modulus_exp_gpa": b_exp, "shear_modulus_exp_gpa": g_exp,
            "elastic_constants_exp_gpa": ref.get("cij"), "moduli_ref": ref["cij_ref"],
            "hardness_exp_gpa": ref["hv"], "hardness_ref": ref["hv_ref"],
            "bulk_modulus_vrh_gpa": res.bulk_modulus_vrh_gpa,
            "shear_modulus_vrh_gpa": res.shear_modulus_vrh_gpa,
            "bulk_modulus_eos_gpa": eos.bulk_modulus_gpa,
            "eos_over_vrh": eos.bulk_modulus_gpa / res.bulk_modulus_vrh_gpa,
            "pugh_ratio": res.pugh_ratio, "ductile": res.ductile,
            "mechanically_stable": res.mechanically_stable,
            "hardness_chen2011_gpa": res.vickers_hardness_chen2011_gpa,
            "hardness_tian2012_gpa": res.vickers_hardness_tian2012_gpa,
            "elastic_tensor_voigt_gpa": res.elastic_tensor_voigt_gpa,
            "fit_r2_min": res.fit_r2_min, "notes": res.notes,
            "calculations": res.calculations, "elastic_wall_s": elastic_s,
            "eos_wall_s": eos_s, "from_cache": res.from_cache,
        }
        if matcalc and ref["formula"] in MATCALC_SUBSET:
            try:
                row["matcalc"] = _matcalc(structure, mlip)
            except ImportError as exc:
                row["matcalc"] = {"error": f"not importable: {exc}"}
        rows.append(row)
        print(f"{mlip:7s} {ref['formula']:6s} B {res.bulk_modulus_vrh_gpa:6.1f} "
              f"(EOS {eos.bulk_modulus_gpa:6.1f}, exp {b_exp:6.1f})  "
              f"G {res.shear_modulus_vrh_gpa:6.1f} (exp {g_exp:6.1f})  "
              f"Hv chen {res.vickers_hardness_chen2011_gpa or float('nan'):6.1f} "
              f"tian {res.vickers_hardness_tian2012_gpa or float('nan'):5.1f} (exp "
              f"{ref['hv']:5.1f})  {elastic_s:5.1f} s", flush=True)
    return {"mlip_load_s": load_s, "rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Errors against experiment, rank correlations, EOS against VRH, wall times."""
    def stats(key: str, exp_key: str) -> dict[str, Any]:
        ok = [(r[key], r[exp_key]) for r in rows if r[key] is not None]
        logs = [x for c, e in ok if (x := _log_err(c, e)) is not None]
        signed = [math.log(c / e) for c, e in ok if c > 0 and e > 0]
        return {"n": len(ok), "mae_gpa": float(np.mean([abs(c - e) for c, e in ok])),
                "mean_abs_log_ratio": float(np.mean(logs)) if logs else None,
                "median_abs_log_ratio": float(np.median(logs)) if logs else None,
                "mean_log_ratio": float(np.mean(signed)) if signed else None,
                "spearman": _spearman([c for c, _ in ok], [e for _, e in ok])}

    summary = {
        "bulk_modulus_vrh": stats("bulk_modulus_vrh_gpa", "bulk_modulus_exp_gpa"),
        "bulk_modulus_eos": stats("bulk_modulus_eos_gpa", "bulk_modulus_exp_gpa"),
        "shear_modulus_vrh": stats("shear_modulus_vrh_gpa", "shear_modulus_exp_gpa"),
        "hardness_chen2011": stats("hardness_chen2011_gpa", "hardness_exp_gpa"),
        "hardness_tian2012": stats("hardness_tian2012_gpa", "hardness_exp_gpa"),
        "eos_over_vrh_median": float(np.median([r["eos_over_vrh"] for r in rows])),
        "eos_over_vrh_range": [float(min(r["eos_over_vrh"] for r in rows)),
                               float(max(r["eos_over_vrh"] for r in rows))],
        "elastic_wall_s_median": float(np.median([r["elastic_wall_s"] for r in rows])),
        "elastic_wall_s_max": float(np.max([r["elastic_wall_s"] for r in rows])),
        "superhard_above_40_gpa_exp": [r["formula"] for r in rows if r["hardness_exp_gpa"] > 40],
        "superhard_above_40_gpa_chen2011": [r["formula"] for r in rows
                                            if (r["hardness_chen2011_gpa"] or 0) > 40],
    }
    hard = [r for r in rows if r["hardness_exp_gpa"] >= 5]
    if len(hard) > 2:
        summary["hardness_chen2011_hard_only"] = {
            "n": len(hard),
            "mean_abs_log_ratio": float(np.mean([_log_err(r["hardness_chen2011_gpa"],
                                                          r["hardness_exp_gpa"]) or np.nan
                                                 for r in hard])),
            "spearman": _spearman([r["hardness_chen2011_gpa"] or 0.0 for r in hard],
                                  [r["hardness_exp_gpa"] for r in hard])}
    mc = [r for r in rows if isinstance(r.get("matcalc"), dict) and "error" not in r["matcalc"]]
    if mc:
        summary["matcalc_comparison"] = {
            "formulas": [r["formula"] for r in mc],
            "bulk_ratio_matloop_over_matcalc": [r["bulk_modulus_vrh_gpa"]
                                                / r["matcalc"]["bulk_modulus_vrh_gpa"]
                                                for r in mc],
            "shear_ratio_matloop_over_matcalc": [r["shear_modulus_vrh_gpa"]
                                                 / r["matcalc"]["shear_modulus_vrh_gpa"]
                                                 for r in mc],
            "matcalc_wall_s": [r["matcalc"]["wall_time_s"] for r in mc],
            "note": "matcalc 0.7.0 ElasticityCalc defaults (normal ±0.5/1 %, shear ±3/6 %), "
                    "relax_deformed_structures=True, fmax 0.01, same calculator",
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlip", default="chgnet,sevenn",
                        help="comma-separated backends (first one: the headline)")
    parser.add_argument("--only", default=None, help="comma-separated formulas")
    parser.add_argument("--matcalc-mlip", default="chgnet",
                        help="backend to compare with matcalc ('' for none)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="evaluation cache (default: a fresh temporary file)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from matloop.materials.cache import EvaluationCache
    from matloop.materials.elastic import HARDNESS_MODELS

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    tmp = tempfile.TemporaryDirectory()
    cache = EvaluationCache(args.cache or Path(tmp.name) / "evaluations.sqlite")
    refs = [r for r in REFERENCES
            if args.only is None or r["formula"] in args.only.split(",")]
    t0 = time.perf_counter()
    results = {m: run_mlip(m, refs, cache, matcalc=m == args.matcalc_mlip)
               for m in args.mlip.split(",")}
    payload = {"mlips": list(results), "hardness_models": HARDNESS_MODELS,
               "hardness_model_default": "chen2011", "results": results,
               "reference_note": "B and G are Hill averages of the cited single-crystal "
                                 "constants; Hv values as tabulated in the cited papers. "
                                 + REFERENCE_CAVEAT,
               "wall_time_s": time.perf_counter() - t0}
    path = write_json("hardness", payload, args.out)
    print(f"wrote {path}")
    for mlip, res in results.items():
        for key, value in res["summary"].items():
            print(mlip, key, value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
