"""Candela's Airflow plugins are installed packages found through the ``airflow.plugins`` entry
point; the embedded platform's plugins folder holds none of them, so each loads exactly once."""

from __future__ import annotations

import configparser
from pathlib import Path


def test_embedded_platform_loads_each_plugin_once_through_its_entry_point(tmp_path: Path) -> None:
    from airflow._shared.plugins_manager import (
        _load_entrypoint_plugins,
        _load_plugins_from_plugin_directory,
    )

    from candela.embedded import write_airflow_config
    from candela.settings import Settings

    cfg_path = write_airflow_config(Settings(home=tmp_path), "postgresql://u@/airflow?host=/tmp")
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(cfg_path)
    folder = Path(cfg["core"]["plugins_folder"])
    assert folder.is_dir() and folder.is_relative_to(tmp_path)

    from_folder, folder_errors = _load_plugins_from_plugin_directory(str(folder))
    from_entry_points, errors = _load_entrypoint_plugins()
    assert from_folder == [] and folder_errors == {} and errors == {}
    names = sorted(p.name for p in from_entry_points if p.name.startswith("candela"))
    assert names == ["candela_ogc", "candela_review"]
    prefixes = {p.name: [a["url_prefix"] for a in p.fastapi_apps] for p in from_entry_points}
    assert prefixes["candela_ogc"] == ["/ogc"] and prefixes["candela_review"] == ["/candela"]
