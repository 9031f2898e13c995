"""Reading, checking and fingerprinting crystal structures.

Every structure that enters matloop passes :func:`validate_structure`, so a bad file fails
here with a message that names the problem, never deep inside an MLIP.

Messages name the file (or "CIF text", "POSCAR text", ...) and the problem, never the file's
content: a parser's own message is kept only for the words in it that are not in the file, so
reading a private file by mistake cannot echo it into a chat, a log or a web page.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Element, Structure

from matloop.errors import StructureInputError, StructureTooLargeError
from matloop.logs import quiet_third_party

SUPPORTED_SUFFIXES = {
    ".cif": "CIF",
    ".vasp": "POSCAR",
    ".poscar": "POSCAR",
    ".extxyz": "extended XYZ",
    ".xyz": "extended XYZ",
    ".json": "pymatgen JSON",
}
FORMATS = ("CIF", "POSCAR", "extended XYZ", "pymatgen JSON")

#: Largest structure file or text read, bytes. A 200-atom CIF is about 20 KB; the limit leaves
#: room for verbose CIFs (symmetry loops, anisotropic displacements) while refusing logs,
#: trajectories and binary files passed by mistake.
MAX_STRUCTURE_BYTES = 5 * 1024 * 1024

#: Smallest volume per atom accepted, Å^3/atom. The densest solid at ambient pressure is
#: diamond (5.67 Å^3/atom in the starter library; the densest Carbon-24 AIRSS structure, relaxed
#: at 10 GPa, is 5.43). Half of that is only reached at multi-megabar pressures, so a smaller
#: cell is a unit or scale-factor error (lattice in nm read as Å, a POSCAR volume of -1 Å^3).
MIN_VOLUME_PER_ATOM_A3 = 2.5

#: Largest volume per atom accepted for a bulk crystal, Å^3/atom. The largest elemental solid
#: is bcc Cs (115.8 Å^3/atom in the starter library; Rb 87.1); porous frameworks and 2D layers
#: in a 20 Å box stay below 60. The 30 % margin covers thermal expansion and MLIP
#: over-expansion. Molecules in a vacuum box (256 Å^3/atom for the starter library's O2, F2,
#: H2) pass only when the caller allows vacuum.
MAX_VOLUME_PER_ATOM_A3 = 150.0


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.startswith(("poscar", "contcar")):
        return "POSCAR"
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        valid = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise StructureInputError(
            f"{path}: unknown structure format '{suffix or path.name}'",
            hint=f"use one of {valid}, or a file named POSCAR/CONTCAR",
        )
    return SUPPORTED_SUFFIXES[suffix]


def _check_elements_text(text: str, source: str) -> None:
    """Catch unknown element symbols in CIF text before pymatgen guesses around them."""
    symbols: set[str] = set()
    in_loop = False
    header: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("loop_"):
            in_loop, header = True, []
            continue
        if in_loop and line.startswith("_"):
            header.append(line.split()[0])
            continue
        if in_loop and header and line and not line.startswith("#"):
            if "_atom_site_type_symbol" in header:
                parts = line.split()
                if len(parts) == len(header):
                    symbols.add(parts[header.index("_atom_site_type_symbol")])
            continue
        if not line:
            in_loop = False
    for sym in sorted(symbols):
        bare = "".join(ch for ch in sym if ch.isalpha())
        if bare and not Element.is_valid_symbol(bare):
            shown = sym if len(sym) <= 4 and sym.isalnum() else "(not an element symbol)"
            raise StructureInputError(
                f"{source}: unknown element '{shown}'",
                hint="check the _atom_site_type_symbol column; symbols must be real elements",
            )


def read_structure(path: str | Path, *, allow_vacuum: bool = False,
                   max_bytes: int = MAX_STRUCTURE_BYTES) -> Structure:
    """Read a structure from CIF, POSCAR, extended XYZ or pymatgen JSON and validate it.

    For trusted callers that already decided the path may be read (the command line, files the
    campaign wrote itself). Paths that come from a chat message or a web request go through
    :func:`matloop.files.load_structure`, which checks them against the allowed folders first.

    Args:
        path: File to read; the format is taken from its suffix or name.
        allow_vacuum: Accept cells with more than ``MAX_VOLUME_PER_ATOM_A3`` per atom
            (molecules or slabs in a vacuum box).
        max_bytes: Largest file read.

    Returns:
        The structure, checked by :func:`validate_structure` with default limits.

    Raises:
        StructureInputError: The file is missing, too big, unparseable or the structure is
            unphysical.
    """
    path = Path(path)
    try:
        exists, regular = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # e.g. a NUL byte or an over-long name
        raise StructureInputError(f"{_shown(path)}: not a usable path ({type(exc).__name__})",
                                  hint="check the path") from exc
    if not exists:
        raise StructureInputError(f"{path}: no such file", hint="check the path")
    if not regular:
        raise StructureInputError(f"{path}: not a regular file",
                                  hint="pass a structure file, not a folder or a device")
    fmt = _format_of(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_large(str(path), size, max_bytes)
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise StructureInputError(f"{path}: cannot be read ({type(exc).__name__})",
                                  hint="check the file's permissions") from exc
    if len(data) > max_bytes:
        raise _too_large(str(path), len(data), max_bytes)
    text = data.decode("utf-8", errors="replace")
    return parse_structure_text(text, fmt, source=str(path), allow_vacuum=allow_vacuum)


#: What :func:`as_structure` accepts: a pymatgen Structure, an ASE Atoms, or a file path.
StructureLike = Any


def is_ase_atoms(obj: object) -> bool:
    """Whether ``obj`` is an ASE ``Atoms`` (checked without importing ASE when it is not)."""
    cls = type(obj)
    return any(c.__module__.startswith("ase") and c.__name__ == "Atoms" for c in cls.__mro__)


def as_structure(obj: StructureLike, *, source: str | None = None, allow_vacuum: bool = False,
                 ) -> Structure:
    """A validated pymatgen Structure from a Structure, an ASE ``Atoms`` or a file path.

    Files are read with :func:`read_structure`; objects are converted (ASE through
    ``AseAtomsAdaptor``) and checked with :func:`validate_structure`.

    Raises:
        StructureInputError: Anything else, or a structure that cannot be evaluated.
    """
    if isinstance(obj, str | Path):
        return read_structure(obj, allow_vacuum=allow_vacuum)
    label = source or "structure"
    if is_ase_atoms(obj):
        from pymatgen.io.ase import AseAtomsAdaptor

        if len(obj) == 0:
            raise StructureInputError(f"{label}: the ASE Atoms object has no atoms")
        if not all(obj.pbc):
            raise StructureInputError(
                f"{label}: the ASE Atoms object is not periodic in all three directions "
                f"(pbc={list(map(bool, obj.pbc))})",
                hint="set atoms.pbc = True and a cell (atoms.center(vacuum=...) for molecules, "
                     "with allow_vacuum)")
        try:
            structure = AseAtomsAdaptor.get_structure(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise StructureInputError(f"{label}: the ASE Atoms object cannot be converted "
                                      f"({type(exc).__name__}: {str(exc)[:120]})") from exc
    elif isinstance(obj, Structure):
        structure = obj
    else:
        raise StructureInputError(
            f"{label}: expected a pymatgen Structure, an ASE Atoms or a file path, got "
            f"{type(obj).__name__}",
            hint="read files with matloop.read_structure, or pass their paths")
    return validate_structure(structure, allow_vacuum=allow_vacuum, source=label)


def _shown(path: Path) -> str:
    return repr(str(path)[:200])


def _too_large(source: str, size: int, limit: int) -> StructureTooLargeError:
    return StructureTooLargeError(
        f"{source}: {size / 1024**2:.1f} MiB is larger than the {limit / 1024**2:.0f} MiB "
        "limit for structure files",
        hint="pass one structure (a cell of up to a few hundred atoms is a few tens of KB), "
             "not a trajectory or a log")


def detect_text_format(text: str) -> str | None:
    """Format of structure text (CIF, POSCAR, extended XYZ, pymatgen JSON), or None."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "pymatgen JSON"
    if re.search(r"(?m)^\s*data_", text) or "_cell_length_a" in text:
        return "CIF"
    lines = stripped.splitlines()
    if len(lines) >= 2 and lines[0].strip().isdigit() and "lattice=" in lines[1].lower():
        return "extended XYZ"
    if len(lines) >= 7 and all(_three_numbers(lines[i]) for i in (2, 3, 4)):
        return "POSCAR"  # lines 3-5 are the lattice vectors; line 2 is checked when parsed
    return None


