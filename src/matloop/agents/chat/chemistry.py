"""Chemistry named in a chat message.

Formulas in any case and element order, compound and mineral names, abbreviations, element
names and symbols, and chemical systems however they are typed (``Li-Fe-O``, ``li-fe-0``,
``Li–Fe–O``, ``Li Fe O system``, ``LiFeO system``, ``lithium-iron-oxygen``, ``between Ba, Ti
and O``).

Formulas come back as pymatgen reduced formulas (``FeLiPO4`` -> ``LiFePO4``), systems as sorted
'-'-joined symbols (``Ba-O-Ti``). Also: element substitution for follow-ups ("the Na
analogue" of LiCoO2 is NaCoO2).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from pymatgen.core import Composition, Element

from matloop.agents.chat.entities import ELEMENT_NAMES, SYMBOLS

_CASELESS = {s.lower(): s for s in SYMBOLS}


def _starter_formulas() -> set[str]:
    raw = resources.files("matloop.data").joinpath("starter_library.json").read_text()
    return {Composition(e["formula"]).reduced_formula for e in json.loads(raw)}


#: Compounds a formula typed without digits in one case ("gan", "NACL") may name.
KNOWN_FORMULAS: frozenset[str] = frozenset(_starter_formulas() | {
    Composition(f).reduced_formula for f in (
        "NaCl KCl RbCl CsCl LiCl CaO MgO SrO BaO ZnO ZnS CdS GaN AlN InN GaAs GaP InP SiC "
        "TiC TiN ZrN WC BN NiO CuO FeO MnO CoO CdTe ZnSe PbS PbTe SnS SnSe CsI KI NaI AgI "
        "VN NbN TaC HfC CrN ScN LaN YN MoC AgCl AgBr CuCl CuBr").split()})
#: Lower-case words that are also formulas of KNOWN_FORMULAS ("gap" is not GaP here).
_ENGLISH = frozenset("gap gaps tin bas cos nis ins cus kh lah las nah nan bis".split())
#: All-capital formulas without digits accepted as such (BN), unlike CIF, NO or HOW.
_CAPS_OK = frozenset({"BN", "SiC"})

#: Mineral, common and abbreviated names -> formula.
COMPOUND_NAMES: dict[str, str] = {
    "table salt": "NaCl", "halite": "NaCl", "anatase": "TiO2", "rutile": "TiO2",
    "brookite": "TiO2", "titania": "TiO2", "quartz": "SiO2", "cristobalite": "SiO2",
    "silica": "SiO2", "corundum": "Al2O3", "alumina": "Al2O3", "sapphire": "Al2O3",
    "hematite": "Fe2O3", "haematite": "Fe2O3", "magnetite": "Fe3O4", "wustite": "FeO",
    "wüstite": "FeO", "periclase": "MgO", "magnesia": "MgO", "calcite": "CaCO3",
    "aragonite": "CaCO3", "pyrite": "FeS2", "galena": "PbS", "zirconia": "ZrO2", "ceria": "CeO2",
    "cassiterite": "SnO2", "moissanite": "SiC", "diamond": "C", "graphite": "C",
    "ybco": "YBa2Cu3O7", "llzo": "Li7La3Zr2O12", "lfp": "LiFePO4", "lco": "LiCoO2",
    "lmo": "LiMn2O4", "lto": "Li4Ti5O12", "bto": "BaTiO3", "sto": "SrTiO3", "czts": "Cu2ZnSnS4",
    "bfo": "BiFeO3", "h-bn": "BN", "hbn": "BN", "c-bn": "BN", "cbn": "BN",
    "boron nitride": "BN", "boron carbide": "B4C", "tungsten carbide": "WC",
    "titanium carbide": "TiC", "titanium nitride": "TiN", "zirconium nitride": "ZrN",
    "lithium manganese oxide": "LiMn2O4", "lithium titanate": "Li4Ti5O12",
    "lithium lanthanum zirconium oxide": "Li7La3Zr2O12", "bismuth ferrite": "BiFeO3",
    "yttrium barium copper oxide": "YBa2Cu3O7", "molybdenum disulfide": "MoS2",
    "lead zirconate titanate": "", "methylammonium lead iodide": "", "nmc": "", "pzt": "",
}
#: Names of polymorphs and structure types; offline they cannot be turned into structures.
POLYMORPHS: dict[str, str] = {
    "anatase": "anatase", "rutile": "rutile", "brookite": "brookite", "wurtzite": "wurtzite",
    "zinc blende": "zincblende", "zinc-blende": "zincblende", "zincblende": "zincblende",
    "sphalerite": "zincblende", "rocksalt": "rocksalt", "rock salt": "rocksalt",
    "rock-salt": "rocksalt", "quartz": "quartz", "cristobalite": "cristobalite",
    "calcite": "calcite", "aragonite": "aragonite", "diamond": "diamond",
    "graphite": "graphite", "h-bn": "hexagonal", "hbn": "hexagonal", "c-bn": "cubic",
    "cbn": "cubic",
}

_MONO_ANIONS = {"oxide": ("O", -2), "sulfide": ("S", -2), "sulphide": ("S", -2),
                "selenide": ("Se", -2), "telluride": ("Te", -2), "nitride": ("N", -3),
                "phosphide": ("P", -3), "arsenide": ("As", -3), "antimonide": ("Sb", -3),
                "carbide": ("C", -4), "fluoride": ("F", -1), "chloride": ("Cl", -1),
                "bromide": ("Br", -1), "iodide": ("I", -1), "hydride": ("H", -1)}
_POLY_ANIONS = {"phosphate": ("PO4", -3), "sulfate": ("SO4", -2), "sulphate": ("SO4", -2),
                "carbonate": ("CO3", -2), "nitrate": ("NO3", -1), "hydroxide": ("OH", -1),
                "titanate": ("TiO3", -2), "zirconate": ("ZrO3", -2), "stannate": ("SnO3", -2),
                "niobate": ("NbO3", -1), "tantalate": ("TaO3", -1), "silicate": ("SiO4", -4),
                "aluminate": ("AlO2", -1), "vanadate": ("VO4", -3), "tungstate": ("WO4", -2),
                "molybdate": ("MoO4", -2), "chromate": ("CrO4", -2), "borate": ("BO3", -3),
                "ferrite": ("Fe2O4", -2)}
#: Anion class word -> element (for "the sulfide" of ZnO).
ANION_WORDS: dict[str, str] = {w: a for w, (a, _) in _MONO_ANIONS.items()}
_PREFIX = {"mono": 1, "di": 2, "tri": 3, "tetra": 4, "penta": 5, "hexa": 6}
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7}
#: Common cation oxidation states, most usual first.
_OX: dict[str, tuple[int, ...]] = {
    **{s: (1,) for s in ("H", "Li", "Na", "K", "Rb", "Cs", "Ag")},
    **{s: (2,) for s in ("Be", "Mg", "Ca", "Sr", "Ba", "Zn", "Cd", "Hg", "Pd")},
    **{s: (3,) for s in ("B", "Al", "Ga", "In", "Sc", "Y", "La", "Bi", "Rh", "Pr", "Nd", "Sm",
                         "Gd", "Tb", "Dy", "Ho", "Er", "Yb", "Lu")},
    **{s: (4,) for s in ("Zr", "Hf", "Si", "Ge", "Ru", "Ir")},
    "Ti": (4, 3), "V": (5, 4, 3), "Nb": (5,), "Ta": (5,), "Cr": (3, 6), "Mo": (6, 4),
    "W": (6, 4), "Mn": (2, 3, 4), "Fe": (2, 3), "Co": (2, 3), "Ni": (2, 3), "Cu": (2, 1),
    "Au": (3, 1), "Sn": (4, 2), "Pb": (2, 4), "Sb": (3, 5), "Ce": (4, 3), "Eu": (3, 2),
    "Tl": (1, 3), "Pt": (2, 4),
}

_NAME_RE = "|".join(sorted(ELEMENT_NAMES, key=len, reverse=True))
_CATION = rf"({_NAME_RE})(?:\s*\(\s*([ivx]+)\s*\))?"
_COMPOUND_NAME = re.compile(
    rf"\b{_CATION}(?:[\s-]+{_CATION})?[\s-]+(mono|di|tri|tetra|penta|hexa)?"
    rf"({'|'.join(sorted({**_MONO_ANIONS, **_POLY_ANIONS}, key=len, reverse=True))})s?\b")
_CURATED = re.compile(r"(?<![\w-])(" + "|".join(
    re.escape(n) for n in sorted(COMPOUND_NAMES, key=len, reverse=True)) + r")(?![\w-])")
_ELEMENT_NAME = re.compile(rf"\b({_NAME_RE})\b")
_LEAD_VERB = re.compile(r"\blead\s+(?:to|the|us|me|them|a|an|into|you|it|in|on|by|from)\b|"
                        r"\b(?:will|would|could|might|can|may|to|does|did|that|which)\s+lead\b")
_SYSTEM_CUE = r"(?:system|systems|phases?|phase\s+diagram|diagram|space|compounds?|chemistry|hull)"
_DASHES = "–—‐‑−-"
_DASH_SYSTEM = re.compile(rf"(?<![\w{_DASHES}])((?:[A-Za-z]{{1,2}}|0)(?:[ \t]{{0,2}}[{_DASHES}]"
                          rf"[ \t]{{0,2}}(?:[A-Za-z]{{1,2}}|0)){{1,9}})(?![\w{_DASHES}])")
_NAME_SYSTEM = re.compile(rf"\b((?:{_NAME_RE})(?:[ \t]{{0,2}}[{_DASHES}][ \t]{{0,2}}"
                          rf"(?:{_NAME_RE})){{1,9}})\b")
_SPACED_SYSTEM = re.compile(rf"(?<![\w{_DASHES}])([A-Za-z]{{1,2}}(?:[ \t]{{1,3}}[A-Za-z]{{1,2}})"
                            rf"{{1,9}})[ \t]{{1,3}}{_SYSTEM_CUE}\b", re.IGNORECASE)
_GLUED_SYSTEM = re.compile(r"\b((?:[A-Z][a-z]?){2,6})\s+(?:system|systems|phase\s+diagram|"
                           r"chemical\s+space|space|chemistry)\b")
_ENGLISH_SHORT = frozenset("in as at be he no so i a of to on or by is it up we my do me us "
                           "an am if".split())
_LIST_ITEM = rf"(?:[A-Z][a-z]?|(?i:{_NAME_RE}))"
_ELEMENT_LIST = re.compile(rf"(?<![\w{_DASHES}])({_LIST_ITEM}(?:[ \t]{{0,3}}(?:,[ \t]{{0,3}}"
                           rf"(?:and[ \t]+|or[ \t]+)?|[ \t]+and[ \t]+|[ \t]+or[ \t]+|&[ \t]{{0,3}}|"
                           rf"/[ \t]{{0,3}}){_LIST_ITEM}){{1,9}})(?![\w{_DASHES}])")
_TOKEN = re.compile(r"[A-Za-z(][A-Za-z0-9().·]*")
_PROPER = re.compile(r"^(?:\(?[A-Z][a-z]?\d*(?:\.\d+)?\)?\d*)+$")
_SINGLE_OK_NEXT = re.compile(r"\s*(?:[-‐]?\s*(?:analogue|analog|version|counterpart|equivalent|"
                             r"variant|instead|free|based|doped|substitut\w*|ion|atoms?|site|"
                             r"one|compound|salt)\b)")
_AMBIGUOUS_SYMBOLS = frozenset({"In", "As", "At", "Be", "He", "No", "Re", "Pa", "Po", "Os",
                                "Am", "Es", "I", "A"})


@dataclass
class Chemistry:
    """Chemistry a message names."""

    formulas: list[str] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    element_lists: list[list[str]] = field(default_factory=list)
    polymorphs: list[str] = field(default_factory=list)
    unknown_symbols: list[str] = field(default_factory=list)
    unresolved_names: list[str] = field(default_factory=list)
    anion_words: list[str] = field(default_factory=list)
    glued_systems: list[str] = field(default_factory=list)
    masked: str = ""


_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_LATEX_INDEX = re.compile(r"\$?_\{?(\d+(?:\.\d+)?)\}?\$?")
_VARIABLE = re.compile(r"(?<=[\w)])\s*[+\-−±]\s*[xyzδ](?=[A-Z(]|[\s,.;:?!)]|$)")
_HYBRID = re.compile(r"\b(MA|FA)((?:[A-Z][a-z]?\d*)+)\b")


def normalise_formula_text(text: str) -> str:
    """Write formulas plainly.

    Subscript digits (Fe₂O₃), LaTeX indices (Li$_2$O) and the nominal compositions of
    variable formulas (Li1+xMn2O4 -> Li1Mn2O4, BaFeO3-δ -> BaFeO3).
    """
    text = text.translate(_SUBSCRIPTS)
    text = _LATEX_INDEX.sub(lambda m: m.group(1), text)
    return _VARIABLE.sub("", text)


def _fix_case(token: str) -> str:
    return "O" if token == "0" else token[:1].upper() + token[1:].lower()


def chemsys(symbols: list[str] | set[str]) -> str:
    """Sorted '-'-joined chemical system of element symbols."""
    return "-".join(sorted(set(symbols)))


@lru_cache(maxsize=20_000)
def reduced(formula: str) -> str | None:
    """Return pymatgen's reduced formula, or None when the text is not a formula."""
    try:
        comp = Composition(formula)
    except Exception:  # noqa: BLE001 - pymatgen raises several types for non-formulas
        return None
    if comp.num_atoms <= 0 or any(el.symbol not in SYMBOLS for el in comp.elements):
        return None
    return comp.reduced_formula


