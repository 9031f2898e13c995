"""MLIP backends behind one registry, and the calculations matloop runs with them.

``get_mlip(name)`` returns an :class:`MLIP` whose ``relax``, ``single_point`` and
``bulk_modulus`` methods return typed, JSON-serialisable results carrying the model name,
version and settings. Backends import lazily: CHGNet or SevenNet load only when first used.

Add a backend with :func:`register_backend`; its factory returns an ASE calculator.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.config import get_settings
from matloop.errors import BackendUnavailableError, UnknownBackendError
from matloop.logs import quiet_third_party

EnergyScale = Literal["mp2020", "gga_raw"]

#: Energies above this magnitude (eV/atom) or non-finite values mean the model has diverged.
_MAX_ABS_ENERGY_EV_PER_ATOM = 50.0


@dataclass(frozen=True)
class BackendSpec:
    """How to build one MLIP.

    Attributes:
        name: Registry name.
        model: Model identifier, e.g. ``CHGNet-0.3.0``.
        package: Distribution whose version goes into provenance.
        energy_scale: ``mp2020`` when total energies already include MP2020 corrections
            (CHGNet 0.3.0), ``gga_raw`` when they are raw GGA/GGA+U energies (SevenNet-0).
        factory: Returns an ASE calculator; imports the backend lazily.
        aliases: Other accepted names.
        install_hint: What to install when the factory cannot import its package.
        module: Top-level module the factory imports; when set, :func:`require_installed`
            checks it is importable before any work starts.
    """

    name: str
    model: str
    package: str
    energy_scale: EnergyScale
    factory: Callable[[], Any]
    aliases: tuple[str, ...] = ()
    install_hint: str = ""
    description: str = ""
    module: str = ""


_REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    """Add (or replace) a backend; its name and aliases become valid ``--mlip`` values."""
    for key in (spec.name, *spec.aliases):
        _REGISTRY[key.lower()] = spec
    _load.cache_clear()


def available_backends() -> list[str]:
    """Registered backend names (aliases excluded)."""
    return sorted({spec.name for spec in _REGISTRY.values()})


def get_backend_spec(name: str) -> BackendSpec:
    """Registry entry for ``name`` (or an alias).

    Raises:
        UnknownBackendError: The name is not registered; the message lists the valid ones.
    """
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise UnknownBackendError(
            f"unknown MLIP backend {name!r}; valid: {', '.join(available_backends())}",
            hint="register other potentials with matloop.materials.mlip.register_backend",
        ) from None


def backend_installed(spec: BackendSpec) -> bool:
    """Whether the backend's module can be imported (checked without importing it)."""
    if not spec.module:
        return True
    try:
        return importlib.util.find_spec(spec.module) is not None
    except (ImportError, ValueError):
        return False


def require_installed(name: str) -> BackendSpec:
    """The spec of ``name``, checked to be installed.

    Raises:
        UnknownBackendError: Not a registered name.
        BackendUnavailableError: Registered, but its package is not installed (the message
            says what to install).
    """
    spec = get_backend_spec(name)
    if not backend_installed(spec):
        raise BackendUnavailableError(
            f"MLIP backend {spec.name!r} is registered but not installed",
            hint=spec.install_hint or f"pip install {spec.package}")
    return spec


def _chgnet_calculator() -> Any:
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
        return CHGNetCalculator(model=model, use_device="cpu")


def _sevenn_calculator(model: str) -> Callable[[], Any]:
    def factory() -> Any:
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(model, device="cpu")

    return factory


def _mace_calculator() -> Any:
    from mace.calculators import mace_mp  # type: ignore[import-not-found]

    return mace_mp(model=get_settings().mace_model, device="cpu", default_dtype="float64")


def _mattersim_calculator() -> Any:
    from mattersim.forcefield import MatterSimCalculator  # type: ignore[import-not-found]

    return MatterSimCalculator(
        load_path=get_settings().mattersim_model,
        device="cpu",
    )


