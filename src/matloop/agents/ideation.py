"""Where to look: chemical systems and compositions ranked for an objective, before any MLIP
time is spent.

The offline scientist proposes from here and the offline critic checks against it:

* systems come from the query (named systems and formulas) or, when it names none, from the
  application's element pools (:mod:`matloop.agents.applications`) narrowed by the query's
  required, excluded and "one of" elements;
* each system's compositions are ranked by the composition-level stability prior
  (:func:`matloop.generation.composition_prior.rank_compositions`: a gradient-boosting model
  of MP formation energies, placed on the hull of the known MP compositions), weighted by how
  likely each meets the property targets (for a band-gap window, the default band-gap model at
  composition level) and by whether a known structure type has its stoichiometry;
* and by how common the stoichiometry is among MP compounds of the same most electronegative
  element (:func:`stoichiometry_weight`: ABX3 iodides and AB2 borides are common, A5B8 ones
  rare), which the composition model alone does not capture;
* a fit combines them: P(within reach of the hull) x P(targets met) x commonness.

Every number carries its source in :class:`CompositionOption.provenance`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from pymatgen.core import Composition

from matloop.agents.applications import Application, by_name
from matloop.errors import MatloopError
from matloop.schemas import Objective, PropertyTarget, QueryProblem

ANIONS = ("O", "S", "Se", "Te", "N", "P", "As", "Sb", "F", "Cl", "Br", "I", "H", "C", "B", "Si",
          "Ge")
#: Weight of a composition the references already list (the campaign is for discovery, but a
#: known ground state that meets the targets is still an answer).
KNOWN_WEIGHT = 0.35
#: Weight of a stoichiometry no known structure type has (generators rely on random search).
NO_STRUCTURE_WEIGHT = 0.4
#: Weight of a stoichiometry other than the structure type the query named.
OFF_HINT_WEIGHT = 0.2


@dataclass
class CompositionOption:
    """One composition worth trying, with why."""

    formula: str
    chemsys: str
    fit: float
    p_stable: float
    p_targets: float
    known: bool
    known_id: str | None
    has_structure_type: bool
    predicted_e_above_hull_ev_per_atom: float | None = None
    predicted_gap_ev: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short line for hypotheses and logs."""
        parts = [f"{self.formula}: P(within reach of the MP hull) {self.p_stable:.2f}"]
        if self.predicted_gap_ev is not None:
            parts.append(f"predicted gap {self.predicted_gap_ev:.2f} eV")
        if self.p_targets < 1.0:
            parts.append(f"P(targets met) {self.p_targets:.2f}")
        parts.append("known to MP" if self.known else "not listed by MP")
        return ", ".join(parts)


@dataclass
class SystemOption:
    """A chemical system worth searching, with its best compositions."""

    chemsys: str
    reason: str
    compositions: list[CompositionOption]

    @property
    def score(self) -> float:
        """The best composition's fit (0 with none)."""
        return max((c.fit for c in self.compositions), default=0.0)


# -- targets at composition level ---------------------------------------------------------------


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def window_probability(gap_ev: float, sigma_ev: float, metal_probability: float,
                       lo: float | None, hi: float | None) -> float:
    """P(band gap in [lo, hi]) from a prediction: metal with its probability (gap 0), else
    normal with the model's uncertainty."""
    sigma = max(sigma_ev, 0.05)
    lo_v = -math.inf if lo is None else lo
    hi_v = math.inf if hi is None else hi
    p_insulator = _phi((hi_v - gap_ev) / sigma) - _phi((lo_v - gap_ev) / sigma)
    p_metal_ok = 1.0 if lo_v <= 0.0 <= hi_v else 0.0
    return metal_probability * p_metal_ok + (1.0 - metal_probability) * max(p_insulator, 0.0)


def _gap_targets(objective: Objective) -> list[PropertyTarget]:
    return [t for t in objective.property_targets if t.name == "band_gap"]


