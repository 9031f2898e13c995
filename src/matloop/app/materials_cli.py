"""``matloop predict``, ``matloop mlips`` and ``matloop refs``: the materials engine on the
command line. Added to the main app by :func:`register`."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from matloop.app.cli_support import (
    EXIT_ATTENTION,
    CsvScale,
    Scale,
    out,
    print_json,
)
from matloop.console import StageBars, console, progress_bars
from matloop.errors import MatloopError, StructureInputError

refs_app = typer.Typer(no_args_is_help=True, help="Reference phases for convex hulls.")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files from paths, folders (their structure files, sorted) and glob patterns, in order,
    without repeats. A path that does not exist is kept, so it gets its own error row."""
    from matloop.materials.structures import SUPPORTED_SUFFIXES

    def is_structure(p: Path) -> bool:
        return p.is_file() and (p.suffix.lower() in SUPPORTED_SUFFIXES or
                                p.name.upper().startswith(("POSCAR", "CONTCAR")))

    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if is_structure(p))
        elif not path.exists() and glob.has_magic(spec):
            found += sorted(Path(p) for p in glob.glob(spec, recursive=True)
                            if is_structure(Path(p)))
        else:
            found.append(path)
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def predict(
    paths: Annotated[list[str], typer.Argument(help="Structure files (CIF, POSCAR, extxyz, JSON), folders of them, or quoted glob patterns ('data/*.cif').", metavar="PATH...")],
    mlip: Annotated[str | None, typer.Option(help="MLIP backend (see matloop mlips; default: the mlip setting).")] = None,
    relax: Annotated[bool, typer.Option("--relax/--no-relax", help="Relax positions and cell before predicting (default, as in the Python API); --no-relax evaluates the cells as given.")] = True,
    bulk_modulus: Annotated[bool, typer.Option("--bulk-modulus", help="Fit an EOS, report B0 in GPa.")] = False,
    scale: Annotated[Scale | None, typer.Option(help="Hull energy scale (default: the reference_scale setting).")] = None,
    trajectory: Annotated[bool, typer.Option("--trajectory", help="Keep the relaxation frames and write them to --out/trajectories/*.extxyz.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write the final CIFs, predictions.json, predictions.csv and structures.extxyz here.")] = None,
) -> None:
    """Predict energies, formation energies and hull stability of structures with an MLIP.

    Every input gets a row; an unreadable file is reported and the others go on. Exit code 1
    when any input could not be read or did not converge.
    """
    from matloop.config import get_settings
    from matloop.materials.engine import MaterialsEngine, write_predictions, write_trajectory
    from matloop.materials.mlip import require_installed
    from matloop.materials.structures import read_structure

    settings = get_settings()
    require_installed(mlip or settings.mlip)  # a missing backend fails before any work
    if trajectory and (out_dir is None or not relax):
        raise MatloopError("--trajectory needs --out (where the frames go) and relaxation",
                           hint="add --out DIR, and drop --no-relax")
    files = expand_inputs(paths)
    if not files:
        raise MatloopError(f"no structure files in {', '.join(paths)}",
                           hint="give CIF, POSCAR, extxyz or pymatgen JSON files, folders of "
                                "them, or a quoted glob such as 'data/*.cif'")
    structures, sources, unreadable = [], [], []
    for f in files:
        try:
            structures.append(read_structure(f))
            sources.append(str(f))
        except StructureInputError as exc:
            unreadable.append({"source": str(f), "status": "unreadable", "message": str(exc)})
            console.print(f"[yellow]skipped[/] {escape(str(exc))}", soft_wrap=True)
    predictions = []
    if structures:
        engine = MaterialsEngine(settings, mlip=mlip)
        with progress_bars() as progress:
            predictions = engine.predict(
                structures, sources=sources, relax=relax, bulk_modulus=bulk_modulus,
                scale=scale.value if scale else None, trajectory=trajectory,
                progress=StageBars(progress))
    rows = [_row(p, bulk_modulus) for p in predictions]
    by_source = {r["source"]: r for r in rows + unreadable}
    ordered = [by_source[str(f)] for f in files if str(f) in by_source]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, p in enumerate(predictions):
            if p.structure_cif:
                kind = "relaxed" if p.relaxed else "input"
                (out_dir / f"{i:03d}_{p.formula}_{kind}.cif").write_text(p.structure_cif)
            if p.trajectory:
                folder = out_dir / "trajectories"
                folder.mkdir(exist_ok=True)
                write_trajectory(p, folder / f"{i:03d}_{p.formula}.extxyz")
        (out_dir / "predictions.json").write_text(json.dumps(ordered, indent=2))
        if predictions:
            write_predictions(predictions, out_dir / "predictions.csv")
            if any(p.structure_cif for p in predictions):
                write_predictions(predictions, out_dir / "structures.extxyz")
    if as_json:
        print_json(ordered)
    else:
        _print_predictions(ordered, predictions, bulk_modulus)
    if not structures:
        raise MatloopError(f"none of the {len(files)} input(s) is a readable structure",
                           hint="see the messages above for each file")
    if unreadable or any(p.status != "ok" for p in predictions):
        raise typer.Exit(code=EXIT_ATTENTION)


