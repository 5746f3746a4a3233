"""Airflow plugin: Candela's review app (STAC API of results, map tiles, review pages, reports)
mounted at ``/candela`` in the api-server, and a "Review" tab on every DAG run in the UI.

Registered through the ``airflow.plugins`` entry point (``plugins/review/pyproject.toml``): Airflow
finds it wherever the package is installed, not through its plugins folder."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from candela_review.app import PREFIX, create_app


class CandelaReviewPlugin(AirflowPlugin):
    name = "candela_review"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "Candela review"}]
    external_views = [
        {
            "name": "Review",
            "href": PREFIX + "/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "candela_review",
        },
        {
            "name": "Candela results",
            "href": PREFIX + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "candela_results",
        },
    ]
