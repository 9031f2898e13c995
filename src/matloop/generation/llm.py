"""LLM few-shot generation (after CrystalICL and CrystalReasoner).

For a target, ``k`` related known structures are retrieved (known structures of the chemical
system first, then the parents the data-mined substitution model ranks highest) and written in a
compact space-group + Wyckoff text form::

    formula: NaCl
    spacegroup: 225
    lattice: a=5.6400 b=5.6400 c=5.6400 alpha=90.00 beta=90.00 gamma=90.00
    sites:
    Na 4a 0.00000 0.00000 0.00000
    Cl 4b 0.50000 0.50000 0.50000

The model is asked to reason first (symmetry, coordination, expected properties) and then to
write one new structure in the same form inside a fenced ```structure block. The answer is
parsed, built with the space group's operations, and checked (composition, cell size, space
group, validity). A malformed or impossible answer becomes a :class:`Rejection` with its reason;
a failing model call ends the LLM's turn. Nothing here raises into the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.symmetry.groups import SpaceGroup

from matloop.generation.models import Candidate
from matloop.generation.targets import Target
from matloop.logs import quiet_third_party

SYSTEM_PROMPT = """You are a solid-state chemist proposing new inorganic crystal structures.
Structures are written in this exact form (space group number, conventional lattice in Å and
degrees, then one line per Wyckoff orbit: element, Wyckoff symbol, fractional x y z of one
representative site):

formula: <reduced formula>
spacegroup: <number 1-230>
lattice: a=<Å> b=<Å> c=<Å> alpha=<deg> beta=<deg> gamma=<deg>
sites:
<Element> <Wyckoff> <x> <y> <z>

