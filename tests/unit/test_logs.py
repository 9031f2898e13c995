"""Warnings are filtered by category and module (never blanket-silenced) and shown with
--verbose; --quiet and --verbose exclude each other (issue 18)."""

from __future__ import annotations

import warnings

from typer.testing import CliRunner

from matloop import logs
from matloop.app.cli import app


def _warn_from(module: str, message: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with logs.quiet_third_party():
            warnings.warn_explicit(message, UserWarning, "x.py", 1, module=module)
    return [str(w.message) for w in caught]


def test_third_party_noise_is_hidden_and_own_warnings_pass() -> None:
    logs.configure(0)
    try:
        assert _warn_from("pymatgen.io.cif", "a CIF remark") == []
        assert _warn_from("matloop.materials.hull", "a matloop warning") == ["a matloop warning"]
        assert _warn_from("matloop.generation.chemistry",
                          "No default ionic radius for Ni4+. Using ls data.") == []
        logs.configure(1)  # --verbose shows everything
        assert _warn_from("pymatgen.io.cif", "a CIF remark") == ["a CIF remark"]
    finally:
        logs.configure(0)


def test_quiet_and_verbose_exclude_each_other() -> None:
    result = CliRunner().invoke(app, ["-q", "-v", "mlips"])
    assert result.exit_code == 2
    assert "exclude each other" in " ".join(result.output.split())