# ---------------------------------------------------------------------------------------------
# Results


class SinglePointResult(BaseModel):
    """Energy, forces and stress of one structure, unrelaxed."""

    formula: str = Field(description="Reduced formula.")
    n_atoms: int = Field(description="Atoms in the cell.")
    energy_ev: float = Field(description="Total energy of the cell, eV (the MLIP's native scale).")
    energy_per_atom_ev: float = Field(description="Total energy per atom, eV/atom.")
    max_force_ev_per_angstrom: float = Field(description="Largest atomic force, eV/Å.")
    stress_gpa: list[float] = Field(description="Stress, Voigt order xx yy zz yz xz xy, GPa.")
    magmoms_bohr: list[float] | None = Field(
        default=None, description="Magnetic moment per site, Bohr magnetons (CHGNet only)."
    )
    mlip: str = Field(description="Backend name.")
    mlip_model: str = Field(description="Model identifier.")
    mlip_version: str = Field(description="Package version of the backend.")
    energy_scale: EnergyScale = Field(description="Scale of the energies (see BackendSpec).")
    wall_time_s: float = Field(description="Wall time, seconds.")


class RelaxResult(BaseModel):
    """Outcome of a relaxation. Only ``status == 'converged'`` is a usable result."""

    status: Literal["converged", "not_converged", "diverged"] = Field(
        description="converged: max force below fmax; not_converged: step limit reached; "
        "diverged: non-finite or unphysical energy, volume or geometry."
    )
    message: str = Field(default="", description="Why the relaxation did not converge, if so.")
    formula: str = Field(description="Reduced formula.")
    n_atoms: int = Field(description="Atoms in the cell.")
    structure: dict[str, Any] = Field(description="Final structure (pymatgen Structure.as_dict).")
    energy_ev: float = Field(description="Final total energy, eV (the MLIP's native scale).")
    energy_per_atom_ev: float = Field(description="Final total energy per atom, eV/atom.")
    initial_energy_per_atom_ev: float = Field(description="Energy per atom before relaxing, eV.")
    max_force_ev_per_angstrom: float = Field(description="Largest final atomic force, eV/Å.")
    stress_gpa: list[float] = Field(description="Final stress, Voigt xx yy zz yz xz xy, GPa.")
    volume_per_atom_a3: float = Field(description="Final volume per atom, Å^3.")
    volume_change_fraction: float = Field(description="Final/initial volume minus one.")
    magmoms_bohr: list[float] | None = Field(default=None, description="Site magnetic moments, μB.")
    steps: int = Field(description="Optimiser steps taken.")
    converged: bool = Field(description="True when the force criterion was met.")
    fmax_ev_per_angstrom: float = Field(description="Force criterion, eV/Å.")
    max_steps: int = Field(description="Step limit.")
    relax_cell: bool = Field(description="Whether the cell was relaxed (FrechetCellFilter).")
    optimizer: str = Field(default="FIRE", description="ASE optimiser.")
    mlip: str = Field(description="Backend name.")
    mlip_model: str = Field(description="Model identifier.")
    mlip_version: str = Field(description="Package version of the backend.")
    energy_scale: EnergyScale = Field(description="Scale of the energies.")
    wall_time_s: float = Field(description="Wall time, seconds.")
    trajectory: list[dict[str, Any]] | None = Field(
        default=None, description="Frames of the relaxation when asked for (never cached): "
        "energy_ev, cell (Å), positions (Cartesian, Å), max_force_ev_per_angstrom; the "
        "atomic numbers are in the first frame.")

    def final_structure(self) -> Structure:
        """The relaxed structure as a pymatgen Structure."""
        return Structure.from_dict(self.structure)