First reason under a line 'Reasoning:' about the symmetry, the coordination of each ion, charge
balance and expected properties. Then give exactly one structure inside a fenced block that
starts with ```structure and ends with ```."""


class StructureTextError(ValueError):
    """A structure text that cannot be read or built."""


def structure_to_text(structure: Structure, *, symprec: float = 0.1) -> str:
    """The compact space-group + Wyckoff form of a structure (conventional standard cell)."""
    with quiet_third_party():
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        refined = sga.get_refined_structure()
        sym = SpacegroupAnalyzer(refined, symprec=symprec).get_symmetrized_structure()
        number = sga.get_space_group_number()
    lat = refined.lattice
    lines = [f"formula: {structure.composition.reduced_formula}", f"spacegroup: {number}",
             "lattice: " + " ".join(f"{k}={v:.4f}" for k, v in zip("abc", lat.abc, strict=True))
             + " " + " ".join(f"{k}={v:.2f}" for k, v in zip(("alpha", "beta", "gamma"),
                                                              lat.angles, strict=True)),
             "sites:"]
    for sites, wyckoff in zip(sym.equivalent_sites, sym.wyckoff_symbols, strict=True):
        x, y, z = (float(c) % 1.0 for c in sites[0].frac_coords)
        lines.append(f"{sites[0].specie.symbol} {wyckoff} {x:.5f} {y:.5f} {z:.5f}")
    return "\n".join(lines)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _block(text: str) -> str:
    fenced = re.findall(r"```(?:structure)?\s*\n(.*?)```", text, flags=re.S)
    if fenced:
        return fenced[-1]
    if "spacegroup:" in text.lower():
        return text[text.lower().rindex("spacegroup:"):]
    raise StructureTextError("no ```structure block and no 'spacegroup:' line in the answer")


def _fraction(token: str) -> float:
    if "/" in token:
        num, den = token.split("/", 1)
        value = float(num) / float(den)
    else:
        value = float(token)
    # Snap written-out special positions (0.33333, 0.66667, 0.1667...) to exact fractions, or
    # the space group's operations leave near-duplicate atoms across the cell boundary.
    for den in (2, 3, 4, 6, 8, 12):
        if abs(value * den - round(value * den)) < 2e-4 * den:
            return round(value * den) / den
    return value


def parse_structure_text(text: str) -> tuple[int, dict[str, float], list[tuple[str, str, list[
        float]]]]:
    """Space group, lattice parameters and sites from an answer (the last block in it).

    Raises:
        StructureTextError: What is missing or unreadable.
    """
    block = _block(text)
    spacegroup: int | None = None
    lattice: dict[str, float] = {}
    sites: list[tuple[str, str, list[float]]] = []
    for raw in block.splitlines():
        line = raw.strip().strip("`")
        low = line.lower()
        if not line or low.startswith(("formula", "sites")):
            continue
        if low.startswith("spacegroup") or low.startswith("space group"):
            value = line.split(":", 1)[-1].strip()
            found = re.search(r"\((\d+)\)", value) or re.fullmatch(r"\s*(\d+)\s*", value)
            try:
                spacegroup = int(found.group(1)) if found else SpaceGroup(value).int_number
            except Exception as exc:  # noqa: BLE001 - pymatgen raises several types
                raise StructureTextError(f"unreadable space group {value!r}") from exc
            continue
        if low.startswith("lattice"):
            for key, val in re.findall(rf"(a|b|c|alpha|beta|gamma)\s*=\s*({_NUMBER})", line):
                lattice[key] = float(val)
            continue
        parts = line.split()
        if parts and re.fullmatch(r"[A-Z][a-z]?", parts[0]):
            coords = parts[-3:]
            try:
                xyz = [_fraction(c) for c in coords]
            except ValueError as exc:
                raise StructureTextError(f"unreadable site line {line!r}") from exc
            if len(parts) < 4:
                raise StructureTextError(f"site line {line!r} needs an element and x y z")
            wyckoff = parts[1] if len(parts) >= 5 else ""
            sites.append((parts[0], wyckoff, xyz))
    if spacegroup is None:
        raise StructureTextError("no 'spacegroup:' line")
    if not 1 <= spacegroup <= 230:
        raise StructureTextError(f"space group {spacegroup} is not in 1-230")
    missing = [k for k in ("a", "b", "c", "alpha", "beta", "gamma") if k not in lattice]
    if missing:
        raise StructureTextError(f"lattice line lacks {', '.join(missing)}")
    if not sites:
        raise StructureTextError("no site lines ('Element Wyckoff x y z')")
    return spacegroup, lattice, sites


def build_from_text(text: str) -> Structure:
    """Parse an answer and apply the space group's operations.

    Raises:
        StructureTextError: Unreadable text, impossible lattice, lattice that does not fit the
            space group, unknown element or Wyckoff multiplicity that does not match.
    """
    from pymatgen.core import Element

    spacegroup, lat, sites = parse_structure_text(text)
    for el, _, _ in sites:
        if not Element.is_valid_symbol(el):
            raise StructureTextError(f"unknown element {el!r}")
    if min(lat["a"], lat["b"], lat["c"]) <= 0.5:
        raise StructureTextError(f"lattice lengths {lat['a']}, {lat['b']}, {lat['c']} Å are "
                                 "not physical")
    try:
        lattice = Lattice.from_parameters(lat["a"], lat["b"], lat["c"], lat["alpha"],
                                          lat["beta"], lat["gamma"])
        if not lattice.volume > 1.0:
            raise ValueError("cell volume is not positive")
        with quiet_third_party():
            structure = Structure.from_spacegroup(spacegroup, lattice, [s[0] for s in sites],
                                                  [s[2] for s in sites], tol=1e-3)
            _drop_same_species_duplicates(structure)
    except Exception as exc:  # noqa: BLE001 - pymatgen's messages are the reason
        raise StructureTextError(f"cannot build the structure: {exc}") from exc
    return structure


def _drop_same_species_duplicates(structure: Structure, tol: float = 0.01) -> None:
    """Remove copies of an atom on itself (rounding at cell edges); overlaps of *different*
    elements stay, for the validity check to reject."""
    dm = structure.distance_matrix
    drop = {j for i in range(len(structure)) for j in range(i + 1, len(structure))
            if dm[i, j] < tol and structure[i].species == structure[j].species}
    if drop:
        structure.remove_sites(sorted(drop))


def few_shot_examples(target: Target, store: Any, k: int) -> list[tuple[str, Structure]]:
    """Up to ``k`` related known structures: the system's own, then likely substitution parents."""
    from matloop.generation.substitution import ranked_substitutions

    out: list[tuple[str, Structure]] = []
    seen: set[str] = set()
    if store is not None:
        for phase in store.phases(target.allowed, with_structure=True):
            s = phase.get_structure()
            if s is not None and len(s) <= 4 * target.max_atoms and phase.formula not in seen \
                    and len(phase.composition.elements) > 1:
                seen.add(phase.formula)
                out.append((f"{phase.source}:{phase.source_id}", s))
            if len(out) >= k // 2:
                break
    for _, parent, _, _ in ranked_substitutions(target, store):
        if len(out) >= k:
            break
        if parent.formula in seen:
            continue
        seen.add(parent.formula)
        out.append((parent.label, Structure.from_dict(parent.structure)))
    return out


