"""Materials Project composition energies shipped with the package: the default reference set.

The package carries, for every composition of two Materials Project formation-energy exports
(matbench_mp_e_form, MP 2018; the roost ``mp-formation`` file, MP about 2019), the lowest
formation energy per reduced formula, converted from the legacy MP correction scheme to the
MP2020 scale at build time (:func:`matloop.materials.energy_scale.legacy_mp_shift_ev_per_atom`),
with the mp-id where the roost file gives one, plus the MP2020 elemental reference energies
(matbench-discovery's 2023-02-07 elemental entries). The data is the Materials Project's
(CC BY 4.0; Jain et al., APL Mater. 1, 011002 (2013)); ``mp_references.json`` beside the table
records sources, commits, counts, the build command and a checksum.

Files (``matloop/data``):

* ``mp_compositions.csv.gz``: ``formula,chemsys,e_form_ev_per_atom,mp_id,origin`` (reduced
  formula, its chemical system, MP2020-scale formation energy in eV/atom, mp-id or empty,
  ``matbench`` or ``roost``);
* ``mp_references.json``: metadata and the elemental references.

Rebuild exactly with ``python -m matloop.materials.mp_pack --data ../shared/data`` (the
output is byte-identical for the same input files and package versions).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from matloop.errors import ReferenceDataError

TABLE = "mp_compositions.csv.gz"
META = "mp_references.json"
#: Source name of the shipped formation energies and elemental references in reference stores.
SOURCE = "mp-pack"
ELEMENT_SOURCE = "mp-pack-elements"
ATTRIBUTION = (
    "Materials Project data (CC BY 4.0): A. Jain et al., APL Materials 1, 011002 (2013). "
    "Formation energies from matbench_mp_e_form (A. Dunn et al., npj Comput. Mater. 6, 138 "
    "(2020); MP 2018) and the roost mp-formation set (R. Goodall and A. Lee, Nat. Commun. 11, "
    "6280 (2020); MP about 2019), converted to the MP2020 correction scheme; elemental "
    "references from matbench-discovery (J. Riebesell et al., 2023; MP 2023-02-07)."
)

_SYMBOL = re.compile(r"[A-Z][a-z]?")

# Input files (relative to a shared data directory) and where they came from.
_INPUTS = {
    "matbench": ("hull/matbench_mp_e_form_compositions.csv.gz", "formula", "target",
                 "anthony-wang/CrabNet@457b4d4835737ecbe4dd33e53174bd818bd82143:"
                 "data/matbench/mp_e_form.csv"),
    "roost": ("hull/mp_formation_energies_roost_2020.csv.gz", "composition",
              "formation_energy_per_atom",
              "CompRhys/roost@553aeb3883508e26bf1972faaed23fba8a5d8907:"
              "data/datasets/mp-formation.csv"),
}
_ELEMENTS_FILE = ("hull/mp_elemental_reference_entries_2023-02-07.json.gz",
                  "janosh/matbench-discovery@2c7f9fc42d018711dc2f5df573d225ea6d2d17b2:"
                  "data/mp/2023-02-07-mp-elemental-reference-entries.json.gz")


@dataclass(frozen=True)
class PackedComposition:
    """One shipped composition: reduced formula, MP2020 formation energy, mp-id, origin."""

    formula: str
    formation_energy_ev_per_atom: float
    mp_id: str | None
    origin: str

    @property
    def elements(self) -> list[str]:
        """Element symbols of the formula."""
        return sorted(set(_SYMBOL.findall(self.formula)))


def chemsys_of_formula(formula: str) -> str:
    """Sorted element symbols of a formula joined by '-' (string parsing only)."""
    return "-".join(sorted(set(_SYMBOL.findall(formula))))


class MPCompositionSet:
    """The shipped MP composition energies, indexed by reduced formula and chemical system.

    Load with :func:`mp_compositions` (cached per process). Rows are kept as tuples and turned
    into :class:`PackedComposition` only when asked for; no pymatgen object is built here.
    """

    def __init__(self, rows: Iterable[tuple[str, str, float, str | None, str]],
                 meta: dict[str, Any]) -> None:
        self.meta = meta
        self._rows: dict[str, tuple[float, str | None, str]] = {}
        self.by_chemsys: dict[str, list[str]] = {}
        for formula, system, energy, mp_id, origin in rows:
            self._rows[formula] = (energy, mp_id, origin)
            self.by_chemsys.setdefault(system, []).append(formula)
        self.elements: dict[str, dict[str, Any]] = dict(meta.get("elements", {}))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, reduced_formula: object) -> bool:
        return reduced_formula in self._rows

    @property
    def formulas(self) -> Iterable[str]:
        """Every shipped reduced formula."""
        return self._rows.keys()

    def get(self, reduced_formula: str) -> PackedComposition | None:
        """The shipped entry of a reduced formula (pymatgen spelling), or None."""
        row = self._rows.get(reduced_formula)
        return None if row is None else PackedComposition(reduced_formula, *row)

    def in_systems(self, systems: Iterable[str]) -> list[PackedComposition]:
        """Entries whose chemical system is one of ``systems`` (sorted '-'-joined symbols)."""
        return [PackedComposition(f, *self._rows[f]) for s in systems
                for f in self.by_chemsys.get(s, [])]

    def content_sha256(self) -> str:
        """Checksum of the content (``formula,energy`` lines, sorted), independent of the file
        layout: what models trained on the set record."""
        import hashlib

        return hashlib.sha256("\n".join(f"{f},{self._rows[f][0]:.4f}"
                                        for f in sorted(self._rows)).encode()).hexdigest()

    def describe(self) -> str:
        """One line for reports: what the set is and how big."""
        return (f"{len(self):,} Materials Project compositions (formation energies on the MP2020 "
                f"scale) and {len(self.elements)} MP2020 elemental references, shipped with "
                f"matloop")


def _data_dir() -> Any:
    return resources.files("matloop.data")


@lru_cache(maxsize=1)
def mp_compositions() -> MPCompositionSet:
    """The shipped set (loaded once per process, about 0.3 s).

    Raises:
        ReferenceDataError: The package data is missing (a broken installation).
    """
    folder = _data_dir()
    try:
        meta = json.loads(folder.joinpath(META).read_text())
        raw = folder.joinpath(TABLE).read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise ReferenceDataError(
            f"the shipped Materials Project references are missing ({exc})",
            hint="reinstall matloop, or rebuild them with "
                 "`python -m matloop.materials.mp_pack --data ../shared/data`") from exc
    reader = csv.reader(io.StringIO(gzip.decompress(raw).decode()))
    next(reader)
    return MPCompositionSet(((f, c, float(e), m or None, o) for f, c, e, m, o in reader), meta)


# ---------------------------------------------------------------------------------------------
# Build (from the shared data files; not needed at run time)


def _lowest_per_formula(path: Path, fcol: str, ecol: str, id_col: str | None,
                        ) -> dict[str, tuple[float, str | None]]:
    import pandas as pd
    from pymatgen.core import Composition

    # keep_default_na=False: the formula "NaN" (sodium nitride) must stay a string.
    df = pd.read_csv(path, keep_default_na=False)
    best: dict[str, tuple[float, str | None]] = {}
    reduced: dict[str, str | None] = {}
    ids = df[id_col] if id_col else [None] * len(df)
    for formula, energy, mp_id in zip(df[fcol], df[ecol], ids, strict=True):
        if formula not in reduced:
            try:
                reduced[formula] = Composition(formula).reduced_formula
            except Exception:  # noqa: BLE001 - a few rows are not formulas; they are counted
                reduced[formula] = None
        key = reduced[formula]
        if key is None:
            continue
        if key not in best or float(energy) < best[key][0]:
            best[key] = (float(energy), str(mp_id) if mp_id else None)
    return best


def _shifts(formulas: list[str], mu: dict[str, float], workers: int) -> dict[str, float]:
    from concurrent.futures import ProcessPoolExecutor

    chunks = [formulas[i::max(1, workers)] for i in range(max(1, workers))]
    out: dict[str, float] = {}
    if workers <= 1:
        out.update(_shift_chunk(formulas, mu))
        return out
    with ProcessPoolExecutor(workers) as pool:
        for part in pool.map(_shift_chunk, chunks, [mu] * len(chunks)):
            out.update(part)
    return out


def _shift_chunk(formulas: list[str], mu: dict[str, float]) -> dict[str, float]:
    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

    out: dict[str, float] = {}
    for f in formulas:
        try:
            out[f] = legacy_mp_shift_ev_per_atom(f, mu)
        except ReferenceDataError:
            continue  # MP2020 rejects the composition: it is left out and counted
    return out


def table_bytes(rows: dict[str, tuple[float, str | None, str]]) -> bytes:
    """The table's CSV text: formula, chemical system, energy (4 decimals), mp-id, origin."""
    lines = ["formula,chemsys,e_form_ev_per_atom,mp_id,origin"]
    for formula in sorted(rows):
        energy, mp_id, origin = rows[formula]
        lines.append(f"{formula},{chemsys_of_formula(formula)},{energy:.4f},{mp_id or ''},"
                     f"{origin}")
    return ("\n".join(lines) + "\n").encode()


