"""A cheap pre-screen before relaxation: rank candidates by an MLIP single point on the hull.

A relaxation costs tens to hundreds of MLIP force calls; a single point costs one. Generators
can propose far more candidates than a campaign can relax, so :func:`prescreen` scores every
valid candidate with one single point on its unrelaxed cell, places that energy on the same
hull the relaxed energies will use, and keeps the lowest. Unrelaxed energies are upper
bounds of the relaxed ones (the optimiser only goes down), so a candidate far above the hull
before relaxation is the one most worth dropping; the ranking is what the screen is for, not
the values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from matloop.generation.models import Candidate


class ScreenScore(BaseModel):
    """The pre-screen's verdict on one candidate."""

    id: str = Field(description="Candidate id.")
    formula: str = Field(description="Reduced formula.")
    method: str = Field(description="Generator that produced it.")
    e_above_hull_unrelaxed_ev_per_atom: float | None = Field(
        default=None, description="Energy above the hull of the unrelaxed cell, eV/atom "
                                  "(None: single point or hull failed).")
    kept: bool = Field(description="Whether it passed the screen.")


class ScreenResult(BaseModel):
    """Kept candidates, every score and what the screen cost."""

    kept: list[Candidate] = Field(description="Candidates to relax, best first.")
    scores: list[ScreenScore] = Field(description="Every valid candidate's score.")
    seconds: float = Field(description="Wall time of the single points and hull, s.")
    mlip: str = Field(description="MLIP that scored them, with version.")


def prescreen(candidates: Sequence[Candidate], engine: Any, *, keep: int,
              per_method: bool = False) -> ScreenResult:
    """Keep the ``keep`` valid candidates lowest above the hull before relaxation.

    Args:
        candidates: Generated candidates.
        engine: A :class:`~matloop.materials.engine.MaterialsEngine` (MLIP, cache, store).
        keep: How many to keep (per method when ``per_method``).
        per_method: Keep ``keep`` of each generation method instead of ``keep`` overall.

    Candidates whose single point or hull fails rank last; invalid ones are dropped.
    """
    valid = [c for c in candidates if c.valid]
    t0 = time.perf_counter()
    predictions = engine.predict([c.get_structure() for c in valid],
                                 sources=[c.id for c in valid], relax=False) if valid else []
    seconds = time.perf_counter() - t0
    scored = [(c, p.e_above_hull_ev_per_atom if p.status == "ok" else None)
              for c, p in zip(valid, predictions, strict=True)]
    order = sorted(range(len(scored)), key=lambda i: (
        scored[i][1] is None, scored[i][1] if scored[i][1] is not None else 0.0, i))
    kept_ids: set[str] = set()
    taken: dict[str, int] = {}
    for i in order:
        c = scored[i][0]
        group = c.method if per_method else ""
        if taken.get(group, 0) < keep:
            taken[group] = taken.get(group, 0) + 1
            kept_ids.add(c.id)
    kept = [scored[i][0] for i in order if scored[i][0].id in kept_ids]
    score = {c.id: e for c, e in scored}
    for c in kept:
        c.provenance["prescreen_e_above_hull_unrelaxed_ev_per_atom"] = score[c.id]
    return ScreenResult(
        kept=kept, seconds=round(seconds, 3), mlip=engine.mlip_label,
        scores=[ScreenScore(id=c.id, formula=c.formula, method=c.method,
                            e_above_hull_unrelaxed_ev_per_atom=e, kept=c.id in kept_ids)
                for c, e in scored])
