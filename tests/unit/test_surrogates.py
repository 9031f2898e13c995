"""Property surrogates: training, calibration, domain checks, storage, bad input, MP lookup.

The training table (tests/data/surrogates/en_difference.csv) has a known target: the largest
minus the smallest Pauling electronegativity of the elements (pymatgen's Element.X). A model
that learned nothing cannot pass these tests.
"""

from __future__ import annotations

import functools
import gzip
import json

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

from matloop.config import get_settings
from matloop.errors import MatloopError, ReferenceDataError
from matloop.surrogates import (
    NoSurrogateError,
    SurrogateDataError,
    available_properties,
    find_surrogate,
    list_surrogates,
    load_surrogate,
    lookup_mp_property,
    read_table,
    train_surrogate,
)
from matloop.surrogates.model import conformal_quantile, fit_calibration
from matloop.surrogates.store import save_surrogate
from tests.conftest import DATA

TABLE = DATA / "surrogates" / "en_difference.csv"


def en_difference(formula: str) -> float:
    xs = [el.X for el in Composition(formula).elements]
    return max(xs) - min(xs)


@functools.lru_cache(maxsize=1)
def trained_model():
    """One model per test session (not saved: each test has its own data directory)."""
    return train_surrogate("en_difference", TABLE, unit="Pauling", save=False)


@pytest.fixture
def model():
    return trained_model()


# ---------------------------------------------------------------------------------------------
# It learns, and says how well


def test_cross_validation_shows_the_known_function_is_learned(model) -> None:
    cv = model.card["metrics"]["cv"]
    assert cv["n"] == 160 and cv["folds"] == 5
    assert cv["r2"] > 0.9
    assert cv["mae"] < 0.2 * cv["baseline_mae"]  # the mean predictor is ~0.57 Pauling off


@pytest.mark.parametrize("formula", ["AlN", "LiCl", "CdTe", "SrTiO3", "LiFePO4"])
def test_predicts_compounds_outside_the_table(model, formula) -> None:
    elements = set(Composition(formula).elements)
    seen = {frozenset(Composition(f).elements) for f in pd.read_csv(TABLE)["formula"]}
    assert frozenset(elements) not in seen  # no training row has this element set
    (p,) = model.predict([formula])
    assert p.value == pytest.approx(en_difference(formula), abs=0.3)
    assert p.in_domain and p.domain_notes == []
    assert p.source == "surrogate:en_difference" and p.unit == "Pauling"


def test_intervals_are_calibrated_and_nested(model) -> None:
    cv = model.card["metrics"]["cv"]
    # Coverage on CV folds calibrated on the other folds (not by construction).
    assert 0.55 <= cv["coverage_68"] <= 0.85
    assert 0.85 <= cv["coverage_95"] <= 1.0
    for p in model.predict(["NaCl", "Fe", "BaTiO3"]):
        lo68, hi68 = p.interval_68
        lo95, hi95 = p.interval_95
        assert lo95 <= lo68 <= p.value <= hi68 <= hi95
        assert p.uncertainty == pytest.approx(hi68 - p.value)
        assert lo95 >= 0.0  # every training value is >= 0, so bounds are clipped at 0


def test_unseen_element_is_flagged_not_hidden(model) -> None:
    (pu, nacl) = model.predict(["PuO2", "NaCl"])
    assert not pu.in_domain
    assert "element Pu not seen in training" in pu.domain_notes
    assert np.isfinite(pu.value) and pu.uncertainty > 0  # the value is still given
    assert nacl.in_domain


def test_far_composition_is_flagged_by_feature_distance(model) -> None:
    (fe, zns) = model.predict(["Fe", "ZnS"])  # every training row has 2-3 elements
    assert not fe.in_domain and fe.domain_distance > 1.0
    assert any("far from the training data" in n for n in fe.domain_notes)
    assert fe.nearest_training  # names the closest training inputs
    # Zn is in one training row only (Sn2ZnF4): far, and the note says why.
    assert not zns.in_domain
    assert "element Zn is in only 1 training input(s)" in " ".join(zns.domain_notes)


# ---------------------------------------------------------------------------------------------
# Storage and metadata


def test_saved_card_has_hash_features_metrics_versions(model, isolated_data_dir) -> None:
    from importlib.metadata import version

    save_surrogate(model)
    folder = get_settings().data_dir / "models"
    assert folder == isolated_data_dir / "models"
    card = json.loads((folder / "en_difference.json").read_text())
    assert (folder / "en_difference.joblib").is_file()
    assert card["data"]["sha256"] == read_table(TABLE, target="en_difference").data_sha256
    assert card["data"]["rows"] == 160 and card["data"]["target_column"] == "en_difference"
    assert card["features"]["kind"] == "composition" and card["features"]["count"] == 264
    assert {"mae", "r2", "coverage_68", "coverage_95"} <= set(card["metrics"]["cv"])
    assert card["versions"]["scikit-learn"] == version("scikit-learn")
    assert card["versions"]["matminer"] == version("matminer")
    assert card["unit"] == "Pauling" and len(card["version"]) == 12

    again = load_surrogate("en_difference")
    a = model.predict(["NaCl", "PuO2"])
    b = again.predict(["NaCl", "PuO2"])
    assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
    assert available_properties() == ["band_gap", "en_difference"]  # band_gap: built in
    assert [c["name"] for c in list_surrogates()] == ["en_difference"]


