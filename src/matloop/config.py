"""Process settings (pydantic-settings): one documented list, read from five places.

Precedence, strongest first:

1. explicit arguments (command-line flags, function keywords, ``Settings(mlip=...)``);
2. the environment, ``MATLOOP_<NAME>`` (``MP_API_KEY`` for the Materials Project key);
3. a ``.env`` file in the working directory (same names as the environment);
4. a TOML config file: ``$MATLOOP_CONFIG`` when set, else ``./matloop.toml``, else
   ``$XDG_CONFIG_HOME/matloop/config.toml`` (``~/.config/matloop/config.toml``); keys are the
   field names below (``mlip = "sevenn"``), at the top level or under a ``[matloop]`` table;
5. the defaults below.

``matloop config show`` prints every setting, its value and where it came from
(:func:`describe_settings`). Nothing here reads the environment at import time; call
:func:`get_settings`.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from matloop.errors import ConfigError

#: Environment variable naming the TOML config file (read from the environment only).
CONFIG_ENV = "MATLOOP_CONFIG"
#: The ``.env`` file, relative to the working directory.
DOTENV = Path(".env")
#: Config file looked up in the working directory.
LOCAL_CONFIG = Path("matloop.toml")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "matloop"


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/matloop/config.toml`` (``~/.config/matloop/config.toml``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "matloop" / "config.toml"


def config_file() -> Path | None:
    """The TOML config file in use, if any (see the module docstring for the order).

    Raises:
        ConfigError: ``MATLOOP_CONFIG`` names a file that does not exist.
    """
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file",
                              hint=f"create it, or unset {CONFIG_ENV} to use ./matloop.toml "
                                   f"or {user_config_path()}")
        return path
    for path in (LOCAL_CONFIG, user_config_path()):
        if path.is_file():
            return path
    return None


class TomlSettingsSource(PydanticBaseSettingsSource):
    """Settings from the TOML config file; unknown keys are an error, not ignored."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.values = self._read() if path is not None else {}

    def _read(self) -> dict[str, Any]:
        assert self.path is not None
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot be read ({type(exc).__name__})",
                              hint="check the file, or point MATLOOP_CONFIG elsewhere") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: not valid TOML ({exc})",
                              hint='write one key per line, e.g. mlip = "chgnet"') from exc
        if isinstance(data.get("matloop"), dict):
            data = {**{k: v for k, v in data.items() if k != "matloop"}, **data["matloop"]}
        names = set(self.settings_cls.model_fields)
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{self.path}: unknown setting(s) {', '.join(unknown)}",
                              hint=f"settings: {', '.join(sorted(names))} "
                                   "(matloop config show lists them)")
        return data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value of one field in the file (pydantic-settings' source interface)."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        """Every value in the file."""
        return dict(self.values)


class Settings(BaseSettings):
    """matloop settings; each can be set as ``MATLOOP_<NAME>`` (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="MATLOOP_", env_file=None, extra="ignore",
                                      populate_by_name=True)

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Directory for the evaluation cache, reference store, logs and other user "
                    "data.",
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
        validation_alias=AliasChoices("max_structure_atoms", "MATLOOP_MAX_STRUCTURE_ATOMS",
                                      "MATLOOP_MAX_ATOMS"),
        description="Largest structure (atoms per cell) accepted for evaluation (campaigns' "
                    "generated cells have their own, smaller limit). Also MATLOOP_MAX_ATOMS.",
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
        validation_alias=AliasChoices("mp_api_key", "MP_API_KEY"),
        description="Materials Project API key (read from MP_API_KEY); only online commands "
                    "use it.",
    )
    evaluation_cache: Path | None = Field(
        default=None,
        description="SQLite file of the evaluation cache (default: data_dir/evaluations.sqlite);"
                    " point several data directories at one file to share MLIP results.",
    )
    mace_model: str = Field(
        default="medium",
        description="MACE-MP model for the optional 'mace' backend: a size name (small, "
                    "medium, large) or the path of a local model file.")
    mattersim_model: str = Field(
        default="MatterSim-v1.0.0-1M.pth",
        description="MatterSim checkpoint for the optional 'mattersim' backend (a local path "
                    "or a checkpoint name).")
    web_token: SecretStr | None = Field(
        default=None,
        description="Secret every web API request must carry (`matloop serve --token`); "
                    "required when serving off loopback.")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments > environment > .env > TOML config file > defaults."""
        return (init_settings, env_settings, _dotenv_source(settings_cls),
                TomlSettingsSource(settings_cls, config_file()))

    @property
    def cache_path(self) -> Path:
        """SQLite file of the evaluation cache."""
        return self.evaluation_cache or self.data_dir / "evaluations.sqlite"

    @property
    def reference_path(self) -> Path:
        """SQLite file of the reference-phase store."""
        return self.data_dir / "references.sqlite"

    @property
    def logs_dir(self) -> Path:
        """Folder of crash logs."""
        return self.data_dir / "logs"


def _dotenv_source(settings_cls: type[BaseSettings]) -> DotEnvSettingsSource:
    return DotEnvSettingsSource(settings_cls, env_file=DOTENV if DOTENV.is_file() else None,
                                env_file_encoding="utf-8")


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, ``overrides`` strongest.

    Raises:
        ConfigError: A setting has an invalid value (named with where it came from), or the
            config file is unreadable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        origins = setting_origins()
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            field = _field_of(name)
            where = origins.get(field, "") if field else ""
            problems.append(f"{field or name}{f' (from {where})' if where else ''}: "
                            f"{err['msg']}")
        raise ConfigError("invalid setting: " + "; ".join(problems),
                          hint="fix the value in the environment, .env or the config file "
                               "(`matloop config show` lists every setting and its source)"
                          ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{DOTENV}: not UTF-8 text", hint="save .env as UTF-8") from exc


def _field_of(key: str) -> str | None:
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if key == name or key in choices:
            return name
    return None


def setting_origins() -> dict[str, str]:
    """Where each setting that is not a default comes from: 'environment', '.env' or the
    config file's path (the strongest source that sets it)."""
    found: dict[str, str] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    try:
        layers.append(("environment", EnvSettingsSource(Settings)()))
    except (ValueError, ValidationError):
        pass
    if DOTENV.is_file():
        try:
            layers.append((".env", _dotenv_source(Settings)()))
        except (ValueError, ValidationError, UnicodeDecodeError):
            pass
    try:
        path = config_file()
        if path is not None:
            layers.append((str(path), TomlSettingsSource(Settings, path)()))
    except ConfigError:
        pass
    for origin, values in layers:
        for key in values:
            field = _field_of(key)
            if field is not None and field not in found:
                found[field] = origin
    return found


def describe_settings(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every setting: name, environment variable, value (secrets masked), origin, description.

    ``origin`` is 'default', 'environment', '.env' or the config file's path.
    """
    settings = settings or get_settings()
    origins = setting_origins()
    rows = []
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        shown: Any
        if isinstance(value, SecretStr):
            shown = "********" if value.get_secret_value() else ""
        elif isinstance(value, Path):
            shown = str(value)
        else:
            shown = value
        env = "MP_API_KEY" if name == "mp_api_key" else f"MATLOOP_{name.upper()}"
        rows.append({"name": name, "env": env, "value": shown,
                     "origin": origins.get(name, "default"),
                     "description": info.description or ""})
    return rows


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings, read once (see the module docstring for the sources).

    Raises:
        ConfigError: An invalid value or an unreadable config file.
    """
    return load_settings()
