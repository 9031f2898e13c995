"""Mechanical properties from the MLIP, plus density and magnetic moment of a structure.

:func:`elastic_properties` computes the elastic tensor by finite strains: the (relaxed)
structure is put in its standard primitive setting, each of the six Voigt strain components
is applied at ±0.5 % and ±1 % (engineering shear strain for yz, xz, xy), the ions are relaxed
at fixed cell, and each column ``C[:, j]`` is the least-squares slope of the MLIP stress
against the applied strain (the ± pairs cancel the residual stress and the quadratic term).
From ``C`` follow the Voigt, Reuss and Hill bulk and shear moduli, Young's modulus, Poisson's
ratio, Pugh's ratio B/G, the universal anisotropy index, the Born stability check (all
eigenvalues of ``C`` in Mandel notation positive; Mouhat & Coudert, Phys. Rev. B 90, 224104
(2014)) and the Vickers hardness from a published B/G model:

* ``chen2011`` (default): ``Hv = 2 (k^2 G)^0.585 - 3``, ``k = G/B``; Chen, Niu, Li, Li,
  Intermetallics 19, 1275 (2011);
* ``tian2012``: ``Hv = 0.92 k^1.137 G^0.708``; Tian, Xu, Wang, Int. J. Refract. Met. Hard
  Mater. 33, 93 (2012).

Both are empirical fits to hard covalent and ionic crystals (and some metals): for soft or
ductile materials (B/G above about 1.75) they overestimate, and Chen's can go negative.

Results carry the MLIP, its version, the strains and settings and the wall time. With an
:class:`~matloop.materials.evaluation.Evaluator` that has a cache, each strained relaxation
and the final result are stored in the SQLite evaluation cache, keyed by the exact cell
(lattice matrix and coordinates, so differently oriented strains never share a key), the
backend and the settings: a repeated or interrupted call recomputes nothing it finished.

Which MLIP: moduli from universal MLIPs trained on MPtrj are systematically soft (shear
moduli most; see Deng et al., "Overcoming systematic softening in universal machine learning
interatomic potentials by fine-tuning", arXiv:2405.07105), and the B/G hardness models
amplify that (Hv grows like G^3/B^2). On 14 hard and soft solids (``evals/hardness.py``)
SevenNet-0 gave B within about 10 % of experiment and G about 30 % low, and its finite-strain
B agrees with its EOS B0 to a few per cent; CHGNet 0.3.0 has a rough energy surface near
equilibrium for several covalent solids (GaAs, SiC, diamond), which makes its small-strain
constants unreliable there (B of GaAs 14 GPa against an EOS B0 of 45 GPa). Hence
:data:`RECOMMENDED_MLIP`; the function itself uses whatever evaluator it is given.

:func:`density` and :func:`magnetic_moment` are the small helpers: density from a structure,
total and per-atom moments from an MLIP's site moments.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.errors import MatloopError, RelaxationError
from matloop.materials.cache import evaluation_key
from matloop.materials.evaluation import Evaluator
from matloop.materials.mlip import RelaxResult, SinglePointResult

HardnessModel = Literal["chen2011", "tian2012"]
HARDNESS_MODELS: dict[str, str] = {
    "chen2011": "Chen, Niu, Li, Li, Intermetallics 19, 1275 (2011): Hv = 2 (k^2 G)^0.585 - 3, "
                "k = G/B",
    "tian2012": "Tian, Xu, Wang, Int. J. Refract. Met. Hard Mater. 33, 93 (2012): "
                "Hv = 0.92 k^1.137 G^0.708, k = G/B",
}
#: Backend to prefer for elastic constants and hardness (see the module docstring).
RECOMMENDED_MLIP = "sevenn"
#: Default strain magnitudes (fractions), applied with both signs to every Voigt component.
DEFAULT_STRAINS = (0.005, 0.01)
#: Pugh's criterion: B/G above this is ductile (Pugh, Philos. Mag. 45, 823 (1954)).
PUGH_DUCTILE = 1.75
_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_MANDEL = np.array([1.0, 1.0, 1.0, np.sqrt(2.0), np.sqrt(2.0), np.sqrt(2.0)])


class ElasticResult(BaseModel):
    """Elastic tensor, moduli, stability and hardness of one structure, with provenance."""

    formula: str = Field(description="Reduced formula.")
    n_atoms: int = Field(description="Atoms in the strained cell (standard primitive cell).")
    elastic_tensor_voigt_gpa: list[list[float]] = Field(
        description="6x6 elastic tensor C (Voigt order xx yy zz yz xz xy, engineering shear "
                    "strain), symmetrised, GPa, in the standard setting of the cell.")
    eigenvalues_gpa: list[float] = Field(
        description="Eigenvalues of C in Mandel notation (rotation-invariant), GPa, ascending.")
    mechanically_stable: bool = Field(description="Born criterion: every eigenvalue positive.")
    bulk_modulus_voigt_gpa: float = Field(description="Voigt bound of the bulk modulus, GPa.")
    bulk_modulus_reuss_gpa: float = Field(description="Reuss bound of the bulk modulus, GPa.")
    bulk_modulus_vrh_gpa: float = Field(description="Hill average of the bulk modulus, GPa.")
    shear_modulus_voigt_gpa: float = Field(description="Voigt bound of the shear modulus, GPa.")
    shear_modulus_reuss_gpa: float = Field(description="Reuss bound of the shear modulus, GPa.")
    shear_modulus_vrh_gpa: float = Field(description="Hill average of the shear modulus, GPa.")
    youngs_modulus_gpa: float = Field(description="9BG / (3B + G) from the Hill moduli, GPa.")
    poisson_ratio: float = Field(description="(3B - 2G) / (2 (3B + G)), dimensionless.")
    pugh_ratio: float = Field(description="B/G (Hill); above 1.75 ductile, below brittle.")
    ductile: bool = Field(description="Pugh's criterion B/G > 1.75.")
    universal_anisotropy: float = Field(description="5 G_V/G_R + B_V/B_R - 6 (0: isotropic).")
    vickers_hardness_gpa: float | None = Field(
        description="Vickers hardness from `hardness_model`, GPa; None when G or B is not "
                    "positive.")
    hardness_model: HardnessModel = Field(description="Model behind vickers_hardness_gpa.")
    vickers_hardness_chen2011_gpa: float | None = Field(
        description="Chen et al. 2011: 2 (k^2 G)^0.585 - 3, GPa (can be negative when soft).")
    vickers_hardness_tian2012_gpa: float | None = Field(
        description="Tian et al. 2012: 0.92 k^1.137 G^0.708, GPa.")
    residual_stress_gpa: list[float] = Field(
        description="Stress of the unstrained cell, Voigt order, GPa (ideally near zero).")
    fit_r2_min: float = Field(description="Smallest R² of the linear stress-strain fits of the "
                                          "diagonal and coupling terms above 1 GPa.")
    notes: list[str] = Field(default_factory=list, description="Warnings: unconverged ionic "
                                                               "relaxations, poor fits, etc.")
    strains: list[float] = Field(description="Strain magnitudes applied (fractions), each sign.")
    relaxed: bool = Field(description="Whether the structure was relaxed (cell and ions) first.")
    relax_ions: bool = Field(description="Whether ions were relaxed in every strained cell.")
    volume_per_atom_a3: float = Field(description="Volume per atom of the strained reference "
                                                  "cell, Å^3.")
    density_g_cm3: float = Field(description="Density of the reference cell, g/cm^3.")
    calculations: int = Field(description="MLIP relaxations or single points behind the result "
                                          "(cached ones included).")
    mlip: str = Field(description="Backend name.")
    mlip_model: str = Field(description="Model identifier.")
    mlip_version: str = Field(description="Backend package version.")
    settings: dict[str, Any] = Field(description="Everything that defines the calculation.")
    wall_time_s: float = Field(description="Wall time of this call (small when cached), s.")
    from_cache: bool = Field(default=False, description="True when read from the cache.")
    method: str = Field(default="finite strains, least-squares stress-strain slopes",
                        description="How C was obtained.")


# ---------------------------------------------------------------------------------------------
# Formulas


def vickers_hardness(bulk_gpa: float, shear_gpa: float,
                     model: HardnessModel = "chen2011") -> float | None:
    """Vickers hardness (GPa) from bulk and shear moduli (GPa) with a published B/G model.

    Returns:
        None when either modulus is not positive (the models need k = G/B > 0).

    Raises:
        ValueError: Unknown model; the message lists the valid ones.

    """
    if model not in HARDNESS_MODELS:
        raise ValueError(f"unknown hardness model {model!r}; valid: {', '.join(HARDNESS_MODELS)}")
    if bulk_gpa <= 0 or shear_gpa <= 0:
        return None
    k = shear_gpa / bulk_gpa
    if model == "chen2011":
        return float(2.0 * (k * k * shear_gpa) ** 0.585 - 3.0)
    return float(0.92 * k ** 1.137 * shear_gpa ** 0.708)


def moduli_from_tensor(c_voigt: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss and Hill moduli (GPa), Young's modulus, Poisson and Pugh ratios, anisotropy.

    Raises:
        MatloopError: The tensor is singular (no compliance, so no Reuss bounds).

    """
    c = np.asarray(c_voigt, dtype=float)
    try:
        s = np.linalg.inv(c)
    except np.linalg.LinAlgError as exc:
        raise MatloopError("the elastic tensor is singular",
                           hint="check the structure and the strain settings") from exc
    bv = (c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[1, 2] + c[0, 2])) / 9
    gv = (c[0, 0] + c[1, 1] + c[2, 2] - (c[0, 1] + c[1, 2] + c[0, 2])
          + 3 * (c[3, 3] + c[4, 4] + c[5, 5])) / 15
    br = 1 / (s[0, 0] + s[1, 1] + s[2, 2] + 2 * (s[0, 1] + s[1, 2] + s[0, 2]))
    gr = 15 / (4 * (s[0, 0] + s[1, 1] + s[2, 2]) - 4 * (s[0, 1] + s[1, 2] + s[0, 2])
               + 3 * (s[3, 3] + s[4, 4] + s[5, 5]))
    b, g = (bv + br) / 2, (gv + gr) / 2
    denom = 3 * b + g
    return {
        "bulk_modulus_voigt_gpa": float(bv), "bulk_modulus_reuss_gpa": float(br),
        "bulk_modulus_vrh_gpa": float(b), "shear_modulus_voigt_gpa": float(gv),
        "shear_modulus_reuss_gpa": float(gr), "shear_modulus_vrh_gpa": float(g),
        "youngs_modulus_gpa": float(9 * b * g / denom) if denom else float("nan"),
        "poisson_ratio": float((3 * b - 2 * g) / (2 * denom)) if denom else float("nan"),
        "pugh_ratio": float(b / g) if g else float("inf"),
        "universal_anisotropy": float(5 * gv / gr + bv / br - 6) if gr and br else float("nan"),
    }


