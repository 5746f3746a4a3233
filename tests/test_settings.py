"""The platform's settings extend the SDK's: one field per setting, read by every package."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_runner_is_one_setting_for_platform_and_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    from candela.settings import Settings
    from candela_operators import step_operator_class
    from candela_operators.settings import OperatorSettings

    monkeypatch.setenv("CANDELA_RUNNER", "kubernetes")
    assert Settings().runner == OperatorSettings().runner == "kubernetes"
    assert step_operator_class().__name__ == "KubernetesStepOperator"
    assert step_operator_class("local").__name__ == "LocalStepOperator"  # argument first
    monkeypatch.setenv("CANDELA_RUNNER", "docker")
    with pytest.raises(ValueError, match="runner"):
        OperatorSettings()


def test_platform_settings_are_the_sdks_and_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candela.settings import Settings
    from candela_sdk.settings import SdkSettings

    monkeypatch.setenv("CANDELA_HOME", str(tmp_path))
    monkeypatch.setenv("CANDELA_USER", "ana")
    monkeypatch.delenv("CANDELA_STORAGE_ROOT", raising=False)
    s = Settings()
    assert isinstance(s, SdkSettings)
    assert s.storage == SdkSettings().storage == (tmp_path / "storage").as_uri()
    assert s.user == "ana"
    assert Settings(port=9090).api_url == "http://localhost:9090"
