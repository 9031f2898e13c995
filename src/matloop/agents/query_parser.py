"""Deterministic reading of a materials question into an :class:`Objective`.

Understands chemical systems (``Li-Fe-O``), formulas (``LiFePO4``), element names
(``lithium``), compound classes (``oxide``, ``halide``), exclusions (``lead-free``,
``without cobalt``, ``non-toxic``), property targets with units (``band gap 1.2-1.6 eV``,
``bulk modulus above 200 GPa``, ``formation energy below -1 eV/atom``), stability wording and
applications that imply targets (``photovoltaic`` -> band gap 1.1-1.7 eV). Every assumption it
makes is written into ``Objective.notes``; what it cannot read as asked (unknown elements,
conditions it does not understand) goes into ``Objective.problems`` (see
:mod:`matloop.agents.query_checks`), so the campaign can stop and ask.
"""

from __future__ import annotations

import re

from pymatgen.core import Composition, Element

from matloop.agents.applications import application_for
from matloop.agents.query_checks import (
    find_problems,
    impossible_range,
    unit_mismatch,
    unread_property,
)
from matloop.schemas import PROPERTY_UNITS, Objective, PropertyTarget, QueryProblem

_ELEMENT_NAMES = {el.long_name.lower(): el.symbol for el in Element}
_ELEMENT_NAMES.update({"aluminum": "Al", "sulphur": "S", "caesium": "Cs", "cesium": "Cs"})

CLASS_ANIONS: dict[str, list[str]] = {
    "oxide": ["O"], "nitride": ["N"], "sulfide": ["S"], "sulphide": ["S"], "selenide": ["Se"],
    "telluride": ["Te"], "fluoride": ["F"], "chloride": ["Cl"], "bromide": ["Br"],
    "iodide": ["I"], "phosphide": ["P"], "carbide": ["C"], "boride": ["B"], "hydride": ["H"],
    "arsenide": ["As"], "antimonide": ["Sb"], "oxynitride": ["O", "N"],
    "oxyfluoride": ["O", "F"], "oxysulfide": ["O", "S"], "oxyhalide": ["O"],
    "ferrite": ["Fe", "O"],
}
#: Metal classes a question may ask for ("borides of heavy transition metals"): at least one.
TRANSITION_METALS = {
    "3d": ["Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu"],
    "4d": ["Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag"],
    "5d": ["Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au"],
}
_METAL_CLASSES = [
    (r"\b(?:heavy|4d\s*(?:and|/|or)\s*5d|5d)\s+transition[- ]metals?\b",
     TRANSITION_METALS["4d"] + TRANSITION_METALS["5d"]),
    (r"\b(?:3d|first[- ]row|light)\s+transition[- ]metals?\b", TRANSITION_METALS["3d"]),
    (r"\btransition[- ]metals?\b",
     TRANSITION_METALS["3d"] + TRANSITION_METALS["4d"] + TRANSITION_METALS["5d"]),
]
_ANY_OF: dict[str, list[str]] = {
    "halide": ["F", "Cl", "Br", "I"],
    "chalcogenide": ["S", "Se", "Te"],
    "pnictide": ["N", "P", "As", "Sb"],
}
TOXIC = ["Pb", "Cd", "Hg", "As", "Tl", "Be"]
RARE_EARTHS = ["Sc", "Y", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho",
               "Er", "Tm", "Yb", "Lu"]
NOBLE_GASES = ["He", "Ne", "Ar", "Kr", "Xe", "Rn"]

STRUCTURE_WORDS = {
    "double perovskite": "double_perovskite", "perovskite": "perovskite", "spinel": "spinel",
    "olivine": "olivine", "rocksalt": "rocksalt", "rock-salt": "rocksalt",
    "wurtzite": "wurtzite", "zincblende": "zincblende", "zinc blende": "zincblende",
    "fluorite": "fluorite", "rutile": "rutile", "garnet": "garnet", "layered": "alpha_NaFeO2",
    "delafossite": "delafossite", "pyrochlore": "pyrochlore", "heusler": "heusler",
    "half-heusler": "half_heusler", "chalcopyrite": "chalcopyrite", "kesterite": "kesterite",
    "max phase": "MAX_211", "ruddlesden-popper": "K2NiF4",
}