def test_data_hash_changes_with_the_data(tmp_path) -> None:
    text = TABLE.read_text()
    changed = tmp_path / "changed.csv"
    changed.write_text(text.replace("Ag2P3,0.260", "Ag2P3,0.261"))
    gz = tmp_path / "same.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    original = read_table(TABLE, target="en_difference").data_sha256
    assert read_table(changed, target="en_difference").data_sha256 != original
    assert read_table(gz, target="en_difference").data_sha256 == original


def test_missing_model_names_the_training_command() -> None:
    assert available_properties() == ["band_gap"]  # the built-in default; nothing trained
    with pytest.raises(NoSurrogateError) as info:
        find_surrogate("thermal_conductivity")
    assert "no surrogate model for 'thermal_conductivity'" in info.value.message
    assert "properties with models: band_gap" in info.value.message
    assert "matloop models train thermal_conductivity --data" in info.value.hint
    with pytest.raises(NoSurrogateError, match="no surrogate model named"):
        load_surrogate("thermal_conductivity")


def test_structure_model_is_not_used_for_a_formula(model, isolated_data_dir) -> None:
    card = dict(model.card, name="en_structure", features={"kind": "structure", "count": 64})
    (isolated_data_dir / "models").mkdir(parents=True)
    (isolated_data_dir / "models" / "en_structure.json").write_text(json.dumps(card))
    with pytest.raises(NoSurrogateError, match="needs a crystal structure") as info:
        find_surrogate("en_difference", have_structure=False)
    assert "--features composition" in info.value.hint


# ---------------------------------------------------------------------------------------------
# Bad input: clear errors naming the column and the line


