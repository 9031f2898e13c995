"""Known values of existing compounds from the Materials Project (online; needs an API key).

The offline path never calls this module: agents and commands use it only when the caller
passes an API key explicitly. Values it returns carry ``source="materials_project"`` and the
mp-id, so a report can tell database values from surrogate predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from matloop.errors import ReferenceDataError
from matloop.surrogates.table import parse_formula

#: matloop property name -> (MP summary field, unit).
MP_FIELDS: dict[str, tuple[str, str]] = {
    "band_gap": ("band_gap", "eV"),
    "e_above_hull": ("energy_above_hull", "eV/atom"),
    "energy_above_hull": ("energy_above_hull", "eV/atom"),
    "formation_energy_per_atom": ("formation_energy_per_atom", "eV/atom"),
    "density": ("density", "g/cm^3"),
    "efermi": ("efermi", "eV"),
    "total_magnetization": ("total_magnetization", "μB/f.u."),
}


class DatabaseValue(BaseModel):
    """A property value taken from a database, not predicted."""

    property: str = Field(description="Property name.")
    formula: str = Field(description="Reduced formula that was looked up.")
    value: float = Field(description="Database value, in `unit`.")
    unit: str = Field(description="Unit of the value.")
    source: str = Field(default="materials_project", description="Where the value comes from.")
    material_id: str = Field(description="Materials Project id of the entry used.")
    energy_above_hull_ev_per_atom: float | None = Field(
        default=None, description="Energy above hull of that entry (the lowest among "
                                  "polymorphs is chosen), eV/atom.")
    polymorphs: int = Field(description="Entries found for the formula.")


def _default_rester(api_key: str) -> Any:
    from mp_api.client import MPRester

    return MPRester(api_key, mute_progress_bars=True)


def lookup_mp_property(formula: str, property: str = "band_gap", *, api_key: str | None,
                       rester_factory: Callable[[str], Any] = _default_rester,
                       ) -> DatabaseValue | None:
    """Look up ``property`` of ``formula`` (its lowest-energy polymorph) in the Materials Project.

    Returns:
        The value with ``source="materials_project"`` and the mp-id, or ``None`` when MP has
        no entry with this formula (or none with a value).

    Raises:
        ReferenceDataError: No API key, a property MP does not serve, or the request failed.

    """
    if not api_key:
        raise ReferenceDataError("no Materials Project API key",
                                 hint="set MP_API_KEY to look up known values online")
    if property not in MP_FIELDS:
        raise ReferenceDataError(
            f"the Materials Project lookup knows no property {property!r}; "
            f"valid: {', '.join(sorted(MP_FIELDS))}")
    field, unit = MP_FIELDS[property]
    reduced = parse_formula(formula).reduced_formula
    fields = sorted({"material_id", "formula_pretty", "energy_above_hull", field})
    try:
        with rester_factory(api_key) as mpr:
            docs = list(mpr.materials.summary.search(formula=reduced, fields=fields))
    except Exception as exc:  # network, auth, server errors: one clear message
        raise ReferenceDataError(
            f"Materials Project request for {reduced} failed: {type(exc).__name__}: {exc}",
            hint="check MP_API_KEY and the network connection",
        ) from exc
    rows = [d for d in docs if _get(d, field) is not None]
    if not rows:
        return None
    best = min(rows, key=lambda d: (_get(d, "energy_above_hull") is None,
                                    _get(d, "energy_above_hull") or 0.0))
    e_hull = _get(best, "energy_above_hull")
    return DatabaseValue(
        property=property, formula=reduced, value=float(_get(best, field)), unit=unit,
        material_id=str(_get(best, "material_id")),
        energy_above_hull_ev_per_atom=None if e_hull is None else float(e_hull),
        polymorphs=len(docs),
    )


def _get(doc: Any, key: str) -> Any:
    """Read a field of an mp-api document (attribute) or of a plain dict."""
    return doc.get(key) if isinstance(doc, dict) else getattr(doc, key, None)
