"""Chemical formulas in text: detection, canonical form, and the tokens the lexical index uses.

A formula is reduced to one canonical spelling: pymatgen's reduced composition with the
elements in alphabetical order, so ``LiFePO4``, ``FeLiO4P`` and ``Li2Fe2P2O8`` are all
``FeLiO4P``. The same function runs on documents at index time and on queries at search time.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pymatgen.core import Composition, Element

from matloop.logs import quiet_third_party

#: Heaviest element accepted in a formula (Pu); heavier symbols in text are nearly always noise.
MAX_Z = 94

#: Candidate formula tokens: an element-like capital start, then symbols, digits, dots, brackets.
_CANDIDATE = re.compile(r"\(?[A-Z][A-Za-z0-9().]*")
#: What a whole formula may look like (symbols with optional amounts, optional groups).
_FORMULA_SHAPE = re.compile(r"^(?:\(?[A-Z][a-z]?(?:\d+(?:\.\d+)?)?\)?(?:\d+(?:\.\d+)?)?)+$")
_SYMBOL = re.compile(r"[A-Z][a-z]?")
_GREEK_PREFIX = re.compile(r"^(?:[αβγδεθλ]|alpha|beta|gamma|delta)[-‐]", re.IGNORECASE)
_NONSTOICH_SUFFIX = re.compile(r"\s*[-−+±]\s*[δΔdxy]$")
_HYDRATE = re.compile(r"[·•∙*]\s*(\d*(?:\.\d+)?)\s*")
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+[a-z0-9]*)*")

STOPWORDS = frozenset(
    "a an and are as at be by for from has have how in into is it its of on or that the their "
    "this to was were what which with via using used can we our these those than then there "
    "been being also such".split()
)
_SUFFIXES = ("ations", "ation", "ised", "ized", "ises", "izes", "ise", "ize", "is", "ing",
             "ed", "ses", "xes", "ches", "shes", "s")
#: Prefix of the canonical-formula tokens in the lexical index (never produced by a word).
FORMULA_TOKEN_PREFIX = "f:"


def _format_amount(x: float) -> str:
    if abs(x - 1.0) < 1e-6:
        return ""
    if abs(x - round(x)) < 1e-6:
        return str(int(round(x)))
    return f"{x:.3f}".rstrip("0").rstrip(".")


def canonical_from_composition(comp: Composition) -> str:
    """Canonical spelling of a composition: reduced, elements sorted alphabetically."""
    with quiet_third_party():  # pymatgen warns about noble-gas electronegativities
        amounts = comp.reduced_composition.get_el_amt_dict()
    return "".join(f"{el}{_format_amount(amounts[el])}" for el in sorted(amounts))


def _parse_hydrate(text: str) -> Composition:
    parts = _HYDRATE.split(text)
    comp = Composition(parts[0])
    for i in range(1, len(parts) - 1, 2):
        n = float(parts[i]) if parts[i] else 1.0
        comp += Composition(parts[i + 1]) * n
    return comp


@lru_cache(maxsize=200_000)
def parse_formula(text: str) -> Composition | None:
    """Composition of a formula string, or None when it is not a plain, valid formula.

    Handles hydrates (``Fe(NO3)3·9H2O``) and phase prefixes (``β-Ln2TiO5``); rejects
    variable formulas (``Li1+xMn2O4``) and unknown or very heavy elements.
    """
    text = _NONSTOICH_SUFFIX.sub("", _GREEK_PREFIX.sub("", text.strip()))
    if not text or len(text) > 80:
        return None
    pieces = _HYDRATE.split(text)
    for piece in pieces[::2]:
        if not _FORMULA_SHAPE.match(piece):
            return None
        if piece.count("(") != piece.count(")"):
            return None
    for sym in _SYMBOL.findall(text):
        if not Element.is_valid_symbol(sym) or Element(sym).Z > MAX_Z:
            return None
    try:
        comp = _parse_hydrate(text) if len(pieces) > 1 else Composition(text)
    except Exception:  # pymatgen raises several types for text that is not a formula
        return None
    if comp.num_atoms <= 0:
        return None
    return comp


@lru_cache(maxsize=200_000)
def canonical_formula(text: str) -> str | None:
    """Canonical formula (``FeLiO4P``) of a formula string, or None when it is not one."""
    comp = parse_formula(text)
    return None if comp is None else canonical_from_composition(comp)


@lru_cache(maxsize=200_000)
def _mention(token: str) -> str | None:
    """Canonical formula of a token found in running text, with stricter rules than for fields.

    A mention needs at least two elements, and a token without digits needs a two-letter
    symbol, so acronyms such as CO, CV or SC are not read as formulas.
    """
    token = token.strip("().")
    if len(token) < 2:
        return None
    comp = parse_formula(token)
    if comp is None or len(comp.elements) < 2:
        return None
    if not any(c.isdigit() for c in token) and not any(c.islower() for c in token):
        return None
    return canonical_from_composition(comp)


def formulas_in(text: str) -> list[str]:
    """Canonical formulas mentioned in running text, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _CANDIDATE.finditer(text):
        canon = _mention(match.group(0))
        if canon is not None:
            seen.setdefault(canon, None)
    return list(seen)


def elements_of(formulas: list[str]) -> list[str]:
    """Sorted element symbols of canonical formulas."""
    out: set[str] = set()
    for f in formulas:
        comp = parse_formula(f)
        if comp is not None:
            out.update(el.symbol for el in comp.elements)
    return sorted(out)


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    if not word.isalpha() or len(word) <= 4:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            if suffix in ("ses", "xes", "ches", "shes"):
                return word[:-2]
            if suffix == "s" and word.endswith(("ss", "us")):
                return word
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    """Split text into lexical-index tokens.

    Lower-cased, lightly stemmed words without stop words, plus one ``f:<canonical formula>``
    token per formula mention (so ``LiFePO4`` matches ``FeLiO4P``).
    """
    words = [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return words + [FORMULA_TOKEN_PREFIX + f for f in _formula_tokens(text)]


def _formula_tokens(text: str) -> list[str]:
    out = []
    for match in _CANDIDATE.finditer(text):
        canon = _mention(match.group(0))
        if canon is not None:
            out.append(canon)
    return out
