"""Reading, checking and fingerprinting crystal structures.

Every structure that enters matloop passes :func:`validate_structure`, so a bad file fails
here with a message that names the problem, never deep inside an MLIP.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Structure

from matloop.errors import StructureInputError

SUPPORTED_SUFFIXES = {
    ".cif": "CIF",
    ".vasp": "POSCAR",
    ".poscar": "POSCAR",
    ".extxyz": "extended XYZ",
    ".xyz": "extended XYZ",
    ".json": "pymatgen JSON",
}


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


def _check_elements_text(text: str, path: Path) -> None:
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
    for sym in symbols:
        bare = "".join(ch for ch in sym if ch.isalpha())
        if bare and not Element.is_valid_symbol(bare):
            raise StructureInputError(
                f"{path}: unknown element '{sym}'",
                hint="check the _atom_site_type_symbol column; symbols must be real elements",
            )


def read_structure(path: str | Path) -> Structure:
    """Read a structure from CIF, POSCAR, extended XYZ or pymatgen JSON and validate it.

    Args:
        path: File to read; the format is taken from its suffix or name.

    Returns:
        The structure, checked by :func:`validate_structure` with default limits.

    Raises:
        StructureInputError: The file is missing, unparseable or the structure is unphysical.
    """
    path = Path(path)
    if not path.is_file():
        raise StructureInputError(f"{path}: no such file", hint="check the path")
    fmt = _format_of(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise StructureInputError(f"{path}: cannot be read ({exc})") from exc
    if not text.strip():
        raise StructureInputError(f"{path}: file is empty", hint=f"expected a {fmt} structure")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "CIF":
                _check_elements_text(text, path)
                structure = _parse_cif(text, path)
            elif fmt == "POSCAR":
                structure = Structure.from_str(text, fmt="poscar")
            elif fmt == "pymatgen JSON":
                structure = Structure.from_dict(json.loads(text))
            else:
                from ase.io import read as ase_read
                from pymatgen.io.ase import AseAtomsAdaptor

                structure = AseAtomsAdaptor.get_structure(ase_read(str(path), format="extxyz"))
    except StructureInputError:
        raise
    except Exception as exc:  # parsers raise many types; the user needs one clear message
        raise StructureInputError(
            f"{path}: not a readable {fmt} file ({type(exc).__name__}: {_short(exc)})",
            hint=f"check that the file is a complete, valid {fmt} structure",
        ) from exc
    return validate_structure(structure, source=str(path))


def _parse_cif(text: str, path: Path) -> Structure:
    from pymatgen.io.cif import CifParser

    parser = CifParser.from_str(text, occupancy_tolerance=1.0)
    structures = parser.parse_structures(primitive=False, on_error="raise")
    if not structures:
        raise StructureInputError(f"{path}: the CIF holds no structure")
    return structures[0]


def _short(exc: Exception, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:limit]


def validate_structure(
    structure: Structure,
    *,
    max_atoms: int | None = None,
    min_distance_angstrom: float | None = None,
    source: str = "structure",
) -> Structure:
    """Check that a structure can be evaluated; return it unchanged when it can.

    Checks: ordered sites with known elements, a positive finite cell volume, no two atoms
    closer than ``min_distance_angstrom`` and at most ``max_atoms`` sites.

    Raises:
        StructureInputError: With the failed check and what to do.
    """
    from matloop.config import get_settings

    settings = get_settings()
    max_atoms = settings.max_atoms if max_atoms is None else max_atoms
    min_distance = (
        settings.min_distance_angstrom if min_distance_angstrom is None else min_distance_angstrom
    )
    if len(structure) == 0:
        raise StructureInputError(f"{source}: the structure has no atoms")
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
    if len(structure) > 1 or min(structure.lattice.abc) < min_distance:
        dmin = min_interatomic_distance(structure)
        if dmin < min_distance:
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
        rows.append(sorted(zip(species, map(tuple, np.round(shifted, decimals).tolist()))))
    canonical = min(rows)
    payload = json.dumps({"lattice": lat.tolist(), "sites": canonical}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
