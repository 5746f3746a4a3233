"""Airflow plugin: OGC API – Processes at ``/ogc`` on the API server (see ``candela_ogc``).

Registered through the ``airflow.plugins`` entry point (``plugins/ogc/pyproject.toml``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from candela_ogc.app import app


class CandelaOgcPlugin(AirflowPlugin):
    name = "candela_ogc"
    fastapi_apps = [{"app": app, "url_prefix": "/ogc", "name": "OGC API - Processes"}]
