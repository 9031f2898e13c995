"""The generate_candidates tool, the generate/sun CLI, and SUN metrics with CHGNet (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from matloop.app.cli_support import MatloopGroup
from matloop.app.generation_cli import register
from matloop.config import get_settings
from matloop.generation import GenerationRequest, generate, sun_metrics
from matloop.materials.engine import MaterialsEngine
from matloop.materials.references import ReferenceStore
from matloop.tools.generation import GenerateArgs, generation_tools

runner = CliRunner()


@pytest.fixture
def one_torch_thread():
    """CHGNet with one intra-op thread: on a busy 2-core machine two threads run ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Engine:
    """Just what the tool uses from a MaterialsEngine: its reference store (no MLIP)."""

    mp_structures = None

    def __init__(self) -> None:
        self.store = ReferenceStore(get_settings().reference_path)
        self.store.ensure_starter_library()


def make_generation_tools(engine, **kw):
    """The generation tool as the LLM sees it (JSON in, JSON out)."""
    return [spec.as_langchain() for spec in generation_tools(engine, **kw)]


def make_app() -> typer.Typer:
    # the main app's group maps failures onto exit codes (matloop.app.cli_support)
    app = typer.Typer(cls=MatloopGroup)

    @app.callback()
    def main() -> None:
        """Test app."""

    register(app)
    return app


def test_tool_writes_cifs_and_returns_compact_json(tmp_path: Path) -> None:
    (tool,) = make_generation_tools(_Engine(), run_dir=tmp_path / "run")
    assert tool.name == "generate_candidates"
    assert set(GenerateArgs.model_json_schema()["properties"]) == {
        "chemsys", "composition", "methods", "n", "spacegroups", "max_atoms",
        "required_elements", "excluded_elements", "seed", "prescreen_keep"}
    out = json.loads(tool.invoke({"chemsys": "K-Mg-F", "methods": ["prototype", "substitution"],
                                  "n": 4, "seed": 2}))
    assert list(out)[0] == "status" and out["status"] == "ok"
    assert out["n"] == 4 and len(out["candidates"]) == 4
    for row in out["candidates"]:
        assert {"id", "formula", "method", "valid", "cif_path", "spacegroup"} <= set(row)
        assert Path(row["cif_path"]).is_file() and row["valid"]
    saved = json.loads((tmp_path / "run" / "candidates" / "candidates.json").read_text())
    assert [c["id"] for c in saved["candidates"]] == [r["id"] for r in out["candidates"]]
    assert saved["candidates"][0]["provenance"]


def test_tool_marks_known_phases_and_drops_repeats_of_earlier_calls(tmp_path: Path) -> None:
    (tool,) = make_generation_tools(_Engine(), run_dir=tmp_path / "run")
    first = json.loads(tool.invoke({"composition": "NaCl", "methods": ["prototype"], "n": 3}))
    novelty = {f"{r['formula']}{r['spacegroup']}": r["novelty"] for r in first["candidates"]}
    # Rocksalt NaCl (Fm-3m, 225) is in the starter library: known at structure level.
    assert novelty["NaCl225"].startswith("known phase (matches starter:")
    assert any(v.startswith("known composition (Materials Project composition; no mp-id "
                            "shipped); structure not among") for v in novelty.values())
    # The same request again is the same candidates (same ids), kept as they are.
    again = json.loads(tool.invoke({"composition": "NaCl", "methods": ["prototype"], "n": 3}))
    assert [r["id"] for r in again["candidates"]] == [r["id"] for r in first["candidates"]]
    # Substitution reaches the same structures under other ids: they are dropped as repeats,
    # also by a fresh tool on the same run directory (a resumed campaign).
    (fresh,) = make_generation_tools(_Engine(), run_dir=tmp_path / "run")
    sub = json.loads(fresh.invoke({"composition": "NaCl", "methods": ["substitution"], "n": 3}))
    earlier = {r["id"] for r in first["candidates"]}
    assert sub.get("repeats_of_earlier_calls"), sub
    assert all(r["same_structure_as"] in earlier for r in sub["repeats_of_earlier_calls"])
    assert not earlier & {r["id"] for r in sub["candidates"]}


@pytest.mark.parametrize(("args", "message"), [
    ({"composition": "NaCl2"}, "charge balanced"),
    ({"chemsys": "Li-Fe-O", "excluded_elements": ["Fe"]}, "excluded"),
    ({"chemsys": "K-Mg-F", "methods": ["quantum"]}, "unknown generation method"),
], ids=["unbalanced", "excluded", "unknown-method"])
def test_tool_reports_errors_as_json(args: dict, message: str) -> None:
    (tool,) = make_generation_tools(_Engine())
    out = json.loads(tool.invoke(args))
    assert out["status"] == "error" and message in out["message"]


