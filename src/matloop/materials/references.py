"""Local store of known phases: compositions, energies, structures and where they came from.

One SQLite table holds every reference phase. A phase has a structure (to be evaluated with
an MLIP), an energy on a named scale, or both:

* ``energy_kind='formation'``, ``energy_scale='mp2020'``: DFT formation energy per atom with
  MP2020 corrections (Materials Project, or a CSV exported from it).
* ``energy_kind='total'``, ``energy_scale='mp2020'``: corrected DFT total energy per atom
  (elemental references from pymatgen ComputedEntry JSON or mp-api).
* structure only: built-in starter library and imported CIFs; their energies come from the
  MLIP (through the evaluation cache) when a hull needs them.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pymatgen.core import Composition, Element, Structure

from matloop.errors import MatloopError, ReferenceDataError, StructureInputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS phases (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    formula TEXT NOT NULL,
    reduced_formula TEXT NOT NULL,
    chemsys TEXT NOT NULL,
    energy_ev_per_atom REAL,
    energy_kind TEXT,
    energy_scale TEXT,
    structure TEXT,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS phases_source ON phases(source, source_id);
CREATE INDEX IF NOT EXISTS phases_chemsys ON phases(chemsys);
CREATE TABLE IF NOT EXISTS held_out (
    reduced_formula TEXT PRIMARY KEY,
    reason TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class ReferencePhase:
    """One known phase."""

    source: str
    source_id: str
    formula: str
    energy_ev_per_atom: float | None = None
    energy_kind: str | None = None
    energy_scale: str | None = None
    structure: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None

    @property
    def composition(self) -> Composition:
        """The phase's composition."""
        return Composition(self.formula)

    @property
    def chemsys(self) -> str:
        """Sorted element symbols joined by '-'."""
        return chemsys_of(self.composition)

    def get_structure(self) -> Structure | None:
        """The structure, when the phase has one."""
        return None if self.structure is None else Structure.from_dict(self.structure)


def chemsys_of(composition: Composition) -> str:
    """Chemical system string, e.g. 'Fe-Li-O'."""
    return "-".join(sorted(el.symbol for el in composition.elements))


def parse_composition(formula: str) -> Composition:
    """Composition from a formula, with a clear error for nonsense or unknown elements."""
    try:
        comp = Composition(formula)
    except Exception as exc:
        raise MatloopError(
            f"cannot read formula {formula!r} ({exc})",
            hint="write formulas like LiFePO4 or Fe2O3 with real element symbols",
        ) from exc
    unknown = [str(el) for el in comp.elements if not Element.is_valid_symbol(str(el.symbol))]
    if unknown:
        raise MatloopError(
            f"formula {formula!r} has unknown element(s) {', '.join(unknown)}",
            hint="use real element symbols with correct capitalisation, e.g. Co not CO",
        )
    if comp.num_atoms <= 0:
        raise MatloopError(f"formula {formula!r} has no atoms")
    return comp


def sub_chemsys(elements: Iterable[str]) -> list[str]:
    """All chemical systems made of a non-empty subset of ``elements``."""
    els = sorted(set(elements))
    return ["-".join(c) for r in range(1, len(els) + 1) for c in itertools.combinations(els, r)]