_PROPERTY_WORDS = [
    (r"band\s*-?\s*gaps?|bandgaps?|\bgaps?\b", "band_gap", "eV"),
    (r"bulk\s+modul(?:us|i)", "bulk_modulus", "GPa"),
    (r"shear\s+modul(?:us|i)", "shear_modulus", "GPa"),
    (r"(?:vickers\s+)?hardness", "hardness", "GPa"),
    (r"\bdensity\b|\bdensities\b", "density", "g/cm3"),
    (r"magnetic\s+moments?|magneti[sz]ation", "magnetic_moment", "bohr_per_atom"),
    (r"formation\s+energ(?:y|ies)", "formation_energy", "eV/atom"),
    (r"energ(?:y|ies)\s+above\s+(?:the\s+)?hull|e_above_hull|e[_ ]?hull", "e_above_hull",
     "eV/atom"),
]
_NUM = r"(-?\d+(?:\.\d+)?)"
_UNIT = (r"\s*(ev/atom|mev/atom|ev|mev|gpa|mpa|g/cm3|g/cm³|g\s*cm-3|μb/atom|µb/atom|"
         r"mu_?b/atom|μb|µb|mu_?b|bohr(?:\s+magnetons?)?(?:\s+per\s+atom)?)?")



def _is_element(symbol: str) -> bool:
    # pymatgen also accepts D and T (deuterium, tritium): in a question they are letters
    return (Element.is_valid_symbol(symbol) and symbol not in NOBLE_GASES
            and symbol not in ("D", "T"))


def _convert(value: float, unit: str | None, target_unit: str) -> float:
    unit = (unit or "").lower()
    if unit == "mev" and target_unit == "eV":
        return value / 1000
    if unit == "mev/atom" and target_unit == "eV/atom":
        return value / 1000
    if unit == "mpa" and target_unit == "GPa":
        return value / 1000
    return value


#: Units each property's conditions may be written in (lower case, as matched).
_UNITS_OF = {"eV": ("ev", "mev"), "eV/atom": ("ev/atom", "mev/atom", "ev", "mev"),
             "GPa": ("gpa", "mpa"), "g/cm3": ("g/cm3", "g/cm³"),
             "bohr_per_atom": ("μb/atom", "µb/atom", "mub/atom", "mu_b/atom", "μb", "µb", "mub",
                               "mu_b", "bohr")}
#: Families of targets: an explicit target of one member replaces an application's implied
#: target of another ("hardness above 30 GPa" replaces "bulk modulus >= 200 GPa implied by
#: hardness").
_FAMILY = {"bulk_modulus": "mechanical", "shear_modulus": "mechanical", "hardness": "mechanical"}
#: What follows a number when it is given in a unit of another quantity.
_FOREIGN_UNIT = re.compile(r"\s*(k|°c|°f|c|kpa|pa|kbar|bar|s/cm|ms/cm|g/cm3|g/cm³|%|nm|å|v|"
                           r"w/mk|mah/g|wh/kg|t|hz|ghz|thz|atoms?|ev/atom|mev/atom|ev|mev|gpa|"
                           r"mpa)(?![a-z])")


