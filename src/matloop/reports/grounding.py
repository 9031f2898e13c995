"""Grounding check of narrative text: every number and citation must come from the run.

A narrative part (summary, discussion, a next step) written by a language model is split into
sentences; a sentence is kept only when each figure and citation in it has a source:

* **Numbers.** A written figure is grounded when a known value (tool results, candidate
  numbers, usage, settings, evidence passages, counts derived from the run) rounds to it at the
  precision written: "-0.049" matches -0.04913; "1.2" matches 1.23 but not 1.26, "1.20" matches
  neither. An explicit sign must match; an unsigned figure matches a value of either sign
  ("0.049 eV/atom below the hull").
  "meV" figures are compared in eV (x 0.001), percentages also against fractions (x 100).
  Scientific notation ("1.2e-3", "1.2 x 10^-3") is read as written.
* **Not numbers.** Digits that are part of a name are not figures: ids (C0012, H1, S2, T0-01,
  prot-1c275c287fcb), chemical formulas (BaTiO3), space-group symbols (I4/mmm, Pm-3m) and
  evidence ids. Years are ordinary numbers: they are grounded only when a known value (an
  evidence passage, a date) contains them.
* **Citations.** A DOI (10.NNNN/...) or evidence id (ev-...) is grounded only when it is one of
  the run's retrieved evidence or synthesis suggestions (DOIs compared case-insensitively).

Unmatched sentences are removed (or, with ``mode="mark"``, kept with a visible marker) and
returned as :class:`~matloop.schemas.RemovedClaim` records naming what had no source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from matloop.schemas import RemovedClaim

_DOI = re.compile(r"10\.\d{4,9}/[^\s\"'<>]+", re.I)
_EVIDENCE = re.compile(r"\bev-[0-9a-z]{4,}\b", re.I)
_MINUS = "\u2212\u2013"  # Unicode minus sign and en dash, written for negative numbers
_NUMBER = re.compile(
    r"(?P<sign>[+\-" + _MINUS + r"]?)"
    r"(?P<body>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+|\.\d+)"
    r"(?:(?P<exp>[eE][+\-]?\d+)|\s*(?:x|\u00d7)\s*10\s*\^?\s*(?P<pow>[+\-" + _MINUS + r"]?\d+))?"
    r"(?P<pct>\s*%)?(?P<mev>\s*meV)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


@dataclass(frozen=True)
class NumberClaim:
    """A figure written in text."""

    text: str
    value: float
    tolerance: float
    signed: bool
    percent: bool = False
    mev: bool = False


@dataclass
class KnownFacts:
    """What the run knows: numbers from results and the citations it retrieved."""

    numbers: list[float] = field(default_factory=list)
    dois: set[str] = field(default_factory=set)
    evidence_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.dois = {d.lower().rstrip(".,;") for d in self.dois}
        self.evidence_ids = {e.lower() for e in self.evidence_ids}


def _decimals(body: str) -> int:
    return len(body.split(".", 1)[1]) if "." in body else 0


_TOKEN = re.compile(r"[\w\-/+.\u2212]+")
_NAME = re.compile(r"[A-Za-z][^\d\s]*\d")
_SCIENTIFIC = re.compile(r"[+\-\u2212]?\d+(\.\d+)?[eE][+\-\u2212]?\d+")


def _mask_names(text: str) -> str:
    """Blank out citations and names with digits in them (same length keeps offsets)."""
    masked = _DOI.sub(lambda m: " " * len(m.group()), text)
    masked = _EVIDENCE.sub(lambda m: " " * len(m.group()), masked)
    # A token with a letter before a digit is a name: C0012, H1, T0-01, BaTiO3, I4/mmm,
    # Pm-3m, prot-1c27. A figure followed by its unit (1200C, 5GPa, 2D) is not.
    def blank(m: re.Match[str]) -> str:
        token = m.group()
        if _SCIENTIFIC.fullmatch(token.rstrip(".,;:")) or not _NAME.search(token):
            return token
        return " " * len(token)

    return _TOKEN.sub(blank, masked)


def extract_numbers(text: str) -> list[NumberClaim]:
    """Figures in ``text`` (see the module docstring for what is not a figure)."""
    masked = _mask_names(text)
    out: list[NumberClaim] = []
    for m in _NUMBER.finditer(masked):
        sign = m.group("sign")
        before = masked[m.start() - 1] if m.start() > 0 else " "
        if sign and (before.isalnum() or before in ").]"):
            sign = ""  # 1.2-1.6 is a range, not a negative number
        body = m.group("body")
        value = float(body.replace(",", ""))
        tol = 0.5 * 10 ** (-_decimals(body))
        if m.group("exp") or m.group("pow"):
            raw = m.group("exp")[1:] if m.group("exp") else m.group("pow")
            power = int(raw.replace("\u2212", "-").replace("\u2013", "-"))
            value *= 10.0 ** power
            tol *= 10.0 ** power
        if sign and sign != "+":
            value = -value
        begin = m.start() if sign else m.start("body")
        out.append(NumberClaim(text=text[begin:m.end()].strip(), value=value, tolerance=tol,
                               signed=bool(sign), percent=bool(m.group("pct")),
                               mev=bool(m.group("mev"))))
    return out


def extract_dois(text: str) -> list[str]:
    """DOIs in ``text``, trailing punctuation removed."""
    return [m.group().rstrip(".,;:)]") for m in _DOI.finditer(text)]


def extract_evidence_ids(text: str) -> list[str]:
    """Evidence ids (ev-...) in ``text``."""
    return [m.group() for m in _EVIDENCE.finditer(text)]


def number_grounded(claim: NumberClaim, known: Iterable[float]) -> bool:
    """Whether some known value rounds to the written figure."""
    targets = [(claim.value, claim.tolerance)]
    if claim.mev:
        targets = [(claim.value / 1000.0, claim.tolerance / 1000.0), (claim.value,
                                                                      claim.tolerance)]
    if claim.percent:
        targets.append((claim.value / 100.0, claim.tolerance / 100.0))
    eps = 1e-9
    for v in known:
        for target, tol in targets:
            scale_eps = eps * max(1.0, abs(target))
            if abs(v - target) <= tol + scale_eps:
                return True
            if not claim.signed and abs(abs(v) - abs(target)) <= tol + scale_eps:
                return True
    return False


def numbers_in(obj: Any) -> list[float]:
    """Every number in a JSON-like object, including figures written inside its strings."""
    out: list[float] = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int | float):
            if math.isfinite(item):
                out.append(float(item))
        elif isinstance(item, str):
            out.extend(c.value for c in extract_numbers(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return out


def unsupported(text: str, facts: KnownFacts) -> list[str]:
    """Reasons some figure or citation in ``text`` has no source (empty when grounded)."""
    reasons = []
    for doi in extract_dois(text):
        if doi.lower() not in facts.dois:
            reasons.append(f"DOI {doi} is not in the run's retrieved evidence")
    for ev in extract_evidence_ids(text):
        if ev.lower() not in facts.evidence_ids:
            reasons.append(f"evidence id {ev} was not retrieved in this run")
    for claim in extract_numbers(text):
        if not number_grounded(claim, facts.numbers):
            reasons.append(f"number {claim.text} matches no computed or retrieved value")
    return reasons


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph (a decimal point or 'et al.' before a lower-case word does not
    end a sentence)."""
    return [s for s in _SENTENCE.split(text.strip()) if s.strip()]


def check_text(text: str, facts: KnownFacts, *, part: str,
               mode: Literal["remove", "mark"] = "remove") -> tuple[str, list[RemovedClaim]]:
    """Drop (or mark) the sentences of ``text`` that hold an unsupported figure or citation.

    Returns:
        The checked text and one record per sentence removed or marked.
    """
    kept, removed = [], []
    for sentence in split_sentences(text):
        reasons = unsupported(sentence, facts)
        if not reasons:
            kept.append(sentence)
            continue
        removed.append(RemovedClaim(part=part, text=sentence, reason="; ".join(reasons)))
        if mode == "mark":
            kept.append(f"[unverified: {sentence}]")
    return " ".join(kept), removed


def check_items(items: list[str], facts: KnownFacts, *, part: str,
                ) -> tuple[list[str], list[RemovedClaim]]:
    """Check each item of a list; an item with any unsupported claim is removed whole."""
    kept, removed = [], []
    for item in items:
        reasons = unsupported(item, facts)
        if reasons:
            removed.append(RemovedClaim(part=part, text=item, reason="; ".join(reasons)))
        else:
            kept.append(item)
    return kept, removed
