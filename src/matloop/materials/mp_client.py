"""Materials Project access through mp-api (online only; never used by the offline path)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from matloop.errors import ReferenceDataError
from matloop.materials.references import ReferencePhase, ReferenceStore


def _default_rester(api_key: str) -> Any:
    from mp_api.client import MPRester

    return MPRester(api_key, mute_progress_bars=True)


def phases_from_entries(entries: list[Any], *, source: str = "mp-api") -> list[ReferencePhase]:
    """Reference phases from MP ComputedStructureEntries (MP2020-corrected).

    Each entry is kept twice over: its corrected total energy per atom (elements become the
    elemental references) and its formation energy per atom relative to the lowest elemental
    entries of the same set, both on the MP2020 scale, with the structure attached.
    """
    elemental: dict[str, float] = {}
    for e in entries:
        if len(e.composition.elements) == 1:
            el = e.composition.elements[0].symbol
            elemental[el] = min(elemental.get(el, float("inf")), float(e.energy_per_atom))
    phases: list[ReferencePhase] = []
    for e in entries:
        structure = getattr(e, "structure", None)
        sdict = None if structure is None else structure.as_dict()
        mp_id = str(e.data.get("material_id") or e.entry_id)
        comp = e.composition
        phases.append(ReferencePhase(
            source=source, source_id=f"{mp_id}:total", formula=comp.formula,
            energy_ev_per_atom=float(e.energy_per_atom), energy_kind="total",
            energy_scale="mp2020", structure=sdict, meta={"material_id": mp_id},
        ))
        if all(el.symbol in elemental for el in comp.elements):
            frac = comp.fractional_composition
            e_form = float(e.energy_per_atom) - sum(
                frac[el] * elemental[el.symbol] for el in comp.elements)
            phases.append(ReferencePhase(
                source=source, source_id=f"{mp_id}:formation", formula=comp.formula,
                energy_ev_per_atom=e_form, energy_kind="formation", energy_scale="mp2020",
                structure=sdict, meta={"material_id": mp_id},
            ))
    return phases


def fetch_chemsys(store: ReferenceStore, chemsys: str, *, api_key: str | None,
                  rester_factory: Callable[[str], Any] = _default_rester) -> int:
    """Download GGA/GGA+U entries (MP2020-corrected) of a chemical system into the store.

    Raises:
        ReferenceDataError: No API key, or the request failed.
    """
    if not api_key:
        raise ReferenceDataError(
            "no Materials Project API key",
            hint="set MP_API_KEY (get one at the Materials Project website), or import a file "
                 "with `matloop refs import`",
        )
    elements = [el.strip() for el in chemsys.split("-") if el.strip()]
    if not elements:
        raise ReferenceDataError(f"empty chemical system {chemsys!r}", hint="e.g. Li-Fe-O")
    try:
        with rester_factory(api_key) as mpr:
            entries = mpr.get_entries_in_chemsys(
                elements, compatible_only=True,
                additional_criteria={"thermo_types": ["GGA_GGA+U"]},
            )
    except Exception as exc:  # network, auth, server errors: one clear message
        raise ReferenceDataError(
            f"Materials Project request for {chemsys} failed: {type(exc).__name__}: {exc}",
            hint="check MP_API_KEY and the network connection",
        ) from exc
    return store.add(phases_from_entries(list(entries)))


class MPStructureIndex:
    """Materials Project structures of a composition, fetched once and cached in SQLite, for
    structure-level novelty checks (online; only when an API key is configured).

    Args:
        path: SQLite cache file (one row per reduced formula: mp-ids and structures).
        api_key: Materials Project API key.
        rester_factory: Replaces ``mp_api.client.MPRester`` (tests use recorded responses).
    """

    def __init__(self, path: str | Path, *, api_key: str,
                 rester_factory: Callable[[str], Any] = _default_rester) -> None:
        from matloop.materials.cache import open_sqlite

        self.path = Path(path)
        self.api_key = api_key
        self.rester_factory = rester_factory
        self._conn = open_sqlite(self.path, "CREATE TABLE IF NOT EXISTS mp_structures ("
                                            "formula TEXT PRIMARY KEY, payload TEXT NOT NULL, "
                                            "fetched_unix REAL NOT NULL)")
        self._lock = threading.Lock()

    def __call__(self, formula: str) -> list[tuple[str, Structure]]:
        """(mp-id, structure) of every MP material with this reduced formula.

        Raises:
            ReferenceDataError: The request failed (network, key, server).
        """
        with self._lock:
            row = self._conn.execute("SELECT payload FROM mp_structures WHERE formula = ?",
                                     (formula,)).fetchone()
        if row is None:
            try:
                with self.rester_factory(self.api_key) as mpr:
                    docs = mpr.materials.summary.search(formula=formula,
                                                        fields=["material_id", "structure"])
            except Exception as exc:  # network, auth and server errors: one clear message
                raise ReferenceDataError(
                    f"Materials Project structure lookup for {formula} failed: "
                    f"{type(exc).__name__}", hint="check MP_API_KEY and the network, or unset "
                    "MP_API_KEY to judge novelty against the local references only") from exc
            payload = [{"material_id": str(_field(d, "material_id")),
                        "structure": _as_dict(_field(d, "structure"))} for d in docs]
            with self._lock:
                self._conn.execute("INSERT OR REPLACE INTO mp_structures VALUES (?, ?, ?)",
                                   (formula, json.dumps(payload), time.time()))
                self._conn.commit()
        else:
            payload = json.loads(row[0])
        return [(p["material_id"], Structure.from_dict(p["structure"])) for p in payload
                if p.get("structure")]


def _field(doc: Any, name: str) -> Any:
    return doc.get(name) if isinstance(doc, dict) else getattr(doc, name, None)


def _as_dict(structure: Any) -> dict[str, Any] | None:
    if structure is None:
        return None
    return structure if isinstance(structure, dict) else structure.as_dict()