class BulkModulusResult(BaseModel):
    """Birch-Murnaghan fit of energy against volume."""

    formula: str
    bulk_modulus_gpa: float = Field(description="Bulk modulus B0 from the fit, GPa.")
    bulk_modulus_derivative: float = Field(description="B0' (dimensionless).")
    equilibrium_volume_a3: float = Field(description="Fitted equilibrium volume of the cell, Å^3.")
    volumes_a3: list[float] = Field(description="Cell volumes sampled, Å^3.")
    energies_ev: list[float] = Field(description="Cell energies at those volumes, eV.")
    strain_range_fraction: float = Field(description="Largest isotropic linear strain sampled.")
    eos: str = Field(default="birch_murnaghan", description="Equation of state fitted.")
    mlip: str
    mlip_model: str
    mlip_version: str
    wall_time_s: float


# ---------------------------------------------------------------------------------------------
# The MLIP


class MLIP:
    """One loaded backend. Get instances from :func:`get_mlip` (one per backend per process)."""

    def __init__(self, spec: BackendSpec, calculator: Any) -> None:
        self.spec = spec
        self.calculator = calculator
        try:
            self.version = version(spec.package)
        except PackageNotFoundError:
            self.version = "unknown"

    @property
    def name(self) -> str:
        """Backend name."""
        return self.spec.name

    @property
    def energy_scale(self) -> EnergyScale:
        """Scale of this backend's total energies."""
        return self.spec.energy_scale

    @property
    def provenance(self) -> dict[str, str]:
        """Name, model and version, for results and cache keys."""
        return {
            "mlip": self.spec.name,
            "mlip_model": self.spec.model,
            "mlip_version": self.version,
            "energy_scale": self.spec.energy_scale,
        }

    def _atoms(self, structure: Structure) -> Any:
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = self.calculator
        return atoms

    def single_point(self, structure: Structure) -> SinglePointResult:
        """Energy, forces, stress (and magnetic moments where given) of a structure as it is."""
        start = time.perf_counter()
        atoms = self._atoms(structure)
        with _no_warnings():
            energy = float(atoms.get_potential_energy())
            forces = np.asarray(atoms.get_forces())
            stress = _stress_gpa(atoms)
        return SinglePointResult(
            formula=structure.composition.reduced_formula,
            n_atoms=len(structure),
            energy_ev=energy,
            energy_per_atom_ev=energy / len(structure),
            max_force_ev_per_angstrom=float(np.linalg.norm(forces, axis=1).max()),
            stress_gpa=stress,
            magmoms_bohr=_magmoms(self.calculator),
            wall_time_s=time.perf_counter() - start,
            **self.provenance,
        )

    def relax(self, structure: Structure, *, fmax: float = 0.05, steps: int = 500,
              relax_cell: bool = True, trajectory: bool = False) -> RelaxResult:
        """Relax atomic positions (and the cell) with FIRE until all forces are below ``fmax``.

        Args:
            structure: Starting structure (validated by the caller).
            fmax: Force criterion, eV/Å (the cell filter applies it to stress too).
            steps: Step limit.
            relax_cell: Relax the lattice with ASE's FrechetCellFilter.
            trajectory: Keep every optimiser frame in ``RelaxResult.trajectory``.

        Returns:
            A result whose ``status`` says whether it converged, ran out of steps, or diverged.
        """
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE
        from pymatgen.io.ase import AseAtomsAdaptor

        start = time.perf_counter()
        atoms = self._atoms(structure)
        v0 = float(atoms.get_volume())
        status: str = "converged"
        message = ""
        with _no_warnings():
            e0 = float(atoms.get_potential_energy())
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            opt = FIRE(target, logfile=None)
            frames: list[dict[str, Any]] = []
            if trajectory:
                opt.attach(lambda: frames.append(_frame(atoms, first=not frames)), interval=1)
            converged = False
            try:
                converged = bool(opt.run(fmax=fmax, steps=steps))
            except Exception as exc:  # a model can blow up on a collapsed geometry
                status, message = "diverged", f"{type(exc).__name__}: {exc}"
            energy = float(atoms.get_potential_energy()) if status != "diverged" else float("nan")
            forces = np.asarray(atoms.get_forces()) if status != "diverged" else \
                np.full((1, 3), np.nan)
            stress = _stress_gpa(atoms) if status != "diverged" else [float("nan")] * 6
        final = AseAtomsAdaptor.get_structure(atoms)
        n = len(final)
        volume = float(final.volume)
        if status != "diverged":
            problem = _divergence(energy / n, v0, volume, final)
            if problem:
                status, message = "diverged", problem
            elif not converged:
                status = "not_converged"
                message = (
                    f"max force {float(np.linalg.norm(forces, axis=1).max()):.3f} eV/Å above "
                    f"fmax {fmax} after {steps} steps"
                )
        return RelaxResult(
            status=status,  # type: ignore[arg-type]
            message=message,
            formula=final.composition.reduced_formula,
            n_atoms=n,
            structure=json.loads(final.to_json()),
            energy_ev=energy,
            energy_per_atom_ev=energy / n,
            initial_energy_per_atom_ev=e0 / n,
            max_force_ev_per_angstrom=float(np.nanmax(np.linalg.norm(forces, axis=1))),
            stress_gpa=stress,
            volume_per_atom_a3=volume / n,
            volume_change_fraction=volume / v0 - 1.0,
            magmoms_bohr=_magmoms(self.calculator) if status != "diverged" else None,
            steps=int(opt.nsteps),
            converged=status == "converged",
            fmax_ev_per_angstrom=fmax,
            max_steps=steps,
            relax_cell=relax_cell,
            wall_time_s=time.perf_counter() - start,
            trajectory=frames if trajectory else None,
            **self.provenance,
        )

    def bulk_modulus(self, structure: Structure, *, strain: float = 0.04, points: int = 7,
                     relax_positions: bool = True) -> BulkModulusResult:
        """Bulk modulus from a Birch-Murnaghan fit over isotropically strained cells.

        Pass an already relaxed structure. At each volume the atomic positions are relaxed at
        fixed cell when ``relax_positions`` (needed for structures with free parameters).
        """
        from pymatgen.analysis.eos import EOS

        start = time.perf_counter()
        volumes, energies = [], []
        for eps in np.linspace(-strain, strain, points):
            strained = structure.copy()
            strained.scale_lattice(structure.volume * (1 + eps) ** 3)
            if relax_positions and len(strained) > 1:
                res = self.relax(strained, fmax=0.02, steps=200, relax_cell=False)
                energy = res.energy_ev
            else:
                energy = self.single_point(strained).energy_ev
            volumes.append(float(strained.volume))
            energies.append(float(energy))
        fit = EOS("birch_murnaghan").fit(volumes, energies)
        return BulkModulusResult(
            formula=structure.composition.reduced_formula,
            bulk_modulus_gpa=float(fit.b0_GPa),
            bulk_modulus_derivative=float(fit.b1),
            equilibrium_volume_a3=float(fit.v0),
            volumes_a3=volumes,
            energies_ev=energies,
            strain_range_fraction=strain,
            mlip=self.spec.name,
            mlip_model=self.spec.model,
            mlip_version=self.version,
            wall_time_s=time.perf_counter() - start,
        )