class ReferenceStore:
    """Reference phases: a user's SQLite store plus, by default, the shipped MP references.

    Args:
        path: SQLite file of the user's phases (imports, fetched MP entries, the starter
            library's structures).
        shipped: Also answer with the Materials Project composition energies and MP2020
            elemental references shipped with matloop (:mod:`matloop.materials.mp_pack`),
            read-only and never copied into the SQLite file. Held-out formulas are hidden from
            both.
    """

    def __init__(self, path: str | Path, *, shipped: bool = True) -> None:
        from matloop.materials.cache import open_sqlite

        self.path = Path(path)
        self.shipped = shipped
        self._lock = threading.Lock()
        self._conn = open_sqlite(self.path, _SCHEMA)

    @classmethod
    def from_settings(cls, settings: Any = None) -> ReferenceStore:
        """The store of the settings' data directory, with the shipped MP set when the settings
        enable it (``MATLOOP_MP_REFERENCES``, on by default)."""
        if settings is None:
            from matloop.config import get_settings

            settings = get_settings()
        return cls(settings.reference_path, shipped=settings.mp_references)

    def shipped_set(self) -> Any:
        """The shipped MP composition set when it is active (None otherwise)."""
        if not self.shipped:
            return None
        from matloop.materials.mp_pack import mp_compositions

        return mp_compositions()

    # -- writing ---------------------------------------------------------------------------
    def add(self, phases: Iterable[ReferencePhase]) -> int:
        """Insert or replace phases (unique by source and source_id); returns how many.

        Phases of a held-out formula (:meth:`hold_out`) are skipped and not counted.
        """
        held = self.held_out()
        phases = [p for p in phases if p.composition.reduced_formula not in held]
        rows = [
            (
                p.source, p.source_id, p.formula, p.composition.reduced_formula, p.chemsys,
                p.energy_ev_per_atom, p.energy_kind, p.energy_scale,
                None if p.structure is None else json.dumps(p.structure),
                json.dumps(p.meta or {}),
            )
            for p in phases
        ]
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO phases (source, source_id, formula, reduced_formula, "
                "chemsys, energy_ev_per_atom, energy_kind, energy_scale, structure, meta) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._conn.commit()
        return len(rows)

    def ensure_starter_library(self) -> int:
        """Add the built-in starter library (structures only) if absent; returns its size."""
        with self._lock:
            have = self._conn.execute(
                "SELECT COUNT(*) FROM phases WHERE source = 'starter'"
            ).fetchone()[0]
        held = self.held_out()
        entries = [p for p in starter_phases() if p.composition.reduced_formula not in held]
        if have != len(entries):
            self.add(entries)
        return len(entries)

    def hold_out(self, formulas: Iterable[str], *, reason: str = "") -> int:
        """Remove every phase of these compositions and keep them out of later imports.

        For blind tests: a benchmark holds out known compounds and asks whether a campaign
        finds them again. Matching is by reduced formula (every polymorph goes). Returns how
        many phases were removed.
        """
        reduced = sorted({parse_composition(f).reduced_formula for f in formulas})
        with self._lock:
            self._conn.executemany("INSERT OR REPLACE INTO held_out (reduced_formula, reason) "
                                   "VALUES (?, ?)", [(f, reason) for f in reduced])
            removed = self._conn.execute(
                f"DELETE FROM phases WHERE reduced_formula IN ({','.join('?' * len(reduced))})",
                reduced).rowcount
            self._conn.commit()
        return int(removed)

    def held_out(self) -> set[str]:
        """Reduced formulas held out of this store (see :meth:`hold_out`)."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT reduced_formula FROM held_out")}

    # -- reading ---------------------------------------------------------------------------
    def phases(self, elements: Iterable[str], *, with_structure: bool | None = None,
               energy_kind: str | None = None, energy_scale: str | None = None,
               ) -> list[ReferencePhase]:
        """Phases whose elements all lie within ``elements`` (every sub-system included)."""
        systems = sub_chemsys(elements)
        clauses = [f"chemsys IN ({','.join('?' * len(systems))})"]
        args: list[Any] = list(systems)
        if with_structure is True:
            clauses.append("structure IS NOT NULL")
        elif with_structure is False:
            clauses.append("structure IS NULL")
        if energy_kind is not None:
            clauses.append("energy_kind = ?")
            args.append(energy_kind)
        if energy_scale is not None:
            clauses.append("energy_scale = ?")
            args.append(energy_scale)
        sql = (
            "SELECT source, source_id, formula, energy_ev_per_atom, energy_kind, energy_scale, "
            f"structure, meta FROM phases WHERE {' AND '.join(clauses)} ORDER BY id"
        )
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        out = [
            ReferencePhase(
                source=r[0], source_id=r[1], formula=r[2], energy_ev_per_atom=r[3],
                energy_kind=r[4], energy_scale=r[5],
                structure=None if r[6] is None else json.loads(r[6]), meta=json.loads(r[7]),
            )
            for r in rows
        ]
        if with_structure is not True and energy_scale in (None, "mp2020"):
            out += self._shipped_phases(systems, energy_kind)
        return out

    def _shipped_phases(self, systems: list[str], energy_kind: str | None,
                        ) -> list[ReferencePhase]:
        pack = self.shipped_set()
        if pack is None:
            return []
        from matloop.materials.mp_pack import ELEMENT_SOURCE, SOURCE

        held = self.held_out()
        out: list[ReferencePhase] = []
        if energy_kind in (None, "total"):
            for system in systems:
                ref = pack.elements.get(system) if "-" not in system else None
                if ref is not None:
                    out.append(ReferencePhase(
                        source=ELEMENT_SOURCE, source_id=ref["mp_id"], formula=system,
                        energy_ev_per_atom=ref["energy_per_atom_ev"], energy_kind="total",
                        energy_scale="mp2020", meta={"mp_id": ref["mp_id"]}))
        if energy_kind in (None, "formation"):
            for row in pack.in_systems(systems):
                if row.formula in held:
                    continue
                out.append(ReferencePhase(
                    source=SOURCE, source_id=row.mp_id or row.formula, formula=row.formula,
                    energy_ev_per_atom=row.formation_energy_ev_per_atom,
                    energy_kind="formation", energy_scale="mp2020",
                    meta={"mp_id": row.mp_id, "origin": row.origin}))
        return out

    def known_composition(self, reduced_formula: str) -> ReferencePhase | None:
        """A structure-less reference of this reduced formula (shipped MP set first), or None."""
        pack = self.shipped_set()
        if pack is not None and reduced_formula not in self.held_out():
            row = pack.get(reduced_formula)
            if row is not None:
                from matloop.materials.mp_pack import SOURCE

                return ReferencePhase(
                    source=SOURCE, source_id=row.mp_id or row.formula, formula=row.formula,
                    energy_ev_per_atom=row.formation_energy_ev_per_atom,
                    energy_kind="formation", energy_scale="mp2020",
                    meta={"mp_id": row.mp_id, "origin": row.origin})
        with self._lock:
            r = self._conn.execute(
                "SELECT source, source_id, formula, energy_ev_per_atom, energy_kind, "
                "energy_scale, meta FROM phases WHERE reduced_formula = ? AND structure IS NULL "
                "ORDER BY id LIMIT 1", (reduced_formula,)).fetchone()
        if r is None:
            return None
        return ReferencePhase(source=r[0], source_id=r[1], formula=r[2], energy_ev_per_atom=r[3],
                              energy_kind=r[4], energy_scale=r[5], meta=json.loads(r[6]))

    def composition_count(self) -> int:
        """Distinct reduced formulas the references know (shipped set included, held-out
        formulas excluded)."""
        with self._lock:
            own = {r[0] for r in self._conn.execute("SELECT DISTINCT reduced_formula FROM phases")}
        pack = self.shipped_set()
        if pack is None:
            return len(own)
        held = self.held_out()
        return len(own | {f for f in pack.formulas if f not in held})

    def user_structures(self, elements: Iterable[str]) -> list[ReferencePhase]:
        """Reference structures the user supplied without energies (imported CIFs) within
        ``elements``: where they exist, the hull is built with the MLIP by default."""
        return [p for p in self.phases(elements, with_structure=True)
                if p.source != "starter" and p.energy_ev_per_atom is None]

    def status(self) -> list[dict[str, Any]]:
        """Counts of phases by source, energy kind and scale."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT source, COALESCE(energy_kind, '-'), COALESCE(energy_scale, '-'), "
                "SUM(structure IS NOT NULL), COUNT(*), COUNT(DISTINCT chemsys) FROM phases "
                "GROUP BY 1, 2, 3 ORDER BY 1"
            ).fetchall()
        out = [
            {"source": r[0], "energy_kind": r[1], "energy_scale": r[2], "with_structure": r[3],
             "phases": r[4], "chemical_systems": r[5]}
            for r in rows
        ]
        pack = self.shipped_set()
        if pack is not None:
            from matloop.materials.mp_pack import ELEMENT_SOURCE, SOURCE

            held = self.held_out()
            n = sum(1 for f in pack.formulas if f not in held)
            out = [{"source": SOURCE + " (shipped, read-only)", "energy_kind": "formation",
                    "energy_scale": "mp2020", "with_structure": 0, "phases": n,
                    "chemical_systems": len(pack.by_chemsys)},
                   {"source": ELEMENT_SOURCE + " (shipped, read-only)", "energy_kind": "total",
                    "energy_scale": "mp2020", "with_structure": 0,
                    "phases": len(pack.elements), "chemical_systems": len(pack.elements)},
                   *out]
        return out

    def count(self) -> int:
        """Total number of phases (shipped set included)."""
        with self._lock:
            own = int(self._conn.execute("SELECT COUNT(*) FROM phases").fetchone()[0])
        pack = self.shipped_set()
        return own + (0 if pack is None else len(pack) + len(pack.elements))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