def _property_targets(text: str, notes: list[str], *,
                      consumed: list[tuple[int, int]] | None = None,
                      problems: list[QueryProblem] | None = None) -> list[PropertyTarget]:
    """Property conditions; the character spans read go to ``consumed``, conditions that are
    present but cannot be read (a unit of another quantity, a negative band gap, a number
    before the property name) to ``problems``."""
    consumed = consumed if consumed is not None else []
    problems = problems if problems is not None else []
    targets: list[PropertyTarget] = []
    lowered = text.lower()
    for pattern, name, unit in _PROPERTY_WORDS:
        for match in re.finditer(pattern, lowered):
            tail = lowered[match.end(): match.end() + 60]
            window = tail.split(",")[0].split(";")[0]
            following = [m.start() for p, _, _ in _PROPERTY_WORDS
                         for m in re.finditer(p, window) if m.start() > 0]
            if following:  # "... below -2 eV/atom and bulk modulus > 150 GPa"
                window = window[:min(following)]
            ranged = re.search(rf"(?:of|=|:|between|from|in\s+the\s+range(?:\s+of)?)?\s*{_NUM}"
                               rf"{_UNIT}\s*(?:-|–|to|and)\s*{_NUM}{_UNIT}", window)
            lower = re.search(rf"(?:above|over|greater\s+than|more\s+than|at\s+least|exceeding|"
                              rf">=|>|≥|min(?:imum)?(?:\s+of)?)\s*{_NUM}{_UNIT}", window)
            upper = re.search(rf"(?:below|under|less\s+than|at\s+most|lower\s+than|<=|<|≤|"
                              rf"max(?:imum)?(?:\s+of)?)\s*{_NUM}{_UNIT}", window)
            around = re.search(rf"(?:of|=|:|around|about|near|~|≈)\s*{_NUM}{_UNIT}", window)
            used = [m for m in ((ranged,) if ranged else (lower, upper) if lower or upper
                                else (around,)) if m is not None]
            if not used:
                before = lowered[max(0, match.start() - 25): match.start()]
                if re.search(r"\d\s*(?:m?ev|gpa|mpa)?\s*$", before):
                    problems.append(unread_property(text[max(0, match.start() - 25):
                                                         match.end()].strip(), name, unit))
                continue
            end = match.end() + max(m.end() for m in used)
            span_text = text[match.start(): end]
            bad_unit = _foreign_unit(window, used, unit)
            if bad_unit:
                problems.append(unit_mismatch(span_text, name, unit, bad_unit))
                consumed.append((match.start(), end + len(bad_unit) + 1))
                continue
            consumed.append((match.start(), end))
            target: PropertyTarget | None = None
            if ranged:
                lo = _convert(float(ranged.group(1)), ranged.group(2) or ranged.group(4), unit)
                hi = _convert(float(ranged.group(3)), ranged.group(4), unit)
                target = PropertyTarget(name=name, unit=unit, min=min(lo, hi), max=max(lo, hi),
                                        source_text=(match.group(0) + ranged.group(0)).strip())
            elif lower or upper:
                lo_bound = _convert(float(lower.group(1)), lower.group(2), unit) if lower else None
                hi_bound = _convert(float(upper.group(1)), upper.group(2), unit) if upper else None
                target = PropertyTarget(name=name, unit=unit, min=lo_bound, max=hi_bound,
                                        source_text=match.group(0))
            elif around:
                centre = _convert(float(around.group(1)), around.group(2), unit)
                tol = 0.2 if unit == "eV" else abs(centre) * 0.1
                target = PropertyTarget(name=name, unit=unit, min=centre - tol, max=centre + tol,
                                        source_text=(match.group(0) + around.group(0)).strip())
                notes.append(f"'{target.source_text}' read as {target.describe()} "
                             f"(±{tol:g} {unit})")
            if target is not None and name in ("band_gap", "bulk_modulus") and \
                    target.max is not None and target.max < 0:
                problems.append(impossible_range(span_text, name, unit))
                continue
            if target is not None and all(t.name != name for t in targets):
                targets.append(target)
    qualitative = re.search(r"\b(wide|large|ultra-?wide|narrow|small)[- ](?:band[- ]?)?gap",
                            lowered)
    if qualitative and all(t.name != "band_gap" for t in targets):
        word = qualitative.group(1)
        bounds: tuple[float | None, float | None] = (
            (4.5, None) if word.startswith("ultra") else (3.0, None)
            if word in ("wide", "large") else (None, 1.0))
        target = PropertyTarget(name="band_gap", unit="eV", min=bounds[0], max=bounds[1],
                                source_text=qualitative.group(0))
        targets.append(target)
        notes.append(f"'{qualitative.group(0)}' read as {target.describe()}")
    return targets


def _foreign_unit(window: str, used: list[re.Match[str]], unit: str) -> str | None:
    """The unit after a condition's number when it is not a unit of the property."""
    for m in used:
        for g in range(1, (m.lastindex or 0) + 1):
            if m.group(g) is None or not re.fullmatch(_NUM, m.group(g)):
                continue
            after = _FOREIGN_UNIT.match(window, m.end(g))
            if after and after.group(1) not in _UNITS_OF[unit]:
                return after.group(1)
    return None


#: Capitalised words and acronyms that spell element symbols (UV = U + V, FCC = F + C + C).
ACRONYMS = frozenset({
    "UV", "PV", "NIR", "CO", "NO", "ON", "IN", "IS", "IF", "OF", "SO", "US", "UP", "OK", "NOW",
    "SI", "CN", "SC", "BCC", "FCC", "HCP", "SOFC", "SOFCS", "CV", "IV", "PC", "NB", "PS", "HOW",
    "WHO", "WHY", "ONLY", "NON", "BY", "YOU", "SPIN", "CPU", "PBC", "TCO", "TCOS", "CPS",
})


