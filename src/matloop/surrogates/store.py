"""Where surrogates live: ``<data_dir>/models/<name>.joblib`` plus a JSON card ``<name>.json``.

The joblib file holds the fitted forest, the calibration and the domain (training features);
the card holds everything a person or an agent needs to judge the model without loading it.
Only load models you trained: joblib files are pickles.

``band_gap`` always has a model: when the user has trained none (or only structure models and
a formula is given), :func:`select_card` and :func:`load_surrogate` fall back to the built-in
default (:mod:`matloop.surrogates.band_gap`, name ``band_gap_default``), trained on first use.
A user-trained model for the property wins.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from matloop.config import get_settings
from matloop.errors import MatloopError
from matloop.logs import quiet_third_party
from matloop.surrogates.model import SurrogateModel

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_FORMAT = 1


class NoSurrogateError(MatloopError, LookupError):
    """No trained model exists for a property or name."""


def models_dir() -> Path:
    """``get_settings().data_dir / "models"`` (not created until a model is saved)."""
    return get_settings().data_dir / "models"


def check_name(name: str) -> str:
    """Return ``name`` if it is usable as a file stem.

    Raises:
        MatloopError: The name has characters other than letters, digits, ``_ . -``.

    """
    if not _NAME.match(name):
        raise MatloopError(f"invalid model name {name!r}",
                           hint="use letters, digits, '_', '.' or '-' (at most 64 characters)")
    return name


def train_hint(prop: str) -> str:
    """Tell how to train a model for ``prop``."""
    return (f"train one: `matloop models train {prop} --data {prop}.csv` (a CSV with a "
            f"'formula' or 'cif' column and a '{prop}' column)")


def save_surrogate(model: SurrogateModel) -> Path:
    """Write the model and its card (atomically); return the card path."""
    import joblib

    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = check_name(model.name)
    blob = folder / f"{name}.joblib"
    card = folder / f"{name}.json"
    model.card["files"] = {"model": blob.name, "card": card.name}
    payload = {"format": _FORMAT, "estimator": model.estimator,
               "calibration": model.calibration, "domain": model.domain}
    tmp_blob, tmp_card = blob.with_suffix(".joblib.tmp"), card.with_suffix(".json.tmp")
    joblib.dump(payload, tmp_blob, compress=3)
    tmp_card.write_text(json.dumps(model.card, indent=2, default=str))
    os.replace(tmp_blob, blob)
    os.replace(tmp_card, card)
    return card


def read_card(name: str) -> dict[str, Any]:
    """Read the JSON card of model ``name``.

    Raises:
        NoSurrogateError: No such model; the message lists the models there are.

    """
    path = models_dir() / f"{check_name(name)}.json"
    if not path.is_file():
        known = [c["name"] for c in list_surrogates()]
        raise NoSurrogateError(
            f"no surrogate model named {name!r}"
            + (f"; trained models: {', '.join(known)}" if known else "; none is trained yet"),
            hint=train_hint(name),
        )
    return json.loads(path.read_text())


#: Properties with a built-in model, and the names that load it when no user model has them.
BUILTIN_PROPERTIES = ("band_gap",)
_BUILTIN_NAMES = ("band_gap", "band_gap_default")


def load_surrogate(name: str) -> SurrogateModel:
    """Load model ``name`` from the models directory.

    ``band_gap`` and ``band_gap_default`` load the built-in band-gap model when no user model
    has that name.

    Raises:
        NoSurrogateError: No such model.
        MatloopError: The model file is missing or unreadable.

    """
    import joblib

    if name in _BUILTIN_NAMES and not (models_dir() / f"{name}.json").is_file():
        from matloop.surrogates.band_gap import default_band_gap_model

        return default_band_gap_model()
    card = read_card(name)
    blob = models_dir() / card.get("files", {}).get("model", f"{name}.joblib")
    trained_with = card.get("versions", {}).get("scikit-learn")
    if trained_with and trained_with != _version("scikit-learn"):
        warnings.warn(f"model {name!r} was trained with scikit-learn {trained_with}, this is "
                      f"{_version('scikit-learn')}; retrain it if predictions look wrong",
                      stacklevel=2)
    try:
        with quiet_third_party():
            payload = joblib.load(blob)
    except Exception as exc:
        raise MatloopError(f"model file {blob} cannot be read ({type(exc).__name__}: {exc})",
                           hint=f"retrain it: {train_hint(card.get('property', name))}") from exc
    return SurrogateModel(card, payload["estimator"], payload["calibration"], payload["domain"])


def list_surrogates() -> list[dict[str, Any]]:
    """Cards of every saved model, newest first."""
    folder = models_dir()
    if not folder.is_dir():
        return []
    cards = []
    for path in folder.glob("*.json"):
        try:
            card = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(card, dict) and "property" in card and "name" in card:
            cards.append(card)
    return sorted(cards, key=lambda c: str(c.get("created_utc", "")), reverse=True)


def available_properties() -> list[str]:
    """Properties that have a model: user-trained ones plus the built-in ``band_gap``."""
    return sorted({str(c["property"]) for c in list_surrogates()} | set(BUILTIN_PROPERTIES))


def select_card(prop: str, *, have_structure: bool = False) -> dict[str, Any]:
    """Pick the card of the model to use for property ``prop``.

    The model named exactly ``prop`` wins, then the newest; models that need a structure are
    skipped when only a formula is given. For ``band_gap`` with no usable user model, the
    built-in default's card (``default: true``).

    Raises:
        NoSurrogateError: No model for the property (or none usable with a formula alone),
            with the command that trains one.

    """
    cards = [c for c in list_surrogates() if c["property"] == prop or c["name"] == prop]
    builtin = prop in BUILTIN_PROPERTIES or prop in _BUILTIN_NAMES
    if not cards and not builtin:
        raise NoSurrogateError(
            f"no surrogate model for {prop!r}; properties with models: "
            f"{', '.join(available_properties())}",
            hint=train_hint(prop),
        )
    usable = [c for c in cards
              if have_structure or c.get("features", {}).get("kind") == "composition"]
    if not usable and builtin:
        from matloop.surrogates.band_gap import default_card

        return default_card()
    if not usable:
        raise NoSurrogateError(
            f"every model for {prop!r} needs a crystal structure "
            f"({', '.join(c['name'] for c in cards)}); only a formula was given",
            hint=f"pass a structure, or train a composition model: `matloop models train "
                 f"{prop} --data FILE.csv --features composition --name {prop}_composition`",
        )
    return sorted(usable, key=lambda c: c["name"] != prop)[0]  # stable: newest first otherwise


def find_surrogate(prop: str, *, have_structure: bool = False) -> SurrogateModel:
    """Load the model :func:`select_card` picks for ``prop``."""
    return load_surrogate(select_card(prop, have_structure=have_structure)["name"])


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
