"""Putting MLIP energies on the Materials Project 2020 (MP2020) corrected scale.

MP formation energies combine GGA and GGA+U total energies with the MP2020 corrections
(anion, and GGA/GGA+U mixing for oxides and fluorides of Co, Cr, Fe, Mn, Mo, Ni, V, W).
A backend whose total energies already sit on that scale (CHGNet 0.3.0, trained on corrected
MPtrj energies) needs nothing; a backend that predicts raw GGA/GGA+U energies (SevenNet-0)
gets the same corrections MP applies to its own calculations.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

from pymatgen.core import Composition, Structure
from pymatgen.entries.compatibility import CompatibilityError, MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedEntry

from matloop.errors import ReferenceDataError


@lru_cache(maxsize=1)
def _compatibility() -> MaterialsProject2020Compatibility:
    return MaterialsProject2020Compatibility(check_potcar=False)


@lru_cache(maxsize=1)
def mp_hubbard_u() -> dict[str, dict[str, float]]:
    """MP's U values (eV) by anion (O, F) and metal, from pymatgen's MPRelaxSet."""
    from pymatgen.io.vasp.sets import MPRelaxSet

    return {anion: dict(values) for anion, values in MPRelaxSet.CONFIG["INCAR"]["LDAUU"].items()}


def _composition(phase: Structure | Composition) -> Composition:
    return phase.composition if isinstance(phase, Structure) else Composition(phase)


def mp_run_parameters(phase: Structure | Composition) -> dict[str, object]:
    """The run type and U values MP would have used for this composition."""
    elements = {el.symbol for el in _composition(phase).elements}
    hubbards: dict[str, float] = {}
    for anion in ("O", "F"):
        if anion in elements:
            for metal, u in mp_hubbard_u()[anion].items():
                if metal in elements:
                    hubbards[metal] = u
            break
    return {"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards}


def mp2020_correction_ev(phase: Structure | Composition, energy_ev: float) -> float:
    """MP2020 correction (eV per cell or formula) for a raw GGA/GGA+U total energy.

    The corrections depend only on the composition (oxidation states are guessed from it).
    """
    comp = _composition(phase)
    entry = ComputedEntry(comp, energy_ev, parameters=mp_run_parameters(comp))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            processed = _compatibility().process_entry(entry, clean=True, inplace=False)
        except CompatibilityError as exc:
            raise ReferenceDataError(
                f"{comp.reduced_formula}: MP2020 corrections cannot be applied "
                f"({exc})",
                hint="use reference_scale='mlip' for this system",
            ) from exc
    if processed is None:
        raise ReferenceDataError(
            f"{comp.reduced_formula}: MP2020 compatibility rejected the entry",
            hint="use reference_scale='mlip' for this system",
        )
    return float(processed.correction)


def to_mp2020_energy_per_atom(phase: Structure | Composition, energy_per_atom_ev: float,
                              energy_scale: str) -> float:
    """Total energy per atom (eV/atom) on the MP2020-corrected scale.

    Args:
        phase: The structure (or composition) the energy belongs to.
        energy_per_atom_ev: The backend's total energy per atom.
        energy_scale: ``mp2020`` (returned unchanged) or ``gga_raw`` (corrected here).
    """
    if energy_scale == "mp2020":
        return energy_per_atom_ev
    if energy_scale == "gga_raw":
        n = _composition(phase).num_atoms
        return energy_per_atom_ev + mp2020_correction_ev(phase, energy_per_atom_ev * n) / n
    raise ValueError(f"unknown energy scale {energy_scale!r}; valid: mp2020, gga_raw")