def get_mlip(name: str = "chgnet") -> MLIP:
    """The loaded backend ``name``; loaded once per process.

    Raises:
        UnknownBackendError: Not a registered name.
        BackendUnavailableError: Its package or weights are not installed.
    """
    spec = get_backend_spec(name)
    return _load(spec.name)


@cache
def _load(name: str) -> MLIP:
    spec = get_backend_spec(name)
    try:
        with _quiet():
            calculator = spec.factory()
    except ImportError as exc:
        raise BackendUnavailableError(
            f"MLIP backend {spec.name!r} cannot be loaded: {exc}",
            hint=spec.install_hint or f"pip install {spec.package}",
        ) from exc
    return MLIP(spec, calculator)


def _frame(atoms: Any, *, first: bool) -> dict[str, Any]:
    """One optimiser frame (energy, cell, positions, largest force)."""
    forces = np.asarray(atoms.get_forces())
    frame = {"energy_ev": float(atoms.get_potential_energy()),
             "cell": np.asarray(atoms.cell.array).round(8).tolist(),
             "positions": np.asarray(atoms.get_positions()).round(8).tolist(),
             "max_force_ev_per_angstrom": float(np.linalg.norm(forces, axis=1).max())}
    if first:
        frame["numbers"] = [int(z) for z in atoms.get_atomic_numbers()]
    return frame


