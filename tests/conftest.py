from __future__ import annotations

from pathlib import Path

import pytest

from matloop.config import get_settings

DATA = Path(__file__).parent / "data"
#: Real data sets beside the checkout (CI has them); tests that need them skip without.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_evaluation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLIP evaluation cache for the whole session: reference relaxations are computed
    once, not in every test. Tests of the cache itself open their own files."""
    return tmp_path_factory.mktemp("evaluations") / "evaluations.sqlite"


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      shared_evaluation_cache: Path) -> Path:
    """Every test gets its own data directory (reference store, runs) and fresh settings."""
    data_dir = tmp_path / "matloop-data"
    monkeypatch.setenv("MATLOOP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MATLOOP_EVALUATION_CACHE", str(shared_evaluation_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MP_API_KEY", raising=False)
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
