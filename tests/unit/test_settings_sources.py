"""Settings from the environment, ``.env`` and a TOML config file, in that order of strength
(issue 18, configuration), and the one documented list in ``.env.example``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from matloop.config import Settings, describe_settings, load_settings
from matloop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no MATLOOP_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("MATLOOP_") or name == "MP_API_KEY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_precedence_environment_then_dotenv_then_toml(clean_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "matloop.toml").write_text('[matloop]\nmlip = "sevenn"\nrelax_steps = 123\n'
                                            'llm = "ollama:x"\n')
    (clean_env / ".env").write_text("MATLOOP_RELAX_STEPS=77\nMATLOOP_LLM=ollama:y\n")
    monkeypatch.setenv("MATLOOP_LLM", "ollama:z")
    s = load_settings()
    assert s.mlip == "sevenn"          # only in the TOML file
    assert s.relax_steps == 77         # .env beats TOML
    assert s.llm == "ollama:z"         # environment beats .env
    assert load_settings(llm="none").llm == "none"  # arguments beat everything
    origins = {r["name"]: r["origin"] for r in describe_settings(s)}
    assert origins["mlip"].endswith("matloop.toml")
    assert origins["relax_steps"] == ".env" and origins["llm"] == "environment"
    assert origins["fmax_ev_per_angstrom"] == "default"


def test_bad_config_files_are_config_errors(clean_env: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "matloop.toml").write_text("mlip = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()
    (clean_env / "matloop.toml").write_text('mlpi = "chgnet"\n')
    with pytest.raises(ConfigError, match="unknown setting.*mlpi"):
        load_settings()
    (clean_env / "matloop.toml").unlink()
    monkeypatch.setenv("MATLOOP_RELAX_STEPS", "-3")
    with pytest.raises(ConfigError, match="relax_steps .from environment."):
        load_settings()
    monkeypatch.delenv("MATLOOP_RELAX_STEPS")
    monkeypatch.setenv("MATLOOP_CONFIG", str(clean_env / "missing.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^# ((?:MATLOOP_[A-Z_]+)|MP_API_KEY)=", text, flags=re.M))
    expected = {"MP_API_KEY" if n == "mp_api_key" else f"MATLOOP_{n.upper()}"
                for n in Settings.model_fields}
    assert listed == expected


def test_config_show_json_masks_secrets(clean_env: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    from matloop.app.cli import app
    from matloop.config import get_settings

    monkeypatch.setenv("MP_API_KEY", "abcdefghijklmnopqrstuvwx")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["config", "show", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "abcdefghijklmnopqrstuvwx" not in result.stdout
    rows = {r["name"]: r for r in json.loads(result.stdout)["settings"]}
    assert rows["mp_api_key"]["value"] == "********"
    assert rows["mp_api_key"]["origin"] == "environment"