def elements_of(formula: str) -> list[str]:
    """Element symbols of a formula."""
    return sorted(el.symbol for el in Composition(formula).elements)


#: Elements a formula typed in one case is unlikely to mean ("lifepo4" is not LiFePo4).
_UNLIKELY_CASELESS = frozenset({"Po", "At", "Fr", "Ra", "Ac", "Pa", "Np", "Pu", "Tc", "Pm",
                                "Th", "U", "Os", "Ir", "Re", "Hf", "Ho", "Tm", "Lu", "Tb",
                                "Dy", "Er", "Es", "Cf", "Bk", "Cm", "Am", "No", "Lr"})


@lru_cache(maxsize=20_000)
def _caseless_formula(token: str) -> str | None:
    """Read a formula typed in one case ("lifepo4", "NACL"); None when it is none.

    Of all ways to split the token into element symbols, the one with the fewest symbols and
    no unlikely elements wins; without digits it must be a well-known compound.
    """
    low = token.lower()
    if len(low) < 2 or len(low) > 16 or low in _ENGLISH:
        return None
    best: dict[int, list[tuple[float, str]]] = {0: [(0.0, "")]}
    for i in range(len(low)):
        if i in best:
            best[i] = sorted(best[i])[:4]
        for cost, built in best.get(i, []):
            for size in (2, 1):
                sym = _CASELESS.get(low[i:i + size])
                if sym is None or i + size > len(low):
                    continue
                j = i + size
                digits = re.match(r"\d+(?:\.\d+)?", low[j:])
                tail = digits.group(0) if digits else ""
                step = 1.0 + (2.0 if sym in _UNLIKELY_CASELESS else 0.0)
                best.setdefault(j + len(tail), []).append((cost + step, built + sym + tail))
    options = sorted(best.get(len(low), []))
    has_digit = any(c.isdigit() for c in low)
    for _, built in options:
        canon = reduced(built)
        if canon is None or len(Composition(built).elements) < 2:
            continue
        if has_digit or canon in KNOWN_FORMULAS:
            return canon
    return None


