"""Cached MLIP evaluations, one at a time or in batches (in-process or on a Dask cluster).

The :class:`Evaluator` answers from the evaluation cache when it can and loads the MLIP only
when something must be computed. Batches check the cache first, compute only what is missing,
and store each result the moment it arrives, so a killed batch keeps its finished work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matloop.config import Settings, get_settings
from matloop.materials.cache import EvaluationCache, evaluation_key
from matloop.materials.mlip import (
    MLIP,
    BulkModulusResult,
    RelaxResult,
    SinglePointResult,
    get_mlip,
    require_installed,
)


class EvaluationFailure(BaseModel):
    """A structure in a batch whose evaluation raised instead of returning a result."""

    index: int = Field(description="Position of the structure in the batch.")
    formula: str = Field(description="Reduced formula.")
    error: str = Field(description="Exception type.")
    message: str = Field(description="What went wrong.")


ProgressCallback = Callable[[int, int], None]


class Evaluator:
    """Runs relaxations, single points and EOS fits with one backend, through the cache.

    Args:
        mlip: Backend name (see ``matloop.materials.mlip.available_backends``).
        cache: Evaluation cache; ``None`` computes everything afresh.
        settings: Defaults for fmax and step limits.
    """

    def __init__(self, mlip: str | None = None, *, cache: EvaluationCache | None = None,
                 settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.spec = require_installed(mlip or self.settings.mlip)
        self.cache = cache
        try:
            self.mlip_version = version(self.spec.package)
        except PackageNotFoundError:
            self.mlip_version = "unknown"
        self.computed = 0
        self.cache_hits = 0

    @property
    def mlip(self) -> MLIP:
        """The loaded backend (loaded on first use)."""
        return get_mlip(self.spec.name)

    @property
    def energy_scale(self) -> str:
        """Energy scale of the backend's total energies."""
        return self.spec.energy_scale

    def relax_settings(self, *, fmax: float | None = None, steps: int | None = None,
                       relax_cell: bool = True) -> dict[str, Any]:
        """Settings that define a relaxation (and its cache key)."""
        return {
            "fmax_ev_per_angstrom": float(fmax or self.settings.fmax_ev_per_angstrom),
            "steps": int(steps or self.settings.relax_steps),
            "relax_cell": bool(relax_cell),
        }

    def _key(self, structure: Structure, kind: str, settings: dict[str, Any]) -> str:
        return evaluation_key(structure, kind=kind, mlip=self.spec.name,
                              mlip_version=self.mlip_version, settings=settings)

    def _cached(self, key: str) -> dict[str, Any] | None:
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            self.cache_hits += 1
        return hit

    def _store(self, key: str, kind: str, structure: Structure, settings: dict[str, Any],
               result: BaseModel) -> None:
        self.computed += 1
        if self.cache is not None:
            self.cache.put(key, kind=kind, structure=structure, mlip=self.spec.name,
                           mlip_version=self.mlip_version, settings=settings,
                           result=result.model_dump(mode="json"))

    def relax(self, structure: Structure, *, fmax: float | None = None, steps: int | None = None,
              relax_cell: bool = True, trajectory: bool = False) -> RelaxResult:
        """Relax (or return the cached relaxation of) one structure.

        ``trajectory`` keeps the optimiser frames; such a relaxation is always computed (the
        cache holds results without frames) and then cached like any other.
        """
        settings = self.relax_settings(fmax=fmax, steps=steps, relax_cell=relax_cell)
        key = self._key(structure, "relax", settings)
        hit = None if trajectory else self._cached(key)
        if hit is not None:
            return RelaxResult.model_validate(hit)
        result = self.mlip.relax(structure, fmax=settings["fmax_ev_per_angstrom"],
                                 steps=settings["steps"], relax_cell=relax_cell,
                                 trajectory=trajectory)
        self._store(key, "relax", structure, settings,
                    result.model_copy(update={"trajectory": None}))
        return result

    def single_point(self, structure: Structure) -> SinglePointResult:
        """Energy of one structure as given (cached)."""
        key = self._key(structure, "single_point", {})
        hit = self._cached(key)
        if hit is not None:
            return SinglePointResult.model_validate(hit)
        result = self.mlip.single_point(structure)
        self._store(key, "single_point", structure, {}, result)
        return result

    def bulk_modulus(self, structure: Structure, *, strain: float = 0.04,
                     points: int = 7) -> BulkModulusResult:
        """Bulk modulus of an (already relaxed) structure from an EOS fit (cached)."""
        settings = {"strain": strain, "points": points, "eos": "birch_murnaghan"}
        key = self._key(structure, "bulk_modulus", settings)
        hit = self._cached(key)
        if hit is not None:
            return BulkModulusResult.model_validate(hit)
        result = self.mlip.bulk_modulus(structure, strain=strain, points=points)
        self._store(key, "bulk_modulus", structure, settings, result)
        return result

    def relax_many(
        self,
        structures: Sequence[Structure],
        *,
        fmax: float | None = None,
        steps: int | None = None,
        relax_cell: bool = True,
        scheduler: str | None = None,
        client: Any = None,
        progress: ProgressCallback | None = None,
    ) -> list[RelaxResult | EvaluationFailure]:
        """Relax a batch; results come back in input order.

        Cached results are returned without computing. The rest run in this process, or on a
        Dask cluster when ``client`` (a ``distributed.Client``) or ``scheduler`` (an address;
        defaults to the ``MATLOOP_DASK_SCHEDULER`` setting) is given. Each result is cached
        the moment it arrives.
        """
        settings = self.relax_settings(fmax=fmax, steps=steps, relax_cell=relax_cell)
        results: list[RelaxResult | EvaluationFailure | None] = [None] * len(structures)
        keys = [self._key(s, "relax", settings) for s in structures]
        todo: list[int] = []
        seen: dict[str, int] = {}
        for i, key in enumerate(keys):
            hit = self._cached(key)
            if hit is not None:
                results[i] = RelaxResult.model_validate(hit)
            elif key in seen:  # same structure twice in one batch: compute once
                continue
            else:
                seen[key] = i
                todo.append(i)
        done = sum(r is not None for r in results)
        total = done + len(todo)
        if progress:
            progress(done, total)

        def accept(i: int, payload: dict[str, Any]) -> None:
            nonlocal done
            if "error" in payload:
                results[i] = EvaluationFailure(index=i, **payload)
            else:
                result = RelaxResult.model_validate(payload)
                self._store(keys[i], "relax", structures[i], settings, result)
                results[i] = result
            done += 1
            if progress:
                progress(done, total)

        scheduler = scheduler or self.settings.dask_scheduler
        if todo and (client is not None or scheduler):
            _run_on_dask(self.spec.name, structures, todo, settings, accept,
                         client=client, scheduler=scheduler)
        else:
            for i in todo:
                accept(i, _relax_task(structures[i].as_dict(), self.spec.name, settings, i))
        # Fill duplicates from their first occurrence.
        for i, key in enumerate(keys):
            if results[i] is None:
                results[i] = results[seen[key]]
        return [r for r in results if r is not None]