def _three_numbers(line: str) -> bool:
    tokens = line.split()
    try:
        return len(tokens) >= 3 and all(math.isfinite(float(x)) for x in tokens[:3])
    except ValueError:
        return False


def parse_structure_text(text: str, fmt: str, *, source: str, allow_vacuum: bool = False,
                         max_bytes: int = MAX_STRUCTURE_BYTES) -> Structure:
    """Parse structure text of a known format and validate it.

    Args:
        text: The file's content.
        fmt: One of ``FORMATS``.
        source: Name used in messages (a path, or "CIF text").
        allow_vacuum: Accept cells with more than ``MAX_VOLUME_PER_ATOM_A3`` per atom.
        max_bytes: Largest text accepted (UTF-8 bytes).

    Raises:
        StructureInputError: Unparseable text or an unphysical structure; the message names
            ``source`` and the problem, never the text.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown structure format {fmt!r}; use one of {', '.join(FORMATS)}")
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise _too_large(source, size, max_bytes)
    if not text.strip():
        raise StructureInputError(f"{source}: file is empty", hint=f"expected a {fmt} structure")
    try:
        with quiet_third_party(), np.errstate(all="ignore"):
            if fmt == "CIF":
                _check_elements_text(text, source)
                structure = _parse_cif(text, source)
            elif fmt == "POSCAR":
                structure = _parse_poscar(text, source)
            elif fmt == "pymatgen JSON":
                data = json.loads(text)
                if not isinstance(data, dict) or "lattice" not in data or "sites" not in data:
                    raise StructureInputError(
                        f"{source}: not a pymatgen Structure (a JSON object with 'lattice' and "
                        "'sites' is expected)",
                        hint="write the file with Structure.to(filename='x.json')")
                structure = Structure.from_dict(data)
            else:
                from ase.io import read as ase_read
                from pymatgen.io.ase import AseAtomsAdaptor

                atoms = ase_read(io.StringIO(text), format="extxyz", index=0)
                structure = AseAtomsAdaptor.get_structure(atoms)
    except StructureInputError:
        raise
    except Exception as exc:  # parsers raise many types; the user needs one clear message
        raise StructureInputError(
            f"{source}: not a readable {fmt} file ({_safe_reason(exc, text)})",
            hint=f"check that the file is a complete, valid {fmt} structure",
        ) from exc
    try:
        return validate_structure(structure, source=source, allow_vacuum=allow_vacuum)
    except StructureInputError:
        raise
    except Exception as exc:  # e.g. a cell pymatgen builds but cannot measure
        raise StructureInputError(
            f"{source}: the structure cannot be checked ({_safe_reason(exc, text)})",
            hint=f"check the lattice and coordinates of the {fmt} structure") from exc


def _parse_cif(text: str, source: str) -> Structure:
    from pymatgen.io.cif import CifParser

    parser = CifParser.from_str(text, occupancy_tolerance=1.0)
    structures = parser.parse_structures(primitive=False, on_error="raise")
    if not structures:
        raise StructureInputError(f"{source}: the CIF holds no structure")
    return structures[0]


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")


def _safe_reason(exc: BaseException, text: str, limit: int = 160) -> str:
    """The parser's complaint without anything taken from ``text``.

    Quoted parts are dropped, and so is every word of the message that occurs in the text:
    "could not convert string to float: 'secret'" becomes "could not convert string to
    float: …". The exception type always stays.
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    first = _QUOTED.sub("…", first)
    words = []
    for word in first.split():
        core = word.strip(".,:;!?()[]{}<>")
        if len(core) >= 3 and core in text:
            word = "…"
        if word == "…" and words and words[-1] == "…":
            continue
        words.append(word)
    message = " ".join(words).strip()
    if message in ("", "…"):
        return type(exc).__name__
    return f"{type(exc).__name__}: {message[:limit]}"