def born_eigenvalues(c_voigt: np.ndarray) -> np.ndarray:
    """Eigenvalues (GPa, ascending) of C in Mandel notation; all positive = Born-stable."""
    mandel = np.asarray(c_voigt, dtype=float) * np.outer(_MANDEL, _MANDEL)
    return np.linalg.eigvalsh((mandel + mandel.T) / 2)


def strained(structure: Structure, component: int, amount: float) -> Structure:
    """Return the cell under Voigt strain ``amount`` in ``component`` (0-5), same fractions.

    Shear components (3-5) take engineering strain: the tensor entry is ``amount / 2``.
    """
    eps = np.zeros((3, 3))
    i, j = _VOIGT[component]
    value = amount if component < 3 else amount / 2
    eps[i, j] = eps[j, i] = value
    lattice = structure.lattice.matrix @ (np.eye(3) + eps)
    return Structure(lattice, structure.species, structure.frac_coords,
                     site_properties=structure.site_properties)


def _standard_primitive(structure: Structure) -> Structure:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        return SpacegroupAnalyzer(structure, symprec=0.01).get_primitive_standard_structure()
    except Exception:  # symmetry search failed (e.g. odd cells): keep the cell as given
        return structure.copy()


def _cell_digest(structure: Structure) -> str:
    """Hash of the exact cell: lattice matrix, species and fractional coordinates (rounded)."""
    payload = json.dumps({"lattice": np.round(structure.lattice.matrix, 6).tolist(),
                          "species": [s.specie.symbol for s in structure],
                          "frac": np.round(structure.frac_coords, 6).tolist()})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# The calculation