def build(data: Path, out: Path, *, workers: int = 2) -> dict[str, Any]:
    """Write the shipped table and metadata from the shared data files; returns the metadata."""
    from pymatgen.entries.computed_entries import ComputedEntry

    started = time.perf_counter()
    matbench = _lowest_per_formula(data / _INPUTS["matbench"][0], "formula", "target", None)
    roost = _lowest_per_formula(data / _INPUTS["roost"][0], "composition",
                                "formation_energy_per_atom", "task_id")
    with gzip.open(data / _ELEMENTS_FILE[0], "rt", encoding="utf-8") as handle:
        entries = [ComputedEntry.from_dict(d) for d in json.load(handle).values()]
    mu: dict[str, float] = {}
    elements: dict[str, dict[str, Any]] = {}
    for e in entries:
        el = e.composition.elements[0].symbol
        if el not in mu or e.energy_per_atom < mu[el]:
            mu[el] = float(e.energy_per_atom)
            mp_id = str(e.entry_id).split("-GGA")[0].split("-r2SCAN")[0]
            elements[el] = {"energy_per_atom_ev": round(mu[el], 6), "mp_id": mp_id}
    merged: dict[str, tuple[float, str | None, str]] = {}
    for formula in sorted(set(matbench) | set(roost)):
        m, r = matbench.get(formula), roost.get(formula)
        if m is not None and (r is None or m[0] <= r[0]):
            merged[formula] = (m[0], r[1] if r else None, "matbench")
        else:
            assert r is not None
            merged[formula] = (r[0], r[1], "roost")
    # single elements are references at zero, not compounds
    compounds = [f for f in merged if len(set(_SYMBOL.findall(f))) > 1]
    shifts = _shifts(compounds, mu, workers)
    rejected = sorted(set(compounds) - set(shifts))
    payload = table_bytes({f: (merged[f][0] + shifts[f], merged[f][1], merged[f][2])
                           for f in shifts})
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as handle:
        handle.write(payload)
    (out / TABLE).write_bytes(buffer.getvalue())
    meta = {
        "name": "mp-2020-compositions",
        "description": "Lowest formation energy per reduced formula, MP2020 correction scheme",
        "attribution": ATTRIBUTION,
        "licence": "CC BY 4.0 (Materials Project data)",
        "energy_scale": "mp2020",
        "units": {"e_form_ev_per_atom": "eV/atom", "energy_per_atom_ev": "eV/atom"},
        "inputs": {k: {"file": v[0], "upstream": v[3]} for k, v in _INPUTS.items()} | {
            "elements": {"file": _ELEMENTS_FILE[0], "upstream": _ELEMENTS_FILE[1]}},
        "conversion": "legacy MP corrections -> MP2020 with "
                      "matloop.materials.energy_scale.legacy_mp_shift_ev_per_atom",
        "counts": {"matbench_formulas": len(matbench), "roost_formulas": len(roost),
                   "compositions": len(shifts), "with_mp_id": sum(
                       1 for f in shifts if merged[f][1]),
                   "from_matbench": sum(1 for f in shifts if merged[f][2] == "matbench"),
                   "from_roost": sum(1 for f in shifts if merged[f][2] == "roost"),
                   "rejected_by_mp2020": len(rejected)},
        "rejected_by_mp2020": rejected[:50],
        "mp_id_note": "mp_id is the roost file's entry of that formula; where origin is "
                      "matbench the energy is matbench's (lowest polymorph) and the id names an "
                      "MP entry of the same composition",
        "sha256": hashlib.sha256(payload).hexdigest(),
        "build": "python -m matloop.materials.mp_pack --data ../shared/data",
        "elements": dict(sorted(elements.items())),
    }
    (out / META).write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    meta["build_seconds"] = round(time.perf_counter() - started, 1)
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: rebuild the shipped tables from a shared data directory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="shared data directory")
    parser.add_argument("--out", type=Path, default=Path(str(_data_dir())),
                        help="output folder (default: the installed matloop/data)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.data / _INPUTS["matbench"][0]).exists():
        print(f"{args.data}: no {_INPUTS['matbench'][0]}", file=sys.stderr)
        return 2
    meta = build(args.data, args.out, workers=args.workers)
    print(json.dumps({k: meta[k] for k in ("counts", "sha256", "build_seconds")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
