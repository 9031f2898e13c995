"""Property surrogates benchmark: band gap from composition and from structure.

1. matbench_expt_gap (4,604 experimental gaps, compositions only; Zhuo et al. 2018, Dunn et
   al. 2020): 5-fold cross-validation of the composition surrogate, MAE and R², set against
   the matbench leaderboard.
2. Perov-5 (CDVAE split of Castelli et al. 2012; direct gap ``dir_gap`` in eV): train on the
   ``val`` split, predict the held-out ``test`` split, with composition features, CHGNet
   crystal features and both. CHGNet feature extraction is timed separately.
3. Interval calibration: share of held-out values inside the 68% and 95% intervals.
4. Training and prediction times on this machine.

Nothing is saved to the user's model directory. Run from the repository root::

    .venv/bin/python -m evals.surrogates [--max-structures N] [--folds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.common import DEFAULT_DATA, PeakMemory, write_json
from matloop.surrogates import evaluate, read_table, train_surrogate
from matloop.surrogates.features import clear_caches, composition_features, structure_features
from matloop.surrogates.table import Table

EXPT_GAP = "experimental/matbench_expt_gap_compositions.csv.gz"
PEROV_TRAIN = "crystals/perov_5_val.csv.gz"
PEROV_TEST = "crystals/perov_5_test.csv.gz"

#: matbench_expt_gap reference points (eV). MAD from matbench_v0.1_dataset_metadata.json; the
#: leaderboard figures are the rounded values this benchmark was specified against (best
#: published models around 0.3 eV, a random forest on Magpie features around 0.4 eV).
MATBENCH_EXPT_GAP = {"mad_ev": 1.1432, "best_published_mae_ev_approx": 0.3,
                     "rf_magpie_baseline_mae_ev_approx": 0.4}


def _round(d: Any, nd: int = 4) -> Any:
    if isinstance(d, float):
        return round(d, nd)
    if isinstance(d, dict):
        return {k: _round(v, nd) for k, v in d.items()}
    if isinstance(d, list):
        return [_round(v, nd) for v in d]
    return d


def _subset(table: Table, n: int | None, seed: int) -> Table:
    if n is None or n >= len(table.inputs):
        return table
    idx = sorted(random.Random(seed).sample(range(len(table.inputs)), n))
    assert table.targets is not None
    return Table(inputs=[table.inputs[i] for i in idx], input_column=table.input_column,
                 input_kind=table.input_kind, source=f"{table.source} (random {n}, seed {seed})",
                 targets=table.targets[idx], target_column=table.target_column,
                 data_sha256=f"{table.data_sha256}:random{n}:seed{seed}", columns=table.columns)


def expt_gap(data: Path, *, folds: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    table = read_table(data / EXPT_GAP, target="gap_expt_eV")
    read_s = time.perf_counter() - t0
    model = train_surrogate("band_gap", table, features="composition", folds=folds, seed=seed,
                            save=False)
    cv = model.card["metrics"]["cv"]
    t0 = time.perf_counter()
    model.predict(["GaN"])
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.predict(table.inputs)  # features cached: the model's own cost per input
    batch_s = time.perf_counter() - t0
    size_mb, load_s = _save_and_load(model)
    return {
        "data": EXPT_GAP, "rows": len(table.inputs), "folds": folds, "seed": seed,
        "split_note": "KFold(shuffle=True, random_state=seed) on the file's row order; "
                      "not matbench's official fold assignment",
        "cv": cv, "calibration": model.card["calibration"],
        "reference": MATBENCH_EXPT_GAP,
        "timings_s": {"read": read_s, **model.card["timings_s"],
                      "predict_one": single_s, "predict_all_rows_featurized": batch_s,
                      "load_saved_model": load_s},
        "model_file_mb": size_mb,
    }


def _save_and_load(model: Any) -> tuple[float, float]:
    """Size of the saved model files (MB) and the time to load them, in a throwaway data dir."""
    from matloop.config import get_settings
    from matloop.surrogates import load_surrogate
    from matloop.surrogates.store import models_dir, save_surrogate

    old = os.environ.get("MATLOOP_DATA_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MATLOOP_DATA_DIR"] = tmp
        get_settings.cache_clear()
        try:
            save_surrogate(model)
            size = sum(p.stat().st_size for p in models_dir().iterdir()) / 1e6
            t0 = time.perf_counter()
            load_surrogate(model.name)
            return size, time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("MATLOOP_DATA_DIR", None)
            else:
                os.environ["MATLOOP_DATA_DIR"] = old
            get_settings.cache_clear()


def perov(data: Path, *, folds: int, seed: int, max_structures: int | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    train = _subset(read_table(data / PEROV_TRAIN, target="dir_gap"), max_structures, seed)
    test = _subset(read_table(data / PEROV_TEST, target="dir_gap"), max_structures, seed + 1)
    read_s = time.perf_counter() - t0
    assert train.targets is not None and test.targets is not None

    clear_caches()
    from matloop.materials.mlip import get_mlip

    t0 = time.perf_counter()
    get_mlip("chgnet")
    load_s = time.perf_counter() - t0
    extraction = {"mlip_load_s": load_s}
    for name, table in (("train", train), ("test", test)):
        t0 = time.perf_counter()
        structure_features(table.inputs)
        elapsed = time.perf_counter() - t0
        extraction[f"{name}_structures"] = len(table.inputs)
        extraction[f"{name}_s"] = elapsed
        extraction[f"{name}_ms_per_structure"] = 1000 * elapsed / len(table.inputs)
    t0 = time.perf_counter()
    composition_features(train.inputs + test.inputs)
    extraction["composition_features_s"] = time.perf_counter() - t0

    y = test.targets
    nonzero = y > 0
    out: dict[str, Any] = {
        "train": {"file": PEROV_TRAIN, "rows": len(train.inputs),
                  "nonzero_gap_fraction": float((train.targets > 0).mean())},
        "test": {"file": PEROV_TEST, "rows": len(test.inputs),
                 "nonzero_gap_fraction": float(nonzero.mean())},
        "max_structures": max_structures,
        "feature_extraction": extraction,
        "baselines_test": {"predict_zero_mae": float(np.abs(y).mean()),
                           "predict_train_mean_mae": float(np.abs(y - train.targets.mean())
                                                           .mean())},
        "models": {},
    }
    for kind in ("composition", "structure", "both"):
        t0 = time.perf_counter()
        model = train_surrogate("band_gap", train, features=kind, folds=folds, seed=seed,
                                save=False)
        train_s = time.perf_counter() - t0
        metrics, preds = evaluate(model, test)
        value = np.array([p.value for p in preds])
        lo68 = np.array([p.interval_68[0] for p in preds])
        hi68 = np.array([p.interval_68[1] for p in preds])
        lo95 = np.array([p.interval_95[0] for p in preds])
        hi95 = np.array([p.interval_95[1] for p in preds])
        gap = {"n": int(nonzero.sum()),
               "mae": float(np.abs(value - y)[nonzero].mean()),
               "coverage_68": float(((y >= lo68) & (y <= hi68))[nonzero].mean()),
               "coverage_95": float(((y >= lo95) & (y <= hi95))[nonzero].mean())}
        metal = ~nonzero
        out["models"][kind] = {
            "cv_on_train": model.card["metrics"]["cv"],
            "held_out": metrics,
            "held_out_gap_above_zero": gap,
            "held_out_zero_gap": {"n": int(metal.sum()),
                                  "mae": float(np.abs(value - y)[metal].mean()),
                                  "predicted_below_0.1_ev": float((value[metal] < 0.1).mean())},
            "train_s_with_cached_features": train_s,
            "timings_s": model.card["timings_s"],
        }
    out["timings_s"] = {"read": read_s}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-structures", type=int, default=None,
                        help="random subset of each Perov-5 split (default: all rows)")
    parser.add_argument("--skip-structures", action="store_true",
                        help="only the composition benchmark")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data_dir / EXPT_GAP).is_file():
        raise SystemExit(f"data not found under {args.data_dir} (see shared/data/MANIFEST.md)")

    payload: dict[str, Any] = {}
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        payload["expt_gap"] = expt_gap(args.data_dir, folds=args.folds, seed=args.seed)
        _print_expt(payload["expt_gap"])
        if not args.skip_structures:
            payload["perov5_dir_gap"] = perov(args.data_dir, folds=args.folds, seed=args.seed,
                                              max_structures=args.max_structures)
            _print_perov(payload["perov5_dir_gap"])
        payload["wall_s"] = time.perf_counter() - t0
    payload["peak_memory_mib"] = mem.peak_mib
    path = write_json("surrogates", _round(payload), args.out)
    print(f"\nwall time {payload['wall_s']:.0f} s, peak memory {mem.peak_mib:.0f} MiB; "
          f"wrote {path}")
    return payload


def _print_expt(r: dict[str, Any]) -> None:
    cv, ref, t = r["cv"], r["reference"], r["timings_s"]
    print(f"== band gap from composition: matbench_expt_gap, {r['rows']} rows, "
          f"{r['folds']}-fold CV ==")
    print(f"MAE {cv['mae']:.3f} eV  RMSE {cv['rmse']:.3f} eV  R² {cv['r2']:.3f}  "
          f"(predict-the-mean MAE {cv['baseline_mae']:.3f}; matbench MAD {ref['mad_ev']})")
    print(f"leaderboard: best published ~{ref['best_published_mae_ev_approx']} eV, "
          f"RF on Magpie ~{ref['rf_magpie_baseline_mae_ev_approx']} eV")
    print(f"coverage of 68% intervals {cv['coverage_68']:.1%}, of 95% {cv['coverage_95']:.1%} "
          f"(each fold calibrated on the others)")
    print(f"time: features {t['composition_features_s']:.1f} s, CV {t['cv_s']:.1f} s, "
          f"final fit {t['fit_s']:.1f} s, total {t['total_s']:.1f} s; predict one formula "
          f"{1000 * t['predict_one']:.0f} ms, {r['rows']} featurized rows "
          f"{t['predict_all_rows_featurized']:.1f} s; model files {r['model_file_mb']:.1f} MB, "
          f"load {t['load_saved_model']:.1f} s")


def _print_perov(r: dict[str, Any]) -> None:
    ex, base = r["feature_extraction"], r["baselines_test"]
    print(f"\n== band gap (dir_gap) from structure: Perov-5, train {r['train']['rows']} "
          f"(val split), held-out {r['test']['rows']} (test split) ==")
    print(f"gap > 0 in {r['test']['nonzero_gap_fraction']:.1%} of held-out cells; "
          f"predict-zero MAE {base['predict_zero_mae']:.3f} eV, predict-train-mean MAE "
          f"{base['predict_train_mean_mae']:.3f} eV")
    print(f"CHGNet crystal features: load {ex['mlip_load_s']:.1f} s; train "
          f"{ex['train_structures']} in {ex['train_s']:.0f} s "
          f"({ex['train_ms_per_structure']:.0f} ms each), test {ex['test_structures']} in "
          f"{ex['test_s']:.0f} s; composition features {ex['composition_features_s']:.1f} s")
    for kind, m in r["models"].items():
        h, g, z = m["held_out"], m["held_out_gap_above_zero"], m["held_out_zero_gap"]
        print(f"{kind:12s} held-out MAE {h['mae']:.3f} eV  R² {h['r2']:.3f}  coverage 68% "
              f"{h['coverage_68']:.1%} 95% {h['coverage_95']:.1%} | gap>0 (n={g['n']}): MAE "
              f"{g['mae']:.3f}, coverage 68% {g['coverage_68']:.1%} 95% {g['coverage_95']:.1%}"
              f" | zero gap: MAE {z['mae']:.3f} | in domain {h['in_domain_fraction']:.1%} | "
              f"CV MAE {m['cv_on_train']['mae']:.3f} | train "
              f"{m['train_s_with_cached_features']:.1f} s, predict {h['predict_s']:.1f} s")


if __name__ == "__main__":
    main()
