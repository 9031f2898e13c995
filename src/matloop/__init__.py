"""matloop: from a materials question to a grounded discovery report.

The public Python API, imported lazily (``import matloop`` stays fast; each name loads its
module on first use)::

    import matloop

    budget = matloop.Budget(max_evaluations=20)
    report = matloop.run_campaign("stable Ba-Ti-O oxides", budget=budget)
    report.to_dataframe()                      # candidates as a pandas DataFrame

    engine = matloop.MaterialsEngine()
    (p,) = engine.predict("NaCl.cif")           # also a pymatgen Structure or an ASE Atoms
    p.e_above_hull_ev_per_atom, p.structure(), p.entry()

Settings come from :class:`Settings` (environment ``MATLOOP_*``, ``.env``, ``matloop.toml``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "run_campaign": "matloop.app.campaign",
    "start_campaign": "matloop.app.campaign",
    "resume_campaign": "matloop.app.campaign",
    "render_run": "matloop.app.campaign",
    "CampaignRun": "matloop.app.campaign",
    "QueryProblemsError": "matloop.app.inputs",
    "MaterialsEngine": "matloop.materials.engine",
    "Prediction": "matloop.materials.engine",
    "predictions_dataframe": "matloop.materials.engine",
    "write_predictions": "matloop.materials.engine",
    "write_trajectory": "matloop.materials.engine",
    "read_structure": "matloop.materials.structures",
    "as_structure": "matloop.materials.structures",
    "DiscoveryReport": "matloop.schemas",
    "Objective": "matloop.schemas",
    "QueryProblem": "matloop.schemas",
    "CandidateResult": "matloop.schemas",
    "Budget": "matloop.runtime",
    "Settings": "matloop.config",
    "get_settings": "matloop.config",
    "MatloopError": "matloop.errors",
    "parse_query": "matloop.agents.query_parser",
    "write_report_files": "matloop.reports",
}

__all__ = [
    "Budget", "CampaignRun", "CandidateResult", "DiscoveryReport", "MaterialsEngine",
    "MatloopError", "Objective", "Prediction", "QueryProblem", "QueryProblemsError", "Settings",
    "__version__", "as_structure", "get_settings", "parse_query", "predictions_dataframe",
    "read_structure", "render_run", "resume_campaign", "run_campaign", "start_campaign",
    "write_predictions", "write_report_files", "write_trajectory",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from matloop.agents.query_parser import parse_query
    from matloop.app.campaign import (
        CampaignRun,
        render_run,
        resume_campaign,
        run_campaign,
        start_campaign,
    )
    from matloop.app.inputs import QueryProblemsError
    from matloop.config import Settings, get_settings
    from matloop.errors import MatloopError
    from matloop.materials.engine import (
        MaterialsEngine,
        Prediction,
        predictions_dataframe,
        write_predictions,
        write_trajectory,
    )
    from matloop.materials.structures import as_structure, read_structure
    from matloop.reports import write_report_files
    from matloop.runtime import Budget
    from matloop.schemas import CandidateResult, DiscoveryReport, Objective, QueryProblem


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'matloop' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
