"""What in a materials question cannot be read as asked: unknown elements and conditions the
query parser does not understand.

:func:`find_problems` returns :class:`~matloop.schemas.QueryProblem` items; the campaign stops
and asks about them (or, when the user accepts, goes on with the stated assumption and puts it
at the top of the report). It never answers a different question silently.

The checks are deliberately narrow, to avoid crying wolf on ordinary English: a token counts
as an element symbol only where a symbol is expected (``element Xq``, ``Li-Xq-O``,
``LiXqO2``, ``Xq-based``, ``without Xq``) or when it is a two-letter capitalised token that
is neither an element nor a common word; single capitals such as A, B, M, X are read as site
placeholders (ABX3, A-site) except right after "element".
"""

from __future__ import annotations

import re

from pymatgen.core import Element

from matloop.schemas import QueryProblem

NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe", "Rn")
_ELEMENT_NAMES = {el.long_name.lower() for el in Element}
_ELEMENT_NAMES |= {"aluminum", "aluminium", "sulphur", "caesium", "cesium"}
#: Molecular cations named like elements (methylammonium, formamidinium, imidazolium).
_CATION_SUFFIXES = ("onium", "idinium", "olium", "ylium")
#: Capitalised two-letter words that are not element symbols but are common in questions.
_COMMON_WORDS = {"Is", "It", "On", "An", "By", "Do", "Go", "If", "Me", "My", "Of", "Or", "So",
                 "To", "Up", "Us", "We", "Hi", "Ok", "Oh", "Ah", "Mr", "Ms", "Dr", "St", "Vs",
                 "Ex", "Id", "Et", "Eg", "Ie", "Pv", "Uv", "Ai", "Ml", "Qm"}
#: Single capitals used as site placeholders (ABX3, A-site, M2AX phases).
_PLACEHOLDERS = {"A", "B", "M", "X", "R", "T", "Q", "L", "D", "E", "G", "J", "Z"}
#: Words ending in -ium that are not elements.
_IUM_WORDS = {"medium", "equilibrium", "premium", "podium", "stadium", "tedium", "odium",
              "opium", "compendium", "consortium", "auditorium", "moratorium", "symposium",
              "millennium", "condominium", "delirium", "gymnasium", "aquarium", "sanatorium",
              "emporium", "atrium", "criterium", "minimum", "maximum", "optimum",
              "continuum", "vacuum", "curriculum", "medium-sized", "tritium", "deuterium",
              "protium", "ium"}
_COMPARATOR = (r"(?:above|below|over|under|greater\s+than|less\s+than|more\s+than|lower\s+than|"
               r"higher\s+than|at\s+least|at\s+most|exceeding|up\s+to|between|>=|<=|>|<|≥|≤)")
#: Units of quantities matloop does not evaluate, and of those it does.
_UNITS = (r"(?:k|°c|°f|c|gpa|mpa|kpa|pa|kbar|bar|ev/atom|mev/atom|ev|mev|s/cm|ms/cm|µs/cm|"
          r"g/cm3|g/cm³|g/cc|%|wt%|at%|mah/g|wh/kg|w/mk|w/m·k|v|nm|å|angstroms?|atoms?|"
          r"elements?|t|hz|ghz|thz|usd|\$)")
_NUMBER_CONSTRAINT = re.compile(
    rf"{_COMPARATOR}\s*[$€£~]?\s*-?\d+(?:\.\d+)?(?:\s*(?:-|–|to|and)\s*-?\d+(?:\.\d+)?)?"
    rf"(?:\s*{_UNITS}(?![a-z]))?"
    rf"|(?:\bof|\baround|\babout|\bnear|~|≈|=)\s*-?\d+(?:\.\d+)?\s*{_UNITS}(?![a-z])",
    re.IGNORECASE)


def _valid(symbol: str) -> bool:
    return Element.is_valid_symbol(symbol)