def _formula_of_name(c1: str, r1: str | None, c2: str | None, r2: str | None,
                     prefix: str | None, anion_word: str) -> list[str]:
    """Formulas a systematic name can mean ("iron oxide" -> FeO, Fe2O3), most usual first."""
    anion, charge = _MONO_ANIONS.get(anion_word) or _POLY_ANIONS[anion_word]
    poly = anion_word in _POLY_ANIONS
    group = f"({anion})" if poly else anion
    cations = [(ELEMENT_NAMES[c1], r1)] + ([(ELEMENT_NAMES[c2], r2)] if c2 else [])
    if any(sym == anion for sym, _ in cations):
        return []
    if prefix and len(cations) == 1:
        return [f"{cations[0][0]}{group}{_PREFIX[prefix]}"]
    states = [(_ROMAN[r],) if r in _ROMAN else _OX.get(sym, ()) for sym, r in cations]
    out: list[str] = []
    if len(cations) == 1:
        sym = cations[0][0]
        for q in states[0]:
            g = math.gcd(q, -charge)
            out.append(f"{sym}{-charge // g}{group}{q // g}")
        return out
    for q1 in states[0]:
        for q2 in states[1]:
            total = q1 + q2
            if total % -charge == 0:
                out.append(f"{cations[0][0]}{cations[1][0]}{group}{total // -charge}")
    return out