def _row(p: Any, bulk_modulus: bool) -> dict[str, Any]:
    row = {
        "source": p.source, "formula": p.formula, "status": p.status, "message": p.message,
        "energy_per_atom_ev": p.energy_per_atom_ev,
        "formation_energy_ev_per_atom": p.formation_energy_ev_per_atom,
        "e_above_hull_ev_per_atom": p.e_above_hull_ev_per_atom,
        "decomposition": p.decomposition, "is_stable": p.is_stable,
        "energy_scale": p.energy_scale, "stability_error": p.stability_error,
        "flags": p.flags, "relaxed": p.relaxed, "relax_steps": p.relax_steps,
        "mlip": p.mlip, "mlip_model": p.mlip_model, "mlip_version": p.mlip_version,
        "settings": p.settings, "relaxed_cif": p.relaxed_cif,
    }
    if bulk_modulus:
        row["bulk_modulus_gpa"] = p.bulk_modulus_gpa
    if p.magmoms_bohr is not None:
        row["magmoms_bohr"] = p.magmoms_bohr
    return row


def _print_predictions(rows: list[dict[str, Any]], predictions: list, bulk_modulus: bool
                       ) -> None:
    table = Table(title="matloop predictions")
    for col in ("source", "formula", "status", "E (eV/atom)", "E_form (eV/atom)",
                "E_hull (eV/atom)", "stable", "decomposition"):
        table.add_column(col)
    if bulk_modulus:
        table.add_column("B0 (GPa)")
    for r in rows:
        decomp = ", ".join(f"{k} {v:.2f}" for k, v in (r.get("decomposition") or {}).items())
        status = r["status"] if r["status"] == "ok" else f"[red]{r['status']}"
        stable = r.get("is_stable")
        cells = [escape(Path(r["source"]).name), escape(r.get("formula") or "—"), status,
                 _fmt(r.get("energy_per_atom_ev")), _fmt(r.get("formation_energy_ev_per_atom")),
                 _fmt(r.get("e_above_hull_ev_per_atom")),
                 "—" if stable is None else ("yes" if stable else "no"),
                 escape(decomp or r.get("stability_error") or r.get("message") or "—")]
        if bulk_modulus:
            cells.append(_fmt(r.get("bulk_modulus_gpa"), ".1f"))
        table.add_row(*cells)
    out.print(table)
    first = next((p for p in predictions if p.status == "ok"), None)
    if first is not None:
        how = "relaxed" if first.relaxed else "single points (not relaxed)"
        out.print(f"MLIP: {first.mlip} {first.mlip_model} ({first.mlip_version}); {how}; "
                  f"hull scale: {first.energy_scale or 'n/a'}")