class _Runner:
    """Strained relaxations through the evaluator's cache (exact-cell keys)."""

    def __init__(self, evaluator: Evaluator, settings: dict[str, Any]) -> None:
        self.ev = evaluator
        self.settings = settings
        self.calculations = 0
        self.unconverged = 0

    def key(self, structure: Structure, kind: str, extra: dict[str, Any]) -> str:
        return evaluation_key(structure, kind=kind, mlip=self.ev.spec.name,
                              mlip_version=self.ev.mlip_version,
                              settings={**extra, "cell": _cell_digest(structure)})

    def stress(self, structure: Structure) -> list[float]:
        """Stress (GPa) of a cell with ions relaxed at fixed cell (or a single point)."""
        relax = self.settings["relax_ions"] and len(structure) > 1
        extra = {"fmax_ev_per_angstrom": self.settings["ion_fmax_ev_per_angstrom"],
                 "steps": self.settings["ion_steps"]} if relax else {}
        kind = "elastic_ions" if relax else "elastic_single_point"
        key = self.key(structure, kind, extra)
        self.calculations += 1
        cache = self.ev.cache
        hit = cache.get(key) if cache is not None else None
        result: RelaxResult | SinglePointResult
        if hit is not None:
            result = (RelaxResult if relax else SinglePointResult).model_validate(hit)
        else:
            if relax:
                result = self.ev.mlip.relax(structure, fmax=extra["fmax_ev_per_angstrom"],
                                            steps=extra["steps"], relax_cell=False)
            else:
                result = self.ev.mlip.single_point(structure)
            if cache is not None:
                cache.put(key, kind=kind, structure=structure, mlip=self.ev.spec.name,
                          mlip_version=self.ev.mlip_version,
                          settings={**extra, "cell": _cell_digest(structure)},
                          result=result.model_dump(mode="json"))
        if isinstance(result, RelaxResult):
            if result.status == "diverged":
                raise RelaxationError(f"{structure.composition.reduced_formula}: ionic "
                                      f"relaxation of a strained cell diverged ({result.message})",
                                      hint="use smaller strains or check the structure")
            if result.status != "converged":
                self.unconverged += 1
        return list(result.stress_gpa)