def target_probabilities(formulas: list[str], objective: Objective,
                         ) -> tuple[list[float], list[float | None], str | None]:
    """P(every composition-level target met) per formula, the predicted gaps, and the model
    used (None when no target can be judged at composition level)."""
    gaps = _gap_targets(objective)
    if not gaps or not formulas:
        return [1.0] * len(formulas), [None] * len(formulas), None
    from matloop.surrogates.band_gap import band_gap_for_compositions

    screen = band_gap_for_compositions(formulas, domain=False)
    out: list[float] = []
    values: list[float | None] = []
    for i in range(len(formulas)):
        gap = float(screen.recommended_gap_ev[i])
        p = 1.0
        for t in gaps:
            p *= window_probability(gap, float(screen.uncertainty_ev[i]),
                                    float(screen.metal_probability[i]), t.min, t.max)
        out.append(p)
        values.append(gap)
    return out, values, screen.source


# -- structure types -----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def structure_stoichiometries() -> frozenset[str]:
    """Anonymised formulas (pymatgen ``anonymized_formula``) of the structure types the
    generators know: the prototype list, the starter library and pymatgen's AFLOW library."""
    found: set[str] = set()
    data = resources.files("matloop.data")
    for entry in json.loads(data.joinpath("starter_library.json").read_text()):
        found.add(Composition(entry["formula"]).anonymized_formula)
    from matloop.generation.aflow import aflow_library

    found.update(p.anonymous for p in aflow_library())
    return frozenset(found)


def hinted_stoichiometries(objective: Objective) -> set[str]:
    """Anonymised formulas of the structure types the query asked for ("perovskite", ...)."""
    from matloop.agents.query_parser import structure_hints

    return {a for hint in structure_hints(objective) if (a := _prototype_stoichiometry(hint))}


@lru_cache(maxsize=128)
def _prototype_stoichiometry(name: str) -> str | None:
    from matloop.materials.prototypes import get_prototype

    try:
        proto = get_prototype(name)
        dummy = dict(zip(proto.labels, ("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca"),
                         strict=False))
        return proto.build(dummy, a=6.0).composition.anonymized_formula
    except (MatloopError, KeyError, ValueError):
        return None


_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)|(\()|(\))(\d*\.?\d*)")


def _amounts(formula: str) -> dict[str, float]:
    """Element amounts of a formula with one level of parentheses, by string parsing."""
    stack: list[dict[str, float]] = [{}]
    for el, n, opening, closing, mult in _TOKEN.findall(formula):
        if opening:
            stack.append({})
        elif closing:
            group = stack.pop() if len(stack) > 1 else {}
            k = float(mult) if mult else 1.0
            for e, v in group.items():
                stack[-1][e] = stack[-1].get(e, 0.0) + v * k
        elif el:
            stack[-1][el] = stack[-1].get(el, 0.0) + (float(n) if n else 1.0)
    return stack[0]


@lru_cache(maxsize=1)
def _electronegativity() -> dict[str, float]:
    import warnings

    from pymatgen.core import Element

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noble gases have no Pauling value
        return {el.symbol: (float(el.X) if el.X == el.X else 0.0) for el in Element}


def stoichiometry_pattern(formula: str) -> tuple[str, str]:
    """(most electronegative element, amounts in electronegativity order, reduced), e.g.
    CsGeI3 -> ("I", "1:1:3"), Ba2TiO4 -> ("O", "2:1:4"): a chemistry-aware anonymised
    formula."""
    amounts = _amounts(formula)
    chi = _electronegativity()
    order = sorted(amounts, key=lambda el: (chi.get(el, 0.0), el))
    values = [amounts[el] for el in order]
    if all(float(v).is_integer() for v in values):
        g = 0
        for v in values:
            g = math.gcd(g, int(v))
        values = [v / max(g, 1) for v in values]
    return order[-1], ":".join(f"{v:g}" for v in values)


