"""Candela's processing services and workflows as OGC API – Processes, on Airflow's API server.

``app.py`` is the FastAPI app that ``plugin.py`` (the ``airflow.plugins`` entry point) mounts at ``/ogc``;
``ogc.py`` builds the standard's documents; ``openapi.py`` is the OpenAPI 3.0 document;
``settings.py`` its ``CANDELA_OGC_*`` settings. Airflow is reached through the platform's
client (``candela.airflow_api.AsyncAirflowClient``) with the caller's own token: although the app
runs inside the API server, it goes through the public API rather than the ORM, so Airflow itself
checks the caller's permissions on each DAG, validates the run's params, records who triggered
the run, and the app depends only on the stable v2 contract.
"""