def _names(lowered: str, chem: Chemistry) -> str:
    """Compound, mineral and systematic names; returns the text with them blanked out."""
    def blank(text: str, match: re.Match[str]) -> str:
        return text[:match.start()] + " " * (match.end() - match.start()) + text[match.end():]

    masked = lowered
    for match in list(_CURATED.finditer(lowered)):
        name = match.group(1)
        formula = COMPOUND_NAMES[name]
        if formula:
            chem.formulas.append(reduced(formula) or formula)
        else:
            chem.unresolved_names.append(name)
        if name in POLYMORPHS:
            chem.polymorphs.append(POLYMORPHS[name])
        masked = blank(masked, match)
    for match in list(_COMPOUND_NAME.finditer(masked)):
        c1, r1, c2, r2, prefix, anion_word = match.groups()
        options = [r for r in (reduced(f) for f in _formula_of_name(
            c1, r1, c2, r2, prefix, anion_word)) if r]
        options = list(dict.fromkeys(options))
        if len(options) == 1 or options and c2:
            chem.formulas.append(options[0])
        elif options:
            chem.unresolved_names.append(f"{match.group(0).strip()} ({', '.join(options)})")
        else:
            continue
        masked = blank(masked, match)
    for phrase, poly in POLYMORPHS.items():
        for match in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", masked):
            chem.polymorphs.append(poly)
            masked = blank(masked, match)
    return masked