# ---------------------------------------------------------------------------------------------
# Built-in starter library


@lru_cache(maxsize=1)
def starter_entries() -> list[dict[str, Any]]:
    """Raw starter-library entries (prototype + lattice constants) from the package data."""
    return json.loads(resources.files("matloop.data").joinpath("starter_library.json").read_text())


def build_starter_structure(entry: dict[str, Any]) -> Structure:
    """Build one starter-library entry from its prototype and lattice constants."""
    from matloop.materials.prototypes import get_prototype

    lattice_kw = {k: float(entry[k]) for k in ("b", "c", "alpha", "beta", "gamma") if k in entry}
    return get_prototype(entry["prototype"]).build(
        entry["species"], a=float(entry["a"]), params=entry.get("params"), **lattice_kw
    )


#: Prototypes whose cell is vacuum around a molecule: relax positions, keep the box.
MOLECULE_PROTOTYPES = frozenset({"dimer_box"})


def starter_relax_cell(entry: dict[str, Any]) -> bool:
    """Whether a starter entry's cell should be relaxed (not for molecules in a box)."""
    return bool(entry.get("relax_cell", entry["prototype"] not in MOLECULE_PROTOTYPES))


@lru_cache(maxsize=1)
def starter_phases() -> list[ReferencePhase]:
    """The starter library as reference phases (structures, no energies)."""
    phases = []
    for entry in starter_entries():
        structure = build_starter_structure(entry)
        phases.append(ReferencePhase(
            source="starter",
            source_id=f"{entry['formula']}:{entry['prototype']}",
            formula=structure.composition.formula,
            structure=structure.as_dict(),
            meta={**{k: entry[k] for k in ("prototype", "category", "ground_state",
                                            "lattice_is_experimental", "note") if k in entry},
                  "relax_cell": starter_relax_cell(entry)},
        ))
    return phases


