"""Entities of a chat message other than its chemistry.

Properties with units, numeric constraints, pasted CIF/POSCAR text, typed file paths, campaign
and hypothesis ids (formulas, systems and elements are in :mod:`matloop.agents.chat.chemistry`).

Pure text processing (regular expressions, a small compound-name table and pymatgen
compositions); no LLM, no tools, no file access. :mod:`matloop.agents.chat.intents` decides
what the message asks from these entities and the conversation so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymatgen.core import Composition, Element

from matloop.knowledge.formulas import MAX_Z
from matloop.logs import quiet_third_party

#: Element symbols accepted in a formula (deuterium and tritium are not elements here).
SYMBOLS: frozenset[str] = frozenset(e.symbol for e in Element
                                    if e.Z <= MAX_Z and e.symbol not in ("D", "T"))
_CASELESS = {s.lower(): s for s in SYMBOLS}
#: Element names (and common spellings) -> symbol.
ELEMENT_NAMES: dict[str, str] = {Element(s).long_name.lower(): s for s in SYMBOLS}
ELEMENT_NAMES.update({"aluminum": "Al", "aluminium": "Al", "sulphur": "S", "sulfur": "S",
                      "caesium": "Cs", "cesium": "Cs"})
#: Property vocabulary: name -> unit (units as the tools report them).
PROPERTY_UNITS: dict[str, str] = {
    "band_gap": "eV", "formation_energy": "eV/atom", "e_above_hull": "eV/atom",
    "energy_per_atom": "eV/atom", "bulk_modulus": "GPa", "shear_modulus": "GPa",
    "hardness": "GPa", "density": "g/cm^3", "magnetic_moment": "μB/f.u.",
    "lattice_parameter": "Å",
}
_PROPERTY_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(name, re.compile(p)) for name, p in [
    ("band_gap", r"\bband[\s-]*gaps?\b|\bbandgaps?\b|\bgaps?\b|\bsemiconduct\w*|\binsulat\w*"
                 r"|\bmetal(?:lic)?\s*(?:\?|$|or\b)|\bor\s+(?:a\s+)?metal\b|\bmetallic\b"),
    ("formation_energy", r"formation\s+(?:energ\w*|enthalp\w*)|(?:enthalpy|heat|energy)\s+of\s+"
                         r"formation|\be_?form\b|[δΔ]h_?f\b"),
    ("e_above_hull", r"above\s+(?:the\s+)?(?:convex\s+)?hull|\be[_ ]?hull\b|\behull\b|hull\s+"
                     r"distance|distance\s+(?:from|to)\s+(?:the\s+)?(?:convex\s+)?hull|\bfrom\s+"
                     r"(?:the\s+)?(?:convex\s+)?hull|\bof\s+the\s+(?:convex\s+)?hull\b"),
    ("energy_per_atom", r"total\s+energy|(?<!formation\s)energy\s+per\s+atom|lower\s+in\s+energy"),
    ("bulk_modulus", r"bulk\s+modul\w*|\bstiff\w*|\b(?:in)?compressib\w*"),
    ("shear_modulus", r"shear\s+modul\w*"),
    ("hardness", r"\bhardness|\bsuper-?hard\b|\bhard(?:er|est)?\b(?!\s+to\b)|\bvickers\b"),
    ("density", r"\bdensit(?:y|ies)\b|\bdense(?:r|st)?\b"),
    ("magnetic_moment", r"\bmagnet\w*|\bmoment\b|ferromagnet\w*|ferrimagnet\w*"),
    ("lattice_parameter", r"lattice\s+(?:parameter|constant|spacing)s?|cell\s+(?:parameter|"
                          r"constant|dimension)s?"),
]]
#: "Eg" for the band gap is read only with its capital E ("e.g." must not count).
_EG = re.compile(r"\bE_?g(?:ap)?\b")
#: Properties no matloop tool computes; questions about them go to the literature.
_UNSUPPORTED = re.compile(
    r"thermal\s+conductivit\w*|melting\s+(?:point|temperature)|(?:ionic|electrical|electronic|"
    r"proton)\s+conductivit\w*|\bconductivit\w*|dielectric\s+constant|permittivity|refractive"
    r"\s+index|seebeck|critical\s+temperature|\btc\b|thermal\s+expansion|young'?s\s+modulus|"
    r"debye\s+temperature|work\s+function|effective\s+mass|absorption\s+coefficient|"
    r"specific\s+capacity|\bcapacity\b|\bvoltage\b|toxicity|\bprice\b|\bcost\b")

_NUM = r"(-?\d+(?:\.\d+)?)"
_UNIT = r"\s*(mev/atom|ev/atom|mev|ev|gpa|mpa|g/cm\^?3|g/cc)?"


def _convert(value: float, unit: str | None, prop: str) -> float:
    unit = (unit or "").lower()
    if unit.startswith("mev") or unit == "mpa":
        return value / 1000
    return value


@dataclass
class Constraint:
    """A numeric bound on a property stated in the message (values in the property's unit)."""

    property: str
    unit: str
    min: float | None
    max: float | None
    text: str


def constraints_in(lowered: str, mentioned: list[str]) -> list[Constraint]:
    """Numeric bounds that follow property mentions ("band gap between 2 and 3 eV")."""
    if not re.search(r"\d", lowered):
        return []
    out: list[Constraint] = []
    within = re.search(rf"within\s+{_NUM}\s*(mev|ev)(?:/atom)?\s+(?:of\s+)?(?:the\s+)?"
                       rf"(?:convex\s+)?hull", lowered)
    if within:
        value = float(within.group(1)) / (1000 if within.group(2) == "mev" else 1)
        out.append(Constraint("e_above_hull", "eV/atom", None, value, within.group(0)))
    for name, pattern in _PROPERTY_PATTERNS:
        if name not in mentioned or any(c.property == name for c in out):
            continue
        for match in pattern.finditer(lowered):
            window = re.split(r"[,;]|\band\s+(?=[a-z])", lowered[match.end(): match.end() + 60])[0]
            ranged = re.search(rf"{_NUM}{_UNIT}\s*(?:-|–|to|and)\s*{_NUM}{_UNIT}", window)
            lower = re.search(rf"(?:above|over|greater\s+than|more\s+than|at\s+least|exceeding|"
                              rf">=|>|≥)\s*{_NUM}{_UNIT}", window)
            upper = re.search(rf"(?:below|under|less\s+than|at\s+most|lower\s+than|<=|<|≤)"
                              rf"\s*{_NUM}{_UNIT}", window)
            unit = PROPERTY_UNITS[name]
            if ranged:
                lo = _convert(float(ranged.group(1)), ranged.group(2) or ranged.group(4), name)
                hi = _convert(float(ranged.group(3)), ranged.group(4), name)
                out.append(Constraint(name, unit, min(lo, hi), max(lo, hi),
                                      match.group(0) + window[: ranged.end()]))
            elif lower or upper:
                out.append(Constraint(
                    name, unit,
                    _convert(float(lower.group(1)), lower.group(2), name) if lower else None,
                    _convert(float(upper.group(1)), upper.group(2), name) if upper else None,
                    match.group(0) + window[: max(m.end() for m in (lower, upper) if m)]))
            else:
                continue
            break
    return out


def properties_in(text: str, lowered: str) -> list[str]:
    """Property names of the vocabulary the message mentions, in vocabulary order."""
    found = [name for name, pattern in _PROPERTY_PATTERNS if pattern.search(lowered)]
    if "band_gap" not in found and _EG.search(text):
        found.insert(0, "band_gap")
    return found


def unsupported_properties(lowered: str) -> list[str]:
    """Properties the message asks about that no tool computes (thermal conductivity...)."""
    return list(dict.fromkeys(m.group(0) for m in _UNSUPPORTED.finditer(lowered)))


# --------------------------------------------------------------------------- structures
@dataclass
class PastedStructure:
    """A crystal structure pasted into the message as CIF or POSCAR text."""

    format: str
    text: str
    formula: str | None = None
    n_atoms: int | None = None
    problem: str | None = None
    unknown_symbols: list[str] = field(default_factory=list)


_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FLOATS3 = re.compile(rf"^\s*{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}(?:\s+.*)?$")
_CIF_START = re.compile(r"(?m)^[ \t]*data_\S*[ \t]*$")


def _is_prose(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith(("_", "#", ";", "'", '"', "loop_")) and \
        not re.search(r"\d", s) and len(re.findall(r"[A-Za-z]{3,}", s)) >= 2


def _composition(counts: dict[str, float]) -> tuple[str | None, list[str]]:
    bad = [s for s in counts if s not in SYMBOLS]
    if bad or not counts:
        return None, bad
    return Composition(counts).reduced_formula, []


def _cif(text: str) -> tuple[PastedStructure, int, int] | None:
    start = _CIF_START.search(text)
    if not start or "_cell_length_a" not in text[start.start():]:
        return None
    lines = text[start.start():].split("\n")
    end = len(lines)
    for i, line in enumerate(lines[1:], 1):
        if _is_prose(line):
            end = i
            break
    block = "\n".join(lines[:end])
    begin = start.start()
    before = text[:begin].rstrip("\n").split("\n")
    if before and before[-1].lstrip().startswith("#"):
        begin -= len(before[-1]) + 1
        block = before[-1] + "\n" + block
    stop = start.start() + len("\n".join(lines[:end]))
    out = PastedStructure(format="cif", text=block.strip("\n") + "\n")
    summed = re.search(r"_chemical_formula_sum\s+['\"]?([^'\"\n]+)", block)
    if summed:
        counts: dict[str, float] = {}
        for sym, n in re.findall(r"([A-Z][a-z]?)\s*(\d*\.?\d*)", summed.group(1)):
            counts[sym] = counts.get(sym, 0.0) + float(n or 1)
        out.formula, out.unknown_symbols = _composition(counts)
    sites = _cif_sites(block)
    if sites is not None:
        symbols, weights = sites
        bad = sorted({s for s in symbols if s not in SYMBOLS})
        if bad:
            out.unknown_symbols = sorted(set(out.unknown_symbols) | set(bad))
        elif out.formula is None and weights is not None:
            counts = {}
            for s, w in zip(symbols, weights, strict=True):
                counts[s] = counts.get(s, 0.0) + w
            out.formula, _ = _composition(counts)
            out.n_atoms = round(sum(weights))
    if out.unknown_symbols:
        out.formula = None
        plural = len(out.unknown_symbols) > 1
        out.problem = (f"the CIF names {', '.join(out.unknown_symbols)}, which "
                       f"{'are not elements' if plural else 'is not an element'}")
    elif out.formula is None:
        _cif_with_pymatgen(out)
    return out, begin, stop


def _cif_sites(block: str) -> tuple[list[str], list[float] | None] | None:
    """Element symbols of the atom-site loop and their weights (None when symmetry is needed)."""
    lines = block.split("\n")
    for i, line in enumerate(lines):
        if line.strip() != "loop_":
            continue
        headers: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith("_"):
            headers.append(lines[j].strip().split()[0])
            j += 1
        if not any(h.startswith("_atom_site_") for h in headers) or \
                "_atom_site_fract_x" not in headers and "_atom_site_cartn_x" not in headers:
            continue
        col = headers.index("_atom_site_type_symbol") if "_atom_site_type_symbol" in headers \
            else headers.index("_atom_site_label") if "_atom_site_label" in headers else None
        if col is None:
            return None
        mult = headers.index("_atom_site_symmetry_multiplicity") \
            if "_atom_site_symmetry_multiplicity" in headers else None
        symbols: list[str] = []
        weights: list[float] = []
        for row in lines[j:]:
            parts = row.split()
            if not parts or parts[0].startswith(("_", "loop_", "#")) or len(parts) < len(headers):
                break
            symbol = re.match(r"[A-Z][a-z]?", parts[col])
            symbols.append(symbol.group(0) if symbol else parts[col])
            weights.append(float(parts[mult]) if mult is not None else 1.0)
        p1 = re.search(r"_symmetry_Int_Tables_number\s+1\s*$|_space_group_IT_number\s+1\s*$|"
                       r"_symmetry_space_group_name_H-M\s+['\"]?P\s*1['\"]?\s*$", block, re.M)
        return symbols, weights if (mult is not None or p1) else None
    return None


def _cif_with_pymatgen(out: PastedStructure) -> None:
    """Symmetry-expand a CIF whose formula the text alone does not give (slow, rare)."""
    from pymatgen.core import Structure

    try:
        with quiet_third_party():
            structure = Structure.from_str(out.text, fmt="cif")
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for bad CIF text
        out.problem = f"the CIF could not be read ({type(exc).__name__}: {str(exc)[:120]})"
        return
    out.formula = structure.composition.reduced_formula
    out.n_atoms = len(structure)


def _poscar(text: str) -> tuple[PastedStructure, int, int] | None:
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for i in range(len(lines) - 5):
        if not re.fullmatch(rf"\s*{_FLOAT}(?:\s+{_FLOAT}){{0,2}}\s*", lines[i]):
            continue
        if not all(_FLOATS3.match(lines[i + k]) for k in (1, 2, 3)):
            continue
        k = i + 4
        species = lines[k].split()
        if species and all(re.fullmatch(r"[A-Za-z]{1,2}[\w/]*", s) for s in species):
            k += 1
        else:
            species = []
        counts = lines[k].split() if k < len(lines) else []
        if not counts or not all(c.isdigit() for c in counts):
            continue
        k += 1
        if k < len(lines) and lines[k].strip()[:1] in ("S", "s"):
            k += 1
        if k >= len(lines) or lines[k].strip()[:1] not in ("D", "d", "C", "c", "K", "k"):
            continue
        n = sum(int(c) for c in counts)
        end = k + 1
        while end < len(lines) and end <= k + n and _FLOATS3.match(lines[end]):
            end += 1
        first = max(i - 1, 0)
        block = "\n".join(lines[first:end]) + "\n"
        out = PastedStructure(format="poscar", text=block, n_atoms=n)
        if not species and first < i:  # VASP 4: element names, if any, on the comment line
            names = lines[first].split()
            if len(names) == len(counts) and all(re.fullmatch(r"[A-Z][a-z]?", s) for s in names):
                species = names
        species = [re.match(r"[A-Za-z]{1,2}", s).group(0) for s in species]  # type: ignore[union-attr]
        if len(species) != len(counts):
            out.problem = "the POSCAR does not name its elements (add the element line)"
        else:
            totals: dict[str, float] = {}
            for s, c in zip(species, counts, strict=True):
                totals[s] = totals.get(s, 0.0) + int(c)
            out.formula, out.unknown_symbols = _composition(totals)
            if out.unknown_symbols:
                out.problem = (f"the POSCAR names {', '.join(out.unknown_symbols)}, not "
                               f"{'an element' if len(out.unknown_symbols) == 1 else 'elements'}")
        return out, offsets[first], offsets[end] - 1
    return None


def find_structure(text: str) -> tuple[PastedStructure | None, str]:
    """Find a pasted CIF or POSCAR; return it and the message without it."""
    if "\n" not in text:
        return None, text
    found = _cif(text) or _poscar(text)
    if found is None:
        return None, text
    structure, begin, end = found
    return structure, (text[:begin] + " " + text[end:]).strip()


# --------------------------------------------------------------------------- paths and ids
_EXT = r"\.(?:cif|vasp|poscar|contcar|xyz|extxyz|json|cif\.gz)\b"
_SEG = r"[\w.\-]{1,100}"  # bounded, so a long run of word characters cannot make it quadratic
_PATH = re.compile(
    r"(?<![\w/\\])("
    rf"[A-Za-z]:\\(?:[\w.\- ]{{1,100}}\\){{0,20}}{_SEG}"                      # C:\dir\x.cif
    rf"|(?:{_SEG}\\){{1,20}}[\w.\-]{{1,100}}?{_EXT}"                          # dir\x.cif
    rf"|(?:~|\.{{1,2}})?/?(?:{_SEG}/){{0,20}}[\w\-]{{1,100}}(?:\.[\w\-]{{1,20}}){{0,4}}?{_EXT}"
    rf"|(?:~|\.{{1,2}})?/?(?:{_SEG}/){{1,20}}(?:POSCAR|CONTCAR)[\w.\-]{{0,50}}"  # dir/POSCAR
    r"|/(?:POSCAR|CONTCAR)[\w.\-]{0,50})", re.IGNORECASE)
_PATH_HINT = re.compile(r"\.(?:cif|vasp|poscar|contcar|xyz|extxyz|json)|poscar|contcar|"
                        r"[a-z]:\\", re.IGNORECASE)
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
_NAMED_RUN = re.compile(r"\b(?:run|campaign)\s+(?:id\s+)?[\"'`]?([A-Za-z0-9][\w.\-]{3,99})")
_HYP_WORDS = re.compile(r"hypothes|reject|approv|accept|confirm|refut|critic|verdict|"
                        r"why\s+(?:was|did|is|were)")


def paths_in(text: str) -> list[str]:
    """Structure-file paths typed in the message (the assistant cannot read these)."""
    if not _PATH_HINT.search(text):
        return []
    return list(dict.fromkeys(m.group(1).rstrip(".") for m in _PATH.finditer(text)))


def run_id_in(text: str) -> str | None:
    """Find a campaign id: matloop's ``YYYYmmdd-HHMMSS-xxxxxx`` or ``run <id>`` with a digit."""
    match = RUN_ID.search(text)
    if match:
        return match.group(0)
    for named in _NAMED_RUN.finditer(text):
        token = named.group(1).rstrip(".")
        if re.search(r"\d", token) and re.search(r"[A-Za-z-]", token):
            return token
    return None


def hypothesis_id_in(lowered: str, *, about_runs: bool) -> str | None:
    """Find a hypothesis id ("H2", "hypothesis 3"); a bare H2 counts only near run words."""
    named = re.search(r"\bhypothes[ie]s\s+(?:#\s*|no\.?\s*)?h?(\d{1,3})\b", lowered)
    if named:
        return f"H{named.group(1)}"
    bare = re.search(r"\bh(\d{1,3})\b", lowered)
    if bare and (about_runs or _HYP_WORDS.search(lowered)):
        return f"H{bare.group(1)}"
    return None