_POSCAR_LINES = {1: "scale factor", 2: "lattice vector 1", 3: "lattice vector 2",
                 4: "lattice vector 3"}


def _numbers(line: str, index: int, source: str) -> list[float]:
    """The numbers of one header line of a POSCAR (comments after ! or # ignored).

    Line 2 must hold one or three numbers; lattice lines at least three (the first three are
    the vector).
    """
    tokens = re.split(r"[!#]", line, maxsplit=1)[0].split()
    what = _POSCAR_LINES[index]
    out = []
    for token in tokens:
        try:
            out.append(float(token))
        except ValueError:
            break
    if index == 1:
        ok, need = len(out) in (1, 3), "one or three numbers"
    else:
        ok, need, out = len(out) >= 3, "three numbers", out[:3]
    if not ok:
        raise StructureInputError(
            f"{source}: POSCAR line {index + 1} ({what}) must hold {need}",
            hint="line 2 is the scale factor (or minus the cell volume in Å^3), lines 3-5 "
                 "the lattice vectors")
    if not all(math.isfinite(x) for x in out):
        raise StructureInputError(f"{source}: POSCAR line {index + 1} ({what}) holds a "
                                  "non-finite number", hint="use finite numbers")
    return out


def _poscar_is_cartesian(lines: list[str]) -> bool:
    """Whether the coordinates after the species/count lines are Cartesian."""
    i = 5
    while i < len(lines):  # optional species line(s), then the count line(s)
        tokens = lines[i].split()
        if tokens and tokens[0].isdigit():
            break
        i += 1
    while i < len(lines) and lines[i].split() and all(t.isdigit() for t in lines[i].split()):
        i += 1
    if i < len(lines) and lines[i].strip()[:1] in ("s", "S"):
        i += 1
    return i < len(lines) and lines[i].strip()[:1] in ("c", "C", "k", "K")


