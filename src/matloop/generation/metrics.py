"""SUN metrics: how many candidates are valid, unique, novel and stable (after MLIP relaxation).

Definitions (fractions are over *all* candidates given, as in MatterGen):

* valid: the candidate passed :func:`matloop.generation.chemistry.check_validity` (SMACT charge
  neutrality and electronegativity order, no atoms closer than 0.5 Å, sane volume per atom);
* unique: its relaxed structure matches no earlier candidate's (StructureMatcher ltol 0.2,
  stol 0.3, angle_tol 5; the unrelaxed one when it was not relaxed);
* novel: its relaxed structure matches no reference structure of the store *and* its reduced
  formula is not among the store's structure-less references (composition level, e.g. an
  imported MP formation-energy CSV). Both levels are reported on their own too;
* stable: relaxation converged and the energy above the hull is at most the threshold
  (default: the settings' ``stability_threshold_ev_per_atom``, 0.1 eV/atom);
* SUN: valid, unique, novel and stable.

Only valid candidates are relaxed: an invalid one cannot count towards SUN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.generation.matching import NoveltyIndex, UniqueIndex
from matloop.generation.models import Candidate
from matloop.logs import quiet_third_party


class Assessment(BaseModel):
    """SUN flags and MLIP results of one candidate."""

    id: str = Field(description="Candidate id.")
    formula: str = Field(description="Reduced formula.")
    method: str = Field(description="Generator.")
    valid: bool = Field(description="Passed the validity checks.")
    unique: bool = Field(description="First of its (relaxed) structure among the candidates.")
    novel: bool = Field(description="Novel at structure and composition level.")
    novel_structure: bool = Field(description="No reference structure matches.")
    novel_composition: bool = Field(description="Formula absent from structure-less references.")
    novelty_basis: str = Field(description="Which reference kinds know this formula.")
    matched: str | None = Field(default=None, description="Reference it matched, if any.")
    status: str = Field(description="MLIP status: ok, not_converged, diverged, failed, "
                        "not_evaluated (invalid).")
    energy_per_atom_ev: float | None = Field(default=None, description="MLIP energy, eV/atom.")
    formation_energy_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    e_above_hull_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    stable: bool = Field(description="Converged and e_above_hull <= threshold.")
    sun: bool = Field(description="Valid, unique, novel and stable.")
    message: str = Field(default="", description="Why it was not evaluated or failed.")


class Rates(BaseModel):
    """Counts and fractions of one group of candidates."""

    total: int
    valid: int
    unique: int
    novel: int
    novel_structure: int
    novel_composition: int
    stable: int
    sun: int
    valid_rate: float
    unique_rate: float
    novel_rate: float
    novel_structure_rate: float
    novel_composition_rate: float
    stable_rate: float
    sun_rate: float


class SunMetrics(Rates):
    """SUN metrics of a batch, per method and per candidate."""

    threshold_ev_per_atom: float = Field(description="Stability threshold, eV/atom.")
    energy_scale: str | None = Field(default=None, description="Scale of the hull numbers.")
    novelty: str = Field(description="How novelty was decided, with the reference sources.")
    evaluated: int = Field(description="Candidates relaxed (the valid ones).")
    mlip_seconds: float = Field(description="Wall time of relaxations and hull placement, s.")
    mlip: str = Field(description="MLIP label.")
    per_method: dict[str, Rates] = Field(description="The same rates per generator (uniqueness "
                                         "within the method's own candidates).")
    candidates: list[Assessment] = Field(description="Per-candidate flags.")


def rates(rows: Sequence[Assessment], *, unique: Sequence[bool] | None = None) -> Rates:
    """Counts and fractions over ``rows`` (``unique`` overrides the rows' own flags)."""
    flags = list(unique) if unique is not None else [r.unique for r in rows]
    total = len(rows)

    def frac(k: int) -> float:
        return round(k / total, 4) if total else 0.0

    counts = {
        "valid": sum(r.valid for r in rows),
        "unique": sum(flags),
        "novel": sum(r.novel for r in rows),
        "novel_structure": sum(r.novel_structure for r in rows),
        "novel_composition": sum(r.novel_composition for r in rows),
        "stable": sum(r.stable for r in rows),
        "sun": sum(r.valid and u and r.novel and r.stable for r, u in zip(rows, flags,
                                                                          strict=True)),
    }
    return Rates(total=total, **counts, **{f"{k}_rate": frac(v) for k, v in counts.items()})


def _from_cif(text: str) -> Structure:
    from pymatgen.io.cif import CifParser

    with quiet_third_party():
        return CifParser.from_str(text).parse_structures(primitive=False)[0]


def sun_metrics(candidates: Sequence[Candidate], engine: Any, *, threshold: float | None = None,
                relax: bool = True, progress: Callable[[str, int, int], None] | None = None,
                ) -> SunMetrics:
    """Relax the valid candidates with the engine's MLIP and compute SUN metrics.

    Args:
        candidates: Generated candidates (any methods, duplicates allowed).
        engine: A :class:`~matloop.materials.engine.MaterialsEngine` (MLIP, cache, store).
        threshold: Stability threshold, eV/atom (default: the engine's settings).
        relax: Relax before the hull (default); False scores single points.
        progress: Callback ``(stage, done, total)``.
    """
    threshold = (engine.settings.stability_threshold_ev_per_atom if threshold is None
                 else threshold)
    structures = [c.get_structure() for c in candidates]
    todo = [i for i, c in enumerate(candidates) if c.valid]
    t0 = time.perf_counter()
    predictions = engine.predict([structures[i] for i in todo],
                                 sources=[candidates[i].id for i in todo], relax=relax,
                                 progress=progress) if todo else []
    mlip_seconds = time.perf_counter() - t0
    by_index = dict(zip(todo, predictions, strict=True))
    finals = []
    for i, s in enumerate(structures):
        p = by_index.get(i)
        finals.append(_from_cif(p.structure_cif) if p is not None and p.structure_cif else s)
    index = UniqueIndex()
    unique = [index.add(s) for s in finals]
    novelty_cache: dict[str, NoveltyIndex] = {}
    sources: dict[str, set[str]] = {"structure": set(), "composition": set()}
    rows = []
    for i, (c, final) in enumerate(zip(candidates, finals, strict=True)):
        chemsys = final.composition.chemical_system
        if chemsys not in novelty_cache:
            phases = engine.store.phases(chemsys.split("-"))
            for ph in phases:
                sources["structure" if ph.structure is not None else "composition"].add(ph.source)
            novelty_cache[chemsys] = NoveltyIndex(phases=phases)
        nov = novelty_cache[chemsys].assess(final)
        p = by_index.get(i)
        e_hull = p.e_above_hull_ev_per_atom if p is not None else None
        status = p.status if p is not None else "not_evaluated"
        stable = bool(status == "ok" and e_hull is not None and e_hull <= threshold)
        message = "; ".join(c.validity_notes) if not c.valid else (
            (p.message or p.stability_error or "") if p is not None else "")
        rows.append(Assessment(
            id=c.id, formula=final.composition.reduced_formula, method=c.method, valid=c.valid,
            unique=unique[i], novel=nov["novel"], novel_structure=nov["novel_structure"],
            novel_composition=nov["novel_composition"], novelty_basis=nov["novelty_basis"],
            matched=nov["matched_structure"] or nov["matched_composition"], status=status,
            energy_per_atom_ev=p.energy_per_atom_ev if p is not None else None,
            formation_energy_ev_per_atom=p.formation_energy_ev_per_atom if p is not None
            else None,
            e_above_hull_ev_per_atom=e_hull, stable=stable,
            sun=bool(c.valid and unique[i] and nov["novel"] and stable), message=message,
        ))
    per_method = {}
    for method in dict.fromkeys(r.method for r in rows):
        idx = [i for i, r in enumerate(rows) if r.method == method]
        own = UniqueIndex()
        per_method[method] = rates([rows[i] for i in idx],
                                   unique=[own.add(finals[i]) for i in idx])
    scales = {p.energy_scale for p in predictions if p.energy_scale}
    novelty = ("structure level against reference structures ("
               + (", ".join(sorted(sources["structure"])) or "none") + "); composition level "
               "against structure-less references (" + (", ".join(sorted(sources["composition"]))
                                                       or "none") + ")")
    return SunMetrics(
        **rates(rows).model_dump(), threshold_ev_per_atom=threshold,
        energy_scale=", ".join(sorted(scales)) or None, novelty=novelty, evaluated=len(todo),
        mlip_seconds=round(mlip_seconds, 2), mlip=engine.mlip_label, per_method=per_method,
        candidates=rows,
    )