def _target_text(target: Target, request: Any) -> str:
    what = (f"composition {target.composition.reduced_formula}" if target.composition
            else f"the chemical system {'-'.join(target.allowed)} (it must contain "
                 f"{', '.join(target.required)})")
    sgs = (f" Its space group must be one of {sorted(target.spacegroups)}."
           if target.spacegroups else "")
    return (f"Propose a new, charge-balanced, thermodynamically plausible crystal structure with "
            f"{what}, with at most {target.max_atoms} atoms in its primitive cell.{sgs}")


def llm_generator(request: Any, context: Any) -> Iterator[Candidate]:
    """One model call per candidate; answers that fail are rejected with their reason."""
    from langchain_core.messages import HumanMessage, SystemMessage

    model = context.chat_model
    if model is None:
        context.reject("llm", "no chat model configured: the llm generator was skipped")
        return
    target = context.target
    examples = few_shot_examples(target, context.store, context.few_shot_k)
    shots = "\n\n".join(f"Example {i + 1} ({label}):\n```structure\n{structure_to_text(s)}\n```"
                        for i, (label, s) in enumerate(examples))
    proposed: list[str] = []
    for attempt in range(2 * request.n + 2):
        avoid = (f"\nAlready proposed (give a different one): {'; '.join(proposed)}."
                 if proposed else "")
        messages = [SystemMessage(content=SYSTEM_PROMPT), HumanMessage(content=(
            f"Known related structures:\n\n{shots}\n\n{_target_text(target, request)}"
            f" (proposal {attempt + 1}, seed {request.seed}).{avoid}"))]
        try:
            reply = model.invoke(messages)
        except Exception as exc:  # noqa: BLE001 - a provider error ends the LLM's turn
            context.reject("llm", f"model call failed: {type(exc).__name__}: {exc}"[:300])
            return
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
        try:
            structure = build_from_text(content)
        except StructureTextError as exc:
            context.reject("llm", f"malformed answer: {exc}", detail={"answer": content[-1500:]})
            continue
        reasoning = content.split("```", 1)[0].strip()
        proposed.append(f"{structure.composition.reduced_formula} (sg {_sg(content)})")
        yield Candidate.from_structure(structure, method="llm", provenance={
            "model": str(getattr(model, "model_name", None) or getattr(model, "model", None)
                         or type(model).__name__),
            "examples": [label for label, _ in examples],
            "reasoning": reasoning[:2000],
            "answer": content[-1500:],
            "attempt": attempt,
            "seed": request.seed,
        })


def _sg(content: str) -> str:
    try:
        return str(parse_structure_text(content)[0])
    except StructureTextError:
        return "?"