def elastic_properties(structure: Structure, evaluator: Evaluator | None = None, *,
                       strains: Sequence[float] = DEFAULT_STRAINS, relax: bool = True,
                       relax_ions: bool = True, standardize: bool = True,
                       fmax: float = 0.01, relax_steps: int = 1000,
                       ion_fmax: float = 0.005, ion_steps: int = 300,
                       hardness_model: HardnessModel = "chen2011") -> ElasticResult:
    """Elastic tensor, moduli, stability and Vickers hardness of a structure from the MLIP.

    Args:
        structure: The crystal (validated by the caller).
        evaluator: MLIP and cache (default: the settings' MLIP, no cache).
        strains: Strain magnitudes (fractions), each applied with both signs to each of the
            six Voigt components; default ±0.5 % and ±1 %.
        relax: Relax cell and ions first (to ``fmax``); the result must converge.
        relax_ions: Relax the ions of every strained cell at fixed cell (needed for the
            internal relaxation of shear in e.g. diamond; a one-atom cell is never relaxed).
        standardize: Strain the standard primitive cell (pymatgen ``SpacegroupAnalyzer``):
            fewest atoms, and C in the conventional orientation (C11 along the cube edge).
            Without it, C is in the Cartesian frame of the relaxed cell.
        fmax: Force criterion of the first relaxation, eV/Å.
        relax_steps: Step limit of the first relaxation.
        ion_fmax: Force criterion of the ionic relaxations at fixed cell, eV/Å.
        ion_steps: Step limit of each ionic relaxation.
        hardness_model: ``chen2011`` (default) or ``tian2012``; both values are reported.

    Raises:
        ValueError: Bad strains or an unknown hardness model.
        RelaxationError: The first relaxation or a strained one did not converge / diverged.
        MatloopError: A singular tensor.

    """
    start = time.perf_counter()
    if hardness_model not in HARDNESS_MODELS:
        raise ValueError(f"unknown hardness model {hardness_model!r}; valid: "
                         f"{', '.join(HARDNESS_MODELS)}")
    amounts = sorted({abs(float(x)) for x in strains})
    if not amounts or amounts[0] <= 0 or amounts[-1] > 0.05:
        raise ValueError(f"strains must be magnitudes in (0, 0.05]; got {list(strains)}")
    ev = evaluator or Evaluator()
    settings: dict[str, Any] = {
        "strains": amounts, "relax": relax, "relax_ions": relax_ions, "standardize": standardize,
        "fmax_ev_per_angstrom": fmax, "relax_steps": relax_steps,
        "ion_fmax_ev_per_angstrom": ion_fmax, "ion_steps": ion_steps,
        "method": "finite strains, least-squares slopes", "version": 1,
    }
    runner = _Runner(ev, settings)
    key = runner.key(structure, "elastic", settings)
    hit = ev.cache.get(key) if ev.cache is not None else None
    if hit is not None:
        cached = ElasticResult.model_validate(hit)
        return _with_hardness(cached.model_copy(update={
            "from_cache": True, "wall_time_s": time.perf_counter() - start}), hardness_model)

    notes: list[str] = []
    reference = structure
    if relax:
        result = ev.relax(structure, fmax=fmax, steps=relax_steps, relax_cell=True)
        if result.status != "converged":
            raise RelaxationError(
                f"{structure.composition.reduced_formula}: the relaxation before the elastic "
                f"calculation is {result.status} ({result.message})",
                hint="relax the structure first or raise relax_steps")
        reference = result.final_structure()
    if standardize:
        reference = _standard_primitive(reference)
    eq_stress = np.asarray(runner.stress(reference))

    signed = sorted([-a for a in amounts] + amounts)
    c = np.zeros((6, 6))
    r2 = []
    for j in range(6):
        stresses = np.array([runner.stress(strained(reference, j, d)) for d in signed])
        x = np.asarray(signed)
        for i in range(6):
            slope, intercept = np.polyfit(x, stresses[:, i], 1)
            c[i, j] = slope
            if abs(slope) > 1.0:  # only fits of a real response say something
                resid = stresses[:, i] - (slope * x + intercept)
                total = ((stresses[:, i] - stresses[:, i].mean()) ** 2).sum()
                r2.append(1.0 - float((resid ** 2).sum() / total) if total > 0 else 1.0)
    c = (c + c.T) / 2
    eig = born_eigenvalues(c)
    moduli = moduli_from_tensor(c)
    if runner.unconverged:
        notes.append(f"{runner.unconverged} strained ionic relaxation(s) reached {ion_steps} "
                     f"steps before fmax {ion_fmax} eV/Å; their stresses were used")
    fit_r2 = min(r2) if r2 else 1.0
    if fit_r2 < 0.99:
        notes.append(f"a stress-strain fit has R² {fit_r2:.3f}: the response is not linear "
                     f"over ±{amounts[-1]:.3g}; try smaller strains")
    if eig[0] <= 0:
        notes.append(f"mechanically unstable: smallest eigenvalue of C {eig[0]:.1f} GPa")
    if np.abs(eq_stress).max() > 1.0:
        notes.append(f"residual stress up to {np.abs(eq_stress).max():.2f} GPa in the "
                     f"reference cell (the ± strains cancel it to first order)")
    out = ElasticResult(
        formula=reference.composition.reduced_formula, n_atoms=len(reference),
        elastic_tensor_voigt_gpa=np.round(c, 4).tolist(), eigenvalues_gpa=eig.tolist(),
        mechanically_stable=bool(eig[0] > 0), **moduli,
        ductile=bool(moduli["pugh_ratio"] > PUGH_DUCTILE),
        vickers_hardness_gpa=None, hardness_model=hardness_model,
        vickers_hardness_chen2011_gpa=vickers_hardness(
            moduli["bulk_modulus_vrh_gpa"], moduli["shear_modulus_vrh_gpa"], "chen2011"),
        vickers_hardness_tian2012_gpa=vickers_hardness(
            moduli["bulk_modulus_vrh_gpa"], moduli["shear_modulus_vrh_gpa"], "tian2012"),
        residual_stress_gpa=eq_stress.tolist(), fit_r2_min=fit_r2, notes=notes,
        strains=amounts, relaxed=relax, relax_ions=relax_ions,
        volume_per_atom_a3=reference.volume / len(reference),
        density_g_cm3=float(reference.density), calculations=runner.calculations,
        mlip=ev.spec.name, mlip_model=ev.spec.model, mlip_version=ev.mlip_version,
        settings=settings, wall_time_s=time.perf_counter() - start,
    )
    out = _with_hardness(out, hardness_model)
    if ev.cache is not None:
        ev.cache.put(key, kind="elastic", structure=structure, mlip=ev.spec.name,
                     mlip_version=ev.mlip_version,
                     settings={**settings, "cell": _cell_digest(structure)},
                     result=out.model_dump(mode="json"))
    return out


