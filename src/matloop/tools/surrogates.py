"""Surrogate tool: predict_property (band gap and other properties the MLIP does not give).

``status`` is ``ok`` with a surrogate prediction (value, 1-sigma uncertainty, 68%/95%
intervals, unit, ``in_domain`` with notes, ``source``) and, with a Materials Project key, the
database value; ``no_model`` when no model exists for the property (the message says how to
train one); ``error`` when the input cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from matloop.errors import MatloopError
from matloop.files import FileAccess, load_structure
from matloop.surrogates.model import SurrogateModel
from matloop.surrogates.mp import MP_FIELDS, lookup_mp_property
from matloop.surrogates.store import (
    NoSurrogateError,
    available_properties,
    load_surrogate,
    select_card,
)
from matloop.surrogates.table import MaterialInput, parse_formula
from matloop.tools.base import CandidateContext, ToolOutput, ToolSpec

PREDICT_PROPERTY = "predict_property"


class PredictPropertyArgs(BaseModel):
    """Arguments of predict_property."""

    property: str = Field(description="Property to predict, e.g. band_gap (eV). Models exist "
                                      "only for properties a user has trained.")
    formula: str | None = Field(default=None, description="Composition, e.g. GaN or LiFePO4.")
    structure: str | None = Field(default=None, description="Path to a structure file (CIF, "
                                                            "POSCAR, extxyz, JSON) or CIF text; "
                                                            "needed by structure-based models.")


class PropertyOutput(ToolOutput):
    """Result of predict_property."""

    property: str | None = Field(default=None, description="Property asked for.")
    formula: str | None = Field(default=None, description="Reduced formula.")
    value: float | None = Field(default=None, description="Predicted value, in unit.")
    uncertainty: float | None = Field(default=None, description="1-sigma, in unit.")
    unit: str | None = Field(default=None, description="Unit of value.")
    interval_68: list[float] | None = Field(default=None, description="68% interval.")
    interval_95: list[float] | None = Field(default=None, description="95% interval.")
    in_domain: bool | None = Field(default=None, description="Inside the training domain.")
    domain_notes: list[str] = Field(default_factory=list, description="Why out of domain.")
    warning: str | None = Field(default=None, description="How far to trust the value.")
    source: str | None = Field(default=None, description="Model (surrogate:<name>) or data.")
    model: dict[str, Any] | None = Field(default=None, description="Model name, version, "
                                         "features, training rows, CV MAE.")
    database_value: dict[str, Any] | None = Field(default=None, description="Materials "
                                                  "Project value (online, with a key).")
    database_note: str | None = Field(default=None, description="Why there is none.")
    database_error: str | None = Field(default=None, description="Lookup failure.")
    note: str | None = Field(default=None, description="Other remarks.")
    available_properties: list[str] = Field(default_factory=list, description="Properties "
                                            "with a model, when this one has none.")


def property_updates(result: PropertyOutput, ctx: CandidateContext) -> list[dict[str, Any]]:
    """The predicted value on the candidate whose structure was asked about."""
    cid = ctx.by_path.get(str(ctx.arguments.get("structure", "")))
    if cid is None or result.value is None:
        return []
    name = ctx.arguments.get("property") or result.property or "property"
    unit = str(result.unit or "").lower().replace("/", "_per_")
    key = f"{name}_{unit}" if unit else name
    old = ctx.known[cid]
    return [{"id": cid, "properties": {**old.properties, key: result.value},
             "property_sources": {**old.property_sources,
                                  key: f"{result.source or 'surrogate'} (±{result.uncertainty}, "
                                       f"in_domain={result.in_domain}, {ctx.record_id})"},
             "property_uncertainties": {**old.property_uncertainties,
                                        **({key: result.uncertainty}
                                           if result.uncertainty is not None else {})},
             "tool_call_ids": [*old.tool_call_ids, ctx.record_id]}]


def _summary(r: PropertyOutput) -> str:
    if r.status in ("error", "no_model"):
        return f"{r.status}: {r.message}"[:300]
    return f"{r.property} = {r.value} {r.unit or ''}".strip()


def surrogate_tools(*, access: FileAccess, mp_api_key: str | None = None,
                    rester_factory: Callable[[str], Any] | None = None,
                    ) -> list[ToolSpec[Any, Any]]:
    """The surrogate tool.

    Args:
        access: Where structure files may be read from.
        mp_api_key: Materials Project key; only with it are database values looked up.
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
            return {"database_note": f"the Materials Project has no {prop} for {formula}"}
        return {"database_value": found.model_dump()}

    def predict(args: PredictPropertyArgs) -> PropertyOutput:
        if not args.formula and not args.structure:
            raise MatloopError("give a formula or a structure", hint="e.g. formula='GaN'")
        if args.structure:
            s = load_structure(args.structure, access=access)
            item = MaterialInput(s.composition, s, s.composition.reduced_formula)
            if args.formula and parse_formula(args.formula).reduced_formula != item.formula:
                raise MatloopError(f"structure is {item.formula}, formula says "
                                   f"{parse_formula(args.formula).reduced_formula}",
                                   hint="pass matching inputs")
        else:
            item = MaterialInput(parse_formula(args.formula or ""), None,
                                 (args.formula or "").strip())
        head: dict[str, Any] = {"property": args.property, "formula": item.formula,
                                **known_value(item.formula, args.property)}
        try:
            card = select_card(args.property, have_structure=item.structure is not None)
            model = model_for(card)
            (pred,) = model.predict([item])
        except NoSurrogateError as exc:
            if head.get("database_value"):
                return PropertyOutput(**head, note=f"no surrogate model: {exc.message}")
            return PropertyOutput(status="no_model", message=exc.message, hint=exc.hint or "",
                                  available_properties=available_properties(), **head)
        cv = model.card.get("metrics", {}).get("cv", {})
        return PropertyOutput(
            **head, value=round(pred.value, 4), uncertainty=round(pred.uncertainty, 4),
            unit=pred.unit, interval_68=[round(v, 4) for v in pred.interval_68],
            interval_95=[round(v, 4) for v in pred.interval_95], in_domain=pred.in_domain,
            domain_notes=list(pred.domain_notes) if not pred.in_domain else [],
            warning=None if pred.in_domain else (
                "outside the model's training domain; treat the value as a rough guess: "
                + "; ".join(pred.domain_notes)),
            source=pred.source,
            model={"name": model.name, "version": model.version, "features": model.features,
                   "training_rows": model.card["data"]["rows"],
                   "cv_mae": round(cv["mae"], 4) if "mae" in cv else None})

    return [ToolSpec(
        PREDICT_PROPERTY,
        "Predict a property the MLIP does not give (e.g. band_gap, eV) with a surrogate. Give a "
        "formula or a structure. Returns the value, its 1-sigma uncertainty, 68%/95% intervals, "
        "unit, whether the input lies inside the model's training domain (in_domain; "
        "out-of-domain values are rough guesses) and source; with Materials Project access also "
        "the database value. status 'no_model' means no model exists for that property: report "
        "that, do not guess.",
        PredictPropertyArgs, PropertyOutput, predict, _summary, candidates=property_updates)]
