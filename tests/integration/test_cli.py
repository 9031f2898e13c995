from __future__ import annotations

import json

from typer.testing import CliRunner

from matloop.app.cli import app
from tests.conftest import DATA

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_predict_json_fields(tmp_path) -> None:
    result = runner.invoke(app, ["predict", str(DATA / "NaCl_rocksalt.cif"), "--relax",
                                 "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    (row,) = rows
    for key in ("formula", "energy_per_atom_ev", "formation_energy_ev_per_atom",
                "e_above_hull_ev_per_atom", "decomposition", "is_stable", "mlip",
                "mlip_version", "relaxed_cif"):
        assert key in row
    assert row["formula"] == "NaCl" and row["mlip"] == "chgnet"
    assert row["energy_per_atom_ev"] < -3.5
    assert "bulk_modulus_gpa" not in row
    assert (tmp_path / "out" / "predictions.json").exists()
    assert list((tmp_path / "out").glob("*.cif"))


def test_bad_input_is_a_message_not_a_traceback() -> None:
    result = runner.invoke(app, ["predict", str(DATA / "disordered_CuAu.cif")])
    assert result.exit_code == 2
    assert "partially occupied" in flat(result.output)
    assert "Traceback" not in result.output


def test_unknown_backend_lists_valid_ones() -> None:
    result = runner.invoke(app, ["predict", str(DATA / "NaCl_rocksalt.cif"), "--mlip", "nope"])
    assert result.exit_code == 2
    assert "chgnet" in result.output and "sevenn" in result.output


def test_refs_import_and_status(tmp_path) -> None:
    csv = tmp_path / "refs.csv"
    csv.write_text("composition,formation_energy_per_atom\nNaCl,-2.1\nNa2O,-1.38\n")
    result = runner.invoke(app, ["refs", "import", str(csv)])
    assert result.exit_code == 0 and "imported 2 phases" in flat(result.output)
    status = runner.invoke(app, ["refs", "status", "--json"])
    rows = json.loads(status.stdout)["sets"]
    assert {r["source"] for r in rows} >= {"file:refs.csv", "starter"}


def test_refs_fetch_without_key_explains() -> None:
    result = runner.invoke(app, ["refs", "fetch", "--chemsys", "Li-O"])
    assert result.exit_code == 2 and "MP_API_KEY" in result.output