def _unknown(text: str, symbol: str, context: str) -> QueryProblem:
    return QueryProblem(
        kind="unknown_element", text=context.strip(),
        message=f"'{symbol}' is not a chemical element",
        assumption=f"'{symbol}' is ignored, so the search is not restricted to it",
        question=f"'{symbol}' is not a chemical element. Which element did you mean?")


def _noble(symbol: str, context: str) -> QueryProblem:
    return QueryProblem(
        kind="unsupported_element", text=context.strip(),
        message=f"{symbol} is a noble gas, which matloop does not search (its generators and "
                f"charge-balance rules cover elements that form ionic or metallic compounds)",
        assumption=f"{symbol} is left out of the search",
        question=f"{symbol} cannot be searched. Go on without it, or ask about other elements?")


def unknown_elements(text: str) -> list[QueryProblem]:
    """Symbols and element names in ``text`` that are not chemical elements, and noble gases
    named where a chemical system is expected."""
    found: dict[str, QueryProblem] = {}

    def add(symbol: str, context: str, *, noble: bool = False) -> None:
        if symbol not in found:
            found[symbol] = _noble(symbol, context) if noble else _unknown(text, symbol,
                                                                            context)

    for m in re.finditer(r"\belements?\s+((?:[A-Z][a-z]{0,2}(?:\s*(?:,|and|or)\s*)?)+)", text):
        for symbol in re.findall(r"[A-Z][a-z]{0,2}", m.group(1)):
            if not _valid(symbol):
                add(symbol, m.group(0))
    for m in re.finditer(r"\b([A-Z][a-z]{0,2}(?:\s*-\s*[A-Z][a-z]{0,2})+)\b", text):
        symbols = [s.strip() for s in m.group(1).split("-")]
        bad = [s for s in symbols if not _valid(s) and s not in _PLACEHOLDERS]
        if bad and len(bad) < len(symbols):  # at least one real element: meant as a system
            for s in bad:
                add(s, m.group(0))
        for s in symbols:
            if s in NOBLE_GASES and len(symbols) > 1:
                add(s, m.group(0), noble=True)
    for m in re.finditer(r"\b((?:[A-Z][a-z]?\d*(?:\.\d+)?){2,})\b", text):
        token = m.group(1)
        numbers = re.findall(r"\d+(?:\.\d+)?", token)
        if not numbers or any(len(n.split(".")[0]) > 2 for n in numbers):
            continue  # no subscript, or a year/model number (MP2020)
        symbols = re.findall(r"[A-Z][a-z]?", token)
        if not any(_valid(s) for s in symbols):
            continue
        for s in symbols:
            if not _valid(s) and s not in _PLACEHOLDERS:
                add(s, token)
    for m in re.finditer(r"\b(?:without|excluding|containing|contains?|with|avoid(?:ing)?)\s+"
                         r"([A-Z][a-z]?)\b(?![-/]?(?:site|type|cation|anion))", text):
        symbol = m.group(1)
        if not _valid(symbol) and symbol not in _PLACEHOLDERS | _COMMON_WORDS:
            add(symbol, m.group(0))
    for m in re.finditer(r"\b([A-Z][a-z]?)[- ](?:based|containing|rich|free|doped)\b", text):
        symbol = m.group(1)
        if not _valid(symbol) and symbol not in _PLACEHOLDERS | _COMMON_WORDS:
            add(symbol, m.group(0))
    for m in re.finditer(r"(?<![\w-])([A-Z][a-z])(?![\w-])(?!\s+et\s+al)", text):
        symbol = m.group(1)
        if not _valid(symbol) and symbol not in _COMMON_WORDS:
            add(symbol, text[max(0, m.start() - 20): m.end() + 20])
    for m in re.finditer(r"\b([a-z]+ium)\b", text.lower()):
        word = m.group(1)
        if word not in _ELEMENT_NAMES and word not in _IUM_WORDS and \
                not word.endswith(_CATION_SUFFIXES):
            found.setdefault(word, QueryProblem(
                kind="unknown_element", text=word,
                message=f"'{word}' is not the name of a chemical element",
                assumption=f"'{word}' is ignored, so the search is not restricted to it",
                question=f"'{word}' is not a chemical element. Which element did you mean?"))
    return list(found.values())


