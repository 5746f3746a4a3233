"""Airflow plugin: OGC API – Processes at ``/ogc`` on the API server (see ``candela_ogc``).

Registered through the ``airflow.plugins`` entry point (``plugins/ogc/pyproject.toml``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from candela.run_guard import RunGuard
from candela_ogc.app import app


class CandelaOgcPlugin(AirflowPlugin):
    name = "candela_ogc"
    fastapi_apps = [{"app": app, "url_prefix": "/ogc", "name": "OGC API - Processes"}]
    # every HTTP path that starts a pipeline ends in POST /api/v2/dags/{id}/dagRuns: the guard
    # refuses a bad conf (400) or an identical run in progress (409) before a run exists
    fastapi_root_middlewares = [
        {"middleware": RunGuard, "args": [], "kwargs": {}, "name": "candela run guard"}
    ]
