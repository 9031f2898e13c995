"""Logging and warnings: module loggers, the command line's verbosity, and which warnings are
noise.

Every module logs through ``logging.getLogger(__name__)``; nothing here configures logging at
import time. :func:`configure` (called by the command line's ``--verbose`` / ``--quiet``) sets
the level of the ``matloop`` logger and decides whether third-party warnings are shown.

Third-party packages (pymatgen, spglib, torch, ...) warn about things a user cannot act on
(CIF parser remarks, deprecations inside their own code, missing electronegativities of noble
gases). Those warnings are filtered by category *and* module, never blanket-silenced:

    with quiet_third_party():
        structure = Structure.from_str(text, fmt="cif")   # pymatgen's remarks hidden

A warning raised by matloop itself is never hidden, and ``--verbose`` shows everything.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Packages whose warnings are noise in normal use (shown with --verbose).
NOISY_MODULES = ("pymatgen", "spglib", "torch", "ase", "pyxtal", "matminer", "smact",
                 "chgnet", "sevenn", "e3nn", "sklearn", "scipy", "numpy", "monty", "robocrys",
                 "transformers", "sentence_transformers", "chromadb", "huggingface_hub",
                 "mp_api", "emmet", "pydantic_settings", "dask", "distributed", "pypdf",
                 "bibtexparser", "jobflow", "atomate2", "mace", "mattersim", "matplotlib",
                 "joblib", "pandas")
#: Categories filtered from those packages.
NOISY_CATEGORIES: tuple[type[Warning], ...] = (UserWarning, DeprecationWarning,
                                               PendingDeprecationWarning, FutureWarning,
                                               RuntimeWarning, ImportWarning)
#: Warnings that third-party code raises with ``stacklevel`` pointing at the caller (so their
#: module is the caller's); matched by message.
NOISY_MESSAGES = (
    r"No Pauling electronegativity for",          # pymatgen, noble gases
    r"No electronegativity for",                  # pymatgen
    r"No default ionic radius for",               # pymatgen Species.ionic_radius
    r"Issues encountered while parsing CIF",      # pymatgen CifParser
    r"No structure parsed for section",           # pymatgen CifParser
    r"The default value of primitive was changed",  # pymatgen CifParser
    r".*spglib.*",                                # spglib deprecations via pymatgen
    r"dict interface is deprecated",              # spglib
    r"Use get_magnetic_symmetry",                 # spglib
    r"CrystalNN: cannot locate",                  # pymatgen local environments
    r"No oxidation states specified on sites",    # pymatgen bond valence
    r"POTCAR",                                    # pymatgen VASP input sets without POTCARs
    r"You are using `torch.load` with `weights_only",  # torch, in model loaders
    r"TypedStorage is deprecated",                # torch
)

_LOGGER = "matloop"
_state = {"show_warnings": False}


def show_warnings() -> bool:
    """Whether third-party warnings are shown (``--verbose``)."""
    return _state["show_warnings"]


def _module_pattern(module: str) -> str:
    return rf"{re.escape(module)}(\.|$)"


def add_noise_filters() -> None:
    """Install the third-party noise filters in the current warnings filter list."""
    for module in NOISY_MODULES:
        for category in NOISY_CATEGORIES:
            warnings.filterwarnings("ignore", category=category, module=_module_pattern(module))
    for message in NOISY_MESSAGES:
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """Hide third-party noise (by module and category, and a few known messages) inside the
    block; matloop's own warnings pass. With ``--verbose`` nothing is hidden."""
    with warnings.catch_warnings():
        if not _state["show_warnings"]:
            add_noise_filters()
        yield


def configure(verbosity: int = 0, *, stream: object = None) -> None:
    """Set up the ``matloop`` logger and the warnings policy for a command-line run.

    Args:
        verbosity: -1 quiet (errors only), 0 warnings, 1 info and third-party warnings
            shown, 2 debug.
        stream: Where log lines go (default: stderr).
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity,
                                                                         logging.DEBUG)
    logger = logging.getLogger(_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "_matloop", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._matloop = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    _state["show_warnings"] = verbosity >= 1
    if verbosity >= 1:
        warnings.simplefilter("default")
        logging.captureWarnings(False)
    else:
        add_noise_filters()


__all__ = ["NOISY_MODULES", "add_noise_filters", "configure", "quiet_third_party",
           "show_warnings"]