def _add_system(chem: Chemistry, symbols: list[str]) -> None:
    system = chemsys(symbols)
    if len(set(symbols)) >= 2 and system not in chem.systems:
        chem.systems.append(system)


def _systems(text: str, lowered: str, chem: Chemistry) -> str:
    """Chemical systems; returns the text with them blanked out."""
    masked = list(text)

    def blank(start: int, end: int) -> None:
        masked[start:end] = " " * (end - start)

    for match in _DASH_SYSTEM.finditer(text):
        tokens = [t.strip() for t in re.split(rf"[{_DASHES}]", match.group(1))]
        fixed = [_fix_case(t) for t in tokens]
        bad = [f for f in fixed if f not in SYMBOLS]
        lower_only = all(t.islower() or t == "0" for t in tokens)
        cue = re.search(rf"\b{_SYSTEM_CUE}\b", lowered[max(0, match.start() - 40):
                                                    match.end() + 30])
        if lower_only and len(tokens) < 3 and not cue:
            continue
        if bad:
            proper = [t for t in tokens if re.fullmatch(r"[A-Z][a-z]?", t)]
            if len(proper) == len(tokens) and len(bad) < len(tokens):
                chem.unknown_symbols += [b for b in bad if b not in chem.unknown_symbols]
                blank(match.start(), match.end())
            continue
        _add_system(chem, fixed)
        blank(match.start(), match.end())
    for match in _NAME_SYSTEM.finditer(lowered):
        names = [n.strip() for n in re.split(rf"[{_DASHES}]", match.group(1))]
        _add_system(chem, [ELEMENT_NAMES[n] for n in names])
        blank(match.start(), match.end())
    for match in _SPACED_SYSTEM.finditer(text):
        tokens = match.group(1).split()
        while tokens and tokens[0].lower() in _ENGLISH_SHORT and (
                tokens[0].islower() or match.start() == 0):
            tokens.pop(0)
        fixed = [_fix_case(t) for t in tokens]
        if len(fixed) >= 2 and all(f in SYMBOLS for f in fixed):
            _add_system(chem, fixed)
            blank(match.start(1), match.end(1))
    for match in _GLUED_SYSTEM.finditer("".join(masked)):
        symbols = re.findall(r"[A-Z][a-z]?", match.group(1))
        if all(s in SYMBOLS for s in symbols) and len(set(symbols)) >= 2:
            _add_system(chem, symbols)
            chem.glued_systems.append(match.group(1))
            blank(match.start(1), match.end(1))
    return "".join(masked)


def _element_lists(text: str, chem: Chemistry) -> None:
    for match in _ELEMENT_LIST.finditer(text):
        items = re.split(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+|&|/)\s*",
                         match.group(1).strip())
        symbols = []
        for item in items:
            if item in SYMBOLS:
                symbols.append(item)
            elif item.lower() in ELEMENT_NAMES:
                symbols.append(ELEMENT_NAMES[item.lower()])
            else:
                symbols = []
                break
        if len(set(symbols)) >= 2:
            chem.element_lists.append(symbols)


#: A zero typed for the letter O: a count cannot start with 0 ("LiFeP04", "Ti02", "Zn0"), but
#: a decimal can ("Li0.5CoO2").
_ZERO_FOR_O = re.compile(r"(?<=[A-Za-z)])0(?![.\d]*\.\d)(?=\d|[A-Z(]|$)")


