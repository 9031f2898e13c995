from __future__ import annotations

import pytest

from matloop.errors import BackendUnavailableError, UnknownBackendError
from matloop.materials.mlip import available_backends, get_backend_spec, get_mlip


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(UnknownBackendError) as info:
        get_backend_spec("gpt-potential")
    message = str(info.value)
    for name in ("chgnet", "sevenn"):
        assert name in message
    assert isinstance(info.value, ValueError)


def test_aliases_resolve() -> None:
    assert get_backend_spec("7net-0").name == "sevenn"
    assert get_backend_spec("CHGNet").name == "chgnet"
    assert {"chgnet", "sevenn"} <= set(available_backends())


def test_energy_scales_are_declared() -> None:
    assert get_backend_spec("chgnet").energy_scale == "mp2020"
    assert get_backend_spec("sevenn").energy_scale == "gga_raw"


def test_uninstalled_backend_says_what_to_install() -> None:
    # mace-torch is not a dependency; loading it must fail with an install hint
    try:
        import mace  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mace is installed here")
    with pytest.raises(BackendUnavailableError) as info:
        get_mlip("mace")
    assert "mace-torch" in (info.value.hint or "")