def _parse_poscar(text: str, source: str) -> Structure:
    """A POSCAR read with its scale line applied exactly as VASP does.

    One positive number scales the lattice and Cartesian positions; a negative number is the
    cell volume in Å^3 (the scale is computed from it); three positive numbers scale the x, y
    and z components of the lattice vectors and of Cartesian positions. pymatgen reads the
    first two cases for Direct coordinates but multiplies Cartesian positions by the negative
    number itself and rejects three numbers, so the header is applied here and pymatgen reads
    a copy with scale 1.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) < 8:
        raise StructureInputError(f"{source}: a POSCAR needs at least 8 lines, this has "
                                  f"{len(lines)}", hint="check that the file is complete")
    scale = _numbers(lines[1], 1, source)
    lattice = np.array([_numbers(lines[i], i, source) for i in (2, 3, 4)])
    if len(scale) == 3:
        if min(scale) <= 0:
            raise StructureInputError(f"{source}: POSCAR line 2 holds three scale factors, "
                                      "and they must all be positive",
                                      hint="VASP accepts a negative value only as a single "
                                           "number (the cell volume)")
        factors = np.array(scale)
    elif scale[0] > 0:
        factors = np.full(3, scale[0])
    elif scale[0] < 0:
        volume = abs(float(np.linalg.det(lattice)))
        if not volume > 1e-12 or not math.isfinite(volume):
            raise StructureInputError(f"{source}: the POSCAR lattice vectors span no volume, "
                                      "so the volume on line 2 cannot set the scale",
                                      hint="the lattice vectors must be linearly independent")
        factors = np.full(3, (-scale[0] / volume) ** (1.0 / 3.0))
    else:
        raise StructureInputError(f"{source}: POSCAR scale factor (line 2) is zero",
                                  hint="use 1.0 with lattice vectors in Å, or -V for a cell "
                                       "volume of V Å^3")
    scaled = lattice * factors[None, :]
    lines[1] = "1.0"
    for row, i in enumerate((2, 3, 4)):
        lines[i] = " ".join(repr(float(x)) for x in scaled[row])
    structure = Structure.from_str("\n".join(lines), fmt="poscar")
    if _poscar_is_cartesian(lines) and not np.allclose(factors, 1.0):
        structure = Structure(structure.lattice, structure.species,
                              structure.cart_coords * factors[None, :],
                              coords_are_cartesian=True,
                              site_properties=structure.site_properties or None)
    return structure


def validate_structure(
    structure: Structure,
    *,
    max_atoms: int | None = None,
    min_distance_angstrom: float | None = None,
    min_volume_per_atom_a3: float = MIN_VOLUME_PER_ATOM_A3,
    max_volume_per_atom_a3: float | None = MAX_VOLUME_PER_ATOM_A3,
    allow_vacuum: bool = False,
    source: str = "structure",
) -> Structure:
    """Check that a structure can be evaluated; return it unchanged when it can.

    Checks: finite lattice and coordinates, ordered sites with known elements, a positive cell
    volume, a volume per atom within ``[min_volume_per_atom_a3, max_volume_per_atom_a3]``
    (the upper bound is dropped with ``allow_vacuum`` or ``None``), no two atoms closer than
    ``min_distance_angstrom`` and at most ``max_atoms`` sites.

    Raises:
        StructureInputError: With the failed check and what to do.
    """
    from matloop.config import get_settings

    settings = get_settings()
    max_atoms = settings.max_structure_atoms if max_atoms is None else max_atoms
    min_distance = (
        settings.min_distance_angstrom if min_distance_angstrom is None else min_distance_angstrom
    )
    if len(structure) == 0:
        raise StructureInputError(f"{source}: the structure has no atoms")
    matrix = np.asarray(structure.lattice.matrix, dtype=float)
    if not np.all(np.isfinite(matrix)):
        raise StructureInputError(f"{source}: the lattice holds non-finite numbers (NaN or inf)",
                                  hint="check the cell parameters")
    if not np.all(np.isfinite(np.asarray(structure.frac_coords, dtype=float))):
        raise StructureInputError(f"{source}: atomic coordinates hold non-finite numbers "
                                  "(NaN or inf)", hint="check the atomic positions")
    if not structure.is_ordered:
        partial = sorted({site.species.formula for site in structure if not site.is_ordered})
        raise StructureInputError(
            f"{source}: disordered or partially occupied sites ({', '.join(partial[:5])})",
            hint=(
                "MLIPs need one element per site: order the structure first, e.g. with "
                "pymatgen's OrderDisorderedStructureTransformation or an SQS, "
                "then pass the ordered cell"
            ),
        )
    for site in structure:
        el = site.specie
        symbol = getattr(el, "symbol", str(el))
        if not Element.is_valid_symbol(symbol) or getattr(el, "Z", 0) < 1:
            raise StructureInputError(f"{source}: unknown element '{symbol}'")
        if getattr(el, "Z", 0) > 94:
            raise StructureInputError(
                f"{source}: element {symbol} (Z={el.Z}) is outside what the MLIPs were trained on",
                hint="use elements up to Pu (Z=94)",
            )
    volume = float(structure.lattice.volume)
    if not np.isfinite(volume) or volume <= 1e-6:
        raise StructureInputError(
            f"{source}: cell volume is {volume:.3g} Å^3 (zero or negative)",
            hint="the lattice vectors must be linearly independent and right-handed",
        )
    if len(structure) > max_atoms:
        raise StructureInputError(
            f"{source}: {len(structure)} atoms exceeds the limit of {max_atoms} atoms per cell",
            hint="use the primitive cell, or raise MATLOOP_MAX_ATOMS",
        )
    per_atom = volume / len(structure)
    if per_atom < min_volume_per_atom_a3:
        raise StructureInputError(
            f"{source}: {per_atom:.3g} Å^3 per atom is below {min_volume_per_atom_a3} Å^3/atom, "
            "denser than any solid (diamond is 5.7 Å^3/atom)",
            hint="check the units of the lattice (Å, not nm or bohr) and a POSCAR's scale "
                 "factor on line 2 (a negative value is the cell volume in Å^3)",
        )
    upper = None if allow_vacuum else max_volume_per_atom_a3
    if upper is not None and per_atom > upper:
        raise StructureInputError(
            f"{source}: {per_atom:.3g} Å^3 per atom is above {upper} Å^3/atom, emptier than "
            "any bulk crystal (Cs is 116 Å^3/atom)",
            hint="check the units of the lattice (Å, not bohr or pm); a molecule or slab in "
                 "a vacuum box is only accepted where vacuum is allowed",
        )
    if len(structure) > 1 or min(structure.lattice.abc) < min_distance:
        dmin = min_interatomic_distance(structure)
        if not dmin >= min_distance:  # also catches NaN
            raise StructureInputError(
                f"{source}: atoms {dmin:.3f} Å apart, closer than {min_distance} Å",
                hint="check for duplicated sites or a wrong cell/coordinate setting",
            )
    return structure


def min_interatomic_distance(structure: Structure) -> float:
    """Shortest distance between two atoms (including periodic images), Å."""
    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    dm = structure.distance_matrix
    np.fill_diagonal(dm, np.inf)
    dmin = float(dm.min())
    # Periodic self-images are not in the distance matrix.
    return min(dmin, float(min(structure.lattice.abc)))


def structure_fingerprint(structure: Structure, *, decimals: int = 4) -> str:
    """A hash that is the same for the same cell written in a different site order or origin.

    The structure is Niggli-reduced, its sites sorted, coordinates rounded. Two files of one
    structure in different settings (e.g. conventional vs primitive) still hash differently;
    symmetry-aware de-duplication belongs to StructureMatcher.
    """
    reduced = structure.get_reduced_structure()
    lat = np.round(np.asarray(reduced.lattice.abc + reduced.lattice.angles, dtype=float), 3)
    frac = np.mod(np.round(reduced.frac_coords, decimals), 1.0)
    frac = np.where(np.isclose(frac, 1.0, atol=10.0 ** (-decimals)), 0.0, frac)
    # Shift so the first site of the lowest element sits at the origin: removes origin choice.
    species = [site.specie.symbol for site in reduced]
    order0 = min(range(len(species)), key=lambda i: (species[i], *frac[i]))
    rows = []
    for shift in {tuple(frac[i]) for i in range(len(species)) if species[i] == species[order0]}:
        shifted = np.mod(np.round(frac - np.asarray(shift), decimals), 1.0)
        shifted = np.where(np.isclose(shifted, 1.0, atol=10.0 ** (-decimals)), 0.0, shifted)
        rows.append(sorted(zip(species, map(tuple, np.round(shifted, decimals).tolist()),
                                  strict=True)))
    canonical = min(rows)
    payload = json.dumps({"lattice": lat.tolist(), "sites": canonical}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
