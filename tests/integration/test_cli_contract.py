"""The command line's contract (issue 18): --version, enum choices, exit codes 0/1/2/3,
``predict`` over folders and globs that carries on past bad files, --json everywhere results
are produced, and limits checked before any work (issue 17, item 6).

Reference values: NaCl rock salt relaxed with CHGNet is about -3.8 eV/atom (the same bound as
``test_cli.py::test_predict_json_fields``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matloop import __version__
from matloop.app import cli_support
from matloop.app.cli import app
from tests.conftest import DATA

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"matloop {__version__}"


@pytest.mark.parametrize(("args", "bad"), [
    (["predict", str(DATA / "NaCl_rocksalt.cif"), "--scale", "bogus"], "bogus"),
    (["report", "runs/x", "--format", "pdf"], "pdf"),
    (["refs", "import", "x.csv", "--scale", "mp2019"], "mp2019"),
])
def test_enum_choices_are_checked_before_any_work(args: list[str], bad: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    text = flat(result.output)
    assert bad in text and "Traceback" not in text
    assert "is not one of" in text or "Invalid value" in text


@pytest.mark.parametrize("args", [
    ["--max-iterations", "0"], ["--max-iterations", "-1"], ["--max-evaluations", "0"],
    ["--max-evaluations", "-5"], ["--budget-usd", "-1"], ["--budget-usd", "nan"],
    ["--max-wall-time", "0"], ["--max-atoms", "0"], ["--max-llm-calls", "0"],
    ["--campaign-id", "../escape"], ["--campaign-id", ".hidden"],
])
def test_campaign_limits_are_validated_before_any_work(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(app, ["campaign", "stable Ba-Ti-O oxides", "--yes", "--out",
                                 str(out), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())  # nothing written
    assert not (tmp_path / "escape").exists()


def test_unknown_element_stops_in_batch_without_yes(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    # CliRunner's stdin is no terminal: without --yes nothing may start.
    result = runner.invoke(app, ["campaign", "Find stable compounds of element Xq",
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "--yes" in flat(result.output)
    assert not out.exists() or not any(out.iterdir())


def test_constraints_no_system_satisfies_are_asked_about_before_any_work(
        tmp_path: Path, monkeypatch) -> None:
    """Phosphide and nitride together fit no photovoltaic system: on a terminal the command
    line says which constraint it would relax and asks; declining and not rephrasing stops
    before any work (exit 2)."""
    import matloop.app.cli as cli

    monkeypatch.setattr(cli, "interactive", lambda: True)
    out = tmp_path / "runs"
    result = runner.invoke(app, ["campaign", "phosphide nitride solar absorbers",
                                 "--out", str(out)], input="n\n\n")
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "no chemical system satisfies every constraint" in text
    assert "Go on with these relaxed: the compound classes are alternatives: at least one of " \
           "N, P" in text
    assert "stopped: the question was not changed" in text
    assert not out.exists() or not any(out.iterdir())


def test_query_problems_raise_in_the_python_api(tmp_path: Path) -> None:
    import matloop

    with pytest.raises(matloop.QueryProblemsError) as info:
        matloop.start_campaign("Find stable compounds of element Xq", out_dir=tmp_path)
    assert any(p.kind == "unknown_element" and "Xq" in p.text for p in info.value.problems)
    assert "accept_assumptions" in (info.value.hint or "")
    assert not any(tmp_path.iterdir())


def test_predict_carries_on_past_bad_files_and_reads_folders(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(DATA / "NaCl_rocksalt.cif", folder / "a_NaCl.cif")
    shutil.copy(DATA / "garbage.cif", folder / "b_garbage.cif")
    (folder / "notes.txt").write_text("not a structure")
    result = runner.invoke(app, ["predict", str(folder), "--no-relax", "--json"])
    assert result.exit_code == 1, result.output  # a result to look at: one file unreadable
    rows = json.loads(result.stdout)
    assert [Path(r["source"]).name for r in rows] == ["a_NaCl.cif", "b_garbage.cif"]
    good, bad = rows
    assert good["status"] == "ok" and good["formula"] == "NaCl"
    assert good["relaxed"] is False and good["relaxed_cif"] is None
    assert -4.5 < good["energy_per_atom_ev"] < -3.0
    assert bad["status"] == "unreadable" and "b_garbage.cif" in bad["message"]


def test_predict_glob_and_only_bad_files_is_a_user_error(tmp_path: Path) -> None:
    shutil.copy(DATA / "garbage.cif", tmp_path / "x.cif")
    result = runner.invoke(app, ["predict", str(tmp_path / "*.cif"), "--no-relax"])
    assert result.exit_code == 2
    assert "none of the 1 input(s)" in flat(result.output)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["predict", str(empty)])
    assert result.exit_code == 2 and "no structure files" in flat(result.output)


def test_mlips_json_reports_installation() -> None:
    result = runner.invoke(app, ["mlips", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["chgnet"]["installed"] is True
    missing = [r for r in rows.values() if not r["installed"]]
    assert all(r["install_hint"] for r in missing)


def test_damaged_checkpoint_on_resume_is_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "damaged"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"query": "stable Ba-Ti-O oxides",
                                                 "campaign_id": "damaged"}))
    (run / "checkpoints.sqlite").write_bytes(b"this is not an sqlite file" * 100)
    before = (run / "checkpoints.sqlite").read_bytes()
    result = runner.invoke(app, ["campaign", "--resume", "damaged", "--yes", "--out",
                                 str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "checkpoints.sqlite" in text and "what to do" in text
    assert (run / "checkpoints.sqlite").read_bytes() == before


def test_internal_error_is_exit_3_with_a_crash_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MATLOOP_DATA_DIR", str(tmp_path / "data"))
    from matloop.config import get_settings

    get_settings.cache_clear()
    try:
        code = cli_support.handle_failure(ZeroDivisionError("boom"))
    finally:
        get_settings.cache_clear()
    assert code == cli_support.EXIT_INTERNAL == 3
    (log,) = (tmp_path / "data" / "logs").glob("crash-*.log")
    assert "ZeroDivisionError: boom" in log.read_text()


def test_expected_failures_map_to_exit_2() -> None:
    import sqlite3

    for exc in (sqlite3.DatabaseError("file is not a database"),
                PermissionError(13, "Permission denied", "/x"),
                UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")):
        user = cli_support.explain(exc)
        assert user is not None and user.hint
        assert cli_support.handle_failure(exc) == 2


def test_relaxation_progress_reaches_the_event_log_and_the_printer(tmp_path: Path,
                                                                   capsys) -> None:
    """Per-relaxation progress inside a tool call: tools -> progress events (events.jsonl,
    which the web app streams) -> the command line's printer."""
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    from matloop.app.assembly import progress_to
    from matloop.app.cli import EventPrinter
    from matloop.files import FileAccess
    from matloop.materials.engine import MaterialsEngine
    from matloop.runtime import EventLog
    from matloop.tools.materials import RELAX_STRUCTURE, RelaxArgs, materials_tools

    events = EventLog(tmp_path / "events.jsonl")
    seen: list[dict] = []
    events.subscribe(seen.append)
    tools = {t.name: t for t in materials_tools(MaterialsEngine(), run_dir=tmp_path,
                                                access=FileAccess([tmp_path]),
                                                progress=progress_to(events))}
    cif = AseAtomsAdaptor.get_structure(bulk("NaCl", "rocksalt", a=5.7)).to(fmt="cif")
    tools[RELAX_STRUCTURE].run(RelaxArgs(structure=cif))
    progress = [e for e in seen if e["type"] == "progress"]
    assert progress and all(e["tool"] == RELAX_STRUCTURE for e in progress)
    assert progress[-1]["done"] == progress[-1]["total"] >= 1
    logged = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "progress" for e in logged) == len(progress)

    printer = EventPrinter()  # not a terminal here: a line at the start and at the end
    for e in progress:
        printer(e)
    printer.close()
    err = capsys.readouterr().err
    assert f"{RELAX_STRUCTURE}: {progress[-1]['stage']} " in err
    assert f"{progress[-1]['done']}/{progress[-1]['total']}" in err


@pytest.mark.parametrize("damage", ["not-sqlite", "empty-config", "no-config"])
def test_report_of_a_damaged_run_is_exit_2(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    if damage != "no-config":
        (run / "config.json").write_text("" if damage == "empty-config" else json.dumps(
            {"query": "stable Ba-Ti-O oxides", "campaign_id": "r1"}))
    (run / "checkpoints.sqlite").write_bytes(b"\x00garbage" * 64)
    other = tmp_path / "runs" / "r2"
    other.mkdir()
    (other / "config.json").write_text("{}")
    result = runner.invoke(app, ["report", str(run), "--json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "what to do" in flat(result.output)
    assert result.stdout.strip() == "" or not result.stdout.lstrip().startswith("{")
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]
