"""The materials engine: relax, predict and place structures on the convex hull.

Ties the evaluator (MLIP + cache), the reference store and the hull together. One engine per
process is enough; it opens the cache and store under the settings' data directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymatgen.core import Composition, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from matloop.config import Settings, get_settings
from matloop.errors import MatloopError
from matloop.logs import quiet_third_party
from matloop.materials.cache import EvaluationCache
from matloop.materials.evaluation import EvaluationFailure, Evaluator, ProgressCallback
from matloop.materials.hull import (
    StabilityResult,
    choose_scale,
    stability_mlip_consistent,
    stability_mp2020,
)
from matloop.materials.mlip import RelaxResult
from matloop.materials.references import ReferencePhase, ReferenceStore
from matloop.materials.structures import StructureLike, as_structure, is_ase_atoms


class Prediction(BaseModel):
    """Everything computed for one input structure, with provenance."""

    source: str = Field(description="Where the structure came from (file name or label).")
    formula: str = Field(description="Reduced formula.")
    status: Literal["ok", "not_converged", "diverged", "failed"] = Field(
        description="ok: a usable result; otherwise see message (no energies are reported)."
    )
    message: str = Field(default="", description="What went wrong, when status is not ok.")
    energy_per_atom_ev: float | None = Field(
        default=None, description="MLIP total energy per atom, eV/atom (backend's native scale)."
    )
    formation_energy_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    e_above_hull_ev_per_atom: float | None = Field(default=None, description="eV/atom.")
    decomposition: dict[str, float] | None = Field(
        default=None, description="Competing phases and atomic fractions at this composition."
    )
    is_stable: bool | None = Field(default=None, description="e_above_hull <= threshold.")
    energy_scale: str | None = Field(default=None, description="Scale of the hull numbers.")
    stability_error: str | None = Field(
        default=None, description="Why stability could not be assessed, if it could not."
    )
    flags: list[str] = Field(default_factory=list, description="Warnings a reader must see "
                             "next to the numbers, e.g. a candidate far below the MP hull.")
    reference_set: str | None = Field(default=None, description="What the hull was built "
                                      "from (reference phases and their sources).")
    bulk_modulus_gpa: float | None = Field(default=None, description="Birch-Murnaghan B0, GPa.")
    shear_modulus_gpa: float | None = Field(default=None, description="Shear modulus (Voigt-"
                                            "Reuss-Hill) from the elastic tensor, GPa.")
    vickers_hardness_gpa: float | None = Field(default=None, description="Vickers hardness from "
                                               "the elastic moduli (hardness_model), GPa.")
    hardness_model: str | None = Field(default=None, description="B/G model of the hardness.")
    elastic_mlip: str | None = Field(default=None, description="MLIP of the elastic tensor.")
    elastic_notes: list[str] = Field(default_factory=list, description="Caveats of the elastic "
                                     "tensor (fit quality, Born stability), or why it failed.")
    density_g_per_cm3: float | None = Field(default=None, description="Density of the final "
                                            "cell, g/cm^3.")
    magmoms_bohr: list[float] | None = Field(default=None, description="Site moments, μB.")
    relaxed: bool = Field(description="Whether the structure was relaxed.")
    relax_steps: int | None = Field(default=None, description="Optimiser steps taken.")
    max_force_ev_per_angstrom: float | None = Field(default=None, description="Final max force.")
    mlip: str = Field(description="Backend name.")
    mlip_model: str = Field(description="Model identifier.")
    mlip_version: str = Field(description="Backend package version.")
    settings: dict[str, Any] = Field(description="Relaxation / EOS settings used.")
    relaxed_cif: str | None = Field(default=None, description="The relaxed structure as CIF "
                                    "text; None when the structure was not relaxed.")
    structure_cif: str | None = Field(default=None, description="The cell the energies belong "
                                      "to, as CIF text: the relaxed cell, or the input cell of "
                                      "a single point.")
    trajectory: list[dict[str, Any]] | None = Field(
        default=None, description="Relaxation frames when asked for (predict(trajectory=True)).")

    def structure(self) -> Structure:
        """The structure the energies belong to (relaxed, or the input of a single point).

        Raises:
            MatloopError: The prediction has no result (status is not ok).
        """
        if not self.structure_cif:
            raise MatloopError(f"{self.source}: no structure ({self.status}: {self.message})",
                               hint="only predictions with status ok carry a structure")
        with quiet_third_party():
            return Structure.from_str(self.structure_cif, fmt="cif")

    def entry(self) -> ComputedStructureEntry:
        """A pymatgen ``ComputedStructureEntry`` with the MLIP total energy (eV, the
        backend's native scale) and the provenance in ``parameters`` and ``data``."""
        structure = self.structure()
        if self.energy_per_atom_ev is None:
            raise MatloopError(f"{self.source}: no energy", hint="status must be ok")
        return ComputedStructureEntry(
            structure, self.energy_per_atom_ev * len(structure),
            parameters={"mlip": self.mlip, "mlip_model": self.mlip_model,
                        "mlip_version": self.mlip_version, **self.settings},
            data={"source": self.source, "relaxed": self.relaxed,
                  "formation_energy_ev_per_atom": self.formation_energy_ev_per_atom,
                  "e_above_hull_ev_per_atom": self.e_above_hull_ev_per_atom,
                  "energy_scale": self.energy_scale},
            entry_id=self.source)

    def row(self) -> dict[str, Any]:
        """A flat table row: numbers, status and provenance (no CIF text, no frames)."""
        data = self.model_dump(exclude={"relaxed_cif", "structure_cif", "trajectory",
                                        "settings", "decomposition", "flags"})
        data["decomposition"] = "; ".join(f"{k} {v:.3f}" for k, v in
                                          (self.decomposition or {}).items())
        data["flags"] = "; ".join(self.flags)
        data["settings"] = json.dumps(self.settings, sort_keys=True)
        if self.magmoms_bohr is not None:
            data["magmoms_bohr"] = json.dumps(self.magmoms_bohr)
        return data


class MaterialsEngine:
    """Evaluator + reference store + hull, configured from settings.

    Args:
        settings: Process settings (data directory, MLIP, thresholds).
        mlip: Backend name overriding ``settings.mlip``.
        cache: Evaluation cache (default: ``settings.cache_path``).
        store: Reference store (default: ``settings.reference_path``, starter library added).
    """

    def __init__(self, settings: Settings | None = None, *, mlip: str | None = None,
                 cache: EvaluationCache | None = None, store: ReferenceStore | None = None,
                 ) -> None:
        self.settings = settings or get_settings()
        self.cache = cache if cache is not None else EvaluationCache(self.settings.cache_path)
        self.store = store if store is not None else ReferenceStore.from_settings(
            self.settings)
        self.store.ensure_starter_library()
        self.evaluator = Evaluator(mlip, cache=self.cache, settings=self.settings)

    @property
    def mp_structures(self) -> Any:
        """Online MP structure lookup for novelty checks (cached), or None without an API key."""
        key = self.settings.mp_api_key
        if key is None or not key.get_secret_value():
            return None
        if getattr(self, "_mp_structures", None) is None:
            from matloop.materials.mp_client import MPStructureIndex

            self._mp_structures = MPStructureIndex(self.settings.data_dir / "mp_structures.sqlite",
                                                   api_key=key.get_secret_value())
        return self._mp_structures

    @property
    def mlip_label(self) -> str:
        """Backend, model and version, e.g. 'chgnet CHGNet-0.3.0 (chgnet 0.4.2)'."""
        spec = self.evaluator.spec
        return f"{spec.name} {spec.model} ({spec.package} {self.evaluator.mlip_version})"

    def elastic_evaluator(self) -> Evaluator:
        """The MLIP for elastic constants: :data:`~matloop.materials.elastic.RECOMMENDED_MLIP`
        when it is installed (universal MLIPs are soft in shear, SevenNet-0 least of those
        measured in ``evals/hardness.py``), else the engine's own; built once."""
        from matloop.materials.elastic import RECOMMENDED_MLIP

        if self.evaluator.spec.name == RECOMMENDED_MLIP:
            return self.evaluator
        if getattr(self, "_elastic_evaluator", None) is None:
            try:
                self._elastic_evaluator = Evaluator(RECOMMENDED_MLIP, cache=self.cache,
                                                    settings=self.settings)
            except (ValueError, MatloopError):
                self._elastic_evaluator = self.evaluator
        return self._elastic_evaluator

    # -- references --------------------------------------------------------------------------
    def mlip_references(self, elements: Sequence[str], *,
                        progress: ProgressCallback | None = None,
                        ) -> tuple[list[ReferencePhase], list[float], list[str]]:
        """Relax (or fetch from cache) every reference structure within ``elements``.

        Returns:
            Phases with converged relaxations, their energies per atom, and notes on the
            references left out (not converged or failed).
        """
        phases = self.store.phases(elements, with_structure=True)
        structures = [p.get_structure() for p in phases]
        # Molecules in a box keep their box: relaxing it only drifts the vacuum.
        results: list[RelaxResult | EvaluationFailure | None] = [None] * len(phases)
        cell_idx = [i for i, p in enumerate(phases) if (p.meta or {}).get("relax_cell", True)]
        fixed_idx = [i for i in range(len(phases)) if i not in set(cell_idx)]
        for idx, relax_cell in ((cell_idx, True), (fixed_idx, False)):
            if not idx:
                continue
            batch = self.evaluator.relax_many([structures[i] for i in idx], relax_cell=relax_cell,
                                              progress=progress)
            for i, r in zip(idx, batch, strict=True):
                results[i] = r
        kept, energies, notes = [], [], []
        for phase, result in zip(phases, results, strict=True):
            if isinstance(result, RelaxResult) and result.status == "converged":
                kept.append(phase)
                energies.append(result.energy_per_atom_ev)
            else:
                why = result.message if result is not None else "not evaluated"
                notes.append(f"{phase.formula} ({phase.source}) left out: {why}")
        return kept, energies, notes

    # -- stability ---------------------------------------------------------------------------
    def stability(self, phase: Structure | Composition, energy_per_atom_ev: float, *,
                  scale: str | None = None, progress: ProgressCallback | None = None,
                  ) -> StabilityResult:
        """Hull position of a (relaxed) structure, or a composition, with an energy per atom
        (eV/atom) on the engine's MLIP native scale.

        Args:
            scale: 'auto', 'mlip' or 'mp2020' (default: the settings' reference_scale).
        """
        if scale is not None and scale not in SCALES:
            raise MatloopError(f"unknown hull energy scale {scale!r}",
                               hint=f"use one of {', '.join(SCALES)}")
        comp = phase.composition if isinstance(phase, Structure) else Composition(phase)
        elements = sorted(el.symbol for el in comp.elements)
        chosen = choose_scale(self.store, elements, scale or self.settings.reference_scale)
        threshold = self.settings.stability_threshold_ev_per_atom
        if chosen == "mp2020":
            return stability_mp2020(comp, energy_per_atom_ev, self.evaluator.energy_scale,
                                    self.store, threshold_ev_per_atom=threshold)
        phases, energies, _ = self.mlip_references(elements, progress=progress)
        return stability_mlip_consistent(
            comp, energy_per_atom_ev, phases, energies, mlip_label=self.mlip_label,
            threshold_ev_per_atom=threshold,
        )

    # -- prediction --------------------------------------------------------------------------
    def predict(
        self,
        structures: StructureLike | Sequence[StructureLike],
        *,
        sources: Sequence[str] | None = None,
        relax: bool = True,
        bulk_modulus: bool = False,
        elastic: bool = False,
        stability: bool = True,
        scale: str | None = None,
        trajectory: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[Prediction]:
        """Relax (or single-point) a batch, then assess stability and optional bulk modulus.

        A structure whose relaxation does not converge or diverges is reported with that
        status and no energies; one failure never stops the batch.

        Args:
            structures: One structure or a list: pymatgen ``Structure``, ASE ``Atoms`` or file
                paths (CIF, POSCAR, extxyz, pymatgen JSON), mixed freely.
            sources: Labels of the results (default: the file path, or ``structure-<i>``).
            relax: Relax positions and cell first (the default, as on the command line);
                False evaluates the input cell as given (``relaxed_cif`` stays None).
            bulk_modulus: Also fit an equation of state (``bulk_modulus_gpa``).
            elastic: Also compute the finite-strain elastic tensor with
                :meth:`elastic_evaluator` (``shear_modulus_gpa``, ``vickers_hardness_gpa``;
                about 25 relaxations per structure, cached).
            stability: Place each result on the convex hull.
            scale: Hull energy scale, 'auto', 'mlip' or 'mp2020' (default: the settings').
            trajectory: Keep the relaxation frames (``Prediction.trajectory``); relaxations
                are then computed one by one, not read from the cache.
            progress: Callback ``(stage, done, total)``.

        Raises:
            StructureInputError: An input that is not a readable, valid structure.
            MatloopError: An unknown ``scale``.
        """
        if scale is not None and scale not in SCALES:
            raise MatloopError(f"unknown hull energy scale {scale!r}",
                               hint=f"use one of {', '.join(SCALES)}")
        items = [structures] if _single(structures) else list(structures)  # type: ignore[arg-type]
        if sources is None:
            sources = [str(s) if isinstance(s, str | PathLike) else f"structure-{i}"
                       for i, s in enumerate(items)]
        sources = list(sources)
        if len(sources) != len(items):
            raise MatloopError(f"{len(sources)} sources for {len(items)} structures",
                               hint="give one source label per structure, or none")
        structures = [as_structure(s, source=src) for s, src in zip(items, sources, strict=True)]
        ev = self.evaluator
        settings = ev.relax_settings() if relax else {"single_point": True}

        def step(label: str) -> ProgressCallback | None:
            return (lambda done, total: progress(label, done, total)) if progress else None

        if relax and trajectory:
            outcomes: list[Any] = []
            for i, s in enumerate(structures):
                try:
                    outcomes.append(ev.relax(s, trajectory=True))
                except MatloopError as exc:
                    outcomes.append(EvaluationFailure(index=i,
                                                      formula=s.composition.reduced_formula,
                                                      error=type(exc).__name__,
                                                      message=exc.message))
                if progress:
                    progress("relaxing", i + 1, len(structures))
        elif relax:
            outcomes = ev.relax_many(structures, progress=step("relaxing"))
        else:
            outcomes = []
            for i, s in enumerate(structures):
                try:
                    outcomes.append(ev.single_point(s))
                except Exception as exc:  # noqa: BLE001 - the MLIP's own errors, per structure
                    outcomes.append(EvaluationFailure(index=i,
                                                      formula=s.composition.reduced_formula,
                                                      error=type(exc).__name__, message=str(exc)))
                if progress:
                    progress("single points", i + 1, len(structures))
        predictions = []
        for i, (structure, outcome, source) in enumerate(zip(structures, outcomes, sources,
                                                             strict=True)):
            base: dict[str, Any] = {
                "source": source, "formula": structure.composition.reduced_formula,
                "relaxed": relax, "settings": settings, **_provenance(ev),
            }
            if isinstance(outcome, EvaluationFailure):
                predictions.append(Prediction(status="failed", message=outcome.message, **base))
                continue
            if isinstance(outcome, RelaxResult) and outcome.status != "converged":
                predictions.append(Prediction(
                    status=outcome.status, message=outcome.message,
                    relax_steps=outcome.steps,
                    max_force_ev_per_angstrom=outcome.max_force_ev_per_angstrom, **base,
                ))
                continue
            final = outcome.final_structure() if isinstance(outcome, RelaxResult) else structure
            final_cif = final.to(fmt="cif")
            pred = Prediction(
                status="ok",
                energy_per_atom_ev=outcome.energy_per_atom_ev,
                magmoms_bohr=outcome.magmoms_bohr,
                relax_steps=getattr(outcome, "steps", None),
                max_force_ev_per_angstrom=outcome.max_force_ev_per_angstrom,
                relaxed_cif=final_cif if relax else None,
                structure_cif=final_cif,
                trajectory=getattr(outcome, "trajectory", None),
                **base,
            )
            if stability:
                try:
                    st = self.stability(final, outcome.energy_per_atom_ev, scale=scale,
                                        progress=step(f"references "
                                                      f"{structure.composition.chemical_system}"))
                    pred.formation_energy_ev_per_atom = st.formation_energy_ev_per_atom
                    pred.e_above_hull_ev_per_atom = st.e_above_hull_ev_per_atom
                    pred.decomposition = st.decomposition
                    pred.is_stable = st.is_stable
                    pred.energy_scale = st.energy_scale
                    pred.reference_set = (f"{st.n_reference_phases} phases of {st.chemsys} from "
                                          f"{', '.join(st.reference_sources)}")
                    pred.flags += below_hull_flags(st)
                except MatloopError as exc:
                    pred.stability_error = str(exc)
            pred.density_g_per_cm3 = round(float(final.density), 4)
            if bulk_modulus:
                bm = ev.bulk_modulus(final)
                pred.bulk_modulus_gpa = bm.bulk_modulus_gpa
            if elastic:
                _elastic_into(pred, final, self.elastic_evaluator())
            predictions.append(pred)
            if progress:
                progress("assessing", i + 1, len(structures))
        return predictions


def _elastic_into(pred: Prediction, final: Structure, evaluator: Any) -> None:
    """Shear modulus and hardness of ``final`` into ``pred`` (a failure becomes a note)."""
    from matloop.materials.elastic import elastic_properties

    label = f"{evaluator.spec.name} {evaluator.spec.model} ({evaluator.spec.package} " \
            f"{evaluator.mlip_version})"
    pred.elastic_mlip = label
    try:
        el = elastic_properties(final, evaluator)
    except MatloopError as exc:
        pred.elastic_notes = [f"no elastic tensor: {exc.message}"]
        return
    pred.shear_modulus_gpa = round(el.shear_modulus_vrh_gpa, 2)
    pred.vickers_hardness_gpa = None if el.vickers_hardness_gpa is None else \
        round(el.vickers_hardness_gpa, 2)
    pred.hardness_model = el.hardness_model
    pred.elastic_notes = list(el.notes) + ([] if el.mechanically_stable else
                                           ["mechanically unstable (Born criterion)"])


#: How far below the hull (eV/atom) a candidate may lie before it is flagged: beyond MLIP
#: formation-energy errors (a few tens of meV/atom against MP).
BELOW_HULL_FLAG_EV_PER_ATOM = 0.05


def below_hull_flags(st: StabilityResult) -> list[str]:
    """The warning a candidate far below the reference hull must carry, if any."""
    if st.e_above_hull_ev_per_atom >= -BELOW_HULL_FLAG_EV_PER_ATOM:
        return []
    depth = f"{-st.e_above_hull_ev_per_atom:.3f} eV/atom"
    if st.energy_scale.startswith("mp2020"):
        return [f"below the MP hull by {depth}: likely MLIP error or a missing reference; "
                f"confirm with DFT"]
    return [f"below the hull of the local references by {depth} (MLIP scale): a missing "
            f"reference phase or MLIP error is likelier than a new stable phase; confirm with "
            f"DFT against Materials Project references"]


#: Hull energy scales ``predict`` and ``stability`` accept.
SCALES = ("auto", "mlip", "mp2020")


def _single(obj: object) -> bool:
    return isinstance(obj, Structure | str | PathLike) or is_ase_atoms(obj)


def predictions_dataframe(predictions: Sequence[Prediction]) -> Any:
    """A pandas DataFrame with one row per prediction (:meth:`Prediction.row`)."""
    import pandas as pd

    return pd.DataFrame([p.row() for p in predictions])


def write_predictions(predictions: Sequence[Prediction], path: str | Path) -> Path:
    """Write predictions to ``path``: ``.csv`` (one row each, no structures), ``.json`` (every
    field) or ``.extxyz`` (the final structures of usable results, energies and provenance in
    each frame's info).

    Raises:
        MatloopError: Another suffix, or no usable structure for extxyz.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        predictions_dataframe(predictions).to_csv(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps([p.model_dump(mode="json") for p in predictions], indent=1))
    elif suffix in (".extxyz", ".xyz"):
        write_extxyz(path, [(p.structure(), _info(p)) for p in predictions if p.structure_cif])
    else:
        raise MatloopError(f"{path.name}: unknown export format",
                           hint="use .csv, .json or .extxyz")
    return path


def write_trajectory(prediction: Prediction, path: str | Path) -> Path:
    """Write a prediction's relaxation frames as extended XYZ (energies and forces per frame).

    Raises:
        MatloopError: The prediction has no frames (predict with ``trajectory=True``).
    """
    frames = prediction.trajectory
    if not frames:
        raise MatloopError(f"{prediction.source}: no relaxation frames",
                           hint="predict with trajectory=True (and relax=True)")
    from ase import Atoms

    numbers = frames[0]["numbers"]
    images = []
    for n, f in enumerate(frames):
        atoms = Atoms(numbers=numbers, positions=f["positions"], cell=f["cell"], pbc=True)
        atoms.info.update({"step": n, "energy_ev": f["energy_ev"],
                           "max_force_ev_per_angstrom": f["max_force_ev_per_angstrom"],
                           "mlip": prediction.mlip, "mlip_model": prediction.mlip_model})
        images.append(atoms)
    from ase.io import write

    write(str(path), images, format="extxyz")
    return Path(path)


def write_extxyz(path: str | Path, items: Sequence[tuple[Structure, dict[str, Any]]]) -> Path:
    """Structures with per-frame info as extended XYZ.

    Raises:
        MatloopError: No structure to write.
    """
    if not items:
        raise MatloopError(f"{Path(path).name}: no structure to write",
                           hint="only usable results (status ok) carry structures")
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    images = []
    for structure, info in items:
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update({k: v for k, v in info.items() if v is not None})
        images.append(atoms)
    write(str(path), images, format="extxyz")
    return Path(path)


def _info(p: Prediction) -> dict[str, Any]:
    return {"source": p.source, "formula": p.formula, "energy_per_atom_ev": p.energy_per_atom_ev,
            "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
            "e_above_hull_ev_per_atom": p.e_above_hull_ev_per_atom,
            "energy_scale": p.energy_scale, "relaxed": p.relaxed, "mlip": p.mlip,
            "mlip_model": p.mlip_model, "mlip_version": p.mlip_version}


def _provenance(ev: Evaluator) -> dict[str, str]:
    return {"mlip": ev.spec.name, "mlip_model": ev.spec.model, "mlip_version": ev.mlip_version}
