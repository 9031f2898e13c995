"""Process settings (pydantic-settings, environment prefix ``MATLOOP_``).

Precedence: explicit arguments (CLI flags, function keywords) override the environment,
which overrides the defaults below. Nothing here reads the environment at import time;
call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "matloop"


class Settings(BaseSettings):
    """matloop settings; every field can be set as ``MATLOOP_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MATLOOP_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Directory for the evaluation cache, reference store and other user data.",
    )
    mlip: str = Field(default="chgnet", description="Default MLIP backend name.")
    llm: str = Field(default="none", description="Default chat model for every role where no "
                                                 "run setting names one: none (offline "
                                                 "policies) or provider:model.")
    runs_dir: Path = Field(default=Path("runs"), description="Folder of run directories for "
                                                             "campaigns and chat.")
    fmax_ev_per_angstrom: float = Field(
        default=0.05, gt=0, description="Force convergence criterion for relaxations, eV/Å."
    )
    relax_steps: int = Field(default=500, gt=0,
                             description="Maximum optimiser steps per relaxation.")
    max_structure_atoms: int = Field(
        default=200, gt=0,
        validation_alias=AliasChoices("MATLOOP_MAX_STRUCTURE_ATOMS", "MATLOOP_MAX_ATOMS"),
        description="Largest structure (atoms per cell) accepted for evaluation (campaigns' "
                    "generated cells have their own, smaller limit).",
    )
    min_distance_angstrom: float = Field(
        default=0.5, gt=0,
        description="Closest allowed interatomic distance in an input structure, Å."
    )
    stability_threshold_ev_per_atom: float = Field(
        default=0.1,
        ge=0,
        description="Largest energy above hull (eV/atom) at which a phase still counts as stable.",
    )
    reference_scale: Literal["auto", "mlip", "mp2020"] = Field(
        default="auto",
        description=(
            "Energy scale of the hull: 'mlip' builds every reference with the MLIP; 'mp2020' uses "
            "DFT formation energies with MP2020 corrections (the shipped Materials Project set "
            "by default); 'auto' uses mlip where the user imported reference structures for "
            "the system, otherwise mp2020 (mlip when an element has no MP2020 reference)."
        ),
    )
    mp_references: bool = Field(
        default=True,
        description="Use the Materials Project composition energies and MP2020 elemental "
                    "references shipped with matloop (about 125,000 compositions) as the "
                    "default reference set for hulls and novelty.",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Address of a dask.distributed scheduler; batches run in-process when unset.",
    )
    max_atoms_per_batch: int = Field(
        default=400, gt=0, description="Atoms per executor task when batches are split by size."
    )
    mp_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="MP_API_KEY",
        description="Materials Project API key (read from MP_API_KEY); only online commands "
                    "use it.",
    )

    evaluation_cache: Path | None = Field(
        default=None,
        description="SQLite file of the evaluation cache (default: data_dir/evaluations.sqlite);"
                    " point several data directories at one file to share MLIP results.",
    )

    @property
    def cache_path(self) -> Path:
        """SQLite file of the evaluation cache."""
        return self.evaluation_cache or self.data_dir / "evaluations.sqlite"

    @property
    def reference_path(self) -> Path:
        """SQLite file of the reference-phase store."""
        return self.data_dir / "references.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings, read once from the environment."""
    return Settings()