def _with_hardness(result: ElasticResult, model: HardnessModel) -> ElasticResult:
    value = (result.vickers_hardness_chen2011_gpa if model == "chen2011"
             else result.vickers_hardness_tian2012_gpa)
    return result.model_copy(update={"vickers_hardness_gpa": value, "hardness_model": model})


# ---------------------------------------------------------------------------------------------
# Density and magnetic moment


class DensityResult(BaseModel):
    """Mass density of a structure."""

    formula: str = Field(description="Reduced formula.")
    density_g_cm3: float = Field(description="Density, g/cm^3.")
    volume_per_atom_a3: float = Field(description="Volume per atom, Å^3.")
    mass_amu_per_formula_unit: float = Field(description="Mass of one formula unit, amu.")
    source: str = Field(description="Which structure: e.g. 'input structure' or 'relaxed with "
                                    "chgnet CHGNet-0.3.0 (chgnet 0.4.x)'.")


def density(structure: Structure, *, source: str = "input structure") -> DensityResult:
    """Density (g/cm^3) of ``structure``; ``source`` says which structure it is."""
    comp, units = structure.composition.get_reduced_composition_and_factor()
    return DensityResult(formula=comp.reduced_formula, density_g_cm3=float(structure.density),
                         volume_per_atom_a3=structure.volume / len(structure),
                         mass_amu_per_formula_unit=float(comp.weight), source=source)