def unread_constraints(text: str, consumed: list[tuple[int, int]]) -> list[QueryProblem]:
    """Numeric conditions (``above 100 K``, ``at most 20 atoms``) outside the spans the parser
    read (``consumed``: character spans of property targets and hull windows)."""
    problems: list[QueryProblem] = []
    for m in _NUMBER_CONSTRAINT.finditer(text):
        if any(a <= m.start() < b for a, b in consumed):
            continue
        fragment = m.group(0).strip()
        before = text[max(0, m.start() - 40): m.start()].strip().split()
        subject = " ".join(before[-3:])
        shown = f"{subject} {fragment}".strip()
        extra = (" (the cell size is set with --max-atoms)" if re.search(r"\batoms?\b",
                                                                          fragment) else "")
        problems.append(QueryProblem(
            kind="unparseable_constraint", text=shown,
            message=f"the condition '{shown}' was not understood{extra}; matloop reads "
                    "conditions on band gap (eV), bulk and shear modulus and Vickers hardness "
                    "(GPa), density (g/cm3), magnetic moment (μB/atom), formation energy and "
                    "energy above the hull (eV/atom)",
            assumption=f"the condition '{shown}' is ignored",
            question=f"The condition '{shown}' cannot be evaluated. Go on without it, or "
                     "rephrase it as a band gap, modulus, hardness, density, magnetic moment, "
                     "formation energy or hull condition?"))
    return problems


def unit_mismatch(text: str, prop: str, unit: str, given: str) -> QueryProblem:
    """A property condition given in a unit of another quantity (band gap in GPa)."""
    return QueryProblem(
        kind="unparseable_constraint", text=text.strip(),
        message=f"'{text.strip()}' gives {prop.replace('_', ' ')} in {given}, which is not a "
                f"unit of {prop.replace('_', ' ')} ({unit})",
        assumption=f"the {prop.replace('_', ' ')} condition is ignored",
        question=f"Which {prop.replace('_', ' ')} range did you mean, in {unit}?")


def unread_property(text: str, prop: str, unit: str) -> QueryProblem:
    """A property condition written in a form the parser does not read ('a 1.5 eV gap')."""
    return QueryProblem(
        kind="unparseable_constraint", text=text,
        message=f"the {prop.replace('_', ' ')} condition in '{text}' was not understood",
        assumption=f"no {prop.replace('_', ' ')} condition is applied",
        question=f"Write the {prop.replace('_', ' ')} condition as e.g. '{prop.replace('_', ' ')}"
                 f" between 1.2 and 1.6 {unit}' or 'above 2 {unit}'. Which range do you mean?")


def impossible_range(text: str, prop: str, unit: str) -> QueryProblem:
    """A property condition no material can meet (a negative band gap)."""
    return QueryProblem(
        kind="unparseable_constraint", text=text.strip(),
        message=f"'{text.strip()}' asks for a negative {prop.replace('_', ' ')}, which no "
                f"material has",
        assumption=f"the {prop.replace('_', ' ')} condition is ignored",
        question=f"Which {prop.replace('_', ' ')} range did you mean, in {unit}?")


__all__ = ["NOBLE_GASES", "find_problems", "impossible_range", "unit_mismatch",
           "unknown_elements", "unread_constraints", "unread_property"]


def find_problems(text: str, consumed: list[tuple[int, int]]) -> list[QueryProblem]:
    """Every problem of ``text`` (see the module docstring)."""
    return unknown_elements(text) + unread_constraints(text, consumed)
