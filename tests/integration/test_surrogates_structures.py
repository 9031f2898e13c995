"""Structure-based surrogates: CHGNet crystal features on Perov-5 CIFs (shared data)."""

from __future__ import annotations

import csv
from importlib.metadata import version

import numpy as np
import pandas as pd
import pytest

from matloop.surrogates import SurrogateDataError, load_surrogate, train_surrogate
from matloop.surrogates.features import structure_features
from matloop.surrogates.table import read_table

PEROV = "crystals/perov_5_val.csv.gz"


def perov_table(shared_data, tmp_path, rows: int, target: str = "heat_ref"):
    """The first ``rows`` Perov-5 validation rows, CIF column and one target, as a CSV."""
    df = pd.read_csv(shared_data / PEROV, keep_default_na=False).iloc[:rows]
    path = tmp_path / "perov.csv"
    df[["material_id", "cif", target]].to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    return path, df


def test_structure_model_card_and_predictions(shared_data, tmp_path) -> None:
    path, df = perov_table(shared_data, tmp_path, 24)
    model = train_surrogate("heat_ref", path, folds=3, unit="eV")  # auto: both
    card = model.card
    assert card["features"]["kind"] == "both" and card["features"]["count"] == 264 + 64
    (struct_block,) = [b for b in card["features"]["blocks"] if b["name"] == "structure"]
    assert struct_block["mlip_model"] == "CHGNet-0.3.0"
    assert card["versions"]["chgnet"] == version("chgnet")
    assert card["data"]["input_kind"] == "structure" and card["data"]["input_column"] == "cif"

    table = read_table(path, target="heat_ref")
    assert table.inputs[3].line > 4 * 10  # multi-line CIF cells: real file lines
    again = load_surrogate("heat_ref")
    preds = again.predict([df["cif"].iloc[0]])  # CIF text
    assert np.isfinite(preds[0].value) and preds[0].formula == table.inputs[0].formula
    with pytest.raises(SurrogateDataError, match="need crystal structures"):
        again.predict(["SrTiO3"])


def test_chgnet_features_are_cached_and_deterministic(shared_data, tmp_path) -> None:
    path, _ = perov_table(shared_data, tmp_path, 6)
    inputs = read_table(path, target="heat_ref").inputs
    a = structure_features(inputs)
    b = structure_features(list(reversed(inputs)))
    assert a.shape == (6, 64) and np.allclose(a, b[::-1])
    assert np.linalg.norm(a[0] - a[1]) > 0  # different structures, different vectors


@pytest.mark.slow
def test_structure_features_learn_what_composition_cannot(shared_data, tmp_path) -> None:
    # Perov-5 formulas do not say which cation sits on the A or the B site; the CHGNet
    # crystal features do. On 60 cells the composition model is no better than the mean.
    path, _ = perov_table(shared_data, tmp_path, 60)
    structure = train_surrogate("heat_ref", path, features="structure", folds=3, save=False)
    composition = train_surrogate("heat_ref", path, features="composition", folds=3,
                                  save=False)
    s, c = structure.card["metrics"]["cv"], composition.card["metrics"]["cv"]
    assert s["r2"] > 0.4 and s["mae"] < 0.75 * s["baseline_mae"]
    assert s["r2"] > c["r2"] + 0.3
