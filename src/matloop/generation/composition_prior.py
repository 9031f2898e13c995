"""Which new stoichiometries of a chemical system are worth an MLIP relaxation.

The composition half of GNoME's pipeline, on a CPU:

1. enumerate the compositions of a chemical system up to a size limit that pass the shared
   charge-balance rule (:func:`matloop.materials.chemistry.charge_balanced`: ionic with mixed
   valence, intermetallic, or metallic carbide/nitride/boride/hydride);
2. predict each one's formation energy with an uncertainty
   (:mod:`matloop.generation.composition_model`, trained on the shipped MP compositions);
3. place it on the convex hull of the compositions the reference store knows in that system
   (shipped MP set minus held-out formulas, plus the user's formation energies): predicted
   energy above the hull, and the probability that the true value is within a threshold.

``rank_compositions(["Ba", "Ti", "O"], store=store)`` returns the unknown compositions best
first: about 0.2 s of CPU for a ternary system (1,000 grid points), 0.6 s for a quaternary.

What to expect (``evals/results/composition_prior.json``): the formation energy is predicted
to 0.145 eV/atom (MAE, chemical systems held out) with calibrated sigmas (69 % of held-out
residuals within 1 sigma, 94 % within 2). Ranking held-out MP ground states among a system's
several hundred enumerated candidates is much harder: 12 % land in the top 10 (random order:
6 %), 18 % in the top 20, because errors of 0.1-0.15 eV/atom are as large as the margins by
which real compounds beat their neighbours on the hull (Bartel et al., npj Comput. Mater. 6,
97 (2020)). Use the ranking to order a search and the rule to prune it, not as a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from matloop.errors import MatloopError
from matloop.generation.composition_features import parse_formula
from matloop.materials.chemistry import DEFAULT_STATES, reading_of_counts

Counts = tuple[int, ...]
OrderBy = Literal["rank_average", "e_above_hull", "formation_energy", "probability"]
ORDERS: tuple[str, ...] = ("rank_average", "e_above_hull", "formation_energy", "probability")


class PriorProvenance(BaseModel):
    """Where a composition score came from."""

    model_name: str = Field(description="Composition model name.")
    model_version: str = Field(description="Composition model code version.")
    training_compositions: int = Field(description="MP compositions the model was trained on.")
    cv_grouped_mae_ev_per_atom: float = Field(
        description="Out-of-fold MAE of the formation energy, folds grouped by chemical system.")
    training_set_sha256: str = Field(description="Checksum of the training formulas/energies.")
    blind_prediction: bool = Field(
        description="Predicted by the fold member that never saw this chemical system.")
    hull_references: int = Field(description="Known phases (elements included) in the hull.")
    hull_sources: list[str] = Field(description="Sources of the hull's reference phases.")
    charge_rule: str = Field(description="Enumeration rule (oxidation-state set, options).")


class CompositionScore(BaseModel):
    """A composition's predicted stability against the known phases of its system."""

    rank: int = Field(description="Position in the requested ordering (1 = most promising).")
    formula: str = Field(description="Reduced formula (pymatgen spelling).")
    chemsys: str = Field(description="Chemical system, e.g. Ba-O-Ti.")
    atoms_per_formula: int = Field(description="Atoms in the reduced formula unit.")
    reading: str = Field(description="Why it may exist: alloy, ionic, mixed-valence, "
                         "metallic (see matloop.materials.chemistry).")
    predicted_formation_energy_ev_per_atom: float = Field(
        description="Model formation energy, MP2020 scale, eV/atom.")
    formation_energy_sigma_ev_per_atom: float = Field(
        description="Calibrated one-sigma uncertainty of that prediction, eV/atom.")
    hull_energy_ev_per_atom: float = Field(
        description="Energy of the known phases' hull at this composition, eV/atom.")
    predicted_e_above_hull_ev_per_atom: float = Field(
        description="Predicted formation energy minus the hull energy, eV/atom (negative: "
        "predicted to lie below the known hull).")
    probability_within_threshold: float = Field(
        description="P(true energy above the known hull <= threshold), from the calibrated "
        "residual distribution.")
    threshold_ev_per_atom: float = Field(description="The threshold of that probability.")
    decomposition: dict[str, float] = Field(
        description="Known phases the hull point is made of, with their atomic fractions.")
    known: bool = Field(description="The reference store knows this composition.")
    known_id: str | None = Field(
        default=None, description="mp-id when known and MP gives one, else 'source:id'.")
    known_formation_energy_ev_per_atom: float | None = Field(
        default=None, description="The store's formation energy when known, eV/atom.")
    provenance: PriorProvenance


