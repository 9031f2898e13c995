"""Chemical formulas read fast: element amounts with nested parentheses, no pymatgen objects.

The composition model and the charge-balance rule both parse millions of formulas; this reader
is a regular expression and a stack, and names the offending token when it fails.
"""

from __future__ import annotations

import re
from functools import lru_cache

from matloop.errors import MatloopError

N_ELEMENTS = 118

_TOKEN = re.compile(r"([A-Z][a-z]?|\(|\)|\d+(?:\.\d+)?)")


class FormulaError(MatloopError):
    """A formula the composition model cannot read."""


@lru_cache(maxsize=1)
def symbols() -> tuple[str, ...]:
    """Element symbols by atomic number (index 0 is H)."""
    from pymatgen.core import Element

    return tuple(Element.from_Z(z).symbol for z in range(1, N_ELEMENTS + 1))


@lru_cache(maxsize=1)
def element_index() -> dict[str, int]:
    """Row of each element symbol in :func:`symbols` (0 for H)."""
    return {s: i for i, s in enumerate(symbols())}


def parse_formula(formula: str) -> dict[str, float]:
    """Element amounts of a formula (one level or more of parentheses allowed).

    Raises:
        FormulaError: Unknown element symbols or unbalanced parentheses.

    """
    tokens = _TOKEN.findall(formula)
    if "".join(tokens) != formula.replace(" ", ""):
        raise FormulaError(f"cannot read formula {formula!r}",
                           hint="write formulas like BaTiO3 or Ag(AuF4)2")
    stack: list[dict[str, float]] = [{}]
    last: dict[str, float] | str | None = None
    index = element_index()
    for tok in tokens:
        if tok == "(":
            stack.append({})
            last = None
        elif tok == ")":
            if len(stack) == 1:
                raise FormulaError(f"unbalanced parentheses in {formula!r}")
            group = stack.pop()
            for el, n in group.items():
                stack[-1][el] = stack[-1].get(el, 0.0) + n
            last = group
        elif tok[0].isdigit():
            factor = float(tok)
            if isinstance(last, str):
                stack[-1][last] += factor - 1.0
            elif isinstance(last, dict):
                for el, n in last.items():
                    stack[-1][el] += n * (factor - 1.0)
            else:
                raise FormulaError(f"number without element in {formula!r}")
            last = None
        else:
            if tok not in index:
                raise FormulaError(f"unknown element {tok!r} in {formula!r}",
                                   hint="use real element symbols, e.g. Co not CO")
            stack[-1][tok] = stack[-1].get(tok, 0.0) + 1.0
            last = tok
    if len(stack) != 1 or not stack[0]:
        raise FormulaError(f"cannot read formula {formula!r}")
    return {el: n for el, n in stack[0].items() if n > 0}