def _acronym(token: str) -> bool:
    """All-capital letters without digits: an acronym or shouted word unless MP lists it."""
    if not re.fullmatch(r"[A-Z]{2,}", token):
        return False
    if token in ACRONYMS:
        return True
    from matloop.materials.mp_pack import mp_compositions

    try:
        return Composition(token).reduced_formula not in mp_compositions()
    except Exception:
        return True


def _formulas(text: str) -> list[str]:
    out: list[str] = []
    for token in re.findall(r"\b(?:[A-Z][a-z]?\d*(?:\.\d+)?)+\b", text):
        symbols = re.findall(r"[A-Z][a-z]?", token)
        if not all(_is_element(s) for s in symbols):
            continue
        if len(set(symbols)) < 2 and not re.search(r"\d", token):
            continue
        if _acronym(token):
            continue
        try:
            comp = Composition(token)
        except (ValueError, KeyError, TypeError):  # pymatgen's errors for non-formulas
            continue
        if len(comp.elements) >= 2 and comp.reduced_formula not in out:
            out.append(comp.reduced_formula)
    return out


def parse_query(query: str, *, stability_threshold_ev_per_atom: float = 0.1,
                max_atoms: int = 20) -> Objective:
    """Read a question into an Objective; assumptions go into ``notes``."""
    text = query.strip()
    lowered = text.lower()
    notes: list[str] = []
    systems: list[str] = []
    for match in re.finditer(r"\b([A-Z][a-z]?(?:\s*-\s*[A-Z][a-z]?)+)\b", text):
        symbols = [s.strip() for s in match.group(1).split("-")]
        if all(_is_element(s) for s in symbols) and len(set(symbols)) >= 2:
            chemsys = "-".join(sorted(set(symbols)))
            if chemsys not in systems:
                systems.append(chemsys)
    formulas = _formulas(re.sub(r"\b[A-Z][a-z]?(?:-[A-Z][a-z]?)+\b", " ", text))

    excluded: list[str] = []
    for match in re.finditer(r"\b([A-Za-z]+)[- ]free\b", text):
        word = match.group(1)
        symbol = word if _is_element(word) else _ELEMENT_NAMES.get(word.lower())
        if word.lower() in ("rare-earth", "rare", "earth") or "rare-earth-free" in lowered:
            excluded += RARE_EARTHS
        elif symbol:
            excluded.append(symbol)
    for match in re.finditer(r"\b(?:without|no|excluding|avoid(?:ing)?)\s+([A-Za-z]+)", text):
        word = match.group(1)
        symbol = word if _is_element(word) and word[0].isupper() else _ELEMENT_NAMES.get(
            word.lower())
        if symbol:
            excluded.append(symbol)
    if "rare-earth-free" in lowered or "rare earth free" in lowered:
        excluded += RARE_EARTHS
    if re.search(r"non-?toxic", lowered):
        excluded += TOXIC
        notes.append(f"'non-toxic' read as excluding {', '.join(TOXIC)}")

    any_of = _one_of(text, excluded)
    cation_options: list[str] = []
    if not re.search(r"transition[- ]metal[- ]free", lowered):
        for pattern, metals in _METAL_CLASSES:
            if (m := re.search(pattern, lowered)):
                cation_options = [e for e in metals if e not in excluded]
                notes.append(f"'{m.group(0)}' read as metals from {', '.join(cation_options)}")
                break
    if any_of:
        notes.append(f"'{any_of[1]}' read as: at least one of {', '.join(any_of[0])}")
    alternatives = set(any_of[0]) if any_of else set()
    required: list[str] = []
    for name, symbol in _ELEMENT_NAMES.items():
        if re.search(rf"\b{name}\b", lowered) and not re.search(rf"\b{name}[- ]free\b", lowered):
            if symbol not in excluded and symbol not in required and symbol not in alternatives:
                required.append(symbol)
    for match in re.finditer(r"\b(li|na|k|mg|ca|zn|al)[- ]?ion\b", lowered):
        symbol = match.group(1).capitalize()
        if symbol not in excluded and symbol not in required:
            required.append(symbol)
            notes.append(f"'{match.group(0)}' read as: must contain {symbol}")
    for match in re.finditer(r"\b([A-Z][a-z]?)[- ](?:based|containing|rich)\b", text):
        if _is_element(match.group(1)) and match.group(1) not in required:
            required.append(match.group(1))
    anion_options: list[str] = []
    classes = _class_alternatives(lowered)
    if classes and not any_of and not systems and not formulas:
        options = [a for w in classes for a in CLASS_ANIONS[w] if a not in excluded]
        any_of = (list(dict.fromkeys(options)), " or ".join(classes))
        notes.append(f"'{any_of[1]}' read as: at least one of {', '.join(any_of[0])}")
    class_required: list[str] = []
    for word, anions in CLASS_ANIONS.items():
        if word in classes:
            continue
        if re.search(rf"\b{word}s?\b", lowered) and not systems and not formulas:
            for a in anions:
                if a not in required:
                    required.append(a)
                    class_required.append(a)
    for word, anions in _ANY_OF.items():
        if re.search(rf"\b{word}s?\b", lowered):
            anion_options = [a for a in anions if a not in excluded]
            notes.append(f"'{word}' read as one of {', '.join(anion_options)}")

    consumed: list[tuple[int, int]] = []
    problems: list[QueryProblem] = []
    targets = _property_targets(text, notes, consumed=consumed, problems=problems)
    application = ""
    found = application_for(text)
    if found is not None:
        application = found.name
        for implied in found.targets:
            family = _FAMILY.get(implied.name, implied.name)
            if all(_FAMILY.get(t.name, t.name) != family for t in targets):
                targets.append(implied)
                notes.append(f"{implied.describe()} {implied.source_text}")

    require_stable = True
    threshold = stability_threshold_ev_per_atom
    within = re.search(rf"within\s+{_NUM}\s*(mev|ev)(?:/atom)?\s+(?:of\s+)?(?:the\s+)?hull",
                       lowered)
    if within:
        threshold = float(within.group(1)) / (1000 if within.group(2) == "mev" else 1)
        consumed.append(within.span())
    for t in targets:
        if t.name == "e_above_hull" and t.max is not None:
            threshold = t.max
    if re.search(r"\bmetastable\b", lowered) and not within:
        notes.append(f"'metastable' read as e_above_hull <= {threshold:g} eV/atom")
    if not re.search(r"\bstable\b|stability|hull|synthesi[sz]able|metastable", lowered):
        notes.append(f"stability not mentioned: candidates are still required to lie within "
                     f"{threshold:g} eV/atom of the hull")

    new_only = re.search(r"\b(new|novel|undiscovered|unreported|hypothetical)\b", lowered)
    if new_only:
        notes.append(f"'{new_only.group(1)}' read as: compositions the references list are not "
                     f"proposed (they stay hull references)")
    structure_hints = [proto for word, proto in STRUCTURE_WORDS.items()
                       if re.search(rf"\b{re.escape(word)}s?\b", lowered)]
    if "double_perovskite" in structure_hints and "perovskite" in structure_hints:
        structure_hints.remove("perovskite")
    for f in formulas:
        for el in Composition(f).elements:
            if el.symbol in excluded:
                notes.append(f"formula {f} contains excluded element {el.symbol}")
    for chemsys in systems:
        bad = [el for el in chemsys.split("-") if el in excluded]
        if bad:
            notes.append(f"chemical system {chemsys} contains excluded {', '.join(bad)}")
    interpretation = _interpretation(systems, formulas, required, excluded, targets,
                                     structure_hints, application, threshold, anion_options,
                                     any_of[0] if any_of else [])
    objective = Objective(
        query=text, interpretation=interpretation, chemical_systems=systems,
        compositions=formulas, required_elements=sorted(set(required)),
        excluded_elements=sorted(set(excluded)), property_targets=targets,
        required_any_of=list(any_of[0]) if any_of else [],
        require_stable=require_stable, stability_threshold_ev_per_atom=threshold,
        application=application, max_atoms=max_atoms, notes=notes,
        new_compositions_only=bool(new_only),
    )
    objective.notes += [f"structure hint: {h}" for h in structure_hints]
    if anion_options:
        objective.notes.append("anion options: " + ",".join(anion_options))
    if class_required:
        objective.notes.append("class anions: " + ",".join(class_required))
    if cation_options:
        objective.notes.append("cation options: " + ",".join(cation_options))
    return with_problems(objective, problems + find_problems(text, consumed))