@lru_cache(maxsize=1)
def stoichiometry_counts() -> tuple[dict[tuple[str, str], int], dict[tuple[str, int], int]]:
    """How often each stoichiometry pattern occurs among the MP compositions (by most
    electronegative element), and the most frequent count per (that element, element count).
    Counted once and cached in the data directory (keyed by the MP set's content)."""
    from matloop.config import get_settings
    from matloop.materials.mp_pack import mp_compositions

    pack = mp_compositions()
    cache = get_settings().data_dir / f"stoichiometry-counts-{pack.content_sha256()[:12]}.json"
    counts: dict[tuple[str, str], int] = {}
    try:
        raw = json.loads(cache.read_text())
        counts = {(a, p): int(n) for a, p, n in raw}
    except (OSError, ValueError):
        for formula in pack.formulas:
            key = stoichiometry_pattern(formula)
            counts[key] = counts.get(key, 0) + 1
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps([[a, p, n] for (a, p), n in sorted(counts.items())]))
        except OSError:
            pass  # a read-only data directory: count again next time
    top: dict[tuple[str, int], int] = {}
    for (anion, pattern), n in counts.items():
        arity = (anion, pattern.count(":") + 1)
        top[arity] = max(top.get(arity, 0), n)
    return counts, top


def stoichiometry_weight(formula: str) -> float:
    """How common this stoichiometry is among MP compounds with the same most electronegative
    element and number of elements: log(1 + count) / log(1 + the most common), floored at
    0.05 (a pattern MP never shows is possible, just unlikely)."""
    counts, top = stoichiometry_counts()
    anion, pattern = stoichiometry_pattern(formula)
    most = top.get((anion, pattern.count(":") + 1), 0)
    if most <= 0:
        return 0.5
    return max(0.05, math.log1p(counts.get((anion, pattern), 0)) / math.log1p(most))


def has_structure_type(formula: str) -> bool:
    """Whether a known structure type has this stoichiometry."""
    return Composition(formula).anonymized_formula in structure_stoichiometries()


# -- compositions of a system ---------------------------------------------------------------------


def composition_options(elements: list[str], objective: Objective, store: Any, *,
                        top: int = 6) -> list[CompositionOption]:
    """The most promising compositions of a system for the objective, best first."""
    from matloop.generation.composition_prior import rank_compositions

    threshold = max(objective.stability_threshold_ev_per_atom, 0.05)
    try:
        ranked = rank_compositions(elements, store=store, include_known=True, top=None,
                                   threshold_ev_per_atom=threshold,
                                   max_atoms_per_formula=min(objective.max_atoms, 20))
    except MatloopError:
        return []
    limit = min(objective.max_atoms, 20)
    from matloop.materials.chemistry import charge_balanced

    # the critic's charge-balance rule: MP lists high-pressure or molecular oddities (NaCl3,
    # Na3Cl) that a hypothesis must not carry
    ranked = [r for r in ranked if r.atoms_per_formula <= limit and charge_balanced(r.formula)
              and not (r.known and objective.new_compositions_only)]
    formulas = [r.formula for r in ranked]
    wanted = hinted_stoichiometries(objective)
    p_targets, gaps, gap_source = target_probabilities(formulas, objective)
    out = []
    for r, pt, gap in zip(ranked, p_targets, gaps, strict=True):
        typed = has_structure_type(r.formula)
        common = stoichiometry_weight(r.formula)
        fit = r.probability_within_threshold * pt * common * (
            KNOWN_WEIGHT if r.known else 1.0) * (1.0 if typed else NO_STRUCTURE_WEIGHT)
        if wanted and Composition(r.formula).anonymized_formula not in wanted:
            fit *= OFF_HINT_WEIGHT
        provenance = {"prior": f"{r.provenance.model_name} v{r.provenance.model_version} "
                               f"(CV MAE {r.provenance.cv_grouped_mae_ev_per_atom:.3f} eV/atom)",
                      "prior_rank": r.rank, "stoichiometry_weight": round(common, 3)}
        if gap_source:
            provenance["band_gap"] = gap_source
        out.append(CompositionOption(
            formula=r.formula, chemsys=r.chemsys, fit=fit,
            p_stable=r.probability_within_threshold, p_targets=pt, known=r.known,
            known_id=r.known_id, has_structure_type=typed,
            predicted_e_above_hull_ev_per_atom=r.predicted_e_above_hull_ev_per_atom,
            predicted_gap_ev=gap, provenance=provenance))
    out.sort(key=lambda c: (-c.fit, c.formula))
    return out[:top]


# -- systems -------------------------------------------------------------------------------------


#: Element pools for questions that name no application and no system (most common cations
#: and anions of MP's ternary compounds first).
GENERAL_ANIONS = ("O", "N", "S", "F", "Cl", "Se")
GENERAL_CATIONS = ("Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Zn", "Al", "Ga", "In", "Ti", "Zr",
                   "Y", "La", "Sn", "Bi", "Cu", "Fe", "Mn", "Nb", "Ta", "Si", "B")

