"""The experimental band-gap table that ships with matloop, and the command that rebuilds it.

``matloop/data/band_gap_expt.csv.gz`` holds one row per reduced formula: the measured gap
(eV) from matbench_expt_gap and the metal / non-metal label from matbench_expt_is_metal.
Both come from the experimental band gaps collected by Zhuo, Mansouri Tehrani and Brgoch,
J. Phys. Chem. Lett. 9, 1668 (2018), as cleaned for Matbench v0.1 (Dunn et al., npj Comput.
Mater. 6, 138 (2020)): compositions whose reports spanned more than 0.1 eV were dropped
from the gap table, so well-studied compounds such as GaAs, ZnO or BaTiO3 appear only in
the metal / non-metal table. ``band_gap_expt.json`` beside it names the sources, licences,
citations and checksums.

Rebuild both files, byte for byte, from the shared data::

    python -m matloop.surrogates.band_gap_data --data ../shared/data --out src/matloop/data
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pymatgen.core import Composition

from matloop.errors import MatloopError

CSV_NAME = "band_gap_expt.csv.gz"
META_NAME = "band_gap_expt.json"
GAP_FILE = "experimental/matbench_expt_gap_compositions.csv.gz"
METAL_FILE = "experimental/matbench_expt_is_metal_compositions.csv.gz"
#: Short citation used in sources and reports.
CITATION = "Zhuo et al. 2018"
#: How measured values are labelled in predictions.
MEASURED_SOURCE = ("experiment: Zhuo et al., J. Phys. Chem. Lett. 9, 1668 (2018), "
                   "via matbench_expt_gap")
METAL_SOURCE = ("experiment: Zhuo et al., J. Phys. Chem. Lett. 9, 1668 (2018), "
                "via matbench_expt_is_metal")

_METADATA: dict[str, Any] = {
    "name": "band_gap_expt",
    "description": (
        "Experimental band gaps (eV) and metal / non-metal labels of inorganic compounds, one "
        "row per reduced formula. gap_ev is empty where only the label is known: Matbench "
        "dropped from the gap table every composition whose reported gaps spanned more than "
        "0.1 eV, and kept it in the metal / non-metal table."),
    "columns": {
        "formula": "reduced formula (pymatgen Composition.reduced_formula)",
        "gap_ev": "measured band gap, eV (0 for metals); empty when not tabulated",
        "is_metal": "1 metal, 0 non-metal (measured)",
    },
    "sources": [
        {"file": GAP_FILE, "dataset": "matbench_expt_gap (Matbench v0.1)",
         "obtained_from": "github.com/anthony-wang/CrabNet @ 457b4d4835737ecbe4dd33e53174bd81"
                          "8bd82143 : data/matbench/expt_gap.csv"},
        {"file": METAL_FILE, "dataset": "matbench_expt_is_metal (Matbench v0.1)",
         "obtained_from": "github.com/anthony-wang/CrabNet @ 457b4d4835737ecbe4dd33e53174bd81"
                          "8bd82143 : data/matbench/expt_is_metal.csv"},
    ],
    "citations": [
        "Y. Zhuo, A. Mansouri Tehrani, J. Brgoch, Predicting the Band Gaps of Inorganic Solids "
        "by Machine Learning, J. Phys. Chem. Lett. 9, 1668-1673 (2018), "
        "doi:10.1021/acs.jpclett.8b00124",
        "A. Dunn, Q. Wang, A. Ganose, D. Dopp, A. Jain, Benchmarking materials property "
        "prediction methods: the Matbench test set and Automatminer reference algorithm, npj "
        "Comput. Mater. 6, 138 (2020), doi:10.1038/s41524-020-00406-3",
    ],
    "licence": {
        "summary": "MIT (as redistributed by Matbench and CrabNet); cite Zhuo et al. 2018 and "
                   "Dunn et al. 2020",
        "findings": [
            "The values were published in the supporting information of Zhuo et al. 2018 "
            "(ACS); that article states no data licence.",
            "Matbench (github.com/materialsproject/matbench) and CrabNet "
            "(github.com/anthony-wang/CrabNet), which redistribute the cleaned tables, are "
            "MIT licensed; matminer's dataset_metadata.json lists the two tables with their "
            "citations and no separate licence.",
            "What ships here is a compact factual derivative (reduced formula, measured gap, "
            "metal label) with attribution.",
        ],
    },
    "rebuild": ("python -m matloop.surrogates.band_gap_data --data ../shared/data "
                "--out src/matloop/data"),
}


@dataclass(frozen=True)
class ExperimentalGaps:
    """The shipped table: rows in file order, and a lookup by composition."""

    formulas: tuple[str, ...]
    gaps_ev: tuple[float | None, ...]
    is_metal: tuple[bool, ...]
    sha256: str

    def index(self) -> dict[str, int]:
        """Row index by composition key (see :func:`composition_key`)."""
        return {composition_key(f): i for i, f in enumerate(self.formulas)}

    def __len__(self) -> int:
        return len(self.formulas)


def composition_key(formula: str | Composition) -> str:
    """Canonical key of a composition: elements and atomic fractions, sorted.

    ``Ag(AuS)2``, ``AgAu2S2`` and ``Ag2Au4S4`` share one key.
    """
    comp = formula if isinstance(formula, Composition) else Composition(formula)
    amounts = comp.get_el_amt_dict()
    total = sum(amounts.values())
    return ",".join(f"{el}:{amounts[el] / total:.6f}" for el in sorted(amounts))


def _read_rows(path: Path, column: str) -> dict[str, tuple[str, float]]:
    """Reduced formula -> (original formula, value), keeping the formula 'NaN' as text."""
    if not path.is_file():
        raise MatloopError(f"{path}: no such file",
                           hint="pass --data pointing at the shared data folder")
    out: dict[str, tuple[str, float]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            reduced = Composition(row["formula"]).reduced_formula
            if reduced in out:
                raise MatloopError(f"{path}: {reduced} appears twice",
                                   hint="the Matbench tables have one row per composition")
            out[reduced] = (row["formula"], float(row[column]))
    return out


def build_table(data: Path) -> tuple[bytes, dict[str, Any]]:
    """CSV text (gzip-compressed, reproducible bytes) and metadata from the shared files."""
    gaps = _read_rows(data / GAP_FILE, "gap_expt_eV")
    metals = _read_rows(data / METAL_FILE, "is_metal")
    for reduced, (_, gap) in gaps.items():
        label = metals.get(reduced)
        if label is not None and bool(label[1]) != (gap == 0.0):
            raise MatloopError(f"{reduced}: gap {gap} eV but is_metal={label[1]:g}",
                               hint="the two tables disagree; check the source files")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["formula", "gap_ev", "is_metal"])
    only_label = 0
    for reduced in sorted(set(gaps) | set(metals)):
        if reduced in gaps:
            gap = gaps[reduced][1]
            writer.writerow([reduced, repr(gap), int(gap == 0.0)])
        else:
            only_label += 1
            writer.writerow([reduced, "", int(metals[reduced][1])])
    raw = text.getvalue().encode()
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    meta = json.loads(json.dumps(_METADATA))
    for src in meta["sources"]:
        src["sha256"] = hashlib.sha256((data / src["file"]).read_bytes()).hexdigest()
    meta["rows"] = {"total": len(set(gaps) | set(metals)), "with_gap": len(gaps),
                    "metal_label_only": only_label,
                    "metals": sum(1 for _, v in metals.values() if v)}
    meta["csv_sha256"] = hashlib.sha256(raw).hexdigest()
    return packed, meta


@lru_cache(maxsize=1)
def load_table() -> ExperimentalGaps:
    """Read the shipped table (once per process)."""
    raw = gzip.decompress(resources.files("matloop.data").joinpath(CSV_NAME).read_bytes())
    formulas, gaps, metal = [], [], []
    for row in csv.DictReader(io.StringIO(raw.decode())):
        formulas.append(row["formula"])
        gaps.append(float(row["gap_ev"]) if row["gap_ev"] else None)
        metal.append(row["is_metal"] == "1")
    return ExperimentalGaps(tuple(formulas), tuple(gaps), tuple(metal),
                            hashlib.sha256(raw).hexdigest())


def load_metadata() -> dict[str, Any]:
    """Read the shipped metadata (sources, licence, citations, rebuild command)."""
    return json.loads(resources.files("matloop.data").joinpath(META_NAME).read_text())


def main(argv: list[str] | None = None) -> int:
    """Rebuild the shipped table from the shared data folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="shared data folder (holds experimental/matbench_expt_*.csv.gz)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    packed, meta = build_table(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / CSV_NAME).write_bytes(packed)
    (args.out / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out / CSV_NAME} ({len(packed)} bytes, {meta['rows']['total']} rows) "
          f"and {args.out / META_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
