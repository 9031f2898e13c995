"""Chemical reasoning the offline policies use: charge balance, ionic radii, Goldschmidt
tolerance factors, data-mined ion substitution and choice of chemical systems to search."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

from pymatgen.core import Composition, Element, Species

from matloop.logs import quiet_third_party
from matloop.materials.references import starter_entries

ANIONS = {"O": -2, "S": -2, "Se": -2, "Te": -2, "N": -3, "P": -3, "F": -1, "Cl": -1, "Br": -1,
          "I": -1, "H": -1, "C": -4, "B": -3, "As": -3, "Sb": -3}
HALOGENS = ("F", "Cl", "Br", "I")


def ionic_radius(symbol: str, oxidation: int, cn: str) -> float | None:
    """Shannon radius (Å) for a coordination, falling back to the element's average radius."""
    with quiet_third_party():
        try:
            return float(Species(symbol, oxidation).get_shannon_radius(cn))
        except Exception:
            pass
        try:
            r = Species(symbol, oxidation).ionic_radius
            if r:
                return float(r)
        except Exception:
            pass
        el = Element(symbol)
        r = el.average_anionic_radius if oxidation < 0 else el.average_cationic_radius
        return float(r) if r and float(r) > 0 else None


def tolerance_factor(a: tuple[str, int], b: tuple[str, int], x: tuple[str, int]) -> float | None:
    """Goldschmidt tolerance factor t = (rA + rX) / (√2 (rB + rX)) for ABX3."""
    ra, rb, rx = ionic_radius(*a, "XII"), ionic_radius(*b, "VI"), ionic_radius(*x, "VI")
    if not (ra and rb and rx):
        return None
    return (ra + rx) / (math.sqrt(2) * (rb + rx))


def octahedral_factor(b: tuple[str, int], x: tuple[str, int]) -> float | None:
    """μ = rB / rX; perovskites need roughly 0.41 < μ < 0.9."""
    rb, rx = ionic_radius(*b, "VI"), ionic_radius(*x, "VI")
    return None if not (rb and rx) else rb / rx


_A_SITE = {1: ["Cs", "Rb", "K", "Na", "Tl", "Ag"], 2: ["Ba", "Sr", "Ca", "Pb", "Eu"],
           3: ["La", "Y", "Bi", "Nd", "Pr"]}
