"""Putting MLIP energies on the Materials Project 2020 (MP2020) corrected scale.

MP formation energies combine GGA and GGA+U total energies with the MP2020 corrections
(anion, and GGA/GGA+U mixing for oxides and fluorides of Co, Cr, Fe, Mn, Mo, Ni, V, W).
A backend whose total energies already sit on that scale (CHGNet 0.3.0, trained on corrected
MPtrj energies) needs nothing; a backend that predicts raw GGA/GGA+U energies (SevenNet-0)
gets the same corrections MP applies to its own calculations.
"""

from __future__ import annotations

from functools import lru_cache

from pymatgen.core import Composition, Structure
from pymatgen.entries.compatibility import CompatibilityError, MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedEntry

from matloop.errors import ReferenceDataError
from matloop.logs import quiet_third_party


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
    with quiet_third_party():
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


# --- Legacy MP formation energies -------------------------------------------------------------
# Formation energies from the Materials Project before 2021 (matbench_mp_e_form, the roost
# 2020 file, old exports) use the legacy MaterialsProjectCompatibility: fitted oxide/sulfide
# corrections, different GGA+U mixing corrections, fitted F2/Cl2/N2/H2 energies, and no Br, I,
# Se, Te, Sb or Si anion corrections. Mixing them with MP2020-scale energies shifts Br, I, Se
# and Te compounds by up to -0.3 eV/atom and Fe/Co/Ni/Mo oxides by 0.1-0.2 eV/atom.

#: Gases whose legacy reference energy was a fitted value (eV/atom) instead of the DFT one.
LEGACY_FITTED_GASES = ("N", "F", "Cl", "H")


@lru_cache(maxsize=1)
def _legacy_corrections() -> tuple[object, object, dict[str, float]]:
    from monty.serialization import loadfn
    from pymatgen.analysis.compatibility import MODULE_DIR, AnionCorrection, UCorrection
    from pymatgen.io.vasp.sets import MPRelaxSet

    path = f"{MODULE_DIR}/MPCompatibility.yaml"
    fitted = {k[:-1]: float(v) for k, v in loadfn(path)["Advanced"]["CompoundEnergies"].items()}
    return (AnionCorrection(path, correct_peroxide=True),
            UCorrection(path, MPRelaxSet, "Advanced"), fitted)


def legacy_mp_shift_ev_per_atom(composition: Composition | str,
                                elemental_dft_ev_per_atom: dict[str, float]) -> float:
    """Amount to add to a legacy-MP formation energy (eV/atom) to put it on the MP2020 scale.

    The shift is (MP2020 correction - legacy anion and U corrections) / atoms, minus, for each
    of N, F, Cl, H, its atomic fraction times (DFT elemental energy - legacy fitted energy).

    Args:
        composition: The compound.
        elemental_dft_ev_per_atom: DFT total energies per atom of the elemental references
            (MP2020 elemental entries); needed only for the gases N, F, Cl, H it contains.

    Raises:
        ReferenceDataError: A needed gas energy is missing, or MP2020 rejects the composition.
    """
    comp = Composition(composition)
    anion, ucorr, fitted = _legacy_corrections()
    n = comp.num_atoms
    entry = ComputedEntry(comp, -10.0 * n, parameters=mp_run_parameters(comp))
    with quiet_third_party():
        legacy = float(anion.get_correction(entry).nominal_value) + float(
            ucorr.get_correction(entry).nominal_value)
    shift = (mp2020_correction_ev(comp, -10.0 * n) - legacy) / n
    for gas in LEGACY_FITTED_GASES:
        if gas in comp:
            if gas not in elemental_dft_ev_per_atom:
                raise ReferenceDataError(
                    f"{comp.reduced_formula}: converting a legacy-MP formation energy needs the "
                    f"DFT energy of elemental {gas}",
                    hint="import MP2020 elemental reference entries (ComputedEntry JSON) first")
            shift -= comp.get_atomic_fraction(gas) * (
                elemental_dft_ev_per_atom[gas] - fitted[gas])
    return shift