# ---------------------------------------------------------------------------------------------
# Importers


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115 - closed by the caller's with


_FORMULA_COLUMNS = ("composition", "formula", "reduced_formula", "pretty_formula")
_ENERGY_COLUMNS = ("formation_energy_per_atom", "formation_energy_ev_per_atom",
                   "e_form", "target", "formation_energy")
_ID_COLUMNS = ("task_id", "material_id", "mp_id", "id")


#: Energy scales a formation-energy CSV may be on.
CSV_SCALES = ("mp2020", "mp-legacy")


def read_formation_energy_csv(path: str | Path, *, source: str | None = None,
                              scale: str = "mp2020",
                              elemental_dft_ev_per_atom: dict[str, float] | None = None,
                              ) -> Iterator[ReferencePhase]:
    """Phases from a CSV of composition and formation energy per atom (eV/atom).

    Recognised columns: a formula column (one of composition, formula, reduced_formula,
    pretty_formula), an energy column (formation_energy_per_atom, e_form, target...), and an
    optional id column (task_id, material_id...).

    Args:
        scale: ``mp2020`` (Materials Project since 2021) or ``mp-legacy`` (MP before 2021,
            e.g. matbench_mp_e_form): legacy values are converted to MP2020 on import, see
            :func:`matloop.materials.energy_scale.legacy_mp_shift_ev_per_atom`.
        elemental_dft_ev_per_atom: DFT energies of elemental N, F, Cl, H (eV/atom), needed to
            convert legacy values of compounds containing them.
    """
    if scale not in CSV_SCALES:
        raise ReferenceDataError(f"unknown formation-energy scale {scale!r}",
                                 hint=f"valid: {', '.join(CSV_SCALES)}")
    import csv

    from matloop.materials.energy_scale import legacy_mp_shift_ev_per_atom

    path = Path(path)
    source = source or f"file:{path.name}"
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        fcol = next((c for c in _FORMULA_COLUMNS if c in fields), None)
        ecol = next((c for c in _ENERGY_COLUMNS if c in fields), None)
        icol = next((c for c in _ID_COLUMNS if c in fields), None)
        if fcol is None or ecol is None:
            raise ReferenceDataError(
                f"{path}: needs a formula column ({', '.join(_FORMULA_COLUMNS)}) and a formation "
                f"energy column ({', '.join(_ENERGY_COLUMNS)}); found {', '.join(fields)}",
            )
        for n, row in enumerate(reader, start=2):
            formula, value = row[fcol].strip(), row[ecol].strip()
            try:
                energy = float(value)
                comp = parse_composition(formula)
            except Exception as exc:
                raise ReferenceDataError(
                    f"{path}, line {n}: cannot read formula {formula!r} / energy {value!r} ({exc})"
                ) from exc
            meta: dict[str, Any] = {}
            if scale == "mp-legacy":
                shift = legacy_mp_shift_ev_per_atom(comp, elemental_dft_ev_per_atom or {})
                meta = {"converted_from": "mp-legacy", "value_as_given_ev_per_atom": energy,
                        "shift_ev_per_atom": round(shift, 6)}
                energy += shift
            yield ReferencePhase(
                source=source,
                source_id=row[icol].strip() if icol else f"row{n}",
                formula=comp.formula,
                energy_ev_per_atom=energy,
                energy_kind="formation",
                energy_scale="mp2020",
                meta=meta,
            )