def _stress_gpa(atoms: Any) -> list[float]:
    from ase.units import GPa

    try:
        return [float(x) / GPa for x in atoms.get_stress(voigt=True)]
    except Exception:  # some calculators give no stress for non-periodic cells
        return [float("nan")] * 6


def _magmoms(calculator: Any) -> list[float] | None:
    magmoms = getattr(calculator, "results", {}).get("magmoms")
    return None if magmoms is None else [float(m) for m in np.ravel(magmoms)]


def _divergence(energy_per_atom: float, v0: float, volume: float, final: Structure) -> str:
    if not math.isfinite(energy_per_atom) or abs(energy_per_atom) > _MAX_ABS_ENERGY_EV_PER_ATOM:
        return f"energy {energy_per_atom:.3g} eV/atom is not physical"
    ratio = volume / v0
    if not 1 / 3 <= ratio <= 3:
        return f"cell volume changed by a factor {ratio:.2f}"
    if len(final) > 1:
        dm = final.distance_matrix
        np.fill_diagonal(dm, np.inf)
        if float(dm.min()) < 0.5:
            return f"atoms collapsed to {float(dm.min()):.2f} Å apart"
    return ""


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence backend chatter (prints and warnings) while a model loads.

    Only used at load time: redirecting ``sys.stdout`` is process-wide, so doing it during
    calculations (which may run in worker threads) could restore a stale stream.
    """
    with quiet_third_party(), contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _no_warnings() -> Any:
    """Silence backend warnings during a calculation."""
    with quiet_third_party():
        yield


# Built-in backends. CHGNet and SevenNet ship their weights in their wheels; the others
# are optional and need their packages (and local weights) installed by the user.
register_backend(BackendSpec(
    name="chgnet", model="CHGNet-0.3.0", package="chgnet", energy_scale="mp2020",
    factory=_chgnet_calculator, aliases=("chgnet-0.3.0",), module="chgnet",
    description="CHGNet 0.3.0 (pretrained on MPtrj; weights ship in the chgnet wheel)",
))
register_backend(BackendSpec(
    name="sevenn", model="SevenNet-0", package="sevenn", energy_scale="gga_raw",
    factory=_sevenn_calculator("7net-0"), aliases=("7net-0", "sevennet", "sevennet-0"),
    module="sevenn",
    description="SevenNet-0 (11Jul2024, MPtrj; weights ship in the sevenn wheel)",
))
register_backend(BackendSpec(
    name="sevenn-l3i5", model="SevenNet-l3i5", package="sevenn", energy_scale="gga_raw",
    factory=_sevenn_calculator("7net-l3i5"), aliases=("7net-l3i5",), module="sevenn",
    description="SevenNet-l3i5 (MPtrj; weights ship in the sevenn wheel)",
))
register_backend(BackendSpec(
    name="mace", model="MACE-MP-0", package="mace-torch", energy_scale="gga_raw",
    factory=_mace_calculator, aliases=("mace-mp", "mace-mp-0"), module="mace",
    install_hint=(
        "pip install mace-torch, and set MATLOOP_MACE_MODEL to a local model file "
        "(its default weights are downloaded on first use, which needs network access)"
    ),
    description="MACE-MP-0 (optional; not installed by default)",
))
register_backend(BackendSpec(
    name="mattersim", model="MatterSim-v1", package="mattersim", energy_scale="mp2020",
    factory=_mattersim_calculator, module="mattersim",
    install_hint="pip install mattersim, and set MATLOOP_MATTERSIM_MODEL to a local checkpoint",
    description="MatterSim v1 (optional; not installed by default)",
))
