"""Surrogate tool: predict_property (band gap and other properties the MLIP does not give).

The tool returns a short JSON summary whose first key is ``status``:

* ``ok``: a surrogate prediction (value, 1-sigma uncertainty, 68%/95% intervals, unit,
  ``in_domain`` with notes, ``source="surrogate:<name>"``) and, when the caller gave a
  Materials Project key, the database value (``source="materials_project"``, mp-id);
* ``no_model``: nobody trained a model for the property; the message says how to train one;
* ``error``: the input could not be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from matloop.errors import MatloopError
from matloop.surrogates.model import SurrogateModel
from matloop.surrogates.mp import MP_FIELDS, lookup_mp_property
from matloop.surrogates.store import (
    NoSurrogateError,
    available_properties,
    load_surrogate,
    select_card,
)
from matloop.surrogates.table import MaterialInput, load_structure, parse_formula


class PredictPropertyArgs(BaseModel):
    """Arguments of predict_property."""

    property: str = Field(description="Property to predict, e.g. band_gap (eV). Models exist "
                                      "only for properties a user has trained.")
    formula: str | None = Field(default=None, description="Composition, e.g. GaN or LiFePO4.")
    structure: str | None = Field(default=None, description="Path to a structure file (CIF, "
                                                            "POSCAR, extxyz, JSON) or CIF text; "
                                                            "needed by structure-based models.")


def _summary(pred: Any, model: SurrogateModel) -> dict[str, Any]:
    cv = model.card.get("metrics", {}).get("cv", {})
    out: dict[str, Any] = {
        "value": round(pred.value, 4),
        "uncertainty": round(pred.uncertainty, 4),
        "unit": pred.unit,
        "interval_68": [round(v, 4) for v in pred.interval_68],
        "interval_95": [round(v, 4) for v in pred.interval_95],
        "in_domain": pred.in_domain,
        "source": pred.source,
        "model": {"name": model.name, "version": model.version, "features": model.features,
                  "training_rows": model.card["data"]["rows"],
                  "cv_mae": round(cv["mae"], 4) if "mae" in cv else None},
    }
    if not pred.in_domain:
        out["domain_notes"] = pred.domain_notes
        out["warning"] = ("outside the model's training domain; treat the value as a rough "
                          "guess: " + "; ".join(pred.domain_notes))
    return out


def make_surrogate_tools(*, mp_api_key: str | None = None,
                         rester_factory: Callable[[str], Any] | None = None,
                         ) -> list[BaseTool]:
    """Build the surrogate tools.

    Args:
        mp_api_key: Materials Project key. Only when given does the tool look up database
            values (online); without it nothing leaves the machine.
        rester_factory: Replaces ``mp_api.client.MPRester`` (tests).

    """
    loaded: dict[tuple[str, str, str], SurrogateModel] = {}

    def model_for(card: dict[str, Any]) -> SurrogateModel:
        key = (card["name"], card["version"], card.get("created_utc", ""))
        if key not in loaded:
            loaded.clear()  # one model per property in memory is plenty
            loaded[key] = load_surrogate(card["name"])
        return loaded[key]

    def known_value(formula: str, prop: str) -> dict[str, Any]:
        if not mp_api_key or prop not in MP_FIELDS:
            return {}
        kwargs = {"rester_factory": rester_factory} if rester_factory else {}
        try:
            found = lookup_mp_property(formula, prop, api_key=mp_api_key, **kwargs)
        except MatloopError as exc:
            return {"database_error": str(exc)}
        if found is None:
            return {"database_value": None,
                    "database_note": f"the Materials Project has no {prop} for {formula}"}
        return {"database_value": found.model_dump()}

    def predict_property(property: str, formula: str | None = None,
                         structure: str | None = None) -> str:
        """Predict a property the MLIP does not give (e.g. band_gap, eV) with a surrogate.

        Give a formula or a structure. Returns the value, its 1-sigma uncertainty,
        68%/95% intervals, unit, whether the input lies inside the model's training domain
        (in_domain; out-of-domain values are rough guesses) and source ('surrogate:<model>');
        with Materials Project access also the database value (source 'materials_project').
        status 'no_model' means no model exists for that property: report that, do not guess.
        """
        if not formula and not structure:
            return json.dumps({"status": "error",
                               "message": "give a formula or a structure"})
        try:
            if structure:
                s = load_structure(structure, where="structure: ")
                item = MaterialInput(s.composition, s, s.composition.reduced_formula)
                if formula and parse_formula(formula).reduced_formula != item.formula:
                    return json.dumps({"status": "error", "message":
                                       f"structure is {item.formula}, formula says "
                                       f"{parse_formula(formula).reduced_formula}"})
            else:
                item = MaterialInput(parse_formula(formula or ""), None, (formula or "").strip())
        except MatloopError as exc:
            return json.dumps({"status": "error", "message": str(exc)})
        head: dict[str, Any] = {"property": property, "formula": item.formula}
        database = known_value(item.formula, property)
        try:
            card = select_card(property, have_structure=item.structure is not None)
            (pred,) = model_for(card).predict([item])
        except NoSurrogateError as exc:
            if database.get("database_value"):
                return json.dumps({"status": "ok", **head, **database,
                                   "note": f"no surrogate model: {exc.message}"})
            return json.dumps({"status": "no_model", **head, "message": exc.message,
                               "hint": exc.hint,
                               "available_properties": available_properties(), **database})
        except MatloopError as exc:
            return json.dumps({"status": "error", **head, "message": str(exc)})
        return json.dumps({"status": "ok", **head, **_summary(pred, model_for(card)),
                           **database})

    return [StructuredTool.from_function(predict_property, args_schema=PredictPropertyArgs)]


__all__ = ["PredictPropertyArgs", "make_surrogate_tools"]