MAGMOM_NOTE = ("CHGNet predicts the magnitude of each site's magnetic moment (fitted to the "
               "DFT moments of MPtrj), not its sign: the sum is the net moment only for "
               "ferromagnetic order and overestimates it for ferrimagnets and "
               "antiferromagnets.")


class MagneticMomentResult(BaseModel):
    """Magnetic moment from MLIP site moments."""

    formula: str = Field(description="Reduced formula.")
    total_magnetic_moment_bohr_per_formula_unit: float = Field(
        description="Sum of the site moment magnitudes per formula unit, μB.")
    magnetic_moment_bohr_per_atom: float = Field(description="Same per atom, μB.")
    max_site_moment_bohr: float = Field(description="Largest site moment, μB.")
    magnetic_sites: int = Field(description="Sites with a moment above 0.5 μB.")
    formula_units: float = Field(description="Formula units in the cell.")
    mlip: str = Field(description="Backend that gave the site moments.")
    mlip_model: str = Field(description="Model identifier.")
    mlip_version: str = Field(description="Backend package version.")
    note: str = Field(description="What the numbers mean.")


def magnetic_moment(result: RelaxResult | SinglePointResult,
                    structure: Structure | None = None) -> MagneticMomentResult:
    """Total (per formula unit) and per-atom moments from a relaxation or single point.

    Args:
        result: An MLIP result with ``magmoms_bohr`` (CHGNet gives them).
        structure: The cell of a single point (a relaxation carries its own).

    Raises:
        MatloopError: The backend gave no site moments, or the counts do not match.

    """
    if result.magmoms_bohr is None:
        raise MatloopError(f"{result.mlip} gives no magnetic moments",
                           hint="use the chgnet backend for site moments")
    if isinstance(result, RelaxResult):
        structure = result.final_structure()
    if structure is None:
        raise MatloopError("a single-point result needs its structure",
                           hint="pass the structure that was evaluated")
    moments = np.abs(np.asarray(result.magmoms_bohr, dtype=float))
    if len(moments) != len(structure):
        raise MatloopError(f"{len(moments)} site moments for {len(structure)} sites",
                           hint="pass the structure that was evaluated")
    comp, units = structure.composition.get_reduced_composition_and_factor()
    total = float(moments.sum())
    return MagneticMomentResult(
        formula=comp.reduced_formula,
        total_magnetic_moment_bohr_per_formula_unit=total / units,
        magnetic_moment_bohr_per_atom=total / len(structure),
        max_site_moment_bohr=float(moments.max()), magnetic_sites=int((moments > 0.5).sum()),
        formula_units=float(units), mlip=result.mlip, mlip_model=result.mlip_model,
        mlip_version=result.mlip_version, note=MAGMOM_NOTE)


__all__ = ["DEFAULT_STRAINS", "HARDNESS_MODELS", "MAGMOM_NOTE", "RECOMMENDED_MLIP", "DensityResult",
           "ElasticResult", "MagneticMomentResult", "born_eigenvalues", "density",
           "elastic_properties", "magnetic_moment", "moduli_from_tensor", "strained",
           "vickers_hardness"]