#: Pools for a narrow-gap window (gap at most 1.5 eV) without an application: heavy, soft
#: anions and cations, where MP's small-gap semiconductors are.
NARROW_GAP_ANIONS = ("Te", "Se", "Sb", "As", "S", "P")
NARROW_GAP_CATIONS = ("Pb", "Sn", "Bi", "In", "Ga", "Ge", "Cu", "Ag", "Zn", "Cd", "Mg", "Ba",
                      "Sr", "Ca", "Na", "K")


def _constraint_ok(els: set[str], objective: Objective, app: Application | None) -> bool:
    if els & set(objective.excluded_elements):
        return False
    if not set(objective.required_elements) <= els:
        return False
    if objective.required_any_of and not els & set(objective.required_any_of):
        return False
    return not (app is not None and app.one_of and not els & set(app.one_of))


def _pools(objective: Objective, app: Application | None) -> tuple[list[str], list[str]]:
    excluded = set(objective.excluded_elements)
    anion_words = [n.split(": ", 1)[1] for n in objective.notes if n.startswith("anion options")]
    anion_choice = [a for a in (anion_words[0].split(",") if anion_words else []) if a]
    required = list(objective.required_elements)
    any_of = list(objective.required_any_of)
    anions = anion_choice or [e for e in required + any_of if e in ANIONS] or (
        list(app.anions) if app else [])
    if anion_choice and app is not None:  # the application's preference order within the class
        anions = [a for a in app.anions if a in anion_choice] + [a for a in anion_choice
                                                                 if a not in app.anions]
    if app is not None and app.alloys and not anion_choice and not any(
            e in ANIONS for e in required + any_of):
        anions = ["", *anions]  # "": the metals alone (alloys and intermetallics) first
    cations = [e for e in required + any_of if e not in anions]
    metal_words = [n.split(": ", 1)[1] for n in objective.notes
                   if n.startswith("cation options: ")]
    metal_choice = [e for e in (metal_words[0].split(",") if metal_words else []) if e]
    if metal_choice:  # "borides of heavy transition metals": the class, application order first
        ordered = [c for c in (app.cations if app else []) if c in metal_choice]
        cations += [c for c in ordered + metal_choice if c not in cations]
        app_cations: list[str] = []
    else:
        app_cations = list(app.cations) if app else []
    if app is not None:
        cations += [c for c in app_cations if c not in cations]
        cations += [c for c in app.one_of if c not in cations]
    elif objective.property_targets or required or any_of or metal_choice:
        # no application named: the common inorganic pools, so a question such as "a wide band
        # gap material" or "stable lithium compounds" still gets ranked systems
        gaps = _gap_targets(objective)
        narrow = any(t.max is not None and t.max <= 1.5 for t in gaps)
        anions = anions or [a for a in (NARROW_GAP_ANIONS if narrow else GENERAL_ANIONS)
                            if a not in cations]
        if not metal_choice:
            cations += [c for c in (NARROW_GAP_CATIONS if narrow else GENERAL_CATIONS)
                        if c not in cations and c not in anions]
    return ([a for a in dict.fromkeys(anions) if a not in excluded or not a],
            [c for c in dict.fromkeys(cations) if c not in excluded])


