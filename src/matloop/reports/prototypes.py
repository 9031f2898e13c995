"""Structure types of relaxed structures: the matching prototype of the AFLOW library of
crystallographic prototypes (M. J. Mehl et al., Comput. Mater. Sci. 136, S1 (2017)), the
288-prototype file shipped with pymatgen, found the way pymatgen's ``AflowPrototypeMatcher``
(now ``PrototypeDatabaseMatcher``) finds it.

The matching is pymatgen's: Niggli-reduced primitive cells, ``StructureMatcher.fit_anonymous``
with ``ltol=0.2, stol=0.3, angle_tol=5`` and ``primitive_cell=True``, the tolerances tightened
by 0.8 while more than one prototype matches (until ``ltol < 0.01``). Two things differ, both
for speed, neither for the result:

* importing ``pymatgen.analysis.prototypes`` deserialises all 288 library entries as
  StructureNL objects (their BibTeX is parsed): 4-13 s on a shared 2-core machine. The
  library file is read here as JSON (0.1 s) and only the structures needed are built;
* only prototypes with the structure's anonymised reduced formula are compared. An anonymous
  match requires equal reduced formulas after the species mapping (``StructureMatcher`` checks
  this before any geometry), so no other prototype can match.

``tests/integration/test_report_pictures.py`` checks the labels against pymatgen's
``AflowPrototypeMatcher`` on the structures of a real run.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pymatgen.core import Composition, Structure

from matloop.logs import quiet_third_party
from matloop.schemas import StructureType

LIBRARY_FILE = "aflow_prototypes.json.gz"
#: pymatgen's AflowPrototypeMatcher defaults: fractional length, site and angle (degrees)
#: tolerances of the first match.
LTOL, STOL, ANGLE_TOL = 0.2, 0.3, 5.0


def library_path() -> Path:
    """The AFLOW prototype library file shipped with pymatgen (found without importing
    ``pymatgen.analysis.prototypes``)."""
    spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pymatgen.analysis.prototypes is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / LIBRARY_FILE


@functools.cache
def _library() -> tuple[tuple[str, dict[str, Any], dict[str, Any]], ...]:
    """(anonymised reduced formula, structure dict, tags) of every library prototype."""
    rows = json.loads(gzip.decompress(library_path().read_bytes()))
    out = []
    for row in rows:
        counts: Counter[str] = Counter()
        for site in row["snl"]["sites"]:
            for species in site["species"]:
                counts[species["element"]] += species["occu"]
        out.append((Composition(counts).anonymized_formula, row["snl"], row["tags"]))
    return tuple(out)


def library_size() -> int:
    """Prototypes in the library."""
    return len(_library())


def _reduce(structure: Structure) -> Structure:
    return structure.get_reduced_structure(reduction_algo="niggli").get_primitive_structure()


@functools.lru_cache(maxsize=64)
def _prototypes(anonymous_formula: str) -> tuple[tuple[Structure, dict[str, Any]], ...]:
    """Reduced structures and tags of the library prototypes of one anonymised formula."""
    return tuple((_reduce(Structure.from_dict(snl)), tags)
                 for formula, snl, tags in _library() if formula == anonymous_formula)


def match_prototypes(structure: Structure, *, ltol: float = LTOL, stol: float = STOL,
                     angle_tol: float = ANGLE_TOL) -> list[dict[str, Any]]:
    """Tags (``aflow``, ``mineral``, ``strukturbericht``, ``pearson``) of the library
    prototypes that match ``structure``: one entry, several when tightening cannot separate
    them, none when nothing matches (pymatgen's ``get_prototypes`` returns None then)."""
    from pymatgen.core.structure_matcher import StructureMatcher

    candidates = _prototypes(structure.composition.anonymized_formula)
    if not candidates:
        return []
    matcher = StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol, primitive_cell=True)
    reduced = _reduce(structure)

    def matching() -> list[dict[str, Any]]:
        return [tags for proto, tags in candidates
                if matcher.fit_anonymous(proto, reduced, skip_structure_reduction=True)]

    tags = matching()
    while len(tags) > 1:
        matcher.ltol *= 0.8
        matcher.stol *= 0.8
        matcher.angle_tol *= 0.8
        tags = matching()
        if matcher.ltol < 0.01:
            break
    return tags


def _clean(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and text != "None" else None


def _pearson(structure: Structure) -> str | None:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure, symprec=0.1).get_pearson_symbol()
    except Exception:  # spglib fails on some distorted cells; the label is optional
        return None


def _source() -> str:
    from importlib.metadata import version

    return (f"AFLOW library of crystallographic prototypes ({library_size()} prototypes, "
            f"Mehl et al. 2017) shipped with pymatgen {version('pymatgen')}; pymatgen "
            f"StructureMatcher.fit_anonymous, ltol {LTOL:g}, stol {STOL:g}, angle "
            f"{ANGLE_TOL:g}° (AflowPrototypeMatcher defaults)")


def structure_type(structure: Structure, *, timeout_s: float = 20.0) -> StructureType:
    """The AFLOW prototype of ``structure``, or a note saying why there is none.

    Never raises: a failure or a match still running after ``timeout_s`` (it then runs on in
    the background and its result is dropped) gives a record without a label, with the note.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with quiet_third_party():
                result["tags"] = match_prototypes(structure)
        except Exception as exc:  # matching can fail on odd cells; the card goes on
            result["error"] = f"{type(exc).__name__}: {str(exc)[:160]}"

    start = time.perf_counter()
    worker = threading.Thread(target=run, daemon=True, name="prototype-match")
    worker.start()
    worker.join(timeout_s)
    elapsed = round(time.perf_counter() - start, 3)
    pearson = _pearson(structure)
    try:
        source = _source()
    except FileNotFoundError as exc:
        return StructureType(pearson=pearson, note=f"no prototype library: {exc}",
                             duration_s=elapsed)
    if worker.is_alive():
        return StructureType(pearson=pearson, source=source, duration_s=elapsed,
                             note=f"prototype matching did not finish within {timeout_s:g} s")
    if "error" in result:
        return StructureType(pearson=pearson, source=source, duration_s=elapsed,
                             note=f"prototype matching failed ({result['error']})")
    tags: list[dict[str, Any]] = result.get("tags", [])
    if not tags:
        return StructureType(pearson=pearson, source=source, duration_s=elapsed,
                             note="no prototype of the library matches")
    first = tags[0]
    note = None if len(tags) == 1 else (
        f"{len(tags)} prototypes match at the tightest tolerance: "
        + ", ".join(_clean(t.get("aflow")) or "?" for t in tags) + "; the first is shown")
    return StructureType(label=_clean(first.get("aflow")), name=_clean(first.get("mineral")),
                         strukturbericht=_clean(first.get("strukturbericht")),
                         pearson=pearson or _clean(first.get("pearson")), source=source,
                         note=note, duration_s=elapsed)