def query_problems(query: str) -> list[QueryProblem]:
    """What in ``query`` cannot be read as asked (unknown elements, conditions not
    understood); empty when the question is clear. See :mod:`matloop.agents.query_checks`."""
    return parse_query(query).problems


def with_problems(objective: Objective, problems: list[QueryProblem]) -> Objective:
    """``objective`` with ``problems`` added (once each) and their assumptions in its notes,
    first, so the report states them before anything else."""
    known = {(p.kind, p.message) for p in objective.problems}
    new = [p for p in problems if (p.kind, p.message) not in known]
    if not new:
        return objective
    notes = [f"assumed: {p.describe()}" for p in new]
    return objective.model_copy(update={"problems": [*objective.problems, *new],
                                        "notes": notes + list(objective.notes)})


_ELEMENT_WORD = r"(?:[A-Z][a-z]?|[a-z]{3,})"


def _class_alternatives(lowered: str) -> list[str]:
    """Compound-class words given as alternatives: "phosphides or nitrides", "oxides,
    sulfides and selenides" (materials of either class, not compounds of both)."""
    words = "|".join(sorted(CLASS_ANIONS, key=len, reverse=True))
    chain = re.search(rf"\b({words})s?((?:\s*(?:,|/|\bor\b|\band\b|\band/or\b|,\s*or\b|"
                      rf",\s*and\b)\s*(?:{words})s?\b)+)", lowered)
    if not chain:
        return []
    found = [chain.group(1)] + re.findall(rf"\b({words})s?\b", chain.group(2))
    return list(dict.fromkeys(found)) if len(set(found)) >= 2 else []


