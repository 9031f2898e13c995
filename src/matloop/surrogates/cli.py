"""``matloop models``: train, list and use property surrogates.

Mount in the main CLI with ``app.add_typer(models_app, name="models")``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from matloop.console import StageBars as _Bars
from matloop.console import console
from matloop.console import fail as _fail
from matloop.console import progress_bars as _progress
from matloop.errors import MatloopError

models_app = typer.Typer(no_args_is_help=True,
                         help="Property surrogates (band gap, ...): train, list, predict.")

out = Console()

_TABLE_SUFFIXES = (".csv", ".csv.gz")


class Features(StrEnum):
    """Feature sets of a surrogate."""

    auto = "auto"
    composition = "composition"
    structure = "structure"
    both = "both"


def _f(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


@models_app.command()
def train(
    prop: Annotated[str, typer.Argument(metavar="PROPERTY",
                                        help="Property name, e.g. band_gap.")],
    data: Annotated[Path, typer.Option("--data", help="CSV or CSV.gz with a formula/composition "
                                       "or cif/structure column and the target column.")],
    features: Annotated[Features, typer.Option(help="Feature set (auto: both when the table "
                                               "has structures).")] = Features.auto,
    target: Annotated[str | None, typer.Option(help="Target column (default: PROPERTY).")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit of the property (band_gap: eV).")] = None,
    folds: Annotated[int, typer.Option(min=2, max=50, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Seed of folds and trees.")] = 0,
    name: Annotated[str | None, typer.Option(help="Model name (default: PROPERTY).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the model card as JSON.")] = False,
) -> None:
    """Train a surrogate, print its k-fold metrics and save it under the data directory."""
    from matloop.surrogates.store import models_dir
    from matloop.surrogates.training import train_surrogate

    try:
        with _progress() as progress:
            model = train_surrogate(prop, data, features=features.value, target=target,
                                    unit=unit,
                                    folds=folds, seed=seed, name=name, progress=_Bars(progress))
    except MatloopError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(json.dumps(model.card, default=str))
        return
    cv = model.card["metrics"]["cv"]
    unit_s = f" ({model.unit})" if model.unit else ""
    table = Table(title=f"{model.name}: {cv['folds']}-fold cross-validation on {cv['n']} rows")
    for col in ("metric", "value"):
        table.add_column(col)
    table.add_row(f"MAE{unit_s}", _f(cv["mae"]))
    table.add_row(f"RMSE{unit_s}", _f(cv["rmse"]))
    table.add_row("R²", _f(cv["r2"]))
    table.add_row(f"MAE of predicting the mean{unit_s}", _f(cv["baseline_mae"]))
    table.add_row("coverage of the 68% interval", _f(cv["coverage_68"], ".1%"))
    table.add_row("coverage of the 95% interval", _f(cv["coverage_95"], ".1%"))
    table.add_row(f"mean 1-sigma uncertainty{unit_s}", _f(cv["mean_uncertainty"]))
    out.print(table)
    t = model.card["timings_s"]
    out.print(f"features: {model.features} ({model.card['features']['count']}); "
              f"time: {t['total_s']:.1f} s; version {model.version}", soft_wrap=True)
    out.print(f"saved {models_dir() / (model.name + '.joblib')}", soft_wrap=True)


@models_app.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the trained surrogates."""
    from matloop.surrogates.store import list_surrogates, models_dir

    cards = list_surrogates()
    if as_json:
        out.print_json(json.dumps(cards, default=str))
        return
    if not cards:
        out.print(f"no surrogate models in {models_dir()}; train one with "
                  "`matloop models train band_gap --data gaps.csv`", soft_wrap=True)
        return
    table = Table(title=f"surrogate models in {models_dir()}")
    for col in ("name", "property", "unit", "features", "rows", "CV MAE", "R²", "cov 68%",
                "cov 95%", "trained", "version"):
        table.add_column(col)
    for c in cards:
        cv = c.get("metrics", {}).get("cv", {})
        table.add_row(c["name"], c["property"], c.get("unit", ""), c["features"]["kind"],
                      str(c["data"]["rows"]), _f(cv.get("mae")), _f(cv.get("r2")),
                      _f(cv.get("coverage_68"), ".0%"), _f(cv.get("coverage_95"), ".0%"),
                      str(c.get("created_utc", "")), c.get("version", ""))
    out.print(table)


@models_app.command()
def predict(
    name: Annotated[str, typer.Argument(help="Model name (see `matloop models list`).")],
    files: Annotated[list[Path] | None, typer.Argument(
        help="CSV/CSV.gz tables (formula or cif/structure column) or structure files.")] = None,
    formula: Annotated[list[str] | None, typer.Option(
        "--formula", "-f", help="A formula to predict (repeatable).")] = None,
    target: Annotated[str | None, typer.Option(
        help="Column of known values in the tables: prints held-out metrics.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Predict with a surrogate: value, uncertainty, intervals and the domain check."""
    from matloop.surrogates.store import load_surrogate
    from matloop.surrogates.table import MaterialInput, load_structure, parse_formula, read_table
    from matloop.surrogates.training import prediction_metrics

    if not files and not formula:
        _fail(MatloopError("nothing to predict", hint="give files or --formula"))
    try:
        with console.status(f"loading model {name}"):
            model = load_surrogate(name)
        items: list[MaterialInput] = [MaterialInput(parse_formula(f, where="--formula: "),
                                                    None, f) for f in formula or []]
        known: list[tuple[str, int, int, Any]] = []  # file, first row, end row, values
        for path in files or []:
            if path.name.lower().endswith(_TABLE_SUFFIXES):
                rows = read_table(path, target=target, require_target=target is not None)
                if rows.targets is not None:
                    known.append((str(path), len(items), len(items) + len(rows.inputs),
                                  rows.targets))
                items += rows.inputs
            else:
                s = load_structure(str(path), where=f"{path}: ")
                items.append(MaterialInput(s.composition, s, path.name))
        with _progress() as progress:
            predictions = model.predict(items, progress=_Bars(progress))
    except MatloopError as exc:
        _fail(exc)
        return
    metrics = [{"file": f, **prediction_metrics(model, predictions[a:b], y)}
               for f, a, b, y in known]
    if as_json:
        payload: dict[str, Any] = {"predictions": [p.model_dump() for p in predictions]}
        if metrics:
            payload["metrics"] = metrics
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{model.name} ({model.property}, {model.unit or 'no unit'}); "
                        f"source surrogate:{model.name}")
    for col in ("#", "input", "formula", "value", "± 1σ", "68% interval", "95% interval",
                "in domain"):
        table.add_column(col)
    for i, p in enumerate(predictions, 1):
        table.add_row(str(i), p.input[:40], p.formula, _f(p.value), _f(p.uncertainty),
                      f"{p.interval_68[0]:.3f} – {p.interval_68[1]:.3f}",
                      f"{p.interval_95[0]:.3f} – {p.interval_95[1]:.3f}",
                      "yes" if p.in_domain else "[red]no")
    out.print(table)
    for i, p in enumerate(predictions, 1):
        if p.domain_notes:
            out.print(f"[red]#{i} {p.formula} outside the domain:[/] {'; '.join(p.domain_notes)}",
                      soft_wrap=True)
    for m in metrics:
        out.print(f"{m['file']}: MAE {m['mae']:.3f}, R² {m['r2']:.3f}, coverage 68% "
                  f"{m['coverage_68']:.1%}, 95% {m['coverage_95']:.1%} on {m['n']} rows",
                  soft_wrap=True)