def _relax_task(structure: dict[str, Any], mlip: str, settings: dict[str, Any], index: int,
                torch_threads: int | None = None) -> dict[str, Any]:
    """Relax one structure; runs in this process or on a Dask worker. Never raises."""
    try:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        s = Structure.from_dict(structure)
        result = get_mlip(mlip).relax(
            s, fmax=settings["fmax_ev_per_angstrom"], steps=settings["steps"],
            relax_cell=settings["relax_cell"],
        )
        return result.model_dump(mode="json")
    except Exception as exc:  # reported per structure; one failure must not sink the batch
        formula = structure.get("formula") or "?"
        try:
            formula = Structure.from_dict(structure).composition.reduced_formula
        except Exception:
            pass
        return {"formula": formula, "error": type(exc).__name__, "message": str(exc)[:500]}


def _run_on_dask(mlip: str, structures: Sequence[Structure], todo: list[int],
                 settings: dict[str, Any], accept: Callable[[int, dict[str, Any]], None], *,
                 client: Any, scheduler: str | None) -> None:
    from distributed import Client, as_completed

    own = client is None
    if own:
        client = Client(scheduler, timeout="30s")
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        threads = 1 if n_workers > 1 else None
        # Largest first: the long jobs start early and the tail stays short.
        order = sorted(todo, key=lambda i: -len(structures[i]))
        futures = {
            client.submit(_relax_task, structures[i].as_dict(), mlip, settings, i, threads,
                          pure=False, key=f"relax-{i}-{time.time_ns()}"): i
            for i in order
        }
        for future in as_completed(futures):
            i = futures[future]
            try:
                payload = future.result()
            except Exception as exc:  # worker lost, cancelled...
                payload = {"formula": structures[i].composition.reduced_formula,
                           "error": type(exc).__name__, "message": str(exc)[:500]}
            accept(i, payload)
    finally:
        if own:
            client.close()