def _one_of(text: str, excluded: list[str]) -> tuple[list[str], str] | None:
    """An "X, Y or Z" list of elements after containing/with/including/based on/either."""
    pattern = (rf"(?:containing|contain|with|including|include|made\s+of|based\s+on|"
               rf"either|from)\s+((?:{_ELEMENT_WORD}\s*,\s*)*{_ELEMENT_WORD}\s*,?\s+or\s+"
               rf"{_ELEMENT_WORD})\b")
    for match in re.finditer(pattern, text):
        words = [w for w in re.split(r"\s*,\s*|\s+or\s+", match.group(1)) if w]
        symbols = []
        for w in words:
            symbol = w if _is_element(w) and w[0].isupper() else _ELEMENT_NAMES.get(w.lower())
            if symbol is None:
                break
            symbols.append(symbol)
        else:
            kept = [s for s in dict.fromkeys(symbols) if s not in excluded]
            if len(kept) >= 2:
                return kept, match.group(0)
    return None


def structure_hints(objective: Objective) -> list[str]:
    """Prototype names the query asked for (from ``notes``)."""
    return [n.split(": ", 1)[1] for n in objective.notes if n.startswith("structure hint: ")]


def anion_options(objective: Objective) -> list[str]:
    """Anions allowed by a class word such as 'halide' (from ``notes``)."""
    for n in objective.notes:
        if n.startswith("anion options: "):
            return [a for a in n.split(": ", 1)[1].split(",") if a]
    return []


def _interpretation(systems: list[str], formulas: list[str], required: list[str],
                    excluded: list[str], targets: list[PropertyTarget], hints: list[str],
                    application: str, threshold: float, anions: list[str],
                    any_of: list[str]) -> str:
    parts = []
    if systems:
        parts.append(f"in the chemical system(s) {', '.join(systems)}")
    if formulas:
        parts.append(f"at or near the composition(s) {', '.join(formulas)}")
    if hints:
        parts.append(f"in {', '.join(hints)}-type structures")
    if required:
        parts.append(f"containing {', '.join(sorted(set(required)))}")
    if any_of:
        parts.append(f"containing at least one of {', '.join(any_of)}")
    if anions:
        parts.append(f"with anion {'/'.join(anions)}")
    if excluded:
        parts.append(f"without {', '.join(sorted(set(excluded)))}")
    if not parts:
        parts.append("matching the stated targets")
    text = "Look for compounds " + ", ".join(parts)
    text += f"; stable means within {threshold:g} eV/atom of the convex hull"
    if targets:
        text += "; targets: " + "; ".join(t.describe() for t in targets)
    if application:
        text += f"; application: {application}"
    return text + "."


__all__ = ["PROPERTY_UNITS", "anion_options", "parse_query", "query_problems",
           "structure_hints", "with_problems"]