# ---------------------------------------------------------------------------------------------
# Enumeration


def _grid(n: int, max_atoms: int) -> Iterable[Counts]:
    """Positive integer tuples of length n with sum <= max_atoms and gcd 1."""
    def rec(prefix: tuple[int, ...], left: int) -> Iterable[Counts]:
        slots = n - len(prefix)
        if slots == 0:
            if math.gcd(*prefix) == 1:
                yield prefix
            return
        for c in range(1, left - (slots - 1) + 1):
            yield from rec(prefix + (c,), left - c)
    yield from rec((), max_atoms)


def _spelling(elements: Sequence[str], counts: Counts) -> str:
    return "".join(f"{el}{c}" for el, c in zip(elements, counts, strict=True))


def enumerate_system(elements: Iterable[str], *, max_atoms_per_formula: int = 20,
                     mixed_valence: bool = True, metallic_reading: bool = True,
                     states: str = DEFAULT_STATES, rule: bool = True,
                     ) -> list[tuple[Counts, str]]:
    """Enumerate compositions using every element of ``elements``, each with its reading.

    Args:
        elements: The chemical system (sorted internally; counts follow sorted order).
        max_atoms_per_formula: Largest number of atoms in the reduced formula unit.
        mixed_valence: Let each atom of a mixed-valence element take its own state.
        metallic_reading: Accept metallic carbides, nitrides, borides and hydrides.
        states: Oxidation-state set (:data:`matloop.materials.chemistry.STATE_SETS`).
        rule: Apply the charge-balance rule (:func:`matloop.materials.chemistry.
            balance_reading`); ``False`` gives the whole grid with reading 'grid'.

    Returns:
        (counts in sorted-element order, reading) pairs, smallest formula units first.

    Raises:
        MatloopError: Unknown or repeated elements, or fewer than two.

    """
    els = _check_elements(elements)
    out: list[tuple[Counts, str]] = []
    for counts in sorted(_grid(len(els), max_atoms_per_formula), key=lambda c: (sum(c), c)):
        if not rule:
            out.append((counts, "grid"))
            continue
        reading = reading_of_counts(tuple(zip(els, counts, strict=True)),
                                    mixed_valence=mixed_valence,
                                    metallic_reading=metallic_reading, states=states)
        if reading is not None:
            out.append((counts, reading))
    return out


def _check_elements(elements: Iterable[str]) -> list[str]:
    from matloop.generation.composition_features import symbols

    els = sorted(set(elements))
    unknown = [e for e in els if e not in symbols()]
    if unknown:
        raise MatloopError(f"unknown element(s) {', '.join(unknown)}",
                           hint="use element symbols with correct capitalisation, e.g. Co")
    if len(els) < 2:
        raise MatloopError("a chemical system needs at least two elements",
                           hint="give the elements of the system, e.g. ['Ba', 'Ti', 'O']")
    return els