def _formula_tokens(text: str, chem: Chemistry) -> str:
    """Collect formula tokens; return the text with them blanked out."""
    masked = list(text)
    for match in _TOKEN.finditer(text):
        token = _ZERO_FOR_O.sub("O", match.group(0).rstrip("."))
        while token.endswith(")") and token.count(")") > token.count("("):
            token = token[:-1]
        while token.startswith("(") and token.count("(") > token.count(")"):
            token = token[1:]
        if not token:
            continue
        has_digit = any(c.isdigit() for c in token)
        if _PROPER.match(token):
            symbols = re.findall(r"[A-Z][a-z]?", token)
            bad = [s for s in symbols if s not in SYMBOLS]
            if bad:
                canon = _caseless_formula(token) if token.isupper() else None
                if canon:  # "LIFEPO4"
                    chem.formulas.append(canon)
                    masked[match.start():match.end()] = " " * (match.end() - match.start())
                    continue
                if has_digit:
                    chem.unknown_symbols += [b for b in bad if b not in chem.unknown_symbols]
                    continue
            elif len(set(symbols)) >= 2:
                if has_digit or any(c.islower() for c in token) or token in _CAPS_OK:
                    canon = reduced(token)
                    if canon:
                        chem.formulas.append(canon)
                        masked[match.start():match.end()] = " " * (match.end() - match.start())
                    continue
            elif len(symbols) == 1 and not has_digit:
                after = text[match.end():match.end() + 20]
                if token not in _AMBIGUOUS_SYMBOLS and len(token) == 2 or \
                        _SINGLE_OK_NEXT.match(after):
                    chem.elements.append(token)
                continue
        if token.islower() or token.isupper() or has_digit or token[1:].islower():
            canon = _caseless_formula(token)
            if canon:
                chem.formulas.append(canon)
                masked[match.start():match.end()] = " " * (match.end() - match.start())
    return "".join(masked)


def read_chemistry(text: str) -> Chemistry:
    """All chemistry the message names (see the module docstring)."""
    chem = Chemistry()
    for match in _HYBRID.finditer(text):
        if reduced(match.group(2)):
            cation = "methylammonium" if match.group(1) == "MA" else "formamidinium"
            chem.unresolved_names.append(f"{match.group(0)} ({cation} is a molecular cation the "
                                         f"offline tools do not model)")
            text = text[:match.start()] + " " * len(match.group(0)) + text[match.end():]
    lowered = text.lower()
    masked_lower = _names(lowered, chem)
    # Keep the original case where the names did not blank the text.
    masked = "".join(o if m != " " or o.isspace() else " " for o, m in zip(text, masked_lower,
                                                                          strict=True))
    masked = _systems(masked, masked_lower, chem)
    _element_lists(masked, chem)
    chem.masked = _formula_tokens(masked, chem)
    for match in _ELEMENT_NAME.finditer(masked.lower()):
        name = match.group(1)
        if name == "lead" and _LEAD_VERB.search(lowered[max(0, match.start() - 8):
                                                       match.end() + 8]):
            continue
        chem.elements.append(ELEMENT_NAMES[name])
    for word, anion in ANION_WORDS.items():
        if re.search(rf"\b{word}s?\b", masked_lower):
            chem.anion_words.append(anion)
    for system in chem.systems:
        chem.elements += system.split("-")
    for group in chem.element_lists:
        chem.elements += group
    chem.formulas = list(dict.fromkeys(chem.formulas))
    chem.elements = list(dict.fromkeys(chem.elements))
    chem.polymorphs = list(dict.fromkeys(chem.polymorphs))
    return chem


def substitute(formula: str, new: str, old: str | None = None) -> str | None:
    """Replace ``old`` by ``new`` in ``formula``; None when that makes no sense.

    Without ``old``, the element of ``new``'s group nearest to it in the table is replaced
    (Li -> Na in LiCoO2), or else the one transition metal (Fe -> Mn in LiFePO4).
    """
    comp = Composition(formula)
    symbols = [el.symbol for el in comp.elements]
    if new in symbols:
        return None
    if old is None:
        target = Element(new)
        same = [s for s in symbols if Element(s).group == target.group]
        if same:
            old = min(same, key=lambda s: abs(Element(s).row - target.row))
        elif target.is_transition_metal:
            metals = [s for s in symbols if Element(s).is_transition_metal]
            old = metals[0] if len(metals) == 1 else None
    if old is None or old not in symbols:
        return None
    amounts = {(new if s == old else s): n for s, n in comp.get_el_amt_dict().items()}
    return reduced("".join(f"{s}{n:g}" for s, n in amounts.items()))