_B_SITE = {1: ["Ag", "Cu", "Na", "Li"], 2: ["Pb", "Sn", "Ge", "Mg", "Ca", "Zn", "Cd", "Mn", "Fe",
                                          "Co", "Ni", "Cu", "Eu", "Yb"],
           3: ["Al", "Ga", "In", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Sb", "Bi", "Y"],
           4: ["Ti", "Zr", "Hf", "Sn", "Ge", "Mn", "Ru", "Mo", "Pr", "Ce"],
           5: ["Nb", "Ta", "V", "Sb"]}


def perovskite_systems(anions: list[str], excluded: set[str], required: set[str], *,
                       limit: int = 6) -> list[tuple[str, str]]:
    """ABX3 chemical systems ranked by how well their tolerance and octahedral factors suit a
    perovskite (t closest to 0.93 within 0.8-1.05 and 0.41 < μ < 0.9).

    Returns:
        (chemical system, reasoning) pairs.
    """
    scored: list[tuple[float, str, str]] = []
    for x in anions:
        qx = ANIONS.get(x)
        if qx is None or x in excluded:
            continue
        total = -3 * qx
        for qa, a_list in _A_SITE.items():
            qb = total - qa
            for a, b in itertools.product(a_list, _B_SITE.get(qb, [])):
                if a == b or a in excluded or b in excluded:
                    continue
                t = tolerance_factor((a, qa), (b, qb), (x, qx))
                mu = octahedral_factor((b, qb), (x, qx))
                if t is None or mu is None or not (0.8 <= t <= 1.05 and 0.41 <= mu <= 0.9):
                    continue
                system = "-".join(sorted({a, b, x}))
                if required and not required <= {a, b, x} | {x}:
                    continue
                why = (f"{a}{b}{x}3: {a}{qa:+d}/{b}{qb:+d}/{x}{qx:+d} balance; tolerance factor "
                       f"t = {t:.2f}, octahedral factor μ = {mu:.2f}")
                scored.append((abs(t - 0.93) + 0.2 * abs(mu - 0.6), system, why))
    out: list[tuple[str, str]] = []
    for _, system, why in sorted(scored):
        if system not in [s for s, _ in out]:
            out.append((system, why))
        if len(out) >= limit:
            break
    return out


@lru_cache(maxsize=1)
def _substitution() -> object:
    from pymatgen.analysis.structure_prediction.substitution_probability import (
        SubstitutionProbability,
    )

    with quiet_third_party():
        return SubstitutionProbability()


def similar_cations(symbol: str, oxidation: int, *, excluded: set[str], limit: int = 3,
                    ) -> list[tuple[str, float]]:
    """Cations that most often replace ``symbol^oxidation`` in known structures (data-mined
    substitution probabilities of Hautier et al., shipped with pymatgen)."""
    sp = _substitution()
    target = Species(symbol, oxidation)
    scored = []
    for other in sp.species:  # type: ignore[attr-defined]
        if other.symbol == symbol or other.symbol in excluded or other.oxi_state != oxidation:
            continue
        scored.append((other.symbol, float(sp.prob(target, other))))  # type: ignore[attr-defined]
    scored.sort(key=lambda kv: -kv[1])
    seen: list[tuple[str, float]] = []
    for sym, p in scored:
        if sym not in [s for s, _ in seen]:
            seen.append((sym, p))
        if len(seen) >= limit:
            break
    return seen


def seed_compounds(required: set[str], excluded: set[str], anions: list[str],
                   hints: list[str]) -> list[dict]:
    """Starter-library compounds that fit the constraints (the offline 'known phases')."""
    out = []
    for entry in starter_entries():
        comp = Composition(entry["formula"])
        els = {el.symbol for el in comp.elements}
        if len(els) < 2 or els & excluded:
            continue
        if required and not required <= els:
            continue
        if anions and not els & set(anions):
            continue
        if hints and entry["prototype"] not in hints:
            continue
        out.append(entry)
    return out


def mixed_systems(seeds: list[dict], excluded: set[str], *, limit: int = 4,
                  ) -> list[tuple[str, str]]:
    """Ternary systems joining two seed binaries that share an anion, ranked by how often
    their cations substitute for each other (similar ions order or mix readily)."""
    by_anion: dict[str, list[tuple[str, int]]] = {}
    for entry in seeds:
        comp = Composition(entry["formula"])
        if len(comp.elements) != 2:
            continue
        with quiet_third_party():
            guesses = comp.oxi_state_guesses(max_sites=-50)
        if not guesses:
            continue
        states = guesses[0]
        negative = [el for el, q in states.items() if q < 0]
        positive = [(el, int(round(q))) for el, q in states.items() if q > 0]
        if len(negative) == 1 and len(positive) == 1:
            by_anion.setdefault(negative[0], []).append(positive[0])
    sp = _substitution()
    scored = []
    for anion, cations in by_anion.items():
        for (a, qa), (b, qb) in itertools.combinations(sorted(set(cations)), 2):
            if a == b or a in excluded or b in excluded:
                continue
            try:
                p = float(sp.prob(Species(a, qa), Species(b, qb)))  # type: ignore[attr-defined]
            except Exception:
                p = 0.0
            scored.append((p, "-".join(sorted({a, b, anion})),
                           f"{a}{qa:+d} and {b}{qb:+d} both form {anion} compounds "
                           f"(substitution probability {p:.2g})"))
    out: list[tuple[str, str]] = []
    for _, system, why in sorted(scored, reverse=True):
        if system not in [s for s, _ in out]:
            out.append((system, why))
        if len(out) >= limit:
            break
    return out