def mlips(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the registered MLIP backends and whether each is installed."""
    from matloop.config import get_settings
    from matloop.materials.mlip import available_backends, backend_installed, get_backend_spec

    default = get_settings().mlip
    rows = []
    for name in available_backends():
        spec = get_backend_spec(name)
        rows.append({"name": spec.name, "model": spec.model, "energy_scale": spec.energy_scale,
                     "installed": backend_installed(spec), "default": spec.name == default,
                     "aliases": list(spec.aliases), "description": spec.description,
                     "install_hint": "" if backend_installed(spec) else
                     (spec.install_hint or f"pip install {spec.package}")})
    if as_json:
        print_json(rows)
        return
    table = Table(title="MLIP backends")
    for col in ("name", "model", "energy scale", "installed", "description"):
        table.add_column(col)
    for r in rows:
        name = r["name"] + (" (default)" if r["default"] else "")
        table.add_row(name, r["model"], r["energy_scale"], "yes" if r["installed"] else "no",
                      r["description"])
    out.print(table)
    for r in rows:
        if not r["installed"]:
            out.print(f"to use {r['name']}: {escape(r['install_hint'])}", soft_wrap=True)


@refs_app.command("import")
def refs_import(
    path: Annotated[Path, typer.Argument(help="CSV of formation energies, ComputedEntry JSON, or CIF folder.")],
    scale: Annotated[CsvScale, typer.Option("--scale", help="Scale of a CSV's formation energies (eV/atom): mp2020 (Materials Project since 2021) or mp-legacy (before 2021, e.g. matbench_mp_e_form; converted to mp2020 on import, needs the MP2020 elemental entries imported first).")] = CsvScale.mp2020,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Import reference phases from a file or folder."""
    from matloop.materials.references import ReferenceStore, import_references

    store = ReferenceStore.from_settings()
    with console.status(f"importing {path}"):
        n = import_references(store, path, scale=scale.value)
    if as_json:
        print_json({"imported": n, "path": str(path), "store": str(store.path),
                    "scale": scale.value})
        return
    out.print(f"imported {n} phases from {escape(str(path))} into {store.path}")


SET_KINDS = {"mp-pack": "shipped Materials Project set",
             "mp-pack-elements": "shipped MP2020 elemental references",
             "starter": "starter library (built-in structures)"}


def reference_sets() -> dict[str, Any]:
    """The reference sets hulls and novelty checks use, with their sizes and roles."""
    from matloop.config import get_settings
    from matloop.materials.references import ReferenceStore

    settings = get_settings()
    store = ReferenceStore.from_settings(settings)
    store.ensure_starter_library()
    sets = []
    for r in store.status():
        source = r["source"].replace(" (shipped, read-only)", "")
        shipped = source in ("mp-pack", "mp-pack-elements")
        if source in SET_KINDS:
            kind = SET_KINDS[source]
        elif source.startswith(("file:", "cif:", "json:")):
            kind = "user import"
        elif source.startswith("mp"):
            kind = "Materials Project download"
        else:
            kind = "user import"
        sets.append({"set": kind, "source": source, "phases": r["phases"],
                     "chemical_systems": r["chemical_systems"],
                     "with_structure": r["with_structure"], "energy_kind": r["energy_kind"],
                     "energy_scale": r["energy_scale"], "read_only": shipped, "active": True})
    return {"store": str(store.path), "mp_references": settings.mp_references,
            "reference_scale": settings.reference_scale,
            "total_phases": sum(s["phases"] for s in sets), "sets": sets}


@refs_app.command("status")
def refs_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
                ) -> None:
    """Show the active reference sets (shipped MP set, elements, starter library, imports)
    and their sizes."""
    info = reference_sets()
    if as_json:
        print_json(info)
        return
    table = Table(title="active reference sets")
    for col in ("set", "source", "phases", "chemical systems", "with structure",
                "energy", "scale"):
        table.add_column(col)
    for s in info["sets"]:
        table.add_row(s["set"], escape(s["source"]), f"{s['phases']:,}",
                      f"{s['chemical_systems']:,}", f"{s['with_structure']:,}",
                      s["energy_kind"], s["energy_scale"])
    out.print(table)
    shipped = ("on" if info["mp_references"] else
               "off (MATLOOP_MP_REFERENCES=false: hulls use the starter library and imports)")
    out.print(f"{info['total_phases']:,} phases in all; shipped MP set {shipped}; hull scale "
              f"setting: {info['reference_scale']}; your imports live in {info['store']}",
              soft_wrap=True)


@refs_app.command("fetch")
def refs_fetch(
    chemsys: Annotated[str, typer.Option("--chemsys", help="e.g. Li-Fe-O")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Download a chemical system from the Materials Project (needs MP_API_KEY and network)."""
    from matloop.config import get_settings
    from matloop.materials.mp_client import fetch_chemsys
    from matloop.materials.references import ReferenceStore

    settings = get_settings()
    key = settings.mp_api_key.get_secret_value() if settings.mp_api_key else None
    store = ReferenceStore.from_settings(settings)
    with console.status(f"fetching {chemsys} from the Materials Project"):
        n = fetch_chemsys(store, chemsys, api_key=key)
    if as_json:
        print_json({"stored": n, "chemsys": chemsys, "store": str(store.path)})
        return
    out.print(f"stored {n} phases of {escape(chemsys)}")


def register(app: typer.Typer) -> None:
    """Add ``predict``, ``mlips`` and the ``refs`` group to a typer app."""
    app.command("predict")(predict)
    app.command("mlips")(mlips)
    app.add_typer(refs_app, name="refs")