def pooled_systems(objective: Objective, *, max_anions: int = 4, max_cations: int = 10,
                   ) -> list[tuple[str, str]]:
    """Candidate systems from the application's pools and the query's elements, in pool
    order, each with its reason (no model is run here)."""
    app = by_name(objective.application) if objective.application else None
    anions, cations = _pools(objective, app)
    if not anions and not cations:
        return []
    n_cat = app.max_cations if app else 2
    one_of: list[str | None] = list(app.one_of) if app else []
    if set(one_of) & set(objective.required_elements):  # "Na-ion": the query chose already
        one_of = []
    out: list[tuple[str, str]] = []
    for anion in anions[:max_anions] or [""]:
        pool = [c for c in cations if c != anion][:max_cations]
        if not anion:  # alloys: the first metals of the pool with each other
            pool = pool[: max(max_cations // 2, 2)]
        for k in range(1, n_cat + 1):
            for combo in itertools.combinations(pool, k):
                els = {anion, *combo} - {""}
                for extra in one_of or [None]:
                    system = els | ({extra} if extra else set())
                    if len(system) < 2 or not _constraint_ok(system, objective, app):
                        continue
                    chemsys = "-".join(sorted(system))
                    if chemsys not in (s for s, _ in out):
                        why = (f"{', '.join(sorted(system))} from the "
                               f"{app.name if app else 'query'} element pools")
                        out.append((chemsys, why))
    return out


def candidate_systems(objective: Objective, store: Any, *, limit: int = 4,
                      screen: int = 10) -> list[SystemOption]:
    """Systems to search, best first, each with its best compositions.

    Named systems and formulas come first, in the query's order. Otherwise the pooled
    systems are pre-screened (their simple charge-balanced compositions through the band-gap
    model when there is a gap window, else pool order) and the ``screen`` best ranked with the
    composition prior.
    """
    named: list[tuple[str, str]] = [(s, "named in the query") for s in objective.chemical_systems
                                    if not set(s.split("-")) & set(objective.excluded_elements)]
    for formula in objective.compositions:
        system = "-".join(sorted(el.symbol for el in Composition(formula).elements))
        if system not in (s for s, _ in named):
            named.append((system, f"contains the requested composition {formula}"))
    if named:
        out = []
        for system, why in named[:limit]:
            options = composition_options(system.split("-"), objective, store)
            wanted = [f for f in objective.compositions if "-".join(sorted(
                el.symbol for el in Composition(f).elements)) == system]
            for f in wanted:  # a composition the user named is always tried
                reduced = Composition(f).reduced_formula
                if reduced not in (c.formula for c in options):
                    options.insert(0, CompositionOption(
                        formula=reduced, chemsys=system, fit=1.0, p_stable=1.0, p_targets=1.0,
                        known=False, known_id=None, has_structure_type=has_structure_type(f),
                        provenance={"source": "named in the query"}))
            out.append(SystemOption(system, why, options))
        return out + sub_systems([s for s, _ in named[:limit]], objective, store,
                                 limit=max(limit - len(out), 0))
    pooled = pooled_systems(objective)
    if not pooled:
        return []
    shortlisted = _prescreen(pooled, objective)[:screen]
    ranked = [SystemOption(s, why, composition_options(s.split("-"), objective, store))
              for s, why in shortlisted]
    ranked = [r for r in ranked if r.compositions]
    ranked.sort(key=lambda r: -r.score)
    return ranked[:limit]


#: A sub-system of a named system is searched when one of its compositions absent from the
#: references is at least this likely (composition prior) to lie within reach of the hull.
SUB_SYSTEM_MIN_P_STABLE = 0.5


def sub_systems(named: list[str], objective: Objective, store: Any, *,
                limit: int) -> list[SystemOption]:
    """Sub-systems of the named systems worth searching: their compounds lie on the same hull
    ("stable compounds in the Mg-Sn-Sr system" includes Mg-Sn binaries), so compositions the
    references lack and the prior puts within reach of the hull are candidates too. Not when
    the question asks for ternary (quaternary...) compounds; known compositions are left out.
    """
    if limit <= 0 or re.search(r"\b(ternary|quaternary|quinary)\b", objective.query.lower()):
        return []
    seen = set(named)
    found: list[SystemOption] = []
    for system in named:
        els = system.split("-")
        for k in range(len(els) - 1, 1, -1):
            for sub in itertools.combinations(els, k):
                chemsys = "-".join(sorted(sub))
                if chemsys in seen:
                    continue
                seen.add(chemsys)
                options = [o for o in composition_options(list(sub), objective, store)
                           if not o.known and o.p_stable >= SUB_SYSTEM_MIN_P_STABLE]
                if options:
                    found.append(SystemOption(chemsys, f"sub-system of the named {system}: its "
                                              f"compounds lie on the same hull", options))
    found.sort(key=lambda r: -r.score)
    return found[:limit]


_TEMPLATES = ((1, 1), (1, 2), (2, 1), (1, 3), (2, 3), (3, 2), (1, 1, 3), (2, 1, 4), (1, 2, 4),
              (1, 1, 2), (3, 1, 3), (1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 7), (2, 1, 6))


def _prescreen(pooled: list[tuple[str, str]], objective: Objective) -> list[tuple[str, str]]:
    """Pooled systems ordered by how likely their simple compositions meet the gap window
    (pool order kept when there is no composition-level target)."""
    if not _gap_targets(objective):
        return pooled
    from matloop.materials.chemistry import charge_balanced

    per_system: dict[str, list[str]] = {}
    for system, _ in pooled:
        els = system.split("-")
        anion = [e for e in els if e in ANIONS][-1:] or els[-1:]
        others = [e for e in els if e not in anion]
        order = others + anion
        formulas = []
        for template in _TEMPLATES:
            if len(template) != len(order):
                continue
            formula = "".join(f"{e}{n}" for e, n in zip(order, template, strict=True))
            if charge_balanced(formula):
                formulas.append(Composition(formula).reduced_formula)
        per_system[system] = formulas
    flat = [f for fs in per_system.values() for f in fs]
    if not flat:
        return pooled
    probabilities, _, _ = target_probabilities(flat, objective)
    best: dict[str, float] = {}
    i = 0
    for system, fs in per_system.items():
        best[system] = max(probabilities[i:i + len(fs)], default=0.0)
        i += len(fs)
    rank = {s: k for k, (s, _) in enumerate(pooled)}
    return sorted(pooled, key=lambda sw: (-round(best.get(sw[0], 0.0), 2), rank[sw[0]]))


def widened_systems(objective: Objective, store: Any, *, limit: int = 4,
                    ) -> tuple[list[SystemOption], list[str]]:
    """Systems for a question whose constraints together admit none: the constraints are
    relaxed, fewest first and least essential first (a structure type asked for, several
    compound classes read as alternatives, an "X or Y" element list, the application's
    element pools), until a system fits.

    Returns the options and what was relaxed (empty lists when nothing helps). Elements the
    question names or excludes, and its property targets, are never relaxed.
    """
    steps: list[tuple[str, dict[str, Any]]] = []
    hints = [n for n in objective.notes if n.startswith("structure hint: ")]
    if hints:
        asked = ", ".join(h.split(": ", 1)[1] for h in hints)
        steps.append((f"the structure type asked for ({asked}) is not required",
                      {"notes": [n for n in objective.notes if n not in hints]}))
    classes = [a for n in objective.notes if n.startswith("class anions: ")
               for a in n.split(": ", 1)[1].split(",") if a in objective.required_elements]
    if len(classes) >= 2:
        steps.append((f"the compound classes are alternatives: at least one of "
                      f"{', '.join(classes)} instead of all of them",
                      {"required_elements": [e for e in objective.required_elements
                                             if e not in classes],
                       "required_any_of": classes}))
    if objective.required_any_of:
        steps.append((f"at least one of {', '.join(objective.required_any_of)} is no longer "
                      f"required", {"required_any_of": []}))
    if objective.application:
        steps.append((f"the {objective.application} element pools are replaced by the general "
                      f"inorganic pools", {"application": ""}))
    from itertools import combinations

    for k in range(1, len(steps) + 1):  # the fewest relaxations that help, least essential first
        for chosen in combinations(steps, k):
            update: dict[str, Any] = {}
            for _, change in chosen:
                update.update(change)
            options = candidate_systems(objective.model_copy(update=update), store, limit=limit)
            if options:
                return options, [what for what, _ in chosen]
    return [], []


def no_system_problem(objective: Objective, relaxed: list[str]) -> QueryProblem:
    """The question to ask (or the assumption to record) when no chemical system satisfies
    every constraint of ``objective`` and ``relaxed`` makes some fit."""
    what = "; ".join(relaxed)
    return QueryProblem(
        kind="no_system", text=objective.query[:200],
        message="no chemical system satisfies every constraint together "
                f"({objective.interpretation})",
        assumption=f"constraints relaxed so that systems fit: {what}",
        question=f"No chemical system satisfies every constraint of the question. Go on with "
                 f"these relaxed: {what}? Or rephrase (name a system such as Zn-Sn-P, or fewer "
                 f"constraints).")
