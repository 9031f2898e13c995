"""The predict_property tool's JSON and the `matloop models` commands (typer CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from matloop.files import FileAccess
from matloop.surrogates.cli import models_app
from matloop.surrogates.store import save_surrogate
from matloop.tools.surrogates import surrogate_tools
from tests.conftest import DATA
from tests.unit.test_surrogates import FakeRester, en_difference, trained_model

TABLE = DATA / "surrogates" / "en_difference.csv"
SNAPSHOT = DATA / "surrogates" / "tool_schema.json"
NACL_CIF = DATA / "NaCl_rocksalt.cif"

runner = CliRunner()
app = typer.Typer()
app.add_typer(models_app, name="models")  # as the main CLI mounts it


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def saved():
    model = trained_model()  # trained once per session, shared with the unit tests
    save_surrogate(model)
    return model


def tool(**kw):
    (t,) = surrogate_tools(access=FileAccess([DATA]), **kw)
    return t.as_langchain()


# ---------------------------------------------------------------------------------------------
# Tool


def test_tool_schema_matches_snapshot() -> None:
    t = tool()
    current = {"name": t.name, "schema": t.args_schema.model_json_schema(),
               "description": t.description}
    if not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True))
        pytest.fail(f"wrote a new snapshot to {SNAPSHOT}; review and commit it")
    assert json.loads(SNAPSHOT.read_text()) == json.loads(json.dumps(current, sort_keys=True))


def test_tool_predicts_with_uncertainty_and_domain(saved) -> None:
    out = json.loads(tool().invoke({"property": "en_difference", "formula": "LiCl"}))
    assert list(out)[0] == "status" and out["status"] == "ok"
    assert out["value"] == pytest.approx(en_difference("LiCl"), abs=0.3)
    assert out["uncertainty"] > 0 and out["unit"] == "Pauling"
    assert out["interval_95"][0] <= out["interval_68"][0] <= out["value"] <= out["interval_68"][1]
    assert out["in_domain"] is True and "warning" not in out
    assert out["source"] == "surrogate:en_difference"
    assert out["model"]["name"] == "en_difference" and out["model"]["cv_mae"] < 0.2
    assert "database_value" not in out  # offline: no key, no lookup


def test_tool_flags_out_of_domain(saved) -> None:
    out = json.loads(tool().invoke({"property": "en_difference", "formula": "PuO2"}))
    assert out["status"] == "ok" and out["in_domain"] is False
    assert "element Pu not seen in training" in out["domain_notes"]
    assert "outside the model's training domain" in out["warning"]


def test_tool_reads_structures(saved) -> None:
    out = json.loads(tool().invoke({"property": "en_difference", "structure": str(NACL_CIF)}))
    assert out["status"] == "ok" and out["formula"] == "NaCl"
    mismatch = json.loads(tool().invoke({"property": "en_difference", "formula": "KCl",
                                         "structure": str(NACL_CIF)}))
    assert mismatch["status"] == "error" and "NaCl" in mismatch["message"]


def test_tool_without_model_says_how_to_train() -> None:
    out = json.loads(tool().invoke({"property": "thermal_conductivity", "formula": "GaN"}))
    assert out["status"] == "no_model"
    assert "matloop models train thermal_conductivity --data" in out["hint"]
    assert out["available_properties"] == ["band_gap"]


def test_tool_uses_the_builtin_band_gap_model_without_training() -> None:
    out = json.loads(tool().invoke({"property": "band_gap", "formula": "BaTiO3"}))
    assert out["status"] == "ok" and out["unit"] == "eV"
    assert out["source"].startswith("surrogate:band_gap_default trained on matbench_expt_gap")
    assert out["model"]["name"] == "band_gap_default" and out["model"]["cv_mae"] < 0.4
    # Measured BaTiO3: about 3.2 eV (Wemple 1970); the old composition model said 0.58 eV.
    assert 2.2 < out["value"] < 4.5 and out["in_domain"] is True


def test_tool_bad_input_is_an_error_status(saved) -> None:
    for args in ({"property": "en_difference", "formula": "Xq2"},
                 {"property": "en_difference"},
                 {"property": "en_difference", "structure": str(DATA / "garbage.cif")}):
        out = json.loads(tool().invoke(args))
        assert out["status"] == "error" and out["message"]


def test_tool_offline_never_calls_materials_project(saved) -> None:
    def forbidden(api_key):
        raise AssertionError("the offline path must not create an MP client")

    out = json.loads(tool(rester_factory=forbidden).invoke(
        {"property": "en_difference", "formula": "GaN"}))
    assert out["status"] == "ok"


def test_tool_separates_database_and_surrogate_values(saved, isolated_data_dir) -> None:
    t = tool(mp_api_key="k", rester_factory=FakeRester)
    out = json.loads(t.invoke({"property": "density", "formula": "GaN"}))
    # No density surrogate, but MP knows GaN: the database value, clearly labelled.
    assert out["status"] == "ok"
    assert out["database_value"]["source"] == "materials_project"
    assert out["database_value"]["material_id"] == "mp-804"
    assert out["database_value"]["value"] == 6.1 and "value" not in out
    assert "no surrogate model" in out["note"]
    unknown = json.loads(t.invoke({"property": "density", "formula": "ZnO"}))
    assert unknown["status"] == "no_model" and unknown.get("database_value") is None
    assert "has no density for ZnO" in unknown["database_note"]
    both = json.loads(t.invoke({"property": "band_gap", "formula": "GaN"}))
    assert both["source"].startswith("surrogate:band_gap_default")
    assert both["database_value"]["source"] == "materials_project"


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_train_list_predict(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "train", "en_difference", "--data", str(TABLE),
                                 "--unit", "Pauling", "--folds", "3"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for word in ("3-fold cross-validation on 160 rows", "MAE (Pauling)", "R²",
                 "coverage of the 68% interval", "coverage of the 95% interval", "saved"):
        assert word in text
    listed = runner.invoke(app, ["models", "list", "--json"])
    (card,) = json.loads(listed.stdout)
    assert card["name"] == "en_difference" and card["metrics"]["cv"]["folds"] == 3
    assert card["metrics"]["cv"]["r2"] > 0.9

    table = tmp_path / "new.csv"
    table.write_text("formula,en_difference\nLiCl,2.18\nCdTe,0.41\nSrTiO3,2.49\nPuO2,2.16\n")
    result = runner.invoke(app, ["models", "predict", "en_difference", str(table),
                                 str(NACL_CIF), "-f", "AlN", "--target", "en_difference",
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    preds = {p["input"]: p for p in payload["predictions"]}
    assert set(preds) == {"AlN", "LiCl", "CdTe", "SrTiO3", "PuO2", "NaCl_rocksalt.cif"}
    assert preds["AlN"]["value"] == pytest.approx(en_difference("AlN"), abs=0.3)
    assert preds["PuO2"]["in_domain"] is False
    (metrics,) = payload["metrics"]
    assert metrics["n"] == 4 and metrics["mae"] < 0.3

    shown = runner.invoke(app, ["models", "predict", "en_difference", "-f", "PuO2"])
    assert shown.exit_code == 0 and "element Pu not seen in training" in flat(shown.output)


def test_cli_predicts_with_the_builtin_band_gap_model() -> None:
    result = runner.invoke(app, ["models", "predict", "band_gap", "-f", "BaTiO3", "-f", "TiO2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    batio3, tio2 = json.loads(result.stdout)["predictions"]
    assert batio3["model_name"] == "band_gap_default" and batio3["value"] > 2.2
    assert tio2["measured_value"] == 3.3 and tio2["recommended_value"] == 3.3
    assert tio2["held_out"] is True


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["models", "predict", "thermal_conductivity", "-f", "GaN"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert "matloop models train thermal_conductivity --data" in flat(missing.output)

    bad = tmp_path / "bad.csv"
    bad.write_text("formula,band_gap\n" + "".join(f"Na{i + 1}Cl,0.{i}\n" for i in range(25))
                   + "GaN,n/a\n")
    result = runner.invoke(app, ["models", "train", "band_gap", "--data", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "line 27 ('n/a')" in flat(result.output)

    empty = runner.invoke(app, ["models", "list"])
    assert empty.exit_code == 0 and "no surrogate models" in flat(empty.output)