def read_computed_entries_json(path: str | Path, *, source: str | None = None,
                               ) -> Iterator[ReferencePhase]:
    """Phases from pymatgen ComputedEntry JSON (a list, or a dict of entries), as total energies.

    Entries are taken with their corrections applied (``energy`` includes ``correction``), which
    is the MP2020 scale for entries downloaded from the Materials Project.
    """
    from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

    path = Path(path)
    source = source or f"file:{path.name}"
    with _open_text(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ReferenceDataError(f"{path}: not valid JSON ({exc})") from exc
    items = list(data.values()) if isinstance(data, dict) and "@class" not in data else (
        [data] if isinstance(data, dict) else data)
    for n, item in enumerate(items):
        cls = ComputedStructureEntry if "structure" in item else ComputedEntry
        try:
            entry = cls.from_dict(item)
        except Exception as exc:
            raise ReferenceDataError(f"{path}: item {n} is not a ComputedEntry ({exc})") from exc
        structure = getattr(entry, "structure", None)
        yield ReferencePhase(
            source=source,
            source_id=str(entry.entry_id or f"item{n}"),
            formula=entry.composition.formula,
            energy_ev_per_atom=float(entry.energy_per_atom),
            energy_kind="total",
            energy_scale="mp2020",
            structure=None if structure is None else structure.as_dict(),
        )


def read_cif_folder(path: str | Path, *, source: str | None = None) -> Iterator[ReferencePhase]:
    """Phases (structures only) from every CIF in a folder; invalid files raise with their name."""
    from matloop.materials.structures import read_structure

    path = Path(path)
    files = sorted(path.glob("*.cif")) if path.is_dir() else [path]
    if not files:
        raise ReferenceDataError(f"{path}: no .cif files found")
    for file in files:
        structure = read_structure(file)
        yield ReferencePhase(
            source=source or f"cif:{path.name}",
            source_id=file.name,
            formula=structure.composition.formula,
            structure=structure.as_dict(),
        )


def lowest_elemental_energies(phases: Iterable[ReferencePhase]) -> dict[str, float]:
    """Lowest energy per atom (eV/atom) of each single-element phase among ``phases``."""
    out: dict[str, float] = {}
    for p in phases:
        comp = p.composition
        if len(comp.elements) == 1 and p.energy_ev_per_atom is not None:
            el = comp.elements[0].symbol
            out[el] = min(out.get(el, float("inf")), float(p.energy_ev_per_atom))
    return out


def elemental_dft_energies(store: ReferenceStore, elements: Iterable[str]) -> dict[str, float]:
    """Lowest MP2020-scale total energy per atom (eV/atom) of each element the store holds."""
    return lowest_elemental_energies(
        p for el in elements
        for p in store.phases([el], energy_kind="total", energy_scale="mp2020"))


def import_references(store: ReferenceStore, path: str | Path, *, scale: str = "mp2020") -> int:
    """Import a reference file or folder into the store; the format is taken from the name.

    ``.csv``/``.csv.gz``: formation energies on ``scale`` (``mp2020`` or ``mp-legacy``, see
    :func:`read_formation_energy_csv`); ``.json``/``.json.gz``: ComputedEntry list;
    a folder or ``.cif``: structures.

    Raises:
        ReferenceDataError: Unknown format or unreadable content.
    """
    path = Path(path)
    if not path.exists():
        raise ReferenceDataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_dir() or name.endswith(".cif"):
        phases: Iterable[ReferencePhase] = read_cif_folder(path)
    elif name.endswith((".csv", ".csv.gz")):
        from matloop.materials.energy_scale import LEGACY_FITTED_GASES

        phases = read_formation_energy_csv(
            path, scale=scale, elemental_dft_ev_per_atom=elemental_dft_energies(
                store, LEGACY_FITTED_GASES) if scale == "mp-legacy" else None)
    elif name.endswith((".json", ".json.gz")):
        phases = read_computed_entries_json(path)
    else:
        raise ReferenceDataError(
            f"{path}: unknown reference format",
            hint="import a CSV of formation energies, ComputedEntry JSON, or CIFs",
        )
    try:
        batch: list[ReferencePhase] = []
        total = 0
        for phase in phases:
            batch.append(phase)
            if len(batch) >= 5000:
                total += store.add(batch)
                batch = []
        return total + store.add(batch)
    except StructureInputError as exc:
        raise ReferenceDataError(str(exc)) from exc