def test_cli_generate_writes_candidates(tmp_path: Path) -> None:
    result = runner.invoke(make_app(), ["generate", "--composition", "MgF2", "--method",
                                        "prototype", "--n", "3", "--out", str(tmp_path / "c"),
                                        "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["n"] == 3
    assert len(list((tmp_path / "c").glob("*.cif"))) == 3
    assert (tmp_path / "c" / "candidates.json").is_file()
    table = runner.invoke(make_app(), ["generate", "--chemsys", "Cs-Pb-I", "--spacegroup",
                                       "221", "--n", "2", "--out", str(tmp_path / "d")])
    assert table.exit_code == 0 and "CsPbI3" in table.output


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "--composition", "NaCl2"], "cannot be charge balanced"),
    (["generate", "--chemsys", "Li-Xx-O"], "unknown element"),
    (["generate", "--composition", "NaCl", "--method", "llm"], "needs a chat model"),
    (["generate", "--composition", "NaCl", "--method", "magic"], "'magic' is not one of"),
    (["sun", "/nonexistent/folder"], "not a folder"),
], ids=["unbalanced", "unknown-element", "llm-no-model", "bad-method", "sun-no-folder"])
def test_cli_bad_input_is_a_message(argv: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(make_app(), [*argv, *(["--out", str(tmp_path)]
                                                 if argv[0] == "generate" else [])])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_sun_metrics_with_chgnet(tmp_path: Path, one_torch_thread: None) -> None:
    engine = MaterialsEngine(get_settings())
    cands = generate(GenerationRequest(chemsys="K-F", methods=["prototype"], n=3,
                                       max_atoms=6), store=engine.store)
    metrics = sun_metrics(cands, engine)
    assert metrics.total == 3 and metrics.evaluated == 3
    by_formula = {r.formula: r for r in metrics.candidates}
    # Rocksalt KF is in the starter library: relaxed, it is known (not novel) and close to the
    # hull of the shipped MP energies (MP2020 scale), within CHGNet's formation-energy error
    # against MP (MAE 0.043 eV/atom, evals.mlip_accuracy).
    rocksalt = next(r for r in metrics.candidates if r.matched and "KF" in r.matched)
    assert not rocksalt.novel and rocksalt.status == "ok"
    assert rocksalt.e_above_hull_ev_per_atom == pytest.approx(0.0, abs=0.05)
    assert rocksalt.stable and not rocksalt.sun
    assert "KF" in by_formula
    assert 0 <= metrics.sun_rate <= metrics.stable_rate <= 1
    assert metrics.per_method["prototype"].total == 3
    assert metrics.sun == sum(r.sun for r in metrics.candidates)


@pytest.mark.slow
def test_cli_sun_on_generated_folder(tmp_path: Path, one_torch_thread: None) -> None:
    app = make_app()
    gen = runner.invoke(app, ["generate", "--composition", "LiF", "--method", "prototype",
                              "--n", "2", "--max-atoms", "4", "--out", str(tmp_path / "c")])
    assert gen.exit_code == 0, gen.output
    result = runner.invoke(app, ["sun", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["total"] == 2 and metrics["evaluated"] == 2
    assert {"valid_rate", "unique_rate", "novel_rate", "stable_rate", "sun_rate"} <= set(metrics)
    assert (tmp_path / "c" / "sun.json").is_file()


def test_prescreen_keeps_the_lowest_single_point_hull_energies(one_torch_thread: None) -> None:
    from matloop.generation.screening import prescreen

    engine = MaterialsEngine(get_settings())
    cands = generate(GenerationRequest(chemsys="K-F", methods=["prototype", "substitution"],
                                       n=6, max_atoms=6), store=engine.store)
    result = prescreen(cands, engine, keep=2)
    scores = {s.id: s.e_above_hull_unrelaxed_ev_per_atom for s in result.scores}
    assert len(result.scores) == sum(c.valid for c in cands) and len(result.kept) == 2
    kept = [scores[c.id] for c in result.kept]
    dropped = [v for s in result.scores if not s.kept
               for v in [s.e_above_hull_unrelaxed_ev_per_atom] if v is not None]
    assert kept == sorted(kept) and max(kept) <= min(dropped)
    assert all(c.provenance["prescreen_e_above_hull_unrelaxed_ev_per_atom"] == scores[c.id]
               for c in result.kept)
    assert "chgnet" in result.mlip.lower()
    # Per method: up to `keep` of each generator.
    per = prescreen(cands, engine, keep=1, per_method=True)
    assert sorted(c.method for c in per.kept) == sorted({c.method for c in cands if c.valid})


def test_tool_prescreen_keeps_the_best_by_single_point(tmp_path: Path,
                                                      one_torch_thread: None) -> None:
    (tool,) = make_generation_tools(MaterialsEngine(get_settings()), run_dir=tmp_path / "run")
    out = json.loads(tool.invoke({"chemsys": "K-F", "methods": ["prototype"], "n": 5,
                                  "max_atoms": 6, "prescreen_keep": 2}))
    assert out["status"] == "ok" and out["n"] == 2 and len(out["candidates"]) == 2
    assert out["prescreen"]["kept"] == 2 and out["prescreen"]["scored"] >= 3
    assert out["per_method"] == {"prototype": 2}
    saved = json.loads((tmp_path / "run" / "candidates" / "candidates.json").read_text())
    scores = [c["provenance"]["prescreen_e_above_hull_unrelaxed_ev_per_atom"]
              for c in saved["candidates"]]
    assert scores == sorted(scores)
