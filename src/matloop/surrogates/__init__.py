"""Property surrogates: models for properties the MLIP does not give (band gap first).

Train one from a table of compositions or structures with a target column, evaluate it by
k-fold cross-validation, calibrate its intervals, and use it for predictions that carry their
uncertainty, applicability-domain flags and ``source="surrogate:<name>"``::

    from matloop.surrogates import train_surrogate, load_surrogate
    model = train_surrogate("band_gap", "gaps.csv", features="composition")
    model.predict(["GaN", "ZnO"])

A band-gap model works out of the box: :func:`default_band_gap_model` is trained on first use
(about 10-20 s, then cached in the data directory) from an experimental table that ships with
matloop, and :func:`find_surrogate` returns it for ``band_gap`` unless the user trained one::

    from matloop.surrogates import predict_band_gap, band_gap_for_compositions
    [p] = predict_band_gap(["BaTiO3"])   # value, uncertainty, intervals, domain, measured value
    screen = band_gap_for_compositions(["CsPbI3", "CsSnI3", "Cs2SnI6"])   # vectorised

:func:`available_properties` lists ``band_gap`` plus what the user has trained. Known values
of existing compounds can come from the Materials Project with :func:`lookup_mp_property`
(online, with an API key).
"""

from __future__ import annotations

from matloop.surrogates.band_gap import (
    BandGapModel,
    GapScreen,
    band_gap_for_compositions,
    default_band_gap_model,
    predict_band_gap,
)
from matloop.surrogates.features import FEATURE_KINDS, FeatureKind
from matloop.surrogates.model import PropertyPrediction, SurrogateModel
from matloop.surrogates.mp import DatabaseValue, lookup_mp_property
from matloop.surrogates.store import (
    NoSurrogateError,
    available_properties,
    find_surrogate,
    list_surrogates,
    load_surrogate,
    models_dir,
)
from matloop.surrogates.table import MaterialInput, SurrogateDataError, read_table
from matloop.surrogates.training import evaluate, train_surrogate

__all__ = [
    "FEATURE_KINDS",
    "BandGapModel",
    "GapScreen",
    "band_gap_for_compositions",
    "default_band_gap_model",
    "predict_band_gap",
    "DatabaseValue",
    "FeatureKind",
    "MaterialInput",
    "NoSurrogateError",
    "PropertyPrediction",
    "SurrogateDataError",
    "SurrogateModel",
    "available_properties",
    "evaluate",
    "find_surrogate",
    "list_surrogates",
    "load_surrogate",
    "lookup_mp_property",
    "models_dir",
    "read_table",
    "train_surrogate",
]
