"""Shared helpers for the benchmarks: data location, peak-memory sampling, JSON output."""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from pymatgen.core import Composition

from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
MATBENCH = "hull/matbench_mp_e_form_compositions.csv.gz"
ROOST = "hull/mp_formation_energies_roost_2020.csv.gz"
ELEMENTS = "hull/mp_elemental_reference_entries_2023-02-07.json.gz"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class PeakMemory:
    """Samples the resident memory of this process and its children (MiB) in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._sample())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self.peak_mib = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


#: Packages whose versions decide the numbers.
VERSIONED = ("matloop", "torch", "chgnet", "sevenn", "pymatgen", "pyxtal", "langgraph",
             "langchain-core", "chromadb", "sentence-transformers", "scikit-learn", "numpy")


def _git_state() -> str:
    """Commit of the checkout the numbers came from, with '+dirty' for uncommitted changes."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty.strip() else "")


def versions() -> dict[str, str]:
    """Installed versions of the packages behind the numbers (absent ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"matloop_git": _git_state()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def cache_entries(path: Path) -> int:
    """Rows of an evaluation-cache SQLite file (0 when absent): the difference over a run is
    how many MLIP results it computed rather than read from the cache."""
    import sqlite3

    if not Path(path).exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def write_json(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    """Write a results file under evals/results (or ``out``) and return its path."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), "versions": versions(),
               "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def mp_formation_energies(data_dir: Path, *, chemsys: set[str] | None = None,
                          formulas: set[str] | None = None) -> dict[str, float]:
    """Lowest MP formation energy (eV/atom) per reduced formula of the matbench and roost files,
    put on the MP2020 scale; only formulas of the ``chemsys`` systems, or in ``formulas``.

    The matbench (MP 2018) and roost (MP 2019) files are on the legacy MP correction scheme;
    their values are converted here (see
    ``matloop.materials.energy_scale.legacy_mp_shift_ev_per_atom``), the scale of CHGNet and
    of the 2023 elemental entries. Without it Br, I, Se and Te compounds sit 0.15-0.3 eV/atom
    too high and sulfides and Fe/Co oxides 0.1-0.2 eV/atom too low against MLIP energies.
    """
    from matloop.materials.references import lowest_elemental_energies, read_computed_entries_json

    best: dict[str, float] = {}
    for name, fcol, ecol in ((MATBENCH, "formula", "target"),
                             (ROOST, "composition", "formation_energy_per_atom")):
        # keep_default_na=False: the formula "NaN" (sodium nitride) must stay a string.
        df = pd.read_csv(data_dir / name, keep_default_na=False)
        if chemsys is not None:
            systems = df[fcol].str.findall(r"[A-Z][a-z]?").map(lambda e: "-".join(sorted(set(e))))
            df = df[systems.isin(chemsys)]
        for formula, energy in zip(df[fcol], df[ecol], strict=True):
            try:
                key = Composition(formula).reduced_formula
            except Exception:  # noqa: BLE001 - a few rows are not formulas
                continue
            if formulas is None or key in formulas:
                best[key] = min(best.get(key, float("inf")), float(energy))
    mu = lowest_elemental_energies(read_computed_entries_json(data_dir / ELEMENTS))
    return {k: v + legacy_mp_shift_ev_per_atom(k, mu) for k, v in best.items()}


def _sub_systems(systems: list[str]) -> set[str]:
    return {"-".join(c) for s in systems for r in range(1, len(s.split("-")) + 1)
            for c in itertools.combinations(sorted(s.split("-")), r)}


def load_mp_phases(data_dir: Path, systems: list[str]) -> list[Any]:
    """MP formation energies (MP2020 scale, see :func:`mp_formation_energies`) and MP2020
    elemental entries of ``systems`` and their sub-systems, as reference phases."""
    from matloop.materials.references import ReferencePhase, read_computed_entries_json

    energies = mp_formation_energies(data_dir, chemsys=_sub_systems(systems))
    phases = [ReferencePhase(source="mp-e-form", source_id=rf, formula=rf,
                             energy_ev_per_atom=e, energy_kind="formation", energy_scale="mp2020",
                             meta={"converted_from": "mp-legacy"})
              for rf, e in sorted(energies.items())]
    elements = {e for s in systems for e in s.split("-")}
    for p in read_computed_entries_json(data_dir / ELEMENTS, source="mp-elements"):
        comp = p.composition
        if len(comp.elements) == 1 and comp.elements[0].symbol in elements:
            phases.append(p)
    return phases


def parse_subset(text: str, valid: tuple[str, ...], *, what: str = "approaches",
                 ) -> tuple[str, ...] | None:
    """Comma-separated names from a command line, in the given order; None (having said which
    are unknown) when some are not in ``valid``."""
    names = tuple(a.strip() for a in text.split(","))
    if unknown := set(names) - set(valid):
        print(f"unknown {what} {sorted(unknown)}; valid: {', '.join(valid)}", file=sys.stderr)
        return None
    return names


def parse_benchmark_args(parser: argparse.ArgumentParser,
                         argv: list[str] | None) -> argparse.Namespace | None:
    """Add ``--data`` and ``--out``, parse, and return None (having said why) when the shared
    MP data is not under ``--data``."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data / MATBENCH).exists():
        print(f"data not found under {args.data}; pass --data", file=sys.stderr)
        return None
    return args