def counts_key(amounts: dict[str, float], elements: Sequence[str]) -> Counts | None:
    """Reduced integer counts of a composition in ``elements`` order (None if not integral)."""
    vals = [amounts.get(el, 0.0) for el in elements]
    for scale in range(1, 61):
        scaled = [v * scale for v in vals]
        if all(abs(s - round(s)) < 1e-6 for s in scaled):
            ints = [round(s) for s in scaled]
            g = math.gcd(*ints)
            return tuple(i // g for i in ints)
    return None


# ---------------------------------------------------------------------------------------------
# Hull of known phases as a maximum of planes


@dataclass
class KnownHull:
    """Lower convex hull of known formation energies in a chemical system (elements at zero).

    Stored as one plane per facet: the hull energy at x is the maximum over facets of plane . x.
    """

    elements: list[str]
    planes: np.ndarray           # (facets, d)
    vertices: list[list[int]]    # phase indices of each facet
    phase_names: list[str]
    points: np.ndarray           # (phases, d) fractions

    def energy(self, fractions: np.ndarray) -> np.ndarray:
        """Hull energy (eV/atom) at each row of atomic fractions (n, d)."""
        return (fractions @ self.planes.T).max(axis=1)

    def decomposition(self, fraction: np.ndarray) -> dict[str, float]:
        """Known phases and atomic fractions of the hull point at one composition."""
        facet = int(np.argmax(self.planes @ fraction))
        idx = self.vertices[facet]
        weights, *_ = np.linalg.lstsq(self.points[idx].T, fraction, rcond=None)
        out: dict[str, float] = {}
        for i, w in zip(idx, weights, strict=True):
            if w > 1e-6:
                out[self.phase_names[i]] = round(out.get(self.phase_names[i], 0.0) + float(w), 4)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def known_hull(elements: Sequence[str], phases: Sequence[tuple[dict[str, float], float, str]],
               ) -> KnownHull:
    """Hull of (amounts, formation energy eV/atom, name) phases; elements added at zero."""
    from scipy.spatial import ConvexHull, QhullError

    d = len(elements)
    pts = [np.eye(d)[i] for i in range(d)]
    energies = [0.0] * d
    names = list(elements)
    for amounts, e_form, name in phases:
        if not set(amounts) <= set(elements):
            continue
        total = sum(amounts.values())
        pts.append(np.array([amounts.get(el, 0.0) / total for el in elements]))
        energies.append(min(float(e_form), 0.0) if len(amounts) == 1 else float(e_form))
        names.append(name)
    points = np.array(pts)
    energy = np.array(energies)
    # the lid: a point far above the centroid makes the point set full-dimensional
    coords = np.column_stack([points[:, :-1], energy])
    lid = np.append(np.full(d - 1, 1.0 / d), max(1.0, energy.max() + 1.0) * 10)
    try:
        hull = ConvexHull(np.vstack([coords, lid]), qhull_options="Qt i")
    except QhullError as exc:
        raise MatloopError(f"cannot build the hull of {'-'.join(elements)} ({exc})") from exc
    lid_index = len(coords)
    planes, vertices = [], []
    for simplex, eq in zip(hull.simplices, hull.equations, strict=True):
        if lid_index in simplex or eq[-2] >= -1e-9:  # upper or vertical facet
            continue
        idx = [int(i) for i in simplex]
        try:
            w = np.linalg.solve(points[idx], energy[idx])
        except np.linalg.LinAlgError:
            continue
        planes.append(w)
        vertices.append(idx)
    return KnownHull(list(elements), np.array(planes), vertices, names, points)


# ---------------------------------------------------------------------------------------------
# Ranking


def _store_phases(store: Any, elements: Sequence[str],
                  ) -> tuple[list[tuple[dict[str, float], float, str]], dict[str, Any], list[str]]:
    """Formation-energy phases of the system (lowest per composition), keyed by formula."""
    best: dict[str, tuple[dict[str, float], float, str, Any]] = {}
    sources: set[str] = set()
    for p in store.phases(elements, energy_kind="formation", energy_scale="mp2020"):
        if p.energy_ev_per_atom is None:
            continue
        amounts = parse_formula(p.formula)
        key = p.composition.reduced_formula
        if key not in best or p.energy_ev_per_atom < best[key][1]:
            best[key] = (amounts, float(p.energy_ev_per_atom), key, p)
        sources.add(p.source)
    phases = [(a, e, n) for a, e, n, _ in best.values()]
    return phases, {k: v for k, v in best.items()}, sorted(sources)


def rank_compositions(
    elements: Iterable[str], *, store: Any, max_atoms_per_formula: int = 20,
    include_known: bool = False, top: int | None = 50, threshold_ev_per_atom: float = 0.05,
    mixed_valence: bool = True, metallic_reading: bool = True, states: str = DEFAULT_STATES,
    blind: bool | None = None, model: Any = None,
    order_by: OrderBy = "rank_average",
) -> list[CompositionScore]:
    """Rank the enumerated compositions of a chemical system, best predicted stability first.

    Args:
        elements: The system's elements; every composition uses all of them.
        store: A :class:`matloop.materials.references.ReferenceStore`: its formation energies
            (shipped MP set minus held-out formulas, plus imports) make the hull and say which
            compositions are known.
        max_atoms_per_formula: Largest reduced formula unit enumerated.
        include_known: Also score compositions the store knows (flagged ``known``).
        top: Return at most this many (None: all).
        threshold_ev_per_atom: Energy above the known hull counted as "within reach".
        mixed_valence: Enumeration rule: each atom of a mixed-valence element takes its own
            state (:func:`matloop.materials.chemistry.balance_reading`).
        metallic_reading: Enumeration rule: accept metallic carbides/nitrides/borides.
        states: Enumeration rule: oxidation-state set.
        blind: Predict with the fold member that never saw the system. None (default): blind
            when the store holds out a composition of this system that the model was trained
            on, so a blind test never asks the model about what it learned.
        model: A :class:`~matloop.generation.composition_model.CompositionModel` (default:
            the shipped one).
        order_by: ``rank_average`` (default): the mean of a composition's ranks by predicted
            energy above the hull and by predicted formation energy; ``e_above_hull``;
            ``formation_energy``; ``probability`` (of lying within the threshold). On 190
            held-out MP ground states the rank average put the held-out composition highest
            (``evals/results/composition_prior.json``); the hull distance alone ranks worse than
            the formation energy alone, because the model's errors (about 0.15 eV/atom) do not
            cancel against the hull's exact energies (Bartel et al., npj Comput. Mater. 6, 97
            (2020)).

    Raises:
        MatloopError: Unknown elements, fewer than two, or an unreadable store phase.

    """
    from matloop.generation.composition_model import load_composition_model

    els = _check_elements(elements)
    model = model or load_composition_model()
    phases, known, sources = _store_phases(store, els)
    hull = known_hull(els, phases)
    known_by_counts = _known_by_counts(known, els)
    candidates = enumerate_system(els, max_atoms_per_formula=max_atoms_per_formula,
                                  mixed_valence=mixed_valence,
                                  metallic_reading=metallic_reading, states=states)
    if include_known:
        listed = {c for c, _ in candidates}
        candidates += [(c, "known") for c in known_by_counts if c not in listed]
    else:
        candidates = [(c, r) for c, r in candidates if c not in known_by_counts]
    if not candidates:
        return []
    rule = (f"states={states}, mixed_valence={mixed_valence}, "
            f"metallic_reading={metallic_reading}, max_atoms={max_atoms_per_formula}")
    return _score(els, candidates, known_by_counts, hull, sources, store=store, model=model,
                  blind=blind, threshold_ev_per_atom=threshold_ev_per_atom, order_by=order_by,
                  top=top, rule=rule)


def _score(els: list[str], candidates: list[tuple[Counts, str]],
           known_by_counts: dict[Counts, Any], hull: KnownHull, sources: list[str], *,
           store: Any, model: Any, blind: bool | None, threshold_ev_per_atom: float,
           order_by: str, top: int | None, rule: str,
           keep_input_order: bool = False) -> list[CompositionScore]:
    """Predict, place on the hull and order candidates of one chemical system."""
    from pymatgen.core import Composition

    system = "-".join(els)
    if blind is None:
        blind = _needs_blind(store, model, system)
    spellings = [_spelling(els, c) for c, _ in candidates]
    pred = model.predict(spellings, blind=blind)
    counts = np.array([c for c, _ in candidates], dtype=float)
    fractions = counts / counts.sum(axis=1, keepdims=True)
    e_hull_at = hull.energy(fractions)
    e_above = pred.formation_energy_ev_per_atom - e_hull_at
    prob = model.probability_below(e_above, pred.sigma_ev_per_atom, threshold_ev_per_atom)
    key = order_key(order_by, e_above, pred.formation_energy_ev_per_atom, prob)
    order = np.lexsort((counts.sum(axis=1), key))
    ranks = np.empty(len(order), dtype=int)
    ranks[order] = np.arange(1, len(order) + 1)
    if keep_input_order:
        order = np.arange(len(candidates))
    if top is not None:
        order = order[:top]
    meta = model.meta
    provenance = PriorProvenance(
        model_name=meta["name"], model_version=meta["version"],
        training_compositions=meta["training_compositions"],
        cv_grouped_mae_ev_per_atom=meta.get("cv_grouped_mae_ev_per_atom", float("nan")),
        training_set_sha256=meta["training_set_sha256"], blind_prediction=bool(blind),
        hull_references=len(hull.phase_names), hull_sources=sources, charge_rule=rule)
    out = []
    for i in order:
        c, reading = candidates[i]
        hit = known_by_counts.get(c)
        phase = hit[1] if hit else None
        out.append(CompositionScore(
            rank=int(ranks[i]),
            formula=Composition(dict(zip(els, c, strict=True))).reduced_formula,
            chemsys=system, atoms_per_formula=int(sum(c)), reading=reading,
            predicted_formation_energy_ev_per_atom=round(float(
                pred.formation_energy_ev_per_atom[i]), 4),
            formation_energy_sigma_ev_per_atom=round(float(pred.sigma_ev_per_atom[i]), 4),
            hull_energy_ev_per_atom=round(float(e_hull_at[i]), 4),
            predicted_e_above_hull_ev_per_atom=round(float(e_above[i]), 4),
            probability_within_threshold=round(float(prob[i]), 4),
            threshold_ev_per_atom=threshold_ev_per_atom,
            decomposition=hull.decomposition(fractions[i]), known=hit is not None,
            known_id=None if phase is None else (phase.meta or {}).get("mp_id") or (
                f"{phase.source}:{phase.source_id}"),
            known_formation_energy_ev_per_atom=None if phase is None else phase.energy_ev_per_atom,
            provenance=provenance))
    return out


def _known_by_counts(known: dict[str, Any], els: list[str]) -> dict[Counts, Any]:
    out: dict[Counts, Any] = {}
    for amounts, _e, name, phase in known.values():
        if set(amounts) == set(els):
            key = counts_key(amounts, els)
            if key is not None:
                out[key] = (name, phase)
    return out


def score_compositions(formulas: Sequence[str], *, store: Any,
                       threshold_ev_per_atom: float = 0.05, blind: bool | None = None,
                       model: Any = None, states: str = DEFAULT_STATES,
                       ) -> list[CompositionScore]:
    """Score given compositions (any chemical systems), in the order given.

    For a generator's or a critic's candidates: each formula's predicted formation energy,
    its place on the hull of the store's known phases of its system, the probability of lying
    within ``threshold_ev_per_atom`` of that hull, and whether the store knows it. ``rank``
    is the formula's position among the given formulas of its system by the default ordering;
    ``reading`` is the charge-balance reading (``none`` when the rule rejects it).

    Raises:
        MatloopError: An unreadable formula or a single element.

    """
    from matloop.generation.composition_model import load_composition_model

    model = model or load_composition_model()
    groups: dict[str, list[int]] = {}
    parsed = []
    for n, formula in enumerate(formulas):
        amounts = parse_formula(formula)
        els = _check_elements(amounts)
        parsed.append((els, amounts))
        groups.setdefault("-".join(els), []).append(n)
    out: list[CompositionScore | None] = [None] * len(formulas)
    for system, idx in groups.items():
        els = system.split("-")
        phases, known, sources = _store_phases(store, els)
        hull = known_hull(els, phases)
        candidates = []
        for n in idx:
            counts = counts_key(parsed[n][1], els)
            if counts is None:
                raise MatloopError(f"cannot read {formulas[n]!r} as a whole-number formula")
            reading = reading_of_counts(tuple(zip(els, counts, strict=True)), states=states)
            candidates.append((counts, reading or "none"))
        scores = _score(els, candidates, _known_by_counts(known, els), hull, sources,
                        store=store, model=model, blind=blind,
                        threshold_ev_per_atom=threshold_ev_per_atom, order_by="rank_average",
                        top=None, rule=f"states={states}, mixed_valence=True, "
                        "metallic_reading=True", keep_input_order=True)
        for n, score in zip(idx, scores, strict=True):
            out[n] = score
    return [s for s in out if s is not None]


def order_key(order_by: str, e_above_hull: np.ndarray, formation_energy: np.ndarray,
              probability: np.ndarray) -> np.ndarray:
    """Sort key (smaller first) of each candidate for an ordering of :data:`ORDERS`.

    Raises:
        ValueError: Unknown ordering (the message lists the valid ones).

    """
    from scipy.stats import rankdata

    if order_by == "rank_average":
        return rankdata(e_above_hull) + rankdata(formation_energy)
    if order_by == "e_above_hull":
        return np.asarray(e_above_hull)
    if order_by == "formation_energy":
        return np.asarray(formation_energy)
    if order_by == "probability":
        return -np.asarray(probability)
    raise ValueError(f"unknown ordering {order_by!r}; valid: {', '.join(ORDERS)}")


def _needs_blind(store: Any, model: Any, system: str) -> bool:
    from matloop.generation.composition_model import chemsys_of_formula

    excluded_f, excluded_s = model.excluded()
    for formula in store.held_out():
        try:
            chemsys = chemsys_of_formula(formula)
        except MatloopError:
            continue
        if chemsys == system and formula not in excluded_f and chemsys not in excluded_s:
            return True
    return False