def write(tmp_path, text: str, name: str = "t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(n: int, start: int = 0) -> str:
    return "".join(f"Na{i + 1}Cl,{0.1 * i:.1f}\n" for i in range(start, start + n))


def test_missing_target_column_lists_columns_and_suggests_target(tmp_path) -> None:
    path = write(tmp_path, "formula,gap_eV\n" + rows(30))
    with pytest.raises(SurrogateDataError) as info:
        train_surrogate("band_gap", path)
    assert "no target column 'band_gap'" in info.value.message
    assert "formula, gap_eV" in info.value.message
    assert "--target gap_eV" in info.value.hint


def test_non_numeric_target_names_column_and_lines(tmp_path) -> None:
    path = write(tmp_path, "formula,band_gap\n" + rows(10) + "KCl,abc\n" + rows(10, 10)
                 + "KBr,\n" + rows(10, 20))
    with pytest.raises(SurrogateDataError) as info:
        train_surrogate("band_gap", path)
    msg = info.value.message
    assert "column 'band_gap'" in msg and "2 missing or non-numeric" in msg
    assert "line 12 ('abc')" in msg and "line 23 ('')" in msg


def test_unparseable_formula_names_the_line(tmp_path) -> None:
    path = write(tmp_path, "formula,band_gap\n" + rows(5) + "Xx2O3,1.0\n" + rows(25, 5))
    with pytest.raises(SurrogateDataError) as info:
        train_surrogate("band_gap", path)
    assert "line 7" in info.value.message and "'Xx2O3'" in info.value.message
    assert "column 'formula'" in info.value.message


def test_too_few_rows(tmp_path) -> None:
    path = write(tmp_path, "formula,band_gap\n" + rows(8))
    with pytest.raises(SurrogateDataError, match="8 data rows; at least 20") as info:
        train_surrogate("band_gap", path)
    assert info.value.hint


def test_no_input_column_and_structure_features_without_structures(tmp_path) -> None:
    path = write(tmp_path, "name,band_gap\n" + rows(30))
    with pytest.raises(SurrogateDataError, match="no input column"):
        train_surrogate("band_gap", path)
    path = write(tmp_path, "formula,band_gap\n" + rows(30), "f.csv")
    with pytest.raises(SurrogateDataError, match="needs crystal structures"):
        train_surrogate("band_gap", path, features="structure")
    with pytest.raises(SurrogateDataError, match="valid: composition, structure, both"):
        train_surrogate("band_gap", path, features="magic")


def test_constant_target_is_refused(tmp_path) -> None:
    path = write(tmp_path, "formula,band_gap\n"
                 + "".join(f"Na{i + 1}Cl,0.0\n" for i in range(30)))
    with pytest.raises(SurrogateDataError, match="nothing to learn"):
        train_surrogate("band_gap", path)


def test_errors_are_matloop_errors_with_hints(tmp_path) -> None:
    with pytest.raises(MatloopError) as info:
        train_surrogate("band_gap", tmp_path / "missing.csv")
    assert info.value.hint and "no such file" in info.value.message


# ---------------------------------------------------------------------------------------------
# Tables


def test_nan_formula_is_sodium_nitride_and_multiline_cif_lines(tmp_path) -> None:
    table = read_table(pd.DataFrame({"formula": ["NaN", "GaN"], "band_gap": [0.0, 3.4]}),
                       target="band_gap")
    assert table.inputs[0].composition == Composition({"Na": 1, "N": 1})
    cif = ("data_NaCl\n_cell_length_a 5.6\n_cell_length_b 5.6\n_cell_length_c 5.6\n"
           "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
           "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n"
           "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
           "_atom_site_fract_z\nNa1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n")
    path = write(tmp_path, f'cif,band_gap\n"{cif}",5.0\n"{cif.replace("Cl1 Cl", "Cl1 Qq")}",1\n')
    with pytest.raises(SurrogateDataError) as info:
        read_table(path, target="band_gap")
    assert f"line {2 + cif.count(chr(10)) + 1}" in info.value.message  # where row 2 starts


def test_structure_path_column_is_read_relative_to_the_table(tmp_path) -> None:
    (tmp_path / "cifs").mkdir()
    (tmp_path / "cifs" / "nacl.cif").write_text((DATA / "NaCl_rocksalt.cif").read_text())
    path = write(tmp_path, "structure_path,band_gap\ncifs/nacl.cif,5.0\ncifs/missing.cif,1\n")
    with pytest.raises(SurrogateDataError, match="line 3") as info:
        read_table(path, target="band_gap")
    assert "missing.cif" in info.value.message
    path = write(tmp_path, "structure_path,band_gap\ncifs/nacl.cif,5.0\n", "ok.csv")
    table = read_table(path, target="band_gap")
    assert table.input_kind == "structure" and table.inputs[0].formula == "NaCl"
    assert table.inputs[0].structure is not None and len(table.inputs[0].structure) == 8


def test_pandas_nan_formula_gets_a_hint() -> None:
    frame = pd.DataFrame({"formula": ["GaN", float("nan")], "band_gap": [3.4, 0.0]})
    with pytest.raises(SurrogateDataError, match="line 3") as info:
        read_table(frame, target="band_gap")
    assert "keep_default_na=False" in info.value.hint


def test_calibration_groups_and_conformal_quantile() -> None:
    assert conformal_quantile(np.arange(1, 101, dtype=float), 0.68) == 69.0  # ceil(101*.68)
    rng = np.random.default_rng(0)
    spread = np.r_[np.zeros(300), rng.uniform(0.1, 1.0, 700)]
    resid = np.r_[np.zeros(300), np.abs(rng.normal(0, 1, 700)) * spread[300:]]
    cal = fit_calibration(resid, spread, tol=1e-9, lower_bound=0.0)
    # Exact agreements get their own (zero) widths; the rest scale with the spread.
    assert cal.h68 == 0.0 and cal.k68 == pytest.approx(1.0, abs=0.15)
    assert cal.k95 == pytest.approx(1.96, abs=0.25)
    b = cal.intervals(np.array([0.1, 2.0]), np.array([0.0, 0.5]))
    assert b["lo68"][0] == 0.1 and b["hi68"][0] == 0.1
    assert b["lo95"][1] == pytest.approx(max(0.0, 2.0 - cal.k95 * 0.5))


# ---------------------------------------------------------------------------------------------
# Materials Project lookup (fake rester; the real one is online)


class Doc:
    def __init__(self, material_id, band_gap, e_hull, density=6.1):
        self.material_id, self.band_gap, self.energy_above_hull = material_id, band_gap, e_hull
        self.density = density
        self.formula_pretty = "GaN"


class FakeRester:
    calls: list = []
    docs = [Doc("mp-830", 1.7, 0.006), Doc("mp-804", 1.73, 0.0), Doc("mp-2853", None, 0.3)]

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.materials = self
        self.summary = self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def search(self, formula=None, fields=None):
        FakeRester.calls.append((self.api_key, formula, fields))
        return self.docs if formula == "GaN" else []


def test_mp_lookup_returns_ground_state_value_with_source() -> None:
    found = lookup_mp_property("Ga2N2", "band_gap", api_key="k", rester_factory=FakeRester)
    assert found is not None
    assert found.source == "materials_project" and found.material_id == "mp-804"
    assert found.value == 1.73 and found.unit == "eV" and found.polymorphs == 3
    key, formula, fields = FakeRester.calls[-1]
    assert (key, formula) == ("k", "GaN") and "band_gap" in fields and "material_id" in fields
    assert lookup_mp_property("ZnO", api_key="k", rester_factory=FakeRester) is None


def test_mp_lookup_errors() -> None:
    with pytest.raises(ReferenceDataError, match="API key"):
        lookup_mp_property("GaN", api_key=None, rester_factory=FakeRester)
    with pytest.raises(ReferenceDataError, match="valid: "):
        lookup_mp_property("GaN", "colour", api_key="k", rester_factory=FakeRester)

    class Down(FakeRester):
        def search(self, **kwargs):
            raise ConnectionError("Max retries exceeded")

    with pytest.raises(ReferenceDataError, match="Max retries") as info:
        lookup_mp_property("GaN", api_key="secret-key", rester_factory=Down)
    assert "secret-key" not in str(info.value)
